/* Shared pieces of the frugal CLI: table-driven option parsing and help, exit codes, the log
 * callback, SIGINT, the progress line and the JSON writer (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- options */

cli_opt *cli_find(cli_opt *opts, const char *name) {
    for (cli_opt *o = opts; o->name; o++)
        if (strcmp(o->name, name) == 0) return o;
    FG_ASSERT_MSG(0, "cli_find: no such option in the table");
    return NULL;
}

int cli_usage_error(const cli_cmd *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "frugal: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cmd) fprintf(stderr, "\n(run 'frugal %s --help' for the options)\n", cmd->name);
    else fprintf(stderr, "\n(run 'frugal --help' for the commands)\n");
    return CLI_EXIT_USAGE;
}

int cli_fail(const char *what, fg_status s) {
    const char *msg = fg_last_error();
    fprintf(stderr, "frugal: %s: %s\n", what, msg[0] ? msg : fg_status_name(s));
    return CLI_EXIT_FAIL;
}

double cli_ram_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (double)pages * (double)page : 0;
}

int cli_ram_check(const cli_cmd *cmd, const char *what, double need_bytes, const char *hint) {
    const double ram = cli_ram_bytes();
    if (ram <= 0 || need_bytes <= ram) return CLI_CONTINUE;
    char nb[32], rb[32];
    fg_bytes_str(nb, sizeof nb, need_bytes);
    fg_bytes_str(rb, sizeof rb, ram);
    return cli_usage_error(cmd, "%s needs %s, more than this machine's %s of RAM; %s", what, nb, rb, hint);
}

int64_t cli_eval_batch(const char *who, int64_t batch, int64_t n, const char *items) {
    if (n <= 0 || batch <= n) return batch;
    fg_log(FG_LOG_INFO, "%s: batch %lld is more than the %lld test %s: using %lld", who, (long long)batch, (long long)n,
           items, (long long)n);
    return n;
}

static const char *type_metavar(const cli_opt *o) {
    if (o->metavar) return o->metavar;
    switch (o->type) {
    case CLI_STR: return "STR";
    case CLI_INT:
    case CLI_I64:
    case CLI_U64: return "N";
    case CLI_FLOAT: return "X";
    case CLI_SIZE: return "SIZE";
    default: return "";
    }
}

/* Prints `text` in a column starting at `indent`, wrapped at word boundaries to 100 columns. A
 * newline in `text` is a space like any other (option tables break their long strings for the
 * source's width, not the terminal's). */
static void print_wrapped(FILE *f, const char *text, int indent, int first_col) {
    const int width = 100;
    int col = first_col;
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == '\n') p++;
        if (!*p) break;
        size_t w = strcspn(p, " \n");
        if (col > indent && col + 1 + (int)w > width) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', f);
            col++;
        }
        fprintf(f, "%.*s", (int)w, p);
        col += (int)w;
        p += w;
    }
    fputc('\n', f);
}

void cli_print_help(FILE *f, const cli_cmd *cmd) {
    fprintf(f, "usage: %s\n\n%s\n", cmd->usage, cmd->summary);
    if (cmd->pos_help) fprintf(f, "\n%s\n", cmd->pos_help);
    if (!cmd->opts || !cmd->opts[0].name) return;
    fprintf(f, "\noptions:\n");
    for (const cli_opt *o = cmd->opts; o->name; o++) {
        char left[64];
        if (o->type == CLI_FLAG) snprintf(left, sizeof left, "--%s", o->name);
        else snprintf(left, sizeof left, "--%s %s", o->name, type_metavar(o));
        if (strlen(left) <= 24) fprintf(f, "  %-24s ", left);
        else fprintf(f, "  %s\n  %-24s ", left, "");
        print_wrapped(f, o->help, 27, 27);
    }
    fprintf(f, "  %-24s %s\n", "--help", "show this help");
}

static int set_value(const cli_cmd *cmd, cli_opt *o, const char *v) {
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case CLI_FLAG: *(int *)o->dst = 1; break;
    case CLI_STR:
        if (!v[0]) return cli_usage_error(cmd, "--%s: empty value", o->name);
        *(const char **)o->dst = v;
        break;
    case CLI_INT: {
        long x = strtol(v, &end, 10);
        if (end == v || *end) return cli_usage_error(cmd, "--%s: '%s' is not an integer", o->name, v);
        if (errno || x < -2147483647L || x > 2147483647L)
            return cli_usage_error(cmd, "--%s: %s is out of range (-2147483647 to 2147483647)", o->name, v);
        *(int *)o->dst = (int)x;
        break;
    }
    case CLI_I64: {
        long long x = strtoll(v, &end, 10);
        if (end == v || *end) return cli_usage_error(cmd, "--%s: '%s' is not an integer", o->name, v);
        if (errno)
            return cli_usage_error(cmd, "--%s: %s is out of range (%lld to %lld)", o->name, v, LLONG_MIN, LLONG_MAX);
        *(int64_t *)o->dst = x;
        break;
    }
    case CLI_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (end == v || *end || v[0] == '-')
            return cli_usage_error(cmd, "--%s: '%s' is not a non-negative integer", o->name, v);
        if (errno) return cli_usage_error(cmd, "--%s: %s is out of range (0 to %llu)", o->name, v, ULLONG_MAX);
        *(uint64_t *)o->dst = x;
        break;
    }
    case CLI_FLOAT: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x)) return cli_usage_error(cmd, "--%s: '%s' is not a number", o->name, v);
        *(double *)o->dst = x;
        break;
    }
    case CLI_SIZE: {
        size_t x;
        if (fg_bytes_parse(v, &x) != FG_OK)
            return cli_usage_error(cmd, "--%s: '%s' is not a size (e.g. 512M, 8G, 1.5GiB, 1000000): %s", o->name, v,
                                   fg_last_error());
        /* every SIZE is a capacity, where 0 stands for the default (unlimited, or the GPU's):
         * given on the command line it is a mistake, not a request for no memory */
        if (x == 0)
            return cli_usage_error(cmd, "--%s: '%s' is zero; a capacity must be > 0 (leave --%s out for its default)",
                                   o->name, v, o->name);
        *(size_t *)o->dst = x;
        break;
    }
    }
    o->set = 1;
    return CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- checks every command gets */

/* The options that name files a command writes, and those that name files it reads. A "text"
 * output (a report, a plot, a trace) must differ from every input and every other output; a
 * weights output (--save, --checkpoint) may be the file the run started from (--resume ck
 * --checkpoint ck continues in place), never another output. */
static const char *const OUT_TEXT[] = {"json", "plot", "trace", "vmem-plot", "steps", NULL};
static const char *const OUT_WEIGHTS[] = {"save", "checkpoint", NULL};
static const char *const IN_FILES[] = {"load", "resume", "init", "table", "budget-trace", "model", NULL};

static int name_in(const char *name, const char *const *list) {
    for (; *list; list++)
        if (strcmp(name, *list) == 0) return 1;
    return 0;
}

/* path's directory part ("." when none) into dir. */
static void dir_of(const char *path, char *dir, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, cap, ".");
    else if (slash == path) snprintf(dir, cap, "/");
    else snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

/* A name for the file path is or would be, the same for two spellings of one file: realpath of the
 * file, else realpath of its directory and the last component; 0 when neither resolves. */
static int canonical(const char *path, char *out, size_t cap) {
    char buf[PATH_MAX], dir[PATH_MAX];
    if (realpath(path, buf)) return snprintf(out, cap, "%s", buf) < (int)cap;
    dir_of(path, dir, sizeof dir);
    if (!realpath(dir, buf)) return 0;
    const char *slash = strrchr(path, '/');
    return snprintf(out, cap, "%s/%s", buf, slash ? slash + 1 : path) < (int)cap;
}

int cli_same_file(const char *a, const char *b) {
    char ca[PATH_MAX + 256], cb[PATH_MAX + 256];
    return a && b && canonical(a, ca, sizeof ca) && canonical(b, cb, sizeof cb) && strcmp(ca, cb) == 0;
}

/* Creates name exclusively, never through a symbolic link; a leftover of ours (a killed process
 * whose pid this one reuses, or a link planted under the name) is unlinked, which removes the link
 * and not its target, and the creation tried once more. Returns the descriptor or -1 (errno). */
static int create_excl(const char *name) {
    int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0 && errno == EEXIST && unlink(name) == 0)
        fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    return fd;
}

fg_status cli_tmp_create(const char *path, char *tmp, size_t cap, int *fd_out) {
    *fd_out = -1;
    if (snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid()) >= (int)cap)
        return fg_fail(FG_ERR_INVALID, "%.200s...: path too long (at most %zu bytes)", path, cap > 32 ? cap - 32 : 0);
    int fd = create_excl(tmp);
    if (fd < 0) return fg_fail(FG_ERR_IO, "cannot create %s (temporary file for %s): %s", tmp, path, strerror(errno));
    *fd_out = fd;
    return FG_OK;
}

/* Before any work: can a file be created where path says? (A run that trains for an hour and
 * then cannot write its result has lost the hour.) The name must be a regular file or new (an
 * output renamed over a directory fails after the run, over a device or a symbolic link it
 * replaces the node or the link); then a probe file is created and removed there. */
static int check_writable(const cli_cmd *cmd, const char *opt, const char *path) {
    if (fg_output_path_check(path) != FG_OK) return cli_usage_error(cmd, "--%s: %s", opt, fg_last_error());
    char dir[PATH_MAX], probe[PATH_MAX + 64];
    dir_of(path, dir, sizeof dir);
    snprintf(probe, sizeof probe, "%s/.frugal-probe-%ld", dir, (long)getpid());
    int fd = create_excl(probe);
    if (fd < 0)
        return cli_usage_error(cmd, "--%s %s: cannot create a file in %s: %s (checked before the run, so that its "
                               "result is not lost)", opt, path, dir, strerror(errno));
    close(fd);
    unlink(probe);
    return CLI_CONTINUE;
}

/* Every command's options, after parsing: --threads within reason (a huge count crashes the
 * OpenMP runtime), each output's directory writable, no output the same file as another or (a
 * report, a plot, a trace) as an input. */
static int check_common(const cli_cmd *cmd) {
    for (cli_opt *o = cmd->opts; o && o->name; o++)
        if (o->set && o->type == CLI_INT && strcmp(o->name, "threads") == 0 && *(int *)o->dst > CLI_MAX_THREADS)
            return cli_usage_error(cmd, "--threads %d: at most %d", *(int *)o->dst, CLI_MAX_THREADS);
    char a[PATH_MAX + 256], b[PATH_MAX + 256];
    for (cli_opt *o = cmd->opts; o && o->name; o++) {
        const int text = name_in(o->name, OUT_TEXT), weights = name_in(o->name, OUT_WEIGHTS);
        if (!o->set || o->type != CLI_STR || !(text || weights)) continue;
        const char *path = *(const char **)o->dst;
        if (!path || !path[0]) return cli_usage_error(cmd, "--%s: expected a file name", o->name);
        int rc = check_writable(cmd, o->name, path);
        if (rc != CLI_CONTINUE) return rc;
        if (!canonical(path, a, sizeof a)) continue;
        for (cli_opt *p = cmd->opts; p && p->name; p++) {
            if (p == o || !p->set || p->type != CLI_STR) continue;
            const int p_out = name_in(p->name, OUT_TEXT) || name_in(p->name, OUT_WEIGHTS);
            const int p_in = name_in(p->name, IN_FILES);
            if (!p_out && !(text && p_in)) continue;
            const char *other = *(const char **)p->dst;
            if (!other || !canonical(other, b, sizeof b) || strcmp(a, b) != 0) continue;
            if (p_in && access(other, F_OK) != 0) continue; /* --model NAME, not a file */
            return cli_usage_error(cmd, "--%s and --%s name the same file (%s): %s", o->name, p->name, path,
                                   p_out ? "one output would overwrite the other" : "the input would be overwritten");
        }
    }
    return CLI_CONTINUE;
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv, const char **pos, int *npos) {
    *npos = 0;
    int only_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == 0) {
            if (*npos >= cmd->max_pos)
                return cli_usage_error(cmd, "%s: unexpected argument '%s'", cmd->name, a);
            pos[(*npos)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_print_help(stdout, cmd);
            return CLI_EXIT_OK;
        }
        if (a[1] != '-') return cli_usage_error(cmd, "%s: unknown option '%s'", cmd->name, a);
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        cli_opt *o = NULL;
        for (cli_opt *c = cmd->opts; c && c->name; c++)
            if (strlen(c->name) == len && strncmp(c->name, name, len) == 0) o = c;
        if (!o) return cli_usage_error(cmd, "%s: unknown option '--%.*s'", cmd->name, (int)len, name);
        const char *v;
        if (o->type == CLI_FLAG) {
            if (eq) return cli_usage_error(cmd, "--%s takes no value", o->name);
            v = "";
        } else if (eq) {
            v = eq + 1;
        } else {
            if (i + 1 >= argc) return cli_usage_error(cmd, "--%s needs a value (%s)", o->name, type_metavar(o));
            v = argv[++i];
            /* `--save --quiet`: the value forgotten, the next option taken for a file name */
            if (o->type == CLI_STR && v[0] == '-' && v[1] == '-' && v[2])
                return cli_usage_error(cmd, "--%s needs a value (%s), got the option '%s' (write --%s=%s if that is "
                                       "the value)", o->name, type_metavar(o), v, o->name, v);
        }
        int rc = set_value(cmd, o, v);
        if (rc != CLI_EXIT_OK) return rc;
    }
    if (*npos < cmd->min_pos)
        return cli_usage_error(cmd, "%s: missing argument%s", cmd->name, cmd->pos_help ? " (see --help)" : "");
    return check_common(cmd);
}

/* ---------------------------------------------------------------- log, signals */

static void log_to_stderr(fg_log_level level, const char *msg, void *user) {
    int verbose = user != NULL;
    static const char *names[FG_LOG_LEVEL_COUNT] = {"debug", "info", "warning", "error"};
    if (level == FG_LOG_DEBUG && !verbose) return;
    fprintf(stderr, "frugal: %s: %s\n", level < FG_LOG_LEVEL_COUNT ? names[level] : "?", msg);
}

void cli_log_init(int verbose) {
    /* the user pointer carries the verbosity: non-NULL = verbose */
    static int on = 1;
    fg_log_set_callback(log_to_stderr, verbose ? &on : NULL);
}

volatile sig_atomic_t cli_stop_flag = 0;

/* SIGTERM is what timeout, docker stop and SLURM send before they kill: it stops the run as
 * Ctrl-C does, so that the checkpoint is written rather than lost. */
static void on_sigint(int sig) {
    (void)sig;
    cli_stop_flag = 1;
    /* a second Ctrl-C (or TERM) ends the process the default way */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

void cli_sigint_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void cli_sigint_restore(void) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

/* ---------------------------------------------------------------- progress */

void cli_progress_init(cli_progress *p) {
    memset(p, 0, sizeof *p);
    p->tty = isatty(2);
    p->interval = p->tty ? 0.25 : 5.0;
    p->last = fg_time_now();
}

void cli_progress_show(cli_progress *p, const char *line, int force) {
    double now = fg_time_now();
    if (!force && now - p->last < p->interval) return;
    p->last = now;
    if (p->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        p->drawn = 1;
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

void cli_progress_clear(cli_progress *p) {
    if (p->tty && p->drawn) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
    p->drawn = 0;
}

void cli_bar(char *buf, size_t cap, double f, int width) {
    if (f < 0) f = 0;
    if (f > 1) f = 1;
    int full = (int)(f * width + 0.5);
    size_t k = 0;
    if (cap < (size_t)width + 3) {
        if (cap) buf[0] = 0;
        return;
    }
    buf[k++] = '[';
    for (int i = 0; i < width; i++) buf[k++] = i < full ? '#' : '.';
    buf[k++] = ']';
    buf[k] = 0;
}

/* ---------------------------------------------------------------- JSON */

fg_status cli_json_open(cli_json *j, const char *path) {
    memset(j, 0, sizeof *j);
    size_t n = strlen(path);
    j->path = strdup(path);
    j->tmp = malloc(n + 32);
    if (!j->path || !j->tmp) {
        free(j->path);
        free(j->tmp);
        return fg_fail(FG_ERR_OOM, "json: out of memory");
    }
    int fd = -1;
    fg_status s = fg_output_path_check(path);
    if (s == FG_OK) s = cli_tmp_create(path, j->tmp, n + 32, &fd);
    if (s == FG_OK && !(j->f = fdopen(fd, "w"))) {
        s = fg_fail(FG_ERR_IO, "cannot write %s: %s", j->tmp, strerror(errno));
        close(fd);
        unlink(j->tmp);
    }
    if (s != FG_OK) {
        free(j->path);
        free(j->tmp);
        j->path = j->tmp = NULL;
    }
    return s;
}

/* Closes a report written to tmp and, when keep and every write succeeded, puts it in place of
 * path: flushed and synced first, so that a crash leaves the old file or the whole new one, never
 * an empty one. The temporary is removed otherwise. */
static fg_status close_commit(FILE *f, int failed, const char *tmp, const char *path, int keep) {
    fg_status s = FG_OK;
    if (failed || ferror(f) || fflush(f) != 0 || (keep && fsync(fileno(f)) != 0))
        s = fg_fail(FG_ERR_IO, "writing %s failed: %s", tmp, errno ? strerror(errno) : "write error");
    if (fclose(f) != 0 && s == FG_OK) s = fg_fail(FG_ERR_IO, "writing %s failed: %s", tmp, strerror(errno));
    if (s == FG_OK && keep && rename(tmp, path) != 0)
        s = fg_fail(FG_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (s != FG_OK || !keep) remove(tmp);
    return s;
}

fg_status cli_json_close(cli_json *j) {
    if (!j->f) return fg_fail(FG_ERR_IO, "json: not open");
    errno = 0;
    fputc('\n', j->f);
    fg_status s = close_commit(j->f, j->error, j->tmp, j->path, 1);
    free(j->path);
    free(j->tmp);
    memset(j, 0, sizeof *j);
    return s;
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* Comma, newline and indentation before an item, then the key if any. */
static void json_item(cli_json *j, const char *key) {
    if (j->depth > 0) {
        fputs(j->count[j->depth] ? ",\n" : "\n", j->f);
        for (int i = 0; i < j->depth; i++) fputs("  ", j->f);
        j->count[j->depth]++;
    }
    if (key) {
        json_string(j->f, key);
        fputs(": ", j->f);
    }
}

static void json_open(cli_json *j, const char *key, char c) {
    json_item(j, key);
    fputc(c, j->f);
    if (j->depth + 1 < (int)(sizeof j->count / sizeof j->count[0])) j->depth++;
    else j->error = 1;
    j->count[j->depth] = 0;
}

static void json_close(cli_json *j, char c) {
    int had = j->count[j->depth];
    j->depth--;
    if (had) {
        fputc('\n', j->f);
        for (int i = 0; i < j->depth; i++) fputs("  ", j->f);
    }
    fputc(c, j->f);
}

void cli_json_obj_begin(cli_json *j, const char *key) { json_open(j, key, '{'); }
void cli_json_obj_end(cli_json *j) { json_close(j, '}'); }
void cli_json_arr_begin(cli_json *j, const char *key) { json_open(j, key, '['); }
void cli_json_arr_end(cli_json *j) { json_close(j, ']'); }

void cli_json_str(cli_json *j, const char *key, const char *v) {
    json_item(j, key);
    json_string(j->f, v ? v : "");
}

void cli_json_num(cli_json *j, const char *key, double v) {
    json_item(j, key);
    if (isfinite(v)) fprintf(j->f, "%.10g", v);
    else fputs("null", j->f);
}

void cli_json_int(cli_json *j, const char *key, long long v) {
    json_item(j, key);
    fprintf(j->f, "%lld", v);
}

int cli_model_cfg(const cli_cmd *cmd, const fg_model_def *def, int64_t batch, const char *input, fg_model_cfg *out) {
    *out = (fg_model_cfg){.batch = batch, .channels = def->default_channels, .height = def->default_height,
                          .width = def->default_width, .classes = def->default_classes, .dropout = -1.0f};
    if (!input) return CLI_CONTINUE;
    /* strtoll with ERANGE, not sscanf's %lld: its overflow is undefined (glibc saturates, and
     * 99999999999999999999x28 became a model of 9223372036854775807 rows) */
    enum { MAX_SIDE = 1 << 20 };
    long long v[3];
    int n = 0;
    const char *p = input;
    for (;;) {
        char *end = NULL;
        errno = 0;
        const long long x = p[0] >= '0' && p[0] <= '9' ? strtoll(p, &end, 10) : 0;
        if (!end || end == p || x <= 0 || n == 3) break;
        if (errno || x > MAX_SIDE)
            return cli_usage_error(cmd, "--input '%s': each side at most %d", input, (int)MAX_SIDE);
        v[n++] = x;
        if (*end == 0) {
            if (n == 3) out->channels = v[0], out->height = v[1], out->width = v[2];
            else if (n == 2) out->height = v[0], out->width = v[1];
            else break;
            return CLI_CONTINUE;
        }
        if (*end != 'x') break;
        p = end + 1;
    }
    return cli_usage_error(cmd, "--input '%s': expected HxW (e.g. 64x64) or CxHxW, each side 1..%d", input,
                           (int)MAX_SIDE);
}

int cli_zoo_model_cfg(const cli_cmd *cmd, const char *model, int batch_set, int64_t batch, const char *input,
                      fg_model_cfg *out) {
    if (!model) return cli_usage_error(cmd, "--model NAME is required");
    if (!batch_set) return cli_usage_error(cmd, "--batch B is required");
    if (batch <= 0) return cli_usage_error(cmd, "--batch must be > 0, got %lld", (long long)batch);
    const fg_model_def *def = fg_zoo_find(model);
    if (!def) return cli_usage_error(cmd, "unknown model '%s' (frugal model list)", model);
    return cli_model_cfg(cmd, def, batch, input, out);
}

fg_status cli_text_open(cli_text_file *t, const char *path) {
    t->path = path;
    t->f = NULL;
    int fd = -1;
    FG_TRY(fg_output_path_check(path));
    FG_TRY(cli_tmp_create(path, t->tmp, sizeof t->tmp, &fd));
    t->f = fdopen(fd, "w");
    if (t->f) return FG_OK;
    fg_status s = fg_fail(FG_ERR_IO, "%s: cannot open for writing: %s", t->tmp, strerror(errno));
    close(fd);
    unlink(t->tmp);
    return s;
}

fg_status cli_text_close(cli_text_file *t, int ok) {
    errno = 0;
    fg_status s = close_commit(t->f, 0, t->tmp, t->path, ok);
    t->f = NULL;
    return s;
}
