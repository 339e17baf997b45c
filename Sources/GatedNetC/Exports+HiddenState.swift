import CGatedNetABI
import GatedNet

private func hiddenQuantity(_ k: gn_hidden_kind) throws -> HiddenQuantity {
    guard let q = HiddenQuantity(rawValue: Int(k.rawValue)) else {
        throw GatedNetError.invalidArgument("kind: got \(k.rawValue), need 0 (pre-activation) or 1 (activation)")
    }
    return q
}

@_cdecl("gn_network_hidden_state")
public func gn_network_hidden_state(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64, _ p: gn_part,
                                    _ layer: Int64, _ kind: gn_hidden_kind, _ out: UnsafeMutablePointer<Float>?,
                                    _ cap: Int64) -> gn_status {
    guarded("gn_network_hidden_state") {
        let network = try Handles.network(net, "net")
        let pt = try part(p)
        let q = try hiddenQuantity(kind)
        guard layer >= 0 && layer < Int64(network.hiddenCount) else {
            throw GatedNetError.invalidArgument("layer: got \(layer), need 0 ... \(network.hiddenCount - 1)")
        }
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let o = try required(out, "out")
        try capacity(cap, needs: try checkedCount(rows, network.hiddenWidths[Int(layer)], what: "out"), "capacity")
        try network.hiddenState(xs, rows: rows, part: pt, layer: Int(layer), q, into: o)
    }
}

private func convHandle(_ handle: OpaquePointer?, _ name: String) throws -> ConvNetwork {
    try Handles.lookup(handle, as: ConvNetworkBox.self, kind: "gn_conv_network", name).network
}

@_cdecl("gn_conv_network_hidden_state")
public func gn_conv_network_hidden_state(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64, _ p: gn_part,
                                         _ layer: Int64, _ kind: gn_hidden_kind, _ out: UnsafeMutablePointer<Float>?,
                                         _ cap: Int64) -> gn_status {
    guarded("gn_conv_network_hidden_state") {
        let network = try convHandle(net, "net")
        let pt = try part(p)
        let q = try hiddenQuantity(kind)
        let gated = network.gatedShapes.count
        guard layer >= 0 && layer < Int64(gated) else {
            throw GatedNetError.invalidArgument("layer: got \(layer), need 0 ... \(gated - 1)")
        }
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let o = try required(out, "out")
        try capacity(cap, needs: try checkedCount(rows, network.gatedShapes[Int(layer)].size, what: "out"), "capacity")
        try network.hiddenState(xs, rows: rows, part: pt, layer: Int(layer), q, into: o)
    }
}

@_cdecl("gn_conv_network_tensor_layer")
public func gn_conv_network_tensor_layer(_ net: OpaquePointer?, _ index: Int64, _ layer: UnsafeMutablePointer<Int64>?,
                                         _ projection: UnsafeMutablePointer<Int32>?) -> gn_status {
    guarded("gn_conv_network_tensor_layer") {
        let network = try convHandle(net, "net")
        let layers = network.parameterLayers
        guard index >= 0 && index < Int64(layers.count) else {
            throw GatedNetError.invalidArgument("index: got \(index), need 0 ... \(layers.count - 1)")
        }
        let entry = layers[Int(index)]
        layer?.pointee = Int64(entry.layer)
        projection?.pointee = entry.projection ? 1 : 0
    }
}
