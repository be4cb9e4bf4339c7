// Dropout whose mask is a pure function of (seed, step, global example index, site, element),
// so the masks do not depend on how a batch is split across ranks or threads, and the backward
// recomputes the mask instead of storing it.
//
// Keys: a 64-bit stream key per (seed, step, example, site) (SplitMix64 mixing, scalar), a 64-bit
// key per row (group g, row r) mixed from it, and per element a 32-bit hash of (row key, column c):
// two rounds of a multiply–xorshift mixer on 8 lanes at once (AVX2 has 32-bit lane multiplies, not
// 64-bit ones), whose top 24 bits are the uniform number compared with p.

/// Where dropout randomness comes from in one forward/backward pass.
public struct DropoutContext {
    /// Drop probability as `dropoutApply` uses it; 0 makes dropout the identity. The model's passes
    /// (BertEncoder, ClassifierHead) read it only as an on/off switch: when it is > 0 each site uses
    /// the model's own probability (config.json's dropout probabilities), whatever the value given.
    public var probability: Float
    public var seed: UInt64
    /// Optimizer step: a new mask every step.
    public var step: Int
    /// Global example index of each local example row (length = local batch).
    public var exampleIndex: [Int]

    public init(probability: Float, seed: UInt64, step: Int, exampleIndex: [Int]) {
        self.probability = probability
        self.seed = seed
        self.step = step
        self.exampleIndex = exampleIndex
    }

    /// No dropout (evaluation, or parity tests).
    public static func off(batch: Int) -> DropoutContext {
        DropoutContext(probability: 0, seed: 0, step: 0, exampleIndex: Array(0..<batch))
    }

    public var isActive: Bool { probability > 0 }
}

/// Dropout sites: each place in the network that draws its own mask.
public enum DropoutSite {
    public static let embeddings = 0
    public static func attentionProbs(layer: Int) -> Int { 1 + 3 * layer }
    public static func attentionOutput(layer: Int) -> Int { 2 + 3 * layer }
    public static func feedForwardOutput(layer: Int) -> Int { 3 + 3 * layer }
    public static let classifierInput = 1_000_000
    public static let classifierHidden = 1_000_001
}

/// The mask of one dropout site: for local example b, group g, row r, column c, the multiplier
/// 0 (dropped, probability p) or 1/(1 − p). Row keys do not depend on how long the batch was
/// padded, so a sequence gets the same mask in any batch and on any rank.
struct DropoutMask {
    let context: DropoutContext
    let site: Int
    /// An element is dropped when its 24-bit uniform integer is below this.
    let threshold: UInt32
    let scale: Float

    init(_ context: DropoutContext, site: Int) {
        self.context = context
        self.site = site
        let p = Double(context.probability)
        // u·2⁻²⁴ < p  ⇔  u < ⌈p·2²⁴⌉ for integer u.
        threshold = UInt32(min(16_777_216, max(0, (p * 16_777_216).rounded(.up))))
        scale = 1 / (1 - context.probability)
    }

    var isActive: Bool { context.probability > 0 }

    /// The key of row `r` in group `g` of local example `b`.
    @inline(__always)
    func rowKey(example b: Int, group g: Int = 0, row r: Int) -> UInt64 {
        let stream = CounterRandom.streamKey(seed: context.seed, step: context.step,
                                             example: context.exampleIndex[b], site: site)
        return CounterRandom.mix(stream &+ UInt64(truncatingIfNeeded: g &* 4096 &+ r) &* 0x9E37_79B9_7F4A_7C15)
    }

    /// Multipliers of columns c ..< c + 8 of the row with key `rowKey`.
    /// Integer lane arithmetic only: a SIMD mask from an integer compare fed to `replacing(with:where:)`
    /// is lowered lane by lane through the stack (measured: most of the attention's own time).
    @inline(__always)
    func multipliers(rowKey: UInt64, column c: Int) -> Vec8 {
        let u = unsafeBitCast(CounterRandom.hash8(rowKey: rowKey, first: UInt32(truncatingIfNeeded: c)) &>> 8,
                              to: SIMD8<Int32>.self)
        // u − threshold < 0 (both < 2²⁵) ⇔ dropped: the arithmetic shift makes all ones there.
        let dropped = (u &- Int32(bitPattern: threshold)) &>> 31
        return unsafeBitCast(SIMD8(repeating: scale.bitPattern) & ~unsafeBitCast(dropped, to: SIMD8<UInt32>.self),
                             to: Vec8.self)
    }

    /// row[c] *= multiplier, c < n.
    @inline(__always)
    func apply(_ row: UnsafeMutablePointer<Float>, count n: Int, rowKey: UInt64) {
        var c = 0
        while c + 8 <= n { store8(load8(row + c) * multipliers(rowKey: rowKey, column: c), row + c); c += 8 }
        if c < n {
            let m = multipliers(rowKey: rowKey, column: c)
            for j in 0..<(n - c) { row[c + j] *= m[j] }
        }
    }
}

/// In place: x[B, groups, rows, cols] ← x · mask / (1 − p), mask ~ Bernoulli(1 − p) keyed per
/// example, group, row and column (rows ≤ 4096). The same call is the backward on the gradient
/// (same keys → same mask).
public func dropoutApply(_ x: UnsafeMutablePointer<Float>, groups: Int = 1, rows: Int, cols: Int,
                         context: DropoutContext, site: Int) {
    guard context.isActive else { return }
    precondition(rows <= 4096, "dropout keys assume rows ≤ 4096")
    let mask = DropoutMask(context, site: site)
    let perExample = groups * rows
    parallelParts(context.exampleIndex.count * perExample, minPerPart: 16) { _, range in
        for line in range {
            let b = line / perExample, g = (line % perExample) / rows, r = line % rows
            mask.apply(x + line * cols, count: cols, rowKey: mask.rowKey(example: b, group: g, row: r))
        }
    }
}
