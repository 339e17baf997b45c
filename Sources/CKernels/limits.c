#include "gnk_limits.h"
#include <math.h>

#if defined(__x86_64__)
#define GN_LIMIT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GN_LIMIT_CLONES
#endif

// Entries computed together: every block runs the same fixed-length loops (short blocks are
// padded), so an entry's bits never depend on its position in a row.
#define GN_LIMIT_BLOCK 64

static const double PI = 3.14159265358979323846, TWO_PI = 6.28318530717958647692;
static const double HALF_PI = 1.57079632679489661923, INV_PI = 0.31830988618379067154;

// asin(x) for |x| <= 1/2 as x + x z P(z), z = x²: P (degree 11) interpolates
// (asin √z − √z) / z^{3/2} at the 12 Chebyshev nodes of [0, 1/4] (computed at 50 digits, then
// rounded to double). Relative error of the polynomial with these coefficients: < 6e-17;
// evaluated in double about 1 ulp (Tests/GatedNetTests/KernelPrecisionTests.swift measures it).
static inline double asin_half(double x) {
    const double z = x * x;
    double p = 0.028169218060881414;
    p = p * z - 0.010749050339697808;
    p = p * z + 0.01603551434914882;
    p = p * z + 0.0078029494773533175;
    p = p * z + 0.011875494382636922;
    p = p * z + 0.013929652902326633;
    p = p * z + 0.017355259955786323;
    p = p * z + 0.02237204763174451;
    p = p * z + 0.03038194736709848;
    p = p * z + 0.044642857103423646;
    p = p * z + 0.07500000000020764;
    p = p * z + 0.1666666666666665;
    return x + x * z * p;
}

// asin(x), |x| <= 1: beyond 1/2 through asin x = π/2 − 2 asin √((1 − x)/2).
static inline double asin_full(double x) {
    const double ax = fabs(x);
    const int big = ax > 0.5;
    const double r = asin_half(big ? sqrt((1 - ax) * 0.5) : ax);
    return copysign(big ? HALF_PI - 2 * r : r, x);
}

double gnk_limit_asin(double x) { return asin_full(x); }

// Eight partial sums (vectorised), added in a fixed order: the same bits for the same row.
GN_LIMIT_CLONES void gnk_limit_norms(const float *x, size_t rows, size_t d, double *out) {
    for (size_t r = 0; r < rows; r++) {
        const float *row = x + r * d;
        double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        size_t e = 0;
        for (; e + 8 <= d; e += 8)
            for (size_t k = 0; k < 8; k++) part[k] += (double)row[e + k] * (double)row[e + k];
        double sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
        for (; e < d; e++) sum += (double)row[e] * (double)row[e];
        out[r] = sum;
    }
}

GN_LIMIT_CLONES void gnk_float_to_double(const float *x, size_t n, double *out) {
    for (size_t e = 0; e < n; e++) out[e] = (double)x[e];
}

// acos(c), |c| <= 1, with every polynomial argument within [−1/2, 1/2].
static inline double acos_full(double c) {
    const double ac = fabs(c);
    const int big = ac > 0.5;
    const double r = asin_half(big ? sqrt((1 - ac) * 0.5) : c);
    return big ? (c > 0 ? 2 * r : PI - 2 * r) : HALF_PI - r;
}

// One step of the ReLU arc-cosine recursion on the state (θ, u = 1 − cos θ, s = sin θ):
// cos θ' = (sin θ + (π − θ) cos θ) / π, computed as u' = u − (sin θ − θ cos θ) / π with a series
// for sin θ − θ cos θ below θ = 0.01 (truncation < 1e-16 relative), so that small angles keep
// their relative precision and θ = 0 stays exactly 0. θ' ∈ [0, π/2], so u' ∈ [0, 1].
static inline void arc_cosine_step(double *theta, double *u, double *s) {
    const double t = *theta, t2 = t * t;
    const double series = t * t2 * (1.0 / 3 + t2 * (-1.0 / 30 + t2 * (1.0 / 840)));
    const double v = t < 0.01 ? series : *s - t * (1 - *u);
    double next = *u - v * INV_PI;
    next = next < 0 ? 0 : (next > 1 ? 1 : next);
    const int small = next <= 0.5;  // θ' = 2 asin √(u'/2), or π/2 − asin(cos θ')
    const double r = asin_half(small ? sqrt(next * 0.5) : 1 - next);
    *theta = small ? 2 * r : HALF_PI - r;
    *u = next;
    *s = sqrt(next * (2 - next));
}

// The state of a pair with |cos θ| > 0.99 from the distance of its unit vectors:
// |x̂ − ŷ| = 2 sin(θ/2) (c > 0) or |x̂ + ŷ| = 2 cos(θ/2) (c < 0), O(d) for these pairs only.
// Identical inputs give exactly θ = 0.
static void near_parallel_state(const float *x, const float *y, size_t d, double a, double b, double c,
                                double *theta, double *u, double *s) {
    const double ra = 1 / sqrt(a), rb = (c > 0 ? 1 : -1) / sqrt(b);
    double sum = 0;
    for (size_t e = 0; e < d; e++) {
        const double v = (double)x[e] * ra - (double)y[e] * rb;
        sum += v * v;
    }
    double h = sqrt(sum) / 2;
    if (h > 1) h = 1;
    const double half = 2 * asin_full(h), other = sqrt((1 - h) * (1 + h));
    *theta = c > 0 ? half : PI - half;
    *u = c > 0 ? 2 * h * h : 2 - 2 * h * h;
    *s = 2 * h * other;
}

GN_LIMIT_CLONES void gnk_limit_tile(const double *dot, size_t ldd, const double *na, const double *nb,
                                    const float *xa, const float *xb, size_t d, size_t ti, size_t tj,
                                    int diagonal, int ntk, int relu, int sigma_ones, int depth, double s2,
                                    double factor, float *acc) {
    enum { B = GN_LIMIT_BLOCK };
    const double rd = s2 / (double)d;  // NTK: s² / fan_in of the first layer
    const double shrink = s2 / 2;     // NTK: ratio of the pre-activation variances of two layers
    for (size_t i = 0; i < ti; i++) {
        const double a = na[i];
        for (size_t jb = diagonal ? i : 0; jb < tj; jb += B) {
            const size_t m = tj - jb < B ? tj - jb : B;
            double dt[B], b[B], c[B], theta[B], u[B], s[B], value[B], q[B];
            for (size_t k = 0; k < m; k++) {
                dt[k] = dot[i * ldd + jb + k];
                b[k] = nb[jb + k];
            }
            for (size_t k = m; k < B; k++) {
                dt[k] = 0;
                b[k] = 1;
            }
            // The input angle (π/2 when either input is 0).
            for (size_t k = 0; k < B; k++) {
                const int ok = a > 0 && b[k] > 0;
                double ck = dt[k] / sqrt(a * b[k]);
                ck = ok ? ck : 0;
                ck = ck > 1 ? 1 : (ck < -1 ? -1 : ck);
                c[k] = ck;
                theta[k] = acos_full(ck);
                u[k] = 1 - ck;
                s[k] = sqrt((1 - ck) * (1 + ck));
            }
            for (size_t k = 0; k < m; k++) {
                if (fabs(c[k]) > 0.99 && a > 0 && b[k] > 0) {
                    near_parallel_state(xa + i * d, xb + (jb + k) * d, d, a, b[k], c[k], &theta[k], &u[k], &s[k]);
                }
                // Identical inputs: the inner product is the norm itself, so the entry is exact.
                if (theta[k] == 0 && a == b[k]) dt[k] = a;
            }
            if (ntk) {
                // Θ_1 = Λ_1; Θ_{m+1} = Θ_m Σ̇_m + Λ_{m+1} with Σ̇_m = s² (π − θ_{m−1}) / (2π) and
                // Λ_{m+1} = √(q_a q_b) cos θ_m, q_a = (s²/2)^m s² |x_a|² / d.
                for (size_t k = 0; k < B; k++) {
                    value[k] = rd * dt[k];
                    q[k] = sqrt((rd * a) * (rd * b[k]));
                }
                for (int l = 0; l < depth; l++) {
                    for (size_t k = 0; k < B; k++) {
                        const double dsigma = s2 * (PI - theta[k]) / TWO_PI;
                        arc_cosine_step(&theta[k], &u[k], &s[k]);
                        q[k] *= shrink;
                        value[k] = value[k] * dsigma + q[k] * (1 - u[k]);
                    }
                }
                for (size_t k = 0; k < m; k++) acc[i * tj + jb + k] = (float)(value[k] * factor);
            } else {
                // σ · Π_{l=1}^{depth} (π − θ_{l−1}) / (2π); a zero input turns every gate off.
                for (size_t k = 0; k < B; k++) value[k] = a > 0 && b[k] > 0 ? (sigma_ones ? (double)d : dt[k]) : 0;
                for (int l = 0; l < depth; l++) {
                    const int step = relu && l + 1 < depth;
                    for (size_t k = 0; k < B; k++) {
                        value[k] *= (PI - theta[k]) / TWO_PI;
                        if (step) arc_cosine_step(&theta[k], &u[k], &s[k]);
                    }
                }
                for (size_t k = 0; k < m; k++) acc[i * tj + jb + k] = (float)value[k];
            }
        }
    }
    if (diagonal) {
        for (size_t i = 1; i < ti; i++)
            for (size_t j = 0; j < i; j++) acc[i * tj + j] = acc[j * tj + i];
    }
}
