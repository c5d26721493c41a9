// fuzz_args.c — libFuzzer harness for the flag parser (cli/args.c, called as it is): the input,
// split at NUL bytes, is an argv for args_parse over a table with every flag type. A bad command
// line ends in die() → exit(2): this harness is linked with -Wl,--wrap=exit so that exit returns
// here (longjmp) instead of ending the fuzzer. Every accepted value must lie in its flag's range.
// See docs/testing.md "Fuzzing".
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"

static jmp_buf g_back;
static int g_in_parse, g_exit_code;
void __real_exit(int code) __attribute__((noreturn));
void __wrap_exit(int code) {
    if (g_in_parse) {
        g_exit_code = code;
        longjmp(g_back, 1);
    }
    __real_exit(code);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size > 4096) return 0;
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = 0;
    enum { MAX_ARGS = 64 };
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "train";
    for (char *p = buf; p <= buf + size && argc <= MAX_ARGS; p += strlen(p) + 1) argv[argc++] = p;
    argv[argc] = NULL;

    static long steps, ctx;
    static double lr, dropout;
    static const char *layers, *out;
    static int quiet;
    flag_t flags[] = {
        {.name = "steps", .type = FLAG_INT, .dst = &steps, .def = "2000", .lo = 1, .hi = 1e9, .stored = 1, .help = "steps"},
        {.name = "ctx", .type = FLAG_INT, .dst = &ctx, .def = "64", .lo = 1, .hi = 1 << 20, .stored = 1, .help = "ctx"},
        {.name = "lr", .type = FLAG_FLOAT, .dst = &lr, .def = "1e-3", .lo = 0, .hi = 10, .stored = 1, .help = "lr"},
        {.name = "dropout", .type = FLAG_FLOAT, .dst = &dropout, .def = "0", .lo = 0, .hi = 0.99, .stored = 1, .help = "p"},
        {.name = "layers", .type = FLAG_STR, .dst = &layers, .def = "4*softmax/mlp", .stored = 1, .help = "layers"},
        {.name = "out", .type = FLAG_STR, .dst = &out, .def = "", .help = "out"},
        {.name = "quiet", .type = FLAG_BOOL, .dst = &quiet, .def = "", .help = "quiet"},
    };
    int n_flags = (int)(sizeof flags / sizeof flags[0]);
    const char *pos[2];
    int n_pos = 0, help = 0, version = 0;
    quiet = 0;
    g_in_parse = 1;
    if (setjmp(g_back) == 0) {
        args_parse(flags, n_flags, argc, argv, pos, 2, &n_pos, &help, &version, "train");
        g_in_parse = 0;
        if (steps < 1 || steps > 1000000000L || ctx < 1 || ctx > (1 << 20)) abort();
        if (!(lr >= 0 && lr <= 10) || !(dropout >= 0 && dropout <= 0.99)) abort();
        if (!layers || !out || n_pos < 0 || n_pos > 2) abort();
    } else if (g_exit_code != 2) {
        abort();  // a bad command line is a usage error: exit status 2
    }
    g_in_parse = 0;
    free(buf);
    return 0;
}
