// The retrieval scenario: stage 2's sharded corpus encoding gathered to every rank (and rank 0's
// copy broadcast) equals each document encoded alone, and stage 3's draw vector, retrieved
// documents and refresh decisions are the same on every rank (checked with an allreduce), whatever
// the world size.
import CSSLM
import Foundation

func retrievalScenario(_ comm: Communicator) throws -> [String: Any] {
    let checks = Checks(rank: comm.rank)
    let config = BertConfig(vocabSize: 40, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
                            intermediateSize: 32, maxPositionEmbeddings: 32)
    let h = config.hiddenSize
    let model = BertClassifier(config: config, numLabels: 2, extraHeads: retrievalHeadTensors(hidden: h), seed: 11)
    // 11 documents of 0…13 words (2…15 tokens): uneven shards at W = 2 and 3.
    let words = (4..<40).map { "w\($0)" }
    let tokenizer = try WordPieceTokenizer(vocabulary: WordPieceVocabulary(tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + words),
                                           config: WordPieceConfig())
    var rng = SplitMix64(seed: 12)
    let encodings = (0..<11).map { _ -> Encoding in
        let text = (0..<rng.nextInt(below: 14)).map { _ in words[rng.nextInt(below: words.count)] }.joined(separator: " ")
        return tokenizer.encode(text)
    }
    let vectors = try DocumentEncoder(model: model, separatorId: 3, paddingId: 0, tokensPerBatch: 24)
        .encode(encodings, communicator: comm)
    // Reference: every document alone (a budget of one token makes batches of one), this process only.
    let alone = try DocumentEncoder(model: model, separatorId: 3, paddingId: 0, tokensPerBatch: 1)
        .encodeLocally(encodings, rows: 0..<encodings.count)
    let error = relativeError(vectors.rows.map(Double.init), alone.map(Double.init))
    try checks.expect(error <= 1e-5, "gathered vectors differ from each document alone: relative error \(error)")

    // Rank 0's copy broadcast (a resume without a shared file system) equals the gathered one.
    let broadcast = try DocumentVectors.fromRoot(comm.rank == 0 ? vectors : nil, communicator: comm)
    try checks.expect(broadcast == vectors, "vectors broadcast from rank 0 differ from the gathered ones")

    // Retrieval of 3 queries against the gathered pool; the result's fingerprint must agree.
    let scorer = PairHeadScorer(heads: try RetrievalHeads(parameters: model.parameters, hidden: h), documents: vectors)
    let queries = QueryFeatures(hidden: h, t: uniformValues(count: 3 * h, seed: 1, stream: 0),
                                e: uniformValues(count: 3 * h, seed: 1, stream: 1), labels: [0, 1, 0])
    let retrievals = try retrieve(queries, scorer: scorer, k: 4, seed: 5, step: 17)
    // The prototype scorer too, prototypes from the first 6 documents as if labelled.
    let prototypes = try ClassPrototypes(classVectors: Array(vectors.classVectors()[0..<(6 * h)]), labels: [0, 1, 0, 1, 0, 1],
                                         classes: 2, hidden: h)
    let byPrototype = try retrieve(queries, scorer: PrototypeScorer(documents: vectors, prototypes: prototypes),
                                   k: 4, seed: 5, step: 17)
    let drawn = (retrievals + byPrototype).flatMap { $0.drawn.map { $0.document } }
    let draws = RetrievalDraws.positions(seed: 5, step: 17, count: 4, available: 4)
    for (i, value) in (drawn + draws).enumerated() {
        try comm.checkSameOnAllRanks(value, what: "retrieval value \(i)")
    }
    try checks.expect((retrievals + byPrototype).allSatisfy { r in r.drawn == draws.map { r.top[$0] } }, "draws do not index the top K")

    // Rank 0 refreshes every 3 steps; the other ranks' own rule (every step) must not matter.
    var schedule = RetrievalSchedule(refreshEvery: comm.rank == 0 ? 3 : 1)
    var refreshed: [Int] = []
    for step in 0..<10 where try schedule.agreeOnRefresh(step: step, communicator: comm) { refreshed.append(step) }
    try checks.expect(refreshed == [3, 6, 9], "refresh steps \(refreshed)")
    return ["checks": checks.count, "encoding_rel_error": error, "drawn": drawn, "refresh_steps": refreshed]
}
