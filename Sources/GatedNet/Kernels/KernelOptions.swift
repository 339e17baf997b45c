import CKernels

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
    /// A second output that gets the transpose of the block: cols × rows, `transposed[c][r] =
    /// out[r][c]` bit for bit, written tile by tile while each tile is in cache (so a caller
    /// that needs both K(a, b) and K(b, a) makes no second pass over memory). Caller-owned,
    /// written, never read; must not overlap `out`. Not with `upperOnly`.
    public var transposed: KernelOutput?
    /// Packed hard gates of ALL na rows of xa, computed beforehand by
    /// `GatedNetwork.packedGates(_:rows:into:)` (na × `packedGateWordsPerRow` words; row r is
    /// row r of xa, so `rows` indexes them as it indexes xa), or nil to compute them. Used
    /// instead of a feature pass over the block's rows; the kernel is bit for bit the one
    /// computed without them. Path kernels base, overlap, npk and npkNormalized of a hard-gate
    /// network only, on the packed gate path; any other call throws. Caller-owned, read only
    /// during the call, not copied. A symmetric call reads these for both sides.
    public var packedGatesA: UnsafePointer<UInt64>?
    /// The same for all nb rows of xb (indexed by `cols`); nil or `packedGatesA` when symmetric.
    public var packedGatesB: UnsafePointer<UInt64>?

    /// Tests only: compute the tiles one after the other on the calling thread instead of in
    /// two parts (`fillKernelTiles`' `parallel` off), BLAS on its usual threads.
    var serialTiles = false

    public init() {}
}

/// Side length of the square tiles kernels are computed in: bounds the temporaries to a few
/// tile² buffers whatever n is.
let kernelTile = 512

/// Floats in one tile buffer for a rows × cols kernel (small kernels get small tiles).
func tileArea(_ rows: Int, _ cols: Int) -> Int { min(kernelTile, rows) * min(kernelTile, cols) }

/// The tile closure of `fillKernelTiles`: `(part, i0, ti, j0, tj, acc)` writes the kernel entries
/// of rows i0 ..< i0 + ti and columns j0 ..< j0 + tj into `acc` (row stride tj). `part` (0 or 1)
/// names the scratch to use: with `parallel`, parts 0 and 1 run at the same time.
typealias KernelTileBody = (_ part: Int, _ i0: Int, _ ti: Int, _ j0: Int, _ tj: Int,
                            _ acc: UnsafeMutablePointer<Float>) throws -> Void

/// Fill `out` (rows × cols) tile by tile through `tile`. `symmetric`: square block over the same
/// rows, so only tiles on and above the diagonal are computed and the rest mirrored (unless
/// `upperOnly`).
///
/// `parallel`: the tiles are shared between two parts (`inParallel`), each taking the next tile
/// from an atomic counter and computing it wholly; `tile` must then be safe to call from two
/// threads at once for different `part`s. BLAS runs single-threaded throughout (also when the
/// worker thread is busy and both parts run on the calling thread): OpenBLAS's threaded driver
/// splits the inner dimension differently and rounds differently, so this keeps every entry
/// independent of which part computed it and of whether a second core was available. The output
/// is bit-identical to the serial loop's when that runs single-threaded BLAS too. `progress` is
/// still called from the calling thread only, once per tile with increasing fractions (part 1's
/// tiles are reported by part 0 after its own next tile, or after both parts are done);
/// returning false stops both parts at their next tile.
/// The serial loop (`parallel` false) calls `tile` with part 0 only, BLAS as the caller set it.
/// `side`: the tiles' side (at most `kernelTile`); kernels whose entries are costly take smaller
/// tiles, so that the two parts stay balanced and progress comes often.
/// `transposed` (cols × rows, checked by `KernelOptions.block`; never with `upperOnly`) gets
/// every entry `out` gets, transposed: each tile's transpose and, for the tiles a symmetric
/// block mirrors, the tile itself, from the same `acc`, so it is `out`ᵀ bit for bit.
func fillKernelTiles(rows: Int, cols: Int, symmetric: Bool, upperOnly: Bool, out: KernelOutput,
                     transposed: KernelOutput? = nil,
                     progress: ((Double) -> Bool)?, what: String, parallel: Bool = false,
                     side: Int = kernelTile, tile: KernelTileBody) throws {
    precondition(side >= 1 && side <= kernelTile)
    precondition(transposed == nil || !upperOnly, "KernelOptions.block rejects upperOnly with transposed")
    var tiles: [(i0: Int, ti: Int, j0: Int, tj: Int)] = []
    var i0 = 0
    while i0 < rows {
        let ti = min(side, rows - i0)
        var j0 = symmetric ? i0 : 0
        while j0 < cols {
            let tj = min(side, cols - j0)
            tiles.append((i0, ti, j0, tj))
            j0 += tj
        }
        i0 += ti
    }
    let total = symmetric ? Double(rows) * Double(rows + 1) / 2 : Double(rows) * Double(cols)
    /// Entries a tile fills (one triangle of a diagonal tile of a symmetric kernel).
    func area(_ t: Int) -> Double {
        let (i0, ti, j0, tj) = tiles[t]
        return symmetric && i0 == j0 ? Double(ti) * Double(ti + 1) / 2 : Double(ti) * Double(tj)
    }
    /// Compute tile t into acc and store it (and its mirror image) into out.
    func run(_ t: Int, part: Int, acc: UnsafeMutablePointer<Float>) throws {
        let (i0, ti, j0, tj) = tiles[t]
        try tile(part, i0, ti, j0, tj, acc)
        let diagonal = symmetric && i0 == j0
        gnk_tile_store(acc, ti, tj, diagonal && upperOnly ? 1 : 0, out.pointer + i0 * out.ld + j0, out.ld)
        if symmetric && !diagonal && !upperOnly {
            gnk_tile_store_transposed(acc, ti, tj, out.pointer + j0 * out.ld + i0, out.ld)
        }
        if let t = transposed {
            gnk_tile_store_transposed(acc, ti, tj, t.pointer + j0 * t.ld + i0, t.ld)
            if symmetric && !diagonal { gnk_tile_store(acc, ti, tj, 0, t.pointer + i0 * t.ld + j0, t.ld) }
        }
    }
    func cancelled(_ done: Double) -> GatedNetError {
        .cancelled("\(what): cancelled by the progress callback at \(Int(100 * done / total))%")
    }

    if !parallel {
        let buffer = FloatBuffer(count: tileArea(rows, cols))
        var done = 0.0
        for t in tiles.indices {
            try run(t, part: 0, acc: buffer.pointer)
            done += area(t)
            if let report = progress, !report(min(done / total, 1)) { throw cancelled(done) }
        }
        return
    }

    let loop = TileLoopState(tiles: tiles.count)
    let buffers = [FloatBuffer(count: tileArea(rows, cols)), FloatBuffer(count: tileArea(rows, cols))]
    var done = 0.0  // part 0 (the calling thread) only
    var reported = 0  // part 1's tiles reported so far
    /// Report part 1's newly finished tiles; false if the callback cancelled.
    func reportWorkerTiles(_ report: (Double) -> Bool) -> Bool {
        let finished = gnk_atomic_load(loop.workerFinished)
        while reported < finished {
            done += area(loop.workerTiles[reported])
            reported += 1
            if !report(min(done / total, 1)) { return false }
        }
        return true
    }
    BLAS.singleThreaded {
        inParallel { part in
            let acc = buffers[part].pointer
            while gnk_atomic_load(loop.stop) == 0 {
                let t = gnk_atomic_fetch_add(loop.next, 1)
                guard t < tiles.count else { break }
                do {
                    try run(t, part: part, acc: acc)
                } catch {
                    if part == 0 { loop.error0 = error } else { loop.error1 = error }
                    gnk_atomic_store(loop.stop, 1)
                    break
                }
                if part == 1 {
                    loop.workerTiles[gnk_atomic_load(loop.workerFinished)] = t
                    gnk_atomic_fetch_add(loop.workerFinished, 1)
                } else if let report = progress {
                    done += area(t)
                    guard report(min(done / total, 1)) && reportWorkerTiles(report) else {
                        loop.cancelled = true
                        gnk_atomic_store(loop.stop, 1)
                        break
                    }
                }
            }
        }
    }
    if let error = loop.error0 ?? loop.error1 { throw error }
    if loop.cancelled { throw cancelled(done) }
    if let report = progress, !reportWorkerTiles(report) { throw cancelled(done) }
}

/// State the two parts of a parallel `fillKernelTiles` share. Counters are C longs updated
/// through gnk_atomic_*; `workerTiles[k]` is the k-th tile part 1 finished, written before
/// `workerFinished` is incremented past k; `error0`, `error1` and `cancelled` are each written by one part and
/// read after both have returned.
final class TileLoopState {
    let counters: UnsafeMutablePointer<CLong>
    var next: UnsafeMutablePointer<CLong> { counters }
    var stop: UnsafeMutablePointer<CLong> { counters + 1 }
    var workerFinished: UnsafeMutablePointer<CLong> { counters + 2 }
    let workerTiles: UnsafeMutablePointer<Int>
    var error0: Error?, error1: Error?
    var cancelled = false

    init(tiles: Int) {
        counters = .allocate(capacity: 3)
        counters.initialize(repeating: 0, count: 3)
        workerTiles = .allocate(capacity: tiles)
        workerTiles.initialize(repeating: 0, count: tiles)
    }
    deinit { counters.deallocate(); workerTiles.deallocate() }
}

extension KernelOptions {
    /// The rows of xa and columns (rows of xb) this block asks for, checked against na × nb
    /// and the output `out` must have (the same rule for FC and conv kernels), and `transposed`
    /// (if set) against the transposed shape, `upperOnly` and `out`'s memory.
    func block(na: Int, nb: Int, out: KernelOutput) throws -> (rows: Range<Int>, cols: Range<Int>) {
        let rows = self.rows ?? 0..<na
        let cols = self.cols ?? 0..<nb
        guard rows.lowerBound >= 0, rows.upperBound <= na, !rows.isEmpty else {
            throw GatedNetError.invalidArgument("rows: block \(rows.lowerBound) ..< \(rows.upperBound) is empty or outside 0 ..< \(na)")
        }
        guard cols.lowerBound >= 0, cols.upperBound <= nb, !cols.isEmpty else {
            throw GatedNetError.invalidArgument("cols: block \(cols.lowerBound) ..< \(cols.upperBound) is empty or outside 0 ..< \(nb)")
        }
        guard out.rows == rows.count, out.cols == cols.count, out.ld >= out.cols else {
            throw GatedNetError.shape("out: \(out.rows) x \(out.cols) with ld \(out.ld), need \(rows.count) x \(cols.count) with ld >= \(cols.count)")
        }
        if let t = transposed {
            guard t.rows == cols.count, t.cols == rows.count, t.ld >= t.cols else {
                throw GatedNetError.shape("out_transposed: \(t.rows) x \(t.cols) with ld \(t.ld), need \(cols.count) x \(rows.count) (the block transposed) with ld >= \(rows.count)")
            }
            guard !upperOnly else {
                throw GatedNetError.invalidArgument("out_transposed: not with upper_only (the transposed output would be the lower triangle of a block that is not written); compute the whole block")
            }
            guard !out.overlaps(t) else {
                throw GatedNetError.invalidArgument("out_transposed: overlaps out; the two outputs must be separate memory")
            }
        }
        return (rows, cols)
    }
}
