// block.c — what every block shares beyond its ops table: the name messages give it, its memory state.
#include "model/block.h"

#include <stdio.h>

#include "base/check.h"

const char *block_where(block_t *b) {
    snprintf(b->where, sizeof b->where, "layer %d (%s)", b->layer, b->ops->kind);
    return b->where;
}

float *block_mem_state(const block_t *b, const run_ctx_t *rc) {
    if (!rc || !rc->mem) return NULL;
    int i = 2 * b->layer + (b->ops->role == ROLE_FFN);
    CHECK(i < rc->mem->n_blocks);
    return rc->mem->state[i];
}
