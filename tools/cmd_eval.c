/* `frugal eval`: rebuilds the model named in a weights file (or checkpoint) from its metadata,
 * loads the weights and prints the test accuracy on a data set. */
#include <string.h>

#include "cli.h"

int cmd_eval(int argc, char **argv) {
    const char *load = NULL, *data = NULL, *data_dir = NULL, *json = NULL;
    int64_t batch = 0;
    int threads = 0, verbose = 0;
    size_t device_mem = 0;
    cli_opt opts[] = {
        {"load", CLI_STR, &load, "FILE", "weights (frugal train --save) or a checkpoint (required)", 0},
        {"data", CLI_STR, &data, "NAME", "data set: mnist or fashion (default: the one recorded in FILE)", 0},
        {"data-dir", CLI_STR, &data_dir, "DIR", "data directory (default $FRUGAL_DATA or ~/.cache/frugal)", 0},
        {"batch", CLI_I64, &batch, "B", "evaluation batch size (default: the training batch recorded in FILE)", 0},
        {"threads", CLI_INT, &threads, "T", "threads (default 0 = all cores)", 0},
        {"device-mem", CLI_SIZE, &device_mem, "SIZE", "device pool capacity (default unlimited)", 0},
        {"json", CLI_STR, &json, "FILE", "write {model, data, test_accuracy, test_images} as JSON", 0},
        {"verbose", CLI_FLAG, &verbose, NULL, "debug messages", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"eval", "frugal eval --load FILE [--data mnist|fashion] [options]",
                   "Rebuilds the model recorded in FILE, loads its weights and prints 'test accuracy: 0.xxxx'\n"
                   "on the data set's test split (the same split frugal train holds out).",
                   opts, 0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    cli_log_init(verbose);
    if (!load) return cli_usage_error(&cmd, "eval: --load FILE is required");
    if (cli_find(opts, "batch")->set && batch <= 0) return cli_usage_error(&cmd, "--batch must be > 0");
    if (threads < 0) return cli_usage_error(&cmd, "--threads must be >= 0");

    fg_ckpt_info info;
    fg_status s = fg_ckpt_read_info(load, &info);
    if (s != FG_OK) return cli_fail("--load", s);
    if (!data) {
        if (!info.data[0]) return cli_usage_error(&cmd, "%s does not record its data set: give --data", load);
        data = info.data;
    }
    fg_model_cfg mc = info.mc;
    if (batch > 0) mc.batch = batch;
    fg_threads_set(threads);

    fg_data_split split;
    s = fg_data_split_load(data, data_dir, &split);
    if (s != FG_OK) return cli_fail("loading data", s);
    mc.batch = cli_eval_batch("eval", mc.batch, split.test.n, "images");
    fg_pool *pool = NULL;
    fg_graph *g = NULL;
    fg_model_io io;
    double acc = 0.0;
    rc = CLI_EXIT_OK;
    s = fg_pool_create(&pool, device_mem);
    if (s != FG_OK) rc = cli_fail("device pool", s);
    if (rc == CLI_EXIT_OK) {
        s = fg_train_build_model(&g, &io, info.model, &mc, 0, pool, NULL);
        if (s != FG_OK) rc = cli_fail("building the model", s);
    }
    if (rc == CLI_EXIT_OK) {
        s = fg_graph_load(g, NULL, load);
        if (s != FG_OK) rc = cli_fail("--load", s);
    }
    if (rc == CLI_EXIT_OK) {
        s = fg_eval_accuracy(g, &io, &split.test, &acc);
        if (s != FG_OK) rc = cli_fail("evaluating", s);
    }
    if (rc == CLI_EXIT_OK && json) {
        cli_json j;
        s = cli_json_open(&j, json);
        if (s == FG_OK) {
            cli_json_obj_begin(&j, NULL);
            cli_json_str(&j, "model", info.model);
            cli_json_str(&j, "data", data);
            cli_json_num(&j, "test_accuracy", acc);
            cli_json_int(&j, "test_images", (long long)split.test.n);
            cli_json_obj_end(&j);
            s = cli_json_close(&j);
        }
        if (s != FG_OK) rc = cli_fail("--json", s);
    }
    if (rc == CLI_EXIT_OK) {
        fg_log(FG_LOG_INFO, "%s (%s) on %s: %lld test images", load, info.model, data, (long long)split.test.n);
        printf("test accuracy: %.4f\n", acc);
    }
    fg_graph_free(g);
    fg_pool_destroy(pool);
    fg_data_split_free(&split);
    return rc;
}
