// favor.h — helpers of the performer mixer (FAVOR+, Choromanski et al. 2021, arXiv 2009.14794)
// that tests and benchmarks reach directly. The kind itself is blocks/mixer_performer.c.
#ifndef ATTNLAB_FAVOR_H
#define ATTNLAB_FAVOR_H

#include "model/block.h"
#include "base/rng.h"

// Ω (m, D): ceil(m/D) blocks of D rows; each block is a uniformly random orthogonal D×D matrix
// (Gram-Schmidt, in double, of a Gaussian matrix's rows), each row then rescaled by the norm of an
// independent N(0, I_D) vector. work holds D·D doubles. Per block it draws D·D normals (the matrix)
// then D per kept row (the norms), from rng.
void favor_draw_omega(float *omega, int m, int D, rng_t *rng, double *work);

// The number of positions per block of the chunked prefix-sum algorithm (default 32). It changes
// only float rounding, never the math; tests set it small so that short sequences span several
// chunks. Call before model_alloc_acts. b must be a performer mixer.
void performer_set_chunk(block_t *b, int rows);

#endif
