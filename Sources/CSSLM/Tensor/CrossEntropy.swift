// Softmax cross-entropy over class logits, mean over the batch (torch.nn.CrossEntropyLoss).

/// loss = mean_b [ logsumexp(logits[b]) − logits[b, y_b] ];  dlogits[B, C] = (softmax − onehot) / B.
/// Returns the loss. `dLogits` may be nil for evaluation.
@discardableResult
public func softmaxCrossEntropy(logits: UnsafePointer<Float>, labels: [Int], classes c: Int,
                                dLogits: UnsafeMutablePointer<Float>?) -> Float {
    let b = labels.count
    guard b > 0 else { return 0 }
    var total: Double = 0
    let invB = 1 / Float(b)
    for r in 0..<b {
        let row = logits + r * c
        let y = labels[r]
        precondition(y >= 0 && y < c, "label \(y) out of range 0..<\(c)")
        let m = vmax(row, c)
        var z: Float = 0
        for j in 0..<c { z += expf(row[j] - m) }
        let logZ = m + logf(z)
        total += Double(logZ - row[y])
        if let dLogits {
            let d = dLogits + r * c
            for j in 0..<c { d[j] = expf(row[j] - logZ) * invB }
            d[y] -= invB
        }
    }
    return Float(total / Double(b))
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
