// libFuzzer entry point for every csslm reader. scripts/fuzz.sh compiles this folder together with
// the CSSLM sources the readers need (no BLAS, no MPI) into ONE binary, fuzz-out/csslm-fuzz, so
// every target costs one build; CSSLM_FUZZ_TARGET picks the target a run drives. Each target turns
// the input bytes into one reader call and checks invariants: a thrown error is the expected
// answer to bad input, anything else (a trap, an ASan report, a failed `check`) is a finding.
import Foundation

/// A fuzz target: the reader call for one input.
typealias FuzzTarget = (_ input: [UInt8]) throws -> Void

/// Every target by the name scripts/fuzz.sh passes (also the seed folder Tests/Fuzz/<name>/).
let fuzzTargets: [String: FuzzTarget] = [
    "safetensors": fuzzSafetensors,
    "model_config": fuzzModelConfig,
    "vocab": fuzzVocabulary,
    "tokenizer_config": fuzzTokenizerConfig,
    "tokenizer": fuzzTokenizer,
    "jsonl": fuzzJSONL,
    "csv": fuzzCSV,
    "json_list": fuzzJSONList,
    "labels": fuzzLabels,
    "corpus": fuzzCorpus,
    "train_config": fuzzTrainConfig,
    "manifest": fuzzManifest,
    "training_state": fuzzTrainingState,
]

private let selectedTarget: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["CSSLM_FUZZ_TARGET"] ?? ""
    guard let target = fuzzTargets[name] else {
        fputs("CSSLM_FUZZ_TARGET=\(name) is not a target; targets: \(fuzzTargets.keys.sorted().joined(separator: " "))\n", stderr)
        exit(2)
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    // Errors are the readers' answer to bad input; only crashes and failed checks are findings.
    try? selectedTarget(input)
    return 0
}

/// An invariant the reader promises; a violation stops the run like a crash, with the message.
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() {
        fputs("fuzz check failed: \(message())\n", stderr)
        abort()
    }
}

/// Runs `body`, whose error would be a finding (a round trip of data the readers accepted).
@discardableResult
func mustSucceed<T>(_ what: String, _ body: () throws -> T) -> T {
    do { return try body() } catch {
        fputs("fuzz check failed: \(what) threw: \(error)\n", stderr)
        abort()
    }
}

/// A private scratch folder for inputs that readers take as files (removed at exit).
let scratch: URL = {
    let dir = URL(fileURLWithPath: NSTemporaryDirectory())
        .appendingPathComponent("csslm-fuzz-\(getpid())", isDirectory: true)
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: scratchPath) }
    scratchPath = dir.path
    return dir
}()
private var scratchPath = ""

/// Writes `bytes` to `name` inside the scratch folder and returns its URL. Plain POSIX writes:
/// Foundation's `Data.write` fsyncs, which made every run wait for the disk.
func scratchFile(_ name: String, _ bytes: some Collection<UInt8>) -> URL {
    let url = scratch.appendingPathComponent(name)
    let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    check(fd >= 0, "cannot create \(url.path)")
    let array = Array(bytes)
    let written = array.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    check(written == array.count, "cannot write \(url.path)")
    close(fd)
    return url
}

/// Removes `name` from the scratch folder if it is there.
func removeScratchFile(_ name: String) {
    try? FileManager.default.removeItem(at: scratch.appendingPathComponent(name))
}

/// Splits `input` at 0xFF bytes (never part of UTF-8 text) into at most `parts` pieces.
func splitAtFF(_ input: [UInt8], parts: Int) -> [ArraySlice<UInt8>] {
    input.split(separator: 0xFF, maxSplits: parts - 1, omittingEmptySubsequences: false)
}
