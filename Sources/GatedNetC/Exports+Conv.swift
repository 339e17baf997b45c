import CGatedNetABI
import GatedNet
import Glibc

/// The box behind a `gn_conv_network` handle.
final class ConvNetworkBox {
    let network: ConvNetwork
    init(_ network: ConvNetwork) { self.network = network }
}

private func convNetwork(_ handle: OpaquePointer?, _ name: String) throws -> ConvNetwork {
    try Handles.lookup(handle, as: ConvNetworkBox.self, kind: "gn_conv_network", name).network
}

private func enumValue<T: RawRepresentable>(_ raw: UInt32, _ name: String) throws -> T where T.RawValue == Int {
    guard let v = T(rawValue: Int(raw)) else { throw GatedNetError.invalidArgument("\(name): unknown value \(raw)") }
    return v
}

private func regime(_ r: gn_regime) throws -> Regime {
    guard let v = Regime(rawValue: Int(r.rawValue)) else { throw GatedNetError.invalidArgument("regime: got \(r.rawValue), need 0 ... 7") }
    return v
}

/// A size field of a layer: >= 1 and small enough for any real network.
private func layerCount(_ v: Int64, _ name: String) throws -> Int {
    guard v >= 1 else { throw GatedNetError.invalidArgument("\(name): got \(v), need >= 1") }
    guard v <= 1 << 24 else { throw GatedNetError.invalidArgument("\(name): got \(v), need <= \(1 << 24)") }
    return Int(v)
}

private func engineLayer(_ c: gn_layer_spec, _ name: String) throws -> ConvLayerSpec {
    let kind: ConvLayerKind = try enumValue(c.kind.rawValue, "\(name).kind")
    var l = ConvLayerSpec(kind: kind)
    guard c.block >= 0 && c.block <= Int64(Int32.max) else {
        throw GatedNetError.invalidArgument("\(name).block: got \(c.block), need 0 ... \(Int32.max)")
    }
    l.block = Int(c.block)
    switch kind {
    case .conv:
        l.outChannels = try layerCount(c.units, "\(name).units")
        l.kernel = try layerCount(c.kernel, "\(name).kernel")
        l.stride = try layerCount(c.stride, "\(name).stride")
        l.padding = try enumValue(c.padding.rawValue, "\(name).padding")
        l.bias = c.bias != 0
    case .dense:
        l.outChannels = try layerCount(c.units, "\(name).units")
        l.bias = c.bias != 0
    default:
        break
    }
    return l
}

private func engineLayers(_ p: UnsafePointer<gn_layer_spec>?, count n: Int64, elementSize: Int, _ name: String) throws -> [ConvLayerSpec] {
    guard n >= 1 && n <= 256 else { throw GatedNetError.invalidArgument("\(name == "layers" ? "n_layers" : "spec->n_layers"): got \(n), need 1 ... 256") }
    let layers = try required(p, name)
    guard elementSize == MemoryLayout<gn_layer_spec>.stride else {
        throw GatedNetError.invalidArgument("spec->layer_struct_size: got \(elementSize), need \(MemoryLayout<gn_layer_spec>.stride) (initialise the spec with gn_conv_network_spec_init)")
    }
    return try (0..<Int(n)).map { try engineLayer(layers[$0], "\(name)[\($0)]") }
}

/// Translate a C spec (all but the layer list) into the engine's.
private func engineSpec(_ c: gn_conv_network_spec, layers: [ConvLayerSpec]) throws -> ConvNetworkSpec {
    try checkStructSize(c.struct_size, expected: MemoryLayout<gn_conv_network_spec>.size, "spec")
    let reg = try regime(c.regime)
    var s = ConvNetworkSpec(regime: reg, channels: try layerCount(c.in_channels, "spec->in_channels"),
                            height: try layerCount(c.in_height, "spec->in_height"),
                            width: try layerCount(c.in_width, "spec->in_width"), layers: layers, seed: c.seed)
    s.activation = try enumValue(c.feature_activation.rawValue, "spec->feature_activation")
    s.gateKind = try enumValue(c.gate_kind.rawValue, "spec->gate_kind")
    s.beta = c.beta
    s.valueInput = try enumValue(c.value_input.rawValue, "spec->value_input")
    s.wiring = try enumValue(c.wiring.rawValue, "spec->wiring")
    s.wiringSeed = c.wiring_seed
    s.featureFrozen = c.feature_frozen != 0
    s.initKind = try enumValue(c.`init`.rawValue, "spec->init")
    s.initScale = c.init_scale
    if let p = c.permutation {
        guard s.wiring == .permuted else {
            throw GatedNetError.invalidArgument("spec->permutation: given with wiring tiled_rotated; pass NULL")
        }
        let gated = layers.enumerated().filter { $0.element.kind == .conv || ($0.element.kind == .dense && $0.offset < layers.count - 1) }.count
        s.permutation = try permutationArgument(p, count: gated, "spec->permutation")
    }
    return s
}

private func create(_ s: ConvNetworkSpec, _ c: gn_conv_network_spec) throws -> OpaquePointer {
    let source = s.regime == .fixedLearnt ? try convNetwork(c.gate_source, "spec->gate_source") : nil
    return Handles.register(box: ConvNetworkBox(try ConvNetwork(spec: s, gateSource: source)))
}

@_cdecl("gn_conv_network_spec_init")
public func gn_conv_network_spec_init(_ spec: UnsafeMutablePointer<gn_conv_network_spec>?, _ r: gn_regime,
                                      _ channels: Int64, _ height: Int64, _ width: Int64, _ nLayers: Int64,
                                      _ layers: UnsafePointer<gn_layer_spec>?) -> gn_status {
    guarded("gn_conv_network_spec_init") {
        let s = try required(spec, "spec")
        let preset = ConvNetworkSpec(regime: try regime(r), channels: 1, height: 1, width: 1, layers: [])
        var c = gn_conv_network_spec()
        c.struct_size = MemoryLayout<gn_conv_network_spec>.size
        c.regime = r
        c.in_channels = channels; c.in_height = height; c.in_width = width
        c.n_layers = nLayers
        c.layers = layers
        c.layer_struct_size = MemoryLayout<gn_layer_spec>.stride
        c.feature_activation = gn_activation(UInt32(preset.activation.rawValue))
        c.gate_kind = gn_gate_kind(UInt32(preset.gateKind.rawValue))
        c.beta = preset.beta
        c.value_input = gn_value_input(UInt32(preset.valueInput.rawValue))
        c.wiring = GN_WIRING_PERMUTED
        c.permutation = nil
        c.wiring_seed = 0
        c.feature_frozen = 0
        c.`init` = gn_init_kind(UInt32(preset.initKind.rawValue))
        c.init_scale = preset.initScale
        c.seed = 0
        c.gate_source = nil
        s.pointee = c
    }
}

@_cdecl("gn_conv_network_create")
public func gn_conv_network_create(_ spec: UnsafePointer<gn_conv_network_spec>?,
                                   _ out: UnsafeMutablePointer<OpaquePointer?>?) -> gn_status {
    guarded("gn_conv_network_create") {
        let c = try required(spec, "spec").pointee
        let o = try required(out, "out")
        try checkStructSize(c.struct_size, expected: MemoryLayout<gn_conv_network_spec>.size, "spec")
        let layers = try engineLayers(c.layers, count: c.n_layers, elementSize: c.layer_struct_size, "spec->layers")
        o.pointee = try create(try engineSpec(c, layers: layers), c)
    }
}

private func architecture(_ a: gn_conv_architecture) throws -> ConvArchitecture {
    guard let v = ConvArchitecture(rawValue: Int(a.rawValue)) else {
        throw GatedNetError.invalidArgument("arch: got \(a.rawValue), need 0 ... \(ConvArchitecture.allCases.count - 1)")
    }
    return v
}

private func namedLayers(_ a: gn_conv_architecture, _ classes: Int64, _ scale: Float) throws -> [ConvLayerSpec] {
    let k = try layerCount(classes, "classes")
    return try architecture(a).layers(classes: k, widthScale: scale)
}

@_cdecl("gn_conv_architecture_layers")
public func gn_conv_architecture_layers(_ a: gn_conv_architecture, _ classes: Int64, _ scale: Float,
                                        _ out: UnsafeMutablePointer<gn_layer_spec>?, _ cap: Int64,
                                        _ n: UnsafeMutablePointer<Int64>?) -> gn_status {
    guarded("gn_conv_architecture_layers") {
        let layers = try namedLayers(a, classes, scale)
        let count = try required(n, "n_layers")
        count.pointee = Int64(layers.count)
        guard cap > 0 || out != nil else { return }
        let o = try required(out, "layers")
        try capacity(cap, needs: layers.count, "capacity")
        for (i, l) in layers.enumerated() {
            o[i] = gn_layer_spec(kind: gn_layer_kind(UInt32(l.kind.rawValue)), units: Int64(l.outChannels), kernel: Int64(l.kernel),
                                 stride: Int64(l.stride), padding: gn_padding(UInt32(l.padding.rawValue)), bias: l.bias ? 1 : 0,
                                 block: Int64(l.block))
        }
    }
}

@_cdecl("gn_conv_network_create_named")
public func gn_conv_network_create_named(_ a: gn_conv_architecture, _ classes: Int64, _ scale: Float,
                                         _ spec: UnsafePointer<gn_conv_network_spec>?,
                                         _ out: UnsafeMutablePointer<OpaquePointer?>?) -> gn_status {
    guarded("gn_conv_network_create_named") {
        let c = try required(spec, "spec").pointee
        let o = try required(out, "out")
        try checkStructSize(c.struct_size, expected: MemoryLayout<gn_conv_network_spec>.size, "spec")
        let layers = try namedLayers(a, classes, scale)
        o.pointee = try create(try engineSpec(c, layers: layers), c)
    }
}

@_cdecl("gn_conv_network_free")
public func gn_conv_network_free(_ net: OpaquePointer?) {
    Handles.release(net, as: ConvNetworkBox.self)
}

@_cdecl("gn_conv_network_clone")
public func gn_conv_network_clone(_ net: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> gn_status {
    guarded("gn_conv_network_clone") {
        let n = try convNetwork(net, "net")
        let o = try required(out, "out")
        o.pointee = Handles.register(box: ConvNetworkBox(ConvNetwork(copying: n)))
    }
}

@_cdecl("gn_conv_network_get_info")
public func gn_conv_network_get_info(_ net: OpaquePointer?, _ info: UnsafeMutablePointer<gn_conv_network_info>?) -> gn_status {
    guarded("gn_conv_network_get_info") {
        let n = try convNetwork(net, "net")
        let i = try required(info, "info")
        try checkStructSize(i.pointee.struct_size, expected: MemoryLayout<gn_conv_network_info>.size, "info")
        var c = gn_conv_network_info()
        c.struct_size = MemoryLayout<gn_conv_network_info>.size
        let s = n.spec
        c.regime = gn_regime(UInt32(s.regime.rawValue))
        c.in_channels = Int64(s.inputChannels); c.in_height = Int64(s.inputHeight); c.in_width = Int64(s.inputWidth)
        c.input_size = Int64(n.inputSize)
        c.output_size = Int64(n.outputSize)
        c.n_gated = Int64(n.gatedShapes.count)
        c.n_blocks = Int64(n.residualBlockCount)
        c.feature_activation = gn_activation(UInt32(s.activation.rawValue))
        c.gate_kind = gn_gate_kind(UInt32(s.gateKind.rawValue))
        c.beta = s.beta
        c.value_input = gn_value_input(UInt32(s.valueInput.rawValue))
        c.wiring = gn_gate_wiring(UInt32(s.wiring.rawValue))
        c.tied = n.tied ? 1 : 0
        c.feature_frozen = n.featureFrozen ? 1 : 0
        c.value_frozen = n.valueFrozen ? 1 : 0
        c.parameter_count = Int64(n.parameterCount)
        c.epochs_trained = Int64(n.epochsTrained)
        i.pointee = c
    }
}

private func gatedLayer(_ n: ConvNetwork, _ layer: Int64) throws -> Int {
    guard layer >= 0 && layer < Int64(n.gatedShapes.count) else {
        throw GatedNetError.invalidArgument("layer: got \(layer), need 0 ... \(n.gatedShapes.count - 1)")
    }
    return Int(layer)
}

@_cdecl("gn_conv_network_gated_shape")
public func gn_conv_network_gated_shape(_ net: OpaquePointer?, _ layer: Int64, _ h: UnsafeMutablePointer<Int64>?,
                                        _ w: UnsafeMutablePointer<Int64>?, _ c: UnsafeMutablePointer<Int64>?) -> gn_status {
    guarded("gn_conv_network_gated_shape") {
        let n = try convNetwork(net, "net")
        let s = n.gatedShapes[try gatedLayer(n, layer)]
        h?.pointee = Int64(s.height); w?.pointee = Int64(s.width); c?.pointee = Int64(s.channels)
    }
}

@_cdecl("gn_conv_network_describe")
public func gn_conv_network_describe(_ net: OpaquePointer?, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int,
                                     _ needed: UnsafeMutablePointer<Int>?) -> gn_status {
    guarded("gn_conv_network_describe") {
        try writeCString(try convNetwork(net, "net").summary, buf, cap, needed)
    }
}

@_cdecl("gn_conv_network_set_frozen")
public func gn_conv_network_set_frozen(_ net: OpaquePointer?, _ p: gn_part, _ frozen: Int32) -> gn_status {
    guarded("gn_conv_network_set_frozen") {
        let n = try convNetwork(net, "net")
        n.setFrozen(try part(p), frozen != 0)
    }
}

@_cdecl("gn_conv_network_copy_feature_weights")
public func gn_conv_network_copy_feature_weights(_ dst: OpaquePointer?, _ src: OpaquePointer?, _ freeze: Int32) -> gn_status {
    guarded("gn_conv_network_copy_feature_weights") {
        let d = try convNetwork(dst, "dst")
        let s = try convNetwork(src, "src")
        try d.copyFeatureWeights(from: s, freeze: freeze != 0)
    }
}


@_cdecl("gn_conv_network_train")
public func gn_conv_network_train(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ y: UnsafePointer<Int32>?, _ n: Int64,
                                  _ xTest: UnsafePointer<Float>?, _ yTest: UnsafePointer<Int32>?, _ nTest: Int64,
                                  _ opts: UnsafePointer<gn_train_options>?, _ history: UnsafeMutablePointer<gn_epoch_metrics>?,
                                  _ historyCapacity: Int64, _ epochsRun: UnsafeMutablePointer<Int64>?) -> gn_status {
    guarded("gn_conv_network_train") {
        let network = try convNetwork(net, "net")
        try runTraining(inputSize: network.inputSize, x, .labels(y, name: "y"), n, xTest, .labels(yTest, name: "y_test"),
                        nTest, opts, history, historyCapacity, epochsRun) { data, test, options, interrupt, progress in
            try network.train(data, test: test, options: options, interrupt: interrupt, progress: progress)
        }
    }
}

@_cdecl("gn_conv_network_train_regression")
public func gn_conv_network_train_regression(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ y: UnsafePointer<Float>?, _ n: Int64,
                                             _ xTest: UnsafePointer<Float>?, _ yTest: UnsafePointer<Float>?, _ nTest: Int64,
                                             _ opts: UnsafePointer<gn_train_options>?,
                                             _ history: UnsafeMutablePointer<gn_epoch_metrics>?,
                                             _ historyCapacity: Int64, _ epochsRun: UnsafeMutablePointer<Int64>?) -> gn_status {
    guarded("gn_conv_network_train_regression") {
        let network = try convNetwork(net, "net")
        let k = network.outputSize
        try runTraining(inputSize: network.inputSize, x, .values(y, outputSize: k, name: "y"), n,
                        xTest, .values(yTest, outputSize: k, name: "y_test"), nTest, opts, history, historyCapacity,
                        epochsRun) { data, test, options, interrupt, progress in
            try network.train(data, test: test, options: options, interrupt: interrupt, progress: progress)
        }
    }
}

@_cdecl("gn_conv_network_predict")
public func gn_conv_network_predict(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64,
                                    _ out: UnsafeMutablePointer<Float>?, _ cap: Int64) -> gn_status {
    guarded("gn_conv_network_predict") {
        let network = try convNetwork(net, "net")
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let o = try required(out, "out")
        try capacity(cap, needs: try checkedCount(rows, network.outputSize, what: "out"), "capacity")
        network.predict(xs, rows: rows, into: o)
        try finiteResult(o, rows: rows, cols: network.outputSize, "out")
    }
}

@_cdecl("gn_conv_network_predict_classes")
public func gn_conv_network_predict_classes(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64,
                                            _ out: UnsafeMutablePointer<Int32>?, _ cap: Int64) -> gn_status {
    guarded("gn_conv_network_predict_classes") {
        let network = try convNetwork(net, "net")
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let o = try required(out, "out")
        try capacity(cap, needs: rows, "capacity")
        try network.predictClasses(xs, rows: rows, into: o)
    }
}

@_cdecl("gn_conv_network_evaluate")
public func gn_conv_network_evaluate(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ y: UnsafePointer<Int32>?, _ n: Int64,
                                     _ l: gn_loss, _ meanLoss: UnsafeMutablePointer<Double>?,
                                     _ accuracy: UnsafeMutablePointer<Double>?) -> gn_status {
    guarded("gn_conv_network_evaluate") {
        let network = try convNetwork(net, "net")
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let r = try network.evaluate(LabelledData(x: xs, y: try required(y, "y"), rows: rows), loss: try lossKind(l))
        try finiteResult(r.loss, "mean_loss")
        meanLoss?.pointee = r.loss
        accuracy?.pointee = r.accuracy
    }
}

@_cdecl("gn_conv_network_evaluate_regression")
public func gn_conv_network_evaluate_regression(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ y: UnsafePointer<Float>?,
                                                _ n: Int64, _ meanLoss: UnsafeMutablePointer<Double>?) -> gn_status {
    guarded("gn_conv_network_evaluate_regression") {
        let network = try convNetwork(net, "net")
        let out = try required(meanLoss, "mean_loss")
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let targets = try TargetArgument.values(y, outputSize: network.outputSize, name: "y").targets(rows: rows)
        let r = try network.evaluate(LabelledData(x: xs, targets: targets, rows: rows), loss: .squared)
        try finiteResult(r.loss, "mean_loss")
        out.pointee = r.loss
    }
}

@_cdecl("gn_conv_network_gates")
public func gn_conv_network_gates(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64, _ layer: Int64, _ wired: Int32,
                                  _ out: UnsafeMutablePointer<Float>?, _ cap: Int64) -> gn_status {
    guarded("gn_conv_network_gates") {
        let network = try convNetwork(net, "net")
        let l = try gatedLayer(network, layer)
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let o = try required(out, "out")
        try capacity(cap, needs: try checkedCount(rows, network.gatedShapes[l].size, what: "out"), "capacity")
        try network.gates(xs, rows: rows, layer: l, wired: wired != 0, into: o)
        try finiteResult(o, rows: rows, cols: network.gatedShapes[l].size, "out")
    }
}

@_cdecl("gn_conv_network_kernel")
public func gn_conv_network_kernel(_ net: OpaquePointer?, _ kind: gn_conv_kernel_kind,
                                   _ xa: UnsafePointer<Float>?, _ na: Int64, _ xb: UnsafePointer<Float>?, _ nb: Int64,
                                   _ out: UnsafeMutablePointer<Float>?, _ ld: Int64, _ cap: Int64) -> gn_status {
    guarded("gn_conv_network_kernel") {
        let network = try convNetwork(net, "net")
        let k: ConvKernelKind = try enumValue(kind.rawValue, "kind")
        let ra = try count(na, "n_a"), rb = try count(nb, "n_b")
        let o = try required(out, "out")
        try capacity(cap, needs: try stridedSpan(rows: ra, cols: rb, ld: ld), "capacity")
        let ldInt = Int(ld)
        let (a, _) = try inputMatrix(xa, rows: na, cols: network.inputSize, "xa", rowsName: "n_a")
        let (b, _) = try inputMatrix(xb, rows: nb, cols: network.inputSize, "xb", rowsName: "n_b")
        if k != .inputGram { try network.checkPathKernelSupport() }
        try network.pathKernel(k, xa: a, na: ra, xb: b, nb: rb, symmetric: a == b && ra == rb,
                               out: KernelOutput(pointer: o, rows: ra, cols: rb, ld: ldInt))
        try finiteResult(o, rows: ra, cols: rb, ld: ldInt, "out")
    }
}

@_cdecl("gn_conv_network_save")
public func gn_conv_network_save(_ net: OpaquePointer?, _ p: UnsafePointer<CChar>?, _ flags: UInt32) -> gn_status {
    guarded("gn_conv_network_save") {
        let network = try convNetwork(net, "net")
        try ConvNetworkArchive.save(network, to: try path(p, "path"), includeOptimizer: includesOptimizer(flags))
    }
}

@_cdecl("gn_conv_network_load")
public func gn_conv_network_load(_ p: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> gn_status {
    guarded("gn_conv_network_load") {
        let file = try path(p, "path")
        let o = try required(out, "out")
        o.pointee = Handles.register(box: ConvNetworkBox(try loadNamingFile(file, ConvNetworkArchive.load(from:))))
    }
}

@_cdecl("gn_conv_network_serialize")
public func gn_conv_network_serialize(_ net: OpaquePointer?, _ flags: UInt32, _ buf: UnsafeMutableRawPointer?, _ cap: Int,
                                      _ needed: UnsafeMutablePointer<Int>?) -> gn_status {
    guarded("gn_conv_network_serialize") {
        let network = try convNetwork(net, "net")
        try writeSerialized(ConvNetworkArchive.encode(network, includeOptimizer: includesOptimizer(flags)), buf, cap, needed)
    }
}

@_cdecl("gn_conv_network_deserialize")
public func gn_conv_network_deserialize(_ buf: UnsafeRawPointer?, _ size: Int, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> gn_status {
    guarded("gn_conv_network_deserialize") {
        let bytes = try serializedBytes(buf, size)
        let o = try required(out, "out")
        o.pointee = Handles.register(box: ConvNetworkBox(try ConvNetworkArchive.decode(bytes)))
    }
}

private func tensorIndex(_ n: ConvNetwork, _ index: Int64) throws -> Int {
    let count = n.parameters.count
    guard index >= 0 && index < Int64(count) else { throw GatedNetError.invalidArgument("index: got \(index), need 0 ... \(count - 1)") }
    return Int(index)
}

@_cdecl("gn_conv_network_tensor_count")
public func gn_conv_network_tensor_count(_ net: OpaquePointer?, _ count: UnsafeMutablePointer<Int64>?) -> gn_status {
    guarded("gn_conv_network_tensor_count") {
        let n = try convNetwork(net, "net")
        try required(count, "count").pointee = Int64(n.parameters.count)
    }
}

@_cdecl("gn_conv_network_tensor_info")
public func gn_conv_network_tensor_info(_ net: OpaquePointer?, _ index: Int64, _ name: UnsafeMutablePointer<CChar>?, _ cap: Int,
                                        _ rows: UnsafeMutablePointer<Int64>?, _ cols: UnsafeMutablePointer<Int64>?) -> gn_status {
    guarded("gn_conv_network_tensor_info") {
        let n = try convNetwork(net, "net")
        let i = try tensorIndex(n, index)
        let shape = n.parameterShapes[i]
        rows?.pointee = Int64(shape.rows)
        cols?.pointee = Int64(shape.cols)
        guard cap > 0, let b = name else { return }
        let text = Array(n.parameters[i].name.utf8CString)
        let m = min(cap - 1, text.count - 1)
        for j in 0..<m { b[j] = text[j] }
        b[m] = 0
    }
}

@_cdecl("gn_conv_network_get_tensor")
public func gn_conv_network_get_tensor(_ net: OpaquePointer?, _ index: Int64, _ out: UnsafeMutablePointer<Float>?, _ cap: Int64) -> gn_status {
    guarded("gn_conv_network_get_tensor") {
        let n = try convNetwork(net, "net")
        let t = n.parameters[try tensorIndex(n, index)].buffer
        let o = try required(out, "out")
        try capacity(cap, needs: t.count, "capacity")
        o.update(from: t.pointer, count: t.count)
    }
}

@_cdecl("gn_conv_network_set_tensor")
public func gn_conv_network_set_tensor(_ net: OpaquePointer?, _ index: Int64, _ values: UnsafePointer<Float>?, _ cnt: Int64) -> gn_status {
    guarded("gn_conv_network_set_tensor") {
        let n = try convNetwork(net, "net")
        let t = n.parameters[try tensorIndex(n, index)].buffer
        let v = try required(values, "values")
        guard cnt == Int64(t.count) else { throw GatedNetError.shape("count: got \(cnt), tensor \(index) has \(t.count) values") }
        try requireFiniteParameters(v, count: t.count, "values")
        t.pointer.update(from: v, count: t.count)
    }
}
