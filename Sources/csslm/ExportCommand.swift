// `csslm export CHECKPOINT OUTDIR`: a checkpoint's encoder as a Hugging Face model folder, and its
// heads in a second file. With --encode, also the exported model's last hidden states for some
// sentences, which scripts/check_export.py compares with transformers on the same folder.
import ArgumentParser
import CSSLM
import Foundation

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint's encoder as a Hugging Face model folder.",
        discussion: """
            CHECKPOINT is a checkpoint folder (RUN/checkpoints/step-N) or a run folder (its newest \
            complete checkpoint; --best for the best-dev one). OUTDIR receives config.json, \
            model.safetensors, vocab.txt and the tokenizer files (loadable with \
            transformers.BertModel.from_pretrained), heads.safetensors (classifier and pair heads) \
            csslm_training_state.json and csslm_config.json (the run config; eval, predict and \
            embed take their default --max-length from it). The checkpoint is verified against its \
            MANIFEST first.
            """)

    @Argument(help: "Checkpoint folder, or run folder.") var checkpoint: String
    @Argument(help: "Output folder (created).") var outdir: String
    @Flag(help: "From a run folder, export the best-dev checkpoint instead of the newest.") var best = false
    @Option(help: "Text file, one sentence a line: encode them with the exported model (needs --hidden-out).")
    var encode: String?
    @Option(help: "Safetensors file for the hidden states of --encode: input_ids, attention_mask [B, T], last_hidden_state [B, T, H].")
    var hiddenOut: String?
    @Option(parsing: .unconditional, help: "Truncate --encode sentences to this many tokens.") var maxLength = 128

    func validate() throws {
        if (encode == nil) != (hiddenOut == nil) { throw ValidationError("--encode and --hidden-out go together") }
        try NumericRanges.check(command: "export", flag: "--max-length", maxLength)
    }

    func run() throws {
        let source = URL(fileURLWithPath: checkpoint)
        let selection: CheckpointSelection = best ? .best : .path(source)
        let report = try exportCheckpoint(selection, runDirectory: source, to: URL(fileURLWithPath: outdir))
        for note in report.notes { print("[export] \(note)") }
        print("[export] \(report.checkpoint) (step \(report.step)) → \(outdir): \(report.files.joined(separator: ", "))")
        if let encode, let hiddenOut { try encodeSentences(file: encode, output: hiddenOut, numLabels: report.numLabels) }
    }

    /// Runs the exported folder (as csslm loads it) on the sentences, dropout off.
    private func encodeSentences(file: String, output: String, numLabels: Int) throws {
        let folder = URL(fileURLWithPath: outdir)
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let sentences = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        guard !sentences.isEmpty else { throw CSSLMError("\(file): no sentences") }
        let tokenizer = try WordPieceTokenizer(modelDirectory: folder)
        let model = try BertClassifier(modelDirectory: folder, numLabels: numLabels)
        let encodings = sentences.map { tokenizer.encode($0, maxLength: maxLength) }
        let batch = try TokenBatch(sequences: encodings.map(\.ids), typeIds: encodings.map(\.tokenTypeIds),
                                   padId: tokenizer.paddingId, sepId: tokenizer.separatorId)
        try model.forward(batch, dropout: .off(batch: batch.batch))
        let h = model.config.hiddenSize
        let ids = batch.ids.map(Float.init), mask = batch.mask
        let hidden = UnsafeBufferPointer(start: model.encoderActivations.lastHidden, count: batch.rows * h)
        try ids.withUnsafeBufferPointer { idsBuffer in
            try mask.withUnsafeBufferPointer { maskBuffer in
                try SafetensorsWriter.write([
                    SafetensorsEntry(name: "input_ids", shape: [batch.batch, batch.seqLen], values: idsBuffer),
                    SafetensorsEntry(name: "attention_mask", shape: [batch.batch, batch.seqLen], values: maskBuffer),
                    SafetensorsEntry(name: "last_hidden_state", shape: [batch.batch, batch.seqLen, h], values: hidden),
                ], to: URL(fileURLWithPath: output))
            }
        }
        print("[export] hidden states of \(sentences.count) sentences → \(output)")
    }
}
