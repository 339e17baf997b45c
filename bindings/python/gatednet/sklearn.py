"""scikit-learn estimators over gatednet networks (needs scikit-learn; ``import gatednet`` does not).

- :class:`GatedNetClassifier`: a fully connected DGN in any regime as a classifier, for
  ``cross_val_score``, ``GridSearchCV`` and ``Pipeline``;
- :class:`PathKernel`: a transformer whose ``transform(X)`` is K(X, X_fit) for a network's NPK,
  overlap or NTK, to put before ``SVC(kernel="precomputed")`` or
  ``KernelRidge(kernel="precomputed")`` in a Pipeline (an SVM on the NPK of a net's gates: NPK-SVM);
- :func:`path_kernel`: the same kernel as a plain callable ``k(A, B)``, e.g. ``SVC(kernel=k)``.

Networks given as estimators follow one rule (``gate_source`` of the classifier, ``network``
of the kernel): a *fitted* estimator is used as it is; an *unfitted* one is cloned and fitted on
the data passed to ``fit`` first. ``sklearn.base.clone`` (which ``cross_val_score`` and
``GridSearchCV`` call) makes nested estimators unfitted, so in cross-validation the gates are
learnt on each training fold only; wrap a fitted estimator in
``sklearn.frozen.FrozenEstimator`` to keep it fitted through cloning. A :class:`gatednet.Network`
itself is copied by ``clone`` with its weights, and used as it is.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import ConvNetwork, Network

__all__ = ["GatedNetClassifier", "PathKernel", "path_kernel"]

# Seeds drawn from random_state lie in [0, 2**31 - 1): the int32 range of RandomState.randint.
_SEED_BOUND = 2**31 - 1


def _as_network(source, X, y, what):
    """The gatednet network behind ``source`` (see the module docstring), and the estimator
    fitted here for it (None if none was)."""
    if isinstance(source, (Network, ConvNetwork)):
        return source, None
    if not hasattr(source, "fit"):
        raise TypeError(f"{what}: expected a gatednet Network or an estimator with a network_ "
                        f"attribute (e.g. GatedNetClassifier), got {type(source).__name__}")
    try:
        check_is_fitted(source)
        fitted = None
    except NotFittedError:
        if y is None:
            raise ValueError(f"{what}: the estimator is not fitted, and fit got no y to fit it with") from None
        fitted = source = clone(source).fit(X, y)
    network = getattr(source, "network_", None)
    if not isinstance(network, (Network, ConvNetwork)):
        raise TypeError(f"{what}: {type(source).__name__} has no gatednet network (network_ attribute)")
    return network, fitted


class GatedNetClassifier(ClassifierMixin, BaseEstimator):
    """A fully connected deep gated network (or plain ReLU net) as a scikit-learn classifier.

    Labels may be of any type (``classes_`` holds them sorted, as LabelEncoder would); the
    network has one output per class and is trained with softmax cross-entropy (or squared
    loss on one-hot targets). Inputs are converted to float32.

    Parameters
    ----------
    hidden_widths : int or sequence of int, default=(128, 128)
        Widths of the hidden layers.
    regime : str, default="relu"
        "relu", "decoupled", "fixed_learnt", "fixed_random_ii", "fixed_random_di", "dlgn",
        "dlgn_pwc" or "custom" (see :class:`gatednet.Network`).
    epochs : int, default=10
        Epochs of training per call of ``fit`` (each ``fit`` starts from a fresh network).
    lr : float, default=1e-3
        Learning rate.
    optimizer : {"adam", "sgd"}, default="adam"
    batch_size : int, default=32
        Minibatch size (clipped to the number of samples).
    loss : {"cross_entropy", "squared"}, default="cross_entropy"
        ``predict_proba`` exists only for cross-entropy (the softmax of the outputs).
    momentum, weight_decay : float
        SGD momentum; L2 coefficient of either optimizer.
    gate_source : estimator or gatednet.Network, default=None
        For regime "fixed_learnt": the network whose gates are copied and frozen, e.g. a fitted
        ``GatedNetClassifier(regime="relu")`` (an unfitted one is fitted on the same data first;
        see the module docstring).
    activation, gate, beta, value_input, bias, init, init_scale : default=None
        Overrides of the regime's preset (None keeps it), as for :class:`gatednet.Network`.
    random_state : int, RandomState instance or None, default=None
        Seeds the network's initialisation and the shuffling of every epoch; an int makes
        ``fit`` reproducible bit for bit.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of str (only when X has string column names)
    network_ : gatednet.Network
        The trained network.
    history_ : list of dict
        The per-epoch metrics ``Network.fit`` returned.
    n_iter_ : int
        Epochs run.
    gate_source_ : estimator or None
        The gate source fitted by ``fit`` when ``gate_source`` was an unfitted estimator.
    """

    def __init__(self, hidden_widths=(128, 128), regime="relu", *, epochs=10, lr=1e-3, optimizer="adam",
                 batch_size=32, loss="cross_entropy", momentum=0.9, weight_decay=0.0, gate_source=None,
                 activation=None, gate=None, beta=None, value_input=None, bias=None, init=None,
                 init_scale=None, random_state=None):
        self.hidden_widths = hidden_widths
        self.regime = regime
        self.epochs = epochs
        self.lr = lr
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.loss = loss
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.gate_source = gate_source
        self.activation = activation
        self.gate = gate
        self.beta = beta
        self.value_input = value_input
        self.bias = bias
        self.init = init
        self.init_scale = init_scale
        self.random_state = random_state

    def fit(self, X, y):
        """Build a fresh network for X's width and the classes of y, and train it."""
        X, y = validate_data(self, X, y, dtype=(np.float32, np.float64))
        X = np.ascontiguousarray(X, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y: a classifier needs samples of at least 2 classes, got 1 class "
                             f"({self.classes_[0]!r})")
        if not isinstance(self.epochs, numbers.Integral) or self.epochs < 1:
            raise ValueError(f"epochs: expected an int >= 1, got {self.epochs!r}")
        if not isinstance(self.batch_size, numbers.Integral) or self.batch_size < 1:
            raise ValueError(f"batch_size: expected an int >= 1, got {self.batch_size!r}")
        rng = check_random_state(self.random_state)
        seed, shuffle_seed = (int(s) for s in rng.randint(0, _SEED_BOUND, size=2))

        source = None
        self.gate_source_ = None
        if self.gate_source is not None:
            source, self.gate_source_ = _as_network(self.gate_source, X, y, "gate_source")
            if source.input_size != X.shape[1]:
                raise ValueError(f"gate_source: its network takes {source.input_size} features, "
                                 f"X has {X.shape[1]}")
        widths = [self.hidden_widths] if isinstance(self.hidden_widths, numbers.Integral) else \
            [int(w) for w in self.hidden_widths]
        overrides = {name: getattr(self, name) for name in (
            "activation", "gate", "beta", "value_input", "bias", "init", "init_scale")}
        if source is not None and overrides["bias"] is None:
            overrides["bias"] = source.info()["bias"]   # the copied gates need the source's shape
        self.network_ = Network(X.shape[1], widths, len(self.classes_), regime=self.regime, seed=seed,
                                gate_source=source, **overrides)
        self.history_ = self.network_.fit(
            X, codes.astype(np.int32), epochs=int(self.epochs), batch_size=int(min(self.batch_size, len(X))),
            lr=self.lr, optimizer=self.optimizer, loss=self.loss, momentum=self.momentum,
            weight_decay=self.weight_decay, shuffle_seed=shuffle_seed)
        self.n_iter_ = len(self.history_)
        return self

    def _outputs(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=(np.float32, np.float64), reset=False)
        return np.asarray(self.network_.predict(np.ascontiguousarray(X, dtype=np.float32)), dtype=np.float64)

    def decision_function(self, X):
        """Network outputs (logits), shape (n, n_classes); for two classes the difference
        output 1 - output 0, shape (n,), positive for ``classes_[1]``."""
        out = self._outputs(X)
        return out[:, 1] - out[:, 0] if out.shape[1] == 2 else out

    def predict(self, X):
        """The class (from ``classes_``) of the largest output."""
        best = np.argmax(self._outputs(X), axis=1)   # checks first that the estimator is fitted
        return self.classes_[best]

    def _has_proba(self):
        if self.loss not in ("cross_entropy", "ce"):
            raise AttributeError(f"predict_proba: only for loss='cross_entropy', not {self.loss!r}")
        return True

    @available_if(_has_proba)
    def predict_proba(self, X):
        """Softmax of the outputs, shape (n, n_classes), columns in the order of ``classes_``."""
        return softmax(self._outputs(X), axis=1)

    @available_if(_has_proba)
    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, computed stably."""
        out = self._outputs(X)
        out -= out.max(axis=1, keepdims=True)
        return out - np.log(np.exp(out).sum(axis=1, keepdims=True))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags


# ---- kernels -------------------------------------------------------------------------------------

# kind -> (Network method, keyword arguments)
_KINDS = {
    "npk": ("npk", {}),
    "overlap": ("overlap", {}),
    "input_gram": ("input_gram", {}),
    "ntk": ("ntk", {}),
    "ntk_value": ("ntk", {"part": "value"}),
    "ntk_feature": ("ntk", {"part": "feature"}),
    "npk_limit": ("npk_limit", {}),
    "ntk_limit": ("ntk_limit", {}),
}


def _compute(network, kind, normalized, A, B):
    """K(A, B) as a float64 array, with one kernel function whatever the batches (see PathKernel).
    B None: K(A, A), of which the library computes one triangle and mirrors it (exactly symmetric)."""
    method, options = _KINDS[kind]
    if kind == "npk":
        if normalized == "trace":
            # gatednet divides by the trace of H(xa, xa): put the fixed set in xa, then transpose.
            if B is None:
                return np.asarray(network.npk(A, normalized="trace"), dtype=np.float64)
            return np.asarray(network.npk(B, A, normalized="trace"), dtype=np.float64).T
        options = {"normalized": True} if normalized else {}   # the plain call works on either network class
    return np.asarray(getattr(network, method)(A, B, **options), dtype=np.float64)


def _check_kind(kind, normalized):
    if kind not in _KINDS:
        raise ValueError(f"kind: expected one of {', '.join(_KINDS)}, got {kind!r}")
    if normalized not in (False, True, "trace"):
        raise ValueError(f"normalized: expected False, True or 'trace', got {normalized!r}")
    if normalized == "trace" and kind != "npk":
        raise ValueError(f"normalized: 'trace' is only for kind='npk', got kind={kind!r}")


def _float32_rows(X, what):
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D array (n_samples, n_features), got shape {X.shape}")
    return np.ascontiguousarray(X, dtype=np.float32)


class PathKernel(TransformerMixin, BaseEstimator):
    """A network's path kernel as features: ``transform(X)`` is K(X, X_fit), shape (n, n_fit).

    Put it before an estimator with a precomputed kernel; an SVM on the NPK of a ReLU net's
    gates (NPK-SVM) is::

        Pipeline([("npk", PathKernel(GatedNetClassifier(regime="relu"))),
                  ("svm", SVC(kernel="precomputed"))])

    ``fit(X, y)`` stores X (and fits ``network`` if it is an unfitted estimator, see the module
    docstring), so the SVC sees K(X_fit, X_fit) in ``fit`` and K(X_test, X_fit) in ``predict``.

    Parameters
    ----------
    network : gatednet.Network, gatednet.ConvNetwork or estimator with ``network_``
        A ConvNetwork takes X as flat NHWC rows (n, height * width * channels).
    kind : str, default="npk"
        "npk" (H = Sigma * Lambda), "overlap" (Lambda), "input_gram" (Sigma), "ntk" (empirical
        NTK summed over outputs), "ntk_value" (K^v), "ntk_feature" (K^f, soft gates),
        "npk_limit" / "ntk_limit" (infinite-width limits of the architecture).
    normalized : {True, False, "trace"}, default=True
        For "npk" (the other kinds take only True or False, and ignore it): True is
        Sigma * prod_l B_l (gates averaged per layer, a scale that does not grow with width and
        depth); False the raw H; "trace" H / trace H(X_fit, X_fit)
        (one constant for train and test kernels, so the kernel stays one function).

    Attributes
    ----------
    X_fit_ : ndarray of float32, shape (n_fit, n_features)
    n_features_in_ : int
    network_ : the gatednet network used
    """

    def __init__(self, network=None, kind="npk", normalized=True):
        self.network = network
        self.kind = kind
        self.normalized = normalized

    def fit(self, X, y=None):
        """Remember X as the columns of every kernel ``transform`` computes."""
        _check_kind(self.kind, self.normalized)
        if self.network is None:
            raise ValueError("network: expected a gatednet Network or a GatedNetClassifier, got None")
        X = validate_data(self, X, dtype=(np.float32, np.float64))
        X = np.ascontiguousarray(X, dtype=np.float32)
        self.network_, self.fitted_network_ = _as_network(self.network, X, y, "network")
        if self.network_.input_size != X.shape[1]:
            raise ValueError(f"X: has {X.shape[1]} features, the network takes {self.network_.input_size}")
        self.X_fit_ = X
        return self

    def transform(self, X):
        """K(X, X_fit) as a float64 array of shape (n, n_fit)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=(np.float32, np.float64), reset=False)
        return _compute(self.network_, self.kind, self.normalized, np.ascontiguousarray(X, dtype=np.float32),
                        self.X_fit_)

    def fit_transform(self, X, y=None):
        """K(X, X) after fitting on X: exactly symmetric, half the work of ``transform(X)``."""
        self.fit(X, y)
        return _compute(self.network_, self.kind, self.normalized, self.X_fit_, None)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.transformer_tags.preserves_dtype = []
        return tags


def path_kernel(network, kind="npk", normalized=True):
    """A network's kernel as a callable ``k(A, B) -> ndarray (len(A), len(B))`` of float64.

    For estimators that take a kernel function, e.g. ``SVC(kernel=path_kernel(net))`` or
    ``KernelRidge(kernel=...)`` (which calls it on pairs of single rows, so slowly: prefer
    :class:`PathKernel` with ``kernel="precomputed"`` there). ``network``: a gatednet network,
    or a fitted estimator with ``network_``. ``kind`` / ``normalized`` as for
    :class:`PathKernel`, except that ``normalized="trace"`` has no fixed set to take the trace
    of and is refused."""
    _check_kind(kind, normalized)
    if normalized == "trace":
        raise ValueError("normalized: 'trace' needs a fixed training set; use PathKernel (or True)")
    if isinstance(network, (Network, ConvNetwork)):
        net = network
    else:
        check_is_fitted(network)
        net = network.network_

    def kernel(A, B):
        A = _float32_rows(A, "A")
        B = _float32_rows(B, "B")
        if A.shape[0] == 0 or B.shape[0] == 0:
            return np.zeros((A.shape[0], B.shape[0]))
        return _compute(net, kind, normalized, A, B)

    kernel.__doc__ = (f"The {kind} kernel (normalized={normalized!r}) of {net!r}: "
                      "k(A, B) of shape (len(A), len(B)).")
    return kernel
