// compare_run.c — spawning, waiting for and reporting the runs of a comparison (compare_run.h).
#include "cli/compare_run.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/check.h"
#include "cli/runtime.h"

extern char **environ;

static void write_result(const cmp_run_t *r, char *const *argv);
static void adopt_if_complete(cmp_run_t *run);

static void run_path(const cmp_run_t *r, const char *name, char *out, size_t n) {
    snprintf(out, n, "%s/%s", r->dir, name);
}

// The run's training time by its log: train's elapsed_s at the final evaluation, carried across
// resumes by cmp_log_read (start-up and steps redone after a resume are not in it); 0 without one.
static double log_time(const cmp_run_t *run) {
    char csv[4608], err[256];
    run_path(run, "log.csv", csv, sizeof csv);
    cmp_log_t lg;
    if (cmp_log_read(csv, NULL, &lg, err, sizeof err) != 0) return 0;
    double t = lg.has_final && isfinite(lg.final.elapsed) ? lg.final.elapsed : 0;
    cmp_log_free(&lg);
    return t;
}

static int mkdir_p1(const char *path) {
    return mkdir(path, 0777) == 0 || errno == EEXIST ? 0 : -1;
}

int cmp_run_prepare(cmp_run_t *run, const char *outdir, char *err, size_t errlen) {
    char runs[4096];
    snprintf(runs, sizeof runs, "%s/runs", outdir);
    if (mkdir_p1(runs)) return seterr(err, errlen, "cannot create '%s': %s", runs, strerror(errno));
    snprintf(run->dir, sizeof run->dir, "%s/%s", runs, run->key);
    if (mkdir_p1(run->dir)) return seterr(err, errlen, "cannot create '%s': %s", run->dir, strerror(errno));
    run->state = CMP_PENDING;
    run->earlier = 0;
    run->cpu_share = NAN;
    char path[4608];
    run_path(run, "result.json", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) {
        adopt_if_complete(run);
        return 0;
    }
    char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    cJSON *j = cJSON_Parse(text);
    const char *status = cJSON_GetStringValue(cJSON_GetObjectItem(j, "status"));
    if (status && strcmp(status, "ok") == 0) {
        const cJSON *w = cJSON_GetObjectItem(j, "wall_s"), *rss = cJSON_GetObjectItem(j, "peak_rss_kb");
        const cJSON *share = cJSON_GetObjectItem(j, "cpu_share");  // absent before compare recorded it
        run->cpu_share = cJSON_IsNumber(share) ? share->valuedouble : NAN;
        run->state = CMP_OK;
        run->earlier = 1;
        run->wall_s = cJSON_IsNumber(w) ? fmax(w->valuedouble, log_time(run)) : NAN;  // see finish_run
        run->peak_rss_kb = cJSON_IsNumber(rss) ? (long)rss->valuedouble : -1;
        run->exit_code = 0;
    }
    cJSON_Delete(j);
    return 0;
}

// A run whose training completed (its log has train's final evaluation) but whose result.json is
// missing (compare was killed in between): adopted as finished, its wall time the log's last
// elapsed_s, its peak RSS unknown (-1), rather than resumed past its last step (train refuses that).
static void adopt_if_complete(cmp_run_t *run) {
    char csv[4608], err[256];
    run_path(run, "log.csv", csv, sizeof csv);
    cmp_log_t lg;
    if (cmp_log_read(csv, NULL, &lg, err, sizeof err) != 0) return;
    if (lg.has_final) {
        run->state = CMP_OK;
        run->earlier = 1;
        run->exit_code = 0;
        run->wall_s = lg.final.elapsed;
        run->peak_rss_kb = -1;
        char *argv[] = {"(adopted: the log holds the final evaluation; result.json was missing)", NULL};
        write_result(run, argv);
        printf("compare: %s seed %ld finished before (its log holds the final evaluation); adopted without its peak RSS\n",
               run->spec_text, run->seed);
    }
    cmp_log_free(&lg);
}

// result.json, written atomically (a crash leaves the old one or none).
static void write_result(const cmp_run_t *r, char *const *argv) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", r->state == CMP_OK ? "ok" : "failed");
    cJSON_AddStringToObject(j, "spec", r->spec_text);
    cJSON_AddNumberToObject(j, "seed", (double)r->seed);
    cJSON_AddNumberToObject(j, "exit", r->exit_code);
    cJSON_AddNumberToObject(j, "wall_s", r->wall_s);
    cJSON_AddNumberToObject(j, "peak_rss_kb", (double)r->peak_rss_kb);
    if (isfinite(r->cpu_share)) cJSON_AddNumberToObject(j, "cpu_share", r->cpu_share);
    cJSON *a = cJSON_AddArrayToObject(j, "argv");
    for (int i = 0; argv[i]; i++) cJSON_AddItemToArray(a, cJSON_CreateString(argv[i]));
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    char path[4608], tmp[4700];
    run_path(r, "result.json", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(text, f) >= 0;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) fprintf(stderr, "compare: cannot write '%s': %s\n", path, strerror(errno ? errno : EIO));
    free(text);
}

// The full argv of a run: train FILE <args> --out DIR/model.safetensors --log DIR/log.csv
// --by-position DIR/by_position.csv [--resume DIR/model.safetensors when an interrupted attempt left a
// checkpoint]. Strings it makes are in keep[] (freed by the caller).
static char **build_argv(const cmp_run_t *r, const cmp_sched_t *s, char *keep[4]) {
    char **argv = xmalloc((size_t)(r->n_args + 10) * sizeof *argv);
    int n = 0;
    argv[n++] = (char *)s->train;
    argv[n++] = (char *)s->file;
    for (int i = 0; i < r->n_args; i++) argv[n++] = r->args[i];
    char path[4608];
    run_path(r, "model.safetensors", path, sizeof path);
    keep[0] = xstrdup(path);
    run_path(r, "log.csv", path, sizeof path);
    keep[1] = xstrdup(path);
    run_path(r, "by_position.csv", path, sizeof path);
    keep[2] = xstrdup(path);
    keep[3] = NULL;
    argv[n++] = "--out";
    argv[n++] = keep[0];
    argv[n++] = "--log";
    argv[n++] = keep[1];
    argv[n++] = "--by-position";
    argv[n++] = keep[2];
    struct stat st;
    int has_init_from = 0;
    for (int i = 0; i < r->n_args; i++)
        if (strncmp(r->args[i], "--init-from", 11) == 0) has_init_from = 1;
    if (!has_init_from && stat(keep[0], &st) == 0 && S_ISREG(st.st_mode)) {
        argv[n++] = "--resume";
        argv[n++] = keep[0];
    } else {
        remove(keep[1]);  // a fresh start: no rows or time of an attempt that never saved
        remove(keep[2]);
        char attempts[4608];
        run_path(r, "attempts.txt", attempts, sizeof attempts);
        remove(attempts);
    }
    argv[n] = NULL;
    return argv;
}

static void free_argv(char **argv) {
    for (int i = 0; argv && argv[i]; i++) free(argv[i]);
    free(argv);
}

static int start_run(cmp_run_t *r, const cmp_sched_t *s, int *resumed) {
    char *keep[4];
    char **argv = build_argv(r, s, keep);
    *resumed = 0;
    for (int i = 0; argv[i]; i++)
        if (strcmp(argv[i], "--resume") == 0) *resumed = 1;
    char out[4608];
    run_path(r, "train.out", out, sizeof out);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out, O_WRONLY | O_CREAT | (*resumed ? O_APPEND : O_TRUNC), 0666);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    posix_spawnattr_init(&at);
    sigset_t none, deflt;
    sigemptyset(&none);
    sigemptyset(&deflt);
    sigaddset(&deflt, SIGINT);
    sigaddset(&deflt, SIGTERM);
    sigaddset(&deflt, SIGHUP);
    sigaddset(&deflt, SIGCHLD);
    sigaddset(&deflt, SIGPIPE);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &deflt);
    posix_spawnattr_setpgroup(&at, 0);  // Ctrl-C reaches compare only; it passes one SIGTERM on
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    fflush(NULL);
    int rc = posix_spawn(&r->pid, s->train, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    r->csv_offset = 0;
    r->have_cols = r->have_last = 0;
    r->t_start = cli_now();
    if (rc) {
        fprintf(stderr, "compare: cannot start '%s': %s\n", s->train, strerror(rc));
        r->state = CMP_FAILED;
        r->exit_code = 127;
        r->wall_s = r->took_s = 0;
        r->peak_rss_kb = -1;
        write_result(r, argv);
    } else {
        r->state = CMP_RUNNING;
    }
    free_argv(r->argv);
    int n = 0;
    while (argv[n]) n++;
    r->argv = xcalloc((size_t)n + 1, sizeof *r->argv);
    for (int i = 0; i < n; i++) r->argv[i] = xstrdup(argv[i]);
    free(argv);
    free(keep[0]);
    free(keep[1]);
    free(keep[2]);
    return rc ? -1 : 0;
}

static void fmt_hms(double s, char *buf, size_t n) {
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
}

// The last line of train.out that is not blank (train's message on failure), at most n-1 bytes.
static void last_line(const cmp_run_t *r, char *buf, size_t n) {
    char path[4608], line[1024];
    run_path(r, "train.out", path, sizeof path);
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (line[0]) snprintf(buf, n, "%s", line);
    }
    fclose(f);
}

static void print_progress(cmp_run_t *runs, int n, double now) {
    int done = 0, running = 0;
    for (int i = 0; i < n; i++) {
        done += runs[i].state == CMP_OK || runs[i].state == CMP_FAILED;
        running += runs[i].state == CMP_RUNNING;
    }
    printf("compare: %d of %d runs finished, %d running\n", done, n, running);
    for (int i = 0; i < n; i++) {
        cmp_run_t *r = &runs[i];
        if (r->state != CMP_RUNNING) continue;
        char path[4608];
        run_path(r, "log.csv", path, sizeof path);
        cmp_point_t p;
        if (cmp_log_poll(path, &r->csv_offset, &r->cols, &r->have_cols, &p)) {
            r->last = p;
            r->have_last = 1;
        }
        char took[32], eta[32] = "?";
        fmt_hms(now - r->t_start, took, sizeof took);
        if (!r->have_last) {
            printf("  %s seed %ld: starting (%s)\n", r->spec_text, r->seed, took);
            continue;
        }
        double left = NAN;
        if (r->last.step > 0 && r->total_steps > 0) left = r->last.elapsed / r->last.step * (double)(r->total_steps - r->last.step);
        if (r->time_budget > 0 && (!isfinite(left) || r->time_budget - r->last.elapsed < left)) left = r->time_budget - r->last.elapsed;
        if (isfinite(left)) fmt_hms(left, eta, sizeof eta);
        printf("  %s seed %ld: step %ld/%ld | loss %.4f | %s | ETA %s\n", r->spec_text, r->seed, r->last.step, r->total_steps,
               r->last.loss, took, eta);
    }
    fflush(stdout);
}

// A run's process ended with wait status st: record, write result.json, say so.
static void finish_run(cmp_run_t *r, int st, const struct rusage *ru, int interrupted) {
    double took = cli_now() - r->t_start;
    r->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    long rss = ru->ru_maxrss;  // kilobytes on Linux
    char path[4608];
    run_path(r, "attempts.txt", path, sizeof path);
    double before_s = 0, w;
    long before_rss = 0, k;
    FILE *a = fopen(path, "r");  // earlier attempts of this run, stopped by an interruption: "wall_s peak_rss_kb"
    while (a && fscanf(a, "%lf %ld", &w, &k) == 2) {
        before_s += w;
        if (k > before_rss) before_rss = k;
    }
    if (a) fclose(a);
    if (interrupted && (r->exit_code == 130 || r->exit_code == 128 + SIGTERM)) {
        r->state = CMP_PENDING;  // saved (or not): the next command resumes it; no result.json
        a = fopen(path, "a");
        if (a) {
            fprintf(a, "%.3f %ld\n", took, rss);
            fclose(a);
        }
        printf("compare: stopped %s seed %ld after %.1f s (resumes from its checkpoint)\n", r->spec_text, r->seed, took);
        return;
    }
    // The run's time over every attempt: the attempts compare saw end (attempts.txt) plus this one; but
    // an attempt ended by killing compare outright left no record, so the log's training time (its
    // elapsed_s, carried across resumes by cmp_log_read) is a floor — it omits only start-up and
    // steps redone after the resume.
    r->took_s = took;
    r->wall_s = fmax(took + before_s, log_time(r));
    // How much of its cores the run had: ~1 alone, lower when it waited for a core (its ms/step then
    // carries that load). Of the last attempt only: earlier ones left no CPU time.
    double cpu = ru->ru_utime.tv_sec + ru->ru_utime.tv_usec * 1e-6 + ru->ru_stime.tv_sec + ru->ru_stime.tv_usec * 1e-6;
    r->cpu_share = took > 0 && r->threads > 0 ? cpu / (took * r->threads) : NAN;
    r->peak_rss_kb = rss > before_rss ? rss : before_rss;  // the largest peak of any attempt
    r->state = r->exit_code == 0 ? CMP_OK : CMP_FAILED;
    write_result(r, r->argv);
    if (r->state == CMP_OK) {
        printf("compare: finished %s seed %ld in %.1f s (peak RSS %.1f MB)\n", r->spec_text, r->seed, took, rss / 1024.0);
    } else {
        char msg[1024];
        last_line(r, msg, sizeof msg);
        fprintf(stderr, "compare: FAILED %s seed %ld (exit %d) after %.1f s: %s (see %s/train.out)\n", r->spec_text, r->seed,
                r->exit_code, took, msg[0] ? msg : "no output", r->dir);
    }
    fflush(stdout);
}

int cmp_run_all(cmp_run_t *runs, int n, const cmp_sched_t *s) {
    // Signals are taken synchronously (sigtimedwait): SIGCHLD wakes the loop the moment a run ends,
    // the timeout is the next progress report; nothing polls faster than that.
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, &old);
    int interrupted = 0, running = 0;
    double next_report = cli_now() + s->progress_every;
    for (;;) {
        for (int i = 0; i < n && !interrupted && running < s->jobs; i++) {
            if (runs[i].state != CMP_PENDING) continue;
            int resumed;
            if (start_run(&runs[i], s, &resumed) == 0) {
                running++;
                printf("compare: started %s seed %ld%s -> %s\n", runs[i].spec_text, runs[i].seed,
                       resumed ? " (resuming its checkpoint)" : "", runs[i].dir);
                fflush(stdout);
            }
        }
        if (running == 0) break;
        double wait = next_report - cli_now();
        if (wait < 0) wait = 0;
        struct timespec ts = {(time_t)wait, (long)((wait - floor(wait)) * 1e9)};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            interrupted++;
            fprintf(stderr, "compare: %s; %s\n", interrupted == 1 ? "interrupted" : "second signal",
                    interrupted == 1 ? "stopping the running runs (each saves its checkpoint); rerun the same command to resume"
                                     : "the running runs stop now without saving");
            for (int i = 0; i < n; i++)
                if (runs[i].state == CMP_RUNNING) kill(runs[i].pid, SIGTERM);
        }
        for (int i = 0; i < n; i++) {  // SIGCHLD may stand for several children: ask each
            if (runs[i].state != CMP_RUNNING) continue;
            int st;
            struct rusage ru;
            pid_t p = wait4(runs[i].pid, &st, WNOHANG, &ru);
            if (p == runs[i].pid) {
                finish_run(&runs[i], st, &ru, interrupted);
                running--;
            }
        }
        if (cli_now() >= next_report) {
            print_progress(runs, n, cli_now());
            next_report = cli_now() + s->progress_every;
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return interrupted ? 130 : 0;
}

void cmp_run_free(cmp_run_t *run) {
    free(run->args);
    run->args = NULL;
    free_argv(run->argv);
    run->argv = NULL;
}
