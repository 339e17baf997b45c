/// Which hidden quantity of a layer to read out.
public enum HiddenQuantity: Int, Sendable {
    /// q_l: the layer's output before the activation (feature net) or the gates (value net).
    case preActivation = 0
    /// z_l: χ(q_l) in the feature net, G'_l ⊙ q_l in the value net.
    case activation = 1
}

extension GatedNetwork {
    /// Pre-activations or activations of hidden `layer` (0 ..< hiddenCount) of `part` for
    /// `rows` rows of x into out (rows × width_l). A tied (ReLU) network has one net, so both
    /// parts give the same values. The value net's layer l multiplies by the gates of feature
    /// layer permutation[l].
    public func hiddenState(_ x: UnsafePointer<Float>, rows: Int, part: Part, layer: Int, _ quantity: HiddenQuantity,
                            into out: UnsafeMutablePointer<Float>) throws {
        guard layer >= 0 && layer < hiddenCount else {
            throw GatedNetError.invalidArgument("layer: got \(layer), need 0 ... \(hiddenCount - 1)")
        }
        let w = hiddenWidths[layer]
        let useValue = part == .value && !tied
        let ws = workspace(rows: min(evaluationChunk, max(rows, 1)))
        forEachChunk(rows: rows, chunk: ws.capacity) { start, n in
            let xs = x + start * inputSize
            runFeature(xs, rows: n, ws: ws, gates: useValue)
            if useValue { runValue(xs, rows: n, ws: ws) }
            let src: FloatBuffer
            switch (useValue, quantity) {
            case (false, .preActivation): src = ws.qf[layer]
            case (false, .activation): src = ws.zf[layer]
            case (true, .preActivation): src = ws.qv[layer]
            case (true, .activation): src = ws.zv[layer]
            }
            (out + start * w).update(from: src.pointer, count: n * w)
        }
    }
}
