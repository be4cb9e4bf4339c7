// Dropout whose mask is a pure function of (seed, step, global example index, site, element),
// so the masks do not depend on how a batch is split across ranks, and the backward recomputes
// the mask instead of storing it.

/// Where dropout randomness comes from in one forward/backward pass.
public struct DropoutContext {
    /// Drop probability; 0 (or `training == false`) makes dropout the identity.
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

/// In place: x[B, groups, rows, cols] ← x · mask / (1 − p), mask ~ Bernoulli(1 − p) keyed per
/// example. An element's key index is (g·4096 + r)·4096 + c: it does not depend on how long the
/// batch was padded, so a sequence gets the same mask in any batch and on any rank.
/// The same call is the backward on the gradient (same keys → same mask).
public func dropoutApply(_ x: UnsafeMutablePointer<Float>, groups: Int = 1, rows: Int, cols: Int,
                         context: DropoutContext, site: Int) {
    let p = context.probability
    guard p > 0 else { return }
    precondition(rows <= 4096 && cols <= 4096, "dropout keys assume rows and cols ≤ 4096")
    let scale = 1 / (1 - p)
    let perExample = groups * rows * cols
    for (b, example) in context.exampleIndex.enumerated() {
        let key = CounterRandom.streamKey(seed: context.seed, step: context.step, example: example, site: site)
        var v = x + b * perExample
        for g in 0..<groups {
            for r in 0..<rows {
                let base = (g * 4096 + r) * 4096
                for c in 0..<cols {
                    v[c] = CounterRandom.uniform(key: key, index: base + c) < p ? 0 : v[c] * scale
                }
                v += cols
            }
        }
    }
}
