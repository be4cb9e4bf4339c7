// The unlabelled pool CSS-LM retrieves from: the first `limit` lines of the corpus file with at
// least `minimumTokens` word pieces (up to 40,000 lines of >= 15 tokens: docs/method.md#retrieval),
// each encoded once, truncated to `maxLength` tokens with [CLS] and [SEP]. Every rank loads the
// same pool (the texts are needed to encode retrieved sentences in stage 3), and its SHA-256 ties
// an index file to it.
import Foundation

/// The pool's documents, their model inputs and their identity.
///
/// ```swift
/// let (pool, stats) = try CorpusPool.load(url: URL(fileURLWithPath: "assets/corpus/general.txt"), tokenizer: tok)
/// log("[pool] \(pool.count) documents; \(stats.summary)")
/// ```
public struct CorpusPool: Sendable {
    public static let defaultLimit = 40_000
    public static let defaultMinimumTokens = 15
    public static let defaultMaxLength = 100

    /// The kept lines, with their 1-based line numbers in the file.
    public let documents: [CorpusLine]
    /// [CLS] pieces [SEP], truncated to `maxLength`, one per document.
    public let encodings: [Encoding]
    public let maxLength: Int
    /// SHA-256 over the document count, then each document's line number, byte length and bytes.
    public let digest: SHA256Digest

    public var count: Int { documents.count }

    /// Encodes `documents` (already selected) for the model.
    public init(documents: [CorpusLine], tokenizer: WordPieceTokenizer, maxLength: Int = CorpusPool.defaultMaxLength) {
        self.init(documents: documents, encodings: documents.map { tokenizer.encode($0.text, maxLength: maxLength) },
                  maxLength: maxLength)
    }

    private init(documents: [CorpusLine], encodings: [Encoding], maxLength: Int) {
        precondition(maxLength >= 2, "max length must leave room for [CLS] and [SEP]")
        self.documents = documents
        self.encodings = encodings
        self.maxLength = maxLength
        var hash = SHA256()
        hash.update(littleEndian: UInt64(documents.count))
        for document in documents {
            var text = document.text
            hash.update(littleEndian: UInt64(document.line))
            hash.update(littleEndian: UInt64(text.utf8.count))
            text.withUTF8 { hash.update(UnsafeRawBufferPointer($0)) }
        }
        digest = hash.finalize()
    }

    /// Reads the pool from a corpus file: the first `limit` non-blank lines with at least
    /// `minimumTokens` word pieces (special tokens not counted) that are not in `excluding`, each
    /// tokenized once.
    public static func load(url: URL, tokenizer: WordPieceTokenizer, minimumTokens: Int = defaultMinimumTokens,
                            limit: Int = defaultLimit, maxLength: Int = defaultMaxLength,
                            excluding: Set<String> = []) throws
        -> (pool: CorpusPool, stats: CorpusReadStats)
    {
        // The filter tokenizes every candidate; the pieces of the last one are kept so a kept line
        // is not tokenized a second time.
        var lastText = "", lastPieces: [Int32] = []
        let reader = try UnlabeledCorpusReader(url: url, minimumTokens: minimumTokens) { text in
            lastText = text
            lastPieces = tokenizer.ids(of: text)
            return lastPieces.count
        }
        var documents: [CorpusLine] = [], encodings: [Encoding] = []
        var excluded = 0
        while documents.count < limit, let line = try reader.next() {
            if excluding.contains(line.text) { excluded += 1; continue }
            documents.append(line)
            var pieces = line.text == lastText ? lastPieces : tokenizer.ids(of: line.text)
            var none: [Int32]?
            encodings.append(tokenizer.assemble(&pieces, &none, maxLength: maxLength, addSpecialTokens: true))
        }
        var stats = reader.stats
        stats.excluded = excluded
        stats.kept -= excluded
        return (CorpusPool(documents: documents, encodings: encodings, maxLength: maxLength), stats)
    }
}
