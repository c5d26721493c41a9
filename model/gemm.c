// gemm.c — par_sgemm (see gemm.h).
#include "model/gemm.h"

#include <stdio.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// OpenBLAS 0.3.21's interface/gemm.c: a product with M·N·K at most SMP_THRESHOLD_MIN (65,536) ×
// GEMM_MULTITHREAD_THRESHOLD (4) runs on one thread whatever the thread count.
#define SERIAL_MNK 262144.0

// nb = 2·⌈n / (2·MAX)⌉ blocks (even, so 2 threads share them evenly), each ⌈n / nb⌉ rows rounded up
// to ALIGN unless that would leave fewer than nb blocks (only past about 16,000 rows), at least
// PAR_GEMM_BLOCK.
int par_gemm_block(int n) {
    int nb = 2 * ((n + 2 * PAR_GEMM_MAX_ROWS - 1) / (2 * PAR_GEMM_MAX_ROWS));
    int rows = (n + nb - 1) / nb, aligned = (rows + PAR_GEMM_ALIGN - 1) / PAR_GEMM_ALIGN * PAR_GEMM_ALIGN;
    if ((long)aligned * (nb - 1) < n) rows = aligned;
    return rows < PAR_GEMM_BLOCK ? PAR_GEMM_BLOCK : rows;
}

void par_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    par_sgemm_blocked(par_gemm_block(M >= N ? M : N), order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void par_sgemm_blocked(int block, CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
                       float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (order != CblasRowMajor || block < 1) {
        fprintf(stderr, "internal error: par_sgemm is row-major only, with a positive block\n");
        abort();
    }
    // Inside any parallel region, active or not (a team of one under --threads 1 is inactive, and
    // omp_in_parallel() says 0 there): one call, the same as in a team of two, where OpenBLAS runs
    // single-threaded because the region is active.
    int nested = 0;
#ifdef _OPENMP
    nested = omp_get_level() > 0;
#endif
    if (nested || (double)M * N * K <= SERIAL_MNK) {
        cblas_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    // Always an OpenMP loop here, even for one block: inside the (active) region OpenBLAS sees
    // omp_in_parallel() and runs single-threaded. With --threads 1 the team is one thread and
    // OpenBLAS follows omp_get_max_threads() = 1. Either way every block is one serial call.
    if (M >= N) {
        // rows m0…m1−1 of C: rows of op(A) — A + m0·lda untransposed, columns A + m0 transposed
        int nb = (M + block - 1) / block;
#pragma omp parallel for schedule(dynamic, 1)
        for (int b = 0; b < nb; b++) {
            int m0 = b * block, m = M - m0 < block ? M - m0 : block;
            const float *Ab = ta == CblasNoTrans ? A + (size_t)m0 * lda : A + m0;
            cblas_sgemm(order, ta, tb, m, N, K, alpha, Ab, lda, B, ldb, beta, C + (size_t)m0 * ldc, ldc);
        }
    } else {
        // columns n0…n1−1 of C: columns of op(B) — B + n0 untransposed, rows B + n0·ldb transposed
        int nb = (N + block - 1) / block;
#pragma omp parallel for schedule(dynamic, 1)
        for (int b = 0; b < nb; b++) {
            int n0 = b * block, n = N - n0 < block ? N - n0 : block;
            const float *Bb = tb == CblasNoTrans ? B + n0 : B + (size_t)n0 * ldb;
            cblas_sgemm(order, ta, tb, M, n, K, alpha, A, lda, Bb, ldb, beta, C + n0, ldc);
        }
    }
}
