@testable import GatedNet
import Glibc
import Testing

// Shared helpers of the engine tests: seeded data, a double-precision reference model written
// from MATH.md §1 (not from the engine's code), and explicit path enumeration (MATH.md §3).

/// `count` seeded values uniform in [-scale, scale).
func seededUniform(_ count: Int, seed: UInt64, scale: Double = 1) -> [Float] {
    var rng = SeededGenerator(seed: seed)
    return (0..<count).map { _ in Float((2 * rng.nextUnit() - 1) * scale) }
}

/// `rows` seeded labels in [0, classes).
func seededLabels(_ rows: Int, classes: Int, seed: UInt64) -> [Int32] {
    var rng = SeededGenerator(seed: seed)
    return (0..<rows).map { _ in Int32(rng.nextInt(below: classes)) }
}

func makeSpec(_ regime: Regime, _ inputSize: Int, _ widths: [Int], _ outputs: Int, seed: UInt64,
              _ edit: (inout NetworkSpec) -> Void = { _ in }) -> NetworkSpec {
    var s = NetworkSpec(regime: regime, inputSize: inputSize, hiddenWidths: widths, outputSize: outputs, seed: seed)
    edit(&s)
    return s
}

/// Largest |a_i − b_i| over max(max|b_i|, floor): a relative error against the reference b.
func relativeError(_ a: [Double], _ b: [Double], floor: Double = 1e-12) -> Double {
    precondition(a.count == b.count)
    var diff = 0.0, scale = floor
    for i in a.indices {
        diff = max(diff, abs(a[i] - b[i]))
        scale = max(scale, abs(b[i]))
    }
    return diff / scale
}

func doubles(_ a: [Float]) -> [Double] { a.map(Double.init) }

extension GatedNetwork {
    /// Outputs for row-major x (rows × inputSize), through the public predict.
    func outputs(_ x: [Float], featureHead: Bool = false) throws -> [Float] {
        let rows = x.count / inputSize
        var out = [Float](repeating: .nan, count: rows * outputSize)
        try x.withUnsafeBufferPointer { xp in
            try out.withUnsafeMutableBufferPointer { op in
                try predict(xp.baseAddress!, rows: rows, into: op.baseAddress!, featureHead: featureHead)
            }
        }
        return out
    }

    /// Gates of every hidden layer as arrays (rows × w_l each).
    func gateArrays(_ x: [Float]) -> [[Float]] {
        x.withUnsafeBufferPointer { allGates($0.baseAddress!, rows: x.count / inputSize).map(\.array) }
    }

    /// Kernel of `kind` between xa and xb as an na × nb array (symmetric when xb is nil).
    func kernelArray(_ kind: KernelKind, _ xa: [Float], _ xb: [Float]? = nil) throws -> [Float] {
        let na = xa.count / inputSize
        let nb = (xb ?? xa).count / inputSize
        var out = [Float](repeating: .nan, count: na * nb)
        try xa.withUnsafeBufferPointer { a in
            try (xb ?? xa).withUnsafeBufferPointer { b in
                try out.withUnsafeMutableBufferPointer { o in
                    try kernel(kind, xa: a.baseAddress!, na: na, xb: b.baseAddress!, nb: nb, symmetric: xb == nil,
                               out: KernelOutput(pointer: o.baseAddress!, rows: na, cols: nb, ld: nb))
                }
            }
        }
        return out
    }

    /// True when every hidden layer has, over the rows of x, gates both on and off (hard) or
    /// spread (soft): an identity checked on such a batch is not vacuous.
    func gatesAreLive(_ x: [Float]) -> Bool {
        gateArrays(x).allSatisfy { g in g.contains { $0 > 0.5 } && g.contains { $0 < 0.5 } }
    }

    /// Train on arrays (x row-major, rows × inputSize); see `train(_:test:options:progress:)`.
    @discardableResult
    func train(x: [Float], y: [Int32], test: (x: [Float], y: [Int32])? = nil, options: TrainOptions,
               progress: (EpochMetrics) -> Bool = { _ in true }) throws -> [EpochMetrics] {
        try x.withUnsafeBufferPointer { xp in
            try y.withUnsafeBufferPointer { yp in
                let data = LabelledData(x: xp.baseAddress!, y: yp.baseAddress!, rows: y.count)
                guard let t = test else { return try train(data, options: options, progress: progress) }
                return try t.x.withUnsafeBufferPointer { txp in
                    try t.y.withUnsafeBufferPointer { typ in
                        try train(data, test: LabelledData(x: txp.baseAddress!, y: typ.baseAddress!, rows: t.y.count),
                                  options: options, progress: progress)
                    }
                }
            }
        }
    }

    /// Mean loss and accuracy on arrays.
    func evaluate(x: [Float], y: [Int32], loss: Loss = .crossEntropy, featureHead: Bool = false) throws -> (loss: Double, accuracy: Double) {
        try x.withUnsafeBufferPointer { xp in
            try y.withUnsafeBufferPointer { yp in
                try evaluate(LabelledData(x: xp.baseAddress!, y: yp.baseAddress!, rows: y.count), loss: loss, featureHead: featureHead)
            }
        }
    }

    /// True when weights, flags, epoch count and optimizer state are bit for bit those of `other`.
    func isBitIdentical(to other: GatedNetwork) -> Bool {
        guard spec == other.spec, featureFrozen == other.featureFrozen, valueFrozen == other.valueFrozen,
              epochsTrained == other.epochsTrained else { return false }
        let a = parameterTensors, b = other.parameterTensors
        guard a.count == b.count, zip(a, b).allSatisfy({ $0.key == $1.key && $0.buffer.isBitIdentical(to: $1.buffer) }) else { return false }
        switch (optimizerState, other.optimizerState) {
        case (nil, nil): return true
        case let (s?, t?):
            func same(_ x: [ParameterKey: FloatBuffer], _ y: [ParameterKey: FloatBuffer]) -> Bool {
                x.count == y.count && x.allSatisfy { key, buffer in y[key].map { buffer.isBitIdentical(to: $0) } ?? false }
            }
            return s.kind == t.kind && s.step == t.step && same(s.first, t.first) && same(s.second, t.second)
        default: return false
        }
    }

    /// Engine gradients of the mean loss over (x, labels) for `target`, keyed like
    /// `parameterTensors`; also returns the engine's mean loss.
    func engineGradients(_ x: [Float], _ labels: [Int32], loss: Loss,
                         target: PassTarget) -> (loss: Double, grads: [ParameterKey: [Float]]) {
        let rows = labels.count
        let ws = workspace(rows: rows)
        let grads = Gradients(self)
        var total = 0.0
        x.withUnsafeBufferPointer { xp in
            forward(xp.baseAddress!, rows: rows, ws: ws, target: target)
            labels.withUnsafeBufferPointer { lp in
                total = loss.evaluate(outputs: ws.out.pointer, labels: lp.baseAddress!, rows: rows, k: outputSize,
                                      grad: ws.dOut.pointer, scaleRows: rows).loss
            }
            backward(xp.baseAddress!, rows: rows, ws: ws, grads: grads, target: target)
        }
        var out: [ParameterKey: [Float]] = [:]
        for t in parameterTensors {
            if let g = grads.buffer(for: t.key, hiddenCount: hiddenCount) { out[t.key] = g.array }
        }
        return (total / Double(rows), out)
    }
}

/// A double-precision model of a network, written from MATH.md §1: it reads the network's
/// float weights once and evaluates outputs and losses for perturbed copies of them.
struct ReferenceNet {
    let spec: NetworkSpec
    var tensors: [ParameterKey: [Double]]

    init(_ net: GatedNetwork) {
        spec = net.spec
        tensors = [:]
        for t in net.parameterTensors { tensors[t.key] = t.buffer.array.map(Double.init) }
    }

    /// W z + b for layer `layer` of `part` (layer hiddenCount = output layer / feature head).
    func dense(_ part: Part, _ layer: Int, _ z: [Double]) -> [Double] {
        let w = tensors[ParameterKey(part: part, layer: layer, isBias: false)]!
        let b = tensors[ParameterKey(part: part, layer: layer, isBias: true)]
        let fanIn = z.count, fanOut = w.count / fanIn
        return (0..<fanOut).map { o in
            var s = b?[o] ?? 0
            for i in 0..<fanIn { s += w[o * fanIn + i] * z[i] }
            return s
        }
    }

    var hard: Bool { spec.gateKind == .hard || spec.tied }

    /// Feature pre-activations of every hidden layer for one input row.
    func featurePreActivations(_ x: [Double]) -> [[Double]] {
        var z = x
        var qs: [[Double]] = []
        for l in 0..<spec.hiddenCount {
            let q = dense(.feature, l, z)
            qs.append(q)
            z = spec.activation == .relu ? q.map { max($0, 0) } : q
        }
        return qs
    }

    func gates(_ x: [Double]) -> [[Double]] {
        featurePreActivations(x).map { q in
            q.map { hard ? ($0 > 0 ? 1 : 0) : 1 / (1 + exp(-Double(spec.beta) * $0)) }
        }
    }

    /// Output of one row for the DGN, or for the feature net through its head.
    func output(_ x: [Double], featureHead: Bool = false) -> [Double] {
        let h = spec.hiddenCount
        if spec.tied || featureHead {
            var z = x
            for l in 0..<h {
                let q = dense(.feature, l, z)
                z = spec.activation == .relu ? q.map { max($0, 0) } : q
            }
            return dense(.feature, h, z)
        }
        let g = gates(x)
        var z = spec.valueInput == .ones ? [Double](repeating: 1, count: x.count) : x
        for l in 0..<h {
            let q = dense(.value, l, z)
            let gl = g[spec.gateLayer(l)]
            z = (0..<q.count).map { q[$0] * gl[$0] }
        }
        return dense(.value, h, z)
    }

    /// Mean loss over rows of x (row-major) with labels, computed in double.
    func meanLoss(_ x: [Float], _ labels: [Int32], loss: Loss, featureHead: Bool = false) -> Double {
        let d = spec.inputSize, k = spec.outputSize
        var total = 0.0
        for r in labels.indices {
            let y = output(x[(r * d)..<((r + 1) * d)].map(Double.init), featureHead: featureHead)
            let label = Int(labels[r])
            switch loss {
            case .crossEntropy:
                let m = y.max()!
                let logSum = log(y.reduce(0) { $0 + exp($1 - m) }) + m
                total += logSum - y[label]
            case .squared:
                for c in 0..<k {
                    let t: Double = k == 1 ? (label == 1 ? 1 : -1) : (c == label ? 1 : 0)
                    total += 0.5 * (y[c] - t) * (y[c] - t)
                }
            }
        }
        return total / Double(labels.count)
    }

    /// Smallest |pre-activation| of the feature net over the rows: hard gates and ReLU kinks
    /// stay put under perturbations much smaller than this.
    func margin(_ x: [Float]) -> Double {
        let d = spec.inputSize
        var m = Double.infinity
        for r in 0..<(x.count / d) {
            for q in featurePreActivations(x[(r * d)..<((r + 1) * d)].map(Double.init)) {
                for v in q { m = min(m, abs(v)) }
            }
        }
        return m
    }

    /// Central finite differences of the mean loss for every entry of tensor `key`.
    func finiteDifferences(_ key: ParameterKey, _ x: [Float], _ labels: [Int32], loss: Loss,
                           featureHead: Bool = false, step: Double = 1e-5) -> [Double] {
        var probe = self
        let base = tensors[key]!
        return base.indices.map { i in
            probe.tensors[key]![i] = base[i] + step
            let up = probe.meanLoss(x, labels, loss: loss, featureHead: featureHead)
            probe.tensors[key]![i] = base[i] - step
            let down = probe.meanLoss(x, labels, loss: loss, featureHead: featureHead)
            probe.tensors[key]![i] = base[i]
            return (up - down) / (2 * step)
        }
    }
}

/// Explicit path enumeration (MATH.md §3) for a network without biases.
struct PathEnumeration {
    /// Every path (i_0, …, i_{d-1}) in lexicographic order.
    let paths: [[Int]]

    init(inputSize: Int, widths: [Int]) {
        var all: [[Int]] = (0..<inputSize).map { [$0] }
        for w in widths {
            all = all.flatMap { p in (0..<w).map { p + [$0] } }
        }
        paths = all
    }

    /// NPF φ_x(p) = xv(i_0) · Π_l G_{π(l)}(x)[i_l] for one row: `xv` the value input,
    /// `gates[l]` the gates of feature layer l, `gateLayer(l)` the wiring π.
    func features(xv: [Double], gates: [[Double]], gateLayer: (Int) -> Int) -> [Double] {
        paths.map { p in
            var a = xv[p[0]]
            for l in 0..<(p.count - 1) { a *= gates[gateLayer(l)][p[l + 1]] }
            return a
        }
    }

    /// NPV v(p) = Π_l W_l[i_l, i_{l-1}] into output unit `unit`; `weights[l]` is layer l row-major.
    func values(weights: [[Double]], fanIns: [Int], unit: Int) -> [Double] {
        paths.map { p in
            var v = 1.0
            for l in 0..<(p.count - 1) { v *= weights[l][p[l + 1] * fanIns[l] + p[l]] }
            let last = p.count - 1
            return v * weights[last][unit * fanIns[last] + p[last]]
        }
    }
}

func dot(_ a: [Double], _ b: [Double]) -> Double {
    var s = 0.0
    for i in a.indices { s += a[i] * b[i] }
    return s
}

/// Row `r` of a row-major matrix with `cols` columns, as doubles.
func row(_ m: [Float], _ r: Int, cols: Int) -> [Double] {
    m[(r * cols)..<((r + 1) * cols)].map(Double.init)
}
