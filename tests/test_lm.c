/* The LSTM language model (include/frugal/lm.h) on small synthetic corpora:
 *  - chunking: fg_lm_chunks and the chunks' tokens and targets (the next word of each stream);
 *  - learning: on a corpus whose next word is determined by the current one, a small model's
 *    validation perplexity falls from about the vocabulary size to near 1;
 *  - the sparse backward: a model built with a sparse block but trained at drop 0 gives the dense
 *    model's perplexities bit for bit; with drop 0.5 it issues fewer backward GEMM FLOPs, still
 *    learns, and the mixed schedule's last epoch is dense (FLOPs back to the dense count);
 *  - the threshold variant (Zhu et al. 2016): a tau below every gradient trains as dense does,
 *    bit for bit; a larger one zeroes a reported share of the gate gradients, keeps every GEMM
 *    dense and still learns; the drop-based variants report their drop as the share zeroed;
 *  - checkpoints: a run that writes them trains the same; one resumed from an epoch's checkpoint
 *    goes on bit for bit as if it never stopped, reports the earlier epochs as they were, and may
 *    branch to another schedule; a checkpoint of another run or a broken file is refused by name;
 *  - what an epoch reads: the state carried from chunk to chunk, and short epochs reading
 *    successive windows of the split (wrapping around);
 *  - evaluation and generation run without dropout and leave the graph training;
 *  - the trainer's edges: max_batches = chunks - 1, every "{epoch}" of a checkpoint name, a run
 *    stopped inside its first epoch (nothing reported or written), validation time left out of
 *    the epoch's seconds, a resumed threshold epoch reported sparse with its tau;
 *  - generation: the sizes read back from a checkpoint's tensors; a model trained on lines "a x b"
 *    and "c x d" continues a prime of "a x" with b and "c x" with d at temperature 0 (the state
 *    is carried from word to word); with the decoder's weights zeroed the words are drawn from
 *    softmax(bias / temperature) at temperatures 1 and 2 (frequencies within 5 sigma); bad
 *    arguments fail by name;
 *  - bad configurations fail with messages naming the field. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frugal/io.h"
#include "frugal/lm.h"
#include "testutil.h"

/* "w0 w1 ... w7" cycles of a fixed permutation, one line per cycle: the next word is a function
 * of the current one (and <eos> follows w7). */
static char *cycle_text(int lines) {
    static const int perm[8] = {3, 6, 0, 5, 1, 7, 2, 4};
    size_t cap = (size_t)lines * 8 * 4 + 1, o = 0;
    char *s = malloc(cap);
    for (int l = 0; l < lines; l++)
        for (int k = 0; k < 8; k++) o += (size_t)snprintf(s + o, cap - o, "w%d%c", perm[k], k == 7 ? '\n' : ' ');
    s[o] = 0;
    return s;
}

static void load_cycles(fg_corpus *c, int train_lines, int eval_lines) {
    char *tr = cycle_text(train_lines), *ev = cycle_text(eval_lines);
    const char *texts[3] = {tr, ev, ev};
    size_t lens[3] = {strlen(tr), strlen(ev), strlen(ev)};
    CHECK_OK(fg_corpus_parse(texts, lens, "cycles", c));
    free(tr);
    free(ev);
}

typedef struct lm_run {
    fg_graph *g;
    fg_pool *pool;
    fg_lm_io io;
} lm_run;

static fg_status lm_open(lm_run *r, const fg_lm_cfg *c) {
    memset(r, 0, sizeof *r);
    CHECK_OK(fg_pool_create(&r->pool, 0));
    CHECK_OK(fg_graph_create(&r->g, "lm"));
    fg_status s = fg_lm_build(r->g, c, &r->io);
    if (s != FG_OK) return s;
    fg_mem_policy pol;
    CHECK_OK(fg_policy_network_wide(&pol));
    return fg_graph_build(r->g, r->io.loss, r->pool, &pol);
}

static void lm_close(lm_run *r) {
    fg_graph_free(r->g);
    fg_pool_destroy(r->pool);
}

static void test_chunks(void) {
    CHECK(fg_lm_chunks(100, 4, 5) == 4); /* 20 words per stream: chunks need T + 1 words */
    CHECK(fg_lm_chunks(21, 4, 5) == 0);  /* 4 words per stream */
    CHECK(fg_lm_chunks(25, 4, 5) == 1);
    CHECK(fg_lm_chunks(4, 4, 5) == 0);
    /* the model reads stream b at b * L + i and predicts the following word: on the cycle corpus
     * (ids deterministic) the loss of an untrained model is about log(vocab) */
    fg_corpus c;
    load_cycles(&c, 40, 8);
    CHECK(c.vocab_size == 9); /* <eos> and w0..w7 */
    fg_lm_cfg cfg = {c.vocab_size, 0, 8, 1, 4, 2, 0.0f, 0};
    lm_run r;
    CHECK_OK(lm_open(&r, &cfg));
    fg_rng rng;
    fg_rng_seed(&rng, 3);
    fg_graph_init_params(r.g, &rng);
    double ppl;
    CHECK_OK(fg_lm_perplexity(r.g, &r.io, &cfg, c.ids[1], c.n[1], 0, &ppl));
    printf("untrained perplexity %.3f (vocabulary %d)\n", ppl, c.vocab_size);
    CHECK(ppl > 3 && ppl < 40);
    /* too short a split for one chunk: a clear error */
    fg_status s = fg_lm_perplexity(r.g, &r.io, &cfg, c.ids[1], 9, 0, &ppl);
    CHECK(s == FG_ERR_INVALID && strstr(fg_last_error(), "no chunk"));
    lm_close(&r);
    fg_corpus_free(&c);
}

static void train(const fg_lm_cfg *cfg, const fg_lm_train_cfg *tc, const fg_corpus *c, fg_lm_epoch *h) {
    lm_run r;
    CHECK_OK(lm_open(&r, cfg));
    int done = 0;
    CHECK_OK(fg_lm_train(r.g, &r.io, cfg, tc, c, h, &done));
    CHECK(done == tc->epochs);
    lm_close(&r);
}

static void test_learning_and_sparse(void) {
    fg_corpus c;
    load_cycles(&c, 1000, 30);
    fg_lm_cfg dense = {c.vocab_size, 16, 32, 2, 8, 4, 0.0f, 0};
    fg_lm_train_cfg tc = fg_lm_train_defaults();
    tc.epochs = 4;
    tc.lr = 1.0f;
    fg_lm_epoch hd[4], hb[4], hs[4];
    train(&dense, &tc, &c, hd);
    for (int e = 0; e < 4; e++)
        printf("dense  epoch %d: train ppl %.3f, valid ppl %.3f, FLOPs kept %.3f\n", e + 1, hd[e].train_ppl,
               hd[e].valid_ppl, hd[e].lstm_backward_flops_kept);
    CHECK(hd[0].valid_ppl < 9.0 && hd[3].valid_ppl < 1.1 && hd[3].valid_ppl < hd[0].valid_ppl);
    CHECK(hd[3].lstm_backward_flops_kept == 1.0);

    /* the same model with a sparse block, drop 0: the dense backward, the same numbers */
    fg_lm_cfg blocked = dense;
    blocked.sparse_block = 4;
    train(&blocked, &tc, &c, hb);
    for (int e = 0; e < 4; e++) {
        CHECK(hb[e].train_ppl == hd[e].train_ppl && hb[e].valid_ppl == hd[e].valid_ppl);
        CHECK(hb[e].lstm_backward_flops_kept == 1.0 && !hb[e].sparse);
    }

    /* drop half the blocks for three epochs, then one dense epoch; kept blocks chosen per step */
    tc.sparse_drop = 0.5f;
    tc.dense_epochs = 1;
    tc.sparse_variant = FG_LSTM_BWD_STEP;
    train(&blocked, &tc, &c, hs);
    for (int e = 0; e < 4; e++)
        printf("step sparse epoch %d (%s): train ppl %.3f, valid ppl %.3f, FLOPs kept %.3f\n", e + 1,
               hs[e].sparse ? "sparse" : "dense", hs[e].train_ppl, hs[e].valid_ppl, hs[e].lstm_backward_flops_kept);
    for (int e = 0; e < 3; e++) CHECK(hs[e].sparse && hs[e].lstm_backward_flops_kept < 0.9);
    CHECK(!hs[3].sparse && hs[3].lstm_backward_flops_kept == 1.0);
    /* sparse epochs learn too; the bound is loose because the masks amplify rounding: a GEMM
     * that rounds differently (another layout, thread count) moves this between ~1.1 and ~1.4 */
    CHECK(hs[2].train_ppl < 1.5 && hs[3].valid_ppl < 1.5);

    /* the same with one kept set per chunk (the default): every backward GEMM at half the FLOPs */
    tc.sparse_variant = FG_LSTM_BWD_STRUCTURED;
    train(&blocked, &tc, &c, hs);
    for (int e = 0; e < 4; e++)
        printf("structured sparse epoch %d (%s): train ppl %.3f, valid ppl %.3f, FLOPs kept %.3f\n", e + 1,
               hs[e].sparse ? "sparse" : "dense", hs[e].train_ppl, hs[e].valid_ppl, hs[e].lstm_backward_flops_kept);
    for (int e = 0; e < 3; e++) CHECK(hs[e].sparse && fabs(hs[e].lstm_backward_flops_kept - 0.5) < 1e-9);
    for (int e = 0; e < 3; e++) CHECK(fabs(hs[e].gate_sparsity - 0.5) < 1e-9 && hs[e].tau == 0);
    CHECK(!hs[3].sparse && hs[3].lstm_backward_flops_kept == 1.0 && hs[3].gate_sparsity == 0);
    CHECK(hs[2].train_ppl < 1.5 && hs[3].valid_ppl < 1.5);

    /* threshold: a tau under every nonzero gradient zeroes nothing that was not zero: dense's numbers */
    tc.sparse_drop = 0;
    tc.sparse_variant = FG_LSTM_BWD_THRESHOLD;
    tc.sparse_tau = 1e-30f;
    train(&blocked, &tc, &c, hs);
    for (int e = 0; e < 4; e++) {
        CHECK(hs[e].train_ppl == hd[e].train_ppl && hs[e].valid_ppl == hd[e].valid_ppl);
        CHECK(hs[e].sparse == (e < 3) && hs[e].tau == (e < 3 ? (double)1e-30f : 0.0));
        CHECK(hs[e].lstm_backward_flops_kept == 1.0);
    }
    /* a tau that bites: a share of dG zeroed (counted), every GEMM still dense, and it learns */
    tc.sparse_tau = 2e-4f;
    train(&blocked, &tc, &c, hs);
    for (int e = 0; e < 4; e++)
        printf("threshold epoch %d (tau %g): train ppl %.3f, valid ppl %.3f, dG zeroed %.3f\n", e + 1, hs[e].tau,
               hs[e].train_ppl, hs[e].valid_ppl, hs[e].gate_sparsity);
    CHECK(hs[0].gate_sparsity > 0.2 && hs[0].gate_sparsity < 0.99 && hs[0].train_ppl != hd[0].train_ppl);
    for (int e = 0; e < 4; e++) CHECK(hs[e].lstm_backward_flops_kept == 1.0);
    CHECK(hs[3].tau == 0 && hs[3].gate_sparsity == 0);
    CHECK(hs[3].valid_ppl < 1.5);
    fg_corpus_free(&c);
}

static void test_schedules(void) {
    fg_lm_train_cfg tc = fg_lm_train_defaults();
    tc.epochs = 5;
    tc.dense_epochs = 1;
    tc.sparse_drop = 0.8f;
    static const double want[FG_LM_SCHED_COUNT][5] = {
        {0.8, 0.8, 0.8, 0.8, 0}, /* sparse-dense */
        {0.8, 0, 0.8, 0, 0},     /* alternating */
        {0.8, 0.6, 0.4, 0.2, 0}, /* decaying: 0.8 * (4 - e) / 4 */
    };
    for (int k = 0; k < FG_LM_SCHED_COUNT; k++) {
        tc.schedule = (fg_lm_schedule)k;
        CHECK(fg_lm_schedule_parse(fg_lm_schedule_name(tc.schedule)) == tc.schedule);
        for (int e = 0; e < 5; e++) {
            double d = fg_lm_epoch_drop(&tc, e);
            if (fabs(d - want[k][e]) > 1e-6) {
                fprintf(stderr, "schedule %s, epoch %d: drop %g, expected %g\n", fg_lm_schedule_name(tc.schedule), e,
                        d, want[k][e]);
                fg_test_failures++;
            }
        }
    }
    CHECK(fg_lm_schedule_parse("sparse") == FG_LM_SCHED_COUNT && fg_lm_schedule_parse(NULL) == FG_LM_SCHED_COUNT);
    /* a dense warm-up: the schedule runs over the epochs between the first and the last dense ones */
    tc.epochs = 7;
    tc.dense_first = 2;
    static const double want_first[FG_LM_SCHED_COUNT][7] = {
        {0, 0, 0.8, 0.8, 0.8, 0.8, 0},
        {0, 0, 0.8, 0, 0.8, 0, 0},
        {0, 0, 0.8, 0.6, 0.4, 0.2, 0},
    };
    for (int k = 0; k < FG_LM_SCHED_COUNT; k++) {
        tc.schedule = (fg_lm_schedule)k;
        for (int e = 0; e < 7; e++) {
            double d = fg_lm_epoch_drop(&tc, e);
            if (fabs(d - want_first[k][e]) > 1e-6) {
                fprintf(stderr, "schedule %s after 2 dense epochs, epoch %d: drop %g, expected %g\n",
                        fg_lm_schedule_name(tc.schedule), e, d, want_first[k][e]);
                fg_test_failures++;
            }
        }
    }
    tc.dense_first = 7; /* all dense */
    for (int e = 0; e < 7; e++) CHECK(fg_lm_epoch_drop(&tc, e) == 0);
    tc.epochs = 5;
    tc.dense_first = 0;
    tc.sparse_drop = 0; /* dense training: every schedule is dense */
    for (int k = 0; k < FG_LM_SCHED_COUNT; k++) {
        tc.schedule = (fg_lm_schedule)k;
        for (int e = 0; e < 5; e++) CHECK(fg_lm_epoch_drop(&tc, e) == 0 && fg_lm_epoch_tau(&tc, e) == 0);
    }
    /* the threshold's tau follows the same schedules; the other variants have none */
    tc.sparse_tau = 8e-5f;
    for (int e = 0; e < 5; e++) CHECK(fg_lm_epoch_tau(&tc, e) == 0);
    tc.sparse_variant = FG_LSTM_BWD_THRESHOLD;
    tc.schedule = FG_LM_SCHED_DECAYING;
    for (int e = 0; e < 5; e++) {
        double tau = (double)8e-5f * want[FG_LM_SCHED_DECAYING][e] / 0.8;
        CHECK(fabs(fg_lm_epoch_tau(&tc, e) - tau) < 1e-12 && fg_lm_epoch_drop(&tc, e) == 0);
    }
}

typedef struct curve_rec {
    fg_lm_eval pt[32];
    int n;
} curve_rec;

static void record_eval(const fg_lm_eval *e, void *user) {
    curve_rec *r = user;
    if (r->n < 32) r->pt[r->n] = *e;
    r->n++;
}

/* The alternating and decaying schedules set each epoch's drop as fg_lm_epoch_drop says (the
 * FLOPs issued follow it); validations every few chunks change no training number. */
static void test_schedules_train(void) {
    fg_corpus c;
    load_cycles(&c, 400, 30);
    fg_lm_cfg cfg = {c.vocab_size, 16, 32, 1, 8, 4, 0.0f, 4};
    fg_lm_train_cfg tc = fg_lm_train_defaults();
    tc.epochs = 3;
    tc.sparse_drop = 0.5f;
    tc.dense_epochs = 1;
    fg_lm_epoch ha[3], hd[3], he[3];
    tc.schedule = FG_LM_SCHED_ALTERNATING; /* drops 0.5, 0, 0 */
    train(&cfg, &tc, &c, ha);
    CHECK(ha[0].sparse && ha[0].drop == 0.5 && fabs(ha[0].lstm_backward_flops_kept - 0.5) < 1e-9);
    CHECK(!ha[1].sparse && ha[1].drop == 0 && ha[1].lstm_backward_flops_kept == 1.0);
    CHECK(!ha[2].sparse && ha[2].lstm_backward_flops_kept == 1.0);
    tc.schedule = FG_LM_SCHED_DECAYING; /* drops 0.5, 0.25, 0: 8 blocks of 4 units -> 4 then 6 kept */
    train(&cfg, &tc, &c, hd);
    CHECK(hd[0].sparse && fabs(hd[0].lstm_backward_flops_kept - 0.5) < 1e-9);
    CHECK(hd[1].sparse && hd[1].drop == 0.25 && fabs(hd[1].lstm_backward_flops_kept - 0.75) < 1e-9);
    CHECK(!hd[2].sparse && hd[2].lstm_backward_flops_kept == 1.0);
    CHECK(ha[0].train_ppl == hd[0].train_ppl); /* the same first epoch */
    /* validations every third of an epoch: the same training, and the curve ends each epoch at its valid ppl */
    int64_t chunks = fg_lm_chunks(c.n[0], cfg.steps, cfg.batch), every = chunks / 3 + 1;
    curve_rec rec = {.n = 0};
    tc.eval_every = every;
    tc.on_eval = record_eval;
    tc.user = &rec;
    train(&cfg, &tc, &c, he);
    for (int e = 0; e < 3; e++) CHECK(he[e].train_ppl == hd[e].train_ppl && he[e].valid_ppl == hd[e].valid_ppl);
    int per_epoch = (int)((chunks - 1) / every) + 1; /* at chunks every, 2 every, ... below chunks, then the end */
    if (rec.n != 3 * per_epoch || rec.n > 32) {
        fprintf(stderr, "%d validation points, expected %d (%lld chunks per epoch, every %lld)\n", rec.n,
                3 * per_epoch, (long long)chunks, (long long)every);
        fg_test_failures++;
    }
    for (int i = 1; i < rec.n && i < 32; i++)
        CHECK(rec.pt[i].train_seconds >= rec.pt[i - 1].train_seconds && rec.pt[i].epochs_done > rec.pt[i - 1].epochs_done);
    for (int e = 0; e < 3 && rec.n == 3 * per_epoch; e++) {
        const fg_lm_eval *end = &rec.pt[(e + 1) * per_epoch - 1];
        CHECK(end->epochs_done == e + 1.0 && end->valid_ppl == he[e].valid_ppl);
    }
    fg_corpus_free(&c);
}

/* What an epoch reads, seen through its training perplexity with the weights held still (a rate
 * of 1e-30 moves no weight by a float's step, so each epoch's loss is that of the initial model
 * on the chunks it read):
 *  - the state is carried from chunk to chunk (truncated BPTT): epoch 1's training perplexity is
 *    fg_lm_perplexity's over the same chunks, which carries it, and not that of a model whose
 *    state restarts at zero in every chunk (measured here, to show the test tells them apart);
 *  - short epochs read successive windows of the split: with max_batches half the chunks, epoch
 *    2 reads other text than epoch 1 and epoch 3 the same as epoch 1 (the windows wrap). */
static void test_state_and_windows(void) {
    fg_corpus c;
    load_cycles(&c, 400, 30);
    fg_lm_cfg cfg = {c.vocab_size, 16, 32, 2, 8, 4, 0.0f, 0};
    const int64_t chunks = fg_lm_chunks(c.n[0], cfg.steps, cfg.batch);
    CHECK(chunks % 2 == 0 && chunks >= 4);
    fg_lm_train_cfg tc = fg_lm_train_defaults();
    tc.epochs = 3;
    tc.lr = 1e-30f;
    tc.max_batches = chunks / 2;
    tc.max_eval_batches = 1;
    lm_run r;
    CHECK_OK(lm_open(&r, &cfg));
    fg_lm_epoch h[3];
    int done = 0;
    CHECK_OK(fg_lm_train(r.g, &r.io, &cfg, &tc, &c, h, &done));
    CHECK(done == 3);
    double carried = 0, each = 0;
    CHECK_OK(fg_lm_perplexity(r.g, &r.io, &cfg, c.ids[0], c.n[0], tc.max_batches, &carried));
    /* the same chunks one at a time, each from zero state: a split of one chunk per call */
    const int64_t L = c.n[0] / cfg.batch, span = cfg.steps + 1;
    int32_t *one = malloc((size_t)(span * cfg.batch) * sizeof *one);
    double nll = 0;
    for (int64_t k = 0; k < tc.max_batches; k++) {
        for (int64_t b = 0; b < cfg.batch; b++)
            memcpy(one + b * span, c.ids[0] + b * L + k * cfg.steps, (size_t)span * sizeof *one);
        double p = 0;
        CHECK_OK(fg_lm_perplexity(r.g, &r.io, &cfg, one, span * cfg.batch, 1, &p));
        nll += log(p);
    }
    each = exp(nll / (double)tc.max_batches);
    free(one);
    printf("epoch 1 training perplexity %.9f; carried state %.9f, state from zero in every chunk %.9f; epochs 2 "
           "and 3 %.9f, %.9f\n", h[0].train_ppl, carried, each, h[1].train_ppl, h[2].train_ppl);
    CHECK(fabs(h[0].train_ppl - carried) <= 1e-9 * carried);
    CHECK(fabs(carried - each) > 1e-6 * carried); /* the two readings differ, so the line above tells */
    CHECK(fabs(h[1].train_ppl - h[0].train_ppl) > 1e-6 * h[0].train_ppl);
    CHECK(fabs(h[2].train_ppl - h[0].train_ppl) <= 1e-9 * h[0].train_ppl);
    lm_close(&r);
    fg_corpus_free(&c);
}

/* Evaluation runs without dropout, and leaves the graph training: on a model with dropout 0.5,
 * fg_lm_perplexity gives the same value under two dropout seeds, and fg_lm_generate (temperature
 * 1, one seed) the words of the same weights in a model built without dropout; afterwards the
 * graph is in training mode (where fg_lm_train needs it). */
static void test_eval_mode(void) {
    fg_corpus c;
    load_cycles(&c, 40, 8);
    fg_lm_cfg cfg = {c.vocab_size, 8, 16, 2, 4, 2, 0.5f, 0};
    lm_run r;
    CHECK_OK(lm_open(&r, &cfg));
    fg_rng rng;
    fg_rng_seed(&rng, 9);
    fg_graph_init_params(r.g, &rng);
    double p[2];
    for (int k = 0; k < 2; k++) {
        fg_graph_set_seed(r.g, 1000 + (uint64_t)k);
        CHECK_OK(fg_lm_perplexity(r.g, &r.io, &cfg, c.ids[1], c.n[1], 0, &p[k]));
        CHECK(fg_graph_training(r.g) == 1);
    }
    CHECK(p[0] == p[1]);
    lm_close(&r);
    /* generation: dropout 0.5 against none, same weights */
    fg_lm_cfg one = cfg, one0 = cfg;
    one.steps = one.batch = one0.steps = one0.batch = 1;
    one0.dropout = 0.0f;
    lm_run a, b;
    CHECK_OK(lm_open(&a, &one));
    CHECK_OK(lm_open(&b, &one0));
    fg_rng_seed(&rng, 9);
    fg_graph_init_params(a.g, &rng);
    fg_rng_seed(&rng, 9);
    fg_graph_init_params(b.g, &rng);
    fg_graph_set_seed(a.g, 77);
    fg_graph_set_training(a.g, 1); /* as fg_lm_train leaves it: generate must turn dropout off itself */
    int32_t wa[32], wb[32];
    const int32_t prime[2] = {1, 2};
    CHECK_OK(fg_lm_generate(a.g, &a.io, &one, prime, 2, 32, 1.0, 3, wa));
    CHECK_OK(fg_lm_generate(b.g, &b.io, &one0, prime, 2, 32, 1.0, 3, wb));
    CHECK(memcmp(wa, wb, sizeof wa) == 0 && fg_graph_training(a.g) == 1);
    lm_close(&a);
    lm_close(&b);
    fg_corpus_free(&c);
}

static int same_epoch(const fg_lm_epoch *a, const fg_lm_epoch *b) {
    return a->epoch == b->epoch && a->sparse == b->sparse && a->drop == b->drop && a->lr == b->lr &&
           a->train_ppl == b->train_ppl && a->valid_ppl == b->valid_ppl &&
           a->lstm_backward_flops_kept == b->lstm_backward_flops_kept && a->tau == b->tau &&
           a->gate_sparsity == b->gate_sparsity;
}

static fg_status try_train(const fg_lm_cfg *cfg, const fg_lm_train_cfg *tc, const fg_corpus *c, fg_lm_epoch *h,
                           int *done) {
    lm_run r;
    CHECK_OK(lm_open(&r, cfg));
    fg_status s = fg_lm_train(r.g, &r.io, cfg, tc, c, h, done);
    lm_close(&r);
    return s;
}

typedef struct edge_rec {
    int64_t calls, batches;   /* on_batch calls, the last one's batches */
    int epochs_reported;      /* on_epoch calls */
    volatile sig_atomic_t *stop; /* raised after the first batch when set */
    double sleep_seconds;     /* each mid-epoch validation sleeps this long */
} edge_rec;

static void edge_batch(const fg_lm_progress *p, void *user) {
    edge_rec *r = user;
    r->calls++;
    r->batches = p->batches;
    if (r->stop) *r->stop = 1;
}
static void edge_epoch(const fg_lm_epoch *e, void *user) {
    (void)e;
    ((edge_rec *)user)->epochs_reported++;
}
static void edge_eval(const fg_lm_eval *e, void *user) {
    const edge_rec *r = user;
    if (e->batch > 0 && e->epochs_done < e->epoch + 1.0 && r->sleep_seconds > 0)
        usleep((useconds_t)(r->sleep_seconds * 1e6));
}

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* The trainer's edges: an epoch of max_batches = chunks - 1 is that many batches; "{epoch}" is
 * replaced wherever it occurs in the checkpoint name; a run stopped inside its first epoch
 * reports and checkpoints nothing; time spent in mid-epoch validations is not the epoch's; a
 * resumed threshold epoch is reported as it was (sparse, with its tau). */
static void test_train_edges(void) {
    char dir[] = "/tmp/fg_test_lm.XXXXXX", path[96], pattern[96];
    FG_ASSERT(mkdtemp(dir));
    fg_corpus c;
    load_cycles(&c, 60, 8);
    fg_lm_cfg cfg = {c.vocab_size, 8, 16, 1, 4, 2, 0.0f, 4};
    const int64_t chunks = fg_lm_chunks(c.n[0], cfg.steps, cfg.batch);
    CHECK(chunks > 8);
    fg_lm_train_cfg tc = fg_lm_train_defaults();
    tc.epochs = 1;
    tc.max_batches = chunks - 1;
    tc.max_eval_batches = 1;
    edge_rec rec = {0};
    tc.on_batch = edge_batch, tc.on_epoch = edge_epoch, tc.on_eval = edge_eval, tc.user = &rec;
    snprintf(pattern, sizeof pattern, "%s/ck{epoch}_{epoch}.st", dir);
    tc.checkpoint = pattern;
    fg_lm_epoch h[2];
    train(&cfg, &tc, &c, h);
    CHECK(rec.calls == chunks - 1 && rec.batches == chunks - 1 && rec.epochs_reported == 1);
    snprintf(path, sizeof path, "%s/ck1_1.st", dir);
    CHECK(file_exists(path));
    /* stopped after the first batch */
    volatile sig_atomic_t flag = 0;
    memset(&rec, 0, sizeof rec);
    rec.stop = &flag;
    tc.stop = &flag;
    snprintf(pattern, sizeof pattern, "%s/stop{epoch}.st", dir);
    int done = -1;
    CHECK_OK(try_train(&cfg, &tc, &c, h, &done));
    snprintf(path, sizeof path, "%s/stop1.st", dir);
    CHECK(done == 0 && rec.calls == 1 && rec.epochs_reported == 0 && !file_exists(path));
    tc.stop = NULL;
    /* a validation every 3 chunks that sleeps 0.5 s: the epoch's seconds leave it out */
    memset(&rec, 0, sizeof rec);
    rec.sleep_seconds = 0.5;
    tc.max_batches = 6;
    tc.eval_every = 3;
    tc.checkpoint = NULL;
    train(&cfg, &tc, &c, h);
    CHECK(h[0].seconds < 0.5);
    /* a threshold run resumed after its sparse epoch: that epoch restored as it was */
    memset(&rec, 0, sizeof rec);
    tc.eval_every = 0;
    tc.epochs = 2;
    tc.dense_epochs = 1;
    tc.sparse_variant = FG_LSTM_BWD_THRESHOLD;
    tc.sparse_tau = 0.01f;
    snprintf(pattern, sizeof pattern, "%s/th{epoch}.st", dir);
    tc.checkpoint = pattern;
    fg_lm_epoch ha[2], hr[2];
    train(&cfg, &tc, &c, ha);
    CHECK(ha[0].sparse && ha[0].tau > 0 && !ha[1].sparse);
    snprintf(path, sizeof path, "%s/th1.st", dir);
    tc.checkpoint = NULL;
    tc.resume = path;
    CHECK_OK(try_train(&cfg, &tc, &c, hr, &done));
    CHECK(done == 2 && hr[0].restored && same_epoch(&ha[0], &hr[0]) && same_epoch(&ha[1], &hr[1]));
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    fg_corpus_free(&c);
}

static void test_checkpoints(void) {
    char dir[] = "/tmp/fg_test_lm.XXXXXX", pattern[64], p1[64], p2[64], p3[64];
    FG_ASSERT(mkdtemp(dir));
    snprintf(pattern, sizeof pattern, "%s/lm-{epoch}.safetensors", dir);
    snprintf(p1, sizeof p1, "%s/lm-1.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/lm-2.safetensors", dir);
    snprintf(p3, sizeof p3, "%s/lm-3.safetensors", dir);
    fg_corpus c;
    load_cycles(&c, 400, 30);
    fg_lm_cfg cfg = {c.vocab_size, 16, 32, 2, 8, 4, 0.5f, 4}; /* dropout on: its seeds must go on too */
    fg_lm_train_cfg tc = fg_lm_train_defaults();
    tc.epochs = 3;
    tc.decay_after = 1; /* a rate that changes every epoch: the resumed run must replay it */
    tc.lr_decay = 0.5f;
    tc.sparse_drop = 0.5f;
    tc.dense_epochs = 1;
    fg_lm_epoch ha[3], hb[3], hc[3];
    train(&cfg, &tc, &c, ha);
    /* writing checkpoints changes nothing; one file per epoch */
    tc.checkpoint = pattern;
    train(&cfg, &tc, &c, hb);
    for (int e = 0; e < 3; e++) CHECK(same_epoch(&ha[e], &hb[e]) && !hb[e].restored);
    CHECK(ha[0].lr == (double)tc.lr && ha[1].lr == 0.5 * tc.lr && ha[2].lr == 0.25 * tc.lr);
    /* decay from epoch 0: epoch 0 at the decayed rate (it ran at lr, as decay_after 1 did) */
    {
        fg_lm_train_cfg t0 = tc;
        t0.decay_after = 0;
        t0.checkpoint = NULL;
        t0.epochs = 1;
        fg_lm_epoch h0[1];
        train(&cfg, &t0, &c, h0);
        CHECK(h0[0].lr == 0.5 * tc.lr);
    }
    FILE *f3 = fopen(p3, "rb");
    CHECK(f3 != NULL);
    if (f3) fclose(f3);
    /* resumed after epoch 1: epoch 1 as it was, epochs 2 and 3 bit for bit those of the whole run */
    tc.checkpoint = NULL;
    tc.resume = p1;
    int done = 0;
    CHECK_OK(try_train(&cfg, &tc, &c, hc, &done));
    CHECK(done == 3);
    CHECK(hc[0].restored && !hc[1].restored && !hc[2].restored);
    CHECK(hc[0].seconds == hb[0].seconds && hc[0].cpu_seconds == hb[0].cpu_seconds); /* the checkpointed run's time */
    for (int e = 0; e < 3; e++) {
        printf("resumed after epoch 1, epoch %d: lr %.3f, valid ppl %.6f (the whole run: %.6f)\n", e + 1, hc[e].lr,
               hc[e].valid_ppl, ha[e].valid_ppl);
        CHECK(same_epoch(&ha[e], &hc[e]));
    }
    /* resumed after epoch 2: two epochs of the rate schedule to replay (after epoch 1 there is
     * one, and the rate of epoch 2 is the same with or without it) */
    tc.resume = p2;
    CHECK_OK(try_train(&cfg, &tc, &c, hc, &done));
    CHECK(done == 3 && hc[0].restored && hc[1].restored && !hc[2].restored);
    CHECK(hc[2].lr == 0.25 * tc.lr && same_epoch(&ha[2], &hc[2]));
    tc.resume = p1;
    /* a branch: from epoch 1 on, dense only */
    fg_lm_train_cfg br = tc;
    br.sparse_drop = 0;
    CHECK_OK(try_train(&cfg, &br, &c, hc, &done));
    CHECK(done == 3 && same_epoch(&ha[0], &hc[0]) && hc[0].sparse);
    CHECK(!hc[1].sparse && hc[1].lstm_backward_flops_kept == 1.0 && hc[1].valid_ppl != ha[1].valid_ppl);
    /* refused: another seed, nothing left to train, not a checkpoint, a missing file */
    fg_lm_train_cfg bad = tc;
    bad.seed = 2;
    CHECK(try_train(&cfg, &bad, &c, hc, &done) == FG_ERR_INVALID && strstr(fg_last_error(), "seed 1") &&
          strstr(fg_last_error(), "lm-1.safetensors"));
    bad = tc;
    bad.resume = p3;
    CHECK(try_train(&cfg, &bad, &c, hc, &done) == FG_ERR_INVALID && strstr(fg_last_error(), "none left to train"));
    bad.epochs = 2;
    bad.resume = p2;
    bad.dense_epochs = 0;
    CHECK(try_train(&cfg, &bad, &c, hc, &done) == FG_ERR_INVALID && strstr(fg_last_error(), "none left to train"));
    char other[80];
    snprintf(other, sizeof other, "%s/other.safetensors", dir);
    fg_st_writer *w;
    CHECK_OK(fg_st_writer_create(&w));
    CHECK_OK(fg_st_writer_meta(w, "kind", "weights"));
    CHECK_OK(fg_st_writer_save(w, other));
    fg_st_writer_free(w);
    bad = tc;
    bad.resume = other;
    CHECK(try_train(&cfg, &bad, &c, hc, &done) == FG_ERR_FORMAT && strstr(fg_last_error(), "lm-checkpoint"));
    snprintf(other, sizeof other, "%s/absent.safetensors", dir);
    CHECK(try_train(&cfg, &bad, &c, hc, &done) == FG_ERR_IO && strstr(fg_last_error(), "absent.safetensors"));
    /* a model of another size: the weights' shapes are refused */
    fg_lm_cfg wide = cfg;
    wide.hidden = 40;
    CHECK(try_train(&wide, &tc, &c, hc, &done) == FG_ERR_FORMAT);
    /* a checkpoint that cannot be written: the error names it */
    bad = fg_lm_train_defaults();
    bad.epochs = 1;
    bad.checkpoint = "/nonexistent-dir/lm.safetensors";
    CHECK(try_train(&cfg, &bad, &c, hc, &done) == FG_ERR_IO && strstr(fg_last_error(), "/nonexistent-dir/lm"));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    fg_corpus_free(&c);
}

static void test_errors(void) {
    fg_corpus c;
    load_cycles(&c, 20, 4);
    fg_lm_cfg bad = {c.vocab_size, 0, 8, 0, 4, 2, 0.0f, 0};
    lm_run r;
    fg_status s = lm_open(&r, &bad);
    CHECK(s == FG_ERR_INVALID && strstr(fg_last_error(), "layers 0"));
    lm_close(&r);
    bad.layers = 1;
    bad.sparse_block = 9;
    s = lm_open(&r, &bad);
    CHECK(s == FG_ERR_INVALID && strstr(fg_last_error(), "sparse block 9"));
    lm_close(&r);
    /* sparse training needs the block at build */
    fg_lm_cfg ok = {c.vocab_size, 0, 8, 1, 4, 2, 0.0f, 0};
    CHECK_OK(lm_open(&r, &ok));
    fg_lm_train_cfg tc = fg_lm_train_defaults();
    tc.epochs = 1;
    tc.sparse_drop = 0.5f;
    int done = -1;
    s = fg_lm_train(r.g, &r.io, &ok, &tc, &c, NULL, &done);
    CHECK(s == FG_ERR_INVALID && strstr(fg_last_error(), "sparse block") && done == 0);
    /* a drop with the threshold variant, a tau with another: each refused, naming both */
    tc.sparse_variant = FG_LSTM_BWD_THRESHOLD;
    s = fg_lm_train(r.g, &r.io, &ok, &tc, &c, NULL, &done);
    CHECK(s == FG_ERR_INVALID && strstr(fg_last_error(), "threshold with drop 0.5"));
    tc.sparse_drop = 0;
    tc.sparse_tau = 1e-3f;
    tc.sparse_variant = FG_LSTM_BWD_MEPROP;
    s = fg_lm_train(r.g, &r.io, &ok, &tc, &c, NULL, &done);
    CHECK(s == FG_ERR_INVALID && strstr(fg_last_error(), "meprop with drop 0 and tau 0.001"));
    tc.sparse_tau = -1;
    tc.sparse_variant = FG_LSTM_BWD_THRESHOLD;
    s = fg_lm_train(r.g, &r.io, &ok, &tc, &c, NULL, &done);
    CHECK(s == FG_ERR_INVALID && strstr(fg_last_error(), "tau -1"));
    /* the configuration passed with the model must be the one it was built with: a layer count
     * that differs sized the carried state wrongly (a heap overflow before) */
    fg_lm_cfg two = ok;
    two.layers = 2;
    tc = fg_lm_train_defaults();
    tc.epochs = 1;
    s = fg_lm_train(r.g, &r.io, &two, &tc, &c, NULL, &done);
    CHECK(s == FG_ERR_INVALID && strstr(fg_last_error(), "1 LSTM layers but the configuration says 2"));
    double ppl = 0;
    CHECK_STATUS(fg_lm_perplexity(r.g, &r.io, &two, c.ids[1], c.n[1], 0, &ppl), FG_ERR_INVALID);
    lm_close(&r);
    /* a validation split too short for one chunk is refused before any training */
    char *tr = cycle_text(20);
    const char *texts[3] = {tr, "", "w0 w1\n"};
    size_t lens[3] = {strlen(tr), 0, 6};
    fg_corpus shortv;
    CHECK_OK(fg_corpus_parse(texts, lens, "short-valid", &shortv));
    free(tr);
    fg_lm_cfg sv = {shortv.vocab_size, 0, 8, 1, 4, 2, 0.0f, 0};
    CHECK_OK(lm_open(&r, &sv));
    done = -1;
    s = fg_lm_train(r.g, &r.io, &sv, &tc, &shortv, NULL, &done);
    CHECK(s == FG_ERR_INVALID && strstr(fg_last_error(), "validation split") && done == 0);
    lm_close(&r);
    fg_corpus_free(&shortv);
    /* sizes that do not fit: refused naming the field, with the message */
    fg_lm_cfg huge = ok;
    huge.vocab = (int64_t)1 << 40;
    s = lm_open(&r, &huge);
    CHECK(s == FG_ERR_INVALID && strstr(fg_last_error(), "vocab"));
    lm_close(&r);
    huge = ok;
    huge.steps = huge.batch = (int64_t)1 << 32;
    s = lm_open(&r, &huge);
    CHECK(s == FG_ERR_INVALID && strstr(fg_last_error(), "tokens per chunk"));
    lm_close(&r);
    fg_corpus_free(&c);
}

/* Lines "a x b" or "c x d" in a fixed pseudo-random order: the word after x is the word before it's
 * partner, two words back. */
static char *pair_text(int lines, uint32_t seed) {
    char *s = malloc((size_t)lines * 7 + 1), *o = s;
    for (int l = 0; l < lines; l++) {
        seed = seed * 1664525u + 1013904223u;
        memcpy(o, (seed >> 16) & 1 ? "a x b\n" : "c x d\n", 6);
        o += 6;
    }
    *o = 0;
    return s;
}

static void test_generate(void) {
    char dir[] = "/tmp/fg_test_lm.XXXXXX", pattern[64], path[64];
    FG_ASSERT(mkdtemp(dir));
    snprintf(pattern, sizeof pattern, "%s/gen-{epoch}.safetensors", dir);
    snprintf(path, sizeof path, "%s/gen-6.safetensors", dir);
    char *tr = pair_text(1500, 7), *ev = pair_text(50, 11);
    const char *texts[3] = {tr, ev, ev};
    size_t lens[3] = {strlen(tr), strlen(ev), strlen(ev)};
    fg_corpus c;
    CHECK_OK(fg_corpus_parse(texts, lens, "pairs", &c));
    free(tr);
    free(ev);
    fg_lm_cfg cfg = {c.vocab_size, 8, 24, 2, 8, 4, 0.0f, 0};
    fg_lm_train_cfg tc = fg_lm_train_defaults();
    tc.checkpoint = pattern;
    fg_lm_epoch h[6];
    train(&cfg, &tc, &c, h);
    printf("pairs: valid ppl %.3f after 6 epochs\n", h[5].valid_ppl);

    /* the sizes from the tensors; the generator's graph: one step, one stream */
    fg_st_file *f;
    CHECK_OK(fg_st_load(path, &f));
    fg_lm_cfg one;
    memset(&one, 0, sizeof one);
    CHECK_OK(fg_lm_cfg_from_weights(f, path, &one));
    fg_st_free(f);
    CHECK(one.vocab == cfg.vocab && one.embed == 8 && one.hidden == 24 && one.layers == 2);
    one.steps = one.batch = 1;
    lm_run r;
    CHECK_OK(lm_open(&r, &one));
    CHECK_OK(fg_graph_load(r.g, NULL, path));
    const int32_t a = fg_corpus_find(&c, "a"), b = fg_corpus_find(&c, "b"), cc = fg_corpus_find(&c, "c"),
                  d = fg_corpus_find(&c, "d"), x = fg_corpus_find(&c, "x");
    FG_ASSERT(a > 0 && b > 0 && cc > 0 && d > 0 && x > 0);
    int32_t ax[2] = {a, x}, cx[2] = {cc, x}, out[4];
    CHECK_OK(fg_lm_generate(r.g, &r.io, &one, ax, 2, 2, 0.0, 1, out));
    CHECK(out[0] == b && out[1] == 0); /* then the line ends */
    CHECK_OK(fg_lm_generate(r.g, &r.io, &one, cx, 2, 2, 0.0, 1, out));
    CHECK(out[0] == d && out[1] == 0);
    /* a draw at temperature 1 follows the model too: after "a x" b is near certain */
    CHECK_OK(fg_lm_generate(r.g, &r.io, &one, ax, 2, 1, 1.0, 5, out));
    CHECK(out[0] == b);

    /* the decoder's weights zeroed: logits = its bias, whatever the state; draws from softmax(bias / T) */
    const fg_tinfo *wi = fg_graph_tinfo(r.g, fg_graph_find(r.g, "decoder.weight"));
    float *w = fg_graph_tensor(r.g, fg_graph_find(r.g, "decoder.weight"))->data;
    float *bias = fg_graph_tensor(r.g, fg_graph_find(r.g, "decoder.bias"))->data;
    memset(w, 0, (size_t)(wi->t.shape[0] * wi->t.shape[1]) * sizeof *w);
    const int64_t V = one.vocab, n = 20000;
    for (int64_t i = 0; i < V; i++) bias[i] = (float)(0.5 * (double)(i % 3)); /* three levels of logits */
    int32_t *draws = malloc((size_t)n * sizeof *draws);
    int64_t *count = calloc((size_t)V, sizeof *count);
    const double temps[2] = {1.0, 2.0};
    for (int k = 0; k < 2; k++) {
        CHECK_OK(fg_lm_generate(r.g, &r.io, &one, NULL, 0, n, temps[k], 42 + (uint64_t)k, draws));
        memset(count, 0, (size_t)V * sizeof *count);
        for (int64_t i = 0; i < n; i++) count[draws[i]]++;
        double z = 0;
        for (int64_t i = 0; i < V; i++) z += exp(0.5 * (double)(i % 3) / temps[k]);
        int ok = 1;
        for (int64_t i = 0; i < V; i++) {
            double p = exp(0.5 * (double)(i % 3) / temps[k]) / z, sd = sqrt((double)n * p * (1 - p));
            if (fabs((double)count[i] - (double)n * p) > 5 * sd) ok = 0;
            printf("  T %.0f word %lld: %lld draws, expected %.0f +- %.0f\n", temps[k], (long long)i,
                   (long long)count[i], (double)n * p, sd);
        }
        CHECK(ok);
    }
    /* the same seed draws the same words */
    int32_t again[64];
    CHECK_OK(fg_lm_generate(r.g, &r.io, &one, NULL, 0, 64, 1.0, 42, again));
    CHECK_OK(fg_lm_generate(r.g, &r.io, &one, NULL, 0, n, 1.0, 42, draws));
    CHECK(memcmp(again, draws, sizeof again) == 0);
    /* every logit equal (bias zeroed too): temperature 0 takes the lowest id, <eos>, every time */
    memset(bias, 0, (size_t)V * sizeof *bias);
    CHECK_OK(fg_lm_generate(r.g, &r.io, &one, ax, 2, 64, 0.0, 1, again));
    int64_t not_first = 0;
    for (int i = 0; i < 64; i++) not_first += again[i] != 0;
    CHECK(not_first == 0);
    free(draws);
    free(count);

    /* errors, by name */
    CHECK(fg_lm_generate(r.g, &r.io, &one, NULL, 0, 4, -1.0, 1, out) == FG_ERR_INVALID &&
          strstr(fg_last_error(), "temperature -1"));
    int32_t bad = (int32_t)V;
    CHECK(fg_lm_generate(r.g, &r.io, &one, &bad, 1, 4, 1.0, 1, out) == FG_ERR_INVALID &&
          strstr(fg_last_error(), "prime word 0"));
    lm_close(&r);
    CHECK(fg_lm_generate(NULL, NULL, &cfg, NULL, 0, 4, 1.0, 1, out) == FG_ERR_INVALID &&
          strstr(fg_last_error(), "8 steps x 4 streams"));
    fg_corpus_free(&c);
    /* files that are not an LSTM LM's weights: the tensor at fault named */
    static const float zeros[128]; /* the largest tensor below has 80 */
    const int64_t emb[2] = {10, 4}, hh_bad[2] = {12, 4}, hh[2] = {16, 4}, ih_bad[2] = {16, 5};
    const struct {
        const char *name;
        const int64_t *shape;
    } files[3][2] = {{{"embed.weight", emb}, {NULL, NULL}},
                     {{"embed.weight", emb}, {"lstm0.weight_hh_l0", hh_bad}},
                     {{"embed.weight", emb}, {"lstm0.weight_hh_l0", hh}}};
    const char *want[3] = {"no tensor 'lstm0.weight_hh_l0'", "'lstm0.weight_hh_l0' is 12 x 4",
                           "'lstm0.weight_ih_l0' is 16 x 5"};
    for (int k = 0; k < 3; k++) {
        fg_st_writer *wr;
        CHECK_OK(fg_st_writer_create(&wr));
        for (int j = 0; j < 2 && files[k][j].name; j++)
            CHECK_OK(fg_st_writer_add(wr, files[k][j].name, FG_ST_F32, 2, files[k][j].shape, zeros));
        if (k == 2) CHECK_OK(fg_st_writer_add(wr, "lstm0.weight_ih_l0", FG_ST_F32, 2, ih_bad, zeros));
        CHECK_OK(fg_st_writer_save(wr, path));
        fg_st_writer_free(wr);
        CHECK_OK(fg_st_load(path, &f));
        fg_lm_cfg got;
        fg_status s = fg_lm_cfg_from_weights(f, path, &got);
        CHECK(s == FG_ERR_FORMAT && strstr(fg_last_error(), want[k]));
        if (s != FG_ERR_FORMAT) printf("file %d: %s\n", k, fg_last_error());
        fg_st_free(f);
    }
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void) {
    fg_threads_set(2);
    test_chunks();
    test_learning_and_sparse();
    test_schedules();
    test_schedules_train();
    test_checkpoints();
    test_state_and_windows();
    test_eval_mode();
    test_train_edges();
    test_generate();
    test_errors();
    return fg_test_finish("test_lm");
}
