// check.c — checked allocation and error reporting (see check.h).
#include "base/check.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// The line goes out in one write(2) (atomic on a pipe up to PIPE_BUF = 4096 bytes): under mpirun every
// rank reports the same error into one pipe, and piecewise writes interleaved the ranks' lines.
void die(int code, const char *fmt, ...) {
    char line[4096] = "attnlab: ";
    size_t n = strlen(line);
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    n = k < 0 ? n : n + ((size_t)k < sizeof line - n - 1 ? (size_t)k : sizeof line - n - 2);
    line[n++] = '\n';
    fflush(stderr);
    for (size_t off = 0; off < n;) {
        ssize_t w = write(STDERR_FILENO, line + off, n - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    exit(code);
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die(EXIT_RUNTIME, "out of memory allocating %zu bytes", n);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) die(EXIT_RUNTIME, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

float *xalloc_floats(size_t n) {
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (!p) die(EXIT_RUNTIME, "out of memory allocating %zu floats", n);
    memset(p, 0, bytes);
    return p;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

int seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}
