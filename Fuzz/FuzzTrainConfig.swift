// Fuzz target for the run config (`csslm train --config run.json`).
import Foundation

/// The bytes as a run config: load and validate; a valid config survives encoding and reload.
func fuzzTrainConfig(_ input: [UInt8]) throws {
    let config = try TrainConfig.load(from: scratchFile("run.json", input))
    try config.validate()
    let again = mustSucceed("run config round trip") {
        try TrainConfig.load(from: scratchFile("run-again.json", try JSONEncoder().encode(config)))
    }
    check(again == config, "run config changed in a round trip: \(config) vs \(again)")
}
