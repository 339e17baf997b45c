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
        out.bytes.append(contentsOf: magic)
        out.u32(version)
        out.u32(flags)
        out.u64(UInt64(payload.count))
        out.bytes.append(contentsOf: payload)
        out.u32(crc32Of(out.bytes))
        return out.bytes
    }

    /// Check magic, version, length and checksum; a reader positioned at the payload.
    /// `what` names the file kind in messages ("network file").
    static func open(_ bytes: UnsafeRawBufferPointer, magic: [UInt8], version: UInt32, what: String) throws -> ByteReader {
        func corrupt(_ m: String) -> GatedNetError { .corrupt("\(what): \(m)") }
        guard bytes.count >= 28 else { throw corrupt("\(bytes.count) bytes is too short to be a gatednet \(what)") }
        guard Array(bytes[0..<8]) == magic else { throw corrupt("not a gatednet \(what) (bad magic)") }
        var r = ByteReader(bytes: bytes, offset: 8, what: what)
        let v = try r.u32()
        guard v == version else { throw corrupt("format version \(v), this library reads \(version)") }
        _ = try r.u32()
        let length = try r.u64()
        guard length == UInt64(bytes.count - 28) else {
            throw corrupt("payload length \(length) but \(bytes.count - 28) bytes present (truncated?)")
        }
        let stored = UInt32(bytes[bytes.count - 4]) | UInt32(bytes[bytes.count - 3]) << 8
            | UInt32(bytes[bytes.count - 2]) << 16 | UInt32(bytes[bytes.count - 1]) << 24
        guard stored == crc32Of(UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 4)])) else {
            throw corrupt("checksum mismatch (corrupted)")
        }
        return r
    }

    /// Append the training state; returns the flags word (optimizer state present or not).
    static func writeState<N: TrainableNetwork>(_ net: N, includeOptimizer: Bool, into p: inout ByteWriter) -> UInt32 {
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
        for t in tensors { try r.floats(into: t.buffer) }
        if try r.u8() != 0 {
            let state = OptimizerState(kind: try r.enumValue(OptimizerKind.self, "optimizer"))
            state.step = try r.count(max: Int.max)
            for which in 0..<2 {
                let present = try r.count(max: tensors.count)
                for _ in 0..<present {
                    let index = try r.count(max: tensors.count - 1)
                    let buffer = FloatBuffer(count: tensors[index].buffer.count)
                    try r.floats(into: buffer)
                    if which == 0 { state.first[tensors[index].key] = buffer } else { state.second[tensors[index].key] = buffer }
                }
            }
            net.optimizerState = state
        }
        guard r.offset == r.bytes.count - 4 else { throw r.corrupt("trailing bytes") }
    }

    /// Write atomically: a temporary file in the same directory, fsync, then rename.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let tmp = path + ".tmp.\(getpid())"
        guard let f = fopen(tmp, "wb") else { throw GatedNetError.io("save: cannot create \(tmp): \(String(cString: strerror(errno)))") }
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        let flushed = fflush(f) == 0 && fsync(fileno(f)) == 0
        let closed = fclose(f) == 0
        guard written == bytes.count && flushed && closed else {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw GatedNetError.io("save: writing \(tmp) failed: \(reason)")
        }
        guard rename(tmp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw GatedNetError.io("save: cannot rename to \(path): \(reason)")
        }
    }
}
