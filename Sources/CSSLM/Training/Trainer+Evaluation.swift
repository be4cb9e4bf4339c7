// Rank 0's model folder and every rank's evaluation of a split: the trainer's two ways of
// showing what it has learnt (docs/design.md#distributed-layout).
import Foundation

extension Trainer {
    /// Writes the current weights as an HF model folder (encoder in model.safetensors under HF
    /// names, heads in heads.safetensors) with the tokenizer files, labels.txt and the run's config.
    public func saveModel(to dir: URL) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        try model.saveEncoder(to: dir.appendingPathComponent("model.safetensors"))
        try model.saveHeads(to: dir.appendingPathComponent("heads.safetensors"))
        try writeAtomically(try model.config.jsonData(), to: dir.appendingPathComponent("config.json"))
        let source = URL(fileURLWithPath: config.model)
        for name in ["vocab.txt", "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json"] {
            let from = source.appendingPathComponent(name), to = dir.appendingPathComponent(name)
            guard fm.fileExists(atPath: from.path) else { continue }
            try? fm.removeItem(at: to)
            try fm.copyItem(at: from, to: to)
        }
        try writeAtomically(Data((splits.labels.joined(separator: "\n") + "\n").utf8), to: dir.appendingPathComponent("labels.txt"))
        // eval, predict and embed take the run's max length from it.
        try writeAtomically(try RunFolder.configData(config), to: dir.appendingPathComponent(RunFolder.trainingConfigFile))
    }

    /// Accuracy and macro-F1 on a split, each rank scoring a contiguous share (sorted by length
    /// to waste little on padding); the confusion matrices are summed across ranks.
    func evaluate(_ split: EncodedSplit) throws -> ClassificationMetrics {
        let c = model.numLabels
        let mine = GlobalSampler.rankRows(batchSize: split.count, rank: communicator.rank, worldSize: communicator.size)
        let order = mine.sorted { split.encodings[$0].count < split.encodings[$1].count }
        var confusion = [Int](repeating: 0, count: c * c)
        var i = 0
        while i < order.count {
            let chunk = Array(order[i..<min(i + config.evalBatchSize, order.count)])
            let logits = try model.logits(try tokenBatch(chunk.map { split.encodings[$0] }))
            for (r, idx) in chunk.enumerated() {
                let row = logits[(r * c)..<((r + 1) * c)]
                let predicted = row.indices.max { row[$0] < row[$1] }! - r * c
                confusion[split.labels[idx] * c + predicted] += 1
            }
            i += chunk.count
        }
        try confusion.withUnsafeMutableBufferPointer { try communicator.allreduce($0, .sum, name: "allreduce(confusion matrix)") }
        var predictions: [Int] = [], labels: [Int] = []
        for y in 0..<c { for p in 0..<c { for _ in 0..<confusion[y * c + p] { predictions.append(p); labels.append(y) } } }
        return ClassificationMetrics(predictions: predictions, labels: labels, classes: c)
    }
}
