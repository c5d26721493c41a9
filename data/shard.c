// shard.c — token shards: streaming preparation, checked mapping, widening reads (see shard.h).
#include "data/shard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/check.h"
#include "data/dataset.h"
#include "tokenizer/bpe_train.h"

size_t shard_chunk_bytes = 4 << 20;

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint32_t get_u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t shard_tok_hash(const tokenizer_t *tok) {
    char *j = tok_to_json(tok);
    uint64_t h = fnv1a64((const uint8_t *)j, strlen(j));
    free(j);
    return h;
}

int shard_is_shard(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    struct stat st;
    char magic[8];
    int yes = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read(fd, magic, 8) == 8 && memcmp(magic, SHARD_MAGIC, 8) == 0;
    close(fd);
    return yes;
}

// ---------------------------------------------------------------------------- reading

int shard_open(shard_t *s, const char *path, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return seterr(err, errlen, "cannot open shard '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return seterr(err, errlen, "shard '%s' is not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < SHARD_HEADER) {
        close(fd);
        return seterr(err, errlen, "shard '%s' is truncated: %zu bytes, shorter than its %d-byte header", path, size, SHARD_HEADER);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return seterr(err, errlen, "cannot map shard '%s': %s", path, strerror(e));
    madvise(map, size, MADV_RANDOM);  // batches read a few windows: no read-ahead (shard_read drops what it faulted in)
    const uint8_t *h = map;
    s->map = map;
    s->map_len = size;
    s->path = xstrdup(path);
    uint32_t version = get_u32(h + 8), bits = get_u32(h + 12), jlen = get_u32(h + 56), data_off = get_u32(h + 60);
    s->n_tokens = get_u64(h + 16);
    s->n_train = get_u64(h + 24);
    s->text_bytes = get_u64(h + 32);
    s->text_fnv1a64 = get_u64(h + 40);
    s->tok_fnv1a64 = get_u64(h + 48);
    char sub[512];
    if (memcmp(h, SHARD_MAGIC, 8) != 0) {
        seterr(err, errlen, "'%s' is not a token shard (no %s magic); make one with train --prepare TEXT OUT", path, SHARD_MAGIC);
        goto fail;
    }
    if (version != SHARD_VERSION) {
        seterr(err, errlen, "shard '%s' has version %u; this build reads version %d", path, version, SHARD_VERSION);
        goto fail;
    }
    if (bits != 16 && bits != 32) {
        seterr(err, errlen, "shard '%s' has token width %u bits; expected 16 or 32", path, bits);
        goto fail;
    }
    s->width = (int)bits / 8;
    if (data_off != (SHARD_HEADER + (uint64_t)jlen + 63) / 64 * 64) {
        seterr(err, errlen, "shard '%s' is damaged: data offset %u does not follow its %u-byte tokenizer JSON", path, data_off, jlen);
        goto fail;
    }
    if (data_off > size || s->n_tokens > (UINT64_MAX - data_off) / (uint64_t)s->width ||
        (uint64_t)size != data_off + s->n_tokens * (uint64_t)s->width) {
        seterr(err, errlen, "shard '%s' is %s: its header says %llu tokens of %d bytes after byte %u, the file has %zu bytes",
               path, data_off > size || (uint64_t)size < data_off + s->n_tokens * (uint64_t)s->width ? "truncated" : "damaged (longer than its header says)",
               (unsigned long long)s->n_tokens, s->width, data_off, size);
        goto fail;
    }
    if (s->n_train > s->n_tokens) {
        seterr(err, errlen, "shard '%s' is damaged: its training split (%llu) exceeds its %llu tokens", path,
               (unsigned long long)s->n_train, (unsigned long long)s->n_tokens);
        goto fail;
    }
    if (fnv1a64(h + SHARD_HEADER, jlen) != s->tok_fnv1a64) {
        seterr(err, errlen, "shard '%s' is damaged: its tokenizer JSON does not match the hash in its header", path);
        goto fail;
    }
    char *json = xmalloc((size_t)jlen + 1);
    memcpy(json, h + SHARD_HEADER, jlen);
    json[jlen] = 0;
    int rc = tok_from_json(&s->tok, json, sub, sizeof sub);
    free(json);
    if (rc) {
        seterr(err, errlen, "shard '%s': %s", path, sub);
        goto fail;
    }
    if (s->width == 2 && s->tok.vocab_size > 65536) {
        seterr(err, errlen, "shard '%s' is damaged: 16-bit tokens for a vocabulary of %d", path, s->tok.vocab_size);
        goto fail;
    }
    s->data = h + data_off;
    return 0;
fail:
    shard_close(s);
    return -1;
}

void shard_close(shard_t *s) {
    if (s->map) munmap(s->map, s->map_len);
    tok_free(&s->tok);
    free(s->path);
    memset(s, 0, sizeof *s);
}

// Unmap the pages around bytes [p, p+n) of s's mapping from this process (MADV_DONTNEED: for a
// read-only file mapping they stay in the page cache; the next read faults them in again). The kernel
// maps up to fault_around_bytes (64 KB by default, at most a 2 MB page-table block) around every
// faulting page, MADV_RANDOM or not, so a run that read random windows of a large shard would
// otherwise keep growing its resident set towards the shard's size. The span dropped is the
// surrounding 2 MB-aligned blocks, clamped to the mapping.
static void drop_pages(const shard_t *s, const uint8_t *p, size_t n) {
    const uintptr_t block = (uintptr_t)2 << 20, base = (uintptr_t)s->map, end = base + s->map_len;
    uintptr_t lo = (uintptr_t)p & ~(block - 1), hi = ((uintptr_t)p + n + block - 1) & ~(block - 1);
    if (lo < base) lo = base;
    if (hi > end) hi = (end + 4095) & ~(uintptr_t)4095;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

int shard_read(const shard_t *s, uint64_t off, size_t n, int vocab, int32_t *dst, char *err, size_t errlen) {
    CHECK(off <= s->n_tokens && n <= s->n_tokens - off);
    const uint8_t *p = s->data + off * (uint64_t)s->width;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = s->width == 2 ? (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8 : get_u32(p + 4 * i);
        if (v >= (uint32_t)vocab)
            return seterr(err, errlen, "shard '%s': token %u at index %llu is outside the vocabulary of %d", s->path, v,
                          (unsigned long long)(off + i), vocab);
        dst[i] = (int32_t)v;
    }
    drop_pages(s, p, n * (size_t)s->width);
    return 0;
}

// ---------------------------------------------------------------------------- streaming text

typedef struct {
    int fd;
    const char *path;
    uint8_t *buf;
    size_t len, cap;  // buf[0, len) read and not yet consumed
    uint64_t pos;     // file offset of buf[0]
    uint64_t hash;    // fnv1a64 of every byte read so far
    uint64_t total;   // bytes read so far
    int eof;
} reader_t;

static int reader_open(reader_t *r, const char *path, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->fd = open(path, O_RDONLY);
    if (r->fd < 0) return seterr(err, errlen, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(r->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(r->fd);
        return seterr(err, errlen, "'%s' is a directory, not a text file", path);
    }
    r->hash = fnv1a64(NULL, 0);
    r->cap = 2 * shard_chunk_bytes;
    r->buf = xmalloc(r->cap);
    return 0;
}

static void reader_close(reader_t *r) {
    if (r->fd >= 0) close(r->fd);
    free(r->buf);
    r->buf = NULL;
}

// Drop the first k bytes, then read up to shard_chunk_bytes more (up to limit bytes of file in all).
// Returns 0, or -1 on a read error.
static int reader_fill(reader_t *r, size_t k, uint64_t limit, char *err, size_t errlen) {
    memmove(r->buf, r->buf + k, r->len - k);
    r->len -= k;
    r->pos += k;
    if (r->len + shard_chunk_bytes > r->cap) {  // a piece longer than a chunk: the buffer grows with it
        r->cap = 2 * (r->len + shard_chunk_bytes);
        uint8_t *grown = realloc(r->buf, r->cap);
        if (!grown) die(EXIT_RUNTIME, "out of memory reading '%s'", r->path);
        r->buf = grown;
    }
    size_t want = shard_chunk_bytes;
    if (r->total + want > limit) want = (size_t)(limit - r->total);
    size_t got = 0;
    while (got < want) {
        ssize_t n = read(r->fd, r->buf + r->len + got, want - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return seterr(err, errlen, "cannot read '%s': %s", r->path, strerror(errno));
        if (n == 0) break;
        got += (size_t)n;
    }
    for (size_t i = 0; i < got; i++) r->hash = (r->hash ^ r->buf[r->len + i]) * 0x100000001b3ull;
    if (got < want || r->total + got == limit) r->eof = 1;
    r->len += got;
    r->total += got;
    return 0;
}

static int file_size(const char *path, uint64_t *size, char *err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) != 0) return seterr(err, errlen, "cannot open '%s': %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return seterr(err, errlen, "'%s' is not a regular file (preparing a shard reads it by size)", path);
    if (st.st_size == 0) return seterr(err, errlen, "'%s' is empty", path);
    *size = (uint64_t)st.st_size;
    return 0;
}

int shard_learn_bpe(const char *path, int vocab, tokenizer_t *tok, char *err, size_t errlen) {
    memset(tok, 0, sizeof *tok);
    uint64_t size;
    if (file_size(path, &size, err, errlen)) return -1;
    uint64_t cut = size / 10 * 9 + size % 10 * 9 / 10;  // the training split: bytes [0, cut)
    bpe_counts_t *c = bpe_counts_new(err, errlen);
    if (!c) return -1;
    reader_t r;
    if (reader_open(&r, path, err, errlen)) {
        bpe_counts_free(c);
        return -1;
    }
    size_t used = 0;
    int rc = 0;
    for (;;) {
        if ((rc = reader_fill(&r, used, cut, err, errlen))) break;
        used = bpe_counts_add(c, r.buf, r.len, r.eof);
        if (r.eof) break;
    }
    reader_close(&r);
    int32_t *merges = NULL;
    if (rc == 0) rc = bpe_learn(c, vocab, &merges, err, errlen);
    bpe_counts_free(c);
    if (rc == 0) rc = tok_from_merges(tok, merges, vocab - 256, err, errlen);
    free(merges);
    return rc;
}

// ---------------------------------------------------------------------------- writing

typedef struct {
    FILE *f;
    int width;
    uint64_t count;
    uint8_t buf[1 << 16];
    size_t used;
} token_out_t;

static int put_tokens(token_out_t *o, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (o->used + 4 > sizeof o->buf) {
            if (fwrite(o->buf, 1, o->used, o->f) != o->used) return -1;
            o->used = 0;
        }
        uint32_t v = (uint32_t)ids[i];
        for (int k = 0; k < o->width; k++) o->buf[o->used++] = (uint8_t)(v >> (8 * k));
    }
    o->count += n;
    return 0;
}

int shard_prepare(const char *in_path, const char *out_path, const tokenizer_t *tok, uint64_t *n_tokens_out, char *err,
                  size_t errlen) {
    *n_tokens_out = 0;
    uint64_t size;
    if (file_size(in_path, &size, err, errlen)) return -1;
    // The split training on the text makes (dataset.h): bpe, the tokens that end within the first
    // floor(0.9 bytes) bytes; byte and char, floor(0.9 n) tokens.
    uint64_t cut = size / 10 * 9 + size % 10 * 9 / 10;
    size_t tmp_len = strlen(out_path) + 8;
    char *tmp = xmalloc(tmp_len);
    snprintf(tmp, tmp_len, "%s.tmp", out_path);
    token_out_t *o = xcalloc(1, sizeof *o);
    o->width = tok->vocab_size <= 65536 ? 2 : 4;
    o->f = fopen(tmp, "wb");
    reader_t r = {.fd = -1};
    int32_t *ids = NULL;
    size_t n_ids = 0, cap = 0;
    int rc = -1;
    if (!o->f) {
        seterr(err, errlen, "cannot write shard '%s': %s", tmp, strerror(errno));
        goto done;
    }
    char *json = tok_to_json(tok);
    uint32_t jlen = (uint32_t)strlen(json), data_off = (SHARD_HEADER + jlen + 63) / 64 * 64;
    uint8_t *head = xcalloc(data_off, 1);
    memcpy(head + SHARD_HEADER, json, jlen);
    free(json);
    int wrote = fwrite(head, 1, data_off, o->f) == data_off;  // the counts are filled in at the end
    if (!wrote) {
        free(head);
        seterr(err, errlen, "cannot write shard '%s': %s", tmp, strerror(errno));
        goto done;
    }
    if (reader_open(&r, in_path, err, errlen)) {
        free(head);
        goto done;
    }
    uint64_t n_train = 0, bytes_done = 0;
    size_t used = 0;
    int past_cut = 0;
    char what[512];
    snprintf(what, sizeof what, "'%s'", in_path);
    for (;;) {
        if (reader_fill(&r, used, size, err, errlen)) {
            free(head);
            goto done;
        }
        n_ids = 0;
        if (tok_encode_stream(tok, r.buf, r.len, r.eof, &ids, &n_ids, &cap, &used, r.pos, what, err, errlen)) {
            free(head);
            goto done;
        }
        for (size_t i = 0; i < n_ids && !past_cut; i++) {  // bpe: the tokens that end by the cut train
            bytes_done += (uint64_t)tok_token_bytes(tok, ids[i]);
            if (bytes_done <= cut) n_train++;
            else past_cut = 1;
        }
        if (put_tokens(o, ids, n_ids)) {
            free(head);
            seterr(err, errlen, "cannot write shard '%s': %s", tmp, strerror(errno));
            goto done;
        }
        if (r.eof) break;
    }
    if (r.total != size) {
        free(head);
        seterr(err, errlen, "'%s' changed size while it was read (%llu bytes, then %llu)", in_path, (unsigned long long)size,
               (unsigned long long)r.total);
        goto done;
    }
    if (tok->kind != TOK_BPE) n_train = o->count / 10 * 9 + o->count % 10 * 9 / 10;
    if (o->used && fwrite(o->buf, 1, o->used, o->f) != o->used) {
        free(head);
        seterr(err, errlen, "cannot write shard '%s': %s", tmp, strerror(errno));
        goto done;
    }
    memcpy(head, SHARD_MAGIC, 8);
    put_u32(head + 8, SHARD_VERSION);
    put_u32(head + 12, (uint32_t)o->width * 8);
    put_u64(head + 16, o->count);
    put_u64(head + 24, n_train);
    put_u64(head + 32, r.total);
    put_u64(head + 40, r.hash);
    put_u64(head + 48, fnv1a64(head + SHARD_HEADER, jlen));
    put_u32(head + 56, jlen);
    put_u32(head + 60, data_off);
    wrote = fseek(o->f, 0, SEEK_SET) == 0 && fwrite(head, 1, SHARD_HEADER, o->f) == SHARD_HEADER;
    free(head);
    if (!wrote || fflush(o->f) != 0 || fsync(fileno(o->f)) != 0) {
        seterr(err, errlen, "cannot write shard '%s': %s", tmp, strerror(errno));
        goto done;
    }
    int closed = fclose(o->f);
    o->f = NULL;
    if (closed != 0 || rename(tmp, out_path) != 0) {
        seterr(err, errlen, "cannot write shard '%s': %s", out_path, strerror(errno));
        goto done;
    }
    *n_tokens_out = o->count;
    rc = 0;
done:
    if (o->f) fclose(o->f);
    if (rc) unlink(tmp);
    reader_close(&r);
    free(ids);
    free(o);
    free(tmp);
    return rc;
}
