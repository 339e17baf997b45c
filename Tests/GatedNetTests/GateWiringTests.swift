@testable import GatedNet
import Glibc
import Testing

@Suite("Gate wiring: regimes, permutations, gate export")
struct GateWiringTests {
    @Test("a hard-gated DGN whose value weights copy the feature weights is the ReLU network")
    func tiedValueWeightsGiveReluNetwork() throws {
        let relu = try GatedNetwork(spec: makeSpec(.relu, 6, [9, 7], 3, seed: 81) { $0.bias = true })
        for t in relu.parameterTensors where t.key.isBias {
            let v = seededUniform(t.buffer.count, seed: 810 + UInt64(t.key.layer), scale: 0.3)
            for j in v.indices { t.buffer[j] = v[j] }
        }
        let dgn = try GatedNetwork(spec: makeSpec(.custom, 6, [9, 7], 3, seed: 82) { $0.bias = true })
        for (l, layer) in dgn.valueLayers.enumerated() { layer.assign(from: try relu.layer(.feature, l)) }
        for (a, b) in zip(dgn.featureLayers, relu.featureLayers) { a.assign(from: b) }
        let x = seededUniform(20 * 6, seed: 811)
        #expect(relu.gatesAreLive(x))
        let err = relativeError(doubles(try dgn.outputs(x)), doubles(try relu.outputs(x)))
        #expect(err < 1e-6, "relative error \(err)")
    }

    @Test("fixed random di starts the value net as a copy of the feature net; ii draws it independently")
    func dependentAndIndependentInit() throws {
        let di = try GatedNetwork(spec: makeSpec(.fixedRandomDI, 5, [8, 6], 3, seed: 83))
        let ii = try GatedNetwork(spec: makeSpec(.fixedRandomII, 5, [8, 6], 3, seed: 83))
        for l in 0..<2 {
            #expect(di.valueLayers[l].isBitIdentical(to: di.featureLayers[l]))
            #expect(!ii.valueLayers[l].isBitIdentical(to: ii.featureLayers[l]))
            // Same seed: the gates of both regimes are the same random feature net.
            #expect(di.featureLayers[l].isBitIdentical(to: ii.featureLayers[l]))
        }
        #expect(di.featureFrozen && ii.featureFrozen)
        #expect(!di.valueFrozen && !ii.valueFrozen)
    }

    @Test("initialisation draws N(0, scale²/fan_in) or ±scale/√fan_in weights and zero biases, the same for the same seed")
    func initialisation() throws {
        let gaussian = try GatedNetwork(spec: makeSpec(.fixedRandomII, 400, [300], 2, seed: 94) { $0.bias = true; $0.initScale = 1.5 })
        let w = doubles(gaussian.featureLayers[0].weight.array)
        let mean = w.reduce(0, +) / Double(w.count)
        let variance = w.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(w.count)
        let expected = 1.5 * 1.5 / 400
        // 120000 draws: the sample variance is within 2% (about 5 standard errors).
        #expect(abs(variance / expected - 1) < 0.02, "variance \(variance), expected \(expected)")
        #expect(abs(mean) < 5 * (expected / Double(w.count)).squareRoot())
        #expect(gaussian.parameterTensors.filter(\.key.isBias).allSatisfy { $0.buffer.array.allSatisfy { $0 == 0 } })
        let bernoulli = try GatedNetwork(spec: makeSpec(.fixedRandomII, 400, [300], 2, seed: 94) { $0.initKind = .bernoulli })
        let b = bernoulli.valueLayers[0].weight.array
        let magnitude = Float(Double(Float(2).squareRoot()) / 20)   // default scale √2 (as a float)
        #expect(b.allSatisfy { $0 == magnitude || $0 == -magnitude })
        let positive = b.filter { $0 > 0 }.count
        #expect(abs(Double(positive) / Double(b.count) - 0.5) < 0.01)
        let again = try GatedNetwork(spec: makeSpec(.fixedRandomII, 400, [300], 2, seed: 94) { $0.initKind = .bernoulli })
        #expect(again.isBitIdentical(to: bernoulli))
        let other = try GatedNetwork(spec: makeSpec(.fixedRandomII, 400, [300], 2, seed: 95) { $0.initKind = .bernoulli })
        #expect(!other.featureLayers[0].isBitIdentical(to: bernoulli.featureLayers[0]))
    }

    @Test("fixed learnt copies and freezes the source's feature weights, and needs a matching source")
    func fixedLearntCopiesGates() throws {
        let source = try GatedNetwork(spec: makeSpec(.relu, 5, [8, 6], 3, seed: 84))
        let net = try GatedNetwork(spec: makeSpec(.fixedLearnt, 5, [8, 6], 3, seed: 85), gateSource: source)
        for l in 0..<2 { #expect(net.featureLayers[l].isBitIdentical(to: source.featureLayers[l])) }
        #expect(net.featureFrozen)
        let x = seededUniform(10 * 5, seed: 812)
        #expect(net.gateArrays(x) == source.gateArrays(x))
        #expect(throws: GatedNetError.self) { try GatedNetwork(spec: makeSpec(.fixedLearnt, 5, [8, 6], 3, seed: 85)) }
        let wrongShape = try GatedNetwork(spec: makeSpec(.relu, 5, [8, 5], 3, seed: 84))
        #expect(throws: GatedNetError.self) {
            try GatedNetwork(spec: makeSpec(.fixedLearnt, 5, [8, 6], 3, seed: 85), gateSource: wrongShape)
        }
    }

    @Test("a permutation changes which feature layer gates each value layer")
    func permutationRewiresGates() throws {
        let plain = try GatedNetwork(spec: makeSpec(.custom, 4, [6, 6, 6], 2, seed: 86))
        let permuted = try GatedNetwork(spec: makeSpec(.custom, 4, [6, 6, 6], 2, seed: 86) { $0.permutation = [2, 0, 1] })
        let x = seededUniform(12 * 4, seed: 813)
        // Same weights, same gates ...
        for (a, b) in zip(plain.parameterTensors, permuted.parameterTensors) { #expect(a.buffer.isBitIdentical(to: b.buffer)) }
        #expect(plain.gateArrays(x) == permuted.gateArrays(x))
        // ... different outputs, each equal to the reference model with its own wiring.
        let yp = doubles(try permuted.outputs(x)), y = doubles(try plain.outputs(x))
        #expect(relativeError(yp, y) > 0.05)
        let reference = ReferenceNet(permuted)
        #expect(reference.spec.gateLayer(0) == 2)
        let expected = (0..<12).flatMap { reference.output(row(x, $0, cols: 4)) }
        #expect(relativeError(yp, expected) < 1e-5)
        // The identity permutation is the plain network.
        let identity = try GatedNetwork(spec: makeSpec(.custom, 4, [6, 6, 6], 2, seed: 86) { $0.permutation = [0, 1, 2] })
        #expect(try identity.outputs(x) == plain.outputs(x))
    }

    @Test("invalid permutations and regime combinations are rejected with the right error")
    func invalidWiringRejected() {
        func error(_ edit: (inout NetworkSpec) -> Void, regime: Regime = .custom, widths: [Int] = [4, 4, 4]) -> GatedNetError? {
            do { _ = try GatedNetwork(spec: makeSpec(regime, 3, widths, 2, seed: 1, edit)); return nil } catch let e as GatedNetError {
                return e
            } catch { return nil }
        }
        func isInvalid(_ e: GatedNetError?) -> Bool { if case .invalidArgument = e { return true }; return false }
        func isShape(_ e: GatedNetError?) -> Bool { if case .shape = e { return true }; return false }
        #expect(isShape(error({ $0.permutation = [1, 0, 2] }, widths: [4, 5, 4])))
        #expect(isInvalid(error { $0.permutation = [0, 0, 1] }))
        #expect(isInvalid(error { $0.permutation = [0, 1, 3] }))
        #expect(isInvalid(error { $0.permutation = [0, 1, -1] }))
        #expect(isInvalid(error { $0.permutation = [0, 1] }))
        #expect(isInvalid(error({ $0.permutation = [1, 0, 2] }, regime: .relu)))
        #expect(isInvalid(error({ $0.gateKind = .soft }, regime: .relu)))
        #expect(isInvalid(error({ $0.valueInput = .ones }, regime: .relu)))
        #expect(isInvalid(error { $0.gateKind = .soft; $0.beta = 0 }))
        #expect(isInvalid(error { $0.gateKind = .soft; $0.beta = .nan }))
        #expect(isInvalid(error({ $0.beta = -1 }, regime: .dlgn)))
        #expect(isInvalid(error({ _ in }, widths: [])))
        #expect(isInvalid(error({ _ in }, widths: [4, 0])))
        #expect(error({ $0.permutation = [1, 0, 2] }) == nil)
    }

    @Test("single-layer gates, packed gate masks and all gates agree")
    func gateExportsAgree() throws {
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, 5, [70, 9], 2, seed: 87))
        let rows = 11
        let x = seededUniform(rows * 5, seed: 814)
        let all = net.gateArrays(x)
        for l in 0..<2 {
            let w = net.hiddenWidths[l]
            var one = [Float](repeating: .nan, count: rows * w)
            let mask = try x.withUnsafeBufferPointer { xp in
                try one.withUnsafeMutableBufferPointer { try net.gates(xp.baseAddress!, rows: rows, layer: l, into: $0.baseAddress!) }
                return try net.gateMask(xp.baseAddress!, rows: rows, layer: l)
            }
            #expect(one == all[l])
            #expect(mask.wordsPerRow == (w + 63) / 64)
            for r in 0..<rows {
                for i in 0..<w { #expect(mask.isOn(row: r, gate: i) == (all[l][r * w + i] == 1)) }
                // Unused high bits stay 0.
                let used = w - 64 * (mask.wordsPerRow - 1)
                if used < 64 { #expect(mask.words[r * mask.wordsPerRow + mask.wordsPerRow - 1] >> UInt64(used) == 0) }
            }
        }
        #expect(all.allSatisfy { g in g.allSatisfy { $0 == 0 || $0 == 1 } })
        #expect(throws: GatedNetError.self) { try x.withUnsafeBufferPointer { _ = try net.gateMask($0.baseAddress!, rows: rows, layer: 2) } }
        let soft = try GatedNetwork(spec: makeSpec(.dlgn, 5, [7], 2, seed: 88))
        #expect(throws: GatedNetError.unsupported("packed gates: this network has soft gates")) {
            try x.withUnsafeBufferPointer { _ = try soft.gateMask($0.baseAddress!, rows: rows, layer: 0) }
        }
    }

    @Test("dlgn gate equals sigmoid of beta times the effective hyperplane <u, x> + c (MATH.md §6, §7.8)")
    func dlgnEffectiveHyperplanes() throws {
        let net = try GatedNetwork(spec: makeSpec(.dlgn, 4, [6, 5, 3], 2, seed: 89) { $0.bias = true; $0.beta = 4 })
        for t in net.parameterTensors where t.key.isBias {
            let v = seededUniform(t.buffer.count, seed: 890 + UInt64(t.key.layer), scale: 0.5)
            for j in v.indices { t.buffer[j] = v[j] }
        }
        // u_l = Wg_l ⋯ Wg_1, c_l = Wg_l c_{l-1} + b_l, accumulated in double.
        var u: [[Double]] = (0..<4).map { i in (0..<4).map { $0 == i ? 1.0 : 0.0 } }   // rows: units, cols: inputs
        var c = [Double](repeating: 0, count: 4)
        var hyperplanes: [(u: [[Double]], c: [Double])] = []
        for layer in net.featureLayers {
            let w = doubles(layer.weight.array), b = doubles(layer.bias!.array)
            u = (0..<layer.fanOut).map { o in (0..<4).map { j in (0..<layer.fanIn).reduce(0) { $0 + w[o * layer.fanIn + $1] * u[$1][j] } } }
            c = (0..<layer.fanOut).map { o in (0..<layer.fanIn).reduce(b[o]) { $0 + w[o * layer.fanIn + $1] * c[$1] } }
            hyperplanes.append((u, c))
        }
        let rows = 10
        let x = seededUniform(rows * 4, seed: 815)
        let gates = net.gateArrays(x)
        var maxError = 0.0
        for r in 0..<rows {
            let xr = row(x, r, cols: 4)
            for (l, hp) in hyperplanes.enumerated() {
                for i in hp.c.indices {
                    let expected = 1 / (1 + exp(-4 * (dot(hp.u[i], xr) + hp.c[i])))
                    maxError = max(maxError, abs(Double(gates[l][r * hp.c.count + i]) - expected))
                }
            }
        }
        #expect(maxError < 1e-5)
    }

    @Test("hard-gated linear gating net: a gate is on exactly on its half-space")
    func hardLinearGatesAreHalfSpaces() throws {
        let net = try GatedNetwork(spec: makeSpec(.custom, 3, [5, 4], 2, seed: 90) { $0.activation = .identity })
        let w1 = doubles(net.featureLayers[0].weight.array), w2 = doubles(net.featureLayers[1].weight.array)
        let x = seededUniform(40 * 3, seed: 816)
        let gates = net.gateArrays(x)
        for r in 0..<40 {
            let xr = row(x, r, cols: 3)
            for i in 0..<4 {
                // u = row i of W2 W1
                let u = (0..<3).map { j in (0..<5).reduce(0.0) { $0 + w2[i * 5 + $1] * w1[$1 * 3 + j] } }
                let s = dot(u, xr)
                if abs(s) > 1e-5 { #expect(gates[1][r * 4 + i] == (s > 0 ? 1 : 0)) }
            }
        }
    }

    @Test("freezing and unfreezing parts, and copying feature weights, behave as documented")
    func freezeAndCopy() throws {
        let net = try GatedNetwork(spec: makeSpec(.decoupled, 4, [5], 2, seed: 91))
        #expect(!net.featureFrozen && !net.valueFrozen)
        net.setFrozen(.value, true)
        #expect(net.valueFrozen && !net.featureFrozen)
        net.setFrozen(.value, false)
        let other = try GatedNetwork(spec: makeSpec(.decoupled, 4, [5], 2, seed: 92))
        try net.copyFeatureWeights(from: other, freeze: true)
        #expect(net.featureFrozen)
        #expect(net.featureLayers[0].isBitIdentical(to: other.featureLayers[0]))
        #expect(!net.valueLayers[0].isBitIdentical(to: other.valueLayers[0]))
        let biased = try GatedNetwork(spec: makeSpec(.decoupled, 4, [5], 2, seed: 92) { $0.bias = true })
        #expect(throws: GatedNetError.self) { try net.copyFeatureWeights(from: biased, freeze: false) }
        #expect(throws: GatedNetError.self) { _ = try net.layer(.value, 2) }
        #expect(throws: GatedNetError.self) { _ = try net.layer(.feature, 1) }   // no feature head
        let tied = try GatedNetwork(spec: makeSpec(.relu, 4, [5], 2, seed: 93))
        tied.setFrozen(.value, true)
        #expect(tied.featureFrozen && tied.valueFrozen)
        #expect(try tied.layer(.value, 1) === tied.featureHead)
    }
}
