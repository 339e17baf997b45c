// Winograd F(2x2, 3x3) transforms; see gnk_winograd.h for layouts and matrices. The inner loops
// run over channels (contiguous in NHWC), one 4x4 tile at a time, and vectorise through
// `restrict`. Channels go in blocks of GNW_BLOCK so padding reads can point at a zero block.
#include "gnk_winograd.h"
#if defined(__x86_64__)
#define GN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GN_CLONES
#endif

// Forced, so the helpers are compiled into each target clone of their callers.
#define GNW_INLINE static inline __attribute__((always_inline))
#define GNW_BLOCK 64
static const float gnw_zeros[GNW_BLOCK];

static inline int64_t gnw_min(int64_t a, int64_t b) { return a < b ? a : b; }

// Image index of window coordinate r (may be -1 or past the end): the wrapped index when
// circular, else r inside the image and -1 outside.
static inline int64_t gnw_index(int64_t r, int64_t n, int circular) {
    if (circular) {
        r %= n;
        return r < 0 ? r + n : r;
    }
    return r >= 0 && r < n ? r : -1;
}

// out[xi * stride + k] = (B^T d B)[xi] for k < cb, d[i] = p[i][k].
GNW_INLINE void gnw_input_tile(const float *const *p, int64_t cb, int64_t stride, float *restrict out) {
    const float *restrict p0 = p[0], *restrict p1 = p[1], *restrict p2 = p[2], *restrict p3 = p[3];
    const float *restrict p4 = p[4], *restrict p5 = p[5], *restrict p6 = p[6], *restrict p7 = p[7];
    const float *restrict p8 = p[8], *restrict p9 = p[9], *restrict p10 = p[10], *restrict p11 = p[11];
    const float *restrict p12 = p[12], *restrict p13 = p[13], *restrict p14 = p[14], *restrict p15 = p[15];
    for (int64_t k = 0; k < cb; k++) {
        // rows: t_row = B^T d (over the window's row index)
        float t00 = p0[k] - p8[k], t01 = p1[k] - p9[k], t02 = p2[k] - p10[k], t03 = p3[k] - p11[k];
        float t10 = p4[k] + p8[k], t11 = p5[k] + p9[k], t12 = p6[k] + p10[k], t13 = p7[k] + p11[k];
        float t20 = p8[k] - p4[k], t21 = p9[k] - p5[k], t22 = p10[k] - p6[k], t23 = p11[k] - p7[k];
        float t30 = p4[k] - p12[k], t31 = p5[k] - p13[k], t32 = p6[k] - p14[k], t33 = p7[k] - p15[k];
        // columns: (B^T d) B
        out[0 * stride + k] = t00 - t02;
        out[1 * stride + k] = t01 + t02;
        out[2 * stride + k] = t02 - t01;
        out[3 * stride + k] = t01 - t03;
        out[4 * stride + k] = t10 - t12;
        out[5 * stride + k] = t11 + t12;
        out[6 * stride + k] = t12 - t11;
        out[7 * stride + k] = t11 - t13;
        out[8 * stride + k] = t20 - t22;
        out[9 * stride + k] = t21 + t22;
        out[10 * stride + k] = t22 - t21;
        out[11 * stride + k] = t21 - t23;
        out[12 * stride + k] = t30 - t32;
        out[13 * stride + k] = t31 + t32;
        out[14 * stride + k] = t32 - t31;
        out[15 * stride + k] = t31 - t33;
    }
}

GN_CLONES void gnk_wino_input(const float *x, int64_t samples, int64_t h, int64_t w, int64_t c, int circular,
                              float *v) {
    const int64_t th = (h + 1) / 2, tw = (w + 1) / 2;
    for (int64_t n = 0; n < samples; n++) {
        const float *xs = x + n * h * w * c;
        for (int64_t ty = 0; ty < th; ty++) {
            int64_t rows[4];
            for (int i = 0; i < 4; i++) rows[i] = gnw_index(2 * ty - 1 + i, h, circular);
            for (int64_t tx = 0; tx < tw; tx++) {
                int64_t cols[4];
                for (int j = 0; j < 4; j++) cols[j] = gnw_index(2 * tx - 1 + j, w, circular);
                float *out = v + ((n * th + ty) * tw + tx) * 16 * c;
                for (int64_t c0 = 0; c0 < c; c0 += GNW_BLOCK) {
                    const float *p[16];
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++)
                            p[4 * i + j] = rows[i] >= 0 && cols[j] >= 0 ? xs + (rows[i] * w + cols[j]) * c + c0 : gnw_zeros;
                    gnw_input_tile(p, gnw_min(GNW_BLOCK, c - c0), c, out + c0);
                }
            }
        }
    }
}

// o_ab (=, or +=) (A^T m A)[a][b] for k < cb, m[xi] at src[xi * stride + k].
GNW_INLINE void gnw_output_tile(const float *restrict s, int64_t cb, int64_t stride, int accumulate,
                                float *restrict o00, float *restrict o01, float *restrict o10,
                                float *restrict o11) {
    for (int64_t k = 0; k < cb; k++) {
        // rows: r = A^T m
        float r00 = s[0 * stride + k] + s[4 * stride + k] + s[8 * stride + k];
        float r01 = s[1 * stride + k] + s[5 * stride + k] + s[9 * stride + k];
        float r02 = s[2 * stride + k] + s[6 * stride + k] + s[10 * stride + k];
        float r03 = s[3 * stride + k] + s[7 * stride + k] + s[11 * stride + k];
        float r10 = s[4 * stride + k] - s[8 * stride + k] - s[12 * stride + k];
        float r11 = s[5 * stride + k] - s[9 * stride + k] - s[13 * stride + k];
        float r12 = s[6 * stride + k] - s[10 * stride + k] - s[14 * stride + k];
        float r13 = s[7 * stride + k] - s[11 * stride + k] - s[15 * stride + k];
        // columns: r A
        float y00 = r00 + r01 + r02, y01 = r01 - r02 - r03;
        float y10 = r10 + r11 + r12, y11 = r11 - r12 - r13;
        if (accumulate) {
            o00[k] += y00; o01[k] += y01; o10[k] += y10; o11[k] += y11;
        } else {
            o00[k] = y00; o01[k] = y01; o10[k] = y10; o11[k] = y11;
        }
    }
}

GN_CLONES void gnk_wino_output(const float *m, int64_t samples, int64_t h, int64_t w, int64_t c, int accumulate,
                               float *y) {
    const int64_t th = (h + 1) / 2, tw = (w + 1) / 2;
    // Edge tiles of odd-sized images write their outside positions here (one row each, so the
    // four destinations never alias).
    float sink[4][GNW_BLOCK];
    for (int64_t n = 0; n < samples; n++) {
        float *ys = y + n * h * w * c;
        for (int64_t ty = 0; ty < th; ty++) {
            const int row1 = 2 * ty + 1 < h;
            for (int64_t tx = 0; tx < tw; tx++) {
                const int col1 = 2 * tx + 1 < w;
                const float *src = m + ((n * th + ty) * tw + tx) * 16 * c;
                float *base = ys + (2 * ty * w + 2 * tx) * c;
                if (row1 && col1) {
                    gnw_output_tile(src, c, c, accumulate, base, base + c, base + w * c, base + (w + 1) * c);
                    continue;
                }
                for (int64_t c0 = 0; c0 < c; c0 += GNW_BLOCK) {
                    float *b = base + c0;
                    gnw_output_tile(src + c0, gnw_min(GNW_BLOCK, c - c0), c, accumulate, b,
                                    col1 ? b + c : sink[1], row1 ? b + w * c : sink[2],
                                    row1 && col1 ? b + (w + 1) * c : sink[3]);
                }
            }
        }
    }
}

GN_CLONES void gnk_wino_filter(const float *wt, int64_t cout, int64_t cin, float *u) {
    const int64_t plane = cout * cin;
    for (int64_t o = 0; o < cout; o++) {
        const float *restrict g = wt + o * 9 * cin;
        float *restrict d = u + o * cin;
        for (int64_t k = 0; k < cin; k++) {
            float g00 = g[0 * cin + k], g01 = g[1 * cin + k], g02 = g[2 * cin + k];
            float g10 = g[3 * cin + k], g11 = g[4 * cin + k], g12 = g[5 * cin + k];
            float g20 = g[6 * cin + k], g21 = g[7 * cin + k], g22 = g[8 * cin + k];
            // rows: t = G g (4 x 3)
            float t[4][3] = {
                {g00, g01, g02},
                {0.5f * (g00 + g10 + g20), 0.5f * (g01 + g11 + g21), 0.5f * (g02 + g12 + g22)},
                {0.5f * (g00 - g10 + g20), 0.5f * (g01 - g11 + g21), 0.5f * (g02 - g12 + g22)},
                {g20, g21, g22},
            };
            // columns: t G^T (4 x 4)
            for (int a = 0; a < 4; a++) {
                d[(4 * a + 0) * plane + k] = t[a][0];
                d[(4 * a + 1) * plane + k] = 0.5f * (t[a][0] + t[a][1] + t[a][2]);
                d[(4 * a + 2) * plane + k] = 0.5f * (t[a][0] - t[a][1] + t[a][2]);
                d[(4 * a + 3) * plane + k] = t[a][2];
            }
        }
    }
}

// The 16 entries of one filter's du (+ du2) for one input channel.
#define GNW_DU(s, s2, xi) ((s)[(xi) * plane + k] + ((s2) ? (s2)[(xi) * plane + k] : 0.0f))

GN_CLONES void gnk_wino_filter_grad(const float *du, const float *du2, int64_t cout, int64_t cin, float *dw) {
    const int64_t plane = cout * cin;
    for (int64_t o = 0; o < cout; o++) {
        const float *restrict s = du + o * cin;
        const float *restrict s2 = du2 ? du2 + o * cin : 0;
        float *restrict d = dw + o * 9 * cin;
        for (int64_t k = 0; k < cin; k++) {
            // rows: t = G^T du (3 x 4), G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1]
            float t[3][4];
            for (int b = 0; b < 4; b++) {
                float u0 = GNW_DU(s, s2, 0 + b), u1 = GNW_DU(s, s2, 4 + b);
                float u2 = GNW_DU(s, s2, 8 + b), u3 = GNW_DU(s, s2, 12 + b);
                t[0][b] = u0 + 0.5f * (u1 + u2);
                t[1][b] = 0.5f * (u1 - u2);
                t[2][b] = 0.5f * (u1 + u2) + u3;
            }
            // columns: t G (3 x 3)
            for (int a = 0; a < 3; a++) {
                d[(3 * a + 0) * cin + k] = t[a][0] + 0.5f * (t[a][1] + t[a][2]);
                d[(3 * a + 1) * cin + k] = 0.5f * (t[a][1] - t[a][2]);
                d[(3 * a + 2) * cin + k] = 0.5f * (t[a][1] + t[a][2]) + t[a][3];
            }
        }
    }
}

// out[xi * stride + k] = (A y A^T)[xi] for k < cb, y_ab = q_ab[k]; A = [1 0; 1 1; 1 -1; 0 -1].
GNW_INLINE void gnw_output_grad_tile(const float *restrict q00, const float *restrict q01,
                                     const float *restrict q10, const float *restrict q11, int64_t cb,
                                     int64_t stride, float *restrict out) {
    for (int64_t k = 0; k < cb; k++) {
        float y00 = q00[k], y01 = q01[k], y10 = q10[k], y11 = q11[k];
        // rows: e = A y (4 x 2)
        float e00 = y00, e01 = y01;
        float e10 = y00 + y10, e11 = y01 + y11;
        float e20 = y00 - y10, e21 = y01 - y11;
        float e30 = -y10, e31 = -y11;
        // columns: e A^T (4 x 4)
        out[0 * stride + k] = e00;
        out[1 * stride + k] = e00 + e01;
        out[2 * stride + k] = e00 - e01;
        out[3 * stride + k] = -e01;
        out[4 * stride + k] = e10;
        out[5 * stride + k] = e10 + e11;
        out[6 * stride + k] = e10 - e11;
        out[7 * stride + k] = -e11;
        out[8 * stride + k] = e20;
        out[9 * stride + k] = e20 + e21;
        out[10 * stride + k] = e20 - e21;
        out[11 * stride + k] = -e21;
        out[12 * stride + k] = e30;
        out[13 * stride + k] = e30 + e31;
        out[14 * stride + k] = e30 - e31;
        out[15 * stride + k] = -e31;
    }
}

GN_CLONES void gnk_wino_output_grad(const float *dy, int64_t samples, int64_t h, int64_t w, int64_t c,
                                    float *dm) {
    const int64_t th = (h + 1) / 2, tw = (w + 1) / 2;
    for (int64_t n = 0; n < samples; n++) {
        const float *ys = dy + n * h * w * c;
        for (int64_t ty = 0; ty < th; ty++) {
            const int row1 = 2 * ty + 1 < h;
            for (int64_t tx = 0; tx < tw; tx++) {
                const int col1 = 2 * tx + 1 < w;
                float *out = dm + ((n * th + ty) * tw + tx) * 16 * c;
                const float *base = ys + (2 * ty * w + 2 * tx) * c;
                if (row1 && col1) {
                    gnw_output_grad_tile(base, base + c, base + w * c, base + (w + 1) * c, c, c, out);
                    continue;
                }
                for (int64_t c0 = 0; c0 < c; c0 += GNW_BLOCK) {
                    const float *b = base + c0;
                    gnw_output_grad_tile(b, col1 ? b + c : gnw_zeros, row1 ? b + w * c : gnw_zeros,
                                         row1 && col1 ? b + (w + 1) * c : gnw_zeros,
                                         gnw_min(GNW_BLOCK, c - c0), c, out + c0);
                }
            }
        }
    }
}
