// safetensors.c — F32 safetensors reader and atomic writer (see safetensors.h).
// Layout: https://github.com/huggingface/safetensors (the header limit of 100 MB is theirs too).
#include "checkpoint/safetensors.h"

#include "base/check.h"
#include "base/output_guard.h"
#include "base/shown.h"
#include "base/utf8.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    ST_MAX_HEADER = 100 * 1000 * 1000,  // bytes; the reference implementation's limit
    ST_CHUNK = 1 << 14,                 // floats converted per fwrite
    ST_ALIGN_FLOATS = 16,               // each tensor starts 64-byte aligned in memory
};
// Largest integer a JSON number (a double in cJSON) holds exactly. Every real offset and dim is
// far below it (files are < 2^53 bytes), so anything larger is out of range anyway.
#define ST_MAX_JSON_INT 9007199254740992.0

// ---------------------------------------------------------------------------------------------
// Small helpers

// Strict UTF-8 (base/utf8.h) without NUL bytes: what names, metadata and the header must be.
static bool text_valid(const char *s, size_t n) {
    return memchr(s, 0, n) == NULL && utf8_valid((const uint8_t *)s, n);
}

// The JSON header as written: text and length (padding included).
typedef struct { char *p; size_t len; } sbuf_t;

// cJSON's constructors return NULL only when out of memory.
static void *json_checked(void *item) {
    if (!item) die(EXIT_RUNTIME, "out of memory building a safetensors header");
    return item;
}
// A non-negative integer as a raw JSON number, printed exactly (cJSON's doubles would print 1e+15
// from 10^15 on, which strict safetensors readers refuse).
static cJSON *json_u64(uint64_t v) {
    char t[24];
    snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    return json_checked(cJSON_CreateRaw(t));
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}
// The first string that occurs twice in names[0..n), or NULL.
static const char *find_duplicate(const char **names, int n) {
    if (n < 2) return NULL;
    const char **s = xmalloc((size_t)n * sizeof *s);
    memcpy(s, names, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_str_ptr);
    const char *dup = NULL;
    for (int i = 1; i < n && !dup; i++)
        if (strcmp(s[i - 1], s[i]) == 0) dup = s[i];
    free(s);
    return dup;
}

// ---------------------------------------------------------------------------------------------
// Writing

// Check the arguments and build the padded JSON header. On success *data_bytes is the total size
// of the data section. Returns 0, or -1 with the problem (without the path) in msg.
static int build_header(const st_tensor_t *t, int nt, const st_meta_t *m, int nm, sbuf_t *hdr,
                        uint64_t *data_bytes, char *msg, size_t msglen) {
    if (nt < 0 || nm < 0 || (nt > 0 && !t) || (nm > 0 && !m))
        return seterr(msg, msglen, "invalid tensor or metadata list");
    for (int i = 0; i < nm; i++) {
        if (!m[i].key || !m[i].value) return seterr(msg, msglen, "metadata entry %d has a NULL key or value", i);
        if (!text_valid(m[i].key, strlen(m[i].key)))
            return seterr(msg, msglen, "metadata key '%s' is not valid UTF-8", shown(m[i].key).s);
        if (!text_valid(m[i].value, strlen(m[i].value)))
            return seterr(msg, msglen, "metadata value for '%s' is not valid UTF-8", shown(m[i].key).s);
    }
    for (int i = 0; i < nt; i++) {
        const char *name = t[i].name;
        if (!name || !*name) return seterr(msg, msglen, "tensor %d has no name", i);
        if (!text_valid(name, strlen(name)))
            return seterr(msg, msglen, "tensor name '%s' is not valid UTF-8", shown(name).s);
        if (strcmp(name, "__metadata__") == 0)
            return seterr(msg, msglen, "'__metadata__' is reserved and cannot name a tensor");
        if (t[i].ndim < 0 || t[i].ndim > 4)
            return seterr(msg, msglen, "tensor '%s' has ndim %d (0..4 supported)", shown(name).s, t[i].ndim);
    }
    const char **names = xmalloc((size_t)(nt > nm ? nt : nm) * sizeof *names + 1);
    for (int i = 0; i < nt; i++) names[i] = t[i].name;
    const char *dup = find_duplicate(names, nt);
    if (!dup) {
        for (int i = 0; i < nm; i++) names[i] = m[i].key;
        const char *dk = find_duplicate(names, nm);
        if (dk) {
            seterr(msg, msglen, "metadata key '%s' is given twice", shown(dk).s);
            free(names);
            return -1;
        }
    } else {
        seterr(msg, msglen, "tensor name '%s' is given twice", shown(dup).s);
        free(names);
        return -1;
    }
    free(names);

    // {"__metadata__":{key:value,...}, name:{"dtype":"F32","shape":[...],"data_offsets":[b,e]}, ...}
    // in the order given; cJSON does the escaping (quotes, backslashes, control bytes).
    cJSON *root = json_checked(cJSON_CreateObject());
    if (nm > 0) {
        cJSON *mo = json_checked(cJSON_CreateObject());
        cJSON_AddItemToObject(root, "__metadata__", mo);
        for (int i = 0; i < nm; i++) cJSON_AddItemToObject(mo, m[i].key, json_checked(cJSON_CreateString(m[i].value)));
    }
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        uint64_t numel = 1;
        const char *bad = NULL;
        for (int d = 0; d < t[i].ndim && !bad; d++) {
            int64_t dim = t[i].shape[d];
            if (dim < 0) bad = "has a negative dimension";
            else if (dim && numel > (uint64_t)INT64_MAX / 4 / (uint64_t)dim) bad = "has too many elements";
            else numel *= (uint64_t)dim;
        }
        if (!bad && numel > 0 && !t[i].data) bad = "has no data";
        if (!bad && numel * 4 > (uint64_t)INT64_MAX - off) bad = "takes the tensors' total past 2^63 bytes";
        if (bad) {
            cJSON_Delete(root);
            return seterr(msg, msglen, "tensor '%s' %s", shown(t[i].name).s, bad);
        }
        uint64_t bytes = numel * 4;
        cJSON *e = json_checked(cJSON_CreateObject()), *shape = json_checked(cJSON_CreateArray());
        cJSON *offs = json_checked(cJSON_CreateArray());
        cJSON_AddItemToObject(root, t[i].name, e);
        cJSON_AddItemToObject(e, "dtype", json_checked(cJSON_CreateString("F32")));
        cJSON_AddItemToObject(e, "shape", shape);
        for (int d = 0; d < t[i].ndim; d++) cJSON_AddItemToArray(shape, json_u64((uint64_t)t[i].shape[d]));
        cJSON_AddItemToObject(e, "data_offsets", offs);
        cJSON_AddItemToArray(offs, json_u64(off));
        cJSON_AddItemToArray(offs, json_u64(off + bytes));
        off += bytes;
    }
    char *text = json_checked(cJSON_PrintUnformatted(root));
    cJSON_Delete(root);
    size_t len = strlen(text), padded = len + (8 - (8 + len) % 8) % 8;  // data starts 8-byte aligned
    if (padded > ST_MAX_HEADER) {
        cJSON_free(text);
        return seterr(msg, msglen, "header would exceed 100 MB");
    }
    hdr->p = xmalloc(padded + 1);
    memcpy(hdr->p, text, len);
    memset(hdr->p + len, ' ', padded - len);
    hdr->p[padded] = 0;
    hdr->len = padded;
    cJSON_free(text);
    *data_bytes = off;
    return 0;
}

// fwrite n floats as little-endian bytes (whatever the host order), through `chunk`.
static int write_f32le(FILE *f, const float *x, size_t n, unsigned char *chunk) {
    while (n) {
        size_t m = n < ST_CHUNK ? n : ST_CHUNK;
        for (size_t i = 0; i < m; i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            chunk[4 * i + 0] = (unsigned char)u;
            chunk[4 * i + 1] = (unsigned char)(u >> 8);
            chunk[4 * i + 2] = (unsigned char)(u >> 16);
            chunk[4 * i + 3] = (unsigned char)(u >> 24);
        }
        if (fwrite(chunk, 1, 4 * m, f) != 4 * m) return -1;
        x += m;
        n -= m;
    }
    return 0;
}

// fsync the directory holding `path`, so the rename itself is durable. A directory we cannot
// open, or a filesystem that cannot sync directories (EINVAL), is not an error.
static int fsync_parent(const char *path) {
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash) {
        if (slash == dir) slash[1] = 0;  // "/name" -> "/"
        else *slash = 0;
        d = dir;
    }
    int rc = 0, fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync(fd) != 0 && errno != EINVAL) rc = -1;
        int e = errno;
        close(fd);
        errno = e;
    }
    free(dir);
    return rc;
}

int st_write(const char *path, const st_tensor_t *tensors, int n_tensors, const st_meta_t *meta,
             int n_meta, char *err, size_t errlen) {
    if (!path || !*path) return seterr(err, errlen, "cannot write checkpoint: empty path");
    struct stat st;
    const char *kept = (stat(path, &st) == 0 && S_ISREG(st.st_mode)) ? "the previous file is kept"
                                                                       : "no checkpoint was written";
    char msg[256];
    sbuf_t hdr = {0};
    uint64_t data_bytes = 0;
    if (build_header(tensors, n_tensors, meta, n_meta, &hdr, &data_bytes, msg, sizeof msg) != 0) {
        free(hdr.p);
        return seterr(err, errlen, "cannot write checkpoint '%s': %s; %s", path, msg, kept);
    }

    size_t tlen = strlen(path) + 32;
    char *tmp = xmalloc(tlen);
    snprintf(tmp, tlen, "%s" OUTPUT_TEMP_SUFFIX "%ld", path, (long)getpid());
    unsigned char *chunk = NULL;
    FILE *f = NULL;
    int e = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0) {
        e = errno;
        goto fail_nofile;
    }
    if (output_match_mode(fd, path) != 0) {  // a replaced checkpoint keeps its mode (e.g. 0600)
        e = errno;
        close(fd);
        goto fail;
    }
    f = fdopen(fd, "wb");
    if (!f) {
        e = errno;
        close(fd);
        goto fail;
    }
    errno = 0;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hdr.len >> (8 * i));
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(hdr.p, 1, hdr.len, f) != hdr.len) goto fail_errno;
    chunk = xmalloc(4 * ST_CHUNK);
    for (int i = 0; i < n_tensors; i++) {
        size_t numel = 1;
        for (int d = 0; d < tensors[i].ndim; d++) numel *= (size_t)tensors[i].shape[d];
        if (numel && write_f32le(f, tensors[i].data, numel, chunk) != 0) goto fail_errno;
    }
    if (fflush(f) != 0) goto fail_errno;
    if (fsync(fileno(f)) != 0) goto fail_errno;
    int rc = fclose(f);
    f = NULL;
    if (rc != 0) goto fail_errno;
    if (rename(tmp, path) != 0) goto fail_errno;
    // From here on the new file is in place.
    rc = 0;
    if (fsync_parent(path) != 0)
        rc = seterr(err, errlen, "checkpoint '%s' was written but syncing its directory failed: %s; "
                    "it may not survive a power loss", path, strerror(errno));
    free(chunk);
    free(tmp);
    free(hdr.p);
    return rc;

fail_errno:
    e = errno ? errno : EIO;
fail:
    if (f) fclose(f);
    unlink(tmp);
fail_nofile:
    free(chunk);
    free(tmp);
    free(hdr.p);
    return seterr(err, errlen, "cannot write checkpoint '%s': %s; %s", path, strerror(e), kept);
}

// ---------------------------------------------------------------------------------------------
// Reading

typedef struct { uint64_t begin, end; int idx; } span_t;
typedef struct { const char *name; int idx; } named_t;

static int cmp_named(const void *a, const void *b) {
    return strcmp(((const named_t *)a)->name, ((const named_t *)b)->name);
}

static int cmp_span(const void *a, const void *b) {
    const span_t *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

// A JSON number that is a non-negative integer: 0 and *out set; -1 if it is not one; -2 if it is
// beyond 2^53 (where doubles stop being exact; no real offset or dim gets there).
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!isfinite(d) || d < 0 || floor(d) != d) return -1;
    if (d > ST_MAX_JSON_INT) return -2;
    *out = (uint64_t)d;
    return 0;
}

static int pread_full(int fd, void *buf, size_t n, uint64_t off) {
    unsigned char *p = buf;
    while (n) {
        size_t want = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t r = pread(fd, p, want, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) {
            errno = 0;  // end of file
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

// Little-endian bytes (as read from the file) to host floats, in place.
static void f32_from_le(float *x, size_t n) {
    unsigned char *b = (unsigned char *)x;
    for (size_t i = 0; i < n; i++, b += 4) {
        uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(b, &u, 4);
    }
}

// Validate one tensor entry and fill e (name already set) and its span. msg gets the problem.
static int parse_entry(const cJSON *v, uint64_t data_size, st_entry_t *e, span_t *sp, char *msg, size_t msglen) {
    shown_t nm = shown(e->name);
    const char *who = nm.s;
    if (!cJSON_IsObject(v)) return seterr(msg, msglen, "tensor '%s': entry is not a JSON object", who);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(v, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(v, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(v, "data_offsets");
    if (!dtype) return seterr(msg, msglen, "tensor '%s' has no dtype", who);
    if (!shape) return seterr(msg, msglen, "tensor '%s' has no shape", who);
    if (!offs) return seterr(msg, msglen, "tensor '%s' has no data_offsets", who);
    if (!cJSON_IsString(dtype)) return seterr(msg, msglen, "tensor '%s': dtype is not a string", who);
    if (!cJSON_IsArray(shape)) return seterr(msg, msglen, "tensor '%s': shape is not an array", who);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return seterr(msg, msglen, "tensor '%s': data_offsets is not an array of two integers", who);
    if (strcmp(dtype->valuestring, "F32") != 0)
        return seterr(msg, msglen, "tensor '%s' has dtype %s; attnlab checkpoints are F32", who,
                      shown(dtype->valuestring).s);

    int ndim = cJSON_GetArraySize(shape);
    if (ndim > 8) return seterr(msg, msglen, "tensor '%s' has %d dimensions; at most 8 are supported", who, ndim);
    e->ndim = ndim;
    uint64_t numel = 1;
    bool zero = false, overflow = false;
    int d = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, shape) {
        uint64_t dim;
        int r = json_uint(x, &dim);
        if (r == -2) return seterr(msg, msglen, "tensor '%s': shape has dimension %g, which is too large", who, x->valuedouble);
        if (r != 0) {
            if (cJSON_IsNumber(x))
                return seterr(msg, msglen, "tensor '%s': shape has dimension %g; dimensions must be non-negative integers",
                              who, x->valuedouble);
            return seterr(msg, msglen, "tensor '%s': shape has a dimension that is not a number", who);
        }
        e->shape[d++] = (int64_t)dim;
        if (dim == 0) zero = true;
        else if (numel > UINT64_MAX / 4 / dim) overflow = true;
        else numel *= dim;
    }
    if (zero) numel = 0, overflow = false;

    uint64_t b = 0, en = 0;
    int rb = json_uint(offs->child, &b), re = json_uint(offs->child->next, &en);
    if (rb == -1 || re == -1)
        return seterr(msg, msglen, "tensor '%s': data_offsets is not an array of two non-negative integers", who);
    if (rb == -2 || re == -2)
        return seterr(msg, msglen, "tensor '%s': data_offsets [%.0f, %.0f] run past the end of the data (%llu bytes): "
                      "truncated or corrupted", who, offs->child->valuedouble, offs->child->next->valuedouble,
                      (unsigned long long)data_size);
    if (b > en)
        return seterr(msg, msglen, "tensor '%s': data_offsets [%llu, %llu] end before they begin", who,
                      (unsigned long long)b, (unsigned long long)en);
    if (en > data_size)
        return seterr(msg, msglen, "tensor '%s': data_offsets [%llu, %llu] run past the end of the data (%llu bytes): "
                      "truncated or corrupted", who, (unsigned long long)b, (unsigned long long)en,
                      (unsigned long long)data_size);
    if (overflow)
        return seterr(msg, msglen, "tensor '%s': shape has too many elements for data_offsets [%llu, %llu]", who,
                      (unsigned long long)b, (unsigned long long)en);
    if (numel * 4 != en - b)
        return seterr(msg, msglen, "tensor '%s': shape needs %llu bytes but data_offsets [%llu, %llu] hold %llu",
                      who, (unsigned long long)numel * 4, (unsigned long long)b, (unsigned long long)en,
                      (unsigned long long)(en - b));
    e->numel = (size_t)numel;  // <= data_size / 4, so it fits
    sp->begin = b;
    sp->end = en;
    return 0;
}

// Everything after the file's first 8 bytes are known good: parse and check the header, fill out.
static int parse_header(const char *hbuf, size_t hlen, uint64_t data_size, st_file_t *out, span_t **spans_out,
                        char *msg, size_t msglen) {
    if (!text_valid(hbuf, hlen))
        return seterr(msg, msglen, "header is not valid UTF-8 text: corrupted or not a safetensors file");
    // cJSON decodes "\u0000" into a NUL that would end the C string: "wte\u0000junk" would read as
    // "wte". Every backslash of valid JSON starts an escape inside a string, so one scan finds them.
    for (size_t i = 0; i + 1 < hlen; i++) {
        if (hbuf[i] != '\\') continue;
        if (hbuf[i + 1] == 'u' && i + 5 < hlen && memcmp(hbuf + i + 2, "0000", 4) == 0)
            return seterr(msg, msglen, "header has a string with an escaped NUL (\\u0000) at byte %zu: names and "
                          "metadata cannot contain NUL", i);
        i++;  // skip the escaped character (a second backslash included)
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hbuf, hlen, &end, 0);
    if (!root) {
        size_t at = end && end >= hbuf && end <= hbuf + hlen ? (size_t)(end - hbuf) : 0;
        return seterr(msg, msglen, "header is not valid JSON (error near byte %zu of %zu): corrupted or not a "
                      "safetensors file", at, hlen);
    }
    for (const char *p = end; p < hbuf + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return seterr(msg, msglen, "header is not valid JSON (unexpected bytes after it at byte %zu): "
                          "corrupted or not a safetensors file", (size_t)(p - hbuf));
        }
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return seterr(msg, msglen, "header is not a JSON object: not a safetensors file");
    }

    int rc = 0, nt = 0, nmeta_keys = 0;
    const cJSON *metaobj = NULL, *x;
    cJSON_ArrayForEach(x, root) {
        if (strcmp(x->string, "__metadata__") == 0) {
            if (metaobj) { rc = seterr(msg, msglen, "header has two __metadata__ entries"); goto done; }
            metaobj = x;
        } else {
            nt++;
        }
    }
    if (metaobj) {
        if (!cJSON_IsObject(metaobj)) { rc = seterr(msg, msglen, "__metadata__ is not a JSON object"); goto done; }
        const cJSON *kv;
        cJSON_ArrayForEach(kv, metaobj) {
            if (!cJSON_IsString(kv)) {
                rc = seterr(msg, msglen, "__metadata__ value for '%s' is not a string", shown(kv->string).s);
                goto done;
            }
            nmeta_keys++;
        }
    }

    out->tensors = xcalloc((size_t)nt + 1, sizeof *out->tensors);
    out->meta = xcalloc((size_t)nmeta_keys + 1, sizeof *out->meta);
    span_t *spans = xcalloc((size_t)nt + 1, sizeof *spans);
    *spans_out = spans;
    if (metaobj) {
        const cJSON *kv;
        cJSON_ArrayForEach(kv, metaobj) {
            out->meta[out->n_meta].key = xstrdup(kv->string);
            out->meta[out->n_meta].value = xstrdup(kv->valuestring);
            out->n_meta++;
        }
    }
    cJSON_ArrayForEach(x, root) {
        if (x == metaobj) continue;
        st_entry_t *e = &out->tensors[out->n_tensors++];
        e->name = xstrdup(x->string);
        spans[out->n_tensors - 1].idx = out->n_tensors - 1;
        if (parse_entry(x, data_size, e, &spans[out->n_tensors - 1], msg, msglen) != 0) { rc = -1; goto done; }
    }

    // The name index (st_find), which also shows duplicate names; then duplicate metadata keys.
    named_t *byname = xmalloc(((size_t)nt + 1) * sizeof *byname);
    for (int i = 0; i < nt; i++) byname[i] = (named_t){out->tensors[i].name, i};
    qsort(byname, (size_t)nt, sizeof *byname, cmp_named);
    out->by_name = xmalloc(((size_t)nt + 1) * sizeof *out->by_name);
    for (int i = 0; i < nt; i++) out->by_name[i] = byname[i].idx;
    for (int i = 1; i < nt && !rc; i++)
        if (strcmp(byname[i - 1].name, byname[i].name) == 0)
            rc = seterr(msg, msglen, "tensor name '%s' appears twice in the header", shown(byname[i].name).s);
    free(byname);
    if (!rc) {
        const char **names = xmalloc(((size_t)nmeta_keys + 1) * sizeof *names);
        for (int i = 0; i < nmeta_keys; i++) names[i] = out->meta[i].key;
        const char *dup = find_duplicate(names, nmeta_keys);
        if (dup) rc = seterr(msg, msglen, "__metadata__ key '%s' appears twice", shown(dup).s);
        free(names);
    }
    if (rc) goto done;

    // Overlaps: sorted by (begin, end), each span must start at or after the previous one's end.
    span_t *sorted = xmalloc(((size_t)nt + 1) * sizeof *sorted);
    memcpy(sorted, spans, (size_t)nt * sizeof *sorted);
    qsort(sorted, (size_t)nt, sizeof *sorted, cmp_span);
    for (int i = 1; i < nt && !rc; i++) {
        const span_t *p = &sorted[i - 1], *q = &sorted[i];
        if (q->begin < p->end) {
            rc = seterr(msg, msglen, "tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap in the data",
                        shown(out->tensors[p->idx].name).s, (unsigned long long)p->begin, (unsigned long long)p->end,
                        shown(out->tensors[q->idx].name).s, (unsigned long long)q->begin, (unsigned long long)q->end);
        }
    }
    free(sorted);
done:
    cJSON_Delete(root);
    return rc;
}

int st_read(const char *path, st_file_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!path || !*path) return seterr(err, errlen, "cannot open checkpoint: empty path");
    // O_NONBLOCK: opening a FIFO (or a device that waits) must not block before fstat can say what
    // it is; for a regular file the flag changes nothing.
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return seterr(err, errlen, "cannot open checkpoint '%s': %s", path, strerror(errno));
    struct stat st;
    char msg[512] = "";
    char *hbuf = NULL;
    span_t *spans = NULL;
    int rc = -1;
    if (fstat(fd, &st) != 0) {
        seterr(msg, sizeof msg, "cannot stat: %s", strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return seterr(err, errlen, "checkpoint '%s' is a directory, not a file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        seterr(msg, sizeof msg, "not a regular file (%s)", S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISCHR(st.st_mode) ? "a character device"
               : S_ISBLK(st.st_mode) ? "a block device" : S_ISSOCK(st.st_mode) ? "a socket" : "a special file");
        goto fail;
    }
    uint64_t size = (uint64_t)st.st_size;
    unsigned char len8[8];
    if (size < 8) {
        seterr(msg, sizeof msg, "file is %llu bytes, shorter than the 8-byte header length: truncated or not a "
               "safetensors file", (unsigned long long)size);
        goto fail;
    }
    if (pread_full(fd, len8, 8, 0) != 0) goto fail_io;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)len8[i] << (8 * i);
    if (hlen == 0) {
        seterr(msg, sizeof msg, "header length is 0: truncated or not a safetensors file");
        goto fail;
    }
    if (hlen > ST_MAX_HEADER) {
        seterr(msg, sizeof msg, "header length %llu is absurd (over 100 MB): truncated or not a safetensors file",
               (unsigned long long)hlen);
        goto fail;
    }
    if (hlen > size - 8) {
        seterr(msg, sizeof msg, "header length %llu runs past the end of the %llu-byte file: truncated or not a "
               "safetensors file", (unsigned long long)hlen, (unsigned long long)size);
        goto fail;
    }
    hbuf = xmalloc((size_t)hlen + 1);
    if (pread_full(fd, hbuf, (size_t)hlen, 8) != 0) goto fail_io;
    hbuf[hlen] = 0;
    uint64_t data_start = 8 + hlen, data_size = size - data_start;
    if (parse_header(hbuf, (size_t)hlen, data_size, out, &spans, msg, sizeof msg) != 0) goto fail;

    // One 64-byte aligned buffer; each tensor starts on a 64-byte boundary inside it. The total is
    // bounded by the file size, since spans were checked to be disjoint and inside the data.
    size_t total = 0;
    for (int i = 0; i < out->n_tensors; i++)
        total += (out->tensors[i].numel + ST_ALIGN_FLOATS - 1) / ST_ALIGN_FLOATS * ST_ALIGN_FLOATS;
    float *buf = xalloc_floats(total);
    out->priv = buf;
    for (int i = 0; i < out->n_tensors; i++) {
        st_entry_t *e = &out->tensors[i];
        e->data = buf;
        buf += (e->numel + ST_ALIGN_FLOATS - 1) / ST_ALIGN_FLOATS * ST_ALIGN_FLOATS;
        if (e->numel == 0) continue;
        if (pread_full(fd, e->data, e->numel * 4, data_start + spans[i].begin) != 0) goto fail_io;
        f32_from_le(e->data, e->numel);
    }
    rc = 0;
    goto out;

fail_io:
    if (errno) seterr(msg, sizeof msg, "read error: %s", strerror(errno));
    else seterr(msg, sizeof msg, "file ended early (was it truncated while being read?)");
fail:
    st_free(out);
    seterr(err, errlen, "checkpoint '%s': %s", path, msg);
out:
    free(spans);
    free(hbuf);
    close(fd);
    return rc;
}

const st_entry_t *st_find(const st_file_t *f, const char *name) {
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const st_entry_t *e = &f->tensors[f->by_name[mid]];
        int c = strcmp(e->name, name);
        if (c == 0) return e;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const char *st_meta_get(const st_file_t *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

void st_free(st_file_t *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free((void *)f->meta[i].key);
        free((void *)f->meta[i].value);
    }
    free(f->tensors);
    free(f->meta);
    free(f->priv);
    free(f->by_name);
    memset(f, 0, sizeof *f);
}
