/*
 * gatednet.h — C interface of libgatednet, the engine for deep gated networks (DGNs)
 * and neural path kernels (NPK).
 *
 * Conventions used by every function below (read once, they are not repeated):
 *
 *  - Status. Every fallible function returns a gn_status; GN_OK (0) is success. On failure
 *    gn_last_error() returns a message naming the offending argument and the values seen,
 *    e.g. "n: got 0, need >= 1". A failed call leaves every handle exactly as it was.
 *  - Arrays are row-major float32 (labels int32). A matrix argument "x: n x d" is n rows of d
 *    contiguous floats. Sizes are int64_t counts and must be >= 1 unless stated otherwise.
 *  - Output buffers are allocated by the caller; each comes with its capacity in elements
 *    (floats, int32s or uint64s). The call checks the capacity before writing anything and
 *    fails with GN_ERR_BUFFER_TOO_SMALL, naming the size needed. Outputs are written, never read.
 *  - Input buffers are only read during the call; the library keeps no pointer to them.
 *  - Inputs that feed training or kernels are checked for NaN/Inf (GN_ERR_NOT_FINITE).
 *  - Handles are opaque. A handle may be used from any thread, but by one thread at a time
 *    (calls on one handle are not synchronised; distinct handles are fully independent).
 *    Passing a freed or foreign pointer as a handle gives GN_ERR_INVALID_HANDLE, never a crash,
 *    as long as the memory was not reused for another gatednet object.
 *  - Nothing in this library aborts the host process on bad input.
 *
 * The section "STABLE" never changes its meaning within a major version. Declarations after
 * "EXPERIMENTAL" are only visible with GN_EXPERIMENTAL defined and may change in any release.
 */
#ifndef GATEDNET_H
#define GATEDNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* =====================================================================================
 *  STABLE — version
 * ===================================================================================== */

#define GN_VERSION_MAJOR 0
#define GN_VERSION_MINOR 1
#define GN_VERSION_PATCH 0
/* MAJOR*10000 + MINOR*100 + PATCH; compare with gn_version_number() to detect a mismatch
 * between this header and the library loaded at run time. */
#define GN_VERSION_NUMBER (GN_VERSION_MAJOR * 10000 + GN_VERSION_MINOR * 100 + GN_VERSION_PATCH)

/* Library version as "MAJOR.MINOR.PATCH"; static storage, never free it. Thread-safe. */
const char *gn_version(void);
/* Library version as GN_VERSION_NUMBER of the library that is actually loaded. Thread-safe. */
int gn_version_number(void);

/* =====================================================================================
 *  STABLE — errors
 * ===================================================================================== */

typedef enum gn_status {
    GN_OK = 0,
    GN_ERR_INVALID_ARGUMENT = 1, /* a value outside its documented range */
    GN_ERR_NULL_POINTER = 2,     /* a required pointer was NULL */
    GN_ERR_INVALID_HANDLE = 3,   /* not a live handle of the expected kind (freed, foreign) */
    GN_ERR_SHAPE = 4,            /* sizes that do not fit the network or each other */
    GN_ERR_BUFFER_TOO_SMALL = 5, /* an output capacity below the size needed */
    GN_ERR_NOT_FINITE = 6,       /* NaN or Inf in an input array or parameter */
    GN_ERR_LABEL_RANGE = 7,      /* a label outside [0, classes) */
    GN_ERR_UNSUPPORTED = 8,      /* valid request this network cannot serve (e.g. packed soft gates) */
    GN_ERR_IO = 9,               /* a file could not be opened, read, written or renamed */
    GN_ERR_CORRUPT = 10,         /* a file or buffer that is truncated, corrupted or not ours */
    GN_ERR_CANCELLED = 11,       /* a progress callback asked to stop a computation */
    GN_ERR_OUT_OF_MEMORY = 12,   /* an allocation the call needed failed or would overflow */
    GN_ERR_INTERNAL = 99         /* a bug in gatednet: please report the message */
} gn_status;

/* The calling thread's message for its last failed call ("" if none yet). The pointer stays
 * valid until the next gatednet call on the same thread; copy it if you need it longer. */
const char *gn_last_error(void);

/* Short constant name of a status, e.g. "GN_ERR_SHAPE"; static storage. Thread-safe. */
const char *gn_status_name(gn_status status);

/* =====================================================================================
 *  STABLE — network specification and lifecycle
 * ===================================================================================== */

/* A DGN has a feature (gating) network and a value network of the same shape:
 *   feature: qf_1 = Wf_1 x,  qf_l = Wf_l zf_{l-1},  zf_l = act(qf_l),  G_l = gate(qf_l)
 *   value:   qv_1 = Wv_1 xv, qv_l = Wv_l zv_{l-1},  zv_l = qv_l * G_{perm[l]},  y = Wv_d zv_{d-1}
 * Layers are counted from 0 in this API: hidden layer l = 0 .. n_hidden-1. */

typedef struct gn_network gn_network;

typedef enum gn_activation {
    GN_ACT_RELU = 0,    /* feature net zf = max(q, 0) */
    GN_ACT_IDENTITY = 1 /* feature net is linear (DLGN, DGN-No-Act): every gate is a half-space */
} gn_activation;

typedef enum gn_gate_kind {
    GN_GATE_HARD = 0, /* G = 1{q > 0} */
    GN_GATE_SOFT = 1  /* G = sigmoid(beta * q); gradient flows into the feature net */
} gn_gate_kind;

typedef enum gn_value_input {
    GN_VALUE_INPUT_X = 0,   /* value net sees the input x */
    GN_VALUE_INPUT_ONES = 1 /* value net sees the all-ones vector (DLGN-PWC) */
} gn_value_input;

typedef enum gn_init_kind {
    GN_INIT_GAUSSIAN = 0, /* N(0, s^2 / fan_in); s = init_scale, default sqrt(2) (He) */
    GN_INIT_BERNOULLI = 1 /* +-sigma with probability 1/2 each; sigma = init_scale / sqrt(fan_in) */
} gn_init_kind;

/* Regime presets (MATH.md section 2). gn_network_spec_init() fills a spec for one. */
typedef enum gn_regime {
    GN_REGIME_CUSTOM = 0,          /* every field as given; feature_frozen as given */
    GN_REGIME_RELU = 1,            /* a plain ReLU net: value weights are the feature weights */
    GN_REGIME_DECOUPLED = 2,       /* DLNPF: soft gates, both nets trained, independent init */
    GN_REGIME_FIXED_LEARNT = 3,    /* FLNPF: gates copied from spec.gate_source (a trained net), frozen */
    GN_REGIME_FIXED_RANDOM_II = 4, /* FRNPF-II: random frozen gates, independent value init */
    GN_REGIME_FIXED_RANDOM_DI = 5, /* FRNPF-DI: random frozen gates, value net starts as a copy */
    GN_REGIME_DLGN = 6,            /* linear gating net, soft gates, both trained */
    GN_REGIME_DLGN_PWC = 7         /* DLGN with all-ones value input */
} gn_regime;

typedef struct gn_network_spec {
    size_t struct_size;            /* = sizeof(gn_network_spec); set by gn_network_spec_init */
    gn_regime regime;
    int64_t input_size;            /* d_in >= 1 */
    int64_t n_hidden;              /* number of hidden layers d-1, 1 .. GN_MAX_HIDDEN */
    const int64_t *hidden_widths;  /* n_hidden widths, each >= 1; read during create only */
    int64_t output_size;           /* k >= 1 (classes; 1 for regression / binary +-1) */
    gn_activation feature_activation;
    gn_gate_kind gate_kind;
    float beta;                    /* soft-gate sharpness > 0; ignored for hard gates */
    gn_value_input value_input;
    const int64_t *permutation;    /* NULL = identity, else n_hidden entries: value layer l is
                                    * gated by feature layer permutation[l] (equal widths needed) */
    int bias;                      /* nonzero: every layer has a bias (initialised to 0) */
    int feature_head;              /* nonzero: the feature net has its own output layer */
    int feature_frozen;            /* GN_REGIME_CUSTOM only: start with frozen feature weights */
    gn_init_kind init;
    float init_scale;              /* see gn_init_kind; > 0 */
    uint64_t seed;                 /* every random draw of create flows from this seed */
    const gn_network *gate_source; /* GN_REGIME_FIXED_LEARNT: trained network whose feature
                                    * weights are copied; must match the shape. Else ignored. */
} gn_network_spec;

#define GN_MAX_HIDDEN 64

/* Fill *spec with the preset of `regime` for an MLP of the given sizes: ReLU feature net
 * (identity for DLGN), hard gates (soft with beta = 10 for DECOUPLED/DLGN), He Gaussian init,
 * no bias, value input x (ones for DLGN_PWC), feature head only for RELU, seed 0.
 * hidden_widths is stored as a pointer: it must outlive the gn_network_create call.
 * Errors: GN_ERR_NULL_POINTER, GN_ERR_INVALID_ARGUMENT (unknown regime). */
gn_status gn_network_spec_init(gn_network_spec *spec, gn_regime regime, int64_t input_size,
                               int64_t n_hidden, const int64_t *hidden_widths,
                               int64_t output_size);

/* Create a network from a spec. On success *out owns a new handle (free with
 * gn_network_free). Errors: GN_ERR_NULL_POINTER, GN_ERR_INVALID_ARGUMENT (inconsistent regime,
 * e.g. RELU with soft gates, beta <= 0, bad permutation), GN_ERR_SHAPE (permutation over
 * unequal widths, gate_source of another shape), GN_ERR_INVALID_HANDLE (gate_source),
 * GN_ERR_OUT_OF_MEMORY (parameter count overflows or is too large). */
gn_status gn_network_create(const gn_network_spec *spec, gn_network **out);

/* Release a network. NULL is a no-op; a pointer that is not a live network is ignored. */
void gn_network_free(gn_network *net);

/* Deep copy (weights, flags, optimizer state). *out owns the new handle. */
gn_status gn_network_clone(const gn_network *net, gn_network **out);

/* Read-only summary of a network. */
typedef struct gn_network_info {
    size_t struct_size; /* set by the caller to sizeof(gn_network_info) */
    gn_regime regime;
    int64_t input_size;
    int64_t n_hidden;
    int64_t output_size;
    gn_activation feature_activation;
    gn_gate_kind gate_kind;
    float beta;
    gn_value_input value_input;
    int bias;
    int feature_head;
    int tied;            /* 1 for RELU: value weights are the feature weights */
    int feature_frozen;
    int value_frozen;
    int64_t parameter_count; /* trainable-or-not scalars over both nets */
    int64_t epochs_trained;
} gn_network_info;

gn_status gn_network_get_info(const gn_network *net, gn_network_info *info);

/* Width of hidden layer `layer` (0-based) into *width. Errors: GN_ERR_INVALID_ARGUMENT. */
gn_status gn_network_hidden_width(const gn_network *net, int64_t layer, int64_t *width);

/* Value layer -> gating layer map (n_hidden entries into perm, capacity perm_capacity). */
gn_status gn_network_permutation(const gn_network *net, int64_t *perm, int64_t perm_capacity);

/* One-line human description ("DGN fixed_random_ii 784-128-128-10 hard gates ..."), NUL
 * terminated, truncated to capacity-1 bytes; *needed (may be NULL) gets the full length + 1. */
gn_status gn_network_describe(const gn_network *net, char *buf, size_t capacity, size_t *needed);

/* =====================================================================================
 *  STABLE — parameters, freezing, copying
 * ===================================================================================== */

typedef enum gn_part {
    GN_PART_FEATURE = 0, /* feature (gating) net hidden layers, and its head if any */
    GN_PART_VALUE = 1    /* value net (for RELU: the same weights as FEATURE) */
} gn_part;

/* Weight matrix of layer `layer` of `part`: layers 0..n_hidden-1 are hidden, layer n_hidden is
 * the output layer (value net, or the feature head). Shape rows x cols = fan_out x fan_in,
 * row-major. gn_network_weight_shape reports it; get copies into out (capacity >= rows*cols);
 * set copies from w (checked finite). Errors: GN_ERR_INVALID_ARGUMENT (layer out of range,
 * feature head absent), GN_ERR_BUFFER_TOO_SMALL, GN_ERR_NOT_FINITE. */
gn_status gn_network_weight_shape(const gn_network *net, gn_part part, int64_t layer,
                                  int64_t *rows, int64_t *cols);
gn_status gn_network_get_weights(const gn_network *net, gn_part part, int64_t layer, float *out,
                                 int64_t capacity);
gn_status gn_network_set_weights(gn_network *net, gn_part part, int64_t layer, const float *w,
                                 int64_t count);
/* Bias of a layer (fan_out entries). GN_ERR_UNSUPPORTED if the network has no biases. */
gn_status gn_network_get_bias(const gn_network *net, gn_part part, int64_t layer, float *out,
                              int64_t capacity);

/* Freeze (frozen != 0) or unfreeze the weights of a part: frozen weights are never changed by
 * training (bit-identical). For a RELU (tied) network both parts name the same weights.
 * Optimizer state of a part is reset when it is unfrozen. */
gn_status gn_network_set_frozen(gn_network *net, gn_part part, int frozen);

/* Copy the feature weights (hidden layers, and the head when both have one) of `src` into
 * `dst` — e.g. a trained RELU net into a DGN — and freeze them in dst if freeze != 0.
 * src's gates then equal dst's gates on every input when activation and gate kind agree.
 * Errors: GN_ERR_SHAPE (input size or widths differ), GN_ERR_INVALID_HANDLE. */
gn_status gn_network_copy_feature_weights(gn_network *dst, const gn_network *src, int freeze);

/* =====================================================================================
 *  STABLE — training and evaluation
 * ===================================================================================== */

typedef enum gn_optimizer { GN_OPTIMIZER_SGD = 0, GN_OPTIMIZER_ADAM = 1 } gn_optimizer;

typedef enum gn_loss {
    GN_LOSS_CROSS_ENTROPY = 0, /* softmax cross-entropy over output_size classes */
    GN_LOSS_SQUARED = 1        /* 0.5 * ||y - t||^2 per sample; t is one-hot for k > 1 and
                                * -1 / +1 for label 0 / 1 when k = 1 */
} gn_loss;

/* Metrics of one epoch, delivered to the progress callback and into the history buffer. */
typedef struct gn_epoch_metrics {
    int64_t epoch;          /* 1-based count over the network's whole life */
    int64_t epoch_in_call;  /* 1-based within this gn_train call */
    int64_t epochs_in_call; /* the `epochs` option of this call */
    double train_loss;      /* mean loss over the epoch's minibatches (before each update) */
    double train_accuracy;  /* fraction correct over the epoch's minibatches, same timing */
    double test_loss;       /* on the test set after the epoch; NaN when none given */
    double test_accuracy;   /* NaN when no test set */
    double seconds;         /* wall time of the epoch */
} gn_epoch_metrics;

/* Called after each epoch (from the thread that called gn_train). Return 0 to continue,
 * nonzero to stop training after this epoch (not an error: gn_train returns GN_OK). */
typedef int (*gn_progress_fn)(const gn_epoch_metrics *metrics, void *user);

typedef struct gn_train_options {
    size_t struct_size;     /* = sizeof(gn_train_options); set by gn_train_options_init */
    gn_optimizer optimizer; /* default ADAM */
    gn_loss loss;           /* default CROSS_ENTROPY */
    float learning_rate;    /* > 0; default 3e-4 */
    float momentum;         /* SGD momentum in [0, 1); default 0.9 */
    float weight_decay;     /* L2 coefficient >= 0 added to the gradient; default 0 */
    float adam_beta1;       /* default 0.9 */
    float adam_beta2;       /* default 0.999 */
    float adam_epsilon;     /* default 1e-8 */
    int64_t batch_size;     /* >= 1; default 32; the last batch of an epoch may be smaller */
    int64_t epochs;         /* >= 1; default 1 */
    uint64_t shuffle_seed;  /* epoch e of the network's life is shuffled by (shuffle_seed, e) */
    int train_feature_head; /* nonzero: train the feature net alone through its own head (a
                             * standard ReLU net); needs feature_head. Default 0: the DGN. */
    gn_progress_fn progress; /* may be NULL */
    void *progress_user;     /* passed through to progress */
} gn_train_options;

/* Defaults as listed above. Errors: GN_ERR_NULL_POINTER. */
gn_status gn_train_options_init(gn_train_options *opts);

/* Train for opts->epochs epochs over (x: n x input_size, y: n labels in [0, output_size)).
 * x_test/y_test (n_test rows) are optional (both NULL, n_test = 0) and only evaluated.
 * history (may be NULL, capacity 0) receives one gn_epoch_metrics per epoch run, up to
 * history_capacity; *epochs_run (may be NULL) gets the number of epochs run.
 * Optimizer state persists in the network across calls with the same optimizer and part;
 * changing optimizer resets it. Frozen parts are not updated at all.
 * Errors: GN_ERR_NULL_POINTER, GN_ERR_SHAPE, GN_ERR_NOT_FINITE (inputs; or the loss diverged
 * to NaN/Inf, in which case the network is restored to its state before the call),
 * GN_ERR_LABEL_RANGE, GN_ERR_INVALID_ARGUMENT (options), GN_ERR_UNSUPPORTED
 * (train_feature_head without a head; nothing trainable). */
gn_status gn_train(gn_network *net, const float *x, const int32_t *y, int64_t n,
                   const float *x_test, const int32_t *y_test, int64_t n_test,
                   const gn_train_options *opts, gn_epoch_metrics *history,
                   int64_t history_capacity, int64_t *epochs_run);

/* Network outputs (logits) for x: n x input_size into out: n x output_size. */
gn_status gn_predict(const gn_network *net, const float *x, int64_t n, float *out,
                     int64_t capacity);

/* Arg-max class per row (for output_size 1: 1 if the output is > 0 else 0). */
gn_status gn_predict_classes(const gn_network *net, const float *x, int64_t n, int32_t *out,
                             int64_t capacity);

/* Mean loss and accuracy over (x, y). Either output pointer may be NULL. */
gn_status gn_evaluate(const gn_network *net, const float *x, const int32_t *y, int64_t n,
                      gn_loss loss, double *mean_loss, double *accuracy);

/* The same three through the feature net's own head (the feature net as a ReLU/linear net).
 * GN_ERR_UNSUPPORTED without a head. */
gn_status gn_predict_feature_head(const gn_network *net, const float *x, int64_t n, float *out,
                                  int64_t capacity);

/* =====================================================================================
 *  STABLE — gates and kernels
 * ===================================================================================== */

/* Gates of hidden layer `layer` (feature-net numbering) for x: n x input_size, as floats
 * (0/1 for hard gates, sigmoid values for soft) into out: n x width(layer). */
gn_status gn_gates(const gn_network *net, const float *x, int64_t n, int64_t layer, float *out,
                   int64_t capacity);

/* Hard gates bit-packed: row i occupies words_per_row = ceil(width/64) uint64 words; gate j
 * of row i is bit (j % 64) of word i*words_per_row + j/64; unused high bits are 0.
 * gn_gates_packed_words gives words_per_row. GN_ERR_UNSUPPORTED for soft gates. */
gn_status gn_gates_packed_words(const gn_network *net, int64_t layer, int64_t *words_per_row);
gn_status gn_gates_packed(const gn_network *net, const float *x, int64_t n, int64_t layer,
                          uint64_t *out, int64_t capacity);

typedef enum gn_kernel_kind {
    GN_KERNEL_INPUT_GRAM = 0,     /* Sigma = Xa Xbᵀ of the value input (d_in * 11ᵀ for ones) */
    GN_KERNEL_BASE = 1,           /* B_l = Ga_l Gb_lᵀ / width_l for the `layer` argument */
    GN_KERNEL_OVERLAP = 2,        /* Lambda = prod_l (Ga_l Gb_lᵀ), Hadamard over hidden layers */
    GN_KERNEL_NPK = 3,            /* H = Sigma * Lambda (elementwise) */
    GN_KERNEL_NPK_NORMALIZED = 4  /* Sigma * prod_l B_l */
} gn_kernel_kind;

/* Kernel between two batches xa: n_a x input_size and xb: n_b x input_size (xb may equal
 * xa; pass the same pointer and n for a symmetric kernel, which is then computed once per
 * triangle). out: n_a x n_b with row stride ld_out >= n_b; capacity must be at least
 * (n_a - 1) * ld_out + n_b floats. `layer` is used by GN_KERNEL_BASE only (else pass 0).
 * Gates are the ones the value net uses (after permutation), products over all hidden layers.
 * Cost O(n_a n_b (d_in + sum_l width_l)) through BLAS.
 * Errors: GN_ERR_SHAPE, GN_ERR_BUFFER_TOO_SMALL, GN_ERR_NOT_FINITE, GN_ERR_INVALID_ARGUMENT. */
gn_status gn_kernel(const gn_network *net, gn_kernel_kind kind, int64_t layer, const float *xa,
                    int64_t n_a, const float *xb, int64_t n_b, float *out, int64_t ld_out,
                    int64_t capacity);

/* =====================================================================================
 *  STABLE — persistence
 * ===================================================================================== */

#define GN_SAVE_OPTIMIZER_STATE 1u /* flag: also store the optimizer moments */

/* Save to a versioned binary file with a CRC-32 checksum, written to a temporary file in the
 * same directory and renamed over `path`, so `path` is always either the old or the new file.
 * Errors: GN_ERR_IO (with the OS reason). */
gn_status gn_network_save(const gn_network *net, const char *path, unsigned flags);

/* Load a file written by gn_network_save. On success *out owns a new handle. A truncated,
 * corrupted or foreign file gives GN_ERR_CORRUPT (or GN_ERR_IO if unreadable) and no handle. */
gn_status gn_network_load(const char *path, gn_network **out);

/* The same format in memory. gn_network_serialize writes up to capacity bytes into buf and
 * always sets *needed to the full size (buf may be NULL with capacity 0 to query it);
 * GN_ERR_BUFFER_TOO_SMALL if capacity < *needed. */
gn_status gn_network_serialize(const gn_network *net, unsigned flags, void *buf, size_t capacity,
                               size_t *needed);
gn_status gn_network_deserialize(const void *buf, size_t size, gn_network **out);

/* =====================================================================================
 *  STABLE — data helpers
 * ===================================================================================== */

/* Dimensions of an IDX file (MNIST format; gzip-compressed or plain, detected by content):
 * *ndim gets the number of dimensions (1..8), dims[0..ndim-1] the sizes. dims_capacity >= ndim. */
gn_status gn_idx_dims(const char *path, int64_t *dims, int64_t dims_capacity, int64_t *ndim);

/* All values of an IDX file as float32 multiplied by `scale` (e.g. 1/255 for images), in file
 * order (row-major). capacity >= product of dims. */
gn_status gn_idx_read_f32(const char *path, float scale, float *out, int64_t capacity);

/* All values of an integer IDX file as int32 (labels). */
gn_status gn_idx_read_i32(const char *path, int32_t *out, int64_t capacity);

/* Replace round(gamma * n) labels, at positions drawn without replacement, by labels drawn
 * uniformly from [0, classes) (which may equal the old label), in place; all draws from seed.
 * *changed (may be NULL) gets the number of labels whose value actually changed.
 * Errors: GN_ERR_INVALID_ARGUMENT (gamma outside [0,1], classes < 1), GN_ERR_LABEL_RANGE. */
gn_status gn_corrupt_labels(int32_t *labels, int64_t n, int32_t classes, double gamma,
                            uint64_t seed, int64_t *changed);

#ifdef __cplusplus
}
#endif

#endif /* GATEDNET_H */
