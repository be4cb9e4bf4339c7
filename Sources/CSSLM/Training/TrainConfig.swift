// Everything a training run needs to know, as one Codable value: read from `--config run.json`,
// every field also a command-line flag, and written next to the run's results.
import Foundation

/// What a run optimises (docs/method.md#methods). `finetune`: classifier CE only (weight decay 0);
/// `scl`: CE + the pairwise same-label loss (or SupCon, `contrastive`) over the global labelled batch; `csslm`: stage 1
/// (init: CE + L_pair + L_task + L_dom), stage 2 (corpus encoding), stage 3 (retrieval-augmented
/// L_pair); `selftrain`: stages 1–2, then CE on the queries and on the retrieved sentences with
/// their pseudo-labels.
public enum TrainingMethod: String, Codable, CaseIterable, Sendable {
    /// The encoder frozen: a logistic regression (scikit-learn's defaults, C = 1) on the unit class
    /// vectors of the labelled examples; no training steps.
    case probe
    case finetune
    case scl
    case selftrain
    case csslm

    /// Whether the method retrieves from the corpus (stages 1–3).
    public var retrieves: Bool { self == .csslm || self == .selftrain }
}

/// Which last-layer vectors represent a sentence: the class vector t(x) (classifier, pair heads,
/// SupCon, retrieval) and the domain vector e(x) (L_dom, the pair heads).
public enum SentenceFeatures: String, Codable, CaseIterable, Sendable {
    /// The paper's: t = the [CLS] row, e = the first [SEP] row.
    case clsSep = "cls-sep"
    /// t = the mean of the real tokens' rows (the pooling sentence-embedding models such as
    /// all-MiniLM-L6-v2 were trained with); e stays the first [SEP] row, a vector of its own that
    /// L_dom can shape into a domain signal without pulling on the class vector.
    case mean
}

/// The classifier on top of the sentence features.
public enum ClassifierKind: String, Codable, CaseIterable, Sendable {
    /// concat(t, e) → dropout → Linear(2H, 2H) → tanh → dropout → Linear(2H, C) (the paper's).
    case mlp
    /// dropout → Linear(H, C) on t/|t| (the probe's model; LP-FT starts from the probe's weights).
    case linear

    /// Width of the head's input rows for hidden size h.
    public func inputWidth(hidden h: Int) -> Int { self == .mlp ? 2 * h : h }
}

/// How the classifier head starts.
public enum HeadInit: String, Codable, CaseIterable, Sendable {
    /// HF's initialisation, N(0, 0.02²), from `seed`.
    case random
    /// LP-FT (Kumar et al. 2022): the linear head starts from the probe's logistic regression,
    /// fitted on the unit class vectors of the labelled examples under the encoder as the stage
    /// begins (needs `classifier: linear`).
    case probe
}

/// Which encoder's vectors stage 3 retrieves with.
public enum RetrievalEncoder: String, Codable, CaseIterable, Sendable {
    /// The paper's: the pool encoded by the best init model in stage 2 (query vectors and
    /// prototypes from the current encoder).
    case trained
    /// The encoder as loaded, before any update: pool, queries and prototypes in one fixed space,
    /// so the pool's vectors are computed once per model and pool and cached on disk (`poolCache`),
    /// and every sample and method reuses them (query retriever only).
    case pretrained
}

/// How stage 3 ranks corpus documents for a query.
public enum RetrieverKind: String, Codable, CaseIterable, Sendable {
    /// The paper's: softplus(Δtask) + ½ softplus(Δdom) of the frozen pair heads (docs/method.md#retrieval).
    case faithful
    /// Beyond the reference: cosine similarity to the query and to class prototypes.
    case query
}

/// The contrastive loss of `scl` and `csslm` (docs/method.md#losses).
public enum ContrastiveKind: String, Codable, CaseIterable, Sendable {
    /// L_pair: the `pair` head's mean CE over all ordered pairs vs same label (the reference's loss).
    case pair
    /// SupCon (Khosla et al. 2020) on L2-normalised [CLS] vectors with `temperature`; anchors
    /// without a positive are masked and counted.
    case supcon
}

public struct TrainConfig: Codable, Equatable, Sendable {
    /// HF model folder (config.json, model.safetensors, vocab.txt).
    public var model = "assets/models/all-MiniLM-L6-v2"
    /// Dataset folder: labels.txt and {train,dev,test} as .jsonl, .csv, .tsv or .json (DatasetSplits).
    public var data = "assets/data/rotten_tomatoes"
    /// Run folder (created): config.json, fewshot_sample.jsonl, metrics.jsonl, result.json.
    public var output = "runs/default"
    public var method: TrainingMethod = .finetune
    /// Labelled examples per class (topped up with replacement when a class has fewer).
    public var perClass = 16
    /// Few-shot sample seed (run i of the protocol uses seed i).
    public var sampleSeed: UInt64 = 0
    /// Seed of the batch order, dropout and head initialisation.
    public var seed: UInt64 = 42
    public var epochs = 10
    /// Optimizer steps of the (last) training stage; 0 = `epochs` passes over the labelled set.
    public var steps = 0
    /// Optimizer steps of stage 1 (init) of csslm and selftrain; 0 = `initEpochs` passes.
    public var initSteps = 0
    /// Evaluate on dev (and keep the best weights) every N steps of a stage and at its end;
    /// 0 = after every epoch.
    public var evalEvery = 0
    /// Which last-layer vectors represent a sentence (classifier, pair heads, SupCon, retrieval).
    public var features: SentenceFeatures = .clsSep
    /// The classifier head: `mlp` (the paper's) or `linear` (on the unit class vector).
    public var classifier: ClassifierKind = .mlp
    /// How the classifier head starts: `random`, or `probe` (LP-FT; linear head only).
    public var headInit: HeadInit = .random
    /// Global batch size (split across ranks).
    public var batchSize = 4
    public var learningRate: Float = 2e-5
    /// AdamW weight decay (not on biases and LayerNorm); nil = the method's default, 0 for
    /// `finetune` and 0.01 otherwise (docs/method.md#methods). A value given is used as given;
    /// the run's config.json records the value used (`resolvingDefaults`).
    public var weightDecay: Float?
    public var warmupFraction = 0.1
    public var maxGradNorm: Float = 1.0
    /// Tokens per input, special tokens included.
    public var maxLength = 64
    public var evalBatchSize = 64
    /// Evaluate on at most this many dev examples (a fixed prefix), 0 = all.
    public var devLimit = 0
    /// Evaluate on at most this many test examples, 0 = all.
    public var testLimit = 0
    /// Stage-1 (init) epochs of `csslm` and `selftrain`; `epochs` is then stage 3's.
    public var initEpochs = 14
    /// Unlabelled corpus, one sentence a line ("" = assets/corpus/<dataset folder name>.txt).
    public var corpus = ""
    /// Corpus sentences encoded in stage 2 (the first ones with at least `minCorpusTokens`).
    public var poolSize = 40_000
    public var minCorpusTokens = 15
    public var corpusMaxLength = 100
    /// Retrieved sentences per query (top K, then K draws with replacement).
    public var topK = 16
    /// Corpus negatives per step for L_dom in stage 1.
    public var negatives = 16
    public var retriever: RetrieverKind = .faithful
    /// Which encoder's vectors retrieval uses: `trained` (stage 2, the paper's) or `pretrained`.
    public var retrievalEncoder: RetrievalEncoder = .trained
    /// Folder of cached pool vectors of the pretrained encoder ("" = no cache).
    public var poolCache = "assets/cache"
    /// Weight of the class-prototype margin against the query similarity in the query retriever.
    public var prototypeWeight: Float = 1
    /// Re-encode the pool every R stage-3 steps with the query retriever (0 = never).
    public var refreshEvery = 0
    /// The contrastive loss of `scl` and `csslm`: `pair` (L_pair) or `supcon`.
    public var contrastive: ContrastiveKind = .pair
    /// SupCon's temperature τ (0.1: Khosla et al.'s choice, also in the range SCF fine-tuning tried).
    public var temperature: Float = 0.1
    /// Save a checkpoint every N optimizer steps (counted over all stages), besides the one after
    /// every epoch's dev evaluation; 0 = at epoch ends only, -1 = no checkpoints.
    public var checkpointEvery = 0
    /// Complete checkpoints kept besides the best-dev one.
    public var keepCheckpoints = 2

    public init() {}

    public init(from decoder: Decoder) throws {
        // Every field optional in the file: the defaults above fill the rest.
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var d = TrainConfig()
        func read<T: Decodable>(_ key: CodingKeys, _ into: inout T) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { into = v }
        }
        try read(.model, &d.model); try read(.data, &d.data); try read(.output, &d.output)
        try read(.method, &d.method); try read(.perClass, &d.perClass); try read(.sampleSeed, &d.sampleSeed)
        try read(.seed, &d.seed); try read(.epochs, &d.epochs); try read(.batchSize, &d.batchSize)
        try read(.steps, &d.steps); try read(.initSteps, &d.initSteps); try read(.evalEvery, &d.evalEvery)
        try read(.features, &d.features); try read(.classifier, &d.classifier); try read(.headInit, &d.headInit)
        try read(.learningRate, &d.learningRate); try read(.weightDecay, &d.weightDecay)
        try read(.warmupFraction, &d.warmupFraction); try read(.maxGradNorm, &d.maxGradNorm)
        try read(.maxLength, &d.maxLength); try read(.evalBatchSize, &d.evalBatchSize)
        try read(.devLimit, &d.devLimit); try read(.testLimit, &d.testLimit)
        try read(.initEpochs, &d.initEpochs); try read(.corpus, &d.corpus); try read(.poolSize, &d.poolSize)
        try read(.minCorpusTokens, &d.minCorpusTokens); try read(.corpusMaxLength, &d.corpusMaxLength)
        try read(.topK, &d.topK); try read(.negatives, &d.negatives); try read(.retriever, &d.retriever)
        try read(.refreshEvery, &d.refreshEvery); try read(.retrievalEncoder, &d.retrievalEncoder)
        try read(.poolCache, &d.poolCache); try read(.prototypeWeight, &d.prototypeWeight)
        try read(.contrastive, &d.contrastive); try read(.temperature, &d.temperature)
        try read(.checkpointEvery, &d.checkpointEvery); try read(.keepCheckpoints, &d.keepCheckpoints)
        self = d
    }

    /// Reads a JSON config; an unknown key or a wrong type names the file and the field.
    public static func load(from url: URL) throws -> TrainConfig {
        let read: Data?
        do { read = try InputLimits.read(url, atMost: InputLimits.maxJSONConfigBytes) } catch {
            throw CSSLMError("\(url.path): cannot read the run config (\(fileErrorReason(error, path: url.path)))")
        }
        guard let data = read else {
            throw CSSLMError("\(url.path): larger than \(InputLimits.describeBytes(InputLimits.maxJSONConfigBytes)), "
                             + "the limit for a JSON config file")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw CSSLMError("\(url.path): the run config is not a JSON object")
        }
        let known = Set(CodingKeys.allCases.map(\.stringValue))
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw CSSLMError("\(url.path): unknown field '\(unknown)'", hint: "known fields: \(known.sorted().joined(separator: ", "))")
        }
        try checkNumbers(object, url: url)
        do { return try JSONDecoder().decode(TrainConfig.self, from: data).resolvingPaths(againstFolderOf: url) }
        catch let DecodingError.typeMismatch(_, ctx) {
            throw CSSLMError("\(url.path): field '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw CSSLMError("\(url.path): field '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))': \(ctx.debugDescription)")
        }
    }

    /// The weight decay the run uses: the one given, else the method's default.
    public var effectiveWeightDecay: Float { weightDecay ?? (method == .finetune ? 0 : 0.01) }

    /// This config with every method-dependent default written out (what a run records in its
    /// config.json and checkpoints, so a resume continues with the value that was used).
    public func resolvingDefaults() -> TrainConfig {
        var c = self
        c.weightDecay = effectiveWeightDecay
        return c
    }

    /// The corpus file this run reads.
    public var corpusPath: String {
        corpus.isEmpty ? "assets/corpus/\(URL(fileURLWithPath: data).lastPathComponent).txt" : corpus
    }

    /// Whether `other` trains the same way: equal but for how often it checkpoints and where the
    /// pool cache lives (method defaults compared as the values they stand for).
    public func sameTraining(as other: TrainConfig) -> Bool {
        var a = resolvingDefaults()
        let b = other.resolvingDefaults()
        (a.checkpointEvery, a.keepCheckpoints, a.poolCache) = (b.checkpointEvery, b.keepCheckpoints, b.poolCache)
        return a == b
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, data, output, method, perClass, sampleSeed, seed, epochs, steps, initSteps, evalEvery
        case features, classifier, headInit, batchSize, learningRate
        case weightDecay, warmupFraction, maxGradNorm, maxLength, evalBatchSize, devLimit, testLimit
        case initEpochs, corpus, poolSize, minCorpusTokens, corpusMaxLength, topK, negatives, retriever, refreshEvery
        case retrievalEncoder, poolCache, prototypeWeight
        case contrastive, temperature
        case checkpointEvery, keepCheckpoints
    }
}
