/*
 * test_core.c — the whole gatednet flow through the C ABI, checked against plain C
 * recomputations: presets, creation, a Fashion-MNIST subset, training of every regime,
 * prediction, gates, kernels, persistence and label corruption.
 *
 * Build and run through Tests/c/run.sh. Sections run in forked children (testing.h) so a
 * crash in one is reported and the others still run; the trained networks and the data are
 * set up once in the parent.
 */
#include "testing.h"

#include <errno.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdint.h>
#include <sys/stat.h>

#define DATA_DIR "/usr/share/datasets/fashion-mnist/"
#define N_TRAIN 3000
#define N_TEST 1000
#define D_IN 784
#define CLASSES 10

static float *x_train, *x_test;
static int32_t y_train[N_TRAIN], y_test[N_TEST];
static int64_t widths[2] = {64, 64};
static gn_network *relu_net;    /* trained RELU net, the gate source */
static gn_network *learnt_net;  /* FIXED_LEARNT DGN built from relu_net and trained */
static char tmp_dir[64];

/* ------------------------------------------------------------------------------------ */
/* helpers                                                                               */
/* ------------------------------------------------------------------------------------ */

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

static gn_network_info info_of(const gn_network *net) {
    gn_network_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    CHECK_STATUS(gn_network_get_info(net, &info), GN_OK, NULL);
    return info;
}

/* A malloc'd copy of the weights of (part, layer); rows/cols may be NULL. */
static float *weights_of(const gn_network *net, gn_part part, int64_t layer, int64_t *rows, int64_t *cols) {
    int64_t r = 0, c = 0;
    if (gn_network_weight_shape(net, part, layer, &r, &c) != GN_OK) return NULL;
    float *w = xmalloc((size_t)(r * c) * sizeof *w);
    if (gn_network_get_weights(net, part, layer, w, r * c) != GN_OK) {
        free(w);
        return NULL;
    }
    if (rows) *rows = r;
    if (cols) *cols = c;
    return w;
}

/* 1 if every weight of `part` (hidden layers and, if present, the output/head layer) is
 * bit-identical in a and b. */
static int part_equal(const gn_network *a, const gn_network *b, gn_part part) {
    gn_network_info ia = info_of(a);
    int64_t last = (part == GN_PART_FEATURE && !ia.feature_head) ? ia.n_hidden - 1 : ia.n_hidden;
    for (int64_t l = 0; l <= last; l++) {
        int64_t ra, ca, rb, cb;
        float *wa = weights_of(a, part, l, &ra, &ca), *wb = weights_of(b, part, l, &rb, &cb);
        int same = wa && wb && ra == rb && ca == cb && t_bits_equal(wa, wb, (size_t)(ra * ca));
        free(wa);
        free(wb);
        if (!same) return 0;
    }
    return 1;
}

static float *predict_alloc(const gn_network *net, const float *x, int64_t n) {
    gn_network_info info = info_of(net);
    float *out = xmalloc((size_t)(n * info.output_size) * sizeof *out);
    CHECK_STATUS(gn_predict(net, x, n, out, n * info.output_size), GN_OK, NULL);
    return out;
}

/* Forward pass of gatednet.h recomputed in double from the weights the library reports:
 *   feature: qf_l = Wf_l zf_{l-1} (+b), zf_l = act(qf_l), G_l = gate(qf_l)
 *   value:   qv_l = Wv_l zv_{l-1} (+b), zv_l = qv_l * G_{perm[l]}, y = Wv_d zv_{d-1} (+b)
 * Writes n x output_size outputs and, if gates != NULL, the gates of every hidden layer
 * (gates[l]: n x width_l). Also returns in *min_abs_q the smallest |q| seen, to know how
 * close a hard gate was to flipping. */
static void reference_forward(const gn_network *net, const float *x, int64_t n, double *y, double **gates,
                              double *min_abs_q) {
    gn_network_info info = info_of(net);
    int64_t h = info.n_hidden, perm[GN_MAX_HIDDEN], w[GN_MAX_HIDDEN + 1];
    gn_network_permutation(net, perm, h);
    for (int64_t l = 0; l < h; l++) gn_network_hidden_width(net, l, &w[l]);
    w[h] = info.output_size;
    double minq = INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double *g[GN_MAX_HIDDEN];
        double *z = xmalloc((size_t)info.input_size * sizeof *z);
        for (int64_t j = 0; j < info.input_size; j++) z[j] = x[i * info.input_size + j];
        int64_t fan_in = info.input_size;
        for (int64_t l = 0; l < h; l++) { /* feature net */
            float *W = weights_of(net, GN_PART_FEATURE, l, NULL, NULL);
            float *b = NULL;
            if (info.bias) {
                b = xmalloc((size_t)w[l] * sizeof *b);
                gn_network_get_bias(net, GN_PART_FEATURE, l, b, w[l]);
            }
            double *q = xmalloc((size_t)w[l] * sizeof *q);
            g[l] = xmalloc((size_t)w[l] * sizeof *g[l]);
            for (int64_t r = 0; r < w[l]; r++) {
                double s = b ? b[r] : 0;
                for (int64_t c = 0; c < fan_in; c++) s += (double)W[r * fan_in + c] * z[c];
                q[r] = s;
                if (fabs(s) < minq) minq = fabs(s);
                g[l][r] = info.gate_kind == GN_GATE_HARD ? (s > 0) : 1.0 / (1.0 + exp(-info.beta * s));
                if (info.feature_activation == GN_ACT_RELU && q[r] < 0) q[r] = 0;
            }
            free(z);
            z = q;
            fan_in = w[l];
            free(W);
            free(b);
        }
        free(z);
        z = xmalloc((size_t)info.input_size * sizeof *z);
        for (int64_t j = 0; j < info.input_size; j++)
            z[j] = info.value_input == GN_VALUE_INPUT_ONES ? 1.0 : x[i * info.input_size + j];
        fan_in = info.input_size;
        for (int64_t l = 0; l <= h; l++) { /* value net */
            float *W = weights_of(net, GN_PART_VALUE, l, NULL, NULL);
            float *b = NULL;
            if (info.bias) {
                b = xmalloc((size_t)w[l] * sizeof *b);
                gn_network_get_bias(net, GN_PART_VALUE, l, b, w[l]);
            }
            double *q = xmalloc((size_t)w[l] * sizeof *q);
            for (int64_t r = 0; r < w[l]; r++) {
                double s = b ? b[r] : 0;
                for (int64_t c = 0; c < fan_in; c++) s += (double)W[r * fan_in + c] * z[c];
                q[r] = l < h ? s * g[perm[l]][r] : s;
            }
            free(z);
            z = q;
            fan_in = w[l];
            free(W);
            free(b);
        }
        for (int64_t c = 0; c < info.output_size; c++) y[i * info.output_size + c] = z[c];
        free(z);
        for (int64_t l = 0; l < h; l++) {
            if (gates)
                for (int64_t r = 0; r < w[l]; r++) gates[l][i * w[l] + r] = g[l][r];
            free(g[l]);
        }
    }
    if (min_abs_q) *min_abs_q = minq;
}

/* Library outputs vs reference_forward on the first n test images; tolerance relative to the
 * largest output. Skips rows where a hard gate was within 1e-4 of flipping (float vs double). */
static void check_forward_matches_reference(const gn_network *net, const char *what, int64_t n) {
    gn_network_info info = info_of(net);
    float *got = predict_alloc(net, x_test, n);
    double *ref = xmalloc((size_t)(n * info.output_size) * sizeof *ref);
    double worst = 0, scale = 1e-6;
    int64_t compared = 0;
    for (int64_t i = 0; i < n; i++) {
        double minq;
        reference_forward(net, x_test + i * D_IN, 1, ref + i * info.output_size, NULL, &minq);
        if (info.gate_kind == GN_GATE_HARD && minq < 1e-4) continue;
        compared++;
        for (int64_t c = 0; c < info.output_size; c++) {
            double r = ref[i * info.output_size + c];
            if (fabs(r) > scale) scale = fabs(r);
            double d = fabs(got[i * info.output_size + c] - r);
            if (d > worst) worst = d;
        }
    }
    CHECKF(compared >= n / 2, "%s: only %lld of %lld rows comparable", what, (long long)compared, (long long)n);
    CHECKF(worst <= 1e-4 * scale, "%s: predict differs from the C reference forward by %g (scale %g)", what, worst,
           scale);
    free(got);
    free(ref);
}

typedef struct {
    gn_epoch_metrics seen[16];
    int count;
    int stop_at;            /* return nonzero when epoch_in_call reaches this (0: never) */
    const gn_network *net;  /* if set, the callback calls gn_evaluate on this network */
    double evaluated[16];   /* gn_evaluate test accuracy from inside the callback */
    gn_status evaluate_status[16];
} progress_log;

static int record_progress(const gn_epoch_metrics *m, void *user) {
    progress_log *log = user;
    if (log->count < 16) {
        log->seen[log->count] = *m;
        log->evaluated[log->count] = NAN;
        if (log->net)
            log->evaluate_status[log->count] =
                gn_evaluate(log->net, x_test, y_test, N_TEST, GN_LOSS_CROSS_ENTROPY, NULL, &log->evaluated[log->count]);
    }
    log->count++;
    return log->stop_at != 0 && m->epoch_in_call >= log->stop_at;
}

static gn_train_options default_options(int64_t epochs) {
    gn_train_options o;
    CHECK_STATUS(gn_train_options_init(&o), GN_OK, NULL);
    o.learning_rate = 1e-3f;
    o.batch_size = 64;
    o.epochs = epochs;
    o.shuffle_seed = 11;
    return o;
}

/* ------------------------------------------------------------------------------------ */
/* version, names, presets, creation                                                    */
/* ------------------------------------------------------------------------------------ */

static void test_version(void) {
    CHECKF(gn_version_number() == GN_VERSION_NUMBER, "library %d, header %d", gn_version_number(),
           GN_VERSION_NUMBER);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", GN_VERSION_MAJOR, GN_VERSION_MINOR, GN_VERSION_PATCH);
    CHECKF(gn_version() && strcmp(gn_version(), expect) == 0, "gn_version() = \"%s\", header says %s",
           gn_version() ? gn_version() : "(null)", expect);
    CHECK(strcmp(gn_status_name(GN_OK), "GN_OK") == 0);
    CHECK(strcmp(gn_status_name(GN_ERR_SHAPE), "GN_ERR_SHAPE") == 0);
    CHECK(strcmp(gn_status_name(GN_ERR_CORRUPT), "GN_ERR_CORRUPT") == 0);
    CHECK(strcmp(gn_status_name(GN_ERR_INTERNAL), "GN_ERR_INTERNAL") == 0);
    const char *unknown = gn_status_name((gn_status)1234);
    CHECK(unknown != NULL && unknown[0] != '\0');
    CHECK(gn_last_error() != NULL);
}

static void test_presets_and_create(void) {
    int64_t w[3] = {16, 12, 8};
    for (int r = GN_REGIME_CUSTOM; r <= GN_REGIME_DLGN_PWC; r++) {
        gn_network_spec s;
        memset(&s, 0xAB, sizeof s);
        REQUIRE_OK(gn_network_spec_init(&s, (gn_regime)r, 20, 3, w, 4));
        int dlgn = r == GN_REGIME_DLGN || r == GN_REGIME_DLGN_PWC;
        int soft = dlgn || r == GN_REGIME_DECOUPLED;
        CHECKF(s.struct_size == sizeof s && s.regime == (gn_regime)r && s.input_size == 20 && s.n_hidden == 3 &&
                   s.hidden_widths == w && s.output_size == 4,
               "regime %d: sizes", r);
        CHECKF(s.feature_activation == (dlgn ? GN_ACT_IDENTITY : GN_ACT_RELU), "regime %d: activation", r);
        CHECKF(s.gate_kind == (soft ? GN_GATE_SOFT : GN_GATE_HARD), "regime %d: gate kind", r);
        CHECKF(!soft || s.beta == 10.0f, "regime %d: beta %g", r, s.beta);
        CHECKF(s.value_input == (r == GN_REGIME_DLGN_PWC ? GN_VALUE_INPUT_ONES : GN_VALUE_INPUT_X),
               "regime %d: value input", r);
        CHECKF(s.init == GN_INIT_GAUSSIAN && fabsf(s.init_scale - sqrtf(2.0f)) < 1e-6f, "regime %d: init", r);
        CHECKF(s.bias == 0 && s.feature_head == (r == GN_REGIME_RELU) && s.seed == 0 && s.permutation == NULL &&
                   s.gate_source == NULL && s.feature_frozen == 0,
               "regime %d: flags", r);
        if (r == GN_REGIME_FIXED_LEARNT) continue; /* needs a gate source: test_fixed_learnt */
        s.seed = 1234;
        gn_network *net = NULL;
        CHECK_STATUS(gn_network_create(&s, &net), GN_OK, NULL);
        if (!net) continue;
        gn_network_info info = info_of(net);
        int tied = r == GN_REGIME_RELU;
        int frozen = r == GN_REGIME_FIXED_RANDOM_II || r == GN_REGIME_FIXED_RANDOM_DI;
        /* layer sizes 20-16-12-8-4: hidden 20*16 + 16*12 + 12*8 = 608, output 8*4 = 32 */
        int64_t expect_params = tied ? 608 + 32 : 2 * 608 + 32;
        CHECKF(info.regime == (gn_regime)r && info.input_size == 20 && info.n_hidden == 3 && info.output_size == 4,
               "regime %d: info sizes", r);
        CHECKF(info.tied == tied && info.feature_head == tied && info.feature_frozen == frozen &&
                   info.value_frozen == 0 && info.epochs_trained == 0,
               "regime %d: info flags tied=%d head=%d ff=%d vf=%d ep=%lld", r, info.tied, info.feature_head,
               info.feature_frozen, info.value_frozen, (long long)info.epochs_trained);
        CHECKF(info.parameter_count == expect_params, "regime %d: %lld parameters, expected %lld", r,
               (long long)info.parameter_count, (long long)expect_params);
        CHECK(info.feature_activation == s.feature_activation && info.gate_kind == s.gate_kind &&
              info.value_input == s.value_input);
        for (int64_t l = 0; l < 3; l++) {
            int64_t width = -1;
            CHECK_STATUS(gn_network_hidden_width(net, l, &width), GN_OK, NULL);
            CHECKF(width == w[l], "regime %d: width[%lld] = %lld", r, (long long)l, (long long)width);
        }
        int64_t perm[3] = {-1, -1, -1};
        CHECK_STATUS(gn_network_permutation(net, perm, 3), GN_OK, NULL);
        CHECK(perm[0] == 0 && perm[1] == 1 && perm[2] == 2);
        /* weight shapes: fan_out x fan_in */
        int64_t rows, cols;
        CHECK_STATUS(gn_network_weight_shape(net, GN_PART_VALUE, 1, &rows, &cols), GN_OK, NULL);
        CHECK(rows == 12 && cols == 16);
        CHECK_STATUS(gn_network_weight_shape(net, GN_PART_VALUE, 3, &rows, &cols), GN_OK, NULL);
        CHECK(rows == 4 && cols == 8);
        /* describe: full text, needed, truncation */
        char full[512], small[6];
        size_t needed = 0, needed2 = 0;
        CHECK_STATUS(gn_network_describe(net, full, sizeof full, &needed), GN_OK, NULL);
        CHECKF(needed == strlen(full) + 1, "regime %d: needed %zu, strlen %zu", r, needed, strlen(full));
        CHECK(strstr(full, "20-16-12-8-4") != NULL);
        memset(small, 'Z', sizeof small);
        CHECK_STATUS(gn_network_describe(net, small, sizeof small, &needed2), GN_OK, NULL);
        CHECK(needed2 == needed && small[5] == '\0' && strncmp(small, full, 5) == 0);
        CHECK_STATUS(gn_network_describe(net, NULL, 0, &needed2), GN_OK, NULL);
        CHECK(needed2 == needed);
        /* clone is a deep copy */
        gn_network *copy = NULL;
        CHECK_STATUS(gn_network_clone(net, &copy), GN_OK, NULL);
        CHECK(copy != NULL && copy != net && part_equal(net, copy, GN_PART_VALUE) &&
              part_equal(net, copy, GN_PART_FEATURE));
        /* same spec and seed -> same weights; another seed -> other weights */
        gn_network *same = NULL, *other = NULL;
        CHECK_STATUS(gn_network_create(&s, &same), GN_OK, NULL);
        s.seed = 1235;
        CHECK_STATUS(gn_network_create(&s, &other), GN_OK, NULL);
        CHECK(same && part_equal(net, same, GN_PART_VALUE) && part_equal(net, same, GN_PART_FEATURE));
        CHECK(other && !part_equal(net, other, GN_PART_FEATURE));
        if (tied) { /* both parts name the same tensors */
            CHECK(part_equal(net, net, GN_PART_VALUE));
            for (int64_t l = 0; l <= 3; l++) {
                float *a = weights_of(net, GN_PART_FEATURE, l, &rows, &cols);
                float *b = weights_of(net, GN_PART_VALUE, l, NULL, NULL);
                CHECKF(a && b && t_bits_equal(a, b, (size_t)(rows * cols)), "relu: layer %lld not tied", (long long)l);
                free(a);
                free(b);
            }
        } else {
            for (int64_t l = 0; l < 3; l++) { /* DI: value hidden layers start as a copy; else independent */
                float *a = weights_of(net, GN_PART_FEATURE, l, &rows, &cols);
                float *b = weights_of(net, GN_PART_VALUE, l, NULL, NULL);
                int eq = a && b && t_bits_equal(a, b, (size_t)(rows * cols));
                CHECKF(eq == (r == GN_REGIME_FIXED_RANDOM_DI), "regime %d layer %lld: feature == value is %d", r,
                       (long long)l, eq);
                free(a);
                free(b);
            }
        }
        gn_network_free(copy);
        gn_network_free(same);
        gn_network_free(other);
        gn_network_free(net);
    }
}

/* Gaussian init N(0, s^2/fan_in) and Bernoulli init +-s/sqrt(fan_in). */
static void test_init_distributions(void) {
    int64_t w[1] = {256};
    gn_network_spec s;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_FIXED_RANDOM_II, 400, 1, w, 3));
    s.seed = 5;
    s.init_scale = 1.5f;
    for (int kind = 0; kind < 2; kind++) {
        s.init = (gn_init_kind)kind;
        gn_network *net = NULL;
        REQUIRE_OK(gn_network_create(&s, &net));
        float *W = weights_of(net, GN_PART_FEATURE, 0, NULL, NULL);
        size_t count = 256 * 400;
        double mean = 0, var = 0, sigma = 1.5 / sqrt(400.0);
        int exact = 1;
        for (size_t i = 0; i < count; i++) {
            mean += W[i];
            var += (double)W[i] * W[i];
            if (fabs(fabs(W[i]) - sigma) > 1e-6 * sigma) exact = 0;
        }
        mean /= (double)count;
        var = var / (double)count - mean * mean;
        /* standard error of the variance estimate is ~ sigma^2 * sqrt(2/count) = 0.45% */
        CHECKF(fabs(var / (sigma * sigma) - 1) < 0.03, "init %d: variance %g, expected %g", kind, var, sigma * sigma);
        CHECKF(fabs(mean) < 5 * sigma / sqrt((double)count), "init %d: mean %g", kind, mean);
        if (kind == GN_INIT_BERNOULLI) CHECKF(exact, "bernoulli weights are not all +-%g", sigma);
        free(W);
        gn_network_free(net);
    }
}

/* ------------------------------------------------------------------------------------ */
/* data                                                                                  */
/* ------------------------------------------------------------------------------------ */

static int load_data(void) {
    int64_t dims[8], nd = 0;
    CHECK_STATUS(gn_idx_dims(DATA_DIR "train-images-idx3-ubyte.gz", dims, 8, &nd), GN_OK, NULL);
    CHECK(nd == 3 && dims[0] == 60000 && dims[1] == 28 && dims[2] == 28);
    CHECK_STATUS(gn_idx_dims(DATA_DIR "t10k-labels-idx1-ubyte.gz", dims, 8, &nd), GN_OK, NULL);
    CHECK(nd == 1 && dims[0] == 10000);
    float *all = xmalloc((size_t)60000 * D_IN * sizeof *all);
    int32_t *labels = xmalloc(60000 * sizeof *labels);
    gn_status s1 = gn_idx_read_f32(DATA_DIR "train-images-idx3-ubyte.gz", 1.0f / 255, all, (int64_t)60000 * D_IN);
    gn_status s2 = gn_idx_read_i32(DATA_DIR "train-labels-idx1-ubyte.gz", labels, 60000);
    CHECK_STATUS(s1, GN_OK, NULL);
    CHECK_STATUS(s2, GN_OK, NULL);
    if (s1 != GN_OK || s2 != GN_OK) return 0;
    float lo = 1, hi = 0;
    int counts[CLASSES] = {0}, bad = 0;
    for (size_t i = 0; i < (size_t)60000 * D_IN; i++) {
        if (all[i] < lo) lo = all[i];
        if (all[i] > hi) hi = all[i];
    }
    for (int i = 0; i < 60000; i++) {
        if (labels[i] < 0 || labels[i] >= CLASSES) bad++;
        else counts[labels[i]]++;
    }
    CHECKF(lo == 0.0f && hi == 1.0f, "pixels span [%g, %g], expected [0, 1]", lo, hi);
    CHECK(bad == 0);
    for (int c = 0; c < CLASSES; c++) CHECKF(counts[c] == 6000, "class %d has %d training images", c, counts[c]);
    x_train = xmalloc((size_t)N_TRAIN * D_IN * sizeof *x_train);
    memcpy(x_train, all, (size_t)N_TRAIN * D_IN * sizeof *x_train);
    memcpy(y_train, labels, sizeof y_train);
    free(all);
    free(labels);
    /* the test subset, and the same file read uncompressed through a temporary copy */
    all = xmalloc((size_t)10000 * D_IN * sizeof *all);
    labels = xmalloc(10000 * sizeof *labels);
    s1 = gn_idx_read_f32(DATA_DIR "t10k-images-idx3-ubyte.gz", 1.0f / 255, all, (int64_t)10000 * D_IN);
    s2 = gn_idx_read_i32(DATA_DIR "t10k-labels-idx1-ubyte.gz", labels, 10000);
    CHECK_STATUS(s1, GN_OK, NULL);
    CHECK_STATUS(s2, GN_OK, NULL);
    if (s1 != GN_OK || s2 != GN_OK) return 0;
    x_test = xmalloc((size_t)N_TEST * D_IN * sizeof *x_test);
    memcpy(x_test, all, (size_t)N_TEST * D_IN * sizeof *x_test);
    memcpy(y_test, labels, sizeof y_test);
    free(all);
    free(labels);
    return 1;
}

/* Plain (uncompressed) IDX written by hand: 2 x 3 uint8 and a 1-D int32 (type 0x0C). */
static void test_idx_plain(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/plain.idx", tmp_dir);
    unsigned char u8[] = {0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 250, 251, 255};
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fwrite(u8, 1, sizeof u8, f);
    fclose(f);
    int64_t dims[4], nd = 0;
    CHECK_STATUS(gn_idx_dims(path, dims, 4, &nd), GN_OK, NULL);
    CHECK(nd == 2 && dims[0] == 2 && dims[1] == 3);
    float v[6];
    CHECK_STATUS(gn_idx_read_f32(path, 2.0f, v, 6), GN_OK, NULL);
    CHECK(v[0] == 2 && v[1] == 4 && v[2] == 6 && v[3] == 500 && v[4] == 502 && v[5] == 510);
    int32_t iv[6];
    CHECK_STATUS(gn_idx_read_i32(path, iv, 6), GN_OK, NULL);
    CHECK(iv[0] == 1 && iv[5] == 255);
    unsigned char i32[] = {0, 0, 0x0C, 1, 0, 0, 0, 2, 0xFF, 0xFF, 0xFF, 0xFE, 0, 0, 1, 0};
    f = fopen(path, "wb");
    fwrite(i32, 1, sizeof i32, f);
    fclose(f);
    CHECK_STATUS(gn_idx_read_i32(path, iv, 2), GN_OK, NULL);
    CHECKF(iv[0] == -2 && iv[1] == 256, "big-endian int32 IDX read as %d %d", iv[0], iv[1]);
    /* truncated data section */
    f = fopen(path, "wb");
    fwrite(u8, 1, sizeof u8 - 2, f);
    fclose(f);
    CHECK_STATUS(gn_idx_read_f32(path, 1.0f, v, 6), GN_ERR_CORRUPT, NULL);
    CHECK_STATUS(gn_idx_dims(DATA_DIR "no-such-file.gz", dims, 4, &nd), GN_ERR_IO, "no-such-file");
}

/* ------------------------------------------------------------------------------------ */
/* training                                                                              */
/* ------------------------------------------------------------------------------------ */

/* Trains relu_net in the parent (later sections need it). */
static void train_relu(void) {
    gn_network_spec s;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_RELU, D_IN, 2, widths, CLASSES));
    s.seed = 42;
    REQUIRE_OK(gn_network_create(&s, &relu_net));
    double acc0 = -1;
    CHECK_STATUS(gn_evaluate(relu_net, x_test, y_test, N_TEST, GN_LOSS_CROSS_ENTROPY, NULL, &acc0), GN_OK, NULL);

    gn_train_options o = default_options(3);
    progress_log log;
    memset(&log, 0, sizeof log);
    o.progress = record_progress;
    o.progress_user = &log;
    gn_epoch_metrics history[3];
    memset(history, 0x5A, sizeof history);
    unsigned char sentinel[sizeof history[2]];
    memcpy(sentinel, &history[2], sizeof sentinel);
    int64_t run = -1;
    REQUIRE_OK(gn_train(relu_net, x_train, y_train, N_TRAIN, x_test, y_test, N_TEST, &o, history, 2, &run));
    CHECKF(run == 3 && log.count == 3, "epochs run %lld, callbacks %d", (long long)run, log.count);
    for (int e = 0; e < 3 && e < log.count; e++) {
        gn_epoch_metrics *m = &log.seen[e];
        CHECKF(m->epoch == e + 1 && m->epoch_in_call == e + 1 && m->epochs_in_call == 3, "epoch %d: %lld %lld %lld",
               e, (long long)m->epoch, (long long)m->epoch_in_call, (long long)m->epochs_in_call);
        CHECKF(isfinite(m->train_loss) && m->train_loss > 0 && m->train_accuracy >= 0 && m->train_accuracy <= 1,
               "epoch %d: train loss %g acc %g", e, m->train_loss, m->train_accuracy);
        CHECKF(isfinite(m->test_loss) && m->test_accuracy >= 0 && m->test_accuracy <= 1 && m->seconds >= 0,
               "epoch %d: test loss %g acc %g seconds %g", e, m->test_loss, m->test_accuracy, m->seconds);
        if (e < 2) CHECKF(memcmp(&history[e], m, sizeof *m) == 0, "history[%d] differs from the callback", e);
    }
    CHECK(memcmp(&history[2], sentinel, sizeof sentinel) == 0); /* capacity 2: third slot untouched */
    CHECKF(log.seen[2].train_loss < log.seen[0].train_loss, "train loss did not fall: %g -> %g",
           log.seen[0].train_loss, log.seen[2].train_loss);
    double loss = NAN, acc = NAN;
    CHECK_STATUS(gn_evaluate(relu_net, x_test, y_test, N_TEST, GN_LOSS_CROSS_ENTROPY, &loss, &acc), GN_OK, NULL);
    CHECKF(acc == log.seen[2].test_accuracy && loss == log.seen[2].test_loss,
           "evaluate (%.17g, %.17g) != last epoch metrics (%.17g, %.17g)", loss, acc, log.seen[2].test_loss,
           log.seen[2].test_accuracy);
    CHECKF(acc > 0.72 && acc > acc0 + 0.4, "relu test accuracy %.3f (before training %.3f)", acc, acc0);
    printf("  relu 784-64-64-10, 3 epochs on %d images: test accuracy %.3f\n", N_TRAIN, acc);
    CHECK(info_of(relu_net).epochs_trained == 3);

    /* early stop: the callback returns nonzero after the 2nd of 5 epochs */
    memset(&log, 0, sizeof log);
    log.stop_at = 2;
    o.epochs = 5;
    run = -1;
    CHECK_STATUS(gn_train(relu_net, x_train, y_train, N_TRAIN, NULL, NULL, 0, &o, NULL, 0, &run), GN_OK, NULL);
    CHECKF(run == 2 && log.count == 2, "early stop: epochs run %lld, callbacks %d", (long long)run, log.count);
    CHECKF(log.seen[0].epoch == 4 && log.seen[1].epoch == 5 && log.seen[1].epochs_in_call == 5,
           "life-long epoch numbers %lld %lld", (long long)log.seen[0].epoch, (long long)log.seen[1].epoch);
    CHECK(isnan(log.seen[0].test_loss) && isnan(log.seen[0].test_accuracy)); /* no test set */
    CHECK(info_of(relu_net).epochs_trained == 5);
    /* the tied RELU net: predict through the head is the same computation */
    float *a = predict_alloc(relu_net, x_test, 200);
    float *b = xmalloc(200 * CLASSES * sizeof *b);
    CHECK_STATUS(gn_predict_feature_head(relu_net, x_test, 200, b, 200 * CLASSES), GN_OK, NULL);
    CHECK(t_bits_equal(a, b, 200 * CLASSES));
    free(a);
    free(b);
    check_forward_matches_reference(relu_net, "relu", 100);
}

/* Same spec, seeds and options give bit-identical training runs. */
static void test_training_reproducible(void) {
    int64_t w[1] = {32};
    gn_network *a = NULL, *b = NULL;
    gn_network_spec s;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_FIXED_RANDOM_II, D_IN, 1, w, CLASSES));
    s.seed = 3;
    REQUIRE_OK(gn_network_create(&s, &a));
    REQUIRE_OK(gn_network_create(&s, &b));
    gn_train_options o = default_options(1);
    /* a's callback calls gn_evaluate on a itself: refused with GN_ERR_BUSY (a call on a
     * network from inside its own call), so it does nothing and a trains exactly as b */
    progress_log log;
    memset(&log, 0, sizeof log);
    log.net = a;
    o.epochs = 2;
    o.progress = record_progress;
    o.progress_user = &log;
    gn_epoch_metrics hist[2];
    REQUIRE_OK(gn_train(a, x_train, y_train, 1000, x_test, y_test, N_TEST, &o, hist, 2, NULL));
    o.progress = NULL;
    REQUIRE_OK(gn_train(b, x_train, y_train, 1000, NULL, NULL, 0, &o, NULL, 0, NULL));
    CHECK(part_equal(a, b, GN_PART_VALUE));
    CHECKF(log.count == 2 && log.evaluate_status[0] == GN_ERR_BUSY && log.evaluate_status[1] == GN_ERR_BUSY &&
           isnan(log.evaluated[0]) && isnan(log.evaluated[1]),
           "evaluate of a inside its callback: %s %s, accuracy %g %g", gn_status_name(log.evaluate_status[0]),
           gn_status_name(log.evaluate_status[1]), log.evaluated[0], log.evaluated[1]);
    o.epochs = 1;
    o.shuffle_seed = 12; /* another shuffle: other weights */
    REQUIRE_OK(gn_train(a, x_train, y_train, 1000, NULL, NULL, 0, &o, NULL, 0, NULL));
    o.shuffle_seed = 11;
    REQUIRE_OK(gn_train(b, x_train, y_train, 1000, NULL, NULL, 0, &o, NULL, 0, NULL));
    CHECK(!part_equal(a, b, GN_PART_VALUE));
    gn_network_free(a);
    gn_network_free(b);
}

/* Training splits each minibatch over the calling thread and the library's worker thread.
 * Two host threads training at once (the second finds the worker busy and runs both halves
 * itself), and a fork()ed child (which runs both halves itself), give the same bits. */
typedef struct {
    gn_network *net;
    gn_status status;
} train_job;

static gn_network *fresh_decoupled(void) {
    int64_t w[2] = {48, 48};
    gn_network *net = NULL;
    gn_network_spec s;
    CHECK_STATUS(gn_network_spec_init(&s, GN_REGIME_DECOUPLED, D_IN, 2, w, CLASSES), GN_OK, NULL);
    s.seed = 21;
    CHECK_STATUS(gn_network_create(&s, &net), GN_OK, NULL);
    return net;
}

static void *train_job_run(void *arg) {
    train_job *job = arg;
    gn_train_options o = default_options(1);
    job->status = gn_train(job->net, x_train, y_train, 2000, NULL, NULL, 0, &o, NULL, 0, NULL);
    return NULL;
}

static void test_training_threads_and_fork(void) {
    train_job jobs[3];
    for (int i = 0; i < 3; i++) {
        jobs[i].net = fresh_decoupled();
        jobs[i].status = GN_ERR_INTERNAL;
        if (!jobs[i].net) return;
    }
    train_job_run(&jobs[0]);
    REQUIRE_OK(jobs[0].status);
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&threads[i], NULL, train_job_run, &jobs[i + 1]) == 0);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    for (int i = 1; i < 3; i++) {
        CHECKF(jobs[i].status == GN_OK, "thread %d: %s", i, gn_status_name(jobs[i].status));
        CHECKF(part_equal(jobs[0].net, jobs[i].net, GN_PART_VALUE) && part_equal(jobs[0].net, jobs[i].net, GN_PART_FEATURE),
               "thread %d trained other weights than the lone call", i);
    }
    float *expected = predict_alloc(jobs[0].net, x_test, N_TEST);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(120); /* a child stuck waiting for a worker that does not exist fails, not hangs */
        train_job child = {fresh_decoupled(), GN_ERR_INTERNAL};
        train_job_run(&child);
        float *got = child.status == GN_OK ? predict_alloc(child.net, x_test, N_TEST) : NULL;
        _exit(got && memcmp(got, expected, sizeof(float) * N_TEST * CLASSES) == 0 ? 0 : 1);
    }
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    free(expected);
    for (int i = 0; i < 3; i++) gn_network_free(jobs[i].net);
}

/* Two calls of one epoch equal one call of two epochs, bit for bit: the shuffle of epoch e
 * depends on (shuffle_seed, e over the network's life) and the Adam state (moments and step)
 * persists between calls with the same optimizer. */
static void test_training_resumes(void) {
    int64_t w[2] = {32, 32};
    gn_network *a = NULL, *b = NULL;
    gn_network_spec s;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_DECOUPLED, D_IN, 2, w, CLASSES));
    s.seed = 6;
    REQUIRE_OK(gn_network_create(&s, &a));
    REQUIRE_OK(gn_network_create(&s, &b));
    gn_train_options o = default_options(2);
    REQUIRE_OK(gn_train(a, x_train, y_train, 1000, NULL, NULL, 0, &o, NULL, 0, NULL));
    o.epochs = 1;
    REQUIRE_OK(gn_train(b, x_train, y_train, 1000, NULL, NULL, 0, &o, NULL, 0, NULL));
    REQUIRE_OK(gn_train(b, x_train, y_train, 1000, NULL, NULL, 0, &o, NULL, 0, NULL));
    CHECK(part_equal(a, b, GN_PART_VALUE) && part_equal(a, b, GN_PART_FEATURE));
    CHECK(info_of(a).epochs_trained == 2 && info_of(b).epochs_trained == 2);
    gn_network_free(a);
    gn_network_free(b);
}

/* The interrupt callback (polled about every 0.1 s) cancels training: GN_ERR_CANCELLED, and
 * the network is exactly as after its last completed epoch, bit for bit equal to a network
 * trained for that many epochs. It is armed by the progress callback after the first epoch. */
typedef struct {
    int armed, polls;
} interrupt_state;

static int arm_after_epoch(const gn_epoch_metrics *m, void *user) {
    (void)m;
    ((interrupt_state *)user)->armed = 1;
    return 0;
}

static int interrupt_when_armed(void *user) {
    interrupt_state *st = user;
    st->polls++;
    return st->armed;
}

static void test_interrupt(void) {
    int64_t w[1] = {32};
    gn_network_spec s;
    gn_network *net = NULL, *ref = NULL;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_FIXED_RANDOM_II, D_IN, 1, w, CLASSES));
    s.seed = 14;
    REQUIRE_OK(gn_network_create(&s, &net));
    REQUIRE_OK(gn_network_create(&s, &ref));
    gn_train_options o = default_options(500);
    o.batch_size = 8;
    interrupt_state st = {0, 0};
    o.progress = arm_after_epoch;
    o.interrupt = interrupt_when_armed;
    o.progress_user = &st;
    int64_t run = -1;
    gn_epoch_metrics hist[4];
    CHECK_STATUS(gn_train(net, x_train, y_train, N_TRAIN, NULL, NULL, 0, &o, hist, 4, &run), GN_ERR_CANCELLED,
                 "interrupted");
    int64_t done = info_of(net).epochs_trained;
    CHECKF(done >= 1 && done < 500 && run == done && st.polls >= 1, "cancelled after %lld epochs (epochs_run %lld, %d polls)",
           (long long)done, (long long)run, st.polls);
    o.progress = NULL;
    o.interrupt = NULL;
    o.epochs = done;
    REQUIRE_OK(gn_train(ref, x_train, y_train, N_TRAIN, NULL, NULL, 0, &o, NULL, 0, NULL));
    CHECK(info_of(ref).epochs_trained == done);
    /* same weights and optimizer moments: one more epoch on both stays equal */
    o.epochs = 1;
    REQUIRE_OK(gn_train(net, x_train, y_train, 500, NULL, NULL, 0, &o, NULL, 0, NULL));
    REQUIRE_OK(gn_train(ref, x_train, y_train, 500, NULL, NULL, 0, &o, NULL, 0, NULL));
    CHECKF(part_equal(net, ref, GN_PART_VALUE), "after cancellation in epoch %lld, weights differ from %lld clean epochs",
           (long long)done + 1, (long long)done);
    gn_network_free(net);
    gn_network_free(ref);
}

/* SGD with momentum, the squared loss and weight decay all train; decay shrinks weights. */
static void test_optimizers_and_losses(void) {
    int64_t w[1] = {64};
    gn_network_spec s;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_FIXED_RANDOM_II, D_IN, 1, w, CLASSES));
    s.seed = 12;
    double norms[2] = {0, 0};
    for (int k = 0; k < 4; k++) {
        gn_network *net = NULL;
        REQUIRE_OK(gn_network_create(&s, &net));
        gn_train_options o = default_options(2);
        const char *what = "adam + squared loss";
        if (k == 0) o.loss = GN_LOSS_SQUARED;
        if (k == 1) o.optimizer = GN_OPTIMIZER_SGD, o.learning_rate = 0.05f, o.momentum = 0.0f, what = "sgd, no momentum";
        if (k >= 2) o.optimizer = GN_OPTIMIZER_SGD, o.learning_rate = 0.01f, o.momentum = 0.9f, o.weight_decay = k == 3 ? 0.5f : 0.0f,
                    what = k == 3 ? "sgd, weight decay 0.5" : "sgd, no weight decay";
        double acc = 0;
        CHECK_STATUS(gn_train(net, x_train, y_train, N_TRAIN, NULL, NULL, 0, &o, NULL, 0, NULL), GN_OK, NULL);
        CHECK_STATUS(gn_evaluate(net, x_test, y_test, N_TEST, o.loss, NULL, &acc), GN_OK, NULL);
        /* chance is 0.1; the squared loss learns slower, and decay 0.5 costs accuracy */
        CHECKF(acc > (k == 3 ? 0.3 : k == 0 ? 0.5 : 0.6), "%s: test accuracy %.3f", what, acc);
        printf("  fixed_random_ii 784-64-10, %s: test accuracy %.3f\n", what, acc);
        if (k >= 2) {
            float *v = weights_of(net, GN_PART_VALUE, 0, NULL, NULL);
            for (int i = 0; i < 64 * D_IN; i++) norms[k - 2] += (double)v[i] * v[i];
            free(v);
        }
        gn_network_free(net);
    }
    CHECKF(norms[1] < 0.8 * norms[0], "weight decay 0.5: squared norm %g, without decay %g", norms[1], norms[0]);
}

/* A custom DGN with its own feature head: train_feature_head trains the feature net as a
 * standard ReLU net and leaves the value net alone; DGN training with hard gates cannot move
 * the feature net (no gradient through a step function). */
static void test_feature_head(void) {
    gn_network_spec s;
    gn_network *net = NULL;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_CUSTOM, D_IN, 2, widths, CLASSES));
    s.feature_head = 1;
    s.seed = 13;
    REQUIRE_OK(gn_network_create(&s, &net));
    gn_network_info info = info_of(net);
    CHECK(info.feature_head == 1 && info.tied == 0 && info.parameter_count == 2 * (D_IN * 64 + 64 * 64 + 64 * 10));
    float *v0 = weights_of(net, GN_PART_VALUE, 0, NULL, NULL), *f0 = weights_of(net, GN_PART_FEATURE, 2, NULL, NULL);
    gn_train_options o = default_options(2);
    o.train_feature_head = 1;
    REQUIRE_OK(gn_train(net, x_train, y_train, N_TRAIN, NULL, NULL, 0, &o, NULL, 0, NULL));
    float *v1 = weights_of(net, GN_PART_VALUE, 0, NULL, NULL), *f1 = weights_of(net, GN_PART_FEATURE, 2, NULL, NULL);
    CHECK(t_bits_equal(v0, v1, 64 * D_IN) && !t_bits_equal(f0, f1, 64 * CLASSES));
    float *out = xmalloc((size_t)N_TEST * CLASSES * sizeof *out);
    CHECK_STATUS(gn_predict_feature_head(net, x_test, N_TEST, out, N_TEST * CLASSES), GN_OK, NULL);
    int correct = 0;
    for (int i = 0; i < N_TEST; i++) {
        int best = 0;
        for (int c = 1; c < CLASSES; c++)
            if (out[i * CLASSES + c] > out[i * CLASSES + best]) best = c;
        correct += best == y_test[i];
    }
    CHECKF(correct > 0.72 * N_TEST, "feature head accuracy %.3f", (double)correct / N_TEST);
    printf("  custom DGN, feature net trained through its head: test accuracy %.3f\n", (double)correct / N_TEST);
    float *g0 = weights_of(net, GN_PART_FEATURE, 0, NULL, NULL);
    o.train_feature_head = 0;
    REQUIRE_OK(gn_train(net, x_train, y_train, N_TRAIN, NULL, NULL, 0, &o, NULL, 0, NULL));
    float *g1 = weights_of(net, GN_PART_FEATURE, 0, NULL, NULL), *v2 = weights_of(net, GN_PART_VALUE, 0, NULL, NULL);
    CHECK(t_bits_equal(g0, g1, 64 * D_IN) && !t_bits_equal(v1, v2, 64 * D_IN));
    free(v0), free(v1), free(v2), free(f0), free(f1), free(g0), free(g1), free(out);
    gn_network_free(net);
}

/* FIXED_LEARNT from the trained relu net (built in the parent). */
static void train_fixed_learnt(void) {
    if (!relu_net) return;
    gn_network_spec s;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_FIXED_LEARNT, D_IN, 2, widths, CLASSES));
    s.gate_source = relu_net;
    s.seed = 43;
    REQUIRE_OK(gn_network_create(&s, &learnt_net));
    gn_network_info info = info_of(learnt_net);
    CHECK(info.feature_frozen == 1 && info.value_frozen == 0 && info.tied == 0);
    for (int64_t l = 0; l < 2; l++) {
        float *a = weights_of(relu_net, GN_PART_FEATURE, l, NULL, NULL);
        float *b = weights_of(learnt_net, GN_PART_FEATURE, l, NULL, NULL);
        CHECKF(a && b && t_bits_equal(a, b, (size_t)(widths[l] * (l ? widths[l - 1] : D_IN))),
               "layer %lld: feature weights not copied", (long long)l);
        free(a);
        free(b);
    }
    float *before[2];
    for (int64_t l = 0; l < 2; l++) before[l] = weights_of(learnt_net, GN_PART_FEATURE, l, NULL, NULL);
    float *value_before = weights_of(learnt_net, GN_PART_VALUE, 0, NULL, NULL);
    gn_train_options o = default_options(3);
    double acc = 0;
    REQUIRE_OK(gn_train(learnt_net, x_train, y_train, N_TRAIN, NULL, NULL, 0, &o, NULL, 0, NULL));
    CHECK_STATUS(gn_evaluate(learnt_net, x_test, y_test, N_TEST, GN_LOSS_CROSS_ENTROPY, NULL, &acc), GN_OK, NULL);
    CHECKF(acc > 0.70, "fixed_learnt test accuracy %.3f", acc);
    printf("  fixed_learnt from it, 3 epochs: test accuracy %.3f\n", acc);
    for (int64_t l = 0; l < 2; l++) {
        float *after = weights_of(learnt_net, GN_PART_FEATURE, l, NULL, NULL);
        CHECKF(t_bits_equal(before[l], after, (size_t)(widths[l] * (l ? widths[l - 1] : D_IN))),
               "frozen feature layer %lld changed in training", (long long)l);
        free(after);
        free(before[l]);
    }
    float *value_after = weights_of(learnt_net, GN_PART_VALUE, 0, NULL, NULL);
    CHECK(!t_bits_equal(value_before, value_after, (size_t)(64 * D_IN)));
    free(value_before);
    free(value_after);
    /* gates equal the relu net's gates exactly, before and after training */
    float *ga = xmalloc((size_t)N_TEST * 64 * sizeof *ga), *gb = xmalloc((size_t)N_TEST * 64 * sizeof *gb);
    for (int64_t l = 0; l < 2; l++) {
        CHECK_STATUS(gn_gates(relu_net, x_test, N_TEST, l, ga, N_TEST * 64), GN_OK, NULL);
        CHECK_STATUS(gn_gates(learnt_net, x_test, N_TEST, l, gb, N_TEST * 64), GN_OK, NULL);
        CHECKF(t_bits_equal(ga, gb, (size_t)N_TEST * 64), "layer %lld: fixed_learnt gates != relu gates",
               (long long)l);
    }
    free(ga);
    free(gb);
    check_forward_matches_reference(learnt_net, "fixed_learnt", 100);
}

/* Every other regime trains on the subset and beats chance by far; frozen parts stay put,
 * trained feature nets move. */
static void test_regimes_train(void) {
    const gn_regime regimes[] = {GN_REGIME_FIXED_RANDOM_II, GN_REGIME_FIXED_RANDOM_DI, GN_REGIME_DECOUPLED,
                                 GN_REGIME_DLGN, GN_REGIME_DLGN_PWC};
    const char *names[] = {"fixed_random_ii", "fixed_random_di", "decoupled", "dlgn", "dlgn_pwc"};
    const double min_acc[] = {0.6, 0.6, 0.6, 0.6, 0.3};
    for (int i = 0; i < 5; i++) {
        gn_network_spec s;
        gn_network *net = NULL;
        REQUIRE_OK(gn_network_spec_init(&s, regimes[i], D_IN, 2, widths, CLASSES));
        s.seed = 100 + (uint64_t)i;
        REQUIRE_OK(gn_network_create(&s, &net));
        float *f0 = weights_of(net, GN_PART_FEATURE, 0, NULL, NULL);
        gn_train_options o = default_options(2);
        gn_epoch_metrics hist[2];
        int64_t run = 0;
        CHECK_STATUS(gn_train(net, x_train, y_train, N_TRAIN, x_test, y_test, N_TEST, &o, hist, 2, &run), GN_OK,
                     NULL);
        CHECKF(run == 2 && hist[1].test_accuracy > min_acc[i], "%s: %lld epochs, test accuracy %.3f", names[i],
               (long long)run, run == 2 ? hist[1].test_accuracy : -1.0);
        printf("  %s, 2 epochs: test accuracy %.3f\n", names[i], run == 2 ? hist[1].test_accuracy : -1.0);
        float *f1 = weights_of(net, GN_PART_FEATURE, 0, NULL, NULL);
        int frozen = regimes[i] == GN_REGIME_FIXED_RANDOM_II || regimes[i] == GN_REGIME_FIXED_RANDOM_DI;
        CHECKF(t_bits_equal(f0, f1, 64 * D_IN) == frozen, "%s: feature weights %s", names[i],
               frozen ? "changed although frozen" : "did not train");
        free(f0);
        free(f1);
        check_forward_matches_reference(net, names[i], 50);
        if (regimes[i] == GN_REGIME_DLGN) { /* soft gates sigmoid(beta * q) of a linear feature net */
            double *g[2] = {xmalloc(20 * 64 * sizeof(double)), xmalloc(20 * 64 * sizeof(double))};
            double y[20 * CLASSES];
            float got[20 * 64];
            reference_forward(net, x_test, 20, y, g, NULL);
            for (int64_t l = 0; l < 2; l++) {
                CHECK_STATUS(gn_gates(net, x_test, 20, l, got, 20 * 64), GN_OK, NULL);
                double worst = 0;
                for (int k = 0; k < 20 * 64; k++) worst = fmax(worst, fabs(got[k] - g[l][k]));
                CHECKF(worst < 1e-4, "dlgn layer %lld: gates differ from sigmoid(beta q) by %g", (long long)l, worst);
            }
            free(g[0]);
            free(g[1]);
            uint64_t words[20];
            CHECK_STATUS(gn_gates_packed(net, x_test, 20, 0, words, 20), GN_ERR_UNSUPPORTED, NULL);
        }
        gn_network_free(net);
    }
}

/* Freezing and copying feature weights through the API. */
static void test_freeze_and_copy(void) {
    int64_t w[2] = {16, 16};
    gn_network_spec s;
    gn_network *net = NULL, *src = NULL;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_DECOUPLED, D_IN, 2, w, CLASSES));
    s.seed = 9;
    REQUIRE_OK(gn_network_create(&s, &net));
    s.seed = 10;
    REQUIRE_OK(gn_network_create(&s, &src));
    gn_train_options o = default_options(1);
    CHECK_STATUS(gn_network_set_frozen(net, GN_PART_VALUE, 1), GN_OK, NULL);
    CHECK(info_of(net).value_frozen == 1);
    float *v0 = weights_of(net, GN_PART_VALUE, 2, NULL, NULL), *f0 = weights_of(net, GN_PART_FEATURE, 0, NULL, NULL);
    CHECK_STATUS(gn_train(net, x_train, y_train, 500, NULL, NULL, 0, &o, NULL, 0, NULL), GN_OK, NULL);
    float *v1 = weights_of(net, GN_PART_VALUE, 2, NULL, NULL), *f1 = weights_of(net, GN_PART_FEATURE, 0, NULL, NULL);
    CHECK(t_bits_equal(v0, v1, 16 * CLASSES) && !t_bits_equal(f0, f1, 16 * D_IN));
    CHECK_STATUS(gn_network_set_frozen(net, GN_PART_FEATURE, 1), GN_OK, NULL);
    CHECK_STATUS(gn_train(net, x_train, y_train, 500, NULL, NULL, 0, &o, NULL, 0, NULL), GN_ERR_UNSUPPORTED, NULL);
    CHECK_STATUS(gn_network_set_frozen(net, GN_PART_VALUE, 0), GN_OK, NULL);
    CHECK(info_of(net).value_frozen == 0 && info_of(net).feature_frozen == 1);
    /* copy src's feature weights in, frozen: gates now equal src's */
    CHECK_STATUS(gn_network_copy_feature_weights(net, src, 1), GN_OK, NULL);
    CHECK(part_equal(net, src, GN_PART_FEATURE) && info_of(net).feature_frozen == 1);
    float ga[50 * 16], gb[50 * 16];
    CHECK_STATUS(gn_gates(net, x_test, 50, 1, ga, 50 * 16), GN_OK, NULL);
    CHECK_STATUS(gn_gates(src, x_test, 50, 1, gb, 50 * 16), GN_OK, NULL);
    CHECK(t_bits_equal(ga, gb, 50 * 16));
    /* set_weights round trip */
    float *w1 = weights_of(src, GN_PART_VALUE, 1, NULL, NULL);
    CHECK_STATUS(gn_network_set_weights(net, GN_PART_VALUE, 1, w1, 16 * 16), GN_OK, NULL);
    float *w2 = weights_of(net, GN_PART_VALUE, 1, NULL, NULL);
    CHECK(t_bits_equal(w1, w2, 16 * 16));
    free(v0), free(v1), free(f0), free(f1), free(w1), free(w2);
    gn_network_free(net);
    gn_network_free(src);
}

/* ------------------------------------------------------------------------------------ */
/* prediction and evaluation agree                                                      */
/* ------------------------------------------------------------------------------------ */

static void test_predict_consistency(void) {
    const gn_network *nets[2] = {relu_net, learnt_net};
    for (int k = 0; k < 2; k++) {
        const gn_network *net = nets[k];
        if (!net) continue;
        float *logits = predict_alloc(net, x_test, N_TEST);
        int32_t classes[N_TEST];
        CHECK_STATUS(gn_predict_classes(net, x_test, N_TEST, classes, N_TEST), GN_OK, NULL);
        int agree = 1, correct = 0;
        double ce = 0, sq = 0;
        for (int i = 0; i < N_TEST; i++) {
            const float *z = logits + i * CLASSES;
            int best = 0;
            double mx = z[0];
            for (int c = 1; c < CLASSES; c++)
                if (z[c] > z[best]) best = c;
            for (int c = 1; c < CLASSES; c++) mx = fmax(mx, z[c]);
            double sum = 0;
            for (int c = 0; c < CLASSES; c++) {
                sum += exp(z[c] - mx);
                double t = c == y_test[i] ? 1.0 : 0.0;
                sq += 0.5 * (z[c] - t) * (z[c] - t);
            }
            ce += -(z[y_test[i]] - mx - log(sum));
            if (best != classes[i]) agree = 0;
            if (classes[i] == y_test[i]) correct++;
        }
        ce /= N_TEST;
        sq /= N_TEST;
        CHECKF(agree, "net %d: predict_classes is not the arg-max of predict", k);
        double loss, acc;
        CHECK_STATUS(gn_evaluate(net, x_test, y_test, N_TEST, GN_LOSS_CROSS_ENTROPY, &loss, &acc), GN_OK, NULL);
        CHECKF(acc == (double)correct / N_TEST, "net %d: evaluate accuracy %.6f, from classes %.6f", k, acc,
               (double)correct / N_TEST);
        CHECKF(fabs(loss - ce) < 1e-4 * (1 + ce), "net %d: cross-entropy %.7f, recomputed %.7f", k, loss, ce);
        CHECK_STATUS(gn_evaluate(net, x_test, y_test, N_TEST, GN_LOSS_SQUARED, &loss, NULL), GN_OK, NULL);
        CHECKF(fabs(loss - sq) < 1e-4 * (1 + sq), "net %d: squared loss %.7f, recomputed %.7f", k, loss, sq);
        /* predicting a batch row by row, or in one call, gives the same bits */
        float one[CLASSES];
        int rows_same = 1;
        for (int i = 0; i < 64; i++) {
            CHECK_STATUS(gn_predict(net, x_test + i * D_IN, 1, one, CLASSES), GN_OK, NULL);
            if (t_max_rel_diff(one, logits + i * CLASSES, CLASSES) > 1e-5) rows_same = 0;
        }
        CHECK(rows_same);
        free(logits);
    }
    /* output_size 1: class is 1 iff output > 0; squared loss uses targets -1/+1 */
    int64_t w[1] = {8};
    gn_network_spec s;
    gn_network *bin = NULL;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_FIXED_RANDOM_II, D_IN, 1, w, 1));
    s.seed = 77;
    REQUIRE_OK(gn_network_create(&s, &bin));
    float out[100];
    int32_t cls[100], yb[100];
    CHECK_STATUS(gn_predict(bin, x_test, 100, out, 100), GN_OK, NULL);
    CHECK_STATUS(gn_predict_classes(bin, x_test, 100, cls, 100), GN_OK, NULL);
    int ok = 1;
    double sq = 0, correct = 0;
    for (int i = 0; i < 100; i++) {
        yb[i] = y_test[i] % 2;
        if (cls[i] != (out[i] > 0)) ok = 0;
        double t = yb[i] ? 1.0 : -1.0;
        sq += 0.5 * (out[i] - t) * (out[i] - t);
        correct += cls[i] == yb[i];
    }
    CHECK(ok);
    double loss, acc;
    CHECK_STATUS(gn_evaluate(bin, x_test, yb, 100, GN_LOSS_SQUARED, &loss, &acc), GN_OK, NULL);
    CHECKF(fabs(loss - sq / 100) < 1e-4 * (1 + sq / 100) && acc == correct / 100, "binary: loss %g vs %g, acc %g vs %g",
           loss, sq / 100, acc, correct / 100);
    gn_network_free(bin);
}

/* ------------------------------------------------------------------------------------ */
/* gates                                                                                 */
/* ------------------------------------------------------------------------------------ */

static void test_gates_packed(void) {
    int64_t w[2] = {100, 64}; /* 100: two words with 28 unused bits; 64: exactly one word */
    gn_network_spec s;
    gn_network *net = NULL;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_FIXED_RANDOM_II, D_IN, 2, w, CLASSES));
    s.seed = 8;
    REQUIRE_OK(gn_network_create(&s, &net));
    const int64_t n = 300;
    for (int64_t l = 0; l < 2; l++) {
        int64_t wpr = 0;
        CHECK_STATUS(gn_gates_packed_words(net, l, &wpr), GN_OK, NULL);
        CHECKF(wpr == (w[l] + 63) / 64, "layer %lld: %lld words per row", (long long)l, (long long)wpr);
        float *g = xmalloc((size_t)(n * w[l]) * sizeof *g);
        uint64_t *p = xmalloc((size_t)(n * wpr + 1) * sizeof *p);
        p[n * wpr] = 0xDEADBEEFCAFEF00Dull;
        CHECK_STATUS(gn_gates(net, x_test, n, l, g, n * w[l]), GN_OK, NULL);
        CHECK_STATUS(gn_gates_packed(net, x_test, n, l, p, n * wpr), GN_OK, NULL);
        int same = 1, binary = 1, high_clear = 1;
        int64_t ones = 0;
        for (int64_t i = 0; i < n; i++) {
            for (int64_t j = 0; j < w[l]; j++) {
                float v = g[i * w[l] + j];
                if (v != 0.0f && v != 1.0f) binary = 0;
                int bit = (int)((p[i * wpr + j / 64] >> (j % 64)) & 1u);
                if (bit != (v == 1.0f)) same = 0;
                ones += bit;
            }
            for (int64_t j = w[l]; j < wpr * 64; j++)
                if ((p[i * wpr + j / 64] >> (j % 64)) & 1u) high_clear = 0;
        }
        CHECKF(binary && same && high_clear, "layer %lld: binary %d, packed == float %d, high bits clear %d",
               (long long)l, binary, same, high_clear);
        CHECKF(ones > n * w[l] / 10 && ones < n * w[l] * 9 / 10, "layer %lld: %lld of %lld gates on", (long long)l,
               (long long)ones, (long long)(n * w[l]));
        CHECK(p[n * wpr] == 0xDEADBEEFCAFEF00Dull); /* nothing written past the capacity */
        free(g);
        free(p);
    }
    gn_network_free(net);
}

/* ------------------------------------------------------------------------------------ */
/* kernels                                                                               */
/* ------------------------------------------------------------------------------------ */

/* All five kernel kinds against plain C products of gn_gates and the inputs. */
static void check_kernels_against_gates(const gn_network *net, const char *what) {
    enum { NA = 9, NB = 6 };
    gn_network_info info = info_of(net);
    const int64_t h = info.n_hidden;
    const float *xa = x_test, *xb = x_test + 100 * D_IN;
    double sigma[NA][NB], lambda[NA][NB], normal[NA][NB], base0[NA][NB];
    for (int i = 0; i < NA; i++)
        for (int j = 0; j < NB; j++) {
            double s = 0;
            for (int k = 0; k < D_IN; k++)
                s += info.value_input == GN_VALUE_INPUT_ONES ? 1.0 : (double)xa[i * D_IN + k] * xb[j * D_IN + k];
            sigma[i][j] = s;
            lambda[i][j] = normal[i][j] = 1;
        }
    for (int64_t l = 0; l < h; l++) {
        int64_t wl;
        gn_network_hidden_width(net, l, &wl);
        float *ga = xmalloc((size_t)(NA * wl) * sizeof *ga), *gb = xmalloc((size_t)(NB * wl) * sizeof *gb);
        CHECK_STATUS(gn_gates(net, xa, NA, l, ga, NA * wl), GN_OK, NULL);
        CHECK_STATUS(gn_gates(net, xb, NB, l, gb, NB * wl), GN_OK, NULL);
        for (int i = 0; i < NA; i++)
            for (int j = 0; j < NB; j++) {
                double s = 0;
                for (int64_t k = 0; k < wl; k++) s += (double)ga[i * wl + k] * gb[j * wl + k];
                lambda[i][j] *= s;
                normal[i][j] *= s / (double)wl;
                if (l == 0) base0[i][j] = s / (double)wl;
            }
        free(ga);
        free(gb);
    }
    const gn_kernel_kind kinds[5] = {GN_KERNEL_INPUT_GRAM, GN_KERNEL_BASE, GN_KERNEL_OVERLAP, GN_KERNEL_NPK,
                                     GN_KERNEL_NPK_NORMALIZED};
    for (int k = 0; k < 5; k++) {
        float out[NA * NB];
        CHECK_STATUS(gn_kernel(net, kinds[k], 0, xa, NA, xb, NB, out, NB, NA * NB), GN_OK, NULL);
        double worst = 0, scale = 0;
        for (int i = 0; i < NA; i++)
            for (int j = 0; j < NB; j++) {
                double ref = kinds[k] == GN_KERNEL_INPUT_GRAM ? sigma[i][j]
                             : kinds[k] == GN_KERNEL_BASE     ? base0[i][j]
                             : kinds[k] == GN_KERNEL_OVERLAP  ? lambda[i][j]
                             : kinds[k] == GN_KERNEL_NPK      ? sigma[i][j] * lambda[i][j]
                                                              : sigma[i][j] * normal[i][j];
                scale = fmax(scale, fabs(ref));
                worst = fmax(worst, fabs(out[i * NB + j] - ref));
            }
        CHECKF(worst <= 1e-5 * scale + 1e-30, "%s kernel %d: max error %g at scale %g", what, k, worst, scale);
    }
}

static void test_kernels(void) {
    if (relu_net) check_kernels_against_gates(relu_net, "relu");
    if (learnt_net) check_kernels_against_gates(learnt_net, "fixed_learnt");
    /* soft gates, ones input, permuted layers */
    int64_t w[3] = {12, 12, 12}, perm[3] = {2, 0, 1};
    gn_network_spec s;
    gn_network *pwc = NULL, *permuted = NULL, *plain = NULL;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_DLGN_PWC, D_IN, 3, w, CLASSES));
    s.seed = 21;
    REQUIRE_OK(gn_network_create(&s, &pwc));
    check_kernels_against_gates(pwc, "dlgn_pwc");
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_CUSTOM, D_IN, 3, w, CLASSES));
    s.seed = 22;
    REQUIRE_OK(gn_network_create(&s, &plain));
    s.permutation = perm;
    REQUIRE_OK(gn_network_create(&s, &permuted));
    int64_t got[3];
    CHECK_STATUS(gn_network_permutation(permuted, got, 3), GN_OK, NULL);
    CHECK(got[0] == 2 && got[1] == 0 && got[2] == 1);
    check_kernels_against_gates(permuted, "permuted");
    check_forward_matches_reference(permuted, "permuted", 50);
    /* MATH.md 7.4: permuting layers leaves prod_l B_l (and the NPK) unchanged */
    float a[8 * 8], b[8 * 8];
    CHECK_STATUS(gn_kernel(plain, GN_KERNEL_NPK_NORMALIZED, 0, x_test, 8, x_test, 8, a, 8, 64), GN_OK, NULL);
    CHECK_STATUS(gn_kernel(permuted, GN_KERNEL_NPK_NORMALIZED, 0, x_test, 8, x_test, 8, b, 8, 64), GN_OK, NULL);
    CHECK(t_max_rel_diff(a, b, 64) < 1e-6);
    gn_network_free(pwc);
    gn_network_free(plain);
    gn_network_free(permuted);
}

/* The symmetric call (same pointer and n) equals the general one on a copy; n > 512 crosses
 * the tile size, so mirrored tiles are compared too. ld_out > n_b leaves the padding alone. */
static void test_kernel_symmetric_and_ld(void) {
    if (!relu_net) return;
    enum { N = 600, PAD = 3 };
    float *copy = xmalloc((size_t)N * D_IN * sizeof *copy);
    memcpy(copy, x_test, (size_t)N * D_IN * sizeof *copy);
    float *sym = xmalloc((size_t)N * N * sizeof *sym), *gen = xmalloc((size_t)N * N * sizeof *gen);
    for (int kind = GN_KERNEL_OVERLAP; kind <= GN_KERNEL_NPK_NORMALIZED; kind++) {
        CHECK_STATUS(gn_kernel(relu_net, (gn_kernel_kind)kind, 0, x_test, N, x_test, N, sym, N, (int64_t)N * N), GN_OK,
                     NULL);
        CHECK_STATUS(gn_kernel(relu_net, (gn_kernel_kind)kind, 0, x_test, N, copy, N, gen, N, (int64_t)N * N), GN_OK,
                     NULL);
        CHECKF(t_max_rel_diff(sym, gen, (size_t)N * N) < 1e-5, "kind %d: symmetric differs from general by %g", kind,
               t_max_rel_diff(sym, gen, (size_t)N * N));
        int mirrored = 1, diag_positive = 1;
        for (int i = 0; i < N; i++) {
            if (!(sym[i * N + i] > 0)) diag_positive = 0;
            for (int j = 0; j < i; j++)
                if (sym[i * N + j] != sym[j * N + i]) mirrored = 0;
        }
        CHECKF(mirrored && diag_positive, "kind %d: symmetric output mirrored %d, positive diagonal %d", kind, mirrored,
               diag_positive);
    }
    /* leading dimension: n_a x n_b into rows of N_B + PAD, the minimal capacity, sentinels around */
    enum { NA = 7, NB = 5, LD = NB + PAD };
    const float sentinel = -12345.5f;
    float tight[NA * NB], padded[NA * LD + 4];
    for (size_t i = 0; i < sizeof padded / sizeof padded[0]; i++) padded[i] = sentinel;
    int64_t cap = (NA - 1) * LD + NB;
    CHECK_STATUS(gn_kernel(relu_net, GN_KERNEL_NPK, 0, x_test, NA, copy + 50 * D_IN, NB, tight, NB, NA * NB), GN_OK,
                 NULL);
    CHECK_STATUS(gn_kernel(relu_net, GN_KERNEL_NPK, 0, x_test, NA, copy + 50 * D_IN, NB, padded, LD, cap), GN_OK, NULL);
    int values = 1, pad_ok = 1;
    for (int i = 0; i < NA; i++)
        for (int j = 0; j < LD; j++) {
            if (j < NB && padded[i * LD + j] != tight[i * NB + j]) values = 0;
            if (j >= NB && i * LD + j < cap + 4 && padded[i * LD + j] != sentinel) pad_ok = 0;
        }
    for (int64_t i = cap; i < (int64_t)(sizeof padded / sizeof padded[0]); i++)
        if (padded[i] != sentinel) pad_ok = 0;
    CHECK(values && pad_ok);
    /* the symmetric path with padding, against the general path on the copy */
    float sym_pad[NA * LD], general[NA * NA];
    CHECK_STATUS(gn_kernel(relu_net, GN_KERNEL_NPK, 0, x_test, NA, copy, NA, general, NA, NA * NA), GN_OK, NULL);
    for (int i = 0; i < NA * LD; i++) sym_pad[i] = sentinel;
    CHECK_STATUS(gn_kernel(relu_net, GN_KERNEL_NPK, 0, x_test, NA, x_test, NA, sym_pad, LD, NA * LD), GN_OK, NULL);
    int sym_ok = 1;
    for (int i = 0; i < NA; i++)
        for (int j = NA; j < LD; j++)
            if (sym_pad[i * LD + j] != sentinel) sym_ok = 0;
    for (int i = 0; i < NA; i++)
        for (int j = 0; j < NA; j++)
            if (fabsf(sym_pad[i * LD + j] - general[i * NA + j]) > 1e-5f * fabsf(general[i * NA + j])) sym_ok = 0;
    CHECK(sym_ok);
    free(copy);
    free(sym);
    free(gen);
}

/* MATH.md 7.1 and 7.2 on a tiny net: output = <phi_x, v> over explicitly enumerated paths and
 * NPK = Gram matrix of the path features. */
static void test_path_enumeration(void) {
    enum { DI = 3, W1 = 3, W2 = 3, K = 2, N = 5 };
    int64_t w[2] = {W1, W2}, perm[2] = {1, 0};
    gn_network_spec s;
    gn_network *net = NULL;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_CUSTOM, DI, 2, w, K));
    s.permutation = perm;
    s.seed = 31;
    REQUIRE_OK(gn_network_create(&s, &net));
    float x[N * DI];
    for (int i = 0; i < N * DI; i++) x[i] = (float)sin(1.3 * i + 0.2);
    float *V1 = weights_of(net, GN_PART_VALUE, 0, NULL, NULL), *V2 = weights_of(net, GN_PART_VALUE, 1, NULL, NULL),
          *V3 = weights_of(net, GN_PART_VALUE, 2, NULL, NULL);
    float g1[N * W1], g2[N * W2], y[N * K], npk[N * N];
    REQUIRE_OK(gn_gates(net, x, N, 0, g1, N * W1));
    REQUIRE_OK(gn_gates(net, x, N, 1, g2, N * W2));
    REQUIRE_OK(gn_predict(net, x, N, y, N * K));
    REQUIRE_OK(gn_kernel(net, GN_KERNEL_NPK, 0, x, N, x, N, npk, N, N * N));
    /* value layer 0 is gated by feature layer perm[0] = 1, value layer 1 by feature layer 0 */
    double phi[N][DI * W1 * W2];
    double worst_y = 0, worst_k = 0;
    for (int n = 0; n < N; n++) {
        double yy[K] = {0, 0};
        for (int i = 0; i < DI; i++)
            for (int j = 0; j < W1; j++)
                for (int k = 0; k < W2; k++) {
                    double act = g2[n * W2 + j] * g1[n * W1 + k];
                    phi[n][(i * W1 + j) * W2 + k] = x[n * DI + i] * act;
                    for (int c = 0; c < K; c++)
                        yy[c] += x[n * DI + i] * act * V1[j * DI + i] * V2[k * W1 + j] * V3[c * W2 + k];
                }
        for (int c = 0; c < K; c++) worst_y = fmax(worst_y, fabs(yy[c] - y[n * K + c]));
    }
    for (int a = 0; a < N; a++)
        for (int b = 0; b < N; b++) {
            double s = 0;
            for (int p = 0; p < DI * W1 * W2; p++) s += phi[a][p] * phi[b][p];
            worst_k = fmax(worst_k, fabs(s - npk[a * N + b]));
        }
    CHECKF(worst_y < 1e-5, "output vs path sum: max error %g", worst_y);
    CHECKF(worst_k < 1e-5, "NPK vs Gram of path features: max error %g", worst_k);
    free(V1), free(V2), free(V3);
    gn_network_free(net);
}

/* ------------------------------------------------------------------------------------ */
/* persistence                                                                           */
/* ------------------------------------------------------------------------------------ */

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = xmalloc((size_t)len);
    *size = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}

static void write_file(const char *path, const unsigned char *buf, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(buf, 1, size, f);
    fclose(f);
}

static void check_same_network(const gn_network *a, const gn_network *b, const char *what) {
    gn_network_info ia = info_of(a), ib = info_of(b);
    CHECKF(memcmp(&ia, &ib, sizeof ia) == 0, "%s: info differs", what);
    CHECKF(part_equal(a, b, GN_PART_FEATURE) && part_equal(a, b, GN_PART_VALUE), "%s: weights differ", what);
    float *pa = predict_alloc(a, x_test, 200), *pb = predict_alloc(b, x_test, 200);
    CHECKF(t_bits_equal(pa, pb, (size_t)200 * ia.output_size), "%s: predictions differ", what);
    free(pa);
    free(pb);
    char da[512], db[512];
    gn_network_describe(a, da, sizeof da, NULL);
    gn_network_describe(b, db, sizeof db, NULL);
    CHECKF(strcmp(da, db) == 0, "%s: describe \"%.200s\" vs \"%.200s\"", what, da, db);
}

static void test_save_load(void) {
    const gn_network *nets[2] = {relu_net, learnt_net};
    char path[128];
    snprintf(path, sizeof path, "%s/net.gdn", tmp_dir);
    for (int k = 0; k < 2; k++) {
        if (!nets[k]) continue;
        gn_network *loaded = NULL;
        CHECK_STATUS(gn_network_save(nets[k], path, GN_SAVE_OPTIMIZER_STATE), GN_OK, NULL);
        CHECK_STATUS(gn_network_load(path, &loaded), GN_OK, NULL);
        if (!loaded) continue;
        check_same_network(nets[k], loaded, k ? "fixed_learnt file" : "relu file");
        /* the file is the serialized form */
        size_t needed = 0, fsize = 0;
        CHECK_STATUS(gn_network_serialize(nets[k], GN_SAVE_OPTIMIZER_STATE, NULL, 0, &needed), GN_ERR_BUFFER_TOO_SMALL,
                     "capacity");
        unsigned char *buf = xmalloc(needed), *file = read_file(path, &fsize);
        size_t needed2 = 0;
        CHECK_STATUS(gn_network_serialize(nets[k], GN_SAVE_OPTIMIZER_STATE, buf, needed, &needed2), GN_OK, NULL);
        CHECK(needed2 == needed && file && fsize == needed && memcmp(file, buf, needed) == 0);
        gn_network *mem = NULL;
        CHECK_STATUS(gn_network_deserialize(buf, needed, &mem), GN_OK, NULL);
        if (mem) check_same_network(nets[k], mem, "deserialized");
        /* with the optimizer state, one more epoch on the original and on the copy agree bit for bit */
        gn_network *orig = NULL;
        CHECK_STATUS(gn_network_clone(nets[k], &orig), GN_OK, NULL);
        gn_train_options o = default_options(1);
        if (orig && mem) {
            CHECK_STATUS(gn_train(orig, x_train, y_train, 1000, NULL, NULL, 0, &o, NULL, 0, NULL), GN_OK, NULL);
            CHECK_STATUS(gn_train(mem, x_train, y_train, 1000, NULL, NULL, 0, &o, NULL, 0, NULL), GN_OK, NULL);
            check_same_network(orig, mem, "trained after reload");
        }
        /* without the optimizer state the file is smaller and still loads the same weights */
        size_t small = 0;
        gn_network_serialize(nets[k], 0, NULL, 0, &small);
        CHECK(small < needed);
        CHECK_STATUS(gn_network_save(nets[k], path, 0), GN_OK, NULL);
        gn_network *lean = NULL;
        CHECK_STATUS(gn_network_load(path, &lean), GN_OK, NULL);
        if (lean) check_same_network(nets[k], lean, "without optimizer state");
        gn_network_free(lean);
        gn_network_free(orig);
        gn_network_free(mem);
        gn_network_free(loaded);
        free(buf);
        free(file);
    }
}

/* Every spec field survives a round trip: a custom net with permutation, bias, feature head,
 * linear feature net, soft gates, ones input and Bernoulli init, trained with SGD. */
static void test_save_load_custom(void) {
    int64_t w[3] = {9, 9, 7}, perm[3] = {1, 0, 2};
    gn_network_spec s;
    gn_network *net = NULL, *back = NULL;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_CUSTOM, D_IN, 3, w, CLASSES));
    s.permutation = perm, s.bias = 1, s.feature_head = 1, s.feature_activation = GN_ACT_IDENTITY;
    s.gate_kind = GN_GATE_SOFT, s.beta = 3.5f, s.value_input = GN_VALUE_INPUT_ONES, s.init = GN_INIT_BERNOULLI;
    s.init_scale = 0.7f, s.seed = 99;
    REQUIRE_OK(gn_network_create(&s, &net));
    gn_train_options o = default_options(1);
    o.optimizer = GN_OPTIMIZER_SGD;
    o.learning_rate = 1e-3f;
    REQUIRE_OK(gn_train(net, x_train, y_train, 500, NULL, NULL, 0, &o, NULL, 0, NULL));
    CHECK_STATUS(gn_network_set_frozen(net, GN_PART_VALUE, 1), GN_OK, NULL);
    size_t size = 0;
    gn_network_serialize(net, GN_SAVE_OPTIMIZER_STATE, NULL, 0, &size);
    unsigned char *buf = xmalloc(size);
    REQUIRE_OK(gn_network_serialize(net, GN_SAVE_OPTIMIZER_STATE, buf, size, &size));
    REQUIRE_OK(gn_network_deserialize(buf, size, &back));
    check_same_network(net, back, "custom");
    int64_t p[3];
    CHECK_STATUS(gn_network_permutation(back, p, 3), GN_OK, NULL);
    CHECK(p[0] == 1 && p[1] == 0 && p[2] == 2);
    float b1[9], b2[9];
    CHECK_STATUS(gn_network_get_bias(net, GN_PART_FEATURE, 1, b1, 9), GN_OK, NULL);
    CHECK_STATUS(gn_network_get_bias(back, GN_PART_FEATURE, 1, b2, 9), GN_OK, NULL);
    CHECK(t_bits_equal(b1, b2, 9));
    gn_network_info info = info_of(back);
    CHECK(info.value_frozen == 1 && info.beta == 3.5f && info.value_input == GN_VALUE_INPUT_ONES && info.bias == 1);
    /* the soft gates, head and kernels of the copy agree too */
    float k1[16], k2[16];
    CHECK_STATUS(gn_kernel(net, GN_KERNEL_NPK, 0, x_test, 4, x_test, 4, k1, 4, 16), GN_OK, NULL);
    CHECK_STATUS(gn_kernel(back, GN_KERNEL_NPK, 0, x_test, 4, x_test, 4, k2, 4, 16), GN_OK, NULL);
    CHECK(t_bits_equal(k1, k2, 16));
    free(buf);
    gn_network_free(net);
    gn_network_free(back);
}

/* Every flipped byte and every truncation of a small network's file is detected; so are
 * trailing bytes, a foreign file and an empty one. */
static void test_corrupt_files(void) {
    int64_t w[2] = {5, 4};
    gn_network_spec s;
    gn_network *net = NULL;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_DECOUPLED, 6, 2, w, 3));
    s.bias = 1;
    s.seed = 4;
    REQUIRE_OK(gn_network_create(&s, &net));
    float xs[4 * 6];
    int32_t ys[4] = {0, 1, 2, 1};
    for (int i = 0; i < 24; i++) xs[i] = (float)cos(i);
    gn_train_options o = default_options(2);
    o.batch_size = 2;
    REQUIRE_OK(gn_train(net, xs, ys, 4, NULL, NULL, 0, &o, NULL, 0, NULL));
    char path[128], bad[128];
    snprintf(path, sizeof path, "%s/small.gdn", tmp_dir);
    snprintf(bad, sizeof bad, "%s/bad.gdn", tmp_dir);
    REQUIRE_OK(gn_network_save(net, path, GN_SAVE_OPTIMIZER_STATE));
    size_t size = 0;
    unsigned char *good = read_file(path, &size);
    CHECK(good != NULL && size > 28);
    if (!good) return;
    unsigned char *copy = xmalloc(size + 16);
    int flips_ok = 1, cuts_ok = 1, mem_ok = 1;
    size_t first_bad_flip = 0, first_bad_cut = 0;
    for (size_t i = 0; i < size; i++) { /* every single flipped byte, in memory */
        memcpy(copy, good, size);
        copy[i] ^= 0xFF;
        gn_network *out = (gn_network *)&copy; /* must be overwritten only on success */
        gn_status st = gn_network_deserialize(copy, size, &out);
        if (st != GN_ERR_CORRUPT || out != (gn_network *)&copy) {
            if (flips_ok) first_bad_flip = i;
            flips_ok = 0;
            if (st == GN_OK) gn_network_free(out);
        }
    }
    for (size_t len = 0; len < size; len++) { /* every truncation, in memory */
        gn_network *out = NULL;
        gn_status st = gn_network_deserialize(good, len, &out);
        if (st != GN_ERR_CORRUPT || out != NULL) {
            if (cuts_ok) first_bad_cut = len;
            cuts_ok = 0;
            if (st == GN_OK) gn_network_free(out);
        }
    }
    CHECKF(flips_ok, "a flipped byte at offset %zu of %zu was not reported as GN_ERR_CORRUPT", first_bad_flip, size);
    CHECKF(cuts_ok, "a file truncated to %zu of %zu bytes was not reported as GN_ERR_CORRUPT", first_bad_cut, size);
    /* and through files: a few flips, truncations, trailing bytes, foreign and empty files */
    const size_t offsets[] = {0, 7, 8, 12, 16, 24, 30, size / 2, size - 5, size - 1};
    for (size_t k = 0; k < sizeof offsets / sizeof offsets[0]; k++) {
        memcpy(copy, good, size);
        copy[offsets[k]] ^= 0x01;
        write_file(bad, copy, size);
        gn_network *out = NULL;
        gn_status st = gn_network_load(bad, &out);
        CHECKF(st == GN_ERR_CORRUPT && out == NULL, "bit flip at %zu: %s", offsets[k], gn_status_name(st));
        if (st == GN_OK) gn_network_free(out);
        write_file(bad, good, offsets[k]);
        out = NULL;
        st = gn_network_load(bad, &out);
        CHECKF(st == GN_ERR_CORRUPT && out == NULL, "truncated to %zu: %s", offsets[k], gn_status_name(st));
        if (st == GN_OK) gn_network_free(out);
    }
    memcpy(copy, good, size);
    memcpy(copy + size, "trailing garbage", 16);
    write_file(bad, copy, size + 16);
    gn_network *out = NULL;
    CHECK_STATUS(gn_network_load(bad, &out), GN_ERR_CORRUPT, NULL);
    CHECK_STATUS(gn_network_deserialize(copy, size + 16, &out), GN_ERR_CORRUPT, NULL);
    CHECK_STATUS(gn_network_load("include/gatednet.h", &out), GN_ERR_CORRUPT, NULL);
    write_file(bad, good, 0);
    CHECK_STATUS(gn_network_load(bad, &out), GN_ERR_CORRUPT, NULL);
    CHECK(out == NULL);
    snprintf(bad, sizeof bad, "%s/missing/dir/x.gdn", tmp_dir);
    CHECK_STATUS(gn_network_load(bad, &out), GN_ERR_IO, NULL);
    CHECK_STATUS(gn_network_save(net, bad, 0), GN_ERR_IO, NULL);
    CHECK_STATUS(gn_network_load(tmp_dir, &out), GN_ERR_IO, NULL); /* a directory */
    /* the intact file still loads, and saving over a file replaces it atomically */
    CHECK_STATUS(gn_network_deserialize(good, size, &out), GN_OK, NULL);
    mem_ok = out != NULL;
    CHECK(mem_ok);
    gn_network_free(out);
    CHECK_STATUS(gn_network_save(relu_net ? relu_net : net, path, 0), GN_OK, NULL);
    out = NULL;
    CHECK_STATUS(gn_network_load(path, &out), GN_OK, NULL);
    if (out) CHECK(info_of(out).n_hidden == 2 && info_of(out).input_size == (relu_net ? D_IN : 6));
    gn_network_free(out);
    free(copy);
    free(good);
    gn_network_free(net);
}

/* ------------------------------------------------------------------------------------ */
/* label corruption                                                                      */
/* ------------------------------------------------------------------------------------ */

static void test_corrupt_labels(void) {
    enum { N = N_TRAIN };
    static int32_t a[N], b[N];
    memcpy(a, y_train, sizeof a);
    int64_t changed = -1;
    CHECK_STATUS(gn_corrupt_labels(a, N, CLASSES, 0.0, 1, &changed), GN_OK, NULL);
    CHECK(changed == 0 && memcmp(a, y_train, sizeof a) == 0);
    const double gammas[] = {0.2, 0.5, 1.0};
    for (int g = 0; g < 3; g++) {
        memcpy(a, y_train, sizeof a);
        memcpy(b, y_train, sizeof b);
        int64_t ca = -1, cb = -1;
        CHECK_STATUS(gn_corrupt_labels(a, N, CLASSES, gammas[g], 7, &ca), GN_OK, NULL);
        CHECK_STATUS(gn_corrupt_labels(b, N, CLASSES, gammas[g], 7, &cb), GN_OK, NULL);
        int64_t diff = 0, in_range = 1;
        for (int i = 0; i < N; i++) {
            diff += a[i] != y_train[i];
            if (a[i] < 0 || a[i] >= CLASSES) in_range = 0;
        }
        int64_t m = (int64_t)llround(gammas[g] * N);
        /* each redrawn label keeps its value with probability 1/10: expect 0.9 m changes */
        CHECKF(ca == diff && cb == ca && memcmp(a, b, sizeof a) == 0, "gamma %.1f: changed %lld, differing %lld",
               gammas[g], (long long)ca, (long long)diff);
        CHECKF(in_range && diff <= m && fabs((double)diff - 0.9 * m) < 5 * sqrt(0.09 * m) + 1,
               "gamma %.1f: %lld of %lld redrawn labels changed", gammas[g], (long long)diff, (long long)m);
        memcpy(b, y_train, sizeof b);
        CHECK_STATUS(gn_corrupt_labels(b, N, CLASSES, gammas[g], 8, NULL), GN_OK, NULL);
        CHECK(memcmp(a, b, sizeof a) != 0);
    }
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/gn-ctest-XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_version();
    if (!load_data()) return T_FINISH("test_core");
    T_SECTION(test_presets_and_create);
    T_SECTION(test_init_distributions);
    T_SECTION(test_idx_plain);
    t_section = "train_relu";
    train_relu();
    t_section = "train_fixed_learnt";
    train_fixed_learnt();
    t_section = "main";
    T_SECTION(test_training_reproducible);
    T_SECTION(test_training_resumes);
    T_SECTION(test_training_threads_and_fork);
    T_SECTION(test_interrupt);
    T_SECTION(test_optimizers_and_losses);
    T_SECTION(test_feature_head);
    T_SECTION(test_regimes_train);
    T_SECTION(test_freeze_and_copy);
    T_SECTION(test_predict_consistency);
    T_SECTION(test_gates_packed);
    T_SECTION(test_kernels);
    T_SECTION(test_kernel_symmetric_and_ld);
    T_SECTION(test_path_enumeration);
    T_SECTION(test_save_load);
    T_SECTION(test_save_load_custom);
    T_SECTION(test_corrupt_files);
    T_SECTION(test_corrupt_labels);
    gn_network_free(learnt_net);
    gn_network_free(relu_net);
    free(x_train);
    free(x_test);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
    return T_FINISH("test_core");
}
