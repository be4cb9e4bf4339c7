// The trainer's checkpoints (docs/checkpoints.md): when the stage loop saves, what a trainer
// checkpoint holds besides the library's layout, and how `run` continues from one.
//
// A checkpoint is taken at a step boundary: after a step inside an epoch, or after an epoch's dev
// evaluation. Besides the weights, the AdamW moments and TrainingState's fields, it holds
//   state.json extension "trainer"   TrainerProgress: stage index, stage step, step in epoch, the
//                                    stage's best epoch (dev and test metrics), seconds so far,
//                                    stage 3's refresh schedule and pool identity
//   best.safetensors                 the stage's best-dev weights (restored at the stage's end),
//                                    unless they are the checkpoint's own weights
//   retrieval.safetensors            stage 3: the pool vectors in use and the frozen retrieval
//                                    heads (saved, not recomputed: the encoder that made them is
//                                    gone by then)
// Randomness needs no state: dropout, negatives, retrieval draws and the sampler's permutations
// are keyed by (seed, step or epoch, ...) through CounterRandom, so the step counters and the
// sampler cursor determine every later draw.
import Foundation

/// Where a run stands inside its stages (state.json, extension "trainer").
struct TrainerProgress: Codable, Equatable {
    static let key = "trainer"
    /// 0: the first stage that takes steps ("train" or "init"); 1: stage 3 ("main").
    var stageIndex: Int
    /// Steps taken in the stage (the learning-rate schedule's position).
    var stageStep: Int
    /// Steps taken in the epoch `TrainingState.epoch` (0 right after an evaluation).
    var stepInEpoch: Int
    var best: StageBest?
    /// Training seconds before the checkpoint, over every session of the run.
    var seconds: Double
    var retrieval: RetrievalProgress?
    /// Stage 3's pseudo-label counts so far and the distinct sentences drawn per class, so that a
    /// resumed run's result.json reports the whole run, not its last session (found by ChaosTests;
    /// absent in older checkpoints).
    var retrievalQuality: RetrievalQuality?
    var retrievalSeen: [[Int]]?
}

/// Stage 3's retrieval state besides the vectors and heads of retrieval.safetensors.
struct RetrievalProgress: Codable, Equatable {
    var schedule: RetrievalSchedule
    /// SHA-256 of the corpus pool the vectors belong to (CorpusPool.digest).
    var poolDigest: String
}

/// A stage's position at a step boundary, as the stage loop sees it.
struct StagePosition {
    var name: String
    var index: Int
    /// The epoch the next step belongs to, and the steps already taken in it.
    var epoch: Int
    var stepInEpoch: Int
    var stageStep: Int
    var sampler: SamplerPosition
    var schedule: LinearSchedule
    var best: StageBest?
}

/// A checkpoint read back on every rank, until its stage takes it over.
struct ResumePoint {
    var state: TrainingState
    var progress: TrainerProgress
    /// The checkpoint folder (on rank 0).
    var directory: String
    /// Moments and step of the stage's AdamW.
    var optimizer: AdamW
    var bestWeights: FloatBuffer?
    var retrieval: StageRetrieval?

    /// Hands the optimizer state and the best weights to the stage that continues.
    func restore(optimizer target: AdamW, bestWeights target2: FloatBuffer) {
        target.m.copy(from: optimizer.m)
        target.v.copy(from: optimizer.v)
        target.step = optimizer.step
        if let bestWeights { target2.copy(from: bestWeights) }
    }
}

/// Thrown by the stage loop once the checkpoint of `stopAfterSteps` is saved; `run` returns nil.
struct StopRequested: Error {
    var step: Int
    var checkpoint: URL
}

extension Trainer {
    static let bestWeightsFile = "best.safetensors"
    static let retrievalFile = "retrieval.safetensors"

    /// Hashes the model and data on rank 0 when the run saves or resumes, and loads the checkpoint
    /// to resume from.
    func prepareCheckpoints() throws {
        sessionStart = Date()
        guard config.checkpointEvery >= 0 || stopAfterSteps != nil || resume != nil else { return }
        if communicator.rank == 0 {
            identity = try RunIdentity.of(modelDirectory: URL(fileURLWithPath: config.model),
                                          dataDirectory: URL(fileURLWithPath: config.data))
        }
        guard let resume else { return }
        let point = try loadResumePoint(resume)
        resumePoint = point
        globalStep = point.state.step
        secondsBefore = point.progress.seconds
        if var quality = point.progress.retrievalQuality {
            quality.seen = (point.progress.retrievalSeen ?? []).map(Set.init)
            retrievalQuality = quality
        }
    }

    /// Saves a checkpoint when one is due at this boundary: after every epoch's evaluation and
    /// every `checkpointEvery` global steps (unless checkpoints are off), and at `stopAfterSteps`,
    /// where it then stops. The decision depends only on step counters and the config, the same
    /// on every rank (docs/design.md#rank-0-decides).
    func checkpointIfDue(_ position: StagePosition, epochEnd: Bool, optimizer: AdamW, bestWeights: FloatBuffer,
                         retrieval: StageRetrieval?) throws {
        let every = config.checkpointEvery
        let stop = stopAfterSteps == globalStep
        guard stop || (every >= 0 && (epochEnd || (every > 0 && globalStep % every == 0))) else { return }
        let started = Date()
        let folder = try checkpoints.save(trainingState(position, optimizer: optimizer, retrieval: retrieval),
                                          model: model, optimizer: optimizer, communicator: communicator,
                                          extraFiles: extraFiles(position, bestWeights: bestWeights, retrieval: retrieval))
        if communicator.rank == 0 {
            let bytes = (try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: [.fileSizeKey]))?
                .reduce(0) { $0 + ((try? $1.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0) } ?? 0
            log(String(format: "[checkpoint] %@ saved: %.1f MB in %.2f s", folder.lastPathComponent,
                       Double(bytes) / 1e6, Date().timeIntervalSince(started)))
        }
        if stop { throw StopRequested(step: globalStep, checkpoint: folder) }
    }

    func trainingState(_ p: StagePosition, optimizer: AdamW, retrieval: StageRetrieval?) throws -> TrainingState {
        let progress = TrainerProgress(stageIndex: p.index, stageStep: p.stageStep, stepInEpoch: p.stepInEpoch, best: p.best,
                                       seconds: secondsBefore + Date().timeIntervalSince(sessionStart),
                                       retrieval: retrieval.map { RetrievalProgress(schedule: $0.schedule, poolDigest: corpusPool.digest.hex) },
                                       retrievalQuality: retrievalQuality, retrievalSeen: retrievalQuality.seen.map { $0.sorted() })
        let bestDev = p.best.map {
            BestDevRecord(step: $0.step, epoch: $0.epoch, metric: "accuracy", value: $0.dev.accuracy,
                          scores: ["accuracy": $0.dev.accuracy, "macro_f1": $0.dev.macroF1,
                                   "test_accuracy": $0.test.accuracy, "test_macro_f1": $0.test.macroF1])
        }
        return TrainingState(step: globalStep, epoch: p.epoch, stage: p.name, sampler: p.sampler, schedule: p.schedule,
                             optimizerStep: optimizer.step, config: config, worldSize: communicator.size, identity: identity,
                             modelSource: config.model, numLabels: model.numLabels, bestDev: bestDev,
                             extensions: [TrainerProgress.key: String(decoding: try JSONEncoder().encode(progress), as: UTF8.self)])
    }

    /// best.safetensors when the best weights are not the checkpoint's own (the evaluation that
    /// found them was at an earlier step), retrieval.safetensors in stage 3.
    func extraFiles(_ p: StagePosition, bestWeights: FloatBuffer, retrieval: StageRetrieval?) -> [CheckpointExtraFile] {
        var files: [CheckpointExtraFile] = []
        let parameters = model.parameters
        if let best = p.best, best.step != globalStep {
            files.append(CheckpointExtraFile(name: Self.bestWeightsFile) { url in
                let entries = parameters.specs.map {
                    SafetensorsEntry(name: $0.name, shape: $0.shape,
                                     values: UnsafeBufferPointer(start: bestWeights.base + $0.offset, count: $0.count))
                }
                try SafetensorsWriter.write(entries, metadata: ["format": "csslm-best-weights", "step": String(best.step)], to: url)
            })
        }
        if let retrieval {
            let h = hidden
            files.append(CheckpointExtraFile(name: Self.retrievalFile) { url in
                let heads = retrieval.heads
                try retrieval.vectors.rows.withUnsafeBufferPointer { rows in
                    try heads.taskWeight.withUnsafeBufferPointer { tw in try heads.taskBias.withUnsafeBufferPointer { tb in
                    try heads.domainWeight.withUnsafeBufferPointer { dw in try heads.domainBias.withUnsafeBufferPointer { db in
                        let task = RetrievalHeads.taskName, dom = RetrievalHeads.domainName
                        try SafetensorsWriter.write([
                            SafetensorsEntry(name: "vectors", shape: [retrieval.vectors.count, 2 * h], values: rows),
                            SafetensorsEntry(name: task + ".weight", shape: [2, 2 * h], values: tw),
                            SafetensorsEntry(name: task + ".bias", shape: [2], values: tb),
                            SafetensorsEntry(name: dom + ".weight", shape: [2, 2 * h], values: dw),
                            SafetensorsEntry(name: dom + ".bias", shape: [2], values: db),
                        ], metadata: ["format": "csslm-retrieval-state"], to: url)
                    } } } }
                }
            })
        }
        return files
    }

    /// Reads the checkpoint `selection` names into the model (weights) and a resume point (the
    /// rest), on every rank: rank 0 reads and checks, the others receive.
    func loadResumePoint(_ selection: CheckpointSelection) throws -> ResumePoint {
        let started = Date()
        let optimizer = AdamW(config: AdamWConfig(), parameterCount: model.parameters.count)
        let expecting = communicator.rank == 0 ? ResumeExpectation(identity: identity, config: config) : nil
        let (loaded, extras) = try checkpoints.load(selection, into: model, optimizer: optimizer, communicator: communicator,
                                                    expecting: expecting, extraFiles: [Self.bestWeightsFile, Self.retrievalFile])
        for note in loaded.notes { log("[resume] \(note)") }
        let state = loaded.state, name = loaded.directory
        // Every rank decodes the same broadcast state, so these checks fail alike everywhere.
        guard let json = state.extensions[TrainerProgress.key],
              let progress = try? JSONDecoder().decode(TrainerProgress.self, from: Data(json.utf8)) else {
            throw CSSLMError("\(name): state.json has no trainer progress (extension '\(TrainerProgress.key)')",
                             hint: "this checkpoint was not written by `csslm train`; start a new run")
        }
        let stages = config.method.retrieves ? ["init", "main"] : ["train"]
        guard stages.indices.contains(progress.stageIndex), stages[progress.stageIndex] == state.stage,
              progress.retrieval != nil || progress.stageIndex == 0 else {
            throw CSSLMError("\(name): stage '\(state.stage)' (index \(progress.stageIndex)) is not a stage of \(config.method.rawValue)"
                             + (progress.stageIndex == 1 ? " with retrieval state" : ""))
        }
        var point = ResumePoint(state: state, progress: progress, directory: name, optimizer: optimizer)
        if let best = progress.best {
            let weights = FloatBuffer(count: model.parameters.count)
            if best.step == state.step {
                weights.copy(from: model.parameters.values)
            } else {
                let parameters = model.parameters
                try fromRoot("read best-dev weights") {
                    let file = try Self.extraFile(Self.bestWeightsFile, extras, checkpoint: name)
                    for s in parameters.specs { try file.read(s.name, into: weights.base + s.offset, expectedShape: s.shape) }
                }
                try communicator.broadcast(weights.buffer, root: 0, name: "broadcast(checkpoint best-dev weights)")
            }
            point.bestWeights = weights
        }
        if let retrieval = progress.retrieval {
            point.retrieval = try loadRetrieval(retrieval, extras: extras, checkpoint: name, resumeStep: state.step)
        }
        log(String(format: "[resume] continuing at step %d: stage %@, epoch %d, step %d of the stage, on %d rank(s) "
                       + "(checkpoint verified and loaded in %.2f s)", state.step, state.stage, state.epoch + 1,
                       progress.stageStep + 1, communicator.size, Date().timeIntervalSince(started)))
        return point
    }

    /// Stage 3's vectors and frozen heads from retrieval.safetensors (rank 0), on every rank.
    func loadRetrieval(_ progress: RetrievalProgress, extras: [String: Data], checkpoint: String,
                       resumeStep: Int) throws -> StageRetrieval {
        guard progress.poolDigest == corpusPool.digest.hex else {
            throw CSSLMError("\(checkpoint): its retrieval vectors belong to another corpus pool (SHA-256 \(progress.poolDigest.prefix(12))…, "
                             + "this run's pool \(corpusPool.digest.hex.prefix(12))…)",
                             hint: "resume with the original corpus, poolSize, minCorpusTokens and corpusMaxLength")
        }
        let h = hidden, n = corpusPool.count
        let headTensors = retrievalHeadTensors(hidden: h)
        let headCounts = headTensors.map { $0.shape.reduce(1, *) }
        var heads = [Float](repeating: 0, count: headCounts.reduce(0, +))
        let vectors = try fromRoot("read retrieval state") { () -> DocumentVectors in
            let file = try Self.extraFile(Self.retrievalFile, extras, checkpoint: checkpoint)
            var rows = [Float](repeating: 0, count: n * 2 * h)
            try rows.withUnsafeMutableBufferPointer { try file.read("vectors", into: $0.baseAddress!, expectedShape: [n, 2 * h]) }
            var offset = 0
            for (tensor, count) in zip(headTensors, headCounts) {
                try heads.withUnsafeMutableBufferPointer {
                    try file.read(tensor.name, into: $0.baseAddress! + offset, expectedShape: tensor.shape)
                }
                offset += count
            }
            return DocumentVectors(count: n, hidden: h, rows: rows)
        }
        try heads.withUnsafeMutableBufferPointer { try communicator.broadcast($0, root: 0, name: "broadcast(checkpoint retrieval heads)") }
        func part(_ i: Int) -> [Float] {
            let start = headCounts[..<i].reduce(0, +)
            return Array(heads[start..<(start + headCounts[i])])
        }
        let retrieval = StageRetrieval(vectors: try DocumentVectors.fromRoot(vectors, communicator: communicator),
                                       heads: RetrievalHeads(hidden: h, taskWeight: part(0), taskBias: part(1),
                                                             domainWeight: part(2), domainBias: part(3)),
                                       schedule: progress.schedule)
        retrieval.resumeStep = resumeStep
        return retrieval
    }

    /// An extra file of the checkpoint, parsed; an error names it when the checkpoint lacks it.
    static func extraFile(_ file: String, _ extras: [String: Data], checkpoint: String) throws -> SafetensorsFile {
        guard let data = extras[file] else {
            throw CSSLMError("\(checkpoint): the MANIFEST does not list \(file), which its state.json needs",
                             hint: "resume from another checkpoint, or start a new run")
        }
        return try SafetensorsFile(data: data, path: checkpoint + "/" + file)
    }

    /// Runs `body` on rank 0 and makes its error, if any, every rank's error (before the
    /// broadcasts that would carry its result). Returns its value on rank 0, nil elsewhere.
    @discardableResult
    func fromRoot<T>(_ what: String, _ body: () throws -> T) throws -> T? {
        var value: T?
        var outcome = CheckpointStore.Outcome.ok
        if communicator.rank == 0 {
            do { value = try body() } catch { outcome = CheckpointStore.Outcome(error) }
        }
        try checkpoints.agreeOnOutcome(outcome, communicator: communicator, what: what)
        return value
    }
}
