// omp_env.h — libgomp's waiting policy, set before libgomp starts (issue 12, docs/performance.md
// "Under load").
//
// An OpenMP thread that reaches a barrier first spins, by default up to 300,000 polls, before it
// sleeps. On a quiet machine that saves a wake-up; beside a busy process it burns the core that our
// own descheduled thread needs, and a 2-thread run fell to a sixth of its speed. libgomp reads
// GOMP_SPINCOUNT once, when the library loads — before main() and before any constructor of ours —
// so the only way for the program itself to set it is to set it and re-execute itself.
#ifndef ATTNLAB_OMP_ENV_H
#define ATTNLAB_OMP_ENV_H

// The spin count attnlab's programs run with unless the user sets OMP_WAIT_POLICY or GOMP_SPINCOUNT
// (measured in docs/performance.md "Under load").
#define ATTNLAB_SPINCOUNT "10000"

// Called first in main(): unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set (the user's choice wins) or
// this is already the re-executed process, sets GOMP_SPINCOUNT=ATTNLAB_SPINCOUNT and re-executes
// /proc/self/exe with the same argv (nothing has been read or written yet). If the re-exec fails, the
// program goes on with libgomp's default.
void omp_env_apply(char **argv);

#endif
