// Resume: rank 0 finds the newest checkpoint whose MANIFEST verifies (saying why it skipped any
// other), checks that it belongs to this run, reads it into its own model and optimizer, and
// broadcasts the tensors and the state, so the other ranks need no shared file system.
import Foundation

/// Which checkpoint to resume from.
public enum CheckpointSelection: Equatable, Sendable {
    /// The newest complete checkpoint of the store.
    case latest
    /// The best-dev checkpoint recorded in the newest complete one.
    case best
    /// A checkpoint folder (`…/step-N`), or a run or checkpoints folder (its newest complete one).
    case path(URL)

    /// "latest", "best", or a path.
    public init(_ text: String) {
        switch text {
        case "latest": self = .latest
        case "best": self = .best
        default: self = .path(URL(fileURLWithPath: text))
        }
    }
}

/// What a resuming run must match; see `TrainingState.checkResumable`.
public struct ResumeExpectation: Sendable {
    public var identity: RunIdentity
    public var config: TrainConfig
    public init(identity: RunIdentity, config: TrainConfig) {
        self.identity = identity
        self.config = config
    }
}

/// A checkpoint read back: the state, where it came from, and what rank 0 has to say about the
/// choice (which folder, why others were skipped, config fields that changed). The same on every rank.
public struct LoadedCheckpoint: Codable, Equatable, Sendable {
    public var state: TrainingState
    /// The checkpoint folder on rank 0.
    public var directory: String
    public var notes: [String]
}

/// A complete checkpoint found on disk, with the verified bytes of the files a load parses.
struct VerifiedCheckpoint {
    var directory: URL
    var manifest: CheckpointManifest
    var data: [String: Data]
    /// Why newer folders were passed over.
    var skipped: [String]

    var state: TrainingState {
        get throws { try TrainingState.decode(data[CheckpointStore.stateFile]!, file: directory.appendingPathComponent(CheckpointStore.stateFile).path) }
    }
}

extension CheckpointStore {
    /// Files a load parses (the rest of the folder is verified by checksum only).
    static let loadedFiles: Set<String> = [modelFile, headsFile, optimizerFile, stateFile]

    /// Restores `model`'s parameters, `optimizer`'s moments and step from a checkpoint and returns
    /// its state. Every rank calls it: rank 0 reads and verifies, everyone receives. With
    /// `expecting`, a checkpoint of another model or dataset, or with a conflicting config,
    /// throws an error naming the field (on every rank, before any weight changes). `selection`
    /// and `expecting` are read on rank 0 only (the other ranks may pass placeholders, e.g. not
    /// hash the model folder).
    ///
    /// ```swift
    /// let resumed = try store.load(CheckpointSelection(resumeFlag), into: model, optimizer: adam,
    ///                              communicator: comm, expecting: ResumeExpectation(identity: id, config: config))
    /// resumed.notes.forEach { log("[resume] \($0)") }
    /// ```
    @discardableResult
    public func load(_ selection: CheckpointSelection, into model: BertClassifier, optimizer: AdamW,
                     communicator: Communicator, expecting: ResumeExpectation? = nil) throws -> LoadedCheckpoint {
        try load(selection, into: model, optimizer: optimizer, communicator: communicator, expecting: expecting,
                 extraFiles: []).checkpoint
    }

    /// `load`, also returning the verified bytes of those of `extraFiles` (see `CheckpointExtraFile`)
    /// that the checkpoint holds, on rank 0 only (the other ranks get an empty dictionary: the
    /// owner of the files broadcasts what it parses from them).
    public func load(_ selection: CheckpointSelection, into model: BertClassifier, optimizer: AdamW,
                     communicator: Communicator, expecting: ResumeExpectation?,
                     extraFiles: Set<String>) throws -> (checkpoint: LoadedCheckpoint, extras: [String: Data]) {
        let parameters = model.parameters
        try communicator.checkSameOnAllRanks(parameters.count, what: "parameter count",
                                             name: "allreduce(checkpoint layout check)")
        var header = Data()
        var extras: [String: Data] = [:]
        if communicator.rank == 0 {
            do {
                let loaded: LoadedCheckpoint
                (loaded, extras) = try readIntoRoot(selection, model: model, optimizer: optimizer, worldSize: communicator.size,
                                                    expecting: expecting, extraFiles: extraFiles)
                header = try JSONEncoder().encode(LoadHeader(outcome: .ok, loaded: loaded))
            } catch {
                header = try JSONEncoder().encode(LoadHeader(outcome: Outcome(error), loaded: nil))
            }
        }
        try communicator.broadcast(&header, name: "broadcast(checkpoint state)")
        let agreed = try JSONDecoder().decode(LoadHeader.self, from: header)
        if let error = agreed.outcome.error { throw error }
        guard let loaded = agreed.loaded else { throw CSSLMError("checkpoint load: rank 0 sent no state") }
        try communicator.broadcast(parameters.values.buffer, root: 0, name: "broadcast(checkpoint parameters)")
        try communicator.broadcast(optimizer.m.buffer, root: 0, name: "broadcast(checkpoint AdamW m)")
        try communicator.broadcast(optimizer.v.buffer, root: 0, name: "broadcast(checkpoint AdamW v)")
        for p in parameters.passthrough {
            try communicator.broadcast(p.values.buffer, root: 0, name: "broadcast(checkpoint \(p.name))")
        }
        optimizer.step = loaded.state.optimizerStep
        return (loaded, extras)
    }

    /// The run config saved in the checkpoint `selection` names (the base of a resumed run's
    /// config), with `output` the run folder that holds the checkpoint (when it sits in one's
    /// checkpoints folder): rank 0 finds and verifies it, every rank receives it.
    public func savedConfig(_ selection: CheckpointSelection, communicator: Communicator) throws -> TrainConfig {
        var bytes = Data()
        var outcome = Outcome.ok
        if communicator.rank == 0 {
            do {
                let found = try locate(selection, keep: [Self.stateFile])
                var config = try found.state.config
                let folder = found.directory.deletingLastPathComponent()
                if folder.lastPathComponent == Self.folderName { config.output = folder.deletingLastPathComponent().path }
                bytes = try JSONEncoder().encode(config)
            } catch {
                outcome = Outcome(error)
            }
        }
        try agreeOnOutcome(outcome, communicator: communicator, what: "read the checkpoint's config")
        try communicator.broadcast(&bytes, name: "broadcast(checkpoint config)")
        return try JSONDecoder().decode(TrainConfig.self, from: bytes)
    }

    struct LoadHeader: Codable {
        var outcome: Outcome
        var loaded: LoadedCheckpoint?
    }

    /// Rank 0: locate, verify, check, and read into `model` and `optimizer`.
    private func readIntoRoot(_ selection: CheckpointSelection, model: BertClassifier, optimizer: AdamW,
                              worldSize: Int, expecting: ResumeExpectation?,
                              extraFiles: Set<String>) throws -> (LoadedCheckpoint, [String: Data]) {
        let found = try locate(selection, keep: Self.loadedFiles.union(extraFiles))
        let state = try found.state
        let name = found.directory.path
        var notes = found.skipped
        notes.append("resuming from \(name) (step \(state.step), epoch \(state.epoch), stage \(state.stage))")
        if state.step != found.manifest.step {
            throw CSSLMError("\(name): state.json says step \(state.step) but the MANIFEST says \(found.manifest.step)")
        }
        if let expecting {
            notes += try state.checkResumable(identity: expecting.identity, config: expecting.config,
                                              worldSize: worldSize, checkpoint: name)
        }
        if state.numLabels != model.numLabels {
            throw CSSLMError("\(name): the checkpoint's classifier has \(state.numLabels) labels, this model \(model.numLabels)",
                             hint: "resume with the dataset the checkpoint was trained on")
        }
        try restore(found, into: model, optimizer: optimizer)
        return (LoadedCheckpoint(state: state, directory: name, notes: notes), found.data.filter { extraFiles.contains($0.key) })
    }

    /// Copies the verified tensors into the model's flat buffers and the optimizer's moments.
    func restore(_ found: VerifiedCheckpoint, into model: BertClassifier, optimizer: AdamW) throws {
        let dir = found.directory
        func file(_ name: String) throws -> SafetensorsFile {
            try SafetensorsFile(data: found.data[name]!, path: dir.appendingPathComponent(name).path)
        }
        let encoderNames = Set(bertEncoderTensors(model.config).map(\.name))
        let parameters = model.parameters
        let weights = try file(Self.modelFile), heads = try file(Self.headsFile), moments = try file(Self.optimizerFile)
        for (source, isEncoder) in [(weights, true), (heads, false)] {
            let missing = try parameters.load(from: source, prefixes: [""]) { encoderNames.contains($0.name) == isEncoder }
            if let first = missing.first {
                throw CSSLMError("\(source.path): missing tensor '\(first)'\(missing.count > 1 ? " and \(missing.count - 1) more" : "")",
                                 hint: "the checkpoint was written for another model layout")
            }
        }
        for p in parameters.passthrough {
            try weights.read(p.name, into: p.values.base, expectedShape: p.shape)
        }
        for s in parameters.specs {
            try moments.read("m." + s.name, into: optimizer.m.base + s.offset, expectedShape: s.shape)
            try moments.read("v." + s.name, into: optimizer.v.base + s.offset, expectedShape: s.shape)
        }
    }

    /// The checkpoint `selection` names, verified, with the messages for the folders skipped and
    /// the bytes of the files in `keep`.
    func locate(_ selection: CheckpointSelection, keep: Set<String> = loadedFiles) throws -> VerifiedCheckpoint {
        switch selection {
        case .latest:
            return try newestComplete(keep: keep)
        case .best:
            let newest = try newestComplete(keep: keep)
            guard let best = try newest.state.bestDev else {
                throw CSSLMError("\(newest.directory.path): no best-dev checkpoint recorded yet")
            }
            if best.step == newest.manifest.step { return newest }
            return try Self.verified(folder(step: best.step), skipped: newest.skipped, keep: keep)
        case .path(let url):
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
                throw CSSLMError("\(url.path): no such checkpoint", hint: "pass a checkpoint folder (…/checkpoints/step-N) or a run folder that holds checkpoints/")
            }
            guard isDirectory.boolValue else {
                throw CSSLMError("\(url.path): is a file, not a checkpoint folder")
            }
            if FileManager.default.fileExists(atPath: url.appendingPathComponent(CheckpointManifest.fileName).path)
                || Self.step(ofFolder: url.lastPathComponent) != nil {
                return try Self.verified(url, skipped: [], keep: keep)
            }
            let store = url.lastPathComponent == Self.folderName
                ? CheckpointStore(runDirectory: url.deletingLastPathComponent())
                : CheckpointStore(runDirectory: url)
            return try store.newestComplete(keep: keep)
        }
    }

    /// Verifies `dir` or throws an error naming the file at fault.
    static func verified(_ dir: URL, skipped: [String], keep: Set<String> = loadedFiles) throws -> VerifiedCheckpoint {
        do {
            let (manifest, data) = try CheckpointManifest.verify(dir, required: requiredFiles, keep: keep)
            return VerifiedCheckpoint(directory: dir, manifest: manifest, data: data, skipped: skipped)
        } catch let failure as CheckpointManifest.Failure {
            throw CSSLMError("\(dir.path) is not a complete checkpoint: \(failure.file.map { "\($0): " } ?? "")\(failure.reason)",
                             hint: "resume from 'latest' to take the newest complete one")
        }
    }

    /// The newest `step-N` folder that verifies; the reasons for every newer one skipped, and a
    /// note for each unfinished save (`.tmp-…`) found.
    func newestComplete(keep: Set<String> = loadedFiles) throws -> VerifiedCheckpoint {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) else {
            throw CSSLMError("\(directory.path): no checkpoints folder, nothing to resume from",
                             hint: "start without --resume, or pass the run folder that holds checkpoints/")
        }
        guard isDirectory.boolValue else { throw CSSLMError("\(directory.path): is a file, not a checkpoints folder") }
        let names = try listing()
        var skipped = names.filter { $0.hasPrefix(Self.temporaryPrefix) }.sorted().map {
            "ignored \($0): a save that did not finish"
        }
        let steps = names.compactMap { Self.step(ofFolder: $0) }.sorted(by: >)
        for step in steps {
            let dir = folder(step: step)
            do {
                let (manifest, data) = try CheckpointManifest.verify(dir, required: Self.requiredFiles, keep: keep)
                return VerifiedCheckpoint(directory: dir, manifest: manifest, data: data, skipped: skipped)
            } catch let failure as CheckpointManifest.Failure {
                skipped.append("skipped \(failure)")
            }
        }
        throw CSSLMError("\(directory.path): no complete checkpoint"
                         + (skipped.isEmpty ? "" : " (\(skipped.joined(separator: "; ")))"),
                         hint: steps.isEmpty ? "the run saved none yet: start without --resume"
                                             : "every checkpoint failed verification; start a new run")
    }
}
