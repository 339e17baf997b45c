// Popcount kernel of the bit-packed neural path kernels (Sources/GatedNet/Kernels). Compiled
// for AVX-512 VPOPCNTDQ, for the POPCNT instruction and for baseline x86-64, picked at load
// time (target_clones), so the library still runs on any x86-64.
#ifndef GN_CKERNELS_POPCOUNT_H
#define GN_CKERNELS_POPCOUNT_H
#include <stddef.h>
#include <stdint.h>

// For every row i < ti of a (row stride `stride` words) and column j < tj of bt (the B tile
// transposed: word w of column j at bt[w * tj + j]), and for each of `layers` word ranges
// [begin[l], end[l]):  acc[i * tj + j] *= (float)c     (scales == NULL)
//                      acc[i * tj + j] *= (float)c * scales[l]
// with c = number of bits set in both rows over the range, one layer after the other (the
// float operations of the BLAS path, in the same order). counts: tj uint32 of scratch.
void gnk_overlap_tile(const uint64_t *a, size_t stride, const uint64_t *bt, size_t ti, size_t tj,
                      const size_t *begin, const size_t *end, size_t layers, const float *scales,
                      float *acc, uint32_t *counts);
#endif
