// test_sampler.c — cli/sampler: top-k keeps exactly the k most probable, top-p the smallest
// most-probable set with mass ≥ p (of what top-k kept), temperature 0 and temperatures that are 0 in
// float (1e-50) give the argmax, draws follow softmax(logits / temperature), and a seed fixes the draws.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "cli/sampler.h"
#include "tests/testlib.h"

// probabilities 0.4, 0.3, 0.2, 0.1 at ids 2, 0, 3, 1 (not in id order)
static const int ORDER[4] = {2, 0, 3, 1};
static void four_logits(float *logits) {
    const double p[4] = {0.4, 0.3, 0.2, 0.1};
    for (int i = 0; i < 4; i++) logits[ORDER[i]] = (float)log(p[i]);
}

static void random_logits(float *logits, int V, uint64_t seed) {
    rng_t r;
    rng_seed(&r, seed);
    for (int v = 0; v < V; v++) logits[v] = 2.0f * rng_normal(&r);
}

static int kept(const sampler_t *s, int n, int id) {
    for (int i = 0; i < n; i++)
        if (s->cand[i].id == id) return 1;
    return 0;
}

static void test_top_k(void) {
    enum { V = 50 };
    float logits[V];
    random_logits(logits, V, 1);
    const long ks[] = {1, 3, 10, 49, 50, 200};
    for (size_t t = 0; t < sizeof ks / sizeof *ks; t++) {
        char name[96];
        snprintf(name, sizeof name, "top-k %ld of %d keeps exactly the k most probable", ks[t], V);
        TEST_CASE(name) {
            sampler_t s;
            sampler_init(&s, &(sampler_cfg_t){.temperature = 1.0, .top_k = ks[t], .top_p = 1.0}, V, 7);
            int n = sampler_candidates(&s, logits), want = ks[t] < V ? (int)ks[t] : V;
            EXPECT_MSG(n == want, "kept %d, want %d", n, want);
            for (int v = 0; v < V; v++) {  // v is kept iff fewer than k logits are larger
                int larger = 0;
                for (int u = 0; u < V; u++) larger += logits[u] > logits[v];
                EXPECT_MSG(kept(&s, n, v) == (larger < want), "id %d (%d larger logits) kept %d", v, larger,
                           kept(&s, n, v));
            }
            sampler_free(&s);
        }
    }
    TEST_CASE("top-k 3: 3000 draws take only the 3 most probable, each of them") {
        sampler_t s;
        sampler_init(&s, &(sampler_cfg_t){.temperature = 1.0, .top_k = 3, .top_p = 1.0}, V, 11);
        int count[V] = {0};
        for (int i = 0; i < 3000; i++) count[sampler_sample(&s, logits)]++;
        int n = sampler_candidates(&s, logits), drawn = 0;
        for (int v = 0; v < V; v++) {
            if (count[v]) drawn++;
            EXPECT_MSG(!count[v] || kept(&s, n, v), "drew id %d outside the top 3", v);
        }
        EXPECT_MSG(drawn == 3, "%d distinct ids drawn, want 3", drawn);
        sampler_free(&s);
    }
}

static void test_top_p(void) {
    TEST_CASE("top-p keeps the smallest most-probable set with mass >= p (0.4, 0.3, 0.2, 0.1)") {
        float logits[4];
        four_logits(logits);
        const struct { double p; int n; } cases[] = {{1e-9, 1}, {0.35, 1}, {0.45, 2}, {0.65, 2}, {0.75, 3},
                                                     {0.85, 3}, {0.95, 4}, {1.0, 4}};
        for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
            sampler_t s;
            sampler_init(&s, &(sampler_cfg_t){.temperature = 1.0, .top_k = 1000, .top_p = cases[t].p}, 4, 7);
            int n = sampler_candidates(&s, logits);
            EXPECT_MSG(n == cases[t].n, "top-p %g kept %d, want %d", cases[t].p, n, cases[t].n);
            for (int i = 0; i < cases[t].n; i++) EXPECT_MSG(kept(&s, n, ORDER[i]), "top-p %g: id %d not kept", cases[t].p, ORDER[i]);
            sampler_free(&s);
        }
    }
    TEST_CASE("top-p on random logits: kept mass >= p, and without its last token < p") {
        enum { V = 40 };
        float logits[V];
        for (int trial = 0; trial < 50; trial++) {
            random_logits(logits, V, 100 + trial);
            double p = 0.05 + 0.9 * trial / 49.0;
            sampler_t s;
            sampler_init(&s, &(sampler_cfg_t){.temperature = 0.7, .top_k = V, .top_p = p}, V, 7);
            int n = sampler_candidates(&s, logits);
            double total = 0, mass = 0;
            for (int v = 0; v < V; v++) total += exp((logits[v] - logits[0]) / 0.7);  // any reference shift
            for (int i = 0; i < n; i++) mass += exp((logits[s.cand[i].id] - logits[0]) / 0.7);
            double last = exp((logits[s.cand[n - 1].id] - logits[0]) / 0.7);
            EXPECT_MSG(mass >= p * total * (1 - 1e-5), "p %g: kept mass %g < p", p, mass / total);
            EXPECT_MSG(mass - last < p * total * (1 + 1e-5), "p %g: a smaller set (mass %g) reaches p", p,
                       (mass - last) / total);
            for (int i = 1; i < n; i++) EXPECT(s.cand[i - 1].p >= s.cand[i].p);
            sampler_free(&s);
        }
    }
    TEST_CASE("top-p applies to what top-k kept (0.4, 0.3 of top-2: mass 0.7)") {
        float logits[4];
        four_logits(logits);
        sampler_t s;
        sampler_init(&s, &(sampler_cfg_t){.temperature = 1.0, .top_k = 2, .top_p = 0.55}, 4, 7);
        EXPECT(sampler_candidates(&s, logits) == 1);  // 0.4 / 0.7 = 0.57 ≥ 0.55
        sampler_free(&s);
        sampler_init(&s, &(sampler_cfg_t){.temperature = 1.0, .top_k = 2, .top_p = 0.6}, 4, 7);
        EXPECT(sampler_candidates(&s, logits) == 2);
        sampler_free(&s);
    }
}

static void test_greedy(void) {
    enum { V = 30 };
    float logits[V];
    random_logits(logits, V, 3);
    int best = 0;
    for (int v = 1; v < V; v++) best = logits[v] > logits[best] ? v : best;
    logits[V - 1] = logits[best] - 5.0f;  // the last entry is not the argmax (the old bug sampled it)
    const double temps[] = {0.0, 1e-50, 1e-300, 4.9e-324, 1e-40, 1e-20};
    for (size_t t = 0; t < sizeof temps / sizeof *temps; t++) {
        char name[96];
        snprintf(name, sizeof name, "temperature %g: always the argmax", temps[t]);
        TEST_CASE(name) {
            sampler_t s;
            sampler_init(&s, &(sampler_cfg_t){.temperature = temps[t], .top_k = 200, .top_p = 1.0}, V, 5);
            for (int i = 0; i < 100; i++) {
                int got = sampler_sample(&s, logits);
                if (got != best) {
                    EXPECT_MSG(0, "draw %d gave id %d (logit %g), want the argmax %d (logit %g)", i, got, logits[got],
                               best, logits[best]);
                    break;
                }
            }
            sampler_free(&s);
        }
    }
    TEST_CASE("temperature 0: ties to the lower id, and no random number is drawn") {
        float tie[5] = {0.0f, 2.0f, 1.0f, 2.0f, -1.0f};
        sampler_t s;
        sampler_init(&s, &(sampler_cfg_t){.temperature = 0.0, .top_k = 200, .top_p = 0.9}, 5, 5);
        rng_t before = s.rng;
        EXPECT(sampler_sample(&s, tie) == 1);
        EXPECT(memcmp(&before, &s.rng, sizeof before) == 0);
        sampler_free(&s);
    }
}

// Draw counts against softmax(logits / temperature): every id within 5 standard errors.
static void test_distribution(void) {
    const double temps[] = {0.5, 1.0, 2.0};
    for (size_t t = 0; t < sizeof temps / sizeof *temps; t++) {
        char name[96];
        snprintf(name, sizeof name, "temperature %g, no truncation: draws follow softmax(logits / %g)", temps[t],
                 temps[t]);
        TEST_CASE(name) {
            enum { V = 6, DRAWS = 40000 };
            float logits[V] = {0.5f, -1.0f, 1.5f, 0.0f, 1.0f, -0.5f};
            double want[V], z = 0;
            for (int v = 0; v < V; v++) z += want[v] = exp(logits[v] / temps[t]);
            sampler_t s;
            sampler_init(&s, &(sampler_cfg_t){.temperature = temps[t], .top_k = V, .top_p = 1.0}, V, 21);
            int count[V] = {0};
            for (int i = 0; i < DRAWS; i++) count[sampler_sample(&s, logits)]++;
            for (int v = 0; v < V; v++) {
                double p = want[v] / z, se = sqrt(p * (1 - p) / DRAWS), got = (double)count[v] / DRAWS;
                EXPECT_MSG(fabs(got - p) < 5 * se, "id %d drawn %.4f of the time, softmax says %.4f", v, got, p);
            }
            sampler_free(&s);
        }
    }
}

static void test_seed(void) {
    TEST_CASE("a seed fixes the draws; another seed changes them") {
        enum { V = 20, N = 200 };
        float logits[V];
        random_logits(logits, V, 9);
        sampler_cfg_t cfg = {.temperature = 0.8, .top_k = 10, .top_p = 0.95};
        sampler_t a, b, c;
        sampler_init(&a, &cfg, V, 1337);
        sampler_init(&b, &cfg, V, 1337);
        sampler_init(&c, &cfg, V, 1338);
        int same_ab = 1, same_ac = 1;
        for (int i = 0; i < N; i++) {
            int x = sampler_sample(&a, logits), y = sampler_sample(&b, logits), w = sampler_sample(&c, logits);
            same_ab &= x == y;
            same_ac &= x == w;
        }
        EXPECT_MSG(same_ab, "two samplers with seed 1337 drew different tokens");
        EXPECT_MSG(!same_ac, "seeds 1337 and 1338 drew the same %d tokens", N);
        sampler_free(&a);
        sampler_free(&b);
        sampler_free(&c);
    }
}

int main(void) {
    test_top_k();
    test_top_p();
    test_greedy();
    test_distribution();
    test_seed();
    return test_main_end();
}
