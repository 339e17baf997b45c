"""Plots of gatednet networks, kernels and training runs.

matplotlib is optional: it is imported when a plot function is called, never by
``import gatednet.plot``; without it the call raises ImportError saying how to install it.

Every function draws into ``ax`` (a matplotlib Axes, or a sequence of Axes where noted) when
given, else into a new figure, and returns the matplotlib Figure. Matrices and vectors may be
numpy arrays or :class:`gatednet.Buffer` objects.

- :func:`kernel_heatmap`: a kernel (NPK, overlap, NTK, ...) with rows and columns sorted by class;
- :func:`eigenvalue_spectrum`: eigenvalues of one or more kernels, largest first, log scale;
- :func:`nu_over_training`: nu_t = y^T H_t^-1 y (trace-normalised H_t) against epoch or step;
- :func:`training_history`: the per-epoch metrics that ``fit`` returns;
- :func:`hyperplanes`: a DLGN's effective hyperplanes over 2-D data, optionally with its decision regions;
- :func:`hidden_maps`: first channels of each layer's hidden outputs, feature net row vs value net row
  (:func:`network_hidden_maps` takes them from a ConvNetwork and an image).
"""

from __future__ import annotations

import numpy as np

__all__ = ["kernel_heatmap", "eigenvalue_spectrum", "nu_over_training", "training_history",
           "hyperplanes", "hidden_maps", "network_hidden_maps", "class_order"]


def _pyplot():
    """matplotlib.pyplot, imported on first use."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("gatednet.plot needs matplotlib, which is not installed: "
                          "pip install matplotlib") from error
    return plt


def _figure(ax, **subplots):
    """(figure, axes): ax's figure if ax is given, else a new figure with plt.subplots(**subplots)."""
    if ax is not None:
        first = ax if not isinstance(ax, (list, tuple, np.ndarray)) else np.ravel(ax)[0]
        return first.figure, ax
    return _pyplot().subplots(**subplots)


def _labelled(data, what):
    """A single item or a {label: item} dict -> list of (label or None, item)."""
    if isinstance(data, dict):
        if not data:
            raise ValueError(f"{what}: empty dict")
        return list(data.items())
    return [(None, data)]


def class_order(labels):
    """(order, classes, boundaries) of a label vector of any type.

    ``order`` sorts the examples by class (stable: ties keep their original order), ``classes``
    are the distinct labels in sorted order, and ``boundaries[i]`` is the position in the sorted
    order where class i+1 starts (len(classes) - 1 entries)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels: expected a 1-D array, got shape {labels.shape}")
    classes, codes = np.unique(labels, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(classes))
    return order, classes, np.cumsum(counts)[:-1]


def kernel_heatmap(kernel, labels, *, normalize=None, ax=None, cmap="viridis", colorbar=True,
                   class_names=None, title=None):
    """Heatmap of a square kernel with rows and columns sorted by class.

    ``kernel``: n x n (e.g. ``net.npk(x, normalized=True)`` or ``net.overlap(x)``); ``labels``:
    the n class labels of its rows (any type; classes in sorted order). ``normalize``: None
    (the values as given) or "cosine" (K_ij / sqrt(K_ii K_jj), the cosine of the angle between
    path features).
    White lines mark class boundaries; tick labels name the classes (``class_names`` maps a label
    to a name, as a dict or a sequence indexed by class position). The image is
    ``ax.images[0]``; its data is the sorted (normalised) kernel."""
    k = np.asarray(kernel, dtype=np.float64)
    labels = np.asarray(labels)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"kernel: expected a square matrix, got shape {k.shape}")
    if labels.shape != (k.shape[0],):
        raise ValueError(f"labels: expected {k.shape[0]} labels (one per kernel row), got shape {labels.shape}")
    if normalize == "cosine":
        d = np.sqrt(np.clip(np.diag(k), 0, None))
        d[d == 0] = 1.0
        k = k / np.outer(d, d)
    elif normalize is not None:
        raise ValueError(f"normalize: expected None or 'cosine', got {normalize!r}")
    order, classes, boundaries = class_order(labels)
    k = k[np.ix_(order, order)]

    fig, ax = _figure(ax, figsize=(5.5, 4.8))
    image = ax.imshow(k, cmap=cmap, interpolation="nearest")
    for b in boundaries:
        ax.axhline(b - 0.5, color="white", linewidth=0.8)
        ax.axvline(b - 0.5, color="white", linewidth=0.8)
    edges = np.concatenate([[0], boundaries, [len(labels)]])
    centres = (edges[:-1] + edges[1:]) / 2 - 0.5
    if class_names is None:
        names = [str(c) for c in classes]
    elif isinstance(class_names, dict):
        names = [str(class_names.get(c, c)) for c in classes.tolist()]
    else:
        names = [str(class_names[i]) for i in range(len(classes))]
    ax.set_xticks(centres, names, rotation=90 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(centres, names)
    ax.set_xlabel("example (sorted by class)")
    ax.set_ylabel("example (sorted by class)")
    if title is not None:
        ax.set_title(title)
    if colorbar:
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return fig


def _eigenvalues(item):
    """Eigenvalues, largest first: of a square matrix (by the library, in double precision), or
    a 1-D vector given as eigenvalues already (sorted here)."""
    a = np.asarray(item)
    if a.ndim == 1:
        return np.sort(a.astype(np.float64))[::-1]
    if a.ndim == 2 and a.shape[0] == a.shape[1]:
        from . import kernel_eigenvalues
        return np.asarray(kernel_eigenvalues(np.ascontiguousarray(a, dtype=np.float32)))
    raise ValueError(f"kernel: expected a square matrix or a 1-D vector of eigenvalues, got shape {a.shape}")


def eigenvalue_spectrum(kernels, *, normalize="trace", ax=None, top=None, title=None):
    """Eigenvalues of one or more kernels, largest first, on a log scale.

    ``kernels``: a square matrix, a 1-D vector of eigenvalues, or a dict {label: either} (one
    line each, with a legend). ``normalize``: "trace" divides each spectrum by its sum (the
    eigenvalues of K / trace K), so kernels of different scale compare; None plots them as
    they are. ``top``: plot only the largest ``top`` eigenvalues. Eigenvalues <= 0 (rounding
    of a singular kernel) cannot be shown on a log scale and are left out. One Line2D per kernel
    in ``ax.lines``; its x data is the 1-based rank."""
    if normalize not in (None, "trace"):
        raise ValueError(f"normalize: expected 'trace' or None, got {normalize!r}")
    fig, ax = _figure(ax, figsize=(5, 3.8))
    series = _labelled(kernels, "kernels")
    for label, item in series:
        values = _eigenvalues(item)
        if normalize == "trace":
            values = values / values.sum()
        if top is not None:
            values = values[:top]
        rank = np.arange(1, len(values) + 1)
        keep = values > 0
        ax.plot(rank[keep], values[keep], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("rank")
    ax.set_ylabel("eigenvalue / trace" if normalize == "trace" else "eigenvalue")
    if len(series) > 1 or series[0][0] is not None:
        ax.legend()
    if title is not None:
        ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    return fig


def nu_over_training(nu, steps=None, *, ax=None, log=True, xlabel="epoch", title=None):
    """nu_t = y^T Ĥ_t^-1 y against training time (paper 001 sec. 6: nu falls as gates are learnt).

    ``nu``: a sequence of values, or a dict {label: sequence} (one line each). ``steps``: the x
    values (same length; a dict of them for a dict of nu), default 0, 1, 2, ... (epoch 0 =
    before training). Collect nu with ``gn.kernel_nu(net.npk(xs, normalized="trace"), ys)[0]``
    between calls of ``fit(..., epochs=1)`` (ys in {-1, +1}). ``log``: log-scale y axis."""
    fig, ax = _figure(ax, figsize=(5, 3.8))
    series = _labelled(nu, "nu")
    for label, values in series:
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"nu: expected a 1-D sequence, got shape {values.shape}")
        x = steps.get(label) if isinstance(steps, dict) else steps
        x = np.arange(len(values)) if x is None else np.asarray(x)
        if x.shape != values.shape:
            raise ValueError(f"steps: expected {len(values)} values (one per nu), got shape {x.shape}")
        ax.plot(x, values, marker="o", markersize=3, label=label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"$\nu = y^\top \hat H^{-1} y$")
    if len(series) > 1 or series[0][0] is not None:
        ax.legend()
    if title is not None:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


_LOSSES = ("train_loss", "test_loss")
_ACCURACIES = ("train_accuracy", "test_accuracy")


def training_history(history, *, ax=None, metrics=None, title=None):
    """Per-epoch metrics of ``fit`` (the list of dicts it returns) against the epoch.

    ``history``: that list, or a dict {label: list} to compare runs (same colour per run, solid
    train / dashed test lines). Without ``ax``: a figure with two panels, loss and accuracy.
    ``ax``: one Axes (then only ``metrics``, default the accuracies, are drawn) or two (loss,
    accuracy). ``metrics``: names of dict keys to plot; metrics that are None (no
    validation_data) are skipped. The x axis is the ``epoch`` key (over the network's life)."""
    runs = _labelled(history, "history")
    for label, run in runs:
        if not isinstance(run, (list, tuple)) or not all(isinstance(m, dict) for m in run):
            raise TypeError(f"history: expected the list of metric dicts fit returns, got {type(run).__name__}")
    if metrics is None:
        losses, others = _LOSSES, _ACCURACIES
    else:
        losses = [m for m in metrics if "loss" in m]
        others = [m for m in metrics if "loss" not in m]
    if ax is None:
        fig, axes = _pyplot().subplots(1, 2, figsize=(9, 3.6))
        panels = [(axes[0], losses), (axes[1], others)]
    elif isinstance(ax, (list, tuple, np.ndarray)):
        axes = list(np.ravel(ax))
        if len(axes) != 2:
            raise ValueError(f"ax: expected one Axes or two (loss, accuracy), got {len(axes)}")
        fig = axes[0].figure
        panels = [(axes[0], losses), (axes[1], others)]
    else:
        fig = ax.figure
        panels = [(ax, _ACCURACIES if metrics is None else list(metrics))]
    colours = _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, names in panels:
        for i, (label, run) in enumerate(runs):
            epochs = [m["epoch"] for m in run]
            for name in names:
                values = [m.get(name) for m in run]
                if not values or any(v is None for v in values):
                    continue
                text = name.replace("_", " ") if label is None else f"{label}: {name.replace('_', ' ')}"
                axis.plot(epochs, values, marker="o", markersize=3, color=colours[i % len(colours)],
                          linestyle="--" if name.startswith("test") else "-", label=text)
        kinds = {"loss" if "loss" in n else "accuracy" if "accuracy" in n else n for n in names}
        axis.set_xlabel("epoch")
        axis.set_ylabel(" / ".join(sorted(kinds)))
        if axis.lines:
            axis.legend(fontsize="small")
        axis.grid(alpha=0.3)
    if title is not None:
        fig.suptitle(title)
    return fig


def hyperplanes(net, x, y=None, *, layers=None, ax=None, regions=True, resolution=200, margin=0.1,
                title=None):
    """A DLGN's effective hyperplanes over 2-D data (paper 003; MATH.md section 6).

    ``net``: a Network with a linear gating net (regime "dlgn" / "dlgn_pwc", input_size 2);
    gate i of hidden layer l is on where <normals[i], x> + offsets[i] > 0, from
    ``net.gate_hyperplanes(l)``. ``x``: (n, 2) points drawn as a scatter, coloured by ``y``
    (labels, any type) if given. ``layers``: hidden layers whose hyperplanes to draw (default
    all), one colour per layer. ``regions``: shade the plane by the net's predicted class on a
    ``resolution`` x ``resolution`` grid (``ax.images[0]``). Each hyperplane is one line in
    ``ax.lines`` (a hyperplane with a zero normal has no line and is skipped)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x: expected 2-D points of shape (n, 2), got shape {x.shape}")
    if net.input_size != 2:
        raise ValueError(f"net: expected a network with input_size 2, got {net.input_size}")
    if layers is None:
        layers = range(net.n_hidden)
    elif isinstance(layers, int):
        layers = [layers]
    lo, hi = x.min(axis=0), x.max(axis=0)
    pad = margin * np.maximum(hi - lo, 1e-6)
    lo, hi = lo - pad, hi + pad

    plt = _pyplot()
    fig, ax = _figure(ax, figsize=(5, 5))
    if regions:
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
        grid = np.ascontiguousarray(np.stack([gx.ravel(), gy.ravel()], axis=1), dtype=np.float32)
        predicted = np.asarray(net.predict_classes(grid)).reshape(resolution, resolution)
        ax.imshow(predicted, origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]), cmap="Pastel1",
                  alpha=0.6, aspect="auto", interpolation="nearest", vmin=0, vmax=max(net.output_size - 1, 1))
    if y is None:
        ax.scatter(x[:, 0], x[:, 1], s=8, color="black")
    else:
        _, codes = np.unique(np.asarray(y), return_inverse=True)
        ax.scatter(x[:, 0], x[:, 1], s=8, c=codes, cmap="Set1", edgecolors="black", linewidths=0.3)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, layer in enumerate(layers):
        normals, offsets = (np.asarray(a, dtype=np.float64) for a in net.gate_hyperplanes(layer))
        first = True
        for u, c in zip(normals, offsets):
            norm2 = float(u @ u)
            if norm2 == 0.0:
                continue
            p0 = -c * u / norm2                      # the point of the line nearest the origin
            p1 = p0 + np.array([-u[1], u[0]])        # one step along the line
            ax.axline(p0, p1, color=colours[i % len(colours)], linewidth=0.8, alpha=0.8,
                      label=f"layer {layer}" if first else None)
            first = False
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if ax.lines:
        ax.legend(fontsize="small", loc="upper right")
    if title is not None:
        ax.set_title(title)
    return fig


def _maps(layer, what, index):
    """One layer's hidden output for one input as an (H, W, C) array."""
    a = np.asarray(layer, dtype=np.float64)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"{what}[{index}]: expected the maps of one input, got a batch of {a.shape[0]}")
        a = a[0]
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"{what}[{index}]: expected an (H, W, C) array, got shape {a.shape}")
    return a


def hidden_maps(feature, value, *, image=None, value_image=None, k=2, ax=None, cmap="gray", title=None):
    """Hidden maps of a conv DGN for one input: the feature net's row above the value net's
    ("Duality simplifies...", Figure 5).

    ``feature`` / ``value``: one array per gated layer, each that layer's outputs for one input
    as (H, W, C) NHWC (or (1, H, W, C), e.g. a one-row batch); the two lists have equal length.
    ``image`` / ``value_image``: the inputs of the two nets, (H, W) or (H, W, C) (RGB for C = 3,
    else channel 0 is shown), in the first column (the value input is all ones for
    value_input="ones"); a column is left out when both are None. Each row then shows the first
    ``k`` channels of every layer, each panel scaled to its own range. ``ax``: a 2 x columns
    array of Axes. The panels are ``ax[r][c].images[0]``; columns are [input], layer 0 channel
    0..k-1, layer 1 channel 0..."""
    if len(feature) != len(value):
        raise ValueError(f"value: expected {len(feature)} layers (as many as feature), got {len(value)}")
    if not len(feature):
        raise ValueError("feature: expected at least one layer")
    rows = [[_maps(m, name, i) for i, m in enumerate(maps)]
            for name, maps in (("feature", feature), ("value", value))]
    for i, (f, v) in enumerate(zip(*rows)):
        if f.shape[:2] != v.shape[:2]:
            raise ValueError(f"value[{i}]: shape {v.shape} differs from feature[{i}] {f.shape}")
    with_input = image is not None or value_image is not None
    channels = [min(k, f.shape[2]) for f in rows[0]]
    columns = int(with_input) + sum(channels)
    if ax is None:
        fig, axes = _pyplot().subplots(2, columns, figsize=(1.3 * columns, 2.9), squeeze=False)
    else:
        axes = np.asarray(ax, dtype=object)
        if axes.shape != (2, columns):
            raise ValueError(f"ax: expected a 2 x {columns} array of Axes, got shape {axes.shape}")
        fig = axes[0, 0].figure
    inputs = (image, value_image)
    for r, (name, maps) in enumerate(zip(("feature", "value"), rows)):
        c = 0
        if with_input:
            shown = inputs[r]
            panel = axes[r, 0]
            if shown is not None:
                shown = np.asarray(shown, dtype=np.float64)
                if shown.ndim == 3 and shown.shape[2] != 3:
                    shown = shown[:, :, 0]   # not RGB: its first channel
                if shown.ndim == 3:   # colour image: scale to [0, 1] for imshow
                    span = shown.max() - shown.min()
                    shown = (shown - shown.min()) / (span if span > 0 else 1.0)
                    panel.imshow(shown, interpolation="nearest")
                else:   # [0, 1] at least, so an all-ones value input shows blank (white)
                    panel.imshow(shown, cmap=cmap, interpolation="nearest",
                                 vmin=min(0.0, shown.min()), vmax=max(1.0, shown.max()))
            panel.set_title("input", fontsize="small")
            c = 1
        for layer, (m, n_shown) in enumerate(zip(maps, channels)):
            for channel in range(n_shown):
                panel = axes[r, c]
                panel.imshow(m[:, :, channel], cmap=cmap, interpolation="nearest")
                panel.set_title(f"L{layer} c{channel}", fontsize="small")
                c += 1
        axes[r, 0].set_ylabel(f"{name} net")
        for panel in axes[r]:
            panel.set_xticks([])
            panel.set_yticks([])
    if title is not None:
        fig.suptitle(title)
    return fig


def network_hidden_maps(net, image, *, kind="activations", k=2, ax=None, cmap="gray", title=None):
    """:func:`hidden_maps` of a ConvNetwork for one input image.

    ``image``: one input, (H, W, C) or (H, W) or (1, H, W, C) in the net's NHWC layout.
    ``kind``: "activations" (each gated layer's output: the feature net's ReLU outputs, the
    value net's gated outputs) or "preactivations", from ``net.activations`` /
    ``net.preactivations`` with ``part="feature"`` and ``part="value"``. The value row's input
    column shows what the value net is fed: the image, or ones for ``value_input="ones"``."""
    if kind not in ("activations", "preactivations"):
        raise ValueError(f"kind: expected 'activations' or 'preactivations', got {kind!r}")
    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.size != net.input_size:
        raise ValueError(f"image: expected one (H, W, C) input of {net.input_size} values, got shape "
                         f"{np.shape(image)}")
    batch = np.ascontiguousarray(x[None])
    hidden = getattr(net, kind)
    feature = [np.asarray(m) for m in hidden(batch, part="feature")]
    value = [np.asarray(m) for m in hidden(batch, part="value")]
    shown = x if x.shape[2] == 3 else x[:, :, 0]
    value_image = np.ones_like(shown) if net.info()["value_input"] == "ones" else shown
    return hidden_maps(feature, value, image=shown, value_image=value_image, k=k, ax=ax, cmap=cmap,
                       title=title)
