/* Shared declarations of the gatednet._core extension (module.c, buffer.c, args.c, kernels.c,
 * common.c, network.c, conv_network.c). */
#ifndef GATEDNET_PY_H
#define GATEDNET_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include <stdint.h>

#include "gatednet.h"

#define GNPY_MAX_DIMS 8

/* ---- errors (module.c) ---------------------------------------------------------------- */

/* Raise the exception class matching `status` with gn_last_error() as message; returns NULL. */
PyObject *gnpy_raise(gn_status status);
/* The same with an explicit message (errors detected by the binding itself). */
PyObject *gnpy_raise_msg(gn_status status, const char *msg);
extern PyObject *GNPy_Error;        /* GatedNetError(RuntimeError) */
extern PyObject *GNPy_ClosedError;  /* ClosedNetworkError(GatedNetError, ValueError) */
extern PyObject *GNPy_BusyError;    /* BusyError(GatedNetError): re-entry from a callback */

/* ---- Buffer: memory owned by the extension, exported through the buffer protocol ----- */

typedef struct {
    PyObject_HEAD
    void *data;
    Py_ssize_t itemsize;
    char format[2];
    int ndim;
    Py_ssize_t shape[GNPY_MAX_DIMS];
    Py_ssize_t strides[GNPY_MAX_DIMS];
    Py_ssize_t nitems;
    Py_ssize_t exports;
    PyObject *weakrefs;
    size_t mapped; /* bytes of an anonymous mapping holding data (large results), else 0 */
} GNPy_Buffer;

extern PyTypeObject GNPy_BufferType;

/* New zero-filled C-contiguous buffer of the given format ('f', 'd', 'i', 'q' or 'Q') and shape. */
GNPy_Buffer *gnpy_buffer_new(char format, int ndim, const Py_ssize_t *shape);

/* ---- argument conversion (args.c) -------------------------------------------------------- */

/* A read-only input array, either a view of the caller's buffer or a converted copy. */
typedef struct {
    Py_buffer view;    /* valid if has_view */
    int has_view;
    void *copy;        /* malloc'd converted copy, or NULL */
    const void *data;  /* what to pass to the C library */
    Py_ssize_t rows;   /* shape[0] */
    Py_ssize_t cols;   /* product of the remaining dims (1 for 1-D) */
    Py_ssize_t ld;     /* row stride in elements (== cols unless from gnpy_input_f32_rows) */
} gnpy_input;

/* x: float32 matrix with `cols` columns (ndim >= 2, product of trailing dims == cols); cols < 0
 * means "any" (then ndim must be 2). float32 C-contiguous buffers are used in place;
 * float32 strided and float64 buffers are copied once to float32. Other dtypes: TypeError. */
int gnpy_input_f32_matrix(PyObject *obj, const char *name, Py_ssize_t cols, gnpy_input *in);
/* y: 1-D integer labels of length `rows` (rows < 0: any); int32 in place, other integer
 * types copied with a range check. */
int gnpy_input_i32_vector(PyObject *obj, const char *name, Py_ssize_t rows, gnpy_input *in);
/* Whether obj is a float32 or float64 buffer (real-valued targets rather than labels). */
int gnpy_is_float_buffer(PyObject *obj);
/* Real-valued targets: a float buffer of shape (rows, cols), or (rows,) when cols == 1;
 * converted like x. */
int gnpy_input_f32_targets(PyObject *obj, const char *name, Py_ssize_t rows, Py_ssize_t cols, gnpy_input *in);
/* A 1-D or N-D float32 array of exactly `count` elements (set_weights). */
int gnpy_input_f32_flat(PyObject *obj, const char *name, Py_ssize_t count, gnpy_input *in);
/* `count` values as float32: float buffers as gnpy_input_f32_flat; a 1-D integer or bool buffer
 * (e.g. +-1 or 0/1 labels) is converted (values must fit in int32). */
int gnpy_input_f32_values(PyObject *obj, const char *name, Py_ssize_t count, gnpy_input *in);
/* Any 2-D float matrix (converted like x); ld = cols. */
int gnpy_input_f32_strided(PyObject *obj, const char *name, gnpy_input *in);
/* A 2-D float32 matrix whose rows may be spaced (row stride ld >= cols): in place; other
 * layouts and float64 are copied to C order. */
int gnpy_input_f32_rows(PyObject *obj, const char *name, gnpy_input *in);
/* A 2-D uint64 array of exactly rows x cols, C-contiguous, used in place (never copied): packed
 * gates. Other dtypes: TypeError; another shape or non-contiguous: ValueError; both naming
 * `what` (the expected contents). */
int gnpy_input_u64_matrix(PyObject *obj, const char *name, Py_ssize_t rows, Py_ssize_t cols, const char *what,
                          gnpy_input *in);
void gnpy_input_release(gnpy_input *in);

/* Module-level kernel-algebra functions (kernels.c), NULL-terminated. */
extern PyMethodDef gnpy_kernel_functions[];

/* An output: either a new Buffer of `shape`, or the caller's `out` (writable, format `format`,
 * exact shape; for 2-D float outputs with allow_row_stride the row stride may exceed the row). */
typedef struct {
    PyObject *result;   /* new reference to return (Buffer or out) */
    Py_buffer view;     /* valid if has_view */
    int has_view;
    void *data;
    Py_ssize_t ld;      /* row stride in elements (2-D) */
    Py_ssize_t capacity;/* elements addressable from data */
} gnpy_output;

int gnpy_output_prepare(PyObject *out, const char *name, char format, int ndim,
                        const Py_ssize_t *shape, int allow_row_stride, gnpy_output *o);
/* Release the view; on failure (ok == 0) also drop the result. Returns result or NULL. */
PyObject *gnpy_output_finish(gnpy_output *o, int ok);

/* A filesystem path (str, bytes or os.PathLike) as a new bytes object. */
PyObject *gnpy_fspath_bytes(PyObject *path, const char *name);

/* ---- Network and ConvNetwork: one library handle and a lock (common.c) ------------------------ */

typedef struct gnpy_handle_ops gnpy_handle_ops;

typedef struct {
    PyObject_HEAD
    void *net;                  /* gn_network * or gn_conv_network * (per ops); NULL once closed */
    PyThread_type_lock lock;    /* held (GIL released or not) for the duration of each call */
    unsigned long owner;        /* thread ident holding `lock`, 0 if none (read under the GIL) */
    PyObject *weakrefs;
    const gnpy_handle_ops *ops; /* set by gnpy_handle_new, never NULL */
} GNPy_Handle;

typedef GNPy_Handle GNPy_Network;
typedef GNPy_Handle GNPy_ConvNetwork;

extern PyTypeObject GNPy_NetworkType;
extern PyTypeObject GNPy_ConvNetworkType;

/* The handle type's C calls, behind untyped handles (adapters made by GNPY_HANDLE_OPS). */
struct gnpy_handle_ops {
    PyTypeObject *type;        /* copy_feature_weights' source and gate_source must be one */
    const char *public_name;   /* "gatednet.Network", for messages */
    const char *busy_message;  /* raised when a callback uses the network it runs for */
    int train_feature_head;    /* _train takes the train_feature_head option */
    /* An input batch (x, x_test, xa, xb: name) checked against the network's input. */
    int (*input)(GNPy_Handle *self, PyObject *obj, const char *name, gnpy_input *in);
    void (*free)(void *net);
    gn_status (*clone)(const void *net, void **out);
    gn_status (*describe)(const void *net, char *buf, size_t capacity, size_t *needed);
    gn_status (*set_frozen)(void *net, gn_part part, int frozen);
    gn_status (*copy_feature_weights)(void *dst, const void *src, int freeze);
    gn_status (*evaluate)(const void *net, const float *x, const int32_t *y, int64_t n, gn_loss loss,
                          double *mean_loss, double *accuracy);
    /* gn_kernel / gn_conv_network_kernel (layer: 0 for conv nets, which take none). */
    gn_status (*kernel)(const void *net, int kind, int64_t layer, const float *xa, int64_t n_a, const float *xb,
                        int64_t n_b, float *out, int64_t ld_out, int64_t capacity);
    gn_status (*train)(void *net, const float *x, const int32_t *y, int64_t n, const float *x_test,
                       const int32_t *y_test, int64_t n_test, const gn_train_options *opts, int64_t *epochs_run);
    /* Regression: real-valued targets t (n x output_size), the squared loss. */
    gn_status (*train_regression)(void *net, const float *x, const float *t, int64_t n, const float *x_test,
                                  const float *t_test, int64_t n_test, const gn_train_options *opts,
                                  int64_t *epochs_run);
    gn_status (*evaluate_regression)(const void *net, const float *x, const float *t, int64_t n, double *mean_loss);
    int64_t (*output_size)(const void *net); /* -1 if the handle is not live */
    gn_status (*save)(const void *net, const char *path, unsigned flags);
    gn_status (*load)(const char *path, void **out);
    gn_status (*serialize)(const void *net, unsigned flags, void *buf, size_t capacity, size_t *needed);
    gn_status (*deserialize)(const void *buf, size_t size, void **out);
};

/* Defines `static const gnpy_handle_ops NAME` for handle type T (gn_network or gn_conv_network)
 * whose C functions are named T_free, T_clone, ... and whose train / evaluate calls are TRAIN
 * and EVALUATE (TRAIN##_regression, EVALUATE##_regression with real-valued targets), and KERNEL
 * the gnpy_handle_ops.kernel adapter,
 * and the classmethods NAME_load_method and NAME_from_bytes_method (see GNPY_HANDLE_METHODS). */
#define GNPY_HANDLE_OPS(NAME, T, TRAIN, EVALUATE, KERNEL, TYPE, PUBLIC, BUSY, INPUT, HEAD)                \
    static void NAME##_free(void *n) { T##_free(n); }                                                       \
    static gn_status NAME##_clone(const void *n, void **out) {                                              \
        T *c = NULL;                                                                                        \
        gn_status s = T##_clone(n, &c);                                                                     \
        *out = c;                                                                                           \
        return s;                                                                                           \
    }                                                                                                       \
    static gn_status NAME##_describe(const void *n, char *b, size_t cap, size_t *need) {                    \
        return T##_describe(n, b, cap, need);                                                               \
    }                                                                                                       \
    static gn_status NAME##_set_frozen(void *n, gn_part p, int f) { return T##_set_frozen(n, p, f); }      \
    static gn_status NAME##_copy_feature_weights(void *d, const void *s, int f) {                           \
        return T##_copy_feature_weights(d, s, f);                                                           \
    }                                                                                                       \
    static gn_status NAME##_evaluate(const void *n, const float *x, const int32_t *y, int64_t rows,          \
                                     gn_loss loss, double *mean_loss, double *accuracy) {                   \
        return EVALUATE(n, x, y, rows, loss, mean_loss, accuracy);                                          \
    }                                                                                                       \
    static gn_status NAME##_train(void *n, const float *x, const int32_t *y, int64_t rows, const float *xt,  \
                                  const int32_t *yt, int64_t nt, const gn_train_options *o, int64_t *run) { \
        return TRAIN(n, x, y, rows, xt, yt, nt, o, NULL, 0, run);                                           \
    }                                                                                                       \
    static gn_status NAME##_train_regression(void *n, const float *x, const float *t, int64_t rows,         \
                                             const float *xt, const float *tt, int64_t nt,                  \
                                             const gn_train_options *o, int64_t *run) {                     \
        return TRAIN##_regression(n, x, t, rows, xt, tt, nt, o, NULL, 0, run);                              \
    }                                                                                                       \
    static gn_status NAME##_evaluate_regression(const void *n, const float *x, const float *t, int64_t rows, \
                                                double *mean_loss) {                                        \
        return EVALUATE##_regression(n, x, t, rows, mean_loss);                                             \
    }                                                                                                       \
    static int64_t NAME##_output_size(const void *n) {                                                      \
        T##_info info;                                                                                      \
        memset(&info, 0, sizeof info);                                                                      \
        info.struct_size = sizeof info;                                                                     \
        return T##_get_info(n, &info) == GN_OK ? info.output_size : -1;                                     \
    }                                                                                                       \
    static gn_status NAME##_save(const void *n, const char *path, unsigned flags) {                        \
        return T##_save(n, path, flags);                                                                    \
    }                                                                                                       \
    static gn_status NAME##_load(const char *path, void **out) {                                            \
        T *c = NULL;                                                                                        \
        gn_status s = T##_load(path, &c);                                                                   \
        *out = c;                                                                                           \
        return s;                                                                                           \
    }                                                                                                       \
    static gn_status NAME##_serialize(const void *n, unsigned flags, void *b, size_t cap, size_t *need) {   \
        return T##_serialize(n, flags, b, cap, need);                                                       \
    }                                                                                                       \
    static gn_status NAME##_deserialize(const void *b, size_t size, void **out) {                           \
        T *c = NULL;                                                                                        \
        gn_status s = T##_deserialize(b, size, &c);                                                         \
        *out = c;                                                                                           \
        return s;                                                                                           \
    }                                                                                                       \
    static const gnpy_handle_ops NAME = {                                                                   \
        .type = TYPE, .public_name = PUBLIC, .busy_message = BUSY, .train_feature_head = HEAD,              \
        .input = INPUT, .free = NAME##_free, .clone = NAME##_clone, .describe = NAME##_describe,            \
        .set_frozen = NAME##_set_frozen, .copy_feature_weights = NAME##_copy_feature_weights,               \
        .evaluate = NAME##_evaluate, .kernel = KERNEL, .train = NAME##_train, .save = NAME##_save,          \
        .train_regression = NAME##_train_regression, .evaluate_regression = NAME##_evaluate_regression,     \
        .output_size = NAME##_output_size,                                                                  \
        .load = NAME##_load, .serialize = NAME##_serialize, .deserialize = NAME##_deserialize,              \
    };                                                                                                      \
    static PyObject *NAME##_load_method(PyObject *cls, PyObject *path) {                                    \
        return gnpy_handle_load(cls, path, &NAME);                                                          \
    }                                                                                                       \
    static PyObject *NAME##_from_bytes_method(PyObject *cls, PyObject *data) {                              \
        return gnpy_handle_from_bytes(cls, data, &NAME);                                                    \
    }

/* A new, empty (net == NULL) object of `type`; `type`'s tp_new calls it with its ops. */
PyObject *gnpy_handle_new(PyTypeObject *type, const gnpy_handle_ops *ops);
/* A new object of `type` owning `net` (consumed: freed on failure). */
PyObject *gnpy_handle_wrap(PyTypeObject *type, const gnpy_handle_ops *ops, void *net);
void gnpy_handle_dealloc(GNPy_Handle *self);

/* Lock the network for a call; fails (exception set) if it is closed, or busy in this thread
 * (a fit() or progress callback using its own network). */
int gnpy_begin(GNPy_Handle *self);
void gnpy_end(GNPy_Handle *self);
/* Both (in address order, so two threads never deadlock); a == b locks once. */
int gnpy_begin2(GNPy_Handle *a, GNPy_Handle *b);
void gnpy_end2(GNPy_Handle *a, GNPy_Handle *b);
/* A constructor's gate_source: None/NULL gives *src = NULL; else it must be of self's type and
 * is locked (*src, the caller ends it after the create call). */
int gnpy_begin_gate_source(GNPy_Handle *self, PyObject *source, GNPy_Handle **src);

/* Methods of both types. GNPY_HANDLE_METHODS are the PyMethodDef entries whose docstrings are
 * the same for both; network.c and conv_network.c list the others (load and from_bytes are
 * classmethods that pass their type's ops). */
#define GNPY_HANDLE_METHODS                                                                                  \
    {"close", (PyCFunction)gnpy_handle_close, METH_NOARGS,                                                   \
     "close()\n\nFree the library handle now (idempotent). Later calls raise ClosedNetworkError."},          \
    {"__enter__", (PyCFunction)gnpy_handle_enter, METH_NOARGS, NULL},                                        \
    {"__exit__", (PyCFunction)gnpy_handle_exit, METH_VARARGS, NULL},                                         \
    {"describe", (PyCFunction)gnpy_handle_describe, METH_NOARGS,                                             \
     "describe() -> str\n\nOne-line summary from the library."},                                             \
    {"_set_frozen", (PyCFunction)gnpy_handle_set_frozen, METH_VARARGS, "_set_frozen(part, frozen)"},         \
    {"_train", (PyCFunction)(void (*)(void))gnpy_handle_train, METH_VARARGS | METH_KEYWORDS,                 \
     "_train(x, y, ...) -> list"},                                                                           \
    {"_evaluate", (PyCFunction)(void (*)(void))gnpy_handle_evaluate, METH_VARARGS | METH_KEYWORDS,           \
     "_evaluate(x, y, loss=None) -> (mean_loss, accuracy)"},                                                 \
    {"to_bytes", (PyCFunction)(void (*)(void))gnpy_handle_to_bytes, METH_VARARGS | METH_KEYWORDS,            \
     "to_bytes(optimizer_state=False) -> bytes\n\nThe save() format in memory."}

/* The persistence entries: CLS the class name, OPS the GNPY_HANDLE_OPS name, SAVE_DOC and
 * LOAD_MORE the text that differs between the classes. */
#define GNPY_HANDLE_FILE_METHODS(CLS, OPS, SAVE_DOC, LOAD_MORE)                                               \
    {"save", (PyCFunction)(void (*)(void))gnpy_handle_save, METH_VARARGS | METH_KEYWORDS,                    \
     "save(path, optimizer_state=False)\n\n" SAVE_DOC},                                                      \
    {"load", (PyCFunction)OPS##_load_method, METH_O | METH_CLASS,                                            \
     "load(path) -> " CLS "\n\nRead a file written by save(). Raises FileError or CorruptFileError" LOAD_MORE \
     "."},                                                                                                   \
    {"from_bytes", (PyCFunction)OPS##_from_bytes_method, METH_O | METH_CLASS,                                \
     "from_bytes(data) -> " CLS "\n\nInverse of to_bytes(); CorruptFileError for foreign data."},             \
    {"clone", (PyCFunction)gnpy_handle_clone, METH_NOARGS,                                                   \
     "clone() -> " CLS "\n\nDeep copy: weights, frozen flags and optimizer state."}

/* The PyTypeObject slots both types share (designated initializers). */
#define GNPY_HANDLE_TYPE_SLOTS                                                                               \
    .tp_basicsize = sizeof(GNPy_Handle), .tp_dealloc = (destructor)gnpy_handle_dealloc,                       \
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, .tp_weaklistoffset = offsetof(GNPy_Handle, weakrefs), \
    .tp_getset = gnpy_handle_getset
extern PyGetSetDef gnpy_handle_getset[]; /* closed */
PyObject *gnpy_handle_close(GNPy_Handle *self, PyObject *unused);
PyObject *gnpy_handle_get_closed(GNPy_Handle *self, void *closure);
PyObject *gnpy_handle_enter(GNPy_Handle *self, PyObject *unused);
PyObject *gnpy_handle_exit(GNPy_Handle *self, PyObject *args);
PyObject *gnpy_handle_describe(GNPy_Handle *self, PyObject *unused);
PyObject *gnpy_handle_set_frozen(GNPy_Handle *self, PyObject *args);
PyObject *gnpy_handle_copy_feature_weights(GNPy_Handle *self, PyObject *args, PyObject *kwargs);
PyObject *gnpy_handle_train(GNPy_Handle *self, PyObject *args, PyObject *kwargs);
PyObject *gnpy_handle_evaluate(GNPy_Handle *self, PyObject *args, PyObject *kwargs);
PyObject *gnpy_handle_save(GNPy_Handle *self, PyObject *args, PyObject *kwargs);
PyObject *gnpy_handle_load(PyObject *cls, PyObject *path, const gnpy_handle_ops *ops);
PyObject *gnpy_handle_to_bytes(GNPy_Handle *self, PyObject *args, PyObject *kwargs);
PyObject *gnpy_handle_from_bytes(PyObject *cls, PyObject *data, const gnpy_handle_ops *ops);
PyObject *gnpy_handle_clone(GNPy_Handle *self, PyObject *unused);
/* The _kernel methods after their argument parsing: the xa.rows x xb.rows matrix (ops->kernel). */
PyObject *gnpy_kernel_matrix(GNPy_Handle *self, int kind, int64_t layer, PyObject *xa_obj, PyObject *xb_obj,
                             PyObject *out);

/* Optional keyword values: NULL or None leaves *out unchanged; otherwise converted, or -1 with
 * "<name>: expected an int, got str" (TypeError) / "<name>: ... out of range" (ValueError). */
int gnpy_opt_int(PyObject *o, const char *name, int *out);
int gnpy_opt_int64(PyObject *o, const char *name, int64_t *out);
int gnpy_opt_uint64(PyObject *o, const char *name, uint64_t *out);
int gnpy_opt_float(PyObject *o, const char *name, float *out);
int gnpy_opt_bool(PyObject *o, int *out);
/* A sequence as a PyMem_Calloc'd array of *count items of item_size bytes (caller frees), each
 * filled by convert (name: the sequence's, i: the item's index; -1 with an exception to fail).
 * Not a sequence: TypeError "<name>: expected a sequence of <what>, got <type>". */
void *gnpy_sequence_map(PyObject *seq, const char *name, const char *what, size_t item_size,
                        int (*convert)(PyObject *item, const char *name, Py_ssize_t i, void *out),
                        Py_ssize_t *count);
/* A sequence of ints as an int64 array (gnpy_sequence_map). */
int64_t *gnpy_int64_list(PyObject *seq, const char *name, Py_ssize_t *count);

/* State of a Python callback invoked from a library call that runs with the GIL released. */
typedef struct {
    PyThreadState *tstate;  /* this thread's state while the GIL is released */
    PyObject *callback;     /* borrowed; NULL for none */
    int failed;             /* an exception is stored below */
    PyObject *exc_type, *exc_value, *exc_tb;
} gnpy_callback_context;

/* With the GIL held: callback(arg) if callback != NULL, then a Ctrl-C check. Returns 1 to stop
 * (the callback returned a falsy value other than None, or an exception, which is moved into
 * ctx), else 0. arg NULL means building it failed (exception set). */
int gnpy_callback_step(gnpy_callback_context *ctx, PyObject *callback, PyObject *arg);
/* Move the current exception into ctx. */
void gnpy_callback_fail(gnpy_callback_context *ctx);
/* gn_kernel_progress_fn for a library kernel call made with the GIL released (user: the
 * gnpy_callback_context, its tstate from PyEval_SaveThread): takes the GIL, calls
 * ctx->callback(fraction) (if any) through gnpy_callback_step, releases the GIL again. */
int gnpy_kernel_progress(double fraction, void *user);
/* Route a kernel call's progress through ctx (callback may be NULL) and release the GIL: call
 * before the library call; gnpy_kernel_call_end after it. */
void gnpy_kernel_call_begin(gnpy_callback_context *ctx, PyObject *callback, gn_kernel_progress_fn *progress,
                            void **progress_user);
/* Take the GIL back and finish o for a kernel call that returned s: the result, or NULL with the
 * callback's exception (it stopped the call) or s raised. */
PyObject *gnpy_kernel_call_end(gnpy_callback_context *ctx, gn_status s, gnpy_output *o);

/* xa and xb (None: xa again) as inputs of self (ops->input); *b is xb's or xa's. */
int gnpy_input_pair(GNPy_Handle *self, PyObject *xa_obj, PyObject *xb_obj, gnpy_input *xa, gnpy_input *xb,
                    const gnpy_input **b);
/* gnpy_output_finish for a library call that returned s: the result, or NULL with s raised. */
PyObject *gnpy_output_status(gnpy_output *o, gn_status s);

/* The info dict entries both types have (info: a gn_network_info or gn_conv_network_info),
 * in the order both dicts list them. */
#define GNPY_SET_GATE_ITEMS(d, info)                                      \
    SET_ITEM(d, "activation", PyLong_FromLong((info).feature_activation)); \
    SET_ITEM(d, "gate", PyLong_FromLong((info).gate_kind));                \
    SET_ITEM(d, "beta", PyFloat_FromDouble((info).beta));                  \
    SET_ITEM(d, "value_input", PyLong_FromLong((info).value_input))
#define GNPY_SET_STATE_ITEMS(d, info)                                          \
    SET_ITEM(d, "tied", PyBool_FromLong((info).tied));                         \
    SET_ITEM(d, "feature_frozen", PyBool_FromLong((info).feature_frozen));     \
    SET_ITEM(d, "value_frozen", PyBool_FromLong((info).value_frozen));         \
    SET_ITEM(d, "parameter_count", PyLong_FromLongLong((info).parameter_count)); \
    SET_ITEM(d, "epochs_trained", PyLong_FromLongLong((info).epochs_trained))

/* Set d[key] = expr (a new reference, consumed); on failure `goto fail`. */
#define SET_ITEM(d, key, expr)                                                                   \
    do {                                                                                         \
        PyObject *v_ = (expr);                                                                   \
        if (v_ == NULL || PyDict_SetItemString(d, key, v_) < 0) { Py_XDECREF(v_); goto fail; } \
        Py_DECREF(v_);                                                                           \
    } while (0)

#endif
