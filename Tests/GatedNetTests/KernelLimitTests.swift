@testable import GatedNet
import Glibc
import Testing

@Suite("Infinite-width kernels against wide random networks (MATH.md §4, §7.7)")
struct KernelLimitTests {
    /// Inputs with a spread of pairwise angles, including a near-parallel and an obtuse pair.
    static func inputs(_ d: Int) -> [Float] {
        var x = seededUniform(5 * d, seed: 701)
        for j in 0..<d { x[d + j] = x[j] + 0.1 * x[2 * d + j] }  // row 1 close to row 0
        for j in 0..<d { x[3 * d + j] = -x[j] + 0.3 * x[4 * d + j] }  // row 3 roughly opposite row 0
        return x
    }

    @Test("normalised npk of wide random hard gates approaches the arc-cosine limit (ReLU and linear gating nets)")
    func npkLimit() throws {
        let d = 6, n = 5
        let x = Self.inputs(d)
        for activation in [Activation.relu, .identity] {
            var mean = [Double](repeating: 0, count: n * n)
            let seeds: [UInt64] = [702, 703, 704]
            for s in seeds {
                let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, d, [1024, 1024, 1024], 1, seed: s) { $0.activation = activation })
                let k = try net.suiteKernel(.path(.npkNormalized), x)
                for i in k.indices { mean[i] += Double(k[i]) / Double(seeds.count) }
            }
            let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, d, [8, 8, 8], 1, seed: 705) { $0.activation = activation })
            let limit = doubles(try net.suiteKernel(.npkLimit, x))
            let sigma = doubles(try net.suiteKernel(.path(.inputGram), x))
            // Compare the gate factor Π_l B_l, entry by entry, where Σ is not tiny.
            for i in 0..<(n * n) where abs(sigma[i]) > 0.05 {
                let empirical = mean[i] / sigma[i], expected = limit[i] / sigma[i]
                #expect(abs(empirical - expected) < 0.01, "\(activation) entry \(i): \(empirical) vs \(expected)")
            }
            // On the diagonal θ = 0, so B_l(x, x) = 1/2 (up to the float inner products: acos
            // turns a rounding error ε of cos θ into an angle of order √ε).
            for i in 0..<n { #expect(abs(limit[i * n + i] / sigma[i * n + i] - pow(0.5, 3)) < 1e-3 * pow(0.5, 3)) }
        }
        // Linear gating keeps the first angle: with an obtuse pair the two limits differ.
        let relu = try GatedNetwork(spec: makeSpec(.fixedRandomII, d, [4, 4, 4], 1, seed: 706))
        let linear = try GatedNetwork(spec: makeSpec(.fixedRandomII, d, [4, 4, 4], 1, seed: 706) { $0.activation = .identity })
        let a = try relu.suiteKernel(.npkLimit, x), b = try linear.suiteKernel(.npkLimit, x)
        #expect(abs(a[3] - b[3]) > 1e-3 * abs(a[3]))
    }

    @Test("NTK-scaled empirical NTK of wide ReLU networks approaches the limiting NTK (paper 002 eq. 7)")
    func ntkLimit() throws {
        let d = 6, n = 5
        let x = Self.inputs(d)
        var mean = [Double](repeating: 0, count: n * n)
        // The empirical NTK fluctuates by about 7% between seeds at width 2048 (2 hidden layers);
        // the mean over 8 seeds is within about 3%.
        let seeds: [UInt64] = (707...714).map { $0 }
        var o = KernelOptions()
        o.ntkScaling = true
        o.output = 0
        for s in seeds {
            let net = try GatedNetwork(spec: makeSpec(.relu, d, [2048, 2048], 2, seed: s))
            let k = try net.suiteKernel(.tangent(.full), x, nil, o)
            for i in k.indices { mean[i] += Double(k[i]) / Double(seeds.count) }
        }
        let small = try GatedNetwork(spec: makeSpec(.relu, d, [8, 8], 2, seed: 711))
        let limit = doubles(try small.suiteKernel(.ntkLimit, x, nil, o))
        let err = relativeError(mean, limit)
        #expect(err < 0.05, "relative error \(err)")
        // Summed over outputs it is k times the per-output limit.
        let summed = doubles(try small.suiteKernel(.ntkLimit, x))
        #expect(relativeError(summed, limit.map { 2 * $0 }) < 1e-6)
        // Hand check, one hidden layer, x' = x, s² = 2: Λ1 = 2|x|²/d, Σ̇1 = 1, Λ2 = Λ1, so
        // Θ = Λ1 · Σ̇1 + Λ2 = 4|x|²/d.
        let one = try GatedNetwork(spec: makeSpec(.relu, d, [3], 1, seed: 712))
        let diag = try one.suiteKernel(.ntkLimit, x)
        let norm0 = (0..<d).reduce(0.0) { $0 + Double(x[$1]) * Double(x[$1]) }
        #expect(abs(Double(diag[0]) - 4 * norm0 / Double(d)) < 1e-3 * norm0)
    }
}

@Suite("Kernel algebra: spectrum, nu, ridge regression")
struct KernelAlgebraTests {
    /// Gram matrix of `rows` seeded vectors of length `d` (rank min(rows, d)).
    static func gram(_ rows: Int, _ d: Int, seed: UInt64) -> [Float] {
        let v = seededUniform(rows * d, seed: seed)
        var k = [Float](repeating: 0, count: rows * rows)
        for i in 0..<rows { for j in 0..<rows { k[i * rows + j] = Float((0..<d).reduce(0.0) { $0 + Double(v[i * d + $1]) * Double(v[j * d + $1]) }) } }
        return k
    }

    /// Solve A x = b in double by Gaussian elimination with partial pivoting (reference).
    static func solve(_ a: [Double], _ b: [Double]) -> [Double] {
        let n = b.count
        var m = a, x = b
        for c in 0..<n {
            let p = (c..<n).max { abs(m[$0 * n + c]) < abs(m[$1 * n + c]) }!
            for j in 0..<n { m.swapAt(c * n + j, p * n + j) }
            x.swapAt(c, p)
            for r in (c + 1)..<n {
                let f = m[r * n + c] / m[c * n + c]
                for j in c..<n { m[r * n + j] -= f * m[c * n + j] }
                x[r] -= f * x[c]
            }
        }
        for c in stride(from: n - 1, through: 0, by: -1) {
            var s = x[c]
            for j in (c + 1)..<n { s -= m[c * n + j] * x[j] }
            x[c] = s / m[c * n + c]
        }
        return x
    }

    @Test("eigenvalues are sorted, sum to the trace, square-sum to the Frobenius norm, and see the rank")
    func eigenvalues() throws {
        let n = 8
        let k = Self.gram(n, 5, seed: 720)
        let ev = try k.withUnsafeBufferPointer { try KernelAlgebra.eigenvalues($0.baseAddress!, n: n, ld: n) }
        #expect(zip(ev, ev.dropFirst()).allSatisfy { $0 >= $1 })
        let trace = (0..<n).reduce(0.0) { $0 + Double(k[$1 * n + $1]) }
        #expect(abs(ev.reduce(0, +) - trace) < 1e-5 * trace)
        let frob = k.reduce(0.0) { $0 + Double($1) * Double($1) }
        #expect(abs(ev.reduce(0) { $0 + $1 * $1 } - frob) < 1e-5 * frob)
        #expect(ev[4] > 1e-3 * ev[0] && abs(ev[5]) < 1e-5 * ev[0] && abs(ev[7]) < 1e-5 * ev[0])
        // Only the upper triangle is read.
        var upper = k
        for i in 0..<n { for j in 0..<i { upper[i * n + j] = .nan } }
        let ev2 = try upper.withUnsafeBufferPointer { try KernelAlgebra.eigenvalues($0.baseAddress!, n: n, ld: n) }
        #expect(ev2 == ev)
    }

    @Test("nu is yᵀ Ĥ⁻¹ y without a ridge for a positive definite kernel, and reports the ridge it needed otherwise")
    func nu() throws {
        let n = 6
        let k = Self.gram(n, 9, seed: 721)
        let y: [Float] = [1, -1, 1, 1, -1, -1]
        let (v, ridge) = try k.withUnsafeBufferPointer { kp in
            try y.withUnsafeBufferPointer { try KernelAlgebra.nu(kp.baseAddress!, n: n, ld: n, y: $0.baseAddress!) }
        }
        let trace = (0..<n).reduce(0.0) { $0 + Double(k[$1 * n + $1]) }
        let s = Self.solve(k.map { Double($0) / trace }, y.map(Double.init))
        let expected = zip(y, s).reduce(0.0) { $0 + Double($1.0) * $1.1 }
        #expect(ridge == 0)
        #expect(abs(v - expected) < 1e-4 * expected)
        // c·I: Ĥ = I/n, so ν = n · |y|² = n².
        var identity = [Float](repeating: 0, count: n * n)
        for i in 0..<n { identity[i * n + i] = 3 }
        let vi = try identity.withUnsafeBufferPointer { kp in
            try y.withUnsafeBufferPointer { try KernelAlgebra.nu(kp.baseAddress!, n: n, ld: n, y: $0.baseAddress!) }
        }
        #expect(abs(vi.nu - Double(n * n)) < 1e-9 && vi.ridge == 0)
        // Rank 2 of 6: a ridge is needed and reported.
        let low = Self.gram(n, 2, seed: 722)
        let vl = try low.withUnsafeBufferPointer { kp in
            try y.withUnsafeBufferPointer { try KernelAlgebra.nu(kp.baseAddress!, n: n, ld: n, y: $0.baseAddress!) }
        }
        #expect(vl.ridge > 0 && vl.nu.isFinite && vl.nu > 0)
    }

    @Test("ridge regression with the npk interpolates its training labels and classifies them")
    func ridgeRegression() throws {
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, 5, [40, 40], 3, seed: 723))
        let n = 30
        let x = seededUniform(n * 5, seed: 724)
        let labels = seededLabels(n, classes: 3, seed: 725)
        let k = try net.suiteKernel(.npkTraceNormalized, x)
        var t = [Float](repeating: 0, count: n * 3), alpha = t, scores = t
        var predicted = [Int32](repeating: -1, count: n)
        labels.withUnsafeBufferPointer { l in t.withUnsafeMutableBufferPointer { KernelAlgebra.targets(labels: l.baseAddress!, n: n, classes: 3, into: $0.baseAddress!) } }
        let used = try k.withUnsafeBufferPointer { kp in
            try t.withUnsafeBufferPointer { tp in
                try alpha.withUnsafeMutableBufferPointer {
                    try KernelAlgebra.ridgeFit(kp.baseAddress!, n: n, ld: n, targets: tp.baseAddress!, t: 3, ridge: 1e-6, alpha: $0.baseAddress!)
                }
            }
        }
        #expect(used == 1e-6)
        k.withUnsafeBufferPointer { kp in
            alpha.withUnsafeBufferPointer { ap in
                scores.withUnsafeMutableBufferPointer { KernelAlgebra.ridgePredict(kp.baseAddress!, m: n, n: n, ld: n, alpha: ap.baseAddress!, t: 3, out: $0.baseAddress!) }
            }
        }
        #expect(relativeError(doubles(scores), doubles(t)) < 1e-2)
        scores.withUnsafeBufferPointer { s in predicted.withUnsafeMutableBufferPointer { KernelAlgebra.classes(scores: s.baseAddress!, m: n, t: 3, into: $0.baseAddress!) } }
        #expect(predicted == labels)
    }
}
