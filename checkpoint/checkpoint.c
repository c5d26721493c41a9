// checkpoint.c — model + tokenizer + training state <-> safetensors (see checkpoint.h).
#include "checkpoint/checkpoint.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/shown.h"
#include "checkpoint/safetensors.h"
#include "model/spec.h"

static char *config_json(const model_t *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "vocab", m->dims.vocab);
    cJSON_AddNumberToObject(o, "dim", m->dims.dim);
    cJSON_AddNumberToObject(o, "heads", m->dims.heads);
    cJSON_AddNumberToObject(o, "ctx", m->dims.ctx);
    cJSON_AddNumberToObject(o, "n_layers", m->L);
    cJSON_AddStringToObject(o, "layers", m->spec);
    // "pos" only when it is not the default, so learned-position checkpoints stay byte-identical.
    if (m->dims.pos != POS_LEARNED) cJSON_AddStringToObject(o, "pos", pos_scheme_name(m->dims.pos));
    // "memory" only when on, for the same reason (absent means 0).
    if (m->dims.memory > 0) cJSON_AddNumberToObject(o, "memory", m->dims.memory);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int ckpt_save(const char *path, const model_t *m, const tokenizer_t *tok, const char *train_state,
              int with_optimizer, char *err, size_t errlen) {
    return ckpt_save_run(path, m, tok, train_state, with_optimizer, NULL, err, errlen);
}

int ckpt_save_run(const char *path, const model_t *m, const tokenizer_t *tok, const char *train_state,
                  int with_optimizer, const seg_mem_t *mem, char *err, size_t errlen) {
    const param_table_t *pt = &m->params;
    int n_mem = with_optimizer && mem ? mem->n_blocks : 0;
    int n = pt->count * (with_optimizer ? 3 : 1) + n_mem;
    st_tensor_t *ts = xcalloc((size_t)n, sizeof *ts);
    char (*names)[96] = xcalloc((size_t)n, sizeof *names);
    int k = 0;
    for (int pass = 0; pass < (with_optimizer ? 3 : 1); pass++)
        for (int i = 0; i < pt->count; i++) {
            const param_t *p = pt->items[i];
            const char *prefix = pass == 0 ? "" : pass == 1 ? "adam.m." : "adam.v.";
            if (pass && !p->trainable) continue;  // buffers have no moments
            snprintf(names[k], sizeof names[k], "%s%s", prefix, p->name);
            ts[k].name = names[k];
            ts[k].ndim = p->ndim;
            for (int d = 0; d < p->ndim; d++) ts[k].shape[d] = p->shape[d];
            ts[k].data = pass == 0 ? p->data : pass == 1 ? p->m : p->v;
            k++;
        }
    // The segment memory's state (training state, like the moments): one 1-D tensor per block that keeps one.
    for (int i = 0; i < n_mem; i++) {
        if (!mem->state[i]) continue;
        snprintf(names[k], sizeof names[k], "%s%d", CKPT_MEM_STATE_PREFIX, i);
        ts[k] = (st_tensor_t){.name = names[k], .ndim = 1, .data = mem->state[i]};
        ts[k].shape[0] = (int64_t)mem->floats[i];
        k++;
    }
    char version[16];
    snprintf(version, sizeof version, "%d", CKPT_FORMAT_VERSION);
    char *cfg = config_json(m), *tokj = tok_to_json(tok);
    st_meta_t meta[5] = {{"format", "attnlab"}, {"format_version", version}, {"config", cfg}, {"tokenizer", tokj}};
    int n_meta = 4;
    if (train_state) meta[n_meta++] = (st_meta_t){"train_state", train_state};
    int rc = st_write(path, ts, k, meta, n_meta, err, errlen);
    free(cfg);
    free(tokj);
    free(ts);
    free(names);
    return rc;
}

static int same_shape(const st_entry_t *e, const param_t *p) {
    if (e->ndim != p->ndim) return 0;
    for (int d = 0; d < p->ndim; d++)
        if (e->shape[d] != p->shape[d]) return 0;
    return 1;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t len = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < ndim && len < n; d++) len += (size_t)snprintf(buf + len, n - len, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (len < n) snprintf(buf + len, n - len, ")");
}

// config.<key> as an int in [lo, hi]. The range is checked on the double first: converting an
// out-of-range (or NaN) double to int is undefined behaviour.
static int json_int(const cJSON *o, const char *key, int lo, int hi, int *out, const char *path, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= lo && d <= hi) || d != floor(d))
        return seterr(err, errlen, "checkpoint '%s': config.%s is missing or not an integer in [%d, %d]", path, key, lo, hi);
    *out = (int)d;
    return 0;
}

// format_version must be written exactly as ckpt_save writes it: decimal digits, no sign, space or
// leading zero (" 1", "+1", "01" and "1.0" are refused). Returns the version, or -1 if malformed
// (a canonical number too large for a long is malformed too).
static long parse_format_version(const char *v) {
    if (!v || v[0] < '1' || v[0] > '9' || strlen(v) > 9) return -1;
    long n = 0;
    for (const char *c = v; *c; c++) {
        if (*c < '0' || *c > '9') return -1;
        n = 10 * n + (*c - '0');
    }
    return n;
}

// Every tensor value must be finite: NaN or ±inf weights (or moments) would load silently and
// surface later as "loss nan". Names the first offending tensor and element.
static int check_finite(const st_file_t *f, const char *path, char *err, size_t errlen) {
    for (int i = 0; i < f->n_tensors; i++) {
        const st_entry_t *e = &f->tensors[i];
        for (size_t j = 0; j < e->numel; j++)
            if (!isfinite(e->data[j]))
                return seterr(err, errlen, "checkpoint '%s': tensor '%s' holds a non-finite value (%s at element %zu): "
                              "corrupted or saved from a diverged run", path, shown(e->name).s,
                              isnan(e->data[j]) ? "NaN" : e->data[j] > 0 ? "+inf" : "-inf", j);
    }
    return 0;
}

// The tensor `name` of f must be listed with exactly this shape (2-D (a, b), or 1-D (a) when b is 0).
static int expect_listed(const st_file_t *f, const char *name, int64_t a, int64_t b, const char *why, const char *path,
                         char *err, size_t errlen) {
    const st_entry_t *e = st_find(f, name);
    int ndim = b ? 2 : 1;
    if (e && e->ndim == ndim && e->shape[0] == a && (ndim == 1 || e->shape[1] == b)) return 0;
    char want[64], got[64] = "";
    int64_t ws[2] = {a, b};
    shape_str(want, sizeof want, ndim, ws);
    if (e) shape_str(got, sizeof got, e->ndim, e->shape);
    if (!e) return seterr(err, errlen, "checkpoint '%s': its config (%s) implies tensor '%s' %s, which the file does not "
                          "list: config and tensors do not match", path, why, name, want);
    return seterr(err, errlen, "checkpoint '%s': its config (%s) implies tensor '%s' %s but the file lists %s: config and "
                  "tensors do not match", path, why, name, want, got);
}

// config.pos: absent means learned (checkpoints from before --pos); otherwise one of the names.
static int json_pos(const cJSON *o, pos_scheme_t *out, const char *path, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "pos");
    *out = POS_LEARNED;
    if (!v) return 0;
    if (!cJSON_IsString(v))
        return seterr(err, errlen, "checkpoint '%s': config.pos is not a string (one of \"learned\", \"rope\", \"none\", \"rel\")", path);
    if (pos_scheme_parse(v->valuestring, out))
        return seterr(err, errlen, "checkpoint '%s': config.pos '%s' is not one of \"learned\", \"rope\", \"none\", \"rel\"", path,
                      shown(v->valuestring).s);
    return 0;
}

// config.memory: absent means 0 (checkpoints from before --memory); otherwise an integer in [0, 2^20].
static int json_memory(const cJSON *o, int *out, const char *path, char *err, size_t errlen) {
    *out = 0;
    if (!cJSON_GetObjectItemCaseSensitive(o, "memory")) return 0;
    return json_int(o, "memory", 0, 1 << 20, out, path, err, errlen);
}

// A tensor of the training state beyond the parameters: an AdamW moment or the segment memory's state.
static int is_moment(const char *name) { return strncmp(name, "adam.m.", 7) == 0 || strncmp(name, "adam.v.", 7) == 0; }
static int is_mem_state(const char *name) { return strncmp(name, CKPT_MEM_STATE_PREFIX, strlen(CKPT_MEM_STATE_PREFIX)) == 0; }

// "memory.state.<i>" with i written canonically (no sign, no leading zero) and below n_blocks: i, else -1.
static int mem_state_index(const char *name, int n_blocks) {
    const char *d = name + strlen(CKPT_MEM_STATE_PREFIX);
    if (!*d || strlen(d) > 6 || (d[0] == '0' && d[1])) return -1;
    int i = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9') return -1;
        i = 10 * i + (*d - '0');
    }
    return i < n_blocks ? i : -1;
}

// Before anything is built: the sizes the config implies for the model-level tensors — wte
// (vocab, dim), wpe (ctx, dim) with learned positions only, and L layers (layers.<l>.ln1.weight (dim) for l < L, none at L) —
// must be those the header lists. The tensors' data are in the file, so this bounds vocab, ctx
// and the layer count by the file's size: a small file cannot make the reader allocate gigabytes
// for a config that claims ctx 1,048,576.
static int check_config_sizes(const st_file_t *f, const model_dims_t *d, const char *layers, const char *path, char *err,
                              size_t errlen) {
    char why[96];
    snprintf(why, sizeof why, "vocab %d, dim %d", d->vocab, d->dim);
    if (expect_listed(f, "wte", d->vocab, d->dim, why, path, err, errlen)) return -1;
    snprintf(why, sizeof why, "ctx %d, dim %d", d->ctx, d->dim);
    if (d->pos == POS_LEARNED && expect_listed(f, "wpe", d->ctx, d->dim, why, path, err, errlen)) return -1;
    spec_layer_t *specs;
    int L;
    char sub[256];
    if (spec_parse(layers, &specs, &L, sub, sizeof sub))
        return seterr(err, errlen, "checkpoint '%s': its config does not build: %s", path, sub);
    free(specs);
    char name[64];
    snprintf(why, sizeof why, "%d layers, dim %d", L, d->dim);
    snprintf(name, sizeof name, "layers.%d.ln1.weight", L - 1);
    if (expect_listed(f, name, d->dim, 0, why, path, err, errlen)) return -1;
    snprintf(name, sizeof name, "layers.%d.ln1.weight", L);
    if (st_find(f, name))
        return seterr(err, errlen, "checkpoint '%s': its config has %d layers but the file lists tensors of layer %d: "
                      "config and tensors do not match", path, L, L);
    return 0;
}

// The parameters the config registers must be exactly the tensors the header lists (names and
// shapes, the adam.* moments aside), and this is checked before any arena is allocated: a block
// option in the config's layers (mlp(hidden=1048576), pkm(slots=…)) would otherwise make a small
// file's build allocate hundreds of MB before a shape is compared. The registry is built with pos
// none in place of rope: the same parameters (rope has none) without the rope tables, whose width
// nothing bounds until the projections' shapes are checked here. Then the arenas are at most four
// times the file's tensors.
static int check_registry(const st_file_t *f, const model_dims_t *d, const char *layers, const char *path, char *err,
                          size_t errlen) {
    model_dims_t dry = *d;
    if (dry.pos == POS_ROPE) dry.pos = POS_NONE;
    model_t m;
    char sub[512];
    if (model_build_registry(&m, &dry, layers, sub, sizeof sub))
        return seterr(err, errlen, "checkpoint '%s': its config does not build: %s", path, sub);
    int rc = 0;
    const param_table_t *pt = &m.params;
    for (int i = 0; rc == 0 && i < pt->count; i++) {
        const param_t *p = pt->items[i];
        const st_entry_t *e = st_find(f, p->name);
        char want[64], got[64];
        shape_str(want, sizeof want, p->ndim, p->shape);
        if (!e) rc = seterr(err, errlen, "checkpoint '%s' lacks tensor '%s' %s that its config requires", path, p->name, want);
        else if (!same_shape(e, p)) {
            shape_str(got, sizeof got, e->ndim, e->shape);
            rc = seterr(err, errlen, "checkpoint '%s': tensor '%s' has shape %s, its config requires %s", path, p->name, got,
                        want);
        }
    }
    // Every registered tensor is listed with its shape, so the totals differ only by a listed tensor
    // the config does not register (reported by name).
    size_t listed = 0;
    for (int i = 0; rc == 0 && i < f->n_tensors; i++)
        if (!is_moment(f->tensors[i].name) && !is_mem_state(f->tensors[i].name)) listed += f->tensors[i].numel;
    for (int i = 0; rc == 0 && listed != pt->total && i < f->n_tensors; i++) {
        const char *name = f->tensors[i].name;
        const char *base = is_moment(name) ? name + 7 : name;
        if (!is_mem_state(name) && !params_find(pt, base))
            rc = seterr(err, errlen, "checkpoint '%s' has tensor '%s', which its config (%s) does not use", path,
                        shown(name).s, shown(layers).s);
    }
    model_free(&m);
    return rc;
}

static void free_mem_state(ckpt_t *c) {
    for (int i = 0; c->mem_state && i < c->mem_blocks; i++) free(c->mem_state[i]);
    free(c->mem_state);
    free(c->mem_floats);
    c->mem_state = NULL;
    c->mem_floats = NULL;
    c->mem_blocks = 0;
}

int ckpt_load(const char *path, ckpt_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    st_file_t f;
    if (st_read(path, &f, err, errlen)) return -1;
    int rc = -1, model_built = 0;
    cJSON *cfg = NULL;
    const char *format = st_meta_get(&f, "format"), *version = st_meta_get(&f, "format_version");
    if (!format || strcmp(format, "attnlab") != 0) {
        seterr(err, errlen, "checkpoint '%s' is a safetensors file but not an attnlab checkpoint (no format=attnlab metadata)", path);
        goto done;
    }
    long ver = parse_format_version(version);
    if (ver < 1) {
        if (version) seterr(err, errlen, "checkpoint '%s': format_version '%s' is invalid (expected \"%d\")", path,
                            shown(version).s, CKPT_FORMAT_VERSION);
        else seterr(err, errlen, "checkpoint '%s': format_version is missing", path);
        goto done;
    }
    if (ver > CKPT_FORMAT_VERSION) {
        seterr(err, errlen, "checkpoint '%s' has format version %ld, newer than this attnlab reads (%d); upgrade attnlab",
               path, ver, CKPT_FORMAT_VERSION);
        goto done;
    }
    const char *cfg_text = st_meta_get(&f, "config"), *tok_text = st_meta_get(&f, "tokenizer");
    if (!cfg_text || !(cfg = cJSON_Parse(cfg_text)) || !cJSON_IsObject(cfg)) {
        seterr(err, errlen, "checkpoint '%s': config metadata is missing or not JSON", path);
        goto done;
    }
    model_dims_t d = {0};
    if (json_int(cfg, "vocab", 1, 1 << 24, &d.vocab, path, err, errlen) || json_int(cfg, "dim", 1, 1 << 16, &d.dim, path, err, errlen) ||
        json_int(cfg, "heads", 1, 1 << 12, &d.heads, path, err, errlen) || json_int(cfg, "ctx", 1, 1 << 20, &d.ctx, path, err, errlen) ||
        json_pos(cfg, &d.pos, path, err, errlen) || json_memory(cfg, &d.memory, path, err, errlen))
        goto done;
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(cfg, "layers");
    if (!cJSON_IsString(layers)) {
        seterr(err, errlen, "checkpoint '%s': config.layers is missing", path);
        goto done;
    }
    if (!tok_text) {
        seterr(err, errlen, "checkpoint '%s': tokenizer metadata is missing", path);
        goto done;
    }
    char sub[512];
    if (tok_from_json(&out->tok, tok_text, sub, sizeof sub)) {
        seterr(err, errlen, "checkpoint '%s': %s", path, sub);
        goto done;
    }
    if (out->tok.vocab_size != d.vocab) {
        seterr(err, errlen, "checkpoint '%s': tokenizer has %d tokens but config.vocab is %d", path, out->tok.vocab_size, d.vocab);
        goto done;
    }
    if (check_config_sizes(&f, &d, layers->valuestring, path, err, errlen) || check_finite(&f, path, err, errlen) ||
        check_registry(&f, &d, layers->valuestring, path, err, errlen))
        goto done;
    if (model_build(&out->model, &d, layers->valuestring, sub, sizeof sub)) {
        seterr(err, errlen, "checkpoint '%s': its config does not build: %s", path, sub);
        goto done;
    }
    model_built = 1;
    param_table_t *pt = &out->model.params;
    int moments = 0;
    for (int i = 0; i < pt->count; i++) {
        param_t *p = pt->items[i];
        const st_entry_t *e = st_find(&f, p->name);
        char want[64], got[64];
        shape_str(want, sizeof want, p->ndim, p->shape);
        if (!e) {
            seterr(err, errlen, "checkpoint '%s' lacks tensor '%s' %s that its config requires", path, p->name, want);
            goto done;
        }
        if (!same_shape(e, p)) {
            shape_str(got, sizeof got, e->ndim, e->shape);
            seterr(err, errlen, "checkpoint '%s': tensor '%s' has shape %s, its config requires %s", path, p->name, got, want);
            goto done;
        }
        memcpy(p->data, e->data, p->numel * sizeof(float));
        if (!p->trainable) continue;
        char name[128];
        for (int which = 0; which < 2; which++) {
            snprintf(name, sizeof name, "adam.%c.%s", which ? 'v' : 'm', p->name);
            const st_entry_t *me = st_find(&f, name);
            if (!me) continue;
            if (!same_shape(me, p)) {
                seterr(err, errlen, "checkpoint '%s': tensor '%s' does not match the shape of '%s'", path, name, p->name);
                goto done;
            }
            memcpy(which ? p->v : p->m, me->data, p->numel * sizeof(float));
            moments++;
        }
    }
    size_t trainable = 0;
    for (int i = 0; i < pt->count; i++) trainable += pt->items[i]->trainable;
    if (moments != 0 && moments != (int)(2 * trainable)) {
        seterr(err, errlen, "checkpoint '%s': optimizer state is incomplete (%d of %zu moment tensors)", path, moments, 2 * trainable);
        goto done;
    }
    // The segment memory's state: memory.state.<i> (1-D) for blocks i that keep one, only in a memory
    // model's checkpoint with optimizer state. Its sizes depend on the run's batch: train.c checks them.
    int n_states = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const st_entry_t *e = &f.tensors[i];
        if (!is_mem_state(e->name)) continue;
        int b = mem_state_index(e->name, model_n_blocks(&out->model));
        const char *why = out->model.dims.memory == 0 ? "its config has no segment memory"
                          : b < 0                     ? "no block of its config has that index"
                          : !model_block(&out->model, b)->ops->mem_floats ? "that block keeps no memory"
                          : e->ndim != 1              ? "a memory state is 1-D"
                          : moments == 0              ? "the file has no optimizer state (the memory is training state)"
                                                      : NULL;
        if (why) {
            seterr(err, errlen, "checkpoint '%s' has tensor '%s', which it cannot hold: %s", path, shown(e->name).s, why);
            goto done;
        }
        if (!out->mem_state) {
            out->mem_blocks = model_n_blocks(&out->model);
            out->mem_state = xcalloc((size_t)out->mem_blocks, sizeof *out->mem_state);
            out->mem_floats = xcalloc((size_t)out->mem_blocks, sizeof *out->mem_floats);
        }
        out->mem_floats[b] = e->numel;
        out->mem_state[b] = xmalloc(e->numel * sizeof(float) + 1);
        memcpy(out->mem_state[b], e->data, e->numel * sizeof(float));
        n_states++;
    }
    // Every tensor in the file must be one we know: a stray one means a mismatched or foreign file.
    int known = pt->count + moments + n_states;
    if (f.n_tensors != known) {
        for (int i = 0; i < f.n_tensors; i++) {
            const char *name = f.tensors[i].name;
            const char *base = is_moment(name) ? name + 7 : name;
            if (!is_mem_state(name) && !params_find(pt, base)) {
                seterr(err, errlen, "checkpoint '%s' has tensor '%s', which its config (%s) does not use", path,
                       shown(name).s, shown(layers->valuestring).s);
                goto done;
            }
        }
    }
    out->has_optimizer = moments > 0;
    const char *ts = st_meta_get(&f, "train_state");
    out->train_state = ts ? xstrdup(ts) : NULL;
    rc = 0;
done:
    cJSON_Delete(cfg);
    st_free(&f);
    if (rc) {
        if (model_built) model_free(&out->model);
        tok_free(&out->tok);
        free_mem_state(out);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

void ckpt_free(ckpt_t *c) {
    model_free(&c->model);
    tok_free(&c->tok);
    free(c->train_state);
    free_mem_state(c);
    memset(c, 0, sizeof *c);
}

// block_source_t over one layer's prefix of an open safetensors file (for the blocks' init_from).
typedef struct {
    const st_file_t *f;
    char prefix[64];
} layer_source_t;

static const float *layer_source_find(const void *ctx, const char *name, const int64_t *shape, int ndim) {
    const layer_source_t *ls = ctx;
    char full[160];
    snprintf(full, sizeof full, "%s%s", ls->prefix, name);
    const st_entry_t *e = st_find(ls->f, full);
    if (!e || e->ndim != ndim) return NULL;
    for (int d = 0; d < ndim; d++)
        if (e->shape[d] != shape[d]) return NULL;
    return e->data;
}

int ckpt_init_from(const char *path, model_t *m, uint64_t seed, int *loaded, int *total, char *notes, size_t notes_len,
                   char *err, size_t errlen) {
    st_file_t f;
    if (st_read(path, &f, err, errlen)) return -1;
    const char *format = st_meta_get(&f, "format");
    if (!format || strcmp(format, "attnlab") != 0) {
        st_free(&f);
        return seterr(err, errlen, "--init-from '%s' is not an attnlab checkpoint", path);
    }
    if (check_finite(&f, path, err, errlen)) {
        st_free(&f);
        return -1;
    }
    *loaded = 0;
    *total = m->params.count;
    if (notes_len) notes[0] = 0;
    for (int i = 0; i < m->params.count; i++) {
        param_t *p = m->params.items[i];
        const st_entry_t *e = st_find(&f, p->name);
        if (e && same_shape(e, p)) {
            memcpy(p->data, e->data, p->numel * sizeof(float));
            (*loaded)++;
        }
    }
    // Then the blocks that convert from another kind's tensors (block.h init_from), in the model's
    // block walk (model_block: layer by layer, mixer before ffn; identity ffns have no tensors).
    int heads = 0, dim = 0, rc = 0;
    const char *cfg_text = st_meta_get(&f, "config");
    cJSON *cfg = cfg_text ? cJSON_Parse(cfg_text) : NULL;
    if (cfg && (json_int(cfg, "heads", 1, 1 << 12, &heads, path, err, errlen) ||
                json_int(cfg, "dim", 1, 1 << 16, &dim, path, err, errlen)))
        rc = -1;
    cJSON_Delete(cfg);
    for (int i = 0; rc == 0 && cfg_text && i < model_n_blocks(m); i++) {
        block_t *b = model_block(m, i);
        if (b->ops->identity || !b->ops->init_from) continue;
        layer_source_t ls = {.f = &f};
        snprintf(ls.prefix, sizeof ls.prefix, "layers.%d.%s.", i / 2, i % 2 ? "ffn" : "attn");
        block_source_t src = {.ctx = &ls, .find = layer_source_find, .heads = heads, .dim = dim};
        char msg[256] = "";
        int n = b->ops->init_from(b, &src, seed, msg, sizeof msg);
        if (n < 0) rc = seterr(err, errlen, "%s", msg);
        else if (n > 0) {
            *loaded += n;
            size_t len = notes_len ? strlen(notes) : 0;
            if (len + 1 < notes_len) snprintf(notes + len, notes_len - len, "%s%s", len ? "\n" : "", msg);
        }
    }
    st_free(&f);
    return rc;
}
