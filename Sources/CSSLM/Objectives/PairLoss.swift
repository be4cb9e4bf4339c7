// The pairwise same-label loss of CSS-LM (METHOD.md): over a set S with labels y,
// L_pair(S) = mean over ALL ordered pairs (i, j) ∈ S×S (i = j included) of
//             CE(pair([e_i; e_j; t_i; t_j]), 1[y_i = y_j]),   pair = Linear(4H, 2).
// With a linear head the pair logits split into a row part and a column part,
//   z_k(i, j) = W_k[e1]·e_i + W_k[t1]·t_i  +  W_k[e2]·e_j + W_k[t2]·t_j  +  b_k,
// so a rank scores its local rows against the gathered global columns in O(rows·cols) after two
// small GEMMs, and the gradient for the columns is a per-column sum that the distributed runtime
// reduce-scatters back to the columns' owners. Shapes: R = local rows, M = global columns, H = hidden.

/// HF-style names and shapes of the pair head.
public func pairHeadTensors(hidden h: Int, name: String = "pair") -> [(name: String, shape: [Int])] {
    [("\(name).weight", [2, 4 * h]), ("\(name).bias", [2])]
}

public struct PairLossResult {
    /// This rank's share: Σ over its rows × all columns of CE, divided by `pairCount`.
    public var loss: Float
    /// Fraction of this rank's pairs where the head predicts the right same/different label.
    public var correct: Int
}

/// Forward and backward of the pair loss for local rows against global columns.
/// - rowE, rowT [R, H]: e and t of the local rows; colE, colT [M, H]: of all columns (gathered).
/// - pairCount: the number of pairs the mean runs over (M² for the global set).
/// - Gradients are ADDED into dRowE/dRowT [R, H], dColE/dColT [M, H], dWeight [2, 4H], dBias [2]
///   (each rank adds the weight gradient of its rows only; the allreduce sums them).
public func pairLoss(rowE: UnsafePointer<Float>, rowT: UnsafePointer<Float>, rowLabels: [Int],
                     colE: UnsafePointer<Float>, colT: UnsafePointer<Float>, colLabels: [Int],
                     hidden h: Int, weight w: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                     pairCount: Int,
                     dRowE: UnsafeMutablePointer<Float>?, dRowT: UnsafeMutablePointer<Float>?,
                     dColE: UnsafeMutablePointer<Float>?, dColT: UnsafeMutablePointer<Float>?,
                     dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?) -> PairLossResult {
    let r = rowLabels.count, m = colLabels.count
    // Row and column parts of the two logits: a[i][k], c[j][k].
    var a = [Float](repeating: 0, count: 2 * r), c = [Float](repeating: 0, count: 2 * m)
    for k in 0..<2 {
        let wk = w + k * 4 * h
        for i in 0..<r { a[2 * i + k] = vdot(wk, rowE + i * h, h) + vdot(wk + 2 * h, rowT + i * h, h) + bias[k] }
        for j in 0..<m { c[2 * j + k] = vdot(wk + h, colE + j * h, h) + vdot(wk + 3 * h, colT + j * h, h) }
    }
    let invP = 1 / Float(pairCount)
    var total: Double = 0
    var correct = 0
    var dA = [Float](repeating: 0, count: 2 * r), dC = [Float](repeating: 0, count: 2 * m)
    for i in 0..<r {
        for j in 0..<m {
            let z0 = a[2 * i] + c[2 * j], z1 = a[2 * i + 1] + c[2 * j + 1]
            let target = rowLabels[i] == colLabels[j] ? 1 : 0
            let mx = max(z0, z1)
            let lse = mx + logf(expf(z0 - mx) + expf(z1 - mx))
            total += Double(lse - (target == 1 ? z1 : z0))
            if (z1 > z0 ? 1 : 0) == target { correct += 1 }
            let p1 = expf(z1 - lse)
            // d/dz1 = (p1 − 1[target]) / P, d/dz0 = −d/dz1.
            let g1 = (p1 - Float(target)) * invP
            dA[2 * i] -= g1; dA[2 * i + 1] += g1
            dC[2 * j] -= g1; dC[2 * j + 1] += g1
        }
    }
    for k in 0..<2 {
        let wk = w + k * 4 * h
        if let dRowE, let dRowT {
            for i in 0..<r { axpy(dA[2 * i + k], wk, dRowE + i * h, h); axpy(dA[2 * i + k], wk + 2 * h, dRowT + i * h, h) }
        }
        if let dColE, let dColT {
            for j in 0..<m { axpy(dC[2 * j + k], wk + h, dColE + j * h, h); axpy(dC[2 * j + k], wk + 3 * h, dColT + j * h, h) }
        }
        if let dWeight, let dBias {
            let dwk = dWeight + k * 4 * h
            for i in 0..<r {
                axpy(dA[2 * i + k], rowE + i * h, dwk, h)
                axpy(dA[2 * i + k], rowT + i * h, dwk + 2 * h, h)
                dBias[k] += dA[2 * i + k]
            }
            // The column side of W: this rank adds Σ_j dC_local(j)·col_j for ITS rows' pairs.
            for j in 0..<m {
                axpy(dC[2 * j + k], colE + j * h, dwk + h, h)
                axpy(dC[2 * j + k], colT + j * h, dwk + 3 * h, h)
            }
        }
    }
    return PairLossResult(loss: Float(total * Double(invP)), correct: correct)
}

/// y[i] += alpha · x[i], i < n
@inline(__always)
public func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { y[i] += alpha * x[i] }
}

#if canImport(Glibc)
import Glibc
#endif
