// report.html from a hand-made run folder: one polyline point per step and per dev evaluation,
// the confusion numbers in their cells, retrieved sentences deduplicated and best first, and every
// piece of text from the files HTML-escaped.
import Foundation
import XCTest
@testable import CSSLM

final class ReportTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("model"), withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func writeLines(_ name: String, _ objects: [[String: Any]]) throws {
        let lines = try objects.map { String(decoding: try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]), as: UTF8.self) }
        try (lines.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    /// A csslm run: init (5 steps, 2 dev evaluations), main (7 steps, 3 dev evaluations).
    func makeRun(finished: Bool = true) throws {
        var config = TrainConfig()
        config.method = .csslm
        config.data = dir.appendingPathComponent("no-such-data").path
        config.output = "runs/<x> & 'y'"
        try JSONEncoder().encode(config).write(to: dir.appendingPathComponent("config.json"))
        var metrics: [[String: Any]] = []
        var step = 0
        for (stage, count, parts, evals) in [("init", 5, ["ce", "pair", "task", "dom"], 2), ("main", 7, ["ce", "pair_q", "pair_m"], 3)] {
            for i in 0..<count {
                var entry: [String: Any] = ["kind": "step", "stage": stage, "step": step, "epoch": i * evals / count,
                                            "loss": 3.0 - Double(i) * 0.25, "lr": 1e-5, "grad_norm": 1.5, "seconds": 0.1]
                for (k, p) in parts.enumerated() { entry[p] = Double(k + 1) * 0.1 + Double(i) * 0.01 }
                metrics.append(entry)
                step += 1
            }
            for epoch in 0..<evals {
                metrics.append(["kind": "eval", "stage": stage, "split": "dev", "epoch": epoch, "step": step,
                                "accuracy": 0.5 + 0.1 * Double(epoch), "macro_f1": 0.4])
                metrics.append(["kind": "eval", "stage": stage, "split": "test", "epoch": epoch, "step": step,
                                "accuracy": 0.55, "macro_f1": 0.45, "confusion": [[1, 2], [3, 4]]])
            }
        }
        try writeLines("metrics.jsonl", metrics)
        try "bad & \"ugly\"\n<good>'s\n".write(to: dir.appendingPathComponent("model/labels.txt"), atomically: true, encoding: .utf8)
        if finished {
            let test = ClassificationMetrics(predictions: [Int](repeating: 0, count: 123) + [Int](repeating: 1, count: 45)
                                                + [Int](repeating: 0, count: 6) + [Int](repeating: 1, count: 78),
                                             labels: [Int](repeating: 0, count: 168) + [Int](repeating: 1, count: 84), classes: 2)
            let dev = ClassificationMetrics(predictions: [0, 1], labels: [0, 1], classes: 2)
            let result = RunResult(method: "csslm", dataset: "toy", sampleSeed: 3, bestEpoch: 3, dev: dev, test: test, steps: 12, seconds: 9)
            try JSONEncoder().encode(result).write(to: dir.appendingPathComponent("result.json"))
        }
        func drawn(_ items: [(Int, Double, String)]) -> [[String: Any]] {
            items.enumerated().map { ["doc": $1.0, "line": $1.0 + 1, "rank": $0, "score": $1.1, "text": $1.2] }
        }
        try writeLines("retrieved.jsonl", [
            ["epoch": 1, "step": 10, "query": "<script>alert('x')</script>", "label": 0, "label_name": "bad & \"ugly\"",
             "retrieved": drawn([(3, 0.5, "third"), (7, 2.25, "best <b>one</b>"), (3, 0.5, "third"), (9, 1.125, "second")])],
            ["epoch": 1, "step": 10, "query": "a fine film", "label": 1, "label_name": "<good>'s",
             "retrieved": drawn([(1, 0.75, "kind words"), (2, 0.0625, "so so")])],
        ])
    }

    /// The number of points of every polyline, in page order.
    func polylinePointCounts(_ html: String) -> [Int] {
        html.components(separatedBy: "<polyline").dropFirst().map { piece in
            let points = piece.components(separatedBy: "points=\"")[1].components(separatedBy: "\"")[0]
            return points.split(separator: " ").filter { $0.split(separator: ",").count == 2 }.count
        }
    }

    func testReportDrawsOnePointPerStepAndDevEpochAndShowsTheConfusionMatrix() throws {
        try makeRun()
        let url = try RunReport(runDirectory: dir).write()
        XCTAssertEqual(url.lastPathComponent, "report.html")
        let html = try String(contentsOf: url, encoding: .utf8)
        // init: loss + 4 parts × 5 steps; main: loss + 3 parts × 7 steps; dev accuracy: 2 and 3 epochs.
        XCTAssertEqual(polylinePointCounts(html), [5, 5, 5, 5, 5, 7, 7, 7, 7, 2, 3])
        XCTAssertTrue(html.contains("stage init: loss per step") && html.contains("stage main: loss per step"))
        // The total loss falls, so its polyline's y (SVG: down is larger) rises step by step.
        let first = html.components(separatedBy: "points=\"")[1].components(separatedBy: "\"")[0]
        let ys = first.split(separator: " ").map { Double($0.split(separator: ",")[1])! }
        XCTAssertEqual(ys, ys.sorted())
        XCTAssertLessThan(ys[0], ys[4])
        // Confusion at the best dev epoch, rows true class, with the escaped class names as headers.
        XCTAssertTrue(html.contains("<tr><th>bad &amp; &quot;ugly&quot;</th><td>123</td><td>45</td></tr>"), html)
        XCTAssertTrue(html.contains("<tr><th>&lt;good&gt;&#39;s</th><td>6</td><td>78</td></tr>"), html)
        XCTAssertTrue(html.contains("<td>0.7976</td>"), "test accuracy (201/252) in the result table")
        // Retrieved: escaped, best score first, the doc drawn twice shown once.
        XCTAssertFalse(html.contains("<script>"))
        XCTAssertTrue(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"))
        let best = try XCTUnwrap(html.range(of: "best &lt;b&gt;one&lt;/b&gt;</td><td>2.2500</td>"))
        let second = try XCTUnwrap(html.range(of: "second</td><td>1.1250</td>"))
        XCTAssertLessThan(best.lowerBound, second.lowerBound)
        XCTAssertEqual(html.components(separatedBy: "third</td>").count - 1, 1)
        XCTAssertTrue(html.contains("so so</td><td>0.0625</td>"))
        // The config, escaped.
        XCTAssertTrue(html.contains("&quot;output&quot; : &quot;runs\\/&lt;x&gt; &amp; &#39;y&#39;&quot;")
                      || html.contains("&quot;output&quot; : &quot;runs/&lt;x&gt; &amp; &#39;y&#39;&quot;"), html)
    }

    func testUnfinishedRunGetsCurvesAndANoteInsteadOfResults() throws {
        try makeRun(finished: false)
        let html = try RunReport(runDirectory: dir).html
        XCTAssertTrue(html.contains("the run has not finished"))
        XCTAssertFalse(html.contains("confusion matrix"))
        XCTAssertEqual(polylinePointCounts(html).count, 11)
    }

    /// A run killed twice, 3 steps an epoch: session 1 logged steps 0–4 and epoch 0's evaluation,
    /// and resumed from the checkpoint of step 3; session 2 logged steps 3–5 and epoch 1's
    /// evaluation, and resumed from step 4 (its save of step 6 never finished); session 3 redid
    /// steps 4–5 and epoch 1. Each step and epoch appears once, with its last session's values.
    func testResumedRunKeepsPerStepTheLineAfterTheLastResume() throws {
        try makeRun(finished: false)
        func step(_ session: Int, _ step: Int) -> [String: Any] {
            ["kind": "step", "stage": "train", "step": step, "epoch": step / 3, "loss": Double(10 * session + step), "ce": 0.5]
        }
        func dev(_ session: Int, epoch: Int) -> [String: Any] {
            ["kind": "eval", "stage": "train", "split": "dev", "epoch": epoch, "step": 3 * (epoch + 1),
             "accuracy": Double(session) / 10, "macro_f1": 0.4]
        }
        func resume(from step: Int) -> [String: Any] { ["kind": "resume", "stage": "train", "step": step, "epoch": step / 3] }
        var log: [[String: Any]] = (0...2).map { step(1, $0) } + [dev(1, epoch: 0)]
        log += (3...4).map { step(1, $0) } + [resume(from: 3)]
        log += (3...5).map { step(2, $0) } + [dev(2, epoch: 1), resume(from: 4)]
        log += (4...5).map { step(3, $0) } + [dev(3, epoch: 1)]
        try writeLines("metrics.jsonl", log)
        let report = try RunReport(runDirectory: dir)
        XCTAssertEqual(report.steps.map(\.step), [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(report.steps.map { $0.values["loss"] }, [10, 11, 12, 23, 34, 35])
        XCTAssertEqual(report.evals.map(\.epoch), [0, 1])
        XCTAssertEqual(report.evals.map(\.accuracy), [0.1, 0.3])
        // loss and ce over 6 steps, dev accuracy over 2 epochs.
        XCTAssertEqual(polylinePointCounts(report.html), [6, 6, 2])
        // Both resume records stay in the log that readers get.
        let entries = try MetricsLog.read(dir.appendingPathComponent(MetricsLog.fileName))
        XCTAssertEqual(entries.filter { $0.object["kind"] as? String == "resume" }.map(\.line), [7, 12])
    }

    func testMalformedMetricsLineAndMissingConfigNameTheFile() throws {
        assertThrows({ _ = try RunReport(runDirectory: self.dir) }, containing: ["config.json", "missing"])
        try makeRun()
        let metrics = dir.appendingPathComponent("metrics.jsonl")
        let good = try String(contentsOf: metrics, encoding: .utf8)
        try (good + "{\"kind\": \"step\", \"stage\": \"main\"}\n").write(to: metrics, atomically: true, encoding: .utf8)
        let badLine = good.split(separator: "\n").count + 1
        assertThrows({ _ = try RunReport(runDirectory: self.dir) }, containing: ["\(metrics.path):\(badLine)", "'step' and 'loss'"])
        try (good + "not json\n").write(to: metrics, atomically: true, encoding: .utf8)
        assertThrows({ _ = try RunReport(runDirectory: self.dir) }, containing: ["\(metrics.path):\(badLine)", "not a JSON object"])
    }

    func testEscapeHTMLReplacesTheFiveSpecialCharacters() {
        XCTAssertEqual(escapeHTML("<a href=\"x\">Tom & Jerry's</a>"), "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;")
        XCTAssertEqual(escapeHTML("plain é"), "plain é")
    }
}
