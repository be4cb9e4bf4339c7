// AdamW over the flat parameter buffer (decoupled weight decay, none on biases and LayerNorm),
// the linear warmup-then-decay schedule and global gradient-norm clipping, each written to give
// the same numbers as torch.optim.AdamW, transformers' get_linear_schedule_with_warmup and
// torch.nn.utils.clip_grad_norm_.
import Foundation

public struct AdamWConfig: Codable, Equatable, Sendable {
    public var learningRate: Float = 2e-5
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-8
    public var weightDecay: Float = 0.01
    public init(learningRate: Float = 2e-5, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
                weightDecay: Float = 0.01) {
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        self.weightDecay = weightDecay
    }
}

/// AdamW moments in two flat buffers with the parameters' layout.
public final class AdamW {
    public var config: AdamWConfig
    public let m: FloatBuffer
    public let v: FloatBuffer
    /// Number of updates applied so far.
    public var step: Int = 0
    /// Tensors this optimizer leaves alone: no step, no weight decay, moments kept.
    public var frozen: Set<String> = []

    public init(config: AdamWConfig, parameterCount: Int) {
        self.config = config
        m = FloatBuffer(count: parameterCount)
        v = FloatBuffer(count: parameterCount)
    }

    /// One update of `params` from `params.grads` at learning rate `lr`.
    public func update(_ params: ParameterSet, lr: Float) {
        step += 1
        let c = config
        // Step-dependent scalars in Double, as PyTorch computes them in Python floats.
        let bc1 = 1 - pow(Double(c.beta1), Double(step))
        let bc2Sqrt = (1 - pow(Double(c.beta2), Double(step))).squareRoot()
        let stepSize = Float(Double(lr) / bc1)
        let invBc2Sqrt = Float(1 / bc2Sqrt)
        let b2 = c.beta2, eps = c.eps, oneMinusB1 = 1 - c.beta1, oneMinusB2 = 1 - c.beta2
        let p = params.values.base, g = params.grads.base, m = m.base, v = v.base
        for spec in params.specs where !frozen.contains(spec.name) {
            let decay: Float = spec.decays ? 1 - lr * c.weightDecay : 1
            // Elementwise, so any split gives the same bits; SIMD written out because the loop
            // reads and writes four buffers the compiler cannot prove disjoint.
            parallelParts(spec.range.count, align: 8, minPerPart: 1 << 16) { _, part in
                var i = spec.range.lowerBound + part.lowerBound
                let end = spec.range.lowerBound + part.upperBound
                while i + 8 <= end {
                    let gi = load8(g + i)
                    var mi = load8(m + i), vi = load8(v + i)
                    mi += (gi - mi) * oneMinusB1          // lerp, as torch's exp_avg.lerp_
                    vi = vi * b2 + gi * gi * oneMinusB2
                    let denom = vi.squareRoot() * invBc2Sqrt + eps
                    store8(load8(p + i) * decay - stepSize * (mi / denom), p + i)
                    store8(mi, m + i); store8(vi, v + i)
                    i += 8
                }
                while i < end {
                    let gi = g[i]
                    p[i] *= decay
                    m[i] += (gi - m[i]) * oneMinusB1
                    v[i] = v[i] * b2 + gi * gi * oneMinusB2
                    let denom = v[i].squareRoot() * invBc2Sqrt + eps
                    p[i] -= stepSize * (m[i] / denom)
                    i += 1
                }
            }
        }
    }
}

/// Linear warmup from 0 to the peak over `warmupSteps`, then linear decay to 0 at `totalSteps`
/// (transformers' get_linear_schedule_with_warmup); `multiplier(step)` is for the 0-based step.
public struct LinearSchedule: Codable, Equatable, Sendable {
    public var warmupSteps: Int
    public var totalSteps: Int
    public init(warmupSteps: Int, totalSteps: Int) {
        self.warmupSteps = warmupSteps; self.totalSteps = totalSteps
    }
    /// Warmup as a fraction of the total (docs/method.md#optimisation-and-schedule: 10%).
    public init(warmupFraction: Double, totalSteps: Int) {
        self.init(warmupSteps: Int(warmupFraction * Double(totalSteps)), totalSteps: totalSteps)
    }
    /// The learning rate of the 0-based `step` for a peak of `peak`.
    public func learningRate(peak: Float, step: Int) -> Float { peak * multiplier(step) }
    public func multiplier(_ step: Int) -> Float {
        if step < warmupSteps { return Float(step) / Float(max(1, warmupSteps)) }
        return max(0, Float(totalSteps - step) / Float(max(1, totalSteps - warmupSteps)))
    }
}

/// One optimizer step as every stage takes it (docs/method.md#optimisation-and-schedule): the
/// gradient clipped to `maxGradNorm` by its global L2 norm (torch.nn.utils.clip_grad_norm_ with its
/// 1e-6 guard), then AdamW at `peakLearningRate` × the schedule's multiplier of the stage's 0-based
/// `step`. `gradientNorm` is the norm when already known (the trainer's allreduce computes it over
/// all ranks); nil computes it from `params.grads`. Returns the norm before clipping and the rate.
@discardableResult
public func optimizerStep(_ params: ParameterSet, optimizer: AdamW, schedule: LinearSchedule, step: Int,
                          peakLearningRate: Float, maxGradNorm: Float,
                          gradientNorm: Float? = nil) -> (gradientNorm: Float, learningRate: Float) {
    let grads = params.grads
    let norm = gradientNorm ?? Float(sumOfSquares(grads.base, grads.count).squareRoot())
    let coef = min(maxGradNorm / (norm + 1e-6), 1)
    if coef < 1 { scale(grads.base, grads.count, by: coef) }
    let lr = schedule.learningRate(peak: peakLearningRate, step: step)
    optimizer.update(params, lr: lr)
    return (norm, lr)
}

/// x[i] *= s, i < n
public func scale(_ x: UnsafeMutablePointer<Float>, _ n: Int, by s: Float) {
    parallelParts(n, align: 8, minPerPart: 1 << 16) { _, part in
        for i in part { x[i] *= s }
    }
}
