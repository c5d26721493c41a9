// cp_als.c — CP decomposition by alternating least squares (see cp_als.h).
//
// With X_j = X[:, j, :] (I×K, row stride J·K) the three MTTKRPs are one dgemm per slice j:
//   G_A[i,r]  = Σ_{j,k} X[i,j,k] Bm[j,r] Cf[k,r] = Σ_j (X_j·Cf)[i,r] Bm[j,r]
//   G_C[k,r]  = Σ_{i,j} X[i,j,k] A[i,r] Bm[j,r]  = Σ_j (X_jᵀ·A)[k,r] Bm[j,r]
//   G_B[j,r]  = Σ_{i,k} X[i,j,k] A[i,r] Cf[k,r]  = Σ_k (X_jᵀ·A)[k,r] Cf[k,r]
// and the least-squares update of, e.g., A with Bm, Cf fixed is A = G_A·V⁻¹, V = (BmᵀBm)⊙(CfᵀCf).
#include "blocks/cp_als.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/rng.h"

// V (R,R) = (PᵀP) ⊙ (QᵀQ), P (m,R), Q (n,R)
static void gram_hadamard(double *V, const double *P, int m, const double *Q, int n, int R, double *tmp) {
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, R, m, 1.0, P, R, P, R, 0.0, V, R);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, R, n, 1.0, Q, R, Q, R, 0.0, tmp, R);
    for (int k = 0; k < R * R; k++) V[k] *= tmp[k];
}

// In-place Cholesky V = L·Lᵀ (lower triangle). Returns 0, or -1 if a pivot is not positive.
static int cholesky(double *V, int R) {
    for (int j = 0; j < R; j++) {
        double d = V[(size_t)j * R + j];
        for (int k = 0; k < j; k++) d -= V[(size_t)j * R + k] * V[(size_t)j * R + k];
        if (!(d > 0)) return -1;
        double l = sqrt(d);
        V[(size_t)j * R + j] = l;
        for (int i = j + 1; i < R; i++) {
            double s = V[(size_t)i * R + j];
            for (int k = 0; k < j; k++) s -= V[(size_t)i * R + k] * V[(size_t)j * R + k];
            V[(size_t)i * R + j] = s / l;
        }
    }
    return 0;
}

// F (n,R) = G (n,R)·V⁻¹ for symmetric V (rows of F solve V f = g). V is overwritten by its factor.
static void solve_rows(double *F, const double *G, double *V, double *Vcopy, int n, int R) {
    memcpy(Vcopy, V, (size_t)R * R * sizeof(double));
    double tr = 0;
    for (int r = 0; r < R; r++) tr += V[(size_t)r * R + r];
    double ridge = 1e-12 * (tr > 0 ? tr : 1.0) / R;
    while (cholesky(V, R)) {  // not numerically PD: the smallest ridge that makes it so
        memcpy(V, Vcopy, (size_t)R * R * sizeof(double));
        for (int r = 0; r < R; r++) V[(size_t)r * R + r] += ridge;
        ridge *= 10;
    }
    for (int i = 0; i < n; i++) {
        const double *g = G + (size_t)i * R;
        double *f = F + (size_t)i * R;
        for (int r = 0; r < R; r++) {  // L z = g
            double s = g[r];
            for (int k = 0; k < r; k++) s -= V[(size_t)r * R + k] * f[k];
            f[r] = s / V[(size_t)r * R + r];
        }
        for (int r = R - 1; r >= 0; r--) {  // Lᵀ f = z
            double s = f[r];
            for (int k = r + 1; k < R; k++) s -= V[(size_t)k * R + r] * f[k];
            f[r] = s / V[(size_t)r * R + r];
        }
    }
}

double cp_rel_error(const double *X, int n1, int n2, int n3, int R, const double *A, const double *Bm, const double *Cf) {
    double *Aw = xmalloc((size_t)n1 * R * sizeof(double)), *Xh = xmalloc((size_t)n1 * n3 * sizeof(double));
    double num = 0, den = 0;
    for (int j = 0; j < n2; j++) {
        // X̂_j = (A ⊙ Bm[j,:])·Cfᵀ
        for (int i = 0; i < n1; i++)
            for (int r = 0; r < R; r++) Aw[(size_t)i * R + r] = A[(size_t)i * R + r] * Bm[(size_t)j * R + r];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n1, n3, R, 1.0, Aw, R, Cf, R, 0.0, Xh, n3);
        for (int i = 0; i < n1; i++)
            for (int k = 0; k < n3; k++) {
                double x = X[((size_t)i * n2 + j) * n3 + k], e = x - Xh[(size_t)i * n3 + k];
                num += e * e;
                den += x * x;
            }
    }
    free(Aw);
    free(Xh);
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

// Orthonormalize the columns of Q (n,R), R ≤ n, by modified Gram–Schmidt, twice (in double).
// A column that vanishes is replaced by a random one (then orthonormalized).
static void orthonormalize(double *Q, int n, int R, rng_t *rng) {
    for (int pass = 0; pass < 2; pass++)
        for (int r = 0; r < R; r++) {
            for (int tries = 0; tries < 3; tries++) {
                for (int p = 0; p < r; p++) {
                    double d = 0;
                    for (int i = 0; i < n; i++) d += Q[(size_t)i * R + p] * Q[(size_t)i * R + r];
                    for (int i = 0; i < n; i++) Q[(size_t)i * R + r] -= d * Q[(size_t)i * R + p];
                }
                double nn = 0;
                for (int i = 0; i < n; i++) nn += Q[(size_t)i * R + r] * Q[(size_t)i * R + r];
                if (nn > 1e-200) {
                    nn = 1.0 / sqrt(nn);
                    for (int i = 0; i < n; i++) Q[(size_t)i * R + r] *= nn;
                    break;
                }
                for (int i = 0; i < n; i++) Q[(size_t)i * R + r] = rng_normal(rng);
            }
        }
}

// Starting factor F (n,R) for mode 0 (A, n = n1) or mode 2 (Cf, n = n3): a random basis (seeded) of
// the span of the R leading left singular vectors of that mode's unfolding, found by 30 steps of
// subspace iteration on S = X_(mode)·X_(mode)ᵀ (n,n) — the factor's column space when X has CP
// rank ≤ R, so ALS starts in the right subspace (plain N(0,1) starts stalled in 10–60% of
// random exact-rank cases, docs/blocks/collab.md). R > n: all N(0,1).
static void span_init(double *F, const double *X, int mode, int n1, int n2, int n3, int R, rng_t *rng) {
    int n = mode == 0 ? n1 : n3;
    if (R > n) {
        for (size_t k = 0; k < (size_t)n * R; k++) F[k] = rng_normal(rng);
        return;
    }
    double *S = xmalloc((size_t)n * n * sizeof(double)), *Q = xmalloc((size_t)n * R * sizeof(double)),
           *Z = xmalloc((size_t)n * R * sizeof(double)), *G = xmalloc((size_t)R * R * sizeof(double));
    if (mode == 0)  // X_(1) = X as (n1, n2·n3): S = X_(1)·X_(1)ᵀ
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n1, n1, n2 * n3, 1.0, X, n2 * n3, X, n2 * n3, 0.0, S, n1);
    else  // X as (n1·n2, n3): S = Xᵀ·X
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n3, n3, n1 * n2, 1.0, X, n3, X, n3, 0.0, S, n3);
    for (size_t k = 0; k < (size_t)n * R; k++) Q[k] = rng_normal(rng);
    orthonormalize(Q, n, R, rng);
    for (int it = 0; it < 30; it++) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, R, n, 1.0, S, n, Q, R, 0.0, Z, R);
        memcpy(Q, Z, (size_t)n * R * sizeof(double));
        orthonormalize(Q, n, R, rng);
    }
    for (size_t k = 0; k < (size_t)R * R; k++) G[k] = rng_normal(rng);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, R, R, 1.0, Q, R, G, R, 0.0, F, R);  // F = Q·G
    free(S);
    free(Q);
    free(Z);
    free(G);
}

void cp_als(const double *X, int n1, int n2, int n3, int R, uint64_t seed, int max_sweeps, double tol, int flags,
            double *A, double *Bm, double *Cf, cp_result_t *res) {
    int line_search = (flags & CP_LINE_SEARCH) != 0;
    rng_t rng;
    rng_seed(&rng, seed);
    if (flags & CP_SPAN_INIT) {
        span_init(A, X, 0, n1, n2, n3, R, &rng);
        span_init(Cf, X, 2, n1, n2, n3, R, &rng);
    } else {
        for (size_t k = 0; k < (size_t)n1 * R; k++) A[k] = rng_normal(&rng);
        for (size_t k = 0; k < (size_t)n3 * R; k++) Cf[k] = rng_normal(&rng);
    }
    for (size_t k = 0; k < (size_t)n2 * R; k++) Bm[k] = rng_normal(&rng);
    int mx = n1 > n3 ? n1 : n3;
    mx = mx > n2 ? mx : n2;
    double *G = xmalloc((size_t)mx * R * sizeof(double)), *Y = xmalloc((size_t)mx * R * sizeof(double));
    double *V = xmalloc((size_t)R * R * sizeof(double)), *tmp = xmalloc((size_t)R * R * sizeof(double));
    // line search: the factors before the sweep (P*) and the extrapolated trial (T*)
    size_t nA = (size_t)n1 * R, nB = (size_t)n2 * R, nC = (size_t)n3 * R;
    double *PA = xmalloc(nA * sizeof(double)), *PB = xmalloc(nB * sizeof(double)), *PC = xmalloc(nC * sizeof(double));
    double *TA = xmalloc(nA * sizeof(double)), *TB = xmalloc(nB * sizeof(double)), *TC = xmalloc(nC * sizeof(double));
    size_t ld = (size_t)n2 * n3;
    double prev = INFINITY, err = INFINITY;
    int sweep = 0;
    while (sweep < max_sweeps) {
        sweep++;
        memcpy(PA, A, nA * sizeof(double));
        memcpy(PB, Bm, nB * sizeof(double));
        memcpy(PC, Cf, nC * sizeof(double));
        // Bm = G_B·((AᵀA)⊙(CfᵀCf))⁻¹
        for (int j = 0; j < n2; j++) {
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n3, R, n1, 1.0, X + (size_t)j * n3, (int)ld, A, R, 0.0, Y,
                        R);
            for (int r = 0; r < R; r++) {
                double s = 0;
                for (int k = 0; k < n3; k++) s += Y[(size_t)k * R + r] * Cf[(size_t)k * R + r];
                G[(size_t)j * R + r] = s;
            }
        }
        gram_hadamard(V, A, n1, Cf, n3, R, tmp);
        solve_rows(Bm, G, V, tmp, n2, R);
        // A = G_A·((BmᵀBm)⊙(CfᵀCf))⁻¹
        memset(G, 0, (size_t)n1 * R * sizeof(double));
        for (int j = 0; j < n2; j++) {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n1, R, n3, 1.0, X + (size_t)j * n3, (int)ld, Cf, R, 0.0,
                        Y, R);
            for (int i = 0; i < n1; i++)
                for (int r = 0; r < R; r++) G[(size_t)i * R + r] += Y[(size_t)i * R + r] * Bm[(size_t)j * R + r];
        }
        gram_hadamard(V, Bm, n2, Cf, n3, R, tmp);
        solve_rows(A, G, V, tmp, n1, R);
        // Cf = G_C·((AᵀA)⊙(BmᵀBm))⁻¹
        memset(G, 0, (size_t)n3 * R * sizeof(double));
        for (int j = 0; j < n2; j++) {
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n3, R, n1, 1.0, X + (size_t)j * n3, (int)ld, A, R, 0.0, Y,
                        R);
            for (int k = 0; k < n3; k++)
                for (int r = 0; r < R; r++) G[(size_t)k * R + r] += Y[(size_t)k * R + r] * Bm[(size_t)j * R + r];
        }
        gram_hadamard(V, A, n1, Bm, n2, R, tmp);
        solve_rows(Cf, G, V, tmp, n3, R);
        err = cp_rel_error(X, n1, n2, n3, R, A, Bm, Cf);
        if (line_search && sweep > 2) {
            // Extrapolate along the sweep's step, F = P + s·(F − P), s = sweep^(1/3) (Bro 1998);
            // kept only if it lowers the error (so every sweep still decreases it).
            double st = cbrt((double)sweep);
            for (size_t k = 0; k < nA; k++) TA[k] = PA[k] + st * (A[k] - PA[k]);
            for (size_t k = 0; k < nB; k++) TB[k] = PB[k] + st * (Bm[k] - PB[k]);
            for (size_t k = 0; k < nC; k++) TC[k] = PC[k] + st * (Cf[k] - PC[k]);
            double e2 = cp_rel_error(X, n1, n2, n3, R, TA, TB, TC);
            if (e2 < err) {
                memcpy(A, TA, nA * sizeof(double));
                memcpy(Bm, TB, nB * sizeof(double));
                memcpy(Cf, TC, nC * sizeof(double));
                err = e2;
            }
        }
        if (!(err > 0) || prev - err < tol * prev) break;
        prev = err;
    }
    res->rel_error = err;
    res->sweeps = sweep;
    free(G);
    free(Y);
    free(V);
    free(tmp);
    free(PA), free(PB), free(PC), free(TA), free(TB), free(TC);
}

void cp_normalize(double *A, double *Bm, double *Cf, int n1, int n2, int n3, int R) {
    for (int r = 0; r < R; r++) {
        double na = 0, nb = 0, nc = 0;
        for (int i = 0; i < n1; i++) na += A[(size_t)i * R + r] * A[(size_t)i * R + r];
        for (int j = 0; j < n2; j++) nb += Bm[(size_t)j * R + r] * Bm[(size_t)j * R + r];
        for (int k = 0; k < n3; k++) nc += Cf[(size_t)k * R + r] * Cf[(size_t)k * R + r];
        na = sqrt(na), nb = sqrt(nb), nc = sqrt(nc);
        if (na == 0 || nb == 0 || nc == 0) {  // a zero term: keep it zero, Bm's column a unit vector
            for (int i = 0; i < n1; i++) A[(size_t)i * R + r] = 0;
            for (int k = 0; k < n3; k++) Cf[(size_t)k * R + r] = 0;
            for (int j = 0; j < n2; j++) Bm[(size_t)j * R + r] = j == 0;
            continue;
        }
        double s = sqrt(na * nb * nc);  // |A_r|·|Cf_r| = λ_r = na·nb·nc after rescaling
        for (int i = 0; i < n1; i++) A[(size_t)i * R + r] *= s / na;
        for (int k = 0; k < n3; k++) Cf[(size_t)k * R + r] *= s / nc;
        for (int j = 0; j < n2; j++) Bm[(size_t)j * R + r] /= nb;
    }
}

void cp_random_exact_rank(uint64_t seed, int n1, int n2, int n3, int R, double *A, double *Bm, double *Cf, double *X) {
    rng_t g;
    rng_seed(&g, seed);
    for (int i = 0; i < n1 * R; i++) A[i] = rng_normal(&g);
    for (int i = 0; i < n2 * R; i++) Bm[i] = rng_normal(&g);
    for (int i = 0; i < n3 * R; i++) Cf[i] = rng_normal(&g);
    for (int i = 0; i < n1; i++)
        for (int j = 0; j < n2; j++)
            for (int l = 0; l < n3; l++) {
                double x = 0;
                for (int r = 0; r < R; r++) x += A[i * R + r] * Bm[j * R + r] * Cf[l * R + r];
                X[((size_t)i * n2 + j) * n3 + l] = x;
            }
}
