// The CSS-LM sentence classifier (METHOD.md): concat(t, e) → dropout → Linear(2H, 2H) → tanh →
// dropout → Linear(2H, C), where t is the last-layer vector at [CLS] (position 0) and e the one at
// the first [SEP]. Shapes: B = batch, T = sequence, H = hidden, C = classes.

/// HF-style names and shapes of the classifier's tensors.
public func classifierHeadTensors(hidden h: Int, classes c: Int) -> [(name: String, shape: [Int])] {
    [("classifier.dense.weight", [2 * h, 2 * h]), ("classifier.dense.bias", [2 * h]),
     ("classifier.out_proj.weight", [c, 2 * h]), ("classifier.out_proj.bias", [c])]
}

/// Buffers of one head pass, sized for the largest batch seen.
public final class ClassifierActivations {
    var feat = FloatBuffer(count: 0), featDropped = FloatBuffer(count: 0)
    var act = FloatBuffer(count: 0), actDropped = FloatBuffer(count: 0)
    public private(set) var logits = FloatBuffer(count: 0)
    var dLogits = FloatBuffer(count: 0), dAct = FloatBuffer(count: 0), dFeat = FloatBuffer(count: 0)
    private var capacity = -1
    public init() {}

    func ensure(batch: Int, hidden h: Int, classes c: Int) {
        guard batch > capacity else { return }
        capacity = batch
        for b in [\ClassifierActivations.feat, \.featDropped, \.act, \.actDropped, \.dAct, \.dFeat] {
            self[keyPath: b] = FloatBuffer(count: batch * 2 * h)
        }
        logits = FloatBuffer(count: batch * c); dLogits = FloatBuffer(count: batch * c)
    }
}

public struct ClassifierHead {
    public let hidden: Int
    public let classes: Int
    public let dropoutProbability: Float
    let denseW: Int, denseB: Int, outW: Int, outB: Int

    public init(hidden: Int, classes: Int, dropoutProbability: Float, parameters ps: ParameterSet) {
        self.hidden = hidden; self.classes = classes; self.dropoutProbability = dropoutProbability
        denseW = ps.offset("classifier.dense.weight"); denseB = ps.offset("classifier.dense.bias")
        outW = ps.offset("classifier.out_proj.weight"); outB = ps.offset("classifier.out_proj.bias")
    }

    /// logits[B, C] from the encoder's last hidden states [B·T, H].
    public func forward(_ batch: TokenBatch, lastHidden: UnsafePointer<Float>, params base: UnsafeMutablePointer<Float>,
                        acts: ClassifierActivations, dropout: DropoutContext) {
        let b = batch.batch, h = hidden, h2 = 2 * hidden
        acts.ensure(batch: b, hidden: h, classes: classes)
        var drop = dropout; drop.probability = dropout.isActive ? dropoutProbability : 0
        for r in 0..<b {
            let row = acts.feat.base + r * h2
            row.update(from: lastHidden + (r * batch.seqLen) * h, count: h)
            (row + h).update(from: lastHidden + (r * batch.seqLen + batch.sepPositions[r]) * h, count: h)
        }
        acts.featDropped.base.update(from: acts.feat.base, count: b * h2)
        dropoutApply(acts.featDropped.base, rows: 1, cols: h2, context: drop, site: DropoutSite.classifierInput)
        linearForward(y: acts.act.base, x: acts.featDropped.base, weight: base + denseW, bias: base + denseB,
                      rows: b, inDim: h2, outDim: h2)
        tanhForward(y: acts.act.base, x: acts.act.base, count: b * h2)
        acts.actDropped.base.update(from: acts.act.base, count: b * h2)
        dropoutApply(acts.actDropped.base, rows: 1, cols: h2, context: drop, site: DropoutSite.classifierHidden)
        linearForward(y: acts.logits.base, x: acts.actDropped.base, weight: base + outW, bias: base + outB,
                      rows: b, inDim: h2, outDim: classes)
    }

    /// Backward from acts.dLogits; adds the feature gradients into dHidden[B·T, H] at each
    /// sequence's [CLS] and first [SEP] rows.
    public func backward(_ batch: TokenBatch, dHidden: UnsafeMutablePointer<Float>,
                         params base: UnsafeMutablePointer<Float>, grads g: UnsafeMutablePointer<Float>,
                         acts: ClassifierActivations, dropout: DropoutContext) {
        let b = batch.batch, h = hidden, h2 = 2 * hidden
        var drop = dropout; drop.probability = dropout.isActive ? dropoutProbability : 0
        linearBackward(dx: acts.dAct.base, dWeight: g + outW, dBias: g + outB, dy: acts.dLogits.base,
                       x: acts.actDropped.base, weight: base + outW, rows: b, inDim: h2, outDim: classes)
        dropoutApply(acts.dAct.base, rows: 1, cols: h2, context: drop, site: DropoutSite.classifierHidden)
        tanhBackward(dx: acts.dAct.base, dy: acts.dAct.base, y: acts.act.base, count: b * h2)
        linearBackward(dx: acts.dFeat.base, dWeight: g + denseW, dBias: g + denseB, dy: acts.dAct.base,
                       x: acts.featDropped.base, weight: base + denseW, rows: b, inDim: h2, outDim: h2)
        dropoutApply(acts.dFeat.base, rows: 1, cols: h2, context: drop, site: DropoutSite.classifierInput)
        for r in 0..<b {
            let df = acts.dFeat.base + r * h2
            addInPlace(dHidden + (r * batch.seqLen) * h, df, h)
            addInPlace(dHidden + (r * batch.seqLen + batch.sepPositions[r]) * h, df + h, h)
        }
    }
}
