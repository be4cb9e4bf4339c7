// How the kernels use the cores: a fixed number of compute threads per process, and work split
// into that many contiguous parts, each part's sgemm single-threaded.
//
// Why not OpenBLAS's own threads: after every GEMM its idle workers spin in sched_yield for a
// while, so a single-threaded loop of ours that follows (softmax, LayerNorm, GELU, dropout) ran
// next to a spinning core; and two single-threaded sgemms on halves of the rows run faster than
// one two-threaded sgemm at BERT shapes (2 × 1 thread keep their one-thread speed, 1 × 2 threads
// do not: docs/design.md#kernels-and-threads). So when the kernels split their own work, OpenBLAS
// is set to one thread and every GEMM, attention head and elementwise row loop is divided here.
import CBLAS
import Dispatch
import Foundation

/// The number of threads the kernels of this process split their work over.
///
/// Read once from the environment: `CSSLM_THREADS`, else `OPENBLAS_NUM_THREADS` (the launch
/// rule: cores / ranks per node), else OpenBLAS's default (the core count). Above 1, OpenBLAS
/// itself is set to one thread: direct `cblas_*` callers then run single-threaded, so large
/// products should go through `sgemm` below.
public enum ComputeThreads {
    public static let count: Int = {
        let env = ProcessInfo.processInfo.environment
        let requested = env["CSSLM_THREADS"].flatMap { Int($0) }
            ?? env["OPENBLAS_NUM_THREADS"].flatMap { Int($0) }
            ?? Int(openblas_get_num_threads())
        let n = max(1, requested)
        if n > 1 { openblas_set_num_threads(1) }
        return n
    }()
}

/// Calls `body(part, range)` for `ComputeThreads.count` contiguous parts of `0..<n`, in parallel,
/// part `i` always covering the same range (so per-part results are deterministic). Part
/// boundaries are multiples of `align`; with fewer than `2 · minPerPart` items it runs inline.
@inline(__always)
func parallelParts(_ n: Int, align: Int = 1, minPerPart: Int = 1, _ body: (_ part: Int, _ range: Range<Int>) -> Void) {
    let threads = ComputeThreads.count
    let units = (n + align - 1) / align
    let parts = min(threads, units, max(1, n / max(1, minPerPart)))
    if parts <= 1 {
        if n > 0 { body(0, 0..<n) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: parts) { i in
        let range = partRange(n, part: i, of: parts, align: align)
        if !range.isEmpty { body(i, range) }
    }
}

/// The `part`-th of `parts` contiguous pieces of 0..<n, boundaries multiples of `align`.
@inline(__always)
func partRange(_ n: Int, part: Int, of parts: Int, align: Int = 1) -> Range<Int> {
    let units = (n + align - 1) / align
    return min(n, units * part / parts * align)..<min(n, units * (part + 1) / parts * align)
}

/// C[M, N] = α · op(A) · op(B) + β · C, row-major (op = transpose when the flag is set; A is
/// [M, K] or [K, M], B is [K, N] or [N, K]), with the M rows of C split over the compute threads:
/// one single-threaded sgemm per part.
public func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    guard m > 0 && n > 0 else { return }
    parallelParts(m, align: 16, minPerPart: 64) { _, rows in
        sgemmSerial(transA: transA, transB: transB, m: rows.count, n: n, k: k, alpha: alpha,
                    a: transA ? a + rows.lowerBound : a + rows.lowerBound * lda, lda: lda, b: b, ldb: ldb,
                    beta: beta, c: c + rows.lowerBound * ldc, ldc: ldc)
    }
}

/// One sgemm on the calling thread (inside a part of `parallelParts`), same arguments as `sgemm`.
@inline(__always)
func sgemmSerial(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                 a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                 beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}
