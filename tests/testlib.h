// testlib.h — the tiny test harness every tests/test_*.c uses.
// TEST_CASE groups checks; EXPECT records a failure with file:line and keeps going;
// expect_close() compares arrays with |a-b| <= atol + rtol*|b| and prints the worst element.
// test_main_end() prints the closing line "N passed, N failed" and returns non-zero on failure.
#ifndef ATTNLAB_TESTLIB_H
#define ATTNLAB_TESTLIB_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int tl_passed, tl_failed, tl_case_failed;
static const char *tl_case = "";

#define TEST_CASE(name) for (int tl_once = (tl_begin(name), 1); tl_once; tl_once = 0, tl_end())

static inline void tl_begin(const char *name) {
    tl_case = name;
    tl_case_failed = 0;
}
static inline void tl_end(void) {
    if (tl_case_failed) {
        tl_failed++;
        printf("FAIL %s\n", tl_case);
    } else {
        tl_passed++;
        printf("ok   %s\n", tl_case);
    }
    fflush(stdout);
}

#define EXPECT(cond)                                                               \
    do {                                                                           \
        if (!(cond)) {                                                             \
            printf("  %s:%d: expected %s\n", __FILE__, __LINE__, #cond);           \
            tl_case_failed = 1;                                                    \
        }                                                                          \
    } while (0)

#define EXPECT_MSG(cond, ...)                                                      \
    do {                                                                           \
        if (!(cond)) {                                                             \
            printf("  %s:%d: ", __FILE__, __LINE__);                               \
            printf(__VA_ARGS__);                                                   \
            printf("\n");                                                          \
            tl_case_failed = 1;                                                    \
        }                                                                          \
    } while (0)

// Compare got[0..n) to want[0..n); returns the worst |got-want|/(atol+rtol|want|) (<= 1 passes).
static inline double expect_close_at(const char *what, const float *got, const float *want, size_t n,
                                     double atol, double rtol, const char *file, int line) {
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double r = d / (atol + rtol * fabs((double)want[i]));
        if (!(r <= worst)) { worst = r; wi = i; }  // NaN-aware: a NaN becomes the worst
    }
    if (!(worst <= 1.0) && n) {
        printf("  %s:%d: %s: worst element %zu: got %.9g want %.9g (|diff| %.3g, atol %.3g, rtol %.3g)\n",
               file, line, what, wi, got[wi], want[wi], fabs((double)got[wi] - want[wi]), atol, rtol);
        tl_case_failed = 1;
    }
    return worst;
}
#define EXPECT_CLOSE(what, got, want, n, atol, rtol) \
    expect_close_at(what, got, want, n, atol, rtol, __FILE__, __LINE__)

static inline int test_main_end(void) {
    printf("%d passed, %d failed\n", tl_passed, tl_failed);
    return tl_failed ? 1 : 0;
}

#endif
