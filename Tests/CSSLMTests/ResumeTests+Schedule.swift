// Correctness points of issue 13 that need whole runs of the tiny task of ResumeTests: a resumed
// stage keeps the schedule of the run it continues, and stage 3 leaves the frozen retrieval heads
// exactly as stage 1 left them (weight decay used to shrink them).
import Foundation
import XCTest
@testable import CSSLM

extension ResumeTests {
    /// The learning rate of every step record of `run`'s metrics.jsonl, in step order.
    func stepLearningRates(_ run: String) throws -> [Double] {
        try MetricsLog.read(dir.appendingPathComponent("\(run)/\(MetricsLog.fileName)")).compactMap { entry in
            entry.object["kind"] as? String == "step" ? entry.object["lr"] as? Double : nil
        }
    }

    func testResumedStageKeepsTheScheduleOfTheRunItContinues() throws {
        try train(trainArgs("straight", method: "finetune"))
        try train(trainArgs("resumed", method: "finetune") + ["--stop-after-steps", "4"])
        // A flag that would rebuild another schedule (warm-up over 4 of the 9 steps instead of 0).
        let output = try train(trainArgs("resumed", method: "finetune") + ["--resume", "latest", "--warmup-fraction", "0.5"])
        XCTAssertTrue(output.contains("[resume] resuming from"), output)
        let (straight, resumed) = (try stepLearningRates("straight"), try stepLearningRates("resumed"))
        XCTAssertEqual(straight.count, 9)
        XCTAssertEqual(resumed, straight, "the resumed steps' learning rates are those of the saved schedule")
    }

    func testStageThreeLeavesTheFrozenRetrievalHeadsAsStageOneLeftThem() throws {
        try train(trainArgs("csslm", method: "csslm", epochs: 2))
        let run = dir.appendingPathComponent("csslm")
        // The heads stage 2 took from the best init model, kept in stage 3's checkpoints.
        let snapshot = try SafetensorsFile(url: run.appendingPathComponent("checkpoints/step-12/\(Trainer.retrievalFile)"))
        let current = try SafetensorsFile(url: run.appendingPathComponent("checkpoints/step-12/\(CheckpointStore.headsFile)"))
        let best = try SafetensorsFile(url: run.appendingPathComponent("model/heads.safetensors"))
        for name in [RetrievalHeads.taskName, RetrievalHeads.domainName].flatMap({ [$0 + ".weight", $0 + ".bias"] }) {
            let frozen = try snapshot.floats(name).map(\.bitPattern)
            // Non-zero values: a decay step (×(1 − lr·wd)) would change their bits.
            XCTAssertTrue(frozen.contains { Float(bitPattern: $0) != 0 } || name.hasSuffix(".bias"), name)
            XCTAssertEqual(try current.floats(name).map(\.bitPattern), frozen, "\(name) after the last step of stage 3")
            XCTAssertEqual(try best.floats(name).map(\.bitPattern), frozen, "\(name) of the saved best model")
        }
    }
}
