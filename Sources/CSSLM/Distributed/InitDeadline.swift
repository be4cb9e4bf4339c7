// MPI_Init_thread waits for every rank of the job to start (a fence in the runtime); a rank that
// is stopped or stalls before it leaves the others waiting there forever, before the collective
// watchdog exists. This guard gives that wait the same one deadline (CSSLM_COLLECTIVE_TIMEOUT_S,
// docs/checkpoints.md#one-deadline): past it the process says why and exits, which mpirun turns
// into the end of the whole job.
import Foundation

final class InitDeadline: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false

    /// Starts the guard's thread; call `finished()` once MPI_Init_thread has returned.
    init(seconds: Double) {
        let env = ProcessInfo.processInfo.environment
        let rank = env["OMPI_COMM_WORLD_RANK"] ?? env["PMIX_RANK"] ?? "?"
        let size = env["OMPI_COMM_WORLD_SIZE"] ?? "?"
        let host = ProcessInfo.processInfo.hostName
        let start = Date()
        let thread = Thread { [self] in
            while Date().timeIntervalSince(start) < seconds {
                usleep(50_000)
                if lock.withLock({ done }) { return }
            }
            guard !lock.withLock({ done }) else { return }
            let message = "csslm: rank \(rank) of \(size) on \(host) has waited \(String(format: "%.1f", seconds)) s in MPI "
                + "initialisation for the other ranks to start (\(CollectiveWatchdog.environmentVariable) = \(seconds) s); "
                + "a rank is stopped, stalled or never started: ending the job\n"
            FileHandle.standardError.write(Data(message.utf8))
            _exit(1)
        }
        thread.name = "csslm-init-deadline"
        thread.start()
    }

    func finished() { lock.withLock { done = true } }
}
