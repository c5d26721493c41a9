// train.c — `train`: trains a decoder-only Transformer on a text file (ARCHITECTURE.md §6).
// Flow: flags → (export | set up the run: resume or fresh model, data, log) → steps of
// forward/backward/clip/AdamW, each followed by its reports (progress line, periodic evaluation,
// atomic checkpoint) → finish: final evaluation on the whole validation split, last checkpoint.
// The stages are functions over one explicit run state (train_t); the options live in main.
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/eval.h"
#include "cli/eval_report.h"
#include "cli/mqar_score.h"
#include "cli/load_watch.h"
#include "cli/thread_tuner.h"
#include "cli/runtime.h"
#include "cli/schedule.h"
#include "data/dataset.h"
#include "data/mqar.h"
#include "data/mqar_mix.h"
#include "data/shard.h"
#include "data/streams.h"
#include "dist/dist.h"
#include "dist/grad_sync.h"
#include "base/check.h"
#include "base/output_guard.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/safetensors.h"
#include "model/model.h"
#include "model/optim.h"
#include "tokenizer/tokenizer.h"

// ---------------------------------------------------------------------------------------------
// flags

typedef struct {
    const char *layers, *tokenizer, *out, *log, *resume, *init_from, *pos, *final_eval, *task, *val, *tokenizer_from,
        *by_position, *mqar_mix;
    long dim, heads, ctx, batch, steps, warmup, grad_accum, eval_every, eval_batches, save_every, seed, threads,
        stop_after, log_every, memory, stream_chunk, mqar_len, mqar_pairs, mqar_vocab, mqar_eval_seqs, vocab;
    double lr, min_lr, weight_decay, beta1, beta2, grad_clip, dropout, time_budget;
    int list_kinds, init_partial, streams, eval_at_start, check, prepare;
} opts_t;

enum { MAX_FLAGS = 48 };

// --list-kinds: one line per registered block kind, "KIND ROLE EXAMPLE..." separated by single
// spaces (ROLE is mixer or ffn; each EXAMPLE is a small spec of that block alone, without
// whitespace, from block_ops_t.examples), then exit 0. The script tests read it.
static int print_kinds(void) {
    for (int k = 0; k < block_kind_count(); k++) {
        const block_ops_t *ops = block_kind_at(k);
        printf("%s %s", ops->kind, ops->role == ROLE_MIXER ? "mixer" : "ffn");
        for (const char *const *e = ops->examples; e && *e; e++) printf(" %s", *e);
        printf("\n");
    }
    return 0;
}

// The flag table, bound to the options the caller owns; returns the number of flags.
static int bind_flags(opts_t *o, flag_t out[MAX_FLAGS]) {
    const flag_t table[] = {
        {"layers", FLAG_STR, &o->layers, "4*softmax/mlp", 0, 0, 1, "layer spec: mixer[(opt=v,..)][/ffn[(..)]], N* repeats", 0},
        {"dim", FLAG_INT, &o->dim, "128", 1, 65536, 1, "model width d", 0},
        {"heads", FLAG_INT, &o->heads, "4", 1, 4096, 1, "attention heads (must divide dim)", 0},
        {"ctx", FLAG_INT, &o->ctx, "64", 1, 1 << 20, 1, "context length T", 0},
        // Not stored in train_state: the checkpoint's config keeps it (absent = learned).
        {"pos", FLAG_STR, &o->pos, "learned", 0, 0, 0, "positions: learned (table wpe) | rope (rotary q/k) | none | rel (learned relative keys)", 0},
        // Not stored in train_state either: the config keeps it (absent = 0).
        {"memory", FLAG_INT, &o->memory, "0", 0, 1 << 20, 0, "segment memory in tokens (0 = none; needs --pos rope or none)", 0},
        {"streams", FLAG_BOOL, &o->streams, "", 0, 0, 0, "read the training split as --batch contiguous streams, as --memory does (implied by it)", 0},
        {"stream-chunk", FLAG_INT, &o->stream_chunk, "0", 0, 1e15, 1, "with --memory or --streams: each row reads a shuffled chunk of this many tokens, all rows jumping to new chunks together (0 = --batch contiguous streams)", 0},
        {"batch", FLAG_INT, &o->batch, "12", 1, 1 << 20, 1, "sequences per micro-batch B", 0},
        {"steps", FLAG_INT, &o->steps, "2000", 1, 1e12, 1, "optimizer steps (the schedule's length)", 0},
        {"lr", FLAG_FLOAT, &o->lr, "1e-3", 0, 10, 1, "peak learning rate", 0},
        {"min-lr", FLAG_FLOAT, &o->min_lr, "1e-4", 0, 10, 1, "final learning rate of the cosine decay", 0},
        {"warmup", FLAG_INT, &o->warmup, "100", 0, 1e12, 1, "linear warmup steps", 0},
        {"weight-decay", FLAG_FLOAT, &o->weight_decay, "0.1", 0, 10, 1, "AdamW decoupled weight decay (matrices only)", 0},
        {"beta1", FLAG_FLOAT, &o->beta1, "0.9", 0, 0.999999, 1, "AdamW beta1", 0},
        {"beta2", FLAG_FLOAT, &o->beta2, "0.99", 0, 0.999999, 1, "AdamW beta2", 0},
        {"grad-clip", FLAG_FLOAT, &o->grad_clip, "1.0", 0, 1e9, 1, "clip the global gradient norm to this (0 = off)", 0},
        {"grad-accum", FLAG_INT, &o->grad_accum, "1", 1, 1 << 20, 1, "micro-batches per optimizer step", 0},
        {"dropout", FLAG_FLOAT, &o->dropout, "0", 0, 0.99, 1, "dropout on embeddings, attention and residual branches", 0},
        {"tokenizer", FLAG_STR, &o->tokenizer, "byte", 0, 0, 1, "byte | char | bpe", 0},
        {"vocab", FLAG_INT, &o->vocab, "", 257, 1 << 20, 0, "--tokenizer bpe: vocabulary size (256 bytes + merges learned on the training split)", 0},
        {"val", FLAG_STR, &o->val, "", 0, 0, 1, "validation text or shard (replaces the last-10% split; kept by --resume, its tokens checked)", 0},
        {"prepare", FLAG_BOOL, &o->prepare, "", 0, 0, 0, "train --prepare TEXT OUT: tokenize TEXT into the token shard OUT and exit", 0},
        {"tokenizer-from", FLAG_STR, &o->tokenizer_from, "", 0, 0, 0, "--prepare: use the tokenizer of this checkpoint or shard", 0},
        {"eval-every", FLAG_INT, &o->eval_every, "250", 1, 1e12, 1, "steps between evaluations", 0},
        {"eval-batches", FLAG_INT, &o->eval_batches, "20", 1, 1 << 20, 1, "random validation batches per evaluation", 0},
        {"save-every", FLAG_INT, &o->save_every, "0", 0, 1e12, 0, "steps between checkpoints (0 = at every evaluation)", 0},
        {"seed", FLAG_INT, &o->seed, "1337", 0, 9e15, 1, "random seed (init, batches, dropout)", 0},
        {"threads", FLAG_INT, &o->threads, "0", 0, 4096, 0, "threads for OpenMP and OpenBLAS (0 = all cores)", 0},
        {"out", FLAG_STR, &o->out, "weights/model.safetensors", 0, 0, 0, "checkpoint path (with --resume: the resumed file)", 0},
        {"log", FLAG_STR, &o->log, "", 0, 0, 0, "CSV log path (header row; one row per report)", 0},
        // Not stored in train_state: it names an output, as --log does.
        {"by-position", FLAG_STR, &o->by_position, "", 0, 0, 0, "CSV of the final evaluation's loss by visible context (infer --by-position's columns)", 0},
        {"log-every", FLAG_INT, &o->log_every, "10", 1, 1e12, 1, "steps between progress lines", 0},
        {"resume", FLAG_STR, &o->resume, "", 0, 0, 0, "continue the run stored in this checkpoint", 0},
        {"stop-after", FLAG_INT, &o->stop_after, "0", 0, 1e12, 0, "stop and save at this step, keeping --steps' schedule", 0},
        {"init-from", FLAG_STR, &o->init_from, "", 0, 0, 0, "copy every tensor whose name and shape match from this checkpoint (and use its tokenizer)", 0},
        {"init-partial", FLAG_BOOL, &o->init_partial, "", 0, 0, 0, "allow --init-from to carry fewer attention/ffn tensors than the source has", 0},
        {"time-budget", FLAG_FLOAT, &o->time_budget, "0", 0, 1e9, 0, "stop training after this many seconds, the learning rate reaching --min-lr then (0 = none; kept by --resume)", 0},
        {"final-eval", FLAG_STR, &o->final_eval, "all", 0, 0, 0, "final evaluation: all (the whole validation split) | none | N (its first N tokens)", 0},
        {"eval-at-start", FLAG_BOOL, &o->eval_at_start, "", 0, 0, 0, "evaluate once before the first step (step 0)", 0},
        // A synthetic task in place of the text FILE (docs/mqar.md). Not stored as flags: train_state
        // keeps the task as its own key (task_to_json), and a task run is not resumed.
        {"task", FLAG_STR, &o->task, "", 0, 0, 0, "train on a synthetic task instead of a text FILE: mqar", 0},
        {"mqar-len", FLAG_INT, &o->mqar_len, "256", 4, 1 << 20, 0, "mqar: sequence length N (the run's ctx)", 0},
        {"mqar-pairs", FLAG_INT, &o->mqar_pairs, "16", 1, 1 << 18, 0, "mqar: key-value pairs D per sequence, each queried once", 0},
        {"mqar-vocab", FLAG_INT, &o->mqar_vocab, "512", 3, MQAR_MAX_VOCAB, 0, "mqar: vocabulary V (keys [1, V/2), values [V/2, V))", 0},
        {"mqar-mix", FLAG_STR, &o->mqar_mix, "", 0, 0, 0,
         "mqar: train on a mixture 'N:D[:W],...' of lengths, pairs and weights, as Zoology does (evaluation stays at --mqar-len, --mqar-pairs)", 0},
        {"mqar-eval-seqs", FLAG_INT, &o->mqar_eval_seqs, "256", 1, 1 << 20, 0, "mqar: held-out sequences scored at each evaluation", 0},
        {"list-kinds", FLAG_BOOL, &o->list_kinds, "", 0, 0, 0, "print each block kind as 'KIND ROLE EXAMPLE...' and exit", 0},
        {"check", FLAG_BOOL, &o->check, "", 0, 0, 0, "validate the flags, the text and the layer spec, print the parameter count and exit (trains and writes nothing)", 0},
    };
    return args_bind(out, MAX_FLAGS, table, (int)(sizeof table / sizeof *table));
}

static const char *USAGE =
    "usage: train FILE [options]            train a model on a text file\n"
    "       train SHARD... [options]        train on token shards (memory-mapped)\n"
    "       train --prepare TEXT OUT [--tokenizer byte|bpe --vocab N | --tokenizer-from CKPT|SHARD]\n"
    "                                       tokenize a text into a token shard\n"
    "       train --task mqar [options]     train on multi-query associative recall (docs/mqar.md)\n"
    "       train --export CKPT OUT         copy a checkpoint without its optimizer state";

// ---------------------------------------------------------------------------------------------
// small helpers

// Signals (SIGINT, SIGTERM): the first one says at once what will happen and lets the current step
// finish, then the run saves and exits 130; a second one exits 130 at once without saving (a save in
// progress leaves only its temporary, swept by the next run; the previous checkpoint is intact).
// The handler uses only async-signal-safe calls (write, _exit) and sig_atomic_t variables.
static volatile sig_atomic_t g_interrupted = 0;   // the first signal's number, 0 if none
static volatile sig_atomic_t g_step_running = 0;  // the step being computed (1-based), 0 outside steps
static volatile sig_atomic_t g_mpi_ranks = 1;     // MPI ranks of the run (the message differs when > 1)

static void say_signal_safe(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    ssize_t w = write(STDERR_FILENO, s, n);
    (void)w;
}

static void on_signal(int sig) {
    if (g_interrupted) {
        say_signal_safe("\ninterrupt: second signal, exiting now without saving (the last checkpoint is kept)\n");
        _exit(EXIT_INTERRUPTED);
    }
    g_interrupted = sig;
    long step = g_step_running;
    char digits[24];
    int n = 0;
    do digits[n++] = (char)('0' + step % 10); while ((step /= 10) > 0 && n < 20);
    char line[320] = "\ninterrupt: finishing ", *p = line;
    while (*p) p++;
    if (g_step_running > 0) {
        const char *w = "step ";
        while (*w) *p++ = *w++;
        while (n > 0) *p++ = digits[--n];
    } else {
        const char *w = "the current stage";
        while (*w) *p++ = *w++;
    }
    // MPI: every rank stops after the same step and rank 0 saves; but mpirun also sends this signal to the
    // others when a rank has died, and then kills them: the last checkpoint is what remains.
    const char *tail = g_mpi_ranks > 1 ? " with the other MPI ranks, then saving (if a rank died, mpirun ends the run now and the last "
                                         "checkpoint is kept)\n"
                                       : ", then saving; press Ctrl-C again to quit without saving\n";
    while (*tail) *p++ = *tail++;
    *p = 0;
    say_signal_safe(line);
}

static void rng_to_hex(const rng_t *r, char *buf, size_t n) {
    snprintf(buf, n, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, r->s[0], r->s[1], r->s[2], r->s[3]);
}
static int rng_from_hex(rng_t *r, const char *hex) {
    if (!hex || strlen(hex) != 64) return -1;
    for (int i = 0; i < 4; i++) {
        char part[17];
        memcpy(part, hex + 16 * i, 16);
        part[16] = 0;
        char *end;
        r->s[i] = strtoull(part, &end, 16);
        if (*end) return -1;
    }
    return 0;
}

static void fmt_eta(double s, char *buf, size_t n) {
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
}

// Every output checked against every input and the others, --out locked, dead runs' temporaries of
// --out swept (base/output_guard.h), before anything is read or trained: a bad path costs one line.
static void guard_outputs(opts_t *o, flag_t *flags, int n_flags, const char *file) {
    char err[1024];
    if (o->resume[0] && !args_find(flags, n_flags, "out")->given) o->out = o->resume;
    if (dist_rank() != 0) return;  // rank 0 alone writes (docs/mpi.md)
    io_path_t outs[] = {{"--out", o->out, OUT_REPLACED}, {"--log", o->log, OUT_IN_PLACE}, {"--by-position", o->by_position, OUT_IN_PLACE}};
    io_path_t ins[] = {{"the training file", file, 0}, {"--resume", o->resume, OUT_REPLACED}, {"--init-from", o->init_from, 0}, {"--val", o->val, 0}};
    if (output_check(outs, 3, ins, 4, err, sizeof err)) die(EXIT_RUNTIME, "train: %s", err);
    if (output_lock("--out", o->out, err, sizeof err)) die(EXIT_RUNTIME, "train: %s", err);
    if (o->by_position[0] && output_lock("--by-position", o->by_position, err, sizeof err)) die(EXIT_RUNTIME, "train: %s", err);
    int removed;
    if (output_remove_stale_temps(o->out, &removed, err, sizeof err)) die(EXIT_RUNTIME, "train: %s", err);
    if (removed)
        fprintf(stderr, "train: removed %d stale temporary file%s of '%s' left by killed runs\n", removed, removed == 1 ? "" : "s", o->out);
}

// ---------------------------------------------------------------------------------------------
// run state kept in the checkpoint

typedef struct {
    long step;          // completed optimizer steps
    long tokens_seen;
    rng_t data_rng, drop_rng;
    uint64_t data_hash;
    size_t data_bytes;
    // --val runs only (has_val): fnv1a64 of the validation token ids and their count, so that --resume
    // finds the same validation data at the stored path (the flag itself is stored).
    int has_val;
    uint64_t val_hash;
    size_t val_tokens;
    double elapsed;     // training seconds so far
    // --time-budget runs only (has_budget): the budget and the schedule's decay start (cli/schedule.h), so
    // that --resume keeps the budget and the clock-following decay where they were.
    int has_budget;
    double budget_s, decay_start_s;
    // Segment memory (a memory model only): where the streams stand and the memory's n and pos0, as
    // read from train_state (checked against the streams and the model in restore_memory) or as saved.
    int has_mem;
    double mem_offset, mem_n, mem_pos0;
    int has_cycle;        // --stream-chunk runs: the cycle the streams are in (train_state.stream_cycle)
    double stream_cycle;
    const mqar_cfg_t *task;  // a --task mqar run: the task (saved as train_state.task), else NULL
    const char *task_mix;    // its --mqar-mix ("" or NULL: none)
    int ranks;          // MPI ranks of the run (train_state.mpi_ranks, written when > 1; absent = 1)
} saved_t;

// train_state.task of a --task mqar run: {"name":"mqar","len":N,"pairs":D,"vocab":V} (infer --mqar-eval's
// defaults; docs/mqar.md), with "mix":"N:D[:W],..." when the training rows came from --mqar-mix.
static void task_to_json(const mqar_cfg_t *c, const char *mix, cJSON *st) {
    cJSON *task = cJSON_AddObjectToObject(st, "task");
    cJSON_AddStringToObject(task, "name", "mqar");
    cJSON_AddNumberToObject(task, "len", c->len);
    cJSON_AddNumberToObject(task, "pairs", c->pairs);
    cJSON_AddNumberToObject(task, "vocab", c->vocab);
    if (mix && mix[0]) cJSON_AddStringToObject(task, "mix", mix);
}

// The checkpoint's train_state: the stored flags and the saved state. Wall-clock time is kept only for
// --time-budget runs (it needs it to resume the budget); without it, two runs with the same seed and
// threads write byte-identical checkpoints.
static char *train_state_json(const saved_t *r, const flag_t *flags, int n_flags, int keep_elapsed) {
    cJSON *st = cJSON_CreateObject();
    args_to_json(flags, n_flags, st);
    cJSON_AddNumberToObject(st, "step", (double)r->step);
    cJSON_AddNumberToObject(st, "tokens_seen", (double)r->tokens_seen);
    char hex[80];
    rng_to_hex(&r->data_rng, hex, sizeof hex);
    cJSON_AddStringToObject(st, "rng_data", hex);
    rng_to_hex(&r->drop_rng, hex, sizeof hex);
    cJSON_AddStringToObject(st, "rng_dropout", hex);
    snprintf(hex, sizeof hex, "%016" PRIx64, r->data_hash);
    cJSON_AddStringToObject(st, "data_fnv1a64", hex);
    cJSON_AddNumberToObject(st, "data_bytes", (double)r->data_bytes);
    if (r->has_val) {
        snprintf(hex, sizeof hex, "%016" PRIx64, r->val_hash);
        cJSON_AddStringToObject(st, "val_fnv1a64", hex);
        cJSON_AddNumberToObject(st, "val_tokens", (double)r->val_tokens);
    }
    if (keep_elapsed) {
        cJSON_AddNumberToObject(st, "elapsed_s", r->elapsed);
        cJSON_AddNumberToObject(st, "time_budget_s", r->budget_s);
        cJSON_AddNumberToObject(st, "decay_start_s", r->decay_start_s);
    }
    if (r->task) task_to_json(r->task, r->task_mix, st);
    if (r->ranks > 1) cJSON_AddNumberToObject(st, "mpi_ranks", r->ranks);
    if (r->has_mem) {
        cJSON_AddNumberToObject(st, "memory_offset", r->mem_offset);
        cJSON_AddNumberToObject(st, "memory_n", r->mem_n);
        cJSON_AddNumberToObject(st, "memory_pos0", r->mem_pos0);
    }
    if (r->has_cycle) cJSON_AddNumberToObject(st, "stream_cycle", r->stream_cycle);
    char *s = cJSON_PrintUnformatted(st);
    cJSON_Delete(st);
    return s;
}

// Restore the stored flags (into the options the table is bound to) and the saved state.
static void restore_saved(const char *ckpt, const char *json, flag_t *flags, int n_flags, saved_t *r) {
    cJSON *st = json ? cJSON_Parse(json) : NULL;
    if (!st) die(EXIT_RUNTIME, "checkpoint '%s' has no training state to resume (exported or written by infer); use --init-from", ckpt);
    // Checkpoints written before --val was stored had no "val": they ran on the 90/10 split.
    if (!cJSON_GetObjectItem(st, "val")) cJSON_AddStringToObject(st, "val", "");
    // Nor "stream-chunk" before shuffled chunks existed: their streams were contiguous.
    if (!cJSON_GetObjectItem(st, "stream-chunk")) cJSON_AddNumberToObject(st, "stream-chunk", 0);
    // Model shape and data handling are fixed by the run; the schedule may be extended with --steps.
    args_from_json(flags, n_flags, st, "steps,eval-every,eval-batches,log-every", ckpt);
    const cJSON *step = cJSON_GetObjectItem(st, "step"), *tokens = cJSON_GetObjectItem(st, "tokens_seen"),
                *hash = cJSON_GetObjectItem(st, "data_fnv1a64"), *bytes = cJSON_GetObjectItem(st, "data_bytes"),
                *el = cJSON_GetObjectItem(st, "elapsed_s");
    if (!cJSON_IsNumber(step) || !cJSON_IsNumber(tokens) || !cJSON_IsString(hash) || !cJSON_IsNumber(bytes) ||
        rng_from_hex(&r->data_rng, cJSON_GetStringValue(cJSON_GetObjectItem(st, "rng_data"))) ||
        rng_from_hex(&r->drop_rng, cJSON_GetStringValue(cJSON_GetObjectItem(st, "rng_dropout"))))
        die(EXIT_RUNTIME, "checkpoint '%s': training state is incomplete or corrupted", ckpt);
    // Range-checked as doubles before any conversion (a stored 1e300 must not reach a cast).
    double v_step = step->valuedouble, v_tokens = tokens->valuedouble, v_bytes = bytes->valuedouble;
    if (!(v_step >= 0 && v_step <= 1e12 && v_step == floor(v_step)))
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.step is %.15g, not a step count in [0, 1e12]", ckpt, v_step);
    if (!(v_tokens >= 0 && v_tokens <= 9e15 && v_tokens == floor(v_tokens)))
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.tokens_seen is %.15g, not a count in [0, 9e15]", ckpt, v_tokens);
    if (!(v_bytes >= 1 && v_bytes <= 9007199254740992.0 && v_bytes == floor(v_bytes)))
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.data_bytes is %.15g, not a file size", ckpt, v_bytes);
    if (cJSON_IsNumber(el) && !(el->valuedouble >= 0 && el->valuedouble <= 1e12))
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.elapsed_s is %.15g, not a time in seconds", ckpt, el->valuedouble);
    if (strlen(hash->valuestring) != 16 || strspn(hash->valuestring, "0123456789abcdef") != 16)
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.data_fnv1a64 is not 16 hex digits", ckpt);
    // xoshiro256 never leaves the all-zero state: drawing from it would loop forever.
    const rng_t *rngs[2] = {&r->data_rng, &r->drop_rng};
    for (int i = 0; i < 2; i++)
        if (!(rngs[i]->s[0] | rngs[i]->s[1] | rngs[i]->s[2] | rngs[i]->s[3]))
            die(EXIT_RUNTIME, "checkpoint '%s': train_state.%s is all zeros, not a random generator state", ckpt,
                i == 0 ? "rng_data" : "rng_dropout");
    r->step = (long)v_step;
    r->tokens_seen = (long)v_tokens;
    r->data_hash = strtoull(hash->valuestring, NULL, 16);
    r->data_bytes = (size_t)v_bytes;
    r->elapsed = cJSON_IsNumber(el) ? el->valuedouble : 0;
    // The time budget and its decay start (written with elapsed_s); a negative decay start: still warming up.
    const cJSON *bud = cJSON_GetObjectItem(st, "time_budget_s"), *dst = cJSON_GetObjectItem(st, "decay_start_s");
    if (bud && !(cJSON_IsNumber(bud) && bud->valuedouble > 0 && bud->valuedouble <= 1e9))
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.time_budget_s is not a time in seconds in (0, 1e9]", ckpt);
    if (dst && !(cJSON_IsNumber(dst) && dst->valuedouble >= -1 && dst->valuedouble <= 1e12))
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.decay_start_s is not a time in seconds (or -1)", ckpt);
    r->has_budget = bud != NULL;
    r->budget_s = bud ? bud->valuedouble : 0;
    r->decay_start_s = dst ? dst->valuedouble : -1;
    // The segment memory's position: all three or none (checked against the model in restore_memory).
    const char *mem_keys[3] = {"memory_offset", "memory_n", "memory_pos0"};
    double *mem_vals[3] = {&r->mem_offset, &r->mem_n, &r->mem_pos0};
    int mem_found = 0;
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItem(st, mem_keys[i]);
        if (!v) continue;
        if (!cJSON_IsNumber(v)) die(EXIT_RUNTIME, "checkpoint '%s': train_state.%s is not a number", ckpt, mem_keys[i]);
        *mem_vals[i] = v->valuedouble;
        mem_found++;
    }
    if (mem_found != 0 && mem_found != 3)
        die(EXIT_RUNTIME, "checkpoint '%s': train_state has %d of the segment memory's memory_offset, memory_n, memory_pos0",
            ckpt, mem_found);
    r->has_mem = mem_found == 3;
    const cJSON *cyc = cJSON_GetObjectItem(st, "stream_cycle");
    if (cyc && !cJSON_IsNumber(cyc)) die(EXIT_RUNTIME, "checkpoint '%s': train_state.stream_cycle is not a number", ckpt);
    r->has_cycle = cyc != NULL;
    r->stream_cycle = cyc ? cyc->valuedouble : 0;
    // The validation data's hash and size (a --val run): both or neither, checked in load_data.
    const cJSON *vh = cJSON_GetObjectItem(st, "val_fnv1a64"), *vt = cJSON_GetObjectItem(st, "val_tokens");
    if ((vh != NULL) != (vt != NULL) ||
        (vh && (!cJSON_IsString(vh) || strlen(vh->valuestring) != 16 || strspn(vh->valuestring, "0123456789abcdef") != 16 ||
                !cJSON_IsNumber(vt) || !(vt->valuedouble >= 1 && vt->valuedouble <= 9e15 && vt->valuedouble == floor(vt->valuedouble)))))
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.val_fnv1a64 / val_tokens are incomplete or corrupted", ckpt);
    r->has_val = vh != NULL;
    r->val_hash = vh ? strtoull(vh->valuestring, NULL, 16) : 0;
    r->val_tokens = vt ? (size_t)vt->valuedouble : 0;
    cJSON_Delete(st);
}

// The restored flags against the model the checkpoint holds (each flag's own range was checked by
// args_from_json): the run's shape and its step and token counts must agree.
static void check_saved_against_model(const char *ckpt, const opts_t *o, const saved_t *r, const model_t *m,
                                      const tokenizer_t *tok) {
    const char *bad = NULL;
    long stored = 0, model = 0;
    if (o->ctx != m->dims.ctx) bad = "ctx", stored = o->ctx, model = m->dims.ctx;
    else if (o->dim != m->dims.dim) bad = "dim", stored = o->dim, model = m->dims.dim;
    else if (o->heads != m->dims.heads) bad = "heads", stored = o->heads, model = m->dims.heads;
    if (bad)
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.%s is %ld but the model's config has %s %ld", ckpt, bad, stored, bad, model);
    tok_kind_t kind;
    if (tok_kind_parse(o->tokenizer, &kind) || kind != tok->kind)
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.tokenizer is '%s' but the checkpoint's tokenizer is %s", ckpt,
            o->tokenizer, tok_kind_name(tok->kind));
    double per_step = (double)o->batch * (double)o->ctx * (double)o->grad_accum;
    if ((double)r->tokens_seen != (double)r->step * per_step)
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.tokens_seen is %ld, not step %ld x batch %ld x ctx %ld x grad-accum %ld",
            ckpt, r->tokens_seen, r->step, o->batch, o->ctx, o->grad_accum);
}

// ---------------------------------------------------------------------------------------------
// export

static int do_export(const char *src, const char *dst) {
    char err[1024];
    io_path_t outs[] = {{"export OUT", dst, OUT_REPLACED}}, ins[] = {{"export CKPT", src, 0}};
    if (output_check(outs, 1, ins, 1, err, sizeof err) || output_lock("export OUT", dst, err, sizeof err))
        die(EXIT_RUNTIME, "train: %s", err);
    ckpt_t c;
    if (ckpt_load(src, &c, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
    if (ckpt_save(dst, &c.model, &c.tok, c.train_state, 0, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
    printf("exported %s without optimizer state\ncheckpoint: %s\n", src, dst);
    ckpt_free(&c);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// prepare

// train --prepare TEXT OUT: the tokenizer from --tokenizer-from (a checkpoint's or a shard's), or
// byte, or bpe learned from TEXT's first floor(0.9 bytes) bytes (streamed, as the shard's split);
// then TEXT streamed into the shard OUT (data/shard.h).
static int do_prepare(opts_t *o, flag_t *flags, int n_flags, const char *const *pos, int n_pos) {
    static const char *const allowed[] = {"prepare", "tokenizer", "vocab", "tokenizer-from", "threads", NULL};
    for (int i = 0; i < n_flags; i++) {
        if (!flags[i].given) continue;
        int ok = 0;
        for (const char *const *a = allowed; *a; a++) ok |= strcmp(flags[i].name, *a) == 0;
        if (!ok) die(EXIT_USAGE, "train: --%s does not apply to --prepare (it takes --tokenizer, --vocab, --tokenizer-from)", flags[i].name);
    }
    if (n_pos != 2) die(EXIT_USAGE, "train: usage: train --prepare TEXT OUT [--tokenizer byte|bpe --vocab N | --tokenizer-from CKPT|SHARD]");
    const char *in = pos[0], *out = pos[1];
    char err[1024];
    io_path_t outs[] = {{"the shard", out, OUT_REPLACED}};
    io_path_t ins[] = {{"the text", in, 0}, {"--tokenizer-from", o->tokenizer_from, 0}};
    if (output_check(outs, 1, ins, 2, err, sizeof err) || output_lock("the shard", out, err, sizeof err)) die(EXIT_RUNTIME, "train: %s", err);
    int tok_given = args_find(flags, n_flags, "tokenizer")->given, vocab_given = args_find(flags, n_flags, "vocab")->given;
    tokenizer_t tok;
    double t0 = cli_now();
    if (o->tokenizer_from[0]) {
        if (tok_given || vocab_given) die(EXIT_USAGE, "train: --tokenizer-from gives the tokenizer; drop --%s", tok_given ? "tokenizer" : "vocab");
        if (shard_is_shard(o->tokenizer_from)) {
            shard_t sh;
            if (shard_open(&sh, o->tokenizer_from, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
            if (tok_copy(&tok, &sh.tok, err, sizeof err)) die(EXIT_RUNTIME, "shard '%s': %s", o->tokenizer_from, err);
            shard_close(&sh);
        } else {
            ckpt_t c;
            if (ckpt_load(o->tokenizer_from, &c, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
            if (tok_copy(&tok, &c.tok, err, sizeof err)) die(EXIT_RUNTIME, "checkpoint '%s': %s", o->tokenizer_from, err);
            ckpt_free(&c);
        }
    } else {
        tok_kind_t kind;
        if (tok_kind_parse(o->tokenizer, &kind)) die(EXIT_USAGE, "train: --tokenizer must be byte, char or bpe, got '%s'", o->tokenizer);
        if (kind == TOK_CHAR)
            die(EXIT_USAGE, "train: --prepare makes char shards only with --tokenizer-from a char checkpoint (its vocabulary is the run's)");
        if (vocab_given != (kind == TOK_BPE))
            die(EXIT_USAGE, "train: %s", kind == TOK_BPE ? "--tokenizer bpe needs --vocab N (the vocabulary size, at least 257)"
                                                          : "--vocab needs --tokenizer bpe");
        if (kind == TOK_BPE) {
            if (shard_learn_bpe(in, (int)o->vocab, &tok, err, sizeof err)) die(EXIT_RUNTIME, "train: '%s': %s", in, err);
            printf("learned %d bpe merges from the first 90%% of %s in %.1fs\n", tok.vocab_size - 256, in, cli_now() - t0);
        } else {
            tok_init_byte(&tok);
        }
    }
    uint64_t n;
    double t1 = cli_now();
    if (shard_prepare(in, out, &tok, &n, err, sizeof err)) die(EXIT_RUNTIME, "train: %s", err);
    printf("shard: %s | %llu tokens of %d bits | tokenizer %s, %d tokens | %.1fs\n", out, (unsigned long long)n,
           tok.vocab_size <= 65536 ? 16 : 32, tok_kind_name(tok.kind), tok.vocab_size, cli_now() - t1);
    tok_free(&tok);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// the run

typedef struct {
    FILE *log;             // --log CSV, or NULL
    const char *log_path;
    int log_failed;        // a write to the log failed: the run stops at this step and saves
    double t_interval;     // when the current progress interval began
    double interval_loss;  // sum of the interval's step losses
    long interval_steps;
    double last_gnorm;     // the last step's gradient norm (before clipping)
    double accuracy;       // the log's accuracy column for the next row (a task evaluation), else NAN
} report_t;

typedef struct {
    opts_t *o;             // the options, the stored ones restored on --resume
    flag_t *flags;         // the flag table bound to *o (the train_state JSON round trip)
    int n_flags;
    const char *file;      // the text trained on (or the first shard)
    const char *const *files;  // the shards trained on (n_files), or the one text
    int n_files;
    int resumed;
    ckpt_t ck;             // the resumed checkpoint (owns model and tokenizer when resumed)
    model_t fresh_model;   // ... or a fresh model and tokenizer
    tokenizer_t fresh_tok;
    st_file_t init_src;    // --init-from's file, read once, open from the tokenizer until the copy
    model_t *m;
    tokenizer_t *tok;
    dataset_t ds;
    saved_t saved;         // what the checkpoint keeps
    adamw_cfg_t acfg;
    pos_scheme_t pos;      // --pos (a resumed run: the checkpoint's)
    int memory;            // M: --memory (a resumed run: the checkpoint's); 0 = random windows, no memory
    int streams_on;        // memory > 0 or --streams: batches come from the streams, not random windows
    streams_t streams;     // streams_on: the training split as B streams read segment by segment
    seg_mem_t mem;         // memory > 0: the training streams' memory (B rows); evaluation has its own
    int task;              // 1: --task mqar (no text: batches from the generator, scored by recall accuracy)
    mqar_cfg_t mqar;       // the task's parameters
    mqar_mix_t mix;        // --mqar-mix: the training rows' mixture of settings (mix.n 0: every row is mqar)
    int B, T;
    long stop;             // the step this process stops at (--stop-after, else --steps)
    lr_schedule_t sched;   // the learning-rate schedule (--time-budget: following the clock too)
    long final_eval_tokens;  // --final-eval: -1 all, 0 none, else the first N validation targets
    int32_t *x, *y;        // one micro-batch's inputs and targets (B·T)
    double t_start;        // start of the timing segment not yet added to saved.elapsed
    load_watch_t watch;    // the warning when other processes take the cores (cli/load_watch.h)
    int tune;              // --threads 0 on one process: the thread count follows the load (tuner)
    thread_tuner_t tuner;  // (cli/thread_tuner.h)
    report_t rep;
    // MPI data parallel (docs/mpi.md): this rank reads the whole batch and computes rows [row0, row0 + rows)
    // of it (all B rows on one process); grad_sync sums the ranks' gradients.
    int rank, size, row0, rows;
    grad_sync_t sync;
} train_t;

// ---------------------------------------------------------------------------------------------
// set up the run

// A --task run (train_state.task) is not resumed: it is short, and its state holds no text to continue.
static void refuse_task_resume(const char *path, const char *train_state) {
    cJSON *st = train_state ? cJSON_Parse(train_state) : NULL;
    int is_task = cJSON_GetObjectItemCaseSensitive(st, "task") != NULL;
    cJSON_Delete(st);
    if (is_task) die(EXIT_USAGE, "train: '%s' holds a --task mqar run, which cannot be resumed; train it again", path);
}

// An MPI run resumes with the rank count it was trained with (train_state.mpi_ranks; absent = one
// process): the batches would be the same with another count, but each rank's dropout stream and the
// order of the gradient sums depend on it, so only the same count continues the run exactly.
static void check_resume_ranks(const char *path, const char *train_state) {
    cJSON *st = cJSON_Parse(train_state);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, "mpi_ranks");
    int bad = v && !(cJSON_IsNumber(v) && v->valuedouble >= 2 && v->valuedouble <= 1 << 20 && v->valuedouble == floor(v->valuedouble));
    int n = v && !bad ? (int)v->valuedouble : 1;
    cJSON_Delete(st);
    if (bad) die(EXIT_RUNTIME, "checkpoint '%s': train_state.mpi_ranks is not a rank count >= 2", path);
    if (n == dist_size()) return;
    if (n == 1) die(EXIT_USAGE, "train: the run in '%s' was trained as one process; resume it without mpirun (this run has %d ranks)", path, dist_size());
    die(EXIT_USAGE, "train: the run in '%s' was trained with %d MPI ranks and resumes only with as many (mpirun -np %d); this run has %d",
        path, n, n, dist_size());
}

// --resume: the checkpoint, read once, gives the model, the tokenizer, the stored flags and the state.
static void open_resumed(train_t *t) {
    const char *path = t->o->resume;
    char err[1024];
    if (ckpt_load(path, &t->ck, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
    if (!t->ck.has_optimizer) die(EXIT_RUNTIME, "checkpoint '%s' has no optimizer state (exported); use --init-from to start a new run from it", path);
    refuse_task_resume(path, t->ck.train_state);
    restore_saved(path, t->ck.train_state, t->flags, t->n_flags, &t->saved);
    check_resume_ranks(path, t->ck.train_state);
    check_saved_against_model(path, t->o, &t->saved, &t->ck.model, &t->ck.tok);
    t->m = &t->ck.model;
    t->tok = &t->ck.tok;
    t->resumed = 1;
}

// --final-eval: "all" (-1), "none" (0) or N >= 1 validation tokens (targets) to score; else exit 2.
static long parse_final_eval(const char *s) {
    if (strcmp(s, "all") == 0) return -1;
    if (strcmp(s, "none") == 0) return 0;
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (!*s || *end || errno || n < 1 || n > (long long)1e15 || s[0] == '+' || s[0] == ' ')
        die(EXIT_USAGE, "train: --final-eval must be all, none or a number of tokens >= 1, got '%s'", s);
    return (long)n;
}

// --task mqar (docs/mqar.md): the generator replaces the text, ctx is the sequence length. Refused in
// one line: an unknown task, a text or window flag with it (--tokenizer, --ctx, --eval-batches, --memory,
// --streams, --final-eval, --init-from), an mqar flag without it, and resuming (a task run is short; it is not resumed).
static void check_task_options(train_t *t) {
    opts_t *o = t->o;
    static const char *const task_flags[] = {"mqar-len", "mqar-pairs", "mqar-vocab", "mqar-eval-seqs", "mqar-mix", NULL};
    static const char *const text_flags[] = {"tokenizer", "ctx", "eval-batches", "memory", "streams", "final-eval", "init-from", "val", "vocab", NULL};
    if (!o->task[0]) {
        for (const char *const *f = task_flags; *f; f++)
            if (args_find(t->flags, t->n_flags, *f)->given) die(EXIT_USAGE, "train: --%s needs --task mqar", *f);
        return;
    }
    if (strcmp(o->task, "mqar") != 0) die(EXIT_USAGE, "train: --task must be mqar, got '%s'", o->task);
    if (t->resumed) die(EXIT_USAGE, "train: a --task mqar run cannot be resumed; train it again");  // (a text checkpoint)
    if (o->by_position[0]) die(EXIT_USAGE, "train: --by-position has no meaning with --task mqar (its sequences have no text positions to bucket)");
    for (const char *const *f = text_flags; *f; f++)
        if (args_find(t->flags, t->n_flags, *f)->given)
            die(EXIT_USAGE, "train: --%s has no meaning with --task mqar (its raw ids, --mqar-len as ctx and "
                "--mqar-eval-seqs replace the text's)", *f);
    t->mqar = (mqar_cfg_t){.vocab = (int)o->mqar_vocab, .len = (int)o->mqar_len, .pairs = (int)o->mqar_pairs};
    char err[512];
    if (mqar_check(&t->mqar, err, sizeof err)) die(EXIT_USAGE, "train: %s", err);
    if (o->mqar_mix[0] && mqar_mix_parse(o->mqar_mix, t->mqar.vocab, t->mqar.len, &t->mix, err, sizeof err))
        die(EXIT_USAGE, "train: --mqar-mix: %s", err);
    o->ctx = o->mqar_len;
    o->tokenizer = "raw";  // what the run uses (train_state)
    t->task = 1;
    t->saved.task = &t->mqar;
    t->saved.task_mix = o->mqar_mix;
}

// Checks of the options as a whole (each flag's own range is the flag table's).
static void check_options(train_t *t, tok_kind_t *tkind) {
    opts_t *o = t->o;
    check_task_options(t);
    if (o->stop_after && o->stop_after > o->steps) die(EXIT_USAGE, "train: --stop-after %ld is beyond --steps %ld", o->stop_after, o->steps);
    if (o->min_lr > o->lr) die(EXIT_USAGE, "train: --min-lr %g is above --lr %g", o->min_lr, o->lr);
    if (o->dim % o->heads) die(EXIT_USAGE, "train: --heads %ld does not divide --dim %ld", o->heads, o->dim);
    if (t->task) *tkind = TOK_RAW;
    else if (tok_kind_parse(o->tokenizer, tkind)) die(EXIT_USAGE, "train: --tokenizer must be byte, char or bpe, got '%s'", o->tokenizer);
    if (args_find(t->flags, t->n_flags, "vocab")->given && *tkind != TOK_BPE)
        die(EXIT_USAGE, "train: --vocab sets the size of a learned bpe vocabulary; it needs --tokenizer bpe");
    if (args_find(t->flags, t->n_flags, "tokenizer-from")->given)
        die(EXIT_USAGE, "train: --tokenizer-from is for --prepare (training takes its tokenizer from --init-from, --resume or the shards)");
    // --pos: the model's config holds it; on --resume an explicit --pos must agree with the checkpoint.
    if (pos_scheme_parse(o->pos, &t->pos)) die(EXIT_USAGE, "train: --pos must be learned, rope, none or rel, got '%s'", o->pos);
    if (t->resumed) {
        pos_scheme_t saved = t->m->dims.pos;
        if (args_find(t->flags, t->n_flags, "pos")->given && t->pos != saved)
            die(EXIT_USAGE, "train: checkpoint '%s' was trained with --pos %s; --pos %s cannot change on --resume "
                "(drop --pos, or start a new run from it with --init-from)", o->resume, pos_scheme_name(saved), o->pos);
        t->pos = saved;
    }
    // --memory likewise: the config holds it.
    if (t->resumed) {
        int saved = t->m->dims.memory;
        if (args_find(t->flags, t->n_flags, "memory")->given && o->memory != saved)
            die(EXIT_USAGE, "train: checkpoint '%s' was trained with --memory %d; --memory %ld cannot change on --resume "
                "(drop --memory, or start a new run from it with --init-from)", o->resume, saved, o->memory);
        o->memory = saved;
    }
    t->memory = (int)o->memory;
    t->final_eval_tokens = parse_final_eval(o->final_eval);
    // MPI (docs/mpi.md): the batch's rows are split evenly; segment memory stays one process.
    int size = dist_size();
    if (size > 1 && o->batch % size)
        die(EXIT_USAGE, "train: --batch %ld does not split over %d MPI ranks; give a multiple of %d", o->batch, size, size);
    if (size > 1 && t->memory)
        die(EXIT_USAGE, "train: --memory runs as one process (each rank would carry its own streams' memory); drop mpirun or --memory");
}

// --init-from: read the source once; a fine-tuned model keeps the source's tokenizer (its embedding
// rows mean the source's tokens), so --tokenizer, if given, must name the same kind.
static void read_init_source(train_t *t) {
    opts_t *o = t->o;
    char err[1024];
    if (st_read(o->init_from, &t->init_src, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
    const char *format = st_meta_get(&t->init_src, "format"), *tokj = st_meta_get(&t->init_src, "tokenizer");
    if (!format || strcmp(format, "attnlab") != 0) die(EXIT_RUNTIME, "--init-from '%s' is not an attnlab checkpoint", o->init_from);
    if (!tokj || tok_from_json(&t->fresh_tok, tokj, err, sizeof err))
        die(EXIT_RUNTIME, "--init-from '%s': %s", o->init_from, tokj ? err : "tokenizer metadata is missing");
    tok_kind_t given;
    if (args_find(t->flags, t->n_flags, "tokenizer")->given && tok_kind_parse(o->tokenizer, &given) == 0 &&
        given != t->fresh_tok.kind)
        die(EXIT_USAGE, "train: --tokenizer %s conflicts with --init-from '%s', whose tokenizer (%s) the fine-tuned model keeps",
            o->tokenizer, o->init_from, tok_kind_name(t->fresh_tok.kind));
    o->tokenizer = tok_kind_name(t->fresh_tok.kind);  // stored in train_state: what the run uses
    t->tok = &t->fresh_tok;
}

// Token shards (one or several, mapped): the run's tokenizer is the shards' own on a fresh run (an
// explicit --tokenizer must name its kind; --vocab cannot apply), else the checkpoint's or
// --init-from's, which the shards must have been made with.
static void load_shards(train_t *t, tok_kind_t tkind, uint64_t *hash) {
    opts_t *o = t->o;
    char err[1024];
    for (int k = 0; k < t->n_files; k++)
        if (!shard_is_shard(t->files[k]))
            die(EXIT_USAGE, "train: '%s' is not a token shard; train on one text file, or on shards only (train --prepare TEXT OUT makes one)",
                t->files[k]);
    if (dataset_open_shards(&t->ds, t->files, t->n_files, err, sizeof err))
        die(strstr(err, "another tokenizer") ? EXIT_USAGE : EXIT_RUNTIME, "train: %s", err);
    t->ds.all_train = o->val[0] != 0;
    *hash = t->ds.text_fnv1a64;
    const tokenizer_t *made = &t->ds.shards[0].tok;
    char whose[1100];
    if (t->resumed) {
        if (*hash != t->saved.data_hash || t->ds.text_bytes != t->saved.data_bytes)
            die(EXIT_USAGE, "train: the shards are not the data the run in '%s' was trained on (%zu bytes, hash differs)", o->resume,
                t->saved.data_bytes);
        snprintf(whose, sizeof whose, "the checkpoint '%s'", o->resume);
    } else if (o->init_from[0]) {
        snprintf(whose, sizeof whose, "--init-from '%s'", o->init_from);
    } else {
        if (args_find(t->flags, t->n_flags, "tokenizer")->given && tkind != made->kind)
            die(EXIT_USAGE, "train: --tokenizer %s conflicts with shard '%s', made by a %s tokenizer", o->tokenizer, t->files[0],
                tok_kind_name(made->kind));
        if (args_find(t->flags, t->n_flags, "vocab")->given)
            die(EXIT_USAGE, "train: --vocab learns a vocabulary from a text; shard '%s' has its tokenizer already (%s, %d tokens)",
                t->files[0], tok_kind_name(made->kind), made->vocab_size);
        if (tok_copy(&t->fresh_tok, made, err, sizeof err)) die(EXIT_RUNTIME, "shard '%s': %s", t->files[0], err);
        t->tok = &t->fresh_tok;
        o->tokenizer = tok_kind_name(made->kind);  // stored in train_state: what the run uses
        snprintf(whose, sizeof whose, "this run");
    }
    if (dataset_check_shards(&t->ds, t->tok, whose, (int)o->ctx, err, sizeof err))
        die(strstr(err, "another tokenizer") ? EXIT_USAGE : EXIT_RUNTIME, "train: %s", err);
}

// The text, read once (so a pipe works and the hash describes the bytes trained on): a fresh run
// builds its tokenizer from it (char: from the whole file, train and validation splits; bpe: merges
// learned on the training split alone, the first floor(0.9 bytes) bytes, or the whole file with
// --val) unless --init-from gave one; a resumed run checks it is the file it was trained on. Then
// the dataset (a text the tokenizer cannot encode is refused, naming the character and its byte
// offset). Shards go to load_shards. --val then replaces the validation split.
static void load_data(train_t *t, tok_kind_t tkind, uint64_t *hash) {
    char err[1024];
    opts_t *o = t->o;
    if (t->task) {  // no text: the raw ids of the task, and a hash of nothing
        tok_init_raw(&t->fresh_tok, t->mqar.vocab);
        t->tok = &t->fresh_tok;
        *hash = 0;
        return;
    }
    if (t->n_files > 1 || shard_is_shard(t->file)) {
        load_shards(t, tkind, hash);
    } else {
        if (dataset_read(&t->ds, t->file, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
        t->ds.all_train = o->val[0] != 0;
        *hash = t->ds.text_fnv1a64;
        if (t->resumed) {
            if (*hash != t->saved.data_hash || t->ds.text_bytes != t->saved.data_bytes)
                die(EXIT_USAGE, "train: '%s' is not the file the run in '%s' was trained on (%zu bytes, hash differs)", t->file,
                    o->resume, t->saved.data_bytes);
        } else if (!o->init_from[0]) {
            if (tkind == TOK_CHAR) {
                if (tok_build_char(&t->fresh_tok, t->ds.text, t->ds.text_bytes, err, sizeof err)) die(EXIT_RUNTIME, "'%s': %s", t->file, err);
            } else if (tkind == TOK_BPE) {
                if (!args_find(t->flags, t->n_flags, "vocab")->given)
                    die(EXIT_USAGE, "train: --tokenizer bpe needs --vocab N (the vocabulary size, at least 257)");
                size_t learn = t->ds.all_train ? t->ds.text_bytes : dataset_bpe_cut(t->ds.text_bytes);
                if (tok_learn_bpe(&t->fresh_tok, t->ds.text, learn, (int)o->vocab, err, sizeof err))
                    die(EXIT_RUNTIME, "train: '%s': %s", t->file, err);
            } else {
                tok_init_byte(&t->fresh_tok);
            }
            t->tok = &t->fresh_tok;
        }
        if (dataset_tokenize(&t->ds, t->file, t->tok, (int)o->ctx, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
    }
    if (args_find(t->flags, t->n_flags, "vocab")->given && o->vocab != t->tok->vocab_size)
        die(EXIT_USAGE, "train: --vocab %ld conflicts with %s, whose tokenizer has %d tokens", o->vocab,
            t->resumed ? "--resume" : "--init-from", t->tok->vocab_size);
    if (!o->val[0]) return;
    if (dataset_load_val(&t->ds, o->val, t->tok, (int)o->ctx, err, sizeof err))
        die(strstr(err, "another tokenizer") ? EXIT_USAGE : EXIT_RUNTIME, "train: %s", err);
    uint64_t vhash = fnv1a64((const uint8_t *)t->ds.val, t->ds.n_val * sizeof *t->ds.val);
    if (t->resumed && t->saved.has_val && (vhash != t->saved.val_hash || t->ds.n_val != t->saved.val_tokens))
        die(EXIT_USAGE, "train: --val '%s' is not the validation data of the run in '%s' (%zu tokens, hash differs)", o->val,
            o->resume, t->saved.val_tokens);
    t->saved.has_val = 1;
    t->saved.val_hash = vhash;
    t->saved.val_tokens = t->ds.n_val;
}

// For a block's tensor "layers.<l>.attn.*" or "layers.<l>.ffn.*": the length of that prefix; else 0.
static size_t block_prefix_len(const char *name) {
    if (strncmp(name, "layers.", 7) != 0) return 0;
    const char *p = name + 7;
    while (*p >= '0' && *p <= '9') p++;
    if (p == name + 7) return 0;
    if (strncmp(p, ".attn.", 6) == 0) return (size_t)(p - name) + 6;
    if (strncmp(p, ".ffn.", 5) == 0) return (size_t)(p - name) + 5;
    return 0;
}

static int same_shape(const st_entry_t *e, const param_t *p) {
    if (e->ndim != p->ndim || e->numel != p->numel) return 0;
    for (int d = 0; d < e->ndim; d++)
        if (e->shape[d] != p->shape[d]) return 0;
    return 1;
}

// --init-from: copy or convert (ckpt_init_from), then account for it. Nothing carried over is an
// error; every tensor left at its fresh initialization is named; carrying fewer attention/ffn tensors
// than the source holds is an error unless --init-partial says it is intended.
static void init_from_source(train_t *t) {
    const opts_t *o = t->o;
    model_t *m = t->m;
    char err[1024];
    // A tensor was carried over if the source has it by name and shape, or a block's hook changed it.
    float **before = xmalloc((size_t)m->params.count * sizeof *before);
    for (int i = 0; i < m->params.count; i++) {
        const param_t *p = m->params.items[i];
        before[i] = xmalloc(p->numel * sizeof(float) + 1);
        memcpy(before[i], p->data, p->numel * sizeof(float));
    }
    int loaded, total;
    char notes[4096];
    if (ckpt_init_from(o->init_from, m, (uint64_t)o->seed, &loaded, &total, notes, sizeof notes, err, sizeof err))
        die(EXIT_RUNTIME, "%s", err);
    // converted[i]: parameter i was not copied by name but a block's hook changed it (a conversion of the
    // source block under the same "layers.<l>.attn." or ".ffn." prefix).
    int n_reinit = 0, *converted = xcalloc((size_t)m->params.count, sizeof *converted);
    size_t names_cap = 1, names_len = 0;
    for (int i = 0; i < m->params.count; i++) names_cap += strlen(m->params.items[i]->name) + 2;
    char *names = xmalloc(names_cap);
    names[0] = 0;
    for (int i = 0; i < m->params.count; i++) {
        const param_t *p = m->params.items[i];
        const st_entry_t *e = st_find(&t->init_src, p->name);
        int by_name = e && same_shape(e, p);
        converted[i] = !by_name && memcmp(before[i], p->data, p->numel * sizeof(float)) != 0;
        if (!by_name && !converted[i]) {
            names_len += (size_t)snprintf(names + names_len, names_cap - names_len, "%s%s", n_reinit ? ", " : "", p->name);
            n_reinit++;
        }
        free(before[i]);
    }
    free(before);
    // A source attention/ffn tensor is carried if the model has it by name and shape, or the model's
    // block under the same prefix was converted from the source's.
    int src_blocks = 0, carried_blocks = 0;
    for (int j = 0; j < t->init_src.n_tensors; j++) {
        const st_entry_t *e = &t->init_src.tensors[j];
        size_t plen = block_prefix_len(e->name);
        if (!plen) continue;
        src_blocks++;
        const param_t *p = params_find(&m->params, e->name);
        int carried = p && same_shape(e, p);
        for (int i = 0; !carried && i < m->params.count; i++)
            carried = converted[i] && strncmp(m->params.items[i]->name, e->name, plen) == 0 &&
                      block_prefix_len(m->params.items[i]->name) == plen;
        carried_blocks += carried;
    }
    free(converted);
    st_free(&t->init_src);
    if (loaded == 0)
        die(EXIT_RUNTIME, "train: --init-from '%s': no tensor matches the model by name and shape and no block converts "
            "from it; the model would train from scratch (check --layers, --dim, --heads, --ctx against the source)", o->init_from);
    fprintf(stderr, "init-from %s: %d of %d tensors loaded by name and shape or converted, the rest initialized\n",
            o->init_from, loaded, total);
    for (char *line = notes, *next; *line; line = next) {  // one line per converted block
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        else next = line + strlen(line);
        fprintf(stderr, "init-from %s\n", line);
    }
    if (n_reinit) fprintf(stderr, "init-from %s: initialized fresh (%d): %s\n", o->init_from, n_reinit, names);
    free(names);
    if (carried_blocks < src_blocks && !o->init_partial)
        die(EXIT_RUNTIME, "train: --init-from '%s' carries %d of the source's %d attention/ffn tensors into this model (by name and shape or converted); "
            "pass --init-partial if that is intended", o->init_from, carried_blocks, src_blocks);
}

// A fresh run: build the model, initialize it from --seed (its forks give the data and dropout streams),
// then --init-from copies or converts what it can.
static void build_fresh(train_t *t, uint64_t hash) {
    const opts_t *o = t->o;
    char err[1024];
    // --memory goes in with the dims: model_build validates it (learned positions, a span above max(ctx, M)).
    model_dims_t dims = {.vocab = t->tok->vocab_size, .dim = (int)o->dim, .heads = (int)o->heads, .ctx = (int)o->ctx,
                         .pos = t->pos, .memory = t->memory};
    if (model_build(&t->fresh_model, &dims, o->layers, err, sizeof err)) die(EXIT_USAGE, "train: %s", err);
    t->m = &t->fresh_model;
    rng_t init_rng;
    rng_seed(&init_rng, (uint64_t)o->seed);
    model_init_weights(t->m, &init_rng);
    rng_fork(&init_rng, 1, &t->saved.data_rng);
    rng_fork(&init_rng, 2, &t->saved.drop_rng);
    t->saved.data_hash = hash;
    t->saved.data_bytes = t->ds.text_bytes;
    if (!o->init_from[0]) return;
    init_from_source(t);
}

// The CSV log's columns (docs/logs.md). Readers find columns by name: new ones are appended at the end.
static const char LOG_HEADER[] =
    "step,split,loss,ppl,bpb,lr,grad_norm,tokens_per_s,ms_per_step,elapsed_s,tokens_seen,spans,pkm_usage,accuracy\n";

// --log: a fresh run writes the header; a resumed run appends to its log, whose header must be this
// one (a log begun by an older version has other columns: appending would mix two layouts).
static void open_log(train_t *t) {
    const char *path = t->o->log;
    if (!path[0]) return;
    int exists = 0;
    FILE *probe = fopen(path, "r");
    if (probe) {
        char first[512] = "";
        exists = 1;
        if (t->resumed && fgets(first, sizeof first, probe) && strcmp(first, LOG_HEADER) != 0) {
            fclose(probe);
            die(EXIT_RUNTIME, "cannot append to log '%s': its header is not this version's columns (%.*s); give a new --log",
                path, (int)strlen(LOG_HEADER) - 1, LOG_HEADER);
        }
        if (t->resumed && !first[0]) exists = 0;  // empty: write the header
        fclose(probe);
    }
    t->rep.log = fopen(path, t->resumed ? "a" : "w");
    if (!t->rep.log) die(EXIT_RUNTIME, "cannot write log '%s': %s", path, strerror(errno));
    t->rep.log_path = path;
    if ((!t->resumed || !exists) && (fputs(LOG_HEADER, t->rep.log) < 0 || fflush(t->rep.log) != 0))
        die(EXIT_RUNTIME, "cannot write log '%s': %s", path, strerror(errno));
}

// A failed write or close of the log (e.g. a full disk): one line, no more logging, and the run stops
// at this step with a checkpoint and exit status 1 (run_steps, finish_run).
static void log_failed(report_t *rep, int e) {
    fprintf(stderr, "attnlab: cannot write log '%s': %s; stopping at this step\n", rep->log_path, strerror(e));
    fclose(rep->log);
    rep->log = NULL;
    rep->log_failed = 1;
}

// Segment memory: the training split as B streams and the memory for B rows. A resumed run takes the
// streams' offset, the memory's n and pos0 and every block's state from the checkpoint, each checked
// (a hostile file gets one line): the offset is one the streams can reach (a multiple of ctx within a
// stream), pos0 equals it (both count from the last wrap), n = min(pos0, M), and each block's state
// has the size the model's memory for this --batch needs.
static void setup_memory(train_t *t) {
    const char *ckpt = t->o->resume;
    saved_t *r = &t->saved;
    char err[512];
    // --streams is not a stored flag (memory-free files stay as they were): a resumed run reads streams
    // when its train_state has a stream position.
    t->streams_on = t->memory > 0 || t->o->streams || (t->resumed && r->has_mem);
    if (t->resumed && t->o->streams && !r->has_mem)
        die(EXIT_USAGE, "checkpoint '%s' was trained on random windows; --streams cannot change on --resume", ckpt);
    if (!t->streams_on && t->o->stream_chunk)
        die(EXIT_USAGE, "train: --stream-chunk needs --memory or --streams (random windows are already shuffled)");
    if (!t->streams_on) return;
    // The chunks' permutations have a generator of their own, seeded from --seed ("streams" in ASCII mixed in).
    if (streams_init_chunked(&t->streams, 0, t->ds.n_train, t->B, t->T, (size_t)t->o->stream_chunk,
                             (uint64_t)t->o->seed ^ 0x73747265616d73ULL, err, sizeof err))
        die(EXIT_USAGE, "train: %s", err);
    if (t->memory) model_mem_init(&t->mem, t->m, t->B);
    if (!t->resumed) return;
    if (!r->has_mem)
        die(EXIT_RUNTIME, "checkpoint '%s': train_state lacks the segment memory's position (memory_offset, memory_n, memory_pos0)", ckpt);
    if (streams_check_offset(&t->streams, r->mem_offset, err, sizeof err))
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.memory_offset: %s", ckpt, err);
    if (r->has_cycle != (t->streams.chunk > 0))
        die(EXIT_RUNTIME, "checkpoint '%s': train_state %s stream_cycle, but its --stream-chunk is %ld", ckpt,
            r->has_cycle ? "has a" : "lacks the", t->o->stream_chunk);
    if (r->has_cycle && streams_check_cycle(&t->streams, r->stream_cycle, err, sizeof err))
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.stream_cycle: %s", ckpt, err);
    if (r->mem_pos0 != r->mem_offset)
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.memory_pos0 is %.15g, not the stream offset %.15g (both count from the last wrap)",
            ckpt, r->mem_pos0, r->mem_offset);
    double want_n = r->mem_pos0 < t->memory ? r->mem_pos0 : t->memory;
    if (r->mem_n != want_n)
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.memory_n is %.15g, not min(memory_pos0, memory) = %.15g", ckpt, r->mem_n, want_n);
    const ckpt_t *c = &t->ck;
    for (int i = 0; i < t->mem.n_blocks; i++) {
        int present = c->mem_state && c->mem_state[i];
        if (!present && t->mem.floats[i] == 0) continue;
        block_t *b = model_block(t->m, i);
        if (!present)
            die(EXIT_RUNTIME, "checkpoint '%s' lacks tensor '%s%d', the segment memory of %s", ckpt, CKPT_MEM_STATE_PREFIX, i,
                block_where(b));
        if (c->mem_floats[i] != t->mem.floats[i])
            die(EXIT_RUNTIME, "checkpoint '%s': tensor '%s%d' has %zu floats, but the memory of %s for --batch %d holds %zu",
                ckpt, CKPT_MEM_STATE_PREFIX, i, c->mem_floats[i], block_where(b), t->B, t->mem.floats[i]);
        memcpy(t->mem.state[i], c->mem_state[i], t->mem.floats[i] * sizeof(float));
    }
    t->streams.offset = (size_t)r->mem_offset;
    t->streams.cycle = (long)r->stream_cycle;
    t->mem.n = (int)r->mem_n;
    t->mem.pos0 = (long)r->mem_pos0;
}

// The learning-rate schedule (cli/schedule.h). --time-budget given applies (on --resume too, replacing the
// stored one); not given on --resume, the stored budget and its decay start continue. A resumed run that
// has used its budget is refused.
static void setup_schedule(train_t *t) {
    opts_t *o = t->o;
    const saved_t *r = &t->saved;
    if (t->resumed && r->has_budget && !args_find(t->flags, t->n_flags, "time-budget")->given) o->time_budget = r->budget_s;
    t->sched = (lr_schedule_t){.warmup = o->warmup, .steps = o->steps, .lr = o->lr, .min_lr = o->min_lr,
                               .budget_s = o->time_budget, .decay_start_s = t->resumed && r->has_budget ? r->decay_start_s : -1};
    if (t->resumed && o->time_budget > 0 && r->elapsed >= o->time_budget)
        die(EXIT_USAGE, "train: the run in '%s' has used its time budget (%.0fs of %gs); pass a larger --time-budget to extend it",
            o->resume, r->elapsed, o->time_budget);
}

// Everything before the first step: model (resumed or fresh), data, activations, header lines, log,
// signal handlers, the micro-batch buffers. Dies with one line on any problem.
static void setup_run(train_t *t, opts_t *o, flag_t *flags, int n_flags, const char *const *files, int n_files) {
    const char *file = n_files ? files[0] : "";
    *t = (train_t){.o = o, .flags = flags, .n_flags = n_flags, .file = file, .files = files, .n_files = n_files, .rep.accuracy = NAN};
    guard_outputs(o, flags, n_flags, file);
    if (o->resume[0]) open_resumed(t);
    tok_kind_t tkind;
    check_options(t, &tkind);
    if (o->init_from[0]) read_init_source(t);
    uint64_t hash;
    load_data(t, tkind, &hash);
    if (!t->resumed) build_fresh(t, hash);
    if (t->saved.step >= o->steps) die(EXIT_USAGE, "train: the run in '%s' already has %ld steps; pass a larger --steps to extend it", o->resume, t->saved.step);
    setup_schedule(t);
    t->rank = dist_rank();
    t->size = dist_size();
    t->rows = (int)o->batch / t->size;
    t->row0 = t->rank * t->rows;
    t->saved.ranks = t->size;
    g_mpi_ranks = t->size;
    model_alloc_acts(t->m, t->rows, (int)o->ctx, (float)o->dropout);
    if (o->save_every == 0) o->save_every = o->eval_every;

    t->B = (int)o->batch;
    t->T = (int)o->ctx;
    setup_memory(t);

    const model_t *m = t->m;
    size_t n_params = params_count_trainable(&m->params);
    char mem_note[96] = "";
    if (t->memory) snprintf(mem_note, sizeof mem_note, " | memory %d", t->memory);
    printf("model: %s | d %d, heads %d, ctx %d, vocab %d (%s) | %zu parameters%s%s%s\n", m->spec, m->dims.dim, m->dims.heads,
           m->dims.ctx, m->dims.vocab, tok_kind_name(t->tok->kind), n_params, m->dims.pos ? " | pos " : "",
           m->dims.pos ? pos_scheme_name(m->dims.pos) : "", mem_note);
    if (t->streams_on && t->streams.chunk)
        snprintf(mem_note, sizeof mem_note, " | %d streams over %zu shuffled chunks of %zu tokens", t->B, t->streams.n_chunks,
                 t->streams.chunk);
    else if (t->streams_on) snprintf(mem_note, sizeof mem_note, " | %d streams of %zu tokens", t->B, t->streams.len);
    char source[64] = "";
    if (t->ds.shards) snprintf(source, sizeof source, " (%d shard%s, mapped)", t->ds.n_shards, t->ds.n_shards == 1 ? "" : "s");
    if (t->task)
        printf("task: mqar | length %d, %d pairs, vocab %d | batch %ld sequences, accum %ld%s%s | evaluation: %ld held-out sequences\n",
               t->mqar.len, t->mqar.pairs, t->mqar.vocab, o->batch, o->grad_accum, t->mix.n ? " | training mixture " : "",
               t->mix.n ? o->mqar_mix : "", o->mqar_eval_seqs);
    else printf("data: %s%s | %zu tokens: %zu train, %zu validation%s%s | batch %ld x %ld, accum %ld%s\n", file, source,
           t->ds.n_tokens, t->ds.n_train, t->ds.n_val, o->val[0] ? " from " : "", o->val[0] ? o->val : "", o->batch, o->ctx,
           o->grad_accum, mem_note);
    if (t->resumed) printf("resuming %s at step %ld of %ld\n", o->resume, t->saved.step, o->steps);
    if (t->size > 1)
        printf("mpi: %d ranks, %d row%s of each batch per rank, %ld thread%s each; gradients summed in buckets of %d floats\n",
               t->size, t->rows, t->rows == 1 ? "" : "s", o->threads, o->threads == 1 ? "" : "s", GRAD_SYNC_BUCKET);
    grad_sync_init(&t->sync, &t->m->params);
    // Every rank starts from the same weights, moments and data (a rank given other files would diverge).
    if (!dist_all_equal_u64(grad_sync_state_hash(&t->m->params) ^ t->saved.data_hash))
        die(EXIT_RUNTIME, "train: the MPI ranks start from different weights or data (each rank must see the same files)");

    if (t->rank == 0) open_log(t);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    t->acfg = (adamw_cfg_t){.beta1 = (float)o->beta1, .beta2 = (float)o->beta2, .eps = 1e-8f, .weight_decay = (float)o->weight_decay};
    t->x = xmalloc((size_t)t->B * t->T * sizeof *t->x);
    t->y = xmalloc((size_t)t->B * t->T * sizeof *t->y);
    t->stop = o->stop_after ? o->stop_after : o->steps;
    t->t_start = t->rep.t_interval = cli_now();
    load_watch_init(&t->watch, cli_get_threads());
    t->tune = o->threads == 0 && t->size == 1;
    tuner_init(&t->tuner, cli_get_threads());
}

// ---------------------------------------------------------------------------------------------
// step

// This rank's share of a batch whose targets y (B·T) it has read whole: the fraction of the batch's scored
// targets (>= 0) in its rows [row0, row0 + rows), so that the ranks' mean losses, so weighted and summed,
// make the batch's mean loss (text: rows/B; MQAR: its answers over the batch's). 1 on one process.
static double rank_share(const train_t *t, const int32_t *y) {
    if (t->size == 1) return 1.0;
    size_t T = (size_t)t->T, lo = (size_t)t->row0 * T, hi = lo + (size_t)t->rows * T, all = 0, mine = 0;
    for (size_t i = 0; i < (size_t)t->B * T; i++) {
        all += y[i] >= 0;
        mine += y[i] >= 0 && i >= lo && i < hi;
    }
    return all ? (double)mine / (double)all : (double)t->rows / (double)t->B;
}

// One optimizer step at learning rate lr: --grad-accum micro-batches of forward and backward, the blocks'
// extra objective terms, clipping, AdamW and the blocks' hooks. Returns 0, or EXIT_RUNTIME (with a
// message, nothing updated) when the loss or a gradient is not finite.
static int train_step(train_t *t, double lr) {
    const opts_t *o = t->o;
    model_t *m = t->m;
    saved_t *run = &t->saved;
    model_before_step(m, run->step + 1, &run->drop_rng);  // e.g. Performer's random-feature redraw
    params_zero_grad(&m->params);
    double loss = 0;
    // Dropout draws from the run's stream on one process; with MPI each rank draws its rows' masks from a
    // stream of its own, forked from the shared one by step and rank, which the masks then leave untouched:
    // the shared stream stays the same on every rank (and, without dropout, the one-process run's), for
    // the blocks' hooks (Performer's redraws).
    rng_t rank_drop;
    if (t->size > 1) rng_fork(&run->drop_rng, ((uint64_t)run->step << 20) ^ (uint64_t)t->rank ^ 0x4D50490000000000ull, &rank_drop);
    run_ctx_t rc = {.training = 1, .dropout = (float)o->dropout, .rng = t->size > 1 ? &rank_drop : &run->drop_rng,
                    .mem = t->memory ? &t->mem : NULL};
    const int32_t *xr = t->x + (size_t)t->row0 * t->T, *yr = t->y + (size_t)t->row0 * t->T;  // this rank's rows
    for (long micro = 0; micro < o->grad_accum; micro++) {
        if (t->task) {
            if (t->mix.n) mqar_mix_batch(&t->mix, t->T, &run->data_rng, t->B, t->x, t->y);  // each row a drawn setting, padded
            else mqar_batch(&t->mqar, &run->data_rng, t->B, t->x, t->y);  // fresh sequences; loss on the answers only
        } else if (!t->streams_on) {
            dataset_train_batch(&t->ds, &run->data_rng, t->B, t->T, t->x, t->y);
        } else if (dataset_stream_batch(&t->ds, &t->streams, t->x, t->y) && t->memory) {
            model_mem_clear(&t->mem);  // the streams wrapped to their start: nothing before it is remembered
        }
        double share = rank_share(t, t->y);
        loss += model_forward(m, xr, yr, t->rows, t->T, &rc) * share / (double)o->grad_accum;
        model_backward(m, t->size == 1 ? 1.0f / (float)o->grad_accum : (float)(share / (double)o->grad_accum), &rc);
    }
    // e.g. the adaptive-span penalty: in the objective (once: rank 0 adds its gradient), not in the reported loss
    if (t->rank == 0) model_extra_loss(m, 1);
    grad_sync_run(&t->sync, &m->params);  // every rank now holds the whole batch's gradient (docs/mpi.md)
    dist_sum_doubles(&loss, 1);
    double gnorm;  // the norm's walk decides finiteness too (optim.h)
    if (!isfinite(loss) || !grad_norm_finite(&m->params, &gnorm)) {
        if (t->rank == 0) fprintf(stderr, "attnlab: %s at step %ld; stopping without saving (the last checkpoint, if any, is kept)\n",
                isfinite(loss) ? "the loss was finite but a gradient became non-finite"
                               : (isnan(loss) ? "the loss became NaN" : "the loss became infinite"),
                run->step + 1);
        return EXIT_RUNTIME;
    }
    float clip = o->grad_clip > 0 && gnorm > o->grad_clip ? (float)(o->grad_clip / gnorm) : 1.0f;
    run->step++;
    adamw_step_clipped(&m->params, &t->acfg, (float)lr, run->step, clip);  // clipping, AdamW, sparse rows zeroed
    model_after_step(m, run->step, &run->drop_rng);
    run->tokens_seen += (long)t->B * t->T * o->grad_accum;
    t->rep.last_gnorm = gnorm;
    t->rep.interval_loss += loss;
    t->rep.interval_steps++;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// report

// One CSV row (the columns of LOG_HEADER, docs/logs.md); elapsed_s and tokens_seen (training tokens read so
// far: step·B·T·grad_accum) are filled in by log_row from the run, so every row can be plotted against time
// and tokens; spans and pkm_usage are "" except on evaluation rows.
static void log_row_at(report_t *rep, long step, const char *split, double loss, double bpb, double lr, double gnorm,
                       double tps, double ms, double elapsed, double tokens, const char *spans, const char *usage) {
    if (!rep->log) return;
    errno = 0;
    if (fprintf(rep->log, "%ld,%s,%.6f,%.6f,%.6f,%.6g,%.6g,%.1f,%.3f,%.3f,%.0f,%s,%s,%.6f\n", step, split, loss, exp(loss), bpb,
                lr, gnorm, tps, ms, elapsed, tokens, spans, usage, rep->accuracy) < 0 ||
        fflush(rep->log) != 0)
        log_failed(rep, errno ? errno : EIO);
}

static void log_row(train_t *t, const char *split, double loss, double bpb, double lr, double gnorm, double tps, double ms,
                    const char *spans, const char *usage) {
    double elapsed = t->saved.elapsed + (cli_now() - t->t_start);
    double tokens = (double)t->saved.step * t->B * t->T * t->o->grad_accum;
    log_row_at(&t->rep, t->saved.step, split, loss, bpb, lr, gnorm, tps, ms, elapsed, tokens, spans, usage);
}

static void print_spans(const model_t *m) {
    float sp[4096];
    int any = 0;
    for (int l = 0; l < m->L; l++) {
        const block_t *b = &m->layers[l].mixer;
        if (!b->ops->spans) continue;
        int h = b->ops->spans(b, sp);
        if (h <= 0) continue;
        float mean = 0, mx = 0;
        for (int i = 0; i < h; i++) {
            mean += sp[i] / h;
            mx = sp[i] > mx ? sp[i] : mx;
        }
        printf("%s L%d %.1f/%.1f", any ? "," : "  spans mean/max:", l, mean, mx);
        any = 1;
    }
    if (any) printf("\n");
}

// One value per layer, ';'-joined (entry l is layer l's, "" for a layer without one); the whole field ""
// when no layer has a value. value(m, l, &v) returns 1 and v for a layer that has one. buf holds 32·L + 1.
static void per_layer_field(model_t *m, int (*value)(model_t *, int, double *), const char *fmt, char *buf, size_t n) {
    size_t len = 0;
    int any = 0;
    buf[0] = 0;
    for (int l = 0; l < m->L; l++) {
        double v;
        int has = value(m, l, &v);
        any |= has;
        len += (size_t)snprintf(buf + len, n - len, "%s", l ? ";" : "");
        if (has) len += (size_t)snprintf(buf + len, n - len, fmt, v);
    }
    if (!any) buf[0] = 0;
}

// Layer l's mean learned span in tokens (block_ops_t.spans: adaptive, allattn).
static int layer_mean_span(model_t *m, int l, double *v) {
    const block_t *b = &m->layers[l].mixer;
    float sp[4096];
    int h = b->ops->spans ? b->ops->spans(b, sp) : 0;
    if (h <= 0) return 0;
    double sum = 0;
    for (int i = 0; i < h; i++) sum += sp[i];
    *v = sum / h;
    return 1;
}

// The fraction of layer l's units used over the evaluation just run (block_ops_t.stats_usage: pkm's slots
// selected at least once); the statistics must still be on (before model_stats_print switches them off).
static int layer_usage(model_t *m, int l, double *v) {
    for (int i = 2 * l; i < 2 * l + 2; i++) {
        block_t *b = model_block(m, i);
        double u = b->ops->stats_usage ? b->ops->stats_usage(b) : -1;
        if (u >= 0) {
            *v = u;
            return 1;
        }
    }
    return 0;
}

// An evaluation's report: the printed line "HEAD | val loss X | ppl Y | bpb Z  (WHAT)", the spans line, the
// statistics lines (stats: model_stats_begin counted blocks before the evaluation) and the CSV row.
static void report_eval_done(train_t *t, const char *split, const char *head, const eval_sums_t *s, const char *what,
                             double lr, int stats) {
    size_t n = 32 * (size_t)t->m->L + 1;
    char *spans = xmalloc(n), *usage = xmalloc(n);
    per_layer_field(t->m, layer_mean_span, "%.1f", spans, n);
    per_layer_field(t->m, layer_usage, "%.4f", usage, n);
    printf("%s | val loss %.4f | ppl %.3f | bpb %.4f  (%s)\n", head, eval_loss(s), exp(eval_loss(s)), eval_bpb(s), what);
    print_spans(t->m);
    if (stats) model_stats_print(t->m, stdout, "  ");
    log_row(t, split, eval_loss(s), eval_bpb(s), lr, NAN, NAN, NAN, spans, usage);
    free(spans);
    free(usage);
}

// The sums of every rank's evaluation (MPI; nothing on one process): counts travel as doubles, exact below 2^53.
static void eval_sums_over_ranks(eval_sums_t *s) {
    double v[3] = {s->nats, (double)s->tokens, (double)s->bytes};
    dist_sum_doubles(v, 3);
    *s = (eval_sums_t){.nats = v[0], .tokens = (size_t)v[1], .bytes = (size_t)v[2]};
}

// Random-window validation estimate, from an RNG stream of its own (seeded by seed and step), so
// evaluating never changes training. With MPI the evaluation is shared as training is: every rank draws
// every batch and scores its rows, and the sums are added up; a model keeping usage statistics (pkm,
// `alone`) is scored by rank 0 alone, chunk by chunk, so that its statistics count every batch.
static void eval_random(train_t *t, long step, eval_sums_t *s, int alone) {
    const opts_t *o = t->o;
    rng_t r;
    rng_seed(&r, (uint64_t)o->seed * 0x9E3779B97F4A7C15ull ^ (uint64_t)step ^ 0xE7A1ull);
    run_ctx_t rc = {.training = 0};
    *s = (eval_sums_t){0};
    int T = (int)o->ctx;
    for (long i = 0; i < o->eval_batches; i++) {
        dataset_val_batch(&t->ds, &r, (int)o->batch, T, t->x, t->y);
        for (int c = 0; c < t->size; c++) {  // chunk c: rows [c·rows, (c+1)·rows)
            if (alone ? t->rank != 0 : c != t->rank) continue;
            const int32_t *x = t->x + (size_t)c * t->rows * T, *y = t->y + (size_t)c * t->rows * T;
            model_forward(t->m, x, y, t->rows, T, &rc);
            eval_accumulate(t->m, t->tok, y, t->rows, T, s);
        }
    }
    if (!alone) eval_sums_over_ranks(s);
}

// Memory mode (LONG_CONTEXT.md §3) over the first n validation tokens: one stream in segments of
// ctx, the memory carried in eval_run_plan's own state (the training streams' memory is untouched).
// bk (or NULL): the targets' losses by visible context, as infer --eval --by-position buckets them.
static void eval_memory(train_t *t, size_t n, eval_sums_t *s, eval_buckets_t *bk) {
    eval_plan_t p;
    char err[256];
    CHECK(eval_plan_init(&p, EVAL_MEMORY, n, t->T, 0, t->memory, err, sizeof err) == 0);
    eval_run_plan(t->m, t->tok, t->ds.val, &p, s, bk);
}

// The periodic validation estimate. Without memory: random windows. With memory: memory mode over a fixed
// stretch, the first min(n_val, max(eval-batches·batch·ctx, 4·M) + 1) validation tokens — as many targets
// as the random windows score, but at least 4·M so that most are predicted with a full memory. `how`
// says which, for the report line.
static void eval_periodic(train_t *t, long step, eval_sums_t *s, char *how, size_t howlen, int stats) {
    const opts_t *o = t->o;
    if (!t->memory) {
        eval_random(t, step, s, stats > 0);
        snprintf(how, howlen, "%ld random windows", o->eval_batches * o->batch);
        return;
    }
    size_t n_val = t->ds.n_val, targets = (size_t)o->eval_batches * (size_t)o->batch * (size_t)o->ctx;
    if (targets < 4 * (size_t)t->memory) targets = 4 * (size_t)t->memory;
    size_t n = targets + 1 < n_val ? targets + 1 : n_val;
    eval_memory(t, n, s, NULL);
    snprintf(how, howlen, "memory mode, M %d: the first %zu validation tokens", t->memory, n);
}

// The periodic estimate at `step` with its report (note: appended to the printed parenthesis).
static void report_periodic(train_t *t, double lr, const char *note) {
    long step = t->saved.step;
    eval_sums_t s;
    char how[160], head[64];
    int stats = model_stats_begin(t->m);  // pkm layers: slot usage over this evaluation
    eval_periodic(t, step, &s, how, sizeof how, stats);
    size_t len = strlen(how);
    snprintf(how + len, sizeof how - len, "%s", note);
    snprintf(head, sizeof head, "step %ld/%ld", step, t->o->steps);
    report_eval_done(t, "val", head, &s, how, lr, stats);
}

// Step 0, before any training step (--eval-at-start, and always right after --init-from: the converted
// model before any fine-tuning, e.g. softmax weights in Performer layers). Its CSV row has no lr.
static void report_start(train_t *t) {
    report_periodic(t, NAN, t->o->init_from[0] ? ", right after --init-from" : ", before any step");
}

// The progress line (every --log-every steps, at the last step of this process, and at the step that used
// up the time budget (last = 1)): the interval's mean loss, speed and ETA (with a budget: the sooner of the
// steps' and the budget's end).
static void report_progress(train_t *t, double lr, double now, int last) {
    const opts_t *o = t->o;
    report_t *rep = &t->rep;
    long step = t->saved.step;
    if (step % o->log_every != 0 && step != t->stop && !last) return;
    double dt = now - rep->t_interval, ms = 1000.0 * dt / rep->interval_steps;
    double tps = (double)rep->interval_steps * t->B * t->T * o->grad_accum / dt;
    double elapsed = t->saved.elapsed + (now - t->t_start);
    char eta[32];
    double left = (double)(t->stop - step) * dt / rep->interval_steps;
    if (o->time_budget > 0 && o->time_budget - elapsed < left) left = o->time_budget - elapsed;
    fmt_eta(left, eta, sizeof eta);
    double mean_loss = rep->interval_loss / rep->interval_steps;
    printf("step %ld/%ld | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s | %.1f ms/step | elapsed %.0fs | ETA %s\n",
           step, o->steps, mean_loss, lr, rep->last_gnorm, tps, ms, elapsed, eta);
    log_row(t, "train", mean_loss, NAN, lr, rep->last_gnorm, tps, ms, "", "");
    if (dist_rank() == 0 && !t->tune) load_watch_interval(&t->watch, ms, dt, now, load_watch_loadavg(), stderr);
    rep->interval_loss = 0;
    rep->interval_steps = 0;
    rep->t_interval = cli_now();
}

// A --task mqar evaluation: recall accuracy and loss over the answer tokens of the held-out set
// (--mqar-eval-seqs sequences of mqar_sequence(MQAR_EVAL_SEED)), printed and logged as a `split` row
// (val or final) with the accuracy column; bpb has no meaning here (NAN).
static void report_task_eval(train_t *t, const char *split, double lr) {
    if (t->rank != 0) return;  // MPI: rank 0 alone scores the held-out set (the others go on to the next step)
    double t0 = cli_now();
    mqar_score_t s = {0};
    mqar_score_set(t->m, &t->mqar, MQAR_EVAL_SEED, (int)t->o->mqar_eval_seqs, t->x, t->y, &s);
    printf("%s %ld/%ld | recall accuracy %.4f (%ld of %ld answers) | answer loss %.4f  (%ld held-out sequences, %.1fs)\n",
           strcmp(split, "final") ? "step" : "final step", t->saved.step, t->o->steps, mqar_accuracy(&s), s.correct,
           s.answers, mqar_loss(&s), t->o->mqar_eval_seqs, cli_now() - t0);
    t->rep.accuracy = mqar_accuracy(&s);
    log_row(t, split, mqar_loss(&s), NAN, lr, NAN, NAN, NAN, "", "");
    t->rep.accuracy = NAN;
    t->rep.t_interval = cli_now();
}

// The periodic evaluation (every --eval-every steps, except the last when a final evaluation replaces it).
static void report_eval(train_t *t, double lr) {
    long step = t->saved.step;
    if (step % t->o->eval_every != 0 || (step >= t->o->steps && t->final_eval_tokens != 0)) return;
    if (t->task) {
        report_task_eval(t, "val", lr);
        return;
    }
    report_periodic(t, lr, "");
    t->rep.t_interval = cli_now();
}

// MPI: every rank's weights and AdamW moments must be bit-identical (each did the same update of the same
// summed gradient); checked before every checkpoint and at the end of the run. A divergence stops every
// rank without saving: the checkpoint would describe one rank's model only.
static void check_ranks_agree(train_t *t) {
    if (t->size == 1) return;
    if (!dist_all_equal_u64(grad_sync_state_hash(&t->m->params)))
        die(EXIT_RUNTIME, "train: rank %d: the MPI ranks' weights differ at step %ld (they must stay bit-identical); "
            "stopping without saving (the last checkpoint is kept)", t->rank, t->saved.step);
}

static void save_or_die(train_t *t) {
    check_ranks_agree(t);
    if (t->rank != 0) return;  // rank 0 alone writes checkpoints
    char err[1024];
    if (t->streams_on) {  // where the streams stand (n = 0 without memory); the blocks' states go in as tensors
        t->saved.has_mem = 1;
        t->saved.mem_offset = (double)t->streams.offset;
        t->saved.mem_n = t->mem.n;
        t->saved.mem_pos0 = t->memory ? (double)t->mem.pos0 : (double)t->streams.offset;  // equal with memory
        t->saved.has_cycle = t->streams.chunk > 0;
        t->saved.stream_cycle = (double)t->streams.cycle;
    }
    t->saved.budget_s = t->o->time_budget;
    t->saved.decay_start_s = t->sched.decay_start_s;
    char *state = train_state_json(&t->saved, t->flags, t->n_flags, t->o->time_budget > 0);
    int rc = ckpt_save_run(t->o->out, t->m, t->tok, state, 1, t->memory ? &t->mem : NULL, err, sizeof err);
    free(state);
    if (rc) die(EXIT_RUNTIME, "%s", err);
}

// The periodic checkpoint (every --save-every steps, before the last one: finish saves that).
static void report_save(train_t *t) {
    if (t->saved.step % t->o->save_every != 0 || t->saved.step >= t->stop) return;
    t->saved.elapsed += cli_now() - t->t_start;
    t->t_start = cli_now();
    save_or_die(t);
}

// ---------------------------------------------------------------------------------------------
// the loop and finish

// MPI: the ranks stop together. A signal seen by any rank, a failed log write (rank 0 writes the log) and
// the time budget on rank 0's clock stop every rank after this step.
// Returns whether the ranks stop for a signal. A signal that lands on a rank after this sum is
// counted at the next step's: every rank must decide on the summed flags, never on its own
// g_interrupted, or one rank leaves the loop while the others wait in the next step's sums.
static int agree_to_stop(train_t *t, int *over_budget) {
    int f[3] = {g_interrupted != 0, t->rank == 0 && *over_budget, t->rep.log_failed};
    dist_max_ints(f, 3);
    if (f[0] && !g_interrupted) g_interrupted = SIGTERM;
    *over_budget = f[1];
    t->rep.log_failed = f[2];
    return f[0];
}

// Steps until the stop step, a signal or the time budget. Returns 0 or the exit status of a failed step;
// *stop_reason says why it stopped early (NULL: it reached its stop step or failed).
static int run_steps(train_t *t, const char **stop_reason) {
    const opts_t *o = t->o;
    *stop_reason = NULL;
    if (t->saved.step == 0 && (o->eval_at_start || o->init_from[0])) report_start(t);
    while (t->saved.step < t->stop) {
        double lr = schedule_lr(&t->sched, t->saved.step, t->saved.elapsed + (cli_now() - t->t_start));
        dist_bcast_double(&lr);  // MPI: rank 0's clock decides a --time-budget schedule
        g_step_running = t->saved.step < 1000000000L ? (sig_atomic_t)(t->saved.step + 1) : 0;
        // --threads 0 on one process: the thread count follows the machine's load (cli/thread_tuner.h)
        if (t->tune) cli_use_threads(tuner_next(&t->tuner));
        double t_step = cli_now();
        int status = train_step(t, lr);
        if (t->tune) tuner_done(&t->tuner, cli_now() - t_step, stderr);
        g_step_running = 0;
        if (status) return status;
        int over_budget = o->time_budget > 0 && t->saved.elapsed + (cli_now() - t->t_start) >= o->time_budget;
        report_progress(t, lr, cli_now(), over_budget);
        report_eval(t, lr);
        report_save(t);
        int interrupted = g_interrupted != 0;
        if (t->size > 1) interrupted = agree_to_stop(t, &over_budget);
        if (interrupted) {
            *stop_reason = "interrupted";
            break;
        }
        if (t->rep.log_failed) {
            *stop_reason = "log write failed";
            break;
        }
        if (over_budget) {
            *stop_reason = "time budget reached";
            break;
        }
    }
    return 0;
}

// Windows mode over tokens[0..n) (eval_sequence's windows: w·ctx .. w·ctx + ctx, each starting empty),
// with the targets' losses by visible context into bk when it is not NULL (cleared first).
static void eval_windows(train_t *t, const int32_t *tokens, size_t n, eval_sums_t *s, eval_buckets_t *bk) {
    *s = (eval_sums_t){0};
    if (bk) eval_buckets_clear(bk);
    if (n < 2) return;  // no target
    eval_plan_t p;
    char err[256];
    CHECK(eval_plan_init(&p, EVAL_WINDOWS, n, t->T, 0, 0, err, sizeof err) == 0);
    eval_run_plan(t->m, t->tok, tokens, &p, s, bk);
}

// The buckets of every rank added up (each rank's own n_buckets replaced by the sum's).
static void eval_buckets_over_ranks(eval_buckets_t *bk) {
    enum { NB = EVAL_MAX_BUCKETS };
    double v[3 * NB];
    for (int b = 0; b < NB; b++) v[b] = bk->nats[b], v[NB + b] = (double)bk->tokens[b], v[2 * NB + b] = (double)bk->bytes[b];
    dist_sum_doubles(v, 3 * NB);
    bk->n_buckets = 0;
    for (int b = 0; b < NB; b++) {
        bk->nats[b] = v[b];
        bk->tokens[b] = (size_t)v[NB + b];
        bk->bytes[b] = (size_t)v[2 * NB + b];
        if (bk->tokens[b]) bk->n_buckets = b + 1;
    }
}

// MPI: windows mode over the first n validation tokens, its windows dealt out in contiguous runs, rank r
// scoring windows [r·W/size, (r+1)·W/size) (window w covers tokens w·ctx .. w·ctx + ctx), then the sums (and
// buckets: a window's visible contexts do not depend on where it starts) added up; rank 0 alone scores them
// all for a model keeping usage statistics (`alone`, as eval_random).
static void eval_windows_shared(train_t *t, size_t n, eval_sums_t *s, int alone, eval_buckets_t *bk) {
    size_t W = eval_num_windows(n, t->T), T = (size_t)t->T;
    size_t w0 = alone ? 0 : W * (size_t)t->rank / (size_t)t->size, w1 = alone ? W : W * (size_t)(t->rank + 1) / (size_t)t->size;
    *s = (eval_sums_t){0};
    if (bk) eval_buckets_clear(bk);
    if (w1 > w0 && (!alone || t->rank == 0)) {
        size_t len = n - w0 * T < (w1 - w0) * T + 1 ? n - w0 * T : (w1 - w0) * T + 1;
        eval_windows(t, t->ds.val + w0 * T, len, s, bk);
    }
    if (!alone) eval_sums_over_ranks(s);
    if (!alone && bk) eval_buckets_over_ranks(bk);
}

// The final evaluation (--final-eval): the whole validation split, its first N tokens, or none (a line says
// so; no CSV row). A memory model is evaluated in memory mode, with its own state. --by-position: the same
// pass buckets its targets by visible context (infer --eval --by-position's buckets, windows or memory
// mode as evaluated here) into the CSV; none without a final evaluation (a line on stderr says so).
// Returns 0, or EXIT_RUNTIME when the CSV cannot be written (one line).
static int report_final(train_t *t) {
    const char *bp_path = t->o->by_position;
    if (t->final_eval_tokens == 0) {
        printf("final step %ld | no final evaluation (--final-eval none)\n", t->saved.step);
        if (bp_path[0] && t->rank == 0) fprintf(stderr, "train: no --by-position CSV: --final-eval none skips the final evaluation\n");
        return 0;
    }
    eval_buckets_t bk, *bp = bp_path[0] ? &bk : NULL;
    eval_sums_t s;
    double t0 = cli_now();
    int stats = model_stats_begin(t->m);  // pkm layers: slot usage over the final evaluation
    size_t n_val = t->ds.n_val, n = n_val;
    if (t->final_eval_tokens > 0 && (size_t)t->final_eval_tokens + 1 < n_val) n = (size_t)t->final_eval_tokens + 1;
    char mode[64] = "", what[256], head[64];
    if (t->memory) {
        eval_memory(t, n, &s, bp);
        snprintf(mode, sizeof mode, ", memory mode M %d", t->memory);
    } else if (t->size == 1) {
        eval_windows(t, t->ds.val, n, &s, bp);
    } else {
        eval_windows_shared(t, n, &s, stats > 0, bp);
    }
    if (n == n_val)
        snprintf(what, sizeof what, "whole validation split%s, %zu tokens, %.1fs", mode, s.tokens, cli_now() - t0);
    else
        snprintf(what, sizeof what, "--final-eval %ld: the first %zu of the validation split's %zu tokens%s, %zu scored, %.1fs",
                 t->final_eval_tokens, n, n_val, mode, s.tokens, cli_now() - t0);
    snprintf(head, sizeof head, "final step %ld", t->saved.step);
    report_eval_done(t, "final", head, &s, what, NAN, stats);
    if (!bp || t->rank != 0) return 0;  // rank 0 alone writes (docs/mpi.md)
    char err[1024];
    if (eval_report_csv(bp_path, bp, err, sizeof err)) {
        fprintf(stderr, "train: --by-position: %s\n", err);
        return EXIT_RUNTIME;
    }
    return 0;
}

// After the steps: the final evaluation (skipped when stopping early to resume later) and the last
// checkpoint. Returns the exit status.
static int finish_run(train_t *t, int status, const char *stop_reason) {
    t->saved.elapsed += cli_now() - t->t_start;
    t->t_start = cli_now();  // the final row's elapsed_s then counts the final evaluation too
    if (status) return status;
    if (stop_reason) printf("%s at step %ld\n", stop_reason, t->saved.step);
    int budget_end = stop_reason && strcmp(stop_reason, "time budget reached") == 0;
    if (budget_end && t->saved.step <= t->o->warmup)
        fprintf(stderr, "train: the time budget ended during warmup (step %ld of --warmup %ld): the learning rate never decayed\n",
                t->saved.step, t->o->warmup);
    int final_failed = 0;
    if (t->task && (t->saved.step == t->o->steps || budget_end)) report_task_eval(t, "final", NAN);
    else if (t->saved.step == t->o->steps || budget_end) final_failed = report_final(t);
    else if (t->o->by_position[0] && t->rank == 0)
        fprintf(stderr, "train: no --by-position CSV: the run stopped at step %ld of --steps %ld (%s), before the final evaluation\n",
                t->saved.step, t->o->steps, stop_reason ? stop_reason : "--stop-after");
    save_or_die(t);
    // MPI: the other ranks wait for rank 0's checkpoint (a rank leaving with a non-zero status, e.g. 130,
    // makes mpirun end the job, which could stop rank 0 mid-write).
    int saved = 1;
    dist_max_ints(&saved, 1);
    if (t->size > 1 && t->sync.calls)
        printf("mpi: weights and AdamW moments identical on all %d ranks at step %ld | gradient sums: %.2f MB per step in %.0f "
               "allreduce calls, %.2f ms per step (and %.2f ms waiting for the slowest rank)\n", t->size, t->saved.step,
               4e-6 * t->sync.floats / (double)t->sync.calls, (double)t->sync.buckets / (double)t->sync.calls,
               1e3 * t->sync.seconds / (double)t->sync.calls, 1e3 * t->sync.wait_seconds / (double)t->sync.calls);
    printf("checkpoint: %s\n", t->o->out);
    if (t->rep.log) {
        errno = 0;
        if (fclose(t->rep.log) != 0) {
            fprintf(stderr, "attnlab: cannot write log '%s': %s\n", t->rep.log_path, strerror(errno ? errno : EIO));
            t->rep.log_failed = 1;
        }
        t->rep.log = NULL;
    }
    if (t->rep.log_failed || final_failed) return EXIT_RUNTIME;
    return g_interrupted ? EXIT_INTERRUPTED : 0;
}

static void free_run(train_t *t) {
    if (t->rep.log) fclose(t->rep.log);
    grad_sync_free(&t->sync);
    free(t->x);
    free(t->y);
    if (t->memory) model_mem_free(&t->mem);
    if (t->streams_on) streams_free(&t->streams);
    dataset_free(&t->ds);
    if (t->resumed) {
        ckpt_free(&t->ck);
    } else {
        model_free(t->m);
        tok_free(t->tok);
    }
}

// --check (what `compare` asks before anything trains): the flags, the options as a whole, the text
// and the layer spec are validated as a fresh run would validate them (model_build_registry: the
// parameter arenas are never allocated), then one line "check: SPEC | N parameters | steps S";
// nothing is trained, locked or written. Errors are the run's own messages and exit codes.
static int check_run(opts_t *o, flag_t *flags, int n_flags, const char *const *files, int n_files) {
    if (o->resume[0]) die(EXIT_USAGE, "train: --check validates a new run; it does not take --resume");
    train_t t = {.o = o, .flags = flags, .n_flags = n_flags, .file = n_files ? files[0] : "", .files = files, .n_files = n_files};
    tok_kind_t tkind;
    uint64_t hash;
    char err[1024];
    check_options(&t, &tkind);
    if (o->init_from[0]) read_init_source(&t);
    load_data(&t, tkind, &hash);
    model_dims_t dims = {.vocab = t.tok->vocab_size, .dim = (int)o->dim, .heads = (int)o->heads, .ctx = (int)o->ctx,
                         .pos = t.pos, .memory = t.memory};
    if (model_build_registry(&t.fresh_model, &dims, o->layers, err, sizeof err)) die(EXIT_USAGE, "train: %s", err);
    printf("check: %s | %zu parameters | steps %ld\n", t.fresh_model.spec, params_count_trainable(&t.fresh_model.params), o->steps);
    model_free(&t.fresh_model);
    if (o->init_from[0]) st_free(&t.init_src);
    tok_free(&t.fresh_tok);
    dataset_free(&t.ds);
    return 0;
}

// ---------------------------------------------------------------------------------------------

static int train_main(int argc, char **argv) {
    opts_t o = {0};
    flag_t flags[MAX_FLAGS];
    int n_flags = bind_flags(&o, flags);
    enum { MAX_FILES = 256 };
    const char *pos[MAX_FILES];
    int n_pos, want_help, want_version, export_mode = 0;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--export") == 0) export_mode = i;
    if (export_mode && dist_size() > 1) die(EXIT_USAGE, "train: --export runs as one process, not under mpirun");
    if (export_mode) {
        if (argc != 4 || export_mode != 1) die(EXIT_USAGE, "train: usage: train --export CKPT OUT");
        return do_export(argv[2], argv[3]);
    }
    args_parse(flags, n_flags, argc, argv, pos, MAX_FILES, &n_pos, &want_help, &want_version, "train");
    if (want_help) {
        args_print_help(flags, n_flags, USAGE);
        return 0;
    }
    if (want_version) {
        printf("attnlab train %s\n", ATTNLAB_VERSION);
        return 0;
    }
    if (o.list_kinds) return print_kinds();
    if (o.prepare && dist_size() > 1) die(EXIT_USAGE, "train: --prepare runs as one process, not under mpirun");
    if (o.prepare) return do_prepare(&o, flags, n_flags, pos, n_pos);
    if (o.task[0] && n_pos != 0) die(EXIT_USAGE, "train: --task %s trains on generated sequences, not on a FILE ('%s')", o.task, pos[0]);
    if (!o.task[0] && n_pos < 1) die(EXIT_USAGE, "train: expected one text FILE or token shards to train on (see --help)");
    if (o.resume[0] && o.init_from[0]) die(EXIT_USAGE, "train: --resume and --init-from exclude each other");
    if (o.check) return check_run(&o, flags, n_flags, pos, n_pos);
    // MPI: threads per rank default to this machine's cores shared among its ranks.
    if (dist_size() > 1 && !args_find(flags, n_flags, "threads")->given) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        o.threads = cores / dist_local_size() > 1 ? cores / dist_local_size() : 1;
    }
    cli_set_threads(o.threads);

    train_t run;
    setup_run(&run, &o, flags, n_flags, pos, n_pos);
    const char *stop_reason;
    int status = run_steps(&run, &stop_reason);
    status = finish_run(&run, status, stop_reason);
    free_run(&run);
    args_release();  // the options' strings restored by --resume
    return status;
}

// MPI (docs/mpi.md): started only under mpirun, and finalized on every return, which every rank reaches
// together; an error exit (die) skips MPI_Finalize, so mpirun sees a rank leave early and ends the job
// instead of the others waiting for it.
int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    char dist_err[256];
    if (dist_init(&argc, &argv, dist_err, sizeof dist_err)) die(EXIT_USAGE, "train: %s", dist_err);
    // Rank 0 alone prints progress and results; every rank keeps stderr for its errors.
    if (dist_rank() != 0 && !freopen("/dev/null", "w", stdout)) die(EXIT_RUNTIME, "train: rank %d: cannot silence stdout", dist_rank());
    int status = train_main(argc, argv);
    dist_finalize();
    return status;
}
