/* `frugal lstm bench`: forward and backward time of a stacked LSTM (src/ops/lstm.c, the layers
 * chained by hand: layer l's output is layer l+1's input, the backward runs top-down) for each
 * backward variant of fg_lstm_backward_sparse (dense, step, structured, meprop, threshold) at one
 * drop or several (--drop 0.5,0.8,0.9: a sweep), with PyTorch's nn.LSTM measured in the same run
 * when /usr/bin/python3 can import torch (bench/peer_lstm.py as a subprocess,
 * OPENBLAS_CORETYPE=COOPERLAKE, the same thread count). Every timed iteration runs every
 * configuration once (round robin: dense, each drop's sparse variants, threshold, which has no
 * drop), so that the load of a shared machine drifting during the run hits them alike; times are
 * medians. Prints a table and the command line; --json writes the figures, among them
 * structured_backward_speedup (dense backward time / structured) and meprop_backward_speedup
 * (meprop backward time / structured at the same drop) at the first drop, and per drop in
 * "sweep"; --plot draws each variant's backward speedup against the kept fraction, with the
 * speedup its FLOPs alone would give. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "plot.h"

#define MAX_LAYERS 8
#define MAX_DROPS 16
/* dense, three drop-dependent variants per drop, threshold */
#define MAX_CONFIGS (2 + 3 * MAX_DROPS)
/* --iters and --warmup at most (a day at 1 ms an iteration; keeps i * iters inside an int) */
#define MAX_ITERS 1000000

typedef struct bench_args {
    int64_t hidden, input, batch, steps, block;
    int layers, iters, warmup, threads, no_peer;
    double tau;
    double drops[MAX_DROPS];
    int ndrops;
    const char *drop_list, *variants, *json, *plot;
} bench_args;

/* One timed configuration: a variant at a drop (dense at 0; threshold's drop is NAN: it has none). */
typedef struct variant_result {
    fg_lstm_bwd v;
    double drop;
    double fwd_ms, bwd_ms, bwd_flops, bwd_flops_dense, kept, sparsity;
} variant_result;

/* The stack's buffers: per layer the weights, biases, initial state (h0, c0: given, as the PyTorch
 * peer gives them, so both do the step-0 recurrent GEMMs and return dh0, dc0), output, saved
 * buffer, the gradients; one workspace large enough for every variant. */
typedef struct stack {
    fg_lstm_desc d[MAX_LAYERS];
    float *x, *dy, *dx_top;
    float *w_ih[MAX_LAYERS], *w_hh[MAX_LAYERS], *b_ih[MAX_LAYERS], *b_hh[MAX_LAYERS], *y[MAX_LAYERS];
    float *saved[MAX_LAYERS], *dw_ih[MAX_LAYERS], *dw_hh[MAX_LAYERS], *db_ih[MAX_LAYERS], *db_hh[MAX_LAYERS];
    float *dxl[MAX_LAYERS]; /* gradient of layer l's input */
    float *h0[MAX_LAYERS], *c0[MAX_LAYERS], *dh0[MAX_LAYERS], *dc0[MAX_LAYERS];
    void *ws;
    size_t ws_bytes;
    int L;
} stack;

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static float *rand_buf(size_t n, float lo, float hi, fg_rng *rng) {
    float *p = malloc(n * sizeof(float));
    if (p)
        for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * fg_rng_uniform(rng);
    return p;
}

static void stack_free(stack *s) {
    free(s->x), free(s->dy), free(s->ws);
    for (int l = 0; l < s->L; l++) {
        free(s->w_ih[l]), free(s->w_hh[l]), free(s->b_ih[l]), free(s->b_hh[l]), free(s->y[l]), free(s->saved[l]);
        free(s->dw_ih[l]), free(s->dw_hh[l]), free(s->db_ih[l]), free(s->db_hh[l]), free(s->dxl[l]);
        free(s->h0[l]), free(s->c0[l]), free(s->dh0[l]), free(s->dc0[l]);
    }
}

/* The bytes stack_init allocates (per layer the weights, biases, output, saved buffer, gradients,
 * state; the input, dy and the workspace), checked against RAM before any of it is touched. */
static double stack_bytes(const bench_args *a) {
    const double T = (double)a->steps, B = (double)a->batch, H = (double)a->hidden, TB = T * B;
    double floats = TB * (double)a->input + TB * H, ws = 0;
    for (int l = 0; l < a->layers; l++) {
        const double I = l == 0 ? (double)a->input : H;
        floats += 2 * (4 * H * I + 4 * H * H + 8 * H) + TB * H + 5 * TB * H + TB * I + 4 * B * H;
        const fg_lstm_desc d = {a->steps, a->batch, l == 0 ? a->input : a->hidden, a->hidden};
        const size_t w = fg_lstm_sparse_workspace_bytes_max(&d, a->block);
        ws = (double)w > ws ? (double)w : ws;
    }
    return 4.0 * floats + ws;
}

/* Allocates and fills the stack, each buffer checked as it is allocated: filling buffers after an
 * earlier allocation failed touched gigabytes for a run that could not happen. */
static fg_status stack_init(stack *s, const bench_args *a) {
    memset(s, 0, sizeof *s);
    s->L = a->layers;
    fg_rng rng;
    fg_rng_seed(&rng, 1);
    const int64_t T = a->steps, B = a->batch, H = a->hidden;
    const float k = 1.0f / sqrtf((float)H);
    int ok = 1;
    for (int l = 0; l < s->L; l++) {
        fg_lstm_desc *d = &s->d[l];
        *d = (fg_lstm_desc){T, B, l == 0 ? a->input : H, H};
        FG_TRY(fg_lstm_check(d));
        const size_t I = (size_t)d->I, G4 = (size_t)(4 * H), TB = (size_t)(T * B);
        /* || stops at the first failure: nothing after it is allocated or filled */
        ok = (s->w_ih[l] = rand_buf(G4 * I, -k, k, &rng)) && (s->w_hh[l] = rand_buf(G4 * (size_t)H, -k, k, &rng)) &&
             (s->b_ih[l] = rand_buf(G4, -k, k, &rng)) && (s->b_hh[l] = rand_buf(G4, -k, k, &rng)) &&
             (s->y[l] = malloc(TB * (size_t)H * sizeof(float))) && (s->saved[l] = malloc(fg_lstm_saved_bytes(d))) &&
             (s->dw_ih[l] = calloc(G4 * I, sizeof(float))) && (s->dw_hh[l] = calloc(G4 * (size_t)H, sizeof(float))) &&
             (s->db_ih[l] = calloc(G4, sizeof(float))) && (s->db_hh[l] = calloc(G4, sizeof(float))) &&
             (s->dxl[l] = malloc(TB * I * sizeof(float))) && (s->h0[l] = rand_buf((size_t)(B * H), -1, 1, &rng)) &&
             (s->c0[l] = rand_buf((size_t)(B * H), -1, 1, &rng)) &&
             (s->dh0[l] = malloc((size_t)(B * H) * sizeof(float))) &&
             (s->dc0[l] = malloc((size_t)(B * H) * sizeof(float)));
        if (!ok) return fg_fail(FG_ERR_OOM, "lstm bench: out of host memory for layer %d's buffers", l + 1);
        const size_t w = fg_lstm_sparse_workspace_bytes_max(d, a->block);
        if (w == 0) return fg_fail(FG_ERR_INVALID, "lstm bench: block %lld: %s", (long long)a->block, fg_last_error());
        if (w > s->ws_bytes) s->ws_bytes = w;
    }
    ok = (s->x = rand_buf((size_t)(T * B * a->input), -1, 1, &rng)) &&
         (s->dy = rand_buf((size_t)(T * B * H), -1, 1, &rng)) && (s->ws = malloc(s->ws_bytes));
    if (!ok) return fg_fail(FG_ERR_OOM, "lstm bench: out of host memory");
    return FG_OK;
}

static fg_status stack_forward(stack *s) {
    for (int l = 0; l < s->L; l++)
        FG_TRY(fg_lstm_forward(s->y[l], NULL, NULL, s->saved[l], l == 0 ? s->x : s->y[l - 1], s->h0[l], s->c0[l], s->w_ih[l],
                               s->w_hh[l], s->b_ih[l], s->b_hh[l], &s->d[l], s->ws, s->ws_bytes));
    return FG_OK;
}

/* Top-down backward with the same sparsity in every layer; FLOPs and kept columns summed. */
static fg_status stack_backward(stack *s, const fg_lstm_sparsity *sp, double *flops, double *flops_dense,
                                double *kept, double *sparsity) {
    *flops = *flops_dense = *kept = *sparsity = 0.0;
    for (int l = s->L - 1; l >= 0; l--) {
        const fg_lstm_desc *d = &s->d[l];
        fg_lstm_sparse_stats st;
        memset(&st, 0, sizeof st);
        const float *dy = l == s->L - 1 ? s->dy : s->dxl[l + 1];
        FG_TRY(fg_lstm_backward_sparse(s->dxl[l], s->dh0[l], s->dc0[l], s->dw_ih[l], s->dw_hh[l], s->db_ih[l],
                                       s->db_hh[l], dy, NULL, NULL, l == 0 ? s->x : s->y[l - 1], s->h0[l], s->c0[l],
                                       s->w_ih[l], s->w_hh[l],
                                       s->y[l], s->saved[l], d, s->ws, s->ws_bytes, sp, &st));
        *flops += st.gemm_flops, *flops_dense += st.gemm_flops_dense;
        *kept += (double)st.kept_cols / ((double)d->T * 4.0 * (double)d->H) / s->L;
        *sparsity += st.sparsity / s->L;
    }
    return FG_OK;
}

/* Mean |dG| of the top layer's dense backward (the workspace holds its dG afterwards): the
 * threshold variant's tau when --tau is not given. */
static fg_status auto_tau(stack *s, int64_t block, double *tau) {
    const fg_lstm_sparsity dense = {.drop = 0.0f, .block = block, .variant = FG_LSTM_BWD_DENSE};
    const fg_lstm_desc *d = &s->d[s->L - 1];
    fg_lstm_sparse_stats st;
    memset(&st, 0, sizeof st);
    FG_TRY(fg_lstm_backward_sparse(NULL, NULL, NULL, NULL, NULL, NULL, NULL, s->dy, NULL, NULL,
                                   s->L > 1 ? s->y[s->L - 2] : s->x, s->h0[s->L - 1], s->c0[s->L - 1], s->w_ih[s->L - 1],
                                   s->w_hh[s->L - 1],
                                   s->y[s->L - 1], s->saved[s->L - 1], d, s->ws, s->ws_bytes, &dense, &st));
    const size_t n = (size_t)(d->T * d->B * 4 * d->H);
    const float *dg = s->ws;
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) acc += fabs((double)dg[i]);
    *tau = acc / (double)n;
    return FG_OK;
}

/* The peer script: $FRUGAL_SOURCE_DIR/bench/peer_lstm.py, else ../bench/peer_lstm.py next to the
 * executable (build/ inside the source tree). */
static int peer_script(char *buf, size_t cap) {
    const char *src = getenv("FRUGAL_SOURCE_DIR");
    if (src) {
        snprintf(buf, cap, "%s/bench/peer_lstm.py", src);
        if (access(buf, R_OK) == 0) return 1;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return 0;
    *slash = 0;
    snprintf(buf, cap, "%s/../bench/peer_lstm.py", exe);
    return access(buf, R_OK) == 0;
}

/* PyTorch's nn.LSTM at the same sizes; 1 when it ran. why explains a 0. */
static int run_peer(const bench_args *a, double *fwd_ms, double *bwd_ms, char *why, size_t cap) {
    char script[4200];
    if (!peer_script(script, sizeof script)) {
        snprintf(why, cap, "bench/peer_lstm.py not found (set FRUGAL_SOURCE_DIR)");
        return 0;
    }
    if (strchr(script, '\'')) { /* it goes into a shell command between single quotes */
        snprintf(why, cap, "the peer script's path holds a single quote: %.200s", script);
        return 0;
    }
    if (access("/usr/bin/python3", X_OK) != 0) {
        snprintf(why, cap, "no /usr/bin/python3");
        return 0;
    }
    char cmd[8800];
    snprintf(cmd, sizeof cmd,
             "OPENBLAS_CORETYPE=COOPERLAKE OMP_NUM_THREADS=%d /usr/bin/python3 '%s' --T %lld --B %lld --I %lld "
             "--H %lld --layers %d --iters %d --warmup %d --threads %d 2>&1",
             a->threads, script, (long long)a->steps, (long long)a->batch, (long long)a->input, (long long)a->hidden,
             a->layers, a->iters, a->warmup, a->threads);
    FILE *p = popen(cmd, "r");
    if (!p) {
        snprintf(why, cap, "popen failed");
        return 0;
    }
    char line[512];
    int ok = 0;
    snprintf(why, cap, "torch missing or the peer failed");
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "peer fwd_ms=%lf bwd_ms=%lf", fwd_ms, bwd_ms) == 2) ok = 1;
    pclose(p);
    return ok;
}

/* --variants "dense,structured,...": the list, dense first (every ratio needs it), no repeats. */
static int parse_variants(const cli_cmd *cmd, const char *list, fg_lstm_bwd *out, int *n) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    int have[FG_LSTM_BWD_COUNT] = {0};
    *n = 0;
    out[(*n)++] = FG_LSTM_BWD_DENSE;
    have[FG_LSTM_BWD_DENSE] = 1;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        const fg_lstm_bwd v = fg_lstm_bwd_parse(tok);
        if (v == FG_LSTM_BWD_COUNT)
            return cli_usage_error(cmd, "--variants: unknown variant '%s' (expected dense, step, structured, meprop, "
                                   "threshold)", tok);
        if (!have[v]) out[(*n)++] = v, have[v] = 1;
    }
    return CLI_CONTINUE;
}

/* --drop "0.8" or "0.5,0.8,0.9": each a fraction in [0, 1), at most MAX_DROPS, no repeats. */
static int parse_drops(const cli_cmd *cmd, const char *list, double *out, int *n) {
    char buf[512];
    if (snprintf(buf, sizeof buf, "%s", list) >= (int)sizeof buf)
        return cli_usage_error(cmd, "--drop: list too long (at most %d fractions)", MAX_DROPS);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        errno = 0;
        const double x = strtod(tok, &end);
        if (errno || end == tok || *end || !(x >= 0 && x < 1))
            return cli_usage_error(cmd, "--drop '%s': expected a fraction in [0, 1), or a comma-separated list of them",
                                   tok);
        for (int i = 0; i < *n; i++)
            if (out[i] == x) return cli_usage_error(cmd, "--drop: %g given twice", x);
        if (*n == MAX_DROPS) return cli_usage_error(cmd, "--drop: at most %d fractions", MAX_DROPS);
        out[(*n)++] = x;
    }
    if (*n == 0) return cli_usage_error(cmd, "--drop '%s': expected a fraction in [0, 1)", list);
    return CLI_CONTINUE;
}

/* The configurations to time, in table order: dense; for each drop, each requested variant that
 * has a drop (step, structured, meprop); threshold last, once. Returns their number. */
static int make_configs(const bench_args *a, const fg_lstm_bwd *vs, int nv, variant_result *r) {
    int n = 0, thr = 0;
    r[n++] = (variant_result){.v = FG_LSTM_BWD_DENSE, .drop = 0.0};
    for (int k = 0; k < a->ndrops; k++)
        for (int i = 0; i < nv; i++) {
            if (vs[i] == FG_LSTM_BWD_THRESHOLD) thr = 1;
            if (vs[i] == FG_LSTM_BWD_DENSE || vs[i] == FG_LSTM_BWD_THRESHOLD) continue;
            r[n++] = (variant_result){.v = vs[i], .drop = a->drops[k]};
        }
    if (thr) r[n++] = (variant_result){.v = FG_LSTM_BWD_THRESHOLD, .drop = NAN};
    return n;
}

/* The configuration of variant v at drop x, or NULL. */
static const variant_result *find_config(const variant_result *r, int n, fg_lstm_bwd v, double x) {
    for (int i = 0; i < n; i++)
        if (r[i].v == v && r[i].drop == x) return &r[i];
    return NULL;
}

static void json_variant(cli_json *j, const variant_result *r) {
    cli_json_obj_begin(j, NULL);
    cli_json_str(j, "name", fg_lstm_bwd_name(r->v));
    cli_json_num(j, "drop", r->drop);
    cli_json_num(j, "forward_ms", r->fwd_ms);
    cli_json_num(j, "backward_ms", r->bwd_ms);
    cli_json_num(j, "backward_gflops", r->bwd_flops * 1e-9);
    cli_json_num(j, "backward_gflops_dense", r->bwd_flops_dense * 1e-9);
    cli_json_num(j, "kept_fraction", r->kept);
    cli_json_num(j, "sparsity", r->sparsity);
    cli_json_obj_end(j);
}

/* The two speedups and the kept fraction at drop x (NAN where a variant was not run). */
static void json_speedups(cli_json *j, const variant_result *r, int n, double x) {
    const variant_result *st = find_config(r, n, FG_LSTM_BWD_STRUCTURED, x);
    const variant_result *mp = find_config(r, n, FG_LSTM_BWD_MEPROP, x);
    /* the structured variant's kept fraction of the gate columns (what both speedups are at) */
    cli_json_num(j, "kept_fraction", st ? st->kept : NAN);
    cli_json_num(j, "structured_backward_speedup", st ? r[0].bwd_ms / st->bwd_ms : NAN);
    cli_json_num(j, "meprop_backward_speedup", mp && st ? mp->bwd_ms / st->bwd_ms : NAN);
}

static int write_json(const bench_args *a, int argc, char **argv, const variant_result *r, int n, int peer_ok,
                      double peer_fwd, double peer_bwd, double tau) {
    cli_json j;
    fg_status s = cli_json_open(&j, a->json);
    if (s != FG_OK) return cli_fail("--json", s);
    char cmdline[2048] = "frugal lstm bench";
    for (int i = 0; i < argc; i++) {
        size_t len = strlen(cmdline);
        snprintf(cmdline + len, sizeof cmdline - len, " %s", argv[i]);
    }
    cli_json_obj_begin(&j, NULL);
    cli_json_str(&j, "command", cmdline);
    cli_json_int(&j, "hidden", a->hidden);
    cli_json_int(&j, "input", a->input);
    cli_json_int(&j, "batch", a->batch);
    cli_json_int(&j, "steps", a->steps);
    cli_json_int(&j, "layers", a->layers);
    cli_json_num(&j, "drop", a->drops[0]); /* the first drop: the top-level speedups are at it */
    cli_json_int(&j, "block", a->block);
    cli_json_num(&j, "tau", tau);
    cli_json_int(&j, "threads", a->threads);
    cli_json_int(&j, "iters", a->iters);
    json_speedups(&j, r, n, a->drops[0]);
    cli_json_arr_begin(&j, "variants");
    for (int i = 0; i < n; i++) json_variant(&j, &r[i]);
    cli_json_arr_end(&j);
    cli_json_arr_begin(&j, "sweep"); /* per drop: the speedups and the variants at it */
    for (int k = 0; k < a->ndrops; k++) {
        cli_json_obj_begin(&j, NULL);
        cli_json_num(&j, "drop", a->drops[k]);
        json_speedups(&j, r, n, a->drops[k]);
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    if (peer_ok) {
        cli_json_obj_begin(&j, "peer");
        cli_json_str(&j, "name", "PyTorch nn.LSTM");
        cli_json_num(&j, "forward_ms", peer_fwd);
        cli_json_num(&j, "backward_ms", peer_bwd);
        cli_json_obj_end(&j);
        /* PyTorch's forward + backward time over ours, dense: > 1 means ours is faster */
        cli_json_num(&j, "dense_vs_peer_speedup", (peer_fwd + peer_bwd) / (r[0].fwd_ms + r[0].bwd_ms));
    }
    cli_json_obj_end(&j);
    s = cli_json_close(&j);
    return s == FG_OK ? CLI_CONTINUE : cli_fail("--json", s);
}

/* --plot: each drop-dependent variant's backward speedup over dense against the kept fraction of
 * the gate columns (measured), the speedup the structured variant's FLOPs alone would give (dense
 * GEMM FLOPs over the issued ones: where the work shrinks, the time should follow), and dense at 1. */
static int plot_sweep(const bench_args *a, const variant_result *r, int n, char *why, size_t why_len) {
    static const fg_lstm_bwd kinds[] = {FG_LSTM_BWD_STRUCTURED, FG_LSTM_BWD_STEP, FG_LSTM_BWD_MEPROP};
    cli_gnuplot gp;
    if (!cli_gnuplot_open(&gp, a->plot, 900, 560, why, why_len)) return 0;
    FILE *f = gp.f;
    char cpu[128], title[384];
    snprintf(title, sizeof title, "%d x LSTM %lld, T %lld, B %lld: backward speedup over dense (%s, %d thread%s)",
             a->layers, (long long)a->hidden, (long long)a->steps, (long long)a->batch, fg_cpu_model(cpu, sizeof cpu),
             a->threads, a->threads == 1 ? "" : "s");
    fprintf(f, "set title ");
    cli_gnuplot_str(f, title);
    fprintf(f, "\nset xlabel 'kept gate columns (%%)'\nset ylabel 'backward speedup over dense (x)'\nset grid\n"
               "set key top right\nset xrange [0:105]\nset yrange [0:*]\n");
    /* one series per variant that ran, then the FLOP ratio of structured, then dense */
    int series[3], ns = 0;
    for (int k = 0; k < 3; k++)
        if (find_config(r, n, kinds[k], a->drops[0])) series[ns++] = k;
    fprintf(f, "plot ");
    for (int s = 0; s < ns; s++)
        fprintf(f, "'-' using 1:2 with linespoints lw 2 pt 7 title '%s (measured)', ", fg_lstm_bwd_name(kinds[series[s]]));
    const int flops_line = find_config(r, n, FG_LSTM_BWD_STRUCTURED, a->drops[0]) != NULL;
    if (flops_line) fprintf(f, "'-' using 1:2 with lines dt 2 lw 2 title 'structured: dense FLOPs / FLOPs issued', ");
    fprintf(f, "1 with lines lc rgb 'gray' title 'dense'\n");
    for (int s = 0; s <= ns; s++) {
        if (s == ns && !flops_line) break;
        const fg_lstm_bwd v = s < ns ? kinds[series[s]] : FG_LSTM_BWD_STRUCTURED;
        /* points in order of the kept fraction */
        const variant_result *pts[MAX_DROPS];
        int np = 0;
        for (int k = 0; k < a->ndrops; k++) {
            const variant_result *c = find_config(r, n, v, a->drops[k]);
            int at = np++;
            while (at > 0 && pts[at - 1]->kept > c->kept) pts[at] = pts[at - 1], at--;
            pts[at] = c;
        }
        for (int k = 0; k < np; k++)
            fprintf(f, "%.4f %.4f\n", 100 * pts[k]->kept,
                    s < ns ? r[0].bwd_ms / pts[k]->bwd_ms : pts[k]->bwd_flops_dense / pts[k]->bwd_flops);
        if (s == ns) fprintf(f, "100 1\n"); /* nothing dropped: the dense FLOPs */
        fprintf(f, "e\n");
    }
    return cli_gnuplot_close(&gp, why, why_len);
}

static void print_table(const bench_args *a, int argc, char **argv, const variant_result *r, int n, int peer_ok,
                        double pf, double pb, const char *why, double tau) {
    printf("command: frugal lstm bench");
    for (int i = 0; i < argc; i++) printf(" %s", argv[i]);
    printf("\n%d x LSTM %lld units, input %lld, T %lld, B %lld; drop", a->layers, (long long)a->hidden,
           (long long)a->input, (long long)a->steps, (long long)a->batch);
    for (int k = 0; k < a->ndrops; k++) printf("%s%.2f", k ? ", " : " ", a->drops[k]);
    printf(", block %lld, tau %.3g (threshold); threads %d; median of %d after %d warm-up, configurations round "
           "robin\n\n", (long long)a->block, tau, a->threads, a->iters, a->warmup);
    printf("| backward | drop | kept gate columns | zeroed dG | ms forward | ms backward | backward vs dense | "
           "backward GFLOP issued (of dense) |\n|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        char drop[16] = "-";
        if (!isnan(r[i].drop)) snprintf(drop, sizeof drop, "%.2f", r[i].drop);
        printf("| %s | %s | %.1f %% | %.1f %% | %.2f | %.2f | %.2fx | %.3f (%.0f %%) |\n", fg_lstm_bwd_name(r[i].v), drop,
               r[i].kept * 100, r[i].sparsity * 100, r[i].fwd_ms, r[i].bwd_ms, r[0].bwd_ms / r[i].bwd_ms,
               r[i].bwd_flops * 1e-9, 100 * r[i].bwd_flops / r[i].bwd_flops_dense);
    }
    if (peer_ok)
        printf("| PyTorch nn.LSTM (dense) | - | 100 %% | 0 %% | %.2f | %.2f | %.2fx | - |\n", pf, pb, r[0].bwd_ms / pb);
    else
        printf("| PyTorch nn.LSTM | - | (not run: %s) | | | | | |\n", why);
    printf("\n");
    for (int k = 0; k < a->ndrops; k++) {
        const variant_result *sv = find_config(r, n, FG_LSTM_BWD_STRUCTURED, a->drops[k]);
        const variant_result *mv = find_config(r, n, FG_LSTM_BWD_MEPROP, a->drops[k]);
        if (sv) printf("drop %.2f: structured backward speedup over dense: %.2fx at %.1f %% kept", a->drops[k],
                       r[0].bwd_ms / sv->bwd_ms, sv->kept * 100);
        if (sv && mv) printf("; over meprop at the same drop: %.2fx", mv->bwd_ms / sv->bwd_ms);
        if (sv) printf("\n");
    }
    if (peer_ok)
        printf("dense forward+backward: frugal %.2f ms, PyTorch %.2f ms (%.2fx)\n", r[0].fwd_ms + r[0].bwd_ms, pf + pb,
               (pf + pb) / (r[0].fwd_ms + r[0].bwd_ms));
}

static int lstm_bench(int argc, char **argv) {
    bench_args a = {.hidden = 650, .batch = 20, .steps = 35, .block = 16, .layers = 2, .iters = 5, .warmup = 2,
                    .threads = 2, .drop_list = "0.8", .variants = "dense,step,structured,meprop,threshold"};
    cli_opt opts[] = {
        {"hidden", CLI_I64, &a.hidden, "H", "LSTM units per layer (default 650)", 0},
        {"input", CLI_I64, &a.input, "I", "input size of the first layer (default: hidden)", 0},
        {"batch", CLI_I64, &a.batch, "B", "batch size (default 20)", 0},
        {"steps", CLI_I64, &a.steps, "T", "time steps (default 35)", 0},
        {"layers", CLI_INT, &a.layers, "L", "stacked layers, 1..8 (default 2)", 0},
        {"drop", CLI_STR, &a.drop_list, "X[,X...]", "dropped fraction of blocks (step, structured) or gate columns "
                                                  "(meprop), in [0, 1); a list (0.5,0.8,0.9) times every variant at "
                                                  "each (default 0.8)", 0},
        {"block", CLI_I64, &a.block, "U", "hidden units per block (default 16)", 0},
        {"tau", CLI_FLOAT, &a.tau, "TAU", "threshold variant: |dG| < TAU is zeroed (default: the mean |dG| of the "
                                         "top layer's dense backward)", 0},
        {"variants", CLI_STR, &a.variants, "LIST", "comma-separated, of dense, step, structured, meprop, threshold "
                                                  "(default all; dense always runs)", 0},
        {"iters", CLI_INT, &a.iters, "N", "timed iterations, the median is reported (default 5)", 0},
        {"warmup", CLI_INT, &a.warmup, "N", "untimed iterations first (default 2)", 0},
        {"threads", CLI_INT, &a.threads, "N", "compute threads, also the peer's (default 2)", 0},
        {"json", CLI_STR, &a.json, "FILE", "write the figures as JSON", 0},
        {"plot", CLI_STR, &a.plot, "FILE.png", "plot each variant's backward speedup over dense against the kept "
                                              "fraction, with the speedup the FLOPs alone would give (gnuplot)", 0},
        {"no-peer", CLI_FLAG, &a.no_peer, NULL, "do not run PyTorch's nn.LSTM", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"lstm bench", "frugal lstm bench [options]",
                   "Times forward and backward of a stacked LSTM for each backward variant (dense; step: structured "
                   "sparsity with a kept block set per step; structured: one kept set per call, every backward GEMM "
                   "compact; meprop: unified top-k of the gate columns per step; threshold: |dG| < tau zeroed) at one "
                   "drop or several, and, when python3 has torch, PyTorch's nn.LSTM in the same run. Reports medians, "
                   "the GEMM GFLOP each backward issued and the speedups.",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    if (!cli_find(opts, "input")->set) a.input = a.hidden;
    if (a.hidden < 1 || a.input < 1 || a.batch < 1 || a.steps < 1)
        return cli_usage_error(&cmd, "--hidden, --input, --batch and --steps must be >= 1 (got %lld, %lld, %lld, %lld)",
                               (long long)a.hidden, (long long)a.input, (long long)a.batch, (long long)a.steps);
    if (a.hidden > 65536 || a.input > 65536 || a.batch > 65536 || a.steps > 65536)
        return cli_usage_error(&cmd, "--hidden, --input, --batch and --steps: at most 65536 each (got %lld, %lld, %lld, "
                               "%lld)", (long long)a.hidden, (long long)a.input, (long long)a.batch, (long long)a.steps);
    if (a.layers < 1 || a.layers > MAX_LAYERS)
        return cli_usage_error(&cmd, "--layers %d: expected 1..%d", a.layers, MAX_LAYERS);
    if ((rc = parse_drops(&cmd, a.drop_list, a.drops, &a.ndrops)) != CLI_CONTINUE) return rc;
    if (a.block < 1 || a.block > a.hidden)
        return cli_usage_error(&cmd, "--block %lld: expected 1..hidden (%lld)", (long long)a.block, (long long)a.hidden);
    if (!(a.tau >= 0 && isfinite(a.tau))) return cli_usage_error(&cmd, "--tau %g: expected a finite value >= 0", a.tau);
    if (a.iters < 1 || a.iters > MAX_ITERS || a.warmup < 0 || a.warmup > MAX_ITERS)
        return cli_usage_error(&cmd, "--iters %d / --warmup %d: expected 1..%d / 0..%d", a.iters, a.warmup, MAX_ITERS,
                               MAX_ITERS);
    if (a.threads < 1) return cli_usage_error(&cmd, "--threads %d: expected >= 1", a.threads);
    fg_lstm_bwd vs[FG_LSTM_BWD_COUNT];
    int nv = 0;
    if ((rc = parse_variants(&cmd, a.variants, vs, &nv)) != CLI_CONTINUE) return rc;
    if (a.plot) {
        int has_drop = 0; /* the plot's x axis is the drop: a variant with one must run */
        for (int i = 0; i < nv; i++)
            has_drop |= vs[i] == FG_LSTM_BWD_STEP || vs[i] == FG_LSTM_BWD_STRUCTURED || vs[i] == FG_LSTM_BWD_MEPROP;
        if (!has_drop)
            return cli_usage_error(&cmd, "--plot draws step, structured or meprop against the drop: none is in "
                                   "--variants %s", a.variants);
        if ((rc = cli_plot_option_check(&cmd, a.plot)) != CLI_CONTINUE) return rc;
    }
    if ((rc = cli_ram_check(&cmd, "lstm bench: the stack's buffers", stack_bytes(&a),
                            "expected a smaller --hidden, --input, --batch, --steps or --layers")) != CLI_CONTINUE)
        return rc;
    fg_threads_set(a.threads);

    variant_result r[MAX_CONFIGS];
    const int n = make_configs(&a, vs, nv, r);
    stack s;
    fg_status st = stack_init(&s, &a);
    const size_t nt = (size_t)a.iters * (size_t)n;
    double *tf = malloc(nt * sizeof(double)), *tb = malloc(nt * sizeof(double));
    if (st == FG_OK && (!tf || !tb)) st = fg_fail(FG_ERR_OOM, "lstm bench: out of host memory");
    double tau = a.tau;
    if (st == FG_OK) st = stack_forward(&s);
    if (st == FG_OK && !cli_find(opts, "tau")->set) st = auto_tau(&s, a.block, &tau);
    fprintf(stderr, "lstm bench: %d x LSTM %lld, T %lld, B %lld, I %lld: %d configurations x %d iterations...\n",
            a.layers, (long long)a.hidden, (long long)a.steps, (long long)a.batch, (long long)a.input, n,
            a.warmup + a.iters);
    for (int it = 0; st == FG_OK && it < a.warmup + a.iters; it++)
        for (int i = 0; st == FG_OK && i < n; i++) {
            const fg_lstm_sparsity sp = {.drop = isnan(r[i].drop) ? 0.0f : (float)r[i].drop, .block = a.block,
                                         .variant = r[i].v, .tau = (float)tau};
            double t0 = fg_time_now();
            st = stack_forward(&s);
            double t1 = fg_time_now();
            if (st == FG_OK) st = stack_backward(&s, &sp, &r[i].bwd_flops, &r[i].bwd_flops_dense, &r[i].kept, &r[i].sparsity);
            double t2 = fg_time_now();
            if (it >= a.warmup) tf[i * a.iters + it - a.warmup] = t1 - t0, tb[i * a.iters + it - a.warmup] = t2 - t1;
        }
    int code = CLI_EXIT_OK;
    if (st != FG_OK) {
        code = cli_fail("lstm bench", st);
    } else {
        for (int i = 0; i < n; i++) {
            r[i].fwd_ms = median(tf + i * a.iters, a.iters) * 1e3;
            r[i].bwd_ms = median(tb + i * a.iters, a.iters) * 1e3;
        }
        double pf = NAN, pb = NAN;
        char why[256] = "--no-peer";
        int peer_ok = 0;
        if (!a.no_peer) {
            fprintf(stderr, "lstm bench: PyTorch nn.LSTM...\n");
            peer_ok = run_peer(&a, &pf, &pb, why, sizeof why);
        }
        print_table(&a, argc, argv, r, n, peer_ok, pf, pb, why, tau);
        if (a.json && (rc = write_json(&a, argc, argv, r, n, peer_ok, pf, pb, tau)) != CLI_CONTINUE) code = rc;
        char pwhy[512];
        if (a.plot && !plot_sweep(&a, r, n, pwhy, sizeof pwhy)) {
            fprintf(stderr, "frugal: --plot: %s\n", pwhy);
            code = CLI_EXIT_FAIL;
        } else if (a.plot) {
            printf("plot: %s\n", a.plot);
        }
    }
    free(tf), free(tb);
    stack_free(&s);
    return code;
}

int cmd_lstm(int argc, char **argv) {
    if (argc >= 1 && strcmp(argv[0], "bench") == 0) return lstm_bench(argc - 1, argv + 1);
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        printf("usage: frugal lstm bench [options]   (frugal lstm bench --help lists them)\n\n"
               "The sparse LSTM system's kernels: forward and backward times of every backward variant.\n");
        return CLI_EXIT_OK;
    }
    return cli_usage_error(NULL, "lstm: expected a subcommand: bench (got '%s')", argc >= 1 ? argv[0] : "");
}
