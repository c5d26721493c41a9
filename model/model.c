// model.c — the model loop: embeddings, pre-LN residual layers calling blocks through their vtables,
// final LayerNorm, tied logits, cross-entropy; its hand-written backward; incremental decoding.
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "model/ops.h"

// ---------------------------------------------------------------------------------------------
// build

// Configure blk as a block of kind ops (the registry's table; configure may specialise blk->ops).
static int configure_block(block_t *blk, const block_ops_t *ops, spec_block_t *spec, const model_t *m, int layer,
                           char *err, size_t errlen) {
    blk->ops = ops;
    blk->dims = &m->dims;
    blk->layer = layer;
    blk->priv = NULL;
    if (ops->configure(blk, spec, err, errlen)) return -1;
    return spec_check_unused(spec, block_where(blk), ops->options, err, errlen);
}

static int validate_dims(const model_dims_t *d, char *err, size_t errlen) {
    if (d->vocab < 1) return seterr(err, errlen, "vocabulary size must be positive");
    if (d->dim < 1) return seterr(err, errlen, "--dim must be positive, got %d", d->dim);
    if (d->heads < 1) return seterr(err, errlen, "--heads must be positive, got %d", d->heads);
    if (d->dim % d->heads) return seterr(err, errlen, "--heads %d does not divide --dim %d", d->heads, d->dim);
    if (d->ctx < 1) return seterr(err, errlen, "--ctx must be positive, got %d", d->ctx);
    if (!pos_scheme_name(d->pos)) return seterr(err, errlen, "unknown position scheme %d", (int)d->pos);
    if (d->pos == POS_REL && (d->rel_reach < 1 || (long)d->ctx + d->memory > d->rel_reach))
        return seterr(err, errlen, "--pos rel: ctx %d + memory %d reaches distances beyond the %d this model's "
                                   "relative keys attn.rel_k hold (trained ctx + memory)",
                      d->ctx, d->memory, d->rel_reach);
    return 0;
}

const char *pos_scheme_name(pos_scheme_t p) {
    switch (p) {
    case POS_LEARNED: return "learned";
    case POS_ROPE: return "rope";
    case POS_NONE: return "none";
    case POS_REL: return "rel";
    }
    return NULL;
}

int pos_scheme_parse(const char *s, pos_scheme_t *out) {
    static const pos_scheme_t all[] = {POS_LEARNED, POS_ROPE, POS_NONE, POS_REL};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (s && strcmp(s, pos_scheme_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    return -1;
}

int model_build_registry(model_t *m, const model_dims_t *dims, const char *layers_spec, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    m->dims = *dims;
    // --pos rel: attn.rel_k covers every distance a query can see, ctx + memory (kept when given: a
    // model rebuilt at another ctx from a trained one, cli/eval.c)
    if (m->dims.pos == POS_REL && m->dims.rel_reach == 0) m->dims.rel_reach = m->dims.ctx + m->dims.memory;
    if (m->dims.pos != POS_REL) m->dims.rel_reach = 0;
    if (validate_dims(&m->dims, err, errlen)) return -1;
    spec_layer_t *specs;
    int L;
    if (spec_parse(layers_spec, &specs, &L, err, errlen)) return -1;
    m->dims.n_layers = m->L = L;
    m->layers = xcalloc((size_t)L, sizeof *m->layers);
    params_init_table(&m->params);
    int C = m->dims.dim;
    // Embeddings N(0, 0.02²) with weight decay; LayerNorms weight 1, bias 0, no decay.
    const param_spec_t ln_weight = {.shape = {C}, .init = INIT_ONES}, ln_bias = {.shape = {C}, .init = INIT_ZEROS};
    m->wte = params_add(&m->params, "", "wte",
                        (param_spec_t){.shape = {m->dims.vocab, C}, .init = INIT_NORMAL, .std = 0.02f, .decay = 1});
    // The learned position table exists only for --pos learned (rope and none have no table: NULL).
    if (m->dims.pos == POS_LEARNED)
        m->wpe = params_add(&m->params, "", "wpe",
                            (param_spec_t){.shape = {m->dims.ctx, C}, .init = INIT_NORMAL, .std = 0.02f, .decay = 1});
    size_t spec_cap = 64 + (size_t)L * 160, spec_len = 0;
    m->spec = xcalloc(spec_cap, 1);
    int rc = -1;
    for (int l = 0; l < L; l++) {
        layer_t *ly = &m->layers[l];
        spec_layer_t *sl = &specs[l];
        const block_ops_t *mixer = block_find(sl->mixer.kind);
        if (!mixer || mixer->role != ROLE_MIXER) { block_unknown_kind_error(sl->mixer.kind, ROLE_MIXER, l, err, errlen); goto done; }
        // A mixer that implies its ffn (allattn: persistent memory in place of one) may not be given one.
        if (mixer->implied_ffn && sl->has_ffn) {
            seterr(err, errlen, "--layers: layer %d: %s replaces the ffn; remove '/%s'", l, mixer->kind, sl->ffn.kind);
            goto done;
        }
        if (!sl->has_ffn) strcpy(sl->ffn.kind, mixer->implied_ffn ? mixer->implied_ffn : "mlp");
        const block_ops_t *ffn = block_find(sl->ffn.kind);
        if (!ffn || ffn->role != ROLE_FFN) { block_unknown_kind_error(sl->ffn.kind, ROLE_FFN, l, err, errlen); goto done; }
        if (configure_block(&ly->mixer, mixer, &sl->mixer, m, l, err, errlen)) goto done;
        if (configure_block(&ly->ffn, ffn, &sl->ffn, m, l, err, errlen)) goto done;
        if (m->dims.pos == POS_REL && !ly->mixer.ops->rel_pos) {
            seterr(err, errlen, "--pos rel: %s has no learned relative positions (softmax, adaptive and allattn "
                                "have them); use --pos rope or none", block_where(&ly->mixer));
            goto done;
        }
        ly->has_ffn = !ly->ffn.ops->identity;

        // Registration order = arena and checkpoint order: ln1, the mixer's tensors, ln2, the ffn's.
        char layer_prefix[32], prefix[64];
        snprintf(layer_prefix, sizeof layer_prefix, "layers.%d.", l);
        ly->ln1w = params_add(&m->params, layer_prefix, "ln1.weight", ln_weight);
        ly->ln1b = params_add(&m->params, layer_prefix, "ln1.bias", ln_bias);
        snprintf(prefix, sizeof prefix, "%sattn.", layer_prefix);
        ly->mixer.ops->register_params(&ly->mixer, &m->params, prefix);
        if (ly->has_ffn) {
            ly->ln2w = params_add(&m->params, layer_prefix, "ln2.weight", ln_weight);
            ly->ln2b = params_add(&m->params, layer_prefix, "ln2.bias", ln_bias);
            snprintf(prefix, sizeof prefix, "%sffn.", layer_prefix);
            ly->ffn.ops->register_params(&ly->ffn, &m->params, prefix);
        }
        char mdesc[128], fdesc[128];
        ly->mixer.ops->describe(&ly->mixer, mdesc, sizeof mdesc);
        ly->ffn.ops->describe(&ly->ffn, fdesc, sizeof fdesc);
        // The resolved spec re-parses to the same model: an implied ffn is never written.
        if (mixer->implied_ffn)
            spec_len += (size_t)snprintf(m->spec + spec_len, spec_cap - spec_len, "%s%s", l ? "," : "", mdesc);
        else
            spec_len += (size_t)snprintf(m->spec + spec_len, spec_cap - spec_len, "%s%s/%s", l ? "," : "", mdesc, fdesc);
        CHECK(spec_len < spec_cap);
    }
    m->lnfw = params_add(&m->params, "", "lnf.weight", ln_weight);
    m->lnfb = params_add(&m->params, "", "lnf.bias", ln_bias);
    if (model_set_memory(m, m->dims.memory, err, errlen)) goto done;  // also at 0: check_memory (span vs ctx)
    rc = 0;
done:
    free(specs);
    if (rc) model_free(m);
    return rc;
}

int model_build(model_t *m, const model_dims_t *dims, const char *layers_spec, char *err, size_t errlen) {
    if (model_build_registry(m, dims, layers_spec, err, errlen)) return -1;
    params_allocate(&m->params);
    return 0;
}

void model_init_weights(model_t *m, rng_t *rng) { params_init_values(&m->params, rng); }

// ---------------------------------------------------------------------------------------------
// segment memory

int model_set_memory(model_t *m, int M, char *err, size_t errlen) {
    CHECK(m->acts == NULL);  // act sizes depend on it
    if (M < 0) return seterr(err, errlen, "--memory must be at least 0 (got %d)", M);
    if (M > 0 && m->dims.pos == POS_LEARNED)
        return seterr(err, errlen, "--memory needs relative positions: a learned position table restarts every "
                                   "segment, so memory keys would claim current positions; use --pos rope or --pos none");
    if (m->dims.pos == POS_REL && (long)m->dims.ctx + M > m->dims.rel_reach)
        return seterr(err, errlen, "--memory %d: with ctx %d it reaches distances beyond the %d this model's relative "
                                   "keys attn.rel_k hold (--pos rel: ctx + memory at most %d)",
                      M, m->dims.ctx, m->dims.rel_reach, m->dims.rel_reach);
    for (int i = 0; i < model_n_blocks(m); i++) {  // check_memory at M = 0 too (adaptive: span ≤ ctx)
        block_t *b = model_block(m, i);
        if (M > 0 && b->ops->role == ROLE_MIXER && !b->ops->mem_floats)
            return seterr(err, errlen, "--memory: %s has no segment memory", block_where(b));
        if (b->ops->check_memory && b->ops->check_memory(b, M, err, errlen)) return -1;
    }
    m->dims.memory = M;
    return 0;
}

int model_check_segments(model_t *m, int T, char *err, size_t errlen) {
    for (int i = 0; i < model_n_blocks(m); i++) {
        block_t *b = model_block(m, i);
        if (b->ops->check_segment && b->ops->check_segment(b, T, err, errlen)) return -1;
    }
    return 0;
}

void model_mem_init(seg_mem_t *mem, const model_t *m, int B) {
    CHECK(m->dims.memory > 0 && B > 0);
    memset(mem, 0, sizeof *mem);
    mem->M = m->dims.memory;
    mem->B = B;
    mem->advance = 1;
    mem->n_blocks = model_n_blocks(m);
    mem->state = xcalloc((size_t)mem->n_blocks, sizeof *mem->state);
    mem->floats = xcalloc((size_t)mem->n_blocks, sizeof *mem->floats);
    for (int i = 0; i < mem->n_blocks; i++) {
        const block_t *b = model_block(m, i);
        size_t n = b->ops->mem_floats ? b->ops->mem_floats(b, B) : 0;
        mem->floats[i] = n;
        mem->state[i] = n ? xalloc_floats(n) : NULL;
        if (n) memset(mem->state[i], 0, n * sizeof(float));
    }
}

void model_mem_clear(seg_mem_t *mem) {
    mem->n = 0;
    mem->pos0 = 0;
}

void model_mem_free(seg_mem_t *mem) {
    for (int i = 0; mem->state && i < mem->n_blocks; i++) free(mem->state[i]);
    free(mem->state);
    free(mem->floats);
    memset(mem, 0, sizeof *mem);
}

// ---------------------------------------------------------------------------------------------
// activation arena

void model_alloc_acts(model_t *m, int B, int T, float dropout) {
    CHECK(m->acts == NULL && B > 0 && T > 0 && T <= m->dims.ctx && dropout >= 0.0f && dropout < 1.0f);
    m->max_B = B;
    m->max_T = T;
    int C = m->dims.dim, V = m->dims.vocab;
    size_t BT = (size_t)B * T, BTC = BT * C;
    int drop = dropout > 0.0f;
    // First pass counts, second pass carves (the same code, so they cannot disagree).
    size_t scratch = 0;
    for (int i = 0; i < model_n_blocks(m); i++) {
        block_t *b = model_block(m, i);
        b->dropout_masks = drop;  // before the blocks size their act
        size_t s = b->ops->scratch_floats(b, B, T);
        scratch = s > scratch ? s : scratch;
    }
    float *base = NULL;
    size_t used = 0;
    for (int pass = 0; pass < 2; pass++) {
        used = 0;
#define CARVE(ptr, n)                                         \
    do {                                                      \
        size_t n_ = ((size_t)(n) + 15) & ~(size_t)15;         \
        if (pass) (ptr) = base + used;                        \
        used += n_;                                           \
    } while (0)
        for (int l = 0; l < m->L; l++) {
            layer_t *ly = &m->layers[l];
            CARVE(ly->res_in, BTC);
            CARVE(ly->ln1, BTC);
            CARVE(ly->ln1_mean, BT);
            CARVE(ly->ln1_rstd, BT);
            CARVE(ly->res_mid, BTC);
            if (drop) CARVE(ly->mask1, BTC);
            CARVE(ly->mixer_act, ly->mixer.ops->act_floats(&ly->mixer, B, T));
            if (ly->has_ffn) {
                CARVE(ly->ln2, BTC);
                CARVE(ly->ln2_mean, BT);
                CARVE(ly->ln2_rstd, BT);
                if (drop) CARVE(ly->mask2, BTC);
                CARVE(ly->ffn_act, ly->ffn.ops->act_floats(&ly->ffn, B, T));
            }
        }
        if (drop) CARVE(m->emb_mask, BTC);
        CARVE(m->res_out, BTC);
        CARVE(m->lnf, BTC);
        CARVE(m->lnf_mean, BT);
        CARVE(m->lnf_rstd, BT);
        CARVE(m->probs, BT * V);
        CARVE(m->losses, BT);
        CARVE(m->dres, BTC);
        CARVE(m->dln, BTC);
        CARVE(m->dbranch, BTC);
        CARVE(m->dlogits, BT * V);
        CARVE(m->scratch, scratch);
#undef CARVE
        if (!pass) base = m->acts = xalloc_floats(used);
    }
    m->tokens = xcalloc(BT, sizeof(int32_t));
    m->targets = xcalloc(BT, sizeof(int32_t));
}

// ---------------------------------------------------------------------------------------------
// forward

static void branch_dropout(float *branch, float *mask, size_t n, const run_ctx_t *rc) {
    if (!mask) return;
    dropout_forward(branch, mask, branch, rc->training ? rc->dropout : 0.0f, rc->rng, n);
}

float model_forward(model_t *m, const int32_t *tokens, const int32_t *targets, int B, int T, const run_ctx_t *rc) {
    CHECK(m->acts && B <= m->max_B && T <= m->max_T);
    seg_mem_t *mem = rc ? rc->mem : NULL;
    CHECK(!mem || (m->dims.memory > 0 && mem->B == B && mem->n_blocks == model_n_blocks(m) && mem->n >= 0 &&
                   mem->n <= mem->M && mem->n <= mem->pos0));
    m->last_has_mem = mem != NULL;
    if (mem) m->last_mem = *mem;  // backward sees the n and pos0 this forward ran with
    int C = m->dims.dim, V = m->dims.vocab, N = B * T;
    size_t BTC = (size_t)N * C;
    m->last_B = B;
    m->last_T = T;
    memcpy(m->tokens, tokens, (size_t)N * sizeof(int32_t));
    float *x = m->L ? m->layers[0].res_in : m->res_out;
    encoder_forward(x, tokens, m->wte->data, m->wpe ? m->wpe->data : NULL, B, T, C);
    branch_dropout(x, m->emb_mask, BTC, rc);
    float *branch = m->dbranch;  // the forward pass borrows the backward's branch buffer
    // Each residual add is fused with the LayerNorm that reads its sum (ln2, or the next layer's ln1,
    // or lnf): residual_layernorm_forward, the same bits as the add then the norm.
    if (m->L) {
        layer_t *ly = &m->layers[0];
        layernorm_forward(ly->ln1, ly->ln1_mean, ly->ln1_rstd, ly->res_in, ly->ln1w->data, ly->ln1b->data, N, C);
    } else {
        layernorm_forward(m->lnf, m->lnf_mean, m->lnf_rstd, m->res_out, m->lnfw->data, m->lnfb->data, N, C);
    }
    for (int l = 0; l < m->L; l++) {
        layer_t *ly = &m->layers[l], *next = l + 1 < m->L ? &m->layers[l + 1] : NULL;
        float *out = next ? next->res_in : m->res_out;
        float *nln = next ? next->ln1 : m->lnf, *nmean = next ? next->ln1_mean : m->lnf_mean;
        float *nrstd = next ? next->ln1_rstd : m->lnf_rstd;
        const float *nw = next ? next->ln1w->data : m->lnfw->data, *nb = next ? next->ln1b->data : m->lnfb->data;
        ly->mixer.ops->forward(&ly->mixer, branch, ly->ln1, ly->mixer_act, m->scratch, B, T, rc);
        branch_dropout(branch, ly->mask1, BTC, rc);
        if (ly->has_ffn) {
            residual_layernorm_forward(ly->res_mid, ly->ln2, ly->ln2_mean, ly->ln2_rstd, ly->res_in, branch,
                                       ly->ln2w->data, ly->ln2b->data, N, C);
            ly->ffn.ops->forward(&ly->ffn, branch, ly->ln2, ly->ffn_act, m->scratch, B, T, rc);
            branch_dropout(branch, ly->mask2, BTC, rc);
            residual_layernorm_forward(out, nln, nmean, nrstd, ly->res_mid, branch, nw, nb, N, C);
        } else {
            residual_layernorm_forward(ly->res_mid, nln, nmean, nrstd, ly->res_in, branch, nw, nb, N, C);
            memcpy(out, ly->res_mid, BTC * sizeof(float));
        }
    }
    matmul_forward(m->probs, m->lnf, m->wte->data, NULL, N, C, V);  // logits = lnf·wteᵀ (tied)
    if (mem && mem->advance) {  // the blocks have updated their states; the segment joins the memory
        mem->n = mem->n + T < mem->M ? mem->n + T : mem->M;
        mem->pos0 += T;
    }
    if (!targets) return 0.0f;
    memcpy(m->targets, targets, (size_t)N * sizeof(int32_t));
    crossentropy_forward(m->losses, m->probs, m->probs, targets, N, V);
    double sum = 0;
    int scored = 0;
    for (int n = 0; n < N; n++) {
        sum += m->losses[n];
        scored += targets[n] >= 0;
    }
    m->last_scored = scored;
    return scored ? (float)(sum / scored) : 0.0f;
}

// ---------------------------------------------------------------------------------------------
// backward: the forward in reverse. dres carries ∂loss/∂(residual stream) down the layers.

void model_backward(model_t *m, float loss_scale, const run_ctx_t *rc_in) {
    // The blocks' backward sees the memory as the forward used it (n, pos0 before advancing).
    run_ctx_t rc_mem;
    const run_ctx_t *rc = rc_in;
    if (m->last_has_mem) {
        CHECK(rc_in && rc_in->mem);
        rc_mem = *rc_in;
        rc_mem.mem = &m->last_mem;
        rc = &rc_mem;
    }
    int B = m->last_B, T = m->last_T, C = m->dims.dim, V = m->dims.vocab, N = B * T;
    size_t BTC = (size_t)N * C;
    // loss = (1/S) Σ_{n scored} losses[n] over the S scored rows (target ≥ 0; S = N without a mask):
    // a scored row's dloss is loss_scale/S, an unscored row's 0 (crossentropy_backward skips it).
    float *dloss = m->losses;  // per-row losses are no longer needed after forward's mean
    float row_scale = m->last_scored ? loss_scale / (float)m->last_scored : 0.0f;
    for (int n = 0; n < N; n++) dloss[n] = m->targets[n] >= 0 ? row_scale : 0.0f;
    memset(m->dlogits, 0, (size_t)N * V * sizeof(float));
    crossentropy_backward(m->dlogits, m->probs, m->targets, dloss, N, V);
    // logits = lnf·wteᵀ: dlnf = dlogits·wte, dwte += dlogitsᵀ·lnf
    memset(m->dln, 0, BTC * sizeof(float));
    matmul_backward(m->dln, m->wte->grad, NULL, m->dlogits, m->lnf, m->wte->data, N, C, V);
    memset(m->dres, 0, BTC * sizeof(float));
    layernorm_backward(m->dres, m->lnfw->grad, m->lnfb->grad, m->dln, m->res_out, m->lnfw->data, m->lnf_mean,
                       m->lnf_rstd, N, C);
    for (int l = m->L - 1; l >= 0; l--) {
        layer_t *ly = &m->layers[l];
        // out = res_mid + drop(ffn(LN2(res_mid))): dres flows to res_mid unchanged, plus through the branch.
        if (ly->has_ffn) {
            float *dbr = m->dbranch;
            if (ly->mask2) {
                for (size_t i = 0; i < BTC; i++) dbr[i] = m->dres[i] * ly->mask2[i];
            } else {
                dbr = m->dres;
            }
            memset(m->dln, 0, BTC * sizeof(float));
            ly->ffn.ops->backward(&ly->ffn, m->dln, dbr, ly->ln2, ly->ffn_act, m->scratch, B, T, rc);
            layernorm_backward(m->dres, ly->ln2w->grad, ly->ln2b->grad, m->dln, ly->res_mid, ly->ln2w->data,
                               ly->ln2_mean, ly->ln2_rstd, N, C);
        }
        // res_mid = res_in + drop(mixer(LN1(res_in)))
        float *dbr = m->dbranch;
        if (ly->mask1) {
            for (size_t i = 0; i < BTC; i++) dbr[i] = m->dres[i] * ly->mask1[i];
        } else {
            dbr = m->dres;
        }
        memset(m->dln, 0, BTC * sizeof(float));
        ly->mixer.ops->backward(&ly->mixer, m->dln, dbr, ly->ln1, ly->mixer_act, m->scratch, B, T, rc);
        layernorm_backward(m->dres, ly->ln1w->grad, ly->ln1b->grad, m->dln, ly->res_in, ly->ln1w->data, ly->ln1_mean,
                           ly->ln1_rstd, N, C);
    }
    // x0 = drop(wte[tok] + wpe[t])  (no wpe term for --pos rope / none)
    if (m->emb_mask)
        for (size_t i = 0; i < BTC; i++) m->dres[i] *= m->emb_mask[i];
    encoder_backward(m->wte->grad, m->wpe ? m->wpe->grad : NULL, m->dres, m->tokens, B, T, C);
}

float model_extra_loss(model_t *m, int add_grad) {
    float total = 0;
    for (int i = 0; i < model_n_blocks(m); i++) {
        block_t *b = model_block(m, i);
        if (b->ops->extra_loss) total += b->ops->extra_loss(b, add_grad);
    }
    return total;
}

void model_before_step(model_t *m, long step, rng_t *rng) {
    for (int i = 0; i < model_n_blocks(m); i++) {
        block_t *b = model_block(m, i);
        if (b->ops->before_step) b->ops->before_step(b, step, rng);
    }
}

void model_after_step(model_t *m, long step, rng_t *rng) {
    for (int i = 0; i < model_n_blocks(m); i++) {
        block_t *b = model_block(m, i);
        if (b->ops->after_step) b->ops->after_step(b, step, rng);
    }
}

int model_stats_begin(model_t *m) {
    int n = 0;
    for (int i = 0; i < model_n_blocks(m); i++) {
        block_t *b = model_block(m, i);
        if (b->ops->stats_begin) {
            b->ops->stats_begin(b);
            n++;
        }
    }
    return n;
}

void model_stats_print(model_t *m, FILE *f, const char *prefix) {
    for (int i = 0; i < model_n_blocks(m); i++) {
        block_t *b = model_block(m, i);
        if (!b->ops->stats_report) continue;
        char buf[512];
        b->ops->stats_report(b, buf, sizeof buf);
        if (buf[0]) fprintf(f, "%s%s\n", prefix, buf);
    }
}

void model_free(model_t *m) {
    // Also after a failed build: blocks never configured have no ops (and no priv).
    for (int i = 0; m->layers && i < model_n_blocks(m); i++) {
        block_t *b = model_block(m, i);
        if (b->ops && b->ops->free_priv) b->ops->free_priv(b);
        free(b->priv);
    }
    free(m->layers);
    free(m->spec);
    params_free(&m->params);
    free(m->acts);
    free(m->tokens);
    free(m->targets);
    memset(m, 0, sizeof *m);
}

// ---------------------------------------------------------------------------------------------
// incremental decoding: the same math as model_forward for one new position, reading the blocks'
// caches for the earlier ones.

void decode_init(decode_state_t *ds, const model_t *m) {
    memset(ds, 0, sizeof *ds);
    int C = m->dims.dim;
    size_t total = 0, scratch = 0;
    ds->cache_offset = xcalloc((size_t)model_n_blocks(m), sizeof(size_t));
    for (int i = 0; i < model_n_blocks(m); i++) {
        const block_t *b = model_block(m, i);
        ds->cache_offset[i] = total;
        total += b->ops->cache_floats(b);
        size_t s = b->ops->decode_scratch_floats(b);
        scratch = s > scratch ? s : scratch;
    }
    ds->cache = xalloc_floats(total);
    ds->x = xalloc_floats(3 * (size_t)C + scratch + m->dims.vocab + 2);
    ds->xn = ds->x + C;
    ds->y = ds->xn + C;
    ds->scratch = ds->y + C;
    ds->logits = ds->scratch + scratch;
    ds->mean_rstd = ds->logits + m->dims.vocab;
    ds->pos = 0;
}

void decode_reset(decode_state_t *ds) { ds->pos = 0; }

// Streaming past ctx: when every mixer keeps constant-size state (block_ops_t.unbounded_decode, e.g.
// performer), positions may run past ctx; with --pos learned a position ≥ ctx embeds with wpe[ctx−1],
// the last learned position (the model never saw later ones); with rope or none there is no table
// and the mixers rotate at the true position. Mixers and ffns always receive the true position.
// Otherwise pos < ctx is required: callers slide their window and restart.
const float *decode_step(model_t *m, decode_state_t *ds, int32_t token) {
    int C = m->dims.dim, pos = ds->pos, unbounded = m->L > 0;
    for (int l = 0; l < m->L; l++) unbounded &= m->layers[l].mixer.ops->unbounded_decode;
    unbounded |= m->dims.memory > 0;  // segment memory: pos is the stream position, the blocks window it
    CHECK(pos >= 0 && (unbounded || pos < m->dims.ctx) && token >= 0 && token < m->dims.vocab);
    float *x = ds->x;
    const float *e = m->wte->data + (size_t)token * C;
    if (m->wpe) {
        int epos = pos < m->dims.ctx ? pos : m->dims.ctx - 1;
        const float *p = m->wpe->data + (size_t)epos * C;
        for (int c = 0; c < C; c++) x[c] = e[c] + p[c];
    } else {
        memcpy(x, e, (size_t)C * sizeof(float));
    }
    for (int l = 0; l < m->L; l++) {
        layer_t *ly = &m->layers[l];
        layernorm_forward(ds->xn, ds->mean_rstd, ds->mean_rstd + 1, x, ly->ln1w->data, ly->ln1b->data, 1, C);
        ly->mixer.ops->decode_step(&ly->mixer, ds->y, ds->xn, pos, ds->cache + ds->cache_offset[2 * l], ds->scratch);
        for (int c = 0; c < C; c++) x[c] += ds->y[c];
        if (ly->has_ffn) {
            layernorm_forward(ds->xn, ds->mean_rstd, ds->mean_rstd + 1, x, ly->ln2w->data, ly->ln2b->data, 1, C);
            ly->ffn.ops->decode_step(&ly->ffn, ds->y, ds->xn, pos, ds->cache + ds->cache_offset[2 * l + 1], ds->scratch);
            for (int c = 0; c < C; c++) x[c] += ds->y[c];
        }
    }
    layernorm_forward(ds->xn, ds->mean_rstd, ds->mean_rstd + 1, x, m->lnfw->data, m->lnfb->data, 1, C);
    matmul_forward(ds->logits, ds->xn, m->wte->data, NULL, 1, C, m->dims.vocab);
    ds->pos++;
    return ds->logits;
}

void decode_free(decode_state_t *ds) {
    free(ds->cache);
    free(ds->cache_offset);
    free(ds->x);
    memset(ds, 0, sizeof *ds);
}
