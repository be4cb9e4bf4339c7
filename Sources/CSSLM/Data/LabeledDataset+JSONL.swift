// JSON Lines labelled data, csslm's own format: one object a line, `{"text": ..., "label": ...}`,
// the label a name from labels.txt or an integer class index into it. Other keys are ignored,
// blank lines skipped. Also the labels.txt reader and the splits directory loader.

import Foundation

extension LabeledDataset {
    /// Reads a JSONL file of `{"text": String, "label": String | Int}` records.
    ///
    /// - Parameter labels: the label list (usually from ``readLabels(at:)``); nil infers it from
    ///   the file (sorted names, or "0"..."max" for indices), which only suits a single file.
    /// - Throws: ``DataError`` naming the file and line of a malformed record or unknown label.
    public static func readJSONL(at url: URL, labels: [String]? = nil) throws
        -> (dataset: LabeledDataset, report: DataReadReport)
    {
        let file = url.path
        var builder = LabeledDatasetBuilder(file: file, labels: labels)
        let decoder = JSONDecoder()
        try TextLines.forEach(in: try TextLines.readBytes(url), file: file) { line, text in
            if text.allSatisfy(\.isWhitespace) { return }
            do {
                let record = try decoder.decode(JSONLRecord.self, from: Data(text.utf8))
                builder.add(text: record.text, label: record.label.raw, line: line)
            } catch let error as DecodingError {
                throw DataError.malformed(file: file, line: line, reason: error.briefDescription)
            }
        }
        return try builder.finish()
    }

    /// Reads `labels.txt`: one label name a line, in class-index order. Surrounding whitespace is
    /// trimmed and trailing blank lines ignored; an empty name inside the list or a repeated name
    /// is an error naming its line.
    public static func readLabels(at url: URL) throws -> [String] {
        let file = url.path
        var names: [String] = []
        var lineOfName: [String: Int] = [:]
        var blankLine: Int?
        try TextLines.forEach(in: try TextLines.readBytes(url), file: file) { line, text in
            let name = String(TextLines.trimmed(text))
            if name.isEmpty {
                blankLine = blankLine ?? line
                return
            }
            if let blank = blankLine {
                throw DataError.invalidLabels(file: file, line: blank, reason: "empty label name")
            }
            if let first = lineOfName[name] {
                throw DataError.invalidLabels(file: file, line: line,
                                              reason: "label \"\(name)\" repeats line \(first)")
            }
            lineOfName[name] = line
            names.append(name)
            if names.count > InputLimits.maxLabelCount {
                throw DataError.invalidLabels(file: file, line: line,
                                              reason: "more than \(InputLimits.maxLabelCount) labels (the limit)")
            }
        }
        if names.isEmpty {
            throw DataError.invalidLabels(file: file, line: 1, reason: "no labels")
        }
        return names
    }
}

/// A task's labelled data: `labels.txt` and one file per split (`train`, `dev`, `test`) in one
/// directory, each split as JSONL (`scripts/fetch_data.py` writes these), CSV, TSV (columns `text`
/// and `label`) or the CSS-LM reference JSON list (`sentence`, `sentiment`).
public struct DatasetSplits: Sendable {
    public var labels: [String]
    public var train: LabeledDataset
    public var dev: LabeledDataset
    public var test: LabeledDataset
    /// One report per split file, in train, dev, test order; log the ones that are not clean.
    public var reports: [DataReadReport]
    /// The split files read, in train, dev, test order.
    public var files: [URL] = []

    public static let splits = ["train", "dev", "test"]
    /// The extensions a split file may have, in the order they are looked for.
    public static let splitExtensions = ["jsonl", "csv", "tsv", "json"]

    /// Every file name a dataset folder may hold, labels.txt first (the run identity hashes the
    /// present ones in this order; JSONL first, so the identity of a JSONL folder is unchanged).
    public static var fileNames: [String] {
        ["labels.txt"] + splitExtensions.flatMap { ext in splits.map { "\($0).\(ext)" } }
    }

    /// The one file of `split` in `directory`; an error when there is none or more than one.
    public static func splitFile(_ split: String, in directory: URL) throws -> URL {
        let present = splitExtensions.map { directory.appendingPathComponent("\(split).\($0)") }
            .filter { FileManager.default.fileExists(atPath: $0.path) }
        guard present.count == 1 else {
            let names = splitExtensions.map { "\(split).\($0)" }.joined(separator: ", ")
            throw DataError.unreadable(
                file: directory.appendingPathComponent(split).path,
                reason: present.isEmpty ? "no \(split) split: expected one of \(names) in the dataset folder"
                    : "\(present.map(\.lastPathComponent).joined(separator: " and ")) both present: keep one \(split) file")
        }
        return present[0]
    }

    /// Reads one split file by its extension, against `labels`.
    public static func readSplit(at url: URL, labels: [String]) throws -> (dataset: LabeledDataset, report: DataReadReport) {
        switch url.pathExtension.lowercased() {
        case "csv", "tsv": return try LabeledDataset.readCSV(at: url, labels: labels)
        case "json": return try LabeledDataset.readReferenceJSON(at: url, labels: labels)
        default: return try LabeledDataset.readJSONL(at: url, labels: labels)
        }
    }

    /// Loads `directory/labels.txt` and the three split files against it.
    public static func load(directory: URL) throws -> DatasetSplits {
        let labels = try LabeledDataset.readLabels(at: directory.appendingPathComponent("labels.txt"))
        var sets: [LabeledDataset] = []
        var reports: [DataReadReport] = []
        let files = try splits.map { try splitFile($0, in: directory) }
        for file in files {
            let (set, report) = try readSplit(at: file, labels: labels)
            sets.append(set)
            reports.append(report)
        }
        return DatasetSplits(labels: labels, train: sets[0], dev: sets[1], test: sets[2], reports: reports, files: files)
    }
}

/// A label as JSON spells it: a string name or an integer index (not a float, not a bool).
struct JSONLabel: Decodable {
    let raw: RawLabel

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let name = try? container.decode(String.self) {
            raw = .name(name)
        } else if (try? container.decode(Bool.self)) == nil, let index = try? container.decode(Int.self) {
            raw = .index(index)
        } else {
            throw DecodingError.typeMismatch(JSONLabel.self, .init(
                codingPath: decoder.codingPath,
                debugDescription: "label must be a string name or an integer class index"))
        }
    }
}

private struct JSONLRecord: Decodable {
    let text: String
    let label: JSONLabel
}

extension DecodingError {
    /// A short reason for an error message: what is wrong and at which key.
    var briefDescription: String {
        func path(_ codingPath: [CodingKey]) -> String {
            codingPath.isEmpty ? "" : " at \"" + codingPath.map(\.stringValue).joined(separator: ".") + "\""
        }
        switch self {
        case .keyNotFound(let key, let context):
            return "missing key \"\(key.stringValue)\"\(path(context.codingPath))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return context.debugDescription + path(context.codingPath)
        case .dataCorrupted(let context):
            var reason = "not valid JSON" + path(context.codingPath)
            if let underlying = context.underlyingError {
                reason += " (\((underlying as NSError).localizedDescription))"
            }
            return reason
        @unknown default:
            return String(describing: self)
        }
    }
}
