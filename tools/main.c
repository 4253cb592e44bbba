/* The frugal command-line tool: dispatches to one function per subcommand (tools/cmd_*.c) and
 * prints the command list. Exit codes are in cli.h. */
#include <signal.h>
#include <string.h>

#include "cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"train", cmd_train, "train a zoo model on mnist or fashion (checkpoints, resume, --json)"},
    {"eval", cmd_eval, "test accuracy of saved weights"},
    {"model", cmd_model, "list the zoo; parameters, FLOPs and memory of a model (model list | model info NAME)"},
    {"demo", cmd_demo, "the tour: LeNet-5 on MNIST, then vmem, the sparse LSTM, GA3C and dynamic ViT, each summarized and plotted"},
    {"vmem", cmd_vmem, "training beyond the device budget: compare the offload policies, measured or on a GPU (vmem report | simulate)"},
    {"data", cmd_data, "where the data directory is and which data sets it holds"},
    {"lm", cmd_lm, "sparse LSTM: word-level LSTM language models: train (dense or sparse backward), eval, sample"},
    {"lstm", cmd_lstm, "sparse LSTM: time the backward variants of a stacked LSTM against PyTorch (lstm bench)"},
    {"vit", cmd_vit, "vision transformers: train, evaluate, profile the skip knobs, run under a budget (vit train | eval | profile | run)"},
    {"rl", cmd_rl, "reinforcement learning: GA3C on the MinAtar games and CartPole (rl train | play | bench-env)"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "frugal %s: deep learning that fits the memory and the time you have\n\n", FRUGAL_VERSION);
    fprintf(f, "usage: frugal COMMAND [options]      (frugal COMMAND --help lists every option)\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nexit codes: 0 ok, 1 failure, 2 usage error, 130 interrupted by Ctrl-C or SIGTERM (resume with "
               "--resume)\n");
}

int main(int argc, char **argv) {
    /* A write past the file-size limit (ulimit -f) fails with EFBIG and is reported like a full
     * disk, with the temporary file removed, instead of killing the process without a word. */
    signal(SIGXFSZ, SIG_IGN);
    /* the library's warnings reach stderr in every command (those with --verbose set it again) */
    cli_log_init(0);
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *c = argv[1];
    if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0 || strcmp(c, "help") == 0) {
        if (strcmp(c, "help") == 0 && argc > 2) {
            for (size_t i = 0; i < N_COMMANDS; i++)
                if (strcmp(commands[i].name, argv[2]) == 0) {
                    char help[] = "--help";
                    char *av[] = {help, NULL};
                    return commands[i].run(1, av);
                }
            return cli_usage_error(NULL, "help: unknown command '%s'", argv[2]);
        }
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(c, "--version") == 0) {
        char model[64];
        printf("frugal %s\n", FRUGAL_VERSION);
        printf("cpu: %s (%s); kernels %s (FRUGAL_MAX_CPU_ISA caps them; oneDNN picks its own, ONEDNN_MAX_CPU_ISA)\n",
               fg_cpu_model(model, sizeof model), fg_cpu_isa_name(fg_cpu_isa_detected()),
               fg_cpu_isa_name(fg_cpu_isa_active()));
        printf("openmp: %d threads, wait policy %s\n", fg_threads_get(), fg_threads_wait_policy());
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, c) == 0) return commands[i].run(argc - 2, argv + 2);
    if (c[0] == '-') return cli_usage_error(NULL, "unknown option '%s' (options come after the command)", c);
    return cli_usage_error(NULL, "unknown command '%s'", c);
}
