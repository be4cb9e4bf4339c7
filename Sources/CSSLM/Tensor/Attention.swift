// Multi-head self-attention core (after the fused Q/K/V projection, before the output projection),
// as HF BertSelfAttention in eager mode: scores = QKᵀ/√d + (1 − mask)·finfo(float32).min,
// softmax over keys, dropout on the probabilities, context = P·V.
// Shapes: B = batch, T = sequence, NH = heads, d = head size, H = NH·d, N = B·T.
// qkv[N, 3H] holds Q | K | V per row; head h uses columns h·d ..< (h+1)·d of each part.
//
// The B·NH (example, head) pairs are split over the compute threads; each thread runs its pairs
// one at a time, start to end: scores sgemm, masked softmax and dropout on the T×T block while it
// is in cache, then P·V. Only the softmax output is kept for the backward; the dropped
// probabilities are recomputed from it and the mask's keys (no B·NH·T·T copy per layer).
import CBLAS

/// HF's additive mask value for padded keys: torch.finfo(torch.float32).min.
public let attentionMaskValue: Float = -Float.greatestFiniteMagnitude

public struct AttentionShape {
    public var batch: Int, seqLen: Int, heads: Int, headSize: Int
    public init(batch: Int, seqLen: Int, heads: Int, headSize: Int) {
        self.batch = batch; self.seqLen = seqLen; self.heads = heads; self.headSize = headSize
    }
    public var hidden: Int { heads * headSize }
    /// Floats of one example's probabilities: NH·T·T.
    public var probsPerExample: Int { heads * seqLen * seqLen }
    /// Floats of scratch `attentionForward` and `attentionBackward` need: two T×T blocks per thread.
    public var scratchCount: Int { ComputeThreads.count * 2 * seqLen * seqLen }
}

/// ctx[N, H] and probs[B, NH, T, T] (softmax output, before dropout) from qkv[N, 3H] and
/// mask[B, T] (1 keep, 0 pad). `scratch` holds `shape.scratchCount` floats.
public func attentionForward(ctx: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                             qkv: UnsafePointer<Float>, mask: UnsafePointer<Float>, shape s: AttentionShape,
                             dropout: DropoutContext, site: Int, scratch: UnsafeMutablePointer<Float>) {
    let t = s.seqLen, d = s.headSize, h3 = 3 * s.hidden, hid = s.hidden
    let scale = 1 / Float(d).squareRoot()
    let drop = DropoutMask(dropout, site: site)
    parallelParts(s.batch * s.heads) { part, units in
        let dropped = scratch + part * 2 * t * t
        for u in units {
            let b = u / s.heads, h = u % s.heads
            let q = qkv + b * t * h3 + h * d, k = q + hid, v = q + 2 * hid
            let p = probs + u * t * t
            sgemmSerial(transB: true, m: t, n: t, k: d, alpha: scale, a: q, lda: h3, b: k, ldb: h3, c: p, ldc: t)
            let maskRow = mask + b * t
            let padded = (0..<t).contains { maskRow[$0] == 0 }
            for i in 0..<t {
                softmaxRowInPlace(p + i * t, t, keyMask: padded ? maskRow : nil)
                if drop.isActive {
                    let src = p + i * t, dst = dropped + i * t
                    let key = drop.rowKey(example: b, group: h, row: i)
                    var j = 0
                    while j + 8 <= t { store8(load8(src + j) * drop.multipliers(rowKey: key, column: j), dst + j); j += 8 }
                    if j < t {
                        let m = drop.multipliers(rowKey: key, column: j)
                        for l in 0..<(t - j) { dst[j + l] = src[j + l] * m[l] }
                    }
                }
            }
            sgemmSerial(m: t, n: d, k: t, a: drop.isActive ? dropped : p, lda: t, b: v, ldb: h3,
                        c: ctx + b * t * hid + h * d, ldc: hid)
        }
    }
}

/// Backward of `attentionForward`: dqkv[N, 3H] (overwritten) from dctx[N, H], the forward's
/// qkv and probs, and the same dropout keys. `scratch` holds `shape.scratchCount` floats.
public func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dctx: UnsafePointer<Float>,
                              qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>, shape s: AttentionShape,
                              dropout: DropoutContext, site: Int, scratch: UnsafeMutablePointer<Float>) {
    let t = s.seqLen, d = s.headSize, h3 = 3 * s.hidden, hid = s.hidden
    let scale = 1 / Float(d).squareRoot()
    let drop = DropoutMask(dropout, site: site)
    parallelParts(s.batch * s.heads) { part, units in
        let dP = scratch + part * 2 * t * t, dropped = dP + t * t
        for u in units {
            let b = u / s.heads, h = u % s.heads
            let p = probs + u * t * t
            let q = qkv + b * t * h3 + h * d, k = q + hid, v = q + 2 * hid
            let dq = dqkv + b * t * h3 + h * d, dk = dq + hid, dv = dq + 2 * hid
            let dc = dctx + b * t * hid + h * d
            // dP' = dctx · Vᵀ (w.r.t. the dropped probabilities P').
            sgemmSerial(transB: true, m: t, n: t, k: d, a: dc, lda: hid, b: v, ldb: h3, c: dP, ldc: t)
            // Per row: P' = drop(P) again, dP = drop(dP'), then softmax backward dS = P ⊙ (dP − ⟨dP, P⟩).
            for i in 0..<t {
                let pr = p + i * t, dr = dP + i * t
                if drop.isActive {
                    let key = drop.rowKey(example: b, group: h, row: i)
                    let pd = dropped + i * t
                    var j = 0
                    while j + 8 <= t {
                        let m = drop.multipliers(rowKey: key, column: j)
                        store8(load8(pr + j) * m, pd + j)
                        store8(load8(dr + j) * m, dr + j)
                        j += 8
                    }
                    if j < t {
                        let m = drop.multipliers(rowKey: key, column: j)
                        for l in 0..<(t - j) { pd[j + l] = pr[j + l] * m[l]; dr[j + l] *= m[l] }
                    }
                }
                let dot = vdot(pr, dr, t)
                var j = 0
                while j + 8 <= t { store8(load8(pr + j) * (load8(dr + j) - dot), dr + j); j += 8 }
                while j < t { dr[j] = pr[j] * (dr[j] - dot); j += 1 }
            }
            // dV = P'ᵀ · dctx ; dQ = dS · K · scale ; dK = dSᵀ · Q · scale
            sgemmSerial(transA: true, m: t, n: d, k: t, a: drop.isActive ? UnsafePointer(dropped) : p, lda: t, b: dc, ldb: hid,
                        c: dv, ldc: h3)
            sgemmSerial(m: t, n: d, k: t, alpha: scale, a: dP, lda: t, b: k, ldb: h3, c: dq, ldc: h3)
            sgemmSerial(transA: true, m: t, n: d, k: t, alpha: scale, a: dP, lda: t, b: q, ldb: h3, c: dk, ldc: h3)
        }
    }
}

/// Numerically stable softmax of one row of n floats, in place; with `keyMask` (n floats, 0 =
/// padded key), HF's additive mask is applied first.
@inline(__always)
public func softmaxRowInPlace(_ row: UnsafeMutablePointer<Float>, _ n: Int, keyMask: UnsafePointer<Float>? = nil) {
    if let keyMask {
        for j in 0..<n where keyMask[j] == 0 { row[j] += attentionMaskValue }
    }
    let m = vmax(row, n)
    var acc = Vec8()
    var i = 0
    while i + 8 <= n { let e = exp8(load8(row + i) - m); store8(e, row + i); acc += e; i += 8 }
    var sum = acc.sum()
    while i < n { let e = fastExp(row[i] - m); row[i] = e; sum += e; i += 1 }
    let inv = 1 / sum
    i = 0
    while i + 8 <= n { store8(load8(row + i) * inv, row + i); i += 8 }
    while i < n { row[i] *= inv; i += 1 }
}
