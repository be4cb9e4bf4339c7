// `csslm experiment`: the mean ± population std of the table (checked against Python's
// statistics.pstdev), the marked section of a results file, and the grid end to end through the
// tool — each cell's numbers equal to its runs' own result.json, and an interrupted experiment
// continuing without redoing finished runs.
import Foundation
import XCTest
@testable import CSSLM

final class ExperimentTests: XCTestCase {
    /// Reference: python3 -c "import statistics as s; v=[.566,.548,.602,.59,.571]; print(s.mean(v), s.pstdev(v))"
    /// → 0.5754 0.018863721796082537 (population std: the sample std would be 0.02109).
    func testMeanAndPopulationStdMatchPython() {
        let m = MeanStd([0.566, 0.548, 0.602, 0.59, 0.571])
        XCTAssertEqual(m.mean, 0.5754, accuracy: 1e-12)
        XCTAssertEqual(m.std, 0.018863721796082537, accuracy: 1e-12)
        XCTAssertEqual(m.percent, "57.5 ± 1.9")
        XCTAssertEqual(MeanStd([0.8, 0.8]).std, 0)
        XCTAssertEqual(MeanStd([]).percent, "–")
    }

    func testTheTableGoesBetweenTheMarkersAndReplacesAnEarlierOne() {
        let doc = "# Results\n\nintro\n"
        let once = ExperimentTable.replacingSection(in: doc, with: "table 1")
        XCTAssertEqual(once, "# Results\n\nintro\n\n\(ExperimentTable.beginMarker)\ntable 1\n\(ExperimentTable.endMarker)\n")
        let twice = ExperimentTable.replacingSection(in: once + "outro\n", with: "table 2")
        XCTAssertEqual(twice, "# Results\n\nintro\n\n\(ExperimentTable.beginMarker)\ntable 2\n\(ExperimentTable.endMarker)\noutro\n")
    }

    func testMethodNamesParseAndUnknownOnesAreRefused() throws {
        XCTAssertEqual(try ExperimentMethod(parsing: "csslm-query"), ExperimentMethod(method: .csslm, retriever: .query))
        XCTAssertEqual(try ExperimentMethod(parsing: "scl").description, "scl")
        XCTAssertThrowsError(try ExperimentMethod(parsing: "css-lm")) { error in
            XCTAssertTrue("\(error)".contains("unknown method 'css-lm'"), "\(error)")
        }
    }

    /// Two methods × two samples on the tiny task: the table's means and stds are those of the four
    /// runs' result.json files; a second invocation keeps every finished run and writes the same table.
    func testExperimentRunsTheGridAndContinuesAfterAnInterruption() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-experiment-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (model, data) = try TrainerTests.makeTinyTask(in: dir)
        let config = dir.appendingPathComponent("tiny.json")
        let fields: [String: Any] = ["model": model.path, "data": data.path, "perClass": 6, "batchSize": 4, "epochs": 2,
                                     "learningRate": 2e-3, "maxLength": 16]
        try JSONSerialization.data(withJSONObject: fields).write(to: config)
        let out = dir.appendingPathComponent("exp"), resultsFile = dir.appendingPathComponent("RESULTS.md")
        try "# Results\n".write(to: resultsFile, atomically: true, encoding: .utf8)
        let args = ["experiment", config.path, "--methods", "finetune,scl", "--samples", "2",
                    "--experiment-output", out.path, "--results", resultsFile.path]
        let (status, output) = try TrainerTests.runCSSLM(args, ranks: nil)
        XCTAssertEqual(status, 0, output)
        var results: [String: [RunResult]] = [:]
        for method in ["finetune", "scl"] {
            for sample in 0..<2 {
                let url = out.appendingPathComponent("data/\(method)/sample-\(sample)/result.json")
                let r = try JSONDecoder().decode(RunResult.self, from: Data(contentsOf: url))
                XCTAssertEqual(r.sampleSeed, UInt64(sample))
                XCTAssertEqual(r.method, method)
                results[method, default: []].append(r)
            }
        }
        let table = try String(contentsOf: resultsFile, encoding: .utf8)
        for (method, runs) in results {
            let acc = runs.map(\.test.accuracy), f1 = runs.map(\.test.macroF1)
            let mean = acc.reduce(0, +) / 2, std = abs(acc[0] - acc[1]) / 2
            let meanF1 = f1.reduce(0, +) / 2, stdF1 = abs(f1[0] - f1[1]) / 2
            let row = try XCTUnwrap(table.split(separator: "\n").first { $0.hasPrefix("| data | \(method) |") }, table)
            XCTAssertTrue(row.contains(String(format: "%.1f ± %.1f", mean * 100, std * 100)), "\(row)")
            XCTAssertTrue(row.contains(String(format: "%.1f ± %.1f", meanF1 * 100, stdF1 * 100)), "\(row)")
        }
        XCTAssertTrue(table.hasPrefix("# Results\n"))
        XCTAssertTrue(table.contains(ExperimentTable.beginMarker) && table.contains(ExperimentTable.endMarker))

        // "Interrupt": drop one run's result; the next invocation redoes that run only.
        try FileManager.default.removeItem(at: out.appendingPathComponent("data/scl/sample-1/result.json"))
        let (again, againOutput) = try TrainerTests.runCSSLM(args, ranks: nil)
        XCTAssertEqual(again, 0, againOutput)
        XCTAssertEqual(againOutput.components(separatedBy: "kept (finished earlier)").count - 1, 3, againOutput)
        let redone = try JSONDecoder().decode(RunResult.self, from: Data(contentsOf: out.appendingPathComponent("data/scl/sample-1/result.json")))
        XCTAssertEqual(redone.test, results["scl"]![1].test, "the same run again gives the same result")
        let tableAgain = try String(contentsOf: resultsFile, encoding: .utf8)
        XCTAssertEqual(tableAgain.components(separatedBy: ExperimentTable.beginMarker).count, 2, "one section, replaced")

        // The grid's own flags are refused, as is an unknown method, before any run starts.
        let (bad, badOutput) = try TrainerTests.runCSSLM(["experiment", config.path, "--method", "scl"], ranks: nil)
        XCTAssertNotEqual(bad, 0)
        XCTAssertTrue(badOutput.contains("--method is set by the experiment grid"), badOutput)
        let (unknown, unknownOutput) = try TrainerTests.runCSSLM(["experiment", config.path, "--methods", "finetune,cssl"], ranks: nil)
        XCTAssertNotEqual(unknown, 0)
        XCTAssertTrue(unknownOutput.contains("unknown method 'cssl'"), unknownOutput)
    }

    /// The paired t of the table equals scipy.stats.ttest_rel on the same accuracies (2.449489742783178
    /// for the values below, printed by scipy 1.x), pairs matched by sample seed whatever the order;
    /// outside references are marked in the table.
    func testPairedTMatchesScipyAndOutsideReferencesAreMarked() {
        func cell(_ method: String, _ accuracies: [Double], seeds: [UInt64]) -> ExperimentCell {
            let results = zip(accuracies, seeds).map { acc, seed -> RunResult in
                let m = ClassificationMetrics(predictions: [0], labels: [0], classes: 1)
                var test = m
                test.accuracy = acc
                return RunResult(method: method, dataset: "d", sampleSeed: seed, bestEpoch: 1, dev: m, test: test, steps: 1, seconds: 1)
            }
            return ExperimentCell(dataset: "d", method: method, results: results)
        }
        let a = cell("csslm", [0.60, 0.62, 0.58, 0.65, 0.61], seeds: [0, 1, 2, 3, 4])
        let b = cell("finetune", [0.58, 0.60, 0.59, 0.60, 0.57], seeds: [4, 3, 2, 1, 0])
        XCTAssertEqual(ExperimentTable.pairedT(a, b)!, 2.449489742783178, accuracy: 1e-9)
        XCTAssertNil(ExperimentTable.pairedT(a, cell("probe", [0.5], seeds: [0])), "one pair is not enough")
        let table = ExperimentTable.markdown([b, a, cell("setfit", [0.6, 0.6], seeds: [0, 1])])
        XCTAssertTrue(table.contains("| d | setfit (outside reference) |"), table)
        XCTAssertTrue(table.contains("| +2.45 |"), table)
    }
}
