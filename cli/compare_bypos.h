// compare_bypos.h — what `compare` reads back from one run's by_position.csv (train --by-position,
// docs/logs.md): the final evaluation's mean loss per bucket of visible context, the buckets of
// data/eval_plan.h (bucket b holds contexts 2^b … 2^(b+1) − 1). Columns found by their header names
// (context_lo, context_hi, tokens, loss; more may be present).
#ifndef ATTNLAB_COMPARE_BYPOS_H
#define ATTNLAB_COMPARE_BYPOS_H

#include <stddef.h>

#include "data/eval_plan.h"

typedef struct {
    int present;                      // 1: the CSV was read; 0: the run has none (the figures are NaN)
    int n_buckets;                    // 1 + the highest bucket with a row (0: none)
    double loss[EVAL_MAX_BUCKETS];    // mean nats per target of the bucket; NaN where the CSV has no row
    double tokens[EVAL_MAX_BUCKETS];  // its scored targets; 0 where no row
} cmp_bypos_t;

// Read csv into *bp. Returns 0 (bp->present 1); 1 when the file does not exist (bp->present 0, NaNs: a
// run from before train --by-position, or one without a final evaluation); -1 with one line naming the
// file and the problem (a missing column, a row whose context_lo … context_hi is not a bucket, a
// bucket twice, a number that does not parse) — bp->present 0 then too.
int cmp_bypos_read(const char *csv, cmp_bypos_t *bp, char *err, size_t errlen);

#endif
