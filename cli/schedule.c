// schedule.c — the learning-rate schedule with an optional wall-clock budget (see schedule.h).
#include "cli/schedule.h"

#include <math.h>

#include "model/optim.h"

double schedule_progress(const lr_schedule_t *s, long it, double elapsed) {
    if (it < s->warmup) return 0;
    double r = s->steps > s->warmup ? (double)(it - s->warmup) / (double)(s->steps - s->warmup) : 1;
    if (s->budget_s > 0) {
        double ew = s->decay_start_s >= 0 ? s->decay_start_s : elapsed, left = s->budget_s - ew;
        double rt = left > 0 ? (elapsed - ew) / left : 1;
        r = rt > r ? rt : r;
    }
    return r < 0 ? 0 : r > 1 ? 1 : r;
}

double schedule_lr(lr_schedule_t *s, long it, double elapsed) {
    if (s->budget_s <= 0 || it < s->warmup) return lr_at(it, s->warmup, s->steps, (float)s->lr, (float)s->min_lr);
    if (s->decay_start_s < 0) s->decay_start_s = elapsed;
    double r = schedule_progress(s, it, elapsed);
    if (r >= 1) return (float)s->min_lr;
    return (float)(s->min_lr + 0.5 * (1.0 + cos(M_PI * r)) * (s->lr - s->min_lr));
}
