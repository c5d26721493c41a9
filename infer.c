// infer.c — `infer`: generate text from a checkpoint (streamed, KV-cached), evaluate a file, or
// describe the checkpoint (ARCHITECTURE.md §6). Generated text alone goes to stdout; diagnostics
// to stderr.
//
// Generation past the context window: with learned absolute positions a cache cannot simply slide
// (every cached key was computed at its old position). When the window is full, the last ctx/2
// tokens are re-fed at positions 0 … ctx/2−1 and generation continues from there; so past the
// window, each ctx/2 new tokens cost ctx/2 extra cached steps (2× amortized), and every token
// still sees at least ctx/2 tokens of context. The same holds with --pos rope or none (the caches
// hold ctx positions). Models whose every mixer keeps constant-size state (Performer) never slide:
// past ctx, learned positions repeat wpe[ctx−1] and rope rotates at the true position. Nor do models
// with segment memory (config memory M > 0): decode_step takes the stream position, and each block
// shows a token what the segment-wise forward would (the memory before its segment of ctx, plus the
// segment so far; LONG_CONTEXT.md §2), so generation past ctx never re-feeds.
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/attn_map.h"
#include "cli/eval.h"
#include "cli/eval_report.h"
#include "cli/mqar_score.h"
#include "cli/runtime.h"
#include "cli/sampler.h"
#include "cli/spans_plot.h"
#include "data/dataset.h"
#include "data/shard.h"
#include "base/check.h"
#include "base/output_guard.h"
#include "checkpoint/checkpoint.h"
#include "model/model.h"

typedef struct {
    const char *prompt, *prompt_file, *eval, *export_vocab;
    long tokens, top_k, seed, threads, batch;
    double temperature, top_p;
    int info, spans;
    const char *spans_png;
    long stride, ctx;              // --eval: 0 = not given (windows mode; the trained ctx)
    long memory;                   // --eval: segment memory M for memory mode (given: flag "memory")
    int by_position;
    const char *by_position_out;
    const char *attn_map;          // --attn-map OUT.png ("" = not asked)
    long layer, head;              // --attn-map's layer and head
    int mqar_eval;                 // --mqar-eval: recall accuracy of a --task mqar model (docs/mqar.md)
    long mqar_len, mqar_pairs, mqar_seqs, mqar_seed;  // 0 / "" = the checkpoint's task, the held-out set
} opts_t;

enum { MAX_FLAGS = 32, TOKEN_BUF = 1 << 16 };  // TOKEN_BUF: the longest token generation writes

// The flag table, bound to the options the caller owns; returns the number of flags.
static int bind_flags(opts_t *o, flag_t out[MAX_FLAGS]) {
    const flag_t table[] = {
        {"prompt", FLAG_STR, &o->prompt, "", 0, 0, 0, "text to start from (default: a newline, or token 0)", 0},
        {"prompt-file", FLAG_STR, &o->prompt_file, "", 0, 0, 0, "read the prompt from this file", 0},
        {"tokens", FLAG_INT, &o->tokens, "500", 0, 1e12, 0, "tokens to generate", 0},
        {"temperature", FLAG_FLOAT, &o->temperature, "0.8", 0, 100, 0, "sampling temperature (0 = greedy)", 0},
        {"top-k", FLAG_INT, &o->top_k, "200", 1, 1 << 30, 0, "sample among the k most likely (>= vocab: no truncation)", 0},
        {"top-p", FLAG_FLOAT, &o->top_p, "1.0", 1e-9, 1, 0, "nucleus sampling mass (1 = off)", 0},
        {"seed", FLAG_INT, &o->seed, "1337", 0, 9e15, 0, "sampling seed", 0},
        {"eval", FLAG_STR, &o->eval, "", 0, 0, 0, "report loss, perplexity and bits per byte on this file (text or token shard)", 0},
        {"export-vocab", FLAG_STR, &o->export_vocab, "", 0, 0, 0, "write the vocabulary in tiktoken's format (base64 token, space, rank per line)", 0},
        {"batch", FLAG_INT, &o->batch, "16", 1, 4096, 0, "windows (--eval) or sequences (--mqar-eval) per forward pass", 0},
        {"stride", FLAG_INT, &o->stride, "", 1, 1 << 30, 0, "--eval: windows start S apart, each scoring its last S targets (1..ctx; default ctx)", 0},
        {"ctx", FLAG_INT, &o->ctx, "", 1, 1 << 20, 0, "--eval: window length (default: trained; longer only for --pos rope/none)", 0},
        {"memory", FLAG_INT, &o->memory, "", 0, 1 << 20, 0, "--eval: memory mode carrying N tokens (default: the checkpoint's memory; 0 = windows mode)", 0},
        {"by-position", FLAG_BOOL, &o->by_position, "", 0, 0, 0, "--eval: loss and bpb per bucket of visible context (table, CSV, PNG)", 0},
        {"by-position-out", FLAG_STR, &o->by_position_out, "by_position", 0, 0, 0, "--by-position writes PREFIX.csv and PREFIX.png", 0},
        {"info", FLAG_BOOL, &o->info, "", 0, 0, 0, "print config, parameter counts per layer, training state", 0},
        {"spans", FLAG_BOOL, &o->spans, "", 0, 0, 0, "print learned attention spans and write a PNG heatmap", 0},
        {"spans-png", FLAG_STR, &o->spans_png, "spans.png", 0, 0, 0, "where --spans writes its picture", 0},
        {"attn-map", FLAG_STR, &o->attn_map, "", 0, 0, 0, "draw one head's attention probabilities over --prompt to this PNG", 0},
        {"layer", FLAG_INT, &o->layer, "0", 0, 1 << 20, 0, "--attn-map: the layer", 0},
        {"head", FLAG_INT, &o->head, "0", 0, 1 << 20, 0, "--attn-map: the head", 0},
        {"mqar-eval", FLAG_BOOL, &o->mqar_eval, "", 0, 0, 0, "recall accuracy of a --task mqar model on held-out sequences", 0},
        {"mqar-len", FLAG_INT, &o->mqar_len, "", 4, 1 << 20, 0, "--mqar-eval: sequence length (default: trained; longer only for --pos rope/none)", 0},
        {"mqar-pairs", FLAG_INT, &o->mqar_pairs, "", 1, 1 << 18, 0, "--mqar-eval: key-value pairs (default: trained)", 0},
        {"mqar-seqs", FLAG_INT, &o->mqar_seqs, "256", 1, 1 << 20, 0, "--mqar-eval: sequences scored", 0},
        {"mqar-seed", FLAG_INT, &o->mqar_seed, "", 0, 9e15, 0, "--mqar-eval: seed of the scored set (default: train's held-out set)", 0},
        {"threads", FLAG_INT, &o->threads, "0", 0, 4096, 0, "threads (0 = all cores; generation uses 1)", 0},
    };
    return args_bind(out, MAX_FLAGS, table, (int)(sizeof table / sizeof *table));
}

static const char *USAGE =
    "usage: infer CKPT [--prompt TEXT | --prompt-file F] [--tokens N] [sampling options]\n"
    "       infer CKPT --eval FILE [--stride S | --memory M] [--ctx N] [--by-position [--by-position-out PREFIX]]\n"
    "       infer CKPT --mqar-eval [--mqar-len N] [--mqar-pairs D] [--mqar-seqs K] [--mqar-seed S]\n"
    "       infer CKPT --info\n"
    "       infer CKPT --spans\n"
    "       infer CKPT --export-vocab FILE\n"
    "       infer CKPT --attn-map OUT.png (--prompt TEXT | --prompt-file F) [--layer L] [--head H]";

// The prompt's bytes: --prompt-file's (exit 1 with one line when it cannot be read) or --prompt's.
static void read_prompt(const opts_t *o, uint8_t **text, size_t *text_n) {
    char err[1024];
    if (o->prompt_file[0]) {
        if (read_file_bytes(o->prompt_file, text, text_n, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
    } else {
        *text_n = strlen(o->prompt);
        *text = xmalloc(*text_n + 1);
        memcpy(*text, o->prompt, *text_n);
    }
}

// The prompt's tokens (exit 2 with one line when it has a character the vocabulary lacks).
static void encode_prompt(const tokenizer_t *tok, const uint8_t *text, size_t text_n, int32_t **ids, size_t *n) {
    char err[1024];
    if (tok_encode(tok, text, text_n, ids, n, "prompt", err, sizeof err)) die(EXIT_USAGE, "%s", err);
}

// ---------------------------------------------------------------------------------------------
// generation

static int generate(ckpt_t *c, const opts_t *o) {
    model_t *m = &c->model;
    tokenizer_t *tok = &c->tok;
    char err[1024];
    uint8_t *text;
    size_t text_n;
    read_prompt(o, &text, &text_n);
    int32_t *prompt;
    size_t n_prompt;
    encode_prompt(tok, text, text_n, &prompt, &n_prompt);
    if (n_prompt == 0) {  // start from a newline when the vocabulary has one (nanoGPT's sample.py), else token 0
        int32_t *nl;
        size_t n_nl;
        free(prompt);
        if (tok_encode(tok, (const uint8_t *)"\n", 1, &nl, &n_nl, NULL, err, sizeof err) == 0 && n_nl == 1) {
            prompt = nl;
        } else {
            prompt = xcalloc(1, sizeof *prompt);
        }
        n_prompt = 1;
    } else {
        fwrite(text, 1, text_n, stdout);
    }
    free(text);
    cli_set_threads(1);  // one token at a time: threads cost more than they give
    decode_state_t ds;
    decode_init(&ds, m);
    int V = m->dims.vocab;
    gen_feed_t feed;  // slides the window of a model that does not stream (cli/sampler.h)
    gen_feed_init(&feed, m);
    sampler_t sampler;
    sampler_init(&sampler, &(sampler_cfg_t){.temperature = o->temperature, .top_k = o->top_k, .top_p = o->top_p}, V,
                 (uint64_t)o->seed);
    const float *logits = NULL;
    for (size_t i = 0; i < n_prompt; i++) logits = gen_feed(&feed, m, &ds, prompt[i]);
    double t0 = cli_now();
    for (long i = 0; i < o->tokens; i++) {
        int next = sampler_sample(&sampler, logits);
        uint8_t buf[TOKEN_BUF];
        CHECK(tok_max_token_bytes(tok) <= TOKEN_BUF);  // checked at load (main)
        fwrite(buf, 1, (size_t)tok_decode(tok, next, buf), stdout);
        fflush(stdout);
        if (i + 1 < o->tokens) logits = gen_feed(&feed, m, &ds, next);
    }
    double dt = cli_now() - t0;
    printf("\n");
    fflush(stdout);  // the text ends before the summary on stderr
    if (o->tokens > 0) fprintf(stderr, "generated %ld tokens in %.2fs (%.0f tokens/s)\n", o->tokens, dt, o->tokens / dt);
    free(prompt);
    gen_feed_free(&feed);
    sampler_free(&sampler);
    decode_free(&ds);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// --eval, --info, --spans

// --eval's mode (LONG_CONTEXT.md §3): --stride S gives stride mode; --memory M > 0 memory mode with M
// (the model's memory set to M: refused for learned positions); --memory 0 windows mode; otherwise a
// memory model's checkpoint memory gives memory mode, and a memory-free model windows mode. Windows
// and stride modes start every window empty, also on a memory model. Returns the memory M (0 unless
// memory mode).
static int eval_mode(ckpt_t *c, const opts_t *o, int memory_given, eval_mode_t *mode) {
    char err[512];
    if (o->stride && memory_given && o->memory > 0)
        die(EXIT_USAGE, "infer: --stride and --memory %ld exclude each other (stride mode starts every window empty; "
            "--memory 0 --stride S is stride mode)", o->memory);
    int M = memory_given ? (int)o->memory : c->model.dims.memory;
    if (memory_given && M != c->model.dims.memory && model_set_memory(&c->model, M, err, sizeof err))
        die(EXIT_USAGE, "infer: %s", err);
    *mode = o->stride ? EVAL_STRIDE : M > 0 ? EVAL_MEMORY : EVAL_WINDOWS;
    return *mode == EVAL_MEMORY ? M : 0;
}

// --eval: windows, stride or memory mode (data/eval_plan.h; eval_mode above) at the trained ctx or --ctx
// N; --by-position adds the table on stdout after the summary line, PREFIX.csv and PREFIX.png (checked
// and locked first). A memory model, or --memory, gets one line on stderr naming the mode used.
static int evaluate(ckpt_t *c, const char *ckpt_path, const opts_t *o, int memory_given) {
    const char *path = o->eval;
    char err[1024];
    char *csv = NULL, *png = NULL;
    if (o->by_position) {
        size_t plen = strlen(o->by_position_out) + 8;
        csv = xmalloc(plen);
        png = xmalloc(plen);
        snprintf(csv, plen, "%s.csv", o->by_position_out);
        snprintf(png, plen, "%s.png", o->by_position_out);
        io_path_t outs[] = {{"--by-position-out (CSV)", csv, OUT_IN_PLACE}, {"--by-position-out (PNG)", png, OUT_IN_PLACE}};
        io_path_t ins[] = {{"the checkpoint", ckpt_path, 0}, {"--eval", path, 0}};
        if (output_check(outs, 2, ins, 2, err, sizeof err) || output_lock(outs[0].what, csv, err, sizeof err) ||
            output_lock(outs[1].what, png, err, sizeof err))
            die(EXIT_RUNTIME, "infer: %s", err);
    }
    int32_t *tokens;
    size_t n_tok;
    if (shard_is_shard(path)) {  // a token shard: made by the checkpoint's tokenizer, read whole
        char whose[1100];
        snprintf(whose, sizeof whose, "the checkpoint '%s'", ckpt_path);
        if (dataset_read_shard(path, &c->tok, whose, &tokens, &n_tok, err, sizeof err))
            die(strstr(err, "another tokenizer") ? EXIT_USAGE : EXIT_RUNTIME, "infer: %s", err);
    } else {
        uint8_t *text;
        size_t n;
        if (read_file_bytes(path, &text, &n, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
        char what[512];
        snprintf(what, sizeof what, "'%s'", path);
        if (tok_encode(&c->tok, text, n, &tokens, &n_tok, what, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
        free(text);
    }
    if (n_tok < 2) die(EXIT_RUNTIME, "'%s' has %zu tokens; evaluation needs at least 2", path, n_tok);
    int trained = c->model.dims.ctx, ctx = o->ctx ? (int)o->ctx : trained, had_memory = c->model.dims.memory;
    eval_mode_t mode;
    int M = eval_mode(c, o, memory_given, &mode);
    eval_plan_t plan;
    if (eval_plan_init(&plan, mode, n_tok, ctx, (int)o->stride, M, err, sizeof err))
        die(EXIT_USAGE, "infer: %s", err);
    char mode_desc[256];
    if (mode == EVAL_MEMORY) snprintf(mode_desc, sizeof mode_desc, "memory mode: one stream in segments of %d tokens, memory %d", ctx, M);
    else if (mode == EVAL_STRIDE) snprintf(mode_desc, sizeof mode_desc, "stride mode: windows of %d tokens, %ld apart, each starting empty", ctx, o->stride);
    else snprintf(mode_desc, sizeof mode_desc, "windows mode: windows of %d tokens, each starting empty", ctx);
    // Longer than trained: the same weights in a model built for ctx (refused for learned positions,
    // and past --pos rel's reach: before the mode line, so that a refusal is the only line).
    model_t wide, *m = &c->model;
    if (ctx > trained) {
        if (eval_model_at_ctx(&wide, &c->model, ctx, err, sizeof err)) die(EXIT_USAGE, "infer: %s", err);
        m = &wide;
    }
    if (mode == EVAL_MEMORY && M > 0 && model_check_segments(m, ctx, err, sizeof err)) die(EXIT_USAGE, "infer: --ctx %d: %s", ctx, err);
    if (had_memory || memory_given) fprintf(stderr, "infer: %s\n", mode_desc);
    model_alloc_acts(m, mode == EVAL_MEMORY ? 1 : (int)o->batch, ctx, 0.0f);  // memory mode: one segment per forward
    eval_sums_t s;
    eval_buckets_t bk;
    int stats = model_stats_begin(m);  // pkm layers count slot usage over the pass
    eval_run_plan(m, &c->tok, tokens, &plan, &s, o->by_position ? &bk : NULL);
    printf("loss %.4f | ppl %.3f | bpb %.4f | tokens %zu\n", eval_loss(&s), exp(eval_loss(&s)), eval_bpb(&s), s.tokens);
    if (o->by_position) {
        eval_report_table(stdout, &bk);
        fflush(stdout);
        char title[1024];
        if (o->stride) snprintf(title, sizeof title, "%s: stride %ld, ctx %d", path, o->stride, ctx);
        else if (mode == EVAL_MEMORY) snprintf(title, sizeof title, "%s: memory %d, segments of %d", path, M, ctx);
        else snprintf(title, sizeof title, "%s: windows, ctx %d", path, ctx);
        if (eval_report_csv(csv, &bk, err, sizeof err) || eval_report_png(png, csv, title, err, sizeof err))
            die(EXIT_RUNTIME, "infer: %s", err);
        fprintf(stderr, "wrote %s and %s (loss by visible context)\n", csv, png);
        free(csv);
        free(png);
    }
    // stdout keeps its one line (the contract scripts parse); the memory-usage report is a diagnostic
    if (stats) {
        fflush(stdout);
        model_stats_print(m, stderr, "");
    }
    if (m == &wide) model_free(&wide);
    free(tokens);
    return 0;
}

// train_state.task of a --task mqar checkpoint ({"name":"mqar","len":N,"pairs":D,"vocab":V}, train.c):
// 0 and *out, or -1 when the checkpoint has none (or it is malformed).
static int stored_task(const ckpt_t *c, mqar_cfg_t *out) {
    cJSON *st = c->train_state ? cJSON_Parse(c->train_state) : NULL;
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(st, "task");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(task, "name"), *len = cJSON_GetObjectItemCaseSensitive(task, "len"),
                *pairs = cJSON_GetObjectItemCaseSensitive(task, "pairs");
    int ok = cJSON_IsString(name) && strcmp(name->valuestring, "mqar") == 0 && cJSON_IsNumber(len) && cJSON_IsNumber(pairs) &&
             len->valuedouble >= 4 && len->valuedouble <= MQAR_MAX_LEN && pairs->valuedouble >= 1 &&
             pairs->valuedouble <= MQAR_MAX_LEN;
    if (ok) *out = (mqar_cfg_t){.vocab = c->tok.vocab_size, .len = (int)len->valuedouble, .pairs = (int)pairs->valuedouble};
    cJSON_Delete(st);
    return ok ? 0 : -1;
}

// --mqar-eval: recall accuracy (argmax == answer, over the answer tokens only) and the answers' loss on
// --mqar-seqs sequences of the held-out set, at the trained length and pairs or those given; vocabulary:
// the checkpoint's raw ids. One line on stdout.
static int mqar_eval(ckpt_t *c, const opts_t *o, int seed_given) {
    mqar_cfg_t cfg;
    char err[512];
    if (stored_task(c, &cfg))
        die(EXIT_USAGE, "infer: --mqar-eval needs a model trained with --task mqar; this checkpoint has no task (a text model)");
    if (o->mqar_len) cfg.len = (int)o->mqar_len;
    if (o->mqar_pairs) cfg.pairs = (int)o->mqar_pairs;
    if (mqar_check(&cfg, err, sizeof err)) die(EXIT_USAGE, "infer: %s", err);
    model_t wide, *m = &c->model;
    if (cfg.len > m->dims.ctx && m->dims.pos == POS_LEARNED)
        die(EXIT_USAGE, "infer: --mqar-len %d exceeds the trained length %d, and this model's learned position table has "
            "%d rows (train with --pos rope or none to score longer sequences)", cfg.len, m->dims.ctx, m->dims.ctx);
    if (cfg.len > m->dims.ctx) {  // longer than trained: the same weights at that window (rope/none only)
        if (eval_model_at_ctx(&wide, &c->model, cfg.len, err, sizeof err)) die(EXIT_USAGE, "infer: %s", err);
        m = &wide;
    }
    int B = (int)(o->mqar_seqs < o->batch ? o->mqar_seqs : o->batch);  // sequences per forward (--batch)
    model_alloc_acts(m, B, cfg.len, 0.0f);
    int32_t *x = xmalloc((size_t)B * cfg.len * sizeof *x), *y = xmalloc((size_t)B * cfg.len * sizeof *y);
    uint64_t seed = seed_given ? (uint64_t)o->mqar_seed : MQAR_EVAL_SEED;
    mqar_score_t s = {0};
    mqar_score_set(m, &cfg, seed, (int)o->mqar_seqs, x, y, &s);
    printf("mqar length %d, pairs %d, vocab %d | recall accuracy %.4f (%ld of %ld answers) | answer loss %.4f | %ld sequences\n",
           cfg.len, cfg.pairs, cfg.vocab, mqar_accuracy(&s), s.correct, s.answers, mqar_loss(&s), o->mqar_seqs);
    free(x);
    free(y);
    if (m == &wide) model_free(&wide);
    return 0;
}

// --export-vocab: tiktoken's format, written to a temporary and renamed over FILE.
static int export_vocab(const ckpt_t *c, const char *ckpt_path, const char *path) {
    char err[1024], tmp[4200];
    io_path_t outs[] = {{"--export-vocab", path, OUT_REPLACED}}, ins[] = {{"the checkpoint", ckpt_path, 0}};
    if (output_check(outs, 1, ins, 1, err, sizeof err) || output_lock(outs[0].what, path, err, sizeof err))
        die(EXIT_RUNTIME, "infer: %s", err);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) die(EXIT_RUNTIME, "infer: cannot write --export-vocab '%s': %s", tmp, strerror(errno));
    if (tok_write_tiktoken(&c->tok, f) != 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        die(EXIT_RUNTIME, "infer: cannot write --export-vocab '%s': %s", path, strerror(e));
    }
    fprintf(stderr, "wrote %s (%d tokens, %s tokenizer, tiktoken format)\n", path, c->tok.vocab_size, tok_kind_name(c->tok.kind));
    return 0;
}

static int info(const ckpt_t *c, const char *path) {
    const model_t *m = &c->model;
    printf("checkpoint: %s\n", path);
    printf("model: d %d, heads %d, ctx %d, vocab %d, %d layers\n", m->dims.dim, m->dims.heads, m->dims.ctx, m->dims.vocab, m->L);
    printf("layers: %s\n", m->spec);
    printf("positions: %s\n", pos_scheme_name(m->dims.pos));
    if (m->dims.memory > 0) printf("segment memory: %d tokens\n", m->dims.memory);
    printf("tokenizer: %s (%d tokens)\n", tok_kind_name(c->tok.kind), c->tok.vocab_size);
    size_t per_layer_total = 0;
    printf("parameters:\n");
    size_t emb = 0, fin = 0;
    for (int i = 0; i < m->params.count; i++) {
        const param_t *p = m->params.items[i];
        if (strncmp(p->name, "layers.", 7) != 0 && p->trainable) {
            if (strncmp(p->name, "lnf.", 4) == 0) fin += p->numel;
            else emb += p->numel;
        }
    }
    printf("  embeddings (%s): %zu\n", m->wpe ? "wte, wpe" : "wte", emb);
    for (int l = 0; l < m->L; l++) {
        char prefix[32];
        int len = snprintf(prefix, sizeof prefix, "layers.%d.", l);
        size_t n = 0, buffers = 0;
        for (int i = 0; i < m->params.count; i++) {
            const param_t *p = m->params.items[i];
            if (strncmp(p->name, prefix, (size_t)len) != 0) continue;
            if (p->trainable) n += p->numel;
            else buffers += p->numel;
        }
        per_layer_total += n;
        printf("  layer %d (%s/%s): %zu", l, m->layers[l].mixer.ops->kind, m->layers[l].ffn.ops->kind, n);
        if (buffers) printf(" (+%zu buffer values)", buffers);
        printf("\n");
    }
    printf("  final LayerNorm: %zu\n  total trainable: %zu\n", fin, params_count_trainable(&m->params));
    printf("optimizer state: %s\n", c->has_optimizer ? "present (resumable)" : "absent (exported)");
    if (c->train_state) {
        cJSON *st = cJSON_Parse(c->train_state);
        if (st) {
            char *pretty = cJSON_Print(st);
            printf("training state: %s\n", pretty);
            free(pretty);
            cJSON_Delete(st);
        }
    }
    return 0;
}

// --spans: the table on stdout and the heatmap (cli/spans_plot.h), its colour scale 0 … max(ctx, memory),
// the longest span any layer can learn (a span is at most max(ctx, M): attn_span_check_memory).
static int spans(const ckpt_t *c, const char *ckpt_path, const char *png) {
    const model_t *m = &c->model;
    int H = m->dims.heads;
    float *grid = xcalloc((size_t)m->L * H, sizeof *grid);
    int any = 0;
    printf("%-6s", "layer");
    for (int h = 0; h < H; h++) printf(" head%-4d", h);
    printf("  mean\n");
    for (int l = 0; l < m->L; l++) {
        const block_t *b = &m->layers[l].mixer;
        int n = b->ops->spans ? b->ops->spans(b, grid + (size_t)l * H) : 0;
        if (n <= 0) {
            printf("%-6d (%s: no learned span)\n", l, b->ops->kind);
            for (int h = 0; h < H; h++) grid[(size_t)l * H + h] = -1;
            continue;
        }
        any = 1;
        float mean = 0;
        printf("%-6d", l);
        for (int h = 0; h < n; h++) {
            printf(" %8.1f", grid[(size_t)l * H + h]);
            mean += grid[(size_t)l * H + h] / n;
        }
        printf("  %6.1f\n", mean);
    }
    if (!any) {
        free(grid);
        die(EXIT_USAGE, "this checkpoint has no layer with a learned span (adaptive or allattn)");
    }
    char err[1024], title[1200];
    const char **kinds = xmalloc((size_t)m->L * sizeof *kinds);
    for (int l = 0; l < m->L; l++) kinds[l] = m->layers[l].mixer.ops->kind;
    int max_span = m->dims.memory > m->dims.ctx ? m->dims.memory : m->dims.ctx;
    snprintf(title, sizeof title, "learned attention spans (tokens): %s", ckpt_path);
    if (spans_plot_png(png, grid, m->L, H, kinds, max_span, title, err, sizeof err)) die(EXIT_RUNTIME, "infer: %s", err);
    free(kinds);
    fprintf(stderr, "wrote %s (rows: layers, columns: heads; colour: span in tokens, 0 to %d; grey: no span)\n", png, max_span);
    free(grid);
    return 0;
}

// --attn-map: how a token shows on the picture's axes: printable ASCII as itself, a space as U+2423, a
// newline or tab as \n or \t, any other single byte as \xNN; a multi-byte character (char tokenizer) as is.
static void token_label(const tokenizer_t *tok, int32_t id, char *out, size_t n) {
    uint8_t buf[8];
    int len = tok_decode(tok, id, buf);
    if (len == 1 && buf[0] == ' ') snprintf(out, n, "\u2423");
    else if (len == 1 && buf[0] == '\n') snprintf(out, n, "\\n");
    else if (len == 1 && buf[0] == '\t') snprintf(out, n, "\\t");
    else if (len == 1 && (buf[0] < 0x21 || buf[0] > 0x7e)) snprintf(out, n, "\\x%02X", buf[0]);
    else snprintf(out, n, "%.*s", len, (const char *)buf);
}

// --attn-map: the prompt as one window, the chosen head's probabilities drawn (cli/attn_map.h).
static int attention_map(ckpt_t *c, const char *ckpt_path, const opts_t *o) {
    model_t *m = &c->model;
    char err[1024];
    int32_t *tokens;
    size_t T;
    uint8_t *text;
    size_t text_n;
    read_prompt(o, &text, &text_n);
    encode_prompt(&c->tok, text, text_n, &tokens, &T);
    free(text);
    if (T == 0) die(EXIT_USAGE, "infer: --attn-map needs a prompt (--prompt TEXT or --prompt-file F) of at least one token");
    attn_map_t map;
    if (T > (size_t)m->dims.ctx)
        die(EXIT_USAGE, "infer: the prompt has %zu tokens; --attn-map covers one window of at most %d (ctx) tokens", T, m->dims.ctx);
    if (attn_map_compute(m, tokens, (int)T, (int)o->layer, (int)o->head, &map, err, sizeof err))
        die(EXIT_USAGE, "infer: %s", err);
    char **labels = xmalloc(T * sizeof *labels);
    for (size_t t = 0; t < T; t++) {
        labels[t] = xmalloc(16);
        token_label(&c->tok, tokens[t], labels[t], 16);
    }
    const block_t *b = &m->layers[o->layer].mixer;
    char title[1400];
    snprintf(title, sizeof title, "%s: layer %ld (%s), head %ld, %zu tokens", ckpt_path, o->layer, b->ops->kind, o->head, T);
    if (attn_map_png(o->attn_map, &map, (const char *const *)labels, title, err, sizeof err)) die(EXIT_RUNTIME, "infer: %s", err);
    fprintf(stderr, "wrote %s (layer %ld, head %ld: rows are queries, columns the keys they attend to%s)\n", o->attn_map,
            o->layer, o->head, map.E ? ", then the persistent slots" : "");
    for (size_t t = 0; t < T; t++) free(labels[t]);
    free(labels);
    attn_map_free(&map);
    free(tokens);
    return 0;
}

int main(int argc, char **argv) {
    opts_t o = {0};
    flag_t flags[MAX_FLAGS];
    int n_flags = bind_flags(&o, flags);
    const char *pos[2];
    int n_pos, want_help, want_version;
    args_parse(flags, n_flags, argc, argv, pos, 1, &n_pos, &want_help, &want_version, "infer");
    if (want_help) {
        args_print_help(flags, n_flags, USAGE);
        return 0;
    }
    if (want_version) {
        printf("attnlab infer %s\n", ATTNLAB_VERSION);
        return 0;
    }
    if (n_pos != 1) die(EXIT_USAGE, "infer: expected one checkpoint path (see --help)");
    int modes = (o.eval[0] != 0) + o.info + o.spans + (o.attn_map[0] != 0) + o.mqar_eval + (o.export_vocab[0] != 0);
    if (modes > 1) die(EXIT_USAGE, "infer: --eval, --info, --spans, --attn-map, --mqar-eval and --export-vocab exclude each other");
    int map_given = args_find(flags, n_flags, "attn-map")->given;
    if (map_given && !o.attn_map[0]) die(EXIT_USAGE, "infer: --attn-map needs an output path (OUT.png)");
    if (!map_given && (args_find(flags, n_flags, "layer")->given || args_find(flags, n_flags, "head")->given))
        die(EXIT_USAGE, "infer: --%s needs --attn-map OUT.png", args_find(flags, n_flags, "layer")->given ? "layer" : "head");
    if (map_given && !o.prompt[0] && !o.prompt_file[0])
        die(EXIT_USAGE, "infer: --attn-map needs a prompt (--prompt TEXT or --prompt-file F)");
    static const char *const mqar_flags[] = {"mqar-len", "mqar-pairs", "mqar-seqs", "mqar-seed", NULL};
    for (const char *const *f = mqar_flags; *f && !o.mqar_eval; f++)
        if (args_find(flags, n_flags, *f)->given) die(EXIT_USAGE, "infer: --%s needs --mqar-eval", *f);
    if (args_find(flags, n_flags, "by-position-out")->given && !o.by_position)
        die(EXIT_USAGE, "infer: --by-position-out needs --by-position");
    int memory_given = args_find(flags, n_flags, "memory")->given;
    if (!o.eval[0] && (o.stride || o.ctx || o.by_position || memory_given))
        die(EXIT_USAGE, "infer: --%s needs --eval FILE",
            o.by_position ? "by-position" : o.stride ? "stride" : o.ctx ? "ctx" : "memory");
    if (o.prompt[0] && o.prompt_file[0]) die(EXIT_USAGE, "infer: give --prompt or --prompt-file, not both");
    cli_set_threads(o.threads);
    char err[1024];
    if (o.spans || o.attn_map[0]) {  // the PNG is written whole to a temporary and renamed over it
        io_path_t outs[] = {{o.spans ? "--spans-png" : "--attn-map", o.spans ? o.spans_png : o.attn_map, OUT_REPLACED}};
        io_path_t ins[] = {{"the checkpoint", pos[0], 0}, {"--eval", o.eval, 0}, {"--prompt-file", o.prompt_file, 0}};
        if (output_check(outs, 1, ins, 3, err, sizeof err)) die(EXIT_RUNTIME, "infer: %s", err);
    }
    ckpt_t c;
    if (ckpt_load(pos[0], &c, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
    // A synthetic task's model has raw ids and no text: text generation and --eval FILE make no sense.
    if (!tok_is_text(&c.tok) && !o.info && !o.spans && !o.mqar_eval)
        die(EXIT_USAGE, "infer: '%s' is a model of a synthetic task (raw ids, no text): use --mqar-eval or --info, not %s",
            pos[0], o.eval[0] ? "--eval" : o.export_vocab[0] ? "--export-vocab" : "text generation");
    if (tok_is_text(&c.tok) && tok_max_token_bytes(&c.tok) > TOKEN_BUF)
        die(EXIT_RUNTIME, "checkpoint '%s': its longest token has %d bytes; infer handles up to %d", pos[0], tok_max_token_bytes(&c.tok), TOKEN_BUF);
    int rc;
    if (o.mqar_eval) rc = mqar_eval(&c, &o, args_find(flags, n_flags, "mqar-seed")->given);
    else if (o.export_vocab[0]) rc = export_vocab(&c, pos[0], o.export_vocab);
    else if (o.eval[0]) rc = evaluate(&c, pos[0], &o, memory_given);
    else if (o.info) rc = info(&c, pos[0]);
    else if (o.spans) rc = spans(&c, pos[0], o.spans_png);
    else if (o.attn_map[0]) rc = attention_map(&c, pos[0], &o);
    else rc = generate(&c, &o);
    ckpt_free(&c);
    return rc;
}
