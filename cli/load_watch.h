// load_watch.h — train's warning when other processes take its cores (issue 12).
//
// After each progress interval of at least LOAD_WATCH_MIN_S seconds (shorter ones are too noisy to
// judge, and are ignored), the interval's time per step is compared with the fastest such interval
// of this run so far. When it is LOAD_WATCH_RATIO times slower or more and the 1-minute load average
// shows more runnable work than this run's threads, train prints one line on stderr (again at most
// every LOAD_WATCH_QUIET_S seconds) naming the slowdown, the load and what to try. A run that starts
// on an already busy machine has no fast interval to compare with: that case is not detected.
#ifndef ATTNLAB_LOAD_WATCH_H
#define ATTNLAB_LOAD_WATCH_H

#include <stdio.h>

#define LOAD_WATCH_RATIO 2.0
#define LOAD_WATCH_QUIET_S 300.0
#define LOAD_WATCH_MIN_S 2.0

typedef struct {
    int threads;        // this run's thread count
    double best_ms;     // fastest interval's ms per step so far (0: none yet)
    double last_warn;   // cli_now() of the last warning (0: none)
} load_watch_t;

void load_watch_init(load_watch_t *w, int threads);
// One finished interval of interval_s seconds: ms per step, at time now (cli_now()), with the 1-minute
// load average load1 (load_watch_loadavg()). Returns 1 if it printed a warning on `out`.
int load_watch_interval(load_watch_t *w, double ms_per_step, double interval_s, double now, double load1, FILE *out);
// The 1-minute load average, or -1 if the system does not give it.
double load_watch_loadavg(void);

#endif
