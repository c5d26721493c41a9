// spec.h — the --layers grammar (ARCHITECTURE.md §6):
//   SPEC  := LAYER (',' LAYER)*          LAYER := [N '*'] BLOCK ['/' BLOCK]
//   BLOCK := kind ['(' opt '=' value (',' opt '=' value)* ')']
// Whitespace is ignored; values are kept as text and read by each block kind with spec_get_*.
// An omitted ffn is "mlp", or "none" after allattn (an explicit ffn after allattn is an error);
// that rule lives in the model builder, which knows the kinds; the parser only records `has_ffn`.
#ifndef ATTNLAB_SPEC_H
#define ATTNLAB_SPEC_H

#include <stddef.h>

#define SPEC_MAX_OPTS 16
#define SPEC_NAME_LEN 32

typedef struct {
    char key[SPEC_NAME_LEN];
    char value[SPEC_NAME_LEN];
    int used;  // set by spec_get_*; an option left unused is reported as unknown
} spec_opt_t;

typedef struct {
    char kind[SPEC_NAME_LEN];
    int n_opts;
    spec_opt_t opts[SPEC_MAX_OPTS];
} spec_block_t;

typedef struct {
    spec_block_t mixer;
    spec_block_t ffn;
    int has_ffn;  // 1 if the spec named an ffn explicitly
} spec_layer_t;

// Parse; *layers is malloc'd. Returns 0, or -1 with a message naming the position of the problem.
int spec_parse(const char *text, spec_layer_t **layers, int *n_layers, char *err, size_t errlen);

// Option readers: take option `name` from b (marking it used) or the default when absent; check range.
// `where` names the block for messages, e.g. "layer 2 (adaptive)". Return 0 or -1 with a message.
int spec_get_int(spec_block_t *b, const char *name, long def, long lo, long hi, long *out, const char *where,
                 char *err, size_t errlen);
int spec_get_float(spec_block_t *b, const char *name, double def, double lo, double hi, double *out,
                   const char *where, char *err, size_t errlen);
// choices: a '|'-separated list, e.g. "softmax|relu"; *out is the index of the chosen value.
int spec_get_enum(spec_block_t *b, const char *name, const char *choices, int def, int *out, const char *where,
                  char *err, size_t errlen);
// After a kind has read its options: any option not read is unknown. `known` lists the kind's options.
int spec_check_unused(const spec_block_t *b, const char *where, const char *known, char *err, size_t errlen);

#endif
