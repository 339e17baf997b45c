/* What Network (network.c) and ConvNetwork (conv_network.c) share: the handle object and its
 * lock, option conversion, the fit() and evaluate machinery, persistence, describe and the
 * lifecycle methods. The type-specific C calls come in through the object's gnpy_handle_ops
 * (GNPY_HANDLE_OPS in gatednet_py.h). */
#include "gatednet_py.h"

#include <math.h>

/* ---- lifecycle and locking --------------------------------------------------------------- */

PyObject *gnpy_handle_new(PyTypeObject *type, const gnpy_handle_ops *ops) {
    GNPy_Handle *self = (GNPy_Handle *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->ops = ops;
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

void gnpy_handle_dealloc(GNPy_Handle *self) {
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs((PyObject *)self);
    /* No call can be running: every method holds a reference to self. */
    self->ops->free(self->net);
    self->net = NULL;
    if (self->lock != NULL) PyThread_free_lock(self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int acquire_one(GNPy_Handle *self) {
    unsigned long me = PyThread_get_thread_ident();
    if (self->owner == me) {
        PyErr_SetString(GNPy_BusyError, self->ops->busy_message);
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

static void release_one(GNPy_Handle *self) {
    self->owner = 0;
    PyThread_release_lock(self->lock);
}

int gnpy_begin(GNPy_Handle *self) {
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

void gnpy_end(GNPy_Handle *self) { release_one(self); }

/* Address order, so two threads locking the same pair never deadlock. */
int gnpy_begin2(GNPy_Handle *a, GNPy_Handle *b) {
    if (a == b) return gnpy_begin(a);
    GNPy_Handle *first = a < b ? a : b, *second = a < b ? b : a;
    if (gnpy_begin(first) < 0) return -1;
    if (gnpy_begin(second) < 0) {
        gnpy_end(first);
        return -1;
    }
    return 0;
}

void gnpy_end2(GNPy_Handle *a, GNPy_Handle *b) {
    gnpy_end(a);
    if (a != b) gnpy_end(b);
}

int gnpy_begin_gate_source(GNPy_Handle *self, PyObject *source, GNPy_Handle **src) {
    *src = NULL;
    if (source == NULL || source == Py_None) return 0;
    if (!PyObject_TypeCheck(source, self->ops->type)) {
        PyErr_Format(PyExc_TypeError, "gate_source: expected a %s, got %.100s", self->ops->public_name,
                     Py_TYPE(source)->tp_name);
        return -1;
    }
    if (gnpy_begin((GNPy_Handle *)source) < 0) return -1;
    *src = (GNPy_Handle *)source;
    return 0;
}

PyObject *gnpy_handle_wrap(PyTypeObject *type, const gnpy_handle_ops *ops, void *net) {
    PyObject *obj = gnpy_handle_new(type, ops);
    if (obj == NULL) {
        ops->free(net);
        return NULL;
    }
    ((GNPy_Handle *)obj)->net = net;
    return obj;
}

PyObject *gnpy_handle_close(GNPy_Handle *self, PyObject *unused) {
    (void)unused;
    if (self->net == NULL) Py_RETURN_NONE;
    if (acquire_one(self) < 0) return NULL;
    self->ops->free(self->net);
    self->net = NULL;
    release_one(self);
    Py_RETURN_NONE;
}

PyObject *gnpy_handle_get_closed(GNPy_Handle *self, void *closure) {
    (void)closure;
    return PyBool_FromLong(self->net == NULL);
}

PyObject *gnpy_handle_enter(GNPy_Handle *self, PyObject *unused) {
    (void)unused;
    Py_INCREF(self);
    return (PyObject *)self;
}

PyObject *gnpy_handle_exit(GNPy_Handle *self, PyObject *args) {
    (void)args;
    PyObject *r = gnpy_handle_close(self, NULL);
    if (r == NULL) return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

PyGetSetDef gnpy_handle_getset[] = {
    {"closed", (getter)gnpy_handle_get_closed, NULL, "True after close().", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* ---- inputs and outputs ------------------------------------------------------------------- */

int gnpy_input_pair(GNPy_Handle *self, PyObject *xa_obj, PyObject *xb_obj, gnpy_input *xa, gnpy_input *xb,
                    const gnpy_input **b) {
    if (self->ops->input(self, xa_obj, "xa", xa) < 0) return -1;
    *b = xa;
    if (xb_obj == Py_None) return 0;
    *b = xb;
    return self->ops->input(self, xb_obj, "xb", xb);
}

PyObject *gnpy_output_status(gnpy_output *o, gn_status s) {
    PyObject *r = gnpy_output_finish(o, s == GN_OK);
    if (s != GN_OK) gnpy_raise(s);
    return r;
}

/* ---- option conversion ------------------------------------------------------------------- */

/* Any None or absent (NULL) option leaves *out at its default. */
static int is_absent(PyObject *o) { return o == NULL || o == Py_None; }

/* After a failed conversion: a TypeError is reworded as "<name>: expected <what>, got <type>". */
static int conversion_failed(PyObject *o, const char *name, const char *what) {
    if (PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected %s, got %.100s", name, what, Py_TYPE(o)->tp_name);
    }
    return -1;
}

int gnpy_opt_int64(PyObject *o, const char *name, int64_t *out) {
    if (is_absent(o)) return 0;
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) return conversion_failed(o, name, "an int");
    *out = v;
    return 0;
}

int gnpy_opt_int(PyObject *o, const char *name, int *out) {
    int64_t v = *out;
    if (gnpy_opt_int64(o, name, &v) < 0) return -1;
    if (v < INT32_MIN || v > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: %lld out of range", name, (long long)v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int gnpy_opt_bool(PyObject *o, int *out) {
    if (is_absent(o)) return 0;
    int t = PyObject_IsTrue(o);
    if (t < 0) return -1;
    *out = t;
    return 0;
}

int gnpy_opt_float(PyObject *o, const char *name, float *out) {
    if (is_absent(o)) return 0;
    double d = PyFloat_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred()) return conversion_failed(o, name, "a number");
    *out = (float)d;
    return 0;
}

int gnpy_opt_uint64(PyObject *o, const char *name, uint64_t *out) {
    if (is_absent(o)) return 0;
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

void *gnpy_sequence_map(PyObject *obj, const char *name, const char *what, size_t item_size,
                        int (*convert)(PyObject *item, const char *name, Py_ssize_t i, void *out),
                        Py_ssize_t *count) {
    PyObject *seq = PySequence_Fast(obj, "");
    if (seq == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected a sequence of %s, got %.100s", name, what, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    char *a = PyMem_Calloc((size_t)(n > 0 ? n : 1), item_size);
    if (a == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (convert(PySequence_Fast_GET_ITEM(seq, i), name, i, a + (size_t)i * item_size) < 0) {
            Py_DECREF(seq);
            PyMem_Free(a);
            return NULL;
        }
    }
    Py_DECREF(seq);
    *count = n;
    return a;
}

static int int64_item(PyObject *item, const char *name, Py_ssize_t i, void *out) {
    if (!PyIndex_Check(item)) {
        PyErr_Format(PyExc_TypeError, "%s[%zd]: expected an int, got %.100s", name, i, Py_TYPE(item)->tp_name);
        return -1;
    }
    long long v = PyLong_AsLongLong(item);
    if (v == -1 && PyErr_Occurred()) return -1;
    *(int64_t *)out = v;
    return 0;
}

int64_t *gnpy_int64_list(PyObject *seq, const char *name, Py_ssize_t *count) {
    return gnpy_sequence_map(seq, name, "ints", sizeof(int64_t), int64_item, count);
}

/* ---- callbacks from a library call that runs without the GIL --------------------------------- */

void gnpy_callback_fail(gnpy_callback_context *ctx) {
    ctx->failed = 1;
    PyErr_Fetch(&ctx->exc_type, &ctx->exc_value, &ctx->exc_tb);
}

int gnpy_callback_step(gnpy_callback_context *ctx, PyObject *callback, PyObject *arg) {
    int stop = 0;
    if (arg == NULL) goto error;
    if (callback != NULL) {
        PyObject *r = PyObject_CallOneArg(callback, arg);
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
    return stop;
error:
    gnpy_callback_fail(ctx);
    return 1;
}

int gnpy_kernel_progress(double fraction, void *user) {
    gnpy_callback_context *ctx = user;
    PyEval_RestoreThread(ctx->tstate);
    PyObject *f = ctx->callback != NULL ? PyFloat_FromDouble(fraction) : (Py_INCREF(Py_None), Py_None);
    int stop = gnpy_callback_step(ctx, ctx->callback, f);
    Py_XDECREF(f);
    ctx->tstate = PyEval_SaveThread();
    return stop;
}

void gnpy_kernel_call_begin(gnpy_callback_context *ctx, PyObject *callback, gn_kernel_progress_fn *progress,
                            void **progress_user) {
    ctx->callback = callback;
    *progress = gnpy_kernel_progress;
    *progress_user = ctx;
    ctx->tstate = PyEval_SaveThread();
}

PyObject *gnpy_kernel_call_end(gnpy_callback_context *ctx, gn_status s, gnpy_output *o) {
    PyEval_RestoreThread(ctx->tstate);
    PyObject *r = gnpy_output_finish(o, s == GN_OK && !ctx->failed);
    if (ctx->failed) PyErr_Restore(ctx->exc_type, ctx->exc_value, ctx->exc_tb);
    else if (s != GN_OK) gnpy_raise(s);
    return r;
}

/* ---- description ------------------------------------------------------------------------------ */

PyObject *gnpy_handle_describe(GNPy_Handle *self, PyObject *unused) {
    (void)unused;
    if (gnpy_begin(self) < 0) return NULL;
    char small[256];
    size_t needed = 0;
    gn_status s = self->ops->describe(self->net, small, sizeof small, &needed);
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
            s = self->ops->describe(self->net, big, needed, NULL);
            r = s == GN_OK ? PyUnicode_FromString(big) : gnpy_raise(s);
            PyMem_Free(big);
        }
    }
    gnpy_end(self);
    return r;
}

/* ---- parameters --------------------------------------------------------------------------------- */

PyObject *gnpy_handle_set_frozen(GNPy_Handle *self, PyObject *args) {
    int part, frozen;
    if (!PyArg_ParseTuple(args, "ip:set_frozen", &part, &frozen)) return NULL;
    if (gnpy_begin(self) < 0) return NULL;
    gn_status s = self->ops->set_frozen(self->net, (gn_part)part, frozen);
    gnpy_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    Py_RETURN_NONE;
}

PyObject *gnpy_handle_copy_feature_weights(GNPy_Handle *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"source", "freeze", NULL};
    PyObject *src_obj;
    int freeze = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:copy_feature_weights", kwlist, &src_obj, &freeze))
        return NULL;
    if (!PyObject_TypeCheck(src_obj, self->ops->type)) {
        PyErr_Format(PyExc_TypeError, "source: expected a %s, got %.100s", self->ops->public_name,
                     Py_TYPE(src_obj)->tp_name);
        return NULL;
    }
    GNPy_Handle *src = (GNPy_Handle *)src_obj;
    if (gnpy_begin2(self, src) < 0) return NULL;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = self->ops->copy_feature_weights(self->net, src->net, freeze);
    Py_END_ALLOW_THREADS
    gnpy_end2(self, src);
    if (s != GN_OK) return gnpy_raise(s);
    Py_RETURN_NONE;
}

/* ---- training ------------------------------------------------------------------------------------ */

typedef struct {
    gnpy_callback_context base;  /* base.callback: the fit() callback */
    PyObject *history;           /* list of metric dicts */
    int has_test;
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
    PyEval_RestoreThread(ctx->base.tstate);
    PyObject *d = metrics_dict(metrics, ctx->has_test);
    if (d != NULL && PyList_Append(ctx->history, d) < 0) Py_CLEAR(d);
    int stop = gnpy_callback_step(&ctx->base, ctx->base.callback, d);
    Py_XDECREF(d);
    ctx->base.tstate = PyEval_SaveThread();
    return stop;
}

/* Polled by the library between minibatches (about every 0.1 s): takes the GIL only to let
 * Python run its signal handlers, so Ctrl-C interrupts a long epoch; the pending exception
 * (KeyboardInterrupt) is stored and re-raised after the train call returns GN_ERR_CANCELLED. */
static int train_interrupt(void *user) {
    train_context *ctx = user;
    PyEval_RestoreThread(ctx->base.tstate);
    int stop = gnpy_callback_step(&ctx->base, NULL, Py_None);
    ctx->base.tstate = PyEval_SaveThread();
    return stop;
}

static void regression_loss_error(int loss) {
    PyErr_Format(PyExc_ValueError, "loss: float y are real-valued targets, which take loss=\"squared\" only "
                                   "(got %s); class labels are integer arrays",
                 loss == GN_LOSS_CROSS_ENTROPY ? "\"cross_entropy\"" : "an unknown loss");
}

PyObject *gnpy_handle_train(GNPy_Handle *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist_head[] = {"x", "y", "x_test", "y_test", "optimizer", "loss", "learning_rate",
                                  "momentum", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
                                  "batch_size", "epochs", "shuffle_seed", "train_feature_head", "callback", NULL};
    /* The same without "train_feature_head". */
    static char *kwlist_plain[] = {"x", "y", "x_test", "y_test", "optimizer", "loss", "learning_rate",
                                   "momentum", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
                                   "batch_size", "epochs", "shuffle_seed", "callback", NULL};
    const gnpy_handle_ops *ops = self->ops;
    PyObject *x_obj, *y_obj, *xt_obj = Py_None, *yt_obj = Py_None;
    PyObject *optimizer = NULL, *loss = NULL, *lr = NULL, *momentum = NULL, *wd = NULL, *b1 = NULL,
             *b2 = NULL, *eps = NULL, *batch = NULL, *epochs = NULL, *shuffle = NULL, *tfh = NULL,
             *callback = Py_None;
    int parsed = ops->train_feature_head
                     ? PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OO$OOOOOOOOOOOOO:train", kwlist_head, &x_obj,
                                                   &y_obj, &xt_obj, &yt_obj, &optimizer, &loss, &lr, &momentum,
                                                   &wd, &b1, &b2, &eps, &batch, &epochs, &shuffle, &tfh, &callback)
                     : PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OO$OOOOOOOOOOOO:train", kwlist_plain, &x_obj,
                                                   &y_obj, &xt_obj, &yt_obj, &optimizer, &loss, &lr, &momentum,
                                                   &wd, &b1, &b2, &eps, &batch, &epochs, &shuffle, &callback);
    if (!parsed) return NULL;
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
    /* Float y: real-valued targets (regression), whose loss is the squared loss. */
    int regression = gnpy_is_float_buffer(y_obj);
    int opt = o.optimizer, ls = regression ? GN_LOSS_SQUARED : o.loss;
    if (gnpy_opt_int(optimizer, "optimizer", &opt) < 0 || gnpy_opt_int(loss, "loss", &ls) < 0 ||
        gnpy_opt_float(lr, "learning_rate", &o.learning_rate) < 0 ||
        gnpy_opt_float(momentum, "momentum", &o.momentum) < 0 ||
        gnpy_opt_float(wd, "weight_decay", &o.weight_decay) < 0 ||
        gnpy_opt_float(b1, "adam_beta1", &o.adam_beta1) < 0 || gnpy_opt_float(b2, "adam_beta2", &o.adam_beta2) < 0 ||
        gnpy_opt_float(eps, "adam_epsilon", &o.adam_epsilon) < 0 ||
        gnpy_opt_int64(batch, "batch_size", &o.batch_size) < 0 || gnpy_opt_int64(epochs, "epochs", &o.epochs) < 0 ||
        gnpy_opt_uint64(shuffle, "shuffle_seed", &o.shuffle_seed) < 0 ||
        gnpy_opt_bool(tfh, &o.train_feature_head) < 0)
        return NULL;
    o.optimizer = (gn_optimizer)opt;
    o.loss = (gn_loss)ls;
    if (regression && ls != GN_LOSS_SQUARED) {
        regression_loss_error(ls);
        return NULL;
    }

    if (gnpy_begin(self) < 0) return NULL;
    gnpy_input x = {0}, y = {0}, xt = {0}, yt = {0};
    PyObject *result = NULL;
    train_context ctx = {0};
    int64_t k = regression ? ops->output_size(self->net) : 0;
    if (ops->input(self, x_obj, "x", &x) < 0) goto done;
    if ((regression ? gnpy_input_f32_targets(y_obj, "y", x.rows, k, &y)
                    : gnpy_input_i32_vector(y_obj, "y", x.rows, &y)) < 0)
        goto done;
    if (xt_obj != Py_None) {
        if (ops->input(self, xt_obj, "x_test", &xt) < 0) goto done;
        if ((regression ? gnpy_input_f32_targets(yt_obj, "y_test", xt.rows, k, &yt)
                        : gnpy_input_i32_vector(yt_obj, "y_test", xt.rows, &yt)) < 0)
            goto done;
    }
    ctx.history = PyList_New(0);
    if (ctx.history == NULL) goto done;
    ctx.base.callback = callback == Py_None ? NULL : callback;
    ctx.has_test = xt_obj != Py_None;
    o.progress = train_progress;
    o.progress_user = &ctx;
    o.interrupt = train_interrupt;
    int64_t run = 0;
    ctx.base.tstate = PyEval_SaveThread();
    int64_t nt = ctx.has_test ? xt.rows : 0;
    gn_status s = regression ? ops->train_regression(self->net, x.data, y.data, x.rows, xt.data, yt.data, nt, &o, &run)
                             : ops->train(self->net, x.data, y.data, x.rows, xt.data, yt.data, nt, &o, &run);
    PyEval_RestoreThread(ctx.base.tstate);
    if (ctx.base.failed) {
        PyErr_Restore(ctx.base.exc_type, ctx.base.exc_value, ctx.base.exc_tb);
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
    gnpy_end(self);
    return result;
}

PyObject *gnpy_handle_evaluate(GNPy_Handle *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"x", "y", "loss", NULL};
    PyObject *x_obj, *y_obj, *loss_obj = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O:evaluate", kwlist, &x_obj, &y_obj, &loss_obj)) return NULL;
    /* Float y: real-valued targets, the squared loss only (the default for them); accuracy NaN. */
    int regression = gnpy_is_float_buffer(y_obj);
    int loss = regression ? GN_LOSS_SQUARED : GN_LOSS_CROSS_ENTROPY;
    if (gnpy_opt_int(loss_obj, "loss", &loss) < 0) return NULL;
    if (regression && loss != GN_LOSS_SQUARED) {
        regression_loss_error(loss);
        return NULL;
    }
    if (gnpy_begin(self) < 0) return NULL;
    gnpy_input x = {0}, y = {0};
    PyObject *r = NULL;
    if (self->ops->input(self, x_obj, "x", &x) < 0) goto done;
    if ((regression ? gnpy_input_f32_targets(y_obj, "y", x.rows, self->ops->output_size(self->net), &y)
                    : gnpy_input_i32_vector(y_obj, "y", x.rows, &y)) < 0)
        goto done;
    double mean_loss = NAN, accuracy = NAN;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = regression ? self->ops->evaluate_regression(self->net, x.data, y.data, x.rows, &mean_loss)
                   : self->ops->evaluate(self->net, x.data, y.data, x.rows, (gn_loss)loss, &mean_loss, &accuracy);
    Py_END_ALLOW_THREADS
    if (s != GN_OK) gnpy_raise(s);
    else r = Py_BuildValue("(dd)", mean_loss, accuracy);
done:
    gnpy_input_release(&x);
    gnpy_input_release(&y);
    gnpy_end(self);
    return r;
}

PyObject *gnpy_kernel_matrix(GNPy_Handle *self, int kind, int64_t layer, PyObject *xa_obj, PyObject *xb_obj,
                             PyObject *out) {
    if (gnpy_begin(self) < 0) return NULL;
    gnpy_input xa = {0}, xb = {0};
    const gnpy_input *b;
    gnpy_output o = {0};
    PyObject *r = NULL;
    if (gnpy_input_pair(self, xa_obj, xb_obj, &xa, &xb, &b) < 0) goto done;
    Py_ssize_t shape[2] = {xa.rows, b->rows};
    if (gnpy_output_prepare(out, "out", 'f', 2, shape, 1, &o) < 0) goto done;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = self->ops->kernel(self->net, kind, layer, xa.data, xa.rows, b->data, b->rows, o.data, o.ld, o.capacity);
    Py_END_ALLOW_THREADS
    r = gnpy_output_status(&o, s);
done:
    gnpy_input_release(&xa);
    gnpy_input_release(&xb);
    gnpy_end(self);
    return r;
}

/* ---- persistence and copies ----------------------------------------------------------------- */

PyObject *gnpy_handle_save(GNPy_Handle *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"path", "optimizer_state", NULL};
    PyObject *path_obj;
    int with_opt = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:save", kwlist, &path_obj, &with_opt)) return NULL;
    PyObject *path = gnpy_fspath_bytes(path_obj, "path");
    if (path == NULL) return NULL;
    if (gnpy_begin(self) < 0) { Py_DECREF(path); return NULL; }
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = self->ops->save(self->net, PyBytes_AS_STRING(path), with_opt ? GN_SAVE_OPTIMIZER_STATE : 0);
    Py_END_ALLOW_THREADS
    gnpy_end(self);
    Py_DECREF(path);
    if (s != GN_OK) return gnpy_raise(s);
    Py_RETURN_NONE;
}

PyObject *gnpy_handle_load(PyObject *cls, PyObject *path_obj, const gnpy_handle_ops *ops) {
    PyObject *path = gnpy_fspath_bytes(path_obj, "path");
    if (path == NULL) return NULL;
    void *net = NULL;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = ops->load(PyBytes_AS_STRING(path), &net);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (s != GN_OK) return gnpy_raise(s);
    return gnpy_handle_wrap((PyTypeObject *)cls, ops, net);
}

PyObject *gnpy_handle_to_bytes(GNPy_Handle *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"optimizer_state", NULL};
    int with_opt = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p:to_bytes", kwlist, &with_opt)) return NULL;
    unsigned flags = with_opt ? GN_SAVE_OPTIMIZER_STATE : 0;
    if (gnpy_begin(self) < 0) return NULL;
    size_t needed = 0;
    gn_status s = self->ops->serialize(self->net, flags, NULL, 0, &needed);
    PyObject *r = NULL;
    if (s != GN_OK && s != GN_ERR_BUFFER_TOO_SMALL) {
        gnpy_raise(s);
    } else if ((r = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)needed)) != NULL) {
        char *buf = PyBytes_AS_STRING(r);
        Py_BEGIN_ALLOW_THREADS
        s = self->ops->serialize(self->net, flags, buf, needed, &needed);
        Py_END_ALLOW_THREADS
        if (s != GN_OK) {
            Py_CLEAR(r);
            gnpy_raise(s);
        }
    }
    gnpy_end(self);
    return r;
}

PyObject *gnpy_handle_from_bytes(PyObject *cls, PyObject *data, const gnpy_handle_ops *ops) {
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "data: expected a bytes-like object, got %.100s", Py_TYPE(data)->tp_name);
        return NULL;
    }
    void *net = NULL;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = ops->deserialize(view.buf, (size_t)view.len, &net);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (s != GN_OK) return gnpy_raise(s);
    return gnpy_handle_wrap((PyTypeObject *)cls, ops, net);
}

PyObject *gnpy_handle_clone(GNPy_Handle *self, PyObject *unused) {
    (void)unused;
    if (gnpy_begin(self) < 0) return NULL;
    void *net = NULL;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = self->ops->clone(self->net, &net);
    Py_END_ALLOW_THREADS
    gnpy_end(self);
    if (s != GN_OK) return gnpy_raise(s);
    return gnpy_handle_wrap(Py_TYPE(self), self->ops, net);
}
