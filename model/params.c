// params.c — the parameter table and its four arenas (see params.h).
#include "model/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"

void params_init_table(param_table_t *pt) { memset(pt, 0, sizeof *pt); }

param_t *params_add(param_table_t *pt, const char *prefix, const char *name, param_spec_t spec) {
    CHECK(pt->data == NULL);  // no registration after allocation
    param_t *p = xcalloc(1, sizeof *p);
    int len = snprintf(p->name, sizeof p->name, "%s%s", prefix, name);
    CHECK(len > 0 && (size_t)len < sizeof p->name);
    CHECK(params_find(pt, p->name) == NULL);
    p->numel = 1;
    while (p->ndim < 4 && spec.shape[p->ndim] != 0) {
        CHECK(spec.shape[p->ndim] > 0);
        p->shape[p->ndim] = spec.shape[p->ndim];
        p->numel *= (size_t)spec.shape[p->ndim++];
    }
    CHECK(p->ndim >= 1);
    for (int i = p->ndim; i < 4; i++) CHECK(spec.shape[i] == 0);  // no size after the end
    // Each rule reads its own field only: a field given to the wrong rule is a mistake.
    CHECK(spec.init == INIT_NORMAL ? spec.std > 0.0f : spec.std == 0.0f);
    CHECK(spec.init == INIT_UNIFORM ? spec.bound > 0.0f : spec.bound == 0.0f);
    CHECK((spec.init == INIT_CUSTOM) == (spec.init_fn != NULL));
    CHECK(spec.init == INIT_CUSTOM || spec.init_owner == NULL);
    p->init = spec.init;
    p->init_scale = spec.init == INIT_NORMAL ? spec.std : spec.bound;
    p->init_fn = spec.init_fn;
    p->init_owner = spec.init_owner;
    p->decay = spec.decay != 0;
    p->trainable = !spec.buffer;
    p->offset = pt->total;
    pt->total += p->numel;  // packed: consecutive registrations are contiguous
    if (pt->count == pt->cap) {
        pt->cap = pt->cap ? 2 * pt->cap : 64;
        param_t **items = xmalloc((size_t)pt->cap * sizeof *items);
        if (pt->count) memcpy(items, pt->items, (size_t)pt->count * sizeof *items);
        free(pt->items);
        pt->items = items;
    }
    pt->items[pt->count++] = p;
    return p;
}

void params_set_sparse_rows(param_t *p, float fixed_lr) {
    CHECK(p->ndim == 2 && p->data == NULL && fixed_lr >= 0.0f);
    p->sparse_rows = 1;
    p->fixed_lr = fixed_lr;
}

void params_allocate(param_table_t *pt) {
    CHECK(pt->data == NULL);
    pt->data = xalloc_floats(pt->total);
    pt->grad = xalloc_floats(pt->total);
    pt->m = xalloc_floats(pt->total);
    pt->v = xalloc_floats(pt->total);
    for (int i = 0; i < pt->count; i++) {
        param_t *p = pt->items[i];
        p->data = pt->data + p->offset;
        p->grad = pt->grad + p->offset;
        p->m = pt->m + p->offset;
        p->v = pt->v + p->offset;
        if (p->sparse_rows) {
            p->touched = xcalloc((size_t)p->shape[0], sizeof *p->touched);
            p->row_mark = xcalloc((size_t)p->shape[0], 1);
        }
    }
}

void params_init_values(param_table_t *pt, rng_t *rng) {
    for (int i = 0; i < pt->count; i++) {
        param_t *p = pt->items[i];
        switch (p->init) {
        case INIT_NORMAL:
            for (size_t j = 0; j < p->numel; j++) p->data[j] = p->init_scale * rng_normal(rng);
            break;
        case INIT_UNIFORM:
            for (size_t j = 0; j < p->numel; j++) p->data[j] = p->init_scale * (2.0f * rng_uniform(rng) - 1.0f);
            break;
        case INIT_ZEROS:
            memset(p->data, 0, p->numel * sizeof(float));
            break;
        case INIT_ONES:
            for (size_t j = 0; j < p->numel; j++) p->data[j] = 1.0f;
            break;
        case INIT_CUSTOM:
            CHECK(p->init_fn != NULL);
            p->init_fn(p, rng, p->init_owner);
            break;
        }
    }
    memset(pt->m, 0, pt->total * sizeof(float));
    memset(pt->v, 0, pt->total * sizeof(float));
}

void params_zero_grad(param_table_t *pt) {
    for (int i = 0; i < pt->count; i++) {
        param_t *p = pt->items[i];
        if (!p->sparse_rows) {
            memset(p->grad, 0, p->numel * sizeof(float));
            continue;
        }
        size_t len = (size_t)p->shape[1];
        long nt = (long)p->n_touched;
#pragma omp parallel for schedule(static) if (nt * (long)len > 16384)  // distinct rows: no shared writes
        for (long r = 0; r < nt; r++) {
            size_t row = (size_t)p->touched[r];
            memset(p->grad + row * len, 0, len * sizeof(float));
            p->row_mark[row] = 0;
        }
        p->n_touched = 0;
    }
}

static size_t name_hash(const char *s) {  // FNV-1a
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

param_t *params_find(const param_table_t *cpt, const char *name) {
    param_table_t *pt = (param_table_t *)cpt;  // the index is a cache: lookups do not change the table
    if (pt->n_indexed > pt->count) pt->n_indexed = 0;  // defensive: a table shrunk by hand
    if ((size_t)pt->count * 2 >= pt->index_cap) {       // keep the load factor under 1/2: rebuild larger
        free(pt->index);
        pt->index_cap = pt->index_cap ? 2 * pt->index_cap : 256;
        while ((size_t)pt->count * 2 >= pt->index_cap) pt->index_cap *= 2;
        pt->index = xmalloc(pt->index_cap * sizeof *pt->index);
        memset(pt->index, 0xFF, pt->index_cap * sizeof *pt->index);
        pt->n_indexed = 0;
    }
    size_t mask = pt->index_cap - 1;
    for (; pt->n_indexed < pt->count; pt->n_indexed++) {
        size_t h = name_hash(pt->items[pt->n_indexed]->name) & mask;
        while (pt->index[h] >= 0) h = (h + 1) & mask;
        pt->index[h] = pt->n_indexed;
    }
    for (size_t h = name_hash(name) & mask; pt->index[h] >= 0; h = (h + 1) & mask)
        if (strcmp(pt->items[pt->index[h]]->name, name) == 0) return pt->items[pt->index[h]];
    return NULL;
}

size_t params_count_trainable(const param_table_t *pt) {
    size_t n = 0;
    for (int i = 0; i < pt->count; i++)
        if (pt->items[i]->trainable) n += pt->items[i]->numel;
    return n;
}

void params_free(param_table_t *pt) {
    for (int i = 0; i < pt->count; i++) {
        free(pt->items[i]->touched);
        free(pt->items[i]->row_mark);
        free(pt->items[i]);
    }
    free(pt->items);
    free(pt->data);
    free(pt->grad);
    free(pt->m);
    free(pt->v);
    free(pt->index);
    memset(pt, 0, sizeof *pt);
}
