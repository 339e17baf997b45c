import CKernels

/// dW = dQᵀ · input (fanOut × fanIn), db = column sums of dQ.
@inline(__always)
func denseWeightGradient(_ layer: DenseLayer, grad: Gradients.LayerGrad, dQ: UnsafePointer<Float>,
                         input: UnsafePointer<Float>, rows: Int) {
    BLAS.gemm(transA: true, transB: false, m: layer.fanOut, n: layer.fanIn, k: rows,
              a: dQ, lda: layer.fanOut, b: input, ldb: layer.fanIn, c: grad.weight.pointer, ldc: layer.fanIn)
    if let gb = grad.bias?.pointer {
        gnk_column_sums(dQ, rows, layer.fanOut, gb)
    }
}

/// dInput = dQ · W (rows × fanIn).
@inline(__always)
func denseInputGradient(_ layer: DenseLayer, dQ: UnsafePointer<Float>, rows: Int, dInput: UnsafeMutablePointer<Float>) {
    BLAS.gemm(transA: false, transB: false, m: rows, n: layer.fanIn, k: layer.fanOut,
              a: dQ, lda: layer.fanOut, b: layer.weight.pointer, ldb: layer.fanIn, c: dInput, ldc: layer.fanIn)
}

extension GatedNetwork {
    /// Which parts receive gradients for a pass target.
    func trainableParts(target: PassTarget) -> (feature: Bool, value: Bool) {
        if tied { return (!featureFrozen, !featureFrozen) }
        switch target {
        case .featureHead:
            return (!featureFrozen, false)
        case .network:
            // Hard gates pass no gradient into the feature net.
            return (!featureFrozen && spec.gateKind == .soft, !valueFrozen)
        }
    }

    /// Back-propagate `ws.dOut` (rows × k, already scaled by 1/batch) after `forward`, writing the
    /// gradients of every trainable parameter into `grads`.
    func backward(_ x: UnsafePointer<Float>, rows: Int, ws: Workspace, grads: Gradients, target: PassTarget) {
        if tied || target == .featureHead {
            backwardStandalone(x, rows: rows, ws: ws, grads: grads)
        } else {
            backwardGated(x, rows: rows, ws: ws, grads: grads)
        }
    }

    /// The feature net with its head as an ordinary network with activation χ.
    private func backwardStandalone(_ x: UnsafePointer<Float>, rows: Int, ws: Workspace, grads: Gradients) {
        let h = hiddenCount
        guard let head = featureHead, let headGrad = grads.head else { return }
        denseWeightGradient(head, grad: headGrad, dQ: ws.dOut.pointer, input: ws.zf[h - 1].pointer, rows: rows)
        let dZ = ws.dA.pointer, dQ = ws.dB.pointer
        denseInputGradient(head, dQ: ws.dOut.pointer, rows: rows, dInput: dZ)
        for l in stride(from: h - 1, through: 0, by: -1) {
            let layer = featureLayers[l]
            let count = rows * layer.fanOut
            if spec.activation == .relu {
                gnk_mask_positive(dZ, ws.qf[l].pointer, dQ, count)
            } else {
                dQ.update(from: dZ, count: count)
            }
            let input = l == 0 ? x : UnsafePointer(ws.zf[l - 1].pointer)
            denseWeightGradient(layer, grad: grads.feature[l], dQ: dQ, input: input, rows: rows)
            if l > 0 {
                denseInputGradient(layer, dQ: dQ, rows: rows, dInput: dZ)
            }
        }
    }

    /// Value net backward, then (soft gates, trainable features) feature net backward through
    /// ∂G/∂q = β G (1 − G).
    private func backwardGated(_ x: UnsafePointer<Float>, rows: Int, ws: Workspace, grads: Gradients) {
        let h = hiddenCount
        let parts = trainableParts(target: .network)
        let xv = spec.valueInput == .ones ? UnsafePointer(ws.ones!.pointer) : x
        let out = valueLayers[h]
        if parts.value {
            denseWeightGradient(out, grad: grads.value[h], dQ: ws.dOut.pointer, input: ws.zv[h - 1].pointer, rows: rows)
        }
        let dZ = ws.dA.pointer, dQ = ws.dB.pointer
        denseInputGradient(out, dQ: ws.dOut.pointer, rows: rows, dInput: dZ)
        for l in stride(from: h - 1, through: 0, by: -1) {
            let layer = valueLayers[l]
            let count = rows * layer.fanOut
            let gl = spec.gateLayer(l)
            let g = ws.gates[gl].pointer
            if parts.feature {
                gnk_mul(dZ, ws.qv[l].pointer, ws.dGate[gl].pointer, count)
            }
            gnk_mul(dZ, g, dQ, count)
            if parts.value {
                let input = l == 0 ? xv : UnsafePointer(ws.zv[l - 1].pointer)
                denseWeightGradient(layer, grad: grads.value[l], dQ: dQ, input: input, rows: rows)
            }
            if l > 0 {
                denseInputGradient(layer, dQ: dQ, rows: rows, dInput: dZ)
            }
        }
        guard parts.feature else { return }
        let beta = spec.beta
        let dZf = ws.dA.pointer, dQf = ws.dC.pointer
        for l in stride(from: h - 1, through: 0, by: -1) {
            let layer = featureLayers[l]
            let count = rows * layer.fanOut
            gnk_soft_gate_backward(ws.dGate[l].pointer, ws.gates[l].pointer, l < h - 1 ? dZf : nil,
                                   ws.qf[l].pointer, spec.activation == .relu ? 1 : 0, beta, dQf, count)
            let input = l == 0 ? x : UnsafePointer(ws.zf[l - 1].pointer)
            denseWeightGradient(layer, grad: grads.feature[l], dQ: dQf, input: input, rows: rows)
            if l > 0 {
                denseInputGradient(layer, dQ: dQf, rows: rows, dInput: dZf)
            }
        }
    }
}
