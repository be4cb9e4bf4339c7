// Bad input through the `csslm` tool, table-driven (issue 15): every command × every numeric flag
// through 0, −1, a huge value and a non-number, and every path argument through missing / a file /
// a folder / unwritable. The invariant for every case: the command ends by itself within its time
// limit (no hang), by an error exit (1 or 64, never a signal: no crash), and the message names the
// flag or path. Which values are valid is written here by hand from the README, not read from
// NumericRanges, so a wrong table entry fails. Plus the point-5 defects, each with its test.
import Foundation
import XCTest
@testable import CSSLM

final class BadInputCLITests: XCTestCase {
    var dir: URL!
    var model: URL!
    var data: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-badcli-\(UUID().uuidString)")
        (model, data) = try TrainerTests.makeTinyTask(in: dir)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// Runs csslm (10 s limit) and checks the invariant; returns the output.
    @discardableResult
    func refused(_ args: [String], naming parts: [String], environment: [String: String] = [:], stdin: Data? = nil,
                 file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let (status, output) = try TrainerTests.runCSSLM(args, ranks: nil, limit: 10, environment: environment, stdin: stdin)
        let what = "csslm \(args.joined(separator: " "))"
        XCTAssertNotEqual(status, 124, "\(what): hung (killed at the time limit)", file: file, line: line)
        XCTAssertTrue(status == 1 || status == 64, "\(what): exit \(status), expected an error exit\n\(output)", file: file, line: line)
        for p in parts { XCTAssertTrue(output.contains(p), "\(what): output lacks '\(p)':\n\(output)", file: file, line: line) }
        XCTAssertFalse(output.contains("NSCocoaErrorDomain"), "\(what): raw Foundation error\n\(output)", file: file, line: line)
        return output
    }

    /// Numeric flags of each command, with the values of {0, -1} the README calls valid.
    static let numericFlags: [(command: String, flag: String, valid: Set<String>)] = {
        var table: [(String, String, Set<String>)] = []
        let train: [(String, Set<String>)] = [
            ("--per-class", []), ("--epochs", []), ("--steps", ["0"]), ("--init-steps", ["0"]), ("--eval-every", ["0"]),
            ("--batch-size", []), ("--learning-rate", []), ("--weight-decay", ["0"]), ("--warmup-fraction", ["0"]),
            ("--max-grad-norm", []), ("--max-length", []), ("--eval-batch-size", []), ("--dev-limit", ["0"]), ("--test-limit", ["0"]),
            ("--init-epochs", []), ("--pool-size", []), ("--min-corpus-tokens", ["0"]), ("--corpus-max-length", []), ("--top-k", []),
            ("--negatives", ["0"]), ("--refresh-every", ["0"]), ("--prototype-weight", ["0"]), ("--temperature", []),
            ("--checkpoint-every", ["0", "-1"]), ("--keep-checkpoints", []),
        ]
        for (flag, valid) in train { table.append(("train", flag, valid)); table.append(("experiment", flag, valid)) }
        table += [("train", "--stop-after-steps", []), ("experiment", "--samples", []), ("tokenize", "--max-length", []),
                  ("export", "--max-length", [])]
        for command in ["eval", "predict", "embed"] { table += [(command, "--batch-size", []), (command, "--max-length", [])] }
        return table
    }()

    /// Arguments that get each command past parsing to where the flag is checked; an invalid
    /// flag must be refused before any of these paths is read.
    func baseArgs(_ command: String) throws -> [String] {
        let missing = dir.appendingPathComponent("missing").path
        switch command {
        case "train": return ["train", "--model", missing, "--data", missing, "--output", dir.appendingPathComponent("out").path]
        case "experiment":
            let config = dir.appendingPathComponent("grid.json")
            try JSONSerialization.data(withJSONObject: ["model": missing, "data": missing]).write(to: config)
            return ["experiment", config.path, "--experiment-output", dir.appendingPathComponent("exp").path]
        case "export": return ["export", missing, dir.appendingPathComponent("exported").path]
        case "eval": return ["eval", "--model", missing, "--data", missing]
        default: return [command, "--model", missing]
        }
    }

    /// Defect 4: `eval --batch-size 0` looped forever, `--batch-size=-1` crashed, predict and
    /// embed took 0 and negative sizes silently, and `--checkpoint-every -1` did not parse.
    func testEveryNumericFlagOfEveryCommandRefusesZeroNegativeHugeAndNonNumbers() throws {
        var cases = 0
        for (command, flag, valid) in Self.numericFlags {
            let base = try baseArgs(command)
            for value in ["0", "-1", "99999999999", "1e30", "abc"] {
                let args = base + [flag, value]
                if valid.contains(value) {
                    // Valid: the command gets past the flag and stops at the missing model or data.
                    let output = try refused(args, naming: ["missing"])
                    XCTAssertFalse(output.contains("\(flag) must") || output.contains("(\(flag)) must"), "\(args): \(output)")
                } else {
                    try refused(args, naming: [flag])
                }
                cases += 1
            }
            // The `=` form reads the same.
            if !valid.contains("-1") { try refused(base + ["\(flag)=-1"], naming: [flag]); cases += 1 }
        }
        print("[bad-input] \(cases) numeric cases over \(Self.numericFlags.count) command × flag pairs")
    }

    /// Every path argument through missing, a file where a folder belongs (or the reverse), a
    /// folder where a file belongs, and a place that cannot be written.
    func testEveryPathArgumentThroughMissingFileFolderAndUnwritable() throws {
        let missing = dir.appendingPathComponent("missing").path
        let aFile = dir.appendingPathComponent("a-file.txt")
        try "not a folder\n".write(to: aFile, atomically: true, encoding: .utf8)
        let empty = dir.appendingPathComponent("empty-folder")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let unwritable = "/proc/csslm-cannot-write-here"
        let train = ["train", "--model", model.path, "--data", data.path, "--per-class", "6", "--batch-size", "4", "--epochs", "1",
                     "--max-length", "16", "--output"]
        let out = dir.appendingPathComponent("run").path
        let lines = dir.appendingPathComponent("lines.txt")
        try "good movie .\n".write(to: lines, atomically: true, encoding: .utf8)
        let table: [(args: [String], naming: [String])] = [
            (["train", "--model", missing, "--data", data.path, "--output", out], ["field 'model'", missing]),
            (["train", "--model", aFile.path, "--data", data.path, "--output", out], ["field 'model'", aFile.path]),
            (["train", "--model", empty.path, "--data", data.path, "--output", out], ["field 'model'", "no config.json"]),
            (["train", "--model", model.path, "--data", missing, "--output", out], ["field 'data'", missing]),
            (["train", "--model", model.path, "--data", aFile.path, "--output", out], ["field 'data'", "not a dataset folder"]),
            (["train", "--model", model.path, "--data", empty.path, "--output", out], [empty.path, "labels.txt"]),
            (train + [aFile.path], ["--output \(aFile.path) is a file, not a folder"]),
            (train + [aFile.path + "/run"], ["\(aFile.path) is a file, so no folder can be made under it"]),
            (train + [unwritable], ["--output \(unwritable): cannot create the folder"]),
            (["train", "--config", missing], [missing, "cannot read the run config"]),
            (["train", "--config", empty.path], [empty.path, "cannot read the run config"]),
            (["train", "--config", aFile.path], [aFile.path, "not a JSON object"]),
            (train + [out, "--corpus", missing, "--method", "csslm"], ["field 'corpus'", missing]),
            (["eval", "--model", missing, "--data", data.path], [missing]),
            (["eval", "--model", aFile.path, "--data", data.path], [aFile.path]),
            (["eval", "--model", empty.path, "--data", data.path], [empty.path]),
            (["eval", "--model", model.path, "--data", missing], [missing]),
            (["predict", "--model", missing], [missing]),
            (["predict", "--model", empty.path], [empty.path]),
            (["predict", "--model", aFile.path], [aFile.path]),
            (["embed", "--model", missing], [missing]),
            (["embed", "--model", aFile.path], [aFile.path]),
            (["embed", "--model", model.path, "--input", missing], [missing]),
            (["embed", "--model", model.path, "--input", empty.path], [empty.path, "read error"]),
            (["tokenize", "--model", missing], [missing]),
            (["tokenize", "--model", model.path, "--input", missing], [missing]),
            (["tokenize", "--model", model.path, "--input", empty.path], [empty.path]),
            (["export", missing, dir.appendingPathComponent("e1").path], [missing]),
            (["export", aFile.path, dir.appendingPathComponent("e2").path], [aFile.path]),
            (["export", empty.path, dir.appendingPathComponent("e3").path], [empty.path]),
            (["experiment", missing], [missing]),
            (["experiment", empty.path], [empty.path]),
            (["report", missing], [missing]),
        ]
        for c in table { try refused(c.args, naming: c.naming) }
        print("[bad-input] \(table.count) path cases")
    }

    /// Defect 3's setting at W = 1: "10s" used to be taken silently as the 300 s default.
    func testABadDeadlineSettingIsAnError() throws {
        try refused(["train", "--model", model.path, "--data", data.path, "--output", dir.appendingPathComponent("r").path],
                    naming: ["CSSLM_COLLECTIVE_TIMEOUT_S='10s' is not a positive number of seconds"],
                    environment: ["CSSLM_COLLECTIVE_TIMEOUT_S": "10s"])
    }

    // MARK: point 5

    /// perClass beyond every class used to draw thousands of repeats silently (a 28-minute run).
    func testPerClassBeyondTheLargestClassIsRefused() throws {
        try refused(["train", "--model", model.path, "--data", data.path, "--output", dir.appendingPathComponent("r").path,
                     "--per-class", "5000", "--max-length", "16"],
                    naming: ["field 'perClass' (--per-class) is 5000, but the largest class of", "train.jsonl has 12 examples"])
    }

    /// An empty train.jsonl used to be reported as a problem of dev.jsonl's labels.
    func testAnEmptyTrainSplitIsNamedAsSuch() throws {
        try Data().write(to: data.appendingPathComponent("train.jsonl"))
        let output = try refused(["train", "--model", model.path, "--data", data.path, "--output", dir.appendingPathComponent("r").path,
                                  "--max-length", "16"], naming: ["train.jsonl: no training examples"])
        XCTAssertFalse(output.contains("dev.jsonl"), output)
    }

    /// `"epochs": 1.5` used to give "field '': The given data was not valid JSON".
    func testAFractionInAWholeNumberFieldNamesTheField() throws {
        let url = dir.appendingPathComponent("frac.json")
        try "{\"epochs\": 1.5}".write(to: url, atomically: true, encoding: .utf8)
        assertThrows({ _ = try TrainConfig.load(from: url) }, containing: [url.path, "field 'epochs' must be a whole number, got 1.5"])
        try "{\"epochs\": 2.0, \"learningRate\": 0.5}".write(to: url, atomically: true, encoding: .utf8)
        XCTAssertEqual(try TrainConfig.load(from: url).epochs, 2)
    }

    /// Relative paths of a config used to resolve against the current folder only; now against
    /// the config's folder when they exist there, else the current folder (shipped configs).
    func testRelativeConfigPathsResolveBesideTheConfig() throws {
        let url = dir.appendingPathComponent("relative.json")
        try "{\"model\": \"model\", \"data\": \"data\", \"corpus\": \"corpus.txt\", \"output\": \"runs/x\"}"
            .write(to: url, atomically: true, encoding: .utf8)
        let c = try TrainConfig.load(from: url)
        XCTAssertEqual(c.model, dir.appendingPathComponent("model").path)
        XCTAssertEqual(c.data, dir.appendingPathComponent("data").path)
        XCTAssertEqual(c.corpus, dir.appendingPathComponent("corpus.txt").path)
        XCTAssertEqual(c.output, "runs/x", "not beside the config: the current folder's")
        let shipped = try TrainConfig.load(from: TestPaths.root.appendingPathComponent("configs/rotten-tomatoes.json"))
        XCTAssertTrue(shipped.model.hasPrefix("assets/"), "the shipped configs keep their repository-root paths: \(shipped.model)")
    }

    /// Invalid UTF-8 on stdin of predict, embed and tokenize used to be dropped silently
    /// (docs/limits.md says it never is).
    func testInvalidUTF8OnStdinIsAnErrorAtItsLine() throws {
        let run = dir.appendingPathComponent("r")
        let (status, output) = try TrainerTests.runCSSLM(["train", "--model", model.path, "--data", data.path, "--output", run.path,
                                                          "--per-class", "6", "--batch-size", "4", "--epochs", "1", "--max-length", "16",
                                                          "--checkpoint-every", "-1"], ranks: nil)
        XCTAssertEqual(status, 0, output)
        // Line 2 holds a Latin-1 é (0xE9), which is not UTF-8.
        let bad = Data("good movie .\nbad ".utf8) + Data([0xE9, 0x0A]) + Data("fine .\n".utf8)
        for command in ["predict", "embed", "tokenize"] {
            try refused([command, "--model", run.appendingPathComponent("model").path], naming: ["line 2: invalid UTF-8"], stdin: bad)
        }
    }

    /// `train --method csslm-query` used to be refused, though `experiment` takes it.
    func testTrainTakesTheExperimentsMethodNames() throws {
        let run = dir.appendingPathComponent("q")
        let (status, output) = try TrainerTests.runCSSLM(
            ["train", "--model", model.path, "--data", data.path, "--output", run.path, "--method", "csslm-query",
             "--per-class", "6", "--batch-size", "5", "--epochs", "1", "--max-length", "16", "--corpus", dir.appendingPathComponent("corpus.txt").path,
             "--min-corpus-tokens", "2", "--pool-size", "30", "--top-k", "3", "--negatives", "4", "--init-epochs", "1",
             "--stop-after-steps", "1"], ranks: nil)
        XCTAssertEqual(status, 0, output)
        let saved = try TrainConfig.load(from: run.appendingPathComponent("config.json"))
        XCTAssertEqual(saved.method, .csslm)
        XCTAssertEqual(saved.retriever, .query)
        try refused(["train", "--method", "css-lm"], naming: ["--method 'css-lm' is not one of", "csslm-query"])
    }

    /// Many `train --help` flags showed no default and no description.
    func testEveryTrainFlagHasADescriptionAndEveryFieldADefault() throws {
        let (status, help) = try TrainerTests.runCSSLM(["train", "--help"], ranks: nil, limit: 10)
        XCTAssertEqual(status, 0, help)
        let joined = help.replacingOccurrences(of: "\n                          ", with: " ")
        let optionLines = joined.split(separator: "\n").filter { $0.hasPrefix("  --") }
        XCTAssertGreaterThan(optionLines.count, 40, help)
        for line in optionLines {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            XCTAssertGreaterThan(parts.count, 2, "no description: \(line)")
        }
        for field in NumericRanges.fields.keys {
            let flag = NumericRanges.flag(ofField: field)
            let line = try XCTUnwrap(optionLines.first { $0.hasPrefix("  \(flag) ") }, "\(flag) missing from --help")
            XCTAssertTrue(line.contains("(default: "), "\(flag): no default: \(line)")
            XCTAssertTrue(line.contains("Range "), "\(flag): no range: \(line)")
        }
    }

    /// The numeric fields TrainConfig checks and the range table name the same fields.
    func testEveryNumericFieldHasARange() {
        XCTAssertEqual(Set(TrainConfig().numericValues.map(\.field)), Set(NumericRanges.fields.keys))
        XCTAssertNoThrow(try TrainConfig().numericValues.forEach { try NumericRanges.check(field: $0.field, $0.value) }, "defaults are valid")
    }
}
