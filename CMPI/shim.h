// Open MPI for Swift. Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE, ...)
// are macros that cast the address of a global, which Swift's importer skips. Each one is exposed
// here through a `static inline` getter; `swift_name("getter:NAME()")` makes Swift read it as a
// global constant spelled like the C macro. Plain integer macros and enums (MPI_SUCCESS,
// MPI_THREAD_*, MPI_MAX_ERROR_STRING) import on their own; they get `CSSLM_`-prefixed getters too
// so Swift code can name them with the type MPI functions take (Int32) whatever the header does.
#pragma once
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#define CSSLM_MPI_GETTER(type, name, value) \
    static inline __attribute__((swift_name("getter:" #name "()"))) type csslm_get_##name(void) { return (value); }

// Communicators and error handlers.
CSSLM_MPI_GETTER(MPI_Comm, MPI_COMM_WORLD, MPI_COMM_WORLD)
CSSLM_MPI_GETTER(MPI_Comm, MPI_COMM_SELF, MPI_COMM_SELF)
CSSLM_MPI_GETTER(MPI_Comm, MPI_COMM_NULL, MPI_COMM_NULL)
CSSLM_MPI_GETTER(MPI_Errhandler, MPI_ERRORS_RETURN, MPI_ERRORS_RETURN)
CSSLM_MPI_GETTER(MPI_Errhandler, MPI_ERRORS_ARE_FATAL, MPI_ERRORS_ARE_FATAL)
CSSLM_MPI_GETTER(MPI_Request, MPI_REQUEST_NULL, MPI_REQUEST_NULL)

// Datatypes.
CSSLM_MPI_GETTER(MPI_Datatype, MPI_FLOAT, MPI_FLOAT)
CSSLM_MPI_GETTER(MPI_Datatype, MPI_DOUBLE, MPI_DOUBLE)
CSSLM_MPI_GETTER(MPI_Datatype, MPI_INT, MPI_INT)
CSSLM_MPI_GETTER(MPI_Datatype, MPI_INT32_T, MPI_INT32_T)
CSSLM_MPI_GETTER(MPI_Datatype, MPI_INT64_T, MPI_INT64_T)
CSSLM_MPI_GETTER(MPI_Datatype, MPI_UINT64_T, MPI_UINT64_T)
CSSLM_MPI_GETTER(MPI_Datatype, MPI_UINT8_T, MPI_UINT8_T)
CSSLM_MPI_GETTER(MPI_Datatype, MPI_BYTE, MPI_BYTE)
CSSLM_MPI_GETTER(MPI_Datatype, MPI_CHAR, MPI_CHAR)

// Reduction operations.
CSSLM_MPI_GETTER(MPI_Op, MPI_SUM, MPI_SUM)
CSSLM_MPI_GETTER(MPI_Op, MPI_MAX, MPI_MAX)
CSSLM_MPI_GETTER(MPI_Op, MPI_MIN, MPI_MIN)

// Special buffer addresses and ignorable outputs.
CSSLM_MPI_GETTER(void *, MPI_IN_PLACE, MPI_IN_PLACE)
CSSLM_MPI_GETTER(MPI_Status *, MPI_STATUS_IGNORE, MPI_STATUS_IGNORE)
CSSLM_MPI_GETTER(MPI_Status *, MPI_STATUSES_IGNORE, MPI_STATUSES_IGNORE)

// Integer constants, as Int32 whatever the header declares.
CSSLM_MPI_GETTER(int, CSSLM_MPI_SUCCESS, MPI_SUCCESS)
CSSLM_MPI_GETTER(int, CSSLM_MPI_MAX_ERROR_STRING, MPI_MAX_ERROR_STRING)
CSSLM_MPI_GETTER(int, CSSLM_MPI_MAX_PROCESSOR_NAME, MPI_MAX_PROCESSOR_NAME)
CSSLM_MPI_GETTER(int, CSSLM_MPI_THREAD_SINGLE, MPI_THREAD_SINGLE)
CSSLM_MPI_GETTER(int, CSSLM_MPI_THREAD_FUNNELED, MPI_THREAD_FUNNELED)
CSSLM_MPI_GETTER(int, CSSLM_MPI_THREAD_SERIALIZED, MPI_THREAD_SERIALIZED)
CSSLM_MPI_GETTER(int, CSSLM_MPI_THREAD_MULTIPLE, MPI_THREAD_MULTIPLE)

#undef CSSLM_MPI_GETTER
