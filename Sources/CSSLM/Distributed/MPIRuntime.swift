// Process-wide MPI state: whether mpirun started this process, initialisation with the thread
// level the watchdog needs, finalisation once at exit, and aborting the whole job.
import CMPI
import Foundation
import Logging

/// Process-wide MPI state: initialisation, finalisation and aborting.
public enum MPIRuntime {
    /// The exit code of a job aborted by the collective watchdog.
    public static let stallExitCode: Int32 = 3

    /// True when this process was started by mpirun (not an MPI singleton).
    public static var isLaunchedByMPIRun: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil
    }

    /// The thread support MPI granted (MPI_THREAD_*); 0 before initialisation.
    public private(set) static var threadLevel: Int32 = 0

    private static let lock = NSLock()

    /// Initialises MPI once per process (MPI_Init_thread, asking for MPI_THREAD_MULTIPLE so the
    /// watchdog thread may call MPI_Abort while the main thread waits in a collective).
    /// Also makes standard output line-buffered: mpirun otherwise holds it until the rank exits.
    public static func initialize() throws {
        try lock.withLock {
            var flag: Int32 = 0
            MPI_Finalized(&flag)
            if flag != 0 {
                throw CommunicatorError(collective: "MPI initialisation", message: "MPI was already finalized in this process")
            }
            MPI_Initialized(&flag)
            if flag != 0 { return }
            setvbuf(stdout, nil, _IOLBF, 0)
            if !isLaunchedByMPIRun {
                // A singleton that never spawns needs no runtime daemon: starts in ~0.25 s, not ~0.45 s.
                setenv("OMPI_MCA_ess_singleton_isolated", "1", 0)
            }
            var provided: Int32 = 0
            // MPI_Init_thread waits for every rank to start; a rank stopped before it (found by
            // ChaosTests) would leave the others there forever, so the one deadline watches it too.
            let watchdog = launcherWatchdog(deadline: try CollectiveWatchdog.deadlineFromEnvironment())
            let rc = watchdog?.watching("MPI initialisation (waiting for every rank to start)", step: -1) {
                MPI_Init_thread(nil, nil, CSSLM_MPI_THREAD_MULTIPLE, &provided)
            } ?? MPI_Init_thread(nil, nil, CSSLM_MPI_THREAD_MULTIPLE, &provided)
            guard rc == CSSLM_MPI_SUCCESS else {
                throw CommunicatorError(collective: "MPI initialisation", function: "MPI_Init_thread", code: rc,
                                        message: mpiErrorMessage(rc) + " (hint: is Open MPI installed? run scripts/setup.sh)")
            }
            threadLevel = provided
        }
    }

    /// The watchdog of the waits inside MPI_Init_thread and MPI_Finalize under mpirun (rank and
    /// size from the launcher's environment; nil when run alone, where there is no one to wait for).
    /// `onStall` ends the job; by default through `abortFromAnyThread`.
    private static func launcherWatchdog(deadline: Double, onStall: ((String) -> Void)? = nil) -> CollectiveWatchdog? {
        guard isLaunchedByMPIRun else { return nil }
        let env = ProcessInfo.processInfo.environment
        return CollectiveWatchdog(rank: Int(env["OMPI_COMM_WORLD_RANK"] ?? env["PMIX_RANK"] ?? "") ?? -1,
                                  size: Int(env["OMPI_COMM_WORLD_SIZE"] ?? "") ?? -1, host: ProcessInfo.processInfo.hostName,
                                  deadline: deadline, onStall: onStall ?? { abortFromAnyThread($0, code: stallExitCode) })
    }

    /// Finalises MPI (once, at the end of the program, after the last collective on every rank).
    /// Never call it in a test process: MPI cannot be initialised again afterwards.
    public static func finalize() {
        lock.withLock {
            var initialized: Int32 = 0, finalized: Int32 = 0
            MPI_Initialized(&initialized)
            MPI_Finalized(&finalized)
            guard initialized != 0 && finalized == 0 else { return }
            // MPI_Finalize waits for every rank to reach it; a rank stalled after the last collective
            // (found by ChaosTests: SIGSTOP in the last moments of a run) would leave the others
            // there forever. This rank's work is done, so at the deadline it only leaves (no
            // MPI_Abort from a second thread during finalisation); mpirun then ends the job.
            let deadline = (try? CollectiveWatchdog.deadlineFromEnvironment()) ?? CollectiveWatchdog.defaultDeadline
            let watchdog = launcherWatchdog(deadline: deadline) { message in
                Logger(label: "csslm.mpi").critical("\(message)")
                fflush(stdout)
                fflush(stderr)
                _exit(stallExitCode)
            }
            _ = watchdog?.watching("MPI finalisation (waiting for every rank to finish)", step: -1) { MPI_Finalize() }
        }
    }

    /// Logs `message` (critical, to standard error) and ends the whole job: MPI_Abort when MPI
    /// permits a call from this thread, else a plain exit (which mpirun also turns into the end of the job).
    public static func abortFromAnyThread(_ message: String, code: Int32) -> Never {
        Logger(label: "csslm.mpi").critical("\(message)")
        fflush(stdout)
        fflush(stderr)
        // If MPI_Abort itself hangs (a broken runtime), SIGALRM ends this process after 15 s.
        alarm(15)
        var initialized: Int32 = 0, finalized: Int32 = 0
        MPI_Initialized(&initialized)
        MPI_Finalized(&finalized)
        if initialized != 0 && finalized == 0 && (threadLevel == CSSLM_MPI_THREAD_MULTIPLE || Thread.isMainThread) {
            MPI_Abort(MPI_COMM_WORLD, code)
        }
        _exit(code)
    }
}
