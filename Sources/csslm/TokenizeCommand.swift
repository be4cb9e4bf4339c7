// `csslm tokenize`: text lines in, one JSON array of token ids per line out, streaming: each line
// is read, encoded and written before the next is read, so a file of any size runs in constant
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

    enum InputFormat: String, ExpressibleByArgument, CaseIterable {
        case raw, json
    }

    @Option(help: "Model folder with vocab.txt (and tokenizer_config.json / tokenizer.json).")
    var model: String

    @Option(help: "Read this file instead of stdin.")
    var input: String?

    @Option(help: "raw: one text a line; json: one JSON string (or {\"text\", \"pair\"} object) a line.")
    var inputFormat: InputFormat = .raw

    @Option(help: "Truncate to this many tokens, special tokens included (default: no truncation).")
    var maxLength: Int?

    @Flag(help: "Leave out [CLS] and [SEP].")
    var noSpecialTokens = false

    func validate() throws {
        if let maxLength, maxLength < 1 {
            throw ValidationError("--max-length must be at least 1")
        }
    }

    func run() throws {
        let tokenizer = try WordPieceTokenizer(modelDirectory: URL(fileURLWithPath: model))
        let source = input ?? "stdin"
        guard let file = input.map({ fopen($0, "rb") }) ?? stdin else {
            throw ValidationError("\(source): cannot open (\(String(cString: strerror(errno))))")
        }
        defer { if input != nil { fclose(file) } }

        let decoder = JSONDecoder()
        var out: [UInt8] = []
        out.reserveCapacity(1 << 17)
        var ids: [Int32] = []
        var linePointer: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(linePointer) }
        var lineNumber = 0
        while true {
            let n = getline(&linePointer, &capacity, file)
            if n < 0 { break }
            lineNumber += 1
            var length = n
            let bytes = UnsafeRawPointer(linePointer!).assumingMemoryBound(to: UInt8.self)
            if length > 0 && bytes[length - 1] == 0x0A { length -= 1 }
            if length > 0 && bytes[length - 1] == 0x0D { length -= 1 }
            let line = UnsafeBufferPointer(start: bytes, count: length)

            let text: String, pair: String?
            switch inputFormat {
            case .raw:
                text = String(decoding: line, as: UTF8.self)
                pair = nil
            case .json:
                do {
                    let item = try decoder.decode(JSONLine.self, from: Data(line))
                    (text, pair) = (item.text, item.pair)
                } catch {
                    throw ValidationError("\(source) line \(lineNumber): expected a JSON string or an object with \"text\" (\(error))")
                }
            }
            ids = tokenizer.encode(text, pair: pair, maxLength: maxLength,
                                   addSpecialTokens: !noSpecialTokens).ids
            appendJSONArray(ids, to: &out)
            if out.count >= 1 << 16 { flush(&out) }
        }
        if ferror(file) != 0 {
            throw ValidationError("\(source): read error after line \(lineNumber)")
        }
        flush(&out)
        fflush(stdout)
    }
}

/// One line of `--input-format json`.
private struct JSONLine: Decodable {
    var text: String
    var pair: String?
    private enum Keys: String, CodingKey { case text, pair }

    init(from decoder: Decoder) throws {
        if let s = try? decoder.singleValueContainer().decode(String.self) {
            text = s
            pair = nil
        } else {
            let c = try decoder.container(keyedBy: Keys.self)
            text = try c.decode(String.self, forKey: .text)
            pair = try c.decodeIfPresent(String.self, forKey: .pair)
        }
    }
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

private func flush(_ out: inout [UInt8]) {
    out.withUnsafeBufferPointer { _ = fwrite($0.baseAddress, 1, $0.count, stdout) }
    out.removeAll(keepingCapacity: true)
}
