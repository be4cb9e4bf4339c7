// bench-allreduce: times the gradient allreduce for the MiniLM-L6 gradient (~91 MB): one call in
// place versus 25 MB buckets; then a simulated backward (sgemm per layer, backward order) alone and
// followed by the allreduce. (An overlapped variant was measured here and removed: docs/distributed.md.)
//   mpirun -np 2 csslm-mpitest bench-allreduce [--reps 5] [--tokens 512]
import CBLAS
import CSSLM
import Foundation

/// Flat-buffer ranges of all-MiniLM-L6-v2 (BERT, vocab 30522, hidden 384, intermediate 1536, 6
/// layers) in the encoder's order, plus a 2-class head; the index of each layer's first range.
func miniLMRanges() -> (ranges: [Range<Int>], layerStarts: [Int]) {
    let h = 384, i = 1536
    var sizes = [30522 * h, 512 * h, 2 * h, h, h]
    var layerStarts = [0]
    for _ in 0..<6 {
        layerStarts.append(sizes.count)
        sizes += [h * h, h * h, h * h, h, h, h, h * h, h, h, h, i * h, i, h * i, h, h, h]
    }
    layerStarts.append(sizes.count)
    sizes += [2 * h, 2]
    var ranges: [Range<Int>] = [], at = 0
    for s in sizes {
        ranges.append(at..<(at + s))
        at += s
    }
    return (ranges, layerStarts)
}

func benchAllreduceScenario(_ comm: Communicator) throws -> [String: Any] {
    let reps = option("--reps").flatMap(Int.init) ?? 5
    let tokens = option("--tokens").flatMap(Int.init) ?? 512
    let (ranges, layerStarts) = miniLMRanges()
    let total = ranges.last!.upperBound
    let grads = UnsafeMutableBufferPointer<Float>.allocate(capacity: total)
    defer { grads.deallocate() }
    grads.initialize(repeating: Float(comm.rank + 1) * 1e-3)
    let local = LocalStepTotals(lossSum: 1, exampleCount: 16)

    /// Median milliseconds of `body` over `reps` runs, each after a barrier, slowest rank's view.
    func time(_ label: String, _ body: () throws -> Void) throws -> Double {
        var samples: [Double] = []
        for _ in 0..<reps {
            try comm.barrier(name: "barrier(bench \(label))")
            let t0 = Date()
            try body()
            var ms = [Date().timeIntervalSince(t0) * 1000]
            try ms.withUnsafeMutableBufferPointer { try comm.allreduce($0, .max, name: "allreduce(bench time)") }
            samples.append(ms[0])
        }
        return samples.sorted()[samples.count / 2]
    }

    let blocking = try GradientAllreducer(communicator: comm, parameterRanges: ranges, averaging: .sum)

    var report: [String: Any] = ["megabytes": Double(total * 4) / 1e6, "reps": reps, "buckets": blocking.buckets.count]
    report["single_call_ms"] = try time("single call") { try comm.allreduce(grads, .sum, name: "allreduce(whole buffer)") }
    report["bucketed_blocking_ms"] = try time("bucketed") { _ = try blocking.allreduce(grads, local: local) }

    // Simulated backward: per layer 6 sgemms [tokens, 384] × [384, 1536] (about a layer's backward
    // FLOPs), layers last to first, then the embeddings (one sgemm).
    let m = tokens, k = 384, n = 1536
    let a = [Float](repeating: 0.01, count: m * k), b = [Float](repeating: 0.02, count: k * n)
    var c = [Float](repeating: 0, count: m * n)
    func layerBackward(gemms: Int) {
        for _ in 0..<gemms {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                        1, a, Int32(k), b, Int32(n), 0, &c, Int32(n))
        }
    }
    /// Backward over the layers in reverse.
    func backward() {
        for _ in (1..<(layerStarts.count - 1)).reversed() { layerBackward(gemms: 6) }
        layerBackward(gemms: 1)
    }
    report["tokens"] = tokens
    report["backward_only_ms"] = try time("compute") { backward() }
    report["backward_then_allreduce_ms"] = try time("sequential") {
        backward()
        _ = try blocking.allreduce(grads, local: local)
    }
    return report
}
