/// A convolutional / residual deep gated network (MATH.md §5): the same layer list builds the
/// feature net (whose pre-activations give per-(position, channel) gates) and the value net
/// (whose gated units are multiplied by them). In the `relu` regime the value net *is* the
/// feature net. Tensors are NHWC per sample.
///
/// Residual blocks: feature net `z_out = χ(q_last) + skip(z_in)`, value net
/// `z_out = G ⊙ q_last + skip(z_in)`, skip = identity or a learnt ungated 1×1 projection.
///
/// Not thread-safe: one instance from one thread at a time (it keeps scratch buffers).
public final class ConvNetwork {
    public let spec: ConvNetworkSpec
    let plan: ConvPlan
    /// Feature net parameters per plan parameter (the output layer only when tied).
    let feature: [DenseLayer?]
    /// Value net parameters per plan parameter; empty when tied.
    let value: [DenseLayer?]
    /// Where each value gated layer takes its gates from.
    let sources: [GateSource]
    public internal(set) var featureFrozen: Bool
    public internal(set) var valueFrozen: Bool = false
    public internal(set) var epochsTrained: Int = 0
    var optimizerState: OptimizerState?
    var workspace: ConvWorkspace?
    /// How the 3×3 convs are computed; changing it drops the workspace (tests compare paths).
    var convAlgorithm: ConvAlgorithm = .automatic {
        didSet { workspace = nil }
    }

    /// How one value gated layer reads gates.
    enum GateSource {
        /// The whole tensor of one feature gated layer.
        case layer(Int)
        /// Element i (within a sample) comes from feature layer `layers[i]`, element `indices[i]`.
        case mapped(layers: [Int32], indices: [Int32])
    }

    public convenience init(spec: ConvNetworkSpec, gateSource: ConvNetwork? = nil) throws {
        try self.init(spec: spec, gateSource: gateSource, weightsFollow: false)
    }

    /// `weightsFollow`: a decoder is about to overwrite every parameter tensor (weights left
    /// zero, no random initialisation, no gates copied).
    init(spec: ConvNetworkSpec, gateSource: ConvNetwork?, weightsFollow: Bool) throws {
        plan = try spec.validatedPlan()
        try ConvNetwork.checkScratch(plan: plan, inputSize: spec.inputSize, rows: 1, gradients: true, "network")
        self.spec = spec
        var rng = SeededGenerator(seed: spec.seed)
        func make(_ p: ParamInfo) -> DenseLayer {
            let l = DenseLayer(fanOut: p.fanOut, fanIn: p.fanIn, bias: p.bias)
            if !weightsFollow { l.initialise(spec.initKind, scale: spec.initScale, rng: &rng) }
            return l
        }
        feature = plan.params.map { p in
            if case .output = p.role, !spec.tied { return nil }
            return make(p)
        }
        if spec.tied {
            value = []
        } else {
            let v = plan.params.map { make($0) }
            if spec.regime == .fixedRandomDI && !weightsFollow {
                for (d, s) in zip(v, feature) { if let s { d.assign(from: s) } }
            }
            value = v
        }
        switch spec.regime {
        case .fixedLearnt, .fixedRandomII, .fixedRandomDI: featureFrozen = true
        case .custom: featureFrozen = spec.featureFrozen
        default: featureFrozen = false
        }
        sources = ConvNetwork.wire(spec: spec, plan: plan)
        if spec.regime == .fixedLearnt && !weightsFollow {
            guard let source = gateSource else {
                throw GatedNetError.invalidArgument("gate_source: regime fixed_learnt needs a trained conv network to copy gates from")
            }
            try copyFeatureWeights(from: source, freeze: true)
        }
    }

    /// Deep copy: weights, flags and optimizer state.
    public init(copying other: ConvNetwork) {
        spec = other.spec
        plan = other.plan
        feature = other.feature.map { $0?.copy() }
        value = other.value.map { $0?.copy() }
        sources = other.sources
        featureFrozen = other.featureFrozen
        valueFrozen = other.valueFrozen
        epochsTrained = other.epochsTrained
        optimizerState = other.optimizerState?.copy()
        convAlgorithm = other.convAlgorithm
    }

    static func wire(spec: ConvNetworkSpec, plan: ConvPlan) -> [GateSource] {
        let n = plan.gatedShapes.count
        switch spec.wiring {
        case .permuted:
            return (0..<n).map { .layer(spec.permutation?[$0] ?? $0) }
        case .tiledRotated:
            let convLayers = (0..<n).filter { if case .conv = plan.ops[plan.gatedOps[$0]].step { return true }; return false }
            let h = plan.gatedShapes[convLayers[0]].height, w = plan.gatedShapes[convLayers[0]].width
            // Global channel g of the stack belongs to layer owner[g], channel local[g].
            var owner: [Int] = [], local: [Int] = []
            for l in convLayers {
                for c in 0..<plan.gatedShapes[l].channels { owner.append(l); local.append(c) }
            }
            let total = owner.count
            var rng = SeededGenerator(seed: spec.wiringSeed)
            let oc = rng.nextInt(below: total), oh = rng.nextInt(below: h), ow = rng.nextInt(below: w)
            var result = (0..<n).map { GateSource.layer($0) }
            var offset = 0
            for l in convLayers {
                let s = plan.gatedShapes[l]
                var layers = [Int32](repeating: 0, count: s.size), indices = [Int32](repeating: 0, count: s.size)
                for y in 0..<h {
                    for x in 0..<w {
                        for c in 0..<s.channels {
                            let g = (offset + c + oc) % total
                            let sy = (y + oh) % h, sx = (x + ow) % w
                            let src = owner[g]
                            let i = (y * w + x) * s.channels + c
                            layers[i] = Int32(src)
                            indices[i] = Int32((sy * w + sx) * plan.gatedShapes[src].channels + local[g])
                        }
                    }
                }
                result[l] = .mapped(layers: layers, indices: indices)
                offset += s.channels
            }
            return result
        }
    }

    public var tied: Bool { spec.tied }
    public var inputSize: Int { spec.inputSize }
    public var outputSize: Int { plan.outputSize }
    public var inputShape: TensorShape { TensorShape(height: spec.inputHeight, width: spec.inputWidth, channels: spec.inputChannels) }
    /// Shapes of the gated layers (conv and hidden dense), input to output.
    public var gatedShapes: [TensorShape] { plan.gatedShapes }
    public var parameterCount: Int {
        (feature + value).reduce(0) { $0 + ($1.map { $0.weight.count + ($0.bias?.count ?? 0) } ?? 0) }
    }
    /// Ops the feature net runs: all when tied, else up to its last gated layer or max pooling
    /// (later ops influence no gate).
    var featureOps: Int {
        if tied { return plan.ops.count }
        let last = plan.ops.indices.last { i in
            if plan.ops[i].gated != nil { return true }
            if case .maxPool = plan.ops[i].step { return true }
            return false
        } ?? 0
        return last + 1
    }

    /// Number of residual blocks.
    public var residualBlockCount: Int {
        plan.ops.filter { if case .residual = $0.step { return true }; return false }.count
    }

    /// Value layers of the computation (the feature layers when tied).
    var valueLayers: [DenseLayer?] { tied ? feature : value }

    /// Freeze or unfreeze a part. Unfreezing drops that part's optimizer moments.
    public func setFrozen(_ part: Part, _ frozen: Bool) {
        if tied || part == .feature { featureFrozen = frozen }
        if tied || part == .value { valueFrozen = frozen }
        if !frozen { optimizerState?.reset(part: part, tied: tied) }
    }

    /// Copy the feature weights (gated layers and projections) of `source`, e.g. a trained
    /// `relu` conv net, so that both compute the same gates on every input.
    public func copyFeatureWeights(from source: ConvNetwork, freeze: Bool) throws {
        guard source.plan.params.count == plan.params.count,
              zip(source.plan.params, plan.params).allSatisfy({ $0.fanIn == $1.fanIn && $0.fanOut == $1.fanOut && $0.bias == $1.bias }),
              source.inputShape == inputShape, source.gatedShapes == gatedShapes else {
            throw GatedNetError.shape("gate source: its layers (\(source.describeShapes)) differ from this network's (\(describeShapes))")
        }
        for (i, p) in plan.params.enumerated() {
            if case .output = p.role { continue }
            if let d = feature[i], let s = source.feature[i] { d.assign(from: s) }
        }
        if freeze { featureFrozen = true }
        optimizerState?.reset(part: .feature, tied: tied)
    }

    var describeShapes: String {
        ([inputShape.description] + gatedShapes.map(\.description) + ["\(outputSize)"]).joined(separator: "-")
    }

    /// Every parameter tensor with a stable key (layer = plan parameter index).
    var parameterTensors: [(key: ParameterKey, buffer: FloatBuffer)] {
        var out: [(ParameterKey, FloatBuffer)] = []
        for (part, layers) in [(Part.feature, feature), (Part.value, value)] {
            for (i, l) in layers.enumerated() {
                guard let l else { continue }
                out.append((ParameterKey(part: part, layer: i, isBias: false), l.weight))
                if let b = l.bias { out.append((ParameterKey(part: part, layer: i, isBias: true), b)) }
            }
        }
        return out
    }

    /// Every parameter tensor with a readable name ("value.3.weight"), for inspection and
    /// gradient checks. Conv weights are out_channels × (k·k·in_channels), index
    /// ((ky·k + kx)·in_channels + c).
    public var parameters: [(name: String, buffer: FloatBuffer)] {
        parameterTensors.map { ("\($0.key.part == .feature ? "feature" : "value").\($0.key.layer).\($0.key.isBias ? "bias" : "weight")", $0.buffer) }
    }

    /// Shape (rows × cols) of each tensor of `parameters`: weights fanOut × fanIn, biases fanOut × 1.
    public var parameterShapes: [(rows: Int, cols: Int)] {
        parameterTensors.map { entry in
            let p = plan.params[entry.key.layer]
            return entry.key.isBias ? (p.fanOut, 1) : (p.fanOut, p.fanIn)
        }
    }

    /// One-line description.
    public var summary: String {
        var parts = [tied ? "conv ReLU network" : "conv DGN", spec.regime.name, describeShapes]
        if !tied {
            parts.append(spec.activation == .relu ? "relu feature net" : "linear feature net")
            parts.append(spec.gateKind == .hard ? "hard gates" : "soft gates beta=\(spec.beta)")
            if spec.valueInput == .ones { parts.append("value input ones") }
            if spec.wiring == .tiledRotated { parts.append("gates tiled+rotated (seed \(spec.wiringSeed))") }
            if let p = spec.permutation, p != Array(0..<p.count) { parts.append("permutation \(p)") }
        }
        let blocks = residualBlockCount
        if blocks > 0 { parts.append("\(blocks) residual blocks") }
        if featureFrozen && !tied { parts.append("feature frozen") }
        if valueFrozen { parts.append("value frozen") }
        parts.append("\(parameterCount) parameters")
        parts.append("\(epochsTrained) epochs trained")
        return parts.joined(separator: ", ")
    }
}
