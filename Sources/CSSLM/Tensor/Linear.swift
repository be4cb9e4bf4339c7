// Linear layer: y = x·Wᵀ + b with PyTorch's weight layout W[out, in]. Every product is one sgemm
// over all N = batch·seq rows (docs/design.md#kernels-and-threads), split by rows over the compute threads,
// never one call per example or token.

/// y[N, out] = x[N, in] · W[out, in]ᵀ + b[out]
public func linearForward(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                          weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                          rows n: Int, inDim: Int, outDim: Int) {
    guard n > 0 else { return }
    parallelParts(n, align: 16, minPerPart: 64) { _, rows in
        let yp = y + rows.lowerBound * outDim
        // The bias goes in first and the sgemm adds onto it (β = 1): no separate pass over y.
        if let bias { for r in 0..<rows.count { (yp + r * outDim).update(from: bias, count: outDim) } }
        sgemmSerial(transB: true, m: rows.count, n: outDim, k: inDim, a: x + rows.lowerBound * inDim, lda: inDim,
                    b: weight, ldb: inDim, beta: bias == nil ? 0 : 1, c: yp, ldc: outDim)
    }
}

/// Backward of `linearForward`, given dy[N, out]:
/// dx[N, in] = dy · W (overwritten, or added to when `accumulateInput`),
/// dW[out, in] += dyᵀ · x,  db[out] += Σ_rows dy.
/// One parallel region: part i computes its rows of dx and its rows of dW and db.
public func linearBackward(dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>,
                           dBias: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>,
                           x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           rows n: Int, inDim: Int, outDim: Int, accumulateInput: Bool = false) {
    guard n > 0 else { return }
    let threads = ComputeThreads.count
    let split = n >= 64 * threads && outDim >= 16 * threads
    let parts = split ? threads : 1
    parallelParts(parts) { part, _ in
        let rows = partRange(n, part: part, of: parts, align: 16)
        let outs = partRange(outDim, part: part, of: parts, align: 16)
        if let dx, !rows.isEmpty {
            sgemmSerial(m: rows.count, n: inDim, k: outDim, a: dy + rows.lowerBound * outDim, lda: outDim,
                        b: weight, ldb: inDim, beta: accumulateInput ? 1 : 0, c: dx + rows.lowerBound * inDim, ldc: inDim)
        }
        guard !outs.isEmpty else { return }
        sgemmSerial(transA: true, m: outs.count, n: inDim, k: n, a: dy + outs.lowerBound, lda: outDim,
                    b: x, ldb: inDim, beta: 1, c: dWeight + outs.lowerBound * inDim, ldc: inDim)
        if let dBias { addRows(into: dBias + outs.lowerBound, from: dy + outs.lowerBound, rows: n, cols: outs.count, stride: outDim) }
    }
}

/// acc[c] += Σ_r m[r·stride + c] for r < rows, c < cols (column sums, rows added in order).
public func addRows(into acc: UnsafeMutablePointer<Float>, from m: UnsafePointer<Float>, rows: Int, cols: Int,
                    stride: Int? = nil) {
    let ld = stride ?? cols
    // Blocks of 32 columns held in registers across all rows.
    var c = 0
    while c + 32 <= cols {
        var a0 = load8(acc + c), a1 = load8(acc + c + 8), a2 = load8(acc + c + 16), a3 = load8(acc + c + 24)
        for r in 0..<rows {
            let p = m + r * ld + c
            a0 += load8(p); a1 += load8(p + 8); a2 += load8(p + 16); a3 += load8(p + 24)
        }
        store8(a0, acc + c); store8(a1, acc + c + 8); store8(a2, acc + c + 16); store8(a3, acc + c + 24)
        c += 32
    }
    while c < cols {
        var s = acc[c]
        for r in 0..<rows { s += m[r * ld + c] }
        acc[c] = s
        c += 1
    }
}
