// One step of stage-3 retrieval: score every query against the pool, keep each query's top K by a
// partial selection (a K-element heap, O(N log K), no sort of the pool), then draw K positions with
// replacement from the top K (docs/method.md#stages). The draw vector is ONE per step, shared by all
// queries, and a pure function of (seed, step): every rank computes the same one without any
// communication (seed and step are already the same everywhere), which is how "rank 0 fixes the
// draws" holds at no cost. Retrieved documents take their query's label as pseudo-label.
import Foundation

/// One retrieved document of one query.
public struct RetrievedDocument: Equatable, Codable, Sendable {
    /// Index in the pool.
    public var document: Int
    public var score: Float
    /// Its position in the query's top K (0 = best).
    public var rank: Int
}

/// What one query retrieved in one step.
public struct QueryRetrieval: Equatable, Sendable {
    /// The top K, best first.
    public var top: [RetrievedDocument]
    /// The K documents drawn (with replacement) from `top` by the step's draw vector: the
    /// documents that join the augmented set.
    public var drawn: [RetrievedDocument]
}

/// Indices of the `k` best of `scores`, best first. Higher scores rank first; equal scores rank by
/// lower index; NaN ranks below every number. Returns all indices, ranked, when k ≥ count.
public func topK(_ scores: UnsafeBufferPointer<Float>, k: Int) -> [Int] {
    precondition(k >= 0, "k must not be negative")
    let n = scores.count, m = min(k, n)
    guard m > 0 else { return [] }
    @inline(__always) func key(_ i: Int) -> Float { scores[i].isNaN ? -.infinity : scores[i] }
    /// i ranks before j.
    @inline(__always) func before(_ i: Int, _ j: Int) -> Bool {
        let a = key(i), b = key(j)
        return a > b || (a == b && i < j)
    }
    // A heap of the m best so far with the worst at the root.
    var heap = Array(0..<m)
    func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var worst = i
            if l < m && before(heap[worst], heap[l]) { worst = l }
            if r < m && before(heap[worst], heap[r]) { worst = r }
            if worst == i { return }
            heap.swapAt(i, worst)
            i = worst
        }
    }
    for i in stride(from: m / 2 - 1, through: 0, by: -1) { siftDown(i) }
    if m < n {
        var threshold = key(heap[0])
        for i in m..<n {
            // A later index needs a strictly higher score to pass the current worst.
            let s = key(i)
            guard s > threshold else { continue }
            heap[0] = i
            siftDown(0)
            threshold = key(heap[0])
        }
    }
    return heap.sorted(by: before)
}

/// The step's draw vector.
public enum RetrievalDraws {
    /// The CounterRandom site of retrieval draws (distinct from dropout's and the sampler's).
    public static let site = 0x5245_5452

    /// `count` positions in 0..<available, drawn uniformly with replacement: a pure function of
    /// (seed, step, count, available), identical on every rank without communication.
    public static func positions(seed: UInt64, step: Int, count: Int, available: Int) -> [Int] {
        precondition(count >= 0 && available > 0, "draws need a non-empty top list")
        var rng = SplitMix64(seed: CounterRandom.streamKey(seed: seed, step: step, example: 0, site: site))
        return (0..<count).map { _ in rng.nextInt(below: available) }
    }
}

/// Retrieval for every query of `queries`: top `k` by `scorer`, then `k` draws with replacement
/// from them with the step's draw vector. Run it on the GLOBAL batch's queries (their features
/// gathered) on every rank: every rank then holds the whole augmented set, bit for bit the same.
///
/// ```swift
/// let retrievals = try retrieve(queries, scorer: scorer, k: 16, seed: config.seed, step: step)
/// let m = AugmentedSet(queryLabels: queries.labels, retrievals: retrievals)
/// ```
public func retrieve(_ queries: QueryFeatures, scorer: RetrievalScorer, k: Int, seed: UInt64, step: Int) throws -> [QueryRetrieval] {
    guard k > 0 else { throw CSSLMError("retrieval needs K > 0, got \(k)") }
    let n = scorer.documentCount
    guard n > 0 else {
        throw CSSLMError("the retrieval pool is empty", hint: "check the corpus path and the minimum token count of the pool")
    }
    var scores = [Float](repeating: 0, count: queries.count * n)
    scores.withUnsafeMutableBufferPointer { scorer.scores(queries, into: $0.baseAddress!) }
    let draws = RetrievalDraws.positions(seed: seed, step: step, count: k, available: min(k, n))
    return scores.withUnsafeBufferPointer { all in
        (0..<queries.count).map { b in
            let row = UnsafeBufferPointer(rebasing: all[(b * n)..<((b + 1) * n)])
            let top = topK(row, k: k).enumerated().map { RetrievedDocument(document: $1, score: row[$1], rank: $0) }
            return QueryRetrieval(top: top, drawn: draws.map { top[$0] })
        }
    }
}

/// How much the top-K lists of queries with DIFFERENT labels share: the mean over such pairs of
/// |top_i ∩ top_j| / K, in [0, 1] (nil without such a pair). Near 1 means the retrieval ignores the
/// query's class (the known limitation of the pair-head scorer); log it per step to compare scorers.
public func crossClassOverlap(_ retrievals: [QueryRetrieval], labels: [Int]) -> Double? {
    precondition(retrievals.count == labels.count, "one label per retrieval")
    let sets = retrievals.map { Set($0.top.map(\.document)) }
    var total = 0.0, pairs = 0
    for i in sets.indices {
        for j in sets.indices where j > i && labels[i] != labels[j] {
            let size = max(sets[i].count, sets[j].count)
            total += size > 0 ? Double(sets[i].intersection(sets[j]).count) / Double(size) : 0
            pairs += 1
        }
    }
    return pairs > 0 ? total / Double(pairs) : nil
}
