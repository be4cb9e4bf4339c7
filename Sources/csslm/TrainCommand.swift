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
            result.json and report.html into --output. Diagnostics go to stderr, tagged with the rank.
            """)

    @OptionGroup var options: TrainOptions

    func run() throws {
        RankLogHandler.bootstrap(level: options.logLevel)
        let runConfig = try options.resolvedConfig()
        let comm = try makeCommunicator()
        comm.runOrAbort {
            let result = try Trainer(config: runConfig, communicator: comm).run()
            if comm.rank == 0 {
                print(String(format: "[result] %@ %@: best epoch %d, dev acc %.4f, test acc %.4f, test macro-F1 %.4f (%.0f s)",
                             result.method, result.dataset, result.bestEpoch, result.dev.accuracy, result.test.accuracy,
                             result.test.macroF1, result.seconds))
            }
        }
    }
}

/// The fields of a run config as flags (`csslm train`, `csslm experiment`); a given flag wins over
/// the config file's field.
struct TrainOptions: ParsableArguments {
    @Option(help: "JSON run config; flags override its fields.") var config: String?
    @Option(help: "Least level of the diagnostics on stderr (tagged with the rank).") var logLevel: Logger.Level = .info
    @Option(help: "HF model folder.") var model: String?
    @Option(help: "Dataset folder (labels.txt, train/dev/test.jsonl).") var data: String?
    @Option(help: "Run folder to write.") var output: String?
    @Option(help: "finetune | scl | selftrain | csslm") var method: String?
    @Option(help: "Labelled examples per class.") var perClass: Int?
    @Option(help: "Few-shot sample seed.") var sampleSeed: UInt64?
    @Option(help: "Training seed (order, dropout, head init).") var seed: UInt64?
    @Option var epochs: Int?
    @Option(help: "Global batch size.") var batchSize: Int?
    @Option var learningRate: Float?
    @Option var weightDecay: Float?
    @Option var warmupFraction: Double?
    @Option var maxGradNorm: Float?
    @Option(help: "Tokens per input, special tokens included.") var maxLength: Int?
    @Option var evalBatchSize: Int?
    @Option(help: "Evaluate on the first N dev examples (0 = all).") var devLimit: Int?
    @Option(help: "Evaluate on the first N test examples (0 = all).") var testLimit: Int?
    @Option(help: "Stage-1 epochs of csslm and selftrain.") var initEpochs: Int?
    @Option(help: "Unlabelled corpus file (default assets/corpus/<dataset>.txt).") var corpus: String?
    @Option(help: "Corpus sentences encoded in stage 2.") var poolSize: Int?
    @Option(help: "Minimum word pieces of a pool sentence.") var minCorpusTokens: Int?
    @Option(help: "Tokens per corpus sentence.") var corpusMaxLength: Int?
    @Option(help: "Retrieved sentences per query.") var topK: Int?
    @Option(help: "Corpus negatives per step for L_dom.") var negatives: Int?
    @Option(help: "faithful | query") var retriever: String?
    @Option(help: "Re-encode the pool every R steps (query retriever).") var refreshEvery: Int?
    @Option(help: "Contrastive loss of scl and csslm: pair | supcon") var contrastive: String?
    @Option(help: "SupCon temperature (> 0).") var temperature: Float?

    /// The config file (if any) with every given flag applied, validated.
    func resolvedConfig() throws -> TrainConfig {
        var c = try config.map { try TrainConfig.load(from: URL(fileURLWithPath: $0)) } ?? TrainConfig()
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
            guard let m = TrainingMethod(rawValue: method) else {
                throw ValidationError("--method '\(method)' is not one of \(TrainingMethod.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            c.method = m
        }
        if let perClass { c.perClass = perClass }
        if let sampleSeed { c.sampleSeed = sampleSeed }
        if let seed { c.seed = seed }
        if let epochs { c.epochs = epochs }
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
        if let retriever {
            guard let r = RetrieverKind(rawValue: retriever) else {
                throw ValidationError("--retriever '\(retriever)' is not one of \(RetrieverKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            c.retriever = r
        }
        if let refreshEvery { c.refreshEvery = refreshEvery }
        if let contrastive {
            guard let k = ContrastiveKind(rawValue: contrastive) else {
                throw ValidationError("--contrastive '\(contrastive)' is not one of \(ContrastiveKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            c.contrastive = k
        }
        if let temperature { c.temperature = temperature }
    }
}

/// `--log-level trace|debug|info|notice|warning|error|critical`.
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// One rank per process: MPI under mpirun, else a single-process communicator (no MPI calls, so a
/// plain `csslm` starts instantly and needs no MPI runtime at all).
func makeCommunicator() throws -> Communicator {
    if MPIRuntime.isLaunchedByMPIRun { return try MPICommunicator() }
    return SingleProcessCommunicator()
}
