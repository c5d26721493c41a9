// test_omp_env.c — omp_env_apply (cli/omp_env.h): with neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT
// set, the program re-executes itself once with GOMP_SPINCOUNT = ATTNLAB_SPINCOUNT and the same
// arguments; a user's OMP_WAIT_POLICY or GOMP_SPINCOUNT is kept, with no re-execution.
// The test runs itself as the child (`--child`), with an environment it builds, and reads what the
// child saw after omp_env_apply returned; the child writes "start" before it, so a re-executed child
// says it twice.
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/omp_env.h"
#include "tests/testlib.h"

extern char **environ;

// Run this test as `--child ARG` with exactly the environment env; its stdout (one line) into out.
static int run_child(const char *self, char *const env[], char *out, size_t n) {
    int fd[2];
    if (pipe(fd) != 0) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    char *argv[] = {(char *)self, "--child", "second arg", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, self, &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (rc != 0) return -1;
    size_t got = 0;
    ssize_t k;
    while (got < n - 1 && (k = read(fd[0], out + got, n - 1 - got)) > 0) got += (size_t)k;
    out[got] = 0;
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *or_none(const char *s) { return s ? s : "-"; }

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--child") == 0) {
        if (write(1, "start\n", 6) != 6) return 1;  // unbuffered: a re-executed child prints it twice
        omp_env_apply(argv);
        printf("spin=%s policy=%s reexec=%s arg=%s\n", or_none(getenv("GOMP_SPINCOUNT")),
               or_none(getenv("OMP_WAIT_POLICY")), or_none(getenv("ATTNLAB_OMP_ENV")), argv[2]);
        return 0;
    }
    char self[4096];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    self[k > 0 ? k : 0] = 0;
    char out[512], want[512];
    TEST_CASE("nothing set: re-executed once with the spin count, arguments intact") {
        char *env[] = {"PATH=/usr/bin:/bin", NULL};
        EXPECT(run_child(self, env, out, sizeof out) == 0);
        snprintf(want, sizeof want, "start\nstart\nspin=%s policy=- reexec=1 arg=second arg\n", ATTNLAB_SPINCOUNT);
        EXPECT_MSG(strcmp(out, want) == 0, "child printed '%s'", out);
    }
    TEST_CASE("the user's OMP_WAIT_POLICY is kept: no spin count, no re-execution") {
        char *env[] = {"PATH=/usr/bin:/bin", "OMP_WAIT_POLICY=active", NULL};
        EXPECT(run_child(self, env, out, sizeof out) == 0);
        EXPECT_MSG(strcmp(out, "start\nspin=- policy=active reexec=- arg=second arg\n") == 0, "child printed '%s'", out);
    }
    TEST_CASE("the user's GOMP_SPINCOUNT is kept, no re-execution") {
        char *env[] = {"GOMP_SPINCOUNT=123", NULL};
        EXPECT(run_child(self, env, out, sizeof out) == 0);
        EXPECT_MSG(strcmp(out, "start\nspin=123 policy=- reexec=- arg=second arg\n") == 0, "child printed '%s'", out);
    }
    return test_main_end();
}
