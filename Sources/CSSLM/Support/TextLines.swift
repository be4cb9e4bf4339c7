// Line-oriented text input shared by the readers (datasets, labels, metrics.jsonl, the
// retrieved-sentences log): whole-file reads, strict UTF-8 decoding (a bad byte is an error
// naming its line, never a silent U+FFFD), LF or CRLF line ends, a leading byte-order mark
// skipped, and JSONL objects.

import Foundation

enum TextLines {
    /// The bytes of `url`, or `DataError.unreadable`.
    static func readBytes(_ url: URL) throws -> [UInt8] {
        do {
            return [UInt8](try Data(contentsOf: url))
        } catch {
            throw DataError.unreadable(file: url.path, reason: fileErrorReason(error, path: url.path))
        }
    }

    /// Calls `body(lineNumber, text)` for every line of `bytes` (1-based; a final line without a
    /// newline counts, an empty tail after the last newline does not). A line longer than
    /// `InputLimits.maxLineBytes` is an error naming it.
    static func forEach(in bytes: [UInt8], file: String,
                        _ body: (Int, String) throws -> Void) throws {
        var start = hasByteOrderMark(bytes) ? 3 : 0
        var line = 1
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            let next = end + 1
            if end > start && bytes[end - 1] == 0x0D { end -= 1 }
            try checkLength(end - start, file: file, line: line, what: "line")
            try body(line, try decode(bytes[start..<end], file: file, line: line))
            start = next
            line += 1
        }
    }

    /// Throws when a line (or record, or element) of `length` bytes is over `InputLimits.maxLineBytes`.
    static func checkLength(_ length: Int, file: String, line: Int, what: String) throws {
        if length > InputLimits.maxLineBytes {
            throw DataError.malformed(file: file, line: line, reason: "the \(what) is \(length) bytes, "
                                      + "above the limit of \(InputLimits.describeBytes(InputLimits.maxLineBytes))")
        }
    }

    /// `text` without leading and trailing Unicode whitespace. Looks only at the ends, so it is
    /// much cheaper than Foundation's `trimmingCharacters(in:)` on long streams of lines.
    static func trimmed(_ text: String) -> Substring {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else {
            return text[text.endIndex...]
        }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return Substring(scalars[first...last])
    }

    /// Number of maximal runs of non-whitespace scalars: whitespace-separated words.
    static func wordCount(_ text: String) -> Int {
        var count = 0
        var inWord = false
        for scalar in text.unicodeScalars {
            let space = scalar.properties.isWhitespace
            if !space && !inWord { count += 1 }
            inWord = !space
        }
        return count
    }

    static func hasByteOrderMark(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF
    }

    /// Strict UTF-8 decoding of one line.
    static func decode(_ bytes: ArraySlice<UInt8>, file: String, line: Int) throws -> String {
        if let offset = firstInvalidUTF8(bytes) {
            throw DataError.malformed(file: file, line: line,
                                      reason: "not valid UTF-8 (byte \(offset + 1) of the line)")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Offset (from the slice start) of the first byte that breaks UTF-8, or nil when valid.
    /// Rejects overlong forms, surrogates and code points above U+10FFFF (RFC 3629).
    static func firstInvalidUTF8(_ bytes: ArraySlice<UInt8>) -> Int? {
        var i = bytes.startIndex
        let end = bytes.endIndex
        while i < end {
            let b = bytes[i]
            if b < 0x80 { i += 1; continue }
            let length: Int
            var low: UInt8 = 0x80, high: UInt8 = 0xBF   // allowed range of the second byte
            switch b {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default: return i - bytes.startIndex
            }
            guard end - i >= length, (low...high).contains(bytes[i + 1]) else {
                return i - bytes.startIndex
            }
            for k in 2..<max(length, 2) where bytes[i + k] & 0xC0 != 0x80 {
                return i - bytes.startIndex
            }
            i += length
        }
        return nil
    }

    /// Calls `body(line, object)` for every non-empty line of a JSONL file; a line that is not a JSON
    /// object is an error naming the file and line.
    static func forEachJSONObject(in url: URL, _ body: (Int, [String: Any]) throws -> Void) throws {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw CSSLMError("\(url.path): missing", hint: "pass a run folder written by `csslm train`")
        }
        try TextLines.forEach(in: try TextLines.readBytes(url), file: url.path) { line, text in
            guard !TextLines.trimmed(text).isEmpty else { return }
            guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                throw DataError.malformed(file: url.path, line: line, reason: "not a JSON object")
            }
            try body(line, object)
        }
    }
}
