// test_output_guard.c — every refusal of output_check (device, FIFO, socket, directory, trailing
// '/', missing or unwritable directory, same file as an input through hard and symbolic links, two
// outputs naming one file), the outputs it must accept, the output lock (a second holder fails
// naming the first one's pid, from another process and another spelling; the lock file goes at
// unlock), the stale-temporary sweep (only a dead writer's temporaries go) and mode keeping.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/output_guard.h"
#include "tests/testlib.h"

static char dir[64];

// dir/name, in a buffer of its own that lives to the end of the test (a few hundred calls).
static const char *at(const char *name) {
    enum { N = 512 };
    static char bufs[N][128];
    static int k;
    if (k == N) {
        printf("  at(): out of buffers\n");
        exit(1);
    }
    char *p = bufs[k++];
    if (snprintf(p, 128, "%s/%.60s", dir, name) >= 128) exit(1);
    return p;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        printf("  cannot write %s\n", path);
        exit(1);
    }
}

// output_check of one output (and the given inputs); returns its result, message in err.
static int check1(const char *what, const char *path, int how, const io_path_t *ins, int n_ins, char *err,
                  size_t errlen) {
    io_path_t out = {what, path, how};
    err[0] = 0;
    return output_check(&out, 1, ins, n_ins, err, errlen);
}

// Expect a refusal of output `path` whose message contains `want`.
#define EXPECT_REFUSED(path, how, ins, n_ins, want)                                                  \
    do {                                                                                             \
        char e_[512];                                                                                \
        int rc_ = check1("--out", path, how, ins, n_ins, e_, sizeof e_);                             \
        EXPECT_MSG(rc_ == -1 && strstr(e_, want) && strncmp(e_, "cannot write --out '", 20) == 0,    \
                   "'%s': rc %d, message \"%s\", want \"%s\"", path, rc_, e_, want);                 \
    } while (0)
#define EXPECT_ACCEPTED(path, how, ins, n_ins)                                                       \
    do {                                                                                             \
        char e_[512];                                                                                \
        int rc_ = check1("--out", path, how, ins, n_ins, e_, sizeof e_);                             \
        EXPECT_MSG(rc_ == 0, "'%s' refused: \"%s\"", path, e_);                                     \
    } while (0)

// Run as a user who cannot write in directory ro (mode 0500, owned by that user) holding old.
static void ro_dir_checks(const char *ro, const char *old) {
    char sub[160];
    snprintf(sub, sizeof sub, "%s/x.st", ro);
    EXPECT_REFUSED(sub, OUT_REPLACED, NULL, 0, "does not take new files: Permission denied");
    // Replacing needs the directory even for an existing file; writing in place does not.
    EXPECT_REFUSED(old, OUT_REPLACED, NULL, 0, "does not take new files");
    EXPECT_ACCEPTED(old, OUT_IN_PLACE, NULL, 0);
    chmod(old, 0400);
    EXPECT_REFUSED(old, OUT_IN_PLACE, NULL, 0, "cannot write --out");
    EXPECT_REFUSED(old, OUT_IN_PLACE, NULL, 0, "Permission denied");
    chmod(old, 0600);
}

static void test_check_kinds(void) {
    TEST_CASE("output_check refuses what is not a regular file, accepts new and regular files") {
        EXPECT_REFUSED("/dev/null", OUT_REPLACED, NULL, 0, "it is a character device, not a regular file; refusing");
        EXPECT_REFUSED("/dev/null", OUT_IN_PLACE, NULL, 0, "character device");
        const char *fifo = at("fifo");
        EXPECT(mkfifo(fifo, 0600) == 0);
        EXPECT_REFUSED(fifo, OUT_REPLACED, NULL, 0, "it is a FIFO, not a regular file");
        const char *sock = at("sock");
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
        EXPECT(s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof sa) == 0);
        EXPECT_REFUSED(sock, OUT_REPLACED, NULL, 0, "it is a socket");
        close(s);
        EXPECT_REFUSED(dir, OUT_REPLACED, NULL, 0, "it is a directory; give a file path");
        EXPECT_REFUSED(at("new.st/"), OUT_REPLACED, NULL, 0, "a path ending in '/' names a directory");
        // A symlink to a device is the device.
        const char *devlink = at("devlink");
        EXPECT(symlink("/dev/null", devlink) == 0);
        EXPECT_REFUSED(devlink, OUT_REPLACED, NULL, 0, "character device");
        // Accepted: a new file in the directory, an existing regular file, a relative name.
        EXPECT_ACCEPTED(at("new.st"), OUT_REPLACED, NULL, 0);
        EXPECT_ACCEPTED(at("new.st"), OUT_IN_PLACE, NULL, 0);
        write_file(at("old.st"), "x");
        EXPECT_ACCEPTED(at("old.st"), OUT_REPLACED, NULL, 0);
        EXPECT_ACCEPTED(at("old.st"), OUT_IN_PLACE, NULL, 0);
        EXPECT_ACCEPTED("attnlab_test_output_guard_relative.st", OUT_REPLACED, NULL, 0);
        unlink(fifo);
        unlink(sock);
        unlink(devlink);
    }
    TEST_CASE("output_check refuses a missing, non-directory or unwritable directory") {
        char want[512];
        snprintf(want, sizeof want, "directory '%s' does not exist", at("nodir"));
        EXPECT_REFUSED(at("nodir/x.st"), OUT_REPLACED, NULL, 0, want);
        EXPECT_REFUSED(at("nodir/x.st"), OUT_IN_PLACE, NULL, 0, want);
        write_file(at("plain.txt"), "x");
        snprintf(want, sizeof want, "'%s' is not a directory", at("plain.txt"));
        EXPECT_REFUSED(at("plain.txt/x.st"), OUT_REPLACED, NULL, 0, want);
        // As root, access() grants everything: drop to nobody in a child to see the refusals.
        const char *ro = at("ro"), *old = at("ro/old.st");
        EXPECT(mkdir(ro, 0700) == 0);
        write_file(old, "x");
        chmod(ro, 0500);
        if (geteuid() != 0) {
            ro_dir_checks(ro, old);
        } else {
            EXPECT(chown(ro, 65534, 65534) == 0 && chown(old, 65534, 65534) == 0 && chmod(dir, 0711) == 0);
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                if (setgid(65534) != 0 || setuid(65534) != 0 || access(ro, W_OK) == 0) _exit(2);
                ro_dir_checks(ro, old);
                fflush(stdout);
                _exit(tl_case_failed);
            }
            int status;
            waitpid(pid, &status, 0);
            EXPECT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the checks as user nobody failed (status %d)", status);
            chmod(dir, 0700);
        }
        chmod(ro, 0700);
        unlink(old);
        rmdir(ro);
        unlink(at("plain.txt"));
    }
}

static void test_check_same_file(void) {
    TEST_CASE("output_check refuses an output that is an input (same path, hard link, symlink)") {
        const char *text = at("text.txt"), *ckpt = at("run.st");
        write_file(text, "hello");
        write_file(ckpt, "checkpoint");
        EXPECT(link(text, at("hard.txt")) == 0);
        EXPECT(symlink("text.txt", at("sym.txt")) == 0);
        io_path_t ins[] = {{"--resume", "", OUT_REPLACED}, {"the training file", text, 0}};
        char want[512];
        snprintf(want, sizeof want, "it is the same file as the training file '%s', which would be destroyed", text);
        EXPECT_REFUSED(text, OUT_REPLACED, ins, 2, want);
        EXPECT_REFUSED(at("hard.txt"), OUT_REPLACED, ins, 2, want);
        EXPECT_REFUSED(at("sym.txt"), OUT_REPLACED, ins, 2, want);
        EXPECT_REFUSED(at("sym.txt"), OUT_IN_PLACE, ins, 2, want);
        // The input named through a symlink, the output through its own path.
        io_path_t via_link[] = {{"the training file", at("sym.txt"), 0}};
        EXPECT_REFUSED(text, OUT_IN_PLACE, via_link, 1, "same file as the training file");
        // --resume's checkpoint may be replaced by --out (its default), not written over by --log.
        ins[0].path = ckpt;
        EXPECT_ACCEPTED(ckpt, OUT_REPLACED, ins, 2);
        EXPECT_REFUSED(ckpt, OUT_IN_PLACE, ins, 2, "same file as --resume");
        // An input checkpoint not marked replaceable (--init-from, infer's) is refused either way.
        io_path_t init[] = {{"--init-from", ckpt, 0}};
        EXPECT_REFUSED(ckpt, OUT_REPLACED, init, 1, "same file as --init-from");
        // Missing inputs are skipped; other files pass.
        io_path_t missing[] = {{"the training file", at("nope.txt"), 0}, {"--init-from", NULL, 0}};
        EXPECT_ACCEPTED(at("other.st"), OUT_REPLACED, missing, 2);
        EXPECT_ACCEPTED(at("other.st"), OUT_REPLACED, ins, 2);
        unlink(at("hard.txt"));
        unlink(at("sym.txt"));
        unlink(ckpt);
    }
    TEST_CASE("output_check refuses two outputs naming one file") {
        char err[512];
        const char *a = at("a.st");
        char dotted[256];
        snprintf(dotted, sizeof dotted, "%s/./a.st", dir);
        // Neither exists yet: same directory and name.
        io_path_t outs[] = {{"--out", a, OUT_REPLACED}, {"--log", dotted, OUT_IN_PLACE}};
        EXPECT(output_check(outs, 2, NULL, 0, err, sizeof err) == -1);
        char want[512];
        snprintf(want, sizeof want, "cannot write --log '%s': it is the same file as --out '%s'", dotted, a);
        EXPECT_MSG(strcmp(err, want) == 0, "got \"%s\"", err);
        outs[1].path = a;
        EXPECT(output_check(outs, 2, NULL, 0, err, sizeof err) == -1 && strstr(err, "same file as --out"));
        // Both exist, one through a symlink.
        write_file(a, "x");
        EXPECT(symlink("a.st", at("a.link")) == 0);
        outs[1].path = at("a.link");
        EXPECT(output_check(outs, 2, NULL, 0, err, sizeof err) == -1 && strstr(err, "same file as --out"));
        // Different files pass; a missing output is skipped.
        outs[1].path = at("a.csv");
        EXPECT_MSG(output_check(outs, 2, NULL, 0, err, sizeof err) == 0, "%s", err);
        outs[1].path = "";
        EXPECT_MSG(output_check(outs, 2, NULL, 0, err, sizeof err) == 0, "%s", err);
        unlink(at("a.link"));
        unlink(a);
    }
}

// In a child process: try output_lock(path) after chdir(cd) (if cd); exit 0 if it failed with a
// message containing want, 1 otherwise (3 if it succeeded). Returns the child's exit status.
static int lock_in_child(const char *cd, const char *path, const char *want) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (cd && chdir(cd) != 0) _exit(4);
        char err[1024];
        if (output_lock("--out", path, err, sizeof err) == 0) _exit(3);
        if (!strstr(err, want)) {
            printf("  child: \"%s\", want \"%s\"\n", err, want);
            fflush(stdout);
            _exit(1);
        }
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 99;
}

static void test_lock(void) {
    TEST_CASE("output_lock: a second holder fails naming the first; the lock file goes at unlock") {
        char err[1024];
        const char *out = at("locked.st"), *lockf = at("locked.st.lock");
        EXPECT_MSG(output_lock("--out", out, err, sizeof err) == 0, "%s", err);
        char dotted[160];
        snprintf(dotted, sizeof dotted, "%s/./locked.st", dir);
        EXPECT_MSG(output_lock("--out", dotted, err, sizeof err) == 0, "relocking in the same process: %s", err);
        // The lock file holds our pid.
        FILE *f = fopen(lockf, "r");
        long pid = 0;
        EXPECT(f && fscanf(f, "%ld", &pid) == 1 && pid == (long)getpid());
        if (f) fclose(f);
        // Another open file description cannot take it (what another process sees).
        int fd = open(lockf, O_RDONLY);
        EXPECT(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK);
        if (fd >= 0) close(fd);
        // Another process, by the same path and by a relative spelling from inside the directory.
        char want[256];
        snprintf(want, sizeof want, "cannot write --out '%s': another run (pid %ld) is writing it", out, (long)getpid());
        EXPECT(lock_in_child(NULL, out, want) == 0);
        // In the message the lock file is named by its absolute path, whatever the spelling.
        snprintf(want, sizeof want, "another run (pid %ld) is writing it (lock file '%s')", (long)getpid(), lockf);
        EXPECT(lock_in_child(dir, "./locked.st", want) == 0);
        EXPECT(lock_in_child(dir, "locked.st", want) == 0);
        // A different output is not locked.
        EXPECT(lock_in_child(NULL, at("free.st"), "") == 3);
        output_unlock_all();
        EXPECT_MSG(access(lockf, F_OK) != 0, "the lock file is still there after unlock");
        EXPECT(lock_in_child(NULL, out, "") == 3);
        // A lock file left by a killed run (no process holds it) is taken over.
        write_file(lockf, "999999999\n");
        EXPECT_MSG(output_lock("--out", out, err, sizeof err) == 0, "%s", err);
        output_unlock_all();
        unlink(at("free.st.lock"));
        unlink(lockf);
    }
}

// A pid that was a process and is now gone (reaped).
static pid_t dead_pid(void) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
    return pid;
}

static void test_stale_temps(void) {
    TEST_CASE("output_remove_stale_temps removes only a dead writer's temporaries") {
        char err[1024], name[256];
        const char *out = at("x.st");
        pid_t dead = dead_pid();
        int pipefd[2];
        EXPECT(pipe(pipefd) == 0);
        fflush(stdout);
        pid_t alive = fork();
        if (alive == 0) {  // a live writer: waits until the parent closes the pipe
            char c;
            close(pipefd[1]);
            while (read(pipefd[0], &c, 1) > 0) {}
            _exit(0);
        }
        close(pipefd[0]);
        snprintf(name, sizeof name, "x.st.tmp-%ld", (long)dead);
        char dead_tmp[256];
        snprintf(dead_tmp, sizeof dead_tmp, "%s", at(name));
        write_file(dead_tmp, "stale");
        const char *keep[6];
        char keep_buf[6][256];
        int n_keep = 0;
        const long pids[] = {(long)getpid(), (long)alive};
        for (int i = 0; i < 2; i++) {
            snprintf(name, sizeof name, "x.st.tmp-%ld", pids[i]);
            snprintf(keep_buf[n_keep], 256, "%s", at(name));
            write_file(keep_buf[n_keep], "live");
            keep[n_keep] = keep_buf[n_keep];
            n_keep++;
        }
        // Not the writer's names, or another output's: left alone.
        const char *others[] = {"y.st.tmp-%ld", "x.st.tmp-0%ld", "x.stx.tmp-%ld", "x.st.tmp-%ld.bak"};
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, others[i], (long)dead);
            snprintf(keep_buf[n_keep], 256, "%s", at(name));
            write_file(keep_buf[n_keep], "other");
            keep[n_keep] = keep_buf[n_keep];
            n_keep++;
        }
        int removed = -1;
        EXPECT_MSG(output_remove_stale_temps(out, &removed, err, sizeof err) == 0, "%s", err);
        EXPECT_MSG(removed == 1, "removed %d", removed);
        EXPECT_MSG(access(dead_tmp, F_OK) != 0, "the dead writer's temporary is still there");
        for (int i = 0; i < n_keep; i++) EXPECT_MSG(access(keep[i], F_OK) == 0, "'%s' was removed", keep[i]);
        EXPECT(output_remove_stale_temps(out, &removed, err, sizeof err) == 0 && removed == 0);
        close(pipefd[1]);
        waitpid(alive, NULL, 0);
        for (int i = 0; i < n_keep; i++) unlink(keep[i]);
        EXPECT(output_remove_stale_temps(at("nodir/x.st"), &removed, err, sizeof err) == -1 &&
               strstr(err, "No such file or directory"));
    }
}

static void test_mode(void) {
    TEST_CASE("output_match_mode gives the temporary the replaced file's mode, whatever the umask") {
        const char *out = at("m.st"), *tmp = at("m.st.tmp");
        mode_t modes[] = {0600, 0664, 0640, 0444};
        mode_t old_umask = umask(022);
        for (int i = 0; i < 4; i++) {
            unlink(out);
            write_file(out, "x");
            chmod(out, modes[i]);
            int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
            EXPECT(fd >= 0 && output_match_mode(fd, out) == 0);
            struct stat st;
            EXPECT(fstat(fd, &st) == 0);
            EXPECT_MSG((st.st_mode & 07777) == modes[i], "mode %o, want %o", st.st_mode & 07777, modes[i]);
            close(fd);
            unlink(tmp);
        }
        // No file to replace: the temporary keeps its creation mode (0666 & ~umask).
        unlink(out);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        struct stat st;
        EXPECT(fd >= 0 && output_match_mode(fd, out) == 0 && fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0644);
        close(fd);
        unlink(tmp);
        umask(old_umask);
    }
}

int main(void) {
    strcpy(dir, "/tmp/attnlab_test_output_guard_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_check_kinds();
    test_check_same_file();
    test_lock();
    test_stale_temps();
    test_mode();
    unlink(at("old.st"));
    unlink(at("text.txt"));
    if (rmdir(dir) != 0) printf("  note: %s not empty: %s\n", dir, strerror(errno));
    return test_main_end();
}
