// Diagnostics on standard error, every line tagged with the rank that said it: under mpirun the
// ranks' stderr streams interleave, and "[rank 1] warning: …" says who. Progress stays on stdout
// from rank 0 (one line per step); this is for data reports, skipped updates and failures
// (watchdog, abort). The csslm tool bootstraps it once (`RankLogHandler.bootstrap`); a program that
// does not gets swift-log's default handler, which also writes to stderr.
import Foundation
import Logging

/// A swift-log handler that writes `[rank R] level: message key=value …` lines to stderr, the rank
/// taken from the `rank` metadata (set from the MPI launch environment when the logger is made,
/// 0 outside mpirun, and by whoever knows the communicator's rank).
///
/// ```swift
/// RankLogHandler.bootstrap(level: .info)
/// var log = Logger(label: "csslm.train")
/// log[metadataKey: "rank"] = "\(communicator.rank)"
/// log.warning("update skipped")          // [rank 0] warning: update skipped
/// ```
public struct RankLogHandler: LogHandler {
    public var metadata: Logger.Metadata
    public var logLevel: Logger.Level
    public let label: String

    public init(label: String, level: Logger.Level = .info, rank: String? = RankLogHandler.launchRank) {
        self.label = label
        logLevel = level
        metadata = rank.map { ["rank": .string($0)] } ?? [:]
    }

    /// This process's rank as mpirun (Open MPI or PMIx) announces it; "0" outside mpirun.
    public static var launchRank: String {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_RANK"] ?? env["PMIX_RANK"] ?? "0"
    }

    /// Makes every Logger of this process a RankLogHandler at `level` (swift-log allows one bootstrap),
    /// and logs the BLAS core the process runs (`BLASCore.logOnce`).
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { RankLogHandler(label: $0, level: level) }
        BLASCore.logOnce()
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The line `log(event:)` writes, without its newline.
    public func line(level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?) -> String {
        var all = metadata
        if let extra { all.merge(extra) { $1 } }
        let rank = all.removeValue(forKey: "rank").map { "[rank \($0)] " } ?? ""
        let fields = all.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
        return "\(rank)\(level): \(message)\(fields)"
    }

    public func log(event: LogEvent) {
        // One write per line, so lines from the watchdog thread and the main thread never mix.
        fputs(line(level: event.level, message: event.message, metadata: event.metadata) + "\n", stderr)
    }
}
