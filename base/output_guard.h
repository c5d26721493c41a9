// output_guard.h — checks and a lock for every file a program writes (train --out, --log,
// --export OUT, infer --spans-png), made before any work starts, so a bad output path costs one
// line at start-up and never an input file, a device node or another run's checkpoint.
//
// In base/ (not cli/) because the checkpoint writer (checkpoint/safetensors.c) needs two pieces of
// it: the name of its temporary files and the mode of the file it replaces.
//
// Typical use (train):
//   io_path_t outs[] = {{"--out", out, OUT_REPLACED}, {"--log", log, OUT_IN_PLACE}};
//   io_path_t ins[]  = {{"the training file", file, 0}, {"--resume", resume, OUT_REPLACED}, ...};
//   if (output_check(outs, 2, ins, 3, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
//   if (output_lock("--out", out, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
//   int removed; if (output_remove_stale_temps(out, &removed, err, sizeof err)) die(...);
#ifndef ATTNLAB_OUTPUT_GUARD_H
#define ATTNLAB_OUTPUT_GUARD_H

#include <stddef.h>
#include <sys/types.h>

// How an output is written, which decides what may share its file:
//  OUT_REPLACED  written whole to "<path>.tmp-<pid>" and renamed over path (the checkpoint writer):
//                an input marked OUT_REPLACED (a checkpoint read whole before the first save, i.e.
//                --resume's, which is --out's default) may be the same file.
//  OUT_IN_PLACE  opened and written at path (the CSV log, the PNG): may be the same file as nothing.
enum { OUT_IN_PLACE = 0, OUT_REPLACED = 1 };

typedef struct {
    const char *what;  // names it in messages: "--out", "--log", "the training file", "--resume"
    const char *path;  // NULL or "" = not given, skipped
    int how;           // outputs: OUT_REPLACED or OUT_IN_PLACE; inputs: OUT_REPLACED if an
                       // OUT_REPLACED output may replace it, else 0
} io_path_t;

// Check every output before any work starts. Refuses, with one line "cannot write <what> '<path>':
// <reason>" (returns -1; 0 if all is well), an output that
//  - is empty, ends in '/', or is an existing directory;
//  - exists and is not a regular file (character or block device, FIFO, socket): never replaced;
//  - lies in a directory that does not exist, is not a directory, or cannot take a new file
//    (no write or search permission, read-only filesystem);
//  - is an existing file that an OUT_IN_PLACE output cannot open for writing;
//  - is the same file (st_dev and st_ino, so also through symlinks and hard links) as an input
//    (inputs that do not exist are skipped: their readers report them), unless both are OUT_REPLACED;
//  - is the same file as another output, including two spellings of one not-yet-existing file.
int output_check(const io_path_t *outputs, int n_outputs, const io_path_t *inputs, int n_inputs, char *err,
                 size_t errlen);

// Take an exclusive lock on output `path` for the rest of the process, so two runs writing one
// file do not silently overwrite each other. The lock is flock(LOCK_EX | LOCK_NB) on the lock file
// "<dir>/<name>.lock" beside the output (a lock on the output itself would not survive the
// writer's rename, which replaces the inode); <dir> is resolved by realpath, so messages name the
// lock file absolutely and this process knows a lock it holds under any spelling of the path.
// The lock file holds the holder's pid; a second run fails at
// once with "cannot write --out 'x.st': another run (pid 1234) is writing it (lock file
// '/abs/x.st.lock'); wait for it to end or choose another path". The lock file is removed at exit
// (by output_unlock_all, registered with atexit; die() exits through it); after kill -9 it stays
// behind, harmless: the kernel dropped the lock with the process, and the next run takes it over.
// Locking a path this process already holds returns 0. Returns 0 or -1 with one line.
int output_lock(const char *what, const char *path, char *err, size_t errlen);
// Release every lock this process holds: unlink each lock file (while still holding it), then close.
void output_unlock_all(void);

// The checkpoint writer's temporaries are "<path>" OUTPUT_TEMP_SUFFIX "<pid>" (decimal, no leading
// zeros), renamed over path when complete; kill -9 during a save leaves one behind, full-size.
#define OUTPUT_TEMP_SUFFIX ".tmp-"
// Remove those temporaries of `path` that no live process can still be writing: regular files
// named exactly "<name>.tmp-<pid>" in path's directory whose pid has no process (kill(pid, 0) fails with ESRCH; EPERM means alive). Call while holding output_lock(path),
// which keeps every live writer of path out, including one in another pid namespace. *removed is
// the number removed. Returns 0 or -1 with one line (the directory cannot be read, or a stale file
// cannot be removed).
int output_remove_stale_temps(const char *path, int *removed, char *err, size_t errlen);

// Give the freshly created temporary `fd` the permission bits (mode & 07777) of the existing
// regular file at `path`, so replacing a checkpoint keeps its mode (e.g. 0600 or 0664 regardless of
// umask); if path does not exist or is not a regular file, fd keeps the mode it was created with.
// Returns 0, or -1 with errno set (fchmod failed).
int output_match_mode(int fd, const char *path);

#endif
