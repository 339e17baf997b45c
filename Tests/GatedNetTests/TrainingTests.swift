@testable import GatedNet
import Testing

/// Fashion-MNIST subsets from the 10000-image split: 5000 rows to train on, 2000 disjoint rows
/// to test on, pixels scaled to [0, 1].
let fashionSubsets: (train: (x: [Float], y: [Int32]), test: (x: [Float], y: [Int32]))? = {
    guard let data = fashionMNIST, let labels = try? data.labels.int32s() else { return nil }
    func rows(_ range: Range<Int>) -> (x: [Float], y: [Int32]) { (unitPixels(data.images, rows: range), Array(labels[range])) }
    return (rows(0..<5000), rows(8000..<10000))
}()

func fashion() throws -> (train: (x: [Float], y: [Int32]), test: (x: [Float], y: [Int32])) {
    try #require(fashionSubsets, "Fashion-MNIST missing under /usr/share/datasets/fashion-mnist")
}

func fashionOptions(epochs: Int) -> TrainOptions {
    var o = TrainOptions()
    o.learningRate = 2e-3
    o.batchSize = 50
    o.epochs = epochs
    o.shuffleSeed = 3
    return o
}

/// Snapshot of the feature layers, to check later that they did not move.
func featureCopies(_ net: GatedNetwork) -> [DenseLayer] { net.featureLayers.map { $0.copy() } }

@Suite("Training", .serialized)
struct TrainingTests {
    // Test accuracies measured on this setup (5000 train / 2000 test rows, 784-128-128-10, Adam
    // 2e-3, batch 50, 3 epochs): fixed random ii 0.800, fixed random di 0.801, relu 0.795, fixed
    // learnt 0.813; feature head (784-64-10, 2000 rows, 2 epochs) 0.742. Asserted with a margin.

    @Test("fixed random gates (ii and di) learn Fashion-MNIST and the gates stay bit-identical",
          arguments: [Regime.fixedRandomII, .fixedRandomDI])
    func fixedRandomGatesLearn(_ regime: Regime) throws {
        let data = try fashion()
        let net = try GatedNetwork(spec: makeSpec(regime, 784, [128, 128], 10, seed: 901))
        let before = featureCopies(net)
        let chance = try net.evaluate(x: data.test.x, y: data.test.y).accuracy
        let history = try net.train(x: data.train.x, y: data.train.y, test: data.test, options: fashionOptions(epochs: 3))
        let accuracy = history.last!.testAccuracy
        #expect(chance < 0.3)
        #expect(accuracy >= 0.75, "\(regime.name): test accuracy \(accuracy)")
        #expect(history.last!.trainLoss < history.first!.trainLoss)
        for (a, b) in zip(net.featureLayers, before) { #expect(a.isBitIdentical(to: b)) }
        #expect(net.epochsTrained == 3)
        // The recorded test metrics are those of the trained network.
        let evaluated = try net.evaluate(x: data.test.x, y: data.test.y)
        #expect(evaluated.accuracy == accuracy)
        #expect(abs(evaluated.loss - history.last!.testLoss) <= 1e-9 * evaluated.loss)
    }

    @Test("fixed learnt gates from a trained ReLU network learn Fashion-MNIST and stay those of the ReLU network")
    func fixedLearntGatesLearn() throws {
        let data = try fashion()
        let relu = try GatedNetwork(spec: makeSpec(.relu, 784, [128, 128], 10, seed: 902))
        let reluHistory = try relu.train(x: data.train.x, y: data.train.y, test: data.test, options: fashionOptions(epochs: 3))
        #expect(reluHistory.last!.testAccuracy >= 0.75, "relu test accuracy \(reluHistory.last!.testAccuracy)")
        let net = try GatedNetwork(spec: makeSpec(.fixedLearnt, 784, [128, 128], 10, seed: 903), gateSource: relu)
        let history = try net.train(x: data.train.x, y: data.train.y, test: data.test, options: fashionOptions(epochs: 3))
        #expect(history.last!.testAccuracy >= 0.75, "fixed learnt test accuracy \(history.last!.testAccuracy)")
        for (a, b) in zip(net.featureLayers, relu.featureLayers) { #expect(a.isBitIdentical(to: b)) }
        #expect(net.gateArrays(Array(data.test.x[0..<(784 * 50)])) == relu.gateArrays(Array(data.test.x[0..<(784 * 50)])))
    }

    @Test("train_feature_head trains the feature net and its head alone, leaving the value net untouched")
    func featureHeadTrainsAlone() throws {
        let data = try fashion()
        let net = try GatedNetwork(spec: makeSpec(.decoupled, 784, [64], 10, seed: 904) { $0.featureHead = true })
        let values = net.valueLayers.map { $0.copy() }
        let features = featureCopies(net), head = net.featureHead!.copy()
        var options = fashionOptions(epochs: 2)
        options.trainFeatureHead = true
        let train = (x: Array(data.train.x[0..<(2000 * 784)]), y: Array(data.train.y[0..<2000]))
        let history = try net.train(x: train.x, y: train.y, test: data.test, options: options)
        for (a, b) in zip(net.valueLayers, values) { #expect(a.isBitIdentical(to: b)) }
        for (a, b) in zip(net.featureLayers, features) { #expect(!a.isBitIdentical(to: b)) }
        #expect(!net.featureHead!.isBitIdentical(to: head))
        let headAccuracy = try net.evaluate(x: data.test.x, y: data.test.y, featureHead: true).accuracy
        #expect(headAccuracy == history.last!.testAccuracy)
        #expect(headAccuracy >= 0.7, "feature head test accuracy \(headAccuracy)")
        // The DGN output moved only through its gates; it was not the objective.
        #expect(try net.evaluate(x: data.test.x, y: data.test.y).accuracy < headAccuracy)
        // Without a head it is refused.
        let headless = try GatedNetwork(spec: makeSpec(.decoupled, 784, [8], 10, seed: 905))
        #expect(throws: GatedNetError.unsupported("train_feature_head: this network has no feature head")) {
            try headless.train(x: train.x, y: train.y, options: options)
        }
    }

    @Test("training the DGN leaves the feature head alone, even with weight decay and moments from head training")
    func networkTrainingLeavesHeadAlone() throws {
        let problem = syntheticProblem(rows: 60, inputSize: 5, classes: 3, seed: 926)
        let net = try GatedNetwork(spec: makeSpec(.decoupled, 5, [8], 3, seed: 927) { $0.featureHead = true; $0.bias = true })
        var options = fashionOptions(epochs: 2)
        options.trainFeatureHead = true
        try net.train(x: problem.x, y: problem.y, options: options)   // Adam moments for the head now exist
        let head = net.featureHead!.copy()
        let features = featureCopies(net)
        options.trainFeatureHead = false
        options.weightDecay = 1e-2
        try net.train(x: problem.x, y: problem.y, options: options)
        #expect(net.featureHead!.isBitIdentical(to: head))
        for (a, b) in zip(net.featureLayers, features) { #expect(!a.isBitIdentical(to: b)) }
    }

    @Test("unfreezing a part drops its optimizer moments")
    func unfreezeDropsMoments() throws {
        let problem = syntheticProblem(rows: 30, inputSize: 5, classes: 3, seed: 928)
        let net = try GatedNetwork(spec: makeSpec(.decoupled, 5, [8], 3, seed: 929))
        try net.train(x: problem.x, y: problem.y, options: fashionOptions(epochs: 1))
        #expect(net.optimizerState!.first.keys.contains { $0.part == .value })
        net.setFrozen(.value, true)
        net.setFrozen(.value, false)
        #expect(!net.optimizerState!.first.keys.contains { $0.part == .value })
        #expect(!net.optimizerState!.second.keys.contains { $0.part == .value })
        #expect(net.optimizerState!.first.keys.contains { $0.part == .feature })
    }

    @Test("soft-gated regimes train both the gates and the values")
    func softGatesLearn() throws {
        let problem = syntheticProblem(rows: 400, inputSize: 6, classes: 3, seed: 906)
        for regime in [Regime.decoupled, .dlgn, .dlgnPWC] {
            let net = try GatedNetwork(spec: makeSpec(regime, 6, [16, 16], 3, seed: 907) { $0.beta = 4 })
            let features = featureCopies(net), values = net.valueLayers.map { $0.copy() }
            var options = fashionOptions(epochs: 15)
            options.learningRate = 1e-2
            options.batchSize = 20
            let history = try net.train(x: problem.x, y: problem.y, options: options)
            for (a, b) in zip(net.featureLayers, features) { #expect(!a.isBitIdentical(to: b), "\(regime.name) gates moved") }
            for (a, b) in zip(net.valueLayers, values) { #expect(!a.isBitIdentical(to: b), "\(regime.name) values moved") }
            #expect(history.last!.trainAccuracy > 0.8, "\(regime.name): train accuracy \(history.last!.trainAccuracy)")
        }
    }

    @Test("the same seeds give bit-identical weights and metrics")
    func reproducible() throws {
        let data = try fashion()
        let train = (x: Array(data.train.x[0..<(1000 * 784)]), y: Array(data.train.y[0..<1000]))
        var results: [(GatedNetwork, [EpochMetrics])] = []
        for _ in 0..<2 {
            let net = try GatedNetwork(spec: makeSpec(.decoupled, 784, [32, 32], 10, seed: 908) { $0.bias = true })
            results.append((net, try net.train(x: train.x, y: train.y, options: fashionOptions(epochs: 2))))
        }
        #expect(results[0].0.isBitIdentical(to: results[1].0))
        #expect(results[0].1.map(\.trainLoss) == results[1].1.map(\.trainLoss))
        #expect(results[0].1.map(\.trainAccuracy) == results[1].1.map(\.trainAccuracy))
        // A different shuffle seed gives a different result.
        let other = try GatedNetwork(spec: makeSpec(.decoupled, 784, [32, 32], 10, seed: 908) { $0.bias = true })
        var options = fashionOptions(epochs: 2)
        options.shuffleSeed = 4
        try other.train(x: train.x, y: train.y, options: options)
        #expect(!other.isBitIdentical(to: results[0].0))
    }

    @Test("training, evaluation and prediction give the same bits with the second core or without it")
    func sameBitsOnOneOrTwoCores() throws {
        let problem = syntheticProblem(rows: 3000, inputSize: 20, classes: 4, seed: 930)
        var options = fashionOptions(epochs: 2)
        options.batchSize = 64
        var nets: [GatedNetwork] = []
        var predictions: [[Float]] = []
        var metrics: [[EpochMetrics]] = []
        for enabled in [true, false] {
            parallelWorkerEnabled = enabled
            defer { parallelWorkerEnabled = true }
            let net = try GatedNetwork(spec: makeSpec(.decoupled, 20, [64, 64], 4, seed: 931) { $0.bias = true })
            let history = try net.train(x: problem.x, y: problem.y, test: (problem.x, problem.y), options: options)
            metrics.append(history.map { var m = $0; m.seconds = 0; return m })
            var out = [Float](repeating: 0, count: 3000 * 4)  // 3 chunks of prediction rows
            try problem.x.withUnsafeBufferPointer { x in
                try out.withUnsafeMutableBufferPointer { try net.predict(x.baseAddress!, rows: 3000, into: $0.baseAddress!) }
            }
            predictions.append(out)
            nets.append(net)
        }
        #expect(nets[0].isBitIdentical(to: nets[1]))
        #expect(metrics[0] == metrics[1])
        #expect(predictions[0] == predictions[1])
    }

    @Test("two calls of one epoch equal one call of two epochs")
    func epochsCompose() throws {
        let problem = syntheticProblem(rows: 200, inputSize: 5, classes: 3, seed: 909)
        let a = try GatedNetwork(spec: makeSpec(.fixedRandomII, 5, [12], 3, seed: 910))
        let b = try GatedNetwork(spec: makeSpec(.fixedRandomII, 5, [12], 3, seed: 910))
        try a.train(x: problem.x, y: problem.y, options: fashionOptions(epochs: 2))
        try b.train(x: problem.x, y: problem.y, options: fashionOptions(epochs: 1))
        try b.train(x: problem.x, y: problem.y, options: fashionOptions(epochs: 1))
        #expect(a.isBitIdentical(to: b))
    }

    @Test("the progress closure stops training early by returning false")
    func earlyStop() throws {
        let problem = syntheticProblem(rows: 200, inputSize: 5, classes: 3, seed: 911)
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, 5, [12], 3, seed: 912))
        var seen: [EpochMetrics] = []
        let history = try net.train(x: problem.x, y: problem.y, options: fashionOptions(epochs: 10)) { m in
            seen.append(m)
            return m.epochInCall < 3
        }
        #expect(history.count == 3)
        #expect(seen.map(\.trainLoss) == history.map(\.trainLoss))
        #expect(net.epochsTrained == 3)
        #expect(history.map(\.epoch) == [1, 2, 3])
        #expect(history.allSatisfy { $0.epochsInCall == 10 && $0.testAccuracy.isNaN })
        // Epoch numbers continue over calls.
        let more = try net.train(x: problem.x, y: problem.y, options: fashionOptions(epochs: 2))
        #expect(more.map(\.epoch) == [4, 5])
        #expect(more.map(\.epochInCall) == [1, 2])
    }

    @Test("an interrupt cancels training and leaves the network as after its last completed epoch")
    func interruptKeepsCompletedEpochs() throws {
        let data = try fashion()
        let train = (x: Array(data.train.x[0..<(2000 * 784)]), y: Array(data.train.y[0..<2000]))
        let spec = makeSpec(.fixedRandomII, 784, [32], 10, seed: 930)
        let net = try GatedNetwork(spec: spec)
        var completed = 0, polls = 0
        var options = fashionOptions(epochs: 500)
        do {
            try train.x.withUnsafeBufferPointer { xp in
                try train.y.withUnsafeBufferPointer { yp in
                    _ = try net.train(LabelledData(x: xp.baseAddress!, y: yp.baseAddress!, rows: 2000), options: options,
                                      interrupt: { polls += 1; return completed >= 1 },
                                      progress: { _ in completed += 1; return true })
                }
            }
            Issue.record("training was not interrupted")
        } catch GatedNetError.cancelled {}
        #expect(polls >= 1)
        #expect(net.epochsTrained == completed && completed >= 1 && completed < 500)
        // The same completed epochs without an interrupt give the same network.
        let reference = try GatedNetwork(spec: spec)
        options.epochs = completed
        try reference.train(x: train.x, y: train.y, options: options)
        #expect(net.isBitIdentical(to: reference))
    }

    @Test("divergence restores the network, flags and optimizer state, and throws notFinite")
    func divergenceRestores() throws {
        let problem = syntheticProblem(rows: 200, inputSize: 5, classes: 3, seed: 913)
        for optimizer in [OptimizerKind.sgd, .adam] {
            let net = try GatedNetwork(spec: makeSpec(.decoupled, 5, [12, 12], 3, seed: 914) { $0.bias = true })
            // Prior state: one epoch with Adam, so moments exist.
            try net.train(x: problem.x, y: problem.y, options: fashionOptions(epochs: 1))
            let before = GatedNetwork(copying: net)
            #expect(before.isBitIdentical(to: net))
            var options = fashionOptions(epochs: 3)
            options.optimizer = optimizer
            options.learningRate = optimizer == .sgd ? 1e30 : 1e18
            do {
                try net.train(x: problem.x, y: problem.y, options: options)
                Issue.record("\(optimizer): training with learning rate \(options.learningRate) did not diverge")
            } catch GatedNetError.notFinite {}
            #expect(net.isBitIdentical(to: before), "\(optimizer): network not restored")
            // Still trains normally afterwards.
            let after = try net.train(x: problem.x, y: problem.y, options: fashionOptions(epochs: 1))
            #expect(after.last!.trainLoss.isFinite)
        }
    }

    @Test("invalid data and options are rejected without touching the network")
    func invalidInputsRejected() throws {
        let problem = syntheticProblem(rows: 20, inputSize: 5, classes: 3, seed: 915)
        let net = try GatedNetwork(spec: makeSpec(.decoupled, 5, [6], 3, seed: 916))
        let before = GatedNetwork(copying: net)
        func kind(_ body: () throws -> Void) -> String {
            do { try body(); return "ok" } catch let e as GatedNetError {
                switch e {
                case .invalidArgument: return "invalid"
                case .labelRange: return "label"
                case .notFinite: return "notFinite"
                case .unsupported: return "unsupported"
                default: return "other \(e)"
                }
            } catch { return "foreign \(error)" }
        }
        let options = fashionOptions(epochs: 1)
        var badLabels = problem.y
        badLabels[7] = 3
        #expect(kind { try net.train(x: problem.x, y: badLabels, options: options) } == "label")
        badLabels[7] = -1
        #expect(kind { try net.train(x: problem.x, y: badLabels, options: options) } == "label")
        var badX = problem.x
        badX[13] = .nan
        #expect(kind { try net.train(x: badX, y: problem.y, options: options) } == "notFinite")
        badX[13] = .infinity
        #expect(kind { try net.train(x: problem.x, y: problem.y, test: (badX, problem.y), options: options) } == "notFinite")
        #expect(kind {
            try problem.x.withUnsafeBufferPointer { xp in
                try problem.y.withUnsafeBufferPointer { yp in
                    _ = try net.train(LabelledData(x: xp.baseAddress!, y: yp.baseAddress!, rows: 0), options: options)
                }
            }
        } == "invalid")
        for edit: (inout TrainOptions) -> Void in [
            { $0.learningRate = 0 }, { $0.learningRate = .nan }, { $0.learningRate = -1 }, { $0.batchSize = 0 },
            { $0.epochs = 0 }, { $0.momentum = 1 }, { $0.weightDecay = -1 }, { $0.adamBeta1 = 1 },
            { $0.adamBeta2 = -0.1 }, { $0.adamEpsilon = 0 },
        ] {
            var o = options
            edit(&o)
            #expect(kind { try net.train(x: problem.x, y: problem.y, options: o) } == "invalid")
        }
        #expect(net.isBitIdentical(to: before))
        // Nothing to train: hard gates pass no gradient to an unfrozen feature net whose values are frozen.
        let hard = try GatedNetwork(spec: makeSpec(.custom, 5, [6], 3, seed: 917))
        hard.setFrozen(.value, true)
        #expect(kind { try hard.train(x: problem.x, y: problem.y, options: options) } == "unsupported")
        let frozen = try GatedNetwork(spec: makeSpec(.fixedRandomII, 5, [6], 3, seed: 918))
        frozen.setFrozen(.value, true)
        #expect(kind { try frozen.train(x: problem.x, y: problem.y, options: options) } == "unsupported")
    }

    // 9 rows train on one core; 16 and 37 in two halves (gradients summed before the step).
    @Test("one full-batch step of SGD and of Adam moves each weight as their update formulas say",
          arguments: [OptimizerKind.sgd, .adam], [9, 16, 37])
    func singleStepFollowsUpdateRule(_ optimizer: OptimizerKind, rows: Int) throws {
        let problem = syntheticProblem(rows: rows, inputSize: 5, classes: 3, seed: 923)
        let net = try GatedNetwork(spec: makeSpec(.decoupled, 5, [6, 4], 3, seed: 924) { $0.bias = true; $0.beta = 3 })
        for t in net.parameterTensors where t.key.isBias {
            let v = seededUniform(t.buffer.count, seed: 925 + UInt64(t.key.layer), scale: 0.3)
            for j in v.indices { t.buffer[j] = v[j] }
        }
        let before = GatedNetwork(copying: net)
        let gradients = before.engineGradients(problem.x, problem.y, loss: .crossEntropy, target: .network).grads
        var options = fashionOptions(epochs: 1)
        options.optimizer = optimizer
        options.batchSize = rows
        options.learningRate = 1e-2
        options.momentum = 0.5        // the first SGD step has no velocity yet
        options.weightDecay = 0.05
        options.adamEpsilon = 1e-3
        try net.train(x: problem.x, y: problem.y, options: options)
        for (new, old) in zip(net.parameterTensors, before.parameterTensors) {
            let g = gradients[old.key]!, p = old.buffer.array
            let expected: [Double] = p.indices.map { i in
                let gi = Double(g[i]) + 0.05 * Double(p[i])
                return optimizer == .sgd ? -1e-2 * gi : -1e-2 * gi / (abs(gi) + 1e-3)
            }
            let moved = p.indices.map { Double(new.buffer[$0]) - Double(p[$0]) }
            let err = zip(moved, expected).map { abs($0 - $1) }.max()!
            #expect(err <= 1e-3 * 1e-2, "\(optimizer) \(old.key): max deviation \(err)")
            #expect(expected.contains { $0 != 0 })
        }
        #expect(net.optimizerState?.step == 1)
    }

    @Test("cross-entropy needs at least two outputs: one output is refused for training and evaluation")
    func crossEntropyNeedsTwoOutputs() throws {
        let problem = syntheticProblem(rows: 40, inputSize: 5, classes: 2, seed: 921)
        #expect(problem.y.contains(1) && problem.y.contains(0))
        let net = try GatedNetwork(spec: makeSpec(.decoupled, 5, [6], 1, seed: 922))
        let before = GatedNetwork(copying: net)
        var options = fashionOptions(epochs: 1)
        options.loss = .crossEntropy
        #expect(throws: GatedNetError.self) { try net.train(x: problem.x, y: problem.y, options: options) }
        #expect(throws: GatedNetError.self) { try net.evaluate(x: problem.x, y: problem.y, loss: .crossEntropy) }
        #expect(net.isBitIdentical(to: before))
        // Squared loss is the one for a single output.
        options.loss = .squared
        options.learningRate = 1e-2
        options.batchSize = 8
        options.epochs = 30
        let history = try net.train(x: problem.x, y: problem.y, options: options)
        #expect(history.last!.trainAccuracy > 0.9)
        #expect(try net.evaluate(x: problem.x, y: problem.y, loss: .squared).accuracy > 0.9)
    }

    @Test("a frozen value net with soft gates trains the gates only")
    func frozenValuesTrainGatesOnly() throws {
        let problem = syntheticProblem(rows: 100, inputSize: 5, classes: 3, seed: 919)
        let net = try GatedNetwork(spec: makeSpec(.dlgn, 5, [8], 3, seed: 920))
        net.setFrozen(.value, true)
        let values = net.valueLayers.map { $0.copy() }, features = featureCopies(net)
        try net.train(x: problem.x, y: problem.y, options: fashionOptions(epochs: 2))
        for (a, b) in zip(net.valueLayers, values) { #expect(a.isBitIdentical(to: b)) }
        for (a, b) in zip(net.featureLayers, features) { #expect(!a.isBitIdentical(to: b)) }
    }
}
