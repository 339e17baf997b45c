/// A fixed-size float32 buffer with reference semantics, owning its memory. The engine keeps
/// weights and workspaces in these so hot loops and BLAS calls get stable pointers without
/// copy-on-write checks. Copy explicitly with `copy()`.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(count: Int, repeating value: Float = 0) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: value, count: max(count, 1))
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    deinit { pointer.deallocate() }

    public func copy() -> FloatBuffer {
        let c = FloatBuffer(count: count)
        c.pointer.update(from: pointer, count: count)
        return c
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    public func fill(_ v: Float) { pointer.update(repeating: v, count: count) }

    public func assign(from other: FloatBuffer) {
        pointer.update(from: other.pointer, count: Swift.min(count, other.count))
    }

    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    public func isBitIdentical(to other: FloatBuffer) -> Bool {
        count == other.count && memcmp(pointer, other.pointer, count * 4) == 0
    }
}

import Glibc
