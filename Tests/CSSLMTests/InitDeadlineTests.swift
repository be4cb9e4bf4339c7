// The wait inside MPI initialisation for the other ranks has the one deadline too
// (MPIRuntime.initialize runs MPI_Init_thread under the collective watchdog; docs/checkpoints.md). Found by ChaosTests: a rank SIGSTOPped
// 0.25 s after launch, before MPI_Init_thread, left the other rank waiting there with no watchdog.
import Foundation
import XCTest
@testable import CSSLM

final class InitDeadlineTests: XCTestCase {
    /// Rank 0 of the job is a process that never initialises MPI (`sleep`, under mpirun's MPMD
    /// form): csslm on rank 1 must end the job at the deadline, saying what it waited for.
    func testARankThatNeverStartsEndsTheJobAtTheOneDeadline() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-init-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (model, data) = try TrainerTests.makeTinyTask(in: dir)
        let args = ["train", "--model", model.path, "--data", data.path, "--output", dir.appendingPathComponent("run").path,
                    "--method", "finetune", "--per-class", "4", "--steps", "1"]
        let start = Date()
        let (status, output) = try TrainerTests.runCSSLM(args, ranks: nil, limit: 90,
                                                         launcher: ["mpirun", "--oversubscribe", "-np", "1", "sleep", "80", ":", "-np", "1"],
                                                         environment: ["CSSLM_COLLECTIVE_TIMEOUT_S": "3"])
        let seconds = Date().timeIntervalSince(start)
        XCTAssertNotEqual(status, 124, "the job hung until the test's own limit: \(output)")
        XCTAssertEqual(status, MPIRuntime.stallExitCode, output)
        XCTAssertLessThan(seconds, 40, output)
        XCTAssertTrue(output.contains("csslm watchdog: rank 1 of 2 on ")
                      && output.contains("in collective 'MPI initialisation (waiting for every rank to start)'")
                      && output.contains("(deadline 3.0 s)"), output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("run/result.json").path))
    }
}
