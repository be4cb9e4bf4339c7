// Pointwise activations with their backward: GELU (exact erf form, HF "gelu") and tanh.

/// y[n] = x · Φ(x) = ½ x (1 + erf(x/√2)). `y` may alias `x`.
public func geluForward(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, count n: Int) {
    parallelParts(n, align: 8, minPerPart: 4096) { _, range in
        var i = range.lowerBound
        while i + 8 <= range.upperBound {
            let v = load8(x + i)
            store8(0.5 * v * (1 + erf8(v * 0.7071067811865476)), y + i)
            i += 8
        }
        while i < range.upperBound { y[i] = 0.5 * x[i] * (1 + fastErf(x[i] * 0.7071067811865476)); i += 1 }
    }
}

/// dx[n] = dy · (Φ(x) + x · φ(x)), φ the standard normal density. `dx` may alias `dy`.
public func geluBackward(dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                         x: UnsafePointer<Float>, count n: Int) {
    @inline(__always) func grad(_ v: Vec8) -> Vec8 {
        // erf(v/√2) is computed from e^(−v²/2): the same exponential is φ(v)·√(2π).
        let (erf, gaussian) = erfAndGaussian8(v * 0.7071067811865476)
        return 0.5 * (1 + erf) + v * (gaussian * 0.3989422804014327)
    }
    parallelParts(n, align: 8, minPerPart: 4096) { _, range in
        var i = range.lowerBound
        while i + 8 <= range.upperBound { store8(load8(dy + i) * grad(load8(x + i)), dx + i); i += 8 }
        if i < range.upperBound {
            var tail = Vec8(), dtail = Vec8()
            for k in 0..<(range.upperBound - i) { tail[k] = x[i + k]; dtail[k] = dy[i + k] }
            let g = dtail * grad(tail)
            for k in 0..<(range.upperBound - i) { dx[i + k] = g[k] }
        }
    }
}

/// y[n] = tanh(x)
public func tanhForward(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, count n: Int) {
    for i in 0..<n { y[i] = tanhf(x[i]) }
}

/// dx[n] = dy · (1 − y²), from the forward output y. `dx` may alias `dy`.
public func tanhBackward(dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                         y: UnsafePointer<Float>, count n: Int) {
    for i in 0..<n { dx[i] = dy[i] * (1 - y[i] * y[i]) }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
