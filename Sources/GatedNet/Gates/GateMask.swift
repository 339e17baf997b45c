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
/// words, then layer 1's, … (`stride` words in all). n·Σ_l w_l / 8 bytes. Either owns its
/// bits, or (`borrowing`) reads a caller's buffer that must outlive it.
final class PackedGateRows {
    let rows: Int
    let stride: Int
    /// First word of each layer within a row, and its word count.
    let offsets: [Int]
    let words: [Int]
    let bits: UnsafePointer<UInt64>
    private let owned: UnsafeMutablePointer<UInt64>?

    /// Owned bits, zeroed, then written by `fill`.
    init(rows: Int, widths: [Int], fill: (UnsafeMutablePointer<UInt64>) -> Void = { _ in }) {
        self.rows = rows
        (offsets, words, stride) = PackedGateRows.layout(widths)
        let storage = UnsafeMutablePointer<UInt64>.allocate(capacity: max(rows * stride, 1))
        storage.initialize(repeating: 0, count: max(rows * stride, 1))
        fill(storage)
        owned = storage
        bits = UnsafePointer(storage)
    }

    /// A view of `rows` rows of packed gates in the layout of `widths`, not copied.
    init(borrowing bits: UnsafePointer<UInt64>, rows: Int, widths: [Int]) {
        self.rows = rows
        (offsets, words, stride) = PackedGateRows.layout(widths)
        owned = nil
        self.bits = bits
    }

    static func layout(_ widths: [Int]) -> (offsets: [Int], words: [Int], stride: Int) {
        let words = widths.map(GateMask.wordsPerRow(width:))
        var o: [Int] = []
        var s = 0
        for w in words { o.append(s); s += w }
        return (o, words, s)
    }

    deinit { owned?.deallocate() }
}

extension GatedNetwork {
    /// Words per row of the packed gates of all hidden layers (`packedGates(_:rows:into:)`):
    /// Σ_l ⌈w_l / 64⌉.
    public var packedGateWordsPerRow: Int { PackedGateRows.layout(hiddenWidths).stride }

    /// Bit-packed hard gates of every hidden layer for `rows` rows of x, computed in chunks (no
    /// float copy of all gates is kept).
    func packedGates(_ x: UnsafePointer<Float>, rows: Int) -> PackedGateRows {
        PackedGateRows(rows: rows, widths: hiddenWidths) { writePackedGates(x, rows: rows, into: $0) }
    }

    /// Bit-packed hard gates of every hidden layer (feature-net numbering) for `rows` rows of
    /// x into `out` (rows × `packedGateWordsPerRow` words): row r is layer 0's ⌈w_0/64⌉ words,
    /// then layer 1's, …; gate j of layer l is bit j % 64 of word offset_l + j / 64, bits
    /// above w_l in a layer's last word 0. The layout `KernelOptions.packedGatesA` / `B`
    /// take. Throws `.unsupported` for soft gates.
    public func packedGates(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<UInt64>) throws {
        guard hasHardGates else { throw GatedNetError.unsupported("packed gates: this network has soft gates") }
        writePackedGates(x, rows: rows, into: out)
    }

    private func writePackedGates(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<UInt64>) {
        let (offsets, _, stride) = PackedGateRows.layout(hiddenWidths)
        let ws = workspace(rows: min(evaluationChunk, max(rows, 1)))
        forEachChunk(rows: rows, chunk: ws.capacity) { start, n in
            runFeature(x + start * inputSize, rows: n, ws: ws, gates: true)
            for (l, w) in hiddenWidths.enumerated() {
                let g = ws.gates[l].pointer
                for r in 0..<n {
                    packGateRow(g + r * w, width: w, into: out + (start + r) * stride + offsets[l])
                }
            }
        }
    }
}
