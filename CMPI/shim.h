// Open MPI for Swift. Open MPI's handles are macros over globals that Swift cannot import,
// so each is exposed through a static inline getter (filled in by the distributed runtime).
#pragma once
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>
