@testable import GatedNet
import Testing

/// The symmetric empirical NTK computes its diagonal tiles in row strips from the diagonal and
/// mirrors their lower triangles (`tangentKernel`); the cross kernel K(x, copy of x) takes the
/// plain full-tile path. Both must give the same bits, across strips and tile borders.
@Suite("Empirical NTK: diagonal tiles in strips")
struct TangentDiagonalTests {
    @Test("symmetric NTK equals the cross NTK of x with a copy of x, bit for bit (strips, mirror, tile borders)",
          arguments: [Regime.relu, Regime.decoupled])
    func stripsEqualFullTiles(_ regime: Regime) throws {
        let net = try GatedNetwork(spec: makeSpec(regime, 40, [24, 16], 3, seed: 611) { $0.beta = 2 })
        let n = kernelTile + 3 * tangentDiagonalStrip / 2 + 5  // two diagonal tiles, a partial strip
        let x = seededUniform(n * 40, seed: 612)
        let copy = x.map { $0 + 0 }  // another buffer: the cross (non-symmetric) path
        let symmetric = try BLAS.singleThreaded { try net.suiteKernel(.tangent(.full), x) }
        let cross = try BLAS.singleThreaded { try net.suiteKernel(.tangent(.full), x, copy) }
        #expect(bits(symmetric) == bits(cross))
        #expect(symmetric.contains { $0 != 0 && !$0.isNaN })
        for i in 0..<n { for j in 0..<i where symmetric[i * n + j] != symmetric[j * n + i] { Issue.record("not symmetric at \(i), \(j)"); return } }
        var upper = KernelOptions()
        upper.upperOnly = true  // the lower triangle is left as it was (NaN in suiteKernel)
        let u = try BLAS.singleThreaded { try net.suiteKernel(.tangent(.full), x, nil, upper) }
        for i in 0..<n {
            for j in 0..<n {
                let v = u[i * n + j]
                if j >= i ? v.bitPattern != symmetric[i * n + j].bitPattern : !v.isNaN {
                    Issue.record("upper only: entry \(i), \(j) is \(v)"); return
                }
            }
        }
    }

    @Test("NTK bits do not depend on the worker thread or the caller's BLAS threads; small kernels take smaller tiles")
    func sameBitsOnOneOrTwoCores() throws {
        // d = 784: OpenBLAS's sgemm rounds differently on one thread and on two, so factors
        // computed under the caller's BLAS threads would change the bits.
        let d = 784, n = 600
        let net = try GatedNetwork(spec: makeSpec(.relu, d, [64, 48], 10, seed: 613))
        let x = seededUniform(n * d, seed: 614)
        #expect(tangentTileSide(rows: n, cols: n, symmetric: true) == kernelTile / 4)
        #expect(tangentTileSide(rows: 1000, cols: 1000, symmetric: true) == kernelTile / 2)
        #expect(tangentTileSide(rows: 2000, cols: 2000, symmetric: true) == kernelTile)
        #expect(tangentTileSide(rows: 1000, cols: 3000, symmetric: false) == kernelTile)
        #expect(tangentTileSide(rows: 10, cols: 10, symmetric: true) == kernelTile / 4)
        var calls = 0
        var o = KernelOptions()
        o.progress = { _ in calls += 1; return true }
        let two = try net.suiteKernel(.tangent(.full), x, nil, o)
        #expect(calls == 15)  // 5 row tiles of 128: 5 + 4 + 3 + 2 + 1 on and above the diagonal
        let blasOne = try BLAS.singleThreaded { try net.suiteKernel(.tangent(.full), x) }
        parallelWorkerEnabled = false
        defer { parallelWorkerEnabled = true }
        let oneCore = try net.suiteKernel(.tangent(.full), x)
        #expect(bits(two) == bits(blasOne), "relative difference \(relativeError(doubles(two), doubles(blasOne)))")
        #expect(bits(two) == bits(oneCore), "relative difference \(relativeError(doubles(two), doubles(oneCore)))")
        #expect(two.contains { $0 != 0 && !$0.isNaN })
    }
}
