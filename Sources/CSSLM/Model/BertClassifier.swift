// A BERT encoder with a sentence classifier head over one flat parameter buffer: loading from an
// HF model folder, forward, loss and backward, and saving back under HF tensor names. Which
// last-layer vectors stand for a sentence (SentenceFeatures) and which head reads them
// (ClassifierKind) are fixed at construction and saved in heads.safetensors' metadata, so a saved
// model predicts the way it was trained.
import Foundation

public final class BertClassifier {
    public let config: BertConfig
    public let numLabels: Int
    public let features: SentenceFeatures
    public let parameters: ParameterSet
    public let encoder: BertEncoder
    public let head: ClassifierHead
    public let encoderActivations = EncoderActivations()
    public let headActivations = ClassifierActivations()
    private let dHiddenScratch = ScratchBuffer()
    /// The head's input rows [B, In], and t(x), e(x) [B, H] and |t| [B] of the latest forward.
    private let headInput = ScratchBuffer(), tScratch = ScratchBuffer(), eScratch = ScratchBuffer()
    private var classNorms: [Float] = []

    /// Metadata keys of heads.safetensors that record how the model reads its features.
    public static let featuresKey = "csslm_features", classifierKey = "csslm_classifier"

    /// A model with randomly initialised weights (HF's init: N(0, 0.02²), biases 0, LN weight 1).
    /// `extraHeads` adds more head tensors (e.g. `pairHeadTensors`) to the flat buffer.
    public init(config: BertConfig, numLabels: Int, extraHeads: [(name: String, shape: [Int])] = [], seed: UInt64 = 0,
                features: SentenceFeatures = .clsSep, classifier: ClassifierKind = .mlp) {
        self.config = config
        self.numLabels = numLabels
        self.features = features
        parameters = ParameterSet(bertEncoderTensors(config)
                                  + classifierHeadTensors(hidden: config.hiddenSize, classes: numLabels, kind: classifier)
                                  + extraHeads)
        encoder = BertEncoder(config: config, parameters: parameters)
        head = ClassifierHead(hidden: config.hiddenSize, classes: numLabels, kind: classifier,
                              dropoutProbability: config.hiddenDropoutProb, parameters: parameters)
        var rng = SplitMix64(seed: seed)
        parameters.initialize(prefix: "", std: 0.02, rng: &rng)
    }

    /// Loads `config.json` and `model.safetensors` from an HF model folder. Encoder tensors are
    /// looked up with or without the `bert.` prefix and must all be present; head tensors
    /// (`classifier.*`) are loaded when present, else initialised from `seed`. Other tensors in the
    /// file (e.g. the pooler) are kept and written back by `saveEncoder`. A NaN or infinite weight
    /// is an error naming the tensor unless `allowNonFiniteWeights`. `features` and `classifier`
    /// default to what the folder's heads.safetensors records (a model csslm saved), else to the
    /// paper's ([CLS]/[SEP], mlp).
    public convenience init(modelDirectory dir: URL, numLabels: Int, extraHeads: [(name: String, shape: [Int])] = [],
                            seed: UInt64 = 0, allowNonFiniteWeights: Bool = false,
                            features: SentenceFeatures? = nil, classifier: ClassifierKind? = nil) throws {
        let config = try BertConfig.load(from: dir.appendingPathComponent("config.json"))
        let headsURL = dir.appendingPathComponent("heads.safetensors")
        let headFileFound = FileManager.default.fileExists(atPath: headsURL.path) ? try SafetensorsFile(url: headsURL) : nil
        func recorded<T: RawRepresentable>(_ key: String, _ type: T.Type) throws -> T? where T.RawValue == String {
            guard let raw = headFileFound?.metadata[key] else { return nil }
            guard let value = T(rawValue: raw) else {
                throw CSSLMError("\(headsURL.path): metadata '\(key)' is '\(raw)', not a value this csslm knows")
            }
            return value
        }
        let features = try features ?? recorded(Self.featuresKey, SentenceFeatures.self) ?? .clsSep
        let classifier = try classifier ?? recorded(Self.classifierKey, ClassifierKind.self) ?? .mlp
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
        self.init(config: config, numLabels: numLabels, extraHeads: extraHeads, seed: seed, features: features, classifier: classifier)
        let headNames = Set((classifierHeadTensors(hidden: config.hiddenSize, classes: numLabels, kind: classifier) + extraHeads).map(\.name))
        try parameters.load(from: file, allowNonFinite: allowNonFiniteWeights) { !headNames.contains($0.name) }
        let known = Set(parameters.specs.flatMap { [$0.name, "bert." + $0.name] })
        // Heads found in the file are loaded; absent ones keep their initialisation.
        try parameters.load(from: headFileFound ?? file, prefixes: [""], allowNonFinite: allowNonFiniteWeights) {
            headNames.contains($0.name)
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
        try encode(batch, dropout: dropout, keepForBackward: keepForBackward)
        headForward(batch, dropout: dropout)
    }

    /// The encoder alone in eval mode, nothing kept for a backward: for `sentenceFeatures`.
    public func encodeWithoutHead(_ batch: TokenBatch) throws {
        try encode(batch, dropout: .off(batch: batch.batch), keepForBackward: false)
    }

    private func encode(_ batch: TokenBatch, dropout: DropoutContext, keepForBackward: Bool) throws {
        try batch.validate(for: config)
        // Mean pooling reads every row of the last layer.
        if features == .mean { encoderActivations.lastLayerRows = .all }
        encoder.forward(batch, params: parameters.values.base, acts: encoderActivations, dropout: dropout,
                        keepForBackward: keepForBackward)
    }

    /// The head on the latest encoder forward's features: logits in `headActivations.logits`.
    public func headForward(_ batch: TokenBatch, dropout: DropoutContext) {
        let b = batch.batch, h = config.hiddenSize, w = head.inputWidth
        let t = tScratch.pointer(count: b * h), e = eScratch.pointer(count: b * h), x = headInput.pointer(count: b * w)
        sentenceFeatures(batch, t: t, e: e)
        switch head.kind {
        case .mlp:
            for r in 0..<b {
                (x + r * w).update(from: t + r * h, count: h)
                (x + r * w + h).update(from: e + r * h, count: h)
            }
        case .linear:
            classNorms = [Float](repeating: 0, count: b)
            for r in 0..<b {
                let norm = vdot(t + r * h, t + r * h, h).squareRoot()
                classNorms[r] = norm
                let inv = norm > 0 ? 1 / norm : 0
                for j in 0..<h { x[r * w + j] = t[r * h + j] * inv }
            }
        }
        head.forward(batch: b, input: x, params: parameters.values.base, acts: headActivations, dropout: dropout)
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
        head.backward(batch: batch.batch, params: parameters.values.base, grads: parameters.grads.base,
                      acts: headActivations, dropout: dropout)
        let b = batch.batch, h = config.hiddenSize, w = head.inputWidth, dx = headActivations.dInput.base
        var dT = [Float](repeating: 0, count: b * h), dE = dT
        switch head.kind {
        case .mlp:
            for r in 0..<b {
                for j in 0..<h { dT[r * h + j] = dx[r * w + j]; dE[r * h + j] = dx[r * w + h + j] }
            }
        case .linear:
            // u = t/|t|: dt = (du − u (u·du)) / |t|.
            let u = headInput.pointer(count: b * w)
            for r in 0..<b where classNorms[r] > 0 {
                let along = vdot(u + r * w, dx + r * w, h)
                for j in 0..<h { dT[r * h + j] = (dx[r * w + j] - u[r * w + j] * along) / classNorms[r] }
            }
        }
        _ = dHidden(batch, zero: true)
        addFeatureGradient(batch, dT: dT, dE: dE)
        return loss
    }

    /// The gradient w.r.t. the last hidden states [B·T, H] that `encoderBackward` consumes.
    public func dHidden(_ batch: TokenBatch, zero: Bool = false) -> UnsafeMutablePointer<Float> {
        dHiddenScratch.pointer(count: batch.rows * config.hiddenSize, zeroed: zero)
    }

    /// After `forward`: the class vector t(x) and the domain vector e(x) of each sequence, each
    /// [B, H], as `features` defines them ([CLS] or the mean of the real tokens; the first [SEP]).
    public func sentenceFeatures(_ batch: TokenBatch, t: UnsafeMutablePointer<Float>, e: UnsafeMutablePointer<Float>) {
        let h = config.hiddenSize, last = encoderActivations.lastHidden, s = batch.seqLen
        for b in 0..<batch.batch {
            switch features {
            case .clsSep:
                (t + b * h).update(from: last + b * s * h, count: h)
            case .mean:
                let row = t + b * h
                row.update(repeating: 0, count: h)
                var n: Float = 0
                for p in 0..<s where batch.mask[b * s + p] > 0 { addInPlace(row, last + (b * s + p) * h, h); n += 1 }
                if n > 0 { scale(row, h, by: 1 / n) }
            }
            (e + b * h).update(from: last + (b * s + batch.sepPositions[b]) * h, count: h)
        }
    }

    /// Adds gradients w.r.t. t(x) and e(x) [B, H] into `dHidden`.
    public func addFeatureGradient(_ batch: TokenBatch, dT: UnsafePointer<Float>, dE: UnsafePointer<Float>) {
        let h = config.hiddenSize, d = dHidden(batch), s = batch.seqLen
        for b in 0..<batch.batch {
            switch features {
            case .clsSep:
                addInPlace(d + b * s * h, dT + b * h, h)
            case .mean:
                let real = (0..<s).filter { batch.mask[b * s + $0] > 0 }
                guard !real.isEmpty else { break }
                var share = [Float](repeating: 0, count: h)
                for j in 0..<h { share[j] = dT[b * h + j] / Float(real.count) }
                for p in real { addInPlace(d + (b * s + p) * h, share, h) }
            }
            addInPlace(d + (b * s + batch.sepPositions[b]) * h, dE + b * h, h)
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
                                    metadata: ["format": "pt", "num_labels": String(numLabels), Self.featuresKey: features.rawValue,
                                               Self.classifierKey: head.kind.rawValue], to: url)
    }
}
