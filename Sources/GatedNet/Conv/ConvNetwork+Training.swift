import CKernels

extension ConvNetwork {
    /// Check that data fits this network: finite inputs, labels in range, finite target values.
    public func validate(_ data: LabelledData, x xName: String = "x", y yName: String = "y") throws {
        try validateLabelledData(data, inputSize: inputSize, outputSize: outputSize, x: xName, y: yName)
    }

    /// Gradient buffers for the parts that train.
    func makeGradients() -> (feature: [Gradients.LayerGrad?], value: [Gradients.LayerGrad?]) {
        let parts = trainableParts
        let f = parts.feature ? feature.map { $0.map(Gradients.LayerGrad.init) } : []
        let v = parts.value && !tied ? value.map { $0.map(Gradients.LayerGrad.init) } : []
        return (f, v)
    }

    /// Mean loss over `rows` samples and the gradient of every parameter tensor, in the order
    /// of `parameters` (zero for tensors that do not train). For gradient checks and tools.
    public func lossAndGradients(_ x: UnsafePointer<Float>, labels: UnsafePointer<Int32>, rows: Int, loss: Loss) throws -> (loss: Double, gradients: [FloatBuffer]) {
        try checkLoss(loss, outputSize: outputSize)
        try checkScratch(rows: rows, gradients: true, "rows")
        let ws = workspace(rows: rows, gradients: true)
        let out = forward(x, rows: rows, ws: ws)
        let dOut = FloatBuffer(count: rows * outputSize)
        let (l, _) = loss.evaluate(outputs: out, labels: labels, rows: rows, k: outputSize, grad: dOut.pointer, scaleRows: rows)
        let (fg, vg) = makeGradients()
        backward(x, rows: rows, ws: ws, dOut: dOut.pointer, featureGrads: fg, valueGrads: vg)
        let result = parameterTensors.map { entry -> FloatBuffer in
            let table = entry.key.part == .feature ? fg : vg
            let g = table.isEmpty ? nil : table[entry.key.layer]
            let b = entry.key.isBias ? g?.bias : g?.weight
            return b?.copy() ?? FloatBuffer(count: entry.buffer.count)
        }
        return (l / Double(rows), result)
    }

    /// Train with minibatches over `data` (x: rows × inputSize NHWC). Same contract as
    /// `GatedNetwork.train`: restores the network and throws `.notFinite` on divergence;
    /// `interrupt` is polled about every 0.1 s between minibatches, and when it returns true the
    /// network goes back to its state at the start of the current epoch and `.cancelled` is
    /// thrown. `trainFeatureHead` is unsupported (train a `relu` conv net and copy its weights).
    /// Real-valued targets (regression) need the squared loss; their accuracies are NaN.
    @discardableResult
    public func train(_ data: LabelledData, test: LabelledData? = nil, options: TrainOptions,
                      interrupt: (() -> Bool)? = nil,
                      progress: (EpochMetrics) -> Bool = { _ in true }) throws -> [EpochMetrics] {
        try options.validate()
        try checkLoss(options.loss, outputSize: outputSize, targets: data.targets)
        if let t = test { try checkLoss(options.loss, outputSize: outputSize, targets: t.targets) }
        guard !options.trainFeatureHead else {
            throw GatedNetError.unsupported("train_feature_head: conv networks have no feature head; train a relu conv network and copy its feature weights")
        }
        try validate(data)
        if let t = test { try validate(t, x: "x_test", y: "y_test") }
        let parts = trainableParts
        guard parts.feature || parts.value else {
            throw GatedNetError.unsupported("train: nothing to train (every part the objective reaches is frozen, or hard gates pass no gradient to the feature net)")
        }
        let batch = min(options.batchSize, data.rows)
        try checkScratch(rows: batch, gradients: true, "batch_size")
        let ws = workspace(rows: batch, gradients: true)
        let (fg, vg) = makeGradients()
        let dOut = FloatBuffer(count: batch * outputSize)
        let updates = parameterTensors.compactMap { entry -> (key: ParameterKey, param: FloatBuffer, grad: FloatBuffer)? in
            guard entry.key.part == .feature ? parts.feature : parts.value else { return nil }
            let table = entry.key.part == .feature ? fg : vg
            guard let g = table[entry.key.layer], let b = entry.key.isBias ? g.bias : g.weight else { return nil }
            return (entry.key, entry.buffer, b)
        }
        var source = [Int32](repeating: 0, count: batch)
        let bx = ws.batchX.pointer
        return try source.withUnsafeMutableBufferPointer { src in
            try runEpochs(data, test: test, options: options, inputSize: inputSize, outputSize: outputSize, batch: batch,
                          buffers: MinibatchBuffers(x: bx, source: src.baseAddress!),
                          updates: updates, interrupt: interrupt, progress: progress,
                          forwardBackward: { rows, targets in
                let out = forward(bx, rows: rows, ws: ws)
                let r = options.loss.evaluate(outputs: out, targets: targets, rows: rows, k: outputSize,
                                              grad: dOut.pointer, scaleRows: rows)
                if r.loss.isFinite { backward(bx, rows: rows, ws: ws, dOut: dOut.pointer, featureGrads: fg, valueGrads: vg) }
                return r
            }, evaluateTest: { t in evaluateUnchecked(t, loss: options.loss, ws: ws) })
        }
    }

    func makeSnapshot() -> ConvNetwork { ConvNetwork(copying: self) }

    /// Mean loss and accuracy over validated data (accuracy NaN for real-valued targets).
    public func evaluate(_ data: LabelledData, loss: Loss) throws -> (loss: Double, accuracy: Double) {
        try checkLoss(loss, outputSize: outputSize, targets: data.targets)
        try validate(data)
        return evaluateUnchecked(data, loss: loss, ws: nil)
    }

    func evaluateUnchecked(_ data: LabelledData, loss: Loss, ws given: ConvWorkspace?) -> (loss: Double, accuracy: Double) {
        let ws = given ?? workspace(rows: min(evaluationRows, data.rows), gradients: false)
        var total = 0.0, correct = 0
        forEachChunk(rows: data.rows, chunk: ws.capacity) { start, rows in
            let out = forward(data.x + start * inputSize, rows: rows, ws: ws)
            let r = loss.evaluate(outputs: out, targets: data.targets.fromRow(start, k: outputSize), rows: rows,
                                  k: outputSize, grad: nil, scaleRows: rows)
            total += r.loss; correct += r.correct
        }
        return (total / Double(data.rows), data.targets.areLabels ? Double(correct) / Double(data.rows) : .nan)
    }

    func forEachChunk(rows: Int, chunk: Int, _ body: (Int, Int) throws -> Void) rethrows {
        var start = 0
        while start < rows {
            let c = min(chunk, rows - start)
            try body(start, c)
            start += c
        }
    }

    /// Outputs (logits) for `rows` NHWC samples into out (rows × outputSize). Inputs must be finite.
    public func predict(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        let ws = workspace(rows: min(evaluationRows, rows), gradients: false)
        forEachChunk(rows: rows, chunk: ws.capacity) { start, n in
            let o = forward(x + start * inputSize, rows: n, ws: ws)
            (out + start * outputSize).update(from: o, count: n * outputSize)
        }
    }

    /// Predicted class per row. Throws `.notFinite` naming the first row whose outputs are NaN
    /// or Inf (activations that overflow float32), which has no class.
    public func predictClasses(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Int32>) throws {
        let ws = workspace(rows: min(evaluationRows, rows), gradients: false)
        try forEachChunk(rows: rows, chunk: ws.capacity) { start, n in
            let o = forward(x + start * inputSize, rows: n, ws: ws)
            for r in 0..<n {
                guard isAllFinite(o + r * outputSize, outputSize) else { throw nonFiniteOutputs(row: start + r) }
                out[start + r] = Int32(predictedClass(o + r * outputSize, k: outputSize))
            }
        }
    }

    /// Gates of every gated layer, one rows × size_l buffer per layer (NHWC per sample):
    /// the feature net's gates (`wired` false) or the gates each value layer multiplies by.
    public func allGates(_ x: UnsafePointer<Float>, rows: Int, wired: Bool = false) -> [FloatBuffer] {
        let sizes = plan.gatedShapes.map(\.size)
        let out = sizes.map { FloatBuffer(count: rows * $0) }
        let ws = workspace(rows: min(evaluationRows, rows), gradients: false)
        forEachChunk(rows: rows, chunk: ws.capacity) { start, n in
            runTower(feature, ws.feature, input: x + start * inputSize, rows: n, ws: ws, isValue: false, gates: true,
                     opCount: featureOps)
            if wired && !tied { gatherWiredGates(rows: n, ws: ws) }
            for (l, size) in sizes.enumerated() {
                let src = wired && !tied ? valueGates(l, ws: ws) : ws.gates[l].pointer
                (out[l].pointer + start * size).update(from: src, count: n * size)
            }
        }
        return out
    }

    /// Gates of one gated layer into out (rows × size_l); see `allGates`.
    public func gates(_ x: UnsafePointer<Float>, rows: Int, layer: Int, wired: Bool, into out: UnsafeMutablePointer<Float>) throws {
        guard layer >= 0 && layer < gatedShapes.count else {
            throw GatedNetError.invalidArgument("layer: got \(layer), need 0 ... \(gatedShapes.count - 1)")
        }
        let size = gatedShapes[layer].size
        let ws = workspace(rows: min(evaluationRows, rows), gradients: false)
        forEachChunk(rows: rows, chunk: ws.capacity) { start, n in
            runTower(feature, ws.feature, input: x + start * inputSize, rows: n, ws: ws, isValue: false, gates: true,
                     opCount: featureOps)
            if wired && !tied { gatherWiredGates(rows: n, ws: ws) }
            let src = wired && !tied ? valueGates(layer, ws: ws) : ws.gates[layer].pointer
            (out + start * size).update(from: src, count: n * size)
        }
    }
}

extension ConvNetwork: TrainableNetwork {}
