// streams.c — B parallel training streams read segment by segment (see streams.h).
#include "data/streams.h"

#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/rng.h"

int streams_init(streams_t *s, size_t lo, size_t n, int B, int T, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    CHECK(B >= 1 && T >= 1);
    size_t len = n / (size_t)B;
    if (len < (size_t)T + 1)
        return seterr(err, errlen, "the training split's %zu tokens in %d streams of %zu tokens: a stream needs at least "
                      "ctx+1 = %d; use a smaller --batch or --ctx", n, B, len, T + 1);
    *s = (streams_t){.lo = lo, .len = len, .B = B, .T = T, .offset = 0, .perm_epoch = -1};
    return 0;
}

int streams_init_chunked(streams_t *s, size_t lo, size_t n, int B, int T, size_t chunk, uint64_t seed, char *err,
                         size_t errlen) {
    if (chunk == 0) return streams_init(s, lo, n, B, T, err, errlen);
    memset(s, 0, sizeof *s);
    CHECK(B >= 1 && T >= 1);
    if (chunk < (size_t)T + 1) return seterr(err, errlen, "--stream-chunk %zu is shorter than ctx+1 = %d", chunk, T + 1);
    size_t c = n / chunk;
    if (c < (size_t)B)
        return seterr(err, errlen, "the training split's %zu tokens hold %zu chunks of %zu tokens, fewer than the %d rows of "
                      "a batch; use a smaller --stream-chunk or --batch", n, c, chunk, B);
    *s = (streams_t){.lo = lo, .len = chunk, .B = B, .T = T, .offset = 0, .chunk = chunk, .n_chunks = c, .seed = seed,
                     .cycle = 0, .perm = xmalloc(c * sizeof *s->perm), .perm_epoch = -1};
    return 0;
}

void streams_free(streams_t *s) {
    free(s->perm);
    s->perm = NULL;
    s->perm_epoch = -1;
}

// perm_e: Fisher–Yates over 0 … C−1 from the epoch's own generator (fork e of the seed's).
static void draw_epoch(streams_t *s, long e) {
    rng_t base, r;
    rng_seed(&base, s->seed);
    rng_fork(&base, (uint64_t)e, &r);
    for (size_t i = 0; i < s->n_chunks; i++) s->perm[i] = i;
    for (size_t i = s->n_chunks - 1; i > 0; i--) {
        size_t j = (size_t)rng_below(&r, (uint64_t)i + 1), t = s->perm[i];
        s->perm[i] = s->perm[j];
        s->perm[j] = t;
    }
    s->perm_epoch = e;
}

size_t streams_row_start(streams_t *s, int b) {
    CHECK(b >= 0 && b < s->B);
    if (!s->chunk) return s->lo + (size_t)b * s->len;
    uint64_t q = (uint64_t)s->cycle * (uint64_t)s->B + (uint64_t)b;
    long e = (long)(q / s->n_chunks);
    if (e != s->perm_epoch) draw_epoch(s, e);
    return s->lo + s->perm[q % s->n_chunks] * s->chunk;
}

int streams_will_wrap(const streams_t *s) { return s->offset + (size_t)s->T + 1 > s->len; }

int streams_begin_segment(streams_t *s) {
    if (!streams_will_wrap(s)) return 0;
    s->offset = 0;
    if (s->chunk) s->cycle++;
    return 1;
}

int streams_next(streams_t *s, const int32_t *tokens, int32_t *x, int32_t *y) {
    int wrapped = streams_begin_segment(s);
    size_t T = (size_t)s->T;
    for (int b = 0; b < s->B; b++) {
        const int32_t *w = tokens + streams_row_start(s, b) + s->offset;
        memcpy(x + (size_t)b * T, w, T * sizeof *x);
        memcpy(y + (size_t)b * T, w + 1, T * sizeof *y);
    }
    s->offset += T;
    return wrapped;
}

int streams_check_offset(const streams_t *s, double offset, char *err, size_t errlen) {
    // Checked as a double first: a stored 1e300 must not reach a conversion.
    if (!(offset >= 0 && offset < (double)s->len) || offset != (double)(size_t)offset || (size_t)offset % (size_t)s->T)
        return seterr(err, errlen, "stream offset %.15g is not a multiple of ctx %d within a stream of %zu tokens", offset,
                      s->T, s->len);
    return 0;
}

int streams_check_cycle(const streams_t *s, double cycle, char *err, size_t errlen) {
    (void)s;
    if (!(cycle >= 0 && cycle <= 1125899906842624.0) || cycle != (double)(long)cycle)
        return seterr(err, errlen, "stream cycle %.15g is not a count in [0, 2^50]", cycle);
    return 0;
}
