// The encoded unlabelled pool in memory: for every document d its class vector t(d) (the [CLS]
// vector) and domain vector e(d) (the first [SEP] vector), in that order (docs/method.md#stages, stage 2; the
// reference stored them swapped). Every rank holds the whole pool after the distributed encoding,
// because the stage-3 retrieval runs on every rank.

/// How index vectors are stored on disk.
public enum VectorPrecision: String, Codable, CaseIterable, Sendable {
    case float32, float16

    /// The code in the index file header.
    var code: UInt32 {
        switch self {
        case .float32: return 1
        case .float16: return 2
        }
    }

    init?(code: UInt32) {
        switch code {
        case 1: self = .float32
        case 2: self = .float16
        default: return nil
        }
    }

    public var bytesPerValue: Int { self == .float32 ? 4 : 2 }
}

/// N documents' vectors, row d = [t(d) | e(d)]: [N, 2H] row-major.
public struct DocumentVectors: Equatable, Sendable {
    public let count: Int
    public let hidden: Int
    /// [N, 2H]: t(d) in columns 0..<H, e(d) in H..<2H.
    public var rows: [Float]

    public init(count: Int, hidden: Int, rows: [Float]) {
        precondition(count >= 0 && hidden > 0 && rows.count == count * 2 * hidden,
                     "DocumentVectors: \(rows.count) values do not make \(count) rows of 2×\(hidden)")
        self.count = count
        self.hidden = hidden
        self.rows = rows
    }

    /// t(d), [H].
    public func classVector(_ d: Int) -> ArraySlice<Float> { rows[(d * 2 * hidden)..<(d * 2 * hidden + hidden)] }
    /// e(d), [H].
    public func domainVector(_ d: Int) -> ArraySlice<Float> { rows[(d * 2 * hidden + hidden)..<((d + 1) * 2 * hidden)] }

    /// The class vectors alone, [N, H].
    public func classVectors() -> [Float] {
        var out = [Float](repeating: 0, count: count * hidden)
        for d in 0..<count { out[(d * hidden)..<((d + 1) * hidden)] = classVector(d) }
        return out
    }

    /// Rank 0's `vectors` on every rank (other ranks pass nil): e.g. a stage-3 resume where only
    /// rank 0 can read the index file (no shared file system) and the init model that made it is
    /// gone. One small broadcast of the shape, one of the rows.
    public static func fromRoot(_ vectors: DocumentVectors?, communicator: Communicator) throws -> DocumentVectors {
        precondition(communicator.rank != 0 || vectors != nil, "rank 0 must hold the vectors it broadcasts")
        var shape = [vectors?.count ?? 0, vectors?.hidden ?? 0]
        try communicator.agree(&shape, name: "broadcast(document vector shape)")
        var rows = communicator.rank == 0 ? vectors!.rows : [Float](repeating: 0, count: shape[0] * 2 * shape[1])
        try rows.withUnsafeMutableBufferPointer { try communicator.broadcast($0, root: 0, name: "broadcast(document vectors)") }
        return DocumentVectors(count: shape[0], hidden: shape[1], rows: rows)
    }

    /// The values as stored at `precision` and read back: with `.float16` every value is rounded
    /// to half precision. Stage 2 applies this before stage 3 uses the vectors, so the retrieval of
    /// a run and of its resume from the index file see exactly the same numbers.
    public func rounded(to precision: VectorPrecision) -> DocumentVectors {
        guard precision == .float16 else { return self }
        return DocumentVectors(count: count, hidden: hidden, rows: rows.map { Float(Float16($0)) })
    }
}

/// Anything that can hand out each document's t(d) and e(d): the in-memory vectors, or a mapped
/// index file (which may hold them in half precision).
public protocol DocumentVectorSource {
    var count: Int { get }
    var hidden: Int { get }
    /// Calls `body(d, t(d), e(d))` for every document in order; the pointers ([H] each) are valid
    /// only during the call.
    func forEachDocument(_ body: (Int, UnsafePointer<Float>, UnsafePointer<Float>) throws -> Void) rethrows
}

extension DocumentVectors: DocumentVectorSource {
    public func forEachDocument(_ body: (Int, UnsafePointer<Float>, UnsafePointer<Float>) throws -> Void) rethrows {
        try rows.withUnsafeBufferPointer { p in
            for d in 0..<count {
                let row = p.baseAddress! + d * 2 * hidden
                try body(d, row, row + hidden)
            }
        }
    }
}
