import Glibc

extension GatedNetwork {
    /// The infinite-width kernels (`.npkLimit`, `.ntkLimit`) over the block: per pair, the
    /// inner product and norms feed a depth-long recursion in double precision.
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
        // The tile closure only writes its tile: safe for the two-part tile loop.
        try fillKernelTiles(rows: k.rowsA, cols: k.rowsB, symmetric: k.symmetric, upperOnly: k.options.upperOnly,
                            out: k.out, progress: k.options.progress, what: "kernel", parallel: !k.options.serialTiles) { _, i0, ti, j0, tj, acc in
            BLAS.gemm(transA: false, transB: true, m: ti, n: tj, k: d, a: k.a + i0 * d, lda: d,
                      b: k.b + j0 * d, ldb: d, c: acc, ldc: tj)
            for i in 0..<ti {
                for j in 0..<tj {
                    let dot = Double(acc[i * tj + j])
                    let v = ntk ? ntkLimit(dot, na[i0 + i], nb[j0 + j], depth: h, s2: s2, d: d) * factor
                                : npkLimit(dot, na[i0 + i], nb[j0 + j], depth: h, relu: relu, sigma: ones ? Double(d) : dot)
                    acc[i * tj + j] = Float(v)
                }
            }
        }
    }
}

/// Cosine of the angle between two vectors from their inner product and squared norms
/// (0, a right angle, if one is 0). The recursions below carry cos θ and take one `acos` per
/// layer: sin θ = √(1 − cos²θ).
@inline(__always)
func pairCosine(_ dot: Double, _ a: Double, _ b: Double) -> Double {
    guard a > 0 && b > 0 else { return 0 }
    return max(-1, min(1, dot / (a * b).squareRoot()))
}

/// σ · Π_{l=1}^{depth} (π − θ_{l−1}) / (2π): the limiting normalised NPK of random hard gates,
/// with the ReLU arc-cosine step cos θ_l = (sin θ_{l−1} + (π − θ_{l−1}) cos θ_{l−1}) / π.
func npkLimit(_ dot: Double, _ a: Double, _ b: Double, depth: Int, relu: Bool, sigma: Double) -> Double {
    guard a > 0 && b > 0 else { return 0 }  // a zero input turns every gate off
    var c = pairCosine(dot, a, b)
    var p = sigma
    for _ in 0..<depth {
        let rest = Double.pi - acos(c)
        p *= rest / (2 * Double.pi)
        if relu { c = max(-1, min(1, ((1 - c * c).squareRoot() + rest * c) / Double.pi)) }
    }
    return p
}

/// Limiting NTK (one output, NTK parametrisation, weights N(0, s²/fan_in)) of a ReLU network
/// with `depth` hidden layers: Θ_1 = Λ_1, Θ_{m+1} = Θ_m Σ̇_m + Λ_{m+1} (paper 002 eq. 7).
func ntkLimit(_ dot: Double, _ a: Double, _ b: Double, depth: Int, s2: Double, d: Int) -> Double {
    var cross = s2 / Double(d) * dot, da = s2 / Double(d) * a, db = s2 / Double(d) * b
    var theta = cross  // Θ_1 = Λ_1
    for _ in 0..<depth {
        let c = pairCosine(cross, da, db)
        let rest = Double.pi - acos(c)
        let dotSigma = s2 * rest / (2 * Double.pi)
        let next = s2 / (2 * Double.pi) * (da * db).squareRoot() * ((1 - c * c).squareRoot() + rest * c)
        theta = theta * dotSigma + next
        cross = next
        da *= s2 / 2
        db *= s2 / 2
    }
    return theta
}
