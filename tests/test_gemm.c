// test_gemm.c — par_sgemm (model/gemm.h): the block policy, products equal to a reference for every
// transpose and both cut directions, the same bits on 1, 2 and 3 threads.
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "model/gemm.h"
#include "tests/fixture.h"
#include "tests/testlib.h"


// C (M,N) = alpha·op(A)·op(B) + beta·C in double, row-major.
static void reference(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                      float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                     (tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
            C[(size_t)i * ldc + j] = (float)(alpha * s + beta * C[(size_t)i * ldc + j]);
        }
}

// x[0..n) uniform in [-0.5, 0.5) from a linear congruential generator seeded by seed.
static void fill_uniform(float *x, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
}

int main(void) {
    TEST_CASE("par_gemm_block: 768 rows → 2 blocks of 384, 4096 → 8 of 512, a side ≤ 64 → one block") {
        EXPECT(par_gemm_block(768) == 384);
        EXPECT(par_gemm_block(4096) == 512);
        EXPECT(par_gemm_block(256) == 128);
        EXPECT(par_gemm_block(384) == 192);
        EXPECT(par_gemm_block(64) == 64 && par_gemm_block(1) == 64);
    }
    TEST_CASE("par_gemm_block: an even number of blocks above 64 rows, 64 … 512 rows each, a multiple of 16 up to 8192") {
        int bad = 0;
        for (int n = 1; n <= 65536 && !bad; n++) {
            int r = par_gemm_block(n), nb = (n + r - 1) / r;
            int ok = r >= PAR_GEMM_BLOCK && r <= PAR_GEMM_MAX_ROWS && (n > 8192 || r % PAR_GEMM_ALIGN == 0) &&
                     (n <= PAR_GEMM_BLOCK ? nb == 1 : nb % 2 == 0);
            if (!ok) {
                printf("  n=%d: block %d, %d blocks\n", n, r, nb);
                bad = 1;
            }
        }
        EXPECT(!bad);
    }
    TEST_CASE("par_sgemm equals a double reference (all transposes, row and column cuts, beta 0 and 1)") {
        // shapes above the one-call threshold: cut by rows (M ≥ N) or by columns (N > M), uneven last block
        const int shapes[][3] = {{300, 70, 40}, {70, 300, 40}, {768, 65, 128}, {65, 200, 96}};
        for (int s = 0; s < 4; s++)
            for (int t = 0; t < 4; t++)
                for (int bi = 0; bi < 2; bi++) {
                    int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], ta = t & 1, tb = t >> 1;
                    int lda = ta ? M : K, ldb = tb ? K : N;
                    float beta = (float)bi, *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
                    float *C = malloc(sizeof(float) * M * N), *R = malloc(sizeof(float) * M * N);
                    fill_uniform(A, (size_t)M * K, 1 + s);
                    fill_uniform(B, (size_t)K * N, 2 + t);
                    fill_uniform(C, (size_t)M * N, 3);
                    memcpy(R, C, sizeof(float) * M * N);
                    fixture_set_threads(2);
                    par_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
                              0.5f, A, lda, B, ldb, beta, C, N);
                    reference(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, beta, R, N);
                    EXPECT_CLOSE("par_sgemm", C, R, (size_t)M * N, 1e-5, 1e-5);
                    free(A), free(B), free(C), free(R);
                }
        fixture_set_threads(1);
    }
    TEST_CASE("par_sgemm: the same bits on 1, 2 and 3 threads") {
        int M = 768, N = 384, K = 128;
        float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
        float *C[3];
        fill_uniform(A, (size_t)M * K, 5);
        fill_uniform(B, (size_t)K * N, 6);
        for (int th = 0; th < 3; th++) {
            C[th] = malloc(sizeof(float) * M * N);
            fixture_set_threads(th + 1);
            par_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, 0.0f, C[th], N);
        }
        EXPECT(memcmp(C[0], C[1], sizeof(float) * M * N) == 0 && memcmp(C[0], C[2], sizeof(float) * M * N) == 0);
        for (int th = 0; th < 3; th++) free(C[th]);
        free(A), free(B);
        fixture_set_threads(1);
    }
    return test_main_end();
}
