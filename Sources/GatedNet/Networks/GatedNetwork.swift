/// Which of the two networks a parameter belongs to.
public enum Part: Int, Sendable { case feature = 0, value = 1 }

/// A fully connected deep gated network (MATH.md §1): a feature (gating) network whose
/// pre-activations give gates, and a value network whose hidden units are multiplied by them.
/// In the `relu` regime the value network *is* the feature network (tied weights, own head).
///
/// Not thread-safe: use one instance from one thread at a time (it keeps scratch buffers).
public final class GatedNetwork {
    public let spec: NetworkSpec
    /// Hidden layers of the feature net, input to last hidden.
    public let featureLayers: [DenseLayer]
    /// The feature net's own output layer (always present when tied).
    public let featureHead: DenseLayer?
    /// Value net layers, input to output; empty when tied.
    public let valueLayers: [DenseLayer]
    public internal(set) var featureFrozen: Bool
    public internal(set) var valueFrozen: Bool
    /// Epochs trained over the network's whole life (drives the per-epoch shuffle stream).
    public internal(set) var epochsTrained: Int = 0
    var optimizerState: OptimizerState?
    var workspace: Workspace?
    /// Scratch of the second half of a minibatch or row range (see `inParallel`).
    var partnerWorkspace: Workspace?

    /// Build a network from `spec`; `gateSource` is required by (and only read for) `.fixedLearnt`.
    public convenience init(spec: NetworkSpec, gateSource: GatedNetwork? = nil) throws {
        try self.init(spec: spec, gateSource: gateSource, weightsFollow: false)
    }

    /// `weightsFollow`: a decoder is about to overwrite every parameter tensor, so the weights
    /// are left zero (no random initialisation: ~9 ms per million parameters) and no gates are
    /// copied.
    init(spec: NetworkSpec, gateSource: GatedNetwork?, weightsFollow: Bool) throws {
        try spec.validate()
        self.spec = spec
        let shapes = spec.layerShapes
        let h = spec.hiddenCount
        var rng = SeededGenerator(seed: spec.seed)
        featureLayers = (0..<h).map { DenseLayer(fanOut: shapes[$0].out, fanIn: shapes[$0].in, bias: spec.bias) }
        func initialise(_ l: DenseLayer) {
            if !weightsFollow { l.initialise(spec.initKind, scale: spec.initScale, rng: &rng) }
        }
        for l in featureLayers { initialise(l) }
        if spec.featureHead || spec.tied {
            let head = DenseLayer(fanOut: shapes[h].out, fanIn: shapes[h].in, bias: spec.bias)
            initialise(head)
            featureHead = head
        } else {
            featureHead = nil
        }
        if spec.tied {
            valueLayers = []
        } else {
            let value = shapes.map { DenseLayer(fanOut: $0.out, fanIn: $0.in, bias: spec.bias) }
            for l in value { initialise(l) }
            if spec.regime == .fixedRandomDI && !weightsFollow {
                for l in 0..<h { value[l].assign(from: featureLayers[l]) }
                if let head = featureHead { value[h].assign(from: head) }
            }
            valueLayers = value
        }
        switch spec.regime {
        case .fixedLearnt, .fixedRandomII, .fixedRandomDI: featureFrozen = true
        case .custom: featureFrozen = spec.featureFrozen
        default: featureFrozen = false
        }
        valueFrozen = false
        if spec.regime == .fixedLearnt && !weightsFollow {
            guard let source = gateSource else {
                throw GatedNetError.invalidArgument("gate_source: regime fixed_learnt needs a trained network to copy gates from")
            }
            try copyFeatureWeights(from: source, freeze: true, sourceName: "spec->gate_source")
        }
    }

    /// Deep copy: weights, flags and optimizer state.
    public init(copying other: GatedNetwork) {
        spec = other.spec
        featureLayers = other.featureLayers.map { $0.copy() }
        featureHead = other.featureHead?.copy()
        valueLayers = other.valueLayers.map { $0.copy() }
        featureFrozen = other.featureFrozen
        valueFrozen = other.valueFrozen
        epochsTrained = other.epochsTrained
        optimizerState = other.optimizerState?.copy()
    }

    public var hiddenCount: Int { spec.hiddenCount }
    public var inputSize: Int { spec.inputSize }
    public var outputSize: Int { spec.outputSize }
    public var tied: Bool { spec.tied }
    public var hiddenWidths: [Int] { spec.hiddenWidths }
    public var parameterCount: Int { (try? spec.parameterCount()) ?? 0 }

    /// The layers the value computation uses, input to output (the feature net and head when tied).
    var effectiveValueLayers: [DenseLayer] {
        if tied, let head = featureHead { return featureLayers + [head] }
        return valueLayers
    }

    /// Layer `layer` of `part`: 0..<hiddenCount are hidden, `hiddenCount` is the output layer
    /// (the value output, or the feature head).
    public func layer(_ part: Part, _ layer: Int) throws -> DenseLayer {
        guard layer >= 0 && layer <= hiddenCount else {
            throw GatedNetError.invalidArgument("layer: got \(layer), need 0 ... \(hiddenCount)")
        }
        if part == .feature || tied {
            if layer < hiddenCount { return featureLayers[layer] }
            guard let head = featureHead else {
                throw GatedNetError.invalidArgument("layer: \(layer) is the feature head, which this network does not have")
            }
            return head
        }
        return valueLayers[layer]
    }

    /// Freeze or unfreeze a part. Unfreezing drops that part's optimizer moments.
    public func setFrozen(_ part: Part, _ frozen: Bool) {
        if tied || part == .feature { featureFrozen = frozen }
        if tied || part == .value { valueFrozen = frozen }
        if !frozen { optimizerState?.reset(part: part, tied: tied) }
    }

    /// Copy the feature weights (hidden, and head when both have one) of `source`.
    /// `sourceName` names the source in error messages.
    public func copyFeatureWeights(from source: GatedNetwork, freeze: Bool, sourceName: String = "source") throws {
        guard source.inputSize == inputSize, source.hiddenWidths == hiddenWidths else {
            throw GatedNetError.shape("\(sourceName): shape \(source.inputSize)-\(source.hiddenWidths) differs from \(inputSize)-\(hiddenWidths)")
        }
        guard source.spec.bias == spec.bias else {
            throw GatedNetError.shape("\(sourceName): bias \(source.spec.bias) differs from \(spec.bias)")
        }
        for (d, s) in zip(featureLayers, source.featureLayers) { d.assign(from: s) }
        if let head = featureHead, let sh = source.featureHead, sh.fanOut == head.fanOut { head.assign(from: sh) }
        if freeze { featureFrozen = true }
        optimizerState?.reset(part: .feature, tied: tied)
    }

    /// Every parameter tensor with a stable key, for optimizers and persistence.
    var parameterTensors: [(key: ParameterKey, buffer: FloatBuffer)] {
        var out: [(ParameterKey, FloatBuffer)] = []
        for (l, layer) in featureLayers.enumerated() {
            out.append((ParameterKey(part: .feature, layer: l, isBias: false), layer.weight))
            if let b = layer.bias { out.append((ParameterKey(part: .feature, layer: l, isBias: true), b)) }
        }
        if let head = featureHead {
            out.append((ParameterKey(part: .feature, layer: hiddenCount, isBias: false), head.weight))
            if let b = head.bias { out.append((ParameterKey(part: .feature, layer: hiddenCount, isBias: true), b)) }
        }
        for (l, layer) in valueLayers.enumerated() {
            out.append((ParameterKey(part: .value, layer: l, isBias: false), layer.weight))
            if let b = layer.bias { out.append((ParameterKey(part: .value, layer: l, isBias: true), b)) }
        }
        return out
    }

    /// One-line description of architecture and regime.
    public var summary: String {
        let sizes = ([inputSize] + hiddenWidths + [outputSize]).map(String.init).joined(separator: "-")
        var parts = [tied ? "ReLU network" : "DGN", spec.regime.name, sizes]
        if !tied {
            parts.append(spec.activation == .relu ? "relu feature net" : "linear feature net")
            parts.append(spec.gateKind == .hard ? "hard gates" : "soft gates beta=\(spec.beta)")
            if spec.valueInput == .ones { parts.append("value input ones") }
            if !spec.isIdentityPermutation, let p = spec.permutation { parts.append("permutation \(p)") }
        }
        if spec.bias { parts.append("bias") }
        if featureHead != nil && !tied { parts.append("feature head") }
        if featureFrozen && !tied { parts.append("feature frozen") }
        if valueFrozen { parts.append("value frozen") }
        parts.append("\(parameterCount) parameters")
        parts.append("\(epochsTrained) epochs trained")
        return parts.joined(separator: ", ")
    }
}

/// Identifies one parameter tensor of a network.
struct ParameterKey: Hashable {
    var part: Part
    var layer: Int
    var isBias: Bool
}

extension GatedNetwork {
    /// Overwrite the weights of one layer with `count(layer)` finite values.
    public func setWeights(_ part: Part, _ index: Int, from src: UnsafePointer<Float>) throws {
        let l = try layer(part, index)
        l.weight.pointer.update(from: src, count: l.weight.count)
    }
}
