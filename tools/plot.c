/* gnuplot plots for the CLI (`frugal demo`'s learning curve and vmem figure, `frugal train
 * --plot`). gnuplot runs as a child process reading commands and inline '-' data blocks from a
 * pipe; it writes a temporary PNG next to the target, which is renamed into place only when
 * gnuplot exited cleanly, so a failed plot never leaves a half-written or stale-looking file.
 * gnuplot's stderr goes to a temporary file whose last line becomes the reason of a failure. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plot.h"
#include "cli.h"

int cli_on_path(const char *prog) {
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

int cli_plot_check(const char *png, char *why, size_t why_len, int *usage) {
    if (usage) *usage = 0;
    if (strchr(png, '\'') || strchr(png, '\n') || strchr(png, '\r')) {
        if (usage) *usage = 1;
        snprintf(why, why_len, "the file name '%s' may not contain a quote (') or a newline (gnuplot quotes it)", png);
        return 0;
    }
    if (!cli_on_path("gnuplot")) {
        snprintf(why, why_len, "gnuplot is not installed (not found on PATH); install it (e.g. apt-get install gnuplot-nox)");
        return 0;
    }
    return 1;
}

void cli_gnuplot_str(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputs("''", f);
        else if (*s == '\n' || *s == '\r') fputc(' ', f);
        else fputc(*s, f);
    }
    fputc('\'', f);
}

static void gnuplot_free(cli_gnuplot *gp) {
    free(gp->png);
    free(gp->tmp);
    gp->png = gp->tmp = NULL;
    if (gp->err[0]) unlink(gp->err);
    gp->err[0] = 0;
}

int cli_gnuplot_open(cli_gnuplot *gp, const char *png, int width, int height, char *why, size_t why_len) {
    memset(gp, 0, sizeof *gp);
    if (!cli_plot_check(png, why, why_len, NULL)) return 0;
    size_t n = strlen(png);
    gp->png = strdup(png);
    gp->tmp = malloc(n + 32);
    if (!gp->png || !gp->tmp) {
        gnuplot_free(gp);
        snprintf(why, why_len, "out of host memory");
        return 0;
    }
    /* the temporary is created here, exclusively and not through a link, for gnuplot to fill:
     * gnuplot's own open would follow a symbolic link planted under the name */
    int tfd = -1;
    struct stat tsb;
    if (fg_output_path_check(png) != FG_OK || cli_tmp_create(png, gp->tmp, n + 32, &tfd) != FG_OK) {
        snprintf(why, why_len, "%s", fg_last_error());
        gnuplot_free(gp);
        return 0;
    }
    if (fstat(tfd, &tsb) == 0) {
        gp->tmp_dev = tsb.st_dev;
        gp->tmp_ino = tsb.st_ino;
    }
    close(tfd);
    /* gnuplot's stderr, for the reason of a failure; without a temporary file it is dropped */
    const char *td = getenv("TMPDIR");
    if (!td || !td[0] || strchr(td, '\'') || strlen(td) > sizeof gp->err - 32) td = "/tmp";
    snprintf(gp->err, sizeof gp->err, "%s/frugal-gnuplot-XXXXXX", td);
    int fd = mkstemp(gp->err);
    if (fd < 0) gp->err[0] = 0;
    else close(fd);
    char cmd[sizeof gp->err + 64];
    if (gp->err[0]) snprintf(cmd, sizeof cmd, "gnuplot >/dev/null 2>'%s'", gp->err);
    else snprintf(cmd, sizeof cmd, "gnuplot >/dev/null 2>&1");
    /* a gnuplot that stops reading (an error) must not kill us with SIGPIPE: writes fail instead */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, &gp->old_pipe);
    fflush(NULL); /* the child must not inherit (and flush again) our buffered output */
    gp->f = popen(cmd, "w");
    if (!gp->f) {
        int e = errno;
        sigaction(SIGPIPE, &gp->old_pipe, NULL);
        unlink(gp->tmp);
        gnuplot_free(gp);
        snprintf(why, why_len, "could not start gnuplot: %s", strerror(e));
        return 0;
    }
    fprintf(gp->f, "set terminal pngcairo size %d,%d noenhanced\n", width, height);
    fprintf(gp->f, "set output ");
    cli_gnuplot_str(gp->f, gp->tmp);
    fprintf(gp->f, "\n");
    return 1;
}

/* The last non-blank line of gnuplot's stderr (its error message comes last, after the echoed
 * command and a caret line), or "" when there is none. */
static void last_error_line(const char *path, char *out, size_t cap) {
    out[0] = 0;
    if (!path[0]) return;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p && strspn(p, "^ \t") != strlen(p)) snprintf(out, cap, "%s", p);
    }
    fclose(f);
}

int cli_gnuplot_close(cli_gnuplot *gp, char *why, size_t why_len) {
    fprintf(gp->f, "set output\n"); /* closes the PNG */
    fflush(gp->f);
    int st = pclose(gp->f);
    gp->f = NULL;
    sigaction(SIGPIPE, &gp->old_pipe, NULL);
    struct stat sb;
    int ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && stat(gp->tmp, &sb) == 0 && sb.st_size > 0;
    if (ok &&
        (lstat(gp->tmp, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_dev != gp->tmp_dev || sb.st_ino != gp->tmp_ino)) {
        /* replaced while gnuplot ran (a link, another file): not ours to rename over the target */
        snprintf(why, why_len, "%s changed while gnuplot wrote it (no longer the file created for it): %s not written",
                 gp->tmp, gp->png);
        gnuplot_free(gp);
        return 0;
    }
    if (ok) {
        if (rename(gp->tmp, gp->png) != 0) {
            snprintf(why, why_len, "could not rename %s to %s: %s", gp->tmp, gp->png, strerror(errno));
            ok = 0;
        }
    } else {
        char msg[512];
        last_error_line(gp->err, msg, sizeof msg);
        char how[64];
        if (st == -1) snprintf(how, sizeof how, "could not be waited for");
        else if (WIFSIGNALED(st)) snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(st));
        else if (WEXITSTATUS(st) != 0) snprintf(how, sizeof how, "exit status %d", WEXITSTATUS(st));
        else snprintf(how, sizeof how, "no PNG written");
        snprintf(why, why_len, "gnuplot failed to write %s (%s)%s%s", gp->png, how, msg[0] ? ": " : "", msg);
    }
    if (!ok) unlink(gp->tmp);
    gnuplot_free(gp);
    return ok;
}

/* ---------------------------------------------------------------- vmem's memory over time */

static int is_iter_start(const fg_vmem_trace_event *e) {
    return e->kind == FG_VMEM_EV_BEGIN && e->node == 0 && e->pass == FG_FORWARD;
}

size_t cli_plot_iteration(const fg_vmem_trace_event *ev, size_t n, size_t *first) {
    size_t best = 0, best_n = 0;
    int best_complete = 0;
    size_t s = 0;
    while (s < n && !is_iter_start(&ev[s])) s++;
    while (s < n) {
        /* the segment [s, e): one node-0 forward up to the next */
        size_t e = s + 1;
        int backward = 0, complete = 0;
        while (e < n && !is_iter_start(&ev[e])) {
            if (ev[e].pass == FG_BACKWARD && ev[e].node >= 0) {
                if (ev[e].kind == FG_VMEM_EV_BEGIN) backward = 1;
                if (ev[e].kind == FG_VMEM_EV_END && ev[e].node == 0) complete = 1;
            }
            e++;
        }
        /* the last training iteration, a complete one before one cut short by the trace's cap */
        if (backward && (complete || !best_complete)) {
            best = s;
            best_n = e - s;
            best_complete = complete;
        }
        s = e;
    }
    *first = best;
    return best_n;
}

/* Line colours of the series (and of their markers and backward-start lines). */
static const char *const series_rgb[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
#define N_RGB ((int)(sizeof series_rgb / sizeof series_rgb[0]))

/* Writes one '-' data block: "seconds device_memory" for the events of kind `kind` (all events
 * when kind < 0), time from the series' first event, memory divided by `unit`. */
static void data_block(FILE *f, const fg_vmem_trace_event *ev, size_t n, int kind, double unit) {
    double t0 = ev[0].t;
    for (size_t i = 0; i < n; i++)
        if (kind < 0 || (int)ev[i].kind == kind) fprintf(f, "%.9f %.6f\n", ev[i].t - t0, (double)ev[i].device_bytes / unit);
    fprintf(f, "e\n");
}

static size_t count_kind(const fg_vmem_trace_event *ev, size_t n, fg_vmem_ev_kind kind) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ev[i].kind == kind;
    return c;
}

int cli_plot_memory(const char *png, const char *title, int n_series, const char *const *labels,
                    const fg_vmem_trace_event *const *ev, const size_t *n_ev, char *why, size_t why_len) {
    if (n_series <= 0) {
        snprintf(why, why_len, "nothing to plot");
        return 0;
    }
    size_t peak = 0;
    for (int k = 0; k < n_series; k++) {
        if (n_ev[k] == 0) {
            snprintf(why, why_len, "series '%s' has no trace events", labels[k]);
            return 0;
        }
        for (size_t i = 0; i < n_ev[k]; i++)
            if (ev[k][i].device_bytes > peak) peak = ev[k][i].device_bytes;
    }
    const double gib = 1024.0 * 1024.0 * 1024.0;
    double unit = (double)peak >= gib ? gib : 1024.0 * 1024.0;
    const char *uname = unit == gib ? "GiB" : "MiB";

    cli_gnuplot gp;
    if (!cli_gnuplot_open(&gp, png, 1000, 560, why, why_len)) return 0;
    FILE *f = gp.f;
    fprintf(f, "set title ");
    cli_gnuplot_str(f, title);
    fprintf(f, "\nset xlabel 'seconds since the iteration''s first forward step'\n");
    fprintf(f, "set ylabel 'device memory in use (%s)'\n", uname);
    fprintf(f, "set grid\nset key below\nset xrange [0:*]\n");
    fprintf(f, "set yrange [0:%.6f]\n", 1.15 * (double)peak / unit + 1e-9);

    /* where each series' backward pass starts: a dashed vertical line and a label near the top */
    for (int k = 0; k < n_series; k++) {
        const char *rgb = series_rgb[k % N_RGB];
        for (size_t i = 0; i < n_ev[k]; i++) {
            const fg_vmem_trace_event *e = &ev[k][i];
            if (e->kind != FG_VMEM_EV_BEGIN || e->pass != FG_BACKWARD) continue;
            double tb = e->t - ev[k][0].t;
            fprintf(f, "set arrow from %.9f, graph 0 to %.9f, graph 1 nohead dashtype 2 linewidth 1.5 lc rgb '%s'\n", tb,
                    tb, rgb);
            char lab[256];
            snprintf(lab, sizeof lab, " %s: backward ->", labels[k]);
            fprintf(f, "set label ");
            cli_gnuplot_str(f, lab);
            fprintf(f, " at %.9f, graph %.3f left textcolor rgb '%s'\n", tb, 0.96 - 0.05 * k, rgb);
            break;
        }
    }

    /* the plot command: per series its step line, then (when it has any) its offload and
     * prefetch issues as points; the data blocks follow in the same order */
    fprintf(f, "plot ");
    int first = 1;
    for (int k = 0; k < n_series; k++) {
        const char *rgb = series_rgb[k % N_RGB];
        char t[256];
        fprintf(f, "%s'-' using 1:2 with steps linewidth 2 lc rgb '%s' title ", first ? "" : ", ", rgb);
        cli_gnuplot_str(f, labels[k]);
        first = 0;
        if (count_kind(ev[k], n_ev[k], FG_VMEM_EV_OFFLOAD_ISSUE)) {
            snprintf(t, sizeof t, "%s: offload issued", labels[k]);
            fprintf(f, ", '-' using 1:2 with points pointtype 11 pointsize 1.1 lc rgb '%s' title ", rgb);
            cli_gnuplot_str(f, t);
        }
        if (count_kind(ev[k], n_ev[k], FG_VMEM_EV_PREFETCH_ISSUE)) {
            snprintf(t, sizeof t, "%s: prefetch issued", labels[k]);
            fprintf(f, ", '-' using 1:2 with points pointtype 9 pointsize 1.1 lc rgb '%s' title ", rgb);
            cli_gnuplot_str(f, t);
        }
    }
    fprintf(f, "\n");
    for (int k = 0; k < n_series; k++) {
        data_block(f, ev[k], n_ev[k], -1, unit);
        if (count_kind(ev[k], n_ev[k], FG_VMEM_EV_OFFLOAD_ISSUE))
            data_block(f, ev[k], n_ev[k], FG_VMEM_EV_OFFLOAD_ISSUE, unit);
        if (count_kind(ev[k], n_ev[k], FG_VMEM_EV_PREFETCH_ISSUE))
            data_block(f, ev[k], n_ev[k], FG_VMEM_EV_PREFETCH_ISSUE, unit);
    }
    return cli_gnuplot_close(&gp, why, why_len);
}

int cli_plot_option_check(const cli_cmd *cmd, const char *png) {
    char why[512];
    int usage = 0;
    if (cli_plot_check(png, why, sizeof why, &usage)) return CLI_CONTINUE;
    if (usage) return cli_usage_error(cmd, "--plot: %s", why);
    fprintf(stderr, "frugal: --plot: %s, or leave out --plot\n", why);
    return CLI_EXIT_FAIL;
}

int cli_plot_rl_curve(const fg_ga3c_stats *st, const char *title, const char *png, char *why, size_t why_len) {
    cli_gnuplot gp;
    if (!cli_gnuplot_open(&gp, png, 900, 540, why, why_len)) return 0;
    FILE *f = gp.f;
    fprintf(f, "set title ");
    cli_gnuplot_str(f, title);
    fprintf(f, "\nset xlabel 'frames'\nset ylabel 'mean return (last 100 episodes)'\nset grid\nset key off\n");
    fprintf(f, "plot '-' using 1:2 with lines lw 2\n");
    int any = 0;
    for (size_t i = 0; i < st->curve_len; i++)
        if (isfinite(st->curve[i].mean_return)) {
            fprintf(f, "%lld %.6f\n", (long long)st->curve[i].frames, st->curve[i].mean_return);
            any = 1;
        }
    if (!any) fprintf(f, "0 0\n"); /* gnuplot refuses an empty block */
    fprintf(f, "e\n");
    return cli_gnuplot_close(&gp, why, why_len);
}
