// compare_bypos.c — reading a run's by_position.csv (compare_bypos.h).
#include "cli/compare_bypos.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"

enum { COL_LO, COL_HI, COL_TOKENS, COL_LOSS, N_COLS };
static const char *const COL_NAMES[N_COLS] = {"context_lo", "context_hi", "tokens", "loss"};

// Split line (modified in place) at commas into at most max fields; returns the number of fields.
static int split_commas(char *line, char **fields, int max) {
    int n = 0;
    line[strcspn(line, "\r\n")] = 0;
    for (char *p = line; n < max;) {
        fields[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    return n;
}

static int parse_double(const char *s, double *v) {
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && *end == 0 && errno != ERANGE;
}

static void clear(cmp_bypos_t *bp) {
    memset(bp, 0, sizeof *bp);
    for (int b = 0; b < EVAL_MAX_BUCKETS; b++) bp->loss[b] = NAN;
}

int cmp_bypos_read(const char *csv, cmp_bypos_t *bp, char *err, size_t errlen) {
    enum { MAX_FIELDS = 64 };
    clear(bp);
    FILE *f = fopen(csv, "r");
    if (!f && errno == ENOENT) return 1;
    if (!f) return seterr(err, errlen, "cannot read '%s': %s", csv, strerror(errno));
    char line[4096], *fields[MAX_FIELDS];
    int col[N_COLS] = {-1, -1, -1, -1}, rc = 0, seen[EVAL_MAX_BUCKETS] = {0};
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return seterr(err, errlen, "'%s' is empty (no header)", csv);
    }
    int nf = split_commas(line, fields, MAX_FIELDS);
    for (int c = 0; c < N_COLS; c++)
        for (int i = 0; i < nf; i++)
            if (strcmp(fields[i], COL_NAMES[c]) == 0) col[c] = i;
    for (int c = 0; c < N_COLS && !rc; c++)
        if (col[c] < 0) rc = seterr(err, errlen, "'%s' has no column '%s'", csv, COL_NAMES[c]);
    for (int row = 2; !rc && fgets(line, sizeof line, f); row++) {
        if (line[strspn(line, "\r\n")] == 0) continue;  // a blank line
        nf = split_commas(line, fields, MAX_FIELDS);
        double v[N_COLS];
        for (int c = 0; c < N_COLS && !rc; c++)
            if (col[c] >= nf || !parse_double(fields[col[c]], &v[c]))
                rc = seterr(err, errlen, "'%s' line %d: '%s' is not a number", csv, row, col[c] < nf ? fields[col[c]] : "");
        if (rc) break;
        int b = v[COL_LO] >= 1 && v[COL_LO] < 0x1p62 ? eval_bucket_of((long)v[COL_LO]) : -1;
        if (b < 0 || b >= EVAL_MAX_BUCKETS || (double)eval_bucket_lo(b) != v[COL_LO] || (double)eval_bucket_hi(b) != v[COL_HI]) {
            rc = seterr(err, errlen, "'%s' line %d: context %g-%g is not a bucket 2^b-(2^(b+1)-1)", csv, row, v[COL_LO], v[COL_HI]);
        } else if (seen[b]) {
            rc = seterr(err, errlen, "'%s' line %d: the bucket %g-%g appears twice", csv, row, v[COL_LO], v[COL_HI]);
        } else {
            seen[b] = 1;
            bp->loss[b] = v[COL_LOSS];
            bp->tokens[b] = v[COL_TOKENS];
            if (b + 1 > bp->n_buckets) bp->n_buckets = b + 1;
        }
    }
    fclose(f);
    if (rc) {
        clear(bp);
        return -1;
    }
    bp->present = 1;
    return 0;
}
