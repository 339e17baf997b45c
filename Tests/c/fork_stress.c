/*
 * fork_stress.c — fork()ed children that use both cores (issue 12, item 11).
 *
 *   fork_stress [RUNS]      (default 20)
 *
 * The parent creates a network (so the library is initialised) and then forks RUNS children
 * one after the other. Each child, on its first use of those code paths, trains a conv net
 * whose 3x3 convolutions take the Winograd path, trains an FC net and computes an NPK: work
 * the library splits in two parts. A child that does not finish within 30 s is killed by
 * SIGALRM and counts as hung. When a forked child ran one part on a new worker thread, about
 * 1 child in 100 hung against a debug build, in swift_once (a lazy global, or a generic
 * type's metadata, first initialised by both threads at once: the Swift runtime's lock holds
 * the thread id cached before the fork); now a forked child runs both parts itself.
 * Tests/c/run.sh runs it against the release library and, when present, the debug one.
 * Prints "RESULT fork_stress P F".
 */
#include "testing.h"

#include <signal.h>
#include <stdint.h>

enum { D = 8 * 8 * 8, N = 64, K = 2 };

static float x[N * D];
static int32_t y[N];

static int conv_child(void) {
    /* two 3x3 convs on 8 channels: the second one's input gradient takes the Winograd path
     * with the flipped filter (Winograd.flipped, a lazy global) */
    gn_layer_spec layers[4];
    memset(layers, 0, sizeof layers);
    for (int l = 0; l < 2; l++) {
        layers[l].kind = GN_LAYER_CONV;
        layers[l].units = 8;
        layers[l].kernel = 3;
        layers[l].stride = 1;
        layers[l].padding = GN_PAD_ZERO;
    }
    layers[2].kind = GN_LAYER_GLOBAL_AVG_POOL;
    layers[3].kind = GN_LAYER_DENSE;
    layers[3].units = K;
    gn_conv_network_spec s;
    gn_conv_network *net = NULL;
    if (gn_conv_network_spec_init(&s, GN_REGIME_DECOUPLED, 8, 8, 8, 4, layers) != GN_OK) return 1;
    if (gn_conv_network_create(&s, &net) != GN_OK) return 2;
    gn_train_options o;
    gn_train_options_init(&o);
    o.batch_size = 32;
    o.epochs = 1;
    if (gn_conv_network_train(net, x, y, N, NULL, NULL, 0, &o, NULL, 0, NULL) != GN_OK) return 3;
    gn_conv_network_free(net);
    return 0;
}

static int fc_child(void) {
    int64_t w[2] = {64, 64};
    gn_network_spec s;
    gn_network *net = NULL;
    if (gn_network_spec_init(&s, GN_REGIME_DECOUPLED, D, 2, w, K) != GN_OK) return 4;
    if (gn_network_create(&s, &net) != GN_OK) return 5;
    gn_train_options o;
    gn_train_options_init(&o);
    o.batch_size = 32;
    o.epochs = 1;
    if (gn_train(net, x, y, N, NULL, NULL, 0, &o, NULL, 0, NULL) != GN_OK) return 6;
    static float k[N * N];
    if (gn_kernel_compute(net, GN_KERNEL_NPK, x, N, NULL, 0, NULL, k, N, N * N) != GN_OK) return 7;
    gn_network_free(net);
    return 0;
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 20;
    for (int i = 0; i < N * D; i++) x[i] = (float)((i * 7919 % 201) - 100) / 100.0f;
    for (int i = 0; i < N; i++) y[i] = i % K;
    int64_t w[1] = {4};
    gn_network_spec s;
    gn_network *parent_net = NULL;
    CHECK_STATUS(gn_network_spec_init(&s, GN_REGIME_RELU, 4, 1, w, 2), GN_OK, NULL);
    CHECK_STATUS(gn_network_create(&s, &parent_net), GN_OK, NULL);
    int hung = 0;
    for (int r = 0; r < runs; r++) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(30);
            int rc = r % 2 == 0 ? conv_child() : fc_child();
            if (rc == 0) rc = r % 2 == 0 ? fc_child() : conv_child();
            _exit(rc);
        }
        int status = -1;
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) hung++;
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "run %d: child status %d%s", r, status,
               WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (hung: killed after 30 s)" : "");
    }
    printf("%d runs, %d hung\n", runs, hung);
    gn_network_free(parent_net);
    return T_FINISH("fork_stress");
}
