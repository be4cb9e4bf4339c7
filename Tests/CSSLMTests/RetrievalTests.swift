// Tests of the retrieval library (stages 2 and 3): each against an independent reference, a full
// sort for the top K, the concatenated pairs through the Linear heads for the precomputed scorer,
// direct cosine sums for the prototype scorer, each document encoded alone for the batched and
// sharded corpus encoding, and damaged files for the index reader.
@testable import CSSLM
import Foundation
import XCTest

final class RetrievalTests: XCTestCase {
    // MARK: Helpers

    /// Uniform values in [-1, 1) from a seed.
    static func randomValues(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in rng.nextUniform() * 2 - 1 }
    }

    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-retrieval-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static func randomHeads(hidden h: Int, seed: UInt64) -> RetrievalHeads {
        RetrievalHeads(hidden: h, taskWeight: randomValues(4 * h, seed: seed), taskBias: randomValues(2, seed: seed + 1),
                       domainWeight: randomValues(4 * h, seed: seed + 2), domainBias: randomValues(2, seed: seed + 3))
    }

    static func documents(_ n: Int) -> [CorpusLine] {
        (0..<n).map { CorpusLine(text: "document \($0) — ünïcode \(String(repeating: "x", count: $0 % 7))", line: 3 * $0 + 1) }
    }

    // MARK: SHA-256

    func testSHA256MatchesThePublishedTestVectorsInAnyChunking() {
        XCTAssertEqual(SHA256.hash([]).hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hash(Array("abc".utf8)).hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)).hex,
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var million = SHA256()
        let a = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        var at = 0, chunk = 1
        while at < a.count {
            let end = min(a.count, at + chunk)
            million.update(Array(a[at..<end]))
            at = end
            chunk = chunk * 7 % 191 + 1
        }
        XCTAssertEqual(million.finalize().hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    // MARK: Top K

    /// The reference: a full sort by (score descending, index ascending), NaN last.
    static func referenceTopK(_ scores: [Float], k: Int) -> [Int] {
        func key(_ i: Int) -> Float { scores[i].isNaN ? -.infinity : scores[i] }
        return Array(scores.indices.sorted { key($0) > key($1) || (key($0) == key($1) && $0 < $1) }.prefix(k))
    }

    func testTopKEqualsAFullSortOnRandomDataWithTiesAndNaN() {
        var rng = SplitMix64(seed: 17)
        for trial in 0..<300 {
            let n = rng.nextInt(below: 200)
            // Few distinct values so ties are common; some NaN and infinities.
            let levels = 1 + rng.nextInt(below: 12)
            var scores = (0..<n).map { _ in Float(rng.nextInt(below: levels)) * 0.25 - 1 }
            if n > 0 && trial % 3 == 0 {
                for _ in 0..<3 { scores[rng.nextInt(below: n)] = [Float.nan, .infinity, -.infinity][rng.nextInt(below: 3)] }
            }
            for k in [0, 1, 2, 16, n, n + 5] {
                let ours = scores.withUnsafeBufferPointer { topK($0, k: k) }
                XCTAssertEqual(ours, Self.referenceTopK(scores, k: k), "trial \(trial), n \(n), k \(k)")
            }
        }
        // Continuous scores, the paper's pool size (docs/method.md#retrieval).
        let big = Self.randomValues(40_000, seed: 5)
        XCTAssertEqual(big.withUnsafeBufferPointer { topK($0, k: 16) }, Self.referenceTopK(big, k: 16))
    }

    // MARK: The faithful scorer

    /// Δ = logit1 − logit0 of Linear(2H, 2) on [x_q; x_d], in Double from the raw weights.
    static func directDelta(weight w: [Float], bias: [Float], _ q: ArraySlice<Float>, _ d: ArraySlice<Float>) -> Double {
        let x = Array(q) + Array(d)
        var logits = [Double(bias[0]), Double(bias[1])]
        for k in 0..<2 { for j in 0..<x.count { logits[k] += Double(w[k * x.count + j]) * Double(x[j]) } }
        return logits[1] - logits[0]
    }

    static func softplus(_ x: Double) -> Double { x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)) }

    func testPrecomputedScorerGivesTheScoresAndRankingOfThePairsThroughTheHeads() throws {
        let h = 12, n = 300, b = 3
        let heads = Self.randomHeads(hidden: h, seed: 40)
        // Vectors of unit scale, so the deltas span a few units and softplus sees both signs.
        let docs = DocumentVectors(count: n, hidden: h, rows: Self.randomValues(n * 2 * h, seed: 41))
        let queries = QueryFeatures(hidden: h, t: Self.randomValues(b * h, seed: 42), e: Self.randomValues(b * h, seed: 43),
                                    labels: [0, 1, 0])
        let scorer = PairHeadScorer(heads: heads, documents: docs)
        var scores = [Float](repeating: 0, count: b * n)
        scorer.scores(queries, into: &scores)

        var reference = [Double](repeating: 0, count: b * n)
        for q in 0..<b {
            let tq = queries.t[(q * h)..<((q + 1) * h)], eq = queries.e[(q * h)..<((q + 1) * h)]
            for d in 0..<n {
                let task = Self.directDelta(weight: heads.taskWeight, bias: heads.taskBias, tq, docs.classVector(d))
                let dom = Self.directDelta(weight: heads.domainWeight, bias: heads.domainBias, eq, docs.domainVector(d))
                reference[q * n + d] = Self.softplus(task) + 0.5 * Self.softplus(dom)
            }
        }
        assertClose("pair-head scores vs [q; d] through the heads", scores, reference.map { Float($0) }, tolerance: 1e-5)
        for q in 0..<b {
            let mine = Array(scores[(q * n)..<((q + 1) * n)]), ref = reference[(q * n)..<((q + 1) * n)].map { Float($0) }
            XCTAssertEqual(mine.withUnsafeBufferPointer { topK($0, k: 16) }, Self.referenceTopK(ref, k: 16), "query \(q)")
        }

        // The heads copied out of a model's parameters score the same.
        let config = BertConfig(vocabSize: 20, hiddenSize: h, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 16)
        let model = BertClassifier(config: config, numLabels: 2, extraHeads: retrievalHeadTensors(hidden: h), seed: 1)
        let ps = model.parameters
        for (name, values) in [("taskPair.weight", heads.taskWeight), ("taskPair.bias", heads.taskBias),
                               ("domainPair.weight", heads.domainWeight), ("domainPair.bias", heads.domainBias)] {
            ps.value(name).update(from: values, count: values.count)
        }
        XCTAssertEqual(try RetrievalHeads(parameters: ps, hidden: h), heads)
        XCTAssertThrowsError(try RetrievalHeads(parameters: BertClassifier(config: config, numLabels: 2).parameters, hidden: h))
    }

    // MARK: Draws

    func testDrawVectorIsAPureFunctionOfSeedAndStepSharedByAllQueries() throws {
        let a = RetrievalDraws.positions(seed: 7, step: 12, count: 16, available: 16)
        XCTAssertEqual(a, RetrievalDraws.positions(seed: 7, step: 12, count: 16, available: 16))
        XCTAssertNotEqual(a, RetrievalDraws.positions(seed: 7, step: 13, count: 16, available: 16))
        XCTAssertNotEqual(a, RetrievalDraws.positions(seed: 8, step: 12, count: 16, available: 16))
        XCTAssertTrue(a.allSatisfy { (0..<16).contains($0) })
        // With replacement: over many steps every position comes up, and repeats occur.
        var seen = Set<Int>(), repeats = 0
        for step in 0..<50 {
            let draws = RetrievalDraws.positions(seed: 7, step: step, count: 16, available: 16)
            seen.formUnion(draws)
            repeats += 16 - Set(draws).count
        }
        XCTAssertEqual(seen, Set(0..<16))
        XCTAssertGreaterThan(repeats, 0)

        // Every query of a step uses the same draw vector on its own top K; a query's result does
        // not depend on which other queries share the batch (as when ranks split it).
        let h = 6, n = 40
        let docs = DocumentVectors(count: n, hidden: h, rows: Self.randomValues(n * 2 * h, seed: 3))
        let scorer = PairHeadScorer(heads: Self.randomHeads(hidden: h, seed: 4), documents: docs)
        let t = Self.randomValues(3 * h, seed: 5), e = Self.randomValues(3 * h, seed: 6)
        let all = try retrieve(QueryFeatures(hidden: h, t: t, e: e, labels: [0, 1, 2]), scorer: scorer, k: 5, seed: 7, step: 9)
        let draws = RetrievalDraws.positions(seed: 7, step: 9, count: 5, available: 5)
        for (q, r) in all.enumerated() {
            XCTAssertEqual(r.top.map(\.rank), Array(0..<5))
            XCTAssertEqual(r.drawn, draws.map { r.top[$0] }, "query \(q)")
            let alone = try retrieve(QueryFeatures(hidden: h, t: Array(t[(q * h)..<((q + 1) * h)]), e: Array(e[(q * h)..<((q + 1) * h)]),
                                                   labels: [q]), scorer: scorer, k: 5, seed: 7, step: 9)
            XCTAssertEqual(alone, [r])
        }
        XCTAssertThrowsError(try retrieve(QueryFeatures(hidden: h, t: t, e: e, labels: [0, 1, 2]), scorer: scorer, k: 0, seed: 7, step: 9))

        // Queries from gathered [t | e] rows are the same queries.
        var rows: [Float] = []
        for q in 0..<3 {
            rows += t[(q * h)..<((q + 1) * h)]
            rows += e[(q * h)..<((q + 1) * h)]
        }
        let fromRows = QueryFeatures(hidden: h, rows: rows, labels: [0, 1, 2])
        XCTAssertEqual(fromRows.t, t)
        XCTAssertEqual(fromRows.e, e)
    }

    func testCrossClassOverlapMeasuresSharedTopListsOfDifferentClasses() {
        func retrieval(_ docs: [Int]) -> QueryRetrieval {
            let top = docs.enumerated().map { RetrievedDocument(document: $1, score: 0, rank: $0) }
            return QueryRetrieval(top: top, drawn: top)
        }
        let r = [retrieval([1, 2, 3, 4]), retrieval([1, 2, 3, 4]), retrieval([3, 4, 5, 6]), retrieval([7, 8, 9, 10])]
        // Pairs of different labels: (0,2) 2/4, (0,3) 0, (1,2) 2/4, (1,3) 0, (2,3) 0 → 1/5. (0,1) share a label.
        XCTAssertEqual(crossClassOverlap(r, labels: [0, 0, 1, 2])!, 0.2, accuracy: 1e-12)
        XCTAssertNil(crossClassOverlap(r, labels: [1, 1, 1, 1]))
    }

    // MARK: Index file

    func testIndexRoundTripsInFloat32AndFloat16() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let h = 10, n = 37
        let vectors = DocumentVectors(count: n, hidden: h, rows: Self.randomValues(n * 2 * h, seed: 9).map { $0 * 5 })
        let documents = Self.documents(n)
        let corpus = SHA256.hash(Array("corpus".utf8)), model = SHA256.hash(Array("model".utf8))
        for precision in VectorPrecision.allCases {
            let url = dir.appendingPathComponent("index-\(precision.rawValue).bin")
            try CorpusIndex.write(vectors, documents: documents, precision: precision, maxLength: 100,
                                  corpusDigest: corpus, modelDigest: model, to: url)
            let index = try CorpusIndex(contentsOf: url, expecting: CorpusIndexExpectation(hidden: h, count: n, maxLength: 100,
                                                                                           corpusDigest: corpus, modelDigest: model))
            XCTAssertEqual(index.header.precision, precision)
            XCTAssertEqual(index.header.textBytes, documents.reduce(0) { $0 + $1.text.utf8.count })
            let back = index.vectors()
            switch precision {
            case .float32:
                XCTAssertEqual(back, vectors)
            case .float16:
                for (x, y) in zip(back.rows, vectors.rows) { XCTAssertLessThanOrEqual(abs(x - y), 1e-3 * abs(y) + 1e-7) }
                XCTAssertEqual(back, vectors.rounded(to: .float16), "the file holds what rounded(to:) gives")
            }
            for d in 0..<n {
                XCTAssertEqual(index.text(of: d), documents[d].text)
                XCTAssertEqual(index.line(of: d), documents[d].line)
            }
            // The scorer reads the mapped file as it reads the vectors in memory.
            let heads = Self.randomHeads(hidden: h, seed: 2)
            XCTAssertEqual(PairHeadScorer(heads: heads, documents: index).taskDocumentParts,
                           PairHeadScorer(heads: heads, documents: back).taskDocumentParts)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())").path))
        }
        // An empty pool makes a valid (empty) index.
        let empty = dir.appendingPathComponent("empty.bin")
        try CorpusIndex.write(DocumentVectors(count: 0, hidden: h, rows: []), documents: [], precision: .float32, maxLength: 100,
                              corpusDigest: corpus, modelDigest: model, to: empty)
        XCTAssertEqual(try CorpusIndex(contentsOf: empty).count, 0)
    }

    func testDamagedOrMismatchedIndexIsAnErrorNamingTheFile() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let h = 8, n = 20
        let url = dir.appendingPathComponent("corpus.index")
        let corpus = SHA256.hash(Array("corpus".utf8)), model = SHA256.hash(Array("model".utf8))
        try CorpusIndex.write(DocumentVectors(count: n, hidden: h, rows: Self.randomValues(n * 2 * h, seed: 1)),
                              documents: Self.documents(n), precision: .float16, maxLength: 64,
                              corpusDigest: corpus, modelDigest: model, to: url)
        let good = try Data(contentsOf: url)
        let damaged = dir.appendingPathComponent("damaged.index")

        func expectError(_ bytes: Data, _ what: String, _ matches: (CorpusIndexError) -> Bool) throws {
            try bytes.write(to: damaged)
            XCTAssertThrowsError(try CorpusIndex(contentsOf: damaged), what) { error in
                guard let e = error as? CorpusIndexError else { return XCTFail("\(what): \(error)") }
                XCTAssertTrue(matches(e), "\(what): \(e)")
                XCTAssertTrue(e.description.contains(damaged.path), "\(what): the message names the file: \(e)")
            }
        }
        try expectError(good.prefix(good.count - 5), "truncated payload") { if case .truncated = $0 { return true }; return false }
        try expectError(good.prefix(100), "truncated header") { if case .truncated = $0 { return true }; return false }
        try expectError(Data(), "empty file") { if case .truncated = $0 { return true }; return false }
        try expectError(good + Data([0]), "trailing byte") { if case .corrupt = $0 { return true }; return false }
        var flipped = good
        flipped[200] ^= 0x10
        try expectError(flipped, "flipped payload bit") { if case .corrupt = $0 { return true }; return false }
        flipped = good
        flipped[50] ^= 0x01
        try expectError(flipped, "flipped header bit") { if case .corrupt = $0 { return true }; return false }
        flipped = good
        flipped[0] = UInt8(ascii: "X")
        try expectError(flipped, "bad magic") { if case .corrupt = $0 { return true }; return false }
        flipped = good
        flipped[8] = 9
        try expectError(flipped, "other version") { if case .mismatch(_, "format version", _, _) = $0 { return true }; return false }

        XCTAssertThrowsError(try CorpusIndex(contentsOf: url, expecting: CorpusIndexExpectation(modelDigest: corpus))) { error in
            XCTAssertTrue("\(error)".contains(url.path) && "\(error)".contains("model"), "\(error)")
        }
        XCTAssertThrowsError(try CorpusIndex(contentsOf: url, expecting: CorpusIndexExpectation(hidden: 384))) { error in
            XCTAssertEqual(error as? CorpusIndexError, .mismatch(file: url.path, field: "hidden size", expected: "384", found: "8"))
        }
        XCTAssertThrowsError(try CorpusIndex(contentsOf: dir.appendingPathComponent("missing.index"))) { error in
            XCTAssertTrue("\(error)".contains("missing.index"), "\(error)")
        }
    }

    // MARK: The prototype scorer

    func testPrototypeScorerEqualsTheDirectCosineFormula() throws {
        let h = 9, n = 120, c = 3, lambda: Float = 0.7
        let docs = DocumentVectors(count: n, hidden: h, rows: Self.randomValues(n * 2 * h, seed: 21))
        let labels = [0, 1, 2, 0, 1, 2, 2, 0]
        let labelled = Self.randomValues(labels.count * h, seed: 22).map { $0 * 3 }
        let prototypes = try ClassPrototypes(classVectors: labelled, labels: labels, classes: c, hidden: h)
        let scorer = PrototypeScorer(documents: docs, prototypes: prototypes, lambda: lambda)
        let queries = QueryFeatures(hidden: h, t: Self.randomValues(4 * h, seed: 23), e: Self.randomValues(4 * h, seed: 24),
                                    labels: [2, 0, 1, 1])
        var scores = [Float](repeating: 0, count: 4 * n)
        scorer.scores(queries, into: &scores)

        func cosine(_ a: [Double], _ b: [Double]) -> Double {
            let dot = zip(a, b).map(*).reduce(0, +)
            return dot / (a.map { $0 * $0 }.reduce(0, +).squareRoot() * b.map { $0 * $0 }.reduce(0, +).squareRoot())
        }
        func unit(_ a: [Double]) -> [Double] { let s = a.map { $0 * $0 }.reduce(0, +).squareRoot(); return a.map { $0 / s } }
        // Prototype = direction of the mean of the unit class vectors.
        var proto = [[Double]](repeating: [Double](repeating: 0, count: h), count: c)
        for (i, y) in labels.enumerated() {
            let u = unit(labelled[(i * h)..<((i + 1) * h)].map(Double.init))
            for j in 0..<h { proto[y][j] += u[j] }
        }
        assertClose("prototypes", prototypes.vectors, proto.flatMap { unit($0) }.map { Float($0) }, tolerance: 1e-6)
        var reference = [Float]()
        for q in 0..<4 {
            let tq = queries.t[(q * h)..<((q + 1) * h)].map(Double.init), y = queries.labels[q]
            for d in 0..<n {
                let td = docs.classVector(d).map(Double.init)
                let rival = (0..<c).filter { $0 != y }.map { cosine(proto[$0], td) }.max()!
                reference.append(Float(cosine(tq, td) + Double(lambda) * (cosine(proto[y], td) - rival)))
            }
        }
        assertClose("prototype scores vs direct cosines", scores, reference, tolerance: 1e-5)

        XCTAssertThrowsError(try ClassPrototypes(classVectors: labelled, labels: labels.map { $0 == 1 ? 0 : $0 }, classes: c, hidden: h)) {
            XCTAssertTrue("\($0)".contains("class 1"), "\($0)")
        }
        // One class: the margin is the cosine to its prototype.
        let single = try ClassPrototypes(classVectors: labelled, labels: labels.map { _ in 0 }, classes: 1, hidden: h)
        let one = PrototypeScorer(documents: docs, prototypes: single, lambda: 1)
        let p0 = single.vectors.map(Double.init)
        XCTAssertEqual(Double(one.margins[5]), cosine(p0, docs.classVector(5).map(Double.init)), accuracy: 1e-6)
        XCTAssertEqual(try JSONDecoder().decode(ClassPrototypes.self, from: JSONEncoder().encode(prototypes)), prototypes)
    }

    // MARK: Corpus encoding

    static let tinyConfig = BertConfig(vocabSize: 40, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
                                       intermediateSize: 32, maxPositionEmbeddings: 32)

    /// `n` sequences [CLS] pieces [SEP] of lengths 2…15 (ids: 2 = [CLS], 3 = [SEP], pieces ≥ 4).
    static func randomEncodings(_ n: Int, seed: UInt64) -> [Encoding] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in
            let pieces = (0..<rng.nextInt(below: 14)).map { _ in Int32(4 + rng.nextInt(below: 36)) }
            let ids = [2] + pieces + [3]
            return Encoding(ids: ids, tokenTypeIds: [Int32](repeating: 0, count: ids.count))
        }
    }

    func testBatchedCorpusEncodingEqualsEncodingEachDocumentAlone() throws {
        let model = BertClassifier(config: Self.tinyConfig, numLabels: 2, seed: 11)
        let encodings = Self.randomEncodings(23, seed: 12)
        let h = Self.tinyConfig.hiddenSize
        // A small token budget: several length-sorted batches of several documents each.
        let encoder = DocumentEncoder(model: model, separatorId: 3, paddingId: 0, tokensPerBatch: 48)
        let vectors = try encoder.encode(encodings, communicator: SingleProcessCommunicator())
        var reference = [Float]()
        for encoding in encodings {
            let batch = try TokenBatch(sequences: [encoding.ids], sepId: 3)
            try model.forward(batch, dropout: .off(batch: 1))
            var t = [Float](repeating: 0, count: h), e = t
            model.sentenceFeatures(batch, t: &t, e: &e)
            reference += t + e
        }
        assertClose("batched corpus vectors vs each document alone", vectors.rows, reference, tolerance: 1e-5)
        // A shard encodes its rows in order.
        let shard = try encoder.encodeLocally(encodings, rows: 5..<14)
        assertClose("shard 5..<14", shard, Array(reference[(5 * 2 * h)..<(14 * 2 * h)]), tolerance: 1e-5)
    }

    func testStageTwoWritesAnIndexThatMatchesThePoolAndTheModel() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let corpus = dir.appendingPathComponent("corpus.txt")
        let lines = ["a b a b a", "", "a", "b b b b b b b b b b b b", "  a a a a  ", "a b c", "b a b a b a b"]
        try (lines.joined(separator: "\n") + "\n").write(to: corpus, atomically: true, encoding: .utf8)
        let tokenizer = try WordPieceTokenizer(vocabulary: WordPieceVocabulary(tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"]),
                                               config: WordPieceConfig())
        let (pool, stats) = try CorpusPool.load(url: corpus, tokenizer: tokenizer, minimumTokens: 3, limit: 3, maxLength: 6)
        XCTAssertEqual(pool.documents, [CorpusLine(text: "a b a b a", line: 1), CorpusLine(text: "b b b b b b b b b b b b", line: 4),
                                        CorpusLine(text: "a a a a", line: 5)])
        XCTAssertEqual(stats.belowMinimumTokens, 1)
        XCTAssertEqual(pool.encodings[1].ids, [2, 5, 5, 5, 5, 3], "truncated to max length with [CLS] and [SEP]")
        XCTAssertEqual(pool.encodings, pool.documents.map { tokenizer.encode($0.text, maxLength: 6) })
        XCTAssertEqual(CorpusPool(documents: pool.documents, tokenizer: tokenizer, maxLength: 6).digest, pool.digest)
        var edited = pool.documents
        edited[2].text = "a a a b"
        XCTAssertNotEqual(CorpusPool(documents: edited, tokenizer: tokenizer, maxLength: 6).digest, pool.digest)

        let model = BertClassifier(config: Self.tinyConfig, numLabels: 2, seed: 4)
        let encoder = DocumentEncoder(model: model, separatorId: tokenizer.separatorId, paddingId: tokenizer.paddingId)
        let url = dir.appendingPathComponent("corpus.index")
        let vectors = try buildCorpusIndex(pool: pool, encoder: encoder, communicator: SingleProcessCommunicator(),
                                           precision: .float16, url: url)
        let digest = encoderDigest(model)
        let index = try CorpusIndex(contentsOf: url, expecting: CorpusIndexExpectation(hidden: 16, count: 3, maxLength: 6,
                                                                                       corpusDigest: pool.digest, modelDigest: digest))
        XCTAssertEqual(index.vectors(), vectors, "every rank retrieves from the numbers the file holds")
        XCTAssertEqual(index.text(of: 1), pool.documents[1].text)
        // Another model's weights are refused.
        model.parameters.values[3] += 1
        XCTAssertNotEqual(encoderDigest(model), digest)
        XCTAssertThrowsError(try CorpusIndex(contentsOf: url, expecting: CorpusIndexExpectation(modelDigest: encoderDigest(model))))
    }

    /// The real model on real corpus lines: batched, length-sorted encoding equals each document
    /// alone (padding invariance at H = 384), and the throughput is printed for the record.
    func testMiniLMPoolEncodingIsPaddingInvariant() throws {
        let dir = try TestPaths.miniLM()
        let corpus = TestPaths.root.appendingPathComponent("assets/corpus/rotten_tomatoes.txt")
        guard FileManager.default.fileExists(atPath: corpus.path) else { throw XCTSkip("\(corpus.path) is missing; run scripts/setup.sh") }
        let tokenizer = try WordPieceTokenizer(modelDirectory: dir)
        let model = try BertClassifier(modelDirectory: dir, numLabels: 2)
        let (pool, _) = try CorpusPool.load(url: corpus, tokenizer: tokenizer, limit: 64)
        XCTAssertEqual(pool.count, 64)
        XCTAssertTrue(pool.encodings.allSatisfy { $0.count >= 17 && $0.count <= 100 })
        let encoder = DocumentEncoder(model: model, separatorId: tokenizer.separatorId, paddingId: tokenizer.paddingId)
        // CPU time as well as wall time: on a shared machine the wall time says little.
        func cpuSeconds() -> Double { Double(clock()) / Double(CLOCKS_PER_SEC) }
        let start = Date(), cpuStart = cpuSeconds()
        let vectors = try encoder.encode(pool.encodings, communicator: SingleProcessCommunicator())
        let seconds = Date().timeIntervalSince(start), cpu = cpuSeconds() - cpuStart
        let digestStart = cpuSeconds()
        _ = encoderDigest(model)
        let tokens = pool.encodings.map(\.count).reduce(0, +)
        print(String(format: "MiniLM pool encoding: %d docs (%d tokens, max length 100) in %.2f s wall, %.2f s CPU: %.1f docs/s per CPU second; encoder SHA-256 %.2f s CPU",
                     pool.count, tokens, seconds, cpu, Double(pool.count) / cpu, cpuSeconds() - digestStart))
        let h = model.config.hiddenSize
        let byLength = pool.encodings.indices.sorted { pool.encodings[$0].count < pool.encodings[$1].count }
        for d in [byLength[0], byLength[31], byLength[63]] {
            let alone = try encoder.encodeLocally([pool.encodings[d]], rows: 0..<1)
            assertClose("MiniLM document \(d) (\(pool.encodings[d].count) tokens) batched vs alone",
                        Array(vectors.rows[(d * 2 * h)..<((d + 1) * 2 * h)]), alone, tolerance: 1e-5)
        }
    }

    // MARK: Augmented set, schedule, log

    func testAugmentedSetPutsEachQuerysDrawsBeforeItWithItsLabel() {
        func retrieval(_ docs: [Int]) -> QueryRetrieval {
            let top = docs.enumerated().map { RetrievedDocument(document: $1, score: Float(10 - $0), rank: $0) }
            return QueryRetrieval(top: top, drawn: [top[1], top[0], top[1]])
        }
        let m = AugmentedSet(queryLabels: [2, 0], retrievals: [retrieval([7, 8, 9]), retrieval([1, 2, 3])])
        XCTAssertEqual(m.count, 2 * (3 + 1))
        XCTAssertEqual(m.items.map(\.source), [.document(8), .document(7), .document(8), .query(0),
                                               .document(2), .document(1), .document(2), .query(1)])
        XCTAssertEqual(m.items.map(\.label), [2, 2, 2, 2, 0, 0, 0, 0])
        XCTAssertEqual(m.rowsPerRank(worldSize: 3), [3, 3, 2])
        XCTAssertEqual((0..<3).flatMap { Array(m.localRows(rank: $0, worldSize: 3)) }, Array(0..<8))
    }

    func testRefreshScheduleFollowsRankZerosDecision() throws {
        var schedule = RetrievalSchedule(refreshEvery: 3)
        let comm = SingleProcessCommunicator()
        var refreshed: [Int] = []
        for step in 0..<10 where try schedule.agreeOnRefresh(step: step, communicator: comm) { refreshed.append(step) }
        XCTAssertEqual(refreshed, [3, 6, 9])
        XCTAssertEqual(schedule.lastRefreshStep, 9)
        let saved = try JSONDecoder().decode(RetrievalSchedule.self, from: JSONEncoder().encode(schedule))
        XCTAssertEqual(saved, schedule)
        XCTAssertFalse(RetrievalSchedule(refreshEvery: 0).isDue(step: 1_000))
    }

    func testRetrievedSentencesLogHoldsTheLastCompletedEpoch() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("retrieved.jsonl")
        let log = RetrievedSentencesLog(url: url)
        let documents = Self.documents(5)
        let top = [RetrievedDocument(document: 4, score: 2.5, rank: 0), RetrievedDocument(document: 1, score: 1.25, rank: 1)]
        let retrieval = QueryRetrieval(top: top, drawn: [top[1], top[1]])
        for epoch in 0..<2 {
            try log.beginEpoch()
            try log.record(epoch: epoch, step: 10 * epoch, query: "the query \(epoch)", label: 1, labelName: "pos",
                           retrieval: retrieval, documents: documents)
            try log.endEpoch()
        }
        try log.beginEpoch()   // an unfinished epoch does not replace the last complete one
        try log.record(epoch: 2, step: 20, query: "unfinished", label: 0, retrieval: retrieval, documents: documents)
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 1)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        XCTAssertEqual(object["query"] as? String, "the query 1")
        XCTAssertEqual(object["label_name"] as? String, "pos")
        let retrieved = try XCTUnwrap(object["retrieved"] as? [[String: Any]])
        XCTAssertEqual(retrieved.map { $0["doc"] as? Int }, [1, 1])
        XCTAssertEqual(retrieved[0]["score"] as? Double, 1.25)
        XCTAssertEqual(retrieved[0]["text"] as? String, documents[1].text)
        XCTAssertEqual(retrieved[0]["line"] as? Int, documents[1].line)
    }
}

extension DistributedTests {
    /// The `retrieval` scenario: the sharded corpus encoding equals each document encoded alone,
    /// and the draws, the retrieved documents and the refresh decisions are the same on every rank.
    func testRetrievalEncodingDrawsAndRefreshAgreeOnOneTwoAndThreeRanks() throws {
        _ = try report("retrieval", ranks: nil, arguments: ["--single"])
        var draws: [Int]?
        for ranks in [nil, 2, 3] {
            let r = try report("retrieval", ranks: ranks)
            XCTAssertLessThanOrEqual(try XCTUnwrap(r["encoding_rel_error"] as? Double), 1e-5)
            XCTAssertEqual(r["refresh_steps"] as? [Int], [3, 6, 9])
            let these = try XCTUnwrap(r["drawn"] as? [Int])
            if let draws { XCTAssertEqual(these, draws, "retrieved documents at \(ranks ?? 1) ranks") }
            draws = these
        }
    }
}
