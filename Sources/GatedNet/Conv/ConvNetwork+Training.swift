import CKernels

extension ConvNetwork {
    /// Check that data fits this network: finite inputs, labels in range.
    public func validate(_ data: LabelledData, x xName: String = "x", y yName: String = "y") throws {
        guard data.rows >= 1 else { throw GatedNetError.invalidArgument("\(xName) rows: got \(data.rows), need >= 1") }
        let count = try checkedCount(data.rows, inputSize, what: xName)
        guard isAllFinite(data.x, count) else { throw GatedNetError.notFinite("\(xName): contains NaN or Inf") }
        let classes = outputSize == 1 ? 2 : outputSize
        for i in 0..<data.rows where data.y[i] < 0 || Int(data.y[i]) >= classes {
            throw GatedNetError.labelRange("\(yName)[\(i)]: got \(data.y[i]), need 0 ... \(classes - 1)")
        }
    }

    /// Softmax cross-entropy reads the output of the label's class: it needs one output per class.
    func checkLoss(_ loss: Loss) throws {
        if loss == .crossEntropy && outputSize < 2 {
            throw GatedNetError.invalidArgument("loss: cross-entropy needs output_size >= 2, got 1; use the squared loss for one output")
        }
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
        try checkLoss(loss)
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
    @discardableResult
    public func train(_ data: LabelledData, test: LabelledData? = nil, options: TrainOptions,
                      interrupt: (() -> Bool)? = nil,
                      progress: (EpochMetrics) -> Bool = { _ in true }) throws -> [EpochMetrics] {
        try options.validate()
        try checkLoss(options.loss)
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
        // Snapshot first: a failed call must also keep the optimizer state it replaces.
        let snapshot = ConvNetwork(copying: self)
        if optimizerState?.kind != options.optimizer { optimizerState = OptimizerState(kind: options.optimizer) }
        // Tiny Adam moments and gradients go denormal; flush them on this thread while training.
        let fpState = gnk_fp_flush_denormals()
        defer { gnk_fp_restore(fpState) }
        let ws = workspace(rows: batch, gradients: true)
        let (fg, vg) = makeGradients()
        let dOut = FloatBuffer(count: batch * outputSize)
        let keys = parameterTensors.filter { $0.key.part == .feature ? parts.feature : parts.value }
        let d = inputSize, k = outputSize
        var order = (0..<data.rows).map { Int32($0) }
        var history: [EpochMetrics] = []
        var lastPoll = monotonicSeconds()
        for e in 1...options.epochs {
            let start = monotonicSeconds()
            let epochStart = interrupt == nil || e == 1 ? snapshot : ConvNetwork(copying: self)
            for i in 0..<order.count { order[i] = Int32(i) }
            var rng = SeededGenerator(seed: options.shuffleSeed, stream: UInt64(epochsTrained))
            rng.shuffle(&order)
            var lossSum = 0.0, correct = 0, first = 0
            while first < data.rows {
                let rows = min(batch, data.rows - first)
                let bx = ws.batchX.pointer
                for r in 0..<rows {
                    let src = Int(order[first + r])
                    (bx + r * d).update(from: data.x + src * d, count: d)
                    ws.batchY[r] = data.y[src]
                }
                let out = forward(bx, rows: rows, ws: ws)
                let (l, c) = ws.batchY.withUnsafeBufferPointer {
                    options.loss.evaluate(outputs: out, labels: $0.baseAddress!, rows: rows, k: k, grad: dOut.pointer, scaleRows: rows)
                }
                guard l.isFinite else {
                    restore(from: snapshot)
                    throw GatedNetError.notFinite("train: loss became \(l) in epoch \(epochsTrained + 1); network restored to its state before this call (lower the learning rate)")
                }
                lossSum += l; correct += c
                backward(bx, rows: rows, ws: ws, dOut: dOut.pointer, featureGrads: fg, valueGrads: vg)
                optimizerState!.step += 1
                for (key, param) in keys {
                    let table = key.part == .feature ? fg : vg
                    guard let g = table[key.layer] else { continue }
                    if let b = key.isBias ? g.bias : g.weight {
                        optimizerState!.update(key: key, param: param, grad: b, options: options)
                    }
                }
                first += rows
                if let poll = interrupt, monotonicSeconds() - lastPoll >= 0.1 {
                    lastPoll = monotonicSeconds()
                    if poll() {
                        restore(from: epochStart)
                        throw GatedNetError.cancelled("train: interrupted during epoch \(epochsTrained + 1); the network is as it was after epoch \(epochsTrained) (\(e - 1) epochs of this call completed)")
                    }
                }
            }
            epochsTrained += 1
            var m = EpochMetrics(epoch: epochsTrained, epochInCall: e, epochsInCall: options.epochs,
                                 trainLoss: lossSum / Double(data.rows), trainAccuracy: Double(correct) / Double(data.rows),
                                 seconds: 0)
            if let t = test {
                let r = evaluateUnchecked(t, loss: options.loss, ws: ws)
                m.testLoss = r.loss; m.testAccuracy = r.accuracy
            }
            m.seconds = monotonicSeconds() - start
            history.append(m)
            if !progress(m) { break }
        }
        return history
    }

    func restore(from snapshot: ConvNetwork) {
        for (a, b) in zip(parameterTensors, snapshot.parameterTensors) { a.buffer.assign(from: b.buffer) }
        featureFrozen = snapshot.featureFrozen
        valueFrozen = snapshot.valueFrozen
        epochsTrained = snapshot.epochsTrained
        optimizerState = snapshot.optimizerState
    }

    /// Mean loss and accuracy over validated data.
    public func evaluate(_ data: LabelledData, loss: Loss) throws -> (loss: Double, accuracy: Double) {
        try checkLoss(loss)
        try validate(data)
        return evaluateUnchecked(data, loss: loss, ws: nil)
    }

    func evaluateUnchecked(_ data: LabelledData, loss: Loss, ws given: ConvWorkspace?) -> (loss: Double, accuracy: Double) {
        let ws = given ?? workspace(rows: min(evaluationRows, data.rows), gradients: false)
        var total = 0.0, correct = 0
        forEachChunk(rows: data.rows, chunk: ws.capacity) { start, rows in
            let out = forward(data.x + start * inputSize, rows: rows, ws: ws)
            let r = loss.evaluate(outputs: out, labels: data.y + start, rows: rows, k: outputSize, grad: nil, scaleRows: rows)
            total += r.loss; correct += r.correct
        }
        return (total / Double(data.rows), Double(correct) / Double(data.rows))
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

    /// Predicted class per row.
    public func predictClasses(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Int32>) {
        let ws = workspace(rows: min(evaluationRows, rows), gradients: false)
        forEachChunk(rows: rows, chunk: ws.capacity) { start, n in
            let o = forward(x + start * inputSize, rows: n, ws: ws)
            for r in 0..<n { out[start + r] = Int32(predictedClass(o + r * outputSize, k: outputSize)) }
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
