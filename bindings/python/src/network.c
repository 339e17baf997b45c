/* gatednet._core.Network: one gn_network handle, a lock, and methods that map 1:1 onto the
 * C ABI. Enumerations are plain ints here; gatednet/__init__.py maps names onto them.
 *
 * Concurrency: every call takes the object's lock, then releases the GIL around the library
 * call, so other Python threads run meanwhile. A second thread using the same Network waits
 * (interruptible by Ctrl-C); a call made on the network from inside its own fit() or kernel
 * progress callback raises GatedNetError instead of deadlocking. */
#include "gatednet_py.h"

#include <math.h>
#include <string.h>

/* ---- lifecycle and locking --------------------------------------------------------------- */

static PyObject *network_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    (void)args;
    (void)kwargs;
    GNPy_Network *self = (GNPy_Network *)type->tp_alloc(type, 0);
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

static void network_dealloc(GNPy_Network *self) {
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs((PyObject *)self);
    /* No call can be running: every method holds a reference to self. */
    gn_network_free(self->net);
    self->net = NULL;
    if (self->lock != NULL) PyThread_free_lock(self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int acquire_one(GNPy_Network *self) {
    unsigned long me = PyThread_get_thread_ident();
    if (self->owner == me) {
        PyErr_SetString(GNPy_Error,
                        "network is busy in this thread: a fit() callback or a kernel progress "
                        "callback may not use the network it is called for");
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

static void release_one(GNPy_Network *self) {
    self->owner = 0;
    PyThread_release_lock(self->lock);
}

/* Lock the network for a call; fails if it is closed. */
static int net_begin(GNPy_Network *self) {
    if (self->net == NULL) {
        gnpy_raise_msg(GN_ERR_INVALID_HANDLE, "network is closed");
        return -1;
    }
    if (acquire_one(self) < 0) return -1;
    if (self->net == NULL) { /* closed by another thread while we waited */
        release_one(self);
        gnpy_raise_msg(GN_ERR_INVALID_HANDLE, "network is closed");
        return -1;
    }
    return 0;
}

static void net_end(GNPy_Network *self) { release_one(self); }

/* Lock two networks (in address order, so two threads never deadlock); a == b locks once. */
static int net_begin2(GNPy_Network *a, GNPy_Network *b) {
    if (a == b) return net_begin(a);
    GNPy_Network *first = a < b ? a : b, *second = a < b ? b : a;
    if (net_begin(first) < 0) return -1;
    if (net_begin(second) < 0) {
        net_end(first);
        return -1;
    }
    return 0;
}

static void net_end2(GNPy_Network *a, GNPy_Network *b) {
    net_end(a);
    if (a != b) net_end(b);
}

/* A new object of `type` owning `net` (consumed, freed on failure). */
static PyObject *wrap_network(PyTypeObject *type, gn_network *net) {
    PyObject *obj = network_new(type, NULL, NULL);
    if (obj == NULL) {
        gn_network_free(net);
        return NULL;
    }
    ((GNPy_Network *)obj)->net = net;
    return obj;
}

/* ---- creation ------------------------------------------------------------------------------ */

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

static int opt_bool(PyObject *o, const char *name, int *out) {
    (void)name;
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

/* A sequence of ints into a fresh int64 array (caller frees). */
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
        if (!PyLong_Check(item) && !PyIndex_Check(item)) {
            PyErr_Format(PyExc_TypeError, "%s[%zd]: expected an int, got %.100s", name, i,
                         Py_TYPE(item)->tp_name);
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
    int64_t *widths = int64_list(widths_obj, "hidden_widths", &n_hidden);
    if (widths == NULL) return -1;
    int64_t *permutation = NULL;
    int rc = -1;
    gn_network_spec spec;
    gn_status s = gn_network_spec_init(&spec, (gn_regime)regime, input_size, n_hidden, widths, output_size);
    if (s != GN_OK) { gnpy_raise(s); goto done; }
    int act = spec.feature_activation, gk = spec.gate_kind, vi = spec.value_input, ik = spec.init;
    if (opt_int(activation, "activation", &act) < 0 || opt_int(gate, "gate", &gk) < 0 ||
        opt_float(beta, "beta", &spec.beta) < 0 || opt_int(value_input, "value_input", &vi) < 0 ||
        opt_bool(bias, "bias", &spec.bias) < 0 || opt_bool(head, "feature_head", &spec.feature_head) < 0 ||
        opt_bool(frozen, "feature_frozen", &spec.feature_frozen) < 0 || opt_int(init, "init", &ik) < 0 ||
        opt_float(init_scale, "init_scale", &spec.init_scale) < 0 || opt_uint64(seed, "seed", &spec.seed) < 0)
        goto done;
    spec.feature_activation = (gn_activation)act;
    spec.gate_kind = (gn_gate_kind)gk;
    spec.value_input = (gn_value_input)vi;
    spec.init = (gn_init_kind)ik;
    if (perm != NULL && perm != Py_None) {
        permutation = int64_list(perm, "permutation", &n_perm);
        if (permutation == NULL) goto done;
        if (n_perm != n_hidden) {
            PyErr_Format(PyExc_ValueError, "permutation: got %zd entries, need %zd (one per hidden layer)",
                         n_perm, n_hidden);
            goto done;
        }
        spec.permutation = permutation;
    }
    GNPy_Network *src = NULL;
    if (source != NULL && source != Py_None) {
        if (!PyObject_TypeCheck(source, &GNPy_NetworkType)) {
            PyErr_Format(PyExc_TypeError, "gate_source: expected a gatednet.Network, got %.100s",
                         Py_TYPE(source)->tp_name);
            goto done;
        }
        src = (GNPy_Network *)source;
        if (net_begin(src) < 0) goto done;
        spec.gate_source = src->net;
    }
    gn_network *net = NULL;
    Py_BEGIN_ALLOW_THREADS
    s = gn_network_create(&spec, &net);
    Py_END_ALLOW_THREADS
    if (src != NULL) net_end(src);
    if (s != GN_OK) { gnpy_raise(s); goto done; }
    self->net = net;
    rc = 0;
done:
    PyMem_Free(widths);
    PyMem_Free(permutation);
    return rc;
}

/* ---- small queries -------------------------------------------------------------------------- */

static PyObject *network_close(GNPy_Network *self, PyObject *unused) {
    (void)unused;
    if (self->net == NULL) Py_RETURN_NONE;
    if (acquire_one(self) < 0) return NULL;
    gn_network_free(self->net);
    self->net = NULL;
    release_one(self);
    Py_RETURN_NONE;
}

static PyObject *network_get_closed(GNPy_Network *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(self->net == NULL);
}

static PyObject *network_enter(GNPy_Network *self, PyObject *unused) {
    (void)unused;
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *network_exit(GNPy_Network *self, PyObject *args) {
    (void)args;
    PyObject *r = network_close(self, NULL);
    if (r == NULL) return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

static int get_info(GNPy_Network *self, gn_network_info *info) {
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
    gn_status s = gn_network_get_info(self->net, info);
    if (s != GN_OK) { gnpy_raise(s); return -1; }
    return 0;
}

#define SET_ITEM(d, key, expr)                                                         \
    do {                                                                               \
        PyObject *v_ = (expr);                                                         \
        if (v_ == NULL || PyDict_SetItemString(d, key, v_) < 0) { Py_XDECREF(v_); goto fail; } \
        Py_DECREF(v_);                                                                 \
    } while (0)

static PyObject *network_info(GNPy_Network *self, PyObject *unused) {
    (void)unused;
    if (net_begin(self) < 0) return NULL;
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
    SET_ITEM(d, "activation", PyLong_FromLong(info.feature_activation));
    SET_ITEM(d, "gate", PyLong_FromLong(info.gate_kind));
    SET_ITEM(d, "beta", PyFloat_FromDouble(info.beta));
    SET_ITEM(d, "value_input", PyLong_FromLong(info.value_input));
    SET_ITEM(d, "permutation", (Py_INCREF(perm), perm));
    SET_ITEM(d, "bias", PyBool_FromLong(info.bias));
    SET_ITEM(d, "feature_head", PyBool_FromLong(info.feature_head));
    SET_ITEM(d, "tied", PyBool_FromLong(info.tied));
    SET_ITEM(d, "feature_frozen", PyBool_FromLong(info.feature_frozen));
    SET_ITEM(d, "value_frozen", PyBool_FromLong(info.value_frozen));
    SET_ITEM(d, "parameter_count", PyLong_FromLongLong(info.parameter_count));
    SET_ITEM(d, "epochs_trained", PyLong_FromLongLong(info.epochs_trained));
    Py_DECREF(widths);
    Py_DECREF(perm);
    net_end(self);
    return d;
fail:
    Py_XDECREF(d);
    Py_XDECREF(widths);
    Py_XDECREF(perm);
    net_end(self);
    return NULL;
}

static PyObject *network_describe(GNPy_Network *self, PyObject *unused) {
    (void)unused;
    if (net_begin(self) < 0) return NULL;
    char small[256];
    size_t needed = 0;
    gn_status s = gn_network_describe(self->net, small, sizeof small, &needed);
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
            s = gn_network_describe(self->net, big, needed, NULL);
            r = s == GN_OK ? PyUnicode_FromString(big) : gnpy_raise(s);
            PyMem_Free(big);
        }
    }
    net_end(self);
    return r;
}

/* ---- parameters ------------------------------------------------------------------------------ */

static PyObject *network_weight_shape(GNPy_Network *self, PyObject *args) {
    int part;
    long long layer;
    if (!PyArg_ParseTuple(args, "iL:weight_shape", &part, &layer)) return NULL;
    if (net_begin(self) < 0) return NULL;
    int64_t rows = 0, cols = 0;
    gn_status s = gn_network_weight_shape(self->net, (gn_part)part, layer, &rows, &cols);
    net_end(self);
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
    if (net_begin(self) < 0) return NULL;
    int64_t rows = 0, cols = 0;
    gn_status s = gn_network_weight_shape(self->net, (gn_part)part, layer, &rows, &cols);
    if (s != GN_OK) { net_end(self); return gnpy_raise(s); }
    Py_ssize_t shape[2] = {(Py_ssize_t)rows, (Py_ssize_t)cols};
    gnpy_output o;
    if (gnpy_output_prepare(out, "out", 'f', want_bias ? 1 : 2, shape, 0, &o) < 0) { net_end(self); return NULL; }
    if (want_bias) s = gn_network_get_bias(self->net, (gn_part)part, layer, o.data, o.capacity);
    else s = gn_network_get_weights(self->net, (gn_part)part, layer, o.data, o.capacity);
    net_end(self);
    PyObject *r = gnpy_output_finish(&o, s == GN_OK);
    return s == GN_OK ? r : gnpy_raise(s);
}

static PyObject *network_set_weights(GNPy_Network *self, PyObject *args) {
    int part;
    long long layer;
    PyObject *w;
    if (!PyArg_ParseTuple(args, "iLO:set_weights", &part, &layer, &w)) return NULL;
    if (net_begin(self) < 0) return NULL;
    int64_t rows = 0, cols = 0;
    gn_status s = gn_network_weight_shape(self->net, (gn_part)part, layer, &rows, &cols);
    if (s != GN_OK) { net_end(self); return gnpy_raise(s); }
    gnpy_input in;
    if (gnpy_input_f32_flat(w, "w", (Py_ssize_t)(rows * cols), &in) < 0) { net_end(self); return NULL; }
    s = gn_network_set_weights(self->net, (gn_part)part, layer, in.data, rows * cols);
    gnpy_input_release(&in);
    net_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    Py_RETURN_NONE;
}

static PyObject *network_set_frozen(GNPy_Network *self, PyObject *args) {
    int part, frozen;
    if (!PyArg_ParseTuple(args, "ip:set_frozen", &part, &frozen)) return NULL;
    if (net_begin(self) < 0) return NULL;
    gn_status s = gn_network_set_frozen(self->net, (gn_part)part, frozen);
    net_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    Py_RETURN_NONE;
}

static PyObject *network_copy_feature_weights(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"source", "freeze", NULL};
    PyObject *src_obj;
    int freeze = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:copy_feature_weights", kwlist, &src_obj, &freeze))
        return NULL;
    if (!PyObject_TypeCheck(src_obj, &GNPy_NetworkType)) {
        PyErr_Format(PyExc_TypeError, "source: expected a gatednet.Network, got %.100s", Py_TYPE(src_obj)->tp_name);
        return NULL;
    }
    GNPy_Network *src = (GNPy_Network *)src_obj;
    if (net_begin2(self, src) < 0) return NULL;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_network_copy_feature_weights(self->net, src->net, freeze);
    Py_END_ALLOW_THREADS
    net_end2(self, src);
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

/* Runs on the training thread between epochs: takes the GIL, records the metrics, calls the
 * Python callback, checks for Ctrl-C; any exception is stored and stops training. */
static int train_progress(const gn_epoch_metrics *metrics, void *user) {
    train_context *ctx = user;
    PyEval_RestoreThread(ctx->tstate);
    int stop = 0;
    PyObject *d = metrics_dict(metrics, ctx->has_test);
    if (d == NULL || PyList_Append(ctx->history, d) < 0) goto error;
    if (ctx->callback != NULL) {
        PyObject *r = PyObject_CallOneArg(ctx->callback, d);
        if (r == NULL) goto error;
        /* None (no return statement) continues; False or any other falsy value stops. */
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

/* Polled by the library between minibatches (about every 0.1 s): takes the GIL only to let
 * Python run its signal handlers, so Ctrl-C interrupts a long epoch; the pending exception
 * (KeyboardInterrupt) is stored and re-raised after gn_train returns GN_ERR_CANCELLED. */
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

static PyObject *network_train(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x", "y", "x_test", "y_test", "optimizer", "loss", "learning_rate",
                             "momentum", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
                             "batch_size", "epochs", "shuffle_seed", "train_feature_head", "callback", NULL};
    PyObject *x_obj, *y_obj, *xt_obj = Py_None, *yt_obj = Py_None;
    PyObject *optimizer = NULL, *loss = NULL, *lr = NULL, *momentum = NULL, *wd = NULL, *b1 = NULL,
             *b2 = NULL, *eps = NULL, *batch = NULL, *epochs = NULL, *shuffle = NULL, *tfh = NULL,
             *callback = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OO$OOOOOOOOOOOOO:train", kwlist, &x_obj, &y_obj,
                                     &xt_obj, &yt_obj, &optimizer, &loss, &lr, &momentum, &wd, &b1, &b2,
                                     &eps, &batch, &epochs, &shuffle, &tfh, &callback))
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
        opt_uint64(shuffle, "shuffle_seed", &o.shuffle_seed) < 0 ||
        opt_bool(tfh, "train_feature_head", &o.train_feature_head) < 0)
        return NULL;
    o.optimizer = (gn_optimizer)opt;
    o.loss = (gn_loss)ls;

    if (net_begin(self) < 0) return NULL;
    gn_network_info info;
    gnpy_input x = {0}, y = {0}, xt = {0}, yt = {0};
    PyObject *result = NULL;
    train_context ctx = {0};
    if (get_info(self, &info) < 0) goto done;
    if (gnpy_input_f32_matrix(x_obj, "x", (Py_ssize_t)info.input_size, &x) < 0) goto done;
    if (gnpy_input_i32_vector(y_obj, "y", x.rows, &y) < 0) goto done;
    if (xt_obj != Py_None) {
        if (gnpy_input_f32_matrix(xt_obj, "x_test", (Py_ssize_t)info.input_size, &xt) < 0) goto done;
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
    gn_status s = gn_train(self->net, x.data, y.data, x.rows, xt.data, yt.data, ctx.has_test ? xt.rows : 0,
                           &o, NULL, 0, &run);
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

enum { PREDICT_OUTPUTS, PREDICT_CLASSES, PREDICT_FEATURE_HEAD };

static PyObject *predict_common(GNPy_Network *self, PyObject *args, PyObject *kwargs, int which) {
    static char *kwlist[] = {"x", "out", NULL};
    PyObject *x_obj, *out = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:predict", kwlist, &x_obj, &out)) return NULL;
    if (net_begin(self) < 0) return NULL;
    gn_network_info info;
    gnpy_input x = {0};
    gnpy_output o = {0};
    PyObject *r = NULL;
    if (get_info(self, &info) < 0) goto done;
    if (gnpy_input_f32_matrix(x_obj, "x", (Py_ssize_t)info.input_size, &x) < 0) goto done;
    Py_ssize_t shape[2] = {x.rows, (Py_ssize_t)info.output_size};
    if (gnpy_output_prepare(out, "out", which == PREDICT_CLASSES ? 'i' : 'f', which == PREDICT_CLASSES ? 1 : 2,
                            shape, 0, &o) < 0)
        goto done;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    if (which == PREDICT_CLASSES) s = gn_predict_classes(self->net, x.data, x.rows, o.data, o.capacity);
    else if (which == PREDICT_FEATURE_HEAD) s = gn_predict_feature_head(self->net, x.data, x.rows, o.data, o.capacity);
    else s = gn_predict(self->net, x.data, x.rows, o.data, o.capacity);
    Py_END_ALLOW_THREADS
    r = gnpy_output_finish(&o, s == GN_OK);
    if (s != GN_OK) gnpy_raise(s);
done:
    gnpy_input_release(&x);
    net_end(self);
    return r;
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

static PyObject *network_evaluate(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x", "y", "loss", NULL};
    PyObject *x_obj, *y_obj;
    int loss = GN_LOSS_CROSS_ENTROPY;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|i:evaluate", kwlist, &x_obj, &y_obj, &loss)) return NULL;
    if (net_begin(self) < 0) return NULL;
    gn_network_info info;
    gnpy_input x = {0}, y = {0};
    PyObject *r = NULL;
    if (get_info(self, &info) < 0) goto done;
    if (gnpy_input_f32_matrix(x_obj, "x", (Py_ssize_t)info.input_size, &x) < 0) goto done;
    if (gnpy_input_i32_vector(y_obj, "y", x.rows, &y) < 0) goto done;
    double mean_loss = NAN, accuracy = NAN;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_evaluate(self->net, x.data, y.data, x.rows, (gn_loss)loss, &mean_loss, &accuracy);
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

static PyObject *network_gates(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x", "layer", "out", "packed", NULL};
    PyObject *x_obj, *out = Py_None;
    long long layer;
    int packed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OL|Op:gates", kwlist, &x_obj, &layer, &out, &packed))
        return NULL;
    if (net_begin(self) < 0) return NULL;
    gn_network_info info;
    gnpy_input x = {0};
    gnpy_output o = {0};
    PyObject *r = NULL;
    gn_status s;
    if (get_info(self, &info) < 0) goto done;
    int64_t cols = 0;
    s = packed ? gn_gates_packed_words(self->net, layer, &cols) : gn_network_hidden_width(self->net, layer, &cols);
    if (s != GN_OK) { gnpy_raise(s); goto done; }
    if (gnpy_input_f32_matrix(x_obj, "x", (Py_ssize_t)info.input_size, &x) < 0) goto done;
    Py_ssize_t shape[2] = {x.rows, (Py_ssize_t)cols};
    if (gnpy_output_prepare(out, "out", packed ? 'Q' : 'f', 2, shape, 0, &o) < 0) goto done;
    Py_BEGIN_ALLOW_THREADS
    if (packed) s = gn_gates_packed(self->net, x.data, x.rows, layer, o.data, o.capacity);
    else s = gn_gates(self->net, x.data, x.rows, layer, o.data, o.capacity);
    Py_END_ALLOW_THREADS
    r = gnpy_output_finish(&o, s == GN_OK);
    if (s != GN_OK) gnpy_raise(s);
done:
    gnpy_input_release(&x);
    net_end(self);
    return r;
}

static PyObject *network_kernel(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"kind", "xa", "xb", "layer", "out", NULL};
    int kind;
    PyObject *xa_obj, *xb_obj = Py_None, *out = Py_None;
    long long layer = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iO|OLO:kernel", kwlist, &kind, &xa_obj, &xb_obj, &layer, &out))
        return NULL;
    if (net_begin(self) < 0) return NULL;
    gn_network_info info;
    gnpy_input xa = {0}, xb = {0};
    gnpy_output o = {0};
    PyObject *r = NULL;
    if (get_info(self, &info) < 0) goto done;
    if (gnpy_input_f32_matrix(xa_obj, "xa", (Py_ssize_t)info.input_size, &xa) < 0) goto done;
    int symmetric = xb_obj == Py_None;
    if (!symmetric && gnpy_input_f32_matrix(xb_obj, "xb", (Py_ssize_t)info.input_size, &xb) < 0) goto done;
    const void *b_data = symmetric ? xa.data : xb.data;
    Py_ssize_t b_rows = symmetric ? xa.rows : xb.rows;
    Py_ssize_t shape[2] = {xa.rows, b_rows};
    if (gnpy_output_prepare(out, "out", 'f', 2, shape, 1, &o) < 0) goto done;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_kernel(self->net, (gn_kernel_kind)kind, layer, xa.data, xa.rows, b_data, b_rows, o.data, o.ld,
                  o.capacity);
    Py_END_ALLOW_THREADS
    r = gnpy_output_finish(&o, s == GN_OK);
    if (s != GN_OK) gnpy_raise(s);
done:
    gnpy_input_release(&xa);
    gnpy_input_release(&xb);
    net_end(self);
    return r;
}

/* ---- kernel suite (gn_kernel_compute and friends) ----------------------------------------- */

typedef struct {
    PyThreadState *tstate;
    PyObject *callback;  /* borrowed; NULL for none */
    int failed;
    PyObject *exc_type, *exc_value, *exc_tb;
} kernel_context;

/* After each tile: take the GIL, call the Python progress callback, check for Ctrl-C. */
static int kernel_progress(double fraction, void *user) {
    kernel_context *ctx = user;
    PyEval_RestoreThread(ctx->tstate);
    int stop = 0;
    if (ctx->callback != NULL) {
        PyObject *f = PyFloat_FromDouble(fraction);
        PyObject *r = f ? PyObject_CallOneArg(ctx->callback, f) : NULL;
        Py_XDECREF(f);
        if (r == NULL) goto error;
        if (r != Py_None) {
            int t = PyObject_IsTrue(r);
            if (t < 0) { Py_DECREF(r); goto error; }
            stop = !t;
        }
        Py_DECREF(r);
    }
    if (PyErr_CheckSignals() < 0) goto error;
    ctx->tstate = PyEval_SaveThread();
    return stop;
error:
    ctx->failed = 1;
    PyErr_Fetch(&ctx->exc_type, &ctx->exc_value, &ctx->exc_tb);
    ctx->tstate = PyEval_SaveThread();
    return 1;
}

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
                             "col_count", "upper_only", "gate_path", "ntk_scaling", "out", "progress", NULL};
    int kind, upper_only = 0, gate_path = GN_GATE_PATH_AUTO, ntk_scaling = 0;
    PyObject *xa_obj, *xb_obj = Py_None, *out = Py_None, *progress = Py_None;
    long long layer = 0, output = -1, rb = 0, rc = 0, cb = 0, cc = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iO|OLLLLLLpipOO:kernel_compute", kwlist, &kind, &xa_obj,
                                     &xb_obj, &layer, &output, &rb, &rc, &cb, &cc, &upper_only, &gate_path,
                                     &ntk_scaling, &out, &progress))
        return NULL;
    if (progress != Py_None && !PyCallable_Check(progress)) {
        PyErr_Format(PyExc_TypeError, "progress: expected a callable, got %.100s", Py_TYPE(progress)->tp_name);
        return NULL;
    }
    if (net_begin(self) < 0) return NULL;
    gn_network_info info;
    gnpy_input xa = {0}, xb = {0};
    gnpy_output o = {0};
    PyObject *r = NULL;
    if (get_info(self, &info) < 0) goto done;
    if (gnpy_input_f32_matrix(xa_obj, "xa", (Py_ssize_t)info.input_size, &xa) < 0) goto done;
    int symmetric = xb_obj == Py_None;
    if (!symmetric && gnpy_input_f32_matrix(xb_obj, "xb", (Py_ssize_t)info.input_size, &xb) < 0) goto done;
    const void *b_data = symmetric ? xa.data : xb.data;
    Py_ssize_t b_rows = symmetric ? xa.rows : xb.rows, rows, cols;
    if (block_range(rb, rc, xa.rows, "rows", &rows) < 0 || block_range(cb, cc, b_rows, "cols", &cols) < 0) goto done;
    Py_ssize_t shape[2] = {rows, cols};
    if (gnpy_output_prepare(out, "out", 'f', 2, shape, 1, &o) < 0) goto done;
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
    kernel_context ctx = {0};
    ctx.callback = progress == Py_None ? NULL : progress;
    opts.progress = kernel_progress;
    opts.progress_user = &ctx;
    ctx.tstate = PyEval_SaveThread();
    gn_status s = gn_kernel_compute(self->net, (gn_kernel_kind)kind, xa.data, xa.rows, b_data, b_rows, &opts,
                                    o.data, o.ld, o.capacity);
    PyEval_RestoreThread(ctx.tstate);
    int ok = s == GN_OK && !ctx.failed;
    r = gnpy_output_finish(&o, ok);
    if (ctx.failed) PyErr_Restore(ctx.exc_type, ctx.exc_value, ctx.exc_tb);
    else if (s != GN_OK) gnpy_raise(s);
done:
    gnpy_output_finish(&o, 0);
    gnpy_input_release(&xa);
    gnpy_input_release(&xb);
    net_end(self);
    return r;
}

static PyObject *network_active_paths(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x", "groups", "n_groups", NULL};
    PyObject *x_obj, *g_obj = Py_None;
    long long n_groups = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OL:active_paths", kwlist, &x_obj, &g_obj, &n_groups)) return NULL;
    if (net_begin(self) < 0) return NULL;
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
    net_end(self);
    return r;
}

static PyObject *network_gate_hyperplanes(GNPy_Network *self, PyObject *args) {
    long long layer;
    if (!PyArg_ParseTuple(args, "L:gate_hyperplanes", &layer)) return NULL;
    if (net_begin(self) < 0) return NULL;
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
    net_end(self);
    return r;
}

/* ---- persistence and copies ----------------------------------------------------------------- */

static PyObject *network_save(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"path", "optimizer_state", NULL};
    PyObject *path_obj;
    int with_opt = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:save", kwlist, &path_obj, &with_opt)) return NULL;
    PyObject *path = gnpy_fspath_bytes(path_obj, "path");
    if (path == NULL) return NULL;
    if (net_begin(self) < 0) { Py_DECREF(path); return NULL; }
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_network_save(self->net, PyBytes_AS_STRING(path), with_opt ? GN_SAVE_OPTIMIZER_STATE : 0);
    Py_END_ALLOW_THREADS
    net_end(self);
    Py_DECREF(path);
    if (s != GN_OK) return gnpy_raise(s);
    Py_RETURN_NONE;
}

static PyObject *network_load(PyObject *cls, PyObject *path_obj) {
    PyObject *path = gnpy_fspath_bytes(path_obj, "path");
    if (path == NULL) return NULL;
    gn_network *net = NULL;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_network_load(PyBytes_AS_STRING(path), &net);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (s != GN_OK) return gnpy_raise(s);
    return wrap_network((PyTypeObject *)cls, net);
}

static PyObject *network_to_bytes(GNPy_Network *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"optimizer_state", NULL};
    int with_opt = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p:to_bytes", kwlist, &with_opt)) return NULL;
    unsigned flags = with_opt ? GN_SAVE_OPTIMIZER_STATE : 0;
    if (net_begin(self) < 0) return NULL;
    size_t needed = 0;
    gn_status s = gn_network_serialize(self->net, flags, NULL, 0, &needed);
    PyObject *r = NULL;
    if (s != GN_OK && s != GN_ERR_BUFFER_TOO_SMALL) {
        gnpy_raise(s);
    } else if ((r = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)needed)) != NULL) {
        char *buf = PyBytes_AS_STRING(r);
        Py_BEGIN_ALLOW_THREADS
        s = gn_network_serialize(self->net, flags, buf, needed, &needed);
        Py_END_ALLOW_THREADS
        if (s != GN_OK) {
            Py_CLEAR(r);
            gnpy_raise(s);
        }
    }
    net_end(self);
    return r;
}

static PyObject *network_from_bytes(PyObject *cls, PyObject *data) {
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "data: expected a bytes-like object, got %.100s", Py_TYPE(data)->tp_name);
        return NULL;
    }
    gn_network *net = NULL;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_network_deserialize(view.buf, (size_t)view.len, &net);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (s != GN_OK) return gnpy_raise(s);
    return wrap_network((PyTypeObject *)cls, net);
}

static PyObject *network_clone(GNPy_Network *self, PyObject *unused) {
    (void)unused;
    if (net_begin(self) < 0) return NULL;
    gn_network *net = NULL;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_network_clone(self->net, &net);
    Py_END_ALLOW_THREADS
    net_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    return wrap_network(Py_TYPE(self), net);
}

/* ---- type ------------------------------------------------------------------------------------ */

static PyMethodDef network_methods[] = {
    {"close", (PyCFunction)network_close, METH_NOARGS,
     "close()\n\nFree the library handle now (idempotent). Later calls raise ClosedNetworkError."},
    {"__enter__", (PyCFunction)network_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)network_exit, METH_VARARGS, NULL},
    {"_info", (PyCFunction)network_info, METH_NOARGS, "_info() -> dict of gn_network_info (enums as ints)."},
    {"describe", (PyCFunction)network_describe, METH_NOARGS, "describe() -> str\n\nOne-line summary from the library."},
    {"_weight_shape", (PyCFunction)network_weight_shape, METH_VARARGS, "_weight_shape(part, layer) -> (rows, cols)"},
    {"_get_weights", (PyCFunction)(void (*)(void))network_get_weights, METH_VARARGS | METH_KEYWORDS,
     "_get_weights(part, layer, out=None, bias=False) -> Buffer"},
    {"_set_weights", (PyCFunction)network_set_weights, METH_VARARGS, "_set_weights(part, layer, w)"},
    {"_set_frozen", (PyCFunction)network_set_frozen, METH_VARARGS, "_set_frozen(part, frozen)"},
    {"copy_feature_weights", (PyCFunction)(void (*)(void))network_copy_feature_weights, METH_VARARGS | METH_KEYWORDS,
     "copy_feature_weights(source, freeze=True)\n\nCopy the feature (gating) weights of `source` (e.g. a "
     "trained ReLU network) into this network and freeze them if `freeze`. Shapes must agree."},
    {"_train", (PyCFunction)(void (*)(void))network_train, METH_VARARGS | METH_KEYWORDS, "_train(x, y, ...) -> list"},
    {"predict", (PyCFunction)(void (*)(void))network_predict, METH_VARARGS | METH_KEYWORDS,
     "predict(x, out=None) -> Buffer\n\nOutputs (logits), shape (n, output_size) float32."},
    {"predict_classes", (PyCFunction)(void (*)(void))network_predict_classes, METH_VARARGS | METH_KEYWORDS,
     "predict_classes(x, out=None) -> Buffer\n\nArg-max class per row (int32, shape (n,)); for "
     "output_size 1, 1 where the output is > 0."},
    {"predict_feature_head", (PyCFunction)(void (*)(void))network_predict_feature_head, METH_VARARGS | METH_KEYWORDS,
     "predict_feature_head(x, out=None) -> Buffer\n\nOutputs of the feature net through its own head."},
    {"_evaluate", (PyCFunction)(void (*)(void))network_evaluate, METH_VARARGS | METH_KEYWORDS,
     "_evaluate(x, y, loss=0) -> (mean_loss, accuracy)"},
    {"_gates", (PyCFunction)(void (*)(void))network_gates, METH_VARARGS | METH_KEYWORDS,
     "_gates(x, layer, out=None, packed=False) -> Buffer"},
    {"_kernel", (PyCFunction)(void (*)(void))network_kernel, METH_VARARGS | METH_KEYWORDS,
     "_kernel(kind, xa, xb=None, layer=0, out=None) -> Buffer"},
    {"_kernel_compute", (PyCFunction)(void (*)(void))network_kernel_compute, METH_VARARGS | METH_KEYWORDS,
     "_kernel_compute(kind, xa, xb=None, layer=0, output=-1, row_begin=0, row_count=0, col_begin=0, "
     "col_count=0, upper_only=False, gate_path=0, ntk_scaling=False, out=None, progress=None) -> Buffer"},
    {"_active_paths", (PyCFunction)(void (*)(void))network_active_paths, METH_VARARGS | METH_KEYWORDS,
     "_active_paths(x, groups=None, n_groups=0) -> Buffer or (mean, counts)"},
    {"_gate_hyperplanes", (PyCFunction)network_gate_hyperplanes, METH_VARARGS,
     "_gate_hyperplanes(layer) -> (normals, offsets)"},
    {"save", (PyCFunction)(void (*)(void))network_save, METH_VARARGS | METH_KEYWORDS,
     "save(path, optimizer_state=False)\n\nWrite a versioned, checksummed file atomically "
     "(the file is either the old or the new one). Raises FileError."},
    {"load", (PyCFunction)network_load, METH_O | METH_CLASS,
     "load(path) -> Network\n\nRead a file written by save(). Raises FileError or CorruptFileError."},
    {"to_bytes", (PyCFunction)(void (*)(void))network_to_bytes, METH_VARARGS | METH_KEYWORDS,
     "to_bytes(optimizer_state=False) -> bytes\n\nThe save() format in memory."},
    {"from_bytes", (PyCFunction)network_from_bytes, METH_O | METH_CLASS,
     "from_bytes(data) -> Network\n\nInverse of to_bytes(); CorruptFileError for foreign data."},
    {"clone", (PyCFunction)network_clone, METH_NOARGS,
     "clone() -> Network\n\nDeep copy: weights, frozen flags and optimizer state."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef network_getset[] = {
    {"closed", (getter)network_get_closed, NULL, "True after close().", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject GNPy_NetworkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gatednet._core.Network",
    .tp_basicsize = sizeof(GNPy_Network),
    .tp_dealloc = (destructor)network_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Low-level wrapper of one gn_network handle; use gatednet.Network.",
    .tp_weaklistoffset = offsetof(GNPy_Network, weakrefs),
    .tp_methods = network_methods,
    .tp_getset = network_getset,
    .tp_init = (initproc)network_init,
    .tp_new = network_new,
};
