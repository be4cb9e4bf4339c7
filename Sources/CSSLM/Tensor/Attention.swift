// Multi-head self-attention core (after the fused Q/K/V projection, before the output projection),
// as HF BertSelfAttention in eager mode: scores = QKᵀ/√d + (1 − mask)·finfo(float32).min,
// softmax over keys, dropout on the probabilities, context = P·V.
// Shapes: B = batch, T = sequence, NH = heads, d = head size, H = NH·d, N = B·T.
// qkv[N, 3H] holds Q | K | V per row; head h uses columns h·d ..< (h+1)·d of each part.
//
// The B·NH (example, head) blocks are split over the compute threads; each thread runs its blocks
// one at a time, start to end: scores sgemm, masked softmax and dropout on the block while it is
// in cache, then P·V. Only the softmax output is kept for the backward; the dropped probabilities
// are recomputed from it and the mask's keys (no B·NH·T·T copy per layer). A block may take all T
// query rows (`attentionForward`) or a few selected ones against all keys (`QueryRows`).

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
    /// Floats of scratch the attention kernels need: two T×T blocks per thread.
    public var scratchCount: Int { ComputeThreads.count * 2 * seqLen * seqLen }
}

/// A subset of query rows per example, compacted: example b owns compact rows
/// `start[b] ..< start[b + 1]`, compact row s is position `position[s]` of its example.
struct QueryRows {
    var start: UnsafePointer<Int>
    var position: UnsafePointer<Int>
}

/// Where one (example, head) block reads and writes: m query rows (all T, or the selected ones).
struct AttentionBlock {
    var q: UnsafePointer<Float>, ldq: Int                 // [m, d] query rows
    var k: UnsafePointer<Float>, v: UnsafePointer<Float>  // [T, d] each, row stride 3H
    var probs: UnsafeMutablePointer<Float>, ldp: Int      // [m, T] softmax output
    var ctx: UnsafeMutablePointer<Float>, ldc: Int        // [m, d] context rows (or their gradient)
    var m: Int
    var example: Int, head: Int
    /// Offset of the block's rows and columns in a compact [S, H] tensor (selected rows only).
    var compactOffset: Int
    /// Positions in the sequence of the query rows (their dropout keys); nil: 0 ..< T.
    var positions: UnsafePointer<Int>?
    @inline(__always) func position(_ i: Int) -> Int { positions.map { $0[i] } ?? i }
}

/// ctx[N, H] and probs[B, NH, T, T] (softmax output, before dropout) from qkv[N, 3H] and
/// mask[B, T] (1 keep, 0 pad). `scratch` holds `shape.scratchCount` floats.
public func attentionForward(ctx: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                             qkv: UnsafePointer<Float>, mask: UnsafePointer<Float>, shape s: AttentionShape,
                             dropout: DropoutContext, site: Int, scratch: UnsafeMutablePointer<Float>) {
    attentionForward(ctx: ctx, probs: probs, queries: nil, qkv: qkv, mask: mask, shape: s, dropout: dropout,
                     site: site, scratch: scratch)
}

/// The forward for all query rows (`queries == nil`: ctx [N, H], probs [B, NH, T, T]) or for the
/// selected ones (`queries` = (their Q rows [S, H], the selection): ctx [S, H], probs [S, NH, T]).
func attentionForward(ctx: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                      queries: (q: UnsafePointer<Float>, rows: QueryRows)?, qkv: UnsafePointer<Float>,
                      mask: UnsafePointer<Float>, shape s: AttentionShape, dropout: DropoutContext, site: Int,
                      scratch: UnsafeMutablePointer<Float>) {
    let t = s.seqLen, d = s.headSize
    let scale = 1 / Float(d).squareRoot()
    let drop = DropoutMask(dropout, site: site)
    parallelParts(s.batch * s.heads) { part, units in
        let dropped = scratch + part * 2 * t * t
        for u in units {
            let blk = block(u, queries: queries, out: ctx, probs: probs, qkv: qkv, shape: s)
            sgemmSerial(transB: true, m: blk.m, n: t, k: d, alpha: scale, a: blk.q, lda: blk.ldq, b: blk.k, ldb: 3 * s.hidden,
                        c: blk.probs, ldc: blk.ldp)
            let maskRow = mask + blk.example * t
            let padded = (0..<t).contains { maskRow[$0] == 0 }
            for i in 0..<blk.m {
                let p = blk.probs + i * blk.ldp
                softmaxRowInPlace(p, t, keyMask: padded ? maskRow : nil)
                if drop.isActive {
                    let key = drop.rowKey(example: blk.example, group: blk.head, row: blk.position(i))
                    let dst = dropped + i * t
                    var j = 0
                    while j + 8 <= t { store8(load8(p + j) * drop.multipliers(rowKey: key, column: j), dst + j); j += 8 }
                    if j < t {
                        let m = drop.multipliers(rowKey: key, column: j)
                        for l in 0..<(t - j) { dst[j + l] = p[j + l] * m[l] }
                    }
                }
            }
            sgemmSerial(m: blk.m, n: d, k: t, a: drop.isActive ? UnsafePointer(dropped) : UnsafePointer(blk.probs),
                        lda: drop.isActive ? t : blk.ldp, b: blk.v, ldb: 3 * s.hidden, c: blk.ctx, ldc: blk.ldc)
        }
    }
}

/// Backward of `attentionForward`: dqkv[N, 3H] (overwritten) from dctx[N, H], the forward's
/// qkv and probs, and the same dropout keys. `scratch` holds `shape.scratchCount` floats.
public func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dctx: UnsafePointer<Float>,
                              qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>, shape s: AttentionShape,
                              dropout: DropoutContext, site: Int, scratch: UnsafeMutablePointer<Float>) {
    attentionBackward(dqkv: dqkv, dQueries: nil, dctx: dctx, queries: nil, qkv: qkv, probs: probs, shape: s,
                      dropout: dropout, site: site, scratch: scratch)
}

/// The backward for all query rows, or for selected ones (`queries` and `dQueries` given, dctx
/// [S, H], probs [S, NH, T]): then dQ of the selected rows goes to `dQueries` [S, H] and the Q
/// columns of `dqkv` are left untouched; dK and dV (all rows) are written in both cases.
func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dQueries: UnsafeMutablePointer<Float>?,
                       dctx: UnsafePointer<Float>, queries: (q: UnsafePointer<Float>, rows: QueryRows)?,
                       qkv: UnsafePointer<Float>, probs: UnsafePointer<Float>, shape s: AttentionShape,
                       dropout: DropoutContext, site: Int, scratch: UnsafeMutablePointer<Float>) {
    let t = s.seqLen, d = s.headSize, h3 = 3 * s.hidden, hid = s.hidden
    let scale = 1 / Float(d).squareRoot()
    let drop = DropoutMask(dropout, site: site)
    parallelParts(s.batch * s.heads) { part, units in
        let dP = scratch + part * 2 * t * t, dropped = dP + t * t
        for u in units {
            // `ctx` of the block is the context gradient (read only here).
            let blk = block(u, queries: queries, out: UnsafeMutablePointer(mutating: dctx),
                            probs: UnsafeMutablePointer(mutating: probs), qkv: qkv, shape: s)
            let rowOffset = blk.example * t * h3 + blk.head * d
            let dq = queries == nil ? dqkv + rowOffset : dQueries! + blk.compactOffset
            let ldq = queries == nil ? h3 : hid
            let dk = dqkv + rowOffset + hid, dv = dk + hid
            // dP' = dctx · Vᵀ (w.r.t. the dropped probabilities P').
            sgemmSerial(transB: true, m: blk.m, n: t, k: d, a: blk.ctx, lda: blk.ldc, b: blk.v, ldb: h3, c: dP, ldc: t)
            // Per row: P' = drop(P) again, dP = drop(dP'), then softmax backward dS = P ⊙ (dP − ⟨dP, P⟩).
            for i in 0..<blk.m {
                let pr = blk.probs + i * blk.ldp, dr = dP + i * t
                if drop.isActive {
                    let key = drop.rowKey(example: blk.example, group: blk.head, row: blk.position(i))
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
            sgemmSerial(transA: true, m: t, n: d, k: blk.m, a: drop.isActive ? UnsafePointer(dropped) : UnsafePointer(blk.probs),
                        lda: drop.isActive ? t : blk.ldp, b: blk.ctx, ldb: blk.ldc, c: dv, ldc: h3)
            sgemmSerial(m: blk.m, n: d, k: t, alpha: scale, a: dP, lda: t, b: blk.k, ldb: h3, c: dq, ldc: ldq)
            sgemmSerial(transA: true, m: t, n: d, k: blk.m, alpha: scale, a: dP, lda: t, b: blk.q, ldb: blk.ldq, c: dk, ldc: h3)
        }
    }
}

/// The pointers of block u = b·NH + h: all T query rows in place in qkv, or the selected rows.
@inline(__always)
private func block(_ u: Int, queries: (q: UnsafePointer<Float>, rows: QueryRows)?, out: UnsafeMutablePointer<Float>,
                   probs: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>, shape s: AttentionShape) -> AttentionBlock {
    let t = s.seqLen, d = s.headSize, hid = s.hidden
    let b = u / s.heads, h = u % s.heads
    let k = qkv + b * t * 3 * hid + hid + h * d
    guard let (q, rows) = queries else {
        return AttentionBlock(q: k - hid, ldq: 3 * hid, k: k, v: k + hid, probs: probs + u * t * t, ldp: t,
                              ctx: out + b * t * hid + h * d, ldc: hid, m: t, example: b, head: h,
                              compactOffset: 0, positions: nil)
    }
    let first = rows.start[b], offset = first * hid + h * d
    return AttentionBlock(q: q + offset, ldq: hid, k: k, v: k + hid,
                          probs: probs + (first * s.heads + h) * t, ldp: s.heads * t,
                          ctx: out + offset, ldc: hid, m: rows.start[b + 1] - first, example: b, head: h,
                          compactOffset: offset, positions: rows.position + first)
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
