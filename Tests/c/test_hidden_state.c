/*
 * test_hidden_state.c — hidden-state read-out (gn_network_hidden_state,
 * gn_conv_network_hidden_state), conv tensor positions (gn_conv_network_tensor_layer) and the
 * normalised conv path kernels, through the C ABI. Identities checked: activation = relu(pre)
 * in the feature net, value activation = pre * wired gate, output = output layer applied to the
 * last value activation; normalised NPK = H / prod C_l; trace-normalised NPK has unit trace.
 * Bad arguments fail cleanly, naming the argument. Build and run through Tests/c/run.sh.
 */
#include "testing.h"

#include <stdint.h>

static void fill_uniform(float *x, size_t n, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
    }
}

static gn_layer_spec layer(gn_layer_kind kind, int64_t units, int64_t kernel, int64_t block) {
    gn_layer_spec l = t_layer(kind, units, kernel);
    l.padding = GN_PAD_ZERO;
    l.block = block;
    return l;
}

static void test_dense(void) {
    int64_t widths[2] = {6, 5};
    gn_network_spec spec;
    REQUIRE_OK(gn_network_spec_init(&spec, GN_REGIME_DECOUPLED, 4, 2, widths, 3));
    spec.seed = 3;
    gn_network *net = NULL;
    REQUIRE_OK(gn_network_create(&spec, &net));
    enum { N = 7 };
    float x[N * 4], q[N * 6], z[N * 6], qv[N * 6], zv[N * 6], g[N * 6], out[N * 3], w[3 * 5];
    fill_uniform(x, N * 4, 1);
    for (int64_t l = 0; l < 2; l++) {
        int64_t width = widths[l];
        REQUIRE_OK(gn_network_hidden_state(net, x, N, GN_PART_FEATURE, l, GN_HIDDEN_PRE_ACTIVATION, q, N * width));
        REQUIRE_OK(gn_network_hidden_state(net, x, N, GN_PART_FEATURE, l, GN_HIDDEN_ACTIVATION, z, N * width));
        REQUIRE_OK(gn_network_hidden_state(net, x, N, GN_PART_VALUE, l, GN_HIDDEN_PRE_ACTIVATION, qv, N * width));
        REQUIRE_OK(gn_network_hidden_state(net, x, N, GN_PART_VALUE, l, GN_HIDDEN_ACTIVATION, zv, N * width));
        REQUIRE_OK(gn_gates(net, x, N, l, g, N * width));
        int ok = 1;
        for (int64_t i = 0; i < N * width; i++) {
            float soft = 1.0f / (1.0f + expf(-spec.beta * q[i]));
            ok &= z[i] == (q[i] > 0 ? q[i] : 0.0f);
            ok &= fabsf(g[i] - soft) <= 1e-4f;
            ok &= fabsf(zv[i] - qv[i] * g[i]) <= 1e-6f * (1 + fabsf(zv[i]));
        }
        CHECKF(ok, "layer %lld: feature relu(pre), soft gates sigmoid(beta pre), value act = pre * gate", (long long)l);
    }
    /* Output = W_out zv of the last hidden layer (no biases in this preset). */
    REQUIRE_OK(gn_network_hidden_state(net, x, N, GN_PART_VALUE, 1, GN_HIDDEN_ACTIVATION, zv, N * 5));
    REQUIRE_OK(gn_network_get_weights(net, GN_PART_VALUE, 2, w, 15));
    REQUIRE_OK(gn_predict(net, x, N, out, N * 3));
    double worst = 0;
    for (int r = 0; r < N; r++)
        for (int o = 0; o < 3; o++) {
            double y = 0;
            for (int u = 0; u < 5; u++) y += (double)w[o * 5 + u] * zv[r * 5 + u];
            worst = fmax(worst, fabs(y - out[r * 3 + o]));
        }
    CHECKF(worst < 1e-5, "output vs W_out zv: %g", worst);
    CHECK_STATUS(gn_network_hidden_state(net, x, N, GN_PART_VALUE, 2, GN_HIDDEN_ACTIVATION, zv, N * 5),
                 GN_ERR_INVALID_ARGUMENT, "layer");
    CHECK_STATUS(gn_network_hidden_state(net, x, N, GN_PART_VALUE, 0, (gn_hidden_kind)7, zv, N * 6),
                 GN_ERR_INVALID_ARGUMENT, "kind");
    CHECK_STATUS(gn_network_hidden_state(net, x, N, (gn_part)5, 0, GN_HIDDEN_ACTIVATION, zv, N * 6),
                 GN_ERR_INVALID_ARGUMENT, "part");
    CHECK_STATUS(gn_network_hidden_state(net, x, N, GN_PART_VALUE, 0, GN_HIDDEN_ACTIVATION, zv, N * 6 - 1),
                 GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_network_hidden_state(net, NULL, N, GN_PART_VALUE, 0, GN_HIDDEN_ACTIVATION, zv, N * 6),
                 GN_ERR_NULL_POINTER, "x");
    CHECK_STATUS(gn_network_hidden_state(NULL, x, N, GN_PART_VALUE, 0, GN_HIDDEN_ACTIVATION, zv, N * 6),
                 GN_ERR_NULL_POINTER, "net");
    gn_network_free(net);
}

static void test_conv(void) {
    /* conv 3 -> block(conv 4, conv 4) with a projection -> GAP -> dense 5 -> output 2. */
    gn_layer_spec layers[6] = {layer(GN_LAYER_CONV, 3, 3, 0), layer(GN_LAYER_CONV, 4, 3, 1), layer(GN_LAYER_CONV, 4, 3, 1),
                               layer(GN_LAYER_GLOBAL_AVG_POOL, 0, 0, 0), layer(GN_LAYER_DENSE, 5, 0, 0),
                               layer(GN_LAYER_DENSE, 2, 0, 0)};
    gn_conv_network_spec spec;
    REQUIRE_OK(gn_conv_network_spec_init(&spec, GN_REGIME_FIXED_RANDOM_II, 2, 4, 3, 6, layers));
    spec.seed = 5;
    gn_conv_network *net = NULL;
    REQUIRE_OK(gn_conv_network_create(&spec, &net));
    enum { N = 4, D = 24 };
    float x[N * D], q[N * 48], z[N * 48], qv[N * 48], zv[N * 48], g[N * 48], out[N * 2], w[2 * 5];
    fill_uniform(x, N * D, 2);
    for (int64_t l = 0; l < 4; l++) {
        int64_t h = 0, wd = 0, c = 0;
        REQUIRE_OK(gn_conv_network_gated_shape(net, l, &h, &wd, &c));
        int64_t size = h * wd * c;
        REQUIRE_OK(gn_conv_network_hidden_state(net, x, N, GN_PART_FEATURE, l, GN_HIDDEN_PRE_ACTIVATION, q, N * size));
        REQUIRE_OK(gn_conv_network_hidden_state(net, x, N, GN_PART_FEATURE, l, GN_HIDDEN_ACTIVATION, z, N * size));
        REQUIRE_OK(gn_conv_network_hidden_state(net, x, N, GN_PART_VALUE, l, GN_HIDDEN_PRE_ACTIVATION, qv, N * size));
        REQUIRE_OK(gn_conv_network_hidden_state(net, x, N, GN_PART_VALUE, l, GN_HIDDEN_ACTIVATION, zv, N * size));
        REQUIRE_OK(gn_conv_network_gates(net, x, N, l, 1, g, N * size));
        int ok = 1;
        for (int64_t i = 0; i < N * size; i++) {
            ok &= z[i] == (q[i] > 0 ? q[i] : 0.0f);
            ok &= zv[i] == qv[i] * g[i];
        }
        CHECKF(ok, "gated layer %lld: relu(pre) and value act = pre * wired gate", (long long)l);
    }
    REQUIRE_OK(gn_conv_network_hidden_state(net, x, N, GN_PART_VALUE, 3, GN_HIDDEN_ACTIVATION, zv, N * 5));
    /* The output weight is the last tensor. */
    int64_t count = 0, rows = 0, cols = 0, pos = -1;
    int proj = -1;
    REQUIRE_OK(gn_conv_network_tensor_count(net, &count));
    REQUIRE_OK(gn_conv_network_tensor_info(net, count - 1, NULL, 0, &rows, &cols));
    REQUIRE_OK(gn_conv_network_get_tensor(net, count - 1, w, 10));
    REQUIRE_OK(gn_conv_network_predict(net, x, N, out, N * 2));
    double worst = 0;
    for (int r = 0; r < N; r++)
        for (int o = 0; o < 2; o++) {
            double y = 0;
            for (int u = 0; u < 5; u++) y += (double)w[o * 5 + u] * zv[r * 5 + u];
            worst = fmax(worst, fabs(y - out[r * 2 + o]));
        }
    CHECKF(rows == 2 && cols == 5 && worst < 1e-5, "output vs W_out zv: %g", worst);

    /* Positions: the projection sits at the block's last layer (2); the output at 5. */
    REQUIRE_OK(gn_conv_network_tensor_layer(net, count - 1, &pos, &proj));
    CHECK(pos == 5 && proj == 0);
    char name[64];
    int found = 0;
    for (int64_t i = 0; i < count; i++) {
        REQUIRE_OK(gn_conv_network_tensor_layer(net, i, &pos, &proj));
        REQUIRE_OK(gn_conv_network_tensor_info(net, i, name, sizeof name, NULL, NULL));
        if (proj) found += pos == 2;
    }
    CHECKF(found == 2, "one projection per part at position 2, found %d", found);
    CHECK_STATUS(gn_conv_network_tensor_layer(net, count, &pos, &proj), GN_ERR_INVALID_ARGUMENT, "index");
    CHECK_STATUS(gn_conv_network_hidden_state(net, x, N, GN_PART_VALUE, 4, GN_HIDDEN_ACTIVATION, zv, N * 48),
                 GN_ERR_INVALID_ARGUMENT, "layer");
    CHECK_STATUS(gn_conv_network_hidden_state(net, x, N, GN_PART_VALUE, -1, GN_HIDDEN_ACTIVATION, zv, N * 48),
                 GN_ERR_INVALID_ARGUMENT, "layer");
    CHECK_STATUS(gn_conv_network_hidden_state(net, x, N, GN_PART_VALUE, 3, GN_HIDDEN_ACTIVATION, zv, N * 5 - 1),
                 GN_ERR_BUFFER_TOO_SMALL, "capacity");
    gn_conv_network_free(net);
}

static void test_normalised_kernels(void) {
    gn_layer_spec layers[5] = {layer(GN_LAYER_CONV, 3, 3, 0), layer(GN_LAYER_CONV, 5, 3, 0),
                               layer(GN_LAYER_GLOBAL_AVG_POOL, 0, 0, 0), layer(GN_LAYER_DENSE, 6, 0, 0),
                               layer(GN_LAYER_DENSE, 2, 0, 0)};
    gn_conv_network_spec spec;
    REQUIRE_OK(gn_conv_network_spec_init(&spec, GN_REGIME_FIXED_RANDOM_II, 1, 4, 4, 5, layers));
    gn_conv_network *net = NULL;
    REQUIRE_OK(gn_conv_network_create(&spec, &net));
    enum { N = 5 };
    float x[N * 16], h[N * N], hn[N * N], ht[N * N];
    fill_uniform(x, N * 16, 4);
    REQUIRE_OK(gn_conv_network_kernel(net, GN_CONV_KERNEL_NPK, x, N, x, N, h, N, N * N));
    REQUIRE_OK(gn_conv_network_kernel(net, GN_CONV_KERNEL_NPK_NORMALIZED, x, N, x, N, hn, N, N * N));
    REQUIRE_OK(gn_conv_network_kernel(net, GN_CONV_KERNEL_NPK_TRACE_NORMALIZED, x, N, x, N, ht, N, N * N));
    double trace = 0, unit = 0, worst = 0;
    for (int i = 0; i < N; i++) trace += h[i * N + i];
    for (int i = 0; i < N; i++) unit += ht[i * N + i];
    for (int i = 0; i < N * N; i++) {
        worst = fmax(worst, fabs(hn[i] - h[i] / 90.0) / (1e-6 + fabs(h[i] / 90.0)));
        worst = fmax(worst, fabs(ht[i] - h[i] / trace) / (1e-6 + fabs(h[i] / trace)));
    }
    CHECKF(worst < 1e-4, "normalised = H / (3*5*6), trace kind = H / trace: worst relative error %g", worst);
    CHECKF(fabs(unit - 1) < 1e-5, "trace of the trace-normalised kernel: %g", unit);
    CHECK_STATUS(gn_conv_network_kernel(net, (gn_conv_kernel_kind)5, x, N, x, N, h, N, N * N), GN_ERR_INVALID_ARGUMENT,
                 "kind");
    gn_conv_network_free(net);
}

int main(void) {
    T_SECTION(test_dense);
    T_SECTION(test_conv);
    T_SECTION(test_normalised_kernels);
    return T_FINISH("test_hidden_state");
}
