"""Conv path kernel (NPK) of a GCONV-shaped DGN: time, entries per second, and the cost model
of MATH.md §4 against the measured rate.

    .venv/bin/python benchmarks/conv_npk.py [--n 1000] [--size 14] [--channels 8,8,16,16]

The net: 4 conv 3x3 'same' layers with the given channels on size x size x 1 Fashion-MNIST
images (28x28 averaged 2x2 to 14x14 by default: the kernel costs P^2 per pair and layer, and
P = 784 makes n = 1000 take hours), GAP, dense 32 (gated), dense 10; regime fixed_random_ii.
Cost model per pair: input Gram 2 P^2 C_0, and per conv layer 2 P^2 C_l (the P x C x P gate
Gram) + P^2 |K| (the shift-sum) + P^2 (the Hadamard product); dense layers 2 w. The kernel is
symmetric, so n (n + 1) / 2 pairs are computed.
"""
import argparse
import time

import numpy as np

import gatednet as gn


def images(n, size):
    x = np.asarray(gn.load_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", scale=1 / 255))
    x = x.reshape(-1, 28, 28)[:n].astype(np.float32)
    f = 28 // size
    return x.reshape(n, size, f, size, f).mean(axis=(2, 4)).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=14, choices=[7, 14, 28])
    ap.add_argument("--channels", default="8,8,16,16")
    ap.add_argument("--dense", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    channels = [int(c) for c in a.channels.split(",")]
    layers = [("conv", c, 3) for c in channels] + [("gap",), ("dense", a.dense), ("dense", 10)]
    net = gn.ConvNetwork(layers, (a.size, a.size, 1), regime="fixed_random_ii", seed=0)
    x = images(a.n, a.size)
    p2 = float(a.size * a.size) ** 2
    per_pair = 2 * p2 * 1 + sum(2 * p2 * c + p2 * 9 + p2 for c in channels) + 2 * a.dense
    pairs = a.n * (a.n + 1) / 2
    times, cpu = [], []
    for _ in range(a.repeats):
        t, c = time.perf_counter(), time.process_time()
        k = np.asarray(net.npk(x))
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    best = min(times)
    assert np.all(np.isfinite(k)) and np.allclose(k, k.T)
    print(f"conv NPK, {a.size}x{a.size}x1, conv 3x3 {channels}, GAP, dense {a.dense}, n = {a.n}")
    print(f"  time {best:.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)}); CPU time of the process "
          f"{', '.join(f'{c:.2f}' for c in cpu)} s (both threads; below 2x the time when the cores are shared)")
    print(f"  entries/s {a.n * a.n / best:,.0f} (n^2 entries), pairs/s {pairs / best:,.0f} (n(n+1)/2 computed)")
    print(f"  cost model {per_pair / 1e6:.2f} Mflop per pair, {per_pair * pairs / 1e9:.1f} Gflop in all, "
          f"measured rate {per_pair * pairs / best / 1e9:.2f} Gflop/s, {per_pair * pairs / min(cpu) / 1e9:.2f} Gflop "
          f"per CPU second")


if __name__ == "__main__":
    main()
