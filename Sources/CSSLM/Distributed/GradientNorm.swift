// The averaging kernel of the gradient allreduce: scale a reduced bucket and sum its squares for
// the global gradient norm, in a fixed order so every rank gets the same bits.

/// Multiplies p[0..<count] by `scale` (skipped when 1) and returns the sum of squares of the result.
/// Float partial sums over blocks of 4096, added in Double: order-fixed, so every rank gets the same bits.
func scaleAndSumSquares(_ p: UnsafeMutablePointer<Float>, count: Int, scale: Float) -> Double {
    typealias V = SIMD16<Float>
    let lanes = V.scalarCount
    var total = 0.0
    var blockStart = 0
    while blockStart < count {
        let blockEnd = min(blockStart + 4096, count)
        var acc0 = V(), acc1 = V()
        var i = blockStart
        let raw = UnsafeMutableRawPointer(p)
        while i + 2 * lanes <= blockEnd {
            var a = raw.loadUnaligned(fromByteOffset: i * 4, as: V.self)
            var b = raw.loadUnaligned(fromByteOffset: (i + lanes) * 4, as: V.self)
            if scale != 1 {
                a *= scale
                b *= scale
                raw.storeBytes(of: a, toByteOffset: i * 4, as: V.self)
                raw.storeBytes(of: b, toByteOffset: (i + lanes) * 4, as: V.self)
            }
            acc0 = acc0.addingProduct(a, a)
            acc1 = acc1.addingProduct(b, b)
            i += 2 * lanes
        }
        var tail: Float = 0
        while i < blockEnd {
            if scale != 1 { p[i] *= scale }
            tail += p[i] * p[i]
            i += 1
        }
        total += Double((acc0 + acc1).sum()) + Double(tail)
        blockStart = blockEnd
    }
    return total
}
