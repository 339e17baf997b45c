@testable import GatedNet
import CKernels
import Glibc
import Testing

// The tile loop of every kernel (fillKernelTiles): the two-part loop against the serial one,
// cancellation and errors from either part, and the progress callback's thread. Serialized:
// BLAS.singleThreaded is process-wide, and the tests compare results under both settings.

/// A synthetic tile closure through BLAS plus an elementwise step, the shape of the real kernels'
/// tiles. With k = 784, OpenBLAS's sgemm gives other bits on one thread than on two.
private struct GemmTiles {
    let a: [Float], b: [Float], k: Int
    init(rows: Int, cols: Int, k: Int, seed: UInt64) {
        self.k = k
        a = seededUniform(rows * k, seed: seed)
        b = seededUniform(cols * k, seed: seed + 1)
    }

    /// Fill `out` (rows × cols, row stride cols) through fillKernelTiles. `parts`: 64 × 64 slots,
    /// slot (i0 / 512) * 64 + j0 / 512 gets 1 + the part that computed that tile, plus 10 for every
    /// further time it was computed (one slot per tile, so concurrent parts never share one).
    func fill(_ out: inout [Float], rows: Int, cols: Int, symmetric: Bool, upperOnly: Bool, parallel: Bool,
              progress: ((Double) -> Bool)? = nil, parts: UnsafeMutablePointer<Int>? = nil,
              failAt: (Int, Int)? = nil) throws {
        precondition(out.count == rows * cols)
        try a.withUnsafeBufferPointer { ap in
            try (symmetric ? a : b).withUnsafeBufferPointer { bp in
                try out.withUnsafeMutableBufferPointer { o in
                    let output = KernelOutput(pointer: o.baseAddress!, rows: rows, cols: cols, ld: cols)
                    try fillKernelTiles(rows: rows, cols: cols, symmetric: symmetric, upperOnly: upperOnly, out: output,
                                        progress: progress, what: "test", parallel: parallel) { part, i0, ti, j0, tj, acc in
                        if let (fi, fj) = failAt, fi == i0, fj == j0 {
                            throw GatedNetError.invalidArgument("tile \(i0), \(j0)")
                        }
                        if let slot = parts.map({ $0 + (i0 / kernelTile) * 64 + j0 / kernelTile }) {
                            slot.pointee += slot.pointee == 0 ? 1 + part : 10
                        }
                        BLAS.gemm(transA: false, transB: true, m: ti, n: tj, k: k, a: ap.baseAddress! + i0 * k, lda: k,
                                  b: bp.baseAddress! + j0 * k, ldb: k, c: acc, ldc: tj)
                        for r in 0..<ti { for c in 0..<tj { acc[r * tj + c] *= Float(1 + (i0 + r + j0 + c) % 7) } }
                    }
                }
            }
        }
    }

    func fill(rows: Int, cols: Int, symmetric: Bool, upperOnly: Bool, parallel: Bool,
              parts: UnsafeMutablePointer<Int>? = nil) throws -> [Float] {
        var out = [Float](repeating: .nan, count: rows * cols)
        try fill(&out, rows: rows, cols: cols, symmetric: symmetric, upperOnly: upperOnly, parallel: parallel, parts: parts)
        return out
    }
}

/// Bit-for-bit equality as one Bool (#expect on two big arrays would diff them when they differ).
private func same(_ a: [Float], _ b: [Float]) -> Bool { bits(a) == bits(b) }

@Suite("Kernel tiles: two-part loop, cancellation, progress thread", .serialized)
struct KernelTilesTests {
    @Test("two-part tile loop equals the serial loop bit for bit (single-threaded BLAS), every tile once")
    func parallelEqualsSerial() throws {
        let n = 1300, m = 700
        let g = GemmTiles(rows: n, cols: m, k: 784, seed: 601)
        for (cols, symmetric, upperOnly) in [(m, false, false), (n, true, false), (n, true, true)] {
            let parts = UnsafeMutablePointer<Int>.allocate(capacity: 64 * 64)
            defer { parts.deallocate() }
            parts.initialize(repeating: 0, count: 64 * 64)
            let two = try g.fill(rows: n, cols: cols, symmetric: symmetric, upperOnly: upperOnly, parallel: true, parts: parts)
            let one = try BLAS.singleThreaded {
                try g.fill(rows: n, cols: cols, symmetric: symmetric, upperOnly: upperOnly, parallel: false)
            }
            let label = "cols \(cols) symmetric \(symmetric) upper only \(upperOnly)"
            #expect(same(two, one), "\(label)")
            // Tiles: 3 row tiles; columns 2 (700) or 3 (symmetric: only on and above the diagonal).
            let tileRows = 3, tileCols = symmetric ? 3 : 2
            for ti in 0..<tileRows {
                for tj in 0..<tileCols {
                    let slot = parts[ti * 64 + tj]
                    if symmetric && tj < ti {
                        #expect(slot == 0, "\(label): tile \(ti), \(tj) below the diagonal was computed")
                    } else {
                        #expect(slot == 1 || slot == 2, "\(label): tile \(ti), \(tj): \(slot) (1 + part, + 10 per repeat)")
                    }
                }
            }
            // Written entries: all, or exactly the upper triangle.
            for i in stride(from: 0, to: n, by: 13) {
                for j in 0..<cols {
                    #expect(two[i * cols + j].isNaN == (upperOnly && j < i), "\(label): entry \(i), \(j)")
                }
            }
            if symmetric && !upperOnly {
                #expect((0..<n).allSatisfy { i in stride(from: 0, to: n, by: 29).allSatisfy { two[i * n + $0] == two[$0 * n + i] } })
            }
        }
    }

    /// A network with Fashion-MNIST's input size (with k = 784, OpenBLAS's sgemm rounds
    /// differently on one thread and on two) and gate widths that cross word boundaries.
    static func net() throws -> GatedNetwork {
        try GatedNetwork(spec: makeSpec(.fixedRandomII, 784, [70, 130, 64], 3, seed: 602))
    }

    @Test("every kernel from the two-part tile loop equals the serial tiles bit for bit: whole, cross, upper only, blocks")
    func kernelsParallelEqualSerial() throws {
        let net = try Self.net()
        let n = 1300
        let x = seededUniform(n * 784, seed: 603), y = seededUniform(700 * 784, seed: 604)
        #expect(net.gatesAreLive(x))
        let cases: [(KernelChoice, GatePath)] = [
            (.path(.npk), .packed), (.path(.npk), .float), (.path(.npkNormalized), .packed), (.npkTraceNormalized, .auto),
            (.tangent(.value), .auto), (.npkLimit, .auto),
        ]
        // (xb, rows, cols, upper only); xb nil: symmetric.
        let blocks: [([Float]?, Range<Int>?, Range<Int>?, Bool)] = [
            (nil, nil, nil, false), (y, nil, nil, false), (nil, nil, nil, true), (nil, 300..<1250, 100..<900, false),
            (nil, 200..<1300, 200..<1300, false), (nil, 200..<1300, 200..<1300, true), (y, 513..<1300, 0..<700, false),
        ]
        for (choice, path) in cases {
            for (xb, rows, cols, upperOnly) in blocks {
                if case .tangent = choice, rows != nil { continue }  // one block is enough for the NTK (slow)
                var o = withPath(path)
                o.rows = rows; o.cols = cols; o.upperOnly = upperOnly
                // Both inside singleThreaded: the gates and NTK factors before the tile loop then
                // come from the same BLAS setting too (OpenBLAS's bits depend on its threads).
                let two = try BLAS.singleThreaded { try net.suiteKernel(choice, x, xb, o) }
                o.serialTiles = true
                let one = try BLAS.singleThreaded { try net.suiteKernel(choice, x, xb, o) }
                let label = "\(choice) \(path) cross \(xb != nil) block \(String(describing: rows)) x \(String(describing: cols)) upper only \(upperOnly)"
                #expect(same(two, one), "\(label): relative difference \(relativeError(doubles(two), doubles(one)))")
                #expect(two.contains { $0 != 0 && !$0.isNaN }, "\(label)")
            }
        }
    }

    @Test("a kernel computed while the worker thread is busy (both parts on the caller), or under single-threaded BLAS, equals the two-core result")
    func busyWorkerSameResult() throws {
        let net = try Self.net()
        let n = 1100
        let x = seededUniform(n * 784, seed: 605)
        var o = KernelOptions()
        o.rows = 0..<n; o.cols = 37..<n
        let free = try net.suiteKernel(.path(.npk), x, nil, o)
        var busy: Result<[Float], Error>?
        // Inside part 0 the worker is taken by this very inParallel: the kernel's own two parts
        // then run one after the other on this thread.
        inParallel { part in
            if part == 0 { busy = Result { try net.suiteKernel(.path(.npk), x, nil, o) } }
        }
        #expect(same(try #require(busy).get(), free))
        // Nor on the caller's BLAS thread count: the tile loop sets its own.
        let one = try BLAS.singleThreaded { try net.suiteKernel(.path(.npk), x, nil, o) }
        #expect(same(one, free), "relative difference \(relativeError(doubles(one), doubles(free)))")
    }

    @Test("progress is called on the calling thread once per tile with increasing fractions up to 1")
    func progressFromCallingThread() throws {
        let net = try Self.net()
        let n = 4 * kernelTile + 10
        let x = seededUniform(n * 784, seed: 606)
        let caller = pthread_self()
        var seen: [Double] = []
        var foreign = 0
        var o = KernelOptions()
        o.progress = { f in
            if pthread_equal(pthread_self(), caller) == 0 { foreign += 1 }
            seen.append(f)
            return true
        }
        for choice in [KernelChoice.path(.npk), .npkLimit] {
            seen = []
            _ = try net.suiteKernel(choice, x, nil, o)
            #expect(seen.count == 15, "\(choice)")  // 5 row tiles, upper triangle: 5 + 4 + 3 + 2 + 1
            #expect(zip(seen, seen.dropFirst()).allSatisfy { $0 < $1 }, "\(choice)")
            #expect(seen.last == 1, "\(choice)")
        }
        #expect(foreign == 0)
    }

    @Test("returning false from progress throws .cancelled and stops both parts at their next tile")
    func cancelStopsBothParts() throws {
        let net = try Self.net()
        let n = 5 * kernelTile + 10
        let x = seededUniform(n * 784, seed: 607)
        for choice in [KernelChoice.path(.npk), .tangent(.value), .npkLimit] {
            var calls = 0
            var o = KernelOptions()
            o.progress = { _ in calls += 1; return calls < 2 }
            var out: [Float] = []
            do {
                out = try net.suiteKernel(choice, x, nil, o)
                Issue.record("\(choice): not cancelled")
            } catch GatedNetError.cancelled(let message) {
                #expect(message.contains("cancelled by the progress callback"))
            }
            #expect(calls == 2, "\(choice)")
            #expect(out.isEmpty)
        }
        // Through the tile loop itself: tiles after the cancellation are never started. Part 0
        // cancels at its second report; by then part 1 can have finished a few tiles (reported
        // before part 0's own) and be inside one more, but not near all 36.
        let g = GemmTiles(rows: n, cols: n, k: 300, seed: 608)
        var calls = 0
        var out = [Float](repeating: .nan, count: n * n)
        let parts = UnsafeMutablePointer<Int>.allocate(capacity: 64 * 64)
        defer { parts.deallocate() }
        parts.initialize(repeating: 0, count: 64 * 64)
        #expect(throws: GatedNetError.self) {
            try g.fill(&out, rows: n, cols: n, symmetric: false, upperOnly: false, parallel: true,
                       progress: { _ in calls += 1; return calls < 2 }, parts: parts)
        }
        #expect(calls == 2)
        let started = (0..<(64 * 64)).filter { parts[$0] != 0 }.count
        #expect(started >= 2 && started <= 30, "\(started) of 36 tiles started")
        #expect(out.contains { $0.isNaN })
    }

    @Test("an error thrown by a tile in either part is rethrown once both parts have stopped")
    func tileErrorRethrown() throws {
        let n = 3 * kernelTile + 10
        let g = GemmTiles(rows: n, cols: n, k: 64, seed: 609)
        for failAt in [(0, 0), (kernelTile, 2 * kernelTile), (3 * kernelTile, 3 * kernelTile)] {
            var out = [Float](repeating: .nan, count: n * n)
            do {
                try g.fill(&out, rows: n, cols: n, symmetric: true, upperOnly: false, parallel: true, failAt: failAt)
                Issue.record("tile \(failAt) did not throw")
            } catch GatedNetError.invalidArgument(let message) {
                #expect(message == "tile \(failAt.0), \(failAt.1)")
            }
        }
    }
}
