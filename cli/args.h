// args.h — a flag table for the command-line programs: parsing (--name value or --name=value),
// validation with one clear message naming the flag, --help generated from the table, and the
// round trip of the flags a run stores into its checkpoint's train_state JSON.
#ifndef ATTNLAB_ARGS_H
#define ATTNLAB_ARGS_H

#include <stddef.h>

typedef enum { FLAG_INT, FLAG_FLOAT, FLAG_STR, FLAG_BOOL } flag_type_t;

typedef struct {
    const char *name;      // without dashes: "lr"
    flag_type_t type;
    void *dst;             // long*, double*, const char** or int* (bool)
    const char *def;       // default as text ("" for none); applied by args_parse
    double lo, hi;         // inclusive range for numbers
    int stored;            // 1: kept in the checkpoint's train_state (restored on --resume)
    const char *help;
    int given;             // set by args_parse when the user passed it
} flag_t;

// Parse argv into the table. Positional arguments are collected into pos (up to max_pos).
// Returns 0; on a bad flag prints "attnlab: <problem>" and exits 2. --help and --version are
// reported back through *want_help / *want_version (not handled here).
int args_parse(flag_t *flags, int n_flags, int argc, char **argv, const char **pos, int max_pos, int *n_pos,
               int *want_help, int *want_version, const char *prog);
// Copy a program's flag table (n entries) into out (room for max); returns n. Checks it fits.
int args_bind(flag_t *out, int max, const flag_t *table, int n);
void args_print_help(const flag_t *flags, int n_flags, const char *usage);
flag_t *args_find(flag_t *flags, int n_flags, const char *name);

// The stored flags as members of a cJSON object (cJSON *). Numbers as numbers, strings as strings.
void args_to_json(const flag_t *flags, int n_flags, void *json_object);
// Restore stored flags from a cJSON object. A flag the user also gave with a different value is
// an error (exit 2) unless it is listed in `may_change` (comma-separated names).
void args_from_json(flag_t *flags, int n_flags, const void *json_object, const char *may_change, const char *ckpt);
// Free the strings args_from_json restored (after the last use of the options they were bound to).
void args_release(void);

#define ATTNLAB_VERSION "0.1.0"

#endif
