// Stage 2 and the retrieval side of stage 3: what the pool is encoded with, the scorer of a step,
// the class prototypes, and the pretrained-encoder option. With `retrievalEncoder: pretrained`
// the pool, the queries (the labelled examples) and the prototypes all live in the space of the
// encoder as loaded, computed once before any update; the pool's vectors are cached on disk keyed by
// the model's weights and vocabulary, the pool's texts, the sentence features and the length, so
// every few-shot sample and method of an experiment reuses one encoding (docs/method.md).
import Foundation

/// The loaded encoder's vectors of the pool and of the labelled set, [N, 2H] rows (t then e).
struct PretrainedVectors {
    var pool: DocumentVectors
    var labelled: DocumentVectors
}

extension Trainer {
    var documentEncoder: DocumentEncoder {
        DocumentEncoder(model: model, separatorId: tokenizer.separatorId, paddingId: tokenizer.paddingId)
    }

    /// With `retrievalEncoder: pretrained`, encodes (or reads from the cache) the pool and encodes
    /// the labelled set with the model as loaded. Call before any weights change (before a
    /// checkpoint is loaded).
    func preparePretrainedRetrieval() throws {
        guard config.method.retrieves, config.retrievalEncoder == .pretrained else { return }
        let started = Date()
        let labelled = try documentEncoder.encode(train.encodings, communicator: communicator)
        // Rank 0 looks in the cache; every rank follows its answer.
        let cacheURL = communicator.rank == 0 ? try poolCacheURL() : nil
        var cached: DocumentVectors?
        if let cacheURL, FileManager.default.fileExists(atPath: cacheURL.path) {
            do { cached = try readPoolCache(cacheURL) } catch {
                diagnostics.warning("pool cache not used, encoding again: \(error)")
            }
        }
        let pool: DocumentVectors
        if try communicator.agree(cached == nil ? 0 : 1, name: "agree(pool cache hit)") == 1 {
            pool = try DocumentVectors.fromRoot(cached, communicator: communicator)
            log(String(format: "[encode] %d pool vectors of the pretrained encoder read from %@ (%.1f s)", pool.count,
                       cacheURL?.path ?? "the cache", Date().timeIntervalSince(started)))
        } else {
            pool = try documentEncoder.encode(corpusPool.encodings, communicator: communicator)
            log(String(format: "[encode] %d corpus sentences encoded with the pretrained encoder in %.1f s", pool.count,
                       Date().timeIntervalSince(started)))
            if let cacheURL {
                do { try writePoolCache(pool, to: cacheURL) } catch { diagnostics.warning("pool cache not written: \(error)") }
            }
        }
        pretrained = PretrainedVectors(pool: pool, labelled: labelled)
    }

    /// `<poolCache>/pool-<key>.index`, the key a SHA-256 over everything the vectors depend on.
    func poolCacheURL() throws -> URL? {
        guard !config.poolCache.isEmpty else { return nil }
        let modelDir = URL(fileURLWithPath: config.model)
        var key = SHA256()
        for part in [try SHA256.hash(fileAt: modelDir.appendingPathComponent("model.safetensors")).hex,
                     try SHA256.hash(fileAt: modelDir.appendingPathComponent("vocab.txt")).hex,
                     corpusPool.digest.hex, config.features.rawValue, String(config.corpusMaxLength)] {
            var text = part + "\n"
            text.withUTF8 { key.update(UnsafeRawBufferPointer($0)) }
        }
        return URL(fileURLWithPath: config.poolCache).appendingPathComponent("pool-\(key.finalize().hex.prefix(24)).index")
    }

    /// The cached pool vectors, in the corpus index format (float32, so they equal a fresh
    /// encoding bit for bit); every header field is checked against this run's pool and encoder.
    func readPoolCache(_ url: URL) throws -> DocumentVectors {
        let index = try CorpusIndex(contentsOf: url, expecting: CorpusIndexExpectation(
            hidden: hidden, count: corpusPool.count, maxLength: corpusPool.maxLength,
            corpusDigest: corpusPool.digest, modelDigest: encoderDigest(model)))
        guard index.precision == .float32 else {
            throw CSSLMError("\(url.path): pool vectors stored as \(index.precision), the cache keeps float32")
        }
        return index.vectors()
    }

    func writePoolCache(_ vectors: DocumentVectors, to url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try CorpusIndex.write(vectors, documents: corpusPool.documents, precision: .float32, maxLength: corpusPool.maxLength,
                              corpusDigest: corpusPool.digest, modelDigest: encoderDigest(model), to: url)
    }

    /// Stage 2: encodes the pool with the best init model on every rank (each a shard), rank 0
    /// writes the index file; returns what stage 3 retrieves from. With pretrained retrieval the
    /// vectors are the ones computed before training.
    func encodeCorpus() throws -> StageRetrieval {
        let heads = try RetrievalHeads(parameters: model.parameters, hidden: hidden)
        if let pretrained {
            return StageRetrieval(vectors: pretrained.pool, heads: heads, schedule: RetrievalSchedule(refreshEvery: 0))
        }
        let started = Date()
        let vectors = try buildCorpusIndex(pool: corpusPool, encoder: documentEncoder, communicator: communicator, precision: .float32,
                                           url: outputURL.appendingPathComponent("corpus.index"))
        log(String(format: "[encode] %d corpus sentences encoded in %.1f s", corpusPool.count, Date().timeIntervalSince(started)))
        return StageRetrieval(vectors: vectors, heads: heads,
                              schedule: RetrievalSchedule(refreshEvery: config.retriever == .query ? config.refreshEvery : 0))
    }

    /// The query vectors [B, 2H] of the global batch: the current encoder's (no dropout, encoded
    /// across ranks in world-size-independent batches, so top-K cannot flip with W), or the
    /// pretrained ones.
    func queryVectors(_ datasetIndices: [Int]) throws -> DocumentVectors {
        if let pretrained {
            let w = 2 * hidden
            return DocumentVectors(count: datasetIndices.count, hidden: hidden,
                                   rows: datasetIndices.flatMap { pretrained.labelled.rows[($0 * w)..<(($0 + 1) * w)] })
        }
        return try documentEncoder.encode(datasetIndices.map { train.encodings[$0] }, communicator: communicator)
    }

    /// The scorer of this step: the frozen pair heads (faithful), or cosine similarity to the query
    /// and to the class prototypes (query), both over the vectors retrieval uses.
    func scorer(_ r: StageRetrieval) throws -> RetrievalScorer {
        switch config.retriever {
        case .faithful:
            return PairHeadScorer(heads: r.heads, documents: r.vectors)
        case .query:
            return PrototypeScorer(documents: r.vectors, prototypes: try classPrototypes(), lambda: config.prototypeWeight)
        }
    }

    /// Unit mean t(x) per class over the whole few-shot set: with the current encoder (no dropout,
    /// encoded across ranks in world-size-independent batches) or the pretrained one.
    func classPrototypes() throws -> ClassPrototypes {
        let vectors = try pretrained?.labelled ?? documentEncoder.encode(train.encodings, communicator: communicator)
        return try ClassPrototypes(classVectors: vectors.classVectors(), labels: train.labels, classes: model.numLabels, hidden: hidden)
    }
}
