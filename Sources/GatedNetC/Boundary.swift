import CGatedNetABI
import GatedNet
import Glibc

/// A required pointer argument.
@inline(__always)
func required<T>(_ p: T?, _ name: String) throws -> T {
    guard let v = p else { throw BoundaryError.nullPointer("\(name): is NULL") }
    return v
}

/// A count argument in minimum ... maximum (spec sizes pass Int64.max and let the engine judge
/// them against memory).
func count(_ v: Int64, _ name: String, min minimum: Int64 = 1, max maximum: Int64 = Int64(Int32.max) * 64) throws -> Int {
    guard v >= minimum else { throw GatedNetError.invalidArgument("\(name): got \(v), need >= \(minimum)") }
    guard v <= maximum else { throw GatedNetError.invalidArgument("\(name): got \(v), need <= \(maximum)") }
    return Int(v)
}

/// An input matrix rows × cols, non-null and (if `finite`) free of NaN/Inf.
func inputMatrix(_ p: UnsafePointer<Float>?, rows: Int64, cols: Int, _ name: String, rowsName: String,
                 finite: Bool = true) throws -> (UnsafePointer<Float>, Int) {
    let n = try count(rows, rowsName)
    let x = try required(p, name)
    let total = try checkedCount(n, cols, what: name)
    guard total <= Int.max / 8 else { throw GatedNetError.invalidArgument("\(rowsName): got \(rows); \(rows) x \(cols) values exceed the address space") }
    if finite {
        guard isAllFinite(x, total) else { throw GatedNetError.notFinite("\(name): contains NaN or Inf") }
    }
    return (x, n)
}

/// Check that an output buffer holds `needed` elements.
func capacity(_ cap: Int64, needs needed: Int, _ name: String) throws {
    guard cap >= 0, Int(cap) >= needed else {
        throw GatedNetError.bufferTooSmall("\(name): capacity \(cap), need \(needed)")
    }
}

/// Elements a rows × cols matrix with row stride `ld` spans: (rows − 1)·ld + cols, after
/// checking ld ≥ cols and that nothing overflows, even as a byte count of 8-byte elements (a
/// larger span cannot be a real buffer). Every strided buffer of the API is sized by this one
/// function.
func stridedSpan(rows: Int, cols: Int, ld: Int64, _ ldName: String = "ld_out") throws -> Int {
    guard rows >= 1 && cols >= 1 else { throw GatedNetError.invalidArgument("\(ldName): a \(rows) x \(cols) matrix has no elements") }
    guard ld >= Int64(cols) else { throw GatedNetError.invalidArgument("\(ldName): got \(ld), need >= \(cols) (the number of columns)") }
    let (span, o1) = (rows - 1).multipliedReportingOverflow(by: Int(ld))
    let (total, o2) = span.addingReportingOverflow(cols)
    guard !o1 && !o2 && total <= Int.max / 8 else {
        throw GatedNetError.invalidArgument("\(ldName): got \(ld); (rows - 1) * \(ldName) + cols = (\(rows) - 1) * \(ld) + \(cols) overflows the address space")
    }
    return total
}

/// A size_t capacity as imported by Swift (values >= 2^63 arrive negative: treat them as unbounded).
func byteCapacity(_ cap: Int) -> Int { cap < 0 ? Int.max : cap }

/// A spec or options struct whose first field is its own size.
func checkStructSize(_ size: Int, expected: Int, _ name: String) throws {
    guard size >= expected else {
        throw GatedNetError.invalidArgument("\(name)->struct_size: got \(size), need \(expected) (initialise it with the matching _init function)")
    }
}

/// A permutation argument of `count` entries, each in 0 ..< count (bijectivity is the engine's check).
func permutationArgument(_ p: UnsafePointer<Int64>, count: Int, _ name: String) throws -> [Int] {
    try (0..<count).map { l in
        guard p[l] >= 0 && p[l] < Int64(count) else {
            throw GatedNetError.invalidArgument("\(name)[\(l)]: got \(p[l]), need 0 ... \(count - 1)")
        }
        return Int(p[l])
    }
}

/// Write `text` NUL-terminated into buf (truncated to capacity − 1 bytes); *needed (optional)
/// gets the full length + 1. Capacity 0 only queries.
func writeCString(_ text: String, _ buf: UnsafeMutablePointer<CChar>?, _ cap: Int, _ needed: UnsafeMutablePointer<Int>?) throws {
    let bytes = Array(text.utf8CString)  // includes the NUL
    needed?.pointee = bytes.count
    let cap = byteCapacity(cap)
    guard cap > 0 else { return }
    let b = try required(buf, "buf")
    let m = min(cap - 1, bytes.count - 1)
    for i in 0..<m { b[i] = bytes[i] }
    b[m] = 0
}

/// Hand serialized bytes to the caller: *needed always gets their size; they are copied only
/// when the capacity suffices.
func writeSerialized(_ bytes: [UInt8], _ buf: UnsafeMutableRawPointer?, _ cap: Int, _ needed: UnsafeMutablePointer<Int>?) throws {
    let need = try required(needed, "needed")
    need.pointee = bytes.count
    guard byteCapacity(cap) >= bytes.count else { throw GatedNetError.bufferTooSmall("capacity: \(cap) bytes, need \(bytes.count)") }
    let b = try required(buf, "buf")
    bytes.withUnsafeBytes { raw in
        if let base = raw.baseAddress { b.copyMemory(from: base, byteCount: raw.count) }
    }
}

/// A caller's serialized buffer as bytes.
func serializedBytes(_ buf: UnsafeRawPointer?, _ size: Int) throws -> UnsafeRawBufferPointer {
    let b = try required(buf, "buf")
    guard size >= 0 else { throw GatedNetError.invalidArgument("size: got \(size)") }
    return UnsafeRawBufferPointer(start: b, count: size)
}

/// Load a file, naming it in a corruption message.
func loadNamingFile<T>(_ file: FilePath, _ load: (FilePath) throws -> T) throws -> T {
    do {
        return try load(file)
    } catch GatedNetError.corrupt(let m) {
        throw GatedNetError.corrupt("\(file): \(m)")
    }
}

/// A gn_part argument.
func part(_ p: gn_part) throws -> Part {
    guard let v = Part(rawValue: Int(p.rawValue)) else { throw GatedNetError.invalidArgument("part: got \(p.rawValue), need 0 (feature) or 1 (value)") }
    return v
}

/// The GN_SAVE_OPTIMIZER_STATE bit of a save flags word.
func includesOptimizer(_ flags: UInt32) -> Bool { flags & GN_SAVE_OPTIMIZER_STATE != 0 }

/// A path argument: its bytes exactly as given (no decoding: a path that is not UTF-8 reaches
/// the file system unchanged). Every exported function taking a path goes through this.
func path(_ p: UnsafePointer<CChar>?, _ name: String) throws -> FilePath {
    let c = try required(p, name)
    guard c.pointee != 0 else { throw GatedNetError.invalidArgument("\(name): is empty") }
    return try FilePath(cString: c)
}

/// Results the engine computed (rows × cols, row stride `ld`) must be finite: NaN or Inf there
/// means the activations overflowed float32 for these (finite) inputs. `upperOnly`: only the
/// entries with column >= row were written, and only they are read.
func finiteResult(_ p: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int? = nil, upperOnly: Bool = false,
                  _ name: String) throws {
    let stride = ld ?? cols
    for r in 0..<rows {
        let first = upperOnly ? min(r, cols) : 0
        guard !isAllFinite(p + r * stride + first, cols - first) else { continue }
        throw GatedNetError.notFinite("\(name): row \(r) came out NaN or Inf (the network's values overflow float32 for these inputs; scale them down)")
    }
}

/// A loss or other statistic the engine computed must be finite (see `finiteResult`).
func finiteResult(_ v: Double, _ name: String) throws {
    guard v.isFinite else {
        throw GatedNetError.notFinite("\(name): came out \(v) (the network's values overflow float32 for these inputs; scale them down)")
    }
}
