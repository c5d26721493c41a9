// compare_manifest.h — OUTDIR/manifest.json: what a comparison directory holds, so that a second
// command on it either resumes the same comparison or is refused (never mixed). The identity of a
// comparison is the training file (its size and FNV-1a 64 hash), the shared train flags, the
// equal-time budget; its specs, per-spec flags and seeds may grow (each run is keyed by all of
// them, compare_key.h), so adding a spec or a seed to an existing comparison resumes it.
#ifndef ATTNLAB_COMPARE_MANIFEST_H
#define ATTNLAB_COMPARE_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "cli/compare_opts.h"

typedef struct {
    size_t file_bytes;
    uint64_t file_hash;
} cmp_file_id_t;

// Size and FNV-1a 64 hash of a file's bytes. Returns 0, or -1 with one line.
int cmp_file_id(const char *path, cmp_file_id_t *id, char *err, size_t errlen);

// Check OUTDIR before anything runs: absent or empty (created), or holding a manifest of the same
// comparison; else -1 with one line naming what differs (another file, other shared flags, another
// budget, a directory with files but no manifest). *resuming is 1 when a manifest matched.
int cmp_manifest_check(const cmp_opts_t *o, const cmp_file_id_t *id, int *resuming, char *err, size_t errlen);
// Write OUTDIR/manifest.json (atomically) for this command: identity, specs with their flags and
// parameter counts, seeds. Returns 0, or -1 with one line.
int cmp_manifest_write(const cmp_opts_t *o, const cmp_file_id_t *id, const long *params, char *err, size_t errlen);

#endif
