/*
 * test_abi.c — promises of the C ABI under hostile use (issue 12): strided output sizes
 * near 2^63, kernel algebra at sizes the machine cannot allocate, inputs whose activations
 * overflow float32, freed handles after their memory is reused, and calls on a handle from
 * inside its own callbacks. Every case must return a status (never abort or crash), with a
 * message naming the argument. Build and run through Tests/c/run.sh.
 */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE, RTLD_DEFAULT */
#include "testing.h"

#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <dlfcn.h>

enum { D = 4, K = 3, N = 64 };
static float x[N * D];
static int32_t y[N];

/* An honest zero-filled (finite) array of `bytes`, backed by no memory until written. */
static void *zero_pages(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static gn_network *fc_net(gn_regime regime, uint64_t seed) {
    int64_t widths[2] = {16, 16};
    gn_network_spec s;
    gn_network *net = NULL;
    CHECK_STATUS(gn_network_spec_init(&s, regime, D, 2, widths, K), GN_OK, NULL);
    s.seed = seed;
    CHECK_STATUS(gn_network_create(&s, &net), GN_OK, NULL);
    return net;
}

/* A conv net for 1 x 1 x 1 inputs (input size 1): dense 2 (gated), dense 2 (output). */
static gn_conv_network *tiny_conv_net(void) {
    gn_layer_spec layers[2];
    memset(layers, 0, sizeof layers);
    for (int i = 0; i < 2; i++) {
        layers[i].kind = GN_LAYER_DENSE;
        layers[i].units = 2;
        layers[i].kernel = 1;
        layers[i].stride = 1;
    }
    gn_conv_network_spec s;
    gn_conv_network *net = NULL;
    CHECK_STATUS(gn_conv_network_spec_init(&s, GN_REGIME_DECOUPLED, 1, 1, 1, 2, layers), GN_OK, NULL);
    CHECK_STATUS(gn_conv_network_create(&s, &net), GN_OK, NULL);
    return net;
}

static gn_train_options options(int64_t epochs) {
    gn_train_options o;
    CHECK_STATUS(gn_train_options_init(&o), GN_OK, NULL);
    o.learning_rate = 1e-3f;
    o.batch_size = 16;
    o.epochs = epochs;
    return o;
}

/* ---- item 1: (n_a - 1) * ld_out = 2^63 - 1, plus n_b = 1 overflows ------------------------- */
static void strided_span_overflow(void) {
    const int64_t na = 153092024, ld = 60247241209LL, nb = 1;
    CHECK((__int128)(na - 1) * ld == (__int128)INT64_MAX);
    float *xa = zero_pages((size_t)na * sizeof(float)); /* input size 1: n_a floats */
    if (!xa) { CHECK(!"mmap of the input failed"); return; }
    float xb[1] = {0.5f}, out[4] = {7, 7, 7, 7};
    gn_conv_network *conv = tiny_conv_net();
    CHECK_STATUS(gn_conv_network_kernel(conv, GN_CONV_KERNEL_NPK, xa, na, xb, nb, out, ld, INT64_MAX),
                 GN_ERR_INVALID_ARGUMENT, "ld_out");
    CHECK_STATUS(gn_conv_network_kernel(conv, GN_CONV_KERNEL_INPUT_GRAM, xa, na, xb, nb, out, ld, INT64_MAX),
                 GN_ERR_INVALID_ARGUMENT, "ld_out");
    /* the same sizes through the FC kernels (input size 1 as well) */
    int64_t widths[1] = {4};
    gn_network_spec s;
    gn_network *fc = NULL;
    REQUIRE_OK(gn_network_spec_init(&s, GN_REGIME_RELU, 1, 1, widths, 1));
    REQUIRE_OK(gn_network_create(&s, &fc));
    CHECK_STATUS(gn_kernel(fc, GN_KERNEL_NPK, 0, xa, na, xb, nb, out, ld, INT64_MAX), GN_ERR_INVALID_ARGUMENT, "ld_out");
    CHECK_STATUS(gn_kernel_compute(fc, GN_KERNEL_NPK, xa, na, xb, nb, NULL, out, ld, INT64_MAX),
                 GN_ERR_INVALID_ARGUMENT, "ld_out");
    /* square kernels: (n - 1) * ld + n overflows */
    CHECK_STATUS(gn_kernel_eigenvalues(xa, 2, INT64_MAX, (double *)out, 2), GN_ERR_INVALID_ARGUMENT, "ld");
    CHECK_STATUS(gn_kernel_ridge_predict(xa, 2, 2, INT64_MAX - 1, xb, 1, out, 4), GN_ERR_INVALID_ARGUMENT, "ld");
    /* a span that fits in int64 but not in the address space: (2 - 1) * (2^63 - 2) + 1 */
    CHECK_STATUS(gn_kernel_ridge_predict(xa, 2, 1, INT64_MAX - 1, xb, 1, out, 4), GN_ERR_INVALID_ARGUMENT, "ld");
    CHECK(out[0] == 7 && out[1] == 7 && out[2] == 7 && out[3] == 7);
    /* a valid stride still works: 2 x 1 kernel with ld 3 */
    float k[4] = {7, 7, 7, 7};
    CHECK_STATUS(gn_conv_network_kernel(conv, GN_CONV_KERNEL_INPUT_GRAM, xb, 1, xb, 1, k, 3, 1), GN_OK, NULL);
    CHECKF(k[0] == 0.25f && k[1] == 7, "%g %g", (double)k[0], (double)k[1]);
    gn_conv_network_free(conv);
    gn_network_free(fc);
    munmap(xa, (size_t)na * sizeof(float));
}

/* ---- item 2: n = 65,536 needs an n x n double copy of 34,359,738,368 bytes ---------------- */
static void algebra_out_of_memory(void) {
    const int64_t n = 65536;
    const size_t kbytes = (size_t)n * (size_t)n * sizeof(float); /* 16 GiB of zero pages */
    /* Cap the address space so the 32 GiB copy fails on any machine (and nothing is swapped);
     * not under AddressSanitizer (scripts/sanitize.sh), whose shadow memory needs terabytes of
     * address space: there the library's physical-memory bound refuses the copy by itself. */
    if (!dlsym(RTLD_DEFAULT, "__asan_init")) {
        struct rlimit lim = {(rlim_t)kbytes + ((rlim_t)4 << 30), (rlim_t)kbytes + ((rlim_t)4 << 30)};
        CHECK(setrlimit(RLIMIT_AS, &lim) == 0);
    }
    float *k = zero_pages(kbytes);
    float *v = malloc((size_t)n * sizeof(float));
    double *values = malloc((size_t)n * sizeof(double));
    if (!k || !v || !values) { CHECK(!"allocation of the arguments failed"); return; }
    for (int64_t i = 0; i < n; i++) v[i] = 1.0f;
    double nu = 0, ridge = 0;
    CHECK_STATUS(gn_kernel_eigenvalues(k, n, n, values, n), GN_ERR_OUT_OF_MEMORY, "34359738368 bytes");
    CHECK_STATUS(gn_kernel_nu(k, n, n, v, &nu, &ridge), GN_ERR_OUT_OF_MEMORY, "34359738368 bytes");
    CHECK_STATUS(gn_kernel_ridge_fit(k, n, n, v, 1, 0.0, v, n, &ridge), GN_ERR_OUT_OF_MEMORY, "34359738368 bytes");
    /* the library still works in this process */
    float small[4] = {2, 0, 0, 1};
    CHECK_STATUS(gn_kernel_eigenvalues(small, 2, 2, values, 2), GN_OK, NULL);
    CHECKF(values[0] == 2 && values[1] == 1, "%g %g", values[0], values[1]);
    munmap(k, kbytes);
    free(v);
    free(values);
}

/* ---- item 4: finite inputs whose activations overflow (3e38: inf - inf in layer 2) -------- */
static void non_finite_activations(void) {
    float big[N * D];
    for (int i = 0; i < N * D; i++) big[i] = (i % 3 == 0 ? -3e38f : 3e38f);
    float out[N * K], kern[N * N], gates[N * 16];
    gn_regime regimes[2] = {GN_REGIME_DECOUPLED, GN_REGIME_RELU}; /* soft gates, hard gates */
    for (int r = 0; r < 2; r++) {
        gn_network *net = fc_net(regimes[r], 5);
        if (!net) return;
        CHECK_STATUS(gn_predict(net, big, N, out, N * K), GN_ERR_NOT_FINITE, "out");
        int32_t classes[N];
        CHECK_STATUS(gn_predict_classes(net, big, N, classes, N), GN_ERR_NOT_FINITE, "out");
        double loss = 0, acc = 0;
        CHECK_STATUS(gn_evaluate(net, big, y, N, GN_LOSS_CROSS_ENTROPY, &loss, &acc), GN_ERR_NOT_FINITE, "mean_loss");
        CHECK_STATUS(gn_kernel_compute(net, GN_KERNEL_NPK, big, N, NULL, 0, NULL, kern, N, N * N), GN_ERR_NOT_FINITE, "out");
        CHECK_STATUS(gn_kernel(net, GN_KERNEL_INPUT_GRAM, 0, big, N, big, N, kern, N, N * N), GN_ERR_NOT_FINITE, "out");
        if (r == 0) CHECK_STATUS(gn_gates(net, big, N, 1, gates, N * 16), GN_ERR_NOT_FINITE, "out");
        /* ordinary inputs are fine on the same network */
        CHECK_STATUS(gn_predict(net, x, N, out, N * K), GN_OK, NULL);
        CHECK_STATUS(gn_evaluate(net, x, y, N, GN_LOSS_CROSS_ENTROPY, &loss, &acc), GN_OK, NULL);
        CHECK_STATUS(gn_kernel_compute(net, GN_KERNEL_NPK, x, N, NULL, 0, NULL, kern, N, N * N), GN_OK, NULL);
        gn_network_free(net);
    }
    gn_conv_network *conv = tiny_conv_net();
    float xc[3] = {3e38f, -3e38f, 3e38f}, oc[6];
    double loss = 0;
    /* one input value: two dense layers can overflow only from huge weights times huge inputs;
     * 3e38 * w overflows for |w| > 1.13, so check that predict either succeeds with finite
     * outputs or reports GN_ERR_NOT_FINITE -- never GN_OK with NaN. */
    gn_status s = gn_conv_network_predict(conv, xc, 3, oc, 6);
    int finite = 1;
    for (int i = 0; i < 6; i++) finite &= isfinite(oc[i]) != 0;
    CHECKF(s == GN_ERR_NOT_FINITE || (s == GN_OK && finite), "%s", gn_status_name(s));
    int32_t yc[3] = {0, 1, 0};
    s = gn_conv_network_evaluate(conv, xc, yc, 3, GN_LOSS_CROSS_ENTROPY, &loss, NULL);
    CHECKF(s == GN_ERR_NOT_FINITE || (s == GN_OK && isfinite(loss)), "%s loss %g", gn_status_name(s), loss);
    gn_conv_network_free(conv);
}

/* ---- item 12: a freed handle stays dead when a new network reuses its memory -------------- */
static void stale_handles(void) {
    gn_network *stale[16];
    for (int i = 0; i < 16; i++) {
        stale[i] = fc_net(GN_REGIME_RELU, (uint64_t)i);
        gn_network_free(stale[i]);
    }
    gn_network *live = fc_net(GN_REGIME_RELU, 99);
    gn_network_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    float out[N * K];
    for (int i = 0; i < 16; i++) {
        CHECK_STATUS(gn_network_get_info(stale[i], &info), GN_ERR_INVALID_HANDLE, "net");
        CHECK_STATUS(gn_predict(stale[i], x, N, out, N * K), GN_ERR_INVALID_HANDLE, "net");
        gn_network_free(stale[i]); /* a second free is ignored */
    }
    CHECK_STATUS(gn_predict(live, x, N, out, N * K), GN_OK, NULL);
    CHECK_STATUS(gn_network_get_info(live, &info), GN_OK, NULL);
    /* a foreign pointer, and a handle of the other kind */
    int64_t not_a_handle[8] = {0};
    CHECK_STATUS(gn_predict((gn_network *)not_a_handle, x, N, out, N * K), GN_ERR_INVALID_HANDLE, "net");
    gn_conv_network *c1 = tiny_conv_net();
    CHECK_STATUS(gn_predict((gn_network *)c1, x, N, out, N * K), GN_ERR_INVALID_HANDLE, "net");
    gn_conv_network_free(c1);
    gn_conv_network *c2 = tiny_conv_net();
    gn_conv_network_info ci;
    memset(&ci, 0, sizeof ci);
    ci.struct_size = sizeof ci;
    CHECK_STATUS(gn_conv_network_get_info(c1, &ci), GN_ERR_INVALID_HANDLE, "net");
    CHECK_STATUS(gn_conv_network_get_info(c2, &ci), GN_OK, NULL);
    gn_network_free((gn_network *)c2); /* wrong kind: ignored */
    CHECK_STATUS(gn_conv_network_get_info(c2, &ci), GN_OK, NULL);
    gn_conv_network_free(c2);
    CHECK_STATUS(gn_conv_network_get_info(c2, &ci), GN_ERR_INVALID_HANDLE, "net");
    gn_network_free(live);
    CHECK_STATUS(gn_predict(live, x, N, out, N * K), GN_ERR_INVALID_HANDLE, "net");
}

/* ---- item 13: a call on a handle from inside its own callback gets GN_ERR_BUSY ------------ */
typedef struct {
    gn_network *self, *other;
    gn_status train_self, predict_self, predict_other, kernel_self;
    int calls;
} reentry;

static int reenter_from_epoch(const gn_epoch_metrics *m, void *user) {
    (void)m;
    reentry *r = user;
    gn_train_options o = options(1);
    float out[N * K], k[N * N];
    r->train_self = gn_train(r->self, x, y, N, NULL, NULL, 0, &o, NULL, 0, NULL);
    r->predict_self = gn_predict(r->self, x, N, out, N * K);
    r->kernel_self = gn_kernel_compute(r->self, GN_KERNEL_NPK, x, N, NULL, 0, NULL, k, N, N * N);
    r->predict_other = gn_predict(r->other, x, N, out, N * K);
    r->calls++;
    return 0;
}

static int reenter_from_kernel(double fraction, void *user) {
    (void)fraction;
    reentry *r = user;
    gn_train_options o = options(1);
    r->train_self = gn_train(r->self, x, y, N, NULL, NULL, 0, &o, NULL, 0, NULL);
    r->calls++;
    return 0;
}

static void reentrant_calls(void) {
    CHECK(strcmp(gn_status_name(GN_ERR_BUSY), "GN_ERR_BUSY") == 0);
    gn_network *a = fc_net(GN_REGIME_DECOUPLED, 3), *b = fc_net(GN_REGIME_DECOUPLED, 3), *other = fc_net(GN_REGIME_RELU, 4);
    if (!a || !b || !other) return;
    reentry r = {a, other, GN_OK, GN_OK, GN_ERR_INTERNAL, GN_OK, 0};
    gn_train_options o = options(2);
    o.progress = reenter_from_epoch;
    o.progress_user = &r;
    CHECK_STATUS(gn_train(a, x, y, N, NULL, NULL, 0, &o, NULL, 0, NULL), GN_OK, NULL);
    CHECKF(r.calls == 2, "%d callbacks", r.calls);
    CHECKF(r.train_self == GN_ERR_BUSY, "%s", gn_status_name(r.train_self));
    CHECKF(r.predict_self == GN_ERR_BUSY, "%s", gn_status_name(r.predict_self));
    CHECKF(r.kernel_self == GN_ERR_BUSY, "%s", gn_status_name(r.kernel_self));
    CHECKF(r.predict_other == GN_OK, "%s", gn_status_name(r.predict_other));
    /* the refused calls did nothing: a equals b trained the same way without them */
    gn_train_options plain = options(2);
    CHECK_STATUS(gn_train(b, x, y, N, NULL, NULL, 0, &plain, NULL, 0, NULL), GN_OK, NULL);
    float pa[N * K], pb[N * K];
    CHECK_STATUS(gn_predict(a, x, N, pa, N * K), GN_OK, NULL); /* usable again after the call */
    CHECK_STATUS(gn_predict(b, x, N, pb, N * K), GN_OK, NULL);
    CHECK(t_bits_equal(pa, pb, N * K));
    /* training a network from inside its own kernel's progress callback */
    reentry rk = {a, other, GN_OK, GN_OK, GN_OK, GN_OK, 0};
    gn_kernel_options ko;
    CHECK_STATUS(gn_kernel_options_init(&ko), GN_OK, NULL);
    ko.progress = reenter_from_kernel;
    ko.progress_user = &rk;
    float k[N * N];
    CHECK_STATUS(gn_kernel_compute(a, GN_KERNEL_NPK, x, N, NULL, 0, &ko, k, N, N * N), GN_OK, NULL);
    CHECKF(rk.calls >= 1, "%d callbacks", rk.calls);
    CHECKF(rk.train_self == GN_ERR_BUSY, "%s", gn_status_name(rk.train_self));
    CHECK_STATUS(gn_predict(a, x, N, pb, N * K), GN_OK, NULL);
    CHECK(t_bits_equal(pa, pb, N * K));
    /* one handle twice in one call is not re-entry */
    CHECK_STATUS(gn_network_copy_feature_weights(a, a, 0), GN_OK, NULL);
    gn_network_free(a);
    gn_network_free(b);
    gn_network_free(other);
}

int main(void) {
    for (int i = 0; i < N * D; i++) x[i] = (float)((i * 37 % 101) - 50) / 50.0f;
    for (int i = 0; i < N; i++) y[i] = i % K;
    T_SECTION(strided_span_overflow);
    T_SECTION(algebra_out_of_memory);
    T_SECTION(non_finite_activations);
    T_SECTION(stale_handles);
    T_SECTION(reentrant_calls);
    return T_FINISH("test_abi");
}
