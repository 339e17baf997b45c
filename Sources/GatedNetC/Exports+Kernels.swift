import CGatedNetABI
import GatedNet

private func layerIndex(_ net: GatedNetwork, _ layer: Int64) throws -> Int {
    guard layer >= 0 && layer < Int64(net.hiddenCount) else {
        throw GatedNetError.invalidArgument("layer: got \(layer), need 0 ... \(net.hiddenCount - 1)")
    }
    return Int(layer)
}

@_cdecl("gn_gates")
public func gn_gates(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64, _ layer: Int64,
                     _ out: UnsafeMutablePointer<Float>?, _ cap: Int64) -> gn_status {
    guarded("gn_gates") {
        let network = try Handles.network(net, "net")
        let l = try layerIndex(network, layer)
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let o = try required(out, "out")
        try capacity(cap, needs: try checkedCount(rows, network.hiddenWidths[l], what: "out"), "capacity")
        try network.gates(xs, rows: rows, layer: l, into: o)
        try finiteResult(o, rows: rows, cols: network.hiddenWidths[l], "out")
    }
}

@_cdecl("gn_gates_packed_words")
public func gn_gates_packed_words(_ net: OpaquePointer?, _ layer: Int64, _ words: UnsafeMutablePointer<Int64>?) -> gn_status {
    guarded("gn_gates_packed_words") {
        let network = try Handles.network(net, "net")
        let l = try layerIndex(network, layer)
        try required(words, "words_per_row").pointee = Int64(GateMask.wordsPerRow(width: network.hiddenWidths[l]))
    }
}

@_cdecl("gn_gates_packed")
public func gn_gates_packed(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64, _ layer: Int64,
                            _ out: UnsafeMutablePointer<UInt64>?, _ cap: Int64) -> gn_status {
    guarded("gn_gates_packed") {
        let network = try Handles.network(net, "net")
        let l = try layerIndex(network, layer)
        guard network.spec.gateKind == .hard else { throw GatedNetError.unsupported("packed gates: this network has soft gates") }
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let o = try required(out, "out")
        let words = GateMask.wordsPerRow(width: network.hiddenWidths[l])
        try capacity(cap, needs: try checkedCount(rows, words, what: "out"), "capacity")
        let mask = try network.gateMask(xs, rows: rows, layer: l)
        mask.words.withUnsafeBufferPointer { o.update(from: $0.baseAddress!, count: $0.count) }
    }
}

@_cdecl("gn_gates_packed_all_words")
public func gn_gates_packed_all_words(_ net: OpaquePointer?, _ words: UnsafeMutablePointer<Int64>?) -> gn_status {
    guarded("gn_gates_packed_all_words") {
        let network = try Handles.network(net, "net")
        try required(words, "words_per_row").pointee = Int64(network.packedGateWordsPerRow)
    }
}

@_cdecl("gn_gates_packed_all")
public func gn_gates_packed_all(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64,
                                _ out: UnsafeMutablePointer<UInt64>?, _ cap: Int64) -> gn_status {
    guarded("gn_gates_packed_all") {
        let network = try Handles.network(net, "net")
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let o = try required(out, "out")
        try capacity(cap, needs: try checkedCount(rows, network.packedGateWordsPerRow, what: "out"), "capacity")
        try network.packedGates(xs, rows: rows, into: o)
    }
}

@_cdecl("gn_kernel")
public func gn_kernel(_ net: OpaquePointer?, _ kind: gn_kernel_kind, _ layer: Int64,
                      _ xa: UnsafePointer<Float>?, _ na: Int64, _ xb: UnsafePointer<Float>?, _ nb: Int64,
                      _ out: UnsafeMutablePointer<Float>?, _ ld: Int64, _ cap: Int64) -> gn_status {
    guarded("gn_kernel") {
        let network = try Handles.network(net, "net")
        let k: KernelKind
        switch kind {
        case GN_KERNEL_INPUT_GRAM: k = .inputGram
        case GN_KERNEL_BASE: k = .base(layer: try layerIndex(network, layer))
        case GN_KERNEL_OVERLAP: k = .overlap
        case GN_KERNEL_NPK: k = .npk
        case GN_KERNEL_NPK_NORMALIZED: k = .npkNormalized
        default: throw GatedNetError.invalidArgument("kind: got \(kind.rawValue), need 0 ... 4 (use gn_kernel_compute for kinds 5 ... 11)")
        }
        let (a, rowsA) = try inputMatrix(xa, rows: na, cols: network.inputSize, "xa", rowsName: "n_a")
        let symmetric = xa == xb && na == nb
        let (b, rowsB) = symmetric ? (a, rowsA) : try inputMatrix(xb, rows: nb, cols: network.inputSize, "xb", rowsName: "n_b")
        let o = try required(out, "out")
        try capacity(cap, needs: try stridedSpan(rows: rowsA, cols: rowsB, ld: ld), "capacity")
        try network.kernel(k, xa: a, na: rowsA, xb: b, nb: rowsB, symmetric: symmetric,
                           out: KernelOutput(pointer: o, rows: rowsA, cols: rowsB, ld: Int(ld)))
        try finiteResult(o, rows: rowsA, cols: rowsB, ld: Int(ld), "out")
    }
}
