// metrics.jsonl as the run finally went. A resumed session appends to the log of the session it
// continues, after a `{"kind":"resume","step":S,...}` record, and redoes every step from S on; a
// session that was killed may already have logged some of those steps (and the evaluation of an
// epoch that ended after S). The resumed session's lines supersede them. Every reader of the log
// (report.html, tests, tools) goes through `MetricsLog`, so the rule lives in one place.
import Foundation

/// One line of metrics.jsonl: its number in the file (for error messages) and its JSON object.
public struct MetricsEntry {
    public var line: Int
    public var object: [String: Any]
}

/// Reading a run's metrics.jsonl, with the lines that a resume superseded left out.
///
/// ```swift
/// let entries = try MetricsLog.read(runDirectory.appendingPathComponent(MetricsLog.fileName))
/// let losses = entries.filter { $0.object["kind"] as? String == "step" }.map { $0.object["loss"] as! Double }
/// ```
public enum MetricsLog {
    public static let fileName = "metrics.jsonl"

    /// Every entry of the file at `url` that a later resume did not supersede, in file order. A
    /// line that is not a JSON object is an error naming the file and line.
    public static func read(_ url: URL) throws -> [MetricsEntry] {
        var entries: [MetricsEntry] = []
        try RunReport.forEachObject(in: url) { line, object in entries.append(MetricsEntry(line: line, object: object)) }
        return current(entries)
    }

    /// `entries` (in file order) without those a resume superseded: an entry that describes the run
    /// after P steps is superseded when a resume record from step S < P follows it, since the
    /// resumed session went on from S steps and logged its own entry for P after that record.
    /// With several resumes the smallest later S counts (a second kill can land before the first
    /// one's step). Per step, what remains is the line written after the last resume record that
    /// redid it; resume records and entries of other kinds are kept.
    public static func current(_ entries: [MetricsEntry]) -> [MetricsEntry] {
        var resumedFrom = Int.max  // the smallest step of a resume record after the entry at hand
        var kept: [MetricsEntry] = []
        for entry in entries.reversed() {
            if entry.object["kind"] as? String == "resume", let step = entry.object["step"] as? Int {
                resumedFrom = min(resumedFrom, step)
            } else if let done = stepsDone(entry.object), done > resumedFrom {
                continue
            }
            kept.append(entry)
        }
        return kept.reversed()
    }

    /// How many steps the run had done when an entry's values were measured: after a step line's
    /// step (its `step` is the step's 0-based index), at an evaluation (its `step` is the count
    /// of steps before it). Nil for entries that no resume redoes.
    static func stepsDone(_ object: [String: Any]) -> Int? {
        guard let step = object["step"] as? Int else { return nil }
        switch object["kind"] as? String {
        case "step": return step + 1
        case "eval": return step
        default: return nil
        }
    }
}
