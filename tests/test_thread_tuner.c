// test_thread_tuner.c — train's thread count under --threads 0 (cli/thread_tuner.h), on simulated
// step times: quiet (all cores faster) it stays on all cores and probes one step in
// TUNER_PROBE_EVERY; loaded (one thread faster) it switches within two probes (a run's start: 2·8 steps), says so in one line,
// and switches back when the cores are free again; one slow or fast probe alone switches nothing.
#include <stdio.h>
#include <string.h>

#include "cli/thread_tuner.h"
#include "tests/testlib.h"

// Run `steps` steps whose time depends on the thread count: ms_all on all cores, ms_one on one;
// returns how many steps ran on each count through *on_one, and the switches.
static int run(thread_tuner_t *t, int steps, double ms_all, double ms_one, int *on_one, FILE *out) {
    int switches = 0;
    *on_one = 0;
    for (int i = 0; i < steps; i++) {
        int n = tuner_next(t);
        *on_one += n == 1;
        switches += tuner_done(t, 1e-3 * (n == 1 ? ms_one : ms_all), out);
    }
    return switches;
}

int main(void) {
    char buf[4096];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    setvbuf(f, NULL, _IONBF, 0);
    thread_tuner_t t;
    int on_one;
    TEST_CASE("quiet: stays on all cores, probing one step in TUNER_PROBE_EVERY") {
        tuner_init(&t, 2);
        EXPECT(run(&t, 1000, 30.0, 50.0, &on_one, f) == 0 && t.cur == 2);
        // probes 8, 16, 32 apart at first, then TUNER_PROBE_EVERY
        EXPECT_MSG(on_one >= 1000 / TUNER_PROBE_EVERY - 1 && on_one <= 1000 / TUNER_PROBE_EVERY + 4, "%d probes", on_one);
        EXPECT(ftell(f) == 0);
    }
    TEST_CASE("loaded: switches to one thread within TUNER_PROBE_EVERY + TUNER_PROBE_FIRST steps, in one line") {
        EXPECT(run(&t, TUNER_PROBE_EVERY + TUNER_PROBE_FIRST, 100.0, 50.0, &on_one, f) == 1 && t.cur == 1);
        EXPECT_MSG(strstr(buf, "threads 2 -> 1") && strstr(buf, "50.0 ms on 1 thread against 100.0 ms on 2"), "said '%s'", buf);
        EXPECT(strchr(buf, '\n') == buf + strlen(buf) - 1);
    }
    TEST_CASE("on one thread while loaded it stays; when the cores are free it goes back") {
        EXPECT(run(&t, 500, 100.0, 50.0, &on_one, f) == 0 && t.cur == 1);
        EXPECT(run(&t, TUNER_PROBE_EVERY + TUNER_PROBE_FIRST, 30.0, 50.0, &on_one, f) == 1 && t.cur == 2);
        EXPECT(strstr(buf, "threads 1 -> 2"));
    }
    TEST_CASE("a single slow probe, or a gain below TUNER_GAIN, switches nothing") {
        thread_tuner_t u;
        tuner_init(&u, 2);
        int switched = 0, probes = 0;
        for (int i = 0; i < 1000; i++) {
            int n = tuner_next(&u);
            // every other probe finds one thread much faster (noise); the rest find it slower
            double ms = n == 1 ? (probes++ % 2 == 0 ? 10.0 : 60.0) : 30.0;
            switched += tuner_done(&u, 1e-3 * ms, f);
        }
        EXPECT(switched == 0 && u.cur == 2 && probes > 10);
        tuner_init(&u, 2);
        EXPECT(run(&u, 1000, 30.0, 30.0 / (TUNER_GAIN * 0.99), &on_one, f) == 0 && u.cur == 2);
    }
    TEST_CASE("loaded from the start: switches within 2·TUNER_PROBE_FIRST + TUNER_MIN_RECENT steps") {
        thread_tuner_t u;
        tuner_init(&u, 2);
        EXPECT(run(&u, 2 * TUNER_PROBE_FIRST + TUNER_MIN_RECENT, 100.0, 50.0, &on_one, f) == 1 && u.cur == 1);
    }
    TEST_CASE("one core: nothing to tune") {
        thread_tuner_t u;
        tuner_init(&u, 1);
        EXPECT(run(&u, 500, 100.0, 50.0, &on_one, f) == 0 && u.cur == 1);
    }
    fclose(f);
    return test_main_end();
}
