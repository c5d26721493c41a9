// params.h — the parameter table: every trainable tensor (and every saved buffer) of a model.
// Blocks register their tensors by name, shape and init rule; the table then carves four arenas
// (values, gradients, AdamW first and second moments), one allocation each. Everything that walks
// parameters — init, zeroing, AdamW, clipping, checkpoint, counts, gradient checks — walks this table.
#ifndef ATTNLAB_PARAMS_H
#define ATTNLAB_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"

typedef enum {
    INIT_NORMAL = 0,  // N(0, scale²)
    INIT_UNIFORM,     // U(-scale, scale)
    INIT_ZEROS,
    INIT_ONES,
    INIT_CUSTOM,      // the owning block fills it (init_fn)
} init_kind_t;

typedef struct param param_t;
typedef void (*param_init_fn)(param_t *p, rng_t *rng, void *owner);

struct param {
    char name[80];        // checkpoint name, e.g. "layers.3.attn.wq"
    int ndim;
    int64_t shape[4];     // PyTorch order; a linear weight is [out, in]
    size_t numel;
    size_t offset;        // into each arena, in floats (tensors are packed, no padding)
    init_kind_t init;
    float init_scale;     // std (normal) or bound (uniform)
    param_init_fn init_fn;  // INIT_CUSTOM only
    void *init_owner;
    int decay;            // 1: AdamW weight decay applies (matrices), 0: none (biases, norms, spans)
    int trainable;        // 0: a buffer saved in the checkpoint but never updated (e.g. random features)
    // Sparse rows (a 2-D tensor of which a step reaches only a few rows: PKM's value table; see
    // docs/design.md "Sparse row updates"). Its gradient is zero outside the rows listed in `touched`;
    // the backward that writes a row first calls params_touch_row. Zeroing, the norm, clipping, the
    // finiteness check and Adam then walk those rows only (lazy Adam: untouched rows and their moments
    // are left exactly as they are), so no per-step work is proportional to the row count.
    int sparse_rows;
    float fixed_lr;       // > 0: this tensor's own constant learning rate instead of the schedule's
    int32_t *touched;     // [shape[0]] rows touched since the last params_zero_grad, in first-touch order
    size_t n_touched;
    uint8_t *row_mark;    // [shape[0]] 1 if the row is in `touched`
    float *data;          // [numel] views into the arenas, valid after params_allocate
    float *grad;
    float *m, *v;
};

typedef struct {
    param_t **items;      // registration order = arena order = checkpoint order
    int count, cap;
    size_t total;         // floats per arena
    float *data, *grad, *m, *v;  // the four arenas
    // private: params_find's hash index of items[0..n_indexed) by name (open addressing, -1 empty),
    // extended lazily by params_find itself, so registering N tensors costs O(N), not O(N²)
    int32_t *index;
    size_t index_cap;
    int n_indexed;
} param_table_t;

// How to make one tensor: a struct literal with named fields, e.g.
//   params_add(pt, prefix, "wq", (param_spec_t){.shape = {C, C}, .init = INIT_NORMAL, .std = 0.02f, .decay = 1});
// Fields left out are 0: no decay, trainable. Each init rule reads only its own field (std for
// normal, bound for uniform; init_fn and init_owner for custom) and params_add checks that.
typedef struct {
    int64_t shape[4];       // PyTorch order, 1 to 4 positive sizes; the first 0 ends the shape
    init_kind_t init;
    float std;              // INIT_NORMAL: N(0, std²), std > 0
    float bound;            // INIT_UNIFORM: U(-bound, bound), bound > 0
    param_init_fn init_fn;  // INIT_CUSTOM: fills the tensor, called with init_owner
    void *init_owner;
    int decay;              // 1: AdamW weight decay applies (matrices)
    int buffer;             // 1: saved in the checkpoint but never trained (trainable = 0)
} param_spec_t;

void params_init_table(param_table_t *pt);
// Register the tensor named prefix + name (e.g. "layers.3.attn." + "wq"). The returned pointer is
// stable; its data/grad views appear after params_allocate. Tensors registered one after another
// are contiguous in every arena (blocks rely on this to run wq|wk|wv as one matrix product), so the
// registration order is the arena and checkpoint layout.
param_t *params_add(param_table_t *pt, const char *prefix, const char *name, param_spec_t spec);
// Mark p (2-D, registered before params_allocate) as updated by sparse rows with its own constant
// learning rate fixed_lr (0: the schedule's).
void params_set_sparse_rows(param_t *p, float fixed_lr);
// Record that backward writes into row `row` of a sparse-rows tensor's gradient (not thread-safe:
// call from serial code, in a fixed order, so the touched list — and the norm summed over it — repeat).
static inline void params_touch_row(param_t *p, size_t row) {
    if (!p->row_mark[row]) {
        p->row_mark[row] = 1;
        p->touched[p->n_touched++] = (int32_t)row;
    }
}
void params_allocate(param_table_t *pt);
void params_init_values(param_table_t *pt, rng_t *rng);  // draws in registration order
// Zero every gradient: dense tensors whole, sparse-rows tensors only in their touched rows (then the
// touched lists are emptied).
void params_zero_grad(param_table_t *pt);
// The tensor called name, or NULL; O(1) expected (a hash index it keeps up to date itself; not
// thread-safe: call it from serial code, as registration and loading do).
param_t *params_find(const param_table_t *pt, const char *name);
size_t params_count_trainable(const param_table_t *pt);
void params_free(param_table_t *pt);

#endif
