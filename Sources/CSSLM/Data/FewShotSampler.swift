// Few-shot training sets: N examples per class drawn from the full training split, seeded (run i
// of the protocol uses sample seed i) with SplitMix64, so the same seed gives the same sample on
// every platform and every world size. A class with fewer than N examples takes all of them and is
// topped up by draws with replacement. The sample is written next to the run as JSONL with the
// original indices, so every result can be traced to the exact examples it was trained on.

import Foundation

/// The positions, in a source dataset, of one few-shot sample.
public struct FewShotSample: Equatable, Sendable {
    /// One drawn example.
    public struct Draw: Equatable, Sendable {
        /// Position in the source dataset's ``LabeledDataset/examples``.
        public var index: Int
        /// True for a top-up draw with replacement (its class had fewer than `perClass` examples).
        public var withReplacement: Bool
    }

    public var seed: UInt64
    public var perClass: Int
    /// Class by class (class 0 first), `perClass` draws each, in draw order.
    public var draws: [Draw]

    /// The drawn positions, in order.
    public var indices: [Int] { draws.map(\.index) }

    /// The sampled examples as a dataset (same labels as `source`).
    public func dataset(from source: LabeledDataset) -> LabeledDataset {
        source.subset(indices)
    }

    /// File name of the sample inside a run directory.
    public static let fileName = "fewshot_sample.jsonl"

    /// Writes the sample as JSONL, one draw a line:
    /// `{"index": 812, "label": "fresh", "line": 813, "replacement": false, "seed": 3, "text": "..."}`.
    /// It is itself a valid labelled JSONL file (`text`, `label`), readable with
    /// ``LabeledDataset/readJSONL(at:labels:)``. Written atomically.
    public func write(to url: URL, source: LabeledDataset) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var out = Data()
        for draw in draws {
            let example = source.examples[draw.index]
            let record = SampleRecord(index: draw.index, line: example.line,
                                      label: source.labels[example.label], text: example.text,
                                      aspect: example.aspect, replacement: draw.withReplacement,
                                      seed: seed)
            out.append(try encoder.encode(record))
            out.append(0x0A)
        }
        do {
            try writeAtomically(out, to: url)
        } catch {
            throw DataError.unwritable(file: url.path, reason: fileErrorReason(error, path: url.path))
        }
    }
}

private struct SampleRecord: Encodable {
    var index: Int
    var line: Int
    var label: String
    var text: String
    var aspect: String?
    var replacement: Bool
    var seed: UInt64
}

public enum FewShotSampler {
    /// Draws `perClass` examples of every class of `dataset` with `SplitMix64(seed: seed)`.
    ///
    /// Per class, in class order, from the class's examples in file order: when it has at least
    /// `perClass`, a partial Fisher-Yates shuffle picks `perClass` distinct ones; when it has fewer,
    /// all of them (shuffled) and then `perClass - count` draws with replacement.
    ///
    /// ```swift
    /// let sample = try FewShotSampler.sample(splits.train, perClass: 16, seed: UInt64(run))
    /// try sample.write(to: runDir.appendingPathComponent(FewShotSample.fileName), source: splits.train)
    /// let train = sample.dataset(from: splits.train)
    /// ```
    /// - Throws: ``DataError/classWithoutExamples(label:source:)`` when a class has no examples.
    public static func sample(_ dataset: LabeledDataset, perClass: Int, seed: UInt64) throws -> FewShotSample {
        precondition(perClass > 0, "perClass must be positive")
        var members = [[Int]](repeating: [], count: dataset.labels.count)
        for (i, example) in dataset.examples.enumerated() { members[example.label].append(i) }

        var rng = SplitMix64(seed: seed)
        var draws: [FewShotSample.Draw] = []
        draws.reserveCapacity(perClass * members.count)
        for (label, pool) in members.enumerated() {
            var pool = pool
            guard !pool.isEmpty else {
                throw DataError.classWithoutExamples(label: dataset.labels[label], source: dataset.source)
            }
            let distinct = min(perClass, pool.count)
            for i in 0..<distinct {
                pool.swapAt(i, i + rng.nextInt(below: pool.count - i))
                draws.append(.init(index: pool[i], withReplacement: false))
            }
            for _ in distinct..<perClass {
                draws.append(.init(index: pool[rng.nextInt(below: pool.count)], withReplacement: true))
            }
        }
        return FewShotSample(seed: seed, perClass: perClass, draws: draws)
    }
}
