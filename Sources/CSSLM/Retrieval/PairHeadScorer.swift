// The faithful stage-3 scorer of CSS-LM (docs/method.md#retrieval):
//   score(q, d) = softplus(Δtask(q, d)) + 0.5 · softplus(Δdom(q, d)),
// Δ = logit1 − logit0 of taskPair = Linear(2H, 2) on [t_q; t(d)], resp. domainPair on [e_q; e(d)].
// The heads are frozen in stage 3 and linear, so with w = W[1] − W[0] (a row of 2H):
//   Δtask(q, d) = a(q) + u_d,  a(q) = w[0..<H]·t_q + (b1 − b0),  u_d = w[H..<2H]·t(d),
// and likewise Δdom with e. u_d and v_d are computed once per index; a query then costs two
// dot products and N pairs of softplus. (The ranking barely depends on q: see PrototypeScorer.)
// Shapes: B = queries, N = documents, H = hidden.
import Foundation

/// Names and shapes of the two retrieval heads, Linear(2H, 2) each (weight [2, 2H], bias [2]).
public func retrievalHeadTensors(hidden h: Int) -> [(name: String, shape: [Int])] {
    [("\(RetrievalHeads.taskName).weight", [2, 2 * h]), ("\(RetrievalHeads.taskName).bias", [2]),
     ("\(RetrievalHeads.domainName).weight", [2, 2 * h]), ("\(RetrievalHeads.domainName).bias", [2])]
}

/// A frozen copy of taskPair and domainPair.
public struct RetrievalHeads: Equatable, Sendable {
    public static let taskName = "taskPair"
    public static let domainName = "domainPair"

    public let hidden: Int
    /// [2, 2H] and [2] each.
    public let taskWeight: [Float], taskBias: [Float]
    public let domainWeight: [Float], domainBias: [Float]

    public init(hidden: Int, taskWeight: [Float], taskBias: [Float], domainWeight: [Float], domainBias: [Float]) {
        precondition(taskWeight.count == 4 * hidden && domainWeight.count == 4 * hidden
                     && taskBias.count == 2 && domainBias.count == 2, "retrieval heads: weights [2, 2H] and biases [2]")
        self.hidden = hidden
        self.taskWeight = taskWeight; self.taskBias = taskBias
        self.domainWeight = domainWeight; self.domainBias = domainBias
    }

    /// Copies the heads out of a model's parameters (see `retrievalHeadTensors`).
    public init(parameters ps: ParameterSet, hidden h: Int) throws {
        func tensor(_ name: String, _ count: Int) throws -> [Float] {
            guard let spec = ps.spec(name), spec.count == count else {
                throw CSSLMError("the model has no tensor \(name) of \(count) values",
                                 hint: "add retrievalHeadTensors(hidden:) to the model's extra heads")
            }
            return Array(UnsafeBufferPointer(start: ps.values.base + spec.offset, count: count))
        }
        self.init(hidden: h,
                  taskWeight: try tensor("\(Self.taskName).weight", 4 * h), taskBias: try tensor("\(Self.taskName).bias", 2),
                  domainWeight: try tensor("\(Self.domainName).weight", 4 * h), domainBias: try tensor("\(Self.domainName).bias", 2))
    }

    /// w = W[1] − W[0], [2H].
    static func logitDifference(_ weight: [Float]) -> [Float] {
        let n = weight.count / 2
        return (0..<n).map { weight[n + $0] - weight[$0] }
    }
}

/// Scores of B queries against all N documents of a pool.
public protocol RetrievalScorer {
    var documentCount: Int { get }
    var hidden: Int { get }
    /// scores[b·N + d] = score(query b, document d), for the B queries of `queries`.
    func scores(_ queries: QueryFeatures, into scores: UnsafeMutablePointer<Float>)
}

/// The queries of one step: their t and e vectors and labels.
public struct QueryFeatures: Sendable {
    public let count: Int
    public let hidden: Int
    /// [B, H] each.
    public var t: [Float]
    public var e: [Float]
    public var labels: [Int]

    public init(hidden: Int, t: [Float], e: [Float], labels: [Int]) {
        precondition(t.count == labels.count * hidden && e.count == t.count, "QueryFeatures: t and e must be [B, H] for B labels")
        self.count = labels.count
        self.hidden = hidden
        self.t = t; self.e = e; self.labels = labels
    }

    /// From rows [B, 2H] of [t | e], the layout the trainer gathers for the pair loss.
    public init(hidden h: Int, rows: [Float], labels: [Int]) {
        precondition(rows.count == labels.count * 2 * h, "QueryFeatures: rows must be [B, 2H] for B labels")
        var t: [Float] = [], e: [Float] = []
        t.reserveCapacity(labels.count * h)
        e.reserveCapacity(labels.count * h)
        for b in 0..<labels.count {
            t += rows[(b * 2 * h)..<(b * 2 * h + h)]
            e += rows[(b * 2 * h + h)..<((b + 1) * 2 * h)]
        }
        self.init(hidden: h, t: t, e: e, labels: labels)
    }
}

/// softplus(x) = log(1 + eˣ), without overflow for large |x|.
@inline(__always)
func softplus(_ x: Float) -> Float {
    x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x))
}

/// The reference's retrieval score with the document side precomputed.
///
/// ```swift
/// let scorer = PairHeadScorer(heads: try RetrievalHeads(parameters: model.parameters, hidden: h), documents: vectors)
/// let retrieved = try retrieve(queries, scorer: scorer, k: 16, seed: seed, step: step)
/// ```
public struct PairHeadScorer: RetrievalScorer {
    public let heads: RetrievalHeads
    public let documentCount: Int
    /// u_d = w_task[H..<2H]·t(d) and v_d = w_dom[H..<2H]·e(d), [N] each.
    public let taskDocumentParts: [Float]
    public let domainDocumentParts: [Float]
    private let taskDifference: [Float], domainDifference: [Float]

    public var hidden: Int { heads.hidden }

    public init(heads: RetrievalHeads, documents: DocumentVectorSource) {
        precondition(documents.hidden == heads.hidden, "documents of H=\(documents.hidden) for heads of H=\(heads.hidden)")
        let h = heads.hidden
        self.heads = heads
        documentCount = documents.count
        let wTask = RetrievalHeads.logitDifference(heads.taskWeight)
        let wDomain = RetrievalHeads.logitDifference(heads.domainWeight)
        var u = [Float](repeating: 0, count: documents.count), v = u
        wTask.withUnsafeBufferPointer { wt in
            wDomain.withUnsafeBufferPointer { wd in
                documents.forEachDocument { d, t, e in
                    u[d] = vdot(wt.baseAddress! + h, t, h)
                    v[d] = vdot(wd.baseAddress! + h, e, h)
                }
            }
        }
        taskDifference = wTask
        domainDifference = wDomain
        taskDocumentParts = u
        domainDocumentParts = v
    }

    /// a(q) for the task and the domain head: the query's share of Δ, bias difference included.
    public func queryParts(t: UnsafePointer<Float>, e: UnsafePointer<Float>) -> (task: Float, domain: Float) {
        let h = hidden
        let task = taskDifference.withUnsafeBufferPointer { vdot($0.baseAddress!, t, h) } + (heads.taskBias[1] - heads.taskBias[0])
        let domain = domainDifference.withUnsafeBufferPointer { vdot($0.baseAddress!, e, h) } + (heads.domainBias[1] - heads.domainBias[0])
        return (task, domain)
    }

    public func scores(_ queries: QueryFeatures, into scores: UnsafeMutablePointer<Float>) {
        precondition(queries.hidden == hidden, "queries of H=\(queries.hidden) for a scorer of H=\(hidden)")
        let n = documentCount, h = hidden
        queries.t.withUnsafeBufferPointer { t in
            queries.e.withUnsafeBufferPointer { e in
                for b in 0..<queries.count {
                    let a = queryParts(t: t.baseAddress! + b * h, e: e.baseAddress! + b * h)
                    let row = scores + b * n
                    for d in 0..<n {
                        row[d] = softplus(a.task + taskDocumentParts[d]) + 0.5 * softplus(a.domain + domainDocumentParts[d])
                    }
                }
            }
        }
    }
}
