// Flat, 64-byte aligned Float storage. Parameters, gradients, AdamW moments and activations each
// live in one such allocation, addressed by offsets (see ParameterSet), so that the optimizer, the
// allreduce and the checkpoint are each one loop or one call over contiguous memory.
import Foundation

/// An owned, zero-initialised, 64-byte aligned buffer of `count` Floats.
///
/// Buffers of 1 MiB or more are fresh anonymous pages from `mmap`: the kernel zero-fills them on
/// first touch, so a buffer that is never written (gradients in an inference-only process, unused
/// capacity) costs no resident memory, and no start-up pass writes zeros.
public final class FloatBuffer {
    public let count: Int
    public let base: UnsafeMutablePointer<Float>
    private let mappedBytes: Int

    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer count must be non-negative")
        self.count = count
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        if bytes >= 1 << 20 {
            guard let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                  raw != MAP_FAILED else {
                fatalError("FloatBuffer: cannot map \(bytes) bytes")
            }
            mappedBytes = bytes
            base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        } else {
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
                fatalError("FloatBuffer: cannot allocate \(bytes) bytes")
            }
            mappedBytes = 0
            base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
            base.initialize(repeating: 0, count: max(count, 1))
        }
    }

    /// A copy of `values`.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { base.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit {
        if mappedBytes > 0 { munmap(base, mappedBytes) } else { free(base) }
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: count) }

    public func zero() { base.update(repeating: 0, count: count) }

    public func copy(from other: FloatBuffer) {
        precondition(other.count == count, "FloatBuffer.copy: size mismatch \(other.count) vs \(count)")
        base.update(from: other.base, count: count)
    }

    public func toArray() -> [Float] { Array(buffer) }

    public subscript(i: Int) -> Float {
        get { base[i] }
        set { base[i] = newValue }
    }
}

/// A scratch buffer that grows to the largest size requested and is reused between calls.
public final class ScratchBuffer {
    private(set) public var storage = FloatBuffer(count: 0)
    public init() {}
    /// A pointer to at least `count` Floats (contents unspecified unless `zeroed`).
    public func pointer(count: Int, zeroed: Bool = false) -> UnsafeMutablePointer<Float> {
        if storage.count < count { storage = FloatBuffer(count: count) }
        if zeroed { storage.base.update(repeating: 0, count: count) }
        return storage.base
    }
}
