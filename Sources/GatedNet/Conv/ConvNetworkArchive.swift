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
        let flags = ArchiveFraming.writeState(net, includeOptimizer: includeOptimizer, into: &p)
        return ArchiveFraming.frame(magic: magic, version: formatVersion, flags: flags, payload: p.bytes)
    }

    /// Rebuild a network; throws `.corrupt` for anything that is not an intact archive.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> ConvNetwork {
        var r = try ArchiveFraming.open(bytes, magic: magic, version: formatVersion, what: "conv network file")
        let regime = try r.enumValue(Regime.self, "regime")
        let c = try r.count(max: 1 << 24), h = try r.count(max: 1 << 24), w = try r.count(max: 1 << 24)
        let nLayers = try r.count(max: 256)
        var layers: [ConvLayerSpec] = []
        for _ in 0..<nLayers {
            var l = ConvLayerSpec(kind: try r.enumValue(ConvLayerKind.self, "layer kind"))
            l.outChannels = try r.count(max: 1 << 24)
            l.kernel = try r.count(max: 1 << 24)
            l.stride = try r.count(max: 1 << 24)
            l.padding = try r.enumValue(ConvPadding.self, "padding")
            l.bias = try r.u8() != 0
            l.block = try r.count(max: Int(Int32.max))
            layers.append(l)
        }
        var spec = ConvNetworkSpec(regime: regime, channels: c, height: h, width: w, layers: layers)
        spec.activation = try r.enumValue(Activation.self, "activation")
        spec.gateKind = try r.enumValue(GateKind.self, "gate kind")
        spec.beta = try r.f32()
        spec.valueInput = try r.enumValue(ValueInput.self, "value input")
        spec.wiring = try r.enumValue(GateWiring.self, "wiring")
        if try r.u8() != 0 {
            let n = try r.count(max: 256)
            spec.permutation = try (0..<n).map { _ in try r.count(max: 256) }
        }
        spec.wiringSeed = try r.u64()
        spec.featureFrozen = try r.u8() != 0
        spec.initKind = try r.enumValue(InitKind.self, "init kind")
        spec.initScale = try r.f32()
        spec.seed = try r.u64()
        let net: ConvNetwork
        do {
            let plan = try spec.validatedPlan()
            // The weights must fit in the file before the network is allocated.
            let params = plan.params.reduce(0) { $0 + $1.fanOut * ($1.fanIn + ($1.bias ? 1 : 0)) }
            guard params <= bytes.count / 4 else { throw r.corrupt("architecture does not match the stored weights") }
            net = try ConvNetwork(spec: spec, gateSource: nil, weightsFollow: true)
        } catch let e as GatedNetError {
            if case .corrupt = e { throw e }
            throw r.corrupt("invalid architecture (\(e.message))")
        }
        try ArchiveFraming.readState(into: net, from: &r)
        return net
    }

    /// As `NetworkArchive.save`: atomic replacement.
    public static func save(_ net: ConvNetwork, to path: FilePath, includeOptimizer: Bool) throws {
        try ArchiveFraming.writeAtomically(encode(net, includeOptimizer: includeOptimizer), to: path)
    }

    /// As `NetworkArchive.load`: header first, then only the bytes it announces.
    public static func load(from path: FilePath) throws -> ConvNetwork {
        try ArchiveFraming.load(path, magic: magic, version: formatVersion, what: "conv network file", decode: decode)
    }

    public static func save(_ net: ConvNetwork, to path: String, includeOptimizer: Bool) throws {
        try save(net, to: FilePath(path), includeOptimizer: includeOptimizer)
    }

    public static func load(from path: String) throws -> ConvNetwork { try load(from: FilePath(path)) }
}
