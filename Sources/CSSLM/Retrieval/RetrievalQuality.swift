// How right stage 3's retrieval is, measured where it can be: the pool holds the task's unlabelled
// training texts, whose true labels are known (never used to train). A drawn sentence takes its
// query's label as pseudo-label; precision is the share of in-domain drawn sentences whose true
// label equals it. Distinct sentences per class tell whether retrieval is class-specific or returns
// the same few sentences for everyone (the faithful scorer's failure, docs/method.md).
import Foundation

public struct RetrievalQuality: Codable, Equatable, Sendable {
    /// Sentences drawn into augmented sets.
    public var drawn = 0
    /// Of those, the ones whose true label is known (the task's own unlabelled texts).
    public var inDomain = 0
    /// Of those, the ones whose pseudo-label is their true label.
    public var correct = 0
    /// Distinct sentences drawn for queries of each class.
    public var distinctPerClass: [Int] = []
    /// The sentences behind `distinctPerClass` (checkpoints carry them: TrainerProgress).
    var seen: [Set<Int>] = []

    enum CodingKeys: String, CodingKey { case drawn, inDomain, correct, distinctPerClass }

    public init() {}

    /// Share of in-domain drawn sentences with the right pseudo-label (nil before any).
    public var precision: Double? { inDomain > 0 ? Double(correct) / Double(inDomain) : nil }
    /// Share of drawn sentences that are in-domain (nil before any).
    public var inDomainFraction: Double? { drawn > 0 ? Double(inDomain) / Double(drawn) : nil }

    /// Counts one step's draws; returns that step's (in-domain, correct) counts.
    @discardableResult
    public mutating func add(_ retrievals: [QueryRetrieval], queryLabels: [Int], poolLabels: [Int?],
                             classes: Int) -> (inDomain: Int, correct: Int) {
        if seen.count < classes {
            seen += Array(repeating: Set<Int>(), count: classes - seen.count)
            distinctPerClass += Array(repeating: 0, count: classes - distinctPerClass.count)
        }
        var stepInDomain = 0, stepCorrect = 0
        for (retrieval, y) in zip(retrievals, queryLabels) {
            for d in retrieval.drawn {
                drawn += 1
                seen[y].insert(d.document)
                guard d.document < poolLabels.count, let truth = poolLabels[d.document] else { continue }
                stepInDomain += 1
                if truth == y { stepCorrect += 1 }
            }
        }
        inDomain += stepInDomain
        correct += stepCorrect
        distinctPerClass = seen.map(\.count)
        return (stepInDomain, stepCorrect)
    }

    public var summary: String {
        let p = precision.map { String(format: "%.1f %%", $0 * 100) } ?? "–"
        let f = inDomainFraction.map { String(format: "%.1f %%", $0 * 100) } ?? "–"
        return "pseudo-label precision \(p) (\(correct) of \(inDomain) in-domain drawn sentences), in-domain \(f) of \(drawn) drawn, "
            + "distinct sentences per class \(distinctPerClass)"
    }
}
