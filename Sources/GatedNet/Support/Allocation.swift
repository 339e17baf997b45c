import Glibc

/// Memory for `count` values of a trivial type (Float, Double, Int32, ...) whose size comes
/// from a caller: malloc'd, so a size the machine cannot provide throws `.outOfMemory` naming
/// `what` and the bytes instead of aborting the process as a Swift array would. Freed on deinit.
public final class Allocation<Element> {
    public let pointer: UnsafeMutablePointer<Element>
    public let count: Int

    /// Uninitialised memory for `count` values.
    public init(count: Int, what: String) throws {
        let bytes = try checkedCount(Swift.max(count, 1), MemoryLayout<Element>.stride, what: what)
        let raw = try allocateBytes(bytes, for: "\(what) (\(count) values)")
        pointer = raw.baseAddress!.bindMemory(to: Element.self, capacity: Swift.max(count, 1))
        self.count = count
    }

    /// `count` copies of `value`.
    public convenience init(count: Int, repeating value: Element, what: String) throws {
        try self.init(count: count, what: what)
        pointer.initialize(repeating: value, count: count)
    }

    deinit { free(pointer) }

    /// Bytes as "34.4 GB" (decimal units).
    static func readable(_ bytes: Int) -> String {
        let units = ["bytes", "kB", "MB", "GB", "TB", "PB", "EB"]
        var v = Double(bytes), u = 0
        while v >= 1000 && u < units.count - 1 { v /= 1000; u += 1 }
        return u == 0 ? "\(bytes) bytes" : "\((v * 10).rounded() / 10) \(units[u])"
    }
}

/// `count` bytes whose size comes from outside (a file, a caller's n), or `.outOfMemory` naming
/// `what` and the size — never a trap: refused when larger than the machine's physical memory
/// (so the answer does not depend on the overcommit policy) or when malloc fails. Release with
/// `free`. The one allocation rule for caller-sized memory (`Allocation` uses it too).
func allocateBytes(_ count: Int, for what: String) throws -> UnsafeMutableRawBufferPointer {
    try requireMemory(count, for: what)
    guard let p = malloc(max(count, 1)) else { throw outOfMemory(count, what) }
    return UnsafeMutableRawBufferPointer(start: p, count: count)
}

/// The check of `allocateBytes` alone, for work that allocates `bytes` of scratch in several
/// buffers (e.g. the gates of a kernel's rows): `.outOfMemory` when more than physical memory.
func requireMemory(_ bytes: Int, for what: String) throws {
    let physical = Int(sysconf(Int32(_SC_PHYS_PAGES))).multipliedReportingOverflow(by: Int(sysconf(Int32(_SC_PAGESIZE))))
    guard bytes >= 0, physical.overflow || physical.partialValue <= 0 || bytes <= physical.partialValue else {
        throw outOfMemory(bytes, what)
    }
}

private func outOfMemory(_ bytes: Int, _ what: String) -> GatedNetError {
    .outOfMemory("\(what): cannot allocate \(bytes) bytes (\(Allocation<UInt8>.readable(bytes)))")
}
