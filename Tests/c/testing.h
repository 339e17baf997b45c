/*
 * testing.h — a tiny assertion helper for the C tests of gatednet (header only).
 *
 * Every CHECK counts one assertion as passed or failed and never aborts, so one run reports
 * every failure. T_SECTION runs a function in a forked child: a crash (signal) in it counts
 * as one failed check and the remaining sections still run. T_FINISH prints the line
 *     RESULT <program> <passed> <failed>
 * that Tests/c/run.sh adds up, and returns the exit status (0 if nothing failed).
 */
#ifndef GN_TESTING_H
#define GN_TESTING_H

/* fork/pipe/waitpid under -std=c11: include this header before any system header. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gatednet.h"

static long t_passed = 0, t_failed = 0;
static const char *t_section = "main";

static inline void t_record(int ok, const char *file, int line, const char *what, const char *detail) {
    if (ok) {
        t_passed++;
        return;
    }
    t_failed++;
    fprintf(stderr, "FAIL [%s] %s:%d: %s%s%s\n", t_section, file, line, what, detail[0] ? " -- " : "",
            detail);
}

/* CHECK(cond): one assertion. CHECKF(cond, fmt, ...): with a printf-style explanation. */
#define CHECK(cond) t_record((cond) != 0, __FILE__, __LINE__, #cond, "")
#define CHECKF(cond, ...)                                                                      \
    do {                                                                                       \
        char t_msg_[512];                                                                      \
        snprintf(t_msg_, sizeof t_msg_, __VA_ARGS__);                                         \
        t_record((cond) != 0, __FILE__, __LINE__, #cond, t_msg_);                              \
    } while (0)

/* The status of `call` must be `expected`; on failure, `arg` (may be NULL) must occur in
 * gn_last_error(). Counts one check for the status and one for the message. */
#define CHECK_STATUS(call, expected, arg) t_check_status((call), (expected), (arg), #call, __FILE__, __LINE__)

static inline void t_check_status(gn_status got, gn_status expected, const char *arg, const char *what,
                           const char *file, int line) {
    char msg[768];
    const char *err = gn_last_error();
    snprintf(msg, sizeof msg, "expected %s, got %s (last error: \"%s\")", gn_status_name(expected),
             gn_status_name(got), err ? err : "(null)");
    t_record(got == expected, file, line, what, msg);
    if (expected != GN_OK) {
        int named = err != NULL && err[0] != '\0' && (arg == NULL || strstr(err, arg) != NULL);
        snprintf(msg, sizeof msg, "message should be non-empty and name \"%s\": \"%s\"", arg ? arg : "",
                 err ? err : "(null)");
        t_record(named, file, line, what, msg);
    }
}

/* Abort the current section (not the program) when a precondition of the rest fails. */
#define REQUIRE_OK(call)                                                                       \
    do {                                                                                       \
        gn_status t_s_ = (call);                                                               \
        t_check_status(t_s_, GN_OK, NULL, #call, __FILE__, __LINE__);                          \
        if (t_s_ != GN_OK) return;                                                             \
    } while (0)

/* Run fn() in a forked child so that a crash is reported and the other sections still run.
 * The child's counts come back through a pipe. Output is flushed around the fork. */
static inline void t_run_section(const char *name, void (*fn)(void)) {
    int fds[2];
    fflush(stdout);
    fflush(stderr);
    if (pipe(fds) != 0) {
        t_section = name;
        fn();
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        t_section = name;
        t_passed = t_failed = 0;
        fn();
        long counts[2] = {t_passed, t_failed};
        if (write(fds[1], counts, sizeof counts) != (ssize_t)sizeof counts) _exit(3);
        fflush(stdout);
        fflush(stderr);
        _exit(0);
    }
    close(fds[1]);
    long counts[2] = {0, 0};
    ssize_t got = pid > 0 ? read(fds[0], counts, sizeof counts) : -1;
    close(fds[0]);
    int status = 0;
    if (pid > 0) waitpid(pid, &status, 0);
    if (pid < 0 || got != (ssize_t)sizeof counts || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        t_failed++;
        if (pid > 0 && WIFSIGNALED(status))
            fprintf(stderr, "FAIL [%s]: crashed with signal %d (checks of this section lost)\n", name,
                    WTERMSIG(status));
        else
            fprintf(stderr, "FAIL [%s]: did not complete (status %d)\n", name, status);
        return;
    }
    t_passed += counts[0];
    t_failed += counts[1];
    printf("  %-40s %ld passed, %ld failed\n", name, counts[0], counts[1]);
}

#define T_SECTION(fn) t_run_section(#fn, fn)

static inline int t_finish(const char *program) {
    printf("RESULT %s %ld %ld\n", program, t_passed, t_failed);
    fflush(stdout);
    return t_failed == 0 ? 0 : 1;
}
#define T_FINISH(program) t_finish(program)

/* Test fixtures shared by the C tests. */

/* x[0 .. count): uniform in [-1, 1), from a 64-bit LCG started at `state`. */
static inline void t_fill_uniform(float *x, size_t count, uint64_t state) {
    for (size_t i = 0; i < count; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(state >> 11) / 9007199254740992.0 * 2 - 1);
    }
}

/* A fully connected network d -> w0 -> w1 -> k of `regime`, or NULL. */
static inline gn_network *t_fc_network(gn_regime regime, int64_t d, int64_t w0, int64_t w1, int64_t k, int bias,
                                       uint64_t seed) {
    int64_t widths[2] = {w0, w1};
    gn_network_spec s;
    gn_network *net = NULL;
    if (gn_network_spec_init(&s, regime, d, 2, widths, k) != GN_OK) return NULL;
    s.bias = bias;
    s.seed = seed;
    if (gn_network_create(&s, &net) != GN_OK) return NULL;
    return net;
}

/* A conv-network layer: kind, units, kernel side, stride 1, everything else 0. */
static inline gn_layer_spec t_layer(gn_layer_kind kind, int64_t units, int64_t kernel) {
    gn_layer_spec l;
    memset(&l, 0, sizeof l);
    l.kind = kind;
    l.units = units;
    l.kernel = kernel;
    l.stride = 1;
    return l;
}

/* Bitwise equality of float arrays (distinguishes -0/+0 and NaN payloads). */
static inline int t_bits_equal(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof *a) == 0; }

/* Largest |a - b| / (1 + |b|) over n floats. */
static inline double t_max_rel_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / (1.0 + fabs((double)b[i]));
        if (isnan(d)) return INFINITY;
        if (d > m) m = d;
    }
    return m;
}

#endif /* GN_TESTING_H */
