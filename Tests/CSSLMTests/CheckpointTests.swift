// Tests of checkpoints (docs/design.md#exact-resume): bit-identical round trips, retention, detection of
// half-written and corrupted checkpoints, clear errors, export as an HF folder, SIGKILL at random
// moments of a save loop (the `checkpoint-loop` scenario of csslm-mpitest, run alone), and a
// multi-rank load where only rank 0 has the files.
@testable import CSSLM
import Foundation
import XCTest

/// A tiny BERT, its model folder (config.json, vocab.txt) and helpers shared by the tests below.
private enum Tiny {
    static let config = BertConfig(vocabSize: 50, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
                                   intermediateSize: 32, maxPositionEmbeddings: 16)

    /// A random model with a pair head and a pass-through "pooler" tensor, as a real MiniLM has.
    static func model(seed: UInt64, config: BertConfig = Tiny.config) -> BertClassifier {
        let model = BertClassifier(config: config, numLabels: 3, extraHeads: pairHeadTensors(hidden: config.hiddenSize), seed: seed)
        var rng = SplitMix64(seed: seed &+ 100)
        model.parameters.passthrough = [("pooler.dense.bias", [config.hiddenSize],
                                         FloatBuffer((0..<config.hiddenSize).map { _ in rng.nextUniform() }))]
        return model
    }

    static func optimizer(for model: BertClassifier, seed: UInt64, step: Int) -> AdamW {
        let adam = AdamW(config: AdamWConfig(), parameterCount: model.parameters.count)
        var rng = SplitMix64(seed: seed)
        for i in 0..<adam.m.count {
            adam.m[i] = rng.nextUniform() - 0.5
            adam.v[i] = rng.nextUniform() * 1e-3
        }
        adam.step = step
        return adam
    }

    static let identity = RunIdentity(model: "sha256:tiny-model", dataset: "sha256:tiny-data")

    static func state(step: Int, modelSource: URL, best: Int? = nil, worldSize: Int = 1,
                      config: TrainConfig = TrainConfig(), identity: RunIdentity = identity) -> TrainingState {
        TrainingState(step: step, epoch: step / 4, stage: "finetune", sampler: SamplerPosition(epoch: step / 4, cursor: step % 4),
                      schedule: LinearSchedule(warmupSteps: 2, totalSteps: 40), optimizerStep: step, config: config,
                      worldSize: worldSize, identity: identity, modelSource: modelSource.path, numLabels: 3,
                      bestDev: best.map { BestDevRecord(step: $0, epoch: $0 / 4, metric: "accuracy", value: 0.75,
                                                        scores: ["accuracy": 0.75, "macro_f1": 0.7]) },
                      extensions: ["retrieval": "{\"indexVersion\":3}"])
    }

    /// config.json and vocab.txt of `config` in `dir`.
    static func modelFolder(_ dir: URL, config: BertConfig = Tiny.config) throws -> URL {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try config.jsonData().write(to: dir.appendingPathComponent("config.json"))
        let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (5..<config.vocabSize).map { "w\($0)" }
        try Data((tokens.joined(separator: "\n") + "\n").utf8).write(to: dir.appendingPathComponent("vocab.txt"))
        return dir
    }

    static func bits(_ b: FloatBuffer) -> [UInt32] { b.toArray().map(\.bitPattern) }
}

final class CheckpointTests: XCTestCase {
    var root: URL!
    var modelDir: URL!
    let comm = SingleProcessCommunicator()

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-ckpt-\(UUID().uuidString)")
        modelDir = try Tiny.modelFolder(root.appendingPathComponent("model"))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    /// Saves the checkpoints of `steps` with models seeded by the step; returns the store.
    @discardableResult
    func saveSteps(_ steps: [Int], run: String = "run", keepLast: Int = 10, best: Int? = nil) throws -> CheckpointStore {
        let store = CheckpointStore(runDirectory: root.appendingPathComponent(run), keepLast: keepLast)
        for step in steps {
            let model = Tiny.model(seed: UInt64(step))
            try store.save(Tiny.state(step: step, modelSource: modelDir, best: best), model: model,
                           optimizer: Tiny.optimizer(for: model, seed: UInt64(step), step: step), communicator: comm)
        }
        return store
    }

    func steps(in store: CheckpointStore) throws -> [Int] {
        try store.listing().compactMap { CheckpointStore.step(ofFolder: $0) }.sorted()
    }

    /// The CSSLMError `body` throws (a failure if it throws another error or none).
    func csslmError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> CSSLMError? {
        do {
            try body()
            XCTFail("expected an error", file: file, line: line)
        } catch let error as CSSLMError {
            print("[expected error] \(error.message)")
            return error
        } catch {
            XCTFail("expected a CSSLMError, got \(error)", file: file, line: line)
        }
        return nil
    }

    // MARK: SHA-256

    func testSHA256MatchesTheFIPSTestVectorsWhateverTheChunking() {
        let vectors: [(String, String)] = [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ]
        for (text, hex) in vectors { XCTAssertEqual(SHA256.hash(Data(text.utf8)).hex, hex, text) }
        // One million 'a', fed in uneven pieces that straddle block boundaries.
        let million = Data(repeating: UInt8(ascii: "a"), count: 1_000_000)
        var h = SHA256()
        var offset = 0, piece = 1
        while offset < million.count {
            let end = min(offset + piece, million.count)
            h.update(million.subdata(in: offset..<end))
            offset = end
            piece = piece * 3 % 1000 + 1
        }
        XCTAssertEqual(h.finalize().hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    // MARK: Round trip

    func testSaveThenLoadRestoresParametersMomentsStepAndStateBitForBit() throws {
        let model = Tiny.model(seed: 7)
        let adam = Tiny.optimizer(for: model, seed: 8, step: 13)
        let state = Tiny.state(step: 13, modelSource: modelDir, best: 13)
        let store = CheckpointStore(runDirectory: root.appendingPathComponent("run"))
        let folder = try store.save(state, model: model, optimizer: adam, communicator: comm)
        XCTAssertEqual(folder.lastPathComponent, "step-13")

        let fresh = Tiny.model(seed: 99)
        let freshAdam = Tiny.optimizer(for: fresh, seed: 98, step: 0)
        XCTAssertNotEqual(Tiny.bits(fresh.parameters.values), Tiny.bits(model.parameters.values))
        let loaded = try store.load(.latest, into: fresh, optimizer: freshAdam, communicator: comm,
                                    expecting: ResumeExpectation(identity: Tiny.identity, config: TrainConfig()))
        XCTAssertEqual(loaded.state, state)
        XCTAssertEqual(loaded.directory, folder.path)
        XCTAssertEqual(Tiny.bits(fresh.parameters.values), Tiny.bits(model.parameters.values))
        XCTAssertEqual(Tiny.bits(freshAdam.m), Tiny.bits(adam.m))
        XCTAssertEqual(Tiny.bits(freshAdam.v), Tiny.bits(adam.v))
        XCTAssertEqual(freshAdam.step, 13)
        XCTAssertEqual(Tiny.bits(fresh.parameters.passthrough[0].values), Tiny.bits(model.parameters.passthrough[0].values))

        // The files hold what their names say, under HF names.
        let encoderNames = Set(bertEncoderTensors(Tiny.config).map(\.name))
        let weights = try SafetensorsFile(url: folder.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(Set(weights.names), encoderNames.union(["pooler.dense.bias"]))
        let heads = try SafetensorsFile(url: folder.appendingPathComponent("heads.safetensors"))
        XCTAssertEqual(Set(heads.names), Set(model.parameters.specs.map(\.name)).subtracting(encoderNames))
        let moments = try SafetensorsFile(url: folder.appendingPathComponent("optimizer.safetensors"))
        XCTAssertEqual(moments.names.count, 2 * model.parameters.specs.count)
        XCTAssertEqual(try moments.floats("v.embeddings.word_embeddings.weight").map(\.bitPattern),
                       Array(Tiny.bits(adam.v).prefix(Tiny.config.vocabSize * Tiny.config.hiddenSize)))
        for name in ["config.json", "vocab.txt", "state.json", "MANIFEST"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path), name)
        }
    }

    // MARK: Retention

    func testRetentionKeepsTheLastNAndTheBestDevCheckpoint() throws {
        let store = try saveSteps(Array(1...7), keepLast: 2, best: 3)
        XCTAssertEqual(try steps(in: store), [3, 6, 7])
        // A new best: the old best goes once it is neither recent nor best.
        try saveSteps([8], keepLast: 2, best: 8)
        XCTAssertEqual(try steps(in: store), [7, 8])
        try saveSteps([9, 10], keepLast: 1, best: 8)
        XCTAssertEqual(try steps(in: store), [8, 10])
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: store.directory.appendingPathComponent("index.json"))) as? [String: Any]
        XCTAssertEqual(index?["latest"] as? String, "step-10")
        XCTAssertEqual(index?["best"] as? String, "step-8")
        // `.best` resolves through the newest checkpoint's record.
        let model = Tiny.model(seed: 0)
        let best = try store.load(.best, into: model, optimizer: Tiny.optimizer(for: model, seed: 0, step: 0), communicator: comm)
        XCTAssertEqual(best.state.step, 8)
        XCTAssertEqual(Tiny.bits(model.parameters.values), Tiny.bits(Tiny.model(seed: 8).parameters.values))
        // No leftovers of deleted folders.
        XCTAssertEqual(try store.listing().filter { $0.hasPrefix(".") }, [])
    }

    func testSavingAStepAgainReplacesItsFolderAndDropsLaterOnes() throws {
        let store = try saveSteps([1, 2, 3, 4])
        // Resumed from step 2 and saved step 3 again: 4 belongs to the abandoned history.
        try saveSteps([3])
        XCTAssertEqual(try steps(in: store), [1, 2, 3])
        let model = Tiny.model(seed: 0)
        XCTAssertEqual(try store.load(.latest, into: model, optimizer: Tiny.optimizer(for: model, seed: 0, step: 0),
                                      communicator: comm).state.step, 3)
    }

    // MARK: Crash leftovers and corruption

    func testLoadTakesTheNewestCompleteCheckpointAndNamesEveryBrokenOne() throws {
        let store = try saveSteps([1, 2, 3, 4, 5, 6])
        let dir = store.directory
        // step-6: the MANIFEST was never written (killed before the end of the save).
        try FileManager.default.removeItem(at: dir.appendingPathComponent("step-6/MANIFEST"))
        // step-5: a truncated model file.
        let model5 = dir.appendingPathComponent("step-5/model.safetensors")
        try Data(try Data(contentsOf: model5).prefix(1000)).write(to: model5)
        // step-4: one bit flipped in the optimizer moments.
        let adam4 = dir.appendingPathComponent("step-4/optimizer.safetensors")
        var bytes = try Data(contentsOf: adam4)
        bytes[bytes.count / 2] ^= 0x10
        try bytes.write(to: adam4)
        // step-3: a torn MANIFEST.
        let manifest3 = dir.appendingPathComponent("step-3/MANIFEST")
        try Data(try Data(contentsOf: manifest3).prefix(40)).write(to: manifest3)
        // A half-written save of step 7.
        let partial = dir.appendingPathComponent(".tmp-step-7")
        try FileManager.default.createDirectory(at: partial, withIntermediateDirectories: true)
        try Data(repeating: 1, count: 100).write(to: partial.appendingPathComponent("model.safetensors"))
        // A complete folder caught between being renamed aside and removed by a pruning save.
        try FileManager.default.copyItem(at: dir.appendingPathComponent("step-2"), to: dir.appendingPathComponent(".del-step-9-1"))

        let model = Tiny.model(seed: 0)
        let loaded = try store.load(.latest, into: model, optimizer: Tiny.optimizer(for: model, seed: 0, step: 0), communicator: comm)
        loaded.notes.forEach { print("[note] \($0)") }
        XCTAssertEqual(loaded.state.step, 2)
        XCTAssertEqual(Tiny.bits(model.parameters.values), Tiny.bits(Tiny.model(seed: 2).parameters.values))
        let notes = loaded.notes.joined(separator: "\n")
        XCTAssertTrue(notes.contains(".tmp-step-7: a save that did not finish"), notes)
        XCTAssertTrue(notes.contains("step-6: no MANIFEST"), notes)
        XCTAssertTrue(notes.contains("step-5: model.safetensors: 1000 bytes, MANIFEST says"), notes)
        XCTAssertTrue(notes.contains("step-4: optimizer.safetensors: SHA-256"), notes)
        XCTAssertTrue(notes.contains("step-3: MANIFEST: not a valid csslm manifest"), notes)
        XCTAssertTrue(notes.contains("resuming from \(dir.path)/step-2"), notes)

        // Asked for by path, a broken checkpoint is an error naming the file.
        let error = csslmError {
            try store.load(.path(dir.appendingPathComponent("step-4")), into: model,
                           optimizer: Tiny.optimizer(for: model, seed: 0, step: 0), communicator: comm)
        }
        XCTAssertTrue(error?.message.contains("step-4 is not a complete checkpoint: optimizer.safetensors: SHA-256") == true)

        // The next save clears the leftovers and keeps going.
        try saveSteps([7])
        XCTAssertEqual(try store.listing().filter { $0.hasPrefix(".") }, [])
        XCTAssertEqual(try store.load(.latest, into: model, optimizer: Tiny.optimizer(for: model, seed: 0, step: 0),
                                      communicator: comm).state.step, 7)
    }

    func testBitFlipInAnyFileIsDetected() throws {
        let store = try saveSteps([1])
        let folder = store.folder(step: 1)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0 != "MANIFEST" }.sorted()
        XCTAssertEqual(names.count, 6)
        for name in names {
            let url = folder.appendingPathComponent(name)
            let original = try Data(contentsOf: url)
            var flipped = original
            flipped[original.count - 1] ^= 0x01
            try flipped.write(to: url)
            XCTAssertThrowsError(try CheckpointManifest.verify(folder, required: CheckpointStore.requiredFiles)) { error in
                XCTAssertEqual((error as? CheckpointManifest.Failure)?.file, name)
            }
            try original.write(to: url)
        }
        XCTAssertNoThrow(try CheckpointManifest.verify(folder, required: CheckpointStore.requiredFiles))
    }

    // MARK: Errors

    func testMissingUnreadableAndForeignCheckpointsGiveClearErrors() throws {
        let model = Tiny.model(seed: 0)
        let adam = Tiny.optimizer(for: model, seed: 0, step: 0)
        func load(_ selection: CheckpointSelection, run: String = "run", expecting: ResumeExpectation? = nil) throws {
            try CheckpointStore(runDirectory: root.appendingPathComponent(run))
                .load(selection, into: model, optimizer: adam, communicator: comm, expecting: expecting)
        }
        // Nothing saved yet.
        XCTAssertTrue(csslmError { try load(.latest, run: "empty") }?.message.contains("no checkpoints folder") == true)
        XCTAssertTrue(csslmError { try load(.path(root.appendingPathComponent("nowhere"))) }?.message.contains("no such checkpoint") == true)
        // `checkpoints` is a file.
        try FileManager.default.createDirectory(at: root.appendingPathComponent("odd"), withIntermediateDirectories: true)
        try Data("x".utf8).write(to: root.appendingPathComponent("odd/checkpoints"))
        XCTAssertTrue(csslmError { try load(.latest, run: "odd") }?.message.contains("is a file, not a checkpoints folder") == true)

        let store = try saveSteps([1, 2])
        // An unreadable file: a folder where state.json should be (root reads through chmod 000).
        let state2 = store.folder(step: 2).appendingPathComponent("state.json")
        try FileManager.default.removeItem(at: state2)
        try FileManager.default.createDirectory(at: state2, withIntermediateDirectories: false)
        let unreadable = csslmError { try load(.path(store.folder(step: 2))) }
        XCTAssertTrue(unreadable?.message.contains("state.json: is a folder, not a file") == true)
        if geteuid() != 0 {
            try FileManager.default.setAttributes([.posixPermissions: 0], ofItemAtPath: store.directory.path)
            defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: store.directory.path) }
            XCTAssertTrue(csslmError { try load(.latest) }?.message.contains("cannot list the checkpoints folder") == true)
        }

        // Another model, another dataset, a conflicting config: refused, naming the field.
        let other = RunIdentity(model: "sha256:another-model", dataset: Tiny.identity.dataset)
        XCTAssertTrue(csslmError { try load(.latest, expecting: ResumeExpectation(identity: other, config: TrainConfig())) }?
            .message.contains("another model") == true)
        let otherData = RunIdentity(model: Tiny.identity.model, dataset: "sha256:other-data")
        XCTAssertTrue(csslmError { try load(.latest, expecting: ResumeExpectation(identity: otherData, config: TrainConfig())) }?
            .message.contains("another dataset") == true)
        for (field, change) in [("perClass", { (c: inout TrainConfig) in c.perClass = 8 }),
                                ("batchSize", { (c: inout TrainConfig) in c.batchSize = 32 }),
                                ("method", { (c: inout TrainConfig) in c.method = .scl }),
                                ("sampleSeed", { (c: inout TrainConfig) in c.sampleSeed = 3 })] {
            var config = TrainConfig()
            change(&config)
            let error = csslmError { try load(.latest, expecting: ResumeExpectation(identity: Tiny.identity, config: config)) }
            XCTAssertTrue(error?.message.contains("config field '\(field)'") == true, field)
        }
        // Allowed changes are noted, not refused; so is another world size.
        var longer = TrainConfig()
        longer.epochs = 20
        let four = CheckpointStore(runDirectory: root.appendingPathComponent("four"))
        try four.save(Tiny.state(step: 1, modelSource: modelDir, worldSize: 4), model: Tiny.model(seed: 1),
                      optimizer: Tiny.optimizer(for: model, seed: 1, step: 1), communicator: comm)
        let notes = try four.load(.latest, into: model, optimizer: adam, communicator: comm,
                                  expecting: ResumeExpectation(identity: Tiny.identity, config: longer)).notes.joined(separator: "\n")
        XCTAssertTrue(notes.contains("saved with 4 rank(s), resuming with 1"), notes)
        XCTAssertTrue(notes.contains("config field 'epochs' changed from 10 to 20"), notes)

        // A checkpoint of a model with another shape, loaded without an expectation: the tensor is named.
        let wide = Tiny.model(seed: 0, config: BertConfig(vocabSize: 50, hiddenSize: 8, numHiddenLayers: 2, numAttentionHeads: 2,
                                                          intermediateSize: 32, maxPositionEmbeddings: 16))
        let shape = csslmError {
            try store.load(.latest, into: wide, optimizer: AdamW(config: AdamWConfig(), parameterCount: wide.parameters.count),
                           communicator: comm)
        }
        XCTAssertTrue(shape?.message.contains("has shape") == true)
    }

    func testRunIdentityChangesWithTheModelOrTheDataAndNamesAMissingFile() throws {
        let model = Tiny.model(seed: 1)
        try model.saveEncoder(to: modelDir.appendingPathComponent("model.safetensors"))
        let data = root.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        try Data("neg\npos\n".utf8).write(to: data.appendingPathComponent("labels.txt"))
        try Data("{\"text\": \"fine\", \"label\": 1}\n".utf8).write(to: data.appendingPathComponent("train.jsonl"))
        let first = try RunIdentity.of(modelDirectory: modelDir, dataDirectory: data)
        XCTAssertEqual(try RunIdentity.of(modelDirectory: modelDir, dataDirectory: data), first)
        XCTAssertTrue(first.model.hasPrefix("sha256:") && first.model.count == 71)

        model.parameters.values[0] += 1
        try model.saveEncoder(to: modelDir.appendingPathComponent("model.safetensors"))
        let retrained = try RunIdentity.of(modelDirectory: modelDir, dataDirectory: data)
        XCTAssertNotEqual(retrained.model, first.model)
        XCTAssertEqual(retrained.dataset, first.dataset)

        try Data("{\"text\": \"fine\", \"label\": 0}\n".utf8).write(to: data.appendingPathComponent("train.jsonl"))
        XCTAssertNotEqual(try RunIdentity.of(modelDirectory: modelDir, dataDirectory: data).dataset, first.dataset)

        try FileManager.default.removeItem(at: modelDir.appendingPathComponent("model.safetensors"))
        XCTAssertTrue(csslmError { _ = try RunIdentity.of(modelDirectory: modelDir, dataDirectory: data) }?
            .message.contains("model.safetensors: missing") == true)
        // A state written by a newer csslm is refused with a version message.
        XCTAssertTrue(csslmError { _ = try TrainingState.decode(Data("{\"formatVersion\": 99}".utf8), file: "state.json") }?
            .message.contains("format version 99 is newer") == true)
    }

    // MARK: Export

    func testExportWritesAnHFFolderThatLoadsToTheSameWeights() throws {
        let model = Tiny.model(seed: 5)
        let store = CheckpointStore(runDirectory: root.appendingPathComponent("run"))
        try store.save(Tiny.state(step: 5, modelSource: modelDir), model: model,
                       optimizer: Tiny.optimizer(for: model, seed: 5, step: 5), communicator: comm)
        // The model folder may be gone by export time: the checkpoint carries config and vocab.
        try FileManager.default.removeItem(at: modelDir)
        let out = root.appendingPathComponent("export")
        let report = try exportCheckpoint(.path(root.appendingPathComponent("run")), to: out)
        XCTAssertEqual(report.step, 5)
        for name in ["config.json", "model.safetensors", "heads.safetensors", "vocab.txt", "tokenizer_config.json"] {
            XCTAssertTrue(report.files.contains(name), name)
        }
        let exported = try BertClassifier(modelDirectory: out, numLabels: 3, extraHeads: pairHeadTensors(hidden: Tiny.config.hiddenSize))
        XCTAssertEqual(Tiny.bits(exported.parameters.values), Tiny.bits(model.parameters.values))
        XCTAssertEqual(exported.parameters.passthrough.map(\.name), ["pooler.dense.bias"])
        let tokenizer = try WordPieceTokenizer(modelDirectory: out)
        XCTAssertEqual(tokenizer.separatorId, 3)

        // A corrupted checkpoint is not exported.
        let weights = store.folder(step: 5).appendingPathComponent("heads.safetensors")
        var bytes = try Data(contentsOf: weights)
        bytes[100] ^= 0x80
        try bytes.write(to: weights)
        let error = csslmError { _ = try exportCheckpoint(.path(store.folder(step: 5)), to: root.appendingPathComponent("export2")) }
        XCTAssertTrue(error?.message.contains("heads.safetensors: SHA-256") == true)
    }

    // MARK: Child processes

    /// csslm-mpitest, built next to the tests.
    func scenarioBinary() throws -> URL { try DistributedTests.scenarioBinary() }

    /// SIGKILLs a process that saves a checkpoint per step at random moments (before, during and
    /// after each file, the MANIFEST, the rename and the pruning), restarting it after each kill
    /// (it resumes from the newest checkpoint). After every kill a fresh load must give the newest
    /// checkpoint the child reported complete or a newer one, with exactly that step's contents.
    /// Runs the checkpoint-loop scenario alone on `run`; SIGKILLs it after `killAfter` seconds if
    /// given. Returns how it ended and its output (stdout and stderr).
    func runLoop(_ run: URL, _ arguments: [String], killAfter: Double? = nil) throws -> (reason: Process.TerminationReason, status: Int32, output: String) {
        let log = root.appendingPathComponent("child-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let child = Process()
        child.executableURL = try scenarioBinary()
        child.arguments = ["checkpoint-loop", "--single", "--run", run.path, "--keep", "2"] + arguments
        child.standardOutput = try FileHandle(forWritingTo: log)
        child.standardError = child.standardOutput
        try child.run()
        if let killAfter {
            usleep(useconds_t(killAfter * 1e6))
            kill(child.processIdentifier, SIGKILL)
        }
        child.waitUntilExit()
        return (child.terminationReason, child.terminationStatus, try String(contentsOf: log, encoding: .utf8))
    }

    /// Loads the newest checkpoint of `run` into a fresh model of the scenario's shape and checks
    /// its contents against the pattern of its step; returns the state.
    func loadScenarioCheckpoint(_ run: URL, _ selection: CheckpointSelection = .latest,
                                file: StaticString = #filePath, line: UInt = #line) throws -> TrainingState {
        let model = BertClassifier(config: checkpointConfig, numLabels: 3, seed: 1)
        let adam = AdamW(config: AdamWConfig(), parameterCount: model.parameters.count)
        let loaded = try CheckpointStore(runDirectory: run).load(selection, into: model, optimizer: adam, communicator: comm)
        XCTAssertNil(patternMismatch(step: loaded.state.step, model: model, optimizer: adam),
                     "\(loaded.directory) holds other contents than step \(loaded.state.step)'s", file: file, line: line)
        return loaded.state
    }

    /// Crashes (SIGKILL) at each event of a save in turn: before and after each file, the
    /// MANIFEST, the rename and the pruning. Resume then finds the checkpoint the event implies
    /// (the new one from "sealed" on, the previous one before), and the run continues from it.
    func testSIGKILLAtEachStageOfASaveKeepsTheNewestCompleteCheckpoint() throws {
        let probe = root.appendingPathComponent("probe")
        let clean = try runLoop(probe, ["--steps", "3"])
        XCTAssertEqual(clean.status, 0, clean.output)
        let events = clean.output.split(separator: "\n").filter { $0.hasPrefix("event 3 ") }.map { String($0.dropFirst(8)) }
        XCTAssertEqual(events.first, "writing model.safetensors")
        XCTAssertTrue(events.contains("pruning step-1"), "\(events)")
        let sealed = try XCTUnwrap(events.firstIndex(of: "sealed"))
        for (i, event) in events.enumerated() {
            let run = root.appendingPathComponent("at-\(i)")
            let crash = try runLoop(run, ["--kill-step", "3", "--kill-at", event])
            XCTAssertEqual(crash.reason, .uncaughtSignal, "\(event): the child did not die\n\(crash.output)")
            XCTAssertTrue(crash.output.hasSuffix("event 3 \(event)\n"), "\(event): \(crash.output)")
            let expected = i >= sealed ? 3 : 2
            XCTAssertEqual(try loadScenarioCheckpoint(run).step, expected, "killed after '\(event)'")
            let resumed = try runLoop(run, ["--steps", "1"])
            XCTAssertEqual(resumed.status, 0, "resume after '\(event)': \(resumed.output)")
            XCTAssertTrue(resumed.output.contains("\"final_step\":\(expected + 1)"), "resume after '\(event)': \(resumed.output)")
        }
        print("[kill test] SIGKILL after each of \(events.count) save events, then resumed: \(events.joined(separator: " | "))")
    }

    func testSIGKILLAtRandomMomentsNeverLosesACompleteCheckpoint() throws {
        let run = root.appendingPathComponent("killed")
        var rng = SplitMix64(seed: 2024)
        let kills = 40
        var newestComplete = 0
        var phases: [String: Int] = [:]
        for round in 0..<kills {
            // The child starts in ~20-100 ms and saves one checkpoint every ~5-50 ms (fsyncs).
            let child = try runLoop(run, [], killAfter: 0.02 + 0.4 * Double(rng.nextUniform()))
            let output = child.output
            XCTAssertEqual(child.reason, .uncaughtSignal, "kill \(round): the child ended by itself\n\(output)")
            let lines = output.split(separator: "\n")
            XCTAssertFalse(lines.contains { $0.contains("error") || $0.contains("failed") }, lines.joined(separator: "\n"))
            if let saved = lines.last(where: { $0.hasPrefix("saved ") }), let n = Int(saved.dropFirst(6)) { newestComplete = n }
            // The last line says where the kill landed: after that event and before the next one.
            let last = lines.last.map(String.init) ?? ""
            let phase = last.hasPrefix("event ") ? "after '" + last.split(separator: " ").dropFirst(2).joined(separator: " ") + "'"
                : last.hasPrefix("saved ") ? "between saves" : last.hasPrefix("resumed ") ? "after resuming" : "starting or resuming"
            phases[phase, default: 0] += 1

            // Before the first "saved" line there may be no checkpoint yet: then a clear error is fine.
            guard let state = newestComplete > 0 ? try loadScenarioCheckpoint(run) : try? loadScenarioCheckpoint(run) else { continue }
            XCTAssertGreaterThanOrEqual(state.step, newestComplete, "kill \(round): a complete checkpoint was lost")
            newestComplete = state.step
            if let best = state.bestDev {
                XCTAssertEqual(try loadScenarioCheckpoint(run, .best).step, best.step, "kill \(round): the best checkpoint was lost")
            }
        }
        print("[kill test] \(kills) kills, newest complete checkpoint step-\(newestComplete); kills landed at:")
        for (phase, count) in phases.sorted(by: { $0.key < $1.key }) { print("  \(count)× \(phase)") }
        XCTAssertGreaterThan(newestComplete, 5, "the child made too little progress to test anything")
    }

    /// The scenario's model shape and pattern (CheckpointScenario.swift in csslm-mpitest).
    let checkpointConfig = BertConfig(vocabSize: 1000, hiddenSize: 64, numHiddenLayers: 2, numAttentionHeads: 4,
                                      intermediateSize: 128, maxPositionEmbeddings: 64)

    func patternMismatch(step s: Int, model: BertClassifier, optimizer: AdamW) -> String? {
        for i in 0..<model.parameters.count {
            let value = Float(s) * 0.5 + Float(i % 1000) * 1e-3
            if model.parameters.values[i] != value || optimizer.m[i] != -value || optimizer.v[i] != Float(s) + Float(i % 7) {
                return "element \(i)"
            }
        }
        return optimizer.step == 2 * s ? nil : "optimizer step \(optimizer.step)"
    }

    /// Saves under 2 ranks, resumes under 3: ranks other than 0 are given a run folder that does
    /// not exist, so what they load can only have come through rank 0's broadcasts.
    func testRanksWithoutTheFilesLoadRankZerosCheckpointAtAnotherWorldSize() throws {
        guard DistributedTests.hasMPIRun else { throw XCTSkip("mpirun not found (apt install openmpi-bin)") }
        let binary = try scenarioBinary()
        let run = root.appendingPathComponent("mpi")
        var environment = ProcessInfo.processInfo.environment.filter { key, _ in
            !["OMPI_", "PMIX_", "OPAL_"].contains { key.hasPrefix($0) }
        }
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        environment["OPENBLAS_NUM_THREADS"] = "1"
        var reports: [[String: Any]] = []
        for (ranks, steps) in [(2, 3), (3, 2)] {
            let out = root.appendingPathComponent("mpi-\(ranks).log")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
            process.arguments = ["-k", "5", "120", "mpirun", "-np", String(ranks), "--oversubscribe", "--bind-to", "none",
                                 binary.path, "checkpoint-loop", "--run", run.path, "--steps", String(steps)]
            process.environment = environment
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = process.standardOutput
            try process.run()
            process.waitUntilExit()
            let text = try String(contentsOf: out, encoding: .utf8)
            XCTAssertEqual(process.terminationStatus, 0, text)
            let report = text.split(separator: "\n").reversed().lazy.compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }.first
            reports.append(try XCTUnwrap(report, text))
        }
        XCTAssertEqual(reports[0]["final_step"] as? Int, 3)
        XCTAssertEqual(reports[1]["resumed_from"] as? Int, 3)
        XCTAssertEqual(reports[1]["final_step"] as? Int, 5)
        let notes = (reports[1]["notes"] as? [String] ?? []).joined(separator: "\n")
        XCTAssertTrue(notes.contains("saved with 2 rank(s), resuming with 3"), notes)
        let stray = try FileManager.default.contentsOfDirectory(atPath: root.path).filter { $0.contains("has-no-files") }
        XCTAssertEqual(stray, [], "a rank other than 0 wrote files")
    }
}
