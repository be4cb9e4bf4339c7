// How `tokenize` and `embed` read their input lines: the text itself, or one JSON value a line
// (a string, or an object with "text" and an optional "pair" for a sentence pair).
import ArgumentParser
import Foundation

/// `--input-format`: raw (one text a line) or json.
enum InputFormat: String, ExpressibleByArgument, CaseIterable {
    case raw, json
}

/// One input line: a text, and with `--input-format json` maybe a pair.
struct InputLine: Decodable {
    var text: String
    var pair: String?
    private enum Keys: String, CodingKey { case text, pair }

    init(text: String, pair: String? = nil) { (self.text, self.pair) = (text, pair) }

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
