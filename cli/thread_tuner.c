// thread_tuner.c — see thread_tuner.h.
#include "cli/thread_tuner.h"

#include <string.h>

void tuner_init(thread_tuner_t *t, int all_threads) {
    memset(t, 0, sizeof *t);
    t->all = all_threads;
    t->cur = all_threads > 0 ? all_threads : 1;
    t->gap = TUNER_PROBE_FIRST;
    t->next_probe = TUNER_PROBE_FIRST;
}

static int other(const thread_tuner_t *t) { return t->cur == 1 ? t->all : 1; }

int tuner_next(thread_tuner_t *t) {
    if (t->steps >= t->next_probe && t->n_recent < TUNER_MIN_RECENT) t->next_probe = t->steps + 1;  // too few to compare yet
    t->probing = t->all >= 2 && t->steps >= t->next_probe;
    return t->probing ? other(t) : t->cur;
}

// The mean, not the median: a busy neighbour makes 2-thread steps mostly quick with rare long stalls
// (a thread descheduled while its partner spins), and the stalls are the cost.
static double mean_recent(const thread_tuner_t *t) {
    double sum = 0;
    for (int i = 0; i < t->n_recent; i++) sum += t->recent[i];
    return sum / t->n_recent;
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
    double typical = mean_recent(t);
    t->wins = seconds * TUNER_GAIN <= typical ? t->wins + 1 : 0;
    if (t->wins == 0 && t->gap < TUNER_PROBE_EVERY) t->gap = 2 * t->gap < TUNER_PROBE_EVERY ? 2 * t->gap : TUNER_PROBE_EVERY;
    t->next_probe = t->steps + (t->wins ? TUNER_PROBE_FIRST : t->gap);
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
    t->gap = TUNER_PROBE_FIRST;
    t->next_probe = TUNER_PROBE_FIRST;
    return 1;
}
