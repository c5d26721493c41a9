// compare_log.c — reading a run's CSV log and stdout (compare_log.h).
#include "cli/compare_log.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"

enum { MAX_FIELDS = 64 };

// Split line (modified) at ',' into at most MAX_FIELDS fields; returns their count.
static int split_fields(char *line, char *f[MAX_FIELDS]) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == MAX_FIELDS) return n;
        f[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    return n;
}

static void chomp(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = 0;
}

int cmp_log_columns(const char *header, cmp_cols_t *c, char *err, size_t errlen) {
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", header);
    chomp(buf);
    char *f[MAX_FIELDS];
    int n = split_fields(buf, f);
    struct { const char *name; int *at; int needed; } want[] = {
        {"step", &c->step, 1}, {"split", &c->split, 1}, {"loss", &c->loss, 1}, {"bpb", &c->bpb, 1},
        {"tokens_per_s", &c->tokens_per_s, 1}, {"ms_per_step", &c->ms_per_step, 1}, {"elapsed_s", &c->elapsed_s, 1},
        {"tokens_seen", &c->tokens_seen, 1}, {"spans", &c->spans, 0}, {"pkm_usage", &c->pkm_usage, 0},
    };
    for (size_t w = 0; w < sizeof want / sizeof *want; w++) {
        *want[w].at = -1;
        for (int i = 0; i < n; i++)
            if (strcmp(f[i], want[w].name) == 0) *want[w].at = i;
        if (*want[w].at < 0 && want[w].needed) return seterr(err, errlen, "the log has no column '%s'", want[w].name);
    }
    return 0;
}

static double field_num(char *const *f, int n, int col) {
    if (col < 0 || col >= n || !f[col][0]) return NAN;
    char *end;
    double v = strtod(f[col], &end);
    return end == f[col] ? NAN : v;
}

// One data row into a point; returns the split's first letter ('t', 'v', 'f') or 0 for a bad row.
static int parse_row(char *line, const cmp_cols_t *c, cmp_point_t *p, double *ms, double *tps, char **f, int *nf) {
    chomp(line);
    int n = split_fields(line, f);  // the header (split "split") and unknown splits are no row
    *nf = n;
    if (c->split >= n) return 0;
    const char *split = f[c->split];
    int kind = strcmp(split, "train") == 0 ? 't' : strcmp(split, "val") == 0 ? 'v' : strcmp(split, "final") == 0 ? 'f' : 0;
    if (!kind) return 0;
    *p = (cmp_point_t){.step = (long)field_num(f, n, c->step), .loss = field_num(f, n, c->loss), .bpb = field_num(f, n, c->bpb),
                       .elapsed = field_num(f, n, c->elapsed_s), .tokens = field_num(f, n, c->tokens_seen)};
    *ms = field_num(f, n, c->ms_per_step);
    *tps = field_num(f, n, c->tokens_per_s);
    return kind;
}

int cmp_log_poll(const char *csv, long *offset, cmp_cols_t *c, int *have_cols, cmp_point_t *last_train) {
    FILE *f = fopen(csv, "r");
    if (!f) return 0;
    if (fseek(f, *offset, SEEK_SET) != 0) {
        fclose(f);
        return 0;
    }
    char line[4096];
    int got = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        if (len == 0 || line[len - 1] != '\n') break;  // a line still being written: read it next time
        *offset += (long)len;
        if (!*have_cols) {
            char e[256];
            if (cmp_log_columns(line, c, e, sizeof e) == 0) *have_cols = 1;
            continue;
        }
        char *fl[MAX_FIELDS];
        int nf;
        cmp_point_t p;
        double ms, tps;
        if (parse_row(line, c, &p, &ms, &tps, fl, &nf) == 't') {
            *last_train = p;
            got = 1;
        }
    }
    fclose(f);
    return got;
}

// A ';'-joined per-layer list ("12.5;;40" — empty where a layer has none) into v (NaN for empty);
// scale multiplies each value. Returns 1 + the last layer with a value, 0 if none.
static int parse_layer_list(const char *s, double *v, double scale) {
    int n = 0, last = 0;
    for (int l = 0; l < CMP_MAX_LAYERS; l++) v[l] = NAN;
    const char *p = s;
    while (*p && n < CMP_MAX_LAYERS) {
        char *end;
        double x = strtod(p, &end);
        if (end != p) {
            v[n] = x * scale;
            last = n + 1;
            p = end;
        }
        while (*p && *p != ';') p++;
        if (*p == ';') p++;
        n++;
    }
    return last;
}

// Rows a resumed run wrote again (its log is appended): a row at step s replaces every kept row of
// its split from step s on.
static void keep_row(cmp_point_t **rows, int *n, cmp_point_t p) {
    while (*n > 0 && (*rows)[*n - 1].step >= p.step) (*n)--;
    *rows = realloc(*rows, (size_t)(*n + 1) * sizeof **rows);
    CHECK(*rows);
    (*rows)[(*n)++] = p;
}

// Spans and pkm usage from stdout: the lines after the last "final step" line.
static void read_stdout_extras(const char *path, cmp_log_t *r) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[8192];
    int after_final = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "final step", 10) == 0) {
            after_final = 1;
            r->n_span_layers = r->n_pkm_layers = 0;
            for (int l = 0; l < CMP_MAX_LAYERS; l++) r->span[l] = r->pkm[l] = NAN;
            continue;
        }
        if (!after_final) continue;
        const char *sp = strstr(line, "spans mean/max:");
        if (sp) {
            const char *p = sp + strlen("spans mean/max:");
            while ((p = strchr(p, 'L')) != NULL) {
                int l;
                double mean, mx;
                if (sscanf(p, "L%d %lf/%lf", &l, &mean, &mx) == 3 && l >= 0 && l < CMP_MAX_LAYERS) {
                    r->span[l] = mean;
                    if (l + 1 > r->n_span_layers) r->n_span_layers = l + 1;
                }
                p++;
            }
            continue;
        }
        int l;
        double pct;
        const char *pk = strstr(line, "pkm layer ");
        if (pk && sscanf(pk, "pkm layer %d: %lf%%", &l, &pct) == 2 && l >= 0 && l < CMP_MAX_LAYERS) {
            r->pkm[l] = pct / 100.0;
            if (l + 1 > r->n_pkm_layers) r->n_pkm_layers = l + 1;
        }
    }
    fclose(f);
}

int cmp_log_read(const char *csv, const char *stdout_path, cmp_log_t *r, char *err, size_t errlen) {
    *r = (cmp_log_t){0};
    r->final = (cmp_point_t){.step = -1, .loss = NAN, .bpb = NAN, .elapsed = NAN, .tokens = NAN};
    for (int l = 0; l < CMP_MAX_LAYERS; l++) r->span[l] = r->pkm[l] = NAN;
    FILE *f = fopen(csv, "r");
    if (!f) return seterr(err, errlen, "cannot read the log '%s': %s", csv, strerror(errno));
    char line[8192], header[8192];
    if (!fgets(header, sizeof header, f)) {
        fclose(f);
        return seterr(err, errlen, "the log '%s' is empty", csv);
    }
    cmp_cols_t c;
    if (cmp_log_columns(header, &c, err, errlen)) {
        fclose(f);
        return -1;
    }
    char spans_text[4096] = "", pkm_text[4096] = "";
    int extras_from_csv = 0;
    double *ms = NULL, *tps = NULL;
    double offset = 0;  // a resumed run's rows count elapsed_s from its resume, unless it kept its clock
    while (fgets(line, sizeof line, f)) {
        char *fl[MAX_FIELDS];
        int nf;
        cmp_point_t p;
        double m, t;
        int kind = parse_row(line, &c, &p, &m, &t, fl, &nf);
        if (kind) {  // the time at which the kept rows before this step end: the resume point
            double before = 0;
            for (int i = 0; i < r->n_train; i++)
                if (r->train[i].step < p.step && r->train[i].elapsed > before) before = r->train[i].elapsed;
            for (int i = 0; i < r->n_val; i++)
                if (r->val[i].step < p.step && r->val[i].elapsed > before) before = r->val[i].elapsed;
            if (p.elapsed + offset < before - 1e-6) offset = before;
            p.elapsed += offset;
        }
        if (kind == 't') {
            keep_row(&r->train, &r->n_train, p);  // ms and tps follow the kept rows' indices
            ms = realloc(ms, (size_t)r->n_train * sizeof *ms);
            tps = realloc(tps, (size_t)r->n_train * sizeof *tps);
            CHECK(ms && tps);
            ms[r->n_train - 1] = m;
            tps[r->n_train - 1] = t;
        } else if (kind == 'v') {
            keep_row(&r->val, &r->n_val, p);
        } else if (kind == 'f') {
            r->has_final = 1;
            r->final = p;
        }
        if ((kind == 'f' || (kind == 'v' && !r->has_final)) && (c.spans >= 0 || c.pkm_usage >= 0)) {
            extras_from_csv = 1;
            snprintf(spans_text, sizeof spans_text, "%s", c.spans >= 0 && c.spans < nf ? fl[c.spans] : "");
            snprintf(pkm_text, sizeof pkm_text, "%s", c.pkm_usage >= 0 && c.pkm_usage < nf ? fl[c.pkm_usage] : "");
        }
    }
    fclose(f);
    r->ms_per_step = ms;
    r->tokens_per_s = tps;
    if (!r->has_final && r->n_val) r->final = r->val[r->n_val - 1];
    if (extras_from_csv) {
        r->n_span_layers = parse_layer_list(spans_text, r->span, 1.0);
        r->n_pkm_layers = parse_layer_list(pkm_text, r->pkm, 1.0);
    } else if (stdout_path) {
        read_stdout_extras(stdout_path, r);
    }
    return 0;
}

void cmp_log_free(cmp_log_t *r) {
    free(r->val);
    free(r->train);
    free(r->ms_per_step);
    free(r->tokens_per_s);
    *r = (cmp_log_t){0};
}
