# %% [markdown]
# # NPK-SVM: a support vector machine on the neural path kernel of a trained net's gates
#
# The gates of a trained ReLU network hold most of what it learnt (papers 001/002). One way to
# see it: freeze the gates, forget the weights, and hand the kernel the gates define,
# H = Sigma * prod_l B_l (normalised NPK), to an SVM. With the gates of the trained net this
# SVM comes close to the net itself and beats the same SVM on the gates of an untrained net.
#
# Everything goes through scikit-learn: the nets are `gatednet.sklearn.GatedNetClassifier`s,
# the kernel is `gatednet.sklearn.PathKernel` in a Pipeline before `SVC(kernel="precomputed")`,
# and the SVM's C is picked by GridSearchCV. Runs as a script (`--help`) or cell by cell.

# %%
import argparse
import os
import sys
import time

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

import gatednet as gn
from gatednet.sklearn import GatedNetClassifier, PathKernel

parser = argparse.ArgumentParser(description="SVM on the NPK of a trained net's gates vs the net")
parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
parser.add_argument("--train", type=int, default=2000, help="training examples")
parser.add_argument("--test", type=int, default=1000, help="test examples")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--width", type=int, default=128)
parser.add_argument("--depth", type=int, default=3, help="hidden layers")
args = parser.parse_args([] if "ipykernel" in sys.modules else None)
started = time.time()

# %% Fashion-MNIST subsets through the library's IDX reader.
NAMES = np.array(["T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
                  "bag", "boot"])


def load(prefix, n):
    x = np.asarray(gn.load_idx(os.path.join(args.data, f"{prefix}-images-idx3-ubyte.gz"), scale=1 / 255))
    y = np.asarray(gn.load_idx(os.path.join(args.data, f"{prefix}-labels-idx1-ubyte.gz")))
    return x.reshape(len(x), -1)[:n], NAMES[y[:n]]          # labels as names: any label type works


x_train, y_train = load("train", args.train)
x_test, y_test = load("t10k", args.test)
print(f"train {x_train.shape}, test {x_test.shape}")
widths = [args.width] * args.depth

# %% 1. The nets: a ReLU net, and a DGN with its gates frozen and a fresh value net (FLNPF).
relu = GatedNetClassifier(widths, "relu", epochs=args.epochs, lr=1e-3, random_state=1).fit(x_train, y_train)
flnpf = GatedNetClassifier(widths, "fixed_learnt", gate_source=relu, epochs=args.epochs, lr=1e-3,
                           random_state=2).fit(x_train, y_train)
results = {"relu_net": relu.score(x_test, y_test), "fixed_learnt_net": flnpf.score(x_test, y_test)}

# %% 2. SVMs on the normalised NPK. FrozenEstimator keeps the trained net fitted through the
# clones GridSearchCV makes; an unfrozen estimator would be refitted on every fold.
def npk_svm(gates):
    pipeline = Pipeline([("npk", PathKernel(gates, kind="npk", normalized=True)),
                         ("svm", SVC(kernel="precomputed"))])
    search = GridSearchCV(pipeline, {"svm__C": [0.1, 1.0, 10.0]}, cv=3).fit(x_train, y_train)
    return search.score(x_test, y_test), search.best_params_["svm__C"]


results["npk_svm_learnt"], c_learnt = npk_svm(FrozenEstimator(relu))
untrained = gn.Network(784, widths, 10, regime="fixed_random_ii", seed=3)   # gates at initialisation
results["npk_svm_random"], c_random = npk_svm(untrained)
print(f"SVM C chosen by 3-fold CV: learnt gates {c_learnt}, random gates {c_random}")

for name, accuracy in results.items():
    print(f"RESULT {name:18s} test accuracy {accuracy:.4f}")
print(f"done in {time.time() - started:.1f}s")
