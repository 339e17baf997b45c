import CKernels

/// Optimizer choice and hyper-parameters.
public enum OptimizerKind: Int, Sendable { case sgd = 0, adam = 1 }

/// Moments kept between steps, per parameter tensor. Persisted with the network on request.
final class OptimizerState {
    let kind: OptimizerKind
    var step: Int = 0
    /// SGD: velocity in `first`; Adam: first and second moments.
    var first: [ParameterKey: FloatBuffer] = [:]
    var second: [ParameterKey: FloatBuffer] = [:]

    init(kind: OptimizerKind) { self.kind = kind }

    func copy() -> OptimizerState {
        let c = OptimizerState(kind: kind)
        c.step = step
        c.first = first.mapValues { $0.copy() }
        c.second = second.mapValues { $0.copy() }
        return c
    }

    /// Forget the moments of one part (after unfreezing or overwriting its weights).
    func reset(part: Part, tied: Bool) {
        first = first.filter { !(tied || $0.key.part == part) }
        second = second.filter { !(tied || $0.key.part == part) }
    }

    /// Create the moments of these tensors (zero) if missing, so that `update` only reads the
    /// tables and can run on two threads at once.
    func prepareMoments(for tensors: [(key: ParameterKey, count: Int)], options: TrainOptions) {
        for t in tensors {
            if kind == .adam || options.momentum != 0 { _ = moment(&first, t.key, t.count) }
            if kind == .adam { _ = moment(&second, t.key, t.count) }
        }
    }

    /// One update of the elements `range` of `param` by its gradient `grad` (after
    /// `prepareMoments`).
    func update(key: ParameterKey, param: FloatBuffer, grad: FloatBuffer, range: Range<Int>, options: TrainOptions) {
        let n = range.count
        guard n > 0 else { return }
        let o = range.lowerBound
        let p = param.pointer + o, g = grad.pointer + o
        let lr = options.learningRate, wd = options.weightDecay
        switch kind {
        case .sgd:
            let mu = options.momentum
            gnk_sgd(p, mu == 0 ? nil : first[key].map { $0.pointer + o }, g, n, lr, mu, wd)
        case .adam:
            let m = first[key]!.pointer + o, s = second[key]!.pointer + o
            let b1 = options.adamBeta1, b2 = options.adamBeta2, eps = options.adamEpsilon
            let t = Float(step)
            let c1 = 1 - powf(b1, t), c2 = 1 - powf(b2, t)
            let stepSize = lr * c2.squareRoot() / c1
            gnk_adam(p, m, s, g, n, stepSize, b1, b2, eps * c2.squareRoot(), wd)
        }
    }

    private func moment(_ table: inout [ParameterKey: FloatBuffer], _ key: ParameterKey, _ n: Int) -> FloatBuffer {
        if let b = table[key] { return b }
        let b = FloatBuffer(count: n)
        table[key] = b
        return b
    }
}

import Glibc
