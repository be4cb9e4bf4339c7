// Benchmark driver for scripts/bench.sh: times one training step (encoder + classifier forward,
// backward, AdamW) at given shapes, and in the same run the machine's sgemm at the shapes of the
// step's linear layers, so the ratio is the fraction of the BLAS ceiling the step reaches.
import CBLAS
import CSSLM
import Foundation

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Median seconds of `repeats` runs of `body` after one warm-up run.
func timeIt(repeats: Int, _ body: () throws -> Void) rethrows -> Double {
    try body()
    var times: [Double] = []
    for _ in 0..<repeats { let t0 = now(); try body(); times.append(now() - t0) }
    return times.sorted()[times.count / 2]
}

/// Matmul FLOPs of one forward pass (linear layers, attention products) and its GEMM shapes.
func forwardFlops(_ c: BertConfig, batch b: Int, seq t: Int) -> (total: Double, gemms: [(m: Int, n: Int, k: Int)]) {
    let n = b * t, h = c.hiddenSize, i = c.intermediateSize
    let gemms = [(n, 3 * h, h), (n, h, h), (n, i, h), (n, h, i)]
    let linear = gemms.reduce(0.0) { $0 + 2 * Double($1.0 * $1.1 * $1.2) }
    let attention = 2 * 2 * Double(b * c.numAttentionHeads * t * t * c.headSize)
    return (Double(c.numHiddenLayers) * (linear + attention), gemms.map { (m: $0.0, n: $0.1, k: $0.2) })
}

/// sgemm GFLOP/s over the given shapes (y = x·Wᵀ as the linear layers call it), FLOP-weighted.
func sgemmCeiling(_ shapes: [(m: Int, n: Int, k: Int)]) -> Double {
    var flops = 0.0, seconds = 0.0
    for s in shapes {
        let a = FloatBuffer(count: s.m * s.k), w = FloatBuffer(count: s.n * s.k), y = FloatBuffer(count: s.m * s.n)
        for j in 0..<a.count { a[j] = Float(j % 7) * 0.01 }
        for j in 0..<w.count { w[j] = Float(j % 5) * 0.01 }
        let sec = timeIt(repeats: 5) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(s.m), Int32(s.n), Int32(s.k), 1,
                        a.base, Int32(s.k), w.base, Int32(s.k), 0, y.base, Int32(s.m == 0 ? 1 : s.n))
        }
        flops += 2 * Double(s.m * s.n * s.k); seconds += sec
    }
    return flops / seconds / 1e9
}

struct Options {
    var model = "minilm"
    var batches = [16, 32]
    var seqs = [64, 128]
    var repeats = 3
    var inference = false
}

var opts = Options()
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    switch a {
    case "--model": opts.model = args.next() ?? opts.model
    case "--batch": opts.batches = (args.next() ?? "").split(separator: ",").compactMap { Int($0) }
    case "--seq": opts.seqs = (args.next() ?? "").split(separator: ",").compactMap { Int($0) }
    case "--repeats": opts.repeats = Int(args.next() ?? "") ?? opts.repeats
    case "--inference": opts.inference = true
    default:
        FileHandle.standardError.write("usage: csslm-bench [--model minilm|bert-base] [--batch 16,32] [--seq 64,128] [--repeats N] [--inference]\n".data(using: .utf8)!)
        exit(2)
    }
}

let config: BertConfig
switch opts.model {
case "minilm": config = BertConfig(vocabSize: 30522, hiddenSize: 384, numHiddenLayers: 6, numAttentionHeads: 12, intermediateSize: 1536)
case "bert-base": config = BertConfig(vocabSize: 30522, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12, intermediateSize: 3072)
default: print("unknown model \(opts.model)"); exit(2)
}

let threads = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] ?? "default"
print("model \(opts.model) (L=\(config.numHiddenLayers), H=\(config.hiddenSize)), OPENBLAS_NUM_THREADS=\(threads), mode \(opts.inference ? "inference" : "train step (fwd+bwd+AdamW)")")
print("| batch | seq | ms/step | tokens/s | GFLOP/s | sgemm GFLOP/s | fraction of ceiling |")
print("|---:|---:|---:|---:|---:|---:|---:|")
let model = BertClassifier(config: config, numLabels: 2, seed: 1)
let optimizer = AdamW(config: AdamWConfig(learningRate: 1e-5), parameterCount: model.parameters.count)
var rng = SplitMix64(seed: 7)
for b in opts.batches {
    for t in opts.seqs {
        let ids = (0..<(b * t)).map { $0 % t == 0 ? Int32(101) : ($0 % t == t - 1 ? 102 : Int32(1000 + rng.nextInt(below: 20000))) }
        let batch = TokenBatch(batch: b, seqLen: t, ids: ids, mask: [Float](repeating: 1, count: b * t),
                               sepPositions: [Int](repeating: t - 1, count: b))
        let labels = (0..<b).map { $0 % 2 }
        var step = 0
        let seconds = try timeIt(repeats: opts.repeats) {
            if opts.inference {
                try model.forward(batch, dropout: .off(batch: b))
            } else {
                let drop = DropoutContext(probability: 0.1, seed: 1, step: step, exampleIndex: Array(0..<b))
                model.parameters.grads.zero()
                try model.lossAndGradient(batch, labels: labels, dropout: drop)
                clipGradientNorm(model.parameters.grads, maxNorm: 1)
                optimizer.update(model.parameters, lr: 1e-5)
                step += 1
            }
        }
        let f = forwardFlops(config, batch: b, seq: t)
        let flops = opts.inference ? f.total : 3 * f.total
        let achieved = flops / seconds / 1e9
        let ceiling = sgemmCeiling(f.gemms)
        print(String(format: "| %d | %d | %.0f | %.0f | %.1f | %.1f | %.2f |", b, t, seconds * 1e3,
                     Double(b * t) / seconds, achieved, ceiling, achieved / ceiling))
    }
}
