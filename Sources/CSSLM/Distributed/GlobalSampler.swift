// The global sampler: which examples form each global batch, independent of the number of ranks.
// Every epoch is one permutation of the dataset drawn from (seed, epoch); a global cursor walks it,
// and a batch that reaches the end of an epoch continues at the start of the next one, so every
// batch has exactly `globalBatchSize` examples. Every rank computes the same global batch and
// takes its contiguous slice; the position of a row in the global batch is the same whatever the
// world size, so per-example randomness (dropout) keyed by it is world-size invariant.

/// Where the sampler stands: plain integers, saved in checkpoints for exact resume.
public struct SamplerPosition: Codable, Equatable, Sendable {
    /// The epoch the next example comes from (0-based).
    public var epoch: Int
    /// The index of the next example in that epoch's permutation.
    public var cursor: Int

    public init(epoch: Int = 0, cursor: Int = 0) {
        self.epoch = epoch
        self.cursor = cursor
    }
}

/// One global batch: the dataset indices of its examples, in global order.
public struct GlobalBatch: Equatable, Sendable {
    /// The dataset index of each row of the global batch.
    public let datasetIndices: [Int]
    /// The epoch of each row (a batch can straddle two epochs).
    public let epochs: [Int]

    public var count: Int { datasetIndices.count }

    /// The rows of `rank` among `worldSize`: see `GlobalSampler.rankRows`.
    public func slice(rank: Int, worldSize: Int) -> LocalBatch {
        let rows = GlobalSampler.rankRows(batchSize: count, rank: rank, worldSize: worldSize)
        return LocalBatch(globalRows: rows, datasetIndices: Array(datasetIndices[rows]))
    }

    /// The row count of each rank, in rank order.
    public func rowsPerRank(worldSize: Int) -> [Int] {
        (0..<worldSize).map { GlobalSampler.rankRows(batchSize: count, rank: $0, worldSize: worldSize).count }
    }
}

/// The part of a global batch one rank computes.
public struct LocalBatch: Equatable, Sendable {
    /// Positions of this rank's rows in the global batch: the global example index of local row i
    /// is `globalRows.lowerBound + i` (key per-example randomness such as dropout with it).
    public let globalRows: Range<Int>
    /// The dataset index of each local row.
    public let datasetIndices: [Int]

    public var count: Int { datasetIndices.count }
}

/// Draws global batches of `globalBatchSize` (the last of an epoch: the rest) from per-epoch permutations.
///
/// ```swift
/// var sampler = GlobalSampler(datasetSize: train.count, globalBatchSize: 32, seed: 42)
/// let batch = sampler.nextBatch()
/// let mine = batch.slice(rank: comm.rank, worldSize: comm.size)
/// // checkpoint: sampler.position; resume: GlobalSampler(..., position: saved)
/// ```
public struct GlobalSampler: Sendable {
    public let datasetSize: Int
    public let globalBatchSize: Int
    public let seed: UInt64
    /// Where the next batch starts.
    public private(set) var position: SamplerPosition
    /// The permutation of `position.epoch`, kept between batches.
    private var order: [Int]

    public init(datasetSize: Int, globalBatchSize: Int, seed: UInt64, position: SamplerPosition = SamplerPosition()) {
        precondition(datasetSize > 0, "the sampler needs at least one example")
        precondition(globalBatchSize > 0, "the global batch size must be positive")
        precondition(position.epoch >= 0 && (0..<datasetSize).contains(position.cursor),
                     "sampler position \(position) is outside a dataset of \(datasetSize)")
        self.datasetSize = datasetSize
        self.globalBatchSize = globalBatchSize
        self.seed = seed
        self.position = position
        order = Self.permutation(count: datasetSize, seed: seed, epoch: position.epoch)
    }

    /// The order of epoch `epoch`: a Fisher–Yates shuffle of 0..<count driven by SplitMix64
    /// seeded from (seed, epoch), the same on every rank.
    public static func permutation(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var rng = SplitMix64(seed: CounterRandom.streamKey(seed: seed, step: epoch, example: 0, site: 0x5A4D_504C))
        var order = Array(0..<count)
        var i = count - 1
        while i > 0 {
            let j = rng.nextInt(below: i + 1)
            order.swapAt(i, j)
            i -= 1
        }
        return order
    }

    /// Rows of global-batch positions that `rank` computes: contiguous, in rank order, sizes
    /// differing by at most one. With B = q·W + m (0 ≤ m < W), ranks 0..<m take q + 1 rows and the
    /// others q; a rank may get none when B < W.
    public static func rankRows(batchSize: Int, rank: Int, worldSize: Int) -> Range<Int> {
        precondition(worldSize > 0 && (0..<worldSize).contains(rank), "rank \(rank) is not in 0..<\(worldSize)")
        let q = batchSize / worldSize, m = batchSize % worldSize
        let start = rank * q + min(rank, m)
        return start..<(start + q + (rank < m ? 1 : 0))
    }

    /// The next global batch; advances the position. An epoch is one pass over the data: its
    /// last batch is short when the dataset size is not a multiple of the batch size (it used to
    /// be topped up from the next epoch's permutation, so ⌈N/B⌉ steps were more than one pass).
    public mutating func nextBatch() -> GlobalBatch {
        let take = min(globalBatchSize, datasetSize - position.cursor)
        let indices = Array(order[position.cursor..<(position.cursor + take)])
        let epochs = [Int](repeating: position.epoch, count: take)
        position.cursor += take
        if position.cursor == datasetSize {
            position = SamplerPosition(epoch: position.epoch + 1, cursor: 0)
            order = Self.permutation(count: datasetSize, seed: seed, epoch: position.epoch)
        }
        return GlobalBatch(datasetIndices: indices, epochs: epochs)
    }
}
