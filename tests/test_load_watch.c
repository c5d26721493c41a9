// test_load_watch.c — train's warning when other processes take its cores (cli/load_watch.h): silent
// while intervals stay near the fastest, or while the load shows nobody else; one line when an
// interval is LOAD_WATCH_RATIO× slower and the load average exceeds the threads; then quiet for
// LOAD_WATCH_QUIET_S seconds.
#include <stdio.h>
#include <string.h>

#include "cli/load_watch.h"
#include "tests/testlib.h"

int main(void) {
    char buf[1024];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    setvbuf(f, NULL, _IONBF, 0);
    load_watch_t w;
    load_watch_init(&w, 2);
    TEST_CASE("intervals shorter than LOAD_WATCH_MIN_S are ignored: neither the fastest nor a warning") {
        load_watch_t ws;
        load_watch_init(&ws, 2);
        EXPECT(load_watch_interval(&ws, 1.0, 0.5, 1.0, 9.0, f) == 0 && ws.best_ms == 0);
        EXPECT(load_watch_interval(&ws, 10.0, 3.0, 2.0, 9.0, f) == 0 && ws.best_ms == 10.0);
        EXPECT(load_watch_interval(&ws, 90.0, 1.9, 3.0, 9.0, f) == 0);
        EXPECT(ftell(f) == 0);
    }
    TEST_CASE("no warning: first interval, a faster one, one 1.9x slower, or slow without other load") {
        EXPECT(load_watch_interval(&w, 40.0, 3.0, 1.0, 5.0, f) == 0);  // first: sets the best
        EXPECT(load_watch_interval(&w, 30.0, 3.0, 2.0, 5.0, f) == 0);  // faster: the new best
        EXPECT(load_watch_interval(&w, 56.9, 3.0, 3.0, 5.0, f) == 0);  // 1.9x: below the ratio
        EXPECT(load_watch_interval(&w, 90.0, 3.0, 4.0, 2.4, f) == 0);  // 3x, but load 2.4 with 2 threads: ours
        EXPECT(ftell(f) == 0);
    }
    TEST_CASE("3x slower with load 3.2 on 2 threads: one line naming the ratio, times and load") {
        EXPECT(load_watch_interval(&w, 90.0, 3.0, 5.0, 3.2, f) == 1);
        EXPECT_MSG(strstr(buf, "3.0x") && strstr(buf, "90.0 ms against 30.0 ms") && strstr(buf, "load average is 3.2") &&
                       strstr(buf, "--threads 1"),
                   "printed '%s'", buf);
        EXPECT(strchr(buf, '\n') == buf + strlen(buf) - 1);
    }
    TEST_CASE("then quiet for LOAD_WATCH_QUIET_S, and warns again after it") {
        long at = ftell(f);
        EXPECT(load_watch_interval(&w, 90.0, 3.0, 5.0 + LOAD_WATCH_QUIET_S - 1, 3.2, f) == 0);
        EXPECT(ftell(f) == at);
        EXPECT(load_watch_interval(&w, 90.0, 3.0, 5.0 + LOAD_WATCH_QUIET_S + 1, 3.2, f) == 1);
    }
    TEST_CASE("one thread: no advice to use one thread") {
        load_watch_t w1;
        load_watch_init(&w1, 1);
        rewind(f);
        memset(buf, 0, sizeof buf);
        load_watch_interval(&w1, 10.0, 3.0, 1.0, 3.0, f);
        EXPECT(load_watch_interval(&w1, 30.0, 3.0, 2.0, 3.0, f) == 1 && !strstr(buf, "--threads 1"));
    }
    fclose(f);
    return test_main_end();
}
