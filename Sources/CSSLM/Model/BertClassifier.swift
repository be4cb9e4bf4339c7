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
    public init(config: BertConfig, numLabels: Int, seed: UInt64 = 0) {
        self.config = config
        self.numLabels = numLabels
        parameters = ParameterSet(bertEncoderTensors(config) + classifierHeadTensors(hidden: config.hiddenSize, classes: numLabels))
        encoder = BertEncoder(config: config, parameters: parameters)
        head = ClassifierHead(hidden: config.hiddenSize, classes: numLabels,
                              dropoutProbability: config.hiddenDropoutProb, parameters: parameters)
        var rng = SplitMix64(seed: seed)
        parameters.initialize(prefix: "", std: 0.02, rng: &rng)
    }

    /// Loads `config.json` and `model.safetensors` from an HF model folder. Encoder tensors are
    /// looked up with or without the `bert.` prefix and must all be present; head tensors
    /// (`classifier.*`) are loaded when present, else initialised from `seed`. Other tensors in the
    /// file (e.g. the pooler) are kept and written back by `saveEncoder`.
    public convenience init(modelDirectory dir: URL, numLabels: Int, seed: UInt64 = 0) throws {
        let config = try BertConfig.load(from: dir.appendingPathComponent("config.json"))
        self.init(config: config, numLabels: numLabels, seed: seed)
        let file = try SafetensorsFile(url: dir.appendingPathComponent("model.safetensors"))
        let missing = try parameters.load(from: file) { !$0.name.hasPrefix("classifier.") }
        if !missing.isEmpty {
            throw CSSLMError("\(file.path): missing tensor '\(missing[0])'\(missing.count > 1 ? " and \(missing.count - 1) more" : "")",
                             hint: "the file does not hold a BERT encoder matching \(dir.path)/config.json")
        }
        let known = Set(parameters.specs.flatMap { [$0.name, "bert." + $0.name] })
        var headFile: SafetensorsFile? = file
        let headsURL = dir.appendingPathComponent("heads.safetensors")
        if FileManager.default.fileExists(atPath: headsURL.path) { headFile = try SafetensorsFile(url: headsURL) }
        if let headFile, headFile.tensors["classifier.dense.weight"] != nil {
            try parameters.load(from: headFile, prefixes: [""]) { $0.name.hasPrefix("classifier.") }
        }
        for name in file.names where !known.contains(name) && !name.hasPrefix("classifier.") {
            let info = try file.info(name)
            guard info.dtype.isFloat else { continue }
            parameters.passthrough.append((name, info.shape, FloatBuffer(try file.floats(name))))
        }
    }

    /// Runs encoder and head; logits are in `headActivations.logits` [B, C].
    public func forward(_ batch: TokenBatch, dropout: DropoutContext) throws {
        try batch.validate(for: config)
        encoder.forward(batch, params: parameters.values.base, acts: encoderActivations, dropout: dropout)
        head.forward(batch, lastHidden: encoderActivations.lastHidden, params: parameters.values.base,
                     acts: headActivations, dropout: dropout)
    }

    /// Logits [B·C] without dropout.
    public func logits(_ batch: TokenBatch) throws -> [Float] {
        try forward(batch, dropout: .off(batch: batch.batch))
        return Array(UnsafeBufferPointer(start: headActivations.logits.base, count: batch.batch * numLabels))
    }

    /// Cross-entropy of the classifier on `labels`; adds its gradient (scaled by `lossScale`, e.g.
    /// local/global batch when ranks split one batch) into `parameters.grads`. Returns the mean loss.
    @discardableResult
    public func lossAndGradient(_ batch: TokenBatch, labels: [Int], dropout: DropoutContext,
                                lossScale: Float = 1) throws -> Float {
        guard labels.count == batch.batch else {
            throw CSSLMError("\(labels.count) labels for a batch of \(batch.batch)")
        }
        for (i, y) in labels.enumerated() where y < 0 || y >= numLabels {
            throw CSSLMError("label \(y) of example \(i) is outside 0..<\(numLabels)")
        }
        try forward(batch, dropout: dropout)
        let loss = softmaxCrossEntropy(logits: headActivations.logits.base, labels: labels, classes: numLabels,
                                       dLogits: headActivations.dLogits.base)
        if lossScale != 1 { scale(headActivations.dLogits.base, batch.batch * numLabels, by: lossScale) }
        let dHidden = dHiddenScratch.pointer(count: batch.rows * config.hiddenSize, zeroed: true)
        head.backward(batch, dHidden: dHidden, params: parameters.values.base, grads: parameters.grads.base,
                      acts: headActivations, dropout: dropout)
        encoder.backward(batch, dLast: dHidden, params: parameters.values.base, grads: parameters.grads.base,
                         acts: encoderActivations, dropout: dropout)
        return loss
    }

    /// Writes the encoder (and pass-through tensors) as an HF `model.safetensors` with HF names.
    public func saveEncoder(to url: URL) throws {
        let entries = parameters.entries { !$0.name.hasPrefix("classifier.") }
            + parameters.passthrough.map { SafetensorsEntry(name: $0.name, shape: $0.shape, values: UnsafeBufferPointer($0.values.buffer)) }
        try SafetensorsWriter.write(entries, metadata: ["format": "pt"], to: url)
    }

    /// Writes the heads (`classifier.*`) to their own safetensors file.
    public func saveHeads(to url: URL) throws {
        try SafetensorsWriter.write(parameters.entries { $0.name.hasPrefix("classifier.") },
                                    metadata: ["format": "pt", "num_labels": String(numLabels)], to: url)
    }
}
