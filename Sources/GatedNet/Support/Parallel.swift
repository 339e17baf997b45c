import CBLAS
import CKernels

/// Two-way fork/join for the hot paths (see gnk_parallel.h): `body(0)` runs on the calling
/// thread and `body(1)` on gatednet's worker thread, or both on the caller when the worker is
/// busy. Callers split work so that the result does not depend on which thread runs a part.
func inParallel(_ body: (Int) -> Void) {
    keep(lazyGlobalsReady)
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

/// Every lazy global of the engine (Swift initialises a global or static `let` on first use,
/// under a per-global lock), touched once by the calling thread before any part runs, so the
/// two parts never race to initialise one. (In a fork()ed child such a race livelocks; there
/// the worker is not used at all, see parallel.c, as generic metadata has the same locks.)
/// A new lazy global read inside parts belongs here.
private let lazyGlobalsReady: Int = {
    var sum = minimumSplitRows + kernelTile + evaluationChunk + scratchLimit + NetworkSpec.maxFloats
    sum += ConvWorkspace.colBudget + ConvWorkspace.winoBudget + ConvGeometry.winogradMinChannels
    sum += Winograd.flipped.reduce(0, +) + (parallelWorkerEnabled ? 1 : 0)
    return sum
}()

/// Keeps a value's computation (and the lazy initialisations it implies) from being optimised away.
@inline(never) @_optimize(none)
private func keep(_ value: Int) {}

/// The rows of `part` (0 or 1) when `rows` rows are split in two halves (the first half takes
/// the odd row).
func half(_ part: Int, of rows: Int) -> (start: Int, count: Int) {
    let first = (rows + 1) / 2
    return part == 0 ? (0, first) : (first, rows - first)
}

/// False: `inParallel` runs both parts on the caller (tests use it to show that results do not
/// depend on the threads).
nonisolated(unsafe) var parallelWorkerEnabled = true

/// Calls inside `BLAS.singleThreaded`, and the thread count to restore when the last ends
/// (guarded by gnk_blas_setting_lock).
nonisolated(unsafe) private var singleThreadedHolders = 0
nonisolated(unsafe) private var threadsBefore: Int32 = 1

extension BLAS {
    /// Run `body` with OpenBLAS on one thread, for code that puts both cores to work itself
    /// (two halves through `inParallel`, each calling BLAS). OpenBLAS's thread count is
    /// process-wide: it stays 1 until the last of overlapping calls (from any thread) ends, so
    /// a body always sees one thread (OpenBLAS's bits can depend on its thread count). BLAS
    /// calls made meanwhile by other code also run on one thread.
    static func singleThreaded<T>(_ body: () throws -> T) rethrows -> T {
        gnk_blas_setting_lock()
        if singleThreadedHolders == 0 {
            threadsBefore = openblas_get_num_threads()
            if threadsBefore != 1 { openblas_set_num_threads(1) }
        }
        singleThreadedHolders += 1
        gnk_blas_setting_unlock()
        defer {
            gnk_blas_setting_lock()
            singleThreadedHolders -= 1
            if singleThreadedHolders == 0 && threadsBefore != 1 { openblas_set_num_threads(threadsBefore) }
            gnk_blas_setting_unlock()
        }
        return try body()
    }
}
