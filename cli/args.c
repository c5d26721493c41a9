// args.c — the flag table (see args.h).
#include "cli/args.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"

flag_t *args_find(flag_t *flags, int n_flags, const char *name) {
    for (int i = 0; i < n_flags; i++)
        if (strcmp(flags[i].name, name) == 0) return &flags[i];
    return NULL;
}

// Set one flag from text; exits 2 with a message naming the flag when the text is bad.
static void set_flag(flag_t *f, const char *text, const char *prog) {
    char *end;
    errno = 0;
    switch (f->type) {
    case FLAG_INT: {
        double v = strtod(text, &end);
        if (end == text || *end || errno || !isfinite(v) || v != floor(v))
            die(EXIT_USAGE, "%s: --%s needs a whole number, got '%s'", prog, f->name, text);
        if (v < f->lo || v > f->hi)
            die(EXIT_USAGE, "%s: --%s must be in [%.0f, %.0f], got %s", prog, f->name, f->lo, f->hi, text);
        *(long *)f->dst = (long)v;
        break;
    }
    case FLAG_FLOAT: {
        double v = strtod(text, &end);
        if (end == text || *end || errno || !isfinite(v)) die(EXIT_USAGE, "%s: --%s needs a number, got '%s'", prog, f->name, text);
        if (v < f->lo || v > f->hi) die(EXIT_USAGE, "%s: --%s must be in [%g, %g], got %s", prog, f->name, f->lo, f->hi, text);
        *(double *)f->dst = v;
        break;
    }
    case FLAG_STR:
        *(const char **)f->dst = text;
        break;
    case FLAG_BOOL:
        *(int *)f->dst = 1;
        break;
    }
}

int args_parse(flag_t *flags, int n_flags, int argc, char **argv, const char **pos, int max_pos, int *n_pos,
               int *want_help, int *want_version, const char *prog) {
    *n_pos = 0;
    *want_help = *want_version = 0;
    for (int i = 0; i < n_flags; i++)
        if (flags[i].type == FLAG_STR) *(const char **)flags[i].dst = flags[i].def ? flags[i].def : "";
        else if (flags[i].type != FLAG_BOOL && flags[i].def && flags[i].def[0]) set_flag(&flags[i], flags[i].def, prog);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { *want_help = 1; continue; }
        if (strcmp(a, "--version") == 0) { *want_version = 1; continue; }
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            if (a[0] == '-' && a[1] != 0) die(EXIT_USAGE, "%s: unknown option '%s' (see --help)", prog, a);
            if (*n_pos == max_pos) die(EXIT_USAGE, "%s: unexpected argument '%s' (see --help)", prog, a);
            pos[(*n_pos)++] = a;
            continue;
        }
        char name[64];
        const char *eq = strchr(a + 2, '='), *value = NULL;
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (len >= sizeof name) die(EXIT_USAGE, "%s: unknown option '%s' (see --help)", prog, a);
        memcpy(name, a + 2, len);
        name[len] = 0;
        flag_t *f = args_find(flags, n_flags, name);
        if (!f) die(EXIT_USAGE, "%s: unknown option '--%s' (see --help)", prog, name);
        if (f->type == FLAG_BOOL) {
            if (eq) die(EXIT_USAGE, "%s: --%s takes no value", prog, name);
        } else if (eq) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc) die(EXIT_USAGE, "%s: --%s needs a value", prog, name);
            value = argv[++i];
            // "--layers --check" is a forgotten value, not a spec named "--check" (a value that is
            // meant to be such a word can be given as --layers=--check)
            if (strncmp(value, "--", 2) == 0 && value[2]) {
                char next[64];
                size_t nlen = strcspn(value + 2, "=");
                if (nlen < sizeof next) {
                    memcpy(next, value + 2, nlen);
                    next[nlen] = 0;
                    if (args_find(flags, n_flags, next) || strcmp(next, "help") == 0 || strcmp(next, "version") == 0)
                        die(EXIT_USAGE, "%s: --%s needs a value, got the option '%s'", prog, name, value);
                }
            }
        }
        if (f->given && f->type != FLAG_BOOL) die(EXIT_USAGE, "%s: --%s given twice", prog, name);
        set_flag(f, value, prog);
        f->given = 1;
    }
    return 0;
}

void args_print_help(const flag_t *flags, int n_flags, const char *usage) {
    printf("%s\n\nOptions (default in brackets):\n", usage);
    for (int i = 0; i < n_flags; i++) {
        const flag_t *f = &flags[i];
        char left[48];
        const char *meta = f->type == FLAG_INT ? " N" : f->type == FLAG_FLOAT ? " X" : f->type == FLAG_STR ? " S" : "";
        snprintf(left, sizeof left, "--%s%s", f->name, meta);
        printf("  %-22s %s", left, f->help);
        if (f->def && f->def[0]) printf(" [%s]", f->def);
        printf("\n");
    }
    printf("  %-22s %s\n  %-22s %s\n", "--help", "this text", "--version", "print the version");
}

void args_to_json(const flag_t *flags, int n_flags, void *json_object) {
    cJSON *o = json_object;
    for (int i = 0; i < n_flags; i++) {
        const flag_t *f = &flags[i];
        if (!f->stored) continue;
        switch (f->type) {
        case FLAG_INT: cJSON_AddNumberToObject(o, f->name, (double)*(long *)f->dst); break;
        case FLAG_FLOAT: cJSON_AddNumberToObject(o, f->name, *(double *)f->dst); break;
        case FLAG_STR: {
            const char *s = *(const char **)f->dst;
            cJSON_AddStringToObject(o, f->name, s ? s : "");
            break;
        }
        case FLAG_BOOL: cJSON_AddBoolToObject(o, f->name, *(int *)f->dst); break;
        }
    }
}

static int listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return 1;
        p = c ? c + 1 : NULL;
    }
    return 0;
}

// A stored number must satisfy the flag's own range (the file may have been edited or damaged).
static void check_stored_range(const flag_t *f, double v, const char *ckpt) {
    if (!(v >= f->lo && v <= f->hi) || (f->type == FLAG_INT && v != floor(v)))
        die(EXIT_RUNTIME, "checkpoint '%s': train_state.%s is %.15g, outside what --%s accepts [%.15g, %.15g]", ckpt, f->name, v,
            f->name, f->lo, f->hi);
}

// The strings args_from_json restored into the options: they live until args_release.
#define MAX_RESTORED 64
static char *restored[MAX_RESTORED];
static int n_restored;
static char *keep_restored(char *str) {
    CHECK(n_restored < MAX_RESTORED);
    return restored[n_restored++] = str;
}

void args_from_json(flag_t *flags, int n_flags, const void *json_object, const char *may_change, const char *ckpt) {
    const cJSON *o = json_object;
    for (int i = 0; i < n_flags; i++) {
        flag_t *f = &flags[i];
        if (!f->stored) continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f->name);
        if (!v) die(EXIT_RUNTIME, "checkpoint '%s': train_state lacks '%s'", ckpt, f->name);
        int changeable = listed(may_change, f->name);
        char stored_text[256];
        switch (f->type) {
        case FLAG_INT:
            if (!cJSON_IsNumber(v)) die(EXIT_RUNTIME, "checkpoint '%s': train_state.%s is not a number", ckpt, f->name);
            check_stored_range(f, v->valuedouble, ckpt);
            snprintf(stored_text, sizeof stored_text, "%.0f", v->valuedouble);
            if (f->given && !changeable && *(long *)f->dst != (long)v->valuedouble) goto conflict;
            if (!f->given) *(long *)f->dst = (long)v->valuedouble;
            break;
        case FLAG_FLOAT:
            if (!cJSON_IsNumber(v)) die(EXIT_RUNTIME, "checkpoint '%s': train_state.%s is not a number", ckpt, f->name);
            check_stored_range(f, v->valuedouble, ckpt);
            snprintf(stored_text, sizeof stored_text, "%g", v->valuedouble);
            if (f->given && !changeable && *(double *)f->dst != v->valuedouble) goto conflict;
            if (!f->given) *(double *)f->dst = v->valuedouble;
            break;
        case FLAG_STR:
            if (!cJSON_IsString(v)) die(EXIT_RUNTIME, "checkpoint '%s': train_state.%s is not a string", ckpt, f->name);
            snprintf(stored_text, sizeof stored_text, "%s", v->valuestring);
            if (f->given && !changeable && strcmp(*(const char **)f->dst, v->valuestring) != 0) goto conflict;
            if (!f->given) *(const char **)f->dst = keep_restored(xstrdup(v->valuestring));
            break;
        case FLAG_BOOL:
            if (!cJSON_IsBool(v)) die(EXIT_RUNTIME, "checkpoint '%s': train_state.%s is not a boolean", ckpt, f->name);
            snprintf(stored_text, sizeof stored_text, "%s", cJSON_IsTrue(v) ? "on" : "off");
            if (f->given && !changeable && *(int *)f->dst != cJSON_IsTrue(v)) goto conflict;
            if (!f->given) *(int *)f->dst = cJSON_IsTrue(v);
            break;
        }
        continue;
    conflict:
        die(EXIT_USAGE, "--%s conflicts with the run stored in '%s' (%s); --resume continues that run as it was", f->name,
            ckpt, stored_text);
    }
}

void args_release(void) {
    for (int i = 0; i < n_restored; i++) free(restored[i]);
    n_restored = 0;
}

int args_bind(flag_t *out, int max, const flag_t *table, int n) {
    CHECK(n <= max);
    memcpy(out, table, (size_t)n * sizeof *table);
    return n;
}
