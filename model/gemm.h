// gemm.h — the model's matrix products: cblas_sgemm's row-major contract, cut so that the result
// does not depend on the thread count and a thread slowed by another process does not stall the rest.
//
//   par_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
//     C (M,N) = alpha·op(A)·op(B) + beta·C, exactly as cblas_sgemm (row-major only).
//
// Products small enough that OpenBLAS runs them on one thread anyway (M·N·K ≤ 262,144), and calls
// made inside an OpenMP parallel region, active or not (where OpenBLAS runs single-threaded), go
// straight to cblas_sgemm. Larger ones are cut into fixed blocks of PAR_GEMM_BLOCK rows of C (columns when
// N > M), each a single-threaded cblas_sgemm inside an OpenMP loop with dynamic scheduling:
//   - the cut depends on the shape only, so every element is computed by the same kernel calls
//     whatever --threads is: a run gives the same bits on 1, 2 or 64 threads (docs/design.md);
//   - a thread that loses its core to another process simply takes fewer blocks, instead of the
//     whole product waiting on its static share (issue 12, docs/performance.md "Under load").
#ifndef ATTNLAB_GEMM_H
#define ATTNLAB_GEMM_H

#include <cblas.h>

enum { PAR_GEMM_BLOCK = 64 };

void par_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

#endif
