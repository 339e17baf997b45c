import Glibc

/// Training loss (see gatednet.h for the exact targets).
public enum Loss: Int, Sendable {
    /// Softmax cross-entropy over k classes.
    case crossEntropy = 0
    /// 0.5‖y − t‖² per sample; for labels t is one-hot when k > 1 and ∓1 for labels 0 / 1 when
    /// k = 1; for real-valued targets t is the row of targets itself.
    case squared = 1

    /// Sum of per-sample losses and number of correct predictions over `rows` outputs (0 for
    /// real-valued targets, which have no classes); if `grad` is given, writes
    /// ∂(mean loss over `scaleRows`)/∂output into it. Real-valued targets take the squared loss
    /// only (`checkLoss`); with cross-entropy they give a NaN loss.
    func evaluate(outputs y: UnsafePointer<Float>, targets: Targets, rows: Int, k: Int,
                  grad: UnsafeMutablePointer<Float>?, scaleRows: Int) -> (loss: Double, correct: Int) {
        var total = 0.0
        var correct = 0
        let inv = 1 / Float(scaleRows)
        for r in 0..<rows {
            let row = y + r * k
            var label = -1
            if case .labels(let labels) = targets {
                label = Int(labels[r])
                if predictedClass(row, k: k) == label { correct += 1 }
            }
            switch self {
            case .crossEntropy:
                guard label >= 0 else { return (.nan, 0) }
                var m = row[0]
                for c in 1..<max(k, 1) where row[c] > m { m = row[c] }
                var sum: Float = 0
                for c in 0..<k { sum += expf(row[c] - m) }
                let logSum = logf(sum) + m
                total += Double(logSum - row[label])
                if let g = grad {
                    let gr = g + r * k
                    for c in 0..<k { gr[c] = expf(row[c] - logSum) * inv }
                    gr[label] -= inv
                }
            case .squared:
                var s: Float = 0
                for c in 0..<k {
                    let t: Float
                    switch targets {
                    case .labels: t = k == 1 ? (label == 1 ? 1 : -1) : (c == label ? 1 : 0)
                    case .values(let values): t = values[r * k + c]
                    }
                    let d = row[c] - t
                    s += d * d
                    if let g = grad { g[r * k + c] = d * inv }
                }
                total += Double(0.5 * s)
            }
        }
        return (total, correct)
    }

    /// `evaluate` against class labels.
    func evaluate(outputs y: UnsafePointer<Float>, labels: UnsafePointer<Int32>, rows: Int, k: Int,
                  grad: UnsafeMutablePointer<Float>?, scaleRows: Int) -> (loss: Double, correct: Int) {
        evaluate(outputs: y, targets: .labels(labels), rows: rows, k: k, grad: grad, scaleRows: scaleRows)
    }
}

/// What a network's outputs are compared with, row by row, viewed in place.
public enum Targets {
    /// One class label per row in 0 ..< k (k = 1: 0 or 1). Either loss; accuracy is defined.
    case labels(UnsafePointer<Int32>)
    /// k real values per row, row-major (regression). The squared loss only; accuracy has no
    /// meaning and is reported as NaN.
    case values(UnsafePointer<Float>)

    /// The targets from row `first` on, for k outputs per row.
    func fromRow(_ first: Int, k: Int) -> Targets {
        switch self {
        case .labels(let p): return .labels(p + first)
        case .values(let p): return .values(p + first * k)
        }
    }

    var areLabels: Bool {
        if case .labels = self { return true }
        return false
    }
}

/// Arg-max class of one output row (k = 1: class 1 iff the output is > 0).
@inline(__always)
func predictedClass(_ row: UnsafePointer<Float>, k: Int) -> Int {
    if k == 1 { return row[0] > 0 ? 1 : 0 }
    var best = 0
    for c in 1..<k where row[c] > row[best] { best = c }
    return best
}
