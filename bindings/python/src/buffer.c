/* gatednet.Buffer: an N-D array in memory owned by this object, exported through the buffer
 * protocol so that numpy.asarray(buf) and memoryview(buf) are views, not copies. The memory
 * lives until the Buffer and every view of it are gone, independently of any Network. */
#include "gatednet_py.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Results from this size on come from an anonymous mapping: its pages are already zero (no
 * memset pass over a 400 MB kernel before the library writes it) and are advised for
 * transparent huge pages, as numpy advises its large arrays; first-touch faults then cost
 * ~1/500 as many. Smaller results stay on the heap. */
#define GNPY_MAPPED_FROM ((size_t)4 << 20)

static void *result_memory(size_t bytes, size_t *mapped) {
    *mapped = 0;
    if (bytes >= GNPY_MAPPED_FROM) {
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
        (void)madvise(p, bytes, MADV_HUGEPAGE); /* advice only: a refusal changes nothing */
#endif
        *mapped = bytes;
        return p;
    }
    void *p = aligned_alloc(64, bytes);
    if (p != NULL) memset(p, 0, bytes);
    return p;
}

static void result_release(void *data, size_t mapped) {
    if (mapped) munmap(data, mapped);
    else free(data);
}

static Py_ssize_t itemsize_of(char format) {
    switch (format) {
    case 'f': return sizeof(float);
    case 'i': return sizeof(int32_t);
    case 'Q': return sizeof(uint64_t);
    case 'd': return sizeof(double);
    case 'q': return sizeof(int64_t);
    default: return 0;
    }
}

GNPy_Buffer *gnpy_buffer_new(char format, int ndim, const Py_ssize_t *shape) {
    Py_ssize_t itemsize = itemsize_of(format);
    if (itemsize == 0 || ndim < 1 || ndim > GNPY_MAX_DIMS) {
        PyErr_SetString(PyExc_SystemError, "gatednet: bad Buffer format or ndim");
        return NULL;
    }
    Py_ssize_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && n > PY_SSIZE_T_MAX / itemsize / shape[i])) {
            PyErr_SetString(PyExc_MemoryError, "gatednet: result size overflows");
            return NULL;
        }
        n *= shape[i];
    }
    GNPy_Buffer *b = PyObject_New(GNPy_Buffer, &GNPy_BufferType);
    if (b == NULL) return NULL;
    b->data = NULL;
    b->weakrefs = NULL;
    b->mapped = 0;
    /* 64-byte alignment suits BLAS and numpy; at least one element so data is never NULL. */
    size_t bytes = (size_t)(n > 0 ? n : 1) * (size_t)itemsize;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = result_memory(rounded, &b->mapped);
    if (p == NULL) {
        Py_DECREF(b);
        return (GNPy_Buffer *)PyErr_Format(PyExc_MemoryError,
                                           "gatednet: cannot allocate %zu bytes (%.1f GB) for a result of %zd values",
                                           rounded, (double)rounded / 1e9, n);
    }
    b->data = p;
    b->itemsize = itemsize;
    b->format[0] = format;
    b->format[1] = '\0';
    b->ndim = ndim;
    b->nitems = n;
    b->exports = 0;
    Py_ssize_t stride = itemsize;
    for (int i = ndim - 1; i >= 0; i--) {
        b->shape[i] = shape[i];
        b->strides[i] = stride;
        stride *= shape[i];
    }
    return b;
}

static void buffer_dealloc(GNPy_Buffer *self) {
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs((PyObject *)self);
    if (self->data != NULL) result_release(self->data, self->mapped);
    PyObject_Free(self);
}

static int buffer_getbuffer(GNPy_Buffer *self, Py_buffer *view, int flags) {
    /* Our memory is C-contiguous, so every request (simple, strided, C/any contiguous) can be
     * served except Fortran order for ndim > 1 and a flat (no shape) view of an N-D array. */
    if ((flags & PyBUF_F_CONTIGUOUS) == PyBUF_F_CONTIGUOUS && self->ndim > 1) {
        PyErr_SetString(PyExc_BufferError, "gatednet.Buffer: not Fortran contiguous");
        view->obj = NULL;
        return -1;
    }
    view->buf = self->data;
    view->obj = (PyObject *)self;
    Py_INCREF(self);
    view->len = self->nitems * self->itemsize;
    view->readonly = 0;
    view->itemsize = self->itemsize;
    view->format = (flags & PyBUF_FORMAT) ? self->format : NULL;
    view->ndim = self->ndim;
    view->shape = (flags & PyBUF_ND) == PyBUF_ND ? self->shape : NULL;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? self->strides : NULL;
    view->suboffsets = NULL;
    view->internal = NULL;
    if (view->shape == NULL) view->ndim = 1; /* PyBUF_SIMPLE: a flat byte-addressed view */
    self->exports++;
    return 0;
}

static void buffer_releasebuffer(GNPy_Buffer *self, Py_buffer *view) {
    (void)view;
    self->exports--;
}

static PyBufferProcs buffer_as_buffer = {
    .bf_getbuffer = (getbufferproc)buffer_getbuffer,
    .bf_releasebuffer = (releasebufferproc)buffer_releasebuffer,
};

static PyObject *buffer_get_shape(GNPy_Buffer *self, void *closure) {
    (void)closure;
    PyObject *t = PyTuple_New(self->ndim);
    if (t == NULL) return NULL;
    for (int i = 0; i < self->ndim; i++) {
        PyObject *v = PyLong_FromSsize_t(self->shape[i]);
        if (v == NULL) { Py_DECREF(t); return NULL; }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static PyObject *buffer_get_strides(GNPy_Buffer *self, void *closure) {
    (void)closure;
    PyObject *t = PyTuple_New(self->ndim);
    if (t == NULL) return NULL;
    for (int i = 0; i < self->ndim; i++) {
        PyObject *v = PyLong_FromSsize_t(self->strides[i]);
        if (v == NULL) { Py_DECREF(t); return NULL; }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static PyObject *buffer_get_format(GNPy_Buffer *self, void *closure) {
    (void)closure;
    return PyUnicode_FromString(self->format);
}

static PyObject *buffer_get_ndim(GNPy_Buffer *self, void *closure) {
    (void)closure;
    return PyLong_FromLong(self->ndim);
}

static PyObject *buffer_get_nbytes(GNPy_Buffer *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(self->nitems * self->itemsize);
}

static PyObject *buffer_get_itemsize(GNPy_Buffer *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(self->itemsize);
}

static PyObject *buffer_get_address(GNPy_Buffer *self, void *closure) {
    (void)closure;
    return PyLong_FromVoidPtr(self->data);
}

static PyObject *buffer_get_exports(GNPy_Buffer *self, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(self->exports);
}

static PyGetSetDef buffer_getset[] = {
    {"shape", (getter)buffer_get_shape, NULL, "Tuple of dimensions.", NULL},
    {"strides", (getter)buffer_get_strides, NULL, "Tuple of byte strides (C order).", NULL},
    {"format", (getter)buffer_get_format, NULL,
     "struct-module format: 'f' float32, 'd' float64, 'i' int32, 'q' int64, 'Q' uint64.", NULL},
    {"ndim", (getter)buffer_get_ndim, NULL, "Number of dimensions.", NULL},
    {"nbytes", (getter)buffer_get_nbytes, NULL, "Size of the data in bytes.", NULL},
    {"itemsize", (getter)buffer_get_itemsize, NULL, "Bytes per element.", NULL},
    {"address", (getter)buffer_get_address, NULL, "Address of the first element (int).", NULL},
    {"exports", (getter)buffer_get_exports, NULL, "Number of live buffer-protocol views.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *buffer_tolist(GNPy_Buffer *self, PyObject *unused) {
    (void)unused;
    PyObject *mv = PyMemoryView_FromObject((PyObject *)self);
    if (mv == NULL) return NULL;
    PyObject *r = PyObject_CallMethod(mv, "tolist", NULL);
    PyObject *rr = PyObject_CallMethod(mv, "release", NULL);
    Py_XDECREF(rr);
    Py_DECREF(mv);
    return r;
}

static PyObject *buffer_tobytes(GNPy_Buffer *self, PyObject *unused) {
    (void)unused;
    return PyBytes_FromStringAndSize(self->data, self->nitems * self->itemsize);
}

/* ---- DLPack (https://dmlc.github.io/dlpack/latest/): the structs of dlpack.h v1.0, declared
 * here from the specification so that the binding needs no extra header. ---------------------- */

typedef struct { int32_t device_type; int32_t device_id; } gnpy_dl_device;
typedef struct { uint8_t code; uint8_t bits; uint16_t lanes; } gnpy_dl_dtype;
typedef struct {
    void *data;
    gnpy_dl_device device;
    int32_t ndim;
    gnpy_dl_dtype dtype;
    int64_t *shape;
    int64_t *strides; /* in elements */
    uint64_t byte_offset;
} gnpy_dl_tensor;
typedef struct gnpy_dl_managed {
    gnpy_dl_tensor dl_tensor;
    void *manager_ctx;
    void (*deleter)(struct gnpy_dl_managed *self);
} gnpy_dl_managed;
typedef struct { uint32_t major; uint32_t minor; } gnpy_dl_version;
typedef struct gnpy_dl_managed_versioned {
    gnpy_dl_version version;
    void *manager_ctx;
    void (*deleter)(struct gnpy_dl_managed_versioned *self);
    uint64_t flags;
    gnpy_dl_tensor dl_tensor;
} gnpy_dl_managed_versioned;

enum { GNPY_DL_CPU = 1, GNPY_DL_INT = 0, GNPY_DL_UINT = 1, GNPY_DL_FLOAT = 2 };
#define GNPY_DL_FLAG_IS_COPIED ((uint64_t)1 << 1)

/* Drop the Buffer reference a DLPack tensor holds. Consumers may call deleters from any thread,
 * with or without the GIL; after interpreter shutdown the memory is left to the process exit. */
static void release_owner(void *owner) {
    if (owner == NULL || !Py_IsInitialized()) return;
    PyGILState_STATE g = PyGILState_Ensure();
    Py_DECREF((PyObject *)owner);
    PyGILState_Release(g);
}

static void dl_delete(gnpy_dl_managed *m) {
    release_owner(m->manager_ctx);
    free(m);
}

static void dl_delete_versioned(gnpy_dl_managed_versioned *m) {
    release_owner(m->manager_ctx);
    free(m);
}

/* Capsule destructors: a capsule never consumed (still named "dltensor...") owns its tensor. */
static void dl_capsule_destructor(PyObject *capsule) {
    if (PyCapsule_IsValid(capsule, "dltensor")) {
        gnpy_dl_managed *m = PyCapsule_GetPointer(capsule, "dltensor");
        if (m != NULL && m->deleter != NULL) m->deleter(m);
    }
    PyErr_Clear();
}

static void dl_capsule_destructor_versioned(PyObject *capsule) {
    if (PyCapsule_IsValid(capsule, "dltensor_versioned")) {
        gnpy_dl_managed_versioned *m = PyCapsule_GetPointer(capsule, "dltensor_versioned");
        if (m != NULL && m->deleter != NULL) m->deleter(m);
    }
    PyErr_Clear();
}

/* Fill t for b (shape and strides in the storage after the struct) and take a reference to b. */
static void dl_fill(gnpy_dl_tensor *t, GNPy_Buffer *b, int64_t *dims) {
    t->data = b->data;
    t->device.device_type = GNPY_DL_CPU;
    t->device.device_id = 0;
    t->ndim = b->ndim;
    switch (b->format[0]) {
    case 'f': t->dtype.code = GNPY_DL_FLOAT; t->dtype.bits = 32; break;
    case 'd': t->dtype.code = GNPY_DL_FLOAT; t->dtype.bits = 64; break;
    case 'i': t->dtype.code = GNPY_DL_INT; t->dtype.bits = 32; break;
    case 'q': t->dtype.code = GNPY_DL_INT; t->dtype.bits = 64; break;
    default: t->dtype.code = GNPY_DL_UINT; t->dtype.bits = 64; break;
    }
    t->dtype.lanes = 1;
    t->shape = dims;
    t->strides = dims + b->ndim;
    for (int i = 0; i < b->ndim; i++) {
        dims[i] = b->shape[i];
        dims[b->ndim + i] = b->strides[i] / b->itemsize;
    }
    t->byte_offset = 0;
}

static int dl_parse_version(PyObject *v, long *major) {
    *major = 0;
    if (v == NULL || v == Py_None) return 0;
    PyObject *seq = PySequence_Fast(v, "max_version: expected a (major, minor) tuple");
    if (seq == NULL) return -1;
    if (PySequence_Fast_GET_SIZE(seq) != 2) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_TypeError, "max_version: expected a (major, minor) tuple");
        return -1;
    }
    *major = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, 0));
    Py_DECREF(seq);
    return *major == -1 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *buffer_dlpack(GNPy_Buffer *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"stream", "max_version", "dl_device", "copy", NULL};
    PyObject *stream = Py_None, *max_version = Py_None, *dl_device = Py_None, *copy = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O$OOO:__dlpack__", kwlist, &stream, &max_version, &dl_device,
                                     &copy))
        return NULL;
    /* CPU memory: no stream to synchronise with (None; -1 is accepted as "no synchronisation"). */
    if (stream != Py_None) {
        long v = PyLong_Check(stream) ? PyLong_AsLong(stream) : 0;
        if (!PyLong_Check(stream) || v != -1) {
            PyErr_Clear();
            PyErr_SetString(PyExc_BufferError, "stream: a gatednet.Buffer lives in CPU memory; pass stream=None");
            return NULL;
        }
    }
    if (dl_device != Py_None) {
        int type = -1, id = -1;
        if (!PyArg_ParseTuple(dl_device, "ii;dl_device: expected (device_type, device_id)", &type, &id)) return NULL;
        if (type != GNPY_DL_CPU || id != 0) {
            PyErr_Format(PyExc_BufferError, "dl_device: (%d, %d) requested, a gatednet.Buffer is on the CPU (1, 0)",
                         type, id);
            return NULL;
        }
    }
    long major = 0;
    if (dl_parse_version(max_version, &major) < 0) return NULL;
    int want_copy = copy != Py_None && PyObject_IsTrue(copy);
    if (want_copy < 0) return NULL;
    GNPy_Buffer *owner = self;
    if (want_copy) {
        owner = gnpy_buffer_new(self->format[0], self->ndim, self->shape);
        if (owner == NULL) return NULL;
        memcpy(owner->data, self->data, (size_t)(self->nitems * self->itemsize));
    } else {
        Py_INCREF(self);
    }
    size_t dims_bytes = 2 * (size_t)owner->ndim * sizeof(int64_t);
    PyObject *capsule = NULL;
    if (major >= 1) {
        gnpy_dl_managed_versioned *m = malloc(sizeof *m + dims_bytes);
        if (m == NULL) { Py_DECREF(owner); return PyErr_NoMemory(); }
        m->version.major = 1;
        m->version.minor = 0;
        m->manager_ctx = owner;
        m->deleter = dl_delete_versioned;
        m->flags = want_copy ? GNPY_DL_FLAG_IS_COPIED : 0;
        dl_fill(&m->dl_tensor, owner, (int64_t *)(m + 1));
        capsule = PyCapsule_New(m, "dltensor_versioned", dl_capsule_destructor_versioned);
        if (capsule == NULL) { Py_DECREF(owner); free(m); }
    } else {
        gnpy_dl_managed *m = malloc(sizeof *m + dims_bytes);
        if (m == NULL) { Py_DECREF(owner); return PyErr_NoMemory(); }
        m->manager_ctx = owner;
        m->deleter = dl_delete;
        dl_fill(&m->dl_tensor, owner, (int64_t *)(m + 1));
        capsule = PyCapsule_New(m, "dltensor", dl_capsule_destructor);
        if (capsule == NULL) { Py_DECREF(owner); free(m); }
    }
    return capsule;
}

static PyObject *buffer_dlpack_device(GNPy_Buffer *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return Py_BuildValue("(ii)", GNPY_DL_CPU, 0);
}

static PyMethodDef buffer_methods[] = {
    {"tolist", (PyCFunction)buffer_tolist, METH_NOARGS, "The elements as nested lists."},
    {"tobytes", (PyCFunction)buffer_tobytes, METH_NOARGS, "A bytes copy of the raw data."},
    {"__dlpack__", (PyCFunction)(void (*)(void))buffer_dlpack, METH_VARARGS | METH_KEYWORDS,
     "__dlpack__(stream=None, *, max_version=None, dl_device=None, copy=None) -> PyCapsule\n\n"
     "Export the Buffer as a DLPack tensor (CPU, C order) sharing its memory: numpy.from_dlpack,\n"
     "torch.from_dlpack and jax.dlpack take it without a copy. The consumer's tensor keeps the\n"
     "Buffer's memory alive. max_version >= (1, 0) gives a versioned capsule\n"
     "('dltensor_versioned'), else the unversioned one ('dltensor'). copy=True exports a copy."},
    {"__dlpack_device__", (PyCFunction)buffer_dlpack_device, METH_NOARGS,
     "__dlpack_device__() -> (1, 0)\n\nThe DLPack device: kDLCPU, device 0."},
    {NULL, NULL, 0, NULL},
};

static Py_ssize_t buffer_length(GNPy_Buffer *self) { return self->shape[0]; }

static PySequenceMethods buffer_as_sequence = {
    .sq_length = (lenfunc)buffer_length,
};

static PyObject *buffer_repr(GNPy_Buffer *self) {
    PyObject *shape = buffer_get_shape(self, NULL);
    if (shape == NULL) return NULL;
    const char *dtype;
    switch (self->format[0]) {
    case 'f': dtype = "float32"; break;
    case 'd': dtype = "float64"; break;
    case 'i': dtype = "int32"; break;
    case 'q': dtype = "int64"; break;
    default: dtype = "uint64"; break;
    }
    PyObject *r = PyUnicode_FromFormat("<gatednet.Buffer %s shape=%R>", dtype, shape);
    Py_DECREF(shape);
    return r;
}

PyTypeObject GNPy_BufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gatednet.Buffer",
    .tp_basicsize = sizeof(GNPy_Buffer),
    .tp_dealloc = (destructor)buffer_dealloc,
    .tp_repr = (reprfunc)buffer_repr,
    .tp_as_sequence = &buffer_as_sequence,
    .tp_as_buffer = &buffer_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Array result owned by gatednet (float32 'f', float64 'd', int32 'i', int64 'q' or\n"
              "uint64 'Q'; C order).\n\n"
              "Exposes the buffer protocol: numpy.asarray(buf) and memoryview(buf) are views\n"
              "sharing its memory (writable). The memory is freed when the Buffer and all views\n"
              "are gone; it does not depend on the Network that produced it.\n\n"
              "DLPack: numpy.from_dlpack(buf) and torch.from_dlpack(buf) share the memory too.",
    .tp_weaklistoffset = offsetof(GNPy_Buffer, weakrefs),
    .tp_methods = buffer_methods,
    .tp_getset = buffer_getset,
};
