import CKernels

/// Kernels of a conv / residual DGN (MATH.md §4, "Convolution with global average pooling" and
/// "Residual networks").
public enum ConvKernelKind: Int, Sendable {
    /// H = ⟨ψ_x, ψ_x'⟩, the neural path kernel of the value net with its (wired) gates.
    case npk = 0
    /// The same recursion started from S_0 ≡ 1: the gates' share of H (the input Gram replaced
    /// by all-ones), identical for value input x and ones.
    case gateOverlap = 1
    /// Σ = ⟨xv_a, xv_b⟩ over all input entries (C·H·W for the all-ones input).
    case inputGram = 2
    /// The NPK with every layer a path passes through contributing a mean over its units
    /// instead of a sum: each gated layer's gate Gram is divided by its channels (conv) or
    /// width (dense), and a projection skip contributes 1 instead of its output channels (the
    /// analogue of Σ ⊙ Π_l B_l). Without residual blocks this is H / Π_l C_l.
    case npkNormalized = 3
    /// H / trace H(xa, xa), the trace over all rows of xa; H and the trace in double precision.
    case npkTraceNormalized = 4
}

/// Side of the tiles the conv path kernels are computed in: one entry costs a P×C×P product
/// per layer, so small tiles keep both cores busy to the end and progress frequent.
let convKernelTile = 16

/// Per-core scratch of the conv path kernel: the input state S_0 and a float Gram matrix.
private final class PairScratch {
    var s0: [Double]
    let gram: FloatBuffer
    init(gram: Int, positions: Int) {
        s0 = [Double](repeating: 1, count: positions * positions)
        self.gram = FloatBuffer(count: gram)
    }
}

/// The kernel recursion's state for one pair: a P×P position matrix before pooling, a scalar
/// after it.
private enum PairState {
    case spatial([Double], positions: Int)
    case scalar(Double)
}

extension ConvNetwork {
    /// For each output position and kernel offset of a conv, the input position it reads
    /// (−1 for zero padding outside the input).
    private static func readTable(_ g: ConvGeometry) -> [Int32] {
        let k = g.kernel, h = g.input.height, w = g.input.width
        var t: [Int32] = []
        t.reserveCapacity(g.output.positions * k * k)
        for oy in 0..<g.output.height {
            for ox in 0..<g.output.width {
                for ky in 0..<k {
                    for kx in 0..<k {
                        var iy = oy * g.stride + ky - g.pad, ix = ox * g.stride + kx - g.pad
                        if g.circular { iy = ((iy % h) + h) % h; ix = ((ix % w) + w) % w }
                        t.append(iy >= 0 && iy < h && ix >= 0 && ix < w ? Int32(iy * w + ix) : -1)
                    }
                }
            }
        }
        return t
    }

    /// Throws `.unsupported` unless the path kernel recursion covers this architecture.
    public func checkPathKernelSupport() throws {
        let largest = max(inputShape.positions, plan.gatedShapes.map(\.positions).max() ?? 1)
        guard largest <= 4096 else {
            throw GatedNetError.outOfMemory("path kernel: \(largest) positions need \(largest) x \(largest) matrices per pair; at most 4096 positions (64 x 64) are supported")
        }
        for op in plan.ops {
            if case .maxPool = op.step {
                throw GatedNetError.unsupported("path kernel: global max pooling is not covered (use average pooling)")
            }
        }
    }

    /// The kernel of `kind` between xa (na NHWC samples) and xb (nb samples) into `out`, for
    /// the block `options.rows` × `options.cols` (default: everything; `out` has the block's
    /// shape). Exact, by the recursion over layers of MATH.md §4: per pair, each conv layer
    /// keeps a P×P matrix S(p, p') (P = positions), T(p, p') = Σ_offsets S(read(p), read(p'))
    /// and S ← T ⊙ (Ga Gbᵀ over channels); average pooling turns S into Σ S / P², a dense
    /// layer reading positions into Σ_p S(p, p), gated dense layers multiply by ⟨ga, gb⟩, an
    /// identity skip adds the block input's state (so the 2^b sub-networks are never
    /// enumerated), a projection skip multiplies the skipped state by its output channels.
    /// Cost per pair O(P_0² C_0 + Σ_conv P_l² (C_l + k_l²) + Σ_dense w_l); memory 3 P_max²
    /// doubles per core plus the gates of both batches. Meant for small n or small images.
    /// Pairs are computed in tiles of `convKernelTile`² by `fillKernelTiles`, on two cores
    /// (same bits as on one), with `options.progress` once per tile; `symmetric` (xb is xa)
    /// computes one triangle of a block with equal row and column ranges (`options.upperOnly`
    /// as for FC kernels). Reads rows, cols, upperOnly, transposed, progress and serialTiles of
    /// `options`; refuses packedGatesA / B.
    /// Throws `.unsupported` for max pooling, `.notFinite` for an entry beyond float's range.
    public func pathKernel(_ kind: ConvKernelKind, xa: UnsafePointer<Float>, na: Int, xb: UnsafePointer<Float>, nb: Int,
                           symmetric: Bool, out: KernelOutput, options: KernelOptions = KernelOptions()) throws {
        let d = inputSize
        let (rows, cols) = try options.block(na: na, nb: nb, out: out)
        guard options.packedGatesA == nil && options.packedGatesB == nil else {
            throw GatedNetError.invalidArgument("\(options.packedGatesA != nil ? "gates_a" : "gates_b"): conv kernels compute their own gates; given packed gates are for fully connected networks only")
        }
        let a = xa + rows.lowerBound * d, b = xb + cols.lowerBound * d
        let ra = rows.count, rb = cols.count
        let square = symmetric && rows == cols
        let ones = spec.valueInput == .ones && !tied
        let normalized = kind == .npkNormalized
        let fromInput = kind != .gateOverlap
        if kind != .inputGram { try checkPathKernelSupport() }
        let ga = kind == .inputGram ? [] : allGates(a, rows: ra, wired: true)
        let gb = kind == .inputGram || square ? ga : allGates(b, rows: rb, wired: true)
        var tables: [Int: [Int32]] = [:]
        var columns: [Int: [Int32]] = [:]  // conv read tables transposed: offset-major
        var skipSources = Set<Int>()
        for (i, op) in plan.ops.enumerated() {
            switch op.step {
            case .conv(_, let g):
                let t = ConvNetwork.readTable(g)
                let kk = g.kernel * g.kernel, pout = g.output.positions
                tables[i] = t
                columns[i] = (0..<(kk * pout)).map { t[($0 % pout) * kk + $0 / pout] }
            case .residual(let s, _, let g):
                skipSources.insert(s)
                if let g { tables[i] = ConvNetwork.readTable(g) }
            default: break
            }
        }
        let p0 = inputShape.positions, c0 = inputShape.channels
        let gramCount = max(p0 * p0, plan.gatedShapes.map { $0.positions * $0.positions }.max() ?? 1)
        // The input Gram reads no position matrices: no P×P scratch (P may be any size there).
        let pathKind = kind != .inputGram
        let scratch = (0..<2).map { _ in PairScratch(gram: pathKind ? gramCount : 0, positions: pathKind ? p0 : 0) }
        /// The kernel (before the trace scaling) of row i of x (gates gx) and row j of y (gates
        /// gy), in double, with `part`'s scratch.
        func pair(_ x: UnsafePointer<Float>, _ i: Int, _ gx: [FloatBuffer], _ y: UnsafePointer<Float>, _ j: Int,
                  _ gy: [FloatBuffer], _ part: Int) -> Double {
            if kind == .inputGram {
                if ones { return Double(d) }
                var s: Double = 0
                for e in 0..<d { s += Double(x[i * d + e]) * Double(y[j * d + e]) }
                return s
            }
            let sc = scratch[part]
            if fromInput {
                if ones {
                    for e in 0..<(p0 * p0) { sc.s0[e] = Double(c0) }
                } else {
                    BLAS.gemm(transA: false, transB: true, m: p0, n: p0, k: c0, a: x + i * d, lda: c0,
                              b: y + j * d, ldb: c0, c: sc.gram.pointer, ldc: p0)
                    for e in 0..<(p0 * p0) { sc.s0[e] = Double(sc.gram.pointer[e]) }
                }
            }
            return pairKernel(s0: sc.s0, ga: gx, gb: gy, i: i, j: j, tables: tables, columns: columns, skipSources: skipSources,
                              gram: sc.gram, normalized: normalized)
        }
        var scale: Double = 1
        if kind == .npkTraceNormalized {
            // The trace runs over all rows of xa, whatever the block.
            let gAll = rows == 0..<na ? ga : allGates(xa, rows: na, wired: true)
            var trace: Double = 0
            for i in 0..<na { trace += pair(xa, i, gAll, xa, i, gAll, 0) }
            guard trace > 0 && trace.isFinite else {
                throw GatedNetError.invalidArgument("trace: H(xa, xa) has trace \(trace); the trace-normalised kernel needs a positive, finite trace")
            }
            scale = 1 / trace
        }
        // Each tile writes its own acc and its part's scratch only: safe for the two-part loop.
        try fillKernelTiles(rows: ra, cols: rb, symmetric: square, upperOnly: options.upperOnly, out: out,
                            transposed: options.transposed,
                            progress: options.progress, what: "conv kernel", parallel: !options.serialTiles,
                            side: convKernelTile) { part, i0, ti, j0, tj, acc in
            let diagonal = square && i0 == j0
            for i in 0..<ti {
                for j in (diagonal ? i : 0)..<tj {
                    let k = pair(a, i0 + i, ga, b, j0 + j, gb, part) * scale
                    guard Float(k).isFinite else {
                        throw GatedNetError.notFinite(
                            "kernel: entry (\(i0 + i), \(j0 + j)) of the block is \(k), beyond the float32 range (3.4e38); the raw conv "
                            + "path kernels grow like Π_l (C_l k_l² / 2) · |x|²: use the normalised kinds (npk_normalized, npk_trace_normalized)")
                    }
                    acc[i * tj + j] = Float(k)
                    if diagonal { acc[j * tj + i] = Float(k) }
                }
            }
        }
    }

    private func pairKernel(s0: [Double], ga: [FloatBuffer], gb: [FloatBuffer], i: Int, j: Int, tables: [Int: [Int32]],
                            columns: [Int: [Int32]], skipSources: Set<Int>, gram: FloatBuffer, normalized: Bool) -> Double {
        var state = PairState.spatial(s0, positions: inputShape.positions)
        var saved: [Int: PairState] = [:]
        if skipSources.contains(-1) { saved[-1] = state }
        func diagonalSum(_ st: PairState) -> Double {
            switch st {
            case .scalar(let k): return k
            case .spatial(let s, let p): return (0..<p).reduce(0) { $0 + s[$1 * p + $1] }
            }
        }
        for (index, op) in plan.ops.enumerated() {
            switch op.step {
            case .conv(_, let g):
                if case .scalar(let k) = state { state = .spatial([k], positions: 1) }
                guard case .spatial(let s, let pin) = state else { break }
                let pout = g.output.positions, kk = g.kernel * g.kernel
                let table = tables[index]!
                let l = op.gated!, c = g.output.channels
                BLAS.gemm(transA: false, transB: true, m: pout, n: pout, k: c, a: ga[l].pointer + i * pout * c, lda: c,
                          b: gb[l].pointer + j * pout * c, ldb: c, c: gram.pointer, ldc: pout)
                let next = [Double](unsafeUninitializedCapacity: pout * pout) { buffer, count in
                    table.withUnsafeBufferPointer { t in
                        columns[index]!.withUnsafeBufferPointer { tc in
                            s.withUnsafeBufferPointer { sp in
                                gnk_conv_shift_sum(sp.baseAddress, pin, t.baseAddress, tc.baseAddress, pout, kk, gram.pointer,
                                                   buffer.baseAddress)
                            }
                        }
                    }
                    count = pout * pout
                    if normalized {  // (acc · g) / C_l
                        let unit = 1 / Double(c)
                        for e in 0..<count { buffer[e] *= unit }
                    }
                }
                state = .spatial(next, positions: pout)
            case .dense:
                let base = diagonalSum(state)
                if let l = op.gated {
                    let w = plan.gatedShapes[l].size
                    var dot: Double = 0
                    let a = ga[l].pointer + i * w, b = gb[l].pointer + j * w
                    for u in 0..<w { dot += Double(a[u]) * Double(b[u]) }
                    state = .scalar(base * dot / (normalized ? Double(w) : 1))
                } else {
                    state = .scalar(base)
                }
            case .averagePool:
                if case .spatial(let s, let p) = state { state = .scalar(s.reduce(0, +) / Double(p * p)) }
            case .maxPool:
                break  // excluded by checkPathKernelSupport
            case .residual(let skip, let proj, let g):
                var skipped = saved[skip]!
                if let p = proj {
                    let fanOut = normalized ? 1 : plan.params[p].fanOut
                    if let g, case .spatial(let s, let pin) = skipped {
                        let t = tables[index]!, pout = g.output.positions
                        var m = [Double](repeating: 0, count: pout * pout)
                        for a in 0..<pout {
                            for b in 0..<pout where t[a] >= 0 && t[b] >= 0 {
                                m[a * pout + b] = Double(fanOut) * s[Int(t[a]) * pin + Int(t[b])]
                            }
                        }
                        skipped = .spatial(m, positions: pout)
                    } else {
                        skipped = .scalar(Double(fanOut) * diagonalSum(skipped))
                    }
                }
                switch (state, skipped) {
                case (.spatial(let a, let p), .spatial(let b, _)):
                    state = .spatial(zip(a, b).map { $0 + $1 }, positions: p)
                case (.scalar(let a), .scalar(let b)):
                    state = .scalar(a + b)
                default:  // a 1×1 map on one side: both are scalars
                    state = .scalar(diagonalSum(state) + diagonalSum(skipped))
                }
            }
            if skipSources.contains(index) { saved[index] = state }
        }
        return diagonalSum(state)
    }
}
