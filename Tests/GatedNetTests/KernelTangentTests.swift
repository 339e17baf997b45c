@testable import GatedNet
import Glibc
import Testing

/// Per-example gradients of output `o` w.r.t. every parameter tensor, from the engine's
/// backward pass run on one row at a time with output gradient e_o (MATH.md §7.5).
func explicitGradients(_ net: GatedNetwork, _ x: [Float], output o: Int) -> [[ParameterKey: [Double]]] {
    let d = net.inputSize, n = x.count / d
    let ws = net.workspace(rows: 1)
    var out: [[ParameterKey: [Double]]] = []
    x.withUnsafeBufferPointer { xp in
        for r in 0..<n {
            let grads = Gradients(net)
            net.forward(xp.baseAddress! + r * d, rows: 1, ws: ws, target: .network)
            for c in 0..<net.outputSize { ws.dOut[c] = c == o ? 1 : 0 }
            net.backward(xp.baseAddress! + r * d, rows: 1, ws: ws, grads: grads, target: .network)
            var g: [ParameterKey: [Double]] = [:]
            for t in net.parameterTensors {
                if let b = grads.buffer(for: t.key, hiddenCount: net.hiddenCount) { g[t.key] = b.array.map(Double.init) }
            }
            out.append(g)
        }
    }
    return out
}

/// Gram over the given (key of x, key of x') pairs of per-example gradients, summed over the
/// outputs listed; `weight(key)` multiplies each pair's inner product.
func gradientGram(_ net: GatedNetwork, _ x: [Float], outputs: [Int], pairs: [(ParameterKey, ParameterKey)],
                  weight: (ParameterKey) -> Double = { _ in 1 }) -> [Double] {
    let n = x.count / net.inputSize
    var k = [Double](repeating: 0, count: n * n)
    for o in outputs {
        let g = explicitGradients(net, x, output: o)
        for i in 0..<n {
            for j in 0..<n {
                for (ka, kb) in pairs {
                    guard let a = g[i][ka], let b = g[j][kb] else { continue }
                    k[i * n + j] += weight(ka) * dot(a, b)
                }
            }
        }
    }
    return k
}

extension GatedNetwork {
    /// Parameter keys of value weights (for a tied net: its one weight set, head included).
    var valueKeys: [ParameterKey] {
        parameterTensors.map(\.key).filter { tied ? $0.part == .feature : $0.part == .value }
    }
    /// Feature (gating) keys of the hidden layers.
    var featureKeys: [ParameterKey] {
        parameterTensors.map(\.key).filter { $0.part == .feature && $0.layer < hiddenCount }
    }
}

@Suite("Empirical NTK, layer-wise (MATH.md §4, §7.3, §7.5)")
struct KernelTangentTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let spec: NetworkSpec
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "relu tied, bias", spec: makeSpec(.relu, 3, [5, 4], 2, seed: 601) { $0.bias = true }),
        Case(name: "decoupled soft, bias", spec: makeSpec(.decoupled, 3, [5, 4], 2, seed: 602) { $0.beta = 2; $0.bias = true }),
        Case(name: "dlgn permuted", spec: makeSpec(.custom, 3, [4, 4, 4], 2, seed: 603) {
            $0.activation = .identity; $0.gateKind = .soft; $0.beta = 2; $0.permutation = [2, 0, 1]
        }),
        Case(name: "dlgn pwc", spec: makeSpec(.dlgnPWC, 3, [5, 4], 3, seed: 604) { $0.beta = 2 }),
        Case(name: "fixed random ii hard", spec: makeSpec(.fixedRandomII, 3, [5, 4], 2, seed: 605)),
    ]

    @Test("every NTK part equals the Gram of explicit per-example gradients, per output and summed", arguments: cases)
    func ntkEqualsGradientGram(_ c: Case) throws {
        let net = try GatedNetwork(spec: c.spec)
        let n = 6
        let x = seededUniform(n * c.spec.inputSize, seed: 606)
        let soft = !net.hasHardGates
        let h = net.hiddenCount
        let value = net.valueKeys.map { ($0, $0) }
        let feature = net.featureKeys.map { ($0, $0) }
        var cross: [(ParameterKey, ParameterKey)] = []
        for l in 0..<h {
            for bias in c.spec.bias ? [false, true] : [false] {
                let v = ParameterKey(part: .value, layer: l, isBias: bias), f = ParameterKey(part: .feature, layer: l, isBias: bias)
                cross += [(v, f), (f, v)]
            }
        }
        var parts: [(TangentPart, [(ParameterKey, ParameterKey)])] = [(.value, value), (.full, soft ? value + feature : value)]
        if soft { parts += [(.feature, feature), (.cross, cross)] }
        for output in [nil, 0, c.spec.outputSize - 1] {
            let outs = output.map { [$0] } ?? Array(0..<c.spec.outputSize)
            for (part, keys) in parts {
                var o = KernelOptions()
                o.output = output
                let k = doubles(try net.suiteKernel(.tangent(part), x, nil, o))
                let expected = gradientGram(net, x, outputs: outs, pairs: keys)
                let err = relativeError(k, expected)
                #expect(err < 2e-5, "\(part) output \(String(describing: output)): relative error \(err)")
                #expect(expected.map(abs).max()! > 1e-3)
            }
        }
        // The tied NTK (Wf := Wv) decomposes as K^v + K^f + K^cross (paper 002 Table 1).
        if soft {
            let all = try [TangentPart.value, .feature, .cross].map { doubles(try net.suiteKernel(.tangent($0), x)) }
            let tied = gradientGram(net, x, outputs: Array(0..<c.spec.outputSize), pairs: value + feature + cross)
            #expect(relativeError((0..<(n * n)).map { all[0][$0] + all[1][$0] + all[2][$0] }, tied) < 2e-5)
        }
    }

    @Test("NTK scaling weights each weight layer's gradient Gram by s²/fan_in")
    func ntkScaling() throws {
        let net = try GatedNetwork(spec: makeSpec(.relu, 4, [6, 3], 2, seed: 607) { $0.bias = true; $0.initScale = 1.3 })
        let x = seededUniform(5 * 4, seed: 608)
        var o = KernelOptions()
        o.ntkScaling = true
        let k = doubles(try net.suiteKernel(.tangent(.full), x, nil, o))
        let s2 = 1.3 * 1.3
        let fanIn = [4, 6, 3]
        let expected = gradientGram(net, x, outputs: [0, 1], pairs: net.valueKeys.map { ($0, $0) }) { key in
            key.isBias ? 1 : s2 / Double(Float(fanIn[key.layer]))
        }
        #expect(relativeError(k, expected) < 2e-5)
    }

    @Test("Monte Carlo mean of the layer-wise K^v over ±σ value weights approaches d·σ^(2(d-1))·H (paper 002 Thm 4.1)")
    func expectedValueNTK() throws {
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, 3, [4, 4], 1, seed: 609))
        let n = 5
        let x = seededUniform(n * 3, seed: 610)
        let sigma = 0.7, depth = 3.0
        let factor = depth * pow(sigma, 2 * (depth - 1))
        let expected: [Double] = doubles(try net.suiteKernel(.path(.npk), x)).map { factor * $0 }
        var rng = SeededGenerator(seed: 611)
        let samples = 2000
        var sum = [Double](repeating: 0, count: n * n)
        for _ in 0..<samples {
            for layer in net.valueLayers {
                for i in 0..<layer.weight.count { layer.weight[i] = Float((rng.next() & 1) == 0 ? sigma : -sigma) }
            }
            let k = try net.suiteKernel(.tangent(.value), x)
            for i in k.indices { sum[i] += Double(k[i]) }
        }
        let mean: [Double] = sum.map { $0 / Double(samples) }
        let scale = expected.map(abs).max()!
        let maxError = mean.indices.map { abs(mean[$0] - expected[$0]) }.max()!
        #expect(maxError < 0.05 * scale, "max |mean - expected| = \(maxError), scale \(scale)")
        // A wrong depth factor would be off by a third of the scale.
        #expect(scale / depth > 4 * 0.05 * scale)
    }
}
