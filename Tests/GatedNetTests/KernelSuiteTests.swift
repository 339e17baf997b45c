@testable import GatedNet
import Glibc
import Testing

extension GatedNetwork {
    /// Kernel `choice` over the block of `options` (default everything) as a rows × cols array;
    /// symmetric (xb is xa) when xb is nil.
    func suiteKernel(_ choice: KernelChoice, _ xa: [Float], _ xb: [Float]? = nil,
                     _ options: KernelOptions = KernelOptions()) throws -> [Float] {
        let na = xa.count / inputSize, nb = (xb ?? xa).count / inputSize
        let rows = options.rows ?? 0..<na, cols = options.cols ?? 0..<nb
        var out = [Float](repeating: .nan, count: rows.count * cols.count)
        try xa.withUnsafeBufferPointer { a in
            try (xb ?? xa).withUnsafeBufferPointer { b in
                try out.withUnsafeMutableBufferPointer { o in
                    try kernel(choice, xa: a.baseAddress!, na: na, xb: b.baseAddress!, nb: nb, symmetric: xb == nil,
                               out: KernelOutput(pointer: o.baseAddress!, rows: rows.count, cols: cols.count, ld: cols.count),
                               options: options)
                }
            }
        }
        return out
    }
}

func withPath(_ p: GatePath) -> KernelOptions {
    var o = KernelOptions()
    o.gatePath = p
    return o
}

/// Bit patterns of floats, so that equality is exact (and NaN-safe).
func bits(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

@Suite("Kernel suite: packed gates, blocks, progress (MATH.md §4)")
struct KernelSuiteTests {
    /// Widths that cross 64-bit word boundaries.
    static func hardNet(seed: UInt64 = 501) throws -> GatedNetwork {
        try GatedNetwork(spec: makeSpec(.fixedRandomII, 6, [70, 130, 64], 3, seed: seed))
    }

    @Test("bit-packed popcount and float BLAS paths agree bit for bit for every hard-gate path kernel")
    func packedEqualsFloat() throws {
        for net in [try Self.hardNet(), try GatedNetwork(spec: makeSpec(.relu, 6, [33, 65], 2, seed: 502))] {
            let xa = seededUniform(37 * 6, seed: 503), xb = seededUniform(29 * 6, seed: 504)
            #expect(net.gatesAreLive(xa))
            let choices: [KernelChoice] = [.path(.overlap), .path(.npk), .path(.npkNormalized), .npkTraceNormalized]
                + (0..<net.hiddenCount).map { .path(.base(layer: $0)) }
            for c in choices {
                for xbOpt in [nil, xb] {
                    let packed = try net.suiteKernel(c, xa, xbOpt, withPath(.packed))
                    let float = try net.suiteKernel(c, xa, xbOpt, withPath(.float))
                    #expect(bits(packed) == bits(float), "\(c) symmetric \(xbOpt == nil)")
                    #expect(packed.contains { $0 != 0 })
                }
            }
        }
    }

    @Test("packed gates are refused for soft gates")
    func packedNeedsHardGates() throws {
        let net = try GatedNetwork(spec: makeSpec(.decoupled, 4, [5, 6], 2, seed: 505))
        let x = seededUniform(5 * 4, seed: 506)
        #expect(throws: GatedNetError.self) { try net.suiteKernel(.path(.npk), x, nil, withPath(.packed)) }
        #expect(try net.suiteKernel(.path(.npk), x, nil, withPath(.auto)).allSatisfy(\.isFinite))
    }

    @Test("every block of a kernel equals the same entries of the whole kernel (bit for bit for path kernels and limits)")
    func blocksEqualWhole() throws {
        let n = kernelTile + 150
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, 5, [20, 70], 2, seed: 507))
        let x = seededUniform(n * 5, seed: 508)
        let y = seededUniform(40 * 5, seed: 509)
        let blocks: [(Range<Int>, Range<Int>)] = [
            (0..<n, 0..<n), (100..<(n - 20), 0..<n), (300..<n, 300..<n), (kernelTile - 3..<kernelTile + 40, 7..<300),
            (0..<1, (n - 1)..<n),
        ]
        let cases: [(KernelChoice, [GatePath])] = [
            (.path(.npk), [.float, .packed]), (.path(.overlap), [.packed]), (.path(.inputGram), [.auto]),
            (.npkTraceNormalized, [.packed]), (.tangent(.value), [.auto]), (.npkLimit, [.auto]),
        ]
        for (choice, paths) in cases {
            for path in paths {
                let whole = try net.suiteKernel(choice, x, nil, withPath(path))
                for (r, c) in blocks {
                    var o = withPath(path)
                    o.rows = r; o.cols = c
                    let part = try net.suiteKernel(choice, x, nil, o)
                    var expected: [Float] = []
                    for i in r { for j in c { expected.append(whole[i * n + j]) } }
                    let diff = relativeError(doubles(part), doubles(expected))
                    if case .tangent = choice {
                        // The NTK factors come from forward passes whose BLAS rounding depends on
                        // the batch, so blocks agree to float rounding only.
                        #expect(diff < 1e-5, "\(choice) block \(r) x \(c): relative difference \(diff)")
                    } else {
                        #expect(bits(part) == bits(expected), "\(choice) \(path) block \(r) x \(c): relative difference \(diff)")
                    }
                }
                // Symmetric output really is symmetric.
                #expect((0..<n).allSatisfy { i in stride(from: 0, to: n, by: 37).allSatisfy { whole[i * n + $0] == whole[$0 * n + i] } })
            }
            // Cross kernels (xb ≠ xa) by blocks, too.
            let cross = try net.suiteKernel(choice, x, y)
            var o = KernelOptions()
            o.rows = 200..<n; o.cols = 10..<40
            let part = try net.suiteKernel(choice, x, y, o)
            var expected: [Float] = []
            for i in 200..<n { for j in 10..<40 { expected.append(cross[i * 40 + j]) } }
            let diff = relativeError(doubles(part), doubles(expected))
            if case .tangent = choice {
                #expect(diff < 1e-5, "\(choice) cross block: relative difference \(diff)")
            } else {
                #expect(bits(part) == bits(expected), "\(choice) cross block: relative difference \(diff)")
            }
        }
    }

    @Test("upper-only writes exactly the upper triangle of a diagonal block")
    func upperOnly() throws {
        let net = try Self.hardNet()
        let n = 30
        let x = seededUniform(n * 6, seed: 510)
        let whole = try net.suiteKernel(.path(.npk), x)
        var o = KernelOptions()
        o.upperOnly = true
        let upper = try net.suiteKernel(.path(.npk), x, nil, o)
        for i in 0..<n {
            for j in 0..<n {
                if j >= i { #expect(upper[i * n + j] == whole[i * n + j]) } else { #expect(upper[i * n + j].isNaN) }
            }
        }
    }

    @Test("trace-normalised npk is the npk over its trace and has trace 1")
    func traceNormalised() throws {
        for net in [try Self.hardNet(), try GatedNetwork(spec: makeSpec(.dlgn, 6, [9, 7], 2, seed: 511) { $0.beta = 3 })] {
            let x = seededUniform(25 * 6, seed: 512)
            let h = doubles(try net.suiteKernel(.path(.npk), x))
            let hn = doubles(try net.suiteKernel(.npkTraceNormalized, x))
            let trace = (0..<25).reduce(0.0) { $0 + h[$1 * 25 + $1] }
            #expect(relativeError(hn, h.map { $0 / trace }) < 1e-5)
            var hnTrace = 0.0
            for i in 0..<25 { hnTrace += hn[i * 25 + i] }
            #expect(abs(hnTrace - 1) < 1e-5)
            // Between other inputs, the trace is still the one of xa.
            let y = seededUniform(4 * 6, seed: 513)
            let cross = doubles(try net.suiteKernel(.npkTraceNormalized, x, y))
            #expect(relativeError(cross, doubles(try net.suiteKernel(.path(.npk), x, y)).map { $0 / trace }) < 1e-5)
        }
    }

    @Test("progress reports increasing fractions up to 1, and returning false cancels")
    func progressAndCancel() throws {
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, 4, [8], 2, seed: 514))
        let n = 2 * kernelTile + 10
        let x = seededUniform(n * 4, seed: 515)
        var seen: [Double] = []
        var o = KernelOptions()
        o.progress = { seen.append($0); return true }
        _ = try net.suiteKernel(.path(.npk), x, nil, o)
        #expect(seen.count == 6)  // 3 row tiles, upper triangle: 3 + 2 + 1 tiles
        #expect(zip(seen, seen.dropFirst()).allSatisfy { $0 < $1 })
        #expect(seen.last == 1)
        var calls = 0
        o.progress = { _ in calls += 1; return calls < 2 }
        #expect(throws: GatedNetError.self) { try net.suiteKernel(.tangent(.value), x, nil, o) }
        #expect(calls == 2)
    }

    @Test("bad blocks, outputs and parts the network lacks are rejected")
    func badRequests() throws {
        let hard = try Self.hardNet()
        let x = seededUniform(10 * 6, seed: 516)
        var o = KernelOptions()
        o.rows = 5..<11
        #expect(throws: GatedNetError.self) { try hard.suiteKernel(.path(.npk), x, nil, o) }
        o.rows = 3..<3
        #expect(throws: GatedNetError.self) { try hard.suiteKernel(.path(.npk), x, nil, o) }
        o = KernelOptions()
        o.output = 3
        #expect(throws: GatedNetError.self) { try hard.suiteKernel(.tangent(.value), x, nil, o) }
        for part in [TangentPart.feature, .cross] {
            #expect(throws: GatedNetError.self) { try hard.suiteKernel(.tangent(part), x) }
        }
        #expect(throws: GatedNetError.self) { try hard.suiteKernel(.path(.base(layer: 3)), x) }
        let soft = try GatedNetwork(spec: makeSpec(.decoupled, 6, [5], 2, seed: 517))
        #expect(throws: GatedNetError.self) { try soft.suiteKernel(.npkLimit, x) }
        let biased = try GatedNetwork(spec: makeSpec(.relu, 6, [5], 2, seed: 518) { $0.bias = true })
        #expect(throws: GatedNetError.self) { try biased.suiteKernel(.ntkLimit, x) }
        let frozen = try GatedNetwork(spec: makeSpec(.fixedRandomII, 6, [5], 2, seed: 519))
        frozen.setFrozen(.value, true)
        #expect(throws: GatedNetError.self) { try frozen.suiteKernel(.tangent(.full), x) }
    }
}

@Suite("Active paths and DLGN hyperplanes (paper 003 §5, MATH.md §6, §7.8)")
struct KernelPathActivityTests {
    @Test("hard-gate active paths are the overlap diagonal; soft ones the product of gate sums; group means average them")
    func activePaths() throws {
        for net in [try KernelSuiteTests.hardNet(), try GatedNetwork(spec: makeSpec(.dlgn, 6, [9, 7], 2, seed: 520) { $0.beta = 3 })] {
            let n = 20
            let x = seededUniform(n * 6, seed: 521)
            var paths = [Double](repeating: 0, count: n)
            x.withUnsafeBufferPointer { xp in paths.withUnsafeMutableBufferPointer { net.activePaths(xp.baseAddress!, rows: n, into: $0.baseAddress!) } }
            let gates = net.gateArrays(x)
            let expected = (0..<n).map { r in
                net.hiddenWidths.indices.reduce(1.0) { p, l in p * row(gates[l], r, cols: net.hiddenWidths[l]).reduce(0, +) }
            }
            #expect(relativeError(paths, expected) < 1e-9)
            if net.hasHardGates {
                let overlap = try net.suiteKernel(.path(.overlap), x)
                #expect((0..<n).allSatisfy { Double(overlap[$0 * n + $0]) == paths[$0] })
            }
            let groups = (0..<n).map { Int32($0 % 3) }
            var mean = [Double](repeating: 0, count: 4), counts = [Int64](repeating: -1, count: 4)
            try x.withUnsafeBufferPointer { xp in
                try groups.withUnsafeBufferPointer { g in
                    try mean.withUnsafeMutableBufferPointer { m in
                        try counts.withUnsafeMutableBufferPointer { c in
                            try net.activePathsByGroup(xp.baseAddress!, rows: n, groups: g.baseAddress!, groupCount: 4,
                                                       mean: m.baseAddress!, counts: c.baseAddress!)
                        }
                    }
                }
            }
            for gi in 0..<3 {
                let members = (0..<n).filter { $0 % 3 == gi }
                #expect(counts[gi] == Int64(members.count))
                #expect(abs(mean[gi] - members.map { paths[$0] }.reduce(0, +) / Double(members.count)) <= 1e-9 * mean[gi])
            }
            #expect(counts[3] == 0 && mean[3].isNaN)
        }
    }

    @Test("a DLGN gate equals sigmoid(beta (<u, x> + c)) with the effective hyperplane (u, c), biases included")
    func hyperplanes() throws {
        let net = try GatedNetwork(spec: makeSpec(.dlgn, 4, [6, 5, 3], 2, seed: 522) { $0.beta = 2; $0.bias = true })
        var rng = SeededGenerator(seed: 523)
        for layer in net.featureLayers { if let b = layer.bias { for i in 0..<b.count { b[i] = Float(rng.nextUnit() - 0.5) } } }
        let n = 7
        let x = seededUniform(n * 4, seed: 524)
        let gates = net.gateArrays(x)
        for l in 0..<3 {
            let w = net.hiddenWidths[l]
            var u = [Float](repeating: 0, count: w * 4), c = [Float](repeating: 0, count: w)
            try u.withUnsafeMutableBufferPointer { up in
                try c.withUnsafeMutableBufferPointer { cp in try net.gateHyperplanes(layer: l, normals: up.baseAddress!, offsets: cp.baseAddress!) }
            }
            for r in 0..<n {
                for i in 0..<w {
                    var s = Double(c[i])
                    for j in 0..<4 { s += Double(u[i * 4 + j]) * Double(x[r * 4 + j]) }
                    let g = 1 / (1 + exp(-2 * s))
                    #expect(abs(g - Double(gates[l][r * w + i])) < 1e-5, "layer \(l) gate \(i) row \(r)")
                }
            }
        }
        let relu = try KernelSuiteTests.hardNet()
        var u = [Float](repeating: 0, count: 70 * 6)
        #expect(throws: GatedNetError.self) { try u.withUnsafeMutableBufferPointer { try relu.gateHyperplanes(layer: 0, normals: $0.baseAddress!, offsets: nil) } }
    }
}
