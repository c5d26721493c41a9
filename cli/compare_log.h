// compare_log.h — what `compare` reads back from one run: train's CSV log (--log), columns found by
// their header names (more may be appended), and train's stdout for what the log may lack.
//   CSV: step,split,loss,ppl,bpb,lr,grad_norm,tokens_per_s,ms_per_step,elapsed_s,tokens_seen[,spans,pkm_usage...]
//   stdout fallback: "  spans mean/max: L0 12.3/20.0,L1 ..." and "  pkm layer 1: 63.2% of 16384 slots ..."
//   after the "final step" line.
#ifndef ATTNLAB_COMPARE_LOG_H
#define ATTNLAB_COMPARE_LOG_H

#include <stddef.h>
#include <stdio.h>

enum { CMP_MAX_LAYERS = 256 };

typedef struct {
    long step;
    double loss, bpb, elapsed, tokens;
} cmp_point_t;

// One CSV log, column indices by name (-1: absent).
typedef struct {
    int step, split, loss, bpb, tokens_per_s, ms_per_step, elapsed_s, tokens_seen, spans, pkm_usage;
} cmp_cols_t;

typedef struct {
    cmp_point_t *val;       // the periodic evaluations ("val" rows), by step, a step at most once
    int n_val;
    cmp_point_t *train;     // the progress rows ("train"): loss, elapsed; ms/step and tok/s below
    double *ms_per_step, *tokens_per_s;
    int n_train;
    int has_final;          // a "final" row: the evaluation on the whole validation split
    cmp_point_t final;      // it, else (has_final 0) the last val row, else NaNs
    // learned spans (mean per head) and pkm slot usage (fraction) at the final evaluation, by layer;
    // NaN where the layer has none
    double span[CMP_MAX_LAYERS], pkm[CMP_MAX_LAYERS];
    int n_span_layers, n_pkm_layers;  // 1 + the highest layer with one, 0 if none
} cmp_log_t;

// Find the columns in a header line. Returns 0, or -1 with one line if a column compare needs
// (step, split, loss, bpb, elapsed_s, tokens_seen, ms_per_step, tokens_per_s) is missing.
int cmp_log_columns(const char *header, cmp_cols_t *c, char *err, size_t errlen);
// The latest train row of a CSV being written, read from *offset on (updated; *c filled from the
// header the first time, when *offset is 0). Returns 1 and the row if a new one was read, else 0.
int cmp_log_poll(const char *csv, long *offset, cmp_cols_t *c, int *have_cols, cmp_point_t *last_train);
// Read a finished run: the CSV (rows repeated by a resumed run replace the earlier ones from the same
// step on), then spans and pkm usage from the CSV's columns when present, else from stdout_path.
// Returns 0, or -1 with one line.
int cmp_log_read(const char *csv, const char *stdout_path, cmp_log_t *r, char *err, size_t errlen);
void cmp_log_free(cmp_log_t *r);

#endif
