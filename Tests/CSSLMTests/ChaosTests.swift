// Chaos beside the crash tests (CheckpointTests' kills at every save event, ResumeTests' stops):
// a tiny `csslm` run (stages 1–3, a checkpoint every step, so saves, retention and stage
// boundaries all fall inside it) at W = 1 and 2, and a tiny `experiment`, each attacked at random
// moments by SIGKILL or SIGSTOP of a random rank, then continued the way an operator would
// (`--resume latest` when a checkpoint exists, else `--overwrite`; the experiment simply run again)
// until it finishes. Checked: the final result and weights equal the uninterrupted run's (bit for bit
// at the same world size), a stopped rank never hangs the job (the others' watchdog ends it within
// CSSLM_COLLECTIVE_TIMEOUT_S; at W = 1 nobody is left to notice, so the "operator" kills it), and
// after every session no folder holds a result.json without a complete model/.
// Budget: CSSLM_CHAOS_SECONDS (default 40, split between the three parts); CSSLM_CHAOS_SEED
// replays a sequence. scripts/chaos.sh runs it with a longer budget.
import Foundation
import XCTest
@testable import CSSLM

final class ChaosTests: XCTestCase {
    var dir: URL!
    var model: URL!
    var data: URL!
    var rng = SplitMix64(seed: 0)
    var log: [String] = []

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-chaos-\(UUID().uuidString)")
        (model, data) = try TrainerTests.makeTinyTask(in: dir)
        let env = ProcessInfo.processInfo.environment
        let seed = env["CSSLM_CHAOS_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0..<1_000_000)
        print("[chaos] seed \(seed) (replay with CSSLM_CHAOS_SEED=\(seed))")
        rng = SplitMix64(seed: seed)
    }

    override func tearDownWithError() throws {
        print(log.joined(separator: "\n"))
        if ProcessInfo.processInfo.environment["CSSLM_KEEP_TEST_DIR"] == nil { try? FileManager.default.removeItem(at: dir) }
    }

    var budget: Double { ProcessInfo.processInfo.environment["CSSLM_CHAOS_SECONDS"].flatMap(Double.init) ?? 40 }

    func trainArgs(_ run: URL) -> [String] {
        ["train", "--model", model.path, "--data", data.path, "--output", run.path, "--method", "csslm", "--per-class", "6",
         "--batch-size", "5", "--epochs", "2", "--learning-rate", "1e-3", "--max-length", "16", "--checkpoint-every", "1",
         "--keep-checkpoints", "2", "--corpus", dir.appendingPathComponent("corpus.txt").path, "--min-corpus-tokens", "2",
         "--pool-size", "30", "--top-k", "3", "--negatives", "4", "--init-epochs", "1"]
    }

    /// A started csslm (alone or under mpirun) whose ranks can be signalled.
    struct Job {
        let process: Process
        let output: URL
        let started = Date()

        /// The csslm processes of the job: the process itself, or mpirun's csslm descendants.
        func ranks() -> [pid_t] {
            let root = process.processIdentifier
            var parent: [pid_t: pid_t] = [:], name: [pid_t: String] = [:]
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = pid_t(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                      let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { continue }
                name[pid] = String(stat[stat.index(after: open)..<close])
                let rest = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
                if rest.count > 1, let ppid = pid_t(rest[1]) { parent[pid] = ppid }
            }
            func descends(_ p: pid_t) -> Bool {
                var p = p
                while let up = parent[p] { if up == root { return true }; p = up }
                return false
            }
            let csslm = name.keys.filter { name[$0] == "csslm" && ($0 == root || descends($0)) }
            return csslm.sorted()
        }
    }

    func start(_ args: [String], ranks: Int?) throws -> Job {
        var env = ProcessInfo.processInfo.environment.filter { k, _ in !["OMPI_", "PMIX_", "OPAL_"].contains { k.hasPrefix($0) } }
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"; env["OPENBLAS_NUM_THREADS"] = "1"
        env["CSSLM_COLLECTIVE_TIMEOUT_S"] = "4"
        let binary = try TrainerTests.csslmBinary()
        let p = Process()
        if let ranks {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["mpirun", "-np", String(ranks), "--oversubscribe", "--bind-to", "none", binary.path] + args
        } else {
            p.executableURL = binary
            p.arguments = args
        }
        p.environment = env
        let out = dir.appendingPathComponent("session-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        let handle = try FileHandle(forWritingTo: out)
        p.standardOutput = handle; p.standardError = handle; p.standardInput = FileHandle.nullDevice
        try p.run()
        return Job(process: p, output: out)
    }

    /// Waits up to `seconds` for the job; false when it is still running.
    func wait(_ job: Job, seconds: Double) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while job.process.isRunning && Date() < end { usleep(20_000) }
        return !job.process.isRunning
    }

    /// True while `pid` exists and is not a zombie.
    static func isAlive(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].hasPrefix(" Z")
    }

    /// Runs one session, attacking it after `delay` seconds (nil: left alone); returns its exit status.
    func session(_ args: [String], ranks: Int?, attackAfter delay: Double?, what: String) throws -> Int32 {
        let job = try start(args, ranks: ranks)
        if let delay, !wait(job, seconds: delay) {
            let targets = job.ranks()
            if !targets.isEmpty {
                let victim = targets[rng.nextInt(below: targets.count)]
                let stop = rng.nextInt(below: 2) == 0
                kill(victim, stop ? SIGSTOP : SIGKILL)
                let rank = targets.firstIndex(of: victim)!
                if stop && ranks != nil {
                    // The other rank's watchdog must end the job (deadline 4 s, plus mpirun's teardown),
                    // or, when the stop came after the stopped rank's last wait (MPI_Finalize's), the other
                    // rank finishes on its own and only the stopped process is left: as at W = 1, nobody is
                    // left to notice, so the "operator" kills it.
                    let survivors = targets.filter { $0 != victim }
                    let end = Date().addingTimeInterval(30)
                    while job.process.isRunning && !survivors.allSatisfy({ !Self.isAlive($0) }) && Date() < end { usleep(20_000) }
                    let ended = !job.process.isRunning
                    let finished = !ended && survivors.allSatisfy { !Self.isAlive($0) }
                    XCTAssertTrue(ended || finished, "\(what): a stopped rank hung the job")
                    if finished { kill(victim, SIGKILL) }
                    log.append("[chaos] \(what): SIGSTOP rank pid #\(rank) at \(String(format: "%.2f", delay)) s → "
                               + (finished ? "the other rank finished; the stopped one was past its last wait (killed)"
                                           : "job ended by the watchdog: \(ended)"))
                } else {
                    if stop { usleep(300_000); kill(victim, SIGKILL) }    // W = 1: the operator kills the stopped process
                    log.append("[chaos] \(what): \(stop ? "SIGSTOP+SIGKILL" : "SIGKILL") process #\(rank) at \(String(format: "%.2f", delay)) s")
                }
            }
        }
        if !wait(job, seconds: 120) { job.process.terminate(); XCTFail("\(what): did not end") }
        for pid in job.ranks() { kill(pid, SIGKILL) }
        job.process.waitUntilExit()
        return job.process.terminationStatus
    }

    /// No folder under `root` holds result.json without a complete model/ (nothing kept is incomplete).
    func assertNoIncompleteRun(under root: URL, _ what: String) {
        let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
        while let url = walker?.nextObject() as? URL {
            guard url.lastPathComponent == RunFolder.resultFile else { continue }
            let run = url.deletingLastPathComponent()
            guard FileManager.default.fileExists(atPath: run.appendingPathComponent("metrics.jsonl").path) else { continue }
            XCTAssertNotNil(RunFolder.finishedResult(in: run), "\(what): \(run.path) has result.json but no complete model/")
        }
    }

    func result(_ run: URL) throws -> RunResult {
        var r = try JSONDecoder().decode(RunResult.self, from: Data(contentsOf: run.appendingPathComponent(RunFolder.resultFile)))
        r.seconds = 0
        return r
    }

    func testKilledAndStoppedRanksResumeToTheUninterruptedResult() throws {
        let share = budget / 3
        for ranks in [nil, 2] as [Int?] {
            let w = ranks ?? 1
            let reference = dir.appendingPathComponent("reference-w\(w)")
            let t0 = Date()
            XCTAssertEqual(try session(trainArgs(reference), ranks: ranks, attackAfter: nil, what: "reference W=\(w)"), 0)
            let duration = Date().timeIntervalSince(t0)
            let expected = try result(reference)
            let expectedTensors = try ResumeTests.finalTensors(of: reference, steps: expected.steps)
            let end = Date().addingTimeInterval(share)
            var trial = 0
            repeat {
                trial += 1
                let run = dir.appendingPathComponent("chaos-w\(w)-\(trial)")
                var sessions = 0
                while !FileManager.default.fileExists(atPath: run.appendingPathComponent(RunFolder.resultFile).path) {
                    sessions += 1
                    XCTAssertLessThan(sessions, 30, "W=\(w) trial \(trial): no end")
                    if sessions >= 30 { return }
                    let hasCheckpoint = ((try? FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("checkpoints").path)) ?? [])
                        .contains { $0.hasPrefix("step-") }
                    let args = trainArgs(run) + (sessions == 1 ? [] : hasCheckpoint ? ["--resume", "latest"] : ["--overwrite"])
                    // Every other session (and always after the 6th) runs to its end, so trials finish.
                    let attack = sessions <= 6 && rng.nextInt(below: 3) > 0 ? Double(rng.nextInt(below: 1000)) / 1000 * duration * 1.2 : nil
                    let status = try session(args, ranks: ranks, attackAfter: attack, what: "W=\(w) trial \(trial) session \(sessions)")
                    if attack == nil { XCTAssertEqual(status, 0, "W=\(w) trial \(trial) session \(sessions) left alone") }
                    assertNoIncompleteRun(under: dir, "W=\(w) trial \(trial) session \(sessions)")
                }
                XCTAssertEqual(try result(run), expected, "W=\(w) trial \(trial): result differs from the uninterrupted run")
                ResumeTests.assertBitIdentical(try ResumeTests.finalTensors(of: run, steps: expected.steps), expectedTensors,
                                               "W=\(w) trial \(trial)")
                log.append("[chaos] W=\(w) trial \(trial): finished after \(sessions) session(s), result and weights equal the reference")
            } while Date() < end
        }
    }

    /// The experiment's bookkeeping (which runs are kept, the table) under random kills.
    func testAnExperimentKilledAtRandomMomentsEndsWithTheUninterruptedTable() throws {
        let config = dir.appendingPathComponent("tiny.json")
        try JSONSerialization.data(withJSONObject: ["model": model.path, "data": data.path, "perClass": 6, "batchSize": 4, "epochs": 1,
                                                    "learningRate": 1e-3, "maxLength": 16]).write(to: config)
        func args(_ out: URL) -> [String] {
            ["experiment", config.path, "--methods", "finetune,scl", "--samples", "2", "--experiment-output", out.path]
        }
        func results(_ out: URL) throws -> [RunResult] {
            try JSONDecoder().decode([RunResult].self, from: Data(contentsOf: out.appendingPathComponent("results.json"))).map {
                var r = $0; r.seconds = 0; return r
            }
        }
        let reference = dir.appendingPathComponent("exp-reference")
        let t0 = Date()
        XCTAssertEqual(try session(args(reference), ranks: nil, attackAfter: nil, what: "experiment reference"), 0)
        let duration = Date().timeIntervalSince(t0)
        let expected = try results(reference)
        let end = Date().addingTimeInterval(budget / 3)
        var trial = 0
        repeat {
            trial += 1
            let out = dir.appendingPathComponent("exp-\(trial)")
            var sessions = 0, status: Int32 = -1
            while status != 0 && sessions < 20 {
                sessions += 1
                let attack = sessions <= 6 ? Double(rng.nextInt(below: 1000)) / 1000 * duration : nil
                status = try session(args(out), ranks: nil, attackAfter: attack, what: "experiment trial \(trial) session \(sessions)")
                assertNoIncompleteRun(under: out, "experiment trial \(trial) session \(sessions)")
            }
            XCTAssertEqual(status, 0)
            XCTAssertEqual(try results(out), expected, "experiment trial \(trial): the table's runs differ from the uninterrupted ones")
            log.append("[chaos] experiment trial \(trial): finished after \(sessions) session(s), results equal the reference")
        } while Date() < end
    }
}
