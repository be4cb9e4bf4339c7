// The few-shot sampler: seeded and deterministic (pinned against an independent Python
// implementation of SplitMix64 + Lemire's bounded draw + partial Fisher-Yates), balanced, topped
// up with replacement for small classes, and traceable through the sample file it writes.

import Foundation
import XCTest
@testable import CSSLM

final class FewShotSamplerTests: XCTestCase {
    /// 26 examples: class 0 has 16, class 1 has 8, class 2 has 2 (indices 24 and 25).
    private static let labelOfIndex = (0..<26).map { i in i >= 24 ? 2 : (i % 3 == 2 ? 1 : 0) }

    private static func dataset() -> LabeledDataset {
        LabeledDataset(labels: ["a", "b", "c"],
                       examples: labelOfIndex.enumerated().map { i, label in
                           LabeledExample(text: "text \(i)", label: label, line: i + 1)
                       },
                       source: "memory")
    }

    func testMatchesIndependentReferenceImplementation() throws {
        // Expected draws from a separate Python implementation of the algorithm in the docs.
        let expected: [UInt64: [Int]] = [
            0: [21, 10, 3, 22, 2, 11, 5, 20, 24, 25, 24, 25],
            1: [13, 18, 22, 12, 11, 20, 23, 17, 24, 25, 24, 25],
            7: [9, 1, 21, 15, 11, 8, 14, 5, 24, 25, 24, 25],
        ]
        for (seed, indices) in expected {
            let sample = try FewShotSampler.sample(Self.dataset(), perClass: 4, seed: seed)
            XCTAssertEqual(sample.indices, indices, "seed \(seed)")
            XCTAssertEqual(sample.draws.map(\.withReplacement), Array(repeating: false, count: 10) + [true, true])
        }
        // The generator itself, against the same reference.
        var rng = SplitMix64(seed: 42)
        XCTAssertEqual((0..<3).map { _ in rng.next() },
                       [13_679_457_532_755_275_413, 2_949_826_092_126_892_291, 5_139_283_748_462_763_858])
        rng = SplitMix64(seed: 42)
        XCTAssertEqual((0..<10).map { _ in rng.nextInt(below: 10) }, [7, 1, 2, 3, 0, 8, 2, 8, 3, 6])
    }

    func testSameSeedGivesSameSampleAndSeedsDiffer() throws {
        let data = Self.dataset()
        let samples = try (0..<5).map { try FewShotSampler.sample(data, perClass: 3, seed: UInt64($0)) }
        XCTAssertEqual(samples[2], try FewShotSampler.sample(data, perClass: 3, seed: 2))
        XCTAssertEqual(Set(samples.map(\.indices)).count, 5, "each run seed draws its own sample")
    }

    func testEveryClassGetsExactlyNDistinctExamplesOfItsOwn() throws {
        let data = Self.dataset()
        for seed: UInt64 in 0..<20 {
            let sample = try FewShotSampler.sample(data, perClass: 8, seed: seed)
            let drawn = sample.dataset(from: data)
            XCTAssertEqual(drawn.classCounts, [8, 8, 8])
            XCTAssertEqual(drawn.labels, data.labels)
            for label in 0..<2 {
                let indices = sample.draws.filter { data.examples[$0.index].label == label }.map(\.index)
                XCTAssertEqual(Set(indices).count, 8, "class \(label) has enough: no repeats")
            }
        }
    }

    func testSmallClassTakesAllItsExamplesThenTopsUpWithReplacement() throws {
        let data = Self.dataset()
        let sample = try FewShotSampler.sample(data, perClass: 5, seed: 3)
        let classC = sample.draws.filter { data.examples[$0.index].label == 2 }
        XCTAssertEqual(classC.count, 5)
        XCTAssertEqual(Set(classC.prefix(2).map(\.index)), [24, 25], "all of the class first")
        XCTAssertEqual(classC.map(\.withReplacement), [false, false, true, true, true])
        XCTAssertTrue(classC.allSatisfy { [24, 25].contains($0.index) })
        // Over many seeds both members are drawn in top-ups (not always the same one).
        var toppedUp = Set<Int>()
        for seed: UInt64 in 0..<20 {
            let s = try FewShotSampler.sample(data, perClass: 5, seed: seed)
            toppedUp.formUnion(s.draws.filter(\.withReplacement).map(\.index))
        }
        XCTAssertEqual(toppedUp, [24, 25])
    }

    func testClassWithoutExamplesIsAnError() {
        let data = LabeledDataset(labels: ["a", "b"], examples: [LabeledExample(text: "x", label: 0)],
                                  source: "train.jsonl")
        XCTAssertThrowsError(try FewShotSampler.sample(data, perClass: 2, seed: 0)) { error in
            XCTAssertEqual(error as? DataError, .classWithoutExamples(label: "b", source: "train.jsonl"))
        }
    }

    func testSampleFileTracesEveryDrawToItsSourceExampleAndReadsBackAsJSONL() throws {
        let data = Self.dataset()
        let sample = try FewShotSampler.sample(data, perClass: 4, seed: 1)
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("csslm-fewshot-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent(FewShotSample.fileName)
        try sample.write(to: url, source: data)

        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 12)
        for (line, draw) in zip(lines, sample.draws) {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            XCTAssertEqual(object["index"] as? Int, draw.index)
            XCTAssertEqual(object["line"] as? Int, draw.index + 1)
            XCTAssertEqual(object["text"] as? String, data.examples[draw.index].text)
            XCTAssertEqual(object["replacement"] as? Bool, draw.withReplacement)
            XCTAssertEqual(object["seed"] as? Int, 1)
        }
        let (reread, report) = try LabeledDataset.readJSONL(at: url, labels: data.labels)
        XCTAssertEqual(reread.examples.map(\.text), sample.dataset(from: data).examples.map(\.text))
        XCTAssertEqual(reread.examples.map(\.label), sample.dataset(from: data).examples.map(\.label))
        XCTAssertEqual(report.duplicates.count, 2, "the two top-up draws repeat texts and are reported")
    }
}
