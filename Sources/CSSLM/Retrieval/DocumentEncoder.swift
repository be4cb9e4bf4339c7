// Stage 2 (and the prototype retriever's refresh): encode many documents with the current encoder
// in eval mode, every rank a contiguous shard (GlobalSampler.rankRows), then all-gather the vectors
// so every rank holds the whole pool (no shared file system needed). Within a shard, documents run
// in batches sorted by length under a token budget, so little work goes to padding; the attention
// mask makes the result independent of the padding, up to float summation order.
import Foundation

/// Encodes documents into their t(d) and e(d) vectors.
///
/// ```swift
/// let encoder = DocumentEncoder(model: model, separatorId: tok.separatorId, paddingId: tok.paddingId)
/// let vectors = try encoder.encode(pool.encodings, communicator: comm)   // [N, 2H] on every rank
/// ```
public struct DocumentEncoder {
    public let model: BertClassifier
    public let separatorId: Int32
    public let paddingId: Int32
    /// The most padded tokens (rows × longest row) one forward pass takes.
    public var tokensPerBatch: Int

    public init(model: BertClassifier, separatorId: Int32, paddingId: Int32, tokensPerBatch: Int = 4096) {
        precondition(tokensPerBatch > 0, "tokensPerBatch must be positive")
        self.model = model
        self.separatorId = separatorId
        self.paddingId = paddingId
        self.tokensPerBatch = tokensPerBatch
    }

    /// The vectors of `encodings`, in their order, on every rank. Every rank must call it with the
    /// same encodings. `progress(done, total)` reports this rank's documents after each batch.
    public func encode(_ encodings: [Encoding], communicator: Communicator,
                       progress: ((Int, Int) -> Void)? = nil) throws -> DocumentVectors {
        let h = model.config.hiddenSize
        try communicator.checkSameOnAllRanks(encodings.count, what: "the number of documents to encode")
        let shards = (0..<communicator.size).map {
            GlobalSampler.rankRows(batchSize: encodings.count, rank: $0, worldSize: communicator.size)
        }
        let local = try encodeLocally(encodings, rows: shards[communicator.rank], progress: progress)
        var rows = [Float](repeating: 0, count: encodings.count * 2 * h)
        try local.withUnsafeBufferPointer { l in
            try rows.withUnsafeMutableBufferPointer {
                try communicator.allgatherv(l, into: $0, counts: shards.map { $0.count * 2 * h },
                                            name: "allgatherv(document vectors)")
            }
        }
        return DocumentVectors(count: encodings.count, hidden: h, rows: rows)
    }

    /// [rows.count, 2H] for `encodings[rows]`, in that order, on this process alone.
    public func encodeLocally(_ encodings: [Encoding], rows: Range<Int>,
                              progress: ((Int, Int) -> Void)? = nil) throws -> [Float] {
        let h = model.config.hiddenSize
        var out = [Float](repeating: 0, count: rows.count * 2 * h)
        // Shortest first; equal lengths keep their order, so the batches are deterministic.
        let order = rows.sorted { (encodings[$0].count, $0) < (encodings[$1].count, $1) }
        var t = [Float](), e = [Float]()
        var start = 0
        while start < order.count {
            var end = start + 1
            while end < order.count && (end - start + 1) * encodings[order[end]].count <= tokensPerBatch { end += 1 }
            let members = order[start..<end]
            let batch = try TokenBatch(sequences: members.map { encodings[$0].ids },
                                       typeIds: members.map { encodings[$0].tokenTypeIds },
                                       padId: paddingId, sepId: separatorId)
            try batch.validate(for: model.config)
            model.encoder.forward(batch, params: model.parameters.values.base, acts: model.encoderActivations,
                                  dropout: .off(batch: batch.batch))
            if t.count < batch.batch * h {
                t = [Float](repeating: 0, count: batch.batch * h)
                e = t
            }
            model.sentenceFeatures(batch, t: &t, e: &e)
            for (b, document) in members.enumerated() {
                let row = (document - rows.lowerBound) * 2 * h
                out[row..<(row + h)] = t[(b * h)..<((b + 1) * h)]
                out[(row + h)..<(row + 2 * h)] = e[(b * h)..<((b + 1) * h)]
            }
            start = end
            progress?(start, order.count)
        }
        return out
    }
}

/// SHA-256 of the encoder weights (names, shapes and values of the BERT tensors, in layout order):
/// the identity of the model that produced an index. The heads are left out; they do not change
/// t(d) and e(d).
public func encoderDigest(_ model: BertClassifier) -> SHA256Digest {
    var hash = SHA256()
    for tensor in bertEncoderTensors(model.config) {
        guard let spec = model.parameters.spec(tensor.name) else { continue }
        hash.update(tensor.name)
        hash.update(littleEndian: UInt64(spec.shape.count))
        for dim in spec.shape { hash.update(littleEndian: UInt64(dim)) }
        hash.update(UnsafeRawBufferPointer(start: model.parameters.values.base + spec.offset,
                                           count: spec.count * MemoryLayout<Float>.stride))
    }
    return hash.finalize()
}

/// Stage 2 on every rank: encodes the pool, writes the index file on rank 0 (when `url` is given),
/// and returns the vectors rounded to `precision`, so every rank retrieves from exactly the numbers
/// the file holds (a resume from the file then retrieves the same documents).
///
/// ```swift
/// let vectors = try buildCorpusIndex(pool: pool, encoder: encoder, communicator: comm,
///                                    precision: .float16, url: runDir.appendingPathComponent("corpus.index"))
/// ```
public func buildCorpusIndex(pool: CorpusPool, encoder: DocumentEncoder, communicator: Communicator,
                             precision: VectorPrecision, url: URL?,
                             progress: ((Int, Int) -> Void)? = nil) throws -> DocumentVectors {
    // Without a shared file system every rank reads its own copy of the corpus: the copies must agree.
    let fingerprint = pool.digest.bytes.prefix(8).reduce(0) { $0 << 8 | Int($1) }
    try communicator.checkSameOnAllRanks(fingerprint, what: "the corpus pool (SHA-256 \(pool.digest.short) on this rank)")
    let vectors = try encoder.encode(pool.encodings, communicator: communicator, progress: progress).rounded(to: precision)
    if let url, communicator.rank == 0 {
        try CorpusIndex.write(vectors, documents: pool.documents, precision: precision, maxLength: pool.maxLength,
                              corpusDigest: pool.digest, modelDigest: encoderDigest(encoder.model), to: url)
    }
    return vectors
}
