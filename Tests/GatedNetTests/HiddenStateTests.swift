@testable import GatedNet
import Testing

/// Hidden state read-out (pre-activations, activations) of both network types, checked against
/// double-precision recomputation from the weights, and the normalised conv path kernels.
@Suite("Hidden state and normalised conv kernels")
struct HiddenStateTests {
    static func state(_ net: GatedNetwork, _ x: [Float], _ part: Part, _ layer: Int, _ q: HiddenQuantity) throws -> [Float] {
        let rows = x.count / net.inputSize
        let width = layer >= 0 && layer < net.hiddenCount ? net.hiddenWidths[layer] : 1
        var out = [Float](repeating: .nan, count: rows * width)
        try x.withUnsafeBufferPointer { xp in
            try out.withUnsafeMutableBufferPointer { try net.hiddenState(xp.baseAddress!, rows: rows, part: part, layer: layer, q, into: $0.baseAddress!) }
        }
        return out
    }

    static func state(_ net: ConvNetwork, _ x: [Float], _ part: Part, _ layer: Int, _ q: HiddenQuantity) throws -> [Float] {
        let rows = x.count / net.inputSize
        var out = [Float](repeating: .nan, count: rows * net.gatedShapes[layer].size)
        try x.withUnsafeBufferPointer { xp in
            try out.withUnsafeMutableBufferPointer { try net.hiddenState(xp.baseAddress!, rows: rows, part: part, layer: layer, q, into: $0.baseAddress!) }
        }
        return out
    }

    @Test("dense: feature and value pre-activations / activations match a double recomputation",
          arguments: [Regime.decoupled, .relu, .dlgn, .fixedRandomII])
    func dense(regime: Regime) throws {
        let net = try GatedNetwork(spec: makeSpec(regime, 5, [6, 6, 6], 3, seed: 3) {
            $0.bias = true
            if regime != .relu { $0.permutation = [2, 0, 1] }
        })
        let rows = 9
        let x = seededUniform(rows * 5, seed: 8)
        let ref = ReferenceNet(net)
        for l in 0..<3 {
            let qf = try Self.state(net, x, .feature, l, .preActivation)
            let zf = try Self.state(net, x, .feature, l, .activation)
            let qv = try Self.state(net, x, .value, l, .preActivation)
            let zv = try Self.state(net, x, .value, l, .activation)
            let w = net.hiddenWidths[l]
            for r in 0..<rows {
                let xr = x[(r * 5)..<((r + 1) * 5)].map(Double.init)
                let q = ref.featurePreActivations(xr)[l]
                // Value net by hand: z_v through layers 0...l.
                var z = net.spec.valueInput == .ones ? [Double](repeating: 1, count: 5) : xr
                var valueQ: [Double] = []
                let g = ref.gates(xr)
                for m in 0...l {
                    valueQ = net.tied ? ref.featurePreActivations(xr)[m] : ref.dense(.value, m, z)
                    let gm = g[net.spec.gateLayer(m)]
                    z = (0..<valueQ.count).map { valueQ[$0] * (net.tied ? (valueQ[$0] > 0 ? 1 : 0) : gm[$0]) }
                }
                for u in 0..<w {
                    let i = r * w + u
                    let act = net.spec.activation == .relu ? max(q[u], 0) : q[u]
                    #expect(abs(Double(qf[i]) - q[u]) < 1e-5 * (1 + abs(q[u])))
                    #expect(abs(Double(zf[i]) - act) < 1e-5 * (1 + abs(act)))
                    #expect(abs(Double(qv[i]) - valueQ[u]) < 1e-5 * (1 + abs(valueQ[u])))
                    #expect(abs(Double(zv[i]) - z[u]) < 1e-5 * (1 + abs(z[u])))
                }
            }
        }
        #expect(throws: GatedNetError.self) { try Self.state(net, x, .feature, 3, .activation) }
    }

    @Test("conv: hidden state agrees with the gates, and the output is the output layer applied to the last activation")
    func conv() throws {
        let net = try ConvNetwork(spec: convSpec(.decoupled, 2, 4, 3, [.conv(3, kernel: 3, bias: true), .conv(4, kernel: 3, block: 1),
                                                                      .conv(4, kernel: 3, block: 1), .globalAveragePool,
                                                                      .dense(5), .dense(2)], seed: 5) { $0.gateKind = .hard })
        let rows = 4
        let x = convUniform(rows * net.inputSize, seed: 2)
        let gates = net.gateTensors(x, wired: true)
        let own = net.gateTensors(x, wired: false)
        for l in 0..<net.gatedShapes.count {
            let qf = try Self.state(net, x, .feature, l, .preActivation)
            let zf = try Self.state(net, x, .feature, l, .activation)
            let qv = try Self.state(net, x, .value, l, .preActivation)
            let zv = try Self.state(net, x, .value, l, .activation)
            for i in qf.indices {
                #expect(own[l][i] == (qf[i] > 0 ? 1 : 0))
                #expect(zf[i] == max(qf[i], 0))
                #expect(zv[i] == qv[i] * gates[l][i])
            }
        }
        // The last gated layer is the hidden dense layer (5 units): output = W_out zv. The
        // block's projection is parameter 3, so the output layer is parameter 5.
        let zv = try Self.state(net, x, .value, 3, .activation)
        let w = net.tensor("value.5.weight").array
        let out = net.outputs(x)
        for r in 0..<rows {
            for o in 0..<2 {
                var y = 0.0
                for u in 0..<5 { y += Double(w[o * 5 + u]) * Double(zv[r * 5 + u]) }
                #expect(abs(y - Double(out[r * 2 + o])) < 1e-5 * (1 + abs(y)))
            }
        }
        // A tied (ReLU) net has one net: both parts agree.
        let relu = try ConvNetwork(spec: convSpec(.relu, 2, 4, 3, [.conv(3, kernel: 3), .globalAveragePool, .dense(2)], seed: 6))
        #expect(try Self.state(relu, x, .feature, 0, .activation) == Self.state(relu, x, .value, 0, .activation))
    }

    @Test("conv tensors know their position in the layer list (a projection does not shift it)")
    func tensorLayers() throws {
        let net = try ConvNetwork(spec: convSpec(.decoupled, 2, 4, 4, [.conv(2, kernel: 3), .conv(4, kernel: 3, block: 1),
                                                                      .conv(4, kernel: 3, block: 1), .globalAveragePool,
                                                                      .dense(3)], seed: 1))
        let layers = net.parameterLayers
        let names = net.parameters.map(\.name)
        #expect(names.count == layers.count)
        let expected: [(Int, Bool)] = [(0, false), (1, false), (2, false), (2, true),             // feature
                                       (0, false), (1, false), (2, false), (2, true), (4, false)] // value
        #expect(layers.map(\.layer) == expected.map(\.0))
        #expect(layers.map(\.projection) == expected.map(\.1))
        #expect(names[8] == "value.4.weight")  // the output layer (position 4) is parameter 4
    }

    @Test("normalised conv NPK: H / prod C_l without blocks; trace kind has unit trace; deep nets stay finite")
    func normalised() throws {
        let net = try ConvNetwork(spec: convSpec(.fixedRandomII, 1, 4, 4, [.conv(3, kernel: 3), .conv(5, kernel: 3),
                                                                         .globalAveragePool, .dense(6), .dense(2)], seed: 4))
        let x = convUniform(5 * net.inputSize, seed: 9)
        let h = try net.kernelMatrix(.npk, x)
        let n = try net.kernelMatrix(.npkNormalized, x)
        let t = try net.kernelMatrix(.npkTraceNormalized, x)
        let trace: Double = (0..<5).map { h[$0 * 5 + $0] }.reduce(0, +)
        for i in h.indices {
            #expect(abs(n[i] - h[i] / 90) < 1e-5 * (1 + abs(h[i] / 90)))
            #expect(abs(t[i] - h[i] / trace) < 1e-5)
        }
        let unitTrace: Double = (0..<5).map { t[$0 * 5 + $0] }.reduce(0, +)
        #expect(abs(unitTrace - 1) < 1e-5)
        // Asymmetric block: the trace is over xa's rows.
        let xb = convUniform(3 * net.inputSize, seed: 10)
        let hab = try net.kernelMatrix(.npk, x, xb), tab = try net.kernelMatrix(.npkTraceNormalized, x, xb)
        for i in hab.indices { #expect(abs(tab[i] - hab[i] / trace) < 1e-5) }

        // 20 conv layers of 64 channels: raw H passes float32's range, the normalised kinds do not.
        let deep = try ConvNetwork(spec: convSpec(.fixedRandomII, 1, 3, 3, Array(repeating: .conv(64, kernel: 3), count: 20)
                                                  + [.globalAveragePool, .dense(2)], seed: 2))
        let xd = convUniform(3 * deep.inputSize, seed: 1).map { $0 + 2 }
        #expect(throws: GatedNetError.self) { try deep.kernelMatrix(.npk, xd) }
        let td = try deep.kernelMatrix(.npkTraceNormalized, xd)
        #expect(td.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 })
        let deepTrace: Double = (0..<3).map { td[$0 * 3 + $0] }.reduce(0, +)
        #expect(abs(deepTrace - 1) < 1e-5)
        #expect(try deep.kernelMatrix(.npkNormalized, xd).allSatisfy(\.isFinite))
    }
}
