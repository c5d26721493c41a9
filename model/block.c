// block.c — what every block shares beyond its ops table: the name messages give it.
#include "model/block.h"

#include <stdio.h>

const char *block_where(block_t *b) {
    snprintf(b->where, sizeof b->where, "layer %d (%s)", b->layer, b->ops->kind);
    return b->where;
}
