import CGatedNetABI
import GatedNet
import Glibc

private func regime(_ r: gn_regime) throws -> Regime {
    guard let v = Regime(rawValue: Int(r.rawValue)) else { throw GatedNetError.invalidArgument("regime: got \(r.rawValue), need 0 ... 7") }
    return v
}

private func enumValue<T: RawRepresentable>(_ raw: UInt32, _ name: String) throws -> T where T.RawValue == Int {
    guard let v = T(rawValue: Int(raw)) else { throw GatedNetError.invalidArgument("\(name): unknown value \(raw)") }
    return v
}

@_cdecl("gn_network_spec_init")
public func gn_network_spec_init(_ spec: UnsafeMutablePointer<gn_network_spec>?, _ r: gn_regime, _ inputSize: Int64,
                                 _ nHidden: Int64, _ widths: UnsafePointer<Int64>?, _ outputSize: Int64) -> gn_status {
    guarded("gn_network_spec_init") {
        let s = try required(spec, "spec")
        let reg = try regime(r)
        let preset = NetworkSpec(regime: reg, inputSize: 0, hiddenWidths: [], outputSize: 0)
        var c = gn_network_spec()
        c.struct_size = MemoryLayout<gn_network_spec>.size
        c.regime = r
        c.input_size = inputSize
        c.n_hidden = nHidden
        c.hidden_widths = widths
        c.output_size = outputSize
        c.feature_activation = gn_activation(UInt32(preset.activation.rawValue))
        c.gate_kind = gn_gate_kind(UInt32(preset.gateKind.rawValue))
        c.beta = preset.beta
        c.value_input = gn_value_input(UInt32(preset.valueInput.rawValue))
        c.permutation = nil
        c.bias = preset.bias ? 1 : 0
        c.feature_head = preset.featureHead ? 1 : 0
        c.feature_frozen = 0
        c.`init` = gn_init_kind(UInt32(preset.initKind.rawValue))
        c.init_scale = preset.initScale
        c.seed = 0
        c.gate_source = nil
        s.pointee = c
    }
}

/// Translate a C spec into the engine's, validating every pointer and count.
private func engineSpec(_ c: gn_network_spec) throws -> NetworkSpec {
    try checkStructSize(c.struct_size, expected: MemoryLayout<gn_network_spec>.size, "spec")
    let reg = try regime(c.regime)
    let hidden = try count(c.n_hidden, "spec->n_hidden")
    guard hidden <= Int(GN_MAX_HIDDEN) else { throw GatedNetError.invalidArgument("spec->n_hidden: got \(hidden), need <= \(GN_MAX_HIDDEN)") }
    let w = try required(c.hidden_widths, "spec->hidden_widths")
    var widths: [Int] = []
    for l in 0..<hidden { widths.append(try count(w[l], "spec->hidden_widths[\(l)]", max: .max)) }
    var s = NetworkSpec(regime: reg, inputSize: try count(c.input_size, "spec->input_size", max: .max), hiddenWidths: widths,
                        outputSize: try count(c.output_size, "spec->output_size", max: .max), seed: c.seed)
    s.activation = try enumValue(c.feature_activation.rawValue, "spec->feature_activation")
    s.gateKind = try enumValue(c.gate_kind.rawValue, "spec->gate_kind")
    s.beta = c.beta
    s.valueInput = try enumValue(c.value_input.rawValue, "spec->value_input")
    if let p = c.permutation { s.permutation = try permutationArgument(p, count: hidden, "spec->permutation") }
    s.bias = c.bias != 0
    s.featureHead = c.feature_head != 0
    s.featureFrozen = c.feature_frozen != 0
    s.initKind = try enumValue(c.`init`.rawValue, "spec->init")
    s.initScale = c.init_scale
    return s
}

@_cdecl("gn_network_create")
public func gn_network_create(_ spec: UnsafePointer<gn_network_spec>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> gn_status {
    guarded("gn_network_create") {
        let c = try required(spec, "spec").pointee
        let o = try required(out, "out")
        let s = try engineSpec(c)
        let source = s.regime == .fixedLearnt ? try Handles.network(c.gate_source, "spec->gate_source") : nil
        o.pointee = Handles.register(try GatedNetwork(spec: s, gateSource: source))
    }
}

@_cdecl("gn_network_free")
public func gn_network_free(_ net: OpaquePointer?) {
    Handles.release(net, as: NetworkBox.self)
}

@_cdecl("gn_network_clone")
public func gn_network_clone(_ net: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> gn_status {
    guarded("gn_network_clone") {
        let n = try Handles.network(net, "net")
        let o = try required(out, "out")
        o.pointee = Handles.register(GatedNetwork(copying: n))
    }
}

@_cdecl("gn_network_get_info")
public func gn_network_get_info(_ net: OpaquePointer?, _ info: UnsafeMutablePointer<gn_network_info>?) -> gn_status {
    guarded("gn_network_get_info") {
        let n = try Handles.network(net, "net")
        let i = try required(info, "info")
        try checkStructSize(i.pointee.struct_size, expected: MemoryLayout<gn_network_info>.size, "info")
        var c = gn_network_info()
        c.struct_size = MemoryLayout<gn_network_info>.size
        c.regime = gn_regime(UInt32(n.spec.regime.rawValue))
        c.input_size = Int64(n.inputSize)
        c.n_hidden = Int64(n.hiddenCount)
        c.output_size = Int64(n.outputSize)
        c.feature_activation = gn_activation(UInt32(n.spec.activation.rawValue))
        c.gate_kind = gn_gate_kind(UInt32(n.spec.gateKind.rawValue))
        c.beta = n.spec.beta
        c.value_input = gn_value_input(UInt32(n.spec.valueInput.rawValue))
        c.bias = n.spec.bias ? 1 : 0
        c.feature_head = n.featureHead != nil ? 1 : 0
        c.tied = n.tied ? 1 : 0
        c.feature_frozen = n.featureFrozen ? 1 : 0
        c.value_frozen = n.valueFrozen ? 1 : 0
        c.parameter_count = Int64(n.parameterCount)
        c.epochs_trained = Int64(n.epochsTrained)
        i.pointee = c
    }
}

@_cdecl("gn_network_hidden_width")
public func gn_network_hidden_width(_ net: OpaquePointer?, _ layer: Int64, _ width: UnsafeMutablePointer<Int64>?) -> gn_status {
    guarded("gn_network_hidden_width") {
        let n = try Handles.network(net, "net")
        let w = try required(width, "width")
        guard layer >= 0 && layer < Int64(n.hiddenCount) else {
            throw GatedNetError.invalidArgument("layer: got \(layer), need 0 ... \(n.hiddenCount - 1)")
        }
        w.pointee = Int64(n.hiddenWidths[Int(layer)])
    }
}

@_cdecl("gn_network_permutation")
public func gn_network_permutation(_ net: OpaquePointer?, _ perm: UnsafeMutablePointer<Int64>?, _ cap: Int64) -> gn_status {
    guarded("gn_network_permutation") {
        let n = try Handles.network(net, "net")
        let p = try required(perm, "perm")
        try capacity(cap, needs: n.hiddenCount, "perm_capacity")
        for l in 0..<n.hiddenCount { p[l] = Int64(n.spec.gateLayer(l)) }
    }
}

@_cdecl("gn_network_describe")
public func gn_network_describe(_ net: OpaquePointer?, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int,
                                _ needed: UnsafeMutablePointer<Int>?) -> gn_status {
    guarded("gn_network_describe") {
        try writeCString(try Handles.network(net, "net").summary, buf, cap, needed)
    }
}


@_cdecl("gn_network_weight_shape")
public func gn_network_weight_shape(_ net: OpaquePointer?, _ p: gn_part, _ layer: Int64,
                                    _ rows: UnsafeMutablePointer<Int64>?, _ cols: UnsafeMutablePointer<Int64>?) -> gn_status {
    guarded("gn_network_weight_shape") {
        let n = try Handles.network(net, "net")
        let r = try required(rows, "rows"), c = try required(cols, "cols")
        let l = try n.layer(try part(p), Int(clamping: layer))
        r.pointee = Int64(l.fanOut); c.pointee = Int64(l.fanIn)
    }
}

@_cdecl("gn_network_get_weights")
public func gn_network_get_weights(_ net: OpaquePointer?, _ p: gn_part, _ layer: Int64,
                                   _ out: UnsafeMutablePointer<Float>?, _ cap: Int64) -> gn_status {
    guarded("gn_network_get_weights") {
        let n = try Handles.network(net, "net")
        let l = try n.layer(try part(p), Int(clamping: layer))
        let o = try required(out, "out")
        try capacity(cap, needs: l.weight.count, "capacity")
        o.update(from: l.weight.pointer, count: l.weight.count)
    }
}

@_cdecl("gn_network_set_weights")
public func gn_network_set_weights(_ net: OpaquePointer?, _ p: gn_part, _ layer: Int64,
                                   _ w: UnsafePointer<Float>?, _ cnt: Int64) -> gn_status {
    guarded("gn_network_set_weights") {
        let n = try Handles.network(net, "net")
        let pt = try part(p)
        let l = try n.layer(pt, Int(clamping: layer))
        let src = try required(w, "w")
        guard cnt == Int64(l.weight.count) else {
            throw GatedNetError.shape("count: got \(cnt), layer \(layer) has \(l.fanOut) x \(l.fanIn) = \(l.weight.count) weights")
        }
        try requireFiniteParameters(src, count: l.weight.count, "w")
        try n.setWeights(pt, Int(layer), from: src)
    }
}

@_cdecl("gn_network_get_bias")
public func gn_network_get_bias(_ net: OpaquePointer?, _ p: gn_part, _ layer: Int64,
                                _ out: UnsafeMutablePointer<Float>?, _ cap: Int64) -> gn_status {
    guarded("gn_network_get_bias") {
        let n = try Handles.network(net, "net")
        let l = try n.layer(try part(p), Int(clamping: layer))
        guard let b = l.bias else { throw GatedNetError.unsupported("bias: this network has no biases") }
        let o = try required(out, "out")
        try capacity(cap, needs: b.count, "capacity")
        o.update(from: b.pointer, count: b.count)
    }
}

@_cdecl("gn_network_set_frozen")
public func gn_network_set_frozen(_ net: OpaquePointer?, _ p: gn_part, _ frozen: Int32) -> gn_status {
    guarded("gn_network_set_frozen") {
        let n = try Handles.network(net, "net")
        n.setFrozen(try part(p), frozen != 0)
    }
}

@_cdecl("gn_network_copy_feature_weights")
public func gn_network_copy_feature_weights(_ dst: OpaquePointer?, _ src: OpaquePointer?, _ freeze: Int32) -> gn_status {
    guarded("gn_network_copy_feature_weights") {
        let d = try Handles.network(dst, "dst")
        let s = try Handles.network(src, "src")
        try d.copyFeatureWeights(from: s, freeze: freeze != 0, sourceName: "src")
    }
}
