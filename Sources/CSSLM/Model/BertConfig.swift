// BERT hyper-parameters read from a Hugging Face `config.json`.
import Foundation

/// The encoder shape and regularisation, as HF's BertConfig names them.
public struct BertConfig: Codable, Equatable, Sendable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var intermediateSize: Int
    public var maxPositionEmbeddings: Int
    public var typeVocabSize: Int
    public var layerNormEps: Float
    public var hiddenAct: String
    public var hiddenDropoutProb: Float
    public var attentionProbsDropoutProb: Float
    public var padTokenId: Int
    public var modelType: String?
    public var positionEmbeddingType: String?

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", intermediateSize = "intermediate_size"
        case maxPositionEmbeddings = "max_position_embeddings", typeVocabSize = "type_vocab_size"
        case layerNormEps = "layer_norm_eps", hiddenAct = "hidden_act"
        case hiddenDropoutProb = "hidden_dropout_prob"
        case attentionProbsDropoutProb = "attention_probs_dropout_prob"
        case padTokenId = "pad_token_id", modelType = "model_type"
        case positionEmbeddingType = "position_embedding_type"
    }

    public init(vocabSize: Int, hiddenSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
                intermediateSize: Int, maxPositionEmbeddings: Int = 512, typeVocabSize: Int = 2,
                layerNormEps: Float = 1e-12, hiddenAct: String = "gelu",
                hiddenDropoutProb: Float = 0.1, attentionProbsDropoutProb: Float = 0.1,
                padTokenId: Int = 0) {
        self.vocabSize = vocabSize; self.hiddenSize = hiddenSize; self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads; self.intermediateSize = intermediateSize
        self.maxPositionEmbeddings = maxPositionEmbeddings; self.typeVocabSize = typeVocabSize
        self.layerNormEps = layerNormEps; self.hiddenAct = hiddenAct
        self.hiddenDropoutProb = hiddenDropoutProb; self.attentionProbsDropoutProb = attentionProbsDropoutProb
        self.padTokenId = padTokenId; self.modelType = "bert"; self.positionEmbeddingType = "absolute"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 512
        typeVocabSize = try c.decodeIfPresent(Int.self, forKey: .typeVocabSize) ?? 2
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? 1e-12
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "gelu"
        hiddenDropoutProb = try c.decodeIfPresent(Float.self, forKey: .hiddenDropoutProb) ?? 0.1
        attentionProbsDropoutProb = try c.decodeIfPresent(Float.self, forKey: .attentionProbsDropoutProb) ?? 0.1
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId) ?? 0
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType)
        positionEmbeddingType = try c.decodeIfPresent(String.self, forKey: .positionEmbeddingType)
    }

    public var headSize: Int { hiddenSize / numAttentionHeads }

    /// Reads and validates `config.json`; every problem names the file and the field.
    public static func load(from url: URL) throws -> BertConfig {
        let read: Data?
        do { read = try InputLimits.read(url, atMost: InputLimits.maxJSONConfigBytes) } catch {
            throw CSSLMError("\(url.path): cannot read model config (\(fileErrorReason(error, path: url.path)))",
                             hint: "a model folder needs config.json, model.safetensors and vocab.txt")
        }
        guard let data = read else {
            throw CSSLMError("\(url.path): larger than \(InputLimits.describeBytes(InputLimits.maxJSONConfigBytes)), "
                             + "the limit for a JSON config file")
        }
        let config: BertConfig
        do { config = try JSONDecoder().decode(BertConfig.self, from: data) } catch let DecodingError.keyNotFound(key, _) {
            throw CSSLMError("\(url.path): missing field '\(key.stringValue)'")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw CSSLMError("\(url.path): field '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type")
        } catch {
            throw CSSLMError("\(url.path): not a valid JSON config (\(error))")
        }
        try config.validate(file: url.path)
        return config
    }

    /// Checks that the numbers describe a BERT this implementation runs.
    public func validate(file: String = "config") throws {
        func bad(_ field: String, _ why: String) -> CSSLMError { CSSLMError("\(file): field '\(field)' \(why)") }
        for (field, v) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize),
                           ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
                           ("intermediate_size", intermediateSize), ("max_position_embeddings", maxPositionEmbeddings),
                           ("type_vocab_size", typeVocabSize)] where v <= 0 {
            throw bad(field, "must be positive, got \(v)")
        }
        for (field, v, limit) in [("vocab_size", vocabSize, InputLimits.maxVocabularySize),
                                  ("hidden_size", hiddenSize, InputLimits.maxHiddenSize),
                                  ("intermediate_size", intermediateSize, InputLimits.maxIntermediateSize),
                                  ("num_hidden_layers", numHiddenLayers, InputLimits.maxLayers),
                                  ("max_position_embeddings", maxPositionEmbeddings, InputLimits.maxSequenceLength),
                                  ("type_vocab_size", typeVocabSize, InputLimits.maxTypeVocabularySize)] where v > limit {
            throw bad(field, "is \(v), above the limit of \(limit)")
        }
        if hiddenSize % numAttentionHeads != 0 {
            throw bad("hidden_size", "(\(hiddenSize)) is not a multiple of num_attention_heads (\(numAttentionHeads))")
        }
        if hiddenAct != "gelu" { throw bad("hidden_act", "is '\(hiddenAct)'; supported: 'gelu' (exact erf)") }
        if let t = modelType, t != "bert" { throw bad("model_type", "is '\(t)'; supported: 'bert'") }
        if let p = positionEmbeddingType, p != "absolute" {
            throw bad("position_embedding_type", "is '\(p)'; supported: 'absolute'")
        }
        if !(0..<1).contains(hiddenDropoutProb) { throw bad("hidden_dropout_prob", "must be in [0, 1)") }
        if !(0..<1).contains(attentionProbsDropoutProb) { throw bad("attention_probs_dropout_prob", "must be in [0, 1)") }
        if !(layerNormEps > 0) { throw bad("layer_norm_eps", "must be positive") }
    }

    /// The HF `config.json` text for this configuration (used by export).
    public func jsonData() throws -> Data {
        var dict: [String: Any] = [
            "architectures": ["BertModel"], "model_type": "bert",
            "vocab_size": vocabSize, "hidden_size": hiddenSize, "num_hidden_layers": numHiddenLayers,
            "num_attention_heads": numAttentionHeads, "intermediate_size": intermediateSize,
            "max_position_embeddings": maxPositionEmbeddings, "type_vocab_size": typeVocabSize,
            "layer_norm_eps": Double(layerNormEps), "hidden_act": hiddenAct,
            "hidden_dropout_prob": Double(hiddenDropoutProb),
            "attention_probs_dropout_prob": Double(attentionProbsDropoutProb),
            "pad_token_id": padTokenId, "position_embedding_type": "absolute",
        ]
        dict["initializer_range"] = 0.02
        return try JSONSerialization.data(withJSONObject: dict, options: [.prettyPrinted, .sortedKeys])
    }
}
