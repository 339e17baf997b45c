"""gatednet.plot: matplotlib stays optional, and each figure shows the data it was given."""
import subprocess
import sys

import numpy as np
import pytest

import gatednet as gn
import gatednet.plot as gplot

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_import_needs_no_matplotlib_and_a_call_says_how_to_get_it():
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None  # makes `import matplotlib` raise ImportError\n"
        "import numpy as np, gatednet.plot as p\n"
        "try:\n"
        "    p.kernel_heatmap(np.eye(3), [0, 1, 1])\n"
        "except ImportError as e:\n"
        "    print('ImportError:', e)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "ImportError: gatednet.plot needs matplotlib" in run.stdout and "pip install matplotlib" in run.stdout
    # A plain import loads no matplotlib at all.
    run = subprocess.run([sys.executable, "-c", "import sys, gatednet.plot; print('matplotlib' in sys.modules)"],
                         capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "False", run.stderr


def test_class_order_is_stable_and_marks_boundaries():
    order, classes, bounds = gplot.class_order(np.array(["b", "a", "c", "a", "b", "a"]))
    assert order.tolist() == [1, 3, 5, 0, 4, 2]
    assert classes.tolist() == ["a", "b", "c"] and bounds.tolist() == [3, 5]


@pytest.fixture(scope="module")
def kernel_data(fashion):
    x, y = fashion
    xs, ys = x[:60], y[:60]
    net = gn.Network(784, [32, 32], 10, regime="fixed_random_ii", seed=3)
    return net.npk(xs, normalized=True), ys


def test_kernel_heatmap_sorts_rows_and_columns_by_class(kernel_data):
    k, y = kernel_data
    k = np.asarray(k, dtype=np.float64)
    assert np.any(np.diff(y) < 0)  # the unsorted order would be visible
    fig = gplot.kernel_heatmap(k, y, normalize="cosine", class_names={0: "T-shirt", 9: "boot"})
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # the heatmap and its colour bar
    shown = np.asarray(ax.images[0].get_array())
    order = np.argsort(y, kind="stable")
    d = np.sqrt(np.diag(k))
    np.testing.assert_allclose(shown, (k / np.outer(d, d))[np.ix_(order, order)], rtol=1e-12)
    np.testing.assert_allclose(np.diag(shown), 1.0, rtol=1e-6)
    n_classes = len(np.unique(y))
    # one horizontal and one vertical line per class boundary, at the first row of each class
    assert len(ax.lines) == 2 * (n_classes - 1)
    starts = sorted({line.get_ydata()[0] for line in ax.lines if line.get_ydata()[0] == line.get_ydata()[1]})
    sorted_y = y[order]
    assert [sorted_y[int(s + 0.5)] != sorted_y[int(s - 0.5)] for s in starts] == [True] * (n_classes - 1)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "T-shirt" and labels[-1] == "boot" and len(labels) == n_classes


def test_kernel_heatmap_takes_buffers_and_any_labels_and_checks_shapes(kernel_data):
    buffer, y = kernel_data
    assert isinstance(buffer, gn.Buffer)
    k = np.asarray(buffer)
    names = np.array(["odd", "even"])[y % 2]
    fig, ax = plt.subplots()
    assert gplot.kernel_heatmap(buffer, names, ax=ax, colorbar=False) is fig
    shown = np.asarray(ax.images[0].get_array())
    order = np.argsort(names, kind="stable")
    np.testing.assert_array_equal(shown, k[np.ix_(order, order)].astype(np.float64))
    assert len(ax.lines) == 2 and len(fig.axes) == 1
    with pytest.raises(ValueError, match="labels"):
        gplot.kernel_heatmap(k, y[:-1])
    with pytest.raises(ValueError, match="square"):
        gplot.kernel_heatmap(k[:, :5], y)


def test_eigenvalue_spectrum_is_the_sorted_spectrum_on_a_log_scale(kernel_data):
    k = np.asarray(kernel_data[0])
    random_k = np.asarray(gn.Network(784, [32, 32], 10, regime="fixed_random_ii", seed=4).npk(
        np.ascontiguousarray(np.eye(60, 784, dtype=np.float32) + 0.01), normalized=True))
    fig = gplot.eigenvalue_spectrum({"fashion": k, "near-orthogonal": random_k}, top=40)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.lines) == 2
    expected = np.sort(np.linalg.eigvalsh(k.astype(np.float64)))[::-1]
    expected = expected / expected.sum()
    line = ax.lines[0]
    keep = expected[:40] > 0
    np.testing.assert_allclose(line.get_ydata(), expected[:40][keep], rtol=1e-4, atol=1e-9)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 41)[keep])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["fashion", "near-orthogonal"]
    # Given eigenvalues (unsorted, raw): sorted, and not normalised with normalize=None.
    fig = gplot.eigenvalue_spectrum(np.array([1.0, 100.0, 10.0, 0.0]), normalize=None)
    line = fig.axes[0].lines[0]
    assert line.get_ydata().tolist() == [100.0, 10.0, 1.0] and line.get_xdata().tolist() == [1, 2, 3]
    assert fig.axes[0].get_legend() is None


def test_nu_over_training_plots_nu_measured_between_epochs(fashion):
    x, y = fashion
    mask = (y == 0) | (y == 6)        # T-shirt vs shirt: a hard pair
    xs, ys = x[mask][:300], y[mask][:300]
    xk, signs = xs[:120], np.where(ys[:120] == 0, 1.0, -1.0).astype(np.float32)
    net = gn.Network(784, [64, 64], 10, regime="relu", seed=5)
    nus, epochs = [], []
    for _ in range(4):
        nus.append(gn.kernel_nu(net.npk(xk, normalized="trace"), signs)[0])
        epochs.append(net.epochs_trained)
        net.fit(xs, ys, epochs=1, lr=1e-3)
    fig = gplot.nu_over_training({"relu": nus}, steps={"relu": epochs})
    ax = fig.axes[0]
    assert len(ax.lines) == 1 and ax.get_yscale() == "log"
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [0, 1, 2, 3])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), nus)
    assert "nu" in ax.get_ylabel()
    fig = gplot.nu_over_training([3.0, 2.0], log=False)
    assert fig.axes[0].get_yscale() == "linear" and fig.axes[0].lines[0].get_xdata().tolist() == [0, 1]
    with pytest.raises(ValueError, match="steps"):
        gplot.nu_over_training([3.0, 2.0], steps=[0, 1, 2])


def test_training_history_draws_every_metric_of_fit(small):
    x, y, xt, yt = small
    net = gn.Network(784, [32], 10, regime="relu", seed=6)
    hist = net.fit(x[:500], y[:500], epochs=3, lr=1e-3, validation_data=(xt, yt))
    fig = gplot.training_history(hist)
    loss_ax, acc_ax = fig.axes
    assert len(loss_ax.lines) == 2 and len(acc_ax.lines) == 2
    np.testing.assert_array_equal(acc_ax.lines[1].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(acc_ax.lines[1].get_ydata(), [m["test_accuracy"] for m in hist])
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), [m["train_loss"] for m in hist])
    assert acc_ax.lines[1].get_linestyle() == "--" and acc_ax.lines[0].get_linestyle() == "-"
    # Two runs into one given Axes: accuracies only; a run without validation has no test line.
    more = gn.Network(784, [32], 10, regime="fixed_random_ii", seed=7).fit(x[:500], y[:500], epochs=2, lr=1e-3)
    fig, ax = plt.subplots()
    assert gplot.training_history({"relu": hist, "random gates": more}, ax=ax) is fig
    assert [line.get_label() for line in ax.lines] == [
        "relu: train accuracy", "relu: test accuracy", "random gates: train accuracy"]
    with pytest.raises(TypeError, match="history"):
        gplot.training_history([1, 2])


def test_hyperplanes_draws_one_line_per_gating_neuron():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (400, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int32)       # XOR quadrants
    net = gn.Network(2, [6, 5], 2, regime="dlgn", bias=True, seed=8)
    net.fit(x, y, epochs=30, lr=1e-2)
    fig = gplot.hyperplanes(net, x, y, resolution=50)
    ax = fig.axes[0]
    assert len(ax.lines) == 6 + 5
    # Each line lies on its hyperplane <u, p> + c = 0.
    planes = [np.asarray(a, dtype=np.float64) for layer in (0, 1) for a in net.gate_hyperplanes(layer)]
    normals = np.concatenate([planes[0], planes[2]])
    offsets = np.concatenate([planes[1], planes[3]])
    for line, u, c in zip(ax.lines, normals, offsets):
        for point in (line.get_xy1(), line.get_xy2()):
            assert abs(np.dot(u, point) + c) < 1e-6 * (1 + np.abs(u).sum() + abs(c))
    # The shaded regions are the net's predictions on the grid.
    shown = np.asarray(ax.images[0].get_array())
    assert shown.shape == (50, 50)
    x0, x1, y0, y1 = ax.images[0].get_extent()
    grid = np.stack(np.meshgrid(np.linspace(x0, x1, 50), np.linspace(y0, y1, 50)), -1).reshape(-1, 2)
    np.testing.assert_array_equal(shown.ravel(), np.asarray(net.predict_classes(grid.astype(np.float32))))
    assert len(ax.collections) == 1 and len(ax.collections[0].get_offsets()) == 400
    # One layer, no regions.
    fig = gplot.hyperplanes(net, x, layers=1, regions=False)
    assert len(fig.axes[0].lines) == 5 and not fig.axes[0].images
    with pytest.raises(ValueError, match="input_size 2"):
        gplot.hyperplanes(gn.Network(3, [4], 2, regime="dlgn"), np.zeros((5, 2)))


# Input 6 x 6 x 6: the same shape in (channels, height, width) and (height, width, channels) order.
CUBE = (6, 6, 6)
CONV_LAYERS = [("conv", 4, 3, 1), ("conv", 3, 3, 2), ("gap",), ("dense", 10)]


def test_hidden_maps_puts_feature_row_over_value_row(rng):
    image = rng.standard_normal((1, 6, 6, 6)).astype(np.float32)
    net = gn.ConvNetwork(CONV_LAYERS, CUBE, regime="fixed_random_ii", seed=9)
    feature = [np.asarray(g) for g in net.gates(image)]
    value = [f * np.arange(1, f.shape[-1] + 1) for f in feature]     # any maps of the same shapes
    assert [f.shape for f in feature] == [(1, 6, 6, 4), (1, 3, 3, 3)]
    fig = gplot.hidden_maps(feature, value, image=image[0, :, :, 0], value_image=np.ones((6, 6)), k=2)
    assert len(fig.axes) == 2 * (1 + 2 + 2)
    axes = np.asarray(fig.axes).reshape(2, 5)
    np.testing.assert_array_equal(axes[0, 0].images[0].get_array(), image[0, :, :, 0])
    assert axes[1, 0].images[0].get_clim() == (0.0, 1.0)   # the all-ones input shows blank
    for r, maps in enumerate((feature, value)):
        for c, (layer, channel) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)], start=1):
            np.testing.assert_array_equal(axes[r, c].images[0].get_array(), maps[layer][0, :, :, channel])
    assert axes[0, 0].get_ylabel() == "feature net" and axes[1, 0].get_ylabel() == "value net"
    # k larger than a layer's channels shows them all; no input column without inputs.
    fig = gplot.hidden_maps(feature, value, k=10)
    assert len(fig.axes) == 2 * (4 + 3)
    with pytest.raises(ValueError, match="value"):
        gplot.hidden_maps(feature, value[:1])


@pytest.mark.skipif(not hasattr(gn.ConvNetwork, "activations"), reason="ConvNetwork.activations not in this build")
def test_network_hidden_maps_shows_the_feature_and_value_activations(rng):
    image = rng.uniform(0, 1, (6, 6, 6)).astype(np.float32)
    net = gn.ConvNetwork(CONV_LAYERS, CUBE, regime="fixed_random_ii", value_input="ones", seed=10)
    fig = gplot.network_hidden_maps(net, image, k=2)
    axes = np.asarray(fig.axes).reshape(2, 5)
    batch = image[None]
    for r, part in enumerate(("feature", "value")):
        maps = [np.asarray(m) for m in net.activations(batch, part=part)]
        for c, (layer, channel) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)], start=1):
            np.testing.assert_array_equal(axes[r, c].images[0].get_array(), maps[layer][0, :, :, channel])
    # The image's first channel in the feature row, ones (the value net's input) in the value row.
    np.testing.assert_array_equal(axes[0, 0].images[0].get_array(), image[:, :, 0])
    np.testing.assert_array_equal(axes[1, 0].images[0].get_array(), np.ones((6, 6)))
