/* Module-level functions of the kernel suite that act on kernel matrices, not on a network:
 * eigenvalues, nu, kernel ridge regression, targets and classes (gatednet.h "kernel suite"). */
#include "gatednet_py.h"

/* k: a square float matrix (rows may be strided). */
static int square_kernel(PyObject *obj, const char *name, gnpy_input *k) {
    if (gnpy_input_f32_rows(obj, name, k) < 0) return -1;
    if (k->rows != k->cols) {
        PyErr_Format(PyExc_ValueError, "%s: expected a square kernel matrix, got %zd x %zd", name, k->rows, k->cols);
        gnpy_input_release(k);
        return -1;
    }
    return 0;
}

static PyObject *kf_eigenvalues(PyObject *m, PyObject *arg) {
    gnpy_input k;
    if (square_kernel(arg, "k", &k) < 0) return NULL;
    Py_ssize_t shape[1] = {k.rows};
    GNPy_Buffer *values = gnpy_buffer_new('d', 1, shape);
    gn_status s = GN_OK;
    if (values != NULL) {
        Py_BEGIN_ALLOW_THREADS
        s = gn_kernel_eigenvalues(k.data, k.rows, k.ld, values->data, values->nitems);
        Py_END_ALLOW_THREADS
    }
    gnpy_input_release(&k);
    if (values == NULL) return NULL;
    if (s != GN_OK) { Py_DECREF(values); return gnpy_raise(s); }
    return (PyObject *)values;
}

static PyObject *kf_nu(PyObject *m, PyObject *args) {
    PyObject *k_obj, *y_obj;
    if (!PyArg_ParseTuple(args, "OO:kernel_nu", &k_obj, &y_obj)) return NULL;
    gnpy_input k, y;
    if (square_kernel(k_obj, "k", &k) < 0) return NULL;
    if (gnpy_input_f32_values(y_obj, "y", k.rows, &y) < 0) { gnpy_input_release(&k); return NULL; }
    double nu = 0, ridge = 0;
    gn_status s;
    Py_BEGIN_ALLOW_THREADS
    s = gn_kernel_nu(k.data, k.rows, k.ld, y.data, &nu, &ridge);
    Py_END_ALLOW_THREADS
    gnpy_input_release(&k);
    gnpy_input_release(&y);
    if (s != GN_OK) return gnpy_raise(s);
    return Py_BuildValue("(dd)", nu, ridge);
}

/* targets: n x t (2-D) or n values (1-D, t = 1). */
static int targets_input(PyObject *obj, const char *name, Py_ssize_t n, gnpy_input *t, Py_ssize_t *cols) {
    Py_buffer probe;
    int one_d = 0;
    if (PyObject_CheckBuffer(obj) && PyObject_GetBuffer(obj, &probe, PyBUF_STRIDES) == 0) {
        one_d = probe.ndim == 1;
        PyBuffer_Release(&probe);
    } else {
        PyErr_Clear();
    }
    if (one_d) {
        if (gnpy_input_f32_values(obj, name, n, t) < 0) return -1;
        *cols = 1;
        return 0;
    }
    if (gnpy_input_f32_strided(obj, name, t) < 0) return -1;
    if (t->rows != n) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd rows (one per kernel row), got %zd", name, n, t->rows);
        gnpy_input_release(t);
        return -1;
    }
    *cols = t->cols;
    return 0;
}

static PyObject *kf_ridge_fit(PyObject *m, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"k", "targets", "ridge", NULL};
    PyObject *k_obj, *t_obj;
    double ridge = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|d:kernel_ridge_fit", kwlist, &k_obj, &t_obj, &ridge)) return NULL;
    gnpy_input k, t;
    Py_ssize_t cols = 0;
    if (square_kernel(k_obj, "k", &k) < 0) return NULL;
    if (targets_input(t_obj, "targets", k.rows, &t, &cols) < 0) { gnpy_input_release(&k); return NULL; }
    Py_ssize_t shape[2] = {k.rows, cols};
    GNPy_Buffer *alpha = gnpy_buffer_new('f', 2, shape);
    double used = 0;
    gn_status s = GN_OK;
    if (alpha != NULL) {
        Py_BEGIN_ALLOW_THREADS
        s = gn_kernel_ridge_fit(k.data, k.rows, k.ld, t.data, cols, ridge, alpha->data, alpha->nitems, &used);
        Py_END_ALLOW_THREADS
    }
    gnpy_input_release(&k);
    gnpy_input_release(&t);
    if (alpha == NULL) return NULL;
    if (s != GN_OK) { Py_DECREF(alpha); return gnpy_raise(s); }
    return Py_BuildValue("(Nd)", (PyObject *)alpha, used);
}

static PyObject *kf_ridge_predict(PyObject *m, PyObject *args) {
    PyObject *k_obj, *a_obj;
    if (!PyArg_ParseTuple(args, "OO:kernel_ridge_predict", &k_obj, &a_obj)) return NULL;
    gnpy_input k, a;
    Py_ssize_t cols = 0;
    if (gnpy_input_f32_rows(k_obj, "k_test", &k) < 0) return NULL;
    if (targets_input(a_obj, "alpha", k.cols, &a, &cols) < 0) { gnpy_input_release(&k); return NULL; }
    Py_ssize_t shape[2] = {k.rows, cols};
    GNPy_Buffer *out = gnpy_buffer_new('f', 2, shape);
    gn_status s = GN_OK;
    if (out != NULL) {
        Py_BEGIN_ALLOW_THREADS
        s = gn_kernel_ridge_predict(k.data, k.rows, k.cols, k.ld, a.data, cols, out->data, out->nitems);
        Py_END_ALLOW_THREADS
    }
    gnpy_input_release(&k);
    gnpy_input_release(&a);
    if (out == NULL) return NULL;
    if (s != GN_OK) { Py_DECREF(out); return gnpy_raise(s); }
    return (PyObject *)out;
}

static PyObject *kf_targets(PyObject *m, PyObject *args) {
    PyObject *y_obj;
    long long classes;
    if (!PyArg_ParseTuple(args, "OL:kernel_targets", &y_obj, &classes)) return NULL;
    gnpy_input y;
    if (gnpy_input_i32_vector(y_obj, "labels", -1, &y) < 0) return NULL;
    Py_ssize_t shape[2] = {y.rows, classes > 1 ? (Py_ssize_t)classes : 1};
    GNPy_Buffer *out = classes >= 1 ? gnpy_buffer_new('f', 2, shape) : NULL;
    gn_status s = GN_OK;
    if (classes < 1) {
        PyErr_Format(PyExc_ValueError, "classes: got %lld, need >= 1", classes);
    } else if (out != NULL) {
        Py_BEGIN_ALLOW_THREADS
        s = gn_kernel_targets(y.data, y.rows, classes, out->data, out->nitems);
        Py_END_ALLOW_THREADS
    }
    gnpy_input_release(&y);
    if (out == NULL) return NULL;
    if (s != GN_OK) { Py_DECREF(out); return gnpy_raise(s); }
    return (PyObject *)out;
}

static PyObject *kf_classes(PyObject *m, PyObject *arg) {
    gnpy_input sc;
    Py_ssize_t cols = 0;
    Py_buffer probe;
    int one_d = 0;
    if (PyObject_CheckBuffer(arg) && PyObject_GetBuffer(arg, &probe, PyBUF_STRIDES) == 0) {
        one_d = probe.ndim == 1;
        Py_ssize_t n = one_d ? probe.shape[0] : 0;
        PyBuffer_Release(&probe);
        if (one_d) {
            if (gnpy_input_f32_flat(arg, "scores", n, &sc) < 0) return NULL;
            cols = 1;
        }
    } else {
        PyErr_Clear();
    }
    if (!one_d) {
        if (gnpy_input_f32_strided(arg, "scores", &sc) < 0) return NULL;
        cols = sc.cols;
    }
    Py_ssize_t shape[1] = {sc.rows};
    GNPy_Buffer *out = gnpy_buffer_new('i', 1, shape);
    gn_status s = GN_OK;
    if (out != NULL) {
        Py_BEGIN_ALLOW_THREADS
        s = gn_kernel_classes(sc.data, sc.rows, cols, out->data, out->nitems);
        Py_END_ALLOW_THREADS
    }
    gnpy_input_release(&sc);
    if (out == NULL) return NULL;
    if (s != GN_OK) { Py_DECREF(out); return gnpy_raise(s); }
    return (PyObject *)out;
}

PyMethodDef gnpy_kernel_functions[] = {
    {"kernel_eigenvalues", (PyCFunction)kf_eigenvalues, METH_O,
     "kernel_eigenvalues(k) -> Buffer\n\nEigenvalues (float64, largest first) of a symmetric n x n "
     "kernel; only the upper triangle is read."},
    {"kernel_nu", (PyCFunction)kf_nu, METH_VARARGS,
     "kernel_nu(k, y) -> (nu, ridge_used)\n\nnu = y^T (k/trace k)^-1 y by Cholesky (paper 001 sec. 6). y: n "
     "values of any float, integer or bool dtype (e.g. +-1 labels)."},
    {"kernel_ridge_fit", (PyCFunction)(void (*)(void))kf_ridge_fit, METH_VARARGS | METH_KEYWORDS,
     "kernel_ridge_fit(k, targets, ridge=0.0) -> (alpha, ridge_used)\n\nalpha = (k + ridge I)^-1 targets."},
    {"kernel_ridge_predict", (PyCFunction)kf_ridge_predict, METH_VARARGS,
     "kernel_ridge_predict(k_test, alpha) -> Buffer\n\nk_test (m x n) @ alpha (n x t)."},
    {"kernel_targets", (PyCFunction)kf_targets, METH_VARARGS,
     "kernel_targets(labels, classes) -> Buffer\n\nTargets of shape (n, classes) float32: one-hot rows for "
     "classes > 1; for classes = 1 one column, -1 / +1 for labels 0 / 1. labels: any integer or "
     "bool dtype."},
    {"kernel_classes", (PyCFunction)kf_classes, METH_O,
     "kernel_classes(scores) -> Buffer\n\nArg-max per row (int32); 1-D or t = 1: 1 where score > 0."},
    {NULL, NULL, 0, NULL},
};
