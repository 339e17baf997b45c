/* gatednet._core.ConvNetwork: one gn_conv_network handle, a lock, and methods that map 1:1
 * onto the conv section of the C ABI. Enumerations are plain ints here; gatednet/__init__.py
 * maps names onto them and turns layer descriptions into the 7-int tuples taken below.
 *
 * Concurrency as in network.c: every call takes the object's lock and releases the GIL around
 * the library call; a call on the network from inside its own fit() callback raises
 * GatedNetError instead of deadlocking. The methods shared with Network are in common.c
 * (conv_ops below supplies the conv C calls).
 *
 * Input arrays: (n, H*W*C) rows, (n, H, W, C) NHWC images, or (n, H, W) when C == 1. A 4-D
 * array of another shape (e.g. NCHW) is rejected even if its size matches. */
#include "gatednet_py.h"

#include <string.h>

/* ---- lifecycle --------------------------------------------------------------------------- */

static int conv_batch_input(GNPy_Handle *self, PyObject *obj, const char *name, gnpy_input *in);

static gn_status conv_kernel_call(const void *net, int kind, int64_t layer, const float *xa, int64_t n_a,
                                  const float *xb, int64_t n_b, float *out, int64_t ld_out, int64_t capacity) {
    (void)layer;
    return gn_conv_network_kernel(net, (gn_conv_kernel_kind)kind, xa, n_a, xb, n_b, out, ld_out, capacity);
}

GNPY_HANDLE_OPS(conv_ops, gn_conv_network, gn_conv_network_train, gn_conv_network_evaluate, conv_kernel_call,
                &GNPy_ConvNetworkType, "gatednet.ConvNetwork",
                "network is busy in this thread: a fit() callback may not use the network it is called for",
                conv_batch_input, 0);

static PyObject *conv_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    (void)args;
    (void)kwargs;
    return gnpy_handle_new(type, &conv_ops);
}

/* ---- small conversions -------------------------------------------------------------------- */

/* One layer: a (kind, units, kernel, stride, padding, bias, block) int tuple. */
static int layer_item(PyObject *item, const char *unused, Py_ssize_t i, void *out) {
    (void)unused;
    char name[48];
    snprintf(name, sizeof name, "layers[%zd]", i);
    Py_ssize_t k = 0;
    int64_t *f = gnpy_int64_list(item, name, &k);
    if (f == NULL) return -1;
    int rc = -1;
    gn_layer_spec *l = out;
    if (k != 7) {
        PyErr_Format(PyExc_ValueError, "%s: expected 7 ints (kind, units, kernel, stride, padding, bias, "
                     "block), got %zd", name, k);
    } else if (f[0] < 0 || f[0] > INT32_MAX || f[4] < 0 || f[4] > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: kind or padding out of range", name);
    } else {
        l->kind = (gn_layer_kind)f[0];
        l->units = f[1];
        l->kernel = f[2];
        l->stride = f[3];
        l->padding = (gn_padding)f[4];
        l->bias = f[5] != 0;
        l->block = f[6];
        rc = 0;
    }
    PyMem_Free(f);
    return rc;
}

static gn_layer_spec *layer_list(PyObject *obj, Py_ssize_t *count) {
    return gnpy_sequence_map(obj, "layers", "layers", sizeof(gn_layer_spec), layer_item, count);
}

static PyObject *layer_tuple(const gn_layer_spec *l) {
    return Py_BuildValue("(iLLLiiL)", (int)l->kind, (long long)l->units, (long long)l->kernel,
                         (long long)l->stride, (int)l->padding, l->bias, (long long)l->block);
}

/* ---- creation ------------------------------------------------------------------------------ */

static int conv_init(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"layers", "input_shape", "regime", "arch", "classes", "width_scale",
                             "activation", "gate", "beta", "value_input", "permutation", "wiring",
                             "wiring_seed", "feature_frozen", "init", "init_scale", "seed",
                             "gate_source", NULL};
    PyObject *layers_obj, *shape_obj;
    int regime = GN_REGIME_RELU, arch = -1;
    long long classes = 0;
    double width_scale = 1.0;
    PyObject *activation = NULL, *gate = NULL, *beta = NULL, *value_input = NULL, *perm = NULL,
             *wiring = NULL, *wiring_seed = NULL, *frozen = NULL, *init = NULL, *init_scale = NULL,
             *seed = NULL, *source = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|i$iLdOOOOOOOOOOOO:ConvNetwork", kwlist, &layers_obj,
                                     &shape_obj, &regime, &arch, &classes, &width_scale, &activation, &gate,
                                     &beta, &value_input, &perm, &wiring, &wiring_seed, &frozen, &init,
                                     &init_scale, &seed, &source))
        return -1;
    if (self->net != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ConvNetwork.__init__: already initialised");
        return -1;
    }
    Py_ssize_t n_layers = 0, n_shape = 0, n_perm = 0;
    gn_layer_spec *layers = NULL;
    int64_t *shape = NULL, *permutation = NULL;
    int rc = -1;
    shape = gnpy_int64_list(shape_obj, "input_shape", &n_shape);
    if (shape == NULL) goto done;
    if (n_shape != 3) {
        PyErr_Format(PyExc_ValueError, "input_shape: expected (channels, height, width), got %zd entries", n_shape);
        goto done;
    }
    if (layers_obj == Py_None) {
        if (arch < 0) {
            PyErr_SetString(PyExc_ValueError, "layers: None needs an architecture (arch)");
            goto done;
        }
    } else {
        layers = layer_list(layers_obj, &n_layers);
        if (layers == NULL) goto done;
    }
    gn_conv_network_spec spec;
    gn_status s = gn_conv_network_spec_init(&spec, (gn_regime)regime, shape[0], shape[1], shape[2], n_layers, layers);
    if (s != GN_OK) { gnpy_raise(s); goto done; }
    int act = spec.feature_activation, gk = spec.gate_kind, vi = spec.value_input, ik = spec.init,
        wr = spec.wiring;
    if (gnpy_opt_int(activation, "activation", &act) < 0 || gnpy_opt_int(gate, "gate", &gk) < 0 ||
        gnpy_opt_float(beta, "beta", &spec.beta) < 0 || gnpy_opt_int(value_input, "value_input", &vi) < 0 ||
        gnpy_opt_int(wiring, "wiring", &wr) < 0 || gnpy_opt_uint64(wiring_seed, "wiring_seed", &spec.wiring_seed) < 0 ||
        gnpy_opt_bool(frozen, &spec.feature_frozen) < 0 || gnpy_opt_int(init, "init", &ik) < 0 ||
        gnpy_opt_float(init_scale, "init_scale", &spec.init_scale) < 0 || gnpy_opt_uint64(seed, "seed", &spec.seed) < 0)
        goto done;
    spec.feature_activation = (gn_activation)act;
    spec.gate_kind = (gn_gate_kind)gk;
    spec.value_input = (gn_value_input)vi;
    spec.init = (gn_init_kind)ik;
    spec.wiring = (gn_gate_wiring)wr;
    if (perm != NULL && perm != Py_None) {
        permutation = gnpy_int64_list(perm, "permutation", &n_perm);
        if (permutation == NULL) goto done;
        /* The library reads one entry per gated layer; count them first so it never reads past
         * the array (named architectures: ask the library for the list). */
        int64_t gated = 0;
        gn_layer_spec *ls = layers;
        int64_t nl = n_layers;
        gn_layer_spec *named = NULL;
        if (layers_obj == Py_None) {
            int64_t cnt = 0;
            s = gn_conv_architecture_layers((gn_conv_architecture)arch, classes, (float)width_scale, NULL, 0, &cnt);
            if (s != GN_OK) { gnpy_raise(s); goto done; }
            named = PyMem_Calloc((size_t)(cnt > 0 ? cnt : 1), sizeof(gn_layer_spec));
            if (named == NULL) { PyErr_NoMemory(); goto done; }
            s = gn_conv_architecture_layers((gn_conv_architecture)arch, classes, (float)width_scale, named, cnt, &cnt);
            if (s != GN_OK) { PyMem_Free(named); gnpy_raise(s); goto done; }
            ls = named;
            nl = cnt;
        }
        for (int64_t i = 0; i < nl; i++)
            if (ls[i].kind == GN_LAYER_CONV || (ls[i].kind == GN_LAYER_DENSE && i < nl - 1)) gated++;
        PyMem_Free(named);
        if ((int64_t)n_perm != gated) {
            PyErr_Format(PyExc_ValueError, "permutation: got %zd entries, need %lld (one per gated layer)", n_perm,
                         (long long)gated);
            goto done;
        }
        spec.permutation = permutation;
    }
    GNPy_Handle *src = NULL;
    if (gnpy_begin_gate_source(self, source, &src) < 0) goto done;
    if (src != NULL) spec.gate_source = src->net;
    gn_conv_network *net = NULL;
    Py_BEGIN_ALLOW_THREADS
    if (layers_obj == Py_None)
        s = gn_conv_network_create_named((gn_conv_architecture)arch, classes, (float)width_scale, &spec, &net);
    else
        s = gn_conv_network_create(&spec, &net);
    Py_END_ALLOW_THREADS
    if (src != NULL) gnpy_end(src);
    if (s != GN_OK) { gnpy_raise(s); goto done; }
    self->net = net;
    rc = 0;
done:
    PyMem_Free(layers);
    PyMem_Free(shape);
    PyMem_Free(permutation);
    return rc;
}

static PyObject *conv_architecture_layers(PyObject *cls, PyObject *args) {
    (void)cls;
    int arch;
    long long classes;
    double width_scale = 1.0;
    if (!PyArg_ParseTuple(args, "iL|d:architecture_layers", &arch, &classes, &width_scale)) return NULL;
    int64_t n = 0;
    gn_status s = gn_conv_architecture_layers((gn_conv_architecture)arch, classes, (float)width_scale, NULL, 0, &n);
    if (s != GN_OK) return gnpy_raise(s);
    gn_layer_spec *layers = PyMem_Calloc((size_t)(n > 0 ? n : 1), sizeof(gn_layer_spec));
    if (layers == NULL) return PyErr_NoMemory();
    PyObject *list = NULL;
    s = gn_conv_architecture_layers((gn_conv_architecture)arch, classes, (float)width_scale, layers, n, &n);
    if (s != GN_OK) { gnpy_raise(s); goto done; }
    if ((list = PyList_New((Py_ssize_t)n)) == NULL) goto done;
    for (int64_t i = 0; i < n; i++) {
        PyObject *t = layer_tuple(&layers[i]);
        if (t == NULL) { Py_CLEAR(list); goto done; }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
done:
    PyMem_Free(layers);
    return list;
}

/* ---- small queries -------------------------------------------------------------------------- */

static int get_info(GNPy_ConvNetwork *self, gn_conv_network_info *info) {
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
    gn_status s = gn_conv_network_get_info(self->net, info);
    if (s != GN_OK) { gnpy_raise(s); return -1; }
    return 0;
}

/* x as (n, H*W*C), (n, H, W, C) or, for one channel, (n, H, W). */
static int conv_input(PyObject *obj, const char *name, const gn_conv_network_info *info, gnpy_input *in) {
    if (gnpy_input_f32_matrix(obj, name, (Py_ssize_t)info->input_size, in) < 0) return -1;
    const Py_buffer *v = &in->view;
    if (!in->has_view || v->ndim == 2) return 0;
    int ok = (v->ndim == 4 && v->shape[1] == info->in_height && v->shape[2] == info->in_width &&
              v->shape[3] == info->in_channels) ||
             (v->ndim == 3 && info->in_channels == 1 && v->shape[1] == info->in_height &&
              v->shape[2] == info->in_width);
    if (ok) return 0;
    PyObject *t = PyTuple_New(v->ndim);
    for (int i = 0; t != NULL && i < v->ndim; i++) {
        PyObject *d = PyLong_FromSsize_t(v->shape[i]);
        if (d == NULL) { Py_CLEAR(t); break; }
        PyTuple_SET_ITEM(t, i, d);
    }
    if (t != NULL) {
        PyErr_Format(PyExc_ValueError,
                     "%s: expected NHWC images of shape (n, %lld, %lld, %lld) or rows of shape (n, %lld), got "
                     "shape %R (channels last: H, W, C)",
                     name, (long long)info->in_height, (long long)info->in_width, (long long)info->in_channels,
                     (long long)info->input_size, t);
        Py_DECREF(t);
    }
    gnpy_input_release(in);
    return -1;
}

static int conv_batch_input(GNPy_Handle *self, PyObject *obj, const char *name, gnpy_input *in) {
    gn_conv_network_info info;
    if (get_info(self, &info) < 0) return -1;
    return conv_input(obj, name, &info, in);
}

static PyObject *conv_info(GNPy_ConvNetwork *self, PyObject *unused) {
    (void)unused;
    if (gnpy_begin(self) < 0) return NULL;
    PyObject *d = NULL, *shapes = NULL;
    gn_conv_network_info info;
    if (get_info(self, &info) < 0) goto fail;
    shapes = PyTuple_New((Py_ssize_t)info.n_gated);
    if (shapes == NULL) goto fail;
    for (int64_t l = 0; l < info.n_gated; l++) {
        int64_t h = 0, w = 0, c = 0;
        gn_status s = gn_conv_network_gated_shape(self->net, l, &h, &w, &c);
        if (s != GN_OK) { gnpy_raise(s); goto fail; }
        PyObject *t = Py_BuildValue("(LLL)", (long long)h, (long long)w, (long long)c);
        if (t == NULL) goto fail;
        PyTuple_SET_ITEM(shapes, (Py_ssize_t)l, t);
    }
    d = PyDict_New();
    if (d == NULL) goto fail;
    SET_ITEM(d, "regime", PyLong_FromLong(info.regime));
    SET_ITEM(d, "input_shape", Py_BuildValue("(LLL)", (long long)info.in_channels, (long long)info.in_height,
                                             (long long)info.in_width));
    SET_ITEM(d, "input_size", PyLong_FromLongLong(info.input_size));
    SET_ITEM(d, "output_size", PyLong_FromLongLong(info.output_size));
    SET_ITEM(d, "n_gated", PyLong_FromLongLong(info.n_gated));
    SET_ITEM(d, "gated_shapes", (Py_INCREF(shapes), shapes));
    SET_ITEM(d, "n_blocks", PyLong_FromLongLong(info.n_blocks));
    GNPY_SET_GATE_ITEMS(d, info);
    SET_ITEM(d, "wiring", PyLong_FromLong(info.wiring));
    GNPY_SET_STATE_ITEMS(d, info);
    Py_DECREF(shapes);
    gnpy_end(self);
    return d;
fail:
    Py_XDECREF(d);
    Py_XDECREF(shapes);
    gnpy_end(self);
    return NULL;
}

/* ---- parameters ------------------------------------------------------------------------------ */

static PyObject *conv_tensor_count(GNPy_ConvNetwork *self, PyObject *unused) {
    (void)unused;
    if (gnpy_begin(self) < 0) return NULL;
    int64_t n = 0;
    gn_status s = gn_conv_network_tensor_count(self->net, &n);
    gnpy_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    return PyLong_FromLongLong(n);
}

static PyObject *conv_tensor_info(GNPy_ConvNetwork *self, PyObject *args) {
    long long index;
    if (!PyArg_ParseTuple(args, "L:tensor_info", &index)) return NULL;
    if (gnpy_begin(self) < 0) return NULL;
    char name[128];
    int64_t rows = 0, cols = 0;
    gn_status s = gn_conv_network_tensor_info(self->net, index, name, sizeof name, &rows, &cols);
    gnpy_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    return Py_BuildValue("(sLL)", name, (long long)rows, (long long)cols);
}

static PyObject *conv_get_tensor(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"index", "out", NULL};
    long long index;
    PyObject *out = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "L|O:get_tensor", kwlist, &index, &out)) return NULL;
    if (gnpy_begin(self) < 0) return NULL;
    int64_t rows = 0, cols = 0;
    gn_status s = gn_conv_network_tensor_info(self->net, index, NULL, 0, &rows, &cols);
    if (s != GN_OK) { gnpy_end(self); return gnpy_raise(s); }
    Py_ssize_t shape[2] = {(Py_ssize_t)rows, (Py_ssize_t)cols};
    gnpy_output o;
    if (gnpy_output_prepare(out, "out", 'f', 2, shape, 0, &o) < 0) { gnpy_end(self); return NULL; }
    s = gn_conv_network_get_tensor(self->net, index, o.data, o.capacity);
    gnpy_end(self);
    return gnpy_output_status(&o, s);
}

static PyObject *conv_set_tensor(GNPy_ConvNetwork *self, PyObject *args) {
    long long index;
    PyObject *values;
    if (!PyArg_ParseTuple(args, "LO:set_tensor", &index, &values)) return NULL;
    if (gnpy_begin(self) < 0) return NULL;
    int64_t rows = 0, cols = 0;
    gn_status s = gn_conv_network_tensor_info(self->net, index, NULL, 0, &rows, &cols);
    if (s != GN_OK) { gnpy_end(self); return gnpy_raise(s); }
    gnpy_input in;
    if (gnpy_input_f32_flat(values, "values", (Py_ssize_t)(rows * cols), &in) < 0) { gnpy_end(self); return NULL; }
    s = gn_conv_network_set_tensor(self->net, index, in.data, rows * cols);
    gnpy_input_release(&in);
    gnpy_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    Py_RETURN_NONE;
}

/* ---- inference ------------------------------------------------------------------------------ */

static PyObject *predict_common(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs, int classes) {
    static char *kwlist[] = {"x", "out", NULL};
    PyObject *x_obj, *out = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$O:predict", kwlist, &x_obj, &out)) return NULL;
    if (gnpy_begin(self) < 0) return NULL;
    gn_conv_network_info info;
    gnpy_input x = {0};
    gnpy_output o = {0};
    PyObject *r = NULL;
    if (get_info(self, &info) < 0) goto done;
    if (conv_input(x_obj, "x", &info, &x) < 0) goto done;
    Py_ssize_t shape[2] = {x.rows, (Py_ssize_t)info.output_size};
    if (gnpy_output_prepare(out, "out", classes ? 'i' : 'f', classes ? 1 : 2, shape, 0, &o) < 0) goto done;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    if (classes) s = gn_conv_network_predict_classes(self->net, x.data, x.rows, o.data, o.capacity);
    else s = gn_conv_network_predict(self->net, x.data, x.rows, o.data, o.capacity);
    Py_END_ALLOW_THREADS
    r = gnpy_output_status(&o, s);
done:
    gnpy_input_release(&x);
    gnpy_end(self);
    return r;
}

static PyObject *conv_predict(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    return predict_common(self, args, kwargs, 0);
}

static PyObject *conv_predict_classes(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    return predict_common(self, args, kwargs, 1);
}

/* ---- gates and kernels ---------------------------------------------------------------------- */

/* gnpy_output_prepare words its shape message for 1-D / 2-D outputs; name the 4-D shape here. */
static int out_shape_check(PyObject *out, const Py_ssize_t *shape) {
    Py_buffer v;
    if (PyObject_GetBuffer(out, &v, PyBUF_STRIDES) < 0) {
        PyErr_Clear();
        return 0; /* gnpy_output_prepare reports it */
    }
    int ok = v.ndim == 4;
    for (int d = 0; ok && d < 4; d++) ok = v.shape[d] == shape[d];
    if (!ok) {
        PyObject *t = PyTuple_New(v.ndim);
        for (int d = 0; t != NULL && d < v.ndim; d++) {
            PyObject *e = PyLong_FromSsize_t(v.shape[d]);
            if (e == NULL) { Py_CLEAR(t); break; }
            PyTuple_SET_ITEM(t, d, e);
        }
        if (t != NULL) {
            PyErr_Format(PyExc_ValueError, "out: expected shape (%zd, %zd, %zd, %zd), got shape %R", shape[0],
                         shape[1], shape[2], shape[3], t);
            Py_DECREF(t);
        }
    }
    PyBuffer_Release(&v);
    return ok ? 0 : -1;
}

/* What a per-gated-layer tensor call asks for: the wired or own gates, or a hidden state. */
typedef struct {
    int hidden;           /* 0: gn_conv_network_gates, 1: gn_conv_network_hidden_state */
    int wired;            /* gates */
    gn_part part;         /* hidden state */
    gn_hidden_kind kind;  /* hidden state */
} layer_tensor_request;

/* One n x height x width x channels float tensor of gated layer `layer` for x: shapes, the
 * output buffer and the GIL handled once for gates and hidden states. */
static PyObject *conv_layer_tensor(GNPy_ConvNetwork *self, PyObject *x_obj, long long layer, PyObject *out,
                                   layer_tensor_request req) {
    if (gnpy_begin(self) < 0) return NULL;
    gn_conv_network_info info;
    gnpy_input x = {0};
    gnpy_output o = {0};
    PyObject *r = NULL;
    int64_t h = 0, w = 0, c = 0;
    gn_status s;
    if (get_info(self, &info) < 0) goto done;
    if ((s = gn_conv_network_gated_shape(self->net, layer, &h, &w, &c)) != GN_OK) { gnpy_raise(s); goto done; }
    if (conv_input(x_obj, "x", &info, &x) < 0) goto done;
    Py_ssize_t shape[4] = {x.rows, (Py_ssize_t)h, (Py_ssize_t)w, (Py_ssize_t)c};
    if (out != Py_None && out_shape_check(out, shape) < 0) goto done;
    if (gnpy_output_prepare(out, "out", 'f', 4, shape, 0, &o) < 0) goto done;
    Py_BEGIN_ALLOW_THREADS
    if (req.hidden)
        s = gn_conv_network_hidden_state(self->net, x.data, x.rows, req.part, layer, req.kind, o.data, o.capacity);
    else
        s = gn_conv_network_gates(self->net, x.data, x.rows, layer, req.wired, o.data, o.capacity);
    Py_END_ALLOW_THREADS
    r = gnpy_output_status(&o, s);
done:
    gnpy_input_release(&x);
    gnpy_end(self);
    return r;
}

static PyObject *conv_gates(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x", "layer", "wired", "out", NULL};
    PyObject *x_obj, *out = Py_None;
    long long layer;
    int wired = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OL|pO:gates", kwlist, &x_obj, &layer, &wired, &out))
        return NULL;
    layer_tensor_request req = {0, wired, GN_PART_FEATURE, GN_HIDDEN_PRE_ACTIVATION};
    return conv_layer_tensor(self, x_obj, layer, out, req);
}

static PyObject *conv_hidden_state(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x", "part", "layer", "kind", "out", NULL};
    PyObject *x_obj, *out = Py_None;
    int part, kind;
    long long layer;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OiLi|O:hidden_state", kwlist, &x_obj, &part, &layer, &kind, &out))
        return NULL;
    layer_tensor_request req = {1, 0, (gn_part)part, (gn_hidden_kind)kind};
    return conv_layer_tensor(self, x_obj, layer, out, req);
}

/* progress(fraction) after a block, then a Ctrl-C check; -1 (exception set) to stop, with
 * CancelledError when the callback returned a falsy value other than None. */
static int block_progress(PyObject *progress, double fraction) {
    PyObject *f = PyFloat_FromDouble(fraction);
    if (f == NULL) return -1;
    PyObject *r = PyObject_CallOneArg(progress, f);
    Py_DECREF(f);
    if (r == NULL) return -1;
    int stop = 0;
    if (r != Py_None) {
        int t = PyObject_IsTrue(r);
        if (t < 0) { Py_DECREF(r); return -1; }
        stop = !t;
    }
    Py_DECREF(r);
    if (stop) {
        gnpy_raise_msg(GN_ERR_CANCELLED, "kernel: cancelled by the progress callback");
        return -1;
    }
    return PyErr_CheckSignals();
}

/* conv_kernel with out_transposed: one gn_conv_network_kernel_compute call that writes both
 * outputs, progress (may be NULL) once per tile through opts.progress. */
static PyObject *conv_kernel_transposed(GNPy_ConvNetwork *self, int kind, PyObject *xa_obj, PyObject *xb_obj,
                                        PyObject *out, PyObject *out_t, PyObject *progress) {
    if (gnpy_begin(self) < 0) return NULL;
    gnpy_input xa = {0}, xb = {0};
    const gnpy_input *b;
    gnpy_output o = {0}, ot = {0};
    PyObject *r = NULL;
    if (gnpy_input_pair(self, xa_obj, xb_obj, &xa, &xb, &b) < 0) goto done;
    Py_ssize_t shape[2] = {xa.rows, b->rows}, shape_t[2] = {b->rows, xa.rows};
    if (gnpy_output_prepare(out, "out", 'f', 2, shape, 1, &o) < 0) goto done;
    if (gnpy_output_prepare(out_t, "out_transposed", 'f', 2, shape_t, 1, &ot) < 0) goto done;
    gn_kernel_options opts;
    gn_kernel_options_init(&opts);
    opts.out_transposed = ot.data;
    opts.ld_transposed = ot.ld;
    opts.capacity_transposed = ot.capacity;
    gnpy_callback_context ctx = {0};
    gnpy_kernel_call_begin(&ctx, progress, &opts.progress, &opts.progress_user);
    gn_status s = gn_conv_network_kernel_compute(self->net, (gn_conv_kernel_kind)kind, xa.data, xa.rows,
                                                 xb_obj == Py_None ? NULL : b->data, b->rows, &opts, o.data, o.ld,
                                                 o.capacity);
    r = gnpy_kernel_call_end(&ctx, s, &o);
done:
    gnpy_output_finish(&o, 0);
    gnpy_output_finish(&ot, 0);
    gnpy_input_release(&xa);
    gnpy_input_release(&xb);
    gnpy_end(self);
    return r;
}

/* With a progress callback the kernel is computed by blocks of rows (about 32 blocks), the
 * callback called after each: symmetric kernels take the rows' upper part (columns from the
 * block's first row on) and mirror it, so no pair is computed twice outside the diagonal
 * blocks. The trace-normalised kind needs the trace over all of xa: one call, one report. */
static PyObject *conv_kernel(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"kind", "xa", "xb", "out", "progress", "out_transposed", NULL};
    int kind;
    PyObject *xa_obj, *xb_obj = Py_None, *out = Py_None, *progress = Py_None, *out_t = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iO|OOOO:kernel", kwlist, &kind, &xa_obj, &xb_obj, &out, &progress,
                                     &out_t))
        return NULL;
    if (progress == Py_None && out_t == Py_None) return gnpy_kernel_matrix(self, kind, 0, xa_obj, xb_obj, out);
    if (progress != Py_None && !PyCallable_Check(progress)) {
        PyErr_Format(PyExc_TypeError, "progress: expected a callable, got %.100s", Py_TYPE(progress)->tp_name);
        return NULL;
    }
    if (out_t != Py_None)
        return conv_kernel_transposed(self, kind, xa_obj, xb_obj, out, out_t, progress == Py_None ? NULL : progress);
    if (gnpy_begin(self) < 0) return NULL;
    gnpy_input xa = {0}, xb = {0};
    const gnpy_input *b;
    gnpy_output o = {0};
    PyObject *r = NULL;
    int ok = 0;
    if (gnpy_input_pair(self, xa_obj, xb_obj, &xa, &xb, &b) < 0) goto done;
    Py_ssize_t shape[2] = {xa.rows, b->rows};
    if (gnpy_output_prepare(out, "out", 'f', 2, shape, 1, &o) < 0) goto done;
    const float *xa_data = xa.data, *xb_data = b->data;
    float *dst = o.data;
    int64_t n_a = xa.rows, n_b = b->rows, ld = o.ld, d = xa.cols;
    int symmetric = xb_obj == Py_None;
    int64_t step = kind == GN_CONV_KERNEL_NPK_TRACE_NORMALIZED ? n_a : (n_a + 31) / 32;
    gn_status s = GN_OK;
    for (int64_t r0 = 0; r0 < n_a; r0 += step) {
        int64_t rows = n_a - r0 < step ? n_a - r0 : step;
        int64_t c0 = symmetric && step < n_a ? r0 : 0;
        const float *a = xa_data + r0 * d;
        const float *bb = symmetric && step >= n_a ? a : xb_data + c0 * d;
        float *corner = dst + r0 * ld + c0;
        int64_t cap = (rows - 1) * ld + (n_b - c0);
        Py_BEGIN_ALLOW_THREADS
        s = gn_conv_network_kernel(self->net, (gn_conv_kernel_kind)kind, a, rows, bb, n_b - c0, corner, ld, cap);
        Py_END_ALLOW_THREADS
        if (s != GN_OK) { gnpy_raise(s); goto done; }
        if (symmetric && step < n_a)
            for (int64_t i = r0; i < r0 + rows; i++)
                for (int64_t j = r0 + rows; j < n_a; j++) dst[j * ld + i] = dst[i * ld + j];
        double done_pairs = (double)(r0 + rows), total = (double)n_a;
        if (symmetric) { /* upper-triangle work: rows r0.. take n - r0 columns */
            done_pairs = (double)(r0 + rows) * (double)n_a - 0.5 * (double)(r0 + rows) * (double)(r0 + rows - 1);
            total = 0.5 * (double)n_a * (double)(n_a + 1);
        }
        if (block_progress(progress, done_pairs / total > 1 ? 1 : done_pairs / total) < 0) goto done;
    }
    ok = 1;
done:
    r = gnpy_output_finish(&o, ok);
    gnpy_input_release(&xa);
    gnpy_input_release(&xb);
    gnpy_end(self);
    return r;
}

static PyObject *conv_tensor_layer(GNPy_ConvNetwork *self, PyObject *args) {
    long long index;
    if (!PyArg_ParseTuple(args, "L:tensor_layer", &index)) return NULL;
    if (gnpy_begin(self) < 0) return NULL;
    int64_t layer = 0;
    int projection = 0;
    gn_status s = gn_conv_network_tensor_layer(self->net, index, &layer, &projection);
    gnpy_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    return Py_BuildValue("(LO)", (long long)layer, projection ? Py_True : Py_False);
}

/* ---- type ------------------------------------------------------------------------------------ */

static PyMethodDef conv_methods[] = {
    GNPY_HANDLE_METHODS,
    {"_info", (PyCFunction)conv_info, METH_NOARGS, "_info() -> dict of gn_conv_network_info (enums as ints)."},
    {"_architecture_layers", (PyCFunction)conv_architecture_layers, METH_VARARGS | METH_STATIC,
     "_architecture_layers(arch, classes, width_scale=1.0) -> list of 7-int layer tuples"},
    {"copy_feature_weights", (PyCFunction)(void (*)(void))gnpy_handle_copy_feature_weights,
     METH_VARARGS | METH_KEYWORDS,
     "copy_feature_weights(source, freeze=True)\n\nCopy the feature (gating) weights of `source` (e.g. a "
     "trained ReLU conv net) into this network and freeze them if `freeze`. Layer shapes must agree."},
    {"tensor_count", (PyCFunction)conv_tensor_count, METH_NOARGS,
     "tensor_count() -> int\n\nNumber of parameter tensors (feature net, then value net)."},
    {"_tensor_info", (PyCFunction)conv_tensor_info, METH_VARARGS, "_tensor_info(index) -> (name, rows, cols)"},
    {"_get_tensor", (PyCFunction)(void (*)(void))conv_get_tensor, METH_VARARGS | METH_KEYWORDS,
     "_get_tensor(index, out=None) -> Buffer (rows, cols)"},
    {"_set_tensor", (PyCFunction)conv_set_tensor, METH_VARARGS, "_set_tensor(index, values)"},
    {"predict", (PyCFunction)(void (*)(void))conv_predict, METH_VARARGS | METH_KEYWORDS,
     "predict($self, x, *, out=None)\n--\n\nReturns a Buffer. Outputs (logits), shape (n, output_size) float32. x: (n, H, W, C) "
     "NHWC or (n, H*W*C)."},
    {"predict_classes", (PyCFunction)(void (*)(void))conv_predict_classes, METH_VARARGS | METH_KEYWORDS,
     "predict_classes($self, x, *, out=None)\n--\n\nReturns a Buffer. Arg-max class per row (int32, shape (n,))."},
    {"_gates", (PyCFunction)(void (*)(void))conv_gates, METH_VARARGS | METH_KEYWORDS,
     "_gates(x, layer, wired=False, out=None) -> Buffer (n, H, W, C)"},
    {"_kernel", (PyCFunction)(void (*)(void))conv_kernel, METH_VARARGS | METH_KEYWORDS,
     "_kernel(kind, xa, xb=None, out=None, progress=None, out_transposed=None) -> Buffer"},
    {"_hidden_state", (PyCFunction)(void (*)(void))conv_hidden_state, METH_VARARGS | METH_KEYWORDS,
     "_hidden_state(x, part, layer, kind, out=None) -> Buffer (n, H, W, C)"},
    {"_tensor_layer", (PyCFunction)conv_tensor_layer, METH_VARARGS,
     "_tensor_layer(index) -> (layer-list position, is_projection)"},
    GNPY_HANDLE_FILE_METHODS("ConvNetwork", conv_ops,
                             "Write a versioned, checksummed conv network file atomically. Raises FileError.",
                             " (also for a gatednet.Network file)"),
    {NULL, NULL, 0, NULL},
};

PyTypeObject GNPy_ConvNetworkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gatednet._core.ConvNetwork",
    .tp_doc = "Low-level wrapper of one gn_conv_network handle; use gatednet.ConvNetwork.",
    .tp_methods = conv_methods,
    .tp_init = (initproc)conv_init,
    .tp_new = conv_new,
    GNPY_HANDLE_TYPE_SLOTS,
};
