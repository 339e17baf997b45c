@testable import GatedNet
import Testing

// Helpers of the conv tests (prefixed `conv` so they never clash with other test files).

/// `count` seeded values uniform in [-scale, scale).
func convUniform(_ count: Int, seed: UInt64, scale: Double = 1) -> [Float] {
    var rng = SeededGenerator(seed: seed)
    return (0..<count).map { _ in Float((2 * rng.nextUnit() - 1) * scale) }
}

func convLabels(_ rows: Int, classes: Int, seed: UInt64) -> [Int32] {
    var rng = SeededGenerator(seed: seed)
    return (0..<rows).map { _ in Int32(rng.nextInt(below: classes)) }
}

func convSpec(_ regime: Regime, _ c: Int, _ h: Int, _ w: Int, _ layers: [ConvLayerSpec], seed: UInt64,
              _ edit: (inout ConvNetworkSpec) -> Void = { _ in }) -> ConvNetworkSpec {
    var s = ConvNetworkSpec(regime: regime, channels: c, height: h, width: w, layers: layers, seed: seed)
    edit(&s)
    return s
}

extension ConvNetwork {
    func outputs(_ x: [Float]) -> [Float] {
        let rows = x.count / inputSize
        var out = [Float](repeating: .nan, count: rows * outputSize)
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { predict(xp.baseAddress!, rows: rows, into: $0.baseAddress!) }
        }
        return out
    }

    func meanLoss(_ x: [Float], _ y: [Int32], _ loss: Loss) throws -> Double {
        try x.withUnsafeBufferPointer { xp in
            try y.withUnsafeBufferPointer { yp in
                try evaluate(LabelledData(x: xp.baseAddress!, y: yp.baseAddress!, rows: y.count), loss: loss).loss
            }
        }
    }

    func gradients(_ x: [Float], _ y: [Int32], _ loss: Loss) throws -> (Double, [FloatBuffer]) {
        try x.withUnsafeBufferPointer { xp in
            try y.withUnsafeBufferPointer { yp in try lossAndGradients(xp.baseAddress!, labels: yp.baseAddress!, rows: y.count, loss: loss) }
        }
    }

    func kernelMatrix(_ kind: ConvKernelKind, _ xa: [Float], _ xb: [Float]? = nil) throws -> [Double] {
        let na = xa.count / inputSize, nb = (xb ?? xa).count / inputSize
        var out = [Float](repeating: .nan, count: na * nb)
        try xa.withUnsafeBufferPointer { a in
            try (xb ?? xa).withUnsafeBufferPointer { b in
                try out.withUnsafeMutableBufferPointer { o in
                    try pathKernel(kind, xa: a.baseAddress!, na: na, xb: b.baseAddress!, nb: nb, symmetric: xb == nil,
                                   out: KernelOutput(pointer: o.baseAddress!, rows: na, cols: nb, ld: nb))
                }
            }
        }
        return out.map(Double.init)
    }

    func gateTensors(_ x: [Float], wired: Bool) -> [[Float]] {
        x.withUnsafeBufferPointer { allGates($0.baseAddress!, rows: x.count / inputSize, wired: wired).map(\.array) }
    }

    func tensor(_ name: String) -> FloatBuffer { parameters.first { $0.name == name }!.buffer }
}

struct ConvGradientCase: Sendable, CustomTestStringConvertible {
    let name: String
    let spec: ConvNetworkSpec
    let loss: Loss
    var testDescription: String { name }

    static let all: [ConvGradientCase] = [
        ConvGradientCase(name: "zero padding stride 1 and 2, valid, GAP, biases, decoupled",
                         spec: convSpec(.decoupled, 2, 6, 5, [.conv(3, kernel: 3, bias: true), .conv(3, kernel: 3, stride: 2),
                                                              .conv(2, kernel: 2, padding: .valid, bias: true),
                                                              .globalAveragePool, .dense(4, bias: true), .dense(3)], seed: 11) { $0.beta = 2 },
                         loss: .crossEntropy),
        ConvGradientCase(name: "circular padding stride 1 and 2, flatten, squared",
                         spec: convSpec(.decoupled, 2, 5, 5, [.conv(3, kernel: 3, padding: .circular),
                                                              .conv(2, kernel: 3, stride: 2, padding: .circular, bias: true),
                                                              .flatten, .dense(3)], seed: 12) { $0.beta = 2 },
                         loss: .squared),
        ConvGradientCase(name: "valid padding stride 2, even kernel, relu features, bias",
                         spec: convSpec(.decoupled, 3, 7, 6, [.conv(2, kernel: 3, stride: 2, padding: .valid, bias: true),
                                                              .conv(3, kernel: 2, padding: .valid), .globalAveragePool, .dense(2)], seed: 19) { $0.beta = 2 },
                         loss: .squared),
        ConvGradientCase(name: "global max pooling (argmax gate), dlgn linear features",
                         spec: convSpec(.dlgn, 1, 5, 4, [.conv(3, kernel: 3), .conv(4, kernel: 2, stride: 2), .globalMaxPool,
                                                         .dense(3), .dense(2)], seed: 13) { $0.beta = 2 },
                         loss: .crossEntropy),
        ConvGradientCase(name: "residual conv blocks: identity and strided projection",
                         spec: convSpec(.decoupled, 2, 6, 6, [.conv(3, kernel: 3), .conv(3, kernel: 3, block: 1), .conv(3, kernel: 3, block: 1),
                                                              .conv(4, kernel: 3, stride: 2, block: 2), .conv(4, kernel: 3, block: 2),
                                                              .globalAveragePool, .dense(3)], seed: 14) { $0.beta = 2 },
                         loss: .crossEntropy),
        ConvGradientCase(name: "residual dense blocks: identity and projection, biases",
                         spec: convSpec(.decoupled, 1, 2, 3, [.dense(4, bias: true), .dense(4, block: 1), .dense(4, block: 1),
                                                              .dense(3, block: 2), .dense(2)], seed: 15) { $0.beta = 2 },
                         loss: .crossEntropy),
        ConvGradientCase(name: "relu tied conv residual net",
                         spec: convSpec(.relu, 2, 5, 5, [.conv(3, kernel: 3, bias: true), .conv(3, kernel: 3, block: 1),
                                                         .conv(3, kernel: 3, block: 1), .globalAveragePool, .dense(3)], seed: 16),
                         loss: .crossEntropy),
        ConvGradientCase(name: "dlgn pwc ones input, tiled+rotated gates",
                         spec: convSpec(.dlgnPWC, 2, 4, 4, [.conv(3, kernel: 3, padding: .circular), .conv(2, kernel: 3, padding: .circular),
                                                            .globalAveragePool, .dense(3)], seed: 17) {
                             $0.beta = 2; $0.wiring = .tiledRotated; $0.wiringSeed = 5 },
                         loss: .crossEntropy),
        ConvGradientCase(name: "decoupled with permuted equal-shape layers",
                         spec: convSpec(.decoupled, 2, 4, 4, [.conv(3, kernel: 3), .conv(3, kernel: 3), .conv(3, kernel: 3),
                                                              .globalAveragePool, .dense(3)], seed: 18) {
                             $0.beta = 2; $0.permutation = [2, 0, 1] },
                         loss: .crossEntropy),
    ]
}

@Suite("Conv gradients")
struct ConvGradientTests {
    @Test("backward matches central finite differences (im2col / Winograd 3x3 convs)",
          arguments: ConvGradientCase.all, [ConvAlgorithm.im2col, .winograd])
    func finiteDifferences(_ c: ConvGradientCase, _ algorithm: ConvAlgorithm) throws {
        let net = try ConvNetwork(spec: c.spec)
        net.convAlgorithm = algorithm
        let rows = 3
        let x = convUniform(rows * net.inputSize, seed: 99)
        let y = convLabels(rows, classes: net.outputSize == 1 ? 2 : net.outputSize, seed: 98)
        let (loss0, grads) = try net.gradients(x, y, c.loss)
        #expect(abs(loss0 - (try net.meanLoss(x, y, c.loss))) < 1e-6)
        var rng = SeededGenerator(seed: 7)
        var checked = 0, nonzero = 0
        for (t, entry) in net.parameters.enumerated() {
            let p = entry.buffer
            for _ in 0..<min(5, p.count) {
                let i = rng.nextInt(below: p.count)
                let old = p[i]
                let h: Float = 2e-3
                p[i] = old + h
                let up = try net.meanLoss(x, y, c.loss)
                p[i] = old - h
                let down = try net.meanLoss(x, y, c.loss)
                p[i] = old
                let fd = (up - down) / Double(2 * h)
                let an = Double(grads[t][i])
                checked += 1
                if an != 0 { nonzero += 1 }
                #expect(abs(fd - an) <= 3e-3 + 3e-2 * max(abs(fd), abs(an)), "\(c.name): \(entry.name)[\(i)] analytic \(an) vs fd \(fd)")
            }
        }
        #expect(checked > 10)
        #expect(nonzero > checked / 2)
    }

    @Test("hard gates send no gradient into the frozen feature net")
    func frozenFeatures() throws {
        let net = try ConvNetwork(spec: convSpec(.fixedRandomII, 1, 5, 5, [.conv(3), .globalAveragePool, .dense(2)], seed: 3))
        let x = convUniform(2 * net.inputSize, seed: 1)
        let (_, grads) = try net.gradients(x, [0, 1], .crossEntropy)
        for (t, e) in net.parameters.enumerated() {
            let zero = grads[t].array.allSatisfy { $0 == 0 }
            #expect(zero == e.name.hasPrefix("feature"), "\(e.name)")
        }
    }
}
