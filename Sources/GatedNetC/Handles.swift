import CGatedNetABI
import GatedNet
import Glibc

/// The box behind a `gn_network` handle.
final class NetworkBox {
    let network: GatedNetwork
    init(_ network: GatedNetwork) { self.network = network }
}

/// Live handles. A handle is not a pointer but an id: slot number + 1 in its low 32 bits and
/// the slot's generation in its high 32 bits. Freeing a handle bumps its slot's generation, so
/// a freed handle stays invalid after its slot is reused (until that one slot has been reused
/// 2^32 times); a foreign pointer names no slot or a wrong generation. Every handle type of
/// the C API goes through this one registry, and the object's type is checked on each lookup.
///
/// A slot also records the threads inside a call on it (see `CallScope`): a call on a handle
/// made by a thread that is already inside another call on it (from a progress or training
/// callback) fails with GN_ERR_BUSY.
enum Handles {
    private struct Slot {
        var generation: UInt32 = 1
        var box: AnyObject? = nil
        /// Threads inside a call on this handle (usually none or one).
        var activeThreads: [pthread_t] = []
    }

    private static let mutex: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()
    nonisolated(unsafe) private static var slots: [Slot] = []
    nonisolated(unsafe) private static var freeSlots: [Int] = []

    private static func id(slot: Int, generation: UInt32) -> OpaquePointer {
        OpaquePointer(bitPattern: UInt(generation) << 32 | UInt(slot + 1))!
    }

    /// (slot, generation) named by a handle, if its slot exists (the generation is not checked).
    private static func decode(_ h: OpaquePointer) -> (slot: Int, generation: UInt32)? {
        let bits = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(h)))
        let slot = Int(bits & 0xFFFF_FFFF) - 1
        guard slot >= 0 && slot < slots.count else { return nil }
        return (slot, UInt32(truncatingIfNeeded: bits >> 32))
    }

    /// Register a box object and return its handle (the box stays alive until `release`).
    static func register(box: AnyObject) -> OpaquePointer {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        let s: Int
        if let reused = freeSlots.popLast() {
            s = reused
        } else {
            s = slots.count
            slots.append(Slot())
        }
        slots[s].box = box
        return id(slot: s, generation: slots[s].generation)
    }

    static func register(_ net: GatedNetwork) -> OpaquePointer { register(box: NetworkBox(net)) }

    /// The live box of type `T` behind `handle`; `kind` names the C type in messages. Inside a
    /// call (`guarded`), marks the calling thread as inside a call on this handle until the
    /// call ends, and throws `.busy` if it already was, from an enclosing call.
    static func lookup<T: AnyObject>(_ handle: OpaquePointer?, as _: T.Type, kind: String, _ name: String) throws -> T {
        guard let h = handle else { throw BoundaryError.nullPointer("\(name): is NULL") }
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard let (s, generation) = decode(h), slots[s].generation == generation, let box = slots[s].box else {
            throw BoundaryError.invalidHandle("\(name): not a live \(kind) (freed, or not a handle)")
        }
        guard let typed = box as? T else { throw BoundaryError.invalidHandle("\(name): a handle of another kind, not a \(kind)") }
        if let scope = CallScope.current {
            let me = pthread_self()
            if slots[s].activeThreads.contains(where: { pthread_equal($0, me) != 0 }) {
                guard scope.holds(slot: s, generation: generation) else {
                    throw BoundaryError.busy("\(name): this \(kind) is already in a call on this thread (a call from inside one of its own callbacks)")
                }
            } else {
                slots[s].activeThreads.append(me)
                scope.entered(slot: s, generation: generation)
            }
        }
        return typed
    }

    static func network(_ handle: OpaquePointer?, _ name: String) throws -> GatedNetwork {
        try lookup(handle, as: NetworkBox.self, kind: "gn_network", name).network
    }

    /// End the calling thread's use of the slots a call entered (slots freed since are skipped).
    static func leave(_ entered: [(slot: Int, generation: UInt32)]) {
        let me = pthread_self()
        pthread_mutex_lock(mutex)
        for (s, generation) in entered where slots[s].generation == generation {
            if let i = slots[s].activeThreads.firstIndex(where: { pthread_equal($0, me) != 0 }) {
                slots[s].activeThreads.remove(at: i)
            }
        }
        pthread_mutex_unlock(mutex)
    }

    /// Unregister a handle of type `T` (ignores NULL, unknown or stale handles and other kinds).
    /// A call still running on it (the handle freed from its own callback) keeps its object
    /// until it returns.
    static func release<T: AnyObject>(_ handle: OpaquePointer?, as _: T.Type) {
        guard let h = handle else { return }
        var box: AnyObject? = nil  // released after unlocking: a deinit never runs under the lock
        pthread_mutex_lock(mutex)
        if let (s, generation) = decode(h), slots[s].generation == generation, slots[s].box is T {
            box = slots[s].box
            slots[s].box = nil
            slots[s].activeThreads = []
            slots[s].generation = slots[s].generation &+ 1 == 0 ? 1 : slots[s].generation &+ 1
            freeSlots.append(s)
        }
        pthread_mutex_unlock(mutex)
        withExtendedLifetime(box) {}
    }
}

/// The handles one exported call (one `guarded` body) has entered, on the calling thread.
/// Calls nest when a callback calls into the library; each level has its own scope.
final class CallScope {
    private var handles: [(slot: Int, generation: UInt32)] = []
    private let outer: CallScope?

    private init(outer: CallScope?) { self.outer = outer }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)  // scopes are popped by `run`, never left behind
        return key
    }()

    /// The innermost scope of the calling thread, if it is inside a call.
    static var current: CallScope? {
        guard let p = pthread_getspecific(key) else { return nil }
        return Unmanaged<CallScope>.fromOpaque(p).takeUnretainedValue()
    }

    /// Run `body` as one call: handles it looks up are marked in use by this thread until it ends.
    static func run<R>(_ body: () throws -> R) rethrows -> R {
        let scope = CallScope(outer: current)
        pthread_setspecific(key, Unmanaged.passRetained(scope).toOpaque())
        defer {
            if !scope.handles.isEmpty { Handles.leave(scope.handles) }
            pthread_setspecific(key, scope.outer.map { Unmanaged.passUnretained($0).toOpaque() })
            Unmanaged.passUnretained(scope).release()
        }
        return try body()
    }

    func holds(slot: Int, generation: UInt32) -> Bool {
        handles.contains { $0.slot == slot && $0.generation == generation }
    }

    func entered(slot: Int, generation: UInt32) { handles.append((slot, generation)) }
}
