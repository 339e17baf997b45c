import CKernels
import Glibc

/// The kernels of MATH.md §4 for a fully connected DGN, between two batches.
public enum KernelKind: Equatable, Sendable {
    /// Σ = Xa Xbᵀ of the value input (d_in · 11ᵀ for the all-ones input).
    case inputGram
    /// B_l = Ga_l Gb_lᵀ / w_l of feature layer `layer`.
    case base(layer: Int)
    /// Λ = Π_l Ga_l Gb_lᵀ over all hidden layers.
    case overlap
    /// H = Σ ⊙ Λ.
    case npk
    /// Σ ⊙ Π_l B_l.
    case npkNormalized
}

/// A caller-owned output matrix: rows × cols with row stride `ld`.
public struct KernelOutput {
    public let pointer: UnsafeMutablePointer<Float>
    public let rows: Int
    public let cols: Int
    public let ld: Int
    public init(pointer: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int) {
        self.pointer = pointer; self.rows = rows; self.cols = cols; self.ld = ld
    }

    /// Elements the matrix spans from `pointer`: (rows − 1)·ld + cols (0 when empty).
    var span: Int { rows < 1 || cols < 1 ? 0 : (rows - 1) * ld + cols }

    /// True when the element ranges the two matrices span share an address.
    func overlaps(_ other: KernelOutput) -> Bool {
        let a = UInt(bitPattern: pointer), b = UInt(bitPattern: other.pointer)
        let size = UInt(MemoryLayout<Float>.stride)
        return a < b + UInt(other.span) * size && b < a + UInt(span) * size
    }
}

extension GatedNetwork {
    /// Gates of every hidden layer for `rows` rows of x, one rows × w_l buffer per layer.
    public func allGates(_ x: UnsafePointer<Float>, rows: Int) -> [FloatBuffer] {
        let out = hiddenWidths.map { FloatBuffer(count: rows * $0) }
        let ws = workspace(rows: min(evaluationChunk, max(rows, 1)))
        forEachChunk(rows: rows, chunk: ws.capacity) { start, n in
            runFeature(x + start * inputSize, rows: n, ws: ws, gates: true)
            for (l, w) in hiddenWidths.enumerated() {
                (out[l].pointer + start * w).update(from: ws.gates[l].pointer, count: n * w)
            }
        }
        return out
    }

    /// Gates of one hidden layer (feature numbering) for `rows` rows into out (rows × w_l).
    public func gates(_ x: UnsafePointer<Float>, rows: Int, layer: Int, into out: UnsafeMutablePointer<Float>) throws {
        guard layer >= 0 && layer < hiddenCount else {
            throw GatedNetError.invalidArgument("layer: got \(layer), need 0 ... \(hiddenCount - 1)")
        }
        let w = hiddenWidths[layer]
        let ws = workspace(rows: min(evaluationChunk, max(rows, 1)))
        forEachChunk(rows: rows, chunk: ws.capacity) { start, n in
            runFeature(x + start * inputSize, rows: n, ws: ws, gates: true)
            (out + start * w).update(from: ws.gates[layer].pointer, count: n * w)
        }
    }

    /// Bit-packed hard gates of one layer. Throws `.unsupported` for soft gates.
    public func gateMask(_ x: UnsafePointer<Float>, rows: Int, layer: Int) throws -> GateMask {
        guard hasHardGates else { throw GatedNetError.unsupported("packed gates: this network has soft gates") }
        guard layer >= 0 && layer < hiddenCount else {
            throw GatedNetError.invalidArgument("layer: got \(layer), need 0 ... \(hiddenCount - 1)")
        }
        let g = FloatBuffer(count: rows * hiddenWidths[layer])
        try gates(x, rows: rows, layer: layer, into: g.pointer)
        return GateMask(gates: g.pointer, rows: rows, width: hiddenWidths[layer])
    }

    /// True when gates are 0/1 (hard gates, or a tied ReLU net).
    var hasHardGates: Bool { spec.gateKind == .hard || tied }

    /// Kernel of `kind` between xa (na rows) and xb (nb rows) into `out` (na × nb).
    /// When `symmetric` (xb is xa), only tiles on and above the diagonal are computed and
    /// mirrored. Cost O(na·nb·(d_in + Σ_l w_l)); hard gates go through popcount on bit-packed
    /// gates (n·Σ_l w_l / 8 bytes), soft gates through BLAS.
    public func kernel(_ kind: KernelKind, xa: UnsafePointer<Float>, na: Int, xb: UnsafePointer<Float>, nb: Int,
                       symmetric: Bool, out: KernelOutput) throws {
        try kernel(.path(kind), xa: xa, na: na, xb: xb, nb: nb, symmetric: symmetric, out: out, options: KernelOptions())
    }

    /// Any kernel of `KernelChoice` between xa (na rows) and xb (nb rows), for the block
    /// `options.rows` × `options.cols` (default: everything) into `out`, whose rows and cols
    /// must equal the block's. `symmetric` says xb is xa: a block with equal row and column
    /// ranges then computes one triangle and mirrors it. Peak extra memory: the gates (or NTK
    /// back-propagated vectors) of the block's rows and columns, and a few tile² buffers.
    public func kernel(_ choice: KernelChoice, xa: UnsafePointer<Float>, na: Int, xb: UnsafePointer<Float>, nb: Int,
                       symmetric: Bool, out: KernelOutput, options: KernelOptions) throws {
        let (rows, cols) = try options.block(na: na, nb: nb, out: out)
        let (gatesA, gatesB) = try givenGates(choice, options, symmetric: symmetric, rows: rows, cols: cols)
        let block = KernelBlock(a: xa + rows.lowerBound * inputSize, rowsA: rows.count,
                                b: xb + cols.lowerBound * inputSize, rowsB: cols.count,
                                symmetric: symmetric && rows == cols, out: out, options: options,
                                gatesA: gatesA, gatesB: gatesB)
        try requireMemory(try kernelScratchBytes(choice, block, traceRows: na), for: "kernel scratch")
        switch choice {
        case .path(let kind):
            try pathKernel(kind, block)
        case .npkTraceNormalized:
            let scales = try npkTraceScales(xa, rows: na)
            try pathKernel(.npk, block, traceScales: scales)
        case .tangent(let part):
            try tangentKernel(part, block)
        case .npkLimit, .ntkLimit:
            try limitKernel(choice == .ntkLimit, block)
        }
    }

    /// The caller's packed gates (`options.packedGatesA` / `B`) of the block's first row and
    /// column, after checking that this call may use them: a path kernel on packed hard gates
    /// (base, overlap, npk, npkNormalized), for a symmetric call B nil or A, and no bit set above
    /// a layer's width in the rows the block reads (it would change the popcounts).
    func givenGates(_ choice: KernelChoice, _ options: KernelOptions, symmetric: Bool,
                    rows: Range<Int>, cols: Range<Int>) throws -> (UnsafePointer<UInt64>?, UnsafePointer<UInt64>?) {
        guard options.packedGatesA != nil || options.packedGatesB != nil else { return (nil, nil) }
        let which = options.packedGatesA != nil ? "gates_a" : "gates_b"
        switch choice {
        case .path(.base), .path(.overlap), .path(.npk), .path(.npkNormalized): break
        default:
            throw GatedNetError.invalidArgument("\(which): given packed gates are taken by the path kernels base, overlap, npk and npk_normalized only (on the packed gate path); this kind computes what it needs itself")
        }
        guard hasHardGates else {
            throw GatedNetError.unsupported("\(which): given packed gates need hard gates; this network has soft gates")
        }
        guard options.gatePath != .float else {
            throw GatedNetError.invalidArgument("\(which): given packed gates are used on the packed gate path; gate_path is float")
        }
        if symmetric, let b = options.packedGatesB, b != options.packedGatesA {
            throw GatedNetError.invalidArgument("gates_b: xb is xa (a symmetric call), so the gates of xa (gates_a) serve both sides; gates_b must be NULL or equal gates_a")
        }
        let a = options.packedGatesA
        let b = symmetric ? a : options.packedGatesB
        let (offsets, words, stride) = PackedGateRows.layout(hiddenWidths)
        // Bits above each layer's width in its last word must be 0.
        let padding: [(layer: Int, word: Int, mask: UInt64)] = hiddenWidths.indices.compactMap { l in
            let used = hiddenWidths[l] % 64
            return used == 0 ? nil : (l, offsets[l] + words[l] - 1, ~UInt64(0) << UInt64(used))
        }
        func check(_ p: UnsafePointer<UInt64>?, _ range: Range<Int>, _ name: String, _ x: String) throws {
            guard let p else { return }
            for r in range {
                let row = p + r * stride
                for pad in padding where row[pad.word] & pad.mask != 0 {
                    throw GatedNetError.invalidArgument("\(name): row \(r) (of \(x)), layer \(pad.layer): bits set above the layer's width \(hiddenWidths[pad.layer]) in its last word (word \(pad.word) of the row); packed gates must come from packed_gates / gn_gates_packed_all")
                }
            }
        }
        try check(a, rows, "gates_a", "xa")
        if symmetric {
            if cols != rows { try check(a, cols, "gates_a", "xa") }
        } else {
            try check(b, cols, "gates_b", "xb")
        }
        return (a.map { $0 + rows.lowerBound * stride }, b.map { $0 + cols.lowerBound * stride })
    }

    /// Bytes of the per-row scratch a kernel call allocates (float gates of its rows, the NTK
    /// factors, the trace pass over xa), as documented in the header: the number the memory
    /// check refuses before anything of a caller-sized block is allocated.
    func kernelScratchBytes(_ choice: KernelChoice, _ k: KernelBlock, traceRows: Int) throws -> Int {
        let rows = k.rowsA + (k.symmetric ? 0 : k.rowsB)
        let widths = hiddenWidths.reduce(0, +)
        switch choice {
        case .path, .npkTraceNormalized:
            let trace = choice == .npkTraceNormalized ? traceRows : 0
            return try checkedCount(rows + trace, widths, 4, what: "kernel scratch")
        case .tangent:
            let fanIns = (0...hiddenCount).reduce(0) { $0 + valueLayer($1).fanIn }
            let perRow = try checkedCount(2, fanIns + outputSize * widths, what: "kernel scratch")
            return try checkedCount(rows, perRow, 4, what: "kernel scratch")
        case .npkLimit, .ntkLimit:
            return try checkedCount(rows, inputSize, 8, what: "kernel scratch")
        }
    }

    /// Σ ⊙ Π_l (Ga_l Gb_lᵀ · s_l) and its relatives over the block. `traceScales` (with
    /// `.npk`): the trace-normalised NPK, each layer's factor scaled by its `layers` entry and
    /// the product by `final`, so that no raw H is formed. The raw `.npk` and `.overlap` throw
    /// `.notFinite` for an entry that passes float's range, naming the normalised kinds.
    func pathKernel(_ kind: KernelKind, _ k: KernelBlock, traceScales: TraceScales? = nil) throws {
        let layers: [Int]
        switch kind {
        case .inputGram: layers = []
        case .base(let l):
            guard (0..<hiddenCount).contains(l) else {
                throw GatedNetError.invalidArgument("layer: got \(l), need 0 ... \(hiddenCount - 1)")
            }
            layers = [l]
        default: layers = Array(0..<hiddenCount)
        }
        let usesInput = kind == .inputGram || kind == .npk || kind == .npkNormalized
        let normalise: Bool
        if case .base = kind { normalise = true } else { normalise = kind == .npkNormalized }
        if k.options.gatePath == .packed && !hasHardGates {
            throw GatedNetError.unsupported("gate_path: packed gates need hard gates; this network has soft gates")
        }
        let packed = !layers.isEmpty && hasHardGates && k.options.gatePath != .float
        let d = inputSize
        let ones = spec.valueInput == .ones
        let layerScale = traceScales?.layers ?? hiddenWidths.map { normalise ? 1 / Float($0) : 1 }
        let scaled = normalise || traceScales != nil
        let raw = traceScales == nil && (kind == .npk || kind == .overlap)
        let fa = packed || layers.isEmpty ? [] : allGates(k.a, rows: k.rowsA)
        let fb = packed || layers.isEmpty ? [] : (k.symmetric ? fa : allGates(k.b, rows: k.rowsB))
        // Given gates (checked by `givenGates`: set only when `packed`) replace the feature pass.
        let widths = hiddenWidths
        let pa = packed ? k.gatesA.map { PackedGateRows(borrowing: $0, rows: k.rowsA, widths: widths) }
            ?? packedGates(k.a, rows: k.rowsA) : nil
        let pb = packed ? (k.symmetric ? pa : k.gatesB.map { PackedGateRows(borrowing: $0, rows: k.rowsB, widths: widths) }
            ?? packedGates(k.b, rows: k.rowsB)) : nil
        // Two parts compute tiles at once (fillKernelTiles' parallel loop), each with its own
        // scratch; the popcount of a tile then runs on its part's thread alone.
        let tmp = (0..<2).map { _ in FloatBuffer(count: packed || layers.isEmpty ? 0 : tileArea(k.rowsA, k.rowsB)) }
        let scratch = (0..<2).map { _ in OverlapScratch(stride: pa?.stride ?? 0, parts: 1) }
        try fillKernelTiles(rows: k.rowsA, cols: k.rowsB, symmetric: k.symmetric, upperOnly: k.options.upperOnly,
                            out: k.out, transposed: k.options.transposed, progress: k.options.progress, what: "kernel", parallel: !k.options.serialTiles) { part, i0, ti, j0, tj, acc in
            if usesInput && !ones {
                BLAS.gemm(transA: false, transB: true, m: ti, n: tj, k: d, a: k.a + i0 * d, lda: d,
                          b: k.b + j0 * d, ldb: d, c: acc, ldc: tj)
            } else {
                acc.update(repeating: usesInput ? Float(d) : 1, count: ti * tj)
            }
            if let pa, let pb {
                overlapProduct(pa, i0, ti, pb, j0, tj, layers: layers, scales: scaled ? layerScale : nil, acc: acc,
                               scratch: scratch[part])
            } else {
                let t = tmp[part].pointer
                for l in layers {
                    let w = hiddenWidths[l]
                    BLAS.gemm(transA: false, transB: true, m: ti, n: tj, k: w, a: fa[l].pointer + i0 * w, lda: w,
                              b: fb[l].pointer + j0 * w, ldb: w, c: t, ldc: tj)
                    if scaled {
                        let s = layerScale[l]
                        for i in 0..<(ti * tj) { acc[i] *= t[i] * s }
                    } else {
                        for i in 0..<(ti * tj) { acc[i] *= t[i] }
                    }
                }
            }
            if let s = traceScales?.final {
                for i in 0..<(ti * tj) { acc[i] *= s }
            }
            if raw, let bad = (0..<(ti * tj)).first(where: { !acc[$0].isFinite }) {
                throw GatedNetError.notFinite(
                    "kernel: the raw \(kind == .npk ? "npk" : "overlap") of rows \(i0 + bad / tj) and \(j0 + bad % tj) of the block "
                    + "overflows float (3.4e38; the diagonal is about |x|^2 (w/2)^L for L hidden layers of width w); "
                    + "use a normalised kind instead: the per-layer normalised npk (npkNormalized, GN_KERNEL_NPK_NORMALIZED) "
                    + "or the trace-normalised npk (npkTraceNormalized, GN_KERNEL_NPK_TRACE_NORMALIZED)")
            }
        }
    }

    /// The scales that give H / trace H(x, x) over the rows of x without forming H: layer l's
    /// factor Ga_l Gb_lᵀ is divided by m_l, the mean over the rows of Σ_i G_l(x_r)_i², which
    /// keeps every running product near the size of its diagonal, and the product by
    /// trace / Π_l m_l = Σ_r σ_r Π_l (g_lr / m_l), summed in log scale (σ_r = ‖xv_r‖², g_lr = Σ_i
    /// G_l(x_r)_i²). In double; throws `.invalidArgument` for a zero trace.
    func npkTraceScales(_ x: UnsafePointer<Float>, rows: Int) throws -> TraceScales {
        let ws = workspace(rows: min(evaluationChunk, max(rows, 1)))
        let d = inputSize
        var logTerms = [Double](repeating: 0, count: rows)  // log σ_r + Σ_l log g_lr
        var sums = [Double](repeating: 0, count: hiddenCount)  // Σ_r g_lr
        forEachChunk(rows: rows, chunk: ws.capacity) { start, n in
            runFeature(x + start * d, rows: n, ws: ws, gates: true)
            for r in 0..<n {
                var v: Double
                if spec.valueInput == .ones {
                    v = Double(d)
                } else {
                    v = 0
                    let xr = x + (start + r) * d
                    for i in 0..<d { v += Double(xr[i]) * Double(xr[i]) }
                }
                var t = log(v)
                for (l, w) in hiddenWidths.enumerated() {
                    let g = ws.gates[l].pointer + r * w
                    var s = 0.0
                    for i in 0..<w { s += Double(g[i]) * Double(g[i]) }
                    sums[l] += s
                    t += log(s)
                }
                logTerms[start + r] = t
            }
        }
        guard sums.allSatisfy({ $0 > 0 }) else {
            throw GatedNetError.invalidArgument("xa: trace of the npk is 0 (a layer has all gates off for every row); the trace-normalised npk needs a positive trace")
        }
        let logMeans = sums.map { log($0 / Double(rows)) }
        let logProduct = logMeans.reduce(0, +)
        // log(trace / Π_l m_l), by log-sum-exp over the rows that contribute.
        let shifted = logTerms.map { $0 - logProduct }
        let top = shifted.max() ?? -.infinity
        guard top.isFinite else {
            throw GatedNetError.invalidArgument("xa: trace of the npk is 0 (every row has a zero input or a layer with all gates off); the trace-normalised npk needs a positive trace")
        }
        let logTrace = top + log(shifted.reduce(0) { $0 + exp($1 - top) })
        return TraceScales(layers: logMeans.map { Float(exp(-$0)) }, final: Float(exp(-logTrace)))
    }
}

/// Per-layer and final scales of the trace-normalised NPK (`npkTraceScales`).
struct TraceScales {
    let layers: [Float]
    let final: Float
}

/// The block a kernel call fills: rows of a against rows of b, into out.
struct KernelBlock {
    let a: UnsafePointer<Float>
    let rowsA: Int
    let b: UnsafePointer<Float>
    let rowsB: Int
    /// a and b are the same rows: compute one triangle.
    let symmetric: Bool
    let out: KernelOutput
    let options: KernelOptions
    /// Caller-given packed gates of row 0 of a and of b (`KernelOptions.packedGatesA` / `B`
    /// offset to the block), or nil to compute them.
    var gatesA: UnsafePointer<UInt64>? = nil
    var gatesB: UnsafePointer<UInt64>? = nil
}

/// acc[i, j] *= Π_{l ∈ layers} popcount(Ga_l[i0+i] & Gb_l[j0+j]) (· scales[l]), in the same
/// float operation order as the BLAS path, so both give bit-identical results for hard gates.
/// `scratch` holds the transposed B tile (kernelTile × stride words) and the counts.
func overlapProduct(_ pa: PackedGateRows, _ i0: Int, _ ti: Int, _ pb: PackedGateRows, _ j0: Int, _ tj: Int,
                    layers: [Int], scales: [Float]?, acc: UnsafeMutablePointer<Float>, scratch: OverlapScratch) {
    let stride = pa.stride
    let bt = scratch.transposed
    for j in 0..<tj {
        let src = pb.bits + (j0 + j) * stride
        for w in 0..<stride { bt[w * tj + j] = src[w] }
    }
    let begin = layers.map { pa.offsets[$0] }, end = layers.map { pa.offsets[$0] + pa.words[$0] }
    let s = scales.map { sc in layers.map { sc[$0] } }
    // Rows split over the cores; each part has its own counts scratch.
    let parts = min(scratch.parts, max(1, ti / 32))
    begin.withUnsafeBufferPointer { b in
        end.withUnsafeBufferPointer { e in
            (s ?? []).withUnsafeBufferPointer { sp in
                let scalesPointer = s == nil ? nil : sp.baseAddress
                let run = { (part: Int) in
                    let r0 = ti * part / parts, r1 = ti * (part + 1) / parts
                    gnk_overlap_tile(pa.bits + (i0 + r0) * stride, stride, bt, r1 - r0, tj, b.baseAddress, e.baseAddress,
                                     layers.count, scalesPointer, acc + r0 * tj, scratch.counts + part * kernelTile)
                }
                parallelFor(parts, run)
            }
        }
    }
}

/// Scratch of `overlapProduct` for gate rows of `stride` words.
final class OverlapScratch {
    let transposed: UnsafeMutablePointer<UInt64>
    let counts: UnsafeMutablePointer<UInt32>
    /// Threads the popcount of one tile runs on: `parts`, or (nil) the online processors, at
    /// most 8.
    let parts: Int
    init(stride: Int, parts: Int? = nil) {
        transposed = .allocate(capacity: max(kernelTile * stride, 1))
        self.parts = parts ?? max(1, min(8, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        counts = .allocate(capacity: kernelTile * self.parts)
    }
    deinit { transposed.deallocate(); counts.deallocate() }
}

/// Run body(0 ..< parts) with parts − 1 extra POSIX threads (joined before returning); falls
/// back to the calling thread if a thread cannot be created. Plain pthreads rather than
/// Dispatch, so a process may still fork after computing a kernel.
func parallelFor(_ parts: Int, _ body: (Int) -> Void) {
    if parts <= 1 { body(0); return }
    withoutActuallyEscaping(body) { body in
        final class Job { let body: (Int) -> Void; let part: Int; init(_ b: @escaping (Int) -> Void, _ p: Int) { body = b; part = p } }
        var threads: [(pthread_t, Unmanaged<Job>)] = []
        var inline: [Int] = []
        for part in 1..<parts {
            let job = Unmanaged.passRetained(Job(body, part))
            var t = pthread_t()
            let rc = pthread_create(&t, nil, { raw in
                let job = Unmanaged<Job>.fromOpaque(raw!).takeUnretainedValue()
                job.body(job.part)
                return nil
            }, job.toOpaque())
            if rc == 0 { threads.append((t, job)) } else { job.release(); inline.append(part) }
        }
        body(0)
        for p in inline { body(p) }
        for (t, job) in threads { pthread_join(t, nil); job.release() }
    }
}
