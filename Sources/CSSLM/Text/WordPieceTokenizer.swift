// The uncased BERT WordPiece tokenizer, token for token the same as HF's Python BertTokenizer:
// BasicTokenizer (cleaning, CJK, lowercase, accents, punctuation) then greedy longest-match-first
// WordPiece with "##" continuations; a word longer than 100 scalars, or one with a part no piece
// matches, becomes [UNK]. Special tokens, pairs, truncation and padding are in
// WordPieceTokenizer+Encoding.swift.
import Foundation

/// A BERT WordPiece tokenizer loaded from a Hugging Face model folder.
///
/// ```swift
/// let tok = try WordPieceTokenizer(modelDirectory: URL(fileURLWithPath: "assets/models/all-MiniLM-L6-v2"))
/// tok.tokenize("Héllo, world!")            // ["hello", ",", "world", "!"]
/// tok.encode("Héllo", maxLength: 128).ids  // [101, 7592, 102]
/// ```
public struct WordPieceTokenizer: Sendable {
    public let config: WordPieceConfig
    public let vocabulary: WordPieceVocabulary
    public let unknownId: Int32
    public let classifierId: Int32
    public let separatorId: Int32
    public let paddingId: Int32
    let basic: BasicTokenizer
    /// Added tokens whose ids lie outside `vocab.txt`, for turning ids back into strings.
    let addedTokenNames: [Int32: String]

    /// Loads `vocab.txt` and whichever of `tokenizer_config.json`, `special_tokens_map.json` and
    /// `tokenizer.json` the folder has. Errors name the file and the line or field.
    public init(modelDirectory: URL) throws {
        let config = try WordPieceConfig.load(modelDirectory: modelDirectory)
        let vocabURL = modelDirectory.appendingPathComponent("vocab.txt")
        let vocabulary = try WordPieceVocabulary(contentsOf: vocabURL,
                                                 continuingSubwordPrefix: config.continuingSubwordPrefix)
        try self.init(vocabulary: vocabulary, config: config, vocabularyPath: vocabURL.path)
    }

    /// A tokenizer from a vocabulary and settings already in memory.
    public init(vocabulary: WordPieceVocabulary, config: WordPieceConfig,
                vocabularyPath: String = "vocab.txt") throws {
        self.config = config
        self.vocabulary = vocabulary
        func id(_ token: String, role: String) throws -> Int32 {
            if let id = config.addedTokens[token] ?? vocabulary.id(of: token) { return id }
            throw TokenizerError.unknownSpecialToken(path: vocabularyPath, role: role, token: token)
        }
        let unknown = try id(config.unknownToken, role: "unk_token")
        unknownId = unknown
        classifierId = try id(config.classifierToken, role: "cls_token")
        separatorId = try id(config.separatorToken, role: "sep_token")
        paddingId = try id(config.paddingToken, role: "pad_token")
        // Verbatim tokens not known anywhere would become [UNK], as HF converts them.
        let verbatim = config.verbatimTokens.map { token in
            (token, config.addedTokens[token] ?? vocabulary.id(of: token) ?? unknown)
        }
        basic = BasicTokenizer(config: config, verbatimIds: verbatim)
        var names: [Int32: String] = [:]
        for (token, id) in config.addedTokens where Int(id) >= vocabulary.count { names[id] = token }
        addedTokenNames = names
    }

    /// The word pieces of `text`, without special tokens around them.
    public func tokenize(_ text: String) -> [String] {
        var ids: [Int32] = []
        appendIds(of: text, to: &ids)
        return ids.map(token(for:))
    }

    /// The token ids of `text`, without special tokens around them.
    public func ids(of text: String) -> [Int32] {
        var ids: [Int32] = []
        appendIds(of: text, to: &ids)
        return ids
    }

    /// The string of a token id (the unknown token for an id the vocabulary does not have).
    public func token(for id: Int32) -> String {
        if id >= 0 && Int(id) < vocabulary.count { return vocabulary.tokens[Int(id)] }
        return addedTokenNames[id] ?? config.unknownToken
    }

    /// Appends the ids of `text` (no special tokens around it) to `ids`.
    public func appendIds(of text: String, to ids: inout [Int32]) {
        var words = PreTokenized()
        words.bytes.reserveCapacity(text.utf8.count + 16)
        var text = text
        text.withUTF8 { basic.split($0, into: &words) }
        appendWordPieces(of: words, to: &ids)
    }

    /// WordPiece on every word: greedy longest match from the left, the first piece from the
    /// word-start table, the rest from the continuation table; any unmatched part, or more than
    /// `maxInputCharsPerWord` scalars, makes the whole word the unknown token.
    func appendWordPieces(of words: PreTokenized, to ids: inout [Int32]) {
        let maxChars = config.maxInputCharsPerWord
        let unknown = unknownId
        vocabulary.wordStart.withLookup { starts in
        vocabulary.continuation.withLookup { continues in
        words.bytes.withUnsafeBufferPointer { buffer in
            guard let bytes = buffer.baseAddress else {
                for w in words.words where w.id >= 0 { ids.append(w.id) }
                return
            }
            for w in words.words {
                if w.id >= 0 { ids.append(w.id); continue }
                let start = Int(w.start), end = Int(w.end)
                if w.id == PreToken.wholeWord {
                    let id = starts.find(bytes + start, end - start)
                    ids.append(id >= 0 ? id : unknown)
                    continue
                }
                var scalars = 0
                for k in start..<end where bytes[k] & 0xC0 != 0x80 { scalars += 1 }
                if scalars > maxChars { ids.append(unknown); continue }
                let mark = ids.count
                var s = start
                var table = starts
                while s < end {
                    var e = min(end, s + table.maxKeyLength)
                    var found: Int32 = -1
                    while e > s {
                        // A piece ends on a scalar boundary: never before a continuation byte.
                        if e == end || bytes[e] & 0xC0 != 0x80 {
                            found = table.find(bytes + s, e - s)
                            if found >= 0 { break }
                        }
                        e -= 1
                    }
                    if found < 0 {
                        ids.removeSubrange(mark...)
                        ids.append(unknown)
                        break
                    }
                    ids.append(found)
                    s = e
                    table = continues
                }
            }
        }
        }
        }
    }
}
