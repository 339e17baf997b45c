#include "ckernels.h"
#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#define GN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GN_CLONES
#endif

GN_CLONES void gnk_adam(float *restrict p, float *restrict m, float *restrict v, const float *restrict g,
                        size_t n, float step_size, float b1, float b2, float eps_hat, float wd) {
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * p[i];
        float mi = b1 * m[i] + c1 * gi;
        float vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step_size * mi / (sqrtf(vi) + eps_hat);
    }
}

GN_CLONES void gnk_sgd(float *restrict p, float *restrict v, const float *restrict g, size_t n, float lr,
                       float mu, float wd) {
    if (mu == 0.0f || !v) {
        for (size_t i = 0; i < n; i++) p[i] -= lr * (g[i] + wd * p[i]);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float vi = mu * v[i] + g[i] + wd * p[i];
        v[i] = vi;
        p[i] -= lr * vi;
    }
}

GN_CLONES void gnk_relu(const float *restrict q, float *restrict z, size_t n) {
    for (size_t i = 0; i < n; i++) z[i] = q[i] > 0.0f ? q[i] : 0.0f;
}

GN_CLONES void gnk_hard_gate(const float *restrict q, float *restrict g, size_t n) {
    for (size_t i = 0; i < n; i++) g[i] = q[i] > 0.0f ? 1.0f : 0.0f;
}

/* exp(x) for x in [-87, 88]: 2^k * e^r with |r| <= ln2/2, degree-6 polynomial (rel. err ~2e-7).
 * Defined for every input, without undefined behaviour: x below -87 (and -Inf) gives exp(-87),
 * x above 88 (and +Inf) gives exp(88), NaN gives NaN. The clamped k is in [-126, 127], so the
 * exponent field k + 127 is in [1, 254]. */
static inline float gn_expf(float x) {
    float c = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    c = c == c ? c : 0.0f; /* NaN: compute on 0 (no conversion of NaN), return NaN below */
    float kf = __builtin_roundf(c * 1.44269504088896341f);
    float r = c - kf * 0.693145751953125f;
    r = r - kf * 1.428606765330187e-06f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666418f + r * (0.00833336729f + r * 0.00138888892f)))));
    uint32_t bits = (uint32_t)((int32_t)kf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x == x ? p * scale : x;
}

GN_CLONES void gnk_soft_gate(const float *restrict q, float *restrict g, size_t n, float beta) {
    for (size_t i = 0; i < n; i++) g[i] = 1.0f / (1.0f + gn_expf(-beta * q[i]));
}

GN_CLONES void gnk_mul(const float *restrict a, const float *restrict b, float *restrict out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

GN_CLONES void gnk_mask_positive(const float *restrict a, const float *restrict q, float *restrict out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = q[i] > 0.0f ? a[i] : 0.0f;
}

GN_CLONES void gnk_soft_gate_backward(const float *restrict dg, const float *restrict g, const float *restrict dz,
                                      const float *restrict q, int relu_mask, float beta, float *restrict dq,
                                      size_t n) {
    for (size_t i = 0; i < n; i++) dq[i] = dg[i] * beta * g[i] * (1.0f - g[i]);
    if (!dz) return;
    if (relu_mask) {
        for (size_t i = 0; i < n; i++) dq[i] += q[i] > 0.0f ? dz[i] : 0.0f;
    } else {
        for (size_t i = 0; i < n; i++) dq[i] += dz[i];
    }
}

GN_CLONES void gnk_add_bias(float *restrict q, const float *restrict bias, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) {
        float *restrict row = q + r * cols;
        for (size_t c = 0; c < cols; c++) row[c] += bias[c];
    }
}

GN_CLONES void gnk_column_sums(const float *restrict a, size_t rows, size_t cols, float *restrict out) {
    for (size_t c = 0; c < cols; c++) out[c] = 0.0f;
    for (size_t r = 0; r < rows; r++) {
        const float *restrict row = a + r * cols;
        for (size_t c = 0; c < cols; c++) out[c] += row[c];
    }
}

GN_CLONES void gnk_add_into(float *restrict a, const float *restrict b, size_t n) {
    for (size_t i = 0; i < n; i++) a[i] += b[i];
}

GN_CLONES int gnk_all_finite(const float *restrict a, size_t n) {
    /* NaN and Inf are the values whose exponent bits are all ones: an integer OR-reduction. */
    const uint32_t *bits = (const uint32_t *)(const void *)a;
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) bad |= (uint32_t)((bits[i] & 0x7f800000u) == 0x7f800000u);
    return bad == 0;
}

unsigned gnk_fp_flush_denormals(void) {
#if defined(__x86_64__)
    unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040); /* FTZ | DAZ */
    return saved;
#else
    return 0;
#endif
}

void gnk_fp_restore(unsigned saved) {
#if defined(__x86_64__)
    _mm_setcsr(saved);
#else
    (void)saved;
#endif
}
