// Errors from loading a tokenizer's files. Every case names the file, and the line or the JSON
// field when there is one, so the message alone says what to fix.
import Foundation

/// A tokenizer file that is missing, unreadable or malformed.
///
/// ```swift
/// do { _ = try WordPieceTokenizer(modelDirectory: dir) }
/// catch let e as TokenizerError { print(e) }   // "vocab.txt line 7: duplicate token ..."
/// ```
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// A file the tokenizer needs does not exist.
    case missingFile(path: String)
    /// The file exists but could not be read.
    case unreadableFile(path: String, reason: String)
    /// `vocab.txt` has no tokens.
    case emptyVocabulary(path: String)
    /// A line of `vocab.txt` is not valid UTF-8.
    case invalidUTF8(path: String, line: Int)
    /// The same token appears twice in `vocab.txt` (HF would silently keep the last index).
    case duplicateToken(path: String, line: Int, token: String, firstLine: Int)
    /// A JSON config file is not valid JSON, or a field has the wrong type or value.
    case malformedConfig(path: String, field: String, reason: String)
    /// A special token named by the config is in neither the vocabulary nor the added tokens.
    case unknownSpecialToken(path: String, role: String, token: String)
    /// A file breaks one of the `InputLimits` (at `line`, when it concerns one line).
    case limitExceeded(path: String, line: Int?, reason: String)

    /// The file the error is about.
    public var path: String {
        switch self {
        case .missingFile(let p), .unreadableFile(let p, _), .emptyVocabulary(let p),
             .invalidUTF8(let p, _), .duplicateToken(let p, _, _, _), .malformedConfig(let p, _, _),
             .unknownSpecialToken(let p, _, _), .limitExceeded(let p, _, _):
            return p
        }
    }

    public var description: String {
        switch self {
        case .missingFile(let p):
            return "\(p): no such file\nhint: point --model at a folder with vocab.txt (run scripts/setup.sh for the bundled model)"
        case .unreadableFile(let p, let reason):
            return "\(p): cannot read: \(reason)"
        case .emptyVocabulary(let p):
            return "\(p): the vocabulary is empty (one token a line expected)"
        case .invalidUTF8(let p, let line):
            return "\(p) line \(line): not valid UTF-8"
        case .duplicateToken(let p, let line, let token, let first):
            return "\(p) line \(line): duplicate token \(String(reflecting: token)) (first on line \(first))"
        case .malformedConfig(let p, let field, let reason):
            return "\(p): field \(field.isEmpty ? "(top level)" : field): \(reason)"
        case .unknownSpecialToken(let p, let role, let token):
            return "\(p): \(role) \(String(reflecting: token)) is not in the vocabulary"
        case .limitExceeded(let p, let line, let reason):
            return "\(p)\(line.map { " line \($0)" } ?? ""): \(reason)"
        }
    }
}
