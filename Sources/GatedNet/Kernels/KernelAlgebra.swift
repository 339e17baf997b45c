import CBLAS

/// Linear algebra on a computed kernel matrix (row-major, row stride `ld`): spectrum,
/// ν = yᵀ Ĥ⁻¹ y, and kernel ridge regression, so the NPK can be used as a pure kernel method.
/// Only the upper triangle (column >= row) of a symmetric kernel is read. Work is in double
/// precision through LAPACK (OpenBLAS); each call takes an n × n double copy (8 n² bytes).
public enum KernelAlgebra {
    /// Eigenvalues of the symmetric kernel, largest first.
    public static func eigenvalues(_ k: UnsafePointer<Float>, n: Int, ld: Int) throws -> [Double] {
        var values = [Double](repeating: 0, count: n)
        try values.withUnsafeMutableBufferPointer { try eigenvalues(k, n: n, ld: ld, into: $0.baseAddress!) }
        return values
    }

    /// Eigenvalues of the symmetric kernel, largest first, into `values` (n).
    public static func eigenvalues(_ k: UnsafePointer<Float>, n: Int, ld: Int, into values: UnsafeMutablePointer<Double>) throws {
        let a = try lapackCopy(n)
        try fill(a, from: k, n: n, ld: ld, scale: 1, ridge: 0)
        var jobz = CChar(UInt8(ascii: "N")), uplo = CChar(UInt8(ascii: "L"))
        var nn = Int32(n), lda = Int32(n), info: Int32 = 0
        let w = try Allocation<Double>(count: n, what: "eigenvalues")
        var lwork: Int32 = -1, liwork: Int32 = -1
        var wq = 0.0, iq: Int32 = 0
        dsyevd_(&jobz, &uplo, &nn, a.pointer, &lda, w.pointer, &wq, &lwork, &iq, &liwork, &info)
        lwork = Int32(max(wq, Double(2 * n + 1)))
        liwork = max(iq, 1)
        let work = try Allocation<Double>(count: Int(lwork), what: "eigenvalue workspace")
        let iwork = try Allocation<Int32>(count: Int(liwork), what: "eigenvalue workspace")
        dsyevd_(&jobz, &uplo, &nn, a.pointer, &lda, w.pointer, work.pointer, &lwork, iwork.pointer, &liwork, &info)
        guard info == 0 else { throw GatedNetError.invalidArgument("k: the eigenvalue solver did not converge (dsyevd info \(info))") }
        for i in 0..<n { values[i] = w.pointer[n - 1 - i] }
    }

    /// ν = yᵀ Ĥ⁻¹ y with Ĥ = K / trace(K), by Cholesky. When Ĥ is not numerically positive
    /// definite, the smallest ridge in 1e-12 · 10^j (j = 0 ... 10) times the mean diagonal
    /// that makes it so is added, and returned (0 when none was needed).
    public static func nu(_ k: UnsafePointer<Float>, n: Int, ld: Int, y: UnsafePointer<Float>) throws -> (nu: Double, ridge: Double) {
        let factor = try lapackCopy(n)  // first: a size the machine cannot serve fails fast
        let b = try Allocation<Double>(count: n, what: "nu right-hand side")
        var trace = 0.0
        for i in 0..<n {
            guard k[i * ld + i].isFinite else { throw GatedNetError.notFinite("k: row \(i) contains NaN or Inf") }
            trace += Double(k[i * ld + i])
        }
        guard trace > 0 && trace.isFinite else {
            throw GatedNetError.invalidArgument("k: trace is \(trace), need a positive finite trace")
        }
        let ridge = try cholesky(k, n: n, ld: ld, scale: 1 / trace, ridge: 0, into: factor)
        for i in 0..<n { b.pointer[i] = Double(y[i]) }
        try solve(factor, n: n, b: b, nrhs: 1)
        var s = 0.0
        for i in 0..<n { s += Double(y[i]) * b.pointer[i] }
        return (s, ridge)
    }

    /// α = (K + ridge·I)⁻¹ T for targets T (n × t, row-major) into alpha (n × t). Returns the
    /// ridge actually used (larger than asked when K + ridge·I was not positive definite).
    public static func ridgeFit(_ k: UnsafePointer<Float>, n: Int, ld: Int, targets: UnsafePointer<Float>, t: Int,
                                ridge: Double, alpha: UnsafeMutablePointer<Float>) throws -> Double {
        try checkOrder(n)
        let factor = try lapackCopy(n)
        let b = try Allocation<Double>(count: try checkedCount(n, t, what: "ridge targets"), what: "ridge targets")
        let used = try cholesky(k, n: n, ld: ld, scale: 1, ridge: ridge, into: factor)
        for i in 0..<n { for c in 0..<t { b.pointer[c * n + i] = Double(targets[i * t + c]) } }
        try solve(factor, n: n, b: b, nrhs: t)
        for i in 0..<n { for c in 0..<t { alpha[i * t + c] = Float(b.pointer[c * n + i]) } }
        return used
    }

    /// Scores = K_test α: k_test (m × n, row stride ld) times alpha (n × t) into out (m × t).
    public static func ridgePredict(_ kTest: UnsafePointer<Float>, m: Int, n: Int, ld: Int, alpha: UnsafePointer<Float>, t: Int,
                                    out: UnsafeMutablePointer<Float>) {
        BLAS.gemm(transA: false, transB: false, m: m, n: t, k: n, a: kTest, lda: ld, b: alpha, ldb: t, c: out, ldc: t)
    }

    /// Targets for classification by regression: one-hot rows (classes > 1) or ±1 (classes 1,
    /// label 1 → +1, label 0 → −1), as the squared loss of training uses them.
    public static func targets(labels: UnsafePointer<Int32>, n: Int, classes: Int, into out: UnsafeMutablePointer<Float>) {
        for i in 0..<n {
            if classes == 1 {
                out[i] = labels[i] == 1 ? 1 : -1
            } else {
                for c in 0..<classes { out[i * classes + c] = Int(labels[i]) == c ? 1 : 0 }
            }
        }
    }

    /// Arg-max class of each of m score rows (t = 1: 1 if the score is > 0, else 0).
    public static func classes(scores: UnsafePointer<Float>, m: Int, t: Int, into out: UnsafeMutablePointer<Int32>) {
        for i in 0..<m { out[i] = Int32(predictedClass(scores + i * t, k: t)) }
    }

    static func checkOrder(_ n: Int) throws {
        guard n >= 1 else { throw GatedNetError.invalidArgument("n: got \(n), need >= 1") }
        guard n <= Int(Int32.max) / 2 else { throw GatedNetError.outOfMemory("n: got \(n), LAPACK needs n <= 2^30") }
    }

    /// The n × n double matrix LAPACK works on (8 n² bytes; `.outOfMemory` if unavailable).
    static func lapackCopy(_ n: Int) throws -> Allocation<Double> {
        try checkOrder(n)
        return try Allocation<Double>(count: try checkedCount(n, n, what: "kernel copy (n x n doubles)"), what: "kernel copy (n x n doubles)")
    }

    /// a = scale·K + ridge·I from the upper triangle of row-major K, as a column-major lower
    /// triangle, and zeros above it (LAPACK's results depend on them bit for bit).
    /// Throws `.notFinite` naming the first row of K's upper triangle with NaN or Inf.
    static func fill(_ a: Allocation<Double>, from k: UnsafePointer<Float>, n: Int, ld: Int, scale: Double, ridge: Double) throws {
        for i in 0..<n {
            let row = k + i * ld
            let col = a.pointer + i * n
            col.update(repeating: 0, count: i)
            for j in i..<n {
                guard row[j].isFinite else { throw GatedNetError.notFinite("k: row \(i) contains NaN or Inf") }
                col[j] = Double(row[j]) * scale
            }
            col[i] += ridge
        }
    }

    /// Cholesky factor of scale·K + r·I into `a`, with r = ridge raised as described in `nu`
    /// if needed; returns r.
    static func cholesky(_ k: UnsafePointer<Float>, n: Int, ld: Int, scale: Double, ridge: Double,
                         into a: Allocation<Double>) throws -> Double {
        var meanDiag = 0.0
        for i in 0..<n { meanDiag += Double(k[i * ld + i]) * scale }
        meanDiag = max(meanDiag / Double(n), Double.leastNormalMagnitude)
        var r = ridge
        var step = 0
        while true {
            try fill(a, from: k, n: n, ld: ld, scale: scale, ridge: r)
            var uplo = CChar(UInt8(ascii: "L"))
            var nn = Int32(n), lda = Int32(n), info: Int32 = 0
            dpotrf_(&uplo, &nn, a.pointer, &lda, &info)
            if info == 0 { return r }
            guard info > 0, step <= 10 else {
                throw GatedNetError.invalidArgument("k: not positive definite even with a ridge of \(r) (mean diagonal \(meanDiag)); dpotrf info \(info)")
            }
            r = max(ridge, 0) + meanDiag * 1e-12 * pow10(step)
            step += 1
        }
    }

    static func pow10(_ j: Int) -> Double { (0..<j).reduce(1.0) { x, _ in x * 10 } }

    static func solve(_ factor: Allocation<Double>, n: Int, b: Allocation<Double>, nrhs: Int) throws {
        var uplo = CChar(UInt8(ascii: "L"))
        var nn = Int32(n), lda = Int32(n), nr = Int32(nrhs), ldb = Int32(n), info: Int32 = 0
        dpotrs_(&uplo, &nn, &nr, factor.pointer, &lda, b.pointer, &ldb, &info)
        guard info == 0 else { throw GatedNetError.invalidArgument("k: triangular solve failed (dpotrs info \(info))") }
    }
}
