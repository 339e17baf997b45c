@testable import GatedNet
import Testing

@Suite("Finite inputs whose activations overflow float32 (issue 12)")
struct NonFiniteOutputTests {
    /// ±3e38 inputs: layer 1 overflows to ±Inf and layer 2 forms Inf − Inf = NaN.
    @Test("predictClasses throws .notFinite naming the first bad row instead of returning a class")
    func predictClassesRejectsNaNLogits() throws {
        let net = try GatedNetwork(spec: makeSpec(.decoupled, 5, [16, 16], 3, seed: 3))
        let rows = 70
        var x = seededUniform(rows * 5, seed: 4)
        for j in 0..<5 { x[40 * 5 + j] = j % 2 == 0 ? 3e38 : -3e38 }  // row 40 only
        var classes = [Int32](repeating: -1, count: rows)
        do {
            try x.withUnsafeBufferPointer { xp in
                try classes.withUnsafeMutableBufferPointer { try net.predictClasses(xp.baseAddress!, rows: rows, into: $0.baseAddress!) }
            }
            Issue.record("no error for NaN outputs")
        } catch GatedNetError.notFinite(let m) {
            #expect(m.contains("row 40"), "\(m)")
        }
        // the other rows are ordinary: the same call without row 40 succeeds
        x.removeSubrange((40 * 5)..<(41 * 5))
        try x.withUnsafeBufferPointer { xp in
            try classes.withUnsafeMutableBufferPointer { try net.predictClasses(xp.baseAddress!, rows: rows - 1, into: $0.baseAddress!) }
        }
        #expect(classes.prefix(rows - 1).allSatisfy { $0 >= 0 && $0 < 3 })
    }
}
