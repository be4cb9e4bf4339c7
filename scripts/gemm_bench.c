// GEMM timing for scripts/bench.sh: the same row-major sgemm shapes through one library, built
// once per library (-DUSE_BLIS: BLIS's CBLAS layer, libblis-dev; -DUSE_DNNL: oneDNN's dnnl_sgemm,
// libdnnl-dev; default: OpenBLAS's cblas_sgemm). Prints one JSON line:
//   {"impl": "gemm", "library": ..., "threads": T, "label": ..., "gflops": FLOP-weighted GFLOP/s
//    over the shapes (median of R passes after a warm-up pass), "shapes": [per-shape GFLOP/s]}
//
//   gemm_bench LABEL THREADS REPEATS M,N,K,TA,TB [M,N,K,TA,TB ...]   (TA, TB: 0 or 1)
// Threads: set by the caller through the library's own variable (OPENBLAS_NUM_THREADS,
// BLIS_NUM_THREADS, OMP_NUM_THREADS); THREADS is only reported.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(USE_DNNL)
#include <dnnl.h>
static const char *library = "oneDNN";
#else
#include <cblas.h>
#if defined(USE_BLIS)
static const char *library = "BLIS";
#else
extern char *openblas_get_corename(void);
static const char *library = "OpenBLAS";
#endif
#endif

typedef struct { int m, n, k, ta, tb; } shape;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void gemm(const shape *s, const float *a, const float *b, float *c) {
    int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
#if defined(USE_DNNL)
    dnnl_sgemm(s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->m, s->n, s->k, 1.f, a, lda, b, ldb, 0.f, c, s->n);
#else
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
                s->m, s->n, s->k, 1.f, a, lda, b, ldb, 0.f, c, s->n);
#endif
}

static int cmp(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: gemm_bench LABEL THREADS REPEATS M,N,K,TA,TB ...\n");
        return 2;
    }
    const char *label = argv[1];
    int threads = atoi(argv[2]), repeats = atoi(argv[3]), count = argc - 4;
    shape *shapes = calloc(count, sizeof *shapes);
    size_t maxA = 0, maxB = 0, maxC = 0;
    for (int i = 0; i < count; i++) {
        shape *s = &shapes[i];
        if (sscanf(argv[4 + i], "%d,%d,%d,%d,%d", &s->m, &s->n, &s->k, &s->ta, &s->tb) != 5) {
            fprintf(stderr, "bad shape %s\n", argv[4 + i]);
            return 2;
        }
        if ((size_t)s->m * s->k > maxA) maxA = (size_t)s->m * s->k;
        if ((size_t)s->n * s->k > maxB) maxB = (size_t)s->n * s->k;
        if ((size_t)s->m * s->n > maxC) maxC = (size_t)s->m * s->n;
    }
    float *a = aligned_alloc(64, (maxA * 4 + 63) / 64 * 64), *b = aligned_alloc(64, (maxB * 4 + 63) / 64 * 64);
    float *c = aligned_alloc(64, (maxC * 4 + 63) / 64 * 64);
    for (size_t j = 0; j < maxA; j++) a[j] = (float)(j % 7) * 0.01f;
    for (size_t j = 0; j < maxB; j++) b[j] = (float)(j % 5) * 0.01f;
    memset(c, 0, maxC * 4);
    double *seconds = calloc((size_t)count * repeats, sizeof *seconds), *total = calloc(repeats, sizeof *total);
    double flops = 0;
    for (int i = 0; i < count; i++) flops += 2.0 * shapes[i].m * shapes[i].n * shapes[i].k;
    for (int i = 0; i < count; i++) gemm(&shapes[i], a, b, c);  // warm-up
    for (int r = 0; r < repeats; r++)
        for (int i = 0; i < count; i++) {
            double t0 = now();
            gemm(&shapes[i], a, b, c);
            seconds[i * repeats + r] = now() - t0;
            total[r] += seconds[i * repeats + r];
        }
    qsort(total, repeats, sizeof *total, cmp);
    const char *core = "";
#if !defined(USE_DNNL) && !defined(USE_BLIS)
    core = openblas_get_corename();
#endif
    printf("{\"impl\": \"gemm\", \"library\": \"%s\", \"core\": \"%s\", \"label\": \"%s\", \"threads\": %d, \"gflops\": %.2f, \"shapes\": [",
           library, core, label, threads, flops / total[repeats / 2] / 1e9);
    for (int i = 0; i < count; i++) {
        qsort(seconds + i * repeats, repeats, sizeof *seconds, cmp);
        const shape *s = &shapes[i];
        printf("%s{\"m\": %d, \"n\": %d, \"k\": %d, \"ta\": %d, \"tb\": %d, \"gflops\": %.2f}", i ? ", " : "", s->m, s->n, s->k,
               s->ta, s->tb, 2.0 * s->m * s->n * s->k / seconds[i * repeats + repeats / 2] / 1e9);
    }
    printf("]}\n");
    return 0;
}
