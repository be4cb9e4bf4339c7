// `csslm report RUN`: (re)writes RUN/report.html from what the run folder holds (the trainer writes
// it at the end of a run; this redoes it for an older or an unfinished run).
import ArgumentParser
import CSSLM
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write report.html for a run folder.",
        discussion: """
            Reads RUN/config.json, RUN/metrics.jsonl and, when present, RUN/result.json, \
            RUN/retrieved.jsonl and RUN/model/labels.txt; writes RUN/report.html: loss and \
            dev-accuracy curves (inline SVG), the test confusion matrix at the best dev epoch, \
            retrieved sentences per class, and the config.
            """)

    @Argument(help: "Run folder written by `csslm train`.") var directory: String

    func run() throws {
        print("[report] \(try RunReport(runDirectory: URL(fileURLWithPath: directory)).write().path)")
    }
}
