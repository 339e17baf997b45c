// Infinite-width kernels (Sources/GatedNet/Kernels/InfiniteWidthKernel.swift): the per-entry
// arc-cosine recursion of a tile, in double, vectorised over the tile's columns.
#ifndef GN_CKERNELS_LIMITS_H
#define GN_CKERNELS_LIMITS_H
#include <stddef.h>

// Kernel entries of a ti x tj tile into acc (row stride tj, float).
//   dot[i * ldd + j]: inner product of row i of xa and row j of xb (double);
//   na[i], nb[j]: their squared norms; xa, xb: the tile's rows (d floats each), read only for
//   near-parallel or near-antiparallel pairs (|cos θ| > 0.99), whose angle comes from the
//   distance of the unit vectors instead of acos.
//   diagonal: a diagonal tile of a symmetric kernel (xa == xb, ti == tj): only entries j >= i are
//   computed and the lower triangle of acc is their mirror image.
//   ntk 1: the NTK limit (NTK parametrisation, init scale² s2, times `factor` outputs);
//   ntk 0: the normalised NPK limit, σ · Π (π − θ_{l−1}) / (2π) with σ = d (sigma_ones) or the
//   inner product, θ following the ReLU recursion (relu) or staying θ_0.
// Each entry depends only on its own inputs (same bits wherever it is computed). An identical
// pair (θ_0 = 0 and equal norms) takes the norm as its inner product, so that it is exact.
void gnk_limit_tile(const double *dot, size_t ldd, const double *na, const double *nb, const float *xa,
                    const float *xb, size_t d, size_t ti, size_t tj, int diagonal, int ntk, int relu,
                    int sigma_ones, int depth, double s2, double factor, float *acc);

// out[r] = squared norm of row r of x (rows x d floats), summed in double.
void gnk_limit_norms(const float *x, size_t rows, size_t d, double *out);

// out[e] = (double)x[e] for e < n.
void gnk_float_to_double(const float *x, size_t n, double *out);

// asin(x) for |x| <= 1, the polynomial of gnk_limit_tile (tests measure its error against libm).
double gnk_limit_asin(double x);
#endif
