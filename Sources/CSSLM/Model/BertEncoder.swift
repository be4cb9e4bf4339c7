// The BERT encoder (HF BertModel without pooler): embeddings → LayerNorm → dropout, then L layers
// of post-LN self-attention and GELU feed-forward. Forward keeps what the backward needs in
// `EncoderActivations`; backward accumulates into the flat gradient buffer.
// Shapes: B = batch, T = sequence, N = B·T, H = hidden, I = intermediate, NH = heads, L = layers.

/// Offsets of one layer's tensors in the flat parameter buffer. Q, K, V weights (and biases) are
/// laid out back to back so the three projections are one sgemm against W_qkv[3H, H].
struct LayerOffsets {
    var qkvWeight = 0, qkvBias = 0, attnOutWeight = 0, attnOutBias = 0, ln1Gamma = 0, ln1Beta = 0
    var interWeight = 0, interBias = 0, outWeight = 0, outBias = 0, ln2Gamma = 0, ln2Beta = 0
}

/// HF names and shapes of the encoder's tensors, in flat-buffer order.
public func bertEncoderTensors(_ c: BertConfig) -> [(name: String, shape: [Int])] {
    let h = c.hiddenSize, i = c.intermediateSize
    var t: [(name: String, shape: [Int])] = [
        ("embeddings.word_embeddings.weight", [c.vocabSize, h]),
        ("embeddings.position_embeddings.weight", [c.maxPositionEmbeddings, h]),
        ("embeddings.token_type_embeddings.weight", [c.typeVocabSize, h]),
        ("embeddings.LayerNorm.weight", [h]), ("embeddings.LayerNorm.bias", [h]),
    ]
    for l in 0..<c.numHiddenLayers {
        let p = "encoder.layer.\(l)."
        t += [
            (p + "attention.self.query.weight", [h, h]), (p + "attention.self.key.weight", [h, h]),
            (p + "attention.self.value.weight", [h, h]),
            (p + "attention.self.query.bias", [h]), (p + "attention.self.key.bias", [h]),
            (p + "attention.self.value.bias", [h]),
            (p + "attention.output.dense.weight", [h, h]), (p + "attention.output.dense.bias", [h]),
            (p + "attention.output.LayerNorm.weight", [h]), (p + "attention.output.LayerNorm.bias", [h]),
            (p + "intermediate.dense.weight", [i, h]), (p + "intermediate.dense.bias", [i]),
            (p + "output.dense.weight", [h, i]), (p + "output.dense.bias", [h]),
            (p + "output.LayerNorm.weight", [h]), (p + "output.LayerNorm.bias", [h]),
        ]
    }
    return t
}

/// What one forward pass keeps for the backward, sized for the largest batch seen: one arena per
/// tensor kind, allocated once, so a step allocates nothing.
public final class EncoderActivations {
    final class Layer {
        var qkv = FloatBuffer(count: 0)        // [N, 3H]
        var probs = FloatBuffer(count: 0)      // [B, NH, T, T] softmax output (before dropout)
        var ctx = FloatBuffer(count: 0)        // [N, H]
        var r1 = FloatBuffer(count: 0)         // [N, H] attention residual sum (LN1 input)
        var mean1 = FloatBuffer(count: 0), rstd1 = FloatBuffer(count: 0) // [N]
        var h1 = FloatBuffer(count: 0)         // [N, H] LN1 output
        var interPre = FloatBuffer(count: 0)   // [N, I] before GELU
        var inter = FloatBuffer(count: 0)      // [N, I] after GELU
        var r2 = FloatBuffer(count: 0)         // [N, H] feed-forward residual sum (LN2 input)
        var mean2 = FloatBuffer(count: 0), rstd2 = FloatBuffer(count: 0) // [N]
    }
    var layers: [Layer] = []
    /// hidden[0] = embedding output, hidden[l + 1] = output of layer l: each [N, H]. After a
    /// forward that did not keep its activations, only hidden[0] and hidden[1] hold anything.
    public private(set) var hidden: [FloatBuffer] = []
    var embSum = FloatBuffer(count: 0)        // [N, H] before the embedding LayerNorm
    var embMean = FloatBuffer(count: 0), embRstd = FloatBuffer(count: 0)
    // Backward scratch, and the attention's per-thread T×T blocks.
    var dA = FloatBuffer(count: 0), dB = FloatBuffer(count: 0), dInter = FloatBuffer(count: 0)
    var dQKV = FloatBuffer(count: 0), attentionScratch = FloatBuffer(count: 0)
    /// Compact [S, H] scratch of the last layer when it computes selected rows only.
    var compactA = FloatBuffer(count: 0), compactB = FloatBuffer(count: 0)
    private var capacity = (rows: -1, probs: -1, scratch: -1)
    /// Index in `hidden` of the latest forward's output.
    fileprivate(set) var lastIndex = 0

    /// Which rows of the last layer's output a forward computes.
    public enum LastLayerRows: Sendable {
        /// Every token's (HF's last_hidden_state).
        case all
        /// Only each sequence's [CLS] (position 0) and first [SEP] row: all that the CSS-LM heads
        /// and sentence features read. The last layer then runs its attention queries, output
        /// projection and feed-forward on those rows alone (≈ 3/4 of its work saved); the other
        /// rows of `lastHidden` are left as they were, and they get no gradient.
        case sentenceFeatures
    }

    /// Set to `.sentenceFeatures` when only t(x) and e(x) are used (training the CSS-LM heads,
    /// encoding a corpus); `.all` (the default) gives every token's hidden state.
    public var lastLayerRows = LastLayerRows.all

    /// The last layer's selected rows (global row b·T + position, ascending), their positions, and
    /// per example b the range `selectionStart[b] ..< selectionStart[b + 1]` of them.
    var selectedRows: [Int] = [], selectedPositions: [Int] = [], selectionStart: [Int] = []

    public init() {}

    func select(_ batch: TokenBatch) {
        selectedRows.removeAll(keepingCapacity: true)
        selectedPositions.removeAll(keepingCapacity: true)
        selectionStart.removeAll(keepingCapacity: true)
        for b in 0..<batch.batch {
            selectionStart.append(selectedRows.count)
            for p in Set([0, batch.sepPositions[b]]).sorted() {
                selectedRows.append(b * batch.seqLen + p)
                selectedPositions.append(p)
            }
        }
        selectionStart.append(selectedRows.count)
    }

    /// Sizes the arena for `shape`: every layer's buffers when the pass keeps them for a backward,
    /// else one layer's, reused by every layer (inference).
    func ensure(_ c: BertConfig, shape: AttentionShape, keepForBackward: Bool) {
        let n = shape.batch * shape.seqLen, h = c.hiddenSize, i = c.intermediateSize
        let np = shape.batch * shape.probsPerExample
        let layerCount = keepForBackward ? c.numHiddenLayers : max(1, layers.count)
        if n <= capacity.rows && np <= capacity.probs && shape.scratchCount <= capacity.scratch
            && layers.count >= layerCount { return }
        let rows = max(n, capacity.rows), probs = max(np, capacity.probs)
        capacity = (rows, probs, max(shape.scratchCount, capacity.scratch))
        // Release the old arena before allocating the new one (peak memory).
        layers = []; hidden = []
        layers = (0..<layerCount).map { _ in
            let l = Layer()
            l.qkv = FloatBuffer(count: rows * 3 * h); l.probs = FloatBuffer(count: probs)
            l.ctx = FloatBuffer(count: rows * h); l.r1 = FloatBuffer(count: rows * h)
            l.mean1 = FloatBuffer(count: rows); l.rstd1 = FloatBuffer(count: rows)
            l.h1 = FloatBuffer(count: rows * h); l.interPre = FloatBuffer(count: rows * i)
            l.inter = FloatBuffer(count: rows * i); l.r2 = FloatBuffer(count: rows * h)
            l.mean2 = FloatBuffer(count: rows); l.rstd2 = FloatBuffer(count: rows)
            return l
        }
        hidden = (0...layerCount).map { _ in FloatBuffer(count: rows * h) }
        embSum = FloatBuffer(count: rows * h)
        embMean = FloatBuffer(count: rows); embRstd = FloatBuffer(count: rows)
        // Backward scratch: mapped, not touched until a backward writes it.
        dA = FloatBuffer(count: rows * h); dB = FloatBuffer(count: rows * h)
        dInter = FloatBuffer(count: rows * i); dQKV = FloatBuffer(count: rows * 3 * h)
        attentionScratch = FloatBuffer(count: capacity.scratch)
        compactA = FloatBuffer(count: rows * h); compactB = FloatBuffer(count: rows * h)
    }

    /// Last-layer hidden states [N, H] of the latest forward.
    public var lastHidden: UnsafeMutablePointer<Float> { hidden[lastIndex].base }
}

/// The encoder's computation over a `ParameterSet` that holds `bertEncoderTensors(config)`.
public struct BertEncoder {
    public let config: BertConfig
    let word: Int, position: Int, tokenType: Int, embGamma: Int, embBeta: Int
    let layers: [LayerOffsets]

    public init(config: BertConfig, parameters ps: ParameterSet) {
        self.config = config
        word = ps.offset("embeddings.word_embeddings.weight")
        position = ps.offset("embeddings.position_embeddings.weight")
        tokenType = ps.offset("embeddings.token_type_embeddings.weight")
        embGamma = ps.offset("embeddings.LayerNorm.weight")
        embBeta = ps.offset("embeddings.LayerNorm.bias")
        let h = config.hiddenSize
        layers = (0..<config.numHiddenLayers).map { l in
            let p = "encoder.layer.\(l)."
            var o = LayerOffsets()
            o.qkvWeight = ps.offset(p + "attention.self.query.weight")
            o.qkvBias = ps.offset(p + "attention.self.query.bias")
            precondition(ps.offset(p + "attention.self.value.weight") == o.qkvWeight + 2 * h * h
                         && ps.offset(p + "attention.self.value.bias") == o.qkvBias + 2 * h,
                         "Q, K, V tensors must be contiguous in the parameter layout")
            o.attnOutWeight = ps.offset(p + "attention.output.dense.weight")
            o.attnOutBias = ps.offset(p + "attention.output.dense.bias")
            o.ln1Gamma = ps.offset(p + "attention.output.LayerNorm.weight")
            o.ln1Beta = ps.offset(p + "attention.output.LayerNorm.bias")
            o.interWeight = ps.offset(p + "intermediate.dense.weight")
            o.interBias = ps.offset(p + "intermediate.dense.bias")
            o.outWeight = ps.offset(p + "output.dense.weight")
            o.outBias = ps.offset(p + "output.dense.bias")
            o.ln2Gamma = ps.offset(p + "output.LayerNorm.weight")
            o.ln2Beta = ps.offset(p + "output.LayerNorm.bias")
            return o
        }
    }

    /// Runs the encoder on `batch`; the result is `acts.lastHidden` [N, H] (and `acts.hidden`).
    /// Dropout is active when `dropout.probability > 0`; its value is only a switch: hidden and
    /// attention dropout then use the config's own probabilities.
    /// With `keepForBackward: false` (inference) every layer reuses one layer's buffers and
    /// `backward` must not follow.
    public func forward(_ batch: TokenBatch, params base: UnsafeMutablePointer<Float>,
                        acts: EncoderActivations, dropout: DropoutContext, keepForBackward: Bool = true) {
        let c = config
        let n = batch.rows, t = batch.seqLen, h = c.hiddenSize, inter = c.intermediateSize
        let (hiddenDrop, attnDrop) = dropouts(dropout)
        let shape = AttentionShape(batch: batch.batch, seqLen: t, heads: c.numAttentionHeads, headSize: c.headSize)
        acts.ensure(c, shape: shape, keepForBackward: keepForBackward)
        // Layer l's buffers and input/output hidden states (ping-pong between 0 and 1 when not kept).
        let kept = keepForBackward
        let input = { (l: Int) in kept ? l : l % 2 }, output = { (l: Int) in kept ? l + 1 : (l + 1) % 2 }
        acts.lastIndex = output(c.numHiddenLayers - 1)

        batch.ids.withUnsafeBufferPointer { ids in
            batch.typeIds.withUnsafeBufferPointer { types in
                embeddingForward(out: acts.embSum.base, ids: ids.baseAddress!, typeIds: types.baseAddress!,
                                 word: base + word, position: base + position, tokenType: base + tokenType,
                                 rows: n, seqLen: t, hidden: h)
            }
        }
        layerNormForward(y: acts.hidden[0].base, mean: acts.embMean.base, rstd: acts.embRstd.base,
                         x: acts.embSum.base, gamma: base + embGamma, beta: base + embBeta,
                         rows: n, cols: h, eps: c.layerNormEps)
        dropoutApply(acts.hidden[0].base, rows: t, cols: h, context: hiddenDrop, site: DropoutSite.embeddings)

        batch.mask.withUnsafeBufferPointer { mask in
            for (l, o) in layers.enumerated() {
                let a = acts.layers[kept ? l : 0]
                let x = acts.hidden[input(l)].base
                if l == layers.count - 1 && acts.lastLayerRows == .sentenceFeatures {
                    forwardSentenceRows(batch, layer: l, buffers: a, params: base, acts: acts, x: x,
                                        y: acts.hidden[output(l)].base,
                                        mask: mask.baseAddress!, dropout: dropout)
                    continue
                }
                linearForward(y: a.qkv.base, x: x, weight: base + o.qkvWeight, bias: base + o.qkvBias,
                              rows: n, inDim: h, outDim: 3 * h)
                attentionForward(ctx: a.ctx.base, probs: a.probs.base, qkv: a.qkv.base, mask: mask.baseAddress!,
                                 shape: shape, dropout: attnDrop, site: DropoutSite.attentionProbs(layer: l),
                                 scratch: acts.attentionScratch.base)
                // r1 = dropout(ctx·Woᵀ + bo) + x ; h1 = LN(r1)
                linearForward(y: a.r1.base, x: a.ctx.base, weight: base + o.attnOutWeight,
                              bias: base + o.attnOutBias, rows: n, inDim: h, outDim: h)
                residualLayerNormForward(y: a.h1.base, mean: a.mean1.base, rstd: a.rstd1.base, sum: a.r1.base,
                                         branch: a.r1.base, residual: x, gamma: base + o.ln1Gamma,
                                         beta: base + o.ln1Beta, rows: n, cols: h, seqLen: t, eps: c.layerNormEps,
                                         dropout: hiddenDrop, site: DropoutSite.attentionOutput(layer: l))
                // r2 = dropout(GELU(h1·Wiᵀ + bi)·Wo2ᵀ + bo2) + h1 ; out = LN(r2)
                linearForward(y: a.interPre.base, x: a.h1.base, weight: base + o.interWeight,
                              bias: base + o.interBias, rows: n, inDim: h, outDim: inter)
                geluForward(y: a.inter.base, x: a.interPre.base, count: n * inter)
                linearForward(y: a.r2.base, x: a.inter.base, weight: base + o.outWeight,
                              bias: base + o.outBias, rows: n, inDim: inter, outDim: h)
                residualLayerNormForward(y: acts.hidden[output(l)].base, mean: a.mean2.base, rstd: a.rstd2.base,
                                         sum: a.r2.base, branch: a.r2.base, residual: a.h1.base,
                                         gamma: base + o.ln2Gamma, beta: base + o.ln2Beta, rows: n, cols: h,
                                         seqLen: t, eps: c.layerNormEps, dropout: hiddenDrop,
                                         site: DropoutSite.feedForwardOutput(layer: l))
            }
        }
    }

    /// The hidden-state and attention-probability dropouts of a pass with `dropout`.
    func dropouts(_ dropout: DropoutContext) -> (hidden: DropoutContext, attention: DropoutContext) {
        var hidden = dropout, attention = dropout
        hidden.probability = dropout.isActive ? config.hiddenDropoutProb : 0
        attention.probability = dropout.isActive ? config.attentionProbsDropoutProb : 0
        return (hidden, attention)
    }

    /// Backward from dLast[N, H] (gradient of the loss w.r.t. the last hidden states; clobbered)
    /// through the stored activations; accumulates into `grads` (same layout as the parameters).
    public func backward(_ batch: TokenBatch, dLast: UnsafeMutablePointer<Float>,
                         params base: UnsafeMutablePointer<Float>, grads g: UnsafeMutablePointer<Float>,
                         acts: EncoderActivations, dropout: DropoutContext) {
        let c = config
        let n = batch.rows, t = batch.seqLen, h = c.hiddenSize, inter = c.intermediateSize
        let (hiddenDrop, attnDrop) = dropouts(dropout)
        let shape = AttentionShape(batch: batch.batch, seqLen: t, heads: c.numAttentionHeads, headSize: c.headSize)
        // dOut: gradient w.r.t. the current layer's output, then its input (the caller's buffer);
        // dMid: w.r.t. h1 and r1; dCtx: w.r.t. the attention context.
        let dOut = dLast, dMid = acts.dA.base, dCtx = acts.dB.base
        for l in stride(from: layers.count - 1, through: 0, by: -1) {
            let o = layers[l], a = acts.layers[l]
            let x = acts.hidden[l].base
            if l == layers.count - 1 && acts.lastLayerRows == .sentenceFeatures {
                backwardSentenceRows(batch, layer: l, dOut: dOut, params: base, grads: g, acts: acts, dropout: dropout)
                continue
            }
            // out = LN2(r2), r2 = drop(ffn) + h1: d h1 starts as d r2 (dMid); the ffn branch gets
            // drop(d r2) (dOut).
            layerNormBackward(dx: dMid, dGamma: g + o.ln2Gamma, dBeta: g + o.ln2Beta, dy: dOut, x: a.r2.base,
                              mean: a.mean2.base, rstd: a.rstd2.base, gamma: base + o.ln2Gamma, rows: n, cols: h,
                              dBranch: dOut, seqLen: t, dropout: hiddenDrop,
                              site: DropoutSite.feedForwardOutput(layer: l))
            linearBackward(dx: acts.dInter.base, dWeight: g + o.outWeight, dBias: g + o.outBias, dy: dOut,
                           x: a.inter.base, weight: base + o.outWeight, rows: n, inDim: inter, outDim: h)
            geluBackward(dx: acts.dInter.base, dy: acts.dInter.base, x: a.interPre.base, count: n * inter)
            linearBackward(dx: dMid, dWeight: g + o.interWeight, dBias: g + o.interBias, dy: acts.dInter.base,
                           x: a.h1.base, weight: base + o.interWeight, rows: n, inDim: h, outDim: inter,
                           accumulateInput: true)
            // h1 = LN1(r1), r1 = drop(attn) + x: d x starts as d r1 (dOut); attention gets drop(d r1) (dMid).
            layerNormBackward(dx: dOut, dGamma: g + o.ln1Gamma, dBeta: g + o.ln1Beta, dy: dMid, x: a.r1.base,
                              mean: a.mean1.base, rstd: a.rstd1.base, gamma: base + o.ln1Gamma, rows: n, cols: h,
                              dBranch: dMid, seqLen: t, dropout: hiddenDrop,
                              site: DropoutSite.attentionOutput(layer: l))
            linearBackward(dx: dCtx, dWeight: g + o.attnOutWeight, dBias: g + o.attnOutBias, dy: dMid,
                           x: a.ctx.base, weight: base + o.attnOutWeight, rows: n, inDim: h, outDim: h)
            attentionBackward(dqkv: acts.dQKV.base, dctx: dCtx, qkv: a.qkv.base, probs: a.probs.base, shape: shape,
                              dropout: attnDrop, site: DropoutSite.attentionProbs(layer: l),
                              scratch: acts.attentionScratch.base)
            linearBackward(dx: dOut, dWeight: g + o.qkvWeight, dBias: g + o.qkvBias, dy: acts.dQKV.base,
                           x: x, weight: base + o.qkvWeight, rows: n, inDim: h, outDim: 3 * h,
                           accumulateInput: true)
        }
        // hidden[0] = drop(LN(embSum))
        dropoutApply(dOut, rows: t, cols: h, context: hiddenDrop, site: DropoutSite.embeddings)
        layerNormBackward(dx: dOut, dGamma: g + embGamma, dBeta: g + embBeta, dy: dOut, x: acts.embSum.base,
                          mean: acts.embMean.base, rstd: acts.embRstd.base, gamma: base + embGamma, rows: n, cols: h)
        batch.ids.withUnsafeBufferPointer { ids in
            batch.typeIds.withUnsafeBufferPointer { types in
                embeddingBackward(dWord: g + word, dPosition: g + position, dTokenType: g + tokenType, dOut: dOut,
                                  ids: ids.baseAddress!, typeIds: types.baseAddress!, rows: n,
                                  seqLen: t, hidden: h)
            }
        }
    }
}

/// a[i] += b[i], i < n
@inline(__always)
public func addInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) {
    var i = 0
    while i + 8 <= n { store8(load8(a + i) + load8(b + i), a + i); i += 8 }
    while i < n { a[i] += b[i]; i += 1 }
}
