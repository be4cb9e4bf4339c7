// The Open MPI communicator: a duplicate of MPI_COMM_WORLD with errors returned (not fatal), each
// return code turned into a `CommunicatorError` that names the collective and carries
// MPI_Error_string's text. Counts above Int32.max (MPI's count type) are split into several calls.
// Without mpirun, MPI_Init_thread makes a one-rank singleton job, so the same binary runs alone.
import CMPI
import Foundation
import Logging

/// A communicator over Open MPI, one process per rank.
///
/// ```swift
/// let comm = try MPICommunicator()          // works under mpirun and alone (singleton)
/// comm.runOrAbort {
///     try comm.allreduce(grads.buffer, .sum, name: "gradients")
/// }
/// MPIRuntime.finalize()                      // once, at the very end of the program
/// ```
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public var step: Int = 0
    /// This node's name (MPI_Get_processor_name), in abort and watchdog messages.
    public let host: String
    /// The watchdog that aborts the job when a collective stalls (nil when disabled).
    public let watchdog: CollectiveWatchdog?
    /// The largest element count passed to one MPI call; larger buffers take several calls.
    public let maxElementsPerCall: Int

    private let comm: MPI_Comm

    /// Initialises MPI if needed and duplicates the world communicator.
    /// - Parameters:
    ///   - collectiveDeadline: seconds a collective may wait before the watchdog aborts the job;
    ///     nil disables the watchdog. `init(maxElementsPerCall:)` takes `CSSLM_COLLECTIVE_TIMEOUT_S`, else 300 s.
    ///   - maxElementsPerCall: split point for large counts (tests lower it to exercise splitting).
    public convenience init(maxElementsPerCall: Int = Int(Int32.max)) throws {
        try self.init(collectiveDeadline: CollectiveWatchdog.deadlineFromEnvironment(), maxElementsPerCall: maxElementsPerCall)
    }

    public init(collectiveDeadline: Double?, maxElementsPerCall: Int = Int(Int32.max)) throws {
        precondition(maxElementsPerCall > 0 && maxElementsPerCall <= Int(Int32.max),
                     "maxElementsPerCall must be in 1...Int32.max")
        try MPIRuntime.initialize()
        let setup = "communicator setup"
        try mpiCheck(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", setup)
        var dup: MPI_Comm?
        try mpiCheck(MPI_Comm_dup(MPI_COMM_WORLD, &dup), "MPI_Comm_dup", setup)
        guard let dup else { throw CommunicatorError(collective: setup, message: "MPI_Comm_dup returned no communicator") }
        try mpiCheck(MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", setup)
        var r: Int32 = 0, s: Int32 = 0
        try mpiCheck(MPI_Comm_rank(dup, &r), "MPI_Comm_rank", setup)
        try mpiCheck(MPI_Comm_size(dup, &s), "MPI_Comm_size", setup)
        comm = dup
        rank = Int(r)
        size = Int(s)
        var name = [CChar](repeating: 0, count: Int(CSSLM_MPI_MAX_PROCESSOR_NAME) + 1)
        var nameLength: Int32 = 0
        try mpiCheck(MPI_Get_processor_name(&name, &nameLength), "MPI_Get_processor_name", setup)
        host = String(cString: name)
        self.maxElementsPerCall = maxElementsPerCall
        if let collectiveDeadline {
            watchdog = CollectiveWatchdog(rank: rank, size: size, host: host, deadline: collectiveDeadline) { message in
                MPIRuntime.abortFromAnyThread(message, code: MPIRuntime.stallExitCode)
            }
        } else {
            watchdog = nil
        }
    }

    // MARK: Collectives

    public func allreduce<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>,
                                                 _ op: ReduceOperation, name: String) throws {
        let type = mpiDatatype(T.self), mpiOp = mpiOperation(op)
        try watched(name) {
            try forEachChunk(buffer.count) { offset, n in
                try mpiCheck(MPI_Allreduce(MPI_IN_PLACE, buffer.baseAddress! + offset, Int32(n), type, mpiOp, comm),
                             "MPI_Allreduce", name)
            }
        }
    }

    public func broadcast<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int, name: String) throws {
        try broadcast(UnsafeMutableRawPointer(buffer.baseAddress), count: buffer.count,
                      type: mpiDatatype(T.self), root: root, name: name)
    }

    public func broadcast(bytes: UnsafeMutableRawBufferPointer, root: Int, name: String) throws {
        try broadcast(bytes.baseAddress, count: bytes.count, type: MPI_BYTE, root: root, name: name)
    }

    public func allgather<T: CommunicatorScalar>(_ local: UnsafeBufferPointer<T>,
                                                 into gathered: UnsafeMutableBufferPointer<T>, name: String) throws {
        let n = local.count
        guard gathered.count == n * size else {
            throw CommunicatorError(collective: name,
                                    message: "gathered buffer holds \(gathered.count) elements, expected \(n) × \(size)")
        }
        guard gathered.count <= maxElementsPerCall else {
            try allgatherv(local, into: gathered, counts: Array(repeating: n, count: size), name: name)
            return
        }
        let type = mpiDatatype(T.self)
        let inPlace = n > 0 && UnsafeRawPointer(local.baseAddress) == UnsafeRawPointer(gathered.baseAddress! + rank * n)
        let send = inPlace ? UnsafeRawPointer(MPI_IN_PLACE) : UnsafeRawPointer(local.baseAddress)
        try watched(name) {
            try mpiCheck(MPI_Allgather(send, Int32(n), type, gathered.baseAddress, Int32(n), type, comm),
                         "MPI_Allgather", name)
        }
    }

    public func allgatherv<T: CommunicatorScalar>(_ local: UnsafeBufferPointer<T>,
                                                  into gathered: UnsafeMutableBufferPointer<T>,
                                                  counts: [Int], name: String) throws {
        let offsets = try validatedOffsets(counts, size: size, rank: rank, localCount: local.count,
                                           totalCount: gathered.count, collective: name)
        let type = mpiDatatype(T.self)
        let own = gathered.baseAddress.map { $0 + offsets[rank] }
        let inPlace = local.count > 0 && UnsafeRawPointer(local.baseAddress) == UnsafeRawPointer(own)
        if gathered.count <= maxElementsPerCall {
            let counts32 = counts.map { Int32($0) }, displacements32 = offsets.dropLast().map { Int32($0) }
            let send = inPlace ? UnsafeRawPointer(MPI_IN_PLACE) : UnsafeRawPointer(local.baseAddress)
            try watched(name) {
                try mpiCheck(MPI_Allgatherv(send, Int32(local.count), type, gathered.baseAddress,
                                            counts32, displacements32, type, comm),
                             "MPI_Allgatherv", name)
            }
            return
        }
        // Too large for one call's Int32 counts and displacements: each rank broadcasts its block.
        if !inPlace, let own, local.count > 0 { own.update(from: local.baseAddress!, count: local.count) }
        try watched(name) {
            for root in 0..<size {
                try forEachChunk(counts[root]) { offset, n in
                    try mpiCheck(MPI_Bcast(gathered.baseAddress! + offsets[root] + offset, Int32(n), type, Int32(root), comm),
                                 "MPI_Bcast", name)
                }
            }
        }
    }

    public func reduceScatter<T: CommunicatorScalar>(_ input: UnsafeBufferPointer<T>,
                                                     into local: UnsafeMutableBufferPointer<T>,
                                                     counts: [Int], _ op: ReduceOperation, name: String) throws {
        let offsets = try validatedOffsets(counts, size: size, rank: rank, localCount: local.count,
                                           totalCount: input.count, collective: name)
        if let i = input.baseAddress, let o = local.baseAddress,
           UnsafeRawPointer(o) < UnsafeRawPointer(i + input.count), UnsafeRawPointer(i) < UnsafeRawPointer(o + local.count) {
            throw CommunicatorError(collective: name, message: "the input and output buffers overlap")
        }
        let type = mpiDatatype(T.self), mpiOp = mpiOperation(op)
        if input.count <= maxElementsPerCall {
            let counts32 = counts.map { Int32($0) }
            try watched(name) {
                try mpiCheck(MPI_Reduce_scatter(input.baseAddress, local.baseAddress, counts32, type, mpiOp, comm),
                             "MPI_Reduce_scatter", name)
            }
            return
        }
        // Too large for Int32 counts: one reduce per destination rank and chunk.
        try watched(name) {
            for root in 0..<size {
                try forEachChunk(counts[root]) { offset, n in
                    let destination = root == rank ? UnsafeMutableRawPointer(local.baseAddress! + offset) : nil
                    try mpiCheck(MPI_Reduce(input.baseAddress! + offsets[root] + offset, destination, Int32(n),
                                            type, mpiOp, Int32(root), comm),
                                 "MPI_Reduce", name)
                }
            }
        }
    }

    public func barrier(name: String) throws {
        try watched(name) { try mpiCheck(MPI_Barrier(comm), "MPI_Barrier", name) }
    }

    public func abort(_ message: String, code: Int32) -> Never {
        MPIRuntime.abortFromAnyThread("csslm: rank \(rank) of \(size) on \(host), step \(step): \(message)", code: code)
    }

    // MARK: Helpers

    private func broadcast(_ base: UnsafeMutableRawPointer?, count: Int, type: MPI_Datatype?, root: Int, name: String) throws {
        guard (0..<size).contains(root) else {
            throw CommunicatorError(collective: name, message: "root \(root) is not a rank of \(size)")
        }
        var elementSize: Int32 = 0
        try mpiCheck(MPI_Type_size(type, &elementSize), "MPI_Type_size", name)
        try watched(name) {
            try forEachChunk(count) { offset, n in
                try mpiCheck(MPI_Bcast(base! + offset * Int(elementSize), Int32(n), type, Int32(root), comm),
                             "MPI_Bcast", name)
            }
        }
    }

    /// Runs `body` under the watchdog as collective `name`.
    @inline(__always)
    fileprivate func watched<R>(_ name: String, _ body: () throws -> R) throws -> R {
        guard let watchdog else { return try body() }
        return try watchdog.watching(name, step: step, body)
    }

    /// Calls `body(offset, n)` over [0, count) in pieces of at most `maxElementsPerCall`.
    @inline(__always)
    private func forEachChunk(_ count: Int, _ body: (Int, Int) throws -> Void) throws {
        var offset = 0
        while offset < count {
            let n = min(maxElementsPerCall, count - offset)
            try body(offset, n)
            offset += n
        }
    }
}

/// Throws a `CommunicatorError` for an MPI return code other than MPI_SUCCESS.
@inline(__always)
func mpiCheck(_ code: Int32, _ function: String, _ collective: String) throws {
    guard code != CSSLM_MPI_SUCCESS else { return }
    throw CommunicatorError(collective: collective, function: function, code: code, message: mpiErrorMessage(code))
}

/// MPI_Error_string's text for `code`.
func mpiErrorMessage(_ code: Int32) -> String {
    var text = [CChar](repeating: 0, count: Int(CSSLM_MPI_MAX_ERROR_STRING) + 1)
    var length: Int32 = 0
    guard MPI_Error_string(code, &text, &length) == CSSLM_MPI_SUCCESS else { return "unknown MPI error \(code)" }
    return String(cString: text)
}

private func mpiDatatype<T: CommunicatorScalar>(_: T.Type) -> MPI_Datatype? {
    switch T.communicatorKind {
    case .float: return MPI_FLOAT
    case .double: return MPI_DOUBLE
    case .int64: return MPI_INT64_T
    case .int32: return MPI_INT32_T
    case .uint64: return MPI_UINT64_T
    case .uint8: return MPI_UINT8_T
    }
}

private func mpiOperation(_ op: ReduceOperation) -> MPI_Op? {
    switch op {
    case .sum: return MPI_SUM
    case .max: return MPI_MAX
    case .min: return MPI_MIN
    }
}
