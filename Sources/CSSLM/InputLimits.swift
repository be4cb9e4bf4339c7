// The most any input file may declare or hold. A model folder, dataset or config from elsewhere is
// data: each reader checks these before it allocates or loops on a number the file states, and
// says which file, line, field or tensor broke which limit. docs/limits.md lists them with the
// reasons behind each value.
import Foundation

public enum InputLimits {
    /// Bytes of one line of a JSONL, CSV/TSV, labels.txt or corpus file, of one CSV record, and of
    /// one element of a reference JSON list.
    public static let maxLineBytes = 1 << 20
    /// Bytes of a JSON config file: config.json, tokenizer.json, tokenizer_config.json,
    /// special_tokens_map.json and the run config.
    public static let maxJSONConfigBytes = 64 << 20
    /// Tokens in vocab.txt, and the largest `vocab_size` a config.json may state.
    public static let maxVocabularySize = 1_000_000
    /// Bytes of one vocab.txt token (so the piece tables' Int32 offsets never overflow).
    public static let maxTokenBytes = 1024
    /// Classes of a labelled dataset (labels.txt lines, distinct label names, largest index + 1).
    public static let maxLabelCount = 10_000
    /// Bytes of a safetensors JSON header.
    public static let maxHeaderBytes = 100 << 20
    /// Tensors in one safetensors file.
    public static let maxTensorCount = 100_000
    /// Dimensions of one tensor.
    public static let maxTensorRank = 8
    /// The longest sequence a model may take (`max_position_embeddings`), in tokens.
    public static let maxSequenceLength = 8192
    /// `hidden_size` and `intermediate_size`.
    public static let maxHiddenSize = 8192
    public static let maxIntermediateSize = 65_536
    /// `num_hidden_layers`.
    public static let maxLayers = 128
    /// `type_vocab_size`.
    public static let maxTypeVocabularySize = 1024

    /// The bytes of `url`, or nil when the file holds more than `limit` bytes. Reads at most
    /// `limit + 1` bytes whatever the file system says its size is (a pipe or a special file has
    /// none); throws the underlying error when the file cannot be opened or read.
    static func read(_ url: URL, atMost limit: Int) throws -> Data? {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var data = Data()
        while data.count <= limit, let chunk = try handle.read(upToCount: min(1 << 20, limit + 1 - data.count)),
              !chunk.isEmpty {
            data.append(chunk)
        }
        return data.count > limit ? nil : data
    }

    /// "1 MiB (1048576 bytes)"-style wording for messages.
    static func describeBytes(_ n: Int) -> String {
        let mib = Double(n) / Double(1 << 20)
        if n >= 1 << 20 && mib == mib.rounded() { return "\(Int(mib)) MiB (\(n) bytes)" }
        return "\(n) bytes"
    }
}
