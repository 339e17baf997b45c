import CGatedNetABI
import GatedNet
import Glibc

/// Failures only the export layer can detect (the engine never sees raw pointers or handles).
enum BoundaryError: Error {
    case nullPointer(String)
    case invalidHandle(String)
    /// A call on a handle from inside another call on it, on the same thread.
    case busy(String)
    case internalError(String)
}

/// Per-thread last error message, kept as a malloc'd C string in a pthread key so that
/// `gn_last_error` can hand out a pointer that stays valid until the thread's next call.
private let errorKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key) { free($0) }
    return key
}()

func setLastError(_ message: String) {
    let old = pthread_getspecific(errorKey)
    pthread_setspecific(errorKey, strdup(message))
    free(old)
}

func lastErrorPointer() -> UnsafePointer<CChar>? {
    guard let p = pthread_getspecific(errorKey) else { return nil }
    return UnsafePointer(p.assumingMemoryBound(to: CChar.self))
}

/// Run `body` as one call (`CallScope`), translating every thrown error into a status code and
/// the thread's message.
func guarded(_ function: String, _ body: () throws -> Void) -> gn_status {
    do {
        try CallScope.run(body)
        return GN_OK
    } catch let e as GatedNetError {
        let status: gn_status
        switch e {
        case .invalidArgument: status = GN_ERR_INVALID_ARGUMENT
        case .shape: status = GN_ERR_SHAPE
        case .bufferTooSmall: status = GN_ERR_BUFFER_TOO_SMALL
        case .notFinite: status = GN_ERR_NOT_FINITE
        case .labelRange: status = GN_ERR_LABEL_RANGE
        case .unsupported: status = GN_ERR_UNSUPPORTED
        case .io: status = GN_ERR_IO
        case .corrupt: status = GN_ERR_CORRUPT
        case .cancelled: status = GN_ERR_CANCELLED
        case .outOfMemory: status = GN_ERR_OUT_OF_MEMORY
        }
        setLastError("\(function): \(e.message)")
        return status
    } catch let e as BoundaryError {
        switch e {
        case .nullPointer(let m): setLastError("\(function): \(m)"); return GN_ERR_NULL_POINTER
        case .invalidHandle(let m): setLastError("\(function): \(m)"); return GN_ERR_INVALID_HANDLE
        case .busy(let m): setLastError("\(function): \(m)"); return GN_ERR_BUSY
        case .internalError(let m): setLastError("\(function): internal error: \(m)"); return GN_ERR_INTERNAL
        }
    } catch {
        setLastError("\(function): internal error: \(error)")
        return GN_ERR_INTERNAL
    }
}

@_cdecl("gn_last_error")
public func gn_last_error() -> UnsafePointer<CChar>? {
    lastErrorPointer() ?? emptyCString
}

private let emptyCString: UnsafePointer<CChar> = {
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
    p.pointee = 0
    return UnsafePointer(p)
}()

private let statusNames: [UInt32: UnsafePointer<CChar>] = {
    let names: [(gn_status, String)] = [
        (GN_OK, "GN_OK"), (GN_ERR_INVALID_ARGUMENT, "GN_ERR_INVALID_ARGUMENT"),
        (GN_ERR_NULL_POINTER, "GN_ERR_NULL_POINTER"), (GN_ERR_INVALID_HANDLE, "GN_ERR_INVALID_HANDLE"),
        (GN_ERR_SHAPE, "GN_ERR_SHAPE"), (GN_ERR_BUFFER_TOO_SMALL, "GN_ERR_BUFFER_TOO_SMALL"),
        (GN_ERR_NOT_FINITE, "GN_ERR_NOT_FINITE"), (GN_ERR_LABEL_RANGE, "GN_ERR_LABEL_RANGE"),
        (GN_ERR_UNSUPPORTED, "GN_ERR_UNSUPPORTED"), (GN_ERR_IO, "GN_ERR_IO"), (GN_ERR_CORRUPT, "GN_ERR_CORRUPT"),
        (GN_ERR_CANCELLED, "GN_ERR_CANCELLED"), (GN_ERR_OUT_OF_MEMORY, "GN_ERR_OUT_OF_MEMORY"),
        (GN_ERR_BUSY, "GN_ERR_BUSY"),
        (GN_ERR_INTERNAL, "GN_ERR_INTERNAL"),
    ]
    var table: [UInt32: UnsafePointer<CChar>] = [:]
    for (s, n) in names { table[s.rawValue] = UnsafePointer(strdup(n)!) }
    return table
}()

private let unknownStatus: UnsafePointer<CChar> = UnsafePointer(strdup("GN_UNKNOWN_STATUS")!)

@_cdecl("gn_status_name")
public func gn_status_name(_ status: gn_status) -> UnsafePointer<CChar>? {
    statusNames[status.rawValue] ?? unknownStatus
}

private let versionString: UnsafePointer<CChar> = UnsafePointer(strdup("\(GN_VERSION_MAJOR).\(GN_VERSION_MINOR).\(GN_VERSION_PATCH)")!)

@_cdecl("gn_version")
public func gn_version() -> UnsafePointer<CChar>? { versionString }

@_cdecl("gn_version_number")
public func gn_version_number() -> Int32 { Int32(GN_VERSION_MAJOR * 10000 + GN_VERSION_MINOR * 100 + GN_VERSION_PATCH) }
