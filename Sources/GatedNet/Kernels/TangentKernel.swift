import Glibc

/// Per-row factors of the layer-wise empirical NTK of a batch: for each weight layer its input
/// Z (rows × fan_in) and the back-propagated vectors Δ = ∂ŷ_o/∂q (rows × K·fan_out, the K
/// selected outputs side by side), so that K = Σ_l (Δ_l Δ_lᵀ) ⊙ (Z_l Z_lᵀ) needs only GEMMs.
/// All factors live in one uninitialised allocation (every entry is written before it is read),
/// backed by huge pages where the kernel allows: no zero fill, few page faults.
final class TangentSide {
    private let storage: Allocation<Float>
    private var used = 0
    /// Value layers 0 ... h (h = output layer): inputs; hidden value layers 0 ..< h: Δ.
    var zv: [UnsafeMutablePointer<Float>] = []
    var dv: [UnsafeMutablePointer<Float>] = []
    /// Feature layers 0 ..< h: inputs and Δ (soft gates only).
    var zf: [UnsafeMutablePointer<Float>] = []
    var df: [UnsafeMutablePointer<Float>] = []
    /// Value layer h − 1 with several outputs: Δ[o, i] = W_head[o, i] g_i, so the Δ Gram summed
    /// over the outputs is Σ_i g_i g'_i ‖W_head[:, i]‖²; this holds g_i ‖W_head[:, i]‖ (rows × w),
    /// a K times shorter inner dimension than `dv[h − 1]`.
    var dvLast: UnsafeMutablePointer<Float>?

    init(floats: Int) throws {
        storage = try Allocation<Float>(count: floats, what: "NTK factors")
        let bytes = floats * MemoryLayout<Float>.stride, page = 2 << 20
        // Whole 2 MiB pages inside the block (malloc'd large blocks start on a 4 KiB page).
        let start = (Int(bitPattern: storage.pointer) + page - 1) / page * page
        let end = (Int(bitPattern: storage.pointer) + bytes) / page * page
        if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_HUGEPAGE) }
    }

    /// The next `count` floats of the storage.
    func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        assert(used + count <= storage.count)
        defer { used += count }
        return storage.pointer + used
    }
}

/// Rows of one backward pass in `tangentSide` (its GEMMs have rows × K rows).
let tangentChunkRows = 128

extension GatedNetwork {
    /// Value layer `l` (0 ... hiddenCount); for a tied net the feature layers and its head.
    func valueLayer(_ l: Int) -> DenseLayer {
        if !tied { return valueLayers[l] }
        if l < hiddenCount { return featureLayers[l] }
        return featureHead ?? featureLayers[hiddenCount - 1]
    }

    /// Floats of one row of `tangentSide`'s factors.
    func tangentFloatsPerRow(outputs k: Int, feature: Bool, compressLast: Bool) -> Int {
        let h = hiddenCount
        var perRow = (0...h).reduce(0) { $0 + valueLayer($1).fanIn } + hiddenWidths.reduce(0, +) * k
        if compressLast { perRow += hiddenWidths[h - 1] }
        if feature { perRow += featureLayers.reduce(0) { $0 + $1.fanIn } + hiddenWidths.reduce(0, +) * k }
        return perRow
    }

    /// Z and Δ of every layer for `rows` rows of x, outputs `outputs` (MATH.md §4, empirical NTK).
    /// The rows are split in two halves computed at the same time (`inParallel`, BLAS on one
    /// thread), each in chunks of `tangentChunkRows`: the bits do not depend on the threads.
    func tangentSide(_ x: UnsafePointer<Float>, rows: Int, outputs: [Int], feature: Bool,
                     compressLast: Bool = false) throws -> TangentSide {
        let h = hiddenCount, k = outputs.count, d = inputSize
        let side = try TangentSide(floats: try checkedCount(rows, tangentFloatsPerRow(outputs: k, feature: feature, compressLast: compressLast),
                                                            what: "NTK factors"))
        side.zv = (0...h).map { side.take(rows * valueLayer($0).fanIn) }
        side.dv = (0..<h).map { side.take(rows * k * hiddenWidths[$0]) }
        // ‖W_head[:, i]‖ over the selected outputs (summed in double).
        var headNorm: [Float] = []
        if compressLast {
            let w = hiddenWidths[h - 1], head = valueLayer(h).weight.pointer
            side.dvLast = side.take(rows * w)
            headNorm = (0..<w).map { i in
                Float(outputs.reduce(0.0) { acc, o in let v = Double(head[o * w + i]); return acc + v * v }.squareRoot())
            }
        }
        if feature {
            side.zf = (0..<h).map { side.take(rows * featureLayers[$0].fanIn) }
            side.df = (0..<h).map { side.take(rows * k * hiddenWidths[$0]) }
        }
        let chunk = min(tangentChunkRows, max((rows + 1) / 2, 1))
        let maxW = max(hiddenWidths.max() ?? 1, 1)
        // Per part: a workspace (part 0 the network's own) and the backward buffers.
        let scratch = (0..<2).map { part in
            (ws: part == 0 ? workspace(rows: chunk) : Workspace(spec: spec, capacity: chunk),
             dZ: FloatBuffer(count: chunk * k * maxW), dZf: feature ? FloatBuffer(count: chunk * k * maxW) : nil,
             dG: feature ? hiddenWidths.map { FloatBuffer(count: chunk * k * $0) } : [])
        }
        let beta = spec.beta
        /// Rows start ..< start + n (at most `chunk`) with one part's scratch.
        func fill(_ start: Int, _ n: Int, _ part: Int) {
            let ws = scratch[part].ws, dZ = scratch[part].dZ, dG = scratch[part].dG
            let dZf = scratch[part].dZf ?? dZ
            let xs = x + start * d
            runFeature(xs, rows: n, ws: ws, gates: true)
            if !tied { runValue(xs, rows: n, ws: ws) }
            // Layer inputs.
            for l in 0...h {
                let fanIn = valueLayer(l).fanIn
                let dst = side.zv[l] + start * fanIn
                if l == 0 {
                    if spec.valueInput == .ones && !tied { dst.update(repeating: 1, count: n * fanIn) } else { dst.update(from: xs, count: n * fanIn) }
                } else {
                    dst.update(from: tied ? ws.zf[l - 1].pointer : ws.zv[l - 1].pointer, count: n * fanIn)
                }
            }
            if feature {
                for l in 0..<h {
                    let fanIn = featureLayers[l].fanIn
                    let dst = side.zf[l] + start * fanIn
                    dst.update(from: l == 0 ? xs : UnsafePointer(ws.zf[l - 1].pointer), count: n * fanIn)
                }
            }
            // Value net: dZ = ∂ŷ_o/∂z_{h-1} is row o of the output weights.
            let head = valueLayer(h)
            let wLast = hiddenWidths[h - 1]
            for r in 0..<n {
                for (oi, o) in outputs.enumerated() {
                    (dZ.pointer + (r * k + oi) * wLast).update(from: head.weight.pointer + o * wLast, count: wLast)
                }
            }
            for l in stride(from: h - 1, through: 0, by: -1) {
                let w = hiddenWidths[l]
                let g = ws.gates[spec.gateLayer(l)].pointer
                let dv = side.dv[l] + start * k * w
                let dz = dZ.pointer
                for r in 0..<n {
                    let gr = g + r * w
                    for oi in 0..<k {
                        let base = (r * k + oi) * w
                        for i in 0..<w { dv[base + i] = dz[base + i] * gr[i] }
                    }
                }
                if l == h - 1, let last = side.dvLast {
                    let dc = last + start * w
                    for r in 0..<n {
                        let gr = g + r * w
                        for i in 0..<w { dc[r * w + i] = gr[i] * headNorm[i] }
                    }
                }
                if feature {
                    let q = ws.qv[l].pointer, dg = dG[spec.gateLayer(l)].pointer
                    for r in 0..<n {
                        let qr = q + r * w
                        for oi in 0..<k {
                            let base = (r * k + oi) * w
                            for i in 0..<w { dg[base + i] = dz[base + i] * qr[i] }
                        }
                    }
                }
                if l > 0 {
                    let layer = valueLayer(l)
                    BLAS.gemm(transA: false, transB: false, m: n * k, n: layer.fanIn, k: w, a: dv, lda: w,
                              b: layer.weight.pointer, ldb: layer.fanIn, c: dz, ldc: layer.fanIn)
                }
            }
            guard feature else { return }
            // Feature net: ∂ŷ/∂qf_l = ∂ŷ/∂G_l ⊙ βG(1−G) + χ'(qf_l) ⊙ (∂ŷ/∂qf_{l+1} Wf_{l+1}).
            for l in stride(from: h - 1, through: 0, by: -1) {
                let w = hiddenWidths[l]
                let g = ws.gates[l].pointer, q = ws.qf[l].pointer, dg = dG[l].pointer
                let df = side.df[l] + start * k * w
                let dz = dZf.pointer
                let relu = spec.activation == .relu
                for r in 0..<n {
                    let gr = g + r * w, qr = q + r * w
                    for oi in 0..<k {
                        let base = (r * k + oi) * w
                        for i in 0..<w {
                            var v = dg[base + i] * beta * gr[i] * (1 - gr[i])
                            if l < h - 1 && (!relu || qr[i] > 0) { v += dz[base + i] }
                            df[base + i] = v
                        }
                    }
                }
                if l > 0 {
                    let layer = featureLayers[l]
                    BLAS.gemm(transA: false, transB: false, m: n * k, n: layer.fanIn, k: w, a: df, lda: w,
                              b: layer.weight.pointer, ldb: layer.fanIn, c: dz, ldc: layer.fanIn)
                }
            }
        }
        BLAS.singleThreaded {
            inParallel { part in
                let (first, count) = half(part, of: rows)
                forEachChunk(rows: count, chunk: chunk) { start, n in fill(first + start, n, part) }
            }
        }
        return side
    }

    /// One term (Za Zbᵀ · scale + bias) ⊙ (Δa Δbᵀ) of the layer-wise NTK; Δ nil means the
    /// output layer, whose Δ Gram is the number of selected outputs.
    struct TangentTerm {
        let za: UnsafePointer<Float>, zb: UnsafePointer<Float>, fanIn: Int
        let da: UnsafePointer<Float>?, db: UnsafePointer<Float>?, width: Int
        let scale: Float
    }

    /// The layer-wise empirical NTK (`TangentPart`) over the block.
    func tangentKernel(_ part: TangentPart, _ k: KernelBlock) throws {
        let soft = !hasHardGates
        let outputs: [Int]
        if let o = k.options.output {
            guard o >= 0 && o < outputSize else {
                throw GatedNetError.invalidArgument("output: got \(o), need -1 (sum) or 0 ... \(outputSize - 1)")
            }
            outputs = [o]
        } else {
            outputs = Array(0..<outputSize)
        }
        var value = false, feature = false, cross = false
        switch part {
        case .value: value = true
        case .feature, .cross:
            guard soft else {
                throw GatedNetError.unsupported("kernel: the \(part == .feature ? "feature" : "cross") part of the NTK needs soft gates in an untied network; hard gates pass no gradient to the feature weights, so it is 0")
            }
            feature = part == .feature; cross = part == .cross
        case .full:
            if tied {
                value = !featureFrozen
            } else {
                value = !valueFrozen
                feature = soft && !featureFrozen
            }
            guard value || feature else {
                throw GatedNetError.unsupported("kernel: the NTK over trainable weights is empty: every weight that passes gradient is frozen")
            }
        }
        let needFeature = feature || cross
        // Value layer h − 1's Δ Gram through ‖W_head[:, i]‖ when it saves work (several outputs).
        let compress = value && outputs.count > 1 && hiddenCount > 0
        let sa = try tangentSide(k.a, rows: k.rowsA, outputs: outputs, feature: needFeature, compressLast: compress)
        let sb = k.symmetric ? sa : try tangentSide(k.b, rows: k.rowsB, outputs: outputs, feature: needFeature, compressLast: compress)
        let s2 = spec.initScale * spec.initScale
        func scale(_ fanIn: Int) -> Float { k.options.ntkScaling ? s2 / Float(fanIn) : 1 }
        let kk = outputs.count
        var terms: [TangentTerm] = []
        let h = hiddenCount
        if value {
            for l in 0...h {
                let fanIn = valueLayer(l).fanIn
                if l == h - 1, let ca = sa.dvLast, let cb = sb.dvLast {
                    terms.append(TangentTerm(za: sa.zv[l], zb: sb.zv[l], fanIn: fanIn, da: UnsafePointer(ca), db: UnsafePointer(cb),
                                             width: hiddenWidths[l], scale: scale(fanIn)))
                    continue
                }
                terms.append(TangentTerm(za: sa.zv[l], zb: sb.zv[l], fanIn: fanIn, da: l < h ? UnsafePointer(sa.dv[l]) : nil,
                                         db: l < h ? UnsafePointer(sb.dv[l]) : nil, width: l < h ? kk * hiddenWidths[l] : 0, scale: scale(fanIn)))
            }
        }
        if feature {
            for l in 0..<h {
                let fanIn = featureLayers[l].fanIn
                terms.append(TangentTerm(za: sa.zf[l], zb: sb.zf[l], fanIn: fanIn, da: sa.df[l], db: sb.df[l],
                                         width: kk * hiddenWidths[l], scale: scale(fanIn)))
            }
        }
        if cross {
            for l in 0..<h {
                let fanIn = featureLayers[l].fanIn, w = kk * hiddenWidths[l]
                terms.append(TangentTerm(za: sa.zv[l], zb: sb.zf[l], fanIn: fanIn, da: sa.dv[l], db: sb.df[l], width: w, scale: scale(fanIn)))
                terms.append(TangentTerm(za: sa.zf[l], zb: sb.zv[l], fanIn: fanIn, da: sa.df[l], db: sb.dv[l], width: w, scale: scale(fanIn)))
            }
        }
        let bias: Float = spec.bias ? 1 : 0
        let symmetric = k.symmetric
        let side = tangentTileSide(rows: k.rowsA, cols: k.rowsB, symmetric: symmetric)
        // Two tile buffers per part of fillKernelTiles' parallel loop.
        let area = min(side, k.rowsA) * min(side, k.rowsB)
        let t1 = (0..<2).map { _ in FloatBuffer(count: area) }
        let t2 = (0..<2).map { _ in FloatBuffer(count: area) }
        let stripRows = tangentDiagonalStrip
        try fillKernelTiles(rows: k.rowsA, cols: k.rowsB, symmetric: symmetric, upperOnly: k.options.upperOnly,
                            out: k.out, transposed: k.options.transposed, progress: k.options.progress, what: "kernel", parallel: !k.options.serialTiles, side: side) { half, i0, ti, j0, tj, acc in
            // A diagonal tile of a symmetric kernel is computed in row strips that start at the
            // diagonal (about half its GEMM work), and its lower triangle is mirrored. Entries
            // keep their bits: each is the same dot products in the same order either way.
            let diagonal = symmetric && i0 == j0
            let strip = diagonal ? stripRows : ti
            let z = t1[half].pointer, g = t2[half].pointer
            var r0 = 0
            while r0 < ti {
                let rs = min(strip, ti - r0), c0 = diagonal ? r0 : 0, cn = tj - c0
                let at = r0 * tj + c0  // the strip's first entry in the tile buffers (row stride tj)
                for (index, t) in terms.enumerated() {
                    BLAS.gemm(transA: false, transB: true, m: rs, n: cn, k: t.fanIn, a: t.za + (i0 + r0) * t.fanIn, lda: t.fanIn,
                              b: t.zb + (j0 + c0) * t.fanIn, ldb: t.fanIn, c: z + at, ldc: tj)
                    let s = t.scale, first = index == 0
                    if let da = t.da, let db = t.db {
                        BLAS.gemm(transA: false, transB: true, m: rs, n: cn, k: t.width, a: da + (i0 + r0) * t.width, lda: t.width,
                                  b: db + (j0 + c0) * t.width, ldb: t.width, c: g + at, ldc: tj)
                        for r in 0..<rs {
                            let o = at + r * tj, a = acc + o, zr = z + o, gr = g + o
                            if first {
                                for c in 0..<cn { a[c] = 0 + (zr[c] * s + bias) * gr[c] }
                            } else {
                                for c in 0..<cn { a[c] += (zr[c] * s + bias) * gr[c] }
                            }
                        }
                    } else {
                        let kc = Float(kk)
                        for r in 0..<rs {
                            let o = at + r * tj, a = acc + o, zr = z + o
                            if first {
                                for c in 0..<cn { a[c] = 0 + (zr[c] * s + bias) * kc }
                            } else {
                                for c in 0..<cn { a[c] += (zr[c] * s + bias) * kc }
                            }
                        }
                    }
                }
                r0 += rs
            }
            if diagonal {
                for i in 1..<max(ti, 1) {
                    let row = acc + i * tj
                    for j in 0..<i { row[j] = acc[j * tj + i] }
                }
            }
        }
        withExtendedLifetime((sa, sb)) {}  // the terms point into their storage
    }
}

/// Rows per strip of a symmetric kernel's diagonal tiles (`tangentKernel`): smaller strips skip
/// more of the tile's lower triangle, larger ones keep the GEMMs efficient.
let tangentDiagonalStrip = 64

/// Tile side of the empirical NTK: the largest of `kernelTile`, a half and a quarter of it that
/// gives at least 8 tiles (a symmetric kernel of n ≤ 1024 has 3 tiles of 512, two of them
/// half-price diagonal ones), so that the two parts of the tile loop get balanced work. Larger
/// kernels keep the larger tiles, whose GEMMs are a little faster.
func tangentTileSide(rows: Int, cols: Int, symmetric: Bool) -> Int {
    var side = kernelTile
    while side > kernelTile / 4 {
        let r = (rows + side - 1) / side, c = (cols + side - 1) / side
        if (symmetric ? r * (r + 1) / 2 : r * c) >= 8 { break }
        side /= 2
    }
    return side
}
