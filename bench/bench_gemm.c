// bench_gemm.c — par_sgemm's block policy (model/gemm.h) against other fixed blocks and against
// OpenBLAS's own threading, on the model's product shapes.
//
//   bench_gemm [--reps 200] [--threads 2] [--cpu] [--blocks 64,128,256,384,768]
//
// For each shape (M, N, K, transposes as the model calls them: the default recipe's projections,
// mlp and logits at 768 rows, their weight gradients, and a 6-layer d 384 ctx 256 batch 16 shape) it
// times: cblas_sgemm as one call (OpenBLAS's threading over --threads threads, outside any parallel
// region), par_sgemm with its policy (par_gemm_block), and par_sgemm_blocked with each of --blocks
// rows per block, all on --threads threads; reps interleaved in 5 rounds, medians, microseconds per
// product. --cpu times the process's CPU time instead of the wall clock: with --threads 1 that is the
// work itself, unaffected by other processes sharing the cores (2 threads count their spinning too).
// Prints one line per shape: openblas_us, policy_us (and its block), then block_<rows>_us for each.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>

#include "cli/runtime.h"
#include "model/gemm.h"

void openblas_set_num_threads(int n);

typedef struct {
    int M, N, K, ta, tb;
} shape_t;

enum { MAX_BLOCKS = 16, ROUNDS = 5 };

static int use_cpu_clock;

static double now(void) {
    if (!use_cpu_clock) return cli_now();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// mode −1: one cblas_sgemm call; 0: par_sgemm (the policy); > 0: par_sgemm_blocked with that block.
static double time_one(int mode, const shape_t *s, const float *A, const float *B, float *C, int reps) {
    CBLAS_TRANSPOSE ta = s->ta ? CblasTrans : CblasNoTrans, tb = s->tb ? CblasTrans : CblasNoTrans;
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    double t0 = now();
    for (int r = 0; r < reps; r++) {
        if (mode < 0) cblas_sgemm(CblasRowMajor, ta, tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
        else if (mode == 0) par_sgemm(CblasRowMajor, ta, tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
        else par_sgemm_blocked(mode, CblasRowMajor, ta, tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
    }
    return (now() - t0) / reps * 1e6;
}

static int usage(void) {
    fprintf(stderr, "usage: bench_gemm [--reps N] [--threads N] [--cpu] [--blocks R,R,...]\n");
    return 2;
}

int main(int argc, char **argv) {
    int reps = 200, threads = 2, blocks[MAX_BLOCKS] = {64, 128, 256, 384, 768}, nblocks = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cpu") == 0) {
            use_cpu_clock = 1;
        } else if (i + 1 < argc && strcmp(argv[i], "--reps") == 0) {
            reps = atoi(argv[++i]);
        } else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0) {
            threads = atoi(argv[++i]);
        } else if (i + 1 < argc && strcmp(argv[i], "--blocks") == 0) {
            nblocks = 0;
            for (char *p = argv[++i]; *p && nblocks < MAX_BLOCKS;) {
                char *end;
                long v = strtol(p, &end, 10);
                if (end == p || v < 1 || v > 1 << 20 || (*end && *end != ',')) return usage();
                blocks[nblocks++] = (int)v;
                p = *end ? end + 1 : end;
            }
        } else {
            return usage();
        }
    }
    if (reps < 1 || threads < 1 || nblocks < 1) return usage();
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    const shape_t shapes[] = {
        {768, 384, 128, 0, 1},  {384, 128, 768, 1, 0},  {768, 128, 384, 0, 0}, {768, 512, 128, 0, 1},
        {512, 128, 768, 1, 0},  {768, 128, 512, 0, 0},  {128, 512, 768, 1, 0}, {768, 128, 128, 0, 1},
        {768, 65, 128, 0, 1},   {65, 128, 768, 1, 0},   {4096, 1152, 384, 0, 1}, {1152, 384, 4096, 1, 0},
    };
    printf("bench_gemm threads=%d clock=%s reps=%d\n", threads, use_cpu_clock ? "process_cpu" : "wall", reps);
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const shape_t *s = &shapes[i];
        float *A = malloc(sizeof(float) * s->M * s->K), *B = malloc(sizeof(float) * s->K * s->N),
              *C = malloc(sizeof(float) * s->M * s->N);
        for (long j = 0; j < (long)s->M * s->K; j++) A[j] = 0.001f * (float)(j % 97);
        for (long j = 0; j < (long)s->K * s->N; j++) B[j] = 0.001f * (float)(j % 89);
        int r = (double)s->M * s->N * s->K > 1e8 ? reps / 20 + 1 : reps;
        int nmodes = 2 + nblocks;  // mode index 0: openblas, 1: policy, 2…: blocks
        double t[2 + MAX_BLOCKS][ROUNDS];
        for (int round = 0; round < ROUNDS; round++)
            for (int k = 0; k < nmodes; k++) t[k][round] = time_one(k == 0 ? -1 : k == 1 ? 0 : blocks[k - 2], s, A, B, C, r);
        double med[2 + MAX_BLOCKS];
        for (int k = 0; k < nmodes; k++) {
            qsort(t[k], ROUNDS, sizeof(double), cli_cmp_double);
            med[k] = t[k][ROUNDS / 2];
        }
        int side = s->M >= s->N ? s->M : s->N;
        printf("gemm M=%d N=%d K=%d ta=%d tb=%d openblas_us=%.1f policy_us=%.1f policy_block=%d", s->M, s->N, s->K,
               s->ta, s->tb, med[0], med[1], par_gemm_block(side));
        for (int k = 0; k < nblocks; k++) printf(" block_%d_us=%.1f", blocks[k], med[2 + k]);
        printf("\n");
        free(A);
        free(B);
        free(C);
    }
    return 0;
}
