import CGatedNetABI
import GatedNet
import Glibc

@_cdecl("gn_train_options_init")
public func gn_train_options_init(_ opts: UnsafeMutablePointer<gn_train_options>?) -> gn_status {
    guarded("gn_train_options_init") {
        let o = try required(opts, "opts")
        let d = TrainOptions()
        var c = gn_train_options()
        c.struct_size = MemoryLayout<gn_train_options>.size
        c.optimizer = gn_optimizer(UInt32(d.optimizer.rawValue))
        c.loss = gn_loss(UInt32(d.loss.rawValue))
        c.learning_rate = d.learningRate
        c.momentum = d.momentum
        c.weight_decay = d.weightDecay
        c.adam_beta1 = d.adamBeta1
        c.adam_beta2 = d.adamBeta2
        c.adam_epsilon = d.adamEpsilon
        c.batch_size = Int64(d.batchSize)
        c.epochs = Int64(d.epochs)
        c.shuffle_seed = d.shuffleSeed
        c.train_feature_head = d.trainFeatureHead ? 1 : 0
        c.progress = nil
        c.progress_user = nil
        c.interrupt = nil
        o.pointee = c
    }
}

func lossKind(_ l: gn_loss) throws -> Loss {
    guard let v = Loss(rawValue: Int(l.rawValue)) else { throw GatedNetError.invalidArgument("loss: got \(l.rawValue), need 0 or 1") }
    return v
}

func labels(_ p: UnsafePointer<Int32>?, _ name: String) throws -> UnsafePointer<Int32> {
    try required(p, name)
}

/// The engine's options from a caller's gn_train_options (validated field by field), and the
/// C struct itself (for its callbacks).
func trainOptions(_ opts: UnsafePointer<gn_train_options>?) throws -> (TrainOptions, gn_train_options) {
    let c = try required(opts, "opts").pointee
    try checkStructSize(c.struct_size, expected: MemoryLayout<gn_train_options>.size, "opts")
    var o = TrainOptions()
    guard let opt = OptimizerKind(rawValue: Int(c.optimizer.rawValue)) else {
        throw GatedNetError.invalidArgument("opts->optimizer: got \(c.optimizer.rawValue), need 0 (SGD) or 1 (Adam)")
    }
    o.optimizer = opt
    o.loss = try lossKind(c.loss)
    o.learningRate = c.learning_rate
    o.momentum = c.momentum
    o.weightDecay = c.weight_decay
    o.adamBeta1 = c.adam_beta1
    o.adamBeta2 = c.adam_beta2
    o.adamEpsilon = c.adam_epsilon
    o.batchSize = try count(c.batch_size, "opts->batch_size")
    o.epochs = try count(c.epochs, "opts->epochs")
    o.shuffleSeed = c.shuffle_seed
    o.trainFeatureHead = c.train_feature_head != 0
    return (o, c)
}

/// A caller's target array as passed: class labels (n int32), or real values (n × outputSize
/// floats, regression), named as in the header.
enum TargetArgument {
    case labels(UnsafePointer<Int32>?, name: String)
    case values(UnsafePointer<Float>?, outputSize: Int, name: String)

    var isNull: Bool {
        switch self {
        case .labels(let p, _): return p == nil
        case .values(let p, _, _): return p == nil
        }
    }

    /// The engine's view of `rows` rows (counted by the argument `rowsName`): non-null; values
    /// checked finite.
    func targets(rows: Int, rowsName: String = "n") throws -> Targets {
        switch self {
        case .labels(let p, let name): return .labels(try required(p, name))
        case .values(let p, let k, let name):
            return .values(try inputMatrix(p, rows: Int64(rows), cols: k, name, rowsName: rowsName).0)
        }
    }
}

/// Regression exports take the squared loss only.
func requireSquaredLoss(_ loss: Loss, _ name: String) throws {
    guard loss == .squared else {
        throw GatedNetError.invalidArgument("\(name): got \(loss.rawValue) (GN_LOSS_CROSS_ENTROPY); real-valued targets need GN_LOSS_SQUARED (1)")
    }
}

/// Everything a training export does around the engine call: options, data views, the history
/// buffer and the C callbacks. `train` runs the engine's training of one network type.
func runTraining(inputSize: Int, _ x: UnsafePointer<Float>?, _ y: TargetArgument, _ n: Int64,
                 _ xTest: UnsafePointer<Float>?, _ yTest: TargetArgument, _ nTest: Int64,
                 _ opts: UnsafePointer<gn_train_options>?, _ history: UnsafeMutablePointer<gn_epoch_metrics>?,
                 _ historyCapacity: Int64, _ epochsRun: UnsafeMutablePointer<Int64>?,
                 train: (LabelledData, LabelledData?, TrainOptions, (() -> Bool)?, (EpochMetrics) -> Bool) throws -> Void) throws {
    let (o, c) = try trainOptions(opts)
    if case .values = y { try requireSquaredLoss(o.loss, "opts->loss") }
    guard historyCapacity >= 0 else { throw GatedNetError.invalidArgument("history_capacity: got \(historyCapacity), need >= 0") }
    if historyCapacity > 0 { _ = try required(history, "history") }
    let (xs, rows) = try inputMatrix(x, rows: n, cols: inputSize, "x", rowsName: "n")
    let data = LabelledData(x: xs, targets: try y.targets(rows: rows), rows: rows)
    var test: LabelledData? = nil
    if nTest != 0 || xTest != nil || !yTest.isNull {
        let (xt, rt) = try inputMatrix(xTest, rows: nTest, cols: inputSize, "x_test", rowsName: "n_test")
        test = LabelledData(x: xt, targets: try yTest.targets(rows: rt, rowsName: "n_test"), rows: rt)
    }
    var run: Int64 = 0
    let callback = c.progress, user = c.progress_user
    let interrupt: (() -> Bool)? = c.interrupt.map { poll in { poll(user) != 0 } }
    defer { epochsRun?.pointee = run }
    try train(data, test, o, interrupt) { m in
        var cm = gn_epoch_metrics(epoch: Int64(m.epoch), epoch_in_call: Int64(m.epochInCall),
                                  epochs_in_call: Int64(m.epochsInCall), train_loss: m.trainLoss,
                                  train_accuracy: m.trainAccuracy, test_loss: m.testLoss,
                                  test_accuracy: m.testAccuracy, seconds: m.seconds)
        if run < historyCapacity, let h = history { h[Int(run)] = cm }
        run += 1
        epochsRun?.pointee = run
        guard let cb = callback else { return true }
        return cb(&cm, user) == 0
    }
}

@_cdecl("gn_train")
public func gn_train(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ y: UnsafePointer<Int32>?, _ n: Int64,
                     _ xTest: UnsafePointer<Float>?, _ yTest: UnsafePointer<Int32>?, _ nTest: Int64,
                     _ opts: UnsafePointer<gn_train_options>?, _ history: UnsafeMutablePointer<gn_epoch_metrics>?,
                     _ historyCapacity: Int64, _ epochsRun: UnsafeMutablePointer<Int64>?) -> gn_status {
    guarded("gn_train") {
        let network = try Handles.network(net, "net")
        try runTraining(inputSize: network.inputSize, x, .labels(y, name: "y"), n, xTest, .labels(yTest, name: "y_test"),
                        nTest, opts, history, historyCapacity, epochsRun) { data, test, options, interrupt, progress in
            try network.train(data, test: test, options: options, interrupt: interrupt, progress: progress)
        }
    }
}

@_cdecl("gn_train_regression")
public func gn_train_regression(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ y: UnsafePointer<Float>?, _ n: Int64,
                                _ xTest: UnsafePointer<Float>?, _ yTest: UnsafePointer<Float>?, _ nTest: Int64,
                                _ opts: UnsafePointer<gn_train_options>?, _ history: UnsafeMutablePointer<gn_epoch_metrics>?,
                                _ historyCapacity: Int64, _ epochsRun: UnsafeMutablePointer<Int64>?) -> gn_status {
    guarded("gn_train_regression") {
        let network = try Handles.network(net, "net")
        let k = network.outputSize
        try runTraining(inputSize: network.inputSize, x, .values(y, outputSize: k, name: "y"), n,
                        xTest, .values(yTest, outputSize: k, name: "y_test"), nTest, opts, history, historyCapacity,
                        epochsRun) { data, test, options, interrupt, progress in
            try network.train(data, test: test, options: options, interrupt: interrupt, progress: progress)
        }
    }
}

@_cdecl("gn_predict")
public func gn_predict(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64,
                      _ out: UnsafeMutablePointer<Float>?, _ cap: Int64) -> gn_status {
    guarded("gn_predict") {
        let network = try Handles.network(net, "net")
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let o = try required(out, "out")
        try capacity(cap, needs: try checkedCount(rows, network.outputSize, what: "out"), "capacity")
        try network.predict(xs, rows: rows, into: o)
        try finiteResult(o, rows: rows, cols: network.outputSize, "out")
    }
}

@_cdecl("gn_predict_feature_head")
public func gn_predict_feature_head(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64,
                                    _ out: UnsafeMutablePointer<Float>?, _ cap: Int64) -> gn_status {
    guarded("gn_predict_feature_head") {
        let network = try Handles.network(net, "net")
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let o = try required(out, "out")
        try capacity(cap, needs: try checkedCount(rows, network.outputSize, what: "out"), "capacity")
        try network.predict(xs, rows: rows, into: o, featureHead: true)
        try finiteResult(o, rows: rows, cols: network.outputSize, "out")
    }
}

@_cdecl("gn_predict_classes")
public func gn_predict_classes(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ n: Int64,
                              _ out: UnsafeMutablePointer<Int32>?, _ cap: Int64) -> gn_status {
    guarded("gn_predict_classes") {
        let network = try Handles.network(net, "net")
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let o = try required(out, "out")
        try capacity(cap, needs: rows, "capacity")
        try network.predictClasses(xs, rows: rows, into: o)
    }
}

@_cdecl("gn_evaluate")
public func gn_evaluate(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ y: UnsafePointer<Int32>?, _ n: Int64,
                       _ l: gn_loss, _ meanLoss: UnsafeMutablePointer<Double>?, _ accuracy: UnsafeMutablePointer<Double>?) -> gn_status {
    guarded("gn_evaluate") {
        let network = try Handles.network(net, "net")
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let r = try network.evaluate(LabelledData(x: xs, y: try labels(y, "y"), rows: rows), loss: try lossKind(l))
        try finiteResult(r.loss, "mean_loss")
        meanLoss?.pointee = r.loss
        accuracy?.pointee = r.accuracy
    }
}

@_cdecl("gn_evaluate_regression")
public func gn_evaluate_regression(_ net: OpaquePointer?, _ x: UnsafePointer<Float>?, _ y: UnsafePointer<Float>?, _ n: Int64,
                                   _ meanLoss: UnsafeMutablePointer<Double>?) -> gn_status {
    guarded("gn_evaluate_regression") {
        let network = try Handles.network(net, "net")
        let out = try required(meanLoss, "mean_loss")
        let (xs, rows) = try inputMatrix(x, rows: n, cols: network.inputSize, "x", rowsName: "n")
        let targets = try TargetArgument.values(y, outputSize: network.outputSize, name: "y").targets(rows: rows)
        let r = try network.evaluate(LabelledData(x: xs, targets: targets, rows: rows), loss: .squared)
        try finiteResult(r.loss, "mean_loss")
        out.pointee = r.loss
    }
}
