// compare_opts.h — the command line of `compare` (docs/compare.md):
//   compare FILE OUTDIR --spec SPEC [--spec SPEC ...] [--spec-flags 'SPEC=FLAGS' ...] [--seeds N]
//           [--seed S] [--jobs J] [--time-budget S] [--progress-every S] [--train PATH]
//           [--equal-params] [-- shared train flags]
// Parsing only: a bad command line is one message (exit 2 by the caller); what train itself thinks
// of the specs and flags is asked later (train --check).
#ifndef ATTNLAB_COMPARE_OPTS_H
#define ATTNLAB_COMPARE_OPTS_H

#include <stddef.h>

typedef struct {
    const char *spec;      // the --layers value, exactly as given
    char **flags;          // its own train flags (from --spec-flags, split at whitespace), after the shared ones
    int n_flags;
} cmp_spec_t;

typedef struct {
    const char *file, *outdir;
    const char *train;         // the train binary ("" = the one beside compare)
    cmp_spec_t *specs;
    int n_specs;
    char **shared;             // train flags after "--", given to every run
    int n_shared;
    long seeds, seed_base, jobs;
    double time_budget;        // > 0: every run gets train --time-budget this
    double progress_every;     // seconds between progress reports
    int equal_params;          // asked for; refused (see compare.c)
    int help;
} cmp_opts_t;

// Parse argv (argv[0] is the program). Returns 0, or -1 with one line in err. --help sets o->help.
int cmp_opts_parse(int argc, char **argv, cmp_opts_t *o, char *err, size_t errlen);
void cmp_opts_free(cmp_opts_t *o);
// The flags compare sets itself (--layers, --seed, --out, --log, --resume, --time-budget, ...): the
// first of words[0..n) that is one of them ("--seed" or "--seed=..."), or NULL.
const char *cmp_reserved_flag(char *const *words, int n);
// The value of the last "--name V" or "--name=V" among words[0..n), or NULL.
const char *cmp_flag_value(char *const *words, int n, const char *name);
// Split "SPEC=FLAGS" at the first '=' outside parentheses (option lists hold '='). Returns the
// offset of that '=', or -1 if there is none.
int cmp_split_spec_flags(const char *arg);

// The train flags of one spec: the shared ones, except those its own flags set again (train refuses
// a flag given twice), then its own. A flag is a word starting with "--" and the words after it up
// to the next such word (its value). Returns a new array of n_out pointers into the inputs (free it).
char **cmp_merge_flags(char *const *shared, int n_shared, char *const *own, int n_own, int *n_out);

extern const char *const CMP_USAGE;

#endif
