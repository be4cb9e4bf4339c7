// The unlabelled corpus: a text file, one sentence (or short document) a line, read as a stream
// in fixed-size chunks so a multi-gigabyte file never sits in memory. A filter hook keeps only
// lines with at least a minimum number of tokens (CSS-LM encodes lines of >= 15 tokens); the
// token counter is a parameter so the model's own tokenizer can be plugged in.

import Foundation

/// One kept corpus line and its 1-based line number in the file.
public struct CorpusLine: Equatable, Sendable {
    public var text: String
    public var line: Int
}

/// What a corpus read skipped, for the log.
public struct CorpusReadStats: Equatable, Sendable {
    /// Lines looked at (including skipped ones).
    public var linesRead = 0
    /// Lines returned.
    public var kept = 0
    /// Empty or whitespace-only lines.
    public var blank = 0
    /// Lines with fewer tokens than the minimum.
    public var belowMinimumTokens = 0
    /// Lines left out because the run must not retrieve them (its labelled, dev and test texts).
    public var excluded = 0

    public var summary: String {
        "\(linesRead) lines read, \(kept) kept, \(blank) blank, \(belowMinimumTokens) below the minimum token count"
            + (excluded > 0 ? ", \(excluded) excluded (the run's labelled, dev or test texts)" : "")
    }
}

/// Streams the kept lines of a corpus file.
///
/// ```swift
/// let reader = try UnlabeledCorpusReader(url: corpusURL, minimumTokens: 15) { tokenizer.count($0) }
/// while let sentence = try reader.next(), reader.stats.kept <= 40_000 { pool.append(sentence.text) }
/// logger.info("\(reader.stats.summary)")
/// ```
public final class UnlabeledCorpusReader {
    public typealias TokenCounter = (String) -> Int

    /// Counts whitespace-separated words: the default filter, and a lower bound for subword counts.
    public static let whitespaceTokenCount: TokenCounter = { TextLines.wordCount($0) }

    public let url: URL
    public let minimumTokens: Int
    public private(set) var stats = CorpusReadStats()

    private let tokenCount: TokenCounter
    private let handle: FileHandle
    private let chunkSize: Int
    private var buffer: [UInt8] = []
    private var bufferStart = 0
    private var atEnd = false
    private var lineNumber = 0

    /// Opens `url`. Lines are trimmed of surrounding whitespace; blank lines and lines with fewer
    /// than `minimumTokens` tokens (as counted by `tokenCount`) are skipped and counted in ``stats``.
    public init(url: URL, minimumTokens: Int = 0, chunkSize: Int = 1 << 20,
                tokenCount: @escaping TokenCounter = UnlabeledCorpusReader.whitespaceTokenCount) throws {
        precondition(chunkSize > 0, "chunkSize must be positive")
        do {
            handle = try FileHandle(forReadingFrom: url)
        } catch {
            throw DataError.unreadable(file: url.path, reason: fileErrorReason(error, path: url.path))
        }
        self.url = url
        self.minimumTokens = minimumTokens
        self.chunkSize = chunkSize
        self.tokenCount = tokenCount
    }

    deinit { try? handle.close() }

    /// The next kept line, or nil at the end of the file.
    /// - Throws: ``DataError/malformed(file:line:reason:)`` for a line that is not valid UTF-8.
    public func next() throws -> CorpusLine? {
        while let bytes = try nextRawLine() {
            lineNumber += 1
            stats.linesRead += 1
            var slice = bytes[...]
            if lineNumber == 1 && TextLines.hasByteOrderMark(bytes) { slice = slice.dropFirst(3) }
            let text = String(TextLines.trimmed(try TextLines.decode(slice, file: url.path, line: lineNumber)))
            if text.isEmpty {
                stats.blank += 1
                continue
            }
            if minimumTokens > 0 && tokenCount(text) < minimumTokens {
                stats.belowMinimumTokens += 1
                continue
            }
            stats.kept += 1
            return CorpusLine(text: text, line: lineNumber)
        }
        return nil
    }

    /// Reads up to `limit` kept lines (all when nil) and the stats of the read.
    public static func read(url: URL, minimumTokens: Int = 0, limit: Int? = nil,
                            tokenCount: @escaping TokenCounter = whitespaceTokenCount) throws
        -> (lines: [CorpusLine], stats: CorpusReadStats)
    {
        let reader = try UnlabeledCorpusReader(url: url, minimumTokens: minimumTokens, tokenCount: tokenCount)
        var lines: [CorpusLine] = []
        while limit.map({ lines.count < $0 }) ?? true, let line = try reader.next() {
            lines.append(line)
        }
        return (lines, reader.stats)
    }

    /// The bytes of the next physical line without its LF (and CR), or nil at the end.
    private func nextRawLine() throws -> [UInt8]? {
        while true {
            if let newline = buffer[bufferStart...].firstIndex(of: 0x0A) {
                var end = newline
                if end > bufferStart && buffer[end - 1] == 0x0D { end -= 1 }
                try TextLines.checkLength(end - bufferStart, file: url.path, line: lineNumber + 1, what: "line")
                let line = Array(buffer[bufferStart..<end])
                bufferStart = newline + 1
                return line
            }
            if atEnd {
                guard bufferStart < buffer.count else { return nil }
                try TextLines.checkLength(buffer.count - bufferStart, file: url.path, line: lineNumber + 1, what: "line")
                let line = Array(buffer[bufferStart...])
                bufferStart = buffer.count
                return line
            }
            // Keep the unfinished tail, then append the next chunk; a tail already over the line
            // limit (+ 1 for a CR before the LF) would grow without bound on a file with no newline.
            buffer.removeSubrange(0..<bufferStart)
            bufferStart = 0
            if buffer.count > InputLimits.maxLineBytes + 1 {
                try TextLines.checkLength(buffer.count, file: url.path, line: lineNumber + 1, what: "line")
            }
            let chunk: Data?
            do {
                chunk = try handle.read(upToCount: chunkSize)
            } catch {
                throw DataError.unreadable(file: url.path, reason: fileErrorReason(error, path: url.path))
            }
            if let chunk, !chunk.isEmpty {
                buffer.append(contentsOf: chunk)
            } else {
                atEnd = true
            }
        }
    }
}
