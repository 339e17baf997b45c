/// Regime presets of the papers (MATH.md §2).
public enum Regime: Int, CaseIterable, Sendable {
    case custom = 0
    case relu = 1
    case decoupled = 2
    case fixedLearnt = 3
    case fixedRandomII = 4
    case fixedRandomDI = 5
    case dlgn = 6
    case dlgnPWC = 7

    public var name: String {
        switch self {
        case .custom: "custom"
        case .relu: "relu"
        case .decoupled: "decoupled"
        case .fixedLearnt: "fixed_learnt"
        case .fixedRandomII: "fixed_random_ii"
        case .fixedRandomDI: "fixed_random_di"
        case .dlgn: "dlgn"
        case .dlgnPWC: "dlgn_pwc"
        }
    }

    public init?(name: String) {
        guard let r = Regime.allCases.first(where: { $0.name == name }) else { return nil }
        self = r
    }
}

/// The feature network's activation χ.
public enum Activation: Int, Sendable { case relu = 0, identity = 1 }

/// How a pre-activation becomes a gate: `1{q>0}` or `σ(βq)`.
public enum GateKind: Int, Sendable { case hard = 0, soft = 1 }

/// What the value network's first layer sees.
public enum ValueInput: Int, Sendable { case x = 0, ones = 1 }

/// Weight initialisation. Gaussian: N(0, scale²/fan_in) (scale √2 is He). Bernoulli: ±scale/√fan_in.
public enum InitKind: Int, Sendable { case gaussian = 0, bernoulli = 1 }

/// Everything that defines a network's architecture and its initial weights.
public struct NetworkSpec: Equatable, Sendable {
    public var regime: Regime
    public var inputSize: Int
    public var hiddenWidths: [Int]
    public var outputSize: Int
    public var activation: Activation
    public var gateKind: GateKind
    public var beta: Float
    public var valueInput: ValueInput
    /// `permutation[l]` = feature layer whose gates multiply value layer l; nil = identity.
    public var permutation: [Int]?
    public var bias: Bool
    public var featureHead: Bool
    /// Only read for `.custom`; presets decide frozenness themselves.
    public var featureFrozen: Bool
    public var initKind: InitKind
    public var initScale: Float
    public var seed: UInt64

    /// The preset of a regime for an MLP of the given sizes (see gatednet.h).
    public init(regime: Regime, inputSize: Int, hiddenWidths: [Int], outputSize: Int, seed: UInt64 = 0) {
        self.regime = regime
        self.inputSize = inputSize
        self.hiddenWidths = hiddenWidths
        self.outputSize = outputSize
        self.activation = (regime == .dlgn || regime == .dlgnPWC) ? .identity : .relu
        let soft = regime == .decoupled || regime == .dlgn || regime == .dlgnPWC
        self.gateKind = soft ? .soft : .hard
        self.beta = 10
        self.valueInput = regime == .dlgnPWC ? .ones : .x
        self.permutation = nil
        self.bias = false
        self.featureHead = regime == .relu
        self.featureFrozen = false
        self.initKind = .gaussian
        self.initScale = Float(2).squareRoot()
        self.seed = seed
    }

    public var hiddenCount: Int { hiddenWidths.count }
    /// Depth d = number of weight layers of the value network.
    public var depth: Int { hiddenWidths.count + 1 }
    /// Value layer l is gated by feature layer `gateLayer(l)`.
    public func gateLayer(_ l: Int) -> Int { permutation?[l] ?? l }
    /// The RELU regime ties the value weights to the feature weights.
    public var tied: Bool { regime == .relu }

    /// Throws unless the spec describes a network that can be built.
    public func validate() throws {
        guard inputSize >= 1 else { throw GatedNetError.invalidArgument("input_size: got \(inputSize), need >= 1") }
        let limit = 1 << 31
        guard inputSize <= limit else { throw GatedNetError.outOfMemory("input_size: got \(inputSize), need <= 2^31") }
        guard outputSize <= limit else { throw GatedNetError.outOfMemory("output_size: got \(outputSize), need <= 2^31") }
        for (l, w) in hiddenWidths.enumerated() where w > limit {
            throw GatedNetError.outOfMemory("hidden_widths[\(l)]: got \(w), need <= 2^31")
        }
        guard outputSize >= 1 else { throw GatedNetError.invalidArgument("output_size: got \(outputSize), need >= 1") }
        guard (1...64).contains(hiddenWidths.count) else {
            throw GatedNetError.invalidArgument("n_hidden: got \(hiddenWidths.count), need 1 ... 64")
        }
        for (l, w) in hiddenWidths.enumerated() where w < 1 {
            throw GatedNetError.invalidArgument("hidden_widths[\(l)]: got \(w), need >= 1")
        }
        guard gateKind == .hard || (beta.isFinite && beta > 0) else { throw GatedNetError.invalidArgument("beta: got \(beta), need a finite value > 0") }
        guard initScale.isFinite && initScale > 0 else {
            throw GatedNetError.invalidArgument("init_scale: got \(initScale), need a finite value > 0")
        }
        if let p = permutation {
            guard p.count == hiddenWidths.count else {
                throw GatedNetError.invalidArgument("permutation: got \(p.count) entries, need \(hiddenWidths.count)")
            }
            var seen = [Bool](repeating: false, count: p.count)
            for (l, g) in p.enumerated() {
                guard g >= 0 && g < p.count && !seen[g] else {
                    throw GatedNetError.invalidArgument("permutation: \(p) is not a permutation of 0..<\(p.count)")
                }
                seen[g] = true
                guard hiddenWidths[g] == hiddenWidths[l] else {
                    throw GatedNetError.shape("permutation[\(l)] = \(g): layer \(l) has width \(hiddenWidths[l]) but layer \(g) has width \(hiddenWidths[g]); permuted layers need equal widths")
                }
            }
        }
        if regime == .relu {
            guard activation == .relu, gateKind == .hard, valueInput == .x, isIdentityPermutation else {
                throw GatedNetError.invalidArgument("regime relu: needs ReLU activation, hard gates, value input x and no permutation")
            }
        }
        let params = try parameterCount()
        guard params <= NetworkSpec.maxFloats else {
            throw GatedNetError.outOfMemory("network: \(params) parameters exceed the limit of 2^30")
        }
        _ = try workspaceFloats(rows: 1024)
    }

    /// Largest number of floats gatednet allocates for one parameter set or workspace (4 GiB).
    public static let maxFloats = 1 << 30

    /// Floats a forward/backward workspace of `rows` rows needs; throws `.outOfMemory` past `maxFloats`.
    public func workspaceFloats(rows: Int) throws -> Int {
        let perRow = hiddenWidths.reduce(0, +) * 6 + max(hiddenWidths.max() ?? 0, outputSize) * 3
            + outputSize * 2 + inputSize * 2
        let total = try checkedCount(rows, perRow, what: "workspace")
        guard total <= NetworkSpec.maxFloats else {
            throw GatedNetError.outOfMemory("workspace: \(rows) rows of this network need \(total) floats, more than the limit 2^30 (lower batch_size)")
        }
        return total
    }

    var isIdentityPermutation: Bool {
        guard let p = permutation else { return true }
        return p.enumerated().allSatisfy { $0.offset == $0.element }
    }

    /// Layer shapes (fan_out, fan_in) from input to output.
    public var layerShapes: [(out: Int, in: Int)] {
        var shapes: [(Int, Int)] = []
        var fanIn = inputSize
        for w in hiddenWidths { shapes.append((w, fanIn)); fanIn = w }
        shapes.append((outputSize, fanIn))
        return shapes
    }

    /// Scalars in both networks (weights and biases), checked against overflow.
    public func parameterCount() throws -> Int {
        var total = 0
        for (l, s) in layerShapes.enumerated() {
            let isHead = l == hiddenWidths.count
            let copies = tied ? 1 : ((isHead && !featureHead) ? 1 : 2)
            let perLayer = try checkedCount(s.out, s.in + (bias ? 1 : 0), copies, what: "layer \(l)")
            let (t, o) = total.addingReportingOverflow(perLayer)
            guard !o else { throw GatedNetError.outOfMemory("network: parameter count overflows") }
            total = t
        }
        return total
    }
}
