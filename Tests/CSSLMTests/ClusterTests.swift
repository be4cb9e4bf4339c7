// csslm across hosts that only share a network: scripts/cluster.sh makes each host a network
// namespace with its own address and name, cabled by a rate-limited veth to a bridge, and Open MPI
// starts its daemon in each through scripts/netns-agent.sh (scripts/launch.sh --cluster), so ranks
// talk over TCP on those cables only. What a real cluster does is checked here: the same training
// as one process, the job ending with the host named when a host's rank dies or its cable is
// pulled, and the job cut off that way resuming from its last checkpoint as if never interrupted.
// They need root and iproute2; elsewhere they skip with the reason. Each test brings its
// own cluster up and always takes it down (tearDown, and cluster.sh's own trap while it builds).
import Foundation
import XCTest
@testable import CSSLM

final class ClusterTests: XCTestCase {
    /// What one command printed and how it ended.
    struct Run {
        var status: Int32
        var output: String
        var seconds: Double
        var summary: String { "exit \(status) after \(String(format: "%.1f", seconds)) s:\n\(output)" }
    }

    /// A command running in the background, its output going to a file.
    struct Started {
        let process: Process
        let output: URL
        let start: Date
        func wait() -> Run {
            process.waitUntilExit()
            return Run(status: process.terminationStatus, output: (try? String(contentsOf: output, encoding: .utf8)) ?? "",
                       seconds: Date().timeIntervalSince(start))
        }
    }

    var work: URL!
    var clusterDirectory: URL { work.appendingPathComponent("cluster") }
    /// The namespaces' names are machine-wide: test runs from several checkouts take turns.
    var lock: Int32 = -1

    override func setUpWithError() throws {
        let available = try Self.run(["scripts/cluster.sh", "available"], limit: 30)
        if available.status != 0 {
            let reason = "cluster tests skipped: \(available.output.trimmingCharacters(in: .whitespacesAndNewlines))"
            print(reason)
            throw XCTSkip(reason)
        }
        guard DistributedTests.hasMPIRun else { throw XCTSkip("cluster tests skipped: mpirun not found (apt install openmpi-bin)") }
        _ = try TrainerTests.csslmBinary()
        lock = open("/tmp/csslm-cluster-tests.lock", O_CREAT | O_RDWR, 0o644)
        guard lock >= 0, flock(lock, LOCK_EX) == 0 else { throw CSSLMError("cannot lock /tmp/csslm-cluster-tests.lock") }
        work = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-cluster-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        // The csslm-* namespaces belong to these tests while they run: a cluster left by an
        // interrupted run would make `up` refuse.
        let leftover = try Self.run(["scripts/cluster.sh", "down"], limit: 60)
        XCTAssertEqual(leftover.status, 0, leftover.summary)
    }

    override func tearDownWithError() throws {
        guard let work else { return }
        let down = try Self.run(["scripts/cluster.sh", "down"], environment: ["CSSLM_CLUSTER_DIR": clusterDirectory.path], limit: 60)
        XCTAssertEqual(down.status, 0, "cluster.sh down: \(down.summary)")
        XCTAssertEqual(try Self.run(["scripts/cluster.sh", "status"], limit: 30).output, "no cluster is up\n")
        if ProcessInfo.processInfo.environment["CSSLM_KEEP_TEST_DIR"] == nil { try? FileManager.default.removeItem(at: work) }
        close(lock)  // releases the flock
    }

    // MARK: Helpers

    /// This environment without Open MPI's variables (a child mpirun must not inherit them).
    static func cleanEnvironment(_ extra: [String: String]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { k, _ in !["OMPI_", "PMIX_", "OPAL_"].contains { k.hasPrefix($0) } }
        env["OPENBLAS_NUM_THREADS"] = "1"
        env.merge(extra) { $1 }
        return env
    }

    /// Starts `command` (relative to the repository root) under `timeout`, output to a file.
    static func start(_ command: [String], environment: [String: String] = [:], limit: Int) throws -> Started {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("csslm-cluster-out-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["-k", "5", String(limit)] + command
        process.currentDirectoryURL = TestPaths.root
        process.environment = cleanEnvironment(environment)
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        let start = Date()
        try process.run()
        return Started(process: process, output: output, start: start)
    }

    static func run(_ command: [String], environment: [String: String] = [:], limit: Int) throws -> Run {
        let started = try start(command, environment: environment, limit: limit)
        defer { try? FileManager.default.removeItem(at: started.output) }
        return started.wait()
    }

    /// Brings up `hosts` hosts for this test.
    func clusterUp(_ hosts: Int, rate: String = "1gbit") throws {
        let up = try Self.run(["scripts/cluster.sh", "up", String(hosts), "--rate", rate],
                              environment: ["CSSLM_CLUSTER_DIR": clusterDirectory.path], limit: 60)
        XCTAssertEqual(up.status, 0, "cluster.sh up: \(up.summary)")
        let hostfile = try String(contentsOf: clusterDirectory.appendingPathComponent("hostfile"), encoding: .utf8)
        let lines = hostfile.split(separator: "\n").filter { !$0.hasPrefix("#") }.map(String.init)
        XCTAssertEqual(lines, (1...hosts).map { "csslm-h\($0) slots=1" })
    }

    func clusterDown() throws {
        let down = try Self.run(["scripts/cluster.sh", "down"], environment: ["CSSLM_CLUSTER_DIR": clusterDirectory.path], limit: 60)
        XCTAssertEqual(down.status, 0, down.summary)
    }

    /// `csslm ARGS` on every host of the cluster, one rank each, through scripts/launch.sh.
    func startOnCluster(_ args: [String], environment: [String: String] = [:], limit: Int = 180) throws -> Started {
        try Self.start(["scripts/launch.sh", "--cluster", clusterDirectory.path, "--threads", "1", "--",
                        try TrainerTests.csslmBinary().path] + args, environment: environment, limit: limit)
    }

    /// Bytes host `host` has sent on its cable.
    func sentBytes(_ host: String) throws -> Int {
        let r = try Self.run(["ip", "netns", "exec", host, "cat", "/sys/class/net/eth0/statistics/tx_bytes"], limit: 10)
        return Int(r.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// Polls `condition` every 20 ms until it holds; throws if the job ends first or `limit` s pass.
    func wait(for what: String, of job: Started, limit: Double = 90, until condition: () -> Bool) throws {
        while Date().timeIntervalSince(job.start) < limit {
            if condition() { return }
            if !job.process.isRunning { throw CSSLMError("the job ended before \(what): \(job.wait().summary)") }
            usleep(20_000)
        }
        throw CSSLMError("no \(what) within \(limit) s: \(job.wait().summary)")
    }

    /// How many step lines the run's metrics.jsonl holds (rank 0 writes it), lines of redone steps included.
    func loggedSteps(in run: URL) -> Int {
        let text = (try? String(contentsOf: run.appendingPathComponent(MetricsLog.fileName), encoding: .utf8)) ?? ""
        return text.components(separatedBy: "\"kind\":\"step\"").count - 1
    }

    /// The names in the run's checkpoints folder: `step-N` for a complete checkpoint (a save renames
    /// its folder last), `.tmp-step-N` while a save is under way.
    func checkpointFolders(in run: URL) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent(CheckpointStore.folderName).path)) ?? []
    }

    func checkpointSteps(in run: URL) -> [Int] { checkpointFolders(in: run).compactMap(CheckpointStore.step(ofFolder:)) }

    /// `scripts/cluster.sh cut|mend HOST`.
    func cable(_ action: String, _ host: String) throws {
        let r = try Self.run(["scripts/cluster.sh", action, host], environment: ["CSSLM_CLUSTER_DIR": clusterDirectory.path], limit: 10)
        XCTAssertEqual(r.status, 0, "cluster.sh \(action) \(host): \(r.summary)")
    }

    /// The pid of the csslm rank running on `host`.
    func rankPID(on host: String) throws -> Int32 {
        let pids = try Self.run(["ip", "netns", "pids", host], limit: 10).output.split(separator: "\n").compactMap { Int32($0) }
        let ranks = pids.filter {
            (try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "csslm"
        }
        XCTAssertEqual(ranks.count, 1, "csslm processes on \(host): \(ranks)")
        return try XCTUnwrap(ranks.first, "no csslm rank on \(host)")
    }

    /// Training arguments for the tiny task in `dir`, `epochs` long.
    func trainArguments(model: URL, data: URL, corpus: URL, output: URL, epochs: Int) -> [String] {
        ["train", "--model", model.path, "--data", data.path, "--output", output.path, "--method", "csslm",
         "--per-class", "6", "--batch-size", "5", "--epochs", String(epochs), "--learning-rate", "1e-3", "--max-length", "16",
         "--corpus", corpus.path, "--min-corpus-tokens", "2", "--pool-size", "30", "--top-k", "3", "--negatives", "4",
         "--init-epochs", "1"]
    }

    // MARK: Tests

    /// Contract 2 across hosts: CSS-LM's whole protocol (feature gathers, stage-2 sharded encoding,
    /// retrieval, bucketed gradient allreduce) over TCP between 2 and 3 hosts gives the losses and
    /// weights of one process, and the ranks' traffic really crossed the cables.
    func testTrainingAcrossTwoAndThreeHostsEqualsOneProcess() throws {
        let (model, data) = try TrainerTests.makeTinyTask(in: work)
        let corpus = work.appendingPathComponent("corpus.txt")
        let single = work.appendingPathComponent("run-1")
        let alone = try Self.run([try TrainerTests.csslmBinary().path]
                                 + trainArguments(model: model, data: data, corpus: corpus, output: single, epochs: 2), limit: 180)
        XCTAssertEqual(alone.status, 0, alone.summary)
        let losses = try TrainerTests.stepLosses(single)
        let weights = try SafetensorsFile(url: single.appendingPathComponent("model/model.safetensors"))
        let reference = try weights.names.flatMap { try weights.floats($0) }
        XCTAssertEqual(losses.count, 9, "3 init steps + 3 steps × 2 epochs")

        for hosts in [2, 3] {
            try clusterUp(hosts)
            let before = try (1...hosts).map { try sentBytes("csslm-h\($0)") }
            let out = work.appendingPathComponent("run-\(hosts)-hosts")
            let run = try startOnCluster(trainArguments(model: model, data: data, corpus: corpus, output: out, epochs: 2)).wait()
            XCTAssertEqual(run.status, 0, "\(hosts) hosts: \(run.summary)")
            XCTAssertTrue(run.output.contains("\(hosts) rank(s) on \(hosts) node(s)"), run.summary)
            for h in 1...hosts {
                let sent = try sentBytes("csslm-h\(h)") - before[h - 1]
                print("csslm-h\(h) sent \(sent) bytes on its cable")
                XCTAssertGreaterThan(sent, 100_000, "csslm-h\(h) sent only \(sent) bytes: did the ranks talk over the cables?")
            }
            let got = try TrainerTests.stepLosses(out)
            XCTAssertEqual(got.count, losses.count, "\(hosts) hosts: step count")
            for (a, b) in zip(got, losses) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b)), "\(hosts) hosts: loss") }
            let file = try SafetensorsFile(url: out.appendingPathComponent("model/model.safetensors"))
            assertClose("final weights, \(hosts) hosts vs 1 process", try file.names.flatMap { try file.floats($0) }, reference,
                        tolerance: 1e-5)
            try clusterDown()
        }
    }

    /// A host whose rank dies (SIGKILL, as the OOM killer or a crashed node does) ends the whole
    /// job within 10 s, and the message names that host.
    func testKillingOneHostsRankEndsTheJobNamingTheHost() throws {
        let (model, data) = try TrainerTests.makeTinyTask(in: work)
        try clusterUp(2)
        let out = work.appendingPathComponent("run")
        let job = try startOnCluster(trainArguments(model: model, data: data, corpus: work.appendingPathComponent("corpus.txt"),
                                                    output: out, epochs: 100_000))
        try wait(for: "5 steps", of: job) { loggedSteps(in: out) >= 5 }
        let victim = try rankPID(on: "csslm-h2")
        let killed = Date()
        kill(victim, SIGKILL)
        let run = job.wait()
        let seconds = Date().timeIntervalSince(killed)
        print(String(format: "job ended %.1f s after the kill", seconds))
        XCTAssertNotEqual(run.status, 0, run.summary)
        XCTAssertNotEqual(run.status, 124, "timed out: \(run.summary)")
        XCTAssertLessThan(seconds, 10, run.summary)
        XCTAssertTrue(run.output.contains("on node csslm-h2 exited on signal 9"), run.summary)
    }

    /// A pulled cable stalls the ranks on both sides inside a collective (TCP neither fails nor
    /// completes): the watchdog names the rank, its host and the collective, and the job ends. With
    /// the cable mended, `--resume latest` across the same hosts continues from the newest complete
    /// checkpoint, and the run ends as an uninterrupted one at the same world size does: weights,
    /// AdamW moments, best model and every step's loss bit-identical (the cut session's lines of
    /// the steps it did after that checkpoint superseded by the resumed session's).
    func testCutLinkIsCaughtByTheWatchdogAndTheResumedJobEqualsAnUninterruptedOne() throws {
        let (model, data) = try TrainerTests.makeTinyTask(in: work)
        // 4 Mbit/s cables: steps that move data (stage 3's first, after the pool's vectors are
        // gathered) last long enough to be seen between checkpoints.
        try clusterUp(2, rate: "4mbit")
        // 3 stage-1 steps, stage 2, 12 stage-3 steps; a checkpoint after each epoch (steps 3, 6, 9, 12, 15).
        let steps = 15
        func arguments(_ run: URL) -> [String] {
            trainArguments(model: model, data: data, corpus: work.appendingPathComponent("corpus.txt"), output: run, epochs: 4)
        }
        let straight = work.appendingPathComponent("straight"), out = work.appendingPathComponent("run")
        let uninterrupted = try startOnCluster(arguments(straight)).wait()
        XCTAssertEqual(uninterrupted.status, 0, uninterrupted.summary)
        print(String(format: "uninterrupted run: %.1f s", uninterrupted.seconds))

        let deadline = 3
        let job = try startOnCluster(arguments(out), environment: ["CSSLM_COLLECTIVE_TIMEOUT_S": String(deadline)])
        // Cut where rank 0 has logged a step after its newest checkpoint, so that the resumed
        // session redoes it. The tiny model's steps are short next to a save, so a look that
        // suggests that moment is repeated on a frozen run: with rank 1 stopped, rank 0 finishes
        // at most the collective it is in (and a save that follows it), then waits. If the run
        // does not stand there, rank 1 goes on.
        func pastNewestCheckpoint() -> (steps: Int, saving: Bool) {
            let folders = checkpointFolders(in: out)
            let newest = folders.compactMap(CheckpointStore.step(ofFolder:)).max() ?? Int.max
            return (loggedSteps(in: out) - newest, folders.contains { $0.hasPrefix(CheckpointStore.temporaryPrefix) })
        }
        try wait(for: "a step", of: job) { loggedSteps(in: out) > 0 }
        let rank1 = try rankPID(on: "csslm-h2")
        try wait(for: "a step logged after a checkpoint", of: job) {
            guard pastNewestCheckpoint().steps > 0 else { return false }
            kill(rank1, SIGSTOP)
            usleep(200_000)
            let frozen = pastNewestCheckpoint()
            if frozen.steps > 0 && !frozen.saving { return true }
            kill(rank1, SIGCONT)
            return false
        }
        try cable("cut", "csslm-h2")
        kill(rank1, SIGCONT)
        let cutAt = Date()
        let run = job.wait()
        let seconds = Date().timeIntervalSince(cutAt)
        print(String(format: "job ended %.1f s after the cut", seconds))
        XCTAssertEqual(run.status, MPIRuntime.stallExitCode, run.summary)
        XCTAssertLessThan(seconds, Double(deadline) + 15, run.summary)
        XCTAssertTrue(run.output.contains("csslm watchdog: rank 0 of 2 on csslm-h1 has waited"), run.summary)

        // A save that the cut interrupted left no step-N folder, so the newest one is what resume must take.
        let newest = try XCTUnwrap(checkpointSteps(in: out).max())
        XCTAssertLessThan(newest, steps, "the cut came after the run had finished training")
        try cable("mend", "csslm-h2")
        let resumed = try startOnCluster(["train", "--output", out.path, "--resume", "latest"]).wait()
        print(String(format: "resumed from step %d: %.1f s", newest, resumed.seconds))
        XCTAssertEqual(resumed.status, 0, resumed.summary)
        XCTAssertTrue(resumed.output.contains("2 rank(s) on 2 node(s)"), resumed.summary)
        XCTAssertTrue(resumed.output.contains("resuming from \(out.path)/checkpoints/step-\(newest) (step \(newest),"), resumed.summary)
        ResumeTests.assertBitIdentical(try ResumeTests.finalTensors(of: straight, steps: steps),
                                       try ResumeTests.finalTensors(of: out, steps: steps), "cut at step \(newest), resumed, 2 hosts")
        // Steps the cut session logged after its last checkpoint were redone; each counts once.
        print("metrics.jsonl: \(loggedSteps(in: out)) step lines for \(steps) steps")
        XCTAssertGreaterThan(loggedSteps(in: out), steps, "the log holds the lines of redone steps")
        XCTAssertEqual(try TrainerTests.stepLosses(out), try TrainerTests.stepLosses(straight))
    }
}
