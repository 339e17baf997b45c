@testable import GatedNet
import CKernels
import Glibc
import Testing

// The vectorised infinite-width recursion (Sources/CKernels/limits.c) against a scalar double
// reference built on libm: the angle-carrying formulation the engine used before (acos away from
// parallel pairs, the distance of the unit vectors near them, a series for sin θ − θ cos θ).

/// Input angle from the inner product and squared norms (π/2 if either input is 0).
private func referenceAngle(_ x: ArraySlice<Float>, _ y: ArraySlice<Float>) -> (theta: Double, dot: Double, a: Double, b: Double) {
    var dot = 0.0, a = 0.0, b = 0.0
    for (u, v) in zip(x, y) { dot += Double(u) * Double(v); a += Double(u) * Double(u); b += Double(v) * Double(v) }
    guard a > 0 && b > 0 else { return (Double.pi / 2, dot, a, b) }
    let c = max(-1, min(1, dot / (a * b).squareRoot()))
    guard abs(c) > 0.99 else { return (acos(c), dot, a, b) }
    let ra = 1 / a.squareRoot(), rb = (c > 0 ? 1 : -1) / b.squareRoot()
    var s = 0.0
    for (u, v) in zip(x, y) { let e = Double(u) * ra - Double(v) * rb; s += e * e }
    let half = 2 * asin(min(1, s.squareRoot() / 2))
    let theta = c > 0 ? half : Double.pi - half
    return (theta, theta == 0 && a == b ? a : dot, a, b)
}

private func referenceStep(_ theta: Double) -> Double {
    let h = sin(theta / 2), u = 2 * h * h, t2 = theta * theta
    let v = theta < 0.01 ? theta * t2 * (1.0 / 3 + t2 * (-1.0 / 30 + t2 / 840)) : sin(theta) - theta * cos(theta)
    let next = max(0, min(2, u - v / Double.pi))
    return 2 * asin((next / 2).squareRoot())
}

private func referenceNTK(_ theta: Double, dot: Double, _ a: Double, _ b: Double, depth: Int, s2: Double, d: Int) -> Double {
    var qa = s2 / Double(d) * a, qb = s2 / Double(d) * b, result = s2 / Double(d) * dot, t = theta
    for _ in 0..<depth {
        let dotSigma = s2 * (Double.pi - t) / (2 * Double.pi)
        t = referenceStep(t)
        qa *= s2 / 2; qb *= s2 / 2
        result = result * dotSigma + (qa * qb).squareRoot() * cos(t)
    }
    return result
}

private func referenceNPK(_ theta: Double, sigma: Double, _ a: Double, _ b: Double, depth: Int, relu: Bool) -> Double {
    guard a > 0 && b > 0 else { return 0 }
    var t = theta, p = sigma
    for _ in 0..<depth {
        p *= (Double.pi - t) / (2 * Double.pi)
        if relu { t = referenceStep(t) }
    }
    return p
}

@Suite("Infinite-width recursion (vectorised C) against a libm double reference")
struct LimitTileTests {
    @Test("the recursion's asin polynomial is within 10 ulp of libm's asin on [-1, 1] (measured: 5)")
    func asinAccuracy() {
        var worst = 0.0
        let steps = 200_000
        for i in 0...steps {
            let x = -1 + 2 * Double(i) / Double(steps)
            let exact = asin(x)
            let got = gnk_limit_asin(x)
            if exact != 0 { worst = max(worst, abs(got - exact) / abs(exact)) } else { #expect(got == 0) }
        }
        #expect(worst <= 1.1e-15, "max relative error \(worst)")
        #expect(gnk_limit_asin(1) == Double.pi / 2 && gnk_limit_asin(-1) == -Double.pi / 2)
    }

    /// Rows: random directions, near-parallel and near-antiparallel copies of row 0 (ε from
    /// 1e-1 to 1e-7), its exact negative and double, an orthogonalised row, a zero row.
    static func inputs(_ d: Int) -> [Float] {
        let base = seededUniform(d, seed: 1201), noise = seededUniform(d, seed: 1202)
        var x = base + seededUniform(6 * d, seed: 1203)
        for e in [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-7] {
            x += zip(base, noise).map { Float(Double($0) + e * Double($1)) }
            x += zip(base, noise).map { Float(-Double($0) + e * Double($1)) }
        }
        x += base.map { -$0 }
        x += base.map { 2 * $0 }
        let dot = zip(base, noise).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let norm = base.reduce(0.0) { $0 + Double($1) * Double($1) }
        x += zip(noise, base).map { Float(Double($0) - dot / norm * Double($1)) }
        x += [Float](repeating: 0, count: d)
        return x
    }

    @Test("ntk and npk limits equal the libm reference to float rounding: every angle, near-parallel, depths 1 to 12",
          arguments: [1, 2, 6, 12])
    func matchesReference(depth: Int) throws {
        let d = 37
        let x = Self.inputs(d)
        let n = x.count / d
        for scale: Float in [1.4142135, 1.1] {
            let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, d, [Int](repeating: 8, count: depth), 3, seed: 1204) { $0.initScale = scale })
            let s2 = Double(scale) * Double(scale)
            var o = KernelOptions()
            o.output = 1
            let ntk = try net.suiteKernel(.ntkLimit, x, nil, o)
            let npk = try net.suiteKernel(.npkLimit, x)
            var worst = 0.0
            for i in 0..<n {
                for j in 0..<n {
                    let (theta, dot, a, b) = referenceAngle(x[(i * d)..<((i + 1) * d)], x[(j * d)..<((j + 1) * d)])
                    let rt = referenceNTK(theta, dot: dot, a, b, depth: depth, s2: s2, d: d)
                    let rn = referenceNPK(theta, sigma: dot, a, b, depth: depth, relu: true)
                    // The scale of a pair: the geometric mean of its diagonal entries.
                    let st = (referenceNTK(0, dot: a, a, a, depth: depth, s2: s2, d: d)
                              * referenceNTK(0, dot: b, b, b, depth: depth, s2: s2, d: d)).squareRoot()
                    let sn = (a * b).squareRoot() / pow(2, Double(depth))
                    for (got, want, s, name) in [(ntk[i * n + j], rt, st, "ntk"), (npk[i * n + j], rn, sn, "npk")] {
                        // Float rounding of the entry, plus 1e-12 of the pair's scale for the recursion.
                        let err = abs(Double(got) - want)
                        worst = max(worst, s > 0 ? err / s : err)
                        #expect(err <= Double(Float(want).ulp) + 1e-12 * s,
                                "\(name) depth \(depth) s² \(s2) entry \(i), \(j): \(got) vs \(want)")
                    }
                }
            }
            #expect(worst < 1e-7, "depth \(depth): largest error relative to the pair's scale \(worst)")
        }
    }

    @Test("the linear-gating npk limit keeps the input angle at every layer")
    func linearGating() throws {
        let d = 37, depth = 5
        let x = Self.inputs(d)
        let n = x.count / d
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, d, [Int](repeating: 8, count: depth), 1, seed: 1205) { $0.activation = .identity })
        let npk = try net.suiteKernel(.npkLimit, x)
        for i in 0..<n {
            for j in 0..<n {
                let (theta, dot, a, b) = referenceAngle(x[(i * d)..<((i + 1) * d)], x[(j * d)..<((j + 1) * d)])
                let want = referenceNPK(theta, sigma: dot, a, b, depth: depth, relu: false)
                #expect(abs(Double(npk[i * n + j]) - want) <= Double(Float(want).ulp) + 1e-12 * (a * b).squareRoot(),
                        "entry \(i), \(j): \(npk[i * n + j]) vs \(want)")
            }
        }
    }
}
