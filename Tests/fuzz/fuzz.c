/*
 * fuzz.c — a random-call fuzzer for libgatednet's C ABI.
 *
 *   fuzz [--seconds S] [--seed N] [--calls-per-batch K] [--replay SEED] [--corpus DIR] [--verbose]
 *
 * Three parts, each run in forked children so that a crash is caught, reported with the seed
 * of its batch, and replayed with a trace of every call (the last traced call is the culprit):
 *  1. corpus: every file of DIR (default Tests/fuzz/corpus) into every loader (network and conv
 *     network files, IDX dims / f32 / i32 reads, deserialize from memory), plus the special
 *     files /dev/zero and a FIFO with no writer, each under a time limit;
 *  2. regressions: the calls that crashed or aborted the library before (issue 12), each with
 *     honest buffers (reserved, untouched address space where they are huge);
 *  3. random calls for S seconds (default 60): batches of K calls (default 400) over every
 *     exported function, with random sizes (small, negative, near int64 overflow), honest
 *     buffers that end exactly at a guard page, live / freed / NULL / wrong-kind handles,
 *     NaN / Inf / huge inputs, random option structs, and loaders fed valid files mutated (bit
 *     flips, truncation, splices, random header fields, with the length and CRC-32 refreshed
 *     half the time so the parser behind the checksum is reached).
 * Every call must return, with a known status, and a message whenever the status is not GN_OK.
 * Exit status 0 iff nothing failed; the last line is "fuzz: N passed, M failed" (N batches).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "gatednet.h"

/* ------------------------------------------------------------------ randomness, tracing */

static uint64_t rng_state;
static int verbose;
static char tmpdir[256];

static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static int64_t below(int64_t n) { return n <= 0 ? 0 : (int64_t)(rnd() % (uint64_t)n); }
static int chance(int percent) { return below(100) < percent; }

/* Every call is traced into a ring of the last TRACE_LINES lines, which a crashing child
 * writes to stderr from its signal handler (the last line is the call that crashed). */
#define TRACE_LINES 24
static char trace_ring[TRACE_LINES][240];
static unsigned trace_next;
#define TRACE(...)                                                                             \
    do {                                                                                       \
        char *line_ = trace_ring[trace_next++ % TRACE_LINES];                                  \
        snprintf(line_, sizeof trace_ring[0], __VA_ARGS__);                                    \
        if (verbose) fprintf(stderr, "%s\n", line_);                                           \
    } while (0)

static void dump_trace(int sig) {
    static const char head[] = "fuzz: crashing child, its last calls:\n";
    if (write(2, head, sizeof head - 1)) {}
    for (unsigned i = 0; i < TRACE_LINES; i++) {
        const char *line = trace_ring[(trace_next + i) % TRACE_LINES];
        if (!line[0]) continue;
        ssize_t w = write(2, "   ", 3);
        w += write(2, line, strlen(line));
        w += write(2, "\n", 1);
        (void)w;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* A count for a size argument: mostly small, sometimes 0, negative or near int64 overflow. */
static int64_t any_count(int64_t typical) {
    static const int64_t extreme[] = {-1, INT64_MIN, INT64_MAX, INT64_MAX / 2 + 1, (int64_t)1 << 31,
                                      ((int64_t)1 << 32) + 1, (int64_t)1 << 62, 3037000500LL,
                                      153092024LL, 60247241209LL};
    int64_t r = below(100);
    if (r < 70) return 1 + below(typical);
    if (r < 78) return 0;
    if (r < 88) return extreme[below(sizeof extreme / sizeof extreme[0])];
    return typical + below(4 * typical + 1);
}

/* ------------------------------------------------------------------ guarded buffers */

/* Buffers end exactly at a PROT_NONE page, so any write or read past the stated capacity
 * faults. Sizes above the limit are reserved (MAP_NORESERVE) and left untouched. */
#define MAX_BUFS 32
static struct { void *base; size_t len; } bufs[MAX_BUFS];
static int nbufs;
static const size_t page = 4096;

static void *guarded(size_t bytes) {
    if (nbufs == MAX_BUFS) return NULL;
    size_t body = (bytes + page - 1) / page * page;
    size_t len = body + page;
    void *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) return NULL;
    mprotect((char *)base + body, page, PROT_NONE);
    bufs[nbufs].base = base;
    bufs[nbufs++].len = len;
    /* 8-byte aligned end: bytes is rounded up to 8, the slack is at most 7 bytes. */
    size_t rounded = (bytes + 7) / 8 * 8;
    return (char *)base + body - rounded;
}

static void free_guarded(void) {
    for (int i = 0; i < nbufs; i++) munmap(bufs[i].base, bufs[i].len);
    nbufs = 0;
}

/* Honest element count for a buffer: the requested count when it is small enough to fill,
 * else a small one (a huge stated size then comes with its true, smaller capacity). */
static int64_t honest(int64_t want, int64_t limit) { return (want >= 0 && want <= limit) ? want : below(limit); }

static float any_float(void) {
    int64_t r = below(1000);
    if (r < 3) return NAN;
    if (r < 6) return r < 5 ? INFINITY : -INFINITY;
    if (r < 9) return r < 8 ? 3e38f : -3e38f;
    if (r < 12) return 1e-40f; /* subnormal */
    return (float)((double)(int64_t)(rnd() >> 11) / (double)(1ull << 52) * 2.0 - 1.0) * 2.0f;
}

static float *floats(int64_t count) {
    float *p = guarded(sizeof(float) * (size_t)(count > 0 ? count : 0));
    if (p)
        for (int64_t i = 0; i < count; i++) p[i] = any_float();
    return p;
}
static float *clean_floats(int64_t count) {
    float *p = guarded(sizeof(float) * (size_t)(count > 0 ? count : 0));
    if (p)
        for (int64_t i = 0; i < count; i++) p[i] = (float)below(2001) / 1000.0f - 1.0f;
    return p;
}
static int32_t *labels(int64_t count, int32_t classes) {
    int32_t *p = guarded(sizeof(int32_t) * (size_t)(count > 0 ? count : 0));
    if (p)
        for (int64_t i = 0; i < count; i++)
            p[i] = chance(2) ? (int32_t)(rnd() % 7) - 3 : (int32_t)below(classes > 0 ? classes : 1);
    return p;
}

/* ------------------------------------------------------------------ handles */

#define POOL 4
static gn_network *fc[POOL];
static gn_conv_network *cv[POOL];
static void *stale_fc, *stale_cv;
static uint64_t foreign_bytes[64];

static gn_network *any_fc(void) {
    int64_t r = below(100);
    if (r < 80 && fc[r % POOL]) return fc[r % POOL];
    if (r < 85) return NULL;
    if (r < 92 && stale_fc) return (gn_network *)stale_fc;
    if (r < 96) return (gn_network *)cv[r % POOL];
    return (gn_network *)foreign_bytes;
}
static gn_conv_network *any_cv(void) {
    int64_t r = below(100);
    if (r < 80 && cv[r % POOL]) return cv[r % POOL];
    if (r < 85) return NULL;
    if (r < 92 && stale_cv) return (gn_conv_network *)stale_cv;
    if (r < 96) return (gn_conv_network *)fc[r % POOL];
    return (gn_conv_network *)foreign_bytes;
}

/* Input size of a handle, or a small guess when it is not a live network of that kind. */
static int64_t fc_d(const gn_network *n) {
    gn_network_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    return gn_network_get_info(n, &info) == GN_OK ? info.input_size : 1 + below(6);
}
static int64_t fc_k(const gn_network *n) {
    gn_network_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    return gn_network_get_info(n, &info) == GN_OK ? info.output_size : 1 + below(4);
}
static void cv_dims(const gn_conv_network *n, int64_t *d, int64_t *k, int64_t *gated) {
    gn_conv_network_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    if (gn_conv_network_get_info(n, &info) == GN_OK) {
        *d = info.input_size, *k = info.output_size, *gated = info.n_gated;
    } else {
        *d = 1 + below(40), *k = 1 + below(4), *gated = 1 + below(3);
    }
}

static void adopt_fc(gn_network *n) {
    int i = (int)below(POOL);
    if (fc[i]) {
        gn_network_free(fc[i]);
        stale_fc = fc[i];
    }
    fc[i] = n;
}
static void adopt_cv(gn_conv_network *n) {
    int i = (int)below(POOL);
    if (cv[i]) {
        gn_conv_network_free(cv[i]);
        stale_cv = cv[i];
    }
    cv[i] = n;
}

/* ------------------------------------------------------------------ status checking */

static long failures;

static void check(gn_status s, const char *call) {
    const char *name = gn_status_name(s);
    const char *msg = gn_last_error();
    int known = (s >= GN_OK && s <= 20) || s == GN_ERR_INTERNAL;
    if (!known || !name) {
        fprintf(stderr, "fuzz: %s returned unknown status %d\n", call, (int)s);
        failures++;
    } else if (s != GN_OK && (!msg || !msg[0])) {
        fprintf(stderr, "fuzz: %s returned %s without a message\n", call, name);
        failures++;
    } else if (s == GN_ERR_INTERNAL) {
        fprintf(stderr, "fuzz: %s returned GN_ERR_INTERNAL: %s\n", call, msg);
        failures++;
    }
}
#define CALL(call)                                                                             \
    do {                                                                                       \
        TRACE("  %s", #call);                                                                  \
        check((call), #call);                                                                  \
    } while (0)

/* ------------------------------------------------------------------ building networks */

static const int64_t widths_pool[] = {1, 2, 3, 5, 8, 16};

static gn_status make_fc(gn_network **out, int honest_spec) {
    gn_network_spec spec;
    int64_t widths[4], perm[4];
    int64_t nh = 1 + below(3);
    for (int i = 0; i < 4; i++) widths[i] = widths_pool[below(6)];
    if (chance(40))
        for (int i = 1; i < 4; i++) widths[i] = widths[0];
    int64_t d = 1 + below(8), k = 1 + below(4);
    gn_regime regime = (gn_regime)below(honest_spec ? 8 : 10);
    if (regime == GN_REGIME_FIXED_LEARNT && honest_spec) regime = GN_REGIME_RELU;
    TRACE("  make_fc regime %d d %" PRId64 " nh %" PRId64 " k %" PRId64, (int)regime, d, nh, k);
    gn_status s = gn_network_spec_init(&spec, regime, d, nh, widths, k);
    if (s != GN_OK) return s;
    spec.seed = rnd();
    if (!honest_spec) {
        switch (below(12)) {
        case 0: spec.struct_size = (size_t)below(sizeof spec + 16); break;
        case 1: spec.n_hidden = any_count(4); break;
        case 2: spec.hidden_widths = NULL; break;
        case 3: spec.beta = any_float(); spec.gate_kind = GN_GATE_SOFT; break;
        case 4:
            for (int i = 0; i < 4; i++) perm[i] = (int64_t)below(6) - 1;
            spec.permutation = perm;
            break;
        case 5: spec.gate_source = any_fc(); spec.regime = GN_REGIME_FIXED_LEARNT; break;
        case 6: spec.init_scale = any_float(); break;
        case 7: spec.input_size = any_count(8); break;
        case 8: spec.output_size = any_count(4); break;
        case 9: spec.bias = 1; spec.feature_head = (int)below(2); break;
        case 10: spec.feature_activation = (gn_activation)below(3); spec.value_input = (gn_value_input)below(3); break;
        default: widths[below(nh)] = any_count(16); break;
        }
    }
    return gn_network_create(&spec, out);
}

static gn_status make_cv(gn_conv_network **out, int honest_spec) {
    gn_layer_spec layers[6];
    memset(layers, 0, sizeof layers);
    int64_t c = 1 + below(2), h = 3 + below(4), w = 3 + below(4);
    int n = 0;
    int64_t convs = 1 + below(2);
    for (int64_t i = 0; i < convs; i++) {
        layers[n].kind = GN_LAYER_CONV;
        layers[n].units = 1 + below(4);
        layers[n].kernel = 1 + 2 * below(2);
        layers[n].stride = 1 + below(2);
        layers[n].padding = (gn_padding)below(3);
        layers[n].bias = (int)below(2);
        n++;
    }
    layers[n++].kind = (gn_layer_kind)(chance(50) ? GN_LAYER_GLOBAL_AVG_POOL : GN_LAYER_FLATTEN);
    if (chance(40)) {
        layers[n].kind = GN_LAYER_DENSE;
        layers[n++].units = 1 + below(5);
    }
    layers[n].kind = GN_LAYER_DENSE;
    layers[n++].units = 1 + below(4);
    gn_regime regime = (gn_regime)below(8);
    if (regime == GN_REGIME_FIXED_LEARNT) regime = GN_REGIME_FIXED_RANDOM_II;
    gn_conv_network_spec spec;
    TRACE("  make_cv regime %d c %" PRId64 " h %" PRId64 " w %" PRId64 " layers %d", (int)regime, c, h, w, n);
    gn_status s = gn_conv_network_spec_init(&spec, regime, c, h, w, n, layers);
    if (s != GN_OK) return s;
    spec.seed = rnd();
    if (!honest_spec) {
        switch (below(8)) {
        case 0: spec.struct_size = (size_t)below(sizeof spec + 16); break;
        case 1: layers[below(n)].units = any_count(4); break;
        case 2: layers[below(n)].kernel = any_count(5); break;
        case 3: layers[below(n)].stride = any_count(3); break;
        case 4: spec.in_height = any_count(6); break;
        case 5: spec.wiring = (gn_gate_wiring)below(3); spec.wiring_seed = rnd(); break;
        case 6: spec.layer_struct_size = (size_t)below(sizeof(gn_layer_spec) + 8); break;
        default: layers[below(n)].block = (int64_t)below(3); break;
        }
    }
    return gn_conv_network_create(&spec, out);
}

static void fill_pools(void) {
    for (int i = 0; i < POOL; i++) {
        if (!fc[i]) {
            gn_network *n = NULL;
            if (make_fc(&n, 1) == GN_OK) fc[i] = n;
        }
        if (!cv[i]) {
            gn_conv_network *n = NULL;
            if (make_cv(&n, 1) == GN_OK) cv[i] = n;
        }
    }
}

/* ------------------------------------------------------------------ file mutation */

typedef struct { unsigned char *p; size_t n; } bytes;

/* Mutate a copy of a valid file: flips, truncation, splices, random header fields; then, half
 * of the time, refresh the payload length and CRC-32 so the parser behind them is reached. */
static bytes mutate(const unsigned char *src, size_t n, int is_archive) {
    size_t cap = n + 64;
    bytes b = {guarded(cap), n};
    if (!b.p) return b;
    memcpy(b.p, src, n);
    int rounds = 1 + (int)below(4);
    for (int r = 0; r < rounds && b.n > 0; r++) {
        switch (below(6)) {
        case 0: b.p[below((int64_t)b.n)] ^= (unsigned char)(1u << below(8)); break;
        case 1: b.n = (size_t)below((int64_t)b.n + 1); break;
        case 2: { /* random 8-byte field in the first 64 bytes (header, sizes) */
            size_t at = (size_t)below((int64_t)(b.n < 64 ? b.n : 64));
            uint64_t v = chance(50) ? rnd() : (uint64_t)any_count(100);
            size_t len = b.n - at < 8 ? b.n - at : 8;
            memcpy(b.p + at, &v, len);
            break;
        }
        case 3: if (b.n + 16 <= cap) { for (int i = 0; i < 16; i++) b.p[b.n++] = (unsigned char)rnd(); } break;
        case 4: { float f = any_float(); size_t at = (size_t)below((int64_t)b.n); if (at + 4 <= b.n) memcpy(b.p + at, &f, 4); break; }
        default: b.p[below((int64_t)b.n)] = (unsigned char)rnd(); break;
        }
    }
    if (is_archive && b.n >= 28 && chance(50)) {
        uint64_t len = b.n - 28;
        memcpy(b.p + 16, &len, 8);
        uint32_t crc = (uint32_t)crc32(0L, b.p, (uInt)(b.n - 4));
        memcpy(b.p + b.n - 4, &crc, 4);
    }
    return b;
}

static int write_file(const char *path, const unsigned char *p, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f) return -1;
        if (n) gzwrite(f, p, (unsigned)n);
        gzclose(f);
        return 0;
    }
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    if (n) fwrite(p, 1, n, f);
    fclose(f);
    return 0;
}

/* A valid IDX file: magic 0 0 type ndim, big-endian dims, then the values. */
static bytes make_idx(int float_type) {
    int ndim = 1 + (int)below(3);
    uint32_t dims[3];
    size_t count = 1;
    for (int i = 0; i < ndim; i++) dims[i] = 1 + (uint32_t)below(5), count *= dims[i];
    int type = float_type ? 0x0D : 0x08;
    size_t elem = float_type ? 4 : 1;
    size_t n = 4 + 4 * (size_t)ndim + count * elem;
    bytes b = {guarded(n), n};
    if (!b.p) return b;
    b.p[0] = 0, b.p[1] = 0, b.p[2] = (unsigned char)type, b.p[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        b.p[4 + 4 * i] = (unsigned char)(dims[i] >> 24), b.p[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        b.p[6 + 4 * i] = (unsigned char)(dims[i] >> 8), b.p[7 + 4 * i] = (unsigned char)dims[i];
    }
    for (size_t i = 4 + 4 * (size_t)ndim; i < n; i++) b.p[i] = (unsigned char)below(10);
    return b;
}

/* Feed a file to every path loader, with honest capacities. */
static void load_everything(const char *path) {
    gn_network *n = NULL;
    gn_conv_network *c = NULL;
    TRACE("  loaders on %s", path);
    gn_status s = gn_network_load(path, &n);
    check(s, "gn_network_load");
    if (s == GN_OK) adopt_fc(n);
    s = gn_conv_network_load(path, &c);
    check(s, "gn_conv_network_load");
    if (s == GN_OK) adopt_cv(c);
    int64_t dims[8], ndim = 0;
    s = gn_idx_dims(path, dims, 8, &ndim);
    check(s, "gn_idx_dims");
    int64_t cap = below(200);
    CALL(gn_idx_read_f32(path, 1.0f / 255, floats(cap), cap));
    CALL(gn_idx_read_i32(path, labels(cap, 10), cap));
}

static void load_bytes(const unsigned char *p, size_t n) {
    gn_network *a = NULL;
    gn_conv_network *c = NULL;
    gn_status s = gn_network_deserialize(p, n, &a);
    check(s, "gn_network_deserialize");
    if (s == GN_OK) adopt_fc(a);
    s = gn_conv_network_deserialize(p, n, &c);
    check(s, "gn_conv_network_deserialize");
    if (s == GN_OK) adopt_cv(c);
}

/* ------------------------------------------------------------------ the calls */

static void f_meta(void) {
    TRACE("meta");
    (void)gn_version();
    (void)gn_version_number();
    (void)gn_last_error();
    if (!gn_status_name((gn_status)(rnd() % 256 - 128))) failures++;
}

static void f_create_fc(void) {
    TRACE("create_fc");
    gn_network *n = NULL;
    gn_status s = make_fc(&n, chance(40));
    check(s, "gn_network_create");
    if (s == GN_OK) adopt_fc(n);
}

static void f_create_cv(void) {
    TRACE("create_cv");
    gn_conv_network *n = NULL;
    gn_status s = make_cv(&n, chance(40));
    check(s, "gn_conv_network_create");
    if (s == GN_OK) adopt_cv(n);
}

static void f_named(void) {
    gn_conv_architecture arch = (gn_conv_architecture)below(7);
    int64_t classes = any_count(10), cap = below(40), count = 0;
    float scale = chance(80) ? 0.02f + (float)below(10) / 100.0f : any_float();
    TRACE("named arch %d classes %" PRId64 " scale %g cap %" PRId64, (int)arch, classes, scale, cap);
    gn_layer_spec *layers = guarded(sizeof(gn_layer_spec) * (size_t)cap);
    CALL(gn_conv_architecture_layers(arch, classes, scale, layers, cap, &count));
    if (chance(30) && classes > 0 && classes < 20 && scale > 0 && scale < 0.2f && arch != GN_ARCH_VGG19) {
        gn_conv_network_spec spec;
        gn_conv_network *n = NULL;
        gn_conv_network_spec_init(&spec, (gn_regime)below(8), 1 + below(3), 8 + below(8), 8 + below(8), 0, NULL);
        spec.seed = rnd();
        gn_status s = gn_conv_network_create_named(arch, classes, scale, &spec, &n);
        check(s, "gn_conv_network_create_named");
        if (s == GN_OK) adopt_cv(n);
    }
}

static void f_free(void) {
    TRACE("free");
    if (chance(50)) {
        gn_network *n = any_fc();
        for (int i = 0; i < POOL; i++)
            if (fc[i] == n) fc[i] = NULL, stale_fc = n;
        gn_network_free(n);
    } else {
        gn_conv_network *n = any_cv();
        for (int i = 0; i < POOL; i++)
            if (cv[i] == n) cv[i] = NULL, stale_cv = n;
        gn_conv_network_free(n);
    }
    fill_pools();
}

static void f_info_fc(void) {
    gn_network *n = any_fc();
    TRACE("info_fc %p", (void *)n);
    gn_network_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = chance(90) ? sizeof info : (size_t)below(sizeof info * 2);
    CALL(gn_network_get_info(n, &info));
    int64_t w = 0, layer = any_count(4) - 1, cap = below(8);
    CALL(gn_network_hidden_width(n, layer, &w));
    CALL(gn_network_permutation(n, guarded(sizeof(int64_t) * (size_t)cap), cap));
    size_t bcap = (size_t)below(100), needed = 0;
    CALL(gn_network_describe(n, guarded(bcap), bcap, &needed));
    gn_network *copy = NULL;
    gn_status s = gn_network_clone(n, &copy);
    check(s, "gn_network_clone");
    if (s == GN_OK) adopt_fc(copy);
}

static void f_weights_fc(void) {
    gn_network *n = any_fc();
    gn_part part = (gn_part)below(3);
    int64_t layer = any_count(4) - 1, rows = 0, cols = 0;
    TRACE("weights_fc %p part %d layer %" PRId64, (void *)n, (int)part, layer);
    gn_status s = gn_network_weight_shape(n, part, layer, &rows, &cols);
    check(s, "gn_network_weight_shape");
    int64_t want = s == GN_OK ? rows * cols : any_count(64);
    int64_t cap = chance(80) ? honest(want, 4096) : honest(want - 1, 4096);
    CALL(gn_network_get_weights(n, part, layer, guarded(sizeof(float) * (size_t)cap), cap));
    CALL(gn_network_get_bias(n, part, layer, guarded(sizeof(float) * (size_t)cap), cap));
    int64_t count = chance(80) ? honest(want, 4096) : below(100);
    float *w = chance(80) ? clean_floats(count) : floats(count);
    CALL(gn_network_set_weights(n, part, layer, w, count));
    CALL(gn_network_set_frozen(n, part, (int)below(3) - 1));
    CALL(gn_network_copy_feature_weights(any_fc(), any_fc(), (int)below(2)));
}

static gn_train_options train_options(void) {
    gn_train_options o;
    gn_train_options_init(&o);
    o.epochs = 1;
    o.batch_size = 1 + below(8);
    o.optimizer = (gn_optimizer)below(2);
    o.loss = (gn_loss)below(2);
    o.shuffle_seed = rnd();
    switch (below(12)) {
    case 0: o.struct_size = (size_t)below(sizeof o + 8); break;
    case 1: o.learning_rate = any_float(); break;
    case 2: o.batch_size = any_count(8); break;
    case 3: o.epochs = any_count(2) > 3 ? -1 : 2; break;
    case 4: o.momentum = any_float(); break;
    case 5: o.train_feature_head = 1; break;
    case 6: o.optimizer = (gn_optimizer)below(5); o.loss = (gn_loss)below(5); break;
    case 7: o.learning_rate = 1e30f; break; /* divergence: the network must be restored */
    default: break;
    }
    return o;
}

static void f_train_fc(void) {
    gn_network *n = any_fc();
    int64_t d = fc_d(n), k = fc_k(n), rows = chance(90) ? 1 + below(12) : any_count(12);
    int64_t real = honest(rows, 64), hcap = below(3), ran = 0;
    TRACE("train_fc %p d %" PRId64 " rows %" PRId64, (void *)n, d, rows);
    gn_train_options o = train_options();
    float *x = chance(85) ? clean_floats(real * d) : floats(real * d);
    /* A stated row count beyond the buffer is only passed when it overflows rows * d. */
    if (rows != real && !(rows > 0 && rows > INT64_MAX / (d > 0 ? d : 1))) rows = real;
    int32_t *y = labels(real, (int32_t)k);
    int64_t nt = chance(50) ? 1 + below(4) : 0;
    CALL(gn_train(n, x, y, rows, nt ? clean_floats(nt * d) : NULL, nt ? labels(nt, (int32_t)k) : NULL, nt, &o,
                  guarded(sizeof(gn_epoch_metrics) * (size_t)hcap), hcap, &ran));
    /* Regression: real-valued targets (n x k), sometimes NaN/Inf, sometimes the wrong loss. */
    float *t = chance(85) ? clean_floats(real * k) : floats(real * k);
    if (chance(80)) o.loss = GN_LOSS_SQUARED;
    CALL(gn_train_regression(n, x, chance(3) ? NULL : t, rows, nt ? clean_floats(nt * d) : NULL,
                             nt ? (chance(90) ? clean_floats(nt * k) : floats(nt * k)) : NULL, nt, &o,
                             guarded(sizeof(gn_epoch_metrics) * (size_t)hcap), hcap, &ran));
}

static void f_predict_fc(void) {
    gn_network *n = any_fc();
    int64_t d = fc_d(n), k = fc_k(n), rows = chance(90) ? below(10) : any_count(10);
    int64_t real = honest(rows, 64);
    if (rows != real && !(rows > 0 && rows > INT64_MAX / (d > 0 ? d : 1))) rows = real;
    int64_t cap = chance(80) ? real * k : below(real * k + 1);
    TRACE("predict_fc %p rows %" PRId64 " cap %" PRId64, (void *)n, rows, cap);
    float *x = chance(85) ? clean_floats(real * d) : floats(real * d);
    CALL(gn_predict(n, x, rows, guarded(sizeof(float) * (size_t)cap), cap));
    CALL(gn_predict_classes(n, x, rows, guarded(sizeof(int32_t) * (size_t)real), chance(80) ? real : 0));
    double loss, acc;
    CALL(gn_evaluate(n, x, labels(real, (int32_t)k), rows, (gn_loss)below(3), chance(50) ? &loss : NULL, &acc));
    CALL(gn_evaluate_regression(n, x, chance(85) ? clean_floats(real * k) : floats(real * k), rows,
                                chance(95) ? &loss : NULL));
    CALL(gn_predict_feature_head(n, x, rows, guarded(sizeof(float) * (size_t)cap), cap));
}

static void f_gates_fc(void) {
    gn_network *n = any_fc();
    int64_t d = fc_d(n), rows = 1 + below(6), layer = any_count(3) - 1, width = 0, words = 0;
    TRACE("gates_fc %p layer %" PRId64, (void *)n, layer);
    float *x = chance(90) ? clean_floats(rows * d) : floats(rows * d);
    int64_t want = gn_network_hidden_width(n, layer, &width) == GN_OK ? rows * width : below(40);
    int64_t cap = chance(80) ? want : below(want + 1);
    CALL(gn_gates(n, x, rows, layer, guarded(sizeof(float) * (size_t)cap), cap));
    int64_t wcap = gn_gates_packed_words(n, layer, &words) == GN_OK ? rows * words : below(8);
    CALL(gn_gates_packed(n, x, rows, layer, guarded(8 * (size_t)wcap), wcap));
    double *paths = guarded(sizeof(double) * (size_t)rows);
    CALL(gn_active_paths(n, x, rows, paths, chance(90) ? rows : 0));
    int64_t groups = chance(90) ? 1 + below(3) : any_count(3);
    int64_t gcap = honest(groups, 16);
    int32_t *g = labels(rows, (int32_t)(groups > 0 && groups < 16 ? groups : 3));
    CALL(gn_active_paths_by_group(n, x, rows, g, groups, guarded(sizeof(double) * (size_t)gcap), gcap,
                                  chance(50) ? guarded(sizeof(int64_t) * (size_t)gcap) : NULL, chance(50) ? gcap : 0));
    int64_t ncap = below(64), ocap = below(10);
    CALL(gn_gate_hyperplanes(n, layer, guarded(sizeof(float) * (size_t)ncap), ncap,
                             chance(50) ? guarded(sizeof(float) * (size_t)ocap) : NULL, ocap));
}

/* An honest output block for a kernel: rows r, cols c, ld >= c mostly; capacity as computed. */
static float *kernel_out(int64_t r, int64_t c, int64_t *ld, int64_t *cap) {
    *ld = chance(85) ? c + below(3) : any_count(8);
    int64_t need = (r > 0 && *ld > 0 && r < 4096 && *ld < 4096) ? (r - 1) * *ld + c : below(64);
    *cap = chance(85) ? need : below(need + 1);
    if (*cap < 0) *cap = 0;
    *cap = honest(*cap, 1 << 16);
    return guarded(sizeof(float) * (size_t)*cap);
}

/* Packed gates of `rows` rows of x for gn_kernel_options.gates_a / gates_b: the network's own
 * (gn_gates_packed_all; all zero if x is refused) or random words (padding bits likely set), in
 * an honest buffer; *cap is its size, or sometimes less. */
static const uint64_t *any_gates(gn_network *n, const float *x, int64_t rows, int64_t words, int64_t *cap) {
    int64_t count = rows * words;
    uint64_t *g = guarded(8 * (size_t)count);
    if (g == NULL) return NULL;
    if (chance(70)) {
        (void)gn_gates_packed_all(n, x, rows, g, count);
    } else {
        for (int64_t i = 0; i < count; i++) g[i] = chance(50) ? rnd() : 0;
    }
    *cap = chance(85) ? count : below(count + 1);
    return g;
}

static void f_kernel_fc(void) {
    gn_network *n = any_fc();
    int64_t d = fc_d(n);
    int64_t na = chance(90) ? 1 + below(8) : any_count(8), nb = chance(90) ? 1 + below(8) : any_count(8);
    int64_t ra = honest(na, 64), rb = honest(nb, 64);
    if (na != ra && !(na > 0 && na > INT64_MAX / (d > 0 ? d : 1))) na = ra;
    if (nb != rb && !(nb > 0 && nb > INT64_MAX / (d > 0 ? d : 1))) nb = rb;
    float *xa = chance(90) ? clean_floats(ra * d) : floats(ra * d);
    int same = chance(30);
    float *xb = same ? xa : clean_floats(rb * d);
    if (same) nb = na, rb = ra;
    int64_t ld, cap;
    float *out = kernel_out(na, nb, &ld, &cap);
    int kind = (int)below(14) - 1;
    TRACE("kernel_fc %p kind %d na %" PRId64 " nb %" PRId64 " ld %" PRId64 " cap %" PRId64, (void *)n, kind, na, nb, ld, cap);
    if (kind <= 5) CALL(gn_kernel(n, (gn_kernel_kind)kind, any_count(3) - 1, xa, na, xb, nb, out, ld, cap));
    gn_kernel_options o;
    gn_kernel_options_init(&o);
    if (chance(30)) o.layer = any_count(3) - 1;
    if (chance(30)) o.output = any_count(3) - 2;
    if (chance(40)) { o.row_begin = below(na > 0 && na < 64 ? na : 4); o.row_count = below(4); }
    if (chance(40)) { o.col_begin = below(nb > 0 && nb < 64 ? nb : 4); o.col_count = below(4); }
    if (chance(20)) { o.row_begin = any_count(4); o.col_count = any_count(4); }
    o.upper_only = (int)below(2);
    o.gate_path = (gn_gate_path)below(4);
    o.ntk_scaling = (int)below(2);
    if (chance(30)) { /* the transposed output: an honest buffer of the capacity it declares */
        int64_t tr = o.col_count > 0 ? o.col_count : nb - o.col_begin, tc = o.row_count > 0 ? o.row_count : na - o.row_begin;
        o.out_transposed = chance(10) ? out : kernel_out(tr, tc, &o.ld_transposed, &o.capacity_transposed);
        if (o.out_transposed == out) o.ld_transposed = ld, o.capacity_transposed = cap;
    }
    if (chance(25)) { /* given packed gates, honest buffers of rows ra / rb */
        int64_t words = 0;
        if (gn_gates_packed_all_words(n, &words) != GN_OK || words < 1 || words > 64) words = 1 + below(4);
        if (chance(90)) o.gates_a = any_gates(n, xa, ra, words, &o.capacity_gates_a);
        if (chance(50)) {
            o.gates_b = same && chance(50) ? o.gates_a : any_gates(n, xb, rb, words, &o.capacity_gates_b);
            if (o.gates_b == o.gates_a) o.capacity_gates_b = o.capacity_gates_a;
        }
    }
    if (chance(5)) o.struct_size = (size_t)below(sizeof o);
    CALL(gn_kernel_compute(n, (gn_kernel_kind)kind, xa, na, chance(20) ? NULL : xb, nb, chance(10) ? NULL : &o, out, ld, cap));
}

static void f_kernel_algebra(void) {
    int64_t n = chance(90) ? 1 + below(8) : any_count(8);
    int64_t real = honest(n, 16);
    n = real; /* k has no capacity argument: n and ld stay honest, or ld is invalid */
    int64_t ld = chance(85) ? real + below(2) : any_count(8);
    int ld_ok = ld >= real && ld < 64;
    if (!ld_ok && ld >= 64 && !(real > 1 && ld > INT64_MAX / (real - 1))) ld = real, ld_ok = 1;
    int64_t kcount = ld_ok && real > 0 ? (real - 1) * ld + real : 1;
    float *k = guarded(sizeof(float) * (size_t)kcount);
    /* A kernel: positive definite, diagonally dominant, sometimes spoiled. */
    for (int64_t i = 0; i < real && ld_ok; i++)
        for (int64_t j = 0; j < real; j++) k[i * ld + j] = (float)(i == j) + 0.1f * (float)((i + j) % 3);
    if (chance(10) && kcount > 0) k[below(kcount)] = any_float();
    int64_t cap = chance(85) ? real : below(real + 1);
    TRACE("algebra n %" PRId64 " ld %" PRId64 " cap %" PRId64, n, ld, cap);
    CALL(gn_kernel_eigenvalues(k, n, ld, guarded(sizeof(double) * (size_t)cap), cap));
    double nu, ridge;
    CALL(gn_kernel_nu(k, n, ld, floats(real), &nu, chance(50) ? &ridge : NULL));
    int64_t t = 1 + below(3), acap = chance(85) ? real * t : below(real * t + 1);
    float *alpha = guarded(sizeof(float) * (size_t)acap);
    CALL(gn_kernel_ridge_fit(k, n, ld, floats(real * t), t, chance(80) ? 1e-3 : (double)any_float(), alpha, acap, &ridge));
    int64_t m = 1 + below(4), ocap = chance(85) ? m * t : below(m * t);
    float *kt = clean_floats(ld_ok ? (m - 1) * ld + real : 1);
    if (alpha && acap == real * t && ld_ok) CALL(gn_kernel_ridge_predict(kt, m, n, ld, alpha, t, guarded(sizeof(float) * (size_t)ocap), ocap));
    int64_t classes = chance(90) ? 1 + below(4) : any_count(4);
    int64_t tcap = classes > 0 && classes < 8 ? real * (classes > 1 ? classes : 1) : below(16);
    CALL(gn_kernel_targets(labels(real, 4), n, classes, guarded(sizeof(float) * (size_t)tcap), tcap));
    CALL(gn_kernel_classes(floats(m * t), m, t, guarded(sizeof(int32_t) * (size_t)m), chance(90) ? m : 0));
    int64_t ln = chance(95) ? below(40) : any_count(40);
    int64_t lreal = honest(ln, 64);
    if (ln != lreal && !(ln > 0 && ln > INT64_MAX / 4)) ln = lreal;
    int64_t changed;
    CALL(gn_corrupt_labels(labels(lreal, 5), ln, (int32_t)(below(7) - 1), chance(80) ? (double)below(11) / 10 : (double)any_float(), rnd(), &changed));
}

static void f_persist(void) {
    char path[400];
    snprintf(path, sizeof path, "%s/net-%d.gnet", tmpdir, (int)below(3));
    TRACE("persist %s", path);
    if (chance(50)) {
        gn_network *n = any_fc();
        CALL(gn_network_save(n, chance(95) ? path : NULL, (unsigned)below(4)));
        size_t need = 0;
        gn_network_serialize(n, 1, NULL, 0, &need);
        size_t cap = chance(80) ? need : (size_t)below((int64_t)need + 1);
        if (cap > (1u << 24)) cap = 0;
        unsigned char *buf = guarded(cap);
        gn_status s = gn_network_serialize(n, (unsigned)below(2), buf, cap, &need);
        check(s, "gn_network_serialize");
        if (s == GN_OK && buf) {
            bytes m = mutate(buf, need, 1);
            if (m.p) load_bytes(m.p, m.n);
            if (m.p && chance(30)) { write_file(path, m.p, m.n, 0); load_everything(path); }
        }
    } else {
        gn_conv_network *n = any_cv();
        CALL(gn_conv_network_save(n, path, (unsigned)below(4)));
        size_t need = 0;
        gn_conv_network_serialize(n, 1, NULL, 0, &need);
        size_t cap = chance(80) ? need : (size_t)below((int64_t)need + 1);
        if (cap > (1u << 24)) cap = 0;
        unsigned char *buf = guarded(cap);
        gn_status s = gn_conv_network_serialize(n, (unsigned)below(2), buf, cap, &need);
        check(s, "gn_conv_network_serialize");
        if (s == GN_OK && buf) {
            bytes m = mutate(buf, need, 1);
            if (m.p) load_bytes(m.p, m.n);
        }
    }
    load_everything(path);
}

static void f_idx(void) {
    char path[400];
    int gz = (int)below(2);
    snprintf(path, sizeof path, "%s/data%s", tmpdir, gz ? ".gz" : "");
    bytes v = make_idx((int)below(2));
    if (!v.p) return;
    bytes m = chance(70) ? mutate(v.p, v.n, 0) : v;
    if (!m.p) return;
    TRACE("idx gz %d bytes %zu", gz, m.n);
    write_file(path, m.p, m.n, gz);
    load_everything(path);
}

static void f_info_cv(void) {
    gn_conv_network *n = any_cv();
    TRACE("info_cv %p", (void *)n);
    gn_conv_network_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = chance(90) ? sizeof info : (size_t)below(sizeof info * 2);
    CALL(gn_conv_network_get_info(n, &info));
    int64_t h, w, c, layer = any_count(3) - 1, count = 0;
    CALL(gn_conv_network_gated_shape(n, layer, chance(80) ? &h : NULL, &w, &c));
    size_t bcap = (size_t)below(100), needed;
    CALL(gn_conv_network_describe(n, guarded(bcap), bcap, &needed));
    CALL(gn_conv_network_set_frozen(n, (gn_part)below(3), (int)below(2)));
    CALL(gn_conv_network_copy_feature_weights(any_cv(), any_cv(), (int)below(2)));
    CALL(gn_conv_network_tensor_count(n, &count));
    int64_t index = chance(90) ? below(count + 1) : any_count(4), rows = 0, cols = 0;
    size_t ncap = (size_t)below(30);
    gn_status s = gn_conv_network_tensor_info(n, index, guarded(ncap), ncap, &rows, &cols);
    check(s, "gn_conv_network_tensor_info");
    int64_t want = s == GN_OK ? rows * cols : below(30);
    int64_t cap = chance(80) ? honest(want, 1 << 15) : below(want + 1);
    CALL(gn_conv_network_get_tensor(n, index, guarded(sizeof(float) * (size_t)cap), cap));
    int64_t cnt = chance(80) ? honest(want, 1 << 15) : below(40);
    CALL(gn_conv_network_set_tensor(n, index, chance(85) ? clean_floats(cnt) : floats(cnt), cnt));
    gn_conv_network *copy = NULL;
    s = gn_conv_network_clone(n, &copy);
    check(s, "gn_conv_network_clone");
    if (s == GN_OK) adopt_cv(copy);
}

static void f_run_cv(void) {
    gn_conv_network *n = any_cv();
    int64_t d, k, gated;
    cv_dims(n, &d, &k, &gated);
    int64_t rows = chance(90) ? 1 + below(5) : any_count(5), real = honest(rows, 8);
    if (rows != real && !(rows > 0 && rows > INT64_MAX / (d > 0 ? d : 1))) rows = real;
    TRACE("run_cv %p d %" PRId64 " rows %" PRId64, (void *)n, d, rows);
    float *x = chance(85) ? clean_floats(real * d) : floats(real * d);
    int32_t *y = labels(real, (int32_t)k);
    int64_t cap = chance(85) ? real * k : below(real * k + 1);
    CALL(gn_conv_network_predict(n, x, rows, guarded(sizeof(float) * (size_t)cap), cap));
    CALL(gn_conv_network_predict_classes(n, x, rows, guarded(sizeof(int32_t) * (size_t)real), real));
    double loss, acc;
    CALL(gn_conv_network_evaluate(n, x, y, rows, (gn_loss)below(3), &loss, chance(50) ? &acc : NULL));
    float *t = chance(85) ? clean_floats(real * k) : floats(real * k);
    CALL(gn_conv_network_evaluate_regression(n, x, t, rows, chance(95) ? &loss : NULL));
    int64_t layer = chance(85) ? below(gated) : any_count(3) - 1, h = 0, w = 0, c = 0;
    int64_t gcap = gn_conv_network_gated_shape(n, layer, &h, &w, &c) == GN_OK ? real * h * w * c : below(40);
    if (chance(15)) gcap = below(gcap + 1);
    CALL(gn_conv_network_gates(n, x, rows, layer, (int)below(2), guarded(sizeof(float) * (size_t)gcap), gcap));
    if (chance(40)) {
        gn_train_options o = train_options();
        int64_t hcap = below(2), ran;
        CALL(gn_conv_network_train(n, x, y, rows, NULL, NULL, 0, &o, guarded(sizeof(gn_epoch_metrics) * (size_t)hcap), hcap, &ran));
        if (chance(80)) o.loss = GN_LOSS_SQUARED;
        CALL(gn_conv_network_train_regression(n, x, t, rows, NULL, NULL, 0, &o,
                                              guarded(sizeof(gn_epoch_metrics) * (size_t)hcap), hcap, &ran));
    }
    int64_t nb = chance(90) ? 1 + below(3) : any_count(3), rb = honest(nb, 8);
    if (nb != rb && !(nb > 0 && nb > INT64_MAX / (d > 0 ? d : 1))) nb = rb;
    int same = chance(30);
    float *xb = same ? x : clean_floats(rb * d);
    if (same) nb = rows;
    int64_t ld, kcap;
    float *out = kernel_out(rows, nb, &ld, &kcap);
    CALL(gn_conv_network_kernel(n, (gn_conv_kernel_kind)(below(6) - (chance(5) ? 1 : 0)), x, rows, xb, nb, out, ld, kcap));
    if (chance(20)) { /* with options; given gates (refused by conv kernels) half the time */
        gn_kernel_options o;
        gn_kernel_options_init(&o);
        if (chance(50)) o.gates_a = guarded(8 * 4), o.capacity_gates_a = 4;
        if (chance(30)) o.gates_b = guarded(8 * 4), o.capacity_gates_b = below(5);
        CALL(gn_conv_network_kernel_compute(n, (gn_conv_kernel_kind)below(5), x, rows, xb, nb, &o, out, ld, kcap));
    }
}

static void f_hidden(void) {
    int64_t rows = chance(90) ? 1 + below(5) : any_count(5), real = honest(rows, 8);
    gn_part part = (gn_part)below(3);
    gn_hidden_kind kind = (gn_hidden_kind)below(3);
    int64_t cap = below(400);
    if (chance(50)) {
        gn_network *n = any_fc();
        int64_t d = fc_d(n), layer = any_count(3) - 2;
        if (rows != real && !(rows > 0 && rows > INT64_MAX / (d > 0 ? d : 1))) rows = real;
        TRACE("hidden_fc %p rows %" PRId64 " layer %" PRId64 " cap %" PRId64, (void *)n, rows, layer, cap);
        CALL(gn_network_hidden_state(n, chance(85) ? clean_floats(real * d) : floats(real * d), rows, part, layer, kind,
                                     guarded(sizeof(float) * (size_t)cap), cap));
    } else {
        gn_conv_network *n = any_cv();
        int64_t d, k, gated, layer = any_count(3) - 2, count = 0, at = 0;
        int projection = 0;
        cv_dims(n, &d, &k, &gated);
        if (rows != real && !(rows > 0 && rows > INT64_MAX / (d > 0 ? d : 1))) rows = real;
        TRACE("hidden_cv %p rows %" PRId64 " layer %" PRId64 " cap %" PRId64, (void *)n, rows, layer, cap);
        CALL(gn_conv_network_hidden_state(n, chance(85) ? clean_floats(real * d) : floats(real * d), rows, part, layer,
                                          kind, guarded(sizeof(float) * (size_t)cap), cap));
        gn_conv_network_tensor_count(n, &count);
        CALL(gn_conv_network_tensor_layer(n, chance(90) ? below(count + 1) : any_count(4), chance(80) ? &at : NULL,
                                          chance(80) ? &projection : NULL));
    }
}

typedef void (*fuzz_fn)(void);
static const struct { const char *name; fuzz_fn fn; int weight; } calls[] = {
    {"meta", f_meta, 1},           {"create_fc", f_create_fc, 3}, {"create_cv", f_create_cv, 3},
    {"named", f_named, 1},         {"free", f_free, 2},           {"info_fc", f_info_fc, 3},
    {"weights_fc", f_weights_fc, 3}, {"train_fc", f_train_fc, 3}, {"predict_fc", f_predict_fc, 3},
    {"gates_fc", f_gates_fc, 3},   {"kernel_fc", f_kernel_fc, 5}, {"algebra", f_kernel_algebra, 3},
    {"persist", f_persist, 3},     {"idx", f_idx, 2},             {"info_cv", f_info_cv, 3},
    {"run_cv", f_run_cv, 3},       {"hidden", f_hidden, 2},
};
enum { NCALLS = sizeof calls / sizeof calls[0] };

/* One batch: a fresh pool from the seed, then `count` weighted random calls. */
static int run_batch(uint64_t seed, int count) {
    rng_state = seed;
    failures = 0;
    memset(fc, 0, sizeof fc), memset(cv, 0, sizeof cv);
    stale_fc = stale_cv = NULL;
    for (size_t i = 0; i < sizeof foreign_bytes / 8; i++) foreign_bytes[i] = rnd();
    fill_pools();
    int total = 0;
    for (int i = 0; i < NCALLS; i++) total += calls[i].weight;
    for (int c = 0; c < count; c++) {
        int64_t r = below(total);
        int i = 0;
        while (r >= calls[i].weight) r -= calls[i].weight, i++;
        TRACE("[%d] %s", c, calls[i].name);
        calls[i].fn();
        free_guarded();
    }
    return failures == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------ regressions (issue 12) */

/* Address space of `bytes` that is never touched unless read: zero pages on demand. */
static void *reserve(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static int expect(gn_status got, gn_status want, const char *what) {
    if (got == want) return 0;
    fprintf(stderr, "fuzz: regression %s: expected %s, got %s (%s)\n", what, gn_status_name(want),
            gn_status_name(got), gn_last_error());
    return 1;
}

/* Conv kernel span: (n_a - 1) * ld = 2^63 - 1, plus n_b overflowed unchecked (SIGILL). */
static int regression_0(void *unused) {
    (void)unused;
    int bad = 0;
    gn_layer_spec layers[3] = {{GN_LAYER_CONV, 2, 3, 1, GN_PAD_CIRCULAR, 0, 0},
                               {GN_LAYER_GLOBAL_AVG_POOL, 0, 0, 0, GN_PAD_ZERO, 0, 0},
                               {GN_LAYER_DENSE, 2, 0, 0, GN_PAD_ZERO, 0, 0}};
    gn_conv_network_spec spec;
    gn_conv_network *net = NULL;
    gn_conv_network_spec_init(&spec, GN_REGIME_FIXED_RANDOM_II, 1, 4, 4, 3, layers);
    if (gn_conv_network_create(&spec, &net) != GN_OK) return 1;
    int64_t na = 153092024, ld = 60247241209LL, nb = 1;
    float *xa = reserve((size_t)na * 16 * sizeof(float));
    float out[4];
    if (xa && gn_conv_network_kernel(net, GN_CONV_KERNEL_NPK, xa, na, xa, nb, out, ld, INT64_MAX) == GN_OK) {
        fprintf(stderr, "fuzz: regression conv kernel span overflow: accepted\n");
        bad++;
    }
    gn_conv_network_free(net);
    if (xa) munmap(xa, (size_t)na * 16 * sizeof(float));
    return bad;
}

/* Kernel algebra at n = 2^17: the double copy (137 GB) cannot be allocated. */
static int regression_1(void *unused) {
    (void)unused;
    int bad = 0;
    int64_t n = 1 << 17;
    size_t kb = (size_t)n * (size_t)n * sizeof(float);
    float *k = reserve(kb);
    double *values = reserve((size_t)n * sizeof(double));
    float *y = reserve((size_t)n * sizeof(float));
    float *alpha = reserve((size_t)n * sizeof(float));
    double nu;
    if (k && values && y && alpha) {
        bad += expect(gn_kernel_eigenvalues(k, n, n, values, n), GN_ERR_OUT_OF_MEMORY, "eigenvalues n=2^17");
        bad += expect(gn_kernel_nu(k, n, n, y, &nu, NULL), GN_ERR_OUT_OF_MEMORY, "nu n=2^17");
        bad += expect(gn_kernel_ridge_fit(k, n, n, y, 1, 1e-3, alpha, n, NULL), GN_ERR_OUT_OF_MEMORY, "ridge n=2^17");
    }
    munmap(k, kb), munmap(values, (size_t)n * 8), munmap(y, (size_t)n * 4), munmap(alpha, (size_t)n * 4);
    return bad;
}

/* Label corruption at n = 2^33: the position table (64 GB) cannot be allocated. */
static int regression_2(void *unused) {
    (void)unused;
    int bad = 0;
    int64_t n = (int64_t)1 << 33;
    int32_t *y = reserve((size_t)n * sizeof(int32_t));
    if (y) bad += expect(gn_corrupt_labels(y, n, 10, 0.5, 1, NULL), GN_ERR_OUT_OF_MEMORY, "corrupt_labels n=2^33");
    munmap(y, (size_t)n * sizeof(int32_t));
    return bad;
}

/* Finite 3e38 inputs overflow to inf - inf inside the network: an error, not NaN outputs. */
static int regression_3(void *unused) {
    (void)unused;
    int bad = 0;
    int64_t widths[2] = {4, 4};
    gn_network_spec spec;
    gn_network *net = NULL;
    gn_network_spec_init(&spec, GN_REGIME_DECOUPLED, 3, 2, widths, 2);
    spec.seed = 7;
    if (gn_network_create(&spec, &net) == GN_OK) {
        float x[3] = {3e38f, -3e38f, 3e38f}, out[2];
        gn_status s = gn_predict(net, x, 1, out, 2);
        if (s == GN_OK && (!isfinite(out[0]) || !isfinite(out[1]))) {
            fprintf(stderr, "fuzz: regression predict on 3e38 inputs: GN_OK with non-finite outputs\n");
            bad++;
        }
        gn_network_free(net);
    }
    return bad;
}

/* A freed handle must stay invalid after its memory is reused by a new network. */
static int regression_4(void *unused) {
    (void)unused;
    int bad = 0;
    int64_t widths[1] = {3};
    gn_network_spec spec;
    gn_network *a = NULL, *b = NULL;
    gn_network_spec_init(&spec, GN_REGIME_RELU, 2, 1, widths, 2);
    gn_network_create(&spec, &a);
    gn_network_free(a);
    gn_network_create(&spec, &b);
    gn_network_info info;
    info.struct_size = sizeof info;
    bad += expect(gn_network_get_info(a, &info), GN_ERR_INVALID_HANDLE, "stale handle after reuse");
    gn_network_free(b);
    return bad;
}

/* Conv kernels of a net with 160,000 input positions: the input Gram needs no P x P scratch
 * (it aborted allocating 340 GB), the path kernels are refused with GN_ERR_OUT_OF_MEMORY. */
static int regression_5(void *unused) {
    (void)unused;
    int bad = 0;
    gn_layer_spec layers[3] = {{GN_LAYER_CONV, 1, 1, 4, GN_PAD_VALID, 0, 0},
                               {GN_LAYER_GLOBAL_AVG_POOL, 0, 0, 0, GN_PAD_ZERO, 0, 0},
                               {GN_LAYER_DENSE, 2, 0, 0, GN_PAD_ZERO, 0, 0}};
    gn_conv_network_spec spec;
    gn_conv_network *net = NULL;
    gn_conv_network_spec_init(&spec, GN_REGIME_FIXED_RANDOM_II, 1, 400, 400, 3, layers);
    if (gn_conv_network_create(&spec, &net) != GN_OK) return 1;
    float *x = calloc(2 * 400 * 400, sizeof(float)), out[4];
    if (!x) return 1;
    x[0] = 1, x[160001] = 2; /* rows (1, 0, ...) and (0, 2, ...) */
    bad += expect(gn_conv_network_kernel(net, GN_CONV_KERNEL_INPUT_GRAM, x, 2, x, 2, out, 2, 4), GN_OK, "conv input gram, 160000 positions");
    if (out[1] != 0.0f || out[0] != 1.0f || out[3] != 4.0f) {
        fprintf(stderr, "fuzz: regression conv input gram: got %g %g %g %g, want 1 0 0 4\n", out[0], out[1], out[2], out[3]);
        bad++;
    }
    bad += expect(gn_conv_network_kernel(net, GN_CONV_KERNEL_NPK, x, 2, x, 2, out, 2, 4), GN_ERR_OUT_OF_MEMORY, "conv npk, 160000 positions");
    free(x);
    gn_conv_network_free(net);
    return bad;
}

static const struct { const char *what; int (*fn)(void *); } regression_cases[] = {
    {"Conv input Gram of 160,000 positions", regression_5},
    {"Conv kernel span", regression_0},
    {"Kernel algebra at n = 2^17", regression_1},
    {"Label corruption at n = 2^36", regression_2},
    {"Finite 3e38 inputs overflow to inf - inf inside the network", regression_3},
    {"A freed handle must stay invalid after its memory is reused by a new network.", regression_4},
};

/* ------------------------------------------------------------------ corpus and special files */

/* A file named reject-* must be refused by both network loaders, both deserializers and both
 * IDX value readers (gn_idx_dims may accept a valid header in front of a bad body). */
static int rejected_everywhere(const char *path) {
    gn_network *n = NULL;
    gn_conv_network *c = NULL;
    static float fv[4096];
    static int32_t iv[4096];
    static unsigned char raw[1 << 16];
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (f) len = fread(raw, 1, sizeof raw, f), fclose(f);
    gn_status s[6] = {gn_network_load(path, &n), gn_conv_network_load(path, &c), gn_idx_read_f32(path, 1.0f, fv, 4096),
                      gn_idx_read_i32(path, iv, 4096), gn_network_deserialize(raw, len, &n),
                      gn_conv_network_deserialize(raw, len, &c)};
    static const char *names[6] = {"gn_network_load", "gn_conv_network_load", "gn_idx_read_f32", "gn_idx_read_i32",
                                   "gn_network_deserialize", "gn_conv_network_deserialize"};
    int ok = 1;
    for (int i = 0; i < 6; i++)
        if (s[i] == GN_OK) {
            fprintf(stderr, "fuzz: corpus file %s was accepted by %s\n", path, names[i]);
            ok = 0;
        }
    return ok;
}

static int corpus(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "fuzz: no corpus directory %s\n", dir);
        return 1;
    }
    struct dirent *e;
    int files = 0;
    failures = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        TRACE("corpus %s", path);
        if (!strncmp(e->d_name, "reject-", 7)) failures += !rejected_everywhere(path);
        load_everything(path);
        FILE *f = fopen(path, "rb");
        if (f) {
            unsigned char *buf = malloc(1 << 20);
            size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
            if (buf) load_bytes(buf, n);
            free(buf);
            fclose(f);
        }
        free_guarded();
        files++;
    }
    closedir(d);
    fprintf(stderr, "fuzz: corpus: %d files through every loader\n", files);
    return failures == 0 ? 0 : 1;
}

/* Files a reader must not trust: an endless one, a FIFO nobody writes to, and a gzip IDX
 * whose header announces 10 labels but whose stream inflates to 1 GiB (all rejected within the
 * child's time limit and, with the address-space limit, without inflating the stream). */
static int special_dev_zero(void *unused) {
    (void)unused;
    failures = 0;
    load_everything("/dev/zero");
    return failures == 0 ? 0 : 1;
}
static int special_fifo(void *unused) {
    (void)unused;
    char fifo[400];
    snprintf(fifo, sizeof fifo, "%s/fifo", tmpdir);
    unlink(fifo);
    if (mkfifo(fifo, 0600) != 0) return 1;
    failures = 0;
    load_everything(fifo);
    return failures == 0 ? 0 : 1;
}
static int special_gzip_bomb(void *unused) {
    (void)unused;
    char path[400];
    snprintf(path, sizeof path, "%s/bomb-labels-idx1-ubyte.gz", tmpdir);
    gzFile f = gzopen(path, "wb1");
    if (!f) return 1;
    static unsigned char chunk[1 << 20];
    unsigned char header[8] = {0, 0, 8, 1, 0, 0, 0, 10}; /* 10 unsigned-byte labels */
    gzwrite(f, header, 8);
    for (int i = 0; i < 1024; i++) gzwrite(f, chunk, sizeof chunk);
    gzclose(f);
    /* 512 MiB more address space than the process has now is plenty for reading 10 labels,
     * and too little to inflate the whole stream. */
    unsigned long pages = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (!statm || fscanf(statm, "%lu", &pages) != 1) return 1;
    fclose(statm);
    rlim_t limit = (rlim_t)pages * 4096 + ((rlim_t)512 << 20);
    struct rlimit lim = {limit, limit};
    setrlimit(RLIMIT_AS, &lim);
    int32_t labels_out[10];
    float floats_out[10];
    gn_status s1 = gn_idx_read_i32(path, labels_out, 10);
    gn_status s2 = gn_idx_read_f32(path, 1.0f, floats_out, 10);
    /* The stream holds more than announced: either the 10 labels or GN_ERR_CORRUPT. */
    int ok = (s1 == GN_OK || s1 == GN_ERR_CORRUPT) && (s2 == GN_OK || s2 == GN_ERR_CORRUPT);
    if (!ok) fprintf(stderr, "fuzz: gzip bomb: %s / %s (%s)\n", gn_status_name(s1), gn_status_name(s2), gn_last_error());
    return ok ? 0 : 1;
}
static const struct { const char *what; int (*fn)(void *); } special_files[] = {
    {"/dev/zero into every loader", special_dev_zero},
    {"a FIFO without a writer into every loader", special_fifo},
    {"a gzip IDX announcing 10 labels, inflating to 1 GiB", special_gzip_bomb},
};

/* Run fn in a child with a time limit; 0 if it exited 0, else describe how it ended. */
static int in_child(int (*fn)(void *), void *arg, unsigned seconds, const char *what) {
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGABRT, SIGFPE, SIGTRAP, SIGALRM};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], dump_trace);
        alarm(seconds);
        _exit(fn(arg));
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "fuzz: %s: killed by signal %d (%s)%s\n", what, WTERMSIG(status), strsignal(WTERMSIG(status)),
                WTERMSIG(status) == SIGALRM ? " — over its time limit (a hang or an unbounded read)" : "");
    else
        fprintf(stderr, "fuzz: %s: failed checks (exit %d)\n", what, WEXITSTATUS(status));
    return 1;
}

static int calls_per_batch = 400;
static int batch_child(void *arg) { return run_batch(*(uint64_t *)arg, calls_per_batch); }
static int corpus_child(void *arg) { return corpus((const char *)arg); }

int main(int argc, char **argv) {
    double seconds = 60;
    uint64_t seed = (uint64_t)time(NULL);
    int replay = 0;
    const char *corpus_dir = "Tests/fuzz/corpus";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--replay") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 0), replay = 1;
        else if (!strcmp(argv[i], "--calls-per-batch") && i + 1 < argc) calls_per_batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--corpus") && i + 1 < argc) corpus_dir = argv[++i];
        else if (!strcmp(argv[i], "--verbose")) verbose = 1;
        else {
            fprintf(stderr, "usage: %s [--seconds S] [--seed N] [--replay SEED] [--calls-per-batch K] [--corpus DIR] [--verbose]\n", argv[0]);
            return 2;
        }
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gn-fuzz.XXXXXX");
    if (!mkdtemp(tmpdir)) return 2;
    if (replay) {
        verbose = 1;
        int r = in_child(batch_child, &seed, 120, "replayed batch");
        printf("fuzz: replay of batch seed %" PRIu64 ": %s\n", seed, r ? "FAILED (the last traced call is the culprit)" : "passed");
        return r;
    }
    long passed = 0, failed = 0;
    if (in_child(corpus_child, (void *)corpus_dir, 60, "corpus")) failed++; else passed++;
    for (size_t i = 0; i < sizeof regression_cases / sizeof regression_cases[0]; i++) {
        char what[160];
        snprintf(what, sizeof what, "regression: %s", regression_cases[i].what);
        if (in_child(regression_cases[i].fn, NULL, 120, what)) failed++; else passed++;
    }
    for (size_t i = 0; i < sizeof special_files / sizeof special_files[0]; i++) {
        char what[160];
        snprintf(what, sizeof what, "special file: %s", special_files[i].what);
        if (in_child(special_files[i].fn, NULL, 20, what)) failed++; else passed++;
    }
    struct timeval t0, t;
    gettimeofday(&t0, NULL);
    uint64_t batch = 0;
    printf("fuzz: random calls for %.0f s from seed %" PRIu64 " (%d calls per batch)\n", seconds, seed, calls_per_batch);
    for (;; batch++) {
        gettimeofday(&t, NULL);
        if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_usec - t0.tv_usec) * 1e-6 >= seconds) break;
        uint64_t s = seed + batch * 0x9E3779B97F4A7C15ull;
        char what[96];
        snprintf(what, sizeof what, "batch seed %" PRIu64, s);
        if (in_child(batch_child, &s, 120, what)) {
            failed++;
            fprintf(stderr, "fuzz: replay with: %s --replay %" PRIu64 "\n", argv[0], s);
            if (failed >= 5) break;
        } else {
            passed++;
        }
    }
    printf("fuzz: %" PRIu64 " batches of %d random calls\n", batch, calls_per_batch);
    printf("fuzz: %ld passed, %ld failed\n", passed, failed);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) {}
    return failed ? 1 : 0;
}
