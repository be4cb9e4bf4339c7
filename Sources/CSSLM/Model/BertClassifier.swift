// A BERT encoder with the CSS-LM classifier head over one flat parameter buffer: loading from an
// HF model folder, forward, loss and backward, and saving back under HF tensor names.
import Foundation

public final class BertClassifier {
    public let config: BertConfig
    public let numLabels: Int
    public let parameters: ParameterSet
    public let encoder: BertEncoder
    public let head: ClassifierHead
    public let encoderActivations = EncoderActivations()
    public let headActivations = ClassifierActivations()
    private let dHiddenScratch = ScratchBuffer()

    /// A model with randomly initialised weights (HF's init: N(0, 0.02²), biases 0, LN weight 1).
    /// `extraHeads` adds more head tensors (e.g. `pairHeadTensors`) to the flat buffer.
    public init(config: BertConfig, numLabels: Int, extraHeads: [(name: String, shape: [Int])] = [], seed: UInt64 = 0) {
        self.config = config
        self.numLabels = numLabels
        parameters = ParameterSet(bertEncoderTensors(config) + classifierHeadTensors(hidden: config.hiddenSize, classes: numLabels)
                                  + extraHeads)
        encoder = BertEncoder(config: config, parameters: parameters)
        head = ClassifierHead(hidden: config.hiddenSize, classes: numLabels,
                              dropoutProbability: config.hiddenDropoutProb, parameters: parameters)
        var rng = SplitMix64(seed: seed)
        parameters.initialize(prefix: "", std: 0.02, rng: &rng)
    }

    /// Loads `config.json` and `model.safetensors` from an HF model folder. Encoder tensors are
    /// looked up with or without the `bert.` prefix and must all be present; head tensors
    /// (`classifier.*`) are loaded when present, else initialised from `seed`. Other tensors in the
    /// file (e.g. the pooler) are kept and written back by `saveEncoder`. A NaN or infinite weight
    /// is an error naming the tensor unless `allowNonFiniteWeights`.
    public convenience init(modelDirectory dir: URL, numLabels: Int, extraHeads: [(name: String, shape: [Int])] = [],
                            seed: UInt64 = 0, allowNonFiniteWeights: Bool = false) throws {
        let config = try BertConfig.load(from: dir.appendingPathComponent("config.json"))
        let file = try SafetensorsFile(url: dir.appendingPathComponent("model.safetensors"))
        // Check every encoder tensor's presence, shape and dtype before allocating: the buffers are
        // then never larger than what the file really holds, whatever config.json states.
        let encoder = bertEncoderTensors(config)
        let missing = encoder.filter { file.find($0.name, prefixes: ParameterSet.weightPrefixes) == nil }.map(\.name)
        if !missing.isEmpty {
            throw CSSLMError("\(file.path): missing tensor '\(missing[0])'\(missing.count > 1 ? " and \(missing.count - 1) more" : "")",
                             hint: "the file does not hold a BERT encoder matching \(dir.path)/config.json")
        }
        for t in encoder { try file.checkWeight(file.find(t.name, prefixes: ParameterSet.weightPrefixes)!, shape: t.shape) }
        self.init(config: config, numLabels: numLabels, extraHeads: extraHeads, seed: seed)
        let headNames = Set((classifierHeadTensors(hidden: config.hiddenSize, classes: numLabels) + extraHeads).map(\.name))
        try parameters.load(from: file, allowNonFinite: allowNonFiniteWeights) { !headNames.contains($0.name) }
        let known = Set(parameters.specs.flatMap { [$0.name, "bert." + $0.name] })
        var headFile: SafetensorsFile? = file
        let headsURL = dir.appendingPathComponent("heads.safetensors")
        if FileManager.default.fileExists(atPath: headsURL.path) { headFile = try SafetensorsFile(url: headsURL) }
        if let headFile {
            // Heads found in the file are loaded; absent ones keep their initialisation.
            try parameters.load(from: headFile, prefixes: [""], allowNonFinite: allowNonFiniteWeights) { headNames.contains($0.name) }
        }
        for name in file.names where !known.contains(name) {
            let info = try file.info(name)
            guard info.dtype.isFloat else { continue }
            parameters.passthrough.append((name, info.shape, FloatBuffer(try file.floats(name))))
        }
    }

    /// Runs encoder and head; logits are in `headActivations.logits` [B, C]. With
    /// `keepForBackward: false` the encoder keeps one layer's activations only (inference).
    public func forward(_ batch: TokenBatch, dropout: DropoutContext, keepForBackward: Bool = true) throws {
        try batch.validate(for: config)
        encoder.forward(batch, params: parameters.values.base, acts: encoderActivations, dropout: dropout,
                        keepForBackward: keepForBackward)
        head.forward(batch, lastHidden: encoderActivations.lastHidden, params: parameters.values.base,
                     acts: headActivations, dropout: dropout)
    }

    /// Logits [B·C] without dropout.
    public func logits(_ batch: TokenBatch) throws -> [Float] {
        try forward(batch, dropout: .off(batch: batch.batch), keepForBackward: false)
        return Array(UnsafeBufferPointer(start: headActivations.logits.base, count: batch.batch * numLabels))
    }

    /// Cross-entropy of the classifier on `labels`; adds its gradient (scaled by `lossScale`, e.g.
    /// local/global batch when ranks split one batch) into `parameters.grads`. Returns the mean loss.
    @discardableResult
    public func lossAndGradient(_ batch: TokenBatch, labels: [Int], dropout: DropoutContext,
                                lossScale: Float = 1) throws -> Float {
        try forward(batch, dropout: dropout)
        let loss = try classifierBackward(batch, labels: labels, dropout: dropout, lossScale: lossScale)
        encoderBackward(batch, dropout: dropout)
        return loss
    }

    /// After `forward`: the classifier's CE on `labels` (mean over the batch, or Σ w_b CE_b with
    /// `rowWeights`), its gradient times `lossScale` into the head's parameter gradients and into
    /// `dHidden` (zeroed first).
    public func classifierBackward(_ batch: TokenBatch, labels: [Int], dropout: DropoutContext,
                                   lossScale: Float = 1, rowWeights: [Float]? = nil) throws -> Float {
        guard labels.count == batch.batch else {
            throw CSSLMError("\(labels.count) labels for a batch of \(batch.batch)")
        }
        for (i, y) in labels.enumerated() where y < 0 || y >= numLabels {
            throw CSSLMError("label \(y) of example \(i) is outside 0..<\(numLabels)")
        }
        let loss = softmaxCrossEntropy(logits: headActivations.logits.base, labels: labels, classes: numLabels,
                                       dLogits: headActivations.dLogits.base, rowWeights: rowWeights)
        if lossScale != 1 { scale(headActivations.dLogits.base, batch.batch * numLabels, by: lossScale) }
        head.backward(batch, dHidden: dHidden(batch, zero: true), params: parameters.values.base,
                      grads: parameters.grads.base, acts: headActivations, dropout: dropout)
        return loss
    }

    /// The gradient w.r.t. the last hidden states [B·T, H] that `encoderBackward` consumes.
    public func dHidden(_ batch: TokenBatch, zero: Bool = false) -> UnsafeMutablePointer<Float> {
        dHiddenScratch.pointer(count: batch.rows * config.hiddenSize, zeroed: zero)
    }

    /// After `forward`: t(x) (the [CLS] vector) and e(x) (the first [SEP] vector) of each sequence,
    /// each [B, H].
    public func sentenceFeatures(_ batch: TokenBatch, t: UnsafeMutablePointer<Float>, e: UnsafeMutablePointer<Float>) {
        let h = config.hiddenSize, last = encoderActivations.lastHidden
        for b in 0..<batch.batch {
            (t + b * h).update(from: last + b * batch.seqLen * h, count: h)
            (e + b * h).update(from: last + (b * batch.seqLen + batch.sepPositions[b]) * h, count: h)
        }
    }

    /// Adds gradients w.r.t. t(x) and e(x) [B, H] into `dHidden`.
    public func addFeatureGradient(_ batch: TokenBatch, dT: UnsafePointer<Float>, dE: UnsafePointer<Float>) {
        let h = config.hiddenSize, d = dHidden(batch)
        for b in 0..<batch.batch {
            addInPlace(d + b * batch.seqLen * h, dT + b * h, h)
            addInPlace(d + (b * batch.seqLen + batch.sepPositions[b]) * h, dE + b * h, h)
        }
    }

    /// Backpropagates `dHidden` through the encoder into `parameters.grads`.
    public func encoderBackward(_ batch: TokenBatch, dropout: DropoutContext) {
        encoder.backward(batch, dLast: dHidden(batch), params: parameters.values.base, grads: parameters.grads.base,
                         acts: encoderActivations, dropout: dropout)
    }

    /// Writes the encoder (and pass-through tensors) as an HF `model.safetensors` with HF names.
    public func saveEncoder(to url: URL) throws {
        let encoderNames = Set(bertEncoderTensors(config).map(\.name))
        let entries = parameters.entries { encoderNames.contains($0.name) }
            + parameters.passthrough.map { SafetensorsEntry(name: $0.name, shape: $0.shape, values: UnsafeBufferPointer($0.values.buffer)) }
        try SafetensorsWriter.write(entries, metadata: ["format": "pt"], to: url)
    }

    /// Writes the heads (every tensor that is not the encoder's) to their own safetensors file.
    public func saveHeads(to url: URL) throws {
        let encoderNames = Set(bertEncoderTensors(config).map(\.name))
        try SafetensorsWriter.write(parameters.entries { !encoderNames.contains($0.name) },
                                    metadata: ["format": "pt", "num_labels": String(numLabels)], to: url)
    }
}
