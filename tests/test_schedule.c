// test_schedule.c — the learning-rate schedule (cli/schedule.h): without a budget it is lr_at bit for
// bit; with one the decay follows the clock from the end of warmup, is continuous there, never rises,
// reaches min_lr exactly when the budget ends, and the step schedule still ends it first when shorter.
#include <math.h>

#include "cli/schedule.h"
#include "model/optim.h"
#include "tests/testlib.h"

int main(void) {
    TEST_CASE("no budget: lr_at, bit for bit, at every step and any elapsed time") {
        lr_schedule_t s = {.warmup = 10, .steps = 200, .lr = 1e-3, .min_lr = 1e-4};
        int same = 1;
        for (long it = 0; it < 260; it++)
            same &= schedule_lr(&s, it, 1e6 * it) == lr_at(it, 10, 200, 1e-3f, 1e-4f);
        EXPECT(same);
    }
    TEST_CASE("budget: warmup as lr_at, decay start recorded, continuous, monotone, min_lr at the budget's end") {
        lr_schedule_t s = {.warmup = 10, .steps = 1000000, .lr = 1e-3, .min_lr = 1e-4, .budget_s = 20, .decay_start_s = -1};
        int same = 1;
        for (long it = 0; it < 10; it++) same &= schedule_lr(&s, it, 0.1 * it) == lr_at(it, 10, 1000000, 1e-3f, 1e-4f);
        EXPECT(same && s.decay_start_s < 0);
        double first = schedule_lr(&s, 10, 2.0);  // the first decay step: e_w = 2 s, r = 0
        EXPECT(s.decay_start_s == 2.0);
        EXPECT(fabs(first - 1e-3) < 1e-9);
        double prev = first, mid = 0;
        int monotone = 1;
        for (long it = 11; it < 2000; it++) {
            double e = 2.0 + 18.0 * (it - 10) / 1990.0, lr = schedule_lr(&s, it, e);
            monotone &= lr <= prev;
            prev = lr;
            if (it == 1005) mid = lr;  // e = 11 s: half of the 18 s after warmup
        }
        EXPECT(monotone);
        EXPECT_MSG(fabs(mid - 5.5e-4) < 2e-6, "half way through the budget: %.6g, want 5.5e-4", mid);
        EXPECT(schedule_lr(&s, 2000, 20.0) == (float)1e-4);
        EXPECT(schedule_lr(&s, 2001, 25.0) == (float)1e-4);
        EXPECT(fabs(schedule_progress(&s, 1005, 11.0) - 0.5) < 1e-12);
    }
    TEST_CASE("budget: a shorter --steps still ends the schedule first (r = max of steps and time)") {
        lr_schedule_t s = {.warmup = 0, .steps = 100, .lr = 1e-3, .min_lr = 0, .budget_s = 1e6, .decay_start_s = -1};
        EXPECT(schedule_lr(&s, 50, 0.0) == lr_at(50, 0, 100, 1e-3f, 0.0f));
        EXPECT(schedule_lr(&s, 100, 1.0) == 0.0f);
        // a resumed run: e_w from the checkpoint, elapsed past it
        lr_schedule_t r = {.warmup = 0, .steps = 1000000, .lr = 1e-3, .min_lr = 0, .budget_s = 10, .decay_start_s = 0};
        EXPECT(fabs(schedule_lr(&r, 7, 5.0) - 0.5e-3) < 1e-9 && r.decay_start_s == 0);
    }
    return test_main_end();
}
