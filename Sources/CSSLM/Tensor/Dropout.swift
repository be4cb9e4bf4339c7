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

/// In place: x[B, perExample] ← x · mask / (1 − p), mask ~ Bernoulli(1 − p) keyed per example.
/// The same call is the backward on the gradient (same keys → same mask).
public func dropoutApply(_ x: UnsafeMutablePointer<Float>, perExample: Int,
                         context: DropoutContext, site: Int) {
    let p = context.probability
    guard p > 0 else { return }
    let scale = 1 / (1 - p)
    for (b, example) in context.exampleIndex.enumerated() {
        let key = CounterRandom.streamKey(seed: context.seed, step: context.step, example: example, site: site)
        let row = x + b * perExample
        for i in 0..<perExample {
            row[i] = CounterRandom.uniform(key: key, index: i) < p ? 0 : row[i] * scale
        }
    }
}
