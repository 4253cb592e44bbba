/* The frugal command-line tool, run as a program (the binary built next to this test): help and
 * usage errors with their exit codes, `model list` / `model info`, and a tiny end-to-end
 * training on a synthetic IDX data set written here (no MNIST needed): the final line, --json,
 * --save then `eval`, same seed twice, and `--epochs 2` equal to `--epochs 1 --checkpoint c`
 * followed by `--epochs 2 --resume c` (the JSON loss lists compared as text); vmem (issue 3):
 * `train --policy none|all|conv` gives the same losses and final line as no policy, --trace
 * writes the CSV, an unknown policy is a usage error, a budget too small fails before training naming the smallest
 * budget, and `vmem report --json` has one record per policy with the measured keys. Also: numbers
 * out of an option's range, inf/nan, a flag given "=value", --input's height and width, and
 * fg_bytes_parse's units (powers of 1024) and refusals. */
#include <math.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char exe[PATH_MAX + 16];
static char tmpdir[256];
static char out_path[400], err_path[400];

/* Runs `frugal ARGS` with stdout and stderr captured; returns the exit code. */
static int run(const char *args) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "FRUGAL_DATA='%s/data' '%s' %s >'%s' 2>'%s'", tmpdir, exe, args, out_path, err_path);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    FG_ASSERT(s);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

/* Checks the exit code and that stdout (or stderr) contains `want`. */
static void expect(const char *args, int code, const char *in_out, const char *in_err) {
    int rc = run(args);
    char *o = slurp(out_path), *e = slurp(err_path);
    int bad = rc != code || (in_out && !strstr(o, in_out)) || (in_err && !strstr(e, in_err));
    if (bad) {
        fprintf(stderr, "  frugal %s: exit %d (expected %d)%s%s%s%s\n  stdout: %.600s\n  stderr: %.600s\n", args, rc,
                code, in_out ? ", stdout should contain: " : "", in_out ? in_out : "",
                in_err ? ", stderr should contain: " : "", in_err ? in_err : "", o, e);
        fg_test_failures++;
    }
    free(o);
    free(e);
}

/* The last line of stdout. */
static void last_line(char *buf, size_t cap) {
    char *o = slurp(out_path);
    size_t n = strlen(o);
    while (n && o[n - 1] == '\n') o[--n] = 0;
    char *p = strrchr(o, '\n');
    snprintf(buf, cap, "%s", p ? p + 1 : o);
    free(o);
}

/* The text of a JSON array value "key": [ ... ] in a file (whitespace kept). */
static char *json_array(const char *path, const char *key) {
    char *s = slurp(path);
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": [", key);
    char *p = strstr(s, pat);
    char *r = NULL;
    if (p) {
        char *e = strchr(p, ']');
        if (e) {
            *e = 0;
            r = strdup(p + strlen(pat));
        }
    }
    free(s);
    return r ? r : strdup("<missing>");
}

/* The numbers of two JSON arrays (as json_array returns them) agree within rel (relative). */
static int numbers_close(const char *a, const char *b, double rel) {
    int n = 0;
    for (;;) {
        while (*a && !strchr("-0123456789", *a)) a++;
        while (*b && !strchr("-0123456789", *b)) b++;
        if (!*a || !*b) return !*a && !*b && n > 0;
        char *ea, *eb;
        double x = strtod(a, &ea), y = strtod(b, &eb);
        if (fabs(x - y) > rel * fmax(fabs(x), fabs(y))) return 0;
        a = ea;
        b = eb;
        n++;
    }
}

/* fg_bytes_parse (what every SIZE option takes): K, M, G, T are powers of 1024, as fg_bytes_str
 * prints them ("--device-mem 8G" is 8 GiB, docs/BENCHMARKS.md); "iB" or "B" may follow the unit */
static void check_size(const char *s, size_t want) {
    size_t got = 0;
    fg_status st = fg_bytes_parse(s, &got);
    if (st != FG_OK || got != want) {
        fprintf(stderr, "  fg_bytes_parse(\"%s\"): %s, %zu, expected %zu\n", s, fg_status_name(st), got, want);
        fg_test_failures++;
    }
}

static void check_size_bad(const char *s) {
    size_t got = 0;
    if (fg_bytes_parse(s, &got) == FG_OK) {
        fprintf(stderr, "  fg_bytes_parse(\"%s\") accepted it as %zu, expected an error\n", s, got);
        fg_test_failures++;
    }
}

static void write_data(void) {
    /* 2,256 images: the last 2,000 are held out, 256 train; 4 classes, a bright square per
     * quadrant with noise, as u8 pixels */
    int64_t n = 2256;
    uint8_t *px = malloc((size_t)n * 784), *lb = malloc((size_t)n);
    FG_ASSERT(px && lb);
    fg_rng r;
    fg_rng_seed(&r, 5);
    for (int64_t i = 0; i < n; i++) {
        int y = (int)fg_rng_below(&r, 4);
        lb[i] = (uint8_t)y;
        for (int p = 0; p < 784; p++) px[i * 784 + p] = (uint8_t)fg_rng_below(&r, 100);
        int oy = (y / 2) * 14 + 3, ox = (y % 2) * 14 + 3;
        for (int a = 0; a < 8; a++)
            for (int b = 0; b < 8; b++) px[i * 784 + (oy + a) * 28 + ox + b] = 255;
    }
    char dir[300], p[400];
    snprintf(dir, sizeof dir, "%s/data", tmpdir);
    mkdir(dir, 0755);
    int64_t dims[3] = {n, 28, 28};
    snprintf(p, sizeof p, "%s/mnist-images-idx3-ubyte", dir);
    CHECK_OK(fg_idx_save(p, 3, dims, px));
    snprintf(p, sizeof p, "%s/mnist-labels-idx1-ubyte", dir);
    CHECK_OK(fg_idx_save(p, 1, dims, lb));
    free(px);
    free(lb);
}

int main(int argc, char **argv) {
    (void)argc;
    /* the frugal binary sits next to this test in the build directory */
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    FG_ASSERT(n > 0);
    self[n] = 0;
    char *slash = strrchr(self, '/');
    FG_ASSERT(slash);
    *slash = 0;
    snprintf(exe, sizeof exe, "%s/frugal", self);
    if (access(exe, X_OK) != 0) {
        fprintf(stderr, "%s: the frugal binary is not at %s (build the 'frugal' target)\n", argv[0], exe);
        return 1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fg_test_cli.XXXXXX");
    FG_ASSERT(mkdtemp(tmpdir));
    snprintf(out_path, sizeof out_path, "%s/stdout", tmpdir);
    snprintf(err_path, sizeof err_path, "%s/stderr", tmpdir);

    check_size("1000000", 1000000);
    check_size("1K", 1024);
    check_size("2M", 2097152);
    check_size("8G", 8589934592ULL);
    check_size("1.5GiB", 1610612736ULL);
    check_size("512MB", 536870912ULL);
    check_size("1T", 1099511627776ULL);
    check_size_bad("8Gx");
    check_size_bad("8GiBx");
    check_size_bad("");
    check_size_bad("G");
    check_size_bad("-1K");

    /* help and usage errors */
    expect("--help", 0, "commands:", NULL);
    expect("", 2, NULL, "usage:");
    expect("frobnicate", 2, NULL, "unknown command 'frobnicate'");
    expect("train --help", 0, "--checkpoint-every", NULL);
    expect("train --help", 0, "--device-mem", NULL);
    expect("eval --help", 0, "--load", NULL);
    expect("model info --help", 0, "--liveness", NULL);
    expect("demo --help", 0, "gnuplot", NULL);
    expect("train --bogus 3", 2, NULL, "unknown option '--bogus'");
    expect("train --epochs", 2, NULL, "--epochs needs a value");
    expect("train --epochs three", 2, NULL, "is not an integer");
    /* numbers out of their type's range are refused, not wrapped (2^32 + 1 was 1 epoch, -1 a seed
     * of 2^64 - 1); inf and nan are not numbers; a flag takes no value (--quiet=0 turned it on) */
    expect("train --epochs 4294967297", 2, NULL, "--epochs: 4294967297 is out of range (-2147483647 to 2147483647)");
    expect("train --epochs -4294967297", 2, NULL, "--epochs: -4294967297 is out of range");
    expect("train --seed -1", 2, NULL, "--seed: '-1' is not a non-negative integer");
    expect("train --lr inf", 2, NULL, "--lr: 'inf' is not a number");
    expect("train --lr nan", 2, NULL, "--lr: 'nan' is not a number");
    expect("train --quiet=0", 2, NULL, "--quiet takes no value");
    expect("model info lenet --inference=0", 2, NULL, "--inference takes no value");
    expect("train --device-mem lots", 2, NULL, "not a size");
    expect("train --device-mem nan", 2, NULL, "not a size");
    expect("train --optim adam --momentum 0.9 --data mnist", 2, NULL, "--momentum applies to --optim sgd only");
    expect("train --optim sgd --momentum 1.5 --data mnist", 2, NULL, "--momentum must be in [0, 1)");
    expect("train --weight-decay -1 --data mnist", 2, NULL, "--weight-decay must be >= 0");
    expect("train --checkpoint-every 5", 2, NULL, "needs --checkpoint");
    expect("train --optim adagrad --data mnist", 2, NULL, "--optim");
    expect("model", 2, NULL, "usage:");
    expect("model frob", 2, NULL, "unknown subcommand");
    expect("model info", 2, NULL, "missing argument");
    expect("model info nosuchnet", 2, NULL, "unknown model");
    expect("eval", 2, NULL, "--load FILE is required");
    expect("train --help", 0, "--policy", NULL);
    expect("vmem report --help", 0, "--device-mem", NULL);
    expect("vmem", 2, NULL, "usage:");
    expect("vmem report --batch 4", 2, NULL, "--model NAME is required");
    expect("vmem report --model lenet", 2, NULL, "--batch B is required");
    expect("train --policy bogus", 2, NULL, "unknown policy 'bogus'");
    expect("train --trace t.csv", 2, NULL, "need --policy");
    expect("train --offload-weights", 2, NULL, "need --policy");
    expect("train --policy none --offload-weights", 2, NULL, "needs a layer-wise policy");
    expect("vmem report --help", 0, "--offload-weights", NULL);

    /* the zoo */
    expect("model list", 0, "lenet", NULL);
    expect("model info lenet --batch 64", 0, "parameters", NULL);
    expect("model info lenet --batch 64", 0, "saved for backward", NULL);
    char jpath[400], args[2048];
    snprintf(jpath, sizeof jpath, "%s/info.json", tmpdir);
    snprintf(args, sizeof args, "model info lenet --batch 8 --json '%s'", jpath);
    expect(args, 0, NULL, NULL);
    char *js = slurp(jpath);
    CHECK(strstr(js, "\"parameters\": 61706") != NULL); /* LeNet-5: 61,706 parameters */
    free(js);
    /* --input CxHxW and HxW: height then width (a non-square input tells them apart) */
    snprintf(args, sizeof args, "model info lenet --input 1x28x32 --json '%s'", jpath);
    expect(args, 0, "input 1x28x32,", NULL);
    char *dims = json_array(jpath, "input");
    if (!numbers_close(dims, "1, 28, 32", 0)) {
        fprintf(stderr, "  model info --input 1x28x32: \"input\" is [%s], expected [1, 28, 32]\n", dims);
        fg_test_failures++;
    }
    free(dims);
    expect("model info lenet --input 28x32", 0, "input 1x28x32,", NULL);

    /* missing data: a clear message, non-zero exit */
    expect("train --data fashion --epochs 1", 1, NULL, "fetch-data.sh");
    /* `frugal data`: a set that is not there is missing (exit 0: fetching is optional); a file that
     * is there but cut short is unusable, with the reader's message, and the exit is 1 */
    char bad_dir[300], bpath[400];
    snprintf(bad_dir, sizeof bad_dir, "%s/bad-data", tmpdir);
    mkdir(bad_dir, 0755);
    snprintf(args, sizeof args, "data --data-dir '%s'", bad_dir);
    expect(args, 0, "mnist    missing", NULL);
    snprintf(bpath, sizeof bpath, "%s/mnist-images-idx3-ubyte", bad_dir);
    FILE *bf = fopen(bpath, "wb");
    FG_ASSERT(bf);
    static const unsigned char idx_head[16] = {0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28}; /* 10 images, no data */
    FG_ASSERT(fwrite(idx_head, 1, sizeof idx_head, bf) == sizeof idx_head);
    fclose(bf);
    snprintf(bpath, sizeof bpath, "%s/mnist-labels-idx1-ubyte", bad_dir);
    bf = fopen(bpath, "wb");
    FG_ASSERT(bf);
    static const unsigned char lab_head[18] = {0, 0, 8, 1, 0, 0, 0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0};
    FG_ASSERT(fwrite(lab_head, 1, sizeof lab_head, bf) == sizeof lab_head);
    fclose(bf);
    expect(args, 1, "mnist    unusable", NULL);
    expect(args, 1, "truncated", NULL);

    /* end-to-end on the synthetic set */
    write_data();
    char j1[400], j2[400], j3[400], ck[400], w[400], line[256];
    snprintf(j1, sizeof j1, "%s/a.json", tmpdir);
    snprintf(j2, sizeof j2, "%s/b.json", tmpdir);
    snprintf(j3, sizeof j3, "%s/c.json", tmpdir);
    snprintf(ck, sizeof ck, "%s/run.ckpt", tmpdir);
    snprintf(w, sizeof w, "%s/w.st", tmpdir);
    snprintf(args, sizeof args, "train --model lenet --data mnist --epochs 2 --batch 32 --threads 2 --seed 3 --json '%s' --save '%s'",
             j1, w);
    expect(args, 0, "test accuracy: ", NULL);
    last_line(line, sizeof line);
    double acc = -1;
    CHECK(sscanf(line, "test accuracy: %lf", &acc) == 1 && strlen(line) == strlen("test accuracy: 0.0000"));
    CHECK(acc > 0.9);
    js = slurp(j1);
    CHECK(strstr(js, "\"model\": \"lenet\"") && strstr(js, "\"data\": \"mnist\"") && strstr(js, "\"test_accuracy\"") &&
          strstr(js, "\"loss\": [") && strstr(js, "\"accuracy\": [") && strstr(js, "\"test_accuracy_per_epoch\": [") &&
          strstr(js, "\"seconds\""));
    free(js);

    /* eval of the saved weights gives the same accuracy line */
    snprintf(args, sizeof args, "eval --load '%s' --threads 2", w);
    expect(args, 0, line, NULL);
    snprintf(args, sizeof args, "eval --load '%s' --data mnist --batch 8 --threads 2", w);
    expect(args, 0, "test accuracy: ", NULL);
    snprintf(args, sizeof args, "eval --load '%s/nothing.st'", tmpdir);
    expect(args, 1, NULL, "nothing.st");

    /* same seed, same numbers */
    snprintf(args, sizeof args, "train --model lenet --data mnist --epochs 2 --batch 32 --threads 2 --seed 3 --json '%s'", j2);
    expect(args, 0, line, NULL);
    char *l1 = json_array(j1, "loss"), *l2 = json_array(j2, "loss");
    if (strcmp(l1, l2) != 0) {
        fprintf(stderr, "  same seed: losses differ:\n  [%s]\n  [%s]\n", l1, l2);
        fg_test_failures++;
    }
    free(l2);

    /* 1 epoch + checkpoint, then resume to 2 == 2 straight */
    snprintf(args, sizeof args, "train --model lenet --data mnist --epochs 1 --batch 32 --threads 2 --seed 3 --checkpoint '%s'",
             ck);
    expect(args, 0, "test accuracy: ", NULL);
    snprintf(args, sizeof args, "train --epochs 2 --threads 2 --resume '%s' --json '%s'", ck, j3);
    expect(args, 0, line, NULL);
    char *l3 = json_array(j3, "loss");
    if (strcmp(l1, l3) != 0) {
        fprintf(stderr, "  resume: losses differ from the straight run:\n  [%s]\n  [%s]\n", l1, l3);
        fg_test_failures++;
    }
    free(l1);
    free(l3);
    /* resuming with --optim naming the checkpoint's own optimizer keeps its settings and state
     * (it used to take the data set's default rate and no momentum) */
    {
        char ck2[600], j5[600], j6[600];
        snprintf(ck2, sizeof ck2, "%s/sgd.ckpt", tmpdir);
        snprintf(j5, sizeof j5, "%s/sgd-straight.json", tmpdir);
        snprintf(j6, sizeof j6, "%s/sgd-resumed.json", tmpdir);
        const char *sgd = "--model lenet --data mnist --batch 32 --threads 2 --seed 3 --optim sgd --lr 0.05 --momentum 0.9";
        snprintf(args, sizeof args, "train %s --epochs 2 --json '%s'", sgd, j5);
        expect(args, 0, "test accuracy: ", NULL);
        snprintf(args, sizeof args, "train %s --epochs 1 --checkpoint '%s'", sgd, ck2);
        expect(args, 0, "test accuracy: ", NULL);
        snprintf(args, sizeof args, "train --epochs 2 --threads 2 --resume '%s' --optim sgd --json '%s'", ck2, j6);
        expect(args, 0, "test accuracy: ", NULL);
        char *s5 = json_array(j5, "loss"), *s6 = json_array(j6, "loss");
        if (strcmp(s5, s6) != 0) {
            fprintf(stderr, "  resume --optim sgd: losses differ from the straight run:\n  [%s]\n  [%s]\n", s5, s6);
            fg_test_failures++;
        }
        free(s5);
        free(s6);
    }
    /* resuming with another batch size is refused */
    snprintf(args, sizeof args, "train --epochs 3 --batch 16 --threads 2 --resume '%s'", ck);
    expect(args, 1, NULL, "batch");
    /* weights are not a checkpoint */
    snprintf(args, sizeof args, "train --epochs 3 --resume '%s'", w);
    expect(args, 1, NULL, "weights only");
    /* outputs checked before any work: a report onto the weights it reads, two outputs onto one
     * file, a directory that cannot take the file; the weights survive and still load */
    snprintf(args, sizeof args, "eval --load '%s' --json '%s'", w, w);
    expect(args, 2, NULL, "--json and --load name the same file");
    snprintf(args, sizeof args, "eval --load '%s' --threads 2", w);
    expect(args, 0, line, NULL);
    snprintf(args, sizeof args, "train --epochs 1 --save '%s/two.st' --checkpoint '%s/./two.st'", tmpdir, tmpdir);
    expect(args, 2, NULL, "one output would overwrite the other");
    snprintf(args, sizeof args, "train --epochs 1 --save '%s/no-such-dir/x.st'", tmpdir);
    expect(args, 2, NULL, "cannot create a file in");
    char *o2 = slurp(out_path);
    CHECK(strstr(o2, "epoch") == NULL); /* refused before training */
    free(o2);
    /* the file name forgotten: the next option is not taken for it */
    expect("train --epochs 1 --save --quiet", 2, NULL, "got the option '--quiet'");
    expect("train --epochs 1 --threads 100000", 2, NULL, "--threads 100000: at most");

    expect("train --policy most --epochs 1", 2, NULL, "expected none, all, conv, dyn or plan");
    /* offload and prefetch change no number: the same final line under every policy as without
     * one (`line`, the run above); dyn keeps the graph's algorithms when nothing forces it to
     * change them. plan takes any algorithm its profile measures faster, so its losses agree within
     * 1e-5 relative (other algorithms sum in another order) */
    char tr[400], jv[400];
    snprintf(tr, sizeof tr, "%s/trace.csv", tmpdir);
    snprintf(jv, sizeof jv, "%s/v.json", tmpdir);
    char *l0 = json_array(j1, "loss");
    static const char *const pols[] = {"none", "all", "conv", "dyn", "plan"};
    for (int k = 0; k < 5; k++) {
        snprintf(args, sizeof args,
                 "train --model lenet --data mnist --epochs 2 --batch 32 --threads 2 --seed 3 --policy %s --json '%s'%s%s%s",
                 pols[k], jv, k == 1 ? " --trace '" : "", k == 1 ? tr : "", k == 1 ? "'" : "");
        expect(args, 0, k == 4 ? NULL : line, NULL);
        char *lv = json_array(jv, "loss");
        if (k == 4 ? !numbers_close(l0, lv, 1e-5) : strcmp(l0, lv) != 0) {
            fprintf(stderr, "  --policy %s: losses differ from the run without a policy:\n  [%s]\n  [%s]\n", pols[k], l0, lv);
            fg_test_failures++;
        }
        free(lv);
    }
    free(l0);
    js = slurp(tr);
    CHECK(strncmp(js, "t_seconds,device_bytes,event,node,pass,tensor\n", 46) == 0 && strstr(js, "offload"));
    free(js);
    /* a budget too small fails before training, naming the smallest budget */
    for (int k = 0; k < 2; k++) {
        /* 1M: plan refuses it (LeNet batch 32 under all needs ~5.7 MiB); 100K: too small even
         * for the parameters, so build fails before plan and the CLI plans in an unlimited pool */
        snprintf(args, sizeof args, "train --model lenet --data mnist --epochs 1 --batch 32 --threads 2 --policy all --device-mem %s",
                 k == 0 ? "1M" : "100K");
        expect(args, 1, NULL, "the smallest budget that would work is ");
        char *o = slurp(out_path);
        CHECK(strstr(o, "epoch") == NULL); /* no epoch ran */
        free(o);
    }

    /* without --policy, a budget too small names what the model needs kept whole, before training */
    expect("train --model lenet --data mnist --epochs 1 --batch 32 --threads 2 --device-mem 1M", 1, NULL,
           "kept whole on the device: that needs ");
    char *o3 = slurp(out_path);
    CHECK(strstr(o3, "epoch") == NULL);
    free(o3);

    /* vmem report: one JSON record per policy with the measured keys */
    snprintf(jpath, sizeof jpath, "%s/report.json", tmpdir);
    snprintf(args, sizeof args, "vmem report --model lenet --batch 4 --iters 1 --threads 2 --json '%s'", jpath);
    expect(args, 0, "frugal vmem report --model lenet", NULL);
    expect(args, 0, "overhead", NULL);
    js = slurp(jpath);
    static const char *const keys[] = {"\"policy\": ", "\"peak_device_bytes\": ", "\"avg_device_bytes\": ",
                                       "\"iter_seconds\": ", "\"overhead_vs_oracle\": ", "\"bytes_offloaded\": ",
                                       "\"bytes_prefetched\": ", "\"stall_seconds\": "};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        int cnt = 0;
        for (const char *p = js; (p = strstr(p, keys[k])) != NULL; p++) cnt++;
        if (cnt != 5) {
            fprintf(stderr, "  vmem report --json: key %s appears %d times, expected 5 (one per policy)\n", keys[k], cnt);
            fg_test_failures++;
        }
    }
    CHECK(strstr(js, "\"policy\": \"none\"") && strstr(js, "\"policy\": \"all\"") && strstr(js, "\"policy\": \"conv\"") &&
          strstr(js, "\"policy\": \"dyn\"") && strstr(js, "\"policy\": \"plan\""));
    CHECK(strstr(js, "\"peak_device_bytes\": null") == NULL); /* every policy fits an unlimited pool */
    free(js);
    /* a budget no policy fits: rows naming the smallest budget, not an abort */
    expect("vmem report --model lenet --batch 4 --iters 1 --threads 2 --device-mem 100K", 0, "conv   does not fit in", NULL);
    expect("vmem report --model lenet --batch 4 --iters 1 --threads 2 --device-mem 100K", 0, "needs at least", NULL);
    expect("vmem report --model lenet --batch 4 --policies dyn,most", 2, NULL, "--policies");
    expect("vmem report --model lenet --batch 4 --policies all,dyn,all", 2, NULL, "all given twice");
    expect("vmem report --model lenet --batch 4 --conv-algo winograd", 2, NULL, "--conv-algo: expected implicit, gemm or dnnl");
    /* vDNN's memory-optimal variant: every conv on the implicit algorithm, none and all agree */
    expect("vmem report --model lenet --batch 4 --iters 1 --threads 2 --policies none,all --conv-algo implicit", 0, "act/none",
           NULL);
    /* all with a 1 KiB host tier: the rest spills into a new directory, the report says how much */
    snprintf(args, sizeof args,
             "vmem report --model lenet --batch 4 --iters 1 --threads 2 --policies all --host-mem 1K --spill-dir '%s/spill' "
             "--json '%s'",
             tmpdir, jpath);
    expect(args, 0, "all: host tier ", NULL);
    js = slurp(jpath);
    CHECK(strstr(js, "\"disk_tier_bytes\": ") && !strstr(js, "\"disk_tier_bytes\": 0,"));
    free(js);

    /* vmem --plot (issue 3): train draws the memory over the last training iteration as a PNG
     * with gnuplot; --plot needs --policy; without gnuplot on PATH the command fails at once,
     * naming it; a gnuplot that fails after training fails the command but --json is written */
    {
        char png[400], pj[400], bin[400], cmd[16384];
        snprintf(png, sizeof png, "%s/mem.png", tmpdir);
        snprintf(pj, sizeof pj, "%s/plot.json", tmpdir);
        snprintf(bin, sizeof bin, "%s/fakebin", tmpdir);
        const char *train = "train --model lenet --data mnist --epochs 1 --batch 32 --threads 2 --policy all";
        expect("train --model lenet --epochs 1 --plot x.png", 2, NULL, "--plot needs --policy");
        snprintf(args, sizeof args, "%s --plot \"%s/it's.png\"", train, tmpdir);
        expect(args, 2, NULL, "may not contain a quote");
        FILE *gp = popen("command -v gnuplot", "r");
        char where[512] = "";
        if (gp) {
            if (!fgets(where, sizeof where, gp)) where[0] = 0;
            pclose(gp);
        }
        if (where[0]) {
            snprintf(args, sizeof args, "%s --plot '%s'", train, png);
            expect(args, 0, "memory plot: ", NULL);
            FILE *f = fopen(png, "rb");
            unsigned char sig[8] = {0};
            size_t got = f ? fread(sig, 1, 8, f) : 0;
            if (f) fclose(f);
            static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
            if (got != 8 || memcmp(sig, png_sig, 8) != 0) {
                fprintf(stderr, "  --plot: %s is missing or not a PNG (read %zu bytes: %02x %02x %02x %02x)\n", png, got,
                        sig[0], sig[1], sig[2], sig[3]);
                fg_test_failures++;
            }
            /* vmem report --plot: one line per policy, the same PNG checks */
            remove(png);
            snprintf(args, sizeof args, "vmem report --model lenet --batch 4 --iters 1 --threads 2 --plot '%s'", png);
            expect(args, 0, "memory plot: ", NULL);
            f = fopen(png, "rb");
            memset(sig, 0, sizeof sig);
            got = f ? fread(sig, 1, 8, f) : 0;
            if (f) fclose(f);
            if (got != 8 || memcmp(sig, png_sig, 8) != 0)
                fprintf(stderr, "  vmem report --plot: %s is missing or not a PNG\n", png), fg_test_failures++;
            snprintf(args, sizeof args, "vmem report --model lenet --batch 4 --plot \"%s/it's.png\"", tmpdir);
            expect(args, 2, NULL, "quote");
        } else {
            printf("  gnuplot is not installed: the PNG check of --plot is skipped\n");
        }
        /* PATH without gnuplot (an empty directory): exit 1 before training, naming gnuplot */
        mkdir(bin, 0755);
        snprintf(cmd, sizeof cmd, "PATH='%s' FRUGAL_DATA='%s/data' '%s' %s --plot '%s' >'%s' 2>'%s'", bin, tmpdir, exe, train,
                 png, out_path, err_path);
        int st = system(cmd);
        char *o = slurp(out_path), *e = slurp(err_path);
        if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 1 || !strstr(e, "gnuplot is not installed") || strstr(o, "epoch")) {
            fprintf(stderr, "  --plot without gnuplot on PATH: status %d, expected exit 1 before any epoch with "
                            "'gnuplot is not installed'\n  stdout: %.300s\n  stderr: %.300s\n", st, o, e);
            fg_test_failures++;
        }
        free(o);
        free(e);
        /* a gnuplot that fails (exits 1 without reading its input): exit 1 after training, the
         * reason in the message, --json written, no PNG left behind */
        char fake[450];
        snprintf(fake, sizeof fake, "%s/gnuplot", bin);
        FILE *fs = fopen(fake, "w");
        CHECK(fs != NULL);
        if (fs) {
            fputs("#!/bin/sh\necho 'simulated gnuplot failure' >&2\nexit 1\n", fs);
            fclose(fs);
            chmod(fake, 0755);
            unlink(png);
            snprintf(cmd, sizeof cmd, "PATH='%s':/usr/bin:/bin FRUGAL_DATA='%s/data' '%s' %s --plot '%s' --json '%s' >'%s' 2>'%s'",
                     bin, tmpdir, exe, train, png, pj, out_path, err_path);
            st = system(cmd);
            o = slurp(out_path);
            e = slurp(err_path);
            char *jl = json_array(pj, "loss");
            if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 1 || !strstr(e, "simulated gnuplot failure") ||
                !strstr(o, "epoch   1") || strcmp(jl, "<missing>") == 0 || access(png, F_OK) == 0) {
                fprintf(stderr, "  --plot with a failing gnuplot: status %d, expected exit 1 after training with the "
                                "reason, the JSON written and no PNG\n  stdout: %.300s\n  stderr: %.300s\n  json loss: %s\n",
                        st, o, e, jl);
                fg_test_failures++;
            }
            free(jl);
            free(o);
            free(e);
        }
    }

    snprintf(args, sizeof args, "rm -rf '%s'", tmpdir);
    if (system(args) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return fg_test_finish("test_cli");
}
