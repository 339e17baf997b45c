"""Where the time of the FC NPK goes: the whole kernel against its input Gram alone (the part
every form of the NPK must compute with sgemm) and its overlap alone (the popcount part), on the
harness's network (784-128x5-10, frozen random hard gates) and Fashion-MNIST rows.

    .venv/bin/python benchmarks/npk_parts.py [--n 10000] [--runs 5]

The input Gram X Xᵀ is a lower bound on any NPK computation: n (n + 1) / 2 · 2 · 784 flops at the
sgemm rate. The ratio of the whole kernel to it says how much is left above that bound; the
best possible ratio against a peer is the peer's time over this bound.
"""
import argparse
import os
import statistics
import time

import numpy as np

import gatednet as gn

IMAGES = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def timed(fn, runs):
    fn()  # warm-up
    t = []
    for _ in range(runs):
        s = time.perf_counter()
        fn()
        t.append(time.perf_counter() - s)
    return statistics.median(t), min(t), max(t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    x = np.asarray(gn.load_idx(IMAGES, scale=1 / 255)).reshape(-1, 784)[:a.n].astype(np.float32)
    net = gn.Network(784, [128] * 5, 10, "fixed_random_ii", seed=0)
    out = np.empty((a.n, a.n), dtype=np.float32)
    parts = {
        "npk (whole kernel)": lambda: net.npk(x, out=out),
        "input Gram X Xᵀ alone": lambda: net.input_gram(x, out=out),
        "overlap Π_l G_l G_lᵀ alone (popcount)": lambda: net.overlap(x, out=out),
    }
    res = {name: timed(fn, a.runs) for name, fn in parts.items()}
    pairs = a.n * (a.n + 1) / 2
    gram_flops = 2 * 784 * pairs
    print(f"n = {a.n}, {a.runs} runs each (median, min–max), load average {os.getloadavg()[0]:.2f}")
    for name, (med, lo, hi) in res.items():
        print(f"  {name:40s} {med:.4f} s ({lo:.4f}–{hi:.4f})")
    g = res["input Gram X Xᵀ alone"][0]
    print(f"  input Gram rate {gram_flops / g / 1e9:.1f} GFLOP/s (one triangle); "
          f"whole kernel / input Gram = {res['npk (whole kernel)'][0] / g:.2f}")


if __name__ == "__main__":
    main()
