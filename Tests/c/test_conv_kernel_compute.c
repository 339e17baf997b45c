/*
 * test_conv_kernel_compute.c — gn_conv_network_kernel_compute: the conv path kernel through
 * gn_kernel_options (blocks, upper triangle, progress, cancellation), against
 * gn_conv_network_kernel. Build and run through Tests/c/run.sh.
 */
#include "testing.h"

#include <stddef.h>
#include <stdint.h>

enum { N = 40, D = 5 * 5 * 2 };  /* 40 samples: 3 row tiles of 16, 6 tiles on and above the diagonal */

static void fill_uniform(float *x, size_t n, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    }
}

static gn_conv_network *net_5x5(void) {
    static gn_layer_spec layers[5];
    layers[0] = t_layer(GN_LAYER_CONV, 3, 3);
    layers[1] = t_layer(GN_LAYER_CONV, 4, 3);
    layers[2] = t_layer(GN_LAYER_GLOBAL_AVG_POOL, 0, 1);
    layers[3] = t_layer(GN_LAYER_DENSE, 5, 1);
    layers[4] = t_layer(GN_LAYER_DENSE, 2, 1);
    gn_conv_network_spec spec;
    gn_conv_network *net = NULL;
    if (gn_conv_network_spec_init(&spec, GN_REGIME_DECOUPLED, 2, 5, 5, 5, layers) != GN_OK) return NULL;
    spec.seed = 41;
    if (gn_conv_network_create(&spec, &net) != GN_OK) return NULL;
    return net;
}

typedef struct {
    int calls;
    int stop_at; /* cancel on this call (0: never) */
    double last;
    int increasing;
} progress_log;

static int record(double fraction, void *user) {
    progress_log *p = user;
    p->calls++;
    if (fraction <= p->last) p->increasing = 0;
    p->last = fraction;
    return p->stop_at != 0 && p->calls >= p->stop_at;
}

static float x[N * D], whole[N * N], k[N * N];

static void test_compute(void) {
    gn_conv_network *net = net_5x5();
    REQUIRE_OK(net ? GN_OK : GN_ERR_INTERNAL);
    fill_uniform(x, N * D, 42);
    REQUIRE_OK(gn_conv_network_kernel(net, GN_CONV_KERNEL_NPK, x, N, x, N, whole, N, N * N));

    /* Defaults (opts NULL, xb NULL): the same kernel, bit for bit. */
    REQUIRE_OK(gn_conv_network_kernel_compute(net, GN_CONV_KERNEL_NPK, x, N, NULL, 0, NULL, k, N, N * N));
    CHECK(t_bits_equal(k, whole, N * N));

    /* A block: rows 3..29, columns 10..39, row stride N. */
    gn_kernel_options o;
    REQUIRE_OK(gn_kernel_options_init(&o));
    o.row_begin = 3; o.row_count = 27; o.col_begin = 10; o.col_count = 0;
    for (int i = 0; i < N * N; i++) k[i] = -1;
    REQUIRE_OK(gn_conv_network_kernel_compute(net, GN_CONV_KERNEL_NPK, x, N, x, N, &o, k, N, 26 * N + 30));
    int same = 1;
    for (int i = 0; i < 27; i++)
        for (int j = 0; j < 30; j++) same &= k[i * N + j] == whole[(i + 3) * N + j + 10];
    CHECK(same);

    /* The same block with out_transposed (30 x 27, row stride 31): whole transposed, bit for
     * bit; an old-size options struct (ending at progress_user) still computes the block. */
    static float t[30 * 31];
    for (int i = 0; i < 30 * 31; i++) t[i] = -1;
    o.out_transposed = t;
    o.ld_transposed = 31;
    o.capacity_transposed = 29 * 31 + 27;
    REQUIRE_OK(gn_conv_network_kernel_compute(net, GN_CONV_KERNEL_NPK, x, N, x, N, &o, k, N, 26 * N + 30));
    int transposed = 1;
    for (int j = 0; j < 30; j++)
        for (int i = 0; i < 31; i++)
            transposed &= i < 27 ? t_bits_equal(&t[j * 31 + i], &whole[(i + 3) * N + j + 10], 1) : t[j * 31 + i] == -1;
    CHECK(transposed);
    o.capacity_transposed = 29 * 31 + 26;
    CHECK_STATUS(gn_conv_network_kernel_compute(net, GN_CONV_KERNEL_NPK, x, N, x, N, &o, k, N, 26 * N + 30),
                 GN_ERR_BUFFER_TOO_SMALL, "capacity_transposed");
    o.out_transposed = k + 5;
    o.capacity_transposed = 29 * 31 + 27;
    CHECK_STATUS(gn_conv_network_kernel_compute(net, GN_CONV_KERNEL_NPK, x, N, x, N, &o, k, N, 26 * N + 30),
                 GN_ERR_INVALID_ARGUMENT, "overlaps out");
    o.struct_size = offsetof(gn_kernel_options, out_transposed); /* the appended fields are not read */
    for (int i = 0; i < N * N; i++) k[i] = -1;
    REQUIRE_OK(gn_conv_network_kernel_compute(net, GN_CONV_KERNEL_NPK, x, N, x, N, &o, k, N, 26 * N + 30));
    same = 1;
    for (int i = 0; i < 27; i++)
        for (int j = 0; j < 30; j++) same &= k[i * N + j] == whole[(i + 3) * N + j + 10];
    CHECK(same);

    /* Upper triangle only, with progress once per tile (3 row tiles: 3 + 2 + 1). */
    progress_log log = {0, 0, 0.0, 1};
    REQUIRE_OK(gn_kernel_options_init(&o));
    o.upper_only = 1;
    o.progress = record;
    o.progress_user = &log;
    for (int i = 0; i < N * N; i++) k[i] = -1;
    REQUIRE_OK(gn_conv_network_kernel_compute(net, GN_CONV_KERNEL_NPK, x, N, x, N, &o, k, N, N * N));
    int upper = 1;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) upper &= j >= i ? k[i * N + j] == whole[i * N + j] : k[i * N + j] == -1;
    CHECK(upper);
    CHECKF(log.calls == 6 && log.increasing && log.last == 1.0, "%d calls, last %f", log.calls, log.last);

    /* Cancelling on the second call stops both cores: GN_ERR_CANCELLED, no further call. */
    progress_log stop = {0, 2, 0.0, 1};
    o.progress_user = &stop;
    CHECK_STATUS(gn_conv_network_kernel_compute(net, GN_CONV_KERNEL_NPK, x, N, x, N, &o, k, N, N * N), GN_ERR_CANCELLED,
                 "cancelled");
    CHECK(stop.calls == 2);

    /* Bad arguments name themselves. */
    REQUIRE_OK(gn_kernel_options_init(&o));
    o.row_begin = N;
    CHECK_STATUS(gn_conv_network_kernel_compute(net, GN_CONV_KERNEL_NPK, x, N, x, N, &o, k, N, N * N),
                 GN_ERR_INVALID_ARGUMENT, "row_begin");
    CHECK_STATUS(gn_conv_network_kernel_compute(net, GN_CONV_KERNEL_NPK, x, N, x, N, NULL, k, N, N * N - 1),
                 GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_conv_network_kernel_compute(net, (gn_conv_kernel_kind)7, x, N, x, N, NULL, k, N, N * N),
                 GN_ERR_INVALID_ARGUMENT, "kind");
    CHECK_STATUS(gn_conv_network_kernel_compute(net, GN_CONV_KERNEL_NPK, x, N, x, N, NULL, NULL, N, N * N),
                 GN_ERR_NULL_POINTER, "out");
    CHECK_STATUS(gn_conv_network_kernel_compute(NULL, GN_CONV_KERNEL_NPK, x, N, x, N, NULL, k, N, N * N),
                 GN_ERR_NULL_POINTER, "net");
    gn_conv_network_free(net);
}

int main(void) {
    T_SECTION(test_compute);
    return T_FINISH("test_conv_kernel_compute");
}
