import CGatedNetABI
import GatedNet

// gn_conv_network_kernel_compute: the conv path kernels with gn_kernel_options (block, upper
// triangle, progress and cancellation), as gn_kernel_compute for FC networks.

@_cdecl("gn_conv_network_kernel_compute")
public func gn_conv_network_kernel_compute(_ net: OpaquePointer?, _ kind: gn_conv_kernel_kind,
                                           _ xa: UnsafePointer<Float>?, _ na: Int64, _ xb: UnsafePointer<Float>?, _ nb: Int64,
                                           _ opts: UnsafePointer<gn_kernel_options>?, _ out: UnsafeMutablePointer<Float>?,
                                           _ ld: Int64, _ cap: Int64) -> gn_status {
    guarded("gn_conv_network_kernel_compute") {
        let network = try Handles.lookup(net, as: ConvNetworkBox.self, kind: "gn_conv_network", "net").network
        let c = try kernelOptions(opts)
        guard c.gates_a == nil && c.gates_b == nil else {
            throw GatedNetError.invalidArgument("opts->\(c.gates_a != nil ? "gates_a" : "gates_b"): conv kernels compute their own gates; given packed gates are for gn_kernel_compute (fully connected networks) only; pass NULL")
        }
        guard let k = ConvKernelKind(rawValue: Int(kind.rawValue)) else {
            throw GatedNetError.invalidArgument("kind: got \(kind.rawValue), need 0 ... 4")
        }
        let (a, rowsA) = try inputMatrix(xa, rows: na, cols: network.inputSize, "xa", rowsName: "n_a")
        let symmetric = xb == nil || (xb == xa && nb == na)
        if xb == nil && nb != 0 && nb != na {
            throw GatedNetError.invalidArgument("n_b: got \(nb) with xb NULL, need 0 or n_a = \(na)")
        }
        let (b, rowsB) = symmetric ? (a, rowsA) : try inputMatrix(xb, rows: nb, cols: network.inputSize, "xb", rowsName: "n_b")
        var options = KernelOptions()
        options.rows = try blockRange(c.row_begin, c.row_count, n: rowsA, "row")
        options.cols = try blockRange(c.col_begin, c.col_count, n: rowsB, "col")
        options.upperOnly = c.upper_only != 0
        if let callback = c.progress {
            let user = c.progress_user
            options.progress = { fraction in callback(fraction, user) == 0 }
        }
        let o = try required(out, "out")
        let r = options.rows!.count, cl = options.cols!.count
        try capacity(cap, needs: try stridedSpan(rows: r, cols: cl, ld: ld), "capacity")
        options.transposed = try transposedOutput(c, rows: r, cols: cl)
        try network.pathKernel(k, xa: a, na: rowsA, xb: b, nb: rowsB, symmetric: symmetric,
                               out: KernelOutput(pointer: o, rows: r, cols: cl, ld: Int(ld)), options: options)
        try finiteResult(o, rows: r, cols: cl, ld: Int(ld), "out")
    }
}
