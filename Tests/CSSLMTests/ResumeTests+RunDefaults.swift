// Correctness points of issue 13 on what a run records and what the tools read back, with the
// tiny task of ResumeTests: `finetune` uses a weight decay the user gave (its default is 0) and
// config.json records the value used; eval, predict and embed default to the max length the
// model folder was trained with; a failed write of metrics.jsonl is an error naming the file;
// `embed --input-format json` reads what `tokenize` reads.
import Foundation
import XCTest
@testable import CSSLM

extension ResumeTests {
    func savedConfig(_ run: String) throws -> TrainConfig {
        try TrainConfig.load(from: dir.appendingPathComponent("\(run)/config.json"))
    }

    func testFinetuneUsesTheWeightDecayGivenAndRecordsTheValueUsed() throws {
        try train(trainArgs("default", method: "finetune", epochs: 1))
        try train(trainArgs("zero", method: "finetune", epochs: 1) + ["--weight-decay", "0"])
        try train(trainArgs("given", method: "finetune", epochs: 1) + ["--weight-decay", "0.5"])
        XCTAssertEqual(try savedConfig("default").weightDecay, 0, "finetune's default, written out")
        XCTAssertEqual(try savedConfig("given").weightDecay, 0.5)
        // The default is the explicit 0 bit for bit; the decay given changes the weights.
        let (byDefault, zero, given) = (try finalTensors("default", steps: 3), try finalTensors("zero", steps: 3),
                                        try finalTensors("given", steps: 3))
        Self.assertBitIdentical(byDefault, zero, "finetune's default against --weight-decay 0")
        let name = "best/model/encoder.layer.0.attention.self.query.weight"
        let (a, b) = (try XCTUnwrap(byDefault[name]), try XCTUnwrap(given[name]))
        XCTAssertNotEqual(a.map(\.bitPattern), b.map(\.bitPattern), "--weight-decay 0.5 must reach the optimizer")
        // Decoupled decay shrinks the weights: the decayed run's norm is the smaller one.
        XCTAssertLessThan(b.map { $0 * $0 }.reduce(0, +), a.map { $0 * $0 }.reduce(0, +))
    }

    func testEvalPredictAndEmbedDefaultToTheMaxLengthTheModelWasTrainedWith() throws {
        // 5 tokens: every test sentence and every input line below is longer.
        try train(trainArgs("short", method: "finetune", epochs: 1) + ["--max-length", "5"])
        let run = dir.appendingPathComponent("short"), trained = run.appendingPathComponent("model").path
        XCTAssertEqual(try RunFolder.trainedMaxLength(run.appendingPathComponent("model")), 5)
        let input = dir.appendingPathComponent("lines.txt")
        try "good movie was very fine .\nawful plot is not great at all .\n".write(to: input, atomically: true, encoding: .utf8)
        func output(_ args: [String]) throws -> String {
            let (status, out) = try TrainerTests.runCSSLM(args, ranks: nil)
            XCTAssertEqual(status, 0, "csslm \(args.joined(separator: " ")):\n\(out)")
            return out
        }
        for command in [["predict", "--model", trained, "--input", input.path],
                        ["embed", "--model", trained, "--input", input.path],
                        ["eval", "--model", trained, "--data", data.path]] {
            let byDefault = try output(command)
            XCTAssertEqual(byDefault, try output(command + ["--max-length", "5"]), "\(command[0]) without --max-length")
            XCTAssertNotEqual(byDefault, try output(command + ["--max-length", "32"]), "\(command[0]): the length matters here")
        }
        // predict takes JSON lines as embed does: the same texts as JSON strings predict the same.
        let jsonInput = dir.appendingPathComponent("lines.jsonl")
        let jsonLines = [#""good movie was very fine .""#, #"{"text": "awful plot is not great at all ."}"#]
        try (jsonLines.joined(separator: "\n") + "\n").write(to: jsonInput, atomically: true, encoding: .utf8)
        XCTAssertEqual(try output(["predict", "--model", trained, "--input", jsonInput.path, "--input-format", "json"]),
                       try output(["predict", "--model", trained, "--input", input.path]))
        // eval without the flag reproduces the run's own test metrics.
        let evaluated = try JSONSerialization.jsonObject(with: Data(try output(["eval", "--model", trained, "--data", data.path]).utf8))
            as! [String: Any]
        let test = try result("short")["test"] as! [String: Any]
        XCTAssertEqual(evaluated["accuracy"] as! Double, test["accuracy"] as! Double, accuracy: 1e-12)
        // An exported checkpoint carries the run's config too.
        let exported = dir.appendingPathComponent("exported")
        _ = try output(["export", run.appendingPathComponent("checkpoints/step-3").path, exported.path])
        XCTAssertEqual(try RunFolder.trainedMaxLength(exported), 5)
        XCTAssertNil(try RunFolder.trainedMaxLength(model), "a plain HF folder has no training config")
    }

    func testAFailedWriteOfTheMetricsLogIsAnErrorNamingTheFile() throws {
        // /dev/full takes the open and fails every write with ENOSPC, like a full disk.
        let writer = try MetricsWriter(url: URL(fileURLWithPath: "/dev/full"), appending: false)
        assertThrows({ try writer.append(["kind": "step", "step": 0]) }, containing: ["/dev/full", "cannot write the metrics log"])
        // Through a whole run: the trainer stops with that error instead of crashing.
        let out = dir.appendingPathComponent("full")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: out.appendingPathComponent(MetricsLog.fileName).path,
                                                   withDestinationPath: "/dev/full")
        var config = TrainConfig()
        (config.model, config.data, config.output, config.method) = (model.path, data.path, out.path, .finetune)
        (config.perClass, config.batchSize, config.epochs, config.maxLength) = (6, 5, 1, 16)
        let trainer = try Trainer(config: config, communicator: SingleProcessCommunicator(), log: { _ in })
        assertThrows({ _ = try trainer.run() }, containing: ["full/metrics.jsonl", "cannot write the metrics log"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent(RunFolder.resultFile).path))
    }

    func testEmbedReadsJSONLinesAsTokenizeDoes() throws {
        let (texts, pair) = (["good movie .", "awful plot , very poor ."], "the plot was fine .")
        let json = [#""good movie .""#, #"{"text": "awful plot , very poor ."}"#, #"{"text": "good movie .", "pair": "the plot was fine ."}"#]
        let (rawInput, jsonInput) = (dir.appendingPathComponent("raw.txt"), dir.appendingPathComponent("lines.jsonl"))
        try (texts.joined(separator: "\n") + "\n").write(to: rawInput, atomically: true, encoding: .utf8)
        try (json.joined(separator: "\n") + "\n").write(to: jsonInput, atomically: true, encoding: .utf8)
        let (rawStatus, raw) = try TrainerTests.runCSSLM(["embed", "--model", model.path, "--input", rawInput.path], ranks: nil)
        let (jsonStatus, fromJSON) = try TrainerTests.runCSSLM(["embed", "--model", model.path, "--input", jsonInput.path,
                                                                "--input-format", "json"], ranks: nil)
        XCTAssertEqual(rawStatus, 0, raw)
        XCTAssertEqual(jsonStatus, 0, fromJSON)
        let lines = fromJSON.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3, fromJSON)
        XCTAssertEqual(Array(lines.prefix(2)), raw.split(separator: "\n").map(String.init), "JSON strings and {text} embed as raw lines")
        // The pair line: the [CLS] vector of the encoded pair, computed here through the library.
        let tokenizer = try WordPieceTokenizer(modelDirectory: model)
        let net = try BertClassifier(modelDirectory: model, numLabels: 2)
        let e = tokenizer.encode(texts[0], pair: pair, maxLength: 128)
        let batch = try TokenBatch(sequences: [e.ids], typeIds: [e.tokenTypeIds], padId: tokenizer.paddingId, sepId: tokenizer.separatorId)
        try net.forward(batch, dropout: .off(batch: 1))
        let h = net.config.hiddenSize
        let reference = (0..<h).map { net.encoderActivations.lastHidden[$0] }
        let embedded = try JSONSerialization.jsonObject(with: Data(lines[2].utf8)) as! [Double]
        assertClose("pair [CLS]", embedded.map(Float.init), reference, tolerance: 1e-6)
        XCTAssertNotEqual(lines[2], lines[0], "the pair is part of the input")
        // A line that is not JSON is an error at its line.
        try "\"fine\"\nnot json\n".write(to: jsonInput, atomically: true, encoding: .utf8)
        let (badStatus, bad) = try TrainerTests.runCSSLM(["embed", "--model", model.path, "--input", jsonInput.path,
                                                          "--input-format", "json"], ranks: nil)
        XCTAssertNotEqual(badStatus, 0)
        XCTAssertTrue(bad.contains("line 2: expected a JSON string"), bad)
    }
}
