/*
 * test_files.c — file handling of libgatednet through the C ABI (issue 12, items 2, 3, 6–10):
 * bounded reads (FIFOs, /dev/zero, a gzip bomb behind a small capacity), atomic saves
 * (concurrent savers and a reader, a planted symlink, SIGKILL mid-save), paths as bytes
 * (non-UTF-8 names), finite weights at load, and gn_corrupt_labels at an unallocatable size.
 * Every section runs in a forked child (testing.h); alarm() turns a hang into a failure.
 */
#define _GNU_SOURCE 1
#include "testing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

static char dir_[256];

/* A fresh empty directory for one section (removed with its files at the end of the run). */
static const char *fresh_dir(const char *tag) {
    snprintf(dir_, sizeof dir_, "/tmp/gn-files-%ld-%s-XXXXXX", (long)getpid(), tag);
    if (mkdtemp(dir_) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    return dir_;
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Entries of dir other than "." and "..", not named `except` (may be NULL). */
static int count_entries(const char *dir, const char *except) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (except && !strcmp(e->d_name, except)) continue;
        n++;
    }
    closedir(d);
    return n;
}

static long max_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static gn_network *make_net(int64_t in, int64_t width, uint64_t seed) {
    gn_network_spec s;
    gn_network_spec_init(&s, GN_REGIME_DECOUPLED, in, 1, &width, 3);
    s.seed = seed;
    gn_network *net = NULL;
    if (gn_network_create(&s, &net) != GN_OK) return NULL;
    return net;
}

static gn_layer_spec conv_layers_[2];

/* A small conv network: 3x3 conv with `channels` channels on a 4x4x1 image, dense 3 outputs. */
static gn_conv_network *make_conv(int64_t channels) {
    memset(conv_layers_, 0, sizeof conv_layers_);
    conv_layers_[0].kind = GN_LAYER_CONV;
    conv_layers_[0].units = channels;
    conv_layers_[0].kernel = 3;
    conv_layers_[0].stride = 1;
    conv_layers_[0].padding = GN_PAD_CIRCULAR;
    conv_layers_[1].kind = GN_LAYER_DENSE;
    conv_layers_[1].units = 3;
    conv_layers_[1].kernel = 1;
    conv_layers_[1].stride = 1;
    gn_conv_network_spec cs;
    gn_conv_network *net = NULL;
    if (gn_conv_network_spec_init(&cs, GN_REGIME_DECOUPLED, 1, 4, 4, 2, conv_layers_) != GN_OK) return NULL;
    if (gn_conv_network_create(&cs, &net) != GN_OK) return NULL;
    return net;
}

static int write_file(const char *path, const void *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(bytes, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* Whole file into a malloc'd buffer; *n gets its size. NULL if unreadable. */
static unsigned char *read_whole(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(size > 0 ? (size_t)size : 1);
    *n = fread(b, 1, (size_t)size, f);
    fclose(f);
    return b;
}

/* CRC-32 (IEEE, as zlib's crc32), bitwise: enough for the test files here. */
static uint32_t crc32_ieee(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static void put_le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* ---- item 3: bounded reads ------------------------------------------------------------- */

static void test_fifo_and_devices(void) {
    alarm(60); /* a blocked open or read ends the section as a failure */
    const char *dir = fresh_dir("fifo");
    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s/pipe.gnet", dir);
    CHECK(mkfifo(fifo, 0600) == 0);
    gn_network *net = NULL;
    gn_conv_network *conv = NULL;
    int32_t labels[10];
    float pixels[10];
    int64_t dims[8], ndim = 0;
    const char *paths[] = {fifo, "/dev/zero", "/dev/null", dir};
    for (int k = 0; k < 4; k++) {
        const char *p = paths[k];
        double t0 = now_s();
        CHECK_STATUS(gn_network_load(p, &net), GN_ERR_IO, "not a regular file");
        CHECK(net == NULL);
        CHECK_STATUS(gn_conv_network_load(p, &conv), GN_ERR_IO, "not a regular file");
        CHECK(conv == NULL);
        CHECK_STATUS(gn_idx_read_i32(p, labels, 10), GN_ERR_IO, "not a regular file");
        CHECK_STATUS(gn_idx_read_f32(p, 1.0f, pixels, 10), GN_ERR_IO, "not a regular file");
        CHECK_STATUS(gn_idx_dims(p, dims, 8, &ndim), GN_ERR_IO, "not a regular file");
        CHECKF(now_s() - t0 < 30, "%s: %.1f s", p, now_s() - t0);
    }
    CHECKF(max_rss_mb() < 400, "max RSS %ld MB", max_rss_mb());
    remove_dir(dir);
    alarm(0);
}

/* A gzip file whose IDX header announces `n_values` int32 values, followed by `zeros` zero
 * bytes of body, compressed by hand with fixed-Huffman deflate (one literal 0, then
 * <length 258, distance 1> matches: 13 bits per 258 bytes, so 1 GiB takes about 6.6 MB).
 * The trailer's CRC-32 is exact below 1 MiB; above, it is left 0 (a reader must stop long
 * before reaching it). */
typedef struct {
    FILE *f;
    uint32_t acc;
    int bits;
} bitw;

static void put_bits(bitw *w, uint32_t v, int n) { /* LSB-first, as deflate packs */
    w->acc |= v << w->bits;
    w->bits += n;
    while (w->bits >= 8) {
        fputc((int)(w->acc & 0xFF), w->f);
        w->acc >>= 8;
        w->bits -= 8;
    }
}
/* Huffman codes are written most significant bit first. */
static void put_code(bitw *w, uint32_t code, int n) {
    uint32_t r = 0;
    for (int i = 0; i < n; i++) r |= ((code >> i) & 1u) << (n - 1 - i);
    put_bits(w, r, n);
}
static void put_literal(bitw *w, int b) {
    if (b < 144) put_code(w, 0x30u + (uint32_t)b, 8);
    else put_code(w, 0x190u + (uint32_t)(b - 144), 9);
}

static int write_idx_gzip_bomb(const char *path, uint32_t n_values, uint64_t zeros) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    const unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    fwrite(hdr, 1, 10, f);
    bitw w = {f, 0, 0};
    put_bits(&w, 1, 1); /* BFINAL */
    put_bits(&w, 1, 2); /* fixed Huffman */
    unsigned char idx[8] = {0, 0, 0x0C, 1, (unsigned char)(n_values >> 24), (unsigned char)(n_values >> 16),
                            (unsigned char)(n_values >> 8), (unsigned char)n_values};
    for (int i = 0; i < 8; i++) put_literal(&w, idx[i]);
    uint64_t left = zeros;
    if (left > 0) {
        put_literal(&w, 0);
        left--;
    }
    while (left >= 258) {
        put_code(&w, 0xC5, 8); /* length code 285 = 258 */
        put_code(&w, 0, 5);    /* distance code 0 = 1 */
        left -= 258;
    }
    while (left > 0) {
        put_literal(&w, 0);
        left--;
    }
    put_code(&w, 0, 7); /* end of block (256) */
    if (w.bits > 0) put_bits(&w, 0, 8 - w.bits);
    /* trailer: CRC-32 and size of the uncompressed data (CRC only exact for small files) */
    uint64_t total = 8 + zeros;
    unsigned char *plain = NULL;
    uint32_t crc = 0;
    if (total < (1u << 20)) {
        plain = calloc(1, (size_t)total);
        memcpy(plain, idx, 8);
        crc = crc32_ieee(plain, (size_t)total);
        free(plain);
    }
    unsigned char tr[8];
    put_le32(tr, crc);
    put_le32(tr + 4, (uint32_t)total);
    fwrite(tr, 1, 8, f);
    return fclose(f);
}

static void test_idx_reads_are_bounded(void) {
    alarm(120);
    const char *dir = fresh_dir("idx");
    char gz[512];
    snprintf(gz, sizeof gz, "%s/bomb.idx.gz", dir);
    int32_t labels[16];
    int64_t dims[8], ndim = 0;

    /* Sanity: a small honest gzip IDX (10 values) reads back through the hand-made deflate. */
    CHECK(write_idx_gzip_bomb(gz, 10, 40) == 0);
    CHECK_STATUS(gn_idx_dims(gz, dims, 8, &ndim), GN_OK, NULL);
    CHECK(ndim == 1 && dims[0] == 10);
    for (int i = 0; i < 16; i++) labels[i] = -1;
    CHECK_STATUS(gn_idx_read_i32(gz, labels, 10), GN_OK, NULL);
    CHECK(labels[0] == 0 && labels[9] == 0 && labels[10] == -1);
    /* ... and a capacity one short is refused, naming the capacity. */
    CHECK_STATUS(gn_idx_read_i32(gz, labels, 9), GN_ERR_BUFFER_TOO_SMALL, "capacity");

    /* 1 GiB of zeros behind a header announcing 10 values (about 6.6 MB on disk): refused
     * after the 10 values, without inflating the rest. */
    CHECK(write_idx_gzip_bomb(gz, 10, (uint64_t)1 << 30) == 0);
    double t0 = now_s();
    CHECK_STATUS(gn_idx_read_i32(gz, labels, 10), GN_ERR_CORRUPT, "more data");
    CHECK_STATUS(gn_idx_read_f32(gz, 1.0f, (float *)labels, 10), GN_ERR_CORRUPT, "more data");
    /* A header announcing 2^28 values against a capacity of 10: refused before inflating. */
    CHECK(write_idx_gzip_bomb(gz, 1u << 28, (uint64_t)1 << 30) == 0);
    CHECK_STATUS(gn_idx_read_i32(gz, labels, 10), GN_ERR_BUFFER_TOO_SMALL, "capacity");
    double secs = now_s() - t0;
    long rss = max_rss_mb();
    CHECKF(rss < 300, "max RSS %ld MB while rejecting gzip bombs (the old reader inflated everything)", rss);
    CHECKF(secs < 20, "%.1f s", secs);
    remove_dir(dir);
    alarm(0);
}

/* ---- items 6-8: atomic saves --------------------------------------------------------- */

static void test_planted_symlink_is_not_followed(void) {
    const char *dir = fresh_dir("link");
    char target[512], victim[512], planted[600];
    snprintf(target, sizeof target, "%s/model.gnet", dir);
    snprintf(victim, sizeof victim, "%s/victim.txt", dir);
    const char precious[] = "precious data, must stay";
    CHECK(write_file(victim, precious, sizeof precious) == 0);
    /* the old predictable temporary name, and a few guesses at others */
    const char *patterns[] = {"%s.tmp.%ld", "%s.tmp", "%s~", "%s.new"};
    for (int k = 0; k < 4; k++) {
        snprintf(planted, sizeof planted, patterns[k], target, (long)getpid());
        CHECK(symlink(victim, planted) == 0);
    }
    gn_network *net = make_net(4, 8, 11);
    REQUIRE_OK(net ? GN_OK : GN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(gn_network_save(net, target, 0), GN_OK, NULL);
    CHECK_STATUS(gn_network_save(net, target, GN_SAVE_OPTIMIZER_STATE), GN_OK, NULL);
    size_t n = 0;
    unsigned char *v = read_whole(victim, &n);
    CHECKF(v && n == sizeof precious && memcmp(v, precious, n) == 0, "the symlink's target was overwritten (%zu bytes)", n);
    free(v);
    struct stat st;
    CHECK(lstat(target, &st) == 0 && S_ISREG(st.st_mode));
    gn_network *back = NULL;
    CHECK_STATUS(gn_network_load(target, &back), GN_OK, NULL);
    gn_network_free(back);
    /* the planted links are still links (nothing replaced or followed them) */
    for (int k = 0; k < 4; k++) {
        snprintf(planted, sizeof planted, patterns[k], target, (long)getpid());
        CHECK(lstat(planted, &st) == 0 && S_ISLNK(st.st_mode));
    }
    /* the same for a conv network */
    gn_conv_network *made = make_conv(2);
    gn_conv_network *conv = made;
    if (conv) {
        CHECK_STATUS(gn_conv_network_save(conv, target, 0), GN_OK, NULL);
        v = read_whole(victim, &n);
        CHECK(v && n == sizeof precious && memcmp(v, precious, n) == 0);
        free(v);
        gn_conv_network_free(conv);
    } else {
        CHECKF(0, "conv create: %s", gn_last_error());
    }
    gn_network_free(net);
    remove_dir(dir);
}

/* Savers write distinct networks to one path; a reader loads it meanwhile and must always
 * get one of them exactly (never a mix, never a corrupt file). */
enum { SAVERS = 3, SAVES_EACH = 40 };
static const char *shared_path;
static gn_network *savers_net[SAVERS];
static unsigned char *savers_bytes[SAVERS];
static size_t savers_size[SAVERS];
static volatile int savers_done;
static int save_failures, loads_ok, loads_bad, loads_missing;

static void *saver(void *arg) {
    int k = (int)(intptr_t)arg;
    for (int i = 0; i < SAVES_EACH; i++)
        if (gn_network_save(savers_net[k], shared_path, 0) != GN_OK) __atomic_add_fetch(&save_failures, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    while (!__atomic_load_n(&savers_done, __ATOMIC_SEQ_CST)) {
        gn_network *net = NULL;
        gn_status s = gn_network_load(shared_path, &net);
        if (s == GN_ERR_IO) { loads_missing++; continue; }
        if (s != GN_OK) { loads_bad++; continue; }
        size_t need = 0;
        unsigned char buf[1 << 16];
        int match = 0;
        if (gn_network_serialize(net, 0, buf, sizeof buf, &need) == GN_OK)
            for (int k = 0; k < SAVERS; k++)
                if (need == savers_size[k] && memcmp(buf, savers_bytes[k], need) == 0) match = 1;
        if (match) loads_ok++; else loads_bad++;
        gn_network_free(net);
    }
    return NULL;
}

static void test_concurrent_saves_and_reader(void) {
    alarm(240);
    const char *dir = fresh_dir("race");
    char path[512];
    snprintf(path, sizeof path, "%s/shared.gnet", dir);
    shared_path = path;
    for (int k = 0; k < SAVERS; k++) {
        savers_net[k] = make_net(6 + k, 40 + 8 * k, 100 + (uint64_t)k);
        REQUIRE_OK(savers_net[k] ? GN_OK : GN_ERR_INVALID_ARGUMENT);
        gn_network_serialize(savers_net[k], 0, NULL, 0, &savers_size[k]);
        savers_bytes[k] = malloc(savers_size[k]);
        REQUIRE_OK(gn_network_serialize(savers_net[k], 0, savers_bytes[k], savers_size[k], &savers_size[k]));
    }
    REQUIRE_OK(gn_network_save(savers_net[0], path, 0));
    pthread_t th[SAVERS], rd;
    pthread_create(&rd, NULL, reader, NULL);
    for (int k = 0; k < SAVERS; k++) pthread_create(&th[k], NULL, saver, (void *)(intptr_t)k);
    for (int k = 0; k < SAVERS; k++) pthread_join(th[k], NULL);
    __atomic_store_n(&savers_done, 1, __ATOMIC_SEQ_CST);
    pthread_join(rd, NULL);
    CHECKF(save_failures == 0, "%d of %d saves failed", save_failures, SAVERS * SAVES_EACH);
    CHECKF(loads_bad == 0 && loads_missing == 0, "reader: %d complete, %d corrupt or mixed, %d missing", loads_ok,
           loads_bad, loads_missing);
    CHECK(loads_ok > 0);
    CHECKF(count_entries(dir, "shared.gnet") == 0, "%d stray files left", count_entries(dir, "shared.gnet"));
    for (int k = 0; k < SAVERS; k++) {
        gn_network_free(savers_net[k]);
        free(savers_bytes[k]);
    }
    remove_dir(dir);
    alarm(0);
}

/* Children save a large network in a loop and are killed with SIGKILL at random moments. The
 * target is always a complete file; no temporary file survives the next save (stale ones of
 * dead processes are removed); and with unnamed temporary files (O_TMPFILE, as on ext4, xfs,
 * btrfs, tmpfs) a kill leaves nothing, except in the microseconds between naming the finished
 * file and renaming it: at most one such orphan is tolerated over all kills. */
static void test_sigkill_mid_save(void) {
    alarm(280);
    const char *dir = fresh_dir("kill");
    char path[512];
    snprintf(path, sizeof path, "%s/big.gnet", dir);
    int probe = open(dir, O_TMPFILE | O_WRONLY, 0600);
    int unnamed = probe >= 0;
    if (probe >= 0) close(probe);
    gn_network *net = make_net(512, 2048, 7); /* about 1.1 M weights: 4.5 MB per file */
    REQUIRE_OK(net ? GN_OK : GN_ERR_INVALID_ARGUMENT);
    size_t want = 0;
    gn_network_serialize(net, 0, NULL, 0, &want);
    unsigned int seed = 12345;
    int kills = 8, orphans = 0;
    for (int i = 0; i < kills; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (;;) gn_network_save(net, path, 0);
        }
        usleep(30000 + (rand_r(&seed) % 120000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        orphans += count_entries(dir, "big.gnet");
        /* whatever moment the kill hit, the target is absent (first save) or complete */
        struct stat st;
        if (stat(path, &st) == 0) {
            gn_network *back = NULL;
            CHECK_STATUS(gn_network_load(path, &back), GN_OK, NULL);
            gn_network_free(back);
        }
        /* remove this round's leftovers from the count of the next round */
        if (i + 1 < kills) {
            CHECK_STATUS(gn_network_save(net, path, 0), GN_OK, NULL);
            CHECKF(count_entries(dir, "big.gnet") == 0, "round %d: %d temporary files survive a later save", i,
                   count_entries(dir, "big.gnet"));
        }
    }
    printf("  sigkill: %d kills, %d orphaned temporary files (unnamed temporaries %s)\n", kills, orphans,
           unnamed ? "supported" : "not supported");
    if (unnamed) CHECKF(orphans <= 1, "%d orphaned temporary files after %d kills", orphans, kills);
    CHECK_STATUS(gn_network_save(net, path, 0), GN_OK, NULL);
    CHECKF(count_entries(dir, "big.gnet") == 0, "%d temporary files survive a later save", count_entries(dir, "big.gnet"));
    gn_network_free(net);
    remove_dir(dir);
    alarm(0);
}

/* ---- item 9: paths are bytes ---------------------------------------------------------- */

static void test_non_utf8_paths(void) {
    const char *dir = fresh_dir("bytes");
    char latin1[512], never[512], replaced[512];
    snprintf(latin1, sizeof latin1, "%s/caf\xe9.gnet", dir);   /* "café" in Latin-1 */
    snprintf(never, sizeof never, "%s/caf\xff.gnet", dir);     /* never written */
    snprintf(replaced, sizeof replaced, "%s/caf\xef\xbf\xbd.gnet", dir); /* U+FFFD in UTF-8 */
    gn_network *net = make_net(3, 5, 21);
    REQUIRE_OK(net ? GN_OK : GN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(gn_network_save(net, latin1, 0), GN_OK, NULL);
    struct stat st;
    CHECK(lstat(latin1, &st) == 0);     /* exactly that name exists */
    CHECK(lstat(replaced, &st) != 0);   /* and no re-encoded one */
    CHECK(count_entries(dir, NULL) == 1);
    gn_network *back = NULL;
    CHECK_STATUS(gn_network_load(latin1, &back), GN_OK, NULL);
    gn_network_free(back);
    back = NULL;
    CHECK_STATUS(gn_network_load(never, &back), GN_ERR_IO, "caf\\xFF.gnet");
    CHECK(back == NULL);

    /* conv networks */
    gn_conv_network *made = make_conv(2);
    gn_conv_network *conv = made, *conv_back = NULL;
    if (conv) {
        unlink(latin1);
        CHECK_STATUS(gn_conv_network_save(conv, latin1, 0), GN_OK, NULL);
        CHECK(lstat(latin1, &st) == 0 && lstat(replaced, &st) != 0);
        CHECK_STATUS(gn_conv_network_load(latin1, &conv_back), GN_OK, NULL);
        gn_conv_network_free(conv_back);
        conv_back = NULL;
        CHECK_STATUS(gn_conv_network_load(never, &conv_back), GN_ERR_IO, NULL);
        gn_conv_network_free(conv);
    }

    /* IDX readers: a file under a Latin-1 name reads; the never-written name does not */
    char idx[512];
    snprintf(idx, sizeof idx, "%s/\xe9tiquettes.idx", dir);
    const unsigned char file[] = {0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9};
    CHECK(write_file(idx, file, sizeof file) == 0);
    int64_t dims[8], ndim = 0;
    int32_t labels[3] = {0, 0, 0};
    CHECK_STATUS(gn_idx_dims(idx, dims, 8, &ndim), GN_OK, NULL);
    CHECK(ndim == 1 && dims[0] == 3);
    CHECK_STATUS(gn_idx_read_i32(idx, labels, 3), GN_OK, NULL);
    CHECK(labels[0] == 7 && labels[2] == 9);
    snprintf(idx, sizeof idx, "%s/\xfftiquettes.idx", dir);
    CHECK_STATUS(gn_idx_read_i32(idx, labels, 3), GN_ERR_IO, NULL);
    CHECK_STATUS(gn_idx_dims(idx, dims, 8, &ndim), GN_ERR_IO, NULL);
    /* empty paths are argument errors */
    CHECK_STATUS(gn_network_save(net, "", 0), GN_ERR_INVALID_ARGUMENT, "path");
    CHECK_STATUS(gn_idx_read_i32("", labels, 3), GN_ERR_INVALID_ARGUMENT, "path");
    gn_network_free(net);
    remove_dir(dir);
}

/* ---- item 10: non-finite weights behind a valid checksum ------------------------------ */

/* `bytes` with the 4 bytes of `value` at its first occurrence replaced by `bad` and the CRC
 * recomputed; returns 0 if the value was not found. */
static int poison(unsigned char *bytes, size_t n, float value, float bad) {
    unsigned char v[4];
    memcpy(v, &value, 4);
    for (size_t i = 24; i + 4 <= n - 4; i++) {
        if (memcmp(bytes + i, v, 4) == 0) {
            memcpy(bytes + i, &bad, 4);
            put_le32(bytes + n - 4, crc32_ieee(bytes, n - 4));
            return 1;
        }
    }
    return 0;
}

static void test_non_finite_weights_rejected_at_load(void) {
    const char *dir = fresh_dir("nan");
    char path[512];
    snprintf(path, sizeof path, "%s/poisoned.gnet", dir);
    gn_network *net = make_net(4, 6, 31);
    REQUIRE_OK(net ? GN_OK : GN_ERR_INVALID_ARGUMENT);
    float w[64];
    REQUIRE_OK(gn_network_get_weights(net, GN_PART_VALUE, 0, w, 64));
    size_t n = 0;
    gn_network_serialize(net, 0, NULL, 0, &n);
    unsigned char *orig = malloc(n), *bytes = malloc(n);
    REQUIRE_OK(gn_network_serialize(net, 0, orig, n, &n));
    const float bads[3] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        memcpy(bytes, orig, n);
        CHECK(poison(bytes, n, w[5], bads[k]));
        gn_network *out = NULL;
        CHECK_STATUS(gn_network_deserialize(bytes, n, &out), GN_ERR_CORRUPT, "NaN or Inf");
        CHECK(out == NULL);
        CHECK(write_file(path, bytes, n) == 0);
        CHECK_STATUS(gn_network_load(path, &out), GN_ERR_CORRUPT, "NaN or Inf");
        CHECK(out == NULL);
        /* the same rule as set_weights */
        float nanw[64];
        memcpy(nanw, w, sizeof nanw);
        nanw[5] = bads[k];
        CHECK_STATUS(gn_network_set_weights(net, GN_PART_VALUE, 0, nanw, 6 * 4), GN_ERR_NOT_FINITE, "NaN or Inf");
    }
    /* the unpoisoned file still loads */
    CHECK(write_file(path, orig, n) == 0);
    gn_network *out = NULL;
    CHECK_STATUS(gn_network_load(path, &out), GN_OK, NULL);
    gn_network_free(out);

    /* conv networks */
    gn_conv_network *made = make_conv(3);
    gn_conv_network *conv = made, *cout = NULL;
    if (conv) {
        float t[64];
        CHECK_STATUS(gn_conv_network_get_tensor(conv, 0, t, 64), GN_OK, NULL);
        size_t m = 0;
        gn_conv_network_serialize(conv, 0, NULL, 0, &m);
        unsigned char *cb = malloc(m);
        CHECK_STATUS(gn_conv_network_serialize(conv, 0, cb, m, &m), GN_OK, NULL);
        CHECK(poison(cb, m, t[2], NAN));
        CHECK_STATUS(gn_conv_network_deserialize(cb, m, &cout), GN_ERR_CORRUPT, "NaN or Inf");
        CHECK(write_file(path, cb, m) == 0);
        CHECK_STATUS(gn_conv_network_load(path, &cout), GN_ERR_CORRUPT, "NaN or Inf");
        CHECK(cout == NULL);
        free(cb);
        gn_conv_network_free(conv);
    }
    free(orig);
    free(bytes);
    gn_network_free(net);
    remove_dir(dir);
}

/* ---- item 2: gn_corrupt_labels at a size whose workspace cannot be allocated ----------- */

static void test_corrupt_labels_out_of_memory(void) {
    alarm(120);
    /* 2^33 labels (32 GiB), reserved but never touched; the address space is capped 8 GiB
     * above what is mapped now plus the labels, so that the 64 GiB index workspace cannot be
     * had whatever the overcommit policy. (Under ASan, run with allocator_may_return_null=1.) */
    int64_t n = (int64_t)1 << 33;
    size_t bytes = (size_t)n * sizeof(int32_t);
    unsigned long pages = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (statm) {
        if (fscanf(statm, "%lu", &pages) != 1) pages = 0;
        fclose(statm);
    }
    size_t cap = (size_t)pages * (size_t)sysconf(_SC_PAGESIZE) + bytes + ((size_t)8 << 30);
    struct rlimit lim = {cap, cap};
    CHECK(setrlimit(RLIMIT_AS, &lim) == 0);
    int32_t *labels = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (labels == MAP_FAILED) {
        CHECKF(0, "mmap of %zu bytes failed: %s", bytes, strerror(errno));
        return;
    }
    int64_t changed = -1;
    CHECK_STATUS(gn_corrupt_labels(labels, n, 10, 1.0, 5, &changed), GN_ERR_OUT_OF_MEMORY, "n = 8589934592");
    CHECK(changed == -1);
    munmap(labels, bytes);
    /* small sizes still work under the cap */
    int32_t small[100] = {0};
    CHECK_STATUS(gn_corrupt_labels(small, 100, 10, 0.5, 5, &changed), GN_OK, NULL);
    CHECK(changed >= 0 && changed <= 50);
    alarm(0);
}

int main(void) {
    T_SECTION(test_fifo_and_devices);
    T_SECTION(test_idx_reads_are_bounded);
    T_SECTION(test_planted_symlink_is_not_followed);
    T_SECTION(test_concurrent_saves_and_reader);
    T_SECTION(test_sigkill_mid_save);
    T_SECTION(test_non_utf8_paths);
    T_SECTION(test_non_finite_weights_rejected_at_load);
    T_SECTION(test_corrupt_labels_out_of_memory);
    return T_FINISH("test_files");
}
