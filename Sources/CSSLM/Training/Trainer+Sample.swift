// What the few-shot sample can be drawn from, said before any training: an empty train split is
// named as such (it used to surface as a problem of dev.jsonl's labels), and a perClass that no
// class reaches is refused (it used to draw thousands of repeats of a few hundred lines silently).
import Foundation
import Logging

extension Trainer {
    /// Refuses an empty train split and a perClass beyond the largest class; warns (naming the
    /// classes) when some classes are topped up with repeats, the sampler's documented behaviour.
    static func checkSampleSource(_ s: DatasetSplits, perClass: Int, data: String, logger: Logger?) throws {
        let source = s.train.source
        guard !s.train.examples.isEmpty else {
            throw CSSLMError("\(source): no training examples", hint: "the few-shot sample is drawn from the train split of \(data)")
        }
        var counts = [Int](repeating: 0, count: s.labels.count)
        for e in s.train.examples { counts[e.label] += 1 }
        let largest = counts.max() ?? 0
        if perClass > largest {
            throw CSSLMError("run config: field 'perClass' (--per-class) is \(perClass), but the largest class of \(source) has \(largest) examples",
                             hint: "lower --per-class to at most \(largest); smaller classes are topped up with repeats")
        }
        let short = counts.indices.filter { counts[$0] > 0 && counts[$0] < perClass }
        if !short.isEmpty {
            let names = short.map { "'\(s.labels[$0])' (\(counts[$0]))" }.joined(separator: ", ")
            logger?.warning("data: \(source): class(es) \(names) have fewer than perClass = \(perClass) examples; they are topped up with repeats")
        }
    }
}
