/* gatednet._core.Network: one gn_network handle, a lock, and methods that map 1:1 onto the
 * C ABI. Enumerations are plain ints here; gatednet/__init__.py maps names onto them.
 *
 * Concurrency: every call takes the object's lock, then releases the GIL around the library
 * call, so other Python threads run meanwhile. A second thread using the same Network waits
 * (interruptible by Ctrl-C); a call made on the network from inside its own fit() or kernel
 * progress callback raises GatedNetError instead of deadlocking.
 *
 * What Network shares with ConvNetwork (the lock, fit, persistence, describe, ...) is in
 * common.c; network_ops below supplies its C calls. */
#include "gatednet_py.h"

#include <string.h>

/* ---- lifecycle --------------------------------------------------------------------------- */

static int network_input(GNPy_Handle *self, PyObject *obj, const char *name, gnpy_input *in);

static gn_status network_kernel_call(const void *net, int kind, int64_t layer, const float *xa, int64_t n_a,
                                     const float *xb, int64_t n_b, float *out, int64_t ld_out, int64_t capacity) {
    return gn_kernel(net, (gn_kernel_kind)kind, layer, xa, n_a, xb, n_b, out, ld_out, capacity);
}

GNPY_HANDLE_OPS(network_ops, gn_network, gn_train, gn_evaluate, network_kernel_call, &GNPy_NetworkType,
                "gatednet.Network",
                "network is busy in this thread: a fit() callback or a kernel progress callback may not "
                "use the network it is called for",
                network_input, 1);

static PyObject *network_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    (void)args;
    (void)kwargs;
    return gnpy_handle_new(type, &network_ops);
}

/* ---- creation ------------------------------------------------------------------------------ */

static int network_init(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"input_size", "hidden_widths", "output_size", "regime",
                             "activation", "gate", "beta", "value_input", "permutation", "bias",
                             "feature_head", "feature_frozen", "init", "init_scale", "seed",
                             "gate_source", NULL};
    long long input_size, output_size;
    PyObject *widths_obj;
    int regime = GN_REGIME_CUSTOM;
    PyObject *activation = NULL, *gate = NULL, *beta = NULL, *value_input = NULL, *perm = NULL,
             *bias = NULL, *head = NULL, *frozen = NULL, *init = NULL, *init_scale = NULL,
             *seed = NULL, *source = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "LOL|i$OOOOOOOOOOOO:Network", kwlist, &input_size,
                                     &widths_obj, &output_size, &regime, &activation, &gate, &beta,
                                     &value_input, &perm, &bias, &head, &frozen, &init, &init_scale,
                                     &seed, &source))
        return -1;
    if (self->net != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Network.__init__: already initialised");
        return -1;
    }
    Py_ssize_t n_hidden = 0, n_perm = 0;
    int64_t *widths = gnpy_int64_list(widths_obj, "hidden_widths", &n_hidden);
    if (widths == NULL) return -1;
    int64_t *permutation = NULL;
    int rc = -1;
    gn_network_spec spec;
    gn_status s = gn_network_spec_init(&spec, (gn_regime)regime, input_size, n_hidden, widths, output_size);
    if (s != GN_OK) { gnpy_raise(s); goto done; }
    int act = spec.feature_activation, gk = spec.gate_kind, vi = spec.value_input, ik = spec.init;
    if (gnpy_opt_int(activation, "activation", &act) < 0 || gnpy_opt_int(gate, "gate", &gk) < 0 ||
        gnpy_opt_float(beta, "beta", &spec.beta) < 0 || gnpy_opt_int(value_input, "value_input", &vi) < 0 ||
        gnpy_opt_bool(bias, &spec.bias) < 0 || gnpy_opt_bool(head, &spec.feature_head) < 0 ||
        gnpy_opt_bool(frozen, &spec.feature_frozen) < 0 || gnpy_opt_int(init, "init", &ik) < 0 ||
        gnpy_opt_float(init_scale, "init_scale", &spec.init_scale) < 0 || gnpy_opt_uint64(seed, "seed", &spec.seed) < 0)
        goto done;
    spec.feature_activation = (gn_activation)act;
    spec.gate_kind = (gn_gate_kind)gk;
    spec.value_input = (gn_value_input)vi;
    spec.init = (gn_init_kind)ik;
    if (perm != NULL && perm != Py_None) {
        permutation = gnpy_int64_list(perm, "permutation", &n_perm);
        if (permutation == NULL) goto done;
        if (n_perm != n_hidden) {
            PyErr_Format(PyExc_ValueError, "permutation: got %zd entries, need %zd (one per hidden layer)",
                         n_perm, n_hidden);
            goto done;
        }
        spec.permutation = permutation;
    }
    GNPy_Handle *src = NULL;
    if (gnpy_begin_gate_source(self, source, &src) < 0) goto done;
    if (src != NULL) spec.gate_source = src->net;
    gn_network *net = NULL;
    Py_BEGIN_ALLOW_THREADS
    s = gn_network_create(&spec, &net);
    Py_END_ALLOW_THREADS
    if (src != NULL) gnpy_end(src);
    if (s != GN_OK) { gnpy_raise(s); goto done; }
    self->net = net;
    rc = 0;
done:
    PyMem_Free(widths);
    PyMem_Free(permutation);
    return rc;
}

/* ---- small queries -------------------------------------------------------------------------- */

static int get_info(GNPy_Network *self, gn_network_info *info) {
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
    gn_status s = gn_network_get_info(self->net, info);
    if (s != GN_OK) { gnpy_raise(s); return -1; }
    return 0;
}

static int network_input(GNPy_Handle *self, PyObject *obj, const char *name, gnpy_input *in) {
    gn_network_info info;
    if (get_info(self, &info) < 0) return -1;
    return gnpy_input_f32_matrix(obj, name, (Py_ssize_t)info.input_size, in);
}

static PyObject *network_info(GNPy_Network *self, PyObject *unused) {
    (void)unused;
    if (gnpy_begin(self) < 0) return NULL;
    PyObject *d = NULL, *widths = NULL, *perm = NULL;
    gn_network_info info;
    if (get_info(self, &info) < 0) goto fail;
    int64_t pbuf[GN_MAX_HIDDEN];
    gn_status s = gn_network_permutation(self->net, pbuf, GN_MAX_HIDDEN);
    if (s != GN_OK) { gnpy_raise(s); goto fail; }
    widths = PyTuple_New((Py_ssize_t)info.n_hidden);
    perm = PyTuple_New((Py_ssize_t)info.n_hidden);
    if (widths == NULL || perm == NULL) goto fail;
    for (int64_t l = 0; l < info.n_hidden; l++) {
        int64_t w = 0;
        s = gn_network_hidden_width(self->net, l, &w);
        if (s != GN_OK) { gnpy_raise(s); goto fail; }
        PyObject *wv = PyLong_FromLongLong(w), *pv = PyLong_FromLongLong(pbuf[l]);
        if (wv == NULL || pv == NULL) { Py_XDECREF(wv); Py_XDECREF(pv); goto fail; }
        PyTuple_SET_ITEM(widths, (Py_ssize_t)l, wv);
        PyTuple_SET_ITEM(perm, (Py_ssize_t)l, pv);
    }
    d = PyDict_New();
    if (d == NULL) goto fail;
    SET_ITEM(d, "regime", PyLong_FromLong(info.regime));
    SET_ITEM(d, "input_size", PyLong_FromLongLong(info.input_size));
    SET_ITEM(d, "hidden_widths", (Py_INCREF(widths), widths));
    SET_ITEM(d, "output_size", PyLong_FromLongLong(info.output_size));
    GNPY_SET_GATE_ITEMS(d, info);
    SET_ITEM(d, "permutation", (Py_INCREF(perm), perm));
    SET_ITEM(d, "bias", PyBool_FromLong(info.bias));
    SET_ITEM(d, "feature_head", PyBool_FromLong(info.feature_head));
    GNPY_SET_STATE_ITEMS(d, info);
    Py_DECREF(widths);
    Py_DECREF(perm);
    gnpy_end(self);
    return d;
fail:
    Py_XDECREF(d);
    Py_XDECREF(widths);
    Py_XDECREF(perm);
    gnpy_end(self);
    return NULL;
}

/* ---- parameters ------------------------------------------------------------------------------ */

static PyObject *network_weight_shape(GNPy_Network *self, PyObject *args) {
    int part;
    long long layer;
    if (!PyArg_ParseTuple(args, "iL:weight_shape", &part, &layer)) return NULL;
    if (gnpy_begin(self) < 0) return NULL;
    int64_t rows = 0, cols = 0;
    gn_status s = gn_network_weight_shape(self->net, (gn_part)part, layer, &rows, &cols);
    gnpy_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    return Py_BuildValue("(LL)", (long long)rows, (long long)cols);
}

static PyObject *network_get_weights(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"part", "layer", "out", "bias", NULL};
    int part, want_bias = 0;
    long long layer;
    PyObject *out = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iL|Op:get_weights", kwlist, &part, &layer, &out, &want_bias))
        return NULL;
    if (gnpy_begin(self) < 0) return NULL;
    int64_t rows = 0, cols = 0;
    gn_status s = gn_network_weight_shape(self->net, (gn_part)part, layer, &rows, &cols);
    if (s != GN_OK) { gnpy_end(self); return gnpy_raise(s); }
    Py_ssize_t shape[2] = {(Py_ssize_t)rows, (Py_ssize_t)cols};
    gnpy_output o;
    if (gnpy_output_prepare(out, "out", 'f', want_bias ? 1 : 2, shape, 0, &o) < 0) { gnpy_end(self); return NULL; }
    if (want_bias) s = gn_network_get_bias(self->net, (gn_part)part, layer, o.data, o.capacity);
    else s = gn_network_get_weights(self->net, (gn_part)part, layer, o.data, o.capacity);
    gnpy_end(self);
    return gnpy_output_status(&o, s);
}

static PyObject *network_set_weights(GNPy_Network *self, PyObject *args) {
    int part;
    long long layer;
    PyObject *w;
    if (!PyArg_ParseTuple(args, "iLO:set_weights", &part, &layer, &w)) return NULL;
    if (gnpy_begin(self) < 0) return NULL;
    int64_t rows = 0, cols = 0;
    gn_status s = gn_network_weight_shape(self->net, (gn_part)part, layer, &rows, &cols);
    if (s != GN_OK) { gnpy_end(self); return gnpy_raise(s); }
    gnpy_input in;
    if (gnpy_input_f32_flat(w, "w", (Py_ssize_t)(rows * cols), &in) < 0) { gnpy_end(self); return NULL; }
    s = gn_network_set_weights(self->net, (gn_part)part, layer, in.data, rows * cols);
    gnpy_input_release(&in);
    gnpy_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    Py_RETURN_NONE;
}

/* ---- inference ------------------------------------------------------------------------------ */

enum { PREDICT_OUTPUTS, PREDICT_CLASSES, PREDICT_FEATURE_HEAD, GATES_FLOAT, GATES_PACKED, GATES_PACKED_ALL };

/* One output row per row of x: predictions, or the gates of `layer` (which: the enum above). */
static PyObject *per_row(GNPy_Network *self, PyObject *x_obj, PyObject *out, int which, long long layer) {
    if (gnpy_begin(self) < 0) return NULL;
    gn_network_info info;
    gnpy_input x = {0};
    gnpy_output o = {0};
    PyObject *r = NULL;
    gn_status s = GN_OK;
    if (get_info(self, &info) < 0) goto done;
    int64_t cols = info.output_size;
    if (which == GATES_FLOAT) s = gn_network_hidden_width(self->net, layer, &cols);
    else if (which == GATES_PACKED) s = gn_gates_packed_words(self->net, layer, &cols);
    else if (which == GATES_PACKED_ALL) s = gn_gates_packed_all_words(self->net, &cols);
    if (s != GN_OK) { gnpy_raise(s); goto done; }
    if (gnpy_input_f32_matrix(x_obj, "x", (Py_ssize_t)info.input_size, &x) < 0) goto done;
    Py_ssize_t shape[2] = {x.rows, (Py_ssize_t)cols};
    char format = which == PREDICT_CLASSES ? 'i' : which == GATES_PACKED || which == GATES_PACKED_ALL ? 'Q' : 'f';
    if (gnpy_output_prepare(out, "out", format, which == PREDICT_CLASSES ? 1 : 2, shape, 0, &o) < 0) goto done;
    Py_BEGIN_ALLOW_THREADS
    switch (which) {
    case PREDICT_CLASSES: s = gn_predict_classes(self->net, x.data, x.rows, o.data, o.capacity); break;
    case PREDICT_FEATURE_HEAD: s = gn_predict_feature_head(self->net, x.data, x.rows, o.data, o.capacity); break;
    case GATES_FLOAT: s = gn_gates(self->net, x.data, x.rows, layer, o.data, o.capacity); break;
    case GATES_PACKED: s = gn_gates_packed(self->net, x.data, x.rows, layer, o.data, o.capacity); break;
    case GATES_PACKED_ALL: s = gn_gates_packed_all(self->net, x.data, x.rows, o.data, o.capacity); break;
    default: s = gn_predict(self->net, x.data, x.rows, o.data, o.capacity);
    }
    Py_END_ALLOW_THREADS
    r = gnpy_output_status(&o, s);
done:
    gnpy_input_release(&x);
    gnpy_end(self);
    return r;
}

static PyObject *predict_common(GNPy_Network *self, PyObject *args, PyObject *kwargs, int which) {
    static char *kwlist[] = {"x", "out", NULL};
    PyObject *x_obj, *out = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$O:predict", kwlist, &x_obj, &out)) return NULL;
    return per_row(self, x_obj, out, which, 0);
}

static PyObject *network_predict(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    return predict_common(self, args, kwargs, PREDICT_OUTPUTS);
}
static PyObject *network_predict_classes(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    return predict_common(self, args, kwargs, PREDICT_CLASSES);
}
static PyObject *network_predict_feature_head(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    return predict_common(self, args, kwargs, PREDICT_FEATURE_HEAD);
}

/* ---- gates and kernels ---------------------------------------------------------------------- */

static PyObject *network_gates(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x", "layer", "out", "packed", NULL};
    PyObject *x_obj, *out = Py_None;
    long long layer;
    int packed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OL|Op:gates", kwlist, &x_obj, &layer, &out, &packed))
        return NULL;
    return per_row(self, x_obj, out, packed ? GATES_PACKED : GATES_FLOAT, layer);
}

static PyObject *network_packed_gates(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x", "out", NULL};
    PyObject *x_obj, *out = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:packed_gates", kwlist, &x_obj, &out)) return NULL;
    return per_row(self, x_obj, out, GATES_PACKED_ALL, 0);
}

static PyObject *network_kernel(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"kind", "xa", "xb", "layer", "out", NULL};
    int kind;
    PyObject *xa_obj, *xb_obj = Py_None, *out = Py_None;
    long long layer = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iO|OLO:kernel", kwlist, &kind, &xa_obj, &xb_obj, &layer, &out))
        return NULL;
    return gnpy_kernel_matrix(self, kind, layer, xa_obj, xb_obj, out);
}

static PyObject *network_hidden_state(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x", "part", "layer", "kind", "out", NULL};
    PyObject *x_obj, *out = Py_None;
    int part, kind;
    long long layer;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OiLi|O:hidden_state", kwlist, &x_obj, &part, &layer, &kind, &out))
        return NULL;
    if (gnpy_begin(self) < 0) return NULL;
    gn_network_info info;
    gnpy_input x = {0};
    gnpy_output o = {0};
    PyObject *r = NULL;
    int64_t width = 0;
    gn_status s;
    if (get_info(self, &info) < 0) goto done;
    if ((s = gn_network_hidden_width(self->net, layer, &width)) != GN_OK) { gnpy_raise(s); goto done; }
    if (gnpy_input_f32_matrix(x_obj, "x", (Py_ssize_t)info.input_size, &x) < 0) goto done;
    Py_ssize_t shape[2] = {x.rows, (Py_ssize_t)width};
    if (gnpy_output_prepare(out, "out", 'f', 2, shape, 0, &o) < 0) goto done;
    Py_BEGIN_ALLOW_THREADS
    s = gn_network_hidden_state(self->net, x.data, x.rows, (gn_part)part, layer, (gn_hidden_kind)kind, o.data,
                                o.capacity);
    Py_END_ALLOW_THREADS
    r = gnpy_output_status(&o, s);
done:
    gnpy_input_release(&x);
    gnpy_end(self);
    return r;
}

/* ---- kernel suite (gn_kernel_compute and friends) ----------------------------------------- */

static int block_range(long long begin, long long count, Py_ssize_t n, const char *name, Py_ssize_t *size) {
    long long end = count == 0 ? (long long)n : begin + count;
    if (begin < 0 || count < 0 || begin >= n || end > n) {
        PyErr_Format(PyExc_ValueError, "%s: block [%lld, %lld) outside the %zd rows of the input", name, begin,
                     end, n);
        return -1;
    }
    *size = (Py_ssize_t)(end - begin);
    return 0;
}

static PyObject *network_kernel_compute(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"kind", "xa", "xb", "layer", "output", "row_begin", "row_count", "col_begin",
                             "col_count", "upper_only", "gate_path", "ntk_scaling", "out", "progress",
                             "out_transposed", "gates_a", "gates_b", NULL};
    int kind, upper_only = 0, gate_path = GN_GATE_PATH_AUTO, ntk_scaling = 0;
    PyObject *xa_obj, *xb_obj = Py_None, *out = Py_None, *progress = Py_None, *out_t = Py_None;
    PyObject *ga_obj = Py_None, *gb_obj = Py_None;
    long long layer = 0, output = -1, rb = 0, rc = 0, cb = 0, cc = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iO|OLLLLLLpipOOOOO:kernel_compute", kwlist, &kind, &xa_obj,
                                     &xb_obj, &layer, &output, &rb, &rc, &cb, &cc, &upper_only, &gate_path,
                                     &ntk_scaling, &out, &progress, &out_t, &ga_obj, &gb_obj))
        return NULL;
    if (progress != Py_None && !PyCallable_Check(progress)) {
        PyErr_Format(PyExc_TypeError, "progress: expected a callable, got %.100s", Py_TYPE(progress)->tp_name);
        return NULL;
    }
    if (gnpy_begin(self) < 0) return NULL;
    gnpy_input xa = {0}, xb = {0}, ga = {0}, gb = {0};
    const gnpy_input *b;
    gnpy_output o = {0}, ot = {0};
    PyObject *r = NULL;
    if (gnpy_input_pair(self, xa_obj, xb_obj, &xa, &xb, &b) < 0) goto done;
    if (ga_obj != Py_None || gb_obj != Py_None) {
        int64_t words = 0;
        gn_status ws = gn_gates_packed_all_words(self->net, &words);
        if (ws != GN_OK) { gnpy_raise(ws); goto done; }
        if (ga_obj != Py_None &&
            gnpy_input_u64_matrix(ga_obj, "gates_a", xa.rows, (Py_ssize_t)words, "packed_gates(xa)", &ga) < 0)
            goto done;
        if (gb_obj != Py_None &&
            gnpy_input_u64_matrix(gb_obj, "gates_b", b->rows, (Py_ssize_t)words,
                                  xb_obj == Py_None ? "packed_gates(xa)" : "packed_gates(xb)", &gb) < 0)
            goto done;
    }
    Py_ssize_t rows, cols;
    if (block_range(rb, rc, xa.rows, "rows", &rows) < 0 || block_range(cb, cc, b->rows, "cols", &cols) < 0) goto done;
    Py_ssize_t shape[2] = {rows, cols}, shape_t[2] = {cols, rows};
    if (gnpy_output_prepare(out, "out", 'f', 2, shape, 1, &o) < 0) goto done;
    if (out_t != Py_None && gnpy_output_prepare(out_t, "out_transposed", 'f', 2, shape_t, 1, &ot) < 0) goto done;
    gn_kernel_options opts;
    gn_kernel_options_init(&opts);
    opts.layer = layer;
    opts.output = output;
    opts.row_begin = rb;
    opts.row_count = rc;
    opts.col_begin = cb;
    opts.col_count = cc;
    opts.upper_only = upper_only;
    opts.gate_path = (gn_gate_path)gate_path;
    opts.ntk_scaling = ntk_scaling;
    opts.out_transposed = ot.data;
    opts.ld_transposed = ot.ld;
    opts.capacity_transposed = ot.capacity;
    opts.gates_a = ga.data;
    opts.capacity_gates_a = ga.data ? (int64_t)(ga.rows * ga.cols) : 0;
    opts.gates_b = gb.data;
    opts.capacity_gates_b = gb.data ? (int64_t)(gb.rows * gb.cols) : 0;
    if (xb_obj != Py_None && b->data == xa.data && b->rows == xa.rows && gb.data != NULL) {
        /* xb is xa's very memory (e.g. kernel(x, x)): the library computes a symmetric kernel, whose
         * gates_a serve both sides and which refuses another gates_b; gates_b are the same rows' gates. */
        if (opts.gates_a == NULL) {
            opts.gates_a = gb.data;
            opts.capacity_gates_a = opts.capacity_gates_b;
        }
        opts.gates_b = NULL;
        opts.capacity_gates_b = 0;
    }
    gnpy_callback_context ctx = {0};
    gnpy_kernel_call_begin(&ctx, progress == Py_None ? NULL : progress, &opts.progress, &opts.progress_user);
    gn_status s = gn_kernel_compute(self->net, (gn_kernel_kind)kind, xa.data, xa.rows, b->data, b->rows, &opts,
                                    o.data, o.ld, o.capacity);
    r = gnpy_kernel_call_end(&ctx, s, &o);
done:
    gnpy_output_finish(&o, 0);
    gnpy_output_finish(&ot, 0);
    gnpy_input_release(&xa);
    gnpy_input_release(&xb);
    gnpy_input_release(&ga);
    gnpy_input_release(&gb);
    gnpy_end(self);
    return r;
}

static PyObject *network_active_paths(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x", "groups", "n_groups", NULL};
    PyObject *x_obj, *g_obj = Py_None;
    long long n_groups = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OL:active_paths", kwlist, &x_obj, &g_obj, &n_groups)) return NULL;
    if (gnpy_begin(self) < 0) return NULL;
    gn_network_info info;
    gnpy_input x = {0}, g = {0};
    GNPy_Buffer *mean = NULL, *counts = NULL;
    PyObject *r = NULL;
    gn_status s;
    if (get_info(self, &info) < 0) goto done;
    if (gnpy_input_f32_matrix(x_obj, "x", (Py_ssize_t)info.input_size, &x) < 0) goto done;
    if (g_obj == Py_None) {
        Py_ssize_t shape[1] = {x.rows};
        if ((mean = gnpy_buffer_new('d', 1, shape)) == NULL) goto done;
        Py_BEGIN_ALLOW_THREADS
        s = gn_active_paths(self->net, x.data, x.rows, mean->data, mean->nitems);
        Py_END_ALLOW_THREADS
        if (s != GN_OK) { gnpy_raise(s); goto done; }
        r = (PyObject *)mean;
        mean = NULL;
        goto done;
    }
    if (gnpy_input_i32_vector(g_obj, "groups", x.rows, &g) < 0) goto done;
    if (n_groups < 1) {
        PyErr_Format(PyExc_ValueError, "n_groups: got %lld, need >= 1", n_groups);
        goto done;
    }
    Py_ssize_t shape[1] = {(Py_ssize_t)n_groups};
    if ((mean = gnpy_buffer_new('d', 1, shape)) == NULL || (counts = gnpy_buffer_new('q', 1, shape)) == NULL) goto done;
    Py_BEGIN_ALLOW_THREADS
    s = gn_active_paths_by_group(self->net, x.data, x.rows, g.data, n_groups, mean->data, mean->nitems,
                                 counts->data, counts->nitems);
    Py_END_ALLOW_THREADS
    if (s != GN_OK) { gnpy_raise(s); goto done; }
    r = PyTuple_Pack(2, (PyObject *)mean, (PyObject *)counts);
done:
    Py_XDECREF(mean);
    Py_XDECREF(counts);
    gnpy_input_release(&x);
    gnpy_input_release(&g);
    gnpy_end(self);
    return r;
}

static PyObject *network_gate_hyperplanes(GNPy_Network *self, PyObject *args) {
    long long layer;
    if (!PyArg_ParseTuple(args, "L:gate_hyperplanes", &layer)) return NULL;
    if (gnpy_begin(self) < 0) return NULL;
    gn_network_info info;
    int64_t width = 0;
    GNPy_Buffer *normals = NULL, *offsets = NULL;
    PyObject *r = NULL;
    gn_status s;
    if (get_info(self, &info) < 0) goto done;
    if ((s = gn_network_hidden_width(self->net, layer, &width)) != GN_OK) { gnpy_raise(s); goto done; }
    Py_ssize_t nshape[2] = {(Py_ssize_t)width, (Py_ssize_t)info.input_size}, oshape[1] = {(Py_ssize_t)width};
    if ((normals = gnpy_buffer_new('f', 2, nshape)) == NULL || (offsets = gnpy_buffer_new('f', 1, oshape)) == NULL)
        goto done;
    Py_BEGIN_ALLOW_THREADS
    s = gn_gate_hyperplanes(self->net, layer, normals->data, normals->nitems, offsets->data, offsets->nitems);
    Py_END_ALLOW_THREADS
    if (s != GN_OK) { gnpy_raise(s); goto done; }
    r = PyTuple_Pack(2, (PyObject *)normals, (PyObject *)offsets);
done:
    Py_XDECREF(normals);
    Py_XDECREF(offsets);
    gnpy_end(self);
    return r;
}

/* ---- type ------------------------------------------------------------------------------------ */

static PyMethodDef network_methods[] = {
    GNPY_HANDLE_METHODS,
    {"_info", (PyCFunction)network_info, METH_NOARGS, "_info() -> dict of gn_network_info (enums as ints)."},
    {"_weight_shape", (PyCFunction)network_weight_shape, METH_VARARGS, "_weight_shape(part, layer) -> (rows, cols)"},
    {"_get_weights", (PyCFunction)(void (*)(void))network_get_weights, METH_VARARGS | METH_KEYWORDS,
     "_get_weights(part, layer, out=None, bias=False) -> Buffer"},
    {"_set_weights", (PyCFunction)network_set_weights, METH_VARARGS, "_set_weights(part, layer, w)"},
    {"copy_feature_weights", (PyCFunction)(void (*)(void))gnpy_handle_copy_feature_weights,
     METH_VARARGS | METH_KEYWORDS,
     "copy_feature_weights(source, freeze=True)\n\nCopy the feature (gating) weights of `source` (e.g. a "
     "trained ReLU network) into this network and freeze them if `freeze`. Shapes must agree."},
    {"predict", (PyCFunction)(void (*)(void))network_predict, METH_VARARGS | METH_KEYWORDS,
     "predict($self, x, *, out=None)\n--\n\nReturns a Buffer. Outputs (logits), shape (n, output_size) float32."},
    {"predict_classes", (PyCFunction)(void (*)(void))network_predict_classes, METH_VARARGS | METH_KEYWORDS,
     "predict_classes($self, x, *, out=None)\n--\n\nReturns a Buffer. Arg-max class per row (int32, shape (n,)); for "
     "output_size 1, 1 where the output is > 0."},
    {"predict_feature_head", (PyCFunction)(void (*)(void))network_predict_feature_head, METH_VARARGS | METH_KEYWORDS,
     "predict_feature_head($self, x, *, out=None)\n--\n\nReturns a Buffer. Outputs of the feature net through its own head."},
    {"_gates", (PyCFunction)(void (*)(void))network_gates, METH_VARARGS | METH_KEYWORDS,
     "_gates(x, layer, out=None, packed=False) -> Buffer"},
    {"_packed_gates", (PyCFunction)(void (*)(void))network_packed_gates, METH_VARARGS | METH_KEYWORDS,
     "_packed_gates(x, out=None) -> Buffer (n, words_per_row) uint64"},
    {"_hidden_state", (PyCFunction)(void (*)(void))network_hidden_state, METH_VARARGS | METH_KEYWORDS,
     "_hidden_state(x, part, layer, kind, out=None) -> Buffer (n, width)"},
    {"_kernel", (PyCFunction)(void (*)(void))network_kernel, METH_VARARGS | METH_KEYWORDS,
     "_kernel(kind, xa, xb=None, layer=0, out=None) -> Buffer"},
    {"_kernel_compute", (PyCFunction)(void (*)(void))network_kernel_compute, METH_VARARGS | METH_KEYWORDS,
     "_kernel_compute(kind, xa, xb=None, layer=0, output=-1, row_begin=0, row_count=0, col_begin=0, "
     "col_count=0, upper_only=False, gate_path=0, ntk_scaling=False, out=None, progress=None, "
     "out_transposed=None, gates_a=None, gates_b=None) -> Buffer"},
    {"_active_paths", (PyCFunction)(void (*)(void))network_active_paths, METH_VARARGS | METH_KEYWORDS,
     "_active_paths(x, groups=None, n_groups=0) -> Buffer or (mean, counts)"},
    {"_gate_hyperplanes", (PyCFunction)network_gate_hyperplanes, METH_VARARGS,
     "_gate_hyperplanes(layer) -> (normals, offsets)"},
    GNPY_HANDLE_FILE_METHODS("Network", network_ops,
                             "Write a versioned, checksummed file atomically (the file is either the old or the "
                             "new one). Raises FileError.",
                             ""),
    {NULL, NULL, 0, NULL},
};

PyTypeObject GNPy_NetworkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gatednet._core.Network",
    .tp_doc = "Low-level wrapper of one gn_network handle; use gatednet.Network.",
    .tp_methods = network_methods,
    .tp_init = (initproc)network_init,
    .tp_new = network_new,
    GNPY_HANDLE_TYPE_SLOTS,
};
