// compare.c — `compare`: train several layer specs on one text with the same budget and flags, each
// over several seeds, a few runs at a time, and write one report directory (docs/compare.md).
// Flow: command line → every spec validated by `train --check` (nothing trains if one is refused)
// → OUTDIR checked against its manifest (another comparison is refused, the same one resumed) →
// the runs, keyed by spec, flags and seed, trained by cli/compare_run (finished ones skipped) →
// report.md, report.csv and the plots from the runs' logs (cli/compare_report).
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/check.h"
#include "cli/compare_key.h"
#include "cli/compare_manifest.h"
#include "cli/compare_opts.h"
#include "cli/compare_report.h"
#include "cli/compare_run.h"
#include "cli/runtime.h"

extern char **environ;

// The train binary beside this one (/proc/self/exe's directory), unless --train named one.
static void find_train(const cmp_opts_t *o, char *out, size_t n) {
    if (o->train[0]) {
        snprintf(out, n, "%s", o->train);
    } else {
        char self[4000];
        ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
        if (k <= 0) die(EXIT_USAGE, "compare: cannot find its own path to locate train; pass --train PATH");
        self[k] = 0;
        char *slash = strrchr(self, '/');
        *slash = 0;
        snprintf(out, n, "%s/train", self);
    }
    if (access(out, X_OK) != 0) die(EXIT_USAGE, "compare: the train binary '%s' is not executable: %s (build it with make, or pass --train PATH)", out, strerror(errno));
}

// Run argv with stdout and stderr into buf (NUL-terminated, at most n-1 bytes kept); returns the exit
// status (128 + signal when killed), -1 if it could not start.
static int run_capture(const char *path, char **argv, char *buf, size_t n) {
    int fd[2];
    if (pipe(fd)) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", 0, 0);
    posix_spawn_file_actions_adddup2(&fa, fd[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, fd[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    posix_spawn_file_actions_addclose(&fa, fd[1]);
    pid_t pid;
    fflush(NULL);
    int rc = posix_spawn(&pid, path, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    size_t len = 0;
    char tmp[4096];
    ssize_t k;
    while ((k = read(fd[0], tmp, sizeof tmp)) != 0) {
        if (k < 0) {
            if (errno == EINTR) continue;
            break;
        }
        size_t take = (size_t)k < n - 1 - len ? (size_t)k : n - 1 - len;
        memcpy(buf + len, tmp, take);
        len += take;
    }
    buf[len] = 0;
    close(fd[0]);
    if (rc) return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

// The train flags of spec s after FILE, without --threads' default, --out, --log, --by-position, --resume.
static char **spec_args(const cmp_opts_t *o, int s, long seed, char *seed_buf, char *budget_buf, int *n_out) {
    int n_merged;
    char **merged = cmp_merge_flags(o->shared, o->n_shared, o->specs[s].flags, o->specs[s].n_flags, &n_merged);
    char **a = xmalloc((size_t)(n_merged + 10) * sizeof *a);
    int n = 0;
    a[n++] = "--layers";
    a[n++] = (char *)o->specs[s].spec;
    for (int i = 0; i < n_merged; i++) a[n++] = merged[i];
    free(merged);
    if (seed >= 0) {
        snprintf(seed_buf, 32, "%ld", seed);
        a[n++] = "--seed";
        a[n++] = seed_buf;
    }
    if (o->time_budget > 0) {
        snprintf(budget_buf, 32, "%.17g", o->time_budget);
        a[n++] = "--time-budget";
        a[n++] = budget_buf;
    }
    a[n] = NULL;
    *n_out = n;
    return a;
}

// train --check for every spec before anything trains: the parameter count and --steps of each, or
// exit 2 naming the spec and train's own message.
static void check_specs(const cmp_opts_t *o, const char *train, long *params, long *steps) {
    for (int s = 0; s < o->n_specs; s++) {
        char seed_buf[32], budget_buf[32];
        int n;
        char **a = spec_args(o, s, o->seed_base, seed_buf, budget_buf, &n);
        char **argv = xmalloc((size_t)(n + 4) * sizeof *argv);
        argv[0] = (char *)train;
        argv[1] = (char *)o->file;
        memcpy(argv + 2, a, (size_t)n * sizeof *argv);
        argv[n + 2] = "--check";
        argv[n + 3] = NULL;
        char out[8192];
        int rc = run_capture(train, argv, out, sizeof out);
        free(argv);
        free(a);
        const char *line = strstr(out, "check: ");
        if (rc == 0 && line && sscanf(strstr(line, "| ") ? strstr(line, "| ") : "", "| %ld parameters | steps %ld", &params[s], &steps[s]) == 2)
            continue;
        // train's message: its last non-empty line, without the "attnlab: train: " prefix
        char *msg = out, *p;
        size_t len = strlen(out);
        while (len && (out[len - 1] == '\n' || out[len - 1] == '\r')) out[--len] = 0;
        if ((p = strrchr(out, '\n')) != NULL) msg = p + 1;
        if (strncmp(msg, "attnlab: ", 9) == 0) msg += 9;
        if (strncmp(msg, "train: ", 7) == 0) msg += 7;
        if (rc == -1) die(EXIT_USAGE, "compare: cannot run '%s'", train);
        char own[1024] = "";
        for (int k = 0, j = 0; k < o->specs[s].n_flags && j < 1000; k++)
            j += snprintf(own + j, sizeof own - (size_t)j, "%s%s", k ? " " : "", o->specs[s].flags[k]);
        die(EXIT_USAGE, "compare: spec '%s'%s%s%s is refused by train (nothing was trained): %s", o->specs[s].spec,
            own[0] ? " (own flags '" : "", own, own[0] ? "')" : "", msg[0] ? msg : "no message");
    }
}

// One compare at a time per OUTDIR: an exclusive flock on OUTDIR/compare.lock, held until exit (not
// inherited by the runs: close-on-exec). A second compare on the same OUTDIR is refused, exit 2.
static void lock_outdir(const char *outdir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/compare.lock", outdir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) die(EXIT_RUNTIME, "compare: cannot open '%s': %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        die(EXIT_USAGE, "compare: OUTDIR '%s' is in use by another compare (it holds '%s'); wait for it or stop it", outdir, path);
}

static int cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static int report_and_summarize(const cmp_opts_t *op, const cmp_file_id_t *idp, const long *params, const long *steps,
                                cmp_run_t *runs, int n_runs, int to_train, double t0);

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    double t0 = cli_now();
    cmp_opts_t o;
    char err[2048];
    if (cmp_opts_parse(argc, argv, &o, err, sizeof err)) die(EXIT_USAGE, "compare: %s", err);
    if (o.help) {
        printf("%s\n", CMP_USAGE);
        return 0;
    }
    if (o.equal_params)
        die(EXIT_USAGE, "compare: --equal-params is not implemented (compare does not choose dims for you); give each spec its "
            "own --dim with --spec-flags and read the parameters column");
    char train[4096];
    find_train(&o, train, sizeof train);
    cmp_file_id_t id;
    if (cmp_file_id(o.file, &id, err, sizeof err)) die(EXIT_USAGE, "compare: %s", err);

    long *params = xcalloc((size_t)o.n_specs, sizeof *params), *steps = xcalloc((size_t)o.n_specs, sizeof *steps);
    check_specs(&o, train, params, steps);
    int resuming;
    if (cmp_manifest_check(&o, &id, &resuming, err, sizeof err)) die(EXIT_USAGE, "compare: %s", err);
    lock_outdir(o.outdir);
    if (cmp_manifest_write(&o, &id, params, err, sizeof err)) die(EXIT_RUNTIME, "compare: %s", err);

    // The runs: spec-major, seed-minor. Threads: max(1, cores / jobs) unless the flags set --threads.
    int n_runs = o.n_specs * (int)o.seeds, threads = cpu_count() / (int)o.jobs;
    if (threads < 1) threads = 1;
    char threads_buf[32];
    snprintf(threads_buf, sizeof threads_buf, "%d", threads);
    cmp_run_t *runs = xcalloc((size_t)n_runs, sizeof *runs);
    char (*seed_bufs)[32] = xcalloc((size_t)n_runs, 32), budget_buf[32];
    int to_train = 0, earlier = 0;
    for (int s = 0, i = 0; s < o.n_specs; s++) {
        for (long k = 0; k < o.seeds; k++, i++) {
            cmp_run_t *r = &runs[i];
            r->spec = s;
            r->spec_text = o.specs[s].spec;
            r->seed = o.seed_base + k;
            r->total_steps = steps[s];
            r->time_budget = o.time_budget;
            int n;
            char **a = spec_args(&o, s, r->seed, seed_bufs[i], budget_buf, &n);
            if (!cmp_flag_value(a, n, "threads")) {
                a = realloc(a, (size_t)(n + 3) * sizeof *a);
                CHECK(a);
                a[n++] = "--threads";
                a[n++] = threads_buf;
                a[n] = NULL;
            }
            r->args = a;
            const char *tv = cmp_flag_value(a, n, "threads");
            r->threads = tv && atoi(tv) > 0 ? atoi(tv) : cpu_count();
            r->n_args = n;
            // the key: spec, its own flags, the shared flags (with the time budget), the seed
            char **shared = xmalloc((size_t)(o.n_shared + 3) * sizeof *shared);
            memcpy(shared, o.shared, (size_t)o.n_shared * sizeof *shared);
            int ns = o.n_shared;
            if (o.time_budget > 0) {
                shared[ns++] = "--time-budget";
                shared[ns++] = budget_buf;
            }
            cmp_run_key(o.specs[s].spec, o.specs[s].flags, o.specs[s].n_flags, shared, ns, r->seed, r->key);
            free(shared);
            if (cmp_run_prepare(r, o.outdir, err, sizeof err)) die(EXIT_RUNTIME, "compare: %s", err);
            if (r->state == CMP_OK) earlier++;
            else to_train++;
        }
    }
    printf("compare: %d runs (%d spec%s x %ld seed%s)%s: %d finished earlier, %d to train, %ld at a time\n", n_runs, o.n_specs,
           o.n_specs == 1 ? "" : "s", o.seeds, o.seeds == 1 ? "" : "s", resuming ? ", resuming" : "", earlier, to_train, o.jobs);
    cmp_sched_t sched = {.train = train, .file = o.file, .jobs = (int)o.jobs, .progress_every = o.progress_every};
    int status = cmp_run_all(runs, n_runs, &sched);
    if (status == 130) {
        fprintf(stderr, "compare: interrupted; rerun the same command to resume (finished runs are kept)\n");
    } else {
        status = report_and_summarize(&o, &id, params, steps, runs, n_runs, to_train, t0);
    }
    for (int i = 0; i < n_runs; i++) cmp_run_free(&runs[i]);
    free(runs);
    free(seed_bufs);
    free(params);
    free(steps);
    cmp_opts_free(&o);
    return status;
}

// The report, then the overhead line and the failed runs. Returns the exit status: 1 if a run failed
// or the report could not be written, else 0.
static int report_and_summarize(const cmp_opts_t *op, const cmp_file_id_t *idp, const long *params, const long *steps,
                                cmp_run_t *runs, int n_runs, int to_train, double t0) {
    const cmp_opts_t o = *op;
    const cmp_file_id_t id = *idp;
    char err[2048];
    cmp_report_in_t rin = {.o = &o, .id = &id, .params = params, .steps = steps, .runs = runs, .n_runs = n_runs};
    int report_rc = cmp_report_write(&rin, err, sizeof err);
    if (report_rc) fprintf(stderr, "compare: %s\n", err);
    else printf("compare: report %s/report.md (and report.csv, runs.csv, *.png)\n", o.outdir);

    // What compare cost on top of its runs: its own CPU time, and (one job at a time) its wall time
    // beyond the sum of the runs' wall times.
    double run_sum = 0;
    int failed = 0;
    for (int i = 0; i < n_runs; i++) {
        if (!runs[i].earlier && (runs[i].state == CMP_OK || runs[i].state == CMP_FAILED)) run_sum += runs[i].took_s;
        failed += runs[i].state == CMP_FAILED;
    }
    struct rusage self;
    getrusage(RUSAGE_SELF, &self);
    double cpu = self.ru_utime.tv_sec + self.ru_utime.tv_usec * 1e-6 + self.ru_stime.tv_sec + self.ru_stime.tv_usec * 1e-6;
    double wall = cli_now() - t0;
    if (to_train > 0 && o.jobs == 1)
        printf("compare: overhead: %.1f s wall for %.1f s of runs (%+.2f%%: checks, scheduling and report); compare's own CPU "
               "%.3f s (%.3f%% of the runs' time)\n", wall, run_sum, run_sum > 0 ? 100.0 * (wall - run_sum) / run_sum : 0.0, cpu,
               run_sum > 0 ? 100.0 * cpu / run_sum : 0.0);
    else if (to_train > 0)
        printf("compare: %.1f s wall for %.1f s of runs, %ld at a time; compare's own CPU %.3f s (%.3f%% of the runs' time)\n", wall,
               run_sum, o.jobs, cpu, run_sum > 0 ? 100.0 * cpu / run_sum : 0.0);
    if (failed) {
        char names[4096] = "";
        size_t j = 0;
        for (int i = 0; i < n_runs && j + 1 < sizeof names; i++)
            if (runs[i].state == CMP_FAILED)
                j += (size_t)snprintf(names + j, sizeof names - j, "%s'%s' seed %ld", j ? ", " : "", runs[i].spec_text, runs[i].seed);
        fprintf(stderr, "compare: %d run%s failed: %s (marked in the report)\n", failed, failed == 1 ? "" : "s", names);
    }
    return failed || report_rc ? EXIT_RUNTIME : 0;
}
