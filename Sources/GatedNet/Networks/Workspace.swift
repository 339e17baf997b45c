/// Scratch buffers for forward and backward passes over up to `capacity` rows, allocated once
/// and reused by every batch (no allocation per sample or per batch in the hot loops).
final class Workspace {
    let capacity: Int
    let qf: [FloatBuffer]      // feature pre-activations, per hidden layer
    let zf: [FloatBuffer]      // feature activations (aliases qf for identity activation)
    let gates: [FloatBuffer]   // per feature layer
    let qv: [FloatBuffer]      // value pre-activations
    let zv: [FloatBuffer]      // value activations
    let out: FloatBuffer       // capacity × k
    let dOut: FloatBuffer
    let dA: FloatBuffer        // ping-pong back-propagation buffers, capacity × max width
    let dB: FloatBuffer
    let dC: FloatBuffer
    let dGate: [FloatBuffer]   // gradient w.r.t. gates, per feature layer
    let ones: FloatBuffer?     // capacity × d_in of ones for value input ones
    let batchX: FloatBuffer    // gathered minibatch

    init(spec: NetworkSpec, capacity: Int) {
        self.capacity = capacity
        let widths = spec.hiddenWidths
        qf = widths.map { FloatBuffer(count: capacity * $0) }
        zf = spec.activation == .relu ? widths.map { FloatBuffer(count: capacity * $0) } : qf
        gates = widths.map { FloatBuffer(count: capacity * $0) }
        if spec.tied {
            qv = []; zv = []
        } else {
            qv = widths.map { FloatBuffer(count: capacity * $0) }
            zv = widths.map { FloatBuffer(count: capacity * $0) }
        }
        out = FloatBuffer(count: capacity * spec.outputSize)
        dOut = FloatBuffer(count: capacity * spec.outputSize)
        let maxW = max(widths.max() ?? 1, spec.outputSize)
        dA = FloatBuffer(count: capacity * maxW)
        dB = FloatBuffer(count: capacity * maxW)
        dC = FloatBuffer(count: capacity * maxW)
        dGate = spec.gateKind == .soft ? widths.map { FloatBuffer(count: capacity * $0) } : []
        ones = spec.valueInput == .ones ? FloatBuffer(count: capacity * spec.inputSize, repeating: 1) : nil
        batchX = FloatBuffer(count: capacity * spec.inputSize)
    }
}

/// Gradient buffers shaped like the parameters (allocated once per network).
final class Gradients {
    struct LayerGrad {
        let weight: FloatBuffer
        let bias: FloatBuffer?
        init(_ layer: DenseLayer) {
            weight = FloatBuffer(count: layer.weight.count)
            bias = layer.bias.map { FloatBuffer(count: $0.count) }
        }
    }
    let feature: [LayerGrad]
    let head: LayerGrad?
    let value: [LayerGrad]

    init(_ net: GatedNetwork) {
        feature = net.featureLayers.map(LayerGrad.init)
        head = net.featureHead.map(LayerGrad.init)
        value = net.valueLayers.map(LayerGrad.init)
    }

    func buffer(for key: ParameterKey, hiddenCount: Int) -> FloatBuffer? {
        let g: LayerGrad?
        switch key.part {
        case .feature: g = key.layer < hiddenCount ? feature[key.layer] : head
        case .value: g = value[key.layer]
        }
        return key.isBias ? g?.bias : g?.weight
    }
}

extension GatedNetwork {
    /// The scratch space for at least `rows` rows, grown when needed.
    func workspace(rows: Int) -> Workspace {
        if let ws = workspace, ws.capacity >= rows { return ws }
        let ws = Workspace(spec: spec, capacity: max(rows, 1))
        workspace = ws
        return ws
    }

    /// The scratch space of the second part of work split in two (`inParallel`).
    func partnerWorkspace(rows: Int) -> Workspace {
        if let ws = partnerWorkspace, ws.capacity >= rows { return ws }
        let ws = Workspace(spec: spec, capacity: max(rows, 1))
        partnerWorkspace = ws
        return ws
    }

    /// Run `body(start, count, ws, part)` over row chunks [0, c), [c, 2c), … (c ≤ `largest`, a
    /// function of `rows` only) with even chunks on one core (part 0) and odd ones on the other
    /// (part 1), each part with its own workspace and single-threaded BLAS. Chunk boundaries do not depend on the threads, nor do the results.
    func forEachChunkInParallel(rows: Int, chunk largest: Int, _ body: (Int, Int, Workspace, Int) -> Void) {
        // At least two chunks once there are 128 rows.
        let chunk = min(largest, max(64, (rows + 1) / 2))
        let chunks = (rows + chunk - 1) / chunk
        let spaces = [workspace(rows: min(chunk, rows)), partnerWorkspace(rows: min(chunk, rows))]
        // Always one BLAS thread, so that a row's numbers are the same inside training (which
        // runs single-threaded BLAS) and outside.
        BLAS.singleThreaded {
            inParallel { part in
                for c in stride(from: part, to: chunks, by: 2) {
                    body(c * chunk, min(chunk, rows - c * chunk), spaces[part], part)
                }
            }
        }
    }
}
