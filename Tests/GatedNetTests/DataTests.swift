@testable import GatedNet
import CZlib
import Glibc
import Testing

/// IDX bytes: 00 00 type ndim, big-endian u32 dims, then the big-endian payload.
func idxBytes(type: UInt8, dims: [Int], payload: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [0, 0, type, UInt8(dims.count)]
    for d in dims { out += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
    return out + payload
}

func bigEndian32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }

/// A fresh path in the temporary directory (the file is not created).
func temporaryPath(_ name: String) -> String {
    let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    var rng = SystemRandomNumberGenerator()
    return "\(dir)/gatednet-test-\(getpid())-\(rng.next() % 1_000_000_000)-\(name)"
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    guard let f = fopen(path, "wb") else { throw GatedNetError.io("cannot create \(path)") }
    defer { fclose(f) }
    let n = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
    guard n == bytes.count else { throw GatedNetError.io("short write to \(path)") }
}

/// Write `bytes` gzip-compressed through zlib.
func writeGzip(_ path: String, _ bytes: [UInt8]) throws {
    guard let f = gzopen(path, "wb") else { throw GatedNetError.io("cannot create \(path)") }
    let n = bytes.withUnsafeBytes { gzwrite(f, $0.baseAddress, UInt32($0.count)) }
    guard gzclose(f) == Z_OK, n == Int32(bytes.count) else { throw GatedNetError.io("gzip write to \(path) failed") }
}

func isCorrupt(_ body: () throws -> Any) -> Bool {
    do { _ = try body(); return false } catch GatedNetError.corrupt { return true } catch { return false }
}

/// The Fashion-MNIST test split (10000 images), loaded once for every test that needs it.
let fashionMNIST: (images: IDXArray, labels: IDXArray)? = {
    let dir = "/usr/share/datasets/fashion-mnist"
    guard let images = try? IDXArray(path: "\(dir)/t10k-images-idx3-ubyte.gz"),
          let labels = try? IDXArray(path: "\(dir)/t10k-labels-idx1-ubyte.gz") else { return nil }
    return (images, labels)
}()

/// Rows `range` of an unsigned-byte image file as floats in [0, 1]. `IDXArray.floats` converts
/// the whole file, which a debug build does slowly; its values are checked on small files.
func unitPixels(_ images: IDXArray, rows range: Range<Int>) -> [Float] {
    let size = images.dims.dropFirst().reduce(1, *)
    var out = [Float](repeating: 0, count: range.count * size)
    images.data.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            let base = range.lowerBound * size
            let scale: Float = 1 / 255
            for i in 0..<dst.count { dst[i] = Float(src[base + i]) * scale }
        }
    }
    return out
}

@Suite("Data: IDX files and label corruption")
struct DataTests {
    struct Sample {
        let type: UInt8
        let payload: [UInt8]
        let values: [Double]
    }

    static let samples: [Sample] = {
        let u8: [UInt8] = (0..<24).map { UInt8(($0 * 37) & 255) }
        let i8: [Int8] = [-128, -1, 0, 1, 127, -50]
        let i16: [Int16] = [-32768, -2, 0, 300, 32767, 4660]
        let i32: [Int32] = [Int32.min, -70000, 0, 9, 123_456_789, Int32.max]
        let f32: [Float] = [-1.5, 0, 3.25, 1e-20, -7e30, 0.1]
        let f64: [Double] = [-2.75, 0, 1e-300, 6.02e23, 0.1, -0.0]
        return [
            Sample(type: 0x08, payload: u8, values: u8.map(Double.init)),
            Sample(type: 0x09, payload: i8.map { UInt8(bitPattern: $0) }, values: i8.map(Double.init)),
            Sample(type: 0x0B, payload: i16.flatMap { [UInt8(UInt16(bitPattern: $0) >> 8), UInt8(UInt16(bitPattern: $0) & 255)] },
                   values: i16.map(Double.init)),
            Sample(type: 0x0C, payload: i32.flatMap { bigEndian32(UInt32(bitPattern: $0)) }, values: i32.map(Double.init)),
            Sample(type: 0x0D, payload: f32.flatMap { bigEndian32($0.bitPattern) }, values: f32.map(Double.init)),
            Sample(type: 0x0E, payload: f64.flatMap { bigEndian32(UInt32($0.bitPattern >> 32)) + bigEndian32(UInt32($0.bitPattern & 0xFFFF_FFFF)) },
                   values: f64),
        ]
    }()

    @Test("IDX files of every element type read back the written values, plain and gzip-compressed")
    func idxRoundTrip() throws {
        for s in Self.samples {
            let dims = s.values.count == 24 ? [2, 3, 4] : [3, 2]
            let bytes = idxBytes(type: s.type, dims: dims, payload: s.payload)
            let plain = temporaryPath("plain.idx"), gz = temporaryPath("data.idx.gz")
            defer { unlink(plain); unlink(gz) }
            try writeFile(plain, bytes)
            try writeGzip(gz, bytes)
            for array in [try IDXArray(path: plain), try IDXArray(path: gz), try IDXArray(bytes: bytes)] {
                #expect(array.dims == dims)
                #expect(array.count == s.values.count)
                #expect(array.element.rawValue == s.type)
                #expect(array.floats() == s.values.map { Float($0) })
                #expect(array.floats(scale: 0.5) == s.values.map { Float($0) * 0.5 })
                if s.type == 0x0D || s.type == 0x0E {
                    #expect(throws: GatedNetError.self) { try array.int32s() }
                } else {
                    #expect(try array.int32s() == s.values.map { Int32($0) })
                }
            }
        }
    }

    @Test("malformed IDX data is rejected as corrupt, a missing file as an I/O error")
    func idxErrors() throws {
        let good = idxBytes(type: 0x08, dims: [2, 3], payload: [1, 2, 3, 4, 5, 6])
        #expect(throws: Never.self) { try IDXArray(bytes: good) }
        #expect(isCorrupt { try IDXArray(bytes: [1] + good.dropFirst()) })            // magic
        #expect(isCorrupt { try IDXArray(bytes: [0, 0, 0x07] + good.dropFirst(3)) })   // element type
        #expect(isCorrupt { try IDXArray(bytes: [0, 0, 8, 0]) })                        // no dimensions
        #expect(isCorrupt { try IDXArray(bytes: [0, 0, 8, 9] + [UInt8](repeating: 0, count: 40)) })
        for n in 0..<good.count { #expect(isCorrupt { try IDXArray(bytes: Array(good[0..<n])) }, "truncated to \(n)") }
        #expect(isCorrupt { try IDXArray(bytes: good + [7]) })
        // Dimensions whose product overflows.
        #expect(isCorrupt { try IDXArray(bytes: idxBytes(type: 0x0E, dims: [0x7FFF_FFFF, 0x7FFF_FFFF, 0x7FFF_FFFF], payload: [])) })
        do {
            _ = try IDXArray(path: temporaryPath("missing.idx"))
            Issue.record("missing file was read")
        } catch GatedNetError.io {} catch { Issue.record("missing file: \(error)") }
        // A truncated gzip stream and garbage after a gzip header.
        let gz = temporaryPath("bad.idx.gz")
        defer { unlink(gz) }
        try writeGzip(gz, idxBytes(type: 0x08, dims: [100, 100], payload: seededUniform(10_000, seed: 1).map { UInt8(abs($0) * 255) }))
        let compressed = try readFile(gz)
        for cut in [11, compressed.count / 2, compressed.count - 5] {
            try writeFile(gz, Array(compressed[0..<cut]))
            #expect(isCorrupt { try IDXArray(path: gz) }, "gzip cut at \(cut)")
        }
        try writeFile(gz, Array(compressed[0..<10]) + [UInt8](repeating: 0xAB, count: 200))
        #expect(isCorrupt { try IDXArray(path: gz) })
    }

    @Test("the Fashion-MNIST test split reads as 10000 28x28 images with 1000 labels per class")
    func fashionMNISTShape() throws {
        let data = try #require(fashionMNIST, "Fashion-MNIST missing under /usr/share/datasets/fashion-mnist")
        #expect(data.images.dims == [10000, 28, 28])
        #expect(data.images.element == .u8)
        #expect(data.labels.dims == [10000])
        let labels = try data.labels.int32s()
        var counts = [Int](repeating: 0, count: 10)
        for y in labels { counts[Int(y)] += 1 }
        #expect(counts == [Int](repeating: 1000, count: 10))
        let pixels = unitPixels(data.images, rows: 0..<1000)
        #expect(pixels.min()! == 0 && pixels.max()! == 1)
        let firstThree = try IDXArray(bytes: idxBytes(type: 0x08, dims: [3, 28, 28], payload: Array(data.images.data[0..<(3 * 784)])))
        #expect(firstThree.floats(scale: 1 / 255) == Array(pixels.prefix(3 * 784)))
    }

    @Test("label corruption changes about gamma·(1 - 1/classes) of the labels, counts them exactly, and is seeded")
    func corruptionFraction() throws {
        let n = 20_000, classes = 10
        let original = seededLabels(n, classes: classes, seed: 600)
        for gamma in [0.0, 0.1, 0.3, 0.75, 1.0] {
            var labels = original
            let changed = try corruptLabels(&labels, classes: classes, gamma: gamma, seed: 601)
            let differing = zip(labels, original).filter { $0 != $1 }.count
            #expect(changed == differing)
            #expect(changed <= Int((gamma * Double(n)).rounded()))
            #expect(labels.allSatisfy { $0 >= 0 && $0 < Int32(classes) })
            // round(γn) positions each change with probability 1 - 1/classes: binomial.
            let m = (gamma * Double(n)).rounded(), p = 1 - 1 / Double(classes)
            let sd = (m * p * (1 - p)).squareRoot()
            #expect(abs(Double(changed) - m * p) <= 5 * sd + 1e-9, "gamma \(gamma): changed \(changed), expected \(m * p) ± \(sd)")
        }
        // Fully corrupted labels are uniform over the classes.
        var labels = original
        _ = try corruptLabels(&labels, classes: classes, gamma: 1, seed: 602)
        var counts = [Int](repeating: 0, count: classes)
        for y in labels { counts[Int(y)] += 1 }
        let expected = Double(n) / Double(classes), sd = (expected * (1 - 1 / Double(classes))).squareRoot()
        #expect(counts.allSatisfy { abs(Double($0) - expected) < 5 * sd }, "\(counts)")
    }

    @Test("label corruption replaces exactly round(gamma·n) positions")
    func corruptionCount() throws {
        // With a million classes a replacement equal to the old label is (almost) impossible.
        for (n, gamma) in [(10, 0.25), (10, 0.35), (7, 0.5), (1, 1.0), (1000, 0.123)] {
            var labels = [Int32](repeating: 5, count: n)
            let changed = try corruptLabels(&labels, classes: 1_000_000, gamma: gamma, seed: 603)
            #expect(changed == Int((gamma * Double(n)).rounded()), "n \(n) gamma \(gamma)")
        }
        var single = [Int32](repeating: 0, count: 50)
        #expect(try corruptLabels(&single, classes: 1, gamma: 1, seed: 604) == 0)
        var empty: [Int32] = []
        #expect(try corruptLabels(&empty, classes: 3, gamma: 0.5, seed: 605) == 0)
    }

    @Test("label corruption is deterministic per seed and differs between seeds")
    func corruptionSeeded() throws {
        let original = seededLabels(5000, classes: 10, seed: 606)
        var a = original, b = original, c = original
        _ = try corruptLabels(&a, classes: 10, gamma: 0.4, seed: 7)
        _ = try corruptLabels(&b, classes: 10, gamma: 0.4, seed: 7)
        _ = try corruptLabels(&c, classes: 10, gamma: 0.4, seed: 8)
        #expect(a == b)
        #expect(a != c)
    }

    @Test("label corruption rejects bad arguments and leaves the labels unchanged")
    func corruptionErrors() {
        let original: [Int32] = [0, 1, 2, 1, 0]
        func status(_ labels: [Int32], classes: Int, gamma: Double) -> (GatedNetError?, [Int32]) {
            var l = labels
            do { _ = try corruptLabels(&l, classes: classes, gamma: gamma, seed: 1); return (nil, l) } catch let e as GatedNetError {
                return (e, l)
            } catch { return (nil, l) }
        }
        for (labels, classes, gamma, range) in [
            (original, 2, 0.5, true), ([0, -1, 1] as [Int32], 3, 0.5, true), (original, 3, -0.1, false),
            (original, 3, 1.01, false), (original, 3, .nan, false), (original, 3, .infinity, false), (original, 0, 0.5, false),
        ] {
            let (e, after) = status(labels, classes: classes, gamma: gamma)
            #expect(after == labels)
            if range {
                #expect({ if case .labelRange = e { return true }; return false }(), "\(labels) classes \(classes): \(String(describing: e))")
            } else {
                #expect({ if case .invalidArgument = e { return true }; return false }(), "gamma \(gamma) classes \(classes): \(String(describing: e))")
            }
        }
    }
}
