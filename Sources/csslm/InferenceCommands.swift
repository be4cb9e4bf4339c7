// `csslm embed` and `csslm predict`: streaming inference over text lines (stdin or --input), in
// batches, one JSON line out per line in.
import ArgumentParser
import CSSLM
import Foundation

/// Reads lines from a file or stdin in batches of `size` and calls `body` with each batch.
func forEachBatch(input: String?, size: Int, format: InputFormat = .raw, _ body: ([InputLine]) throws -> Void) throws {
    var handle: UnsafeMutablePointer<FILE>? = stdin
    if let input {
        guard let f = fopen(input, "r") else { throw ValidationError("\(input): cannot open (\(String(cString: strerror(errno))))") }
        handle = f
    }
    defer { if input != nil { fclose(handle) } }
    var batch: [InputLine] = []
    let decoder = JSONDecoder()
    var line: UnsafeMutablePointer<CChar>?
    defer { free(line) }
    var capacity = 0, number = 0
    while case let n = getline(&line, &capacity, handle), n >= 0 {
        number += 1
        // Bytes, not a C string: a NUL must not cut the line, and invalid UTF-8 is an error at
        // its line, never a silent U+FFFD (docs/limits.md).
        let bytes = UnsafeRawBufferPointer(start: line!, count: n)
        var count = n
        while count > 0 && (bytes[count - 1] == 0x0A || bytes[count - 1] == 0x0D) { count -= 1 }
        guard let text = String(bytes: bytes[0..<count], encoding: .utf8) else {
            throw CSSLMError("\(input ?? "stdin") line \(number): invalid UTF-8", hint: "convert the input to UTF-8 (e.g. iconv -f latin1 -t utf-8)")
        }
        switch format {
        case .raw: batch.append(InputLine(text: text))
        case .json:
            do { batch.append(try decoder.decode(InputLine.self, from: Data(text.utf8))) } catch {
                throw CSSLMError("\(input ?? "stdin") line \(number): expected a JSON string or an object with \"text\" (\(error))")
            }
        }
        if batch.count == size { try body(batch); batch.removeAll(keepingCapacity: true) }
    }
    // getline's -1 is also a read error (a folder given as --input: EISDIR), not only the end.
    if ferror(handle) != 0 { throw CSSLMError("\(input ?? "stdin"): read error (\(String(cString: strerror(errno))))") }
    if !batch.isEmpty { try body(batch) }
}

/// The numeric flags eval, predict and embed share, checked against NumericRanges (a batch of 0
/// used to loop forever in eval, a negative one to crash).
func checkInferenceFlags(_ command: String, batchSize: Int, maxLength: Int?) throws {
    try NumericRanges.check(command: command, flag: "--batch-size", batchSize)
    if let maxLength { try NumericRanges.check(command: command, flag: "--max-length", maxLength) }
}

/// The help of eval's, predict's and embed's --max-length.
func maxLengthHelp(otherwise fallback: Int) -> ArgumentHelp {
    "Tokens per input, special tokens included (default: the max length the model folder was trained with, else \(fallback))."
}

/// The input flags embed and predict share: where the lines come from, their format, the length
/// and the batch.
struct InferenceInput: ParsableArguments {
    @Option(help: "Read this file instead of stdin.") var input: String?
    @Option(help: "raw: one text a line; json: one JSON string (or {\"text\", \"pair\"} object) a line.")
    var inputFormat: InputFormat = .raw
    @Option(parsing: .unconditional, help: maxLengthHelp(otherwise: 128)) var maxLength: Int?
    @Option(parsing: .unconditional, help: "Lines per forward pass.") var batchSize = 32

    func check(_ command: String) throws { try checkInferenceFlags(command, batchSize: batchSize, maxLength: maxLength) }

    /// Calls `body` with each batch of input lines.
    func batches(_ body: ([InputLine]) throws -> Void) throws {
        try forEachBatch(input: input, size: batchSize, format: inputFormat, body)
    }
}

/// --max-length if given, else the one `model` was trained with (its csslm_config.json), else `fallback`.
func resolvedMaxLength(_ given: Int?, model: URL, otherwise fallback: Int) throws -> Int {
    try given ?? RunFolder.trainedMaxLength(model) ?? fallback
}

/// Tokenises, pads and runs the encoder; returns the batch (for sequence positions).
func encodeBatch(_ lines: [InputLine], tokenizer: WordPieceTokenizer, model: BertClassifier, maxLength: Int) throws -> TokenBatch {
    let encodings = lines.map { tokenizer.encode($0.text, pair: $0.pair, maxLength: maxLength) }
    let batch = try TokenBatch(sequences: encodings.map(\.ids), typeIds: encodings.map(\.tokenTypeIds),
                               padId: tokenizer.paddingId, sepId: tokenizer.separatorId)
    try model.forward(batch, dropout: .off(batch: batch.batch))
    return batch
}

struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "One JSON array of floats per input line: the encoder's [CLS], first [SEP] or mean-pooled vector.")

    enum Pool: String, ExpressibleByArgument { case cls, sep, mean }

    @Option(help: "HF model folder (config.json, model.safetensors, vocab.txt).") var model: String
    @Option(help: "cls | sep | mean (mean over real tokens, special tokens included, as sentence-transformers).")
    var pool: Pool = .cls
    @OptionGroup var lines: InferenceInput

    func validate() throws { try lines.check(Self.configuration.commandName!) }

    func run() throws {
        let dir = URL(fileURLWithPath: model)
        let maxLength = try resolvedMaxLength(lines.maxLength, model: dir, otherwise: 128)
        let tokenizer = try WordPieceTokenizer(modelDirectory: dir)
        let net = try BertClassifier(modelDirectory: dir, numLabels: 2)
        let h = net.config.hiddenSize
        try lines.batches { texts in
            let batch = try encodeBatch(texts, tokenizer: tokenizer, model: net, maxLength: maxLength)
            let last = net.encoderActivations.lastHidden
            var out = ""
            for b in 0..<batch.batch {
                var v = [Float](repeating: 0, count: h)
                switch pool {
                case .cls: for j in 0..<h { v[j] = last[b * batch.seqLen * h + j] }
                case .sep: for j in 0..<h { v[j] = last[(b * batch.seqLen + batch.sepPositions[b]) * h + j] }
                case .mean:
                    var n: Float = 0
                    for t in 0..<batch.seqLen where batch.mask[b * batch.seqLen + t] > 0 {
                        n += 1
                        for j in 0..<h { v[j] += last[(b * batch.seqLen + t) * h + j] }
                    }
                    for j in 0..<h { v[j] /= max(n, 1) }
                }
                out += "[" + v.map { String($0) }.joined(separator: ",") + "]\n"
            }
            FileHandle.standardOutput.write(Data(out.utf8))
        }
    }
}

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Label and class probabilities for each input line, with a trained model folder (a run's model/).",
        discussion: "Output, one JSON object per line: {\"label\": \"fresh\", \"probabilities\": {\"fresh\": 0.91, \"rotten\": 0.09}}")

    @Option(help: "A trained model folder: config.json, model.safetensors, heads.safetensors, vocab.txt, labels.txt.")
    var model: String
    @OptionGroup var lines: InferenceInput

    func validate() throws { try lines.check(Self.configuration.commandName!) }

    func run() throws {
        let dir = URL(fileURLWithPath: model)
        let maxLength = try resolvedMaxLength(lines.maxLength, model: dir, otherwise: 128)
        let labelsURL = dir.appendingPathComponent("labels.txt")
        guard FileManager.default.fileExists(atPath: labelsURL.path) else {
            throw ValidationError("\(labelsURL.path): missing; predict needs a trained model folder (a run's model/)")
        }
        let labels = try LabeledDataset.readLabels(at: labelsURL)
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("heads.safetensors").path) else {
            throw ValidationError("\(dir.path)/heads.safetensors: missing; predict needs the classifier trained by `csslm train`")
        }
        let tokenizer = try WordPieceTokenizer(modelDirectory: dir)
        let net = try BertClassifier(modelDirectory: dir, numLabels: labels.count)
        try lines.batches { texts in
            let batch = try encodeBatch(texts, tokenizer: tokenizer, model: net, maxLength: maxLength)
            let logits = net.headActivations.logits.base
            var out = Data()
            for b in 0..<batch.batch {
                let row = (0..<labels.count).map { logits[b * labels.count + $0] }
                let m = row.max()!
                let e = row.map { expf($0 - m) }
                let z = e.reduce(0, +)
                var probabilities: [String: Double] = [:]
                for (i, l) in labels.enumerated() { probabilities[l] = Double(e[i] / z) }
                let best = row.indices.max { row[$0] < row[$1] }!
                out.append(try JSONSerialization.data(withJSONObject: ["label": labels[best], "probabilities": probabilities],
                                                      options: [.sortedKeys]))
                out.append(0x0A)
            }
            FileHandle.standardOutput.write(out)
        }
    }
}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Accuracy, macro-F1 and the confusion matrix of a trained model folder on a dataset split.")

    @Option(help: "A trained model folder (a run's model/).") var model: String
    @Option(help: "Dataset folder (labels.txt, train/dev/test as .jsonl, .csv, .tsv or .json).") var data: String
    @Option(help: "train | dev | test") var split = "test"
    @Option(parsing: .unconditional, help: maxLengthHelp(otherwise: 64)) var maxLength: Int?
    @Option(parsing: .unconditional, help: "Sentences per forward pass.") var batchSize = 64

    func validate() throws { try checkInferenceFlags(Self.configuration.commandName!, batchSize: batchSize, maxLength: maxLength) }

    func run() throws {
        let dir = URL(fileURLWithPath: model)
        let maxLength = try resolvedMaxLength(maxLength, model: dir, otherwise: 64)
        let splits = try DatasetSplits.load(directory: URL(fileURLWithPath: data))
        let modelLabels = try LabeledDataset.readLabels(at: dir.appendingPathComponent("labels.txt"))
        guard modelLabels == splits.labels else {
            throw ValidationError("\(data)/labels.txt \(splits.labels) differs from the model's labels.txt \(modelLabels)")
        }
        let set: LabeledDataset
        switch split {
        case "train": set = splits.train
        case "dev": set = splits.dev
        case "test": set = splits.test
        default: throw ValidationError("--split '\(split)' is not one of train, dev, test")
        }
        let tokenizer = try WordPieceTokenizer(modelDirectory: dir)
        let net = try BertClassifier(modelDirectory: dir, numLabels: modelLabels.count)
        let c = modelLabels.count
        let encodings = set.examples.map { tokenizer.encode($0.text, maxLength: maxLength) }
        let order = encodings.indices.sorted { encodings[$0].count < encodings[$1].count }
        var predictions = [Int](repeating: 0, count: set.count)
        var i = 0
        while i < order.count {
            let chunk = Array(order[i..<min(i + batchSize, order.count)])
            let batch = try TokenBatch(sequences: chunk.map { encodings[$0].ids }, typeIds: chunk.map { encodings[$0].tokenTypeIds },
                                       padId: tokenizer.paddingId, sepId: tokenizer.separatorId)
            let logits = try net.logits(batch)
            for (r, idx) in chunk.enumerated() {
                predictions[idx] = (0..<c).max { logits[r * c + $0] < logits[r * c + $1] }!
            }
            i += chunk.count
        }
        let m = ClassificationMetrics(predictions: predictions, labels: set.examples.map(\.label), classes: c)
        let object: [String: Any] = ["split": split, "examples": set.count, "accuracy": m.accuracy, "macro_f1": m.macroF1,
                                     "labels": modelLabels, "confusion": m.confusion]
        print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
    }
}
