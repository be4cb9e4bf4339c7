// One training run: few-shot sample → epochs of global batches split across ranks → best-dev
// selection → test at the best dev epoch. Every rank runs this same code; collectives keep them in
// step, and rank 0 alone writes files and prints (DESIGN.md contracts 2 and 4).
import Foundation

/// What a finished run reports (also written to `result.json`).
public struct RunResult: Codable, Equatable, Sendable {
    public var method: String
    public var dataset: String
    public var sampleSeed: UInt64
    public var bestEpoch: Int
    public var dev: ClassificationMetrics
    public var test: ClassificationMetrics
    public var steps: Int
    public var seconds: Double
}

/// A labelled split tokenised once: one Encoding per example.
struct EncodedSplit {
    var encodings: [Encoding]
    var labels: [Int]
    var count: Int { labels.count }
}

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
    let log: (String) -> Void

    public init(config: TrainConfig, communicator: Communicator, log: @escaping (String) -> Void = { print($0) }) throws {
        try config.validate()
        self.config = config
        self.communicator = communicator
        self.log = communicator.rank == 0 ? log : { _ in }
        let modelDir = URL(fileURLWithPath: config.model)
        let tok = try WordPieceTokenizer(modelDirectory: modelDir)
        tokenizer = tok
        splits = try DatasetSplits.load(directory: URL(fileURLWithPath: config.data))
        for report in splits.reports where !report.isClean { self.log("[data] \(report.summary)") }
        let h = try BertConfig.load(from: modelDir.appendingPathComponent("config.json")).hiddenSize
        model = try BertClassifier(modelDirectory: modelDir, numLabels: splits.labels.count,
                                   extraHeads: config.method == .scl ? pairHeadTensors(hidden: h) : [],
                                   seed: config.seed)
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
    }

    /// Pads encodings into one batch (to the longest of them).
    func tokenBatch(_ encodings: [Encoding]) throws -> TokenBatch {
        try TokenBatch(sequences: encodings.map(\.ids), typeIds: encodings.map(\.tokenTypeIds),
                       padId: tokenizer.paddingId, sepId: tokenizer.separatorId)
    }

    /// Trains, selects the best dev epoch, and returns its dev and test metrics.
    public func run() throws -> RunResult {
        let started = Date()
        let out = URL(fileURLWithPath: config.output)
        let isRoot = communicator.rank == 0
        var metricsFile: FileHandle?
        if isRoot {
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try enc.encode(config).write(to: out.appendingPathComponent("config.json"))
            try sample.write(to: out.appendingPathComponent(FewShotSample.fileName), source: splits.train)
            let metricsURL = out.appendingPathComponent("metrics.jsonl")
            FileManager.default.createFile(atPath: metricsURL.path, contents: nil)
            metricsFile = try FileHandle(forWritingTo: metricsURL)
        }
        defer { try? metricsFile?.close() }
        func record(_ object: [String: Any]) {
            guard let metricsFile, let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
            metricsFile.write(data); metricsFile.write(Data([0x0A]))
        }

        let stepsPerEpoch = (train.count + config.batchSize - 1) / config.batchSize
        let totalSteps = stepsPerEpoch * config.epochs
        let schedule = LinearSchedule(warmupFraction: config.warmupFraction, totalSteps: totalSteps)
        var adamConfig = AdamWConfig(learningRate: config.learningRate, weightDecay: config.weightDecay)
        if config.method == .finetune { adamConfig.weightDecay = 0 }
        let optimizer = AdamW(config: adamConfig, parameterCount: model.parameters.count)
        let reducer = try GradientAllreducer(communicator: communicator, parameterRanges: model.parameters.specs.map(\.range),
                                             averaging: .sum, extraSumCount: 2)
        var sampler = GlobalSampler(datasetSize: train.count, globalBatchSize: config.batchSize, seed: config.seed)
        let h = model.config.hiddenSize
        let progress = ProgressLine(total: totalSteps, enabled: isRoot)
        log("[train] \(config.method.rawValue) on \(URL(fileURLWithPath: config.data).lastPathComponent): "
            + "\(train.count) labelled (\(config.perClass)/class, sample seed \(config.sampleSeed)), "
            + "\(epochs) epochs × \(stepsPerEpoch) steps, global batch \(config.batchSize), \(communicator.size) rank(s)")

        var best: (epoch: Int, dev: ClassificationMetrics, test: ClassificationMetrics)?
        let bestWeights = FloatBuffer(count: model.parameters.count)
        var step = 0
        for epoch in 0..<config.epochs {
            for _ in 0..<stepsPerEpoch {
                let t0 = Date()
                let global = sampler.nextBatch()
                let local = global.slice(rank: communicator.rank, worldSize: communicator.size)
                let rowsPerRank = global.rowsPerRank(worldSize: communicator.size)
                let labels = local.datasetIndices.map { train.labels[$0] }
                let dropout = DropoutContext(probability: 0.1, seed: config.seed, step: step,
                                             exampleIndex: Array(local.globalRows))
                model.parameters.grads.zero()
                var ceShare = 0.0, pairShare = 0.0
                if local.count > 0 {
                    let batch = try tokenBatch(local.datasetIndices.map { train.encodings[$0] })
                    try model.forward(batch, dropout: dropout)
                    let lossScale = Float(local.count) / Float(global.count)
                    let ce = try model.classifierBackward(batch, labels: labels, dropout: dropout, lossScale: lossScale)
                    ceShare = Double(ce * lossScale)
                    if config.method == .scl {
                        pairShare = try pairLossStep(batch: batch, labels: labels, rowsPerRank: rowsPerRank, hidden: h)
                    }
                    model.encoderBackward(batch, dropout: dropout)
                } else if config.method == .scl {
                    // A rank without rows still takes part in the gather collectives.
                    let dummy = try TokenBatch(batch: 0, seqLen: 0, ids: [], mask: [], sepPositions: [])
                    pairShare = try pairLossStep(batch: dummy, labels: [], rowsPerRank: rowsPerRank, hidden: h)
                }
                let totals = try reducer.allreduce(model.parameters.grads.buffer,
                                                   local: LocalStepTotals(lossSum: ceShare + pairShare, exampleCount: local.count,
                                                                          nonFinite: !(ceShare + pairShare).isFinite,
                                                                          extraSums: [ceShare, pairShare]))
                let lr = config.learningRate * schedule.multiplier(step)
                if totals.nonFinite {
                    log("[train] step \(step): non-finite loss or gradient on \(totals.nonFiniteRanks) rank(s); update skipped on all ranks")
                } else {
                    let norm = Float(totals.gradientNorm)
                    let coef = min(config.maxGradNorm / (norm + 1e-6), 1)
                    if coef < 1 { scale(model.parameters.grads.base, model.parameters.count, by: coef) }
                    optimizer.update(model.parameters, lr: lr)
                }
                let seconds = Date().timeIntervalSince(t0)
                progress.update(step: step + 1, text: String(format: "%@ epoch %d/%d step %d/%d loss %.4f (ce %.4f pair %.4f) lr %.2e %.1f samples/s",
                                                              config.method.rawValue, epoch + 1, config.epochs, step + 1, totalSteps,
                                                              totals.lossSum, totals.extraSums[0], totals.extraSums[1], lr,
                                                              Double(global.count) / seconds))
                record(["kind": "step", "step": step, "epoch": epoch, "loss": totals.lossSum, "ce": totals.extraSums[0],
                        "pair": totals.extraSums[1], "lr": Double(lr), "grad_norm": totals.gradientNorm, "seconds": seconds])
                step += 1
            }
            let devMetrics = try evaluate(dev)
            record(["kind": "eval", "split": "dev", "epoch": epoch, "step": step, "accuracy": devMetrics.accuracy,
                    "macro_f1": devMetrics.macroF1])
            var improved = false
            if best == nil || devMetrics.accuracy > best!.dev.accuracy {
                let testMetrics = try evaluate(test)
                record(["kind": "eval", "split": "test", "epoch": epoch, "step": step, "accuracy": testMetrics.accuracy,
                        "macro_f1": testMetrics.macroF1])
                best = (epoch, devMetrics, testMetrics)
                bestWeights.copy(from: model.parameters.values)
                improved = true
            }
            progress.finishLine()
            log(String(format: "[eval] epoch %d dev acc %.4f macro-F1 %.4f%@", epoch + 1, devMetrics.accuracy, devMetrics.macroF1,
                       improved ? String(format: " (best; test acc %.4f macro-F1 %.4f)", best!.test.accuracy, best!.test.macroF1) : ""))
        }
        let result = RunResult(method: config.method.rawValue, dataset: URL(fileURLWithPath: config.data).lastPathComponent,
                               sampleSeed: config.sampleSeed, bestEpoch: best!.epoch + 1, dev: best!.dev, test: best!.test,
                               steps: step, seconds: Date().timeIntervalSince(started))
        // The model of the best dev epoch, as an HF folder beside the results.
        model.parameters.values.copy(from: bestWeights)
        if isRoot {
            let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try enc.encode(result).write(to: out.appendingPathComponent("result.json"))
            try saveModel(to: out.appendingPathComponent("model"))
        }
        return result
    }

    private var epochs: Int { config.epochs }

    /// Writes the current weights as an HF model folder (encoder in model.safetensors under HF
    /// names, heads in heads.safetensors) with the tokenizer files and labels.txt.
    public func saveModel(to dir: URL) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        try model.saveEncoder(to: dir.appendingPathComponent("model.safetensors"))
        try model.saveHeads(to: dir.appendingPathComponent("heads.safetensors"))
        try writeAtomically(try model.config.jsonData(), to: dir.appendingPathComponent("config.json"))
        let source = URL(fileURLWithPath: config.model)
        for name in ["vocab.txt", "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json"] {
            let from = source.appendingPathComponent(name), to = dir.appendingPathComponent(name)
            guard fm.fileExists(atPath: from.path) else { continue }
            try? fm.removeItem(at: to)
            try fm.copyItem(at: from, to: to)
        }
        try writeAtomically(Data((splits.labels.joined(separator: "\n") + "\n").utf8), to: dir.appendingPathComponent("labels.txt"))
    }

    /// L_pair over the global batch: gathers t and e of every rank's rows, scores local rows against
    /// all columns, and routes the column gradients back to their owners. Adds the feature
    /// gradient into the model's dHidden; returns this rank's share of the loss.
    private func pairLossStep(batch: TokenBatch, labels: [Int], rowsPerRank: [Int], hidden h: Int) throws -> Double {
        let n = batch.batch
        let gather = FeatureGather(communicator: communicator, rowsPerRank: rowsPerRank, width: 2 * h)
        let m = gather.globalRows
        // Local rows as [t | e] of width 2H; gathered the same way.
        var local = [Float](repeating: 0, count: n * 2 * h)
        var t = [Float](repeating: 0, count: n * h), e = t
        if n > 0 { model.sentenceFeatures(batch, t: &t, e: &e) }
        for r in 0..<n {
            for j in 0..<h { local[r * 2 * h + j] = t[r * h + j]; local[r * 2 * h + h + j] = e[r * h + j] }
        }
        var gathered = [Float](repeating: 0, count: m * 2 * h)
        var globalLabels = [Int](repeating: 0, count: m)
        try local.withUnsafeBufferPointer { l in try gathered.withUnsafeMutableBufferPointer { try gather.gather(l, into: $0) } }
        try labels.withUnsafeBufferPointer { l in try globalLabels.withUnsafeMutableBufferPointer { try gather.gatherLabels(l, into: $0) } }
        var colT = [Float](repeating: 0, count: m * h), colE = colT
        for r in 0..<m {
            for j in 0..<h { colT[r * h + j] = gathered[r * 2 * h + j]; colE[r * h + j] = gathered[r * 2 * h + h + j] }
        }
        var dRowT = [Float](repeating: 0, count: n * h), dRowE = dRowT
        var dColT = [Float](repeating: 0, count: m * h), dColE = dColT
        let ps = model.parameters
        let result = pairLoss(rowE: e, rowT: t, rowLabels: labels, colE: colE, colT: colT, colLabels: globalLabels,
                              hidden: h, weight: ps.value("pair.weight"), bias: ps.value("pair.bias"), pairCount: m * m,
                              dRowE: &dRowE, dRowT: &dRowT, dColE: &dColE, dColT: &dColT,
                              dWeight: ps.grad("pair.weight"), dBias: ps.grad("pair.bias"))
        // Column gradients, [t | e] per row, summed over ranks and returned to each row's owner.
        var dGathered = [Float](repeating: 0, count: m * 2 * h)
        for r in 0..<m {
            for j in 0..<h { dGathered[r * 2 * h + j] = dColT[r * h + j]; dGathered[r * 2 * h + h + j] = dColE[r * h + j] }
        }
        var dLocal = [Float](repeating: 0, count: n * 2 * h)
        try dGathered.withUnsafeBufferPointer { g in try dLocal.withUnsafeMutableBufferPointer { try gather.scatterGradient(g, into: $0) } }
        for r in 0..<n {
            for j in 0..<h { dRowT[r * h + j] += dLocal[r * 2 * h + j]; dRowE[r * h + j] += dLocal[r * 2 * h + h + j] }
        }
        if n > 0 { model.addFeatureGradient(batch, dT: dRowT, dE: dRowE) }
        return Double(result.loss)
    }

    /// Accuracy and macro-F1 on a split, each rank scoring a contiguous share (sorted by length
    /// to waste little on padding); the confusion matrices are summed across ranks.
    func evaluate(_ split: EncodedSplit) throws -> ClassificationMetrics {
        let c = model.numLabels
        let mine = GlobalSampler.rankRows(batchSize: split.count, rank: communicator.rank, worldSize: communicator.size)
        let order = mine.sorted { split.encodings[$0].count < split.encodings[$1].count }
        var confusion = [Int](repeating: 0, count: c * c)
        var i = 0
        while i < order.count {
            let chunk = Array(order[i..<min(i + config.evalBatchSize, order.count)])
            let logits = try model.logits(try tokenBatch(chunk.map { split.encodings[$0] }))
            for (r, idx) in chunk.enumerated() {
                let row = logits[(r * c)..<((r + 1) * c)]
                let predicted = row.indices.max { row[$0] < row[$1] }! - r * c
                confusion[split.labels[idx] * c + predicted] += 1
            }
            i += chunk.count
        }
        try confusion.withUnsafeMutableBufferPointer { try communicator.allreduce($0, .sum, name: "allreduce(confusion matrix)") }
        var predictions: [Int] = [], labels: [Int] = []
        for y in 0..<c { for p in 0..<c { for _ in 0..<confusion[y * c + p] { predictions.append(p); labels.append(y) } } }
        return ClassificationMetrics(predictions: predictions, labels: labels, classes: c)
    }
}

/// Rank 0's one progress line per step: an updating line on a terminal, plain lines otherwise.
final class ProgressLine {
    let total: Int
    let enabled: Bool
    let isTTY = isatty(STDOUT_FILENO) != 0 && !MPIRuntime.isLaunchedByMPIRun
    let started = Date()
    private var open = false

    init(total: Int, enabled: Bool) { self.total = total; self.enabled = enabled }

    func update(step: Int, text: String) {
        guard enabled else { return }
        let elapsed = Date().timeIntervalSince(started)
        let eta = step > 0 ? elapsed / Double(step) * Double(total - step) : 0
        let line = "\(text) ETA \(Int(eta))s"
        if isTTY {
            print("\r\u{1B}[2K" + line, terminator: "")
            fflush(stdout)
            open = true
        } else {
            print(line)
        }
    }

    func finishLine() {
        if open { print(""); open = false }
    }
}
