/*
 * test_regression.c — regression (real-valued targets) through the C ABI: gn_train_regression,
 * gn_evaluate_regression and their conv equivalents. Bad arguments return the documented
 * status with a message naming the argument and leave the network untouched; good calls
 * match a plain C recomputation of the squared loss from gn_predict, and -1/+1 targets train
 * to the same bits as 0/1 labels through gn_train with the squared loss.
 *
 * Build and run through Tests/c/run.sh (sections run in forked children, testing.h).
 */
#include "testing.h"

#include <stdint.h>

#define N 40
#define D 3
#define K 2

static float x[N * D], t[N * K];

/* Seeded uniform values in [-1, 1). */
static void fill_uniform(float *p, size_t n, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)((s >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    }
}

static gn_network *fc_net(gn_regime regime, int64_t outputs, uint64_t seed) {
    static int64_t widths[2] = {16, 16};
    gn_network_spec spec;
    gn_network *net = NULL;
    if (gn_network_spec_init(&spec, regime, D, 2, widths, outputs) != GN_OK) return NULL;
    spec.bias = 1;
    spec.seed = seed;
    return gn_network_create(&spec, &net) == GN_OK ? net : NULL;
}

static gn_conv_network *conv_net(int64_t outputs, uint64_t seed) {
    static gn_layer_spec layers[3];
    memset(layers, 0, sizeof layers);
    layers[0].kind = GN_LAYER_CONV;
    layers[0].units = 4;
    layers[0].kernel = 3;
    layers[0].stride = 1;
    layers[1].kind = GN_LAYER_GLOBAL_AVG_POOL;
    layers[1].kernel = 1;
    layers[1].stride = 1;
    layers[2].kind = GN_LAYER_DENSE;
    layers[2].units = outputs;
    layers[2].kernel = 1;
    layers[2].stride = 1;
    gn_conv_network_spec spec;
    gn_conv_network *net = NULL;
    if (gn_conv_network_spec_init(&spec, GN_REGIME_DECOUPLED, 1, 4, 4, 3, layers) != GN_OK) return NULL;
    spec.seed = seed;
    return gn_conv_network_create(&spec, &net) == GN_OK ? net : NULL;
}

/* The network's bytes with its optimizer state (malloc'd, *size set), to compare bit for bit. */
static unsigned char *fc_bytes(const gn_network *net, size_t *size) {
    size_t need = 0;
    gn_network_serialize(net, GN_SAVE_OPTIMIZER_STATE, NULL, 0, &need);
    unsigned char *b = malloc(need ? need : 1);
    if (b && gn_network_serialize(net, GN_SAVE_OPTIMIZER_STATE, b, need, size) != GN_OK) *size = 0;
    return b;
}

static unsigned char *conv_bytes(const gn_conv_network *net, size_t *size) {
    size_t need = 0;
    gn_conv_network_serialize(net, GN_SAVE_OPTIMIZER_STATE, NULL, 0, &need);
    unsigned char *b = malloc(need ? need : 1);
    if (b && gn_conv_network_serialize(net, GN_SAVE_OPTIMIZER_STATE, b, need, size) != GN_OK) *size = 0;
    return b;
}

static int same_bytes(unsigned char *a, size_t na, unsigned char *b, size_t nb) {
    int same = na > 0 && na == nb && memcmp(a, b, na) == 0;
    free(a);
    free(b);
    return same;
}

static gn_train_options squared_options(int64_t epochs) {
    gn_train_options o;
    gn_train_options_init(&o);
    o.loss = GN_LOSS_SQUARED;
    o.learning_rate = 1e-2f;
    o.batch_size = 32; /* >= 16: the minibatch is split over two cores */
    o.epochs = epochs;
    o.shuffle_seed = 7;
    return o;
}

/* 0.5 * ||y - t||^2 averaged over rows, from outputs y (n x k), in double. */
static double mean_squared(const float *y, const float *target, int64_t n, int64_t k) {
    double s = 0;
    for (int64_t i = 0; i < n * k; i++) s += 0.5 * ((double)y[i] - target[i]) * ((double)y[i] - target[i]);
    return s / (double)n;
}

/* A progress callback that calls evaluate_regression on the network it trains. */
typedef struct {
    gn_network *net;
    gn_status inner;
    char message[256];
} busy_probe;

static int probe_progress(const gn_epoch_metrics *m, void *user) {
    (void)m;
    busy_probe *p = user;
    double loss = 0;
    p->inner = gn_evaluate_regression(p->net, x, t, N, &loss);
    snprintf(p->message, sizeof p->message, "%s", gn_last_error());
    return 0;
}

static void test_fc_bad_inputs(void) {
    gn_network *net = fc_net(GN_REGIME_DECOUPLED, K, 3);
    CHECK(net != NULL);
    if (!net) return;
    size_t n0 = 0, n1 = 0;
    unsigned char *before = fc_bytes(net, &n0);
    gn_train_options o = squared_options(1);
    gn_epoch_metrics hist[2];
    int64_t run = -1;
    float bad[N * K];
    double loss = -1;

    CHECK_STATUS(gn_train_regression(NULL, x, t, N, NULL, NULL, 0, &o, NULL, 0, NULL), GN_ERR_NULL_POINTER, "net");
    CHECK_STATUS(gn_train_regression(net, NULL, t, N, NULL, NULL, 0, &o, NULL, 0, NULL), GN_ERR_NULL_POINTER, "x");
    CHECK_STATUS(gn_train_regression(net, x, NULL, N, NULL, NULL, 0, &o, NULL, 0, NULL), GN_ERR_NULL_POINTER, "y");
    CHECK_STATUS(gn_train_regression(net, x, t, N, NULL, NULL, 0, NULL, NULL, 0, NULL), GN_ERR_NULL_POINTER, "opts");
    CHECK_STATUS(gn_train_regression(net, x, t, 0, NULL, NULL, 0, &o, NULL, 0, NULL), GN_ERR_INVALID_ARGUMENT, "n");
    CHECK_STATUS(gn_train_regression(net, x, t, -3, NULL, NULL, 0, &o, NULL, 0, NULL), GN_ERR_INVALID_ARGUMENT, "n");
    /* the wrong loss, named as the option it is */
    o.loss = GN_LOSS_CROSS_ENTROPY;
    CHECK_STATUS(gn_train_regression(net, x, t, N, NULL, NULL, 0, &o, NULL, 0, &run), GN_ERR_INVALID_ARGUMENT,
                 "GN_LOSS_SQUARED");
    CHECK(strstr(gn_last_error(), "opts->loss") != NULL);
    CHECK(run == -1 || run == 0); /* untouched or zero: no epoch ran */
    o = squared_options(1);
    /* NaN / Inf targets */
    memcpy(bad, t, sizeof bad);
    bad[N * K - 1] = NAN;
    CHECK_STATUS(gn_train_regression(net, x, bad, N, NULL, NULL, 0, &o, NULL, 0, NULL), GN_ERR_NOT_FINITE, "y");
    bad[N * K - 1] = INFINITY;
    CHECK_STATUS(gn_train_regression(net, x, t, N, x, bad, N, &o, NULL, 0, NULL), GN_ERR_NOT_FINITE, "y_test");
    /* the test pair: both or neither, with a row count */
    CHECK_STATUS(gn_train_regression(net, x, t, N, x, NULL, N, &o, NULL, 0, NULL), GN_ERR_NULL_POINTER, "y_test");
    CHECK_STATUS(gn_train_regression(net, x, t, N, NULL, t, N, &o, NULL, 0, NULL), GN_ERR_NULL_POINTER, "x_test");
    CHECK_STATUS(gn_train_regression(net, x, t, N, x, t, 0, &o, NULL, 0, NULL), GN_ERR_INVALID_ARGUMENT, "n_test");
    CHECK_STATUS(gn_train_regression(net, x, t, N, NULL, NULL, 0, &o, NULL, 2, NULL), GN_ERR_NULL_POINTER, "history");
    CHECK_STATUS(gn_train_regression(net, x, t, N, NULL, NULL, 0, &o, hist, -1, NULL), GN_ERR_INVALID_ARGUMENT,
                 "history_capacity");
    o.batch_size = 0;
    CHECK_STATUS(gn_train_regression(net, x, t, N, NULL, NULL, 0, &o, NULL, 0, NULL), GN_ERR_INVALID_ARGUMENT,
                 "batch_size");
    o = squared_options(1);
    /* a conv handle is not a gn_network */
    gn_conv_network *conv = conv_net(K, 1);
    CHECK_STATUS(gn_train_regression((gn_network *)conv, x, t, N, NULL, NULL, 0, &o, NULL, 0, NULL),
                 GN_ERR_INVALID_HANDLE, "net");
    gn_conv_network_free(conv);
    /* evaluation */
    CHECK_STATUS(gn_evaluate_regression(net, x, t, N, NULL), GN_ERR_NULL_POINTER, "mean_loss");
    CHECK_STATUS(gn_evaluate_regression(net, x, NULL, N, &loss), GN_ERR_NULL_POINTER, "y");
    CHECK_STATUS(gn_evaluate_regression(net, x, t, 0, &loss), GN_ERR_INVALID_ARGUMENT, "n");
    bad[0] = -INFINITY;
    CHECK_STATUS(gn_evaluate_regression(net, x, bad, N, &loss), GN_ERR_NOT_FINITE, "y");
    CHECK(loss == -1);
    /* none of this touched the network */
    unsigned char *after = fc_bytes(net, &n1);
    CHECK(same_bytes(before, n0, after, n1));
    /* busy: the progress callback may not use the network it trains */
    busy_probe probe = {net, GN_OK, ""};
    o.progress = probe_progress;
    o.progress_user = &probe;
    CHECK_STATUS(gn_train_regression(net, x, t, N, NULL, NULL, 0, &o, NULL, 0, NULL), GN_OK, NULL);
    CHECKF(probe.inner == GN_ERR_BUSY && strstr(probe.message, "net") != NULL, "%s \"%s\"",
           gn_status_name(probe.inner), probe.message);
    gn_network_free(net);
    /* a freed handle */
    CHECK_STATUS(gn_train_regression(net, x, t, N, NULL, NULL, 0, &o, NULL, 0, NULL), GN_ERR_INVALID_HANDLE, "net");
    CHECK_STATUS(gn_evaluate_regression(net, x, t, N, &loss), GN_ERR_INVALID_HANDLE, "net");
}

static void test_fc_good_calls(void) {
    /* ReLU net with one output: -1/+1 targets through gn_train_regression equal 0/1 labels
     * through gn_train with the squared loss, bit for bit (weights and optimizer state). */
    gn_network *a = fc_net(GN_REGIME_DECOUPLED, 1, 11), *b = fc_net(GN_REGIME_DECOUPLED, 1, 11);
    CHECK(a && b);
    if (!a || !b) return;
    int32_t labels[N];
    float pm[N];
    for (int i = 0; i < N; i++) {
        labels[i] = x[i * D] + x[i * D + 1] > 0 ? 1 : 0;
        pm[i] = labels[i] ? 1.0f : -1.0f;
    }
    gn_train_options o = squared_options(3);
    gn_epoch_metrics ha[3], hb[3];
    int64_t ra = 0, rb = 0;
    REQUIRE_OK(gn_train(a, x, labels, N, x, labels, N, &o, ha, 3, &ra));
    REQUIRE_OK(gn_train_regression(b, x, pm, N, x, pm, N, &o, hb, 3, &rb));
    CHECK(ra == 3 && rb == 3);
    size_t na = 0, nb = 0;
    unsigned char *ba = fc_bytes(a, &na), *bb = fc_bytes(b, &nb);
    CHECK(same_bytes(ba, na, bb, nb));
    for (int e = 0; e < 3; e++) {
        CHECKF(ha[e].train_loss == hb[e].train_loss && ha[e].test_loss == hb[e].test_loss,
               "epoch %d: loss %.9g / %.9g vs %.9g / %.9g", e, ha[e].train_loss, ha[e].test_loss, hb[e].train_loss,
               hb[e].test_loss);
        CHECK(isnan(hb[e].train_accuracy) && isnan(hb[e].test_accuracy) && !isnan(ha[e].train_accuracy));
    }
    double la = 0, lb = 0, acc = 0;
    CHECK_STATUS(gn_evaluate(a, x, labels, N, GN_LOSS_SQUARED, &la, &acc), GN_OK, NULL);
    CHECK_STATUS(gn_evaluate_regression(b, x, pm, N, &lb), GN_OK, NULL);
    CHECKF(la == lb, "%.9g vs %.9g", la, lb);
    gn_network_free(a);
    gn_network_free(b);

    /* Two outputs: training lowers the loss, and gn_evaluate_regression is the mean squared
     * loss recomputed from gn_predict. */
    gn_network *net = fc_net(GN_REGIME_RELU, K, 12);
    CHECK(net != NULL);
    if (!net) return;
    float y[N * K];
    REQUIRE_OK(gn_predict(net, x, N, y, N * K));
    double start = 0, end = 0;
    CHECK_STATUS(gn_evaluate_regression(net, x, t, N, &start), GN_OK, NULL);
    CHECKF(fabs(start - mean_squared(y, t, N, K)) < 1e-6 * (1 + start), "%.9g vs %.9g", start, mean_squared(y, t, N, K));
    o = squared_options(60);
    gn_epoch_metrics h[60];
    REQUIRE_OK(gn_train_regression(net, x, t, N, NULL, NULL, 0, &o, h, 60, NULL));
    REQUIRE_OK(gn_predict(net, x, N, y, N * K));
    CHECK_STATUS(gn_evaluate_regression(net, x, t, N, &end), GN_OK, NULL);
    CHECKF(fabs(end - mean_squared(y, t, N, K)) < 1e-6 * (1 + end), "%.9g vs %.9g", end, mean_squared(y, t, N, K));
    CHECKF(end < 0.5 * start && h[59].train_loss < h[0].train_loss, "loss %.4g -> %.4g", start, end);
    CHECK(isnan(h[59].test_loss) && isnan(h[59].test_accuracy));
    gn_network_free(net);
}

static void test_conv(void) {
    enum { P = 16 }; /* 4 x 4 x 1 images */
    float images[N * P], target[N];
    fill_uniform(images, N * P, 21);
    for (int i = 0; i < N; i++) { /* left half minus right half of the image */
        double s = 0;
        for (int p = 0; p < P; p++) s += (p % 4 < 2 ? 1 : -1) * images[i * P + p];
        target[i] = (float)(s / 4);
    }
    gn_conv_network *net = conv_net(1, 5);
    CHECK(net != NULL);
    if (!net) return;
    size_t n0 = 0, n1 = 0;
    unsigned char *before = conv_bytes(net, &n0);
    gn_train_options o = squared_options(1);
    double loss = -1;
    float bad[N];
    memcpy(bad, target, sizeof bad);
    bad[3] = NAN;
    CHECK_STATUS(gn_conv_network_train_regression(NULL, images, target, N, NULL, NULL, 0, &o, NULL, 0, NULL),
                 GN_ERR_NULL_POINTER, "net");
    CHECK_STATUS(gn_conv_network_train_regression(net, images, NULL, N, NULL, NULL, 0, &o, NULL, 0, NULL),
                 GN_ERR_NULL_POINTER, "y");
    CHECK_STATUS(gn_conv_network_train_regression(net, images, bad, N, NULL, NULL, 0, &o, NULL, 0, NULL),
                 GN_ERR_NOT_FINITE, "y");
    o.loss = GN_LOSS_CROSS_ENTROPY;
    CHECK_STATUS(gn_conv_network_train_regression(net, images, target, N, NULL, NULL, 0, &o, NULL, 0, NULL),
                 GN_ERR_INVALID_ARGUMENT, "opts->loss");
    o = squared_options(1);
    o.train_feature_head = 1;
    CHECK_STATUS(gn_conv_network_train_regression(net, images, target, N, NULL, NULL, 0, &o, NULL, 0, NULL),
                 GN_ERR_UNSUPPORTED, "train_feature_head");
    gn_network *fc = fc_net(GN_REGIME_RELU, 1, 1);
    CHECK_STATUS(gn_conv_network_evaluate_regression((gn_conv_network *)fc, images, target, N, &loss),
                 GN_ERR_INVALID_HANDLE, "net");
    gn_network_free(fc);
    CHECK_STATUS(gn_conv_network_evaluate_regression(net, images, target, N, NULL), GN_ERR_NULL_POINTER, "mean_loss");
    CHECK_STATUS(gn_conv_network_evaluate_regression(net, images, bad, N, &loss), GN_ERR_NOT_FINITE, "y");
    CHECK_STATUS(gn_conv_network_evaluate_regression(net, NULL, target, N, &loss), GN_ERR_NULL_POINTER, "x");
    unsigned char *after = conv_bytes(net, &n1);
    CHECK(same_bytes(before, n0, after, n1));
    /* good calls: the loss is the recomputed mean squared loss, and training lowers it */
    float y[N];
    double start = 0, end = 0;
    REQUIRE_OK(gn_conv_network_predict(net, images, N, y, N));
    CHECK_STATUS(gn_conv_network_evaluate_regression(net, images, target, N, &start), GN_OK, NULL);
    CHECKF(fabs(start - mean_squared(y, target, N, 1)) < 1e-6 * (1 + start), "%.9g vs %.9g", start,
           mean_squared(y, target, N, 1));
    o = squared_options(40);
    o.batch_size = 8;
    gn_epoch_metrics h[40];
    int64_t run = 0;
    REQUIRE_OK(gn_conv_network_train_regression(net, images, target, N, images, target, N, &o, h, 40, &run));
    CHECK(run == 40 && isnan(h[0].train_accuracy) && isnan(h[39].test_accuracy));
    REQUIRE_OK(gn_conv_network_predict(net, images, N, y, N));
    CHECK_STATUS(gn_conv_network_evaluate_regression(net, images, target, N, &end), GN_OK, NULL);
    CHECKF(fabs(end - mean_squared(y, target, N, 1)) < 1e-6 * (1 + end), "%.9g vs %.9g", end, mean_squared(y, target, N, 1));
    CHECKF(end == h[39].test_loss, "%.9g vs %.9g", end, h[39].test_loss);
    CHECKF(end < 0.5 * start, "loss %.4g -> %.4g", start, end);
    gn_conv_network_free(net);
}

int main(void) {
    fill_uniform(x, N * D, 1);
    fill_uniform(t, N * K, 2);
    T_SECTION(test_fc_bad_inputs);
    T_SECTION(test_fc_good_calls);
    T_SECTION(test_conv);
    return T_FINISH("test_regression");
}
