@testable import GatedNet
import Testing

@Suite("Conv persistence")
struct ConvArchiveTests {
    static func trained() throws -> (ConvNetwork, [Float], [Int32]) {
        let net = try ConvNetwork(spec: convSpec(.decoupled, 2, 5, 5, [.conv(3, kernel: 3, padding: .circular, bias: true),
                                                                     .conv(3, kernel: 3, padding: .circular, block: 1),
                                                                     .conv(4, kernel: 3, stride: 2, block: 1),
                                                                     .globalAveragePool, .dense(4), .dense(3)], seed: 5) {
            $0.permutation = [1, 0, 2, 3] })
        let x = convUniform(20 * net.inputSize, seed: 1), y = convLabels(20, classes: 3, seed: 2)
        var o = TrainOptions()
        o.epochs = 2; o.batchSize = 8; o.learningRate = 1e-2
        try x.withUnsafeBufferPointer { xp in
            try y.withUnsafeBufferPointer { yp in
                _ = try net.train(LabelledData(x: xp.baseAddress!, y: yp.baseAddress!, rows: 20), options: o)
            }
        }
        return (net, x, y)
    }

    @Test("a round trip keeps outputs, gates, flags and optimizer moments bit-identical")
    func roundTrip() throws {
        let (net, x, y) = try ConvArchiveTests.trained()
        let bytes = ConvNetworkArchive.encode(net, includeOptimizer: true)
        let copy = try bytes.withUnsafeBytes { try ConvNetworkArchive.decode($0) }
        #expect(copy.outputs(x) == net.outputs(x))
        #expect(copy.gateTensors(x, wired: true) == net.gateTensors(x, wired: true))
        #expect(copy.epochsTrained == 2 && copy.spec == net.spec)
        // Training both one more epoch gives identical weights: the moments came along.
        var o = TrainOptions()
        o.batchSize = 8; o.learningRate = 1e-2
        for n in [net, copy] {
            try x.withUnsafeBufferPointer { xp in
                try y.withUnsafeBufferPointer { yp in
                    _ = try n.train(LabelledData(x: xp.baseAddress!, y: yp.baseAddress!, rows: 20), options: o)
                }
            }
        }
        for (a, b) in zip(net.parameters, copy.parameters) { #expect(a.buffer.isBitIdentical(to: b.buffer), "\(a.name)") }
    }

    @Test("corrupted, truncated and foreign bytes are rejected")
    func corruption() throws {
        let (net, _, _) = try ConvArchiveTests.trained()
        let bytes = ConvNetworkArchive.encode(net, includeOptimizer: false)
        for i in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 37)) {
            var bad = bytes
            bad[i] ^= 0x40
            #expect(throws: GatedNetError.self) { try bad.withUnsafeBytes { try ConvNetworkArchive.decode($0) } }
        }
        let cut = Array(bytes.prefix(bytes.count - 9))
        #expect(throws: GatedNetError.self) { try cut.withUnsafeBytes { try ConvNetworkArchive.decode($0) } }
        let mlp = try GatedNetwork(spec: NetworkSpec(regime: .relu, inputSize: 4, hiddenWidths: [3], outputSize: 2))
        let foreign = NetworkArchive.encode(mlp, includeOptimizer: false)
        #expect(throws: GatedNetError.self) { try foreign.withUnsafeBytes { try ConvNetworkArchive.decode($0) } }
    }
}
