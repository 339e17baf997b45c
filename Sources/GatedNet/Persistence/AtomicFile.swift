import Glibc

/// Replacing a file so that a reader of its path sees the old file or the new one, never a mix,
/// whatever other savers, readers or planted symbolic links do, and whenever the process dies.
///
/// The bytes go to a temporary file in the target's directory, are fsynced, and the file is
/// renamed over the target; then the directory is fsynced. The temporary file is
/// - unnamed where the file system allows (O_TMPFILE): it gets a name (linkat) only once
///   complete, just before the rename, so a SIGKILL while writing leaves nothing behind;
/// - otherwise created exclusively (O_CREAT | O_EXCL | O_NOFOLLOW, which never follows or
///   reuses an existing name) under a random name. A process killed while writing it leaves it
///   behind; so may one killed in the microseconds between linkat and rename.
/// Temporary names are `.<name>.gntmp-<host>-<pid>-<random>`. Each save removes those of its
/// own target left by dead processes of this host (a regular file owned by this user, whose
/// pid no longer exists), so residue never accumulates.
enum AtomicFile {
    // Computed, not lazy globals: nothing here should depend on swift_once after a fork.
    static var marker: [UInt8] { Array(".gntmp-".utf8) }

    /// `unnamed: false` skips O_TMPFILE (tests use it to exercise the named temporary file).
    static func write(_ bytes: [UInt8], to path: FilePath, unnamed: Bool = true) throws {
        let name = path.lastComponent
        guard !name.isEmpty, name != [UInt8(ascii: ".")], name != Array("..".utf8) else {
            throw GatedNetError.invalidArgument("path: \(path) names a directory, not a file")
        }
        let dir = path.directory
        var dfd: Int32 = -1
        repeat { dfd = dir.withCString { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) } } while dfd < 0 && errno == EINTR
        guard dfd >= 0 else { throw GatedNetError.io("save: cannot save \(path): its directory \(dir) cannot be opened: \(osReason())") }
        defer { close(dfd) }
        removeStaleTemporaries(of: name, in: dfd)

        let temp = try bytes.withUnsafeBytes { raw in
            if unnamed, let t = try writeUnnamed(raw, of: name, in: dfd, path: path) { return t }
            return try writeNamed(raw, of: name, in: dfd, path: path)
        }
        let renamed = temp.withUnsafeBufferPointer { t in
            (name + [0]).withUnsafeBufferPointer { n in renameat(dfd, cstr(t), dfd, cstr(n)) }
        }
        guard renamed == 0 else {
            let reason = osReason()
            unlink(temp, in: dfd)
            throw GatedNetError.io("save: cannot rename the temporary file over \(path): \(reason)")
        }
        // Make the rename itself durable. Some file systems cannot sync a directory (EINVAL).
        if fsync(dfd) != 0 && errno != EINVAL && errno != EROFS {
            throw GatedNetError.io("save: \(path) was replaced, but syncing its directory failed: \(osReason())")
        }
    }

    // MARK: the two kinds of temporary file

    /// Write an O_TMPFILE and give it a fresh temporary name; nil where the file system or
    /// kernel does not support it (the caller then uses a named file).
    private static func writeUnnamed(_ bytes: UnsafeRawBufferPointer, of name: [UInt8], in dfd: Int32,
                                     path: FilePath) throws -> [UInt8]? {
        #if os(Linux) && (arch(x86_64) || arch(arm64))
        let oTmpfile: Int32 = 0o20000000 | O_DIRECTORY  // __O_TMPFILE | O_DIRECTORY (asm-generic)
        let fd = openat(dfd, ".", oTmpfile | O_WRONLY | O_CLOEXEC, 0o666)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        try writeAll(bytes, to: fd, path: path)
        for _ in 0..<64 {
            let temp = temporaryName(of: name) + [0]
            // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH on older kernels; /proc/self/fd does not.
            var linked = temp.withUnsafeBufferPointer { linkat(fd, "", dfd, cstr($0), 0x1000 /* AT_EMPTY_PATH */) }
            if linked != 0 && errno != EEXIST {
                linked = temp.withUnsafeBufferPointer { linkat(AT_FDCWD, "/proc/self/fd/\(fd)", dfd, cstr($0), AT_SYMLINK_FOLLOW) }
            }
            if linked == 0 { return temp }
            if errno != EEXIST { return nil }
        }
        throw GatedNetError.io("save: no free temporary name next to \(path) after 64 tries")
        #else
        return nil
        #endif
    }

    /// Create a temporary file exclusively under a fresh random name and write it.
    private static func writeNamed(_ bytes: UnsafeRawBufferPointer, of name: [UInt8], in dfd: Int32,
                                   path: FilePath) throws -> [UInt8] {
        for _ in 0..<64 {
            let temp = temporaryName(of: name) + [0]
            let fd = temp.withUnsafeBufferPointer {
                openat(dfd, cstr($0), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o666)
            }
            if fd < 0 {
                if errno == EEXIST || errno == EINTR { continue }
                throw GatedNetError.io("save: cannot create a temporary file next to \(path): \(osReason())")
            }
            do {
                try writeAll(bytes, to: fd, path: path)
            } catch {
                close(fd)
                unlink(temp, in: dfd)
                throw error
            }
            guard close(fd) == 0 else {
                let reason = osReason()
                unlink(temp, in: dfd)
                throw GatedNetError.io("save: writing next to \(path) failed: \(reason)")
            }
            return temp
        }
        throw GatedNetError.io("save: no free temporary name next to \(path) after 64 tries")
    }

    /// Write every byte and fsync.
    private static func writeAll(_ bytes: UnsafeRawBufferPointer, to fd: Int32, path: FilePath) throws {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, min(bytes.count - done, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw GatedNetError.io("save: writing \(path) failed: \(osReason())")
            }
            done += n
        }
        guard fsync(fd) == 0 else { throw GatedNetError.io("save: syncing \(path) failed: \(osReason())") }
    }

    // MARK: temporary names

    /// `.<name>.gntmp-<host>-<pid>-` (name shortened so the whole stays under NAME_MAX).
    static func temporaryPrefix(of name: [UInt8], pid: Int32 = getpid()) -> [UInt8] {
        [UInt8(ascii: ".")] + name.prefix(160) + marker + Array("\(hostTag)-\(pid)-".utf8)
    }

    private static func temporaryName(of name: [UInt8]) -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        let random = String(rng.next(), radix: 16)
        return temporaryPrefix(of: name) + Array(random.utf8)
    }

    /// 8 hex digits naming this host (FNV-1a of its host name), so that a directory shared
    /// over the network never has one host judge another host's process ids.
    static var hostTag: String {
        var buf = [CChar](repeating: 0, count: 256)
        _ = gethostname(&buf, buf.count - 1)
        var h: UInt32 = 2_166_136_261
        for c in buf.prefix(while: { $0 != 0 }) { h = (h ^ UInt32(UInt8(bitPattern: c))) &* 16_777_619 }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// Remove temporary files of `name` left by dead processes of this host. Only regular
    /// files owned by this user are touched; anything else (symlinks included) stays.
    static func removeStaleTemporaries(of name: [UInt8], in dfd: Int32) {
        let hostPrefix = [UInt8(ascii: ".")] + name.prefix(160) + marker + Array("\(hostTag)-".utf8)
        let copy = dup(dfd)
        guard copy >= 0, let d = fdopendir(copy) else { if copy >= 0 { close(copy) }; return }
        defer { closedir(d) }
        var stale: [[UInt8]] = []
        while let entry = readdir(d) {
            // d_name is read through a pointer: a record may end before the declared 256 bytes.
            let namePointer = UnsafeRawPointer(entry) + MemoryLayout<dirent>.offset(of: \dirent.d_name)!
            let entryName = Array(UnsafeRawBufferPointer(start: namePointer, count: strlen(namePointer.assumingMemoryBound(to: CChar.self))))
            guard entryName.count > hostPrefix.count, Array(entryName.prefix(hostPrefix.count)) == hostPrefix else { continue }
            let rest = entryName[hostPrefix.count...]
            guard let dash = rest.firstIndex(of: UInt8(ascii: "-")),
                  let pid = Int32(String(decoding: rest[..<dash], as: UTF8.self)), pid > 0, pid != getpid() else { continue }
            guard kill(pid, 0) != 0 && errno == ESRCH else { continue }  // alive (or not ours to ask)
            stale.append(entryName + [0])
        }
        for s in stale {
            var st = stat()
            let ok = s.withUnsafeBufferPointer { fstatat(dfd, cstr($0), &st, AT_SYMLINK_NOFOLLOW) } == 0
            if ok && st.st_mode & S_IFMT == S_IFREG && st.st_uid == geteuid() { unlink(s, in: dfd) }
        }
    }

    private static func unlink(_ temp: [UInt8], in dfd: Int32) {
        _ = temp.withUnsafeBufferPointer { unlinkat(dfd, cstr($0), 0) }
    }
}

/// A NUL-terminated byte array as a C string.
@inline(__always)
private func cstr(_ b: UnsafeBufferPointer<UInt8>) -> UnsafePointer<CChar> {
    UnsafeRawPointer(b.baseAddress!).assumingMemoryBound(to: CChar.self)
}
