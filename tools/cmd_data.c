/* `frugal data`: prints the data directory and, for each known data set, which files it found
 * and how `frugal train` splits them; for the Brown corpus, its token counts and vocabulary. */
#include "cli.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

int cmd_data(int argc, char **argv) {
    const char *data_dir = NULL;
    cli_opt opts[] = {
        {"data-dir", CLI_STR, &data_dir, "DIR", "data directory (default $FRUGAL_DATA or ~/.cache/frugal)", 0},
        {NULL, CLI_FLAG, NULL, NULL, NULL, 0},
    };
    cli_cmd cmd = {"data", "frugal data [--data-dir DIR]",
                   "Shows the data directory and the data sets in it (fetch them with scripts/fetch-data.sh).", opts,
                   0, 0, NULL};
    const char *pos[1];
    int npos;
    int rc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (rc != CLI_CONTINUE) return rc;
    char buf[4096];
    const char *dir = data_dir ? data_dir : fg_data_dir(buf, sizeof buf);
    /* a directory named on the command line that is not there is a typo, not "nothing fetched yet" */
    if (data_dir) {
        struct stat st_dir;
        const char *why = stat(data_dir, &st_dir) != 0 ? strerror(errno)
                          : !S_ISDIR(st_dir.st_mode)   ? "not a directory"
                                                       : NULL;
        if (why)
            return cli_usage_error(&cmd, "--data-dir %s: %s (expected the directory scripts/fetch-data.sh fills)",
                                   data_dir, why);
    }
    printf("data directory: %s\n", dir);
    static const char *names[] = {"mnist", "fashion"};
    int missing = 0;
    int unusable = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        fg_data_split s;
        const fg_status st = fg_data_split_load(names[i], dir, &s);
        if (st == FG_OK) {
            printf("  %-8s %lld train + %lld test images of %lldx%lldx%lld, %d classes: %s\n", names[i],
                   (long long)s.train.n, (long long)s.test.n, (long long)s.train.c, (long long)s.train.h,
                   (long long)s.train.w, s.train.n_classes, s.source);
            fg_data_split_free(&s);
        } else if (st == FG_ERR_IO) {
            printf("  %-8s missing (%s)\n", names[i], fg_last_error());
            missing = 1;
        } else { /* there, but truncated or corrupt */
            printf("  %-8s unusable (%s)\n", names[i], fg_last_error());
            unusable = 1;
        }
    }
    /* The corpus is not fetched by default (the image sets are), so it has its own hint. */
    fg_corpus corpus;
    fg_status cs = fg_corpus_load(dir, "brown", &corpus);
    if (cs == FG_OK) {
        printf("  %-8s %lld train + %lld valid + %lld test tokens (with <eos>), vocabulary %d: %s/brown.*.txt\n",
               "brown", (long long)corpus.n[FG_CORPUS_TRAIN], (long long)corpus.n[FG_CORPUS_VALID],
               (long long)corpus.n[FG_CORPUS_TEST], corpus.vocab_size, dir);
        fg_corpus_free(&corpus);
    } else if (cs == FG_ERR_IO) {
        printf("  %-8s missing (fetch with: bash scripts/fetch-data.sh brown)\n", "brown");
    } else {
        printf("  %-8s unusable (%s)\n", "brown", fg_last_error());
        unusable = 1;
    }
    if (missing) printf("fetch the missing data sets with: bash scripts/fetch-data.sh\n");
    if (unusable) printf("remove the unusable files and fetch them again: bash scripts/fetch-data.sh\n");
    /* exit 1 when a file is there but cannot be read: a script checking the data sees it */
    return unusable ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
