import CGatedNetABI
import GatedNet

@_cdecl("gn_network_save")
public func gn_network_save(_ net: OpaquePointer?, _ p: UnsafePointer<CChar>?, _ flags: UInt32) -> gn_status {
    guarded("gn_network_save") {
        let network = try Handles.network(net, "net")
        try NetworkArchive.save(network, to: try path(p, "path"), includeOptimizer: flags & GN_SAVE_OPTIMIZER_STATE != 0)
    }
}

@_cdecl("gn_network_load")
public func gn_network_load(_ p: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> gn_status {
    guarded("gn_network_load") {
        let file = try path(p, "path")
        let o = try required(out, "out")
        do {
            o.pointee = Handles.register(try NetworkArchive.load(from: file))
        } catch GatedNetError.corrupt(let m) {
            throw GatedNetError.corrupt("\(file): \(m)")
        }
    }
}

@_cdecl("gn_network_serialize")
public func gn_network_serialize(_ net: OpaquePointer?, _ flags: UInt32, _ buf: UnsafeMutableRawPointer?, _ cap: Int,
                                 _ needed: UnsafeMutablePointer<Int>?) -> gn_status {
    guarded("gn_network_serialize") {
        let network = try Handles.network(net, "net")
        let need = try required(needed, "needed")
        let bytes = NetworkArchive.encode(network, includeOptimizer: flags & GN_SAVE_OPTIMIZER_STATE != 0)
        need.pointee = bytes.count
        guard byteCapacity(cap) >= bytes.count else { throw GatedNetError.bufferTooSmall("capacity: \(cap) bytes, need \(bytes.count)") }
        let b = try required(buf, "buf")
        bytes.withUnsafeBytes { b.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }
}

@_cdecl("gn_network_deserialize")
public func gn_network_deserialize(_ buf: UnsafeRawPointer?, _ size: Int, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> gn_status {
    guarded("gn_network_deserialize") {
        let b = try required(buf, "buf")
        let o = try required(out, "out")
        guard size >= 0 else { throw GatedNetError.invalidArgument("size: got \(size)") }
        o.pointee = Handles.register(try NetworkArchive.decode(UnsafeRawBufferPointer(start: b, count: size)))
    }
}
