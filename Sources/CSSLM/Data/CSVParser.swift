// A small RFC 4180 parser for CSV and TSV: fields split by the delimiter, records by LF or CRLF,
// a field that starts with a double quote runs to the matching quote, `""` inside it is one quote,
// and it may hold delimiters and line breaks. Works on UTF-8 bytes (the delimiter, quote and line
// breaks are ASCII, so they never occur inside a multi-byte character) and decodes each field
// strictly.
//
// Where RFC 4180 leaves a choice: a quote inside an unquoted field is kept as a literal character
// (TSV files often hold text like `a "great" film`); anything but a delimiter or line break after
// a closing quote, and a quote that never closes, are errors naming their line. Blank lines are
// skipped.

import Foundation

/// One CSV record: its fields and the 1-based line it starts on.
struct CSVRecord: Equatable {
    var fields: [String]
    var line: Int
}

struct CSVParser {
    private let bytes: [UInt8]
    private let delimiter: UInt8
    private let file: String
    private var position: Int
    private var line = 1

    private static let quote = UInt8(ascii: "\"")
    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    init(bytes: [UInt8], delimiter: UInt8, file: String) {
        self.bytes = bytes
        self.delimiter = delimiter
        self.file = file
        self.position = TextLines.hasByteOrderMark(bytes) ? 3 : 0
    }

    /// The next record, or nil at the end of the input.
    mutating func next() throws -> CSVRecord? {
        while position < bytes.count, let length = lineBreakLength(at: position) {
            position += length   // blank line
            line += 1
        }
        if position >= bytes.count { return nil }
        let startLine = line
        let start = position
        var fields: [String] = []
        while true {
            fields.append(try field(recordLine: startLine))
            if position >= bytes.count { break }
            if bytes[position] == delimiter {
                position += 1
                continue
            }
            if let length = lineBreakLength(at: position) {
                position += length
                line += 1
                break
            }
            preconditionFailure("a field ends at a delimiter, a line break or the end of input")
        }
        try TextLines.checkLength(position - start, file: file, line: startLine, what: "record")
        return CSVRecord(fields: fields, line: startLine)
    }

    /// Reads one field, leaving `position` at the delimiter, line break or end after it.
    private mutating func field(recordLine: Int) throws -> String {
        var value: [UInt8] = []
        if position < bytes.count && bytes[position] == Self.quote {
            let openLine = line
            position += 1
            while true {
                guard position < bytes.count else {
                    throw DataError.malformed(file: file, line: openLine,
                                              reason: "quoted field never closes")
                }
                let b = bytes[position]
                if b == Self.quote {
                    if position + 1 < bytes.count && bytes[position + 1] == Self.quote {
                        value.append(Self.quote)
                        position += 2
                        continue
                    }
                    position += 1
                    break
                }
                if b == Self.lf { line += 1 }
                value.append(b)
                position += 1
            }
            if position < bytes.count && bytes[position] != delimiter && lineBreakLength(at: position) == nil {
                throw DataError.malformed(file: file, line: line, reason:
                    "text after a closing quote (a quote inside a quoted field is written \"\")")
            }
        } else {
            while position < bytes.count && bytes[position] != delimiter && lineBreakLength(at: position) == nil {
                value.append(bytes[position])
                position += 1
            }
        }
        if let offset = TextLines.firstInvalidUTF8(value[...]) {
            throw DataError.malformed(file: file, line: recordLine,
                                      reason: "field byte \(offset + 1) is not valid UTF-8")
        }
        return String(decoding: value, as: UTF8.self)
    }

    /// 1 for LF, 2 for CRLF, nil when `i` is not at a line break. A lone CR is an ordinary byte.
    private func lineBreakLength(at i: Int) -> Int? {
        if bytes[i] == Self.lf { return 1 }
        if bytes[i] == Self.cr && i + 1 < bytes.count && bytes[i + 1] == Self.lf { return 2 }
        return nil
    }
}

extension LabeledDataset {
    /// Reads a CSV or TSV file with a header row, taking the text and label from the named columns.
    ///
    /// ```swift
    /// let (set, report) = try LabeledDataset.readCSV(at: url, textColumn: "review",
    ///                                                labelColumn: "stars", labels: ["1", "2", "3"])
    /// ```
    /// - Parameters:
    ///   - delimiter: the field separator; nil picks tab for a `.tsv` file and comma otherwise.
    ///   - labels: the label list; nil infers the sorted distinct names of the label column.
    /// - Throws: ``DataError`` with file and line for bad quoting, a wrong field count, a missing
    ///   column or an unknown label.
    public static func readCSV(at url: URL, textColumn: String = "text", labelColumn: String = "label",
                               delimiter: Character? = nil, labels: [String]? = nil) throws
        -> (dataset: LabeledDataset, report: DataReadReport)
    {
        let file = url.path
        let separator = delimiter ?? (url.pathExtension.lowercased() == "tsv" ? "\t" : ",")
        guard let separatorByte = separator.asciiValue, separator != "\"", !separator.isNewline else {
            throw DataError.unreadable(file: file, reason: "delimiter must be one ASCII character "
                                       + "other than a quote or line break")
        }
        var parser = CSVParser(bytes: try TextLines.readBytes(url), delimiter: separatorByte, file: file)
        guard let header = try parser.next() else {
            throw DataError.malformed(file: file, line: 1, reason: "no header row")
        }
        let names = header.fields.map { String(TextLines.trimmed($0)) }
        guard let textIndex = names.firstIndex(of: textColumn) else {
            throw DataError.missingColumn(file: file, column: textColumn, header: names)
        }
        guard let labelIndex = names.firstIndex(of: labelColumn) else {
            throw DataError.missingColumn(file: file, column: labelColumn, header: names)
        }
        var builder = LabeledDatasetBuilder(file: file, labels: labels)
        while let record = try parser.next() {
            guard record.fields.count == names.count else {
                throw DataError.malformed(file: file, line: record.line, reason:
                    "\(record.fields.count) fields, the header has \(names.count)")
            }
            builder.add(text: record.fields[textIndex], label: .name(record.fields[labelIndex]),
                        line: record.line)
        }
        return try builder.finish()
    }
}
