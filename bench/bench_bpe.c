// bench_bpe.c — BPE's costs on one text (docs/tokenizers.md "Numbers"): learning a vocabulary from
// the text's first 90% (in memory, as train does), encoding the whole text (in memory), and
// checking that decoding gives the text back. One thread; run it with `nice -n 0` on a quiet machine.
//   build/release/bench/bench_bpe FILE VOCAB
// Prints one line: bytes, learn_s and learn_cpu_s (wall and CPU seconds), encode_s, encode_cpu_s,
// encode_MB_per_cpu_s, tokens, bytes_per_token, max_rss_MB. On a loaded machine the CPU seconds
// are the single-core cost; the wall seconds include waiting for a core.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/check.h"
#include "data/dataset.h"
#include "tokenizer/tokenizer.h"

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }
static double cpu(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }  // one thread: its time on a core

int main(int argc, char **argv) {
    if (argc != 3) die(EXIT_USAGE, "usage: bench_bpe FILE VOCAB");
    uint8_t *text;
    size_t n;
    char err[512];
    if (read_file_bytes(argv[1], &text, &n, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
    tokenizer_t tok;
    double t0 = now(), c0 = cpu();
    if (tok_learn_bpe(&tok, text, dataset_bpe_cut(n), atoi(argv[2]), err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
    double t1 = now(), c1 = cpu();
    int32_t *ids;
    size_t k;
    if (tok_encode(&tok, text, n, &ids, &k, NULL, err, sizeof err)) die(EXIT_RUNTIME, "%s", err);
    double t2 = now(), c2 = cpu();
    uint8_t *buf = xmalloc((size_t)tok_max_token_bytes(&tok));
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        int len = tok_decode(&tok, ids[i], buf);
        if (m + (size_t)len > n || memcmp(buf, text + m, (size_t)len) != 0) die(EXIT_RUNTIME, "round trip failed at byte %zu", m);
        m += (size_t)len;
    }
    if (m != n) die(EXIT_RUNTIME, "round trip gave %zu of %zu bytes", m, n);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("bytes %zu learn_s %.2f learn_cpu_s %.2f encode_s %.3f encode_cpu_s %.3f encode_MB_per_cpu_s %.1f tokens %zu "
           "bytes_per_token %.2f max_rss_MB %.0f\n",
           n, t1 - t0, c1 - c0, t2 - t1, c2 - c1, (double)n / 1e6 / (c2 - c1), k, (double)n / (double)k, ru.ru_maxrss / 1024.0);
    free(buf);
    free(ids);
    free(text);
    tok_free(&tok);
    return 0;
}
