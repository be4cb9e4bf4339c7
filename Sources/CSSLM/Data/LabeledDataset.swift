// Labelled data in memory: examples with a class index into a fixed list of label names, and the
// report every reader returns beside them (empty and duplicate texts are reported, never dropped
// silently). The readers live in LabeledDataset+JSONL.swift, LabeledDataset+ReferenceJSON.swift
// and CSVParser.swift.

import Foundation

/// One labelled text.
public struct LabeledExample: Equatable, Hashable, Codable, Sendable {
    /// The input text.
    public var text: String
    /// Class index into ``LabeledDataset/labels``.
    public var label: Int
    /// The aspect term of aspect-level data (the CSS-LM reference JSON format); nil elsewhere.
    public var aspect: String?
    /// 1-based line of the record in its source file (0 when built in memory), for tracing.
    public var line: Int

    public init(text: String, label: Int, aspect: String? = nil, line: Int = 0) {
        self.text = text
        self.label = label
        self.aspect = aspect
        self.line = line
    }
}

/// Labelled examples and the ordered label names their class indices point into.
///
/// ```swift
/// let (train, report) = try LabeledDataset.readJSONL(at: dir.appendingPathComponent("train.jsonl"),
///                                                    labels: try readLabels(at: labelsURL))
/// if !report.isClean { logger.warning("\(report.summary)") }
/// print(train.classCounts)   // [4307, 5894]
/// ```
public struct LabeledDataset: Equatable, Sendable {
    /// Label names; class index i is `labels[i]`.
    public var labels: [String]
    public var examples: [LabeledExample]
    /// Where the examples were read from ("" when built in memory).
    public var source: String

    public init(labels: [String], examples: [LabeledExample], source: String = "") {
        precondition(examples.allSatisfy { labels.indices.contains($0.label) },
                     "every example's label must index into labels")
        self.labels = labels
        self.examples = examples
        self.source = source
    }

    public var count: Int { examples.count }

    /// Number of examples of each class, indexed like ``labels``.
    public var classCounts: [Int] {
        var counts = [Int](repeating: 0, count: labels.count)
        for example in examples { counts[example.label] += 1 }
        return counts
    }

    /// Positions in ``examples`` of the examples of class `label`, in file order.
    public func indices(ofClass label: Int) -> [Int] {
        examples.indices.filter { examples[$0].label == label }
    }

    /// The examples at `indices`, in that order (repeats allowed), same labels and source.
    public func subset(_ indices: [Int]) -> LabeledDataset {
        LabeledDataset(labels: labels, examples: indices.map { examples[$0] }, source: source)
    }
}

/// What a reader saw besides the examples: texts that are empty or repeat an earlier text.
/// Both are kept in the dataset (the file says so); callers log ``summary`` and decide.
public struct DataReadReport: Equatable, Sendable {
    /// A text that already occurred earlier in the same file.
    public struct Duplicate: Equatable, Sendable {
        /// 1-based line of the repeat.
        public var line: Int
        /// 1-based line where the text first occurred.
        public var firstLine: Int
        /// True when the repeat carries a different label than the first occurrence.
        public var conflictingLabel: Bool
    }

    public var file: String
    /// Number of records read (blank lines are not records).
    public var records: Int
    /// 1-based lines whose text is empty or only whitespace.
    public var emptyTextLines: [Int]
    /// Repeated texts (compared exactly, after trimming surrounding whitespace).
    public var duplicates: [Duplicate]

    public var isClean: Bool { emptyTextLines.isEmpty && duplicates.isEmpty }

    /// One line for the log, e.g. `train.jsonl: 1200 records, 1 empty text (line 7), 2 duplicate
    /// texts (lines 40, 77; 1 with another label)`.
    public var summary: String {
        func lines(_ list: [Int]) -> String {
            let shown = list.prefix(10).map(String.init).joined(separator: ", ")
            return (list.count == 1 ? "line " : "lines ") + shown + (list.count > 10 ? ", ..." : "")
        }
        var parts = ["\(file): \(records) records"]
        if !emptyTextLines.isEmpty {
            parts.append("\(emptyTextLines.count) empty text\(emptyTextLines.count == 1 ? "" : "s") "
                         + "(\(lines(emptyTextLines)))")
        }
        if !duplicates.isEmpty {
            let conflicting = duplicates.filter(\.conflictingLabel).count
            parts.append("\(duplicates.count) duplicate text\(duplicates.count == 1 ? "" : "s") "
                         + "(\(lines(duplicates.map(\.line)))"
                         + (conflicting > 0 ? "; \(conflicting) with another label)" : ")"))
        }
        return parts.joined(separator: ", ")
    }
}

/// A label as a record spells it: a name, or (JSON only) an integer class index.
enum RawLabel: Equatable {
    case name(String)
    case index(Int)

    var spelled: String {
        switch self {
        case .name(let name): return name
        case .index(let index): return String(index)
        }
    }
}

/// Collects records from any reader, resolves their labels and builds the report.
/// With `labels` nil the label list is inferred: sorted distinct names, or "0"..."max" for indices.
struct LabeledDatasetBuilder {
    private struct Record {
        var text: String
        var label: RawLabel
        var aspect: String?
        var line: Int
    }

    let file: String
    let labels: [String]?
    private var records: [Record] = []

    init(file: String, labels: [String]?) {
        self.file = file
        self.labels = labels
    }

    mutating func add(text: String, label: RawLabel, aspect: String? = nil, line: Int) {
        records.append(Record(text: text, label: label, aspect: aspect, line: line))
    }

    func finish() throws -> (dataset: LabeledDataset, report: DataReadReport) {
        let names = try labels ?? inferredLabels()
        var indexOfName: [String: Int] = [:]
        for (i, name) in names.enumerated() { indexOfName[name] = i }

        var examples: [LabeledExample] = []
        examples.reserveCapacity(records.count)
        var report = DataReadReport(file: file, records: records.count, emptyTextLines: [], duplicates: [])
        var firstOccurrence: [String: (line: Int, label: Int)] = [:]
        for record in records {
            let label: Int
            switch record.label {
            case .name(let name):
                guard let i = indexOfName[name] else {
                    throw DataError.unknownLabel(file: file, line: record.line, label: name, known: names)
                }
                label = i
            case .index(let i):
                guard names.indices.contains(i) else {
                    throw DataError.unknownLabel(file: file, line: record.line,
                                                 label: "index \(i)", known: names)
                }
                // With names that spell numbers ("1"..."5"), a number could mean either the index or
                // the name: refuse to guess when the two readings disagree.
                if names[i] != String(i), let named = indexOfName[String(i)] {
                    throw DataError.malformed(file: file, line: record.line, reason:
                        "label \(i) is a number, but the label list has the name \"\(i)\" (class \(named)) "
                        + "and class \(i) is \"\(names[i])\"; write the label as a string to mean the name")
                }
                label = i
            }
            let trimmed = String(TextLines.trimmed(record.text))
            if trimmed.isEmpty {
                report.emptyTextLines.append(record.line)
            } else if let first = firstOccurrence[trimmed] {
                report.duplicates.append(.init(line: record.line, firstLine: first.line,
                                               conflictingLabel: first.label != label))
            } else {
                firstOccurrence[trimmed] = (record.line, label)
            }
            examples.append(LabeledExample(text: record.text, label: label,
                                           aspect: record.aspect, line: record.line))
        }
        return (LabeledDataset(labels: names, examples: examples, source: file), report)
    }

    private func inferredLabels() throws -> [String] {
        guard let first = records.first else { return [] }
        switch first.label {
        case .name:
            var names = Set<String>()
            for record in records {
                guard case .name(let name) = record.label else {
                    throw DataError.malformed(file: file, line: record.line, reason:
                        "label is an index but earlier labels are names; pass a label list")
                }
                names.insert(name)
                if names.count > InputLimits.maxLabelCount {
                    throw DataError.malformed(file: file, line: record.line, reason:
                        "more than \(InputLimits.maxLabelCount) distinct labels (the limit); is the label column right?")
                }
            }
            return names.sorted()
        case .index:
            var maximum = -1
            for record in records {
                guard case .index(let i) = record.label else {
                    throw DataError.malformed(file: file, line: record.line, reason:
                        "label is a name but earlier labels are indices; pass a label list")
                }
                guard i >= 0 else {
                    throw DataError.unknownLabel(file: file, line: record.line,
                                                 label: "index \(i)", known: [])
                }
                // The list is "0"..."max": a huge index must not become a huge allocation.
                guard i < InputLimits.maxLabelCount else {
                    throw DataError.malformed(file: file, line: record.line, reason:
                        "label index \(i) is beyond the limit of \(InputLimits.maxLabelCount) classes "
                        + "(indices 0...\(InputLimits.maxLabelCount - 1)); pass a label list")
                }
                maximum = max(maximum, i)
            }
            return (0...maximum).map(String.init)
        }
    }
}
