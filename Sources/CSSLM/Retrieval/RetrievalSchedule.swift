// When the prototype retriever re-encodes the pool with the current encoder.
// Re-encoding is a round of collectives (the all-gather of the vectors), so whether it happens must
// never be a rank-local decision (docs/design.md#rank-0-decides): rank 0 decides, `agree` broadcasts it, and
// every rank records the same refresh step. The state is two integers, saved in checkpoints.

/// Re-encode the pool every `refreshEvery` optimizer steps (0: never; the stage-2 vectors serve
/// the whole of stage 3, as with the faithful scorer).
///
/// ```swift
/// var schedule = RetrievalSchedule(refreshEvery: 50)
/// if try schedule.agreeOnRefresh(step: step, communicator: comm) {
///     let vectors = try encoder.encode(pool.encodings, communicator: comm)
///     scorer = PrototypeScorer(documents: vectors, prototypes: try currentPrototypes(), lambda: 1)
/// }
/// ```
public struct RetrievalSchedule: Codable, Equatable, Sendable {
    public var refreshEvery: Int
    /// The step whose encoder produced the vectors in use (stage 2's vectors are those of step 0,
    /// the encoder stage 3 starts from).
    public var lastRefreshStep: Int

    public init(refreshEvery: Int, lastRefreshStep: Int = 0) {
        precondition(refreshEvery >= 0, "refreshEvery must not be negative")
        self.refreshEvery = refreshEvery
        self.lastRefreshStep = lastRefreshStep
    }

    /// Rank 0's rule: due once `refreshEvery` steps have passed since the last refresh.
    public func isDue(step: Int) -> Bool {
        refreshEvery > 0 && step - lastRefreshStep >= refreshEvery
    }

    /// Rank 0 decides for `step` and broadcasts; every rank gets the same answer and, on a refresh,
    /// records `step`. Call it on every rank at the same point of every step, before retrieval.
    public mutating func agreeOnRefresh(step: Int, communicator: Communicator) throws -> Bool {
        let mine = communicator.rank == 0 && isDue(step: step) ? 1 : 0
        let refresh = try communicator.agree(mine, name: "broadcast(retrieval refresh at step \(step))") == 1
        if refresh { lastRefreshStep = step }
        return refresh
    }
}
