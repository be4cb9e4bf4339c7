// CSSLM: the library behind the csslm tool. One folder per concern (see docs/design.md#layout):
// Tensor (flat buffers and kernels), Model (BERT encoder, heads, safetensors), Training (AdamW,
// schedule), Text (tokenizer), Data, Distributed, Retrieval, Objectives.

/// Version of the csslm library and of the files it writes.
public enum CSSLMVersion {
    public static let string = "0.1.0"
}
