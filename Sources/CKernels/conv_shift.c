#include "gnk_conv_shift.h"

#if defined(__x86_64__)
#define GN_SHIFT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define GN_SHIFT_CLONES
#endif

// Offsets outermost within a row p: for one offset the row of s it reads is fixed, and the loop
// over q is a gather through cols, which the compiler vectorises. Each entry still adds its
// terms in offset order, and a left-out term adds +0.0, which changes no sum.
GN_SHIFT_CLONES void gnk_conv_shift_sum(const double *restrict s, size_t pin, const int32_t *restrict rows,
                                        const int32_t *restrict cols, size_t pout, size_t kk,
                                        const float *restrict gram, double *restrict next) {
    for (size_t p = 0; p < pout; p++) {
        double *restrict out = next + p * pout;
        for (size_t q = 0; q < pout; q++) out[q] = 0;
        for (size_t o = 0; o < kk; o++) {
            const int32_t a = rows[p * kk + o];
            if (a < 0) continue;
            const double *restrict sr = s + (size_t)a * pin;
            const int32_t *restrict co = cols + o * pout;
            for (size_t q = 0; q < pout; q++) {
                const int32_t b = co[q];
                out[q] += b >= 0 ? sr[b] : 0.0;
            }
        }
        const float *restrict g = gram + p * pout;
        for (size_t q = 0; q < pout; q++) out[q] *= (double)g[q];
    }
}
