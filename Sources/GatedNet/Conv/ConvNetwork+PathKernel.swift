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

    /// The kernel of `kind` between xa (na NHWC samples) and xb (nb samples) into `out`
    /// (na × nb). Exact, by the recursion over layers of MATH.md §4: per pair, each conv layer
    /// keeps a P×P matrix S(p, p') (P = positions), T(p, p') = Σ_offsets S(read(p), read(p'))
    /// and S ← T ⊙ (Ga Gbᵀ over channels); average pooling turns S into Σ S / P², a dense
    /// layer reading positions into Σ_p S(p, p), gated dense layers multiply by ⟨ga, gb⟩, an
    /// identity skip adds the block input's state (so the 2^b sub-networks are never
    /// enumerated), a projection skip multiplies the skipped state by its output channels.
    /// Cost per pair O(P_0² C_0 + Σ_conv P_l² (C_l + k_l²) + Σ_dense w_l); memory 3 P_max²
    /// doubles plus the gates of both batches. Meant for small n or small images.
    /// Throws `.unsupported` for max pooling.
    public func pathKernel(_ kind: ConvKernelKind, xa: UnsafePointer<Float>, na: Int, xb: UnsafePointer<Float>, nb: Int,
                           symmetric: Bool, out: KernelOutput) throws {
        let d = inputSize
        if kind == .inputGram {
            for i in 0..<na {
                for j in 0..<nb {
                    var s: Double = 0
                    if spec.valueInput == .ones && !tied { s = Double(d) } else {
                        for e in 0..<d { s += Double(xa[i * d + e]) * Double(xb[j * d + e]) }
                    }
                    out.pointer[i * out.ld + j] = Float(s)
                }
            }
            return
        }
        try checkPathKernelSupport()
        let normalized = kind == .npkNormalized
        let fromInput = kind != .gateOverlap
        var tables: [Int: [Int32]] = [:]
        var skipSources = Set<Int>()
        for (i, op) in plan.ops.enumerated() {
            switch op.step {
            case .conv(_, let g): tables[i] = ConvNetwork.readTable(g)
            case .residual(let s, _, let g):
                skipSources.insert(s)
                if let g { tables[i] = ConvNetwork.readTable(g) }
            default: break
            }
        }
        let input = inputShape
        let ones = spec.valueInput == .ones && !tied
        let p0 = input.positions, c0 = input.channels
        var s0 = [Double](repeating: 1, count: p0 * p0)
        let gram = FloatBuffer(count: max(p0 * p0, plan.gatedShapes.map { $0.positions * $0.positions }.max() ?? 1))
        /// H(a_i, b_j) in double for gates ga / gb and inputs a / b.
        func pair(_ a: UnsafePointer<Float>, _ i: Int, _ b: UnsafePointer<Float>, _ j: Int,
                  _ gatesA: [FloatBuffer], _ gatesB: [FloatBuffer]) -> Double {
            if fromInput {
                if ones {
                    for e in 0..<(p0 * p0) { s0[e] = Double(c0) }
                } else {
                    BLAS.gemm(transA: false, transB: true, m: p0, n: p0, k: c0, a: a + i * d, lda: c0,
                              b: b + j * d, ldb: c0, c: gram.pointer, ldc: p0)
                    for e in 0..<(p0 * p0) { s0[e] = Double(gram.pointer[e]) }
                }
            }
            return pairKernel(s0: s0, ga: gatesA, gb: gatesB, i: i, j: j, tables: tables, skipSources: skipSources, gram: gram,
                              normalized: normalized)
        }
        let ga = allGates(xa, rows: na, wired: true)
        let gb = symmetric ? ga : allGates(xb, rows: nb, wired: true)
        var scale: Double = 1
        if kind == .npkTraceNormalized {
            var trace: Double = 0
            for i in 0..<na { trace += pair(xa, i, xa, i, ga, ga) }
            guard trace > 0 && trace.isFinite else {
                throw GatedNetError.invalidArgument("trace: H(xa, xa) has trace \(trace); the trace-normalised kernel needs a positive, finite trace")
            }
            scale = 1 / trace
        }
        for i in 0..<na {
            for j in (symmetric ? i : 0)..<nb {
                let k = Float(pair(xa, i, xb, j, ga, gb) * scale)
                guard k.isFinite else {
                    throw GatedNetError.notFinite("kernel: entry (\(i), \(j)) exceeds the float32 range (3.4e38); use the normalised kinds (npk_normalized, npk_trace_normalized)")
                }
                out.pointer[i * out.ld + j] = k
                if symmetric { out.pointer[j * out.ld + i] = k }
            }
        }
    }

    private func pairKernel(s0: [Double], ga: [FloatBuffer], gb: [FloatBuffer], i: Int, j: Int, tables: [Int: [Int32]],
                            skipSources: Set<Int>, gram: FloatBuffer, normalized: Bool) -> Double {
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
                let unit = normalized ? 1 / Double(c) : 1
                BLAS.gemm(transA: false, transB: true, m: pout, n: pout, k: c, a: ga[l].pointer + i * pout * c, lda: c,
                          b: gb[l].pointer + j * pout * c, ldb: c, c: gram.pointer, ldc: pout)
                var next = [Double](repeating: 0, count: pout * pout)
                table.withUnsafeBufferPointer { t in
                    s.withUnsafeBufferPointer { sp in
                        for p in 0..<pout {
                            for q in 0..<pout {
                                let gg = Double(gram.pointer[p * pout + q])
                                if gg == 0 { continue }
                                var acc: Double = 0
                                for o in 0..<kk {
                                    let a = t[p * kk + o], b = t[q * kk + o]
                                    if a >= 0 && b >= 0 { acc += sp[Int(a) * pin + Int(b)] }
                                }
                                next[p * pout + q] = acc * gg * unit
                            }
                        }
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
