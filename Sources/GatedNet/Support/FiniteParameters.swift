/// The one rule for parameter values that enter a network from outside (`set_weights`,
/// `set_tensor`, a loaded file or buffer): every value is finite. NaN or ±Inf weights would
/// make every output NaN, so they are refused where they arrive. Throws `.notFinite` naming
/// `name` and the first offending value.
public func requireFiniteParameters(_ p: UnsafePointer<Float>, count: Int, _ name: String) throws {
    guard !isAllFinite(p, count) else { return }
    let i = (0..<count).first { !p[$0].isFinite } ?? 0
    throw GatedNetError.notFinite("\(name): contains NaN or Inf (value \(i) is \(p[i]))")
}
