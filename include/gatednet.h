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
 *  - Inputs that feed training or kernels are checked for NaN/Inf (GN_ERR_NOT_FINITE). So are
 *    the results of prediction, evaluation, gates and kernels: finite inputs whose activations
 *    overflow float32 (e.g. values near 3e38) give GN_ERR_NOT_FINITE, never NaN outputs with
 *    GN_OK (the output buffer's contents are then unspecified).
 *  - Strided outputs and kernels (row stride ld) span (rows - 1) * ld + cols elements; a span
 *    that overflows is GN_ERR_INVALID_ARGUMENT naming the stride.
 *  - Handles are opaque ids, not pointers to memory. A handle may be used from any thread, but
 *    by one thread at a time (calls on one handle are not synchronised; distinct handles are
 *    fully independent). Passing a freed handle, a foreign pointer or a handle of another kind
 *    gives GN_ERR_INVALID_HANDLE, never a crash; a freed handle stays invalid when a new
 *    network is created after it (ids carry a generation; one id comes back only after its
 *    slot has been freed 2^32 times).
 *  - Re-entry. A call on a handle made from inside a call on the same handle on the same
 *    thread (e.g. gn_train from the progress callback of gn_train or gn_kernel_compute on
 *    that network) fails with GN_ERR_BUSY and does nothing. Other handles may be used from
 *    callbacks. Freeing the handle from its own callback is allowed: the running call
 *    finishes on the network, and the handle is invalid afterwards.
 *  - Nothing in this library aborts the host process on bad input. Memory whose size comes
 *    from the arguments (e.g. the n x n copy of the kernel algebra) is allocated so that a
 *    failure returns GN_ERR_OUT_OF_MEMORY with the size in the message.
 *  - The library (SONAME libgatednet.so) exports exactly the functions declared here.
 *  - Cores: training (FC and conv), FC prediction and evaluation, and the FC and conv kernels
 *    use two cores by splitting their work in pieces (minibatch halves, row chunks, kernel tiles),
 *    shared between the calling thread and a worker thread the library starts on first use
 *    (one per process; a fork()ed child computes every piece on its calling thread, see fork()
 *    below). The pieces depend only on the sizes,
 *    and each piece's numbers do not depend on the thread that computes it, so a seed gives
 *    the same numbers on one core or two. Callbacks are only called from the calling thread.
 *    While such a call runs, OpenBLAS is set to one thread (a process-wide setting, restored
 *    after the last such call ends): BLAS calls made meanwhile by other threads of the host
 *    also run on one thread.
 *  - fork(). A child may go on using the library (handles included), on one core: it starts no
 *    worker thread, because the Swift runtime's one-time locks identify the thread that forked
 *    by its parent's thread id, and a new thread waiting on such a lock livelocks. For the same
 *    reason, a forked child should call the library from one thread only.
 *
 * Every section is "STABLE": its meaning never changes within a major version. (There is no
 * experimental section; GN_EXPERIMENTAL has no effect.)
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
    GN_ERR_NOT_FINITE = 6,       /* NaN or Inf in an input array or parameter, or in a result
                                    (activations that overflow float32; a raw NPK / overlap
                                    beyond float's range) */
    GN_ERR_LABEL_RANGE = 7,      /* a label outside [0, classes) */
    GN_ERR_UNSUPPORTED = 8,      /* valid request this network cannot serve (e.g. packed soft gates) */
    GN_ERR_IO = 9,               /* a file could not be opened, read, written or renamed */
    GN_ERR_CORRUPT = 10,         /* a file or buffer that is truncated, corrupted or not ours */
    GN_ERR_CANCELLED = 11,       /* a progress callback asked to stop a computation */
    GN_ERR_OUT_OF_MEMORY = 12,   /* an allocation the call needed failed or would overflow */
    GN_ERR_BUSY = 13,            /* the handle is already inside a call on this thread (a call
                                    from one of its own callbacks); nothing was done */
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
    float beta;                    /* soft-gate sharpness > 0; ignored (not checked) for hard gates */
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
                                * -1 / +1 for label 0 / 1 when k = 1, or the caller's
                                * real-valued row of targets (the _regression functions) */
} gn_loss;

/* Metrics of one epoch, delivered to the progress callback and into the history buffer. */
typedef struct gn_epoch_metrics {
    int64_t epoch;          /* 1-based count over the network's whole life */
    int64_t epoch_in_call;  /* 1-based within this gn_train call */
    int64_t epochs_in_call; /* the `epochs` option of this call */
    double train_loss;      /* mean loss over the epoch's minibatches (before each update) */
    double train_accuracy;  /* fraction correct over the epoch's minibatches, same timing;
                             * NaN for real-valued targets (regression has no classes) */
    double test_loss;       /* on the test set after the epoch; NaN when none given */
    double test_accuracy;   /* NaN when no test set, and for real-valued targets */
    double seconds;         /* wall time of the epoch */
} gn_epoch_metrics;

/* Called after each epoch (from the thread that called gn_train). Return 0 to continue,
 * nonzero to stop training after this epoch (not an error: gn_train returns GN_OK). */
typedef int (*gn_progress_fn)(const gn_epoch_metrics *metrics, void *user);

/* Polled about every 0.1 s between minibatches (from the thread that called gn_train) with
 * progress_user. Return nonzero to interrupt: the network goes back to its state at the start
 * of the current epoch (completed epochs stay trained) and gn_train returns GN_ERR_CANCELLED.
 * For Ctrl-C handling in interactive hosts. */
typedef int (*gn_interrupt_fn)(void *user);

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
    void *progress_user;     /* passed through to progress and interrupt */
    gn_interrupt_fn interrupt; /* may be NULL (default) */
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
 * (train_feature_head without a head; nothing trainable), GN_ERR_CANCELLED (interrupt). */
gn_status gn_train(gn_network *net, const float *x, const int32_t *y, int64_t n,
                   const float *x_test, const int32_t *y_test, int64_t n_test,
                   const gn_train_options *opts, gn_epoch_metrics *history,
                   int64_t history_capacity, int64_t *epochs_run);

/* Regression: gn_train with real-valued targets y: n x output_size floats, row-major (row i is
 * the target t of output row i; the loss is 0.5 * ||out - t||^2 averaged over rows, its
 * gradient (out - t) / rows). y_test: n_test x output_size (optional with x_test, as in
 * gn_train). The caller keeps ownership of every buffer; y and y_test are only read, during
 * the call. opts->loss must be GN_LOSS_SQUARED (else GN_ERR_INVALID_ARGUMENT: cross-entropy
 * needs classes). Every metric's train_accuracy and test_accuracy is NaN. Same shuffling,
 * optimizer state, callbacks, interrupts, divergence handling and thread safety as gn_train
 * (a call on net from its own callback is GN_ERR_BUSY). Errors: as gn_train, with
 * GN_ERR_NOT_FINITE also for NaN or Inf in y or y_test, and no GN_ERR_LABEL_RANGE. */
gn_status gn_train_regression(gn_network *net, const float *x, const float *y, int64_t n,
                              const float *x_test, const float *y_test, int64_t n_test,
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

/* Mean squared loss 0.5 * ||out - t||^2 over the n rows of (x: n x input_size, y: n x
 * output_size real-valued targets t) into *mean_loss (required). Buffers are the caller's,
 * only read. Thread safety as gn_evaluate. Errors: GN_ERR_NULL_POINTER,
 * GN_ERR_INVALID_ARGUMENT (n < 1), GN_ERR_NOT_FINITE (NaN/Inf in x or y, or outputs that
 * overflow float32), GN_ERR_INVALID_HANDLE, GN_ERR_BUSY. */
gn_status gn_evaluate_regression(const gn_network *net, const float *x, const float *y, int64_t n,
                                 double *mean_loss);

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

/* Hard gates of ALL hidden layers bit-packed, the layout gn_kernel_options.gates_a / gates_b
 * take: row i occupies words_per_row = sum_l ceil(width_l / 64) uint64 words (hidden layers in
 * feature-net numbering, l = 0 .. n_hidden-1): layer 0's ceil(width_0 / 64) words, then layer
 * 1's, ...; with offset_l = sum_{m<l} ceil(width_m / 64), gate j of layer l of row i is bit
 * (j % 64) of word i*words_per_row + offset_l + j/64 (the words gn_gates_packed gives for
 * that layer); bits above width_l in a layer's last word are 0.
 * gn_gates_packed_all_words gives words_per_row (any network). gn_gates_packed_all: x is
 * n x input_size, out holds capacity >= n * words_per_row words (caller-owned, written, never
 * read). Cost: one feature pass, as the gate pass of a kernel call over those rows.
 * Errors: GN_ERR_NULL_POINTER, GN_ERR_INVALID_HANDLE, GN_ERR_SHAPE, GN_ERR_NOT_FINITE (x),
 * GN_ERR_BUFFER_TOO_SMALL, GN_ERR_UNSUPPORTED (soft gates). Not thread-safe on one network. */
gn_status gn_gates_packed_all_words(const gn_network *net, int64_t *words_per_row);
gn_status gn_gates_packed_all(const gn_network *net, const float *x, int64_t n, uint64_t *out,
                              int64_t capacity);

typedef enum gn_kernel_kind {
    GN_KERNEL_INPUT_GRAM = 0,     /* Sigma = Xa Xbᵀ of the value input (d_in * 11ᵀ for ones) */
    GN_KERNEL_BASE = 1,           /* B_l = Ga_l Gb_lᵀ / width_l for the `layer` argument */
    GN_KERNEL_OVERLAP = 2,        /* Lambda = prod_l (Ga_l Gb_lᵀ), Hadamard over hidden layers */
    GN_KERNEL_NPK = 3,            /* H = Sigma * Lambda (elementwise) */
    GN_KERNEL_NPK_NORMALIZED = 4, /* Sigma * prod_l B_l: never overflows (each B_l <= 1) */
    /* The kinds below are computed by gn_kernel_compute only (kernel suite section). */
    GN_KERNEL_NPK_TRACE_NORMALIZED = 5, /* H / trace(H) */
    GN_KERNEL_NTK_VALUE = 6,      /* K^v: NTK over the value weights */
    GN_KERNEL_NTK_FEATURE = 7,    /* K^f: NTK over the feature weights (soft gates) */
    GN_KERNEL_NTK_CROSS = 8,      /* K^cross: value x feature cross terms of a tied net */
    GN_KERNEL_NTK = 9,            /* NTK over every weight training changes */
    GN_KERNEL_NPK_LIMIT = 10,     /* infinite-width normalised NPK of random ReLU gates */
    GN_KERNEL_NTK_LIMIT = 11      /* infinite-width NTK of a ReLU network */
} gn_kernel_kind;

/* Kernel between two batches xa: n_a x input_size and xb: n_b x input_size (xb may equal
 * xa; pass the same pointer and n for a symmetric kernel, which is then computed once per
 * triangle). out: n_a x n_b with row stride ld_out >= n_b; capacity must be at least
 * (n_a - 1) * ld_out + n_b floats. `layer` is used by GN_KERNEL_BASE only (else pass 0) and
 * counts feature-net layers (before the permutation). OVERLAP and NPK multiply over all hidden
 * layers, so a permutation of the gates does not change them.
 * Range: OVERLAP and NPK grow like prod_l (active gates of layer l) and |x|^2 prod_l (active
 * gates), about (width/2)^n_hidden |x|^2 on the diagonal; an entry beyond float's 3.4e38 (e.g.
 * 784-128x20 on |x|^2 = 784) gives GN_ERR_NOT_FINITE, whose message names NPK_NORMALIZED and
 * NPK_TRACE_NORMALIZED, which are computed without forming the raw product and stay finite.
 * Cost O(n_a n_b (d_in + sum_l width_l)) through BLAS.
 * Errors: GN_ERR_SHAPE, GN_ERR_BUFFER_TOO_SMALL, GN_ERR_NOT_FINITE (inputs; a raw OVERLAP or NPK
 * entry beyond float's range), GN_ERR_INVALID_ARGUMENT. */
gn_status gn_kernel(const gn_network *net, gn_kernel_kind kind, int64_t layer, const float *xa,
                    int64_t n_a, const float *xb, int64_t n_b, float *out, int64_t ld_out,
                    int64_t capacity);

/* =====================================================================================
 *  STABLE — persistence
 * ===================================================================================== */

#define GN_SAVE_OPTIMIZER_STATE 1u /* flag: also store the optimizer moments */

/* Paths (here, in gn_conv_network_save/_load and gn_idx_*) are byte strings handed to the OS
 * unchanged: no encoding is assumed, so a name that is not UTF-8 is created and opened exactly
 * as given. An empty path is GN_ERR_INVALID_ARGUMENT. */

/* Save to a versioned binary file with a CRC-32 checksum. `path` is replaced atomically: the
 * bytes go to a temporary file in the same directory (unnamed, O_TMPFILE, where the file system
 * allows; otherwise created exclusively under a random name, never following a symlink),
 * which is fsynced and renamed over `path`, and the directory is fsynced. Readers, and
 * concurrent saves to the same path from any thread or process, see the old file or a complete
 * new one, never a mix. A process killed mid-save leaves no temporary file with O_TMPFILE;
 * otherwise (or if killed in the instant between naming and renaming it) it may leave
 * ".<name>.gntmp-<host>-<pid>-<random>", which the next save of the same path removes once
 * that process is gone. A symlink at `path` itself is replaced, not followed.
 * Errors: GN_ERR_IO (with the OS reason), GN_ERR_INVALID_ARGUMENT (empty path, or one ending
 * in "/"). */
gn_status gn_network_save(const gn_network *net, const char *path, unsigned flags);

/* Load a file written by gn_network_save. On success *out owns a new handle. The fixed header
 * is read and checked first, then only the bytes it announces (which must be the file's size).
 * A truncated, corrupted or foreign file, or one holding a NaN or infinite weight or optimizer
 * moment (refused as gn_network_set_weights refuses them), gives GN_ERR_CORRUPT and no handle.
 * GN_ERR_IO if unreadable or not a regular file (a FIFO, /dev/zero or a directory is refused
 * at once, never read); GN_ERR_OUT_OF_MEMORY if the file does not fit in memory. */
gn_status gn_network_load(const char *path, gn_network **out);

/* The same format in memory. gn_network_serialize writes up to capacity bytes into buf and
 * always sets *needed to the full size (buf may be NULL with capacity 0 to query it);
 * GN_ERR_BUFFER_TOO_SMALL if capacity < *needed. */
gn_status gn_network_serialize(const gn_network *net, unsigned flags, void *buf, size_t capacity,
                               size_t *needed);
/* gn_network_deserialize: errors as gn_network_load (GN_ERR_CORRUPT, also for non-finite weights). */
gn_status gn_network_deserialize(const void *buf, size_t size, gn_network **out);

/* =====================================================================================
 *  STABLE — data helpers
 * ===================================================================================== */

/* Dimensions of an IDX file (MNIST format; gzip-compressed or plain, detected by content):
 * *ndim gets the number of dimensions (1..8), dims[0..ndim-1] the sizes. dims_capacity >= ndim.
 * Reads only the header (the body length is checked against the file size, or the gzip
 * trailer); a truncated body is reported by the read functions. `path` must be a regular file
 * (GN_ERR_IO for FIFOs, devices, directories). */
gn_status gn_idx_dims(const char *path, int64_t *dims, int64_t dims_capacity, int64_t *ndim);

/* All values of an IDX file as float32 multiplied by `scale` (e.g. 1/255 for images), in file
 * order (row-major), into out[0 .. product of dims). The header is checked first: if the
 * product of dims exceeds `capacity`, GN_ERR_BUFFER_TOO_SMALL before the body is read. Exactly
 * the bytes the dims announce are decompressed: a shorter body, or a stream holding more,
 * gives GN_ERR_CORRUPT (so a small gzip file cannot make the reader inflate gigabytes).
 * GN_ERR_IO if `path` is unreadable or not a regular file. */
gn_status gn_idx_read_f32(const char *path, float scale, float *out, int64_t capacity);

/* All values of an integer IDX file as int32 (labels); errors as gn_idx_read_f32, plus
 * GN_ERR_UNSUPPORTED for a floating-point file. */
gn_status gn_idx_read_i32(const char *path, int32_t *out, int64_t capacity);

/* Replace round(gamma * n) labels, at positions drawn without replacement, by labels drawn
 * uniformly from [0, classes) (which may equal the old label), in place; all draws from seed.
 * *changed (may be NULL) gets the number of labels whose value actually changed.
 * Needs 8n bytes of workspace when round(gamma * n) > 0.
 * Errors: GN_ERR_INVALID_ARGUMENT (gamma outside [0,1], classes < 1), GN_ERR_LABEL_RANGE,
 * GN_ERR_OUT_OF_MEMORY (the workspace cannot be allocated; labels are left unchanged). */
gn_status gn_corrupt_labels(int32_t *labels, int64_t n, int32_t classes, double gamma,
                            uint64_t seed, int64_t *changed);

/* ===== STABLE — kernel suite ===== */

/* The kinds gn_kernel_compute adds to gn_kernel (gn_kernel_kind values 5..11):
 *  NPK_TRACE_NORMALIZED  H / trace(H(xa, xa)); the trace is over ALL n_a rows of xa, whatever
 *                        block is requested (paper 001 §6: the kernel nu is computed from).
 *                        Each call recomputes the trace (one gate pass over xa): when filling a
 *                        big kernel by many tiles, compute NPK tiles and divide by the sum of
 *                        the diagonal instead (gn_kernel_nu normalises by the trace itself).
 *                        Computed without forming H: each layer's factor Ga_l Gb_lᵀ is divided
 *                        by its mean diagonal over xa and the trace is summed in log scale (in
 *                        double), so it stays finite however deep the net (tested to 64 layers).
 *  NTK_VALUE     K^v: Gram of the per-example gradients of the output w.r.t. the value weights
 *                (and value biases), computed layer-wise as sum_l (D_l D_lᵀ) * (Z_l Z_lᵀ + 1{bias}),
 *                D_l the back-propagated vectors, Z_l the layer inputs; no per-example gradient
 *                is ever materialised. For a RELU (tied) network: its single weight set.
 *  NTK_FEATURE   K^f: the same over the feature (gating) weights; soft gates in an untied network
 *                only (hard gates pass no gradient: GN_ERR_UNSUPPORTED).
 *  NTK_CROSS     K^cross = sum over hidden layers l of <dy(x)/dWv_l, dy(x')/dWf_l> +
 *                <dy(x)/dWf_l, dy(x')/dWv_l> (biases likewise): the extra term when value and
 *                feature weights are tied (paper 002 Table 1), i.e. the NTK of the network with
 *                Wf_l := Wv_l is K^v + K^f + K^cross. Soft gates, untied networks only.
 *  NTK           the NTK over the weights training changes: K^v (value net not frozen) + K^f
 *                (soft gates, feature net not frozen); for RELU the whole gradient Gram.
 *                GN_ERR_UNSUPPORTED if every weight passing gradient is frozen.
 *  NPK_LIMIT, NTK_LIMIT: computed in double throughout (inner products by dgemm on double
 *                copies; the angle recursion carried as angles, stable near 0), output rounded to
 *                float once. Identical inputs (the diagonal) have theta = 0 exactly: NPK_LIMIT
 *                is then |x|^2 / 2^L and NTK_LIMIT (L + 1) (s^2/2)^L s^2 |x|^2 / d_in (per
 *                output), L = n_hidden.
 *  NPK_LIMIT     infinite-width normalised NPK of random hard gates (Gaussian feature weights,
 *                no bias): Sigma * prod_{l=1}^{n_hidden} (pi - theta_{l-1}) / (2 pi), theta_0 the
 *                angle between the inputs, then cos theta_l = (sin theta_{l-1} + (pi -
 *                theta_{l-1}) cos theta_{l-1}) / pi for a ReLU feature net, theta_l = theta_0
 *                for a linear one. Compare with GN_KERNEL_NPK_NORMALIZED. Needs hard gates.
 *  NTK_LIMIT     infinite-width NTK of a ReLU network of this shape (n_hidden, input size,
 *                init_scale s; weights N(0, s^2/fan_in), no biases) in the NTK parametrisation
 *                (paper 002 eq. 7, Arora et al. 2019): Lambda_1 = s^2 <x,x'>/d_in, Theta_1 =
 *                Lambda_1, Theta_{m+1} = Theta_m * Sdot_m + Lambda_{m+1}. Compare with GN_KERNEL_NTK
 *                of a RELU network computed with opts.ntk_scaling = 1. Needs ReLU feature
 *                activation and no biases. Depends on the architecture only, not the weights.
 * NTK kinds are per output unit (opts.output >= 0) or the sum over outputs (opts.output = -1,
 * the trace of the k x k NTK block; NTK_LIMIT is then k times the per-output kernel). */

/* Gate representation of the path kernels (BASE, OVERLAP, NPK, NPK_NORMALIZED,
 * NPK_TRACE_NORMALIZED). Both give bit-identical results for hard gates. */
typedef enum gn_gate_path {
    GN_GATE_PATH_AUTO = 0,  /* PACKED for hard gates, FLOAT for soft gates */
    GN_GATE_PATH_FLOAT = 1, /* float gates, products through BLAS */
    GN_GATE_PATH_PACKED = 2 /* bit-packed gates and popcount (n * sum_l width_l / 8 bytes of
                             * gates); GN_ERR_UNSUPPORTED for soft gates */
} gn_gate_path;

/* Progress of a long kernel computation: called after each tile (at most 512 x 512 entries)
 * from the calling thread with the fraction done in (0, 1]. Return 0 to continue, nonzero to
 * cancel: the call then returns GN_ERR_CANCELLED and the output is partly written. */
typedef int (*gn_kernel_progress_fn)(double fraction_done, void *user);

typedef struct gn_kernel_options {
    size_t struct_size;      /* = sizeof(gn_kernel_options); set by gn_kernel_options_init */
    int64_t layer;           /* GN_KERNEL_BASE: hidden layer (feature numbering); default 0 */
    int64_t output;          /* NTK kinds: output unit, or -1 (default) for the sum over outputs */
    int64_t row_begin;       /* block: rows row_begin .. row_begin+row_count-1 of xa; default 0 */
    int64_t row_count;       /* 0 (default) = through the last row of xa */
    int64_t col_begin;       /* block: rows col_begin .. of xb (the kernel's columns); default 0 */
    int64_t col_count;       /* 0 (default) = through the last row of xb */
    int upper_only;          /* symmetric block (xb == xa, equal row and column ranges): write only
                              * entries with column >= row; default 0 (both triangles) */
    gn_gate_path gate_path;  /* default GN_GATE_PATH_AUTO */
    int ntk_scaling;         /* NTK kinds: nonzero weights each weight layer's gradient Gram by
                              * init_scale^2 / fan_in (NTK parametrisation; bias terms unweighted);
                              * default 0: gradients w.r.t. the weights as stored */
    gn_kernel_progress_fn progress; /* may be NULL (default) */
    void *progress_user;     /* passed through to progress */
    /* Appended fields: a struct_size that ends at progress_user (callers built against the
     * older header) is accepted and means no transposed output.
     * out_transposed: NULL (default) or a second output that gets the block transposed, C x R
     * with out_transposed[c * ld_transposed + r] = out[r * ld_out + c] bit for bit, written
     * tile by tile while each tile is in cache (no second pass over memory); a symmetric block
     * is written whole both ways. Caller-owned, written, never read; ld_transposed >= R,
     * capacity_transposed >= (C - 1) * ld_transposed + R floats. Overlapping out's span or
     * combined with upper_only: GN_ERR_INVALID_ARGUMENT; a too small capacity_transposed:
     * GN_ERR_BUFFER_TOO_SMALL; both checked before anything is written. */
    float *out_transposed;
    int64_t ld_transposed;       /* row stride of out_transposed; default 0 */
    int64_t capacity_transposed; /* floats out_transposed holds; default 0 */
    /* Appended fields: a struct_size that ends at capacity_transposed (or at progress_user) is
     * accepted and means the gates are computed.
     * gates_a: NULL (default: computed) or the packed hard gates of ALL n_a rows of xa, as
     * gn_gates_packed_all writes them (n_a x words_per_row uint64 words, row r = row r of xa, so
     * row_begin / row_count index them as they index xa); gates_b likewise for ALL n_b rows of xb
     * (indexed by col_begin / col_count). Given gates replace the feature pass over those rows;
     * the kernel is bit for bit the one computed without them. Caller-owned, read only during the
     * call, not copied nor retained after it returns; the caller must not change them during the
     * call (several calls, also on other threads and networks, may read the same gates at once).
     * They must come from this network's current feature weights (not checked: other gates give
     * the kernel of those gates). One side may be given and the other computed. For a symmetric
     * call (xb NULL or xa) gates_a serves both sides: gates_b must be NULL or equal gates_a.
     * Taken by gn_kernel_compute for GN_KERNEL_BASE, OVERLAP, NPK and NPK_NORMALIZED on the packed
     * gate path (gate_path AUTO or PACKED) only. Errors, all before anything is written:
     * GN_ERR_INVALID_ARGUMENT (another kind, gate_path FLOAT, gates_b != gates_a in a symmetric
     * call, a bit set above a layer's width in its last word of a row the block reads: the message
     * names the row and layer), GN_ERR_UNSUPPORTED (soft gates), GN_ERR_BUFFER_TOO_SMALL
     * (capacity_gates_a < n_a * words_per_row, capacity_gates_b < n_b * words_per_row).
     * gn_conv_network_kernel_compute refuses non-NULL gates (GN_ERR_INVALID_ARGUMENT). */
    const uint64_t *gates_a;
    int64_t capacity_gates_a;    /* uint64 words gates_a holds; default 0 */
    const uint64_t *gates_b;
    int64_t capacity_gates_b;    /* uint64 words gates_b holds; default 0 */
} gn_kernel_options;

/* Defaults as listed above. Errors: GN_ERR_NULL_POINTER. */
gn_status gn_kernel_options_init(gn_kernel_options *opts);

/* Any kernel (gn_kernel_kind 0..4 or the kinds above) between xa: n_a x input_size and xb:
 * n_b x input_size, for the block of rows [row_begin, row_begin + R) of xa and columns
 * [col_begin, col_begin + C) (rows of xb). xb may be NULL or equal xa (same pointer, n_b = n_a):
 * the kernel is then symmetric, and a block with equal row and column ranges computes one
 * triangle once and mirrors it (or leaves it, upper_only). out: R x C, row stride ld_out >= C,
 * capacity >= (R - 1) * ld_out + C floats; written, never read. To fill a big n x n kernel (e.g.
 * a memory-mapped file) tile by tile, call once per tile with out pointing at the tile's corner
 * and ld_out = n; for a symmetric kernel only the tiles with col_begin >= row_begin are needed.
 * Temporary memory: the gates (packed: n_rows * sum_l width_l / 8 bytes; float: 32x that) or the
 * NTK factors (R + C) x (sum_l fan_in_l + K * sum_l width_l) floats, K = 1 or output_size, plus a
 * few 512 x 512 tiles; never a second R x C matrix. A call whose temporary memory (bounded as
 * float gates, or for NTK kinds twice the factors) exceeds the machine's physical memory fails
 * with GN_ERR_OUT_OF_MEMORY, naming the bytes, before allocating it: use smaller blocks.
 * opts may be NULL for the defaults.
 * Cost: path kernels O(R C (d_in + sum_l width_l)) (popcount on 64 gates per word when packed);
 * NTK O(R C (sum_l fan_in_l + K sum_l width_l)) through BLAS; limits O(R C (d_in + n_hidden)).
 * Errors: GN_ERR_NULL_POINTER, GN_ERR_INVALID_HANDLE, GN_ERR_SHAPE, GN_ERR_NOT_FINITE (inputs;
 * a raw OVERLAP or NPK entry beyond float's range, see gn_kernel),
 * GN_ERR_INVALID_ARGUMENT (kind, layer, output, block outside the inputs, ld_out, zero trace,
 * struct_size, ld_transposed, out_transposed overlapping out or with upper_only, gates_a /
 * gates_b as listed with them), GN_ERR_BUFFER_TOO_SMALL (capacity, capacity_transposed,
 * capacity_gates_a, capacity_gates_b), GN_ERR_UNSUPPORTED (a part this network does not have,
 * see the kinds; given gates with soft gates), GN_ERR_CANCELLED. Not thread-safe on one network
 * (uses its scratch space). */
gn_status gn_kernel_compute(const gn_network *net, gn_kernel_kind kind, const float *xa,
                            int64_t n_a, const float *xb, int64_t n_b,
                            const gn_kernel_options *opts, float *out, int64_t ld_out,
                            int64_t capacity);

/* Kernel matrices as a kernel method. k: n x n row-major with row stride ld >= n; only the
 * upper triangle (column >= row) is read, so an upper_only kernel is enough. Computed in double
 * precision through LAPACK (OpenBLAS), on an internal n x n double copy (8 n^2 bytes; when it
 * cannot be allocated, GN_ERR_OUT_OF_MEMORY before k is read).
 * Errors: GN_ERR_NULL_POINTER, GN_ERR_INVALID_ARGUMENT (n, ld, not positive definite even with
 * a ridge, no convergence), GN_ERR_NOT_FINITE, GN_ERR_BUFFER_TOO_SMALL, GN_ERR_OUT_OF_MEMORY. */

/* The n eigenvalues of the symmetric kernel, largest first, into values (capacity >= n). */
gn_status gn_kernel_eigenvalues(const float *k, int64_t n, int64_t ld, double *values,
                                int64_t capacity);

/* nu = yᵀ Ĥ⁻¹ y with Ĥ = k / trace(k) (paper 001 §6), y: n values (e.g. +-1 labels), by a
 * Cholesky solve. If Ĥ is not numerically positive definite the smallest ridge r among
 * mean_diag(Ĥ) * 1e-12 * 10^j, j = 0..10, that makes it so is added to Ĥ's diagonal;
 * *ridge_used (may be NULL) gets r, 0 when none was needed. */
gn_status gn_kernel_nu(const float *k, int64_t n, int64_t ld, const float *y, double *nu,
                       double *ridge_used);

/* Kernel ridge regression: alpha = (k + ridge I)⁻¹ targets, targets: n x t row-major, alpha:
 * n x t (capacity >= n t). ridge >= 0; if k + ridge I is not positive definite a jitter is added
 * as for gn_kernel_nu and *ridge_used (may be NULL) gets the total ridge used. */
gn_status gn_kernel_ridge_fit(const float *k, int64_t n, int64_t ld, const float *targets,
                              int64_t t, double ridge, float *alpha, int64_t capacity,
                              double *ridge_used);

/* Predictions k_test alpha: k_test m x n (row stride ld >= n, e.g. gn_kernel_compute between
 * test and training inputs), alpha n x t, into out: m x t (capacity >= m t). */
gn_status gn_kernel_ridge_predict(const float *k_test, int64_t m, int64_t n, int64_t ld,
                                  const float *alpha, int64_t t, float *out, int64_t capacity);

/* Regression targets for classification, the ones GN_LOSS_SQUARED uses: classes > 1 gives
 * one-hot rows (n x classes), classes = 1 gives -1 / +1 for label 0 / 1 (n values).
 * Errors: GN_ERR_LABEL_RANGE, GN_ERR_BUFFER_TOO_SMALL. */
gn_status gn_kernel_targets(const int32_t *labels, int64_t n, int64_t classes, float *targets,
                            int64_t capacity);

/* Arg-max class of each row of scores: m x t (t = 1: 1 if the score is > 0, else 0). */
gn_status gn_kernel_classes(const float *scores, int64_t m, int64_t t, int32_t *out,
                            int64_t capacity);

/* Active paths from one input node for each row of x: n x input_size, into out (n doubles):
 * prod_l sum_i G_l(x)_i over hidden layers (paper 003 §5). Hard gates: the number of paths active
 * for x (= the diagonal of GN_KERNEL_OVERLAP); soft gates: their total activity. Paths from all
 * input nodes are input_size times this. +Inf only when the count exceeds 1.8e308. */
gn_status gn_active_paths(const gn_network *net, const float *x, int64_t n, double *out,
                          int64_t capacity);

/* Mean active paths (as gn_active_paths) per group: groups[i] in [0, n_groups) is the class or
 * input region of row i. mean: n_groups doubles (NaN for an empty group); counts (may be NULL,
 * else n_groups entries) gets the rows per group. Errors as gn_active_paths, plus
 * GN_ERR_LABEL_RANGE for a group id out of range. */
gn_status gn_active_paths_by_group(const gn_network *net, const float *x, int64_t n,
                                   const int32_t *groups, int64_t n_groups, double *mean,
                                   int64_t mean_capacity, int64_t *counts, int64_t counts_capacity);

/* Effective hyperplanes of hidden layer `layer` of a linear gating network (DLGN, DGN-No-Act:
 * feature activation GN_ACT_IDENTITY): gate i is on exactly on {x : <u_i, x> + c_i > 0} (soft:
 * G = sigmoid(beta (<u_i, x> + c_i))), with U = Wf_layer ... Wf_0 and c the biases carried
 * through (zeros without biases). normals: width x input_size row-major (capacity >= that),
 * offsets: width floats (may be NULL with capacity 0).
 * Errors: GN_ERR_UNSUPPORTED (ReLU feature net), GN_ERR_INVALID_ARGUMENT (layer). */
gn_status gn_gate_hyperplanes(const gn_network *net, int64_t layer, float *normals,
                              int64_t normals_capacity, float *offsets, int64_t offsets_capacity);

/* ===== conv and residual networks ===== */

/* Convolutional and residual DGNs (MATH.md §4-§5) as their own handle type, built from a
 * layer list. The same list builds the feature net and the value net:
 *   feature: q_l = layer_l(z_{l-1}),  z_l = act(q_l),  G_l = gate(q_l)  (per position, channel)
 *   value:   q_l = layer_l(zv_{l-1}), zv_l = q_l * G'_l,  G'_l = the wired feature gates
 * Layout: inputs are NHWC — one sample is in_height x in_width x in_channels floats with the
 * channel index fastest: x[((y * W) + x) * C + c]. For one channel this is a row-major image.
 * Gate tensors use the same layout (height x width x channels of the gated layer).
 * Gated layers are the conv layers and every dense layer except the last; they are numbered
 * 0 .. n_gated-1 in list order. The last layer must be dense: the output layer (ungated).
 * Residual blocks: consecutive gated layers with the same block id > 0. Block output:
 *   feature z_out = act(q_last) + skip(z_in),  value zv_out = G' * q_last + skip(zv_in),
 * skip = identity when shapes agree, else a learnt ungated 1x1 projection (stride = product of
 * the block's strides; a dense projection when the block holds dense layers).
 * Regimes are the gn_regime presets; DGN-No-Act is GN_REGIME_DLGN (linear feature net, soft
 * gates). RELU is one ReLU conv net (value = feature weights). */

typedef struct gn_conv_network gn_conv_network;

typedef enum gn_layer_kind {
    GN_LAYER_CONV = 0,            /* k x k convolution, gated */
    GN_LAYER_DENSE = 1,           /* fully connected on the flattened (NHWC) tensor */
    GN_LAYER_GLOBAL_AVG_POOL = 2, /* mean over positions: h x w x c -> 1 x 1 x c */
    GN_LAYER_GLOBAL_MAX_POOL = 3, /* max over positions; the value net takes the position the
                                   * feature net's argmax picks (the argmax acts as a gate) */
    GN_LAYER_FLATTEN = 4          /* h x w x c -> 1 x 1 x (h*w*c); dense layers flatten anyway */
} gn_layer_kind;

typedef enum gn_padding {
    GN_PAD_ZERO = 0,     /* pad floor(k/2) zeros: out = floor((in + 2*floor(k/2) - k) / stride) + 1;
                          * needs floor(k/2) < in */
    GN_PAD_CIRCULAR = 1, /* wrap around: out = ceil(in / stride); needs k <= in */
    GN_PAD_VALID = 2     /* no padding: out = floor((in - k) / stride) + 1; needs k <= in */
} gn_padding;

/* One layer of the list. A fixed layout: arrays of it are passed with their element size. */
typedef struct gn_layer_spec {
    gn_layer_kind kind;
    int64_t units;      /* conv: output channels; dense: units; >= 1. Ignored by pooling/flatten */
    int64_t kernel;     /* conv: kernel side k >= 1 */
    int64_t stride;     /* conv: >= 1 */
    gn_padding padding; /* conv only */
    int bias;           /* conv / dense: nonzero adds a bias (initialised to 0) */
    int64_t block;      /* residual block id; 0 = none. Gated layers only, contiguous ids */
} gn_layer_spec;

typedef enum gn_gate_wiring {
    GN_WIRING_PERMUTED = 0,     /* value gated layer l uses feature gated layer permutation[l]
                                 * (identity when NULL); permuted layers need equal shapes */
    GN_WIRING_TILED_ROTATED = 1 /* paper 000 §4.1: stack the gated conv layers' gate tensors along
                                 * channels, roll them circularly by offsets drawn from
                                 * wiring_seed along channels, height and width, re-cut into
                                 * layers. Needs all gated conv layers to share height and width;
                                 * gated dense layers keep their gates */
} gn_gate_wiring;

typedef struct gn_conv_network_spec {
    size_t struct_size;            /* = sizeof(gn_conv_network_spec); set by _spec_init */
    gn_regime regime;
    int64_t in_channels, in_height, in_width; /* each >= 1 */
    int64_t n_layers;              /* 1 .. 256 */
    const gn_layer_spec *layers;   /* n_layers entries; read during create only */
    size_t layer_struct_size;      /* = sizeof(gn_layer_spec); set by _spec_init */
    gn_activation feature_activation;
    gn_gate_kind gate_kind;
    float beta;                    /* soft-gate sharpness > 0 */
    gn_value_input value_input;    /* ONES: the value net sees an all-ones image */
    gn_gate_wiring wiring;
    const int64_t *permutation;    /* GN_WIRING_PERMUTED: NULL or n_gated entries */
    uint64_t wiring_seed;          /* GN_WIRING_TILED_ROTATED offsets */
    int feature_frozen;            /* GN_REGIME_CUSTOM only */
    gn_init_kind init;             /* fan_in of a conv weight is k*k*in_channels */
    float init_scale;
    uint64_t seed;
    const gn_conv_network *gate_source; /* GN_REGIME_FIXED_LEARNT: trained conv net of the same
                                         * layer shapes whose feature weights are copied */
} gn_conv_network_spec;

/* Fill *spec with the preset of `regime` (as gn_network_spec_init: ReLU feature net, identity
 * for DLGN/DLGN_PWC; hard gates, soft beta 10 for DECOUPLED/DLGN/DLGN_PWC; He init; seed 0;
 * identity wiring). `layers` is stored as a pointer and must outlive gn_conv_network_create.
 * Errors: GN_ERR_NULL_POINTER, GN_ERR_INVALID_ARGUMENT (unknown regime). */
gn_status gn_conv_network_spec_init(gn_conv_network_spec *spec, gn_regime regime, int64_t in_channels,
                                    int64_t in_height, int64_t in_width, int64_t n_layers,
                                    const gn_layer_spec *layers);

/* Create a network. *out owns a new handle (free with gn_conv_network_free).
 * Errors: GN_ERR_NULL_POINTER; GN_ERR_INVALID_ARGUMENT (a layer field out of range, e.g.
 * stride 0, last layer not dense, bad regime combination, bad permutation); GN_ERR_SHAPE
 * (kernel larger than its input, a permutation over unequal shapes, tiling over unequal
 * spatial sizes, a residual block whose shapes no projection matches, gate_source of another
 * shape); GN_ERR_INVALID_HANDLE (gate_source); GN_ERR_OUT_OF_MEMORY (too many parameters). */
gn_status gn_conv_network_create(const gn_conv_network_spec *spec, gn_conv_network **out);

/* Named architectures (MATH.md §5). Max pooling between VGG / DavidNet stages is a stride-2
 * conv here; the final pooling is global average pooling. */
typedef enum gn_conv_architecture {
    GN_ARCH_GCONV = 0,        /* 4 conv 3x3 (64,64,128,128) + GAP + dense 256 + output (paper 001) */
    GN_ARCH_VCONV = 1,        /* GCONV without GAP: flatten + dense 256 + output (paper 001) */
    GN_ARCH_DLGN_CONV = 2,    /* 5 conv 3x3 x 26 + GAP + dense 64 + output (paper 003) */
    GN_ARCH_RESNET_SMALL = 3, /* conv 16, residual blocks (16,16), (32s2,32), (64s2,64), GAP, output */
    GN_ARCH_VGG19 = 4,        /* VGG19's 16 conv layers + GAP + output */
    GN_ARCH_DAVIDNET = 5      /* DavidNet: 64, 128s2 + block(128,128), 256s2, 512s2 + block(512,512) */
} gn_conv_architecture;

/* The layer list of a named architecture with `classes` outputs, every channel / unit count
 * multiplied by width_scale (0 < width_scale <= 64; rounded, >= 1). *n_layers gets the count;
 * layers (capacity entries, may be NULL with capacity 0 to query) receives the list.
 * Errors: GN_ERR_INVALID_ARGUMENT, GN_ERR_BUFFER_TOO_SMALL. */
gn_status gn_conv_architecture_layers(gn_conv_architecture arch, int64_t classes, float width_scale,
                                      gn_layer_spec *layers, int64_t capacity, int64_t *n_layers);

/* Create a named architecture: every spec field is used except n_layers / layers, which come
 * from gn_conv_architecture_layers(arch, classes, width_scale). Errors as both calls. */
gn_status gn_conv_network_create_named(gn_conv_architecture arch, int64_t classes, float width_scale,
                                       const gn_conv_network_spec *spec, gn_conv_network **out);

/* Release a network. NULL is a no-op; a pointer that is not a live conv network is ignored. */
void gn_conv_network_free(gn_conv_network *net);

/* Deep copy (weights, flags, optimizer state). *out owns the new handle. */
gn_status gn_conv_network_clone(const gn_conv_network *net, gn_conv_network **out);

typedef struct gn_conv_network_info {
    size_t struct_size; /* set by the caller to sizeof(gn_conv_network_info) */
    gn_regime regime;
    int64_t in_channels, in_height, in_width;
    int64_t input_size;  /* in_channels * in_height * in_width */
    int64_t output_size;
    int64_t n_gated;     /* gated layers */
    int64_t n_blocks;    /* residual blocks */
    gn_activation feature_activation;
    gn_gate_kind gate_kind;
    float beta;
    gn_value_input value_input;
    gn_gate_wiring wiring;
    int tied;
    int feature_frozen;
    int value_frozen;
    int64_t parameter_count; /* over both nets, projections included */
    int64_t epochs_trained;
} gn_conv_network_info;

gn_status gn_conv_network_get_info(const gn_conv_network *net, gn_conv_network_info *info);

/* Shape of gated layer `layer` (0 .. n_gated-1); any output pointer may be NULL. */
gn_status gn_conv_network_gated_shape(const gn_conv_network *net, int64_t layer, int64_t *height,
                                      int64_t *width, int64_t *channels);

/* One-line description, as gn_network_describe. */
gn_status gn_conv_network_describe(const gn_conv_network *net, char *buf, size_t capacity,
                                   size_t *needed);

/* Freeze / unfreeze a part, as gn_network_set_frozen. */
gn_status gn_conv_network_set_frozen(gn_conv_network *net, gn_part part, int frozen);

/* Copy src's feature weights (gated layers and projections) into dst, e.g. a trained RELU conv
 * net into a DGN, and freeze them if freeze != 0. Errors: GN_ERR_SHAPE (layer shapes differ). */
gn_status gn_conv_network_copy_feature_weights(gn_conv_network *dst, const gn_conv_network *src,
                                               int freeze);

/* Parameter tensors of both nets, numbered 0 .. count-1 in a fixed order (feature net, then
 * value net; within each, layers in list order with a block's projection after its last
 * layer, weight before bias). gn_conv_network_tensor_info gives a name such as
 * "value.3.weight" (part, parameter index, kind; NUL terminated, truncated to name_capacity-1;
 * name may be NULL with capacity 0) and the shape rows x cols: weights are fan_out x fan_in
 * row-major, a conv weight's fan_in index is (ky * k + kx) * in_channels + c; biases are
 * fan_out x 1. get copies a tensor out (capacity >= rows * cols); set copies one in (count must
 * equal rows * cols; finite values only) and works on frozen parts too.
 * Errors: GN_ERR_INVALID_ARGUMENT (index), GN_ERR_BUFFER_TOO_SMALL, GN_ERR_SHAPE (count),
 * GN_ERR_NOT_FINITE. */
gn_status gn_conv_network_tensor_count(const gn_conv_network *net, int64_t *count);
gn_status gn_conv_network_tensor_info(const gn_conv_network *net, int64_t index, char *name,
                                      size_t name_capacity, int64_t *rows, int64_t *cols);
gn_status gn_conv_network_get_tensor(const gn_conv_network *net, int64_t index, float *out,
                                     int64_t capacity);
gn_status gn_conv_network_set_tensor(gn_conv_network *net, int64_t index, const float *values,
                                     int64_t count);

/* Training and evaluation, as gn_train / gn_predict / gn_predict_classes / gn_evaluate with
 * x: n x input_size NHWC rows. opts->train_feature_head is GN_ERR_UNSUPPORTED here (conv nets
 * have no feature head: train a RELU conv net and copy its feature weights). Forward and
 * backward run batched through im2col + sgemm; scratch is allocated once per batch size and
 * bounded (GN_ERR_OUT_OF_MEMORY when one batch would need more than 2^30 floats of it;
 * prediction and evaluation go in chunks of at most 128 rows). */
gn_status gn_conv_network_train(gn_conv_network *net, const float *x, const int32_t *y, int64_t n,
                                const float *x_test, const int32_t *y_test, int64_t n_test,
                                const gn_train_options *opts, gn_epoch_metrics *history,
                                int64_t history_capacity, int64_t *epochs_run);
gn_status gn_conv_network_predict(const gn_conv_network *net, const float *x, int64_t n, float *out,
                                  int64_t capacity);
gn_status gn_conv_network_predict_classes(const gn_conv_network *net, const float *x, int64_t n,
                                          int32_t *out, int64_t capacity);
gn_status gn_conv_network_evaluate(const gn_conv_network *net, const float *x, const int32_t *y,
                                   int64_t n, gn_loss loss, double *mean_loss, double *accuracy);
/* Regression, as gn_train_regression / gn_evaluate_regression (y: n x output_size floats,
 * GN_LOSS_SQUARED only, accuracies NaN) with x: n x input_size NHWC rows and the conv rules
 * above (no feature head, bounded scratch). */
gn_status gn_conv_network_train_regression(gn_conv_network *net, const float *x, const float *y,
                                           int64_t n, const float *x_test, const float *y_test,
                                           int64_t n_test, const gn_train_options *opts,
                                           gn_epoch_metrics *history, int64_t history_capacity,
                                           int64_t *epochs_run);
gn_status gn_conv_network_evaluate_regression(const gn_conv_network *net, const float *x,
                                              const float *y, int64_t n, double *mean_loss);

/* Gates of gated layer `layer` for x: n x input_size into out: n x (height*width*channels of
 * the layer, NHWC). wired = 0: the feature net's own gates of that layer; wired != 0: the gates
 * value layer `layer` multiplies by (after permutation / tiling). */
gn_status gn_conv_network_gates(const gn_conv_network *net, const float *x, int64_t n,
                                int64_t layer, int wired, float *out, int64_t capacity);

typedef enum gn_conv_kernel_kind {
    GN_CONV_KERNEL_NPK = 0,          /* neural path kernel of the value net with its wired gates */
    GN_CONV_KERNEL_GATE_OVERLAP = 1, /* the same recursion with the input Gram replaced by 1 */
    GN_CONV_KERNEL_INPUT_GRAM = 2,   /* <xv_a, xv_b> over all entries (input_size for ONES) */
    /* The NPK with each layer a path passes through contributing a mean over its units: each
     * gated layer's gate Gram divided by its channels (conv) or width (dense), a projection
     * skip contributing 1 instead of its output channels (the analogue of the dense
     * Sigma * prod_l B_l). Without residual blocks it is H / prod_l C_l. */
    GN_CONV_KERNEL_NPK_NORMALIZED = 3,
    /* H / trace H(xa, xa), the trace over all n_a rows of xa (one extra pair per row of xa);
     * H and the trace are accumulated in double and divided before rounding to float, so the
     * result never overflows. GN_ERR_INVALID_ARGUMENT if the trace is zero. */
    GN_CONV_KERNEL_NPK_TRACE_NORMALIZED = 4
} gn_conv_kernel_kind;

/* Exact path kernel between xa: n_a x input_size and xb: n_b x input_size (pass the same
 * pointer and n for a symmetric kernel) into out: n_a x n_b, row stride ld_out >= n_b,
 * capacity >= (n_a - 1) * ld_out + n_b. Computed per pair by the layer recursion of MATH.md §4:
 * a P x P matrix S over positions, T(p,p') = sum over kernel offsets of S at the positions
 * both read, S = T * (Ga Gbᵀ over channels) per conv layer (any padding / stride); GAP gives
 * sum(S)/P², a dense layer on positions sum_p S(p,p), gated dense layers multiply by <ga, gb>;
 * residual blocks add the block input's state (identity) or out_channels times it (projection),
 * so the 2^b sub-networks are never enumerated.
 * Cost per pair: O(P_0² C_0 + sum_conv P_l² (C_l + k_l²) + sum_dense width); memory 3 P_max²
 * doubles per core. Exact but for small n or small images (28x28: ~6e5 entries per P x P matrix).
 * Pairs are computed in 16 x 16 tiles shared by two cores (the FC kernels' tile loop, BLAS on
 * one thread per core): the same bits on one core or two.
 * Entries are accumulated in double and rounded to float once; an entry beyond float's range
 * (raw NPK / overlap of deep, wide nets) is GN_ERR_NOT_FINITE naming the normalised kinds,
 * which never overflow.
 * Errors: GN_ERR_UNSUPPORTED (global max pooling), GN_ERR_OUT_OF_MEMORY (a layer with more
 * than 4096 positions), GN_ERR_BUFFER_TOO_SMALL, GN_ERR_NOT_FINITE (inputs, or an entry beyond
 * float's range), GN_ERR_INVALID_ARGUMENT (kind, ld_out, zero trace). */
gn_status gn_conv_network_kernel(const gn_conv_network *net, gn_conv_kernel_kind kind,
                                 const float *xa, int64_t n_a, const float *xb, int64_t n_b,
                                 float *out, int64_t ld_out, int64_t capacity);

/* gn_conv_network_kernel with the options of gn_kernel_compute: xb may be NULL (= xa, n_b 0 or
 * n_a); the block row_begin/row_count x col_begin/col_count into out: R x C (row stride ld_out
 * >= C, capacity >= (R - 1) * ld_out + C); upper_only; progress once per tile from the calling
 * thread, nonzero return cancels both cores (GN_ERR_CANCELLED, output partly written). The
 * out_transposed as for gn_kernel_compute. The other fields (layer, output, gate_path,
 * ntk_scaling) are ignored; gates_a / gates_b must be NULL (conv kernels compute their own
 * gates); opts may be NULL.
 * Errors: those of gn_conv_network_kernel, GN_ERR_NULL_POINTER, GN_ERR_CANCELLED,
 * GN_ERR_INVALID_ARGUMENT (block outside the inputs, struct_size, non-NULL gates_a or gates_b).
 * Not thread-safe on one network. */
gn_status gn_conv_network_kernel_compute(const gn_conv_network *net, gn_conv_kernel_kind kind,
                                         const float *xa, int64_t n_a, const float *xb,
                                         int64_t n_b, const gn_kernel_options *opts, float *out,
                                         int64_t ld_out, int64_t capacity);

/* ----- hidden state (both network types) -----
 * Pre-activations q_l or activations z_l of hidden layer `layer` of `part` for x: n x
 * input_size (NHWC rows for conv nets) into out (caller-owned, written, never read): n x width_l
 * floats for gn_network (layer 0 .. n_hidden-1), n x (height*width*channels of the gated layer,
 * NHWC) for gn_conv_network (layer 0 .. n_gated-1, numbered as in gn_conv_network_gates).
 * capacity >= that many floats.
 *   feature part: q_l = W_l z_{l-1} (+ b_l), z_l = act(q_l) (q_l itself for a linear net);
 *   value part:   q_l = W_l zv_{l-1} (+ b_l), zv_l = G'_l * q_l, G'_l the gates value layer l
 *                 multiplies by (after the permutation / wiring);
 *   a RELU (tied) network has one net: both parts give the same values.
 * Conv nets: the activation is the gated layer's own output, before the residual skip of a
 * block it may end is added. Rows are processed in chunks (no n-sized scratch).
 * Thread safety: as gn_predict (one call at a time per network: uses its scratch space).
 * Errors: GN_ERR_NULL_POINTER, GN_ERR_INVALID_HANDLE, GN_ERR_INVALID_ARGUMENT (part, layer,
 * kind, n), GN_ERR_NOT_FINITE (x), GN_ERR_BUFFER_TOO_SMALL. */
typedef enum gn_hidden_kind {
    GN_HIDDEN_PRE_ACTIVATION = 0,
    GN_HIDDEN_ACTIVATION = 1
} gn_hidden_kind;

gn_status gn_network_hidden_state(const gn_network *net, const float *x, int64_t n, gn_part part,
                                  int64_t layer, gn_hidden_kind kind, float *out, int64_t capacity);
gn_status gn_conv_network_hidden_state(const gn_conv_network *net, const float *x, int64_t n,
                                       gn_part part, int64_t layer, gn_hidden_kind kind, float *out,
                                       int64_t capacity);

/* Where parameter tensor `index` (0 .. count-1, as gn_conv_network_tensor_info) sits in the
 * layer list the network was built from: *layer gets the position of its conv / dense layer
 * (for a residual projection, the position of the block's last layer) and *projection 1 for a
 * projection, else 0. Unlike the tensor names, which number parameter tensors (so a projection
 * renumbers every later name), positions do not move. Either output may be NULL.
 * Errors: GN_ERR_INVALID_HANDLE, GN_ERR_INVALID_ARGUMENT (index). */
gn_status gn_conv_network_tensor_layer(const gn_conv_network *net, int64_t index, int64_t *layer,
                                       int *projection);

/* Persistence, as gn_network_save / _load / _serialize / _deserialize (same flags, byte paths,
 * atomic replacement, header read first, regular files only, CRC-32, GN_ERR_CORRUPT for a
 * truncated, corrupted or foreign file or non-finite values) in a format of its own: a conv
 * network file is not a gn_network file and vice versa. */
gn_status gn_conv_network_save(const gn_conv_network *net, const char *path, unsigned flags);
gn_status gn_conv_network_load(const char *path, gn_conv_network **out);
gn_status gn_conv_network_serialize(const gn_conv_network *net, unsigned flags, void *buf,
                                    size_t capacity, size_t *needed);
gn_status gn_conv_network_deserialize(const void *buf, size_t size, gn_conv_network **out);

#ifdef __cplusplus
}
#endif

#endif /* GATEDNET_H */
