@testable import GatedNet
import Testing

/// One gradient check: a network, a loss, the pass target, and which parts must get gradients.
struct GradientCase: Sendable, CustomTestStringConvertible {
    let name: String
    let spec: NetworkSpec
    let loss: Loss
    var featureHead = false
    /// Parts whose parameters the objective trains (stated here, not taken from the engine).
    let trains: Set<Part>
    var testDescription: String { name }

    static let all: [GradientCase] = [
        GradientCase(name: "relu tied, cross-entropy, biases",
                     spec: makeSpec(.relu, 3, [5, 4], 3, seed: 51) { $0.bias = true },
                     loss: .crossEntropy, trains: [.feature]),
        GradientCase(name: "relu tied, squared k=1",
                     spec: makeSpec(.relu, 3, [5, 4], 1, seed: 72), loss: .squared, trains: [.feature]),
        GradientCase(name: "decoupled soft relu features beta 10, cross-entropy, biases",
                     spec: makeSpec(.decoupled, 3, [5, 4], 3, seed: 53) { $0.bias = true },
                     loss: .crossEntropy, trains: [.feature, .value]),
        GradientCase(name: "decoupled soft relu features, squared k=3 one-hot",
                     spec: makeSpec(.decoupled, 3, [5, 4], 3, seed: 54) { $0.beta = 4 },
                     loss: .squared, trains: [.feature, .value]),
        GradientCase(name: "dlgn soft identity features, cross-entropy, biases",
                     spec: makeSpec(.dlgn, 3, [5, 4, 3], 3, seed: 55) { $0.bias = true; $0.beta = 4 },
                     loss: .crossEntropy, trains: [.feature, .value]),
        GradientCase(name: "dlgn pwc, squared k=1, biases",
                     spec: makeSpec(.dlgnPWC, 3, [5, 4], 1, seed: 56) { $0.bias = true; $0.beta = 4 },
                     loss: .squared, trains: [.feature, .value]),
        GradientCase(name: "fixed random di hard, cross-entropy, biases",
                     spec: makeSpec(.fixedRandomDI, 3, [5, 4], 3, seed: 57) { $0.bias = true },
                     loss: .crossEntropy, trains: [.value]),
        GradientCase(name: "fixed random ii hard, squared k=1",
                     spec: makeSpec(.fixedRandomII, 3, [5, 4], 1, seed: 58), loss: .squared, trains: [.value]),
        GradientCase(name: "fixed learnt hard, squared k=3 one-hot",
                     spec: makeSpec(.fixedLearnt, 3, [5, 4], 3, seed: 59), loss: .squared, trains: [.value]),
        GradientCase(name: "permuted soft gates, relu features, cross-entropy, biases",
                     spec: makeSpec(.custom, 3, [4, 4, 4], 3, seed: 60) {
                         $0.gateKind = .soft; $0.beta = 4; $0.permutation = [1, 2, 0]; $0.bias = true
                     }, loss: .crossEntropy, trains: [.feature, .value]),
        GradientCase(name: "permuted soft gates, identity features, value input ones, squared k=1",
                     spec: makeSpec(.custom, 3, [4, 4], 1, seed: 61) {
                         $0.gateKind = .soft; $0.activation = .identity; $0.beta = 3; $0.permutation = [1, 0]
                         $0.valueInput = .ones
                     }, loss: .squared, trains: [.feature, .value]),
        GradientCase(name: "permuted hard gates, cross-entropy",
                     spec: makeSpec(.custom, 3, [4, 4, 4], 3, seed: 62) { $0.permutation = [2, 0, 1] },
                     loss: .crossEntropy, trains: [.value]),
        GradientCase(name: "soft gates with frozen features, cross-entropy",
                     spec: makeSpec(.custom, 3, [5, 4], 3, seed: 63) {
                         $0.gateKind = .soft; $0.beta = 4; $0.featureFrozen = true
                     }, loss: .crossEntropy, trains: [.value]),
        GradientCase(name: "feature head of a decoupled net, relu, cross-entropy, biases",
                     spec: makeSpec(.decoupled, 3, [5, 4], 3, seed: 64) { $0.featureHead = true; $0.bias = true },
                     loss: .crossEntropy, featureHead: true, trains: [.feature]),
        GradientCase(name: "feature head of a dlgn, identity, squared k=1",
                     spec: makeSpec(.dlgn, 3, [5, 4], 1, seed: 65) { $0.featureHead = true },
                     loss: .squared, featureHead: true, trains: [.feature]),
    ]

    func makeNetwork() throws -> GatedNetwork {
        var source: GatedNetwork?
        if spec.regime == .fixedLearnt {
            source = try GatedNetwork(spec: makeSpec(.relu, spec.inputSize, spec.hiddenWidths, 2, seed: spec.seed + 1000) {
                $0.bias = spec.bias
            })
        }
        let net = try GatedNetwork(spec: spec, gateSource: source)
        // Biases start at 0; make them matter.
        for (i, t) in net.parameterTensors.enumerated() where t.key.isBias {
            let v = seededUniform(t.buffer.count, seed: spec.seed * 100 + UInt64(i), scale: 0.3)
            for j in v.indices { t.buffer[j] = v[j] }
        }
        return net
    }
}

@Suite("Gradients against finite differences")
struct GradientTests {
    @Test("backward pass equals central finite differences of the loss, and only trained parts get gradients",
          arguments: GradientCase.all)
    func backwardMatchesFiniteDifferences(_ c: GradientCase) throws {
        let net = try c.makeNetwork()
        let rows = 6
        let x = seededUniform(rows * c.spec.inputSize, seed: c.spec.seed + 7)
        let classes = c.spec.outputSize == 1 ? 2 : c.spec.outputSize
        let labels = seededLabels(rows, classes: classes, seed: c.spec.seed + 8)
        let reference = ReferenceNet(net)
        let target: PassTarget = c.featureHead ? .featureHead : .network
        // Hard gates and ReLU kinks must stay put under the finite-difference steps.
        if c.spec.gateKind == .hard || c.spec.activation == .relu {
            let margin = reference.margin(x)
            try #require(margin > 1e-3, "inputs too close to a gate boundary: margin \(margin)")
        }
        let engine = net.engineGradients(x, labels, loss: c.loss, target: target)
        let referenceLoss = reference.meanLoss(x, labels, loss: c.loss, featureHead: c.featureHead)
        #expect(abs(engine.loss - referenceLoss) <= 1e-5 * max(1, referenceLoss), "loss \(engine.loss) vs \(referenceLoss)")

        var checked = 0
        for t in net.parameterTensors {
            let g = doubles(try #require(engine.grads[t.key]))
            let fd = reference.finiteDifferences(t.key, x, labels, loss: c.loss, featureHead: c.featureHead)
            let fdScale = fd.map(abs).max()!
            if c.trains.contains(t.key.part) && fdScale > 0 {
                let err = relativeError(g, fd)
                #expect(err < 2e-4, "\(t.key): relative error \(err), max |fd| \(fdScale)")
                checked += 1
            } else {
                #expect(g.allSatisfy { $0 == 0 }, "\(t.key) is not trained but got a gradient")
            }
            // Hard gates are piecewise constant: the loss does not depend on feature weights.
            if c.spec.gateKind == .hard && !c.spec.tied && !c.featureHead && t.key.part == .feature {
                #expect(fdScale < 1e-9, "\(t.key): hard gates but finite difference \(fdScale)")
            }
        }
        // Every trained tensor had a non-zero gradient to compare (no tensor was skipped); an
        // untied feature head is outside the DGN's objective.
        let trainedTensors = net.parameterTensors.filter { t in
            let untiedHead = !c.spec.tied && t.key.part == .feature && t.key.layer == c.spec.hiddenCount
            return c.trains.contains(t.key.part) && !(untiedHead && !c.featureHead)
        }
        #expect(checked == trainedTensors.count)
    }

    @Test("loss gradient with respect to the outputs matches finite differences for every loss")
    func lossGradientMatchesFiniteDifferences() {
        for (loss, k) in [(Loss.crossEntropy, 4), (.squared, 1), (.squared, 4)] {
            let rows = 5
            let y = seededUniform(rows * k, seed: 500 + UInt64(k), scale: 3)
            let labels = seededLabels(rows, classes: k == 1 ? 2 : k, seed: 501)
            var grad = [Float](repeating: .nan, count: rows * k)
            func meanLoss(_ y: [Float]) -> Double {
                y.withUnsafeBufferPointer { yp in
                    labels.withUnsafeBufferPointer { lp in
                        loss.evaluate(outputs: yp.baseAddress!, labels: lp.baseAddress!, rows: rows, k: k,
                                      grad: nil, scaleRows: rows).loss / Double(rows)
                    }
                }
            }
            y.withUnsafeBufferPointer { yp in
                labels.withUnsafeBufferPointer { lp in
                    grad.withUnsafeMutableBufferPointer { gp in
                        _ = loss.evaluate(outputs: yp.baseAddress!, labels: lp.baseAddress!, rows: rows, k: k,
                                          grad: gp.baseAddress!, scaleRows: rows)
                    }
                }
            }
            let step: Float = 1e-2
            let fd = y.indices.map { i -> Double in
                var up = y, down = y
                up[i] += step; down[i] -= step
                return (meanLoss(up) - meanLoss(down)) / Double(Float(y[i] + step) - Float(y[i] - step))
            }
            let err = relativeError(doubles(grad), fd)
            #expect(err < 2e-3, "\(loss) k=\(k): relative error \(err)")
        }
    }

    @Test("squared loss targets are ±1 for k = 1 and one-hot for k > 1")
    func squaredLossTargets() {
        func loss(_ y: [Float], _ label: Int32, k: Int) -> Double {
            y.withUnsafeBufferPointer { yp in
                [label].withUnsafeBufferPointer { lp in
                    Loss.squared.evaluate(outputs: yp.baseAddress!, labels: lp.baseAddress!, rows: 1, k: k,
                                          grad: nil, scaleRows: 1).loss
                }
            }
        }
        #expect(loss([1], 1, k: 1) == 0)
        #expect(loss([-1], 0, k: 1) == 0)
        #expect(loss([0], 0, k: 1) == 0.5)
        #expect(loss([0, 1, 0], 1, k: 3) == 0)
        #expect(loss([1, 0, 0], 1, k: 3) == 1)
    }
}
