// The augmented set of a stage-3 step (docs/method.md#stages): for each query of the global batch, its
// K drawn documents (pseudo-labelled with the query's label) then the query itself, |M| = B(K+1).
// Every rank builds the same global M from the same retrievals; a row's place in M is its global
// example index (the dropout key), and each rank encodes its contiguous share, so the step does not
// depend on the world size. Also the run's "retrieved sentences of the last epoch" file.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One row of the augmented set.
public struct AugmentedItem: Equatable, Sendable {
    public enum Source: Equatable, Sendable {
        /// A labelled query: its row in the global batch.
        case query(Int)
        /// A retrieved document: its index in the pool.
        case document(Int)
    }

    public var source: Source
    /// The query's label, or the pseudo-label a retrieved document takes from its query.
    public var label: Int
}

/// M for one step, in global order.
///
/// ```swift
/// let m = AugmentedSet(queryLabels: globalLabels, retrievals: retrievals)
/// let mine = m.localRows(rank: comm.rank, worldSize: comm.size)      // encode these, dropout keys = row
/// let encodings = m.items[mine].map { item -> Encoding in
///     switch item.source {
///     case .query(let row): return train.encodings[global.datasetIndices[row]]
///     case .document(let d): return pool.encodings[d]
///     }
/// }
/// ```
public struct AugmentedSet: Equatable, Sendable {
    /// Row r of M is items[r].
    public let items: [AugmentedItem]

    /// `queryLabels[b]` and `retrievals[b]` belong to row b of the global batch.
    public init(queryLabels: [Int], retrievals: [QueryRetrieval]) {
        precondition(queryLabels.count == retrievals.count, "one retrieval per query")
        var items: [AugmentedItem] = []
        items.reserveCapacity(retrievals.reduce(0) { $0 + $1.drawn.count + 1 })
        for (b, retrieval) in retrievals.enumerated() {
            for doc in retrieval.drawn { items.append(AugmentedItem(source: .document(doc.document), label: queryLabels[b])) }
            items.append(AugmentedItem(source: .query(b), label: queryLabels[b]))
        }
        self.items = items
    }

    public var count: Int { items.count }

    /// The rows of M that `rank` encodes: contiguous, balanced (GlobalSampler.rankRows).
    public func localRows(rank: Int, worldSize: Int) -> Range<Int> {
        GlobalSampler.rankRows(batchSize: items.count, rank: rank, worldSize: worldSize)
    }

    /// Row counts of every rank, in rank order (the layout of the gathered features of M).
    public func rowsPerRank(worldSize: Int) -> [Int] {
        (0..<worldSize).map { localRows(rank: $0, worldSize: worldSize).count }
    }
}

/// The run's record of what each query retrieved, one JSON object a line, kept for the last
/// completed epoch: an epoch is written to a temporary file that replaces the previous one when
/// the epoch ends. Rank 0 alone writes it.
///
/// A line: `{"epoch":3,"step":41,"label":1,"label_name":"pos","query":"…","retrieved":[{"doc":812,
/// "line":1907,"rank":0,"score":2.31,"text":"…"},…]}`, the retrieved documents in draw order
/// (repeats included), `rank` their position in the query's top K.
public final class RetrievedSentencesLog {
    public let url: URL
    private var handle: FileHandle?
    private var temporary: URL { url.deletingLastPathComponent().appendingPathComponent("." + url.lastPathComponent + ".partial") }

    public init(url: URL) { self.url = url }

    deinit { try? handle?.close() }

    /// Starts a new epoch's file (discarding an unfinished one).
    public func beginEpoch() throws {
        try handle?.close()
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw CSSLMError("\(temporary.path): cannot create the retrieved-sentences file", hint: "check that the run folder exists")
        }
        handle = try FileHandle(forWritingTo: temporary)
    }

    /// Continues the unfinished epoch of a run resumed at `step`: keeps the lines of earlier steps
    /// (later ones were written after the checkpoint, and a torn last line is dropped) and appends
    /// after them; starts a new epoch's file when there is none.
    public func continueEpoch(before step: Int) throws {
        try handle?.close()
        handle = nil
        guard let data = FileManager.default.contents(atPath: temporary.path) else { return try beginEpoch() }
        var kept = Data()
        for line in data.split(separator: 0x0A) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let lineStep = object["step"] as? Int, lineStep < step else { continue }
            kept.append(contentsOf: line)
            kept.append(0x0A)
        }
        try writeAtomically(kept, to: temporary)
        handle = try FileHandle(forWritingTo: temporary)
        try handle?.seekToEnd()
    }

    /// Appends one query's retrieval.
    public func record(epoch: Int, step: Int, query: String, label: Int, labelName: String? = nil,
                       retrieval: QueryRetrieval, documents: [CorpusLine]) throws {
        guard let handle else { preconditionFailure("RetrievedSentencesLog.record before beginEpoch") }
        var object: [String: Any] = [
            "epoch": epoch, "step": step, "query": query, "label": label,
            "retrieved": retrieval.drawn.map { item -> [String: Any] in
                ["doc": item.document, "line": documents[item.document].line, "rank": item.rank,
                 "score": Double(item.score), "text": documents[item.document].text]
            },
        ]
        if let labelName { object["label_name"] = labelName }
        var data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        data.append(0x0A)
        try handle.write(contentsOf: data)
    }

    /// Ends the epoch: its file replaces the previous epoch's.
    public func endEpoch() throws {
        guard let handle else { return }
        try handle.synchronize()
        try handle.close()
        self.handle = nil
        try moveIntoPlace(temporary, url)
    }
}
