// Fuzz targets for the checkpoint readers a resume trusts: a checkpoint's MANIFEST (verified
// against the files next to it) and its state.json.
import Foundation

/// The bytes as the MANIFEST of a folder that holds two small files: verification either throws
/// (a Failure naming the checkpoint) or accepts, and then every listed file is there with the size
/// the MANIFEST gives, and the bytes kept are exactly the file's.
func fuzzManifest(_ input: [UInt8]) throws {
    let folder = scratch.appendingPathComponent("step-7")
    try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let files = ["a.bin": Array("alpha".utf8), "state.json": Array("{}".utf8)]
    for (name, bytes) in files { check(FileManager.default.createFile(atPath: folder.appendingPathComponent(name).path,
                                                                    contents: Data(bytes)), "cannot write \(name)") }
    check(FileManager.default.createFile(atPath: folder.appendingPathComponent(CheckpointManifest.fileName).path,
                                         contents: Data(input)), "cannot write the MANIFEST")
    let verified: (manifest: CheckpointManifest, data: [String: Data])
    do { verified = try CheckpointManifest.verify(folder, required: [], keep: ["a.bin"]) } catch let failure as CheckpointManifest.Failure {
        check(failure.checkpoint == "step-7", "a failure names another checkpoint: \(failure)")
        return
    }
    for entry in verified.manifest.files {
        check(files[entry.name]?.count == entry.bytes || entry.name == CheckpointManifest.fileName,
              "accepted \(entry.name) of \(entry.bytes) bytes")
    }
    for (name, data) in verified.data { check(files[name].map { Data($0) } == data, "kept bytes of \(name) differ from the file") }
}

/// The bytes as state.json: decoded or refused with an error; a decoded state survives encoding
/// and decoding unchanged.
func fuzzTrainingState(_ input: [UInt8]) throws {
    let state = try TrainingState.decode(Data(input), file: "state.json")
    let again = mustSucceed("training state round trip") { try TrainingState.decode(try state.jsonData(), file: "again.json") }
    check(again == state, "training state changed in a round trip")
}

/// AdamW.swift is compiled in for LinearSchedule (a field of TrainingState); its update loop calls
/// parallelParts, whose home (Tensor/Parallel.swift) needs BLAS. The readers never update weights,
/// so the fuzz binary gets a serial version.
func parallelParts(_ n: Int, align: Int = 1, minPerPart: Int = 1, _ body: (_ part: Int, _ range: Range<Int>) -> Void) {
    body(0, 0..<n)
}
