/* gatednet._core: module definition, exception classes and the module-level functions. */
#include "gatednet_py.h"

#include <string.h>

PyObject *GNPy_Error;
PyObject *GNPy_ClosedError;
PyObject *GNPy_BusyError;
static PyObject *GNPy_ArgumentError;
static PyObject *GNPy_UnsupportedError;
static PyObject *GNPy_FileError;
static PyObject *GNPy_CorruptError;
static PyObject *GNPy_CancelledError;
static PyObject *GNPy_OutOfMemoryError;

/* The library's message with what names C rather than Python removed: the leading
 * "gn_function: " and the "spec->" / "opts->" of struct fields, which the binding fills from
 * keyword arguments of the same name. */
static void python_message(const char *msg, char *buf, size_t capacity) {
    const char *p = msg;
    if (strncmp(p, "gn_", 3) == 0) {
        const char *q = p + 3;
        while ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_') q++;
        if (q[0] == ':' && q[1] == ' ') p = q + 2;
    }
    size_t n = 0;
    while (*p != '\0' && n + 1 < capacity) {
        if (strncmp(p, "spec->", 6) == 0) { p += 6; continue; }
        if (strncmp(p, "opts->", 6) == 0) { p += 6; continue; }
        buf[n++] = *p++;
    }
    buf[n] = '\0';
}

PyObject *gnpy_raise(gn_status status) {
    char buf[2048];
    python_message(gn_last_error(), buf, sizeof buf);
    return gnpy_raise_msg(status, buf);
}

PyObject *gnpy_raise_msg(gn_status status, const char *msg) {
    PyObject *cls;
    switch (status) {
    case GN_ERR_INVALID_ARGUMENT:
    case GN_ERR_NULL_POINTER:
    case GN_ERR_SHAPE:
    case GN_ERR_BUFFER_TOO_SMALL:
    case GN_ERR_NOT_FINITE:
    case GN_ERR_LABEL_RANGE: cls = GNPy_ArgumentError; break;
    case GN_ERR_INVALID_HANDLE: cls = GNPy_ClosedError; break;
    case GN_ERR_UNSUPPORTED: cls = GNPy_UnsupportedError; break;
    case GN_ERR_IO: cls = GNPy_FileError; break;
    case GN_ERR_CORRUPT: cls = GNPy_CorruptError; break;
    case GN_ERR_CANCELLED: cls = GNPy_CancelledError; break;
    case GN_ERR_OUT_OF_MEMORY: cls = GNPy_OutOfMemoryError; break;
    case GN_ERR_BUSY: cls = GNPy_BusyError; break;
    default: cls = GNPy_Error; break;
    }
    PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace");
    if (text == NULL) return NULL;
    /* One positional argument (the message) so str(e) is the library's text; the status is
     * an attribute. OSError subclasses keep the plain one-argument form for the same reason. */
    PyObject *exc = PyObject_CallOneArg(cls, text);
    Py_DECREF(text);
    if (exc == NULL) return NULL;
    PyObject *code = PyLong_FromLong((long)status);
    PyObject *name = PyUnicode_FromString(gn_status_name(status));
    if (code == NULL || name == NULL || PyObject_SetAttrString(exc, "status", code) < 0 ||
        PyObject_SetAttrString(exc, "status_name", name) < 0) {
        Py_XDECREF(code); Py_XDECREF(name); Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(code);
    Py_DECREF(name);
    PyErr_SetObject(cls, exc);
    Py_DECREF(exc);
    return NULL;
}

/* ---- module functions ----------------------------------------------------------------- */

/* gn_idx_dims on `path` (bytes) with the GIL released; dims holds GNPY_MAX_DIMS entries. */
static gn_status idx_dims(PyObject *path, int64_t *dims, int64_t *ndim) {
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_idx_dims(PyBytes_AS_STRING(path), dims, GNPY_MAX_DIMS, ndim);
    Py_END_ALLOW_THREADS
    return s;
}

static PyObject *mod_idx_dims(PyObject *m, PyObject *arg) {
    (void)m;
    PyObject *path = gnpy_fspath_bytes(arg, "path");
    if (path == NULL) return NULL;
    int64_t dims[GNPY_MAX_DIMS], ndim = 0;
    gn_status s = idx_dims(path, dims, &ndim);
    Py_DECREF(path);
    if (s != GN_OK) return gnpy_raise(s);
    PyObject *t = PyTuple_New((Py_ssize_t)ndim);
    if (t == NULL) return NULL;
    for (int64_t i = 0; i < ndim; i++) {
        PyObject *v = PyLong_FromLongLong(dims[i]);
        if (v == NULL) { Py_DECREF(t); return NULL; }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, v);
    }
    return t;
}

static PyObject *mod_idx_read(PyObject *m, PyObject *args, PyObject *kwargs) {
    (void)m;
    static char *kwlist[] = {"path", "scale", NULL};
    PyObject *path_obj, *scale_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:idx_read", kwlist, &path_obj, &scale_obj))
        return NULL;
    int as_float = scale_obj != Py_None;
    float scale = 1.0f;
    if (as_float) {
        double d = PyFloat_AsDouble(scale_obj);
        if (d == -1.0 && PyErr_Occurred()) return NULL;
        scale = (float)d;
    }
    PyObject *path = gnpy_fspath_bytes(path_obj, "path");
    if (path == NULL) return NULL;
    int64_t dims[GNPY_MAX_DIMS], ndim = 0;
    gn_status s = idx_dims(path, dims, &ndim);
    if (s != GN_OK) { Py_DECREF(path); return gnpy_raise(s); }
    Py_ssize_t shape[GNPY_MAX_DIMS];
    for (int64_t i = 0; i < ndim; i++) shape[i] = (Py_ssize_t)dims[i];
    GNPy_Buffer *b = gnpy_buffer_new(as_float ? 'f' : 'i', (int)ndim, shape);
    if (b == NULL) { Py_DECREF(path); return NULL; }
    Py_BEGIN_ALLOW_THREADS
    if (as_float) s = gn_idx_read_f32(PyBytes_AS_STRING(path), scale, b->data, b->nitems);
    else s = gn_idx_read_i32(PyBytes_AS_STRING(path), b->data, b->nitems);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (s != GN_OK) { Py_DECREF(b); return gnpy_raise(s); }
    return (PyObject *)b;
}

static PyObject *mod_corrupt_labels(PyObject *m, PyObject *args, PyObject *kwargs) {
    (void)m;
    static char *kwlist[] = {"labels", "classes", "gamma", "seed", NULL};
    PyObject *labels;
    int classes;
    double gamma;
    unsigned long long seed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oid|K:corrupt_labels", kwlist, &labels, &classes,
                                     &gamma, &seed))
        return NULL;
    gnpy_output o;
    Py_ssize_t shape[1];
    /* Any length: take it from the buffer itself. */
    Py_buffer probe;
    if (PyObject_GetBuffer(labels, &probe, PyBUF_ND) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "labels: expected a writable 1-D int32 buffer, got %.100s",
                     Py_TYPE(labels)->tp_name);
        return NULL;
    }
    shape[0] = probe.ndim == 1 ? probe.shape[0] : -1;
    PyBuffer_Release(&probe);
    if (shape[0] < 1) {
        PyErr_SetString(PyExc_ValueError, "labels: expected a non-empty 1-D buffer");
        return NULL;
    }
    if (gnpy_output_prepare(labels, "labels", 'i', 1, shape, 0, &o) < 0) return NULL;
    int64_t changed = 0;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_corrupt_labels(o.data, shape[0], classes, gamma, seed, &changed);
    Py_END_ALLOW_THREADS
    PyObject *r = gnpy_output_finish(&o, 1);
    Py_DECREF(r);
    if (s != GN_OK) return gnpy_raise(s);
    return PyLong_FromLongLong(changed);
}

static PyObject *mod_status_name(PyObject *m, PyObject *arg) {
    (void)m;
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) return NULL;
    return PyUnicode_FromString(gn_status_name((gn_status)v));
}

static PyMethodDef module_methods[] = {
    {"idx_dims", (PyCFunction)mod_idx_dims, METH_O,
     "idx_dims(path) -> tuple\n\nDimensions of an IDX file (gzip or plain)."},
    {"idx_read", (PyCFunction)(void (*)(void))mod_idx_read, METH_VARARGS | METH_KEYWORDS,
     "idx_read(path, scale=None) -> Buffer\n\nAll values of an IDX file: int32 if scale is None, "
     "else float32 multiplied by scale. Shape is the file's."},
    {"corrupt_labels", (PyCFunction)(void (*)(void))mod_corrupt_labels, METH_VARARGS | METH_KEYWORDS,
     "corrupt_labels(labels, classes, gamma, seed=0) -> int\n\nIn place on a writable int32 "
     "buffer: round(gamma*n) labels at random positions are redrawn uniformly from "
     "[0, classes). Returns how many changed."},
    {"status_name", (PyCFunction)mod_status_name, METH_O, "status_name(code) -> str"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gatednet._core",
    .m_doc = "C extension over libgatednet's C ABI (gatednet.h). Use the gatednet package.",
    .m_size = -1,
    .m_methods = module_methods,
};

static PyObject *new_error(PyObject *module, const char *name, PyObject *bases, const char *doc) {
    char qualified[96];
    snprintf(qualified, sizeof qualified, "gatednet.%s", name);
    PyObject *cls = PyErr_NewExceptionWithDoc(qualified, doc, bases, NULL);
    if (cls == NULL) return NULL;
    if (PyModule_AddObjectRef(module, name, cls) < 0) {
        Py_DECREF(cls);
        return NULL;
    }
    return cls;
}

static PyObject *bases2(PyObject *a, PyObject *b) { return PyTuple_Pack(2, a, b); }

PyMODINIT_FUNC PyInit__core(void) {
    /* The library loaded at run time must have the header's major version. */
    int loaded = gn_version_number();
    if (loaded / 10000 != GN_VERSION_MAJOR || loaded < GN_VERSION_NUMBER) {
        PyErr_Format(PyExc_ImportError,
                     "gatednet: libgatednet %s is loaded but the extension was built for %d.%d.%d",
                     gn_version(), GN_VERSION_MAJOR, GN_VERSION_MINOR, GN_VERSION_PATCH);
        return NULL;
    }
    PyObject *m = PyModule_Create(&core_module);
    if (m == NULL) return NULL;
    if (PyType_Ready(&GNPy_BufferType) < 0 || PyType_Ready(&GNPy_NetworkType) < 0 ||
        PyType_Ready(&GNPy_ConvNetworkType) < 0)
        goto fail;
    if (PyModule_AddObjectRef(m, "Buffer", (PyObject *)&GNPy_BufferType) < 0) goto fail;
    if (PyModule_AddObjectRef(m, "Network", (PyObject *)&GNPy_NetworkType) < 0) goto fail;
    if (PyModule_AddObjectRef(m, "ConvNetwork", (PyObject *)&GNPy_ConvNetworkType) < 0) goto fail;
    if (PyModule_AddFunctions(m, gnpy_kernel_functions) < 0) goto fail;

    GNPy_Error = new_error(m, "GatedNetError", PyExc_RuntimeError,
                           "Error reported by libgatednet. Attributes: status (int gn_status), "
                           "status_name (e.g. 'GN_ERR_SHAPE'); str(e) is the library's message.");
    if (GNPy_Error == NULL) goto fail;
    /* Errors raised by the binding itself (not by a library call) have status None. */
    if (PyObject_SetAttrString(GNPy_Error, "status", Py_None) < 0 ||
        PyObject_SetAttrString(GNPy_Error, "status_name", Py_None) < 0)
        goto fail;
    PyObject *b;
    b = bases2(GNPy_Error, PyExc_ValueError);
    if (b == NULL) goto fail;
    GNPy_ArgumentError = new_error(m, "ArgumentError", b,
                                   "An argument the library rejected: invalid value, shape, NaN/Inf, "
                                   "label out of range (GN_ERR_INVALID_ARGUMENT, _SHAPE, _NOT_FINITE, "
                                   "_LABEL_RANGE, _BUFFER_TOO_SMALL, _NULL_POINTER). Also a ValueError.");
    GNPy_ClosedError = GNPy_ArgumentError ? new_error(m, "ClosedNetworkError", b,
                                   "Use of a closed network (or GN_ERR_INVALID_HANDLE). Also a ValueError.")
                                          : NULL;
    GNPy_CorruptError = GNPy_ClosedError ? new_error(m, "CorruptFileError", b,
                                   "A file or bytes object that is truncated, corrupted or not a "
                                   "gatednet network (GN_ERR_CORRUPT). Also a ValueError.")
                                         : NULL;
    Py_DECREF(b);
    if (GNPy_CorruptError == NULL) goto fail;
    b = bases2(GNPy_Error, PyExc_NotImplementedError);
    if (b == NULL) goto fail;
    GNPy_UnsupportedError = new_error(m, "UnsupportedError", b,
                                      "A valid request this network cannot serve (GN_ERR_UNSUPPORTED).");
    Py_DECREF(b);
    if (GNPy_UnsupportedError == NULL) goto fail;
    b = bases2(GNPy_Error, PyExc_OSError);
    if (b == NULL) goto fail;
    GNPy_FileError = new_error(m, "FileError", b,
                               "A file that could not be opened, read, written or renamed (GN_ERR_IO). "
                               "Also an OSError.");
    Py_DECREF(b);
    if (GNPy_FileError == NULL) goto fail;
    GNPy_CancelledError = new_error(m, "CancelledError", GNPy_Error, "A computation was cancelled.");
    if (GNPy_CancelledError == NULL) goto fail;
    GNPy_BusyError = new_error(m, "BusyError", GNPy_Error,
                               "A call on a network from inside one of its own callbacks (a fit progress "
                               "callback or a kernel progress callback of the same network; GN_ERR_BUSY).");
    if (GNPy_BusyError == NULL) goto fail;
    b = bases2(GNPy_Error, PyExc_MemoryError);
    if (b == NULL) goto fail;
    GNPy_OutOfMemoryError = new_error(m, "OutOfMemoryError", b,
                                      "An allocation failed or a size overflows (GN_ERR_OUT_OF_MEMORY).");
    Py_DECREF(b);
    if (GNPy_OutOfMemoryError == NULL) goto fail;

    if (PyModule_AddStringConstant(m, "library_version", gn_version()) < 0) goto fail;
    if (PyModule_AddIntConstant(m, "header_version_number", GN_VERSION_NUMBER) < 0) goto fail;
    if (PyModule_AddIntConstant(m, "MAX_HIDDEN", GN_MAX_HIDDEN) < 0) goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
