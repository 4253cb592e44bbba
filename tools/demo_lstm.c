/* `frugal demo`'s sparse LSTM part (tools/demo.h; after Zhu, Zhang and Kautz, arXiv 1806.00512).
 *
 * Trains Zaremba's medium language model (2 x 650 LSTM units, T 35, B 20, dropout 0.5) on the
 * Brown corpus twice from the same weights and text: once with the dense backward, once with the
 * structured sparse backward at drop 0.8 (one kept set of 16-unit blocks per chunk, so every
 * backward GEMM issues a fifth of its dense FLOPs). Prints the LSTM backward's time per chunk of
 * both and its speedup, the whole chunk's, and the training and validation perplexities after the
 * same text, then draws the running training perplexity of both against time (demo-lstm.png).
 * About a minute on 2 cores at scale 1 (DEMO_LSTM_CHUNKS chunks per run); a short run shows the
 * speed, not the paper's quality claim, which needs full-length runs (bench/lm_schedules.sh). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "demo.h"
#include "frugal/lm.h"
#include "plot.h"

#define DEMO_LSTM_HIDDEN 650
#define DEMO_LSTM_STEPS 35
#define DEMO_LSTM_BATCH 20
#define DEMO_LSTM_DROPOUT 0.5f
#define DEMO_LSTM_DROP 0.8f
#define DEMO_LSTM_BLOCK 16
#define DEMO_LSTM_CHUNKS 60 /* per run at scale 1: ~0.3 s each with 2 threads on an idle machine */
#define DEMO_LSTM_EVAL 20   /* validation chunks */

typedef struct lstm_run {
    const char *label;
    float drop;
    /* filled in */
    fg_lm_epoch ep;
    double *t, *ppl; /* [chunks] seconds since the start and running training perplexity */
    int64_t n, cap;
    cli_progress prog;
    int quiet;
} lstm_run;

static void run_on_batch(const fg_lm_progress *p, void *user) {
    lstm_run *r = user;
    if (r->n < r->cap) {
        r->t[r->n] = p->seconds;
        r->ppl[r->n] = exp(p->loss);
        r->n++;
    }
    if (r->quiet) return;
    double now = fg_time_now();
    if (now - r->prog.last < r->prog.interval && p->batch != p->batches) return;
    char bar[40], line[200];
    cli_bar(bar, sizeof bar, (double)p->batch / (double)p->batches, 24);
    snprintf(line, sizeof line, "  %-10s %s %lld/%lld chunks  train ppl %.0f", r->label, bar, (long long)p->batch,
             (long long)p->batches, exp(p->loss));
    cli_progress_show(&r->prog, line, 0);
}

static void run_on_epoch(const fg_lm_epoch *e, void *user) {
    lstm_run *r = user;
    r->ep = *e;
    cli_progress_clear(&r->prog);
}

/* One run from the seed's weights over the first `chunks` chunks of the training split (after
 * one untimed chunk with the same backward, so that neither run pays the GEMM kernels' first
 * calls; the run itself starts again from the seed's weights). */
static fg_status run_one(fg_graph *g, const fg_lm_io *io, const fg_lm_cfg *c, const fg_corpus *corpus, int64_t chunks,
                         lstm_run *r) {
    fg_lm_train_cfg warm = fg_lm_train_defaults();
    warm.epochs = 1;
    warm.sparse_drop = r->drop;
    warm.sparse_variant = FG_LSTM_BWD_STRUCTURED;
    warm.max_batches = 1;
    warm.max_eval_batches = 1;
    FG_TRY(fg_lm_train(g, io, c, &warm, corpus, NULL, NULL));
    r->cap = chunks;
    r->t = calloc((size_t)chunks, sizeof *r->t);
    r->ppl = calloc((size_t)chunks, sizeof *r->ppl);
    if (!r->t || !r->ppl) return fg_fail(FG_ERR_OOM, "demo: out of host memory");
    fg_lm_train_cfg tc = fg_lm_train_defaults();
    tc.epochs = 1;
    tc.sparse_drop = r->drop;
    tc.sparse_variant = FG_LSTM_BWD_STRUCTURED;
    tc.max_batches = chunks;
    tc.max_eval_batches = DEMO_LSTM_EVAL;
    tc.on_batch = run_on_batch;
    tc.on_epoch = run_on_epoch;
    tc.user = r;
    tc.stop = &cli_stop_flag;
    cli_progress_init(&r->prog);
    int done = 0;
    FG_TRY(fg_lm_train(g, io, c, &tc, corpus, NULL, &done));
    if (done < 1) return fg_fail(FG_ERR_INVALID, "demo: the %s run was interrupted", r->label);
    return FG_OK;
}

static int plot_runs(const lstm_run *runs, int n, const char *png, char *why, size_t why_len) {
    cli_gnuplot gp;
    if (!cli_gnuplot_open(&gp, png, 900, 540, why, why_len)) return 0;
    FILE *f = gp.f;
    fprintf(f, "set title ");
    cli_gnuplot_str(f, "LSTM LM on Brown (2 x 650, T 35, B 20): dense against the structured sparse backward");
    fprintf(f, "\nset xlabel 'seconds'\nset ylabel 'training perplexity (running mean)'\nset logscale y\nset grid\n"
               "set key top right\nplot ");
    for (int k = 0; k < n; k++) {
        fprintf(f, "%s'-' using 1:2 with lines lw 2 title ", k ? ", " : "");
        cli_gnuplot_str(f, runs[k].label);
    }
    fprintf(f, "\n");
    for (int k = 0; k < n; k++) {
        for (int64_t i = 0; i < runs[k].n; i++) fprintf(f, "%.4f %.4f\n", runs[k].t[i], runs[k].ppl[i]);
        fprintf(f, "e\n");
    }
    return cli_gnuplot_close(&gp, why, why_len);
}

int demo_lstm(const demo_opts *o) {
    printf("\nfrugal demo: the sparse LSTM (structured sparse backward, Zhu et al., arXiv 1806.00512)\n");
    char buf[4096];
    const char *dir = o->data_dir ? o->data_dir : fg_data_dir(buf, sizeof buf);
    fg_corpus corpus;
    fg_status s = fg_corpus_load(dir, "brown", &corpus);
    if (s != FG_OK) {
        fprintf(stderr, "frugal: demo: %s\nfrugal: demo: fetch the corpus first:  bash scripts/fetch-data.sh brown  (or "
                        "skip this part: --no-lstm)\n", fg_last_error());
        return CLI_EXIT_FAIL;
    }
    int64_t chunks = (int64_t)lround(DEMO_LSTM_CHUNKS * o->scale);
    if (chunks < 2) chunks = 2;
    fg_lm_cfg c = {corpus.vocab_size, 0, DEMO_LSTM_HIDDEN, 2, DEMO_LSTM_STEPS, DEMO_LSTM_BATCH, DEMO_LSTM_DROPOUT,
                   DEMO_LSTM_BLOCK};
    printf("  model          embedding 650, 2 x LSTM 650, decoder over %d words; T 35, B 20, dropout 0.5, SGD lr 1\n",
           corpus.vocab_size);
    printf("  runs           %lld chunks of Brown each (%lld words), the same weights and text: dense, then structured "
           "at drop %.1f\n", (long long)chunks, (long long)(chunks * DEMO_LSTM_STEPS * DEMO_LSTM_BATCH),
           (double)DEMO_LSTM_DROP);
    fflush(stdout);

    lstm_run runs[2] = {{.label = "dense", .drop = 0.0f, .quiet = o->quiet},
                        {.label = "structured", .drop = DEMO_LSTM_DROP, .quiet = o->quiet}};
    fg_graph *g = NULL;
    fg_pool *pool = NULL;
    fg_lm_io io;
    fg_mem_policy pol;
    s = fg_pool_create(&pool, 0);
    if (s == FG_OK) s = fg_graph_create(&g, "demo-lstm-lm");
    if (s == FG_OK) s = fg_lm_build(g, &c, &io);
    if (s == FG_OK) s = fg_policy_network_wide(&pol);
    if (s == FG_OK) s = fg_graph_build(g, io.loss, pool, &pol);
    cli_sigint_install();
    for (int k = 0; k < 2 && s == FG_OK; k++) s = run_one(g, &io, &c, &corpus, chunks, &runs[k]);
    cli_sigint_restore();
    int rc = CLI_EXIT_OK;
    if (s != FG_OK) {
        rc = cli_fail("demo (lstm)", s);
    } else {
        const fg_lm_epoch *d = &runs[0].ep, *sp = &runs[1].ep;
        double n = (double)chunks;
        printf("\nsummary (lstm)\n");
        printf("  %-12s %12s %18s %15s %10s %10s\n", "backward", "ms / chunk", "LSTM bwd ms/chunk", "bwd GEMM FLOPs",
               "train ppl", "valid ppl");
        for (int k = 0; k < 2; k++) {
            const fg_lm_epoch *e = &runs[k].ep;
            printf("  %-12s %12.1f %18.1f %14.1f%% %10.1f %10.1f\n", runs[k].label, 1e3 * e->seconds / n,
                   1e3 * e->lstm_backward_seconds / n, 100.0 * e->lstm_backward_flops_kept, e->train_ppl, e->valid_ppl);
        }
        printf("  LSTM backward  %.2fx faster structured (%.1f against %.1f ms per chunk, both layers)\n",
               d->lstm_backward_seconds / sp->lstm_backward_seconds, 1e3 * sp->lstm_backward_seconds / n,
               1e3 * d->lstm_backward_seconds / n);
        printf("  whole chunk    %.2fx (the 10,002-word decoder and the forward do not shrink)\n",
               d->seconds / sp->seconds);
        printf("  perplexity     valid %.1f structured against %.1f dense after the same %lld chunks (%+.1f %%); the "
               "paper's mixed schedule trains dense at the end to close the gap\n", sp->valid_ppl, d->valid_ppl,
               (long long)chunks, 100.0 * (sp->valid_ppl / d->valid_ppl - 1));
        if (!o->no_plot) {
            char why[512];
            const char *png = o->plot ? o->plot : "demo-lstm.png";
            if (plot_runs(runs, 2, png, why, sizeof why)) printf("  plot           %s (training perplexity against time)\n", png);
            else printf("  plot           not drawn: %s\n", why);
        }
    }
    for (int k = 0; k < 2; k++) {
        free(runs[k].t);
        free(runs[k].ppl);
    }
    fg_graph_free(g);
    fg_pool_destroy(pool);
    fg_corpus_free(&corpus);
    return rc;
}
