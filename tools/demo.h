/* The parts of `frugal demo` that show the systems after vmem, one file each (tools/demo_lstm.c,
 * tools/demo_rl.c, tools/demo_vit.c); tools/cmd_demo.c runs them in that order after the LeNet
 * and vmem parts. Each part takes about a minute on 2 cores, prints its own short summary
 * ("summary (lstm)" and so on) and, unless no_plot, draws one PNG named in `plot`. */
#ifndef FRUGAL_DEMO_H
#define FRUGAL_DEMO_H

typedef struct demo_opts {
    const char *data_dir; /* NULL: $FRUGAL_DATA or ~/.cache/frugal */
    int threads;          /* 0 = all cores */
    int quiet;            /* no progress lines */
    int no_plot;          /* draw nothing */
    const char *plot;     /* the part's PNG (each part has its own default, demo-<part>.png) */
    double scale;         /* 1 = the full part (about a minute); smaller values shorten it for tests */
} demo_opts;

/* Each returns a CLI exit code (CLI_EXIT_OK, or CLI_EXIT_FAIL after printing the library's message). */
int demo_lstm(const demo_opts *o); /* sparse LSTM: dense against structured on the Brown LM */
int demo_rl(const demo_opts *o);   /* GA3C learning Breakout: PPS/TPS and the return rising */
int demo_vit(const demo_opts *o);  /* dynamic ViT: the governor following a changing budget */

#endif
