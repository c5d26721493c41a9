// test_compare.c — the pieces of `compare` that decide what a report says (docs/compare.md): the
// mean/spread statistics, the run keys (stable, and different whenever what a run trains differs),
// the command-line helpers (SPEC=FLAGS split, per-spec flags replacing shared ones, reserved flags)
// and the reading of a CSV log by its header names (columns in any order, rows a resumed run wrote
// again, elapsed time restarted by a resume, spans and pkm usage columns), and the reading of a run's
// by_position.csv (buckets by their context range, absent = n/a, malformed refused in one line).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/compare_bypos.h"
#include "cli/compare_key.h"
#include "cli/compare_log.h"
#include "cli/compare_opts.h"
#include "cli/compare_stats.h"
#include "tests/testlib.h"

static int close_to(double a, double b) { return fabs(a - b) <= 1e-12 * (1 + fabs(b)); }

static void key_of(const char *spec, char **own, int n_own, char **shared, int n_shared, long seed, char out[CMP_KEY_MAX]) {
    cmp_run_key(spec, own, n_own, shared, n_shared, seed, out);
}

int main(void) {
    TEST_CASE("statistics: mean, sample standard deviation (n - 1), min, max; NaN left out") {
        double x[] = {1, 2, NAN, 3, 4};
        cmp_stat_t s = cmp_stat(x, 5);
        EXPECT(s.n == 4);
        EXPECT(close_to(s.mean, 2.5));
        EXPECT_MSG(close_to(s.sd, sqrt(5.0 / 3.0)), "sd %.17g, want sqrt(5/3)", s.sd);  // Σ(x-2.5)² = 5, n-1 = 3
        EXPECT(s.min == 1 && s.max == 4);
        double one[] = {NAN, 7.25};
        s = cmp_stat(one, 2);
        EXPECT(s.n == 1 && s.mean == 7.25 && isnan(s.sd) && s.min == 7.25 && s.max == 7.25);
        s = cmp_stat(one, 1);
        EXPECT(s.n == 0 && isnan(s.mean) && isnan(s.sd) && isnan(s.min));
        // large offset, small spread: the two-pass sum keeps the spread exact
        double big[] = {1e9 + 1, 1e9 + 2, 1e9 + 3};
        s = cmp_stat(big, 3);
        EXPECT_MSG(fabs(s.sd - 1.0) < 1e-6, "sd %.17g, want 1", s.sd);
        double m[] = {5, 1, NAN, 3};
        EXPECT(cmp_median(m, 4) == 3);
        EXPECT(cmp_median(m, 2) == 3);  // {5, 1}: mean of the middle two
        EXPECT(isnan(cmp_median(m + 2, 1)));
    }
    TEST_CASE("run keys: a stable readable name, different whenever spec, flags or seed differ") {
        char *shared[] = {"--dim", "32", "--steps", "60"}, *own[] = {"--lr", "5e-4"}, *joined[] = {"--lr 5e-4"};
        char k[CMP_KEY_MAX], k2[CMP_KEY_MAX];
        key_of("4*softmax/mlp", NULL, 0, shared, 4, 1337, k);
        // The value is pinned: a change would orphan every comparison directory made before it.
        EXPECT_MSG(strcmp(k, "4xsoftmax-mlp-s1337-") > 0 && strncmp(k, "4xsoftmax-mlp-s1337-", 20) == 0 && strlen(k) == 32,
                   "key '%s'", k);
        key_of("4*softmax/mlp", NULL, 0, shared, 4, 1337, k2);
        EXPECT(strcmp(k, k2) == 0);
        printf("  key of 4*softmax/mlp seed 1337: %s\n", k);
        EXPECT_MSG(strcmp(k, "4xsoftmax-mlp-s1337-21c1c8fabc51") == 0, "key '%s' changed", k);
        const char *variants[6];
        char keys[6][CMP_KEY_MAX];
        key_of("4*softmax/mlp", NULL, 0, shared, 4, 1338, keys[0]);
        variants[0] = "another seed";
        key_of("4*softmax/mlp(hidden=512)", NULL, 0, shared, 4, 1337, keys[1]);
        variants[1] = "another spec";
        key_of("4*softmax/mlp", own, 2, shared, 4, 1337, keys[2]);
        variants[2] = "own flags";
        key_of("4*softmax/mlp", joined, 1, shared, 4, 1337, keys[3]);
        variants[3] = "the same words joined";
        key_of("4*softmax/mlp", NULL, 0, shared, 2, 1337, keys[4]);
        variants[4] = "fewer shared flags";
        key_of("4*softmax/mlp", shared, 4, NULL, 0, 1337, keys[5]);
        variants[5] = "the shared flags given as own flags";
        for (int i = 0; i < 6; i++) {
            EXPECT_MSG(strcmp(keys[i], k) != 0, "%s gives the same key %s", variants[i], k);
            for (int j = 0; j < i; j++) EXPECT_MSG(strcmp(keys[i], keys[j]) != 0, "%s and %s share a key", variants[i], variants[j]);
        }
        char slug[CMP_SLUG_MAX + 1];
        cmp_slug("4*softmax/mlp(hidden=256)", slug, sizeof slug);
        EXPECT_MSG(strcmp(slug, "4xsoftmax-mlp-hidden-256") == 0, "slug '%s'", slug);
        cmp_slug("2*Softmax/mlp,softmax/pkm(slots=64,k=4,dk=8),performer(features=64)/none", slug, sizeof slug);
        EXPECT_MSG(strlen(slug) <= CMP_SLUG_MAX && slug[strlen(slug) - 1] != '-' && strncmp(slug, "2xsoftmax-mlp-softmax-pkm", 25) == 0,
                   "slug '%s'", slug);
        cmp_slug("()/,", slug, sizeof slug);
        EXPECT(strcmp(slug, "run") == 0);
    }
    TEST_CASE("command line: SPEC=FLAGS split outside parentheses, own flags replace shared ones, reserved flags") {
        EXPECT(cmp_split_spec_flags("4*performer/mlp=--lr 5e-4") == 15);
        EXPECT(cmp_split_spec_flags("2*softmax/mlp(hidden=256)=--lr 5e-4") == 25);
        EXPECT(cmp_split_spec_flags("softmax/mlp(hidden=256)") == -1);
        char *shared[] = {"--lr", "1e-3", "--dim", "32", "--init-partial", "--warmup=10"};
        char *own[] = {"--lr=2e-3", "--warmup", "5"};
        int n;
        char **m = cmp_merge_flags(shared, 6, own, 3, &n);
        const char *want[] = {"--dim", "32", "--init-partial", "--lr=2e-3", "--warmup", "5"};
        EXPECT(n == 6);
        for (int i = 0; i < n && i < 6; i++) EXPECT_MSG(strcmp(m[i], want[i]) == 0, "merged[%d] = '%s', want '%s'", i, m[i], want[i]);
        EXPECT(m[n] == NULL);
        free(m);
        char *r1[] = {"--dim", "32", "--seed=4"}, *r2[] = {"--dim", "32", "--seeds", "3"}, *r3[] = {"--out", "x"};
        EXPECT(cmp_reserved_flag(r1, 3) && strcmp(cmp_reserved_flag(r1, 3), "--seed=4") == 0);
        EXPECT(cmp_reserved_flag(r2, 4) == NULL);  // --seeds is not --seed
        EXPECT(cmp_reserved_flag(r3, 2) != NULL);
        char *t[] = {"--threads", "2", "--steps=40", "--threads", "3"};
        EXPECT(strcmp(cmp_flag_value(t, 5, "threads"), "3") == 0 && strcmp(cmp_flag_value(t, 5, "steps"), "40") == 0);
        EXPECT(cmp_flag_value(t, 5, "dim") == NULL);
    }
    TEST_CASE("CSV log read by header name: reordered and extra columns, resumed rows, restarted clock, spans/pkm") {
        char dir[] = "/tmp/test_compare_XXXXXX";
        EXPECT(mkdtemp(dir) != NULL);
        char csv[256], out[256];
        snprintf(csv, sizeof csv, "%s/log.csv", dir);
        snprintf(out, sizeof out, "%s/train.out", dir);
        FILE *f = fopen(csv, "w");
        // columns in another order than train writes them, one unknown column; a run resumed at step 20
        // (its clock restarted) wrote step 30 again
        fprintf(f, "split,step,extra,elapsed_s,loss,bpb,tokens_per_s,ms_per_step,tokens_seen,spans,pkm_usage\n"
                   "train,10,x,1.0,3.0,nan,1000,10,100,,\n"
                   "val,10,x,1.1,2.9,4.1,nan,nan,100,5;;7,\n"
                   "train,20,x,2.0,2.8,nan,1100,9,200,,\n"
                   "val,20,x,2.1,2.7,3.9,nan,nan,200,6;;8,\n"
                   "train,30,x,3.0,2.6,nan,1200,8,300,,\n"
                   "val,30,x,3.1,9.9,9.9,nan,nan,300,1;;1,\n"
                   "train,30,x,0.9,2.5,nan,1300,7,300,,\n"
                   "val,30,x,1.0,2.4,3.5,nan,nan,300,6.5;;9,0.25\n"
                   "final,30,x,1.2,2.3,3.3,nan,nan,300,7;;10,0.5\n");
        fclose(f);
        cmp_log_t lg;
        char err[256];
        EXPECT(cmp_log_read(csv, NULL, &lg, err, sizeof err) == 0);
        EXPECT_MSG(lg.n_val == 3 && lg.n_train == 3, "%d val, %d train rows", lg.n_val, lg.n_train);
        EXPECT(lg.n_val == 3 && lg.val[2].step == 30 && lg.val[2].loss == 2.4);
        // the resumed rows count from the last kept row before step 30 (val 20 at 2.1 s)
        EXPECT_MSG(lg.n_val == 3 && close_to(lg.val[2].elapsed, 2.1 + 1.0), "elapsed %.17g", lg.n_val == 3 ? lg.val[2].elapsed : 0);
        EXPECT(lg.n_train == 3 && lg.ms_per_step[2] == 7 && lg.tokens_per_s[2] == 1300);
        EXPECT(lg.has_final && lg.final.loss == 2.3 && lg.final.bpb == 3.3 && lg.final.step == 30);
        EXPECT(lg.n_span_layers == 3 && lg.span[0] == 7 && isnan(lg.span[1]) && lg.span[2] == 10);
        EXPECT(lg.n_pkm_layers == 1 && lg.pkm[0] == 0.5);
        cmp_log_free(&lg);

        // no spans/pkm columns: taken from train's stdout after its final line
        f = fopen(csv, "w");
        fprintf(f, "step,split,loss,ppl,bpb,lr,grad_norm,tokens_per_s,ms_per_step,elapsed_s,tokens_seen\n"
                   "10,val,2.9,1,4.1,1,nan,nan,nan,1.0,100\n");
        fclose(f);
        f = fopen(out, "w");
        fprintf(f, "step 10/10 | val loss 2.9\n  spans mean/max: L0 99.0/99.0\n"
                   "final step 10 | val loss 2.9 | ppl 18.174 | bpb 4.1\n  spans mean/max: L1 12.5/20.0,L3 40.0/64.0\n"
                   "  pkm layer 2: 63.5%% of 64 slots selected (41), KL 0.1 nats over 100 selections\ncheckpoint: x\n");
        fclose(f);
        EXPECT(cmp_log_read(csv, out, &lg, err, sizeof err) == 0);
        EXPECT(!lg.has_final && lg.final.loss == 2.9 && lg.final.step == 10);  // the last periodic evaluation
        EXPECT_MSG(lg.n_span_layers == 4 && isnan(lg.span[0]) && lg.span[1] == 12.5 && isnan(lg.span[2]) && lg.span[3] == 40.0,
                   "spans: %d layers, L1 %g", lg.n_span_layers, lg.span[1]);
        EXPECT(lg.n_pkm_layers == 3 && close_to(lg.pkm[2], 0.635));
        cmp_log_free(&lg);

        f = fopen(csv, "w");
        fprintf(f, "step,split,loss,bpb\n10,val,2.9,4.1\n");
        fclose(f);
        EXPECT(cmp_log_read(csv, NULL, &lg, err, sizeof err) == -1 && strstr(err, "tokens_per_s"));
        remove(csv);
        remove(out);
        rmdir(dir);
    }
    TEST_CASE("by_position.csv: buckets by context range, columns by name, absent = n/a, malformed refused") {
        char dir[] = "/tmp/test_compare_XXXXXX";
        EXPECT(mkdtemp(dir) != NULL);
        char csv[256], err[256];
        snprintf(csv, sizeof csv, "%s/by_position.csv", dir);
        cmp_bypos_t bp;
        EXPECT(cmp_bypos_read(csv, &bp, err, sizeof err) == 1 && !bp.present && isnan(bp.loss[0]));  // no file
        FILE *f = fopen(csv, "w");
        // train's columns in another order, one extra; bucket 2-3 missing (a run whose targets skip it)
        fprintf(f, "loss,context_hi,extra,context_lo,tokens,bytes,bpb\n2.5,1,x,1,94,94,3.6\n2.25,7,x,4,376,376,3.2\n"
                   "2.0,63,x,32,93,93,2.9\n");
        fclose(f);
        EXPECT(cmp_bypos_read(csv, &bp, err, sizeof err) == 0);
        EXPECT_MSG(bp.present && bp.n_buckets == 6, "present %d, %d buckets", bp.present, bp.n_buckets);
        EXPECT(bp.loss[0] == 2.5 && isnan(bp.loss[1]) && bp.loss[2] == 2.25 && isnan(bp.loss[3]) && bp.loss[5] == 2.0);
        EXPECT(bp.tokens[0] == 94 && bp.tokens[1] == 0 && bp.tokens[5] == 93);
        const char *bad[][2] = {
            {"context_lo,context_hi,tokens,bytes,bpb\n1,1,4,4,3\n", "no column 'loss'"},
            {"context_lo,context_hi,tokens,bytes,loss,bpb\n4,8,4,4,2,3\n", "context 4-8 is not a bucket"},
            {"context_lo,context_hi,tokens,bytes,loss,bpb\n3,3,4,4,2,3\n", "context 3-3 is not a bucket"},
            {"context_lo,context_hi,tokens,bytes,loss,bpb\n1,1,4,4,2,3\n1,1,4,4,2,3\n", "line 3: the bucket 1-1 appears twice"},
            {"context_lo,context_hi,tokens,bytes,loss,bpb\n1,1,4,4,2x,3\n", "line 2: '2x' is not a number"},
            {"context_lo,context_hi,tokens,bytes,loss,bpb\n1,1\n", "line 2: '' is not a number"},
            {"", "is empty"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            f = fopen(csv, "w");
            fputs(bad[i][0], f);
            fclose(f);
            err[0] = 0;
            int rc = cmp_bypos_read(csv, &bp, err, sizeof err);
            EXPECT_MSG(rc == -1 && !bp.present && bp.n_buckets == 0 && strstr(err, bad[i][1]), "case %zu: rc %d, '%s'", i, rc, err);
        }
        remove(csv);
        rmdir(dir);
    }
    return test_main_end();
}
