/*
 * test_kernels.c — the kernel suite of gatednet.h through the C ABI: gn_kernel_compute (blocks
 * equal the whole, packed and float gates agree exactly, progress and cancellation), kernel
 * algebra (eigenvalues, nu, ridge regression), active paths and DLGN hyperplanes, and every
 * function against bad input (NULL, sizes, leading dimensions, capacities, NaN, options, parts a
 * network does not have). Failed calls must not write to their outputs.
 */
#include "testing.h"

#include <stddef.h>
#include <stdint.h>

enum { D = 5, N = 40, NB = 7, K = 3 };
static float x[N * D], xb[NB * D];
static gn_network *hard;  /* FIXED_RANDOM_II, widths 70/130, hard gates */
static gn_network *soft;  /* DECOUPLED, soft gates, bias */
static gn_network *relu;  /* RELU, tied */
static gn_network *dlgn;  /* DLGN, linear gating, soft gates */
static const float sentinel = -777.25f;

static void setup(void) {
    t_fill_uniform(x, N * D, 12345);
    for (int i = 0; i < NB * D; i++) xb[i] = x[(i * 7) % (N * D)] * 0.5f + 0.1f;
    hard = t_fc_network(GN_REGIME_FIXED_RANDOM_II, D, 70, 130, K, 0, 1);
    soft = t_fc_network(GN_REGIME_DECOUPLED, D, 6, 4, K, 1, 2);
    relu = t_fc_network(GN_REGIME_RELU, D, 8, 6, K, 0, 3);
    dlgn = t_fc_network(GN_REGIME_DLGN, D, 6, 4, K, 0, 4);
}

static int untouched(const float *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != sentinel) return 0;
    return 1;
}
static void fill(float *a, size_t n) {
    for (size_t i = 0; i < n; i++) a[i] = sentinel;
}

static void options_defaults(void) {
    gn_kernel_options o;
    memset(&o, 0x55, sizeof o);
    REQUIRE_OK(gn_kernel_options_init(&o));
    CHECK(o.struct_size == sizeof o);
    CHECK(o.layer == 0 && o.output == -1 && o.row_begin == 0 && o.row_count == 0 && o.col_begin == 0 &&
          o.col_count == 0 && o.upper_only == 0 && o.gate_path == GN_GATE_PATH_AUTO && o.ntk_scaling == 0 &&
          o.progress == NULL && o.progress_user == NULL);
    CHECK(o.out_transposed == NULL && o.ld_transposed == 0 && o.capacity_transposed == 0);
    CHECK_STATUS(gn_kernel_options_init(NULL), GN_ERR_NULL_POINTER, "opts");
}

/* A symmetric kernel filled tile by tile (upper tiles only, into one n x n buffer with ld = n)
 * equals the whole kernel; so does every cross block. */
static void blocks_equal_whole(void) {
    static float whole[N * N], tiled[N * N], cross[N * NB], part[N * NB];
    gn_kernel_kind kinds[] = {GN_KERNEL_NPK, GN_KERNEL_OVERLAP, GN_KERNEL_NPK_TRACE_NORMALIZED, GN_KERNEL_NPK_LIMIT};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        REQUIRE_OK(gn_kernel_compute(hard, kinds[k], x, N, NULL, 0, NULL, whole, N, N * N));
        fill(tiled, N * N);
        const int64_t T = 16;
        for (int64_t r = 0; r < N; r += T) {
            for (int64_t c = r; c < N; c += T) {
                gn_kernel_options o;
                gn_kernel_options_init(&o);
                o.row_begin = r;
                o.row_count = r + T <= N ? T : N - r;
                o.col_begin = c;
                o.col_count = c + T <= N ? T : N - c;
                o.upper_only = 1;
                REQUIRE_OK(gn_kernel_compute(hard, kinds[k], x, N, x, N, &o, tiled + r * N + c, N, N * N - (r * N + c)));
            }
        }
        int ok = 1;
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                if (j >= i && memcmp(&tiled[i * N + j], &whole[i * N + j], sizeof(float)) != 0) ok = 0;
                if (j < i && tiled[i * N + j] != sentinel) ok = 0; /* upper_only left it alone */
                if (whole[i * N + j] != whole[j * N + i]) ok = 0;
            }
        CHECKF(ok, "kind %d: upper tiles differ from the whole kernel", (int)kinds[k]);
        REQUIRE_OK(gn_kernel_compute(hard, kinds[k], x, N, xb, NB, NULL, cross, NB, N * NB));
        gn_kernel_options o;
        gn_kernel_options_init(&o);
        o.row_begin = 11;
        o.col_begin = 2;
        o.col_count = 4;
        fill(part, N * NB);
        REQUIRE_OK(gn_kernel_compute(hard, kinds[k], x, N, xb, NB, &o, part, 4, (N - 11) * 4));
        ok = 1;
        for (int i = 0; i < N - 11; i++)
            for (int j = 0; j < 4; j++)
                if (memcmp(&part[i * 4 + j], &cross[(i + 11) * NB + j + 2], sizeof(float)) != 0) ok = 0;
        CHECKF(ok, "kind %d: cross block differs", (int)kinds[k]);
    }
}

static void packed_equals_float(void) {
    static float a[N * N], b[N * N];
    gn_kernel_options o;
    gn_kernel_options_init(&o);
    for (int kind = 1; kind <= 5; kind++) {
        o.layer = 1;
        o.gate_path = GN_GATE_PATH_PACKED;
        REQUIRE_OK(gn_kernel_compute(hard, (gn_kernel_kind)kind, x, N, NULL, 0, &o, a, N, N * N));
        o.gate_path = GN_GATE_PATH_FLOAT;
        REQUIRE_OK(gn_kernel_compute(hard, (gn_kernel_kind)kind, x, N, NULL, 0, &o, b, N, N * N));
        CHECKF(t_bits_equal(a, b, N * N), "kind %d: packed and float gates differ", kind);
    }
    /* The stable gn_kernel gives the same NPK. */
    REQUIRE_OK(gn_kernel(hard, GN_KERNEL_NPK, 0, x, N, x, N, b, N, N * N));
    o.gate_path = GN_GATE_PATH_AUTO;
    REQUIRE_OK(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, NULL, 0, &o, a, N, N * N));
    CHECK(t_bits_equal(a, b, N * N));
}

static int calls;
static double last_fraction;
static int stop_after;
static int progress(double fraction, void *user) {
    CHECK(user == &calls);
    CHECK(fraction > last_fraction && fraction <= 1.0);
    last_fraction = fraction;
    calls++;
    return stop_after > 0 && calls >= stop_after;
}

static void progress_and_cancel(void) {
    enum { M = 600 };
    float *big = malloc(sizeof(float) * M * D), *out = malloc(sizeof(float) * M * M);
    if (!big || !out) return;
    for (int i = 0; i < M * D; i++) big[i] = x[i % (N * D)] + 0.001f * (float)(i / (N * D));
    gn_kernel_options o;
    gn_kernel_options_init(&o);
    o.progress = progress;
    o.progress_user = &calls;
    calls = 0;
    last_fraction = 0;
    stop_after = 0;
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, big, M, NULL, 0, &o, out, M, (int64_t)M * M), GN_OK, NULL);
    CHECK(calls == 3 && last_fraction == 1.0); /* 2 row tiles of 512: 2 + 1 upper tiles */
    calls = 0;
    last_fraction = 0;
    stop_after = 1;
    CHECK_STATUS(gn_kernel_compute(soft, GN_KERNEL_NTK, big, M, NULL, 0, &o, out, M, (int64_t)M * M), GN_ERR_CANCELLED,
                 "cancel");
    CHECK(calls == 1);
    free(big);
    free(out);
}

/* out_transposed gets the block transposed bit for bit (cross, symmetric, a block with
 * offsets; path, NTK and limit kinds), padding left alone; an options struct of the size
 * before out_transposed was appended still works; bad ld_transposed, capacity_transposed,
 * overlap with out and upper_only fail before anything is written. */
static void transposed_output(void) {
    enum { LD = NB + 2, LDT = N + 3 };
    static float out[N * LD + N * NB], t[NB * LDT], sq[N * N], sqt[N * N], plain[N * N]; /* out: room for an overlapping t */
    struct { gn_network *net; gn_kernel_kind kind; } cases[] = {
        {hard, GN_KERNEL_NPK}, {hard, GN_KERNEL_NPK_NORMALIZED}, {soft, GN_KERNEL_NTK_VALUE}, {relu, GN_KERNEL_NTK},
        {hard, GN_KERNEL_NPK_LIMIT}, {relu, GN_KERNEL_NTK_LIMIT}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        gn_kernel_options o;
        gn_kernel_options_init(&o);
        o.row_begin = 3; /* a 37 x 5 block of the cross kernel */
        o.col_begin = 1;
        o.col_count = 5;
        o.out_transposed = t;
        o.ld_transposed = LDT;
        o.capacity_transposed = 4 * LDT + 37;
        fill(out, N * LD);
        fill(t, NB * LDT);
        REQUIRE_OK(gn_kernel_compute(cases[k].net, cases[k].kind, x, N, xb, NB, &o, out, LD, 36 * LD + 5));
        int ok = 1;
        for (int r = 0; r < N; r++)
            for (int c = 0; c < LD; c++) {
                int inside = r < 37 && c < 5;
                if (inside && (out[r * LD + c] == sentinel || memcmp(&out[r * LD + c], &t[c * LDT + r], sizeof(float)) != 0)) ok = 0;
                if (!inside && out[r * LD + c] != sentinel) ok = 0;
            }
        for (int c = 0; c < NB; c++)
            for (int r = 0; r < LDT; r++)
                if ((c >= 5 || r >= 37) && t[c * LDT + r] != sentinel) ok = 0;
        CHECKF(ok, "kind %d: cross block's transposed output is not out transposed", (int)cases[k].kind);
        /* symmetric whole kernel: out transposed, and out as without the option */
        gn_kernel_options_init(&o);
        o.out_transposed = sqt;
        o.ld_transposed = N;
        o.capacity_transposed = N * N;
        REQUIRE_OK(gn_kernel_compute(cases[k].net, cases[k].kind, x, N, NULL, 0, &o, sq, N, N * N));
        REQUIRE_OK(gn_kernel_compute(cases[k].net, cases[k].kind, x, N, NULL, 0, NULL, plain, N, N * N));
        ok = memcmp(sq, plain, sizeof sq) == 0;
        for (int r = 0; r < N; r++)
            for (int c = 0; c < N; c++)
                if (memcmp(&sq[r * N + c], &sqt[c * N + r], sizeof(float)) != 0) ok = 0;
        CHECKF(ok, "kind %d: symmetric kernel's transposed output is not out transposed", (int)cases[k].kind);
    }
    /* an options struct of the old size (ending at progress_user), in a buffer of exactly that
     * size: accepted, no transposed output */
    const size_t old_size = offsetof(gn_kernel_options, out_transposed);
    CHECK(old_size == offsetof(gn_kernel_options, progress_user) + sizeof(void *));
    gn_kernel_options o;
    gn_kernel_options_init(&o);
    o.struct_size = old_size;
    o.row_begin = 3;
    gn_kernel_options *old = malloc(old_size);
    if (old == NULL) { CHECK(old != NULL); return; }
    memcpy(old, &o, old_size);
    fill(sq, N * N);
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, xb, NB, old, sq, NB, 37 * NB), GN_OK, NULL);
    free(old);
    REQUIRE_OK(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, xb, NB, NULL, plain, NB, N * NB));
    CHECK(memcmp(sq, plain + 3 * NB, 37 * NB * sizeof(float)) == 0);
    /* bad arguments: nothing written */
    fill(out, N * LD + N * NB);
    fill(t, NB * LDT);
#define T_FAILS(stmt, expect, arg)                                                              \
    do {                                                                                        \
        gn_kernel_options_init(&o);                                                             \
        o.out_transposed = t;                                                                   \
        o.ld_transposed = N;                                                                    \
        o.capacity_transposed = NB * N;                                                         \
        stmt;                                                                                   \
        CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, xb, NB, &o, out, NB, N * NB), (expect), (arg)); \
    } while (0)
    T_FAILS(o.ld_transposed = N - 1, GN_ERR_INVALID_ARGUMENT, "ld_transposed");
    T_FAILS(o.ld_transposed = 0, GN_ERR_INVALID_ARGUMENT, "ld_transposed");
    T_FAILS(o.ld_transposed = INT64_MAX, GN_ERR_INVALID_ARGUMENT, "ld_transposed");
    T_FAILS(o.capacity_transposed = NB * N - 1, GN_ERR_BUFFER_TOO_SMALL, "capacity_transposed");
    T_FAILS(o.capacity_transposed = -1, GN_ERR_BUFFER_TOO_SMALL, "capacity_transposed");
    T_FAILS(o.ld_transposed = LDT; o.capacity_transposed = 6 * LDT + N, GN_OK, NULL);
    fill(out, N * LD + N * NB);
    fill(t, NB * LDT);
    T_FAILS(o.out_transposed = out + N * NB - 1, GN_ERR_INVALID_ARGUMENT, "overlaps out");
    T_FAILS(o.out_transposed = out, GN_ERR_INVALID_ARGUMENT, "overlaps out");
    T_FAILS(o.struct_size = old_size + 8, GN_ERR_INVALID_ARGUMENT, "struct_size");
    CHECK(untouched(out, N * LD + N * NB) && untouched(t, NB * LDT));
    gn_kernel_options_init(&o);
    o.upper_only = 1;
    o.out_transposed = sqt;
    o.ld_transposed = N;
    o.capacity_transposed = N * N;
    fill(sq, N * N);
    fill(sqt, N * N);
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, NULL, 0, &o, sq, N, N * N), GN_ERR_INVALID_ARGUMENT, "upper_only");
    CHECK(untouched(sq, N * N) && untouched(sqt, N * N));
#undef T_FAILS
}

static void compute_bad_inputs(void) {
    static float out[N * N];
    gn_kernel_options o;
    gn_kernel_options_init(&o);
    fill(out, N * N);
    CHECK_STATUS(gn_kernel_compute(NULL, GN_KERNEL_NPK, x, N, NULL, 0, NULL, out, N, N * N), GN_ERR_NULL_POINTER, "net");
    CHECK_STATUS(gn_kernel_compute((gn_network *)out, GN_KERNEL_NPK, x, N, NULL, 0, NULL, out, N, N * N),
                 GN_ERR_INVALID_HANDLE, "net");
    fill(out, N * N);
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, NULL, N, NULL, 0, NULL, out, N, N * N), GN_ERR_NULL_POINTER, "xa");
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, 0, NULL, 0, NULL, out, N, N * N), GN_ERR_INVALID_ARGUMENT, "n_a");
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, -3, NULL, 0, NULL, out, N, N * N), GN_ERR_INVALID_ARGUMENT, "n_a");
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, xb, 0, NULL, out, N, N * N), GN_ERR_INVALID_ARGUMENT, "n_b");
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, NULL, 5, NULL, out, N, N * N), GN_ERR_INVALID_ARGUMENT, "n_b");
    CHECK_STATUS(gn_kernel_compute(hard, (gn_kernel_kind)12, x, N, NULL, 0, NULL, out, N, N * N), GN_ERR_INVALID_ARGUMENT, "kind");
    CHECK_STATUS(gn_kernel_compute(hard, (gn_kernel_kind)-1, x, N, NULL, 0, NULL, out, N, N * N), GN_ERR_INVALID_ARGUMENT, "kind");
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, NULL, 0, NULL, NULL, N, N * N), GN_ERR_NULL_POINTER, "out");
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, NULL, 0, NULL, out, N - 1, N * N), GN_ERR_INVALID_ARGUMENT, "ld_out");
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, NULL, 0, NULL, out, N, N * N - 1), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, NULL, 0, NULL, out, N, -1), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK(untouched(out, N * N));
    float nan_x[N * D];
    memcpy(nan_x, x, sizeof x);
    nan_x[17] = NAN;
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, nan_x, N, NULL, 0, NULL, out, N, N * N), GN_ERR_NOT_FINITE, "xa");
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, nan_x, N - 1, NULL, out, N, N * N), GN_ERR_NOT_FINITE, "xb");
    /* options */
    o.struct_size = sizeof o - 8;
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, NULL, 0, &o, out, N, N * N), GN_ERR_INVALID_ARGUMENT, "struct_size");
    gn_kernel_options_init(&o);
    o.layer = 2;
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_BASE, x, N, NULL, 0, &o, out, N, N * N), GN_ERR_INVALID_ARGUMENT, "layer");
    gn_kernel_options_init(&o);
    o.output = K;
    CHECK_STATUS(gn_kernel_compute(soft, GN_KERNEL_NTK_VALUE, x, N, NULL, 0, &o, out, N, N * N), GN_ERR_INVALID_ARGUMENT, "output");
    o.output = -2;
    CHECK_STATUS(gn_kernel_compute(soft, GN_KERNEL_NTK_VALUE, x, N, NULL, 0, &o, out, N, N * N), GN_ERR_INVALID_ARGUMENT, "output");
    gn_kernel_options_init(&o);
    o.row_begin = N;
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, NULL, 0, &o, out, N, N * N), GN_ERR_INVALID_ARGUMENT, "row_begin");
    o.row_begin = 30;
    o.row_count = 11;
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, NULL, 0, &o, out, N, N * N), GN_ERR_INVALID_ARGUMENT, "row_count");
    o.row_count = -1;
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, NULL, 0, &o, out, N, N * N), GN_ERR_INVALID_ARGUMENT, "row_count");
    gn_kernel_options_init(&o);
    o.col_begin = -1;
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, xb, NB, &o, out, NB, N * NB), GN_ERR_INVALID_ARGUMENT, "col_begin");
    o.col_begin = 2;
    o.col_count = 6;
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, xb, NB, &o, out, NB, N * NB), GN_ERR_INVALID_ARGUMENT, "col_count");
    o.col_count = 3; /* a 40 x 3 block: ld 3 is enough, capacity must be 39 * 3 + 3 */
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, xb, NB, &o, out, 3, 39 * 3 + 2), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, xb, NB, &o, out, 3, 39 * 3 + 3), GN_OK, NULL);
    gn_kernel_options_init(&o);
    o.gate_path = (gn_gate_path)7;
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, NULL, 0, &o, out, N, N * N), GN_ERR_INVALID_ARGUMENT, "gate_path");
    /* parts the network does not have */
    fill(out, N * N);
    o.gate_path = GN_GATE_PATH_PACKED;
    CHECK_STATUS(gn_kernel_compute(soft, GN_KERNEL_NPK, x, N, NULL, 0, &o, out, N, N * N), GN_ERR_UNSUPPORTED, "packed");
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NTK_FEATURE, x, N, NULL, 0, NULL, out, N, N * N), GN_ERR_UNSUPPORTED, "feature");
    CHECK_STATUS(gn_kernel_compute(relu, GN_KERNEL_NTK_CROSS, x, N, NULL, 0, NULL, out, N, N * N), GN_ERR_UNSUPPORTED, "cross");
    CHECK_STATUS(gn_kernel_compute(soft, GN_KERNEL_NPK_LIMIT, x, N, NULL, 0, NULL, out, N, N * N), GN_ERR_UNSUPPORTED, "soft gates");
    CHECK_STATUS(gn_kernel_compute(soft, GN_KERNEL_NTK_LIMIT, x, N, NULL, 0, NULL, out, N, N * N), GN_ERR_UNSUPPORTED, "bias");
    CHECK_STATUS(gn_kernel_compute(dlgn, GN_KERNEL_NTK_LIMIT, x, N, NULL, 0, NULL, out, N, N * N), GN_ERR_UNSUPPORTED, "ReLU");
    REQUIRE_OK(gn_network_set_frozen(hard, GN_PART_VALUE, 1));
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NTK, x, N, NULL, 0, NULL, out, N, N * N), GN_ERR_UNSUPPORTED, "frozen");
    REQUIRE_OK(gn_network_set_frozen(hard, GN_PART_VALUE, 0));
    CHECK(untouched(out, N * N));
    /* all-zero input rows: the trace-normalised NPK has no trace to divide by */
    float zeros[3 * D] = {0};
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK_TRACE_NORMALIZED, zeros, 3, NULL, 0, NULL, out, 3, 9),
                 GN_ERR_INVALID_ARGUMENT, "trace");
    /* each soft-gate NTK part works, and NTK = K^v + K^f for an unfrozen DGN */
    static float kv[N * N], kf[N * N], kc[N * N], kt[N * N];
    REQUIRE_OK(gn_kernel_compute(soft, GN_KERNEL_NTK_VALUE, x, N, NULL, 0, NULL, kv, N, N * N));
    REQUIRE_OK(gn_kernel_compute(soft, GN_KERNEL_NTK_FEATURE, x, N, NULL, 0, NULL, kf, N, N * N));
    REQUIRE_OK(gn_kernel_compute(soft, GN_KERNEL_NTK_CROSS, x, N, NULL, 0, NULL, kc, N, N * N));
    REQUIRE_OK(gn_kernel_compute(soft, GN_KERNEL_NTK, x, N, NULL, 0, NULL, kt, N, N * N));
    for (int i = 0; i < N * N; i++) kv[i] += kf[i];
    CHECKF(t_max_rel_diff(kt, kv, N * N) < 1e-5, "NTK vs K^v + K^f: %g", t_max_rel_diff(kt, kv, N * N));
}

/* Strides whose span overflows int64 fail cleanly (a trap would end the section). */
static void overflowing_strides(void) {
    float out[16];
    fill(out, 16);
    int64_t lds[2] = {INT64_MAX, INT64_MAX - 1};
    for (int i = 0; i < 2; i++) {
        gn_status s = gn_kernel_compute(hard, GN_KERNEL_NPK, x, 2, xb, 3, NULL, out, lds[i], INT64_MAX);
        CHECKF(s != GN_OK && s != GN_ERR_INTERNAL && strstr(gn_last_error(), "ld_out") != NULL, "ld %lld: %s",
               (long long)lds[i], gn_last_error());
        s = gn_kernel_eigenvalues(out, 2, lds[i], (double *)out, 2);
        CHECKF(s != GN_OK && s != GN_ERR_INTERNAL, "eigenvalues ld %lld: %s", (long long)lds[i], gn_last_error());
        s = gn_kernel_ridge_predict(out, 2, 2, lds[i], out, 1, out, 2);
        CHECKF(s != GN_OK && s != GN_ERR_INTERNAL, "ridge_predict ld %lld: %s", (long long)lds[i], gn_last_error());
    }
    CHECK(untouched(out, 16));
    gn_status s = gn_kernel_compute(hard, GN_KERNEL_NPK, x, INT64_MAX / 2, NULL, 0, NULL, out, 16, 16);
    CHECKF(s != GN_OK && s != GN_ERR_INTERNAL && strstr(gn_last_error(), "n_a") != NULL, "%s", gn_last_error());
}

static void algebra(void) {
    /* diag(3, 1, 2) with ld 4 (the padding column is garbage and must be ignored) */
    float k[3 * 4] = {3, 0, 0, NAN, 0, 1, 0, NAN, 0, 0, 2, NAN};
    double ev[3] = {0, 0, 0};
    REQUIRE_OK(gn_kernel_eigenvalues(k, 3, 4, ev, 3));
    CHECKF(fabs(ev[0] - 3) < 1e-12 && fabs(ev[1] - 2) < 1e-12 && fabs(ev[2] - 1) < 1e-12, "%g %g %g", ev[0], ev[1], ev[2]);
    /* nu of c * I is n |y|^2 = n^2 for +-1 labels */
    float eye[9] = {5, 0, 0, 0, 5, 0, 0, 0, 5}, y[3] = {1, -1, 1};
    double nu = 0, ridge = -1;
    REQUIRE_OK(gn_kernel_nu(eye, 3, 3, y, &nu, &ridge));
    CHECKF(fabs(nu - 9) < 1e-9 && ridge == 0, "nu %g ridge %g", nu, ridge);
    /* a rank-1 kernel needs a ridge, which is reported */
    float ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    REQUIRE_OK(gn_kernel_nu(ones, 3, 3, y, &nu, &ridge));
    CHECKF(ridge > 0 && isfinite(nu), "ridge %g nu %g", ridge, nu);
    /* ridge regression on the NPK reproduces its training targets; labels -> targets -> classes */
    static float kn[N * N], t[N * K], alpha[N * K], scores[N * K];
    int32_t labels[N], classes[N];
    for (int i = 0; i < N; i++) labels[i] = (int32_t)(i % K);
    REQUIRE_OK(gn_kernel_compute(hard, GN_KERNEL_NPK_TRACE_NORMALIZED, x, N, NULL, 0, NULL, kn, N, N * N));
    REQUIRE_OK(gn_kernel_targets(labels, N, K, t, N * K));
    CHECK(t[0] == 1 && t[1] == 0 && t[K + 1] == 1);
    REQUIRE_OK(gn_kernel_ridge_fit(kn, N, N, t, K, 1e-7, alpha, N * K, &ridge));
    REQUIRE_OK(gn_kernel_ridge_predict(kn, N, N, N, alpha, K, scores, N * K));
    CHECKF(t_max_rel_diff(scores, t, N * K) < 1e-2, "fit residual %g", t_max_rel_diff(scores, t, N * K));
    REQUIRE_OK(gn_kernel_classes(scores, N, K, classes, N));
    CHECK(memcmp(classes, labels, sizeof labels) == 0);
    int32_t binary[2] = {0, 1};
    float pm[2];
    REQUIRE_OK(gn_kernel_targets(binary, 2, 1, pm, 2));
    CHECK(pm[0] == -1 && pm[1] == 1);

    /* bad inputs */
    double dv[4] = {-5, -5, -5, -5};
    CHECK_STATUS(gn_kernel_eigenvalues(NULL, 3, 3, dv, 3), GN_ERR_NULL_POINTER, "k");
    CHECK_STATUS(gn_kernel_eigenvalues(eye, 0, 3, dv, 3), GN_ERR_INVALID_ARGUMENT, "n");
    CHECK_STATUS(gn_kernel_eigenvalues(eye, 3, 2, dv, 3), GN_ERR_INVALID_ARGUMENT, "ld");
    CHECK_STATUS(gn_kernel_eigenvalues(eye, 3, 3, dv, 2), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_kernel_eigenvalues(eye, 3, 3, NULL, 3), GN_ERR_NULL_POINTER, "values");
    float bad[9] = {1, NAN, 0, 0, 1, 0, 0, 0, 1};
    CHECK_STATUS(gn_kernel_eigenvalues(bad, 3, 3, dv, 3), GN_ERR_NOT_FINITE, "k");
    CHECK(dv[0] == -5 && dv[3] == -5);
    CHECK_STATUS(gn_kernel_nu(eye, 3, 3, NULL, &nu, NULL), GN_ERR_NULL_POINTER, "y");
    CHECK_STATUS(gn_kernel_nu(eye, 3, 3, y, NULL, NULL), GN_ERR_NULL_POINTER, "nu");
    float neg[9] = {-1, 0, 0, 0, -1, 0, 0, 0, -1};
    CHECK_STATUS(gn_kernel_nu(neg, 3, 3, y, &nu, NULL), GN_ERR_INVALID_ARGUMENT, "trace");
    float ny[3] = {1, INFINITY, 1};
    CHECK_STATUS(gn_kernel_nu(eye, 3, 3, ny, &nu, NULL), GN_ERR_NOT_FINITE, "y");
    CHECK_STATUS(gn_kernel_ridge_fit(eye, 3, 3, y, 1, -1, alpha, 3, NULL), GN_ERR_INVALID_ARGUMENT, "ridge");
    CHECK_STATUS(gn_kernel_ridge_fit(eye, 3, 3, y, 1, NAN, alpha, 3, NULL), GN_ERR_INVALID_ARGUMENT, "ridge");
    CHECK_STATUS(gn_kernel_ridge_fit(eye, 3, 3, y, 0, 0, alpha, 3, NULL), GN_ERR_INVALID_ARGUMENT, "t");
    CHECK_STATUS(gn_kernel_ridge_fit(eye, 3, 3, y, 1, 0, alpha, 2, NULL), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_kernel_ridge_fit(neg, 3, 3, y, 1, 0, alpha, 3, NULL), GN_ERR_INVALID_ARGUMENT, "positive definite");
    CHECK_STATUS(gn_kernel_ridge_predict(eye, 3, 3, 2, alpha, 1, scores, 3), GN_ERR_INVALID_ARGUMENT, "ld");
    CHECK_STATUS(gn_kernel_ridge_predict(eye, 3, 3, 3, NULL, 1, scores, 3), GN_ERR_NULL_POINTER, "alpha");
    CHECK_STATUS(gn_kernel_ridge_predict(eye, 3, 3, 3, alpha, 1, scores, 2), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_kernel_ridge_predict(eye, 0, 3, 3, alpha, 1, scores, 3), GN_ERR_INVALID_ARGUMENT, "m");
    int32_t badl[2] = {0, 3};
    CHECK_STATUS(gn_kernel_targets(badl, 2, 3, t, 6), GN_ERR_LABEL_RANGE, "labels[1]");
    CHECK_STATUS(gn_kernel_targets(binary, 2, 0, t, 6), GN_ERR_INVALID_ARGUMENT, "classes");
    CHECK_STATUS(gn_kernel_targets(binary, 2, 3, t, 5), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_kernel_classes(scores, 3, 1, classes, 2), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_kernel_classes(NULL, 3, 1, classes, 3), GN_ERR_NULL_POINTER, "scores");
}

static void active_paths_and_hyperplanes(void) {
    static float overlap[N * N];
    double paths[N], mean[4];
    int64_t counts[4];
    int32_t groups[N];
    REQUIRE_OK(gn_active_paths(hard, x, N, paths, N));
    REQUIRE_OK(gn_kernel_compute(hard, GN_KERNEL_OVERLAP, x, N, NULL, 0, NULL, overlap, N, N * N));
    int ok = 1;
    for (int i = 0; i < N; i++)
        if ((double)overlap[i * N + i] != paths[i]) ok = 0;
    CHECK(ok);
    for (int i = 0; i < N; i++) groups[i] = (int32_t)(i % 3);
    REQUIRE_OK(gn_active_paths_by_group(hard, x, N, groups, 4, mean, 4, counts, 4));
    double s = 0;
    for (int i = 0; i < N; i += 3) s += paths[i];
    CHECK(counts[0] == 14 && counts[1] == 13 && counts[2] == 13 && counts[3] == 0);
    CHECK(fabs(mean[0] - s / 14) <= 1e-12 * s && isnan(mean[3]));
    /* hyperplanes: gate = sigmoid(beta (<u, x> + c)) */
    float u[4 * D], c[4], g[N * 4];
    gn_network_info info;
    info.struct_size = sizeof info;
    REQUIRE_OK(gn_network_get_info(dlgn, &info));
    REQUIRE_OK(gn_gate_hyperplanes(dlgn, 1, u, 4 * D, c, 4));
    REQUIRE_OK(gn_gates(dlgn, x, N, 1, g, N * 4));
    double worst = 0;
    for (int r = 0; r < N; r++)
        for (int i = 0; i < 4; i++) {
            double q = c[i];
            for (int j = 0; j < D; j++) q += (double)u[i * D + j] * x[r * D + j];
            double e = fabs(1 / (1 + exp(-(double)info.beta * q)) - g[r * 4 + i]);
            if (e > worst) worst = e;
        }
    CHECKF(worst < 1e-5, "worst gate error %g", worst);
    /* bad inputs */
    CHECK_STATUS(gn_active_paths(NULL, x, N, paths, N), GN_ERR_NULL_POINTER, "net");
    CHECK_STATUS(gn_active_paths(hard, x, 0, paths, N), GN_ERR_INVALID_ARGUMENT, "n");
    CHECK_STATUS(gn_active_paths(hard, x, N, paths, N - 1), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_active_paths(hard, x, N, NULL, N), GN_ERR_NULL_POINTER, "out");
    groups[5] = 4;
    CHECK_STATUS(gn_active_paths_by_group(hard, x, N, groups, 4, mean, 4, counts, 4), GN_ERR_LABEL_RANGE, "groups[5]");
    groups[5] = -1;
    CHECK_STATUS(gn_active_paths_by_group(hard, x, N, groups, 4, mean, 4, counts, 4), GN_ERR_LABEL_RANGE, "groups[5]");
    groups[5] = 2;
    CHECK_STATUS(gn_active_paths_by_group(hard, x, N, groups, 0, mean, 4, counts, 4), GN_ERR_INVALID_ARGUMENT, "n_groups");
    CHECK_STATUS(gn_active_paths_by_group(hard, x, N, groups, 4, mean, 3, counts, 4), GN_ERR_BUFFER_TOO_SMALL, "mean_capacity");
    CHECK_STATUS(gn_active_paths_by_group(hard, x, N, groups, 4, mean, 4, counts, 3), GN_ERR_BUFFER_TOO_SMALL, "counts_capacity");
    CHECK_STATUS(gn_active_paths_by_group(hard, x, N, NULL, 4, mean, 4, NULL, 0), GN_ERR_NULL_POINTER, "groups");
    CHECK_STATUS(gn_gate_hyperplanes(hard, 0, u, 4 * D, c, 4), GN_ERR_UNSUPPORTED, "linear gating");
    CHECK_STATUS(gn_gate_hyperplanes(dlgn, 2, u, 4 * D, c, 4), GN_ERR_INVALID_ARGUMENT, "layer");
    CHECK_STATUS(gn_gate_hyperplanes(dlgn, 1, u, 4 * D - 1, c, 4), GN_ERR_BUFFER_TOO_SMALL, "normals_capacity");
    CHECK_STATUS(gn_gate_hyperplanes(dlgn, 1, u, 4 * D, c, 3), GN_ERR_BUFFER_TOO_SMALL, "offsets_capacity");
    CHECK_STATUS(gn_gate_hyperplanes(dlgn, 1, NULL, 4 * D, c, 4), GN_ERR_NULL_POINTER, "normals");
    CHECK_STATUS(gn_gate_hyperplanes(dlgn, 1, u, 4 * D, NULL, 0), GN_OK, NULL);
}

/* A process that computed a kernel (worker threads included) can fork, and the child can
 * compute kernels too (no thread pool state survives into the child). */
static void fork_after_kernel(void) {
    enum { M = 200 }; /* enough rows per tile for the popcount to use several threads */
    static float big[M * D], a[M * M], b[M * M];
    for (int i = 0; i < M * D; i++) big[i] = x[i % (N * D)] + 0.01f * (float)(i / (N * D));
    REQUIRE_OK(gn_kernel_compute(hard, GN_KERNEL_NPK, big, M, NULL, 0, NULL, a, M, M * M));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        gn_status s = gn_kernel_compute(hard, GN_KERNEL_NPK, big, M, NULL, 0, NULL, b, M, M * M);
        _exit(s == GN_OK && memcmp(a, b, sizeof a) == 0 ? 0 : 1);
    }
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}

int main(void) {
    setup();
    if (!hard || !soft || !relu || !dlgn) {
        fprintf(stderr, "FAIL setup: %s\n", gn_last_error());
        return 1;
    }
    T_SECTION(options_defaults);
    T_SECTION(blocks_equal_whole);
    T_SECTION(packed_equals_float);
    T_SECTION(progress_and_cancel);
    T_SECTION(transposed_output);
    T_SECTION(compute_bad_inputs);
    T_SECTION(overflowing_strides);
    T_SECTION(algebra);
    T_SECTION(active_paths_and_hyperplanes);
    T_SECTION(fork_after_kernel);
    gn_network_free(hard);
    gn_network_free(soft);
    gn_network_free(relu);
    gn_network_free(dlgn);
    return T_FINISH("test_kernels");
}
