@testable import GatedNet
import Foundation
import Testing

/// Targets as arrays: class labels, or rows × outputSize real values.
enum TargetArray {
    case labels([Int32])
    case values([Float])
}

/// `body` with a view of x and its targets (rows rows).
func withData<R>(_ x: [Float], _ t: TargetArray, rows: Int, _ body: (LabelledData) throws -> R) rethrows -> R {
    try x.withUnsafeBufferPointer { xp in
        switch t {
        case .labels(let y):
            return try y.withUnsafeBufferPointer { try body(LabelledData(x: xp.baseAddress!, y: $0.baseAddress!, rows: rows)) }
        case .values(let v):
            return try v.withUnsafeBufferPointer { try body(LabelledData(x: xp.baseAddress!, values: $0.baseAddress!, rows: rows)) }
        }
    }
}

/// The real-valued targets class labels stand for under the squared loss: ∓1 for k = 1, one-hot otherwise.
func squaredLossTargets(_ labels: [Int32], k: Int) -> [Float] {
    labels.flatMap { label -> [Float] in
        k == 1 ? [label == 1 ? 1 : -1] : (0..<k).map { $0 == Int(label) ? 1 : 0 }
    }
}

extension GatedNetwork {
    @discardableResult
    func train(x: [Float], _ t: TargetArray, rows: Int, test: (x: [Float], t: TargetArray, rows: Int)? = nil,
               options: TrainOptions) throws -> [EpochMetrics] {
        try withData(x, t, rows: rows) { data in
            guard let test else { return try train(data, options: options) }
            return try withData(test.x, test.t, rows: test.rows) { try train(data, test: $0, options: options) }
        }
    }

    func evaluate(x: [Float], _ t: TargetArray, rows: Int, loss: Loss = .squared) throws -> (loss: Double, accuracy: Double) {
        try withData(x, t, rows: rows) { try evaluate($0, loss: loss) }
    }
}

extension ConvNetwork {
    @discardableResult
    func train(x: [Float], _ t: TargetArray, rows: Int, options: TrainOptions) throws -> [EpochMetrics] {
        try withData(x, t, rows: rows) { try train($0, options: options) }
    }
}

@Suite("Regression (real-valued targets)")
struct RegressionTests {
    @Test("one SGD step on real-valued targets is the hand-computed update of a 2-3-2 ReLU net")
    func sgdStepByHand() throws {
        let net = try GatedNetwork(spec: makeSpec(.relu, 2, [3], 2, seed: 41) { $0.bias = true })
        let rows = 5
        let x = seededUniform(rows * 2, seed: 42), t = seededUniform(rows * 2, seed: 43, scale: 2)
        let ref = ReferenceNet(net)
        let key = { (layer: Int, bias: Bool) in ParameterKey(part: .feature, layer: layer, isBias: bias) }
        let w1 = ref.tensors[key(0, false)]!, b1 = ref.tensors[key(0, true)]!
        let w2 = ref.tensors[key(1, false)]!, b2 = ref.tensors[key(1, true)]!
        // Forward and backward by hand (double): loss 0.5‖y − t‖² averaged over rows.
        var gw1 = [Double](repeating: 0, count: 6), gb1 = [Double](repeating: 0, count: 3)
        var gw2 = [Double](repeating: 0, count: 6), gb2 = [Double](repeating: 0, count: 2)
        var loss = 0.0, active = 0
        for r in 0..<rows {
            let xr = [Double(x[2 * r]), Double(x[2 * r + 1])]
            let h = (0..<3).map { j in b1[j] + w1[2 * j] * xr[0] + w1[2 * j + 1] * xr[1] }
            let z = h.map { max($0, 0) }
            active += h.filter { $0 > 0 }.count
            let y = (0..<2).map { o in b2[o] + (0..<3).reduce(0.0) { $0 + w2[3 * o + $1] * z[$1] } }
            let d = (0..<2).map { o in (y[o] - Double(t[2 * r + o])) / Double(rows) }
            loss += (0..<2).reduce(0.0) { $0 + 0.5 * pow(y[$1] - Double(t[2 * r + $1]), 2) }
            for o in 0..<2 {
                gb2[o] += d[o]
                for j in 0..<3 { gw2[3 * o + j] += d[o] * z[j] }
            }
            for j in 0..<3 where h[j] > 0 {
                let gh = w2[j] * d[0] + w2[3 + j] * d[1]
                gb1[j] += gh
                for i in 0..<2 { gw1[2 * j + i] += gh * xr[i] }
            }
        }
        // Not vacuous: the ReLU mask has both states over the batch.
        #expect(active > 0 && active < rows * 3, "active units \(active) of \(rows * 3)")
        var options = TrainOptions()
        options.optimizer = .sgd
        options.momentum = 0
        options.learningRate = 0.1
        options.loss = .squared
        options.batchSize = rows
        let history = try net.train(x: x, .values(t), rows: rows, options: options)
        #expect(abs(history[0].trainLoss - loss / Double(rows)) < 1e-5 * max(1, loss))
        #expect(history[0].trainAccuracy.isNaN)
        let lr = Double(options.learningRate)
        for (k, before, grad) in [(key(0, false), w1, gw1), (key(0, true), b1, gb1), (key(1, false), w2, gw2), (key(1, true), b2, gb2)] {
            let after = net.parameterTensors.first { $0.key == k }!.buffer.array.map(Double.init)
            let expected = zip(before, grad).map { $0 - lr * $1 }
            #expect(relativeError(after, expected) < 1e-5, "\(k): \(after) vs \(expected)")
            #expect(relativeError(after, before) > 1e-4, "\(k) moved")
        }
    }

    @Test("labels under the squared loss train to the same bits as their real-valued targets (∓1 for k = 1, one-hot)",
          arguments: [1, 4])
    func labelsAreTargets(k: Int) throws {
        let problem = syntheticProblem(rows: 300, inputSize: 6, classes: k == 1 ? 2 : k, seed: 950)
        let test = syntheticProblem(rows: 100, inputSize: 6, classes: k == 1 ? 2 : k, seed: 951)
        var options = fashionOptions(epochs: 2)
        options.loss = .squared
        options.batchSize = 64  // split over two cores
        let spec = makeSpec(.decoupled, 6, [32, 32], k, seed: 952) { $0.bias = true }
        let a = try GatedNetwork(spec: spec), b = try GatedNetwork(spec: spec)
        let ha = try a.train(x: problem.x, .labels(problem.y), rows: 300, test: (test.x, .labels(test.y), 100), options: options)
        let hb = try b.train(x: problem.x, .values(squaredLossTargets(problem.y, k: k)), rows: 300,
                             test: (test.x, .values(squaredLossTargets(test.y, k: k)), 100), options: options)
        #expect(a.isBitIdentical(to: b))
        #expect(ha.map(\.trainLoss) == hb.map(\.trainLoss))
        #expect(ha.map(\.testLoss) == hb.map(\.testLoss))
        #expect(ha.allSatisfy { $0.trainAccuracy.isFinite && $0.testAccuracy.isFinite })
        #expect(hb.allSatisfy { $0.trainAccuracy.isNaN && $0.testAccuracy.isNaN })
        let ea = try a.evaluate(x: test.x, .labels(test.y), rows: 100)
        let eb = try b.evaluate(x: test.x, .values(squaredLossTargets(test.y, k: k)), rows: 100)
        #expect(ea.loss == eb.loss && ea.accuracy.isFinite && eb.accuracy.isNaN)
        #expect(ha.last!.trainLoss < ha.first!.trainLoss)
    }

    @Test("regression trains and evaluates to the same bits with the second core or without it")
    func sameBitsOnOneOrTwoCores() throws {
        let rows = 1000, k = 3
        let x = seededUniform(rows * 8, seed: 960), t = seededUniform(rows * k, seed: 961)
        var options = fashionOptions(epochs: 2)
        options.loss = .squared
        options.batchSize = 64
        var nets: [GatedNetwork] = []
        var losses: [[Double]] = []
        for enabled in [true, false] {
            parallelWorkerEnabled = enabled
            defer { parallelWorkerEnabled = true }
            let net = try GatedNetwork(spec: makeSpec(.decoupled, 8, [48, 48], k, seed: 962) { $0.bias = true })
            let h = try net.train(x: x, .values(t), rows: rows, test: (x, .values(t), rows), options: options)
            losses.append(h.flatMap { [$0.trainLoss, $0.testLoss] } + [try net.evaluate(x: x, .values(t), rows: rows).loss])
            nets.append(net)
        }
        #expect(nets[0].isBitIdentical(to: nets[1]))
        #expect(losses[0] == losses[1])
    }

    @Test("a ReLU net fits sin on [-π, π] (test loss far below the constant predictor's 0.25)")
    func fitsSmoothFunction() throws {
        func sample(_ n: Int, seed: UInt64) -> (x: [Float], t: [Float]) {
            let x = seededUniform(n, seed: seed, scale: Double.pi)
            return (x, x.map { sinf($0) })
        }
        let train = sample(256, seed: 970), test = sample(200, seed: 971)
        let net = try GatedNetwork(spec: makeSpec(.relu, 1, [32, 32], 1, seed: 972) { $0.bias = true })
        var options = TrainOptions()
        options.loss = .squared
        options.learningRate = 1e-2
        options.epochs = 150
        let before = try net.evaluate(x: test.x, .values(test.t), rows: 200).loss
        let history = try net.train(x: train.x, .values(train.t), rows: 256, test: (test.x, .values(test.t), 200), options: options)
        let after = history.last!.testLoss
        #expect(after == (try net.evaluate(x: test.x, .values(test.t), rows: 200).loss))
        // The best constant predictor scores 0.5 · mean sin² = 0.25.
        #expect(after < 0.005, "test loss \(before) -> \(after)")
    }

    @Test("cross-entropy and non-finite targets are refused; the network is left untouched")
    func refusals() throws {
        let net = try GatedNetwork(spec: makeSpec(.relu, 2, [4], 3, seed: 980))
        let x = seededUniform(4 * 2, seed: 981)
        var t = seededUniform(4 * 3, seed: 982)
        var options = TrainOptions()
        options.loss = .crossEntropy
        #expect(throws: GatedNetError.invalidArgument("loss: real-valued targets need the squared loss, got cross-entropy (which takes class labels)")) {
            try net.train(x: x, .values(t), rows: 4, options: options)
        }
        #expect(throws: GatedNetError.self) { try net.evaluate(x: x, .values(t), rows: 4, loss: .crossEntropy) }
        options.loss = .squared
        t[7] = .nan
        #expect(throws: GatedNetError.notFinite("y: contains NaN or Inf")) { try net.train(x: x, .values(t), rows: 4, options: options) }
        #expect(throws: GatedNetError.notFinite("y_test: contains NaN or Inf")) {
            try net.train(x: x, .values(seededUniform(12, seed: 1)), rows: 4, test: (x, .values(t), 4), options: options)
        }
        #expect(net.epochsTrained == 0)
        let conv = try ConvNetwork(spec: convSpec(.decoupled, 1, 4, 4, [.conv(2), .globalAveragePool, .dense(1)], seed: 1))
        #expect(throws: GatedNetError.notFinite("y: contains NaN or Inf")) {
            try conv.train(x: convUniform(2 * 16, seed: 2), .values([1, .infinity]), rows: 2, options: options)
        }
    }

    @Test("conv nets: ∓1 labels and ∓1 targets give the same bits; regression lowers the loss")
    func convRegression() throws {
        let rows = 40
        let x = convUniform(rows * 36, seed: 990)
        // Target: mean of the image's left half minus its right half (learnable by the GAP head).
        let t: [Float] = (0..<rows).map { r in
            var s: Float = 0
            for p in 0..<36 { s += (p % 6 < 3 ? 1 : -1) * x[r * 36 + p] }
            return s / 6
        }
        let labels = t.map { Int32($0 > 0 ? 1 : 0) }
        let layers: [ConvLayerSpec] = [.conv(4, kernel: 3), .conv(4, kernel: 3), .globalAveragePool, .dense(1)]
        var options = TrainOptions()
        options.loss = .squared
        options.learningRate = 1e-2
        options.batchSize = 8
        options.epochs = 3
        let spec = convSpec(.decoupled, 1, 6, 6, layers, seed: 991)
        let a = try ConvNetwork(spec: spec), b = try ConvNetwork(spec: spec)
        let ha = try a.train(x: x, .labels(labels), rows: rows, options: options)
        let hb = try b.train(x: x, .values(squaredLossTargets(labels, k: 1)), rows: rows, options: options)
        for (p, q) in zip(a.parameters, b.parameters) { #expect(p.buffer.isBitIdentical(to: q.buffer), "\(p.name)") }
        #expect(ha.map(\.trainLoss) == hb.map(\.trainLoss) && hb.allSatisfy { $0.trainAccuracy.isNaN })
        let c = try ConvNetwork(spec: spec)
        options.epochs = 30
        let hc = try c.train(x: x, .values(t), rows: rows, options: options)
        let e = try withData(x, .values(t), rows: rows) { try c.evaluate($0, loss: .squared) }
        #expect(e.accuracy.isNaN && e.loss.isFinite)
        #expect(hc.last!.trainLoss < 0.5 * hc.first!.trainLoss, "\(hc.first!.trainLoss) -> \(hc.last!.trainLoss)")
    }
}
