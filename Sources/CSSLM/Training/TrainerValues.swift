// The values the trainer hands around: a finished run's result, a tokenised split, a stage's best
// evaluation, one step's inputs and one rank's share of its losses.
import Foundation

/// What a finished run reports (also written to `result.json`).
public struct RunResult: Codable, Equatable, Sendable {
    public var method: String
    public var dataset: String
    public var sampleSeed: UInt64
    public var bestEpoch: Int
    /// The global step after the best dev evaluation (absent in results of older versions).
    public var bestStep: Int?
    public var dev: ClassificationMetrics
    public var test: ClassificationMetrics
    public var steps: Int
    public var seconds: Double
    /// Stage 3 of csslm/selftrain: how right the pseudo-labels of the retrieved sentences were.
    public var retrieval: RetrievalQuality?
}

/// A labelled split tokenised once: one Encoding per example.
struct EncodedSplit {
    var encodings: [Encoding]
    var labels: [Int]
    var count: Int { labels.count }
}

/// The best epoch of a stage, and the global step after its dev evaluation.
struct StageBest: Codable, Equatable {
    var epoch: Int
    var step: Int
    var dev: ClassificationMetrics
    var test: ClassificationMetrics
}

/// One step's inputs as the step functions see them.
struct StepInput {
    var step: Int
    var epoch: Int
    var isLastEpoch: Bool
    var global: GlobalBatch
    var local: LocalBatch
    var rowsPerRank: [Int]
}

/// This rank's shares of the step's losses (they sum to the global loss over ranks).
struct StepLosses {
    var total: Double { parts.reduce(0, +) }
    /// Named parts, in the order of `names`.
    var parts: [Double]
    /// SupCon anchors of the global set without a positive, masked out of the step's losses.
    var maskedAnchors = 0
    /// More counts for the step's metrics.jsonl line (e.g. the retrieval's graded pseudo-labels).
    var record: [String: Int] = [:]
}
