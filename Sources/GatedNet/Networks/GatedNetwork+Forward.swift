import CKernels
import Glibc

/// What a forward pass computes the output of.
enum PassTarget {
    /// The DGN itself (for a tied network: the ReLU net).
    case network
    /// The feature net alone through its own head, with its activation χ.
    case featureHead
}

@inline(__always)
func addBias(_ q: UnsafeMutablePointer<Float>, rows: Int, cols: Int, bias: FloatBuffer?) {
    guard let b = bias?.pointer else { return }
    gnk_add_bias(q, b, rows, cols)
}

/// y = x Wᵀ + b for rows × fanIn input into rows × fanOut output.
@inline(__always)
func denseForward(_ layer: DenseLayer, input: UnsafePointer<Float>, rows: Int, output: UnsafeMutablePointer<Float>) {
    BLAS.gemm(transA: false, transB: true, m: rows, n: layer.fanOut, k: layer.fanIn,
              a: input, lda: layer.fanIn, b: layer.weight.pointer, ldb: layer.fanIn,
              c: output, ldc: layer.fanOut)
    addBias(output, rows: rows, cols: layer.fanOut, bias: layer.bias)
}

extension GatedNetwork {
    /// Apply the gate function to `count` pre-activations.
    @inline(__always)
    func applyGate(_ q: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>, count: Int) {
        switch spec.gateKind {
        case .hard: gnk_hard_gate(q, g, count)
        case .soft: gnk_soft_gate(q, g, count, spec.beta)
        }
    }

    /// Feature pass: qf, zf and (if `gates`) the gates of every hidden layer for `rows` rows.
    /// For a tied network gates are always hard (it is a ReLU net).
    func runFeature(_ x: UnsafePointer<Float>, rows: Int, ws: Workspace, gates: Bool) {
        var input = x
        for (l, layer) in featureLayers.enumerated() {
            let q = ws.qf[l].pointer
            denseForward(layer, input: input, rows: rows, output: q)
            let count = rows * layer.fanOut
            if gates { applyGate(q, ws.gates[l].pointer, count: count) }
            if spec.activation == .relu {
                gnk_relu(q, ws.zf[l].pointer, count)
            }
            input = UnsafePointer(ws.zf[l].pointer)
        }
    }

    /// Value pass given `ws.gates`: qv, zv and the output into `ws.out`.
    func runValue(_ x: UnsafePointer<Float>, rows: Int, ws: Workspace) {
        var input = spec.valueInput == .ones ? UnsafePointer(ws.ones!.pointer) : x
        for l in 0..<hiddenCount {
            let layer = valueLayers[l]
            let q = ws.qv[l].pointer, z = ws.zv[l].pointer
            denseForward(layer, input: input, rows: rows, output: q)
            let g = ws.gates[spec.gateLayer(l)].pointer
            gnk_mul(q, g, z, rows * layer.fanOut)
            input = UnsafePointer(z)
        }
        denseForward(valueLayers[hiddenCount], input: input, rows: rows, output: ws.out.pointer)
    }

    /// Forward pass of `rows` rows (≤ ws.capacity); the output lands in `ws.out`.
    func forward(_ x: UnsafePointer<Float>, rows: Int, ws: Workspace, target: PassTarget) {
        if tied || target == .featureHead {
            runFeature(x, rows: rows, ws: ws, gates: false)
            // Callers check that a feature-head pass has a head (a tied network always has one).
            guard let head = featureHead else { return }
            denseForward(head, input: UnsafePointer(ws.zf[hiddenCount - 1].pointer), rows: rows, output: ws.out.pointer)
        } else {
            runFeature(x, rows: rows, ws: ws, gates: true)
            runValue(x, rows: rows, ws: ws)
        }
    }

    /// Calls `body(start, count)` over row chunks of at most `chunk` rows.
    func forEachChunk(rows: Int, chunk: Int, _ body: (Int, Int) throws -> Void) rethrows {
        var start = 0
        while start < rows {
            let c = min(chunk, rows - start)
            try body(start, c)
            start += c
        }
    }
}

/// Rows processed at once by prediction, evaluation and gate export.
let evaluationChunk = 1024
