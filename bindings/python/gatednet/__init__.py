"""gatednet: deep gated networks (DGNs) and neural path kernels (NPK) from Python.

A thin layer over the C extension ``gatednet._core``, itself a thin layer over the public C ABI
of ``libgatednet`` (``include/gatednet.h``). All numerics run in the library.

Quick start::

    import numpy as np, gatednet as gn
    relu = gn.Network(784, [128, 128], 10, regime="relu", seed=1)
    relu.fit(x, y, epochs=5, lr=1e-3, validation_data=(xt, yt))
    dgn = gn.Network(784, [128, 128], 10, regime="fixed_learnt", gate_source=relu, seed=2)
    dgn.fit(x, y, epochs=5)
    H = np.asarray(dgn.npk(xt[:200]))          # a view of library-owned memory

Convolutional and residual DGNs are :class:`ConvNetwork` objects, built from a layer list or a
named architecture (``ConvNetwork.named("gconv", (32, 32, 3), 10)``), with the same regimes,
``fit``, kernels and persistence; their inputs are NHWC images (``(n, H, W, C)`` or flat rows)
and ``input_shape`` is ``(height, width, channels)``.

One API for both classes
    :class:`Network` and :class:`ConvNetwork` share method names, argument order and options:
    ``kernel(xa, xb=None, kind="npk", *, layer, out, progress, ...)``,
    ``npk(xa, xb=None, *, normalized=False | "layer" | "trace", out)``, ``overlap``,
    ``input_gram``, ``gates(x, layer=None, *, out)``, ``preactivations`` / ``activations(x,
    part="feature" | "value", layer=None, *, out)`` (the hidden state of either part),
    ``weights`` / ``bias(part, layer, *, out)``, ``tensors()`` (every weight in one call),
    ``fit(..., progress=False, callback=None)``, ``evaluate``, ``predict(x, *, out)``. Buffers
    given as ``out=`` are keyword-only. ``layer`` arguments use Python indexing (``-1`` is the
    last); an index out of range raises :class:`LayerIndexError` (an IndexError and a
    ValueError). ConvNetwork weights are addressed by position in the layer list, which a
    residual projection does not shift.

DLPack
    :class:`Buffer` implements ``__dlpack__`` / ``__dlpack_device__`` (CPU): ``np.from_dlpack(k)``,
    ``torch.from_dlpack(k)`` and ``jax.dlpack`` take kernels and outputs without a copy; the
    consumer's array keeps the memory alive after the Buffer is gone.

Progress
    ``fit(..., progress=True)`` and kernel calls with ``progress=True`` show a tqdm bar
    (``tqdm.auto``: a widget in Jupyter), or plain text lines on stderr without tqdm. A callable
    ``progress`` / ``callback`` is still called as before.

Changes in 0.2 (notebooks written for 0.1)
    ``Network.kernel(kind, xa, xb)`` is now ``kernel(xa, xb, kind)`` (the old order warns);
    ``ConvNetwork(input_shape=...)`` is (height, width, channels), not (channels, height, width)
    (a tuple that reads as CHW raises ValueError saying so); ``out=`` is keyword-only (also
    ``gates``' ``out``, ``wired``, ``packed`` and ``npk``'s ``normalized``); ``active_paths(x, groups)`` is
    ``active_paths_by_group(x, groups)``; ``kernel_targets(labels, 1)`` is (n, 1);
    ``fit(lr=None)`` raises ValueError.

Inputs
    Any object with the buffer protocol (numpy arrays, memoryview, array.array). ``x`` arguments
    are float matrices of shape ``(n, input_size)``; more dimensions are accepted when the
    trailing ones multiply to ``input_size`` (e.g. ``(n, 28, 28)`` images). The rule:

    * float32, C-contiguous: used in place, never copied;
    * float32 with other strides, or float64 (any layout): copied once into a temporary
      float32 array for the duration of the call (float64 rounded to nearest float32);
    * any other dtype: ``TypeError``; objects without the buffer protocol (lists): ``TypeError``.

    Labels ``y`` are 1-D integer or bool buffers with one entry per row of ``x``: int32
    C-contiguous is used in place; other integer dtypes and bool are copied (values must fit in
    int32); the kernel helpers take labels the same way. ``fit`` and ``evaluate`` also take
    real-valued targets (regression): a float ``y`` of shape ``(n, output_size)``, or ``(n,)``
    when output_size is 1, converted like ``x``; they train and score with the squared loss. Wrong shapes
    raise ``ValueError`` naming the argument. NaN/Inf in inputs raise ``ArgumentError``
    (a ``ValueError``).

Outputs
    Matrices are returned as :class:`Buffer` objects: float32 ('f'), float64 ('d'), int32 ('i'),
    int64 ('q') or uint64 ('Q') in C order, exposing the buffer protocol over memory the
    extension owns. ``numpy.asarray(b)`` is a view (no copy) that stays valid after the network
    is closed or deleted; the memory is freed when the last view and the Buffer are gone. Methods taking
    ``out=`` write into a caller buffer of the exact shape and dtype instead (for kernels the
    rows may be strided, e.g. a column slice of a larger matrix) and return it.

Errors
    Library errors raise :class:`GatedNetError` (a ``RuntimeError``) or a subclass carrying the
    library's message and ``status``/``status_name``: :class:`ArgumentError` (also ``ValueError``),
    :class:`ClosedNetworkError` (``ValueError``), :class:`CorruptFileError` (``ValueError``),
    :class:`FileError` (``OSError``), :class:`UnsupportedError` (``NotImplementedError``),
    :class:`OutOfMemoryError` (``MemoryError``), :class:`CancelledError` (a kernel ``progress``
    callback returned False), :class:`BusyError` (a call on a network from inside one of its own
    callbacks). Errors the binding detects itself (wrong type, shape or dtype of a
    Python argument) are plain ``TypeError`` / ``ValueError`` naming the argument. Messages name
    Python arguments and values, never the C function. No error path crashes the interpreter; a
    failed call leaves the network as it was.

Kernel suite
    NTKs (:meth:`Network.ntk`), infinite-width
    limits, kernel blocks and tiles, kernel progress callbacks, :meth:`Network.active_paths`
    (and :meth:`Network.active_paths_by_group`),
    :meth:`Network.gate_hyperplanes`, and kernel algebra on any float32 matrix:
    :func:`kernel_eigenvalues`, :func:`kernel_nu`, :func:`kernel_ridge_fit`,
    :func:`kernel_ridge_predict`, :func:`kernel_targets`, :func:`kernel_classes`. Each returns
    one shape whatever its options (targets are always (n, classes or 1)).

Typing
    The package ships ``py.typed`` and a stub of the C extension (``_core.pyi``).

Threads
    The GIL is released while the library computes (training, prediction, gates, kernels,
    save/load), so other Python threads run meanwhile. A :class:`Network` may be shared between
    threads: each object has a lock, and a second thread calling into a network that is busy
    waits for it (the wait can be interrupted with Ctrl-C). Distinct networks run in parallel.
    :class:`Buffer` objects are plain memory: share them as you would numpy arrays. Input arrays
    must not be modified by another thread while a call reads them.

Ctrl-C
    ``fit`` checks for KeyboardInterrupt about every 0.1 s between minibatches: Ctrl-C stops
    training within a fraction of a second, raises KeyboardInterrupt, and leaves the network
    usable, as it was after the last completed epoch (the interrupted epoch is undone). Kernels
    check after every tile of at most 512 x 512 entries and stop with KeyboardInterrupt. Other calls (predict,
    gates, evaluate, save) are not interruptible: the interrupt is raised when they return.
"""

from __future__ import annotations

import os as _os
import warnings as _warnings

from . import _core
from ._core import (
    ArgumentError,
    Buffer,
    BusyError,
    CancelledError,
    ClosedNetworkError,
    CorruptFileError,
    FileError,
    GatedNetError,
    OutOfMemoryError,
    UnsupportedError,
)

__version__ = "0.2.0"
library_version = _core.library_version

__all__ = [
    "Network", "ConvNetwork", "Buffer", "load_idx", "idx_dims", "corrupt_labels", "REGIMES",
    "GatedNetError", "ArgumentError", "ClosedNetworkError", "CorruptFileError", "FileError",
    "UnsupportedError", "OutOfMemoryError", "CancelledError", "BusyError", "LayerIndexError",
    "library_version", "kernel_classes", "kernel_eigenvalues", "kernel_nu", "kernel_ridge_fit",
    "kernel_ridge_predict", "kernel_targets",
]


class LayerIndexError(ArgumentError, IndexError):
    """A ``layer`` argument outside the network's layers (Python indexing: -n ... n-1).

    Both an :class:`ArgumentError` (so a ValueError, with status GN_ERR_INVALID_ARGUMENT, as
    the library reports a bad layer) and an IndexError."""

    status = 1
    status_name = "GN_ERR_INVALID_ARGUMENT"


# Names of the C enumerations (gatednet.h), in value order.
REGIMES = ("custom", "relu", "decoupled", "fixed_learnt", "fixed_random_ii", "fixed_random_di",
           "dlgn", "dlgn_pwc")
_ACTIVATIONS = ("relu", "identity")
_GATES = ("hard", "soft")
_VALUE_INPUTS = ("x", "ones")
_INITS = ("gaussian", "bernoulli")
_PARTS = ("feature", "value")
_HIDDEN = ("preactivation", "activation")
_OPTIMIZERS = ("sgd", "adam")
_LOSSES = ("cross_entropy", "squared")
_KERNELS = ("input_gram", "base", "overlap", "npk", "npk_normalized", "npk_trace_normalized",
            "ntk_value", "ntk_feature", "ntk_cross", "ntk", "npk_limit", "ntk_limit")
_GATE_PATHS = ("auto", "float", "packed")
_ALIASES = {"linear": "identity", "fixed_learned": "fixed_learnt", "ce": "cross_entropy",
            "mse": "squared", "gate_overlap": "overlap"}
# npk(normalized=...) -> kernel kind (both classes name their kinds alike).
_NPK_KINDS = {False: "npk", True: "npk_normalized", "layer": "npk_normalized", "trace": "npk_trace_normalized"}


def _code(value, names, what):
    """Enum name (or its int value) -> int; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        key = _ALIASES.get(value.lower(), value.lower())
        if key in names:
            return names.index(key)
        raise ValueError(f"{what}: unknown value {value!r}, expected one of {', '.join(names)}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what}: expected a name ({', '.join(names)}), got {type(value).__name__}")
    if not 0 <= value < len(names):
        raise ValueError(f"{what}: {value} out of range 0..{len(names) - 1}")
    return value


def _index(value, count, what="layer", error=LayerIndexError):
    """A Python index (negative counts from the end) into `count` items -> 0 .. count-1."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{what}: expected an int, got {type(value).__name__}")
    i = value.__index__()
    if not -count <= i < count:
        raise error(f"{what}: got {i}, need {-count} ... {count - 1} ({count} {what}s)")
    return i + count if i < 0 else i


def _npk_kind(normalized):
    try:
        return _NPK_KINDS[normalized]
    except (KeyError, TypeError):
        raise ValueError(f"normalized: expected False, 'layer' (or True) or 'trace', got {normalized!r}") from None


def _progress_callback(progress, desc):
    """progress=True -> (FractionProgress, closer); a callable or None passes through."""
    if progress is True:
        from ._progress import FractionProgress
        bar = FractionProgress(desc)
        return bar, bar.close
    if progress is False:
        return None, None
    return progress, None


def _check_lr(lr):
    if lr is None:
        raise ValueError("lr: got None; pass a learning rate > 0 (the default is 3e-4)")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) and not hasattr(lr, "__float__"):
        raise TypeError(f"lr: expected a number, got {type(lr).__name__}")
    v = float(lr)
    if not v > 0 or v == float("inf"):
        raise ValueError(f"lr: got {lr!r}, need a finite number > 0")
    return v


class _Shared:
    """Methods Network and ConvNetwork share (each class documents its own fit)."""

    __slots__ = ()

    def __repr__(self):
        if self.closed:
            return f"<gatednet.{type(self).__name__} (closed)>"
        return f"<gatednet.{type(self).__name__}: {self.describe()}>"

    def _named_info(self):
        """_info() with the enum fields both classes have as names."""
        d = self._info()
        for key, names in (("regime", REGIMES), ("activation", _ACTIVATIONS), ("gate", _GATES),
                           ("value_input", _VALUE_INPUTS)):
            d[key] = names[d[key]]
        return d

    def freeze(self, part="feature"):
        """Freeze the weights of ``part``: training leaves them bit-identical."""
        self._set_frozen(_code(part, _PARTS, "part"), True)

    def unfreeze(self, part="feature"):
        """Unfreeze ``part`` (its optimizer state is reset)."""
        self._set_frozen(_code(part, _PARTS, "part"), False)

    def _fit(self, x, y, epochs, batch_size, lr, optimizer, loss, momentum, weight_decay, adam_betas,
             adam_epsilon, shuffle_seed, validation_data, callback, progress, **extra):
        lr = _check_lr(lr)
        xt = yt = None
        if validation_data is not None:
            try:
                xt, yt = validation_data
            except (TypeError, ValueError):
                raise ValueError("validation_data: expected a pair (x_test, y_test)") from None
        try:
            b1, b2 = (float(b) for b in adam_betas)
        except (TypeError, ValueError):
            raise ValueError(f"adam_betas: expected a pair (beta1, beta2), got {adam_betas!r}") from None
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"adam_betas: got {tuple(adam_betas)!r}, need 0 <= beta < 1 for both")
        bar = None
        if progress:
            from ._progress import EpochProgress
            bar = EpochProgress(epochs if isinstance(epochs, int) else 0, desc=f"fit {type(self).__name__}")
            user = callback

            def callback(metrics):
                bar.update(metrics)
                return None if user is None else user(metrics)
        try:
            return self._train(
                x, y, xt, yt, optimizer=_code(optimizer, _OPTIMIZERS, "optimizer"),
                loss=_code(loss, _LOSSES, "loss"), learning_rate=lr, momentum=momentum,
                weight_decay=weight_decay, adam_beta1=b1, adam_beta2=b2, adam_epsilon=adam_epsilon,
                batch_size=batch_size, epochs=epochs, shuffle_seed=shuffle_seed, callback=callback, **extra)
        finally:
            if bar is not None:
                bar.close()

    def evaluate(self, x, y, loss=None):
        """Mean loss and accuracy over (x, y): ``{"loss": float, "accuracy": float}``.

        Integer ``y``: class labels, ``loss`` "cross_entropy" (default) or "squared". Float
        ``y`` (n x output_size, or (n,) for one output): real-valued targets; the loss is the
        squared loss 0.5 ||out - y||^2 averaged over rows (the only one they take) and the
        accuracy is NaN."""
        mean_loss, accuracy = self._evaluate(x, y, _code(loss, _LOSSES, "loss"))
        return {"loss": mean_loss, "accuracy": accuracy}

    # ---- hidden state ---------------------------------------------------------------------------

    def _hidden(self, x, part, layer, kind, out):
        p = _code(part, _PARTS, "part")
        n = self._hidden_count()
        if layer is None:
            if out is not None:
                raise ValueError("out: only with a single layer")
            return [self._hidden_state(x, p, l, kind) for l in range(n)]
        return self._hidden_state(x, p, _index(layer, n), kind, out)

    def preactivations(self, x, part="feature", layer=None, *, out=None):
        """Pre-activations q_l of hidden ``layer`` of ``part`` ("feature" or "value") for x.

        Feature net: q_l = W_l z_{l-1} (+ b_l), whose sign (hard) or sigmoid (soft) is the gate;
        value net: q_l = W_l zv_{l-1} (+ b_l), before the gates multiply it. ``layer`` is an
        index over the hidden (gated) layers, negative from the end; ``None`` gives a list with
        every layer. Returns a float32 Buffer: (n, width) for a Network, (n, H, W, C) for a
        ConvNetwork. A ReLU (tied) network has one net: both parts agree."""
        return self._hidden(x, part, layer, 0, out)

    def activations(self, x, part="feature", layer=None, *, out=None):
        """Activations z_l of hidden ``layer`` of ``part``: relu(q_l) (or q_l, linear feature
        net) in the feature net, G'_l * q_l in the value net (G'_l the gates value layer l
        multiplies by). Conv nets: the layer's own output, before a residual skip is added.
        Same indexing and shapes as :meth:`preactivations`."""
        return self._hidden(x, part, layer, 1, out)

    def copy_feature_weights(self, source, freeze=True):
        """Copy the feature (gating) weights of ``source`` (e.g. a trained ReLU network of the same
        shape) into this network, and freeze them if ``freeze``. Shapes and biases must agree."""
        try:
            super().copy_feature_weights(source, freeze)
        except GatedNetError as e:
            text = str(e)
            if not text.startswith("src: "):
                raise
            err = type(e)("source: " + text[5:])
            err.status, err.status_name = e.status, e.status_name
            raise err from None

    # ---- copies and pickling ---------------------------------------------------------------------

    def __reduce__(self):
        return (_restore, (type(self), self.to_bytes(optimizer_state=True)))

    def __copy__(self):
        return self.clone()

    def __deepcopy__(self, memo):
        return self.clone()


class Network(_Shared, _core.Network):
    """A deep gated network (feature/gating net + value net), or a plain ReLU network.

    ``Network(input_size, hidden_widths, output_size, regime="relu", **spec)``

    ``regime`` picks a preset (MATH.md section 2): ``"relu"`` (a standard ReLU net, value weights
    tied to the feature weights, with its own head), ``"decoupled"`` (soft gates, both nets
    trained), ``"fixed_learnt"`` (gates copied from the trained network ``gate_source`` and
    frozen), ``"fixed_random_ii"`` / ``"fixed_random_di"`` (random frozen gates; value net
    independent / a copy), ``"dlgn"``, ``"dlgn_pwc"`` (linear gating net, soft gates; PWC feeds
    ones to the value net), or ``"custom"`` (every field as given).

    Keyword overrides of the preset (None keeps the preset's value):

    - ``activation``: ``"relu"`` or ``"identity"`` (linear feature net)
    - ``gate``: ``"hard"`` (1{q>0}) or ``"soft"`` (sigmoid(beta q)); ``beta`` > 0
    - ``value_input``: ``"x"`` or ``"ones"``
    - ``permutation``: value layer l is gated by feature layer ``permutation[l]``
    - ``bias``, ``feature_head``, ``feature_frozen`` (custom only): bools
    - ``init``: ``"gaussian"`` or ``"bernoulli"``; ``init_scale`` > 0 (default sqrt 2)
    - ``seed``: every random draw of the construction flows from it (default 0)
    - ``gate_source``: trained Network whose feature weights a ``fixed_learnt`` net copies. The
      new net inherits its shape settings unless told otherwise: ``bias`` (None: the source's)
      and ``hidden_widths`` (None: the source's); an explicit mismatch raises ValueError naming
      the argument.

    ``Network(**net.spec)`` rebuilds the same architecture (fresh weights).
    A Network is a context manager (``close()`` on exit), can be pickled and copied (through
    :meth:`to_bytes`, optimizer state included) and saved with :meth:`save` / :meth:`load`.
    """

    def __init__(self, input_size, hidden_widths, output_size, regime="relu", *, activation=None,
                 gate=None, beta=None, value_input=None, permutation=None, bias=None,
                 feature_head=None, feature_frozen=None, init=None, init_scale=None, seed=0,
                 gate_source=None):
        code = _code(regime, REGIMES, "regime")
        if gate_source is not None and code == REGIMES.index("fixed_learnt") and isinstance(gate_source, Network) \
                and not gate_source.closed:
            src = gate_source._info()
            if hidden_widths is None:
                hidden_widths = list(src["hidden_widths"])
            if bias is None:
                bias = src["bias"]
            elif bool(bias) != src["bias"]:
                raise ValueError(f"bias: got {bias!r}, but gate_source has bias={src['bias']}; a fixed_learnt "
                                 "net copies gate_source's feature layers (leave bias=None to inherit it)")
            widths = [hidden_widths] if isinstance(hidden_widths, int) else list(hidden_widths)
            if input_size != src["input_size"]:
                raise ValueError(f"input_size: got {input_size}, but gate_source has input_size={src['input_size']}")
            if tuple(widths) != tuple(src["hidden_widths"]):
                raise ValueError(f"hidden_widths: got {widths}, but gate_source has {list(src['hidden_widths'])} "
                                 "(pass None to inherit them)")
        if hidden_widths is None:
            raise ValueError("hidden_widths: None is only allowed with regime='fixed_learnt' and a gate_source")
        if isinstance(hidden_widths, int):
            hidden_widths = [hidden_widths]
        super().__init__(
            input_size, list(hidden_widths), output_size, code,
            activation=_code(activation, _ACTIVATIONS, "activation"),
            gate=_code(gate, _GATES, "gate"), beta=beta,
            value_input=_code(value_input, _VALUE_INPUTS, "value_input"),
            permutation=None if permutation is None else list(permutation),
            bias=bias, feature_head=feature_head, feature_frozen=feature_frozen,
            init=_code(init, _INITS, "init"), init_scale=init_scale, seed=seed,
            gate_source=gate_source)

    def _hidden_count(self):
        return len(self._info()["hidden_widths"])

    # ---- description -------------------------------------------------------------------------

    def info(self):
        """Architecture and state as a dict (enum fields as names)."""
        return self._named_info()

    @property
    def spec(self):
        """Keyword arguments that rebuild this architecture: ``Network(**net.spec)``.

        Weights are not included (the seed and init of the original are not recorded by the
        library); use :meth:`clone`, :meth:`to_bytes` or :meth:`save` to copy weights."""
        d = self.info()
        spec = {k: d[k] for k in ("input_size", "output_size", "regime", "activation", "gate",
                                  "beta", "value_input", "bias", "feature_head")}
        spec["hidden_widths"] = list(d["hidden_widths"])
        spec["permutation"] = list(d["permutation"])
        if d["regime"] == "custom":
            spec["feature_frozen"] = d["feature_frozen"]
        return spec

    input_size = property(lambda self: self._info()["input_size"], doc="Input dimension.")
    output_size = property(lambda self: self._info()["output_size"], doc="Number of outputs.")
    hidden_widths = property(lambda self: self._info()["hidden_widths"], doc="Hidden layer widths.")
    n_hidden = property(lambda self: len(self._info()["hidden_widths"]), doc="Number of hidden layers.")
    regime = property(lambda self: REGIMES[self._info()["regime"]], doc="Regime name.")
    parameter_count = property(lambda self: self._info()["parameter_count"], doc="Scalars in both nets.")
    epochs_trained = property(lambda self: self._info()["epochs_trained"], doc="Epochs over the net's life.")
    feature_frozen = property(lambda self: self._info()["feature_frozen"], doc="Feature weights frozen?")
    value_frozen = property(lambda self: self._info()["value_frozen"], doc="Value weights frozen?")
    permutation = property(lambda self: self._info()["permutation"], doc="Value layer -> gating layer.")

    # ---- parameters --------------------------------------------------------------------------

    def _weight_layer(self, layer):
        return _index(layer, self._hidden_count() + 1)

    def weights(self, part="value", layer=0, *, out=None):
        """Weight matrix (fan_out x fan_in) of ``layer`` of ``part`` ("feature" or "value").

        Layers 0..n_hidden-1 are hidden; layer n_hidden (or -1) is the output layer (the value
        net's, or the feature head). Returns a copy as a Buffer (or fills ``out``)."""
        return self._get_weights(_code(part, _PARTS, "part"), self._weight_layer(layer), out)

    def bias(self, part="value", layer=0, *, out=None):
        """Bias vector of a layer (UnsupportedError if the network has no biases)."""
        return self._get_weights(_code(part, _PARTS, "part"), self._weight_layer(layer), out, True)

    def set_weights(self, part, layer, w):
        """Replace a weight matrix (any float buffer with fan_out*fan_in elements, row-major)."""
        self._set_weights(_code(part, _PARTS, "part"), self._weight_layer(layer), w)

    def tensor_names(self):
        """Names of every parameter tensor, as :meth:`tensors` keys them: "feature.0.weight",
        "value.2.bias", ...; layer n_hidden is the output layer (the value net's, or the feature
        head). A ReLU (tied) network has feature tensors only."""
        d = self._info()
        h = len(d["hidden_widths"])
        names = []
        for part in ("feature", "value"):
            if part == "value" and d["tied"]:
                continue
            for layer in range(h + 1):
                if part == "feature" and layer == h and not (d["feature_head"] or d["tied"]):
                    continue
                names.append(f"{part}.{layer}.weight")
                if d["bias"]:
                    names.append(f"{part}.{layer}.bias")
        return names

    def tensors(self):
        """Every parameter tensor as {name: Buffer} (copies; names as :meth:`tensor_names`):
        weights (fan_out, fan_in), biases (fan_out,)."""
        result = {}
        for name in self.tensor_names():
            part, layer, kind = name.split(".")
            result[name] = self._get_weights(_PARTS.index(part), int(layer), None, kind == "bias")
        return result

    # ---- training and evaluation --------------------------------------------------------------

    def fit(self, x, y, epochs=1, *, batch_size=32, lr=3e-4, optimizer="adam", loss=None,
            momentum=0.9, weight_decay=0.0, adam_betas=(0.9, 0.999), adam_epsilon=1e-8,
            shuffle_seed=0, validation_data=None, train_feature_head=False, callback=None, progress=False):
        """Train for ``epochs`` epochs; returns one metrics dict per epoch run.

        Each dict has ``epoch`` (over the network's life), ``epoch_in_call``, ``epochs_in_call``,
        ``train_loss``, ``train_accuracy`` (over the epoch's minibatches, before each update),
        ``test_loss``, ``test_accuracy`` (on ``validation_data=(x_test, y_test)`` after the
        epoch; None without it) and ``seconds``.

        ``progress=True`` shows a bar over the epochs with the latest metrics (tqdm.auto, so a
        widget in Jupyter; without tqdm, one text line per epoch on stderr).
        ``callback(metrics)`` is called after every epoch with that dict. Returning False (or
        another falsy value except None) stops training after that epoch; an exception raised
        in it stops training and propagates out of ``fit`` with its traceback. The callback
        must not use this network (GatedNetError); the epochs that ran are kept in either case,
        and the network stays usable. Ctrl-C stops within about 0.1 s with KeyboardInterrupt;
        the interrupted epoch is undone, completed ones are kept.

        ``lr``: the learning rate, a number > 0 (None is an error, not the default).
        ``optimizer``: "adam" (``adam_betas``, ``adam_epsilon``) or "sgd" (``momentum``);
        ``loss``: "cross_entropy" or "squared"; the default is cross-entropy for integer labels
        ``y``. A float ``y`` (n x output_size, or (n,) for one output) holds real-valued targets:
        regression with the squared loss 0.5 ||out - y||^2 (the default for them, and the only
        loss they take; a float ``y_test`` goes with them), whose ``train_accuracy`` and
        ``test_accuracy`` are NaN. ``weight_decay``: L2 coefficient; epoch e of
        the network's life is shuffled from (``shuffle_seed``, e). ``train_feature_head``: train
        the feature net alone through its own head. Frozen parts are not updated. If the loss
        diverges, the network is restored to its state before the call and ArgumentError is
        raised.
        """
        return self._fit(x, y, epochs, batch_size, lr, optimizer, loss, momentum, weight_decay, adam_betas,
                         adam_epsilon, shuffle_seed, validation_data, callback, progress,
                         train_feature_head=train_feature_head)

    # ---- gates and kernels ----------------------------------------------------------------------

    def gates(self, x, layer=None, *, out=None, packed=False):
        """Gates of the feature net for x.

        ``layer`` an int (negative counts from the end): a Buffer of shape (n, width(layer))
        float32 (0/1 for hard gates, sigmoid values for soft). ``layer=None``: a list with every
        hidden layer (feature-net numbering, i.e. before the permutation). ``packed=True`` (hard
        gates only): uint64 words, shape (n, ceil(width/64)); gate j of row i is bit j%64 of word
        [i, j//64]."""
        n = self._hidden_count()
        if layer is None:
            if out is not None:
                raise ValueError("out: only with a single layer")
            return [self._gates(x, l, None, packed) for l in range(n)]
        return self._gates(x, _index(layer, n), out, packed)

    def packed_gates(self, x, *, out=None):
        """Hard gates of ALL hidden layers bit-packed, one row per row of x: a uint64 Buffer of
        shape (n, words_per_row) (numpy.asarray makes no copy), words_per_row = sum_l
        ceil(width_l / 64). Row i holds layer 0's ceil(width_0/64) words, then layer 1's, ...
        (feature-net numbering): gate j of layer l is bit j%64 of word [i, offset_l + j//64],
        offset_l = sum_{m<l} ceil(width_m/64); unused high bits are 0 (the words of
        ``gates(x, l, packed=True)`` side by side). Pass them to :meth:`kernel` as ``gates_a`` /
        ``gates_b`` to compute the gates of a batch once for many kernel blocks. Hard gates only
        (UnsupportedError for soft gates). ``out``: a writable C-contiguous uint64 array of that
        shape."""
        return self._packed_gates(x, out)

    def kernel(self, xa, xb=None, kind="npk", *, layer=0, out=None, output=None, rows=None, cols=None,
               upper_only=False, gate_path="auto", ntk_scaling=False, progress=None, out_transposed=None,
               gates_a=None, gates_b=None):
        """Kernel matrix (float32 Buffer) between batches ``xa`` and ``xb``.

        ``kind``, path kernels (gates are those the value net uses, after the permutation):
        "input_gram" (Sigma = Xa Xb^T of the value input), "base" (B_l = G_l G_l^T / width of
        hidden ``layer``), "overlap" (Lambda = prod_l G_l G_l^T), "npk" (H = Sigma * Lambda),
        "npk_normalized" (Sigma * prod_l B_l), "npk_trace_normalized" (H / trace H(xa, xa)).
        Tangent kernels (per ``output`` unit, or summed over outputs when None): "ntk_value"
        (K^v), "ntk_feature" (K^f, soft gates), "ntk_cross", "ntk" (over the weights training
        changes); ``ntk_scaling=True`` uses the NTK parametrisation. Infinite-width limits:
        "npk_limit", "ntk_limit".

        ``xb=None`` means xb = xa (symmetric: one triangle computed and mirrored; with
        ``upper_only=True`` the lower triangle is left untouched, zero in a new Buffer).
        ``rows`` / ``cols``: a block of the kernel, as ``slice(begin, end)`` or ``(begin, end)``
        over the rows of xa / xb (end None: through the last row); the result is that block.
        ``gate_path``: "auto", "float" or "packed" (bit-packed popcount, hard gates).
        ``out``: a writable float32 buffer of the result's shape whose rows may be strided.
        ``out_transposed``: a second such buffer of the transposed shape (C, R) that gets the
        result transposed (bit for bit ``out.T``) in the same pass, tile by tile while each tile
        is in cache; it may not overlap ``out`` nor be combined with ``upper_only``.
        ``gates_a`` / ``gates_b``: ``packed_gates(xa)`` / ``packed_gates(xb)`` computed beforehand
        (C-contiguous uint64, shape (len(xa), words) / (len(xb), words); all rows, which
        ``rows`` / ``cols`` index as they index xa / xb), used instead of computing the gates
        of those rows: the result is bit for bit the same. Either may be given alone. For the
        path kinds "base", "overlap", "npk" and "npk_normalized" of a hard-gate network with
        ``gate_path`` "auto" or "packed" only (else ArgumentError; soft gates:
        UnsupportedError); with ``xb=None`` ``gates_a`` serves both sides (``gates_b`` must be
        None or the same array; an ``xb`` that is xa's very memory is computed symmetric too, with
        whichever of the two is given). Read in place, never copied; a wrong dtype is a TypeError, a
        wrong shape or a non-contiguous array a ValueError, raised before the call.
        ``progress=True`` shows a bar (tqdm.auto; text lines without tqdm); a callable
        ``progress(fraction)`` is called after each tile (at most 512 x 512 entries) instead:
        returning False cancels (CancelledError), an exception in it propagates. Ctrl-C
        interrupts the computation at the next tile with KeyboardInterrupt.

        The argument order was ``kernel(kind, xa, xb)`` before version 0.2; that order still
        works (a string first) with a DeprecationWarning.
        """
        if isinstance(xa, str):
            _warnings.warn("Network.kernel(kind, xa, xb) is deprecated: use kernel(xa, xb, kind)",
                           DeprecationWarning, stacklevel=2)
            xa, xb, kind = xb, (None if isinstance(kind, str) else kind), xa
        code = _code(kind, _KERNELS, "kind")
        rb, rc = _block(rows, "rows")
        cb, cc = _block(cols, "cols")
        callback, close = _progress_callback(progress, f"kernel {_KERNELS[code]}")
        try:
            return self._kernel_compute(
                code, xa, xb, layer=_index(layer, self._hidden_count()), output=-1 if output is None else output,
                row_begin=rb, row_count=rc, col_begin=cb, col_count=cc, upper_only=upper_only,
                gate_path=_code(gate_path, _GATE_PATHS, "gate_path"), ntk_scaling=ntk_scaling, out=out,
                progress=callback, out_transposed=out_transposed, gates_a=gates_a, gates_b=gates_b)
        finally:
            if close is not None:
                close()

    def input_gram(self, xa, xb=None, *, out=None, **options):
        """Sigma = Xa Xb^T of the value input (d_in * 11^T for value input "ones")."""
        return self.kernel(xa, xb, "input_gram", out=out, **options)

    def base_kernel(self, xa, xb=None, layer=0, *, out=None, **options):
        """B_l = G_l(xa) G_l(xb)^T / width_l for hidden ``layer`` (negative from the end)."""
        return self.kernel(xa, xb, "base", layer=layer, out=out, **options)

    def overlap(self, xa, xb=None, *, out=None, **options):
        """Lambda = Hadamard product over hidden layers of G_l(xa) G_l(xb)^T (active-path overlap)."""
        return self.kernel(xa, xb, "overlap", out=out, **options)

    def npk(self, xa, xb=None, *, normalized=False, out=None, **options):
        """Neural path kernel H = Sigma * Lambda.

        ``normalized="layer"`` (or True): Sigma * prod_l B_l, each layer's gate overlap divided by
        its width; ``normalized="trace"``: H / trace H(xa, xa). Options as :meth:`kernel`."""
        return self.kernel(xa, xb, _npk_kind(normalized), out=out, **options)

    def ntk(self, xa, xb=None, part=None, output=None, ntk_scaling=False, *, out=None, **options):
        """Empirical neural tangent kernel (kernel suite).

        ``part``: None (the weights training changes: K^v + K^f), "value" (K^v), "feature"
        (K^f, soft gates) or "cross" (K^cross, the tied-weights extra term). ``output``: an
        output unit, or None for the sum over outputs."""
        kind = {None: "ntk", "value": "ntk_value", "feature": "ntk_feature", "cross": "ntk_cross"}.get(part)
        if kind is None:
            raise ValueError(f"part: expected None, 'value', 'feature' or 'cross', got {part!r}")
        return self.kernel(xa, xb, kind, output=output, ntk_scaling=ntk_scaling, out=out, **options)

    def npk_limit(self, xa, xb=None, *, out=None, **options):
        """Infinite-width normalised NPK of random hard gates for this architecture."""
        return self.kernel(xa, xb, "npk_limit", out=out, **options)

    def ntk_limit(self, xa, xb=None, output=None, *, out=None, **options):
        """Infinite-width NTK of a ReLU network of this shape (NTK parametrisation)."""
        return self.kernel(xa, xb, "ntk_limit", output=output, out=out, **options)

    def active_paths(self, x, groups=None, n_groups=None):
        """Active paths from one input node per row of x: prod_l sum_i G_l(x)_i, a float64
        Buffer of shape (n,). Per group (e.g. class) means: :meth:`active_paths_by_group`
        (passing ``groups`` here is deprecated: it changed the return type)."""
        if groups is None:
            return self._active_paths(x)
        _warnings.warn("active_paths(x, groups) is deprecated: use active_paths_by_group(x, groups)",
                       DeprecationWarning, stacklevel=2)
        return self.active_paths_by_group(x, groups, n_groups)

    def active_paths_by_group(self, x, groups, n_groups=None):
        """Mean active paths per group: ``(mean, counts)``, Buffers of shape (n_groups,):
        float64 means (NaN for an empty group) and int64 row counts. ``groups``: one int per
        row of x (any integer or bool dtype, e.g. class labels) in [0, n_groups); n_groups
        defaults to output_size."""
        return self._active_paths(x, groups, self.output_size if n_groups is None else n_groups)

    def gate_hyperplanes(self, layer):
        """Effective hyperplanes of a linear gating net (DLGN): gate i of ``layer`` is on iff
        <normals[i], x> + offsets[i] > 0. Returns (normals (width, input_size), offsets (width,))."""
        return self._gate_hyperplanes(_index(layer, self._hidden_count()))


def _block(spec, name):
    """slice / (begin, end) / None -> (begin, count) with count 0 meaning through the end."""
    if spec is None:
        return 0, 0
    if isinstance(spec, slice):
        if spec.step not in (None, 1):
            raise ValueError(f"{name}: step must be 1")
        begin, end = spec.start or 0, spec.stop
    elif isinstance(spec, range):
        if spec.step != 1:
            raise ValueError(f"{name}: step must be 1")
        begin, end = spec.start, spec.stop
    else:
        try:
            begin, end = spec
        except (TypeError, ValueError):
            raise TypeError(f"{name}: expected a slice or (begin, end), got {spec!r}") from None
    if end is None:
        return begin, 0
    if end <= begin:
        raise ValueError(f"{name}: empty block [{begin}, {end})")
    return begin, end - begin


def _restore(cls, data):
    return cls.from_bytes(data)


from ._core import (kernel_classes, kernel_eigenvalues, kernel_nu, kernel_ridge_fit,  # noqa: E402
                    kernel_ridge_predict, kernel_targets)


def idx_dims(path):
    """Dimensions of an IDX file (MNIST format, gzip or plain) as a tuple."""
    return _core.idx_dims(_os.fspath(path))


def load_idx(path, scale=None):
    """Read a whole IDX file (MNIST format, gzip-compressed or plain) into a Buffer.

    ``scale=None``: int32 values (labels). A number: float32 values times ``scale`` (e.g.
    ``1/255`` for images). The shape is the file's, e.g. (60000, 28, 28)."""
    return _core.idx_read(_os.fspath(path), scale)


def corrupt_labels(labels, classes, gamma, seed=0):
    """Replace round(gamma * n) labels at random positions by uniform draws from [0, classes),
    in place on a writable 1-D int32 buffer; returns how many actually changed."""
    return _core.corrupt_labels(labels, classes, gamma, seed)


# ---- conv and residual networks ---------------------------------------------------------------

_LAYER_KINDS = ("conv", "dense", "global_avg_pool", "global_max_pool", "flatten")
_LAYER_ALIASES = {"gap": "global_avg_pool", "avg_pool": "global_avg_pool", "gmp": "global_max_pool",
                  "max_pool": "global_max_pool"}
_PADDINGS = ("zero", "circular", "valid")
_WIRINGS = ("permuted", "tiled_rotated")
_ARCHITECTURES = ("gconv", "vconv", "dlgn_conv", "resnet_small", "vgg19", "davidnet")
_CONV_KERNELS = ("npk", "overlap", "input_gram", "npk_normalized", "npk_trace_normalized")
_LAYER_FIELDS = ("kind", "units", "kernel", "stride", "padding", "bias", "block")


def _layer_tuple(layer, index):
    """One layer description (tuple or dict, see ConvNetwork) -> the 7 ints of gn_layer_spec."""
    where = f"layers[{index}]"
    if isinstance(layer, dict):
        d = dict(layer)
    elif isinstance(layer, (tuple, list)) and layer and isinstance(layer[0], str):
        items = list(layer)
        extra = items.pop() if items and isinstance(items[-1], dict) else {}
        kind = _LAYER_KINDS[_code(_LAYER_ALIASES.get(items[0].lower(), items[0]), _LAYER_KINDS, f"{where}.kind")]
        names = {"conv": ("units", "kernel", "stride", "padding", "bias", "block"),
                 "dense": ("units", "bias", "block")}.get(kind, ())
        if len(items) - 1 > len(names):
            raise ValueError(f"{where}: {kind} takes at most {len(names)} values after the kind "
                             f"({', '.join(names) or 'none'}), got {len(items) - 1}")
        d = dict(zip(names, items[1:]), kind=kind)
        d.update(extra)
    else:
        raise TypeError(f"{where}: expected a tuple such as ('conv', 16, 3) or a dict, got {layer!r}")
    unknown = set(d) - set(_LAYER_FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    if "kind" not in d:
        raise ValueError(f"{where}: needs a 'kind'")
    kind = d["kind"]
    if isinstance(kind, str):
        kind = _LAYER_ALIASES.get(kind.lower(), kind.lower())
    code = _code(kind, _LAYER_KINDS, f"{where}.kind")
    is_conv, is_dense = code == 0, code == 1
    if (is_conv or is_dense) and "units" not in d:
        raise ValueError(f"{where}: {_LAYER_KINDS[code]} needs 'units'")
    if is_conv and "kernel" not in d:
        raise ValueError(f"{where}: conv needs 'kernel'")
    padding = _code(d.get("padding", "zero"), _PADDINGS, f"{where}.padding")
    ints = []
    for field in ("units", "kernel", "stride", "block"):
        v = d.get(field, {"units": 0, "kernel": 0, "stride": 1, "block": 0}[field])
        if isinstance(v, bool) or not isinstance(v, int) and not hasattr(v, "__index__"):
            raise TypeError(f"{where}.{field}: expected an int, got {type(v).__name__}")
        ints.append(int(v))
    units, kernel, stride, block = ints
    bias = d.get("bias")
    return (code, units, kernel, stride, padding, None if bias is None else (1 if bias else 0), block)


def _layer_dict(t):
    kind, units, kernel, stride, padding, bias, block = t
    d = {"kind": _LAYER_KINDS[kind]}
    if kind == 0:
        d.update(units=units, kernel=kernel, stride=stride, padding=_PADDINGS[padding])
    elif kind == 1:
        d.update(units=units)
    if kind in (0, 1):
        d.update(bias=bool(bias), block=block)
    return d


def _conv_overrides(activation, gate, beta, value_input, permutation, wiring, wiring_seed, feature_frozen,
                    init, init_scale, seed, gate_source):
    return dict(activation=_code(activation, _ACTIVATIONS, "activation"),
                gate=_code(gate, _GATES, "gate"), beta=beta,
                value_input=_code(value_input, _VALUE_INPUTS, "value_input"),
                permutation=None if permutation is None else list(permutation),
                wiring=_code(wiring, _WIRINGS, "wiring"), wiring_seed=wiring_seed,
                feature_frozen=feature_frozen, init=_code(init, _INITS, "init"), init_scale=init_scale,
                seed=seed, gate_source=gate_source)


def _shape_hwc(shape):
    """input_shape -> (channels, height, width) for the C spec. NHWC: (height, width, channels),
    or a dict {"height", "width", "channels"}. A tuple that reads as (channels, height, width)
    is refused: its first entry a usual channel count (<= 4) and its last a larger one."""
    if isinstance(shape, dict):
        try:
            h, w, c = shape["height"], shape["width"], shape["channels"]
        except KeyError as e:
            raise ValueError(f"input_shape: a dict needs 'height', 'width' and 'channels', missing {e}") from None
        unambiguous = True
    else:
        try:
            h, w, c = shape
        except (TypeError, ValueError):
            raise ValueError(f"input_shape: expected (height, width, channels), got {shape!r}") from None
        unambiguous = False
    for name, v in (("height", h), ("width", w), ("channels", c)):
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise TypeError(f"input_shape: {name} must be an int, got {v!r}")
    h, w, c = int(h), int(w), int(c)
    if not unambiguous and h <= 4 < c:
        raise ValueError(
            f"input_shape: {tuple(shape)!r} reads as (channels, height, width); input_shape is "
            f"(height, width, channels) since gatednet 0.2, as the NHWC arrays are: use ({w}, {c}, {h}) "
            f"if that is what you meant, or input_shape={{'height': {h}, 'width': {w}, 'channels': {c}}} "
            f"for a {h} x {w} image with {c} channels")
    return (c, h, w)


class ConvNetwork(_Shared, _core.ConvNetwork):
    """A convolutional / residual deep gated network (MATH.md sections 4-5), built from a layer list.

    ``ConvNetwork(layers, input_shape, regime="relu", **spec)``

    ``input_shape`` is ``(height, width, channels)``, the NHWC order of the data (before
    gatednet 0.2 it was (channels, height, width); a tuple that reads as that order, such as
    ``(1, 28, 28)`` or ``(3, 32, 32)``, raises ValueError saying so; a dict
    ``{"height": h, "width": w, "channels": c}`` is never ambiguous). Input arrays are NHWC:
    images of shape ``(n, height, width, channels)`` (channel index fastest), or flat rows
    ``(n, height*width*channels)`` in that order, or ``(n, height, width)`` for one channel. A
    4-D array of another shape (e.g. NCHW) raises ValueError naming the argument even when its
    size matches.

    ``layers``: a list; each entry a tuple with the kind first, or a dict with the same names:

    - ``("conv", units, kernel, stride=1, padding="zero", bias=False, block=0)``: a k x k
      convolution, gated; ``padding`` "zero", "circular" or "valid";
    - ``("dense", units, bias=False, block=0)``: fully connected on the flattened tensor;
    - ``("gap",)`` / ``("global_avg_pool",)``, ``("gmp",)`` / ``("global_max_pool",)``, ``("flatten",)``.

    A tuple may end with a dict of the remaining fields, e.g. ``("conv", 16, 3, {"block": 1})``.
    Conv layers and every dense layer but the last are gated (numbered 0.. in list order, the
    numbering of :meth:`gates`, :meth:`preactivations` and :meth:`activations`); the last layer
    must be dense (the output). Consecutive gated layers with the same ``block`` id > 0 form a
    residual block (identity skip, or a learnt 1x1 projection when shapes change). Weights are
    addressed by position in this list (:meth:`weights`), which a projection does not shift.

    ``regime`` and the keyword overrides are as for :class:`Network` (``activation``, ``gate``,
    ``beta``, ``value_input``, ``permutation`` (one entry per gated layer), ``feature_frozen``,
    ``init``, ``init_scale``, ``seed``, ``gate_source`` (a trained ConvNetwork for
    "fixed_learnt")), plus ``wiring``: "permuted" (default) or "tiled_rotated" (paper 000: gate
    tensors stacked along channels, rolled by offsets drawn from ``wiring_seed``).
    There is no bias / feature_head override: biases are per layer, conv nets have no head.

    Named architectures: :meth:`named`. Pickling, copy, save/load and the context manager work
    as for :class:`Network`; the file format is a conv format of its own.
    """

    def __init__(self, layers, input_shape, regime="relu", *, activation=None, gate=None, beta=None,
                 value_input=None, permutation=None, wiring=None, wiring_seed=None, feature_frozen=None,
                 init=None, init_scale=None, seed=0, gate_source=None):
        if isinstance(layers, (str, bytes, dict)) or not hasattr(layers, "__iter__"):
            raise TypeError(f"layers: expected a list of layer tuples or dicts, got {type(layers).__name__}")
        encoded = [_layer_tuple(layer, i) for i, layer in enumerate(layers)]
        code = _code(regime, REGIMES, "regime")
        inherited = set()
        if gate_source is not None and code == REGIMES.index("fixed_learnt") and isinstance(gate_source, ConvNetwork) \
                and not gate_source.closed:
            inherited = gate_source._feature_bias_positions()
        for i, t in enumerate(encoded):
            if t[5] is None:
                bias = 1 if i in inherited and i < len(encoded) - 1 else 0  # not the output layer
            else:
                bias = t[5]
                if inherited or gate_source is not None and code == REGIMES.index("fixed_learnt"):
                    if t[0] in (0, 1) and i < len(encoded) - 1 and bool(bias) != (i in inherited):
                        raise ValueError(f"layers[{i}].bias: got {bool(bias)}, but gate_source's layer {i} has "
                                         f"bias={i in inherited}; a fixed_learnt net copies gate_source's feature "
                                         "layers (leave bias out to inherit it)")
            encoded[i] = t[:5] + (bias,) + t[6:]
        super().__init__(encoded, _shape_hwc(input_shape), code,
                         **_conv_overrides(activation, gate, beta, value_input, permutation, wiring,
                                           wiring_seed, feature_frozen, init, init_scale, seed, gate_source))

    @classmethod
    def named(cls, arch, input_shape, classes, width_scale=1.0, regime="relu", **overrides):
        """A named architecture: "gconv", "vconv" (paper 001), "dlgn_conv" (paper 003),
        "resnet_small", "vgg19" or "davidnet", with ``classes`` outputs and every channel /
        unit count multiplied by ``width_scale`` (0 < width_scale <= 64; rounded, >= 1).
        ``input_shape`` is (height, width, channels). ``overrides`` are the keyword arguments
        of the constructor."""
        net = cls.__new__(cls)
        _core.ConvNetwork.__init__(net, None, _shape_hwc(input_shape), _code(regime, REGIMES, "regime"),
                                   arch=_code(arch, _ARCHITECTURES, "arch"), classes=classes,
                                   width_scale=float(width_scale), **_conv_overrides(**{
                                       k: overrides.pop(k, None) for k in (
                                           "activation", "gate", "beta", "value_input", "permutation",
                                           "wiring", "wiring_seed", "feature_frozen", "init", "init_scale",
                                           "gate_source")}, seed=overrides.pop("seed", 0)))
        if overrides:
            raise TypeError(f"named: unexpected keyword argument(s) {', '.join(sorted(overrides))}")
        return net

    @staticmethod
    def architecture_layers(arch, classes, width_scale=1.0):
        """The layer list (dicts) of a named architecture, e.g. to edit and build with the constructor."""
        return [_layer_dict(t) for t in
                _core.ConvNetwork._architecture_layers(_code(arch, _ARCHITECTURES, "arch"), classes,
                                                       float(width_scale))]

    def _hidden_count(self):
        return self._info()["n_gated"]

    # ---- description -------------------------------------------------------------------------

    def info(self):
        """Architecture and state as a dict (enum fields as names; input_shape and gated_shapes
        as (H, W, C))."""
        d = self._named_info()
        c, h, w = d["input_shape"]
        d["input_shape"] = (h, w, c)
        d["wiring"] = _WIRINGS[d["wiring"]]
        return d

    input_shape = property(lambda self: self.info()["input_shape"], doc="(height, width, channels).")
    input_size = property(lambda self: self._info()["input_size"], doc="height * width * channels.")
    output_size = property(lambda self: self._info()["output_size"], doc="Number of outputs.")
    n_gated = property(lambda self: self._info()["n_gated"], doc="Number of gated layers.")
    n_hidden = property(lambda self: self._info()["n_gated"], doc="Number of gated (hidden) layers, as Network.n_hidden.")
    gated_shapes = property(lambda self: self._info()["gated_shapes"], doc="(H, W, C) per gated layer.")
    regime = property(lambda self: REGIMES[self._info()["regime"]], doc="Regime name.")
    parameter_count = property(lambda self: self._info()["parameter_count"], doc="Scalars in both nets.")
    epochs_trained = property(lambda self: self._info()["epochs_trained"], doc="Epochs over the net's life.")
    feature_frozen = property(lambda self: self._info()["feature_frozen"], doc="Feature weights frozen?")
    value_frozen = property(lambda self: self._info()["value_frozen"], doc="Value weights frozen?")

    # ---- parameters --------------------------------------------------------------------------

    def tensor_names(self):
        """Names of the parameter tensors in library order, e.g. "value.3.weight" (3 numbers the
        parameter tensors of the net, so a residual projection shifts later numbers; see
        :meth:`tensor_layers` and :meth:`weights` for positions in the layer list)."""
        return [self._tensor_info(i)[0] for i in range(self.tensor_count())]

    def tensor_layers(self):
        """For each tensor of :meth:`tensor_names`: ``(position, is_projection)``, its layer's
        position in the layer list (a projection: its residual block's last layer)."""
        return [self._tensor_layer(i) for i in range(self.tensor_count())]

    def _feature_bias_positions(self):
        """Layer-list positions whose feature-net layer has a bias (what fixed_learnt copies)."""
        return {pos for (pos, proj), name in zip(self.tensor_layers(), self.tensor_names())
                if not proj and name.startswith("feature.") and name.endswith(".bias")}

    @property
    def n_layers(self):
        """Number of entries of the layer list the network was built from."""
        return self._tensor_layer(self.tensor_count() - 1)[0] + 1

    def _tensor_index(self, tensor):
        if isinstance(tensor, str):
            names = self.tensor_names()
            if tensor not in names:
                raise KeyError(f"tensor: no parameter named {tensor!r}")
            return names.index(tensor)
        return _index(tensor, self.tensor_count(), "tensor", IndexError)

    def _tensor_at(self, part, layer, bias, projection):
        """Index of the tensor of ``part`` at layer-list position ``layer``."""
        p = _PARTS[_code(part, _PARTS, "part")]
        if self._info()["tied"]:
            p = "feature"
        positions = self.tensor_layers()
        count = positions[-1][0] + 1
        pos = _index(layer, count)
        kind = "bias" if bias else "weight"
        for i, ((at, proj), name) in enumerate(zip(positions, self.tensor_names())):
            if at == pos and proj == bool(projection) and name.startswith(p + ".") and name.endswith("." + kind):
                return i
        what = "projection " if projection else ""
        raise ValueError(f"layer: layers[{pos}] has no {p} {what}{kind} (pooling and flatten layers have no "
                         "parameters, biases need bias=True, a projection sits at its block's last layer)")

    def weights(self, part="value", layer=0, *, projection=False, out=None):
        """Weight matrix of the conv / dense layer at position ``layer`` of the layer list
        (negative from the end; a residual projection shifts nothing) of ``part``: fan_out x
        fan_in, a conv's fan_in index (ky*k + kx)*in_channels + c. ``projection=True``: the
        1x1 projection of the residual block whose last layer is at ``layer``. A copy (Buffer)."""
        return self._get_tensor(self._tensor_at(part, layer, False, projection), out)

    def bias(self, part="value", layer=0, *, out=None):
        """Bias of the layer at position ``layer`` of the list (fan_out x 1); ValueError if it has none."""
        return self._get_tensor(self._tensor_at(part, layer, True, False), out)

    def set_weights(self, part, layer, w, *, projection=False):
        """Replace the weights of the layer at position ``layer`` (see :meth:`weights`)."""
        self._set_tensor(self._tensor_at(part, layer, False, projection), w)

    def tensor(self, tensor, *, out=None):
        """A copy of a parameter tensor (index or name) as a float32 Buffer (rows, cols):
        weights fan_out x fan_in (conv fan_in index (ky*k + kx)*in_channels + c), biases fan_out x 1."""
        return self._get_tensor(self._tensor_index(tensor), out)

    def tensors(self):
        """Every parameter tensor as {name: Buffer} (copies)."""
        return {name: self._get_tensor(i) for i, name in enumerate(self.tensor_names())}

    def set_tensor(self, tensor, values):
        """Replace a parameter tensor (any float buffer of rows*cols finite values); works on frozen parts."""
        self._set_tensor(self._tensor_index(tensor), values)

    # ---- training and evaluation --------------------------------------------------------------

    def fit(self, x, y, epochs=1, *, batch_size=32, lr=3e-4, optimizer="adam", loss=None,
            momentum=0.9, weight_decay=0.0, adam_betas=(0.9, 0.999), adam_epsilon=1e-8,
            shuffle_seed=0, validation_data=None, callback=None, progress=False):
        """Train for ``epochs`` epochs; returns one metrics dict per epoch run.

        Same options (float ``y`` for regression), metrics, callback, ``progress`` bar, Ctrl-C
        and divergence semantics as :meth:`Network.fit` (conv nets have no feature head, so there is no
        ``train_feature_head``)."""
        return self._fit(x, y, epochs, batch_size, lr, optimizer, loss, momentum, weight_decay, adam_betas,
                         adam_epsilon, shuffle_seed, validation_data, callback, progress)

    # ---- gates and kernels ----------------------------------------------------------------------

    def gates(self, x, layer=None, *, out=None, wired=False):
        """Gates of gated ``layer`` (negative from the end) for x as a float32 Buffer of shape
        (n, H, W, C) (NHWC of the layer).

        ``wired=False``: the feature net's own gates; ``wired=True``: the gates value layer
        ``layer`` multiplies by (after permutation / tiling). ``layer=None``: a list, every layer."""
        n = self._hidden_count()
        if layer is None:
            if out is not None:
                raise ValueError("out: only with a single layer")
            return [self._gates(x, l, wired) for l in range(n)]
        return self._gates(x, _index(layer, n), wired, out)

    def kernel(self, xa, xb=None, kind="npk", *, layer=None, out=None, progress=None, out_transposed=None):
        """Exact path kernel (float32 Buffer, n_a x n_b) between batches ``xa`` and ``xb``.

        ``kind``: "npk" (neural path kernel of the value net with its wired gates),
        "npk_normalized" (each layer a path passes through contributes a mean over its units:
        the gate Gram of a layer divided by its channels or width, a projection skip counting
        1; without residual blocks H / prod_l C_l), "npk_trace_normalized" (H / trace H(xa,
        xa), in double before rounding: never overflows), "overlap" (alias "gate_overlap": the
        same recursion with the input Gram replaced by 1) or "input_gram". Raw kinds whose
        entries pass float32's range (deep, wide nets) raise ArgumentError naming the
        normalised kinds. ``layer`` is accepted for the signature Network.kernel shares and
        must be None (conv nets have no per-layer kernel).
        ``xb=None``: xb = xa (symmetric). ``out``: a writable float32 buffer whose rows may be
        strided. ``out_transposed``: a second one of shape (n_b, n_a) that gets the kernel
        transposed (bit for bit ``out.T``) in the same pass (not overlapping ``out``; progress
        is then reported once per tile). ``progress=True`` shows a bar (tqdm.auto; text
        without tqdm); a callable ``progress(fraction)`` is called after each block of rows
        (returning False cancels with CancelledError); the trace-normalised kind reports once, at the end. Cost per pair
        grows with the squared number of positions: small images or n only.
        UnsupportedError for nets with global max pooling."""
        if layer is not None:
            raise ValueError(f"layer: got {layer!r}; conv path kernels have no layer argument (pass None)")
        code = _code(kind, _CONV_KERNELS, "kind")
        callback, close = _progress_callback(progress, f"kernel {_CONV_KERNELS[code]}")
        try:
            return self._kernel(code, xa, xb, out, callback, out_transposed=out_transposed)
        finally:
            if close is not None:
                close()

    def npk(self, xa, xb=None, *, normalized=False, out=None, **options):
        """Neural path kernel H(xa, xb); ``normalized`` False, "layer" (or True) or "trace" as
        :meth:`Network.npk` (kinds "npk", "npk_normalized", "npk_trace_normalized" of
        :meth:`kernel`, which documents the options)."""
        return self.kernel(xa, xb, _npk_kind(normalized), out=out, **options)

    def overlap(self, xa, xb=None, *, out=None, **options):
        """The gates' share of the NPK (the recursion with the input Gram replaced by 1)."""
        return self.kernel(xa, xb, "overlap", out=out, **options)

    def input_gram(self, xa, xb=None, *, out=None, **options):
        """Sigma = <xv_a, xv_b> of the value input over all entries."""
        return self.kernel(xa, xb, "input_gram", out=out, **options)
