# %% [markdown]
# # ReLU network vs. a DGN with fixed learnt gates (FLNPF)
#
# Papers 001/002: the gates of a trained ReLU network hold most of what it learnt. Copy the
# gates of a trained ReLU net into a deep gated network, freeze them, train only the value
# network from scratch, and it reaches the ReLU net's accuracy. We also look at the neural
# path kernel H = Sigma * Lambda of both gatings: learnt gates make H block-structured by class.
#
# Runs as a script (`python relu_vs_fixed_learnt.py --help`) or cell by cell (`# %%`) in a
# notebook. Plots need matplotlib (optional); without it they are skipped with a message.

# %%
import argparse
import os
import sys
import time

import numpy as np

import gatednet as gn

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
parser.add_argument("--train", type=int, default=10000, help="training examples")
parser.add_argument("--test", type=int, default=2000, help="test examples")
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--width", type=int, default=128)
parser.add_argument("--depth", type=int, default=3, help="hidden layers")
parser.add_argument("--kernel-size", type=int, default=300, help="examples in the NPK heatmap")
parser.add_argument("--out", default=".", help="directory for the PNG files")
args = parser.parse_args([] if "ipykernel" in sys.modules else None)

# %% Data: Fashion-MNIST through the library's IDX reader (gzip handled there).
def load(split):
    prefix = "train" if split == "train" else "t10k"
    x = np.asarray(gn.load_idx(os.path.join(args.data, f"{prefix}-images-idx3-ubyte.gz"), scale=1 / 255))
    y = np.asarray(gn.load_idx(os.path.join(args.data, f"{prefix}-labels-idx1-ubyte.gz")))
    return x.reshape(len(x), -1), y

x_train, y_train = load("train")
x_test, y_test = load("test")
x_train, y_train = x_train[:args.train], y_train[:args.train]
x_test, y_test = x_test[:args.test], y_test[:args.test]
print(f"train {x_train.shape}, test {x_test.shape}")

# %% A progress display through the per-epoch callback (tqdm if installed).
def progress(name, epochs):
    try:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, desc=name, file=sys.stdout)

        def callback(m):
            bar.update(1)
            bar.set_postfix(loss=f"{m['train_loss']:.3f}", test=f"{m['test_accuracy']:.3f}")
            if m["epoch_in_call"] == m["epochs_in_call"]:
                bar.close()
    except ImportError:
        def callback(m):
            print(f"  {name} epoch {m['epoch']:2d}: loss {m['train_loss']:.4f} "
                  f"train {m['train_accuracy']:.3f} test {m['test_accuracy']:.3f} ({m['seconds']:.2f}s)")
    return callback

# %% 1. A plain ReLU network.
widths = [args.width] * args.depth
relu = gn.Network(784, widths, 10, regime="relu", seed=1)
print(relu)
t = time.time()
relu_hist = relu.fit(x_train, y_train, epochs=args.epochs, lr=1e-3, validation_data=(x_test, y_test),
                     callback=progress("relu", args.epochs))
print(f"ReLU: test accuracy {relu_hist[-1]['test_accuracy']:.4f} ({time.time() - t:.1f}s)")

# %% 2. Fixed learnt gates: the DGN copies and freezes the ReLU net's gating weights,
# its value network starts from an independent random initialisation.
flnpf = gn.Network(784, widths, 10, regime="fixed_learnt", gate_source=relu, seed=2)
print(flnpf)
flnpf_hist = flnpf.fit(x_train, y_train, epochs=args.epochs, lr=1e-3, validation_data=(x_test, y_test),
                       callback=progress("fixed_learnt", args.epochs))

# %% 3. For reference: random frozen gates (FRNPF-II), same value-net training.
frnpf = gn.Network(784, widths, 10, regime="fixed_random_ii", seed=3)
frnpf_hist = frnpf.fit(x_train, y_train, epochs=args.epochs, lr=1e-3, validation_data=(x_test, y_test),
                       callback=progress("fixed_random", args.epochs))

results = {name: h[-1]["test_accuracy"] for name, h in
           (("relu", relu_hist), ("fixed_learnt", flnpf_hist), ("fixed_random_ii", frnpf_hist))}
for name, acc in results.items():
    print(f"RESULT {name:16s} test accuracy {acc:.4f}")

# %% 4. Neural path kernels of learnt and random gates on test examples sorted by class.
order = np.argsort(y_test[:args.kernel_size], kind="stable")
xk = np.ascontiguousarray(x_test[:args.kernel_size][order])
h_learnt = np.asarray(flnpf.npk(xk, normalized=True))  # a view of library memory, no copy
h_random = np.asarray(frnpf.npk(xk, normalized=True))


def block_contrast(h, labels):
    """Mean kernel within classes / mean across classes, on the cosine-normalised kernel."""
    d = np.sqrt(np.diag(h))
    c = h / np.outer(d, d)
    same = labels[:, None] == labels[None, :]
    return c[same].mean() / c[~same].mean()


yk = y_test[:args.kernel_size][order]
print(f"RESULT npk block contrast: learnt {block_contrast(h_learnt, yk):.3f}, "
      f"random {block_contrast(h_random, yk):.3f}")

# %% 5. Plots (matplotlib is optional).
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib is not installed: skipping the plots (pip install matplotlib)")
    sys.exit(0)

os.makedirs(args.out, exist_ok=True)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
for ax, h, title in ((axes[0], h_learnt, "learnt gates (FLNPF)"), (axes[1], h_random, "random gates (FRNPF)")):
    d = np.sqrt(np.diag(h))
    im = ax.imshow(h / np.outer(d, d), cmap="viridis")
    ax.set_title(f"normalised NPK, {title}")
    ax.set_xlabel("test example (sorted by class)")
    fig.colorbar(im, ax=ax, fraction=0.046)
fig.tight_layout()
heatmap = os.path.join(args.out, "npk_heatmap.png")
fig.savefig(heatmap, dpi=80)

fig, ax = plt.subplots(figsize=(6, 4))
for name, hist in (("ReLU", relu_hist), ("fixed learnt gates", flnpf_hist), ("fixed random gates", frnpf_hist)):
    ax.plot([m["epoch_in_call"] for m in hist], [m["test_accuracy"] for m in hist], marker="o", label=name)
ax.set_xlabel("epoch")
ax.set_ylabel("test accuracy")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
curves = os.path.join(args.out, "accuracy_curves.png")
fig.savefig(curves, dpi=80)
print(f"wrote {heatmap} and {curves}")
