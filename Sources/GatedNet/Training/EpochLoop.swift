import CKernels

/// What every network type shares with the training loop and the archive format: its
/// parameters, frozen flags, epoch counter, optimizer moments, and a deep copy it can be put
/// back to (to undo a diverged call or an interrupted epoch).
protocol TrainableNetwork: AnyObject {
    var epochsTrained: Int { get set }
    var optimizerState: OptimizerState? { get set }
    var featureFrozen: Bool { get set }
    var valueFrozen: Bool { get set }
    var parameterTensors: [(key: ParameterKey, buffer: FloatBuffer)] { get }
    func makeSnapshot() -> Self
}

extension TrainableNetwork {
    /// Put back weights, flags, epoch count and optimizer state from a snapshot of this network.
    func restore(from snapshot: Self) {
        for (a, b) in zip(parameterTensors, snapshot.parameterTensors) { a.buffer.assign(from: b.buffer) }
        featureFrozen = snapshot.featureFrozen
        valueFrozen = snapshot.valueFrozen
        epochsTrained = snapshot.epochsTrained
        optimizerState = snapshot.optimizerState
    }
}

/// One minibatch's place in the shared loop: where its rows go, and what trains on them.
struct MinibatchBuffers {
    /// batch capacity × inputSize floats, and the data row each minibatch row came from (batch
    /// capacity entries).
    let x: UnsafeMutablePointer<Float>
    let source: UnsafeMutablePointer<Int32>
}

/// The targets of one minibatch, gathered from the data's rows alongside its inputs: labels or
/// k values per row, whichever kind the data has.
final class MinibatchTargets {
    private let k: Int
    private let labels: UnsafeMutablePointer<Int32>?
    private let values: UnsafeMutablePointer<Float>?
    /// The gathered targets, as the loss reads them.
    let targets: Targets

    init(like data: Targets, batch: Int, k: Int) {
        self.k = k
        switch data {
        case .labels:
            let p = UnsafeMutablePointer<Int32>.allocate(capacity: batch)
            labels = p; values = nil; targets = .labels(UnsafePointer(p))
        case .values:
            let p = UnsafeMutablePointer<Float>.allocate(capacity: batch * k)
            labels = nil; values = p; targets = .values(UnsafePointer(p))
        }
    }

    deinit {
        labels?.deallocate()
        values?.deallocate()
    }

    /// Minibatch row `r` gets the targets of data row `src` (of the kind this was made for).
    @inline(__always)
    func gather(_ r: Int, from data: Targets, row src: Int) {
        switch data {
        case .labels(let y): labels?[r] = y[src]
        case .values(let t): if let v = values { (v + r * k).update(from: t + src * k, count: k) }
        }
    }
}

extension TrainableNetwork {
    /// The epoch loop every network type shares: seeded shuffling (epoch e of the network's life
    /// from (shuffle seed, e)), minibatch gathering, optimizer steps, divergence (restore the call's
    /// starting state, throw `.notFinite`), interrupts (restore the epoch's starting state, throw
    /// `.cancelled`), per-epoch metrics and the progress callback.
    ///
    /// `forwardBackward(rows, targets)` runs on the gathered minibatch (rows × inputSize in
    /// `buffers.x`, its targets, k = outputSize per row for values): it computes the loss
    /// gradients and returns the summed loss and correct count. Then every
    /// `updates` entry gets one optimizer step with its gradient buffer (plus, when given, the
    /// matching `partnerGradients` entry: the gradient of the minibatch's second half).
    func runEpochs(_ data: LabelledData, test: LabelledData?, options: TrainOptions, inputSize d: Int,
                   outputSize k: Int, batch: Int, buffers: MinibatchBuffers,
                   updates: [(key: ParameterKey, param: FloatBuffer, grad: FloatBuffer)],
                   partnerGradients: [FloatBuffer]? = nil,
                   interrupt: (() -> Bool)?, progress: (EpochMetrics) -> Bool,
                   forwardBackward: (_ rows: Int, _ targets: Targets) -> (loss: Double, correct: Int),
                   evaluateTest: (LabelledData) -> (loss: Double, accuracy: Double)) throws -> [EpochMetrics] {
        // Snapshot first: a failed call must also keep the optimizer state it replaces.
        let snapshot = makeSnapshot()
        // The moments carry over between calls with the same optimizer; another one starts afresh.
        let optimizer = optimizerState.flatMap { $0.kind == options.optimizer ? $0 : nil } ?? OptimizerState(kind: options.optimizer)
        optimizerState = optimizer
        optimizer.prepareMoments(for: updates.map { ($0.key, $0.param.count) }, options: options)
        let parameterCount = updates.reduce(0) { $0 + $1.param.count }
        // One optimizer step. Element-wise: each core takes half of every tensor (same numbers
        // either way), adding the partner's gradient first.
        func stepPart(_ part: Int) {
            for (i, u) in updates.enumerated() {
                let n = u.param.count, mid = (n / 2) & ~15
                let range = part == 0 ? 0..<mid : mid..<n
                if let partner = partnerGradients?[i] {
                    gnk_add_into(u.grad.pointer + range.lowerBound, partner.pointer + range.lowerBound, range.count)
                }
                optimizer.update(key: u.key, param: u.param, grad: u.grad, range: range, options: options)
            }
        }
        // Tiny Adam moments and gradients go denormal; flush them on this thread while training.
        let fpState = gnk_fp_flush_denormals()
        defer { gnk_fp_restore(fpState) }

        let batchTargets = MinibatchTargets(like: data.targets, batch: batch, k: k)
        var order = [Int32](repeating: 0, count: data.rows)
        var history: [EpochMetrics] = []
        var lastPoll = monotonicSeconds()
        for e in 1...options.epochs {
            let start = monotonicSeconds()
            let epochStart = interrupt == nil || e == 1 ? snapshot : makeSnapshot()
            for i in 0..<order.count { order[i] = Int32(i) }
            var rng = SeededGenerator(seed: options.shuffleSeed, stream: UInt64(epochsTrained))
            rng.shuffle(&order)
            var lossSum = 0.0, correct = 0, first = 0
            while first < data.rows {
                let rows = min(batch, data.rows - first)
                for r in 0..<rows {
                    let src = Int(order[first + r])
                    (buffers.x + r * d).update(from: data.x + src * d, count: d)
                    batchTargets.gather(r, from: data.targets, row: src)
                    buffers.source[r] = Int32(src)
                }
                let (l, c) = forwardBackward(rows, batchTargets.targets)
                guard l.isFinite else {
                    restore(from: snapshot)
                    throw GatedNetError.notFinite("train: loss became \(l) in epoch \(epochsTrained + 1); network restored to its state before this call (lower the learning rate)")
                }
                lossSum += l; correct += c
                optimizer.step += 1
                if parameterCount >= 1 << 14 { inParallel(stepPart) } else { stepPart(0); stepPart(1) }
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
                                 trainLoss: lossSum / Double(data.rows),
                                 trainAccuracy: data.targets.areLabels ? Double(correct) / Double(data.rows) : .nan,
                                 seconds: 0)
            if let t = test {
                let r = evaluateTest(t)
                m.testLoss = r.loss; m.testAccuracy = r.accuracy
            }
            m.seconds = monotonicSeconds() - start
            history.append(m)
            if !progress(m) { break }
        }
        return history
    }
}

/// Input and target checks shared by every network type: finite inputs, labels in range,
/// finite real-valued targets (rows × outputSize).
func validateLabelledData(_ data: LabelledData, inputSize: Int, outputSize: Int, x xName: String, y yName: String) throws {
    guard data.rows >= 1 else { throw GatedNetError.invalidArgument("\(xName) rows: got \(data.rows), need >= 1") }
    let count = try checkedCount(data.rows, inputSize, what: xName)
    guard isAllFinite(data.x, count) else { throw GatedNetError.notFinite("\(xName): contains NaN or Inf") }
    switch data.targets {
    case .labels(let y):
        let classes = outputSize == 1 ? 2 : outputSize
        for i in 0..<data.rows where y[i] < 0 || Int(y[i]) >= classes {
            throw GatedNetError.labelRange("\(yName)[\(i)]: got \(y[i]), need 0 ... \(classes - 1)")
        }
    case .values(let t):
        guard isAllFinite(t, try checkedCount(data.rows, outputSize, what: yName)) else {
            throw GatedNetError.notFinite("\(yName): contains NaN or Inf")
        }
    }
}

/// Softmax cross-entropy reads the output of the label's class: it needs one output per class,
/// and class labels (real-valued targets train with the squared loss).
func checkLoss(_ loss: Loss, outputSize: Int, targets: Targets? = nil) throws {
    if loss == .crossEntropy, let t = targets, !t.areLabels {
        throw GatedNetError.invalidArgument("loss: real-valued targets need the squared loss, got cross-entropy (which takes class labels)")
    }
    if loss == .crossEntropy && outputSize < 2 {
        throw GatedNetError.invalidArgument("loss: cross-entropy needs output_size >= 2, got 1; use the squared loss for one output")
    }
}
