/* Shared pieces of the frugal command-line tool: the option parser (every subcommand declares a
 * table of options, which also drives its --help), exit codes, the log callback, SIGINT handling,
 * the progress display, a small JSON writer, and the training run shared by `train` and `demo`. */
#ifndef FRUGAL_CLI_H
#define FRUGAL_CLI_H

#include <signal.h>
#include <stdio.h>

#include "frugal/frugal.h"
#include "frugal/train.h"

/* Exit codes: 0 success, 1 a failure (the library's message is printed), 2 a usage error,
 * 130 training interrupted by SIGINT or SIGTERM (a checkpoint was written when --checkpoint was
 * given); SIGTERM exits 130 too, not 143: it stopped the run as Ctrl-C does, it did not kill it. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2, CLI_EXIT_INTERRUPTED = 130 };
/* cli_parse's "go on with the command" (any other value is the exit code) */
enum { CLI_CONTINUE = -1 };
/* --threads at most (every command; libgomp crashes on a count in the tens of thousands) */
enum { CLI_MAX_THREADS = 1024 };

/* ---------------------------------------------------------------- options */

typedef enum cli_type {
    CLI_FLAG,  /* int, set to 1 */
    CLI_STR,   /* const char * */
    CLI_INT,   /* int */
    CLI_I64,   /* int64_t */
    CLI_U64,   /* uint64_t */
    CLI_FLOAT, /* double */
    CLI_SIZE,  /* size_t, with units: 512M, 8G, 1.5GiB */
} cli_type;

typedef struct cli_opt {
    const char *name; /* "epochs" for --epochs; NULL ends a table */
    cli_type type;
    void *dst;
    const char *metavar; /* "N"; NULL for flags */
    const char *help;
    int set;             /* set by the parser when the option was given */
} cli_opt;

typedef struct cli_cmd {
    const char *name;    /* "train", "model info" */
    const char *usage;   /* "frugal train [options]" */
    const char *summary; /* one paragraph */
    cli_opt *opts;
    int min_pos, max_pos; /* positional arguments accepted */
    const char *pos_help; /* describes the positionals, may be NULL */
} cli_cmd;

/* Parses argv[0..argc) (the arguments after the subcommand name) into the table; positionals go
 * to pos[0..*npos). Accepts "--name value" and "--name=value"; "--" ends options. A string
 * option's value may not look like an option ("--save --quiet"; --save=--x passes). Then, for
 * every command: --threads at most CLI_MAX_THREADS; every output (--json, --plot, --trace,
 * --vmem-plot, --steps, --save, --checkpoint) names a regular file or a new one (fg_output_path_check:
 * not a directory, a device, a pipe or a symbolic link) in a directory that can take a new file
 * (probed before any work), no two outputs are one file, and no report/plot/trace output is an input (--load,
 * --resume, --init, --table, --budget-trace, --model when it names a file). Returns
 * CLI_CONTINUE to go on, else the exit code: CLI_EXIT_USAGE after printing an error, CLI_EXIT_OK
 * after printing --help. Callers write `if (rc != CLI_CONTINUE) return rc;`. */
int cli_parse(const cli_cmd *cmd, int argc, char **argv, const char **pos, int *npos);
void cli_print_help(FILE *f, const cli_cmd *cmd);
/* The option named `name` in the table (asserts it exists). */
cli_opt *cli_find(cli_opt *opts, const char *name);
/* Prints "frugal: <message>" to stderr and returns CLI_EXIT_USAGE. */
int cli_usage_error(const cli_cmd *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Prints "frugal: <what>: <library message>" and returns CLI_EXIT_FAIL. */
int cli_fail(const char *what, fg_status s);
/* This machine's physical RAM in bytes (0 when unknown): a run needing more would swap and be
 * killed long after it started, so commands refuse it before any work. */
double cli_ram_bytes(void);
/* CLI_CONTINUE when need_bytes fit in RAM (or RAM is unknown); else a usage error naming `what`
 * ("lm train: the model (...)"), both sizes and `hint` (what to make smaller). */
int cli_ram_check(const cli_cmd *cmd, const char *what, double need_bytes, const char *hint);
/* An evaluation batch no larger than the n test items (a larger one would only pad: memory for
 * nothing); says so on the info log when it shrinks. `who` names the command. */
int64_t cli_eval_batch(const char *who, int64_t batch, int64_t n, const char *items);

/* ---------------------------------------------------------------- setup */

/* Installs the log callback (stderr, level prefix; debug lines only when verbose). */
void cli_log_init(int verbose);
/* The flag SIGINT and SIGTERM raise; the first signal sets it, a second one (either) meets the
 * default action (so a second Ctrl-C kills the process). restore puts both back to the default. */
extern volatile sig_atomic_t cli_stop_flag;
void cli_sigint_install(void);
void cli_sigint_restore(void);

/* ---------------------------------------------------------------- progress */

typedef struct cli_progress {
    int tty;          /* stderr is a terminal: redraw one line in place */
    double last;      /* time of the last draw */
    double interval;  /* seconds between draws: 0.25 on a terminal, 5 otherwise */
    int drawn;        /* a partial line is on screen */
} cli_progress;
void cli_progress_init(cli_progress *p);
/* Draws `line` if the interval has passed (or force). */
void cli_progress_show(cli_progress *p, const char *line, int force);
/* Clears the in-place line (terminal) so the next output starts on a clean line. */
void cli_progress_clear(cli_progress *p);
/* "[#########.........]" of `width` cells for fraction f in [0, 1]. */
void cli_bar(char *buf, size_t cap, double f, int width);

/* ---------------------------------------------------------------- JSON */

typedef struct cli_json {
    FILE *f;
    char *path, *tmp;
    int depth;
    int count[32]; /* items written at each depth (for commas) */
    int error;
} cli_json;
/* Opens a new "<path>.tmp.<pid>" (cli_tmp_create) for writing after fg_output_path_check(path);
 * cli_json_close renames it to path (atomic) and reports errors. */
fg_status cli_json_open(cli_json *j, const char *path);
fg_status cli_json_close(cli_json *j);
void cli_json_obj_begin(cli_json *j, const char *key); /* key NULL at top level or inside arrays */
void cli_json_obj_end(cli_json *j);
void cli_json_arr_begin(cli_json *j, const char *key);
void cli_json_arr_end(cli_json *j);
void cli_json_str(cli_json *j, const char *key, const char *v);
void cli_json_num(cli_json *j, const char *key, double v); /* non-finite values become null */
void cli_json_int(cli_json *j, const char *key, long long v);

/* Creates "<path>.tmp.<pid>" (into tmp[0..cap)) for writing with O_EXCL and O_NOFOLLOW, so that
 * neither a symbolic link planted under that name nor another process's temporary is written
 * through; a file or link already there (a killed process with this pid, or planted) is unlinked
 * and the creation tried once more. *fd_out is the descriptor; FG_ERR_IO naming the file when it
 * cannot be created, FG_ERR_INVALID when the name does not fit in cap. */
fg_status cli_tmp_create(const char *path, char *tmp, size_t cap, int *fd_out);
/* 1 when a and b name one file, existing or not ("x" and "./x"), after resolving links. */
int cli_same_file(const char *a, const char *b);

/* ---------------------------------------------------------------- text files (CSV traces) */

/* A text file written as "<path>.tmp.<pid>" and renamed over path only when every write succeeded, so
 * a full disk never leaves half a file under the real name. */
typedef struct cli_text_file {
    FILE *f;
    char tmp[4096];
    const char *path;
} cli_text_file;
/* As cli_json_open; FG_ERR_IO (FG_ERR_INVALID for a path that is no regular file) naming it on failure. */
fg_status cli_text_open(cli_text_file *t, const char *path);
/* ok = the caller's own writing succeeded: closes, checks the stream, renames into place; else (or
 * on any failure) removes the temporary file. FG_ERR_IO naming the file when a write or the rename
 * failed, FG_OK otherwise (also when !ok: the caller reports its own failure). */
fg_status cli_text_close(cli_text_file *t, int ok);

/* ---------------------------------------------------------------- training (train, demo) */

typedef struct cli_train_args {
    const char *model, *data, *data_dir, *optim, *json, *save, *resume, *checkpoint;
    int epochs, threads, verbose, quiet;
    int64_t batch, checkpoint_every;
    double lr, lr_decay, momentum, weight_decay;
    uint64_t seed;
    size_t device_mem;
    /* vmem (issue 3): --policy none|all|conv (NULL = the network-wide baseline, as before vmem),
     * the disk tier's directory, the host tier's capacity (0 = unlimited) and a trace CSV */
    const char *policy, *spill_dir, *trace;
    size_t host_mem;
    int offload_weights; /* --offload-weights: params, grads and inputs at host homes between uses */
    /* --plot FILE.png: device memory over the last training iteration of the trace (gnuplot) */
    const char *plot;
    /* which of the tunables were given explicitly (else data-set or checkpoint defaults apply) */
    int set_model, set_data, set_epochs, set_batch, set_lr, set_lr_decay, set_optim, set_seed, set_momentum, set_wd;
} cli_train_args;

typedef struct cli_train_result {
    double test_acc;
    double seconds;          /* wall time of this process's training */
    int n_epochs;
    fg_epoch_result *hist;   /* n_epochs entries, malloc'ed; free with free() */
    char model[FG_NAME_MAX], data[FG_NAME_MAX];
    int64_t batch;
    int64_t n_train, n_test;
    char optim[32];
    double lr, lr_decay;
} cli_train_result;

/* Default values of the args (no data-set tuning yet). */
void cli_train_args_init(cli_train_args *a);
/* Runs a whole training as `frugal train` does: loads data, applies the per-data-set defaults,
 * resumes, trains with progress, writes --json/--save; prints epoch lines to stdout but not the
 * final "test accuracy" line. Returns a CLI exit code (usage errors point at cmd's --help; cmd
 * may be NULL); fills r on success. */
int cli_train_run(const cli_cmd *cmd, cli_train_args *a, cli_train_result *r);

/* vmem (issue 3): checks --policy and the tier options: no --policy (then no tier option and no
 * --offload-weights either) or none|all|conv|dyn|plan is CLI_EXIT_OK (--offload-weights not with
 * none); anything else is a usage error (pointing at cmd's --help). */
int cli_vmem_policy_check(const cli_cmd *cmd, const char *policy, const char *spill_dir, size_t host_mem, int trace,
                          int offload_weights);
/* Checks as above, then makes the policy into *pol (*have = 1; the caller gives it to a graph)
 * or leaves *have = 0 when policy is NULL. trace != 0 keeps every iteration's events. */
int cli_vmem_policy(const cli_cmd *cmd, const char *policy, const char *spill_dir, size_t host_mem, int trace,
                    int offload_weights, fg_mem_policy *pol, int *have);

/* The model config of zoo model `def` at `batch`, with --input "HxW" (channels from the model) or
 * "CxHxW" applied when given: CLI_CONTINUE, or the usage error's exit code (printed). */
int cli_model_cfg(const cli_cmd *cmd, const fg_model_def *def, int64_t batch, const char *input, fg_model_cfg *out);
/* --model NAME (required, a zoo model), --batch B (required, > 0, `batch_set` from cli_find) and
 * --input, as `vmem report` and `vmem simulate` take them: CLI_CONTINUE, or the usage error's code. */
int cli_zoo_model_cfg(const cli_cmd *cmd, const char *model, int batch_set, int64_t batch, const char *input,
                      fg_model_cfg *out);

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_model(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_lm(int argc, char **argv);
int cmd_lstm(int argc, char **argv); /* tools/cmd_lstm.c */
int cmd_rl(int argc, char **argv); /* tools/cmd_rl.c */
int cmd_vit(int argc, char **argv); /* tools/cmd_vit.c */
int cmd_data(int argc, char **argv);
int cmd_vmem(int argc, char **argv);
int cmd_vmem_simulate(int argc, char **argv); /* tools/cmd_vmem_sim.c */

#endif
