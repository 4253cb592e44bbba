/* The LSTM language model and its training loop (include/frugal/lm.h): the sparse LSTM system's
 * top, built on the public graph API only (src/graph knows nothing of it). The schedules
 * (sparse-dense, alternating, decaying) switch each LSTM node's backward variant and drop per
 * epoch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/lm.h"

static fg_status check_cfg(const fg_lm_cfg *c) {
    if (!c) return fg_fail(FG_ERR_INVALID, "lm: no configuration");
    if (c->vocab < 2) return fg_fail(FG_ERR_INVALID, "lm: vocab %lld, expected at least 2 words", (long long)c->vocab);
    if (c->hidden < 1) return fg_fail(FG_ERR_INVALID, "lm: hidden %lld, expected >= 1", (long long)c->hidden);
    if (c->embed < 0) return fg_fail(FG_ERR_INVALID, "lm: embed %lld, expected >= 1 (or 0 = hidden)", (long long)c->embed);
    if (c->layers < 1 || c->layers > FG_LM_MAX_LAYERS)
        return fg_fail(FG_ERR_INVALID, "lm: layers %d, expected 1..%d", c->layers, FG_LM_MAX_LAYERS);
    if (c->steps < 1) return fg_fail(FG_ERR_INVALID, "lm: steps %lld, expected >= 1", (long long)c->steps);
    if (c->batch < 1) return fg_fail(FG_ERR_INVALID, "lm: batch %lld, expected >= 1", (long long)c->batch);
    if (!(c->dropout >= 0 && c->dropout < 1))
        return fg_fail(FG_ERR_INVALID, "lm: dropout %g, expected in [0, 1)", (double)c->dropout);
    if (c->sparse_block < 0 || c->sparse_block > c->hidden)
        return fg_fail(FG_ERR_INVALID, "lm: sparse block %lld, expected 0 (dense only) or 1..hidden (%lld)",
                       (long long)c->sparse_block, (long long)c->hidden);
    if (c->vocab > INT32_MAX)
        return fg_fail(FG_ERR_INVALID, "lm: vocab %lld, expected at most %d (word ids are 32-bit)", (long long)c->vocab,
                       INT32_MAX);
    if (c->steps > INT32_MAX / c->batch)
        return fg_fail(FG_ERR_INVALID, "lm: steps %lld x batch %lld, expected a product of at most %d tokens per chunk",
                       (long long)c->steps, (long long)c->batch, INT32_MAX);
    return FG_OK;
}

/* The model's handles (fg_lm_build's io) against the configuration the caller passes with them:
 * the carried state is sized from c, fed per LSTM node of io. */
static fg_status check_io(const fg_lm_io *io, const fg_lm_cfg *c, const char *what) {
    FG_TRY(check_cfg(c));
    if (!io) return fg_fail(FG_ERR_INVALID, "%s: no model (the handles fg_lm_build filled)", what);
    if (io->n_lstm != c->layers)
        return fg_fail(FG_ERR_INVALID, "%s: the model has %d LSTM layers but the configuration says %d (pass the "
                       "configuration it was built with)", what, io->n_lstm, c->layers);
    return FG_OK;
}

static fg_id drop(fg_graph *g, const char *name, fg_id x, float p) { return p > 0 ? fg_nn_dropout(g, name, x, p) : x; }

/* Every LSTM node's drop (or tau) and backward variant (with the model's block; nothing without one). */
static fg_status set_drop(fg_graph *g, const fg_lm_io *io, const fg_lm_cfg *c, float d, float tau, fg_lstm_bwd v) {
    if (c->sparse_block <= 0) return FG_OK;
    fg_lstm_sparsity sp = {.drop = d, .block = c->sparse_block, .variant = v, .tau = tau};
    for (int k = 0; k < io->n_lstm; k++) FG_TRY(fg_graph_set_lstm_sparsity(g, io->lstm_nodes[k], &sp));
    return FG_OK;
}

fg_status fg_lm_build(fg_graph *g, const fg_lm_cfg *c, fg_lm_io *io) {
    FG_TRY(check_cfg(c));
    memset(io, 0, sizeof *io);
    int64_t T = c->steps, B = c->batch, E = c->embed ? c->embed : c->hidden;
    int64_t tshape[2] = {T, B}, yshape[1] = {T * B};
    io->tokens = fg_nn_input(g, "tokens", FG_I32, 2, tshape);
    io->targets = fg_nn_input(g, "targets", FG_I32, 1, yshape);
    fg_id x = fg_nn_embedding(g, "embed", io->tokens, c->vocab, E);
    x = drop(g, "embed.drop", x, c->dropout);
    int64_t sshape[2] = {B, c->hidden};
    for (int k = 0; k < c->layers; k++) {
        char name[32], dname[40], hname[40], cname[40];
        snprintf(name, sizeof name, "lstm%d", k);
        snprintf(dname, sizeof dname, "lstm%d.drop", k);
        snprintf(hname, sizeof hname, "lstm%d.h0", k);
        snprintf(cname, sizeof cname, "lstm%d.c0", k);
        io->h0[k] = fg_nn_input(g, hname, FG_F32, 2, sshape);
        io->c0[k] = fg_nn_input(g, cname, FG_F32, 2, sshape);
        x = fg_nn_lstm_state(g, name, x, c->hidden, 1, io->h0[k], io->c0[k]);
        io->lstm_nodes[io->n_lstm++] = fg_graph_n_nodes(g) - 1;
        x = drop(g, dname, x, c->dropout);
    }
    int64_t fshape[2] = {T * B, c->hidden};
    x = fg_nn_reshape(g, "flat", x, 2, fshape);
    io->logits = fg_layer_linear(g, "decoder", x, c->vocab, 1);
    io->loss = fg_nn_xent(g, "loss", io->logits, io->targets);
    if (fg_graph_status(g) != FG_OK) return fg_fail(fg_graph_status(g), "lm: %s", fg_graph_error(g));
    return set_drop(g, io, c, 0.0f, 0.0f, FG_LSTM_BWD_STRUCTURED); /* sizes the sparse backward's workspace at build */
}

fg_lm_train_cfg fg_lm_train_defaults(void) {
    fg_lm_train_cfg t;
    memset(&t, 0, sizeof t);
    t.epochs = 6;
    t.lr = 1.0f;
    t.lr_decay = 1.0f / 1.2f;
    t.decay_after = 2;
    t.clip = 5.0f;
    t.seed = 1;
    t.sparse_variant = FG_LSTM_BWD_STRUCTURED;
    return t;
}

static const char *const sched_names[FG_LM_SCHED_COUNT] = {"sparse-dense", "alternating", "decaying"};

fg_lm_schedule fg_lm_schedule_parse(const char *name) {
    for (int k = 0; k < FG_LM_SCHED_COUNT; k++)
        if (name && strcmp(name, sched_names[k]) == 0) return (fg_lm_schedule)k;
    return FG_LM_SCHED_COUNT;
}

const char *fg_lm_schedule_name(fg_lm_schedule s) {
    return s >= 0 && s < FG_LM_SCHED_COUNT ? sched_names[s] : "unknown";
}

/* What the schedule makes of `top` (the drop, or the threshold's tau) in epoch e. */
static double scheduled(const fg_lm_train_cfg *tc, int e, double top) {
    int S = tc->epochs - tc->dense_epochs - tc->dense_first; /* epochs that may be sparse */
    e -= tc->dense_first;
    if (!(top > 0) || e < 0 || e >= S) return 0.0;
    switch (tc->schedule) {
    case FG_LM_SCHED_ALTERNATING: return e % 2 == 0 ? top : 0.0;
    case FG_LM_SCHED_DECAYING: return top * (double)(S - e) / (double)S;
    default: return top;
    }
}

double fg_lm_epoch_drop(const fg_lm_train_cfg *tc, int e) { return scheduled(tc, e, tc->sparse_drop); }

double fg_lm_epoch_tau(const fg_lm_train_cfg *tc, int e) {
    return tc->sparse_variant == FG_LSTM_BWD_THRESHOLD ? scheduled(tc, e, tc->sparse_tau) : 0.0;
}

int64_t fg_lm_chunks(int64_t n, int64_t T, int64_t B) {
    if (T < 1 || B < 1 || n < B) return 0;
    int64_t L = n / B; /* words per stream */
    return L > 1 ? (L - 1) / T : 0;
}

/* Chunk k of the split: tokens (T, B) and the words that follow them. */
static void fill_chunk(const int32_t *ids, int64_t n, int64_t T, int64_t B, int64_t k, int32_t *tok, int32_t *tgt) {
    int64_t L = n / B, i0 = k * T;
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = 0; b < B; b++) {
            tok[t * B + b] = ids[b * L + i0 + t];
            tgt[t * B + b] = ids[b * L + i0 + t + 1];
        }
}

/* The papers' initialization of the embedding and the decoder (U(-0.1, 0.1), decoder bias 0):
 * PyTorch's defaults (N(0, 1) embeddings) saturate the first LSTM's gates. */
static void init_weights(fg_graph *g, uint64_t seed) {
    fg_rng r;
    fg_rng_seed(&r, seed);
    fg_graph_init_params(g, &r);
    static const char *const uni[] = {"embed.weight", "decoder.weight"};
    for (size_t k = 0; k < sizeof uni / sizeof uni[0]; k++) {
        fg_id id = fg_graph_find(g, uni[k]);
        if (id == FG_NONE) continue;
        fg_tensor *t = fg_graph_tensor(g, id);
        float *w = t->data;
        int64_t n = fg_tensor_numel(t);
        for (int64_t i = 0; i < n; i++) w[i] = 0.2f * fg_rng_uniform(&r) - 0.1f;
    }
    fg_id b = fg_graph_find(g, "decoder.bias");
    if (b != FG_NONE) {
        fg_tensor *t = fg_graph_tensor(g, b);
        memset(t->data, 0, (size_t)fg_tensor_numel(t) * sizeof(float));
    }
}

/* ---------------------------------------------------------------- checkpoints
 *
 * After a finished epoch: the weights (fg_graph_save, no optimizer state: plain SGD has none)
 * and, as metadata, what the run needs to go on bit for bit and to report the epochs before it:
 *   kind "lm-checkpoint"; lm.epochs (finished), lm.seed, lm.steps, lm.batch, lm.chunks (per epoch);
 *   lm.train_seconds, lm.train_cpu_seconds (training time so far, C99 hex floats);
 *   lm.history: per epoch "drop,lr,train_ppl,valid_ppl,seconds,cpu_seconds,lstm_backward_seconds,
 *   lstm_backward_flops_kept" (hex floats), epochs separated by ';';
 *   lm.history_sparsity: per epoch "tau,gate_sparsity" in the same form (absent from older files).
 * The learning rate is not stored: the resumed run replays its own schedule up to the epoch. */

#define CKPT_FIELDS 8

static void epoch_fields(const fg_lm_epoch *r, double *x) {
    x[0] = r->drop, x[1] = r->lr, x[2] = r->train_ppl, x[3] = r->valid_ppl, x[4] = r->seconds;
    x[5] = r->cpu_seconds, x[6] = r->lstm_backward_seconds, x[7] = r->lstm_backward_flops_kept;
}

/* path with "{epoch}" replaced by the 1-based epoch number (every occurrence); malloc'd */
static char *ckpt_path(const char *pattern, int epoch) {
    char num[16];
    snprintf(num, sizeof num, "%d", epoch);
    size_t n = 0;
    for (const char *p = pattern; *p; p++) n += strncmp(p, "{epoch}", 7) == 0 ? strlen(num) : 1;
    char *out = malloc(n + 1), *o = out;
    if (!out) return NULL;
    for (const char *p = pattern; *p;) {
        if (strncmp(p, "{epoch}", 7) == 0) {
            o += sprintf(o, "%s", num);
            p += 7;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}

static void epoch_sparsity_fields(const fg_lm_epoch *r, double *x) { x[0] = r->tau, x[1] = r->gate_sparsity; }

/* one metadata table over the epochs: row e is fill(&hist[e]) of nfields numbers; *out malloc'd */
static fg_status history_table(const fg_lm_epoch *hist, int epochs, int nfields,
                               void (*fill)(const fg_lm_epoch *, double *), char **out) {
    *out = NULL;
    double *x = malloc((size_t)(epochs > 0 ? epochs : 1) * (size_t)nfields * sizeof(double));
    if (!x) return fg_fail(FG_ERR_OOM, "lm: out of host memory for a checkpoint");
    for (int e = 0; e < epochs; e++) fill(&hist[e], x + (size_t)e * (size_t)nfields);
    fg_status s = fg_st_meta_table_text(x, epochs, nfields, out);
    free(x);
    return s;
}

static fg_status save_checkpoint(fg_graph *g, const fg_lm_cfg *c, const fg_lm_train_cfg *tc, int64_t chunks,
                                 const fg_lm_epoch *hist, int epochs, double wall, double cpu) {
    char *path = ckpt_path(tc->checkpoint, epochs), *h = NULL, *hs = NULL;
    fg_status s = path ? FG_OK : fg_fail(FG_ERR_OOM, "lm: out of host memory for a checkpoint");
    if (s == FG_OK) s = history_table(hist, epochs, CKPT_FIELDS, epoch_fields, &h);
    if (s == FG_OK) s = history_table(hist, epochs, 2, epoch_sparsity_fields, &hs);
    if (s != FG_OK) {
        free(path);
        free(h);
        free(hs);
        return s;
    }
    char v[7][40];
    snprintf(v[0], sizeof v[0], "%d", epochs);
    snprintf(v[1], sizeof v[1], "%llu", (unsigned long long)tc->seed);
    snprintf(v[2], sizeof v[2], "%lld", (long long)c->steps);
    snprintf(v[3], sizeof v[3], "%lld", (long long)c->batch);
    snprintf(v[4], sizeof v[4], "%lld", (long long)chunks);
    snprintf(v[5], sizeof v[5], "%a", wall);
    snprintf(v[6], sizeof v[6], "%a", cpu);
    const char *keys[] = {"kind", "lm.epochs", "lm.seed", "lm.steps", "lm.batch", "lm.chunks",
                          "lm.train_seconds", "lm.train_cpu_seconds", "lm.history", "lm.history_sparsity"};
    const char *vals[] = {"lm-checkpoint", v[0], v[1], v[2], v[3], v[4], v[5], v[6], h, hs};
    s = fg_graph_save(g, NULL, path, (int)(sizeof keys / sizeof keys[0]), keys, vals);
    free(path);
    free(h);
    free(hs);
    return s;
}

void fg_lm_ckpt_info_free(fg_lm_ckpt_info *info) {
    free(info->hist);
    memset(info, 0, sizeof *info);
}

fg_status fg_lm_ckpt_read(const fg_st_file *f, const char *what, fg_lm_ckpt_info *out) {
    memset(out, 0, sizeof *out);
    const char *kind = NULL;
    int64_t n = 0;
    FG_TRY(fg_st_meta_str(f, "kind", &kind));
    if (strcmp(kind, "lm-checkpoint") != 0)
        return fg_fail(FG_ERR_FORMAT, "%s: a '%.80s' file, expected an lm-checkpoint (written by lm training's "
                       "checkpoint)", what, kind);
    FG_TRY(fg_st_meta_i64(f, "lm.epochs", 1, 1 << 20, &n));
    FG_TRY(fg_st_meta_u64(f, "lm.seed", &out->seed));
    FG_TRY(fg_st_meta_i64(f, "lm.steps", 1, INT64_MAX, &out->steps));
    FG_TRY(fg_st_meta_i64(f, "lm.batch", 1, INT64_MAX, &out->batch));
    FG_TRY(fg_st_meta_i64(f, "lm.chunks", 1, INT64_MAX, &out->chunks));
    FG_TRY(fg_st_meta_f64(f, "lm.train_seconds", &out->train_seconds));
    FG_TRY(fg_st_meta_f64(f, "lm.train_cpu_seconds", &out->train_cpu_seconds));
    double *x;
    int64_t nx;
    FG_TRY(fg_st_meta_table(f, "lm.history", CKPT_FIELDS, n, &x, &nx));
    if (nx != n) {
        free(x);
        return fg_fail(FG_ERR_FORMAT, "%s: metadata 'lm.history' has %lld epochs, 'lm.epochs' says %lld", what,
                       (long long)nx, (long long)n);
    }
    /* tau and the gate sparsity per epoch: absent from checkpoints written before the threshold variant
     * trained the LM (dense or drop-based epochs: tau 0, sparsity unknown, left 0) */
    double *y = NULL;
    int64_t ny = n;
    fg_status s = FG_OK;
    if (fg_st_meta(f, "lm.history_sparsity")) s = fg_st_meta_table(f, "lm.history_sparsity", 2, n, &y, &ny);
    if (s == FG_OK && ny != n)
        s = fg_fail(FG_ERR_FORMAT, "%s: metadata 'lm.history_sparsity' has %lld epochs, 'lm.epochs' says %lld", what,
                    (long long)ny, (long long)n);
    fg_lm_epoch *hist = s == FG_OK ? calloc((size_t)n, sizeof *hist) : NULL;
    if (s == FG_OK && !hist)
        s = fg_fail(FG_ERR_OOM, "%s: out of host memory for %lld epochs' figures", what, (long long)n);
    if (s != FG_OK) {
        free(x);
        free(y);
        return s;
    }
    for (int e = 0; e < n; e++) {
        const double *r = x + e * CKPT_FIELDS;
        hist[e] = (fg_lm_epoch){.epoch = e, .sparse = r[0] > 0, .drop = r[0], .lr = r[1], .train_ppl = r[2],
                                .valid_ppl = r[3], .seconds = r[4], .cpu_seconds = r[5],
                                .lstm_backward_seconds = r[6], .lstm_backward_flops_kept = r[7], .restored = 1};
        if (y) {
            hist[e].tau = y[2 * e];
            hist[e].gate_sparsity = y[2 * e + 1];
            hist[e].sparse = hist[e].sparse || hist[e].tau > 0;
        }
    }
    free(x);
    free(y);
    out->epochs = (int)n;
    out->hist = hist;
    return FG_OK;
}

/* Reads what save_checkpoint wrote, checks that this run can go on from it, loads the weights
 * and fills hist[0 .. *epochs - 1] (restored = 1). */
static fg_status resume_checkpoint(fg_graph *g, const fg_lm_cfg *c, const fg_lm_train_cfg *tc, int64_t chunks,
                                   fg_lm_epoch *hist, int *epochs, double *wall, double *cpu) {
    const char *path = tc->resume;
    fg_st_file *f;
    FG_TRY(fg_st_load_header(path, &f));
    fg_lm_ckpt_info in;
    fg_status s = fg_lm_ckpt_read(f, path, &in);
    fg_st_free(f);
    if (s != FG_OK) return s;
    if (in.epochs >= tc->epochs)
        s = fg_fail(FG_ERR_INVALID, "%s: the checkpoint has %d epochs already and the run %d in all: none left to "
                    "train (expected more epochs than %d)", path, in.epochs, tc->epochs, in.epochs);
    else if (in.seed != tc->seed || in.steps != c->steps || in.batch != c->batch || in.chunks != chunks)
        s = fg_fail(FG_ERR_INVALID, "%s: trained with seed %llu, %lld steps x %lld streams, %lld chunks per epoch; this "
                    "run has seed %llu, %lld x %lld, %lld chunks (expected the same, to go on bit for bit)", path,
                    (unsigned long long)in.seed, (long long)in.steps, (long long)in.batch, (long long)in.chunks,
                    (unsigned long long)tc->seed, (long long)c->steps, (long long)c->batch, (long long)chunks);
    if (s == FG_OK) s = fg_graph_load(g, NULL, path);
    if (s == FG_OK) {
        memcpy(hist, in.hist, (size_t)in.epochs * sizeof *hist);
        *epochs = in.epochs;
        *wall = in.train_seconds;
        *cpu = in.train_cpu_seconds;
    }
    fg_lm_ckpt_info_free(&in);
    return s;
}

/* A chunk's tokens and targets, and the LSTMs' state carried from chunk to chunk (h then c of
 * each layer, (B, hidden) each). */
typedef struct chunk_buf {
    int32_t *tok, *tgt;
    size_t bytes;
    float *state;
    size_t state_bytes; /* of one h or c */
} chunk_buf;

static void chunk_buf_free(chunk_buf *cb) {
    free(cb->tok);
    free(cb->tgt);
    free(cb->state);
}

static fg_status chunk_buf_init(chunk_buf *cb, const fg_lm_cfg *c) {
    cb->bytes = (size_t)(c->steps * c->batch) * sizeof(int32_t);
    cb->state_bytes = (size_t)(c->batch * c->hidden) * sizeof(float);
    cb->tok = malloc(cb->bytes);
    cb->tgt = malloc(cb->bytes);
    cb->state = calloc(2 * (size_t)c->layers, cb->state_bytes);
    if (!cb->tok || !cb->tgt || !cb->state) {
        chunk_buf_free(cb);
        return fg_fail(FG_ERR_OOM, "lm: out of host memory for a chunk (%zu bytes)",
                       2 * cb->bytes + 2 * (size_t)c->layers * cb->state_bytes);
    }
    return FG_OK;
}

static float *state_of(const chunk_buf *cb, int layer, int cell) {
    return cb->state + (size_t)(2 * layer + cell) * (cb->state_bytes / sizeof(float));
}

static void reset_state(chunk_buf *cb, const fg_lm_cfg *c) { memset(cb->state, 0, 2 * (size_t)c->layers * cb->state_bytes); }

/* Feeds cb's tokens, targets and carried state. */
static fg_status feed(fg_graph *g, const fg_lm_io *io, const chunk_buf *cb) {
    FG_TRY(fg_graph_set_input(g, io->tokens, cb->tok, cb->bytes));
    FG_TRY(fg_graph_set_input(g, io->targets, cb->tgt, cb->bytes));
    for (int l = 0; l < io->n_lstm; l++) {
        FG_TRY(fg_graph_set_input(g, io->h0[l], state_of(cb, l, 0), cb->state_bytes));
        FG_TRY(fg_graph_set_input(g, io->c0[l], state_of(cb, l, 1), cb->state_bytes));
    }
    return FG_OK;
}

/* Feeds chunk k and the carried state. */
static fg_status set_chunk(fg_graph *g, const fg_lm_io *io, const fg_lm_cfg *c, const int32_t *ids, int64_t n,
                           int64_t k, chunk_buf *cb) {
    fill_chunk(ids, n, c->steps, c->batch, k, cb->tok, cb->tgt);
    return feed(g, io, cb);
}

/* After a forward: the state the next chunk starts from. */
static fg_status keep_state(fg_graph *g, const fg_lm_io *io, chunk_buf *cb) {
    for (int l = 0; l < io->n_lstm; l++)
        FG_TRY(fg_graph_lstm_final_state(g, io->lstm_nodes[l], state_of(cb, l, 0), state_of(cb, l, 1)));
    return FG_OK;
}

fg_status fg_lm_perplexity(fg_graph *g, const fg_lm_io *io, const fg_lm_cfg *c, const int32_t *ids, int64_t n,
                           int64_t max_chunks, double *ppl) {
    FG_TRY(check_io(io, c, "lm perplexity"));
    int64_t chunks = fg_lm_chunks(n, c->steps, c->batch);
    if (max_chunks > 0 && max_chunks < chunks) chunks = max_chunks;
    if (chunks < 1)
        return fg_fail(FG_ERR_INVALID, "lm: %lld words make no chunk of %lld steps x %lld streams", (long long)n,
                       (long long)c->steps, (long long)c->batch);
    chunk_buf cb;
    FG_TRY(chunk_buf_init(&cb, c));
    fg_graph_set_training(g, 0);
    reset_state(&cb, c);
    double sum = 0;
    fg_status s = FG_OK;
    for (int64_t k = 0; k < chunks && s == FG_OK; k++) {
        s = set_chunk(g, io, c, ids, n, k, &cb);
        if (s == FG_OK) s = fg_graph_forward(g);
        if (s == FG_OK) s = keep_state(g, io, &cb);
        if (s == FG_OK) sum += fg_graph_loss(g);
    }
    fg_graph_set_training(g, 1);
    chunk_buf_free(&cb);
    if (s == FG_OK) *ppl = exp(sum / (double)chunks);
    return s;
}

/* The tensor `name` of f as a 2-D shape; FG_ERR_FORMAT naming it when absent or not 2-D. */
static fg_status weight_2d(const fg_st_file *f, const char *what, const char *name, int64_t *rows, int64_t *cols) {
    const fg_st_entry *e = fg_st_find(f, name);
    if (!e) return fg_fail(FG_ERR_FORMAT, "%s: no tensor '%s' (expected the weights of an LSTM language model)", what, name);
    if (e->ndim != 2 || e->shape[0] < 1 || e->shape[1] < 1)
        return fg_fail(FG_ERR_FORMAT, "%s: tensor '%s' has %d dimensions%s, expected a non-empty 2-D matrix", what,
                       name, e->ndim, e->ndim == 2 ? " and no elements" : "");
    *rows = e->shape[0];
    *cols = e->shape[1];
    return FG_OK;
}

fg_status fg_lm_cfg_from_weights(const fg_st_file *f, const char *what, fg_lm_cfg *c) {
    int64_t V, E, r, k, Vd, Hd;
    FG_TRY(weight_2d(f, what, "embed.weight", &V, &E));
    int layers = 0;
    int64_t H = 0, in = E;
    for (;; layers++) {
        char name[64];
        snprintf(name, sizeof name, "lstm%d.weight_hh_l0", layers);
        if (!fg_st_find(f, name)) break;
        if (layers == FG_LM_MAX_LAYERS)
            return fg_fail(FG_ERR_FORMAT, "%s: more than %d LSTM layers (expected at most that)", what, FG_LM_MAX_LAYERS);
        FG_TRY(weight_2d(f, what, name, &r, &k));
        if (r != 4 * k)
            return fg_fail(FG_ERR_FORMAT, "%s: tensor '%s' is %lld x %lld, expected (4 hidden, hidden)", what, name,
                           (long long)r, (long long)k);
        if (layers > 0 && k != H)
            return fg_fail(FG_ERR_FORMAT, "%s: tensor '%s' has %lld units, layer 0 has %lld (expected the same)", what,
                           name, (long long)k, (long long)H);
        H = k;
        snprintf(name, sizeof name, "lstm%d.weight_ih_l0", layers);
        FG_TRY(weight_2d(f, what, name, &r, &k));
        if (r != 4 * H || k != in)
            return fg_fail(FG_ERR_FORMAT, "%s: tensor '%s' is %lld x %lld, expected %lld x %lld", what, name,
                           (long long)r, (long long)k, (long long)(4 * H), (long long)in);
        in = H;
    }
    if (layers == 0) return fg_fail(FG_ERR_FORMAT, "%s: no tensor 'lstm0.weight_hh_l0' (expected at least one LSTM layer)", what);
    FG_TRY(weight_2d(f, what, "decoder.weight", &Vd, &Hd));
    if (Vd != V || Hd != H)
        return fg_fail(FG_ERR_FORMAT, "%s: tensor 'decoder.weight' is %lld x %lld, expected %lld x %lld (vocabulary x "
                       "hidden)", what, (long long)Vd, (long long)Hd, (long long)V, (long long)H);
    c->vocab = V;
    c->embed = E;
    c->hidden = H;
    c->layers = layers;
    return FG_OK;
}

/* The word drawn from logits x[0 .. V-1] at temperature temp (0: the most likely, lowest id first). */
static int32_t draw_word(const float *x, int64_t V, double temp, fg_rng *rng, double *p) {
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    if (temp == 0) return (int32_t)best;
    double sum = 0;
    for (int64_t i = 0; i < V; i++) sum += p[i] = exp(((double)x[i] - (double)x[best]) / temp);
    double u = (double)(fg_rng_u64(rng) >> 11) * 0x1p-53 * sum, acc = 0;
    for (int64_t i = 0; i < V; i++) {
        acc += p[i];
        if (u < acc) return (int32_t)i;
    }
    return (int32_t)best; /* u at the sum's last rounding: the draw falls past the end */
}

fg_status fg_lm_generate(fg_graph *g, const fg_lm_io *io, const fg_lm_cfg *c, const int32_t *prime, int64_t n_prime,
                         int64_t n, double temperature, uint64_t seed, int32_t *out) {
    FG_TRY(check_cfg(c));
    if (c->steps != 1 || c->batch != 1)
        return fg_fail(FG_ERR_INVALID, "lm generate: the model is built for %lld steps x %lld streams, expected 1 x 1",
                       (long long)c->steps, (long long)c->batch);
    FG_TRY(check_io(io, c, "lm generate"));
    if (!(temperature >= 0 && isfinite(temperature)))
        return fg_fail(FG_ERR_INVALID, "lm generate: temperature %g, expected a finite value >= 0", temperature);
    if (n < 0 || n_prime < 0 || n > INT64_MAX - n_prime || (n_prime > 0 && !prime) || (n > 0 && !out))
        return fg_fail(FG_ERR_INVALID, "lm generate: %lld prime words and %lld to draw, expected counts >= 0 with "
                       "their arrays", (long long)n_prime, (long long)n);
    for (int64_t i = 0; i < n_prime; i++)
        if (prime[i] < 0 || prime[i] >= c->vocab)
            return fg_fail(FG_ERR_INVALID, "lm generate: prime word %lld has id %d, expected 0..%lld", (long long)i,
                           prime[i], (long long)(c->vocab - 1));
    chunk_buf cb;
    FG_TRY(chunk_buf_init(&cb, c));
    float *logits = malloc((size_t)c->vocab * sizeof *logits);
    double *p = malloc((size_t)c->vocab * sizeof *p);
    fg_status s = logits && p ? FG_OK : fg_fail(FG_ERR_OOM, "lm generate: out of host memory for %lld words' "
                                                 "probabilities", (long long)c->vocab);
    fg_rng rng;
    fg_rng_seed(&rng, seed);
    fg_graph_set_training(g, 0);
    reset_state(&cb, c);
    cb.tgt[0] = 0; /* the loss node reads a target; nothing uses its value */
    int32_t word = 0; /* <eos>: what a sentence follows */
    for (int64_t i = 0; s == FG_OK && i < n_prime + n; i++) {
        cb.tok[0] = word;
        s = feed(g, io, &cb);
        if (s == FG_OK) s = fg_graph_forward(g);
        if (s == FG_OK) s = keep_state(g, io, &cb);
        if (s != FG_OK) break;
        if (i < n_prime) {
            word = prime[i];
            continue;
        }
        s = fg_graph_read(g, io->logits, logits, (size_t)c->vocab * sizeof *logits);
        if (s == FG_OK) out[i - n_prime] = word = draw_word(logits, c->vocab, temperature, &rng, p);
    }
    fg_graph_set_training(g, 1);
    chunk_buf_free(&cb);
    free(logits);
    free(p);
    return s;
}

/* The rate of epoch e from epoch e - 1's (epoch 0's from lr): decayed from decay_after on, epoch
 * 0 included when decay_after is 0. */
static double decayed(const fg_lm_train_cfg *tc, double lr, int e) {
    return e >= tc->decay_after && tc->lr_decay > 0 ? lr * tc->lr_decay : lr;
}

fg_status fg_lm_train(fg_graph *g, const fg_lm_io *io, const fg_lm_cfg *c, const fg_lm_train_cfg *tc,
                      const fg_corpus *corpus, fg_lm_epoch *hist, int *done) {
    FG_TRY(check_io(io, c, "lm train"));
    if (done) *done = 0;
    if (!(tc->sparse_drop >= 0 && tc->sparse_drop < 1))
        return fg_fail(FG_ERR_INVALID, "lm: sparse drop %g, expected in [0, 1)", (double)tc->sparse_drop);
    if (tc->sparse_variant != FG_LSTM_BWD_STEP && tc->sparse_variant != FG_LSTM_BWD_STRUCTURED &&
        tc->sparse_variant != FG_LSTM_BWD_MEPROP && tc->sparse_variant != FG_LSTM_BWD_THRESHOLD)
        return fg_fail(FG_ERR_INVALID, "lm: sparse variant %d (%s), expected step, structured, meprop or threshold",
                       (int)tc->sparse_variant, fg_lstm_bwd_name(tc->sparse_variant));
    const int threshold = tc->sparse_variant == FG_LSTM_BWD_THRESHOLD;
    if (!(tc->sparse_tau >= 0 && isfinite(tc->sparse_tau)) || (tc->sparse_tau > 0 && !threshold) ||
        (threshold && tc->sparse_drop > 0))
        return fg_fail(FG_ERR_INVALID, "lm: sparse variant %s with drop %g and tau %g; expected a drop with step, "
                       "structured or meprop, a finite tau >= 0 with threshold (its drop 0)",
                       fg_lstm_bwd_name(tc->sparse_variant), (double)tc->sparse_drop, (double)tc->sparse_tau);
    if ((tc->sparse_drop > 0 || tc->sparse_tau > 0) && c->sparse_block <= 0)
        return fg_fail(FG_ERR_INVALID, "lm: sparse training (drop %g, tau %g) needs a sparse block size at build",
                       (double)tc->sparse_drop, (double)tc->sparse_tau);
    if (tc->schedule < 0 || tc->schedule >= FG_LM_SCHED_COUNT)
        return fg_fail(FG_ERR_INVALID, "lm: schedule %d, expected sparse-dense, alternating or decaying",
                       (int)tc->schedule);
    if (tc->eval_every < 0)
        return fg_fail(FG_ERR_INVALID, "lm: eval every %lld chunks, expected >= 0 (0 = after each epoch only)",
                       (long long)tc->eval_every);
    if (tc->epochs < 1 || tc->dense_epochs < 0 || tc->dense_first < 0 || !(tc->lr > 0) || !(tc->clip >= 0))
        return fg_fail(FG_ERR_INVALID, "lm: epochs %d, dense epochs %d (last) and %d (first), lr %g, clip %g; "
                       "expected epochs >= 1, dense epochs >= 0, lr > 0, clip >= 0", tc->epochs, tc->dense_epochs,
                       tc->dense_first, (double)tc->lr, (double)tc->clip);
    const int32_t *ids = corpus->ids[0];
    int64_t n = corpus->n[0];
    int64_t chunks = fg_lm_chunks(n, c->steps, c->batch);
    if (chunks < 1)
        return fg_fail(FG_ERR_INVALID, "lm: the training split (%lld words) makes no chunk of %lld steps x %lld streams",
                       (long long)n, (long long)c->steps, (long long)c->batch);
    if (fg_lm_chunks(corpus->n[1], c->steps, c->batch) < 1) /* found now, not after an epoch of training */
        return fg_fail(FG_ERR_INVALID, "lm: the validation split (%lld words) makes no chunk of %lld steps x %lld "
                       "streams, and every epoch ends with its perplexity", (long long)corpus->n[1],
                       (long long)c->steps, (long long)c->batch);
    const int64_t split_chunks = chunks; /* epochs shorter than the split take successive windows of it */
    if (tc->max_batches > 0 && tc->max_batches < chunks) chunks = tc->max_batches;

    init_weights(g, tc->seed);
    fg_optim_cfg oc = fg_optim_defaults(FG_OPTIM_SGD, tc->lr);
    fg_optim *opt;
    FG_TRY(fg_optim_create(&opt, g, &oc));
    chunk_buf cb;
    fg_status s = chunk_buf_init(&cb, c); /* frees what it got on failure */
    if (s != FG_OK) {
        fg_optim_free(opt);
        return s;
    }
    fg_lm_epoch *run = calloc((size_t)tc->epochs, sizeof *run); /* every epoch so far, for the checkpoints */
    if (!run) {
        chunk_buf_free(&cb);
        fg_optim_free(opt);
        return fg_fail(FG_ERR_OOM, "lm: out of host memory for %d epochs' figures", tc->epochs);
    }
    double lr = tc->lr;
    double wall_total = 0, cpu_total = 0; /* training time of the finished epochs */
    int start = 0;
    if (tc->resume) s = resume_checkpoint(g, c, tc, chunks, run, &start, &wall_total, &cpu_total);
    /* the checkpoint's epochs: reported as they were, and the rate schedule replayed over them */
    double wall_sum = 0, cpu_sum = 0;
    for (int e = 0; e < start && s == FG_OK; e++) {
        lr = decayed(tc, lr, e);
        if (hist) hist[e] = run[e];
        if (done) *done = e + 1;
        if (tc->on_epoch) tc->on_epoch(&run[e], tc->user);
        wall_sum += run[e].seconds;
        cpu_sum += run[e].cpu_seconds;
        if (tc->on_eval) {
            fg_lm_eval ev = {e, chunks, e + 1.0, wall_sum, cpu_sum, run[e].valid_ppl};
            tc->on_eval(&ev, tc->user);
        }
    }
    uint64_t step = (uint64_t)start * (uint64_t)chunks; /* the dropout seeds go on where they were */
    for (int e = start; e < tc->epochs && s == FG_OK; e++) {
        lr = decayed(tc, lr, e);
        fg_optim_set_lr(opt, (float)lr);
        double drop = fg_lm_epoch_drop(tc, e), tau = fg_lm_epoch_tau(tc, e);
        int sparse = drop > 0 || tau > 0;
        if ((s = set_drop(g, io, c, (float)drop, (float)tau, tc->sparse_variant)) != FG_OK) break;
        fg_graph_set_training(g, 1);
        fg_graph_reset_times(g);
        reset_state(&cb, c);
        double t0 = fg_time_now(), c0 = fg_time_cpu(), sum = 0, flops = 0, flops_dense = 0, zeroed = 0;
        double paused = 0, paused_cpu = 0; /* time spent in mid-epoch validations */
        int64_t k = 0;
        for (; k < chunks && s == FG_OK; k++) {
            if (tc->eval_every > 0 && k > 0 && k % tc->eval_every == 0 && tc->on_eval) {
                double w0 = fg_time_now(), u0 = fg_time_cpu();
                fg_lm_eval ev = {e, k, e + (double)k / (double)chunks, wall_total + (w0 - t0 - paused),
                                 cpu_total + (u0 - c0 - paused_cpu), 0};
                s = fg_lm_perplexity(g, io, c, corpus->ids[1], corpus->n[1], tc->max_eval_batches, &ev.valid_ppl);
                if (s != FG_OK) break;
                tc->on_eval(&ev, tc->user);
                paused += fg_time_now() - w0;
                paused_cpu += fg_time_cpu() - u0;
            }
            if (tc->stop && *tc->stop) break;
            fg_graph_set_seed(g, tc->seed * 0x9E3779B97F4A7C15ull + step++);
            fg_graph_zero_grad(g);
            s = set_chunk(g, io, c, ids, n, ((int64_t)e * chunks + k) % split_chunks, &cb);
            if (s == FG_OK) s = fg_graph_forward(g);
            if (s == FG_OK) s = keep_state(g, io, &cb);
            if (s == FG_OK) s = fg_graph_backward(g);
            if (s != FG_OK) break;
            float loss = fg_graph_loss(g);
            if (!isfinite(loss)) {
                s = fg_fail(FG_ERR_INVALID, "lm: training diverged: loss is %g at epoch %d, batch %lld (lower the "
                            "learning rate, now %g, or clip the gradients)", (double)loss, e + 1, (long long)k + 1, lr);
                break;
            }
            sum += loss;
            for (int l = 0; l < io->n_lstm && c->sparse_block > 0; l++) {
                fg_lstm_sparse_stats st;
                if (fg_graph_lstm_sparse_stats(g, io->lstm_nodes[l], &st) == FG_OK) {
                    flops += st.gemm_flops;
                    flops_dense += st.gemm_flops_dense;
                    zeroed += st.sparsity; /* every LSTM has T * B * 4H gate gradients */
                }
            }
            if (tc->clip > 0) fg_graph_clip_grad_norm(g, tc->clip);
            s = fg_optim_step(opt);
            if (tc->on_batch) {
                fg_lm_progress p = {e, k + 1, chunks, sum / (double)(k + 1), fg_time_now() - t0 - paused};
                tc->on_batch(&p, tc->user);
            }
        }
        if (s != FG_OK || k == 0 || k < chunks) break; /* failed, or stopped (a partial epoch is not reported) */
        fg_lm_epoch r;
        memset(&r, 0, sizeof r);
        r.epoch = e;
        r.sparse = sparse;
        r.drop = drop;
        r.tau = tau;
        r.gate_sparsity = c->sparse_block > 0 ? zeroed / ((double)k * io->n_lstm) : 0.0;
        r.lr = lr;
        r.seconds = fg_time_now() - t0 - paused;
        r.cpu_seconds = fg_time_cpu() - c0 - paused_cpu;
        wall_total += r.seconds;
        cpu_total += r.cpu_seconds;
        r.train_ppl = exp(sum / (double)k);
        for (int l = 0; l < io->n_lstm; l++) r.lstm_backward_seconds += fg_graph_node_time(g, io->lstm_nodes[l], FG_BACKWARD);
        r.lstm_backward_flops_kept = flops_dense > 0 ? flops / flops_dense : 1.0;
        s = fg_lm_perplexity(g, io, c, corpus->ids[1], corpus->n[1], tc->max_eval_batches, &r.valid_ppl);
        if (s != FG_OK) break;
        run[e] = r;
        if (tc->checkpoint && (s = save_checkpoint(g, c, tc, chunks, run, e + 1, wall_total, cpu_total)) != FG_OK) break;
        if (hist) hist[e] = r;
        if (done) *done = e + 1;
        if (tc->on_epoch) tc->on_epoch(&r, tc->user);
        if (tc->on_eval) {
            fg_lm_eval ev = {e, k, e + 1.0, wall_total, cpu_total, r.valid_ppl};
            tc->on_eval(&ev, tc->user);
        }
    }
    free(run);
    chunk_buf_free(&cb);
    fg_optim_free(opt);
    return s;
}
