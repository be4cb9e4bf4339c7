// csslm-mpitest: multi-rank scenarios for the distributed runtime. Tests/CSSLMTests/DistributedTests
// launches them under `mpirun -np W` (and alone, as an MPI singleton); each scenario checks its own
// results against an independent single-process reference, exits non-zero with a message on the
// first mismatch, and on success rank 0 prints one JSON line for the test to read.
//
//   csslm-mpitest SCENARIO [--single] [--deadline SECONDS]
//
// Scenarios: collectives, gather-gradient, bucketed-allreduce, sampler, retrieval, throw, exit, kill, stall, stall-before-finalize,
// checkpoint-loop (see CheckpointScenario.swift), bench-allreduce (a measurement, not a test).
import CSSLM
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
guard let scenarioName = arguments.first, let scenario = scenarios[scenarioName] else {
    let names = scenarios.keys.sorted().joined(separator: ", ")
    fputs("usage: csslm-mpitest SCENARIO [--single] [--deadline SECONDS]\nscenarios: \(names)\n", stderr)
    exit(64)
}

/// The value after `flag` in the arguments, if any.
func option(_ flag: String) -> String? {
    guard let i = arguments.firstIndex(of: flag), i + 1 < arguments.count else { return nil }
    return arguments[i + 1]
}

// --deadline wins; else CSSLM_COLLECTIVE_TIMEOUT_S (strictly parsed, as in csslm), else 60 s.
let deadline: Double
do { deadline = try option("--deadline").flatMap(Double.init) ?? CollectiveWatchdog.deadlineFromEnvironment(fallback: 60) } catch {
    fputs("csslm-mpitest: \(error)\n", stderr)
    exit(1)
}
let communicator: Communicator
if arguments.contains("--single") {
    communicator = SingleProcessCommunicator()
} else {
    do {
        communicator = try MPICommunicator(collectiveDeadline: deadline)
    } catch {
        fputs("csslm-mpitest: \(error)\n", stderr)
        exit(1)
    }
}

let report = communicator.runOrAbort { try scenario(communicator) }
if communicator.rank == 0 {
    var line = report
    line["scenario"] = scenarioName
    line["size"] = communicator.size
    line["ok"] = true
    let data = try! JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}
if communicator is MPICommunicator { MPIRuntime.finalize() }
