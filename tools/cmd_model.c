/* `frugal model list` and `frugal model info NAME`: the zoo, and what a model costs for a batch
 * shape (parameters, FLOPs, bytes of weights, activations, gradients and workspace), computed
 * from the built graph without running it. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A memory policy that allocates nothing: `model info` builds the graph only to measure it, so
 * activations of big models at big batches are never allocated. */
static fg_status null_plan(void *self, fg_graph *g, fg_pool *pool) {
    (void)self;
    (void)g;
    (void)pool;
    return FG_OK;
}

static int cmd_model_list(int argc, char **argv) {
    cli_opt opts[] = {{NULL, CLI_FLAG, NULL, NULL, NULL, 0}};
    cli_cmd cmd = {"model list", "frugal model list", "Lists the models of the zoo with their default input.", opts, 0, 0,
                   NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    printf("%-16s %-14s %s\n", "model", "input", "description");
    for (const fg_model_def *d = fg_zoo_models(); d && d->name; d++) {
        char in[64];
        snprintf(in, sizeof in, "%lldx%lldx%lld/%lld", (long long)d->default_channels, (long long)d->default_height,
                 (long long)d->default_width, (long long)d->default_classes);
        printf("%-16s %-14s %s\n", d->name, in, d->description ? d->description : "");
    }
    return CLI_EXIT_OK;
}

static void row_bytes(const char *what, size_t bytes) {
    char h[32];
    fg_bytes_str(h, sizeof h, (double)bytes);
    printf("  %-34s %12s  %16zu bytes\n", what, h, bytes);
}

static const char *flops_str(char *buf, size_t cap, double f) {
    static const char *units[] = {"FLOP", "KFLOP", "MFLOP", "GFLOP", "TFLOP", "PFLOP"};
    int u = 0;
    while (f >= 1000.0 && u < 5) {
        f /= 1000.0;
        u++;
    }
    snprintf(buf, cap, "%.2f %s", f, units[u]);
    return buf;
}

static int cmd_model_info(int argc, char **argv) {
    int64_t batch = 1, classes = 0;
    const char *input = NULL, *json = NULL;
    int liveness = 0, inference = 0;
    cli_opt opts[] = {
        {"batch", CLI_I64, &batch, "B", "batch size (default 1)", 0},
        {"input", CLI_STR, &input, "HxW", "input size HxW or CxHxW (default: the model's)", 0},
        {"classes", CLI_I64, &classes, "K", "number of classes (default: the model's)", 0},
        {"inference", CLI_FLAG, &inference, NULL, "build for inference only (no gradients)", 0},
        {"liveness", CLI_FLAG, &liveness, NULL, "also print every tensor's liveness and every node's saves", 0},
        {"json", CLI_STR, &json, "FILE", "write the numbers as JSON", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"model info", "frugal model info NAME [--batch B] [--input HxW] [--classes K] [options]",
                   "Builds model NAME for a batch shape (without allocating activations) and prints its\n"
                   "parameters, FLOPs per image and the bytes of weights, activations, gradients and workspace.",
                   opts, 1, 1, "NAME: a model of 'frugal model list'"};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    const fg_model_def *def = fg_zoo_find(pos[0]);
    if (!def) {
        fprintf(stderr, "frugal: model info: unknown model '%s'; known:", pos[0]);
        for (const fg_model_def *d = fg_zoo_models(); d && d->name; d++) fprintf(stderr, " %s", d->name);
        fprintf(stderr, "\n");
        return CLI_EXIT_USAGE;
    }
    if (batch <= 0) return cli_usage_error(&cmd, "--batch must be > 0");
    fg_model_cfg mc;
    rc = cli_model_cfg(&cmd, def, batch, input, &mc);
    if (rc != CLI_CONTINUE) return rc;
    rc = CLI_EXIT_OK;
    if (cli_find(opts, "classes")->set) {
        if (classes <= 0) return cli_usage_error(&cmd, "--classes must be > 0");
        mc.classes = classes;
    }

    fg_pool *pool = NULL;
    fg_graph *g = NULL;
    fg_model_io io;
    fg_mem_policy pol = {.name = "none", .plan = null_plan};
    fg_status s = fg_pool_create(&pool, 0);
    if (s != FG_OK) return cli_fail("device pool", s);
    s = fg_train_build_model(&g, &io, def->name, &mc, !inference, pool, &pol);
    if (s != FG_OK) {
        fg_pool_destroy(pool);
        return cli_fail("building the model", s);
    }
    fg_graph_info gi;
    fg_graph_get_info(g, &gi);
    double flops_img = gi.flops_fwd / (double)batch;
    size_t total = gi.weight_bytes + gi.grad_bytes + gi.act_bytes + gi.act_grad_bytes + gi.peak_ws_bytes + gi.input_bytes;
    char f1[32], f2[32];
    printf("model %s: %s\n", def->name, def->description ? def->description : "");
    printf("  input %lldx%lldx%lld, %lld classes, batch %lld; %d nodes, %d tensors%s\n", (long long)mc.channels,
           (long long)mc.height, (long long)mc.width, (long long)mc.classes, (long long)batch, fg_graph_n_nodes(g),
           fg_graph_n_tensors(g), inference ? " (inference)" : "");
    printf("  %-34s %12lld\n", "parameters", (long long)gi.n_params);
    printf("  %-34s %12s  (%.0f)\n", "FLOPs per image (forward)", flops_str(f1, sizeof f1, flops_img), flops_img);
    printf("  %-34s %12s  (%.0f)\n", "FLOPs per batch (forward)", flops_str(f2, sizeof f2, gi.flops_fwd), gi.flops_fwd);
    printf("  %-34s\n", "(a multiply-add counts as 2 FLOPs)");
    row_bytes("weights (params + state)", gi.weight_bytes);
    row_bytes("inputs (images, labels)", gi.input_bytes);
    row_bytes("activations (all)", gi.act_bytes);
    row_bytes("activations saved for backward", gi.saved_bytes);
    row_bytes("gradients of parameters", gi.grad_bytes);
    row_bytes("gradients of activations", gi.act_grad_bytes);
    row_bytes("peak workspace (one node)", gi.peak_ws_bytes);
    row_bytes("total, network-wide allocation", total);
    if (liveness) {
        printf("\n");
        fg_graph_print_liveness(g, stdout);
    }
    rc = CLI_EXIT_OK;
    if (json) {
        cli_json j;
        s = cli_json_open(&j, json);
        if (s == FG_OK) {
            cli_json_obj_begin(&j, NULL);
            cli_json_str(&j, "model", def->name);
            cli_json_int(&j, "batch", (long long)batch);
            cli_json_arr_begin(&j, "input");
            cli_json_int(&j, NULL, (long long)mc.channels);
            cli_json_int(&j, NULL, (long long)mc.height);
            cli_json_int(&j, NULL, (long long)mc.width);
            cli_json_arr_end(&j);
            cli_json_int(&j, "classes", (long long)mc.classes);
            cli_json_int(&j, "parameters", (long long)gi.n_params);
            cli_json_num(&j, "flops_per_image", flops_img);
            cli_json_num(&j, "flops_per_batch", gi.flops_fwd);
            cli_json_int(&j, "weight_bytes", (long long)gi.weight_bytes);
            cli_json_int(&j, "input_bytes", (long long)gi.input_bytes);
            cli_json_int(&j, "activation_bytes", (long long)gi.act_bytes);
            cli_json_int(&j, "saved_bytes", (long long)gi.saved_bytes);
            cli_json_int(&j, "param_grad_bytes", (long long)gi.grad_bytes);
            cli_json_int(&j, "activation_grad_bytes", (long long)gi.act_grad_bytes);
            cli_json_int(&j, "peak_workspace_bytes", (long long)gi.peak_ws_bytes);
            cli_json_int(&j, "total_bytes", (long long)total);
            cli_json_obj_end(&j);
            s = cli_json_close(&j);
        }
        if (s != FG_OK) rc = cli_fail("--json", s);
    }
    fg_graph_free(g);
    fg_pool_destroy(pool);
    return rc;
}

int cmd_model(int argc, char **argv) {
    if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        FILE *f = argc < 1 ? stderr : stdout;
        fprintf(f, "usage: frugal model list\n       frugal model info NAME [--batch B] [--input HxW] [--classes K] "
                   "[--liveness] [--json FILE]\n\n"
                   "  list   the models of the zoo\n"
                   "  info   parameters, FLOPs and memory of a model for a batch shape\n");
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[0], "list") == 0) return cmd_model_list(argc - 1, argv + 1);
    if (strcmp(argv[0], "info") == 0) return cmd_model_info(argc - 1, argv + 1);
    return cli_usage_error(NULL, "model: unknown subcommand '%s' (expected list or info)", argv[0]);
}
