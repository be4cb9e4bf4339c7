// The step bodies of the training stages: forward, losses and backward for this rank's rows,
// gradients left in the flat buffer for the stage loop's allreduce. Features that a loss compares
// across the global batch are all-gathered and their column gradients reduce-scattered back
// (FeatureGather), so W ranks compute the same step as one process.
import Foundation

extension Trainer {
    static let negativesSite = 0x4E45_4753

    /// t and e [n, H] of the latest forward.
    func features(_ batch: TokenBatch) -> (t: [Float], e: [Float]) {
        var t = [Float](repeating: 0, count: batch.batch * hidden), e = t
        if batch.batch > 0 { model.sentenceFeatures(batch, t: &t, e: &e) }
        return (t, e)
    }

    func dropout(step: Int, rows: Range<Int>) -> DropoutContext {
        DropoutContext(probability: 0.1, seed: config.seed, step: step, exampleIndex: Array(rows))
    }

    /// The configured contrastive loss with the current `pair` head.
    var contrastiveObjective: ContrastiveObjective {
        config.contrastive == .supcon ? .supcon(temperature: config.temperature) : .pair(pairHead("pair"))
    }

    /// The current weight [2, ·] and bias [2] of the pair head `name`.
    func pairHead(_ name: String) -> PairHead {
        let ps = model.parameters
        func copy(_ tensor: String) -> [Float] {
            Array(UnsafeBufferPointer(start: ps.value(tensor), count: ps.spec(tensor)!.count))
        }
        return PairHead(weight: copy(name + ".weight"), bias: copy(name + ".bias"))
    }

    /// Gathers this rank's features of `batch` and its `labels` into the global set, evaluates
    /// `loss` (a stage loss of Objectives/StageLosses.swift) there, adds the heads' gradients to the
    /// flat buffer and the reduce-scattered feature gradients to the batch's rows.
    func compareAcrossRanks(_ batch: TokenBatch, labels: [Int], rowsPerRank: [Int],
                            _ loss: (GatheredFeatures) -> StageLoss) throws -> StageLoss {
        let (t, e) = features(batch)
        let g = try GatheredFeatures(communicator: communicator, t: t, e: e, labels: labels, rowsPerRank: rowsPerRank, hidden: hidden)
        let result = loss(g)
        let ps = model.parameters
        for (name, gradient) in [("pair", result.pair), (RetrievalHeads.taskName, result.task), (RetrievalHeads.domainName, result.domain)] {
            guard let gradient else { continue }
            let dw = ps.grad(name + ".weight"), db = ps.grad(name + ".bias")
            for i in gradient.weight.indices { dw[i] += gradient.weight[i] }
            for i in gradient.bias.indices { db[i] += gradient.bias[i] }
        }
        let local = try g.scatterGradients(dT: result.dT, dE: result.dE)
        if batch.batch > 0 { model.addFeatureGradient(batch, dT: local.dT, dE: local.dE) }
        return result
    }

    /// `finetune`: CE on the labelled batch; `scl`: CE + the contrastive loss (L_pair or SupCon)
    /// over the global batch.
    func labelledStep(_ s: StepInput) throws -> StepLosses {
        let n = s.local.count, b = s.global.count
        let labels = s.local.datasetIndices.map { train.labels[$0] }
        var ce = 0.0
        var batch = TokenBatch.empty
        let drop = dropout(step: s.step, rows: s.local.globalRows)
        if n > 0 {
            batch = try tokenBatch(s.local.datasetIndices.map { train.encodings[$0] })
            try model.forward(batch, dropout: drop)
            let share = Float(n) / Float(b)
            ce = Double(try model.classifierBackward(batch, labels: labels, dropout: drop, lossScale: share) * share)
        }
        var contrastive = StageLoss(parts: [0], dT: [], dE: [])
        if config.method == .scl {
            contrastive = try compareAcrossRanks(batch, labels: labels, rowsPerRank: s.rowsPerRank) { g in
                contrastiveStageLoss(t: g.t, e: g.e, labels: g.labels, anchors: g.gather.localRows, hidden: hidden,
                                     contrastive: contrastiveObjective)
            }
        }
        if n > 0 { model.encoderBackward(batch, dropout: drop) }
        return StepLosses(parts: [ce, Double(contrastive.parts[0])], maskedAnchors: contrastive.maskedAnchors)
    }

    /// Stage 1 (init): L_cls + L_pair(Q) (or SupCon) + L_task + L_dom (docs/method.md#stages). L_dom's
    /// positives are pairs of labelled sentences (the reference drew corpus sentences there: fixed);
    /// its negatives are `negatives` corpus sentences per step, the same for every query and rank,
    /// encoded without gradient. From the second epoch on, L_task and L_dom see detached features.
    func initStep(_ s: StepInput) throws -> StepLosses {
        let n = s.local.count, b = s.global.count, h = hidden
        let labels = s.local.datasetIndices.map { train.labels[$0] }
        // Negatives first: their forward pass must not overwrite the labelled batch's activations.
        var negE: [Float] = []
        if config.negatives > 0 {
            var rng = SplitMix64(seed: CounterRandom.streamKey(seed: config.seed, step: s.step, example: 0, site: Self.negativesSite))
            let picks = (0..<config.negatives).map { _ in rng.nextInt(below: corpusPool.count) }
            let nb = try tokenBatch(picks.map { corpusPool.encodings[$0] })
            try model.forward(nb, dropout: .off(batch: nb.batch), keepForBackward: false)
            negE = features(nb).e
        }
        var batch = TokenBatch.empty
        let drop = dropout(step: s.step, rows: s.local.globalRows)
        var ce = 0.0
        if n > 0 {
            batch = try tokenBatch(s.local.datasetIndices.map { train.encodings[$0] })
            try model.forward(batch, dropout: drop)
            let share = Float(n) / Float(b)
            ce = Double(try model.classifierBackward(batch, labels: labels, dropout: drop, lossScale: share) * share)
        }
        let loss = try compareAcrossRanks(batch, labels: labels, rowsPerRank: s.rowsPerRank) { g in
            initStageLoss(t: g.t, e: g.e, labels: g.labels, anchors: g.gather.localRows, hidden: h, contrastive: contrastiveObjective,
                          task: pairHead(RetrievalHeads.taskName), domain: pairHead(RetrievalHeads.domainName),
                          negatives: negE, detach: s.epoch > 0)
        }
        if n > 0 { model.encoderBackward(batch, dropout: drop) }
        return StepLosses(parts: [ce] + loss.parts.map(Double.init), maskedAnchors: loss.maskedAnchors)
    }

    /// Stage 3: retrieval for the global batch's queries (features gathered), the augmented set M
    /// (K drawn sentences then the query, per query) encoded with gradient, and
    /// `csslm`: L_cls(Q) + ½ (L_pair(Q) + L_pair(M)), SupCon in place of L_pair when configured;
    /// `selftrain`: CE on Q + CE on the retrieved sentences with their queries' labels.
    func mainStep(_ s: StepInput, retriever r: StageRetrieval) throws -> StepLosses {
        let b = s.global.count, h = hidden, k = config.topK
        // 1. The global batch's query features with the current encoder, no dropout, encoded across
        //    ranks in world-size-independent batches (top-K must not flip with W).
        let encoder = documentEncoder
        let globalLabels = s.global.datasetIndices.map { train.labels[$0] }
        let q = QueryFeatures(hidden: h, rows: try queryVectors(s.global.datasetIndices).rows, labels: globalLabels)
        if config.retriever == .query, try r.schedule.agreeOnRefresh(step: s.step, communicator: communicator) {
            // Re-encode the pool with the current encoder (all ranks, sharded).
            r.vectors = try buildCorpusIndex(pool: corpusPool, encoder: encoder, communicator: communicator,
                                             precision: .float32, url: nil)
        }
        // 2. Retrieval: the same on every rank (same features, same step-seeded draws).
        let retrievals = try retrieve(q, scorer: try scorer(r),
                                      k: k, seed: config.seed, step: s.step)
        let graded = retrievalQuality.add(retrievals, queryLabels: globalLabels, poolLabels: poolLabels, classes: model.numLabels)
        if s.isLastEpoch, communicator.rank == 0 {
            for (row, retrieval) in retrievals.enumerated() {
                let example = splits.train.examples[sample.indices[s.global.datasetIndices[row]]]
                try r.log(outputURL).record(epoch: s.epoch, step: s.step, query: example.text, label: globalLabels[row],
                                            labelName: splits.labels[globalLabels[row]], retrieval: retrieval,
                                            documents: corpusPool.documents)
            }
        }
        // 3. M: this rank's contiguous share, dropout keyed by the row's place in the global M.
        let m = AugmentedSet(queryLabels: globalLabels, retrievals: retrievals)
        let mine = m.localRows(rank: communicator.rank, worldSize: communicator.size)
        let items = Array(m.items[mine])
        let labelsM = items.map(\.label)
        let isQuery = items.map { if case .query = $0.source { return true } else { return false } }
        let drop = dropout(step: s.step, rows: mine)
        var batch = TokenBatch.empty
        var ce = 0.0
        if !items.isEmpty {
            batch = try tokenBatch(items.map { item -> Encoding in
                switch item.source {
                case .query(let row): return train.encodings[s.global.datasetIndices[row]]
                case .document(let d): return corpusPool.encodings[d]
                }
            })
            try model.forward(batch, dropout: drop)
            let weights = mainStageRowWeights(isQuery: isQuery, queries: b, topK: k, selftrain: config.method == .selftrain)
            ce = Double(try model.classifierBackward(batch, labels: labelsM, dropout: drop, rowWeights: weights))
        }
        guard config.method == .csslm else {
            if !items.isEmpty { model.encoderBackward(batch, dropout: drop) }
            return StepLosses(parts: [ce], record: ["retrieved_in_domain": graded.inDomain, "retrieved_correct": graded.correct])
        }
        // 4. ½ (L(Q) + L(M)) over the global M, L the configured contrastive loss.
        let queryRows = m.items.indices.filter { if case .query = m.items[$0].source { return true } else { return false } }
        let loss = try compareAcrossRanks(batch, labels: labelsM, rowsPerRank: m.rowsPerRank(worldSize: communicator.size)) { g in
            mainStageLoss(t: g.t, e: g.e, labels: g.labels, anchors: g.gather.localRows, queryRows: queryRows, hidden: h,
                          contrastive: contrastiveObjective)
        }
        if !items.isEmpty { model.encoderBackward(batch, dropout: drop) }
        return StepLosses(parts: [ce] + loss.parts.map(Double.init), maskedAnchors: loss.maskedAnchors,
                          record: ["retrieved_in_domain": graded.inDomain, "retrieved_correct": graded.correct])
    }
}

/// What stage 3 retrieves from: the pool's vectors, the frozen retrieval heads, the refresh
/// schedule, and the log of the last epoch's retrievals.
final class StageRetrieval {
    var vectors: DocumentVectors
    let heads: RetrievalHeads
    var schedule: RetrievalSchedule
    /// The step a resumed run continues at: the log keeps the lines of earlier steps of its epoch.
    var resumeStep: Int?
    private var sentencesLog: RetrievedSentencesLog?

    init(vectors: DocumentVectors, heads: RetrievalHeads, schedule: RetrievalSchedule) {
        self.vectors = vectors; self.heads = heads; self.schedule = schedule
    }

    /// The log of the last epoch's retrieved sentences (rank 0), opened at first use.
    func log(_ runDirectory: URL) throws -> RetrievedSentencesLog {
        if let sentencesLog { return sentencesLog }
        let log = RetrievedSentencesLog(url: runDirectory.appendingPathComponent("retrieved.jsonl"))
        if let resumeStep { try log.continueEpoch(before: resumeStep) } else { try log.beginEpoch() }
        sentencesLog = log
        return log
    }

    func finish() throws { try sentencesLog?.endEpoch() }
}
