import CBLAS
import Glibc

extension GatedNetwork {
    /// The infinite-width kernels (`.npkLimit`, `.ntkLimit`) over the block, all in double
    /// precision: per pair, the inner product (dgemm on double copies of the tile's rows) and
    /// the norms give the input angle θ_0 (`pairAngle`: exactly 0 for identical inputs), which
    /// the depth-long recursion carries as an angle (`arcCosineStep`).
    func limitKernel(_ ntk: Bool, _ k: KernelBlock) throws {
        var factor = 1.0
        if ntk {
            guard spec.activation == .relu else {
                throw GatedNetError.unsupported("kernel: the infinite-width NTK is that of a ReLU network; this network's feature activation is linear")
            }
            guard !spec.bias else {
                throw GatedNetError.unsupported("kernel: the infinite-width NTK is defined for networks without biases")
            }
            if let o = k.options.output {
                guard o >= 0 && o < outputSize else {
                    throw GatedNetError.invalidArgument("output: got \(o), need -1 (sum) or 0 ... \(outputSize - 1)")
                }
            } else {
                factor = Double(outputSize)
            }
        } else {
            guard hasHardGates else {
                throw GatedNetError.unsupported("kernel: the infinite-width NPK is defined for random hard gates; this network has soft gates")
            }
        }
        let d = inputSize
        func norms(_ x: UnsafePointer<Float>, _ rows: Int) -> [Double] {
            (0..<rows).map { r in
                var s = 0.0
                for i in 0..<d { s += Double(x[r * d + i]) * Double(x[r * d + i]) }
                return s
            }
        }
        let na = norms(k.a, k.rowsA)
        let nb = k.symmetric ? na : norms(k.b, k.rowsB)
        let h = hiddenCount
        let relu = spec.activation == .relu
        let ones = spec.valueInput == .ones
        let s2 = Double(spec.initScale) * Double(spec.initScale)
        let ta = min(kernelTile, k.rowsA), tb = min(kernelTile, k.rowsB)
        // Per part: the tile's rows of a and b in double, and their inner products.
        let scratch = (0..<2).map { _ in (a: DoubleBuffer(count: ta * d), b: DoubleBuffer(count: tb * d), dot: DoubleBuffer(count: ta * tb)) }
        // The tile closure only writes its tile and its part's scratch: safe for the two-part tile loop.
        try fillKernelTiles(rows: k.rowsA, cols: k.rowsB, symmetric: k.symmetric, upperOnly: k.options.upperOnly,
                            out: k.out, progress: k.options.progress, what: "kernel", parallel: !k.options.serialTiles) { part, i0, ti, j0, tj, acc in
            let s = scratch[part]
            for e in 0..<(ti * d) { s.a.pointer[e] = Double(k.a[i0 * d + e]) }
            for e in 0..<(tj * d) { s.b.pointer[e] = Double(k.b[j0 * d + e]) }
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(ti), Int32(tj), Int32(d), 1, s.a.pointer, Int32(d),
                        s.b.pointer, Int32(d), 0, s.dot.pointer, Int32(tj))
            for i in 0..<ti {
                for j in 0..<tj {
                    let a = na[i0 + i], b = nb[j0 + j]
                    let theta = pairAngle(s.dot.pointer[i * tj + j], a, b, k.a + (i0 + i) * d, k.b + (j0 + j) * d, d)
                    // Identical inputs: Σ is the norm itself, so the diagonal is exact.
                    let dot = theta == 0 && a == b ? a : s.dot.pointer[i * tj + j]
                    let v = ntk ? ntkLimit(theta: theta, dot: dot, a, b, depth: h, s2: s2, d: d) * factor
                                : npkLimit(theta: theta, a, b, depth: h, relu: relu, sigma: ones ? Double(d) : dot)
                    acc[i * tj + j] = Float(v)
                }
            }
        }
    }
}

/// A scratch array of doubles (uninitialised; the caller writes before reading).
final class DoubleBuffer {
    let pointer: UnsafeMutablePointer<Double>
    init(count: Int) { pointer = .allocate(capacity: max(count, 1)) }
    deinit { pointer.deallocate() }
}

/// Angle θ ∈ [0, π] between x and y (d floats each) from their inner product and squared
/// norms, all in double (π/2 if either is 0). acos is ill-conditioned where |cos θ| is near 1
/// (a rounding error ε of cos θ becomes an angle of order √ε), so there the angle comes from
/// the distance of the unit vectors instead: |x̂ ∓ ŷ| = 2 sin(θ/2) (or 2 cos(θ/2)), O(d) more
/// work for those pairs only. Identical inputs give exactly 0.
func pairAngle(_ dot: Double, _ a: Double, _ b: Double, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
               _ d: Int) -> Double {
    guard a > 0 && b > 0 else { return Double.pi / 2 }
    let c = max(-1, min(1, dot / (a * b).squareRoot()))
    guard abs(c) > 0.99 else { return acos(c) }
    let ra = 1 / a.squareRoot(), rb = (c > 0 ? 1 : -1) / b.squareRoot()
    var s = 0.0
    for i in 0..<d {
        let e = Double(x[i]) * ra - Double(y[i]) * rb
        s += e * e
    }
    let half = 2 * asin(min(1, s.squareRoot() / 2))
    return c > 0 ? half : Double.pi - half
}

/// One step of the ReLU arc-cosine recursion, cos θ' = (sin θ + (π − θ) cos θ) / π, computed
/// as 1 − cos θ' = (π (1 − cos θ) − (sin θ − θ cos θ)) / π with 1 − cos θ = 2 sin²(θ/2) and a
/// series for sin θ − θ cos θ at small θ, so that small angles keep their relative precision
/// (θ = 0 stays exactly 0). θ' ∈ [0, π/2].
@inline(__always)
func arcCosineStep(_ theta: Double) -> Double {
    let h = sin(theta / 2)
    let u = 2 * h * h
    let t2 = theta * theta
    let v = theta < 0.01 ? theta * t2 * (1.0 / 3 + t2 * (-1.0 / 30 + t2 / 840)) : sin(theta) - theta * cos(theta)
    let next = max(0, min(2, u - v / Double.pi))
    return 2 * asin((next / 2).squareRoot())
}

/// σ · Π_{l=1}^{depth} (π − θ_{l−1}) / (2π): the limiting normalised NPK of random hard gates,
/// θ following the ReLU arc-cosine recursion (`relu`) or staying θ_0 (linear feature net).
func npkLimit(theta: Double, _ a: Double, _ b: Double, depth: Int, relu: Bool, sigma: Double) -> Double {
    guard a > 0 && b > 0 else { return 0 }  // a zero input turns every gate off
    var t = theta
    var p = sigma
    for _ in 0..<depth {
        p *= (Double.pi - t) / (2 * Double.pi)
        if relu { t = arcCosineStep(t) }
    }
    return p
}

/// Limiting NTK (one output, NTK parametrisation, weights N(0, s²/fan_in)) of a ReLU network
/// with `depth` hidden layers: Θ_1 = Λ_1, Θ_{m+1} = Θ_m Σ̇_m + Λ_{m+1} (paper 002 eq. 7), with
/// Λ_{m+1} = √(q_a q_b) cos θ_{m} (q the pre-activation variances, (s²/2)^m s²|x|²/d) and
/// Σ̇_m = s² (π − θ_{m−1}) / (2π).
func ntkLimit(theta: Double, dot: Double, _ a: Double, _ b: Double, depth: Int, s2: Double, d: Int) -> Double {
    var qa = s2 / Double(d) * a, qb = s2 / Double(d) * b
    var result = s2 / Double(d) * dot  // Θ_1 = Λ_1
    var t = theta
    for _ in 0..<depth {
        let dotSigma = s2 * (Double.pi - t) / (2 * Double.pi)
        t = arcCosineStep(t)
        qa *= s2 / 2
        qb *= s2 / 2
        let next = (qa * qb).squareRoot() * cos(t)
        result = result * dotSigma + next
    }
    return result
}
