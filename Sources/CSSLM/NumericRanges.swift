// The valid range of every numeric flag and run-config field, for every command, in one table
// (docs/limits.md#numeric-flags-and-fields). TrainConfig.validate (train, experiment) and the
// other commands' validate() check through it, and `train --help` states the ranges from it.
// The upper bounds are far beyond any sensible run; they exist so that a typo (an extra digit,
// a pasted byte count) is an error naming the flag instead of an allocation or a loop that
// never ends. Seeds are any UInt64 and are left to the argument parser.
import Foundation

/// A closed or half-open interval of valid values, with what special values mean.
public struct NumericRange: Sendable, Equatable {
    public let lower: Double
    public let upper: Double
    /// Whether `lower` itself is invalid (a learning rate or temperature must be positive).
    public let lowerExclusive: Bool
    public let upperExclusive: Bool
    /// Whether the value must be a whole number (an Int field of the run config).
    public let integer: Bool
    /// What special values mean, e.g. "0 = use epochs".
    public let note: String?

    static func count(_ lower: Int, _ upper: Int, _ note: String? = nil) -> NumericRange {
        NumericRange(lower: Double(lower), upper: Double(upper), lowerExclusive: false, upperExclusive: false, integer: true, note: note)
    }

    static func real(_ lower: Double, _ upper: Double, lowerExclusive: Bool = false, upperExclusive: Bool = false) -> NumericRange {
        NumericRange(lower: lower, upper: upper, lowerExclusive: lowerExclusive, upperExclusive: upperExclusive, integer: false, note: nil)
    }

    /// NaN is outside every range (every comparison with it is false).
    public func contains(_ v: Double) -> Bool {
        (lowerExclusive ? v > lower : v >= lower) && (upperExclusive ? v < upper : v <= upper) && (!integer || v == v.rounded())
    }

    /// "1…65536", "(0, 10]", "[0, 1)".
    public var text: String {
        func n(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x) }
        if integer { return "\(n(lower))…\(n(upper))" }
        return (lowerExclusive ? "(" : "[") + n(lower) + ", " + n(upper) + (upperExclusive ? ")" : "]")
    }
}

public enum NumericRanges {
    static let steps = 10_000_000
    static let batch = 65_536

    /// Run-config fields (`csslm train`, `csslm experiment`), by field name; each is also the
    /// flag `--kebab-case-name`.
    public static let fields: [String: NumericRange] = [
        "perClass": .count(1, 100_000),
        "epochs": .count(1, 100_000),
        "steps": .count(0, steps, "0 = use epochs"),
        "initSteps": .count(0, steps, "0 = use initEpochs"),
        "evalEvery": .count(0, steps, "0 = after every epoch"),
        "batchSize": .count(1, batch),
        "learningRate": .real(0, 10, lowerExclusive: true),
        "weightDecay": .real(0, 100),
        "warmupFraction": .real(0, 1, upperExclusive: true),
        "maxGradNorm": .real(0, 1e6, lowerExclusive: true),
        "maxLength": .count(3, 512),
        "evalBatchSize": .count(1, batch),
        "devLimit": .count(0, 100_000_000, "0 = all"),
        "testLimit": .count(0, 100_000_000, "0 = all"),
        "initEpochs": .count(1, 100_000),
        "poolSize": .count(1, 100_000_000),
        "minCorpusTokens": .count(0, 512),
        "corpusMaxLength": .count(3, 512),
        "topK": .count(1, 100_000),
        "negatives": .count(0, 100_000),
        "refreshEvery": .count(0, steps, "0 = never"),
        "prototypeWeight": .real(0, 1e6),
        "temperature": .real(0, 100, lowerExclusive: true),
        "checkpointEvery": .count(-1, steps, "0 = at epoch ends only, -1 = never"),
        "keepCheckpoints": .count(1, 10_000),
    ]

    /// The numeric flags of the other commands, by "command --flag".
    public static let commandFlags: [String: NumericRange] = [
        "train --stop-after-steps": .count(1, steps),
        "experiment --samples": .count(1, 10_000),
        "eval --batch-size": .count(1, batch), "eval --max-length": .count(3, InputLimits.maxSequenceLength),
        "predict --batch-size": .count(1, batch), "predict --max-length": .count(3, InputLimits.maxSequenceLength),
        "embed --batch-size": .count(1, batch), "embed --max-length": .count(3, InputLimits.maxSequenceLength),
        "tokenize --max-length": .count(1, InputLimits.maxSequenceLength),
        "export --max-length": .count(3, InputLimits.maxSequenceLength),
    ]

    /// `perClass` → `--per-class`.
    public static func flag(ofField field: String) -> String {
        "--" + field.reduce(into: "") { s, c in s += c.isUppercase ? "-" + c.lowercased() : String(c) }
    }

    /// Checks a run-config field; the error names the field and its flag.
    public static func check(field: String, _ value: Double) throws {
        guard let range = fields[field] else { preconditionFailure("no range for field \(field)") }
        guard range.contains(value) else {
            throw CSSLMError("run config: field '\(field)' (\(flag(ofField: field))) must be in \(range.text)"
                             + (range.note.map { " (\($0))" } ?? "") + ", got \(describe(value))")
        }
    }

    /// Checks a flag of `command`; the error names the flag.
    public static func check(command: String, flag: String, _ value: Int) throws {
        guard let range = commandFlags["\(command) \(flag)"] else { preconditionFailure("no range for \(command) \(flag)") }
        guard range.contains(Double(value)) else {
            throw CSSLMError("\(flag) must be in \(range.text)" + (range.note.map { " (\($0))" } ?? "") + ", got \(value)")
        }
    }

    /// The help line of a run-config field's flag: what it is, its range and its default.
    public static func help(_ field: String, _ what: String, default value: String) -> String {
        let range = fields[field].map { " Range \($0.text)" + ($0.note.map { "; \($0)" } ?? "") + "." } ?? ""
        return "\(what)\(range) (default: \(value))"
    }

    static func describe(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v) }
}
