// output_guard.c — output path checks, the per-output lock, stale temporaries, mode keeping
// (see output_guard.h).
#include "base/output_guard.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/check.h"

// ---------------------------------------------------------------------------- paths

// The directory part of path (malloc'd): "a/b" -> "a", "b" -> ".", "/b" -> "/".
static char *parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = xmalloc(n + 1);
    memcpy(d, path, n);
    d[n] = 0;
    return d;
}

// The last component of path (inside path; never empty for a path not ending in '/').
static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int given(const io_path_t *p) { return p->path && p->path[0]; }

static const char *kind_of(mode_t m) {
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

// ---------------------------------------------------------------------------- output_check

// What names an output's file: the file itself if it exists, else (its directory, its name).
typedef struct {
    int exists;
    dev_t dev;
    ino_t ino;       // of the file if exists, else of its directory
    const char *name;  // the last component, compared when !exists
} ident_t;

static int same_ident(const ident_t *a, const ident_t *b) {
    if (a->exists != b->exists || a->dev != b->dev || a->ino != b->ino) return 0;
    return a->exists || strcmp(a->name, b->name) == 0;
}

// Check one output alone and fill its identity. Returns 0 or -1 with the message.
static int check_one(const io_path_t *o, ident_t *id, char *err, size_t errlen) {
    const char *p = o->path;
    size_t n = strlen(p);
    if (p[n - 1] == '/')
        return seterr(err, errlen, "cannot write %s '%s': a path ending in '/' names a directory; give a file path",
                      o->what, p);
    struct stat st;
    if (stat(p, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return seterr(err, errlen, "cannot write %s '%s': it is a directory; give a file path", o->what, p);
        if (!S_ISREG(st.st_mode))
            return seterr(err, errlen, "cannot write %s '%s': it is %s, not a regular file; refusing to replace it",
                          o->what, p, kind_of(st.st_mode));
        *id = (ident_t){.exists = 1, .dev = st.st_dev, .ino = st.st_ino};
        if (o->how == OUT_IN_PLACE) {  // opened at path: the file itself must take writes
            if (access(p, W_OK) != 0)
                return seterr(err, errlen, "cannot write %s '%s': %s", o->what, p, strerror(errno));
            return 0;
        }
    } else if (errno != ENOENT && errno != ENOTDIR) {
        return seterr(err, errlen, "cannot write %s '%s': %s", o->what, p, strerror(errno));
    } else {
        id->exists = 0;
    }
    // The directory must exist and take a new file (the temporary, or the file itself).
    char *dir = parent_dir(p);
    int rc = 0;
    struct stat ds;
    if (stat(dir, &ds) != 0) {
        rc = errno == ENOENT ? seterr(err, errlen, "cannot write %s '%s': directory '%s' does not exist", o->what, p, dir)
                             : seterr(err, errlen, "cannot write %s '%s': directory '%s': %s", o->what, p, dir,
                                      strerror(errno));
    } else if (!S_ISDIR(ds.st_mode)) {
        rc = seterr(err, errlen, "cannot write %s '%s': '%s' is not a directory", o->what, p, dir);
    } else if (access(dir, W_OK | X_OK) != 0) {
        rc = seterr(err, errlen, "cannot write %s '%s': directory '%s' does not take new files: %s", o->what, p, dir,
                    strerror(errno));
    } else if (!id->exists) {
        *id = (ident_t){.exists = 0, .dev = ds.st_dev, .ino = ds.st_ino, .name = base_name(p)};
    }
    free(dir);
    return rc;
}

int output_check(const io_path_t *outputs, int n_outputs, const io_path_t *inputs, int n_inputs, char *err,
                 size_t errlen) {
    CHECK(n_outputs >= 0 && n_outputs <= 16 && n_inputs >= 0);
    ident_t ids[16];
    for (int i = 0; i < n_outputs; i++) {
        const io_path_t *o = &outputs[i];
        if (!given(o)) continue;
        if (check_one(o, &ids[i], err, errlen)) return -1;
        // Against every input: an existing output may be one of them under another name.
        for (int k = 0; k < n_inputs && ids[i].exists; k++) {
            const io_path_t *in = &inputs[k];
            struct stat st;
            if (!given(in) || stat(in->path, &st) != 0) continue;
            if (st.st_dev != ids[i].dev || st.st_ino != ids[i].ino) continue;
            if (o->how == OUT_REPLACED && in->how == OUT_REPLACED) continue;
            return seterr(err, errlen, "cannot write %s '%s': it is the same file as %s '%s', which would be destroyed",
                          o->what, o->path, in->what, in->path);
        }
        // Against the outputs before it.
        for (int j = 0; j < i; j++)
            if (given(&outputs[j]) && same_ident(&ids[i], &ids[j]))
                return seterr(err, errlen, "cannot write %s '%s': it is the same file as %s '%s'", o->what, o->path,
                              outputs[j].what, outputs[j].path);
    }
    return 0;
}

// ---------------------------------------------------------------------------- lock

enum { MAX_LOCKS = 16 };
static struct {
    int fd;
    char *lock_path;
    pid_t owner;  // a forked child inherits this table but must not remove its parent's lock files
} g_locks[MAX_LOCKS];
static int g_n_locks;

// "<realpath of path's directory>/<name>.lock" (malloc'd), or NULL with errno set.
static char *lock_path_of(const char *path) {
    char *dir = parent_dir(path);
    char *real = realpath(dir, NULL);
    int e = errno;
    free(dir);
    if (!real) {
        errno = e;
        return NULL;
    }
    const char *name = base_name(path);
    size_t n = strlen(real) + strlen(name) + 8;
    char *lp = xmalloc(n);
    snprintf(lp, n, "%s%s%s.lock", real, strcmp(real, "/") == 0 ? "" : "/", name);
    free(real);
    return lp;
}

// The pid a holder wrote into its lock file, or 0 if none can be read.
static long holder_pid(int fd) {
    char buf[32];
    ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
    if (r <= 0) return 0;
    buf[r] = 0;
    char *end;
    long pid = strtol(buf, &end, 10);
    return pid > 0 && (*end == '\n' || *end == 0) ? pid : 0;
}

int output_lock(const char *what, const char *path, char *err, size_t errlen) {
    char *lp = lock_path_of(path);
    if (!lp) return seterr(err, errlen, "cannot write %s '%s': %s", what, path, strerror(errno));
    for (int i = 0; i < g_n_locks; i++)
        if (g_locks[i].owner == getpid() && strcmp(g_locks[i].lock_path, lp) == 0) {
            free(lp);
            return 0;
        }
    CHECK(g_n_locks < MAX_LOCKS);
    // The holder removes its lock file at exit while still holding it; a run that opened the file
    // just before then gets the lock on an unlinked inode. So a lock counts only if the path still
    // names the locked inode; otherwise try again on the file now at the path.
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666), writable = 1;
        if (fd < 0 && errno == EACCES) {  // another user's lock file: locking needs no write access
            fd = open(lp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            writable = 0;
        }
        if (fd < 0) {
            int e = errno;
            seterr(err, errlen, "cannot write %s '%s': cannot open its lock file '%s': %s", what, path, lp, strerror(e));
            free(lp);
            return -1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            long pid = e == EWOULDBLOCK ? holder_pid(fd) : 0;
            close(fd);
            if (e != EWOULDBLOCK)
                seterr(err, errlen, "cannot write %s '%s': cannot lock '%s': %s", what, path, lp, strerror(e));
            else if (pid)
                seterr(err, errlen, "cannot write %s '%s': another run (pid %ld) is writing it (lock file '%s'); "
                       "wait for it to end or choose another path", what, path, pid, lp);
            else
                seterr(err, errlen, "cannot write %s '%s': another run is writing it (lock file '%s'); "
                       "wait for it to end or choose another path", what, path, lp);
            free(lp);
            return -1;
        }
        struct stat held, now;
        if (fstat(fd, &held) == 0 && stat(lp, &now) == 0 && held.st_dev == now.st_dev && held.st_ino == now.st_ino) {
            // The pid is a hint for the message above; the lock is the flock, so a failed write is harmless.
            if (writable && ftruncate(fd, 0) == 0) {
                char buf[32];
                int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
                if (pwrite(fd, buf, (size_t)n, 0) != n) { /* hint only */ }
            }
            static int registered;
            if (!registered) registered = atexit(output_unlock_all) == 0;
            g_locks[g_n_locks].fd = fd;
            g_locks[g_n_locks].lock_path = lp;
            g_locks[g_n_locks].owner = getpid();
            g_n_locks++;
            return 0;
        }
        close(fd);
    }
    seterr(err, errlen, "cannot write %s '%s': its lock file '%s' keeps being replaced", what, path, lp);
    free(lp);
    return -1;
}

void output_unlock_all(void) {
    for (int i = 0; i < g_n_locks; i++) {
        if (g_locks[i].owner == getpid()) {
            unlink(g_locks[i].lock_path);  // while still holding it: see output_lock
            close(g_locks[i].fd);
        }
        free(g_locks[i].lock_path);
    }
    g_n_locks = 0;
}

// ---------------------------------------------------------------------------- stale temporaries

// The pid in "<name>.tmp-<pid>" (decimal, no sign, no leading zero), or 0 if entry is not such a name.
static long temp_pid(const char *entry, const char *name) {
    size_t n = strlen(name), s = strlen(OUTPUT_TEMP_SUFFIX);
    if (strncmp(entry, name, n) != 0 || strncmp(entry + n, OUTPUT_TEMP_SUFFIX, s) != 0) return 0;
    const char *d = entry + n + s;
    size_t len = strlen(d);
    if (len == 0 || len > 9 || d[0] == '0') return 0;
    for (size_t i = 0; i < len; i++)
        if (d[i] < '0' || d[i] > '9') return 0;
    return strtol(d, NULL, 10);
}

int output_remove_stale_temps(const char *path, int *removed, char *err, size_t errlen) {
    *removed = 0;
    char *dir = parent_dir(path);
    const char *name = base_name(path);
    DIR *d = opendir(dir);
    if (!d) {
        seterr(err, errlen, "cannot look for stale temporaries of '%s' in '%s': %s", path, dir, strerror(errno));
        free(dir);
        return -1;
    }
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        long pid = temp_pid(e->d_name, name);
        if (!pid) continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;  // alive (this process too), or EPERM: alive
        if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
            (*removed)++;
        } else if (errno != ENOENT) {
            rc = seterr(err, errlen, "cannot remove stale temporary '%s/%s' of '%s': %s", dir, e->d_name, path,
                        strerror(errno));
            break;
        }
    }
    closedir(d);
    free(dir);
    return rc;
}

// ---------------------------------------------------------------------------- mode

int output_match_mode(int fd, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    return fchmod(fd, st.st_mode & 07777);
}
