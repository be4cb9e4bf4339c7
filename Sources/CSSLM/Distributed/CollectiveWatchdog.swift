// A thread that watches the collective this rank is in. A rank that skips a collective, or stalls
// before one, leaves every other rank waiting forever (MPI has no timeouts); the watchdog turns
// that hang into a message naming the rank, the step and the collective, then ends the job.
import Foundation

/// Watches one rank's collectives against a deadline.
///
/// The communicator calls `enter(_:step:)` before and `leave()` after every collective; a
/// collective still running after `deadline` seconds calls `onStall` with a message on the
/// watchdog's own thread (the rank's main thread is stuck inside MPI).
public final class CollectiveWatchdog: @unchecked Sendable {
    /// Seconds a collective may take before the job is aborted.
    public var deadline: Double {
        get { lock.withLock { deadlineSeconds } }
        set { lock.withLock { deadlineSeconds = newValue } }
    }

    private let rank: Int
    private let size: Int
    private let host: String?
    private let lock = NSLock()
    private var deadlineSeconds: Double
    private var current: (name: String, step: Int, since: Double)?
    private var fired = false

    /// The environment variable of the one deadline every wait of the program uses.
    public static let environmentVariable = "CSSLM_COLLECTIVE_TIMEOUT_S"
    public static let defaultDeadline = 300.0

    /// The deadline from `CSSLM_COLLECTIVE_TIMEOUT_S` when set, else `fallback` seconds.
    public static func deadlineFromEnvironment(fallback: Double = defaultDeadline) throws -> Double {
        try parseDeadline(ProcessInfo.processInfo.environment[environmentVariable], fallback: fallback)
    }

    /// Plain seconds (`600`, `2.5`), positive and finite; anything else (`10s`, `5m`, `0`, `-1`,
    /// `inf`, an empty value) is an error: a typo must not silently become the default.
    public static func parseDeadline(_ text: String?, fallback: Double = defaultDeadline) throws -> Double {
        guard let text else { return fallback }
        guard let seconds = Double(text), seconds > 0, seconds.isFinite else {
            throw CSSLMError("\(environmentVariable)='\(text)' is not a positive number of seconds",
                             hint: "write plain seconds, e.g. \(environmentVariable)=600 (unset: \(Int(defaultDeadline)) s)")
        }
        return seconds
    }

    /// `host` (the node's name) goes into the message: across nodes, the first thing to look at.
    public init(rank: Int, size: Int, host: String? = nil, deadline: Double, onStall: @escaping (String) -> Void) {
        self.rank = rank
        self.size = size
        self.host = host
        self.deadlineSeconds = deadline
        // The thread holds the watchdog weakly (strongly only during one poll), so it ends once
        // the watchdog is released.
        let thread = Thread { [weak self] in
            while true {
                guard let (interval, stalled) = self?.check() else { return }
                if let stalled {
                    onStall(stalled)
                    return
                }
                usleep(useconds_t(interval * 1_000_000))
            }
        }
        thread.name = "csslm-collective-watchdog"
        thread.start()
    }

    /// Marks the start of collective `name` at training step `step` (-1: outside training).
    public func enter(_ name: String, step: Int) {
        let now = monotonicSeconds()
        lock.withLock { current = (name, step, now) }
    }

    /// Marks the end of the current collective.
    public func leave() {
        lock.withLock { current = nil }
    }

    /// Runs `body` as collective `name`.
    @inline(__always)
    public func watching<T>(_ name: String, step: Int, _ body: () throws -> T) rethrows -> T {
        enter(name, step: step)
        defer { leave() }
        return try body()
    }

    /// Runs `body` with `seconds` as the deadline, then restores the previous one: for a
    /// collective known to wait long, e.g. the barrier after rank 0 writes a checkpoint.
    public func withDeadline<T>(_ seconds: Double, _ body: () throws -> T) rethrows -> T {
        let saved = deadline
        deadline = seconds
        defer { deadline = saved }
        return try body()
    }

    /// Polls often enough to report within ~5% of the deadline.
    private static func pollInterval(deadline: Double) -> Double { min(max(deadline / 20, 0.01), 0.5) }

    /// One poll: the interval until the next one, and a message when the current collective is late.
    private func check() -> (Double, String?) {
        lock.withLock {
            let interval = Self.pollInterval(deadline: deadlineSeconds)
            guard !fired, let c = current else { return (interval, nil) }
            let waited = monotonicSeconds() - c.since
            guard waited > deadlineSeconds else { return (interval, nil) }
            fired = true
            let message = """
                csslm watchdog: rank \(rank) of \(size)\(host.map { " on \($0)" } ?? "") has waited \(String(format: "%.1f", waited)) s \
                in collective '\(c.name)'\(c.step >= 0 ? " at step \(c.step)" : "") (deadline \(String(format: "%.1f", deadlineSeconds)) s): \
                another rank has stalled, failed or skipped this collective. Aborting the job.
                hint: look for an earlier message from another rank; if a collective legitimately waits \
                longer (e.g. on rank 0 writing a checkpoint), raise CSSLM_COLLECTIVE_TIMEOUT_S.
                """
            return (interval, message)
        }
    }
}

/// Seconds on a monotonic clock (for durations only).
@inline(__always)
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
