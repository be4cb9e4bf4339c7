// Pair-classification losses over linear heads, as CSS-LM uses them (docs/method.md#losses):
//   pair       = Linear(4H, 2) on [e_i; e_j; t_i; t_j], target 1[y_i = y_j]       (L_pair)
//   taskPair   = Linear(2H, 2) on [t_i; t_j],            target 1[y_i = y_j]       (L_task)
//   domainPair = Linear(2H, 2) on [e_q; e_d],            target 1[d is labelled]   (L_dom)
// With a linear head the logits split into a row part and a column part,
//   z_k(i, j) = Σ_row blocks W_k[block]·x_i + Σ_col blocks W_k[block]·x_j + b_k,
// so a rank scores its local rows against the gathered global columns in O(rows·cols) after two
// small matrix-vector passes, and the column gradient is a per-column sum that the distributed
// runtime reduce-scatters back to the columns' owners. The loss is the mean CE over `pairCount`
// pairs (all pairs of the global set: each rank adds its rows' share).
// Shapes: R = local rows, M = columns, H = feature width.

/// HF-style names and shapes of a pair head over `inputs` feature blocks of width H.
public func pairHeadTensors(hidden h: Int, name: String = "pair", inputs: Int = 4) -> [(name: String, shape: [Int])] {
    [("\(name).weight", [2, inputs * h]), ("\(name).bias", [2])]
}

/// One block of features on one side of the pair: rows × H floats, and where its weights start
/// in the head's input vector. `gradient` (same shape) receives d loss / d features, if given.
public struct PairBlock {
    public var features: UnsafePointer<Float>
    public var weightOffset: Int
    public var gradient: UnsafeMutablePointer<Float>?
    public init(_ features: UnsafePointer<Float>, weightOffset: Int, gradient: UnsafeMutablePointer<Float>? = nil) {
        self.features = features; self.weightOffset = weightOffset; self.gradient = gradient
    }
}

public struct PairLossResult {
    /// This rank's share of the mean loss: Σ over its pairs of CE / pairCount.
    public var loss: Float
    /// Pairs of this rank where the head predicts the target.
    public var correct: Int
}

/// Mean pair CE of a linear 2-way head over rows × columns, with gradients ADDED into each block's
/// `gradient` and into dWeight [2, inputWidth] / dBias [2] (when given).
/// `target(i, j)` is 0 or 1 for local row i and column j.
public func linearPairLoss(rows: [PairBlock], rowCount r: Int, columns: [PairBlock], columnCount m: Int,
                           width h: Int, inputWidth: Int, weight w: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                           pairCount: Int, target: (Int, Int) -> Int,
                           dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?) -> PairLossResult {
    // Row and column parts of the two logits: a[i][k] (bias included), c[j][k].
    var a = [Float](repeating: 0, count: 2 * r), c = [Float](repeating: 0, count: 2 * m)
    for k in 0..<2 {
        let wk = w + k * inputWidth
        for i in 0..<r {
            a[2 * i + k] = bias[k] + rows.reduce(0) { $0 + vdot(wk + $1.weightOffset, $1.features + i * h, h) }
        }
        for j in 0..<m {
            c[2 * j + k] = columns.reduce(0) { $0 + vdot(wk + $1.weightOffset, $1.features + j * h, h) }
        }
    }
    let invP = 1 / Float(pairCount)
    var total: Double = 0
    var correct = 0
    // d loss / d z1 per pair is g = (p1 − target)/P and d/dz0 = −g: only the sums over columns
    // (per row) and over rows (per column) are needed.
    var dA = [Float](repeating: 0, count: r), dC = [Float](repeating: 0, count: m)
    for i in 0..<r {
        for j in 0..<m {
            let z0 = a[2 * i] + c[2 * j], z1 = a[2 * i + 1] + c[2 * j + 1]
            let t = target(i, j)
            let mx = max(z0, z1)
            let lse = mx + logf(expf(z0 - mx) + expf(z1 - mx))
            total += Double(lse - (t == 1 ? z1 : z0))
            if (z1 > z0 ? 1 : 0) == t { correct += 1 }
            let g = (expf(z1 - lse) - Float(t)) * invP
            dA[i] += g
            dC[j] += g
        }
    }
    // z_k depends on W_k; d/dz1 = g, d/dz0 = −g, so every weight gradient uses (W1 − W0) or ±g.
    let w0 = w, w1 = w + inputWidth
    for block in rows {
        if let grad = block.gradient {
            for i in 0..<r where dA[i] != 0 {
                for x in 0..<h { grad[i * h + x] += dA[i] * (w1[block.weightOffset + x] - w0[block.weightOffset + x]) }
            }
        }
    }
    for block in columns {
        if let grad = block.gradient {
            for j in 0..<m where dC[j] != 0 {
                for x in 0..<h { grad[j * h + x] += dC[j] * (w1[block.weightOffset + x] - w0[block.weightOffset + x]) }
            }
        }
    }
    if let dWeight, let dBias {
        let dw0 = dWeight, dw1 = dWeight + inputWidth
        for block in rows {
            for i in 0..<r where dA[i] != 0 {
                axpy(dA[i], block.features + i * h, dw1 + block.weightOffset, h)
                axpy(-dA[i], block.features + i * h, dw0 + block.weightOffset, h)
            }
        }
        for block in columns {
            for j in 0..<m where dC[j] != 0 {
                axpy(dC[j], block.features + j * h, dw1 + block.weightOffset, h)
                axpy(-dC[j], block.features + j * h, dw0 + block.weightOffset, h)
            }
        }
        let sum = dA.reduce(0, +)
        dBias[1] += sum
        dBias[0] -= sum
    }
    return PairLossResult(loss: Float(total * Double(invP)), correct: correct)
}

/// L_pair (docs/method.md#losses) for local rows against global columns: the `pair` head on
/// [e_i; e_j; t_i; t_j], target 1[y_i = y_j]. Gradients are added where pointers are given.
public func pairLoss(rowE: UnsafePointer<Float>, rowT: UnsafePointer<Float>, rowLabels: [Int],
                     colE: UnsafePointer<Float>, colT: UnsafePointer<Float>, colLabels: [Int],
                     hidden h: Int, weight w: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                     pairCount: Int,
                     dRowE: UnsafeMutablePointer<Float>?, dRowT: UnsafeMutablePointer<Float>?,
                     dColE: UnsafeMutablePointer<Float>?, dColT: UnsafeMutablePointer<Float>?,
                     dWeight: UnsafeMutablePointer<Float>?, dBias: UnsafeMutablePointer<Float>?) -> PairLossResult {
    linearPairLoss(rows: [PairBlock(rowE, weightOffset: 0, gradient: dRowE), PairBlock(rowT, weightOffset: 2 * h, gradient: dRowT)],
                   rowCount: rowLabels.count,
                   columns: [PairBlock(colE, weightOffset: h, gradient: dColE), PairBlock(colT, weightOffset: 3 * h, gradient: dColT)],
                   columnCount: colLabels.count, width: h, inputWidth: 4 * h, weight: w, bias: bias, pairCount: pairCount,
                   target: { rowLabels[$0] == colLabels[$1] ? 1 : 0 }, dWeight: dWeight, dBias: dBias)
}

/// y[i] += alpha · x[i], i < n
@inline(__always)
public func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { y[i] += alpha * x[i] }
}

#if canImport(Glibc)
import Glibc
#endif
