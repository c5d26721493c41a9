// registry.c — the list of built block kinds. A new kind: its file, and one line here.
#include <string.h>

#include "model/block.h"
#include "base/check.h"
#include <math.h>

extern const block_ops_t mixer_softmax_ops;
extern const block_ops_t mixer_adaptive_ops;
extern const block_ops_t mixer_allattn_ops;
extern const block_ops_t mixer_performer_ops;
extern const block_ops_t mixer_linformer_ops;
extern const block_ops_t mixer_collab_ops;
extern const block_ops_t mixer_shortconv_ops;
extern const block_ops_t ffn_mlp_ops;
extern const block_ops_t ffn_none_ops;
extern const block_ops_t ffn_pkm_ops;

static const block_ops_t *const registry[] = {
    &mixer_softmax_ops,
    &mixer_adaptive_ops,
    &mixer_allattn_ops,
    &mixer_performer_ops,
    &mixer_linformer_ops,
    &mixer_collab_ops,
    &mixer_shortconv_ops,
    &ffn_mlp_ops,
    &ffn_none_ops,
    &ffn_pkm_ops,
};

const block_ops_t *block_find(const char *kind) {
    for (size_t i = 0; i < sizeof registry / sizeof *registry; i++)
        if (strcmp(registry[i]->kind, kind) == 0) return registry[i];
    return NULL;
}

int block_kind_count(void) { return (int)(sizeof registry / sizeof *registry); }

const block_ops_t *block_kind_at(int i) { return i >= 0 && i < block_kind_count() ? registry[i] : NULL; }

static void list_kinds(block_role_t role, char *buf, size_t n) {
    buf[0] = 0;
    for (size_t i = 0; i < sizeof registry / sizeof *registry; i++) {
        if (registry[i]->role != role) continue;
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%s%s", len ? ", " : "", registry[i]->kind);
    }
}

int block_unknown_kind_error(const char *kind, block_role_t role, int layer, char *err, size_t errlen) {
    char mixers[256], ffns[256];
    list_kinds(ROLE_MIXER, mixers, sizeof mixers);
    list_kinds(ROLE_FFN, ffns, sizeof ffns);
    const block_ops_t *other = block_find(kind);
    if (other && other->role != role)
        return seterr(err, errlen, "--layers: layer %d: '%s' is %s, not %s (mixers: %s; ffns: %s)", layer, kind,
                      other->role == ROLE_MIXER ? "a mixer" : "an ffn", role == ROLE_MIXER ? "a mixer" : "an ffn",
                      mixers, ffns);
    return seterr(err, errlen, "--layers: layer %d: unknown %s kind '%s' (mixers: %s; ffns: %s)", layer,
                  role == ROLE_MIXER ? "mixer" : "ffn", kind, mixers, ffns);
}

float block_out_proj_std(const model_dims_t *dims) { return 0.02f / sqrtf(2.0f * (float)dims->n_layers); }
