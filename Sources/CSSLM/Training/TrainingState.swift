// Everything besides the tensors that a run needs to continue exactly where it stopped
// (docs/design.md#exact-resume), written as `state.json` in each checkpoint, and the identity of what
// the run trains on, which a resume must match.
import Foundation

/// What a run trains: the initial weights and the labelled data. A checkpoint resumes only into a
/// run with the same identity.
public struct RunIdentity: Codable, Equatable, Sendable {
    /// "sha256:<hex>" over the model folder's config.json, model.safetensors and vocab.txt.
    public var model: String
    /// "sha256:<hex>" over the dataset folder's labels.txt and split files.
    public var dataset: String

    public init(model: String, dataset: String) {
        self.model = model
        self.dataset = dataset
    }

    /// The files that make a model's identity, in hashing order.
    public static let modelFiles = ["config.json", "model.safetensors", "vocab.txt"]
    /// The files that make a dataset's identity (those present), in hashing order.
    public static var datasetFiles: [String] { DatasetSplits.fileNames }

    /// Hashes the model and dataset folders (reads ~100 MB for MiniLM: call it on rank 0 only).
    public static func of(modelDirectory: URL, dataDirectory: URL) throws -> RunIdentity {
        RunIdentity(model: try folderDigest(modelDirectory, files: modelFiles, allRequired: true),
                    dataset: try folderDigest(dataDirectory, files: datasetFiles, allRequired: false))
    }

    /// SHA-256 over each present file's name, byte length and contents, in the order of `files`.
    static func folderDigest(_ dir: URL, files: [String], allRequired: Bool) throws -> String {
        var h = SHA256()
        var found = 0
        for name in files {
            let url = dir.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else {
                if allRequired { throw CSSLMError("\(url.path): missing (needed to identify the run's inputs)") }
                continue
            }
            let data: Data
            do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
                throw CSSLMError("\(url.path): cannot read (\(fileErrorReason(error, path: url.path)))")
            }
            h.update(Data("\(name)\n\(data.count)\n".utf8))
            h.update(data)
            found += 1
        }
        guard found > 0 else {
            throw CSSLMError("\(dir.path): none of \(files.joined(separator: ", ")) found",
                             hint: "is this the dataset folder of the run?")
        }
        return "sha256:" + h.finalize().hex
    }
}

/// The best dev evaluation so far and the step whose checkpoint holds its weights.
public struct BestDevRecord: Codable, Equatable, Sendable {
    public var step: Int
    public var epoch: Int
    /// What was compared, e.g. "accuracy".
    public var metric: String
    public var value: Double
    /// Every metric of that evaluation (accuracy, macro_f1, and the test scores if taken).
    public var scores: [String: Double]

    public init(step: Int, epoch: Int, metric: String, value: Double, scores: [String: Double] = [:]) {
        self.step = step; self.epoch = epoch; self.metric = metric; self.value = value; self.scores = scores
    }
}

/// The scalar state of a run at a step boundary: together with the weights and the AdamW moments
/// it determines every later step.
public struct TrainingState: Codable, Equatable, Sendable {
    /// The layout of `state.json` and of the checkpoint folder; bumped on incompatible changes.
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    /// Optimizer steps completed; the next step to run has this index.
    public var step: Int
    /// The epoch the next step belongs to.
    public var epoch: Int
    /// The training stage, e.g. "finetune", "scl", or a CSS-LM stage name.
    public var stage: String
    /// Where the global sampler continues.
    public var sampler: SamplerPosition
    public var schedule: LinearSchedule
    /// `AdamW.step` (equals `step` unless updates were skipped on non-finite gradients).
    public var optimizerStep: Int
    /// The run's configuration at save.
    public var config: TrainConfig
    /// Ranks at save (a resume may use another number: the global batch stays the same).
    public var worldSize: Int
    public var identity: RunIdentity
    /// The model folder the run started from (export falls back to it for tokenizer files).
    public var modelSource: String
    public var numLabels: Int
    public var bestDev: BestDevRecord?
    /// State added by later stages (RNG streams, retrieval index version, cached scores or their
    /// recipe), opaque to the checkpoint code: each owner encodes its own values.
    public var extensions: [String: String]
    /// The csslm version that wrote it.
    public var writer: String

    public init(step: Int, epoch: Int, stage: String, sampler: SamplerPosition, schedule: LinearSchedule,
                optimizerStep: Int, config: TrainConfig, worldSize: Int, identity: RunIdentity,
                modelSource: String, numLabels: Int, bestDev: BestDevRecord? = nil,
                extensions: [String: String] = [:]) {
        formatVersion = Self.currentFormatVersion
        self.step = step; self.epoch = epoch; self.stage = stage; self.sampler = sampler
        self.schedule = schedule; self.optimizerStep = optimizerStep; self.config = config
        self.worldSize = worldSize; self.identity = identity; self.modelSource = modelSource
        self.numLabels = numLabels; self.bestDev = bestDev; self.extensions = extensions
        writer = CSSLMVersion.string
    }

    /// Pretty, key-sorted JSON (diffable between checkpoints).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// Decodes `state.json`; `file` names it in errors.
    public static func decode(_ data: Data, file: String) throws -> TrainingState {
        // The version first, so a newer layout gets a version message rather than a field error.
        struct Version: Decodable { var formatVersion: Int }
        guard let version = try? JSONDecoder().decode(Version.self, from: data) else {
            throw CSSLMError("\(file): not a csslm training state (no formatVersion)")
        }
        guard version.formatVersion <= currentFormatVersion else {
            throw CSSLMError("\(file): format version \(version.formatVersion) is newer than this csslm reads (\(currentFormatVersion))",
                             hint: "resume with the csslm version that wrote it, or a newer one")
        }
        do { return try JSONDecoder().decode(TrainingState.self, from: data) } catch {
            throw CSSLMError("\(file): invalid training state (\(error))")
        }
    }

    /// Config fields that change what each step computes: a resume must keep them.
    public static let resumeCriticalFields: [(name: String, value: (TrainConfig) -> String)] = [
        ("method", { $0.method.rawValue }),
        ("perClass", { String($0.perClass) }),
        ("sampleSeed", { String($0.sampleSeed) }),
        ("batchSize", { String($0.batchSize) }),
        ("seed", { String($0.seed) }),
        ("maxLength", { String($0.maxLength) }),
    ]

    /// Throws unless a run with `identity` and `config` may continue from this state; the error
    /// names the field. Returns notes on fields that differ but are allowed to (world size,
    /// epochs, learning rate, output, evaluation limits).
    public func checkResumable(identity current: RunIdentity, config now: TrainConfig, worldSize: Int,
                               checkpoint: String) throws -> [String] {
        let redo = "start a new run (another --output), or resume with the original settings"
        if identity.model != current.model {
            throw CSSLMError("\(checkpoint) was written by a run of another model: model identity \(identity.model.prefix(19))… "
                             + "(from \(modelSource)) differs from this run's \(current.model.prefix(19))… (from \(now.model))",
                             hint: redo)
        }
        if identity.dataset != current.dataset {
            throw CSSLMError("\(checkpoint) was written by a run on another dataset: dataset identity \(identity.dataset.prefix(19))… "
                             + "(from \(config.data)) differs from this run's \(current.dataset.prefix(19))… (from \(now.data))",
                             hint: redo)
        }
        for field in Self.resumeCriticalFields where field.value(config) != field.value(now) {
            throw CSSLMError("\(checkpoint): config field '\(field.name)' is \(field.value(config)) in the checkpoint "
                             + "but \(field.value(now)) in this run", hint: redo)
        }
        var notes: [String] = []
        if worldSize != self.worldSize {
            notes.append("saved with \(self.worldSize) rank(s), resuming with \(worldSize): same global batch, "
                         + "results equal up to float summation order")
        }
        let critical = Set(Self.resumeCriticalFields.map(\.name))
        let encoder = JSONEncoder()
        if let old = try? JSONSerialization.jsonObject(with: encoder.encode(config)) as? [String: Any],
           let new = try? JSONSerialization.jsonObject(with: encoder.encode(now)) as? [String: Any] {
            for key in old.keys.sorted() where !critical.contains(key) {
                let a = "\(old[key] ?? "nil")", b = "\(new[key] ?? "nil")"
                if a != b { notes.append("config field '\(key)' changed from \(a) to \(b)") }
            }
        }
        return notes
    }
}
