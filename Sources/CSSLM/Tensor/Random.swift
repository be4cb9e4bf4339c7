// Seeded random numbers. Two kinds, both explicit values (never the system RNG):
// - `SplitMix64`: a sequential generator whose whole state is one UInt64, seeded afresh from a key
//   at every use (so never saved), for permutations, few-shot samples and retrieval draws.
// - `CounterRandom`: a stateless, counter-based generator: the number for a key
//   (seed, step, global example index, site, element) is a pure function of that key, so dropout
//   masks do not depend on the world size, on the order of work, or on anything saved.

/// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state advanced by a Weyl constant and mixed.
public struct SplitMix64: RandomNumberGenerator, Equatable, Codable, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return CounterRandom.mix(state)
    }

    /// A uniform Float in [0, 1) with 24 random bits.
    @inlinable
    public mutating func nextUniform() -> Float {
        Float(next() >> 40) * 0x1p-24
    }

    /// A uniform integer in 0..<bound (bound > 0), without modulo bias.
    @inlinable
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "bound must be positive")
        return Int(next(upperBound: UInt64(bound)))
    }
}

/// Counter-based randomness: every number is a pure function of its key (see `DropoutMask`).
public enum CounterRandom {
    /// The SplitMix64 finaliser: a bijective 64-bit mix with full avalanche.
    @inlinable
    public static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// One 64-bit stream key from (seed, step, global example index, site).
    @inlinable
    public static func streamKey(seed: UInt64, step: Int, example: Int, site: Int) -> UInt64 {
        var k = mix(seed ^ 0x5EED_5EED_5EED_5EED)
        k = mix(k ^ UInt64(truncatingIfNeeded: step))
        k = mix(k ^ UInt64(truncatingIfNeeded: example) &* 0x9E37_79B9_7F4A_7C15)
        k = mix(k ^ UInt64(truncatingIfNeeded: site) &* 0xD1B5_4A32_D192_ED03)
        return k
    }

    /// 32-bit hashes of columns first ..< first + 8 of the row with key `rowKey`: two rounds of a
    /// multiply–xorshift mixer (the constants of Wellons' lowbias32), keyed by the key's halves.
    @inline(__always)
    static func hash8(rowKey: UInt64, first: UInt32) -> SIMD8<UInt32> {
        @inline(__always) func round(_ v: SIMD8<UInt32>) -> SIMD8<UInt32> {
            var x = v
            x ^= x &>> 16; x &*= 0x7FEB_352D
            x ^= x &>> 15; x &*= 0x846C_A68B
            return x ^ (x &>> 16)
        }
        let lanes = SIMD8<UInt32>(0, 1, 2, 3, 4, 5, 6, 7) &+ first
        let x = round(lanes &* 0x9E37_79B9 ^ SIMD8(repeating: UInt32(truncatingIfNeeded: rowKey)))
        return round(x ^ SIMD8(repeating: UInt32(truncatingIfNeeded: rowKey >> 32)))
    }
}
