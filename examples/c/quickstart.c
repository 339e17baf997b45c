/* quickstart.c — train a ReLU net on Fashion-MNIST, freeze its gates into a deep gated network
 * (the "fixed learnt" regime), train that, and look at its neural path kernel.
 *   gcc -std=c11 -I include examples/c/quickstart.c -L .build/release -lgatednet \
 *       -Wl,-rpath,.build/release -o quickstart && ./quickstart */
#include <stdio.h>
#include <stdlib.h>
#include "gatednet.h"

#define DIR "/usr/share/datasets/fashion-mnist/"
#define TRY(call)                                                                              \
    do {                                                                                       \
        gn_status s_ = (call);                                                                 \
        if (s_ != GN_OK) {                                                                     \
            fprintf(stderr, "%s failed: %s\n", #call, gn_last_error());                        \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

enum { D = 28 * 28, CLASSES = 10, N_TRAIN = 10000, N_TEST = 2000 };

/* Reads a Fashion-MNIST split (n images of 28 x 28 bytes, n labels) and returns its first
 * `keep` images as floats in [0, 1]; *y gets the labels. */
static float *load(const char *images, const char *labels, int64_t keep, int32_t **y) {
    int64_t n, ndim;
    TRY(gn_idx_dims(labels, &n, 1, &ndim)); /* the label file is 1-D: its only size is n */
    float *x = malloc(sizeof(float) * n * D);
    *y = malloc(sizeof(int32_t) * n);
    if (!x || !*y || n < keep) exit(1);
    TRY(gn_idx_read_f32(images, 1.0f / 255, x, n * D));
    TRY(gn_idx_read_i32(labels, *y, n));
    return realloc(x, sizeof(float) * keep * D);
}

int main(void) {
    int32_t *y_train, *y_test;
    float *x_train = load(DIR "train-images-idx3-ubyte.gz", DIR "train-labels-idx1-ubyte.gz", N_TRAIN, &y_train);
    float *x_test = load(DIR "t10k-images-idx3-ubyte.gz", DIR "t10k-labels-idx1-ubyte.gz", N_TEST, &y_test);
    printf("gatednet %s\n", gn_version());

    /* 1. A plain ReLU network 784-128-128-10, trained for 2 epochs with Adam. */
    int64_t widths[2] = {128, 128};
    gn_network_spec spec;
    gn_network *relu, *dgn;
    TRY(gn_network_spec_init(&spec, GN_REGIME_RELU, D, 2, widths, CLASSES));
    spec.seed = 1;
    TRY(gn_network_create(&spec, &relu));
    gn_train_options opts;
    TRY(gn_train_options_init(&opts));
    opts.learning_rate = 1e-3f;
    opts.epochs = 2;
    double acc;
    TRY(gn_train(relu, x_train, y_train, N_TRAIN, NULL, NULL, 0, &opts, NULL, 0, NULL));
    TRY(gn_evaluate(relu, x_test, y_test, N_TEST, GN_LOSS_CROSS_ENTROPY, NULL, &acc));
    printf("ReLU net:                test accuracy %.3f\n", acc);

    /* 2. A DGN whose gates are the ReLU net's (copied and frozen); only its value net learns. */
    TRY(gn_network_spec_init(&spec, GN_REGIME_FIXED_LEARNT, D, 2, widths, CLASSES));
    spec.gate_source = relu;
    spec.seed = 2;
    TRY(gn_network_create(&spec, &dgn));
    TRY(gn_train(dgn, x_train, y_train, N_TRAIN, NULL, NULL, 0, &opts, NULL, 0, NULL));
    TRY(gn_evaluate(dgn, x_test, y_test, N_TEST, GN_LOSS_CROSS_ENTROPY, NULL, &acc));
    printf("DGN with learnt gates:   test accuracy %.3f\n", acc);

    /* 3. Normalised neural path kernel Sigma * prod_l (G_l G_l^T / width_l) of 100 test images. */
    static float k[100 * 100];
    TRY(gn_kernel(dgn, GN_KERNEL_NPK_NORMALIZED, 0, x_test, 100, x_test, 100, k, 100, 100 * 100));
    printf("normalised NPK, top-left 3x3 corner:\n");
    for (int i = 0; i < 3; i++) printf("  %8.3f %8.3f %8.3f\n", k[i * 100], k[i * 100 + 1], k[i * 100 + 2]);

    gn_network_free(dgn);
    gn_network_free(relu);
    free(x_train), free(x_test), free(y_train), free(y_test);
    return 0;
}
