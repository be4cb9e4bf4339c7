// BERT input embeddings: word + absolute position + token type, summed per token.
// Shapes: B = batch, T = sequence, N = B·T, H = hidden.

/// out[N, H] = word[ids[n]] + position[n mod T] + tokenType[typeIds[n]]
/// (ids and typeIds already checked against the table sizes by the caller). Rows split over threads.
public func embeddingForward(out: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>,
                             typeIds: UnsafePointer<Int32>, word: UnsafePointer<Float>,
                             position: UnsafePointer<Float>, tokenType: UnsafePointer<Float>,
                             rows n: Int, seqLen t: Int, hidden h: Int) {
    parallelParts(n, minPerPart: 16) { _, rows in
        for r in rows {
            let o = out + r * h
            let w = word + Int(ids[r]) * h
            let p = position + (r % t) * h
            let ty = tokenType + Int(typeIds[r]) * h
            for j in 0..<h { o[j] = w[j] + p[j] + ty[j] }
        }
    }
}

/// Backward: dWord[ids[n]] += dOut[n], dPosition[n mod T] += dOut[n], dTokenType[typeIds[n]] += dOut[n].
/// Columns split over threads (rows may repeat an id, so rows cannot be).
public func embeddingBackward(dWord: UnsafeMutablePointer<Float>, dPosition: UnsafeMutablePointer<Float>,
                              dTokenType: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                              ids: UnsafePointer<Int32>, typeIds: UnsafePointer<Int32>,
                              rows n: Int, seqLen t: Int, hidden h: Int) {
    parallelParts(h, align: 8, minPerPart: 32) { _, cols in
        for r in 0..<n {
            let g = dOut + r * h
            let w = dWord + Int(ids[r]) * h
            let p = dPosition + (r % t) * h
            let ty = dTokenType + Int(typeIds[r]) * h
            for j in cols { w[j] += g[j]; p[j] += g[j]; ty[j] += g[j] }
        }
    }
}
