// Linear layer: y = x·Wᵀ + b with PyTorch's weight layout W[out, in]. Every call is ONE sgemm over
// all N = batch·seq rows (DESIGN.md contract 6), never one call per row.
import CBLAS

/// y[N, out] = x[N, in] · W[out, in]ᵀ + b[out]
public func linearForward(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                          weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          rows n: Int, inDim: Int, outDim: Int) {
    guard n > 0 else { return }
    var beta: Float = 0
    if let bias {
        for r in 0..<n { (y + r * outDim).update(from: bias, count: outDim) }
        beta = 1
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(outDim), Int32(inDim),
                1, x, Int32(inDim), weight, Int32(inDim), beta, y, Int32(outDim))
}

/// Backward of `linearForward`, given dy[N, out]:
/// dx[N, in] = dy · W (overwritten, or added to when `accumulateInput`),
/// dW[out, in] += dyᵀ · x,  db[out] += Σ_rows dy.
public func linearBackward(dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>,
                           dBias: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>,
                           x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           rows n: Int, inDim: Int, outDim: Int, accumulateInput: Bool = false) {
    guard n > 0 else { return }
    if let dx {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(inDim), Int32(outDim),
                    1, dy, Int32(outDim), weight, Int32(inDim), accumulateInput ? 1 : 0, dx, Int32(inDim))
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(outDim), Int32(inDim), Int32(n),
                1, dy, Int32(outDim), x, Int32(inDim), 1, dWeight, Int32(inDim))
    if let dBias { addRows(into: dBias, from: dy, rows: n, cols: outDim) }
}

/// acc[c] += Σ_r m[r, c] for m[rows, cols].
public func addRows(into acc: UnsafeMutablePointer<Float>, from m: UnsafePointer<Float>, rows: Int, cols: Int) {
    for r in 0..<rows {
        let row = m + r * cols
        for c in 0..<cols { acc[c] += row[c] }
    }
}
