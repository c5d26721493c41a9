// mqar_mix.c — a training mixture of MQAR settings (mqar_mix.h).
#include "data/mqar_mix.h"

#include "base/check.h"

#include <errno.h>
#include <stdlib.h>

// A decimal integer in [lo, hi] at *p, advancing *p past it; -1 if there is none or it is out of range.
static int read_int(const char **p, long lo, long hi, long *out) {
    if (**p < '0' || **p > '9') return -1;
    errno = 0;
    char *end;
    long v = strtol(*p, &end, 10);
    if (errno || v < lo || v > hi) return -1;
    *p = end;
    *out = v;
    return 0;
}

int mqar_mix_parse(const char *text, int vocab, int ctx, mqar_mix_t *mix, char *err, size_t errlen) {
    *mix = (mqar_mix_t){0};
    const char *p = text;
    for (;;) {
        if (mix->n == MQAR_MIX_MAX) return seterr(err, errlen, "mqar mixture '%s': more than %d settings", text, MQAR_MIX_MAX);
        long len, pairs, weight = 1;
        if (read_int(&p, 1, MQAR_MAX_LEN, &len) || *p++ != ':' || read_int(&p, 1, MQAR_MAX_LEN, &pairs))
            return seterr(err, errlen, "mqar mixture '%s': setting %d is not LEN:PAIRS[:WEIGHT] with positive integers", text, mix->n + 1);
        if (*p == ':' && (p++, read_int(&p, 1, 1000000, &weight)))
            return seterr(err, errlen, "mqar mixture '%s': setting %d's weight is not an integer in [1, 1000000]", text, mix->n + 1);
        mqar_cfg_t c = {.vocab = vocab, .len = (int)len, .pairs = (int)pairs};
        char why[256];
        if (mqar_check(&c, why, sizeof why)) return seterr(err, errlen, "mqar mixture '%s': setting %d: %s", text, mix->n + 1, why);
        if (len > ctx)
            return seterr(err, errlen, "mqar mixture '%s': setting %d's length %ld is longer than --mqar-len %d (the rows' ctx)",
                        text, mix->n + 1, len, ctx);
        mix->cfg[mix->n] = c;
        mix->weight[mix->n] = weight;
        mix->total += weight;
        mix->n++;
        if (*p == '\0') return 0;
        if (*p++ != ',') return seterr(err, errlen, "mqar mixture '%s': settings are separated by ','", text);
    }
}

void mqar_mix_batch(const mqar_mix_t *mix, int ctx, rng_t *rng, int B, int32_t *x, int32_t *y) {
    for (int b = 0; b < B; b++) {
        int32_t *xb = x + (size_t)b * ctx, *yb = y + (size_t)b * ctx;
        long u = (long)rng_below(rng, (uint64_t)mix->total);
        int i = 0;
        while (u >= mix->weight[i]) u -= mix->weight[i++];
        mqar_generate(&mix->cfg[i], rng, xb, yb);
        for (int t = mix->cfg[i].len; t < ctx; t++) {
            xb[t] = 0;
            yb[t] = MQAR_NO_TARGET;
        }
    }
}
