// gnuplot.c — run gnuplot on a script, writing one PNG atomically (see gnuplot.h).
#include "cli/gnuplot.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/check.h"
#include "base/output_guard.h"

int gnuplot_quote(char *out, size_t n, const char *s) {
    size_t j = 0;
    if (j + 1 >= n) return -1;
    out[j++] = '\'';
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return -1;
        if (j + 3 >= n) return -1;
        if (*s == '\'') out[j++] = '\'';
        out[j++] = *s;
    }
    out[j++] = '\'';
    out[j] = 0;
    return 0;
}

// Feed script to a gnuplot child on its stdin; its exit status (127: it could not be executed).
static int run_gnuplot(const char *script, char *err, size_t errlen, int *status) {
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
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);  // gnuplot absent or dead: the writes fail, not kill us
    size_t len = strlen(script), off = 0;
    while (off < len) {
        ssize_t w = write(fd[1], script + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    close(fd[1]);
    *status = 0;
    while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
    }
    signal(SIGPIPE, old);
    return 0;
}

int gnuplot_png(const char *png, int width, int height, const char *body, const char *what, char *err, size_t errlen) {
    size_t tlen = strlen(png) + 32;
    char *tmp = xmalloc(tlen), *qtmp = xmalloc(2 * tlen + 8);
    snprintf(tmp, tlen, "%s" OUTPUT_TEMP_SUFFIX "%ld", png, (long)getpid());
    if (gnuplot_quote(qtmp, 2 * tlen + 8, tmp)) {
        free(tmp);
        free(qtmp);
        return seterr(err, errlen, "cannot plot %s '%s': the path has a control character", what, png);
    }
    size_t slen = strlen(body) + strlen(qtmp) + 128;
    char *script = xmalloc(slen);
    snprintf(script, slen, "set terminal pngcairo size %d,%d font ',10'\nset output %s\n%s\nset output\n", width, height, qtmp, body);
    free(qtmp);
    int status = 0, rc = run_gnuplot(script, err, errlen, &status);
    free(script);
    if (rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 127)
        rc = seterr(err, errlen, "cannot plot %s '%s': gnuplot is not installed (Debian package gnuplot-nox)", what, png);
    else if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
        rc = seterr(err, errlen, "cannot plot %s '%s': gnuplot failed (its message is above)", what, png);
    else if (rc == 0 && rename(tmp, png) != 0)
        rc = seterr(err, errlen, "cannot write %s '%s': %s", what, png, strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}
