// dataset.c — whole-file loading (read once, hashed), the nanoGPT 90/10 split, batch and eval windows
// (see dataset.h).
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

uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;  // see dataset.h: not the standard basis, for compatibility
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

int dataset_read(dataset_t *ds, const char *path, char *err, size_t errlen) {
    memset(ds, 0, sizeof *ds);
    if (read_file_bytes(path, &ds->text, &ds->text_bytes, err, errlen)) return -1;
    ds->text_fnv1a64 = fnv1a64(ds->text, ds->text_bytes);
    return 0;
}

int dataset_tokenize(dataset_t *ds, const char *path, const tokenizer_t *tok, int ctx, char *err, size_t errlen) {
    if (ctx < 1) {
        dataset_free(ds);
        return seterr(err, errlen, "ctx must be at least 1 (got %d)", ctx);
    }
    size_t plen = strlen(path) + 3;
    char *label = xmalloc(plen);
    snprintf(label, plen, "'%s'", path);
    int rc = tok_encode(tok, ds->text, ds->text_bytes, &ds->tokens, &ds->n_tokens, label, err, errlen);
    free(label);
    if (rc) {
        dataset_free(ds);
        return -1;
    }
    size_t n = ds->n_tokens;
    ds->n_train = n / 10 * 9 + n % 10 * 9 / 10;  // floor(0.9 n) without overflow
    size_t n_val = n - ds->n_train, need = (size_t)ctx + 1;
    const char *which = ds->n_train < need ? "train" : n_val < need ? "validation" : NULL;
    if (which) {
        seterr(err, errlen,
               "%s split of '%s' has %zu tokens, fewer than ctx+1 = %zu; use a longer file or a smaller --ctx "
               "(the file has %zu tokens: %zu train, %zu validation)",
               which, path, which[0] == 't' ? ds->n_train : n_val, need, n, ds->n_train, n_val);
        dataset_free(ds);
        return -1;
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
    memset(ds, 0, sizeof *ds);
}

// ---------------------------------------------------------------------------- windows

// B windows of T+1 tokens from tokens[lo, lo + span), offsets uniform in [lo, lo + span - T - 1].
static void random_windows(const int32_t *tokens, size_t lo, size_t span, rng_t *rng, int B, int T,
                           int32_t *x, int32_t *y) {
    CHECK(B >= 1 && T >= 1 && span >= (size_t)T + 1);
    for (int b = 0; b < B; b++) {
        size_t off = lo + (size_t)rng_below(rng, span - (size_t)T);
        const int32_t *w = tokens + off;
        memcpy(x + (size_t)b * (size_t)T, w, (size_t)T * sizeof(int32_t));
        memcpy(y + (size_t)b * (size_t)T, w + 1, (size_t)T * sizeof(int32_t));
    }
}

void dataset_train_batch(const dataset_t *ds, rng_t *rng, int B, int T, int32_t *x, int32_t *y) {
    random_windows(ds->tokens, 0, ds->n_train, rng, B, T, x, y);
}

void dataset_val_batch(const dataset_t *ds, rng_t *rng, int B, int T, int32_t *x, int32_t *y) {
    random_windows(ds->tokens, ds->n_train, ds->n_tokens - ds->n_train, rng, B, T, x, y);
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
