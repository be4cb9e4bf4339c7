// Multi-head self-attention core (after the fused Q/K/V projection, before the output projection),
// as HF BertSelfAttention in eager mode: scores = QKᵀ/√d + (1 − mask)·finfo(float32).min,
// softmax over keys, dropout on the probabilities, context = P·V.
// Shapes: B = batch, T = sequence, NH = heads, d = head size, H = NH·d, N = B·T.
// qkv[N, 3H] holds Q | K | V per row; head h uses columns h·d ..< (h+1)·d of each part. Each
// per-head product is one sgemm reading the strided slices in place (no copies).
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
}

/// ctx[N, H], probs[B, NH, T, T] (softmax output), probsDropped[B, NH, T, T] (after dropout; may
/// be the same pointer as probs when dropout is off) from qkv[N, 3H] and mask[B, T] (1 keep, 0 pad).
public func attentionForward(ctx: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                             probsDropped: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
                             mask: UnsafePointer<Float>, shape s: AttentionShape,
                             dropout: DropoutContext, site: Int) {
    let t = s.seqLen, d = s.headSize, h3 = 3 * s.hidden, hid = s.hidden
    let scale = 1 / Float(d).squareRoot()
    for b in 0..<s.batch {
        let maskRow = mask + b * t
        for h in 0..<s.heads {
            let q = qkv + b * t * h3 + h * d
            let k = q + hid
            let p = probs + (b * s.heads + h) * t * t
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(t), Int32(t), Int32(d),
                        scale, q, Int32(h3), k, Int32(h3), 0, p, Int32(t))
            for i in 0..<t {
                let row = p + i * t
                for j in 0..<t where maskRow[j] == 0 { row[j] += attentionMaskValue }
                softmaxRowInPlace(row, t)
            }
        }
    }
    if probsDropped != probs {
        probsDropped.update(from: probs, count: s.batch * s.probsPerExample)
        dropoutApply(probsDropped, groups: s.heads, rows: s.seqLen, cols: s.seqLen, context: dropout, site: site)
    }
    for b in 0..<s.batch {
        for h in 0..<s.heads {
            let v = qkv + b * t * h3 + 2 * hid + h * d
            let p = probsDropped + (b * s.heads + h) * t * t
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(t), Int32(d), Int32(t),
                        1, p, Int32(t), v, Int32(h3), 0, ctx + b * t * hid + h * d, Int32(hid))
        }
    }
}

/// Backward of `attentionForward`: dqkv[N, 3H] (overwritten) from dctx[N, H].
/// `dProbs` is scratch of B·NH·T·T floats.
public func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dProbs: UnsafeMutablePointer<Float>,
                              dctx: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                              probs: UnsafePointer<Float>, probsDropped: UnsafePointer<Float>,
                              shape s: AttentionShape, dropout: DropoutContext, site: Int) {
    let t = s.seqLen, d = s.headSize, h3 = 3 * s.hidden, hid = s.hidden
    let scale = 1 / Float(d).squareRoot()
    for b in 0..<s.batch {
        for h in 0..<s.heads {
            let off = (b * s.heads + h) * t * t
            let v = qkv + b * t * h3 + 2 * hid + h * d
            let dv = dqkv + b * t * h3 + 2 * hid + h * d
            let dc = dctx + b * t * hid + h * d
            // dP' = dctx · Vᵀ ; dV = P'ᵀ · dctx   (P' = probabilities after dropout)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(t), Int32(t), Int32(d),
                        1, dc, Int32(hid), v, Int32(h3), 0, dProbs + off, Int32(t))
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(t), Int32(d), Int32(t),
                        1, probsDropped + off, Int32(t), dc, Int32(hid), 0, dv, Int32(h3))
        }
    }
    if probsDropped != probs {
        dropoutApply(dProbs, groups: s.heads, rows: s.seqLen, cols: s.seqLen, context: dropout, site: site)
    }
    for b in 0..<s.batch {
        for h in 0..<s.heads {
            let off = (b * s.heads + h) * t * t
            let q = qkv + b * t * h3 + h * d
            let k = q + hid
            let dq = dqkv + b * t * h3 + h * d
            let dk = dq + hid
            // Softmax backward, row-wise: dS = P ⊙ (dP − ⟨dP, P⟩).
            for i in 0..<t {
                let pr = probs + off + i * t
                let dr = dProbs + off + i * t
                let dotv = vdot(pr, dr, t)
                for j in 0..<t { dr[j] = pr[j] * (dr[j] - dotv) }
            }
            // dQ = dS · K · scale ; dK = dSᵀ · Q · scale
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(t), Int32(d), Int32(t),
                        scale, dProbs + off, Int32(t), k, Int32(h3), 0, dq, Int32(h3))
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(t), Int32(d), Int32(t),
                        scale, dProbs + off, Int32(t), q, Int32(h3), 0, dk, Int32(h3))
        }
    }
}

/// Numerically stable softmax of one row of n floats, in place.
@inline(__always)
public func softmaxRowInPlace(_ row: UnsafeMutablePointer<Float>, _ n: Int) {
    let m = vmax(row, n)
    var acc = Vec8()
    var i = 0
    while i + 8 <= n { let e = exp8(load8(row + i) - m); store8(e, row + i); acc += e; i += 8 }
    var sum = acc.sum()
    while i < n { let e = fastExp(row[i] - m); row[i] = e; sum += e; i += 1 }
    let inv = 1 / sum
    for j in 0..<n { row[j] *= inv }
}
