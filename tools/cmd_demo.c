/* `frugal demo`: trains LeNet-5 on MNIST with the defaults of `frugal train` (the same code),
 * prints the test accuracy and a short summary, and draws the learning curve with gnuplot when
 * it is installed. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int on_path(const char *prog) {
    const char *path = getenv("PATH");
    if (!path) return 0;
    char buf[4096];
    const char *p = path;
    while (*p) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, n ? p : ".", prog);
        if (access(buf, X_OK) == 0) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

/* Loss (left axis) and train/test accuracy (right axis) per epoch, as a PNG. */
static int plot_curve(const cli_train_result *r, const char *png) {
    /* gnuplot's warnings (e.g. a one-point range) are noise here; success is checked by the file */
    FILE *gp = popen("gnuplot 2>/dev/null", "w");
    if (!gp) return 0;
    fprintf(gp, "set terminal pngcairo size 900,540 noenhanced\n");
    fprintf(gp, "set output '%s'\n", png);
    fprintf(gp, "set title '%s on %s: learning curve (test accuracy %.4f)'\n", r->model, r->data, r->test_acc);
    fprintf(gp, "set xlabel 'epoch'\nset ylabel 'training loss'\nset y2label 'accuracy'\n");
    fprintf(gp, "set ytics nomirror\nset y2tics\nset grid\nset key center right\n");
    fprintf(gp, "set xrange [0.5:%d.5]\nset xtics 1\n", r->n_epochs);
    fprintf(gp, "plot '-' using 1:2 with linespoints title 'loss' axes x1y1, "
                "'-' using 1:2 with linespoints title 'train accuracy' axes x1y2, "
                "'-' using 1:2 with linespoints title 'test accuracy' axes x1y2\n");
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < r->n_epochs; i++) {
            const fg_epoch_result *e = &r->hist[i];
            double v = k == 0 ? e->loss : k == 1 ? e->train_acc : e->test_acc;
            fprintf(gp, "%d %.6f\n", i + 1, v);
        }
        fprintf(gp, "e\n");
    }
    int rc = pclose(gp);
    return rc == 0 && access(png, R_OK) == 0;
}

int cmd_demo(int argc, char **argv) {
    cli_train_args a;
    cli_train_args_init(&a);
    const char *plot = "demo-lenet.png";
    int no_plot = 0;
    cli_opt opts[] = {
        {"epochs", CLI_INT, &a.epochs, "N", "epochs (default 20, as frugal train on mnist)", 0},
        {"threads", CLI_INT, &a.threads, "T", "threads (default 0 = all cores)", 0},
        {"data-dir", CLI_STR, &a.data_dir, "DIR", "data directory (default $FRUGAL_DATA or ~/.cache/frugal)", 0},
        {"json", CLI_STR, &a.json, "FILE", "write the results as JSON (as frugal train --json)", 0},
        {"plot", CLI_STR, &plot, "FILE", "learning-curve PNG (default demo-lenet.png; needs gnuplot)", 0},
        {"no-plot", CLI_FLAG, &no_plot, NULL, "do not draw the learning curve", 0},
        {"quiet", CLI_FLAG, &a.quiet, NULL, "no progress line", 0},
        {"verbose", CLI_FLAG, &a.verbose, NULL, "debug messages", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"demo", "frugal demo [options]",
                   "Trains LeNet-5 on MNIST with the defaults of 'frugal train --model lenet --data mnist',\n"
                   "prints the test accuracy and a summary, and plots the learning curve with gnuplot.\n"
                   "The data must be fetched first: scripts/fetch-data.sh (scripts/demo.sh does it).",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    cli_log_init(a.verbose);
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

    printf("frugal demo: LeNet-5 on MNIST\n");
    fflush(stdout);
    cli_train_result r;
    rc = cli_train_run(&a, &r);
    if (rc != CLI_EXIT_OK) return rc;

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
        if (strchr(plot, '\'') || strchr(plot, '\n')) printf("  plot           skipped: the file name may not contain quotes\n");
        else if (!on_path("gnuplot")) printf("  plot           skipped: gnuplot is not installed\n");
        else if (plot_curve(&r, plot)) printf("  plot           %s (loss and accuracy per epoch)\n", plot);
        else printf("  plot           gnuplot failed to write %s\n", plot);
    }
    printf("test accuracy: %.4f\n", r.test_acc);
    free(r.hist);
    return CLI_EXIT_OK;
}
