// One training run: few-shot sample → stages of global batches split across ranks, each with
// best-dev selection → test at the best dev epoch. `finetune` and `scl` have one stage; `csslm`
// and `selftrain` run stage 1 (init), stage 2 (corpus encoding) and stage 3 (retrieval-augmented
// training) as docs/method.md#stages describes. Every rank runs this same code; collectives keep
// them in step, and rank 0 alone writes files and prints (docs/design.md#distributed-layout).
// Checkpoints at step boundaries, and resuming from one: Trainer+Checkpoint.swift
// (docs/design.md#exact-resume).
import Foundation
import Logging

public final class Trainer {
    public let config: TrainConfig
    public let communicator: Communicator
    let tokenizer: WordPieceTokenizer
    let splits: DatasetSplits
    let model: BertClassifier
    let sample: FewShotSample
    let train: EncodedSplit
    let dev: EncodedSplit
    let test: EncodedSplit
    /// The unlabelled pool (stage 2 encodes it; stage 1 draws negatives from it).
    let corpusPool: CorpusPool
    /// The true label of each pool sentence that is an unlabelled training text of the task, else
    /// nil: only to grade retrieval (pseudo-label precision), never to train.
    let poolLabels: [Int?]
    /// Stage 3's retrieval quality so far (rank 0's view; every rank computes the same).
    var retrievalQuality = RetrievalQuality()
    /// The loaded encoder's vectors with `retrievalEncoder: pretrained` (Trainer+Retrieval.swift).
    var pretrained: PretrainedVectors?
    /// Rank 0's progress lines (stdout).
    let log: (String) -> Void
    /// Diagnostics (data reports, skipped updates, the report), stderr, tagged with the rank.
    let diagnostics: Logger
    let hidden: Int
    /// Steps taken over all stages (keys dropout and retrieval draws).
    var globalStep = 0
    /// Rank 0's metrics.jsonl.
    var metrics: MetricsWriter?
    /// Continue from this checkpoint (Trainer+Checkpoint.swift).
    public var resume: CheckpointSelection?
    /// Save a checkpoint after this many steps (over all stages) and stop: `run` then returns nil.
    public var stopAfterSteps: Int?
    /// The checkpoint being resumed from, until the stage it belongs to has taken it over.
    var resumePoint: ResumePoint?
    /// Rank 0's identity of the model and data (other ranks: a placeholder), for checkpoints.
    var identity = RunIdentity(model: "", dataset: "")
    lazy var checkpoints = CheckpointStore(runDirectory: outputURL, keepLast: config.keepCheckpoints)
    /// Training seconds of the sessions before a resume, and when this session's `run` began.
    var secondsBefore = 0.0
    var sessionStart = Date()

    public init(config: TrainConfig, communicator: Communicator, log: @escaping (String) -> Void = { print($0) },
                logger: Logger = Logger(label: "csslm.train")) throws {
        try config.validate()
        // The method's defaults written out: config.json and checkpoints record what was used.
        let config = config.resolvingDefaults()
        self.config = config
        self.communicator = communicator
        self.log = communicator.rank == 0 ? log : { _ in }
        var logger = logger
        logger[metadataKey: "rank"] = "\(communicator.rank)"
        diagnostics = logger
        let modelDir = URL(fileURLWithPath: config.model)
        let tok = try WordPieceTokenizer(modelDirectory: modelDir)
        tokenizer = tok
        splits = try DatasetSplits.load(directory: URL(fileURLWithPath: config.data))
        for report in splits.reports where !report.isClean && communicator.rank == 0 { logger.warning("data: \(report.summary)") }
        try Self.checkSampleSource(splits, perClass: config.perClass, data: config.data, logger: communicator.rank == 0 ? logger : nil)
        try Self.checkLabelsCovered(splits, data: config.data)
        let h = try BertConfig.load(from: modelDir.appendingPathComponent("config.json")).hiddenSize
        hidden = h
        var heads: [(name: String, shape: [Int])] = []
        if ![.finetune, .probe].contains(config.method) && config.contrastive == .pair {
            heads += pairHeadTensors(hidden: h, name: "pair", inputs: 4)
        }
        if config.method.retrieves { heads += retrievalHeadTensors(hidden: h) }
        // The probe is a logistic regression on the unit class vector: the linear head.
        model = try BertClassifier(modelDirectory: modelDir, numLabels: splits.labels.count, extraHeads: heads, seed: config.seed,
                                   features: config.features, classifier: config.method == .probe ? .linear : config.classifier)
        // With [CLS]/[SEP] features every loss, head and retrieval score reads those two rows only:
        // the last layer skips the others. Mean pooling reads them all.
        model.encoderActivations.lastLayerRows = config.features == .clsSep ? .sentenceFeatures : .all
        sample = try FewShotSampler.sample(splits.train, perClass: config.perClass, seed: config.sampleSeed)
        let fewShot = sample.dataset(from: splits.train)
        func encode(_ set: LabeledDataset, limit: Int) -> EncodedSplit {
            let examples = limit > 0 ? Array(set.examples.prefix(limit)) : set.examples
            return EncodedSplit(encodings: examples.map { tok.encode($0.text, maxLength: config.maxLength) },
                                labels: examples.map(\.label))
        }
        train = encode(fewShot, limit: 0)
        dev = encode(splits.dev, limit: config.devLimit)
        test = encode(splits.test, limit: config.testLimit)
        if config.method.retrieves {
            // A query must never retrieve itself, and evaluation texts stay unseen.
            let labelledTexts = Set(fewShot.examples.map(\.text))
            let excluded = labelledTexts.union(splits.dev.examples.map(\.text)).union(splits.test.examples.map(\.text))
            let (loaded, stats) = try CorpusPool.load(url: URL(fileURLWithPath: config.corpusPath), tokenizer: tok,
                                                      minimumTokens: config.minCorpusTokens, limit: config.poolSize,
                                                      maxLength: config.corpusMaxLength, excluding: excluded)
            if loaded.count < config.topK {
                throw CSSLMError("\(config.corpusPath): only \(loaded.count) lines have at least \(config.minCorpusTokens) tokens; topK is \(config.topK)",
                                 hint: "lower --min-corpus-tokens or --top-k, or use a larger corpus")
            }
            if communicator.rank == 0 { logger.info("corpus pool: \(stats.summary)") }
            corpusPool = loaded
            // The task's unlabelled training remainder is in the corpus: its true labels grade retrieval.
            var labelOf: [String: Int] = [:]
            for e in splits.train.examples where !labelledTexts.contains(e.text) { labelOf[e.text] = e.label }
            poolLabels = loaded.documents.map { labelOf[$0.text] }
            if communicator.rank == 0 {
                let known = poolLabels.compactMap { $0 }.count
                logger.info("corpus pool: \(known) of \(loaded.count) sentences are unlabelled training texts of the task (their true labels grade the pseudo-labels)")
            }
        } else {
            corpusPool = CorpusPool(documents: [], tokenizer: tok)
            poolLabels = []
        }
    }

    /// Dev and test labels must be classes the few-shot training set can contain.
    static func checkLabelsCovered(_ s: DatasetSplits, data: String) throws {
        let trainClasses = Set(s.train.examples.map(\.label))
        func name(_ i: Int) -> String { s.files.count == 3 ? s.files[i].lastPathComponent : DatasetSplits.splits[i] + ".jsonl" }
        for (i, set) in [(1, s.dev), (2, s.test)] {
            if let missing = Set(set.examples.map(\.label)).subtracting(trainClasses).min() {
                throw CSSLMError("\(data)/\(name(i)): label '\(s.labels[missing])' has no example in \(name(0))",
                                 hint: "every class needs training examples")
            }
        }
    }

    /// Pads encodings into one batch (to the longest of them).
    func tokenBatch(_ encodings: [Encoding]) throws -> TokenBatch {
        try TokenBatch(sequences: encodings.map(\.ids), typeIds: encodings.map(\.tokenTypeIds),
                       padId: tokenizer.paddingId, sepId: tokenizer.separatorId)
    }

    /// Appends a record to metrics.jsonl (rank 0; other ranks write nothing).
    func record(_ object: [String: Any]) throws {
        try metrics?.append(object)
    }

    /// One evaluation's record; test records carry the confusion matrix (the report draws it).
    func recordEval(stage: String, split: String, epoch: Int, step: Int, _ m: ClassificationMetrics) throws {
        var entry: [String: Any] = ["kind": "eval", "stage": stage, "split": split, "epoch": epoch, "step": step,
                                    "accuracy": m.accuracy, "macro_f1": m.macroF1]
        if split == "test" { entry["confusion"] = m.confusion }
        try record(entry)
    }

    var outputURL: URL { URL(fileURLWithPath: config.output) }

    /// Trains, selects the best dev epoch, and returns its dev and test metrics; nil when it
    /// stopped at `stopAfterSteps` (after saving a checkpoint to resume from).
    public func run() throws -> RunResult? {
        let started = Date()
        let out = outputURL
        try preparePretrainedRetrieval()
        try prepareCheckpoints()
        if communicator.rank == 0 {
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            try writeAtomically(try RunFolder.configData(config), to: out.appendingPathComponent("config.json"))
            try sample.write(to: out.appendingPathComponent(FewShotSample.fileName), source: splits.train)
            // A resumed run appends to the log of the run it continues.
            metrics = try MetricsWriter(url: out.appendingPathComponent(MetricsLog.fileName), appending: resumePoint != nil)
        }
        defer { metrics?.close() }
        if let r = resumePoint {
            try record(["kind": "resume", "step": r.state.step, "stage": r.state.stage, "epoch": r.state.epoch,
                    "checkpoint": r.directory, "world_size": communicator.size])
        }
        log("[train] \(config.method.rawValue) on \(URL(fileURLWithPath: config.data).lastPathComponent): "
            + "\(train.count) labelled (\(config.perClass)/class, sample seed \(config.sampleSeed)), global batch \(config.batchSize), "
            + "\(communicator.size) rank(s)" + (config.method.retrieves ? ", pool \(corpusPool.count) corpus sentences" : ""))

        let best: StageBest
        let contrastive = config.contrastive.rawValue
        do {
            switch config.method {
            case .probe:
                best = try probeOnly()
            case .finetune, .scl:
                best = try runStage("train", index: 0, epochs: config.epochs, steps: config.steps,
                                    partNames: ["ce", contrastive]) { try self.labelledStep($0) }
            case .csslm, .selftrain:
                let retriever: StageRetrieval
                if let resumed = resumePoint?.retrieval {
                    retriever = resumed
                } else {
                    _ = try runStage("init", index: 0, epochs: config.initEpochs, steps: config.initSteps,
                                     partNames: ["ce", contrastive, "task", "dom"]) {
                        try self.initStep($0)
                    }
                    retriever = try encodeCorpus()
                }
                let names = config.method == .csslm ? ["ce", contrastive + "_q", contrastive + "_m"] : ["ce"]
                best = try runStage("main", index: 1, epochs: config.epochs, steps: config.steps, partNames: names,
                                    retrieval: retriever) {
                    try self.mainStep($0, retriever: retriever)
                }
                try retriever.finish()
                log("[retrieval] " + retrievalQuality.summary)
                try record(["kind": "retrieval", "step": globalStep, "drawn": retrievalQuality.drawn, "in_domain": retrievalQuality.inDomain,
                        "correct": retrievalQuality.correct, "distinct_per_class": retrievalQuality.distinctPerClass])
            }
        } catch let stop as StopRequested {
            log("[train] stopped after step \(stop.step) (--stop-after-steps): checkpoint \(stop.checkpoint.path); "
                + "continue with --resume latest")
            return nil
        }
        let result = RunResult(method: ExperimentMethod(method: config.method, retriever: config.retriever).description,
                               dataset: URL(fileURLWithPath: config.data).lastPathComponent,
                               sampleSeed: config.sampleSeed, bestEpoch: best.epoch + 1, bestStep: best.step, dev: best.dev, test: best.test,
                               steps: globalStep, seconds: secondsBefore + Date().timeIntervalSince(started),
                               retrieval: config.method.retrieves ? retrievalQuality : nil)
        if communicator.rank == 0 {
            // result.json last: it marks the run finished only once model/ is written and verified.
            try saveModel(to: out.appendingPathComponent(RunFolder.modelFolder))
            try RunFolder.writeResult(result, in: out)
            // The report is for reading: a failure to write it is said, not fatal to a finished run.
            do {
                let report = try RunReport(runDirectory: out).write()
                diagnostics.info("report: \(report.path)")
            } catch {
                diagnostics.error("report.html not written: \(error)")
            }
        }
        return result
    }

    /// Runs `steps` optimizer steps of `step` (0: `epochs` passes over the labelled set) with a
    /// fresh AdamW and schedule, evaluating on dev every `evalEvery` steps (0: after every epoch)
    /// and at the end; leaves the model at its best dev evaluation and returns that one's metrics.
    /// `index` orders the stages that take steps (0: "train" or "init", 1: "main"); `retrieval` is
    /// stage 3's, saved in its checkpoints. Saves a checkpoint after every evaluation and every
    /// `checkpointEvery` steps, and continues from `resumePoint` when it belongs to this stage.
    func runStage(_ name: String, index: Int, epochs: Int, steps: Int = 0, partNames: [String], retrieval: StageRetrieval? = nil,
                  step body: (StepInput) throws -> StepLosses) throws -> StageBest {
        let stepsPerEpoch = (train.count + config.batchSize - 1) / config.batchSize
        let totalSteps = steps > 0 ? steps : stepsPerEpoch * epochs
        let evalEvery = config.evalEvery > 0 ? config.evalEvery : stepsPerEpoch
        let lastEpoch = (totalSteps - 1) / stepsPerEpoch
        var schedule = LinearSchedule(warmupFraction: config.warmupFraction, totalSteps: totalSteps)
        let optimizer = AdamW(config: AdamWConfig(learningRate: config.learningRate, weightDecay: config.effectiveWeightDecay),
                              parameterCount: model.parameters.count)
        // Stage 3 does not train the retrieval heads (the faithful scorer uses stage 1's): without
        // this, weight decay alone would shrink them step by step.
        if index == 1 { optimizer.frozen = Set(retrievalHeadTensors(hidden: hidden).map(\.name)) }
        let reducer = try GradientAllreducer(communicator: communicator, parameterRanges: model.parameters.specs.map(\.range),
                                             averaging: .sum, extraSumCount: partNames.count)
        let stageSeed = CounterRandom.streamKey(seed: config.seed, step: 0, example: 0, site: name.hashValueStable)
        var sampler = GlobalSampler(datasetSize: train.count, globalBatchSize: config.batchSize, seed: stageSeed)
        var best: StageBest?
        let bestWeights = FloatBuffer(count: model.parameters.count)
        var stageStep = 0
        if let r = resumePoint, r.progress.stageIndex == index {
            resumePoint = nil
            r.restore(optimizer: optimizer, bestWeights: bestWeights)
            // The schedule of the run being continued, not one rebuilt from flags changed since.
            schedule = r.state.schedule
            sampler = GlobalSampler(datasetSize: train.count, globalBatchSize: config.batchSize, seed: stageSeed, position: r.state.sampler)
            best = r.progress.best
            stageStep = r.progress.stageStep
        } else if index == 0 && config.headInit == .probe {
            try initialiseHeadFromProbe()
        }
        let progress = ProgressLine(total: totalSteps, done: stageStep, enabled: communicator.rank == 0)
        func position() -> StagePosition {
            StagePosition(name: name, index: index, epoch: stageStep / stepsPerEpoch, stepInEpoch: stageStep % stepsPerEpoch,
                          stageStep: stageStep, sampler: sampler.position, schedule: schedule, best: best)
        }
        // The parts' means over the stage's last epoch of steps, said at its end (e.g. whether the
        // pair heads of stage 1 have left ln 2).
        var recentParts: [[Double]] = []
        while stageStep < totalSteps {
            let epoch = stageStep / stepsPerEpoch
            let t0 = Date()
            communicator.setStep(globalStep)
            let global = sampler.nextBatch()
            let input = StepInput(step: globalStep, epoch: epoch, isLastEpoch: epoch == lastEpoch, global: global,
                                  local: global.slice(rank: communicator.rank, worldSize: communicator.size),
                                  rowsPerRank: global.rowsPerRank(worldSize: communicator.size))
            model.parameters.grads.zero()
            let losses = try body(input)
            let totals = try reducer.allreduce(model.parameters.grads.buffer,
                                               local: LocalStepTotals(lossSum: losses.total, exampleCount: input.local.count,
                                                                      nonFinite: !losses.total.isFinite, extraSums: losses.parts))
            let lr = schedule.learningRate(peak: config.learningRate, step: stageStep)
            if totals.nonFinite {
                if communicator.rank == 0 {
                    diagnostics.warning("step \(globalStep): non-finite loss or gradient on \(totals.nonFiniteRanks) rank(s); update skipped on all ranks")
                }
            } else {
                optimizerStep(model.parameters, optimizer: optimizer, schedule: schedule, step: stageStep,
                              peakLearningRate: config.learningRate, maxGradNorm: config.maxGradNorm,
                              gradientNorm: Float(totals.gradientNorm))
            }
            let seconds = Date().timeIntervalSince(t0)
            let parts = zip(partNames, totals.extraSums).map { String(format: "%@ %.4f", $0, $1) }.joined(separator: " ")
            progress.update(step: stageStep + 1, text: String(format: "[%@] epoch %d/%d step %d/%d loss %.4f (%@) lr %.2e %.1f samples/s",
                                                               name, epoch + 1, lastEpoch + 1, stageStep + 1, totalSteps, totals.lossSum, parts,
                                                               lr, Double(global.count) / seconds))
            var entry: [String: Any] = ["kind": "step", "stage": name, "step": globalStep, "epoch": epoch, "loss": totals.lossSum,
                                        "lr": Double(lr), "grad_norm": totals.gradientNorm, "seconds": seconds]
            for (k, v) in zip(partNames, totals.extraSums) { entry[k] = v }
            if config.contrastive == .supcon { entry["masked_anchors"] = losses.maskedAnchors }
            for (k, v) in losses.record { entry[k] = v }
            recentParts.append(totals.extraSums)
            if recentParts.count > stepsPerEpoch { recentParts.removeFirst() }
            try record(entry)
            globalStep += 1
            stageStep += 1
            guard stageStep % evalEvery == 0 || stageStep == totalSteps else {
                try checkpointIfDue(position(), epochEnd: false, optimizer: optimizer, bestWeights: bestWeights, retrieval: retrieval)
                continue
            }
            let devMetrics = try evaluate(dev)
            try recordEval(stage: name, split: "dev", epoch: epoch, step: globalStep, devMetrics)
            var improved = false
            if best == nil || devMetrics.accuracy > best!.dev.accuracy {
                let testMetrics = try evaluate(test)
                try recordEval(stage: name, split: "test", epoch: epoch, step: globalStep, testMetrics)
                best = StageBest(epoch: epoch, step: globalStep, dev: devMetrics, test: testMetrics)
                bestWeights.copy(from: model.parameters.values)
                improved = true
            }
            progress.finishLine()
            log(String(format: "[%@] step %d/%d (epoch %d) dev acc %.4f macro-F1 %.4f%@", name, stageStep, totalSteps, epoch + 1,
                       devMetrics.accuracy, devMetrics.macroF1,
                       improved ? String(format: " (best; test acc %.4f macro-F1 %.4f)", best!.test.accuracy, best!.test.macroF1) : ""))
            try checkpointIfDue(position(), epochEnd: true, optimizer: optimizer, bestWeights: bestWeights, retrieval: retrieval)
        }
        if !recentParts.isEmpty {
            let means = partNames.indices.map { i in recentParts.map { $0[i] }.reduce(0, +) / Double(recentParts.count) }
            log("[\(name)] mean losses over the last \(recentParts.count) steps: "
                + zip(partNames, means).map { String(format: "%@ %.4f", $0, $1) }.joined(separator: ", ")
                + (partNames.contains("task") ? String(format: " (ln 2 = %.4f)", M_LN2) : ""))
        }
        // Continue from (and report) the best dev evaluation.
        model.parameters.values.copy(from: bestWeights)
        return best!
    }
}
