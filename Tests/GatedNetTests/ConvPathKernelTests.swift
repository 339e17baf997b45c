@testable import GatedNet
import Glibc
import Testing

/// Explicit path enumeration for conv + GAP nets and FC residual nets, written from MATH.md §3
/// and §4 (paths, bundles, sub-networks), independent of the engine's recursion.
@Suite("Conv and residual path kernels")
struct ConvPathKernelTests {
    /// Input position a path at output position (y, x) reads through kernel offset (ky, kx), or nil.
    static func read(_ y: Int, _ x: Int, _ ky: Int, _ kx: Int, h: Int, w: Int, k: Int, circular: Bool) -> (Int, Int)? {
        var iy = y + ky - k / 2, ix = x + kx - k / 2
        if circular { iy = (iy + h) % h; ix = (ix + w) % w }
        guard iy >= 0 && iy < h && ix >= 0 && ix < w else { return nil }
        return (iy, ix)
    }

    /// Bundle features ψ_x(c0, o1, c1, o2, c2, u) = (1/P) Σ_p φ_x(path ending at p) of
    /// conv(C1) → conv(C2) → GAP → dense(U) gated → output, plus the bundle values v(b)
    /// (output unit `o`). Input h×w×c0 NHWC, kernels k×k stride 1.
    static func bundles(_ net: ConvNetwork, _ x: [Float], sample: Int, k: Int, circular: Bool, o: Int) -> (psi: [Double], v: [Double]) {
        let s = net.inputShape, h = s.height, w = s.width, c0 = s.channels, p = h * w
        let g = net.gatedShapes
        let c1 = g[0].channels, c2 = g[1].channels, u = g[2].channels
        let gates = net.gateTensors(Array(x[(sample * net.inputSize)..<((sample + 1) * net.inputSize)]), wired: true)
        let w1 = net.tensor("value.0.weight"), w2 = net.tensor("value.1.weight")
        let w3 = net.tensor("value.2.weight"), w4 = net.tensor("value.3.weight")
        let xs = Array(x[(sample * net.inputSize)...])
        var psi: [Double] = [], v: [Double] = []
        for a in 0..<c0 { for o1 in 0..<(k * k) { for b in 0..<c1 { for o2 in 0..<(k * k) { for c in 0..<c2 { for unit in 0..<u {
            var sum = 0.0
            for y in 0..<h {
                for xx in 0..<w {
                    guard let (y1, x1) = read(y, xx, o2 / k, o2 % k, h: h, w: w, k: k, circular: circular),
                          let (y0, x0) = read(y1, x1, o1 / k, o1 % k, h: h, w: w, k: k, circular: circular) else { continue }
                    let input = Double(xs[(y0 * w + x0) * c0 + a])
                    let gate1 = Double(gates[0][(y1 * w + x1) * c1 + b])
                    let gate2 = Double(gates[1][(y * w + xx) * c2 + c])
                    sum += input * gate1 * gate2
                }
            }
            psi.append(sum / Double(p) * Double(gates[2][unit]))
            v.append(Double(w4[o * u + unit]) * Double(w3[unit * c2 + c]) * Double(w2[c * (k * k * c1) + o2 * c1 + b])
                     * Double(w1[b * (k * k * c0) + o1 * c0 + a]))
        } } } } } }
        return (psi, v)
    }

    @Test("conv + GAP path kernel equals the Gram of enumerated bundle features", arguments: [true, false])
    func convEnumeration(circular: Bool) throws {
        let pad: ConvPadding = circular ? .circular : .zero
        let net = try ConvNetwork(spec: convSpec(.decoupled, 2, 3, 4, [.conv(2, kernel: 3, padding: pad), .conv(2, kernel: 3, padding: pad),
                                                                      .globalAveragePool, .dense(2), .dense(2)], seed: 21))
        let n = 3
        let x = convUniform(n * net.inputSize, seed: 5)
        let out = net.outputs(x)
        var features: [[Double]] = []
        for i in 0..<n {
            for o in 0..<2 {
                let (psi, v) = ConvPathKernelTests.bundles(net, x, sample: i, k: 3, circular: circular, o: o)
                let yhat = zip(psi, v).reduce(0) { $0 + $1.0 * $1.1 }
                #expect(abs(yhat - Double(out[i * 2 + o])) < 1e-4 * (1 + abs(yhat)), "output = <psi, v>: \(yhat) vs \(out[i * 2 + o])")
                if o == 0 { features.append(psi) }
            }
        }
        let k = try net.kernelMatrix(.npk, x)
        for i in 0..<n {
            for j in 0..<n {
                let gram = zip(features[i], features[j]).reduce(0) { $0 + $1.0 * $1.1 }
                #expect(abs(k[i * n + j] - gram) <= 1e-4 * abs(gram) + 1e-7, "H[\(i),\(j)] \(k[i * n + j]) vs enumerated \(gram)")
            }
        }
    }

    @Test("circular conv path kernel is invariant to a joint circular shift")
    func shiftInvariance() throws {
        for layers: [ConvLayerSpec] in [
            [.conv(3, kernel: 3, padding: .circular), .conv(2, kernel: 3, padding: .circular), .flatten, .dense(2)],
            [.conv(3, kernel: 3, padding: .circular), .conv(4, kernel: 3, padding: .circular), .globalAveragePool, .dense(3), .dense(2)],
            [.conv(3, kernel: 3, padding: .circular), .conv(3, kernel: 3, padding: .circular, block: 1),
             .conv(3, kernel: 3, padding: .circular, block: 1), .globalAveragePool, .dense(2)],
        ] {
            let net = try ConvNetwork(spec: convSpec(.fixedRandomII, 2, 5, 6, layers, seed: 31))
            let h = 5, w = 6, c = 2
            let x = convUniform(3 * net.inputSize, seed: 8)
            var shifted = x
            for s in 0..<3 {
                for y in 0..<h { for xx in 0..<w { for ch in 0..<c {
                    shifted[s * net.inputSize + (((y + 2) % h) * w + (xx + 4) % w) * c + ch] = x[s * net.inputSize + (y * w + xx) * c + ch]
                } } }
            }
            let k = try net.kernelMatrix(.npk, x), ks = try net.kernelMatrix(.npk, shifted)
            let scale = k.map(abs).max()!
            #expect(scale > 0)
            for i in k.indices { #expect(abs(k[i] - ks[i]) <= 1e-4 * scale, "entry \(i): \(k[i]) vs shifted \(ks[i])") }
            // Shifting one input only: with GAP the bundle features are themselves shift
            // invariant, so nothing changes; without pooling (flatten) the kernel changes.
            let mixed = try net.kernelMatrix(.npk, x, Array(shifted))
            let pooled = layers.contains { $0.kind == .globalAveragePool }
            #expect(zip(k, mixed).contains { abs($0 - $1) > 1e-3 * scale } == !pooled)
        }
    }

    @Test("FC residual path kernel equals the Gram of enumerated paths over all sub-networks")
    func residualEnumeration() throws {
        // dense(3) → block 1 [dense(3), dense(3)] → block 2 [dense(3)] → output(2); input 1×1×3.
        let net = try ConvNetwork(spec: convSpec(.decoupled, 3, 1, 1, [.dense(3), .dense(3, block: 1), .dense(3, block: 1),
                                                                       .dense(3, block: 2), .dense(2)], seed: 41))
        let n = 3, d = 3
        let x = convUniform(n * d, seed: 9)
        let out = net.outputs(x)
        let w = (0..<5).map { net.tensor("value.\($0).weight") }
        var features: [[Double]] = []
        for s in 0..<n {
            let g = net.gateTensors(Array(x[(s * d)..<((s + 1) * d)]), wired: true).map { $0.map(Double.init) }
            var phi: [Double] = [], vs: [[Double]] = [[], []]
            for i0 in 0..<d { for i1 in 0..<3 {
                let base = Double(x[s * d + i0]) * g[0][i1]
                let wBase = Double(w[0][i1 * d + i0])
                // Block 1: skip (stay at i1) or through (i2, i3); block 2: skip or through (i4).
                var ends: [(Double, Double, Int)] = [(1, 1, i1)]
                for i2 in 0..<3 { for i3 in 0..<3 {
                    ends.append((g[1][i2] * g[2][i3], Double(w[1][i2 * 3 + i1]) * Double(w[2][i3 * 3 + i2]), i3))
                } }
                for (a1, v1, e1) in ends {
                    var ends2: [(Double, Double, Int)] = [(1, 1, e1)]
                    for i4 in 0..<3 { ends2.append((g[3][i4], Double(w[3][i4 * 3 + e1]), i4)) }
                    for (a2, v2, e2) in ends2 {
                        phi.append(base * a1 * a2)
                        for o in 0..<2 { vs[o].append(wBase * v1 * v2 * Double(w[4][o * 3 + e2])) }
                    }
                }
            } }
            #expect(phi.count == 3 * 3 * (1 + 9) * (1 + 3))
            for o in 0..<2 {
                let yhat = zip(phi, vs[o]).reduce(0) { $0 + $1.0 * $1.1 }
                #expect(abs(yhat - Double(out[s * 2 + o])) < 1e-4 * (1 + abs(yhat)), "output = <phi, v>: \(yhat) vs \(out[s * 2 + o])")
            }
            features.append(phi)
        }
        let k = try net.kernelMatrix(.npk, x)
        for i in 0..<n {
            for j in 0..<n {
                let gram = zip(features[i], features[j]).reduce(0) { $0 + $1.0 * $1.1 }
                #expect(abs(k[i * n + j] - gram) <= 1e-4 * abs(gram) + 1e-7, "H[\(i),\(j)] \(k[i * n + j]) vs enumerated \(gram)")
            }
        }
    }

    @Test("a projection skip counts its ungated output units as path nodes")
    func projectionEnumeration() throws {
        // dense(3) → block [dense(4)] with a 3→4 projection skip → output(2); input 1×1×2.
        let net = try ConvNetwork(spec: convSpec(.decoupled, 2, 1, 1, [.dense(3), .dense(4, block: 1), .dense(2)], seed: 43))
        let n = 3, d = 2
        let x = convUniform(n * d, seed: 10)
        let out = net.outputs(x)
        // Parameters: 0 dense(3), 1 dense(4), 2 the projection (added at the block end), 3 output.
        let w = (0..<4).map { net.tensor("value.\($0).weight") }
        #expect(w[2].count == 12 && w[3].count == 8)
        var features: [[Double]] = []
        for s in 0..<n {
            let g = net.gateTensors(Array(x[(s * d)..<((s + 1) * d)]), wired: true).map { $0.map(Double.init) }
            var phi: [Double] = [], vs: [[Double]] = [[], []]
            for i0 in 0..<d { for i1 in 0..<3 { for through in [true, false] { for j in 0..<4 {
                let base = Double(x[s * d + i0]) * g[0][i1]
                phi.append(base * (through ? g[1][j] : 1))
                let v = Double(w[0][i1 * d + i0]) * Double(through ? w[1][j * 3 + i1] : w[2][j * 3 + i1])
                for o in 0..<2 { vs[o].append(v * Double(w[3][o * 4 + j])) }
            } } } }
            for o in 0..<2 {
                let yhat = zip(phi, vs[o]).reduce(0) { $0 + $1.0 * $1.1 }
                #expect(abs(yhat - Double(out[s * 2 + o])) < 1e-4 * (1 + abs(yhat)))
            }
            features.append(phi)
        }
        let k = try net.kernelMatrix(.npk, x)
        for i in 0..<n {
            for j in 0..<n {
                let gram = zip(features[i], features[j]).reduce(0) { $0 + $1.0 * $1.1 }
                #expect(abs(k[i * n + j] - gram) <= 1e-4 * abs(gram) + 1e-7, "H[\(i),\(j)] \(k[i * n + j]) vs enumerated \(gram)")
            }
        }
    }

    @Test("max pooling is reported as unsupported by the path kernel")
    func maxPoolUnsupported() throws {
        let net = try ConvNetwork(spec: convSpec(.fixedRandomII, 1, 4, 4, [.conv(2), .globalMaxPool, .dense(2)], seed: 1))
        #expect(throws: GatedNetError.self) { try net.kernelMatrix(.npk, convUniform(16, seed: 1)) }
    }
}

/// The conv path kernel through the FC kernels' tile loop (fillKernelTiles): two cores give the
/// serial loop's bits, progress once per tile from the caller, cancellation. Serialized:
/// BLAS.singleThreaded is process-wide.
@Suite("Conv path kernel tiles: two cores, progress, cancellation", .serialized)
struct ConvPathKernelTileTests {
    static func net() throws -> ConvNetwork {
        try ConvNetwork(spec: convSpec(.decoupled, 2, 5, 5, [.conv(3, kernel: 3), .conv(4, kernel: 3), .globalAveragePool,
                                                                .dense(5), .dense(2)], seed: 31))
    }

    static func kernel(_ net: ConvNetwork, _ kind: ConvKernelKind, _ xa: [Float], _ xb: [Float]?, _ o: KernelOptions) throws -> [Float] {
        let na = xa.count / net.inputSize, nb = (xb ?? xa).count / net.inputSize
        let rows = o.rows ?? 0..<na, cols = o.cols ?? 0..<nb
        var out = [Float](repeating: .nan, count: rows.count * cols.count)
        try xa.withUnsafeBufferPointer { a in
            try (xb ?? xa).withUnsafeBufferPointer { b in
                try out.withUnsafeMutableBufferPointer { p in
                    try net.pathKernel(kind, xa: a.baseAddress!, na: na, xb: b.baseAddress!, nb: nb, symmetric: xb == nil,
                                       out: KernelOutput(pointer: p.baseAddress!, rows: rows.count, cols: cols.count, ld: cols.count),
                                       options: o)
                }
            }
        }
        return out
    }

    @Test("two-part tiles equal the serial tiles bit for bit: whole, cross, blocks, upper only")
    func twoCoresSameBits() throws {
        let net = try Self.net()
        let n = 3 * convKernelTile + 5
        let x = convUniform(n * net.inputSize, seed: 32), y = convUniform(20 * net.inputSize, seed: 33)
        let cases: [([Float]?, Range<Int>?, Range<Int>?, Bool)] = [
            (nil, nil, nil, false), (y, nil, nil, false), (nil, nil, nil, true), (nil, 7..<n, 3..<40, false), (y, 17..<n, 2..<19, false),
        ]
        for kind in [ConvKernelKind.npk, .gateOverlap, .inputGram] {
            for (xb, rows, cols, upperOnly) in cases {
                var o = KernelOptions()
                o.rows = rows; o.cols = cols; o.upperOnly = upperOnly
                let two = try Self.kernel(net, kind, x, xb, o)
                o.serialTiles = true
                let one = try BLAS.singleThreaded { try Self.kernel(net, kind, x, xb, o) }
                let label = "\(kind) cross \(xb != nil) block \(String(describing: rows)) x \(String(describing: cols)) upper only \(upperOnly)"
                #expect(bits(two) == bits(one), "\(label)")
                let c = (cols ?? 0..<(xb ?? x).count / net.inputSize).count
                #expect(two.enumerated().allSatisfy { $0.element.isNaN == (upperOnly && $0.offset % c < $0.offset / c) }, "\(label)")
            }
        }
        // The symmetric kernel is symmetric, and equals the cross kernel of x with a copy of x.
        let sym = try Self.kernel(net, .npk, x, nil, KernelOptions())
        let copy = try Self.kernel(net, .npk, x, Array(x), KernelOptions())
        #expect((0..<n).allSatisfy { i in (0..<n).allSatisfy { sym[i * n + $0] == sym[$0 * n + i] } })
        #expect(relativeError(doubles(sym), doubles(copy)) < 1e-6)
    }

    @Test("progress once per tile from the calling thread, increasing to 1; false cancels with .cancelled")
    func progressAndCancel() throws {
        let net = try Self.net()
        let n = 3 * convKernelTile + 5  // 4 row tiles: 4 + 3 + 2 + 1 tiles on and above the diagonal
        let x = convUniform(n * net.inputSize, seed: 34)
        let caller = pthread_self()
        var seen: [Double] = []
        var foreign = 0
        var o = KernelOptions()
        o.progress = { f in
            if pthread_equal(pthread_self(), caller) == 0 { foreign += 1 }
            seen.append(f)
            return true
        }
        _ = try Self.kernel(net, .npk, x, nil, o)
        #expect(seen.count == 10 && foreign == 0)
        #expect(zip(seen, seen.dropFirst()).allSatisfy { $0 < $1 } && seen.last == 1)
        var calls = 0
        o.progress = { _ in calls += 1; return calls < 2 }
        do {
            _ = try Self.kernel(net, .npk, x, nil, o)
            Issue.record("not cancelled")
        } catch GatedNetError.cancelled(let message) {
            #expect(message.contains("conv kernel: cancelled by the progress callback"))
        }
        #expect(calls == 2)
    }
}
