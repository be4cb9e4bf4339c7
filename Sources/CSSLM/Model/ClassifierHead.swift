// The sentence classifier on top of the encoder, over the sentence features the model is set to
// (SentenceFeatures: the class vector t and the domain vector e). Two kinds:
//   mlp     (docs/method.md, the paper's head): concat(t, e) → dropout → Linear(2H, 2H) → tanh →
//           dropout → Linear(2H, C)
//   linear  dropout → Linear(H, C) on the unit class vector t/|t|: the frozen-feature probe's model,
//           so a probe's solution can start fine-tuning (LP-FT, Kumar et al. 2022)
// The head takes its input rows [B, In] (In = 2H or H) from BertClassifier and returns their
// gradient; how those rows come out of the encoder's hidden states is BertClassifier's business.
// Shapes: B = batch, H = hidden, C = classes.

/// HF-style names and shapes of the classifier's tensors.
public func classifierHeadTensors(hidden h: Int, classes c: Int, kind: ClassifierKind = .mlp) -> [(name: String, shape: [Int])] {
    switch kind {
    case .mlp:
        return [("classifier.dense.weight", [2 * h, 2 * h]), ("classifier.dense.bias", [2 * h]),
                ("classifier.out_proj.weight", [c, 2 * h]), ("classifier.out_proj.bias", [c])]
    case .linear:
        return [("classifier.out_proj.weight", [c, h]), ("classifier.out_proj.bias", [c])]
    }
}

/// Buffers of one head pass, sized for the largest batch seen.
public final class ClassifierActivations {
    var featDropped = FloatBuffer(count: 0)
    var act = FloatBuffer(count: 0), actDropped = FloatBuffer(count: 0)
    public private(set) var logits = FloatBuffer(count: 0)
    var dLogits = FloatBuffer(count: 0), dAct = FloatBuffer(count: 0)
    /// The gradient of the head's input rows [B, In] after `backward`.
    public private(set) var dInput = FloatBuffer(count: 0)
    private var capacity = -1
    public init() {}

    func ensure(batch: Int, inputWidth: Int, classes c: Int) {
        guard batch > capacity else { return }
        capacity = batch
        for b in [\ClassifierActivations.featDropped, \.act, \.actDropped, \.dAct, \.dInput] {
            self[keyPath: b] = FloatBuffer(count: batch * inputWidth)
        }
        logits = FloatBuffer(count: batch * c); dLogits = FloatBuffer(count: batch * c)
    }
}

public struct ClassifierHead {
    public let hidden: Int
    public let classes: Int
    public let kind: ClassifierKind
    public let dropoutProbability: Float
    let denseW: Int, denseB: Int, outW: Int, outB: Int

    public init(hidden: Int, classes: Int, kind: ClassifierKind = .mlp, dropoutProbability: Float, parameters ps: ParameterSet) {
        self.hidden = hidden; self.classes = classes; self.kind = kind; self.dropoutProbability = dropoutProbability
        denseW = kind == .mlp ? ps.offset("classifier.dense.weight") : -1
        denseB = kind == .mlp ? ps.offset("classifier.dense.bias") : -1
        outW = ps.offset("classifier.out_proj.weight"); outB = ps.offset("classifier.out_proj.bias")
    }

    public var inputWidth: Int { kind.inputWidth(hidden: hidden) }

    /// logits[B, C] from the input rows [B, In].
    public func forward(batch b: Int, input: UnsafePointer<Float>, params base: UnsafeMutablePointer<Float>,
                        acts: ClassifierActivations, dropout: DropoutContext) {
        let w = inputWidth
        acts.ensure(batch: b, inputWidth: w, classes: classes)
        var drop = dropout; drop.probability = dropout.isActive ? dropoutProbability : 0
        acts.featDropped.base.update(from: input, count: b * w)
        dropoutApply(acts.featDropped.base, rows: 1, cols: w, context: drop, site: DropoutSite.classifierInput)
        var last = UnsafePointer(acts.featDropped.base)
        if kind == .mlp {
            linearForward(y: acts.act.base, x: acts.featDropped.base, weight: base + denseW, bias: base + denseB,
                          rows: b, inDim: w, outDim: w)
            tanhForward(y: acts.act.base, x: acts.act.base, count: b * w)
            acts.actDropped.base.update(from: acts.act.base, count: b * w)
            dropoutApply(acts.actDropped.base, rows: 1, cols: w, context: drop, site: DropoutSite.classifierHidden)
            last = UnsafePointer(acts.actDropped.base)
        }
        linearForward(y: acts.logits.base, x: last, weight: base + outW, bias: base + outB,
                      rows: b, inDim: w, outDim: classes)
    }

    /// Backward from acts.dLogits: parameter gradients into `grads`, the input rows' gradient
    /// [B, In] into acts.dInput.
    public func backward(batch b: Int, params base: UnsafeMutablePointer<Float>, grads g: UnsafeMutablePointer<Float>,
                         acts: ClassifierActivations, dropout: DropoutContext) {
        let w = inputWidth
        var drop = dropout; drop.probability = dropout.isActive ? dropoutProbability : 0
        if kind == .mlp {
            linearBackward(dx: acts.dAct.base, dWeight: g + outW, dBias: g + outB, dy: acts.dLogits.base,
                           x: acts.actDropped.base, weight: base + outW, rows: b, inDim: w, outDim: classes)
            dropoutApply(acts.dAct.base, rows: 1, cols: w, context: drop, site: DropoutSite.classifierHidden)
            tanhBackward(dx: acts.dAct.base, dy: acts.dAct.base, y: acts.act.base, count: b * w)
            linearBackward(dx: acts.dInput.base, dWeight: g + denseW, dBias: g + denseB, dy: acts.dAct.base,
                           x: acts.featDropped.base, weight: base + denseW, rows: b, inDim: w, outDim: w)
        } else {
            linearBackward(dx: acts.dInput.base, dWeight: g + outW, dBias: g + outB, dy: acts.dLogits.base,
                           x: acts.featDropped.base, weight: base + outW, rows: b, inDim: w, outDim: classes)
        }
        dropoutApply(acts.dInput.base, rows: 1, cols: w, context: drop, site: DropoutSite.classifierInput)
    }
}
