import Glibc

/// A file system path as the bytes the operating system sees. POSIX paths are byte strings
/// with no encoding: a path that is not UTF-8 (`caf\xE9.gnet` in Latin-1) reaches `open` and
/// `rename` unchanged, never re-encoded. Every file API of the engine takes one.
public struct FilePath: Hashable, Sendable, CustomStringConvertible {
    /// The path without its terminating NUL: never empty, never containing NUL.
    public let bytes: [UInt8]

    /// Throws `.invalidArgument` for an empty path or one containing a NUL byte.
    public init<S: Sequence>(bytes: S) throws where S.Element == UInt8 {
        let b = Array(bytes)
        guard !b.isEmpty else { throw GatedNetError.invalidArgument("path: is empty") }
        guard !b.contains(0) else { throw GatedNetError.invalidArgument("path: contains a NUL byte") }
        self.bytes = b
    }

    /// The UTF-8 bytes of a Swift string (throws like `init(bytes:)`).
    public init(_ string: String) throws { try self.init(bytes: string.utf8) }

    /// The bytes of a NUL-terminated C string, copied as they are (throws if it is empty).
    public init(cString: UnsafePointer<CChar>) throws {
        try self.init(bytes: UnsafeRawBufferPointer(start: cString, count: strlen(cString)))
    }

    /// Call `body` with the path as a NUL-terminated C string.
    public func withCString<R>(_ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        try (bytes + [0]).withUnsafeBufferPointer { b in
            try b.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
        }
    }

    /// For messages: the path as text when it is UTF-8; otherwise every byte outside printable
    /// ASCII is shown as \xNN, so two different paths never print alike.
    public var description: String {
        let text = String(decoding: bytes, as: UTF8.self)
        if Array(text.utf8) == bytes { return text }
        var out = ""
        for b in bytes {
            if b >= 0x20 && b < 0x7F && b != UInt8(ascii: "\\") {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                let hex = String(b, radix: 16, uppercase: true)
                out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }

    /// The directory holding the path's last component ("." for a bare name, "/" at the root).
    var directory: FilePath {
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return FilePath(trusted: [UInt8(ascii: ".")]) }
        return FilePath(trusted: slash == 0 ? [UInt8(ascii: "/")] : Array(bytes[..<slash]))
    }

    /// The last component (empty when the path ends in "/").
    var lastComponent: [UInt8] {
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return bytes }
        return Array(bytes[(slash + 1)...])
    }

    private init(trusted: [UInt8]) { bytes = trusted }
}

/// `strerror(errno)` as a String.
func osReason(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }
