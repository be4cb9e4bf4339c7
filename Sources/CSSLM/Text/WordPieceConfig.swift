// Settings of a BERT WordPiece tokenizer, read from a Hugging Face model folder:
// `tokenizer.json` (the tokenizers library's normalizer flags, WordPiece parameters and added
// tokens), `tokenizer_config.json` (transformers' flags and special tokens) and
// `special_tokens_map.json`, in that order, a key in a later file overriding an earlier one, so
// that what the Python reference reads wins. Every file is optional; without any, the settings
// are those of the original uncased BERT.
import Foundation

/// How text becomes WordPiece tokens: the flags of HF's `BertTokenizer` / `BertNormalizer`.
public struct WordPieceConfig: Sendable {
    /// Lowercase the text (`do_lower_case`, `BertNormalizer.lowercase`).
    public var lowercase = true
    /// Strip accents (NFD, then drop nonspacing marks). `nil` follows `lowercase`, as in BERT.
    public var stripAccents: Bool? = nil
    /// Drop NUL, U+FFFD and control/format characters and turn whitespace kinds into spaces.
    public var cleanText = true
    /// Put every CJK ideograph in a word of its own (`tokenize_chinese_chars`).
    public var splitCJKCharacters = true
    public var unknownToken = "[UNK]"
    public var classifierToken = "[CLS]"
    public var separatorToken = "[SEP]"
    public var paddingToken = "[PAD]"
    public var maskToken: String? = "[MASK]"
    /// Further special tokens (`additional_special_tokens`); like the ones above they are
    /// recognised verbatim in the input and never split.
    public var additionalSpecialTokens: [String] = []
    /// Added tokens with their ids (`tokenizer.json` `added_tokens`, `added_tokens_decoder`);
    /// recognised verbatim in the input. An id here wins over the token's line in `vocab.txt`.
    public var addedTokens: [String: Int32] = [:]
    /// Words kept whole and looked up directly (`never_split`).
    public var neverSplit: [String] = []
    /// Prefix of word pieces that continue a word.
    public var continuingSubwordPrefix = "##"
    /// Words with more Unicode scalars than this become the unknown token.
    public var maxInputCharsPerWord = 100
    /// The longest input the model takes (`model_max_length`); `nil` when the config says none.
    public var modelMaxLength: Int? = 512
    /// Treat scalars assigned after this Unicode version as unassigned (category Cn, dropped by
    /// cleaning). `nil` uses the Swift runtime's own Unicode tables. The Python reference uses its
    /// `unicodedata` version (14.0 in Python 3.11), so the parity test sets this from the fixture.
    public var unicodeVersionLimit: (major: Int, minor: Int)? = nil

    /// Whether accents are stripped after the `nil` default is resolved.
    public var stripsAccents: Bool { stripAccents ?? lowercase }

    /// Every token that is matched verbatim in raw text before normalization.
    public var verbatimTokens: [String] {
        var all = [unknownToken, separatorToken, paddingToken, classifierToken]
        if let maskToken { all.append(maskToken) }
        all += additionalSpecialTokens
        all += addedTokens.keys.sorted()
        var seen = Set<String>()
        return all.filter { !$0.isEmpty && seen.insert($0).inserted }
    }

    /// The special tokens (not the other added tokens), which HF keeps whole when they survive as a
    /// whitespace-separated word after cleaning.
    public var specialTokens: [String] {
        var all = [unknownToken, separatorToken, paddingToken, classifierToken]
        if let maskToken { all.append(maskToken) }
        return all + additionalSpecialTokens
    }

    public init() {}

    /// Reads the config files of a model folder; missing files keep the defaults.
    public static func load(modelDirectory: URL) throws -> WordPieceConfig {
        var config = WordPieceConfig()
        let fm = FileManager.default
        // tokenizer.json first: the Python reference reads only the other two, so what they say wins.
        let tokenizerJSON = modelDirectory.appendingPathComponent("tokenizer.json")
        if fm.fileExists(atPath: tokenizerJSON.path) {
            try config.apply(try decodeJSON(TokenizerJSONFile.self, from: tokenizerJSON),
                             path: tokenizerJSON.path)
        }
        let tokenizerConfig = modelDirectory.appendingPathComponent("tokenizer_config.json")
        if fm.fileExists(atPath: tokenizerConfig.path) {
            let file = try decodeJSON(TokenizerConfigFile.self, from: tokenizerConfig)
            try config.apply(file, path: tokenizerConfig.path)
        }
        let specialMap = modelDirectory.appendingPathComponent("special_tokens_map.json")
        if fm.fileExists(atPath: specialMap.path) {
            config.apply(try decodeJSON(SpecialTokensFile.self, from: specialMap))
        }
        return config
    }

    private mutating func apply(_ f: TokenizerConfigFile, path: String) throws {
        if f.do_basic_tokenize == false {
            throw TokenizerError.malformedConfig(
                path: path, field: "do_basic_tokenize",
                reason: "false is not supported (only BERT's basic tokenization then WordPiece)")
        }
        lowercase = f.do_lower_case ?? lowercase
        if f.has_strip_accents { stripAccents = f.strip_accents }
        splitCJKCharacters = f.tokenize_chinese_chars ?? splitCJKCharacters
        neverSplit = f.never_split ?? neverSplit
        if let m = f.model_max_length {
            guard m > 0 else {
                throw TokenizerError.malformedConfig(path: path, field: "model_max_length",
                                                     reason: "must be positive, found \(m)")
            }
            // HF writes a huge number (1e30) for "no limit".
            modelMaxLength = m < Double(Int32.max) ? Int(m) : nil
        }
        apply(f.special)
        if let extra = f.additional_special_tokens { additionalSpecialTokens = extra.map(\.content) }
        for (key, token) in f.added_tokens_decoder ?? [:] {
            guard let id = Int32(key), id >= 0 else {
                throw TokenizerError.malformedConfig(path: path, field: "added_tokens_decoder.\(key)",
                                                     reason: "the key must be a token id")
            }
            addedTokens[token.content] = id
        }
    }

    private mutating func apply(_ s: SpecialTokensFile) {
        unknownToken = s.unk_token?.content ?? unknownToken
        classifierToken = s.cls_token?.content ?? classifierToken
        separatorToken = s.sep_token?.content ?? separatorToken
        paddingToken = s.pad_token?.content ?? paddingToken
        maskToken = s.mask_token?.content ?? maskToken
        if let extra = s.additional_special_tokens { additionalSpecialTokens = extra.map(\.content) }
    }

    private mutating func apply(_ f: TokenizerJSONFile, path: String) throws {
        if let n = f.normalizer {
            guard n.type == "BertNormalizer" else {
                throw TokenizerError.malformedConfig(
                    path: path, field: "normalizer.type",
                    reason: "\(String(reflecting: n.type)) is not supported (BertNormalizer expected)")
            }
            cleanText = n.clean_text ?? cleanText
            splitCJKCharacters = n.handle_chinese_chars ?? splitCJKCharacters
            stripAccents = n.strip_accents
            lowercase = n.lowercase ?? lowercase
        }
        if let p = f.pre_tokenizer, p.type != "BertPreTokenizer" {
            throw TokenizerError.malformedConfig(
                path: path, field: "pre_tokenizer.type",
                reason: "\(String(reflecting: p.type)) is not supported (BertPreTokenizer expected)")
        }
        if let m = f.model {
            if let type = m.type, type != "WordPiece" {
                throw TokenizerError.malformedConfig(
                    path: path, field: "model.type",
                    reason: "\(String(reflecting: type)) is not supported (WordPiece expected)")
            }
            unknownToken = m.unk_token ?? unknownToken
            continuingSubwordPrefix = m.continuing_subword_prefix ?? continuingSubwordPrefix
            if let n = m.max_input_chars_per_word {
                guard n > 0 else {
                    throw TokenizerError.malformedConfig(path: path, field: "model.max_input_chars_per_word",
                                                         reason: "must be positive, found \(n)")
                }
                maxInputCharsPerWord = n
            }
        }
        for (i, t) in (f.added_tokens ?? []).enumerated() {
            guard t.id >= 0, t.id <= Int(Int32.max) else {
                throw TokenizerError.malformedConfig(path: path, field: "added_tokens.\(i).id",
                                                     reason: "must be a non-negative token id, found \(t.id)")
            }
            addedTokens[t.content] = Int32(t.id)
        }
    }
}

// MARK: - The files as HF writes them (field names are HF's).

/// A token written either as a plain string or as an AddedToken object `{"content": ...}`.
private struct TokenSpec: Decodable {
    var content: String
    private enum Keys: String, CodingKey { case content }
    init(from decoder: Decoder) throws {
        if let s = try? decoder.singleValueContainer().decode(String.self) {
            content = s
        } else {
            content = try decoder.container(keyedBy: Keys.self).decode(String.self, forKey: .content)
        }
    }
}

private struct SpecialTokensFile: Decodable {
    var unk_token, cls_token, sep_token, pad_token, mask_token: TokenSpec?
    var additional_special_tokens: [TokenSpec]?
}

private struct TokenizerConfigFile: Decodable {
    var do_lower_case: Bool?
    var strip_accents: Bool?
    var has_strip_accents: Bool    // null (follow lowercase) is a value here, unlike a missing key
    var tokenize_chinese_chars: Bool?
    var do_basic_tokenize: Bool?
    var never_split: [String]?
    var model_max_length: Double?
    var additional_special_tokens: [TokenSpec]?
    var added_tokens_decoder: [String: TokenSpec]?
    var special: SpecialTokensFile

    private enum Keys: String, CodingKey {
        case do_lower_case, strip_accents, tokenize_chinese_chars, do_basic_tokenize, never_split,
             model_max_length, additional_special_tokens, added_tokens_decoder
    }
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        do_lower_case = try c.decodeIfPresent(Bool.self, forKey: .do_lower_case)
        strip_accents = try c.decodeIfPresent(Bool.self, forKey: .strip_accents)
        has_strip_accents = c.contains(.strip_accents)
        tokenize_chinese_chars = try c.decodeIfPresent(Bool.self, forKey: .tokenize_chinese_chars)
        do_basic_tokenize = try c.decodeIfPresent(Bool.self, forKey: .do_basic_tokenize)
        never_split = try c.decodeIfPresent([String].self, forKey: .never_split)
        model_max_length = try c.decodeIfPresent(Double.self, forKey: .model_max_length)
        additional_special_tokens = try c.decodeIfPresent([TokenSpec].self, forKey: .additional_special_tokens)
        added_tokens_decoder = try c.decodeIfPresent([String: TokenSpec].self, forKey: .added_tokens_decoder)
        special = try SpecialTokensFile(from: decoder)
    }
}

private struct TokenizerJSONFile: Decodable {
    struct Normalizer: Decodable {
        var type: String
        var clean_text, handle_chinese_chars, strip_accents, lowercase: Bool?
    }
    struct PreTokenizer: Decodable { var type: String }
    struct Model: Decodable {
        var type: String?
        var unk_token: String?
        var continuing_subword_prefix: String?
        var max_input_chars_per_word: Int?
    }
    struct AddedToken: Decodable {
        var id: Int
        var content: String
    }
    var normalizer: Normalizer?
    var pre_tokenizer: PreTokenizer?
    var model: Model?
    var added_tokens: [AddedToken]?
}

/// Decodes a JSON file, turning decoding errors into `TokenizerError.malformedConfig` that name
/// the file and the field path.
private func decodeJSON<T: Decodable>(_ type: T.Type, from url: URL) throws -> T {
    let read: Data?
    do { read = try InputLimits.read(url, atMost: InputLimits.maxJSONConfigBytes) } catch {
        throw TokenizerError.unreadableFile(path: url.path, reason: fileErrorReason(error, path: url.path))
    }
    guard let data = read else {
        throw TokenizerError.limitExceeded(path: url.path, line: nil, reason:
            "larger than \(InputLimits.describeBytes(InputLimits.maxJSONConfigBytes)), the limit for a JSON config file")
    }
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let error as DecodingError {
        let context: DecodingError.Context
        switch error {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .keyNotFound(_, let c), .dataCorrupted(let c):
            context = c
        @unknown default:
            throw TokenizerError.malformedConfig(path: url.path, field: "", reason: "\(error)")
        }
        var path = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
        if case .keyNotFound(let key, _) = error { path.append(key.stringValue) }
        let underlying = (context.underlyingError as NSError?)?.localizedDescription
        let reason = context.debugDescription + (underlying.map { " (\($0))" } ?? "")
        throw TokenizerError.malformedConfig(path: url.path, field: path.joined(separator: "."), reason: reason)
    }
}
