// The encoder's last layer for the sentence-feature rows only ([CLS] and first [SEP]), forward
// and backward: with cls-sep features every loss reads those two rows, so the last layer's
// attention and feed-forward run on S ≈ 2B rows instead of N = B·T.
// Shapes: B = batch, T = sequence, N = B·T, S = selected rows, H = hidden, NH = heads.

extension BertEncoder {
    /// The last layer (`layer`) for the selected rows only (`EncoderActivations.LastLayerRows`):
    /// Q/K/V for every row (keys and values are needed for all), then attention for the selected
    /// queries and the rest of the layer on S ≈ 2B compact rows; y[N, H] gets the selected rows.
    /// The layer's buffers hold compact [S, ·] tensors (probs: [S, NH, T]).
    func forwardSentenceRows(_ batch: TokenBatch, layer l: Int, buffers a: EncoderActivations.Layer,
                             params base: UnsafeMutablePointer<Float>, acts: EncoderActivations,
                             x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                             mask: UnsafePointer<Float>, dropout: DropoutContext) {
        let c = config, o = layers[l]
        let n = batch.rows, t = batch.seqLen, h = c.hiddenSize, inter = c.intermediateSize
        let (hiddenDrop, attnDrop) = dropouts(dropout)
        let shape = AttentionShape(batch: batch.batch, seqLen: t, heads: c.numAttentionHeads, headSize: c.headSize)
        acts.select(batch)
        let s = acts.selectedRows.count
        let compactA = acts.compactA.base, compactB = acts.compactB.base
        acts.selectedRows.withUnsafeBufferPointer { rows in
            acts.selectedPositions.withUnsafeBufferPointer { positions in
                acts.selectionStart.withUnsafeBufferPointer { start in
                    let sel = rows.baseAddress!
                    linearForward(y: a.qkv.base, x: x, weight: base + o.qkvWeight, bias: base + o.qkvBias,
                                  rows: n, inDim: h, outDim: 3 * h)
                    gatherRows(compactB, from: a.qkv.base, rows: sel, count: s, cols: h, stride: 3 * h)
                    attentionForward(ctx: a.ctx.base, probs: a.probs.base,
                                     queries: (UnsafePointer(compactB), QueryRows(start: start.baseAddress!, position: positions.baseAddress!)),
                                     qkv: a.qkv.base, mask: mask, shape: shape, dropout: attnDrop,
                                     site: DropoutSite.attentionProbs(layer: l), scratch: acts.attentionScratch.base)
                    linearForward(y: a.r1.base, x: a.ctx.base, weight: base + o.attnOutWeight, bias: base + o.attnOutBias,
                                  rows: s, inDim: h, outDim: h)
                    gatherRows(compactA, from: x, rows: sel, count: s, cols: h, stride: h)
                    residualLayerNormForward(y: a.h1.base, mean: a.mean1.base, rstd: a.rstd1.base, sum: a.r1.base,
                                             branch: a.r1.base, residual: compactA, gamma: base + o.ln1Gamma,
                                             beta: base + o.ln1Beta, rows: s, cols: h, seqLen: t, eps: c.layerNormEps,
                                             dropout: hiddenDrop, site: DropoutSite.attentionOutput(layer: l), rowMap: sel)
                    linearForward(y: a.interPre.base, x: a.h1.base, weight: base + o.interWeight, bias: base + o.interBias,
                                  rows: s, inDim: h, outDim: inter)
                    geluForward(y: a.inter.base, x: a.interPre.base, count: s * inter)
                    linearForward(y: a.r2.base, x: a.inter.base, weight: base + o.outWeight, bias: base + o.outBias,
                                  rows: s, inDim: inter, outDim: h)
                    residualLayerNormForward(y: compactA, mean: a.mean2.base, rstd: a.rstd2.base, sum: a.r2.base,
                                             branch: a.r2.base, residual: a.h1.base, gamma: base + o.ln2Gamma,
                                             beta: base + o.ln2Beta, rows: s, cols: h, seqLen: t, eps: c.layerNormEps,
                                             dropout: hiddenDrop, site: DropoutSite.feedForwardOutput(layer: l), rowMap: sel)
                    for r in 0..<s { (y + sel[r] * h).update(from: compactA + r * h, count: h) }
                }
            }
        }
    }

    /// Backward of `forwardSentenceRows`: dOut[N, H] (non-zero on the selected rows only) in,
    /// d(layer input)[N, H] out in the same buffer.
    func backwardSentenceRows(_ batch: TokenBatch, layer l: Int, dOut: UnsafeMutablePointer<Float>,
                              params base: UnsafeMutablePointer<Float>, grads g: UnsafeMutablePointer<Float>,
                              acts: EncoderActivations, dropout: DropoutContext) {
        let c = config, o = layers[l], a = acts.layers[l]
        let n = batch.rows, t = batch.seqLen, h = c.hiddenSize, inter = c.intermediateSize
        let (hiddenDrop, attnDrop) = dropouts(dropout)
        let shape = AttentionShape(batch: batch.batch, seqLen: t, heads: c.numAttentionHeads, headSize: c.headSize)
        let s = acts.selectedRows.count
        let dMid = acts.dA.base, dCtx = acts.dB.base, compactA = acts.compactA.base, compactB = acts.compactB.base
        let x = acts.hidden[l].base
        acts.selectedRows.withUnsafeBufferPointer { rows in
            acts.selectedPositions.withUnsafeBufferPointer { positions in
                acts.selectionStart.withUnsafeBufferPointer { start in
                    let sel = rows.baseAddress!
                    // As `backward` on S compact rows: d r2 → dMid (to h1), drop(d r2) → compactA (ffn).
                    gatherRows(compactA, from: dOut, rows: sel, count: s, cols: h, stride: h)
                    layerNormBackward(dx: dMid, dGamma: g + o.ln2Gamma, dBeta: g + o.ln2Beta, dy: compactA, x: a.r2.base,
                                      mean: a.mean2.base, rstd: a.rstd2.base, gamma: base + o.ln2Gamma, rows: s, cols: h,
                                      dBranch: compactA, seqLen: t, dropout: hiddenDrop,
                                      site: DropoutSite.feedForwardOutput(layer: l), rowMap: sel)
                    linearBackward(dx: acts.dInter.base, dWeight: g + o.outWeight, dBias: g + o.outBias, dy: compactA,
                                   x: a.inter.base, weight: base + o.outWeight, rows: s, inDim: inter, outDim: h)
                    geluBackward(dx: acts.dInter.base, dy: acts.dInter.base, x: a.interPre.base, count: s * inter)
                    linearBackward(dx: dMid, dWeight: g + o.interWeight, dBias: g + o.interBias, dy: acts.dInter.base,
                                   x: a.h1.base, weight: base + o.interWeight, rows: s, inDim: h, outDim: inter,
                                   accumulateInput: true)
                    // d r1 → compactB (to x, scattered into dOut below); drop(d r1) → dMid (attention output).
                    layerNormBackward(dx: compactB, dGamma: g + o.ln1Gamma, dBeta: g + o.ln1Beta, dy: dMid, x: a.r1.base,
                                      mean: a.mean1.base, rstd: a.rstd1.base, gamma: base + o.ln1Gamma, rows: s, cols: h,
                                      dBranch: dMid, seqLen: t, dropout: hiddenDrop,
                                      site: DropoutSite.attentionOutput(layer: l), rowMap: sel)
                    linearBackward(dx: dCtx, dWeight: g + o.attnOutWeight, dBias: g + o.attnOutBias, dy: dMid,
                                   x: a.ctx.base, weight: base + o.attnOutWeight, rows: s, inDim: h, outDim: h)
                    dOut.update(repeating: 0, count: n * h)
                    for r in 0..<s { (dOut + sel[r] * h).update(from: compactB + r * h, count: h) }
                    // Attention: dK, dV for every row; dQ of the selected rows (compactA), zero elsewhere.
                    gatherRows(compactB, from: a.qkv.base, rows: sel, count: s, cols: h, stride: 3 * h)
                    for r in 0..<n { (acts.dQKV.base + r * 3 * h).update(repeating: 0, count: h) }
                    attentionBackward(dqkv: acts.dQKV.base, dQueries: compactA, dctx: dCtx,
                                      queries: (UnsafePointer(compactB), QueryRows(start: start.baseAddress!, position: positions.baseAddress!)),
                                      qkv: a.qkv.base, probs: a.probs.base, shape: shape, dropout: attnDrop,
                                      site: DropoutSite.attentionProbs(layer: l), scratch: acts.attentionScratch.base)
                    for r in 0..<s { (acts.dQKV.base + sel[r] * 3 * h).update(from: compactA + r * h, count: h) }
                    linearBackward(dx: dOut, dWeight: g + o.qkvWeight, dBias: g + o.qkvBias, dy: acts.dQKV.base,
                                   x: x, weight: base + o.qkvWeight, rows: n, inDim: h, outDim: 3 * h,
                                   accumulateInput: true)
                }
            }
        }
    }
}

/// dst[r, 0..<cols] = src[rows[r] · stride ..< + cols], r < count.
func gatherRows(_ dst: UnsafeMutablePointer<Float>, from src: UnsafePointer<Float>, rows: UnsafePointer<Int>,
                count: Int, cols: Int, stride: Int) {
    for r in 0..<count { (dst + r * cols).update(from: src + rows[r] * stride, count: cols) }
}
