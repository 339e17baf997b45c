/*
 * test_bad_inputs.c — every exported function of gatednet.h against bad input: NULL pointers,
 * freed and foreign handles, zero/negative/overflowing sizes, small capacities, NaN/Inf,
 * labels out of range, unequal permuted widths, invalid enum values and wrong struct sizes.
 *
 * Each failed call must return the documented status, leave a non-empty gn_last_error()
 * that names the offending argument, write nothing to its outputs and leave every handle
 * exactly as it was (checked through the serialized bytes, which cover weights, flags,
 * epoch count and optimizer moments). The last section checks that gn_last_error is
 * per-thread and that distinct handles can be used from several threads at once.
 */
#include "testing.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>

enum { D = 6, H1 = 5, H2 = 4, K = 3, N = 20 };
static const int64_t widths[2] = {H1, H2};
static float x[N * D];
static int32_t y[N];
static gn_network *dgn;  /* DECOUPLED, bias, soft gates, trained one epoch (has Adam moments) */
static gn_network *relu; /* RELU, hard gates, feature head */
static gn_network *freed_handle;
static struct {
    uint64_t words[16];
} fake_object; /* a foreign pointer: memory that is not a gn_network */
#define FOREIGN ((gn_network *)&fake_object)
static const float sentinel = -777.25f;

/* The call must fail without naming a particular status (overflowing sizes, where
 * INVALID_ARGUMENT, OUT_OF_MEMORY or BUFFER_TOO_SMALL are all reasonable), not with
 * GN_ERR_INTERNAL, and name `arg`. */
#define CHECK_FAILS(call, arg) t_check_fails((call), (arg), #call, __FILE__, __LINE__)
static void t_check_fails(gn_status got, const char *arg, const char *what, const char *file, int line) {
    const char *err = gn_last_error();
    char msg[768];
    snprintf(msg, sizeof msg, "expected a documented error naming \"%s\", got %s (\"%s\")", arg, gn_status_name(got),
             err ? err : "(null)");
    t_record(got != GN_OK && got != GN_ERR_INTERNAL && err && strstr(err, arg) != NULL, file, line, what, msg);
}

/* ------------------------------------------------------------------------------------ */
/* snapshots: a network is unchanged iff its serialized bytes (with optimizer state) are  */
/* ------------------------------------------------------------------------------------ */

typedef struct {
    unsigned char *bytes;
    size_t size;
} snapshot;

static snapshot take(const gn_network *net) {
    snapshot s = {NULL, 0};
    gn_network_serialize(net, GN_SAVE_OPTIMIZER_STATE, NULL, 0, &s.size);
    s.bytes = malloc(s.size ? s.size : 1);
    if (s.bytes && gn_network_serialize(net, GN_SAVE_OPTIMIZER_STATE, s.bytes, s.size, &s.size) != GN_OK) s.size = 0;
    return s;
}

static int unchanged(const gn_network *net, snapshot *before) {
    snapshot now = take(net);
    int same = before->size > 0 && now.size == before->size && memcmp(now.bytes, before->bytes, now.size) == 0;
    free(now.bytes);
    return same;
}

#define CHECK_UNCHANGED(net, snap) CHECKF(unchanged((net), &(snap)), "%s changed by a failed call", #net)

static int all_sentinel(const float *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != sentinel) return 0;
    return 1;
}

static void fill(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = sentinel;
}

/* ------------------------------------------------------------------------------------ */
/* handles: NULL, freed and foreign for every function that takes a network              */
/* ------------------------------------------------------------------------------------ */

static void check_handle(gn_network *bad, gn_status expect, const char *label) {
    float out[N * K];
    int32_t cls[N];
    uint64_t words[N];
    int64_t i64 = 0, i64b = 0;
    double dl;
    char text[64];
    size_t needed;
    gn_network *made = NULL;
    gn_network_info info;
    info.struct_size = sizeof info;
    gn_train_options o;
    gn_train_options_init(&o);
    printf("    handle kind: %s\n", label);
    CHECK_STATUS(gn_network_clone(bad, &made), expect, "net");
    CHECK(made == NULL);
    CHECK_STATUS(gn_network_get_info(bad, &info), expect, "net");
    CHECK_STATUS(gn_network_hidden_width(bad, 0, &i64), expect, "net");
    CHECK_STATUS(gn_network_permutation(bad, &i64, 2), expect, "net");
    CHECK_STATUS(gn_network_describe(bad, text, sizeof text, &needed), expect, "net");
    CHECK_STATUS(gn_network_weight_shape(bad, GN_PART_VALUE, 0, &i64, &i64b), expect, "net");
    CHECK_STATUS(gn_network_get_weights(bad, GN_PART_VALUE, 0, out, N * K), expect, "net");
    CHECK_STATUS(gn_network_set_weights(bad, GN_PART_VALUE, 0, x, H1 * D), expect, "net");
    CHECK_STATUS(gn_network_get_bias(bad, GN_PART_VALUE, 0, out, N * K), expect, "net");
    CHECK_STATUS(gn_network_set_frozen(bad, GN_PART_VALUE, 1), expect, "net");
    CHECK_STATUS(gn_network_copy_feature_weights(bad, relu, 0), expect, "dst");
    CHECK_STATUS(gn_network_copy_feature_weights(dgn, bad, 0), expect, "src");
    CHECK_STATUS(gn_train(bad, x, y, N, NULL, NULL, 0, &o, NULL, 0, NULL), expect, "net");
    CHECK_STATUS(gn_predict(bad, x, N, out, N * K), expect, "net");
    CHECK_STATUS(gn_predict_classes(bad, x, N, cls, N), expect, "net");
    CHECK_STATUS(gn_evaluate(bad, x, y, N, GN_LOSS_CROSS_ENTROPY, &dl, &dl), expect, "net");
    CHECK_STATUS(gn_predict_feature_head(bad, x, N, out, N * K), expect, "net");
    CHECK_STATUS(gn_gates(bad, x, N, 0, out, N * K), expect, "net");
    CHECK_STATUS(gn_gates_packed_words(bad, 0, &i64), expect, "net");
    CHECK_STATUS(gn_gates_packed(bad, x, N, 0, words, N), expect, "net");
    CHECK_STATUS(gn_kernel(bad, GN_KERNEL_NPK, 0, x, 2, x, 2, out, 2, 4), expect, "net");
    CHECK_STATUS(gn_network_save(bad, "/tmp/gn-ctest-never-written.gdn", 0), expect, "net");
    CHECK_STATUS(gn_network_serialize(bad, 0, NULL, 0, &needed), expect, "net");
    /* create with this as the gate source */
    gn_network_spec s;
    gn_network_spec_init(&s, GN_REGIME_FIXED_LEARNT, D, 2, widths, K);
    s.gate_source = bad;
    CHECK_STATUS(gn_network_create(&s, &made), expect, "gate_source");
    CHECK(made == NULL);
    /* free ignores it (must not crash) */
    gn_network_free(bad);
    CHECK(access("/tmp/gn-ctest-never-written.gdn", F_OK) != 0);
}

static void test_handles(void) {
    snapshot a = take(dgn), b = take(relu);
    check_handle(NULL, GN_ERR_NULL_POINTER, "NULL");
    check_handle(freed_handle, GN_ERR_INVALID_HANDLE, "freed");
    check_handle(FOREIGN, GN_ERR_INVALID_HANDLE, "foreign (static struct)");
    struct {
        char bytes[256];
    } on_stack;
    memset(&on_stack, 0x5A, sizeof on_stack);
    check_handle((gn_network *)&on_stack, GN_ERR_INVALID_HANDLE, "foreign (stack struct)");
    check_handle((gn_network *)((char *)dgn + 8), GN_ERR_INVALID_HANDLE, "interior of a live handle");
    gn_network_free(NULL);
    gn_network_free(freed_handle); /* double free: ignored */
    CHECK_UNCHANGED(dgn, a);
    CHECK_UNCHANGED(relu, b);
    free(a.bytes);
    free(b.bytes);
}

/* ------------------------------------------------------------------------------------ */
/* specs and creation                                                                    */
/* ------------------------------------------------------------------------------------ */

static gn_network_spec base_spec(gn_regime r) {
    gn_network_spec s;
    gn_network_spec_init(&s, r, D, 2, widths, K);
    return s;
}

/* create(spec) must fail with `expect`, naming `arg`, and leave *out NULL. */
#define CHECK_CREATE(spec, expect, arg)                                                        \
    do {                                                                                       \
        gn_network *made_ = NULL;                                                              \
        CHECK_STATUS(gn_network_create(&(spec), &made_), (expect), (arg));                     \
        CHECK(made_ == NULL);                                                                  \
        gn_network_free(made_);                                                                \
    } while (0)

static void test_spec_and_create(void) {
    gn_network_spec s;
    CHECK_STATUS(gn_network_spec_init(NULL, GN_REGIME_RELU, D, 2, widths, K), GN_ERR_NULL_POINTER, "spec");
    CHECK_STATUS(gn_network_spec_init(&s, (gn_regime)8, D, 2, widths, K), GN_ERR_INVALID_ARGUMENT, "regime");
    CHECK_STATUS(gn_network_spec_init(&s, (gn_regime)-1, D, 2, widths, K), GN_ERR_INVALID_ARGUMENT, "regime");
    gn_network *made = NULL;
    s = base_spec(GN_REGIME_RELU);
    CHECK_STATUS(gn_network_create(NULL, &made), GN_ERR_NULL_POINTER, "spec");
    CHECK_STATUS(gn_network_create(&s, NULL), GN_ERR_NULL_POINTER, "out");

    s = base_spec(GN_REGIME_RELU), s.struct_size = 0;
    CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "struct_size");
    s = base_spec(GN_REGIME_RELU), s.struct_size = sizeof s - 8;
    CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "struct_size");
    s = base_spec(GN_REGIME_RELU), s.regime = (gn_regime)42;
    CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "regime");
    const int64_t bad_counts[] = {0, -1, INT64_MIN};
    for (int i = 0; i < 3; i++) {
        s = base_spec(GN_REGIME_RELU), s.input_size = bad_counts[i];
        CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "input_size");
        s = base_spec(GN_REGIME_RELU), s.output_size = bad_counts[i];
        CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "output_size");
        s = base_spec(GN_REGIME_RELU), s.n_hidden = bad_counts[i];
        CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "n_hidden");
        int64_t w[2] = {H1, bad_counts[i]};
        s = base_spec(GN_REGIME_RELU), s.hidden_widths = w;
        CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "hidden_widths[1]");
    }
    s = base_spec(GN_REGIME_RELU), s.n_hidden = GN_MAX_HIDDEN + 1;
    CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "n_hidden");
    s = base_spec(GN_REGIME_RELU), s.hidden_widths = NULL;
    CHECK_CREATE(s, GN_ERR_NULL_POINTER, "hidden_widths");
    /* sizes whose products overflow or exceed any memory */
    s = base_spec(GN_REGIME_RELU), s.input_size = INT64_MAX / 2;
    CHECK_CREATE(s, GN_ERR_OUT_OF_MEMORY, "input_size");
    s = base_spec(GN_REGIME_RELU), s.output_size = INT64_MAX;
    CHECK_CREATE(s, GN_ERR_OUT_OF_MEMORY, "output_size");
    int64_t huge[2] = {(int64_t)1 << 31, (int64_t)1 << 31};
    s = base_spec(GN_REGIME_DECOUPLED), s.input_size = (int64_t)1 << 31, s.hidden_widths = huge;
    CHECK_CREATE(s, GN_ERR_OUT_OF_MEMORY, "overflow"); /* names the layer size, not an argument */
    /* invalid enum values */
    s = base_spec(GN_REGIME_CUSTOM), s.feature_activation = (gn_activation)7;
    CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "feature_activation");
    s = base_spec(GN_REGIME_CUSTOM), s.gate_kind = (gn_gate_kind)-3;
    CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "gate_kind");
    s = base_spec(GN_REGIME_CUSTOM), s.value_input = (gn_value_input)2;
    CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "value_input");
    s = base_spec(GN_REGIME_CUSTOM), s.init = (gn_init_kind)2;
    CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "init");
    /* parameters */
    const float bad_floats[] = {0.0f, -1.0f, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        s = base_spec(GN_REGIME_DECOUPLED), s.beta = bad_floats[i];
        if (isfinite(bad_floats[i])) CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "beta");
        else CHECK_FAILS(gn_network_create(&s, &made), "beta");
        s = base_spec(GN_REGIME_DECOUPLED), s.init_scale = bad_floats[i];
        if (isfinite(bad_floats[i])) CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "init_scale");
        else CHECK_FAILS(gn_network_create(&s, &made), "init_scale");
    }
    /* beta is documented as ignored for hard gates: a RELU spec with beta 0 is valid */
    s = base_spec(GN_REGIME_RELU), s.beta = 0.0f;
    made = NULL;
    CHECK_STATUS(gn_network_create(&s, &made), GN_OK, NULL);
    gn_network_free(made);
    /* inconsistent regime */
    s = base_spec(GN_REGIME_RELU), s.gate_kind = GN_GATE_SOFT;
    CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "regime");
    s = base_spec(GN_REGIME_RELU), s.value_input = GN_VALUE_INPUT_ONES;
    CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "regime");
    /* permutations: out of range, repeated, over unequal widths */
    int64_t eq[3] = {7, 7, 7}, p_range[3] = {0, 3, 1}, p_neg[3] = {0, -1, 1}, p_dup[3] = {0, 1, 1};
    s = base_spec(GN_REGIME_CUSTOM), s.n_hidden = 3, s.hidden_widths = eq, s.permutation = p_range;
    CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "permutation[1]");
    s.permutation = p_neg;
    CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "permutation[1]");
    s.permutation = p_dup;
    CHECK_CREATE(s, GN_ERR_INVALID_ARGUMENT, "permutation");
    int64_t swap[2] = {1, 0};
    s = base_spec(GN_REGIME_CUSTOM), s.permutation = swap; /* widths 5 and 4 */
    CHECK_CREATE(s, GN_ERR_SHAPE, "permutation");
    s = base_spec(GN_REGIME_RELU), s.permutation = swap;
    CHECK_FAILS(gn_network_create(&s, &made), "permutation");
    /* FIXED_LEARNT: missing, freed, foreign (in test_handles) or mis-shaped gate source */
    s = base_spec(GN_REGIME_FIXED_LEARNT);
    CHECK_CREATE(s, GN_ERR_NULL_POINTER, "gate_source");
    int64_t other[2] = {H1, H2 + 1};
    gn_network_spec t = base_spec(GN_REGIME_RELU);
    t.hidden_widths = other;
    gn_network *wrong = NULL;
    REQUIRE_OK(gn_network_create(&t, &wrong));
    s.gate_source = wrong;
    CHECK_CREATE(s, GN_ERR_SHAPE, "gate_source");
    gn_network_free(wrong);
    t = base_spec(GN_REGIME_RELU);
    t.input_size = D + 1;
    REQUIRE_OK(gn_network_create(&t, &wrong));
    s.gate_source = wrong;
    CHECK_CREATE(s, GN_ERR_SHAPE, "gate_source");
    gn_network_free(wrong);
}

/* ------------------------------------------------------------------------------------ */
/* info, widths, permutation, describe, weights                                          */
/* ------------------------------------------------------------------------------------ */

static void test_introspection(void) {
    snapshot a = take(dgn);
    gn_network_info info;
    memset(&info, 0x33, sizeof info);
    CHECK_STATUS(gn_network_get_info(dgn, NULL), GN_ERR_NULL_POINTER, "info");
    info.struct_size = 0;
    CHECK_STATUS(gn_network_get_info(dgn, &info), GN_ERR_INVALID_ARGUMENT, "struct_size");
    info.struct_size = sizeof info - 4;
    CHECK_STATUS(gn_network_get_info(dgn, &info), GN_ERR_INVALID_ARGUMENT, "struct_size");
    CHECK(info.n_hidden == 0x3333333333333333LL); /* not written */

    int64_t v = -5;
    const int64_t bad_layers[] = {-1, 2, INT64_MAX, INT64_MIN};
    for (int i = 0; i < 4; i++) {
        CHECK_STATUS(gn_network_hidden_width(dgn, bad_layers[i], &v), GN_ERR_INVALID_ARGUMENT, "layer");
        CHECK(v == -5);
    }
    CHECK_STATUS(gn_network_hidden_width(dgn, 0, NULL), GN_ERR_NULL_POINTER, "width");

    int64_t perm[3] = {-9, -9, -9};
    CHECK_STATUS(gn_network_permutation(dgn, NULL, 2), GN_ERR_NULL_POINTER, "perm");
    CHECK_STATUS(gn_network_permutation(dgn, perm, 1), GN_ERR_BUFFER_TOO_SMALL, "perm_capacity");
    CHECK_STATUS(gn_network_permutation(dgn, perm, -1), GN_ERR_BUFFER_TOO_SMALL, "perm_capacity");
    CHECK(perm[0] == -9 && perm[1] == -9);

    char buf[8] = "XXXXXXX";
    size_t needed = 0;
    CHECK_STATUS(gn_network_describe(dgn, NULL, 10, &needed), GN_ERR_NULL_POINTER, "buf");
    CHECK_STATUS(gn_network_describe(dgn, NULL, 0, NULL), GN_OK, NULL);
    CHECK_STATUS(gn_network_describe(dgn, buf, 1, NULL), GN_OK, NULL);
    CHECK(buf[0] == '\0' && buf[1] == 'X');
    char big[512];
    memset(big, 'X', sizeof big);
    CHECK_STATUS(gn_network_describe(dgn, big, sizeof big, &needed), GN_OK, NULL);
    CHECK(needed > 8 && needed < sizeof big && big[needed - 1] == '\0' && big[needed] == 'X');

    /* weight_shape / get / set / bias */
    int64_t r = -1, c = -1;
    CHECK_STATUS(gn_network_weight_shape(dgn, GN_PART_VALUE, 0, NULL, &c), GN_ERR_NULL_POINTER, "rows");
    CHECK_STATUS(gn_network_weight_shape(dgn, GN_PART_VALUE, 0, &r, NULL), GN_ERR_NULL_POINTER, "cols");
    CHECK_STATUS(gn_network_weight_shape(dgn, (gn_part)2, 0, &r, &c), GN_ERR_INVALID_ARGUMENT, "part");
    CHECK_STATUS(gn_network_weight_shape(dgn, (gn_part)-1, 0, &r, &c), GN_ERR_INVALID_ARGUMENT, "part");
    for (int i = 0; i < 4; i++) {
        int64_t layer = bad_layers[i] == 2 ? 3 : bad_layers[i]; /* layer 2 = output layer is valid here */
        CHECK_STATUS(gn_network_weight_shape(dgn, GN_PART_VALUE, layer, &r, &c), GN_ERR_INVALID_ARGUMENT, "layer");
    }
    /* the DECOUPLED net has no feature head: feature layer n_hidden does not exist */
    CHECK_STATUS(gn_network_weight_shape(dgn, GN_PART_FEATURE, 2, &r, &c), GN_ERR_INVALID_ARGUMENT, "layer");
    CHECK(r == -1 && c == -1);

    float w[64];
    fill(w, 64);
    CHECK_STATUS(gn_network_get_weights(dgn, GN_PART_VALUE, 0, NULL, 64), GN_ERR_NULL_POINTER, "out");
    CHECK_STATUS(gn_network_get_weights(dgn, GN_PART_VALUE, 0, w, H1 * D - 1), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_network_get_weights(dgn, GN_PART_VALUE, 0, w, -1), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_network_get_weights(dgn, (gn_part)5, 0, w, 64), GN_ERR_INVALID_ARGUMENT, "part");
    CHECK_STATUS(gn_network_get_weights(dgn, GN_PART_VALUE, 3, w, 64), GN_ERR_INVALID_ARGUMENT, "layer");
    CHECK(all_sentinel(w, 64));
    CHECK_STATUS(gn_network_get_bias(dgn, GN_PART_VALUE, 0, NULL, 64), GN_ERR_NULL_POINTER, "out");
    CHECK_STATUS(gn_network_get_bias(dgn, GN_PART_VALUE, 0, w, H1 - 1), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_network_get_bias(dgn, (gn_part)9, 0, w, 64), GN_ERR_INVALID_ARGUMENT, "part");
    CHECK_STATUS(gn_network_get_bias(dgn, GN_PART_FEATURE, -1, w, 64), GN_ERR_INVALID_ARGUMENT, "layer");
    CHECK(all_sentinel(w, 64));
    CHECK_STATUS(gn_network_get_bias(relu, GN_PART_VALUE, 0, w, 64), GN_ERR_UNSUPPORTED, "bias");

    float good[H1 * D];
    REQUIRE_OK(gn_network_get_weights(dgn, GN_PART_VALUE, 0, good, H1 * D));
    CHECK_STATUS(gn_network_set_weights(dgn, GN_PART_VALUE, 0, NULL, H1 * D), GN_ERR_NULL_POINTER, "w");
    CHECK_STATUS(gn_network_set_weights(dgn, GN_PART_VALUE, 0, good, H1 * D - 1), GN_ERR_SHAPE, "count");
    CHECK_STATUS(gn_network_set_weights(dgn, GN_PART_VALUE, 0, good, H1 * D + 1), GN_ERR_SHAPE, "count");
    CHECK_STATUS(gn_network_set_weights(dgn, GN_PART_VALUE, 0, good, -1), GN_ERR_SHAPE, "count");
    CHECK_STATUS(gn_network_set_weights(dgn, (gn_part)2, 0, good, H1 * D), GN_ERR_INVALID_ARGUMENT, "part");
    CHECK_STATUS(gn_network_set_weights(dgn, GN_PART_VALUE, 9, good, H1 * D), GN_ERR_INVALID_ARGUMENT, "layer");
    float poisoned[H1 * D];
    memcpy(poisoned, good, sizeof good);
    for (int i = 0; i < H1 * D; i++) poisoned[i] += 1.0f;
    poisoned[H1 * D - 1] = NAN; /* the last element: nothing before it may be written */
    CHECK_STATUS(gn_network_set_weights(dgn, GN_PART_VALUE, 0, poisoned, H1 * D), GN_ERR_NOT_FINITE, "w");
    poisoned[H1 * D - 1] = -INFINITY;
    CHECK_STATUS(gn_network_set_weights(dgn, GN_PART_VALUE, 0, poisoned, H1 * D), GN_ERR_NOT_FINITE, "w");

    CHECK_STATUS(gn_network_set_frozen(dgn, (gn_part)3, 1), GN_ERR_INVALID_ARGUMENT, "part");
    CHECK_STATUS(gn_network_set_frozen(dgn, (gn_part)-1, 0), GN_ERR_INVALID_ARGUMENT, "part");
    CHECK_STATUS(gn_network_copy_feature_weights(NULL, relu, 1), GN_ERR_NULL_POINTER, "dst");
    CHECK_STATUS(gn_network_copy_feature_weights(dgn, NULL, 1), GN_ERR_NULL_POINTER, "src");
    /* shape mismatch: the frozen flag must not be set either */
    int64_t ow[2] = {H1 + 1, H2};
    gn_network_spec t = base_spec(GN_REGIME_RELU);
    t.hidden_widths = ow;
    gn_network *wrong = NULL;
    REQUIRE_OK(gn_network_create(&t, &wrong));
    CHECK_STATUS(gn_network_copy_feature_weights(dgn, wrong, 1), GN_ERR_SHAPE, "src");
    gn_network_free(wrong);
    CHECK_UNCHANGED(dgn, a);
    free(a.bytes);
}

/* ------------------------------------------------------------------------------------ */
/* training                                                                              */
/* ------------------------------------------------------------------------------------ */

static gn_train_options opts(void) {
    gn_train_options o;
    gn_train_options_init(&o);
    o.batch_size = 4;
    o.learning_rate = 1e-2f;
    return o;
}

#define TRAIN_FAILS(net_, xx, yy, n, xt, yt, nt, o, hist, cap, expect, arg)                    \
    do {                                                                                       \
        int64_t run_ = -42;                                                                    \
        CHECK_STATUS(gn_train((net_), (xx), (yy), (n), (xt), (yt), (nt), (o), (hist), (cap), &run_), (expect), \
                     (arg));                                                                   \
        CHECK(run_ == -42 || run_ == 0);                                                       \
    } while (0)

static void test_train(void) {
    snapshot a = take(dgn), b = take(relu);
    gn_train_options o = opts();
    float xn[N * D], xt[N * D];
    int32_t yb[N];
    gn_epoch_metrics hist[2];
    CHECK_STATUS(gn_train_options_init(NULL), GN_ERR_NULL_POINTER, "opts");
    TRAIN_FAILS(dgn, NULL, y, N, NULL, NULL, 0, &o, NULL, 0, GN_ERR_NULL_POINTER, "x");
    TRAIN_FAILS(dgn, x, NULL, N, NULL, NULL, 0, &o, NULL, 0, GN_ERR_NULL_POINTER, "y");
    TRAIN_FAILS(dgn, x, y, N, NULL, NULL, 0, NULL, NULL, 0, GN_ERR_NULL_POINTER, "opts");
    TRAIN_FAILS(dgn, x, y, 0, NULL, NULL, 0, &o, NULL, 0, GN_ERR_INVALID_ARGUMENT, "n");
    TRAIN_FAILS(dgn, x, y, -3, NULL, NULL, 0, &o, NULL, 0, GN_ERR_INVALID_ARGUMENT, "n");
    CHECK(strstr(gn_last_error(), "got -3") != NULL); /* the value seen */
    CHECK_FAILS(gn_train(dgn, x, y, INT64_MAX / 2, NULL, NULL, 0, &o, NULL, 0, NULL), "n");
    CHECK_FAILS(gn_train(dgn, x, y, INT64_MAX, NULL, NULL, 0, &o, NULL, 0, NULL), "n");
    /* NaN / Inf anywhere in x, labels out of range */
    const float poison[3] = {NAN, INFINITY, -INFINITY};
    const int where[3] = {0, N * D / 2, N * D - 1};
    for (int i = 0; i < 3; i++) {
        memcpy(xn, x, sizeof x);
        xn[where[i]] = poison[i];
        TRAIN_FAILS(dgn, xn, y, N, NULL, NULL, 0, &o, NULL, 0, GN_ERR_NOT_FINITE, "x");
        TRAIN_FAILS(dgn, x, y, N, xn, y, N, &o, NULL, 0, GN_ERR_NOT_FINITE, "x_test");
    }
    const int32_t bad_labels[3] = {-1, K, INT32_MAX};
    for (int i = 0; i < 3; i++) {
        memcpy(yb, y, sizeof y);
        yb[where[i] % N] = bad_labels[i];
        TRAIN_FAILS(dgn, x, yb, N, NULL, NULL, 0, &o, NULL, 0, GN_ERR_LABEL_RANGE, "y[");
        TRAIN_FAILS(dgn, x, y, N, x, yb, N, &o, NULL, 0, GN_ERR_LABEL_RANGE, "y_test");
    }
    /* the test set: all three or none */
    memcpy(xt, x, sizeof x);
    TRAIN_FAILS(dgn, x, y, N, NULL, y, N, &o, NULL, 0, GN_ERR_NULL_POINTER, "x_test");
    TRAIN_FAILS(dgn, x, y, N, xt, NULL, N, &o, NULL, 0, GN_ERR_NULL_POINTER, "y_test");
    TRAIN_FAILS(dgn, x, y, N, xt, y, 0, &o, NULL, 0, GN_ERR_INVALID_ARGUMENT, "n_test");
    TRAIN_FAILS(dgn, x, y, N, xt, y, -1, &o, NULL, 0, GN_ERR_INVALID_ARGUMENT, "n_test");
    TRAIN_FAILS(dgn, x, y, N, NULL, NULL, 5, &o, NULL, 0, GN_ERR_NULL_POINTER, "x_test");
    /* history */
    TRAIN_FAILS(dgn, x, y, N, NULL, NULL, 0, &o, NULL, 2, GN_ERR_NULL_POINTER, "history");
    TRAIN_FAILS(dgn, x, y, N, NULL, NULL, 0, &o, hist, -1, GN_ERR_INVALID_ARGUMENT, "history_capacity");
    /* options */
    gn_train_options p;
#define OPT_FAILS(stmt, expect, arg)                                                           \
    do {                                                                                       \
        p = opts();                                                                            \
        stmt;                                                                                  \
        TRAIN_FAILS(dgn, x, y, N, NULL, NULL, 0, &p, NULL, 0, (expect), (arg));                \
    } while (0)
    OPT_FAILS(p.struct_size = 0, GN_ERR_INVALID_ARGUMENT, "struct_size");
    OPT_FAILS(p.struct_size = sizeof p - 8, GN_ERR_INVALID_ARGUMENT, "struct_size");
    OPT_FAILS(p.optimizer = (gn_optimizer)2, GN_ERR_INVALID_ARGUMENT, "optimizer");
    OPT_FAILS(p.optimizer = (gn_optimizer)-1, GN_ERR_INVALID_ARGUMENT, "optimizer");
    OPT_FAILS(p.loss = (gn_loss)2, GN_ERR_INVALID_ARGUMENT, "loss");
    OPT_FAILS(p.learning_rate = 0, GN_ERR_INVALID_ARGUMENT, "learning_rate");
    OPT_FAILS(p.learning_rate = -1e-3f, GN_ERR_INVALID_ARGUMENT, "learning_rate");
    OPT_FAILS(p.learning_rate = NAN, GN_ERR_INVALID_ARGUMENT, "learning_rate");
    OPT_FAILS(p.learning_rate = INFINITY, GN_ERR_INVALID_ARGUMENT, "learning_rate");
    OPT_FAILS(p.momentum = 1.0f, GN_ERR_INVALID_ARGUMENT, "momentum");
    OPT_FAILS(p.momentum = -0.1f, GN_ERR_INVALID_ARGUMENT, "momentum");
    OPT_FAILS(p.weight_decay = -1e-4f, GN_ERR_INVALID_ARGUMENT, "weight_decay");
    OPT_FAILS(p.weight_decay = NAN, GN_ERR_INVALID_ARGUMENT, "weight_decay");
    OPT_FAILS(p.adam_beta1 = 1.0f, GN_ERR_INVALID_ARGUMENT, "adam_beta1");
    OPT_FAILS(p.adam_beta2 = 1.5f, GN_ERR_INVALID_ARGUMENT, "adam_beta2");
    OPT_FAILS(p.adam_epsilon = 0.0f, GN_ERR_INVALID_ARGUMENT, "adam_epsilon");
    OPT_FAILS(p.batch_size = 0, GN_ERR_INVALID_ARGUMENT, "batch_size");
    OPT_FAILS(p.batch_size = -7, GN_ERR_INVALID_ARGUMENT, "batch_size");
    OPT_FAILS(p.batch_size = INT64_MAX, GN_ERR_INVALID_ARGUMENT, "batch_size");
    OPT_FAILS(p.epochs = 0, GN_ERR_INVALID_ARGUMENT, "epochs");
    OPT_FAILS(p.epochs = INT64_MIN, GN_ERR_INVALID_ARGUMENT, "epochs");
    OPT_FAILS(p.train_feature_head = 1, GN_ERR_UNSUPPORTED, "feature_head");
    /* squared loss with one output: labels are 0/1 */
    gn_network_spec s = base_spec(GN_REGIME_FIXED_RANDOM_II);
    s.output_size = 1;
    gn_network *bin = NULL;
    REQUIRE_OK(gn_network_create(&s, &bin));
    snapshot c = take(bin);
    memset(yb, 0, sizeof yb);
    yb[3] = 2;
    p = opts();
    p.loss = GN_LOSS_SQUARED;
    CHECK_STATUS(gn_train(bin, x, yb, N, NULL, NULL, 0, &p, NULL, 0, NULL), GN_ERR_LABEL_RANGE, "y[3]");
    CHECK_UNCHANGED(bin, c);
    /* nothing trainable */
    CHECK_STATUS(gn_network_set_frozen(bin, GN_PART_VALUE, 1), GN_OK, NULL);
    snapshot d = take(bin);
    yb[3] = 1;
    CHECK_STATUS(gn_train(bin, x, yb, N, NULL, NULL, 0, &p, NULL, 0, NULL), GN_ERR_UNSUPPORTED, "nothing to train");
    CHECK_UNCHANGED(bin, d);
    gn_network_free(bin);
    free(c.bytes);
    free(d.bytes);
    CHECK_UNCHANGED(dgn, a);
    CHECK_UNCHANGED(relu, b);
    /* divergence: the loss becomes non-finite; the network must be restored exactly (weights,
     * epoch count, optimizer moments). dgn carries Adam moments: diverge once with Adam (same
     * optimizer) and once with SGD (a switch that replaces the optimizer state). */
    float big[N * D];
    for (int i = 0; i < N * D; i++) big[i] = x[i] * 1e18f;
    for (int k = 0; k < 2; k++) {
        gn_network *victim = NULL;
        REQUIRE_OK(gn_network_clone(dgn, &victim));
        snapshot e = take(victim);
        p = opts();
        p.optimizer = k == 0 ? GN_OPTIMIZER_ADAM : GN_OPTIMIZER_SGD;
        p.learning_rate = 1e30f;
        p.epochs = 3;
        gn_status st = gn_train(victim, big, y, N, NULL, NULL, 0, &p, NULL, 0, NULL);
        CHECKF(st == GN_ERR_NOT_FINITE, "divergent training (%s) gave %s (%s)", k ? "SGD" : "Adam",
               gn_status_name(st), gn_last_error());
        CHECK(strstr(gn_last_error(), "restored") != NULL);
        CHECKF(unchanged(victim, &e), "divergent training with %s: network not restored to its state before the call",
               k ? "SGD after Adam" : "Adam");
        gn_network_free(victim);
        free(e.bytes);
    }
    free(a.bytes);
    free(b.bytes);
}

/* One output and cross-entropy: softmax over a single class is meaningless and a label 1
 * would index a second, nonexistent output (read in evaluate, written in the gradient of
 * train). The library rejects the loss itself (GN_ERR_INVALID_ARGUMENT naming "loss"). */
static void test_single_output_cross_entropy(void) {
    gn_network_spec s = base_spec(GN_REGIME_FIXED_RANDOM_II);
    s.output_size = 1;
    s.seed = 3;
    gn_network *bin = NULL;
    REQUIRE_OK(gn_network_create(&s, &bin));
    snapshot a = take(bin);
    int32_t yb[N];
    for (int i = 0; i < N; i++) yb[i] = i % 2;
    double loss = -1, acc = -1;
    CHECK_STATUS(gn_evaluate(bin, x, yb, N, GN_LOSS_CROSS_ENTROPY, &loss, &acc), GN_ERR_INVALID_ARGUMENT, "loss");
    CHECKF(loss == -1, "evaluate wrote loss %g", loss);
    gn_train_options o = opts();
    o.batch_size = N; /* one batch, all labels 1: the last row's gradient would land past the buffer */
    for (int i = 0; i < N; i++) yb[i] = 1;
    CHECK_STATUS(gn_train(bin, x, yb, N, NULL, NULL, 0, &o, NULL, 0, NULL), GN_ERR_INVALID_ARGUMENT, "loss");
    CHECK_UNCHANGED(bin, a);
    o.loss = GN_LOSS_SQUARED; /* the squared loss takes labels 0 / 1 with one output */
    CHECK_STATUS(gn_train(bin, x, yb, N, NULL, NULL, 0, &o, NULL, 0, NULL), GN_OK, NULL);
    CHECK(!unchanged(bin, &a));
    free(a.bytes);
    gn_network_free(bin);
}

/* ------------------------------------------------------------------------------------ */
/* prediction, evaluation, gates, kernels                                                */
/* ------------------------------------------------------------------------------------ */

static void test_predict_and_gates(void) {
    snapshot a = take(dgn), b = take(relu);
    float out[N * K + 8], gates[N * H1 + 8], xn[N * D];
    int32_t cls[N + 4], yb[N];
    uint64_t words[N + 4];
    double loss = -1, acc = -1;
    fill(out, N * K + 8);
    fill(gates, N * H1 + 8);
    /* predict, predict_feature_head, predict_classes */
    CHECK_STATUS(gn_predict(dgn, NULL, N, out, N * K), GN_ERR_NULL_POINTER, "x");
    CHECK_STATUS(gn_predict(dgn, x, N, NULL, N * K), GN_ERR_NULL_POINTER, "out");
    CHECK_STATUS(gn_predict(dgn, x, 0, out, N * K), GN_ERR_INVALID_ARGUMENT, "n");
    CHECK_STATUS(gn_predict(dgn, x, -1, out, N * K), GN_ERR_INVALID_ARGUMENT, "n");
    CHECK_FAILS(gn_predict(dgn, x, INT64_MAX / 2, out, INT64_MAX), "n");
    CHECK_STATUS(gn_predict(dgn, x, N, out, N * K - 1), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK(strstr(gn_last_error(), "60") != NULL); /* names the size needed, N * K */
    CHECK_STATUS(gn_predict(dgn, x, N, out, -1), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_predict_feature_head(dgn, x, N, out, N * K), GN_ERR_UNSUPPORTED, "head");
    CHECK_STATUS(gn_predict_feature_head(relu, x, N, out, N * K - 1), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_predict_feature_head(relu, NULL, N, out, N * K), GN_ERR_NULL_POINTER, "x");
    CHECK_STATUS(gn_predict_classes(dgn, x, N, NULL, N), GN_ERR_NULL_POINTER, "out");
    CHECK_STATUS(gn_predict_classes(dgn, x, N, (int32_t *)out, N - 1), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_predict_classes(dgn, NULL, N, cls, N), GN_ERR_NULL_POINTER, "x");
    CHECK_STATUS(gn_predict_classes(dgn, x, 0, cls, N), GN_ERR_INVALID_ARGUMENT, "n");
    for (int i = 0; i < 3; i++) {
        memcpy(xn, x, sizeof x);
        xn[(i * 37) % (N * D)] = i == 0 ? NAN : (i == 1 ? INFINITY : -INFINITY);
        CHECK_STATUS(gn_predict(dgn, xn, N, out, N * K), GN_ERR_NOT_FINITE, "x");
        CHECK_STATUS(gn_predict_feature_head(relu, xn, N, out, N * K), GN_ERR_NOT_FINITE, "x");
        CHECK_STATUS(gn_predict_classes(dgn, xn, N, (int32_t *)out, N), GN_ERR_NOT_FINITE, "x");
        CHECK_STATUS(gn_evaluate(dgn, xn, y, N, GN_LOSS_CROSS_ENTROPY, &loss, &acc), GN_ERR_NOT_FINITE, "x");
        CHECK_STATUS(gn_gates(dgn, xn, N, 0, gates, N * H1), GN_ERR_NOT_FINITE, "x");
        CHECK_STATUS(gn_gates_packed(relu, xn, N, 0, words, N), GN_ERR_NOT_FINITE, "x");
    }
    CHECK(all_sentinel(out, N * K + 8));
    /* evaluate */
    CHECK_STATUS(gn_evaluate(dgn, NULL, y, N, GN_LOSS_SQUARED, &loss, &acc), GN_ERR_NULL_POINTER, "x");
    CHECK_STATUS(gn_evaluate(dgn, x, NULL, N, GN_LOSS_SQUARED, &loss, &acc), GN_ERR_NULL_POINTER, "y");
    CHECK_STATUS(gn_evaluate(dgn, x, y, 0, GN_LOSS_SQUARED, &loss, &acc), GN_ERR_INVALID_ARGUMENT, "n");
    CHECK_STATUS(gn_evaluate(dgn, x, y, N, (gn_loss)5, &loss, &acc), GN_ERR_INVALID_ARGUMENT, "loss");
    memcpy(yb, y, sizeof y);
    yb[N - 1] = K;
    CHECK_STATUS(gn_evaluate(dgn, x, yb, N, GN_LOSS_CROSS_ENTROPY, &loss, &acc), GN_ERR_LABEL_RANGE, "y[19]");
    yb[N - 1] = -1;
    CHECK_STATUS(gn_evaluate(dgn, x, yb, N, GN_LOSS_SQUARED, &loss, &acc), GN_ERR_LABEL_RANGE, "y[19]");
    CHECK(loss == -1 && acc == -1);
    CHECK_STATUS(gn_evaluate(dgn, x, y, N, GN_LOSS_SQUARED, NULL, NULL), GN_OK, NULL);
    /* gates */
    CHECK_STATUS(gn_gates(dgn, x, N, -1, gates, N * H1), GN_ERR_INVALID_ARGUMENT, "layer");
    CHECK_STATUS(gn_gates(dgn, x, N, 2, gates, N * H1), GN_ERR_INVALID_ARGUMENT, "layer");
    CHECK_STATUS(gn_gates(dgn, NULL, N, 0, gates, N * H1), GN_ERR_NULL_POINTER, "x");
    CHECK_STATUS(gn_gates(dgn, x, N, 0, NULL, N * H1), GN_ERR_NULL_POINTER, "out");
    CHECK_STATUS(gn_gates(dgn, x, 0, 0, gates, N * H1), GN_ERR_INVALID_ARGUMENT, "n");
    CHECK_STATUS(gn_gates(dgn, x, N, 0, gates, N * H1 - 1), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_FAILS(gn_gates(dgn, x, INT64_MAX / 4, 0, gates, INT64_MAX), "n");
    int64_t wpr = -1;
    CHECK_STATUS(gn_gates_packed_words(relu, 0, NULL), GN_ERR_NULL_POINTER, "words_per_row");
    CHECK_STATUS(gn_gates_packed_words(relu, 2, &wpr), GN_ERR_INVALID_ARGUMENT, "layer");
    CHECK_STATUS(gn_gates_packed_words(relu, INT64_MIN, &wpr), GN_ERR_INVALID_ARGUMENT, "layer");
    CHECK(wpr == -1);
    memset(words, 0xEE, sizeof words);
    CHECK_STATUS(gn_gates_packed(dgn, x, N, 0, words, N), GN_ERR_UNSUPPORTED, "soft");
    CHECK_STATUS(gn_gates_packed(relu, x, N, 0, words, N - 1), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_gates_packed(relu, x, N, 5, words, N), GN_ERR_INVALID_ARGUMENT, "layer");
    CHECK_STATUS(gn_gates_packed(relu, NULL, N, 0, words, N), GN_ERR_NULL_POINTER, "x");
    CHECK_STATUS(gn_gates_packed(relu, x, N, 0, NULL, N), GN_ERR_NULL_POINTER, "out");
    CHECK_STATUS(gn_gates_packed(relu, x, -2, 0, words, N), GN_ERR_INVALID_ARGUMENT, "n");
    int words_ok = 1;
    for (int i = 0; i < N + 4; i++)
        if (words[i] != 0xEEEEEEEEEEEEEEEEull) words_ok = 0;
    CHECK(words_ok);
    CHECK(all_sentinel(out, N * K + 8) && all_sentinel(gates, N * H1 + 8));
    CHECK_UNCHANGED(dgn, a);
    CHECK_UNCHANGED(relu, b);
    free(a.bytes);
    free(b.bytes);
}

static void test_kernel_args(void) {
    snapshot a = take(relu);
    enum { NA = 4, NB = 3 };
    float out[NA * 8 + 8], xn[N * D];
    fill(out, NA * 8 + 8);
    const float *xa = x, *xb = x + 5 * D;
    CHECK_STATUS(gn_kernel(relu, (gn_kernel_kind)5, 0, xa, NA, xb, NB, out, NB, NA * NB), GN_ERR_INVALID_ARGUMENT,
                 "kind");
    CHECK_STATUS(gn_kernel(relu, (gn_kernel_kind)-1, 0, xa, NA, xb, NB, out, NB, NA * NB), GN_ERR_INVALID_ARGUMENT,
                 "kind");
    CHECK_STATUS(gn_kernel(relu, GN_KERNEL_BASE, 2, xa, NA, xb, NB, out, NB, NA * NB), GN_ERR_INVALID_ARGUMENT, "layer");
    CHECK_STATUS(gn_kernel(relu, GN_KERNEL_BASE, -1, xa, NA, xb, NB, out, NB, NA * NB), GN_ERR_INVALID_ARGUMENT,
                 "layer");
    CHECK_STATUS(gn_kernel(relu, GN_KERNEL_NPK, 0, NULL, NA, xb, NB, out, NB, NA * NB), GN_ERR_NULL_POINTER, "xa");
    CHECK_STATUS(gn_kernel(relu, GN_KERNEL_NPK, 0, xa, NA, NULL, NB, out, NB, NA * NB), GN_ERR_NULL_POINTER, "xb");
    CHECK_STATUS(gn_kernel(relu, GN_KERNEL_NPK, 0, xa, NA, xb, NB, NULL, NB, NA * NB), GN_ERR_NULL_POINTER, "out");
    CHECK_STATUS(gn_kernel(relu, GN_KERNEL_NPK, 0, xa, 0, xb, NB, out, NB, NA * NB), GN_ERR_INVALID_ARGUMENT, "n_a");
    CHECK_STATUS(gn_kernel(relu, GN_KERNEL_NPK, 0, xa, NA, xb, -1, out, NB, NA * NB), GN_ERR_INVALID_ARGUMENT, "n_b");
    CHECK_STATUS(gn_kernel(relu, GN_KERNEL_NPK, 0, xa, NA, xb, NB, out, NB - 1, NA * NB), GN_ERR_INVALID_ARGUMENT,
                 "ld_out");
    CHECK_STATUS(gn_kernel(relu, GN_KERNEL_NPK, 0, xa, NA, xb, NB, out, -5, NA * NB), GN_ERR_INVALID_ARGUMENT, "ld_out");
    CHECK_STATUS(gn_kernel(relu, GN_KERNEL_NPK, 0, xa, NA, xb, NB, out, NB, NA * NB - 1), GN_ERR_BUFFER_TOO_SMALL,
                 "capacity");
    CHECK_STATUS(gn_kernel(relu, GN_KERNEL_NPK, 0, xa, NA, xb, NB, out, 8, (NA - 1) * 8 + NB - 1),
                 GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_kernel(relu, GN_KERNEL_NPK, 0, xa, NA, xa, NA, out, NA, NA * NA - 1), GN_ERR_BUFFER_TOO_SMALL,
                 "capacity"); /* symmetric call */
    for (int i = 0; i < 2; i++) {
        memcpy(xn, x, sizeof x);
        xn[3] = i ? INFINITY : NAN;
        CHECK_STATUS(gn_kernel(relu, GN_KERNEL_NPK, 0, xn, NA, xb, NB, out, NB, NA * NB), GN_ERR_NOT_FINITE, "xa");
        CHECK_STATUS(gn_kernel(relu, GN_KERNEL_NPK, 0, xa, NA, xn, NB, out, NB, NA * NB), GN_ERR_NOT_FINITE, "xb");
        CHECK_STATUS(gn_kernel(relu, GN_KERNEL_INPUT_GRAM, 0, xn, NA, xn, NA, out, NA, NA * NA), GN_ERR_NOT_FINITE,
                     "xa");
    }
    /* overflowing sizes and strides */
    CHECK_FAILS(gn_kernel(relu, GN_KERNEL_NPK, 0, xa, INT64_MAX / 2, xb, NB, out, NB, INT64_MAX), "n_a");
    CHECK_FAILS(gn_kernel(relu, GN_KERNEL_NPK, 0, xa, 3, xb, NB, out, INT64_MAX / 2 + 1, INT64_MAX), "ld_out");
    CHECK(all_sentinel(out, NA * 8 + 8));
    CHECK_UNCHANGED(relu, a);
    free(a.bytes);
}

/* (n_a - 1) * ld_out fits in int64 but adding n_b does not: one section per case, since a
 * trap (integer overflow) would end the section. */
static void kernel_ld_overflow(int64_t ld) {
    float out[16];
    fill(out, 16);
    CHECK_FAILS(gn_kernel(relu, GN_KERNEL_NPK, 0, x, 2, x + 5 * D, 3, out, ld, INT64_MAX), "ld_out");
    CHECK(all_sentinel(out, 16));
}
static void test_kernel_ld_overflow_max(void) { kernel_ld_overflow(INT64_MAX); }
static void test_kernel_ld_overflow_max_minus_1(void) { kernel_ld_overflow(INT64_MAX - 1); }

/* ------------------------------------------------------------------------------------ */
/* persistence and data helpers                                                          */
/* ------------------------------------------------------------------------------------ */

static void test_persistence_args(void) {
    snapshot a = take(dgn);
    gn_network *out = NULL;
    size_t needed = 0;
    unsigned char buf[64];
    memset(buf, 0xCD, sizeof buf);
    CHECK_STATUS(gn_network_save(dgn, NULL, 0), GN_ERR_NULL_POINTER, "path");
    CHECK_STATUS(gn_network_save(dgn, "", 0), GN_ERR_INVALID_ARGUMENT, "path");
    CHECK_STATUS(gn_network_save(dgn, "/nonexistent-dir-gn/x.gdn", 0), GN_ERR_IO, "/nonexistent-dir-gn/x.gdn");
    CHECK_STATUS(gn_network_save(dgn, "/proc/version", 0), GN_ERR_IO, "/proc/version");
    CHECK_STATUS(gn_network_load(NULL, &out), GN_ERR_NULL_POINTER, "path");
    CHECK_STATUS(gn_network_load("", &out), GN_ERR_INVALID_ARGUMENT, "path");
    CHECK_STATUS(gn_network_load("/nonexistent-dir-gn/x.gdn", &out), GN_ERR_IO, "/nonexistent-dir-gn/x.gdn");
    CHECK_STATUS(gn_network_load("/nonexistent-dir-gn/x.gdn", NULL), GN_ERR_NULL_POINTER, "out");
    CHECK_STATUS(gn_network_load("/proc/self/status", &out), GN_ERR_CORRUPT, "/proc/self/status");
    CHECK(out == NULL);
    CHECK_STATUS(gn_network_serialize(dgn, 0, buf, sizeof buf, NULL), GN_ERR_NULL_POINTER, "needed");
    CHECK_STATUS(gn_network_serialize(dgn, 0, buf, sizeof buf, &needed), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK(needed > sizeof buf);
    CHECK_STATUS(gn_network_serialize(dgn, 0, NULL, needed, &needed), GN_ERR_NULL_POINTER, "buf");
    int untouched = 1;
    for (size_t i = 0; i < sizeof buf; i++)
        if (buf[i] != 0xCD) untouched = 0;
    CHECK(untouched);
    CHECK_STATUS(gn_network_deserialize(NULL, 100, &out), GN_ERR_NULL_POINTER, "buf");
    CHECK_STATUS(gn_network_deserialize(buf, sizeof buf, NULL), GN_ERR_NULL_POINTER, "out");
    CHECK_STATUS(gn_network_deserialize(buf, 0, &out), GN_ERR_CORRUPT, NULL);
    CHECK_STATUS(gn_network_deserialize(buf, sizeof buf, &out), GN_ERR_CORRUPT, NULL);
    CHECK_FAILS(gn_network_deserialize(buf, SIZE_MAX, &out), "size");
    CHECK(out == NULL);
    /* a valid header announcing an absurd payload length must not be trusted */
    snapshot s = take(dgn);
    if (s.size > 28) {
        unsigned char *evil = malloc(s.size);
        memcpy(evil, s.bytes, s.size);
        memset(evil + 16, 0xFF, 8); /* u64 payload length */
        CHECK_STATUS(gn_network_deserialize(evil, s.size, &out), GN_ERR_CORRUPT, NULL);
        free(evil);
    }
    free(s.bytes);
    CHECK_UNCHANGED(dgn, a);
    free(a.bytes);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(p, 1, n, f);
    fclose(f);
}

static void test_data_args(void) {
    const char *img = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    char path[64];
    snprintf(path, sizeof path, "/tmp/gn-ctest-idx-%ld.idx", (long)getpid());
    int64_t dims[8] = {-1, -1}, nd = -1;
    float f[16];
    int32_t labels[16];
    fill(f, 16);
    CHECK_STATUS(gn_idx_dims(NULL, dims, 8, &nd), GN_ERR_NULL_POINTER, "path");
    CHECK_STATUS(gn_idx_dims("", dims, 8, &nd), GN_ERR_INVALID_ARGUMENT, "path");
    CHECK_STATUS(gn_idx_dims(img, NULL, 8, &nd), GN_ERR_NULL_POINTER, "dims");
    CHECK_STATUS(gn_idx_dims(img, dims, 8, NULL), GN_ERR_NULL_POINTER, "ndim");
    CHECK_STATUS(gn_idx_dims(img, dims, 0, &nd), GN_ERR_BUFFER_TOO_SMALL, "dims_capacity");
    CHECK_STATUS(gn_idx_dims(img, dims, -1, &nd), GN_ERR_BUFFER_TOO_SMALL, "dims_capacity");
    CHECK(dims[0] == -1 && nd == -1);
    CHECK_STATUS(gn_idx_dims("/nonexistent-gn.idx", dims, 8, &nd), GN_ERR_IO, "/nonexistent-gn.idx");
    CHECK_STATUS(gn_idx_dims("include/gatednet.h", dims, 8, &nd), GN_ERR_CORRUPT, "gatednet.h");
    CHECK_STATUS(gn_idx_read_f32(NULL, 1.0f, f, 16), GN_ERR_NULL_POINTER, "path");
    CHECK_STATUS(gn_idx_read_f32(img, 1.0f, NULL, 16), GN_ERR_NULL_POINTER, "out");
    CHECK_STATUS(gn_idx_read_f32(img, 1.0f, f, 16), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK_STATUS(gn_idx_read_f32(img, NAN, f, 16), GN_ERR_NOT_FINITE, "scale");
    CHECK_STATUS(gn_idx_read_f32(img, INFINITY, f, 16), GN_ERR_NOT_FINITE, "scale");
    CHECK_STATUS(gn_idx_read_i32(NULL, labels, 16), GN_ERR_NULL_POINTER, "path");
    CHECK_STATUS(gn_idx_read_i32(img, NULL, 16), GN_ERR_NULL_POINTER, "out");
    CHECK_STATUS(gn_idx_read_i32(img, labels, 16), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    CHECK(all_sentinel(f, 16));
    /* hand-made IDX files: zero-sized dimension, float data read as labels, huge dimensions,
     * bad magic, too many dimensions */
    const unsigned char zero_dim[] = {0, 0, 0x08, 2, 0, 0, 0, 0, 0, 0, 0, 3};
    write_bytes(path, zero_dim, sizeof zero_dim);
    gn_status st = gn_idx_dims(path, dims, 8, &nd);
    CHECKF(st == GN_OK || st == GN_ERR_CORRUPT, "IDX with a zero dimension: %s", gn_status_name(st));
    st = gn_idx_read_f32(path, 1.0f, f, 16);
    CHECKF(st == GN_OK || st == GN_ERR_CORRUPT, "IDX with a zero dimension, read: %s", gn_status_name(st));
    st = gn_idx_read_i32(path, labels, 16);
    CHECKF(st == GN_OK || st == GN_ERR_CORRUPT, "IDX with a zero dimension, read labels: %s", gn_status_name(st));
    const unsigned char floats[] = {0, 0, 0x0D, 1, 0, 0, 0, 1, 0x3F, 0x80, 0, 0};
    write_bytes(path, floats, sizeof floats);
    CHECK_STATUS(gn_idx_read_f32(path, 2.0f, f, 16), GN_OK, NULL);
    CHECK(f[0] == 2.0f);
    CHECK_STATUS(gn_idx_read_i32(path, labels, 16), GN_ERR_UNSUPPORTED, "floating-point");
    const unsigned char huge[] = {0, 0, 0x0E, 4, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                  0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3};
    write_bytes(path, huge, sizeof huge);
    CHECK_STATUS(gn_idx_dims(path, dims, 8, &nd), GN_ERR_CORRUPT, path);
    const unsigned char magic[] = {1, 0, 0x08, 1, 0, 0, 0, 1, 7};
    write_bytes(path, magic, sizeof magic);
    CHECK_STATUS(gn_idx_dims(path, dims, 8, &nd), GN_ERR_CORRUPT, path);
    const unsigned char ndim9[] = {0, 0, 0x08, 9, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0,
                                   1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 5};
    write_bytes(path, ndim9, sizeof ndim9);
    CHECK_STATUS(gn_idx_dims(path, dims, 8, &nd), GN_ERR_CORRUPT, path);
    write_bytes(path, "", 0);
    CHECK_STATUS(gn_idx_dims(path, dims, 8, &nd), GN_ERR_CORRUPT, path);
    unlink(path);

    /* label corruption */
    int32_t lab[10] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0}, keep[10];
    memcpy(keep, lab, sizeof lab);
    int64_t changed = -1;
    CHECK_STATUS(gn_corrupt_labels(NULL, 10, 3, 0.5, 1, &changed), GN_ERR_NULL_POINTER, "labels");
    CHECK_STATUS(gn_corrupt_labels(lab, 0, 3, 0.5, 1, &changed), GN_ERR_INVALID_ARGUMENT, "n");
    CHECK_STATUS(gn_corrupt_labels(lab, -1, 3, 0.5, 1, &changed), GN_ERR_INVALID_ARGUMENT, "n");
    CHECK_STATUS(gn_corrupt_labels(lab, 10, 0, 0.5, 1, &changed), GN_ERR_INVALID_ARGUMENT, "classes");
    CHECK_STATUS(gn_corrupt_labels(lab, 10, -4, 0.5, 1, &changed), GN_ERR_INVALID_ARGUMENT, "classes");
    CHECK_STATUS(gn_corrupt_labels(lab, 10, 3, -0.01, 1, &changed), GN_ERR_INVALID_ARGUMENT, "gamma");
    CHECK_STATUS(gn_corrupt_labels(lab, 10, 3, 1.01, 1, &changed), GN_ERR_INVALID_ARGUMENT, "gamma");
    CHECK_STATUS(gn_corrupt_labels(lab, 10, 3, NAN, 1, &changed), GN_ERR_INVALID_ARGUMENT, "gamma");
    lab[9] = 3;
    keep[9] = 3;
    CHECK_STATUS(gn_corrupt_labels(lab, 10, 3, 0.5, 1, &changed), GN_ERR_LABEL_RANGE, "labels[9]");
    lab[9] = -1;
    keep[9] = -1;
    CHECK_STATUS(gn_corrupt_labels(lab, 10, 3, 1.0, 1, &changed), GN_ERR_LABEL_RANGE, "labels[9]");
    CHECK(memcmp(lab, keep, sizeof lab) == 0 && changed == -1);
}

/* ------------------------------------------------------------------------------------ */
/* threads                                                                               */
/* ------------------------------------------------------------------------------------ */

typedef struct {
    pthread_barrier_t *barrier;
    char seen_before[256]; /* this thread's gn_last_error() before its own failure */
    char seen_after[256];
    gn_status status;
    int predictions_ok;
    const float *expected;
    gn_network *mine; /* this thread's own clone: a handle is used by one thread at a time */
} thread_job;

static void *thread_main(void *arg) {
    thread_job *job = arg;
    snprintf(job->seen_before, sizeof job->seen_before, "%s", gn_last_error());
    pthread_barrier_wait(job->barrier); /* all threads have read their initial message */
    job->status = gn_kernel(job->mine, GN_KERNEL_NPK, 0, x, 1, x, 1, NULL, 1, 1); /* out NULL */
    snprintf(job->seen_after, sizeof job->seen_after, "%s", gn_last_error());
    pthread_barrier_wait(job->barrier); /* the main thread checks its own message now */
    pthread_barrier_wait(job->barrier);
    /* distinct handles are independent: all threads predict at once, each with its clone */
    float out[N * K];
    job->predictions_ok = 1;
    for (int r = 0; r < 200 && job->predictions_ok; r++)
        if (gn_predict(job->mine, x, N, out, N * K) != GN_OK || !t_bits_equal(out, job->expected, N * K))
            job->predictions_ok = 0;
    return NULL;
}

static void test_threads(void) {
    enum { T = 4 };
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, T + 1);
    float expected[N * K];
    REQUIRE_OK(gn_predict(dgn, x, N, expected, N * K));
    thread_job jobs[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].barrier = &barrier;
        jobs[i].expected = expected;
        REQUIRE_OK(gn_network_clone(dgn, &jobs[i].mine));
    }
    /* this thread fails first; new threads must not see its message */
    CHECK_STATUS(gn_predict(dgn, NULL, N, expected, N * K), GN_ERR_NULL_POINTER, "x");
    char mine[256];
    snprintf(mine, sizeof mine, "%s", gn_last_error());
    for (int i = 0; i < T; i++) pthread_create(&th[i], NULL, thread_main, &jobs[i]);
    pthread_barrier_wait(&barrier); /* threads: fail a call of their own */
    pthread_barrier_wait(&barrier);
    CHECKF(strcmp(gn_last_error(), mine) == 0, "main thread's message changed to \"%s\"", gn_last_error());
    pthread_barrier_wait(&barrier); /* threads: predict concurrently */
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < T; i++) {
        CHECKF(jobs[i].seen_before[0] == '\0', "thread %d saw another thread's message \"%s\"", i, jobs[i].seen_before);
        CHECKF(jobs[i].status == GN_ERR_NULL_POINTER && strstr(jobs[i].seen_after, "out") != NULL &&
                   strstr(jobs[i].seen_after, "gn_kernel") != NULL,
               "thread %d: %s \"%s\"", i, gn_status_name(jobs[i].status), jobs[i].seen_after);
        CHECKF(jobs[i].predictions_ok, "thread %d: concurrent predictions on its own clone differ", i);
        gn_network_free(jobs[i].mine);
    }
}

int main(void) {
    for (int i = 0; i < N * D; i++) x[i] = (float)sin(0.7 * i) * 0.8f;
    for (int i = 0; i < N; i++) y[i] = i % K;
    memset(&fake_object, 0x41, sizeof fake_object);
    gn_network_spec s = base_spec(GN_REGIME_DECOUPLED);
    s.bias = 1;
    s.seed = 17;
    gn_network *tmp = NULL;
    gn_train_options o = opts();
    if (gn_network_create(&s, &dgn) != GN_OK || gn_train(dgn, x, y, N, NULL, NULL, 0, &o, NULL, 0, NULL) != GN_OK) {
        fprintf(stderr, "setup failed: %s\n", gn_last_error());
        return T_FINISH("test_bad_inputs") | 1;
    }
    s = base_spec(GN_REGIME_RELU);
    s.seed = 18;
    if (gn_network_create(&s, &relu) != GN_OK || gn_network_create(&s, &tmp) != GN_OK) {
        fprintf(stderr, "setup failed: %s\n", gn_last_error());
        return 1;
    }
    gn_network_free(tmp);
    freed_handle = tmp; /* freed and not reused: nothing is created between free and use */
    T_SECTION(test_handles);
    T_SECTION(test_spec_and_create);
    T_SECTION(test_introspection);
    T_SECTION(test_train);
    T_SECTION(test_single_output_cross_entropy);
    T_SECTION(test_predict_and_gates);
    T_SECTION(test_kernel_args);
    T_SECTION(test_kernel_ld_overflow_max);
    T_SECTION(test_kernel_ld_overflow_max_minus_1);
    T_SECTION(test_persistence_args);
    T_SECTION(test_data_args);
    T_SECTION(test_threads);
    gn_network_free(dgn);
    gn_network_free(relu);
    return T_FINISH("test_bad_inputs");
}
