// bench_gemm.c — par_sgemm (model/gemm.h: blocks of 64 rows, dynamic schedule, one serial OpenBLAS
// call per block) against OpenBLAS's own threading of the same product, on the model's shapes.
//
//   bench_gemm [--reps 200]
//
// For each shape (M, N, K, transposes as the model calls them: the default recipe's projections,
// mlp and logits at 768 rows, their weight gradients, and a 6-layer d 384 ctx 256 batch 16 shape) it
// times, on 2 threads: cblas_sgemm with OpenBLAS threading (openblas_set_num_threads(2), outside any
// parallel region), par_sgemm, and cblas_sgemm on 1 thread; reps interleaved in 5 rounds, medians.
// Prints one line per shape with microseconds and the ratio par_sgemm / OpenBLAS-threaded.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "cli/runtime.h"
#include "model/gemm.h"

void openblas_set_num_threads(int n);

typedef struct {
    int M, N, K, ta, tb;
} shape_t;

static double time_one(int mode, const shape_t *s, const float *A, const float *B, float *C, int reps) {
    CBLAS_TRANSPOSE ta = s->ta ? CblasTrans : CblasNoTrans, tb = s->tb ? CblasTrans : CblasNoTrans;
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    omp_set_num_threads(mode == 2 ? 1 : 2);
    openblas_set_num_threads(mode == 2 ? 1 : 2);
    double t0 = cli_now();
    for (int r = 0; r < reps; r++) {
        if (mode == 1) par_sgemm(CblasRowMajor, ta, tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
        else cblas_sgemm(CblasRowMajor, ta, tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
    }
    return (cli_now() - t0) / reps * 1e6;
}

int main(int argc, char **argv) {
    int reps = argc == 3 && strcmp(argv[1], "--reps") == 0 ? atoi(argv[2]) : 200;
    if (reps < 1) {
        fprintf(stderr, "usage: bench_gemm [--reps N]\n");
        return 2;
    }
    const shape_t shapes[] = {
        {768, 384, 128, 0, 1},  {384, 128, 768, 1, 0},  {768, 128, 384, 0, 0}, {768, 512, 128, 0, 1},
        {512, 128, 768, 1, 0},  {768, 128, 512, 0, 0},  {768, 65, 128, 0, 1},  {65, 128, 768, 1, 0},
        {4096, 1152, 384, 0, 1}, {1152, 384, 4096, 1, 0},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const shape_t *s = &shapes[i];
        float *A = malloc(sizeof(float) * s->M * s->K), *B = malloc(sizeof(float) * s->K * s->N),
              *C = malloc(sizeof(float) * s->M * s->N);
        for (long j = 0; j < (long)s->M * s->K; j++) A[j] = 0.001f * (float)(j % 97);
        for (long j = 0; j < (long)s->K * s->N; j++) B[j] = 0.001f * (float)(j % 89);
        int r = s->M * s->N * s->K > 100000000 ? reps / 20 + 1 : reps;
        double t[3][5];
        for (int round = 0; round < 5; round++)
            for (int mode = 0; mode < 3; mode++) t[mode][round] = time_one(mode, s, A, B, C, r);
        double med[3];
        for (int mode = 0; mode < 3; mode++) {
            qsort(t[mode], 5, sizeof(double), cli_cmp_double);
            med[mode] = t[mode][2];
        }
        printf("gemm M=%d N=%d K=%d ta=%d tb=%d openblas_2threads_us=%.1f par_sgemm_2threads_us=%.1f openblas_1thread_us=%.1f "
               "ratio_par_over_openblas=%.2f\n",
               s->M, s->N, s->K, s->ta, s->tb, med[0], med[1], med[2], med[1] / med[0]);
        free(A);
        free(B);
        free(C);
    }
    return 0;
}
