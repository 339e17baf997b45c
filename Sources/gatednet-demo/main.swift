// The main job: train a ReLU network on Fashion-MNIST, then the DGNs of the papers that reuse
// or replace its gates (fixed learnt, fixed random II/DI, decoupled), print their test
// accuracies, and summarise the neural path kernel each one's gates define on a test subset.
import GatedNet
import Glibc

struct DemoOptions {
    var dataDir = "/usr/share/datasets/fashion-mnist"
    var trainRows = 60_000
    var testRows = 10_000
    var epochs = 5
    var width = 128
    var depth = 5          // hidden layers
    var batch = 32
    var learningRate: Float = 3e-4
    var kernelRows = 1_000
    var seed: UInt64 = 1

    static let usage = """
    usage: gatednet-demo [--data DIR] [--train N] [--test N] [--epochs E] [--width W] [--depth L]
                         [--batch B] [--lr LR] [--kernel-rows N] [--seed S]
    Defaults: Fashion-MNIST from /usr/share/datasets/fashion-mnist, all 60000 training and 10000
    test images, 5 epochs, 5 hidden layers of width 128, Adam lr 3e-4, batch 32, NPK on 1000 test images.
    """

    init(arguments: [String]) throws {
        var i = 0
        func value() throws -> String {
            i += 1
            guard i < arguments.count else { throw GatedNetError.invalidArgument("\(arguments[i - 1]) needs a value") }
            return arguments[i]
        }
        func int(_ s: String) throws -> Int {
            guard let v = Int(s), v >= 1 else { throw GatedNetError.invalidArgument("expected a positive integer, got \(s)") }
            return v
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--data": dataDir = try value()
            case "--train": trainRows = try int(try value())
            case "--test": testRows = try int(try value())
            case "--epochs": epochs = try int(try value())
            case "--width": width = try int(try value())
            case "--depth": depth = try int(try value())
            case "--batch": batch = try int(try value())
            case "--kernel-rows": kernelRows = try int(try value())
            case "--lr":
                guard let v = Float(try value()), v > 0 else { throw GatedNetError.invalidArgument("--lr needs a positive number") }
                learningRate = v
            case "--seed":
                guard let v = UInt64(try value()) else { throw GatedNetError.invalidArgument("--seed needs a non-negative integer") }
                seed = v
            case "-h", "--help": print(DemoOptions.usage); exit(0)
            default: throw GatedNetError.invalidArgument("unknown argument \(arguments[i])\n\(DemoOptions.usage)")
            }
            i += 1
        }
    }
}

/// Images (scaled to [0, 1]) and labels of one split, truncated to `rows`.
func loadSplit(_ dir: String, _ prefix: String, rows: Int) throws -> (x: [Float], y: [Int32], rows: Int, d: Int) {
    let images = try IDXArray(path: "\(dir)/\(prefix)-images-idx3-ubyte.gz")
    let labels = try IDXArray(path: "\(dir)/\(prefix)-labels-idx1-ubyte.gz")
    let d = images.dims.dropFirst().reduce(1, *)
    let n = min(rows, images.dims[0], labels.dims[0])
    return (Array(images.floats(scale: 1 / 255).prefix(n * d)), Array(try labels.int32s().prefix(n)), n, d)
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
func fmt(_ v: Double, _ digits: Int = 4) -> String {
    guard v.isFinite else { return "\(v)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let units = Int((abs(v) * scale).rounded())
    let whole = units / Int(scale), frac = String(units % Int(scale))
    let sign = v < 0 && units != 0 ? "-" : ""
    return digits == 0 ? "\(sign)\(whole)" : "\(sign)\(whole)." + String(repeating: "0", count: digits - frac.count) + frac
}

/// NPK summary of a network's gates on test images: mean of the normalised kernel
/// H(x,x')/sqrt(H(x,x)H(x',x')) within a class and across classes, and their ratio.
func npkSummary(_ net: GatedNetwork, x: [Float], y: [Int32], rows: Int) throws -> (same: Double, other: Double) {
    var h = [Float](repeating: 0, count: rows * rows)
    try x.withUnsafeBufferPointer { xp in
        try h.withUnsafeMutableBufferPointer { hp in
            try net.kernel(.npkNormalized, xa: xp.baseAddress!, na: rows, xb: xp.baseAddress!, nb: rows, symmetric: true,
                           out: KernelOutput(pointer: hp.baseAddress!, rows: rows, cols: rows, ld: rows))
        }
    }
    var same = 0.0, other = 0.0, nSame = 0, nOther = 0
    for i in 0..<rows {
        for j in (i + 1)..<max(rows, i + 1) where j < rows {
            let c = Double(h[i * rows + j]) / (Double(h[i * rows + i]) * Double(h[j * rows + j])).squareRoot()
            if y[i] == y[j] { same += c; nSame += 1 } else { other += c; nOther += 1 }
        }
    }
    return (same / Double(max(nSame, 1)), other / Double(max(nOther, 1)))
}

func run() throws {
    let o = try DemoOptions(arguments: Array(CommandLine.arguments.dropFirst()))
    print("gatednet demo: Fashion-MNIST from \(o.dataDir)")
    print("BLAS: \(BLASInfo.description)")
    let train = try loadSplit(o.dataDir, "train", rows: o.trainRows)
    let test = try loadSplit(o.dataDir, "t10k", rows: o.testRows)
    let widths = [Int](repeating: o.width, count: o.depth)
    print("data: \(train.rows) training and \(test.rows) test images of \(train.d) pixels; network \(train.d)-\(widths.map(String.init).joined(separator: "-"))-10, \(o.epochs) epochs each, Adam lr \(o.learningRate), batch \(o.batch)\n")

    var options = TrainOptions()
    options.epochs = o.epochs
    options.batchSize = o.batch
    options.learningRate = o.learningRate
    options.shuffleSeed = o.seed

    func trainAndReport(_ name: String, _ net: GatedNetwork) throws -> Double {
        print("[\(name)] \(net.summary)")
        var last = 0.0
        _ = try train.x.withUnsafeBufferPointer { xp in
            try train.y.withUnsafeBufferPointer { yp in
                try test.x.withUnsafeBufferPointer { tx in
                    try test.y.withUnsafeBufferPointer { ty in
                        try net.train(LabelledData(x: xp.baseAddress!, y: yp.baseAddress!, rows: train.rows),
                                      test: LabelledData(x: tx.baseAddress!, y: ty.baseAddress!, rows: test.rows),
                                      options: options, progress: { m in
                            print("  [\(name)] epoch \(m.epochInCall)/\(m.epochsInCall)  loss \(fmt(m.trainLoss))  train acc \(fmt(m.trainAccuracy))  test acc \(fmt(m.testAccuracy))  \(fmt(m.seconds, 1)) s")
                            fflush(stdout)
                            last = m.testAccuracy
                            return true
                        })
                    }
                }
            }
        }
        return last
    }

    var results: [(String, GatedNetwork, Double)] = []
    let relu = try GatedNetwork(spec: NetworkSpec(regime: .relu, inputSize: train.d, hiddenWidths: widths, outputSize: 10, seed: o.seed))
    results.append(("relu", relu, try trainAndReport("relu", relu)))
    let dgns: [(String, Regime)] = [("fixed_learnt", .fixedLearnt), ("fixed_random_ii", .fixedRandomII),
                                    ("fixed_random_di", .fixedRandomDI), ("decoupled", .decoupled)]
    for (i, (name, regime)) in dgns.enumerated() {
        let spec = NetworkSpec(regime: regime, inputSize: train.d, hiddenWidths: widths, outputSize: 10, seed: o.seed + UInt64(i) + 1)
        let net = try GatedNetwork(spec: spec, gateSource: regime == .fixedLearnt ? relu : nil)
        results.append((name, net, try trainAndReport(name, net)))
    }

    let k = min(o.kernelRows, test.rows)
    print("\nTest accuracy after \(o.epochs) epochs, and the normalised NPK of \(k) test images")
    print("(mean cosine similarity of path features within a class / across classes):\n")
    print("| network          | test accuracy | NPK same class | NPK other class | ratio |")
    print("|------------------|---------------|----------------|-----------------|-------|")
    var ratios: [String: Double] = [:]
    var accuracy: [String: Double] = [:]
    for (name, net, acc) in results {
        let s = try npkSummary(net, x: Array(test.x.prefix(k * test.d)), y: Array(test.y.prefix(k)), rows: k)
        ratios[name] = s.same / s.other
        accuracy[name] = acc
        print("| \(pad(name, 16)) | \(pad(fmt(acc), 13)) | \(pad(fmt(s.same), 14)) | \(pad(fmt(s.other), 15)) | \(pad(fmt(s.same / s.other, 2), 5)) |")
    }
    let learnt = ratios["fixed_learnt"] ?? 0, random = max(ratios["fixed_random_ii"] ?? 0, ratios["fixed_random_di"] ?? 0)
    print("\nSummary: learnt gates \(learnt > random ? "separate" : "do NOT separate") classes in the NPK more than random gates (ratio \(fmt(learnt, 2)) vs \(fmt(random, 2)));")
    let gap = (accuracy["fixed_learnt"] ?? 0) - (accuracy["fixed_random_ii"] ?? 0)
    print("the value network trained on learnt gates is \(fmt(abs(gap) * 100, 1)) points \(gap >= 0 ? "more" : "less") accurate than on random gates (fixed_learnt vs fixed_random_ii).")
}

do {
    try run()
} catch {
    fputs("gatednet-demo: \(error)\n", stderr)
    exit(1)
}
