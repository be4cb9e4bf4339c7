// The probe's logistic regression against scikit-learn's LogisticRegression (C = 1, lbfgs run to
// convergence) on the same real sentence vectors (fixture from scripts/make_probe_reference.py:
// mean-pooled, L2-normalised MiniLM-L6 vectors of Rotten Tomatoes and Twitter sentiment examples).
import Foundation
import XCTest
@testable import CSSLM

final class ProbeTests: XCTestCase {
    /// Same optimum (weights, intercepts, objective) and the same test probabilities as
    /// scikit-learn, for two classes (one sigmoid weight vector) and three (multinomial).
    func testLogisticRegressionMatchesScikitLearn() throws {
        let fx = try SafetensorsFile(url: try TestPaths.fixture("probe_reference.safetensors"))
        for name in ["binary", "multi"] {
            let x = try fx.floats("\(name).train_x"), y = try fx.floats("\(name).train_y").map { Int($0) }
            let testX = try fx.floats("\(name).test_x"), proba = try fx.floats("\(name).test_proba")
            let d = x.count / y.count, classes = proba.count / (testX.count / d)
            let fit = try LogisticRegression.fit(x: x, labels: y, classes: classes, width: d)
            print("[probe] \(name): \(y.count) rows × \(d), \(classes) classes, \(fit.iterations) L-BFGS iterations")
            assertClose("\(name) coef", fit.coef.map(Float.init), try fx.floats("\(name).coef"), tolerance: 1e-4)
            assertClose("\(name) intercept", fit.intercept.map(Float.init), try fx.floats("\(name).intercept"), tolerance: 1e-4)
            assertClose("\(name) objective", [Float(fit.objective(x: x, labels: y))], try fx.floats("\(name).objective"), tolerance: 1e-6)
            assertClose("\(name) test probabilities", fit.probabilities(testX).map(Float.init), proba, tolerance: 1e-4)
        }
    }

    /// The softmax form LP-FT writes into the linear head gives the sigmoid's probabilities.
    func testSoftmaxParametersReproduceBinaryProbabilities() throws {
        let x: [Float] = [1, 0, 0.8, 0.6, 0, 1, -0.6, 0.8, -1, 0]
        let y = [1, 1, 0, 0, 0]
        let fit = try LogisticRegression.fit(x: x, labels: y, classes: 2, width: 2)
        let (w, b) = fit.softmaxParameters
        let p = fit.probabilities(x)
        for i in 0..<5 {
            let z0 = Double(w[0] * x[2 * i] + w[1] * x[2 * i + 1] + b[0])
            let z1 = Double(w[2] * x[2 * i] + w[3] * x[2 * i + 1] + b[1])
            XCTAssertEqual(exp(z1) / (exp(z0) + exp(z1)), p[2 * i + 1], accuracy: 1e-6)
        }
        XCTAssertThrowsError(try LogisticRegression.fit(x: x, labels: [0, 1, 2, 0, 1], classes: 2, width: 2))
    }
}
