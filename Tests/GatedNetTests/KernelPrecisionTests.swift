@testable import GatedNet
import Glibc
import Testing

// Precision of the kernels (issue 11): the infinite-width limits against double references,
// exact on identical inputs; the normalised NPKs of deep nets, whose raw H is far beyond float.

/// `rows` × `d` standard Gaussian values (Box–Muller on seeded uniforms).
private func gaussian(_ rows: Int, _ d: Int, seed: UInt64) -> [Float] {
    var rng = SeededGenerator(seed: seed)
    return (0..<(rows * d)).map { _ in
        let u = max(rng.nextUnit(), 1e-300), v = rng.nextUnit()
        return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
    }
}

private func squaredNorm(_ x: [Float], row: Int, d: Int) -> Double {
    (0..<d).reduce(0.0) { $0 + Double(x[row * d + $1]) * Double(x[row * d + $1]) }
}

/// Reference limits written from MATH.md §4 / paper 002 eq. 7 in double with the plain acos
/// formulas (accurate away from parallel and antiparallel pairs).
private func referenceNPKLimit(_ dot: Double, _ a: Double, _ b: Double, depth: Int) -> Double {
    var c = dot / (a * b).squareRoot(), p = dot
    for _ in 0..<depth {
        let t = acos(c)
        p *= (Double.pi - t) / (2 * Double.pi)
        c = (sin(t) + (Double.pi - t) * c) / Double.pi
    }
    return p
}

private func referenceNTKLimit(_ dot: Double, _ a: Double, _ b: Double, depth: Int, s2: Double, d: Int) -> Double {
    var cross = s2 * dot / Double(d), qa = s2 * a / Double(d), qb = s2 * b / Double(d)
    var theta = cross
    for _ in 0..<depth {
        let c = cross / (qa * qb).squareRoot(), t = acos(c)
        let next = s2 / (2 * Double.pi) * (qa * qb).squareRoot() * (sin(t) + (Double.pi - t) * c)
        theta = theta * s2 * (Double.pi - t) / (2 * Double.pi) + next
        cross = next; qa *= s2 / 2; qb *= s2 / 2
    }
    return theta
}

@Suite("Kernel precision: exact limit diagonals, deep normalised NPKs, raw overflow errors")
struct KernelPrecisionTests {
    @Test("npk and ntk limits: the diagonal (and any identical pair) is exact, other entries match a double reference")
    func limitDiagonalsExact() throws {
        let d = 784, n = 8, depth = 10
        let x = gaussian(n, d, seed: 1101)
        // xb repeats rows 2 and 5 of xa: identical inputs off the diagonal of a cross kernel.
        let y = Array(x[(2 * d)..<(3 * d)]) + gaussian(1, d, seed: 1102) + Array(x[(5 * d)..<(6 * d)])
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, d, [Int](repeating: 64, count: depth), 10, seed: 1103))
        let npk = try net.suiteKernel(.npkLimit, x)
        let ntk = try net.suiteKernel(.ntkLimit, x)
        let s2 = Double(net.spec.initScale) * Double(net.spec.initScale)
        let float = 1.0 / Double(1 << 24)  // float's relative rounding
        for i in 0..<n {
            let norm = squaredNorm(x, row: i, d: d)
            let exactNPK = norm / pow(2, Double(depth))
            // Θ = Σ_l Λ_l Π_{m ≥ l} Σ̇_m with θ = 0: (L + 1) (s²/2)^L s² |x|²/d, times 10 outputs.
            let exactNTK = Double(depth + 1) * pow(s2 / 2, Double(depth)) * s2 * norm / Double(d) * 10
            #expect(abs(Double(npk[i * n + i]) - exactNPK) <= float * exactNPK, "npk diagonal \(i): \(npk[i * n + i]) vs \(exactNPK)")
            #expect(abs(Double(ntk[i * n + i]) - exactNTK) <= float * exactNTK, "ntk diagonal \(i): \(ntk[i * n + i]) vs \(exactNTK)")
            for j in 0..<n where j != i {
                let dot = (0..<d).reduce(0.0) { $0 + Double(x[i * d + $1]) * Double(x[j * d + $1]) }
                let b = squaredNorm(x, row: j, d: d)
                let rn = referenceNPKLimit(dot, norm, b, depth: depth)
                let rt = referenceNTKLimit(dot, norm, b, depth: depth, s2: s2, d: d) * 10
                #expect(abs(Double(npk[i * n + j]) - rn) <= 1e-6 * abs(exactNPK), "npk \(i), \(j): \(npk[i * n + j]) vs \(rn)")
                #expect(abs(Double(ntk[i * n + j]) - rt) <= 1e-6 * abs(exactNTK), "ntk \(i), \(j): \(ntk[i * n + j]) vs \(rt)")
            }
        }
        let cross = try net.suiteKernel(.npkLimit, x, y)
        #expect(cross[2 * 3 + 0] == npk[2 * n + 2] && cross[5 * 3 + 2] == npk[5 * n + 5])
        let crossNTK = try net.suiteKernel(.ntkLimit, x, y)
        #expect(crossNTK[2 * 3 + 0] == ntk[2 * n + 2] && crossNTK[5 * 3 + 2] == ntk[5 * n + 5])
    }

    @Test("limit kernels of near-parallel and near-antiparallel pairs: continuous, no acos blow-up")
    func limitNearParallel() throws {
        let d = 64, depth = 6
        let base = gaussian(1, d, seed: 1104), noise = gaussian(1, d, seed: 1105)
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, d, [Int](repeating: 16, count: depth), 1, seed: 1106))
        let norm = squaredNorm(base, row: 0, d: d)
        var previous = 0.0
        // x' = x + ε·noise: the normalised limit 2^L H / |x|² approaches 1 from below as ε → 0.
        for e in [1e-1, 1e-2, 1e-3, 1e-4, 1e-5] {
            let y = zip(base, noise).map { Float(Double($0) + e * Double($1)) }
            let k = Double(try net.suiteKernel(.npkLimit, base, y)[0]) * pow(2, Double(depth))
            let yn = squaredNorm(y, row: 0, d: d)
            let ratio = k / (norm * yn).squareRoot()
            #expect(ratio <= 1 + 1e-6 && ratio > previous, "ε \(e): \(ratio)")
            // Layer 1 loses θ_0/π; θ_0 ≈ ε|noise_⊥|/|x|, so 1 − ratio is of order ε, not √ε.
            #expect(1 - ratio < 2 * Double(depth) * e, "ε \(e): 1 − ratio = \(1 - ratio)")
            previous = ratio
        }
        // Antiparallel: θ_0 = π, the first factor (π − θ_0)/(2π) is 0.
        let opposite = base.map { -$0 }
        #expect(abs(try net.suiteKernel(.npkLimit, base, opposite)[0]) <= 1e-6 * Float(norm))
    }

    /// H / trace H(x, x) in double from the engine's gates, in log scale (no overflow).
    static func traceNormalisedReference(_ net: GatedNetwork, _ x: [Float]) -> [Double] {
        let d = net.inputSize, n = x.count / d
        let gates = net.gateArrays(x)
        func logEntry(_ i: Int, _ j: Int) -> (Double, Double) {  // (log |H_ij|, sign)
            var s = 0.0
            for e in 0..<d { s += Double(x[i * d + e]) * Double(x[j * d + e]) }
            var l = log(abs(s))
            for (layer, w) in net.hiddenWidths.enumerated() {
                var c = 0.0
                for u in 0..<w { c += Double(gates[layer][i * w + u]) * Double(gates[layer][j * w + u]) }
                l += log(c)
            }
            return (l, s < 0 ? -1 : 1)
        }
        let diag = (0..<n).map { logEntry($0, $0).0 }
        let top = diag.max()!
        let logTrace = top + log(diag.reduce(0) { $0 + exp($1 - top) })
        return (0..<(n * n)).map { e in
            let (l, sign) = logEntry(e / n, e % n)
            return sign * exp(l - logTrace)
        }
    }

    @Test("trace-normalised npk of deep nets (24 to 64 layers) matches a log-scale double reference; raw npk says which kind to use", arguments: [24, 64])
    func deepTraceNormalised(depth: Int) throws {
        let d = 784, n = 6
        let x = gaussian(n, d, seed: 1107)
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, d, [Int](repeating: 128, count: depth), 10, seed: 1))
        let reference = Self.traceNormalisedReference(net, x)
        for path in [GatePath.packed, .float] {
            let k = doubles(try net.suiteKernel(.npkTraceNormalized, x, nil, withPath(path)))
            #expect(k.allSatisfy { $0.isFinite }, "\(path)")
            // Float rounding of one product per layer: about depth · 6e-8 relative.
            for e in k.indices {
                #expect(abs(k[e] - reference[e]) <= 1e-5 * abs(reference[e]) + 1e-30, "\(path) entry \(e): \(k[e]) vs \(reference[e])")
            }
            #expect(abs(k.enumerated().filter { $0.offset % (n + 1) == 0 }.reduce(0) { $0 + $1.element } - 1) < 1e-5)
            // The per-layer normalised kind Σ ⊙ Π_l B_l is finite too, and the raw kinds throw.
            let normalised = try net.suiteKernel(.path(.npkNormalized), x, nil, withPath(path))
            #expect(normalised.allSatisfy { $0.isFinite } && normalised[0] > 0)
            for kind in [KernelKind.npk, .overlap] {
                do {
                    _ = try net.suiteKernel(.path(kind), x, nil, withPath(path))
                    Issue.record("\(kind) \(path): no error")
                } catch GatedNetError.notFinite(let message) {
                    #expect(message.contains("npkNormalized") && message.contains("NPK_TRACE_NORMALIZED"), "\(message)")
                }
            }
        }
    }

    @Test("trace-normalised npk across a block and a second batch: scaled like H, whatever the block")
    func traceNormalisedBlocks() throws {
        let d = 20, n = 40
        let x = seededUniform(n * d, seed: 1108), y = seededUniform(9 * d, seed: 1109)
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, d, [12, 9, 14], 2, seed: 1110))
        let h = doubles(try net.suiteKernel(.path(.npk), x))
        let trace = (0..<n).reduce(0.0) { $0 + h[$1 * n + $1] }
        let full = doubles(try net.suiteKernel(.npkTraceNormalized, x))
        #expect(relativeError(full, h.map { $0 / trace }) < 1e-5)
        var o = KernelOptions()
        o.rows = 5..<17; o.cols = 11..<40
        let block = doubles(try net.suiteKernel(.npkTraceNormalized, x, nil, o))
        let expected = (5..<17).flatMap { i in (11..<40).map { full[i * n + $0] } }
        #expect(relativeError(block, expected) < 1e-6)
        let crossH = doubles(try net.suiteKernel(.path(.npk), x, y))
        #expect(relativeError(doubles(try net.suiteKernel(.npkTraceNormalized, x, y)), crossH.map { $0 / trace }) < 1e-5)
    }
}
