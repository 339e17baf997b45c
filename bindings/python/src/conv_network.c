/* gatednet._core.ConvNetwork: one gn_conv_network handle, a lock, and methods that map 1:1
 * onto the conv section of the C ABI. Enumerations are plain ints here; gatednet/__init__.py
 * maps names onto them and turns layer descriptions into the 7-int tuples taken below.
 *
 * Concurrency as in network.c: every call takes the object's lock and releases the GIL around
 * the library call; a call on the network from inside its own fit() callback raises
 * GatedNetError instead of deadlocking.
 *
 * Input arrays: (n, H*W*C) rows, (n, H, W, C) NHWC images, or (n, H, W) when C == 1. A 4-D
 * array of another shape (e.g. NCHW) is rejected even if its size matches. */
#include "gatednet_py.h"

#include <math.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    gn_conv_network *net;       /* NULL once closed */
    PyThread_type_lock lock;    /* held for the duration of each call */
    unsigned long owner;        /* thread ident holding `lock`, 0 if none (read under the GIL) */
    PyObject *weakrefs;
} GNPy_ConvNetwork;

/* ---- lifecycle and locking --------------------------------------------------------------- */

static PyObject *conv_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    (void)args;
    (void)kwargs;
    GNPy_ConvNetwork *self = (GNPy_ConvNetwork *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->net = NULL;
    self->owner = 0;
    self->weakrefs = NULL;
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void conv_dealloc(GNPy_ConvNetwork *self) {
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs((PyObject *)self);
    gn_conv_network_free(self->net);
    self->net = NULL;
    if (self->lock != NULL) PyThread_free_lock(self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int acquire_one(GNPy_ConvNetwork *self) {
    unsigned long me = PyThread_get_thread_ident();
    if (self->owner == me) {
        PyErr_SetString(GNPy_Error,
                        "network is busy in this thread: a fit() callback may not use the network "
                        "it is called for");
        return -1;
    }
    if (!PyThread_acquire_lock(self->lock, NOWAIT_LOCK)) {
        for (;;) {
            PyLockStatus r;
            Py_BEGIN_ALLOW_THREADS
            r = PyThread_acquire_lock_timed(self->lock, 100000, 0);
            Py_END_ALLOW_THREADS
            if (r == PY_LOCK_ACQUIRED) break;
            if (PyErr_CheckSignals() < 0) return -1;
        }
    }
    self->owner = me;
    return 0;
}

static void release_one(GNPy_ConvNetwork *self) {
    self->owner = 0;
    PyThread_release_lock(self->lock);
}

static int net_begin(GNPy_ConvNetwork *self) {
    if (self->net == NULL) {
        gnpy_raise_msg(GN_ERR_INVALID_HANDLE, "network is closed");
        return -1;
    }
    if (acquire_one(self) < 0) return -1;
    if (self->net == NULL) {
        release_one(self);
        gnpy_raise_msg(GN_ERR_INVALID_HANDLE, "network is closed");
        return -1;
    }
    return 0;
}

static void net_end(GNPy_ConvNetwork *self) { release_one(self); }

static int net_begin2(GNPy_ConvNetwork *a, GNPy_ConvNetwork *b) {
    if (a == b) return net_begin(a);
    GNPy_ConvNetwork *first = a < b ? a : b, *second = a < b ? b : a;
    if (net_begin(first) < 0) return -1;
    if (net_begin(second) < 0) {
        net_end(first);
        return -1;
    }
    return 0;
}

static void net_end2(GNPy_ConvNetwork *a, GNPy_ConvNetwork *b) {
    net_end(a);
    if (a != b) net_end(b);
}

static PyObject *wrap_conv(PyTypeObject *type, gn_conv_network *net) {
    PyObject *obj = conv_new(type, NULL, NULL);
    if (obj == NULL) {
        gn_conv_network_free(net);
        return NULL;
    }
    ((GNPy_ConvNetwork *)obj)->net = net;
    return obj;
}

/* ---- small conversions -------------------------------------------------------------------- */

static int opt_int(PyObject *o, const char *name, int *out) {
    if (o == NULL || o == Py_None) return 0;
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: expected an int, got %.100s", name, Py_TYPE(o)->tp_name);
        }
        return -1;
    }
    if (v < INT32_MIN || v > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: %ld out of range", name, v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int opt_bool(PyObject *o, int *out) {
    if (o == NULL || o == Py_None) return 0;
    int t = PyObject_IsTrue(o);
    if (t < 0) return -1;
    *out = t;
    return 0;
}

static int opt_float(PyObject *o, const char *name, float *out) {
    if (o == NULL || o == Py_None) return 0;
    double d = PyFloat_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: expected a number, got %.100s", name, Py_TYPE(o)->tp_name);
        }
        return -1;
    }
    *out = (float)d;
    return 0;
}

static int opt_int64(PyObject *o, const char *name, int64_t *out) {
    if (o == NULL || o == Py_None) return 0;
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: expected an int, got %.100s", name, Py_TYPE(o)->tp_name);
        }
        return -1;
    }
    *out = v;
    return 0;
}

static int opt_uint64(PyObject *o, const char *name, uint64_t *out) {
    if (o == NULL || o == Py_None) return 0;
    PyObject *i = PyNumber_Index(o);
    if (i == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected an int, got %.100s", name, Py_TYPE(o)->tp_name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(i);
    Py_DECREF(i);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s: expected an int in [0, 2**64)", name);
        return -1;
    }
    *out = v;
    return 0;
}

/* A sequence of ints into a fresh int64 array of `count` entries (caller frees). */
static int64_t *int64_list(PyObject *seq_obj, const char *name, Py_ssize_t *count) {
    PyObject *seq = PySequence_Fast(seq_obj, "");
    if (seq == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected a sequence of ints, got %.100s", name,
                     Py_TYPE(seq_obj)->tp_name);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int64_t *a = PyMem_Malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    if (a == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyIndex_Check(item)) {
            PyErr_Format(PyExc_TypeError, "%s[%zd]: expected an int, got %.100s", name, i, Py_TYPE(item)->tp_name);
            goto fail;
        }
        long long v = PyLong_AsLongLong(item);
        if (v == -1 && PyErr_Occurred()) goto fail;
        a[i] = v;
    }
    Py_DECREF(seq);
    *count = n;
    return a;
fail:
    Py_DECREF(seq);
    PyMem_Free(a);
    return NULL;
}

/* layers: a sequence of (kind, units, kernel, stride, padding, bias, block) int tuples. */
static gn_layer_spec *layer_list(PyObject *obj, Py_ssize_t *count) {
    PyObject *seq = PySequence_Fast(obj, "");
    if (seq == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "layers: expected a sequence of layers, got %.100s", Py_TYPE(obj)->tp_name);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    gn_layer_spec *a = PyMem_Calloc((size_t)(n > 0 ? n : 1), sizeof(gn_layer_spec));
    if (a == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        char name[48];
        snprintf(name, sizeof name, "layers[%zd]", i);
        Py_ssize_t k = 0;
        int64_t *f = int64_list(PySequence_Fast_GET_ITEM(seq, i), name, &k);
        if (f == NULL) goto fail;
        if (k != 7) {
            PyMem_Free(f);
            PyErr_Format(PyExc_ValueError, "%s: expected 7 ints (kind, units, kernel, stride, padding, bias, "
                         "block), got %zd", name, k);
            goto fail;
        }
        if (f[0] < 0 || f[0] > INT32_MAX || f[4] < 0 || f[4] > INT32_MAX) {
            PyMem_Free(f);
            PyErr_Format(PyExc_ValueError, "%s: kind or padding out of range", name);
            goto fail;
        }
        a[i].kind = (gn_layer_kind)f[0];
        a[i].units = f[1];
        a[i].kernel = f[2];
        a[i].stride = f[3];
        a[i].padding = (gn_padding)f[4];
        a[i].bias = f[5] != 0;
        a[i].block = f[6];
        PyMem_Free(f);
    }
    Py_DECREF(seq);
    *count = n;
    return a;
fail:
    Py_DECREF(seq);
    PyMem_Free(a);
    return NULL;
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
    shape = int64_list(shape_obj, "input_shape", &n_shape);
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
    if (opt_int(activation, "activation", &act) < 0 || opt_int(gate, "gate", &gk) < 0 ||
        opt_float(beta, "beta", &spec.beta) < 0 || opt_int(value_input, "value_input", &vi) < 0 ||
        opt_int(wiring, "wiring", &wr) < 0 || opt_uint64(wiring_seed, "wiring_seed", &spec.wiring_seed) < 0 ||
        opt_bool(frozen, &spec.feature_frozen) < 0 || opt_int(init, "init", &ik) < 0 ||
        opt_float(init_scale, "init_scale", &spec.init_scale) < 0 || opt_uint64(seed, "seed", &spec.seed) < 0)
        goto done;
    spec.feature_activation = (gn_activation)act;
    spec.gate_kind = (gn_gate_kind)gk;
    spec.value_input = (gn_value_input)vi;
    spec.init = (gn_init_kind)ik;
    spec.wiring = (gn_gate_wiring)wr;
    if (perm != NULL && perm != Py_None) {
        permutation = int64_list(perm, "permutation", &n_perm);
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
    GNPy_ConvNetwork *src = NULL;
    if (source != NULL && source != Py_None) {
        if (!PyObject_TypeCheck(source, &GNPy_ConvNetworkType)) {
            PyErr_Format(PyExc_TypeError, "gate_source: expected a gatednet.ConvNetwork, got %.100s",
                         Py_TYPE(source)->tp_name);
            goto done;
        }
        src = (GNPy_ConvNetwork *)source;
        if (net_begin(src) < 0) goto done;
        spec.gate_source = src->net;
    }
    gn_conv_network *net = NULL;
    Py_BEGIN_ALLOW_THREADS
    if (layers_obj == Py_None)
        s = gn_conv_network_create_named((gn_conv_architecture)arch, classes, (float)width_scale, &spec, &net);
    else
        s = gn_conv_network_create(&spec, &net);
    Py_END_ALLOW_THREADS
    if (src != NULL) net_end(src);
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

static PyObject *conv_close(GNPy_ConvNetwork *self, PyObject *unused) {
    (void)unused;
    if (self->net == NULL) Py_RETURN_NONE;
    if (acquire_one(self) < 0) return NULL;
    gn_conv_network_free(self->net);
    self->net = NULL;
    release_one(self);
    Py_RETURN_NONE;
}

static PyObject *conv_get_closed(GNPy_ConvNetwork *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(self->net == NULL);
}

static PyObject *conv_enter(GNPy_ConvNetwork *self, PyObject *unused) {
    (void)unused;
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *conv_exit(GNPy_ConvNetwork *self, PyObject *args) {
    (void)args;
    PyObject *r = conv_close(self, NULL);
    if (r == NULL) return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

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

#define SET_ITEM(d, key, expr)                                                         \
    do {                                                                               \
        PyObject *v_ = (expr);                                                         \
        if (v_ == NULL || PyDict_SetItemString(d, key, v_) < 0) { Py_XDECREF(v_); goto fail; } \
        Py_DECREF(v_);                                                                 \
    } while (0)

static PyObject *conv_info(GNPy_ConvNetwork *self, PyObject *unused) {
    (void)unused;
    if (net_begin(self) < 0) return NULL;
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
    SET_ITEM(d, "activation", PyLong_FromLong(info.feature_activation));
    SET_ITEM(d, "gate", PyLong_FromLong(info.gate_kind));
    SET_ITEM(d, "beta", PyFloat_FromDouble(info.beta));
    SET_ITEM(d, "value_input", PyLong_FromLong(info.value_input));
    SET_ITEM(d, "wiring", PyLong_FromLong(info.wiring));
    SET_ITEM(d, "tied", PyBool_FromLong(info.tied));
    SET_ITEM(d, "feature_frozen", PyBool_FromLong(info.feature_frozen));
    SET_ITEM(d, "value_frozen", PyBool_FromLong(info.value_frozen));
    SET_ITEM(d, "parameter_count", PyLong_FromLongLong(info.parameter_count));
    SET_ITEM(d, "epochs_trained", PyLong_FromLongLong(info.epochs_trained));
    Py_DECREF(shapes);
    net_end(self);
    return d;
fail:
    Py_XDECREF(d);
    Py_XDECREF(shapes);
    net_end(self);
    return NULL;
}

static PyObject *conv_describe(GNPy_ConvNetwork *self, PyObject *unused) {
    (void)unused;
    if (net_begin(self) < 0) return NULL;
    char small[256];
    size_t needed = 0;
    gn_status s = gn_conv_network_describe(self->net, small, sizeof small, &needed);
    PyObject *r = NULL;
    if (s != GN_OK) {
        gnpy_raise(s);
    } else if (needed <= sizeof small) {
        r = PyUnicode_FromString(small);
    } else {
        char *big = PyMem_Malloc(needed);
        if (big == NULL) {
            PyErr_NoMemory();
        } else {
            s = gn_conv_network_describe(self->net, big, needed, NULL);
            r = s == GN_OK ? PyUnicode_FromString(big) : gnpy_raise(s);
            PyMem_Free(big);
        }
    }
    net_end(self);
    return r;
}

/* ---- parameters ------------------------------------------------------------------------------ */

static PyObject *conv_set_frozen(GNPy_ConvNetwork *self, PyObject *args) {
    int part, frozen;
    if (!PyArg_ParseTuple(args, "ip:set_frozen", &part, &frozen)) return NULL;
    if (net_begin(self) < 0) return NULL;
    gn_status s = gn_conv_network_set_frozen(self->net, (gn_part)part, frozen);
    net_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    Py_RETURN_NONE;
}

static PyObject *conv_copy_feature_weights(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"source", "freeze", NULL};
    PyObject *src_obj;
    int freeze = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:copy_feature_weights", kwlist, &src_obj, &freeze))
        return NULL;
    if (!PyObject_TypeCheck(src_obj, &GNPy_ConvNetworkType)) {
        PyErr_Format(PyExc_TypeError, "source: expected a gatednet.ConvNetwork, got %.100s", Py_TYPE(src_obj)->tp_name);
        return NULL;
    }
    GNPy_ConvNetwork *src = (GNPy_ConvNetwork *)src_obj;
    if (net_begin2(self, src) < 0) return NULL;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_conv_network_copy_feature_weights(self->net, src->net, freeze);
    Py_END_ALLOW_THREADS
    net_end2(self, src);
    if (s != GN_OK) return gnpy_raise(s);
    Py_RETURN_NONE;
}

static PyObject *conv_tensor_count(GNPy_ConvNetwork *self, PyObject *unused) {
    (void)unused;
    if (net_begin(self) < 0) return NULL;
    int64_t n = 0;
    gn_status s = gn_conv_network_tensor_count(self->net, &n);
    net_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    return PyLong_FromLongLong(n);
}

static PyObject *conv_tensor_info(GNPy_ConvNetwork *self, PyObject *args) {
    long long index;
    if (!PyArg_ParseTuple(args, "L:tensor_info", &index)) return NULL;
    if (net_begin(self) < 0) return NULL;
    char name[128];
    int64_t rows = 0, cols = 0;
    gn_status s = gn_conv_network_tensor_info(self->net, index, name, sizeof name, &rows, &cols);
    net_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    return Py_BuildValue("(sLL)", name, (long long)rows, (long long)cols);
}

static PyObject *conv_get_tensor(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"index", "out", NULL};
    long long index;
    PyObject *out = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "L|O:get_tensor", kwlist, &index, &out)) return NULL;
    if (net_begin(self) < 0) return NULL;
    int64_t rows = 0, cols = 0;
    gn_status s = gn_conv_network_tensor_info(self->net, index, NULL, 0, &rows, &cols);
    if (s != GN_OK) { net_end(self); return gnpy_raise(s); }
    Py_ssize_t shape[2] = {(Py_ssize_t)rows, (Py_ssize_t)cols};
    gnpy_output o;
    if (gnpy_output_prepare(out, "out", 'f', 2, shape, 0, &o) < 0) { net_end(self); return NULL; }
    s = gn_conv_network_get_tensor(self->net, index, o.data, o.capacity);
    net_end(self);
    PyObject *r = gnpy_output_finish(&o, s == GN_OK);
    return s == GN_OK ? r : gnpy_raise(s);
}

static PyObject *conv_set_tensor(GNPy_ConvNetwork *self, PyObject *args) {
    long long index;
    PyObject *values;
    if (!PyArg_ParseTuple(args, "LO:set_tensor", &index, &values)) return NULL;
    if (net_begin(self) < 0) return NULL;
    int64_t rows = 0, cols = 0;
    gn_status s = gn_conv_network_tensor_info(self->net, index, NULL, 0, &rows, &cols);
    if (s != GN_OK) { net_end(self); return gnpy_raise(s); }
    gnpy_input in;
    if (gnpy_input_f32_flat(values, "values", (Py_ssize_t)(rows * cols), &in) < 0) { net_end(self); return NULL; }
    s = gn_conv_network_set_tensor(self->net, index, in.data, rows * cols);
    gnpy_input_release(&in);
    net_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    Py_RETURN_NONE;
}

/* ---- training --------------------------------------------------------------------------------- */

typedef struct {
    PyThreadState *tstate;  /* this thread's state while the GIL is released */
    PyObject *callback;     /* borrowed; NULL for none */
    PyObject *history;      /* list of metric dicts */
    int has_test;
    int failed;             /* an exception is stored below */
    PyObject *exc_type, *exc_value, *exc_tb;
} train_context;

static PyObject *metrics_dict(const gn_epoch_metrics *m, int has_test) {
    PyObject *d = PyDict_New();
    if (d == NULL) return NULL;
    SET_ITEM(d, "epoch", PyLong_FromLongLong(m->epoch));
    SET_ITEM(d, "epoch_in_call", PyLong_FromLongLong(m->epoch_in_call));
    SET_ITEM(d, "epochs_in_call", PyLong_FromLongLong(m->epochs_in_call));
    SET_ITEM(d, "train_loss", PyFloat_FromDouble(m->train_loss));
    SET_ITEM(d, "train_accuracy", PyFloat_FromDouble(m->train_accuracy));
    SET_ITEM(d, "test_loss", has_test ? PyFloat_FromDouble(m->test_loss) : (Py_INCREF(Py_None), Py_None));
    SET_ITEM(d, "test_accuracy", has_test ? PyFloat_FromDouble(m->test_accuracy) : (Py_INCREF(Py_None), Py_None));
    SET_ITEM(d, "seconds", PyFloat_FromDouble(m->seconds));
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

/* Between epochs, on the training thread: take the GIL, record the metrics, call the Python
 * callback, check for Ctrl-C; an exception is stored and stops training. */
static int train_progress(const gn_epoch_metrics *metrics, void *user) {
    train_context *ctx = user;
    PyEval_RestoreThread(ctx->tstate);
    int stop = 0;
    PyObject *d = metrics_dict(metrics, ctx->has_test);
    if (d == NULL || PyList_Append(ctx->history, d) < 0) goto error;
    if (ctx->callback != NULL) {
        PyObject *r = PyObject_CallOneArg(ctx->callback, d);
        if (r == NULL) goto error;
        if (r != Py_None) {
            int t = PyObject_IsTrue(r);
            if (t < 0) { Py_DECREF(r); goto error; }
            stop = !t;
        }
        Py_DECREF(r);
    }
    if (PyErr_CheckSignals() < 0) goto error;
    Py_DECREF(d);
    ctx->tstate = PyEval_SaveThread();
    return stop;
error:
    Py_XDECREF(d);
    ctx->failed = 1;
    PyErr_Fetch(&ctx->exc_type, &ctx->exc_value, &ctx->exc_tb);
    ctx->tstate = PyEval_SaveThread();
    return 1;
}

/* Polled between minibatches: lets Python run its signal handlers so Ctrl-C stops training. */
static int train_interrupt(void *user) {
    train_context *ctx = user;
    PyEval_RestoreThread(ctx->tstate);
    int stop = 0;
    if (PyErr_CheckSignals() < 0) {
        ctx->failed = 1;
        PyErr_Fetch(&ctx->exc_type, &ctx->exc_value, &ctx->exc_tb);
        stop = 1;
    }
    ctx->tstate = PyEval_SaveThread();
    return stop;
}

static PyObject *conv_train(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x", "y", "x_test", "y_test", "optimizer", "loss", "learning_rate",
                             "momentum", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
                             "batch_size", "epochs", "shuffle_seed", "callback", NULL};
    PyObject *x_obj, *y_obj, *xt_obj = Py_None, *yt_obj = Py_None;
    PyObject *optimizer = NULL, *loss = NULL, *lr = NULL, *momentum = NULL, *wd = NULL, *b1 = NULL,
             *b2 = NULL, *eps = NULL, *batch = NULL, *epochs = NULL, *shuffle = NULL, *callback = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OO$OOOOOOOOOOOO:train", kwlist, &x_obj, &y_obj, &xt_obj,
                                     &yt_obj, &optimizer, &loss, &lr, &momentum, &wd, &b1, &b2, &eps, &batch,
                                     &epochs, &shuffle, &callback))
        return NULL;
    if (callback != Py_None && !PyCallable_Check(callback)) {
        PyErr_Format(PyExc_TypeError, "callback: expected a callable, got %.100s", Py_TYPE(callback)->tp_name);
        return NULL;
    }
    if ((xt_obj == Py_None) != (yt_obj == Py_None)) {
        PyErr_SetString(PyExc_ValueError, "x_test, y_test: give both or neither");
        return NULL;
    }
    gn_train_options o;
    gn_train_options_init(&o);
    int opt = o.optimizer, ls = o.loss;
    if (opt_int(optimizer, "optimizer", &opt) < 0 || opt_int(loss, "loss", &ls) < 0 ||
        opt_float(lr, "learning_rate", &o.learning_rate) < 0 || opt_float(momentum, "momentum", &o.momentum) < 0 ||
        opt_float(wd, "weight_decay", &o.weight_decay) < 0 || opt_float(b1, "adam_beta1", &o.adam_beta1) < 0 ||
        opt_float(b2, "adam_beta2", &o.adam_beta2) < 0 || opt_float(eps, "adam_epsilon", &o.adam_epsilon) < 0 ||
        opt_int64(batch, "batch_size", &o.batch_size) < 0 || opt_int64(epochs, "epochs", &o.epochs) < 0 ||
        opt_uint64(shuffle, "shuffle_seed", &o.shuffle_seed) < 0)
        return NULL;
    o.optimizer = (gn_optimizer)opt;
    o.loss = (gn_loss)ls;

    if (net_begin(self) < 0) return NULL;
    gn_conv_network_info info;
    gnpy_input x = {0}, y = {0}, xt = {0}, yt = {0};
    PyObject *result = NULL;
    train_context ctx = {0};
    if (get_info(self, &info) < 0) goto done;
    if (conv_input(x_obj, "x", &info, &x) < 0) goto done;
    if (gnpy_input_i32_vector(y_obj, "y", x.rows, &y) < 0) goto done;
    if (xt_obj != Py_None) {
        if (conv_input(xt_obj, "x_test", &info, &xt) < 0) goto done;
        if (gnpy_input_i32_vector(yt_obj, "y_test", xt.rows, &yt) < 0) goto done;
    }
    ctx.history = PyList_New(0);
    if (ctx.history == NULL) goto done;
    ctx.callback = callback == Py_None ? NULL : callback;
    ctx.has_test = xt_obj != Py_None;
    o.progress = train_progress;
    o.progress_user = &ctx;
    o.interrupt = train_interrupt;
    int64_t run = 0;
    ctx.tstate = PyEval_SaveThread();
    gn_status s = gn_conv_network_train(self->net, x.data, y.data, x.rows, xt.data, yt.data,
                                        ctx.has_test ? xt.rows : 0, &o, NULL, 0, &run);
    PyEval_RestoreThread(ctx.tstate);
    if (ctx.failed) {
        PyErr_Restore(ctx.exc_type, ctx.exc_value, ctx.exc_tb);
        goto done;
    }
    if (s != GN_OK) {
        gnpy_raise(s);
        goto done;
    }
    result = ctx.history;
    ctx.history = NULL;
done:
    Py_XDECREF(ctx.history);
    gnpy_input_release(&x);
    gnpy_input_release(&y);
    gnpy_input_release(&xt);
    gnpy_input_release(&yt);
    net_end(self);
    return result;
}

/* ---- inference ------------------------------------------------------------------------------ */

static PyObject *predict_common(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs, int classes) {
    static char *kwlist[] = {"x", "out", NULL};
    PyObject *x_obj, *out = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:predict", kwlist, &x_obj, &out)) return NULL;
    if (net_begin(self) < 0) return NULL;
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
    r = gnpy_output_finish(&o, s == GN_OK);
    if (s != GN_OK) gnpy_raise(s);
done:
    gnpy_input_release(&x);
    net_end(self);
    return r;
}

static PyObject *conv_predict(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    return predict_common(self, args, kwargs, 0);
}

static PyObject *conv_predict_classes(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    return predict_common(self, args, kwargs, 1);
}

static PyObject *conv_evaluate(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x", "y", "loss", NULL};
    PyObject *x_obj, *y_obj;
    int loss = GN_LOSS_CROSS_ENTROPY;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|i:evaluate", kwlist, &x_obj, &y_obj, &loss)) return NULL;
    if (net_begin(self) < 0) return NULL;
    gn_conv_network_info info;
    gnpy_input x = {0}, y = {0};
    PyObject *r = NULL;
    if (get_info(self, &info) < 0) goto done;
    if (conv_input(x_obj, "x", &info, &x) < 0) goto done;
    if (gnpy_input_i32_vector(y_obj, "y", x.rows, &y) < 0) goto done;
    double mean_loss = NAN, accuracy = NAN;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_conv_network_evaluate(self->net, x.data, y.data, x.rows, (gn_loss)loss, &mean_loss, &accuracy);
    Py_END_ALLOW_THREADS
    if (s != GN_OK) gnpy_raise(s);
    else r = Py_BuildValue("(dd)", mean_loss, accuracy);
done:
    gnpy_input_release(&x);
    gnpy_input_release(&y);
    net_end(self);
    return r;
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

static PyObject *conv_gates(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x", "layer", "wired", "out", NULL};
    PyObject *x_obj, *out = Py_None;
    long long layer;
    int wired = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OL|pO:gates", kwlist, &x_obj, &layer, &wired, &out))
        return NULL;
    if (net_begin(self) < 0) return NULL;
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
    s = gn_conv_network_gates(self->net, x.data, x.rows, layer, wired, o.data, o.capacity);
    Py_END_ALLOW_THREADS
    r = gnpy_output_finish(&o, s == GN_OK);
    if (s != GN_OK) gnpy_raise(s);
done:
    gnpy_input_release(&x);
    net_end(self);
    return r;
}

static PyObject *conv_kernel(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"kind", "xa", "xb", "out", NULL};
    int kind;
    PyObject *xa_obj, *xb_obj = Py_None, *out = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iO|OO:kernel", kwlist, &kind, &xa_obj, &xb_obj, &out))
        return NULL;
    if (net_begin(self) < 0) return NULL;
    gn_conv_network_info info;
    gnpy_input xa = {0}, xb = {0};
    gnpy_output o = {0};
    PyObject *r = NULL;
    if (get_info(self, &info) < 0) goto done;
    if (conv_input(xa_obj, "xa", &info, &xa) < 0) goto done;
    int symmetric = xb_obj == Py_None;
    if (!symmetric && conv_input(xb_obj, "xb", &info, &xb) < 0) goto done;
    const void *b_data = symmetric ? xa.data : xb.data;
    Py_ssize_t b_rows = symmetric ? xa.rows : xb.rows;
    Py_ssize_t shape[2] = {xa.rows, b_rows};
    if (gnpy_output_prepare(out, "out", 'f', 2, shape, 1, &o) < 0) goto done;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_conv_network_kernel(self->net, (gn_conv_kernel_kind)kind, xa.data, xa.rows, b_data, b_rows, o.data,
                               o.ld, o.capacity);
    Py_END_ALLOW_THREADS
    r = gnpy_output_finish(&o, s == GN_OK);
    if (s != GN_OK) gnpy_raise(s);
done:
    gnpy_input_release(&xa);
    gnpy_input_release(&xb);
    net_end(self);
    return r;
}

/* ---- persistence and copies ----------------------------------------------------------------- */

static PyObject *conv_save(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"path", "optimizer_state", NULL};
    PyObject *path_obj;
    int with_opt = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:save", kwlist, &path_obj, &with_opt)) return NULL;
    PyObject *path = gnpy_fspath_bytes(path_obj, "path");
    if (path == NULL) return NULL;
    if (net_begin(self) < 0) { Py_DECREF(path); return NULL; }
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_conv_network_save(self->net, PyBytes_AS_STRING(path), with_opt ? GN_SAVE_OPTIMIZER_STATE : 0);
    Py_END_ALLOW_THREADS
    net_end(self);
    Py_DECREF(path);
    if (s != GN_OK) return gnpy_raise(s);
    Py_RETURN_NONE;
}

static PyObject *conv_load(PyObject *cls, PyObject *path_obj) {
    PyObject *path = gnpy_fspath_bytes(path_obj, "path");
    if (path == NULL) return NULL;
    gn_conv_network *net = NULL;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_conv_network_load(PyBytes_AS_STRING(path), &net);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (s != GN_OK) return gnpy_raise(s);
    return wrap_conv((PyTypeObject *)cls, net);
}

static PyObject *conv_to_bytes(GNPy_ConvNetwork *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"optimizer_state", NULL};
    int with_opt = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p:to_bytes", kwlist, &with_opt)) return NULL;
    unsigned flags = with_opt ? GN_SAVE_OPTIMIZER_STATE : 0;
    if (net_begin(self) < 0) return NULL;
    size_t needed = 0;
    gn_status s = gn_conv_network_serialize(self->net, flags, NULL, 0, &needed);
    PyObject *r = NULL;
    if (s != GN_OK && s != GN_ERR_BUFFER_TOO_SMALL) {
        gnpy_raise(s);
    } else if ((r = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)needed)) != NULL) {
        char *buf = PyBytes_AS_STRING(r);
        Py_BEGIN_ALLOW_THREADS
        s = gn_conv_network_serialize(self->net, flags, buf, needed, &needed);
        Py_END_ALLOW_THREADS
        if (s != GN_OK) {
            Py_CLEAR(r);
            gnpy_raise(s);
        }
    }
    net_end(self);
    return r;
}

static PyObject *conv_from_bytes(PyObject *cls, PyObject *data) {
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "data: expected a bytes-like object, got %.100s", Py_TYPE(data)->tp_name);
        return NULL;
    }
    gn_conv_network *net = NULL;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_conv_network_deserialize(view.buf, (size_t)view.len, &net);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (s != GN_OK) return gnpy_raise(s);
    return wrap_conv((PyTypeObject *)cls, net);
}

static PyObject *conv_clone(GNPy_ConvNetwork *self, PyObject *unused) {
    (void)unused;
    if (net_begin(self) < 0) return NULL;
    gn_conv_network *net = NULL;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_conv_network_clone(self->net, &net);
    Py_END_ALLOW_THREADS
    net_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    return wrap_conv(Py_TYPE(self), net);
}

/* ---- type ------------------------------------------------------------------------------------ */

static PyMethodDef conv_methods[] = {
    {"close", (PyCFunction)conv_close, METH_NOARGS,
     "close()\n\nFree the library handle now (idempotent). Later calls raise ClosedNetworkError."},
    {"__enter__", (PyCFunction)conv_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)conv_exit, METH_VARARGS, NULL},
    {"_info", (PyCFunction)conv_info, METH_NOARGS, "_info() -> dict of gn_conv_network_info (enums as ints)."},
    {"describe", (PyCFunction)conv_describe, METH_NOARGS, "describe() -> str\n\nOne-line summary from the library."},
    {"_architecture_layers", (PyCFunction)conv_architecture_layers, METH_VARARGS | METH_STATIC,
     "_architecture_layers(arch, classes, width_scale=1.0) -> list of 7-int layer tuples"},
    {"_set_frozen", (PyCFunction)conv_set_frozen, METH_VARARGS, "_set_frozen(part, frozen)"},
    {"copy_feature_weights", (PyCFunction)(void (*)(void))conv_copy_feature_weights, METH_VARARGS | METH_KEYWORDS,
     "copy_feature_weights(source, freeze=True)\n\nCopy the feature (gating) weights of `source` (e.g. a "
     "trained ReLU conv net) into this network and freeze them if `freeze`. Layer shapes must agree."},
    {"tensor_count", (PyCFunction)conv_tensor_count, METH_NOARGS,
     "tensor_count() -> int\n\nNumber of parameter tensors (feature net, then value net)."},
    {"_tensor_info", (PyCFunction)conv_tensor_info, METH_VARARGS, "_tensor_info(index) -> (name, rows, cols)"},
    {"_get_tensor", (PyCFunction)(void (*)(void))conv_get_tensor, METH_VARARGS | METH_KEYWORDS,
     "_get_tensor(index, out=None) -> Buffer (rows, cols)"},
    {"_set_tensor", (PyCFunction)conv_set_tensor, METH_VARARGS, "_set_tensor(index, values)"},
    {"_train", (PyCFunction)(void (*)(void))conv_train, METH_VARARGS | METH_KEYWORDS, "_train(x, y, ...) -> list"},
    {"predict", (PyCFunction)(void (*)(void))conv_predict, METH_VARARGS | METH_KEYWORDS,
     "predict(x, out=None) -> Buffer\n\nOutputs (logits), shape (n, output_size) float32. x: (n, H, W, C) "
     "NHWC or (n, H*W*C)."},
    {"predict_classes", (PyCFunction)(void (*)(void))conv_predict_classes, METH_VARARGS | METH_KEYWORDS,
     "predict_classes(x, out=None) -> Buffer\n\nArg-max class per row (int32, shape (n,))."},
    {"_evaluate", (PyCFunction)(void (*)(void))conv_evaluate, METH_VARARGS | METH_KEYWORDS,
     "_evaluate(x, y, loss=0) -> (mean_loss, accuracy)"},
    {"_gates", (PyCFunction)(void (*)(void))conv_gates, METH_VARARGS | METH_KEYWORDS,
     "_gates(x, layer, wired=False, out=None) -> Buffer (n, H, W, C)"},
    {"_kernel", (PyCFunction)(void (*)(void))conv_kernel, METH_VARARGS | METH_KEYWORDS,
     "_kernel(kind, xa, xb=None, out=None) -> Buffer"},
    {"save", (PyCFunction)(void (*)(void))conv_save, METH_VARARGS | METH_KEYWORDS,
     "save(path, optimizer_state=False)\n\nWrite a versioned, checksummed conv network file atomically. "
     "Raises FileError."},
    {"load", (PyCFunction)conv_load, METH_O | METH_CLASS,
     "load(path) -> ConvNetwork\n\nRead a file written by save(). Raises FileError or CorruptFileError "
     "(also for a gatednet.Network file)."},
    {"to_bytes", (PyCFunction)(void (*)(void))conv_to_bytes, METH_VARARGS | METH_KEYWORDS,
     "to_bytes(optimizer_state=False) -> bytes\n\nThe save() format in memory."},
    {"from_bytes", (PyCFunction)conv_from_bytes, METH_O | METH_CLASS,
     "from_bytes(data) -> ConvNetwork\n\nInverse of to_bytes(); CorruptFileError for foreign data."},
    {"clone", (PyCFunction)conv_clone, METH_NOARGS,
     "clone() -> ConvNetwork\n\nDeep copy: weights, frozen flags and optimizer state."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef conv_getset[] = {
    {"closed", (getter)conv_get_closed, NULL, "True after close().", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject GNPy_ConvNetworkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gatednet._core.ConvNetwork",
    .tp_basicsize = sizeof(GNPy_ConvNetwork),
    .tp_dealloc = (destructor)conv_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Low-level wrapper of one gn_conv_network handle; use gatednet.ConvNetwork.",
    .tp_weaklistoffset = offsetof(GNPy_ConvNetwork, weakrefs),
    .tp_methods = conv_methods,
    .tp_getset = conv_getset,
    .tp_init = (initproc)conv_init,
    .tp_new = conv_new,
};
