import CZlib
import Glibc

/// The binary file format of a saved network (little-endian):
///
///     "GATEDNET"  u32 format version  u32 flags  u64 payload length  payload  u32 CRC-32
///
/// The CRC covers every byte before it. The payload holds the spec, the state flags, every
/// parameter tensor (count + floats, in `parameterTensors` order) and optionally the
/// optimizer moments. Readers check every length against the bytes that remain before
/// allocating, so no file can make them trap or allocate without bound.
public enum NetworkArchive {
    static let magic: [UInt8] = Array("GATEDNET".utf8)
    public static let formatVersion: UInt32 = 1

    /// Serialise a network (with optimizer moments if `includeOptimizer`).
    public static func encode(_ net: GatedNetwork, includeOptimizer: Bool) -> [UInt8] {
        var p = ByteWriter()
        let s = net.spec
        p.u32(UInt32(s.regime.rawValue))
        p.i64(s.inputSize)
        p.i64(s.hiddenWidths.count)
        for w in s.hiddenWidths { p.i64(w) }
        p.i64(s.outputSize)
        p.u32(UInt32(s.activation.rawValue))
        p.u32(UInt32(s.gateKind.rawValue))
        p.f32(s.beta)
        p.u32(UInt32(s.valueInput.rawValue))
        p.u8(s.permutation == nil ? 0 : 1)
        for g in s.permutation ?? [] { p.i64(g) }
        p.u8(s.bias ? 1 : 0)
        p.u8(s.featureHead ? 1 : 0)
        p.u8(s.featureFrozen ? 1 : 0)
        p.u32(UInt32(s.initKind.rawValue))
        p.f32(s.initScale)
        p.u64(s.seed)
        let flags = ArchiveFraming.writeState(net, includeOptimizer: includeOptimizer, into: &p)
        return ArchiveFraming.frame(magic: magic, version: formatVersion, flags: flags, payload: p.bytes)
    }

    /// Rebuild a network; throws `.corrupt` for anything that is not an intact archive.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> GatedNetwork {
        var r = try ArchiveFraming.open(bytes, magic: magic, version: formatVersion, what: "network file")
        let regime = try r.enumValue(Regime.self, "regime")
        let inputSize = try r.count(max: 1 << 31)
        let hidden = try r.count(max: 64)
        var widths: [Int] = []
        for _ in 0..<hidden { widths.append(try r.count(max: 1 << 31)) }
        let outputSize = try r.count(max: 1 << 31)
        var spec = NetworkSpec(regime: regime, inputSize: inputSize, hiddenWidths: widths, outputSize: outputSize)
        spec.activation = try r.enumValue(Activation.self, "activation")
        spec.gateKind = try r.enumValue(GateKind.self, "gate kind")
        spec.beta = try r.f32()
        spec.valueInput = try r.enumValue(ValueInput.self, "value input")
        if try r.u8() != 0 {
            var p: [Int] = []
            for _ in 0..<hidden { p.append(try r.count(max: 64)) }
            spec.permutation = p
        }
        spec.bias = try r.u8() != 0
        spec.featureHead = try r.u8() != 0
        spec.featureFrozen = try r.u8() != 0
        spec.initKind = try r.enumValue(InitKind.self, "init kind")
        spec.initScale = try r.f32()
        spec.seed = try r.u64()
        // Guard against a spec whose weights could not fit in the file before allocating.
        guard let params = try? spec.parameterCount(), params <= bytes.count / 4 else {
            throw GatedNetError.corrupt("network file: architecture does not match the stored weights")
        }
        let result: GatedNetwork
        do {
            // The stored weights follow, so fixed_learnt needs no gate source here.
            result = try GatedNetwork(spec: spec, gateSource: nil, weightsFollow: true)
        } catch let e as GatedNetError {
            throw GatedNetError.corrupt("network file: invalid architecture (\(e.message))")
        }
        try ArchiveFraming.readState(into: result, from: &r)
        return result
    }

    /// Replace the file at `path` atomically: readers see the old file or the new one (`AtomicFile`).
    public static func save(_ net: GatedNetwork, to path: FilePath, includeOptimizer: Bool) throws {
        try ArchiveFraming.writeAtomically(encode(net, includeOptimizer: includeOptimizer), to: path)
    }

    /// Read a saved network: the header is checked before anything else is read, and only the
    /// bytes it announces are. `.io` for unreadable paths and non-regular files (FIFOs,
    /// devices), `.corrupt` for anything that is not an intact archive.
    public static func load(from path: FilePath) throws -> GatedNetwork {
        try ArchiveFraming.load(path, magic: magic, version: formatVersion, what: "network file", decode: decode)
    }

    public static func save(_ net: GatedNetwork, to path: String, includeOptimizer: Bool) throws {
        try save(net, to: FilePath(path), includeOptimizer: includeOptimizer)
    }

    public static func load(from path: String) throws -> GatedNetwork { try load(from: FilePath(path)) }
}

func crc32Of(_ bytes: [UInt8]) -> UInt32 {
    bytes.withUnsafeBytes { crc32Of($0) }
}

func crc32Of(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    var crc: UInt = crc32(0, nil, 0)
    var offset = 0
    while offset < bytes.count {
        let n = min(bytes.count - offset, 1 << 30)
        crc = crc32(crc, bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: UInt8.self), UInt32(n))
        offset += n
    }
    return UInt32(truncatingIfNeeded: crc)
}

struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func i64(_ v: Int) { u64(UInt64(bitPattern: Int64(v))) }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    /// A count, then the values little-endian: one copy on a little-endian host (a value at a
    /// time cost ~7 ms per MB of parameters, the whole of a network's to_bytes).
    mutating func floats(_ b: FloatBuffer) {
        i64(b.count)
        #if _endian(little)
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: b.pointer, count: b.count * MemoryLayout<Float>.size))
        #else
        for i in 0..<b.count { u32(b[i].bitPattern) }
        #endif
    }
}

struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var offset: Int
    /// The file kind named in messages ("network file").
    var what: String
    /// Where readable bytes end (by default before the trailing CRC-32).
    let end: Int

    init(bytes: UnsafeRawBufferPointer, offset: Int, what: String = "network file", end: Int? = nil) {
        self.bytes = bytes
        self.offset = offset
        self.what = what
        self.end = end ?? bytes.count - 4
    }

    func corrupt(_ m: String) -> GatedNetError { .corrupt("\(what): \(m)") }

    /// A u32 that must be the raw value of `T`.
    mutating func enumValue<T: RawRepresentable>(_: T.Type, _ name: String) throws -> T where T.RawValue == Int {
        let raw = try u32()
        guard let v = T(rawValue: Int(raw)) else { throw corrupt("bad \(name) \(raw)") }
        return v
    }

    mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, end - offset >= n else { throw corrupt("truncated at byte \(offset)") }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
    }
    mutating func u8() throws -> UInt8 { try take(1)[0] }
    mutating func u32() throws -> UInt32 {
        let b = try take(4)
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }
    mutating func u64() throws -> UInt64 {
        let lo = UInt64(try u32()), hi = UInt64(try u32())
        return lo | hi << 32
    }
    mutating func f32() throws -> Float { Float(bitPattern: try u32()) }
    /// A non-negative count no larger than `max`.
    mutating func count(max: Int) throws -> Int {
        let v = Int64(bitPattern: try u64())
        guard v >= 0 && v <= Int64(max) else { throw corrupt("count \(v) out of range at byte \(offset - 8)") }
        return Int(v)
    }
    mutating func floats(into buffer: FloatBuffer) throws {
        let n = try count(max: Int(Int32.max))
        guard n == buffer.count else { throw corrupt("tensor of \(n) values where \(buffer.count) are needed") }
        let raw = try take(n * 4)
        #if _endian(little)
        if n > 0 { UnsafeMutableRawPointer(buffer.pointer).copyMemory(from: raw.baseAddress!, byteCount: n * 4) }
        #else
        for i in 0..<n {
            let o = i * 4
            let bits = UInt32(raw[o]) | UInt32(raw[o + 1]) << 8 | UInt32(raw[o + 2]) << 16 | UInt32(raw[o + 3]) << 24
            buffer[i] = Float(bitPattern: bits)
        }
        #endif
    }
    /// `floats(into:)` under the rule for parameters (`requireFiniteParameters`): a NaN or ±Inf
    /// value makes the archive `.corrupt`, whatever its checksum says.
    mutating func finiteFloats(into buffer: FloatBuffer, _ name: String) throws {
        try floats(into: buffer)
        do {
            try requireFiniteParameters(buffer.pointer, count: buffer.count, name)
        } catch let e as GatedNetError {
            throw corrupt(e.message)
        }
    }
}
