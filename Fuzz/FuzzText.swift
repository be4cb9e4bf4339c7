// Fuzz targets for the tokenizer: vocab.txt, the JSON config files, and text through the tokenizer.
import Foundation

/// A small vocabulary with what the tokenizer's paths need: special tokens, word starts and
/// continuations, punctuation, accents, CJK, Greek sigmas and an emoji.
let fuzzVocabularyTokens: [String] = {
    var tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "un", "##aff", "##able", "never",
                  "é", "##é", "e", "##e", "中", "文", "σ", "ς", "😀", "##s", "##ing", "hello", "world"]
    for c in "abcdefghijklmnopqrstuvwxyz0123456789" { tokens += [String(c), "##\(c)"] }
    for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" { tokens.append(String(c)) }
    return tokens
}()

private let fuzzVocabulary = WordPieceVocabulary(tokens: fuzzVocabularyTokens)

/// Every id is the vocabulary's, or an added token's.
private func checkIds(_ ids: [Int32], _ tokenizer: WordPieceTokenizer, _ what: String) {
    let added = Set(tokenizer.config.addedTokens.values)
    for id in ids {
        check((id >= 0 && Int(id) < tokenizer.vocabulary.count) || added.contains(id),
              "\(what): id \(id) is neither in the vocabulary (\(tokenizer.vocabulary.count)) nor an added token")
    }
}

/// The bytes as vocab.txt: every token finds its own line's id; a tokenizer over it (specials
/// taken from its first tokens) splits the vocabulary's own text into valid ids.
func fuzzVocabulary(_ input: [UInt8]) throws {
    let vocabulary = try WordPieceVocabulary(contentsOf: scratchFile("vocab.txt", input))
    check(vocabulary.count <= InputLimits.maxVocabularySize, "\(vocabulary.count) tokens passed the limit")
    for (i, token) in vocabulary.tokens.enumerated() where !token.isEmpty {
        check(vocabulary.id(of: token) == Int32(i), "token \(String(reflecting: token)) on line \(i + 1) looks up \(String(describing: vocabulary.id(of: token)))")
    }
    let named = vocabulary.tokens.filter { !$0.isEmpty }
    guard !named.isEmpty else { return }
    var config = WordPieceConfig()
    config.unknownToken = named[0]
    config.classifierToken = named[min(1, named.count - 1)]
    config.separatorToken = named[min(2, named.count - 1)]
    config.paddingToken = named[min(3, named.count - 1)]
    config.maskToken = nil
    let tokenizer = try WordPieceTokenizer(vocabulary: vocabulary, config: config)
    let text = named.prefix(64).joined(separator: " ") + " " + named.prefix(16).joined()
    checkIds(tokenizer.ids(of: text), tokenizer, "vocab text")
}

/// The bytes, split at 0xFF, as tokenizer.json, tokenizer_config.json and special_tokens_map.json
/// (an empty part: no such file) beside a fixed vocab.txt; a tokenizer that loads gives valid ids.
func fuzzTokenizerConfig(_ input: [UInt8]) throws {
    let folder = scratch.appendingPathComponent("model", isDirectory: true)
    if !FileManager.default.fileExists(atPath: folder.path) {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        _ = scratchFile("model/vocab.txt", Array(fuzzVocabularyTokens.joined(separator: "\n").utf8))
    }
    let names = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
    for (name, part) in zip(names, splitAtFF(input, parts: 3) + Array(repeating: [], count: 3)) {
        if part.isEmpty { removeScratchFile("model/\(name)") } else { _ = scratchFile("model/\(name)", part) }
    }
    let tokenizer = try WordPieceTokenizer(modelDirectory: folder)
    let text = "[CLS] Héllo, wörld! 中文 ΣΑΣ [MASK] unaffable never-split \u{200B}[SEP] x\u{0}y"
    checkIds(tokenizer.ids(of: text), tokenizer, "config text")
    checkIds(tokenizer.encode(text, pair: text, maxLength: 16).ids, tokenizer, "config pair")
}

/// Arbitrary bytes through the tokenizer. Byte 0 picks the normalizer flags, byte 1 the maximum
/// length (0: none); the rest, split at the first 0xFF, is the text and an optional pair (invalid
/// UTF-8 repaired to U+FFFD, as `String(decoding:)` does for any caller).
func fuzzTokenizer(_ input: [UInt8]) throws {
    guard input.count >= 2 else { return }
    let flags = input[0]
    var config = WordPieceConfig()
    config.lowercase = flags & 1 != 0
    config.stripAccents = flags & 2 != 0 ? nil : flags & 4 != 0
    config.cleanText = flags & 8 != 0
    config.splitCJKCharacters = flags & 16 != 0
    config.unicodeVersionLimit = flags & 32 != 0 ? (14, 0) : nil
    config.maxInputCharsPerWord = flags & 64 != 0 ? 3 : 100
    if flags & 128 != 0 {
        config.addedTokens = ["<extra>": Int32(fuzzVocabulary.count), "hello": 7]
        config.neverSplit = ["never", "N.S."]
        config.additionalSpecialTokens = ["[SEP]x"]
    }
    let tokenizer = try WordPieceTokenizer(vocabulary: fuzzVocabulary, config: config)
    let maxLength = input[1] == 0 ? nil : Int(input[1])
    let parts = splitAtFF(Array(input[2...]), parts: 2)
    let text = String(decoding: parts[0], as: UTF8.self)
    let pair = parts.count > 1 ? String(decoding: parts[1], as: UTF8.self) : nil

    let ids = tokenizer.ids(of: text)
    checkIds(ids, tokenizer, "ids")
    check(tokenizer.tokenize(text) == ids.map(tokenizer.token(for:)), "tokenize differs from ids")
    for special in [true, false] {
        let encoding = tokenizer.encode(text, pair: pair, maxLength: maxLength, addSpecialTokens: special)
        checkIds(encoding.ids, tokenizer, "encode")
        check(encoding.tokenTypeIds.count == encoding.ids.count, "token types and ids differ in length")
        let specials = special ? (pair == nil ? 2 : 3) : 0
        if let maxLength, maxLength >= specials {
            check(encoding.count <= maxLength, "\(encoding.count) tokens exceed max length \(maxLength)")
        }
        if special {
            check(encoding.ids.first == tokenizer.classifierId && encoding.ids.last == tokenizer.separatorId,
                  "special tokens missing around \(encoding.ids)")
        }
    }
    // The padded batch the encoder takes: rows of the two encodings, padded to the longer one.
    let rows = [text, pair ?? ""].map { tokenizer.encode($0, maxLength: max(maxLength ?? 0, 2)) }
    if let batch = try? TokenBatch(sequences: rows.map(\.ids), typeIds: rows.map(\.tokenTypeIds),
                                   padId: tokenizer.paddingId, sepId: tokenizer.separatorId) {
        let t = rows.map(\.count).max()!
        check(batch.ids.count == 2 * t && batch.mask.count == 2 * t
              && zip(rows, 0...).allSatisfy { row, r in batch.mask[(r * t)..<(r * t + t)].reduce(0, +) == Float(row.count) },
              "batch shape \(batch.batch)x\(batch.seqLen) for rows of \(rows.map(\.count)) tokens")
    } else {
        check(false, "a row without [SEP]: \(rows.map(\.ids))")
    }
}
