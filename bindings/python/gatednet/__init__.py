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
named architecture (``ConvNetwork.named("gconv", ...)``), with the same regimes, ``fit``,
kernels and persistence; their inputs are NHWC images (``(n, H, W, C)`` or flat rows).

Inputs
    Any object with the buffer protocol (numpy arrays, memoryview, array.array). ``x`` arguments
    are float matrices of shape ``(n, input_size)``; more dimensions are accepted when the
    trailing ones multiply to ``input_size`` (e.g. ``(n, 28, 28)`` images). The rule:

    * float32, C-contiguous: used in place, never copied;
    * float32 with other strides, or float64 (any layout): copied once into a temporary
      float32 array for the duration of the call (float64 rounded to nearest float32);
    * any other dtype: ``TypeError``; objects without the buffer protocol (lists): ``TypeError``.

    Labels ``y`` are 1-D integer buffers with one entry per row of ``x``: int32 C-contiguous is
    used in place; other integer dtypes are copied (values must fit in int32). Wrong shapes
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
    Python argument) are plain ``TypeError`` / ``ValueError`` naming the argument. No error path
    crashes the interpreter; a failed call leaves the network as it was.

Kernel suite
    NTKs (:meth:`Network.ntk`), infinite-width
    limits, kernel blocks and tiles, kernel progress callbacks, :meth:`Network.active_paths`,
    :meth:`Network.gate_hyperplanes`, and kernel algebra on any float32 matrix:
    :func:`kernel_eigenvalues`, :func:`kernel_nu`, :func:`kernel_ridge_fit`,
    :func:`kernel_ridge_predict`, :func:`kernel_targets`, :func:`kernel_classes`.

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

__version__ = "0.1.0"
library_version = _core.library_version

__all__ = [
    "Network", "Buffer", "load_idx", "idx_dims", "corrupt_labels", "REGIMES",
    "GatedNetError", "ArgumentError", "ClosedNetworkError", "CorruptFileError", "FileError",
    "UnsupportedError", "OutOfMemoryError", "CancelledError", "BusyError", "library_version",
]

# Names of the C enumerations (gatednet.h), in value order.
REGIMES = ("custom", "relu", "decoupled", "fixed_learnt", "fixed_random_ii", "fixed_random_di",
           "dlgn", "dlgn_pwc")
_ACTIVATIONS = ("relu", "identity")
_GATES = ("hard", "soft")
_VALUE_INPUTS = ("x", "ones")
_INITS = ("gaussian", "bernoulli")
_PARTS = ("feature", "value")
_OPTIMIZERS = ("sgd", "adam")
_LOSSES = ("cross_entropy", "squared")
_KERNELS = ("input_gram", "base", "overlap", "npk", "npk_normalized", "npk_trace_normalized",
            "ntk_value", "ntk_feature", "ntk_cross", "ntk", "npk_limit", "ntk_limit")
_GATE_PATHS = ("auto", "float", "packed")
_ALIASES = {"linear": "identity", "fixed_learned": "fixed_learnt", "ce": "cross_entropy",
            "mse": "squared"}


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
             adam_epsilon, shuffle_seed, validation_data, callback, **extra):
        xt = yt = None
        if validation_data is not None:
            xt, yt = validation_data
        b1, b2 = adam_betas
        return self._train(
            x, y, xt, yt, optimizer=_code(optimizer, _OPTIMIZERS, "optimizer"),
            loss=_code(loss, _LOSSES, "loss"), learning_rate=lr, momentum=momentum,
            weight_decay=weight_decay, adam_beta1=b1, adam_beta2=b2, adam_epsilon=adam_epsilon,
            batch_size=batch_size, epochs=epochs, shuffle_seed=shuffle_seed, callback=callback, **extra)

    def evaluate(self, x, y, loss="cross_entropy"):
        """Mean loss and accuracy over (x, y): ``{"loss": float, "accuracy": float}``."""
        mean_loss, accuracy = self._evaluate(x, y, _code(loss, _LOSSES, "loss"))
        return {"loss": mean_loss, "accuracy": accuracy}

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
    - ``gate_source``: trained Network whose feature weights a ``fixed_learnt`` net copies

    ``Network(**net.spec)`` rebuilds the same architecture (fresh weights).
    A Network is a context manager (``close()`` on exit), can be pickled and copied (through
    :meth:`to_bytes`, optimizer state included) and saved with :meth:`save` / :meth:`load`.
    """

    def __init__(self, input_size, hidden_widths, output_size, regime="relu", *, activation=None,
                 gate=None, beta=None, value_input=None, permutation=None, bias=None,
                 feature_head=None, feature_frozen=None, init=None, init_scale=None, seed=0,
                 gate_source=None):
        if isinstance(hidden_widths, int):
            hidden_widths = [hidden_widths]
        super().__init__(
            input_size, list(hidden_widths), output_size, _code(regime, REGIMES, "regime"),
            activation=_code(activation, _ACTIVATIONS, "activation"),
            gate=_code(gate, _GATES, "gate"), beta=beta,
            value_input=_code(value_input, _VALUE_INPUTS, "value_input"),
            permutation=None if permutation is None else list(permutation),
            bias=bias, feature_head=feature_head, feature_frozen=feature_frozen,
            init=_code(init, _INITS, "init"), init_scale=init_scale, seed=seed,
            gate_source=gate_source)

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

    def weights(self, part="value", layer=0, out=None):
        """Weight matrix (fan_out x fan_in) of ``layer`` of ``part`` ("feature" or "value").

        Layers 0..n_hidden-1 are hidden; layer n_hidden is the output layer (the value net's,
        or the feature head). Returns a copy as a Buffer (or fills ``out``)."""
        return self._get_weights(_code(part, _PARTS, "part"), layer, out)

    def bias(self, part="value", layer=0, out=None):
        """Bias vector of a layer (UnsupportedError if the network has no biases)."""
        return self._get_weights(_code(part, _PARTS, "part"), layer, out, True)

    def set_weights(self, part, layer, w):
        """Replace a weight matrix (any float buffer with fan_out*fan_in elements, row-major)."""
        self._set_weights(_code(part, _PARTS, "part"), layer, w)

    # ---- training and evaluation --------------------------------------------------------------

    def fit(self, x, y, epochs=1, *, batch_size=32, lr=3e-4, optimizer="adam", loss="cross_entropy",
            momentum=0.9, weight_decay=0.0, adam_betas=(0.9, 0.999), adam_epsilon=1e-8,
            shuffle_seed=0, validation_data=None, train_feature_head=False, callback=None):
        """Train for ``epochs`` epochs; returns one metrics dict per epoch run.

        Each dict has ``epoch`` (over the network's life), ``epoch_in_call``, ``epochs_in_call``,
        ``train_loss``, ``train_accuracy`` (over the epoch's minibatches, before each update),
        ``test_loss``, ``test_accuracy`` (on ``validation_data=(x_test, y_test)`` after the
        epoch; None without it) and ``seconds``.

        ``callback(metrics)`` is called after every epoch with that dict (e.g. to update a tqdm
        bar). Returning False (or another falsy value except None) stops training after that
        epoch; an exception raised in it stops training and propagates out of ``fit`` with its
        traceback. The callback must not use this network (GatedNetError); the epochs that ran
        are kept in either case, and the network stays usable. Ctrl-C stops within about 0.1 s
        with KeyboardInterrupt; the interrupted epoch is undone, completed ones are kept.

        ``optimizer``: "adam" (``adam_betas``, ``adam_epsilon``) or "sgd" (``momentum``);
        ``loss``: "cross_entropy" or "squared"; ``weight_decay``: L2 coefficient; epoch e of
        the network's life is shuffled from (``shuffle_seed``, e). ``train_feature_head``: train
        the feature net alone through its own head. Frozen parts are not updated. If the loss
        diverges, the network is restored to its state before the call and ArgumentError is
        raised.
        """
        return self._fit(x, y, epochs, batch_size, lr, optimizer, loss, momentum, weight_decay, adam_betas,
                         adam_epsilon, shuffle_seed, validation_data, callback,
                         train_feature_head=train_feature_head)

    # ---- gates and kernels ----------------------------------------------------------------------

    def gates(self, x, layer=None, out=None, packed=False):
        """Gates of the feature net for x.

        ``layer`` an int: a Buffer of shape (n, width(layer)) float32 (0/1 for hard gates,
        sigmoid values for soft). ``layer=None``: a list with every hidden layer (feature-net
        numbering, i.e. before the permutation). ``packed=True`` (hard gates only): uint64 words,
        shape (n, ceil(width/64)); gate j of row i is bit j%64 of word [i, j//64]."""
        if layer is None:
            if out is not None:
                raise ValueError("out: only with a single layer")
            return [self._gates(x, l, None, packed) for l in range(self.n_hidden)]
        return self._gates(x, layer, out, packed)

    def kernel(self, kind, xa, xb=None, layer=0, out=None, *, output=None, rows=None, cols=None,
               upper_only=False, gate_path="auto", ntk_scaling=False, progress=None):
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
        ``progress(fraction)`` is called after each tile (at most 512 x 512 entries); returning
        False cancels (CancelledError); an exception in it propagates. Ctrl-C interrupts the
        computation at the next tile with KeyboardInterrupt.
        """
        code = _code(kind, _KERNELS, "kind")
        rb, rc = _block(rows, "rows")
        cb, cc = _block(cols, "cols")
        return self._kernel_compute(
            code, xa, xb, layer=layer, output=-1 if output is None else output, row_begin=rb,
            row_count=rc, col_begin=cb, col_count=cc, upper_only=upper_only,
            gate_path=_code(gate_path, _GATE_PATHS, "gate_path"), ntk_scaling=ntk_scaling, out=out,
            progress=progress)

    def input_gram(self, xa, xb=None, out=None, **options):
        """Sigma = Xa Xb^T of the value input (d_in * 11^T for value input "ones")."""
        return self.kernel("input_gram", xa, xb, out=out, **options)

    def base_kernel(self, xa, xb=None, layer=0, out=None, **options):
        """B_l = G_l(xa) G_l(xb)^T / width_l for hidden ``layer``."""
        return self.kernel("base", xa, xb, layer, out, **options)

    def overlap(self, xa, xb=None, out=None, **options):
        """Lambda = Hadamard product over hidden layers of G_l(xa) G_l(xb)^T (active-path overlap)."""
        return self.kernel("overlap", xa, xb, out=out, **options)

    def npk(self, xa, xb=None, normalized=False, out=None, **options):
        """Neural path kernel H = Sigma * Lambda.

        ``normalized=True``: Sigma * prod_l B_l; ``normalized="trace"``: H / trace H(xa, xa)."""
        kind = {False: "npk", True: "npk_normalized", "trace": "npk_trace_normalized"}.get(normalized)
        if kind is None:
            raise ValueError(f"normalized: expected False, True or 'trace', got {normalized!r}")
        return self.kernel(kind, xa, xb, out=out, **options)

    def ntk(self, xa, xb=None, part=None, output=None, ntk_scaling=False, out=None, **options):
        """Empirical neural tangent kernel (kernel suite).

        ``part``: None (the weights training changes: K^v + K^f), "value" (K^v), "feature"
        (K^f, soft gates) or "cross" (K^cross, the tied-weights extra term). ``output``: an
        output unit, or None for the sum over outputs."""
        kind = {None: "ntk", "value": "ntk_value", "feature": "ntk_feature", "cross": "ntk_cross"}.get(part)
        if kind is None:
            raise ValueError(f"part: expected None, 'value', 'feature' or 'cross', got {part!r}")
        return self.kernel(kind, xa, xb, output=output, ntk_scaling=ntk_scaling, out=out, **options)

    def npk_limit(self, xa, xb=None, out=None, **options):
        """Infinite-width normalised NPK of random hard gates for this architecture."""
        return self.kernel("npk_limit", xa, xb, out=out, **options)

    def ntk_limit(self, xa, xb=None, output=None, out=None, **options):
        """Infinite-width NTK of a ReLU network of this shape (NTK parametrisation)."""
        return self.kernel("ntk_limit", xa, xb, output=output, out=out, **options)

    def active_paths(self, x, groups=None, n_groups=None):
        """Active paths from one input node per row of x: prod_l sum_i G_l(x)_i (float64 Buffer).

        With ``groups`` (one int per row, e.g. class labels, in [0, n_groups); n_groups defaults
        to output_size) returns ``(mean, counts)``: mean per group (NaN if empty) and rows per
        group (int64)."""
        if groups is None:
            return self._active_paths(x)
        return self._active_paths(x, groups, self.output_size if n_groups is None else n_groups)

    def gate_hyperplanes(self, layer):
        """Effective hyperplanes of a linear gating net (DLGN): gate i of ``layer`` is on iff
        <normals[i], x> + offsets[i] > 0. Returns (normals (width, input_size), offsets (width,))."""
        return self._gate_hyperplanes(layer)


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
__all__ += ["kernel_classes", "kernel_eigenvalues", "kernel_nu", "kernel_ridge_fit",
            "kernel_ridge_predict", "kernel_targets"]


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
_CONV_KERNELS = ("npk", "gate_overlap", "input_gram")
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
    return (code, units, kernel, stride, padding, 1 if d.get("bias", False) else 0, block)


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


class ConvNetwork(_Shared, _core.ConvNetwork):
    """A convolutional / residual deep gated network (MATH.md sections 4-5), built from a layer list.

    ``ConvNetwork(layers, input_shape, regime="relu", **spec)``

    ``input_shape`` is ``(channels, height, width)``. Input arrays are NHWC: images of shape
    ``(n, height, width, channels)`` (channel index fastest), or flat rows ``(n, height*width*
    channels)`` in that order, or ``(n, height, width)`` for one channel. A 4-D array of another
    shape (e.g. NCHW) raises ValueError naming the argument even when its size matches.

    ``layers``: a list; each entry a tuple with the kind first, or a dict with the same names:

    - ``("conv", units, kernel, stride=1, padding="zero", bias=False, block=0)``: a k x k
      convolution, gated; ``padding`` "zero", "circular" or "valid";
    - ``("dense", units, bias=False, block=0)``: fully connected on the flattened tensor;
    - ``("gap",)`` / ``("global_avg_pool",)``, ``("gmp",)`` / ``("global_max_pool",)``, ``("flatten",)``.

    A tuple may end with a dict of the remaining fields, e.g. ``("conv", 16, 3, {"block": 1})``.
    Conv layers and every dense layer but the last are gated (numbered 0.. in list order); the
    last layer must be dense (the output). Consecutive gated layers with the same ``block`` id
    > 0 form a residual block (identity skip, or a learnt 1x1 projection when shapes change).

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
        super().__init__(encoded, _shape3(input_shape), _code(regime, REGIMES, "regime"),
                         **_conv_overrides(activation, gate, beta, value_input, permutation, wiring,
                                           wiring_seed, feature_frozen, init, init_scale, seed, gate_source))

    @classmethod
    def named(cls, arch, input_shape, classes, width_scale=1.0, regime="relu", **overrides):
        """A named architecture: "gconv", "vconv" (paper 001), "dlgn_conv" (paper 003),
        "resnet_small", "vgg19" or "davidnet", with ``classes`` outputs and every channel /
        unit count multiplied by ``width_scale`` (0 < width_scale <= 64; rounded, >= 1).
        ``overrides`` are the keyword arguments of the constructor."""
        net = cls.__new__(cls)
        _core.ConvNetwork.__init__(net, None, _shape3(input_shape), _code(regime, REGIMES, "regime"),
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

    # ---- description -------------------------------------------------------------------------

    def info(self):
        """Architecture and state as a dict (enum fields as names; gated_shapes as (H, W, C))."""
        d = self._named_info()
        d["wiring"] = _WIRINGS[d["wiring"]]
        return d

    input_shape = property(lambda self: self._info()["input_shape"], doc="(channels, height, width).")
    input_size = property(lambda self: self._info()["input_size"], doc="channels * height * width.")
    output_size = property(lambda self: self._info()["output_size"], doc="Number of outputs.")
    n_gated = property(lambda self: self._info()["n_gated"], doc="Number of gated layers.")
    gated_shapes = property(lambda self: self._info()["gated_shapes"], doc="(H, W, C) per gated layer.")
    regime = property(lambda self: REGIMES[self._info()["regime"]], doc="Regime name.")
    parameter_count = property(lambda self: self._info()["parameter_count"], doc="Scalars in both nets.")
    epochs_trained = property(lambda self: self._info()["epochs_trained"], doc="Epochs over the net's life.")
    feature_frozen = property(lambda self: self._info()["feature_frozen"], doc="Feature weights frozen?")
    value_frozen = property(lambda self: self._info()["value_frozen"], doc="Value weights frozen?")

    # ---- parameters --------------------------------------------------------------------------

    def tensor_names(self):
        """Names of the parameter tensors in library order, e.g. "value.3.weight"."""
        return [self._tensor_info(i)[0] for i in range(self.tensor_count())]

    def _tensor_index(self, tensor):
        if isinstance(tensor, str):
            names = self.tensor_names()
            if tensor not in names:
                raise KeyError(f"tensor: no parameter named {tensor!r}")
            return names.index(tensor)
        return tensor

    def tensor(self, tensor, out=None):
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

    def fit(self, x, y, epochs=1, *, batch_size=32, lr=3e-4, optimizer="adam", loss="cross_entropy",
            momentum=0.9, weight_decay=0.0, adam_betas=(0.9, 0.999), adam_epsilon=1e-8,
            shuffle_seed=0, validation_data=None, callback=None):
        """Train for ``epochs`` epochs; returns one metrics dict per epoch run.

        Same options, metrics, callback, Ctrl-C and divergence semantics as :meth:`Network.fit`
        (conv nets have no feature head, so there is no ``train_feature_head``)."""
        return self._fit(x, y, epochs, batch_size, lr, optimizer, loss, momentum, weight_decay, adam_betas,
                         adam_epsilon, shuffle_seed, validation_data, callback)

    # ---- gates and kernels ----------------------------------------------------------------------

    def gates(self, x, layer=None, wired=False, out=None):
        """Gates of gated ``layer`` for x as a float32 Buffer of shape (n, H, W, C) (NHWC of the layer).

        ``wired=False``: the feature net's own gates; ``wired=True``: the gates value layer
        ``layer`` multiplies by (after permutation / tiling). ``layer=None``: a list, every layer."""
        if layer is None:
            if out is not None:
                raise ValueError("out: only with a single layer")
            return [self._gates(x, l, wired) for l in range(self.n_gated)]
        return self._gates(x, layer, wired, out)

    def kernel(self, xa, xb=None, kind="npk", out=None):
        """Exact path kernel (float32 Buffer, n_a x n_b) between batches ``xa`` and ``xb``.

        ``kind``: "npk" (neural path kernel of the value net with its wired gates),
        "gate_overlap" (the same recursion with the input Gram replaced by 1) or "input_gram".
        ``xb=None``: xb = xa (symmetric). ``out``: a writable float32 buffer whose rows may be
        strided. Cost per pair grows with the squared number of positions: small images or n only.
        UnsupportedError for nets with global max pooling."""
        if kind == "overlap":
            kind = "gate_overlap"
        return self._kernel(_code(kind, _CONV_KERNELS, "kind"), xa, xb, out)

    def npk(self, xa, xb=None, out=None):
        """Neural path kernel H(xa, xb) (see :meth:`kernel`)."""
        return self.kernel(xa, xb, "npk", out)


def _shape3(shape):
    try:
        c, h, w = shape
    except (TypeError, ValueError):
        raise ValueError(f"input_shape: expected (channels, height, width), got {shape!r}") from None
    return (c, h, w)


__all__ += ["ConvNetwork"]
