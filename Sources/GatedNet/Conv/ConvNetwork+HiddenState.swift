extension ConvNetwork {
    /// Pre-activations or activations of gated layer `layer` (0 ..< gatedShapes.count) of `part`
    /// for `rows` NHWC samples into out (rows × size_l, NHWC of the layer). The activation is
    /// the gated op's own output, before a residual skip that may follow it: χ(q_l) in the
    /// feature net, G'_l ⊙ q_l (wired gates) in the value net. A tied (ReLU) network has one
    /// net, so both parts give the same values.
    public func hiddenState(_ x: UnsafePointer<Float>, rows: Int, part: Part, layer: Int, _ quantity: HiddenQuantity,
                            into out: UnsafeMutablePointer<Float>) throws {
        guard layer >= 0 && layer < gatedShapes.count else {
            throw GatedNetError.invalidArgument("layer: got \(layer), need 0 ... \(gatedShapes.count - 1)")
        }
        let size = gatedShapes[layer].size
        let op = plan.gatedOps[layer]
        let useValue = part == .value && !tied
        let ws = workspace(rows: min(evaluationRows, max(rows, 1)), gradients: false)
        forEachChunk(rows: rows, chunk: ws.capacity) { start, n in
            let xs = x + start * inputSize
            runTower(feature, ws.feature, input: xs, rows: n, ws: ws, isValue: false, gates: useValue,
                     opCount: useValue ? featureOps : op + 1)
            var tower = ws.feature
            if useValue {
                gatherWiredGates(rows: n, ws: ws)
                let xv = spec.valueInput == .ones ? UnsafePointer(ws.ones!.pointer) : xs
                runTower(value, ws.value!, input: xv, rows: n, ws: ws, isValue: true, gates: false, opCount: op + 1)
                tower = ws.value!
            }
            let src = quantity == .preActivation ? tower.pre[op]! : tower.act[op]
            (out + start * size).update(from: src.pointer, count: n * size)
        }
    }

    /// For each tensor of `parameters`: its position in the layer list (for a residual
    /// projection, the block's last layer) and whether it belongs to a projection. Tensor names
    /// number plan parameters, which a projection shifts; this position does not move.
    public var parameterLayers: [(layer: Int, projection: Bool)] {
        parameterTensors.map { entry in
            let p = plan.params[entry.key.layer]
            if case .projection = p.role { return (p.layer, true) }
            return (p.layer, false)
        }
    }
}
