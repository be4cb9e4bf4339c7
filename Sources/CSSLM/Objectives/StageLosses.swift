// The loss of each training stage as one pure function (docs/method.md#losses, #stages): features
// and labels of the step's global set in, the stage's loss parts and d(loss)/d(features) and
// d(loss)/d(head parameters) out. L_cls belongs to the classifier and stays in the model; what is
// here is everything a stage adds on top of it.
//
// Distributed use: every rank passes the gathered set t, e [M, H] and its own rows as `anchors`.
// The parts are then this rank's shares (they sum over ranks to the global loss), and dT, dE
// [M, H] hold d(share)/d(every gathered row), anchors included, ready for FeatureGather's
// reduce-scatter. With one process `anchors` = 0..<M and the gradients are the whole gradient.
// Shapes: M = rows of the set, H = feature width, N = negatives (stage 1).

/// A linear 2-way pair head: weight [2, inputWidth] and bias [2] (also used for their gradients).
public struct PairHead: Equatable, Sendable {
    public var weight: [Float]
    public var bias: [Float]
    public init(weight: [Float], bias: [Float]) { self.weight = weight; self.bias = bias }
    /// Zeros of the same shape (a gradient to add into).
    var zeros: PairHead { PairHead(weight: [Float](repeating: 0, count: weight.count), bias: [0, 0]) }
}

/// The contrastive loss a stage compares its set with (`--contrastive`).
public enum ContrastiveObjective: Sendable {
    /// L_pair with the `pair` head on [e_i; e_j; t_i; t_j].
    case pair(PairHead)
    /// SupCon on t with this temperature.
    case supcon(temperature: Float)
}

/// One stage loss: its parts (this rank's shares), gradients with respect to the gathered
/// features, and the heads' gradients (nil for a head the stage does not use).
public struct StageLoss {
    /// init: [contrastive, task, dom]; main: [contrastive(Q), contrastive(M)].
    public var parts: [Float]
    public var total: Float { parts.reduce(0, +) }
    /// d(loss)/d(t), d(loss)/d(e) [M, H].
    public var dT: [Float]
    public var dE: [Float]
    public var pair: PairHead?
    public var task: PairHead?
    public var domain: PairHead?
    /// SupCon anchors of the set(s) without a positive (left out of the mean).
    public var maskedAnchors = 0
}

/// Stage 1 (init) on the global labelled batch Q (M = B rows): the contrastive loss over Q×Q,
/// L_task (taskPair on [t_i; t_j], target same label, B² pairs) and L_dom (domainPair on
/// [e_i; e_j] over Q×Q, target 1, and on [e_q; n] against the N `negatives` [N, H], target 0,
/// B(B + N) pairs). `detach`: from the second epoch on L_task and L_dom give no feature gradient
/// (their heads still learn). The negatives are encoded without gradient: none is returned for them.
public func initStageLoss(t: [Float], e: [Float], labels: [Int], anchors: Range<Int>, hidden h: Int,
                          contrastive: ContrastiveObjective, task: PairHead, domain: PairHead,
                          negatives: [Float], detach: Bool) -> StageLoss {
    let m = labels.count, n = negatives.count / max(h, 1)
    var out = StageLoss(parts: [], dT: [Float](repeating: 0, count: m * h), dE: [Float](repeating: 0, count: m * h))
    let c = contrastiveShare(t: t, e: e, labels: labels, anchors: anchors, hidden: h, objective: contrastive, divisor: 1,
                             dT: &out.dT, dE: &out.dE)
    out.pair = c.head
    out.maskedAnchors = c.masked
    var dTask = task.zeros, dDomain = domain.zeros
    let rowLabels = Array(labels[anchors])
    let lTask = pairTerm(rows: t, anchors: anchors, columns: t, columnCount: m, hidden: h, head: task, pairCount: m * m,
                         target: { rowLabels[$0] == labels[$1] ? 1 : 0 }, rowGradient: !detach, columnGradient: !detach,
                         dHead: &dTask)
    let domPositives = pairTerm(rows: e, anchors: anchors, columns: e, columnCount: m, hidden: h, head: domain,
                                pairCount: m * (m + n), target: { _, _ in 1 }, rowGradient: !detach, columnGradient: !detach,
                                dHead: &dDomain)
    var lDom = domPositives.loss
    add(lTask.dRows, into: &out.dT, at: anchors.lowerBound * h); add(lTask.dColumns, into: &out.dT, at: 0)
    add(domPositives.dRows, into: &out.dE, at: anchors.lowerBound * h); add(domPositives.dColumns, into: &out.dE, at: 0)
    if n > 0 {
        let domNegatives = pairTerm(rows: e, anchors: anchors, columns: negatives, columnCount: n, hidden: h, head: domain,
                                    pairCount: m * (m + n), target: { _, _ in 0 }, rowGradient: !detach, columnGradient: false,
                                    dHead: &dDomain)
        lDom += domNegatives.loss
        add(domNegatives.dRows, into: &out.dE, at: anchors.lowerBound * h)
    }
    out.parts = [c.loss, lTask.loss, lDom]
    out.task = dTask
    out.domain = dDomain
    return out
}

/// Stage 3 of `csslm` on the augmented set M (B(K+1) rows): ½ (L(Q) + L(M)), L the contrastive
/// loss, Q the rows `queryRows` of M (every (K+1)-th: each query follows its K documents).
/// Parts: [½ L(Q), ½ L(M)]; this rank's Q anchors are the query rows inside `anchors`.
public func mainStageLoss(t: [Float], e: [Float], labels: [Int], anchors: Range<Int>, queryRows: [Int], hidden h: Int,
                          contrastive: ContrastiveObjective) -> StageLoss {
    let m = labels.count
    var out = StageLoss(parts: [], dT: [Float](repeating: 0, count: m * h), dE: [Float](repeating: 0, count: m * h))
    let lossM = contrastiveShare(t: t, e: e, labels: labels, anchors: anchors, hidden: h, objective: contrastive, divisor: 2,
                                 dT: &out.dT, dE: &out.dE)
    let first = queryRows.firstIndex { $0 >= anchors.lowerBound } ?? queryRows.count
    let end = queryRows.firstIndex { $0 >= anchors.upperBound } ?? queryRows.count
    func rows(_ x: [Float]) -> [Float] { queryRows.flatMap { x[($0 * h)..<(($0 + 1) * h)] } }
    var dQT = [Float](repeating: 0, count: queryRows.count * h), dQE = dQT
    // Q's pair-head gradient adds onto M's: both terms train the one head.
    let lossQ = contrastiveShare(t: rows(t), e: rows(e), labels: queryRows.map { labels[$0] }, anchors: first..<end, hidden: h,
                                 objective: contrastive, divisor: 2, dT: &dQT, dE: &dQE, headGradient: lossM.head)
    for (i, row) in queryRows.enumerated() {
        for j in 0..<h { out.dT[row * h + j] += dQT[i * h + j]; out.dE[row * h + j] += dQE[i * h + j] }
    }
    out.parts = [lossQ.loss, lossM.loss]
    out.pair = lossQ.head
    out.maskedAnchors = lossQ.masked + lossM.masked
    return out
}

/// Stage 3's CE row weights over this rank's rows of M (`isQuery` per row): a query counts 1/B
/// (the mean over Q); a retrieved document 1/(B·K) under `selftrain` (the mean over the retrieved
/// sentences with their pseudo-labels) and 0 under `csslm` (its documents are in L_pair(M) only).
public func mainStageRowWeights(isQuery: [Bool], queries b: Int, topK k: Int, selftrain: Bool) -> [Float] {
    isQuery.map { $0 ? 1 / Float(b) : (selftrain ? 1 / Float(b * k) : 0) }
}

/// The configured contrastive loss's share over `anchors` of the set, divided by `divisor`
/// (L_pair over divisor·M² pairs; SupCon scaled by 1/divisor); feature gradients added into dT,
/// dE [M, H]; the pair head's gradient added onto `headGradient` (zeros when nil).
private func contrastiveShare(t: [Float], e: [Float], labels: [Int], anchors: Range<Int>, hidden h: Int,
                              objective: ContrastiveObjective, divisor: Int, dT: inout [Float], dE: inout [Float],
                              headGradient: PairHead? = nil) -> (loss: Float, head: PairHead?, masked: Int) {
    let m = labels.count
    switch objective {
    case .supcon(let temperature):
        guard m > 0 else { return (0, nil, 0) }
        let r = t.withUnsafeBufferPointer { tp in dT.withUnsafeMutableBufferPointer { g in
            supConLoss(features: tp.baseAddress!, labels: labels, width: h, anchors: anchors, temperature: temperature,
                       lossScale: 1 / Float(divisor), gradient: g.baseAddress)
        } }
        return (r.loss, nil, r.maskedAnchors)
    case .pair(let head):
        var dHead = headGradient ?? head.zeros
        guard m > 0 else { return (0, dHead, 0) }
        let a = anchors.lowerBound * h
        // Row gradients in their own buffer first, then onto the anchors' gathered rows.
        var dRowT = [Float](repeating: 0, count: anchors.count * h), dRowE = dRowT
        let rowLabels = Array(labels[anchors])
        let loss = t.withUnsafeBufferPointer { tp in e.withUnsafeBufferPointer { ep in
            head.weight.withUnsafeBufferPointer { w in head.bias.withUnsafeBufferPointer { bias in
            dHead.weight.withUnsafeMutableBufferPointer { dw in dHead.bias.withUnsafeMutableBufferPointer { db in
                pairLoss(rowE: ep.baseAddress! + a, rowT: tp.baseAddress! + a, rowLabels: rowLabels,
                         colE: ep.baseAddress!, colT: tp.baseAddress!, colLabels: labels, hidden: h,
                         weight: w.baseAddress!, bias: bias.baseAddress!, pairCount: divisor * m * m,
                         dRowE: &dRowE, dRowT: &dRowT, dColE: &dE, dColT: &dT,
                         dWeight: dw.baseAddress!, dBias: db.baseAddress!).loss
            } } } }
        } }
        for k in 0..<(anchors.count * h) { dT[a + k] += dRowT[k]; dE[a + k] += dRowE[k] }
        return (loss, dHead, 0)
    }
}

/// One linear pair term of a 2H-input head: the anchors' rows of `rows` [M, H] (weights 0..<H)
/// against `columns` [columnCount, H] (weights H..<2H), mean CE over `pairCount` pairs. Returns the
/// loss and, where asked (not detached), d/d(the anchors' rows) [anchors, H] and d/d(columns)
/// [columnCount, H]; the head's gradient is added into dHead.
private func pairTerm(rows: [Float], anchors: Range<Int>, columns: [Float], columnCount: Int, hidden h: Int, head: PairHead,
                      pairCount: Int, target: (Int, Int) -> Int, rowGradient: Bool, columnGradient: Bool,
                      dHead: inout PairHead) -> (loss: Float, dRows: [Float], dColumns: [Float]) {
    var dRows = [Float](repeating: 0, count: rowGradient ? anchors.count * h : 0)
    var dColumns = [Float](repeating: 0, count: columnGradient ? columnCount * h : 0)
    guard !rows.isEmpty, columnCount > 0 else { return (0, dRows, dColumns) }
    let loss = rows.withUnsafeBufferPointer { rp in columns.withUnsafeBufferPointer { cp in
        dRows.withUnsafeMutableBufferPointer { dr in dColumns.withUnsafeMutableBufferPointer { dc in
        head.weight.withUnsafeBufferPointer { w in head.bias.withUnsafeBufferPointer { bias in
        dHead.weight.withUnsafeMutableBufferPointer { dw in dHead.bias.withUnsafeMutableBufferPointer { db in
            linearPairLoss(rows: [PairBlock(rp.baseAddress! + anchors.lowerBound * h, weightOffset: 0,
                                            gradient: rowGradient ? dr.baseAddress : nil)],
                           rowCount: anchors.count,
                           columns: [PairBlock(cp.baseAddress!, weightOffset: h, gradient: columnGradient ? dc.baseAddress : nil)],
                           columnCount: columnCount, width: h, inputWidth: 2 * h, weight: w.baseAddress!, bias: bias.baseAddress!,
                           pairCount: pairCount, target: target, dWeight: dw.baseAddress!, dBias: db.baseAddress!).loss
        } } } } } }
    } }
    return (loss, dRows, dColumns)
}

/// y[offset + i] += x[i]
private func add(_ x: [Float], into y: inout [Float], at offset: Int) {
    for i in x.indices { y[offset + i] += x[i] }
}

/// `scl` (and the contrastive part of every stage): the contrastive loss over the global labelled
/// batch. Parts: [contrastive].
public func contrastiveStageLoss(t: [Float], e: [Float], labels: [Int], anchors: Range<Int>, hidden h: Int,
                                 contrastive: ContrastiveObjective) -> StageLoss {
    var out = StageLoss(parts: [], dT: [Float](repeating: 0, count: labels.count * h), dE: [Float](repeating: 0, count: labels.count * h))
    let c = contrastiveShare(t: t, e: e, labels: labels, anchors: anchors, hidden: h, objective: contrastive, divisor: 1,
                             dT: &out.dT, dE: &out.dE)
    out.parts = [c.loss]
    out.pair = c.head
    out.maskedAnchors = c.masked
    return out
}
