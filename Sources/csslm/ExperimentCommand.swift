// `csslm experiment`: the paper's protocol in one command — every method on every dataset config
// for few-shot samples 0..<n, each a full `train` run in its own folder, then the table of
// mean ± population std of test accuracy and macro-F1 (at the best dev epoch). Finished runs (a
// result.json beside an identical config.json) are kept, so an interrupted experiment continues
// where it stopped. Works as one process or under mpirun (every rank walks the same grid).
import ArgumentParser
import CSSLM
import Foundation

struct ExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment",
        abstract: "Run methods × datasets × few-shot samples and write the results table.",
        discussion: """
            Each DATASET_CONFIG is a run config (e.g. configs/rotten-tomatoes.json); the flags of \
            `csslm train` apply to all of them, except --method, --sample-seed and --output, which \
            the grid sets: OUTPUT/<dataset>/<method>/sample-<i>. The table goes to OUTPUT/results.md \
            and, with --results FILE, between the experiment markers of FILE (appended when absent).
            """)

    @Argument(help: "Run configs, one per dataset.") var datasetConfigs: [String]
    @Option(help: "Comma-separated: probe, finetune, scl, selftrain, csslm, csslm-query.")
    var methods = ExperimentMethod.all.joined(separator: ",")
    @Option(parsing: .unconditional, help: "Few-shot samples per dataset and method (sample seeds 0..<N).") var samples = 5
    @Option(name: .customLong("experiment-output"), help: "Folder of the experiment's runs.") var experimentOutput = "runs/experiment"
    @Option(help: "Markdown file to write the table into (e.g. docs/RESULTS.md).") var results: String?
    @OptionGroup var options: TrainOptions

    func validate() throws {
        guard !datasetConfigs.isEmpty else { throw ValidationError("give at least one dataset config, e.g. configs/rotten-tomatoes.json") }
        try NumericRanges.check(command: "experiment", flag: "--samples", samples)
        for (flag, given) in [("--config", options.config != nil), ("--method", options.method != nil),
                              ("--sample-seed", options.sampleSeed != nil), ("--output", options.output != nil)] where given {
            throw ValidationError("\(flag) is set by the experiment grid; give dataset configs as arguments and --experiment-output for the folder")
        }
    }

    /// The methods of --methods, in their order.
    func parsedMethods() throws -> [ExperimentMethod] {
        let list = try methods.split(separator: ",").map { try ExperimentMethod(parsing: String($0).trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty else { throw ValidationError("--methods is empty") }
        return list
    }

    /// Every run of the grid, fully resolved and validated before the first one starts.
    func plan() throws -> [TrainConfig] {
        let methodList = try parsedMethods()
        let bases = try datasetConfigs.map { path in
            var base = try TrainConfig.load(from: URL(fileURLWithPath: path))
            try options.apply(to: &base)
            return (path, base)
        }
        // Sample-major order: stopped at any point, every method has seen the same samples.
        var runs: [TrainConfig] = []
        for sample in 0..<samples {
            for (path, base) in bases {
                let dataset = URL(fileURLWithPath: base.data).lastPathComponent
                for m in methodList {
                    var c = base
                    c.method = m.method
                    c.retriever = m.retriever
                    // The faithful scorer's pair heads read the trained encoder's features, so a
                    // config's `retrievalEncoder: pretrained` (query retriever) does not apply to it.
                    if m.retriever == .faithful { c.retrievalEncoder = .trained }
                    c.sampleSeed = UInt64(sample)
                    c.output = "\(experimentOutput)/\(dataset)/\(m)/sample-\(sample)"
                    // An interrupted experiment redoes its unfinished run; checkpoints (~0.3 GB
                    // each) only when asked for.
                    if options.checkpointEvery == nil { c.checkpointEvery = -1 }
                    do { try c.validate() } catch { throw CSSLMError("\(path) with --method \(m): \(error)") }
                    runs.append(c)
                }
            }
        }
        return runs
    }

    func run() throws {
        RankLogHandler.bootstrap(level: options.logLevel)
        let grid = try plan()
        let comm = try makeCommunicator()
        let started = Date()
        comm.runOrAbort {
            var finished: [RunResult] = []
            if comm.rank == 0 {
                let kept = grid.compactMap(Self.finishedResult(of:))
                print("[experiment] \(grid.count) runs, \(kept.count) finished earlier; "
                      + Self.estimate(remaining: grid.filter { Self.finishedResult(of: $0) == nil }, from: kept))
            }
            for (i, config) in grid.enumerated() {
                // Rank 0 decides whether a finished run can be kept; every rank follows.
                let kept = comm.rank == 0 ? Self.finishedResult(of: config) : nil
                if try comm.agree(kept == nil ? 0 : 1, name: "agree(experiment run kept)") == 1 {
                    if let kept { finished.append(kept) }
                    if comm.rank == 0 { print("[experiment] \(i + 1)/\(grid.count) \(config.output): kept (finished earlier)") }
                    continue
                }
                if comm.rank == 0 {
                    print("[experiment] \(i + 1)/\(grid.count) \(config.output)")
                    // An unfinished or different run in the folder is redone, its files moved aside, not deleted.
                    if let aside = try RunFolder.claim(URL(fileURLWithPath: config.output), overwrite: true) {
                        print("[experiment] the unfinished or different run there was moved to \(aside.path)")
                    }
                }
                guard let result = try Trainer(config: config, communicator: comm).run() else {
                    throw CSSLMError("\(config.output): the run stopped before its end")
                }
                finished.append(result)
                if comm.rank == 0 {
                    print(String(format: "[experiment] %@ %@ sample %d: test acc %.4f macro-F1 %.4f (%.0f s)", result.dataset,
                                 result.method, config.sampleSeed, result.test.accuracy, result.test.macroF1, result.seconds))
                    print("[experiment] " + Self.estimate(remaining: Array(grid[(i + 1)...]), from: finished))
                }
            }
            if comm.rank == 0 {
                try writeTable(finished, worldSize: comm.size, wallSeconds: Date().timeIntervalSince(started))
            }
        }
    }

    /// The time left, from the mean seconds of finished runs of the same dataset and method
    /// (the grid's runs of one kind cost about the same); runs of a kind not yet seen are counted.
    static func estimate(remaining: [TrainConfig], from finished: [RunResult]) -> String {
        func kind(_ dataset: String, _ method: String) -> String { dataset + "/" + method }
        var seconds: [String: [Double]] = [:]
        for r in finished { seconds[kind(r.dataset, r.method), default: []].append(r.seconds) }
        var total = 0.0, unknown: [String] = []
        for c in remaining {
            let k = kind(URL(fileURLWithPath: c.data).lastPathComponent,
                         ExperimentMethod(method: c.method, retriever: c.retriever).description)
            if let s = seconds[k] { total += s.reduce(0, +) / Double(s.count) } else { unknown.append(k) }
        }
        var text = String(format: "%d runs left, estimated %.0f min", remaining.count, total / 60)
        if !unknown.isEmpty {
            text += " + \(unknown.count) of kinds not timed yet (\(unknown.uniqued().joined(separator: ", ")))"
        }
        return text
    }

    /// The result of a run that finished with `config`'s training, if its folder holds one.
    static func finishedResult(of config: TrainConfig) -> RunResult? {
        let dir = URL(fileURLWithPath: config.output)
        guard let saved = try? TrainConfig.load(from: dir.appendingPathComponent("config.json")),
              saved.sameTraining(as: config) else { return nil }
        // The same test as a finished `train`: result.json and a complete, readable model/.
        return RunFolder.finishedResult(in: dir)
    }

    /// Results of outside reference tools (scripts/reference_setfit.py) found in the experiment
    /// folder for the grid's datasets and samples.
    func outsideResults(_ runs: [RunResult]) -> [RunResult] {
        var found: [RunResult] = []
        for dataset in runs.map(\.dataset).uniqued() {
            for name in ExperimentMethod.outsideReferences {
                for sample in 0..<samples {
                    let url = URL(fileURLWithPath: "\(experimentOutput)/\(dataset)/\(name)/sample-\(sample)/result.json")
                    guard let data = try? Data(contentsOf: url) else { continue }
                    guard let result = try? JSONDecoder().decode(RunResult.self, from: data), result.dataset == dataset else {
                        print("[experiment] \(url.path): not a result of \(dataset) sample \(sample); left out of the table")
                        continue
                    }
                    found.append(result)
                }
            }
        }
        return found
    }

    func writeTable(_ runs: [RunResult], worldSize: Int, wallSeconds: Double) throws {
        let names = try parsedMethods().map(\.description)
        let outside = outsideResults(runs)
        let table = ExperimentTable.markdown(ExperimentTable.cells(runs + outside, methods: names + ExperimentMethod.outsideReferences))
        let runSeconds = runs.map(\.seconds).reduce(0, +)
        let threads = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] ?? "unset"
        let section = """
            ## `csslm experiment` (\(ISO8601DateFormatter().string(from: Date()).prefix(10)))

            Command: `\(CommandLine.arguments.map(Self.shellQuoted).joined(separator: " "))`
            (\(worldSize) rank(s), OPENBLAS_NUM_THREADS=\(threads)). Machine: \(Self.machineDescription()).
            Wall time of this invocation: \(Self.duration(wallSeconds)); sum of the \(runs.count) runs' own times: \
            \(Self.duration(runSeconds)). Test accuracy and macro-F1 at the best dev epoch, mean ± population std
            over few-shot samples 0..<\(samples) (percent); Δ is against `finetune` on the same samples; t is the
            paired t statistic over the samples (4 degrees of freedom at 5 samples: |t| > 2.78 is significant at 5 %).
            Pseudo-label precision: the share of retrieved sentences from the task's own unlabelled training texts
            whose true label is the query's label (stage 3). Outside references come from scripts/ on the same
            few-shot samples (`fewshot_sample.jsonl`), not from csslm.
            Runs: `\(experimentOutput)/<dataset>/<method>/sample-<i>/` (result.json, metrics.jsonl, report).

            \(table)
            """
        let out = URL(fileURLWithPath: experimentOutput)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try writeAtomically(Data((section + "\n").utf8), to: out.appendingPathComponent("results.md"))
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try enc.encode(runs), to: out.appendingPathComponent("results.json"))
        print("\n" + section)
        if let results {
            let url = URL(fileURLWithPath: results)
            let existing = (try? String(contentsOf: url, encoding: .utf8)) ?? ""
            try writeAtomically(Data(ExperimentTable.replacingSection(in: existing, with: section).utf8), to: url)
            print("[experiment] table written into \(results)")
        }
    }

    static func shellQuoted(_ s: String) -> String {
        s.allSatisfy { $0.isLetter || $0.isNumber || "-_./=,:".contains($0) } ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600) h \(s % 3600 / 60) min" : "\(s / 60) min \(s % 60) s"
    }

    /// "2 cores (AMD EPYC 7B13), 23 GiB" from /proc where available.
    static func machineDescription() -> String {
        let info = ProcessInfo.processInfo
        var cpu = ""
        if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            cpu = " (" + line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) + ")"
        }
        return "\(info.activeProcessorCount) cores\(cpu), \(info.physicalMemory >> 30) GiB"
    }
}
