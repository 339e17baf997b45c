import CBLAS

/// Thin wrappers over OpenBLAS. Row-major throughout; `lda` etc. are row strides.
@usableFromInline
enum BLAS {
    /// C[m×n] = alpha · op(A) · op(B) + beta · C, op = transpose when the flag is set.
    @inline(__always) @usableFromInline
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                     alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                     b: UnsafePointer<Float>, ldb: Int,
                     beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// C[n×n] = alpha · A Aᵀ + beta · C on the upper triangle (row-major) only.
    @inline(__always) @usableFromInline
    static func syrk(n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                     beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, Int32(n), Int32(k), alpha, a, Int32(lda),
                    beta, c, Int32(ldc))
    }

    /// Name of the OpenBLAS kernel that runs (e.g. "Haswell"), and its configuration line.
    static var coreName: String { String(cString: openblas_get_corename()) }
    static var config: String { String(cString: openblas_get_config()) }
    static var threads: Int { Int(openblas_get_num_threads()) }
}

/// Which BLAS runs under gatednet, for benchmark and diagnostic output.
public enum BLASInfo {
    public static var description: String { "OpenBLAS \(BLAS.config) core=\(BLAS.coreName) threads=\(BLAS.threads)" }
}
