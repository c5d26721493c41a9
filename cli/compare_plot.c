// compare_plot.c — running gnuplot for compare's report (compare_plot.h). The script and data files
// are written by compare_report.c.
#include "cli/compare_plot.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/check.h"

extern char **environ;

void cmp_gnuplot_string(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20) continue;
        if (*s == '\'') fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

int cmp_gnuplot_run(const char *outdir, char *err, size_t errlen) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addchdir_np(&fa, outdir);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "plots/gnuplot.err", O_WRONLY | O_CREAT | O_TRUNC, 0666);
    char *argv[] = {"gnuplot", "plots/plots.gp", NULL};
    pid_t pid;
    fflush(NULL);
    int rc = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc == ENOENT) return seterr(err, errlen, "cannot plot: gnuplot is not installed (Debian package gnuplot-nox); report.md and report.csv are written");
    if (rc) return seterr(err, errlen, "cannot plot: cannot start gnuplot: %s", strerror(rc));
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return seterr(err, errlen, "cannot plot: gnuplot failed; its messages are in '%s/plots/gnuplot.err'", outdir);
    return 0;
}
