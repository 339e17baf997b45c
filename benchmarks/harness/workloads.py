"""Workload definitions shared by the orchestrator and the workers: architectures, flop
counts and the GEMM shapes each hot path runs (for the fraction-of-sgemm-peak column)."""

D_IN, WIDTH, DEPTH_HIDDEN, CLASSES = 784, 128, 5, 10
FC_SIZES = [D_IN] + [WIDTH] * DEPTH_HIDDEN + [CLASSES]
REGIMES = {  # harness name -> (gatednet regime preset, description)
    "relu": ("relu", "ReLU net (tied DGN)"),
    "fixed_hard": ("fixed_random_ii", "DGN, frozen random hard gates"),
    "decoupled_soft": ("decoupled", "DGN, decoupled soft gates beta=10"),
}


def _layers(sizes):
    return list(zip(sizes[:-1], sizes[1:]))


def train_shapes(regime, batch):
    """(m, n, k) GEMMs of one training step (forward, weight grads, input grads)."""
    value = _layers(FC_SIZES)
    feature = _layers(FC_SIZES[:-1])  # hidden layers only (no head)
    shapes = []

    def fwd_bwd(layers, backward):
        for i, (fi, fo) in enumerate(layers):
            shapes.append((batch, fo, fi))
            if backward:
                shapes.append((fo, fi, batch))
                if i > 0:
                    shapes.append((batch, fi, fo))

    if regime == "relu":
        fwd_bwd(value, True)
    elif regime == "fixed_hard":
        fwd_bwd(feature, False)
        fwd_bwd(value, True)
    elif regime == "decoupled_soft":
        fwd_bwd(feature, True)
        fwd_bwd(value, True)
    else:
        raise ValueError(regime)
    return shapes


def infer_shapes(regime, n):
    shapes = [(n, fo, fi) for fi, fo in _layers(FC_SIZES)]
    if regime != "relu":
        shapes += [(n, fo, fi) for fi, fo in _layers(FC_SIZES[:-1])]
    return shapes


def flops(shapes):
    return sum(2.0 * m * n * k for m, n, k in shapes)


def npk_flops(n):
    """Useful flops of a symmetric FC NPK: gates + one triangle of X Xᵀ and the G Gᵀ."""
    gates = flops(infer_shapes("fixed_hard", n)[len(FC_SIZES) - 1:])
    pairs = n * (n + 1) / 2
    return gates + pairs * 2.0 * (D_IN + DEPTH_HIDDEN * WIDTH)


def npk_ref_shapes(n):
    t = min(n, 2048)
    return [(t, t, D_IN)] + [(t, t, WIDTH)] * DEPTH_HIDDEN


GCONV_CHANNELS, GCONV_DENSE, IMAGE = (64, 64, 128, 128), 256, 28


def conv_train_shapes(regime, batch):
    """im2col GEMMs of one GCONV training step (3x3 same convs on 28x28, GAP, dense 256,
    output): forward, weight gradients, input gradients (not into the image)."""
    P = IMAGE * IMAGE
    layers, c_in = [], 1
    for c in GCONV_CHANNELS:
        layers.append((batch * P, c, 9 * c_in))
        c_in = c
    dense = [(batch, GCONV_DENSE, c_in)]
    out = [(batch, CLASSES, GCONV_DENSE)]
    shapes = []

    def fwd_bwd(ls, backward):
        for i, (m, n, k) in enumerate(ls):
            shapes.append((m, n, k))
            if backward:
                shapes.append((n, k, m))
                if i > 0:
                    shapes.append((m, k, n))
    if regime in ("fixed_hard", "decoupled_soft"):
        fwd_bwd(layers + dense, regime == "decoupled_soft")
    fwd_bwd(layers + dense + out, True)
    return shapes


def ntk_empirical_flops(n):
    """Useful flops of the layer-wise empirical NTK of the ReLU MLP summed over the outputs,
    one triangle: per entry 2·Σ_l (fan_in_l + K·w_l) (the Z Gram and the Δ Gram of each layer;
    the output layer has no Δ Gram)."""
    fans = FC_SIZES[:-1]
    per_entry = 2.0 * (sum(fans) + CLASSES * WIDTH * DEPTH_HIDDEN)
    return n * (n + 1) / 2 * per_entry


def ntk_ref_shapes(n):
    """The GEMMs of ntk_empirical_flops at a square size: Z Grams (k = fan_in) and Δ Grams
    (k = K·w)."""
    t = min(n, 2048)
    return [(t, t, f) for f in FC_SIZES[:-1]] + [(t, t, CLASSES * WIDTH)] * DEPTH_HIDDEN
