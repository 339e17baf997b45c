import CKernels

/// A dense row-major float32 matrix. Value type (copy on write through its array).
public struct Matrix: Equatable, Sendable {
    public private(set) var rows: Int
    public private(set) var cols: Int
    public var storage: [Float]

    public init(rows: Int, cols: Int, repeating value: Float = 0) {
        self.rows = rows
        self.cols = cols
        self.storage = [Float](repeating: value, count: rows * cols)
    }

    /// Wraps `storage` (count must be rows * cols).
    public init(rows: Int, cols: Int, storage: [Float]) throws {
        guard storage.count == rows * cols else {
            throw GatedNetError.shape("matrix storage: got \(storage.count) values, need \(rows) x \(cols)")
        }
        self.rows = rows
        self.cols = cols
        self.storage = storage
    }

    public var count: Int { rows * cols }

    @inlinable
    public subscript(r: Int, c: Int) -> Float {
        get { storage[r * cols + c] }
        set { storage[r * cols + c] = newValue }
    }

    /// Reshape to a new row count, keeping the column count; contents become unspecified
    /// only past the old size (zero filled when growing).
    public mutating func resize(rows newRows: Int) {
        if newRows * cols != storage.count {
            storage = [Float](repeating: 0, count: newRows * cols)
        }
        rows = newRows
    }

    public var allFinite: Bool { storage.allFinite }
}

extension Array where Element == Float {
    var allFinite: Bool {
        withUnsafeBufferPointer { isAllFinite($0.baseAddress!, $0.count) }
    }
}

/// True when no value is NaN or ±Inf.
public func isAllFinite(_ p: UnsafePointer<Float>, _ count: Int) -> Bool {
    gnk_all_finite(p, count) != 0
}
