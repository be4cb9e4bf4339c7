// `csslm-bench report FILE`: the tables of scripts/bench.sh from the JSON lines the `run` and
// `scale` subcommands and scripts/bench_torch.py printed.
import Foundation

func printReport(_ path: String) throws {
    let contents = try String(contentsOfFile: path, encoding: .utf8)
    let rows: [[String: Any]] = contents.split(separator: "\n").compactMap {
        guard $0.hasPrefix("{"), let data = String($0).data(using: .utf8) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }
    func number(_ row: [String: Any], _ key: String) -> Double { (row[key] as? NSNumber)?.doubleValue ?? .nan }
    func text(_ row: [String: Any], _ key: String) -> String { row[key].map { "\($0)" } ?? "?" }
    func fmt(_ x: Double, _ digits: Int = 0) -> String { x.isNaN ? "–" : String(format: "%.\(digits)f", x) }
    func key(_ r: [String: Any]) -> String { "\(text(r, "model"))/\(text(r, "mode"))/\(text(r, "batch"))/\(text(r, "seq"))" }

    let ours = rows.filter { $0["impl"] as? String == "csslm" }
    var torch: [String: [String: Any]] = [:], torchGemm: [String: [String: Any]] = [:]
    for r in rows where r["impl"] as? String == "pytorch" { torch[key(r)] = r }
    for r in rows where r["impl"] as? String == "pytorch-gemm" { torchGemm[key(r)] = r }
    let machine = rows.first { $0["impl"] as? String == "machine" }
    var peak = Double.nan
    if let m = machine {
        peak = number(m, "peak_threads_gflops")
        print("CPU: \(text(m, "cpu_model")) (\(text(m, "cpu_vendor")) family \(text(m, "cpu_family")) model \(text(m, "cpu_model_number"))), "
              + "\(text(m, "logical_cpus")) logical CPUs, \(text(m, "cores")) cores; \(text(m, "cpu_level")): \(text(m, "cpu_flags"))")
        print("BLAS: \(text(m, "blas_config")); core \(text(m, "blas_core")): \(text(m, "blas_how"))")
        print("fp32 peak: \(text(m, "peak_derivation")); for \(text(m, "threads")) threads: \(fmt(peak)) GFLOP/s "
              + "(a fraction of peak above 100 % means the cores run above the clock the peak assumes: in a VM, cpu MHz is the nominal clock)")
        print("load average at start: \(text(m, "load_average")) (other processes on the machine slow both sides alike; ratios are within one run)")
    }
    if let r = torch.values.first {
        print("PyTorch \(text(r, "torch")), transformers \(text(r, "transformers")), attention implementation '\(text(r, "attention"))'")
    } else {
        print("PyTorch: not measured (no venv; see the messages above); our figures only.")
    }
    print("""
    GFLOP/s counts the encoder's matmul FLOPs (linear layers and attention products; train = 3 × forward) \
    for both sides. sgemm ceiling: GFLOP/s of OpenBLAS at the step's linear-layer GEMM shapes (forward; \
    for train also dx and dW), best of OpenBLAS on all threads and our row split (one single-threaded \
    sgemm per thread), in brackets OpenBLAS's own; torch.mm: PyTorch's GEMM at the same shapes and \
    threads. Fraction of best GEMM: ours against the faster of the two, so a slow BLAS cannot make it \
    look good; % of peak: ours against the fp32 peak of the threads' cores. One GEMM pass after each \
    timed run, median (the step's ms: median of the runs after a warm-up run). RSS: peak resident set \
    of the process running that configuration. Ours computes the last layer only for the [CLS] and \
    [SEP] rows the head reads (the same loss and gradients; "(all rows)": every row, as HF's BertModel \
    does); both sides count the full model's FLOPs.

    """)
    for mode in ["train", "inference"] {
        let mine = ours.filter { text($0, "mode") == mode }
        guard !mine.isEmpty else { continue }
        print(mode == "train" ? "Train step (fwd + bwd + clip + AdamW, dropout 0.1):" : "Inference (forward, no grad, dropout off):")
        print("| model | batch | seq | threads | ours ms | ours tokens/s | ours GFLOP/s | PyTorch ms | PyTorch tokens/s | PyTorch GFLOP/s | ours/PyTorch "
              + "| sgemm ceiling GFLOP/s | torch.mm GFLOP/s | fraction of best GEMM | ours % of peak | ours RSS MB | PyTorch RSS MB |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in mine {
            let tokens = number(r, "batch") * number(r, "seq")
            let ms = number(r, "ms"), gflop = number(r, "gflop")
            let achieved = gflop / ms * 1e3
            let ceilingOB = number(r, "ceiling_openblas"), ceiling = max(ceilingOB, number(r, "ceiling_split"))
            var plain = r
            plain["model"] = text(r, "model").replacingOccurrences(of: " (all rows)", with: "")
            let t = torch[key(plain)]
            let tms = t.map { number($0, "ms") } ?? .nan
            let tmm = torchGemm[key(plain)].map { number($0, "gflops") } ?? .nan
            let best = tmm.isNaN ? ceiling : max(ceiling, tmm)
            print("| \(text(r, "model")) | \(text(r, "batch")) | \(text(r, "seq")) | \(text(r, "threads")) | \(fmt(ms)) | \(fmt(tokens / ms * 1e3)) | \(fmt(achieved, 1)) "
                  + "| \(fmt(tms)) | \(fmt(tokens / tms * 1e3)) | \(fmt(gflop / tms * 1e3, 1)) | \(fmt(tms / ms, 2)) "
                  + "| \(fmt(ceiling, 1)) (\(fmt(ceilingOB, 1))) | \(fmt(tmm, 1)) | \(fmt(achieved / best, 2)) | \(fmt(100 * achieved / peak)) % "
                  + "| \(fmt(number(r, "rss_mb"))) | \(fmt(t.map { number($0, "rss_mb") } ?? .nan)) |")
        }
        print("")
    }

    let gemms = rows.filter { $0["impl"] as? String == "gemm" }
    if !gemms.isEmpty {
        let labels = gemms.map { text($0, "label") }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        print("GEMM libraries at the train step's linear-layer shapes (forward, dx, dW; FLOP-weighted GFLOP/s of one pass, "
              + "median of 3 after a warm-up; each library with its own threads; % of the fp32 peak of those threads' cores):")
        print("| library | threads | " + labels.map { "\($0) GFLOP/s | % of peak" }.joined(separator: " | ") + " | vs OpenBLAS |")
        print("|---|---:|" + String(repeating: "---:|---:|", count: labels.count) + "---:|")
        let perCore = machine.map { number($0, "peak_gflops") / max(1, number($0, "cores")) } ?? .nan
        let groups = gemms.map { "\(text($0, "library"))/\(text($0, "threads"))" }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        for g in groups {
            let mine = gemms.filter { "\(text($0, "library"))/\(text($0, "threads"))" == g }
            guard let first = mine.first else { continue }
            let threadsHere = number(first, "threads")
            let base = gemms.filter { text($0, "library") == "OpenBLAS" && number($0, "threads") == threadsHere }
            var cells: [String] = [], ratios: [Double] = []
            for label in labels {
                let v = mine.first { text($0, "label") == label }.map { number($0, "gflops") } ?? .nan
                let b = base.first { text($0, "label") == label }.map { number($0, "gflops") } ?? .nan
                cells.append("\(fmt(v, 1)) | \(fmt(100 * v / (perCore * threadsHere))) %")
                if !v.isNaN && !b.isNaN { ratios.append(v / b) }
            }
            let core = text(first, "core").isEmpty ? "" : " (\(text(first, "core")))"
            print("| \(text(first, "library"))\(core) | \(fmt(threadsHere)) | " + cells.joined(separator: " | ")
                  + " | \(ratios.map { fmt($0, 2) }.joined(separator: " / ")) |")
        }
        print("")
    }

    let scale = rows.filter { $0["impl"] as? String == "csslm-scale" }.sorted { number($0, "ranks") < number($1, "ranks") }
    guard let base = scale.first else { return }
    print("Scaling on this machine (train step, global batch \(text(base, "batch")) × seq \(text(base, "seq")), \(text(base, "model")), "
          + "gradient \(fmt(number(base, "gradient_mb"), 1)) MB allreduced in 25 MB buckets after backward):")
    print("| ranks × threads | step ms | compute ms (fwd+bwd) | wait for slowest rank ms | allreduce ms | allreduce / step | tokens/s | speedup vs first row |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in scale {
        let step = number(r, "step_ms")
        print("| \(text(r, "ranks")) × \(text(r, "threads")) | \(fmt(step)) | \(fmt(number(r, "compute_ms"))) | \(fmt(number(r, "wait_ms"), 1)) | \(fmt(number(r, "allreduce_ms"), 1)) "
              + "| \(fmt(100 * number(r, "allreduce_ms") / step, 1)) % | \(fmt(number(r, "tokens_per_s"))) | \(fmt(number(base, "step_ms") / step, 2)) |")
    }
    print("")

    // The across-nodes model of docs/performance.md with this run's inputs: one rank per node
    // (all its cores), local batch as measured, ring allreduce of the gradient after backward.
    let node = ours.first { text($0, "model") == text(base, "model") && text($0, "mode") == "train"
        && text($0, "batch") == text(base, "batch") && text($0, "seq") == text(base, "seq") }
    guard let node else { return }
    let tNode = number(node, "ms") / 1e3, bytes = number(base, "gradient_mb") * 1e6
    let buckets = (bytes / Double(25 << 20)).rounded(.up) + 1, alpha = 50e-6
    print("Model (docs/performance.md): step(N) = t_node + 2(N−1)/N · S/β + 2(N−1) · k · α, with t_node = \(fmt(tNode * 1e3)) ms "
          + "(\(text(node, "model")) train step, batch \(text(node, "batch")) × \(text(node, "seq")), \(text(node, "threads")) threads, measured above), "
          + "S = \(fmt(bytes / 1e6, 1)) MB, k = \(fmt(buckets)) buckets, α = 50 µs (assumed TCP latency). Predicted step ms / scaling efficiency t_node / step(N):")
    let links: [(String, Double)] = [("1 GbE", 0.125e9), ("10 GbE", 1.25e9), ("25 GbE", 3.125e9), ("100 Gb/s", 12.5e9)]
    print("| nodes N | " + links.map { $0.0 }.joined(separator: " | ") + " |")
    print("|---:|" + String(repeating: "---:|", count: links.count))
    for n in [2.0, 4, 8, 16, 64] {
        let cells = links.map { link -> String in
            let step = tNode + 2 * (n - 1) / n * bytes / link.1 + 2 * (n - 1) * buckets * alpha
            return "\(fmt(step * 1e3)) / \(fmt(tNode / step, 2))"
        }
        print("| \(fmt(n)) | " + cells.joined(separator: " | ") + " |")
    }
    print("")
}
