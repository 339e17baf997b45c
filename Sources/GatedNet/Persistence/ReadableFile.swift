import Glibc

/// A regular file open for reading, with its size at opening. Loaders read a fixed header,
/// check it against `size`, and then read only what it announces, so nothing they read can
/// grow without bound. FIFOs, devices (/dev/zero) and directories are refused at opening
/// (`.io`): the file is opened O_NONBLOCK, so even a FIFO without a writer cannot block.
final class ReadableFile {
    let descriptor: Int32
    let size: Int
    let path: FilePath

    /// `what` names the reader in messages ("network file", "idx").
    init(_ path: FilePath, what: String) throws {
        var fd: Int32 = -1
        repeat {
            fd = path.withCString { open($0, O_RDONLY | O_NONBLOCK | O_CLOEXEC) }
        } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw GatedNetError.io("\(what): cannot open \(path): \(osReason())") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let reason = osReason()
            close(fd)
            throw GatedNetError.io("\(what): cannot stat \(path): \(reason)")
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw GatedNetError.io("\(what): \(path) is \(fileTypeName(st.st_mode)), not a regular file")
        }
        descriptor = fd
        size = Int(st.st_size)
        self.path = path
    }

    deinit { close(descriptor) }

    /// Read into `buffer` from byte `offset` until it is full or the file ends; returns the
    /// number of bytes read.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int, what: String) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw GatedNetError.io("\(what): cannot read \(path): \(osReason())")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }
}

private func fileTypeName(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFDIR: "a directory"
    case S_IFIFO: "a FIFO (named pipe)"
    case S_IFCHR: "a character device"
    case S_IFBLK: "a block device"
    case S_IFSOCK: "a socket"
    default: "not a regular file"
    }
}

/// The whole contents of a regular file (its size at opening); `.io` with the OS reason.
func readFile(_ path: FilePath) throws -> [UInt8] {
    let file = try ReadableFile(path, what: "read")
    var out = [UInt8](repeating: 0, count: file.size)
    let n = try out.withUnsafeMutableBytes { try file.read(into: $0, at: 0, what: "read") }
    return Array(out[0..<n])
}

func readFile(_ path: String) throws -> [UInt8] { try readFile(FilePath(path)) }
