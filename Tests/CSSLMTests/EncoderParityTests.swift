// The encoder, head, loss, gradients and AdamW against PyTorch + HF transformers on the same
// weights and inputs (fixtures written by scripts/make_reference.py).
import Foundation
import XCTest
@testable import CSSLM

final class EncoderParityTests: XCTestCase {
    /// The tiny random BERT + classifier of the fixture, with the fixture's initial weights.
    private func tinyModel() throws -> (BertClassifier, SafetensorsFile, TokenBatch, [Int]) {
        let fx = try SafetensorsFile(url: try TestPaths.fixture("tiny_bert.safetensors"))
        let config = try JSONDecoder().decode(BertConfig.self, from: Data(fx.metadata["config"]!.utf8))
        let model = BertClassifier(config: config, numLabels: 3)
        let missing = try model.parameters.load(from: fx, prefixes: ["param."])
        XCTAssertEqual(missing, [])
        let ids = try fx.ints("input_ids"), types = try fx.ints("token_type_ids"), mask = try fx.ints("attention_mask")
        let b = try fx.info("input_ids").shape[0], t = try fx.info("input_ids").shape[1]
        let batch = TokenBatch(batch: b, seqLen: t, ids: ids.map(Int32.init), typeIds: types.map(Int32.init),
                               mask: mask.map(Float.init), sepPositions: try fx.ints("sep_positions"))
        return (model, fx, batch, try fx.ints("labels"))
    }

    func testTinyBertHiddenStatesLogitsAndLossMatchTransformers() throws {
        let (model, fx, batch, labels) = try tinyModel()
        try model.forward(batch, dropout: .off(batch: batch.batch))
        for (i, h) in model.encoderActivations.hidden.enumerated() {
            assertClose("hidden_states.\(i)", h.base, try fx.floats("hidden_states.\(i)"), tolerance: 1e-5)
        }
        assertClose("logits", model.headActivations.logits.base, try fx.floats("logits"), tolerance: 1e-5)
        let loss = softmaxCrossEntropy(logits: model.headActivations.logits.base, labels: labels, classes: 3, dLogits: nil)
        assertClose("loss", [loss], try fx.floats("loss"), tolerance: 1e-5)
    }

    func testTinyBertEveryParameterGradientMatchesPyTorch() throws {
        let (model, fx, batch, labels) = try tinyModel()
        model.parameters.grads.zero()
        try model.lossAndGradient(batch, labels: labels, dropout: .off(batch: batch.batch))
        for spec in model.parameters.specs {
            // Key biases shift every score of a softmax row equally: their true gradient is 0 and
            // both sides hold float noise (~1e-7), hence the absolute floor.
            assertClose("grad." + spec.name, model.parameters.grads.base + spec.offset,
                        try fx.floats("grad." + spec.name), tolerance: 1e-4, absoluteFloor: 1e-6)
        }
        for l in 0..<model.config.numHiddenLayers {
            let p = model.parameters.grad("encoder.layer.\(l).attention.self.key.bias")
            XCTAssertLessThan((0..<model.config.hiddenSize).map { abs(p[$0]) }.max()!, 1e-6, "key bias gradient must vanish")
        }
    }

    func testTenAdamWStepsWithWarmupDecayAndClippingMatchTorch() throws {
        let (model, fx, batch, labels) = try tinyModel()
        let lr = try fx.floats("adamw.lr")[0]
        let optimizer = AdamW(config: AdamWConfig(learningRate: lr, weightDecay: 0.01), parameterCount: model.parameters.count)
        let schedule = LinearSchedule(warmupSteps: 2, totalSteps: 10)
        var losses: [Float] = [], norms: [Float] = []
        for step in 0..<10 {
            model.parameters.grads.zero()
            losses.append(try model.lossAndGradient(batch, labels: labels, dropout: .off(batch: batch.batch)))
            // The trainer's own step (clip, schedule, AdamW), not a copy of it.
            norms.append(optimizerStep(model.parameters, optimizer: optimizer, schedule: schedule, step: step,
                                       peakLearningRate: lr, maxGradNorm: 1).gradientNorm)
        }
        let reference = try fx.floats("adamw.losses")
        print("losses ours ", losses.map { String(format: "%.6f", $0) }.joined(separator: " "))
        print("losses torch", reference.map { String(format: "%.6f", $0) }.joined(separator: " "))
        for (i, (a, b)) in zip(losses, reference).enumerated() {
            XCTAssertLessThanOrEqual(abs(a - b), 1e-4 * max(1, abs(b)), "AdamW step \(i) loss \(a) vs \(b)")
        }
        assertClose("grad norms", norms, try fx.floats("adamw.grad_norms"), tolerance: 1e-4)
        // Key biases are left out: their true gradient is 0 (see above) and Adam's normalisation
        // turns the float noise on both sides into different full-size steps.
        for spec in model.parameters.specs where !spec.name.hasSuffix("key.bias") {
            assertClose("after 10 steps: " + spec.name, model.parameters.values.base + spec.offset,
                        try fx.floats("adamw.param." + spec.name), tolerance: 1e-4)
        }
    }

    func testMiniLMLastHiddenStatesMatchTransformers() throws {
        let fx = try SafetensorsFile(url: try TestPaths.fixture("minilm_hidden.safetensors"))
        let model = try BertClassifier(modelDirectory: try TestPaths.miniLM(), numLabels: 2)
        let shape = try fx.info("input_ids").shape
        let ids = try fx.ints("input_ids").map(Int32.init)
        let seps = (0..<shape[0]).map { b in (0..<shape[1]).first { ids[b * shape[1] + $0] == 102 }! }
        let batch = TokenBatch(batch: shape[0], seqLen: shape[1], ids: ids,
                               typeIds: try fx.ints("token_type_ids").map(Int32.init),
                               mask: try fx.ints("attention_mask").map(Float.init), sepPositions: seps)
        try model.forward(batch, dropout: .off(batch: batch.batch))
        assertClose("MiniLM last_hidden_state (8 sentences)", model.encoderActivations.lastHidden,
                    try fx.floats("last_hidden_state"), tolerance: 1e-4)
    }
}
