"""Quickstart: a ReLU network, its gates reused by a fixed-learnt DGN, and their NPK."""
import numpy as np
import gatednet as gn

data = "/usr/share/datasets/fashion-mnist/"
x = np.asarray(gn.load_idx(data + "train-images-idx3-ubyte.gz", scale=1 / 255)).reshape(-1, 784)[:10000]
y = np.asarray(gn.load_idx(data + "train-labels-idx1-ubyte.gz")).astype(np.int32)[:10000]
xt = np.asarray(gn.load_idx(data + "t10k-images-idx3-ubyte.gz", scale=1 / 255)).reshape(-1, 784)[:2000]
yt = np.asarray(gn.load_idx(data + "t10k-labels-idx1-ubyte.gz")).astype(np.int32)[:2000]

relu = gn.Network(784, [128, 128, 128], 10, regime="relu", seed=1)
history = relu.fit(x, y, epochs=2, validation_data=(xt, yt),
                   callback=lambda m: print(f"relu epoch {m['epoch']}: test acc {m['test_accuracy']:.3f}"))

# Gates copied from the trained ReLU net and frozen (widths and bias inherited from it); a fresh
# value network learns on them. progress=True draws a tqdm bar (text lines without tqdm).
dgn = gn.Network(784, None, 10, regime="fixed_learnt", gate_source=relu, seed=2)
dgn.fit(x, y, epochs=2, progress=True)
print(repr(dgn))
print(f"test accuracy: relu {relu.evaluate(xt, yt)['accuracy']:.3f}, "
      f"fixed_learnt {dgn.evaluate(xt, yt)['accuracy']:.3f}")

# The normalised neural path kernel of 200 test images: a Buffer that numpy (np.asarray or
# np.from_dlpack) and torch (torch.from_dlpack) view without copying.
k = dgn.npk(xt[:200], normalized="layer")
K = np.from_dlpack(k)
assert np.shares_memory(K, np.asarray(k)) and K.shape == (200, 200)
same = yt[:200, None] == yt[None, :200]
cos = K / np.sqrt(np.outer(np.diag(K), np.diag(K)))
print(f"NPK cosine: same class {cos[same].mean():.3f}, other classes {cos[~same].mean():.3f}")
