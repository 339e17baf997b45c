// The shift-sum step of the conv path kernel (Sources/GatedNet/Conv/ConvNetwork+PathKernel.swift,
// MATH.md §4): one conv layer's update of a pair's P x P position matrix.
#ifndef GN_CKERNELS_CONV_SHIFT_H
#define GN_CKERNELS_CONV_SHIFT_H
#include <stddef.h>
#include <stdint.h>

// next[p * pout + q] = gram[p * pout + q] * sum over o < kk (in order) of s[a * pin + b], with
// a = rows[p * kk + o], b = cols[o * pout + q] (the same read table, transposed), terms with
// a < 0 or b < 0 (zero padding) left out. s: pin x pin, next: pout x pout, in double.
void gnk_conv_shift_sum(const double *s, size_t pin, const int32_t *rows, const int32_t *cols, size_t pout,
                        size_t kk, const float *gram, double *next);
#endif
