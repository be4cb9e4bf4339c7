// Stage 2 (and the prototype retriever's refresh): encode many documents with the current encoder
// in eval mode, in batches sorted by length under a token budget (little work goes to padding),
// planned over all documents and dealt to ranks round-robin, then all-gather the vectors so every
// rank holds the whole pool (no shared file system needed). Each document is encoded in the same
// batch at every world size, so the vectors are bit-identical whatever W is; the attention mask
// makes a vector independent of its batch's padding, up to float summation order.
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
    ///
    /// The batches are planned over ALL documents (sorted by length, under the token budget) and
    /// dealt to ranks round-robin, so every document is encoded in the same batch, with the same
    /// padding, whatever the world size: the vectors are bit-identical at any W (top-K retrieval is
    /// discontinuous, so "equal up to float rounding" would not be enough).
    public func encode(_ encodings: [Encoding], communicator: Communicator,
                       progress: ((Int, Int) -> Void)? = nil) throws -> DocumentVectors {
        let h = model.config.hiddenSize
        try communicator.checkSameOnAllRanks(encodings.count, what: "the number of documents to encode")
        let batches = plan(encodings)
        let w = communicator.size
        let mine = stride(from: communicator.rank, to: batches.count, by: w).map { batches[$0] }
        let local = try encodeLocally(encodings, batches: mine, progress: progress)
        let perRank = (0..<w).map { r in stride(from: r, to: batches.count, by: w).reduce(0) { $0 + batches[$1].count } }
        var gathered = [Float](repeating: 0, count: encodings.count * 2 * h)
        try local.withUnsafeBufferPointer { l in
            try gathered.withUnsafeMutableBufferPointer {
                try communicator.allgatherv(l, into: $0, counts: perRank.map { $0 * 2 * h },
                                            name: "allgatherv(document vectors)")
            }
        }
        // Gathered rows are in (rank, its batches in order) order: put each back at its document.
        var rows = [Float](repeating: 0, count: encodings.count * 2 * h)
        var position = 0
        for r in 0..<w {
            for b in stride(from: r, to: batches.count, by: w) {
                for d in batches[b] {
                    rows[(d * 2 * h)..<((d + 1) * 2 * h)] = gathered[(position * 2 * h)..<((position + 1) * 2 * h)]
                    position += 1
                }
            }
        }
        return DocumentVectors(count: encodings.count, hidden: h, rows: rows)
    }

    /// Batches of document indices: shortest first (ties by index), each under `tokensPerBatch`.
    func plan(_ encodings: [Encoding]) -> [[Int]] {
        let order = encodings.indices.sorted { (encodings[$0].count, $0) < (encodings[$1].count, $1) }
        var batches: [[Int]] = []
        var start = 0
        while start < order.count {
            var end = start + 1
            while end < order.count && (end - start + 1) * encodings[order[end]].count <= tokensPerBatch { end += 1 }
            batches.append(Array(order[start..<end]))
            start = end
        }
        return batches
    }

    /// [rows.count, 2H] for `encodings[rows]`, in that order, on this process alone.
    public func encodeLocally(_ encodings: [Encoding], rows: Range<Int>,
                              progress: ((Int, Int) -> Void)? = nil) throws -> [Float] {
        let subset = Array(encodings[rows])
        let batches = plan(subset)
        let h = model.config.hiddenSize
        let encoded = try encodeLocally(subset, batches: batches, progress: progress)
        var out = [Float](repeating: 0, count: subset.count * 2 * h)
        for (position, d) in batches.joined().enumerated() {
            out[(d * 2 * h)..<((d + 1) * 2 * h)] = encoded[(position * 2 * h)..<((position + 1) * 2 * h)]
        }
        return out
    }

    /// [Σ batch sizes, 2H]: the vectors of the documents of `batches`, batch after batch, each
    /// batch one forward pass.
    func encodeLocally(_ encodings: [Encoding], batches: [[Int]], progress: ((Int, Int) -> Void)? = nil) throws -> [Float] {
        let h = model.config.hiddenSize
        let total = batches.reduce(0) { $0 + $1.count }
        var out = [Float](repeating: 0, count: total * 2 * h)
        var t = [Float](), e = [Float]()
        var done = 0
        for members in batches {
            let batch = try TokenBatch(sequences: members.map { encodings[$0].ids },
                                       typeIds: members.map { encodings[$0].tokenTypeIds },
                                       padId: paddingId, sepId: separatorId)
            try model.encodeWithoutHead(batch)
            if t.count < batch.batch * h {
                t = [Float](repeating: 0, count: batch.batch * h)
                e = t
            }
            model.sentenceFeatures(batch, t: &t, e: &e)
            for b in 0..<members.count {
                let row = (done + b) * 2 * h
                out[row..<(row + h)] = t[(b * h)..<((b + 1) * h)]
                out[(row + h)..<(row + 2 * h)] = e[(b * h)..<((b + 1) * h)]
            }
            done += members.count
            progress?(done, total)
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
