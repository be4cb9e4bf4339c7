// The scenarios of csslm-mpitest: correctness of each collective against values every rank can
// compute alone, and the failure modes (a rank that throws, exits, is killed or stalls).
import CSSLM
import Foundation

/// A scenario returns what rank 0 reports in its JSON line.
typealias Scenario = (Communicator) throws -> [String: Any]

let scenarios: [String: Scenario] = [
    "collectives": collectivesScenario,
    "gather-gradient": gatherGradientScenario,
    "bucketed-allreduce": bucketedAllreduceScenario,
    "sampler": samplerScenario,
    "retrieval": retrievalScenario,
    "throw": throwScenario,
    "exit": exitScenario,
    "kill": killScenario,
    "stall": stallScenario,
    "stall-before-finalize": stallBeforeFinalizeScenario,
    "bench-allreduce": benchAllreduceScenario,
    "checkpoint-loop": checkpointLoopScenario,
]

/// A failed check: the scenario ends (and the job aborts) with this message.
struct CheckFailure: Error, CustomStringConvertible {
    let description: String
}

/// Counts checks and throws on the first failure.
final class Checks {
    private(set) var count = 0
    let rank: Int
    init(rank: Int) { self.rank = rank }

    func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        count += 1
        if !condition { throw CheckFailure(description: "check failed on rank \(rank): \(message())") }
    }

    /// max |a − b| ≤ tolerance · max(max |b|, tiny).
    func expectClose(_ a: [Double], _ b: [Double], relative tolerance: Double, _ what: String) throws -> Double {
        try expect(a.count == b.count, "\(what): \(a.count) values, expected \(b.count)")
        let error = relativeError(a, b)
        try expect(error <= tolerance, "\(what): relative error \(error) > \(tolerance)")
        return error
    }
}

/// max |a − b| / max |b| (absolute when b is all zero).
func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    var diff = 0.0, scale = 0.0
    for i in a.indices {
        diff = max(diff, abs(a[i] - b[i]))
        scale = max(scale, abs(b[i]))
    }
    return scale > 0 ? diff / scale : diff
}

/// Deterministic values in [-1, 1) from (seed, stream): every rank can compute every rank's data.
func uniformValues(count: Int, seed: UInt64, stream: Int) -> [Float] {
    var rng = SplitMix64(seed: CounterRandom.streamKey(seed: seed, step: 0, example: stream, site: 7))
    return (0..<count).map { _ in rng.nextUniform() * 2 - 1 }
}

// MARK: - Collectives

/// Every collective with even and uneven (and zero) counts, in place and not, then again through
/// a communicator that splits every call into pieces of 3 elements (the Int32-count path).
func collectivesScenario(_ comm: Communicator) throws -> [String: Any] {
    let checks = Checks(rank: comm.rank)
    try collectiveChecks(comm, checks)
    var splitting = false
    if comm is MPICommunicator {
        let small = try MPICommunicator(collectiveDeadline: 60, maxElementsPerCall: 3)
        try collectiveChecks(small, checks)
        splitting = true
    }
    try decisionChecks(comm, checks)
    try comm.barrier(name: "barrier(end of collectives)")
    return ["checks": checks.count, "split_calls_checked": splitting]
}

func collectiveChecks(_ comm: Communicator, _ checks: Checks) throws {
    let r = comm.rank, w = comm.size
    let n = 10
    let rankFactors = (0..<w).map { Double($0 + 1) }

    // allreduce sum / max / min over Float, Double, Int; element i of rank r is (r + 1)(i + 1).
    for op in [ReduceOperation.sum, .max, .min] {
        let combined: Double
        switch op {
        case .sum: combined = rankFactors.reduce(0, +)
        case .max: combined = rankFactors.max()!
        case .min: combined = rankFactors.min()!
        }
        let expected = (0..<n).map { combined * Double($0 + 1) }
        var f = (0..<n).map { Float((r + 1) * ($0 + 1)) }
        try f.withUnsafeMutableBufferPointer { try comm.allreduce($0, op, name: "allreduce(Float \(op))") }
        try checks.expect(f.map(Double.init) == expected, "allreduce Float \(op): \(f)")
        var d = (0..<n).map { Double((r + 1) * ($0 + 1)) }
        try d.withUnsafeMutableBufferPointer { try comm.allreduce($0, op, name: "allreduce(Double \(op))") }
        try checks.expect(d == expected, "allreduce Double \(op): \(d)")
        var k = (0..<n).map { (r + 1) * ($0 + 1) }
        try k.withUnsafeMutableBufferPointer { try comm.allreduce($0, op, name: "allreduce(Int \(op))") }
        try checks.expect(k.map(Double.init) == expected, "allreduce Int \(op): \(k)")
    }

    // broadcast: Floats from the last rank, raw bytes from rank 0.
    var floats = (0..<n).map { Float(r * 100 + $0) }
    try floats.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: w - 1, name: "broadcast(floats)") }
    try checks.expect(floats == (0..<n).map { Float((w - 1) * 100 + $0) }, "broadcast floats: \(floats)")
    var bytes = [UInt8](repeating: UInt8(r), count: 7)
    if r == 0 { bytes = Array("csslm!!".utf8) }
    try bytes.withUnsafeMutableBytes { try comm.broadcast(bytes: $0, root: 0, name: "broadcast(bytes)") }
    try checks.expect(bytes == Array("csslm!!".utf8), "broadcast bytes: \(bytes)")

    // allgather with equal counts.
    let m = 4
    let mine = (0..<m).map { Double(r * 100 + $0) }
    var all = [Double](repeating: -1, count: m * w)
    try mine.withUnsafeBufferPointer { l in try all.withUnsafeMutableBufferPointer { try comm.allgather(l, into: $0) } }
    try checks.expect(all == (0..<w).flatMap { q in (0..<m).map { Double(q * 100 + $0) } }, "allgather: \(all)")

    // allgatherv and reduce-scatter with uneven counts: rank 1 holds nothing, then all differ.
    let patterns: [[Int]] = [
        (0..<w).map { $0 == 1 ? 0 : 2 * $0 + 3 },
        (0..<w).map { $0 + 1 },
    ]
    for counts in patterns {
        let offsets = counts.indices.map { counts[..<$0].reduce(0, +) }
        let total = counts.reduce(0, +)
        let expected = (0..<w).flatMap { q in (0..<counts[q]).map { Float(q * 1000 + $0) } }
        let local = (0..<counts[r]).map { Float(r * 1000 + $0) }
        var gathered = [Float](repeating: .nan, count: total)
        try local.withUnsafeBufferPointer { l in
            try gathered.withUnsafeMutableBufferPointer { try comm.allgatherv(l, into: $0, counts: counts) }
        }
        try checks.expect(gathered == expected, "allgatherv \(counts): \(gathered)")

        // In place: the local block already sits at its offset in the gathered buffer.
        var inPlace = [Float](repeating: .nan, count: total)
        for (i, v) in local.enumerated() { inPlace[offsets[r] + i] = v }
        try inPlace.withUnsafeMutableBufferPointer { g in
            let own = UnsafeBufferPointer(start: g.baseAddress.map { $0 + offsets[r] }, count: counts[r])
            try comm.allgatherv(own, into: g, counts: counts, name: "allgatherv(in place)")
        }
        try checks.expect(inPlace == expected, "allgatherv in place \(counts): \(inPlace)")

        // Reduce-scatter: element k of rank q's input is (q + 1) + k/2; rank r gets its block summed.
        let input = (0..<total).map { Float(r + 1) + Float($0) * 0.5 }
        var block = [Float](repeating: .nan, count: counts[r])
        try input.withUnsafeBufferPointer { i in
            try block.withUnsafeMutableBufferPointer { try comm.reduceScatter(i, into: $0, counts: counts) }
        }
        let expectedBlock = (0..<counts[r]).map { Float(rankFactors.reduce(0, +)) + Float(w) * Float(offsets[r] + $0) * 0.5 }
        try checks.expect(block == expectedBlock, "reduce-scatter \(counts): \(block), expected \(expectedBlock)")
    }

    // Mismatched counts are an argument error, thrown before any MPI call (on every rank alike).
    do {
        var out = [Float](repeating: 0, count: 3)
        try [Float(1)].withUnsafeBufferPointer { l in
            try out.withUnsafeMutableBufferPointer { try comm.allgatherv(l, into: $0, counts: [Int](repeating: 2, count: w)) }
        }
        try checks.expect(false, "allgatherv with wrong counts did not throw")
    } catch let error as CommunicatorError {
        try checks.expect(error.collective == "allgatherv" && error.function.isEmpty, "unexpected error \(error)")
    }
    try comm.barrier()
}

/// Rank 0 decides, every rank agrees.
func decisionChecks(_ comm: Communicator, _ checks: Checks) throws {
    enum Decision: Int { case proceed = 0, skip = 1, stop = 2 }
    let r = comm.rank, w = comm.size
    try checks.expect(try comm.agree(r == 0 ? 7 : -r) == 7, "agree(Int)")
    try checks.expect(try comm.agree(r == 0 ? Decision.stop : .proceed) == .stop, "agree(enum)")
    var flags = r == 0 ? [3, 1, 4] : [0, 0, 0]
    try comm.agree(&flags)
    try checks.expect(flags == [3, 1, 4], "agree([Int]): \(flags)")
    try checks.expect(try comm.anyRank(r == w - 1) == true, "anyRank")
    try checks.expect(try comm.anyRank(false) == false, "anyRank(false)")
    try checks.expect(try comm.everyRank(r == 0) == (w == 1), "everyRank")
    try comm.checkSameOnAllRanks(42, what: "a constant")
    if w > 1 {
        do {
            try comm.checkSameOnAllRanks(r, what: "the rank")
            try checks.expect(false, "checkSameOnAllRanks(rank) did not throw")
        } catch is CommunicatorError {}
    }
}

// MARK: - Failure modes

/// The last rank throws while the others wait in a collective: the job must end with its message.
func throwScenario(_ comm: Communicator) throws -> [String: Any] {
    try comm.barrier()
    if comm.rank == comm.size - 1 {
        throw CheckFailure(description: "deliberate failure on rank \(comm.rank) (throw scenario)")
    }
    var x: [Float] = [1]
    try x.withUnsafeMutableBufferPointer { try comm.allreduce($0, .sum, name: "allreduce(never completes)") }
    return [:]
}

/// The last rank exits without MPI_Finalize while the others wait.
func exitScenario(_ comm: Communicator) throws -> [String: Any] {
    try comm.barrier()
    if comm.rank == comm.size - 1 {
        fputs("rank \(comm.rank) exits with code 7 (exit scenario)\n", stderr)
        exit(7)
    }
    try comm.barrier(name: "barrier(never completes)")
    return [:]
}

/// The last rank is killed (SIGKILL) while the others wait.
func killScenario(_ comm: Communicator) throws -> [String: Any] {
    try comm.barrier()
    if comm.rank == comm.size - 1 { kill(getpid(), SIGKILL) }
    try comm.barrier(name: "barrier(never completes)")
    return [:]
}

/// The last rank stalls before a barrier; the others' watchdog (run with a short --deadline)
/// must report rank, step and collective and end the job.
/// Every collective done, the last rank stalls before MPI_Finalize (as a rank SIGSTOPped in the
/// last moments of a run): the others' wait inside MPI_Finalize must end at the one deadline.
func stallBeforeFinalizeScenario(_ comm: Communicator) throws -> [String: Any] {
    try comm.barrier()
    if comm.rank == comm.size - 1 {
        sleep(60)
    }
    return [:]
}

func stallScenario(_ comm: Communicator) throws -> [String: Any] {
    try comm.barrier()
    comm.step = 7
    if comm.rank == comm.size - 1 {
        sleep(60)
    }
    try comm.barrier(name: "barrier(stall test)")
    return [:]
}
