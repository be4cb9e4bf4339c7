// `csslm train`: one training run from a JSON config, every field also a flag (flags win).
import ArgumentParser
import CSSLM
import Foundation
import Logging

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Fine-tune an encoder on a few-shot sample (methods: finetune, scl, selftrain, csslm).",
        discussion: """
            Runs as one process, or as N ranks under mpirun (the global batch is split across ranks \
            and gives the same result). Writes config.json, fewshot_sample.jsonl, metrics.jsonl, \
            result.json and report.html into --output, and checkpoints into --output/checkpoints after \
            every epoch (and every --checkpoint-every steps). --resume latest continues the run in \
            --output from its newest complete checkpoint with the run's own config (flags may change \
            any field but the model, data, method, per-class, sample seed, batch size, seed and max \
            length), at any number of ranks. Diagnostics go to stderr, tagged with the rank.
            """)

    @OptionGroup var options: TrainOptions
    @Option(help: "Continue a run: 'latest' (the run in --output), or a checkpoint or run folder.") var resume: String?
    @Option(parsing: .unconditional, help: "Save a checkpoint after N steps (over all stages) and stop; continue with --resume.")
    var stopAfterSteps: Int?
    @Flag(help: "Start a new run in an --output folder that holds one: the old run is moved to <output>.old-<time>, not deleted.")
    var overwrite = false

    func run() throws {
        RankLogHandler.bootstrap(level: options.logLevel)
        if let stopAfterSteps { try NumericRanges.check(command: "train", flag: "--stop-after-steps", stopAfterSteps) }
        if overwrite && resume != nil { throw ValidationError("--overwrite starts a new run and --resume continues one; give one of them") }
        let selection = resume.map(CheckpointSelection.init)
        // Without --resume (or with --config) the config is known before any rank starts.
        let known = selection == nil || options.config != nil ? try options.resolvedConfig() : nil
        let comm = try makeCommunicator()
        comm.runOrAbort {
            let runConfig = try known ?? options.resolvedConfig(base: try savedConfig(selection!, communicator: comm))
            // A new run never clobbers an earlier one (rank 0 alone writes the folder).
            if selection == nil && comm.rank == 0,
               let aside = try RunFolder.claim(URL(fileURLWithPath: runConfig.output), overwrite: overwrite) {
                print("[train] --overwrite: the earlier run in \(runConfig.output) was moved to \(aside.path)")
            }
            let trainer = try Trainer(config: runConfig, communicator: comm)
            trainer.resume = selection
            trainer.stopAfterSteps = stopAfterSteps
            guard let result = try trainer.run() else { return }
            if comm.rank == 0 {
                print(String(format: "[result] %@ %@: best epoch %d, dev acc %.4f, test acc %.4f, test macro-F1 %.4f (%.0f s)",
                             result.method, result.dataset, result.bestEpoch, result.dev.accuracy, result.test.accuracy,
                             result.test.macroF1, result.seconds))
            }
        }
    }

    /// The config of the checkpoint a resume continues from, its output the run folder holding
    /// the checkpoint (rank 0 reads it, every rank gets it). `latest` and `best` look in --output.
    func savedConfig(_ selection: CheckpointSelection, communicator: Communicator) throws -> TrainConfig {
        try CheckpointStore(runDirectory: URL(fileURLWithPath: options.output ?? TrainConfig().output))
            .savedConfig(selection, communicator: communicator)
    }
}

/// The fields of a run config as flags (`csslm train`, `csslm experiment`); a given flag wins over
/// the config file's field.
struct TrainOptions: ParsableArguments {
    @Option(help: "JSON run config; flags override its fields (its relative paths: see README, Configs).") var config: String?
    @Option(help: "Least level of the diagnostics on stderr (tagged with the rank).") var logLevel: Logger.Level = .info
    @Option(help: field("model", "HF model folder.")) var model: String?
    @Option(help: field("data", "Dataset folder (labels.txt, train/dev/test as .jsonl, .csv, .tsv or .json).")) var data: String?
    @Option(help: field("output", "Run folder to write (refused when it holds a run; see --overwrite, --resume).")) var output: String?
    @Option(help: field("method", "probe | finetune | scl | selftrain | csslm, or selftrain-query | csslm-query (= --retriever query)."))
    var method: String?
    // Numbers parse .unconditional: a value may start with '-' (`--checkpoint-every -1`, as the
    // README writes it); the range check then names the flag.
    @Option(parsing: .unconditional, help: field("perClass", "Labelled examples per class.")) var perClass: Int?
    @Option(parsing: .unconditional, help: field("sampleSeed", "Few-shot sample seed (any UInt64).")) var sampleSeed: UInt64?
    @Option(parsing: .unconditional, help: field("seed", "Training seed: order, dropout, head init (any UInt64).")) var seed: UInt64?
    @Option(parsing: .unconditional, help: field("epochs", "Passes over the labelled set (of the last stage).")) var epochs: Int?
    @Option(parsing: .unconditional, help: field("steps", "Optimizer steps of the last stage.")) var steps: Int?
    @Option(parsing: .unconditional, help: field("initSteps", "Optimizer steps of stage 1 of csslm/selftrain.")) var initSteps: Int?
    @Option(parsing: .unconditional, help: field("evalEvery", "Evaluate on dev every N steps and at the stage's end.")) var evalEvery: Int?
    @Option(help: field("features", "Sentence features: cls-sep ([CLS] class vector, [SEP] domain vector) | mean (mean-pooled class vector)"))
    var features: String?
    @Option(help: field("classifier", "Classifier head: mlp (the paper's, on [t; e]) | linear (on t/|t|)")) var classifier: String?
    @Option(help: field("headInit", "Classifier head start: random | probe (LP-FT: the probe's logistic regression; linear head)"))
    var headInit: String?
    @Option(parsing: .unconditional, help: field("batchSize", "Global batch size (split across ranks).")) var batchSize: Int?
    @Option(parsing: .unconditional, help: field("learningRate", "AdamW peak learning rate.")) var learningRate: Float?
    @Option(parsing: .unconditional, help: field("weightDecay", "AdamW weight decay (not biases or LayerNorm).", default: "0 for finetune, 0.01 otherwise"))
    var weightDecay: Float?
    @Option(parsing: .unconditional, help: field("warmupFraction", "Share of the stage's steps with a linear warmup.")) var warmupFraction: Double?
    @Option(parsing: .unconditional, help: field("maxGradNorm", "Clip the global gradient norm to this.")) var maxGradNorm: Float?
    @Option(parsing: .unconditional, help: field("maxLength", "Tokens per input, special tokens included.")) var maxLength: Int?
    @Option(parsing: .unconditional, help: field("evalBatchSize", "Sentences per forward pass when evaluating.")) var evalBatchSize: Int?
    @Option(parsing: .unconditional, help: field("devLimit", "Evaluate on the first N dev examples.")) var devLimit: Int?
    @Option(parsing: .unconditional, help: field("testLimit", "Evaluate on the first N test examples.")) var testLimit: Int?
    @Option(parsing: .unconditional, help: field("initEpochs", "Stage-1 epochs of csslm and selftrain.")) var initEpochs: Int?
    @Option(help: field("corpus", "Unlabelled corpus file (\"\" = assets/corpus/<dataset>.txt).")) var corpus: String?
    @Option(parsing: .unconditional, help: field("poolSize", "Corpus sentences encoded in stage 2.")) var poolSize: Int?
    @Option(parsing: .unconditional, help: field("minCorpusTokens", "Minimum word pieces of a pool sentence.")) var minCorpusTokens: Int?
    @Option(parsing: .unconditional, help: field("corpusMaxLength", "Tokens per corpus sentence.")) var corpusMaxLength: Int?
    @Option(parsing: .unconditional, help: field("topK", "Retrieved sentences per query.")) var topK: Int?
    @Option(parsing: .unconditional, help: field("negatives", "Corpus negatives per step for L_dom.")) var negatives: Int?
    @Option(help: field("retriever", "faithful | query")) var retriever: String?
    @Option(parsing: .unconditional, help: field("refreshEvery", "Re-encode the pool every R steps (query retriever).")) var refreshEvery: Int?
    @Option(help: field("retrievalEncoder", "Vectors retrieval uses: trained (stage 2's encoder) | pretrained (the loaded encoder, cached; query retriever)"))
    var retrievalEncoder: String?
    @Option(help: field("poolCache", "Folder of cached pretrained pool vectors (\"\" = no cache).")) var poolCache: String?
    @Option(parsing: .unconditional, help: field("prototypeWeight", "Weight of the class-prototype margin in the query retriever."))
    var prototypeWeight: Float?
    @Option(help: field("contrastive", "Contrastive loss of scl and csslm: pair | supcon")) var contrastive: String?
    @Option(parsing: .unconditional, help: field("temperature", "SupCon temperature.")) var temperature: Float?
    @Option(parsing: .unconditional, help: field("checkpointEvery", "Also checkpoint every N steps.")) var checkpointEvery: Int?
    @Option(parsing: .unconditional, help: field("keepCheckpoints", "Complete checkpoints kept besides the best-dev one.")) var keepCheckpoints: Int?

    /// The flags over `base`, else over --config, else over the defaults; validated.
    func resolvedConfig(base: TrainConfig? = nil) throws -> TrainConfig {
        var c = try base ?? config.map { try TrainConfig.load(from: URL(fileURLWithPath: $0)) } ?? TrainConfig()
        try apply(to: &c)
        try c.validate()
        return c
    }

    /// Applies the flags that were given to `c` (unvalidated).
    func apply(to c: inout TrainConfig) throws {
        if let model { c.model = model }
        if let data { c.data = data }
        if let output { c.output = output }
        if let method {
            // The experiment's method names work here too: csslm-query is csslm with the query retriever.
            guard let m = try? ExperimentMethod(parsing: method) else {
                throw ValidationError("--method '\(method)' is not one of \(ExperimentMethod.all.joined(separator: ", ")), selftrain-query")
            }
            c.method = m.method
            if m.retriever == .query { c.retriever = .query }
        }
        if let perClass { c.perClass = perClass }
        if let sampleSeed { c.sampleSeed = sampleSeed }
        if let seed { c.seed = seed }
        if let epochs { c.epochs = epochs }
        if let steps { c.steps = steps }
        if let initSteps { c.initSteps = initSteps }
        if let evalEvery { c.evalEvery = evalEvery }
        if let features { c.features = try choice(features, flag: "--features") }
        if let classifier { c.classifier = try choice(classifier, flag: "--classifier") }
        if let headInit { c.headInit = try choice(headInit, flag: "--head-init") }
        if let batchSize { c.batchSize = batchSize }
        if let learningRate { c.learningRate = learningRate }
        if let weightDecay { c.weightDecay = weightDecay }
        if let warmupFraction { c.warmupFraction = warmupFraction }
        if let maxGradNorm { c.maxGradNorm = maxGradNorm }
        if let maxLength { c.maxLength = maxLength }
        if let evalBatchSize { c.evalBatchSize = evalBatchSize }
        if let devLimit { c.devLimit = devLimit }
        if let testLimit { c.testLimit = testLimit }
        if let initEpochs { c.initEpochs = initEpochs }
        if let corpus { c.corpus = corpus }
        if let poolSize { c.poolSize = poolSize }
        if let minCorpusTokens { c.minCorpusTokens = minCorpusTokens }
        if let corpusMaxLength { c.corpusMaxLength = corpusMaxLength }
        if let topK { c.topK = topK }
        if let negatives { c.negatives = negatives }
        if let retriever { c.retriever = try choice(retriever, flag: "--retriever") }
        if let refreshEvery { c.refreshEvery = refreshEvery }
        if let retrievalEncoder { c.retrievalEncoder = try choice(retrievalEncoder, flag: "--retrieval-encoder") }
        if let poolCache { c.poolCache = poolCache }
        if let prototypeWeight { c.prototypeWeight = prototypeWeight }
        if let contrastive { c.contrastive = try choice(contrastive, flag: "--contrastive") }
        if let temperature { c.temperature = temperature }
        if let checkpointEvery { c.checkpointEvery = checkpointEvery }
        if let keepCheckpoints { c.keepCheckpoints = keepCheckpoints }
    }
}

/// The help of a run-config field's flag: what it is, its range (NumericRanges) and the default.
func field(_ name: String, _ what: String, default given: String? = nil) -> ArgumentHelp {
    let value = Mirror(reflecting: TrainConfig()).children.first { $0.label == name }?.value
    let text = given ?? (value as? any RawRepresentable).map { "\($0.rawValue)" } ?? value.map { "\($0)" } ?? ""
    return ArgumentHelp(NumericRanges.help(name, what, default: text.isEmpty ? "\"\"" : text))
}

/// `--log-level trace|debug|info|notice|warning|error|critical`.
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// The case of `T` named `value`, or an error listing every name `flag` accepts.
func choice<T: CaseIterable & RawRepresentable>(_ value: String, flag: String) throws -> T where T.RawValue == String {
    guard let v = T(rawValue: value) else {
        throw ValidationError("\(flag) '\(value)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return v
}

/// One rank per process: MPI under mpirun, else a single-process communicator (no MPI calls, so a
/// plain `csslm` starts instantly and needs no MPI runtime at all).
func makeCommunicator() throws -> Communicator {
    // A bad CSSLM_COLLECTIVE_TIMEOUT_S is an error at W = 1 too: the same command must not fail
    // only once it is launched under mpirun.
    let deadline = try CollectiveWatchdog.deadlineFromEnvironment()
    if MPIRuntime.isLaunchedByMPIRun { return try MPICommunicator(collectiveDeadline: deadline) }
    return SingleProcessCommunicator()
}
