/// Every failure the engine reports. The message names the argument and the values seen;
/// the C export layer maps each case to one `gn_status` code.
public enum GatedNetError: Error, Equatable, CustomStringConvertible {
    case invalidArgument(String)
    case shape(String)
    case bufferTooSmall(String)
    case notFinite(String)
    case labelRange(String)
    case unsupported(String)
    case io(String)
    case corrupt(String)
    case cancelled(String)
    case outOfMemory(String)

    public var message: String {
        switch self {
        case .invalidArgument(let m), .shape(let m), .bufferTooSmall(let m), .notFinite(let m),
             .labelRange(let m), .unsupported(let m), .io(let m), .corrupt(let m),
             .cancelled(let m), .outOfMemory(let m):
            return m
        }
    }

    public var description: String { message }
}

/// The error for a row of outputs that came out NaN or Inf from finite inputs.
func nonFiniteOutputs(row: Int) -> GatedNetError {
    .notFinite("out: row \(row) came out NaN or Inf (the network's values overflow float32 for these inputs; scale them down)")
}

/// Checked product of sizes: throws instead of overflowing.
@inlinable
public func checkedCount(_ factors: Int..., what: String) throws -> Int {
    var total = 1
    for f in factors {
        guard f >= 0 else { throw GatedNetError.invalidArgument("\(what): negative size \(f)") }
        let (p, overflow) = total.multipliedReportingOverflow(by: f)
        guard !overflow else { throw GatedNetError.outOfMemory("\(what): size \(factors.map(String.init).joined(separator: " x ")) overflows") }
        total = p
    }
    return total
}
