import CGatedNetABI
import GatedNet

@_cdecl("gn_idx_dims")
public func gn_idx_dims(_ p: UnsafePointer<CChar>?, _ dims: UnsafeMutablePointer<Int64>?, _ cap: Int64,
                        _ ndim: UnsafeMutablePointer<Int64>?) -> gn_status {
    guarded("gn_idx_dims") {
        let file = try path(p, "path")
        let d = try required(dims, "dims"), nd = try required(ndim, "ndim")
        let dims = try IDXArray.dims(path: file)
        try capacity(cap, needs: dims.count, "dims_capacity")
        for (i, v) in dims.enumerated() { d[i] = Int64(v) }
        nd.pointee = Int64(dims.count)
    }
}

@_cdecl("gn_idx_read_f32")
public func gn_idx_read_f32(_ p: UnsafePointer<CChar>?, _ scale: Float, _ out: UnsafeMutablePointer<Float>?, _ cap: Int64) -> gn_status {
    guarded("gn_idx_read_f32") {
        let file = try path(p, "path")
        let o = try required(out, "out")
        guard scale.isFinite else { throw GatedNetError.notFinite("scale: got \(scale)") }
        let a = try IDXArray(path: file, maxCount: maxCount(cap))
        a.copyFloats(into: UnsafeMutableBufferPointer(start: o, count: a.count), scale: scale)
    }
}

@_cdecl("gn_idx_read_i32")
public func gn_idx_read_i32(_ p: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<Int32>?, _ cap: Int64) -> gn_status {
    guarded("gn_idx_read_i32") {
        let file = try path(p, "path")
        let o = try required(out, "out")
        let a = try IDXArray(path: file, maxCount: maxCount(cap))
        try a.copyInt32s(into: UnsafeMutableBufferPointer(start: o, count: a.count))
    }
}

/// The caller's element capacity as the largest array an IDX reader may accept.
private func maxCount(_ cap: Int64) throws -> Int {
    guard cap >= 0 else { throw GatedNetError.bufferTooSmall("capacity: got \(cap), need >= 0") }
    return Int(cap)
}

@_cdecl("gn_corrupt_labels")
public func gn_corrupt_labels(_ labels: UnsafeMutablePointer<Int32>?, _ n: Int64, _ classes: Int32, _ gamma: Double,
                              _ seed: UInt64, _ changed: UnsafeMutablePointer<Int64>?) -> gn_status {
    guarded("gn_corrupt_labels") {
        let rows = try count(n, "n")
        let l = try required(labels, "labels")
        let c = try corruptLabels(UnsafeMutableBufferPointer(start: l, count: rows), classes: Int(classes), gamma: gamma, seed: seed)
        changed?.pointee = Int64(c)
    }
}
