// spec.c — parser for the --layers grammar (see spec.h). Kinds, keys and values are made of name
// and value characters only; any other text quoted in a message goes through shown().
#include "model/spec.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/shown.h"

// The text with whitespace removed, so that positions in messages refer to the compact form.
static char *strip_spaces(const char *s) {
    char *out = xmalloc(strlen(s) + 1), *o = out;
    for (; *s; s++)
        if (!isspace((unsigned char)*s)) *o++ = *s;
    *o = 0;
    return out;
}

// Up to 10 bytes of the text at s for a message, made printable (the spec may come from a file).
static shown_t excerpt(const char *s) {
    char cut[11];
    snprintf(cut, sizeof cut, "%s", s);
    return shown(cut);
}

static int is_name_char(char c) { return isalnum((unsigned char)c) || c == '_'; }
static int is_value_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-' || c == '+'; }

// Reads kind[(k=v,...)] at *p into b.
static int parse_block(const char **p, const char *start, spec_block_t *b, char *err, size_t errlen) {
    memset(b, 0, sizeof *b);
    const char *s = *p;
    size_t n = 0;
    while (is_name_char(s[n])) n++;
    if (n == 0) return seterr(err, errlen, "--layers: expected a block kind at position %d, found '%s'", (int)(s - start),
                              *s ? excerpt(s).s : "end of text");
    if (n >= SPEC_NAME_LEN) return seterr(err, errlen, "--layers: block kind '%.*s' is too long", (int)n, s);
    memcpy(b->kind, s, n);
    s += n;
    if (*s == '(') {
        s++;
        for (;;) {
            if (b->n_opts == SPEC_MAX_OPTS) return seterr(err, errlen, "--layers: too many options for '%s'", b->kind);
            spec_opt_t *o = &b->opts[b->n_opts];
            size_t k = 0;
            while (is_name_char(s[k])) k++;
            if (k == 0 || k >= SPEC_NAME_LEN || s[k] != '=')
                return seterr(err, errlen, "--layers: expected option=value inside '%s(...)' at position %d", b->kind, (int)(s - start));
            memcpy(o->key, s, k);
            s += k + 1;
            size_t v = 0;
            while (is_value_char(s[v])) v++;
            if (v == 0 || v >= SPEC_NAME_LEN)
                return seterr(err, errlen, "--layers: option '%s' of '%s' has no value or a bad one at position %d", o->key, b->kind, (int)(s - start));
            memcpy(o->value, s, v);
            s += v;
            for (int i = 0; i < b->n_opts; i++)
                if (strcmp(b->opts[i].key, o->key) == 0) return seterr(err, errlen, "--layers: option '%s' given twice for '%s'", o->key, b->kind);
            b->n_opts++;
            if (*s == ',') { s++; continue; }
            if (*s == ')') { s++; break; }
            return seterr(err, errlen, "--layers: expected ',' or ')' in '%s(...)' at position %d", b->kind, (int)(s - start));
        }
    }
    *p = s;
    return 0;
}

int spec_parse(const char *text, spec_layer_t **layers, int *n_layers, char *err, size_t errlen) {
    char *buf = strip_spaces(text);
    const char *s = buf;
    spec_layer_t *out = NULL;
    int n = 0, cap = 0, rc = -1;
    if (!*s) { seterr(err, errlen, "--layers: empty layer spec"); goto done; }
    for (;;) {
        long repeat = 1;
        if (isdigit((unsigned char)*s)) {
            char *end;
            errno = 0;
            repeat = strtol(s, &end, 10);
            if (*end != '*') { seterr(err, errlen, "--layers: expected 'N*' before a layer at position %d", (int)(s - buf)); goto done; }
            if (errno || repeat < 1 || repeat > 1000) { seterr(err, errlen, "--layers: repeat count must be 1..1000, got '%.*s'", (int)(end - s), s); goto done; }
            s = end + 1;
        }
        spec_layer_t layer;
        memset(&layer, 0, sizeof layer);
        if (parse_block(&s, buf, &layer.mixer, err, errlen)) goto done;
        if (*s == '/') {
            s++;
            if (parse_block(&s, buf, &layer.ffn, err, errlen)) goto done;
            layer.has_ffn = 1;
        }
        if (n + repeat > 1000) { seterr(err, errlen, "--layers: more than 1000 layers"); goto done; }
        if (n + repeat > cap) {
            cap = (int)(n + repeat) * 2;
            spec_layer_t *grown = xmalloc((size_t)cap * sizeof *grown);
            if (n) memcpy(grown, out, (size_t)n * sizeof *grown);
            free(out);
            out = grown;
        }
        for (long r = 0; r < repeat; r++) out[n++] = layer;
        if (*s == 0) break;
        if (*s != ',') { seterr(err, errlen, "--layers: expected ',' between layers at position %d, found '%s'", (int)(s - buf), excerpt(s).s); goto done; }
        s++;
    }
    rc = 0;
done:
    free(buf);
    if (rc) { free(out); out = NULL; n = 0; }
    *layers = out;
    *n_layers = n;
    return rc;
}

static spec_opt_t *find_opt(spec_block_t *b, const char *name) {
    for (int i = 0; i < b->n_opts; i++)
        if (strcmp(b->opts[i].key, name) == 0) return &b->opts[i];
    return NULL;
}

int spec_get_int(spec_block_t *b, const char *name, long def, long lo, long hi, long *out, const char *where,
                 char *err, size_t errlen) {
    spec_opt_t *o = find_opt(b, name);
    if (!o) { *out = def; return 0; }
    o->used = 1;
    char *end;
    errno = 0;
    double v = strtod(o->value, &end);  // accepts 16384 and 1.6e4 alike, but must be a whole number
    if (*end || errno || !isfinite(v) || v != floor(v))
        return seterr(err, errlen, "%s: option %s must be a whole number, got '%s'", where, name, o->value);
    if (v < (double)lo || v > (double)hi)
        return seterr(err, errlen, "%s: option %s=%s is out of range [%ld, %ld]", where, name, o->value, lo, hi);
    *out = (long)v;
    return 0;
}

int spec_get_float(spec_block_t *b, const char *name, double def, double lo, double hi, double *out,
                   const char *where, char *err, size_t errlen) {
    spec_opt_t *o = find_opt(b, name);
    if (!o) { *out = def; return 0; }
    o->used = 1;
    char *end;
    errno = 0;
    double v = strtod(o->value, &end);
    if (*end || errno || !isfinite(v)) return seterr(err, errlen, "%s: option %s must be a number, got '%s'", where, name, o->value);
    if (v < lo || v > hi) return seterr(err, errlen, "%s: option %s=%s is out of range [%g, %g]", where, name, o->value, lo, hi);
    *out = v;
    return 0;
}

int spec_get_enum(spec_block_t *b, const char *name, const char *choices, int def, int *out, const char *where,
                  char *err, size_t errlen) {
    spec_opt_t *o = find_opt(b, name);
    if (!o) { *out = def; return 0; }
    o->used = 1;
    int idx = 0;
    const char *c = choices;
    size_t len = strlen(o->value);
    while (*c) {
        const char *bar = strchr(c, '|');
        size_t n = bar ? (size_t)(bar - c) : strlen(c);
        if (n == len && strncmp(c, o->value, n) == 0) { *out = idx; return 0; }
        idx++;
        c += n + (bar ? 1 : 0);
    }
    return seterr(err, errlen, "%s: option %s must be one of %s, got '%s'", where, name, choices, o->value);
}

int spec_check_unused(const spec_block_t *b, const char *where, const char *known, char *err, size_t errlen) {
    for (int i = 0; i < b->n_opts; i++)
        if (!b->opts[i].used)
            return seterr(err, errlen, "%s: unknown option '%s'; %s takes: %s", where, b->opts[i].key, b->kind,
                          known && *known ? known : "no options");
    return 0;
}
