// optim.h — AdamW with bias correction and decoupled weight decay, global-norm gradient clipping,
// and the warmup + cosine learning-rate schedule (nanoGPT's get_lr, step numbers from 0).
#ifndef ATTNLAB_OPTIM_H
#define ATTNLAB_OPTIM_H

#include "model/params.h"

typedef struct {
    float beta1, beta2, eps, weight_decay;
} adamw_cfg_t;

// One AdamW update of every trainable parameter; t is the 1-based update count (bias correction).
//   m = β1·m + (1−β1)·g,  v = β2·v + (1−β2)·g²,  p −= lr·(wd·p·[decay] + m̂/(sqrt(v̂) + eps))
// with m̂ = m/(1−β1^t), v̂ = v/(1−β2^t) (PyTorch's AdamW: decay applied to p before the step).
// A tensor with fixed_lr > 0 uses that rate instead of lr. A sparse-rows tensor is updated in its
// touched rows only (lazy Adam; bias correction with the same global t).
void adamw_step(param_table_t *pt, const adamw_cfg_t *cfg, float lr, long t);

// sqrt(Σ g²) over every trainable parameter (double accumulation); sparse-rows tensors contribute
// their touched rows (the rest of their gradient is zero).
double grad_global_norm(const param_table_t *pt);
// Multiply every gradient by s.
void grad_scale(param_table_t *pt, float s);
// 1 if every gradient is finite.
int grad_all_finite(const param_table_t *pt);

// train.c's optimizer step, with two walks over a sparse-rows tensor's touched rows instead of five
// (zero, finiteness, norm, clipping, Adam); the same bits as the separate calls it replaces:
//   grad_norm_finite(pt, &norm)  ==  grad_all_finite(pt) with norm = grad_global_norm(pt): the norm's
//       one walk decides finiteness too (Σ g² in double is finite exactly when every g is: a float's
//       square is < 2^256, so no sum of finite squares overflows, and a square is never negative)
//   adamw_step_clipped(pt, cfg, lr, t, s)  ==  grad_scale(pt, s) (if s != 1), adamw_step(pt, cfg, lr, t)
//       and, for sparse-rows tensors, params_zero_grad's work: each touched gradient row is scaled as it is
//       read, zeroed after, and the touched list is emptied (the next params_zero_grad skips them).
//       Dense gradients are left scaled, as grad_scale leaves them.
int grad_norm_finite(const param_table_t *pt, double *norm);
void adamw_step_clipped(param_table_t *pt, const adamw_cfg_t *cfg, float lr, long t, float s);

// Learning rate at step `it` (0-based): linear warmup lr·(it+1)/(warmup+1) for it < warmup, then
// cosine from lr to min_lr until `total`, min_lr after.
float lr_at(long it, long warmup, long total, float lr, float min_lr);

#endif
