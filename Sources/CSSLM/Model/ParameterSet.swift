// All trainable tensors of a model in ONE flat buffer (and their gradients in a second one of the
// same layout), addressed by HF tensor names (docs/design.md#flat-buffers). Tensors from a weights file
// that the model does not train (e.g. BERT's pooler) are kept aside unchanged and written back.
import Foundation

/// One named tensor inside the flat buffers.
public struct ParameterSpec: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    /// AdamW weight decay applies (not to biases and LayerNorm, as HF's recipe).
    public let decays: Bool
    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }
}

/// The flat parameter and gradient buffers with their layout.
public final class ParameterSet {
    public let specs: [ParameterSpec]
    public let values: FloatBuffer
    public let grads: FloatBuffer
    private let index: [String: Int]
    /// Tensors read from a weights file that are not trained, written back unchanged.
    public var passthrough: [(name: String, shape: [Int], values: FloatBuffer)] = []

    /// Lays out `tensors` in the order given.
    public init(_ tensors: [(name: String, shape: [Int])]) {
        var specs: [ParameterSpec] = []
        var offset = 0
        var index: [String: Int] = [:]
        for t in tensors {
            precondition(index[t.name] == nil, "duplicate parameter \(t.name)")
            let decays = !(t.name.hasSuffix(".bias") || t.name.contains("LayerNorm"))
            let spec = ParameterSpec(name: t.name, shape: t.shape, offset: offset, decays: decays)
            index[t.name] = specs.count
            specs.append(spec)
            offset += spec.count
        }
        self.specs = specs
        self.index = index
        values = FloatBuffer(count: offset)
        grads = FloatBuffer(count: offset)
    }

    public var count: Int { values.count }

    public func spec(_ name: String) -> ParameterSpec? { index[name].map { specs[$0] } }

    /// Offset of tensor `name` (a programming error if absent).
    public func offset(_ name: String) -> Int {
        guard let i = index[name] else { preconditionFailure("no parameter named \(name)") }
        return specs[i].offset
    }

    public func value(_ name: String) -> UnsafeMutablePointer<Float> { values.base + offset(name) }
    public func grad(_ name: String) -> UnsafeMutablePointer<Float> { grads.base + offset(name) }

    /// Fills every tensor whose name starts with `prefix` with HF's initialisation: weights
    /// ~ N(0, std²) (Box–Muller from `rng`), biases 0, LayerNorm weight 1.
    public func initialize(prefix: String, std: Float, rng: inout SplitMix64) {
        for s in specs where s.name.hasPrefix(prefix) {
            let p = values.base + s.offset
            if s.name.hasSuffix(".bias") {
                p.update(repeating: 0, count: s.count)
            } else if s.name.contains("LayerNorm") {
                p.update(repeating: 1, count: s.count)
            } else {
                for i in 0..<s.count {
                    let u1 = max(Double(rng.nextUniform()), 1e-12), u2 = Double(rng.nextUniform())
                    p[i] = Float((-2 * Foundation.log(u1)).squareRoot() * cos(2 * Double.pi * u2)) * std
                }
            }
        }
    }

    /// Where HF files keep encoder tensors: under their own names (BertModel) or under "bert."
    /// (BertForSequenceClassification and the other task models).
    public static let weightPrefixes = ["", "bert."]

    /// Loads every tensor accepted by `filter` from `file`, looking each up by its name or with
    /// one of `aliases` prefixes (e.g. "bert."). Returns the names not found.
    /// A wrong shape or a non-float dtype throws an error naming the tensor and the file; so does a
    /// NaN or infinite value (a corrupt or diverged file would otherwise train on silently),
    /// unless `allowNonFinite`.
    @discardableResult
    public func load(from file: SafetensorsFile, prefixes: [String] = ParameterSet.weightPrefixes, allowNonFinite: Bool = false,
                     filter: (ParameterSpec) -> Bool = { _ in true }) throws -> [String] {
        var missing: [String] = []
        for s in specs where filter(s) {
            guard let found = file.find(s.name, prefixes: prefixes) else {
                missing.append(s.name)
                continue
            }
            let p = values.base + s.offset
            try file.read(found.name, into: p, expectedShape: s.shape)
            if !allowNonFinite, let i = (0..<s.count).first(where: { !p[$0].isFinite }) {
                throw CSSLMError("\(file.path): tensor '\(found.name)' holds \(p[i]) at element \(multiIndex(i, shape: s.shape))",
                                 hint: "the weights are corrupt or come from a diverged run; load them anyway with allowNonFinite")
            }
        }
        return missing
    }

    /// Safetensors entries for the tensors accepted by `filter` (names as in the layout).
    public func entries(_ filter: (ParameterSpec) -> Bool) -> [SafetensorsEntry] {
        specs.filter(filter).map {
            SafetensorsEntry(name: $0.name, shape: $0.shape,
                             values: UnsafeBufferPointer(start: values.base + $0.offset, count: $0.count))
        }
    }
}

/// The row-major index [i0, i1, ...] of flat element `flat` in a tensor of `shape`.
func multiIndex(_ flat: Int, shape: [Int]) -> [Int] {
    var rest = flat
    var index = [Int](repeating: 0, count: shape.count)
    for d in shape.indices.reversed() where shape[d] > 0 {
        index[d] = rest % shape[d]
        rest /= shape[d]
    }
    return index
}
