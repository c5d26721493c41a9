// dist.h — the processes of a data-parallel run (docs/mpi.md): MPI when `train` was built with it
// (make MPI=1, the default when OpenMPI's mpicc is found) and started by mpirun, else one process.
// dist/dist.c is the only file that includes mpi.h; without MPI every call below is the one-process
// identity (size 1, sums and maxima of one value), so callers need no #ifdef.
#ifndef ATTNLAB_DIST_H
#define ATTNLAB_DIST_H

#include <stddef.h>
#include <stdint.h>

// 1 if this binary was built with MPI.
int dist_built_with_mpi(void);
// Start: MPI_Init only when launched by mpirun (its environment says so), so a plain `./train` never
// starts MPI. Returns 0, or -1 with one line in err (launched by mpirun but built without MPI).
int dist_init(int *argc, char ***argv, char *err, size_t errlen);
// MPI_Finalize if dist_init started MPI.
void dist_finalize(void);
int dist_rank(void);        // 0 .. size-1
int dist_size(void);        // ranks in the run (1 without mpirun)
int dist_local_size(void);  // ranks on this machine (threads per rank default to cores / this)

// Collectives over every rank, all in place. Each rank must make the same calls in the same order.
void dist_sum_floats(float *v, size_t n);   // one MPI_Allreduce(SUM) of n floats (n < 2^31)
void dist_sum_doubles(double *v, int n);
void dist_max_ints(int *v, int n);
void dist_bcast_double(double *v);          // rank 0's value to every rank
void dist_barrier(void);
// Every rank's count (all[r] = rank r's n), then every rank's ints concatenated by rank into all_rows.
void dist_allgather_int(int n, int *all);
void dist_allgatherv_i32(const int32_t *mine, int n, int32_t *all_rows, const int *counts);
// 1 if h is the same on every rank.
int dist_all_equal_u64(uint64_t h);

#endif
