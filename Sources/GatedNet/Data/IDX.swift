import CZlib
import Glibc

/// An IDX array (the MNIST / Fashion-MNIST format), read from a gzip-compressed or plain file.
public struct IDXArray {
    public enum Element: UInt8 { case u8 = 0x08, i8 = 0x09, i16 = 0x0B, i32 = 0x0C, f32 = 0x0D, f64 = 0x0E
        var size: Int { switch self { case .u8, .i8: 1; case .i16: 2; case .i32, .f32: 4; case .f64: 8 } }
    }
    public let dims: [Int]
    public let element: Element
    /// Raw big-endian element bytes, in file order.
    let data: [UInt8]

    public var count: Int { dims.reduce(1, *) }

    /// Read and decompress `path` (gzip is detected by content; plain files pass through).
    /// The header is read and checked first: an array of more than `maxCount` values is refused
    /// (`.bufferTooSmall`) before its body is touched, and exactly the bytes its dimensions
    /// announce are decompressed (a stream holding more is `.corrupt`, found after one extra
    /// byte). `.io` for unreadable paths and non-regular files (FIFOs, devices).
    public init(path: FilePath, maxCount: Int = .max) throws {
        let file = try IDXFile(path)
        let h = try file.header()
        guard h.count <= maxCount else {
            throw GatedNetError.bufferTooSmall("capacity: \(maxCount) values, but \(path) holds \(h.count) (dimensions \(h.dims))")
        }
        dims = h.dims
        element = h.element
        data = try file.body(h)
    }

    public init(path: String, maxCount: Int = .max) throws { try self.init(path: FilePath(path), maxCount: maxCount) }

    /// Dimensions from the header alone (decompresses only its first bytes). The body length is
    /// checked without decompressing: against the file size for plain files, against the gzip
    /// trailer's ISIZE (uncompressed size mod 2^32) for compressed ones.
    public static func dims(path: FilePath) throws -> [Int] {
        let file = try IDXFile(path)
        let h = try file.header()
        let total = h.headerSize + h.bodyBytes
        if file.isPlain {
            guard file.raw.size == total else {
                throw GatedNetError.corrupt("idx: \(path) holds \(file.raw.size) bytes, dimensions \(h.dims) need \(total)")
            }
        } else {
            var trailer = [UInt8](repeating: 0, count: 4)
            let n = try trailer.withUnsafeMutableBytes { try file.raw.read(into: $0, at: max(file.raw.size - 4, 0), what: "idx") }
            guard file.raw.size >= 18, n == 4 else { throw GatedNetError.corrupt("idx: \(path) is a truncated gzip file") }
            let isize = UInt32(trailer[0]) | UInt32(trailer[1]) << 8 | UInt32(trailer[2]) << 16 | UInt32(trailer[3]) << 24
            guard isize == UInt32(truncatingIfNeeded: total) else {
                throw GatedNetError.corrupt("idx: \(path) decompresses to \(isize) bytes (mod 2^32), dimensions \(h.dims) need \(total)")
            }
        }
        return h.dims
    }

    public static func dims(path: String) throws -> [Int] { try dims(path: FilePath(path)) }

    public init(bytes: [UInt8], name: String = "idx") throws {
        let h = try IDXHeader(bytes, name: name)
        guard bytes.count - h.headerSize == h.bodyBytes else {
            throw GatedNetError.corrupt("idx: \(name) holds \(bytes.count - h.headerSize) data bytes, dimensions \(h.dims) need \(h.bodyBytes)")
        }
        dims = h.dims
        element = h.element
        data = Array(bytes[h.headerSize...])
    }

    /// Element i as a Double.
    @inline(__always)
    func value(_ i: Int) -> Double {
        switch element {
        case .u8: return Double(data[i])
        case .i8: return Double(Int8(bitPattern: data[i]))
        case .i16: return Double(Int16(bitPattern: UInt16(data[2 * i]) << 8 | UInt16(data[2 * i + 1])))
        case .i32: return Double(Int32(bitPattern: be32(4 * i)))
        case .f32: return Double(Float(bitPattern: be32(4 * i)))
        case .f64: return Double(bitPattern: UInt64(be32(8 * i)) << 32 | UInt64(be32(8 * i + 4)))
        }
    }

    private func be32(_ o: Int) -> UInt32 {
        UInt32(data[o]) << 24 | UInt32(data[o + 1]) << 16 | UInt32(data[o + 2]) << 8 | UInt32(data[o + 3])
    }

    /// All values as floats times `scale`.
    public func floats(scale: Float = 1) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { b, n in
            copyFloats(into: b, scale: scale)
            n = count
        }
    }

    /// Write all values times `scale` into `out` (at least `count` elements).
    public func copyFloats(into out: UnsafeMutableBufferPointer<Float>, scale: Float = 1) {
        for i in 0..<count { out[i] = Float(value(i)) * scale }
    }

    /// All values as int32 (throws for floating-point files).
    public func int32s() throws -> [Int32] {
        try [Int32](unsafeUninitializedCapacity: count) { b, n in
            try copyInt32s(into: b)
            n = count
        }
    }

    /// Write all values as int32 into `out` (at least `count` elements); throws for
    /// floating-point files.
    public func copyInt32s(into out: UnsafeMutableBufferPointer<Int32>) throws {
        guard element != .f32 && element != .f64 else { throw GatedNetError.unsupported("idx: floating-point data read as labels") }
        for i in 0..<count { out[i] = Int32(value(i)) }
    }
}

/// The header of an IDX array: 00 00 type ndim, then ndim big-endian u32 dimensions.
struct IDXHeader {
    let element: IDXArray.Element
    let dims: [Int]
    /// Number of values (product of dims) and bytes of the body.
    let count: Int
    let bodyBytes: Int
    var headerSize: Int { 4 + 4 * dims.count }

    /// Parse the header at the start of `bytes` (which may hold more); `.corrupt` if malformed.
    init(_ bytes: [UInt8], name: String) throws {
        guard bytes.count >= 4, bytes[0] == 0, bytes[1] == 0, let e = IDXArray.Element(rawValue: bytes[2]) else {
            throw GatedNetError.corrupt("idx: \(name) has no IDX magic (00 00 type ndim)")
        }
        let ndim = Int(bytes[3])
        guard (1...8).contains(ndim), bytes.count >= 4 + 4 * ndim else {
            throw GatedNetError.corrupt("idx: \(name) has \(ndim) dimensions or a truncated header")
        }
        var dims: [Int] = []
        var total = 1
        for i in 0..<ndim {
            let o = 4 + 4 * i
            let d = Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3])
            dims.append(d)
            let (t, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow else { throw GatedNetError.corrupt("idx: \(name) dimensions \(dims) overflow") }
            total = t
        }
        let (body, overflow) = total.multipliedReportingOverflow(by: e.size)
        guard !overflow else { throw GatedNetError.corrupt("idx: \(name) dimensions \(dims) overflow") }
        element = e
        self.dims = dims
        count = total
        bodyBytes = body
    }
}

/// An IDX file open through zlib (which reads gzip and passes plain files through), on a
/// descriptor of a checked regular file.
private final class IDXFile {
    let raw: ReadableFile
    let gz: gzFile
    var path: FilePath { raw.path }

    init(_ path: FilePath) throws {
        raw = try ReadableFile(path, what: "idx")
        let fd = dup(raw.descriptor)  // gzclose closes this copy; `raw` closes its own
        guard fd >= 0, let g = gzdopen(fd, "rb") else {
            if fd >= 0 { close(fd) }
            throw GatedNetError.io("idx: cannot open \(path): \(osReason())")
        }
        gz = g
    }

    deinit { gzclose(gz) }

    /// Valid after the first read: true when the file is not gzip-compressed.
    var isPlain: Bool { gzdirect(gz) == 1 }

    /// Read and check the header (magic, element type, dimensions).
    func header() throws -> IDXHeader {
        var bytes = [UInt8](repeating: 0, count: 4)
        let n = try read(into: &bytes, at: 0, count: 4)
        guard n == 4, bytes[0] == 0, bytes[1] == 0, IDXArray.Element(rawValue: bytes[2]) != nil, (1...8).contains(Int(bytes[3])) else {
            throw GatedNetError.corrupt("idx: \(path) has no IDX magic (00 00 type ndim)")
        }
        let ndim = Int(bytes[3])
        bytes += [UInt8](repeating: 0, count: 4 * ndim)
        guard try read(into: &bytes, at: 4, count: 4 * ndim) == 4 * ndim else {
            throw GatedNetError.corrupt("idx: \(path) has a truncated header")
        }
        return try IDXHeader(bytes, name: path.description)
    }

    /// The body the header announces, and nothing more: memory grows only as decompressed bytes
    /// arrive, and a stream that holds more is refused after one extra byte.
    func body(_ h: IDXHeader) throws -> [UInt8] {
        if isPlain && raw.size != h.headerSize + h.bodyBytes {
            throw GatedNetError.corrupt("idx: \(path) holds \(raw.size - h.headerSize) data bytes, dimensions \(h.dims) need \(h.bodyBytes)")
        }
        var data: [UInt8] = []
        while data.count < h.bodyBytes {
            let done = data.count
            let step = min(h.bodyBytes - done, max(1 << 20, done), 1 << 30)
            data.append(contentsOf: repeatElement(0, count: step))
            let n = try read(into: &data, at: done, count: step)
            guard n == step else {
                throw GatedNetError.corrupt("idx: \(path) ends after \(done + n) data bytes, dimensions \(h.dims) need \(h.bodyBytes)")
            }
        }
        var extra: [UInt8] = [0]
        guard try read(into: &extra, at: 0, count: 1) == 0 else {
            throw GatedNetError.corrupt("idx: \(path) holds more data than its dimensions \(h.dims) announce")
        }
        return data
    }

    /// gzread into `buffer[offset ..< offset + count]`; the number of bytes read (fewer only at
    /// the end of the data). A malformed or cut gzip stream is `.corrupt`.
    private func read(into buffer: inout [UInt8], at offset: Int, count: Int) throws -> Int {
        let n = buffer.withUnsafeMutableBytes { gzread(gz, $0.baseAddress! + offset, UInt32(count)) }
        if n < 0 { throw GatedNetError.corrupt("idx: \(path) is not a valid gzip or IDX file") }
        if n < count {
            // End of input: Z_BUF_ERROR means the gzip stream was cut short (its check unread).
            var status: Int32 = Z_OK
            _ = gzerror(gz, &status)
            guard status == Z_OK else { throw GatedNetError.corrupt("idx: \(path) is a truncated gzip file") }
        }
        return Int(n)
    }
}

/// Replace round(γ·n) labels, at seeded positions drawn without replacement, by uniform random
/// labels in [0, classes) (possibly equal to the old one). Returns how many actually changed.
public func corruptLabels(_ labels: inout [Int32], classes: Int, gamma: Double, seed: UInt64) throws -> Int {
    try labels.withUnsafeMutableBufferPointer { try corruptLabels($0, classes: classes, gamma: gamma, seed: seed) }
}

public func corruptLabels(_ labels: UnsafeMutableBufferPointer<Int32>, classes: Int, gamma: Double, seed: UInt64) throws -> Int {
    guard classes >= 1 else { throw GatedNetError.invalidArgument("classes: got \(classes), need >= 1") }
    guard gamma.isFinite && gamma >= 0 && gamma <= 1 else { throw GatedNetError.invalidArgument("gamma: got \(gamma), need 0 <= gamma <= 1") }
    let n = labels.count
    let m = Int((gamma * Double(n)).rounded())
    // The draw permutes n indices: their workspace is allocated fallibly, before any other work.
    let index = try allocateIndices(m > 0 ? n : 0)
    defer { free(index.baseAddress) }
    for (i, y) in labels.enumerated() where y < 0 || Int(y) >= classes {
        throw GatedNetError.labelRange("labels[\(i)]: got \(y), need 0 ... \(classes - 1)")
    }
    guard m > 0 else { return 0 }
    for i in 0..<n { index[i] = i }
    var rng = SeededGenerator(seed: seed)
    var changed = 0
    for i in 0..<m {  // partial Fisher–Yates: the first m positions of a random permutation
        let j = i + rng.nextInt(below: n - i)
        index.swapAt(i, j)
        let pos = index[i]
        let new = Int32(rng.nextInt(below: classes))
        if new != labels[pos] { changed += 1 }
        labels[pos] = new
    }
    return changed
}

/// `count` uninitialised Ints, or `.outOfMemory` (never a trap) when memory does not allow.
private func allocateIndices(_ count: Int) throws -> UnsafeMutableBufferPointer<Int> {
    let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<Int>.stride)
    let what = "labels: drawing positions among n = \(count) labels needs \(count) x 8 bytes of index workspace"
    guard !overflow else { throw GatedNetError.outOfMemory("\(what): the size overflows") }
    let raw = try allocateBytes(bytes, for: what)
    return UnsafeMutableBufferPointer(start: raw.baseAddress!.bindMemory(to: Int.self, capacity: count), count: count)
}
