// test_params_find.c — registering and finding parameters is near-linear in their count (issue 10
// item 15: a 1000-layer config took 13 s under ASan because every params_add scanned the whole
// table for a duplicate name), and params_find stays exact: every name found, absent ones not.
#include "model/params.h"
#include "tests/testlib.h"

#include <stdio.h>
#include <time.h>

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void) {
    TEST_CASE("40000 registrations and lookups: exact, and in well under a second of CPU") {
        enum { N = 40000 };
        param_table_t pt;
        params_init_table(&pt);
        char name[80];
        double t0 = cpu_seconds();
        for (int i = 0; i < N; i++) {
            snprintf(name, sizeof name, "layers.%d.attn.w%d", i / 16, i % 16);
            params_add(&pt, "", name, (param_spec_t){.shape = {1}, .init = INIT_ZEROS});
        }
        int found = 0;
        for (int i = 0; i < N; i++) {
            snprintf(name, sizeof name, "layers.%d.attn.w%d", i / 16, i % 16);
            found += params_find(&pt, name) == pt.items[i];
        }
        for (int i = 0; i < 1000; i++) {
            snprintf(name, sizeof name, "layers.%d.attn.w%d", N / 16 + i, i % 16);
            found -= params_find(&pt, name) != NULL;
        }
        double secs = cpu_seconds() - t0;
        EXPECT_MSG(found == N, "%d of %d found exactly", found, N);
        // A linear scan per registration makes this 8·10⁸ string compares (seconds, minutes under ASan).
        EXPECT_MSG(secs < 1.0, "took %.2f s of CPU: quadratic?", secs);
        printf("  %d registrations + %d lookups: %.3f s CPU\n", N, N + 1000, secs);
        params_allocate(&pt);
        EXPECT(params_find(&pt, "layers.0.attn.w0") == pt.items[0] && pt.items[0]->data != NULL);
        params_free(&pt);
    }
    TEST_CASE("the index follows registrations made after a lookup") {
        param_table_t pt;
        params_init_table(&pt);
        EXPECT(params_find(&pt, "a") == NULL);
        param_t *a = params_add(&pt, "", "a", (param_spec_t){.shape = {2}, .init = INIT_ZEROS});
        EXPECT(params_find(&pt, "a") == a && params_find(&pt, "b") == NULL);
        param_t *b = params_add(&pt, "", "b", (param_spec_t){.shape = {2}, .init = INIT_ZEROS});
        EXPECT(params_find(&pt, "a") == a && params_find(&pt, "b") == b && params_find(&pt, "") == NULL);
        params_free(&pt);
    }
    return test_main_end();
}
