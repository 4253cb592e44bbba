/* `frugal demo`'s dynamic-ViT part (tools/demo.h; issue 14, after Sreedhar et al., arXiv
 * 2212.02687): no pretrained model can be downloaded here, so it trains vit-tiny-28 briefly on
 * Fashion-MNIST (vit_train_loop, as `frugal vit train`), measures a fixed ladder of skip
 * configurations on validation images (the last MLP, the last block, more and more blocks: what
 * `frugal vit profile`'s greedy search finds first on this model), keeps their Pareto front, and
 * runs the governor on a stream of test images at batch 1 under a budget that jumps between 40 %
 * and 100 % of the full model's latency, beside the full model and every static configuration on
 * the same frames (vit_run_stream, as `frugal vit run`). Prints deadline hits and accuracy, a
 * "summary (vit)" block, and draws budget and latency per frame (demo-vit.png). About a minute at
 * scale 1 on 2 cores; o->scale shortens training and the stream. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "demo.h"
#include "plot.h"
#include "vit_common.h"

#define DV_MODEL "vit-tiny-28"
#define DV_DATA "fashion"
#define DV_EPOCHS 2
#define DV_TRAIN 12000  /* training images at scale 1 */
#define DV_VAL 1000     /* validation images for the configurations' accuracy */
#define DV_FRAMES 2000  /* frames of the stream */
#define DV_SWING_LO 0.4
#define DV_SWING_HI 1.0
#define DV_SEGMENT 50
#define DV_RATE 0.99

static int64_t scaled(double scale, int64_t n, int64_t min) {
    const int64_t v = (int64_t)llround(scale * (double)n);
    return v < min ? min : v;
}

/* The ladder: none; mlp3; block 3; block 3 and mlp1; blocks 2-3; blocks 1-3; every block. */
#define DV_LADDER 7
static void ladder(int k, fg_vit_skip *s) {
    memset(s, 0, sizeof *s);
    static const int mlp_only[DV_LADDER] = {-1, 3, -1, 1, -1, -1, -1};
    static const int first_skipped[DV_LADDER] = {4, 4, 3, 3, 2, 1, 0}; /* blocks >= this are skipped whole */
    for (int b = first_skipped[k]; b < 4; b++) s->attn[b] = s->mlp[b] = 1;
    if (mlp_only[k] >= 0) s->mlp[mlp_only[k]] = 1;
}

int demo_vit(const demo_opts *o) {
    const double sc = o->scale > 0 ? o->scale : 1.0;
    const char *png = o->plot ? o->plot : "demo-vit.png";
    const int64_t n_train = scaled(sc, DV_TRAIN, 512), n_val = scaled(sc, DV_VAL, 200);
    const int64_t frames = scaled(sc, DV_FRAMES, 300);
    printf("\nfrugal demo: dynamic ViT, a governor following a changing latency budget (Sreedhar et al., arXiv "
           "2212.02687)\n");
    printf("  %s on %s: training %d epochs on %lld images, then a stream of %lld test images at batch 1, %d threads\n",
           DV_MODEL, DV_DATA, DV_EPOCHS, (long long)n_train, (long long)frames, fg_threads_get());
    fflush(stdout);
    vit_data d;
    fg_status s = vit_data_load(DV_DATA, o->data_dir, n_train, n_val, 0, 1, NULL, &d);
    if (s != FG_OK) return cli_fail("demo: loading " DV_DATA, s);
    fg_pool *pool = NULL;
    vit_model m = {0}, m1 = {0};
    int rc = CLI_EXIT_OK;
    const int64_t batch = n_train < 128 ? n_train : 128;
    s = fg_pool_create(&pool, 0);
    if (s == FG_OK) s = vit_model_build(DV_MODEL, batch, d.train.c, d.train.h, d.train.w, d.train.n_classes, 1, pool, &m);
    if (s != FG_OK) rc = cli_fail("demo: building " DV_MODEL, s);
    /* 1. train */
    vit_epoch hist[DV_EPOCHS];
    int n_hist = 0;
    double test_full = 0;
    const double t_train = fg_time_now();
    if (rc == CLI_EXIT_OK) {
        vit_train_args a;
        memset(&a, 0, sizeof a);
        a.epochs = DV_EPOCHS;
        a.batch = batch;
        a.lr = 1e-3;
        a.weight_decay = 0.05;
        a.warmup = 0.25;
        a.seed = 1;
        a.quiet = o->quiet;
        cli_sigint_install();
        s = vit_train_loop(&a, &m, &d, hist, &n_hist, &test_full);
        cli_sigint_restore();
        if (s != FG_OK) rc = vit_loop_fail("demo: training", s);
    }
    const double train_s = fg_time_now() - t_train;
    /* 2. the batch-1 model on the trained weights; the ladder's accuracy on validation images */
    if (rc == CLI_EXIT_OK) {
        s = vit_model_build(DV_MODEL, 1, d.train.c, d.train.h, d.train.w, d.train.n_classes, 0, pool, &m1);
        if (s == FG_OK) s = fg_graph_share_weights(m1.g, m.g);
        if (s != FG_OK) rc = cli_fail("demo: the batch-1 model", s);
    }
    fg_vit_profile_entry all[DV_LADDER], t[DV_LADDER];
    uint8_t front[DV_LADDER];
    size_t n = 0;
    for (int k = 0; k < DV_LADDER && rc == CLI_EXIT_OK; k++) {
        memset(&all[k], 0, sizeof all[k]);
        ladder(k, &all[k].skip);
        s = fg_vit_skip_flops(m1.g, &all[k].skip, &all[k].flops);
        if (s == FG_OK) s = vit_evaluate(&m1, &d.val, &all[k].metric);
        if (s != FG_OK) rc = cli_fail("demo: measuring a configuration", s);
    }
    if (rc == CLI_EXIT_OK) {
        fg_vit_pareto(all, DV_LADDER, FG_VIT_COST_FLOPS, front);
        for (int k = 0; k < DV_LADDER; k++)
            if (front[k] || k == 0) t[n++] = all[k]; /* the full model always */
        double apply_s = 0;
        s = vit_run_calibrate(&m1, &d.test, t, n, 20, 0, &apply_s);
        if (s != FG_OK) rc = cli_fail("demo: calibrating", s);
    }
    const size_t full = rc == CLI_EXIT_OK ? vit_run_full_entry(t, n) : 0;
    if (rc == CLI_EXIT_OK) {
        printf("  configurations (accuracy on %lld validation images; latency at batch 1 on this machine now):\n",
               (long long)d.val.n);
        for (size_t i = 0; i < n; i++) {
            char kt[256];
            fg_vit_skip_format(&t[i].skip, kt, sizeof kt);
            printf("    %8.3f MFLOP %8.3f ms  accuracy %.4f  %s\n", t[i].flops / 1e6, t[i].seconds * 1e3, t[i].metric, kt);
        }
        fflush(stdout);
    }
    /* 3. the stream */
    double *budget = rc == CLI_EXIT_OK ? malloc((size_t)frames * sizeof *budget) : NULL;
    if (rc == CLI_EXIT_OK && !budget) rc = cli_fail("demo", fg_fail(FG_ERR_OOM, "out of host memory"));
    vit_run_result r;
    memset(&r, 0, sizeof r);
    if (rc == CLI_EXIT_OK) {
        vit_run_swing(DV_SWING_LO, DV_SWING_HI, t[full].seconds, DV_SEGMENT, frames, budget);
        cli_sigint_install();
        s = vit_run_stream(&m1, &d.test, t, n, budget, frames, 1.0 - DV_RATE, 0, o->quiet, &r);
        cli_sigint_restore();
        if (s != FG_OK) rc = vit_loop_fail("demo: the stream", s);
    }
    if (rc == CLI_EXIT_OK) {
        size_t best = SIZE_MAX;
        for (size_t j = 0; j < n; j++)
            if ((double)r.stat[j].hits >= DV_RATE * (double)frames && (best == SIZE_MAX || r.stat[j].metric > r.stat[best].metric))
                best = j;
        const double F = (double)frames;
        printf("\nsummary (vit)\n");
        printf("  model          %s trained %d epochs on %lld %s images in %.1f s: test accuracy %.4f\n", DV_MODEL,
               n_hist, (long long)d.train.n, DV_DATA, train_s, test_full);
        printf("  table          %zu configurations from %.3f to %.3f MFLOP, validation accuracy %.4f to %.4f\n", n,
               t[n - 1].flops / 1e6, t[0].flops / 1e6, t[n - 1].metric, t[0].metric);
        printf("  budget         %lld frames, jumping every %d frames between %.0f%% and %.0f%% of the full model's "
               "%.3f ms\n",
               (long long)frames, DV_SEGMENT, 100 * DV_SWING_LO, 100 * DV_SWING_HI, t[full].seconds * 1e3);
        printf("  governor       %.2f%% of deadlines met, accuracy %.4f\n", 100.0 * (double)r.gov.hits / F, r.gov.metric);
        printf("  full model     %.2f%% of deadlines met, accuracy %.4f\n", 100.0 * (double)r.stat[full].hits / F,
               r.stat[full].metric);
        if (best != SIZE_MAX) {
            char kt[256];
            fg_vit_skip_format(&t[best].skip, kt, sizeof kt);
            printf("  best static    %.2f%% of deadlines met, accuracy %.4f (%s: the most accurate static configuration "
                   "meeting %.0f%%)\n",
                   100.0 * (double)r.stat[best].hits / F, r.stat[best].metric, kt, 100 * DV_RATE);
        } else {
            printf("  best static    none of the %zu configurations meets %.0f%% of deadlines\n", n, 100 * DV_RATE);
        }
        printf("  cost           pick %.2f us, switch %.1f us per frame; inference %.1f us on average\n", r.pick_s * 1e6,
               r.apply_s * 1e6, r.infer_s * 1e6);
        printf("  correction     drift %.3f, margin %.3f at the end (latency on a shared machine drifts)\n", r.gs.drift,
               r.gs.margin);
        if (!o->no_plot) {
            char title[256], why[512];
            snprintf(title, sizeof title, "%s: governor %.2f%% of deadlines, accuracy %.4f; full model %.2f%%, %.4f",
                     DV_MODEL, 100.0 * (double)r.gov.hits / F, r.gov.metric, 100.0 * (double)r.stat[full].hits / F,
                     r.stat[full].metric);
            if (vit_run_plot(png, title, "accuracy", t, &r, why, sizeof why))
                printf("  plot           %s (budget and latency per frame, the chosen configuration)\n", png);
            else
                printf("  plot           not drawn: %s\n", why);
        }
    }
    vit_run_result_free(&r);
    free(budget);
    fg_graph_free(m1.g); /* the sharing graph before its owner */
    fg_graph_free(m.g);
    fg_pool_destroy(pool);
    vit_data_free(&d);
    return rc;
}
