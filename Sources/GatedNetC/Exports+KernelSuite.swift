import CGatedNetABI
import GatedNet

// The kernel suite of gatednet.h: gn_kernel_compute and its options, kernel algebra, active
// paths and DLGN hyperplanes. Every argument is validated here before the engine sees it.

@_cdecl("gn_kernel_options_init")
public func gn_kernel_options_init(_ opts: UnsafeMutablePointer<gn_kernel_options>?) -> gn_status {
    guarded("gn_kernel_options_init") {
        let o = try required(opts, "opts")
        var c = gn_kernel_options()
        c.struct_size = MemoryLayout<gn_kernel_options>.size
        c.layer = 0
        c.output = -1
        c.row_begin = 0; c.row_count = 0
        c.col_begin = 0; c.col_count = 0
        c.upper_only = 0
        c.gate_path = GN_GATE_PATH_AUTO
        c.ntk_scaling = 0
        c.progress = nil
        c.progress_user = nil
        c.out_transposed = nil
        c.ld_transposed = 0
        c.capacity_transposed = 0
        c.gates_a = nil; c.capacity_gates_a = 0
        c.gates_b = nil; c.capacity_gates_b = 0
        o.pointee = c
    }
}

/// The caller's options (nil: the defaults). A struct_size that ends at progress_user (the
/// struct before out_transposed was appended) or at capacity_transposed (before gates_a) is
/// accepted: only those bytes are read, and the later fields keep their defaults (no
/// transposed output, gates computed).
func kernelOptions(_ opts: UnsafePointer<gn_kernel_options>?) throws -> gn_kernel_options {
    var c = gn_kernel_options()
    _ = gn_kernel_options_init(&c)
    guard let o = opts else { return c }
    let full = MemoryLayout<gn_kernel_options>.size
    let older = [MemoryLayout<gn_kernel_options>.offset(of: \.out_transposed)!,
                 MemoryLayout<gn_kernel_options>.offset(of: \.gates_a)!]
    let size = o.pointee.struct_size  // the first field: present in every version
    guard older.contains(size) || size >= full else {
        throw GatedNetError.invalidArgument("opts->struct_size: got \(size), need \(full) (or \(older[1]), the struct without gates_a, or \(older[0]), without out_transposed); initialise it with gn_kernel_options_init")
    }
    if size >= full {
        c = o.pointee
    } else {
        withUnsafeMutableBytes(of: &c) { $0.copyMemory(from: UnsafeRawBufferPointer(start: o, count: size)) }
    }
    c.struct_size = full
    return c
}

/// The caller's packed gates `p` of all `rows` rows of an input, checked against `capacity`
/// words (nil when p is NULL). The engine checks the kind, gate path and padding bits.
func givenGates(_ p: UnsafePointer<UInt64>?, capacity cap: Int64, rows: Int, words: Int, _ name: String) throws -> UnsafePointer<UInt64>? {
    guard let p else { return nil }
    try capacity(cap, needs: try checkedCount(rows, words, what: name), "opts->capacity_\(name)")
    return p
}

/// The transposed output of options `c` for a rows × cols block (cols × rows), checked against
/// its row stride and capacity; nil when out_transposed is NULL. Overlap with out, shape and
/// upper_only are the engine's checks (`KernelOptions.block`), made before any work.
func transposedOutput(_ c: gn_kernel_options, rows: Int, cols: Int) throws -> KernelOutput? {
    guard let p = c.out_transposed else { return nil }
    let span = try stridedSpan(rows: cols, cols: rows, ld: c.ld_transposed, "opts->ld_transposed")
    try capacity(c.capacity_transposed, needs: span, "opts->capacity_transposed")
    return KernelOutput(pointer: p, rows: cols, cols: rows, ld: Int(c.ld_transposed))
}

/// A block [begin, begin + count) of `n` rows (count 0 = to the end).
func blockRange(_ begin: Int64, _ count: Int64, n: Int, _ name: String) throws -> Range<Int> {
    guard begin >= 0 && begin < Int64(n) else {
        throw GatedNetError.invalidArgument("opts->\(name)_begin: got \(begin), need 0 ... \(n - 1)")
    }
    guard count >= 0 else { throw GatedNetError.invalidArgument("opts->\(name)_count: got \(count), need >= 0") }
    let c = count == 0 ? Int64(n) - begin : count
    guard c <= Int64(n) - begin else {
        throw GatedNetError.invalidArgument("opts->\(name)_count: got \(count), need <= \(Int64(n) - begin) (begin \(begin), \(n) rows)")
    }
    return Int(begin)..<Int(begin + c)
}

@_cdecl("gn_kernel_compute")
public func gn_kernel_compute(_ net: OpaquePointer?, _ kind: gn_kernel_kind, _ xa: UnsafePointer<Float>?, _ na: Int64,
                              _ xb: UnsafePointer<Float>?, _ nb: Int64, _ opts: UnsafePointer<gn_kernel_options>?,
                              _ out: UnsafeMutablePointer<Float>?, _ ld: Int64, _ cap: Int64) -> gn_status {
    guarded("gn_kernel_compute") {
        let network = try Handles.network(net, "net")
        let c = try kernelOptions(opts)
        let choice: KernelChoice
        switch kind.rawValue {
        case 0: choice = .path(.inputGram)
        case 1:
            guard c.layer >= 0 && c.layer < Int64(network.hiddenCount) else {
                throw GatedNetError.invalidArgument("opts->layer: got \(c.layer), need 0 ... \(network.hiddenCount - 1)")
            }
            choice = .path(.base(layer: Int(c.layer)))
        case 2: choice = .path(.overlap)
        case 3: choice = .path(.npk)
        case 4: choice = .path(.npkNormalized)
        case 5: choice = .npkTraceNormalized
        case 6: choice = .tangent(.value)
        case 7: choice = .tangent(.feature)
        case 8: choice = .tangent(.cross)
        case 9: choice = .tangent(.full)
        case 10: choice = .npkLimit
        case 11: choice = .ntkLimit
        default: throw GatedNetError.invalidArgument("kind: got \(kind.rawValue), need 0 ... 11")
        }
        let (a, rowsA) = try inputMatrix(xa, rows: na, cols: network.inputSize, "xa", rowsName: "n_a")
        let symmetric = xb == nil || (xb == xa && nb == na)
        if xb == nil && nb != 0 && nb != na {
            throw GatedNetError.invalidArgument("n_b: got \(nb) with xb NULL, need 0 or n_a = \(na)")
        }
        let (b, rowsB) = symmetric ? (a, rowsA) : try inputMatrix(xb, rows: nb, cols: network.inputSize, "xb", rowsName: "n_b")
        let rows = try blockRange(c.row_begin, c.row_count, n: rowsA, "row")
        let cols = try blockRange(c.col_begin, c.col_count, n: rowsB, "col")
        guard c.output >= -1 && c.output < Int64(network.outputSize) else {
            throw GatedNetError.invalidArgument("opts->output: got \(c.output), need -1 (sum) or 0 ... \(network.outputSize - 1)")
        }
        var options = KernelOptions()
        options.rows = rows
        options.cols = cols
        options.upperOnly = c.upper_only != 0
        switch c.gate_path.rawValue {
        case 0: options.gatePath = .auto
        case 1: options.gatePath = .float
        case 2: options.gatePath = .packed
        default: throw GatedNetError.invalidArgument("opts->gate_path: got \(c.gate_path.rawValue), need 0 ... 2")
        }
        options.output = c.output < 0 ? nil : Int(c.output)
        options.ntkScaling = c.ntk_scaling != 0
        if let callback = c.progress {
            let user = c.progress_user
            options.progress = { fraction in callback(fraction, user) == 0 }
        }
        let o = try required(out, "out")
        try capacity(cap, needs: try stridedSpan(rows: rows.count, cols: cols.count, ld: ld), "capacity")
        options.transposed = try transposedOutput(c, rows: rows.count, cols: cols.count)
        let words = network.packedGateWordsPerRow
        options.packedGatesA = try givenGates(c.gates_a, capacity: c.capacity_gates_a, rows: rowsA, words: words, "gates_a")
        options.packedGatesB = try givenGates(c.gates_b, capacity: c.capacity_gates_b, rows: symmetric ? rowsA : rowsB,
                                              words: words, "gates_b")
        try network.kernel(choice, xa: a, na: rowsA, xb: b, nb: rowsB, symmetric: symmetric,
                           out: KernelOutput(pointer: o, rows: rows.count, cols: cols.count, ld: Int(ld)), options: options)
        try finiteResult(o, rows: rows.count, cols: cols.count, ld: Int(ld), upperOnly: options.upperOnly, "out")
    }
}

/// A square kernel argument n × n with row stride ld (the engine checks that the upper
/// triangle it reads is finite, after allocating its n × n copy, so a size the machine cannot
/// serve fails fast with GN_ERR_OUT_OF_MEMORY).
private func kernelMatrix(_ k: UnsafePointer<Float>?, _ n: Int64, _ ld: Int64) throws -> (UnsafePointer<Float>, Int, Int) {
    let rows = try count(n, "n")
    let p = try required(k, "k")
    _ = try stridedSpan(rows: rows, cols: rows, ld: ld, "ld")
    return (p, rows, Int(ld))
}

@_cdecl("gn_kernel_eigenvalues")
public func gn_kernel_eigenvalues(_ k: UnsafePointer<Float>?, _ n: Int64, _ ld: Int64, _ values: UnsafeMutablePointer<Double>?,
                                  _ cap: Int64) -> gn_status {
    guarded("gn_kernel_eigenvalues") {
        let (p, rows, stride) = try kernelMatrix(k, n, ld)
        let o = try required(values, "values")
        try capacity(cap, needs: rows, "capacity")
        try KernelAlgebra.eigenvalues(p, n: rows, ld: stride, into: o)
    }
}

@_cdecl("gn_kernel_nu")
public func gn_kernel_nu(_ k: UnsafePointer<Float>?, _ n: Int64, _ ld: Int64, _ y: UnsafePointer<Float>?,
                         _ nu: UnsafeMutablePointer<Double>?, _ ridgeUsed: UnsafeMutablePointer<Double>?) -> gn_status {
    guarded("gn_kernel_nu") {
        let (p, rows, stride) = try kernelMatrix(k, n, ld)
        let (ys, _) = try inputMatrix(y, rows: n, cols: 1, "y", rowsName: "n")
        let o = try required(nu, "nu")
        let r = try KernelAlgebra.nu(p, n: rows, ld: stride, y: ys)
        o.pointee = r.nu
        ridgeUsed?.pointee = r.ridge
    }
}

@_cdecl("gn_kernel_ridge_fit")
public func gn_kernel_ridge_fit(_ k: UnsafePointer<Float>?, _ n: Int64, _ ld: Int64, _ targets: UnsafePointer<Float>?, _ t: Int64,
                                _ ridge: Double, _ alpha: UnsafeMutablePointer<Float>?, _ cap: Int64,
                                _ ridgeUsed: UnsafeMutablePointer<Double>?) -> gn_status {
    guarded("gn_kernel_ridge_fit") {
        let (p, rows, stride) = try kernelMatrix(k, n, ld)
        let cols = try count(t, "t")
        let (ts, _) = try inputMatrix(targets, rows: n, cols: cols, "targets", rowsName: "n")
        guard ridge.isFinite && ridge >= 0 else { throw GatedNetError.invalidArgument("ridge: got \(ridge), need a finite value >= 0") }
        let o = try required(alpha, "alpha")
        try capacity(cap, needs: try checkedCount(rows, cols, what: "alpha"), "capacity")
        let used = try KernelAlgebra.ridgeFit(p, n: rows, ld: stride, targets: ts, t: cols, ridge: ridge, alpha: o)
        ridgeUsed?.pointee = used
    }
}

@_cdecl("gn_kernel_ridge_predict")
public func gn_kernel_ridge_predict(_ kTest: UnsafePointer<Float>?, _ m: Int64, _ n: Int64, _ ld: Int64,
                                    _ alpha: UnsafePointer<Float>?, _ t: Int64, _ out: UnsafeMutablePointer<Float>?,
                                    _ cap: Int64) -> gn_status {
    guarded("gn_kernel_ridge_predict") {
        let rowsM = try count(m, "m"), cols = try count(n, "n"), outs = try count(t, "t")
        let k = try required(kTest, "k_test")
        _ = try stridedSpan(rows: rowsM, cols: cols, ld: ld, "ld")
        for i in 0..<rowsM where !isAllFinite(k + i * Int(ld), cols) {
            throw GatedNetError.notFinite("k_test: row \(i) contains NaN or Inf")
        }
        let (a, _) = try inputMatrix(alpha, rows: n, cols: outs, "alpha", rowsName: "n")
        let o = try required(out, "out")
        try capacity(cap, needs: try checkedCount(rowsM, outs, what: "out"), "capacity")
        guard rowsM <= Int(Int32.max), cols <= Int(Int32.max), Int(ld) <= Int(Int32.max) else {
            throw GatedNetError.outOfMemory("k_test: sizes beyond 2^31 - 1 are not supported by BLAS")
        }
        KernelAlgebra.ridgePredict(k, m: rowsM, n: cols, ld: Int(ld), alpha: a, t: outs, out: o)
        try finiteResult(o, rows: rowsM, cols: outs, "out")
    }
}

@_cdecl("gn_kernel_targets")
public func gn_kernel_targets(_ labels: UnsafePointer<Int32>?, _ n: Int64, _ classes: Int64, _ targets: UnsafeMutablePointer<Float>?,
                              _ cap: Int64) -> gn_status {
    guarded("gn_kernel_targets") {
        let rows = try count(n, "n"), k = try count(classes, "classes")
        let l = try required(labels, "labels")
        let limit = k == 1 ? 2 : k
        for i in 0..<rows where l[i] < 0 || Int(l[i]) >= limit {
            throw GatedNetError.labelRange("labels[\(i)]: got \(l[i]), need 0 ... \(limit - 1)")
        }
        let o = try required(targets, "targets")
        try capacity(cap, needs: try checkedCount(rows, k, what: "targets"), "capacity")
        KernelAlgebra.targets(labels: l, n: rows, classes: k, into: o)
    }
}

@_cdecl("gn_kernel_classes")
public func gn_kernel_classes(_ scores: UnsafePointer<Float>?, _ m: Int64, _ t: Int64, _ out: UnsafeMutablePointer<Int32>?,
                              _ cap: Int64) -> gn_status {
    guarded("gn_kernel_classes") {
        let outs = try count(t, "t")
        let (s, rows) = try inputMatrix(scores, rows: m, cols: outs, "scores", rowsName: "m", finite: false)
        let o = try required(out, "out")
        try capacity(cap, needs: rows, "capacity")
        KernelAlgebra.classes(scores: s, m: rows, t: outs, into: o)
    }
}

@_cdecl("gn_active_paths")
public func gn_active_paths(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64, _ out: UnsafeMutablePointer<Double>?,
                            _ cap: Int64) -> gn_status {
    guarded("gn_active_paths") {
        let network = try Handles.network(net, "net")
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let o = try required(out, "out")
        try capacity(cap, needs: rows, "capacity")
        network.activePaths(xs, rows: rows, into: o)
    }
}

@_cdecl("gn_active_paths_by_group")
public func gn_active_paths_by_group(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64, _ groups: UnsafePointer<Int32>?,
                                     _ nGroups: Int64, _ mean: UnsafeMutablePointer<Double>?, _ meanCap: Int64,
                                     _ counts: UnsafeMutablePointer<Int64>?, _ countsCap: Int64) -> gn_status {
    guarded("gn_active_paths_by_group") {
        let network = try Handles.network(net, "net")
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let g = try required(groups, "groups")
        let k = try count(nGroups, "n_groups")
        let m = try required(mean, "mean")
        try capacity(meanCap, needs: k, "mean_capacity")
        if counts != nil { try capacity(countsCap, needs: k, "counts_capacity") }
        try network.activePathsByGroup(xs, rows: rows, groups: g, groupCount: k, mean: m, counts: counts)
    }
}

@_cdecl("gn_gate_hyperplanes")
public func gn_gate_hyperplanes(_ net: OpaquePointer?, _ layer: Int64, _ normals: UnsafeMutablePointer<Float>?, _ normalsCap: Int64,
                                _ offsets: UnsafeMutablePointer<Float>?, _ offsetsCap: Int64) -> gn_status {
    guarded("gn_gate_hyperplanes") {
        let network = try Handles.network(net, "net")
        guard network.spec.activation == .identity && !network.spec.tied else {
            throw GatedNetError.unsupported("hyperplanes: the gates are half-spaces only for a linear gating network (DLGN); this network's feature net has ReLU activation")
        }
        guard layer >= 0 && layer < Int64(network.hiddenCount) else {
            throw GatedNetError.invalidArgument("layer: got \(layer), need 0 ... \(network.hiddenCount - 1)")
        }
        let w = network.hiddenWidths[Int(layer)]
        let u = try required(normals, "normals")
        try capacity(normalsCap, needs: try checkedCount(w, network.inputSize, what: "normals"), "normals_capacity")
        if offsets != nil { try capacity(offsetsCap, needs: w, "offsets_capacity") }
        try network.gateHyperplanes(layer: Int(layer), normals: u, offsets: offsets)
    }
}
