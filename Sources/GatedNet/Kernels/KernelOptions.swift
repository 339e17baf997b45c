/// Every kernel gatednet computes between two batches: the path kernels of `KernelKind`, the
/// trace-normalised NPK, the layer-wise empirical NTK and the infinite-width limits.
public enum KernelChoice: Equatable, Sendable {
    /// One of the path kernels of MATH.md §4 (Σ, B_l, Λ, H, Σ ⊙ Π B_l).
    case path(KernelKind)
    /// Ĥ = H / trace(H(xa, xa)): the trace is over all rows of xa, whatever block is asked for.
    case npkTraceNormalized
    /// A part of the empirical NTK (see `TangentPart`).
    case tangent(TangentPart)
    /// Infinite-width normalised NPK of random hard gates: Σ ⊙ Π_l (π − θ_{l−1}) / (2π), the
    /// angles following the arc-cosine recursion (ReLU feature net) or staying θ_0 (linear).
    case npkLimit
    /// Infinite-width NTK (NTK parametrisation) of the ReLU network of this shape and init
    /// scale s: Σ_l Λ_l Π_{m ≥ l} Σ̇_m (paper 002 eq. 7, Arora et al. 2019), per output.
    case ntkLimit
}

/// Parts of the empirical NTK K(x, x') = Σ_θ ∂ŷ(x)/∂θ · ∂ŷ(x')/∂θ, all layer-wise:
/// K = Σ_l (Δ_l Δ_lᵀ) ⊙ (Z_{l−1} Z_{l−1}ᵀ (+ 1 with biases)).
public enum TangentPart: Equatable, Sendable {
    /// K^v over the value weights (for a tied ReLU net: its single weight set).
    case value
    /// K^f over the feature (gating) weights; soft gates only (hard gates pass no gradient).
    case feature
    /// K^cross = Σ_l ⟨∂ŷ(x)/∂Wv_l, ∂ŷ(x')/∂Wf_l⟩ + ⟨∂ŷ(x)/∂Wf_l, ∂ŷ(x')/∂Wv_l⟩ over the
    /// hidden layers: the extra term when Θv and Θf are tied (paper 002 Table 1), so that the
    /// NTK of the tied network is K^v + K^f + K^cross. Soft gates, untied networks only.
    case cross
    /// The NTK over the weights training changes: K^v (value net not frozen) + K^f (soft
    /// gates, feature net not frozen); for a tied ReLU net its whole gradient Gram.
    case full
}

/// Which gate representation the path kernels use.
public enum GatePath: Int, Sendable {
    /// Bit-packed with popcount for hard gates, floats through BLAS for soft gates.
    case auto = 0
    case float = 1
    /// Hard gates only.
    case packed = 2
}

/// How a kernel call computes: the block, the gate path, the NTK output and scaling, progress.
public struct KernelOptions {
    /// Rows of xa to compute (nil = all); the output has `rows.count` rows.
    public var rows: Range<Int>?
    /// Rows of xb (columns of the kernel) to compute (nil = all).
    public var cols: Range<Int>?
    /// For a symmetric kernel whose block has equal row and column ranges: write only the
    /// upper triangle (entries with column >= row), leaving the rest untouched.
    public var upperOnly = false
    public var gatePath = GatePath.auto
    /// NTK kinds: the output unit, or nil for the sum (trace) over all outputs.
    public var output: Int?
    /// NTK kinds: weight the gradient Gram of a weight layer by s²/fan_in (s = init_scale), the
    /// NTK parametrisation whose infinite-width limit is `.ntkLimit`. Bias terms are unweighted.
    public var ntkScaling = false
    /// Called after each tile with the fraction done; return false to cancel (the call then
    /// throws `.cancelled` and the output is partly written).
    public var progress: ((Double) -> Bool)?

    public init() {}
}

/// Side length of the square tiles kernels are computed in: bounds the temporaries to a few
/// tile² buffers whatever n is.
let kernelTile = 512

/// Floats in one tile buffer for a rows × cols kernel (small kernels get small tiles).
func tileArea(_ rows: Int, _ cols: Int) -> Int { min(kernelTile, rows) * min(kernelTile, cols) }

/// Fill `out` (rows × cols) tile by tile through `tile(i0, ti, j0, tj, acc)`, which writes the
/// ti × tj tile into `acc` (row stride tj). `symmetric`: square block over the same rows, so
/// only tiles on and above the diagonal are computed and the rest mirrored (unless `upperOnly`).
func fillKernelTiles(rows: Int, cols: Int, symmetric: Bool, upperOnly: Bool, out: KernelOutput,
                     progress: ((Double) -> Bool)?, what: String,
                     tile: (Int, Int, Int, Int, UnsafeMutablePointer<Float>) throws -> Void) throws {
    let buffer = FloatBuffer(count: tileArea(rows, cols))
    let acc = buffer.pointer
    let total = symmetric ? Double(rows) * Double(rows + 1) / 2 : Double(rows) * Double(cols)
    var done = 0.0
    var i0 = 0
    while i0 < rows {
        let ti = min(kernelTile, rows - i0)
        var j0 = symmetric ? i0 : 0
        while j0 < cols {
            let tj = min(kernelTile, cols - j0)
            try tile(i0, ti, j0, tj, acc)
            let diagonal = symmetric && i0 == j0
            for r in 0..<ti {
                let first = diagonal && upperOnly ? r : 0
                (out.pointer + (i0 + r) * out.ld + j0 + first).update(from: acc + r * tj + first, count: tj - first)
            }
            if symmetric && !diagonal && !upperOnly {
                for c in 0..<tj {
                    let dst = out.pointer + (j0 + c) * out.ld + i0
                    for r in 0..<ti { dst[r] = acc[r * tj + c] }
                }
            }
            done += diagonal ? Double(ti) * Double(ti + 1) / 2 : Double(ti) * Double(tj)
            if let report = progress, !report(min(done / total, 1)) {
                throw GatedNetError.cancelled("\(what): cancelled by the progress callback at \(Int(100 * done / total))%")
            }
            j0 += tj
        }
        i0 += ti
    }
}
