// Run folders are never clobbered and a run is finished only when everything it promises is on
// disk (docs/checkpoints.md#run-folders), through the `csslm` tool on the tiny task of TrainerTests.
import Foundation
import XCTest
@testable import CSSLM

final class RunFolderTests: XCTestCase {
    var dir: URL!
    var model: URL!
    var data: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-runfolder-\(UUID().uuidString)")
        (model, data) = try TrainerTests.makeTinyTask(in: dir)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func trainArgs(_ output: URL) -> [String] {
        ["train", "--model", model.path, "--data", data.path, "--output", output.path, "--method", "finetune",
         "--per-class", "6", "--batch-size", "4", "--epochs", "2", "--learning-rate", "1e-3", "--max-length", "16",
         "--checkpoint-every", "2"]
    }

    func bytes(_ url: URL) throws -> Data { try Data(contentsOf: url) }

    /// Defect 1: a new run into a finished or interrupted run's folder used to delete its
    /// checkpoints, cut metrics.jsonl and replace result.json. Now it is refused, naming the
    /// folder and the ways out; --overwrite moves the old run aside whole.
    func testANewRunRefusesAFolderHoldingARunAndOverwriteMovesItAside() throws {
        let run = dir.appendingPathComponent("run")
        var (status, output) = try TrainerTests.runCSSLM(trainArgs(run), ranks: nil)
        XCTAssertEqual(status, 0, output)
        let metrics = try bytes(run.appendingPathComponent("metrics.jsonl"))
        let result = try bytes(run.appendingPathComponent("result.json"))
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("checkpoints").path).sorted()

        (status, output) = try TrainerTests.runCSSLM(trainArgs(run) + ["--epochs", "3"], ranks: nil)
        XCTAssertNotEqual(status, 0, output)
        for part in ["--output \(run.path) already holds a run", "--resume latest", "--overwrite"] {
            XCTAssertTrue(output.contains(part), "lacks '\(part)': \(output)")
        }
        XCTAssertEqual(try bytes(run.appendingPathComponent("metrics.jsonl")), metrics, "metrics.jsonl untouched")
        XCTAssertEqual(try bytes(run.appendingPathComponent("result.json")), result, "result.json untouched")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("checkpoints").path).sorted(),
                       checkpoints, "checkpoints untouched")

        (status, output) = try TrainerTests.runCSSLM(trainArgs(run) + ["--overwrite"], ranks: nil)
        XCTAssertEqual(status, 0, output)
        let aside = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: dir.path).first { $0.hasPrefix("run.old-") },
                                  "the old run moved aside")
        XCTAssertTrue(output.contains("moved to"), output)
        let old = dir.appendingPathComponent(aside)
        XCTAssertEqual(try bytes(old.appendingPathComponent("metrics.jsonl")), metrics)
        XCTAssertEqual(try bytes(old.appendingPathComponent("result.json")), result)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: old.appendingPathComponent("checkpoints").path).sorted(), checkpoints)
        XCTAssertNotNil(RunFolder.finishedResult(in: run), "the new run finished")
        XCTAssertNotNil(RunFolder.finishedResult(in: old), "the old run is still a complete run")

        // An interrupted run (a checkpoint, no result) is protected the same way.
        let stopped = dir.appendingPathComponent("stopped")
        (status, output) = try TrainerTests.runCSSLM(trainArgs(stopped) + ["--stop-after-steps", "1"], ranks: nil)
        XCTAssertEqual(status, 0, output)
        (status, output) = try TrainerTests.runCSSLM(trainArgs(stopped), ranks: nil)
        XCTAssertNotEqual(status, 0, output)
        XCTAssertTrue(output.contains("already holds a run (config.json, metrics.jsonl, checkpoints)"), output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: stopped.appendingPathComponent("checkpoints/step-1").path))
        (status, output) = try TrainerTests.runCSSLM(trainArgs(stopped) + ["--overwrite", "--resume", "latest"], ranks: nil)
        XCTAssertNotEqual(status, 0, output)
        XCTAssertTrue(output.contains("--overwrite starts a new run and --resume continues one"), output)
    }

    /// Defect 2: with the disk full at the final model write the run failed but result.json was
    /// already there (written first), and `experiment` kept the run. A file-size limit (ulimit -f,
    /// SIGXFSZ ignored so writes fail with EFBIG as on a full disk) lets the small files through
    /// and fails model.safetensors.
    func testAFailedModelWriteLeavesNoResult() throws {
        let run = dir.appendingPathComponent("full")
        let launcher = ["/bin/bash", "-c", "trap '' XFSZ; ulimit -f 16; exec \"$@\"", "bash"]
        let (status, output) = try TrainerTests.runCSSLM(trainArgs(run) + ["--checkpoint-every", "-1"], ranks: nil, launcher: launcher)
        XCTAssertEqual(status, 1, output)
        XCTAssertTrue(output.contains("model.safetensors"), output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("metrics.jsonl").path), "the run got as far as training")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("result.json").path), "no result without a model")
        XCTAssertNil(RunFolder.finishedResult(in: run))
    }

    /// Defect 2, the experiment's side: a run folder with result.json but an incomplete model/
    /// (what the old order left after a failed model write) is redone, the old files moved aside.
    func testExperimentRedoesARunWhoseModelIsIncomplete() throws {
        let config = dir.appendingPathComponent("tiny.json")
        let fields: [String: Any] = ["model": model.path, "data": data.path, "perClass": 6, "batchSize": 4, "epochs": 1,
                                     "learningRate": 1e-3, "maxLength": 16]
        try JSONSerialization.data(withJSONObject: fields).write(to: config)
        let out = dir.appendingPathComponent("exp")
        let args = ["experiment", config.path, "--methods", "finetune", "--samples", "1", "--experiment-output", out.path]
        var (status, output) = try TrainerTests.runCSSLM(args, ranks: nil)
        XCTAssertEqual(status, 0, output)
        let run = out.appendingPathComponent("data/finetune/sample-0")
        (status, output) = try TrainerTests.runCSSLM(args, ranks: nil)
        XCTAssertTrue(output.contains("kept (finished earlier)"), "a complete run is kept: \(output)")
        try FileManager.default.removeItem(at: run.appendingPathComponent("model/model.safetensors"))
        (status, output) = try TrainerTests.runCSSLM(args, ranks: nil)
        XCTAssertEqual(status, 0, output)
        XCTAssertFalse(output.contains("kept (finished earlier)"), output)
        XCTAssertTrue(output.contains("was moved to"), output)
        XCTAssertNotNil(RunFolder.finishedResult(in: run), "redone completely")
    }

    /// The library checks behind both: a model folder missing a file or holding a cut
    /// safetensors file is not a finished run's model; writeResult then writes nothing.
    func testVerifyModelNamesTheMissingOrCutFile() throws {
        let run = dir.appendingPathComponent("lib")
        let modelDir = run.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: modelDir, withIntermediateDirectories: true)
        for name in ["config.json", "vocab.txt", "model.safetensors"] {
            try FileManager.default.copyItem(at: model.appendingPathComponent(name), to: modelDir.appendingPathComponent(name))
        }
        try "neg\npos\n".write(to: modelDir.appendingPathComponent("labels.txt"), atomically: true, encoding: .utf8)
        let m = ClassificationMetrics(predictions: [0], labels: [0], classes: 1)
        let result = RunResult(method: "finetune", dataset: "d", sampleSeed: 0, bestEpoch: 1, dev: m, test: m, steps: 1, seconds: 1)
        assertThrows({ try RunFolder.writeResult(result, in: run) }, containing: ["heads.safetensors is missing"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("result.json").path))
        try FileManager.default.copyItem(at: model.appendingPathComponent("model.safetensors"), to: modelDir.appendingPathComponent("heads.safetensors"))
        let cut = try Data(contentsOf: modelDir.appendingPathComponent("model.safetensors"))
        try cut.prefix(cut.count - 10).write(to: modelDir.appendingPathComponent("model.safetensors"))
        assertThrows({ try RunFolder.writeResult(result, in: run) }, containing: ["model.safetensors"])
        try FileManager.default.removeItem(at: modelDir.appendingPathComponent("model.safetensors"))
        try FileManager.default.copyItem(at: model.appendingPathComponent("model.safetensors"), to: modelDir.appendingPathComponent("model.safetensors"))
        try RunFolder.writeResult(result, in: run)
        XCTAssertEqual(RunFolder.finishedResult(in: run), result)
    }
}
