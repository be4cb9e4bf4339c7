// The collective operations data-parallel training needs, behind one protocol with two
// implementations: `MPICommunicator` (Open MPI, one process per rank) and
// `SingleProcessCommunicator` (one rank, no MPI calls). Every operation works in place on caller
// memory (pointers, no array copies), is called by every rank in the same order, and throws a
// typed error that names the collective when it fails.
import Foundation

/// The element types the collectives move: each maps to one MPI datatype.
public enum CommunicatorScalarKind: Sendable {
    case float, double, int64, int32, uint64, uint8
}

/// A type whose buffers a `Communicator` can reduce, broadcast and gather.
public protocol CommunicatorScalar {
    static var communicatorKind: CommunicatorScalarKind { get }
}

extension Float: CommunicatorScalar { public static var communicatorKind: CommunicatorScalarKind { .float } }
extension Double: CommunicatorScalar { public static var communicatorKind: CommunicatorScalarKind { .double } }
extension Int: CommunicatorScalar { public static var communicatorKind: CommunicatorScalarKind { .int64 } }
extension Int32: CommunicatorScalar { public static var communicatorKind: CommunicatorScalarKind { .int32 } }
extension UInt64: CommunicatorScalar { public static var communicatorKind: CommunicatorScalarKind { .uint64 } }
extension UInt8: CommunicatorScalar { public static var communicatorKind: CommunicatorScalarKind { .uint8 } }

/// Element-wise reductions.
public enum ReduceOperation: String, Sendable {
    case sum, max, min
}

/// The collectives of data-parallel training, called by every rank in the same order.
///
/// Each operation takes a `name` that error messages and the stall watchdog report, e.g.
/// `"allreduce(gradient bucket 3)"`; the overloads without `name` use the operation's name.
///
/// ```swift
/// let comm: Communicator = try MPICommunicator()
/// var loss: [Double] = [localLossSum, Double(localCount)]
/// try loss.withUnsafeMutableBufferPointer { try comm.allreduce($0, .sum, name: "loss") }
/// ```
public protocol Communicator: AnyObject {
    /// This process's rank, 0..<size.
    var rank: Int { get }
    /// The number of ranks.
    var size: Int { get }
    /// The training step, reported by the watchdog and in abort messages.
    var step: Int { get set }

    /// Reduces `buffer` element-wise over all ranks, leaving the result in `buffer` on every rank.
    func allreduce<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>,
                                          _ op: ReduceOperation, name: String) throws

    /// Copies `buffer` of rank `root` into `buffer` on every other rank.
    func broadcast<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int, name: String) throws

    /// Copies the raw bytes of rank `root` into `bytes` on every other rank.
    func broadcast(bytes: UnsafeMutableRawBufferPointer, root: Int, name: String) throws

    /// Concatenates every rank's `local` (the same count on all ranks) into `gathered` in rank
    /// order: gathered.count == local.count × size.
    func allgather<T: CommunicatorScalar>(_ local: UnsafeBufferPointer<T>,
                                          into gathered: UnsafeMutableBufferPointer<T>, name: String) throws

    /// Concatenates every rank's `local` into `gathered` in rank order, where rank r contributes
    /// `counts[r]` elements (counts may differ, and be zero). `local` may alias its own place in
    /// `gathered` (then no copy is made).
    func allgatherv<T: CommunicatorScalar>(_ local: UnsafeBufferPointer<T>,
                                           into gathered: UnsafeMutableBufferPointer<T>,
                                           counts: [Int], name: String) throws

    /// Reduces `input` (sum(counts) elements, the same layout on every rank) element-wise and
    /// leaves block r (counts[r] elements, in rank order) on rank r in `local`.
    func reduceScatter<T: CommunicatorScalar>(_ input: UnsafeBufferPointer<T>,
                                              into local: UnsafeMutableBufferPointer<T>,
                                              counts: [Int], _ op: ReduceOperation, name: String) throws

    /// Returns when every rank has called it.
    func barrier(name: String) throws

    /// Prints `message` to standard error and ends every rank of the job with `code`.
    func abort(_ message: String, code: Int32) -> Never
}

extension Communicator {
    public func allreduce<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>,
                                                 _ op: ReduceOperation) throws {
        try allreduce(buffer, op, name: "allreduce(\(op))")
    }

    public func broadcast<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int = 0) throws {
        try broadcast(buffer, root: root, name: "broadcast")
    }

    public func allgather<T: CommunicatorScalar>(_ local: UnsafeBufferPointer<T>,
                                                 into gathered: UnsafeMutableBufferPointer<T>) throws {
        try allgather(local, into: gathered, name: "allgather")
    }

    public func allgatherv<T: CommunicatorScalar>(_ local: UnsafeBufferPointer<T>,
                                                  into gathered: UnsafeMutableBufferPointer<T>,
                                                  counts: [Int]) throws {
        try allgatherv(local, into: gathered, counts: counts, name: "allgatherv")
    }

    public func reduceScatter<T: CommunicatorScalar>(_ input: UnsafeBufferPointer<T>,
                                                     into local: UnsafeMutableBufferPointer<T>,
                                                     counts: [Int]) throws {
        try reduceScatter(input, into: local, counts: counts, .sum, name: "reduce-scatter")
    }

    public func barrier() throws { try barrier(name: "barrier") }

    /// Sends rank 0's `data` (any length) to every rank: its length, then its bytes.
    func broadcast(_ data: inout Data, name: String) throws {
        var count = [rank == 0 ? data.count : 0]
        try count.withUnsafeMutableBufferPointer { try broadcast($0, root: 0, name: "\(name) (size)") }
        if rank != 0 { data = Data(count: count[0]) }
        guard count[0] > 0 else { return }
        try data.withUnsafeMutableBytes { try broadcast(bytes: $0, root: 0, name: name) }
    }

    public func abort(_ message: String) -> Never { abort(message, code: 1) }

    /// True on rank 0, the rank that decides and writes.
    public var isRoot: Bool { rank == 0 }

    /// Runs `body`; if it throws, aborts the whole job with the error's message (never a hang
    /// while the other ranks wait in a collective this rank will not reach).
    ///
    /// ```swift
    /// comm.runOrAbort { try trainer.run() }
    /// ```
    public func runOrAbort<T>(_ body: () throws -> T) -> T {
        do {
            return try body()
        } catch {
            abort("\(error)", code: 1)
        }
    }
}

/// A collective that failed, or was called with buffers that do not fit its counts.
public struct CommunicatorError: Error, CustomStringConvertible, Equatable {
    /// The collective as named by the caller, e.g. "allreduce(gradient bucket 3)".
    public let collective: String
    /// The MPI function that failed, or "" for an argument error found before calling MPI.
    public let function: String
    /// The MPI error code (0 for argument errors).
    public let code: Int32
    public let message: String

    public init(collective: String, function: String = "", code: Int32 = 0, message: String) {
        self.collective = collective
        self.function = function
        self.code = code
        self.message = message
    }

    public var description: String {
        if function.isEmpty { return "\(collective): \(message)" }
        return "\(collective): \(function) failed with code \(code): \(message)"
    }
}

/// Offsets of consecutive blocks of `counts` elements: [0, c0, c0+c1, ...] (count + 1 entries).
@inlinable
func prefixOffsets(_ counts: [Int]) -> [Int] {
    var offsets = [0]
    offsets.reserveCapacity(counts.count + 1)
    for c in counts { offsets.append(offsets[offsets.count - 1] + c) }
    return offsets
}

/// Checks counts for a variable-count collective and returns their offsets.
func validatedOffsets(_ counts: [Int], size: Int, rank: Int, localCount: Int, totalCount: Int,
                      collective: String) throws -> [Int] {
    guard counts.count == size else {
        throw CommunicatorError(collective: collective,
                                message: "\(counts.count) counts given for \(size) ranks")
    }
    guard counts.allSatisfy({ $0 >= 0 }) else {
        throw CommunicatorError(collective: collective, message: "negative count in \(counts)")
    }
    let offsets = prefixOffsets(counts)
    guard counts[rank] == localCount else {
        throw CommunicatorError(collective: collective,
                                message: "rank \(rank) holds \(localCount) elements but counts[\(rank)] is \(counts[rank])")
    }
    guard offsets[size] == totalCount else {
        throw CommunicatorError(collective: collective,
                                message: "the gathered buffer holds \(totalCount) elements but the counts sum to \(offsets[size])")
    }
    return offsets
}
