@testable import GatedNet
import Glibc
import Testing

/// Value-network NTK K^v(x, x') = Σ_{θ ∈ Θv} ∂ŷ(x)/∂θ ∂ŷ(x')/∂θ for k = 1, from per-example
/// gradients of the engine's backward pass (unit output gradient, one row at a time).
func valueNTK(_ net: GatedNetwork, _ x: [Float]) -> [Double] {
    precondition(net.outputSize == 1)
    let d = net.inputSize, n = x.count / d
    let ws = net.workspace(rows: 1)
    let grads = Gradients(net)
    var perExample: [[Double]] = []
    x.withUnsafeBufferPointer { xp in
        for r in 0..<n {
            net.forward(xp.baseAddress! + r * d, rows: 1, ws: ws, target: .network)
            ws.dOut[0] = 1
            net.backward(xp.baseAddress! + r * d, rows: 1, ws: ws, grads: grads, target: .network)
            perExample.append(grads.value.flatMap { $0.weight.array.map(Double.init) })
        }
    }
    return perExample.flatMap { a in perExample.map { dot(a, $0) } }
}

@Suite("Expected value NTK (MATH.md §7.3, paper 002 Thm 4.1)")
struct ValueNTKExpectationTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let spec: NetworkSpec
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "hard random gates", spec: makeSpec(.fixedRandomII, 3, [4, 4], 1, seed: 41)),
        Case(name: "soft frozen gates", spec: makeSpec(.custom, 3, [4, 4], 1, seed: 42) {
            $0.gateKind = .soft; $0.beta = 2; $0.featureFrozen = true
        }),
        Case(name: "permuted hard gates", spec: makeSpec(.fixedRandomII, 3, [4, 4], 1, seed: 43) { $0.permutation = [1, 0] }),
        Case(name: "value input ones", spec: makeSpec(.fixedRandomII, 3, [4, 4], 1, seed: 44) { $0.valueInput = .ones }),
    ]

    @Test("Monte Carlo mean of the value NTK over ±σ value weights approaches d·σ^(2(d-1))·H", arguments: cases)
    func expectedValueNTK(_ c: Case) throws {
        let net = try GatedNetwork(spec: c.spec)
        let n = 5
        let x = seededUniform(n * c.spec.inputSize, seed: 400)
        #expect(net.gatesAreLive(x))
        let sigma = 0.8
        let depth = Double(c.spec.depth)
        let h = doubles(try net.kernelArray(.npk, x))
        let expected = h.map { depth * pow(sigma, 2 * (depth - 1)) * $0 }

        let samples = 3000
        var rng = SeededGenerator(seed: 4000)
        var sum = [Double](repeating: 0, count: n * n), sumSq = sum
        for _ in 0..<samples {
            for layer in net.valueLayers {
                for i in 0..<layer.weight.count { layer.weight[i] = Float((rng.next() & 1) == 0 ? sigma : -sigma) }
            }
            let k = valueNTK(net, x)
            for i in k.indices { sum[i] += k[i]; sumSq[i] += k[i] * k[i] }
        }
        let mean = sum.map { $0 / Double(samples) }
        // Standard error of each entry of the mean.
        let standardError = mean.indices.map { i in
            ((sumSq[i] / Double(samples) - mean[i] * mean[i]) / Double(samples - 1)).squareRoot()
        }
        let scale = expected.map(abs).max()!
        let tolerance = 0.05 * scale
        let maxError = mean.indices.map { abs(mean[$0] - expected[$0]) }.max()!
        // The sample size makes the Monte Carlo error small against the tolerance ...
        #expect(standardError.max()! < tolerance / 4, "max standard error \(standardError.max()!) vs tolerance \(tolerance)")
        // ... and the mean agrees with the theorem within it.
        #expect(maxError < tolerance, "max |mean - expected| = \(maxError), scale \(scale)")
        // A wrong depth factor or σ power would be far outside the tolerance.
        #expect(abs(depth - (depth - 1)) * pow(sigma, 2 * (depth - 1)) * h.map(abs).max()! > 4 * tolerance)
    }

    @Test("value NTK from per-example gradients is the layer-wise sum of Hadamard products")
    func layerwiseValueNTK() throws {
        // MATH.md §4: K = Σ_l (Δ_l Δ_lᵀ) ⊙ (Z_{l-1} Z_{l-1}ᵀ), with Δ_l the back-propagated vectors at layer l.
        let net = try GatedNetwork(spec: makeSpec(.decoupled, 4, [5, 3], 1, seed: 45) { $0.beta = 2 })
        let n = 6, d = 4
        let x = seededUniform(n * d, seed: 401)
        let reference = ReferenceNet(net)
        var deltas: [[[Double]]] = [], inputs: [[[Double]]] = []   // [row][layer][unit]
        for r in 0..<n {
            let xr = row(x, r, cols: d)
            let g = reference.gates(xr)
            var zs = [xr]
            for l in 0..<2 {
                let q = reference.dense(.value, l, zs[l])
                zs.append((0..<q.count).map { q[$0] * g[l][$0] })
            }
            // δ at the output is 1; δ_l = (W_{l+1}ᵀ δ_{l+1}) ⊙ G_l.
            var ds: [[Double]] = [[1]]
            for l in stride(from: 1, through: 0, by: -1) {
                let w = reference.tensors[ParameterKey(part: .value, layer: l + 1, isBias: false)]!
                let above = ds[0]
                let width = net.hiddenWidths[l]
                ds.insert((0..<width).map { i in
                    var s = 0.0
                    for o in above.indices { s += w[o * width + i] * above[o] }
                    return s * g[l][i]
                }, at: 0)
            }
            deltas.append(ds); inputs.append(zs)
        }
        var layerwise = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n {
                for l in 0...2 { layerwise[i * n + j] += dot(deltas[i][l], deltas[j][l]) * dot(inputs[i][l], inputs[j][l]) }
            }
        }
        let err = relativeError(valueNTK(net, x), layerwise)
        #expect(err < 1e-5, "relative error \(err)")
    }
}
