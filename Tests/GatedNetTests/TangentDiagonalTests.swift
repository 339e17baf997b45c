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
}
