// compare_manifest.c — OUTDIR/manifest.json (compare_manifest.h).
#include "cli/compare_manifest.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/check.h"
#include "cli/compare_key.h"

#define MANIFEST_FORMAT "attnlab-compare 1"

int cmp_file_id(const char *path, cmp_file_id_t *id, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return seterr(err, errlen, "cannot read '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && !S_ISREG(st.st_mode)) {
        fclose(f);
        return seterr(err, errlen, "'%s' is not a regular file (every run reads it again)", path);
    }
    unsigned char buf[1 << 16];
    size_t n;
    *id = (cmp_file_id_t){0, CMP_FNV_OFFSET};
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        id->file_hash = cmp_fnv1a(id->file_hash, buf, n);
        id->file_bytes += n;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) return seterr(err, errlen, "cannot read '%s'", path);
    return 0;
}

static cJSON *words_json(char *const *w, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(w[i]));
    return a;
}

static int words_equal(const cJSON *a, char *const *w, int n) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return 0;
    for (int i = 0; i < n; i++) {
        const char *s = cJSON_GetStringValue(cJSON_GetArrayItem(a, i));
        if (!s || strcmp(s, w[i]) != 0) return 0;
    }
    return 1;
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *s = xmalloc(cap);
    size_t k;
    while ((k = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (n + 1 == cap) {
            cap *= 2;
            s = realloc(s, cap);
            CHECK(s);
        }
    }
    fclose(f);
    s[n] = 0;
    return s;
}

// Empty but for a compare.lock (left by a compare stopped before it wrote the manifest).
static int dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 1;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 && strcmp(e->d_name, "compare.lock") != 0) empty = 0;
    closedir(d);
    return empty;
}

int cmp_manifest_check(const cmp_opts_t *o, const cmp_file_id_t *id, int *resuming, char *err, size_t errlen) {
    *resuming = 0;
    struct stat st;
    if (stat(o->outdir, &st) != 0) {
        if (errno != ENOENT) return seterr(err, errlen, "OUTDIR '%s': %s", o->outdir, strerror(errno));
        if (mkdir(o->outdir, 0777) != 0) return seterr(err, errlen, "cannot create OUTDIR '%s': %s", o->outdir, strerror(errno));
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) return seterr(err, errlen, "OUTDIR '%s' exists and is not a directory", o->outdir);
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", o->outdir);
    char *text = read_all(path);
    if (!text) {
        if (dir_is_empty(o->outdir)) return 0;
        return seterr(err, errlen, "OUTDIR '%s' holds files but no comparison (no manifest.json); refusing to mix: choose an empty or new directory",
                      o->outdir);
    }
    cJSON *m = cJSON_Parse(text);
    free(text);
    const char *why = NULL;
    char hex[32];
    snprintf(hex, sizeof hex, "%016" PRIx64, id->file_hash);
    if (!m || !cJSON_IsObject(m)) why = "its manifest.json is not valid JSON";
    else if (!cJSON_IsString(cJSON_GetObjectItem(m, "format")) || strcmp(cJSON_GetObjectItem(m, "format")->valuestring, MANIFEST_FORMAT) != 0)
        why = "its manifest.json is not a compare manifest";
    else if (!cJSON_IsString(cJSON_GetObjectItem(m, "file_fnv1a64")) || strcmp(cJSON_GetObjectItem(m, "file_fnv1a64")->valuestring, hex) != 0 ||
             !cJSON_IsNumber(cJSON_GetObjectItem(m, "file_bytes")) || cJSON_GetObjectItem(m, "file_bytes")->valuedouble != (double)id->file_bytes)
        why = "it was made on another training file (size or hash differs)";
    else if (!words_equal(cJSON_GetObjectItem(m, "shared_flags"), o->shared, o->n_shared))
        why = "it was made with other shared train flags";
    else if (!cJSON_IsNumber(cJSON_GetObjectItem(m, "time_budget")) || cJSON_GetObjectItem(m, "time_budget")->valuedouble != o->time_budget)
        why = "it was made with another --time-budget";
    cJSON_Delete(m);
    if (why) return seterr(err, errlen, "OUTDIR '%s' holds another comparison: %s; refusing to mix (see its manifest.json)", o->outdir, why);
    *resuming = 1;
    return 0;
}

int cmp_manifest_write(const cmp_opts_t *o, const cmp_file_id_t *id, const long *params, char *err, size_t errlen) {
    cJSON *m = cJSON_CreateObject();
    char hex[32];
    snprintf(hex, sizeof hex, "%016" PRIx64, id->file_hash);
    cJSON_AddStringToObject(m, "format", MANIFEST_FORMAT);
    cJSON_AddStringToObject(m, "file", o->file);
    cJSON_AddNumberToObject(m, "file_bytes", (double)id->file_bytes);
    cJSON_AddStringToObject(m, "file_fnv1a64", hex);
    cJSON_AddItemToObject(m, "shared_flags", words_json(o->shared, o->n_shared));
    cJSON_AddNumberToObject(m, "time_budget", o->time_budget);
    cJSON_AddNumberToObject(m, "seeds", (double)o->seeds);
    cJSON_AddNumberToObject(m, "seed", (double)o->seed_base);
    cJSON *specs = cJSON_AddArrayToObject(m, "specs");
    for (int s = 0; s < o->n_specs; s++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "spec", o->specs[s].spec);
        cJSON_AddItemToObject(e, "flags", words_json(o->specs[s].flags, o->specs[s].n_flags));
        cJSON_AddNumberToObject(e, "parameters", (double)params[s]);
        cJSON_AddItemToArray(specs, e);
    }
    char *text = cJSON_Print(m);
    cJSON_Delete(m);
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/manifest.json", o->outdir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0) ok = 0;
    free(text);
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return seterr(err, errlen, "cannot write '%s': %s", path, strerror(errno ? errno : EIO));
    }
    return 0;
}
