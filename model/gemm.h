// gemm.h — the model's matrix products: cblas_sgemm's row-major contract, cut so that the result
// does not depend on the thread count and a thread slowed by another process does not stall the rest.
//
//   par_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
//     C (M,N) = alpha·op(A)·op(B) + beta·C, exactly as cblas_sgemm (row-major only).
//
// Products small enough that OpenBLAS runs them on one thread anyway (M·N·K ≤ 262,144), and calls
// made inside an OpenMP parallel region, active or not (where OpenBLAS runs single-threaded), go
// straight to cblas_sgemm. Larger ones are cut along the longer side of C (rows, or columns when
// N > M) into par_gemm_block(that side) rows, each block a single-threaded cblas_sgemm inside an
// OpenMP loop with dynamic scheduling:
//   - the cut depends on the shape only, so every element is computed by the same kernel calls
//     whatever --threads is: a run gives the same bits on 1, 2 or 64 threads (docs/design.md);
//   - where a product has more blocks than threads, a thread that loses its core to another
//     process takes fewer blocks instead of the whole product waiting on its static share (issue
//     12, docs/performance.md "Under load"); the default recipe's products have 2 blocks, one per
//     thread, and on a loaded machine the thread tuner (cli/thread_tuner.h) moves to 1 thread.
//
// The block policy (docs/performance.md "Where the time goes"): each block packs the shared operand
// (the other side's matrix) again, so blocks are as large as 2 cores allow — an even number of
// blocks of at most PAR_GEMM_MAX_ROWS rows, at least PAR_GEMM_BLOCK: 768 rows → 2 blocks of 384,
// 4096 → 8 of 512, 256 → 2 of 128. 64-row blocks cost 6–16% more CPU than one call on one thread;
// 384- and 512-row blocks 0–2%.
#ifndef ATTNLAB_GEMM_H
#define ATTNLAB_GEMM_H

#include <cblas.h>

enum {
    PAR_GEMM_BLOCK = 64,       // the smallest block: a side of at most 64 is one block, a longer one several
    PAR_GEMM_MAX_ROWS = 512,   // the largest block (fewer, larger blocks: less packing, coarser balance)
    PAR_GEMM_ALIGN = 16,       // block sizes are multiples of this (the kernels' register tiles)
};

// Rows per block for a side of n (shape only, never the thread count).
int par_gemm_block(int n);

void par_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

// par_sgemm with a given block (rows of C, or columns when N > M) instead of par_gemm_block's:
// bench/bench_gemm.c compares policies with it.
void par_sgemm_blocked(int block, CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
                       float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

#endif
