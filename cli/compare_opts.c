// compare_opts.c — the command line of `compare` (compare_opts.h).
#include "cli/compare_opts.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"

const char *const CMP_USAGE =
    "usage: compare FILE OUTDIR --spec SPEC [--spec SPEC ...] [options] [-- shared train flags]\n"
    "  --spec SPEC             a --layers spec to train (at least one; each once)\n"
    "  --spec-flags SPEC=FLAGS train flags for that spec only, after the shared ones (e.g. '4*performer/mlp=--lr 5e-4')\n"
    "  --seeds N               runs per spec, seeds S, S+1, ..., S+N-1 (default 1)\n"
    "  --seed S                the first seed (default 1337, train's default)\n"
    "  --jobs J                runs at once (default 1); each gets --threads max(1, cores/J) unless its flags set it\n"
    "  --time-budget S         equal wall-clock budgets: every run gets train --time-budget S (default: equal steps)\n"
    "  --equal-params          equal parameter counts: refused (not implemented; set --dim per spec with --spec-flags)\n"
    "  --progress-every S      seconds between progress lines (default 10)\n"
    "  --train PATH            the train binary (default: the one beside compare)\n"
    "Writes OUTDIR/report.md, report.csv, *.png, manifest.json and runs/<key>/; rerun the same command to resume.";

static const char *const RESERVED[] = {"layers", "seed", "out", "log", "by-position", "resume", "stop-after", "time-budget", "check",
                                       "list-kinds", "export", "help", "version", NULL};

static int flag_is(const char *w, const char *name) {
    if (strncmp(w, "--", 2) != 0) return 0;
    size_t n = strlen(name);
    return strncmp(w + 2, name, n) == 0 && (w[2 + n] == 0 || w[2 + n] == '=');
}

const char *cmp_reserved_flag(char *const *words, int n) {
    for (int i = 0; i < n; i++)
        for (const char *const *r = RESERVED; *r; r++)
            if (flag_is(words[i], *r)) return words[i];
    return NULL;
}

const char *cmp_flag_value(char *const *words, int n, const char *name) {
    const char *v = NULL;
    for (int i = 0; i < n; i++) {
        if (!flag_is(words[i], name)) continue;
        const char *eq = strchr(words[i], '=');
        if (eq) v = eq + 1;
        else if (i + 1 < n) v = words[i + 1];
    }
    return v;
}

// The name of flag word w ("--lr=1e-3" -> "lr", length in *len), or NULL if w is not a flag.
static const char *flag_name(const char *w, size_t *len) {
    if (strncmp(w, "--", 2) != 0 || !w[2]) return NULL;
    const char *eq = strchr(w, '=');
    *len = eq ? (size_t)(eq - w - 2) : strlen(w + 2);
    return w + 2;
}

char **cmp_merge_flags(char *const *shared, int n_shared, char *const *own, int n_own, int *n_out) {
    char **out = xmalloc((size_t)(n_shared + n_own + 1) * sizeof *out);
    int n = 0, drop = 0;
    for (int i = 0; i < n_shared; i++) {
        size_t len;
        const char *name = flag_name(shared[i], &len);
        if (name) {
            drop = 0;
            for (int j = 0; j < n_own && !drop; j++) {
                size_t l2;
                const char *n2 = flag_name(own[j], &l2);
                drop = n2 && l2 == len && strncmp(n2, name, len) == 0;
            }
        }
        if (!drop) out[n++] = shared[i];
    }
    for (int j = 0; j < n_own; j++) out[n++] = own[j];
    out[n] = NULL;
    *n_out = n;
    return out;
}

int cmp_split_spec_flags(const char *arg) {
    int depth = 0;
    for (int i = 0; arg[i]; i++) {
        if (arg[i] == '(') depth++;
        else if (arg[i] == ')' && depth > 0) depth--;
        else if (arg[i] == '=' && depth == 0) return i;
    }
    return -1;
}

// Append the whitespace-separated words of s to *words.
static void split_words(const char *s, char ***words, int *n) {
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        const char *q = p;
        while (*q && *q != ' ' && *q != '\t' && *q != '\n') q++;
        *words = realloc(*words, (size_t)(*n + 1) * sizeof **words);
        CHECK(*words);
        char *w = xmalloc((size_t)(q - p) + 1);
        memcpy(w, p, (size_t)(q - p));
        w[q - p] = 0;
        (*words)[(*n)++] = w;
        p = q;
    }
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cmp_opts_parse(int argc, char **argv, cmp_opts_t *o, char *err, size_t errlen) {
    *o = (cmp_opts_t){.train = "", .seeds = 1, .seed_base = 1337, .jobs = 1, .progress_every = 10};
    const char *pos[2];
    int n_pos = 0;
    const char **sf = NULL;  // the --spec-flags arguments, matched to specs after parsing
    int n_sf = 0;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = 1;
            free(sf);
            return 0;
        }
        if (strcmp(a, "--equal-params") == 0) {
            o->equal_params = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (n_pos == 2) {
                free(sf);
                return seterr(err, errlen, "unexpected argument '%s' (train flags go after '--')", a);
            }
            pos[n_pos++] = a;
            continue;
        }
        static const char *const valued[] = {"--spec", "--spec-flags", "--seeds", "--seed", "--jobs",
                                             "--time-budget", "--progress-every", "--train"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof *valued; k++) known |= strcmp(a, valued[k]) == 0;
        if (!known) {
            free(sf);
            return seterr(err, errlen, "unknown option '%s' (train flags go after '--'; see --help)", a);
        }
        if (i + 1 >= argc) {
            free(sf);
            return seterr(err, errlen, "%s needs a value", a);
        }
        const char *v = argv[++i];
        int bad = 0;
        if (strcmp(a, "--spec") == 0) {
            if (!v[0]) bad = 1;
            for (int s = 0; s < o->n_specs && !bad; s++)
                if (strcmp(o->specs[s].spec, v) == 0) {
                    free(sf);
                    return seterr(err, errlen, "--spec '%s' is given twice", v);
                }
            if (!bad) {
                o->specs = realloc(o->specs, (size_t)(o->n_specs + 1) * sizeof *o->specs);
                CHECK(o->specs);
                o->specs[o->n_specs++] = (cmp_spec_t){.spec = v};
            }
        } else if (strcmp(a, "--spec-flags") == 0) {
            sf = realloc(sf, (size_t)(n_sf + 1) * sizeof *sf);
            CHECK(sf);
            sf[n_sf++] = v;
        } else if (strcmp(a, "--seeds") == 0) {
            bad = parse_long(v, 1, 1000, &o->seeds);
        } else if (strcmp(a, "--seed") == 0) {
            bad = parse_long(v, 0, 9000000000000000L, &o->seed_base);
        } else if (strcmp(a, "--jobs") == 0) {
            bad = parse_long(v, 1, 1024, &o->jobs);
        } else if (strcmp(a, "--time-budget") == 0) {
            bad = parse_double(v, 1e-3, 1e9, &o->time_budget);
        } else if (strcmp(a, "--progress-every") == 0) {
            bad = parse_double(v, 0.1, 86400, &o->progress_every);
        } else if (strcmp(a, "--train") == 0) {
            bad = !v[0];
            o->train = v;
        } else {
            CHECK(0);  // every name in valued[] has its branch above
        }
        if (bad) {
            free(sf);
            return seterr(err, errlen, "%s: bad value '%s' (see --help)", a, v);
        }
    }
    o->shared = argv + i;
    o->n_shared = argc - i;
    int rc = 0;
    if (n_pos != 2) rc = seterr(err, errlen, "expected FILE and OUTDIR (see --help)");
    else if (o->n_specs == 0) rc = seterr(err, errlen, "no --spec given: nothing to compare");
    const char *r = cmp_reserved_flag(o->shared, o->n_shared);
    if (!rc && r) rc = seterr(err, errlen, "shared train flag '%s' is set by compare itself (see --help: --spec, --seed, --time-budget)", r);
    for (int k = 0; k < n_sf && !rc; k++) {
        int at = cmp_split_spec_flags(sf[k]);
        if (at < 0) {
            rc = seterr(err, errlen, "--spec-flags '%s' is not SPEC=FLAGS", sf[k]);
            break;
        }
        cmp_spec_t *hit = NULL;
        for (int s = 0; s < o->n_specs; s++)
            if (strlen(o->specs[s].spec) == (size_t)at && strncmp(o->specs[s].spec, sf[k], (size_t)at) == 0) hit = &o->specs[s];
        if (!hit) {
            rc = seterr(err, errlen, "--spec-flags '%s' names no --spec ('%.*s' is not one of them)", sf[k], at, sf[k]);
            break;
        }
        split_words(sf[k] + at + 1, &hit->flags, &hit->n_flags);
        r = cmp_reserved_flag(hit->flags, hit->n_flags);
        if (r) rc = seterr(err, errlen, "--spec-flags '%s': '%s' is set by compare itself", sf[k], r);
    }
    free(sf);
    if (!rc) {
        o->file = pos[0];
        o->outdir = pos[1];
    }
    return rc;
}

void cmp_opts_free(cmp_opts_t *o) {
    for (int s = 0; s < o->n_specs; s++) {
        for (int k = 0; k < o->specs[s].n_flags; k++) free(o->specs[s].flags[k]);
        free(o->specs[s].flags);
    }
    free(o->specs);
    o->specs = NULL;
    o->n_specs = 0;
}
