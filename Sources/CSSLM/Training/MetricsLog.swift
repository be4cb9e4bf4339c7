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
        try TextLines.forEachJSONObject(in: url) { line, object in entries.append(MetricsEntry(line: line, object: object)) }
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

/// Rank 0's writer of metrics.jsonl: one `write` per record, so a kill cannot leave a line
/// without its newline onto which a resumed session's first record would be appended. A failed
/// write (a full disk, a lost mount) is an error naming the file, never a crash or a lost line.
final class MetricsWriter {
    let url: URL
    private var fd: Int32

    /// Opens `url` for a new log (emptied) or, `appending`, to continue the log of a resumed run.
    init(url: URL, appending: Bool) throws {
        self.url = url
        fd = open(url.path, O_WRONLY | O_CREAT | (appending ? O_APPEND : O_TRUNC), 0o644)
        guard fd >= 0 else { throw CSSLMError("\(url.path): cannot open the metrics log (\(String(cString: strerror(errno))))") }
    }

    deinit { close() }

    /// Appends `object` as one line of sorted-key JSON. An object JSON cannot hold (a non-finite
    /// number: the step whose update was skipped) leaves no line, as before.
    func append(_ object: [String: Any]) throws {
        guard let json = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        let line = json + Data([0x0A])
        try line.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw CSSLMError("\(url.path): cannot write the metrics log (\(String(cString: strerror(n < 0 ? errno : EIO))))",
                                     hint: "free space on its disk, then continue the run with --resume latest")
                }
                done += n
            }
        }
    }

    func close() {
        if fd >= 0 { _ = Foundation.close(fd); fd = -1 }
    }
}
