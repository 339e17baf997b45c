@testable import GatedNet
import Testing

/// The message of an `.outOfMemory` error thrown by `body`, or nil (and a recorded issue).
private func outOfMemoryMessage(_ body: () throws -> Void) -> String? {
    do {
        try body()
        Issue.record("no error thrown")
    } catch GatedNetError.outOfMemory(let m) {
        return m
    } catch {
        Issue.record("expected .outOfMemory, got \(error)")
    }
    return nil
}

@Suite("Caller-sized allocations fail with .outOfMemory naming the size, never abort (issue 12)")
struct AllocationTests {
    @Test("an allocation beyond the address space throws with its size")
    func beyondAddressSpace() {
        // 2^59 doubles = 2^62 bytes: more than any x86-64 address space, whatever the overcommit policy.
        let m = outOfMemoryMessage { _ = try Allocation<Double>(count: 1 << 59, what: "probe") }
        #expect(m?.contains("probe") == true && m?.contains("4611686018427387904 bytes") == true, "\(m ?? "")")
        // a byte count that overflows Int
        #expect(outOfMemoryMessage { _ = try Allocation<Double>(count: Int.max / 4, what: "probe") } != nil)
    }

    @Test("an allocation holds its values")
    func holdsValues() throws {
        let a = try Allocation<Int32>(count: 1000, repeating: 7, what: "small")
        #expect(a.count == 1000)
        #expect((0..<1000).reduce(0) { $0 + Int(a.pointer[$1]) } == 7000)
        #expect(Allocation<Double>.readable(34_359_738_368) == "34.4 GB")
        #expect(Allocation<Double>.readable(999) == "999 bytes")
    }

    /// n = 2^29: the n × n double copy (2^61 bytes) fails before the kernel is read, so each
    /// call throws at once (k is a 1-element buffer here: reading it first would crash).
    @Test("kernel algebra at a size the machine cannot serve throws before reading the kernel")
    func kernelAlgebraUnservable() {
        let n = 1 << 29
        var k: Float = 1, y: Float = 1, alpha: Float = 0
        var out: Double = 0
        let messages = [
            outOfMemoryMessage { try KernelAlgebra.eigenvalues(&k, n: n, ld: n, into: &out) },
            outOfMemoryMessage { _ = try KernelAlgebra.nu(&k, n: n, ld: n, y: &y) },
            outOfMemoryMessage { _ = try KernelAlgebra.ridgeFit(&k, n: n, ld: n, targets: &y, t: 1, ridge: 0, alpha: &alpha) },
        ]
        for m in messages { #expect(m?.contains("2305843009213693952 bytes") == true, "\(m ?? "")") }
    }

    /// The copy is checked for NaN/Inf in the upper triangle only (the lower one may be garbage).
    @Test("kernel algebra rejects NaN in the upper triangle and ignores the lower one")
    func nonFiniteUpperTriangle() throws {
        let k: [Float] = [2, .nan, .nan, 1]
        do {
            _ = try k.withUnsafeBufferPointer { try KernelAlgebra.eigenvalues($0.baseAddress!, n: 2, ld: 2) }
            Issue.record("NaN accepted")
        } catch GatedNetError.notFinite(let m) {
            #expect(m.contains("row 0"), "\(m)")
        }
        let lowerGarbage: [Float] = [2, 0, .nan, 1]
        let ev = try lowerGarbage.withUnsafeBufferPointer { try KernelAlgebra.eigenvalues($0.baseAddress!, n: 2, ld: 2) }
        #expect(ev == [2, 1])
    }
}
