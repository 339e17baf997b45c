"""scikit-learn and plots: a gated net in a Pipeline, cross-validated, then its gate overlap by class."""
import sys

import numpy as np
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import gatednet as gn
import gatednet.plot as gplot
from gatednet.sklearn import GatedNetClassifier

data = "/usr/share/datasets/fashion-mnist/"
x = np.asarray(gn.load_idx(data + "t10k-images-idx3-ubyte.gz", scale=1 / 255)).reshape(-1, 784)[:3000]
y = np.asarray(gn.load_idx(data + "t10k-labels-idx1-ubyte.gz"))[:3000]

model = make_pipeline(StandardScaler(), GatedNetClassifier([128, 128], "relu", epochs=5, random_state=0))
print("3-fold accuracy:", cross_val_score(model, x, y, cv=3).round(3))

model.fit(x[:2500], y[:2500])
net = model[-1].network_                      # the trained gatednet.Network
xs = model[0].transform(x[2500:2650])         # held-out rows, scaled as the net saw them
fig = gplot.kernel_heatmap(net.overlap(xs), y[2500:2650], normalize="cosine",
                           title="gate overlap of the trained net (cosine)")
fig.savefig(sys.argv[1] if len(sys.argv) > 1 else "overlap_heatmap.png", dpi=60)
