// Vectorised elementwise math on Float buffers: exp, erf, and the reductions the kernels need.
// libm's expf/erff are scalar calls (~25 ns each: docs/design.md#kernels-and-threads); these
// SIMD8 versions run at a few cycles per element and stay within a few float ulps (exp) and
// 1.5e-7 absolute (erf), far inside the 1e-5 parity bound against PyTorch.

public typealias Vec8 = SIMD8<Float>

@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> Vec8 {
    UnsafeRawPointer(p).loadUnaligned(as: Vec8.self)
}

@inline(__always)
func store8(_ v: Vec8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec8.self)
}

/// e^x for 8 lanes: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-6 polynomial (Cephes expf
/// coefficients), 2^n built in the exponent bits. Below -87.3 the result is 0 (as expf underflows).
@inline(__always)
public func exp8(_ x0: Vec8) -> Vec8 {
    let x = x0.replacing(with: 88.3762626647949, where: x0 .> 88.3762626647949)
        .replacing(with: -87.3365447505531, where: x0 .< -87.3365447505531)
    // Round x·log2(e) to the nearest integer with the 1.5·2^23 trick: the integer lands in the
    // low mantissa bits of t.
    let magic = Vec8(repeating: 12582912.0)
    let t = x * 1.44269504088896341 + magic
    let n = t - magic
    var r = x - n * 0.693359375
    r = r - n * -2.12194440e-4
    var p = Vec8(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * (r * r) + r + 1
    let ni = unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000
    let scale = unsafeBitCast((ni &+ 127) &<< 23, to: Vec8.self)
    return (p * scale).replacing(with: 0, where: x0 .< -87.3365447505531)
}

/// erf for 8 lanes (Abramowitz & Stegun 7.1.26, |error| ≤ 1.5e-7), odd-symmetric.
@inline(__always)
public func erf8(_ x: Vec8) -> Vec8 { erfAndGaussian8(x).erf }

/// erf(x) and the e^(−x²) it is computed from (GELU's backward needs both: one exp, not two).
@inline(__always)
func erfAndGaussian8(_ x: Vec8) -> (erf: Vec8, gaussian: Vec8) {
    let a = x.replacing(with: -x, where: x .< 0)
    let t = 1 / (1 + 0.3275911 * a)
    var poly = Vec8(repeating: 1.061405429)
    poly = poly * t - 1.453152027
    poly = poly * t + 1.421413741
    poly = poly * t - 0.284496736
    poly = poly * t + 0.254829592
    poly = poly * t
    let gaussian = exp8(-(a * a))
    let y = 1 - poly * gaussian
    return (y.replacing(with: -y, where: x .< 0), gaussian)
}

/// Scalar versions through the same code path (tails of loops, tests).
@inline(__always) public func fastExp(_ x: Float) -> Float { exp8(Vec8(repeating: x))[0] }
@inline(__always) public func fastErf(_ x: Float) -> Float { erf8(Vec8(repeating: x))[0] }

/// Σ p[i], i < n, with 4×8 accumulators.
@inline(__always)
public func vsum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var a0 = Vec8(), a1 = Vec8(), a2 = Vec8(), a3 = Vec8()
    var i = 0
    while i + 32 <= n {
        a0 += load8(p + i); a1 += load8(p + i + 8); a2 += load8(p + i + 16); a3 += load8(p + i + 24)
        i += 32
    }
    while i + 8 <= n { a0 += load8(p + i); i += 8 }
    var s = ((a0 + a1) + (a2 + a3)).sum()
    while i < n { s += p[i]; i += 1 }
    return s
}

/// Σ p[i]·q[i], i < n.
@inline(__always)
public func vdot(_ p: UnsafePointer<Float>, _ q: UnsafePointer<Float>, _ n: Int) -> Float {
    var a0 = Vec8(), a1 = Vec8(), a2 = Vec8(), a3 = Vec8()
    var i = 0
    while i + 32 <= n {
        a0 += load8(p + i) * load8(q + i)
        a1 += load8(p + i + 8) * load8(q + i + 8)
        a2 += load8(p + i + 16) * load8(q + i + 16)
        a3 += load8(p + i + 24) * load8(q + i + 24)
        i += 32
    }
    while i + 8 <= n { a0 += load8(p + i) * load8(q + i); i += 8 }
    var s = ((a0 + a1) + (a2 + a3)).sum()
    while i < n { s += p[i] * q[i]; i += 1 }
    return s
}

/// max p[i], i < n (n ≥ 1).
@inline(__always)
public func vmax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var i = 0
    var m = -Float.infinity
    if n >= 8 {
        var a = load8(p)
        i = 8
        while i + 8 <= n { let v = load8(p + i); a = a.replacing(with: v, where: v .> a); i += 8 }
        m = a.max()
    }
    while i < n { m = Swift.max(m, p[i]); i += 1 }
    return m
}

/// Σ x² over a buffer, accumulated in Double partial sums (for gradient norms).
public func sumOfSquares(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
    var total = 0.0
    var i = 0
    let chunk = 4096
    while i < n {
        let m = Swift.min(chunk, n - i)
        total += Double(vdot(p + i, p + i, m))
        i += m
    }
    return total
}
