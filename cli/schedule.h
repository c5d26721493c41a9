// schedule.h — the learning-rate schedule of a run (docs/logs.md "The schedule under --time-budget"):
// nanoGPT's linear warmup and cosine decay over --steps, and with --time-budget a decay that also
// follows the clock, so that a run stopped by its budget ends at min_lr instead of mid-schedule.
//
//   warmup (it < warmup):  lr·(it+1)/(warmup+1)                         (model/optim.h lr_at)
//   decay:                 min_lr + ½(1 + cos(π·r))·(lr − min_lr),  r = clamp(max(r_steps, r_time), 0, 1)
//     r_steps = (it − warmup)/(steps − warmup)                          (the plain schedule)
//     r_time  = (e − e_w)/(budget − e_w)                                (budget > 0 only)
// where e is the run's elapsed wall-clock seconds when step it starts (resumes included) and e_w the
// elapsed seconds when the first decay step started (the end of warmup). r is a fraction of the
// remaining budget, so the rate falls continuously and monotonically, needs no estimate of the step
// time, and reaches min_lr when the budget does; a run whose --steps end first keeps the plain schedule.
// Without a budget the rate is lr_at's, bit for bit.
#ifndef ATTNLAB_SCHEDULE_H
#define ATTNLAB_SCHEDULE_H

typedef struct {
    long warmup, steps;    // linear warmup steps; the step schedule's length (--steps)
    double lr, min_lr;     // peak and final rate
    double budget_s;       // --time-budget in seconds (0: none)
    double decay_start_s;  // e_w: elapsed seconds at the first decay step, < 0 until then (kept in train_state)
} lr_schedule_t;

// The rate of step it (0-based) starting at elapsed seconds e; the first decay step of a budgeted run
// records e_w = e in s->decay_start_s.
double schedule_lr(lr_schedule_t *s, long it, double elapsed);

// The decay fraction r of step it at elapsed seconds e (0 during warmup), for messages and tests.
double schedule_progress(const lr_schedule_t *s, long it, double elapsed);

#endif
