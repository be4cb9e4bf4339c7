// Beyond the reference: a query-dependent, class-level retriever (docs/method.md#retrieval).
// With the linear pair heads, Δ(q, d) = a(q) + b(d) and every query of a step ranks the pool almost
// the same way. Here a document is scored by its closeness to the query AND by how clearly it sits
// on the query's class side of the current encoder's class prototypes:
//
//   score(q, d) = cos(t_q, t_d) + λ · [ cos(p_{y_q}, t_d) − max_{c ≠ y_q} cos(p_c, t_d) ]
//
// p_c is the normalised mean of the unit class vectors t(x) of class c's labelled examples (a
// spherical mean: one long vector cannot drag a prototype). With one class the margin is
// cos(p_{y_q}, t_d). The first term prefers neighbours of this particular query; the second keeps
// them on its class's side of the nearest rival class (pseudo-labels that are more likely right).
// Both terms lie in [−1, 1] and [−2, 2]; λ = 1 weighs them alike.
// The trainer rebuilds the prototypes at every step from the labelled examples' vectors; the pool
// is re-encoded across ranks only every R steps (RetrievalSchedule).
// Shapes: B = queries, N = documents, C = classes, H = hidden.
import CBLAS
import Foundation

/// Unit-norm class prototypes, [C, H]. Checkpoints do not hold them: the trainer rebuilds them at
/// every step from weights a checkpoint restores, so a resume retrieves as the run it continues.
public struct ClassPrototypes: Equatable, Codable, Sendable {
    public let classes: Int
    public let hidden: Int
    /// [C, H], each row of norm 1.
    public let vectors: [Float]

    /// Prototypes from the class vectors t(x) [n, H] of labelled examples with their labels.
    /// - Throws: when a class in 0..<classes has no example, or a label is outside it.
    public init(classVectors t: [Float], labels: [Int], classes: Int, hidden h: Int) throws {
        precondition(t.count == labels.count * h, "class vectors must be [n, H] for n labels")
        var sums = [Double](repeating: 0, count: classes * h)
        var counts = [Int](repeating: 0, count: classes)
        for (i, y) in labels.enumerated() {
            guard (0..<classes).contains(y) else { throw CSSLMError("label \(y) of example \(i) is outside 0..<\(classes)") }
            let unit = unitVector(t[(i * h)..<((i + 1) * h)])
            for j in 0..<h { sums[y * h + j] += Double(unit[j]) }
            counts[y] += 1
        }
        if let empty = counts.firstIndex(of: 0) {
            throw CSSLMError("class \(empty) has no labelled example to make its prototype from")
        }
        var vectors: [Float] = []
        for c in 0..<classes { vectors += unitVector(sums[(c * h)..<((c + 1) * h)].map { Float($0) }[...]) }
        self.classes = classes
        self.hidden = h
        self.vectors = vectors
    }
}

/// x / |x| (zero stays zero).
func unitVector(_ x: ArraySlice<Float>) -> [Float] {
    let norm = x.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
    return norm > 0 ? x.map { Float(Double($0) / norm) } : Array(x)
}

/// Cosine retrieval to the query and the class prototypes.
///
/// ```swift
/// let labelled = try encoder.encode(trainEncodings, communicator: comm)          // current encoder
/// let prototypes = try ClassPrototypes(classVectors: labelled.classVectors(), labels: trainLabels,
///                                      classes: c, hidden: h)
/// let scorer = PrototypeScorer(documents: poolVectors, prototypes: prototypes, lambda: 1)
/// ```
public struct PrototypeScorer: RetrievalScorer {
    public let documentCount: Int
    public let hidden: Int
    public let lambda: Float
    public let prototypes: ClassPrototypes
    /// t(d)/|t(d)|, [N, H].
    private let unitDocuments: [Float]
    /// margin[c·N + d] = cos(p_c, t_d) − max_{c' ≠ c} cos(p_{c'}, t_d), [C, N].
    public let margins: [Float]

    public init(documents: DocumentVectorSource, prototypes: ClassPrototypes, lambda: Float = 1) {
        precondition(documents.hidden == prototypes.hidden, "documents of H=\(documents.hidden), prototypes of H=\(prototypes.hidden)")
        let n = documents.count, h = documents.hidden, c = prototypes.classes
        var unit = [Float](repeating: 0, count: n * h)
        unit.withUnsafeMutableBufferPointer { u in
            documents.forEachDocument { d, t, _ in
                let norm = vdot(t, t, h).squareRoot()
                let inverse: Float = norm > 0 ? 1 / norm : 0
                for j in 0..<h { u[d * h + j] = t[j] * inverse }
            }
        }
        // cos(p_c, t_d) for all classes and documents in one GEMM: [C, H] · [N, H]ᵀ.
        var cosines = [Float](repeating: 0, count: c * n)
        multiplyTransposed(prototypes.vectors, rows: c, unit, rows: n, width: h, into: &cosines)
        var margins = [Float](repeating: 0, count: c * n)
        for d in 0..<n {
            for y in 0..<c {
                var rival = -Float.infinity
                for other in 0..<c where other != y { rival = max(rival, cosines[other * n + d]) }
                margins[y * n + d] = cosines[y * n + d] - (c > 1 ? rival : 0)
            }
        }
        documentCount = n
        hidden = h
        self.lambda = lambda
        self.prototypes = prototypes
        unitDocuments = unit
        self.margins = margins
    }

    public func scores(_ queries: QueryFeatures, into scores: UnsafeMutablePointer<Float>) {
        precondition(queries.hidden == hidden, "queries of H=\(queries.hidden) for a scorer of H=\(hidden)")
        let b = queries.count, n = documentCount, h = hidden
        var unitQueries: [Float] = []
        for q in 0..<b { unitQueries += unitVector(queries.t[(q * h)..<((q + 1) * h)]) }
        let out = UnsafeMutableBufferPointer(start: scores, count: b * n)
        var cosines = [Float](repeating: 0, count: b * n)
        multiplyTransposed(unitQueries, rows: b, unitDocuments, rows: n, width: h, into: &cosines)
        for q in 0..<b {
            let y = queries.labels[q]
            precondition((0..<prototypes.classes).contains(y), "query label \(y) is outside 0..<\(prototypes.classes)")
            for d in 0..<n { out[q * n + d] = cosines[q * n + d] + lambda * margins[y * n + d] }
        }
    }
}

/// out[r, s] = a[r] · b[s] for a [ra, width], b [rb, width]: one sgemm.
private func multiplyTransposed(_ a: [Float], rows ra: Int, _ b: [Float], rows rb: Int, width: Int, into out: inout [Float]) {
    guard ra > 0, rb > 0, width > 0 else { return }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(ra), Int32(rb), Int32(width),
                1, a, Int32(width), b, Int32(width), 0, &out, Int32(rb))
}
