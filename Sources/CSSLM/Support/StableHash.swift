// 64-bit FNV-1a, the hash csslm uses wherever a value must hash the same in every process, rank
// and version (Swift's Hasher is seeded per process): stage seeds from stage names, the gradient
// layout fingerprint compared across ranks, and the constants of the corpus index's checksum.
/// 64-bit FNV-1a over bytes.
///
/// ```swift
/// var h = FNV1a()
/// h.add(bytes: "init".utf8)
/// h.add(42)            // an Int as its 8 little-endian bytes
/// let key = h.value
/// ```
public struct FNV1a {
    public static let offsetBasis: UInt64 = 0xCBF2_9CE4_8422_2325
    public static let prime: UInt64 = 0x0000_0100_0000_01B3

    public private(set) var value = FNV1a.offsetBasis

    public init() {}

    public mutating func add(byte: UInt8) { value = (value ^ UInt64(byte)) &* Self.prime }

    public mutating func add<Bytes: Sequence>(bytes: Bytes) where Bytes.Element == UInt8 {
        for b in bytes { add(byte: b) }
    }

    /// Adds `x` as its 8 little-endian bytes.
    public mutating func add(_ x: Int) {
        var v = UInt64(bitPattern: Int64(x))
        for _ in 0..<8 {
            add(byte: UInt8(v & 0xFF))
            v >>= 8
        }
    }
}
