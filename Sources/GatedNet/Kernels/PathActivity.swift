extension GatedNetwork {
    /// Active paths from one input node, per row: Π_l Σ_i G_l(x)_i (paper 003 §5). For hard
    /// gates it counts the paths (and equals the overlap kernel's diagonal); for soft gates it
    /// is their total activity Σ_p A(x, p). Paths from all input nodes: d_in times this.
    /// Double precision; +Inf only past 1.8e308.
    public func activePaths(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Double>) {
        let ws = workspace(rows: min(evaluationChunk, max(rows, 1)))
        forEachChunk(rows: rows, chunk: ws.capacity) { start, n in
            runFeature(x + start * inputSize, rows: n, ws: ws, gates: true)
            for r in 0..<n {
                var p = 1.0
                for (l, w) in hiddenWidths.enumerated() {
                    let g = ws.gates[l].pointer + r * w
                    var s = 0.0
                    for i in 0..<w { s += Double(g[i]) }
                    p *= s
                }
                out[start + r] = p
            }
        }
    }

    /// Mean active paths (as `activePaths`) over the rows of each group, e.g. a class or an
    /// input region: groups[r] in 0 ..< groupCount; `mean` gets groupCount values (NaN for an
    /// empty group) and `counts` (optional) the rows per group.
    public func activePathsByGroup(_ x: UnsafePointer<Float>, rows: Int, groups: UnsafePointer<Int32>, groupCount: Int,
                                   mean: UnsafeMutablePointer<Double>, counts: UnsafeMutablePointer<Int64>?) throws {
        for r in 0..<rows where groups[r] < 0 || Int(groups[r]) >= groupCount {
            throw GatedNetError.labelRange("groups[\(r)]: got \(groups[r]), need 0 ... \(groupCount - 1)")
        }
        var perRow = [Double](repeating: 0, count: rows)
        perRow.withUnsafeMutableBufferPointer { activePaths(x, rows: rows, into: $0.baseAddress!) }
        var sum = [Double](repeating: 0, count: groupCount), count = [Int64](repeating: 0, count: groupCount)
        for r in 0..<rows {
            sum[Int(groups[r])] += perRow[r]
            count[Int(groups[r])] += 1
        }
        for g in 0..<groupCount {
            mean[g] = count[g] > 0 ? sum[g] / Double(count[g]) : .nan
            counts?[g] = count[g]
        }
    }

    /// Effective hyperplanes of a linear gating network (MATH.md §6): gate i of hidden layer
    /// `layer` is on exactly where ⟨u_i, x⟩ + c_i > 0 (soft gate σ(β(⟨u_i, x⟩ + c_i))), with
    /// U = Wf_layer ··· Wf_0 (w × d_in, row-major into `normals`) and c the biases carried
    /// through (w values into `offsets`, zeros without biases). Needs a linear feature net.
    public func gateHyperplanes(layer: Int, normals: UnsafeMutablePointer<Float>, offsets: UnsafeMutablePointer<Float>?) throws {
        guard spec.activation == .identity && !tied else {
            throw GatedNetError.unsupported("hyperplanes: the gates are half-spaces only for a linear gating network (DLGN); this network's feature net has ReLU activation")
        }
        guard layer >= 0 && layer < hiddenCount else {
            throw GatedNetError.invalidArgument("layer: got \(layer), need 0 ... \(hiddenCount - 1)")
        }
        let d = inputSize
        var u = FloatBuffer(count: featureLayers[0].weight.count)
        u.assign(from: featureLayers[0].weight)
        var c = featureLayers[0].bias?.array ?? [Float](repeating: 0, count: featureLayers[0].fanOut)
        if layer > 0 {
            for l in 1...layer {
                let f = featureLayers[l]
                let next = FloatBuffer(count: f.fanOut * d)
                BLAS.gemm(transA: false, transB: false, m: f.fanOut, n: d, k: f.fanIn, a: f.weight.pointer, lda: f.fanIn,
                          b: u.pointer, ldb: d, c: next.pointer, ldc: d)
                var nc = f.bias?.array ?? [Float](repeating: 0, count: f.fanOut)
                for o in 0..<f.fanOut {
                    var s: Float = 0
                    for i in 0..<f.fanIn { s += f.weight.pointer[o * f.fanIn + i] * c[i] }
                    nc[o] += s
                }
                u = next
                c = nc
            }
        }
        normals.update(from: u.pointer, count: hiddenWidths[layer] * d)
        if let o = offsets { for i in 0..<hiddenWidths[layer] { o[i] = c[i] } }
    }
}
