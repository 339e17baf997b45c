/// Kinds of layers in a convolutional DGN's layer list.
public enum ConvLayerKind: Int, Sendable {
    /// k×k convolution, gated per (position, channel).
    case conv = 0
    /// Fully connected; gated unless it is the last layer (the output layer).
    case dense = 1
    /// Global average pooling over positions.
    case globalAveragePool = 2
    /// Global max pooling over positions; in the value net the feature net's argmax picks the
    /// position (the argmax acts as a gate).
    case globalMaxPool = 3
    /// Reinterpret h×w×c as 1×1×(h·w·c) in NHWC order (dense layers do this implicitly).
    case flatten = 4
}

/// Padding of a convolution. `zero` and `circular` pad by ⌊k/2⌋ on each side.
public enum ConvPadding: Int, Sendable {
    case zero = 0
    case circular = 1
    /// No padding: out = ⌊(in − k)/stride⌋ + 1.
    case valid = 2
}

/// How the value net's gated layers take the feature net's gates (paper 000 §4.1).
public enum GateWiring: Int, Sendable {
    /// Value layer l is gated by feature layer `permutation[l]` (identity when nil).
    case permuted = 0
    /// Stack the conv layers' gate tensors along channels, roll by seeded offsets along
    /// channels, height and width, and re-cut into layers. Needs every gated conv layer to have
    /// the same height and width; gated dense layers keep their own gates.
    case tiledRotated = 1
}

/// One entry of the layer list.
public struct ConvLayerSpec: Equatable, Sendable {
    public var kind: ConvLayerKind
    /// Output channels (conv) or units (dense); ignored by pooling and flatten.
    public var outChannels: Int
    public var kernel: Int
    public var stride: Int
    public var padding: ConvPadding
    public var bias: Bool
    /// Residual block id: consecutive gated layers with the same id > 0 form one block whose
    /// input is added to its output (through a learnt 1×1 projection when shapes differ).
    public var block: Int

    public init(kind: ConvLayerKind, outChannels: Int = 0, kernel: Int = 1, stride: Int = 1,
                padding: ConvPadding = .zero, bias: Bool = false, block: Int = 0) {
        self.kind = kind; self.outChannels = outChannels; self.kernel = kernel; self.stride = stride
        self.padding = padding; self.bias = bias; self.block = block
    }

    public static func conv(_ channels: Int, kernel: Int = 3, stride: Int = 1, padding: ConvPadding = .zero,
                            bias: Bool = false, block: Int = 0) -> ConvLayerSpec {
        ConvLayerSpec(kind: .conv, outChannels: channels, kernel: kernel, stride: stride, padding: padding, bias: bias, block: block)
    }
    public static func dense(_ units: Int, bias: Bool = false, block: Int = 0) -> ConvLayerSpec {
        ConvLayerSpec(kind: .dense, outChannels: units, bias: bias, block: block)
    }
    public static let globalAveragePool = ConvLayerSpec(kind: .globalAveragePool)
    public static let globalMaxPool = ConvLayerSpec(kind: .globalMaxPool)
    public static let flatten = ConvLayerSpec(kind: .flatten)
}

/// Architecture, regime and initialisation of a convolutional / residual DGN.
/// Inputs are NHWC: one sample is height × width × channels floats, channels fastest.
public struct ConvNetworkSpec: Equatable, Sendable {
    public var regime: Regime
    public var inputChannels: Int
    public var inputHeight: Int
    public var inputWidth: Int
    /// Layers from input to output; the last must be a dense layer (the output layer).
    public var layers: [ConvLayerSpec]
    public var activation: Activation
    public var gateKind: GateKind
    public var beta: Float
    public var valueInput: ValueInput
    public var wiring: GateWiring
    /// For `.permuted`: value gated layer l uses feature gated layer permutation[l]; nil = identity.
    public var permutation: [Int]?
    /// Seeds the offsets of `.tiledRotated`.
    public var wiringSeed: UInt64
    /// Only read for `.custom`.
    public var featureFrozen: Bool
    public var initKind: InitKind
    public var initScale: Float
    public var seed: UInt64

    /// The preset of `regime` (same choices as `NetworkSpec`; DGN-No-Act is `.dlgn` here).
    public init(regime: Regime, channels: Int, height: Int, width: Int, layers: [ConvLayerSpec], seed: UInt64 = 0) {
        let plain = NetworkSpec(regime: regime, inputSize: 1, hiddenWidths: [1], outputSize: 1, seed: seed)
        self.regime = regime
        inputChannels = channels; inputHeight = height; inputWidth = width
        self.layers = layers
        activation = plain.activation
        gateKind = plain.gateKind
        beta = plain.beta
        valueInput = plain.valueInput
        wiring = .permuted
        permutation = nil
        wiringSeed = 0
        featureFrozen = false
        initKind = plain.initKind
        initScale = plain.initScale
        self.seed = seed
    }

    public var tied: Bool { regime == .relu }
    public var inputSize: Int { inputChannels * inputHeight * inputWidth }
}

/// Per-sample tensor shape, NHWC.
public struct TensorShape: Equatable, Sendable, CustomStringConvertible {
    public var height: Int, width: Int, channels: Int
    public var positions: Int { height * width }
    public var size: Int { height * width * channels }
    public var description: String { "\(height)x\(width)x\(channels)" }
}

struct ConvGeometry {
    let input: TensorShape
    let output: TensorShape
    let kernel: Int, stride: Int, pad: Int
    let circular: Bool
    var patch: Int { kernel * kernel * input.channels }
}

/// One step of the compiled layer list.
enum PlanStep {
    case conv(param: Int, geometry: ConvGeometry)
    case dense(param: Int)
    case averagePool
    case maxPool(pool: Int)
    /// Block end: out = (previous op's output) + skip(output of `skipSource`).
    case residual(skipSource: Int, projection: Int?, geometry: ConvGeometry?)
}

struct PlanOp {
    let step: PlanStep
    /// Op whose output this op reads; -1 = the network input.
    let source: Int
    let inShape: TensorShape
    let outShape: TensorShape
    /// Index among gated layers, for gated conv / dense ops.
    let gated: Int?
}

/// A parameter tensor: fanOut × fanIn (+ bias).
struct ParamInfo {
    enum Role { case gated(Int), output, projection }
    let fanOut: Int, fanIn: Int, bias: Bool
    let role: Role
    /// Position in the layer list: the conv / dense layer, or a projection's block's last layer.
    let layer: Int
}

/// The layer list compiled into ops with shapes, parameter tensors and gated layers.
struct ConvPlan {
    var ops: [PlanOp] = []
    var params: [ParamInfo] = []
    var gatedShapes: [TensorShape] = []
    /// Op index of each gated layer.
    var gatedOps: [Int] = []
    var pools = 0
    var outputSize: Int { ops.last?.outShape.size ?? 0 }

    init(_ spec: ConvNetworkSpec) throws {
        func bad(_ m: String) -> GatedNetError { .invalidArgument(m) }
        let limit = 1 << 24
        for (v, name) in [(spec.inputChannels, "channels"), (spec.inputHeight, "height"), (spec.inputWidth, "width")] {
            guard v >= 1 else { throw bad("input \(name): got \(v), need >= 1") }
            guard v <= limit else { throw GatedNetError.outOfMemory("input \(name): got \(v), need <= \(limit)") }
        }
        let tensorLimit = 1 << 31
        guard try checkedCount(spec.inputChannels, spec.inputHeight, spec.inputWidth, what: "input size") <= tensorLimit else {
            throw GatedNetError.outOfMemory("input: \(spec.inputHeight) x \(spec.inputWidth) x \(spec.inputChannels) exceeds 2^31 values per sample")
        }
        guard !spec.layers.isEmpty else { throw bad("layers: got 0, need at least the output dense layer") }
        guard spec.layers.count <= 256 else { throw bad("layers: got \(spec.layers.count), need <= 256") }
        guard let last = spec.layers.last, last.kind == .dense, last.block == 0 else {
            throw bad("layers[\(spec.layers.count - 1)]: the last layer must be a dense output layer outside any block")
        }
        var shape = TensorShape(height: spec.inputHeight, width: spec.inputWidth, channels: spec.inputChannels)
        var current = -1
        var blockId = 0, blockInput = -1, blockInShape = shape, blockStride = 1, blockHasDense = false
        var closed = Set<Int>()
        var total = 0
        func addParam(_ p: ParamInfo) throws -> Int {
            let n = try checkedCount(p.fanOut, p.fanIn + (p.bias ? 1 : 0), what: "layer parameters")
            total += n
            guard total <= 1 << 30 else { throw GatedNetError.outOfMemory("network: more than 2^30 parameters per net") }
            params.append(p)
            return params.count - 1
        }
        func closeBlock(lastLayer: Int) throws {
            guard blockId != 0 else { return }
            let out = shape
            var proj: Int? = nil, geom: ConvGeometry? = nil
            if out != blockInShape {
                if blockHasDense {
                    proj = try addParam(ParamInfo(fanOut: out.size, fanIn: blockInShape.size, bias: false, role: .projection, layer: lastLayer))
                } else {
                    let g = ConvGeometry(input: blockInShape,
                                         output: TensorShape(height: (blockInShape.height - 1) / blockStride + 1,
                                                             width: (blockInShape.width - 1) / blockStride + 1,
                                                             channels: out.channels),
                                         kernel: 1, stride: blockStride, pad: 0, circular: false)
                    guard g.output == out else {
                        throw GatedNetError.shape("residual block \(blockId): input \(blockInShape) and output \(out) cannot be matched by a 1x1 projection of stride \(blockStride) (use zero or circular padding inside blocks)")
                    }
                    proj = try addParam(ParamInfo(fanOut: out.channels, fanIn: blockInShape.channels, bias: false, role: .projection, layer: lastLayer))
                    geom = g
                }
            }
            ops.append(PlanOp(step: .residual(skipSource: blockInput, projection: proj, geometry: geom),
                              source: current, inShape: out, outShape: out, gated: nil))
            current = ops.count - 1
            closed.insert(blockId)
            blockId = 0
        }
        for (i, l) in spec.layers.enumerated() {
            let name = "layers[\(i)]"
            let isOutput = i == spec.layers.count - 1
            let gatedKind = l.kind == .conv || (l.kind == .dense && !isOutput)
            guard l.block >= 0 else { throw bad("\(name).block: got \(l.block), need >= 0") }
            if l.block != blockId { try closeBlock(lastLayer: i - 1) }
            if l.block != 0 && l.block != blockId {
                guard !closed.contains(l.block) else { throw bad("\(name).block: block \(l.block) is not contiguous") }
                guard gatedKind else { throw bad("\(name).block: only conv and hidden dense layers can be inside a residual block") }
                blockId = l.block; blockInput = current; blockInShape = shape; blockStride = 1; blockHasDense = false
            }
            switch l.kind {
            case .conv:
                guard l.outChannels >= 1 && l.outChannels <= limit else { throw bad("\(name).out_channels: got \(l.outChannels), need 1 ... \(limit)") }
                guard l.kernel >= 1 else { throw bad("\(name).kernel: got \(l.kernel), need >= 1") }
                guard l.stride >= 1 else { throw bad("\(name).stride: got \(l.stride), need >= 1") }
                let fits = l.padding == .zero ? l.kernel / 2 < min(shape.height, shape.width)
                                              : l.kernel <= min(shape.height, shape.width)
                guard fits else {
                    throw GatedNetError.shape("\(name).kernel: got \(l.kernel), larger than its input \(shape) (height x width x channels) allows: circular and valid padding need kernel <= height and width, zero padding needs kernel/2 < height and width")
                }
                guard !blockHasDense else { throw bad("\(name): a conv layer cannot follow a dense layer in a block") }
                let pad = l.padding == .valid ? 0 : l.kernel / 2
                let oh: Int, ow: Int
                if l.padding == .circular {
                    oh = (shape.height - 1) / l.stride + 1; ow = (shape.width - 1) / l.stride + 1
                } else {
                    oh = (shape.height + 2 * pad - l.kernel) / l.stride + 1
                    ow = (shape.width + 2 * pad - l.kernel) / l.stride + 1
                }
                let out = TensorShape(height: oh, width: ow, channels: l.outChannels)
                guard try checkedCount(oh, ow, l.outChannels, what: "\(name) output") <= tensorLimit else {
                    throw GatedNetError.outOfMemory("\(name): output \(oh) x \(ow) x \(l.outChannels) exceeds 2^31 values per sample")
                }
                let g = ConvGeometry(input: shape, output: out, kernel: l.kernel, stride: l.stride, pad: pad, circular: l.padding == .circular)
                let p = try addParam(ParamInfo(fanOut: l.outChannels, fanIn: g.patch, bias: l.bias, role: .gated(gatedShapes.count), layer: i))
                ops.append(PlanOp(step: .conv(param: p, geometry: g), source: current, inShape: shape, outShape: out, gated: gatedShapes.count))
                gatedShapes.append(out); gatedOps.append(ops.count - 1)
                if blockId != 0 { blockStride *= l.stride }
                shape = out
            case .dense:
                guard l.outChannels >= 1 && l.outChannels <= limit else { throw bad("\(name).units: got \(l.outChannels), need 1 ... \(limit)") }
                let out = TensorShape(height: 1, width: 1, channels: l.outChannels)
                let role: ParamInfo.Role = isOutput ? .output : .gated(gatedShapes.count)
                let p = try addParam(ParamInfo(fanOut: l.outChannels, fanIn: shape.size, bias: l.bias, role: role, layer: i))
                ops.append(PlanOp(step: .dense(param: p), source: current, inShape: shape, outShape: out, gated: isOutput ? nil : gatedShapes.count))
                if !isOutput { gatedShapes.append(out); gatedOps.append(ops.count - 1) }
                if blockId != 0 { blockHasDense = true }
                shape = out
            case .globalAveragePool, .globalMaxPool:
                let out = TensorShape(height: 1, width: 1, channels: shape.channels)
                let step: PlanStep = l.kind == .globalAveragePool ? .averagePool : .maxPool(pool: pools)
                if l.kind == .globalMaxPool { pools += 1 }
                ops.append(PlanOp(step: step, source: current, inShape: shape, outShape: out, gated: nil))
                shape = out
            case .flatten:
                shape = TensorShape(height: 1, width: 1, channels: shape.size)
                continue
            }
            current = ops.count - 1
        }
        try closeBlock(lastLayer: spec.layers.count - 1)
        guard !gatedShapes.isEmpty else { throw bad("layers: need at least one gated (conv or hidden dense) layer") }
    }
}

extension ConvNetworkSpec {
    /// Throws unless the spec describes a network that can be built; returns its plan.
    func validatedPlan() throws -> ConvPlan {
        let plan = try ConvPlan(self)
        guard beta.isFinite && beta > 0 else { throw GatedNetError.invalidArgument("beta: got \(beta), need a finite value > 0") }
        guard initScale.isFinite && initScale > 0 else {
            throw GatedNetError.invalidArgument("init_scale: got \(initScale), need a finite value > 0")
        }
        if tied {
            guard activation == .relu, gateKind == .hard, valueInput == .x, wiring == .permuted,
                  permutation.map({ $0 == Array(0..<$0.count) }) ?? true else {
                throw GatedNetError.invalidArgument("regime relu: needs ReLU activation, hard gates, value input x and no gate rewiring")
            }
        }
        let g = plan.gatedShapes
        switch wiring {
        case .permuted:
            if let p = permutation {
                guard p.count == g.count else {
                    throw GatedNetError.invalidArgument("permutation: got \(p.count) entries, need \(g.count) (one per gated layer)")
                }
                var seen = [Bool](repeating: false, count: p.count)
                for (l, s) in p.enumerated() {
                    guard s >= 0 && s < p.count && !seen[s] else {
                        throw GatedNetError.invalidArgument("permutation: \(p) is not a permutation of 0..<\(p.count)")
                    }
                    seen[s] = true
                    guard g[s] == g[l] else {
                        throw GatedNetError.shape("permutation[\(l)] = \(s): gated layer \(l) has shape \(g[l]) but layer \(s) has shape \(g[s]); permuted layers need equal shapes")
                    }
                }
            }
        case .tiledRotated:
            let convs = plan.gatedOps.enumerated().filter { if case .conv = plan.ops[$0.element].step { return true }; return false }
            guard let first = convs.first else { throw GatedNetError.invalidArgument("wiring tiled_rotated: needs at least one gated conv layer") }
            let s0 = g[first.offset]
            for (l, _) in convs where g[l].height != s0.height || g[l].width != s0.width {
                throw GatedNetError.shape("wiring tiled_rotated: gated layer \(l) is \(g[l]), layer \(first.offset) is \(s0); all gated conv layers need the same height and width")
            }
        }
        return plan
    }
}
