// dist.c — MPI behind dist.h (the only file that includes mpi.h), or one process without it.
#include "dist/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Launched by mpirun (OpenMPI's, or a PMI/PMIx launcher): MPI is started, else the run is one process.
static int launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE");
}

#ifdef ATTNLAB_MPI
#include <mpi.h>

static int g_started, g_rank, g_size = 1, g_local = 1;

int dist_built_with_mpi(void) { return 1; }

int dist_init(int *argc, char ***argv, char *err, size_t errlen) {
    (void)err, (void)errlen;
    if (!launched_by_mpirun()) return 0;
    MPI_Init(argc, argv);
    g_started = 1;
    // A failed collective ends every rank (the default handler aborts the job): no rank waits forever.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &g_local);
    MPI_Comm_free(&local);
    return 0;
}

void dist_finalize(void) {
    if (g_started) MPI_Finalize();
    g_started = 0;
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_local_size(void) { return g_local; }

void dist_sum_floats(float *v, size_t n) {
    if (g_size > 1) MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
void dist_sum_doubles(double *v, int n) {
    if (g_size > 1) MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
void dist_max_ints(int *v, int n) {
    if (g_size > 1) MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
}
void dist_bcast_double(double *v) {
    if (g_size > 1) MPI_Bcast(v, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
}
void dist_barrier(void) {
    if (g_size > 1) MPI_Barrier(MPI_COMM_WORLD);
}
void dist_allgather_int(int n, int *all) {
    if (g_size > 1) MPI_Allgather(&n, 1, MPI_INT, all, 1, MPI_INT, MPI_COMM_WORLD);
    else all[0] = n;
}
void dist_allgatherv_i32(const int32_t *mine, int n, int32_t *all_rows, const int *counts) {
    if (g_size == 1) {
        memcpy(all_rows, mine, (size_t)n * sizeof *mine);
        return;
    }
    int *displs = malloc((size_t)g_size * sizeof *displs);
    if (!displs) MPI_Abort(MPI_COMM_WORLD, 1);
    for (int r = 0, d = 0; r < g_size; r++) displs[r] = d, d += counts[r];
    MPI_Allgatherv(mine, n, MPI_INT32_T, all_rows, counts, displs, MPI_INT32_T, MPI_COMM_WORLD);
    free(displs);
}
int dist_all_equal_u64(uint64_t h) {
    if (g_size == 1) return 1;
    uint64_t mm[2] = {h, ~h};  // max(h) and max(~h) = ~min(h): equal everywhere iff max == min
    MPI_Allreduce(MPI_IN_PLACE, mm, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    return mm[0] == ~mm[1];
}

#else  // one process

int dist_built_with_mpi(void) { return 0; }
int dist_init(int *argc, char ***argv, char *err, size_t errlen) {
    (void)argc, (void)argv;
    if (!launched_by_mpirun()) return 0;
    snprintf(err, errlen, "this train was built without MPI, but mpirun started it; rebuild with make MPI=1 "
             "(needs libopenmpi-dev and openmpi-bin)");
    return -1;
}
void dist_finalize(void) {}
int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }
int dist_local_size(void) { return 1; }
void dist_sum_floats(float *v, size_t n) { (void)v, (void)n; }
void dist_sum_doubles(double *v, int n) { (void)v, (void)n; }
void dist_max_ints(int *v, int n) { (void)v, (void)n; }
void dist_bcast_double(double *v) { (void)v; }
void dist_barrier(void) {}
void dist_allgather_int(int n, int *all) { all[0] = n; }
void dist_allgatherv_i32(const int32_t *mine, int n, int32_t *all_rows, const int *counts) {
    (void)counts;
    memcpy(all_rows, mine, (size_t)n * sizeof *mine);
}
int dist_all_equal_u64(uint64_t h) { (void)h; return 1; }

#endif
