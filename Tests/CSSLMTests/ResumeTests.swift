// Exact resume through the `csslm` tool (docs/design.md#exact-resume): a run trained N steps straight and
// the same run stopped after k steps (--stop-after-steps, which saves a checkpoint and exits) and
// resumed (--resume) end with bit-identical weights and AdamW moments at the same world size, and
// within 1e-5 at another one. Tiny random BERT and dataset of TrainerTests; `finetune` and `csslm`
// (stopped in stage 1 and again in the last epoch of stage 3, so the retrieval state and the
// retrieved-sentences log of a half-done epoch are resumed too).
import Foundation
import XCTest
@testable import CSSLM

final class ResumeTests: XCTestCase {
    var dir: URL!
    var model: URL!
    var data: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-resume-\(UUID().uuidString)")
        (model, data) = try TrainerTests.makeTinyTask(in: dir)
    }

    override func tearDownWithError() throws {
        if ProcessInfo.processInfo.environment["CSSLM_KEEP_TEST_DIR"] == nil { try? FileManager.default.removeItem(at: dir) }
    }

    /// 12 labelled examples, global batch 5: 3 steps an epoch; checkpoints also every 2 steps.
    /// "csslm-query": the prototype retriever, re-encoding the pool every 2 steps (the vectors in
    /// use at a checkpoint are then those of the last refresh, not stage 2's).
    func trainArgs(_ run: String, method: String, epochs: Int = 3) -> [String] {
        var args = ["train", "--model", model.path, "--data", data.path, "--output", dir.appendingPathComponent(run).path,
                    "--method", method == "csslm-query" ? "csslm" : method, "--per-class", "6", "--batch-size", "5", "--epochs", String(epochs),
                    "--learning-rate", "1e-3", "--max-length", "16", "--checkpoint-every", "2", "--keep-checkpoints", "2"]
        if method == "csslm-query" { args += ["--retriever", "query", "--refresh-every", "2"] }
        if method.hasPrefix("csslm") || method == "selftrain" {
            args += ["--corpus", dir.appendingPathComponent("corpus.txt").path, "--min-corpus-tokens", "2", "--pool-size", "30",
                     "--top-k", "3", "--negatives", "4", "--init-epochs", "2"]
        }
        return args
    }

    @discardableResult
    func train(_ args: [String], ranks: Int? = nil, expectFailure: Bool = false) throws -> String {
        let (status, output) = try TrainerTests.runCSSLM(args, ranks: ranks)
        if expectFailure {
            XCTAssertNotEqual(status, 0, output)
        } else {
            XCTAssertEqual(status, 0, "csslm \(args.joined(separator: " ")) at W=\(ranks ?? 1):\n\(output)")
        }
        return output
    }

    /// Trains `run` with stops after each of `stops` (each session resumed at `ranks[i]`).
    func trainInSessions(_ run: String, method: String, epochs: Int = 3, stops: [Int], ranks: [Int?]) throws {
        precondition(ranks.count == stops.count + 1)
        for (i, w) in ranks.enumerated() {
            var args = trainArgs(run, method: method, epochs: epochs)
            if i > 0 { args += ["--resume", "latest"] }
            if i < stops.count { args += ["--stop-after-steps", String(stops[i])] }
            let output = try train(args, ranks: w)
            if i < stops.count {
                XCTAssertTrue(output.contains("stopped after step \(stops[i])"), output)
                XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("\(run)/result.json").path),
                               "a stopped session writes no result")
            }
            if i > 0 { XCTAssertTrue(output.contains("[resume] resuming from"), output) }
        }
    }

    /// Every tensor of the final checkpoint's model, heads and AdamW moments, and of the saved best model.
    func finalTensors(_ run: String, steps: Int) throws -> [String: [Float]] {
        try Self.finalTensors(of: dir.appendingPathComponent(run), steps: steps)
    }

    /// `finalTensors` of the run folder `root` (also for ClusterTests' resumed run).
    static func finalTensors(of root: URL, steps: Int) throws -> [String: [Float]] {
        let checkpoint = root.appendingPathComponent("checkpoints/step-\(steps)")
        var all: [String: [Float]] = [:]
        for (prefix, url) in [("ckpt/model", checkpoint.appendingPathComponent(CheckpointStore.modelFile)),
                              ("ckpt/heads", checkpoint.appendingPathComponent(CheckpointStore.headsFile)),
                              ("ckpt/adamw", checkpoint.appendingPathComponent(CheckpointStore.optimizerFile)),
                              ("best/model", root.appendingPathComponent("model/model.safetensors")),
                              ("best/heads", root.appendingPathComponent("model/heads.safetensors"))] {
            let file = try SafetensorsFile(url: url)
            for name in file.names { all["\(prefix)/\(name)"] = try file.floats(name) }
        }
        return all
    }

    static func assertBitIdentical(_ a: [String: [Float]], _ b: [String: [Float]], _ what: String,
                                   file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.keys.sorted(), b.keys.sorted(), "\(what): tensor names", file: file, line: line)
        var differing: [String] = []
        for (name, x) in a where x.map(\.bitPattern) != b[name]?.map(\.bitPattern) { differing.append(name) }
        XCTAssertTrue(differing.isEmpty, "\(what): \(differing.count) tensors differ, e.g. \(differing.sorted().prefix(3))",
                      file: file, line: line)
    }

    /// Per tensor, max|a − b| ≤ tolerance · max|b|, or ≤ tolerance · the largest |b| of its group
    /// (file, and m or v for moments): the attention key biases get only float-noise gradients
    /// (softmax ignores a constant added to every score), so their values and moments are noise
    /// of the summation order, small against the rest of the model.
    func assertTensorsClose(_ a: [String: [Float]], _ b: [String: [Float]], _ what: String, tolerance: Float) {
        XCTAssertEqual(a.keys.sorted(), b.keys.sorted(), "\(what): tensor names")
        func group(_ name: String) -> String {
            let parts = name.split(separator: "/")
            return parts.dropLast().joined(separator: "/") + (parts[1] == "adamw" ? "/" + String(parts.last!.prefix(2)) : "")
        }
        var scale: [String: Float] = [:]
        for (name, x) in b { scale[group(name)] = max(scale[group(name)] ?? 0, x.map(abs).max() ?? 0) }
        for name in a.keys.sorted() where b[name] != nil {
            a[name]!.withUnsafeBufferPointer {
                assertClose("\(what) \(name)", $0.baseAddress!, b[name]!, tolerance: tolerance,
                            absoluteFloor: tolerance * scale[group(name)]!)
            }
        }
    }

    /// The step losses of metrics.jsonl, in step order.
    func losses(_ run: String) throws -> [Double] { try TrainerTests.stepLosses(dir.appendingPathComponent(run)) }

    func result(_ run: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("\(run)/result.json"))) as! [String: Any]
    }

    func testFinetuneResumedAtOneRankIsBitIdentical() throws {
        try train(trainArgs("straight", method: "finetune"))
        // Stops mid-epoch (step 4 of 9) and right after an epoch's evaluation (step 6).
        try trainInSessions("resumed", method: "finetune", stops: [4, 6], ranks: [nil, nil, nil])
        Self.assertBitIdentical(try finalTensors("straight", steps: 9), try finalTensors("resumed", steps: 9), "finetune W=1")
        XCTAssertEqual(try losses("resumed"), try losses("straight"), "every step's loss, in order, once")
        let (a, b) = (try result("straight"), try result("resumed"))
        XCTAssertEqual(a["bestEpoch"] as? Int, b["bestEpoch"] as? Int)
        XCTAssertEqual(a["steps"] as? Int, 9)
        XCTAssertEqual(b["steps"] as? Int, 9)
        XCTAssertEqual((a["test"] as? [String: Any])?["accuracy"] as? Double, (b["test"] as? [String: Any])?["accuracy"] as? Double)
        let metricsURL = dir.appendingPathComponent("resumed/\(MetricsLog.fileName)")
        let metrics = try String(contentsOf: metricsURL, encoding: .utf8)
        XCTAssertEqual(metrics.components(separatedBy: "\"kind\":\"resume\"").count - 1, 2, "one resume record per resumed session")
        XCTAssertEqual(try MetricsLog.read(metricsURL).count, metrics.split(separator: "\n").count,
                       "a stopped session logs no step that its resume redoes: no line is superseded")
        // Retention: the last 2 plus the best-dev one, nothing half-written left.
        let kept = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("resumed/checkpoints").path)
            .filter { $0.hasPrefix("step-") }
        XCTAssertTrue((2...3).contains(kept.count) && kept.contains("step-9"), "\(kept)")
    }

    /// The last epoch's retrievals (scores included: they show the frozen heads and the vectors).
    func retrieved(_ run: String) throws -> String {
        try String(contentsOf: dir.appendingPathComponent("\(run)/retrieved.jsonl"), encoding: .utf8)
    }

    /// (And selftrain, which shares the stages, stopped inside stage 3.)
    func testCSSLMResumedInStageOneAndInStageThreeIsBitIdentical() throws {
        // Stage 1: steps 0–5 (2 epochs), stage 3: steps 6–11. Step 6 is the end of stage 1 (after
        // its last evaluation, before stage 2); steps 9 and 10 are inside stage 3's last epoch (the
        // query retriever refreshed at 6 and 8, and refreshes again at 10).
        for (method, stops) in [("csslm", [2, 6, 10]), ("csslm-query", [4, 9]), ("selftrain", [7])] {
            try train(trainArgs("straight-\(method)", method: method, epochs: 2))
            try trainInSessions("resumed-\(method)", method: method, epochs: 2, stops: stops,
                                ranks: [Int?](repeating: nil, count: stops.count + 1))
            Self.assertBitIdentical(try finalTensors("straight-\(method)", steps: 12), try finalTensors("resumed-\(method)", steps: 12),
                                    "\(method) W=1")
            XCTAssertEqual(try losses("resumed-\(method)"), try losses("straight-\(method)"), method)
            XCTAssertEqual(try retrieved("resumed-\(method)"), try retrieved("straight-\(method)"),
                           "\(method): the last epoch's retrievals, across the resume")
            // The whole run's pseudo-label counts, not the last session's (issue 15, found by ChaosTests).
            XCTAssertEqual(try result("resumed-\(method)")["retrieval"] as? NSDictionary,
                           try result("straight-\(method)")["retrieval"] as? NSDictionary, "\(method): result.json's retrieval quality")
        }
    }

    func testResumeAtTwoRanksIsBitIdenticalAndAtOneOrThreeRanksWithinTolerance() throws {
        try train(trainArgs("straight2", method: "finetune"), ranks: 2)
        try trainInSessions("resumed2", method: "finetune", stops: [4], ranks: [2, 2])
        let reference = try finalTensors("straight2", steps: 9)
        Self.assertBitIdentical(reference, try finalTensors("resumed2", steps: 9), "finetune W=2")
        // Saved at W=2, resumed at W=1 and at W=3 (global batch 5: 3+2 rows, then 5, then 2+2+1).
        for w in [nil, 3] as [Int?] {
            let run = "resumed2to\(w ?? 1)"
            try trainInSessions(run, method: "finetune", stops: [4], ranks: [2, w])
            assertTensorsClose(reference, try finalTensors(run, steps: 9), "finetune W=2→\(w ?? 1)", tolerance: 1e-5)
        }
    }

    func testCSSLMResumedAtTwoRanksIsBitIdentical() throws {
        try train(trainArgs("straight", method: "csslm", epochs: 2), ranks: 2)
        try trainInSessions("resumed", method: "csslm", epochs: 2, stops: [8], ranks: [2, 2])
        Self.assertBitIdentical(try finalTensors("straight", steps: 12), try finalTensors("resumed", steps: 12), "csslm W=2")
        XCTAssertEqual(try retrieved("resumed"), try retrieved("straight"))
    }

    func testResumeRefusesAConflictingConfigAndAMissingCheckpoint() throws {
        let none = try train(trainArgs("empty", method: "finetune") + ["--resume", "latest"], expectFailure: true)
        XCTAssertTrue(none.contains("nothing to resume from"), none)
        try train(trainArgs("run", method: "finetune") + ["--stop-after-steps", "2"])
        let conflict = try train(trainArgs("run", method: "finetune") + ["--resume", "latest", "--per-class", "5"], expectFailure: true)
        XCTAssertTrue(conflict.contains("config field 'perClass' is 6 in the checkpoint but 5 in this run"), conflict)
        let seed = try train(["train", "--output", dir.appendingPathComponent("run").path, "--resume", "latest", "--seed", "7"],
                             expectFailure: true)
        XCTAssertTrue(seed.contains("config field 'seed' is 42 in the checkpoint but 7 in this run"), seed)
        // The run's own config is the base: --resume with a checkpoint folder, or with the run
        // folder (its newest complete checkpoint), and nothing else continues the run.
        let step2 = dir.appendingPathComponent("run/checkpoints/step-2").path
        let resumed = try train(["train", "--resume", step2, "--stop-after-steps", "4"])
        XCTAssertTrue(resumed.contains("resuming from \(step2) (step 2"), resumed)
        let finished = try train(["train", "--resume", dir.appendingPathComponent("run").path])
        XCTAssertTrue(finished.contains("resuming from \(dir.appendingPathComponent("run/checkpoints/step-4").path) (step 4"), finished)
        XCTAssertTrue(finished.contains("[result] finetune"), finished)
    }
}
