// Supervised contrastive loss (SupCon, Khosla et al. 2020, eq. 2, "L_out"), the alternative to the
// pairwise same-label loss that docs/method.md#losses offers beside L_pair. Over L2-normalised features
// z = f / ‖f‖ of a set of M items with labels y and temperature τ:
//   ℓ_i = −(1/|P_i|) Σ_{p∈P_i} log( exp(z_i·z_p/τ) / Σ_{j≠i} exp(z_i·z_j/τ) ),  P_i = {p ≠ i : y_p = y_i}
//   L   = mean of ℓ_i over the anchors with |P_i| > 0.
// An anchor without a positive has no defined term: it is masked out of the mean and counted, so a
// run can report how much of its batch the loss ignores. It still serves as a column (negative)
// for the other anchors.
// Distributed as L_pair is (FeatureGather): every rank holds the gathered set [M, D], takes its own
// rows as anchors, and adds d(its share)/d(features) for ALL M rows, anchors included, into the
// gathered gradient, which the reduce-scatter sums back to the rows' owners. The mean's denominator
// comes from the gathered labels, so no extra collective is needed.
// Shapes: M = gathered rows, D = feature width, R = anchors of this rank.
import Foundation

/// The outcome of `supConLoss` on one rank.
public struct SupConResult: Equatable {
    /// This rank's share of the mean loss: Σ over its anchors with positives of ℓ_i / `anchorsWithPositives`.
    public var loss: Float
    /// Anchors of the whole gathered set with at least one positive (the mean's denominator).
    public var anchorsWithPositives: Int
    /// Anchors of the whole gathered set without a positive (masked out of the mean).
    public var maskedAnchors: Int
}

/// SupCon over the gathered set `features` [M, D] with `labels` [M], for the anchors at gathered rows
/// `anchors` (this rank's own), scaled by `lossScale`. When `gradient` [M, D] is given, d(scaled
/// share)/d(features) is ADDED into it for every row (anchors and columns alike).
///
/// ```swift
/// // one process: every row is an anchor
/// let r = supConLoss(features: f, labels: y, width: 384, anchors: 0..<y.count, temperature: 0.1, gradient: &dF)
/// // W ranks: anchors = gather.localRows, then gather.scatterGradient(dF, into: dLocal)
/// ```
public func supConLoss(features: UnsafePointer<Float>, labels: [Int], width d: Int, anchors: Range<Int>,
                       temperature tau: Float, lossScale: Float = 1,
                       gradient: UnsafeMutablePointer<Float>?) -> SupConResult {
    let m = labels.count
    precondition(tau > 0, "SupCon temperature must be positive")
    precondition(anchors.lowerBound >= 0 && anchors.upperBound <= m, "anchors must be rows of the gathered set")
    var members: [Int: Int] = [:]
    for y in labels { members[y, default: 0] += 1 }
    let withPositives = labels.reduce(0) { $0 + (members[$1]! > 1 ? 1 : 0) }
    let result = SupConResult(loss: 0, anchorsWithPositives: withPositives, maskedAnchors: m - withPositives)
    guard withPositives > 0, !anchors.isEmpty else { return result }

    // z = f / max(‖f‖, ε), as torch.nn.functional.normalize.
    let epsilon: Float = 1e-12
    var z = [Float](repeating: 0, count: m * d), norms = [Float](repeating: 0, count: m)
    for j in 0..<m {
        norms[j] = max(vdot(features + j * d, features + j * d, d).squareRoot(), epsilon)
        for k in 0..<d { z[j * d + k] = features[j * d + k] / norms[j] }
    }
    let invTau = 1 / tau, share = lossScale / Float(withPositives)
    var total: Double = 0
    var dZ = [Float](repeating: 0, count: gradient == nil ? 0 : m * d)
    var logits = [Float](repeating: 0, count: m)
    z.withUnsafeBufferPointer { zp in
        let zb = zp.baseAddress!
        for i in anchors {
            let positives = members[labels[i]]! - 1
            guard positives > 0 else { continue }
            var top = -Float.infinity
            for j in 0..<m where j != i {
                logits[j] = vdot(zb + i * d, zb + j * d, d) * invTau
                top = max(top, logits[j])
            }
            var sum: Float = 0, positiveSum: Float = 0
            for j in 0..<m where j != i {
                sum += expf(logits[j] - top)
                if labels[j] == labels[i] { positiveSum += logits[j] }
            }
            let logDenominator = top + logf(sum)
            // ℓ_i = log Σ_{j≠i} exp(s_j) − mean_{p∈P_i} s_p
            total += Double(logDenominator - positiveSum / Float(positives))
            guard gradient != nil else { continue }
            // dℓ_i/ds_j = softmax_j − [j ∈ P_i]/|P_i|, and s_j = z_i·z_j/τ.
            for j in 0..<m where j != i {
                var c = expf(logits[j] - logDenominator)
                if labels[j] == labels[i] { c -= 1 / Float(positives) }
                c *= share * invTau
                for k in 0..<d {
                    dZ[i * d + k] += c * zb[j * d + k]
                    dZ[j * d + k] += c * zb[i * d + k]
                }
            }
        }
    }
    if let gradient {
        // Through the normalisation: df = (dz − z (z·dz)) / ‖f‖ (‖f‖ ≥ ε; below it z = f/ε is linear).
        for j in 0..<m {
            let row = j * d
            let projection = norms[j] > epsilon ? (0..<d).reduce(Float(0)) { $0 + z[row + $1] * dZ[row + $1] } : 0
            for k in 0..<d { gradient[row + k] += (dZ[row + k] - z[row + k] * projection) / norms[j] }
        }
    }
    return SupConResult(loss: Float(total) * share, anchorsWithPositives: withPositives, maskedAnchors: m - withPositives)
}
