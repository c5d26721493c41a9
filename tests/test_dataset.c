// test_dataset.c — file reading errors, reading once through a pipe or FIFO (the same bytes, hash
// and tokens as the file), the 90/10 split and its ctx+1 checks, random batch windows, and
// full-split eval windows (every token after the first predicted exactly once), and the training
// streams of segment memory (data/streams.h) against their closed form.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/streams.h"
#include "tests/testlib.h"

static char dir[64];

// Write n bytes to dir/name and return the path (static buffer, valid until the next call).
static const char *write_file(const char *name, const void *data, size_t n) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        printf("  cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
    return path;
}

// A file of n bytes cycling through 'a'..'z' (byte tokenizer: token i = 'a' + i % 26).
static const char *write_letters(const char *name, size_t n) {
    char *buf = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) buf[i] = (char)('a' + i % 26);
    const char *p = write_file(name, buf, n);
    free(buf);
    return p;
}

static void test_files(void) {
    char err[512], path[128];
    uint8_t *buf;
    size_t n;
    TEST_CASE("read_file_bytes: missing, directory, empty, unreadable, ok") {
        snprintf(path, sizeof path, "%s/nope.txt", dir);
        EXPECT(read_file_bytes(path, &buf, &n, err, sizeof err) == -1);
        char want[256];
        snprintf(want, sizeof want, "cannot open '%s': No such file or directory", path);
        EXPECT_MSG(strcmp(err, want) == 0, "got \"%s\"", err);
        EXPECT(read_file_bytes(dir, &buf, &n, err, sizeof err) == -1);
        snprintf(want, sizeof want, "'%s' is a directory, not a text file", dir);
        EXPECT_MSG(strcmp(err, want) == 0, "got \"%s\"", err);
        const char *p = write_file("empty.txt", "", 0);
        EXPECT(read_file_bytes(p, &buf, &n, err, sizeof err) == -1);
        snprintf(want, sizeof want, "'%s' is empty", p);
        EXPECT_MSG(strcmp(err, want) == 0, "got \"%s\"", err);
        p = write_file("locked.txt", "x", 1);
        chmod(p, 0);
        if (access(p, R_OK) == 0) {
            printf("  note: running as root, skipping the unreadable-file check\n");
        } else {
            EXPECT(read_file_bytes(p, &buf, &n, err, sizeof err) == -1);
            EXPECT_MSG(strstr(err, "cannot open '") && strstr(err, "Permission denied"), "got \"%s\"", err);
        }
        chmod(p, 0600);
        p = write_file("ok.txt", "hi\r\n\xff", 5);
        EXPECT(read_file_bytes(p, &buf, &n, err, sizeof err) == 0);
        EXPECT(n == 5 && memcmp(buf, "hi\r\n\xff", 5) == 0);
        free(buf);
    }
    TEST_CASE("dataset_load: errors name the file, split sizes and ctx") {
        tokenizer_t byte;
        tok_init_byte(&byte);
        dataset_t ds;
        snprintf(path, sizeof path, "%s/nope.txt", dir);
        EXPECT(dataset_load(&ds, path, &byte, 8, err, sizeof err) == -1 && strstr(err, "No such file"));
        EXPECT(dataset_load(&ds, dir, &byte, 8, err, sizeof err) == -1 && strstr(err, "is a directory"));
        const char *p = write_file("empty.txt", "", 0);
        EXPECT(dataset_load(&ds, p, &byte, 8, err, sizeof err) == -1 && strstr(err, "is empty"));
        EXPECT(ds.text == NULL && ds.tokens == NULL);
        // 5 tokens: train 4 < ctx+1 = 9.
        p = write_letters("tiny.txt", 5);
        EXPECT(dataset_load(&ds, p, &byte, 8, err, sizeof err) == -1);
        char want[512];
        snprintf(want, sizeof want,
                 "train split of '%s' has 4 tokens, fewer than ctx+1 = 9; use a longer file or a smaller --ctx "
                 "(the file has 5 tokens: 4 train, 1 validation)", p);
        EXPECT_MSG(strcmp(err, want) == 0, "got \"%s\"", err);
        // 400 tokens: train 360, validation 40 < ctx+1 = 65.
        p = write_letters("short.txt", 400);
        EXPECT(dataset_load(&ds, p, &byte, 64, err, sizeof err) == -1);
        snprintf(want, sizeof want,
                 "validation split of '%s' has 40 tokens, fewer than ctx+1 = 65; use a longer file or a smaller --ctx "
                 "(the file has 400 tokens: 360 train, 40 validation)", p);
        EXPECT_MSG(strcmp(err, want) == 0, "got \"%s\"", err);
        EXPECT(ds.text == NULL && ds.tokens == NULL);
        // Exactly enough: validation 40 = ctx+1.
        EXPECT_MSG(dataset_load(&ds, p, &byte, 39, err, sizeof err) == 0, "%s", err);
        dataset_free(&ds);
        // Char vocab from another text: the file's own out-of-vocab character names the file.
        tokenizer_t ch;
        EXPECT(tok_build_char(&ch, (const uint8_t *)"abc", 3, err, sizeof err) == 0);
        EXPECT(dataset_load(&ds, p, &ch, 8, err, sizeof err) == -1);
        EXPECT_MSG(strstr(err, "character U+0064 ('d') at byte offset 3 is not in") && strstr(err, "short.txt'"),
                   "got \"%s\"", err);
        tok_free(&ch);
        tok_free(&byte);
    }
    TEST_CASE("dataset_load: split is floor(0.9 n), tokens match the file") {
        tokenizer_t byte;
        tok_init_byte(&byte);
        size_t sizes[] = {20, 29, 101, 1000, 1009};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            dataset_t ds;
            const char *p = write_letters("split.txt", sizes[i]);
            EXPECT(dataset_load(&ds, p, &byte, 1, err, sizeof err) == 0);
            EXPECT_MSG(ds.n_tokens == sizes[i] && ds.n_train == (size_t)(sizes[i] * 0.9),
                       "n %zu: n_train %zu", ds.n_tokens, ds.n_train);
            EXPECT(ds.text_bytes == sizes[i]);
            for (size_t k = 0; k < ds.n_tokens; k++)
                if (ds.tokens[k] != 'a' + (int)(k % 26)) {
                    EXPECT_MSG(0, "token %zu = %d", k, ds.tokens[k]);
                    break;
                }
            dataset_free(&ds);
        }
        tok_free(&byte);
    }
}

// Fork a child that writes data[0..n) to fd in small chunks (so the reader sees many short reads),
// then exits; it first closes its copy of close_fd (the pipe's read end, or -1), so it cannot keep
// itself blocked writing when the reader stops early. Returns its pid.
static pid_t writer_child(int fd, int close_fd, const uint8_t *data, size_t n) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (close_fd >= 0) close(close_fd);
        for (size_t off = 0; off < n;) {
            size_t chunk = n - off < 4093 ? n - off : 4093;
            ssize_t w = write(fd, data + off, chunk);
            if (w <= 0) _exit(1);
            off += (size_t)w;
        }
        _exit(0);
    }
    return pid;
}

// Expect b, loaded through a pipe or FIFO, to equal the regular-file load a, and the hash of both
// to be the hash of the file's bytes.
static void expect_same_load(const dataset_t *a, const dataset_t *b, const uint8_t *bytes, size_t n, const char *how) {
    EXPECT_MSG(b->text_bytes == n && b->text && memcmp(b->text, bytes, n) == 0, "%s: %zu bytes, want %zu", how,
               b->text_bytes, n);
    EXPECT_MSG(a->text_fnv1a64 == fnv1a64(bytes, n) && b->text_fnv1a64 == a->text_fnv1a64,
               "%s: hash %016llx, file %016llx", how, (unsigned long long)b->text_fnv1a64,
               (unsigned long long)a->text_fnv1a64);
    EXPECT_MSG(b->n_tokens == a->n_tokens && b->n_train == a->n_train && b->tokens &&
                   memcmp(b->tokens, a->tokens, a->n_tokens * sizeof(int32_t)) == 0,
               "%s: %zu tokens (%zu train), want %zu (%zu)", how, b->n_tokens, b->n_train, a->n_tokens, a->n_train);
}

static void test_read_once(void) {
    char err[512];
    TEST_CASE("fnv1a64: FNV-1a from train's offset basis (values computed independently in Python)") {
        EXPECT(fnv1a64((const uint8_t *)"", 0) == 0x14650fb0739d0383ull);
        EXPECT(fnv1a64((const uint8_t *)"a", 1) == 0x44bd8ad473cd9906ull);
        EXPECT(fnv1a64((const uint8_t *)"foobar", 6) == 0x88fad7c0a8ff07f2ull);
    }
    TEST_CASE("dataset_load through a pipe and a FIFO: the same bytes, hash and tokens as the file") {
        // 200,000 bytes: more than a pipe holds (64 KiB) and than the reader's first buffer.
        enum { N = 200000 };
        uint8_t *bytes = malloc(N);
        for (size_t i = 0; i < N; i++) bytes[i] = (uint8_t)("the quick brown fox\n\xc3\xa9"[i % 22]);
        const char *p = write_file("big.txt", bytes, N);
        tokenizer_t byte;
        tok_init_byte(&byte);
        dataset_t file_ds, ds;
        EXPECT_MSG(dataset_load(&file_ds, p, &byte, 64, err, sizeof err) == 0, "%s", err);
        // A pipe, opened by name as `cat f | train /dev/stdin` does.
        int fds[2];
        EXPECT(pipe(fds) == 0);
        pid_t w = writer_child(fds[1], fds[0], bytes, N);
        close(fds[1]);
        char dev[64];
        snprintf(dev, sizeof dev, "/dev/fd/%d", fds[0]);
        EXPECT_MSG(dataset_load(&ds, dev, &byte, 64, err, sizeof err) == 0, "pipe: %s", err);
        expect_same_load(&file_ds, &ds, bytes, N, "pipe");
        dataset_free(&ds);
        close(fds[0]);
        waitpid(w, NULL, 0);
        // A FIFO, with the char tokenizer built from the bytes read (train's order: read, build, tokenize).
        char fifo[128];
        snprintf(fifo, sizeof fifo, "%s/fifo", dir);
        EXPECT(mkfifo(fifo, 0600) == 0);
        fflush(stdout);
        w = fork();
        if (w == 0) {
            int fd = open(fifo, O_WRONLY);
            if (fd < 0) _exit(1);
            waitpid(writer_child(fd, -1, bytes, N), NULL, 0);
            _exit(0);
        }
        EXPECT_MSG(dataset_read(&ds, fifo, err, sizeof err) == 0, "fifo: %s", err);
        tokenizer_t ch;
        EXPECT_MSG(tok_build_char(&ch, ds.text, ds.text_bytes, err, sizeof err) == 0, "%s", err);
        EXPECT_MSG(dataset_tokenize(&ds, fifo, &ch, 64, err, sizeof err) == 0, "fifo: %s", err);
        dataset_t char_file;
        EXPECT_MSG(dataset_load(&char_file, p, &ch, 64, err, sizeof err) == 0, "%s", err);
        expect_same_load(&char_file, &ds, bytes, N, "fifo");
        EXPECT(ds.n_tokens == N - N / 22);  // "é" is one character of two bytes
        waitpid(w, NULL, 0);
        dataset_free(&ds);
        dataset_free(&char_file);
        tok_free(&ch);
        // An empty pipe is an empty file; a tokenize failure frees everything.
        EXPECT(pipe(fds) == 0);
        close(fds[1]);
        snprintf(dev, sizeof dev, "/dev/fd/%d", fds[0]);
        EXPECT(dataset_read(&ds, dev, err, sizeof err) == -1 && strstr(err, "is empty") && ds.text == NULL);
        close(fds[0]);
        EXPECT(dataset_read(&ds, p, err, sizeof err) == 0);
        EXPECT(dataset_tokenize(&ds, p, &byte, N, err, sizeof err) == -1 && strstr(err, "fewer than ctx+1"));
        EXPECT(ds.text == NULL && ds.tokens == NULL && ds.text_bytes == 0);
        unlink(fifo);
        dataset_free(&file_ds);
        tok_free(&byte);
        free(bytes);
    }
}

// Check that the (B, T) batch consists of contiguous slices of ds->tokens starting in [lo, hi].
static void check_batch(const dataset_t *ds, const int32_t *x, const int32_t *y, int B, int T, size_t lo,
                        size_t hi, size_t *seen_lo, size_t *seen_hi) {
    for (int b = 0; b < B; b++) {
        // Tokens are i (as int32) in these datasets, so x[b*T] is the offset.
        size_t off = (size_t)x[(size_t)b * T];
        EXPECT_MSG(off >= lo && off <= hi, "window %d at %zu outside [%zu, %zu]", b, off, lo, hi);
        if (off < lo || off > hi) continue;
        if (off < *seen_lo) *seen_lo = off;
        if (off > *seen_hi) *seen_hi = off;
        for (int t = 0; t < T; t++) {
            EXPECT(x[(size_t)b * T + t] == ds->tokens[off + t]);
            EXPECT(y[(size_t)b * T + t] == ds->tokens[off + t + 1]);
        }
    }
}

static void test_batches(void) {
    TEST_CASE("train/val batches are correct slices within their split") {
        // A synthetic dataset with tokens[i] = i so that a window's first token is its offset.
        dataset_t ds = {0};
        ds.n_tokens = 200;
        ds.n_train = 180;
        ds.tokens = malloc(ds.n_tokens * sizeof(int32_t));
        for (size_t i = 0; i < ds.n_tokens; i++) ds.tokens[i] = (int32_t)i;
        ds.val = ds.tokens + ds.n_train;  // the 90/10 split's validation tokens
        ds.n_val = ds.n_tokens - ds.n_train;
        enum { B = 7, T = 9 };
        int32_t x[B * T], y[B * T];
        rng_t rng, ref;
        rng_seed(&rng, 42);
        size_t tlo = SIZE_MAX, thi = 0, vlo = SIZE_MAX, vhi = 0;
        for (int it = 0; it < 400; it++) {
            ref = rng;
            dataset_train_batch(&ds, &rng, B, T, x, y);
            check_batch(&ds, x, y, B, T, 0, ds.n_train - T - 1, &tlo, &thi);
            // One rng_below(n_train - T) draw per window, in order.
            for (int b = 0; b < B; b++) EXPECT(x[b * T] == (int32_t)rng_below(&ref, ds.n_train - T));
            EXPECT(memcmp(&ref, &rng, sizeof rng) == 0);
            dataset_val_batch(&ds, &rng, B, T, x, y);
            check_batch(&ds, x, y, B, T, ds.n_train, ds.n_tokens - T - 1, &vlo, &vhi);
        }
        // The whole range is reachable, including both ends.
        EXPECT_MSG(tlo == 0 && thi == ds.n_train - T - 1, "train offsets seen in [%zu, %zu]", tlo, thi);
        EXPECT_MSG(vlo == ds.n_train && vhi == ds.n_tokens - T - 1, "val offsets seen in [%zu, %zu]", vlo, vhi);
        // Smallest legal split: exactly T+1 tokens means the single offset.
        ds.n_train = T + 1;
        dataset_train_batch(&ds, &rng, B, T, x, y);
        for (int b = 0; b < B; b++) EXPECT(x[b * T] == 0 && y[b * T + T - 1] == T);
        free(ds.tokens);
    }
}

// Run every eval window over n tokens and check each target index 1..n-1 is predicted once.
static void check_eval(size_t n, int ctx) {
    int32_t *tok = malloc((n ? n : 1) * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) tok[i] = (int32_t)i;
    size_t nw = eval_num_windows(n, ctx);
    size_t want_nw = n < 2 ? 0 : (n - 1 + (size_t)ctx - 1) / (size_t)ctx;
    EXPECT_MSG(nw == want_nw, "n %zu ctx %d: %zu windows, want %zu", n, ctx, nw, want_nw);
    int *count = calloc(n ? n : 1, sizeof(int));
    int32_t *x = malloc((size_t)ctx * sizeof(int32_t)), *y = malloc((size_t)ctx * sizeof(int32_t));
    for (size_t w = 0; w < nw; w++) {
        int len = eval_window(tok, n, ctx, w, x, y);
        EXPECT_MSG(len >= 1 && len <= ctx, "n %zu ctx %d window %zu: len %d", n, ctx, w, len);
        EXPECT_MSG(len == ctx || w == nw - 1, "only the last window may be short");
        EXPECT_MSG(x[0] == (int32_t)(w * (size_t)ctx), "window %zu starts at %d", w, x[0]);
        for (int i = 0; i < len; i++) {
            EXPECT(x[i] == x[0] + i && y[i] == x[i] + 1);
            if (y[i] >= 0 && (size_t)y[i] < n) count[y[i]]++;
        }
    }
    for (size_t i = 1; i < n; i++)
        if (count[i] != 1) {
            EXPECT_MSG(0, "n %zu ctx %d: token %zu predicted %d times", n, ctx, i, count[i]);
            break;
        }
    EXPECT(n == 0 || count[0] == 0);
    free(tok);
    free(count);
    free(x);
    free(y);
}

static void test_eval(void) {
    TEST_CASE("eval windows: N-1 divisible by ctx") {
        check_eval(65, 64);
        check_eval(129, 64);
        check_eval(2, 1);
        check_eval(31, 5);
    }
    TEST_CASE("eval windows: N-1 not divisible by ctx, and tiny N") {
        check_eval(66, 64);
        check_eval(100, 64);
        check_eval(128, 64);
        check_eval(3, 64);
        check_eval(33, 5);
        check_eval(1, 4);
        check_eval(0, 4);
        EXPECT(eval_num_windows(1, 8) == 0 && eval_num_windows(0, 8) == 0);
        EXPECT(eval_num_windows(2, 8) == 1 && eval_num_windows(9, 8) == 1 && eval_num_windows(10, 8) == 2);
    }
}

// Streams against the closed form, written independently of streams.c's running offset: a stream of
// len tokens holds c = ⌊(len−1)/T⌋ segments per cycle, so segment s (0-based) reads offset (s mod c)·T
// and wraps (clears the memory) exactly when s > 0 and s mod c = 0. Every row stays inside its stream
// b·len + [0, len), targets are inputs shifted by one, and consecutive segments overlap by one token.
static void check_streams(size_t lo, size_t n, int B, int T, int steps) {
    int32_t *tok = malloc((lo + n) * sizeof *tok);
    for (size_t i = 0; i < lo + n; i++) tok[i] = (int32_t)i;
    streams_t s;
    char err[256];
    EXPECT_MSG(streams_init(&s, lo, n, B, T, err, sizeof err) == 0, "lo %zu n %zu B %d T %d: %s", lo, n, B, T, err);
    size_t len = n / (size_t)B, c = (len - 1) / (size_t)T;
    EXPECT(s.len == len && c >= 1);
    int32_t *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
    int32_t *prev_y = malloc((size_t)B * T * sizeof *y);
    int bad = 0;
    for (int st = 0; st < steps && !bad; st++) {
        int will = streams_will_wrap(&s), wrapped = streams_next(&s, tok, x, y);
        int want_wrap = st > 0 && (size_t)st % c == 0;
        size_t want_off = ((size_t)st % c) * (size_t)T;
        if (wrapped != want_wrap || will != wrapped) {
            EXPECT_MSG(0, "lo %zu n %zu B %d T %d step %d: wrapped %d (predicted %d), want %d", lo, n, B, T, st, wrapped, will, want_wrap);
            bad = 1;
        }
        if (s.offset != want_off + (size_t)T) {
            EXPECT_MSG(0, "step %d: offset after %zu, want %zu", st, s.offset, want_off + (size_t)T);
            bad = 1;
        }
        for (int b = 0; b < B && !bad; b++)
            for (int t = 0; t < T; t++) {
                size_t want = lo + (size_t)b * len + want_off + (size_t)t;
                int32_t xi = x[(size_t)b * T + t], yi = y[(size_t)b * T + t];
                if ((size_t)xi != want || yi != xi + 1 || (size_t)yi >= lo + (size_t)(b + 1) * len) {
                    EXPECT_MSG(0, "step %d row %d pos %d: x %d y %d, want x %zu inside stream [%zu, %zu)", st, b, t, xi, yi,
                               want, lo + (size_t)b * len, lo + (size_t)(b + 1) * len);
                    bad = 1;
                    break;
                }
                if (t == 0 && st > 0 && !wrapped && xi != prev_y[(size_t)b * T + T - 1]) {
                    EXPECT_MSG(0, "step %d row %d: the segment does not continue the previous one", st, b);
                    bad = 1;
                }
            }
        memcpy(prev_y, y, (size_t)B * T * sizeof *y);
        EXPECT_MSG(streams_check_offset(&s, (double)s.offset, err, sizeof err) == 0, "offset %zu refused: %s", s.offset, err);
    }
    free(tok);
    free(x);
    free(y);
    free(prev_y);
}

// Shuffled chunks (streams_init_chunked) against their definition, checked from the rows alone: row b
// of segment st reads chunk-aligned tokens at offset (st mod c)·T of one chunk [i·L, (i+1)·L), the same
// chunk for the c segments of a cycle; the chunks of draws q = cycle·B + b, taken C at a time, are each
// epoch a permutation of all C chunks; another seed or epoch orders them differently; and streams
// restored at any (cycle, offset) — a resumed run — read what the running ones read.
static void check_chunks(size_t lo, size_t n, int B, int T, size_t L, int steps) {
    int32_t *tok = malloc((lo + n) * sizeof *tok);
    for (size_t i = 0; i < lo + n; i++) tok[i] = (int32_t)i;
    streams_t s, r, other;
    char err[256];
    EXPECT_MSG(streams_init_chunked(&s, lo, n, B, T, L, 42, err, sizeof err) == 0, "n %zu B %d T %d L %zu: %s", n, B, T, L, err);
    EXPECT(streams_init_chunked(&other, lo, n, B, T, L, 43, err, sizeof err) == 0);
    size_t C = n / L, c = (L - 1) / (size_t)T;
    EXPECT(s.len == L && s.n_chunks == C && c >= 1);
    int32_t *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
    int32_t *x2 = malloc((size_t)B * T * sizeof *x), *y2 = malloc((size_t)B * T * sizeof *y);
    size_t n_draws = ((size_t)steps / c + 1) * (size_t)B;
    long *drawn = malloc(n_draws * sizeof *drawn);
    for (size_t q = 0; q < n_draws; q++) drawn[q] = -1;
    int bad = 0, differs_from_seed43 = 0;
    for (int st = 0; st < steps && !bad; st++) {
        size_t k = (size_t)st / c, want_off = ((size_t)st % c) * (size_t)T;
        // A resumed run: fresh streams given the running ones' cycle and offset (as setup_memory restores them).
        EXPECT(streams_init_chunked(&r, lo, n, B, T, L, 42, err, sizeof err) == 0);
        r.cycle = s.cycle;
        r.offset = s.offset;
        int wrapped = streams_next(&s, tok, x, y), rw = streams_next(&r, tok, x2, y2);
        if (wrapped != (st > 0 && st % c == 0) || rw != wrapped || s.cycle != (long)k || s.offset != want_off + (size_t)T) {
            EXPECT_MSG(0, "step %d: wrapped %d (restored %d) cycle %ld offset %zu, want cycle %zu offset %zu", st, wrapped, rw,
                       s.cycle, s.offset, k, want_off + (size_t)T);
            bad = 1;
        }
        if (memcmp(x, x2, (size_t)B * T * sizeof *x) || memcmp(y, y2, (size_t)B * T * sizeof *y)) {
            EXPECT_MSG(0, "step %d: streams restored at cycle %zu read other tokens", st, k);
            bad = 1;
        }
        EXPECT(streams_next(&other, tok, x2, y2) == wrapped);
        if (memcmp(x, x2, (size_t)B * T * sizeof *x)) differs_from_seed43 = 1;
        streams_free(&r);
        for (int b = 0; b < B && !bad; b++) {
            size_t first = (size_t)x[(size_t)b * T] - lo, chunk = first / L;
            long *d = &drawn[k * (size_t)B + (size_t)b];
            if (first % L != want_off || chunk >= C || (*d >= 0 && *d != (long)chunk)) {
                EXPECT_MSG(0, "step %d row %d: starts at split token %zu (chunk %zu, offset %zu), want offset %zu in the cycle's chunk %ld",
                           st, b, first, chunk, first % L, want_off, *d);
                bad = 1;
            }
            *d = (long)chunk;
            for (int t = 0; t < T && !bad; t++)
                if ((size_t)x[(size_t)b * T + t] != lo + first + (size_t)t || y[(size_t)b * T + t] != x[(size_t)b * T + t] + 1 ||
                    (size_t)y[(size_t)b * T + t] >= lo + (chunk + 1) * L) {
                    EXPECT_MSG(0, "step %d row %d pos %d: not a contiguous read inside chunk %zu", st, b, t, chunk);
                    bad = 1;
                }
        }
    }
    // Every complete epoch of C draws holds each chunk once; consecutive epochs are ordered differently.
    size_t full = ((size_t)steps / c) * (size_t)B / C;
    char *seen = malloc(C);
    int epochs_differ = full < 2;
    for (size_t e = 0; e < full && !bad; e++) {
        memset(seen, 0, C);
        for (size_t i = 0; i < C; i++) {
            long ch = drawn[e * C + i];
            if (ch < 0 || seen[ch]) {
                EXPECT_MSG(0, "epoch %zu: chunk %ld drawn twice or not at all", e, ch);
                bad = 1;
                break;
            }
            seen[ch] = 1;
        }
        if (e > 0 && memcmp(&drawn[e * C], &drawn[(e - 1) * C], C * sizeof *drawn)) epochs_differ = 1;
    }
    EXPECT_MSG(full >= 1, "the case must complete an epoch (%zu draws of %zu chunks)", ((size_t)steps / c) * (size_t)B, C);
    EXPECT_MSG(epochs_differ, "every epoch walks the chunks in the same order");
    EXPECT_MSG(differs_from_seed43, "seeds 42 and 43 read the same chunks");
    streams_free(&s);
    streams_free(&other);
    free(seen);
    free(drawn);
    free(tok);
    free(x);
    free(y);
    free(x2);
    free(y2);
}

static void test_streams(void) {
    TEST_CASE("streams: shuffled chunks against their definition; a restored cycle reads the same") {
        check_chunks(0, 1000, 4, 16, 100, 200);  // 10 chunks, 6 segments each: 33 cycles, 13 epochs of 10 draws
        check_chunks(7, 530, 3, 5, 51, 150);     // lo 7, 10 chunks of 51 (10 segments, 0 left over), 20 unread tokens
        check_chunks(0, 64, 2, 16, 17, 40);      // L = T+1: one segment per chunk, every later step wraps
        check_chunks(0, 200, 1, 1, 9, 400);      // T 1, B 1: 22 chunks of 8 segments, 50 cycles
    }
    TEST_CASE("streams: shuffled chunks refuse a chunk shorter than ctx+1 or fewer chunks than rows") {
        streams_t s;
        char err[256];
        EXPECT(streams_init_chunked(&s, 0, 1000, 4, 16, 16, 1, err, sizeof err) == -1);
        EXPECT_MSG(strcmp(err, "--stream-chunk 16 is shorter than ctx+1 = 17") == 0, "got \"%s\"", err);
        EXPECT(streams_init_chunked(&s, 0, 100, 4, 16, 32, 1, err, sizeof err) == -1);
        EXPECT_MSG(strcmp(err, "the training split's 100 tokens hold 3 chunks of 32 tokens, fewer than the 4 rows of a batch; "
                               "use a smaller --stream-chunk or --batch") == 0, "got \"%s\"", err);
        EXPECT(streams_init_chunked(&s, 0, 128, 4, 16, 32, 1, err, sizeof err) == 0 && s.n_chunks == 4);
        const double good[] = {0, 7, 1e6}, bad[] = {-1, 0.5, 1e300, 0.0 / 0.0};
        for (size_t i = 0; i < 3; i++) EXPECT_MSG(streams_check_cycle(&s, good[i], err, sizeof err) == 0, "%g: %s", good[i], err);
        for (size_t i = 0; i < 4; i++) EXPECT_MSG(streams_check_cycle(&s, bad[i], err, sizeof err) == -1, "cycle %g accepted", bad[i]);
        streams_free(&s);
    }

    TEST_CASE("streams: offsets, wraps and rows against the closed form") {
        check_streams(0, 100, 1, 16, 40);    // len 100: 6 segments per cycle (96 targets), 3 unread tokens
        check_streams(0, 97, 1, 16, 40);     // len 97 = 6·16 + 1: the last segment reads the last token
        check_streams(0, 96, 1, 16, 40);     // len 96: 5 segments per cycle
        check_streams(0, 17, 1, 16, 10);     // len T+1: one segment per cycle, every later step wraps
        check_streams(5, 203, 3, 7, 50);     // offset split (lo 5), len 67: 9 segments, 2 tokens left over
        check_streams(90, 10, 2, 4, 9);      // len 5 = T+1
        check_streams(0, 1000, 8, 1, 300);   // T 1
    }
    TEST_CASE("streams: too short a stream is refused with one line; restored offsets are checked") {
        streams_t s;
        char err[256];
        EXPECT(streams_init(&s, 0, 100, 8, 16, err, sizeof err) == -1);
        EXPECT_MSG(strcmp(err, "the training split's 100 tokens in 8 streams of 12 tokens: a stream needs at least "
                               "ctx+1 = 17; use a smaller --batch or --ctx") == 0, "got \"%s\"", err);
        EXPECT(streams_init(&s, 0, 136, 8, 16, err, sizeof err) == 0 && s.len == 17);
        EXPECT(streams_init(&s, 0, 96, 1, 16, err, sizeof err) == 0);  // len 96 = 6·16: offset 96 is past the stream
        EXPECT(streams_check_offset(&s, 80, err, sizeof err) == 0 && streams_check_offset(&s, 96, err, sizeof err) == -1);
        EXPECT(streams_init(&s, 0, 100, 1, 16, err, sizeof err) == 0);
        const double good[] = {0, 16, 96}, bad[] = {-16, 8, 100, 112, 1e300, -0.5, 16.5, 0.0 / 0.0};
        for (size_t i = 0; i < 3; i++) EXPECT_MSG(streams_check_offset(&s, good[i], err, sizeof err) == 0, "%g: %s", good[i], err);
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            EXPECT_MSG(streams_check_offset(&s, bad[i], err, sizeof err) == -1, "offset %g accepted", bad[i]);
            EXPECT(strstr(err, "stream offset") != NULL && strchr(err, '\n') == NULL);
        }
    }
}

// A read that blocks (a FIFO opened a second time, with no writer left) fails the test, not hangs it.
static void on_alarm(int sig) {
    static const char msg[] = "  timed out: a read blocked (was a pipe or FIFO opened twice?)\n0 passed, 1 failed\n";
    (void)sig;
    if (write(STDOUT_FILENO, msg, sizeof msg - 1) < 0) _exit(2);
    _exit(1);
}

int main(void) {
    signal(SIGALRM, on_alarm);
    alarm(60);
    strcpy(dir, "/tmp/attnlab_test_dataset_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_files();
    test_read_once();
    test_batches();
    test_eval();
    test_streams();
    const char *names[] = {"empty.txt", "locked.txt", "ok.txt", "tiny.txt", "short.txt", "split.txt", "big.txt"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    return test_main_end();
}
