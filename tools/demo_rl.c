/* `frugal demo`'s rl part (tools/demo.h): GA3C (Babaeizadeh et al., ICLR 2017) learning MinAtar
 * Breakout from scratch through the library (include/frugal/rl.h), with the settings that learned
 * best in docs/BENCHMARKS.md (8 agents, 1 predictor, 1 trainer, RMSProp lr 3e-3, seed 1).
 *
 * It runs for about DEMO_RL_SECONDS x scale seconds of wall time (or DEMO_RL_FRAMES x scale
 * frames, whichever comes first: a loaded machine shows fewer frames, not a longer demo), prints
 * the current FPS, PPS (states predicted per second), TPS (experiences trained per second) and the
 * mean return of the last 100 episodes as it rises, ends with a "summary (rl)" block and draws the
 * learning curve (mean return against frames) with gnuplot. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "demo.h"
#include "frugal/rl.h"
#include "plot.h"

#define DEMO_RL_ENV "breakout"
#define DEMO_RL_SECONDS 60.0
#define DEMO_RL_FRAMES 3000000.0 /* a cap well above what a minute gives on 2 cores (~0.7 M) */
#define DEMO_RL_AGENTS 8
#define DEMO_RL_LR 3e-3f
#define DEMO_RL_POINT 0.5 /* seconds between learning-curve points (and stop checks) */

typedef struct rl_demo {
    fg_ga3c *r;
    double limit;     /* seconds */
    double line_every;
    double next_line; /* the next progress line, in run seconds */
    int quiet;
    /* the last printed line's counters, for rates over the interval (not since the start) */
    double t;
    int64_t frames, predictions, trainings;
    /* the first point with a finished episode: "the return at the start" */
    int have_start;
    double start_return;
    int64_t start_frames, start_episodes;
} rl_demo;

static void rl_demo_progress(void *user, const fg_ga3c_stats *st) {
    rl_demo *d = user;
    if (!d->have_start && st->episodes > 0) {
        d->have_start = 1;
        d->start_return = st->mean_return_last100;
        d->start_frames = st->frames;
        d->start_episodes = st->episodes;
    }
    if (st->seconds >= d->limit) fg_ga3c_stop(d->r);
    if (cli_stop_flag) fg_ga3c_stop(d->r);
    if (st->seconds + 1e-9 < d->next_line) return;
    d->next_line += d->line_every;
    double dt = st->seconds - d->t;
    if (dt <= 0) dt = 1e-9;
    if (!d->quiet) {
        printf("  %6.1f s  %9lld frames  FPS %6.0f  PPS %6.0f  TPS %6.0f  episodes %6lld  return(100) %6.2f\n",
               st->seconds, (long long)st->frames, (double)(st->frames - d->frames) / dt,
               (double)(st->predictions - d->predictions) / dt, (double)(st->trainings - d->trainings) / dt,
               (long long)st->episodes, st->mean_return_last100);
        fflush(stdout);
    }
    d->t = st->seconds;
    d->frames = st->frames;
    d->predictions = st->predictions;
    d->trainings = st->trainings;
}

/* Mean return of the last 100 episodes against frames; returns 1, or 0 with the reason in why. */
static int rl_demo_plot(const fg_ga3c_stats *st, const char *png, double fps, char *why, size_t why_len) {
    char title[200];
    snprintf(title, sizeof title, "frugal demo: GA3C learning MinAtar Breakout (%d agents, lr %g; %.0f frames/s)",
             DEMO_RL_AGENTS, (double)DEMO_RL_LR, fps);
    return cli_plot_rl_curve(st, title, png, why, why_len);
}

int demo_rl(const demo_opts *o) {
    const char *png = o->plot ? o->plot : "demo-rl.png";
    double scale = o->scale > 0 ? o->scale : 1.0;
    fg_ga3c_config c;
    fg_ga3c_config_init(&c);
    c.env = DEMO_RL_ENV;
    c.agents = DEMO_RL_AGENTS;
    c.predictors = 1;
    c.trainers = 1;
    c.lr = DEMO_RL_LR;
    c.seed = 1;
    c.frames = (int64_t)(DEMO_RL_FRAMES * scale);
    c.progress_seconds = DEMO_RL_POINT;
    rl_demo d;
    memset(&d, 0, sizeof d);
    d.limit = DEMO_RL_SECONDS * scale;
    d.line_every = 5.0 * scale < DEMO_RL_POINT ? DEMO_RL_POINT : 5.0 * scale;
    d.next_line = d.line_every;
    d.quiet = o->quiet;
    c.progress = rl_demo_progress;
    c.progress_user = &d;

    printf("\nfrugal demo: rl, GA3C learning Breakout from scratch (Babaeizadeh et al., ICLR 2017)\n");
    printf("  MinAtar %s (10x10x4, sticky actions 0.1), %d agents, %d predictor, %d trainer, RMSProp lr %g, t_max %d, "
           "min training batch %d, about %.0f s\n",
           DEMO_RL_ENV, c.agents, c.predictors, c.trainers, (double)c.lr, c.t_max, c.min_training_batch, d.limit);
    fflush(stdout);
    fg_status s = fg_ga3c_create(&c, &d.r);
    if (s != FG_OK) return cli_fail("demo: rl", s);
    cli_sigint_install();
    s = fg_ga3c_run(d.r);
    cli_sigint_restore();
    if (s != FG_OK) {
        fg_ga3c_free(d.r);
        return cli_fail("demo: rl", s);
    }
    fg_ga3c_stats st;
    fg_ga3c_get_stats(d.r, &st);
    double sec = st.seconds > 0 ? st.seconds : 1e-9, fps = (double)st.frames / sec;
    printf("\nsummary (rl)\n");
    printf("  run            GA3C on %s, %d agents, %d predictor, %d trainer, lr %g, seed %llu\n", DEMO_RL_ENV, c.agents,
           c.predictors, c.trainers, (double)c.lr, (unsigned long long)c.seed);
    printf("  frames         %lld in %.1f s\n", (long long)st.frames, st.seconds);
    printf("  FPS            %.0f (frames per second, whole run)\n", fps);
    printf("  PPS            %.0f (states predicted per second)\n", (double)st.predictions / sec);
    printf("  TPS            %.0f (experiences trained on per second; %lld updates)\n", (double)st.trainings / sec,
           (long long)st.updates);
    if (d.have_start)
        printf("  return start   %.2f (mean of the last %lld episodes at frame %lld, the first learning-curve point)\n",
               d.start_return, (long long)(d.start_episodes < 100 ? d.start_episodes : 100), (long long)d.start_frames);
    else
        printf("  return start   none (no episode had ended at the first point)\n");
    printf("  return end     %.2f (mean of the last 100 episodes; %lld episodes in all)\n", st.mean_return_last100,
           (long long)st.episodes);
    int rc = CLI_EXIT_OK;
    if (cli_stop_flag) {
        fprintf(stderr, "frugal: demo: interrupted\n");
        rc = CLI_EXIT_INTERRUPTED;
    }
    if (!o->no_plot) {
        char why[512];
        if (rl_demo_plot(&st, png, fps, why, sizeof why))
            printf("  plot           %s (mean return of the last 100 episodes against frames)\n", png);
        else
            printf("  plot           not drawn: %s\n", why);
    }
    fg_ga3c_free(d.r);
    return rc;
}
