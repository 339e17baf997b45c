// Winograd F(2x2, 3x3) transforms of 3x3, stride-1, "same"-padded convolutions
// (Sources/GatedNet/Conv/ConvWinograd.swift). Images are NHWC float32; a sample of h x w is cut
// into th x tw = ceil(h/2) x ceil(w/2) output tiles of 2x2, tile (ty, tx) reading the 4x4 input
// window at rows 2ty-1 ... 2ty+2 and columns 2tx-1 ... 2tx+2. Winograd-domain buffers are laid
// out [sample][tile = ty*tw + tx][xi = 4a + b][channel], so frequency xi of all tiles is a
// (tiles x c) matrix of row stride 16c: the 16 products are strided sgemms.
// Transform matrices (Lavin & Gray 2016): B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
// G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1], A^T = [1 1 1 0; 0 1 -1 -1].
// Each function is compiled for AVX-512, AVX2 and baseline x86-64 (target_clones) and works on
// any sample range, so callers may split samples across threads.
#ifndef GN_CKERNELS_WINOGRAD_H
#define GN_CKERNELS_WINOGRAD_H
#include <stdint.h>

// v = B^T d B of every 4x4 input window of `samples` images x (h x w x c). Reads outside the
// image are 0 (circular = 0) or wrap around (circular = 1).
// v: samples * th * tw * 16 * c floats, written.
void gnk_wino_input(const float *x, int64_t samples, int64_t h, int64_t w, int64_t c, int circular,
                    float *v);

// y (=, or += when accumulate) A^T m A for every tile of `samples` images y (h x w x c); the
// parts of edge tiles outside an odd-sized image are dropped. m: as v of gnk_wino_input.
void gnk_wino_output(const float *m, int64_t samples, int64_t h, int64_t w, int64_t c, int accumulate,
                     float *y);

// u = G g G^T for every filter g of wt (cout x 3 x 3 x cin, the im2col weight layout).
// u: 16 x cout x cin floats ([xi][o][i]), written.
void gnk_wino_filter(const float *wt, int64_t cout, int64_t cin, float *u);

// dw = G^T (du + du2) G, the adjoint of gnk_wino_filter on the sum of two partial gradients
// (du2 may be NULL for none). du, du2: 16 x cout x cin; dw: cout x 3 x 3 x cin, written.
void gnk_wino_filter_grad(const float *du, const float *du2, int64_t cout, int64_t cin, float *dw);

// dm = A dy A^T for every 2x2 output tile of `samples` gradients dy (h x w x c), the adjoint of
// gnk_wino_output (positions outside an odd-sized image count as 0). dm: as v of gnk_wino_input.
void gnk_wino_output_grad(const float *dy, int64_t samples, int64_t h, int64_t w, int64_t c, float *dm);
#endif
