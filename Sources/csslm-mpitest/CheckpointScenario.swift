// The checkpoint scenario: resume from the newest complete checkpoint of --run (if any), then
// save one checkpoint per step, the weights and moments of step s being a known function of s
// (`checkpointPattern`). Tests/CSSLMTests/CheckpointTests runs it alone and SIGKILLs it at random
// moments (rank 0 prints every save event, so the test knows where each kill landed), and under
// mpirun, where only rank 0 touches the disk: the other ranks get a run folder that does not exist,
// so everything they hold after a load came through the broadcasts.
//
//   csslm-mpitest checkpoint-loop --single --run DIR [--steps N] [--keep N] [--model DIR]
//                                 [--kill-step S --kill-at EVENT [--signal stop]]
//
// --steps 0 (the default) saves until killed. With N > 0 it stops after N saves, reloads the newest
// checkpoint into cleared buffers on every rank and checks it. --model starts from a real model
// folder (weights nudged by at most 1e-3 per step) instead of a tiny random BERT: a checkpoint to
// try `csslm export` and scripts/check_export.py on. --kill-at makes rank 0 SIGKILL itself at that
// save event (as CheckpointEvent prints it, e.g. "sealing") of step S; with --signal stop it
// SIGSTOPs itself there instead, which the other ranks' watchdog must turn into an abort.
import CSSLM
import Foundation

/// A small BERT (0.14 M parameters) whose files take a few milliseconds to write.
let checkpointTestConfig = BertConfig(vocabSize: 1000, hiddenSize: 64, numHiddenLayers: 2, numAttentionHeads: 4,
                                      intermediateSize: 128, maxPositionEmbeddings: 64)

/// The value of element i of each buffer at step s (the same formula in CheckpointTests). With
/// `base` (a real model's weights) the weights are those, nudged by at most 1e-3·s.
func checkpointPattern(step s: Int, index i: Int, base: [Float]? = nil) -> (value: Float, m: Float, v: Float) {
    let value = base.map { $0[i] + 1e-3 * Float(s) * Float(i % 13 - 6) / 6 } ?? Float(s) * 0.5 + Float(i % 1000) * 1e-3
    return (value, -value, Float(s) + Float(i % 7))
}

func fillCheckpointPattern(step: Int, model: BertClassifier, optimizer: AdamW, base: [Float]? = nil) {
    for i in 0..<model.parameters.count {
        let p = checkpointPattern(step: step, index: i, base: base)
        model.parameters.values[i] = p.value
        optimizer.m[i] = p.m
        optimizer.v[i] = p.v
    }
    optimizer.step = 2 * step
}

/// The first element that differs from the pattern of `step`, if any.
func checkpointPatternMismatch(step: Int, model: BertClassifier, optimizer: AdamW, base: [Float]? = nil) -> String? {
    for i in 0..<model.parameters.count {
        let p = checkpointPattern(step: step, index: i, base: base)
        if model.parameters.values[i] != p.value || optimizer.m[i] != p.m || optimizer.v[i] != p.v {
            return "element \(i) differs from the pattern of step \(step)"
        }
    }
    return optimizer.step == 2 * step ? nil : "optimizer step \(optimizer.step), expected \(2 * step)"
}

/// The training state the scenario saves at `step`: the best dev step is the last multiple of 5.
func checkpointScenarioState(step: Int, worldSize: Int, modelSource: String) -> TrainingState {
    TrainingState(step: step, epoch: step / 10, stage: "loop", sampler: SamplerPosition(epoch: step / 10, cursor: step % 10),
                  schedule: LinearSchedule(warmupSteps: 10, totalSteps: 1000), optimizerStep: 2 * step,
                  config: TrainConfig(), worldSize: worldSize,
                  identity: RunIdentity(model: "sha256:checkpoint-scenario-model", dataset: "sha256:checkpoint-scenario-data"),
                  modelSource: modelSource, numLabels: 3,
                  bestDev: step >= 5 ? BestDevRecord(step: step - step % 5, epoch: step / 10, metric: "accuracy", value: 0.5) : nil,
                  extensions: ["rng": "stream-\(step)"])
}

/// Writes config.json and a vocab.txt for `checkpointTestConfig` into `dir` (the "model folder"
/// the checkpoints copy their config and tokenizer files from).
func writeCheckpointTestModelFolder(_ dir: URL) throws {
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    try writeAtomically(try checkpointTestConfig.jsonData(), to: dir.appendingPathComponent("config.json"))
    let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (5..<checkpointTestConfig.vocabSize).map { "tok\($0)" }
    try writeAtomically(Data((tokens.joined(separator: "\n") + "\n").utf8), to: dir.appendingPathComponent("vocab.txt"))
}

func checkpointLoopScenario(_ comm: Communicator) throws -> [String: Any] {
    guard let runPath = option("--run") else { throw CheckFailure(description: "checkpoint-loop needs --run DIR") }
    let checks = Checks(rank: comm.rank)
    // Only rank 0 may touch the disk: the others get a folder that does not exist.
    let run = URL(fileURLWithPath: comm.rank == 0 ? runPath : runPath + "-rank\(comm.rank)-has-no-files")
    // The state records rank 0's model folder on every rank (as in training).
    let modelFolder = URL(fileURLWithPath: option("--model") ?? runPath + "/model")
    let model: BertClassifier
    let base: [Float]?
    if option("--model") != nil {
        model = try BertClassifier(modelDirectory: modelFolder, numLabels: 3, seed: 1)
        base = model.parameters.values.toArray()
    } else {
        if comm.rank == 0 { try writeCheckpointTestModelFolder(modelFolder) }
        model = BertClassifier(config: checkpointTestConfig, numLabels: 3, seed: 1)
        base = nil
    }
    let steps = option("--steps").flatMap(Int.init) ?? 0
    let store = CheckpointStore(runDirectory: run, keepLast: option("--keep").flatMap(Int.init) ?? 2)
    let optimizer = AdamW(config: AdamWConfig(), parameterCount: model.parameters.count)
    let expectation = ResumeExpectation(identity: checkpointScenarioState(step: 0, worldSize: 1, modelSource: "").identity,
                                        config: TrainConfig())

    // Resume when rank 0 has any checkpoint folder (everyone learns it from rank 0).
    let hasCheckpoint = comm.rank == 0 && ((try? FileManager.default.contentsOfDirectory(atPath: store.directory.path)) ?? [])
        .contains { $0.hasPrefix("step-") }
    var step = 0
    var notes: [String] = []
    if try comm.agree(hasCheckpoint ? 1 : 0, name: "broadcast(has checkpoint)") == 1 {
        let loaded = try store.load(.latest, into: model, optimizer: optimizer, communicator: comm, expecting: expectation)
        step = loaded.state.step
        notes = loaded.notes
        let mismatch = checkpointPatternMismatch(step: step, model: model, optimizer: optimizer, base: base)
        try checks.expect(mismatch == nil, "resumed step \(step): \(mismatch ?? "")")
        if comm.rank == 0 { print("resumed \(step)") }
    }
    let resumedFrom = step

    var current = step
    let killStep = option("--kill-step").flatMap(Int.init), killAt = option("--kill-at")
    // --signal stop: SIGSTOP instead of SIGKILL (a rank frozen mid-save; the others must not hang).
    let signal = option("--signal") == "stop" ? SIGSTOP : SIGKILL
    if comm.rank == 0 {
        store.onEvent = { event in
            print("event \(current) \(event)")
            fflush(stdout)
            if current == killStep && "\(event)" == killAt { kill(getpid(), signal) }
        }
    }
    while steps == 0 || step < resumedFrom + steps {
        step += 1
        current = step
        fillCheckpointPattern(step: step, model: model, optimizer: optimizer, base: base)
        try store.save(checkpointScenarioState(step: step, worldSize: comm.size, modelSource: modelFolder.path),
                       model: model, optimizer: optimizer, communicator: comm)
        if comm.rank == 0 { print("saved \(step)") }
    }

    // Clear everything, then reload: every rank must get rank 0's newest checkpoint.
    model.parameters.values.buffer.update(repeating: .nan)
    optimizer.m.zero(); optimizer.v.zero(); optimizer.step = -1
    let reloaded = try store.load(.latest, into: model, optimizer: optimizer, communicator: comm, expecting: expectation)
    try checks.expect(reloaded.state.step == step, "reloaded step \(reloaded.state.step), expected \(step)")
    try checks.expect(reloaded.state == checkpointScenarioState(step: step, worldSize: comm.size, modelSource: modelFolder.path),
                      "reloaded state differs from the saved one")
    let mismatch = checkpointPatternMismatch(step: step, model: model, optimizer: optimizer, base: base)
    try checks.expect(mismatch == nil, "reloaded step \(step): \(mismatch ?? "")")
    try comm.barrier(name: "barrier(end of checkpoint-loop)")
    return ["checks": checks.count, "resumed_from": resumedFrom, "final_step": step, "notes": notes]
}
