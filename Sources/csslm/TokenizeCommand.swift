// `csslm tokenize`: text lines in, one JSON array of token ids per line out, streaming: input is
// read in 64 KiB blocks and each line encoded as it comes, so a file of any size runs in constant
// memory, and the output has exactly one line per input line.
import ArgumentParser
import CSSLM
import Foundation

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Token ids of text lines, as HF's BertTokenizer gives them.",
        discussion: """
            Reads stdin (or --input), writes one JSON array of ids per input line to stdout.
            raw: each line is the text (a trailing \\r is dropped).
            json: each line is a JSON string, or an object with "text" and an optional "pair".
            Example: echo 'Hello, world!' | csslm tokenize --model assets/models/all-MiniLM-L6-v2
            """)

    @Option(help: "Model folder with vocab.txt (and tokenizer_config.json / tokenizer.json).")
    var model: String

    @Option(help: "Read this file instead of stdin.")
    var input: String?

    @Option(help: "raw: one text a line; json: one JSON string (or {\"text\", \"pair\"} object) a line.")
    var inputFormat: InputFormat = .raw

    @Option(parsing: .unconditional, help: "Truncate to this many tokens, special tokens included (default: no truncation).")
    var maxLength: Int?

    @Flag(help: "Leave out [CLS] and [SEP].")
    var noSpecialTokens = false

    func validate() throws {
        if let maxLength { try NumericRanges.check(command: "tokenize", flag: "--max-length", maxLength) }
    }

    func run() throws {
        let tokenizer = try WordPieceTokenizer(modelDirectory: URL(fileURLWithPath: model))
        let source = input ?? "stdin"
        let fd = input.map { open($0, O_RDONLY) } ?? STDIN_FILENO
        guard fd >= 0 else {
            throw InputError(description: "\(source): cannot open (\(String(cString: strerror(errno))))")
        }
        defer { if input != nil { close(fd) } }

        let decoder = JSONDecoder()
        var out: [UInt8] = []
        out.reserveCapacity(1 << 17)
        var lineNumber = 0
        // Output goes out before every read that may block, so a line piped in gets its answer
        // at once (usable as a co-process), and in 64 KiB writes otherwise.
        try forEachLine(fd: fd, source: source, beforeRead: { writeOut(&out) }) { line in
            lineNumber += 1
            var line = line
            if line.last == 0x0D { line = UnsafeBufferPointer(rebasing: line.dropLast()) }
            let text: String, pair: String?
            switch inputFormat {
            case .raw:
                // Invalid UTF-8 is an error at its line, never a silent U+FFFD (docs/limits.md).
                guard let decoded = String(bytes: line, encoding: .utf8) else {
                    throw InputError(description: "\(source) line \(lineNumber): invalid UTF-8")
                }
                text = decoded
                pair = nil
            case .json:
                do {
                    let item = try decoder.decode(InputLine.self, from: Data(line))
                    (text, pair) = (item.text, item.pair)
                } catch {
                    throw InputError(description: "\(source) line \(lineNumber): expected a JSON string or an object with \"text\" (\(error))")
                }
            }
            let ids = tokenizer.encode(text, pair: pair, maxLength: maxLength,
                                       addSpecialTokens: !noSpecialTokens).ids
            appendJSONArray(ids, to: &out)
            if out.count >= 1 << 16 { writeOut(&out) }
        }
        writeOut(&out)
    }
}

/// Calls `body` with every line of `fd` (without its "\n"; a last line without one counts too),
/// reading 64 KiB at a time; a line longer than the buffer grows it.
private func forEachLine(fd: Int32, source: String, beforeRead: () -> Void,
                         _ body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    var start = 0, end = 0
    while true {
        try buffer.withUnsafeMutableBufferPointer { b in
            let base = b.baseAddress!
            while start < end, let nl = memchr(base + start, 0x0A, end - start) {
                let stop = nl.assumingMemoryBound(to: UInt8.self) - base
                try body(UnsafeBufferPointer(rebasing: b[start..<stop]))
                start = stop + 1
            }
            if start > 0 {
                memmove(base, base + start, end - start)
                end -= start
                start = 0
            }
        }
        if end == buffer.count { buffer += [UInt8](repeating: 0, count: buffer.count) }
        beforeRead()
        let n = buffer.withUnsafeMutableBufferPointer { read(fd, $0.baseAddress! + end, $0.count - end) }
        if n < 0 {
            if errno == EINTR { continue }
            throw InputError(description: "\(source): read error (\(String(cString: strerror(errno))))")
        }
        if n == 0 {
            if end > 0 { try buffer.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[0..<end])) } }
            return
        }
        end += n
    }
}

/// A bad input file or line (reported without the usage text a ValidationError brings).
private struct InputError: Error, CustomStringConvertible {
    var description: String
}

/// Appends `[1,2,3]\n` without going through String formatting.
private func appendJSONArray(_ ids: [Int32], to out: inout [UInt8]) {
    out.append(UInt8(ascii: "["))
    var digits = [UInt8](repeating: 0, count: 12)
    for (k, id) in ids.enumerated() {
        if k > 0 { out.append(UInt8(ascii: ",")) }
        var v = Int(id)
        if v < 0 { out.append(UInt8(ascii: "-")); v = -v }
        var n = 0
        repeat {
            digits[n] = UInt8(48 + v % 10)
            v /= 10
            n += 1
        } while v > 0
        while n > 0 { n -= 1; out.append(digits[n]) }
    }
    out.append(UInt8(ascii: "]"))
    out.append(UInt8(ascii: "\n"))
}

/// Writes all of `out` to stdout and empties it.
private func writeOut(_ out: inout [UInt8]) {
    out.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = write(STDOUT_FILENO, raw.baseAddress! + done, raw.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                perror("csslm tokenize: write")
                exit(1)
            }
            done += n
        }
    }
    out.removeAll(keepingCapacity: true)
}
