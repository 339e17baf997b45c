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
        guard let raw = malloc(bytes) else {
            throw GatedNetError.outOfMemory("\(what): cannot allocate \(bytes) bytes (\(Allocation.readable(bytes)) for \(count) values)")
        }
        pointer = raw.bindMemory(to: Element.self, capacity: Swift.max(count, 1))
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
