/* `frugal vit run` (issue 14): a stream of test inputs, one per frame at batch 1, under a budget
 * that changes per frame, with the run-time governor (fg_vit_governor_*) choosing the skip
 * configuration of every frame from a profile table (`frugal vit profile --json`, read back by
 * fg_vit_table_load) and correcting its latencies from the measured ones as it runs.
 *
 * The table's latencies were measured per item at the profile's batch size, possibly under other
 * load; the run first calibrates them: every entry runs a few frames at batch 1 and its median
 * becomes the governor's starting latency (and the full model's, the scale of --budget-swing).
 * Then every frame runs the governor and, right after it on the same input, every static
 * configuration of the table (the full model among them), so that all of them meet the same load
 * at the same moment: a fair comparison on a shared machine. The report gives, for each, the
 * deadline hit rate and the mean accuracy (or mIoU), names the best static configuration that
 * meets the deadline-rate target, and says whether the governor meets it and beats that one.
 * The run engine is shared with the demo (tools/vit_common.h). */
#include <math.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "plot.h"
#include "vit_common.h"

/* ---------------------------------------------------------------- engine */

/* A frame over this many times its budget is counted as preempted (reported, not excluded). */
#define PREEMPTED 5.0

/* The clock of every latency: wall time (the deadline's), or this thread's CPU time, which leaves
 * out the time the thread was not running (preempted by other load on a shared machine; only
 * meaningful with one thread). */
static double clock_now(int cpu) { return cpu ? fg_time_thread_cpu() : fg_time_now(); }

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v[0..n) and returns its q-quantile (nearest rank). */
static double quantile(double *v, size_t n, double q) {
    if (n == 0) return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    size_t k = (size_t)ceil(q * (double)n);
    return v[k > 0 ? k - 1 : 0];
}

/* One inference of item `item` of s at batch 1: the input in, the forward, the logits out. */
typedef struct frame_io {
    float *x;
    int32_t *y;
    float *logits;
    size_t nlog;
} frame_io;

static fg_status frame_io_init(vit_model *m, const vit_split *s, frame_io *io) {
    memset(io, 0, sizeof *io);
    const fg_tinfo *li = fg_graph_tinfo(m->g, m->logits);
    io->nlog = (size_t)fg_tensor_numel(&li->t);
    io->x = malloc(vit_split_image_values(s) * sizeof(float));
    io->y = malloc(vit_split_labels_per_item(s) * sizeof(int32_t));
    io->logits = malloc(io->nlog * sizeof(float));
    if (!io->x || !io->y || !io->logits) return fg_fail(FG_ERR_OOM, "vit run: out of host memory");
    return FG_OK;
}

static void frame_io_free(frame_io *io) {
    free(io->x);
    free(io->y);
    free(io->logits);
}

/* Gathers the item (untimed: the frame "arrives"). */
static void frame_load(const vit_split *s, int64_t item, frame_io *io) { vit_gather(s, &item, 1, 1, io->x, io->y); }

static fg_status frame_infer(vit_model *m, const vit_split *s, frame_io *io) {
    FG_TRY(fg_graph_set_input(m->g, m->input, io->x, vit_split_image_values(s) * sizeof(float)));
    FG_TRY(fg_graph_forward(m->g));
    return fg_graph_read(m->g, m->logits, io->logits, io->nlog * sizeof(float));
}

size_t vit_run_full_entry(const fg_vit_profile_entry *t, size_t n) {
    fg_vit_skip none;
    memset(&none, 0, sizeof none);
    size_t best = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&t[i].skip, &none, sizeof none) == 0) return i;
        if (t[i].flops > t[best].flops) best = i;
    }
    return best;
}

fg_status vit_run_calibrate(vit_model *m, const vit_split *s, fg_vit_profile_entry *t, size_t n, int frames,
                            int cpu_clock, double *apply_s) {
    FG_ASSERT(frames >= 1 && m->batch == 1);
    frame_io io;
    fg_status st = frame_io_init(m, s, &io);
    double *v = malloc((size_t)frames * n * sizeof *v); /* [entry][frame] */
    if (st == FG_OK && !v) st = fg_fail(FG_ERR_OOM, "vit run: out of host memory");
    double apply_sum = 0.0;
    fg_graph_set_training(m->g, 0);
    /* round robin over the entries, as the stream runs them (every inference right after a
     * switch, with the other configurations' work in between); f = -1 is a discarded warm-up
     * (oneDNN's primitives, first touches) */
    for (int f = -1; st == FG_OK && f < frames; f++)
        for (size_t i = 0; st == FG_OK && i < n; i++) {
            const double a0 = fg_time_now();
            st = fg_vit_skip_apply(m->g, &t[i].skip);
            if (f >= 0) apply_sum += fg_time_now() - a0;
            frame_load(s, f < 0 ? 0 : f % s->n, &io);
            const double t0 = clock_now(cpu_clock);
            if (st == FG_OK) st = frame_infer(m, s, &io);
            if (f >= 0) v[i * (size_t)frames + (size_t)f] = clock_now(cpu_clock) - t0;
        }
    for (size_t i = 0; st == FG_OK && i < n; i++) t[i].seconds = quantile(v + i * (size_t)frames, (size_t)frames, 0.5);
    *apply_s = n ? apply_sum / (double)(n * (size_t)frames) : 0.0;
    free(v);
    frame_io_free(&io);
    return st;
}

void vit_run_swing(double lo, double hi, double full_s, int64_t seg, int64_t frames, double *out) {
    const double phi = 0.6180339887498949;
    for (int64_t f = 0; f < frames; f++) {
        const double k = (double)(f / (seg > 0 ? seg : 1)) + 1.0; /* segment 0 starts at frac(phi) */
        const double u = k * phi - floor(k * phi);
        out[f] = full_s * (lo + (hi - lo) * u);
    }
}

void vit_run_result_free(vit_run_result *r) {
    free(r->stat);
    free(r->budget);
    free(r->gov_s);
    free(r->full_s);
    free(r->pick);
    memset(r, 0, sizeof *r);
}

fg_status vit_run_stream(vit_model *m, const vit_split *s, const fg_vit_profile_entry *t, size_t n,
                         const double *budget, int64_t frames, double miss_target, int cpu_clock, int quiet,
                         vit_run_result *r) {
    FG_ASSERT(m->batch == 1 && n >= 1 && frames >= 1);
    memset(r, 0, sizeof *r);
    r->frames = frames;
    r->n = n;
    const size_t F = (size_t)frames, full = vit_run_full_entry(t, n);
    r->stat = calloc(n, sizeof *r->stat);
    r->budget = malloc(F * sizeof *r->budget);
    r->gov_s = malloc(F * sizeof *r->gov_s);
    r->full_s = malloc(F * sizeof *r->full_s);
    r->pick = malloc(F * sizeof *r->pick);
    vit_score *sc = calloc(n + 1, sizeof *sc); /* [0] the governor, [1 + j] static j */
    double *lat = malloc(F * (n + 1) * sizeof *lat);  /* per run, per frame */
    frame_io io;
    fg_status st = frame_io_init(m, s, &io);
    if (st == FG_OK && !(r->stat && r->budget && r->gov_s && r->full_s && r->pick && sc && lat))
        st = fg_fail(FG_ERR_OOM, "vit run: out of host memory for %lld frames", (long long)frames);
    fg_vit_governor *g = NULL;
    fg_vit_governor_cfg gc = fg_vit_governor_defaults();
    gc.miss_target = miss_target;
    if (st == FG_OK) st = fg_vit_governor_create(t, n, &gc, &g);
    const fg_tinfo *li = fg_graph_tinfo(m->g, m->logits);
    for (size_t j = 0; j <= n && st == FG_OK; j++) sc[j].k = (int32_t)li->t.shape[1];
    cli_progress prog;
    cli_progress_init(&prog);
    fg_graph_set_training(m->g, 0);
    double pick_sum = 0, apply_sum = 0, obs_sum = 0, infer_sum = 0;
    const double t_start = fg_time_now();
    for (size_t f = 0; st == FG_OK && f < F; f++) {
        if (cli_stop_flag) {
            st = fg_fail(FG_ERR_INVALID, "interrupted at frame %zu: no results written", f);
            break;
        }
        const double b = budget[f];
        r->budget[f] = b;
        frame_load(s, (int64_t)(f % (size_t)s->n), &io);
        /* the governor: pick, switch, infer; all timed as the frame's latency */
        const double t0 = clock_now(cpu_clock);
        int fits = 0;
        const size_t i = fg_vit_governor_choose(g, b, &fits);
        const double t1 = clock_now(cpu_clock);
        st = fg_vit_skip_apply(m->g, &t[i].skip);
        const double t2 = clock_now(cpu_clock);
        if (st == FG_OK) st = frame_infer(m, s, &io);
        const double t3 = clock_now(cpu_clock);
        if (st != FG_OK) break;
        const double sec = t3 - t0;
        r->no_fit += !fits;
        r->pick[f] = i;
        r->gov_s[f] = sec;
        lat[f] = sec;
        r->gov.hits += sec <= b;
        r->gov.preempted += sec > PREEMPTED * b;
        vit_score_batch(&sc[0], s, io.logits, io.y, 1);
        st = fg_vit_governor_observe(g, i, sec, b);
        obs_sum += clock_now(cpu_clock) - t3;
        pick_sum += t1 - t0;
        apply_sum += t2 - t1;
        infer_sum += t3 - t2;
        /* every static configuration on the same input: switched untimed (it never switches) */
        for (size_t j = 0; st == FG_OK && j < n; j++) {
            st = fg_vit_skip_apply(m->g, &t[j].skip);
            const double u0 = clock_now(cpu_clock);
            if (st == FG_OK) st = frame_infer(m, s, &io);
            const double u = clock_now(cpu_clock) - u0;
            if (st != FG_OK) break;
            lat[(1 + j) * F + f] = u;
            r->stat[j].hits += u <= b;
            r->stat[j].preempted += u > PREEMPTED * b;
            if (j == full) r->full_s[f] = u;
            vit_score_batch(&sc[1 + j], s, io.logits, io.y, 1);
        }
        if (!quiet && st == FG_OK) {
            char bar[40], line[256];
            cli_bar(bar, sizeof bar, (double)(f + 1) / (double)F, 24);
            snprintf(line, sizeof line, "vit run %s %zu/%zu frames  governor: %.2f%% of deadlines met, %.1f s", bar,
                     f + 1, F, 100.0 * (double)r->gov.hits / (double)(f + 1), fg_time_now() - t_start);
            cli_progress_show(&prog, line, f + 1 == F);
        }
    }
    cli_progress_clear(&prog);
    if (st == FG_OK) {
        const int seg = s->lh > 0;
        for (size_t j = 0; j <= n; j++) {
            vit_run_stats *o = j == 0 ? &r->gov : &r->stat[j - 1];
            o->metric = vit_score_value(&sc[j], seg);
            double sum = 0;
            for (size_t f = 0; f < F; f++) sum += lat[j * F + f];
            o->mean_s = sum / (double)F;
            o->p99_s = quantile(lat + j * F, F, 0.99);
        }
        r->pick_s = pick_sum / (double)F;
        r->apply_s = apply_sum / (double)F;
        r->observe_s = obs_sum / (double)F;
        r->infer_s = infer_sum / (double)F;
        fg_vit_governor_get_stats(g, &r->gs);
    } else {
        vit_run_result_free(r);
    }
    fg_vit_governor_free(g);
    free(sc);
    free(lat);
    frame_io_free(&io);
    return st;
}

int vit_run_plot(const char *png, const char *title, const char *metric, const fg_vit_profile_entry *t,
                 const vit_run_result *r, char *why, size_t why_len) {
    cli_gnuplot gp;
    if (!cli_gnuplot_open(&gp, png, 1100, 560, why, why_len)) return 0;
    FILE *f = gp.f;
    fprintf(f, "set title ");
    cli_gnuplot_str(f, title);
    fprintf(f, "\nset xlabel 'frame'\nset ylabel 'milliseconds'\nset y2label ");
    char m2[96];
    snprintf(m2, sizeof m2, "chosen configuration's profiled %s", metric);
    cli_gnuplot_str(f, m2);
    fprintf(f, "\nset ytics nomirror\nset y2tics\nset grid\nset key outside bottom center horizontal\n");
    /* latencies of preempted frames can be 100x the budget: the axis stops at 2.5x the largest
     * budget and such frames sit on the top edge */
    double bmax = 0;
    for (int64_t i = 0; i < r->frames; i++)
        if (r->budget[i] > bmax) bmax = r->budget[i];
    const double top = 2.5 * bmax * 1e3;
    fprintf(f, "set yrange [0:%.6f]\nset y2range [0:1]\n", top);
    fprintf(f, "plot '-' using 1:2 with lines lw 2 lc rgb '#000000' title 'budget', "
               "'-' using 1:2 with points pt 7 ps 0.3 lc rgb '#d62728' title 'full model latency', "
               "'-' using 1:2 with points pt 7 ps 0.3 lc rgb '#1f77b4' title 'governor latency', "
               "'-' using 1:2 with steps lc rgb '#2ca02c' title 'chosen configuration (metric, right axis)' axes x1y2\n");
    for (int k = 0; k < 4; k++) {
        for (int64_t i = 0; i < r->frames; i++) {
            double v = k == 0 ? r->budget[i] * 1e3 : k == 1 ? r->full_s[i] * 1e3 : k == 2 ? r->gov_s[i] * 1e3
                                                                                   : t[r->pick[i]].metric;
            if (k == 1 || k == 2) v = v < top ? v : top;
            fprintf(f, "%lld %.6f\n", (long long)i, v);
        }
        fprintf(f, "e\n");
    }
    return cli_gnuplot_close(&gp, why, why_len);
}

/* ---------------------------------------------------------------- the budget trace file */

/* Reads per-frame budgets in milliseconds, one per line ('#' comments and blank lines skipped),
 * into *out (seconds). FG_ERR_FORMAT naming the file and line for anything else. A regular file
 * only: /dev/zero or a pipe never ends (NUL bytes looked like blank lines). */
static fg_status read_trace(const char *path, double **out, int64_t *n_out) {
    *out = NULL;
    *n_out = 0;
    FILE *fp = fopen(path, "r");
    if (!fp) return fg_fail(FG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb; /* a file or a pipe ends; a device such as /dev/zero never does */
    if (fstat(fileno(fp), &sb) != 0 || !(S_ISREG(sb.st_mode) || S_ISFIFO(sb.st_mode))) {
        fclose(fp);
        return fg_fail(FG_ERR_FORMAT, "%s: not a regular file or a pipe (expected a text file of budgets)", path);
    }
    size_t cap = 256, n = 0;
    double *v = malloc(cap * sizeof *v);
    char line[256];
    long ln = 0;
    fg_status st = v ? FG_OK : fg_fail(FG_ERR_OOM, "out of memory");
    int c = 0;
    while (st == FG_OK && c != EOF) {
        /* one line, byte by byte: a NUL is refused where it is (fgets would hide it) */
        size_t len = 0;
        while ((c = getc(fp)) != EOF && c != '\n' && c != 0 && len < sizeof line - 1) line[len++] = (char)c;
        line[len] = 0;
        if (c == EOF && len == 0) break;
        ln++;
        if (c == 0) {
            st = fg_fail(FG_ERR_FORMAT, "%s:%ld: a NUL byte (expected text: one number per line)", path, ln);
            break;
        }
        if (c != '\n' && c != EOF) {
            st = fg_fail(FG_ERR_FORMAT, "%s:%ld: line longer than %zu bytes", path, ln, sizeof line - 2);
            break;
        }
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == 0) continue;
        char *end = NULL;
        const double ms = strtod(p, &end);
        while (end && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) end++;
        if (end == p || !end || *end != 0 || !isfinite(ms) || !(ms > 0)) {
            line[strcspn(line, "\r\n")] = 0;
            st = fg_fail(FG_ERR_FORMAT, "%s:%ld: expected a budget in milliseconds (a number > 0), got '%.60s'",
                         path, ln, line);
            break;
        }
        if (n == cap) {
            double *nv = realloc(v, 2 * cap * sizeof *v);
            if (!nv) {
                st = fg_fail(FG_ERR_OOM, "out of memory");
                break;
            }
            v = nv;
            cap *= 2;
        }
        v[n++] = ms * 1e-3;
    }
    if (st == FG_OK && ferror(fp)) st = fg_fail(FG_ERR_IO, "%s: read error", path);
    fclose(fp);
    if (st == FG_OK && n == 0) st = fg_fail(FG_ERR_FORMAT, "%s: no budgets (one number of milliseconds per line)", path);
    if (st != FG_OK) {
        free(v);
        return st;
    }
    *out = v;
    *n_out = (int64_t)n;
    return FG_OK;
}

/* ---------------------------------------------------------------- the command */

int cmd_vit_run(int argc, char **argv) {
    const char *file = NULL, *table_path = NULL, *trace = NULL, *swing = NULL, *data = NULL, *data_dir = NULL;
    const char *json = NULL, *plot = NULL;
    double budget_ms = 0, rate = 0.99;
    int64_t frames = 0, seg_len = 50;
    int threads = 1, calib = 20, quiet = 0;
    const char *clock_name = "wall";
    cli_opt opts[] = {
        {"model", CLI_STR, &file, "FILE", "weights written by frugal vit train --save (required)", 0},
        {"table", CLI_STR, &table_path, "FILE", "the profile of that model, frugal vit profile --json (required)", 0},
        {"budget-ms", CLI_FLOAT, &budget_ms, "X", "the same budget for every frame, in milliseconds", 0},
        {"budget-trace", CLI_STR, &trace, "FILE", "per-frame budgets in milliseconds, one per line ('#' comments)", 0},
        {"budget-swing", CLI_STR, &swing, "LO:HI",
         "budgets swinging between LO and HI times the full model's calibrated latency (e.g. 0.4:1):\n"
         "every --segment frames a jump to the next golden-ratio step of [LO, HI]", 0},
        {"segment", CLI_I64, &seg_len, "N", "frames between the jumps of --budget-swing (default 50)", 0},
        {"frames", CLI_I64, &frames, "N", "frames to run (default: the trace's length, else 2000); test items repeat", 0},
        {"data", CLI_STR, &data, "NAME", "fashion, mnist or scenes (default: the one recorded in FILE)", 0},
        {"data-dir", CLI_STR, &data_dir, "DIR", "data directory (default $FRUGAL_DATA or ~/.cache/frugal)", 0},
        {"calibrate", CLI_INT, &calib, "N", "frames per configuration to measure its batch-1 latency first (default 20)", 0},
        {"deadline-rate", CLI_FLOAT, &rate, "R", "deadlines to meet, the governor's target (default 0.99)", 0},
        {"clock", CLI_STR, &clock_name, "wall|cpu",
         "what a latency is: wall time (default; the deadline's), or the thread's CPU time, which leaves\n"
         "out time preempted by other load on a shared machine (needs --threads 1)", 0},
        {"threads", CLI_INT, &threads, "T", "threads (default 1: at batch 1 a small model gains nothing from more)", 0},
        {"json", CLI_STR, &json, "FILE", "write the results, the calibration and the governor's frames as JSON", 0},
        {"plot", CLI_STR, &plot, "FILE.png", "plot budget and latency per frame and the chosen configuration (gnuplot)", 0},
        {"quiet", CLI_FLAG, &quiet, NULL, "no progress line", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"vit run",
                   "frugal vit run --model FILE --table FILE (--budget-ms X | --budget-trace FILE | --budget-swing LO:HI) [options]",
                   "Runs a stream of test inputs (batch 1, one per frame) under a per-frame latency budget. The\n"
                   "governor picks, per frame, the most accurate configuration of the table's Pareto front whose\n"
                   "predicted latency (times a safety margin) fits, switches the executor to it and corrects its\n"
                   "predictions from the measured time. Latencies are calibrated at batch 1 first. Every frame\n"
                   "also runs every static configuration of the table on the same input; the report gives the\n"
                   "deadline hit rate and mean accuracy (mIoU for scenes) of each and of the governor.",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    if (!file) return cli_usage_error(&cmd, "vit run: --model FILE is required");
    if (!table_path) return cli_usage_error(&cmd, "vit run: --table FILE is required (written by frugal vit profile --json)");
    const int n_budget = cli_find(opts, "budget-ms")->set + (trace != NULL) + (swing != NULL);
    if (n_budget != 1)
        return cli_usage_error(&cmd, "vit run: give exactly one of --budget-ms, --budget-trace and --budget-swing (got %d)",
                               n_budget);
    if (cli_find(opts, "budget-ms")->set && !(budget_ms > 0 && isfinite(budget_ms)))
        return cli_usage_error(&cmd, "vit run: --budget-ms must be > 0, got %g", budget_ms);
    double lo = 0, hi = 0;
    if (swing) {
        char tail = 0;
        if (sscanf(swing, "%lf:%lf%c", &lo, &hi, &tail) != 2 || !(lo > 0) || !(hi >= lo) || !isfinite(hi))
            return cli_usage_error(&cmd, "vit run: --budget-swing '%s': expected LO:HI with 0 < LO <= HI (e.g. 0.4:1)", swing);
    }
    if (seg_len < 1) return cli_usage_error(&cmd, "vit run: --segment must be >= 1");
    if (cli_find(opts, "segment")->set && !swing)
        return cli_usage_error(&cmd, "vit run: --segment applies with --budget-swing (frames between its jumps)");
    if (frames < 0) return cli_usage_error(&cmd, "vit run: --frames must be >= 0");
    if (calib < 1) return cli_usage_error(&cmd, "vit run: --calibrate must be >= 1");
    if (!(rate > 0 && rate < 1)) return cli_usage_error(&cmd, "vit run: --deadline-rate must be in (0, 1), got %g", rate);
    if (threads < 0) return cli_usage_error(&cmd, "vit run: --threads must be >= 0");
    if (strcmp(clock_name, "wall") && strcmp(clock_name, "cpu"))
        return cli_usage_error(&cmd, "vit run: --clock '%s': expected wall or cpu", clock_name);
    const int cpu_clock = strcmp(clock_name, "cpu") == 0;
    if (cpu_clock && threads != 1)
        return cli_usage_error(&cmd, "vit run: --clock cpu measures the calling thread only: it needs --threads 1");
    if (plot) {
        int prc = cli_plot_option_check(&cmd, plot);
        if (prc != CLI_CONTINUE) return prc;
    }
    vit_meta meta;
    fg_status s = vit_read_meta(file, &meta);
    if (s != FG_OK) return cli_fail("--model", s);
    fg_vit_table table;
    s = fg_vit_table_load(table_path, &table);
    if (s != FG_OK) return cli_fail("--table", s);
    if (strcmp(table.model, meta.model) != 0) {
        fprintf(stderr, "frugal: --table: %s profiles %s, but %s holds %s\n", table_path, table.model, file, meta.model);
        fg_vit_table_free(&table);
        return CLI_EXIT_FAIL;
    }
    if (!data) data = meta.data;
    if (strcmp(data, "fashion") && strcmp(data, "mnist") && strcmp(data, "scenes")) {
        fg_vit_table_free(&table);
        return cli_usage_error(&cmd, "vit run: unknown --data '%s' (fashion, mnist or scenes)", data);
    }
    if (!vit_model_fits_data(meta.model, data)) {
        fg_vit_table_free(&table);
        return cli_usage_error(&cmd, "vit run: %s holds %s, which does not fit --data %s", file, meta.model, data);
    }
    double *trace_b = NULL;
    int64_t trace_n = 0;
    if (trace) {
        s = read_trace(trace, &trace_b, &trace_n);
        if (s != FG_OK) {
            fg_vit_table_free(&table);
            return cli_fail("--budget-trace", s);
        }
    }
    if (frames == 0) frames = trace ? trace_n : 2000;
    fg_threads_set(threads);
    vit_data d;
    s = vit_data_load(data, data_dir, 1, 1, 0, meta.seed, NULL, &d);
    if (s != FG_OK) {
        free(trace_b);
        fg_vit_table_free(&table);
        return cli_fail("loading data", s);
    }
    fg_pool *pool = NULL;
    vit_model m = {0};
    rc = CLI_EXIT_OK;
    s = fg_pool_create(&pool, 0);
    if (s != FG_OK) rc = cli_fail("device pool", s);
    if (rc == CLI_EXIT_OK) {
        s = vit_model_build(meta.model, 1, meta.c, meta.h, meta.w, meta.classes, 0, pool, &m);
        if (s != FG_OK) rc = cli_fail("building the model", s);
    }
    if (rc == CLI_EXIT_OK) {
        s = fg_vit_weights_load(m.g, file);
        if (s != FG_OK) rc = cli_fail("--model", s);
    }
    /* the governor's table: the Pareto front, plus the full model (all-on, the profile's first
     * measurement) when it is not on the front, so that "always the full model" is measured too;
     * latencies calibrated at batch 1 */
    size_t n = table.n_front, all_on = SIZE_MAX;
    {
        fg_vit_skip none;
        memset(&none, 0, sizeof none);
        int on_front = 0;
        for (size_t i = 0; i < table.n_front; i++) on_front |= memcmp(&table.front[i].skip, &none, sizeof none) == 0;
        for (size_t i = 0; i < table.n_all && !on_front && all_on == SIZE_MAX; i++)
            if (memcmp(&table.all[i].skip, &none, sizeof none) == 0) all_on = i;
        n += all_on != SIZE_MAX;
    }
    fg_vit_profile_entry *t = malloc(n * sizeof *t), *prof = malloc(n * sizeof *prof);
    double *budget = malloc((size_t)frames * sizeof *budget);
    if (rc == CLI_EXIT_OK && (!t || !prof || !budget)) rc = cli_fail("vit run", fg_fail(FG_ERR_OOM, "out of host memory"));
    double apply_cal = 0;
    if (rc == CLI_EXIT_OK) {
        /* ToMe entries change token counts, i.e. the graph's shapes: one graph runs every other
         * knob of the front, so they are left out (`vit profile` without --tome makes none) */
        size_t kept = 0, tome_out = 0;
        for (size_t i = 0; i < table.n_front; i++) {
            int tome = 0;
            for (int b = 0; b < FG_VIT_MAX_BLOCKS; b++) tome |= table.front[i].skip.tome[b] != 0;
            if (tome) tome_out++;
            else prof[kept++] = table.front[i];
        }
        if (tome_out)
            fprintf(stderr, "vit run: %zu ToMe entries of the front left out (a ToMe schedule needs its own graph; "
                            "vit run switches the other knobs on one)\n", tome_out);
        if (all_on != SIZE_MAX) prof[kept++] = table.all[all_on];
        n = kept;
        if (n == 0) rc = cli_fail("--table", fg_fail(FG_ERR_INVALID, "%s: no entry without ToMe to run", table_path));
        memcpy(t, prof, n * sizeof *t);
        for (size_t i = 0; i < n && rc == CLI_EXIT_OK; i++) {
            s = fg_vit_skip_apply(m.g, &t[i].skip);
            if (s != FG_OK) rc = cli_fail("--table", s);
        }
    }
    if (rc == CLI_EXIT_OK) {
        if (!quiet) fprintf(stderr, "vit run: calibrating %zu configurations at batch 1 (%d frames each)\n", n, calib);
        s = vit_run_calibrate(&m, &d.test, t, n, calib, cpu_clock, &apply_cal);
        if (s != FG_OK) rc = cli_fail("calibrating", s);
    }
    const size_t full = vit_run_full_entry(t, n);
    if (rc == CLI_EXIT_OK) {
        for (int64_t f = 0; f < frames; f++) budget[f] = budget_ms * 1e-3;
        if (trace)
            for (int64_t f = 0; f < frames; f++) budget[f] = trace_b[f % trace_n];
        if (swing) vit_run_swing(lo, hi, t[full].seconds, seg_len, frames, budget);
    }
    const char *mname = d.seg ? "mIoU" : "accuracy";
    vit_run_result r;
    memset(&r, 0, sizeof r);
    if (rc == CLI_EXIT_OK) {
        cli_sigint_install();
        s = vit_run_stream(&m, &d.test, t, n, budget, frames, 1.0 - rate, cpu_clock, quiet, &r);
        cli_sigint_restore();
        if (s != FG_OK) rc = vit_loop_fail("running", s);
    }
    /* the best static configuration that meets the rate */
    size_t best = SIZE_MAX;
    int gov_meets = 0, gov_beats = 0;
    if (rc == CLI_EXIT_OK) {
        for (size_t j = 0; j < n; j++)
            if ((double)r.stat[j].hits >= rate * (double)frames && (best == SIZE_MAX || r.stat[j].metric > r.stat[best].metric))
                best = j;
        gov_meets = (double)r.gov.hits >= rate * (double)frames;
        gov_beats = best == SIZE_MAX || r.gov.metric > r.stat[best].metric;
    }
    if (rc == CLI_EXIT_OK) {
        char kt[1024];
        printf("%s on %s: %lld frames at batch 1, %d thread(s), %zu configurations (the table's Pareto front%s), "
               "%s clock\n", meta.model, data, (long long)frames, fg_threads_get(), n,
               all_on != SIZE_MAX ? " and all-on" : "", cpu_clock ? "thread CPU" : "wall");
        printf("calibrated: the full model %.3f ms per frame at batch 1 (the profile: %.3f ms per item in batches); "
               "a switch %.1f us\n", t[full].seconds * 1e3, prof[full].seconds * 1e3, apply_cal * 1e6);
        if (swing)
            printf("budget: swinging between %.2f and %.2f of the full model's %.3f ms (a jump every %lld frames)\n", lo,
                   hi, t[full].seconds * 1e3, (long long)seg_len);
        else if (trace)
            printf("budget: %s, %lld budgets%s\n", trace, (long long)trace_n, trace_n < frames ? " (repeated)" : "");
        else
            printf("budget: %.3f ms every frame\n", budget_ms);
        printf("\n%-34s %9s %9s %9s %10s %9s\n", "configuration", "MFLOP", "profiled", "ms/frame", "deadlines", mname);
        printf("%-34s %9s %9s %9.3f %9.2f%% %9.4f\n", "governor", "-", "-", r.gov.mean_s * 1e3,
               100.0 * (double)r.gov.hits / (double)frames, r.gov.metric);
        for (size_t j = 0; j < n; j++) {
            fg_vit_skip_format(&t[j].skip, kt, sizeof kt);
            char name[64];
            snprintf(name, sizeof name, "%s%.*s%s", j == full ? "full: " : "", 28, kt, strlen(kt) > 28 ? "..." : "");
            printf("%-34s %9.3f %9.4f %9.3f %9.2f%% %9.4f%s\n", name, t[j].flops / 1e6, prof[j].metric,
                   r.stat[j].mean_s * 1e3, 100.0 * (double)r.stat[j].hits / (double)frames, r.stat[j].metric,
                   j == best ? "  <- best static meeting the rate" : "");
        }
        printf("\nsummary (vit run)\n");
        printf("  governor       %.2f%% of deadlines met (target %.2f%%): %s; %s %.4f\n",
               100.0 * (double)r.gov.hits / (double)frames, 100.0 * rate, gov_meets ? "met" : "NOT met", mname,
               r.gov.metric);
        printf("  misses         governor %lld, of which %lld over %gx the budget (most likely preempted: no "
               "configuration would have met them); full model %lld, of which %lld\n",
               (long long)(frames - r.gov.hits), (long long)r.gov.preempted, PREEMPTED,
               (long long)(frames - r.stat[full].hits), (long long)r.stat[full].preempted);
        printf("  full model     %.2f%% of deadlines met; %s %.4f\n", 100.0 * (double)r.stat[full].hits / (double)frames,
               mname, r.stat[full].metric);
        if (best != SIZE_MAX) {
            fg_vit_skip_format(&t[best].skip, kt, sizeof kt);
            printf("  best static    %s: %.2f%% of deadlines met; %s %.4f\n", kt,
                   100.0 * (double)r.stat[best].hits / (double)frames, mname, r.stat[best].metric);
        } else {
            printf("  best static    none of the %zu meets %.2f%% of deadlines\n", n, 100.0 * rate);
        }
        if (best != SIZE_MAX)
            printf("  verdict        the governor %s the rate and its %s %s every static configuration that does\n",
                   gov_meets ? "meets" : "does NOT meet", mname, gov_beats ? "beats" : "does NOT beat");
        else
            printf("  verdict        the governor %s the rate; no static configuration meets it\n",
                   gov_meets ? "meets" : "does NOT meet");
        printf("  cost           pick %.3f us, switch %.1f us, observe %.3f us per frame (each with a clock read); "
               "inference %.1f us (pick %.4f%% of it)\n",
               r.pick_s * 1e6, r.apply_s * 1e6, r.observe_s * 1e6, r.infer_s * 1e6, 100.0 * r.pick_s / r.infer_s);
        printf("  correction     drift %.3f, margin %.3f at the end; %lld frames where nothing fitted\n", r.gs.drift,
               r.gs.margin, (long long)r.no_fit);
    }
    if (rc == CLI_EXIT_OK && json) {
        cli_json j;
        s = cli_json_open(&j, json);
        if (s == FG_OK) {
            char kt[1024];
            cli_json_obj_begin(&j, NULL);
            cli_json_str(&j, "model", meta.model);
            cli_json_str(&j, "data", data);
            cli_json_str(&j, "metric", mname);
            cli_json_str(&j, "table", table_path);
            cli_json_int(&j, "frames", (long long)frames);
            cli_json_int(&j, "threads", fg_threads_get());
            cli_json_str(&j, "clock", clock_name);
            cli_json_num(&j, "deadline_rate", rate);
            cli_json_str(&j, "budget", swing ? "swing" : trace ? "trace" : "constant");
            if (swing) {
                cli_json_num(&j, "swing_lo", lo);
                cli_json_num(&j, "swing_hi", hi);
                cli_json_int(&j, "segment", (long long)seg_len);
            }
            cli_json_int(&j, "calibrate_frames", calib);
            cli_json_obj_begin(&j, "governor");
            cli_json_num(&j, "hit_rate", (double)r.gov.hits / (double)frames);
            cli_json_int(&j, "preempted_frames", (long long)r.gov.preempted);
            cli_json_num(&j, "metric", r.gov.metric);
            cli_json_num(&j, "mean_seconds", r.gov.mean_s);
            cli_json_num(&j, "p99_seconds", r.gov.p99_s);
            cli_json_num(&j, "pick_seconds", r.pick_s);
            cli_json_num(&j, "switch_seconds", r.apply_s);
            cli_json_num(&j, "observe_seconds", r.observe_s);
            cli_json_num(&j, "inference_seconds", r.infer_s);
            cli_json_num(&j, "drift", r.gs.drift);
            cli_json_num(&j, "margin", r.gs.margin);
            cli_json_int(&j, "no_fit_frames", (long long)r.no_fit);
            cli_json_int(&j, "meets_rate", gov_meets);
            cli_json_int(&j, "beats_best_static", gov_beats);
            cli_json_obj_end(&j);
            cli_json_arr_begin(&j, "static");
            for (size_t k = 0; k < n; k++) {
                fg_vit_skip_format(&t[k].skip, kt, sizeof kt);
                cli_json_obj_begin(&j, NULL);
                cli_json_str(&j, "skip", kt);
                cli_json_num(&j, "flops", t[k].flops);
                cli_json_num(&j, "profiled_metric", prof[k].metric);
                cli_json_num(&j, "profiled_seconds", prof[k].seconds);
                cli_json_num(&j, "calibrated_seconds", t[k].seconds);
                cli_json_num(&j, "hit_rate", (double)r.stat[k].hits / (double)frames);
                cli_json_int(&j, "preempted_frames", (long long)r.stat[k].preempted);
                cli_json_num(&j, "metric", r.stat[k].metric);
                cli_json_num(&j, "mean_seconds", r.stat[k].mean_s);
                cli_json_num(&j, "p99_seconds", r.stat[k].p99_s);
                cli_json_int(&j, "full", k == full);
                cli_json_int(&j, "best_meeting_rate", k == best);
                cli_json_obj_end(&j);
            }
            cli_json_arr_end(&j);
            cli_json_arr_begin(&j, "frames_budget_seconds");
            for (int64_t f = 0; f < frames; f++) cli_json_num(&j, NULL, r.budget[f]);
            cli_json_arr_end(&j);
            cli_json_arr_begin(&j, "frames_governor_seconds");
            for (int64_t f = 0; f < frames; f++) cli_json_num(&j, NULL, r.gov_s[f]);
            cli_json_arr_end(&j);
            cli_json_arr_begin(&j, "frames_governor_entry");
            for (int64_t f = 0; f < frames; f++) cli_json_int(&j, NULL, (long long)r.pick[f]);
            cli_json_arr_end(&j);
            cli_json_obj_end(&j);
            s = cli_json_close(&j);
        }
        if (s != FG_OK) rc = cli_fail("--json", s);
    }
    if (rc == CLI_EXIT_OK && plot) {
        char title[256], why[512];
        snprintf(title, sizeof title, "%s on %s: governor %.2f%% deadlines, %s %.4f; full model %.2f%%, %.4f", meta.model,
                 data, 100.0 * (double)r.gov.hits / (double)frames, mname, r.gov.metric,
                 100.0 * (double)r.stat[full].hits / (double)frames, r.stat[full].metric);
        if (!vit_run_plot(plot, title, mname, t, &r, why, sizeof why)) {
            fprintf(stderr, "frugal: --plot: %s\n", why);
            rc = CLI_EXIT_FAIL;
        }
    }
    vit_run_result_free(&r);
    free(t);
    free(prof);
    free(budget);
    free(trace_b);
    fg_graph_free(m.g);
    fg_pool_destroy(pool);
    vit_data_free(&d);
    fg_vit_table_free(&table);
    return rc;
}
