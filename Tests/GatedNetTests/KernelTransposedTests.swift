@testable import GatedNet
import Glibc
import Testing

// KernelOptions.transposed: a second output that gets the block transposed in the same tile
// pass. It must be out's transpose bit for bit (both stored from one tile buffer), for every
// kind, block and tile loop, touch nothing outside its C x R entries, and be refused before any
// work when its shape, upper_only or overlap with out is wrong.

/// Padding sentinel: a NaN payload no kernel produces.
private let sentinel = Float(bitPattern: 0x7FC0_BEEF)

/// Both outputs of one call, each with padded rows (ld = cols + 3, ldT = rows + 5) so that a
/// write outside the C x R entries shows in the padding.
private struct TwoOutputs {
    let rows: Int, cols: Int, ld: Int, ldT: Int
    var out: [Float], t: [Float]
    init(rows: Int, cols: Int) {
        self.rows = rows; self.cols = cols; ld = cols + 3; ldT = rows + 5
        out = [Float](repeating: sentinel, count: rows * ld)
        t = [Float](repeating: sentinel, count: cols * ldT)
    }

    /// True when t[c][r] has the bits of out[r][c] everywhere, no entry of out is still the
    /// sentinel, and the padding of both is.
    var transposeHolds: Bool {
        for r in 0..<rows {
            for c in 0..<cols {
                let v = out[r * ld + c]
                if v.bitPattern == sentinel.bitPattern || v.bitPattern != t[c * ldT + r].bitPattern { return false }
            }
            for c in cols..<ld where out[r * ld + c].bitPattern != sentinel.bitPattern { return false }
        }
        for c in 0..<cols {
            for r in rows..<ldT where t[c * ldT + r].bitPattern != sentinel.bitPattern { return false }
        }
        return true
    }

    /// True when neither output was written.
    var untouched: Bool { (out + t).allSatisfy { $0.bitPattern == sentinel.bitPattern } }

    /// Run `call` with the two outputs as KernelOutputs.
    mutating func run(_ call: (KernelOutput, KernelOutput) throws -> Void) throws {
        let (rows, cols, ld, ldT) = (rows, cols, ld, ldT)
        try out.withUnsafeMutableBufferPointer { o in
            try t.withUnsafeMutableBufferPointer { tp in
                try call(KernelOutput(pointer: o.baseAddress!, rows: rows, cols: cols, ld: ld),
                         KernelOutput(pointer: tp.baseAddress!, rows: cols, cols: rows, ld: ldT))
            }
        }
    }
}

private func fcKernel(_ net: GatedNetwork, _ choice: KernelChoice, _ xa: [Float], _ xb: [Float]?,
                      _ options: KernelOptions) throws -> TwoOutputs {
    let na = xa.count / net.inputSize, nb = (xb ?? xa).count / net.inputSize
    var two = TwoOutputs(rows: (options.rows ?? 0..<na).count, cols: (options.cols ?? 0..<nb).count)
    try xa.withUnsafeBufferPointer { a in
        try (xb ?? xa).withUnsafeBufferPointer { b in
            try two.run { out, t in
                var o = options
                o.transposed = t
                try net.kernel(choice, xa: a.baseAddress!, na: na, xb: b.baseAddress!, nb: nb, symmetric: xb == nil,
                               out: out, options: o)
            }
        }
    }
    return two
}

/// Blocks over 700 rows of x (and 300 of y): the whole symmetric kernel (two tile rows, one
/// mirrored tile), a cross kernel, and row / column offsets, symmetric or not.
private func blocks(_ y: [Float]) -> [(xb: [Float]?, rows: Range<Int>?, cols: Range<Int>?)] {
    [(nil, nil, nil), (y, nil, nil), (nil, 37..<650, 5..<590), (nil, 20..<600, 20..<600), (y, 513..<700, 11..<299)]
}

@Suite("Kernel transposed output: out transposed bit for bit, checked before any work")
struct KernelTransposedTests {
    @Test("path, NTK and limit kinds: transposed output is out transposed bit for bit, two-part and serial tiles")
    func fcKindsBitIdentical() throws {
        let d = 12
        let x = seededUniform(700 * d, seed: 901), y = seededUniform(300 * d, seed: 902)
        let hard = try GatedNetwork(spec: makeSpec(.fixedRandomII, d, [24, 16], 3, seed: 903))
        let relu = try GatedNetwork(spec: makeSpec(.relu, d, [16, 16], 2, seed: 904))
        let cases: [(GatedNetwork, KernelChoice)] = [
            (hard, .path(.npk)), (hard, .path(.npkNormalized)), (hard, .npkTraceNormalized), (hard, .tangent(.value)),
            (hard, .npkLimit), (relu, .tangent(.full)), (relu, .ntkLimit),
        ]
        for (net, choice) in cases {
            for (xb, rows, cols) in blocks(y) {
                for serial in [false, true] {
                    var o = KernelOptions()
                    o.rows = rows; o.cols = cols; o.serialTiles = serial
                    if case .tangent = choice { o.ntkScaling = true }
                    let holds = try fcKernel(net, choice, x, xb, o).transposeHolds  // a Bool: no array dump
                    #expect(holds, "\(choice) xb \(xb == nil ? "xa" : "y") rows \(String(describing: rows)) cols \(String(describing: cols)) serial \(serial)")
                }
            }
        }
    }

    @Test("the transposed output does not change out: same bits as a call without it")
    func outUnchanged() throws {
        let d = 12
        let x = seededUniform(700 * d, seed: 911), y = seededUniform(300 * d, seed: 912)
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, d, [24, 16], 3, seed: 913))
        for (xb, rows, cols) in blocks(y) {
            var o = KernelOptions()
            o.rows = rows; o.cols = cols
            let two = try fcKernel(net, .path(.npk), x, xb, o)
            let plain = try net.suiteKernel(.path(.npk), x, xb, o)
            let c = two.cols
            let same = (0..<two.rows).allSatisfy { r in
                (0..<c).allSatisfy { two.out[r * two.ld + $0].bitPattern == plain[r * c + $0].bitPattern }
            }
            #expect(same)
        }
    }

    @Test("conv path kernels: transposed output is out transposed bit for bit, two-part and serial tiles")
    func convBitIdentical() throws {
        let net = try ConvPathKernelTileTests.net()
        let x = convUniform(40 * net.inputSize, seed: 921), y = convUniform(23 * net.inputSize, seed: 922)
        let blocks: [([Float]?, Range<Int>?, Range<Int>?)] = [(nil, nil, nil), (y, nil, nil), (nil, 3..<37, 5..<30), (y, 17..<40, 2..<21)]
        for kind in [ConvKernelKind.npk, .npkNormalized] {
            for (xb, rows, cols) in blocks {
                for serial in [false, true] {
                    let na = x.count / net.inputSize, nb = (xb ?? x).count / net.inputSize
                    var two = TwoOutputs(rows: (rows ?? 0..<na).count, cols: (cols ?? 0..<nb).count)
                    try x.withUnsafeBufferPointer { a in
                        try (xb ?? x).withUnsafeBufferPointer { b in
                            try two.run { out, t in
                                var o = KernelOptions()
                                o.rows = rows; o.cols = cols; o.serialTiles = serial; o.transposed = t
                                try net.pathKernel(kind, xa: a.baseAddress!, na: na, xb: b.baseAddress!, nb: nb,
                                                   symmetric: xb == nil, out: out, options: o)
                            }
                        }
                    }
                    let holds = two.transposeHolds
                    #expect(holds, "\(kind) rows \(String(describing: rows)) serial \(serial)")
                }
            }
        }
    }

    @Test("wrong transposed shape or stride, upper_only, overlap with out: an error before anything is written")
    func refusedBeforeWork() throws {
        let d = 6
        let x = seededUniform(40 * d, seed: 931), y = seededUniform(30 * d, seed: 932)
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, d, [8], 1, seed: 933))
        func attempt(_ xb: [Float]?, upperOnly: Bool = false,
                     _ edit: (KernelOutput, KernelOutput) -> KernelOutput) -> (Error?, Bool) {
            let nb = (xb ?? x).count / d
            var two = TwoOutputs(rows: 40, cols: nb)
            var caught: Error?
            do {
                try x.withUnsafeBufferPointer { a in
                    try (xb ?? x).withUnsafeBufferPointer { b in
                        try two.run { out, t in
                            var o = KernelOptions()
                            o.upperOnly = upperOnly
                            o.transposed = edit(out, t)
                            try net.kernel(.path(.npk), xa: a.baseAddress!, na: 40, xb: b.baseAddress!, nb: nb,
                                           symmetric: xb == nil, out: out, options: o)
                        }
                    }
                }
            } catch { caught = error }
            return (caught, two.untouched)
        }
        func isShape(_ e: Error?) -> Bool { if case .shape(let m)? = e as? GatedNetError { m.hasPrefix("out_transposed:") } else { false } }
        func isInvalid(_ e: Error?) -> Bool {
            if case .invalidArgument(let m)? = e as? GatedNetError { m.hasPrefix("out_transposed:") } else { false }
        }
        // Not transposed (R x C instead of C x R), a row stride below R, one row short.
        var (e, clean) = attempt(y) { _, t in KernelOutput(pointer: t.pointer, rows: 40, cols: 30, ld: 40) }
        #expect(isShape(e) && clean)
        (e, clean) = attempt(y) { _, t in KernelOutput(pointer: t.pointer, rows: 30, cols: 40, ld: 39) }
        #expect(isShape(e) && clean)
        (e, clean) = attempt(y) { _, t in KernelOutput(pointer: t.pointer, rows: 29, cols: 40, ld: t.ld) }
        #expect(isShape(e) && clean)
        (e, clean) = attempt(nil, upperOnly: true) { _, t in t }
        #expect(isInvalid(e) && clean)
        // Overlap: the same buffer; the transposed output starting in out's last row.
        (e, clean) = attempt(y) { out, _ in KernelOutput(pointer: out.pointer, rows: 30, cols: 40, ld: 40) }
        #expect(isInvalid(e) && clean)
        (e, clean) = attempt(y) { out, _ in KernelOutput(pointer: out.pointer + 39 * out.ld + 29, rows: 30, cols: 40, ld: 40) }
        #expect(isInvalid(e) && clean)
        // Adjacent but separate: accepted.
        let a = KernelOutput(pointer: UnsafeMutablePointer(bitPattern: 4096)!, rows: 2, cols: 3, ld: 5)
        #expect(!a.overlaps(KernelOutput(pointer: a.pointer + 8, rows: 3, cols: 2, ld: 2)))
        #expect(a.overlaps(KernelOutput(pointer: a.pointer + 7, rows: 3, cols: 2, ld: 2)))
        #expect(!KernelOutput(pointer: a.pointer + 8, rows: 3, cols: 2, ld: 2).overlaps(a))
    }
}
