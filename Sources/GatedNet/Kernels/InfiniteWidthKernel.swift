import CBLAS
import CKernels

extension GatedNetwork {
    /// The infinite-width kernels (`.npkLimit`, `.ntkLimit`) over the block, all in double
    /// precision: per pair, the inner product (dgemm on double copies of the tile's rows) and
    /// the norms give the input angle θ_0 (exactly 0 for identical inputs), which the
    /// depth-long arc-cosine recursion carries (gnk_limit_tile, vectorised C over the tile's
    /// columns; the tiles on both cores).
    func limitKernel(_ ntk: Bool, _ k: KernelBlock) throws {
        var factor = 1.0
        if ntk {
            guard spec.activation == .relu else {
                throw GatedNetError.unsupported("kernel: the infinite-width NTK is that of a ReLU network; this network's feature activation is linear")
            }
            guard !spec.bias else {
                throw GatedNetError.unsupported("kernel: the infinite-width NTK is defined for networks without biases")
            }
            if let o = k.options.output {
                guard o >= 0 && o < outputSize else {
                    throw GatedNetError.invalidArgument("output: got \(o), need -1 (sum) or 0 ... \(outputSize - 1)")
                }
            } else {
                factor = Double(outputSize)
            }
        } else {
            guard hasHardGates else {
                throw GatedNetError.unsupported("kernel: the infinite-width NPK is defined for random hard gates; this network has soft gates")
            }
        }
        let d = inputSize
        let na = DoubleBuffer(count: k.rowsA)
        gnk_limit_norms(k.a, k.rowsA, d, na.pointer)
        let nb = k.symmetric ? na : DoubleBuffer(count: k.rowsB)
        if !k.symmetric { gnk_limit_norms(k.b, k.rowsB, d, nb.pointer) }
        let h = hiddenCount
        let relu: Int32 = spec.activation == .relu ? 1 : 0
        let ones: Int32 = spec.valueInput == .ones ? 1 : 0
        let s2 = Double(spec.initScale) * Double(spec.initScale)
        let ta = min(kernelTile, k.rowsA), tb = min(kernelTile, k.rowsB)
        // Per part: the tile's rows of a and b in double, and their inner products.
        let scratch = (0..<2).map { _ in (a: DoubleBuffer(count: ta * d), b: DoubleBuffer(count: tb * d), dot: DoubleBuffer(count: ta * tb)) }
        // The tile closure only writes its tile and its part's scratch: safe for the two-part tile loop.
        try fillKernelTiles(rows: k.rowsA, cols: k.rowsB, symmetric: k.symmetric, upperOnly: k.options.upperOnly,
                            out: k.out, transposed: k.options.transposed, progress: k.options.progress, what: "kernel", parallel: !k.options.serialTiles) { part, i0, ti, j0, tj, acc in
            let s = scratch[part]
            // A diagonal tile of a symmetric kernel needs only its upper triangle: its inner
            // products are computed in row strips from the diagonal.
            let diagonal = k.symmetric && i0 == j0
            gnk_float_to_double(k.a + i0 * d, ti * d, s.a.pointer)
            if !diagonal { gnk_float_to_double(k.b + j0 * d, tj * d, s.b.pointer) }
            let b = diagonal ? s.a.pointer : s.b.pointer
            let strip = diagonal ? 128 : ti  // rows per dgemm strip
            var r0 = 0
            while r0 < ti {
                let rs = min(strip, ti - r0), c0 = diagonal ? r0 : 0
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rs), Int32(tj - c0), Int32(d), 1,
                            s.a.pointer + r0 * d, Int32(d), b + c0 * d, Int32(d), 0, s.dot.pointer + r0 * tj + c0, Int32(tj))
                r0 += rs
            }
            gnk_limit_tile(s.dot.pointer, tj, na.pointer + i0, nb.pointer + j0, k.a + i0 * d, k.b + j0 * d, d, ti, tj,
                           diagonal ? 1 : 0, ntk ? 1 : 0, relu, ones, Int32(h), s2, factor, acc)
        }
    }
}

/// A scratch array of doubles (uninitialised; the caller writes before reading).
final class DoubleBuffer {
    let pointer: UnsafeMutablePointer<Double>
    init(count: Int) { pointer = .allocate(capacity: max(count, 1)) }
    deinit { pointer.deallocate() }
}
