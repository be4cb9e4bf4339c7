// A padded batch of token sequences, the encoder's input.

/// B sequences padded to T tokens, row-major [B, T].
public struct TokenBatch: Sendable {
    public let batch: Int
    public let seqLen: Int
    public var ids: [Int32]
    public var typeIds: [Int32]
    /// 1 for real tokens, 0 for padding (HF attention_mask).
    public var mask: [Float]
    /// Position of the first separator token of each sequence (the CSS-LM domain vector e(x)).
    public var sepPositions: [Int]

    public init(batch: Int, seqLen: Int, ids: [Int32], typeIds: [Int32]? = nil, mask: [Float],
                sepPositions: [Int]) {
        precondition(ids.count == batch * seqLen && mask.count == batch * seqLen && sepPositions.count == batch,
                     "TokenBatch: sizes do not match \(batch)×\(seqLen)")
        self.batch = batch; self.seqLen = seqLen; self.ids = ids
        self.typeIds = typeIds ?? [Int32](repeating: 0, count: ids.count)
        self.mask = mask; self.sepPositions = sepPositions
    }

    /// Pads `sequences` (already with special tokens) to the longest one; `sepId` marks e(x).
    public init(sequences: [[Int32]], typeIds: [[Int32]]? = nil, padId: Int32 = 0, sepId: Int32) throws {
        let b = sequences.count
        let t = sequences.map(\.count).max() ?? 0
        var ids = [Int32](repeating: padId, count: b * t)
        var types = [Int32](repeating: 0, count: b * t)
        var mask = [Float](repeating: 0, count: b * t)
        var seps: [Int] = []
        for (i, s) in sequences.enumerated() {
            guard let sep = s.firstIndex(of: sepId) else {
                throw CSSLMError("sequence \(i) has no separator token (id \(sepId))")
            }
            seps.append(sep)
            for (j, id) in s.enumerated() {
                ids[i * t + j] = id
                mask[i * t + j] = 1
                if let typeIds { types[i * t + j] = typeIds[i][j] }
            }
        }
        self.init(batch: b, seqLen: t, ids: ids, typeIds: types, mask: mask, sepPositions: seps)
    }

    public var rows: Int { batch * seqLen }

    /// No sequences: a rank whose share of the global batch is empty still takes part in the
    /// step's collectives with it.
    public static let empty = TokenBatch(batch: 0, seqLen: 0, ids: [], mask: [], sepPositions: [])

    /// Checks the ids against the model's tables (bad ids would read out of bounds).
    public func validate(for config: BertConfig) throws {
        if seqLen > config.maxPositionEmbeddings {
            throw CSSLMError("batch sequence length \(seqLen) exceeds max_position_embeddings \(config.maxPositionEmbeddings)",
                             hint: "truncate inputs to at most \(config.maxPositionEmbeddings) tokens")
        }
        for (i, id) in ids.enumerated() where id < 0 || Int(id) >= config.vocabSize {
            throw CSSLMError("token id \(id) at row \(i / seqLen), position \(i % seqLen) is outside the vocabulary (size \(config.vocabSize))")
        }
        for (i, ty) in typeIds.enumerated() where ty < 0 || Int(ty) >= config.typeVocabSize {
            throw CSSLMError("token type id \(ty) at row \(i / seqLen) is outside type_vocab_size \(config.typeVocabSize)")
        }
        for (b, s) in sepPositions.enumerated() where s < 0 || s >= seqLen {
            throw CSSLMError("separator position \(s) of row \(b) is outside the sequence length \(seqLen)")
        }
    }
}
