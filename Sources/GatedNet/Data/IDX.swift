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

    /// Read and decompress `path` (zlib detects gzip; plain files pass through).
    public init(path: String) throws {
        guard let f = gzopen(path, "rb") else { throw GatedNetError.io("idx: cannot open \(path)") }
        defer { gzclose(f) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { gzread(f, $0.baseAddress, UInt32($0.count)) }
            if n < 0 { throw GatedNetError.corrupt("idx: \(path) is not a valid gzip or IDX file") }
            if n == 0 {
                // End of input: Z_BUF_ERROR means the gzip stream was cut short (its check unread).
                var status: Int32 = Z_OK
                _ = gzerror(f, &status)
                guard status == Z_OK else { throw GatedNetError.corrupt("idx: \(path) is a truncated gzip file") }
                break
            }
            bytes.append(contentsOf: chunk[0..<Int(n)])
        }
        try self.init(bytes: bytes, name: path)
    }

    /// Dimensions from the header alone (decompresses only its first bytes).
    public static func dims(path: String) throws -> [Int] {
        guard let f = gzopen(path, "rb") else { throw GatedNetError.io("idx: cannot open \(path)") }
        defer { gzclose(f) }
        var header = [UInt8](repeating: 0, count: 4 + 4 * 8)
        let n = header.withUnsafeMutableBytes { gzread(f, $0.baseAddress, 4) }
        guard n == 4, header[0] == 0, header[1] == 0, Element(rawValue: header[2]) != nil, (1...8).contains(Int(header[3])) else {
            throw GatedNetError.corrupt("idx: \(path) has no IDX magic (00 00 type ndim)")
        }
        let ndim = Int(header[3])
        let m = header.withUnsafeMutableBytes { gzread(f, $0.baseAddress! + 4, UInt32(4 * ndim)) }
        guard m == 4 * ndim else { throw GatedNetError.corrupt("idx: \(path) has a truncated header") }
        let dims = (0..<ndim).map { i in
            let o = 4 + 4 * i
            return Int(header[o]) << 24 | Int(header[o + 1]) << 16 | Int(header[o + 2]) << 8 | Int(header[o + 3])
        }
        // Check the body length without decompressing: the file size for plain files, the
        // gzip trailer's ISIZE (uncompressed size mod 2^32) for compressed ones.
        var total = 4 + 4 * ndim
        var body = Element(rawValue: header[2])!.size
        for d in dims {
            let (t, overflow) = body.multipliedReportingOverflow(by: d)
            guard !overflow else { throw GatedNetError.corrupt("idx: \(path) dimensions \(dims) overflow") }
            body = t
        }
        total += body
        let plain = gzdirect(f) == 1
        guard let raw = fopen(path, "rb") else { throw GatedNetError.io("idx: cannot open \(path)") }
        defer { fclose(raw) }
        if plain {
            fseek(raw, 0, SEEK_END)
            guard ftell(raw) == total else {
                throw GatedNetError.corrupt("idx: \(path) holds \(ftell(raw)) bytes, dimensions \(dims) need \(total)")
            }
        } else {
            var trailer = [UInt8](repeating: 0, count: 4)
            guard fseek(raw, -4, SEEK_END) == 0, fread(&trailer, 1, 4, raw) == 4 else {
                throw GatedNetError.corrupt("idx: \(path) is a truncated gzip file")
            }
            let isize = UInt32(trailer[0]) | UInt32(trailer[1]) << 8 | UInt32(trailer[2]) << 16 | UInt32(trailer[3]) << 24
            guard isize == UInt32(truncatingIfNeeded: total) else {
                throw GatedNetError.corrupt("idx: \(path) decompresses to \(isize) bytes (mod 2^32), dimensions \(dims) need \(total)")
            }
        }
        return dims
    }

    public init(bytes: [UInt8], name: String = "idx") throws {
        guard bytes.count >= 4, bytes[0] == 0, bytes[1] == 0, let e = Element(rawValue: bytes[2]) else {
            throw GatedNetError.corrupt("idx: \(name) has no IDX magic (00 00 type ndim)")
        }
        let ndim = Int(bytes[3])
        guard (1...8).contains(ndim), bytes.count >= 4 + 4 * ndim else {
            throw GatedNetError.corrupt("idx: \(name) has \(ndim) dimensions or a truncated header")
        }
        var dims: [Int] = []
        var total = e.size
        for i in 0..<ndim {
            let o = 4 + 4 * i
            let d = Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3])
            dims.append(d)
            let (t, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow else { throw GatedNetError.corrupt("idx: \(name) dimensions \(dims) overflow") }
            total = t
        }
        let header = 4 + 4 * ndim
        guard bytes.count - header == total else {
            throw GatedNetError.corrupt("idx: \(name) holds \(bytes.count - header) data bytes, dimensions \(dims) need \(total)")
        }
        self.dims = dims
        element = e
        data = Array(bytes[header...])
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
        (0..<count).map { Float(value($0)) * scale }
    }

    /// All values as int32 (throws for floating-point files).
    public func int32s() throws -> [Int32] {
        guard element != .f32 && element != .f64 else { throw GatedNetError.unsupported("idx: floating-point data read as labels") }
        return (0..<count).map { Int32(value($0)) }
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
    for (i, y) in labels.enumerated() where y < 0 || Int(y) >= classes {
        throw GatedNetError.labelRange("labels[\(i)]: got \(y), need 0 ... \(classes - 1)")
    }
    let n = labels.count
    let m = Int((gamma * Double(n)).rounded())
    var rng = SeededGenerator(seed: seed)
    var index = Array(0..<n)
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
