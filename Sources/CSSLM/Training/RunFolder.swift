// A run folder's life: claimed by a new run (never silently clobbering an earlier one), and
// marked finished only once everything the run promises is on disk (docs/checkpoints.md#run-folders).
//
// A folder "holds a run" when it has any file a run writes (config.json, metrics.jsonl,
// result.json, checkpoints/, model/). A new run refuses such a folder, or with `overwrite`
// renames it whole to `<folder>.old-<UTC timestamp>`: one rename, nothing deleted, so a mistaken
// --overwrite loses nothing either. result.json is the run's "finished" mark: written last,
// atomically, after model/ has been written and read back; a folder with result.json but an
// incomplete model/ (a crash between the two in an older version) is not finished.
import Foundation

public enum RunFolder {
    /// The files and folders whose presence means a run has written into a folder.
    public static let runMarkers = ["config.json", "metrics.jsonl", "result.json", "checkpoints", "model"]
    public static let resultFile = "result.json"
    public static let modelFolder = "model"
    /// Files model/ must hold for `csslm eval`, `predict`, `embed` and `export` to use it.
    public static let modelFiles = ["config.json", "vocab.txt", "labels.txt", "model.safetensors", "heads.safetensors"]
    /// The run config a model folder was trained with (model/ of a run, an exported checkpoint):
    /// inference takes its max length from it. Absent in folders of older versions.
    public static let trainingConfigFile = "csslm_config.json"

    /// The max length `modelDir` was trained with, from its `trainingConfigFile`; nil when the
    /// folder has none (an HF model, a model/ of an older version).
    public static func trainedMaxLength(_ modelDir: URL) throws -> Int? {
        let url = modelDir.appendingPathComponent(trainingConfigFile)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try TrainConfig.load(from: url).maxLength
    }

    /// The bytes of `trainingConfigFile` (and of a run's config.json) for `config`.
    public static func configData(_ config: TrainConfig) throws -> Data {
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try enc.encode(config)
    }

    /// The run markers present in `dir` (empty when it is missing or holds no run).
    public static func markers(in dir: URL) -> [String] {
        runMarkers.filter { FileManager.default.fileExists(atPath: dir.appendingPathComponent($0).path) }
    }

    /// Makes `dir` ready for a new run, before the model is loaded: a folder that holds a run is
    /// refused, or with `overwrite` moved aside (returned). Also refuses, naming the flag, an
    /// output that is a file, lies under a file, or cannot be written.
    @discardableResult
    public static func claim(_ dir: URL, overwrite: Bool, flag: String = "--output") throws -> URL? {
        try checkWritable(dir, flag: flag)
        let found = markers(in: dir)
        guard !found.isEmpty else { return nil }
        guard overwrite else {
            throw CSSLMError("\(flag) \(dir.path) already holds a run (\(found.joined(separator: ", "))); a new run would overwrite it",
                             hint: "continue it with --resume latest, choose another \(flag) folder, or add --overwrite "
                                 + "(the old run is moved to \(dir.lastPathComponent).old-<time>, not deleted)")
        }
        let aside = asideName(for: dir)
        guard rename(dir.path, aside.path) == 0 else {
            throw CSSLMError("\(flag) \(dir.path): cannot move the old run aside to \(aside.path) (\(String(cString: strerror(errno))))")
        }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return aside
    }

    /// `<dir>.old-20260101T120000Z`, with a counter when that name is taken (two moves in one second).
    static func asideName(for dir: URL) -> URL {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX"); f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let base = dir.standardizedFileURL.path + ".old-" + f.string(from: Date())
        var candidate = base, n = 1
        while FileManager.default.fileExists(atPath: candidate) { n += 1; candidate = "\(base)-\(n)" }
        return URL(fileURLWithPath: candidate)
    }

    /// Creates `dir` (and its parents) and writes a probe file into it; every failure names the
    /// flag and the path in plain words instead of Foundation's error text.
    public static func checkWritable(_ dir: URL, flag: String) throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        // The nearest existing ancestor says why a folder cannot be made (a file in the way).
        var probe = dir.standardizedFileURL
        while !fm.fileExists(atPath: probe.path, isDirectory: &isDirectory) && probe.path != "/" {
            probe = probe.deletingLastPathComponent()
        }
        if !isDirectory.boolValue {
            throw CSSLMError(probe.path == dir.standardizedFileURL.path
                             ? "\(flag) \(dir.path) is a file, not a folder"
                             : "\(flag) \(dir.path): \(probe.path) is a file, so no folder can be made under it",
                             hint: "choose a folder path for \(flag)")
        }
        do { try fm.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw CSSLMError("\(flag) \(dir.path): cannot create the folder (\(posixReason(error)))")
        }
        let test = dir.appendingPathComponent(".csslm-write-test-\(getpid())")
        let fd = open(test.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0, write(fd, "x", 1) == 1 else {
            let reason = String(cString: strerror(errno))
            if fd >= 0 { close(fd); unlink(test.path) }
            throw CSSLMError("\(flag) \(dir.path): the folder is not writable (\(reason))")
        }
        close(fd)
        unlink(test.path)
    }

    /// The POSIX reason inside a Foundation file error, else its description.
    static func posixReason(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription
    }

    /// Checks that `dir` (a run's model/ or an exported folder) holds every model file and that
    /// both safetensors files parse with sizes that match their headers.
    public static func verifyModel(_ dir: URL) throws {
        for name in modelFiles where !FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path) {
            throw CSSLMError("\(dir.path): \(name) is missing (the model was not written completely)")
        }
        for name in ["model.safetensors", "heads.safetensors"] { _ = try SafetensorsFile(url: dir.appendingPathComponent(name)) }
    }

    /// Writes result.json into `run` as the run's last act: after verifying model/, atomically
    /// (temporary file, fsync, rename, fsync folder), so a reader sees either no result or a complete run.
    public static func writeResult(_ result: RunResult, in run: URL) throws {
        try verifyModel(run.appendingPathComponent(modelFolder))
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try enc.encode(result), to: run.appendingPathComponent(resultFile))
    }

    /// The result of a finished run in `run`: result.json decodes and model/ is complete; nil
    /// otherwise (also when the result is there but the model is not).
    public static func finishedResult(in run: URL) -> RunResult? {
        guard let data = try? Data(contentsOf: run.appendingPathComponent(resultFile)),
              let result = try? JSONDecoder().decode(RunResult.self, from: data),
              (try? verifyModel(run.appendingPathComponent(modelFolder))) != nil else { return nil }
        return result
    }
}
