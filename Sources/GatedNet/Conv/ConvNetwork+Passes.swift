import Glibc

/// Walk the k×k patches of `samples` NHWC inputs in im2col row order — sample, output row,
/// output column, then (ky, kx) — calling `body(sample, pixel)` for each patch position with
/// the input pixel index (iy·w + ix), or -1 where zero padding reads outside the image.
@inline(__always)
func forEachPatchPosition(_ g: ConvGeometry, samples: Int, _ body: (_ sample: Int, _ pixel: Int) -> Void) {
    let h = g.input.height, w = g.input.width
    let oh = g.output.height, ow = g.output.width, k = g.kernel, s = g.stride, pad = g.pad
    for n in 0..<samples {
        for oy in 0..<oh {
            for ox in 0..<ow {
                for ky in 0..<k {
                    var iy = oy * s + ky - pad
                    if g.circular { iy = ((iy % h) + h) % h }
                    let rowInside = iy >= 0 && iy < h
                    for kx in 0..<k {
                        var ix = ox * s + kx - pad
                        if g.circular { ix = ((ix % w) + w) % w }
                        body(n, rowInside && ix >= 0 && ix < w ? iy * w + ix : -1)
                    }
                }
            }
        }
    }
}

/// Copy the k×k patches of `samples` NHWC inputs into rows of `col`: row (n, oy, ox) holds
/// patch entries in (ky, kx, c) order; out-of-range reads are 0 (zero padding) or wrap.
func im2col(_ g: ConvGeometry, _ x: UnsafePointer<Float>, samples: Int, _ col: UnsafeMutablePointer<Float>) {
    let c = g.input.channels, size = g.input.size
    var dst = col
    forEachPatchPosition(g, samples: samples) { n, pixel in
        if pixel >= 0 {
            let src = x + n * size + pixel * c
            if c < 16 { for j in 0..<c { dst[j] = src[j] } } else { dst.update(from: src, count: c) }
        } else {
            for j in 0..<c { dst[j] = 0 }
        }
        dst += c
    }
}

/// The adjoint of `im2col`: add each row's patch entries back into `dx` (accumulates).
func col2imAdd(_ g: ConvGeometry, _ col: UnsafePointer<Float>, samples: Int, _ dx: UnsafeMutablePointer<Float>) {
    let c = g.input.channels, size = g.input.size
    var src = col
    forEachPatchPosition(g, samples: samples) { n, pixel in
        if pixel >= 0 {
            let d = dx + n * size + pixel * c
            for j in 0..<c { d[j] += src[j] }
        }
        src += c
    }
}

extension ConvGeometry {
    /// A 1×1, stride-1, unpadded conv is a plain product over positions (no im2col needed).
    var isPointwise: Bool { kernel == 1 && stride == 1 && pad == 0 }
}

/// Per-layer scratch sizing: samples per im2col chunk.
@inline(__always)
func chunkSamples(_ g: ConvGeometry, _ ws: ConvWorkspace) -> Int {
    max(1, ws.colCapacity / max(1, g.output.positions * g.patch))
}

/// q = conv(x) (+ bias) for `rows` NHWC samples into `out` (rows × outP × outC).
func convForward(_ layer: DenseLayer, _ g: ConvGeometry, input: UnsafePointer<Float>, rows: Int,
                 output: UnsafeMutablePointer<Float>, ws: ConvWorkspace) {
    if g.usesWinograd(ws.algorithm) {
        Winograd.forward(layer, g, input: input, rows: rows, output: output, ws: ws)
        return
    }
    let outP = g.output.positions, outC = g.output.channels, patch = g.patch
    if g.isPointwise {
        BLAS.gemm(transA: false, transB: true, m: rows * outP, n: outC, k: patch, a: input, lda: patch,
                  b: layer.weight.pointer, ldb: patch, c: output, ldc: outC)
    } else {
        let chunk = chunkSamples(g, ws)
        var s0 = 0
        while s0 < rows {
            let cnt = min(chunk, rows - s0)
            im2col(g, input + s0 * g.input.size, samples: cnt, ws.col.pointer)
            BLAS.gemm(transA: false, transB: true, m: cnt * outP, n: outC, k: patch, a: ws.col.pointer, lda: patch,
                      b: layer.weight.pointer, ldb: patch, c: output + s0 * outP * outC, ldc: outC)
            s0 += cnt
        }
    }
    addBias(output, rows: rows * outP, cols: outC, bias: layer.bias)
}

/// Weight gradient (if `grad`) and input gradient (accumulated into `dInput`, if given) of a conv.
func convBackward(_ layer: DenseLayer, _ g: ConvGeometry, grad: Gradients.LayerGrad?, dQ: UnsafePointer<Float>,
                  input: UnsafePointer<Float>, rows: Int, dInput: UnsafeMutablePointer<Float>?, ws: ConvWorkspace) {
    let outP = g.output.positions, outC = g.output.channels, patch = g.patch
    if g.usesWinograd(ws.algorithm) {
        Winograd.backward(layer, g, weightGrad: grad?.weight.pointer, dQ: dQ, input: input, rows: rows, dInput: dInput, ws: ws)
    } else if g.isPointwise {
        if let gr = grad {
            BLAS.gemm(transA: true, transB: false, m: outC, n: patch, k: rows * outP, a: dQ, lda: outC,
                      b: input, ldb: patch, c: gr.weight.pointer, ldc: patch)
        }
        if let dx = dInput {
            BLAS.gemm(transA: false, transB: false, m: rows * outP, n: patch, k: outC, a: dQ, lda: outC,
                      b: layer.weight.pointer, ldb: patch, beta: 1, c: dx, ldc: patch)
        }
    } else {
        let chunk = chunkSamples(g, ws)
        var s0 = 0
        while s0 < rows {
            let cnt = min(chunk, rows - s0)
            let dq = dQ + s0 * outP * outC
            if let gr = grad {
                im2col(g, input + s0 * g.input.size, samples: cnt, ws.col.pointer)
                BLAS.gemm(transA: true, transB: false, m: outC, n: patch, k: cnt * outP, a: dq, lda: outC,
                          b: ws.col.pointer, ldb: patch, beta: s0 == 0 ? 0 : 1, c: gr.weight.pointer, ldc: patch)
            }
            if let dx = dInput {
                BLAS.gemm(transA: false, transB: false, m: cnt * outP, n: patch, k: outC, a: dq, lda: outC,
                          b: layer.weight.pointer, ldb: patch, c: ws.col.pointer, ldc: patch)
                col2imAdd(g, ws.col.pointer, samples: cnt, dx + s0 * g.input.size)
            }
            s0 += cnt
        }
    }
    if let gb = grad?.bias?.pointer { columnSums(dQ, rows: rows * outP, cols: outC, into: gb) }
}

@inline(__always)
func columnSums(_ m: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>) {
    out.update(repeating: 0, count: cols)
    for r in 0..<rows {
        let row = m + r * cols
        for c in 0..<cols { out[c] += row[c] }
    }
}

/// Dense layer backward: weight gradient (if `grad`) and dInput += dQ·W (if given).
func denseBackward(_ layer: DenseLayer, grad: Gradients.LayerGrad?, dQ: UnsafePointer<Float>, input: UnsafePointer<Float>,
                   rows: Int, dInput: UnsafeMutablePointer<Float>?) {
    if let gr = grad { denseWeightGradient(layer, grad: gr, dQ: dQ, input: input, rows: rows) }
    if let dx = dInput {
        BLAS.gemm(transA: false, transB: false, m: rows, n: layer.fanIn, k: layer.fanOut, a: dQ, lda: layer.fanOut,
                  b: layer.weight.pointer, ldb: layer.fanIn, beta: 1, c: dx, ldc: layer.fanIn)
    }
}

/// How a tower is back-propagated.
enum TowerRole {
    /// The ReLU network of the relu regime (feature net with its output layer).
    case tied
    /// The value net; `featureGrads` when ∂loss/∂gate must be collected for the feature net.
    case value(featureGrads: Bool)
    /// The feature net of a DGN with soft gates, driven by ∂loss/∂gate.
    case feature
}

extension ConvNetwork {
    @inline(__always)
    func applyGate(_ q: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>, count: Int) {
        switch spec.gateKind {
        case .hard:
            for i in 0..<count { g[i] = q[i] > 0 ? 1 : 0 }
        case .soft:
            let beta = spec.beta
            for i in 0..<count { g[i] = 1 / (1 + expf(-beta * q[i])) }
        }
    }

    /// Gates the value net's gated layer `l` multiplies by (valid after `gatherWiredGates`).
    func valueGates(_ l: Int, ws: ConvWorkspace) -> UnsafeMutablePointer<Float> {
        switch sources[l] {
        case .layer(let s): return ws.gates[s].pointer
        case .mapped: return ws.wired[l]!.pointer
        }
    }

    func gatherWiredGates(rows: Int, ws: ConvWorkspace) {
        for (l, s) in sources.enumerated() {
            guard case .mapped(let layers, let indices) = s, let dst = ws.wired[l]?.pointer else { continue }
            let size = plan.gatedShapes[l].size
            let srcSizes = plan.gatedShapes.map(\.size)
            let srcPointers = ws.gates.map(\.pointer)
            layers.withUnsafeBufferPointer { ly in
                indices.withUnsafeBufferPointer { ix in
                    for r in 0..<rows {
                        let d = dst + r * size
                        for i in 0..<size {
                            let src = Int(ly[i])
                            d[i] = srcPointers[src][r * srcSizes[src] + Int(ix[i])]
                        }
                    }
                }
            }
        }
    }

    /// Run ops 0..<opCount of one tower. Feature towers (`isValue` false) apply χ and, if
    /// `gates`, write the gates; value towers multiply by the (wired) feature gates.
    func runTower(_ layers: [DenseLayer?], _ t: TowerBuffers, input: UnsafePointer<Float>, rows: Int, ws: ConvWorkspace,
                  isValue: Bool, gates: Bool, opCount: Int) {
        func src(_ i: Int) -> UnsafePointer<Float> { i < 0 ? input : UnsafePointer(t.act[i].pointer) }
        var pool = 0
        for i in 0..<opCount {
            let op = plan.ops[i]
            let out = t.act[i].pointer
            let count = rows * op.outShape.size
            switch op.step {
            case .conv(let p, let g):
                convForward(layers[p]!, g, input: src(op.source), rows: rows, output: t.pre[i]!.pointer, ws: ws)
            case .dense(let p):
                denseForward(layers[p]!, input: src(op.source), rows: rows, output: op.gated != nil ? t.pre[i]!.pointer : out)
            case .averagePool:
                let pos = op.inShape.positions, c = op.inShape.channels
                let x = src(op.source), inv = 1 / Float(pos)
                for r in 0..<rows {
                    let o = out + r * c
                    o.update(repeating: 0, count: c)
                    for p in 0..<pos {
                        let row = x + (r * pos + p) * c
                        for j in 0..<c { o[j] += row[j] }
                    }
                    for j in 0..<c { o[j] *= inv }
                }
            case .maxPool:
                let pos = op.inShape.positions, c = op.inShape.channels
                let x = src(op.source), am = ws.argmax[pool].pointer
                pool += 1
                if isValue {
                    for r in 0..<rows {
                        for j in 0..<c { out[r * c + j] = x[(r * pos + Int(am[r * c + j])) * c + j] }
                    }
                } else {
                    for r in 0..<rows {
                        for j in 0..<c {
                            var best = x[r * pos * c + j], at: Int32 = 0
                            for p in 1..<max(pos, 1) where x[(r * pos + p) * c + j] > best {
                                best = x[(r * pos + p) * c + j]; at = Int32(p)
                            }
                            out[r * c + j] = best; am[r * c + j] = at
                        }
                    }
                }
            case .residual(let skip, let proj, let g):
                let prev = src(op.source)
                if let p = proj {
                    if let g { convForward(layers[p]!, g, input: src(skip), rows: rows, output: out, ws: ws) }
                    else { denseForward(layers[p]!, input: src(skip), rows: rows, output: out) }
                    for j in 0..<count { out[j] += prev[j] }
                } else {
                    let s = src(skip)
                    for j in 0..<count { out[j] = prev[j] + s[j] }
                }
            }
            if let l = op.gated {
                let q = UnsafePointer(t.pre[i]!.pointer)
                if isValue {
                    let g = valueGates(l, ws: ws)
                    for j in 0..<count { out[j] = q[j] * g[j] }
                } else {
                    if gates { applyGate(q, ws.gates[l].pointer, count: count) }
                    if spec.activation == .relu {
                        for j in 0..<count { out[j] = q[j] > 0 ? q[j] : 0 }
                    } else {
                        out.update(from: q, count: count)
                    }
                }
            }
        }
    }

    /// Forward pass of `rows` samples (≤ ws.capacity); returns the output pointer (rows × k).
    @discardableResult
    func forward(_ x: UnsafePointer<Float>, rows: Int, ws: ConvWorkspace) -> UnsafeMutablePointer<Float> {
        let n = plan.ops.count
        if tied {
            runTower(feature, ws.feature, input: x, rows: rows, ws: ws, isValue: false, gates: false, opCount: n)
            return ws.feature.act[n - 1].pointer
        }
        runTower(feature, ws.feature, input: x, rows: rows, ws: ws, isValue: false, gates: true, opCount: featureOps)
        gatherWiredGates(rows: rows, ws: ws)
        let xv = spec.valueInput == .ones ? UnsafePointer(ws.ones!.pointer) : x
        runTower(value, ws.value!, input: xv, rows: rows, ws: ws, isValue: true, gates: false, opCount: n)
        return ws.value!.act[n - 1].pointer
    }

    /// Which parts receive gradients.
    var trainableParts: (feature: Bool, value: Bool) {
        if tied { return (!featureFrozen, !featureFrozen) }
        return (!featureFrozen && spec.gateKind == .soft, !valueFrozen)
    }

    /// Back-propagate `dOut` (rows × k, already scaled by 1/batch) after `forward`, writing the
    /// gradients of every trainable parameter into `featureGrads` / `valueGrads`.
    func backward(_ x: UnsafePointer<Float>, rows: Int, ws: ConvWorkspace, dOut: UnsafePointer<Float>,
                  featureGrads: [Gradients.LayerGrad?], valueGrads: [Gradients.LayerGrad?]) {
        let n = plan.ops.count
        let parts = trainableParts
        if tied {
            ws.feature.grad[n - 1].pointer.update(from: dOut, count: rows * outputSize)
            backTower(feature, parts.feature ? featureGrads : [], ws.feature, input: x, rows: rows, ws: ws, role: .tied, opCount: n)
            return
        }
        let v = ws.value!
        v.grad[n - 1].pointer.update(from: dOut, count: rows * outputSize)
        let xv = spec.valueInput == .ones ? UnsafePointer(ws.ones!.pointer) : x
        for g in ws.dGate { g.pointer.update(repeating: 0, count: rows * (g.count / ws.capacity)) }
        backTower(value, parts.value ? valueGrads : [], v, input: xv, rows: rows, ws: ws,
                  role: .value(featureGrads: parts.feature), opCount: n)
        if parts.feature {
            backTower(feature, featureGrads, ws.feature, input: x, rows: rows, ws: ws, role: .feature, opCount: featureOps)
        }
    }

    /// Reverse pass over ops opCount-1 ... 0 of one tower. `grads` empty = no parameter
    /// gradients. The last op's `t.grad` must hold its output gradient (value / tied towers).
    func backTower(_ layers: [DenseLayer?], _ grads: [Gradients.LayerGrad?], _ t: TowerBuffers, input: UnsafePointer<Float>,
                   rows: Int, ws: ConvWorkspace, role: TowerRole, opCount: Int) {
        let zeroFrom: Int
        switch role {
        case .feature: zeroFrom = opCount
        default: zeroFrom = opCount - 1
        }
        for i in 0..<zeroFrom { t.grad[i].pointer.update(repeating: 0, count: rows * plan.ops[i].outShape.size) }
        func src(_ i: Int) -> UnsafePointer<Float> { i < 0 ? input : UnsafePointer(t.act[i].pointer) }
        func dsrc(_ i: Int) -> UnsafeMutablePointer<Float>? { i < 0 ? nil : t.grad[i].pointer }
        func grad(_ p: Int) -> Gradients.LayerGrad? { grads.isEmpty ? nil : grads[p] }
        var pool = ws.argmax.count
        for i in stride(from: opCount - 1, through: 0, by: -1) {
            let op = plan.ops[i]
            let dA = t.grad[i].pointer
            let count = rows * op.outShape.size
            var dQ = UnsafePointer(dA)
            if let l = op.gated {
                let q = t.pre[i]!.pointer, d = ws.scratch.pointer
                switch role {
                case .tied:
                    for j in 0..<count { d[j] = q[j] > 0 ? dA[j] : 0 }
                case .value(let collect):
                    let g = valueGates(l, ws: ws)
                    if collect { collectGateGradient(l, dA: dA, q: q, rows: rows, ws: ws) }
                    for j in 0..<count { d[j] = dA[j] * g[j] }
                case .feature:
                    let g = ws.gates[l].pointer, dG = ws.dGate[l].pointer, beta = spec.beta
                    if spec.activation == .relu {
                        for j in 0..<count { d[j] = dG[j] * beta * g[j] * (1 - g[j]) + (q[j] > 0 ? dA[j] : 0) }
                    } else {
                        for j in 0..<count { d[j] = dG[j] * beta * g[j] * (1 - g[j]) + dA[j] }
                    }
                }
                dQ = UnsafePointer(d)
            }
            switch op.step {
            case .conv(let p, let g):
                convBackward(layers[p]!, g, grad: grad(p), dQ: dQ, input: src(op.source), rows: rows, dInput: dsrc(op.source), ws: ws)
            case .dense(let p):
                denseBackward(layers[p]!, grad: grad(p), dQ: dQ, input: src(op.source), rows: rows, dInput: dsrc(op.source))
            case .averagePool:
                guard let dx = dsrc(op.source) else { break }
                let pos = op.inShape.positions, c = op.inShape.channels, inv = 1 / Float(pos)
                for r in 0..<rows {
                    for p in 0..<pos {
                        let row = dx + (r * pos + p) * c
                        for j in 0..<c { row[j] += dA[r * c + j] * inv }
                    }
                }
            case .maxPool:
                pool -= 1
                guard let dx = dsrc(op.source) else { break }
                let pos = op.inShape.positions, c = op.inShape.channels, am = ws.argmax[pool].pointer
                for r in 0..<rows {
                    for j in 0..<c { dx[(r * pos + Int(am[r * c + j])) * c + j] += dA[r * c + j] }
                }
            case .residual(let skip, let proj, let g):
                if let dx = dsrc(op.source) { for j in 0..<count { dx[j] += dA[j] } }
                if let p = proj {
                    if let g {
                        convBackward(layers[p]!, g, grad: grad(p), dQ: dA, input: src(skip), rows: rows, dInput: dsrc(skip), ws: ws)
                    } else {
                        denseBackward(layers[p]!, grad: grad(p), dQ: dA, input: src(skip), rows: rows, dInput: dsrc(skip))
                    }
                } else if let dx = dsrc(skip) {
                    for j in 0..<count { dx[j] += dA[j] }
                }
            }
        }
    }

    /// ∂loss/∂Ĝ = dZ ⊙ q of value layer l, routed back to the feature gates it came from.
    private func collectGateGradient(_ l: Int, dA: UnsafePointer<Float>, q: UnsafePointer<Float>, rows: Int, ws: ConvWorkspace) {
        let size = plan.gatedShapes[l].size
        switch sources[l] {
        case .layer(let s):
            let d = ws.dGate[s].pointer
            for j in 0..<(rows * size) { d[j] += dA[j] * q[j] }
        case .mapped(let layers, let indices):
            let srcSizes = plan.gatedShapes.map(\.size)
            let dst = ws.dGate.map(\.pointer)
            for r in 0..<rows {
                for i in 0..<size {
                    let s = Int(layers[i])
                    dst[s][r * srcSizes[s] + Int(indices[i])] += dA[r * size + i] * q[r * size + i]
                }
            }
        }
    }
}
