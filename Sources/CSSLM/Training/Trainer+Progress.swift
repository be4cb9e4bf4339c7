// Small pieces of the step loop: the step the runtime is told about, stage seeds from stage
// names, and rank 0's progress line.
import Foundation

extension Communicator {
    /// Tells the runtime (watchdog, abort messages) which step is running.
    func setStep(_ step: Int) { self.step = step }
}

extension String {
    /// A hash that is the same in every process (Swift's hashValue is seeded per process).
    var hashValueStable: Int {
        var h = FNV1a()
        h.add(bytes: utf8)
        return Int(truncatingIfNeeded: h.value & 0x7FFF_FFFF)
    }
}

/// Rank 0's one progress line per step: an updating line on a terminal, plain lines otherwise.
final class ProgressLine {
    let total: Int
    /// Steps done before this session (a resumed stage): the ETA counts only this session's pace.
    let done: Int
    let enabled: Bool
    let isTTY = isatty(STDOUT_FILENO) != 0 && !MPIRuntime.isLaunchedByMPIRun
    let started = Date()
    private var open = false

    init(total: Int, done: Int = 0, enabled: Bool) { self.total = total; self.done = done; self.enabled = enabled }

    func update(step: Int, text: String) {
        guard enabled else { return }
        let elapsed = Date().timeIntervalSince(started)
        let eta = step > done ? elapsed / Double(step - done) * Double(total - step) : 0
        let line = "\(text) ETA \(Int(eta))s"
        if isTTY {
            print("\r\u{1B}[2K" + line, terminator: "")
            fflush(stdout)
            open = true
        } else {
            print(line)
        }
    }

    func finishLine() {
        if open { print(""); open = false }
    }
}
