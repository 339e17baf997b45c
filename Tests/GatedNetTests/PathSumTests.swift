@testable import GatedNet
import Testing

/// A small network configuration for identities that hold in every regime.
struct PathCase: Sendable, CustomTestStringConvertible {
    let name: String
    let spec: NetworkSpec
    var testDescription: String { name }

    /// d_in = 3, widths [4, 3, 2], k = 2 (equal widths [3, 3, 3] where a permutation needs them).
    static let all: [PathCase] = [
        PathCase(name: "relu tied", spec: makeSpec(.relu, 3, [4, 3, 2], 2, seed: 61)),
        PathCase(name: "fixed random ii, hard", spec: makeSpec(.fixedRandomII, 3, [4, 3, 2], 2, seed: 12)),
        PathCase(name: "fixed random di, hard", spec: makeSpec(.fixedRandomDI, 3, [4, 3, 2], 2, seed: 13)),
        PathCase(name: "decoupled, soft", spec: makeSpec(.decoupled, 3, [4, 3, 2], 2, seed: 14) { $0.beta = 2 }),
        PathCase(name: "dlgn, linear gating", spec: makeSpec(.dlgn, 3, [4, 3, 2], 2, seed: 15) { $0.beta = 3 }),
        PathCase(name: "dlgn pwc, value input ones", spec: makeSpec(.dlgnPWC, 3, [4, 3, 2], 2, seed: 16) { $0.beta = 3 }),
        PathCase(name: "permuted gates, soft", spec: makeSpec(.custom, 3, [3, 3, 3], 2, seed: 17) {
            $0.gateKind = .soft; $0.beta = 2; $0.permutation = [2, 0, 1]
        }),
        PathCase(name: "permuted gates, hard, ones", spec: makeSpec(.custom, 3, [3, 3, 3], 2, seed: 18) {
            $0.permutation = [1, 2, 0]; $0.valueInput = .ones
        }),
    ]
}

/// Per row: the value input, the gates (feature numbering) and the wiring the value net sees.
func pathFeatures(_ net: GatedNetwork, _ x: [Float], _ paths: PathEnumeration) -> [[Double]] {
    let d = net.inputSize
    let gates = net.gateArrays(x)
    return (0..<(x.count / d)).map { r in
        let xv = net.spec.valueInput == .ones ? [Double](repeating: 1, count: d) : row(x, r, cols: d)
        let g = net.hiddenWidths.indices.map { row(gates[$0], r, cols: net.hiddenWidths[$0]) }
        return paths.features(xv: xv, gates: g, gateLayer: net.spec.gateLayer)
    }
}

@Suite("Path sum (MATH.md §7.1)")
struct PathSumTests {
    @Test("forward pass equals the sum over all paths of feature times value", arguments: PathCase.all)
    func forwardEqualsPathSum(_ c: PathCase) throws {
        let net = try GatedNetwork(spec: c.spec)
        let n = 7
        let x = seededUniform(n * c.spec.inputSize, seed: 100)
        let paths = PathEnumeration(inputSize: c.spec.inputSize, widths: c.spec.hiddenWidths)
        #expect(paths.paths.count == c.spec.inputSize * c.spec.hiddenWidths.reduce(1, *))
        #expect(net.gatesAreLive(x))
        let layers = net.effectiveValueLayers
        let weights = layers.map { doubles($0.weight.array) }
        let fanIns = layers.map(\.fanIn)
        let phi = pathFeatures(net, x, paths)
        let y = try net.outputs(x)
        var pathSum: [Double] = []
        for r in 0..<n {
            for unit in 0..<c.spec.outputSize {
                pathSum.append(dot(phi[r], paths.values(weights: weights, fanIns: fanIns, unit: unit)))
            }
        }
        let err = relativeError(doubles(y), pathSum)
        #expect(err < 1e-5, "relative error \(err)")
        // Not vacuous: outputs vary and some paths are off for some inputs.
        #expect(pathSum.map(abs).max()! > 1e-3)
    }

    @Test("predicting more rows than one evaluation chunk equals predicting row by row")
    func chunkedPrediction() throws {
        let net = try GatedNetwork(spec: makeSpec(.decoupled, 4, [6, 5], 3, seed: 19) { $0.featureHead = true })
        let n = 2 * evaluationChunk + 37
        let x = seededUniform(n * 4, seed: 103)
        let all = try net.outputs(x), head = try net.outputs(x, featureHead: true)
        var classes = [Int32](repeating: -1, count: n)
        try x.withUnsafeBufferPointer { xp in
            try classes.withUnsafeMutableBufferPointer { try net.predictClasses(xp.baseAddress!, rows: n, into: $0.baseAddress!) }
        }
        for r in stride(from: 0, to: n, by: 97) + [evaluationChunk - 1, evaluationChunk, n - 1] {
            let xr = Array(x[(r * 4)..<(r * 4 + 4)])
            // One row may take another BLAS path than many: equal up to rounding.
            #expect(relativeError(doubles(Array(all[(r * 3)..<(r * 3 + 3)])), doubles(try net.outputs(xr))) < 1e-6)
            #expect(relativeError(doubles(Array(head[(r * 3)..<(r * 3 + 3)])), doubles(try net.outputs(xr, featureHead: true))) < 1e-6)
            let y = Array(all[(r * 3)..<(r * 3 + 3)])
            #expect(classes[r] == Int32(y.firstIndex(of: y.max()!)!))
        }
        #expect(all != head)
        let gates = net.gateArrays(x)
        #expect(gates[1].count == n * 5)
        #expect(relativeError(doubles(Array(gates[1][(5 * (n - 1))...])), doubles(net.gateArrays(Array(x[(4 * (n - 1))...]))[1])) < 1e-6)
    }

    @Test("tied relu network's gates are the on/off pattern of its own hidden units")
    func tiedGatesAreReluPattern() throws {
        let net = try GatedNetwork(spec: makeSpec(.relu, 3, [4, 3, 2], 2, seed: 61))
        let x = seededUniform(6 * 3, seed: 101)
        let reference = ReferenceNet(net)
        let gates = net.gateArrays(x)
        for r in 0..<6 {
            let q = reference.featurePreActivations(row(x, r, cols: 3))
            for l in 0..<3 {
                for i in 0..<net.hiddenWidths[l] {
                    #expect(gates[l][r * net.hiddenWidths[l] + i] == (q[l][i] > 0 ? 1 : 0))
                }
            }
        }
    }

    @Test("forward pass equals the double-precision reference model, biases included", arguments: PathCase.all)
    func forwardMatchesReference(_ c: PathCase) throws {
        var spec = c.spec
        spec.bias = true
        let net = try GatedNetwork(spec: spec)
        // Non-zero biases (they start at 0).
        for (i, t) in net.parameterTensors.enumerated() where t.key.isBias {
            let v = seededUniform(t.buffer.count, seed: 200 + UInt64(i), scale: 0.5)
            for j in v.indices { t.buffer[j] = v[j] }
        }
        let x = seededUniform(9 * spec.inputSize, seed: 102)
        let reference = ReferenceNet(net)
        let expected = (0..<9).flatMap { reference.output(row(x, $0, cols: spec.inputSize)) }
        let err = relativeError(doubles(try net.outputs(x)), expected)
        #expect(err < 1e-5, "relative error \(err)")
    }
}
