/// Int32 scratch with a stable pointer (argmax positions of max pooling).
final class IndexBuffer {
    let pointer: UnsafeMutablePointer<Int32>
    init(count: Int) {
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }
    deinit { pointer.deallocate() }
}

/// Per-op buffers of one tower (feature or value net) for up to `capacity` samples.
final class TowerBuffers {
    /// Pre-activations q of gated ops (nil elsewhere).
    let pre: [FloatBuffer?]
    /// Output of every op (z for gated ops).
    let act: [FloatBuffer]
    /// ∂loss/∂act per op (empty when the workspace serves inference only).
    let grad: [FloatBuffer]

    init(plan: ConvPlan, capacity: Int, ops: Int, gradients: Bool) {
        let sizes = plan.ops.prefix(ops).map { capacity * $0.outShape.size }
        pre = plan.ops.prefix(ops).enumerated().map { $0.element.gated != nil ? FloatBuffer(count: sizes[$0.offset]) : nil }
        act = sizes.map { FloatBuffer(count: $0) }
        grad = gradients ? sizes.map { FloatBuffer(count: $0) } : []
    }
}

/// Scratch for forward and backward passes, allocated once per batch size and reused.
final class ConvWorkspace {
    let capacity: Int
    let gradients: Bool
    let feature: TowerBuffers
    let value: TowerBuffers?
    /// Gates of every feature gated layer.
    let gates: [FloatBuffer]
    /// Gates gathered for value layers wired through an index map (nil for direct layers).
    let wired: [FloatBuffer?]
    /// ∂loss/∂gate per feature gated layer (soft gates with gradients only).
    let dGate: [FloatBuffer]
    let argmax: [IndexBuffer]
    /// im2col matrix for a chunk of samples.
    let col: FloatBuffer
    let colCapacity: Int
    /// ∂loss/∂q scratch and a second temporary, capacity × largest op output.
    let scratch: FloatBuffer
    let ones: FloatBuffer?
    let batchX: FloatBuffer
    var batchY: [Int32]

    /// Floats of im2col scratch: bounds memory whatever the batch (at least one sample).
    static let colBudget = 1 << 22

    init(network n: ConvNetwork, capacity: Int, gradients: Bool) {
        let plan = n.plan
        self.capacity = capacity
        self.gradients = gradients
        feature = TowerBuffers(plan: plan, capacity: capacity, ops: n.tied ? plan.ops.count : plan.ops.count - 1,
                               gradients: gradients && (n.tied || n.spec.gateKind == .soft))
        value = n.tied ? nil : TowerBuffers(plan: plan, capacity: capacity, ops: plan.ops.count, gradients: gradients)
        gates = plan.gatedShapes.map { FloatBuffer(count: capacity * $0.size) }
        wired = n.sources.enumerated().map { l, s in
            if case .mapped = s, !n.tied { return FloatBuffer(count: capacity * plan.gatedShapes[l].size) }
            return nil
        }
        dGate = gradients && n.spec.gateKind == .soft && !n.tied ? plan.gatedShapes.map { FloatBuffer(count: capacity * $0.size) } : []
        argmax = plan.ops.compactMap { op in
            if case .maxPool = op.step { return IndexBuffer(count: capacity * op.outShape.size) }
            return nil
        }
        var perSample = 1
        for op in plan.ops {
            switch op.step {
            case .conv(_, let g): perSample = max(perSample, g.output.positions * g.patch)
            case .residual(_, _, let g?): perSample = max(perSample, g.output.positions * g.patch)
            default: break
            }
        }
        colCapacity = max(perSample, min(ConvWorkspace.colBudget, perSample * capacity))
        col = FloatBuffer(count: colCapacity)
        let largest = plan.ops.map { $0.outShape.size }.max() ?? 1
        scratch = FloatBuffer(count: capacity * largest)
        ones = n.spec.valueInput == .ones && !n.tied ? FloatBuffer(count: capacity * n.inputSize, repeating: 1) : nil
        batchX = FloatBuffer(count: capacity * n.inputSize)
        batchY = [Int32](repeating: 0, count: capacity)
    }
}

extension ConvNetwork {
    /// Scratch for at least `rows` samples (with gradient buffers if asked), grown when needed.
    func workspace(rows: Int, gradients: Bool) -> ConvWorkspace {
        if let ws = workspace, ws.capacity >= rows, ws.gradients || !gradients { return ws }
        let ws = ConvWorkspace(network: self, capacity: max(rows, 1), gradients: gradients)
        workspace = ws
        return ws
    }
}

/// Samples processed at once by prediction, evaluation and gate export.
let convEvaluationChunk = 128
