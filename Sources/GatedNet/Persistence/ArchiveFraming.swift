import Glibc

/// What every gatednet file shares, whatever network it holds (little-endian):
///
///     magic (8 bytes)  u32 format version  u32 flags  u64 payload length  payload  u32 CRC-32
///
/// and, at the end of the payload, the training state: frozen flags, epochs, every parameter
/// tensor (count + floats, in `parameterTensors` order) and optionally the optimizer moments.
/// Readers check every length against the bytes that remain before allocating.
enum ArchiveFraming {
    static let optimizerStateFlag: UInt32 = 1

    static func frame(magic: [UInt8], version: UInt32, flags: UInt32, payload: [UInt8]) -> [UInt8] {
        var out = ByteWriter()
        out.bytes.reserveCapacity(payload.count + framingSize)
        out.bytes.append(contentsOf: magic)
        out.u32(version)
        out.u32(flags)
        out.u64(UInt64(payload.count))
        out.bytes.append(contentsOf: payload)
        out.u32(crc32Of(out.bytes))
        return out.bytes
    }

    /// Bytes before the payload: magic, version, flags, payload length.
    static let headerSize = 24
    /// Bytes of a file without payload: the header and the CRC-32.
    static let framingSize = 28

    /// Check the fixed header (the first bytes of a file of `totalSize` bytes; fewer than
    /// `headerSize` when the file is shorter): magic, version, and a payload length that
    /// accounts for exactly `totalSize` bytes. Loaders check this before reading the rest.
    static func checkHeader(_ header: UnsafeRawBufferPointer, totalSize: Int, magic: [UInt8], version: UInt32,
                            what: String) throws {
        func corrupt(_ m: String) -> GatedNetError { .corrupt("\(what): \(m)") }
        guard header.count >= 8, Array(header[0..<8]) == magic else {
            throw corrupt(totalSize < framingSize ? "\(totalSize) bytes is too short to be a gatednet \(what)"
                                                  : "not a gatednet \(what) (bad magic)")
        }
        guard totalSize >= framingSize, header.count >= headerSize else {
            throw corrupt("\(totalSize) bytes is too short to be a gatednet \(what)")
        }
        var r = ByteReader(bytes: header, offset: 8, what: what, end: headerSize)
        let v = try r.u32()
        guard v == version else { throw corrupt("format version \(v), this library reads \(version)") }
        _ = try r.u32()
        let length = try r.u64()
        guard length == UInt64(totalSize - framingSize) else {
            throw corrupt("payload length \(length) but \(totalSize - framingSize) bytes present (truncated?)")
        }
    }

    /// Check magic, version, length and checksum; a reader positioned at the payload.
    /// `what` names the file kind in messages ("network file").
    static func open(_ bytes: UnsafeRawBufferPointer, magic: [UInt8], version: UInt32, what: String) throws -> ByteReader {
        try checkHeader(UnsafeRawBufferPointer(rebasing: bytes.prefix(headerSize)), totalSize: bytes.count,
                        magic: magic, version: version, what: what)
        let stored = UInt32(bytes[bytes.count - 4]) | UInt32(bytes[bytes.count - 3]) << 8
            | UInt32(bytes[bytes.count - 2]) << 16 | UInt32(bytes[bytes.count - 1]) << 24
        guard stored == crc32Of(UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 4)])) else {
            throw GatedNetError.corrupt("\(what): checksum mismatch (corrupted)")
        }
        return ByteReader(bytes: bytes, offset: headerSize, what: what)
    }

    /// Decode the archive file at `path`: its header is read and checked first, then only the
    /// bytes it announces (exactly the file's size) are read. FIFOs and devices are refused.
    static func load<T>(_ path: FilePath, magic: [UInt8], version: UInt32, what: String,
                        decode: (UnsafeRawBufferPointer) throws -> T) throws -> T {
        let file = try ReadableFile(path, what: what)
        var header = [UInt8](repeating: 0, count: headerSize)
        let got = try header.withUnsafeMutableBytes { try file.read(into: $0, at: 0, what: what) }
        try header.withUnsafeBytes {
            try checkHeader(UnsafeRawBufferPointer(rebasing: $0.prefix(got)), totalSize: file.size,
                            magic: magic, version: version, what: what)
        }
        let buffer = try allocateBytes(file.size, for: what)
        defer { free(buffer.baseAddress) }
        let n = try file.read(into: buffer, at: 0, what: what)
        guard n == file.size else { throw GatedNetError.corrupt("\(what): \(path) shrank while being read (truncated)") }
        return try decode(UnsafeRawBufferPointer(buffer))
    }

    /// Append the training state; returns the flags word (optimizer state present or not).
    static func writeState<N: TrainableNetwork>(_ net: N, includeOptimizer: Bool, into p: inout ByteWriter) -> UInt32 {
        let floats = net.parameterTensors.reduce(0) { $0 + $1.buffer.count } * (includeOptimizer ? 3 : 1)
        p.bytes.reserveCapacity(p.bytes.count + 4 * floats + 4096)  // one allocation, not log2(size) regrowths
        p.u8(net.featureFrozen ? 1 : 0)
        p.u8(net.valueFrozen ? 1 : 0)
        p.i64(net.epochsTrained)
        let tensors = net.parameterTensors
        p.i64(tensors.count)
        for t in tensors { p.floats(t.buffer) }
        let opt = includeOptimizer ? net.optimizerState : nil
        p.u8(opt == nil ? 0 : 1)
        guard let o = opt else { return 0 }
        p.u32(UInt32(o.kind.rawValue))
        p.i64(o.step)
        for table in [o.first, o.second] {
            let present = tensors.enumerated().compactMap { i, t in table[t.key].map { (i, $0) } }
            p.i64(present.count)
            for (index, moments) in present {
                p.i64(index)
                p.floats(moments)
            }
        }
        return optimizerStateFlag
    }

    /// Read the training state into `net` (freshly built from the stored spec) and check that
    /// nothing follows it.
    static func readState<N: TrainableNetwork>(into net: N, from r: inout ByteReader) throws {
        net.featureFrozen = try r.u8() != 0
        net.valueFrozen = try r.u8() != 0
        net.epochsTrained = try r.count(max: Int(Int32.max))
        let tensors = net.parameterTensors
        guard try r.count(max: 1 << 20) == tensors.count else { throw r.corrupt("tensor count does not match the architecture") }
        for (i, t) in tensors.enumerated() { try r.finiteFloats(into: t.buffer, "parameter tensor \(i)") }
        if try r.u8() != 0 {
            let state = OptimizerState(kind: try r.enumValue(OptimizerKind.self, "optimizer"))
            state.step = try r.count(max: Int.max)
            for which in 0..<2 {
                let present = try r.count(max: tensors.count)
                for _ in 0..<present {
                    let index = try r.count(max: tensors.count - 1)
                    let buffer = FloatBuffer(count: tensors[index].buffer.count)
                    try r.finiteFloats(into: buffer, "optimizer moments of tensor \(index)")
                    if which == 0 { state.first[tensors[index].key] = buffer } else { state.second[tensors[index].key] = buffer }
                }
            }
            net.optimizerState = state
        }
        guard r.offset == r.end else { throw r.corrupt("trailing bytes") }
    }

    /// Replace `path` atomically (see `AtomicFile`).
    static func writeAtomically(_ bytes: [UInt8], to path: FilePath) throws {
        try AtomicFile.write(bytes, to: path)
    }
}
