// The CSS-LM reference code's data format: one JSON array of objects
// `[{"sentence": ..., "aspect": ..., "sentiment": ...}, ...]`, possibly pretty-printed over many
// lines. A light scanner finds where each element starts (its line) and ends; each element is
// then decoded on its own, so an error names the line of the element it concerns.

import Foundation

extension LabeledDataset {
    /// Reads a reference-format JSON list. `sentence` is the text, `sentiment` the label (a name or
    /// an integer index), `aspect` (optional; empty means none) is kept in ``LabeledExample/aspect``.
    ///
    /// - Parameter labels: the label list; nil infers it (sorted names, or "0"..."max").
    /// - Throws: ``DataError`` with the file and the line where the offending element starts.
    public static func readReferenceJSON(at url: URL, labels: [String]? = nil) throws
        -> (dataset: LabeledDataset, report: DataReadReport)
    {
        let file = url.path
        let bytes = try TextLines.readBytes(url)
        var builder = LabeledDatasetBuilder(file: file, labels: labels)
        let decoder = JSONDecoder()
        var scanner = JSONArrayScanner(bytes: bytes, file: file)
        for element in try scanner.elements() {
            do {
                let record = try decoder.decode(ReferenceRecord.self, from: Data(bytes[element.range]))
                let aspect = record.aspect.flatMap { $0.isEmpty ? nil : $0 }
                builder.add(text: record.sentence, label: record.sentiment.raw, aspect: aspect,
                            line: element.line)
            } catch let error as DecodingError {
                throw DataError.malformed(file: file, line: element.line, reason: error.briefDescription)
            }
        }
        return try builder.finish()
    }
}

private struct ReferenceRecord: Decodable {
    let sentence: String
    let aspect: String?
    let sentiment: JSONLabel
}

/// Splits a top-level JSON array of objects into the byte ranges of its elements. It checks the
/// array's own punctuation (brackets, commas, nothing after the end) and string/bracket nesting;
/// the contents of each element are left to JSONDecoder.
struct JSONArrayScanner {
    struct Element {
        var range: Range<Int>
        /// 1-based line of the element's opening brace.
        var line: Int
    }

    private let bytes: [UInt8]
    private let file: String
    private var position: Int
    private var line = 1

    init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
        self.position = TextLines.hasByteOrderMark(bytes) ? 3 : 0
    }

    mutating func elements() throws -> [Element] {
        skipWhitespace()
        try expect(UInt8(ascii: "["), "the file must hold one JSON array")
        var result: [Element] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            position += 1
        } else {
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "{") else {
                    throw malformed(peek() == nil ? "the array never closes" : "expected an object")
                }
                let startLine = line
                let start = position
                try skipObject()
                try TextLines.checkLength(position - start, file: file, line: startLine, what: "element")
                result.append(Element(range: start..<position, line: startLine))
                skipWhitespace()
                if peek() == UInt8(ascii: ",") { position += 1; continue }
                try expect(UInt8(ascii: "]"), peek() == nil ? "the array never closes"
                                                            : "expected \",\" or \"]\" after an object")
                break
            }
        }
        skipWhitespace()
        if peek() != nil { throw malformed("text after the end of the array") }
        return result
    }

    /// Moves past one object, respecting strings (with escapes) and nested brackets.
    private mutating func skipObject() throws {
        let openLine = line
        var depth = 0
        while let b = peek() {
            position += 1
            switch b {
            case UInt8(ascii: "\n"):
                line += 1
            case UInt8(ascii: "\""):
                try skipStringBody()
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 { return }
            default:
                break
            }
        }
        throw DataError.malformed(file: file, line: openLine, reason: "object never closes")
    }

    private mutating func skipStringBody() throws {
        let openLine = line
        while let b = peek() {
            position += 1
            if b == UInt8(ascii: "\\") { position += 1; continue }
            if b == UInt8(ascii: "\"") { return }
            if b == UInt8(ascii: "\n") {
                throw DataError.malformed(file: file, line: openLine, reason: "line break inside a string")
            }
        }
        throw DataError.malformed(file: file, line: openLine, reason: "string never closes")
    }

    private func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    private mutating func skipWhitespace() {
        while let b = peek(), b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D {
            if b == 0x0A { line += 1 }
            position += 1
        }
    }

    private mutating func expect(_ byte: UInt8, _ reason: String) throws {
        guard peek() == byte else { throw malformed(reason) }
        position += 1
    }

    private func malformed(_ reason: String) -> DataError {
        DataError.malformed(file: file, line: line, reason: reason)
    }
}
