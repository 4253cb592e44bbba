/* Word-level language modelling with stacked LSTMs: the model and training loop of the sparse
 * LSTM system (Zhu, Zhang and Kautz, "Structurally Sparsified Backward Propagation for Faster Long
 * Short-Term Memory Training", arXiv 1806.00512).
 *
 * The model is Zaremba et al.'s (embedding, `layers` LSTMs, a linear decoder over the vocabulary,
 * dropout on the embedding, between the layers and before the decoder), trained with truncated
 * backpropagation through time on `batch` parallel streams of the corpus, `steps` words at a time,
 * plain SGD with gradient-norm clipping and a per-epoch learning-rate decay. Each chunk starts
 * from the state the previous chunk ended in (the streams continue; no gradient flows across the
 * chunk boundary), from zeros at the start of an epoch and of an evaluation.
 *
 * Sparse training: in a sparse epoch every LSTM's backward drops the gate gradients of a fraction
 * of the lowest-scoring hidden-unit blocks (fg_graph_set_lstm_sparsity), so the backward GEMMs
 * shrink; a schedule says which epochs are sparse and at which drop (fg_lm_schedule), and the last
 * `dense_epochs` epochs train dense (the paper's mixed schedule, which recovers the accuracy). */
#ifndef FRUGAL_LM_H
#define FRUGAL_LM_H

#include <signal.h>

#include "frugal/graph.h"
#include "frugal/io.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FG_LM_MAX_LAYERS 8

typedef struct fg_lm_cfg {
    int64_t vocab;        /* words incl. <eos> (fg_corpus.vocab_size) */
    int64_t embed;        /* embedding size; 0 = hidden */
    int64_t hidden;       /* LSTM units per layer */
    int layers;           /* 1..FG_LM_MAX_LAYERS */
    int64_t steps;        /* BPTT length T */
    int64_t batch;        /* parallel streams B */
    float dropout;        /* 0 = none */
    int64_t sparse_block; /* hidden units per structural block of the sparse backward; 0 = dense
                             only (the workspace is sized for sparse epochs at build) */
} fg_lm_cfg;

typedef struct fg_lm_io {
    fg_id tokens;  /* (T, B) i32 */
    fg_id targets; /* (T*B) i32: the word after each token */
    fg_id logits;  /* (T*B, vocab) */
    fg_id loss;    /* mean cross-entropy in nats per word */
    int n_lstm;
    int lstm_nodes[FG_LM_MAX_LAYERS];
    fg_id h0[FG_LM_MAX_LAYERS], c0[FG_LM_MAX_LAYERS]; /* (B, hidden) f32 inputs: each layer's initial state */
} fg_lm_io;

/* Adds the model to the empty graph g (parameters named like PyTorch's: "embed.weight",
 * "lstm<k>.weight_ih_l0", "decoder.weight"...) and, with sparse_block > 0, gives every LSTM node
 * that block at drop 0. The caller builds it (fg_graph_build with io->loss). FG_ERR_INVALID
 * naming the field for a bad size. */
fg_status fg_lm_build(fg_graph *g, const fg_lm_cfg *c, fg_lm_io *io);

typedef struct fg_lm_progress {
    int epoch;            /* 0-based */
    int64_t batch, batches;
    double loss;          /* running mean over the epoch so far, nats per word */
    double seconds;       /* since the epoch started */
} fg_lm_progress;

/* Which epochs train sparse, and at which drop (fg_lm_epoch_drop; with the threshold variant the
 * schedule gives each epoch's tau in the same way, fg_lm_epoch_tau). In every schedule the first
 * dense_first epochs (a dense warm-up) and the last dense_epochs epochs are dense; the schedule
 * orders the S = epochs - dense_first - dense_epochs epochs between them, numbered e = 0..S-1. */
typedef enum fg_lm_schedule {
    FG_LM_SCHED_SPARSE_DENSE, /* sparse_drop in every epoch before the dense ones (the paper's mixed schedule) */
    FG_LM_SCHED_ALTERNATING,  /* sparse_drop in epochs 0, 2, 4...; dense in 1, 3, 5... */
    FG_LM_SCHED_DECAYING,     /* the drop falls linearly from sparse_drop in epoch 0 towards 0: epoch e of the
                                 S epochs between the dense ones drops sparse_drop * (S - e) / S */
    FG_LM_SCHED_COUNT
} fg_lm_schedule;

/* "sparse-dense", "alternating", "decaying"; FG_LM_SCHED_COUNT for an unknown name. */
fg_lm_schedule fg_lm_schedule_parse(const char *name);
const char *fg_lm_schedule_name(fg_lm_schedule s);

typedef struct fg_lm_epoch {
    int epoch;            /* 0-based */
    int sparse;           /* this epoch's LSTM backwards dropped blocks */
    double drop;          /* the fraction of blocks they dropped (0 when dense) */
    double lr;
    double train_ppl, valid_ppl;
    double seconds;            /* the epoch's training (without validation) */
    double cpu_seconds;        /* the process's CPU time in that training (all threads): less sensitive to
                                  other processes on the cores than the wall time */
    double lstm_backward_seconds; /* summed over the LSTM nodes' backwards */
    double lstm_backward_flops_kept; /* recurrent-backward GEMM FLOPs issued / the dense ones (1 = dense) */
    double tau;           /* threshold variant: the |dG| below which this epoch zeroed gate gradients (0 otherwise) */
    double gate_sparsity; /* fraction of the gate gradients the LSTM backwards zeroed, over the epoch (0 = dense) */
    int restored;         /* 1: trained before, read from the checkpoint this run resumed (tc->resume) */
} fg_lm_epoch;

/* A validation point during training (fg_lm_train_cfg.eval_every): the learning curve against time. */
typedef struct fg_lm_eval {
    int epoch;                 /* 0-based */
    int64_t batch;             /* chunks of that epoch trained so far */
    double epochs_done;        /* epoch + batch / batches */
    double train_seconds;      /* wall time spent training since the start (validations left out) */
    double train_cpu_seconds;  /* likewise, process CPU time */
    double valid_ppl;
} fg_lm_eval;

typedef struct fg_lm_train_cfg {
    int epochs;
    float lr;              /* SGD, no momentum */
    float lr_decay;        /* lr *= lr_decay each epoch from epoch decay_after on; 1 = constant */
    int decay_after;
    float clip;            /* max global gradient norm; 0 = none */
    float sparse_drop;     /* fraction of blocks dropped in sparse epochs, [0, 1); 0 = dense training */
    fg_lstm_bwd sparse_variant; /* the sparse epochs' backward: step, structured (the default), meprop, or
                                   threshold (Zhu et al. 2016: |dG| < sparse_tau zeroed, every GEMM dense) */
    float sparse_tau;      /* threshold variant only: the tau of its sparse epochs (> 0; sparse_drop stays 0) */
    fg_lm_schedule schedule; /* which epochs are sparse and at which drop (default sparse-dense) */
    int dense_epochs;      /* the last dense_epochs epochs train dense */
    int dense_first;       /* so do the first dense_first epochs (a dense warm-up; default 0) */
    uint64_t seed;         /* weights and dropout */
    int64_t max_batches;   /* chunks per epoch; 0 = every chunk of the training split. Shorter epochs take
                              successive windows of the split (epoch e starts at chunk e * max_batches,
                              wrapping around), so a run of short epochs still reads new text */
    int64_t max_eval_batches; /* validation chunks per epoch; 0 = all */
    int64_t eval_every;    /* > 0: also evaluate the validation perplexity (over max_eval_batches) every
                              eval_every chunks, reported to on_eval; it changes no training numbers */
    void (*on_batch)(const fg_lm_progress *p, void *user);
    void (*on_epoch)(const fg_lm_epoch *e, void *user);
    void (*on_eval)(const fg_lm_eval *e, void *user); /* every eval_every chunks and after every epoch */
    void *user;
    const volatile sig_atomic_t *stop; /* polled between batches (e.g. set by SIGINT); may be NULL */
    const char *checkpoint; /* after every finished epoch, write the weights and the run so far (its epochs'
                               figures, the training time) to this safetensors file, atomically; "{epoch}" in
                               it becomes the epoch's number (1-based), keeping one file per epoch. NULL: none */
    const char *resume;     /* go on from such a checkpoint: its weights, its epochs (in hist, reported again
                               with restored = 1) and its training time; training starts at the next epoch under
                               this cfg, whose schedule may differ from the checkpoint's run from there on (a
                               branch). Its seed, steps, batch and chunks per epoch must be this run's; the run
                               then matches one that never stopped, bit for bit. NULL: from scratch */
} fg_lm_train_cfg;

/* After Zaremba et al.'s training, shortened for two CPU cores: 6 epochs, SGD lr 1, decay 1/1.2
 * per epoch from epoch 2 (0-based) on, clip 5, dense training, seed 1, every chunk. */
fg_lm_train_cfg fg_lm_train_defaults(void);

/* The drop of epoch e (0-based) under tc's schedule: 0 for a dense epoch. */
double fg_lm_epoch_drop(const fg_lm_train_cfg *tc, int e);
/* The threshold variant's tau in epoch e under tc's schedule (decaying: it falls as the drop
 * does); 0 for a dense epoch and for the other variants. */
double fg_lm_epoch_tau(const fg_lm_train_cfg *tc, int e);

/* Number of (T, B) chunks the split of n words yields: the words are cut into B streams of
 * n / B words; each chunk reads T of them and predicts the T following ones. */
int64_t fg_lm_chunks(int64_t n, int64_t T, int64_t B);

/* Initializes the weights from tc->seed, trains tc->epochs epochs on corpus->ids[0], evaluates the
 * validation perplexity after each, and fills hist[0 .. epochs-1] (hist may be NULL). g was built
 * from fg_lm_build(c) with a loss. FG_ERR_INVALID when a sparse epoch is asked for without
 * c->sparse_block, or the split is shorter than one chunk; stop set: returns FG_OK with fewer
 * epochs in hist (*done says how many). */
fg_status fg_lm_train(fg_graph *g, const fg_lm_io *io, const fg_lm_cfg *c, const fg_lm_train_cfg *tc,
                      const fg_corpus *corpus, fg_lm_epoch *hist, int *done);

/* What a checkpoint of fg_lm_train (tc->checkpoint) says about itself, from its metadata. */
typedef struct fg_lm_ckpt_info {
    int epochs;              /* finished */
    uint64_t seed;
    int64_t steps, batch, chunks; /* T, B and chunks per epoch it was trained with */
    double train_seconds, train_cpu_seconds; /* training time of those epochs */
    fg_lm_epoch *hist;       /* epochs entries (restored = 1); owned, fg_lm_ckpt_info_free */
} fg_lm_ckpt_info;

/* Reads the metadata of a loaded checkpoint file; `what` names it in messages. FG_ERR_FORMAT
 * naming the key for another kind of file or a missing or malformed key; on error out->hist is NULL
 * and out->epochs 0 (nothing to free; the other fields may be partly filled). */
fg_status fg_lm_ckpt_read(const fg_st_file *f, const char *what, fg_lm_ckpt_info *out);
void fg_lm_ckpt_info_free(fg_lm_ckpt_info *info);

/* Perplexity exp(mean cross-entropy) over the first max_chunks chunks (0 = all) of ids, dropout off;
 * g is left in training mode. */
fg_status fg_lm_perplexity(fg_graph *g, const fg_lm_io *io, const fg_lm_cfg *c, const int32_t *ids, int64_t n,
                           int64_t max_chunks, double *ppl);

/* The model's sizes from a checkpoint's tensors (embed.weight (vocab, embed), lstm<k>.weight_hh_l0
 * (4 hidden, hidden) for k = 0.. while present, decoder.weight (vocab, hidden)): fills c->vocab,
 * embed, hidden and layers; the other fields are the caller's. FG_ERR_FORMAT naming the tensor
 * when one is missing or its shape does not fit the others. `what` names the file in messages. */
fg_status fg_lm_cfg_from_weights(const fg_st_file *f, const char *what, fg_lm_cfg *c);

/* Text from the model: g was built from fg_lm_build(c) with c->steps = c->batch = 1 and its
 * weights loaded. Starts from zero state, reads <eos> (a sentence start) and the n_prime ids of
 * prime, then draws n words into out[0 .. n-1], each read back as the next input. Each word is
 * drawn from softmax(logits / temperature) with a generator seeded by seed; temperature 0 takes
 * the most likely word (the lowest id among equals) and draws nothing. Dropout is off while it
 * runs; g is left in training mode, as fg_lm_perplexity leaves it. */
fg_status fg_lm_generate(fg_graph *g, const fg_lm_io *io, const fg_lm_cfg *c, const int32_t *prime, int64_t n_prime,
                         int64_t n, double temperature, uint64_t seed, int32_t *out);

#ifdef __cplusplus
}
#endif
#endif
