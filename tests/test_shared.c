/* Shared weights (src/graph/share.c): two predictor graphs read a trainer graph's weights while
 * the trainer updates them on another thread, as GA3C's predictors and trainer do.
 *
 * Checked: sharing binds storage (no copy; the sharer's own parameter bytes go back to its pool);
 * batch norm's running statistics bound as well (a sharer's eval output equals the owner's); the
 * refusals (a graph with a loss, a shape or name mismatch, loading into a sharer); and the
 * point of the lock: every output a predictor produced while training ran equals, bit for bit,
 * the output of a separate graph given the exact weights of the version that forward reported,
 * i.e. no forward ever saw a half-written optimizer step; and likewise every checkpoint another
 * thread wrote meanwhile (fg_graph_save) holds one version's weights and that version's step count. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frugal/graph.h"
#include "frugal/io.h"
#include "frugal/vmem.h"
#include "testutil.h"

/* big enough that an optimizer step (a pass over 100k weights) overlaps many forwards */
enum { IN = 192, HID = 512, CLS = 5, TB = 16, PB = 4, STEPS = 40, NPRED = 2, MAXS = 256, NSAVE = 6 };

typedef struct net {
    fg_graph *g;
    fg_pool *pool;
    fg_id x, y, logits;
} net;

/* n->logits made: a cross-entropy loss on labels when train, then the build (policy NULL: free
 * when dead). */
static void finish(net *n, int64_t batch, int train, const fg_mem_policy *policy) {
    int64_t ys[1] = {batch};
    fg_id loss = FG_NONE;
    if (train) {
        n->y = fg_nn_input(n->g, "y", FG_I32, 1, ys);
        loss = fg_nn_xent(n->g, "loss", n->logits, n->y);
    }
    fg_graph_mark_output(n->g, n->logits);
    fg_mem_policy p;
    if (policy)
        p = *policy;
    else
        CHECK_OK(fg_policy_free_when_dead(&p));
    CHECK_OK(fg_graph_build(n->g, loss, n->pool, &p));
}

static void build(net *n, const char *name, int64_t batch, int64_t hidden, int train) {
    CHECK_OK(fg_pool_create(&n->pool, 0));
    CHECK_OK(fg_graph_create(&n->g, name));
    int64_t xs[2] = {batch, IN};
    n->x = fg_nn_input(n->g, "x", FG_F32, 2, xs);
    fg_id h = fg_nn_tanh(n->g, "act", fg_layer_linear(n->g, "fc1", n->x, hidden, 1));
    n->logits = fg_layer_linear(n->g, "fc2", h, CLS, 1);
    finish(n, batch, train, NULL);
    fg_graph_set_training(n->g, train);
}

static void net_free(net *n) {
    fg_graph_free(n->g);
    fg_pool_destroy(n->pool);
}

/* ---------------------------------------------------------------- the concurrent run */

typedef struct snapshot {
    float *w; /* every parameter of the owner, concatenated in parameter order */
} snapshot;

typedef struct shared_run {
    net owner;
    fg_optim *opt;
    snapshot snap[STEPS + 2]; /* by weights version */
    atomic_int done, started;
    float xt[TB * IN];
    int32_t yt[TB];
} shared_run;

typedef struct pred {
    shared_run *r;
    net n;
    float x[PB * IN];
    int ns;
    uint64_t ver[MAXS];
    float out[MAXS][PB * CLS];
    fg_status st;
} pred;

static size_t param_floats(fg_graph *g) {
    size_t n = 0;
    for (int i = 0; i < fg_graph_n_params(g); i++) n += fg_graph_tinfo(g, fg_graph_param(g, i))->bytes / sizeof(float);
    return n;
}

static void take_snapshot(shared_run *r) {
    fg_graph *g = r->owner.g;
    uint64_t v = fg_graph_weights_version(g);
    FG_ASSERT(v < STEPS + 2);
    float *w = malloc(param_floats(g) * sizeof(float));
    FG_ASSERT(w);
    size_t o = 0;
    for (int i = 0; i < fg_graph_n_params(g); i++) {
        const fg_tinfo *t = fg_graph_tinfo(g, fg_graph_param(g, i));
        memcpy(w + o, t->t.data, t->bytes);
        o += t->bytes / sizeof(float);
    }
    r->snap[v].w = w;
}

static void *trainer(void *arg) {
    shared_run *r = arg;
    fg_threads_set(1);
    while (atomic_load(&r->started) < NPRED) sched_yield(); /* every predictor ran once */
    for (int s = 0; s < STEPS; s++) {
        fg_graph *g = r->owner.g;
        fg_status st = fg_graph_set_input(g, r->owner.x, r->xt, sizeof r->xt);
        if (st == FG_OK) st = fg_graph_set_input(g, r->owner.y, r->yt, sizeof r->yt);
        fg_graph_zero_grad(g);
        if (st == FG_OK) st = fg_graph_forward(g);
        if (st == FG_OK) st = fg_graph_backward(g);
        if (st == FG_OK) st = fg_optim_step(r->opt);
        if (st != FG_OK) {
            fprintf(stderr, "trainer step %d: %s\n", s, fg_last_error());
            break;
        }
        take_snapshot(r);
    }
    atomic_store(&r->done, 1);
    return NULL;
}

static fg_status predict_once(pred *p) {
    FG_TRY(fg_graph_set_input(p->n.g, p->n.x, p->x, sizeof p->x));
    FG_TRY(fg_graph_forward(p->n.g));
    /* keep up to 4 outputs per version (at most 4 * 42 < MAXS): samples across the whole run */
    uint64_t v = fg_graph_weights_version(p->n.g);
    int same = 0;
    for (int s = p->ns - 1; s >= 0 && p->ver[s] == v; s--) same++;
    if (same < 4 && p->ns < MAXS) {
        p->ver[p->ns] = v;
        FG_TRY(fg_graph_read(p->n.g, p->n.logits, p->out[p->ns], sizeof p->out[0]));
        p->ns++;
    }
    return FG_OK;
}

static void *predictor(void *arg) {
    pred *p = arg;
    fg_threads_set(1);
    p->st = predict_once(p);
    atomic_fetch_add(&p->r->started, 1);
    while (p->st == FG_OK && !atomic_load(&p->r->done)) p->st = predict_once(p);
    if (p->st == FG_OK) p->st = predict_once(p); /* and once after the last step */
    return NULL;
}

/* Checkpoints of the owner written while the trainer steps, up to NSAVE files. */
typedef struct saver {
    shared_run *r;
    char path[NSAVE][64];
    int n;
    fg_status st;
} saver;

static void *saver_main(void *arg) {
    saver *sv = arg;
    fg_threads_set(1);
    while (atomic_load(&sv->r->started) < NPRED) sched_yield();
    while (sv->st == FG_OK && sv->n < NSAVE && !atomic_load(&sv->r->done)) {
        snprintf(sv->path[sv->n], sizeof sv->path[0], "/tmp/fg_test_shared_%d_%d.safetensors", (int)getpid(), sv->n);
        sv->st = fg_graph_save(sv->r->owner.g, sv->r->opt, sv->path[sv->n], 0, NULL, NULL);
        if (sv->st == FG_OK) sv->n++;
    }
    return NULL;
}

/* Each file: its optim.steps k, and its parameters bit for bit the snapshot of version k + 1
 * (init_params wrote version 1). */
static void check_saves(saver *sv) {
    fg_graph *g = sv->r->owner.g;
    if (sv->st != FG_OK) fprintf(stderr, "saver: %s\n", fg_last_error());
    CHECK(sv->st == FG_OK && sv->n >= 1);
    int torn = 0;
    for (int i = 0; i < sv->n; i++) {
        fg_st_file *f = NULL;
        int64_t k = -1;
        CHECK_OK(fg_st_load(sv->path[i], &f));
        if (f) CHECK_OK(fg_st_meta_i64(f, "optim.steps", 0, STEPS, &k));
        if (k >= 0 && sv->r->snap[k + 1].w) {
            size_t o = 0;
            for (int p = 0; p < fg_graph_n_params(g); p++) {
                const fg_tinfo *t = fg_graph_tinfo(g, fg_graph_param(g, p));
                const fg_st_entry *e = fg_st_find(f, t->t.name);
                CHECK(e && e->nbytes == t->bytes);
                if (e && e->nbytes == t->bytes && memcmp(e->data, sv->r->snap[k + 1].w + o, t->bytes) != 0) torn++;
                o += t->bytes / sizeof(float);
            }
        } else {
            CHECK(0 && "a checkpoint's step count has no snapshot");
        }
        fg_st_free(f);
        unlink(sv->path[i]);
    }
    printf("shared weights: %d checkpoints written during training, %d parameters differ from their step's\n", sv->n,
           torn);
    CHECK(torn == 0);
}

static void test_concurrent(void) {
    shared_run *r = calloc(1, sizeof *r);
    pred *pr = calloc(NPRED, sizeof *pr);
    FG_ASSERT(r && pr);
    fg_rng rng;
    fg_rng_seed(&rng, 7);
    build(&r->owner, "trainer", TB, HID, 1);
    fg_graph_init_params(r->owner.g, &rng);
    fg_optim_cfg oc = fg_optim_defaults(FG_OPTIM_SGD, 0.2f);
    oc.momentum = 0.9f;
    CHECK_OK(fg_optim_create(&r->opt, r->owner.g, &oc));
    for (int i = 0; i < TB * IN; i++) r->xt[i] = 2.0f * fg_rng_uniform(&rng) - 1.0f;
    for (int i = 0; i < TB; i++) r->yt[i] = (int32_t)fg_rng_below(&rng, CLS);
    take_snapshot(r); /* the version init_params wrote */

    for (int k = 0; k < NPRED; k++) {
        char name[32];
        snprintf(name, sizeof name, "predictor%d", k);
        build(&pr[k].n, name, PB, HID, 0);
        pr[k].r = r;
        for (int i = 0; i < PB * IN; i++) pr[k].x[i] = 2.0f * fg_rng_uniform(&rng) - 1.0f;
        size_t before = fg_pool_get_stats(pr[k].n.pool).in_use;
        CHECK_OK(fg_graph_share_weights(pr[k].n.g, r->owner.g));
        /* bound, not copied: the same bytes, and the sharer's own copies went back to its pool */
        fg_id w = fg_graph_find(pr[k].n.g, "fc1.weight");
        CHECK(fg_graph_tinfo(pr[k].n.g, w)->t.data == fg_graph_tinfo(r->owner.g, fg_graph_find(r->owner.g, "fc1.weight"))->t.data);
        CHECK(fg_pool_get_stats(pr[k].n.pool).in_use + param_floats(r->owner.g) * sizeof(float) <= before);
    }

    pthread_t tt, tp[NPRED], ts;
    saver sv = {.r = r, .st = FG_OK};
    for (int k = 0; k < NPRED; k++) pthread_create(&tp[k], NULL, predictor, &pr[k]);
    pthread_create(&ts, NULL, saver_main, &sv);
    pthread_create(&tt, NULL, trainer, r);
    pthread_join(tt, NULL);
    pthread_join(ts, NULL);
    for (int k = 0; k < NPRED; k++) pthread_join(tp[k], NULL);
    CHECK(fg_graph_weights_version(r->owner.g) == STEPS + 1);
    check_saves(&sv);

    /* every output against a separate graph holding that version's weights */
    net ref;
    build(&ref, "reference", PB, HID, 0);
    fg_threads_set(1);
    int checked = 0, bad = 0, first_v = STEPS + 2, last_v = -1;
    for (int k = 0; k < NPRED; k++) {
        CHECK(pr[k].st == FG_OK);
        for (int s = 0; s < pr[k].ns; s++) {
            uint64_t v = pr[k].ver[s];
            if (v >= STEPS + 2 || !r->snap[v].w) {
                fprintf(stderr, "predictor %d sample %d: version %llu has no snapshot\n", k, s, (unsigned long long)v);
                bad++;
                continue;
            }
            if ((int)v < first_v) first_v = (int)v;
            if ((int)v > last_v) last_v = (int)v;
            size_t o = 0;
            for (int i = 0; i < fg_graph_n_params(ref.g); i++) {
                fg_id id = fg_graph_param(ref.g, i);
                const fg_tinfo *t = fg_graph_tinfo(ref.g, id);
                /* same build order, so the same parameter order as the owner */
                CHECK(strcmp(t->t.name, fg_graph_tinfo(r->owner.g, fg_graph_param(r->owner.g, i))->t.name) == 0);
                memcpy(t->t.data, r->snap[v].w + o, t->bytes);
                o += t->bytes / sizeof(float);
            }
            float want[PB * CLS];
            CHECK_OK(fg_graph_set_input(ref.g, ref.x, pr[k].x, sizeof pr[k].x));
            CHECK_OK(fg_graph_forward(ref.g));
            CHECK_OK(fg_graph_read(ref.g, ref.logits, want, sizeof want));
            if (memcmp(want, pr[k].out[s], sizeof want) != 0) {
                if (bad < 5)
                    fprintf(stderr, "predictor %d sample %d (version %llu): logits[0] %.9g, the version's weights give %.9g\n",
                            k, s, (unsigned long long)v, pr[k].out[s][0], want[0]);
                bad++;
            }
            checked++;
        }
    }
    printf("shared weights: %d predictor outputs checked against their weights version (versions %d..%d seen), %d "
           "differ\n",
           checked, first_v, last_v, bad);
    CHECK(bad == 0 && checked >= 2 * NPRED);
    /* each predictor ran before the first step and after the last */
    CHECK(first_v == 1 && last_v == STEPS + 1);

    net_free(&ref);
    for (int k = 0; k < NPRED; k++) net_free(&pr[k].n);
    fg_optim_free(r->opt);
    net_free(&r->owner);
    for (int v = 0; v < STEPS + 2; v++) free(r->snap[v].w);
    free(r);
    free(pr);
}

/* ---------------------------------------------------------------- refusals */

static void test_refusals(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 3);
    net owner, trainer2, wrong, p;
    build(&owner, "owner", TB, HID, 1);
    fg_graph_init_params(owner.g, &rng);
    build(&trainer2, "trainer2", TB, HID, 1);
    CHECK_STATUS(fg_graph_share_weights(trainer2.g, owner.g), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "trainer2") && strstr(fg_last_error(), "loss"));
    build(&wrong, "wrong", PB, HID + 1, 0);
    CHECK_STATUS(fg_graph_share_weights(wrong.g, owner.g), FG_ERR_SHAPE);
    char have[64], want[64];
    snprintf(have, sizeof have, "(%d, %d)", HID + 1, IN);
    snprintf(want, sizeof want, "(%d, %d)", HID, IN);
    CHECK(strstr(fg_last_error(), "fc1.weight") && strstr(fg_last_error(), have) && strstr(fg_last_error(), want));
    build(&p, "p", PB, HID, 0);
    CHECK_OK(fg_graph_share_weights(p.g, owner.g));
    CHECK_STATUS(fg_graph_share_weights(p.g, owner.g), FG_ERR_INVALID); /* already shares */
    CHECK_STATUS(fg_graph_share_weights(owner.g, p.g), FG_ERR_INVALID); /* no chains */
    CHECK_STATUS(fg_graph_load(p.g, NULL, "/nonexistent.safetensors"), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "owner"));
    net_free(&p);
    net_free(&wrong);
    net_free(&trainer2);
    net_free(&owner);
}

/* A graph with batch norm: conv -> batch norm -> global average pool -> linear. */
static void build_bn(net *n, const char *name, int train, const fg_mem_policy *policy) {
    CHECK_OK(fg_pool_create(&n->pool, 0));
    CHECK_OK(fg_graph_create(&n->g, name));
    int64_t xs[4] = {4, 3, 4, 4};
    n->x = fg_nn_input(n->g, "x", FG_F32, 4, xs);
    fg_id h = fg_nn_batchnorm(n->g, "bn", fg_layer_conv2d(n->g, "conv", n->x, 4, 3, 1, 1, 1), 0.1f, 1e-5f);
    n->logits = fg_layer_linear(n->g, "fc", fg_nn_global_avgpool(n->g, "gap", h), 2, 1);
    finish(n, 4, train, policy);
}

/* Found by a review, each refused now: a sharer's training-mode forward wrote the owner's
 * batch-norm statistics under a read lock (and no new version); a sharer whose policy moves
 * weights to host memory freed the owner's weights into its own pool; a batch-norm backward ran on
 * an eval-mode forward's saved statistics once the training flag was set after it. */
static void test_batchnorm_and_homes(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 5);
    net owner, sh, sh2;
    build_bn(&owner, "owner", 1, NULL);
    fg_graph_init_params(owner.g, &rng);
    build_bn(&sh, "sharer", 0, NULL);
    CHECK_OK(fg_graph_share_weights(sh.g, owner.g));
    float x[4 * 3 * 4 * 4];
    fg_fill_uniform(x, sizeof x / sizeof x[0], -1, 2, &rng);
    CHECK_OK(fg_graph_set_input(sh.g, sh.x, x, sizeof x));
    const fg_id rm = fg_graph_find(owner.g, "bn.running_mean");
    CHECK(rm != FG_NONE);
    float m0[4];
    memcpy(m0, fg_graph_tensor(owner.g, rm)->data, sizeof m0);
    const uint64_t v0 = fg_graph_weights_version(owner.g);
    fg_graph_set_training(sh.g, 1);
    CHECK_STATUS(fg_graph_forward(sh.g), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "batch-norm") && strstr(fg_last_error(), "owner"));
    CHECK(memcmp(m0, fg_graph_tensor(owner.g, rm)->data, sizeof m0) == 0 && fg_graph_weights_version(owner.g) == v0);
    fg_graph_set_training(sh.g, 0);
    CHECK_OK(fg_graph_forward(sh.g));
    CHECK(memcmp(m0, fg_graph_tensor(owner.g, rm)->data, sizeof m0) == 0);

    fg_vmem_config vc = fg_vmem_config_defaults(FG_VMEM_ALL);
    vc.offload_weights = 1;
    fg_mem_policy vp;
    CHECK_OK(fg_vmem_policy_create(&vp, &vc));
    build_bn(&sh2, "homed", 0, &vp);
    CHECK_STATUS(fg_graph_share_weights(sh2.g, owner.g), FG_ERR_UNSUPPORTED);
    CHECK(strstr(fg_last_error(), "homed") && strstr(fg_last_error(), "host memory"));

    /* the owner: an eval forward, then the training flag, then backward */
    const int32_t y[4] = {0, 1, 1, 0};
    CHECK_OK(fg_graph_set_input(owner.g, owner.x, x, sizeof x));
    CHECK_OK(fg_graph_set_input(owner.g, owner.y, y, sizeof y));
    fg_graph_set_training(owner.g, 0);
    CHECK_OK(fg_graph_forward(owner.g));
    fg_graph_set_training(owner.g, 1);
    CHECK_STATUS(fg_graph_backward(owner.g), FG_ERR_UNSUPPORTED);
    CHECK(strstr(fg_last_error(), "eval-mode forward") != NULL);
    CHECK_OK(fg_graph_forward(owner.g));
    CHECK_OK(fg_graph_backward(owner.g));
    net_free(&sh2);
    net_free(&sh);
    net_free(&owner);
}
/* A sharer reads the owner's batch-norm running statistics as well as its parameters: after the
 * owner's training forwards moved them, the sharer's eval-mode output equals the owner's bit for
 * bit (with statistics of its own, still at 0 and 1, it would not). */
static void test_shared_bn_stats(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 11);
    net owner, sh;
    build_bn(&owner, "owner", 1, NULL);
    fg_graph_init_params(owner.g, &rng);
    build_bn(&sh, "sharer", 0, NULL);
    CHECK_OK(fg_graph_share_weights(sh.g, owner.g));
    float x[4 * 3 * 4 * 4];
    fg_fill_uniform(x, sizeof x / sizeof x[0], -1, 3, &rng); /* a mean far from 0 */
    const int32_t y[4] = {1, 0, 0, 1};
    CHECK_OK(fg_graph_set_input(owner.g, owner.x, x, sizeof x));
    CHECK_OK(fg_graph_set_input(owner.g, owner.y, y, sizeof y));
    CHECK_OK(fg_graph_set_input(sh.g, sh.x, x, sizeof x));
    fg_graph_set_training(sh.g, 0);
    for (int it = 0; it < 2; it++) {
        fg_graph_zero_grad(owner.g);
        CHECK_OK(fg_graph_forward(owner.g));
        CHECK_OK(fg_graph_backward(owner.g));
    }
    const fg_id rm = fg_graph_find(owner.g, "bn.running_mean"), rv = fg_graph_find(owner.g, "bn.running_var");
    CHECK(rm != FG_NONE && rv != FG_NONE);
    if (rm != FG_NONE && rv != FG_NONE) {
        CHECK(!fg_all_equal_to(fg_graph_tensor(owner.g, rm)->data, 4, 0.0f));
        CHECK(!fg_all_equal_to(fg_graph_tensor(owner.g, rv)->data, 4, 1.0f));
        /* bound like the parameters: the owner's bytes */
        const fg_id srm = fg_graph_find(sh.g, "bn.running_mean"), srv = fg_graph_find(sh.g, "bn.running_var");
        CHECK(fg_graph_tensor(sh.g, srm)->data == fg_graph_tensor(owner.g, rm)->data);
        CHECK(fg_graph_tensor(sh.g, srv)->data == fg_graph_tensor(owner.g, rv)->data);
    }
    float lo[4 * 2], ls[4 * 2];
    fg_graph_set_training(owner.g, 0);
    CHECK_OK(fg_graph_forward(owner.g));
    CHECK_OK(fg_graph_read(owner.g, owner.logits, lo, sizeof lo));
    CHECK_OK(fg_graph_forward(sh.g));
    CHECK_OK(fg_graph_read(sh.g, sh.logits, ls, sizeof ls));
    fg_check_equal("sharer's eval logits against the owner's", ls, lo, 4 * 2);
    net_free(&sh);
    net_free(&owner);
}

/* Batch norm's running statistics are weights too: an owner's training forward writes them under
 * the weights' write lock, one new version per batch-norm node; an eval forward, and a training
 * forward of a graph without batch norm, write nothing. */
static void test_bn_versions(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 13);
    net owner, plain;
    build_bn(&owner, "owner", 1, NULL);
    fg_graph_init_params(owner.g, &rng);
    float x[4 * 3 * 4 * 4];
    fg_fill_uniform(x, sizeof x / sizeof x[0], -1, 2, &rng);
    const int32_t y[4] = {0, 1, 1, 0};
    CHECK_OK(fg_graph_set_input(owner.g, owner.x, x, sizeof x));
    CHECK_OK(fg_graph_set_input(owner.g, owner.y, y, sizeof y));
    int n_bn = 0;
    for (int i = 0; i < fg_graph_n_nodes(owner.g); i++) n_bn += fg_graph_node(owner.g, i)->op == FG_OP_BATCHNORM;
    CHECK(n_bn == 1);
    uint64_t v = fg_graph_weights_version(owner.g);
    fg_graph_set_training(owner.g, 1);
    CHECK_OK(fg_graph_forward(owner.g));
    CHECK(fg_graph_weights_version(owner.g) == v + (uint64_t)n_bn);
    CHECK_OK(fg_graph_backward(owner.g));
    v = fg_graph_weights_version(owner.g);
    fg_graph_set_training(owner.g, 0);
    CHECK_OK(fg_graph_forward(owner.g));
    CHECK(fg_graph_weights_version(owner.g) == v);
    net_free(&owner);

    build(&plain, "plain", TB, 8, 1);
    fg_graph_init_params(plain.g, &rng);
    float xp[TB * IN];
    int32_t yp[TB] = {0};
    fg_fill_uniform(xp, TB * IN, -1, 1, &rng);
    CHECK_OK(fg_graph_set_input(plain.g, plain.x, xp, sizeof xp));
    CHECK_OK(fg_graph_set_input(plain.g, plain.y, yp, sizeof yp));
    v = fg_graph_weights_version(plain.g);
    CHECK_OK(fg_graph_forward(plain.g));
    CHECK(fg_graph_weights_version(plain.g) == v);
    net_free(&plain);
}

/* More refusals: a sharer's batch-norm state whose name the owner gives to a parameter (same
 * shape: only the kind differs); an owner whose policy keeps its weights in host memory. */
static void test_refusals_kind_and_owner_home(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 17);
    /* the owner: build_bn's names and shapes, but bn.running_mean and bn.running_var are
     * parameters (the biases of two 4 -> 4 linears) */
    net owner, sh;
    CHECK_OK(fg_pool_create(&owner.pool, 0));
    CHECK_OK(fg_graph_create(&owner.g, "kindowner"));
    int64_t xs[4] = {4, 3, 4, 4}, v4[1] = {4}, m44[2] = {4, 4};
    owner.x = fg_nn_input(owner.g, "x", FG_F32, 4, xs);
    fg_id h = fg_nn_global_avgpool(owner.g, "gap", fg_layer_conv2d(owner.g, "conv", owner.x, 4, 3, 1, 1, 1));
    const char *bnames[4] = {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};
    for (int i = 0; i < 4; i++) {
        char wn[32], ln[32];
        snprintf(wn, sizeof wn, "l%d.weight", i);
        snprintf(ln, sizeof ln, "l%d", i);
        fg_id w = fg_nn_param(owner.g, wn, 2, m44, FG_INIT_FANIN_UNIFORM, 4);
        fg_id b = fg_nn_param(owner.g, bnames[i], 1, v4, FG_INIT_FANIN_UNIFORM, 4);
        h = fg_nn_linear(owner.g, ln, h, w, b);
    }
    owner.logits = fg_layer_linear(owner.g, "fc", h, 2, 1);
    finish(&owner, 4, 1, NULL);
    fg_graph_init_params(owner.g, &rng);
    build_bn(&sh, "kindsharer", 0, NULL);
    CHECK_STATUS(fg_graph_share_weights(sh.g, owner.g), FG_ERR_SHAPE);
    CHECK(strstr(fg_last_error(), "state 'bn.running_mean'") && strstr(fg_last_error(), "no state"));
    net_free(&sh);
    net_free(&owner);

    fg_vmem_config vc = fg_vmem_config_defaults(FG_VMEM_ALL);
    vc.offload_weights = 1;
    fg_mem_policy vp;
    CHECK_OK(fg_vmem_policy_create(&vp, &vc));
    build_bn(&owner, "homedowner", 1, &vp);
    fg_graph_init_params(owner.g, &rng);
    build_bn(&sh, "reader", 0, NULL);
    CHECK_STATUS(fg_graph_share_weights(sh.g, owner.g), FG_ERR_UNSUPPORTED);
    CHECK(strstr(fg_last_error(), "homedowner") && strstr(fg_last_error(), "host memory"));
    net_free(&sh);
    net_free(&owner);
}

int main(void) {
    test_refusals();
    test_batchnorm_and_homes();
    test_shared_bn_stats();
    test_bn_versions();
    test_refusals_kind_and_owner_home();
    test_concurrent();
    return fg_test_finish("test_shared");
}
