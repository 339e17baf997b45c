/*
 * test_kernel_given_gates.c — gn_gates_packed_all(_words) and gn_kernel_options.gates_a /
 * gates_b through the C ABI: the all-layers layout (each layer's words are gn_gates_packed's),
 * gn_kernel_compute with given gates equal bit for bit to the gates computed (both sides, one
 * side, blocks, transposed output), every error status with nothing written, the options struct
 * of the previous size (ending at capacity_transposed) still accepted, and conv kernels refusing
 * given gates. Build and run through Tests/c/run.sh.
 */
#include "testing.h"

#include <stddef.h>
#include <stdint.h>

enum { D = 5, N = 40, NB = 7, K = 3, W = 2 + 3 }; /* widths 70 and 130: 2 + 3 words per row */
static float x[N * D], xb[NB * D];
static uint64_t ga[N * W], gb[NB * W];
static gn_network *hard; /* FIXED_RANDOM_II, widths 70/130 */
static gn_network *soft; /* DECOUPLED, soft gates */
static gn_network *relu; /* RELU (tied): hard 0/1 gates */
static const float sentinel = -777.25f;

static void setup(void) {
    t_fill_uniform(x, N * D, 777);
    for (int i = 0; i < NB * D; i++) xb[i] = x[(i * 7) % (N * D)] * 0.5f + 0.1f;
    hard = t_fc_network(GN_REGIME_FIXED_RANDOM_II, D, 70, 130, K, 0, 11);
    soft = t_fc_network(GN_REGIME_DECOUPLED, D, 70, 130, K, 0, 12);
    relu = t_fc_network(GN_REGIME_RELU, D, 70, 130, K, 0, 13);
}

static void fill(float *a, size_t n) {
    for (size_t i = 0; i < n; i++) a[i] = sentinel;
}
static int untouched(const float *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != sentinel) return 0;
    return 1;
}

static void packed_all_layout(void) {
    int64_t words = -1;
    REQUIRE_OK(gn_gates_packed_all_words(hard, &words));
    CHECK(words == W);
    REQUIRE_OK(gn_gates_packed_all_words(soft, &words)); /* the layout exists for any network */
    CHECK(words == W);
    static uint64_t all[N * W], layer0[N * 2], layer1[N * 3];
    memset(all, 0xA5, sizeof all);
    REQUIRE_OK(gn_gates_packed_all(hard, x, N, all, N * W));
    REQUIRE_OK(gn_gates_packed(hard, x, N, 0, layer0, N * 2));
    REQUIRE_OK(gn_gates_packed(hard, x, N, 1, layer1, N * 3));
    int same = 1, padding = 1;
    long ones = 0;
    for (int r = 0; r < N; r++) {
        same &= memcmp(&all[r * W], &layer0[r * 2], 2 * sizeof(uint64_t)) == 0;
        same &= memcmp(&all[r * W + 2], &layer1[r * 3], 3 * sizeof(uint64_t)) == 0;
        padding &= (all[r * W + 1] >> 6) == 0 && (all[r * W + 4] >> 2) == 0; /* 70 = 64 + 6, 130 = 128 + 2 */
        for (int w = 0; w < W; w++) ones += __builtin_popcountll(all[r * W + w]);
    }
    CHECK(same);
    CHECK(padding);
    CHECKF(ones > N * 20 && ones < N * 180, "%ld gates on: the gates should be live", ones);
    /* errors, nothing written */
    static uint64_t out[N * W];
    memset(out, 0x5A, sizeof out);
    CHECK_STATUS(gn_gates_packed_all_words(NULL, &words), GN_ERR_NULL_POINTER, "net");
    CHECK_STATUS(gn_gates_packed_all_words(hard, NULL), GN_ERR_NULL_POINTER, "words_per_row");
    CHECK_STATUS(gn_gates_packed_all(hard, x, N, out, N * W - 1), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_gates_packed_all(hard, x, N, out, -1), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_gates_packed_all(hard, NULL, N, out, N * W), GN_ERR_NULL_POINTER, "x");
    CHECK_STATUS(gn_gates_packed_all(hard, x, N, NULL, N * W), GN_ERR_NULL_POINTER, "out");
    CHECK_STATUS(gn_gates_packed_all(hard, x, -1, out, N * W), GN_ERR_INVALID_ARGUMENT, "n");
    CHECK_STATUS(gn_gates_packed_all(soft, x, N, out, N * W), GN_ERR_UNSUPPORTED, "soft");
    static float bad[N * D];
    memcpy(bad, x, sizeof bad);
    bad[17] = NAN;
    CHECK_STATUS(gn_gates_packed_all(hard, bad, N, out, N * W), GN_ERR_NOT_FINITE, "x");
    int clean = 1;
    for (int i = 0; i < N * W; i++) clean &= out[i] == 0x5A5A5A5A5A5A5A5Aull;
    CHECK(clean);
}

/* One gn_kernel_compute with the given options and gates (NULL: computed); capacities exact. */
static gn_status compute(gn_network *net, gn_kernel_kind kind, const float *b, int64_t nb, gn_kernel_options o,
                         const uint64_t *gates_a, const uint64_t *gates_b, float *out, int64_t ld, int64_t cap) {
    o.gates_a = gates_a;
    o.capacity_gates_a = gates_a ? N * W : 0;
    o.gates_b = gates_b;
    o.capacity_gates_b = gates_b ? (b ? nb : N) * W : 0;
    return gn_kernel_compute(net, kind, x, N, b, nb, &o, out, ld, cap);
}

static void equals_computed(void) {
    static uint64_t ra[N * W], rb[NB * W];
    REQUIRE_OK(gn_gates_packed_all(relu, x, N, ra, N * W));
    REQUIRE_OK(gn_gates_packed_all(relu, xb, NB, rb, NB * W));
    struct { gn_network *net; gn_kernel_kind kind; int64_t layer; const uint64_t *a, *b; } cases[] = {
        {hard, GN_KERNEL_NPK, 0, ga, gb}, {hard, GN_KERNEL_NPK_NORMALIZED, 0, ga, gb},
        {hard, GN_KERNEL_OVERLAP, 0, ga, gb}, {hard, GN_KERNEL_BASE, 0, ga, gb}, {hard, GN_KERNEL_BASE, 1, ga, gb},
        {relu, GN_KERNEL_NPK, 0, ra, rb},
    };
    /* blocks: whole symmetric, whole cross, a symmetric block with rows != cols, a cross block */
    struct { int cross; int64_t rb, rc, cb, cc; } blocks[] = {
        {0, 0, 0, 0, 0}, {1, 0, 0, 0, 0}, {0, 3, 30, 10, 25}, {1, 5, 33, 2, 4},
    };
    enum { LD = N + 1, LDT = N + 2 };
    static float want[N * LD], got[N * LD], want_t[N * LDT], got_t[N * LDT];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++)
            for (int path = 0; path <= 2; path += 2) /* AUTO and PACKED */
                for (int side = 0; side < 3; side++) { /* both, A only, B only */
                    const float *xbp = blocks[b].cross ? xb : NULL;
                    int64_t nb = blocks[b].cross ? NB : 0, nrows = blocks[b].cross ? NB : N;
                    int64_t R = blocks[b].rc ? blocks[b].rc : N - blocks[b].rb;
                    int64_t C = blocks[b].cc ? blocks[b].cc : nrows - blocks[b].cb;
                    if (!blocks[b].cross && side == 2) continue; /* symmetric: gates_b alone is refused */
                    gn_kernel_options o;
                    gn_kernel_options_init(&o);
                    o.layer = cases[k].layer;
                    o.row_begin = blocks[b].rb, o.row_count = blocks[b].rc;
                    o.col_begin = blocks[b].cb, o.col_count = blocks[b].cc;
                    o.gate_path = (gn_gate_path)path;
                    o.out_transposed = want_t, o.ld_transposed = LDT, o.capacity_transposed = N * LDT;
                    fill(want, N * LD), fill(got, N * LD), fill(want_t, N * LDT), fill(got_t, N * LDT);
                    REQUIRE_OK(compute(cases[k].net, cases[k].kind, xbp, nb, o, NULL, NULL, want, LD, N * LD));
                    const uint64_t *a = side == 2 ? NULL : cases[k].a;
                    const uint64_t *bb = side == 1 ? NULL : blocks[b].cross ? cases[k].b : a;
                    o.out_transposed = got_t;
                    gn_status s = compute(cases[k].net, cases[k].kind, xbp, nb, o, a, bb, got, LD, N * LD);
                    int same = s == GN_OK && memcmp(want, got, sizeof want) == 0 && memcmp(want_t, got_t, sizeof want_t) == 0;
                    int written = got[(R - 1) * LD + C - 1] != sentinel && got[(R - 1) * LD + C] == sentinel;
                    CHECKF(same && written, "net %zu kind %d layer %lld block %zu path %d side %d: status %s (%s)", k,
                           (int)cases[k].kind, (long long)cases[k].layer, b, path, side, gn_status_name(s),
                           gn_last_error());
                }
}

static void refused(void) {
    enum { CAP = N * N };
    static float out[CAP];
    static uint64_t bad[N * W], big[N * W];
    gn_kernel_options o;
#define G_FAILS(net, kind, b, nb, stmt, expect, arg)                                                \
    do {                                                                                            \
        gn_kernel_options_init(&o);                                                                 \
        o.gates_a = ga, o.capacity_gates_a = N * W;                                                 \
        stmt;                                                                                       \
        fill(out, CAP);                                                                             \
        CHECK_STATUS(gn_kernel_compute((net), (kind), x, N, (b), (nb), &o, out, N, CAP), (expect), (arg)); \
        CHECKF((expect) == GN_OK ? !untouched(out, CAP) : untouched(out, CAP),                      \
               "kind %d: written %s", (int)(kind), (expect) == GN_OK ? "nothing" : "by a refused call"); \
    } while (0)
    /* kinds that take no gates (gn_kernel_kind 0, 5 .. 11), either side */
    int kinds[] = {0, 5, 6, 7, 8, 9, 10, 11};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        G_FAILS(hard, (gn_kernel_kind)kinds[i], xb, NB, (void)0, GN_ERR_INVALID_ARGUMENT, "gates_a");
        G_FAILS(hard, (gn_kernel_kind)kinds[i], xb, NB, (o.gates_a = NULL, o.gates_b = gb, o.capacity_gates_b = NB * W),
                GN_ERR_INVALID_ARGUMENT, "gates_b");
    }
    G_FAILS(hard, GN_KERNEL_NPK, xb, NB, o.gate_path = GN_GATE_PATH_FLOAT, GN_ERR_INVALID_ARGUMENT, "gate_path");
    memcpy(big, ga, sizeof big);
    G_FAILS(soft, GN_KERNEL_NPK, xb, NB, o.gates_a = big, GN_ERR_UNSUPPORTED, "soft gates");
    G_FAILS(soft, GN_KERNEL_NPK, xb, NB, o.gate_path = GN_GATE_PATH_PACKED, GN_ERR_UNSUPPORTED, "soft gates");
    /* capacities */
    G_FAILS(hard, GN_KERNEL_NPK, xb, NB, o.capacity_gates_a = N * W - 1, GN_ERR_BUFFER_TOO_SMALL, "capacity_gates_a");
    G_FAILS(hard, GN_KERNEL_NPK, xb, NB, o.capacity_gates_a = -1, GN_ERR_BUFFER_TOO_SMALL, "capacity_gates_a");
    G_FAILS(hard, GN_KERNEL_NPK, xb, NB, (o.gates_b = gb, o.capacity_gates_b = NB * W - 1), GN_ERR_BUFFER_TOO_SMALL,
            "capacity_gates_b");
    G_FAILS(hard, GN_KERNEL_NPK, NULL, 0, (o.gates_b = ga, o.capacity_gates_b = N * W - 1), GN_ERR_BUFFER_TOO_SMALL,
            "capacity_gates_b");
    /* symmetric: gates_b must be NULL or gates_a */
    G_FAILS(hard, GN_KERNEL_NPK, NULL, 0, (o.gates_b = big, o.capacity_gates_b = N * W), GN_ERR_INVALID_ARGUMENT,
            "gates_b");
    G_FAILS(hard, GN_KERNEL_NPK, x, N, (o.gates_a = NULL, o.gates_b = ga, o.capacity_gates_b = N * W),
            GN_ERR_INVALID_ARGUMENT, "gates_b");
    G_FAILS(hard, GN_KERNEL_NPK, NULL, 0, (o.gates_b = ga, o.capacity_gates_b = N * W), GN_OK, NULL);
    /* a bit above a layer's width (layer 1: 130 gates, bits 2.. of its last word, word 4) */
    memcpy(bad, ga, sizeof bad);
    bad[9 * W + 4] |= 1ull << 40;
    G_FAILS(hard, GN_KERNEL_NPK_NORMALIZED, xb, NB, o.gates_a = bad, GN_ERR_INVALID_ARGUMENT, "row 9");
    G_FAILS(hard, GN_KERNEL_NPK_NORMALIZED, xb, NB, o.gates_a = bad, GN_ERR_INVALID_ARGUMENT, "layer 1");
    G_FAILS(hard, GN_KERNEL_BASE, NULL, 0, (o.gates_a = bad, o.row_begin = 0, o.row_count = 5, o.col_begin = 5),
            GN_ERR_INVALID_ARGUMENT, "row 9");
    /* the layer 0 padding: 70 gates, bit 6 of word 1 */
    memcpy(bad, ga, sizeof bad);
    bad[3 * W + 1] |= 1ull << 6;
    G_FAILS(hard, GN_KERNEL_OVERLAP, xb, NB, o.gates_a = bad, GN_ERR_INVALID_ARGUMENT, "layer 0");
    /* a bit of a real gate (bit 5 of word 1 is gate 69) is a gate, not padding */
    bad[3 * W + 1] = ga[3 * W + 1] ^ (1ull << 5);
    G_FAILS(hard, GN_KERNEL_OVERLAP, xb, NB, o.gates_a = bad, GN_OK, NULL);
    /* NULL gates with a capacity: computed, accepted */
    G_FAILS(hard, GN_KERNEL_NPK, xb, NB, (o.gates_a = NULL, o.capacity_gates_a = 0), GN_OK, NULL);
#undef G_FAILS
}

static void older_struct_sizes(void) {
    enum { LD = NB };
    static float plain[N * LD], got[N * LD];
    REQUIRE_OK(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, xb, NB, NULL, plain, LD, N * LD));
    /* the struct ending at capacity_transposed, in a buffer of exactly that size: accepted, gates
     * computed, the transposed output read */
    const size_t size = offsetof(gn_kernel_options, gates_a);
    CHECK(size == offsetof(gn_kernel_options, capacity_transposed) + sizeof(int64_t));
    gn_kernel_options o;
    gn_kernel_options_init(&o);
    o.struct_size = size;
    static float t[NB * N];
    o.out_transposed = t, o.ld_transposed = N, o.capacity_transposed = NB * N;
    gn_kernel_options *old = malloc(size);
    if (old == NULL) { CHECK(old != NULL); return; }
    memcpy(old, &o, size);
    fill(got, N * LD);
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, xb, NB, old, got, LD, N * LD), GN_OK, NULL);
    CHECK(memcmp(got, plain, sizeof got) == 0);
    int transposed = 1;
    for (int r = 0; r < N; r++)
        for (int c = 0; c < NB; c++) transposed &= memcmp(&t[c * N + r], &plain[r * LD + c], sizeof(float)) == 0;
    CHECK(transposed);
    free(old);
    /* sizes between the versions: refused */
    gn_kernel_options_init(&o);
    o.struct_size = size + 8;
    fill(got, N * LD);
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, xb, NB, &o, got, LD, N * LD), GN_ERR_INVALID_ARGUMENT,
                 "struct_size");
    o.struct_size = sizeof o - 8;
    CHECK_STATUS(gn_kernel_compute(hard, GN_KERNEL_NPK, x, N, xb, NB, &o, got, LD, N * LD), GN_ERR_INVALID_ARGUMENT,
                 "struct_size");
    CHECK(untouched(got, N * LD));
    CHECK(sizeof o == size + 2 * sizeof(void *) + 2 * sizeof(int64_t));
    gn_kernel_options_init(&o);
    CHECK(o.struct_size == sizeof o && o.gates_a == NULL && o.gates_b == NULL && o.capacity_gates_a == 0 &&
          o.capacity_gates_b == 0);
}

static void conv_refuses(void) {
    static gn_layer_spec layers[3];
    layers[0] = t_layer(GN_LAYER_CONV, 3, 3);
    layers[1] = t_layer(GN_LAYER_GLOBAL_AVG_POOL, 0, 1);
    layers[2] = t_layer(GN_LAYER_DENSE, 2, 1);
    gn_conv_network_spec spec;
    gn_conv_network *net = NULL;
    REQUIRE_OK(gn_conv_network_spec_init(&spec, GN_REGIME_DECOUPLED, 1, 4, 4, 3, layers));
    REQUIRE_OK(gn_conv_network_create(&spec, &net));
    static float cx[6 * 16], out[36];
    for (int i = 0; i < 6 * 16; i++) cx[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    gn_kernel_options o;
    gn_kernel_options_init(&o);
    o.gates_a = ga, o.capacity_gates_a = N * W;
    fill(out, 36);
    CHECK_STATUS(gn_conv_network_kernel_compute(net, GN_CONV_KERNEL_NPK, cx, 6, NULL, 0, &o, out, 6, 36),
                 GN_ERR_INVALID_ARGUMENT, "gates_a");
    o.gates_a = NULL, o.gates_b = gb, o.capacity_gates_b = NB * W;
    CHECK_STATUS(gn_conv_network_kernel_compute(net, GN_CONV_KERNEL_NPK, cx, 6, cx, 6, &o, out, 6, 36),
                 GN_ERR_INVALID_ARGUMENT, "gates_b");
    CHECK(untouched(out, 36));
    o.gates_b = NULL;
    CHECK_STATUS(gn_conv_network_kernel_compute(net, GN_CONV_KERNEL_NPK, cx, 6, NULL, 0, &o, out, 6, 36), GN_OK, NULL);
    gn_conv_network_free(net);
}

int main(void) {
    setup();
    if (!hard || !soft || !relu || gn_gates_packed_all(hard, x, N, ga, N * W) != GN_OK ||
        gn_gates_packed_all(hard, xb, NB, gb, NB * W) != GN_OK) {
        fprintf(stderr, "FAIL setup: %s\n", gn_last_error());
        return 1;
    }
    T_SECTION(packed_all_layout);
    T_SECTION(equals_computed);
    T_SECTION(refused);
    T_SECTION(older_struct_sizes);
    T_SECTION(conv_refuses);
    gn_network_free(hard);
    gn_network_free(soft);
    gn_network_free(relu);
    return T_FINISH("test_kernel_given_gates");
}
