import Glibc

/// Training loss (see gatednet.h for the exact targets).
public enum Loss: Int, Sendable {
    /// Softmax cross-entropy over k classes.
    case crossEntropy = 0
    /// 0.5‖y − t‖² per sample; t one-hot for k > 1, ∓1 for labels 0 / 1 when k = 1.
    case squared = 1

    /// Sum of per-sample losses and number of correct predictions over `rows` outputs; if
    /// `grad` is given, writes ∂(mean loss over `scaleRows`)/∂output into it.
    func evaluate(outputs y: UnsafePointer<Float>, labels: UnsafePointer<Int32>, rows: Int, k: Int,
                  grad: UnsafeMutablePointer<Float>?, scaleRows: Int) -> (loss: Double, correct: Int) {
        var total = 0.0
        var correct = 0
        let inv = 1 / Float(scaleRows)
        for r in 0..<rows {
            let row = y + r * k
            let label = Int(labels[r])
            if predictedClass(row, k: k) == label { correct += 1 }
            switch self {
            case .crossEntropy:
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
                    let t: Float = k == 1 ? (label == 1 ? 1 : -1) : (c == label ? 1 : 0)
                    let d = row[c] - t
                    s += d * d
                    if let g = grad { g[r * k + c] = d * inv }
                }
                total += Double(0.5 * s)
            }
        }
        return (total, correct)
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
