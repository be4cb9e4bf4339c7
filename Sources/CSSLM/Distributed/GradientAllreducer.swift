// The gradient allreduce of data-parallel training over one flat gradient buffer, in buckets of
// ~25 MB taken in reverse layer order (the order backward finishes them). The step's loss sum,
// example count, extra sums and a non-finite flag ride along in a small side block reduced with
// the first bucket, so one pass of collectives gives every rank the same global mean gradient,
// gradient norm and skip-on-NaN decision. The side block goes first so that later buckets can be
// averaged as soon as they arrive. Every bucket is a blocking MPI_Allreduce after backward: an
// overlapped variant (MPI_Iallreduce started as backward finished each layer) was measured slower
// on one host and was removed (docs/distributed.md, "Overlap").

/// What one rank contributes beside its gradient, summed over its own examples.
public struct LocalStepTotals: Sendable, Equatable {
    /// The sum of this rank's per-example losses.
    public var lossSum: Double
    /// The number of examples the loss and the gradient sum over on this rank.
    public var exampleCount: Int
    /// Set when this rank saw something that must skip the step (e.g. a non-finite loss).
    public var nonFinite: Bool
    /// Further sums to reduce (e.g. per-objective losses, correct predictions); the same count
    /// on every rank as given to `GradientAllreducer(extraSumCount:)`.
    public var extraSums: [Double]

    public init(lossSum: Double, exampleCount: Int, nonFinite: Bool = false, extraSums: [Double] = []) {
        self.lossSum = lossSum
        self.exampleCount = exampleCount
        self.nonFinite = nonFinite
        self.extraSums = extraSums
    }
}

/// The same on every rank after the reduction.
public struct GlobalStepTotals: Sendable, Equatable {
    /// The sum of all ranks' loss sums.
    public var lossSum: Double
    /// The number of examples over all ranks.
    public var exampleCount: Int
    /// How many ranks flagged `nonFinite`.
    public var nonFiniteRanks: Int
    /// The L2 norm of the gradient as left in the buffer (the mean when averaging).
    public var gradientNorm: Double
    /// All ranks' `extraSums`, summed.
    public var extraSums: [Double]

    /// The mean loss per example (0 without examples).
    public var meanLoss: Double { exampleCount > 0 ? lossSum / Double(exampleCount) : 0 }

    /// True when some rank flagged the step or the loss or the gradient is not finite: every rank
    /// reaches the same value, so it may decide whether to skip or stop.
    public var nonFinite: Bool { nonFiniteRanks > 0 || !lossSum.isFinite || !gradientNorm.isFinite }
}

/// What the buffer holds after the reduction.
public enum GradientAveraging: Sendable {
    /// The sum of all ranks' gradients.
    case sum
    /// The sum divided by the global example count (each rank passes the gradient of its loss
    /// *sum*): the gradient of the global mean loss, the same for any number of ranks.
    case meanOverExamples
}

/// Allreduces a flat gradient buffer in buckets, with the step's totals riding along.
///
/// ```swift
/// let reducer = try GradientAllreducer(communicator: comm, parameterRanges: params.specs.map(\.range))
/// // ... forward, loss, backward into params.grads ...
/// let totals = try reducer.allreduce(params.grads.buffer,
///                                    local: LocalStepTotals(lossSum: lossSum, exampleCount: n))
/// if totals.nonFinite { /* every rank skips */ }
/// let clip = min(1, maxNorm / totals.gradientNorm)
/// ```
public final class GradientAllreducer {
    /// A group of flat-buffer spans reduced by one collective.
    public struct Bucket: Sendable, Equatable {
        /// Spans of the flat gradient buffer, in the order they were taken (high to low).
        public var spans: [Range<Int>]
        /// Indices of the parameter ranges the spans come from.
        public var rangeIndices: [Int]
        public var count: Int { spans.reduce(0) { $0 + $1.count } }
    }

    /// Buckets in reduction order: bucket 0 is small and carries the side block.
    public let buckets: [Bucket]
    public let parameterRanges: [Range<Int>]
    public let averaging: GradientAveraging
    public let extraSumCount: Int

    private let communicator: Communicator
    /// Bucket 0's gradient floats followed by the side block.
    private let carrier: UnsafeMutableBufferPointer<Float>
    private let sideOffset: Int

    /// The size of the side block: loss sum, example count, non-finite flag, extra sums.
    private static let fixedSideCount = 3

    deinit { carrier.deallocate() }

    /// Plans the buckets and checks that every rank planned the same (one small allreduce).
    /// - Parameters:
    ///   - parameterRanges: the tensors' ranges in the flat buffer, ascending and disjoint, in
    ///     forward order (embeddings first); buckets take them last to first.
    ///   - bucketBytes: the target size of a bucket (a range larger than that is split).
    ///   - carrierBytes: the size of bucket 0, which is copied next to the side block.
    public init(communicator: Communicator, parameterRanges: [Range<Int>],
                bucketBytes: Int = 25 << 20, carrierBytes: Int = 64 << 10,
                averaging: GradientAveraging = .meanOverExamples, extraSumCount: Int = 0) throws {
        let name = "gradient allreducer setup"
        for (i, r) in parameterRanges.enumerated() where r.lowerBound < 0 || (i > 0 && r.lowerBound < parameterRanges[i - 1].upperBound) {
            throw CommunicatorError(collective: name,
                                    message: "parameter range \(i) (\(r)) is negative or overlaps or precedes range \(i - 1)")
        }
        let bucketFloats = max(1, bucketBytes / MemoryLayout<Float>.stride)
        let carrierFloats = max(1, min(carrierBytes, bucketBytes) / MemoryLayout<Float>.stride)
        buckets = Self.plan(parameterRanges, carrierFloats: carrierFloats, bucketFloats: bucketFloats)
        self.parameterRanges = parameterRanges
        self.communicator = communicator
        self.averaging = averaging
        self.extraSumCount = extraSumCount
        sideOffset = buckets[0].count
        carrier = .allocate(capacity: sideOffset + Self.fixedSideCount + extraSumCount)
        carrier.initialize(repeating: 0)

        var hasher = FNV1a()  // a cheap fingerprint of the layout, compared across ranks
        for r in parameterRanges { hasher.add(r.lowerBound); hasher.add(r.upperBound) }
        for b in buckets { for s in b.spans { hasher.add(s.lowerBound); hasher.add(s.upperBound) } }
        hasher.add(extraSumCount)
        hasher.add(averaging == .sum ? 0 : 1)
        try communicator.checkSameOnAllRanks(Int(truncatingIfNeeded: hasher.value), what: "the gradient bucket layout",
                                             name: "allreduce(gradient layout check)")
    }

    /// Splits the ranges, last to first, into bucket 0 of `carrierFloats` and then buckets of
    /// `bucketFloats`; adjacent pieces in a bucket merge into one span.
    static func plan(_ ranges: [Range<Int>], carrierFloats: Int, bucketFloats: Int) -> [Bucket] {
        var buckets: [Bucket] = []
        var current = Bucket(spans: [], rangeIndices: [])
        var capacity = carrierFloats, fill = 0
        for ri in ranges.indices.reversed() {
            let low = ranges[ri].lowerBound
            var high = ranges[ri].upperBound
            while high > low {
                let take = min(high - low, capacity - fill)
                if let last = current.spans.last, last.lowerBound == high {
                    current.spans[current.spans.count - 1] = (high - take)..<last.upperBound
                } else {
                    current.spans.append((high - take)..<high)
                }
                if current.rangeIndices.last != ri { current.rangeIndices.append(ri) }
                fill += take
                high -= take
                if fill == capacity {
                    buckets.append(current)
                    current = Bucket(spans: [], rangeIndices: [])
                    capacity = bucketFloats
                    fill = 0
                }
            }
        }
        if !current.spans.isEmpty || buckets.isEmpty { buckets.append(current) }
        return buckets
    }

    // MARK: One step

    /// Reduces `gradients` (each rank's gradient of its loss sum) and the step's totals: when it
    /// returns, `gradients` holds the global sum or mean on every rank.
    public func allreduce(_ gradients: UnsafeMutableBufferPointer<Float>, local: LocalStepTotals) throws -> GlobalStepTotals {
        let name = "allreduce(gradients)"
        if let last = parameterRanges.last, last.upperBound > gradients.count {
            throw CommunicatorError(collective: name,
                                    message: "the gradient buffer holds \(gradients.count) floats, the ranges need \(last.upperBound)")
        }
        guard local.extraSums.count == extraSumCount else {
            throw CommunicatorError(collective: name,
                                    message: "\(local.extraSums.count) extra sums given, \(extraSumCount) expected")
        }
        // Bucket 0 travels in `carrier` next to the side block; the others reduce in place.
        var at = 0
        for span in buckets[0].spans {
            for i in span { carrier[at] = gradients[i]; at += 1 }
        }
        carrier[sideOffset] = Float(local.lossSum)
        carrier[sideOffset + 1] = Float(local.exampleCount)
        carrier[sideOffset + 2] = local.nonFinite ? 1 : 0
        for (k, v) in local.extraSums.enumerated() { carrier[sideOffset + Self.fixedSideCount + k] = Float(v) }
        try communicator.allreduce(carrier, .sum, name: bucketName(0))
        at = 0
        for span in buckets[0].spans {
            for i in span { gradients[i] = carrier[at]; at += 1 }
        }
        let count = Int(carrier[sideOffset + 1].rounded())
        let scale: Float = averaging == .meanOverExamples && count > 0 ? 1 / Float(count) : 1

        var squared = 0.0    // summed per bucket, then over buckets
        for (b, bucket) in buckets.enumerated() {
            var bucketSquared = 0.0
            for span in bucket.spans {
                let piece = UnsafeMutableBufferPointer(rebasing: gradients[span])
                if b > 0 { try communicator.allreduce(piece, .sum, name: bucketName(b)) }
                bucketSquared += scaleAndSumSquares(piece.baseAddress!, count: span.count, scale: scale)
            }
            squared += bucketSquared
        }
        return GlobalStepTotals(lossSum: Double(carrier[sideOffset]), exampleCount: count,
                                nonFiniteRanks: Int(carrier[sideOffset + 2].rounded()), gradientNorm: squared.squareRoot(),
                                extraSums: (0..<extraSumCount).map { Double(carrier[sideOffset + Self.fixedSideCount + $0]) })
    }

    private func bucketName(_ b: Int) -> String { "allreduce(gradient bucket \(b) of \(buckets.count))" }
}
