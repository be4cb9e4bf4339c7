// Each stage's whole loss (beyond L_cls) and its gradients with respect to the features and the
// heads, against PyTorch autograd on the formulas of docs/method.md (fixture written by
// scripts/make_stage_loss_reference.py). World-size invariance cannot catch a loss that is wrong
// the same way on every rank count; this can. A second check splits the anchors as two ranks
// would and requires the shares to add up to the one-process loss and gradients.
import Foundation
import XCTest
@testable import CSSLM

final class StageLossTests: XCTestCase {
    private let h = 8
    private var fx: SafetensorsFile!

    override func setUpWithError() throws {
        fx = try SafetensorsFile(url: try TestPaths.fixture("stage_losses.safetensors"))
    }

    private func head(_ prefix: String) throws -> PairHead {
        PairHead(weight: try fx.floats(prefix + ".weight"), bias: try fx.floats(prefix + ".bias"))
    }

    private func objective(_ variant: String, stage: String) throws -> ContrastiveObjective {
        variant.hasPrefix("supcon") ? .supcon(temperature: try fx.floats(stage + ".temperature")[0]) : .pair(try head(stage + ".pair"))
    }

    private func initLoss(_ variant: String, anchors: Range<Int>? = nil) throws -> StageLoss {
        let labels = try fx.ints("init.labels")
        return initStageLoss(t: try fx.floats("init.t"), e: try fx.floats("init.e"), labels: labels, anchors: anchors ?? 0..<labels.count,
                             hidden: h, contrastive: try objective(variant, stage: "init"), task: try head("init.task"),
                             domain: try head("init.dom"), negatives: try fx.floats("init.negatives"),
                             detach: variant.hasSuffix("detached"))
    }

    private func mainLoss(_ variant: String, anchors: Range<Int>? = nil) throws -> StageLoss {
        let labels = try fx.ints("main.labels")
        return mainStageLoss(t: try fx.floats("main.t"), e: try fx.floats("main.e"), labels: labels, anchors: anchors ?? 0..<labels.count,
                             queryRows: try fx.ints("main.query_rows"), hidden: h, contrastive: try objective(variant, stage: "main"))
    }

    /// Loss, parts, masked anchors and every gradient of `loss` against the fixture's `prefix`.
    private func check(_ loss: StageLoss, _ prefix: String, heads: [(String, PairHead?)]) throws {
        assertClose(prefix + " loss", [loss.total], try fx.floats(prefix + ".loss"), tolerance: 1e-5)
        assertClose(prefix + " parts", loss.parts, try fx.floats(prefix + ".parts"), tolerance: 1e-5)
        XCTAssertEqual(loss.maskedAnchors, try fx.ints(prefix + ".masked_anchors")[0], prefix + " masked anchors")
        assertClose(prefix + " d/dt", loss.dT, try fx.floats(prefix + ".grad.t"), tolerance: 1e-4)
        assertClose(prefix + " d/de", loss.dE, try fx.floats(prefix + ".grad.e"), tolerance: 1e-4)
        for (name, gradient) in heads {
            let weight = try fx.floats(prefix + ".grad.\(name).weight"), bias = try fx.floats(prefix + ".grad.\(name).bias")
            // A head the variant does not use has a zero reference gradient and none from us.
            let g = gradient ?? PairHead(weight: weight.map { _ in 0 }, bias: bias.map { _ in 0 })
            assertClose(prefix + " d/d \(name).weight", g.weight, weight, tolerance: 1e-4)
            assertClose(prefix + " d/d \(name).bias", g.bias, bias, tolerance: 1e-4)
        }
    }

    func testInitStageLossAndGradientsMatchPyTorch() throws {
        for variant in ["pair", "supcon", "pair_detached"] {
            let loss = try initLoss(variant)
            try check(loss, "init." + variant, heads: [("pair", loss.pair), ("task", loss.task), ("dom", loss.domain)])
        }
    }

    func testMainStageLossAndGradientsMatchPyTorch() throws {
        for variant in ["pair", "supcon"] {
            let loss = try mainLoss(variant)
            try check(loss, "main." + variant, heads: [("pair", loss.pair)])
        }
    }

    func testMainStageCrossEntropyWeightsMatchPyTorch() throws {
        let logits = try fx.floats("ce.logits"), labels = try fx.ints("ce.labels"), k = try fx.ints("ce.top_k")[0]
        let isQuery = try fx.ints("ce.is_query").map { $0 == 1 }
        let c = logits.count / labels.count
        for method in ["csslm", "selftrain"] {
            let weights = mainStageRowWeights(isQuery: isQuery, queries: isQuery.filter { $0 }.count, topK: k,
                                              selftrain: method == "selftrain")
            var dLogits = [Float](repeating: 0, count: logits.count)
            let loss = logits.withUnsafeBufferPointer {
                softmaxCrossEntropy(logits: $0.baseAddress!, labels: labels, classes: c, dLogits: &dLogits, rowWeights: weights)
            }
            assertClose("ce.\(method) loss", [loss], try fx.floats("ce.\(method).loss"), tolerance: 1e-5)
            assertClose("ce.\(method) d/dlogits", dLogits, try fx.floats("ce.\(method).grad.logits"), tolerance: 1e-4)
        }
    }

    /// Two ranks' shares (anchors split unevenly, one at a query row's boundary) add up to the
    /// one-process loss and gradients: what the trainer's reduce-scatter and allreduce rely on.
    func testAnchorSharesAddUpToTheWholeStageLoss() throws {
        let cases: [(String, (String, Range<Int>?) throws -> StageLoss, Int)] = [
            ("init.pair", { try self.initLoss("pair", anchors: $1) }, 6), ("init.supcon", { try self.initLoss("supcon", anchors: $1) }, 6),
            ("main.pair", { try self.mainLoss("pair", anchors: $1) }, 9), ("main.supcon", { try self.mainLoss("supcon", anchors: $1) }, 9),
        ]
        for (name, loss, m) in cases {
            let whole = try loss(name, nil)
            let cut = m == 9 ? 6 : 2
            let a = try loss(name, 0..<cut), b = try loss(name, cut..<m)
            assertClose(name + " shares: loss", [a.total + b.total], [whole.total], tolerance: 1e-5)
            assertClose(name + " shares: d/dt", zip(a.dT, b.dT).map(+), whole.dT, tolerance: 1e-5)
            assertClose(name + " shares: d/de", zip(a.dE, b.dE).map(+), whole.dE, tolerance: 1e-5)
            if let p = whole.pair, let pa = a.pair, let pb = b.pair {
                assertClose(name + " shares: d/d pair.weight", zip(pa.weight, pb.weight).map(+), p.weight, tolerance: 1e-5)
            }
        }
    }
}
