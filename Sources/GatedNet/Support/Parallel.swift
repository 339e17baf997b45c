import CBLAS
import CKernels

/// Two-way fork/join for the hot paths (see gnk_parallel.h): `body(0)` runs on the calling
/// thread and `body(1)` on gatednet's worker thread, or both on the caller when the worker is
/// busy. Callers split work so that the result does not depend on which thread runs a part.
func inParallel(_ body: (Int) -> Void) {
    guard parallelWorkerEnabled else { body(0); body(1); return }
    withoutActuallyEscaping(body) { escapable in
        var closure = escapable
        withUnsafeMutablePointer(to: &closure) { context in
            gnk_parallel2({ context, part in
                context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(part))
            }, context)
        }
    }
}

/// False: `inParallel` runs both parts on the caller (tests use it to show that results do not
/// depend on the threads).
nonisolated(unsafe) var parallelWorkerEnabled = true

extension BLAS {
    /// Run `body` with OpenBLAS on one thread, for code that puts both cores to work itself
    /// (two halves through `inParallel`, each calling BLAS). OpenBLAS's thread count is
    /// process-wide: BLAS calls made meanwhile by other threads also run on one thread.
    static func singleThreaded<T>(_ body: () throws -> T) rethrows -> T {
        let before = openblas_get_num_threads()
        if before == 1 { return try body() }
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(before) }
        return try body()
    }
}
