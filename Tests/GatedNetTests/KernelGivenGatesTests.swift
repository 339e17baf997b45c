@testable import GatedNet
import Glibc
import Testing

// KernelOptions.packedGatesA / B: the caller passes the packed hard gates of all rows of xa / xb
// (computed once by packedGates(_:rows:into:)) instead of each kernel call computing them. The
// kernel must be the one computed without them bit for bit, for every path kind that takes them,
// any block, either side given, with or without the transposed output; every call that cannot
// use them must be refused before anything is written.

/// Padding sentinel: a NaN payload no kernel produces.
private let sentinel = Float(bitPattern: 0x7FC0_F00D)

extension GatedNetwork {
    /// packedGates(_:rows:into:) of all rows of x into a new array.
    func packedAll(_ x: [Float]) throws -> [UInt64] {
        let n = x.count / inputSize
        var out = [UInt64](repeating: 0xDEAD_BEEF, count: n * packedGateWordsPerRow)
        try x.withUnsafeBufferPointer { xp in
            try out.withUnsafeMutableBufferPointer { try packedGates(xp.baseAddress!, rows: n, into: $0.baseAddress!) }
        }
        return out
    }

    /// The block `options` asks for between xa and xb (nil: xa, symmetric), with gates ga / gb
    /// given (nil: computed), into out (ld = cols + 2, padding kept at the sentinel) and, with
    /// `transposed`, a transposed output (ld = rows + 1). Returns both, sentinel padding included.
    func givenGatesKernel(_ choice: KernelChoice, _ xa: [Float], _ xb: [Float]?, ga: [UInt64]?, gb: [UInt64]?,
                          _ options: KernelOptions, transposed: Bool = false) throws -> (out: [Float], t: [Float]) {
        var out: [Float] = [], t: [Float] = []
        try givenGatesKernel(choice, xa, xb, ga: ga, gb: gb, options, transposed: transposed, out: &out, t: &t)
        return (out, t)
    }

    /// The same into `out` and `t`, which are (re)filled with the sentinel first.
    func givenGatesKernel(_ choice: KernelChoice, _ xa: [Float], _ xb: [Float]?, ga: [UInt64]?, gb: [UInt64]?,
                          _ options: KernelOptions, transposed: Bool, out: inout [Float], t: inout [Float]) throws {
        let na = xa.count / inputSize, nb = (xb ?? xa).count / inputSize
        let rows = (options.rows ?? 0..<na).count, cols = (options.cols ?? 0..<nb).count
        out = [Float](repeating: sentinel, count: rows * (cols + 2))
        t = [Float](repeating: sentinel, count: transposed ? cols * (rows + 1) : 0)
        try xa.withUnsafeBufferPointer { a in
            try (xb ?? xa).withUnsafeBufferPointer { b in
                try (ga ?? []).withUnsafeBufferPointer { gap in
                    try (gb ?? []).withUnsafeBufferPointer { gbp in
                        try out.withUnsafeMutableBufferPointer { o in
                            try t.withUnsafeMutableBufferPointer { tp in
                                var opt = options
                                opt.packedGatesA = ga == nil ? nil : UnsafePointer(gap.baseAddress!)
                                opt.packedGatesB = gb == nil ? nil : UnsafePointer(gbp.baseAddress!)
                                if transposed {
                                    opt.transposed = KernelOutput(pointer: tp.baseAddress!, rows: cols, cols: rows, ld: rows + 1)
                                }
                                try kernel(choice, xa: a.baseAddress!, na: na, xb: b.baseAddress!, nb: nb,
                                           symmetric: xb == nil,
                                           out: KernelOutput(pointer: o.baseAddress!, rows: rows, cols: cols, ld: cols + 2),
                                           options: opt)
                            }
                        }
                    }
                }
            }
        }
    }
}

@Suite("Kernel with given packed gates: bit for bit the computed kernel; refused where it cannot be used")
struct KernelGivenGatesTests {
    /// Widths 70 (a partial last word), 64 (a full word) and 130: 2 + 1 + 3 = 6 words per row.
    static let d = 12
    static func hardNet() throws -> GatedNetwork {
        try GatedNetwork(spec: makeSpec(.fixedRandomII, d, [70, 64, 130], 3, seed: 1201))
    }

    @Test("packedGates(into:) is the per-layer gate masks side by side; words per row Σ ⌈w/64⌉")
    func layout() throws {
        let net = try Self.hardNet()
        let n = 37
        let x = seededUniform(n * Self.d, seed: 1202)
        #expect(net.packedGateWordsPerRow == 6)
        let all = try net.packedAll(x)
        var offset = 0
        for l in 0..<3 {
            let mask = try x.withUnsafeBufferPointer { try net.gateMask($0.baseAddress!, rows: n, layer: l) }
            for r in 0..<n {
                let slice = Array(all[(r * 6 + offset)..<(r * 6 + offset + mask.wordsPerRow)])
                #expect(slice == Array(mask.words[(r * mask.wordsPerRow)..<((r + 1) * mask.wordsPerRow)]), "row \(r) layer \(l)")
            }
            offset += mask.wordsPerRow
        }
        // Gates are live (neither all on nor all off), so equality below is not vacuous.
        let ones = all.reduce(0) { $0 + $1.nonzeroBitCount }
        #expect(ones > n * 40 && ones < n * 224)
    }

    @Test("npk, npkNormalized, overlap, base(l): given gates (both, A only, B only) give the same bits, any block, with the transposed output")
    func bitIdentical() throws {
        let d = Self.d
        let net = try Self.hardNet()
        let tied = try GatedNetwork(spec: makeSpec(.relu, d, [40, 40], 2, seed: 1203))
        let x = seededUniform(600 * d, seed: 1204), y = seededUniform(250 * d, seed: 1205)
        let blocks: [(xb: [Float]?, rows: Range<Int>?, cols: Range<Int>?)] = [
            (nil, nil, nil), (y, nil, nil), (nil, 37..<590, 5..<560), (nil, 20..<550, 20..<550), (y, 100..<600, 11..<249),
        ]
        let cases: [(GatedNetwork, KernelKind)] = [
            (net, .npk), (net, .npkNormalized), (net, .overlap), (net, .base(layer: 0)), (net, .base(layer: 2)),
            (tied, .npk),
        ]
        for (n, kind) in cases {
            let gx = try n.packedAll(x), gy = try n.packedAll(y)
            for (xb, rows, cols) in blocks {
                for path in kind == .npk ? [GatePath.auto, .packed] : [.auto] {
                    var o = KernelOptions()
                    o.rows = rows; o.cols = cols; o.gatePath = path
                    let reference = try n.givenGatesKernel(.path(kind), x, xb, ga: nil, gb: nil, o, transposed: true)
                    #expect(reference.out.contains { !$0.isNaN && $0 != 0 })
                    let gb = xb == nil ? gx : gy
                    var variants: [(String, [UInt64]?, [UInt64]?)] = [("both", gx, xb == nil ? nil : gb), ("A only", gx, nil)]
                    if xb != nil { variants.append(("B only", nil, gb)) }
                    for (name, ga, gbb) in variants {
                        for transposed in [false, true] {
                            let given = try n.givenGatesKernel(.path(kind), x, xb, ga: ga, gb: gbb, o, transposed: transposed)
                            let same = bits(given.out) == bits(reference.out)
                                && (!transposed || bits(given.t) == bits(reference.t))
                            #expect(same, "\(kind) \(name) xb \(xb == nil ? "xa" : "y") rows \(String(describing: rows)) cols \(String(describing: cols)) \(path) transposed \(transposed)")
                        }
                    }
                }
            }
        }
    }

    @Test("symmetric call with gates B the same pointer as A: same bits")
    func symmetricSamePointer() throws {
        let d = Self.d
        let net = try Self.hardNet()
        let x = seededUniform(300 * d, seed: 1206)
        let g = try net.packedAll(x)
        var o = KernelOptions()
        o.rows = 10..<290; o.cols = 10..<290
        let reference = try net.givenGatesKernel(.path(.npkNormalized), x, nil, ga: nil, gb: nil, o)
        var out = [Float](repeating: sentinel, count: 280 * 280)
        try x.withUnsafeBufferPointer { a in
            try g.withUnsafeBufferPointer { gp in
                try out.withUnsafeMutableBufferPointer { op in
                    var opt = o
                    opt.packedGatesA = gp.baseAddress; opt.packedGatesB = gp.baseAddress
                    try net.kernel(.path(.npkNormalized), xa: a.baseAddress!, na: 300, xb: a.baseAddress!, nb: 300, symmetric: true,
                                   out: KernelOutput(pointer: op.baseAddress!, rows: 280, cols: 280, ld: 280), options: opt)
                }
            }
        }
        let ref = (0..<280).flatMap { r in reference.out[(r * 282)..<(r * 282 + 280)] }
        #expect(bits(out) == bits(Array(ref)))
    }

    /// The error of a call with given gates, and whether out stayed untouched.
    private func refused(_ net: GatedNetwork, _ choice: KernelChoice, _ x: [Float], _ xb: [Float]?,
                         ga: [UInt64]?, gb: [UInt64]?, _ options: KernelOptions = KernelOptions()) -> (GatedNetError?, Bool) {
        var caught: GatedNetError?
        var out: [Float] = [], t: [Float] = []
        do {
            try net.givenGatesKernel(choice, x, xb, ga: ga, gb: gb, options, transposed: true, out: &out, t: &t)
        } catch {
            caught = error as? GatedNetError
        }
        let untouched = (out + t).allSatisfy { $0.bitPattern == sentinel.bitPattern }
        return (caught, untouched)
    }

    @Test("other kinds, soft gates, float gate path, a different gates B in a symmetric call: refused")
    func refusedCalls() throws {
        let d = Self.d
        let net = try Self.hardNet()
        let x = seededUniform(40 * d, seed: 1207), y = seededUniform(30 * d, seed: 1208)
        let gx = try net.packedAll(x), gy = try net.packedAll(y)
        /// An invalidArgument whose message starts with `prefix`, nothing written.
        func invalid(_ r: (GatedNetError?, Bool), _ prefix: String) -> Bool {
            if case .invalidArgument(let m)? = r.0 { m.hasPrefix(prefix) && r.1 } else { false }
        }
        for choice in [KernelChoice.path(.inputGram), .npkTraceNormalized, .tangent(.value), .npkLimit, .ntkLimit] {
            #expect(invalid(refused(net, choice, x, y, ga: gx, gb: nil), "gates_a:"), "\(choice)")
            #expect(invalid(refused(net, choice, x, y, ga: nil, gb: gy), "gates_b:"), "\(choice)")
        }
        #expect(invalid(refused(net, .path(.npk), x, y, ga: gx, gb: gy, withPath(.float)), "gates_a:"))
        // Symmetric: gates B must be nil or gates A itself (an equal copy is another pointer).
        #expect(invalid(refused(net, .path(.npk), x, nil, ga: gx, gb: gx.map { $0 }), "gates_b:"))
        #expect(invalid(refused(net, .path(.npk), x, nil, ga: nil, gb: gx), "gates_b:"))
        // Soft gates: no packed gates at all.
        let soft = try GatedNetwork(spec: makeSpec(.dlgn, d, [70, 64, 130], 3, seed: 1209))
        #expect(throws: GatedNetError.self) { _ = try soft.packedAll(x) }
        do {
            _ = try soft.packedAll(x)
        } catch let GatedNetError.unsupported(m) {
            #expect(m.contains("soft"))
        }
        let r = refused(soft, .path(.npk), x, y, ga: gx, gb: nil)
        if case .unsupported(let m)? = r.0 {
            #expect(m.hasPrefix("gates_a:") && r.1)
        } else {
            Issue.record("soft gates with given gates: not .unsupported")
        }
    }

    @Test("a bit above a layer's width in a row the block reads: refused, naming row and layer, nothing written")
    func paddingBits() throws {
        let d = Self.d
        let net = try Self.hardNet()
        let x = seededUniform(40 * d, seed: 1210), y = seededUniform(30 * d, seed: 1211)
        var gx = try net.packedAll(x)
        let gy = try net.packedAll(y)
        // Layer 0 has 70 gates: word 1 of the row uses bits 0 ..< 6. Layer 2 (130): word 5 bits 0 ..< 2.
        gx[7 * 6 + 1] |= 1 << 6
        var badY = gy
        badY[12 * 6 + 5] |= 1 << 63
        func message(_ e: GatedNetError?) -> String { if case .invalidArgument(let m)? = e { m } else { "" } }
        var (e, clean) = refused(net, .path(.npk), x, y, ga: gx, gb: gy)
        #expect(message(e).hasPrefix("gates_a: row 7 (of xa), layer 0:") && clean, "\(message(e))")
        (e, clean) = refused(net, .path(.overlap), x, y, ga: nil, gb: badY)
        #expect(message(e).hasPrefix("gates_b: row 12 (of xb), layer 2:") && clean, "\(message(e))")
        // Symmetric: the columns read gates A too.
        var o = KernelOptions()
        o.rows = 0..<5; o.cols = 5..<40
        (e, _) = refused(net, .path(.npk), x, nil, ga: gx, gb: nil, o)
        #expect(message(e).hasPrefix("gates_a: row 7 (of xa), layer 0:"), "\(message(e))")
        // Layer 1 is exactly 64 gates wide: every bit of its word is a gate, none is padding.
        var full = try net.packedAll(x)
        let before = try net.givenGatesKernel(.path(.base(layer: 0)), x, nil, ga: full, gb: nil, KernelOptions())
        full[3 * 6 + 2] ^= 1 << 63
        let after = try net.givenGatesKernel(.path(.base(layer: 0)), x, nil, ga: full, gb: nil, KernelOptions())
        #expect(bits(before.out) == bits(after.out))  // layer 1 is not read by base(0)
        _ = try net.givenGatesKernel(.path(.base(layer: 1)), x, nil, ga: full, gb: nil, KernelOptions())
    }

    @Test("given gates are used, not recomputed: changed gates change the kernel as the popcount says")
    func gatesAreRead() throws {
        let d = Self.d
        let net = try Self.hardNet()
        let x = seededUniform(20 * d, seed: 1212)
        var g = try net.packedAll(x)
        let before = try net.givenGatesKernel(.path(.base(layer: 1)), x, nil, ga: g, gb: nil, KernelOptions()).out
        // Turn on every gate of layer 1 (word 2) for row 4: B_1[4][4] becomes 64 / 64 = 1 and
        // B_1[4][j] = popcount(row j's word 2) / 64.
        g[4 * 6 + 2] = ~UInt64(0)
        let after = try net.givenGatesKernel(.path(.base(layer: 1)), x, nil, ga: g, gb: nil, KernelOptions()).out
        let ld = 22
        #expect(after[4 * ld + 4] == 1)
        for j in 0..<20 {
            #expect(after[4 * ld + j] == Float(g[j * 6 + 2].nonzeroBitCount) / 64, "column \(j)")
            #expect(after[j * ld + 4] == after[4 * ld + j])
        }
        #expect(before[4 * ld + 4] != 1)
    }
}
