// cpuid/xgetbv feature detection and the OpenBLAS core decision (pure functions; ccpu.h).
#include "ccpu.h"
#include <string.h>
#include <strings.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

void csslm_cpu_detect(csslm_cpu_features *out) {
    memset(out, 0, sizeof *out);
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    unsigned maxLeaf = a;
    memcpy(out->vendor, &b, 4);
    memcpy(out->vendor + 4, &d, 4);
    memcpy(out->vendor + 8, &c, 4);
    __get_cpuid(1, &a, &b, &c, &d);
    unsigned baseFamily = (a >> 8) & 0xf, baseModel = (a >> 4) & 0xf;
    out->family = baseFamily == 0xf ? baseFamily + ((a >> 20) & 0xff) : baseFamily;
    out->model = (baseFamily == 6 || baseFamily == 0xf) ? baseModel | (((a >> 16) & 0xf) << 4) : baseModel;
    out->stepping = a & 0xf;
    out->sse2 = d >> 26 & 1;
    out->sse3 = c & 1;
    out->ssse3 = c >> 9 & 1;
    out->sse4_1 = c >> 19 & 1;
    out->sse4_2 = c >> 20 & 1;
    bool osxsave = c >> 27 & 1, fma = c >> 12 & 1, avx = c >> 28 & 1;
    // XCR0: which register states the OS saves (bits 1–2 XMM/YMM, 5–7 opmask/ZMM, 17–18 AMX tiles).
    unsigned long long xcr0 = 0;
    if (osxsave) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = ((unsigned long long)hi << 32) | lo;
    }
    bool osAVX = (xcr0 & 0x6) == 0x6, osAVX512 = osAVX && (xcr0 & 0xe0) == 0xe0;
    bool osAMX = (xcr0 & 0x60000) == 0x60000;
    out->avx = avx && osAVX;
    out->fma = fma && osAVX;
    if (maxLeaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        unsigned maxSub = a;
        out->avx2 = (b >> 5 & 1) && osAVX;
        out->avx512f = (b >> 16 & 1) && osAVX512;
        out->avx512dq = (b >> 17 & 1) && osAVX512;
        out->avx512cd = (b >> 28 & 1) && osAVX512;
        out->avx512bw = (b >> 30 & 1) && osAVX512;
        out->avx512vl = (b >> 31 & 1) && osAVX512;
        out->avx512_vnni = (c >> 11 & 1) && osAVX512;
        out->amx_bf16 = (d >> 22 & 1) && osAMX;
        out->amx_tile = (d >> 24 & 1) && osAMX;
        if (maxSub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            out->avx512_bf16 = (a >> 5 & 1) && osAVX512;
        }
    }
#endif
}

static const char *const sseCores[] = {
    "Katmai", "Coppermine", "Northwood", "Prescott", "Banias", "Atom", "Core2", "Penryn", "Dunnington",
    "Nehalem", "Athlon", "Opteron", "Opteron_SSE3", "Opteron(SSE3)", "Barcelona", "Nano", "Bobcat", "Unknown", 0};
static const char *const avxCores[] = {"Sandybridge", "Bulldozer", "Piledriver", "Steamroller", 0};
static const char *const avx2Cores[] = {"Haswell", "Zen", "Excavator", 0};
static const char *const avx512Cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids", 0};

static bool listed(const char *core, const char *const *names) {
    for (; *names; names++)
        if (strcasecmp(core, *names) == 0) return true;
    return false;
}

int csslm_openblas_core_level(const char *core) {
    if (!core) return CSSLM_ISA_NONE;
    if (listed(core, avx512Cores)) return CSSLM_ISA_AVX512;
    if (listed(core, avx2Cores)) return CSSLM_ISA_AVX2;
    if (listed(core, avxCores)) return CSSLM_ISA_AVX;
    if (listed(core, sseCores)) return CSSLM_ISA_SSE;
    return CSSLM_ISA_NONE;
}

int csslm_cpu_level(const csslm_cpu_features *f) {
    if (f->avx512f && f->avx512cd && f->avx512bw && f->avx512dq && f->avx512vl) return CSSLM_ISA_AVX512;
    if (f->avx2 && f->fma) return CSSLM_ISA_AVX2;
    if (f->avx) return CSSLM_ISA_AVX;
    if (f->sse2) return CSSLM_ISA_SSE;
    return CSSLM_ISA_NONE;
}

const char *csslm_openblas_core_for(const csslm_cpu_features *f) {
    switch (csslm_cpu_level(f)) {
    case CSSLM_ISA_AVX512: return f->avx512_bf16 ? "Cooperlake" : "SkylakeX";
    case CSSLM_ISA_AVX2: return strcmp(f->vendor, "AuthenticAMD") == 0 || strcmp(f->vendor, "HygonGenuine") == 0 ? "Zen" : "Haswell";
    case CSSLM_ISA_AVX: return "Sandybridge";
    default: return 0;
    }
}

const char *csslm_openblas_core_decision(const char *chosen, const csslm_cpu_features *f, int origin) {
    if (origin == CSSLM_CORE_FROM_USER) return 0;
    const char *best = csslm_openblas_core_for(f);
    int have = csslm_openblas_core_level(chosen);
    if (!best || have == CSSLM_ISA_NONE) return 0;
    int want = csslm_openblas_core_level(best);
    if (have < want) return best;
    if (origin == CSSLM_CORE_FROM_CSSLM && have > want) return best;
    return 0;
}
