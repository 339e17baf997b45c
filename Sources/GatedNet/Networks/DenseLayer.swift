/// One fully connected layer: `q = W z + b`, W stored fanOut × fanIn row-major.
public final class DenseLayer: @unchecked Sendable {
    public let fanOut: Int
    public let fanIn: Int
    public let weight: FloatBuffer
    public let bias: FloatBuffer?

    init(fanOut: Int, fanIn: Int, bias: Bool) {
        self.fanOut = fanOut
        self.fanIn = fanIn
        weight = FloatBuffer(count: fanOut * fanIn)
        self.bias = bias ? FloatBuffer(count: fanOut) : nil
    }

    private init(fanOut: Int, fanIn: Int, weight: FloatBuffer, bias: FloatBuffer?) {
        self.fanOut = fanOut
        self.fanIn = fanIn
        self.weight = weight
        self.bias = bias
    }

    func copy() -> DenseLayer {
        DenseLayer(fanOut: fanOut, fanIn: fanIn, weight: weight.copy(), bias: bias?.copy())
    }

    /// Draw weights (biases stay 0) from `rng` by `kind` with `scale` (see `InitKind`).
    func initialise(_ kind: InitKind, scale: Float, rng: inout SeededGenerator) {
        let std = Double(scale) / Double(fanIn).squareRoot()
        let p = weight.pointer
        switch kind {
        case .gaussian:
            for i in 0..<weight.count { p[i] = Float(std * rng.nextGaussian()) }
        case .bernoulli:
            for i in 0..<weight.count { p[i] = (rng.next() & 1) == 0 ? Float(std) : Float(-std) }
        }
        bias?.fill(0)
    }

    func assign(from other: DenseLayer) {
        weight.assign(from: other.weight)
        if let b = bias, let ob = other.bias { b.assign(from: ob) }
    }

    public var matrix: Matrix {
        var m = Matrix(rows: fanOut, cols: fanIn)
        m.storage = weight.array
        return m
    }

    func isBitIdentical(to other: DenseLayer) -> Bool {
        guard weight.isBitIdentical(to: other.weight) else { return false }
        switch (bias, other.bias) {
        case (nil, nil): return true
        case let (a?, b?): return a.isBitIdentical(to: b)
        default: return false
        }
    }
}
