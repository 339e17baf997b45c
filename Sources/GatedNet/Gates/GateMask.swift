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
            guard let base = w.baseAddress else { return }
            for r in 0..<rows { packGateRow(gates + r * width, width: width, into: base + r * wpr) }
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

/// OR the bits of one row of float gates (on when > 0) into `dst` (zeroed by the caller).
@inline(__always)
func packGateRow(_ g: UnsafePointer<Float>, width: Int, into dst: UnsafeMutablePointer<UInt64>) {
    var j = 0
    while j < width {
        let end = min(j + 64, width)
        var word: UInt64 = 0
        for b in j..<end where g[b] > 0 { word |= 1 << UInt64(b - j) }
        dst[j >> 6] = word
        j = end
    }
}

/// Expand one packed row back into 0/1 floats.
@inline(__always)
func unpackGateRow(_ src: UnsafePointer<UInt64>, width: Int, into g: UnsafeMutablePointer<Float>) {
    var j = 0
    while j < width {
        let word = src[j >> 6]
        let end = min(j + 64, width)
        for b in j..<end { g[b] = Float((word >> UInt64(b - j)) & 1) }
        j = end
    }
}

/// Hard gates of every hidden layer for a batch, bit-packed row by row: row r holds layer 0's
/// words, then layer 1's, … (`stride` words in all). n·Σ_l w_l / 8 bytes.
final class PackedGateRows {
    let rows: Int
    let stride: Int
    /// First word of each layer within a row, and its word count.
    let offsets: [Int]
    let words: [Int]
    let bits: UnsafeMutablePointer<UInt64>

    init(rows: Int, widths: [Int]) {
        self.rows = rows
        words = widths.map(GateMask.wordsPerRow(width:))
        var o: [Int] = []
        var s = 0
        for w in words { o.append(s); s += w }
        offsets = o
        stride = s
        bits = .allocate(capacity: max(rows * s, 1))
        bits.initialize(repeating: 0, count: max(rows * s, 1))
    }

    deinit { bits.deallocate() }
}

extension GatedNetwork {
    /// Bit-packed hard gates of every hidden layer for `rows` rows of x, computed in chunks (no
    /// float copy of all gates is kept).
    func packedGates(_ x: UnsafePointer<Float>, rows: Int) -> PackedGateRows {
        let packed = PackedGateRows(rows: rows, widths: hiddenWidths)
        let ws = workspace(rows: min(evaluationChunk, max(rows, 1)))
        forEachChunk(rows: rows, chunk: ws.capacity) { start, n in
            runFeature(x + start * inputSize, rows: n, ws: ws, gates: true)
            for (l, w) in hiddenWidths.enumerated() {
                let g = ws.gates[l].pointer
                for r in 0..<n {
                    packGateRow(g + r * w, width: w, into: packed.bits + (start + r) * packed.stride + packed.offsets[l])
                }
            }
        }
        return packed
    }
}
