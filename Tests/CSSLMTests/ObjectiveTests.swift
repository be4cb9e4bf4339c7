// Losses against PyTorch on the same inputs (fixtures from scripts/make_reference.py), and the
// split-rows invariant the distributed pair and SupCon losses rely on.
import Foundation
import XCTest
@testable import CSSLM

final class ObjectiveTests: XCTestCase {
    /// The pair loss computed in row blocks (as W ranks would: local rows × all columns, column
    /// gradients summed) equals PyTorch's loss and gradients over the whole set, for any split.
    func testPairLossAndGradientsMatchPyTorchForAnyRowSplit() throws {
        let fx = try SafetensorsFile(url: try TestPaths.fixture("pair_loss.safetensors"))
        let e = try fx.floats("e"), t = try fx.floats("t"), w = try fx.floats("weight"), b = try fx.floats("bias")
        let labels = try fx.ints("labels")
        let n = labels.count, h = e.count / n
        for split in [[0..<n], [0..<2, 2..<n], [0..<1, 1..<4, 4..<n]] {
            var loss: Float = 0
            var dE = [Float](repeating: 0, count: n * h), dT = dE
            var dColE = dE, dColT = dE
            var dW = [Float](repeating: 0, count: w.count), dB: [Float] = [0, 0]
            for rows in split {
                var dRowE = [Float](repeating: 0, count: rows.count * h), dRowT = dRowE
                let r = pairLoss(rowE: Array(e[(rows.lowerBound * h)..<(rows.upperBound * h)]),
                                 rowT: Array(t[(rows.lowerBound * h)..<(rows.upperBound * h)]),
                                 rowLabels: Array(labels[rows]), colE: e, colT: t, colLabels: labels, hidden: h,
                                 weight: w, bias: b, pairCount: n * n, dRowE: &dRowE, dRowT: &dRowT,
                                 dColE: &dColE, dColT: &dColT, dWeight: &dW, dBias: &dB)
                loss += r.loss
                for k in 0..<(rows.count * h) { dE[rows.lowerBound * h + k] += dRowE[k]; dT[rows.lowerBound * h + k] += dRowT[k] }
            }
            for k in 0..<(n * h) { dE[k] += dColE[k]; dT[k] += dColT[k] }
            let tag = "split \(split.map(\.count))"
            assertClose("pair loss, \(tag)", [loss], try fx.floats("loss"), tolerance: 1e-5)
            assertClose("d e, \(tag)", dE, try fx.floats("grad.e"), tolerance: 1e-4)
            assertClose("d t, \(tag)", dT, try fx.floats("grad.t"), tolerance: 1e-4)
            assertClose("d W, \(tag)", dW, try fx.floats("grad.weight"), tolerance: 1e-4)
            assertClose("d b, \(tag)", dB, try fx.floats("grad.bias"), tolerance: 1e-4)
        }
    }

    /// L_task (taskPair on [t_i; t_j]) and L_dom (domainPair on [e_q; e_d], labelled pairs as
    /// positives, corpus negatives) against PyTorch, rows split in two as two ranks would.
    func testTaskAndDomainPairLossesMatchPyTorch() throws {
        let fx = try SafetensorsFile(url: try TestPaths.fixture("task_domain_loss.safetensors"))
        let t = try fx.floats("t"), e = try fx.floats("e"), neg = try fx.floats("negatives")
        let labels = try fx.ints("labels")
        let n = labels.count, h = t.count / n, negatives = neg.count / h
        var taskLoss: Float = 0, domLoss: Float = 0
        var dT = [Float](repeating: 0, count: n * h), dTCol = dT, dE = dT, dECol = dT
        var dNeg = [Float](repeating: 0, count: neg.count)
        var dTaskW = [Float](repeating: 0, count: 4 * h), dTaskB: [Float] = [0, 0], dDomW = dTaskW, dDomB: [Float] = [0, 0]
        let taskW = try fx.floats("task.weight"), taskB = try fx.floats("task.bias")
        let domW = try fx.floats("dom.weight"), domB = try fx.floats("dom.bias")
        for rows in [0..<2, 2..<n] {
            let lo = rows.lowerBound * h
            t.withUnsafeBufferPointer { tp in e.withUnsafeBufferPointer { ep in neg.withUnsafeBufferPointer { np in
            dT.withUnsafeMutableBufferPointer { dt in dTCol.withUnsafeMutableBufferPointer { dtc in
            dE.withUnsafeMutableBufferPointer { de in dECol.withUnsafeMutableBufferPointer { dec in dNeg.withUnsafeMutableBufferPointer { dn in
                taskLoss += linearPairLoss(rows: [PairBlock(tp.baseAddress! + lo, weightOffset: 0, gradient: dt.baseAddress! + lo)],
                                           rowCount: rows.count,
                                           columns: [PairBlock(tp.baseAddress!, weightOffset: h, gradient: dtc.baseAddress!)],
                                           columnCount: n, width: h, inputWidth: 2 * h, weight: taskW, bias: taskB, pairCount: n * n,
                                           target: { labels[rows.lowerBound + $0] == labels[$1] ? 1 : 0 },
                                           dWeight: &dTaskW, dBias: &dTaskB).loss
                // Domain: columns are the n labelled e (target 1) then the corpus negatives (target 0).
                let pos = linearPairLoss(rows: [PairBlock(ep.baseAddress! + lo, weightOffset: 0, gradient: de.baseAddress! + lo)],
                                         rowCount: rows.count,
                                         columns: [PairBlock(ep.baseAddress!, weightOffset: h, gradient: dec.baseAddress!)],
                                         columnCount: n, width: h, inputWidth: 2 * h, weight: domW, bias: domB,
                                         pairCount: n * (n + negatives), target: { _, _ in 1 }, dWeight: &dDomW, dBias: &dDomB)
                let negs = linearPairLoss(rows: [PairBlock(ep.baseAddress! + lo, weightOffset: 0, gradient: de.baseAddress! + lo)],
                                          rowCount: rows.count,
                                          columns: [PairBlock(np.baseAddress!, weightOffset: h, gradient: dn.baseAddress!)],
                                          columnCount: negatives, width: h, inputWidth: 2 * h, weight: domW, bias: domB,
                                          pairCount: n * (n + negatives), target: { _, _ in 0 }, dWeight: &dDomW, dBias: &dDomB)
                domLoss += pos.loss + negs.loss
            } } } } } } } }
        }
        for k in 0..<(n * h) { dT[k] += dTCol[k]; dE[k] += dECol[k] }
        assertClose("L_task", [taskLoss], try fx.floats("task.loss"), tolerance: 1e-5)
        assertClose("L_task d t", dT, try fx.floats("task.grad.t"), tolerance: 1e-4)
        assertClose("L_task d W", dTaskW, try fx.floats("task.grad.weight"), tolerance: 1e-4)
        assertClose("L_task d b", dTaskB, try fx.floats("task.grad.bias"), tolerance: 1e-4)
        assertClose("L_dom", [domLoss], try fx.floats("dom.loss"), tolerance: 1e-5)
        assertClose("L_dom d e", dE, try fx.floats("dom.grad.e"), tolerance: 1e-4)
        assertClose("L_dom d negatives", dNeg, try fx.floats("dom.grad.negatives"), tolerance: 1e-4)
        assertClose("L_dom d W", dDomW, try fx.floats("dom.grad.weight"), tolerance: 1e-4)
        assertClose("L_dom d b", dDomB, try fx.floats("dom.grad.bias"), tolerance: 1e-4)
    }

    /// SupCon computed in anchor blocks (as W ranks would: own anchors × all gathered rows, the
    /// gathered gradients summed as the reduce-scatter does) equals PyTorch's loss and gradient,
    /// with the single-member class's anchor masked out of the mean and counted.
    func testSupConLossAndGradientMatchPyTorchForAnyAnchorSplitWithMaskedAnchors() throws {
        let fx = try SafetensorsFile(url: try TestPaths.fixture("supcon_loss.safetensors"))
        let f = try fx.floats("features"), labels = try fx.ints("labels"), tau = try fx.floats("temperature")[0]
        let n = labels.count, d = f.count / n
        for split in [[0..<n], [0..<4, 4..<n], [0..<3, 3..<3, 3..<8, 8..<n]] {
            var loss: Float = 0
            var gradient = [Float](repeating: 0, count: n * d)
            for anchors in split {
                let r = supConLoss(features: f, labels: labels, width: d, anchors: anchors, temperature: tau, gradient: &gradient)
                XCTAssertEqual(r.maskedAnchors, try fx.ints("masked_anchors")[0])
                XCTAssertEqual(r.anchorsWithPositives, n - r.maskedAnchors)
                loss += r.loss
            }
            let tag = "split \(split.map(\.count))"
            assertClose("SupCon loss, \(tag)", [loss], try fx.floats("loss"), tolerance: 1e-5)
            assertClose("SupCon d features, \(tag)", gradient, try fx.floats("grad.features"), tolerance: 1e-4)
        }
        // The masked anchor alone contributes nothing; lossScale scales value and gradient alike.
        var none = [Float](repeating: 0, count: n * d)
        XCTAssertEqual(supConLoss(features: f, labels: labels, width: d, anchors: (n - 1)..<n, temperature: tau, gradient: &none).loss, 0)
        XCTAssertEqual(none.map(abs).max(), 0)
        var half = [Float](repeating: 0, count: n * d)
        let halved = supConLoss(features: f, labels: labels, width: d, anchors: 0..<n, temperature: tau, lossScale: 0.5, gradient: &half)
        assertClose("SupCon loss × ½", [halved.loss], try fx.floats("loss").map { $0 / 2 }, tolerance: 1e-5)
        assertClose("SupCon d features × ½", half, try fx.floats("grad.features").map { $0 / 2 }, tolerance: 1e-4)
    }

    /// No anchor has a positive: the loss is 0, every anchor is counted as masked, no gradient.
    func testSupConWithoutAnyPositiveMasksEveryAnchor() {
        let f: [Float] = [1, 0, 0, 1, 1, 1]
        var g = [Float](repeating: 0, count: 6)
        let r = supConLoss(features: f, labels: [0, 1, 2], width: 2, anchors: 0..<3, temperature: 0.5, gradient: &g)
        XCTAssertEqual(r, SupConResult(loss: 0, anchorsWithPositives: 0, maskedAnchors: 3))
        XCTAssertEqual(g, [Float](repeating: 0, count: 6))
    }

    func testMacroF1AndAccuracyMatchTheirDefinitions() {
        // sklearn: f1_score([0,0,1,1,2,2], [0,1,1,1,0,2], average="macro") = (0.5 + 0.8 + 0.6667)/3
        let m = ClassificationMetrics(predictions: [0, 1, 1, 1, 0, 2], labels: [0, 0, 1, 1, 2, 2], classes: 3)
        XCTAssertEqual(m.accuracy, 4.0 / 6.0, accuracy: 1e-12)
        XCTAssertEqual(m.macroF1, (0.5 + 0.8 + 2.0 / 3.0) / 3, accuracy: 1e-12)
        XCTAssertEqual(m.confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    }
}
