/* `frugal demo`: LeNet, vmem, then the parts of tools/demo.h (sparse LSTM, GA3C, dynamic ViT).
 *
 * LeNet: trains LeNet-5 on MNIST with the defaults of `frugal train` (the same code), prints the
 * test accuracy and a short summary, and draws the learning curve with gnuplot when it is
 * installed.
 *
 * vmem (issue 3, after vDNN, Rhu et al., MICRO 2016): trains GoogLeNet on Fashion-MNIST under a
 * device budget that the network-wide baseline cannot fit. It measures an oracle first (none in
 * an unlimited pool: its smallest budget and iteration time), reads the smallest budget of all
 * (vDNN's most frugal policy) from its plan, sets the budget halfway between the two, shows none
 * failing there with the library's message, trains under the demo's policy, and prints the
 * policy's peak and time-weighted average device memory against none's, the iteration time
 * against the oracle's, the loss at the start and the end, and draws the memory of one training
 * iteration of both (demo-vmem.png, the vDNN paper's memory-over-time figure). Both runs use the
 * library's trainer (fg_trainer_*) on the same images, seed and order, so the policy's first
 * losses can be compared with the oracle's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "demo.h"
#include "plot.h"

/* Loss (left axis) and train/test accuracy (right axis) per epoch, as a PNG. 1 on success, else
 * 0 with the reason in why. */
static int plot_curve(const cli_train_result *r, const char *png, char *why, size_t why_len) {
    cli_gnuplot gp;
    if (!cli_gnuplot_open(&gp, png, 900, 540, why, why_len)) return 0;
    FILE *f = gp.f;
    char title[256];
    snprintf(title, sizeof title, "%s on %s: learning curve (test accuracy %.4f)", r->model, r->data, r->test_acc);
    fprintf(f, "set title ");
    cli_gnuplot_str(f, title);
    fprintf(f, "\nset xlabel 'epoch'\nset ylabel 'training loss'\nset y2label 'accuracy'\n");
    fprintf(f, "set ytics nomirror\nset y2tics\nset grid\nset key center right\n");
    fprintf(f, "set xrange [0.5:%d.5]\nset xtics 1\n", r->n_epochs);
    fprintf(f, "plot '-' using 1:2 with linespoints title 'loss' axes x1y1, "
               "'-' using 1:2 with linespoints title 'train accuracy' axes x1y2, "
               "'-' using 1:2 with linespoints title 'test accuracy' axes x1y2\n");
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < r->n_epochs; i++) {
            const fg_epoch_result *e = &r->hist[i];
            double v = k == 0 ? e->loss : k == 1 ? e->train_acc : e->test_acc;
            fprintf(f, "%d %.6f\n", i + 1, v);
        }
        fprintf(f, "e\n");
    }
    return cli_gnuplot_close(&gp, why, why_len);
}

/* ---------------------------------------------------------------- the vmem part (issue 3) */

/* The policy the vmem part trains under (any name fg_vmem_kind_parse knows). */
#define DEMO_VMEM_POLICY "all"

/* GoogLeNet (one of vDNN's networks; its activations dwarf its 6 M parameters, so offloading
 * them pays) on Fashion-MNIST, every 28x28 image scaled up 2x (nearest neighbour) to 56x56
 * because GoogLeNet needs at least 47x47. Batch and iterations are sized for about 45 s of
 * training on 2 cores (0.17 s per iteration); the oracle runs only a few. */
#define VMEM_MODEL "googlenet"
#define VMEM_DATA "fashion"
#define VMEM_SCALE 2
#define VMEM_BATCH 32
#define VMEM_ITERS 250
#define VMEM_ORACLE_ITERS 8
#define VMEM_LR 5e-4f /* without batch norm GoogLeNet sits at ln 10 for ~80 iterations, then learns */
#define VMEM_SEED 1
#define VMEM_LAST 20 /* the end loss is the mean over this many last iterations */

/* The first n training images of `src`, each scaled up s times by repeating pixels: (n, c, h*s,
 * w*s). Normalization is per pixel, so the scaled images stay normalized. */
static fg_status upscale_subset(const fg_dataset *src, int64_t n, int s, fg_dataset *dst) {
    memset(dst, 0, sizeof *dst);
    int64_t c = src->c, h = src->h, w = src->w, H = h * s, W = w * s;
    dst->images = malloc((size_t)(n * c * H * W) * sizeof(float));
    dst->labels = malloc((size_t)n * sizeof(int32_t));
    if (!dst->images || !dst->labels) {
        fg_dataset_free(dst);
        return fg_fail(FG_ERR_OOM, "demo: out of host memory for %lld images of %lldx%lld", (long long)n, (long long)H,
                       (long long)W);
    }
    for (int64_t i = 0; i < n * c; i++) {
        const float *a = src->images + i * h * w;
        float *b = dst->images + i * H * W;
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++) b[y * W + x] = a[(y / s) * w + x / s];
    }
    memcpy(dst->labels, src->labels, (size_t)n * sizeof(int32_t));
    dst->n = n;
    dst->c = c;
    dst->h = H;
    dst->w = W;
    dst->n_classes = src->n_classes;
    return FG_OK;
}

/* One run of the trainer under a vmem policy in a pool of `budget` bytes (0 = unlimited). */
typedef struct vrun {
    const char *label;        /* for the progress line and the plot */
    int iters;                /* iterations to train; 0 = build only (the plan's numbers) */
    int quiet;
    /* filled in */
    fg_vmem_stats st;         /* plan's numbers and, after training, the link's */
    double *loss;             /* [iters] loss of each iteration */
    double *t_done;           /* [iters] fg_time_now() when each iteration ended */
    int done;                 /* iterations completed */
    double sum_prev;          /* the epoch's loss sum after the previous iteration */
    fg_vmem_trace_event *ev;  /* the last iteration's trace events */
    size_t n_ev;
    size_t peak;              /* over that iteration: device bytes in use at most */
    double avg;               /* and time-weighted on average */
    volatile sig_atomic_t stop;
    cli_progress prog;
} vrun;

static void vrun_free(vrun *r) {
    free(r->loss);
    free(r->t_done);
    free(r->ev);
    r->loss = r->t_done = NULL;
    r->ev = NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds per iteration, the first (oneDNN primitive creation, warm-up) left out. The
 * median, not the mean: on a shared machine a few iterations can take several times longer. */
static double vrun_iter_seconds(const vrun *r) {
    if (r->done < 2) return NAN;
    int m = r->done - 1;
    double *d = malloc((size_t)m * sizeof *d);
    if (!d) return NAN;
    for (int i = 0; i < m; i++) d[i] = r->t_done[i + 1] - r->t_done[i];
    qsort(d, (size_t)m, sizeof *d, cmp_double);
    double med = m % 2 ? d[m / 2] : 0.5 * (d[m / 2 - 1] + d[m / 2]);
    free(d);
    return med;
}

static void vrun_on_batch(const fg_train_progress *p, void *user) {
    vrun *r = user;
    int k = (int)p->batch; /* one epoch: batches 1..n */
    double sum = p->loss * (double)k;
    if (k >= 1 && k <= r->iters) {
        r->loss[k - 1] = sum - r->sum_prev;
        r->t_done[k - 1] = fg_time_now();
        r->done = k;
    }
    r->sum_prev = sum;
    /* the trainer polls the flag before the next batch */
    if (k >= r->iters || cli_stop_flag) r->stop = 1;
    if (r->quiet || k < 1 || k > r->iters) return;
    char bar[40], line[256];
    cli_bar(bar, sizeof bar, (double)k / (double)r->iters, 24);
    char sec[48] = "";
    if (k >= 2) snprintf(sec, sizeof sec, "  %.3f s/iteration", r->t_done[k - 1] - r->t_done[k - 2]);
    snprintf(line, sizeof line, "  %-14s %s %4d/%d iterations  loss %.4f%s", r->label, bar, k, r->iters, r->loss[k - 1], sec);
    cli_progress_show(&r->prog, line, k == 1 || k == r->iters);
}

/* Builds the model under `kind` in a pool of `budget` bytes and trains r->iters iterations on
 * `train` (one epoch's order, stopped after r->iters). Returns the library's status: a budget too
 * small fails in fg_trainer_create (vmem's plan) with the smallest budget in the message. */
static fg_status vrun_go(vrun *r, fg_vmem_kind kind, size_t budget, const fg_dataset *train) {
    if (r->iters > 0) {
        r->loss = calloc((size_t)r->iters, sizeof *r->loss);
        r->t_done = calloc((size_t)r->iters, sizeof *r->t_done);
        if (!r->loss || !r->t_done) return fg_fail(FG_ERR_OOM, "demo: out of host memory");
    }
    cli_progress_init(&r->prog);
    fg_pool *pool = NULL;
    fg_trainer *t = NULL;
    FG_TRY(fg_pool_create(&pool, budget));
    fg_vmem_config vc = fg_vmem_config_defaults(kind);
    vc.trace = FG_VMEM_TRACE_LAST; /* no test set, so the last forward is a training iteration's */
    fg_mem_policy pol;
    fg_status s = fg_vmem_policy_create(&pol, &vc);
    if (s != FG_OK) {
        fg_pool_destroy(pool);
        return s;
    }
    fg_vmem *vm = fg_vmem_of(&pol);
    fg_train_cfg cfg = fg_train_defaults();
    cfg.epochs = 1;
    cfg.batch = VMEM_BATCH;
    cfg.optim = fg_optim_defaults(FG_OPTIM_ADAM, VMEM_LR);
    cfg.lr_decay = 1.0f;
    cfg.seed = VMEM_SEED;
    cfg.data_name = VMEM_DATA;
    cfg.stop = &r->stop;
    cfg.on_batch = vrun_on_batch;
    cfg.user = r;
    /* the trainer owns the policy from here, also when it fails */
    s = fg_trainer_create(&t, VMEM_MODEL, NULL, &cfg, train, NULL, pool, &pol);
    if (s == FG_OK) {
        fg_vmem_get_stats(vm, &r->st);
        if (r->iters > 0) {
            cli_sigint_install();
            s = fg_trainer_run(t);
            cli_sigint_restore();
            cli_progress_clear(&r->prog);
            /* stopped by us after r->iters iterations: not an error */
            if (s != FG_OK && fg_trainer_interrupted(t) && r->done >= r->iters && !cli_stop_flag) s = FG_OK;
        }
    }
    if (s == FG_OK && r->iters > 0) {
        fg_vmem_get_stats(vm, &r->st);
        size_t n = fg_vmem_trace_count(vm), first = 0;
        fg_vmem_trace_event *all = malloc((n ? n : 1) * sizeof *all);
        if (!all) s = fg_fail(FG_ERR_OOM, "demo: out of host memory for %zu trace events", n);
        if (s == FG_OK) {
            n = fg_vmem_trace_get(vm, all, n);
            r->n_ev = cli_plot_iteration(all, n, &first);
            r->ev = malloc((r->n_ev ? r->n_ev : 1) * sizeof *r->ev);
            if (!r->ev) {
                s = fg_fail(FG_ERR_OOM, "demo: out of host memory for %zu trace events", r->n_ev);
                r->n_ev = 0;
            } else if (r->n_ev) memcpy(r->ev, all + first, r->n_ev * sizeof *r->ev);
        }
        free(all);
        /* peak and time-weighted average over the iteration (memory holds from one event to the
         * next) */
        double area = 0;
        for (size_t i = 0; s == FG_OK && i < r->n_ev; i++) {
            if (r->ev[i].device_bytes > r->peak) r->peak = r->ev[i].device_bytes;
            if (i + 1 < r->n_ev) area += (double)r->ev[i].device_bytes * (r->ev[i + 1].t - r->ev[i].t);
        }
        double span = r->n_ev > 1 ? r->ev[r->n_ev - 1].t - r->ev[0].t : 0.0;
        r->avg = span > 0 ? area / span : (double)r->peak;
    }
    fg_trainer_free(t);
    fg_pool_destroy(pool);
    return s;
}

static double pct(double x, double ref) { return ref > 0 ? 100.0 * (x / ref - 1.0) : NAN; }

/* A failed run: interrupted by Ctrl-C (130) or the library's message (1). */
static int vrun_fail(const char *what, fg_status s) {
    if (cli_stop_flag) {
        fprintf(stderr, "frugal: demo: interrupted\n");
        return CLI_EXIT_INTERRUPTED;
    }
    return cli_fail(what, s);
}

/* The vmem part on `train` (the scaled images); quiet: no progress lines. Returns a CLI exit code. */
static int demo_vmem(const fg_dataset *train, int quiet, int no_plot, const char *png) {
    fg_vmem_kind kind;
    fg_status s = fg_vmem_kind_parse(DEMO_VMEM_POLICY, &kind);
    if (s != FG_OK) return cli_fail("demo: policy " DEMO_VMEM_POLICY, s);
    const char *pname = fg_vmem_kind_name(kind);
    int iters = (int)(train->n / VMEM_BATCH);
    char b1[32], b2[32], b3[32], b4[32];
    printf("\nfrugal demo: vmem, training beyond the device-memory budget (vDNN, Rhu et al., MICRO 2016)\n");
    printf("  %s on %s (%lldx%lld images scaled to %lldx%lld), batch %d, Adam lr %g, %d iterations, %d threads\n",
           VMEM_MODEL, VMEM_DATA, (long long)(train->h / VMEM_SCALE), (long long)(train->w / VMEM_SCALE),
           (long long)train->h, (long long)train->w, VMEM_BATCH, (double)VMEM_LR, iters, fg_threads_get());
    fflush(stdout);

    int rc = CLI_EXIT_OK;
    vrun orc, ref, bad, pol;
    memset(&orc, 0, sizeof orc);
    memset(&ref, 0, sizeof ref);
    memset(&bad, 0, sizeof bad);
    memset(&pol, 0, sizeof pol);
    /* 1. the oracle: none (network-wide allocation) in an unlimited pool */
    orc.label = "none (oracle)";
    orc.iters = iters < VMEM_ORACLE_ITERS ? iters : VMEM_ORACLE_ITERS;
    orc.quiet = quiet;
    s = vrun_go(&orc, FG_VMEM_NONE, 0, train);
    if (s != FG_OK) rc = vrun_fail("demo: oracle (none, unlimited)", s);
    size_t none_min = orc.st.min_device_bytes;
    if (rc == CLI_EXIT_OK)
        printf("  oracle         none in an unlimited pool: needs %s, %.3f s per iteration (median of %d)\n",
               fg_bytes_str(b1, sizeof b1, (double)none_min), vrun_iter_seconds(&orc), orc.done - 1);
    /* 2. the budget: halfway between what all (vDNN's most frugal policy) and none need, read
     * from their plans */
    size_t budget = 0;
    if (rc == CLI_EXIT_OK) {
        ref.label = "all (plan)";
        s = vrun_go(&ref, FG_VMEM_ALL, 0, train);
        if (s != FG_OK) rc = vrun_fail("demo: planning all", s);
    }
    if (rc == CLI_EXIT_OK) {
        size_t all_min = ref.st.min_device_bytes;
        budget = all_min + (none_min > all_min ? (none_min - all_min) / 2 : 0);
        printf("  budget         %s: halfway between the smallest budgets of all (%s) and none (%s)\n",
               fg_bytes_str(b1, sizeof b1, (double)budget), fg_bytes_str(b2, sizeof b2, (double)all_min),
               fg_bytes_str(b3, sizeof b3, (double)none_min));
        fflush(stdout);
    }
    /* 3. none at the budget: refused by its plan before the first iteration */
    int none_fits = 0;
    if (rc == CLI_EXIT_OK) {
        bad.label = "none";
        s = vrun_go(&bad, FG_VMEM_NONE, budget, train);
        if (s == FG_OK) {
            none_fits = 1;
            printf("  none           fits in %s (unexpected: the budget is below its smallest)\n", b1);
        } else if (s == FG_ERR_OOM) {
            printf("  none           does not fit, as expected: %s\n", fg_last_error());
        } else {
            rc = vrun_fail("demo: none at the budget", s);
        }
    }
    /* 4. the policy at the budget */
    if (rc == CLI_EXIT_OK) {
        pol.label = pname;
        pol.iters = iters;
        pol.quiet = quiet;
        printf("  %-14s training %d iterations in %s\n", pname, iters, b1);
        fflush(stdout);
        s = vrun_go(&pol, kind, budget, train);
        if (s != FG_OK) rc = vrun_fail("demo: training under " DEMO_VMEM_POLICY, s);
    }
    if (rc == CLI_EXIT_OK) {
        double it_p = vrun_iter_seconds(&pol), it_o = vrun_iter_seconds(&orc);
        int last = pol.done < VMEM_LAST ? pol.done : VMEM_LAST;
        double end = 0;
        for (int i = pol.done - last; i < pol.done; i++) end += pol.loss[i];
        end /= last > 0 ? last : 1;
        double dmax = 0;
        int cmp = orc.done < pol.done ? orc.done : pol.done;
        for (int i = 0; i < cmp; i++) dmax = fmax(dmax, fabs(pol.loss[i] - orc.loss[i]));
        printf("\nsummary (vmem)\n");
        printf("  budget         %s; none needs %s and %s\n", fg_bytes_str(b1, sizeof b1, (double)budget),
               fg_bytes_str(b2, sizeof b2, (double)none_min), none_fits ? "fits (unexpected)" : "does not fit");
        if (pol.st.decision[0]) printf("  decision       %s\n", pol.st.decision);
        printf("  peak           %s under %s vs %s under none (%+.1f%%)\n", fg_bytes_str(b1, sizeof b1, (double)pol.peak),
               pname, fg_bytes_str(b2, sizeof b2, (double)orc.peak), pct((double)pol.peak, (double)orc.peak));
        printf("  average        %s under %s vs %s under none (%+.1f%%), time-weighted over one iteration\n",
               fg_bytes_str(b1, sizeof b1, pol.avg), pname, fg_bytes_str(b2, sizeof b2, orc.avg), pct(pol.avg, orc.avg));
        printf("  offload        %s per iteration (%d tensors) to the host and back; %.3f s stalled on the link in %d "
               "iterations\n",
               fg_bytes_str(b3, sizeof b3, (double)pol.st.offload_bytes_per_iter), pol.st.n_offload_tensors,
               pol.st.link.stall_seconds, pol.done);
        printf("  iteration      %.3f s under %s vs %.3f s for the oracle (%+.1f%%; medians)\n", it_p, pname, it_o,
               pct(it_p, it_o));
        printf("  loss           %.4f at the first iteration, %.4f over the last %d; the first %d %s the oracle's%s\n",
               pol.done ? pol.loss[0] : NAN, end, last, cmp, dmax == 0 ? "equal" : "differ from",
               dmax == 0 ? " bit for bit" : "");
        if (dmax != 0) printf("                 (by up to %.3g: the policy changed conv algorithms)\n", dmax);
        if (!no_plot) {
            const char *labels[2] = {"none (oracle)", pname};
            const fg_vmem_trace_event *ev[2] = {orc.ev, pol.ev};
            size_t n_ev[2] = {orc.n_ev, pol.n_ev};
            char title[256], why[512];
            snprintf(title, sizeof title, "%s on %s, batch %d: device memory over one training iteration (budget %s)",
                     VMEM_MODEL, VMEM_DATA, VMEM_BATCH, fg_bytes_str(b4, sizeof b4, (double)budget));
            if (cli_plot_memory(png, title, 2, labels, ev, n_ev, why, sizeof why))
                printf("  plot           %s (memory over one iteration: none and %s)\n", png, pname);
            else
                printf("  plot           not drawn: %s\n", why);
        }
    }
    vrun_free(&orc);
    vrun_free(&ref);
    vrun_free(&bad);
    vrun_free(&pol);
    return rc;
}

int cmd_demo(int argc, char **argv) {
    cli_train_args a;
    cli_train_args_init(&a);
    const char *plot = "demo-lenet.png", *vmem_plot = "demo-vmem.png";
    int no_plot = 0, no_vmem = 0, vmem_iters = VMEM_ITERS, no_lstm = 0, no_rl = 0, no_vit = 0;
    double scale = 1.0;
    cli_opt opts[] = {
        {"epochs", CLI_INT, &a.epochs, "N", "epochs (default 20, as frugal train on mnist)", 0},
        {"threads", CLI_INT, &a.threads, "T", "threads (default 0 = all cores)", 0},
        {"data-dir", CLI_STR, &a.data_dir, "DIR", "data directory (default $FRUGAL_DATA or ~/.cache/frugal)", 0},
        {"json", CLI_STR, &a.json, "FILE", "write the results as JSON (as frugal train --json)", 0},
        {"plot", CLI_STR, &plot, "FILE", "learning-curve PNG (default demo-lenet.png; needs gnuplot)", 0},
        {"no-plot", CLI_FLAG, &no_plot, NULL, "do not draw the plots", 0},
        {"no-vmem", CLI_FLAG, &no_vmem, NULL, "skip the vmem part (training under a device-memory budget)", 0},
        {"vmem-iters", CLI_INT, &vmem_iters, "N", "training iterations of the vmem part (default 250, about 45 s on 2 cores)", 0},
        {"vmem-plot", CLI_STR, &vmem_plot, "FILE", "memory-over-time PNG of the vmem part (default demo-vmem.png)", 0},
        {"no-lstm", CLI_FLAG, &no_lstm, NULL, "skip the sparse LSTM part", 0},
        {"no-rl", CLI_FLAG, &no_rl, NULL, "skip the GA3C part", 0},
        {"no-vit", CLI_FLAG, &no_vit, NULL, "skip the dynamic ViT part", 0},
        {"scale", CLI_FLOAT, &scale, "F", "length of the LSTM, GA3C and ViT parts, 1 = about a minute each (default 1)", 0},
        {"quiet", CLI_FLAG, &a.quiet, NULL, "no progress line", 0},
        {"verbose", CLI_FLAG, &a.verbose, NULL, "debug messages", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"demo", "frugal demo [options]",
                   "Trains LeNet-5 on MNIST with the defaults of 'frugal train --model lenet --data mnist',\n"
                   "prints the test accuracy and a summary, and plots the learning curve with gnuplot.\n"
                   "Then (vmem, after vDNN) trains GoogLeNet on Fashion-MNIST under a device-memory budget\n"
                   "that network-wide allocation cannot fit, offloading activations to host memory, and\n"
                   "compares memory and time with an unlimited oracle (plot: memory over one iteration).\n"
                   "Then the sparse LSTM (dense against structured backward on the Brown language model),\n"
                   "GA3C (learning Breakout) and dynamic ViT (the governor following a changing budget).\n"
                   "The data must be fetched first: scripts/fetch-data.sh (scripts/demo.sh does it).",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    cli_log_init(a.verbose);
    if (no_plot && cli_find(opts, "plot")->set) return cli_usage_error(&cmd, "demo: --plot with --no-plot: expected one");
    a.set_epochs = cli_find(opts, "epochs")->set;

    /* a friendlier message than the loader's when the data was never fetched */
    fg_data_split probe;
    fg_status s = fg_data_split_load("mnist", a.data_dir, &probe);
    if (s != FG_OK) {
        fprintf(stderr, "frugal: demo: %s\n", fg_last_error());
        fprintf(stderr, "frugal: demo: fetch the data sets first:  bash scripts/fetch-data.sh\n");
        return CLI_EXIT_FAIL;
    }
    fg_data_split_free(&probe);
    if (!(scale > 0 && scale <= 10)) return cli_usage_error(&cmd, "--scale %g: expected a factor in (0, 10]", scale);
    if (vmem_iters < 2) return cli_usage_error(&cmd, "--vmem-iters must be >= 2, got %d", vmem_iters);
    /* the vmem part's images, prepared now so that missing data fails before any training */
    fg_dataset vtrain;
    memset(&vtrain, 0, sizeof vtrain);
    if (!no_vmem) {
        s = fg_data_split_load(VMEM_DATA, a.data_dir, &probe);
        if (s != FG_OK) {
            fprintf(stderr, "frugal: demo: %s\n", fg_last_error());
            fprintf(stderr, "frugal: demo: fetch the data sets first:  bash scripts/fetch-data.sh  (or skip this part: --no-vmem)\n");
            return CLI_EXIT_FAIL;
        }
        int64_t n = (int64_t)vmem_iters * VMEM_BATCH;
        if (n > probe.train.n) n = probe.train.n - probe.train.n % VMEM_BATCH;
        s = upscale_subset(&probe.train, n, VMEM_SCALE, &vtrain);
        fg_data_split_free(&probe);
        if (s != FG_OK) return cli_fail("demo", s);
    }

    printf("frugal demo: LeNet-5 on MNIST\n");
    fflush(stdout);
    cli_train_result r;
    rc = cli_train_run(&cmd, &a, &r);
    if (rc != CLI_EXIT_OK) {
        fg_dataset_free(&vtrain);
        return rc;
    }

    double best = 0;
    int best_ep = 0;
    for (int i = 0; i < r.n_epochs; i++)
        if (r.hist[i].test_acc > best) {
            best = r.hist[i].test_acc;
            best_ep = i + 1;
        }
    printf("\nsummary\n");
    printf("  model          %s (batch %lld, %s lr %g x%g per epoch, seed %llu, %d threads)\n", r.model, (long long)r.batch,
           r.optim, r.lr, r.lr_decay, (unsigned long long)a.seed, fg_threads_get());
    printf("  data           %s: %lld training images, %lld test images\n", r.data, (long long)r.n_train,
           (long long)r.n_test);
    printf("  epochs         %d in %.1f s (%.1f s per epoch)\n", r.n_epochs, r.seconds,
           r.n_epochs ? r.seconds / r.n_epochs : 0.0);
    if (r.n_epochs)
        printf("  final loss     %.4f, train accuracy %.4f; best test accuracy %.4f (epoch %d)\n",
               r.hist[r.n_epochs - 1].loss, r.hist[r.n_epochs - 1].train_acc, best, best_ep);
    if (!no_plot) {
        char why[512];
        if (plot_curve(&r, plot, why, sizeof why)) printf("  plot           %s (loss and accuracy per epoch)\n", plot);
        else printf("  plot           not drawn: %s\n", why);
    }
    printf("test accuracy: %.4f\n", r.test_acc);
    free(r.hist);
    if (!no_vmem) {
        fflush(stdout);
        fg_threads_set(a.threads);
        rc = demo_vmem(&vtrain, a.quiet, no_plot, vmem_plot);
        fg_dataset_free(&vtrain);
    }
    demo_opts o = {a.data_dir, a.threads, a.quiet, no_plot, NULL, scale};
    int (*const parts[])(const demo_opts *) = {demo_lstm, demo_rl, demo_vit};
    const int skip[] = {no_lstm, no_rl, no_vit};
    for (size_t k = 0; k < sizeof parts / sizeof parts[0] && rc == CLI_EXIT_OK; k++) {
        if (skip[k]) continue;
        fflush(stdout);
        fg_threads_set(a.threads);
        rc = parts[k](&o);
    }
    return rc;
}
