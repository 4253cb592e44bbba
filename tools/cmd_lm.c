/* `frugal lm train`: the sparse LSTM system's language model (include/frugal/lm.h) on a text
 * corpus in the data directory (Brown: scripts/fetch-data.sh brown). Prints a progress line and
 * one line per epoch (train and validation perplexity, seconds, the LSTM backwards' share), the
 * test perplexity at the end, and optionally writes the epochs as JSON and the validation
 * perplexity per epoch as a plot. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "frugal/lm.h"
#include "plot.h"

typedef struct lm_args {
    const char *data, *data_dir, *json, *plot, *variant, *schedule, *trace, *checkpoint, *resume, *save;
    int64_t hidden, embed, steps, batch, block, max_batches, eval_batches, eval_every, test_batches;
    int layers, epochs, decay_after, dense_epochs, dense_first, threads, quiet;
    double dropout, lr, lr_decay, clip, sparse, tau;
    uint64_t seed;
} lm_args;

typedef struct lm_ui {
    cli_progress prog;
    int epochs, quiet;
    int64_t words_per_batch;
    fg_lm_eval *curve; /* every validation point, for --json and --trace */
    size_t n_curve, cap_curve;
    int oom;
} lm_ui;

static void on_eval(const fg_lm_eval *e, void *user) {
    lm_ui *ui = user;
    if (ui->n_curve == ui->cap_curve) {
        size_t cap = ui->cap_curve ? 2 * ui->cap_curve : 64;
        fg_lm_eval *p = realloc(ui->curve, cap * sizeof *p);
        if (!p) {
            ui->oom = 1;
            return;
        }
        ui->curve = p;
        ui->cap_curve = cap;
    }
    ui->curve[ui->n_curve++] = *e;
    if (!ui->quiet && e->epochs_done != (double)(e->epoch + 1)) {
        cli_progress_clear(&ui->prog);
        printf("  epoch %6.2f  valid ppl %8.2f  after %.1f s of training\n", e->epochs_done, e->valid_ppl,
               e->train_seconds);
        fflush(stdout);
    }
}

static void on_batch(const fg_lm_progress *p, void *user) {
    lm_ui *ui = user;
    if (ui->quiet) return;
    double now = fg_time_now();
    if (now - ui->prog.last < ui->prog.interval && p->batch != 1) return;
    char bar[40], line[256];
    cli_bar(bar, sizeof bar, (double)p->batch / (double)p->batches, 24);
    double wps = p->seconds > 0 ? (double)(p->batch * ui->words_per_batch) / p->seconds : 0;
    snprintf(line, sizeof line, "epoch %d/%d %s %3.0f%%  ppl %.1f  %.0f words/s", p->epoch + 1, ui->epochs, bar,
             100.0 * (double)p->batch / (double)p->batches, exp(p->loss), wps);
    cli_progress_show(&ui->prog, line, p->batch == 1 && ui->prog.tty);
}

static void on_epoch(const fg_lm_epoch *e, void *user) {
    lm_ui *ui = user;
    cli_progress_clear(&ui->prog);
    char kind[32];
    if (e->tau > 0) snprintf(kind, sizeof kind, "tau %.2g", e->tau);
    else if (e->sparse) snprintf(kind, sizeof kind, "drop %.2f", e->drop);
    else snprintf(kind, sizeof kind, "dense");
    printf("epoch %3d  %-9s lr %.4f  train ppl %8.2f  valid ppl %8.2f  %7.1f s (CPU %7.1f s)  LSTM backward %6.1f s, "
           "%5.1f %% of its dense GEMM FLOPs, %5.1f %% of dG zeroed%s\n",
           e->epoch + 1, kind, e->lr, e->train_ppl, e->valid_ppl, e->seconds, e->cpu_seconds,
           e->lstm_backward_seconds, 100.0 * e->lstm_backward_flops_kept, 100.0 * e->gate_sparsity,
           e->restored ? "  (from --resume)" : "");
    fflush(stdout);
}

static int plot_ppl(const lm_args *a, const fg_lm_epoch *h, int n, double test_ppl, char *why, size_t why_len) {
    cli_gnuplot gp;
    if (!cli_gnuplot_open(&gp, a->plot, 900, 540, why, why_len)) return 0;
    FILE *f = gp.f;
    char title[256];
    char how[48];
    if (a->tau > 0) snprintf(how, sizeof how, "threshold %.2g", a->tau);
    else snprintf(how, sizeof how, "drop %.2f", a->sparse);
    snprintf(title, sizeof title, "LSTM LM on %s (%d x %lld, %s): test perplexity %.1f", a->data, a->layers,
             (long long)a->hidden, how, test_ppl);
    fprintf(f, "set title ");
    cli_gnuplot_str(f, title);
    fprintf(f, "\nset xlabel 'epoch'\nset ylabel 'perplexity'\nset logscale y\nset grid\nset key top right\n");
    fprintf(f, "set xrange [0.5:%d.5]\nset xtics 1\n", n);
    fprintf(f, "plot '-' using 1:2 with linespoints title 'train', '-' using 1:2 with linespoints title 'validation', "
               "'-' using 1:2 with points pt 7 ps 1.5 title 'sparse epoch'\n");
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < n; i++) {
            if (k == 2 && !h[i].sparse) continue;
            fprintf(f, "%d %.6f\n", i + 1, k == 0 ? h[i].train_ppl : h[i].valid_ppl);
        }
        fprintf(f, "e\n");
    }
    return cli_gnuplot_close(&gp, why, why_len);
}

/* The validation points as CSV: one row each (the learning curve against training time). */
static int write_trace(const char *path, const lm_ui *ui) {
    cli_text_file t;
    fg_status s = cli_text_open(&t, path);
    if (s != FG_OK) return cli_fail("--trace", s);
    fprintf(t.f, "epochs_done,train_seconds,train_cpu_seconds,valid_ppl\n");
    for (size_t i = 0; i < ui->n_curve; i++)
        fprintf(t.f, "%.4f,%.3f,%.3f,%.4f\n", ui->curve[i].epochs_done, ui->curve[i].train_seconds,
                ui->curve[i].train_cpu_seconds, ui->curve[i].valid_ppl);
    s = cli_text_close(&t, 1);
    return s == FG_OK ? CLI_CONTINUE : cli_fail("--trace", s);
}

static int write_json(const lm_args *a, const lm_ui *ui, const fg_lm_epoch *h, int n, double test_ppl) {
    cli_json j;
    fg_status s = cli_json_open(&j, a->json);
    if (s != FG_OK) return cli_fail("--json", s);
    cli_json_obj_begin(&j, NULL);
    cli_json_str(&j, "data", a->data);
    cli_json_int(&j, "hidden", a->hidden);
    cli_json_int(&j, "layers", a->layers);
    cli_json_int(&j, "steps", a->steps);
    cli_json_int(&j, "batch", a->batch);
    cli_json_num(&j, "sparse_drop", a->sparse);
    cli_json_num(&j, "sparse_tau", a->tau);
    cli_json_int(&j, "sparse_block", a->block);
    cli_json_str(&j, "sparse_variant", a->variant);
    cli_json_str(&j, "schedule", a->schedule);
    cli_json_int(&j, "dense_epochs", a->dense_epochs);
    cli_json_int(&j, "dense_first", a->dense_first);
    cli_json_num(&j, "dropout", a->dropout);
    if (a->resume) cli_json_str(&j, "resumed_from", a->resume);
    cli_json_num(&j, "test_ppl", test_ppl);
    double secs = 0, cpu = 0;
    for (int i = 0; i < n; i++) secs += h[i].seconds, cpu += h[i].cpu_seconds;
    cli_json_num(&j, "train_seconds", secs);
    cli_json_num(&j, "train_cpu_seconds", cpu);
    cli_json_arr_begin(&j, "epochs");
    for (int i = 0; i < n; i++) {
        cli_json_obj_begin(&j, NULL);
        cli_json_int(&j, "epoch", h[i].epoch + 1);
        cli_json_int(&j, "sparse", h[i].sparse);
        cli_json_int(&j, "restored", h[i].restored);
        cli_json_num(&j, "drop", h[i].drop);
        cli_json_num(&j, "lr", h[i].lr);
        cli_json_num(&j, "train_ppl", h[i].train_ppl);
        cli_json_num(&j, "valid_ppl", h[i].valid_ppl);
        cli_json_num(&j, "seconds", h[i].seconds);
        cli_json_num(&j, "cpu_seconds", h[i].cpu_seconds);
        cli_json_num(&j, "lstm_backward_seconds", h[i].lstm_backward_seconds);
        cli_json_num(&j, "lstm_backward_flops_kept", h[i].lstm_backward_flops_kept);
        cli_json_num(&j, "tau", h[i].tau);
        cli_json_num(&j, "gate_sparsity", h[i].gate_sparsity);
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    cli_json_arr_begin(&j, "curve");
    for (size_t i = 0; i < ui->n_curve; i++) {
        cli_json_obj_begin(&j, NULL);
        cli_json_num(&j, "epochs_done", ui->curve[i].epochs_done);
        cli_json_num(&j, "train_seconds", ui->curve[i].train_seconds);
        cli_json_num(&j, "train_cpu_seconds", ui->curve[i].train_cpu_seconds);
        cli_json_num(&j, "valid_ppl", ui->curve[i].valid_ppl);
        cli_json_obj_end(&j);
    }
    cli_json_arr_end(&j);
    cli_json_obj_end(&j);
    s = cli_json_close(&j);
    return s == FG_OK ? CLI_CONTINUE : cli_fail("--json", s);
}

/* Loads corpus `data` from data_dir (NULL: the default data directory). On failure prints the
 * error (for brown, how to fetch it) and returns the exit code; else CLI_CONTINUE. */
static int lm_corpus_open(const char *data_dir, const char *data, fg_corpus *out) {
    char buf[4096];
    const char *dir = data_dir ? data_dir : fg_data_dir(buf, sizeof buf);
    if (fg_corpus_load(dir, data, out) == FG_OK) return CLI_CONTINUE;
    fprintf(stderr, "frugal: %s\n%s", fg_last_error(),
            strcmp(data, "brown") == 0 ? "(fetch the Brown corpus with: bash scripts/fetch-data.sh brown)\n" : "");
    return CLI_EXIT_FAIL;
}

/* The model of c in a new graph, built with its loss in a new pool; the caller frees both, also
 * on failure. */
static fg_status lm_graph_open(const fg_lm_cfg *c, fg_pool **pool, fg_graph **g, fg_lm_io *io) {
    fg_mem_policy pol;
    FG_TRY(fg_pool_create(pool, 0));
    FG_TRY(fg_graph_create(g, "lstm-lm"));
    FG_TRY(fg_lm_build(*g, c, io));
    FG_TRY(fg_policy_network_wide(&pol));
    return fg_graph_build(*g, io->loss, *pool, &pol);
}

/* Bytes a training of c takes, from the shapes fg_lm_build gives the graph (in floats): the weights
 * and their gradients (SGD keeps no state), the activations and their gradients over T x B tokens
 * (the embedding, per layer the output, the 4 gates and the cell state saved for backward,
 * dropout masks, the decoder's logits, softmax and their gradient) and the LSTM's workspace. An
 * estimate (hidden 2000 x 2 layers: 0.86 GB, the process peaked at 0.92 GB): the pool grows
 * without limit, so it is checked against RAM before the build (hidden 100000 grew for ever). */
static double lm_train_bytes(const fg_lm_cfg *c) {
    const double V = (double)c->vocab, E = (double)(c->embed ? c->embed : c->hidden), H = (double)c->hidden;
    const double L = (double)c->layers, TB = (double)c->steps * (double)c->batch;
    const double params = V * E + 4 * H * (E + H) + 8 * H + (L - 1) * (4 * H * 2 * H + 8 * H) + H * V + V;
    const double acts = TB * (2 * E + L * 2 * (H + 5 * H + H) + 3 * V) + TB * 4 * H + 4 * H * H;
    return 4.0 * (2 * params + acts);
}

static int lm_train(int argc, char **argv) {
    lm_args a = {.data = "brown", .hidden = 200, .steps = 20, .batch = 20, .layers = 2, .epochs = 6,
                 .decay_after = 2, .dropout = 0, .lr = 1.0, .lr_decay = 1.0 / 1.2, .clip = 5.0, .block = 0,
                 .seed = 1, .variant = "structured", .schedule = "sparse-dense"};
    cli_opt opts[] = {
        {"data", CLI_STR, &a.data, "NAME", "corpus in the data directory: <NAME>.{train,valid,test}.txt (default brown)", 0},
        {"data-dir", CLI_STR, &a.data_dir, "DIR", "data directory (default $FRUGAL_DATA or ~/.cache/frugal)", 0},
        {"hidden", CLI_I64, &a.hidden, "H", "LSTM units per layer (default 200)", 0},
        {"embed", CLI_I64, &a.embed, "E", "embedding size (default: hidden)", 0},
        {"layers", CLI_INT, &a.layers, "L", "stacked LSTM layers (default 2)", 0},
        {"steps", CLI_I64, &a.steps, "T", "BPTT length (default 20)", 0},
        {"batch", CLI_I64, &a.batch, "B", "parallel streams (default 20)", 0},
        {"dropout", CLI_FLOAT, &a.dropout, "P", "dropout on the embedding, between layers and before the decoder "
                                                "(default 0)", 0},
        {"epochs", CLI_INT, &a.epochs, "N", "epochs (default 6)", 0},
        {"lr", CLI_FLOAT, &a.lr, "LR", "SGD learning rate (default 1)", 0},
        {"lr-decay", CLI_FLOAT, &a.lr_decay, "F", "learning-rate factor per epoch from --decay-after on (default 1/1.2)", 0},
        {"decay-after", CLI_INT, &a.decay_after, "E", "first epoch (0-based) with a decayed rate (default 2)", 0},
        {"clip", CLI_FLOAT, &a.clip, "NORM", "max global gradient norm, 0 = none (default 5)", 0},
        {"sparse", CLI_FLOAT, &a.sparse, "DROP", "fraction of hidden-unit blocks whose gate gradients each LSTM "
                                                "backward drops per step, in [0, 1) (default 0: dense)", 0},
        {"tau", CLI_FLOAT, &a.tau, "TAU", "with --variant threshold: sparse epochs zero every gate gradient with "
                                          "|dG| < TAU (Zhu et al. 2016; the GEMMs stay dense) and report the "
                                          "fraction zeroed; the schedule treats TAU as it does the drop", 0},
        {"block", CLI_I64, &a.block, "U", "hidden units per block (default 16 with --sparse, else unused)", 0},
        {"variant", CLI_STR, &a.variant, "NAME", "sparse epochs' backward: structured (one kept block set per chunk, "
                                                "every backward GEMM shrinks; default), step (kept blocks per step), "
                                                "meprop (top-k gate columns per step) or threshold (with --tau)", 0},
        {"schedule", CLI_STR, &a.schedule, "NAME", "which epochs before the dense ones are sparse: sparse-dense "
                                                  "(all, at --sparse; default), alternating (every other, from the "
                                                  "first) or decaying (the drop falls linearly from --sparse to 0)", 0},
        {"dense-epochs", CLI_INT, &a.dense_epochs, "N", "the last N epochs train dense (the paper's mixed schedule; "
                                                       "default 0)", 0},
        {"dense-first", CLI_INT, &a.dense_first, "N", "the first N epochs train dense too (a dense warm-up before the "
                                                     "sparse ones; default 0)", 0},
        {"max-batches", CLI_I64, &a.max_batches, "N", "chunks per epoch; shorter epochs read successive windows of the training split (default: all of it)", 0},
        {"eval-batches", CLI_I64, &a.eval_batches, "N", "validation chunks (default: all)", 0},
        {"test-batches", CLI_I64, &a.test_batches, "N", "test chunks (default: as --eval-batches)", 0},
        {"eval-every", CLI_I64, &a.eval_every, "N", "also evaluate the validation perplexity every N training chunks "
                                                  "(the learning curve against time; default: after each epoch)", 0},
        {"trace", CLI_STR, &a.trace, "FILE", "write every validation point as CSV (epochs, training seconds, CPU "
                                            "seconds, perplexity)", 0},
        {"seed", CLI_U64, &a.seed, "S", "weights and dropout (default 1)", 0},
        {"checkpoint", CLI_STR, &a.checkpoint, "FILE", "after every epoch, save the weights and the run so far to "
                                                      "FILE (safetensors, atomically); {epoch} in FILE becomes the "
                                                      "epoch's number, keeping one file per epoch", 0},
        {"save", CLI_STR, &a.save, "FILE", "write the model to FILE after every epoch, the last one staying (a "
                                          "checkpoint: for lm eval, lm sample and --resume)", 0},
        {"resume", CLI_STR, &a.resume, "FILE", "go on from a --checkpoint file after its last epoch, bit for bit as "
                                              "if the run had not stopped; the options may change the schedule of "
                                              "the epochs to come (seed, --steps, --batch, --max-batches and the "
                                              "model must be the checkpoint's)", 0},
        {"threads", CLI_INT, &a.threads, "N", "compute threads (default: all cores)", 0},
        {"json", CLI_STR, &a.json, "FILE", "write the configuration and every epoch as JSON", 0},
        {"plot", CLI_STR, &a.plot, "FILE.png", "plot train and validation perplexity per epoch (gnuplot)", 0},
        {"quiet", CLI_FLAG, &a.quiet, NULL, "no progress line", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"lm train", "frugal lm train [options]",
                   "Trains a word-level LSTM language model (embedding, stacked LSTMs, linear decoder; truncated BPTT, "
                   "SGD with gradient clipping) on a corpus in the data directory and prints perplexities. With "
                   "--sparse, every LSTM backward drops the gate gradients of the lowest-scoring blocks of hidden "
                   "units per step (Zhu et al., arXiv 1806.00512), shrinking its recurrent GEMMs; --dense-epochs "
                   "trains the last epochs dense.",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    if (a.hidden < 1 || a.steps < 1 || a.batch < 1 || a.layers < 1 || (cli_find(opts, "embed")->set && a.embed < 1))
        return cli_usage_error(&cmd, "--hidden, --embed, --layers, --steps and --batch must be >= 1 (got %lld, %lld, "
                               "%d, %lld, %lld)", (long long)a.hidden, (long long)a.embed, a.layers, (long long)a.steps,
                               (long long)a.batch);
    if (!(a.lr > 0)) return cli_usage_error(&cmd, "--lr %g: expected a rate > 0", a.lr);
    if (!(a.lr_decay > 0 && a.lr_decay <= 1))
        return cli_usage_error(&cmd, "--lr-decay %g: expected a factor in (0, 1]", a.lr_decay);
    if (a.decay_after < 0) return cli_usage_error(&cmd, "--decay-after %d: expected an epoch >= 0", a.decay_after);
    if (!(a.clip >= 0)) return cli_usage_error(&cmd, "--clip %g: expected a norm >= 0 (0 = none)", a.clip);
    if (!(a.dropout >= 0 && a.dropout < 1)) return cli_usage_error(&cmd, "--dropout %g: expected [0, 1)", a.dropout);
    if (a.max_batches < 0 || a.eval_batches < 0 || (cli_find(opts, "test-batches")->set && a.test_batches < 0))
        return cli_usage_error(&cmd, "--max-batches, --eval-batches and --test-batches must be >= 0 (0 = all)");
    if (!(a.sparse >= 0 && a.sparse < 1)) return cli_usage_error(&cmd, "--sparse %g: expected a fraction in [0, 1)", a.sparse);
    if (!(a.tau >= 0 && isfinite(a.tau))) return cli_usage_error(&cmd, "--tau %g: expected a finite tau >= 0", a.tau);
    if ((a.sparse > 0 || a.tau > 0) && !cli_find(opts, "block")->set) a.block = a.hidden < 16 ? a.hidden : 16;
    /* sparse epochs (--sparse or --tau) need blocks of at least one unit: the library refuses 0 only
     * after the corpus is loaded */
    if (a.block < ((a.sparse > 0 || a.tau > 0) ? 1 : 0) || a.block > a.hidden)
        return cli_usage_error(&cmd, "--block %lld: expected 1..hidden (%lld)", (long long)a.block, (long long)a.hidden);
    if (a.threads < 0) return cli_usage_error(&cmd, "--threads %d: expected >= 0 (0 = all cores)", a.threads);
    const fg_lstm_bwd variant = fg_lstm_bwd_parse(a.variant);
    if (variant != FG_LSTM_BWD_STRUCTURED && variant != FG_LSTM_BWD_STEP && variant != FG_LSTM_BWD_MEPROP &&
        variant != FG_LSTM_BWD_THRESHOLD)
        return cli_usage_error(&cmd, "--variant %s: expected structured, step, meprop or threshold", a.variant);
    if (variant == FG_LSTM_BWD_THRESHOLD && a.sparse > 0)
        return cli_usage_error(&cmd, "--sparse %g with --variant threshold: the threshold variant drops by --tau, "
                               "expected --tau instead", a.sparse);
    if (variant != FG_LSTM_BWD_THRESHOLD && a.tau > 0)
        return cli_usage_error(&cmd, "--tau %g with --variant %s: expected --variant threshold (the others drop "
                               "by --sparse)", a.tau, a.variant);
    const fg_lm_schedule schedule = fg_lm_schedule_parse(a.schedule);
    if (schedule == FG_LM_SCHED_COUNT)
        return cli_usage_error(&cmd, "--schedule %s: expected sparse-dense, alternating or decaying", a.schedule);
    if (!cli_find(opts, "test-batches")->set) a.test_batches = a.eval_batches;
    if (a.eval_every < 0) return cli_usage_error(&cmd, "--eval-every %lld: expected >= 0", (long long)a.eval_every);
    if (a.epochs < 1) return cli_usage_error(&cmd, "--epochs %d: expected >= 1", a.epochs);
    if (a.dense_epochs < 0 || a.dense_epochs > a.epochs)
        return cli_usage_error(&cmd, "--dense-epochs %d: expected 0..epochs (%d)", a.dense_epochs, a.epochs);
    if (a.dense_first < 0 || a.dense_first + a.dense_epochs > a.epochs)
        return cli_usage_error(&cmd, "--dense-first %d: expected 0..epochs - dense epochs (%d)", a.dense_first,
                               a.epochs - a.dense_epochs);
    if (a.save && a.checkpoint)
        return cli_usage_error(&cmd, "--save with --checkpoint: --save FILE is --checkpoint FILE without {epoch}, "
                               "expected one of them");
    if (a.save && strstr(a.save, "{epoch}"))
        return cli_usage_error(&cmd, "--save %s: expected a file name; {epoch} belongs to --checkpoint", a.save);
    if (a.save) a.checkpoint = a.save;
    if (a.plot && (rc = cli_plot_option_check(&cmd, a.plot)) != CLI_CONTINUE) return rc;
    if (a.threads > 0) fg_threads_set(a.threads);

    fg_corpus corpus;
    if ((rc = lm_corpus_open(a.data_dir, a.data, &corpus)) != CLI_CONTINUE) return rc;
    fg_status s = FG_OK;
    fg_lm_cfg c = {corpus.vocab_size, a.embed, a.hidden, a.layers, a.steps, a.batch, (float)a.dropout, a.block};
    rc = cli_ram_check(&cmd, "lm train: the model with its gradients and activations (estimated)", lm_train_bytes(&c),
                       "expected a smaller --hidden, --embed, --layers, --steps or --batch");
    if (rc != CLI_CONTINUE) {
        fg_corpus_free(&corpus);
        return rc;
    }
    fg_lm_train_cfg tc = fg_lm_train_defaults();
    tc.epochs = a.epochs;
    tc.lr = (float)a.lr;
    tc.lr_decay = (float)a.lr_decay;
    tc.decay_after = a.decay_after;
    tc.clip = (float)a.clip;
    tc.sparse_drop = (float)a.sparse;
    tc.sparse_variant = variant;
    tc.sparse_tau = (float)a.tau;
    tc.schedule = schedule;
    tc.eval_every = a.eval_every;
    tc.dense_epochs = a.dense_epochs;
    tc.dense_first = a.dense_first;
    tc.seed = a.seed;
    tc.max_batches = a.max_batches;
    tc.max_eval_batches = a.eval_batches;
    tc.checkpoint = a.checkpoint;
    tc.resume = a.resume;
    lm_ui ui = {.epochs = a.epochs, .quiet = a.quiet, .words_per_batch = a.steps * a.batch};
    cli_progress_init(&ui.prog);
    tc.on_batch = on_batch;
    tc.on_epoch = on_epoch;
    tc.on_eval = on_eval;
    tc.user = &ui;
    tc.stop = &cli_stop_flag;

    printf("corpus %s: %lld / %lld / %lld words (train / valid / test), vocabulary %d\n", a.data,
           (long long)corpus.n[0], (long long)corpus.n[1], (long long)corpus.n[2], corpus.vocab_size);
    int64_t chunks = fg_lm_chunks(corpus.n[0], a.steps, a.batch);
    const int limited = a.max_batches > 0 && a.max_batches < chunks;
    if (limited) chunks = a.max_batches;
    printf("model: embedding %lld, %d x LSTM %lld, decoder %d; T %lld, B %lld, %lld chunks per epoch%s\n",
           (long long)(a.embed ? a.embed : a.hidden), a.layers, (long long)a.hidden, corpus.vocab_size,
           (long long)a.steps, (long long)a.batch, (long long)chunks, limited ? " (limited by --max-batches)" : "");
    if (a.tau > 0) {
        printf("threshold backward (|dG| < tau zeroed), schedule %s: tau per epoch", a.schedule);
        for (int e = 0; e < a.epochs; e++) printf(" %.3g", fg_lm_epoch_tau(&tc, e));
        printf("\n");
    } else if (a.sparse > 0) {
        printf("sparse backward (%s, blocks of %lld units), schedule %s: drop per epoch", a.variant, (long long)a.block,
               a.schedule);
        for (int e = 0; e < a.epochs; e++) printf(" %.2f", fg_lm_epoch_drop(&tc, e));
        printf("\n");
    }

    fg_graph *g = NULL;
    fg_pool *pool = NULL;
    fg_lm_io io;
    fg_lm_epoch *hist = calloc((size_t)a.epochs, sizeof *hist);
    int done = 0, code = CLI_EXIT_OK;
    double test_ppl = NAN;
    if (!hist) s = fg_fail(FG_ERR_OOM, "lm: out of host memory");
    if (s == FG_OK) s = lm_graph_open(&c, &pool, &g, &io);
    cli_sigint_install();
    if (s == FG_OK) s = fg_lm_train(g, &io, &c, &tc, &corpus, hist, &done);
    cli_sigint_restore();
    cli_progress_clear(&ui.prog);
    if (s == FG_OK && done < a.epochs) {
        if (a.checkpoint && done > 0) fprintf(stderr, "frugal: interrupted after %d epochs; go on with --resume and the "
                                          "checkpoint of epoch %d (%s %s)\n", done, done,
                                          a.save ? "--save" : "--checkpoint", a.checkpoint);
        else fprintf(stderr, "frugal: interrupted after %d epochs\n", done);
        code = CLI_EXIT_INTERRUPTED;
    }
    if (s == FG_OK && done > 0) s = fg_lm_perplexity(g, &io, &c, corpus.ids[2], corpus.n[2], a.test_batches, &test_ppl);
    if (s != FG_OK) {
        code = cli_fail("lm train", s);
    } else if (done > 0) {
        double secs = 0, cpu = 0, lstm = 0;
        for (int i = 0; i < done; i++)
            secs += hist[i].seconds, cpu += hist[i].cpu_seconds, lstm += hist[i].lstm_backward_seconds;
        printf("test perplexity %.2f after %d epochs (valid %.2f); training %.1f s (CPU %.1f s), of which LSTM "
               "backward %.1f s\n", test_ppl, done, hist[done - 1].valid_ppl, secs, cpu, lstm);
        if (a.save) printf("model: %s (frugal lm eval --model %s; lm sample too)\n", a.save, a.save);
        if (ui.oom) fprintf(stderr, "frugal: out of host memory: the learning curve is incomplete\n");
        if (a.json && (rc = write_json(&a, &ui, hist, done, test_ppl)) != CLI_CONTINUE) code = rc;
        if (a.trace && (rc = write_trace(a.trace, &ui)) != CLI_CONTINUE) code = rc;
        char why[512];
        if (a.plot && !plot_ppl(&a, hist, done, test_ppl, why, sizeof why)) {
            fprintf(stderr, "frugal: --plot: %s\n", why);
            code = CLI_EXIT_FAIL;
        } else if (a.plot) {
            printf("plot: %s\n", a.plot);
        }
    }
    fg_graph_free(g);
    fg_pool_destroy(pool);
    free(hist);
    free(ui.curve);
    fg_corpus_free(&corpus);
    return code;
}

/* A trained model from a checkpoint of lm train: its sizes read off its tensors, the corpus it
 * was trained on (whose vocabulary must have the model's size), and the graph built for steps x
 * batch with the weights loaded. */
typedef struct lm_model {
    fg_corpus corpus;
    fg_lm_cfg c;
    fg_lm_ckpt_info info;
    fg_graph *g;
    fg_pool *pool;
    fg_lm_io io;
} lm_model;

static void lm_model_free(lm_model *m) {
    fg_graph_free(m->g);
    fg_pool_destroy(m->pool);
    fg_lm_ckpt_info_free(&m->info);
    fg_corpus_free(&m->corpus);
    memset(m, 0, sizeof *m);
}

/* steps or batch 0: the checkpoint's. Prints the error and returns the exit code, or CLI_CONTINUE. */
static int lm_model_open(lm_model *m, const char *path, const char *data, const char *data_dir, int64_t steps,
                         int64_t batch) {
    memset(m, 0, sizeof *m);
    fg_st_file *f;
    fg_status s = fg_st_load_header(path, &f);
    if (s != FG_OK) return cli_fail("--model", s);
    s = fg_lm_ckpt_read(f, path, &m->info);
    if (s == FG_OK) s = fg_lm_cfg_from_weights(f, path, &m->c);
    fg_st_free(f);
    if (s != FG_OK) {
        lm_model_free(m);
        return cli_fail("--model", s);
    }
    m->c.steps = steps > 0 ? steps : m->info.steps;
    m->c.batch = batch > 0 ? batch : m->info.batch;
    int rc = lm_corpus_open(data_dir, data, &m->corpus);
    if (rc != CLI_CONTINUE) {
        lm_model_free(m);
        return rc;
    }
    if (m->corpus.vocab_size != m->c.vocab) {
        fprintf(stderr, "frugal: %s has a vocabulary of %lld words and corpus '%s' one of %d: expected the corpus the "
                "model was trained on (--data)\n", path, (long long)m->c.vocab, data, m->corpus.vocab_size);
        lm_model_free(m);
        return CLI_EXIT_FAIL;
    }
    s = lm_graph_open(&m->c, &m->pool, &m->g, &m->io);
    if (s == FG_OK) s = fg_graph_load(m->g, NULL, path);
    if (s != FG_OK) {
        lm_model_free(m);
        return cli_fail("--model", s);
    }
    return CLI_CONTINUE;
}

static void lm_model_describe(const lm_model *m, const char *path) {
    printf("model %s: embedding %lld, %d x LSTM %lld, vocabulary %lld; %d epoch%s trained (valid ppl %.2f at the "
           "last)\n", path, (long long)(m->c.embed ? m->c.embed : m->c.hidden), m->c.layers, (long long)m->c.hidden,
           (long long)m->c.vocab, m->info.epochs, m->info.epochs == 1 ? "" : "s",
           m->info.hist[m->info.epochs - 1].valid_ppl);
}

static int lm_eval(int argc, char **argv) {
    const char *file = NULL, *data = "brown", *data_dir = NULL, *split = "test", *json = NULL;
    int64_t steps = 0, batch = 0, max_batches = 0;
    int threads = 0;
    cli_opt opts[] = {
        {"model", CLI_STR, &file, "FILE", "a model written by frugal lm train --save or --checkpoint (required)", 0},
        {"data", CLI_STR, &data, "NAME", "the corpus the model was trained on (default brown)", 0},
        {"data-dir", CLI_STR, &data_dir, "DIR", "data directory (default $FRUGAL_DATA or ~/.cache/frugal)", 0},
        {"split", CLI_STR, &split, "NAME", "test (default), valid or train", 0},
        {"steps", CLI_I64, &steps, "T", "chunk length (default: the training's)", 0},
        {"batch", CLI_I64, &batch, "B", "parallel streams (default: the training's)", 0},
        {"max-batches", CLI_I64, &max_batches, "N", "score only the first N chunks (default all, as lm train scores "
                                                    "by default)", 0},
        {"threads", CLI_INT, &threads, "N", "compute threads (default: all cores)", 0},
        {"json", CLI_STR, &json, "FILE", "write {model, data, split, perplexity, words, epochs} as JSON", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"lm eval", "frugal lm eval --model FILE [options]",
                   "Perplexity of a trained LSTM language model on a split of its corpus (dropout off, the state "
                   "carried from chunk to chunk as in training). The model's sizes are read off its tensors. With the "
                   "training's steps and batch (the default) and as many chunks as it scored (all by default; "
                   "else --max-batches as its --eval-batches or --test-batches) the figure is the one lm train "
                   "printed.",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    if (!file) return cli_usage_error(&cmd, "lm eval: --model FILE is required");
    int k = strcmp(split, "train") == 0 ? FG_CORPUS_TRAIN : strcmp(split, "valid") == 0 ? FG_CORPUS_VALID
            : strcmp(split, "test") == 0 ? FG_CORPUS_TEST : -1;
    if (k < 0) return cli_usage_error(&cmd, "lm eval: --split %s: expected test, valid or train", split);
    if (steps < 0 || batch < 0 || max_batches < 0)
        return cli_usage_error(&cmd, "lm eval: --steps, --batch and --max-batches must be >= 0 (0 = the default)");
    if (threads < 0) return cli_usage_error(&cmd, "lm eval: --threads must be >= 0");
    if (threads > 0) fg_threads_set(threads);
    lm_model m;
    if ((rc = lm_model_open(&m, file, data, data_dir, steps, batch)) != CLI_CONTINUE) return rc;
    lm_model_describe(&m, file);
    double ppl = NAN;
    int64_t chunks = fg_lm_chunks(m.corpus.n[k], m.c.steps, m.c.batch);
    if (max_batches > 0 && max_batches < chunks) chunks = max_batches;
    fg_status s = fg_lm_perplexity(m.g, &m.io, &m.c, m.corpus.ids[k], m.corpus.n[k], max_batches, &ppl);
    int code = CLI_EXIT_OK;
    if (s != FG_OK) {
        code = cli_fail("lm eval", s);
    } else {
        int64_t words = chunks * m.c.steps * m.c.batch;
        printf("%s perplexity %.2f (%lld words in %lld chunks of %lld steps x %lld streams)\n", split, ppl,
               (long long)words, (long long)chunks, (long long)m.c.steps, (long long)m.c.batch);
        if (json) {
            cli_json j;
            s = cli_json_open(&j, json);
            if (s == FG_OK) {
                cli_json_obj_begin(&j, NULL);
                cli_json_str(&j, "model", file);
                cli_json_str(&j, "data", data);
                cli_json_str(&j, "split", split);
                cli_json_num(&j, "perplexity", ppl);
                cli_json_int(&j, "words", words);
                cli_json_int(&j, "steps", m.c.steps);
                cli_json_int(&j, "batch", m.c.batch);
                cli_json_int(&j, "epochs", m.info.epochs);
                cli_json_obj_end(&j);
                s = cli_json_close(&j);
            }
            if (s != FG_OK) code = cli_fail("--json", s);
        }
    }
    lm_model_free(&m);
    return code;
}

/* The ids of the words of text (split at spaces and tabs); a word outside the vocabulary is <unk>
 * when the vocabulary has it, else a usage error naming it. */
static int prime_ids(const cli_cmd *cmd, const fg_corpus *c, const char *text, int32_t **out, int64_t *n) {
    *out = NULL;
    *n = 0;
    size_t len = strlen(text);
    int32_t *ids = malloc((len / 2 + 1) * sizeof *ids), unk = fg_corpus_find(c, "<unk>");
    if (!ids) return cli_fail("--prime", fg_fail(FG_ERR_OOM, "out of host memory"));
    for (const char *p = text; *p;) {
        while (*p == ' ' || *p == '\t') p++;
        size_t w = strcspn(p, " \t");
        if (!w) break;
        char word[FG_CORPUS_MAX_WORD + 1];
        int32_t id = -1;
        if (w <= FG_CORPUS_MAX_WORD) {
            memcpy(word, p, w);
            word[w] = 0;
            id = fg_corpus_find(c, word);
        }
        if (id < 0) id = unk;
        if (id < 0) {
            free(ids);
            return cli_usage_error(cmd, "lm sample: --prime: '%.*s' is not in the vocabulary (which has no <unk>)",
                                   (int)(w > 64 ? 64 : w), p);
        }
        ids[(*n)++] = id;
        p += w;
    }
    *out = ids;
    return CLI_CONTINUE;
}

static int lm_sample(int argc, char **argv) {
    const char *file = NULL, *data = "brown", *data_dir = NULL, *prime = "";
    int64_t words = 50;
    double temperature = 1.0;
    uint64_t seed = 1;
    cli_opt opts[] = {
        {"model", CLI_STR, &file, "FILE", "a model written by frugal lm train --save or --checkpoint (required)", 0},
        {"data", CLI_STR, &data, "NAME", "the corpus the model was trained on, for its words (default brown)", 0},
        {"data-dir", CLI_STR, &data_dir, "DIR", "data directory (default $FRUGAL_DATA or ~/.cache/frugal)", 0},
        {"words", CLI_I64, &words, "N", "words to draw (default 50; a sentence end counts as one)", 0},
        {"temperature", CLI_FLOAT, &temperature, "T", "softmax temperature: 1 draws from the model (default), lower "
                                                     "is safer, 0 always takes the most likely word", 0},
        {"prime", CLI_STR, &prime, "TEXT", "words the text starts with (lowercase, as the corpus; unknown ones "
                                          "read as <unk>)", 0},
        {"seed", CLI_U64, &seed, "S", "seed of the draws (default 1)", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"lm sample", "frugal lm sample --model FILE [options]",
                   "Generates text from a trained LSTM language model: after a sentence start and the --prime words, "
                   "each word is drawn from the model's distribution and read back as the next input. Prints the "
                   "prime, then the words drawn, a sentence end as a line break.",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    if (!file) return cli_usage_error(&cmd, "lm sample: --model FILE is required");
    if (words < 1 || words > 1000000) return cli_usage_error(&cmd, "lm sample: --words %lld: expected 1..1000000", (long long)words);
    if (!(temperature >= 0 && temperature <= 100))
        return cli_usage_error(&cmd, "lm sample: --temperature %g: expected 0..100", temperature);
    fg_threads_set(1); /* one word at a time: threads only cost wake-ups */
    lm_model m;
    if ((rc = lm_model_open(&m, file, data, data_dir, 1, 1)) != CLI_CONTINUE) return rc;
    int32_t *pids = NULL, *out = malloc((size_t)words * sizeof *out);
    int64_t np = 0;
    if (!out) rc = cli_fail("lm sample", fg_fail(FG_ERR_OOM, "out of host memory for %lld words", (long long)words));
    else rc = prime_ids(&cmd, &m.corpus, prime, &pids, &np);
    fg_status s = FG_OK;
    if (rc == CLI_CONTINUE) s = fg_lm_generate(m.g, &m.io, &m.c, pids, np, words, temperature, seed, out);
    if (rc == CLI_CONTINUE && s != FG_OK) rc = cli_fail("lm sample", s);
    if (rc == CLI_CONTINUE) {
        int col = 0;
        for (int64_t i = 0; i < np + words; i++) {
            int32_t id = i < np ? pids[i] : out[i - np];
            if (id == 0) {
                printf("\n");
                col = 0;
                continue;
            }
            printf("%s%s", col ? " " : "", m.corpus.words[id]);
            col = 1;
        }
        if (col) printf("\n");
        rc = CLI_EXIT_OK;
    }
    free(pids);
    free(out);
    lm_model_free(&m);
    return rc;
}

int cmd_lm(int argc, char **argv) {
    if (argc >= 1 && strcmp(argv[0], "train") == 0) return lm_train(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "eval") == 0) return lm_eval(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "sample") == 0) return lm_sample(argc - 1, argv + 1);
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        printf("usage: frugal lm train [options]   train a model (--save FILE keeps it)\n"
               "       frugal lm eval --model FILE  perplexity of a trained model on a split\n"
               "       frugal lm sample --model FILE [--prime TEXT]  text drawn from a trained model\n"
               "(frugal lm COMMAND --help lists the options)\n\n"
               "Word-level LSTM language models with the structurally sparsified backward of the sparse LSTM "
               "system.\n");
        return CLI_EXIT_OK;
    }
    return cli_usage_error(NULL, "lm: expected a subcommand: train, eval or sample (got '%s')", argc >= 1 ? argv[0] : "");
}
