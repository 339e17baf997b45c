@testable import GatedNet
import Testing

@Suite("Conv named architectures")
struct ConvArchitectureTests {
    /// Forward and backward on 2 samples: finite outputs, every value tensor gets a nonzero
    /// gradient, and so does the feature net when it trains. (A feature tensor may rightly get
    /// none: e.g. the projection of a block after the last gate influences no gate.)
    static func forwardBackward(_ net: ConvNetwork) throws {
        let x = convUniform(2 * net.inputSize, seed: 3)
        let out = net.outputs(x)
        #expect(out.count == 2 * net.outputSize && out.allSatisfy(\.isFinite))
        let (loss, grads) = try net.gradients(x, [0, 1], .crossEntropy)
        #expect(loss.isFinite)
        var featureMoves = false
        for (g, p) in zip(grads, net.parameters) where !p.name.hasSuffix("bias") {
            let moves = g.array.contains { $0 != 0 }
            if p.name.hasPrefix("value") || net.tied { #expect(moves, "\(p.name) has a zero gradient") } else if moves { featureMoves = true }
        }
        #expect(net.tied || featureMoves == (net.spec.gateKind == .soft && !net.featureFrozen))
    }

    @Test("every architecture builds, small, in every regime and runs forward/backward",
          arguments: ConvArchitecture.allCases)
    func small(_ arch: ConvArchitecture) throws {
        let layers = try arch.layers(classes: 3, widthScale: 1.0 / 4)
        let relu = try ConvNetwork(spec: convSpec(.relu, 3, 32, 32, layers, seed: 1))
        try ConvArchitectureTests.forwardBackward(relu)
        for regime in [Regime.decoupled, .dlgn, .dlgnPWC] {
            try ConvArchitectureTests.forwardBackward(try ConvNetwork(spec: convSpec(regime, 3, 32, 32, layers, seed: 2)))
        }
        for regime in [Regime.fixedRandomII, .fixedRandomDI] {
            let net = try ConvNetwork(spec: convSpec(regime, 3, 32, 32, layers, seed: 2))
            #expect(net.featureFrozen)
            _ = net.outputs(convUniform(net.inputSize, seed: 1))
        }
        let learnt = try ConvNetwork(spec: convSpec(.fixedLearnt, 3, 32, 32, layers, seed: 3), gateSource: relu)
        _ = learnt.outputs(convUniform(learnt.inputSize, seed: 1))
    }

    @Test("full-width DGN-No-Act VGG19 and DavidNet construct and run forward/backward on 32x32x3",
          arguments: [ConvArchitecture.vgg19, .davidNet])
    func fullWidth(_ arch: ConvArchitecture) throws {
        let net = try ConvNetwork(spec: convSpec(.dlgn, 3, 32, 32, try arch.layers(classes: 10), seed: 5))
        #expect(net.parameterCount > 5_000_000)
        try ConvArchitectureTests.forwardBackward(net)
    }

    @Test("GCONV and VCONV have the papers' shapes")
    func paperShapes() throws {
        let g = try ConvNetwork(spec: convSpec(.decoupled, 1, 28, 28, try ConvArchitecture.gconv.layers(classes: 10), seed: 1))
        #expect(g.gatedShapes.map(\.channels) == [64, 64, 128, 128, 256])
        #expect(g.gatedShapes[3].positions == 28 * 28)
        _ = g.outputs(convUniform(2 * g.inputSize, seed: 1))
        let v = try ConvArchitecture.vconv.layers(classes: 10)
        #expect(v.contains { $0.kind == .flatten } && !v.contains { $0.kind == .globalAveragePool })
        let d = try ConvArchitecture.dlgnConv.layers(classes: 10)
        #expect(d.filter { $0.kind == .conv }.map(\.outChannels) == [26, 26, 26, 26, 26])
        #expect(throws: GatedNetError.self) { try ConvArchitecture.gconv.layers(classes: 0) }
    }
}
