@testable import GatedNet
import Glibc
import Testing

/// A small labelled problem: the label is the arg-max of the first `classes` inputs (k = 1: x_0 > 0).
func syntheticProblem(rows: Int, inputSize: Int, classes: Int, seed: UInt64) -> (x: [Float], y: [Int32]) {
    let x = seededUniform(rows * inputSize, seed: seed)
    let y = (0..<rows).map { r -> Int32 in
        if classes == 2 { return x[r * inputSize] > 0 ? 1 : 0 }
        var best = 0
        for c in 1..<classes where x[r * inputSize + c] > x[r * inputSize + best] { best = c }
        return Int32(best)
    }
    return (x, y)
}

func decodeArchive(_ bytes: [UInt8]) throws -> GatedNetwork {
    try bytes.withUnsafeBytes { try NetworkArchive.decode($0) }
}

/// `bytes` with its trailing CRC-32 recomputed, so a change inside reaches the field parsers.
func withChecksum(_ bytes: [UInt8]) -> [UInt8] {
    var out = bytes
    let crc = crc32Of(Array(bytes[0..<(bytes.count - 4)]))
    for i in 0..<4 { out[bytes.count - 4 + i] = UInt8(crc >> (8 * UInt32(i)) & 255) }
    return out
}

/// Networks of several kinds, trained a little so every flag and optimizer moment is set.
func trainedNetworks() throws -> [(name: String, net: GatedNetwork, options: TrainOptions)] {
    var out: [(String, GatedNetwork, TrainOptions)] = []
    var adam = TrainOptions()
    adam.learningRate = 1e-2; adam.batchSize = 16; adam.epochs = 2; adam.shuffleSeed = 5
    var sgd = adam
    sgd.optimizer = .sgd; sgd.momentum = 0.9; sgd.weightDecay = 1e-3

    let decoupled = try GatedNetwork(spec: makeSpec(.decoupled, 4, [6, 5], 3, seed: 701) { $0.bias = true; $0.featureHead = true })
    out.append(("decoupled, biases, feature head, adam", decoupled, adam))

    let relu = try GatedNetwork(spec: makeSpec(.relu, 4, [6, 5], 3, seed: 702) { $0.bias = true })
    out.append(("relu tied, sgd momentum", relu, sgd))

    let pwc = try GatedNetwork(spec: makeSpec(.custom, 4, [5, 5], 1, seed: 703) {
        $0.gateKind = .soft; $0.activation = .identity; $0.beta = 7.5; $0.valueInput = .ones
        $0.permutation = [1, 0]; $0.initKind = .bernoulli; $0.initScale = 1.25
    })
    var squared = adam
    squared.loss = .squared
    out.append(("custom permuted soft, ones, bernoulli, squared", pwc, squared))

    let learnt = try GatedNetwork(spec: makeSpec(.fixedLearnt, 4, [6, 5], 3, seed: 704) { $0.bias = true }, gateSource: relu)
    out.append(("fixed learnt", learnt, adam))

    for (_, net, options) in out {
        let data = syntheticProblem(rows: 48, inputSize: 4, classes: net.outputSize == 1 ? 2 : net.outputSize, seed: 705)
        try net.train(x: data.x, y: data.y, options: options)
    }
    return out
}

@Suite("Persistence: archive round trips and corrupted files")
struct PersistenceTests {
    @Test("encode then decode restores spec, weights, flags, epoch count and optimizer state bit for bit")
    func roundTripIsBitExact() throws {
        for (name, net, _) in try trainedNetworks() {
            #expect(net.optimizerState?.step ?? 0 > 0, "\(name) was trained")
            let bytes = NetworkArchive.encode(net, includeOptimizer: true)
            let copy = try decodeArchive(bytes)
            #expect(copy.isBitIdentical(to: net), "\(name)")
            #expect(NetworkArchive.encode(copy, includeOptimizer: true) == bytes, "\(name) re-encodes to the same bytes")
            let x = seededUniform(10 * 4, seed: 706)
            #expect(try copy.outputs(x) == net.outputs(x))
        }
    }

    @Test("flags that differ from the preset survive a round trip")
    func flagsSurvive() throws {
        let net = try GatedNetwork(spec: makeSpec(.decoupled, 3, [4], 2, seed: 707))
        net.setFrozen(.value, true)
        net.setFrozen(.feature, true)
        let copy = try decodeArchive(NetworkArchive.encode(net, includeOptimizer: false))
        #expect(copy.valueFrozen && copy.featureFrozen)
        #expect(copy.isBitIdentical(to: net))
    }

    @Test("continuing training after save and load equals continuing without them")
    func trainingContinuesIdentically() throws {
        for (name, net, options) in try trainedNetworks() {
            let path = temporaryPath("continue.gnet")
            defer { unlink(path) }
            try NetworkArchive.save(net, to: path, includeOptimizer: true)
            let loaded = try NetworkArchive.load(from: path)
            let data = syntheticProblem(rows: 48, inputSize: 4, classes: net.outputSize == 1 ? 2 : net.outputSize, seed: 708)
            let a = try net.train(x: data.x, y: data.y, options: options)
            let b = try loaded.train(x: data.x, y: data.y, options: options)
            #expect(loaded.isBitIdentical(to: net), "\(name)")
            #expect(a.map(\.trainLoss) == b.map(\.trainLoss))
            #expect(a.map(\.epoch) == b.map(\.epoch))
        }
    }

    @Test("an archive without optimizer state restores everything but the moments")
    func withoutOptimizerState() throws {
        let (_, net, _) = try trainedNetworks()[0]
        let bytes = NetworkArchive.encode(net, includeOptimizer: false)
        #expect(bytes.count < NetworkArchive.encode(net, includeOptimizer: true).count)
        #expect(bytes[12] == 0 && NetworkArchive.encode(net, includeOptimizer: true)[12] == 1)  // flags word
        let copy = try decodeArchive(bytes)
        #expect(copy.optimizerState == nil)
        copy.optimizerState = net.optimizerState
        #expect(copy.isBitIdentical(to: net))
    }

    @Test("save replaces an existing file atomically and leaves no temporary file; I/O failures are reported as io")
    func saveAndLoadFiles() throws {
        let (_, net, _) = try trainedNetworks()[1]
        let path = temporaryPath("saved.gnet")
        defer { unlink(path) }
        try writeFile(path, [1, 2, 3])
        try NetworkArchive.save(net, to: path, includeOptimizer: true)
        #expect(try readFile(path) == NetworkArchive.encode(net, includeOptimizer: true))
        #expect(access(path + ".tmp.\(getpid())", F_OK) != 0)
        #expect(try NetworkArchive.load(from: path).isBitIdentical(to: net))

        func isIO(_ body: () throws -> Void) -> Bool {
            do { try body(); return false } catch GatedNetError.io { return true } catch { return false }
        }
        #expect(isIO { _ = try NetworkArchive.load(from: temporaryPath("missing.gnet")) })
        #expect(isIO { _ = try NetworkArchive.load(from: "/tmp") })
        let inMissingDir = temporaryPath("no-such-dir") + "/net.gnet"
        #expect(isIO { try NetworkArchive.save(net, to: inMissingDir, includeOptimizer: false) })
        #expect(access(inMissingDir, F_OK) != 0)
    }

    @Test("changing any byte of an archive is detected as corruption")
    func everyByteChangeRejected() throws {
        let (_, net, _) = try trainedNetworks()[0]
        let bytes = NetworkArchive.encode(net, includeOptimizer: true)
        var accepted: [Int] = []
        for i in bytes.indices {
            for mask: UInt8 in [0x01, 0x80, 0xFF] {
                var bad = bytes
                bad[i] ^= mask
                if !isCorrupt({ try decodeArchive(bad) }) { accepted.append(i) }
            }
        }
        #expect(accepted.isEmpty, "changes accepted at bytes \(accepted.prefix(10))")
    }

    @Test("every truncation and any appended bytes are detected as corruption")
    func truncationRejected() throws {
        let (_, net, _) = try trainedNetworks()[2]
        let bytes = NetworkArchive.encode(net, includeOptimizer: true)
        var accepted: [Int] = []
        for n in 0..<bytes.count where !isCorrupt({ try decodeArchive(Array(bytes[0..<n])) }) { accepted.append(n) }
        #expect(accepted.isEmpty, "truncations accepted at lengths \(accepted.prefix(10))")
        #expect(isCorrupt { try decodeArchive(bytes + [0]) })
        #expect(isCorrupt { try decodeArchive(withChecksum(bytes + [0, 0, 0, 0])) })
    }

    @Test("foreign files and other format versions are rejected as corrupt")
    func foreignFilesRejected() throws {
        let (_, net, _) = try trainedNetworks()[3]
        let bytes = NetworkArchive.encode(net, includeOptimizer: false)
        let foreign: [[UInt8]] = [
            [], Array("GATEDNET".utf8), Array("GATEDNET".utf8) + [UInt8](repeating: 0, count: 100),
            idxBytes(type: 0x08, dims: [4, 4], payload: [UInt8](repeating: 9, count: 16)),
            seededUniform(2000, seed: 709).map { UInt8(abs($0) * 255) },
            Array("\u{7F}ELF and so on, definitely not a network file".utf8),
        ]
        for f in foreign { #expect(isCorrupt { try decodeArchive(f) }) }
        for version: UInt32 in [0, 2, 0xFFFF_FFFF] {
            var other = bytes
            for i in 0..<4 { other[8 + i] = UInt8(version >> (8 * UInt32(i)) & 255) }
            do {
                _ = try decodeArchive(withChecksum(other))
                Issue.record("version \(version) accepted")
            } catch GatedNetError.corrupt(let message) {
                #expect(message.contains("version \(version)"), "\(message)")
            }
        }
        // The same through a file.
        let path = temporaryPath("foreign.gnet")
        defer { unlink(path) }
        try writeFile(path, foreign[3])
        #expect(isCorrupt { try NetworkArchive.load(from: path) })
    }

    @Test("extreme values in any payload field, behind a valid checksum, fail only as corrupt and never crash")
    func payloadFieldsAreValidated() throws {
        // A tiny network with every optional field present (permutation, biases, head, moments).
        let net = try GatedNetwork(spec: makeSpec(.custom, 2, [2, 2], 2, seed: 711) {
            $0.gateKind = .soft; $0.bias = true; $0.featureHead = true; $0.permutation = [1, 0]; $0.valueInput = .ones
        })
        let data = syntheticProblem(rows: 8, inputSize: 2, classes: 2, seed: 712)
        var options = TrainOptions()
        options.batchSize = 4
        try net.train(x: data.x, y: data.y, options: options)
        let bytes = NetworkArchive.encode(net, includeOptimizer: true)
        var rejected = 0, accepted = 0, otherErrors: [String] = []
        for i in 24..<(bytes.count - 4) {
            for value: UInt8 in [0x00, 0x01, 0x80, 0xFF, bytes[i] ^ 0x04] where value != bytes[i] {
                var bad = bytes
                bad[i] = value
                do {
                    let decoded = try decodeArchive(withChecksum(bad))
                    accepted += 1
                    // Whatever decodes is a usable network.
                    _ = try decodeArchive(NetworkArchive.encode(decoded, includeOptimizer: true))
                    _ = try decoded.outputs([Float](repeating: 0.5, count: 2 * decoded.inputSize))
                } catch GatedNetError.corrupt {
                    rejected += 1
                } catch {
                    otherErrors.append("byte \(i) = \(value): \(error)")
                }
            }
        }
        #expect(otherErrors.isEmpty, "\(otherErrors.prefix(5))")
        #expect(rejected > 0 && accepted > 0)   // spec fields reject, weight bytes are just other weights
    }

    @Test("an archive claiming an architecture far larger than the file is rejected before allocating")
    func hugeArchitectureRejected() throws {
        // Tied 2^31 → 2^31 → 1 network: about 2^62 parameters; its size in bytes overflows Int.
        let net = try GatedNetwork(spec: makeSpec(.relu, 3, [4], 1, seed: 710))
        let bytes = NetworkArchive.encode(net, includeOptimizer: false)
        // Payload: u32 regime at 24, i64 input size at 28, i64 hidden count at 36, widths from 44.
        #expect(bytes[28] == 3 && bytes[36] == 1 && bytes[44] == 4)
        for (inputSize, width) in [(1 << 31, 1 << 31), (1 << 31, 1), (1, 1 << 31), (1 << 20, 1 << 20)] {
            var huge = bytes
            for i in 0..<8 {
                huge[28 + i] = UInt8(inputSize >> (8 * i) & 255)
                huge[44 + i] = UInt8(width >> (8 * i) & 255)
            }
            #expect(isCorrupt { try decodeArchive(withChecksum(huge)) }, "input \(inputSize) width \(width)")
        }
    }
}
