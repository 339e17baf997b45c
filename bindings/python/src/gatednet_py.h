/* Shared declarations of the gatednet._core extension (module.c, buffer.c, network.c, args.c). */
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
} GNPy_Buffer;

extern PyTypeObject GNPy_BufferType;

/* New zero-filled C-contiguous buffer of the given format ('f', 'd', 'i', 'q' or 'Q') and shape. */
GNPy_Buffer *gnpy_buffer_new(char format, int ndim, const Py_ssize_t *shape);

/* ---- Network ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    gn_network *net;            /* NULL once closed */
    PyThread_type_lock lock;    /* held (GIL released or not) for the duration of each call */
    unsigned long owner;        /* thread ident holding `lock`, 0 if none (read under the GIL) */
    PyObject *weakrefs;
} GNPy_Network;

extern PyTypeObject GNPy_NetworkType;

/* ---- ConvNetwork (conv_network.c): one gn_conv_network handle ------------------------- */

extern PyTypeObject GNPy_ConvNetworkType;

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
/* A 1-D or N-D float32 array of exactly `count` elements (set_weights). */
int gnpy_input_f32_flat(PyObject *obj, const char *name, Py_ssize_t count, gnpy_input *in);
/* Any 2-D float matrix (converted like x); ld = cols. */
int gnpy_input_f32_strided(PyObject *obj, const char *name, gnpy_input *in);
/* A 2-D float32 matrix whose rows may be spaced (row stride ld >= cols): in place; other
 * layouts and float64 are copied to C order. */
int gnpy_input_f32_rows(PyObject *obj, const char *name, gnpy_input *in);
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

#endif
