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
}

/// Side length of the square tiles kernels are computed in: bounds the temporaries to two
/// tile² buffers whatever n is.
let kernelTile = 512

extension GatedNetwork {
    /// Gates of every hidden layer for `rows` rows of x, one rows × w_l buffer per layer.
    public func allGates(_ x: UnsafePointer<Float>, rows: Int) -> [FloatBuffer] {
        let out = hiddenWidths.map { FloatBuffer(count: rows * $0) }
        let ws = workspace(rows: min(evaluationChunk, rows))
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
        let ws = workspace(rows: min(evaluationChunk, rows))
        forEachChunk(rows: rows, chunk: ws.capacity) { start, n in
            runFeature(x + start * inputSize, rows: n, ws: ws, gates: true)
            (out + start * w).update(from: ws.gates[layer].pointer, count: n * w)
        }
    }

    /// Bit-packed hard gates of one layer. Throws `.unsupported` for soft gates.
    public func gateMask(_ x: UnsafePointer<Float>, rows: Int, layer: Int) throws -> GateMask {
        guard spec.gateKind == .hard else { throw GatedNetError.unsupported("packed gates: this network has soft gates") }
        guard layer >= 0 && layer < hiddenCount else {
            throw GatedNetError.invalidArgument("layer: got \(layer), need 0 ... \(hiddenCount - 1)")
        }
        let g = FloatBuffer(count: rows * hiddenWidths[layer])
        try gates(x, rows: rows, layer: layer, into: g.pointer)
        return GateMask(gates: g.pointer, rows: rows, width: hiddenWidths[layer])
    }

    /// Kernel of `kind` between xa (na rows) and xb (nb rows) into `out` (na × nb).
    /// When `symmetric` (xb is xa), only tiles on and above the diagonal are computed and
    /// mirrored. Cost O(na·nb·(d_in + Σ_l w_l)) in BLAS; extra memory: the gates
    /// (n·Σ_l w_l floats) and two tile² buffers.
    public func kernel(_ kind: KernelKind, xa: UnsafePointer<Float>, na: Int, xb: UnsafePointer<Float>, nb: Int,
                       symmetric: Bool, out: KernelOutput) throws {
        if case .base(let layer) = kind, !(0..<hiddenCount).contains(layer) {
            throw GatedNetError.invalidArgument("layer: got \(layer), need 0 ... \(hiddenCount - 1)")
        }
        let usesGates = kind != .inputGram
        let usesInput = kind == .inputGram || kind == .npk || kind == .npkNormalized
        let layers: [Int]
        switch kind {
        case .inputGram: layers = []
        case .base(let l): layers = [l]
        default: layers = Array(0..<hiddenCount)
        }
        let normalise = kind == .npkNormalized || { if case .base = kind { return true }; return false }()
        let ga = usesGates ? allGates(xa, rows: na) : []
        let gb = usesGates ? (symmetric ? ga : allGates(xb, rows: nb)) : []
        let d = inputSize
        let ones = spec.valueInput == .ones
        let tile = FloatBuffer(count: kernelTile * kernelTile)
        let tmp = FloatBuffer(count: kernelTile * kernelTile)
        var i0 = 0
        while i0 < na {
            let ti = min(kernelTile, na - i0)
            var j0 = symmetric ? i0 : 0
            while j0 < nb {
                let tj = min(kernelTile, nb - j0)
                let acc = tile.pointer
                if usesInput && !ones {
                    BLAS.gemm(transA: false, transB: true, m: ti, n: tj, k: d, a: xa + i0 * d, lda: d,
                              b: xb + j0 * d, ldb: d, c: acc, ldc: tj)
                } else {
                    acc.update(repeating: usesInput ? Float(d) : 1, count: ti * tj)
                }
                for l in layers {
                    let w = hiddenWidths[l]
                    BLAS.gemm(transA: false, transB: true, m: ti, n: tj, k: w,
                              alpha: normalise ? 1 / Float(w) : 1,
                              a: ga[l].pointer + i0 * w, lda: w, b: gb[l].pointer + j0 * w, ldb: w,
                              c: tmp.pointer, ldc: tj)
                    let t = tmp.pointer
                    for i in 0..<(ti * tj) { acc[i] *= t[i] }
                }
                for r in 0..<ti {
                    (out.pointer + (i0 + r) * out.ld + j0).update(from: acc + r * tj, count: tj)
                }
                if symmetric && j0 != i0 {
                    for r in 0..<ti {
                        for c in 0..<tj { out.pointer[(j0 + c) * out.ld + i0 + r] = acc[r * tj + c] }
                    }
                }
                j0 += tj
            }
            i0 += ti
        }
    }
}
