// L2-penalised logistic regression fitted to convergence by L-BFGS: the model of scikit-learn's
// `LogisticRegression(C=…)` with its default lbfgs solver, which the `probe` method fits on frozen
// sentence vectors and which LP-FT uses to start the linear classifier head (docs/method.md).
//
// Objectives, as scikit-learn defines them (the intercept is not penalised):
//   C = 2 classes: one weight vector w,   f = ½‖w‖² + C Σ_i log(1 + exp(−s_i (w·x_i + b))), s_i = ±1
//   C ≥ 3:         weights W [C, D],      f = ½‖W‖²_F + C Σ_i (logsumexp(W x_i + b) − (W x_i + b)_{y_i})
// Both are strictly convex, so any solver that converges lands on the same point: the test compares
// with scikit-learn's solution (Tests/…/probe_reference.safetensors, scripts/make_probe_reference.py).
// Arithmetic is in Double: the problems are small (N ≤ a few hundred rows, D = hidden size).
// Shapes: N = rows, D = width, C = classes, R = weight rows (1 for two classes, else C).
import Foundation

public struct LogisticRegression: Equatable, Sendable {
    public let classes: Int
    public let width: Int
    /// [R, D] row-major: R = 1 for two classes (the weight of class 1 against class 0), else C.
    public private(set) var coef: [Double]
    /// [R].
    public private(set) var intercept: [Double]
    /// L-BFGS iterations the fit took, and the final gradient's largest component.
    public private(set) var iterations = 0
    public private(set) var gradientMax = 0.0

    var rows: Int { classes == 2 ? 1 : classes }

    /// Fits on `x` [N, D] with labels in 0..<classes; `c` is scikit-learn's C (inverse penalty).
    /// Stops when every gradient component is at most `tolerance` × max(1, |f|).
    /// - Throws: on a label outside 0..<classes, fewer than two classes, or no rows.
    public static func fit(x: [Float], labels: [Int], classes: Int, width: Int, c: Double = 1,
                           tolerance: Double = 1e-10, maxIterations: Int = 10_000) throws -> LogisticRegression {
        guard classes >= 2 else { throw CSSLMError("logistic regression needs at least 2 classes, got \(classes)") }
        guard !labels.isEmpty, x.count == labels.count * width else {
            throw CSSLMError("logistic regression: \(x.count) feature values for \(labels.count) rows of width \(width)")
        }
        guard c > 0 else { throw CSSLMError("logistic regression: C must be positive, got \(c)") }
        if let bad = labels.firstIndex(where: { !(0..<classes).contains($0) }) {
            throw CSSLMError("logistic regression: label \(labels[bad]) of row \(bad) is outside 0..<\(classes)")
        }
        var model = LogisticRegression(classes: classes, width: width,
                                       coef: [Double](repeating: 0, count: (classes == 2 ? 1 : classes) * width),
                                       intercept: [Double](repeating: 0, count: classes == 2 ? 1 : classes))
        let xd = x.map(Double.init)
        let problem = Problem(x: xd, labels: labels, classes: classes, width: width, c: c)
        var theta = [Double](repeating: 0, count: model.rows * (width + 1))
        let result = minimizeLBFGS(&theta, tolerance: tolerance, maxIterations: maxIterations) { problem.valueAndGradient($0) }
        model.coef = Array(theta[0..<(model.rows * width)])
        model.intercept = Array(theta[(model.rows * width)...])
        model.iterations = result.iterations
        model.gradientMax = result.gradientMax
        return model
    }

    /// The penalised objective and its gradient at (coef, intercept) on `x`, `labels`.
    public func objective(x: [Float], labels: [Int], c: Double = 1) -> Double {
        Problem(x: x.map(Double.init), labels: labels, classes: classes, width: width, c: c)
            .valueAndGradient(coef + intercept).value
    }

    /// Class probabilities [N, C] of the rows of `x` [N, D].
    public func probabilities(_ x: [Float]) -> [Double] {
        let n = x.count / width
        var out = [Double](repeating: 0, count: n * classes)
        for i in 0..<n {
            let z = scores(x, row: i)
            if classes == 2 {
                let p = sigmoid(z[0])
                out[i * 2] = 1 - p; out[i * 2 + 1] = p
            } else {
                let m = z.max()!, e = z.map { Foundation.exp($0 - m) }, s = e.reduce(0, +)
                for k in 0..<classes { out[i * classes + k] = e[k] / s }
            }
        }
        return out
    }

    /// The same decision function as softmax logits: weight [C, D] and bias [C]. With two classes
    /// row 0 is zero and row 1 is (w, b), so softmax gives exactly the sigmoid's probabilities.
    public var softmaxParameters: (weight: [Float], bias: [Float]) {
        if classes > 2 { return (coef.map(Float.init), intercept.map(Float.init)) }
        return ([Float](repeating: 0, count: width) + coef.map(Float.init), [0, Float(intercept[0])])
    }

    func scores(_ x: [Float], row i: Int) -> [Double] {
        (0..<rows).map { r in
            var s = intercept[r]
            for j in 0..<width { s += coef[r * width + j] * Double(x[i * width + j]) }
            return s
        }
    }
}

func sigmoid(_ z: Double) -> Double { z >= 0 ? 1 / (1 + Foundation.exp(-z)) : Foundation.exp(z) / (1 + Foundation.exp(z)) }

/// log(1 + exp(z)) without overflow.
func logOnePlusExp(_ z: Double) -> Double { z > 0 ? z + Foundation.log1p(Foundation.exp(-z)) : Foundation.log1p(Foundation.exp(z)) }

/// The objective over θ = (W flattened [R·D], b [R]).
private struct Problem {
    let x: [Double]
    let labels: [Int]
    let classes: Int
    let width: Int
    let c: Double

    func valueAndGradient(_ theta: [Double]) -> (value: Double, gradient: [Double]) {
        let d = width, n = labels.count, rows = classes == 2 ? 1 : classes
        var g = [Double](repeating: 0, count: theta.count)
        var f = 0.0
        for k in 0..<(rows * d) { f += 0.5 * theta[k] * theta[k]; g[k] = theta[k] }
        var z = [Double](repeating: 0, count: rows)
        for i in 0..<n {
            for r in 0..<rows {
                var s = theta[rows * d + r]
                for j in 0..<d { s += theta[r * d + j] * x[i * d + j] }
                z[r] = s
            }
            var dz = [Double](repeating: 0, count: rows)
            if classes == 2 {
                let y = labels[i] == 1 ? 1.0 : 0.0
                f += c * logOnePlusExp(y == 1 ? -z[0] : z[0])
                dz[0] = c * (sigmoid(z[0]) - y)
            } else {
                let m = z.max()!
                var sum = 0.0
                for r in 0..<rows { sum += Foundation.exp(z[r] - m) }
                f += c * (m + Foundation.log(sum) - z[labels[i]])
                for r in 0..<rows { dz[r] = c * (Foundation.exp(z[r] - m) / sum - (r == labels[i] ? 1 : 0)) }
            }
            for r in 0..<rows where dz[r] != 0 {
                for j in 0..<d { g[r * d + j] += dz[r] * x[i * d + j] }
                g[rows * d + r] += dz[r]
            }
        }
        return (f, g)
    }
}

/// Minimises a smooth function by L-BFGS (10 pairs) with a backtracking Armijo line search,
/// starting from `theta`. Returns the iterations taken and the final gradient's max |component|.
func minimizeLBFGS(_ theta: inout [Double], tolerance: Double, maxIterations: Int,
                   memory: Int = 10, _ fg: ([Double]) -> (value: Double, gradient: [Double])) -> (iterations: Int, gradientMax: Double) {
    func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
    var (f, g) = fg(theta)
    var s: [[Double]] = [], y: [[Double]] = [], rho: [Double] = []
    var iteration = 0
    while iteration < maxIterations {
        let gMax = g.map(abs).max() ?? 0
        if gMax <= tolerance * max(1, abs(f)) { return (iteration, gMax) }
        // Two-loop recursion: direction = −H g.
        var q = g
        var alpha = [Double](repeating: 0, count: s.count)
        for k in stride(from: s.count - 1, through: 0, by: -1) {
            alpha[k] = rho[k] * dot(s[k], q)
            for j in q.indices { q[j] -= alpha[k] * y[k][j] }
        }
        let gamma = s.isEmpty ? 1 / max(1, g.map(abs).reduce(0, +)) : dot(s.last!, y.last!) / dot(y.last!, y.last!)
        for j in q.indices { q[j] *= gamma }
        for k in s.indices {
            let beta = rho[k] * dot(y[k], q)
            for j in q.indices { q[j] += s[k][j] * (alpha[k] - beta) }
        }
        var direction = q.map { -$0 }
        var slope = dot(g, direction)
        if slope >= 0 {  // not a descent direction (numerical trouble): restart from steepest descent
            s.removeAll(); y.removeAll(); rho.removeAll()
            direction = g.map { -$0 }
            slope = dot(g, direction)
        }
        var step = 1.0
        var next = theta, fNext = f, gNext = g
        var accepted = false
        for _ in 0..<60 {
            for j in theta.indices { next[j] = theta[j] + step * direction[j] }
            (fNext, gNext) = fg(next)
            if fNext <= f + 1e-4 * step * slope { accepted = true; break }
            step *= 0.5
        }
        if !accepted { return (iteration, g.map(abs).max() ?? 0) }  // no decrease possible: at float precision
        let sk = zip(next, theta).map { $0 - $1 }, yk = zip(gNext, g).map { $0 - $1 }
        let sy = dot(sk, yk)
        if sy > 1e-12 * dot(yk, yk).squareRoot() * dot(sk, sk).squareRoot() {
            s.append(sk); y.append(yk); rho.append(1 / sy)
            if s.count > memory { s.removeFirst(); y.removeFirst(); rho.removeFirst() }
        }
        theta = next; f = fNext; g = gNext
        iteration += 1
    }
    return (iteration, g.map(abs).max() ?? 0)
}
