@testable import GatedNet
import CZlib
import Dispatch
import Glibc
import Testing

// Issue 12, items 3 and 6–10: loaders read only what a checked header announces, saves are
// atomic against concurrent savers, readers, planted symlinks and dead processes, paths are
// bytes, and non-finite weights are refused at load as set_weights refuses them.

/// A fresh empty directory; removed (with its entries) by `removeDirectory`.
func temporaryDirectory(_ tag: String) -> String {
    let path = temporaryPath(tag)
    mkdir(path, 0o700)
    return path
}

func removeDirectory(_ path: String) {
    for name in directoryEntries(path) { _ = (Array(path.utf8) + [UInt8(ascii: "/")] + name + [0]).withUnsafeBufferPointer { unlink(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self)) } }
    rmdir(path)
}

/// Entry names of a directory as bytes ("." and ".." left out).
func directoryEntries(_ path: String) -> [[UInt8]] {
    guard let d = opendir(path) else { return [] }
    defer { closedir(d) }
    var out: [[UInt8]] = []
    while let e = readdir(d) {
        let p = UnsafeRawPointer(e) + MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        let name = Array(UnsafeRawBufferPointer(start: p, count: strlen(p.assumingMemoryBound(to: CChar.self))))
        if name != Array(".".utf8) && name != Array("..".utf8) { out.append(name) }
    }
    return out
}

/// Integers shared between test threads, under a mutex.
final class SharedCounters: @unchecked Sendable {
    private var m = pthread_mutex_t()
    private var values: [Int]
    init(_ count: Int) { values = [Int](repeating: 0, count: count); pthread_mutex_init(&m, nil) }
    subscript(i: Int) -> Int {
        pthread_mutex_lock(&m); defer { pthread_mutex_unlock(&m) }
        return values[i]
    }
    func add(_ i: Int, _ v: Int = 1) {
        pthread_mutex_lock(&m); defer { pthread_mutex_unlock(&m) }
        values[i] += v
    }
}

/// Run `body(0) ... body(count - 1)` on `count` threads of their own at once; returns when all end.
func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Job: @unchecked Sendable {
        let body: @Sendable (Int) -> Void, index: Int
        init(_ body: @escaping @Sendable (Int) -> Void, _ index: Int) { self.body = body; self.index = index }
    }
    let threads = (0..<count).map { i -> pthread_t in
        var t = pthread_t()
        let job = Unmanaged.passRetained(Job(body, i)).toOpaque()
        pthread_create(&t, nil, { raw in
            let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
            job.body(job.index)
            return nil
        }, job)
        return t
    }
    for t in threads { pthread_join(t, nil) }
}

/// Runs `body` while a watchdog thread, after `seconds`, opens `fifo` for writing and closes
/// it, so that a reader blocked on the FIFO gets EOF instead of hanging the test run.
func withFIFOWatchdog<T>(_ fifo: String, seconds: Int, _ body: () throws -> T) rethrows -> T {
    let done = SharedCounters(1)
    let finished = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        for _ in 0..<(seconds * 10) where done[0] == 0 { usleep(100_000) }
        if done[0] == 0 {
            let fd = open(fifo, O_WRONLY | O_NONBLOCK)
            if fd >= 0 { close(fd) }
        }
        finished.signal()
    }
    defer {
        done.add(0)
        finished.wait()
    }
    return try body()
}

func isIOError(_ body: () throws -> Any) -> String? {
    do { _ = try body(); return nil } catch GatedNetError.io(let m) { return m } catch { return nil }
}

/// Offset of the first occurrence of `value`'s little-endian bytes after the 24-byte header.
func offsetOf(_ value: Float, in bytes: [UInt8]) -> Int? {
    let b = withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) }
    return (24..<(bytes.count - 8)).first { Array(bytes[$0..<($0 + 4)]) == b }
}

@Suite("File safety: bounded reads, atomic saves, byte paths, finite weights")
struct FileSafetyTests {
    @Test("loading a FIFO, a device or a directory is an I/O error at once, never a blocked or endless read")
    func nonRegularFilesRefused() throws {
        let dir = temporaryDirectory("fifo")
        defer { removeDirectory(dir) }
        let fifo = dir + "/pipe.gnet"
        #expect(mkfifo(fifo, 0o600) == 0)
        for path in [fifo, "/dev/zero", "/dev/null", dir] {
            // Before the fix, a FIFO blocked (until the watchdog) and /dev/zero read forever.
            let messages = withFIFOWatchdog(fifo, seconds: 20) {
                [isIOError { try NetworkArchive.load(from: path) }, isIOError { try ConvNetworkArchive.load(from: path) },
                 isIOError { try IDXArray(path: path) }, isIOError { try IDXArray.dims(path: path) }]
            }
            for m in messages {
                #expect(m?.contains("not a regular file") == true, "\(path): \(m ?? "no I/O error")")
            }
        }
    }

    @Test("a header announcing more bytes than the file holds is refused before anything is allocated")
    func headerCheckedFirst() throws {
        let dir = temporaryDirectory("header")
        defer { removeDirectory(dir) }
        let net = try GatedNetwork(spec: makeSpec(.relu, 3, [4], 1, seed: 901))
        var bytes = NetworkArchive.encode(net, includeOptimizer: false)
        for i in 0..<8 { bytes[16 + i] = UInt8((1 << 40) >> (8 * i) & 255) }  // payload length 2^40
        let path = dir + "/huge.gnet"
        try writeFile(path, bytes)
        do {
            _ = try NetworkArchive.load(from: path)
            Issue.record("accepted")
        } catch GatedNetError.corrupt(let m) {
            #expect(m.contains("payload length 1099511627776"), "\(m)")
        }
        // Short files, foreign magic and the intact file.
        for n in [0, 5, 8, 27] {
            try writeFile(path, Array(NetworkArchive.encode(net, includeOptimizer: false).prefix(n)))
            #expect(isCorrupt { try NetworkArchive.load(from: path) }, "\(n) bytes")
        }
        try writeFile(path, NetworkArchive.encode(net, includeOptimizer: false))
        #expect(try NetworkArchive.load(from: path).isBitIdentical(to: net))
    }

    @Test("an IDX read checks its dimensions against the capacity before inflating, and inflates only what they announce")
    func idxReadsAreBounded() throws {
        let dir = temporaryDirectory("idx")
        defer { removeDirectory(dir) }
        let gz = dir + "/bomb.idx.gz"
        // 10 int32 values announced, 64 MiB of zeros present (about 64 KB compressed).
        try writeGzip(gz, idxBytes(type: 0x0C, dims: [10], payload: [UInt8](repeating: 0, count: 64 << 20)))
        do {
            _ = try IDXArray(path: gz, maxCount: 10)
            Issue.record("accepted")
        } catch GatedNetError.corrupt(let m) {
            #expect(m.contains("more data than its dimensions [10] announce"), "\(m)")
        }
        // 2^24 values announced, capacity 10: refused from the header alone.
        try writeGzip(gz, idxBytes(type: 0x0C, dims: [1 << 24], payload: [UInt8](repeating: 0, count: 1 << 26)))
        do {
            _ = try IDXArray(path: gz, maxCount: 10)
            Issue.record("accepted")
        } catch GatedNetError.bufferTooSmall(let m) {
            #expect(m.contains("capacity: 10") && m.contains("16777216"), "\(m)")
        }
        // Exactly the announced count reads, plain and compressed; one value fewer is too small.
        let values: [UInt8] = (0..<24).map { UInt8($0) }
        let plain = dir + "/ok.idx"
        try writeFile(plain, idxBytes(type: 0x08, dims: [4, 6], payload: values))
        try writeGzip(gz, idxBytes(type: 0x08, dims: [4, 6], payload: values))
        for p in [plain, gz] {
            #expect(try IDXArray(path: p, maxCount: 24).floats() == values.map(Float.init))
            #expect(throws: GatedNetError.self) { try IDXArray(path: p, maxCount: 23) }
        }
        // A plain file with a shorter or longer body than announced.
        try writeFile(plain, idxBytes(type: 0x08, dims: [4, 6], payload: Array(values.dropLast())))
        #expect(isCorrupt { try IDXArray(path: plain) })
        try writeFile(plain, idxBytes(type: 0x08, dims: [4, 6], payload: values + [1]))
        #expect(isCorrupt { try IDXArray(path: plain) })
    }

    @Test("concurrent savers of distinct networks to one path and a reader: every save succeeds, every load is one complete network")
    func concurrentSavesAndReader() throws {
        for unnamed in [true, false] {
            let dir = temporaryDirectory("race")
            defer { removeDirectory(dir) }
            let path = try FilePath(dir + "/shared.gnet")
            let nets = try (0..<3).map { k in try GatedNetwork(spec: makeSpec(.decoupled, 20 + k, [200 + 10 * k], 3, seed: UInt64(910 + k))) }
            let encoded = nets.map { NetworkArchive.encode($0, includeOptimizer: false) }
            try AtomicFile.write(encoded[0], to: path, unnamed: unnamed)
            let counts = SharedCounters(5)  // save failures, loads ok, bad, missing; savers done
            // Real threads (the dispatch pool of a 2-core machine may run the savers one by one).
            runThreads(4) { t in
                if t == 3 {  // the reader
                    while counts[4] < 3 {
                        do {
                            let loaded = try NetworkArchive.load(from: path)
                            counts.add(encoded.contains(NetworkArchive.encode(loaded, includeOptimizer: false)) ? 1 : 2)
                        } catch GatedNetError.io { counts.add(3) } catch { counts.add(2) }
                    }
                    return
                }
                for _ in 0..<50 {
                    do { try AtomicFile.write(encoded[t], to: path, unnamed: unnamed) } catch { counts.add(0) }
                }
                counts.add(4)
            }
            let failures = (0..<4).map { counts[$0] }
            #expect(failures[0] == 0, "unnamed \(unnamed): \(failures[0]) of 150 saves failed")
            #expect(failures[2] == 0 && failures[3] == 0, "unnamed \(unnamed): \(failures[2]) corrupt or mixed, \(failures[3]) missing of \(failures[1] + failures[2] + failures[3]) loads")
            #expect(directoryEntries(dir) == [Array("shared.gnet".utf8)])
        }
    }

    @Test("a symlink planted at the old predictable temporary name is never followed")
    func plantedSymlinkNotFollowed() throws {
        for unnamed in [true, false] {
            let dir = temporaryDirectory("link")
            defer { removeDirectory(dir) }
            let target = dir + "/model.gnet", victim = dir + "/victim.txt"
            try writeFile(victim, Array("precious".utf8))
            for planted in [target + ".tmp.\(getpid())", target + ".tmp", target + ".new"] { #expect(symlink(victim, planted) == 0) }
            let net = try GatedNetwork(spec: makeSpec(.relu, 3, [4], 2, seed: 920))
            try AtomicFile.write(NetworkArchive.encode(net, includeOptimizer: false), to: FilePath(target), unnamed: unnamed)
            try NetworkArchive.save(net, to: target, includeOptimizer: false)
            #expect(try readFile(victim) == Array("precious".utf8))
            #expect(try NetworkArchive.load(from: target).isBitIdentical(to: net))
            #expect(directoryEntries(dir).count == 5)  // target, victim, three links
        }
    }

    @Test("a save removes temporary files of its target left by dead processes of this host, and nothing else")
    func staleTemporariesRemoved() throws {
        let dir = temporaryDirectory("stale")
        defer { removeDirectory(dir) }
        let name = Array("net.gnet".utf8)
        let deadPid: Int32 = 4_194_305  // above the largest pid_max: no such process
        #expect(kill(deadPid, 0) != 0 && errno == ESRCH)
        func tempName(pid: Int32, host: String = AtomicFile.hostTag, of n: [UInt8] = name, random: String = "abc123") -> String {
            String(decoding: [UInt8(ascii: ".")] + n + AtomicFile.marker + Array("\(host)-\(pid)-\(random)".utf8), as: UTF8.self)
        }
        let stale = tempName(pid: deadPid)
        let own = tempName(pid: getpid())                          // a save in progress in this process
        let otherHost = tempName(pid: deadPid, host: "0badf00d")  // pids of other hosts mean nothing here
        let otherTarget = tempName(pid: deadPid, of: Array("other.gnet".utf8))
        let link = tempName(pid: deadPid, random: "link")
        for f in [stale, own, otherHost, otherTarget] { try writeFile(dir + "/" + f, [1, 2, 3]) }
        #expect(symlink(dir + "/" + own, dir + "/" + link) == 0)
        let net = try GatedNetwork(spec: makeSpec(.relu, 3, [4], 2, seed: 930))
        for unnamed in [true, false] {
            try AtomicFile.write(NetworkArchive.encode(net, includeOptimizer: false), to: FilePath(dir + "/net.gnet"), unnamed: unnamed)
        }
        let left = Set(directoryEntries(dir).map { String(decoding: $0, as: UTF8.self) })
        #expect(left == Set(["net.gnet", own, otherHost, otherTarget, link]), "\(left)")
    }

    @Test("paths are bytes: a Latin-1 name is created exactly, and a never-written name is not found")
    func nonUTF8Paths() throws {
        let dir = temporaryDirectory("bytes")
        defer { removeDirectory(dir) }
        let latin1 = try FilePath(bytes: Array(dir.utf8) + Array("/caf".utf8) + [0xE9] + Array(".gnet".utf8))
        let never = try FilePath(bytes: Array(dir.utf8) + Array("/caf".utf8) + [0xFF] + Array(".gnet".utf8))
        #expect(latin1.description == dir + "/caf\\xE9.gnet")
        let net = try GatedNetwork(spec: makeSpec(.relu, 3, [4], 2, seed: 940))
        try NetworkArchive.save(net, to: latin1, includeOptimizer: false)
        #expect(directoryEntries(dir) == [Array("caf".utf8) + [0xE9] + Array(".gnet".utf8)])
        #expect(try NetworkArchive.load(from: latin1).isBitIdentical(to: net))
        let m = isIOError { try NetworkArchive.load(from: never) }
        #expect(m?.contains("caf\\xFF.gnet") == true, "\(m ?? "loaded")")
        // IDX files under such names.
        let idx = try FilePath(bytes: Array(dir.utf8) + [UInt8(ascii: "/"), 0xE9] + Array(".idx".utf8))
        let bytes = idxBytes(type: 0x08, dims: [3], payload: [7, 8, 9])
        let f = idx.withCString { fopen($0, "wb") }
        #expect(f != nil)
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
        #expect(try IDXArray(path: idx).int32s() == [7, 8, 9])
        #expect(try IDXArray.dims(path: idx) == [3])
        // Empty paths and embedded NULs are argument errors.
        #expect(throws: GatedNetError.self) { try FilePath("") }
        #expect(throws: GatedNetError.self) { try FilePath(bytes: [0x61, 0, 0x62]) }
    }

    @Test("an archive with a valid checksum but a NaN or infinite weight or moment is corrupt, as set_weights refuses it")
    func nonFiniteWeightsRejected() throws {
        let (_, net, _) = try trainedNetworks()[0]
        let bytes = NetworkArchive.encode(net, includeOptimizer: true)
        let weight = net.parameterTensors[1].buffer[3]
        let moment = try #require(net.optimizerState?.second.values.first?[0])
        for value in [weight, moment] {
            let at = try #require(offsetOf(value, in: bytes))
            for bad in [Float.nan, .infinity, -.infinity] {
                var poisoned = bytes
                withUnsafeBytes(of: bad.bitPattern.littleEndian) { for i in 0..<4 { poisoned[at + i] = $0[i] } }
                do {
                    _ = try decodeArchive(withChecksum(poisoned))
                    Issue.record("\(bad) at byte \(at) accepted")
                } catch GatedNetError.corrupt(let m) {
                    #expect(m.contains("NaN or Inf"), "\(m)")
                }
            }
        }
        // The rule itself, as set_weights applies it.
        var w: [Float] = [1, 2, .nan]
        #expect(throws: GatedNetError.notFinite("w: contains NaN or Inf (value 2 is nan)")) {
            try w.withUnsafeBufferPointer { try requireFiniteParameters($0.baseAddress!, count: 3, "w") }
        }
        w[2] = 3
        try w.withUnsafeBufferPointer { try requireFiniteParameters($0.baseAddress!, count: 3, "w") }
    }
}
