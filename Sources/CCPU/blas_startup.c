// Before main: make OpenBLAS run the kernels of the CPU it is on.
//
// OpenBLAS (DYNAMIC_ARCH builds, as Debian's) picks its kernels once, in its library constructor,
// from cpuid, and falls back to its oldest x86-64 kernels ("Prescott", ~5× slower) on a CPU newer
// than its tables. It reads OPENBLAS_CORETYPE only then. So this constructor, which runs after
// the libraries' constructors and before main (of csslm, csslm-bench, csslm-mpitest and the test
// bundle alike), compares openblas_get_corename() with what cpuid offers and, when OpenBLAS chose
// below the CPU, sets OPENBLAS_CORETYPE and re-executes /proc/self/exe with the same arguments:
// the same pid (mpirun's bookkeeping holds), before MPI_Init. A user's own OPENBLAS_CORETYPE is
// kept. Environment, all set here and read only here (and by `csslm doctor` through the state):
//   CSSLM_OPENBLAS_CORETYPE          the value csslm set (inherited by children: not the user's)
//   CSSLM_BLAS_REEXEC_PID            the pid that re-executed (so a re-executed process never loops)
//   CSSLM_BLAS_FIRST_CORE            the core OpenBLAS chose before the re-execution
//   CSSLM_BLAS_SIMULATE_UNKNOWN_CPU  tests only: treat the OPENBLAS_CORETYPE of the environment as
//                                    OpenBLAS's own choice, i.e. simulate a CPU OpenBLAS does not know
#include "ccpu.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static csslm_blas_startup_state state;

const csslm_blas_startup_state *csslm_blas_startup(void) { return &state; }

#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__)
// Weak: a program that links this file without OpenBLAS skips the check.
extern char *openblas_get_corename(void) __attribute__((weak));

static void copy(char *to, const char *from, size_t size) {
    snprintf(to, size, "%s", from ? from : "");
}

// glibc passes (argc, argv, envp) to the constructors of the executable.
__attribute__((constructor)) static void csslm_blas_check(int argc, char **argv, char **envp) {
    (void)argc;
    (void)envp;
    if (!openblas_get_corename) return;
    const char *chosen = openblas_get_corename();
    copy(state.first, chosen, sizeof state.first);
    const char *env = getenv("OPENBLAS_CORETYPE"), *mine = getenv("CSSLM_OPENBLAS_CORETYPE");
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());

    const char *reexecPid = getenv("CSSLM_BLAS_REEXEC_PID");
    if (reexecPid && strcmp(reexecPid, pid) == 0) {  // this process is the re-execution
        copy(state.first, getenv("CSSLM_BLAS_FIRST_CORE"), sizeof state.first);
        copy(state.target, mine, sizeof state.target);
        state.action = mine && strcasecmp(chosen, mine) == 0 ? CSSLM_BLAS_REEXECUTED : CSSLM_BLAS_IGNORED;
        unsetenv("CSSLM_BLAS_REEXEC_PID");
        unsetenv("CSSLM_BLAS_FIRST_CORE");
        return;
    }
    int origin = !env || !*env ? CSSLM_CORE_FROM_OPENBLAS
               : (mine && strcmp(mine, env) == 0 ? CSSLM_CORE_FROM_CSSLM : CSSLM_CORE_FROM_USER);
    const char *simulate = getenv("CSSLM_BLAS_SIMULATE_UNKNOWN_CPU");
    if (simulate && *simulate && strcmp(simulate, "0") != 0 && origin == CSSLM_CORE_FROM_USER) origin = CSSLM_CORE_FROM_OPENBLAS;
    unsetenv("CSSLM_BLAS_SIMULATE_UNKNOWN_CPU");

    csslm_cpu_features f;
    csslm_cpu_detect(&f);
    const char *target = csslm_openblas_core_decision(chosen, &f, origin);
    if (!target) {
        state.action = origin == CSSLM_CORE_FROM_USER ? CSSLM_BLAS_USER
                     : origin == CSSLM_CORE_FROM_CSSLM ? CSSLM_BLAS_INHERITED : CSSLM_BLAS_KEPT;
        return;
    }
    copy(state.target, target, sizeof state.target);
    setenv("OPENBLAS_CORETYPE", target, 1);
    setenv("CSSLM_OPENBLAS_CORETYPE", target, 1);
    setenv("CSSLM_BLAS_FIRST_CORE", chosen, 1);
    setenv("CSSLM_BLAS_REEXEC_PID", pid, 1);
    fflush(NULL);
    execv("/proc/self/exe", argv);
    // Still here: run on OpenBLAS's choice, and leave children to decide for themselves.
    state.action = CSSLM_BLAS_EXEC_FAILED;
    state.exec_errno = errno;
    if (env) setenv("OPENBLAS_CORETYPE", env, 1); else unsetenv("OPENBLAS_CORETYPE");
    unsetenv("CSSLM_OPENBLAS_CORETYPE");
    unsetenv("CSSLM_BLAS_FIRST_CORE");
    unsetenv("CSSLM_BLAS_REEXEC_PID");
}
#endif
