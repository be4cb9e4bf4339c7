// The communicator of a run with one rank and no MPI at all: reductions and broadcasts leave the
// buffers as they are, gathers copy the local block into place. Useful where MPI is unwanted
// (unit tests, tools) and as the reference the multi-rank tests compare against.
import Foundation
import Logging

/// One rank, no MPI calls.
public final class SingleProcessCommunicator: Communicator {
    public let rank = 0
    public let size = 1
    public var step = 0

    public init() {
        setvbuf(stdout, nil, _IOLBF, 0)
    }

    public func allreduce<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>,
                                                 _ op: ReduceOperation, name: String) throws {}

    public func broadcast<T: CommunicatorScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int, name: String) throws {
        try checkRoot(root, name)
    }

    public func broadcast(bytes: UnsafeMutableRawBufferPointer, root: Int, name: String) throws {
        try checkRoot(root, name)
    }

    public func allgather<T: CommunicatorScalar>(_ local: UnsafeBufferPointer<T>,
                                                 into gathered: UnsafeMutableBufferPointer<T>, name: String) throws {
        try allgatherv(local, into: gathered, counts: [local.count], name: name)
    }

    public func allgatherv<T: CommunicatorScalar>(_ local: UnsafeBufferPointer<T>,
                                                  into gathered: UnsafeMutableBufferPointer<T>,
                                                  counts: [Int], name: String) throws {
        _ = try validatedOffsets(counts, size: 1, rank: 0, localCount: local.count,
                                 totalCount: gathered.count, collective: name)
        copy(local, to: gathered)
    }

    public func reduceScatter<T: CommunicatorScalar>(_ input: UnsafeBufferPointer<T>,
                                                     into local: UnsafeMutableBufferPointer<T>,
                                                     counts: [Int], _ op: ReduceOperation, name: String) throws {
        _ = try validatedOffsets(counts, size: 1, rank: 0, localCount: local.count,
                                 totalCount: input.count, collective: name)
        copy(input, to: local)
    }

    public func barrier(name: String) throws {}

    public func abort(_ message: String, code: Int32) -> Never {
        Logger(label: "csslm").critical("csslm: step \(step): \(message)")
        fflush(stdout)
        exit(code)
    }

    private func copy<T>(_ source: UnsafeBufferPointer<T>, to destination: UnsafeMutableBufferPointer<T>) {
        guard source.count > 0, let from = source.baseAddress, let to = destination.baseAddress,
              UnsafeRawPointer(from) != UnsafeRawPointer(to) else { return }
        to.update(from: from, count: source.count)  // update(from:) allows overlap
    }

    private func checkRoot(_ root: Int, _ name: String) throws {
        guard root == 0 else { throw CommunicatorError(collective: name, message: "root \(root) is not a rank of 1") }
    }
}
