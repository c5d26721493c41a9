// compare_run.h — the runs of a comparison and their scheduler: each run is one `train` process
// (posix_spawn, in its own process group, stdout and stderr to OUTDIR/runs/<key>/train.out, CSV log
// log.csv, loss by position by_position.csv, checkpoint model.safetensors), at most `jobs` at once;
// wait4 gives each run's peak RSS.
// A finished run leaves result.json (status, exit code, wall time, peak RSS, its argv); a run with a
// successful result.json is not trained again, an interrupted one resumes from its checkpoint.
#ifndef ATTNLAB_COMPARE_RUN_H
#define ATTNLAB_COMPARE_RUN_H

#include <stddef.h>
#include <sys/types.h>

#include "cli/compare_key.h"
#include "cli/compare_log.h"

typedef enum { CMP_PENDING, CMP_RUNNING, CMP_OK, CMP_FAILED } cmp_state_t;

typedef struct {
    int spec;                  // index of its spec
    const char *spec_text;
    long seed;
    char key[CMP_KEY_MAX];
    char dir[4352];            // OUTDIR/runs/<key>
    char **args;               // train flags after FILE, without --out/--log/--by-position/--resume (owned)
    int n_args;
    char **argv;               // the full command of its last start (owned, deep copy), for result.json
    long total_steps;          // for progress (train --check's "steps S")
    double time_budget;        // > 0: ETA bounded by it
    cmp_state_t state;
    int earlier;               // finished (ok) by an earlier command: not trained now
    pid_t pid;
    double t_start, wall_s;    // the run's wall time over all its attempts (see finish_run)
    double took_s;             // this command's process alone (compare's overhead line)
    int threads;               // the cores the run was given: its --threads, or (0, automatic) compare's CPUs
    double cpu_share;          // its last attempt's CPU time / (wall time x threads); NaN unknown
    long peak_rss_kb;
    int exit_code;             // its exit status, or 128 + the signal that ended it
    // live progress, from its CSV log
    long csv_offset;
    cmp_cols_t cols;
    int have_cols, have_last;
    cmp_point_t last;
} cmp_run_t;

typedef struct {
    const char *train;         // the train binary
    const char *file;          // the training text
    int jobs;
    double progress_every;     // seconds between progress reports
} cmp_sched_t;

// Set up run->dir (created) and read an earlier result.json: ok -> CMP_OK with earlier = 1, its wall
// time and peak RSS; anything else -> CMP_PENDING. Returns 0, or -1 with one line.
int cmp_run_prepare(cmp_run_t *run, const char *outdir, char *err, size_t errlen);
// Train every pending run, at most s->jobs at once, printing a line when a run starts and ends and
// every s->progress_every seconds one line per running run (spec, seed, step/total, loss, ETA).
// SIGINT/SIGTERM: stop starting runs and pass one SIGTERM to each running one (train saves and exits;
// a second signal passes another: train exits at once). Returns 0 when every run finished (some may
// have failed: their state says so), 130 when interrupted.
int cmp_run_all(cmp_run_t *runs, int n, const cmp_sched_t *s);
void cmp_run_free(cmp_run_t *run);

#endif
