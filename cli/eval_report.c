// eval_report.c — the --by-position table, CSV and gnuplot PNG (see eval_report.h).
#include "cli/eval_report.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/check.h"

void eval_report_table(FILE *f, const eval_buckets_t *bk) {
    fprintf(f, "%-15s %10s %8s %8s\n", "context", "tokens", "loss", "bpb");
    for (int b = 0; b < bk->n_buckets; b++) {
        if (!bk->tokens[b]) continue;
        char range[48];
        long lo = eval_bucket_lo(b), hi = eval_bucket_hi(b);
        if (lo == hi) snprintf(range, sizeof range, "%ld", lo);
        else snprintf(range, sizeof range, "%ld-%ld", lo, hi);
        fprintf(f, "%-15s %10zu %8.4f %8.4f\n", range, bk->tokens[b], eval_bucket_loss(bk, b), eval_bucket_bpb(bk, b));
    }
}

int eval_report_csv(const char *path, const eval_buckets_t *bk, char *err, size_t errlen) {
    FILE *f = fopen(path, "w");
    if (!f) return seterr(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    fprintf(f, "context_lo,context_hi,tokens,bytes,loss,bpb\n");
    for (int b = 0; b < bk->n_buckets; b++) {
        if (!bk->tokens[b]) continue;
        fprintf(f, "%ld,%ld,%zu,%zu,%.17g,%.17g\n", eval_bucket_lo(b), eval_bucket_hi(b), bk->tokens[b], bk->bytes[b],
                eval_bucket_loss(bk, b), eval_bucket_bpb(bk, b));
    }
    if (fclose(f) != 0) return seterr(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

// s as a gnuplot single-quoted string into out ('' stands for '); -1 if it has a control character.
static int gnuplot_quote(char *out, size_t n, const char *s) {
    size_t j = 0;
    if (j + 1 >= n) return -1;
    out[j++] = '\'';
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20) return -1;
        if (j + 3 >= n) return -1;
        if (*s == '\'') out[j++] = '\'';
        out[j++] = *s;
    }
    out[j++] = '\'';
    out[j] = 0;
    return 0;
}

int eval_report_png(const char *png, const char *csv, const char *title, char *err, size_t errlen) {
    char qpng[4200], qcsv[4200], qtitle[1100];
    if (gnuplot_quote(qpng, sizeof qpng, png) || gnuplot_quote(qcsv, sizeof qcsv, csv))
        return seterr(err, errlen, "cannot plot: the path '%s' or '%s' is too long or has a control character", png, csv);
    if (gnuplot_quote(qtitle, sizeof qtitle, title)) snprintf(qtitle, sizeof qtitle, "'loss by visible context'");
    // gnuplot reads its script from a pipe; an exec failure is reported as exit status 127.
    int fd[2];
    if (pipe(fd)) return seterr(err, errlen, "cannot plot: pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return seterr(err, errlen, "cannot plot: fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fd[0], STDIN_FILENO);
        close(fd[0]);
        close(fd[1]);
        execlp("gnuplot", "gnuplot", (char *)NULL);
        _exit(127);
    }
    close(fd[0]);
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);  // gnuplot absent: the writes below fail, not kill us
    FILE *g = fdopen(fd[1], "w");
    if (g) {
        fprintf(g,
                "set terminal png size 800,500\n"
                "set output %s\n"
                "set datafile separator ','\n"
                "set logscale x 2\n"
                "set grid\n"
                "set key off\n"
                "set title %s noenhanced\n"
                "set xlabel 'visible context (tokens; bucket start, log scale)'\n"
                "set ylabel 'loss (nats per token)'\n"
                "plot %s using 1:5 skip 1 with linespoints pointtype 7\n",
                qpng, qtitle, qcsv);
        fclose(g);
    } else {
        close(fd[1]);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    signal(SIGPIPE, old);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return seterr(err, errlen, "cannot plot '%s': gnuplot is not installed (Debian package gnuplot-nox); the CSV is '%s'",
                      png, csv);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return seterr(err, errlen, "cannot plot '%s': gnuplot failed (its message is above); the CSV is '%s'", png, csv);
    return 0;
}
