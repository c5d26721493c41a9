// cp_als.h — rank-R CP (CANDECOMP/PARAFAC) decomposition of a 3-way tensor by alternating least
// squares, in double (used to re-parametrize softmax layers as collab ones, BLOCKS.md §7):
//   X[i,j,k] ≈ Σ_r A[i,r]·Bm[j,r]·Cf[k,r]        X (n1,n2,n3) row-major: X[(i·n2 + j)·n3 + k]
// Each sweep solves for Bm, then A, then Cf with the other two fixed (least squares through the
// normal equations: factor = MTTKRP·V⁻¹ with V the Hadamard product of the other two Gram
// matrices, solved by Cholesky; a ridge of 1e-12·trace(V)/R·10^t is added only if V is not
// numerically positive definite), with the options in `flags` below; all randomness from `seed`.
// Stops after max_sweeps or when the relative improvement of ‖X − X̂‖_F is below tol.
#ifndef ATTNLAB_CP_ALS_H
#define ATTNLAB_CP_ALS_H

#include <stdint.h>

enum { CP_MAX_SWEEPS = 500 };
// flags: CP_SPAN_INIT starts A and Cf in their unfoldings' leading singular subspaces (else N(0,1));
// CP_LINE_SEARCH extrapolates each sweep's step (F_prev + s·(F − F_prev), s = sweep^(1/3), Bro
// 1998), kept only when it lowers the error. CP_DEFAULT = both (what the collab conversion uses).
enum { CP_SPAN_INIT = 1, CP_LINE_SEARCH = 2, CP_DEFAULT = 3 };
#define CP_TOL 1e-10

typedef struct {
    double rel_error;  // ‖X − X̂‖_F / ‖X‖_F after the last sweep (computed from the full reconstruction)
    int sweeps;        // sweeps run
} cp_result_t;

// A (n1,R), Bm (n2,R), Cf (n3,R) row-major, written.
void cp_als(const double *X, int n1, int n2, int n3, int R, uint64_t seed, int max_sweeps, double tol, int flags,
            double *A, double *Bm, double *Cf, cp_result_t *res);
// ‖X − [[A,Bm,Cf]]‖_F / ‖X‖_F (0 if X is 0 and so is the model).
double cp_rel_error(const double *X, int n1, int n2, int n3, int R, const double *A, const double *Bm, const double *Cf);
// Rescale so that every column of Bm has unit norm and A's and Cf's columns carry equal norms
// (the scale of each rank-one term split equally between A and Cf); the tensor is unchanged.
void cp_normalize(double *A, double *Bm, double *Cf, int n1, int n2, int n3, int R);
// A tensor of CP rank ≤ R with known factors, for the recovery tests and bench: A, Bm, Cf drawn
// N(0,1) from `seed` (in that order), then X = [[A,Bm,Cf]] (X overwritten).
void cp_random_exact_rank(uint64_t seed, int n1, int n2, int n3, int R, double *A, double *Bm, double *Cf, double *X);

#endif
