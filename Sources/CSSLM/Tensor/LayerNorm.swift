// Layer normalisation over the last dimension, as torch.nn.LayerNorm (biased variance, eps inside
// the square root), with BERT's residual and dropout fused in: one pass over each row computes
// s = dropout(branch) + residual, its statistics and the normalised output, while the row is in L1.
// The forward keeps per-row mean and 1/σ (and s) for the backward. Rows split over the compute
// threads; reductions use SIMD accumulators (Swift never vectorises a float reduction itself).
// Shapes: N = rows (B·T), C = columns; row n belongs to example n / T, position n mod T.

/// y[N, C] = (x − μ) / sqrt(σ² + eps) · γ[C] + β[C];  mean[N], rstd[N] saved.
public func layerNormForward(y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                             rstd: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                             gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                             rows n: Int, cols c: Int, eps: Float) {
    parallelParts(n, minPerPart: 8) { _, rows in
        for r in rows {
            normalizeRow(y: y + r * c, mean: mean + r, rstd: rstd + r, x: x + r * c, gamma: gamma, beta: beta,
                         cols: c, eps: eps)
        }
    }
}

/// sum[N, C] = dropout(branch) + residual (`sum` may alias `branch`), then y = LN(sum)·γ + β with
/// mean[N], rstd[N] saved: BERT's `LayerNorm(dropout(dense(h)) + h)`. Row n's dropout key is
/// (example g / T, position g mod T) of `site`, g = rowMap[n] (rows compacted from [B·T]) or n.
public func residualLayerNormForward(y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                                     rstd: UnsafeMutablePointer<Float>, sum: UnsafeMutablePointer<Float>,
                                     branch: UnsafePointer<Float>, residual: UnsafePointer<Float>,
                                     gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                                     rows n: Int, cols c: Int, seqLen t: Int, eps: Float,
                                     dropout: DropoutContext, site: Int, rowMap: UnsafePointer<Int>? = nil) {
    let mask = DropoutMask(dropout, site: site)
    parallelParts(n, minPerPart: 8) { _, rows in
        for r in rows {
            let s = sum + r * c, a = branch + r * c, h = residual + r * c
            var j = 0
            if mask.isActive {
                let g = rowMap?[r] ?? r
                let key = mask.rowKey(example: g / t, row: g % t)
                while j + 8 <= c { store8(load8(a + j) * mask.multipliers(rowKey: key, column: j) + load8(h + j), s + j); j += 8 }
                if j < c {
                    let m = mask.multipliers(rowKey: key, column: j)
                    for k in 0..<(c - j) { s[j + k] = a[j + k] * m[k] + h[j + k] }
                }
            } else {
                while j + 8 <= c { store8(load8(a + j) + load8(h + j), s + j); j += 8 }
                while j < c { s[j] = a[j] + h[j]; j += 1 }
            }
            normalizeRow(y: y + r * c, mean: mean + r, rstd: rstd + r, x: s, gamma: gamma, beta: beta, cols: c, eps: eps)
        }
    }
}

/// One row of LayerNorm: y[C] from x[C]; writes the row's mean and 1/σ.
@inline(__always)
func normalizeRow(y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                  x: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, cols c: Int, eps: Float) {
    let m = vsum(x, c) / Float(c)
    // Two-pass variance: Σ(x − μ)² is accurate where E[x²] − μ² cancels.
    var acc0 = Vec8(), acc1 = Vec8()
    var i = 0
    while i + 16 <= c {
        let d0 = load8(x + i) - m, d1 = load8(x + i + 8) - m
        acc0 += d0 * d0; acc1 += d1 * d1
        i += 16
    }
    while i + 8 <= c { let d = load8(x + i) - m; acc0 += d * d; i += 8 }
    var v = (acc0 + acc1).sum()
    while i < c { let d = x[i] - m; v += d * d; i += 1 }
    let s = 1 / (v / Float(c) + eps).squareRoot()
    mean.pointee = m
    rstd.pointee = s
    var j = 0
    while j + 8 <= c { store8((load8(x + j) - m) * s * load8(gamma + j) + load8(beta + j), y + j); j += 8 }
    while j < c { y[j] = (x[j] - m) * s * gamma[j] + beta[j]; j += 1 }
}

/// Backward of LayerNorm given dy[N, C] and the forward's input x (= `sum` of the residual form):
/// dx = s · (g − mean(g) − x̂ · mean(g · x̂)) with g = dy · γ and x̂ = (x − μ)·s;
/// dγ += Σ_rows dy · x̂, dβ += Σ_rows dy. `dx` may alias `dy`.
/// When `dBranch` is given (the input was dropout(branch) + residual), it receives dropout(dx),
/// the branch's gradient, and dx is the residual's; `dBranch` may alias `dy` too. Dropout keys as
/// in `residualLayerNormForward`.
public func layerNormBackward(dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>,
                              dBeta: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                              x: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                              rstd: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                              rows n: Int, cols c: Int,
                              dBranch: UnsafeMutablePointer<Float>? = nil, seqLen t: Int = 1,
                              dropout: DropoutContext = .off(batch: 0), site: Int = 0,
                              rowMap: UnsafePointer<Int>? = nil) {
    // dγ, dβ first (dx may overwrite dy): columns split over the threads, rows summed in order.
    parallelParts(c, align: 8, minPerPart: 32) { _, cols in
        for r in 0..<n {
            let m = mean[r], s = rstd[r]
            let xr = x + r * c, dyr = dy + r * c
            var j = cols.lowerBound
            while j + 8 <= cols.upperBound {
                let d = load8(dyr + j)
                store8(load8(dGamma + j) + d * ((load8(xr + j) - m) * s), dGamma + j)
                store8(load8(dBeta + j) + d, dBeta + j)
                j += 8
            }
            while j < cols.upperBound {
                dGamma[j] += dyr[j] * ((xr[j] - m) * s)
                dBeta[j] += dyr[j]
                j += 1
            }
        }
    }
    let mask = DropoutMask(dropout, site: site)
    parallelParts(n, minPerPart: 8) { _, rows in
        for r in rows {
            let xr = x + r * c, dyr = dy + r * c, dxr = dx + r * c
            let m = mean[r], s = rstd[r]
            var accG = Vec8(), accGX = Vec8()
            var j = 0
            while j + 8 <= c {
                let g = load8(dyr + j) * load8(gamma + j)
                accG += g
                accGX += g * ((load8(xr + j) - m) * s)
                j += 8
            }
            var sumG = accG.sum(), sumGX = accGX.sum()
            while j < c {
                let g = dyr[j] * gamma[j]
                sumG += g
                sumGX += g * ((xr[j] - m) * s)
                j += 1
            }
            let meanG = sumG / Float(c), meanGX = sumGX / Float(c)
            // Explicit SIMD: dx may alias dy, and an aliased loop would not be vectorised.
            j = 0
            while j + 8 <= c {
                store8(s * (load8(dyr + j) * load8(gamma + j) - meanG - (load8(xr + j) - m) * s * meanGX), dxr + j)
                j += 8
            }
            while j < c { dxr[j] = s * (dyr[j] * gamma[j] - meanG - (xr[j] - m) * s * meanGX); j += 1 }
            if let dBranch {
                let db = dBranch + r * c
                db.update(from: dxr, count: c)
                if mask.isActive {
                    let g = rowMap?[r] ?? r
                    mask.apply(db, count: c, rowKey: mask.rowKey(example: g / t, row: g % t))
                }
            }
        }
    }
}
