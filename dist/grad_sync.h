// grad_sync.h — sums every rank's gradients so that each rank holds the gradient of the whole batch
// (docs/mpi.md). Each rank's backward has put in its rows' share (loss scaled by its fraction of the
// batch's scored targets), so the sum is the full batch's gradient.
//  - Dense trainable tensors: the gradient arena's trainable stretches (buffers skipped), in arena
//    order, cut into buckets of GRAD_SYNC_BUCKET floats, one MPI_Allreduce each, in place. The order
//    and sizes never change, so the reduction (and its rounding) repeats exactly.
//  - Sparse-rows tensors (pkm's values): the touched lists are gathered, and every rank rebuilds its
//    list as the union in one canonical order (rank 0's rows in its order, then rank 1's new ones, ...),
//    so zeroing, the norm, clipping and lazy Adam then walk the same rows in the same order on every
//    rank; those rows' gradients are packed, summed in buckets, and unpacked.
// After it every rank has bit-identical gradients (MPI_Allreduce gives every rank the same sum), so
// the global norm, clipping and AdamW are computed identically everywhere.
#ifndef ATTNLAB_GRAD_SYNC_H
#define ATTNLAB_GRAD_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "model/params.h"

enum { GRAD_SYNC_BUCKET = 1 << 18 };  // floats per MPI_Allreduce (1 MiB)

typedef struct {
    size_t *run_off, *run_len;  // dense trainable stretches of the gradient arena (floats)
    int n_runs;
    int *counts;                // per rank: touched rows of the sparse tensor being summed
    int32_t *rows;              // every rank's touched rows, concatenated (grown as needed)
    size_t rows_cap;
    float *pack;                // the union's gradient rows, packed (grown as needed)
    size_t pack_cap;
    double wait_seconds;        // time waiting for the slowest rank to finish its backward, over `calls`
    double seconds;             // time spent summing after that (the transfers), over `calls`
    double floats;              // floats summed, over `calls`
    long calls;                 // grad_sync_run calls that summed (steps)
    long buckets;               // MPI_Allreduce calls of gradients, over `calls`
} grad_sync_t;

void grad_sync_init(grad_sync_t *g, const param_table_t *pt);
// Sum the gradients over every rank (a no-op on one process).
void grad_sync_run(grad_sync_t *g, param_table_t *pt);
void grad_sync_free(grad_sync_t *g);

// A 64-bit FNV-1a hash of the weights and both AdamW moments (bit patterns): equal on every rank of
// a healthy run.
uint64_t grad_sync_state_hash(const param_table_t *pt);

#endif
