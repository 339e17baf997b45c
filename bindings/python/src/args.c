/* Conversion of Python buffers to the arrays the C ABI takes, and of outputs back.
 *
 * The rule for inputs (documented in gatednet/__init__.py): a C-contiguous float32 buffer is
 * passed to the library as is (no copy); a float32 buffer with other strides, or a float64
 * buffer, is copied once into a temporary C-contiguous float32 array (float64 values are
 * rounded to float32); anything else raises TypeError naming the argument. Labels: int32
 * C-contiguous in place, any other integer type copied with a range check. Copies are made
 * with PyMem_RawMalloc so that tracemalloc sees them (the tests use this to prove no-copy). */
#include "gatednet_py.h"

#include <stdlib.h>
#include <string.h>

/* Element kind of a struct-module format string, ignoring a native/little-endian prefix.
 * Returns the code char, or 0 for unsupported (e.g. big-endian or composite formats). */
static char format_code(const char *fmt) {
    if (fmt == NULL) return 'B';
    if (*fmt == '@' || *fmt == '=' || *fmt == '<') fmt++;
    if (fmt[0] == '\0' || fmt[1] != '\0') return 0;
    return fmt[0];
}

static const char *dtype_name(const char *fmt) {
    switch (format_code(fmt)) {
    case 'f': return "float32";
    case 'd': return "float64";
    case 'e': return "float16";
    case 'b': return "int8";
    case 'B': return "uint8";
    case 'h': return "int16";
    case 'H': return "uint16";
    case 'i': return "int32";
    case 'I': return "uint32";
    case 'l': case 'q': return "int64";
    case 'L': case 'Q': return "uint64";
    case '?': return "bool";
    default: return fmt;
    }
}

static int get_view(PyObject *obj, const char *name, Py_buffer *view, int writable) {
    int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: expected an object with the buffer protocol (numpy array, memoryview, "
                     "array.array), got %.100s; convert with numpy.asarray(%s, dtype=numpy.float32)",
                     name, Py_TYPE(obj)->tp_name, name);
        return -1;
    }
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        if (writable || PyErr_ExceptionMatches(PyExc_BufferError)) {
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_Format(writable ? PyExc_ValueError : PyExc_TypeError,
                         "%s: %s buffer needed (%S)", name,
                         writable ? "a writable, strided" : "a strided", value ? value : Py_None);
            Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
        }
        return -1;
    }
    if (view->suboffsets != NULL) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s: indirect (PIL-style) buffers are not supported", name);
        return -1;
    }
    return 0;
}

static PyObject *shape_tuple(const Py_buffer *v) {
    PyObject *t = PyTuple_New(v->ndim);
    if (t == NULL) return NULL;
    for (int i = 0; i < v->ndim; i++) {
        PyObject *x = PyLong_FromSsize_t(v->shape ? v->shape[i] : v->len / v->itemsize);
        if (x == NULL) { Py_DECREF(t); return NULL; }
        PyTuple_SET_ITEM(t, i, x);
    }
    return t;
}

static void shape_error(const char *name, const Py_buffer *v, const char *expected) {
    PyObject *t = shape_tuple(v);
    if (t == NULL) return;
    PyErr_Format(PyExc_ValueError, "%s: expected %s, got shape %R", name, expected, t);
    Py_DECREF(t);
}

static int is_c_contiguous(const Py_buffer *v) { return PyBuffer_IsContiguous(v, 'C'); }

/* Advance a multi-index over v's shape; returns the byte offset of the current element. */
static Py_ssize_t next_offset(const Py_buffer *v, Py_ssize_t *index) {
    Py_ssize_t off = 0;
    for (int d = 0; d < v->ndim; d++) off += index[d] * v->strides[d];
    for (int d = v->ndim - 1; d >= 0; d--) {
        if (++index[d] < v->shape[d]) break;
        index[d] = 0;
    }
    return off;
}

static Py_ssize_t element_count(const Py_buffer *v) {
    Py_ssize_t n = 1;
    for (int d = 0; d < v->ndim; d++) n *= v->shape[d];
    return n;
}

/* Copy any float32/float64 strided buffer into a new C-contiguous float32 array. */
static float *copy_to_f32(const Py_buffer *v, char code, Py_ssize_t n) {
    float *dst = PyMem_RawMalloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (dst == NULL) { PyErr_NoMemory(); return NULL; }
    Py_ssize_t index[GNPY_MAX_DIMS] = {0};
    const char *base = v->buf;
    if (v->ndim == 0) {
        dst[0] = code == 'f' ? *(const float *)base : (float)*(const double *)base;
        return dst;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *p = base + next_offset(v, index);
        if (code == 'f') {
            float f;
            memcpy(&f, p, sizeof f);
            dst[i] = f;
        } else {
            double d;
            memcpy(&d, p, sizeof d);
            dst[i] = (float)d;
        }
    }
    return dst;
}

static int float_input(PyObject *obj, const char *name, gnpy_input *in, Py_ssize_t expected_count,
                       int (*check_shape)(const Py_buffer *, const char *, Py_ssize_t, gnpy_input *),
                       Py_ssize_t arg) {
    memset(in, 0, sizeof *in);
    if (get_view(obj, name, &in->view, 0) < 0) return -1;
    in->has_view = 1;
    if (in->view.ndim > GNPY_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "%s: more than %d dimensions", name, GNPY_MAX_DIMS);
        goto fail;
    }
    char code = format_code(in->view.format);
    if (code != 'f' && code != 'd') {
        PyErr_Format(PyExc_TypeError, "%s: expected float32 data (float64 is converted), got %s",
                     name, dtype_name(in->view.format));
        goto fail;
    }
    if ((code == 'f' && in->view.itemsize != 4) || (code == 'd' && in->view.itemsize != 8)) {
        PyErr_Format(PyExc_TypeError, "%s: unexpected itemsize %zd", name, in->view.itemsize);
        goto fail;
    }
    if (check_shape(&in->view, name, arg, in) < 0) goto fail;
    (void)expected_count;
    if (code == 'f' && is_c_contiguous(&in->view)) {
        in->data = in->view.buf;
        return 0;
    }
    in->copy = copy_to_f32(&in->view, code, element_count(&in->view));
    if (in->copy == NULL) goto fail;
    in->data = in->copy;
    return 0;
fail:
    gnpy_input_release(in);
    return -1;
}

static int matrix_shape(const Py_buffer *v, const char *name, Py_ssize_t cols, gnpy_input *in) {
    char expected[96];
    if (cols >= 0) snprintf(expected, sizeof expected, "a 2-D buffer of shape (n, %zd)", cols);
    else snprintf(expected, sizeof expected, "a 2-D buffer");
    if (v->ndim < 2 || (cols < 0 && v->ndim != 2)) {
        shape_error(name, v, expected);
        return -1;
    }
    Py_ssize_t trailing = 1;
    for (int d = 1; d < v->ndim; d++) trailing *= v->shape[d];
    if (cols >= 0 && trailing != cols) {
        shape_error(name, v, expected);
        return -1;
    }
    if (v->shape[0] < 1) {
        shape_error(name, v, "at least one row");
        return -1;
    }
    in->rows = v->shape[0];
    in->cols = trailing;
    in->ld = trailing;
    return 0;
}

int gnpy_input_f32_matrix(PyObject *obj, const char *name, Py_ssize_t cols, gnpy_input *in) {
    return float_input(obj, name, in, -1, matrix_shape, cols);
}

static int flat_shape(const Py_buffer *v, const char *name, Py_ssize_t count, gnpy_input *in) {
    Py_ssize_t n = element_count(v);
    if (n != count) {
        char expected[96];
        snprintf(expected, sizeof expected, "%zd elements", count);
        shape_error(name, v, expected);
        return -1;
    }
    in->rows = n;
    in->cols = 1;
    return 0;
}

int gnpy_input_f32_flat(PyObject *obj, const char *name, Py_ssize_t count, gnpy_input *in) {
    return float_input(obj, name, in, count, flat_shape, count);
}

int gnpy_input_i32_vector(PyObject *obj, const char *name, Py_ssize_t rows, gnpy_input *in) {
    memset(in, 0, sizeof *in);
    if (get_view(obj, name, &in->view, 0) < 0) return -1;
    in->has_view = 1;
    Py_buffer *v = &in->view;
    char code = format_code(v->format);
    int is_signed;
    switch (code) {
    case 'b': case 'h': case 'i': case 'l': case 'q': is_signed = 1; break;
    case 'B': case 'H': case 'I': case 'L': case 'Q': case '?': is_signed = 0; break;
    default:
        PyErr_Format(PyExc_TypeError, "%s: expected integer or bool labels (int32 is used in place), got %s",
                     name, dtype_name(v->format));
        goto fail;
    }
    if (v->ndim != 1) {
        shape_error(name, v, "a 1-D buffer of labels");
        goto fail;
    }
    if (rows >= 0 && v->shape[0] != rows) {
        char expected[96];
        snprintf(expected, sizeof expected, "%zd labels (one per row of x)", rows);
        shape_error(name, v, expected);
        goto fail;
    }
    in->rows = v->shape[0];
    in->cols = 1;
    if (code == 'i' && v->itemsize == 4 && is_c_contiguous(v)) {
        in->data = v->buf;
        return 0;
    }
    int32_t *dst = PyMem_RawMalloc((size_t)(in->rows > 0 ? in->rows : 1) * sizeof(int32_t));
    if (dst == NULL) { PyErr_NoMemory(); goto fail; }
    in->copy = dst;
    for (Py_ssize_t i = 0; i < in->rows; i++) {
        const char *p = (const char *)v->buf + i * v->strides[0];
        long long value;
        if (is_signed) {
            switch (v->itemsize) {
            case 1: { int8_t t; memcpy(&t, p, 1); value = t; break; }
            case 2: { int16_t t; memcpy(&t, p, 2); value = t; break; }
            case 4: { int32_t t; memcpy(&t, p, 4); value = t; break; }
            case 8: { int64_t t; memcpy(&t, p, 8); value = t; break; }
            default: PyErr_Format(PyExc_TypeError, "%s: unexpected itemsize %zd", name, v->itemsize); goto fail;
            }
        } else {
            uint64_t u;
            switch (v->itemsize) {
            case 1: { uint8_t t; memcpy(&t, p, 1); u = t; break; }
            case 2: { uint16_t t; memcpy(&t, p, 2); u = t; break; }
            case 4: { uint32_t t; memcpy(&t, p, 4); u = t; break; }
            case 8: { uint64_t t; memcpy(&t, p, 8); u = t; break; }
            default: PyErr_Format(PyExc_TypeError, "%s: unexpected itemsize %zd", name, v->itemsize); goto fail;
            }
            value = u > (uint64_t)INT32_MAX ? (long long)INT32_MAX + 1 : (long long)u;
        }
        if (value < INT32_MIN || value > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "%s[%zd]: %lld does not fit in int32", name, i, value);
            goto fail;
        }
        dst[i] = (int32_t)value;
    }
    in->data = dst;
    return 0;
fail:
    gnpy_input_release(in);
    return -1;
}

/* The format code of obj's buffer, 0 if it has none (no exception left set). */
static char probe_format(PyObject *obj) {
    Py_buffer probe;
    char code = 0;
    if (PyObject_CheckBuffer(obj) && PyObject_GetBuffer(obj, &probe, PyBUF_STRIDES | PyBUF_FORMAT) == 0) {
        code = format_code(probe.format);
        PyBuffer_Release(&probe);
    } else {
        PyErr_Clear();
    }
    return code;
}

int gnpy_is_float_buffer(PyObject *obj) {
    char code = probe_format(obj);
    return code == 'f' || code == 'd';
}

static int targets_shape(const Py_buffer *v, const char *name, Py_ssize_t cols, gnpy_input *in) {
    int ok = (v->ndim == 2 && v->shape[1] == cols) || (v->ndim == 1 && cols == 1);
    if (!ok) {
        char expected[96];
        if (cols == 1) snprintf(expected, sizeof expected, "a buffer of shape (n,) or (n, 1)");
        else snprintf(expected, sizeof expected, "a 2-D buffer of shape (n, %zd)", cols);
        shape_error(name, v, expected);
        return -1;
    }
    in->rows = v->shape[0];
    in->cols = cols;
    in->ld = cols;
    return 0;
}

int gnpy_input_f32_targets(PyObject *obj, const char *name, Py_ssize_t rows, Py_ssize_t cols, gnpy_input *in) {
    if (float_input(obj, name, in, -1, targets_shape, cols) < 0) return -1;
    if (in->rows != rows) {
        char expected[96];
        snprintf(expected, sizeof expected, "%zd rows (one per row of x)", rows);
        shape_error(name, &in->view, expected);
        gnpy_input_release(in);
        return -1;
    }
    return 0;
}

int gnpy_input_f32_values(PyObject *obj, const char *name, Py_ssize_t count, gnpy_input *in) {
    memset(in, 0, sizeof *in);
    char code = probe_format(obj);
    if (code == 'f' || code == 'd' || code == 0) return gnpy_input_f32_flat(obj, name, count, in);
    /* Integer or bool values: through the label reader (1-D, range-checked), then to float. */
    gnpy_input labels;
    if (gnpy_input_i32_vector(obj, name, count, &labels) < 0) return -1;
    float *dst = PyMem_RawMalloc((size_t)(count > 0 ? count : 1) * sizeof(float));
    if (dst == NULL) {
        gnpy_input_release(&labels);
        PyErr_NoMemory();
        return -1;
    }
    const int32_t *src = labels.data;
    for (Py_ssize_t i = 0; i < count; i++) dst[i] = (float)src[i];
    gnpy_input_release(&labels);
    in->copy = dst;
    in->data = dst;
    in->rows = count;
    in->cols = 1;
    in->ld = 1;
    return 0;
}

int gnpy_input_f32_strided(PyObject *obj, const char *name, gnpy_input *in) {
    if (float_input(obj, name, in, -1, matrix_shape, -1) < 0) return -1;
    in->ld = in->cols;
    return 0;
}

int gnpy_input_f32_rows(PyObject *obj, const char *name, gnpy_input *in) {
    /* A 2-D float32 matrix whose rows are contiguous but may be spaced (row stride ld >= cols)
     * is taken in place; anything else goes through gnpy_input_f32_strided (copy if needed). */
    Py_buffer probe;
    memset(in, 0, sizeof *in);
    if (PyObject_CheckBuffer(obj) && PyObject_GetBuffer(obj, &probe, PyBUF_STRIDES | PyBUF_FORMAT) == 0) {
        int in_place = probe.ndim == 2 && format_code(probe.format) == 'f' && probe.itemsize == 4 &&
                       probe.shape[0] >= 1 && probe.shape[1] >= 1 && probe.strides[1] == 4 &&
                       probe.strides[0] > 0 && probe.strides[0] % 4 == 0 && probe.strides[0] / 4 >= probe.shape[1];
        if (in_place) {
            in->view = probe;
            in->has_view = 1;
            in->data = probe.buf;
            in->rows = probe.shape[0];
            in->cols = probe.shape[1];
            in->ld = probe.strides[0] / 4;
            return 0;
        }
        PyBuffer_Release(&probe);
    } else {
        PyErr_Clear();
    }
    return gnpy_input_f32_strided(obj, name, in);
}

int gnpy_input_u64_matrix(PyObject *obj, const char *name, Py_ssize_t rows, Py_ssize_t cols, const char *what,
                          gnpy_input *in) {
    memset(in, 0, sizeof *in);
    if (get_view(obj, name, &in->view, 0) < 0) return -1;
    in->has_view = 1;
    char code = format_code(in->view.format);
    if ((code != 'Q' && code != 'L') || in->view.itemsize != 8) {
        PyErr_Format(PyExc_TypeError, "%s: expected uint64 (%s), got %s", name, what, dtype_name(in->view.format));
        goto fail;
    }
    if (in->view.ndim != 2 || in->view.shape[0] != rows || in->view.shape[1] != cols) {
        char expected[160];
        snprintf(expected, sizeof expected, "shape (%zd, %zd) (%s)", rows, cols, what);
        shape_error(name, &in->view, expected);
        goto fail;
    }
    if (!is_c_contiguous(&in->view)) {
        PyErr_Format(PyExc_ValueError, "%s: expected a C-contiguous array (%s); it is used in place, never copied: "
                     "pass numpy.ascontiguousarray(%s)", name, what, name);
        goto fail;
    }
    in->data = in->view.buf;
    in->rows = rows;
    in->cols = in->ld = cols;
    return 0;
fail:
    gnpy_input_release(in);
    return -1;
}

void gnpy_input_release(gnpy_input *in) {
    if (in->has_view) {
        PyBuffer_Release(&in->view);
        in->has_view = 0;
    }
    PyMem_RawFree(in->copy);
    in->copy = NULL;
    in->data = NULL;
}

int gnpy_output_prepare(PyObject *out, const char *name, char format, int ndim,
                        const Py_ssize_t *shape, int allow_row_stride, gnpy_output *o) {
    memset(o, 0, sizeof *o);
    if (out == NULL || out == Py_None) {
        GNPy_Buffer *b = gnpy_buffer_new(format, ndim, shape);
        if (b == NULL) return -1;
        o->result = (PyObject *)b;
        o->data = b->data;
        o->ld = ndim == 2 ? shape[1] : 0;
        o->capacity = b->nitems;
        return 0;
    }
    if (get_view(out, name, &o->view, 1) < 0) return -1;
    o->has_view = 1;
    Py_buffer *v = &o->view;
    char code = format_code(v->format);
    Py_ssize_t itemsize = (format == 'f' || format == 'i') ? 4 : 8;
    int format_ok = (code == format && v->itemsize == itemsize) ||
                    (format == 'Q' && code == 'L' && v->itemsize == 8) ||
                    (format == 'q' && code == 'l' && v->itemsize == 8) ||
                    (format == 'i' && code == 'l' && v->itemsize == 4);
    if (!format_ok) {
        const char *want = format == 'f' ? "float32" : format == 'd' ? "float64" : format == 'i' ? "int32"
                         : format == 'q' ? "int64" : "uint64";
        PyErr_Format(PyExc_TypeError, "%s: expected a writable %s buffer, got %s", name, want,
                     dtype_name(v->format));
        goto fail;
    }
    int shape_ok = v->ndim == ndim;
    for (int d = 0; shape_ok && d < ndim; d++) shape_ok = v->shape[d] == shape[d];
    if (!shape_ok) {
        char expected[128];
        if (ndim == 1) snprintf(expected, sizeof expected, "shape (%zd,)", shape[0]);
        else snprintf(expected, sizeof expected, "shape (%zd, %zd)", shape[0], shape[1]);
        shape_error(name, v, expected);
        goto fail;
    }
    if (is_c_contiguous(v)) {
        o->ld = ndim == 2 ? shape[1] : 0;
        o->capacity = element_count(v);
    } else if (allow_row_stride && ndim == 2 && v->strides[1] == itemsize && v->strides[0] > 0 &&
               v->strides[0] % itemsize == 0 && v->strides[0] / itemsize >= shape[1]) {
        o->ld = v->strides[0] / itemsize;
        o->capacity = (shape[0] - 1) * o->ld + shape[1];
    } else {
        PyErr_Format(PyExc_ValueError,
                     allow_row_stride ? "%s: needs contiguous rows (unit stride within a row, positive row stride)"
                                      : "%s: needs a C-contiguous buffer",
                     name);
        goto fail;
    }
    o->data = v->buf;
    Py_INCREF(out);
    o->result = out;
    return 0;
fail:
    PyBuffer_Release(&o->view);
    o->has_view = 0;
    return -1;
}

PyObject *gnpy_output_finish(gnpy_output *o, int ok) {
    if (o->has_view) {
        PyBuffer_Release(&o->view);
        o->has_view = 0;
    }
    PyObject *r = o->result;
    o->result = NULL;
    if (!ok) {
        Py_XDECREF(r);
        return NULL;
    }
    return r;
}

PyObject *gnpy_fspath_bytes(PyObject *path, const char *name) {
    PyObject *fs = PyOS_FSPath(path);
    if (fs == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected str, bytes or os.PathLike, got %.100s", name,
                     Py_TYPE(path)->tp_name);
        return NULL;
    }
    PyObject *b = NULL;
    if (PyUnicode_Check(fs)) {
        b = PyUnicode_EncodeFSDefault(fs);
    } else {
        b = fs;
        Py_INCREF(b);
    }
    Py_DECREF(fs);
    if (b == NULL) return NULL;
    if ((Py_ssize_t)strlen(PyBytes_AS_STRING(b)) != PyBytes_GET_SIZE(b)) {
        Py_DECREF(b);
        PyErr_Format(PyExc_ValueError, "%s: embedded NUL character", name);
        return NULL;
    }
    return b;
}
