// streams.c — B parallel training streams read segment by segment (see streams.h).
#include "data/streams.h"

#include <string.h>

#include "base/check.h"

int streams_init(streams_t *s, size_t lo, size_t n, int B, int T, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    CHECK(B >= 1 && T >= 1);
    size_t len = n / (size_t)B;
    if (len < (size_t)T + 1)
        return seterr(err, errlen, "the training split's %zu tokens in %d streams of %zu tokens: a stream needs at least "
                      "ctx+1 = %d; use a smaller --batch or --ctx", n, B, len, T + 1);
    *s = (streams_t){.lo = lo, .len = len, .B = B, .T = T, .offset = 0};
    return 0;
}

int streams_will_wrap(const streams_t *s) { return s->offset + (size_t)s->T + 1 > s->len; }

int streams_next(streams_t *s, const int32_t *tokens, int32_t *x, int32_t *y) {
    int wrapped = streams_will_wrap(s);
    if (wrapped) s->offset = 0;
    size_t T = (size_t)s->T;
    for (int b = 0; b < s->B; b++) {
        const int32_t *w = tokens + s->lo + (size_t)b * s->len + s->offset;
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
