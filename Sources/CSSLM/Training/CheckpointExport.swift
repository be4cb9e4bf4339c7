// Export: a verified checkpoint's encoder as a Hugging Face model folder (config.json,
// model.safetensors, vocab.txt and tokenizer files) that transformers' BertModel.from_pretrained
// loads, plus heads.safetensors with the classifier and pair heads. Everything comes from the
// checkpoint itself; only a checkpoint without its own copy of a tokenizer file falls back to the
// model folder recorded in its state.
import Foundation

/// What `exportCheckpoint` wrote.
public struct ExportReport: Sendable {
    /// The checkpoint folder exported.
    public var checkpoint: String
    public var step: Int
    /// Classes of the exported classifier head.
    public var numLabels: Int
    /// Files written into the output folder.
    public var files: [String]
    /// Folders passed over on the way to a complete checkpoint, and fallbacks taken.
    public var notes: [String]
}

/// Writes the checkpoint `selection` names into the HF model folder `output` (created), then
/// loads the result back as a check. `selection` `.latest`/`.best` refer to `runDirectory`.
public func exportCheckpoint(_ selection: CheckpointSelection, runDirectory: URL? = nil, to output: URL) throws -> ExportReport {
    let store = CheckpointStore(runDirectory: runDirectory ?? URL(fileURLWithPath: "."))
    let found = try store.locate(selection)
    let state = try found.state
    var notes = found.skipped
    let fm = FileManager.default
    if fm.fileExists(atPath: output.path),
       fm.fileExists(atPath: output.appendingPathComponent(CheckpointManifest.fileName).path) {
        throw CSSLMError("\(output.path) holds a checkpoint: refusing to export over it", hint: "choose another output folder")
    }
    do { try fm.createDirectory(at: output, withIntermediateDirectories: true) } catch {
        throw CSSLMError("\(output.path): cannot create folder (\(fileErrorReason(error)))")
    }
    var written: [String] = []
    func put(_ data: Data, _ name: String) throws {
        try writeAtomically(data, to: output.appendingPathComponent(name))
        written.append(name)
    }
    /// A file of the checkpoint (verified with the rest), else of the original model folder.
    func source(_ name: String) throws -> Data? {
        let inCheckpoint = found.directory.appendingPathComponent(name)
        if found.manifest.files.contains(where: { $0.name == name }) {
            return try found.data[name] ?? Data(contentsOf: inCheckpoint)
        }
        let original = URL(fileURLWithPath: state.modelSource).appendingPathComponent(name)
        guard fm.fileExists(atPath: original.path) else { return nil }
        notes.append("\(name) taken from the model folder \(state.modelSource) (the checkpoint has none)")
        return try Data(contentsOf: original)
    }

    for name in ["config.json", CheckpointStore.modelFile, CheckpointStore.headsFile] + CheckpointStore.modelFolderFiles.dropFirst() {
        if let data = try source(name) { try put(data, name) }
    }
    guard written.contains("vocab.txt") else {
        throw CSSLMError("\(found.directory.path): no vocab.txt in the checkpoint or in \(state.modelSource)")
    }
    if !written.contains("tokenizer_config.json") {
        // transformers needs to know the tokenizer class and casing; BERT uncased is what csslm runs.
        let config: [String: Any] = ["tokenizer_class": "BertTokenizer", "do_lower_case": true,
                                     "model_max_length": 512, "unk_token": "[UNK]", "sep_token": "[SEP]",
                                     "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"]
        try put(try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]), "tokenizer_config.json")
        notes.append("tokenizer_config.json written for an uncased BertTokenizer (none found)")
    }
    try put(try state.jsonData(), "csslm_training_state.json")
    try put(try RunFolder.configData(state.config), RunFolder.trainingConfigFile)

    // The folder must load as a model: catches a config that does not match the weights.
    _ = try BertClassifier(modelDirectory: output, numLabels: state.numLabels)
    return ExportReport(checkpoint: found.directory.path, step: state.step, numLabels: state.numLabels, files: written, notes: notes)
}
