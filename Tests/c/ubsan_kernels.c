/*
 * ubsan_kernels.c — the element-wise C kernels (Sources/CKernels/kernels.c) on every kind of
 * float: NaN, +-Inf, the largest finite values and ordinary ones, compiled from source with
 * -fsanitize=undefined,float-cast-overflow -fno-sanitize-recover=all by Tests/c/run.sh, so any
 * undefined behaviour (a NaN converted to int, a negative left-shifted) aborts the program.
 * Also checks the defined results: the soft gate sigmoid(beta q) is NaN for NaN q, saturates
 * to 1 / ~6e-39 for huge or infinite q, and is 1/2 at 0.
 */
#include <float.h>

#include "../../Sources/CKernels/kernels.c"

#include <stdio.h>

/* The negative saturation: sigmoid(-88) (exp is clamped at 88), about 6e-39. */
static int low(float g) { return g >= 0.0f && g < 1e-38f; }

int main(void) {
    enum { N = 10 };
    const float q[N] = {NAN, INFINITY, -INFINITY, 3e38f, -3e38f, FLT_MAX, -FLT_MAX, 0.0f, 200.0f, -200.0f};
    float g[N];
    int failed = 0, passed = 0;
    for (int beta = 0; beta < 3; beta++) {
        const float b = beta == 0 ? 1.0f : (beta == 1 ? 1e30f : 4.0f);
        gnk_soft_gate(q, g, N, b);
        const int ok[N] = {isnan(g[0]), g[1] == 1.0f, low(g[2]), g[3] == 1.0f, low(g[4]), g[5] == 1.0f,
                           low(g[6]), g[7] == 0.5f, g[8] == 1.0f, low(g[9])};
        for (int i = 0; i < N; i++) {
            if (ok[i]) {
                passed++;
            } else {
                failed++;
                fprintf(stderr, "FAIL soft gate beta %g of q %g: got %g\n", (double)b, (double)q[i], (double)g[i]);
            }
        }
    }
    printf("RESULT ubsan_kernels %d %d\n", passed, failed);
    return failed != 0;
}
