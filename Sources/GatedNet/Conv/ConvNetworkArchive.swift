import Glibc

/// The binary file format of a saved conv network (little-endian), framed like
/// `NetworkArchive` with its own magic:
///
///     "GNCONVNT"  u32 format version  u32 flags  u64 payload length  payload  u32 CRC-32
///
/// The payload holds the spec (input shape, layer list, regime fields), the state flags,
/// every parameter tensor (count + floats, in `parameterTensors` order) and optionally the
/// optimizer moments. Every length is checked against the bytes left before allocating.
public enum ConvNetworkArchive {
    static let magic: [UInt8] = Array("GNCONVNT".utf8)
    public static let formatVersion: UInt32 = 1

    public static func encode(_ net: ConvNetwork, includeOptimizer: Bool) -> [UInt8] {
        var p = ByteWriter()
        let s = net.spec
        p.u32(UInt32(s.regime.rawValue))
        p.i64(s.inputChannels); p.i64(s.inputHeight); p.i64(s.inputWidth)
        p.i64(s.layers.count)
        for l in s.layers {
            p.u32(UInt32(l.kind.rawValue))
            p.i64(l.outChannels); p.i64(l.kernel); p.i64(l.stride)
            p.u32(UInt32(l.padding.rawValue))
            p.u8(l.bias ? 1 : 0)
            p.i64(l.block)
        }
        p.u32(UInt32(s.activation.rawValue))
        p.u32(UInt32(s.gateKind.rawValue))
        p.f32(s.beta)
        p.u32(UInt32(s.valueInput.rawValue))
        p.u32(UInt32(s.wiring.rawValue))
        p.u8(s.permutation == nil ? 0 : 1)
        if let perm = s.permutation { p.i64(perm.count); for g in perm { p.i64(g) } }
        p.u64(s.wiringSeed)
        p.u8(s.featureFrozen ? 1 : 0)
        p.u32(UInt32(s.initKind.rawValue))
        p.f32(s.initScale)
        p.u64(s.seed)
        p.u8(net.featureFrozen ? 1 : 0)
        p.u8(net.valueFrozen ? 1 : 0)
        p.i64(net.epochsTrained)
        let tensors = net.parameterTensors
        p.i64(tensors.count)
        for t in tensors { p.floats(t.buffer) }
        let opt = includeOptimizer ? net.optimizerState : nil
        p.u8(opt == nil ? 0 : 1)
        if let o = opt {
            p.u32(UInt32(o.kind.rawValue))
            p.i64(o.step)
            for table in [o.first, o.second] {
                let present = tensors.enumerated().filter { table[$0.element.key] != nil }
                p.i64(present.count)
                for (index, t) in present {
                    p.i64(index)
                    p.floats(table[t.key]!)
                }
            }
        }
        var out = ByteWriter()
        out.bytes.append(contentsOf: magic)
        out.u32(formatVersion)
        out.u32(opt == nil ? 0 : 1)
        out.u64(UInt64(p.bytes.count))
        out.bytes.append(contentsOf: p.bytes)
        out.u32(crc32Of(out.bytes))
        return out.bytes
    }

    /// Rebuild a network; throws `.corrupt` for anything that is not an intact archive.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> ConvNetwork {
        func corrupt(_ m: String) -> GatedNetError { .corrupt("conv network file: \(m)") }
        guard bytes.count >= 28 else { throw corrupt("\(bytes.count) bytes is too short") }
        guard Array(bytes[0..<8]) == magic else { throw corrupt("not a gatednet conv network (bad magic)") }
        var r = ByteReader(bytes: bytes, offset: 8)
        let version = try r.u32()
        guard version == formatVersion else { throw corrupt("format version \(version), this library reads \(formatVersion)") }
        _ = try r.u32()
        let length = try r.u64()
        guard length == UInt64(bytes.count - 28) else { throw corrupt("payload length \(length) but \(bytes.count - 28) bytes present (truncated?)") }
        let stored = UInt32(bytes[bytes.count - 4]) | UInt32(bytes[bytes.count - 3]) << 8
            | UInt32(bytes[bytes.count - 2]) << 16 | UInt32(bytes[bytes.count - 1]) << 24
        guard stored == crc32Of(UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 4)])) else {
            throw corrupt("checksum mismatch (corrupted)")
        }
        func enumValue<T: RawRepresentable>(_ t: T.Type, _ name: String) throws -> T where T.RawValue == Int {
            let raw = try r.u32()
            guard let v = T(rawValue: Int(raw)) else { throw corrupt("bad \(name) \(raw)") }
            return v
        }
        let regime = try enumValue(Regime.self, "regime")
        let c = try r.count(max: 1 << 24), h = try r.count(max: 1 << 24), w = try r.count(max: 1 << 24)
        let nLayers = try r.count(max: 256)
        var layers: [ConvLayerSpec] = []
        for _ in 0..<nLayers {
            var l = ConvLayerSpec(kind: try enumValue(ConvLayerKind.self, "layer kind"))
            l.outChannels = try r.count(max: 1 << 24)
            l.kernel = try r.count(max: 1 << 24)
            l.stride = try r.count(max: 1 << 24)
            l.padding = try enumValue(ConvPadding.self, "padding")
            l.bias = try r.u8() != 0
            l.block = try r.count(max: Int(Int32.max))
            layers.append(l)
        }
        var spec = ConvNetworkSpec(regime: regime, channels: c, height: h, width: w, layers: layers)
        spec.activation = try enumValue(Activation.self, "activation")
        spec.gateKind = try enumValue(GateKind.self, "gate kind")
        spec.beta = try r.f32()
        spec.valueInput = try enumValue(ValueInput.self, "value input")
        spec.wiring = try enumValue(GateWiring.self, "wiring")
        if try r.u8() != 0 {
            let n = try r.count(max: 256)
            spec.permutation = try (0..<n).map { _ in try r.count(max: 256) }
        }
        spec.wiringSeed = try r.u64()
        spec.featureFrozen = try r.u8() != 0
        spec.initKind = try enumValue(InitKind.self, "init kind")
        spec.initScale = try r.f32()
        spec.seed = try r.u64()
        let net: ConvNetwork
        do {
            let plan = try spec.validatedPlan()
            // The weights must fit in the file before the network is allocated.
            let params = plan.params.reduce(0) { $0 + $1.fanOut * ($1.fanIn + ($1.bias ? 1 : 0)) }
            guard params <= bytes.count / 4 else { throw corrupt("architecture does not match the stored weights") }
            net = try ConvNetwork(spec: spec, gateSource: nil, copyGates: false)
        } catch let e as GatedNetError {
            if case .corrupt = e { throw e }
            throw corrupt("invalid architecture (\(e.message))")
        }
        net.featureFrozen = try r.u8() != 0
        net.valueFrozen = try r.u8() != 0
        net.epochsTrained = try r.count(max: Int(Int32.max))
        let tensors = net.parameterTensors
        guard try r.count(max: 1 << 20) == tensors.count else { throw corrupt("tensor count does not match the architecture") }
        for t in tensors { try r.floats(into: t.buffer) }
        if try r.u8() != 0 {
            let state = OptimizerState(kind: try enumValue(OptimizerKind.self, "optimizer"))
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
        guard r.offset == bytes.count - 4 else { throw corrupt("trailing bytes") }
        return net
    }

    /// Write atomically: a temporary file in the same directory, fsync, then rename.
    public static func save(_ net: ConvNetwork, to path: String, includeOptimizer: Bool) throws {
        let bytes = encode(net, includeOptimizer: includeOptimizer)
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

    public static func load(from path: String) throws -> ConvNetwork {
        let bytes = try readFile(path)
        return try bytes.withUnsafeBytes { try decode($0) }
    }
}
