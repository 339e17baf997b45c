@testable import GatedNet
import Testing

/// Gate rewiring of paper 000 §4.1 and the all-ones value input.
@Suite("Conv gate wiring")
struct ConvWiringTests {
    static let layers: [ConvLayerSpec] = [.conv(3, kernel: 3, padding: .circular), .conv(3, kernel: 3, padding: .circular),
                                          .conv(2, kernel: 3, padding: .circular), .globalAveragePool, .dense(4), .dense(2)]

    @Test("a permutation feeds value layer l exactly the gates of feature layer perm[l]")
    func permutation() throws {
        let perm = [1, 0, 2, 3]
        let net = try ConvNetwork(spec: convSpec(.fixedRandomII, 2, 5, 5, ConvWiringTests.layers, seed: 3) { $0.permutation = perm })
        let x = convUniform(4 * net.inputSize, seed: 2)
        let f = net.gateTensors(x, wired: false), v = net.gateTensors(x, wired: true)
        for l in 0..<perm.count { #expect(v[l] == f[perm[l]]) }
        #expect(v[0] != f[0])
        #expect(v.flatMap { $0 }.sorted() == f.flatMap { $0 }.sorted())
    }

    @Test("a permutation over unequal shapes is rejected")
    func permutationShapes() {
        #expect(throws: GatedNetError.self) {
            try ConvNetwork(spec: convSpec(.fixedRandomII, 2, 5, 5, ConvWiringTests.layers, seed: 3) { $0.permutation = [2, 1, 0, 3] })
        }
    }

    @Test("tiling + rotation keeps every sample's multiset of conv gates and moves them", arguments: [UInt64(1), 2, 3])
    func tiledRotated(seed: UInt64) throws {
        let net = try ConvNetwork(spec: convSpec(.fixedRandomII, 2, 5, 5, ConvWiringTests.layers, seed: 3) {
            $0.wiring = .tiledRotated; $0.wiringSeed = seed; $0.gateKind = .soft; $0.beta = 3 })
        let n = 3
        let x = convUniform(n * net.inputSize, seed: 2)
        let f = net.gateTensors(x, wired: false), v = net.gateTensors(x, wired: true)
        var moved = false
        for s in 0..<n {
            var a: [Float] = [], b: [Float] = []
            for l in 0..<3 {
                let size = net.gatedShapes[l].size
                a += f[l][(s * size)..<((s + 1) * size)]
                b += v[l][(s * size)..<((s + 1) * size)]
            }
            #expect(a.sorted() == b.sorted())
            if a != b { moved = true }
        }
        #expect(moved)
        #expect(v[3] == f[3], "gated dense layers keep their own gates")
    }

    @Test("tiling + rotation needs equal spatial sizes")
    func tiledShapes() {
        #expect(throws: GatedNetError.self) {
            try ConvNetwork(spec: convSpec(.fixedRandomII, 1, 6, 6, [.conv(2), .conv(2, stride: 2), .globalAveragePool, .dense(2)], seed: 1) {
                $0.wiring = .tiledRotated })
        }
    }

    @Test("all-ones value input changes only the input Gram")
    func onesInput() throws {
        let a = try ConvNetwork(spec: convSpec(.fixedRandomII, 2, 4, 5, ConvWiringTests.layers, seed: 8))
        let b = try ConvNetwork(spec: convSpec(.fixedRandomII, 2, 4, 5, ConvWiringTests.layers, seed: 8) { $0.valueInput = .ones })
        let x = convUniform(4 * a.inputSize, seed: 6)
        #expect(a.gateTensors(x, wired: true) == b.gateTensors(x, wired: true))
        let overlapA = try a.kernelMatrix(.gateOverlap, x), overlapB = try b.kernelMatrix(.gateOverlap, x)
        #expect(overlapA == overlapB)
        let gramA = try a.kernelMatrix(.inputGram, x), gramB = try b.kernelMatrix(.inputGram, x)
        #expect(gramB.allSatisfy { $0 == Double(a.inputSize) })
        #expect(gramA != gramB)
        // Conv NPK with ones input: S_0 ≡ channels, so H = channels · overlap.
        let npkB = try b.kernelMatrix(.npk, x)
        for i in npkB.indices { #expect(abs(npkB[i] - 2 * overlapB[i]) <= 1e-5 * abs(npkB[i])) }
        #expect(try a.kernelMatrix(.npk, x) != npkB)
    }
}
