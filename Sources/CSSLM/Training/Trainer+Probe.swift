// The frozen-feature probe: a logistic regression (scikit-learn's LogisticRegression defaults,
// C = 1) on the unit class vectors t(x)/|t(x)| of the labelled examples. As a method (`probe`) it is
// the whole run, no encoder update; as a head start (`headInit: probe`, LP-FT) it is the linear
// head's initial weights before fine-tuning. Every rank encodes the same vectors (DocumentEncoder
// is bit-identical at any world size) and fits the same problem, so every rank gets the same head.
import Foundation

extension Trainer {
    /// Fits the probe on the labelled set under the current encoder and writes it into the linear
    /// classifier head; returns the fit.
    @discardableResult
    func initialiseHeadFromProbe() throws -> LogisticRegression {
        guard model.head.kind == .linear else {
            throw CSSLMError("the probe's solution can only start the linear classifier head", hint: "use --classifier linear")
        }
        let started = Date()
        let encoder = DocumentEncoder(model: model, separatorId: tokenizer.separatorId, paddingId: tokenizer.paddingId)
        let t = try encoder.encode(train.encodings, communicator: communicator).classVectors()
        let h = hidden
        var unit = [Float](repeating: 0, count: t.count)
        for r in 0..<train.count { unit[(r * h)..<((r + 1) * h)] = unitVector(t[(r * h)..<((r + 1) * h)])[...] }
        let fit = try LogisticRegression.fit(x: unit, labels: train.labels, classes: model.numLabels, width: h)
        let (weight, bias) = fit.softmaxParameters
        let ps = model.parameters
        ps.value("classifier.out_proj.weight").update(from: weight, count: weight.count)
        ps.value("classifier.out_proj.bias").update(from: bias, count: bias.count)
        let objective = fit.objective(x: unit, labels: train.labels)
        log(String(format: "[probe] logistic regression (C = 1) on %d unit %@ vectors: %d L-BFGS iterations, objective %.6f, "
                   + "max |gradient| %.1e, %.1f s", train.count, config.features.rawValue, fit.iterations, objective,
                   fit.gradientMax, Date().timeIntervalSince(started)))
        try record(["kind": "probe", "step": globalStep, "iterations": fit.iterations, "objective": objective,
                "gradient_max": fit.gradientMax, "train_accuracy": trainAccuracy(fit, unit)])
        return fit
    }

    /// The `probe` method: the head from the probe, the encoder as loaded; dev and test evaluated.
    func probeOnly() throws -> StageBest {
        try initialiseHeadFromProbe()
        let devMetrics = try evaluate(dev), testMetrics = try evaluate(test)
        try recordEval(stage: "probe", split: "dev", epoch: 0, step: 0, devMetrics)
        try recordEval(stage: "probe", split: "test", epoch: 0, step: 0, testMetrics)
        log(String(format: "[probe] dev acc %.4f macro-F1 %.4f; test acc %.4f macro-F1 %.4f", devMetrics.accuracy, devMetrics.macroF1,
                   testMetrics.accuracy, testMetrics.macroF1))
        return StageBest(epoch: 0, step: 0, dev: devMetrics, test: testMetrics)
    }

    private func trainAccuracy(_ fit: LogisticRegression, _ x: [Float]) -> Double {
        let p = fit.probabilities(x), c = fit.classes
        let correct = train.labels.indices.filter { i in (0..<c).max { p[i * c + $0] < p[i * c + $1] }! == train.labels[i] }.count
        return Double(correct) / Double(max(train.count, 1))
    }
}
