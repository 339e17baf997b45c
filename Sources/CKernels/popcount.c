#include "gnk_popcount.h"

#if defined(__x86_64__)
#define GN_POPCOUNT_CLONES __attribute__((target_clones("avx512vpopcntdq", "popcnt", "default")))
#else
#define GN_POPCOUNT_CLONES
#endif

// Columns innermost: for one row word, the loop over j is a vector AND + popcount + add, which
// the compiler vectorises (vpopcntq on AVX-512 VPOPCNTDQ).
GN_POPCOUNT_CLONES void gnk_overlap_tile(const uint64_t *restrict a, size_t stride, const uint64_t *restrict bt,
                                         size_t ti, size_t tj, const size_t *restrict begin,
                                         const size_t *restrict end, size_t layers,
                                         const float *restrict scales, float *restrict acc,
                                         uint32_t *restrict counts) {
    for (size_t i = 0; i < ti; i++) {
        const uint64_t *ra = a + i * stride;
        float *restrict row = acc + i * tj;
        for (size_t l = 0; l < layers; l++) {
            for (size_t j = 0; j < tj; j++) counts[j] = 0;
            for (size_t w = begin[l]; w < end[l]; w++) {
                const uint64_t aw = ra[w];
                const uint64_t *restrict bw = bt + w * tj;
                for (size_t j = 0; j < tj; j++) counts[j] += (uint32_t)__builtin_popcountll(aw & bw[j]);
            }
            if (scales) {
                const float s = scales[l];
                for (size_t j = 0; j < tj; j++) row[j] *= (float)counts[j] * s;
            } else {
                for (size_t j = 0; j < tj; j++) row[j] *= (float)counts[j];
            }
        }
    }
}
