import CKernels

/// How 3×3 convolutions are computed (k×k convs of other shapes always use im2col).
enum ConvAlgorithm: Sendable {
    /// Winograd for eligible layers whose input has enough channels to pay, im2col elsewhere.
    case automatic
    /// im2col + sgemm everywhere.
    case im2col
    /// Winograd for every eligible layer (3×3, stride 1, zero or circular "same" padding).
    case winograd
}

extension ConvGeometry {
    /// Winograd F(2×2, 3×3) computes this conv: 3×3, stride 1, padded by 1 (zero or circular)
    /// so the output has the input's height and width.
    var winogradEligible: Bool {
        kernel == 3 && stride == 1 && pad == 1 && output.height == input.height && output.width == input.width
    }

    /// 2×2 output tiles per sample.
    var winogradTiles: Int { (output.height + 1) / 2 * ((output.width + 1) / 2) }

    /// Floats of Winograd-domain scratch per sample: the transformed input (16·Cin per tile)
    /// and output (16·Cout per tile) side by side. The backward pass uses the same amount.
    var winogradFloatsPerSample: Int { winogradTiles * 16 * (input.channels + output.channels) }

    /// Whether `algorithm` runs this conv through Winograd. Automatic mode skips inputs of fewer
    /// than `ConvGeometry.winogradMinChannels` channels (the first layer of an image net): the
    /// 16 products with k = Cin would be tiny and im2col's 9·Cin-deep product costs little.
    func usesWinograd(_ algorithm: ConvAlgorithm) -> Bool {
        switch algorithm {
        case .im2col: false
        case .winograd: winogradEligible
        case .automatic: winogradEligible && input.channels >= ConvGeometry.winogradMinChannels
        }
    }

    static let winogradMinChannels = 8
}

/// Winograd F(2×2, 3×3): per 2×2 output tile, Y = Aᵀ [Σ_cin (G g Gᵀ) ⊙ (Bᵀ d B)] A, the
/// channel sums being 16 sgemms (tiles × Cin)·(Cin × Cout), one per frequency ξ. 16 products
/// per 4 outputs instead of 36: 2.25× less arithmetic than im2col. Transforms: gnk_winograd.h.
///
/// Both cores work through `inParallel`: part p takes the p-th half of the samples (transforms
/// and single-threaded sgemms), in chunks that fit its half of `ws.wino`; weight gradients are
/// summed per part and added part 0 + part 1, so results do not depend on the threads.
/// Scratch: `ws.wino`, `ws.winoFilter` (16 · Cout · Cin) and `ws.winoFilterGrad` (two of
/// those), allocated with the workspace.
enum Winograd {
    /// Frequency ξ = 4a + b of the spatially flipped filter is frequency π(a)·4 + π(b) of the
    /// filter, π = (3 1 2 0): G·flip(g) is G·g with rows 0 and 3 swapped.
    static let flipped: [Int] = (0..<16).map { xi in
        let p = [3, 1, 2, 0]
        return p[xi / 4] * 4 + p[xi % 4]
    }

    /// Run `body(part, start, count, chunk, scratch)` for both halves of `rows` samples on both
    /// cores; `chunk` samples of this layer fit the part's `scratch`.
    @inline(__always)
    static func split(_ g: ConvGeometry, rows: Int, ws: ConvWorkspace,
                      _ body: (_ part: Int, _ start: Int, _ count: Int, _ chunk: Int, _ scratch: UnsafeMutablePointer<Float>) -> Void) {
        let share = ws.wino.count / 2  // scratch floats per part
        let chunk = max(1, share / max(1, g.winogradFloatsPerSample))
        BLAS.singleThreaded {
            inParallel { part in
                let (start, count) = half(part, of: rows)
                if count > 0 { body(part, start, count, chunk, ws.wino.pointer + part * share) }
            }
        }
    }

    /// q = conv(x, W) (+ bias) of `rows` NHWC samples.
    static func forward(_ layer: DenseLayer, _ g: ConvGeometry, input: UnsafePointer<Float>, rows: Int,
                        output: UnsafeMutablePointer<Float>, ws: ConvWorkspace) {
        let cin = g.input.channels, cout = g.output.channels, h = Int64(g.input.height), w = Int64(g.input.width)
        let t = g.winogradTiles, u = ws.winoFilter.pointer, circular: Int32 = g.circular ? 1 : 0
        gnk_wino_filter(layer.weight.pointer, Int64(cout), Int64(cin), u)
        split(g, rows: rows, ws: ws) { _, start, count, chunk, scratch in
            for s0 in stride(from: start, to: start + count, by: chunk) {
                let cnt = min(chunk, start + count - s0)
                let v = scratch, m = scratch + cnt * t * 16 * cin
                gnk_wino_input(input + s0 * g.input.size, Int64(cnt), h, w, Int64(cin), circular, v)
                for xi in 0..<16 {
                    BLAS.gemm(transA: false, transB: true, m: cnt * t, n: cout, k: cin, a: v + xi * cin, lda: 16 * cin,
                              b: u + xi * cout * cin, ldb: cin, c: m + xi * cout, ldc: 16 * cout)
                }
                gnk_wino_output(m, Int64(cnt), h, w, Int64(cout), 0, output + s0 * g.output.size)
            }
        }
        addBias(output, rows: rows * g.output.positions, cols: cout, bias: layer.bias)
    }

    /// Weight gradient (into `weightGrad`, cout × 9·cin, if given) and input gradient
    /// (accumulated into `dInput`, if given) from ∂loss/∂q. The bias gradient is the caller's.
    static func backward(_ layer: DenseLayer, _ g: ConvGeometry, weightGrad: UnsafeMutablePointer<Float>?,
                         dQ: UnsafePointer<Float>, input: UnsafePointer<Float>, rows: Int,
                         dInput: UnsafeMutablePointer<Float>?, ws: ConvWorkspace) {
        let cin = g.input.channels, cout = g.output.channels, h = Int64(g.input.height), w = Int64(g.input.width)
        let t = g.winogradTiles, circular: Int32 = g.circular ? 1 : 0, filter = 16 * cout * cin
        let u = ws.winoFilter.pointer
        if dInput != nil { gnk_wino_filter(layer.weight.pointer, Int64(cout), Int64(cin), u) }
        split(g, rows: rows, ws: ws) { part, start, count, chunk, scratch in
            if weightGrad != nil {
                // dU_ξ (cout × cin) = Σ_tiles dM_ξᵀ V_ξ with dM = A dY Aᵀ, per part.
                let dU = ws.winoFilterGrad.pointer + part * filter
                for s0 in stride(from: start, to: start + count, by: chunk) {
                    let cnt = min(chunk, start + count - s0)
                    let v = scratch, dm = scratch + cnt * t * 16 * cin
                    gnk_wino_input(input + s0 * g.input.size, Int64(cnt), h, w, Int64(cin), circular, v)
                    gnk_wino_output_grad(dQ + s0 * g.output.size, Int64(cnt), h, w, Int64(cout), dm)
                    for xi in 0..<16 {
                        BLAS.gemm(transA: true, transB: false, m: cout, n: cin, k: cnt * t, a: dm + xi * cout, lda: 16 * cout,
                                  b: v + xi * cin, ldb: 16 * cin, beta: s0 == start ? 0 : 1, c: dU + xi * cout * cin, ldc: cin)
                    }
                }
            }
            if let dx = dInput {
                // dX = conv(dY, flipped Wᵀ) with the same padding: Winograd with U_π(ξ) transposed.
                for s0 in stride(from: start, to: start + count, by: chunk) {
                    let cnt = min(chunk, start + count - s0)
                    let v = scratch, m = scratch + cnt * t * 16 * cout
                    gnk_wino_input(dQ + s0 * g.output.size, Int64(cnt), h, w, Int64(cout), circular, v)
                    for xi in 0..<16 {
                        BLAS.gemm(transA: false, transB: false, m: cnt * t, n: cin, k: cout, a: v + xi * cout, lda: 16 * cout,
                                  b: u + flipped[xi] * cout * cin, ldb: cin, c: m + xi * cin, ldc: 16 * cin)
                    }
                    gnk_wino_output(m, Int64(cnt), h, w, Int64(cin), 1, dx + s0 * g.input.size)
                }
            }
        }
        if let dW = weightGrad {
            // dW = Gᵀ (dU₀ + dU₁) G.
            let dU = ws.winoFilterGrad.pointer
            gnk_wino_filter_grad(dU, half(1, of: rows).count > 0 ? dU + filter : nil, Int64(cout), Int64(cin), dW)
        }
    }
}
