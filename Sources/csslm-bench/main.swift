// Benchmark driver for scripts/bench.sh (a measurement, not a test). Subcommands, each printing
// one JSON line per result so that every configuration can run in its own process (its own peak
// RSS) and `report` can put ours and PyTorch's side by side:
//
//   csslm-bench run --model minilm|bert-base --batch B --seq T [--repeats R] [--modes inference,train]
//                   [--ceiling off] [--last-layer all]
//       inference: encoder + classifier head forward, dropout off, no activations kept;
//       train: forward with dropout 0.1, cross-entropy, backward, gradient-norm clip, AdamW;
//       and the machine's sgemm GFLOP/s at the step's GEMM shapes (the ceiling). The last layer
//       computes only the [CLS] and [SEP] rows the head reads (the same loss and gradients;
//       `--last-layer all` computes every row, as HF's BertModel does).
//   csslm-bench scale --model M --batch B --seq T [--repeats R]
//       the train step data-parallel over the ranks of mpirun (or alone): each rank takes its
//       slice of the global batch; the gradient allreduce (GradientAllreducer) is timed apart.
//   csslm-bench info [--threads T]
//       the machine: CPU model and flags, the OpenBLAS core and how it was chosen, the fp32 peak
//       (cores × FMA units × lanes × 2 × clock) of the machine and of T cores.
//   csslm-bench shapes --model M --batch B --seq T --mode inference|train
//       the linear-layer GEMM shapes of the step (what the ceiling times), as M,N,K,TA,TB words
//       for scripts/gemm_bench.c and scripts/bench_torch.py --gemm.
//   csslm-bench report FILE
//       the tables of scripts/bench.sh from the JSON lines in FILE.
import CBLAS
import CSSLM
import Foundation

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// User + system CPU seconds of this process so far (all threads).
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6
}

/// Peak resident set of this process so far, MB (getrusage: KiB on Linux).
func peakRSSMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

func emit(_ fields: [String: Any]) {
    let finite = fields.filter { ($0.value as? Double)?.isFinite ?? true }  // JSON has no NaN
    let data = try! JSONSerialization.data(withJSONObject: finite, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
    fflush(stdout)
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write((message + "\n").data(using: .utf8)!)
    exit(2)
}

// MARK: Arguments

var arguments = Array(CommandLine.arguments.dropFirst())
/// A constant learning rate for the timed steps: the trainer's step with a schedule whose decay
/// never shows (2^40 steps: the multiplier rounds to 1).
let benchSchedule = LinearSchedule(warmupSteps: 0, totalSteps: 1 << 40)
let command = arguments.isEmpty ? "" : arguments.removeFirst()

func option(_ name: String) -> String? {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
    return arguments[i + 1]
}

func modelConfig(_ name: String) -> BertConfig {
    switch name {
    case "minilm": return BertConfig(vocabSize: 30522, hiddenSize: 384, numHiddenLayers: 6, numAttentionHeads: 12, intermediateSize: 1536)
    case "bert-base": return BertConfig(vocabSize: 30522, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12, intermediateSize: 3072)
    default: fail("unknown model \(name) (minilm, bert-base)")
    }
}

// MARK: FLOPs and the sgemm ceiling

struct GemmShape { var m: Int, n: Int, k: Int, transA: Bool, transB: Bool }

/// Matmul FLOPs of one forward pass (linear layers and attention products).
func forwardFlops(_ c: BertConfig, batch b: Int, seq t: Int) -> Double {
    let n = b * t, h = c.hiddenSize, i = c.intermediateSize
    let linear = 2.0 * Double(n) * Double(3 * h * h + h * h + 2 * h * i)
    let attention = 2 * 2 * Double(b * c.numAttentionHeads * t * t * c.headSize)
    return Double(c.numHiddenLayers) * (linear + attention)
}

/// The linear layers' GEMMs of a forward pass (y = x·Wᵀ) and, for training, of the backward
/// (dx = dy·W, dW += dyᵀ·x).
func linearGemms(_ c: BertConfig, rows n: Int, train: Bool) -> [GemmShape] {
    let h = c.hiddenSize, i = c.intermediateSize
    var shapes: [GemmShape] = []
    for (out, inp) in [(3 * h, h), (h, h), (i, h), (h, i)] {
        shapes.append(GemmShape(m: n, n: out, k: inp, transA: false, transB: true))
        if train {
            shapes.append(GemmShape(m: n, n: inp, k: out, transA: false, transB: false))
            shapes.append(GemmShape(m: out, n: inp, k: n, transA: true, transB: false))
        }
    }
    return shapes
}

/// The sgemm ceiling at `shapes`: operands allocated once, one timed pass at a time, so passes can
/// be interleaved with the step's runs and see the same machine (the load of a shared machine
/// changes by the second).
final class SgemmCeiling {
    let shapes: [GemmShape]
    let threads: Int
    let a: FloatBuffer, b: FloatBuffer, c: FloatBuffer
    private(set) var openblas: [Double] = [], split: [Double] = []

    init(_ shapes: [GemmShape], threads: Int) {
        self.shapes = shapes
        self.threads = threads
        a = FloatBuffer(count: shapes.map { $0.m * $0.k }.max() ?? 0)
        b = FloatBuffer(count: shapes.map { $0.n * $0.k }.max() ?? 0)
        c = FloatBuffer(count: shapes.map { $0.m * $0.n }.max() ?? 0)
        for j in 0..<a.count { a[j] = Float(j % 7) * 0.01 }
        for j in 0..<b.count { b[j] = Float(j % 5) * 0.01 }
    }

    /// One pass over the shapes, FLOP-weighted GFLOP/s of OpenBLAS with `threads` threads on the
    /// whole product and of `sgemm` (rows split over the compute threads, one single-threaded
    /// OpenBLAS call each, the way the kernels call it); recorded unless `warmUp`.
    func pass(warmUp: Bool = false) {
        var flops = 0.0, secondsOpenBLAS = 0.0, secondsSplit = 0.0
        for s in shapes {
            let lda = s.transA ? s.m : s.k, ldb = s.transB ? s.k : s.n
            openblas_set_num_threads(Int32(threads))
            var t0 = now()
            cblas_sgemm(CblasRowMajor, s.transA ? CblasTrans : CblasNoTrans, s.transB ? CblasTrans : CblasNoTrans,
                        Int32(s.m), Int32(s.n), Int32(s.k), 1, a.base, Int32(lda), b.base, Int32(ldb), 0, c.base, Int32(s.n))
            secondsOpenBLAS += now() - t0
            if ComputeThreads.count > 1 { openblas_set_num_threads(1) }
            t0 = now()
            sgemm(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k, a: a.base, lda: lda, b: b.base, ldb: ldb,
                  c: c.base, ldc: s.n)
            secondsSplit += now() - t0
            flops += 2 * Double(s.m * s.n * s.k)
        }
        guard !warmUp else { return }
        openblas.append(flops / secondsOpenBLAS / 1e9)
        split.append(flops / secondsSplit / 1e9)
    }
}

func median(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.sorted()[xs.count / 2] }

// MARK: The step

/// A synthetic batch: [CLS] random ids [SEP], no padding, alternating labels.
func syntheticBatch(batch b: Int, seq t: Int) -> (TokenBatch, [Int]) {
    var rng = SplitMix64(seed: 7)
    let ids = (0..<(b * t)).map { $0 % t == 0 ? Int32(101) : ($0 % t == t - 1 ? 102 : Int32(1000 + rng.nextInt(below: 20000))) }
    let batch = TokenBatch(batch: b, seqLen: t, ids: ids, mask: [Float](repeating: 1, count: b * t),
                           sepPositions: [Int](repeating: t - 1, count: b))
    return (batch, (0..<b).map { $0 % 2 })
}

let threads = ComputeThreads.count

func runCommand() throws {
    let modelName = option("--model") ?? "minilm"
    let config = modelConfig(modelName)
    let b = Int(option("--batch") ?? "") ?? 32, t = Int(option("--seq") ?? "") ?? 128
    let repeats = Int(option("--repeats") ?? "") ?? 3
    let modes = (option("--modes") ?? "inference,train").split(separator: ",").map(String.init)
    let model = BertClassifier(config: config, numLabels: 2, seed: 1)
    let fullLastLayer = option("--last-layer") == "all"
    model.encoderActivations.lastLayerRows = fullLastLayer ? .all : .sentenceFeatures
    let (batch, labels) = syntheticBatch(batch: b, seq: t)
    var optimizer: AdamW?
    for mode in modes {
        let train = mode == "train"
        var step = 0
        func runStep() throws {
            if train {
                let opt = optimizer ?? AdamW(config: AdamWConfig(learningRate: 1e-5), parameterCount: model.parameters.count)
                optimizer = opt
                let drop = DropoutContext(probability: 0.1, seed: 1, step: step, exampleIndex: Array(0..<b))
                model.parameters.grads.zero()
                try model.lossAndGradient(batch, labels: labels, dropout: drop)
                optimizerStep(model.parameters, optimizer: opt, schedule: benchSchedule, step: step, peakLearningRate: 1e-5, maxGradNorm: 1)
                step += 1
            } else {
                // BertClassifier.forward without keeping activations for a backward.
                let values = model.parameters.values.base
                model.encoder.forward(batch, params: values, acts: model.encoderActivations, dropout: .off(batch: b),
                                      keepForBackward: false)
                model.headForward(batch, dropout: .off(batch: b))
            }
        }
        // The warm-up run allocates the arena (and AdamW's moments): the peak RSS is reached.
        try runStep()
        let rss = peakRSSMegabytes()
        let ceiling = option("--ceiling") == "off" ? nil
            : SgemmCeiling(linearGemms(config, rows: b * t, train: train), threads: threads)
        ceiling?.pass(warmUp: true)
        var times: [Double] = [], cpu = 0.0
        for _ in 0..<max(1, repeats) {
            let t0 = now(), c0 = cpuSeconds()
            try runStep()
            times.append(now() - t0)
            cpu = cpuSeconds() - c0
            ceiling?.pass()
        }
        let flops = (train ? 3 : 1) * forwardFlops(config, batch: b, seq: t)
        emit(["impl": "csslm", "model": modelName + (fullLastLayer ? " (all rows)" : ""), "batch": b, "seq": t, "threads": threads, "mode": mode,
              "ms": median(times) * 1e3, "min_ms": times.min()! * 1e3, "cpu_ms_last": cpu * 1e3, "rss_mb": rss, "gflop": flops / 1e9,
              "ceiling_openblas": median(ceiling?.openblas ?? []), "ceiling_split": median(ceiling?.split ?? [])])
    }
}

// MARK: Scaling over ranks

func scaleCommand() throws {
    let modelName = option("--model") ?? "minilm"
    let config = modelConfig(modelName)
    let globalBatch = Int(option("--batch") ?? "") ?? 32, t = Int(option("--seq") ?? "") ?? 128
    let repeats = Int(option("--repeats") ?? "") ?? 3
    let comm: Communicator = MPIRuntime.isLaunchedByMPIRun ? try MPICommunicator() : SingleProcessCommunicator()
    let w = comm.size, rank = comm.rank
    precondition(globalBatch % w == 0, "the global batch must divide over the ranks")
    let local = globalBatch / w, first = rank * local
    let model = BertClassifier(config: config, numLabels: 2, seed: 1)
    model.encoderActivations.lastLayerRows = .sentenceFeatures
    let optimizer = AdamW(config: AdamWConfig(learningRate: 1e-5), parameterCount: model.parameters.count)
    let reducer = try GradientAllreducer(communicator: comm, parameterRanges: model.parameters.specs.map(\.range),
                                         averaging: .sum)
    let (batch, labels) = syntheticBatch(batch: local, seq: t)
    var samples: [(step: Double, compute: Double, wait: Double, allreduce: Double)] = []
    for step in 0...max(1, repeats) {
        try comm.barrier(name: "barrier(bench step)")
        let t0 = now()
        let drop = DropoutContext(probability: 0.1, seed: 1, step: step, exampleIndex: Array(first..<(first + local)))
        model.parameters.grads.zero()
        let loss = try model.lossAndGradient(batch, labels: labels, dropout: drop, lossScale: Float(local) / Float(globalBatch))
        let t1 = now()
        // The wait for the slowest rank's backward, apart from the transfer itself.
        try comm.barrier(name: "barrier(bench backward done)")
        let t1b = now()
        let totals = try reducer.allreduce(model.parameters.grads.buffer,
                                           local: LocalStepTotals(lossSum: Double(loss) * Double(local), exampleCount: local))
        let t2 = now()
        optimizerStep(model.parameters, optimizer: optimizer, schedule: benchSchedule, step: step, peakLearningRate: 1e-5,
                      maxGradNorm: 1, gradientNorm: Float(totals.gradientNorm))
        let t3 = now()
        // Every rank's times, the slowest rank's view.
        var times = [t3 - t0, t1 - t0, t1b - t1, t2 - t1b]
        try times.withUnsafeMutableBufferPointer { try comm.allreduce($0, .max, name: "allreduce(bench times)") }
        if step > 0 { samples.append((times[0], times[1], times[2], times[3])) }  // step 0 is the warm-up
    }
    let median = { (key: KeyPath<(step: Double, compute: Double, wait: Double, allreduce: Double), Double>) -> Double in
        let s = samples.map { $0[keyPath: key] }.sorted()
        return s[s.count / 2]
    }
    if rank == 0 {
        let stepS = median(\.step)
        emit(["impl": "csslm-scale", "model": modelName, "batch": globalBatch, "seq": t, "ranks": w,
              "threads": threads, "step_ms": stepS * 1e3, "compute_ms": median(\.compute) * 1e3,
              "wait_ms": median(\.wait) * 1e3, "allreduce_ms": median(\.allreduce) * 1e3, "gradient_mb": Double(model.parameters.count * 4) / 1e6,
              "tokens_per_s": Double(globalBatch * t) / stepS, "rss_mb": peakRSSMegabytes()])
    }
    if comm is MPICommunicator { MPIRuntime.finalize() }
}

func infoCommand() {
    let cpu = CPUFeatures.current
    let t = Int(option("--threads") ?? "") ?? threads
    emit(["impl": "machine", "cpu_model": Machine.modelName, "cpu_vendor": cpu.vendor, "cpu_family": cpu.family,
          "cpu_model_number": cpu.model, "cpu_flags": cpu.flagList.joined(separator: " "), "cpu_level": cpu.level.description,
          "logical_cpus": Machine.logicalCPUs, "cores": Machine.cores, "threads": t,
          "blas_config": BLASCore.config, "blas_core": BLASCore.name, "blas_how": BLASCore.how,
          "peak_gflops": Machine.peakGFLOPS(), "peak_derivation": Machine.peakDerivation(),
          "peak_threads_gflops": Machine.peakGFLOPS(cores: min(t, Machine.cores)),
          "load_average": (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? ""])
}

func shapesCommand() {
    let config = modelConfig(option("--model") ?? "minilm")
    let b = Int(option("--batch") ?? "") ?? 32, t = Int(option("--seq") ?? "") ?? 128
    let shapes = linearGemms(config, rows: b * t, train: option("--mode") == "train")
    print(shapes.map { "\($0.m),\($0.n),\($0.k),\($0.transA ? 1 : 0),\($0.transB ? 1 : 0)" }.joined(separator: " "))
}

switch command {
case "info": infoCommand()
case "shapes": shapesCommand()
case "run": try runCommand()
case "scale": try scaleCommand()
case "report":
    guard let path = arguments.first else { fail("usage: csslm-bench report FILE") }
    try printReport(path)
default:
    fail("usage: csslm-bench run|scale|info|shapes|report ... (see scripts/bench.sh)")
}
