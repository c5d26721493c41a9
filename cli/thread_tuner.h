// thread_tuner.h — train's thread count under `--threads 0` (the default): every core while that is
// fastest, one thread while other processes take the cores (issue 12, docs/performance.md "Under load").
//
// A run's results do not depend on its thread count (docs/design.md, Determinism), so the count can
// change between steps without changing a bit of the run. From time to time one step runs with the
// other count (1 when running on all cores, all cores when running on 1) and its time is compared
// with the mean of the last TUNER_WINDOW steps at the current count (at least TUNER_MIN_RECENT of
// them). When two probes in a row find the other count at least TUNER_GAIN times faster, the run
// switches to it and says so in one line. Probes come TUNER_PROBE_FIRST steps apart at the start and
// after a switch, the gap doubling after every probe that finds no gain, up to TUNER_PROBE_EVERY;
// after a probe that does find one, the next comes TUNER_PROBE_FIRST steps later to confirm it. On a
// quiet 2-core machine the probes cost about one step in TUNER_PROBE_EVERY at 1 thread (≈1%);
// beside a busy process, where 2 threads fall to a fraction of 1 thread's speed, a run switches
// within about 2·TUNER_PROBE_FIRST steps of its start, or TUNER_PROBE_EVERY + TUNER_PROBE_FIRST steps
// of the load's onset.
#ifndef ATTNLAB_THREAD_TUNER_H
#define ATTNLAB_THREAD_TUNER_H

#include <stdio.h>

#define TUNER_PROBE_EVERY 50
#define TUNER_PROBE_FIRST 8
#define TUNER_WINDOW 9
#define TUNER_MIN_RECENT 5
#define TUNER_GAIN 1.15

typedef struct {
    int all;                      // every core (the count used when quiet); < 2: nothing to tune
    int cur;                      // the count of ordinary steps
    long steps;                   // steps recorded since the start or the last switch
    long next_probe;              // the step (in `steps`) that is the next probe
    int gap;                      // steps from one probe to the next
    int probing;                  // 1 while the step being run is a probe
    int wins;                     // consecutive probes that found the other count faster
    double recent[TUNER_WINDOW];  // seconds of the last ordinary steps (ring)
    int n_recent, next;
} thread_tuner_t;

void tuner_init(thread_tuner_t *t, int all_threads);
// Threads for the next step (call before it, then tuner_done with its time).
int tuner_next(thread_tuner_t *t);
// The step's wall seconds. Returns 1 if the run switched its count (a line said so on `out`).
int tuner_done(thread_tuner_t *t, double seconds, FILE *out);

#endif
