// "Rank 0 decides, everyone agrees" (docs/design.md#rank-0-decides). Whether a collective runs (stop,
// skip a step, write a checkpoint, refresh retrieval) must never depend on a rank-local condition:
// either rank 0 decides and broadcasts, or every rank's flag is reduced so all see the same answer.

extension Communicator {
    /// Rank 0's `value`, on every rank.
    ///
    /// ```swift
    /// let stop = try comm.agree(rank == 0 ? (earlyStopper.shouldStop ? 1 : 0) : 0) == 1
    /// ```
    public func agree(_ value: Int, name: String = "agree(rank 0 decides)") throws -> Int {
        var v = value
        try withUnsafeMutablePointer(to: &v) {
            try broadcast(UnsafeMutableBufferPointer(start: $0, count: 1), root: 0, name: name)
        }
        return v
    }

    /// Rank 0's `decision`, on every rank.
    ///
    /// ```swift
    /// enum StepDecision: Int { case proceed, skip, stop }
    /// let decision = try comm.agree(rank == 0 ? policy.decide(stats) : .proceed)
    /// ```
    public func agree<Decision: RawRepresentable>(_ decision: Decision,
                                                  name: String = "agree(rank 0 decides)") throws -> Decision
    where Decision.RawValue == Int {
        let raw = try agree(decision.rawValue, name: name)
        guard let agreed = Decision(rawValue: raw) else {
            throw CommunicatorError(collective: name,
                                    message: "rank 0 sent \(raw), which is no \(Decision.self) on rank \(rank)")
        }
        return agreed
    }

    /// Rank 0's `values` (the same count on every rank), on every rank, in one broadcast.
    public func agree(_ values: inout [Int], name: String = "agree(rank 0 decides)") throws {
        try values.withUnsafeMutableBufferPointer { try broadcast($0, root: 0, name: name) }
    }

    /// True on every rank when `flag` is true on at least one rank (e.g. "I saw a NaN").
    public func anyRank(_ flag: Bool, name: String = "allreduce(any-rank flag)") throws -> Bool {
        var v = flag ? 1 : 0
        try withUnsafeMutablePointer(to: &v) {
            try allreduce(UnsafeMutableBufferPointer(start: $0, count: 1), .max, name: name)
        }
        return v != 0
    }

    /// True on every rank when `flag` is true on all ranks (e.g. "my data is exhausted").
    public func everyRank(_ flag: Bool, name: String = "allreduce(every-rank flag)") throws -> Bool {
        var v = flag ? 1 : 0
        try withUnsafeMutablePointer(to: &v) {
            try allreduce(UnsafeMutableBufferPointer(start: $0, count: 1), .min, name: name)
        }
        return v != 0
    }

    /// Throws on every rank unless `value` is the same on all ranks (one allreduce of [v, −v] with
    /// max). Use it to check that configuration and layouts agree before training starts.
    public func checkSameOnAllRanks(_ value: Int, what: String,
                                    name: String = "allreduce(same on all ranks)") throws {
        var v = [value, value == Int.min ? Int.max : -value]
        try v.withUnsafeMutableBufferPointer { try allreduce($0, .max, name: name) }
        guard v[0] == -v[1] else {
            throw CommunicatorError(collective: name,
                                    message: "\(what) differs between ranks (this rank \(rank): \(value), largest \(v[0]), smallest \(-v[1]))")
        }
    }
}
