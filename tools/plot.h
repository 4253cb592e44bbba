/* Plots of the frugal command-line tool, drawn by gnuplot (a separate program, run through a
 * pipe): the plumbing every plot shares (is gnuplot installed, is the file name safe to quote,
 * a pngcairo terminal, a temporary PNG renamed into place only when gnuplot succeeded, its
 * first error line as the reason when it did not) and vmem's memory-over-time figure in the
 * style of the vDNN paper (Rhu et al., MICRO 2016, figure "memory usage over time"), and GA3C's
 * learning curve (rl train, the demo). */
#ifndef FRUGAL_CLI_PLOT_H
#define FRUGAL_CLI_PLOT_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "frugal/rl.h"
#include "frugal/vmem.h"

/* 1 when an executable `prog` is in one of $PATH's directories. */
int cli_on_path(const char *prog);

/* Checks what can be checked before a long run: the file name can be quoted for gnuplot (no '
 * or newline) and gnuplot is on PATH. Returns 1, or 0 with the reason in why; *usage is set to
 * 1 when the reason is the file name (a usage error), 0 otherwise. usage may be NULL. */
int cli_plot_check(const char *png, char *why, size_t why_len, int *usage);
/* The same check for a command's --plot option, before a long run: CLI_CONTINUE, or the exit
 * code after printing why (a usage error for the file name, pointing at cmd's --help; exit 1 when
 * gnuplot is missing). */
struct cli_cmd;
int cli_plot_option_check(const struct cli_cmd *cmd, const char *png);

/* A gnuplot process writing a PNG. */
typedef struct cli_gnuplot {
    FILE *f;          /* gnuplot's standard input: write commands and '-' data blocks here */
    char *png;        /* where the plot goes */
    char *tmp;        /* where gnuplot writes it (png + ".tmp.<pid>", created by us), renamed on success */
    dev_t tmp_dev;    /* the file created as tmp: renamed only when tmp is still that regular file */
    ino_t tmp_ino;
    char err[256];    /* gnuplot's stderr, kept for the reason of a failure ("" = /dev/null) */
    struct sigaction old_pipe; /* SIGPIPE is ignored while gnuplot runs (it may exit before reading
                                  all we write); restored by close */
} cli_gnuplot;

/* Checks as cli_plot_check, starts gnuplot and sets a pngcairo terminal of width x height
 * pixels writing to the temporary file. Returns 1, or 0 with the reason in why. */
int cli_gnuplot_open(cli_gnuplot *gp, const char *png, int width, int height, char *why, size_t why_len);
/* Writes s as a gnuplot single-quoted string ('' for a quote, newlines as spaces). */
void cli_gnuplot_str(FILE *f, const char *s);
/* Ends gnuplot's input and waits for it; on success renames the temporary PNG to the file and
 * returns 1; else removes it and returns 0 with "gnuplot failed (...): <its first error>". */
int cli_gnuplot_close(cli_gnuplot *gp, char *why, size_t why_len);

/* One training iteration of a vmem trace ev[0..n) (FG_VMEM_TRACE_LAST or _ALL): from the last
 * FG_VMEM_EV_BEGIN of node 0 with pass FG_FORWARD that is followed by a backward step, up to
 * the next node-0 forward (a test forward or the next iteration) or the end of the trace.
 * An iteration whose backward reached node 0 is preferred to one cut short (a full trace drops
 * what comes after its cap). Returns the number of events and sets *first; 0 when the trace
 * holds no forward followed by a backward. */
size_t cli_plot_iteration(const fg_vmem_trace_event *ev, size_t n, size_t *first);

/* Device memory in use (MiB, or GiB from 1 GiB up) against seconds, one step line per series,
 * each from its own t = 0 (its first event): a dashed vertical line where its backward pass
 * starts (its first FG_VMEM_EV_BEGIN with pass FG_BACKWARD), and its offload and prefetch
 * issues as small triangles on its line. ev[k][0..n_ev[k]) is series k (e.g. the events
 * cli_plot_iteration picked), labels[k] its name in the key. PNG via pngcairo. Returns 1, or 0
 * with the reason in why (gnuplot missing, gnuplot failed, a quote in the file name, an empty
 * series). */
int cli_plot_memory(const char *png, const char *title, int n_series, const char *const *labels,
                    const fg_vmem_trace_event *const *ev, const size_t *n_ev, char *why, size_t why_len);

/* A GA3C run's learning curve (st->curve: mean return of the last 100 episodes against frames)
 * under `title`. Returns 1, or 0 with the reason in why. */
int cli_plot_rl_curve(const fg_ga3c_stats *st, const char *title, const char *png, char *why, size_t why_len);

#endif
