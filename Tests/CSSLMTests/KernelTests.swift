// Kernels against independent references: libm for exp/erf, the definition of dropout, the
// split-batch invariant (the gradient of a batch equals the sum over its parts, dropout included),
// and the encoder's shortcuts (selected last-layer rows, inference without kept activations)
// against its full computation.
import Foundation
import XCTest
@testable import CSSLM

final class KernelTests: XCTestCase {
    func testVectorExpAndErfMatchLibmAcrossTheirRange() {
        var worstExp: Float = 0, worstErf: Float = 0
        var x: Float = -87
        while x < 88 {
            let ref = expf(x)
            worstExp = max(worstExp, abs(fastExp(x) - ref) / ref)
            x += 0.01
        }
        x = -6
        while x < 6 {
            worstErf = max(worstErf, abs(fastErf(x) - erff(x)))
            x += 0.001
        }
        print("exp8 max relative error \(worstExp), erf8 max absolute error \(worstErf)")
        XCTAssertLessThan(worstExp, 4e-7)
        XCTAssertLessThan(worstErf, 6e-7)  // A&S 7.1.26: 1.5e-7, plus float rounding
        XCTAssertEqual(fastExp(-1e30), 0)
        XCTAssertEqual(fastExp(attentionMaskValue), 0)
    }

    func testGeluMatchesItsErfDefinitionAndBackwardMatchesFiniteDifferences() {
        let xs: [Float] = (0..<37).map { Float($0) * 0.3 - 5.4 }
        var y = [Float](repeating: 0, count: xs.count), d = [Float](repeating: 1, count: xs.count)
        geluForward(y: &y, x: xs, count: xs.count)
        geluBackward(dx: &d, dy: d, x: xs, count: xs.count)
        for (i, v) in xs.enumerated() {
            let dv = Double(v)
            let ref = 0.5 * dv * (1 + erf(dv / 2.0.squareRoot()))
            XCTAssertEqual(Double(y[i]), ref, accuracy: 1e-6)
            let h = 1e-3
            let f = { (z: Double) in 0.5 * z * (1 + erf(z / 2.0.squareRoot())) }
            XCTAssertEqual(Double(d[i]), (f(dv + h) - f(dv - h)) / (2 * h), accuracy: 1e-5, "gelu' at \(v)")
        }
    }

    func testDropoutMaskDependsOnlyOnItsKeyAndKeepsTheExpectation() {
        let n = 20_000, p: Float = 0.1
        let ctx = DropoutContext(probability: p, seed: 42, step: 3, exampleIndex: [7, 8])
        var x = [Float](repeating: 1, count: 2 * n)
        dropoutApply(&x, rows: 1, cols: n, context: ctx, site: 5)
        let dropped = x.filter { $0 == 0 }.count
        XCTAssertEqual(Double(dropped) / Double(2 * n), Double(p), accuracy: 0.01)
        XCTAssertTrue(x.allSatisfy { $0 == 0 || abs($0 - 1 / (1 - p)) < 1e-6 })
        // Example 8 alone, at row 0 of another batch: the same mask as at row 1 above.
        var alone = [Float](repeating: 1, count: n)
        dropoutApply(&alone, rows: 1, cols: n, context: DropoutContext(probability: p, seed: 42, step: 3, exampleIndex: [8]), site: 5)
        XCTAssertEqual(alone, Array(x[n...]))
        // Another step, site or seed: another mask.
        for other in [DropoutContext(probability: p, seed: 42, step: 4, exampleIndex: [8]),
                      DropoutContext(probability: p, seed: 43, step: 3, exampleIndex: [8])] {
            var y = [Float](repeating: 1, count: n)
            dropoutApply(&y, rows: 1, cols: n, context: other, site: 5)
            XCTAssertNotEqual(y, alone)
        }
    }

    /// With dropout on, one batch of 4 gives the same gradient as its two halves (each with its
    /// global example indices and loss scaled by 2/4): the property W ranks rely on.
    func testGradientOfABatchEqualsTheSumOverItsPartsWithDropout() throws {
        let config = BertConfig(vocabSize: 50, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
                                intermediateSize: 32, maxPositionEmbeddings: 8)
        let model = BertClassifier(config: config, numLabels: 3, seed: 5)
        let seqs: [[Int32]] = [[2, 11, 12, 3], [2, 13, 3], [2, 14, 15, 16, 3, 17, 3], [2, 3]]
        let labels = [0, 2, 1, 2]
        let full = try TokenBatch(sequences: seqs, sepId: 3)
        let drop = { (idx: [Int]) in DropoutContext(probability: 0.2, seed: 9, step: 1, exampleIndex: idx) }
        model.parameters.grads.zero()
        let lossFull = try model.lossAndGradient(full, labels: labels, dropout: drop([0, 1, 2, 3]))
        let whole = model.parameters.grads.toArray()
        model.parameters.grads.zero()
        var lossParts: Float = 0
        for part in [0..<2, 2..<4] {
            // Each part padded to the full batch's length, as every rank pads to one global length.
            var b = try TokenBatch(sequences: Array(seqs[part]) + [[Int32](repeating: 0, count: full.seqLen - 1) + [3]], sepId: 3)
            b = TokenBatch(batch: 2, seqLen: b.seqLen, ids: Array(b.ids[0..<(2 * b.seqLen)]),
                           typeIds: Array(b.typeIds[0..<(2 * b.seqLen)]), mask: Array(b.mask[0..<(2 * b.seqLen)]),
                           sepPositions: Array(b.sepPositions[0..<2]))
            lossParts += 0.5 * (try model.lossAndGradient(b, labels: Array(labels[part]), dropout: drop(Array(part)), lossScale: 0.5))
        }
        XCTAssertEqual(lossFull, lossParts, accuracy: 1e-5)
        assertClose("split-batch gradient", model.parameters.grads.toArray(), whole, tolerance: 1e-5)
    }

    /// The last layer on the [CLS] and [SEP] rows alone gives the full layer's sentence features,
    /// loss and every gradient (dropout on, padded batch); inference without kept activations
    /// gives the same logits as a forward that keeps them.
    func testSentenceRowsLastLayerAndInferenceForwardMatchTheFullComputation() throws {
        let config = BertConfig(vocabSize: 50, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
                                intermediateSize: 32, maxPositionEmbeddings: 8)
        let model = BertClassifier(config: config, numLabels: 3, seed: 5)
        let batch = try TokenBatch(sequences: [[2, 11, 12, 3], [2, 13, 3], [2, 14, 15, 16, 3, 17, 3], [2, 3]], sepId: 3)
        let labels = [0, 2, 1, 2]
        let drop = DropoutContext(probability: 0.2, seed: 9, step: 1, exampleIndex: [4, 5, 6, 7])
        func run(_ rows: EncoderActivations.LastLayerRows) throws -> (loss: Float, grads: [Float], t: [Float], e: [Float]) {
            model.encoderActivations.lastLayerRows = rows
            model.parameters.grads.zero()
            let loss = try model.lossAndGradient(batch, labels: labels, dropout: drop)
            var t = [Float](repeating: 0, count: 4 * 16), e = t
            model.sentenceFeatures(batch, t: &t, e: &e)
            return (loss, model.parameters.grads.toArray(), t, e)
        }
        let full = try run(.all), selected = try run(.sentenceFeatures)
        XCTAssertEqual(full.loss, selected.loss, accuracy: 1e-6)
        assertClose("t(x)", selected.t, full.t, tolerance: 1e-6)
        assertClose("e(x)", selected.e, full.e, tolerance: 1e-6)
        assertClose("gradient", selected.grads, full.grads, tolerance: 1e-5)

        model.encoderActivations.lastLayerRows = .all
        let kept = try model.logits(batch)
        model.encoder.forward(batch, params: model.parameters.values.base, acts: model.encoderActivations,
                              dropout: .off(batch: 4), keepForBackward: false)
        model.headForward(batch, dropout: .off(batch: 4))
        assertClose("logits without kept activations",
                    Array(UnsafeBufferPointer(start: model.headActivations.logits.base, count: 12)), kept, tolerance: 1e-6)
    }

    /// Mean-pooled features with the linear head on t/|t|: every parameter gradient the backward
    /// computes is the derivative of the loss (central differences in Double over a padded batch),
    /// and mean pooling ignores the padding.
    func testMeanFeaturesAndLinearHeadGradientsAreTheLossDerivative() throws {
        let config = BertConfig(vocabSize: 50, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
                                intermediateSize: 32, maxPositionEmbeddings: 8)
        let model = BertClassifier(config: config, numLabels: 3, seed: 7, features: .mean, classifier: .linear)
        let batch = try TokenBatch(sequences: [[2, 11, 12, 3], [2, 13, 3], [2, 14, 15, 16, 3, 17, 3]], sepId: 3)
        let labels = [0, 2, 1]
        let off = DropoutContext.off(batch: 3)
        model.parameters.grads.zero()
        _ = try model.lossAndGradient(batch, labels: labels, dropout: off)
        let grads = model.parameters.grads.toArray()
        func loss() throws -> Double {
            try model.forward(batch, dropout: off)
            let c = 3, z = Array(UnsafeBufferPointer(start: model.headActivations.logits.base, count: 9))
            return (0..<3).reduce(0.0) { acc, r in
                let row = z[(r * c)..<((r + 1) * c)].map(Double.init), m = row.max()!
                return acc + (log(row.reduce(0) { $0 + exp($1 - m) }) + m - row[labels[r]]) / 3
            }
        }
        // A few entries of every tensor, the embeddings and the head included.
        var checked = 0
        for spec in model.parameters.specs {
            for k in Set([0, spec.count / 2, spec.count - 1]) {
                let i = spec.offset + k
                let keep = model.parameters.values.base[i], eps: Float = 1e-2
                model.parameters.values.base[i] = keep + eps
                let up = try loss()
                model.parameters.values.base[i] = keep - eps
                let down = try loss()
                model.parameters.values.base[i] = keep
                let numeric = (up - down) / Double(2 * eps)
                XCTAssertEqual(Double(grads[i]), numeric, accuracy: 2e-3 + 2e-2 * abs(numeric), "\(spec.name)[\(k)]")
                checked += 1
            }
        }
        print("[mean/linear] \(checked) gradient entries match central differences")
        // Padding does not enter the mean: the same sentence alone gives the same features.
        var t = [Float](repeating: 0, count: 3 * 16), e = t
        try model.forward(batch, dropout: off)
        model.sentenceFeatures(batch, t: &t, e: &e)
        let alone = try TokenBatch(sequences: [[2, 13, 3]], sepId: 3)
        var t1 = [Float](repeating: 0, count: 16), e1 = t1
        try model.forward(alone, dropout: .off(batch: 1))
        model.sentenceFeatures(alone, t: &t1, e: &e1)
        assertClose("mean features of a padded row", Array(t[16..<32]), t1, tolerance: 1e-5)
    }

    func testLinearScheduleWarmsUpThenDecaysToZero() {
        let s = LinearSchedule(warmupFraction: 0.1, totalSteps: 100)
        XCTAssertEqual(s.multiplier(0), 0)
        XCTAssertEqual(s.multiplier(5), 0.5)
        XCTAssertEqual(s.multiplier(10), 1)
        XCTAssertEqual(s.multiplier(55), 0.5)
        XCTAssertEqual(s.multiplier(100), 0)
    }
}
