// fuzz_checkpoint.c — libFuzzer harness for the checkpoint reader: the input is a whole file, read
// by ckpt_load (safetensors container, then the attnlab metadata: format, version, config,
// tokenizer, tensors against the config). Every input must load or fail with one printable line;
// a load that succeeds must also hold finite weights of the shapes its config implies.
// Seeds: fuzz/make_corpus.sh (real checkpoints written by ./train). See docs/testing.md "Fuzzing".
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/checkpoint.h"

static char g_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    snprintf(g_path, sizeof g_path, "/tmp/attnlab_fuzz_ckpt_%ld.safetensors", (long)getpid());
    return 0;
}

// The message must be one line of printable text (no control bytes from the file).
static void check_message(const char *err) {
    for (const unsigned char *p = (const unsigned char *)err; *p; p++)
        if (*p < 0x20 || *p == 0x7f) {
            fprintf(stderr, "unprintable byte 0x%02x in message: %s\n", *p, err);
            abort();
        }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    ckpt_t c;
    char err[1024] = "";
    if (ckpt_load(g_path, &c, err, sizeof err) != 0) {
        if (!err[0]) abort();  // every failure says why
        check_message(err);
        return 0;
    }
    const param_table_t *pt = &c.model.params;
    for (int i = 0; i < pt->count; i++)
        for (size_t j = 0; j < pt->items[i]->numel; j++)
            if (!isfinite(pt->items[i]->data[j])) abort();
    if ((c.model.wpe && c.model.wpe->shape[0] != c.model.dims.ctx) || c.model.wte->shape[0] != c.tok.vocab_size) abort();
    ckpt_free(&c);
    return 0;
}
