import CKernels
import Glibc

/// Options of one training call (defaults as in gatednet.h).
public struct TrainOptions: Sendable {
    public var optimizer: OptimizerKind = .adam
    public var loss: Loss = .crossEntropy
    public var learningRate: Float = 3e-4
    public var momentum: Float = 0.9
    public var weightDecay: Float = 0
    public var adamBeta1: Float = 0.9
    public var adamBeta2: Float = 0.999
    public var adamEpsilon: Float = 1e-8
    public var batchSize: Int = 32
    public var epochs: Int = 1
    public var shuffleSeed: UInt64 = 0
    /// Train the feature net alone through its own head.
    public var trainFeatureHead: Bool = false

    public init() {}

    public func validate() throws {
        func positive(_ v: Float, _ name: String) throws {
            guard v.isFinite && v > 0 else { throw GatedNetError.invalidArgument("\(name): got \(v), need a finite value > 0") }
        }
        try positive(learningRate, "learning_rate")
        guard momentum.isFinite && momentum >= 0 && momentum < 1 else {
            throw GatedNetError.invalidArgument("momentum: got \(momentum), need 0 <= momentum < 1")
        }
        guard weightDecay.isFinite && weightDecay >= 0 else {
            throw GatedNetError.invalidArgument("weight_decay: got \(weightDecay), need a finite value >= 0")
        }
        guard adamBeta1.isFinite && adamBeta1 >= 0 && adamBeta1 < 1 else {
            throw GatedNetError.invalidArgument("adam_beta1: got \(adamBeta1), need 0 <= beta1 < 1")
        }
        guard adamBeta2.isFinite && adamBeta2 >= 0 && adamBeta2 < 1 else {
            throw GatedNetError.invalidArgument("adam_beta2: got \(adamBeta2), need 0 <= beta2 < 1")
        }
        try positive(adamEpsilon, "adam_epsilon")
        guard batchSize >= 1 && batchSize <= 1 << 20 else {
            throw GatedNetError.invalidArgument("batch_size: got \(batchSize), need 1 ... 1048576")
        }
        guard epochs >= 1 else { throw GatedNetError.invalidArgument("epochs: got \(epochs), need >= 1") }
    }
}

/// Metrics of one epoch (see gn_epoch_metrics).
public struct EpochMetrics: Sendable, Equatable {
    public var epoch: Int
    public var epochInCall: Int
    public var epochsInCall: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var testLoss: Double = .nan
    public var testAccuracy: Double = .nan
    public var seconds: Double
}

/// A batch and its targets viewed in place: x is rows × inputSize row-major; the targets are
/// rows class labels, or rows × outputSize real values (regression, squared loss only).
public struct LabelledData {
    public let x: UnsafePointer<Float>
    public let targets: Targets
    public let rows: Int
    public init(x: UnsafePointer<Float>, targets: Targets, rows: Int) {
        self.x = x; self.targets = targets; self.rows = rows
    }
    /// Class labels y (rows entries).
    public init(x: UnsafePointer<Float>, y: UnsafePointer<Int32>, rows: Int) {
        self.init(x: x, targets: .labels(y), rows: rows)
    }
    /// Real-valued targets (rows × outputSize, row-major).
    public init(x: UnsafePointer<Float>, values: UnsafePointer<Float>, rows: Int) {
        self.init(x: x, targets: .values(values), rows: rows)
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

extension GatedNetwork {
    /// Check that data fits this network: finite inputs, labels in range, finite target values.
    public func validate(_ data: LabelledData, x xName: String = "x", y yName: String = "y") throws {
        try validateLabelledData(data, inputSize: inputSize, outputSize: outputSize, x: xName, y: yName)
    }

    /// Train with minibatches over `data`. `progress` is called after each epoch and returns
    /// false to stop. On divergence (non-finite loss) the network is restored and `.notFinite`
    /// is thrown. `interrupt`, if given, is polled about every 0.1 s between minibatches; when it
    /// returns true the network goes back to its state at the start of the current epoch and
    /// `.cancelled` is thrown (completed epochs stay trained). Returns the metrics of the epochs run.
    /// Real-valued targets (regression) need the squared loss; their accuracies are NaN.
    @discardableResult
    public func train(_ data: LabelledData, test: LabelledData? = nil, options: TrainOptions,
                      interrupt: (() -> Bool)? = nil,
                      progress: (EpochMetrics) -> Bool = { _ in true }) throws -> [EpochMetrics] {
        try options.validate()
        try checkLoss(options.loss, outputSize: outputSize, targets: data.targets)
        if let t = test { try checkLoss(options.loss, outputSize: outputSize, targets: t.targets) }
        try validate(data)
        if let t = test { try validate(t, x: "x_test", y: "y_test") }
        let target: PassTarget = options.trainFeatureHead ? .featureHead : .network
        if options.trainFeatureHead && featureHead == nil {
            throw GatedNetError.unsupported("train_feature_head: this network has no feature head")
        }
        _ = try spec.workspaceFloats(rows: min(options.batchSize, data.rows))
        let parts = trainableParts(target: target)
        guard parts.feature || parts.value else {
            throw GatedNetError.unsupported("train: nothing to train (every part the objective reaches is frozen, or hard gates pass no gradient to the feature net)")
        }
        let batch = min(options.batchSize, data.rows)
        let split = batch >= minimumSplitRows
        let ws = workspace(rows: max(batch, min(evaluationChunk, test?.rows ?? 0)))
        let partnerWs = split ? partnerWorkspace(rows: max(batch / 2, min(evaluationChunk, test?.rows ?? 0))) : nil
        let grads = Gradients(self)
        let partnerGrads = split ? Gradients(self) : nil
        var updates: [(key: ParameterKey, param: FloatBuffer, grad: FloatBuffer)] = []
        var partners: [FloatBuffer] = []
        for entry in parameterTensors {
            // The DGN's output never reaches an untied feature head: no update (decay, stale moments).
            if target == .network && !tied && entry.key.part == .feature && entry.key.layer == hiddenCount { continue }
            guard entry.key.part == .feature ? parts.feature : parts.value,
                  let g = grads.buffer(for: entry.key, hiddenCount: hiddenCount) else { continue }
            updates.append((entry.key, entry.buffer, g))
            if let pg = partnerGrads?.buffer(for: entry.key, hiddenCount: hiddenCount) { partners.append(pg) }
        }
        // Frozen hard gates never change during the call: compute them once, keep them as bits
        // (n·Σw/8 bytes), and skip the feature pass in every minibatch.
        let gateCache = !tied && target == .network && spec.gateKind == .hard && featureFrozen
            ? packedGates(data.x, rows: data.rows) : nil
        var batchRows = [Int32](repeating: 0, count: batch)  // source row of each minibatch row
        let bx = ws.batchX.pointer
        // Rows [first, first + rows) of the minibatch through forward, loss (scaled by 1/total)
        // and backward, on workspace `w` into gradients `g`.
        func step(first: Int, rows: Int, total: Int, w: Workspace, g: Gradients,
                  targets: Targets, source: UnsafeMutablePointer<Int32>) -> (loss: Double, correct: Int) {
            let x = UnsafePointer(bx + first * inputSize)
            if let cache = gateCache {
                for (l, width) in hiddenWidths.enumerated() {
                    let gl = w.gates[l].pointer
                    for r in 0..<rows {
                        unpackGateRow(cache.bits + Int(source[first + r]) * cache.stride + cache.offsets[l], width: width, into: gl + r * width)
                    }
                }
                runValue(x, rows: rows, ws: w)
            } else {
                forward(x, rows: rows, ws: w, target: target)
            }
            let r = options.loss.evaluate(outputs: w.out.pointer, targets: targets.fromRow(first, k: outputSize), rows: rows,
                                          k: outputSize, grad: w.dOut.pointer, scaleRows: total)
            if r.loss.isFinite { backward(x, rows: rows, ws: w, grads: g, target: target) }
            return r
        }
        func trainEpochs() throws -> [EpochMetrics] {
            try batchRows.withUnsafeMutableBufferPointer { sourceBuffer in
                let source = sourceBuffer.baseAddress!
                return try self.runEpochs(data, test: test, options: options, inputSize: self.inputSize,
                                          outputSize: self.outputSize, batch: batch,
                                          buffers: MinibatchBuffers(x: bx, source: source),
                                          updates: updates, partnerGradients: split ? partners : nil,
                                          interrupt: interrupt, progress: progress,
                                          forwardBackward: { rows, targets in
                    guard rows >= minimumSplitRows, let pw = partnerWs, let pg = partnerGrads else {
                        return step(first: 0, rows: rows, total: rows, w: ws, g: grads, targets: targets, source: source)
                    }
                    // Two halves on two cores; the optimizer step adds the partner's gradients.
                    var first = (loss: 0.0, correct: 0), second = first  // one per part
                    inParallel { part in
                        let (start, count) = half(part, of: rows)
                        if part == 0 {
                            first = step(first: start, rows: count, total: rows, w: ws, g: grads, targets: targets, source: source)
                        } else {
                            second = step(first: start, rows: count, total: rows, w: pw, g: pg, targets: targets, source: source)
                        }
                    }
                    return (first.loss + second.loss, first.correct + second.correct)
                }, evaluateTest: { t in self.evaluateUnchecked(t, loss: options.loss, target: target) })
            }
        }
        return try BLAS.singleThreaded { try trainEpochs() }
    }

    func makeSnapshot() -> GatedNetwork { GatedNetwork(copying: self) }

    /// Mean loss and accuracy (validated data; accuracy NaN for real-valued targets).
    public func evaluate(_ data: LabelledData, loss: Loss, featureHead useHead: Bool = false) throws -> (loss: Double, accuracy: Double) {
        try checkLoss(loss, outputSize: outputSize, targets: data.targets)
        try validate(data)
        if useHead && featureHead == nil { throw GatedNetError.unsupported("feature head: this network has none") }
        return evaluateUnchecked(data, loss: loss, target: useHead ? .featureHead : .network)
    }

    func evaluateUnchecked(_ data: LabelledData, loss: Loss, target: PassTarget) -> (loss: Double, accuracy: Double) {
        var sums = [(loss: Double, correct: Int)](repeating: (0, 0), count: 2)
        sums.withUnsafeMutableBufferPointer { partial in
            forEachChunkInParallel(rows: data.rows, chunk: evaluationChunk) { start, rows, ws, part in
                forward(data.x + start * inputSize, rows: rows, ws: ws, target: target)
                let r = loss.evaluate(outputs: ws.out.pointer, targets: data.targets.fromRow(start, k: outputSize),
                                      rows: rows, k: outputSize, grad: nil, scaleRows: rows)
                partial[part].loss += r.loss; partial[part].correct += r.correct
            }
        }
        let correct = sums[0].correct + sums[1].correct
        return ((sums[0].loss + sums[1].loss) / Double(data.rows),
                data.targets.areLabels ? Double(correct) / Double(data.rows) : .nan)
    }

    /// Outputs for `rows` rows of x (rows × inputSize) into out (rows × outputSize).
    /// Inputs must be finite (not checked here; the C layer checks).
    public func predict(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>, featureHead useHead: Bool = false) throws {
        if useHead && featureHead == nil { throw GatedNetError.unsupported("feature head: this network has none") }
        forEachChunkInParallel(rows: rows, chunk: evaluationChunk) { start, n, ws, _ in
            forward(x + start * inputSize, rows: n, ws: ws, target: useHead ? .featureHead : .network)
            (out + start * outputSize).update(from: ws.out.pointer, count: n * outputSize)
        }
    }

    /// Predicted class per row. Throws `.notFinite` naming the first row whose outputs are NaN
    /// or Inf (activations that overflow float32), which has no class.
    public func predictClasses(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Int32>) throws {
        var firstBad = [Int](repeating: .max, count: 2)  // per part
        firstBad.withUnsafeMutableBufferPointer { bad in
            forEachChunkInParallel(rows: rows, chunk: evaluationChunk) { start, n, ws, part in
                forward(x + start * inputSize, rows: n, ws: ws, target: .network)
                for r in 0..<n {
                    let logits = ws.out.pointer + r * outputSize
                    if !isAllFinite(logits, outputSize) { bad[part] = min(bad[part], start + r) }
                    out[start + r] = Int32(predictedClass(logits, k: outputSize))
                }
            }
        }
        if let r = firstBad.min(), r != .max { throw nonFiniteOutputs(row: r) }
    }
}

extension GatedNetwork: TrainableNetwork {}

/// Minibatches of at least this many rows train in two halves on two cores (smaller ones on
/// one). A function of the batch size only, so the numbers do not depend on the machine.
let minimumSplitRows = 16
