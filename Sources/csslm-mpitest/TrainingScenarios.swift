// Scenarios for the training-step pieces: the gathered contrastive losses' gradients, the bucketed
// gradient allreduce with its side block and NaN decision, and the global sampler. Each compares
// the distributed result with a single-process computation over the whole (concatenated) batch.
import CSSLM
import Foundation

// MARK: - Gather-with-gradient

/// A supervised-contrastive loss over anchor rows `anchors` against all N rows of `features` [N, D]:
/// ℓ_i = −(1/|P_i|) Σ_{p∈P_i} log softmax_{j≠i}(f_i·f_j / τ)_p, with P_i the other rows of i's
/// label (anchors without one contribute nothing). Returns Σ_i ℓ_i and its gradient [N, D].
/// Written in Double as the reference; the distributed run uses it on its own anchors only.
func pairLoss(features f: [Double], labels: [Int], width d: Int, anchors: Range<Int>,
              temperature tau: Double) -> (loss: Double, gradient: [Double]) {
    let n = labels.count
    var loss = 0.0
    var grad = [Double](repeating: 0, count: n * d)
    var logits = [Double](repeating: 0, count: n)
    for i in anchors {
        let positives = (0..<n).filter { $0 != i && labels[$0] == labels[i] }
        guard !positives.isEmpty else { continue }
        var top = -Double.infinity
        for j in 0..<n where j != i {
            var dot = 0.0
            for k in 0..<d { dot += f[i * d + k] * f[j * d + k] }
            logits[j] = dot / tau
            top = max(top, logits[j])
        }
        var denominator = 0.0
        for j in 0..<n where j != i { denominator += exp(logits[j] - top) }
        let logDenominator = log(denominator) + top
        let share = 1 / Double(positives.count)
        for p in positives { loss -= share * (logits[p] - logDenominator) }
        // dℓ/dz_j = softmax_j − [j ∈ P]/|P|; z_j = f_i·f_j/τ.
        for j in 0..<n where j != i {
            var c = exp(logits[j] - logDenominator)
            if labels[j] == labels[i] { c -= share }
            c /= tau
            for k in 0..<d {
                grad[i * d + k] += c * f[j * d + k]
                grad[j * d + k] += c * f[i * d + k]
            }
        }
    }
    return (loss, grad)
}

/// Features and labels of a global batch split over ranks evenly and unevenly (one rank empty
/// at W ≥ 3): the gradient each rank gets back for its rows equals the single-process gradient.
func gatherGradientScenario(_ comm: Communicator) throws -> [String: Any] {
    let checks = Checks(rank: comm.rank)
    let r = comm.rank, w = comm.size
    let d = 8, tau = 0.5
    var report: [String: Any] = [:]
    let patterns: [(String, [Int])] = [
        ("even", [Int](repeating: 4, count: w)),
        ("uneven", (0..<w).map { w >= 3 && $0 == 1 ? 0 : 4 + 3 * $0 }),
    ]
    for (pattern, counts) in patterns {
        let n = counts.reduce(0, +)
        let gather = try FeatureGather.exchangingCounts(communicator: comm, localRows: counts[r], width: d)
        try checks.expect(gather.rowsPerRank == counts, "exchanged counts \(gather.rowsPerRank), expected \(counts)")
        let rows = gather.localRows
        let allFeatures = uniformValues(count: n * d, seed: 11, stream: n)
        let allLabels = (0..<n).map { ($0 * 7) % 3 }

        let localFeatures = Array(allFeatures[(rows.lowerBound * d)..<(rows.upperBound * d)])
        let localLabels = Array(allLabels[rows])
        var gathered = [Float](repeating: .nan, count: n * d)
        var gatheredLabels = [Int](repeating: -1, count: n)
        try localFeatures.withUnsafeBufferPointer { l in
            try gathered.withUnsafeMutableBufferPointer { try gather.gather(l, into: $0) }
        }
        try localLabels.withUnsafeBufferPointer { l in
            try gatheredLabels.withUnsafeMutableBufferPointer { try gather.gatherLabels(l, into: $0) }
        }
        try checks.expect(gathered == allFeatures && gatheredLabels == allLabels, "\(pattern): gathered batch differs")

        // This rank's loss: its anchors against all gathered columns; the whole gradient goes back.
        let mine = pairLoss(features: gathered.map(Double.init), labels: gatheredLabels, width: d,
                            anchors: rows, temperature: tau)
        let gatheredGradient = mine.gradient.map(Float.init)
        var localGradient = [Float](repeating: .nan, count: rows.count * d)
        try gatheredGradient.withUnsafeBufferPointer { g in
            try localGradient.withUnsafeMutableBufferPointer { try gather.scatterGradient(g, into: $0) }
        }
        var lossSum = [mine.loss]
        try lossSum.withUnsafeMutableBufferPointer { try comm.allreduce($0, .sum, name: "allreduce(loss)") }

        // Reference: one process, every anchor, the concatenated batch.
        let reference = pairLoss(features: allFeatures.map(Double.init), labels: allLabels, width: d,
                                 anchors: 0..<n, temperature: tau)
        let referenceBlock = Array(reference.gradient[(rows.lowerBound * d)..<(rows.upperBound * d)])
        var scale = reference.gradient.map(abs).max() ?? 0
        if scale == 0 { scale = 1 }
        let blockError = zip(localGradient, referenceBlock).map { abs(Double($0) - $1) }.max() ?? 0

        // The library's SupCon (what the trainer runs), the same way: own anchors × gathered rows,
        // the gathered gradient reduce-scattered, against one process over the concatenated batch.
        // The last row gets a label of its own, so one anchor has no positive (masked).
        var supconLabels = gatheredLabels
        supconLabels[n - 1] = 99
        let supcon = try supConGatheredVsConcatenated(gather, gathered: gathered, all: allFeatures, labels: supconLabels,
                                                  width: d, temperature: Float(tau))
        var supconLoss = [Double(supcon.local.loss)]
        try supconLoss.withUnsafeMutableBufferPointer { try comm.allreduce($0, .sum, name: "allreduce(SupCon loss)") }

        var errors = [blockError / scale, abs(lossSum[0] - reference.loss) / max(abs(reference.loss), 1e-30),
                      supcon.gradientError,
                      abs(supconLoss[0] - Double(supcon.reference.loss)) / max(abs(Double(supcon.reference.loss)), 1e-30)]
        try errors.withUnsafeMutableBufferPointer { try comm.allreduce($0, .max, name: "allreduce(max error)") }
        try checks.expect(errors[0] <= 1e-5, "\(pattern): gradient relative error \(errors[0]) > 1e-5")
        try checks.expect(errors[1] <= 1e-5, "\(pattern): loss relative error \(errors[1]) > 1e-5")
        try checks.expect(errors[2] <= 1e-5, "\(pattern): SupCon gradient relative error \(errors[2]) > 1e-5")
        try checks.expect(errors[3] <= 1e-5, "\(pattern): SupCon loss relative error \(errors[3]) > 1e-5")
        try checks.expect(supcon.reference.maskedAnchors == 1, "\(pattern): \(supcon.reference.maskedAnchors) masked anchors, expected 1")
        report[pattern] = ["counts": counts, "gradient_rel_error": errors[0], "loss_rel_error": errors[1],
                           "loss": lossSum[0], "reference_loss": reference.loss,
                           "supcon_gradient_rel_error": errors[2], "supcon_loss_rel_error": errors[3],
                           "supcon_loss": supconLoss[0], "supcon_masked_anchors": supcon.reference.maskedAnchors]
    }
    report["checks"] = checks.count
    return report
}

/// The library's `supConLoss` on this rank's anchors of the gathered set (its gradient
/// reduce-scattered back), and on every anchor of the concatenated set in one process.
struct SupConComparison {
    /// This rank's share of the loss, and the gradient of the global loss for its rows.
    var local: SupConResult
    var localGradient: [Float]
    var reference: SupConResult
    /// The reference gradient's block of this rank's rows, and max |reference gradient| over all rows.
    var referenceBlock: [Float]
    var referenceScale: Float

    /// max |scattered − reference| over this rank's rows, relative to the reference's largest entry.
    var gradientError: Double {
        Double(zip(localGradient, referenceBlock).map { abs($0 - $1) }.max() ?? 0) / Double(max(referenceScale, .leastNormalMagnitude))
    }
}

func supConGatheredVsConcatenated(_ gather: FeatureGather, gathered: [Float], all: [Float], labels: [Int],
                                  width d: Int, temperature tau: Float) throws -> SupConComparison {
    let n = labels.count, rows = gather.localRows
    var dGathered = [Float](repeating: 0, count: n * d)
    let local = supConLoss(features: gathered, labels: labels, width: d, anchors: rows, temperature: tau, gradient: &dGathered)
    var localGradient = [Float](repeating: .nan, count: rows.count * d)
    try dGathered.withUnsafeBufferPointer { g in
        try localGradient.withUnsafeMutableBufferPointer { try gather.scatterGradient(g, into: $0) }
    }
    var dAll = [Float](repeating: 0, count: n * d)
    let reference = supConLoss(features: all, labels: labels, width: d, anchors: 0..<n, temperature: tau, gradient: &dAll)
    return SupConComparison(local: local, localGradient: localGradient, reference: reference,
                            referenceBlock: Array(dAll[(rows.lowerBound * d)..<(rows.upperBound * d)]),
                            referenceScale: dAll.map(abs).max() ?? 0)
}

// MARK: - Bucketed gradient allreduce

/// Uneven parameter ranges with a gap, tiny buckets (100 floats) and carrier (10 floats): the
/// reduced buffer, loss, count, extra sums and norm equal a single-process sum over all ranks'
/// data, summed and averaged; a NaN or a flag on one rank makes every
/// rank take the same skip decision.
func bucketedAllreduceScenario(_ comm: Communicator) throws -> [String: Any] {
    let checks = Checks(rank: comm.rank)
    let r = comm.rank, w = comm.size
    var ranges: [Range<Int>] = []
    var at = 0
    for (i, size) in [5, 130, 7, 64, 1, 300, 33].enumerated() {
        if i == 4 { at += 11 }  // a gap the reducer must leave alone
        ranges.append(at..<(at + size))
        at += size
    }
    let total = at + 4
    let gapValue: (Int) -> Float = { Float(1000 + $0) }

    func gradient(of q: Int) -> [Float] {
        var g = [Float](repeating: gapValue(q), count: total)
        let values = uniformValues(count: total, seed: 5, stream: q)
        for range in ranges { for i in range { g[i] = values[i] } }
        return g
    }
    func totals(of q: Int) -> LocalStepTotals {
        LocalStepTotals(lossSum: 1.5 + Double(q), exampleCount: 3 + q, extraSums: [Double(q), 2 * Double(q)])
    }
    let all = (0..<w).map(gradient(of:))
    let count = (0..<w).map { totals(of: $0).exampleCount }.reduce(0, +)

    var report: [String: Any] = [:]
    for averaging in [GradientAveraging.meanOverExamples, .sum] {
        do {
            let label = averaging == .sum ? "sum" : "mean"
            let reducer = try GradientAllreducer(communicator: comm, parameterRanges: ranges, bucketBytes: 400,
                                                 carrierBytes: 40, averaging: averaging, extraSumCount: 2)
            try checks.expect(reducer.buckets[0].count == 10, "\(label): carrier holds \(reducer.buckets[0].count)")
            let covered = reducer.buckets.flatMap { $0.spans.flatMap { Array($0) } }.sorted()
            try checks.expect(covered == ranges.flatMap { Array($0) }, "\(label): buckets do not tile the ranges")
            let divisor = averaging == .sum ? 1.0 : Double(count)
            var expected = (0..<total).map { i in all.reduce(0.0) { $0 + Double($1[i]) } / divisor }
            for i in 0..<total where !ranges.contains(where: { $0.contains(i) }) { expected[i] = Double(gapValue(r)) }
            let expectedNorm = ranges.flatMap { Array($0) }.map { expected[$0] * expected[$0] }.reduce(0, +).squareRoot()

            for repeatIndex in 0..<2 {
                var g = gradient(of: r)
                let result = try g.withUnsafeMutableBufferPointer { try reducer.allreduce($0, local: totals(of: r)) }
                let what = "\(label) #\(repeatIndex)"
                _ = try checks.expectClose(g.map(Double.init), expected, relative: 1e-6, "\(what) gradient")
                try checks.expect(result.exampleCount == count, "\(what) count \(result.exampleCount)")
                try checks.expect(abs(result.lossSum - (0..<w).map { 1.5 + Double($0) }.reduce(0, +)) < 1e-5,
                                  "\(what) loss \(result.lossSum)")
                try checks.expect(result.extraSums == [Double(w * (w - 1) / 2), Double(w * (w - 1))],
                                  "\(what) extras \(result.extraSums)")
                try checks.expect(abs(result.gradientNorm - expectedNorm) <= 1e-6 * expectedNorm,
                                  "\(what) norm \(result.gradientNorm), expected \(expectedNorm)")
                try checks.expect(!result.nonFinite && result.nonFiniteRanks == 0, "\(what) flagged non-finite")
            }
            report[label] = ["buckets": reducer.buckets.count]
        }
    }

    // One rank's NaN, infinity or flag: every rank reaches the same (skip) decision.
    enum StepDecision: Int { case proceed, skip }
    let faults: [(String, Int, (inout [Float], inout LocalStepTotals) -> Void)] = [
        ("nan-gradient", w - 1, { g, _ in g[ranges[3].lowerBound + 2] = .nan }),
        ("inf-gradient", 0, { g, _ in g[ranges[6].lowerBound] = .infinity }),
        ("flag", w - 1, { _, t in t.nonFinite = true }),
        ("nan-loss", w - 1, { _, t in t.lossSum = .nan }),
    ]
    do {
        let reducer = try GradientAllreducer(communicator: comm, parameterRanges: ranges, bucketBytes: 400,
                                             carrierBytes: 40, extraSumCount: 2)
        for (name, faultyRank, inject) in faults {
            var g = gradient(of: r)
            var local = totals(of: r)
            if r == faultyRank { inject(&g, &local) }
            let result = try g.withUnsafeMutableBufferPointer { try reducer.allreduce($0, local: local) }
            let decision: StepDecision = result.nonFinite ? .skip : .proceed
            try checks.expect(decision == .skip, "\(name): rank \(r) decided \(decision)")
            try comm.checkSameOnAllRanks(decision.rawValue, what: "the skip decision after \(name)")
            if name == "flag" { try checks.expect(result.nonFiniteRanks == 1, "flag: \(result.nonFiniteRanks) ranks") }
        }
    }
    report["checks"] = checks.count
    return report
}

// MARK: - Global sampler

/// Each rank's slice, gathered, is the global batch; batches are consecutive (wrapping) per-epoch
/// permutations; resuming from a saved position continues identically. Rank 0 reports the batches
/// so the test can compare W = 1, 2, 3.
func samplerScenario(_ comm: Communicator) throws -> [String: Any] {
    let checks = Checks(rank: comm.rank)
    let r = comm.rank, w = comm.size
    var report: [String: Any] = [:]
    for (n, b, steps) in [(10, 7, 5), (5, 2, 4), (3, 8, 2)] {
        let key = "n\(n)-b\(b)"
        var sampler = GlobalSampler(datasetSize: n, globalBatchSize: b, seed: 1234)
        let resumeStep = steps / 2
        var saved = sampler.position
        var batches: [[Int]] = []
        for step in 0..<steps {
            if step == resumeStep { saved = sampler.position }
            let batch = sampler.nextBatch()
            let local = batch.slice(rank: r, worldSize: w)
            let counts = batch.rowsPerRank(worldSize: w)
            // B rows, or the rest of the epoch (its last batch is short).
            let m = batch.count
            try checks.expect(m == min(b, n - (step == 0 ? 0 : batches.reduce(0) { $0 + $1.count }) % n) && counts.reduce(0, +) == m
                              && counts.max()! - counts.min()! <= 1, "\(key): counts \(counts)")
            try checks.expect(local.globalRows == counts[..<r].reduce(0, +)..<counts[...r].reduce(0, +),
                              "\(key): rows \(local.globalRows) for counts \(counts)")
            var indices = [Int](repeating: -1, count: m), rows = [Int](repeating: -1, count: m)
            try local.datasetIndices.withUnsafeBufferPointer { l in
                try indices.withUnsafeMutableBufferPointer { try comm.allgatherv(l, into: $0, counts: counts) }
            }
            try Array(local.globalRows).withUnsafeBufferPointer { l in
                try rows.withUnsafeMutableBufferPointer { try comm.allgatherv(l, into: $0, counts: counts) }
            }
            try checks.expect(indices == batch.datasetIndices, "\(key): gathered slices \(indices) != \(batch.datasetIndices)")
            try checks.expect(rows == Array(0..<m), "\(key): gathered rows \(rows)")
            batches.append(indices)
        }
        // Independent reference: the batches are the epochs' permutations, one after another.
        let stream = batches.flatMap { $0 }
        let epochs = (stream.count + n - 1) / n
        let permutations = (0..<epochs).flatMap { GlobalSampler.permutation(count: n, seed: 1234, epoch: $0) }
        try checks.expect(stream == Array(permutations.prefix(stream.count)), "\(key): batches are not consecutive epochs")
        for e in 0..<epochs {
            try checks.expect(GlobalSampler.permutation(count: n, seed: 1234, epoch: e).sorted() == Array(0..<n),
                              "\(key): epoch \(e) is not a permutation")
        }
        // Resume from the position saved before step `resumeStep`.
        var resumed = GlobalSampler(datasetSize: n, globalBatchSize: b, seed: 1234, position: saved)
        for step in resumeStep..<steps {
            try checks.expect(resumed.nextBatch().datasetIndices == batches[step], "\(key): resumed batch \(step) differs")
        }
        try checks.expect(resumed.position == sampler.position, "\(key): resumed position differs")
        report[key] = batches
    }
    report["checks"] = checks.count
    return report
}
