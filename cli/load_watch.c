// load_watch.c — see load_watch.h.
#include "cli/load_watch.h"

#include <stdio.h>
#include <stdlib.h>

void load_watch_init(load_watch_t *w, int threads) {
    w->threads = threads > 0 ? threads : 1;
    w->best_ms = 0;
    w->last_warn = 0;
}

double load_watch_loadavg(void) {
    double load[1];
    return getloadavg(load, 1) == 1 ? load[0] : -1;
}

int load_watch_interval(load_watch_t *w, double ms, double interval_s, double now, double load1, FILE *out) {
    if (!(ms > 0) || !(interval_s >= LOAD_WATCH_MIN_S)) return 0;
    if (w->best_ms == 0 || ms < w->best_ms) {
        w->best_ms = ms;
        return 0;
    }
    double ratio = ms / w->best_ms;
    if (ratio < LOAD_WATCH_RATIO || load1 < w->threads + 0.5) return 0;
    if (w->last_warn > 0 && now - w->last_warn < LOAD_WATCH_QUIET_S) return 0;
    w->last_warn = now;
    fprintf(out,
            "train: warning: steps now take %.1fx as long as this run's fastest (%.1f ms against %.1f ms) and the "
            "load average is %.1f with %d thread%s here: other processes are using the cores%s\n",
            ratio, ms, w->best_ms, load1, w->threads, w->threads == 1 ? "" : "s",
            w->threads > 1 ? " (--threads 1 keeps more of the speed if it lasts)" : "");
    return 1;
}
