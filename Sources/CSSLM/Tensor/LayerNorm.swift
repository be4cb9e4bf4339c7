// Layer normalisation over the last dimension, as torch.nn.LayerNorm (biased variance, eps inside
// the square root). The forward keeps per-row mean and 1/σ for the backward.

/// y[N, C] = (x − μ) / sqrt(σ² + eps) · γ[C] + β[C];  mean[N], rstd[N] saved.
public func layerNormForward(y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                             rstd: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                             gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                             rows n: Int, cols c: Int, eps: Float) {
    let invC = 1 / Float(c)
    for r in 0..<n {
        let xr = x + r * c
        let yr = y + r * c
        let m = vsum(xr, c) * invC
        // Two-pass variance: Σ(x − μ)² is accurate where E[x²] − μ² cancels.
        var acc = Vec8()
        var i = 0
        while i + 8 <= c { let d = load8(xr + i) - m; acc += d * d; i += 8 }
        var v = acc.sum()
        while i < c { let d = xr[i] - m; v += d * d; i += 1 }
        let s = 1 / (v * invC + eps).squareRoot()
        mean[r] = m
        rstd[r] = s
        for j in 0..<c { yr[j] = (xr[j] - m) * s * gamma[j] + beta[j] }
    }
}

/// Backward of `layerNormForward`, given dy[N, C]:
/// dx = s · (g − mean(g) − x̂ · mean(g · x̂)) with g = dy · γ and x̂ = (x − μ)·s;
/// dγ += Σ_rows dy · x̂, dβ += Σ_rows dy. `dx` may alias `dy`.
public func layerNormBackward(dx: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>,
                              dBeta: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                              x: UnsafePointer<Float>, mean: UnsafePointer<Float>,
                              rstd: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                              rows n: Int, cols c: Int) {
    let invC = 1 / Float(c)
    for r in 0..<n {
        let xr = x + r * c
        let dyr = dy + r * c
        let dxr = dx + r * c
        let m = mean[r], s = rstd[r]
        var sumG: Float = 0, sumGX: Float = 0
        for j in 0..<c {
            let xhat = (xr[j] - m) * s
            let g = dyr[j] * gamma[j]
            sumG += g
            sumGX += g * xhat
            dGamma[j] += dyr[j] * xhat
            dBeta[j] += dyr[j]
        }
        let meanG = sumG * invC, meanGX = sumGX * invC
        for j in 0..<c {
            let xhat = (xr[j] - m) * s
            dxr[j] = s * (dyr[j] * gamma[j] - meanG - xhat * meanGX)
        }
    }
}
