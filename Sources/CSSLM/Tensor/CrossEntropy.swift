// Softmax cross-entropy over class logits, mean over the batch (torch.nn.CrossEntropyLoss).

/// loss = Σ_b w_b [ logsumexp(logits[b]) − logits[b, y_b] ] with w_b = 1/B (the mean) unless
/// `rowWeights` are given;  dlogits[B, C] = w_b (softmax − onehot).
/// Returns the loss. `dLogits` may be nil for evaluation.
@discardableResult
public func softmaxCrossEntropy(logits: UnsafePointer<Float>, labels: [Int], classes c: Int,
                                dLogits: UnsafeMutablePointer<Float>?, rowWeights: [Float]? = nil) -> Float {
    let b = labels.count
    guard b > 0 else { return 0 }
    precondition(rowWeights == nil || rowWeights!.count == b, "one weight per row")
    var total: Double = 0
    for r in 0..<b {
        let invB = rowWeights?[r] ?? 1 / Float(b)
        if invB == 0 {
            if let dLogits { (dLogits + r * c).update(repeating: 0, count: c) }
            continue
        }
        let row = logits + r * c
        let y = labels[r]
        precondition(y >= 0 && y < c, "label \(y) out of range 0..<\(c)")
        let m = vmax(row, c)
        var z: Float = 0
        for j in 0..<c { z += expf(row[j] - m) }
        let logZ = m + logf(z)
        total += Double(invB) * Double(logZ - row[y])
        if let dLogits {
            let d = dLogits + r * c
            for j in 0..<c { d[j] = expf(row[j] - logZ) * invB }
            d[y] -= invB
        }
    }
    return Float(total)
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
