// eval_plan.h — which tokens each evaluation forward reads and which targets it scores, for the
// three modes of ../shared/design/LONG_CONTEXT.md §3, and the by-position buckets. Pure index
// arithmetic: no model, no allocation.
//
// A text of n tokens t_0 … t_{n−1} has n − 1 targets: target j + 1 is predicted from t_0 … t_j.
// A window (or segment) w reads inputs t[start … start+len) and targets t[start+1 … start+len+1);
// at input position i (0-based) it predicts target start + i + 1, and it scores positions
// [first_scored, len). In every mode every target 1 … n−1 is scored exactly once.
//
//   windows  start = w·ctx, every position scored; each window starts empty (today's mode,
//            data/dataset.h eval_window: the same windows).
//   stride S start = w·S (1 ≤ S ≤ ctx), len = min(ctx, n−1−start); window 0 scores all of its
//            targets, window w > 0 the ones not scored before: positions [ctx−S, len). The last
//            window is the first that reaches the end (start + ctx ≥ n−1), cut there. Each window
//            starts empty. S = ctx is windows mode; after window 0 every scored target sees at
//            least ctx − S + 1 tokens (ctx − S before its input token).
//   memory M segments of windows mode, read in order through one stream; the model carries M
//            positions of memory from segment to segment (the first starts empty), so segment w
//            sees min(start, M) earlier positions before its input 0.
//
// Visible context of a scored target (what --by-position buckets): the number of tokens the model
// sees when it predicts it, eval_visible(win, i) = win.memory + i + 1: i + 1 in windows and stride
// modes; min(j, M + i) + 1 in memory mode, for stream index j = start + i.
#ifndef ATTNLAB_EVAL_PLAN_H
#define ATTNLAB_EVAL_PLAN_H

#include <stddef.h>

typedef enum { EVAL_WINDOWS, EVAL_STRIDE, EVAL_MEMORY } eval_mode_t;

typedef struct {
    eval_mode_t mode;
    size_t n;     // tokens in the text (n − 1 targets)
    int ctx;      // window (segment) length
    int stride;   // S: windows start S apart (= ctx in windows and memory modes)
    int memory;   // M (memory mode; 0 in the others)
} eval_plan_t;

typedef struct {
    size_t start;      // inputs t[start, start+len), targets t[start+1, start+len+1)
    int len;           // 1 … ctx
    int first_scored;  // input positions [first_scored, len) are scored (0 ≤ first_scored < len)
    int memory;        // positions before input 0 the model sees: min(start, M) in memory mode, else 0
    int fresh;         // 1 if the model starts this window with empty state (memory cleared)
} eval_window_t;

// Validate and fill a plan. stride is read in stride mode only (1 ≤ S ≤ ctx), memory in memory mode
// only (M ≥ 0). Errors, one line, -1: "--ctx must be at least 1 (got 0)", "--stride must be between
// 1 and ctx = 64 (got 65)", "--memory must be at least 0 (got -1)", "the text has 1 token; evaluation
// needs at least 2". Returns 0.
int eval_plan_init(eval_plan_t *p, eval_mode_t mode, size_t n, int ctx, int stride, int memory, char *err,
                   size_t errlen);
// Windows (segments) of the plan: windows and memory ceil((n−1)/ctx); stride 1 + ceil((n−1−ctx)/S)
// when n − 1 > ctx, else 1.
size_t eval_plan_num_windows(const eval_plan_t *p);
// Window w < eval_plan_num_windows(p).
eval_window_t eval_plan_window(const eval_plan_t *p, size_t w);
// Visible context of input position i of a window: memory + i + 1.
static inline long eval_visible(const eval_window_t *win, int i) { return (long)win->memory + i + 1; }

// ---------------------------------------------------------------------------- by position

// Log-spaced buckets of visible context: bucket b holds [2^b, 2^(b+1) − 1]: 1 | 2–3 | 4–7 | 8–15 …
#define EVAL_MAX_BUCKETS 48
int eval_bucket_of(long visible);  // floor(log2(visible)), visible ≥ 1
long eval_bucket_lo(int b);        // 2^b
long eval_bucket_hi(int b);        // 2^(b+1) − 1

typedef struct {
    int n_buckets;                       // 1 + the highest bucket that holds a target (0: none)
    double nats[EVAL_MAX_BUCKETS];       // total loss of the bucket's targets
    size_t tokens[EVAL_MAX_BUCKETS];     // targets
    size_t bytes[EVAL_MAX_BUCKETS];      // bytes of text those targets stand for
} eval_buckets_t;

void eval_buckets_clear(eval_buckets_t *bk);
// Add one scored target: its visible context, loss (nats) and byte count.
void eval_buckets_add(eval_buckets_t *bk, long visible, double nats, int bytes);
// Add the scored positions [first_scored, len) of a window: losses[i] and bytes[i] are input position
// i's (bytes may be NULL: 1 byte per token, the byte tokenizer).
void eval_buckets_add_window(eval_buckets_t *bk, const eval_window_t *win, const float *losses, const int *bytes);
// Mean loss (nats per target) and bits per byte of bucket b; NAN if it holds no target.
double eval_bucket_loss(const eval_buckets_t *bk, int b);
double eval_bucket_bpb(const eval_buckets_t *bk, int b);

#endif
