// Checkpoints of a run (docs/checkpoints.md, docs/design.md#exact-resume): one folder per saved step under
// `<run>/checkpoints/`, written so that a crash at any instant leaves every earlier complete
// checkpoint intact and never leaves a half-written folder under a final name.
//
//   checkpoints/step-N/         model.safetensors      encoder + pass-through tensors, HF names
//                               heads.safetensors      classifier and pair heads
//                               optimizer.safetensors  AdamW moments: m.<name>, v.<name> (F32)
//                               state.json             TrainingState
//                               config.json, vocab.txt, tokenizer files of the model folder
//                               MANIFEST               name, bytes, SHA-256 of each file: last
//   checkpoints/index.json      latest and best folder names, for people and tools (loading
//                               never depends on it)
//
// Save, on rank 0: each file to a temporary name inside `.tmp-step-N/`, fsync, rename; then the
// MANIFEST the same way; fsync the folder; rename it to `step-N`; fsync `checkpoints/`. Old
// checkpoints are renamed to `.del-…` before they are removed, so a folder is either complete
// under its final name or ignored. The other ranks wait for rank 0's verdict (one broadcast under a
// the watchdog's deadline), so a failed save throws the same error on every rank.
import Foundation

/// Something rank 0 is about to do or has done while saving (progress, and the kill tests' probe).
public enum CheckpointEvent: Equatable, Sendable, CustomStringConvertible {
    /// About to write this file into the temporary folder.
    case writing(String)
    case written(String)
    /// About to rename the temporary folder to its final name.
    case sealing
    /// The checkpoint is complete under its final name.
    case sealed
    /// About to delete an older checkpoint folder.
    case pruning(String)
    case done

    public var description: String {
        switch self {
        case .writing(let f): return "writing \(f)"
        case .written(let f): return "written \(f)"
        case .sealing: return "sealing"
        case .sealed: return "sealed"
        case .pruning(let f): return "pruning \(f)"
        case .done: return "done"
        }
    }
}

/// A file a checkpoint carries besides the standard layout, written by its owner (on rank 0) to
/// the URL it is given; it goes through the MANIFEST like every other file.
public struct CheckpointExtraFile {
    public var name: String
    public var write: (URL) throws -> Void
    public init(name: String, write: @escaping (URL) throws -> Void) {
        self.name = name
        self.write = write
    }
}

/// The checkpoints folder of one run: saving, retention and (in CheckpointStore+Load) resume.
///
/// ```swift
/// let store = CheckpointStore(runDirectory: URL(fileURLWithPath: config.output), keepLast: 2)
/// try store.save(state, model: model, optimizer: optimizer, communicator: comm)
/// let resumed = try store.load(.latest, into: model, optimizer: optimizer, communicator: comm,
///                              expecting: ResumeExpectation(identity: identity, config: config))
/// ```
public final class CheckpointStore {
    public static let folderName = "checkpoints"
    public static let modelFile = "model.safetensors"
    public static let headsFile = "heads.safetensors"
    public static let optimizerFile = "optimizer.safetensors"
    public static let stateFile = "state.json"
    public static let indexFile = "index.json"
    /// Files every checkpoint's MANIFEST must list.
    public static let requiredFiles = [modelFile, headsFile, optimizerFile, stateFile, "config.json", "vocab.txt"]
    /// Files of the model folder copied into each checkpoint when present (config.json and
    /// vocab.txt must be).
    public static let modelFolderFiles = ["config.json", "vocab.txt", "tokenizer_config.json",
                                          "special_tokens_map.json", "tokenizer.json"]
    static let temporaryPrefix = ".tmp-"
    static let deletingPrefix = ".del-"

    /// `<run>/checkpoints`.
    public let directory: URL
    /// Complete checkpoints kept besides the best-dev one (at least 1).
    public var keepLast: Int
    /// Called on rank 0 at each stage of a save.
    public var onEvent: ((CheckpointEvent) -> Void)?

    /// Contents of the model folder's config and tokenizer files, read at the first save.
    private var modelFolderContents: [(name: String, data: Data)]?

    public init(runDirectory: URL, keepLast: Int = 2) {
        directory = runDirectory.appendingPathComponent(Self.folderName)
        self.keepLast = max(1, keepLast)
    }

    /// The final folder of the checkpoint of `step`.
    public func folder(step: Int) -> URL { directory.appendingPathComponent(Self.folderName(step: step)) }

    static func folderName(step: Int) -> String { "step-\(step)" }

    /// The step of a final checkpoint folder name ("step-40" → 40), nil for anything else.
    static func step(ofFolder name: String) -> Int? {
        guard name.hasPrefix("step-"), let n = Int(name.dropFirst(5)), n >= 0, name == folderName(step: n) else { return nil }
        return n
    }

    // MARK: Save

    /// Writes a checkpoint of `state` (its `step` names the folder), the weights of `model` and
    /// the moments of `optimizer`, then deletes old checkpoints beyond the last `keepLast` and the
    /// best-dev one. Every rank calls it; rank 0 writes, the others wait for its result. Returns
    /// the folder of the new checkpoint.
    ///
    /// `model` rather than its `ParameterSet`: the encoder/head split and config.json come from it.
    /// `extraFiles` are written (on rank 0) after the required ones and listed in the MANIFEST like
    /// them, e.g. a trainer's best-dev weights or its retrieval state.
    @discardableResult
    public func save(_ state: TrainingState, model: BertClassifier, optimizer: AdamW,
                     communicator: Communicator, extraFiles: [CheckpointExtraFile] = []) throws -> URL {
        var outcome = Outcome.ok
        if communicator.rank == 0 {
            do {
                try write(state, model: model, optimizer: optimizer, extraFiles: extraFiles)
            } catch {
                outcome = Outcome(error)
            }
        }
        try agreeOnOutcome(outcome, communicator: communicator, what: "save checkpoint step-\(state.step)")
        return folder(step: state.step)
    }

    /// Rank 0's half of `save`.
    func write(_ state: TrainingState, model: BertClassifier, optimizer: AdamW, extraFiles: [CheckpointExtraFile] = []) throws {
        let fm = FileManager.default
        try createFolder(directory)
        try removeLeftovers()
        let final = folder(step: state.step)
        let temporary = directory.appendingPathComponent(Self.temporaryPrefix + final.lastPathComponent)
        try createFolder(temporary)

        var entries: [ManifestEntry] = []
        func add(_ name: String, _ body: (URL) throws -> Void) throws {
            onEvent?(.writing(name))
            let url = temporary.appendingPathComponent(name)
            do { try body(url) } catch let e as CSSLMError { throw e } catch {
                throw CSSLMError("\(url.path): cannot write (\(fileErrorReason(error, path: url.path)))", hint: "is the disk full or read-only?")
            }
            entries.append(try CheckpointManifest.entry(for: url))
            onEvent?(.written(name))
        }
        // Each writer goes through a temporary name, fsync and rename (writeAtomically).
        try add(Self.modelFile) { try model.saveEncoder(to: $0) }
        try add(Self.headsFile) { try model.saveHeads(to: $0) }
        try add(Self.optimizerFile) { url in
            let moments = model.parameters.specs.flatMap { s in
                [SafetensorsEntry(name: "m." + s.name, shape: s.shape,
                                  values: UnsafeBufferPointer(start: optimizer.m.base + s.offset, count: s.count)),
                 SafetensorsEntry(name: "v." + s.name, shape: s.shape,
                                  values: UnsafeBufferPointer(start: optimizer.v.base + s.offset, count: s.count))]
            }
            try SafetensorsWriter.write(moments, metadata: ["format": "csslm-adamw", "step": String(optimizer.step)], to: url)
        }
        try add(Self.stateFile) { try writeAtomically(try state.jsonData(), to: $0) }
        for file in try modelFolderFiles(state: state, model: model) {
            try add(file.name) { try writeAtomically(file.data, to: $0) }
        }
        for file in extraFiles {
            guard !entries.contains(where: { $0.name == file.name }), file.name != CheckpointManifest.fileName,
                  !file.name.contains("/") else {
                throw CSSLMError("checkpoint extra file '\(file.name)' clashes with a file of the checkpoint layout")
            }
            try add(file.name, file.write)
        }
        try add(CheckpointManifest.fileName) { url in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try writeAtomically(try encoder.encode(CheckpointManifest(step: state.step, files: entries)), to: url)
        }
        try fsyncFolder(temporary)

        onEvent?(.sealing)
        if fm.fileExists(atPath: final.path) {
            // Saving a step again (e.g. after resuming from an older checkpoint): the old folder
            // leaves its final name before the new one takes it.
            try moveAside(final)
        }
        try renameItem(temporary, to: final)
        try fsyncFolder(directory)
        onEvent?(.sealed)

        try writeIndex(latest: final.lastPathComponent, best: state.bestDev)
        try prune(current: state.step, best: state.bestDev?.step)
        onEvent?(.done)
    }

    /// The config and tokenizer files of the run's model folder (cached after the first read);
    /// config.json is regenerated from the model when the folder has none.
    private func modelFolderFiles(state: TrainingState, model: BertClassifier) throws -> [(name: String, data: Data)] {
        if let cached = modelFolderContents { return cached }
        let source = URL(fileURLWithPath: state.modelSource)
        var files: [(name: String, data: Data)] = []
        for name in Self.modelFolderFiles {
            let url = source.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: url.path) {
                do { files.append((name, try Data(contentsOf: url))) } catch {
                    throw CSSLMError("\(url.path): cannot read (\(fileErrorReason(error, path: url.path)))",
                                     hint: "the checkpoint copies the model folder's config and tokenizer files")
                }
            } else if name == "config.json" {
                files.append((name, try model.config.jsonData()))
            } else if name == "vocab.txt" {
                throw CSSLMError("\(url.path): missing", hint: "the checkpoint needs the vocabulary of the model it trains (TrainingState.modelSource)")
            }
        }
        modelFolderContents = files
        return files
    }

    /// `index.json`: the newest and the best-dev checkpoint folder, for people and tools.
    private func writeIndex(latest: String, best: BestDevRecord?) throws {
        var index: [String: Any] = ["latest": latest]
        if let best, FileManager.default.fileExists(atPath: folder(step: best.step).path) {
            index["best"] = Self.folderName(step: best.step)
            index["bestMetric"] = best.metric
            index["bestValue"] = best.value
        }
        let data = try JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys])
        try writeAtomically(data, to: directory.appendingPathComponent(Self.indexFile))
    }

    /// Deletes every checkpoint folder except `current`, the `keepLast − 1` newest complete ones
    /// below it, and the best-dev one. Folders of later steps (left by a run that was resumed from
    /// an older checkpoint) are deleted too: the run's history continues from `current`.
    private func prune(current: Int, best: Int?) throws {
        var keep: Set<Int> = [current]
        if let best { keep.insert(best) }
        let steps = try listing().compactMap { Self.step(ofFolder: $0) }.sorted(by: >)
        let older = steps.filter { $0 < current && isSealed(folder(step: $0)) }
        keep.formUnion(older.prefix(keepLast - 1))
        var removed = false
        for step in steps where !keep.contains(step) {
            onEvent?(.pruning(Self.folderName(step: step)))
            try moveAside(folder(step: step))
            removed = true
        }
        if removed { try removeLeftovers() }
    }

    /// True when the folder has a MANIFEST (it was sealed; its contents are checked at load).
    private func isSealed(_ folder: URL) -> Bool {
        FileManager.default.fileExists(atPath: folder.appendingPathComponent(CheckpointManifest.fileName).path)
    }

    /// Renames `folder` to a `.del-` name (atomic: it stops being a checkpoint at once), then
    /// removes it; a crash in between leaves a leftover that the next save removes.
    private func moveAside(_ folder: URL) throws {
        let aside = directory.appendingPathComponent(Self.deletingPrefix + folder.lastPathComponent + "-\(getpid())")
        try renameItem(folder, to: aside)
        try fsyncFolder(directory)
        try? FileManager.default.removeItem(at: aside)
    }

    /// Removes `.tmp-…` and `.del-…` folders left by an earlier save that did not finish.
    private func removeLeftovers() throws {
        for name in try listing() where name.hasPrefix(Self.temporaryPrefix) || name.hasPrefix(Self.deletingPrefix) {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }

    /// Entry names of the checkpoints folder.
    func listing() throws -> [String] {
        do { return try FileManager.default.contentsOfDirectory(atPath: directory.path) } catch {
            throw CSSLMError("\(directory.path): cannot list the checkpoints folder (\(fileErrorReason(error)))")
        }
    }

    private func createFolder(_ url: URL) throws {
        do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw CSSLMError("\(url.path): cannot create folder (\(fileErrorReason(error, path: url.path)))",
                             hint: "is the run folder writable?")
        }
    }

    private func renameItem(_ from: URL, to: URL) throws {
        guard rename(from.path, to.path) == 0 else {
            throw CSSLMError("cannot rename \(from.path) to \(to.lastPathComponent) (\(String(cString: strerror(errno))))")
        }
    }

    // MARK: Agreement between ranks

    /// Rank 0's result of a save or load step, sent to every rank.
    struct Outcome: Codable {
        var message: String?
        var hint: String?
        static let ok = Outcome(message: nil, hint: nil)
        init(message: String?, hint: String?) { self.message = message; self.hint = hint }
        init(_ error: Error) {
            if let e = error as? CSSLMError { self.init(message: e.message, hint: e.hint) } else { self.init(message: "\(error)", hint: nil) }
        }
        var error: CSSLMError? { message.map { CSSLMError($0, hint: hint) } }
    }

    /// Broadcasts rank 0's outcome; every rank throws its error, if any. The other ranks wait
    /// here while rank 0 writes or reads, under the watchdog's one deadline
    /// (CSSLM_COLLECTIVE_TIMEOUT_S): a rank 0 stopped mid-save ends the job, it does not hang it.
    func agreeOnOutcome(_ outcome: Outcome, communicator: Communicator, what: String) throws {
        var bytes = communicator.rank == 0 ? try JSONEncoder().encode(outcome) : Data()
        try communicator.broadcast(&bytes, name: "\(what) (waiting for rank 0's disk)")
        let agreed = try JSONDecoder().decode(Outcome.self, from: bytes)
        if let error = agreed.error { throw error }
    }
}
