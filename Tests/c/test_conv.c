/*
 * test_conv.c — conv and residual DGNs through the C ABI (gn_conv_network): specs, named
 * architectures, training on a Fashion-MNIST subset with frozen gates, prediction, gates and
 * rewiring, the exact conv path kernel, and bad inputs (every one must fail cleanly, naming
 * the argument). Build and run through Tests/c/run.sh.
 */
#include "testing.h"

#include <stdint.h>

#define DATA_DIR "/usr/share/datasets/fashion-mnist/"
#define N_TRAIN 2000
#define N_TEST 500

static float *x_train, *x_test;
static int32_t y_train[N_TRAIN], y_test[N_TEST];

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

static gn_layer_spec conv_layer(int64_t channels, int64_t kernel, int64_t stride, gn_padding padding, int64_t block) {
    gn_layer_spec l;
    memset(&l, 0, sizeof l);
    l.kind = GN_LAYER_CONV;
    l.units = channels;
    l.kernel = kernel;
    l.stride = stride;
    l.padding = padding;
    l.block = block;
    return l;
}

static gn_layer_spec plain_layer(gn_layer_kind kind, int64_t units) {
    gn_layer_spec l;
    memset(&l, 0, sizeof l);
    l.kind = kind;
    l.units = units;
    l.kernel = 1;
    l.stride = 1;
    return l;
}

/* Seeded uniform values in [-1, 1). */
static void fill_uniform(float *x, size_t n, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    }
}

static gn_conv_network_info info_of(const gn_conv_network *net) {
    gn_conv_network_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK_STATUS(gn_conv_network_get_info(net, &info), GN_OK, NULL);
    return info;
}

/* A 3-conv residual net with circular padding for 6x6x2 inputs: conv 3, block(conv 3, conv 3),
 * GAP, dense 4 (gated), dense 3 (output). */
static gn_layer_spec small_layers[6];
static void init_small_layers(void) {
    small_layers[0] = conv_layer(3, 3, 1, GN_PAD_CIRCULAR, 0);
    small_layers[1] = conv_layer(3, 3, 1, GN_PAD_CIRCULAR, 1);
    small_layers[2] = conv_layer(3, 3, 1, GN_PAD_CIRCULAR, 1);
    small_layers[3] = plain_layer(GN_LAYER_GLOBAL_AVG_POOL, 0);
    small_layers[4] = plain_layer(GN_LAYER_DENSE, 4);
    small_layers[5] = plain_layer(GN_LAYER_DENSE, 3);
}

static gn_conv_network *small_net(gn_regime regime, uint64_t seed) {
    gn_conv_network_spec spec;
    gn_conv_network *net = NULL;
    if (gn_conv_network_spec_init(&spec, regime, 2, 6, 6, 6, small_layers) != GN_OK) return NULL;
    spec.seed = seed;
    if (gn_conv_network_create(&spec, &net) != GN_OK) return NULL;
    return net;
}

/* ------------------------------------------------------------------------------------ */

static void test_spec_and_info(void) {
    gn_conv_network_spec spec;
    REQUIRE_OK(gn_conv_network_spec_init(&spec, GN_REGIME_DLGN, 2, 6, 6, 6, small_layers));
    CHECK(spec.struct_size == sizeof spec);
    CHECK(spec.layer_struct_size == sizeof(gn_layer_spec));
    CHECK(spec.feature_activation == GN_ACT_IDENTITY && spec.gate_kind == GN_GATE_SOFT && spec.beta == 10.0f);
    gn_conv_network *net = NULL;
    REQUIRE_OK(gn_conv_network_create(&spec, &net));
    gn_conv_network_info info = info_of(net);
    CHECK(info.input_size == 72 && info.output_size == 3);
    CHECK(info.n_gated == 4 && info.n_blocks == 1);
    CHECK(info.tied == 0 && info.feature_frozen == 0);
    /* 3 conv layers of 3 x (9*in) weights + dense 4x3 + output 3x4, twice (output only in the value net). */
    CHECKF(info.parameter_count == 2 * (3 * 18 + 3 * 27 + 3 * 27 + 12) + 12, "parameter_count %lld",
           (long long)info.parameter_count);
    int64_t h = 0, w = 0, c = 0;
    REQUIRE_OK(gn_conv_network_gated_shape(net, 2, &h, &w, &c));
    CHECK(h == 6 && w == 6 && c == 3);
    REQUIRE_OK(gn_conv_network_gated_shape(net, 3, &h, &w, &c));
    CHECK(h == 1 && w == 1 && c == 4);
    size_t needed = 0;
    char buf[256];
    REQUIRE_OK(gn_conv_network_describe(net, buf, sizeof buf, &needed));
    CHECKF(strstr(buf, "conv DGN") && strstr(buf, "dlgn") && strstr(buf, "1 residual blocks"), "%s", buf);
    CHECK(needed == strlen(buf) + 1 || needed > sizeof buf);
    gn_conv_network_free(net);
    gn_conv_network_free(NULL);
}

static int always_stop(void *user) {
    (void)user;
    return 1;
}

static void test_train_fixed_gates(void) {
    gn_layer_spec layers[5] = {conv_layer(16, 3, 1, GN_PAD_ZERO, 0), conv_layer(32, 3, 2, GN_PAD_ZERO, 0),
                               conv_layer(32, 3, 2, GN_PAD_ZERO, 0), plain_layer(GN_LAYER_GLOBAL_AVG_POOL, 0),
                               plain_layer(GN_LAYER_DENSE, 10)};
    gn_conv_network_spec spec;
    REQUIRE_OK(gn_conv_network_spec_init(&spec, GN_REGIME_FIXED_RANDOM_II, 1, 28, 28, 5, layers));
    spec.seed = 3;
    gn_conv_network *net = NULL;
    REQUIRE_OK(gn_conv_network_create(&spec, &net));
    enum { NG = 50 };
    size_t gsize = 14 * 14 * 32;
    float *g0 = xmalloc(NG * gsize * sizeof *g0), *g1 = xmalloc(NG * gsize * sizeof *g1);
    REQUIRE_OK(gn_conv_network_gates(net, x_test, NG, 1, 0, g0, (int64_t)(NG * gsize)));
    gn_train_options opts;
    REQUIRE_OK(gn_train_options_init(&opts));
    opts.learning_rate = 3e-3f;
    opts.epochs = 2;
    gn_epoch_metrics hist[2];
    int64_t run = 0;
    REQUIRE_OK(gn_conv_network_train(net, x_train, y_train, N_TRAIN, x_test, y_test, N_TEST, &opts, hist, 2, &run));
    CHECK(run == 2);
    CHECKF(hist[1].test_accuracy > 0.45, "test accuracy %.3f (chance 0.1)", hist[1].test_accuracy);
    CHECKF(hist[1].train_loss < hist[0].train_loss, "loss %.4f -> %.4f", hist[0].train_loss, hist[1].train_loss);
    REQUIRE_OK(gn_conv_network_gates(net, x_test, NG, 1, 0, g1, (int64_t)(NG * gsize)));
    CHECK(t_bits_equal(g0, g1, NG * gsize));
    /* evaluate's accuracy is the fraction of predict_classes that match. */
    int32_t *cls = xmalloc(N_TEST * sizeof *cls);
    double loss = 0, acc = 0;
    REQUIRE_OK(gn_conv_network_predict_classes(net, x_test, N_TEST, cls, N_TEST));
    REQUIRE_OK(gn_conv_network_evaluate(net, x_test, y_test, N_TEST, GN_LOSS_CROSS_ENTROPY, &loss, &acc));
    int hits = 0;
    for (int i = 0; i < N_TEST; i++) hits += cls[i] == y_test[i];
    CHECKF(fabs(acc - hits / (double)N_TEST) < 1e-12, "%f vs %f", acc, hits / (double)N_TEST);
    CHECK(fabs(acc - hist[1].test_accuracy) < 1e-12);
    /* A clone predicts identically. */
    gn_conv_network *copy = NULL;
    REQUIRE_OK(gn_conv_network_clone(net, &copy));
    float *p0 = xmalloc(20 * 10 * sizeof *p0), *p1 = xmalloc(20 * 10 * sizeof *p1);
    REQUIRE_OK(gn_conv_network_predict(net, x_test, 20, p0, 200));
    REQUIRE_OK(gn_conv_network_predict(copy, x_test, 20, p1, 200));
    CHECK(t_bits_equal(p0, p1, 200));
    CHECK(info_of(copy).epochs_trained == 2);
    /* An interrupt restores the state at the start of the epoch and gives GN_ERR_CANCELLED. */
    opts.interrupt = always_stop;
    opts.epochs = 1;
    REQUIRE_OK(gn_conv_network_predict(copy, x_test, 20, p0, 200));
    CHECK_STATUS(gn_conv_network_train(copy, x_train, y_train, N_TRAIN, NULL, NULL, 0, &opts, NULL, 0, NULL), GN_ERR_CANCELLED,
                 "interrupted");
    REQUIRE_OK(gn_conv_network_predict(copy, x_test, 20, p1, 200));
    CHECK(t_bits_equal(p0, p1, 200));
    CHECK(info_of(copy).epochs_trained == 2);
    opts.interrupt = NULL;
    /* Hard gates and frozen features: nothing left to train once the value net is frozen. */
    REQUIRE_OK(gn_conv_network_set_frozen(copy, GN_PART_VALUE, 1));
    CHECK_STATUS(gn_conv_network_train(copy, x_train, y_train, 100, NULL, NULL, 0, &opts, NULL, 0, NULL), GN_ERR_UNSUPPORTED,
                 "nothing to train");
    free(p0); free(p1); free(cls); free(g0); free(g1);
    gn_conv_network_free(copy);
    gn_conv_network_free(net);
}

static void test_fixed_learnt_and_wiring(void) {
    gn_conv_network *relu = small_net(GN_REGIME_RELU, 1);
    REQUIRE_OK(relu ? GN_OK : GN_ERR_INTERNAL);
    CHECK(info_of(relu).tied == 1);
    gn_conv_network_spec spec;
    REQUIRE_OK(gn_conv_network_spec_init(&spec, GN_REGIME_FIXED_LEARNT, 2, 6, 6, 6, small_layers));
    spec.gate_source = relu;
    spec.seed = 2;
    gn_conv_network *dgn = NULL;
    REQUIRE_OK(gn_conv_network_create(&spec, &dgn));
    enum { N = 4 };
    float x[N * 72];
    fill_uniform(x, N * 72, 5);
    float a[N * 108], b[N * 108];
    for (int l = 0; l < 3; l++) {
        REQUIRE_OK(gn_conv_network_gates(relu, x, N, l, 0, a, N * 108));
        REQUIRE_OK(gn_conv_network_gates(dgn, x, N, l, 1, b, N * 108));
        CHECKF(t_bits_equal(a, b, N * 108), "layer %d", l);
    }
    /* Permutation of equal-shape layers 0 and 2: value layer 0 takes feature layer 2's gates. */
    int64_t perm[4] = {2, 1, 0, 3};
    REQUIRE_OK(gn_conv_network_spec_init(&spec, GN_REGIME_FIXED_RANDOM_II, 2, 6, 6, 6, small_layers));
    spec.permutation = perm;
    gn_conv_network *permuted = NULL;
    REQUIRE_OK(gn_conv_network_create(&spec, &permuted));
    REQUIRE_OK(gn_conv_network_gates(permuted, x, N, 2, 0, a, N * 108));
    REQUIRE_OK(gn_conv_network_gates(permuted, x, N, 0, 1, b, N * 108));
    CHECK(t_bits_equal(a, b, N * 108));
    /* Tiling + rotation keeps the number of open gates per sample over the conv layers. */
    spec.permutation = NULL;
    spec.wiring = GN_WIRING_TILED_ROTATED;
    spec.wiring_seed = 7;
    gn_conv_network *tiled = NULL;
    REQUIRE_OK(gn_conv_network_create(&spec, &tiled));
    double on_f[N] = {0}, on_v[N] = {0};
    int moved = 0;
    for (int l = 0; l < 3; l++) {
        REQUIRE_OK(gn_conv_network_gates(tiled, x, N, l, 0, a, N * 108));
        REQUIRE_OK(gn_conv_network_gates(tiled, x, N, l, 1, b, N * 108));
        for (int i = 0; i < N * 108; i++) {
            on_f[i / 108] += a[i];
            on_v[i / 108] += b[i];
        }
        if (!t_bits_equal(a, b, N * 108)) moved = 1;
    }
    for (int s = 0; s < N; s++) CHECKF(on_f[s] == on_v[s], "sample %d: %g vs %g open gates", s, on_f[s], on_v[s]);
    CHECK(moved);
    gn_conv_network_free(tiled);
    gn_conv_network_free(permuted);
    gn_conv_network_free(dgn);
    gn_conv_network_free(relu);
}

static void test_kernel(void) {
    gn_conv_network *net = small_net(GN_REGIME_FIXED_RANDOM_II, 4);
    REQUIRE_OK(net ? GN_OK : GN_ERR_INTERNAL);
    enum { N = 3 };
    float x[N * 72], xs[N * 72];
    fill_uniform(x, N * 72, 9);
    /* Joint circular shift by (1, 2) of every sample. */
    for (int s = 0; s < N; s++)
        for (int y = 0; y < 6; y++)
            for (int c = 0; c < 6; c++)
                for (int ch = 0; ch < 2; ch++)
                    xs[s * 72 + (((y + 1) % 6) * 6 + (c + 2) % 6) * 2 + ch] = x[s * 72 + (y * 6 + c) * 2 + ch];
    float k[N * 4], ks[N * 4];
    REQUIRE_OK(gn_conv_network_kernel(net, GN_CONV_KERNEL_NPK, x, N, x, N, k, 4, N * 4));
    REQUIRE_OK(gn_conv_network_kernel(net, GN_CONV_KERNEL_NPK, xs, N, xs, N, ks, 4, N * 4));
    double scale = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            if (fabs(k[i * 4 + j]) > scale) scale = fabs(k[i * 4 + j]);
            CHECK(k[i * 4 + j] == k[j * 4 + i]);
        }
    CHECK(scale > 0);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            CHECKF(fabs(k[i * 4 + j] - ks[i * 4 + j]) <= 1e-4 * scale, "H[%d,%d] %g vs shifted %g", i, j, k[i * 4 + j], ks[i * 4 + j]);
    /* Input Gram is <x_i, x_j>. */
    float g[N * N];
    REQUIRE_OK(gn_conv_network_kernel(net, GN_CONV_KERNEL_INPUT_GRAM, x, N, x, N, g, N, N * N));
    double dot = 0;
    for (int e = 0; e < 72; e++) dot += (double)x[e] * x[72 + e];
    CHECK(fabs(g[1] - dot) < 1e-4 * (1 + fabs(dot)));
    /* Ones input: NPK = channels x gate overlap. */
    gn_conv_network_spec spec;
    REQUIRE_OK(gn_conv_network_spec_init(&spec, GN_REGIME_FIXED_RANDOM_II, 2, 6, 6, 6, small_layers));
    spec.seed = 4;
    spec.value_input = GN_VALUE_INPUT_ONES;
    gn_conv_network *ones = NULL;
    REQUIRE_OK(gn_conv_network_create(&spec, &ones));
    float h1[N * N], ov[N * N], ov0[N * N];
    REQUIRE_OK(gn_conv_network_kernel(ones, GN_CONV_KERNEL_NPK, x, N, x, N, h1, N, N * N));
    REQUIRE_OK(gn_conv_network_kernel(ones, GN_CONV_KERNEL_GATE_OVERLAP, x, N, x, N, ov, N, N * N));
    REQUIRE_OK(gn_conv_network_kernel(net, GN_CONV_KERNEL_GATE_OVERLAP, x, N, x, N, ov0, N, N * N));
    for (int i = 0; i < N * N; i++) {
        CHECKF(fabs(h1[i] - 2 * ov[i]) <= 1e-5 * fabs(h1[i]), "%g vs 2 x %g", h1[i], ov[i]);
        CHECK(ov[i] == ov0[i]);
    }
    /* Bad kernel arguments. */
    CHECK_STATUS(gn_conv_network_kernel(net, GN_CONV_KERNEL_NPK, x, N, x, N, k, 2, N * 4), GN_ERR_INVALID_ARGUMENT, "ld_out");
    CHECK_STATUS(gn_conv_network_kernel(net, GN_CONV_KERNEL_NPK, x, N, x, N, k, 4, 5), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_conv_network_kernel(net, (gn_conv_kernel_kind)9, x, N, x, N, k, 4, N * 4), GN_ERR_INVALID_ARGUMENT, "kind");
    x[5] = NAN;
    CHECK_STATUS(gn_conv_network_kernel(net, GN_CONV_KERNEL_NPK, x, N, x, N, k, 4, N * 4), GN_ERR_NOT_FINITE, "xa");
    gn_conv_network_free(ones);
    gn_conv_network_free(net);
}

static void test_named(void) {
    int64_t n = 0;
    REQUIRE_OK(gn_conv_architecture_layers(GN_ARCH_GCONV, 10, 1.0f, NULL, 0, &n));
    CHECK(n == 7);
    gn_layer_spec layers[16];
    CHECK_STATUS(gn_conv_architecture_layers(GN_ARCH_GCONV, 10, 1.0f, layers, 3, &n), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    REQUIRE_OK(gn_conv_architecture_layers(GN_ARCH_GCONV, 10, 1.0f, layers, 16, &n));
    CHECK(layers[0].kind == GN_LAYER_CONV && layers[0].units == 64 && layers[3].units == 128 && layers[4].kind == GN_LAYER_GLOBAL_AVG_POOL);
    CHECK(layers[5].units == 256 && layers[6].units == 10);
    gn_conv_network_spec spec;
    REQUIRE_OK(gn_conv_network_spec_init(&spec, GN_REGIME_DLGN, 3, 32, 32, 0, NULL));
    const gn_conv_architecture archs[6] = {GN_ARCH_GCONV, GN_ARCH_VCONV, GN_ARCH_DLGN_CONV, GN_ARCH_RESNET_SMALL, GN_ARCH_VGG19,
                                           GN_ARCH_DAVIDNET};
    float *x = xmalloc(2 * 3072 * sizeof *x);
    fill_uniform(x, 2 * 3072, 1);
    for (int a = 0; a < 6; a++) {
        gn_conv_network *net = NULL;
        REQUIRE_OK(gn_conv_network_create_named(archs[a], 10, 0.125f, &spec, &net));
        float out[20];
        REQUIRE_OK(gn_conv_network_predict(net, x, 2, out, 20));
        int finite = 1;
        for (int i = 0; i < 20; i++) finite &= isfinite(out[i]) != 0;
        CHECKF(finite, "architecture %d", a);
        gn_conv_network_info info = info_of(net);
        CHECK(info.output_size == 10);
        if (archs[a] == GN_ARCH_RESNET_SMALL) CHECK(info.n_blocks == 3);
        gn_conv_network_free(net);
    }
    free(x);
    gn_conv_network *net = NULL;
    CHECK_STATUS(gn_conv_network_create_named((gn_conv_architecture)42, 10, 1.0f, &spec, &net), GN_ERR_INVALID_ARGUMENT, "arch");
    CHECK_STATUS(gn_conv_network_create_named(GN_ARCH_GCONV, 10, 0.0f, &spec, &net), GN_ERR_INVALID_ARGUMENT, "width_scale");
    CHECK_STATUS(gn_conv_network_create_named(GN_ARCH_GCONV, 0, 1.0f, &spec, &net), GN_ERR_INVALID_ARGUMENT, "classes");
    CHECK(net == NULL);
}

static gn_status create_with(gn_layer_spec *layers, int64_t n_layers, int64_t c, int64_t h, int64_t w, gn_conv_network **out) {
    gn_conv_network_spec spec;
    gn_status s = gn_conv_network_spec_init(&spec, GN_REGIME_FIXED_RANDOM_II, c, h, w, n_layers, layers);
    if (s != GN_OK) return s;
    return gn_conv_network_create(&spec, out);
}

static void test_bad_specs(void) {
    gn_conv_network *net = NULL;
    gn_layer_spec l[4];
    /* Kernel larger than its input (valid and circular padding need k <= size). */
    l[0] = conv_layer(2, 5, 1, GN_PAD_VALID, 0);
    l[1] = plain_layer(GN_LAYER_DENSE, 2);
    CHECK_STATUS(create_with(l, 2, 1, 4, 4, &net), GN_ERR_SHAPE, "kernel");
    l[0] = conv_layer(2, 5, 1, GN_PAD_CIRCULAR, 0);
    CHECK_STATUS(create_with(l, 2, 1, 4, 6, &net), GN_ERR_SHAPE, "kernel");
    l[0] = conv_layer(2, 9, 1, GN_PAD_ZERO, 0);
    CHECK_STATUS(create_with(l, 2, 1, 4, 4, &net), GN_ERR_SHAPE, "kernel");
    /* Sizes whose scratch could not be allocated fail cleanly. */
    l[0] = conv_layer(2, 3, 1, GN_PAD_ZERO, 0);
    l[1] = plain_layer(GN_LAYER_DENSE, 2);
    CHECK_STATUS(create_with(l, 2, 1, 100000, 100000, &net), GN_ERR_OUT_OF_MEMORY, "input");
    l[0] = conv_layer(512, 3, 1, GN_PAD_ZERO, 0);
    CHECK_STATUS(create_with(l, 2, 1, 8192, 8192, &net), GN_ERR_OUT_OF_MEMORY, "layers[0]");
    l[0] = conv_layer(64, 3, 1, GN_PAD_ZERO, 0);
    CHECK_STATUS(create_with(l, 2, 1, 2048, 2048, &net), GN_ERR_OUT_OF_MEMORY, "network");
    CHECK(net == NULL);
    /* Stride 0, channels 0, kernel 0, unknown padding / kind. */
    l[0] = conv_layer(2, 3, 0, GN_PAD_ZERO, 0);
    CHECK_STATUS(create_with(l, 2, 1, 4, 4, &net), GN_ERR_INVALID_ARGUMENT, "stride");
    l[0] = conv_layer(0, 3, 1, GN_PAD_ZERO, 0);
    CHECK_STATUS(create_with(l, 2, 1, 4, 4, &net), GN_ERR_INVALID_ARGUMENT, "units");
    l[0] = conv_layer(2, 0, 1, GN_PAD_ZERO, 0);
    CHECK_STATUS(create_with(l, 2, 1, 4, 4, &net), GN_ERR_INVALID_ARGUMENT, "kernel");
    l[0] = conv_layer(2, 3, 1, (gn_padding)7, 0);
    CHECK_STATUS(create_with(l, 2, 1, 4, 4, &net), GN_ERR_INVALID_ARGUMENT, "padding");
    l[0] = conv_layer(2, 3, 1, GN_PAD_ZERO, 0);
    l[0].kind = (gn_layer_kind)11;
    CHECK_STATUS(create_with(l, 2, 1, 4, 4, &net), GN_ERR_INVALID_ARGUMENT, "kind");
    /* The last layer must be dense; a gated layer is needed; input sizes >= 1. */
    l[0] = conv_layer(2, 3, 1, GN_PAD_ZERO, 0);
    l[1] = plain_layer(GN_LAYER_GLOBAL_AVG_POOL, 0);
    CHECK_STATUS(create_with(l, 2, 1, 4, 4, &net), GN_ERR_INVALID_ARGUMENT, "last layer");
    l[1] = plain_layer(GN_LAYER_DENSE, 2);
    CHECK_STATUS(create_with(l + 1, 1, 1, 4, 4, &net), GN_ERR_INVALID_ARGUMENT, "gated");
    CHECK_STATUS(create_with(l, 2, 0, 4, 4, &net), GN_ERR_INVALID_ARGUMENT, "in_channels");
    CHECK_STATUS(create_with(l, 0, 1, 4, 4, &net), GN_ERR_INVALID_ARGUMENT, "n_layers");
    CHECK_STATUS(create_with(NULL, 2, 1, 4, 4, &net), GN_ERR_NULL_POINTER, "layers");
    /* Residual blocks: non-contiguous ids, pooling inside a block. */
    l[0] = conv_layer(2, 3, 1, GN_PAD_ZERO, 1);
    l[1] = conv_layer(2, 3, 1, GN_PAD_ZERO, 0);
    l[2] = conv_layer(2, 3, 1, GN_PAD_ZERO, 1);
    l[3] = plain_layer(GN_LAYER_DENSE, 2);
    CHECK_STATUS(create_with(l, 4, 1, 4, 4, &net), GN_ERR_INVALID_ARGUMENT, "block");
    l[2] = plain_layer(GN_LAYER_GLOBAL_AVG_POOL, 0);
    l[2].block = 2;
    CHECK_STATUS(create_with(l, 4, 1, 4, 4, &net), GN_ERR_INVALID_ARGUMENT, "block");
    /* Permutation over unequal shapes (3 vs 2 channels), and out of range. */
    gn_layer_spec p[4] = {conv_layer(3, 3, 1, GN_PAD_ZERO, 0), conv_layer(2, 3, 1, GN_PAD_ZERO, 0),
                          plain_layer(GN_LAYER_GLOBAL_AVG_POOL, 0), plain_layer(GN_LAYER_DENSE, 2)};
    gn_conv_network_spec spec;
    REQUIRE_OK(gn_conv_network_spec_init(&spec, GN_REGIME_FIXED_RANDOM_II, 1, 4, 4, 4, p));
    int64_t perm[2] = {1, 0};
    spec.permutation = perm;
    CHECK_STATUS(gn_conv_network_create(&spec, &net), GN_ERR_SHAPE, "permutation");
    perm[0] = 5;
    CHECK_STATUS(gn_conv_network_create(&spec, &net), GN_ERR_INVALID_ARGUMENT, "permutation[0]");
    perm[0] = 0;
    perm[1] = 0;
    CHECK_STATUS(gn_conv_network_create(&spec, &net), GN_ERR_INVALID_ARGUMENT, "permutation");
    /* Tiling over unequal spatial sizes. */
    p[1] = conv_layer(3, 3, 2, GN_PAD_ZERO, 0);
    spec.permutation = NULL;
    spec.wiring = GN_WIRING_TILED_ROTATED;
    CHECK_STATUS(gn_conv_network_create(&spec, &net), GN_ERR_SHAPE, "tiled_rotated");
    spec.wiring = (gn_gate_wiring)5;
    CHECK_STATUS(gn_conv_network_create(&spec, &net), GN_ERR_INVALID_ARGUMENT, "wiring");
    /* Regime and struct checks. */
    REQUIRE_OK(gn_conv_network_spec_init(&spec, GN_REGIME_RELU, 1, 4, 4, 4, p));
    spec.gate_kind = GN_GATE_SOFT;
    CHECK_STATUS(gn_conv_network_create(&spec, &net), GN_ERR_INVALID_ARGUMENT, "relu");
    REQUIRE_OK(gn_conv_network_spec_init(&spec, GN_REGIME_DECOUPLED, 1, 4, 4, 4, p));
    spec.beta = 0;
    CHECK_STATUS(gn_conv_network_create(&spec, &net), GN_ERR_INVALID_ARGUMENT, "beta");
    spec.beta = 10;
    spec.struct_size = 8;
    CHECK_STATUS(gn_conv_network_create(&spec, &net), GN_ERR_INVALID_ARGUMENT, "struct_size");
    REQUIRE_OK(gn_conv_network_spec_init(&spec, GN_REGIME_DECOUPLED, 1, 4, 4, 4, p));
    spec.layer_struct_size = 4;
    CHECK_STATUS(gn_conv_network_create(&spec, &net), GN_ERR_INVALID_ARGUMENT, "layer_struct_size");
    CHECK_STATUS(gn_conv_network_spec_init(&spec, (gn_regime)99, 1, 4, 4, 4, p), GN_ERR_INVALID_ARGUMENT, "regime");
    CHECK_STATUS(gn_conv_network_spec_init(NULL, GN_REGIME_RELU, 1, 4, 4, 4, p), GN_ERR_NULL_POINTER, "spec");
    /* FIXED_LEARNT: missing source, source with another input channel count. */
    REQUIRE_OK(gn_conv_network_spec_init(&spec, GN_REGIME_FIXED_LEARNT, 2, 6, 6, 6, small_layers));
    CHECK_STATUS(gn_conv_network_create(&spec, &net), GN_ERR_NULL_POINTER, "gate_source");
    gn_conv_network_spec other;
    REQUIRE_OK(gn_conv_network_spec_init(&other, GN_REGIME_RELU, 1, 6, 6, 6, small_layers));
    gn_conv_network *mono = NULL;
    REQUIRE_OK(gn_conv_network_create(&other, &mono));
    spec.gate_source = mono;
    CHECK_STATUS(gn_conv_network_create(&spec, &net), GN_ERR_SHAPE, "gate source");
    gn_conv_network *stereo = small_net(GN_REGIME_DECOUPLED, 1);
    CHECK_STATUS(gn_conv_network_copy_feature_weights(stereo, mono, 1), GN_ERR_SHAPE, "gate source");
    CHECK(net == NULL);
    gn_conv_network_free(stereo);
    gn_conv_network_free(mono);
}

static void test_bad_calls(void) {
    gn_conv_network *net = small_net(GN_REGIME_DECOUPLED, 6);
    REQUIRE_OK(net ? GN_OK : GN_ERR_INTERNAL);
    float x[2 * 72], out[8];
    int32_t y[2] = {0, 5};
    fill_uniform(x, 2 * 72, 3);
    gn_train_options opts;
    REQUIRE_OK(gn_train_options_init(&opts));
    CHECK_STATUS(gn_conv_network_train(net, x, y, 2, NULL, NULL, 0, &opts, NULL, 0, NULL), GN_ERR_LABEL_RANGE, "y[1]");
    y[1] = 2;
    opts.train_feature_head = 1;
    CHECK_STATUS(gn_conv_network_train(net, x, y, 2, NULL, NULL, 0, &opts, NULL, 0, NULL), GN_ERR_UNSUPPORTED, "train_feature_head");
    opts.train_feature_head = 0;
    opts.batch_size = 0;
    CHECK_STATUS(gn_conv_network_train(net, x, y, 2, NULL, NULL, 0, &opts, NULL, 0, NULL), GN_ERR_INVALID_ARGUMENT, "batch_size");
    opts.batch_size = 2;
    CHECK_STATUS(gn_conv_network_train(net, x, y, 0, NULL, NULL, 0, &opts, NULL, 0, NULL), GN_ERR_INVALID_ARGUMENT, "n");
    CHECK_STATUS(gn_conv_network_train(net, NULL, y, 2, NULL, NULL, 0, &opts, NULL, 0, NULL), GN_ERR_NULL_POINTER, "x");
    CHECK_STATUS(gn_conv_network_train(net, x, y, 2, NULL, NULL, 0, NULL, NULL, 0, NULL), GN_ERR_NULL_POINTER, "opts");
    CHECK_STATUS(gn_conv_network_predict(net, x, 2, out, 5), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_conv_network_predict(net, x, 2, NULL, 6), GN_ERR_NULL_POINTER, "out");
    CHECK_STATUS(gn_conv_network_gates(net, x, 2, 4, 0, out, 8), GN_ERR_INVALID_ARGUMENT, "layer");
    CHECK_STATUS(gn_conv_network_gates(net, x, 2, 3, 0, out, 7), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_conv_network_gated_shape(net, -1, NULL, NULL, NULL), GN_ERR_INVALID_ARGUMENT, "layer");
    CHECK_STATUS(gn_conv_network_set_frozen(net, (gn_part)3, 1), GN_ERR_INVALID_ARGUMENT, "part");
    CHECK_STATUS(gn_conv_network_evaluate(net, x, y, 2, (gn_loss)4, NULL, NULL), GN_ERR_INVALID_ARGUMENT, "loss");
    x[0] = INFINITY;
    CHECK_STATUS(gn_conv_network_predict(net, x, 2, out, 6), GN_ERR_NOT_FINITE, "x");
    x[0] = 0;
    gn_conv_network_info before = info_of(net);
    CHECK(before.epochs_trained == 0); /* the failed train calls above changed nothing */
    /* Handles of another kind, freed handles and NULL. */
    gn_network_spec ms;
    int64_t widths[1] = {4};
    REQUIRE_OK(gn_network_spec_init(&ms, GN_REGIME_RELU, 72, 1, widths, 3));
    gn_network *mlp = NULL;
    REQUIRE_OK(gn_network_create(&ms, &mlp));
    CHECK_STATUS(gn_conv_network_predict((const gn_conv_network *)(const void *)mlp, x, 2, out, 6), GN_ERR_INVALID_HANDLE, "net");
    CHECK_STATUS(gn_predict((const gn_network *)(const void *)net, x, 2, out, 6), GN_ERR_INVALID_HANDLE, "net");
    gn_conv_network_free((gn_conv_network *)(void *)mlp); /* another kind: ignored */
    CHECK_STATUS(gn_predict(mlp, x, 2, out, 6), GN_OK, NULL);
    gn_network_free(mlp);
    CHECK_STATUS(gn_conv_network_get_info(NULL, &before), GN_ERR_NULL_POINTER, "net");
    gn_conv_network_info bad;
    memset(&bad, 0, sizeof bad);
    CHECK_STATUS(gn_conv_network_get_info(net, &bad), GN_ERR_INVALID_ARGUMENT, "struct_size");
    gn_conv_network_free(net);
    CHECK_STATUS(gn_conv_network_predict(net, x, 2, out, 6), GN_ERR_INVALID_HANDLE, "net");
    gn_conv_network_free(net); /* double free: ignored */
    /* Max pooling has no path kernel. */
    gn_layer_spec l[3] = {conv_layer(2, 3, 1, GN_PAD_ZERO, 0), plain_layer(GN_LAYER_GLOBAL_MAX_POOL, 0), plain_layer(GN_LAYER_DENSE, 2)};
    REQUIRE_OK(create_with(l, 3, 2, 6, 6, &net));
    float k[4];
    CHECK_STATUS(gn_conv_network_kernel(net, GN_CONV_KERNEL_NPK, x, 2, x, 2, k, 2, 4), GN_ERR_UNSUPPORTED, "max pooling");
    REQUIRE_OK(gn_conv_network_kernel(net, GN_CONV_KERNEL_INPUT_GRAM, x, 2, x, 2, k, 2, 4));
    gn_conv_network_free(net);
}

static void test_persistence(void) {
    gn_conv_network *net = small_net(GN_REGIME_DECOUPLED, 8);
    REQUIRE_OK(net ? GN_OK : GN_ERR_INTERNAL);
    enum { N = 6 };
    float x[N * 72], a[N * 3], b[N * 3];
    int32_t y[N] = {0, 1, 2, 0, 1, 2};
    fill_uniform(x, N * 72, 12);
    gn_train_options opts;
    REQUIRE_OK(gn_train_options_init(&opts));
    opts.batch_size = 3;
    REQUIRE_OK(gn_conv_network_train(net, x, y, N, NULL, NULL, 0, &opts, NULL, 0, NULL));
    size_t needed = 0;
    CHECK_STATUS(gn_conv_network_serialize(net, GN_SAVE_OPTIMIZER_STATE, NULL, 0, &needed), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK(needed > 28);
    unsigned char *buf = xmalloc(needed);
    REQUIRE_OK(gn_conv_network_serialize(net, GN_SAVE_OPTIMIZER_STATE, buf, needed, &needed));
    gn_conv_network *copy = NULL;
    REQUIRE_OK(gn_conv_network_deserialize(buf, needed, &copy));
    REQUIRE_OK(gn_conv_network_predict(net, x, N, a, N * 3));
    REQUIRE_OK(gn_conv_network_predict(copy, x, N, b, N * 3));
    CHECK(t_bits_equal(a, b, N * 3));
    CHECK(info_of(copy).epochs_trained == 1);
    gn_conv_network_free(copy);
    copy = NULL;
    /* Save / load through a file. */
    char path[] = "/tmp/gn-conv-test-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE_OK(fd >= 0 ? GN_OK : GN_ERR_IO);
    close(fd);
    REQUIRE_OK(gn_conv_network_save(net, path, 0));
    REQUIRE_OK(gn_conv_network_load(path, &copy));
    REQUIRE_OK(gn_conv_network_predict(copy, x, N, b, N * 3));
    CHECK(t_bits_equal(a, b, N * 3));
    gn_conv_network_free(copy);
    copy = NULL;
    /* A flipped byte, a truncated buffer, and a gn_network file are GN_ERR_CORRUPT. */
    buf[needed / 2] ^= 0x10;
    CHECK_STATUS(gn_conv_network_deserialize(buf, needed, &copy), GN_ERR_CORRUPT, "checksum");
    buf[needed / 2] ^= 0x10;
    CHECK_STATUS(gn_conv_network_deserialize(buf, needed - 5, &copy), GN_ERR_CORRUPT, "conv network file");
    CHECK(copy == NULL);
    gn_network_spec ms;
    int64_t widths[1] = {4};
    gn_network *mlp = NULL;
    REQUIRE_OK(gn_network_spec_init(&ms, GN_REGIME_RELU, 72, 1, widths, 3));
    REQUIRE_OK(gn_network_create(&ms, &mlp));
    REQUIRE_OK(gn_network_save(mlp, path, 0));
    CHECK_STATUS(gn_conv_network_load(path, &copy), GN_ERR_CORRUPT, "magic");
    CHECK_STATUS(gn_conv_network_load("/nonexistent-dir/x.gn", &copy), GN_ERR_IO, "/nonexistent-dir/x.gn");
    CHECK_STATUS(gn_conv_network_save(net, "/nonexistent-dir/x.gn", 0), GN_ERR_IO, "nonexistent-dir");
    gn_network_free(mlp);
    unlink(path);
    free(buf);
    gn_conv_network_free(net);
}

static void test_tensors(void) {
    gn_conv_network *net = small_net(GN_REGIME_DECOUPLED, 9);
    REQUIRE_OK(net ? GN_OK : GN_ERR_INTERNAL);
    int64_t count = 0, rows = 0, cols = 0;
    REQUIRE_OK(gn_conv_network_tensor_count(net, &count));
    CHECK(count == 9); /* feature: 3 conv + dense; value: the same + output; no biases */
    char name[32];
    REQUIRE_OK(gn_conv_network_tensor_info(net, 0, name, sizeof name, &rows, &cols));
    CHECKF(strcmp(name, "feature.0.weight") == 0 && rows == 3 && cols == 18, "%s %lld x %lld", name, (long long)rows, (long long)cols);
    REQUIRE_OK(gn_conv_network_tensor_info(net, 8, name, sizeof name, &rows, &cols));
    CHECKF(strcmp(name, "value.4.weight") == 0 && rows == 3 && cols == 4, "%s", name);
    float w[12], w2[12];
    REQUIRE_OK(gn_conv_network_get_tensor(net, 8, w, 12));
    memset(w2, 0, sizeof w2);
    REQUIRE_OK(gn_conv_network_set_tensor(net, 8, w2, 12));
    float x[2 * 72], out[6];
    fill_uniform(x, 2 * 72, 4);
    REQUIRE_OK(gn_conv_network_predict(net, x, 2, out, 6));
    for (int i = 0; i < 6; i++) CHECK(out[i] == 0.0f);
    REQUIRE_OK(gn_conv_network_set_tensor(net, 8, w, 12));
    REQUIRE_OK(gn_conv_network_get_tensor(net, 8, w2, 12));
    CHECK(t_bits_equal(w, w2, 12));
    CHECK_STATUS(gn_conv_network_tensor_info(net, 9, NULL, 0, NULL, NULL), GN_ERR_INVALID_ARGUMENT, "index");
    CHECK_STATUS(gn_conv_network_get_tensor(net, 8, w, 11), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_conv_network_set_tensor(net, 8, w, 11), GN_ERR_SHAPE, "count");
    w[3] = NAN;
    CHECK_STATUS(gn_conv_network_set_tensor(net, 8, w, 12), GN_ERR_NOT_FINITE, "values");
    gn_conv_network_free(net);

    /* The documented layouts: a ReLU net conv(1, 3x3, valid) -> dense(1) on a 3x3x2 input whose
     * conv weight is one-hot at fan_in index (ky * 3 + kx) * 2 + c outputs relu(x at NHWC index
     * (ky * 3 + kx) * 2 + c). */
    gn_layer_spec l[2] = {conv_layer(1, 3, 1, GN_PAD_VALID, 0), plain_layer(GN_LAYER_DENSE, 1)};
    gn_conv_network_spec spec;
    REQUIRE_OK(gn_conv_network_spec_init(&spec, GN_REGIME_RELU, 2, 3, 3, 2, l));
    REQUIRE_OK(gn_conv_network_create(&spec, &net));
    float one = 1, hot[18], xs[18], y = 0;
    REQUIRE_OK(gn_conv_network_set_tensor(net, 1, &one, 1));
    fill_uniform(xs, 18, 6);
    for (int idx = 0; idx < 18; idx++) {
        memset(hot, 0, sizeof hot);
        hot[idx] = 1;
        REQUIRE_OK(gn_conv_network_set_tensor(net, 0, hot, 18));
        REQUIRE_OK(gn_conv_network_predict(net, xs, 1, &y, 1));
        CHECKF(y == (xs[idx] > 0 ? xs[idx] : 0), "index %d: %g vs x %g", idx, y, xs[idx]);
    }
    gn_conv_network_free(net);
}

static int load_data(void) {
    int64_t dims[3], nd = 0;
    if (gn_idx_dims(DATA_DIR "train-images-idx3-ubyte.gz", dims, 3, &nd) != GN_OK) return 0;
    size_t total = (size_t)(dims[0] * dims[1] * dims[2]);
    float *all = xmalloc(total * sizeof *all);
    int32_t *labels = xmalloc((size_t)dims[0] * sizeof *labels);
    if (gn_idx_read_f32(DATA_DIR "train-images-idx3-ubyte.gz", 1.0f / 255, all, (int64_t)total) != GN_OK) return 0;
    if (gn_idx_read_i32(DATA_DIR "train-labels-idx1-ubyte.gz", labels, dims[0]) != GN_OK) return 0;
    x_train = xmalloc((size_t)N_TRAIN * 784 * sizeof *x_train);
    x_test = xmalloc((size_t)N_TEST * 784 * sizeof *x_test);
    memcpy(x_train, all, (size_t)N_TRAIN * 784 * sizeof *x_train);
    memcpy(y_train, labels, N_TRAIN * sizeof *labels);
    /* The held-out rows come from the far end of the training file. */
    memcpy(x_test, all + (size_t)(dims[0] - N_TEST) * 784, (size_t)N_TEST * 784 * sizeof *x_test);
    memcpy(y_test, labels + dims[0] - N_TEST, N_TEST * sizeof *labels);
    free(all);
    free(labels);
    return 1;
}

int main(void) {
    init_small_layers();
    if (!load_data()) {
        fprintf(stderr, "FAIL: cannot read Fashion-MNIST from " DATA_DIR ": %s\n", gn_last_error());
        return 1;
    }
    T_SECTION(test_spec_and_info);
    T_SECTION(test_train_fixed_gates);
    T_SECTION(test_fixed_learnt_and_wiring);
    T_SECTION(test_kernel);
    T_SECTION(test_named);
    T_SECTION(test_bad_specs);
    T_SECTION(test_bad_calls);
    T_SECTION(test_persistence);
    T_SECTION(test_tensors);
    return T_FINISH("test_conv");
}
