/* `frugal train`: trains a zoo model on an image data set with the library's trainer, with a
 * progress line, per-epoch results, --json, --save, checkpoints, resume and Ctrl-C handling.
 * cli_train_run is shared with `frugal demo`. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plot.h"

/* Per-data-set defaults, chosen by sweeps of LeNet-5 on 2 cores (seeds 1-4): Adam at 3e-3
 * decayed by 0.88 per epoch settles where a constant rate keeps jumping by +-0.5% between
 * epochs. MNIST (8,000 train / 2,000 held out), 20 epochs: 0.979-0.985, ~0.5 s per epoch;
 * Fashion-MNIST (60,000 / 10,000), 15 epochs: 0.909-0.914, ~4 s per epoch (both on an idle
 * machine). Explicit options override them. */
typedef struct data_defaults {
    const char *data;
    int epochs;
    int64_t batch;
    fg_optim_kind optim;
    double lr, lr_decay;
} data_defaults;

static const data_defaults defaults_table[] = {
    {"mnist", 20, 64, FG_OPTIM_ADAM, 3e-3, 0.88},
    {"fashion", 15, 64, FG_OPTIM_ADAM, 3e-3, 0.88},
};

static const data_defaults *find_defaults(const char *data) {
    for (size_t i = 0; i < sizeof defaults_table / sizeof defaults_table[0]; i++)
        if (strcmp(defaults_table[i].data, data) == 0) return &defaults_table[i];
    return &defaults_table[0];
}

void cli_train_args_init(cli_train_args *a) {
    memset(a, 0, sizeof *a);
    a->model = "lenet";
    a->data = "mnist";
    a->optim = "adam";
    a->epochs = 20;
    a->batch = 64;
    a->lr = 3e-3;
    a->lr_decay = 0.88;
    a->seed = 1;
    a->threads = 0;
}

/* ---------------------------------------------------------------- progress callbacks */

typedef struct run_ui {
    cli_progress prog;
    int64_t batch;
    double t0;   /* when counting started: the start of the run or of the epoch */
    int64_t b0;  /* batches of the epoch already done at t0 (a resume starts mid-epoch) */
    int fresh;   /* t0 is set but b0 is not known yet */
    int quiet;
} run_ui;

static void on_batch(const fg_train_progress *p, void *user) {
    run_ui *ui = user;
    if (ui->fresh) {
        ui->b0 = p->batch - 1;
        ui->fresh = 0;
    }
    if (ui->quiet) return;
    double now = fg_time_now();
    if (now - ui->prog.last < ui->prog.interval && p->batch != 1) return;
    char bar[40], line[256];
    cli_bar(bar, sizeof bar, (double)p->batch / (double)p->n_batches, 24);
    double el = now - ui->t0;
    double ips = el > 0 ? (double)((p->batch - ui->b0) * ui->batch) / el : 0.0;
    snprintf(line, sizeof line, "epoch %d/%d %s %3.0f%%  loss %.4f  acc %.4f  %.0f img/s", p->epoch + 1, p->epochs, bar,
             100.0 * (double)p->batch / (double)p->n_batches, p->loss, p->acc, ips);
    cli_progress_show(&ui->prog, line, p->batch == 1 && ui->prog.tty);
}

static void on_epoch(const fg_epoch_result *r, void *user) {
    run_ui *ui = user;
    cli_progress_clear(&ui->prog);
    /* the next epoch starts when this callback returns */
    ui->t0 = fg_time_now();
    ui->b0 = 0;
    ui->fresh = 0;
    if (r->test_acc >= 0)
        printf("epoch %3d  loss %.4f  train acc %.4f  test acc %.4f  %.1f s\n", r->epoch + 1, r->loss, r->train_acc,
               r->test_acc, r->seconds);
    else
        printf("epoch %3d  loss %.4f  train acc %.4f  %.1f s\n", r->epoch + 1, r->loss, r->train_acc, r->seconds);
    fflush(stdout);
}

/* ---------------------------------------------------------------- the run */

static int write_json(const cli_train_args *a, const cli_train_result *r) {
    cli_json j;
    fg_status s = cli_json_open(&j, a->json);
    if (s != FG_OK) return cli_fail("--json", s);
    cli_json_obj_begin(&j, NULL);
    cli_json_str(&j, "model", r->model);
    cli_json_str(&j, "data", r->data);
    cli_json_num(&j, "test_accuracy", r->test_acc);
    cli_json_arr_begin(&j, "loss");
    for (int i = 0; i < r->n_epochs; i++) cli_json_num(&j, NULL, r->hist[i].loss);
    cli_json_arr_end(&j);
    cli_json_arr_begin(&j, "accuracy");
    for (int i = 0; i < r->n_epochs; i++) cli_json_num(&j, NULL, r->hist[i].train_acc);
    cli_json_arr_end(&j);
    cli_json_arr_begin(&j, "test_accuracy_per_epoch");
    for (int i = 0; i < r->n_epochs; i++) cli_json_num(&j, NULL, r->hist[i].test_acc);
    cli_json_arr_end(&j);
    cli_json_arr_begin(&j, "seconds_per_epoch");
    for (int i = 0; i < r->n_epochs; i++) cli_json_num(&j, NULL, r->hist[i].seconds);
    cli_json_arr_end(&j);
    cli_json_num(&j, "seconds", r->seconds);
    cli_json_int(&j, "epochs", r->n_epochs);
    cli_json_int(&j, "batch", (long long)r->batch);
    cli_json_str(&j, "optimizer", r->optim);
    cli_json_num(&j, "lr", r->lr);
    cli_json_num(&j, "lr_decay", r->lr_decay);
    cli_json_int(&j, "seed", (long long)a->seed);
    cli_json_int(&j, "threads", fg_threads_get());
    cli_json_int(&j, "train_images", (long long)r->n_train);
    cli_json_int(&j, "test_images", (long long)r->n_test);
    cli_json_obj_end(&j);
    s = cli_json_close(&j);
    if (s != FG_OK) return cli_fail("--json", s);
    return CLI_EXIT_OK;
}

/* Takes model, data, batch, seed and the optimizer from a checkpoint unless given explicitly;
 * explicit values that contradict the checkpoint are refused by the trainer with a message. */
static int apply_checkpoint(cli_train_args *a, fg_ckpt_info *info, int *have_optim) {
    fg_status s = fg_ckpt_read_info(a->resume, info);
    if (s != FG_OK) return cli_fail("--resume", s);
    if (!info->is_checkpoint) {
        fprintf(stderr, "frugal: --resume: %s holds weights only, not a training checkpoint\n", a->resume);
        return CLI_EXIT_FAIL;
    }
    static char model[FG_NAME_MAX], data[FG_NAME_MAX];
    if (!a->set_model) {
        snprintf(model, sizeof model, "%s", info->model);
        a->model = model;
    }
    if (!a->set_data && info->data[0]) {
        snprintf(data, sizeof data, "%s", info->data);
        a->data = data;
    }
    if (!a->set_batch) a->batch = info->mc.batch;
    if (!a->set_seed) a->seed = info->seed;
    if (!a->set_lr_decay) a->lr_decay = info->lr_decay;
    /* --optim naming the checkpoint's own optimizer changes nothing: its settings and state go on
     * (another kind is refused by the trainer) */
    fg_optim_kind named;
    *have_optim = !a->set_optim || (fg_optim_kind_parse(a->optim, &named) == FG_OK && named == info->optim.kind);
    if (a->set_lr && a->lr != (double)info->optim.lr)
        fg_log(FG_LOG_WARN, "--lr %g overrides the checkpoint's %g", a->lr, (double)info->optim.lr);
    if (a->set_momentum && a->momentum != (double)info->optim.momentum)
        fg_log(FG_LOG_WARN, "--momentum %g overrides the checkpoint's %g", a->momentum, (double)info->optim.momentum);
    if (a->set_wd && a->weight_decay != (double)info->optim.weight_decay)
        fg_log(FG_LOG_WARN, "--weight-decay %g overrides the checkpoint's %g", a->weight_decay,
               (double)info->optim.weight_decay);
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- vmem policy (issue 3) */

int cli_vmem_policy_check(const cli_cmd *cmd, const char *policy, const char *spill_dir, size_t host_mem, int trace,
                          int offload_weights) {
    if (!policy) {
        if (spill_dir || host_mem || trace || offload_weights)
            return cli_usage_error(cmd, "--spill-dir, --host-mem, --trace and --offload-weights need --policy "
                                         "none|all|conv|dyn|plan");
        return CLI_EXIT_OK;
    }
    fg_vmem_kind kind;
    if (fg_vmem_kind_parse(policy, &kind) != FG_OK)
        return cli_usage_error(cmd, "--policy: unknown policy '%s' (expected none, all, conv, dyn or plan)", policy);
    if (offload_weights && kind == FG_VMEM_NONE)
        return cli_usage_error(cmd, "--offload-weights needs a layer-wise policy (all, conv, dyn or plan); none is the "
                                     "network-wide baseline");
    return CLI_EXIT_OK;
}

int cli_vmem_policy(const cli_cmd *cmd, const char *policy, const char *spill_dir, size_t host_mem, int trace,
                    int offload_weights, fg_mem_policy *pol, int *have) {
    *have = 0;
    int rc = cli_vmem_policy_check(cmd, policy, spill_dir, host_mem, trace, offload_weights);
    if (rc != CLI_EXIT_OK || !policy) return rc;
    fg_vmem_kind kind;
    (void)fg_vmem_kind_parse(policy, &kind); /* checked above */
    fg_vmem_config vc = fg_vmem_config_defaults(kind);
    vc.spill_dir = spill_dir;
    vc.host_capacity = host_mem;
    vc.offload_weights = offload_weights;
    /* the trace of a whole run: every iteration (training and test forwards), capped at
     * trace_max events (the library's default, 1,000,000) */
    vc.trace = trace ? FG_VMEM_TRACE_ALL : FG_VMEM_TRACE_OFF;
    fg_status s = fg_vmem_policy_create(pol, &vc);
    if (s != FG_OK) return cli_fail("--policy", s);
    *have = 1;
    return CLI_EXIT_OK;
}

/* The trainer could not be built in --device-mem bytes. When vmem's plan refused the budget its
 * message names the smallest budget; when the budget is too small even for the persistent
 * tensors (build fails before plan) the policy is planned in an unlimited pool to name it. */
static int budget_fail(const cli_train_args *a, const fg_train_cfg *cfg, const fg_data_split *data) {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", fg_last_error());
    if (strstr(msg, "smallest budget")) {
        fprintf(stderr, "frugal: building the trainer: %s\n", msg);
        return CLI_EXIT_FAIL;
    }
    fg_pool *pool = NULL;
    fg_trainer *t = NULL;
    fg_mem_policy pol;
    int have = 0;
    size_t min_bytes = 0;
    fg_train_cfg c = *cfg;
    c.on_batch = NULL;
    c.on_epoch = NULL;
    /* without --policy everything stays on the device, as under none: its plan names the size */
    const char *policy = a->policy ? a->policy : "none";
    if (fg_pool_create(&pool, 0) == FG_OK &&
        cli_vmem_policy(NULL, policy, NULL, 0, 0, a->offload_weights, &pol, &have) == CLI_EXIT_OK && have) {
        fg_vmem *vm = fg_vmem_of(&pol);
        if (fg_trainer_create(&t, a->model, NULL, &c, &data->train, &data->test, pool, &pol) == FG_OK) {
            fg_vmem_stats st;
            fg_vmem_get_stats(vm, &st);
            min_bytes = st.min_device_bytes;
        }
    }
    fg_trainer_free(t);
    fg_pool_destroy(pool);
    if (min_bytes && !a->policy) {
        char b[32], m[32];
        fprintf(stderr,
                "frugal: building the trainer: a device budget of %s (%zu bytes) is too small for '%s' kept whole on "
                "the device: that needs %s (%zu bytes, as --policy none plans it); --policy all, conv, dyn or plan "
                "trains in less by offloading or recomputing activations (%s)\n",
                fg_bytes_str(b, sizeof b, (double)a->device_mem), a->device_mem, a->model,
                fg_bytes_str(m, sizeof m, (double)min_bytes), min_bytes, msg);
    } else if (min_bytes) {
        char b[32], m[32];
        fprintf(stderr,
                "frugal: building the trainer: vmem policy '%s': a device budget of %s (%zu bytes) is too small for "
                "'%s'; the smallest budget that would work is %s (%zu bytes) (%s)\n",
                a->policy, fg_bytes_str(b, sizeof b, (double)a->device_mem), a->device_mem, a->model,
                fg_bytes_str(m, sizeof m, (double)min_bytes), min_bytes, msg);
    } else {
        fprintf(stderr, "frugal: building the trainer: %s\n", msg);
    }
    return CLI_EXIT_FAIL;
}

/* --plot: vmem's device memory over the last training iteration in the trace (the trace keeps
 * the first 1,000,000 events of a run, so for a very long run that is the last one it holds). */
static int write_plot(const cli_train_args *a, fg_vmem *vm) {
    size_t n = fg_vmem_trace_count(vm), first = 0;
    fg_vmem_trace_event *ev = malloc((n ? n : 1) * sizeof *ev);
    if (!ev) return cli_fail("--plot", fg_fail(FG_ERR_OOM, "out of host memory for %zu trace events", n));
    n = fg_vmem_trace_get(vm, ev, n);
    size_t m = cli_plot_iteration(ev, n, &first);
    char why[1024];
    int ok = 0;
    if (m == 0) {
        snprintf(why, sizeof why, "the trace holds no training iteration (%zu events)", n);
    } else {
        char title[512], b[32] = "";
        if (a->device_mem) fg_bytes_str(b, sizeof b, (double)a->device_mem);
        snprintf(title, sizeof title, "%s on %s, batch %lld, policy %s%s%s: device memory over the last training iteration",
                 a->model, a->data, (long long)a->batch, a->policy, b[0] ? ", budget " : "", b);
        const char *labels[1] = {a->policy};
        const fg_vmem_trace_event *evs[1] = {ev + first};
        ok = cli_plot_memory(a->plot, title, 1, labels, evs, &m, why, sizeof why);
    }
    free(ev);
    if (!ok) {
        fprintf(stderr, "frugal: --plot: %s\n", why);
        return CLI_EXIT_FAIL;
    }
    printf("memory plot: %s (device memory over the last training iteration under %s)\n", a->plot, a->policy);
    fflush(stdout);
    return CLI_EXIT_OK;
}

int cli_train_run(const cli_cmd *cmd, cli_train_args *a, cli_train_result *r) {
    memset(r, 0, sizeof *r);
    fg_ckpt_info info;
    int have_ckpt_optim = 0;
    if (a->resume) {
        int rc = apply_checkpoint(a, &info, &have_ckpt_optim);
        if (rc != CLI_EXIT_OK) return rc;
        if (!a->checkpoint) {
            /* checkpoints go to the resumed file: checked now as cli_parse checks every output (a
             * symbolic link is refused at the first checkpoint, after training) */
            if (fg_output_path_check(a->resume) != FG_OK)
                return cli_usage_error(cmd, "--resume: checkpoints go to the resumed file unless --checkpoint names "
                                       "another: %s; give --checkpoint FILE", fg_last_error());
            a->checkpoint = a->resume; /* keep the resumed run resumable */
            /* cli_parse compared the outputs with an explicit --checkpoint only: one of them on the
             * resumed file would replace the resumable checkpoint (--save by bare weights) */
            const char *outs[][2] = {{"save", a->save}, {"json", a->json}, {"trace", a->trace}, {"plot", a->plot}};
            for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++)
                if (outs[i][1] && cli_same_file(outs[i][1], a->resume))
                    return cli_usage_error(cmd, "--%s %s names the file --resume goes on checkpointing to "
                                           "(--checkpoint defaults to --resume): it would replace the resumable "
                                           "checkpoint; write --%s to another file, or give --checkpoint another file",
                                           outs[i][0], outs[i][1], outs[i][0]);
        }
    }
    const data_defaults *dd = find_defaults(a->data);
    if (!a->set_epochs) a->epochs = dd->epochs;
    if (!a->set_batch && !a->resume) a->batch = dd->batch;
    if (!a->set_optim && !a->resume) a->optim = fg_optim_kind_name(dd->optim);
    if (!a->set_lr && !have_ckpt_optim) a->lr = dd->lr;
    if (!a->set_lr_decay && !a->resume) a->lr_decay = dd->lr_decay;
    if (a->epochs < 0) return cli_usage_error(cmd, "--epochs must be >= 0, got %d", a->epochs);
    /* the trainer would train nothing and exit 0, as if it had (lm train refuses this too) */
    if (a->resume && a->epochs <= info.epoch)
        return cli_usage_error(cmd, "--epochs %d%s: %s has %d epochs already: none left to train (expected more "
                               "than %d)", a->epochs, a->set_epochs ? "" : " (the default)", a->resume, info.epoch,
                               info.epoch);
    if (a->batch <= 0) return cli_usage_error(cmd, "--batch must be > 0, got %lld", (long long)a->batch);
    if (!(a->lr > 0)) return cli_usage_error(cmd, "--lr must be > 0, got %g", a->lr);
    if (!(a->lr_decay > 0 && a->lr_decay <= 1))
        return cli_usage_error(cmd, "--lr-decay must be in (0, 1], got %g", a->lr_decay);
    if (a->checkpoint_every < 0)
        return cli_usage_error(cmd, "--checkpoint-every must be >= 0, got %lld", (long long)a->checkpoint_every);
    if (a->threads < 0) return cli_usage_error(cmd, "--threads must be >= 0 (0 = all cores), got %d", a->threads);
    /* --plot draws vmem's trace: it needs a policy, a file name gnuplot can quote and gnuplot,
     * all checked before any training */
    if (a->plot) {
        if (!a->policy) return cli_usage_error(cmd, "--plot needs --policy none|all|conv|dyn|plan");
        int prc0 = cli_plot_option_check(cmd, a->plot);
        if (prc0 != CLI_CONTINUE) return prc0;
    }
    /* checked before the data is loaded so a bad --policy fails at once; the policy itself is
     * made after (the trainer owns it) */
    int prc = cli_vmem_policy_check(cmd, a->policy, a->spill_dir, a->host_mem, a->trace != NULL, a->offload_weights);
    if (prc != CLI_EXIT_OK) return prc;

    fg_train_cfg cfg = fg_train_defaults();
    fg_status s;
    if (have_ckpt_optim) {
        cfg.optim = info.optim;
        if (a->set_lr) cfg.optim.lr = (float)a->lr;
    } else {
        fg_optim_kind kind;
        s = fg_optim_kind_parse(a->optim, &kind);
        if (s != FG_OK) return cli_usage_error(cmd, "--optim: %s", fg_last_error());
        cfg.optim = fg_optim_defaults(kind, (float)a->lr);
    }
    if (a->set_momentum && cfg.optim.kind != FG_OPTIM_SGD)
        return cli_usage_error(cmd, "--momentum applies to --optim sgd only (this run is %s)",
                               fg_optim_kind_name(cfg.optim.kind));
    if (a->set_momentum && !(a->momentum >= 0 && a->momentum < 1))
        return cli_usage_error(cmd, "--momentum must be in [0, 1), got %g", a->momentum);
    if (a->set_wd && !(a->weight_decay >= 0))
        return cli_usage_error(cmd, "--weight-decay must be >= 0, got %g", a->weight_decay);
    if (a->set_momentum) cfg.optim.momentum = (float)a->momentum;
    if (a->set_wd) cfg.optim.weight_decay = (float)a->weight_decay;
    a->optim = fg_optim_kind_name(cfg.optim.kind);
    a->lr = cfg.optim.lr;
    cfg.lr_decay = (float)a->lr_decay;
    cfg.epochs = a->epochs;
    cfg.batch = a->batch;
    cfg.seed = a->seed;
    cfg.data_name = a->data;
    cfg.checkpoint_path = a->checkpoint;
    cfg.checkpoint_every = a->checkpoint_every;
    cfg.stop = &cli_stop_flag;

    fg_threads_set(a->threads);
    fg_data_split data;
    s = fg_data_split_load(a->data, a->data_dir, &data);
    if (s != FG_OK) return cli_fail("loading data", s);
    fg_log(FG_LOG_INFO, "data: %s", data.source);

    fg_pool *pool = NULL;
    fg_trainer *t = NULL;
    run_ui ui;
    memset(&ui, 0, sizeof ui);
    cli_progress_init(&ui.prog);
    ui.batch = a->batch;
    ui.quiet = a->quiet;
    cfg.on_batch = on_batch;
    cfg.on_epoch = on_epoch;
    cfg.user = &ui;

    int rc = CLI_EXIT_OK;
    fg_mem_policy pol;
    int have_pol = 0;
    fg_vmem *vm = NULL; /* valid while the trainer's graph lives */
    s = fg_pool_create(&pool, a->device_mem);
    if (s != FG_OK) rc = cli_fail("device pool", s);
    /* --plot takes the same whole-run trace as --trace and draws its last training iteration */
    if (rc == CLI_EXIT_OK)
        rc = cli_vmem_policy(cmd, a->policy, a->spill_dir, a->host_mem, a->trace != NULL || a->plot != NULL,
                             a->offload_weights, &pol, &have_pol);
    if (rc == CLI_EXIT_OK) {
        if (have_pol) vm = fg_vmem_of(&pol);
        /* the trainer takes the policy (also on failure); a budget too small for the policy
         * fails here, in plan, before any training, with the smallest budget in the message */
        s = fg_trainer_create(&t, a->model, NULL, &cfg, &data.train, &data.test, pool, have_pol ? &pol : NULL);
        if (s == FG_ERR_OOM && a->device_mem) {
            rc = budget_fail(a, &cfg, &data);
            vm = NULL;
        } else if (s != FG_OK) {
            rc = cli_fail("building the trainer", s);
            vm = NULL;
        } else if (have_pol) {
            fg_log(FG_LOG_INFO, "vmem policy %s", a->policy);
        }
    }
    if (rc == CLI_EXIT_OK && a->resume) {
        s = fg_trainer_resume(t, a->resume);
        if (s != FG_OK) rc = cli_fail("--resume", s);
    }
    if (rc == CLI_EXIT_OK) {
        fg_log(FG_LOG_INFO, "training %s on %s: %d epochs, batch %lld, %s lr %g (x%g per epoch), seed %" PRIu64 ", %d threads",
               a->model, a->data, a->epochs, (long long)a->batch, a->optim, a->lr, a->lr_decay, a->seed, fg_threads_get());
        cli_stop_flag = 0;
        cli_sigint_install();
        int done_before = fg_trainer_epochs_done(t);
        ui.t0 = fg_time_now();
        ui.fresh = 1;
        s = fg_trainer_run(t);
        cli_sigint_restore();
        cli_progress_clear(&ui.prog);
        if (s != FG_OK) {
            if (fg_trainer_interrupted(t)) {
                fprintf(stderr, "frugal: %s\n", fg_last_error());
                if (a->checkpoint && s != FG_TRAIN_INTERRUPTED) /* the checkpoint at the interrupt failed */
                    fprintf(stderr, "interrupted, and this point could not be checkpointed (above); %s holds the last "
                            "checkpoint written, if any: resume from it with --resume %s\n", a->checkpoint, a->checkpoint);
                else if (a->checkpoint) fprintf(stderr, "interrupted; resume with --resume %s\n", a->checkpoint);
                else fprintf(stderr, "interrupted; no checkpoint written (give --checkpoint FILE to make runs resumable)\n");
                /* the results of a finished run only: say so rather than leave the user looking for them */
                if (a->save || a->json)
                    fprintf(stderr, "interrupted: %s%s%s not written (the run did not finish)\n",
                            a->save ? "--save" : "", a->save && a->json ? " and " : "", a->json ? "--json" : "");
                rc = CLI_EXIT_INTERRUPTED;
            } else {
                rc = cli_fail("training", s);
            }
        }
        if (rc == CLI_EXIT_OK) {
            int n = fg_trainer_epochs_done(t);
            r->n_epochs = n;
            r->hist = malloc((size_t)(n ? n : 1) * sizeof *r->hist);
            if (!r->hist) rc = cli_fail("training", fg_fail(FG_ERR_OOM, "out of host memory"));
            else if (n) memcpy(r->hist, fg_trainer_history(t), (size_t)n * sizeof *r->hist);
            for (int i = 0; i < n; i++) r->seconds += r->hist[i].seconds;
        }
        if (rc == CLI_EXIT_OK) {
            /* the last epoch's test accuracy is that of the final weights; without epochs in
             * this run (--epochs 0: a resume with none left is refused above) measure it */
            if (r->n_epochs > done_before) {
                r->test_acc = r->hist[r->n_epochs - 1].test_acc;
            } else {
                s = fg_trainer_test_accuracy(t, &r->test_acc);
                if (s != FG_OK) rc = cli_fail("evaluating", s);
            }
        }
        if (rc == CLI_EXIT_OK) {
            snprintf(r->model, sizeof r->model, "%s", a->model);
            snprintf(r->data, sizeof r->data, "%s", a->data);
            snprintf(r->optim, sizeof r->optim, "%s", a->optim);
            r->lr = a->lr;
            r->lr_decay = a->lr_decay;
            r->batch = a->batch;
            r->n_train = data.train.n;
            r->n_test = data.test.n;
        }
        if (rc == CLI_EXIT_OK && a->save) {
            s = fg_trainer_save_weights(t, a->save);
            if (s != FG_OK) rc = cli_fail("--save", s);
            else fg_log(FG_LOG_INFO, "weights saved to %s", a->save);
        }
        if (rc == CLI_EXIT_OK && a->json) rc = write_json(a, r);
    }
    if (vm && a->trace) {
        /* also after a failed or interrupted run: the trace shows what happened up to there */
        s = fg_vmem_trace_write_csv(vm, fg_trainer_graph(t), a->trace);
        if (s != FG_OK) {
            int trc = cli_fail("--trace", s);
            if (rc == CLI_EXIT_OK) rc = trc;
        } else {
            fg_log(FG_LOG_INFO, "vmem trace (%zu events) written to %s", fg_vmem_trace_count(vm), a->trace);
        }
    }
    if (vm && a->plot) {
        /* like the trace, also after a failed run; a failed plot fails the command but loses no
         * results (checkpoint, --save and --json are written by now) */
        int plot_rc = write_plot(a, vm);
        if (rc == CLI_EXIT_OK) rc = plot_rc;
    }
    if (rc != CLI_EXIT_OK) {
        free(r->hist);
        r->hist = NULL;
    }
    fg_trainer_free(t);
    fg_pool_destroy(pool);
    fg_data_split_free(&data);
    return rc;
}

/* ---------------------------------------------------------------- the command */

int cmd_train(int argc, char **argv) {
    cli_train_args a;
    cli_train_args_init(&a);
    cli_opt opts[] = {
        {"model", CLI_STR, &a.model, "NAME", "zoo model (frugal model list); default lenet", 0},
        {"data", CLI_STR, &a.data, "NAME", "data set: mnist or fashion; default mnist", 0},
        {"data-dir", CLI_STR, &a.data_dir, "DIR", "data directory (default $FRUGAL_DATA or ~/.cache/frugal)", 0},
        {"epochs", CLI_INT, &a.epochs, "N", "total epochs (default per data set: mnist 20, fashion 15)", 0},
        {"batch", CLI_I64, &a.batch, "B", "batch size (default 64); the last partial batch of an epoch is dropped", 0},
        {"lr", CLI_FLOAT, &a.lr, "X", "learning rate of the first epoch (default 3e-3)", 0},
        {"lr-decay", CLI_FLOAT, &a.lr_decay, "G", "multiply the learning rate by G after every epoch (default 0.88; 1 = constant)", 0},
        {"optim", CLI_STR, &a.optim, "KIND", "sgd, adam, adamw or rmsprop (default adam)", 0},
        {"momentum", CLI_FLOAT, &a.momentum, "M", "SGD momentum (default 0)", 0},
        {"weight-decay", CLI_FLOAT, &a.weight_decay, "W", "weight decay (L2; decoupled for adamw; default 0, adamw 0.01)", 0},
        {"seed", CLI_U64, &a.seed, "S", "seed of weights, data order and dropout (default 1)", 0},
        {"threads", CLI_INT, &a.threads, "T", "threads (default 0 = all cores); fix it for bit-identical reruns", 0},
        {"device-mem", CLI_SIZE, &a.device_mem, "SIZE", "device pool capacity, e.g. 512M (default unlimited)", 0},
        {"policy", CLI_STR, &a.policy, "KIND",
         "vmem policy: none (network-wide), all or conv (offload what backward reads), dyn (vDNN's search "
         "for the first that fits --device-mem) or plan (keep/offload/recompute per tensor, planned from the "
         "first iteration's measured times) (default: network-wide allocation without vmem)", 0},
        {"spill-dir", CLI_STR, &a.spill_dir, "DIR", "vmem disk tier: spill offloaded tensors past --host-mem to files in DIR", 0},
        {"host-mem", CLI_SIZE, &a.host_mem, "SIZE", "vmem host tier capacity, e.g. 2G (default unlimited)", 0},
        {"offload-weights", CLI_FLAG, &a.offload_weights, NULL,
         "vmem: keep params, their gradients and the inputs in host memory, on the device only around the layers "
         "that use them (needs --policy all|conv|dyn|plan)", 0},
        {"trace", CLI_STR, &a.trace, "FILE.csv", "write vmem's memory-over-time trace of the run (needs --policy)", 0},
        {"plot", CLI_STR, &a.plot, "FILE.png",
         "draw vmem's device memory over the last training iteration with gnuplot (needs --policy and gnuplot; "
         "records the whole run's trace as --trace does, up to 1,000,000 events, and draws the last training "
         "iteration it holds)", 0},
        {"json", CLI_STR, &a.json, "FILE", "write results (per-epoch loss and accuracy) as JSON", 0},
        {"save", CLI_STR, &a.save, "FILE", "write the trained weights (safetensors) for frugal eval", 0},
        {"checkpoint", CLI_STR, &a.checkpoint, "FILE",
         "write a resumable checkpoint after every epoch and on Ctrl-C or SIGTERM", 0},
        {"checkpoint-every", CLI_I64, &a.checkpoint_every, "N", "also checkpoint every N batches (needs --checkpoint)", 0},
        {"resume", CLI_STR, &a.resume, "FILE",
         "continue from a checkpoint up to --epochs (takes model, data, batch, seed, optimizer from it; keeps "
         "checkpointing to FILE unless --checkpoint is given)", 0},
        {"quiet", CLI_FLAG, &a.quiet, NULL, "no progress line", 0},
        {"verbose", CLI_FLAG, &a.verbose, NULL, "debug messages", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"train", "frugal train [--model NAME] [--data mnist|fashion] [options]",
                   "Trains a zoo model on an image classification set; prints one line per epoch and, last,\n"
                   "'test accuracy: 0.xxxx'. Ctrl-C or SIGTERM (timeout, docker stop, SLURM) writes a checkpoint\n"
                   "(with --checkpoint) and exits 130 (also for SIGTERM).",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    cli_log_init(a.verbose);
    a.set_model = cli_find(opts, "model")->set;
    a.set_data = cli_find(opts, "data")->set;
    a.set_epochs = cli_find(opts, "epochs")->set;
    a.set_batch = cli_find(opts, "batch")->set;
    a.set_lr = cli_find(opts, "lr")->set;
    a.set_lr_decay = cli_find(opts, "lr-decay")->set;
    a.set_optim = cli_find(opts, "optim")->set;
    a.set_seed = cli_find(opts, "seed")->set;
    a.set_momentum = cli_find(opts, "momentum")->set;
    a.set_wd = cli_find(opts, "weight-decay")->set;
    if (a.checkpoint_every > 0 && !a.checkpoint && !a.resume)
        return cli_usage_error(&cmd, "--checkpoint-every needs --checkpoint FILE");
    cli_train_result r;
    rc = cli_train_run(&cmd, &a, &r);
    if (rc != CLI_EXIT_OK) return rc;
    printf("test accuracy: %.4f\n", r.test_acc);
    free(r.hist);
    return CLI_EXIT_OK;
}
