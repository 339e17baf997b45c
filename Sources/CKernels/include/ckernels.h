// Element-wise hot loops of the engine, in C so that `restrict` lets the compiler vectorise
// them (Swift cannot prove that the buffers do not alias). Each function is compiled for
// AVX-512, AVX2 and baseline x86-64 and picked at load time (GCC/Clang target_clones).
#ifndef GN_CKERNELS_H
#define GN_CKERNELS_H
#include <stddef.h>
#include <stdint.h>

// Adam step on n parameters: m,v moments; step_size = lr*sqrt(1-b2^t)/(1-b1^t);
// eps_hat = eps*sqrt(1-b2^t); wd = L2 coefficient added to the gradient.
void gnk_adam(float *p, float *m, float *v, const float *g, size_t n, float step_size,
              float b1, float b2, float eps_hat, float wd);
// SGD with momentum mu (mu = 0: plain SGD, v unused and may be NULL).
void gnk_sgd(float *p, float *v, const float *g, size_t n, float lr, float mu, float wd);

// q -> z = max(q, 0)
void gnk_relu(const float *q, float *z, size_t n);
// q -> g = 1{q > 0}
void gnk_hard_gate(const float *q, float *g, size_t n);
// q -> g = 1 / (1 + exp(-beta q)), relative error < 1e-6
void gnk_soft_gate(const float *q, float *g, size_t n, float beta);
// out = a * b
void gnk_mul(const float *a, const float *b, float *out, size_t n);
// out = a * 1{q > 0}
void gnk_mask_positive(const float *a, const float *q, float *out, size_t n);
// dq = dg * beta * g * (1 - g)  (+ dz where the feature activation passes it:
//  relu_mask: dz * 1{q > 0}, identity: dz; dz may be NULL for none)
void gnk_soft_gate_backward(const float *dg, const float *g, const float *dz, const float *q,
                            int relu_mask, float beta, float *dq, size_t n);
// rows x cols matrix: each row += bias
void gnk_add_bias(float *q, const float *bias, size_t rows, size_t cols);
// out[c] = sum over rows of a[r, c]
void gnk_column_sums(const float *a, size_t rows, size_t cols, float *out);
// a += b
void gnk_add_into(float *a, const float *b, size_t n);
// 1 if all n values are finite
int gnk_all_finite(const float *a, size_t n);

// Save the calling thread's floating-point control word and flush denormals to zero (FTZ and
// DAZ); gnk_fp_restore puts the saved word back. Denormals are 100x slower on x86.
unsigned gnk_fp_flush_denormals(void);
void gnk_fp_restore(unsigned saved);
#endif
