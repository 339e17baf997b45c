/// Hard gates of one layer for a batch, one bit per gate: row i is `wordsPerRow` words, gate j
/// is bit j % 64 of word j / 64 (unused high bits are 0). 32× smaller than float gates.
public struct GateMask: Equatable, Sendable {
    public let rows: Int
    public let width: Int
    public let wordsPerRow: Int
    public var words: [UInt64]

    public static func wordsPerRow(width: Int) -> Int { (width + 63) / 64 }

    /// Pack float gates (rows × width, a gate is on when > 0).
    public init(gates: UnsafePointer<Float>, rows: Int, width: Int) {
        self.rows = rows
        self.width = width
        wordsPerRow = GateMask.wordsPerRow(width: width)
        words = [UInt64](repeating: 0, count: rows * wordsPerRow)
        let wpr = wordsPerRow
        words.withUnsafeMutableBufferPointer { w in
            for r in 0..<rows {
                let g = gates + r * width
                let dst = w.baseAddress! + r * wpr
                for j in 0..<width where g[j] > 0 {
                    dst[j >> 6] |= 1 << UInt64(j & 63)
                }
            }
        }
    }

    public func isOn(row: Int, gate: Int) -> Bool {
        (words[row * wordsPerRow + gate >> 6] >> UInt64(gate & 63)) & 1 == 1
    }

    /// Number of gates on for both row a of self and row b of other (same width).
    @inline(__always)
    public func overlap(row a: Int, with other: GateMask, row b: Int) -> Int {
        var s = 0
        let wa = a * wordsPerRow, wb = b * wordsPerRow
        for i in 0..<wordsPerRow { s += (words[wa + i] & other.words[wb + i]).nonzeroBitCount }
        return s
    }
}
