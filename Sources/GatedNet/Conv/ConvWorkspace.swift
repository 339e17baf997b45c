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
    /// Which algorithm the 3×3 convs use (the network's `convAlgorithm` when this was made).
    let algorithm: ConvAlgorithm
    /// Winograd-domain scratch, one half per core, for chunks of samples (see `Winograd`).
    let wino: FloatBuffer
    /// Transformed filters (16 × Cout × Cin) and two partial gradients, largest Winograd layer.
    let winoFilter: FloatBuffer
    let winoFilterGrad: FloatBuffer
    let batchX: FloatBuffer

    /// Floats of im2col scratch: bounds memory whatever the batch (at least one sample).
    static let colBudget = 1 << 22
    /// Floats of Winograd scratch: bounds memory whatever the batch (at least one sample per
    /// core). Small enough that a chunk's transforms stay in cache for its sgemms: on GCONV
    /// training, 2^19 ... 2^21 ran alike and 2^22 / 2^23 10-20% slower.
    static let winoBudget = 1 << 21

    init(network n: ConvNetwork, capacity: Int, gradients: Bool) {
        let plan = n.plan
        self.capacity = capacity
        algorithm = n.convAlgorithm
        self.gradients = gradients
        feature = TowerBuffers(plan: plan, capacity: capacity, ops: n.featureOps,
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
            case .conv(_, let g) where !g.usesWinograd(n.convAlgorithm): perSample = max(perSample, g.output.positions * g.patch)
            case .residual(_, _, let g?): perSample = max(perSample, g.output.positions * g.patch)
            default: break
            }
        }
        colCapacity = max(perSample, min(ConvWorkspace.colBudget, perSample * capacity))
        col = FloatBuffer(count: colCapacity)
        var winoPerSample = 0, winoFilterSize = 0
        for op in plan.ops {
            guard case .conv(_, let g) = op.step, g.usesWinograd(algorithm) else { continue }
            winoPerSample = max(winoPerSample, g.winogradFloatsPerSample)
            winoFilterSize = max(winoFilterSize, 16 * g.input.channels * g.output.channels)
        }
        // Two halves (one per core), each holding at least one sample.
        let winoHalf = max(winoPerSample, min(ConvWorkspace.winoBudget / 2, winoPerSample * ((capacity + 1) / 2)))
        wino = FloatBuffer(count: 2 * winoHalf)
        winoFilter = FloatBuffer(count: winoFilterSize)
        winoFilterGrad = FloatBuffer(count: gradients ? 2 * winoFilterSize : 0)
        let largest = plan.ops.map { $0.outShape.size }.max() ?? 1
        scratch = FloatBuffer(count: capacity * largest)
        ones = n.spec.valueInput == .ones && !n.tied ? FloatBuffer(count: capacity * n.inputSize, repeating: 1) : nil
        batchX = FloatBuffer(count: capacity * n.inputSize)
    }
}

extension ConvNetwork {
    /// Scratch for at least `rows` samples (with gradient buffers if asked), grown when needed.
    /// Callers keep `rows` within `evaluationRows` / a batch checked by `checkScratch`.
    func workspace(rows: Int, gradients: Bool) -> ConvWorkspace {
        if let ws = workspace, ws.capacity >= rows, ws.gradients || !gradients { return ws }
        let ws = ConvWorkspace(network: self, capacity: max(rows, 1), gradients: gradients)
        workspace = ws
        return ws
    }

    func scratchFloatsPerSample(gradients: Bool) -> Int? {
        ConvNetwork.scratchFloatsPerSample(plan: plan, inputSize: inputSize, gradients: gradients)
    }

    /// Upper bound of the scratch floats per sample (towers, gradients, gates), or nil on
    /// overflow or when one sample's im2col matrix alone exceeds `scratchLimit`.
    static func scratchFloatsPerSample(plan: ConvPlan, inputSize: Int, gradients: Bool) -> Int? {
        var total = 0
        func add(_ v: Int, _ times: Int = 1) -> Bool {
            let (m, o1) = v.multipliedReportingOverflow(by: times)
            let (t, o2) = total.addingReportingOverflow(m)
            total = t
            return !o1 && !o2
        }
        let sizes = plan.ops.map { $0.outShape.size }
        let copies = gradients ? 3 : 2  // pre + act (+ grad), per tower
        for s in sizes { guard add(s, copies * 2) else { return nil } }
        for g in plan.gatedShapes { guard add(g.size, gradients ? 3 : 2) else { return nil } }
        guard add(sizes.max() ?? 0), add(inputSize, 2) else { return nil }
        // One sample's im2col matrix must fit too (the col buffer holds at least one).
        for op in plan.ops {
            let g: ConvGeometry
            switch op.step {
            case .conv(_, let geometry): g = geometry
            case .residual(_, _, let geometry?): g = geometry
            default: continue
            }
            let (col, overflow) = g.output.positions.multipliedReportingOverflow(by: g.patch)
            guard !overflow, col <= scratchLimit else { return nil }
            // and one sample's Winograd scratch (about 4/9 (1 + Cout/Cin) of it).
            if g.winogradEligible {
                let (wino, o2) = g.winogradTiles.multipliedReportingOverflow(by: 16 * (g.input.channels + g.output.channels))
                guard !o2, wino <= scratchLimit else { return nil }
            }
        }
        return total
    }

    /// Throws `.outOfMemory` unless scratch for `rows` samples stays within `scratchLimit`.
    func checkScratch(rows: Int, gradients: Bool, _ name: String) throws {
        try ConvNetwork.checkScratch(plan: plan, inputSize: inputSize, rows: rows, gradients: gradients, name)
    }

    static func checkScratch(plan: ConvPlan, inputSize: Int, rows: Int, gradients: Bool, _ name: String) throws {
        guard let per = scratchFloatsPerSample(plan: plan, inputSize: inputSize, gradients: gradients),
              per <= scratchLimit / max(rows, 1) else {
            throw GatedNetError.outOfMemory("\(name): \(rows) samples of this network need more than \(scratchLimit) floats of scratch; use fewer")
        }
    }

    /// Samples processed at once by prediction, evaluation and gate export (≤ 128, fewer
    /// for huge images so the scratch stays within `scratchLimit`).
    var evaluationRows: Int {
        guard let per = scratchFloatsPerSample(gradients: false), per > 0 else { return 1 }
        return max(1, min(128, scratchLimit / per))
    }
}

/// Largest scratch a conv network allocates, in floats (4 GiB).
let scratchLimit = 1 << 30
