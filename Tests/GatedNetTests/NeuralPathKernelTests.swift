@testable import GatedNet
import Testing

/// Every kernel kind of a network with `hidden` hidden layers.
func allKernelKinds(hidden: Int) -> [KernelKind] {
    [.inputGram, .overlap, .npk, .npkNormalized] + (0..<hidden).map { KernelKind.base(layer: $0) }
}

/// The kernel of `kind` from explicitly enumerated features: NPFs for npk, activities (paths from
/// one input node) for overlap, gate vectors for base, value inputs for the input Gram.
func enumeratedKernel(_ kind: KernelKind, _ net: GatedNetwork, _ xa: [Float], _ xb: [Float]) -> [Double] {
    let d = net.inputSize, widths = net.hiddenWidths
    func features(_ x: [Float]) -> [[Double]] {
        let gates = net.gateArrays(x)
        return (0..<(x.count / d)).map { r in
            let xv = net.spec.valueInput == .ones ? [Double](repeating: 1, count: d) : row(x, r, cols: d)
            let g = widths.indices.map { row(gates[$0], r, cols: widths[$0]) }
            switch kind {
            case .inputGram:
                return xv
            case .base(let l):
                return g[l].map { $0 / Double(widths[l]).squareRoot() }
            case .overlap:
                return PathEnumeration(inputSize: 1, widths: widths).features(xv: [1], gates: g, gateLayer: { $0 })
            case .npk:
                return PathEnumeration(inputSize: d, widths: widths).features(xv: xv, gates: g, gateLayer: { $0 })
            case .npkNormalized:
                let scale = 1 / Double(widths.reduce(1, *)).squareRoot()
                return PathEnumeration(inputSize: d, widths: widths).features(xv: xv, gates: g, gateLayer: { $0 })
                    .map { $0 * scale }
            }
        }
    }
    let fa = features(xa), fb = features(xb)
    return fa.flatMap { a in fb.map { dot(a, $0) } }
}

@Suite("Neural path kernel (MATH.md §4, §7.2, §7.4)")
struct NeuralPathKernelTests {
    @Test("every kernel kind equals the Gram matrix of enumerated path features", arguments: PathCase.all)
    func kernelsEqualEnumeratedGram(_ c: PathCase) throws {
        let net = try GatedNetwork(spec: c.spec)
        let xa = seededUniform(5 * c.spec.inputSize, seed: 300)
        let xb = seededUniform(6 * c.spec.inputSize, seed: 301)
        #expect(net.gatesAreLive(xa) && net.gatesAreLive(xb))
        for kind in allKernelKinds(hidden: c.spec.hiddenCount) {
            let cross = enumeratedKernel(kind, net, xa, xb)
            let errCross = relativeError(doubles(try net.kernelArray(kind, xa, xb)), cross)
            #expect(errCross < 1e-5, "\(kind) cross kernel: relative error \(errCross)")
            let sym = enumeratedKernel(kind, net, xa, xa)
            let errSym = relativeError(doubles(try net.kernelArray(kind, xa)), sym)
            #expect(errSym < 1e-5, "\(kind) symmetric kernel: relative error \(errSym)")
            #expect(cross.map(abs).max()! > 1e-3, "\(kind) should not be all zero")
        }
    }

    @Test("hard-gate base kernel times width counts the gates on for both inputs")
    func hardBaseKernelCountsSharedGates() throws {
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, 5, [16, 12], 3, seed: 21))
        let x = seededUniform(8 * 5, seed: 302)
        let gates = net.gateArrays(x)
        for l in 0..<2 {
            let w = net.hiddenWidths[l]
            let b = try net.kernelArray(.base(layer: l), x)
            let mask = try x.withUnsafeBufferPointer { try net.gateMask($0.baseAddress!, rows: 8, layer: l) }
            for i in 0..<8 {
                for j in 0..<8 {
                    var both = 0
                    for u in 0..<w where gates[l][i * w + u] == 1 && gates[l][j * w + u] == 1 { both += 1 }
                    #expect(abs(b[i * 8 + j] * Float(w) - Float(both)) <= 1e-5)
                    #expect(mask.overlap(row: i, with: mask, row: j) == both)
                }
            }
        }
    }

    @Test("hard-gate overlap diagonal counts the active paths: product over layers of the gates on")
    func overlapDiagonalCountsActivePaths() throws {
        let net = try GatedNetwork(spec: makeSpec(.custom, 4, [6, 5, 3], 2, seed: 22) { $0.activation = .identity })
        let x = seededUniform(6 * 4, seed: 303)
        let gates = net.gateArrays(x)
        let lambda = try net.kernelArray(.overlap, x)
        let paths = PathEnumeration(inputSize: 1, widths: net.hiddenWidths)
        for r in 0..<6 {
            var count = 1.0
            for l in 0..<3 { count *= row(gates[l], r, cols: net.hiddenWidths[l]).reduce(0, +) }
            let g = (0..<3).map { row(gates[$0], r, cols: net.hiddenWidths[$0]) }
            let active = paths.features(xv: [1], gates: g, gateLayer: { $0 }).filter { $0 == 1 }.count
            #expect(Double(active) == count)
            #expect(Double(lambda[r * 6 + r]) == count)
        }
    }

    @Test("soft-gate overlap diagonal is the product over layers of the squared gate sums")
    func softOverlapDiagonal() throws {
        let net = try GatedNetwork(spec: makeSpec(.dlgn, 4, [6, 5, 3], 2, seed: 22) { $0.beta = 4 })
        let x = seededUniform(6 * 4, seed: 303)
        let gates = net.gateArrays(x)
        let lambda = try net.kernelArray(.overlap, x)
        for r in 0..<6 {
            var mass = 1.0
            for l in 0..<3 { mass *= row(gates[l], r, cols: net.hiddenWidths[l]).reduce(0) { $0 + $1 * $1 } }
            #expect(abs(Double(lambda[r * 6 + r]) - mass) <= 1e-5 * mass)
        }
    }

    @Test("npk is the input Gram times the overlap, and the normalised npk the input Gram times the product of base kernels")
    func npkFactorises() throws {
        let net = try GatedNetwork(spec: makeSpec(.decoupled, 6, [10, 7], 4, seed: 23) { $0.beta = 3 })
        let x = seededUniform(9 * 6, seed: 304)
        let sigma = doubles(try net.kernelArray(.inputGram, x))
        let lambda = doubles(try net.kernelArray(.overlap, x))
        let b0 = doubles(try net.kernelArray(.base(layer: 0), x))
        let b1 = doubles(try net.kernelArray(.base(layer: 1), x))
        let h = doubles(try net.kernelArray(.npk, x))
        let hn = doubles(try net.kernelArray(.npkNormalized, x))
        #expect(relativeError(h, sigma.indices.map { sigma[$0] * lambda[$0] }) < 1e-5)
        #expect(relativeError(hn, sigma.indices.map { sigma[$0] * b0[$0] * b1[$0] }) < 1e-5)
        #expect(relativeError(hn, h.map { $0 / 70 }) < 1e-5)
    }

    @Test("permuting the gates of the value layers leaves the npk unchanged: the permuted network's path features have the same Gram")
    func permutationLeavesNpkUnchanged() throws {
        let plain = try GatedNetwork(spec: makeSpec(.custom, 3, [4, 4, 4], 1, seed: 24))
        let permuted = try GatedNetwork(spec: makeSpec(.custom, 3, [4, 4, 4], 1, seed: 24) { $0.permutation = [2, 0, 1] })
        for (a, b) in zip(plain.featureLayers, permuted.featureLayers) { #expect(a.isBitIdentical(to: b)) }
        let x = seededUniform(6 * 3, seed: 305)
        let paths = PathEnumeration(inputSize: 3, widths: [4, 4, 4])
        let phi = pathFeatures(permuted, x, paths)
        let phiPlain = pathFeatures(plain, x, paths)
        // The features themselves differ (the wiring is real) ...
        #expect(relativeError(phi.flatMap { $0 }, phiPlain.flatMap { $0 }) > 0.1)
        // ... but their Gram is the npk of the unpermuted gates.
        let gram = phi.flatMap { a in phi.map { dot(a, $0) } }
        for kind in [KernelKind.npk, .npkNormalized, .overlap] {
            #expect(try plain.kernelArray(kind, x) == permuted.kernelArray(kind, x))
        }
        #expect(relativeError(doubles(try plain.kernelArray(.npk, x)), gram) < 1e-5)
    }

    @Test("all-ones value input keeps the product of base kernels and turns the input Gram into d_in times ones")
    func onesInputKeepsBaseKernels() throws {
        let dIn = 5
        let standard = try GatedNetwork(spec: makeSpec(.dlgn, dIn, [6, 4], 3, seed: 25))
        let ones = try GatedNetwork(spec: makeSpec(.dlgnPWC, dIn, [6, 4], 3, seed: 25))
        let x = seededUniform(7 * dIn, seed: 306)
        for l in 0..<2 {
            #expect(try standard.kernelArray(.base(layer: l), x) == ones.kernelArray(.base(layer: l), x))
        }
        #expect(try standard.kernelArray(.overlap, x) == ones.kernelArray(.overlap, x))
        #expect(try ones.kernelArray(.inputGram, x).allSatisfy { $0 == Float(dIn) })
        let b0 = doubles(try standard.kernelArray(.base(layer: 0), x))
        let b1 = doubles(try standard.kernelArray(.base(layer: 1), x))
        let product = b0.indices.map { b0[$0] * b1[$0] }
        #expect(relativeError(doubles(try ones.kernelArray(.npkNormalized, x)), product.map { $0 * Double(dIn) }) < 1e-5)
    }

    @Test("kernel writes rows with the given leading dimension and nothing past the columns")
    func kernelHonoursLeadingDimension() throws {
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, 4, [8, 8], 2, seed: 26))
        let xa = seededUniform(5 * 4, seed: 307), xb = seededUniform(3 * 4, seed: 308)
        let ld = 7
        var big = [Float](repeating: -12345, count: 5 * ld)
        try xa.withUnsafeBufferPointer { a in
            try xb.withUnsafeBufferPointer { b in
                try big.withUnsafeMutableBufferPointer { o in
                    try net.kernel(.npk, xa: a.baseAddress!, na: 5, xb: b.baseAddress!, nb: 3, symmetric: false,
                                   out: KernelOutput(pointer: o.baseAddress!, rows: 5, cols: 3, ld: ld))
                }
            }
        }
        let dense = try net.kernelArray(.npk, xa, xb)
        for r in 0..<5 {
            for c in 0..<ld {
                if c < 3 { #expect(big[r * ld + c] == dense[r * 3 + c]) } else { #expect(big[r * ld + c] == -12345) }
            }
        }
    }

    @Test("symmetric kernel over several tiles equals the kernel computed without symmetry")
    func symmetricTilesAgree() throws {
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, 3, [5, 4], 2, seed: 27))
        let n = kernelTile + 90
        let x = seededUniform(n * 3, seed: 309)
        let xCopy = x.map { $0 }
        let sym = try net.kernelArray(.npk, x)
        let full = try net.kernelArray(.npk, x, xCopy)
        #expect(relativeError(doubles(sym), doubles(full)) < 1e-6)
        var symmetric = true
        for i in 0..<n { for j in 0..<i where sym[i * n + j] != sym[j * n + i] { symmetric = false } }
        #expect(symmetric)
        // Spot-check entries across tile boundaries against enumeration.
        let picks = [0, kernelTile - 1, kernelTile, n - 1]
        let rows = picks.flatMap { Array(x[($0 * 3)..<($0 * 3 + 3)]) }
        let enumerated = enumeratedKernel(.npk, net, rows, rows)
        for (a, i) in picks.enumerated() {
            for (b, j) in picks.enumerated() {
                #expect(abs(Double(sym[i * n + j]) - enumerated[a * 4 + b]) <= 1e-5 * max(1, abs(enumerated[a * 4 + b])))
            }
        }
    }

    @Test("base kernel of a layer that does not exist is rejected")
    func badLayerRejected() throws {
        let net = try GatedNetwork(spec: makeSpec(.fixedRandomII, 3, [4, 4], 2, seed: 28))
        let x = seededUniform(3, seed: 310)
        #expect(throws: GatedNetError.self) { try net.kernelArray(.base(layer: 2), x) }
        #expect(throws: GatedNetError.self) { try net.kernelArray(.base(layer: -1), x) }
    }
}
