// dataset.c — whole-file loading (read once, hashed), mapped shards, the nanoGPT 90/10 split or
// --val, batch, stream and eval windows (see dataset.h).
#include "data/dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/check.h"

// ---------------------------------------------------------------------------- files

int read_file_bytes(const char *path, uint8_t **out, size_t *n, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return seterr(err, errlen, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return seterr(err, errlen, "cannot open '%s': %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return seterr(err, errlen, "'%s' is a directory, not a text file", path);
    }
    // Read to EOF with a growing buffer, so pipes and files that change size also work;
    // for a regular file the first allocation is exact.
    size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 1 << 16, len = 0;
    uint8_t *buf = xmalloc(cap);
    for (;;) {
        if (len == cap) {
            uint8_t *grown = realloc(buf, cap * 2);
            if (!grown) die(EXIT_RUNTIME, "out of memory reading '%s'", path);
            buf = grown;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return seterr(err, errlen, "cannot read '%s': %s", path, strerror(e));
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    if (len == 0) {
        free(buf);
        return seterr(err, errlen, "'%s' is empty", path);
    }
    *out = buf;
    *n = len;
    return 0;
}

// ---------------------------------------------------------------------------- dataset

uint64_t fnv1a64_more(uint64_t h, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

uint64_t fnv1a64(const uint8_t *p, size_t n) {
    return fnv1a64_more(1469598103934665603ull, p, n);  // see dataset.h: not the standard basis, for compatibility
}

size_t dataset_bpe_cut(size_t n) { return n / 10 * 9 + n % 10 * 9 / 10; }

size_t dataset_bpe_train_tokens(const tokenizer_t *tok, const int32_t *ids, size_t n, size_t cut) {
    size_t k = 0, end = 0;
    while (k < n && end + (size_t)tok_token_bytes(tok, ids[k]) <= cut) end += (size_t)tok_token_bytes(tok, ids[k++]);
    return k;
}

int dataset_read(dataset_t *ds, const char *path, char *err, size_t errlen) {
    memset(ds, 0, sizeof *ds);
    if (read_file_bytes(path, &ds->text, &ds->text_bytes, err, errlen)) return -1;
    ds->text_fnv1a64 = fnv1a64(ds->text, ds->text_bytes);
    return 0;
}

// The split sizes against ctx (n_train, n_tokens and, unless all_train, the validation tokens set).
static int check_splits(dataset_t *ds, const char *path, int ctx, char *err, size_t errlen) {
    size_t n = ds->n_tokens, n_val = ds->all_train ? 0 : n - ds->n_train, need = (size_t)ctx + 1;
    const char *which = ds->n_train < need ? "train" : !ds->all_train && n_val < need ? "validation" : NULL;
    if (!which) return 0;
    if (ds->all_train)
        return seterr(err, errlen, "'%s' has %zu tokens, fewer than ctx+1 = %zu; use a longer file or a smaller --ctx", path, n, need);
    return seterr(err, errlen,
                  "%s split of '%s' has %zu tokens, fewer than ctx+1 = %zu; use a longer file or a smaller --ctx "
                  "(the file has %zu tokens: %zu train, %zu validation)",
                  which, path, which[0] == 't' ? ds->n_train : n_val, need, n, ds->n_train, n_val);
}

int dataset_tokenize(dataset_t *ds, const char *path, const tokenizer_t *tok, int ctx, char *err, size_t errlen) {
    if (ctx < 1) {
        dataset_free(ds);
        return seterr(err, errlen, "ctx must be at least 1 (got %d)", ctx);
    }
    size_t plen = strlen(path) + 3;
    char *label = xmalloc(plen);
    snprintf(label, plen, "'%s'", path);
    int32_t *ids;
    size_t n;
    int rc = tok_encode(tok, ds->text, ds->text_bytes, &ids, &n, label, err, errlen);
    free(label);
    if (rc) {
        dataset_free(ds);
        return -1;
    }
    ds->tokens = ids;
    ds->n_tokens = n;
    if (ds->all_train) ds->n_train = n;
    else if (tok->kind == TOK_BPE) ds->n_train = dataset_bpe_train_tokens(tok, ids, n, dataset_bpe_cut(ds->text_bytes));
    else ds->n_train = n / 10 * 9 + n % 10 * 9 / 10;  // floor(0.9 n) without overflow
    if (check_splits(ds, path, ctx, err, errlen)) {
        dataset_free(ds);
        return -1;
    }
    if (!ds->all_train) {
        ds->val = ds->tokens + ds->n_train;
        ds->n_val = n - ds->n_train;
    }
    return 0;
}

int dataset_load(dataset_t *ds, const char *path, const tokenizer_t *tok, int ctx, char *err, size_t errlen) {
    memset(ds, 0, sizeof *ds);
    if (ctx < 1) return seterr(err, errlen, "ctx must be at least 1 (got %d)", ctx);  // before reading a pipe
    if (dataset_read(ds, path, err, errlen)) return -1;
    return dataset_tokenize(ds, path, tok, ctx, err, errlen);
}

void dataset_free(dataset_t *ds) {
    free(ds->text);
    free(ds->tokens);
    for (int k = 0; k < ds->n_shards; k++) shard_close(&ds->shards[k]);
    free(ds->shards);
    free(ds->shard_lo);
    free(ds->val_owned);
    memset(ds, 0, sizeof *ds);
}

// ---------------------------------------------------------------------------- shards

static void describe_tok(const tokenizer_t *t, char *buf, size_t n) {
    snprintf(buf, n, "%s, %d tokens", tok_kind_name(t->kind), t->vocab_size);
}

int dataset_open_shards(dataset_t *ds, const char *const *paths, int n, char *err, size_t errlen) {
    memset(ds, 0, sizeof *ds);
    CHECK(n >= 1);
    ds->shards = xcalloc((size_t)n, sizeof *ds->shards);
    ds->shard_lo = xcalloc((size_t)n + 1, sizeof *ds->shard_lo);
    uint64_t h = fnv1a64(NULL, 0);
    for (int k = 0; k < n; k++) {
        shard_t *s = &ds->shards[k];
        if (shard_open(s, paths[k], err, errlen)) {
            dataset_free(ds);
            return -1;
        }
        ds->n_shards = k + 1;
        if (k > 0 && s->tok_fnv1a64 != ds->shards[0].tok_fnv1a64) {
            char a[64], b[64];
            describe_tok(&s->tok, a, sizeof a);
            describe_tok(&ds->shards[0].tok, b, sizeof b);
            seterr(err, errlen, "shard '%s' was made by another tokenizer (%s) than shard '%s' (%s)", paths[k], a, paths[0], b);
            dataset_free(ds);
            return -1;
        }
        ds->shard_lo[k + 1] = ds->shard_lo[k] + s->n_tokens;
        ds->text_bytes += (size_t)s->text_bytes;
        uint8_t rec[16];
        for (int i = 0; i < 8; i++) rec[i] = (uint8_t)(s->text_fnv1a64 >> (8 * i)), rec[8 + i] = (uint8_t)(s->text_bytes >> (8 * i));
        h = fnv1a64_more(h, rec, 16);
    }
    ds->text_fnv1a64 = n == 1 ? ds->shards[0].text_fnv1a64 : h;
    ds->n_tokens = (size_t)ds->shard_lo[n];
    ds->vocab = ds->shards[0].tok.vocab_size;
    return 0;
}

int dataset_check_shards(dataset_t *ds, const tokenizer_t *tok, const char *whose, int ctx, char *err, size_t errlen) {
    const shard_t *s0 = &ds->shards[0];
    if (s0->tok_fnv1a64 != shard_tok_hash(tok)) {
        char a[64], b[64];
        describe_tok(&s0->tok, a, sizeof a);
        describe_tok(tok, b, sizeof b);
        seterr(err, errlen, "shard '%s' was made by another tokenizer (%s) than %s (%s)", s0->path, a, whose, b);
        dataset_free(ds);
        return -1;
    }
    ds->vocab = tok->vocab_size;
    int n = ds->n_shards;
    ds->n_train = ds->all_train ? ds->n_tokens : (size_t)(ds->shard_lo[n - 1] + ds->shards[n - 1].n_train);
    if (ctx < 1 || check_splits(ds, ds->n_shards == 1 ? s0->path : "the shards", ctx < 1 ? 1 : ctx, err, errlen)) {
        if (ctx < 1) seterr(err, errlen, "ctx must be at least 1 (got %d)", ctx);
        dataset_free(ds);
        return -1;
    }
    if (!ds->all_train) {
        ds->n_val = ds->n_tokens - ds->n_train;
        ds->val_owned = xmalloc(ds->n_val * sizeof *ds->val_owned);
        dataset_tokens(ds, ds->n_train, ds->n_val, ds->val_owned);
        ds->val = ds->val_owned;
    }
    return 0;
}

int dataset_read_shard(const char *path, const tokenizer_t *tok, const char *whose, int32_t **ids, size_t *n, char *err,
                       size_t errlen) {
    dataset_t v;
    const char *one[1] = {path};
    if (dataset_open_shards(&v, one, 1, err, errlen)) return -1;
    v.all_train = 1;
    if (dataset_check_shards(&v, tok, whose, 1, err, errlen)) {
        dataset_free(&v);
        return -1;
    }
    *n = v.n_tokens;
    *ids = xmalloc((*n ? *n : 1) * sizeof **ids);
    dataset_tokens(&v, 0, *n, *ids);
    dataset_free(&v);
    return 0;
}

int dataset_load_val(dataset_t *ds, const char *path, const tokenizer_t *tok, int ctx, char *err, size_t errlen) {
    CHECK(ds->all_train && !ds->val_owned);
    int32_t *ids = NULL;
    size_t n = 0;
    if (shard_is_shard(path)) {
        if (dataset_read_shard(path, tok, "the training data's", &ids, &n, err, errlen)) return -1;
    } else {
        uint8_t *text;
        size_t bytes;
        if (read_file_bytes(path, &text, &bytes, err, errlen)) return -1;
        size_t plen = strlen(path) + 10;
        char *label = xmalloc(plen);
        snprintf(label, plen, "--val '%s'", path);
        int rc = tok_encode(tok, text, bytes, &ids, &n, label, err, errlen);
        free(label);
        free(text);
        if (rc) return -1;
    }
    if (n < (size_t)ctx + 1) {
        free(ids);
        return seterr(err, errlen, "--val '%s' has %zu tokens, fewer than ctx+1 = %d; use a longer file or a smaller --ctx", path, n, ctx + 1);
    }
    ds->val_owned = ids;
    ds->val = ids;
    ds->n_val = n;
    return 0;
}

void dataset_tokens(const dataset_t *ds, size_t off, size_t n, int32_t *dst) {
    CHECK(off <= ds->n_tokens && n <= ds->n_tokens - off);
    if (ds->tokens) {
        memcpy(dst, ds->tokens + off, n * sizeof *dst);
        return;
    }
    // the shard holding off: the last k with shard_lo[k] <= off
    int lo = 0, hi = ds->n_shards - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (ds->shard_lo[mid] <= off) lo = mid;
        else hi = mid - 1;
    }
    char err[512];
    for (int k = lo; n > 0; k++) {
        CHECK(k < ds->n_shards);
        uint64_t in = off - ds->shard_lo[k], avail = ds->shards[k].n_tokens - in;
        size_t take = n < avail ? n : (size_t)avail;
        if (shard_read(&ds->shards[k], in, take, ds->vocab, dst, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
        dst += take;
        off += take;
        n -= take;
    }
}

int dataset_stream_batch(const dataset_t *ds, streams_t *s, int32_t *x, int32_t *y) {
    int wrapped = streams_begin_segment(s);
    size_t T = (size_t)s->T;
    for (int b = 0; b < s->B; b++) {
        size_t start = streams_row_start(s, b) + s->offset;
        dataset_tokens(ds, start, T, x + (size_t)b * T);
        dataset_tokens(ds, start + 1, T, y + (size_t)b * T);
    }
    s->offset += T;
    return wrapped;
}

// ---------------------------------------------------------------------------- windows

void dataset_train_batch(const dataset_t *ds, rng_t *rng, int B, int T, int32_t *x, int32_t *y) {
    CHECK(B >= 1 && T >= 1 && ds->n_train >= (size_t)T + 1);
    for (int b = 0; b < B; b++) {  // B windows of T+1 tokens, offsets uniform in [0, n_train - T - 1]
        size_t off = (size_t)rng_below(rng, ds->n_train - (size_t)T);
        dataset_tokens(ds, off, (size_t)T, x + (size_t)b * (size_t)T);
        dataset_tokens(ds, off + 1, (size_t)T, y + (size_t)b * (size_t)T);
    }
}

void dataset_val_batch(const dataset_t *ds, rng_t *rng, int B, int T, int32_t *x, int32_t *y) {
    CHECK(B >= 1 && T >= 1 && ds->n_val >= (size_t)T + 1);
    for (int b = 0; b < B; b++) {
        const int32_t *w = ds->val + (size_t)rng_below(rng, ds->n_val - (size_t)T);
        memcpy(x + (size_t)b * (size_t)T, w, (size_t)T * sizeof(int32_t));
        memcpy(y + (size_t)b * (size_t)T, w + 1, (size_t)T * sizeof(int32_t));
    }
}

size_t eval_num_windows(size_t n, int ctx) {
    CHECK(ctx >= 1);
    return n < 2 ? 0 : (n - 2) / (size_t)ctx + 1;  // ceil((n-1)/ctx)
}

int eval_window(const int32_t *tokens, size_t n, int ctx, size_t w, int32_t *x, int32_t *y) {
    CHECK(w < eval_num_windows(n, ctx));
    size_t start = w * (size_t)ctx, left = n - 1 - start;  // tokens still to predict
    int len = left < (size_t)ctx ? (int)left : ctx;
    memcpy(x, tokens + start, (size_t)len * sizeof(int32_t));
    memcpy(y, tokens + start + 1, (size_t)len * sizeof(int32_t));
    return len;
}
