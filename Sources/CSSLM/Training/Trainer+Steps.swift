// The step bodies of the training stages: forward, losses and backward for this rank's rows,
// gradients left in the flat buffer for the stage loop's allreduce. Features that a loss compares
// across the global batch are all-gathered and their column gradients reduce-scattered back
// (FeatureGather), so W ranks compute the same step as one process.
import Foundation

/// Features of the global set, gathered: t and e [M, H] and labels [M].
struct GatheredFeatures {
    var t: [Float]
    var e: [Float]
    var labels: [Int]
    let gather: FeatureGather
    var count: Int { labels.count }
}

extension Trainer {
    static let negativesSite = 0x4E45_4753

    /// Gathers this rank's rows of t, e [n, H] and labels into the global set.
    func gatherFeatures(t: [Float], e: [Float], labels: [Int], rowsPerRank: [Int]) throws -> GatheredFeatures {
        let h = hidden, n = labels.count
        let gather = FeatureGather(communicator: communicator, rowsPerRank: rowsPerRank, width: 2 * h)
        let m = gather.globalRows
        var local = [Float](repeating: 0, count: n * 2 * h)
        for r in 0..<n {
            for j in 0..<h { local[r * 2 * h + j] = t[r * h + j]; local[r * 2 * h + h + j] = e[r * h + j] }
        }
        var all = [Float](repeating: 0, count: m * 2 * h)
        var globalLabels = [Int](repeating: 0, count: m)
        try local.withUnsafeBufferPointer { l in try all.withUnsafeMutableBufferPointer { try gather.gather(l, into: $0) } }
        try labels.withUnsafeBufferPointer { l in try globalLabels.withUnsafeMutableBufferPointer { try gather.gatherLabels(l, into: $0) } }
        var gt = [Float](repeating: 0, count: m * h), ge = gt
        for r in 0..<m {
            for j in 0..<h { gt[r * h + j] = all[r * 2 * h + j]; ge[r * h + j] = all[r * 2 * h + h + j] }
        }
        return GatheredFeatures(t: gt, e: ge, labels: globalLabels, gather: gather)
    }

    /// Sums the column gradients dT, dE [M, H] over ranks and adds this rank's rows into dLocalT/E [n, H].
    func scatterColumnGradients(_ g: GatheredFeatures, dT: [Float], dE: [Float],
                                into dLocalT: inout [Float], _ dLocalE: inout [Float]) throws {
        let h = hidden, m = g.count, n = dLocalT.count / max(h, 1)
        var all = [Float](repeating: 0, count: m * 2 * h)
        for r in 0..<m {
            for j in 0..<h { all[r * 2 * h + j] = dT[r * h + j]; all[r * 2 * h + h + j] = dE[r * h + j] }
        }
        var local = [Float](repeating: 0, count: n * 2 * h)
        try all.withUnsafeBufferPointer { a in try local.withUnsafeMutableBufferPointer { try g.gather.scatterGradient(a, into: $0) } }
        for r in 0..<n {
            for j in 0..<h { dLocalT[r * h + j] += local[r * 2 * h + j]; dLocalE[r * h + j] += local[r * 2 * h + h + j] }
        }
    }

    /// t and e [n, H] of the latest forward.
    func features(_ batch: TokenBatch) -> (t: [Float], e: [Float]) {
        var t = [Float](repeating: 0, count: batch.batch * hidden), e = t
        if batch.batch > 0 { model.sentenceFeatures(batch, t: &t, e: &e) }
        return (t, e)
    }

    func dropout(step: Int, rows: Range<Int>) -> DropoutContext {
        DropoutContext(probability: 0.1, seed: config.seed, step: step, exampleIndex: Array(rows))
    }

    /// This rank's share of the configured contrastive loss (L_pair, or SupCon on t) over a gathered
    /// set t, e [M, H] with `labels` [M], anchors at the gathered rows `anchors` (this rank's own),
    /// divided by `divisor` (stage 3's ½). Every feature gradient, the anchors' included, is added
    /// into the gathered dT, dE [M, H] for the reduce-scatter; head gradients into the flat buffer.
    func contrastiveLoss(t: [Float], e: [Float], labels: [Int], anchors: Range<Int>, divisor: Int,
                         dT: inout [Float], dE: inout [Float]) -> (loss: Double, maskedAnchors: Int) {
        let m = labels.count, h = hidden
        guard m > 0 else { return (0, 0) }
        switch config.contrastive {
        case .supcon:
            let r = supConLoss(features: t, labels: labels, width: h, anchors: anchors, temperature: config.temperature,
                               lossScale: 1 / Float(divisor), gradient: &dT)
            return (Double(r.loss), r.maskedAnchors)
        case .pair:
            let a = anchors.lowerBound * h, ps = model.parameters
            var dRowT = [Float](repeating: 0, count: anchors.count * h), dRowE = dRowT
            let loss = t.withUnsafeBufferPointer { tp in e.withUnsafeBufferPointer { ep in
                pairLoss(rowE: ep.baseAddress! + a, rowT: tp.baseAddress! + a, rowLabels: Array(labels[anchors]),
                         colE: ep.baseAddress!, colT: tp.baseAddress!, colLabels: labels, hidden: h,
                         weight: ps.value("pair.weight"), bias: ps.value("pair.bias"), pairCount: divisor * m * m,
                         dRowE: &dRowE, dRowT: &dRowT, dColE: &dE, dColT: &dT,
                         dWeight: ps.grad("pair.weight"), dBias: ps.grad("pair.bias")).loss
            } }
            for k in 0..<(anchors.count * h) { dT[a + k] += dRowT[k]; dE[a + k] += dRowE[k] }
            return (Double(loss), 0)
        }
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
        var contrastive: (loss: Double, maskedAnchors: Int) = (0, 0)
        if config.method == .scl {
            let (t, e) = features(batch)
            let g = try gatherFeatures(t: t, e: e, labels: labels, rowsPerRank: s.rowsPerRank)
            var dT = [Float](repeating: 0, count: n * hidden), dE = dT
            var dColT = [Float](repeating: 0, count: g.count * hidden), dColE = dColT
            contrastive = contrastiveLoss(t: g.t, e: g.e, labels: g.labels, anchors: g.gather.localRows, divisor: 1,
                                          dT: &dColT, dE: &dColE)
            try scatterColumnGradients(g, dT: dColT, dE: dColE, into: &dT, &dE)
            if n > 0 { model.addFeatureGradient(batch, dT: dT, dE: dE) }
        }
        if n > 0 { model.encoderBackward(batch, dropout: drop) }
        return StepLosses(parts: [ce, contrastive.loss], maskedAnchors: contrastive.maskedAnchors)
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
        let negCount = negE.count / h
        var batch = TokenBatch.empty
        let drop = dropout(step: s.step, rows: s.local.globalRows)
        var ce = 0.0
        if n > 0 {
            batch = try tokenBatch(s.local.datasetIndices.map { train.encodings[$0] })
            try model.forward(batch, dropout: drop)
            let share = Float(n) / Float(b)
            ce = Double(try model.classifierBackward(batch, labels: labels, dropout: drop, lossScale: share) * share)
        }
        let (t, e) = features(batch)
        let g = try gatherFeatures(t: t, e: e, labels: labels, rowsPerRank: s.rowsPerRank)
        var dT = [Float](repeating: 0, count: n * h), dE = dT
        var dColT = [Float](repeating: 0, count: g.count * h), dColE = dColT
        let ps = model.parameters
        let contrastive = contrastiveLoss(t: g.t, e: g.e, labels: g.labels, anchors: g.gather.localRows, divisor: 1,
                                          dT: &dColT, dE: &dColE)
        let detach = s.epoch > 0
        let task = "\(RetrievalHeads.taskName)", dom = "\(RetrievalHeads.domainName)"
        var lTask: Float = 0, lDom: Float = 0
        t.withUnsafeBufferPointer { tp in e.withUnsafeBufferPointer { ep in g.t.withUnsafeBufferPointer { gt in
        g.e.withUnsafeBufferPointer { ge in negE.withUnsafeBufferPointer { np in
        dT.withUnsafeMutableBufferPointer { dt in dE.withUnsafeMutableBufferPointer { de in
        dColT.withUnsafeMutableBufferPointer { dct in dColE.withUnsafeMutableBufferPointer { dce in
            lTask = linearPairLoss(rows: [PairBlock(tp.baseAddress!, weightOffset: 0, gradient: detach ? nil : dt.baseAddress)],
                                   rowCount: n, columns: [PairBlock(gt.baseAddress!, weightOffset: h, gradient: detach ? nil : dct.baseAddress)],
                                   columnCount: g.count, width: h, inputWidth: 2 * h, weight: ps.value(task + ".weight"),
                                   bias: ps.value(task + ".bias"), pairCount: b * b,
                                   target: { labels[$0] == g.labels[$1] ? 1 : 0 },
                                   dWeight: ps.grad(task + ".weight"), dBias: ps.grad(task + ".bias")).loss
            let pairs = b * (b + negCount)
            lDom = linearPairLoss(rows: [PairBlock(ep.baseAddress!, weightOffset: 0, gradient: detach ? nil : de.baseAddress)],
                                  rowCount: n, columns: [PairBlock(ge.baseAddress!, weightOffset: h, gradient: detach ? nil : dce.baseAddress)],
                                  columnCount: g.count, width: h, inputWidth: 2 * h, weight: ps.value(dom + ".weight"),
                                  bias: ps.value(dom + ".bias"), pairCount: pairs, target: { _, _ in 1 },
                                  dWeight: ps.grad(dom + ".weight"), dBias: ps.grad(dom + ".bias")).loss
            if negCount > 0 {
                lDom += linearPairLoss(rows: [PairBlock(ep.baseAddress!, weightOffset: 0, gradient: detach ? nil : de.baseAddress)],
                                       rowCount: n, columns: [PairBlock(np.baseAddress!, weightOffset: h)],
                                       columnCount: negCount, width: h, inputWidth: 2 * h, weight: ps.value(dom + ".weight"),
                                       bias: ps.value(dom + ".bias"), pairCount: pairs, target: { _, _ in 0 },
                                       dWeight: ps.grad(dom + ".weight"), dBias: ps.grad(dom + ".bias")).loss
            }
        } } } } } } } } }
        try scatterColumnGradients(g, dT: dColT, dE: dColE, into: &dT, &dE)
        if n > 0 {
            model.addFeatureGradient(batch, dT: dT, dE: dE)
            model.encoderBackward(batch, dropout: drop)
        }
        return StepLosses(parts: [ce, contrastive.loss, Double(lTask), Double(lDom)], maskedAnchors: contrastive.maskedAnchors)
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
            let weights = isQuery.map { $0 ? 1 / Float(b) : (config.method == .selftrain ? 1 / Float(b * k) : 0) }
            ce = Double(try model.classifierBackward(batch, labels: labelsM, dropout: drop, rowWeights: weights))
        }
        guard config.method == .csslm else {
            if !items.isEmpty { model.encoderBackward(batch, dropout: drop) }
            return StepLosses(parts: [ce], record: ["retrieved_in_domain": graded.inDomain, "retrieved_correct": graded.correct])
        }
        // 4. ½ L(M) over the global M and ½ L(Q) over its query rows (divisor 2), L the configured
        //    contrastive loss; all feature gradients go into the gathered dColT/E.
        let (mt, me) = features(batch)
        let gm = try gatherFeatures(t: mt, e: me, labels: labelsM, rowsPerRank: m.rowsPerRank(worldSize: communicator.size))
        var dT = [Float](repeating: 0, count: items.count * h), dE = dT
        var dColT = [Float](repeating: 0, count: gm.count * h), dColE = dColT
        let lossM = contrastiveLoss(t: gm.t, e: gm.e, labels: gm.labels, anchors: gm.gather.localRows, divisor: 2,
                                    dT: &dColT, dE: &dColE)
        // Query rows: every (K+1)-th row of M; this rank's anchors are the ones inside its rows `mine`.
        let globalQ = m.items.indices.filter { if case .query = m.items[$0].source { return true } else { return false } }
        let anchorsQ = (globalQ.firstIndex { $0 >= mine.lowerBound } ?? globalQ.count)..<(globalQ.firstIndex { $0 >= mine.upperBound } ?? globalQ.count)
        func rows(_ x: [Float], _ idx: [Int]) -> [Float] { idx.flatMap { x[($0 * h)..<(($0 + 1) * h)] } }
        var dQT = [Float](repeating: 0, count: globalQ.count * h), dQE = dQT
        let lossQ = contrastiveLoss(t: rows(gm.t, globalQ), e: rows(gm.e, globalQ), labels: globalQ.map { gm.labels[$0] },
                                    anchors: anchorsQ, divisor: 2, dT: &dQT, dE: &dQE)
        for (i, row) in globalQ.enumerated() {
            for j in 0..<h { dColT[row * h + j] += dQT[i * h + j]; dColE[row * h + j] += dQE[i * h + j] }
        }
        try scatterColumnGradients(gm, dT: dColT, dE: dColE, into: &dT, &dE)
        if !items.isEmpty {
            model.addFeatureGradient(batch, dT: dT, dE: dE)
            model.encoderBackward(batch, dropout: drop)
        }
        return StepLosses(parts: [ce, lossQ.loss, lossM.loss], maskedAnchors: lossQ.maskedAnchors + lossM.maskedAnchors,
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
