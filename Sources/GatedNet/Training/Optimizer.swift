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

    /// One update of `param` by its gradient `grad`.
    func update(key: ParameterKey, param: FloatBuffer, grad: FloatBuffer, options: TrainOptions) {
        let n = param.count
        let p = param.pointer, g = grad.pointer
        let lr = options.learningRate, wd = options.weightDecay
        switch kind {
        case .sgd:
            let mu = options.momentum
            gnk_sgd(p, mu == 0 ? nil : moment(&first, key, n).pointer, g, n, lr, mu, wd)
        case .adam:
            let m = moment(&first, key, n).pointer, s = moment(&second, key, n).pointer
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
