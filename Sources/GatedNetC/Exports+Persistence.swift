import CGatedNetABI
import GatedNet

@_cdecl("gn_network_save")
public func gn_network_save(_ net: OpaquePointer?, _ p: UnsafePointer<CChar>?, _ flags: UInt32) -> gn_status {
    guarded("gn_network_save") {
        let network = try Handles.network(net, "net")
        try NetworkArchive.save(network, to: try path(p, "path"), includeOptimizer: includesOptimizer(flags))
    }
}

@_cdecl("gn_network_load")
public func gn_network_load(_ p: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> gn_status {
    guarded("gn_network_load") {
        let file = try path(p, "path")
        let o = try required(out, "out")
        o.pointee = Handles.register(try loadNamingFile(file, NetworkArchive.load(from:)))
    }
}

@_cdecl("gn_network_serialize")
public func gn_network_serialize(_ net: OpaquePointer?, _ flags: UInt32, _ buf: UnsafeMutableRawPointer?, _ cap: Int,
                                 _ needed: UnsafeMutablePointer<Int>?) -> gn_status {
    guarded("gn_network_serialize") {
        let network = try Handles.network(net, "net")
        try writeSerialized(NetworkArchive.encode(network, includeOptimizer: includesOptimizer(flags)), buf, cap, needed)
    }
}

@_cdecl("gn_network_deserialize")
public func gn_network_deserialize(_ buf: UnsafeRawPointer?, _ size: Int, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> gn_status {
    guarded("gn_network_deserialize") {
        let bytes = try serializedBytes(buf, size)
        let o = try required(out, "out")
        o.pointee = Handles.register(try NetworkArchive.decode(bytes))
    }
}
