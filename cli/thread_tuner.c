// thread_tuner.c — see thread_tuner.h.
#include "cli/thread_tuner.h"

#include <stdlib.h>
#include <string.h>

#include "cli/runtime.h"

void tuner_init(thread_tuner_t *t, int all_threads) {
    memset(t, 0, sizeof *t);
    t->all = all_threads;
    t->cur = all_threads > 0 ? all_threads : 1;
}

static int other(const thread_tuner_t *t) { return t->cur == 1 ? t->all : 1; }

int tuner_next(thread_tuner_t *t) {
    // a probe once the window holds a full set of ordinary steps, then every TUNER_PROBE_EVERY steps
    t->probing = t->all >= 2 && t->n_recent == TUNER_WINDOW && t->steps % TUNER_PROBE_EVERY == TUNER_PROBE_EVERY - 1;
    return t->probing ? other(t) : t->cur;
}

static double median_recent(const thread_tuner_t *t) {
    double v[TUNER_WINDOW];
    memcpy(v, t->recent, (size_t)t->n_recent * sizeof *v);
    qsort(v, (size_t)t->n_recent, sizeof *v, cli_cmp_double);
    return v[t->n_recent / 2];
}

int tuner_done(thread_tuner_t *t, double seconds, FILE *out) {
    t->steps++;
    if (!t->probing) {
        t->recent[t->next] = seconds;
        t->next = (t->next + 1) % TUNER_WINDOW;
        if (t->n_recent < TUNER_WINDOW) t->n_recent++;
        return 0;
    }
    t->probing = 0;
    double typical = median_recent(t);
    t->wins = seconds * TUNER_GAIN <= typical ? t->wins + 1 : 0;
    if (t->wins < 2) return 0;
    int from = t->cur, to = other(t);
    fprintf(out,
            "train: threads %d -> %d: a step took %.1f ms on %d thread%s against %.1f ms on %d (%s; the results do not "
            "depend on the thread count)\n",
            from, to, 1000 * seconds, to, to == 1 ? "" : "s", 1000 * typical, from,
            to == 1 ? "other processes are using the cores" : "the cores are free again");
    t->cur = to;
    t->steps = 0;
    t->wins = 0;
    t->n_recent = 0;
    t->next = 0;
    return 1;
}
