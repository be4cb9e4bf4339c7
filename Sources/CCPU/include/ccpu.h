// CPU features (cpuid + xgetbv) and the choice of OpenBLAS core for this CPU, in C because Swift
// has no inline assembly and because the choice must act before main (see blas_startup.c).
#pragma once
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/// What the CPU offers, each vector extension already AND-ed with the OS's support for its
/// register state (XCR0), as OpenBLAS and the kernel's /proc/cpuinfo flags do. All zero off x86-64.
typedef struct {
    char vendor[16];                 // "GenuineIntel", "AuthenticAMD", ...
    unsigned family, model, stepping; // display family and model (extended fields folded in)
    bool sse2, sse3, ssse3, sse4_1, sse4_2;
    bool avx, fma, avx2;
    bool avx512f, avx512dq, avx512cd, avx512bw, avx512vl, avx512_vnni, avx512_bf16;
    bool amx_tile, amx_bf16;
} csslm_cpu_features;

/// Fills `out` from cpuid and xgetbv of the calling CPU.
void csslm_cpu_detect(csslm_cpu_features *out);

/// Instruction-set levels of OpenBLAS's x86-64 cores.
enum {
    CSSLM_ISA_NONE = -1,  // not an x86-64 core name OpenBLAS uses (or not a known one)
    CSSLM_ISA_SSE = 0,    // Prescott, Core2, Nehalem, Barcelona, ...: SSE2/SSE3 kernels
    CSSLM_ISA_AVX = 1,    // Sandybridge, Bulldozer, Piledriver, Steamroller
    CSSLM_ISA_AVX2 = 2,   // Haswell, Zen, Excavator: AVX2 + FMA kernels
    CSSLM_ISA_AVX512 = 3, // SkylakeX, Cooperlake, SapphireRapids
};

/// The level of an OpenBLAS core name (openblas_get_corename()); CSSLM_ISA_NONE when unknown.
int csslm_openblas_core_level(const char *core);

/// The highest level the CPU offers (with OS support).
int csslm_cpu_level(const csslm_cpu_features *f);

/// The OpenBLAS core to run on this CPU: Cooperlake (AVX-512 with BF16) or SkylakeX (AVX-512F,
/// CD, BW, DQ, VL), Zen (AMD) or Haswell (others) for AVX2 + FMA, Sandybridge for AVX; NULL
/// below AVX (OpenBLAS's own choice is as good as any there) and off x86-64.
const char *csslm_openblas_core_for(const csslm_cpu_features *f);

/// Where the OPENBLAS_CORETYPE of the environment came from.
enum {
    CSSLM_CORE_FROM_OPENBLAS = 0, // unset: OpenBLAS chose the core from cpuid itself
    CSSLM_CORE_FROM_USER = 1,     // set by the user (respected, whatever it says)
    CSSLM_CORE_FROM_CSSLM = 2,    // set by a csslm parent process (CSSLM_OPENBLAS_CORETYPE equals it)
};

/// The decision: the OPENBLAS_CORETYPE to set (and re-execute with), or NULL to keep `chosen`.
/// `chosen` is openblas_get_corename(). A user's setting is kept; OpenBLAS's own choice is
/// replaced when its level is below the CPU's; a value inherited from csslm when its level is not
/// the CPU's (a process that moved to another kind of CPU). An unknown core name is kept.
const char *csslm_openblas_core_decision(const char *chosen, const csslm_cpu_features *f, int origin);

/// What happened at start-up (blas_startup.c), for the log line and `csslm doctor`.
enum {
    CSSLM_BLAS_NOT_CHECKED = 0,  // not x86-64 Linux, or OpenBLAS not linked
    CSSLM_BLAS_KEPT = 1,         // OpenBLAS's own choice fits the CPU
    CSSLM_BLAS_USER = 2,         // the user's OPENBLAS_CORETYPE, kept
    CSSLM_BLAS_INHERITED = 3,    // OPENBLAS_CORETYPE set by a csslm parent, fits the CPU
    CSSLM_BLAS_REEXECUTED = 4,   // OpenBLAS chose too low: re-executed with OPENBLAS_CORETYPE = target
    CSSLM_BLAS_IGNORED = 5,      // re-executed, but the library did not take the core (not DYNAMIC_ARCH?)
    CSSLM_BLAS_EXEC_FAILED = 6,  // the re-execution failed: running on OpenBLAS's choice
};

typedef struct {
    int action;          // CSSLM_BLAS_*
    char first[32];      // the core OpenBLAS chose first (before any re-execution)
    char target[32];     // the core csslm asked for (REEXECUTED, IGNORED, EXEC_FAILED)
    int exec_errno;      // errno of a failed execv
} csslm_blas_startup_state;

/// The start-up state of this process.
const csslm_blas_startup_state *csslm_blas_startup(void);

#ifdef __cplusplus
}
#endif
