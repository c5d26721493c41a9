// check.h — checked wrappers and error reporting used everywhere.
// Every diagnostic goes to stderr as one line. Functions that can fail on user input return
// 0 on success and -1 with a message in (err, errlen); die() is for programming errors and
// out-of-memory only.
#ifndef ATTNLAB_CHECK_H
#define ATTNLAB_CHECK_H

#include <stddef.h>
#include <stdio.h>

// Exit codes of both binaries (ARCHITECTURE.md §6).
enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

// Print "attnlab: <message>" to stderr and exit with `code`.
void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

// malloc/calloc that die on failure (out of memory is not recoverable here).
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
// 64-byte aligned, zeroed allocation for arenas (free with free()).
float *xalloc_floats(size_t n);
char *xstrdup(const char *s);

// snprintf into an error buffer; returns -1 so callers can `return seterr(err, n, ...)`.
int seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// Assertion that survives NDEBUG (programming errors, not user input).
#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) die(EXIT_RUNTIME, "internal error: %s (%s:%d)", #cond, __FILE__, __LINE__); \
    } while (0)

#endif
