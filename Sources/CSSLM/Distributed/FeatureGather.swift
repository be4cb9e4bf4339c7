// Gather-with-gradient for contrastive losses. Each rank holds the features of its own examples
// [n_local, D]; the loss of a rank's rows compares them with every example of the global batch, so
// the features (and labels) are all-gathered into [n_global, D] in rank order. In backward, every
// rank holds d(its loss)/d(gathered) for ALL gathered rows; the sum over ranks of the block that
// belongs to rank r is the gradient of the global loss with respect to rank r's features, which a
// reduce-scatter (sum) delivers to r. Per-rank counts may differ (and be zero).
//
// The rank's own rows take part twice, as anchors and as columns. Read the anchors from the
// gathered buffer (rows `localRows`) and put both gradients into the gathered gradient: the
// reduce-scatter then returns the full gradient of the rank's features.

/// The layout of one gathered batch and the collectives that fill it and route its gradient back.
///
/// ```swift
/// let gather = FeatureGather(communicator: comm, rowsPerRank: batch.rowsPerRank, width: 384)
/// try gather.gather(localFeatures, into: gathered)                 // [n_global, 384]
/// try gather.gatherLabels(localLabels, into: globalLabels)        // [n_global]
/// // loss over anchors gathered[gather.localRows] × all columns, backward into dGathered ...
/// try gather.scatterGradient(dGathered, into: dLocalFeatures)     // [n_local, 384], summed
/// ```
public struct FeatureGather {
    /// Rows held by each rank, in rank order.
    public let rowsPerRank: [Int]
    /// Floats per row (D).
    public let width: Int
    /// The first gathered row of each rank (rowsPerRank.count + 1 entries).
    public let rowOffsets: [Int]
    public let communicator: Communicator

    /// A layout known on every rank (e.g. from the global sampler, without a collective).
    public init(communicator: Communicator, rowsPerRank: [Int], width: Int) {
        precondition(rowsPerRank.count == communicator.size, "one row count per rank")
        precondition(width >= 0 && rowsPerRank.allSatisfy { $0 >= 0 }, "counts must be non-negative")
        self.communicator = communicator
        self.rowsPerRank = rowsPerRank
        self.width = width
        rowOffsets = prefixOffsets(rowsPerRank)
    }

    /// A layout from each rank's own row count (one small allgather).
    public static func exchangingCounts(communicator: Communicator, localRows: Int, width: Int,
                                        name: String = "allgather(feature row counts)") throws -> FeatureGather {
        var counts = [Int](repeating: 0, count: communicator.size)
        var mine = localRows
        try withUnsafePointer(to: &mine) { p in
            try counts.withUnsafeMutableBufferPointer {
                try communicator.allgather(UnsafeBufferPointer(start: p, count: 1), into: $0, name: name)
            }
        }
        try communicator.checkSameOnAllRanks(width, what: "the feature width")
        return FeatureGather(communicator: communicator, rowsPerRank: counts, width: width)
    }

    /// Rows of the whole gathered batch.
    public var globalRows: Int { rowOffsets[rowsPerRank.count] }
    /// This rank's rows within the gathered batch.
    public var localRows: Range<Int> { rowOffsets[communicator.rank]..<rowOffsets[communicator.rank + 1] }

    /// [n_local, D] of every rank → [n_global, D] in rank order. `local` may be the rank's own
    /// block of `gathered` (then nothing is copied).
    public func gather(_ local: UnsafeBufferPointer<Float>, into gathered: UnsafeMutableBufferPointer<Float>,
                       name: String = "allgatherv(features)") throws {
        try communicator.allgatherv(local, into: gathered, counts: rowsPerRank.map { $0 * width }, name: name)
    }

    /// [n_local] labels (or any per-row scalar) of every rank → [n_global].
    public func gatherLabels<T: CommunicatorScalar>(_ local: UnsafeBufferPointer<T>, into gathered: UnsafeMutableBufferPointer<T>,
                                                    name: String = "allgatherv(labels)") throws {
        try communicator.allgatherv(local, into: gathered, counts: rowsPerRank, name: name)
    }

    /// d(this rank's loss)/d(gathered) [n_global, D] on every rank → the sum over ranks of this
    /// rank's block [n_local, D]: the gradient of the global loss with respect to its features.
    public func scatterGradient(_ gatheredGradient: UnsafeBufferPointer<Float>, into localGradient: UnsafeMutableBufferPointer<Float>,
                                name: String = "reduce-scatter(feature gradients)") throws {
        try communicator.reduceScatter(gatheredGradient, into: localGradient, counts: rowsPerRank.map { $0 * width },
                                       .sum, name: name)
    }
}

/// A gathered set of sentence features: t and e [M, H] and labels [M] in rank order, with the
/// layout that routes their gradients back.
public struct GatheredFeatures {
    public var t: [Float]
    public var e: [Float]
    public var labels: [Int]
    public let gather: FeatureGather
    public var count: Int { labels.count }
    var hidden: Int { gather.width / 2 }

    /// Gathers every rank's t, e [n, H] and labels [n]; t and e travel as one [n, 2H] block.
    public init(communicator: Communicator, t: [Float], e: [Float], labels: [Int], rowsPerRank: [Int], hidden h: Int) throws {
        let n = labels.count
        let gather = FeatureGather(communicator: communicator, rowsPerRank: rowsPerRank, width: 2 * h)
        self.gather = gather
        let m = gather.globalRows
        let local = interleave(t, e, rows: n, width: h)
        var all = [Float](repeating: 0, count: m * 2 * h)
        var globalLabels = [Int](repeating: 0, count: m)
        try local.withUnsafeBufferPointer { l in try all.withUnsafeMutableBufferPointer { try gather.gather(l, into: $0) } }
        try labels.withUnsafeBufferPointer { l in try globalLabels.withUnsafeMutableBufferPointer { try gather.gatherLabels(l, into: $0) } }
        (self.t, self.e) = split(all, rows: m, width: h)
        self.labels = globalLabels
    }

    /// d(this rank's loss)/d(t), d(e) [M, H] of every rank → the global loss's gradient with
    /// respect to this rank's own rows [n, H] (summed over ranks).
    public func scatterGradients(dT: [Float], dE: [Float]) throws -> (dT: [Float], dE: [Float]) {
        let h = hidden, n = gather.localRows.count
        let all = interleave(dT, dE, rows: count, width: h)
        var local = [Float](repeating: 0, count: n * 2 * h)
        try all.withUnsafeBufferPointer { a in try local.withUnsafeMutableBufferPointer { try gather.scatterGradient(a, into: $0) } }
        return split(local, rows: n, width: h)
    }
}

/// [rows, W] and [rows, W] → [rows, 2W], row r = [a_r; b_r].
private func interleave(_ a: [Float], _ b: [Float], rows: Int, width w: Int) -> [Float] {
    var out = [Float](repeating: 0, count: rows * 2 * w)
    for r in 0..<rows {
        for j in 0..<w { out[r * 2 * w + j] = a[r * w + j]; out[r * 2 * w + w + j] = b[r * w + j] }
    }
    return out
}

/// The inverse of `interleave`.
private func split(_ x: [Float], rows: Int, width w: Int) -> ([Float], [Float]) {
    var a = [Float](repeating: 0, count: rows * w), b = a
    for r in 0..<rows {
        for j in 0..<w { a[r * w + j] = x[r * 2 * w + j]; b[r * w + j] = x[r * 2 * w + w + j] }
    }
    return (a, b)
}
