// Errors of the data readers and the few-shot sampler. Every error that comes from a file names
// the file and, where it concerns one record, its 1-based line, so a message reads like a
// compiler diagnostic: `data/train.jsonl:17: unknown label "postive"`.

import Foundation

/// A failure to read or use a dataset, with the file and 1-based line it concerns.
public enum DataError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// The file could not be opened or read at all.
    case unreadable(file: String, reason: String)
    /// The file could not be written.
    case unwritable(file: String, reason: String)
    /// A record is not in the expected format (bad JSON, bad quoting, missing field, not UTF-8).
    case malformed(file: String, line: Int, reason: String)
    /// A label that is not one of `known` (a name not listed, or an index out of range).
    case unknownLabel(file: String, line: Int, label: String, known: [String])
    /// A CSV/TSV header lacks a requested column.
    case missingColumn(file: String, column: String, header: [String])
    /// A `labels.txt` (or label list) is empty, has an empty name or a repeated name.
    case invalidLabels(file: String, line: Int, reason: String)
    /// The few-shot sampler cannot draw from a class that has no examples at all.
    case classWithoutExamples(label: String, source: String)

    /// The file the error concerns.
    public var file: String {
        switch self {
        case .unreadable(let file, _), .unwritable(let file, _), .malformed(let file, _, _), .unknownLabel(let file, _, _, _),
             .missingColumn(let file, _, _), .invalidLabels(let file, _, _):
            return file
        case .classWithoutExamples(_, let source):
            return source
        }
    }

    /// The 1-based line the error concerns, when it concerns one record.
    public var line: Int? {
        switch self {
        case .malformed(_, let line, _), .unknownLabel(_, let line, _, _), .invalidLabels(_, let line, _):
            return line
        case .missingColumn:
            return 1   // the header
        case .unreadable, .unwritable, .classWithoutExamples:
            return nil
        }
    }

    public var description: String {
        switch self {
        case .unreadable(let file, let reason):
            return "\(file): cannot read: \(reason)"
        case .unwritable(let file, let reason):
            return "\(file): cannot write: \(reason)"
        case .malformed(let file, let line, let reason):
            return "\(file):\(line): malformed record: \(reason)"
        case .unknownLabel(let file, let line, let label, let known):
            let list = known.count <= 20 ? known.joined(separator: ", ")
                                         : known.prefix(20).joined(separator: ", ") + ", ..."
            return "\(file):\(line): unknown label \"\(label)\" (known: \(list))\n"
                + "hint: add it to labels.txt, or fix the record"
        case .missingColumn(let file, let column, let header):
            return "\(file):1: no column \"\(column)\" in header [\(header.joined(separator: ", "))]\n"
                + "hint: pick the text and label columns by their header names"
        case .invalidLabels(let file, let line, let reason):
            return "\(file):\(line): invalid label list: \(reason)"
        case .classWithoutExamples(let label, let source):
            return "\(source): class \"\(label)\" has no examples, so a few-shot sample cannot "
                + "include it\nhint: check labels.txt against the training file"
        }
    }

    public var errorDescription: String? { description }
}
