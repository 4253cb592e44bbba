/* The GA3C runtime (issue 13, "Runtime"; Babaeizadeh et al., ICLR 2017): agent threads, a bounded
 * prediction queue, predictor threads, a bounded training queue, trainer threads, all on one
 * model's weights.
 *
 * Data flow. An agent steps its batch of environments (fg_env_batch) and, for every step, puts
 * itself on the prediction queue with the states to evaluate (one request per agent at a time;
 * the agent waits on its own condition variable). A predictor takes requests until it holds
 * max_prediction_batch states, runs forward on the smallest of its graphs that fits (batch sizes
 * 1, 2, 4, ... up to the max, all reading the trainer's weights through fg_graph_share_weights),
 * and writes each agent its softmax policy, value and the weights' version. The agent samples
 * actions, steps, and appends (state, action, reward, behaviour probability, version) to each
 * environment's segment. A segment is flushed to the training queue with its n-step returns
 * when the episode terminates (bootstrap 0), when it is truncated by a time limit (bootstrap V
 * of the final observation, predicted in the same request as the next states), or when it holds
 * t_max steps (bootstrap V of the next state, which the agent predicts anyway for its next
 * action: no extra forward). Every step's reward, the terminal one included, is in its segment:
 * GA3C's ProcessAgent drops the last experience of each batch and so the terminal reward (its
 * issue #31); here nothing is dropped. A trainer takes segments until it holds at least
 * min_training_batch experiences and runs forward, the A3C loss (ga3c_model.c), backward,
 * gradient-norm clipping and RMSProp on the one training graph.
 *
 * Weight consistency. The graph's own reader-writer lock (src/graph/share.c): a predictor's
 * forward holds the read side for the whole forward, fg_optim_step holds the write side, so a
 * predictor sees either the weights before an update or after it, never half. A lock rather than
 * double buffering because the update is one pass over ~150k floats (well under a millisecond
 * here) and forwards overlap each other freely; double buffers would double the weights and add
 * a copy per update. Trainers share one training graph (its activations and gradients), so they
 * take turns under train_mu; with several trainers the batch gathering overlaps, the update does
 * not (TensorFlow serializes GA3C's trainers' updates much the same way).
 *
 * Also here: V-trace (the trainer recomputes the targets from its own forward, with the behaviour
 * probabilities the segments carry; the recursion ends with the predictor's V of the state after
 * the segment, or with the trainer's own V of it under FG_GA3C_VTRACE_BOOT_CURRENT), the run-time tuner (on the monitor,
 * i.e. fg_ga3c_run's thread; threads above the active counts park), and the plain A3C baseline
 * (its own section below).
 *
 * Stop and failure. One stop flag; halting stops both queues (every blocked push and pop
 * returns), wakes every agent waiting for its prediction and the monitor. The first failure in
 * any thread keeps its status and message (fg_last_error is per thread, so it is copied there)
 * and halts; fg_ga3c_run joins every thread and returns it. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frugal/io.h"
#include "rl/ga3c_impl.h"

/* ---------------------------------------------------------------- bounded queue */

fg_status ga3c_queue_init(ga3c_queue *q, size_t cap) {
    memset(q, 0, sizeof *q);
    FG_ASSERT(cap >= 1);
    q->items = calloc(cap, sizeof *q->items);
    if (!q->items) return fg_fail(FG_ERR_OOM, "ga3c: out of host memory for a queue of %zu", cap);
    q->cap = cap;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    return FG_OK;
}

void ga3c_queue_destroy(ga3c_queue *q) {
    if (!q->items) return;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    free(q->items);
    q->items = NULL;
}

int ga3c_queue_push(ga3c_queue *q, void *item) {
    pthread_mutex_lock(&q->mu);
    while (q->count == q->cap && !q->stopped) pthread_cond_wait(&q->not_full, &q->mu);
    int ok = !q->stopped;
    if (ok) {
        q->items[(q->head + q->count) % q->cap] = item;
        q->count++;
        pthread_cond_signal(&q->not_empty);
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

size_t ga3c_queue_pop_batch(ga3c_queue *q, void **out, size_t max_items, ga3c_weight_fn weight, size_t max_weight) {
    FG_ASSERT(max_items >= 1);
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && !q->stopped) pthread_cond_wait(&q->not_empty, &q->mu);
    size_t n = 0, w = 0;
    if (!q->stopped) {
        while (q->count > 0 && n < max_items) {
            void *it = q->items[q->head];
            size_t wi = weight ? weight(it) : 1;
            if (n > 0 && w + wi > max_weight) break;
            out[n++] = it;
            w += wi;
            q->head = (q->head + 1) % q->cap;
            q->count--;
        }
        pthread_cond_broadcast(&q->not_full);
    }
    pthread_mutex_unlock(&q->mu);
    return n;
}

void ga3c_queue_stop(ga3c_queue *q) {
    pthread_mutex_lock(&q->mu);
    q->stopped = 1;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->mu);
}

size_t ga3c_queue_count(ga3c_queue *q) {
    pthread_mutex_lock(&q->mu);
    size_t n = q->count;
    pthread_mutex_unlock(&q->mu);
    return n;
}

/* ---------------------------------------------------------------- runtime state */

/* n experiences of one environment, with their n-step returns; owned by the queue, then freed by
 * the trainer (or by fg_ga3c_free when the run stopped first). */
typedef struct ga3c_segment {
    size_t n;
    float *states;      /* (n, obs_size) */
    int32_t *actions;   /* (n) */
    float *returns;     /* (n) */
    uint64_t *versions; /* (n) weights version each action was predicted with */
    /* for V-trace: the clipped rewards, the behaviour policy's probability of each action, and the
     * state after the last step (boot_state NULL when the segment ended by termination, and
     * unless the bootstrap is the trainer's own, FG_GA3C_VTRACE_BOOT_CURRENT) */
    float *rewards, *mu; /* (n) */
    float *boot_state;   /* (obs_size) or NULL; kept only for FG_GA3C_VTRACE_BOOT_CURRENT */
    float boot_v;        /* the predictor's V(boot_state) when the agent acted (0 after a termination) */
} ga3c_segment;

static void segment_free(ga3c_segment *s) {
    free(s->states), free(s->actions), free(s->returns), free(s->versions), free(s->rewards), free(s->mu),
        free(s->boot_state), free(s);
}

typedef struct ga3c_agent {
    struct fg_ga3c *r;
    int id;
    fg_env_batch *env;
    size_t n; /* environments */
    fg_rng rng;
    float *obs;  /* (n, obs_size) current states */
    float *rewards;
    uint8_t *dones;
    int32_t *actions;
    /* the prediction request: k states in, k policies and values out */
    size_t req_k;
    float *req_states; /* (2n, obs_size): n current states, then final states of truncated episodes */
    float *req_p;      /* (2n, A) */
    float *req_v;      /* (2n) */
    uint64_t req_version;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready;
    /* per environment: the unflushed segment (t_max steps at most) */
    float *seg_states;    /* (n, t_max, obs_size) */
    int32_t *seg_actions; /* (n, t_max) */
    float *seg_rewards;   /* (n, t_max) */
    uint64_t *seg_versions;
    float *seg_mu;        /* (n, t_max) behaviour probability of each action taken */
    float *seg_v;         /* (n, t_max) behaviour value of each state acted in (lambda-returns) */
    size_t *seg_len;
    uint8_t *boot_pending; /* segment full: flush with V of the next state */
    size_t *trunc_slot;    /* truncated env i: its final state's slot in the request, or SIZE_MAX */
    struct a3c_local *a3c; /* the A3C baseline's own model copy (algo A3C only) */
    pthread_t th;
    int started;
} ga3c_agent;

typedef struct ga3c_worker {
    struct fg_ga3c *r;
    int id;
    pthread_t th;
    int started;
} ga3c_worker;

/* A predictor's buffers: a batch of states in, their logits and values out. */
typedef struct pred_bufs {
    float *x, *logits, *value;
} pred_bufs;

struct fg_ga3c {
    fg_ga3c_config cfg;
    char env_name[64];
    int obs_ndim;
    int64_t obs_shape[3];
    size_t obs_size;
    int A;
    int64_t exp_cap;   /* experiences per update at most: min_training_batch + t_max - 1 (a batch
                          overshoots the minimum by less than one segment) */
    int64_t train_cap; /* rows of the training graph: exp_cap, twice that with V-trace (a bootstrap
                          state per segment after the experiences) */
    ga3c_net train;
    fg_optim *opt;
    int n_sizes;          /* predictor graphs per predictor */
    ga3c_net *pred_nets;  /* (predictors, n_sizes) */
    int n_agents, n_preds, n_trains; /* threads (the tuner's maxima when tuning, else the counts) */
    ga3c_agent *agents;
    ga3c_worker *predictors, *trainers;
    /* how many of each are active (ids below the count run, the others park on tune_cv); the
     * monitor changes them when tuning */
    atomic_int active[3];
    pthread_mutex_t tune_mu;
    pthread_cond_t tune_cv;
    fg_ga3c_tune_step *tune_log;
    size_t tune_len, tune_cap;
    ga3c_queue predq, trainq;
    pthread_mutex_t train_mu;
    atomic_int stop;
    pthread_mutex_t err_mu;
    fg_status err;
    char errmsg[512];
    atomic_llong frames, predictions, trainings, episodes, updates, experiences;
    pthread_mutex_t stats_mu; /* guards everything below up to the monitor */
    double ret_ring[100];
    size_t ret_count;
    double loss_last;
    int64_t *pred_hist, *train_hist;
    int64_t lag_hist[FG_GA3C_LAG_BINS];
    double rho_sum;         /* V-trace: sum of min(1, pi/mu) over the experiences trained on */
    int64_t rho_cut, rho_n; /* how many of them had pi < mu, and how many in all */
    int64_t lag0_n;         /* experiences trained with the weights they were predicted with */
    double lag0_dev;        /* the largest |log(pi/mu)| among them (rounding only, if pi and mu agree) */
    pthread_mutex_t mon_mu;
    pthread_cond_t mon_cv;
    /* the monitor's (fg_ga3c_run's thread) own */
    double t0;
    double t_end; /* when fg_ga3c_run's threads had all stopped (0 while it runs); under stats_mu */
    fg_ga3c_point *curve;
    size_t curve_len, curve_cap;
    int64_t *pred_snap, *train_snap;
    int ran;
    pred_bufs ls_pred; /* lockstep: the one predictor's buffers (fg_ga3c_run's thread) */
};

static void halt(fg_ga3c *r) {
    atomic_store(&r->stop, 1);
    ga3c_queue_stop(&r->predq);
    ga3c_queue_stop(&r->trainq);
    for (int i = 0; i < r->n_agents; i++) {
        ga3c_agent *a = &r->agents[i];
        pthread_mutex_lock(&a->mu);
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_lock(&r->mon_mu);
    pthread_cond_broadcast(&r->mon_cv);
    pthread_mutex_unlock(&r->mon_mu);
    pthread_mutex_lock(&r->tune_mu);
    pthread_cond_broadcast(&r->tune_cv);
    pthread_mutex_unlock(&r->tune_mu);
}

/* Parks a thread of kind k (0 agents, 1 predictors, 2 trainers) while the tuner has it inactive;
 * returns when it is active again or the run stops. Called between units of work, when the
 * thread holds nothing another thread waits for. */
static void park(fg_ga3c *r, int k, int id) {
    if (id < atomic_load(&r->active[k])) return;
    pthread_mutex_lock(&r->tune_mu);
    while (id >= atomic_load(&r->active[k]) && !atomic_load(&r->stop)) pthread_cond_wait(&r->tune_cv, &r->tune_mu);
    pthread_mutex_unlock(&r->tune_mu);
}

/* Keeps the first failure (status and the failing thread's message, prefixed with who) and halts. */
static void fail(fg_ga3c *r, fg_status s, const char *who) {
    pthread_mutex_lock(&r->err_mu);
    if (r->err == FG_OK) {
        r->err = s;
        snprintf(r->errmsg, sizeof r->errmsg, "ga3c: %s: %s", who, fg_last_error());
    }
    pthread_mutex_unlock(&r->err_mu);
    halt(r);
}

static int stopping(fg_ga3c *r) { return atomic_load(&r->stop); }

/* ---------------------------------------------------------------- agents */

static void softmax_row(const float *z, int A, float *p) {
    float m = z[0];
    for (int k = 1; k < A; k++) m = z[k] > m ? z[k] : m;
    double s = 0.0;
    for (int k = 0; k < A; k++) s += exp((double)(z[k] - m));
    for (int k = 0; k < A; k++) p[k] = (float)(exp((double)(z[k] - m)) / s);
}

static int sample(fg_rng *rng, const float *p, int A) {
    float u = fg_rng_uniform(rng), c = 0.0f;
    for (int k = 0; k < A; k++) {
        c += p[k];
        if (u < c) return k;
    }
    return A - 1; /* rounding: the sum fell short of u */
}

static fg_status serve(fg_ga3c *r, int pid, ga3c_agent **reqs, size_t m, pred_bufs *b);

/* Puts the agent's k states on the prediction queue and waits for the answer (lockstep: serves
 * them at once on this thread); 0 when stopped. */
static int predict(ga3c_agent *a, size_t k) {
    fg_ga3c *r = a->r;
    if (r->cfg.lockstep) {
        a->req_k = k;
        fg_status s = serve(r, 0, &a, 1, &r->ls_pred);
        if (s != FG_OK) fail(r, s, "predictor 0");
        return s == FG_OK;
    }
    pthread_mutex_lock(&a->mu);
    a->req_k = k;
    a->ready = 0;
    pthread_mutex_unlock(&a->mu);
    if (!ga3c_queue_push(&r->predq, a)) return 0;
    pthread_mutex_lock(&a->mu);
    while (!a->ready && !stopping(r)) pthread_cond_wait(&a->cv, &a->mu);
    int ok = a->ready;
    pthread_mutex_unlock(&a->mu);
    return ok;
}

/* Sends env i's segment to the training queue with returns bootstrapped from `boot`, the value of
 * boot_state (NULL and 0 when the episode terminated); 0 when stopped or out of memory (then the
 * run has failed). */
static int flush(ga3c_agent *a, size_t i, float boot, const float *boot_state) {
    fg_ga3c *r = a->r;
    size_t n = a->seg_len[i], T = (size_t)r->cfg.t_max, os = r->obs_size;
    a->seg_len[i] = 0;
    a->boot_pending[i] = 0;
    if (n == 0) return 1;
    ga3c_segment *s = calloc(1, sizeof *s);
    int vt = r->cfg.vtrace;
    if (!vt || r->cfg.vtrace_boot != FG_GA3C_VTRACE_BOOT_CURRENT) boot_state = NULL; /* not needed */
    if (s) {
        s->n = n;
        s->boot_v = boot;
        s->states = malloc(n * os * sizeof(float));
        s->actions = malloc(n * sizeof(int32_t));
        s->returns = malloc(n * sizeof(float));
        s->versions = malloc(n * sizeof(uint64_t));
        if (vt) {
            s->rewards = malloc(n * sizeof(float));
            s->mu = malloc(n * sizeof(float));
            if (boot_state) s->boot_state = malloc(os * sizeof(float));
        }
    }
    if (!s || !s->states || !s->actions || !s->returns || !s->versions ||
        (vt && (!s->rewards || !s->mu || (boot_state && !s->boot_state)))) {
        if (s) segment_free(s);
        fail(r, fg_fail(FG_ERR_OOM, "out of host memory for a segment of %zu experiences", n), "agent");
        return 0;
    }
    memcpy(s->states, a->seg_states + i * T * os, n * os * sizeof(float));
    memcpy(s->actions, a->seg_actions + i * T, n * sizeof(int32_t));
    memcpy(s->versions, a->seg_versions + i * T, n * sizeof(uint64_t));
    fg_ga3c_lambda_returns(a->seg_rewards + i * T, a->seg_v + i * T, n, boot, r->cfg.discount, r->cfg.gae_lambda,
                           r->cfg.clip_rewards, s->returns);
    if (vt) {
        for (size_t t = 0; t < n; t++) {
            float rw = a->seg_rewards[i * T + t];
            if (r->cfg.clip_rewards) rw = rw < -1.0f ? -1.0f : rw > 1.0f ? 1.0f : rw;
            s->rewards[t] = rw;
        }
        memcpy(s->mu, a->seg_mu + i * T, n * sizeof(float));
        if (boot_state) memcpy(s->boot_state, boot_state, os * sizeof(float));
    }
    if (!ga3c_queue_push(&r->trainq, s)) {
        segment_free(s);
        return 0;
    }
    atomic_fetch_add(&r->experiences, (long long)n);
    return 1;
}

/* Environment i of env has just ended an episode: its return goes into the last-100 ring. */
static void record_episode(fg_ga3c *r, const fg_env_batch *env, size_t i) {
    double ret;
    int64_t len;
    fg_env_batch_last_episode(env, i, &ret, &len);
    pthread_mutex_lock(&r->stats_mu);
    r->ret_ring[r->ret_count % 100] = ret;
    r->ret_count++;
    pthread_mutex_unlock(&r->stats_mu);
    atomic_fetch_add(&r->episodes, 1);
}

/* The agent's first request: the initial states of its environments. 0 when stopped. */
static int agent_begin(ga3c_agent *a) {
    memcpy(a->req_states, a->obs, a->n * a->r->obs_size * sizeof(float));
    return predict(a, a->n);
}

/* One step of the agent's environments, its previous request answered: flush the segments that
 * were full, sample the actions, step, flush what ended, request the next states' policies. 0 when
 * stopped or failed (then the run has failed). */
static int agent_step(ga3c_agent *a) {
    fg_ga3c *r = a->r;
    size_t n = a->n, os = r->obs_size, T = (size_t)r->cfg.t_max;
    int A = r->A;
    /* segments that were full: the value of the state just predicted bootstraps them */
    for (size_t i = 0; i < n; i++)
        if (a->boot_pending[i] && !flush(a, i, a->req_v[i], a->obs + i * os)) return 0;
    uint64_t ver = a->req_version;
    for (size_t i = 0; i < n; i++) {
        int act = sample(&a->rng, a->req_p + i * (size_t)A, A);
        size_t t = a->seg_len[i]++;
        memcpy(a->seg_states + (i * T + t) * os, a->obs + i * os, os * sizeof(float));
        a->seg_actions[i * T + t] = act;
        a->seg_versions[i * T + t] = ver;
        a->seg_mu[i * T + t] = a->req_p[i * (size_t)A + (size_t)act];
        a->seg_v[i * T + t] = a->req_v[i];
        a->actions[i] = act;
    }
    fg_status s = fg_env_batch_step(a->env, a->actions, a->obs, a->rewards, a->dones);
    if (s != FG_OK) {
        fail(r, s, "agent");
        return 0;
    }
    atomic_fetch_add(&r->frames, (long long)n);
    size_t k = n;
    for (size_t i = 0; i < n; i++) {
        a->seg_rewards[i * T + a->seg_len[i] - 1] = a->rewards[i];
        a->trunc_slot[i] = SIZE_MAX;
        if (a->dones[i]) record_episode(r, a->env, i);
        if (a->dones[i] == FG_ENV_TERMINATED) {
            if (!flush(a, i, 0.0f, NULL)) return 0;
        } else if (a->dones[i] == FG_ENV_TRUNCATED) {
            a->trunc_slot[i] = k;
            fg_env_batch_final_obs(a->env, i, a->req_states + k * os);
            k++;
        } else if (a->seg_len[i] == T) {
            a->boot_pending[i] = 1;
        }
    }
    memcpy(a->req_states, a->obs, n * os * sizeof(float));
    if (!predict(a, k)) return 0;
    for (size_t i = 0; i < n; i++)
        if (a->trunc_slot[i] != SIZE_MAX &&
            !flush(a, i, a->req_v[a->trunc_slot[i]], a->req_states + a->trunc_slot[i] * os))
            return 0;
    return 1;
}

static void *agent_main(void *arg) {
    ga3c_agent *a = arg;
    fg_ga3c *r = a->r;
    if (!agent_begin(a)) return NULL;
    while (!stopping(r)) {
        park(r, 0, a->id);
        if (stopping(r)) break;
        if (atomic_load(&r->frames) >= r->cfg.frames) {
            halt(r); /* the frame budget is spent: a normal end */
            break;
        }
        if (!agent_step(a)) break;
    }
    return NULL;
}

/* ---------------------------------------------------------------- the A3C baseline
 *
 * Plain A3C on CPU threads, as the GA3C paper compared against: each worker (an agent thread) has
 * its own environments and its own copy of the model (an inference graph at batch n sharing the
 * weights of the worker's own training graph at batch n * t_max). A rollout: copy the global
 * weights into the copy, step t_max times choosing actions with the copy, predict V of the states
 * reached (bootstrap), compute returns, forward + backward on the copy, then copy the gradients
 * into the global model's and step its RMSProp. The global weights are read and updated under
 * train_mu (A3C's paper applies gradients lock-free, Hogwild style; a data race by design, which
 * the ThreadSanitizer rule forbids here). */

typedef struct a3c_local {
    ga3c_net inf, trn;
    int np;
    float **gw, **lw, **gg, **lg; /* per parameter: global weight, local weight, global grad, local grad */
    size_t *bytes;
    float *states, *rewards, *p, *v, *vb; /* (T, n, os), (T, n), (n, A), (n), (n) */
    int32_t *actions;                       /* (T, n) */
    uint8_t *dones;                         /* (T, n) */
    float *returns, *z, *vv, *dz, *dv, *dout;
    float *fin;                             /* (n, os): final observations of truncated episodes */
} a3c_local;

static void a3c_local_free(a3c_local *l) {
    if (!l) return;
    ga3c_net_free(&l->inf);
    ga3c_net_free(&l->trn);
    free(l->gw), free(l->lw), free(l->gg), free(l->lg), free(l->bytes), free(l->states), free(l->rewards), free(l->p),
        free(l->v), free(l->vb), free(l->actions), free(l->dones), free(l->returns), free(l->z), free(l->vv),
        free(l->dz), free(l->dv), free(l->dout), free(l->fin);
    free(l);
}

static float *param_data(fg_graph *g, fg_id id) { return (float *)fg_graph_tensor(g, id)->data; }

static fg_status a3c_local_init(fg_ga3c *r, ga3c_agent *a) {
    a3c_local *l = calloc(1, sizeof *l);
    if (!l) return fg_fail(FG_ERR_OOM, "a3c: out of host memory");
    a->a3c = l;
    size_t n = a->n, T = (size_t)r->cfg.t_max, os = r->obs_size, A = (size_t)r->A;
    char nm[48];
    snprintf(nm, sizeof nm, "a3c%d_train", a->id);
    FG_TRY(ga3c_net_build(&l->trn, nm, r->cfg.net, r->obs_ndim, r->obs_shape, r->A, (int64_t)(n * T), 1));
    snprintf(nm, sizeof nm, "a3c%d_act", a->id);
    FG_TRY(ga3c_net_build(&l->inf, nm, r->cfg.net, r->obs_ndim, r->obs_shape, r->A, (int64_t)n, 0));
    FG_TRY(fg_graph_share_weights(l->inf.g, l->trn.g));
    fg_graph *G = r->train.g, *L = l->trn.g;
    l->np = fg_graph_n_params(G);
    size_t np = (size_t)l->np;
    l->gw = malloc(np * sizeof(float *)), l->lw = malloc(np * sizeof(float *));
    l->gg = malloc(np * sizeof(float *)), l->lg = malloc(np * sizeof(float *));
    l->bytes = malloc(np * sizeof(size_t));
    l->states = malloc(T * n * os * sizeof(float)), l->rewards = malloc(T * n * sizeof(float));
    l->p = malloc(n * A * sizeof(float)), l->v = malloc(n * sizeof(float)), l->vb = malloc(n * sizeof(float));
    l->actions = malloc(T * n * sizeof(int32_t)), l->dones = malloc(T * n);
    l->returns = malloc(T * n * sizeof(float)), l->z = malloc(T * n * A * sizeof(float));
    l->vv = malloc(T * n * sizeof(float)), l->dz = malloc(T * n * A * sizeof(float));
    l->dv = malloc(T * n * sizeof(float)), l->dout = malloc(T * n * (A + 1) * sizeof(float));
    l->fin = malloc(n * os * sizeof(float));
    if (!l->gw || !l->lw || !l->gg || !l->lg || !l->bytes || !l->states || !l->rewards || !l->p || !l->v || !l->vb ||
        !l->actions || !l->dones || !l->returns || !l->z || !l->vv || !l->dz || !l->dv || !l->dout || !l->fin)
        return fg_fail(FG_ERR_OOM, "a3c: out of host memory for worker %d", a->id);
    for (size_t i = 0; i < np; i++) {
        fg_id gid = fg_graph_param(G, (int)i);
        const fg_tinfo *gi = fg_graph_tinfo(G, gid);
        fg_id lid = fg_graph_find(L, gi->t.name);
        FG_ASSERT(lid != FG_NONE && fg_graph_tinfo(L, lid)->bytes == gi->bytes);
        l->gw[i] = param_data(G, gid);
        l->lw[i] = param_data(L, lid);
        l->gg[i] = param_data(G, gi->grad);
        l->lg[i] = param_data(L, fg_graph_tinfo(L, lid)->grad);
        l->bytes[i] = gi->bytes;
    }
    return FG_OK;
}

/* Forward of the worker's copy on its n states: policies into l->p, values into out_v. */
static fg_status a3c_predict(fg_ga3c *r, ga3c_agent *a, const float *obs, float *out_v) {
    a3c_local *l = a->a3c;
    size_t n = a->n, A = (size_t)r->A;
    FG_TRY(fg_graph_set_input(l->inf.g, l->inf.x, obs, n * r->obs_size * sizeof(float)));
    FG_TRY(fg_graph_forward(l->inf.g));
    FG_TRY(fg_graph_read(l->inf.g, l->inf.logits, l->z, n * A * sizeof(float)));
    FG_TRY(fg_graph_read(l->inf.g, l->inf.value, out_v, n * sizeof(float)));
    for (size_t i = 0; i < n; i++) softmax_row(l->z + i * A, (int)A, l->p + i * A);
    atomic_fetch_add(&r->predictions, (long long)n);
    pthread_mutex_lock(&r->stats_mu);
    r->pred_hist[n]++;
    pthread_mutex_unlock(&r->stats_mu);
    return FG_OK;
}

static fg_status a3c_rollout(fg_ga3c *r, ga3c_agent *a, int *stop_now) {
    a3c_local *l = a->a3c;
    size_t n = a->n, T = (size_t)r->cfg.t_max, os = r->obs_size, A = (size_t)r->A, R = n * T;
    /* the model copy: the global weights as they are now */
    pthread_mutex_lock(&r->train_mu);
    for (int i = 0; i < l->np; i++) memcpy(l->lw[i], l->gw[i], l->bytes[i]);
    uint64_t ver = fg_graph_weights_version(r->train.g);
    pthread_mutex_unlock(&r->train_mu);
    float gamma = r->cfg.discount;
    for (size_t t = 0; t < T; t++) {
        memcpy(l->states + t * n * os, a->obs, n * os * sizeof(float));
        FG_TRY(a3c_predict(r, a, a->obs, l->v));
        for (size_t i = 0; i < n; i++) {
            a->actions[i] = sample(&a->rng, l->p + i * A, (int)A);
            l->actions[t * n + i] = a->actions[i];
        }
        FG_TRY(fg_env_batch_step(a->env, a->actions, a->obs, a->rewards, a->dones));
        atomic_fetch_add(&r->frames, (long long)n);
        int any_trunc = 0;
        for (size_t i = 0; i < n; i++) {
            float rw = a->rewards[i];
            if (r->cfg.clip_rewards) rw = rw < -1.0f ? -1.0f : rw > 1.0f ? 1.0f : rw;
            l->rewards[t * n + i] = rw;
            l->dones[t * n + i] = a->dones[i] != 0;
            if (a->dones[i]) record_episode(r, a->env, i);
            if (a->dones[i] == FG_ENV_TRUNCATED) {
                fg_env_batch_final_obs(a->env, i, l->fin + i * os);
                any_trunc = 1;
            } else {
                memcpy(l->fin + i * os, a->obs + i * os, os * sizeof(float));
            }
        }
        if (any_trunc) {
            /* a time limit, not a terminal: the final state's value goes into that step's reward */
            FG_TRY(a3c_predict(r, a, l->fin, l->vb));
            for (size_t i = 0; i < n; i++)
                if (a->dones[i] == FG_ENV_TRUNCATED) l->rewards[t * n + i] += gamma * l->vb[i];
        }
        if (atomic_load(&r->frames) >= r->cfg.frames) *stop_now = 1;
    }
    FG_TRY(a3c_predict(r, a, a->obs, l->vb)); /* bootstrap: V of the states reached */
    /* returns, row t * n + i, cut at episode ends */
    for (size_t i = 0; i < n; i++) {
        float Rt = l->vb[i];
        for (size_t t = T; t-- > 0;) {
            if (l->dones[t * n + i]) Rt = 0.0f;
            Rt = l->rewards[t * n + i] + gamma * Rt;
            l->returns[t * n + i] = Rt;
        }
    }
    fg_graph *g = l->trn.g;
    FG_TRY(fg_graph_set_input(g, l->trn.x, l->states, R * os * sizeof(float)));
    FG_TRY(fg_graph_forward(g));
    FG_TRY(fg_graph_read(g, l->trn.logits, l->z, R * A * sizeof(float)));
    FG_TRY(fg_graph_read(g, l->trn.value, l->vv, R * sizeof(float)));
    double loss = fg_ga3c_loss(l->z, l->vv, l->actions, l->returns, R, (int)A, r->cfg.beta, r->cfg.log_epsilon, l->dz, l->dv);
    for (size_t i = 0; i < R; i++) {
        memcpy(l->dout + i * (A + 1), l->dz + i * A, A * sizeof(float));
        l->dout[i * (A + 1) + A] = l->dv[i];
    }
    FG_TRY(fg_graph_set_input(g, l->trn.dout, l->dout, R * (A + 1) * sizeof(float)));
    fg_graph_zero_grad(g);
    FG_TRY(fg_graph_backward(g));
    /* the copy's gradients become the global model's, and its optimizer steps */
    pthread_mutex_lock(&r->train_mu);
    for (int i = 0; i < l->np; i++) memcpy(l->gg[i], l->lg[i], l->bytes[i]);
    float clip = fg_ga3c_grad_clip(&r->cfg);
    double norm = clip > 0 ? fg_graph_clip_grad_norm(r->train.g, clip) : 0.0;
    fg_status s = FG_OK;
    if (!isfinite(norm) || !isfinite(loss))
        s = fg_fail(FG_ERR_INVALID, "the loss or the gradient norm is not finite (loss %g, norm %g): lower --lr", loss,
                    norm);
    uint64_t now = fg_graph_weights_version(r->train.g);
    if (s == FG_OK) {
        fg_optim_set_lr(r->opt, fg_ga3c_lr_at(&r->cfg, atomic_load(&r->frames)));
        s = fg_optim_step(r->opt);
    }
    long long u = s == FG_OK ? atomic_fetch_add(&r->updates, 1) + 1 : 0;
    pthread_mutex_unlock(&r->train_mu);
    FG_TRY(s);
    if (a->id == 0 && r->cfg.fail_after_updates > 0 && u >= r->cfg.fail_after_updates)
        return fg_fail(FG_ERR_INVALID, "injected failure after %lld updates (fail_after_updates)", u);
    atomic_fetch_add(&r->experiences, (long long)R);
    atomic_fetch_add(&r->trainings, (long long)R);
    pthread_mutex_lock(&r->stats_mu);
    r->loss_last = loss;
    r->train_hist[R]++;
    uint64_t lag = now - ver;
    r->lag_hist[lag < FG_GA3C_LAG_BINS - 1 ? lag : FG_GA3C_LAG_BINS - 1] += (int64_t)R;
    pthread_mutex_unlock(&r->stats_mu);
    return FG_OK;
}

static void *a3c_main(void *arg) {
    ga3c_agent *a = arg;
    fg_ga3c *r = a->r;
    fg_threads_set(r->cfg.ops_threads);
    char who[32];
    snprintf(who, sizeof who, "a3c worker %d", a->id);
    int stop_now = 0;
    while (!stopping(r) && !stop_now) {
        fg_status s = a3c_rollout(r, a, &stop_now);
        if (s != FG_OK) {
            fail(r, s, who);
            return NULL;
        }
    }
    halt(r);
    return NULL;
}

/* ---------------------------------------------------------------- predictors */

static size_t request_weight(const void *item) { return ((const ga3c_agent *)item)->req_k; }

static void pred_bufs_free(pred_bufs *b) {
    free(b->x), free(b->logits), free(b->value);
    memset(b, 0, sizeof *b);
}

static fg_status pred_bufs_init(pred_bufs *b, const fg_ga3c *r) {
    const size_t maxb = (size_t)r->cfg.max_prediction_batch;
    b->x = malloc(maxb * r->obs_size * sizeof(float));
    b->logits = malloc(maxb * (size_t)r->A * sizeof(float));
    b->value = malloc(maxb * sizeof(float));
    if (!b->x || !b->logits || !b->value) {
        pred_bufs_free(b);
        return fg_fail(FG_ERR_OOM, "out of host memory for a batch of %zu states", maxb);
    }
    return FG_OK;
}

/* Runs the m requests (at most max_prediction_batch states in all) through predictor pid's
 * smallest graph that holds them and answers each agent: policy, value, the weights' version. */
static fg_status serve(fg_ga3c *r, int pid, ga3c_agent **reqs, size_t m, pred_bufs *b) {
    size_t os = r->obs_size, K = 0;
    int A = r->A;
    for (size_t j = 0; j < m; j++) {
        memcpy(b->x + K * os, reqs[j]->req_states, reqs[j]->req_k * os * sizeof(float));
        K += reqs[j]->req_k;
    }
    /* the smallest graph that holds K states; the rows past K are zeros and ignored */
    int si = 0;
    while (r->pred_nets[(size_t)pid * (size_t)r->n_sizes + (size_t)si].batch < (int64_t)K) si++;
    ga3c_net *net = &r->pred_nets[(size_t)pid * (size_t)r->n_sizes + (size_t)si];
    size_t B = (size_t)net->batch;
    memset(b->x + K * os, 0, (B - K) * os * sizeof(float));
    fg_status s = fg_graph_set_input(net->g, net->x, b->x, B * os * sizeof(float));
    if (s == FG_OK) s = fg_graph_forward(net->g);
    if (s == FG_OK) s = fg_graph_read(net->g, net->logits, b->logits, B * (size_t)A * sizeof(float));
    if (s == FG_OK) s = fg_graph_read(net->g, net->value, b->value, B * sizeof(float));
    if (s != FG_OK) return s;
    uint64_t ver = fg_graph_weights_version(net->g);
    size_t off = 0;
    for (size_t j = 0; j < m; j++) {
        ga3c_agent *a = reqs[j];
        for (size_t q = 0; q < a->req_k; q++) {
            softmax_row(b->logits + (off + q) * (size_t)A, A, a->req_p + q * (size_t)A);
            a->req_v[q] = b->value[off + q];
        }
        off += a->req_k;
        pthread_mutex_lock(&a->mu);
        a->req_version = ver;
        a->ready = 1;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
    }
    atomic_fetch_add(&r->predictions, (long long)K);
    pthread_mutex_lock(&r->stats_mu);
    r->pred_hist[K]++;
    pthread_mutex_unlock(&r->stats_mu);
    return FG_OK;
}

static void *predictor_main(void *arg) {
    ga3c_worker *w = arg;
    fg_ga3c *r = w->r;
    ga3c_agent **reqs = malloc((size_t)r->n_agents * sizeof *reqs);
    pred_bufs b = {0};
    char who[32];
    snprintf(who, sizeof who, "predictor %d", w->id);
    fg_threads_set(r->cfg.ops_threads);
    fg_status s = pred_bufs_init(&b, r);
    if (s == FG_OK && !reqs) s = fg_fail(FG_ERR_OOM, "out of host memory for %d requests", r->n_agents);
    if (s != FG_OK) {
        fail(r, s, who);
        goto done;
    }
    for (;;) {
        park(r, 1, w->id);
        size_t m = ga3c_queue_pop_batch(&r->predq, (void **)reqs, (size_t)r->n_agents, request_weight,
                                        (size_t)r->cfg.max_prediction_batch);
        if (m == 0) break;
        if ((s = serve(r, w->id, reqs, m, &b)) != FG_OK) {
            fail(r, s, who);
            break;
        }
    }
done:
    free(reqs);
    pred_bufs_free(&b);
    return NULL;
}

/* ---------------------------------------------------------------- trainers */

static size_t segment_weight(const void *item) { return ((const ga3c_segment *)item)->n; }

/* A trainer's buffers: the gathered segments, and the rows of one update (states, then V-trace's
 * bootstrap states; actions, targets, versions; the forward's outputs and the loss gradients). */
typedef struct train_bufs {
    ga3c_segment **segs;
    size_t nseg, rows;
    size_t *first, *brow;
    float *adv, *pi, *prob, *x, *logits, *v, *ret, *dz, *dv, *dout;
    int32_t *act;
    uint64_t *ver;
} train_bufs;

/* Frees the buffers and the segments still held (gathered, not trained on). */
static void train_bufs_free(train_bufs *b) {
    if (b->segs)
        for (size_t j = 0; j < b->nseg; j++) segment_free(b->segs[j]);
    free(b->segs), free(b->x), free(b->logits), free(b->v), free(b->ret), free(b->dz), free(b->dv), free(b->dout);
    free(b->act), free(b->ver), free(b->first), free(b->brow), free(b->adv), free(b->pi), free(b->prob);
    memset(b, 0, sizeof *b);
}

static fg_status train_bufs_init(train_bufs *b, const fg_ga3c *r) {
    size_t os = r->obs_size, cap = (size_t)r->train_cap, A = (size_t)r->A;
    memset(b, 0, sizeof *b);
    b->segs = malloc(cap * sizeof *b->segs);
    b->first = malloc(cap * sizeof(size_t)), b->brow = malloc(cap * sizeof(size_t));
    b->adv = malloc(cap * sizeof(float)), b->pi = malloc(cap * sizeof(float)), b->prob = malloc(A * sizeof(float));
    b->x = calloc(cap * os, sizeof(float)), b->logits = malloc(cap * A * sizeof(float));
    b->v = malloc(cap * sizeof(float)), b->ret = malloc(cap * sizeof(float)), b->dz = malloc(cap * A * sizeof(float));
    b->dv = malloc(cap * sizeof(float)), b->dout = calloc(cap * (A + 1), sizeof(float));
    b->act = calloc(cap, sizeof(int32_t));
    b->ver = malloc(cap * sizeof(uint64_t));
    if (!b->segs || !b->x || !b->logits || !b->v || !b->ret || !b->dz || !b->dv || !b->dout || !b->act || !b->ver ||
        !b->first || !b->brow || !b->adv || !b->pi || !b->prob) {
        train_bufs_free(b);
        return fg_fail(FG_ERR_OOM, "out of host memory for a batch of %zu experiences", cap);
    }
    return FG_OK;
}

/* Takes segments off the training queue until they hold at least min_training_batch experiences
 * (one at least), copying each into the update's rows; 0 when the queue was stopped. */
static int gather(fg_ga3c *r, train_bufs *b) {
    size_t os = r->obs_size, ecap = (size_t)r->exp_cap;
    size_t need = r->cfg.min_training_batch > 0 ? (size_t)r->cfg.min_training_batch : 1;
    b->rows = 0;
    b->nseg = 0;
    while (b->rows < need) {
        size_t m = ga3c_queue_pop_batch(&r->trainq, (void **)b->segs + b->nseg, ecap - b->nseg, segment_weight,
                                        ecap - b->rows);
        if (m == 0) return 0;
        for (size_t j = b->nseg; j < b->nseg + m; j++) {
            ga3c_segment *sg = b->segs[j];
            b->first[j] = b->rows;
            memcpy(b->x + b->rows * os, sg->states, sg->n * os * sizeof(float));
            memcpy(b->act + b->rows, sg->actions, sg->n * sizeof(int32_t));
            memcpy(b->ret + b->rows, sg->returns, sg->n * sizeof(float));
            memcpy(b->ver + b->rows, sg->versions, sg->n * sizeof(uint64_t));
            b->rows += sg->n;
        }
        b->nseg += m;
    }
    return 1;
}

/* One update on the gathered segments: forward, (V-trace's targets,) the A3C loss, backward,
 * clipping, RMSProp, under train_mu; then the statistics, and the segments are freed. On failure
 * the segments stay in b (train_bufs_free frees them). wid: the trainer's id (the test hook's). */
static fg_status train_once(fg_ga3c *r, int wid, train_bufs *b) {
    size_t os = r->obs_size, cap = (size_t)r->train_cap, ecap = (size_t)r->exp_cap, A = (size_t)r->A;
    ga3c_segment **segs = b->segs;
    const size_t nseg = b->nseg, rows = b->rows;
    size_t *first = b->first, *brow = b->brow;
    float *adv = b->adv, *pi = b->pi, *prob = b->prob, *x = b->x, *logits = b->logits, *v = b->v, *ret = b->ret;
    float *dz = b->dz, *dv = b->dv, *dout = b->dout;
    int32_t *act = b->act;
    uint64_t *ver = b->ver;
    FG_ASSERT(rows <= ecap);
    size_t used = rows; /* rows holding states: the experiences, then V-trace's bootstrap states */
    if (r->cfg.vtrace)
        for (size_t j = 0; j < nseg; j++) {
            brow[j] = SIZE_MAX;
            if (!segs[j]->boot_state) continue;
            brow[j] = used;
            memcpy(x + used * os, segs[j]->boot_state, os * sizeof(float));
            used++;
        }
    FG_ASSERT(used <= cap);
    memset(x + used * os, 0, (cap - used) * os * sizeof(float));
    pthread_mutex_lock(&r->train_mu);
    fg_graph *g = r->train.g;
    fg_status s = fg_graph_set_input(g, r->train.x, x, cap * os * sizeof(float));
    if (s == FG_OK) s = fg_graph_forward(g);
    if (s == FG_OK) s = fg_graph_read(g, r->train.logits, logits, cap * A * sizeof(float));
    if (s == FG_OK) s = fg_graph_read(g, r->train.value, v, cap * sizeof(float));
    double loss = 0.0;
    uint64_t now = fg_graph_weights_version(g);
    if (s == FG_OK && r->cfg.vtrace) {
        /* targets from this forward: the current policy's probability of each action taken,
         * the current values, V of the bootstrap states (rows after the experiences) */
        for (size_t i = 0; i < rows; i++) {
            softmax_row(logits + i * A, (int)A, prob);
            pi[i] = prob[act[i]];
        }
        /* how far the policy moved: the truncated ratios' sum and how many were cut (pi < mu) */
        double rsum = 0.0, dev0 = 0.0;
        int64_t ncut = 0, n0 = 0;
        for (size_t j = 0, i = 0; j < nseg; j++)
            for (size_t t = 0; t < segs[j]->n; t++, i++) {
                double q = segs[j]->mu[t] > 1e-30f ? (double)pi[i] / (double)segs[j]->mu[t] : 1.0;
                rsum += q < 1.0 ? q : 1.0;
                ncut += q < 1.0;
                if (ver[i] == now) { /* predicted with these very weights: pi must be mu */
                    double d = fabs(log(q > 1e-300 ? q : 1e-300));
                    dev0 = d > dev0 ? d : dev0;
                    n0++;
                }
            }
        pthread_mutex_lock(&r->stats_mu);
        r->rho_sum += rsum;
        r->rho_cut += ncut;
        r->rho_n += (int64_t)rows;
        r->lag0_n += n0;
        r->lag0_dev = dev0 > r->lag0_dev ? dev0 : r->lag0_dev;
        pthread_mutex_unlock(&r->stats_mu);
        for (size_t j = 0; j < nseg; j++) {
            const ga3c_segment *sg = segs[j];
            size_t f = first[j];
            float boot = r->cfg.vtrace_boot == FG_GA3C_VTRACE_BOOT_CURRENT
                             ? (brow[j] == SIZE_MAX ? 0.0f : v[brow[j]])
                             : sg->boot_v;
            fg_ga3c_vtrace(sg->rewards, v + f, boot, pi + f, sg->mu, sg->n, r->cfg.discount, 1.0f, 1.0f, ret + f,
                           adv + f);
        }
    }
    if (s == FG_OK) {
        loss = fg_ga3c_loss_adv(logits, v, act, ret, r->cfg.vtrace ? adv : NULL, rows, (int)A, r->cfg.beta,
                                r->cfg.log_epsilon, dz, dv);
        /* dout row i = (dlogits_i, dvalue_i); padding rows stay zero, so they add nothing */
        for (size_t i = 0; i < rows; i++) {
            memcpy(dout + i * (A + 1), dz + i * A, A * sizeof(float));
            dout[i * (A + 1) + A] = dv[i];
        }
        memset(dout + rows * (A + 1), 0, (cap - rows) * (A + 1) * sizeof(float));
        s = fg_graph_set_input(g, r->train.dout, dout, cap * (A + 1) * sizeof(float));
    }
    if (s == FG_OK) {
        fg_graph_zero_grad(g);
        s = fg_graph_backward(g);
    }
    if (s == FG_OK) {
        /* the norm is measured unclipped too (max INFINITY), for the finiteness check */
        float clip = fg_ga3c_grad_clip(&r->cfg);
        double norm = fg_graph_clip_grad_norm(g, clip > 0 ? (double)clip : INFINITY);
        if (!isfinite(norm) || !isfinite(loss))
            s = fg_fail(FG_ERR_INVALID, "the loss or the gradient norm is not finite (loss %g, norm %g) after %lld "
                        "updates: lower --lr",
                        loss, norm, (long long)atomic_load(&r->updates));
    }
    if (s == FG_OK) {
        fg_optim_set_lr(r->opt, fg_ga3c_lr_at(&r->cfg, atomic_load(&r->frames)));
        s = fg_optim_step(r->opt);
    }
    long long u = 0;
    if (s == FG_OK) u = atomic_fetch_add(&r->updates, 1) + 1;
    pthread_mutex_unlock(&r->train_mu);
    if (s == FG_OK && wid == 0 && r->cfg.fail_after_updates > 0 && u >= r->cfg.fail_after_updates)
        s = fg_fail(FG_ERR_INVALID, "injected failure after %lld updates (fail_after_updates)", u);
    if (s != FG_OK) return s;
    atomic_fetch_add(&r->trainings, (long long)rows);
    pthread_mutex_lock(&r->stats_mu);
    r->loss_last = loss;
    r->train_hist[rows]++;
    for (size_t i = 0; i < rows; i++) {
        uint64_t lag = now - ver[i];
        r->lag_hist[lag < FG_GA3C_LAG_BINS - 1 ? lag : FG_GA3C_LAG_BINS - 1]++;
    }
    pthread_mutex_unlock(&r->stats_mu);
    for (size_t j = 0; j < nseg; j++) segment_free(segs[j]);
    b->nseg = 0;
    return FG_OK;
}

static void *trainer_main(void *arg) {
    ga3c_worker *w = arg;
    fg_ga3c *r = w->r;
    train_bufs b;
    char who[32];
    snprintf(who, sizeof who, "trainer %d", w->id);
    fg_threads_set(r->cfg.ops_threads);
    fg_status s = train_bufs_init(&b, r);
    if (s != FG_OK) {
        fail(r, s, who);
        return NULL;
    }
    for (;;) {
        park(r, 2, w->id);
        if (!gather(r, &b)) break;
        if ((s = train_once(r, w->id, &b)) != FG_OK) {
            fail(r, s, who);
            break;
        }
    }
    train_bufs_free(&b);
    return NULL;
}

/* ---------------------------------------------------------------- create, run, stop */

void fg_ga3c_config_init(fg_ga3c_config *c) {
    memset(c, 0, sizeof *c);
    fg_env_options_init(&c->env_opts);
    c->algo = FG_GA3C_ALGO_GA3C;
    c->net = FG_GA3C_NET_MINATAR;
    c->agents = 4;
    c->envs_per_agent = 1;
    c->predictors = 1;
    c->trainers = 1;
    c->max_prediction_batch = 128;
    c->min_training_batch = 32;
    c->t_max = 5;
    c->queue_size = 100;
    c->discount = 0.99f;
    c->gae_lambda = 1.0f;
    c->clip_rewards = 1;
    c->beta = 0.01f;
    c->log_epsilon = 1e-6f;
    c->lr = 3e-4f;
    c->lr_final = -1.0f;
    c->rmsprop_decay = 0.99f;
    c->rmsprop_eps = 0.1f;
    c->grad_clip = -1.0f;
    c->frames = 1000000;
    c->seed = 1;
    c->tune = FG_GA3C_TUNE_OFF;
    c->tune_window = 10.0;
    c->max_agents = 32;
    c->max_predictors = 4;
    c->max_trainers = 4;
    c->ops_threads = 1;
    c->progress_seconds = 2.0;
}

float fg_ga3c_grad_clip(const fg_ga3c_config *c) {
    if (c->grad_clip >= 0) return c->grad_clip;
    /* Clipping rescales an update as a whole. With an update per segment (GA3C, min batch 0) it
     * weights the segments by min(1, clip / norm): those ending in a termination, whose value
     * errors are the largest while V overestimates, count least, so the value regression stops
     * seeing what anchors V and V can climb without bound (measured in frugal/rl.h's comment).
     * GA3C's Config pairs TRAINING_MIN_BATCH_SIZE 0 with USE_GRAD_CLIP False; RMSProp already
     * bounds each weight's step to lr / sqrt(1 - decay). */
    return c->algo == FG_GA3C_ALGO_GA3C && c->min_training_batch == 0 ? 0.0f : 40.0f;
}

float fg_ga3c_lr_at(const fg_ga3c_config *c, int64_t frames) {
    if (c->lr_final < 0 || c->frames <= 0) return c->lr;
    /* frames can overshoot the total by the batches in flight when the run stops */
    double f = frames <= 0 ? 0.0 : frames >= c->frames ? 1.0 : (double)frames / (double)c->frames;
    return (float)((double)c->lr + ((double)c->lr_final - (double)c->lr) * f);
}

static fg_status check_config(const fg_ga3c_config *c) {
    if (!c->env) return fg_fail(FG_ERR_INVALID, "ga3c: no environment given");
    if (c->algo == FG_GA3C_ALGO_A3C && c->tune)
        return fg_fail(FG_ERR_INVALID, "ga3c: the tuner changes GA3C's agents, predictors and trainers; A3C has none");
    if (c->algo < 0 || c->algo >= FG_GA3C_ALGO_COUNT) return fg_fail(FG_ERR_INVALID, "ga3c: unknown algorithm %d", c->algo);
    if (c->vtrace && c->algo == FG_GA3C_ALGO_A3C)
        return fg_fail(FG_ERR_INVALID, "ga3c: V-trace corrects GA3C's policy lag; the A3C baseline trains on-policy");
    if (c->gae_lambda != 1.0f && c->algo == FG_GA3C_ALGO_A3C)
        return fg_fail(FG_ERR_INVALID, "ga3c: lambda-returns (gae_lambda %g) are GA3C's; the A3C baseline uses n-step "
                       "returns (gae_lambda 1)", (double)c->gae_lambda);
    if (c->gae_lambda != 1.0f && c->vtrace)
        return fg_fail(FG_ERR_INVALID, "ga3c: V-trace computes its own targets; gae_lambda must be 1 with it, not %g",
                       (double)c->gae_lambda);
    if (c->net < 0 || c->net >= FG_GA3C_NET_COUNT) return fg_fail(FG_ERR_INVALID, "ga3c: unknown network %d", c->net);
    if (c->lockstep && c->algo != FG_GA3C_ALGO_GA3C)
        return fg_fail(FG_ERR_INVALID, "ga3c: lockstep runs GA3C's agents, predictor and trainer in turn; the A3C "
                       "baseline has its own threads");
    if (c->lockstep && c->tune)
        return fg_fail(FG_ERR_INVALID, "ga3c: lockstep runs on one thread; the tuner changes thread counts (tune off)");
    if (c->lockstep && (c->predictors != 1 || c->trainers != 1))
        return fg_fail(FG_ERR_INVALID, "ga3c: lockstep has one predictor and one trainer; predictors %d and trainers "
                       "%d, expected 1 and 1", c->predictors, c->trainers);
    if (c->vtrace_boot < 0 || c->vtrace_boot >= FG_GA3C_VTRACE_BOOT_COUNT)
        return fg_fail(FG_ERR_INVALID, "ga3c: vtrace_boot is %d, expected behaviour (0) or current (1)", c->vtrace_boot);
/* f: the field of the configuration, named in the message as the CLI's option is (frames, lr, ...) */
#define RANGE(f, lo, hi)                                                                                                \
    if (!((c->f) >= (lo) && (c->f) <= (hi)))                                                                            \
        return fg_fail(FG_ERR_INVALID, "ga3c: " #f " is %g, must be in [%g, %g]", (double)(c->f), (double)(lo),          \
                       (double)(hi));
    RANGE(agents, 1, 1024)
    RANGE(envs_per_agent, 1, 4096)
    RANGE(predictors, 1, 64)
    RANGE(trainers, 1, 64)
    RANGE(max_prediction_batch, 2 * c->envs_per_agent, 1 << 16)
    RANGE(min_training_batch, 0, 1 << 16)
    RANGE(t_max, 1, 10000)
    RANGE(queue_size, 1, 1 << 24)
    RANGE(discount, 0, 1)
    RANGE(gae_lambda, 0, 1)
    RANGE(beta, 0, 1e3)
    RANGE(log_epsilon, 1e-30, 1)
    RANGE(lr, 1e-12, 10)
    if (!(c->lr_final < 0)) RANGE(lr_final, 0, 10) /* negative: no annealing; NaN is refused */
    if (!(c->rmsprop_decay >= 0 && c->rmsprop_decay < 1)) /* 1 would never forget: the optimizer refuses it */
        return fg_fail(FG_ERR_INVALID, "ga3c: rmsprop_decay is %g, must be in [0, 1)", (double)c->rmsprop_decay);
    RANGE(rmsprop_eps, 0, 10)
    if (!(c->grad_clip < 0)) RANGE(grad_clip, 0, 1e12) /* negative: fg_ga3c_grad_clip's choice */
    RANGE(frames, 1, 1e15)
    RANGE(progress_seconds, 0.01, 1e6)
    RANGE(ops_threads, 0, 1024)
    RANGE(tune, 0, FG_GA3C_TUNE_COUNT - 1)
    if (c->tune) {
        RANGE(tune_window, 0.05, 1e6)
        RANGE(max_agents, c->agents, 1024)
        RANGE(max_predictors, c->predictors, 64)
        RANGE(max_trainers, c->trainers, 64)
    }
#undef RANGE
    if (c->env_opts.obs_dtype != FG_F32)
        return fg_fail(FG_ERR_INVALID, "ga3c: the network takes float32 observations (env_opts.obs_dtype FG_F32)");
    return FG_OK;
}

static void agent_free(ga3c_agent *a) {
    a3c_local_free(a->a3c);
    if (a->env) fg_env_batch_destroy(a->env);
    free(a->obs), free(a->rewards), free(a->dones), free(a->actions), free(a->req_states), free(a->req_p),
        free(a->req_v), free(a->seg_states), free(a->seg_actions), free(a->seg_rewards), free(a->seg_versions), free(a->seg_mu), free(a->seg_v),
        free(a->seg_len), free(a->boot_pending), free(a->trunc_slot);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
}

static fg_status agent_init(fg_ga3c *r, ga3c_agent *a, int id) {
    const fg_ga3c_config *c = &r->cfg;
    a->r = r;
    a->id = id;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    size_t n = (size_t)c->envs_per_agent, os = r->obs_size, T = (size_t)c->t_max, A = (size_t)r->A;
    a->n = n;
    uint64_t s = c->seed * 0x9E3779B97F4A7C15ull + (uint64_t)id + 1;
    fg_rng_seed(&a->rng, s ^ 0xA5A5A5A5ull);
    FG_TRY(fg_env_batch_create(c->env, n, s, &c->env_opts, &a->env));
    a->obs = malloc(n * os * sizeof(float));
    a->rewards = malloc(n * sizeof(float));
    a->dones = malloc(n);
    a->actions = malloc(n * sizeof(int32_t));
    a->req_states = malloc(2 * n * os * sizeof(float));
    a->req_p = malloc(2 * n * A * sizeof(float));
    a->req_v = malloc(2 * n * sizeof(float));
    a->seg_states = malloc(n * T * os * sizeof(float));
    a->seg_actions = malloc(n * T * sizeof(int32_t));
    a->seg_rewards = malloc(n * T * sizeof(float));
    a->seg_versions = malloc(n * T * sizeof(uint64_t));
    a->seg_mu = malloc(n * T * sizeof(float));
    a->seg_v = malloc(n * T * sizeof(float));
    a->seg_len = calloc(n, sizeof(size_t));
    a->boot_pending = calloc(n, 1);
    a->trunc_slot = malloc(n * sizeof(size_t));
    if (!a->obs || !a->rewards || !a->dones || !a->actions || !a->req_states || !a->req_p || !a->req_v ||
        !a->seg_states || !a->seg_actions || !a->seg_rewards || !a->seg_versions || !a->seg_mu || !a->seg_v || !a->seg_len || !a->boot_pending ||
        !a->trunc_slot)
        return fg_fail(FG_ERR_OOM, "ga3c: out of host memory for agent %d", id);
    fg_env_batch_reset(a->env, a->obs);
    return FG_OK;
}

fg_status fg_ga3c_create(const fg_ga3c_config *cfg, fg_ga3c **out) {
    *out = NULL;
    FG_TRY(check_config(cfg));
    fg_ga3c *r = calloc(1, sizeof *r);
    if (!r) return fg_fail(FG_ERR_OOM, "ga3c: out of host memory");
    r->cfg = *cfg;
    snprintf(r->env_name, sizeof r->env_name, "%s", cfg->env);
    r->cfg.env = r->env_name;
    r->cfg.env_opts.obs_dtype = FG_F32;
    pthread_mutex_init(&r->train_mu, NULL);
    pthread_mutex_init(&r->err_mu, NULL);
    pthread_mutex_init(&r->stats_mu, NULL);
    pthread_mutex_init(&r->mon_mu, NULL);
    pthread_cond_init(&r->mon_cv, NULL);
    pthread_mutex_init(&r->tune_mu, NULL);
    pthread_cond_init(&r->tune_cv, NULL);
    r->n_agents = cfg->tune ? cfg->max_agents : cfg->agents;
    r->n_preds = cfg->tune ? cfg->max_predictors : cfg->predictors;
    r->n_trains = cfg->tune ? cfg->max_trainers : cfg->trainers;
    if (cfg->algo == FG_GA3C_ALGO_A3C) r->n_preds = r->n_trains = 0; /* its workers predict and train */
    atomic_store(&r->active[0], cfg->agents);
    atomic_store(&r->active[1], cfg->predictors);
    atomic_store(&r->active[2], cfg->trainers);
    fg_status s = FG_OK;
    /* agents first: an unknown environment fails here with the list of names */
    r->agents = calloc((size_t)r->n_agents, sizeof *r->agents);
    r->predictors = calloc((size_t)r->n_preds, sizeof *r->predictors);
    r->trainers = calloc((size_t)r->n_trains, sizeof *r->trainers);
    if (!r->agents || !r->predictors || !r->trainers) {
        s = fg_fail(FG_ERR_OOM, "ga3c: out of host memory");
        goto fail;
    }
    {
        fg_env_batch *probe;
        s = fg_env_batch_create(cfg->env, 1, cfg->seed, &r->cfg.env_opts, &probe);
        if (s != FG_OK) goto fail;
        r->obs_ndim = fg_env_batch_obs_shape(probe, r->obs_shape);
        r->obs_size = fg_env_batch_obs_size(probe);
        r->A = fg_env_batch_num_actions(probe);
        fg_env_batch_destroy(probe);
    }
    for (int i = 0; i < r->n_agents && s == FG_OK; i++) s = agent_init(r, &r->agents[i], i);
    if (s != FG_OK) goto fail;
    r->train_cap = (int64_t)cfg->min_training_batch + cfg->t_max - 1;
    if (r->train_cap < cfg->t_max) r->train_cap = cfg->t_max;
    if (cfg->algo == FG_GA3C_ALGO_A3C && r->train_cap < (int64_t)cfg->envs_per_agent * cfg->t_max)
        r->train_cap = (int64_t)cfg->envs_per_agent * cfg->t_max; /* an A3C update's rows */
    r->exp_cap = r->train_cap;
    if (cfg->vtrace && cfg->vtrace_boot == FG_GA3C_VTRACE_BOOT_CURRENT) r->train_cap = 2 * r->exp_cap;
    s = ga3c_net_build(&r->train, "ga3c", cfg->net, r->obs_ndim, r->obs_shape, r->A, r->train_cap, 1);
    if (s != FG_OK) goto fail;
    {
        fg_rng rng;
        fg_rng_seed(&rng, cfg->seed);
        fg_graph_init_params(r->train.g, &rng);
        fg_optim_cfg oc = fg_optim_defaults(FG_OPTIM_RMSPROP, cfg->lr);
        oc.alpha = cfg->rmsprop_decay;
        oc.eps = cfg->rmsprop_eps;
        oc.eps_inside_sqrt = 1;
        oc.momentum = 0.0f;
        s = fg_optim_create(&r->opt, r->train.g, &oc);
        if (s != FG_OK) goto fail;
    }
    /* predictor graphs at batch 1, 2, 4, ... and max_prediction_batch */
    r->n_sizes = 1;
    while ((1 << (r->n_sizes - 1)) < cfg->max_prediction_batch) r->n_sizes++;
    r->pred_nets = calloc((size_t)r->n_preds * (size_t)r->n_sizes, sizeof *r->pred_nets);
    if (!r->pred_nets) {
        s = fg_fail(FG_ERR_OOM, "ga3c: out of host memory");
        goto fail;
    }
    for (int p = 0; p < r->n_preds && s == FG_OK; p++)
        for (int j = 0; j < r->n_sizes && s == FG_OK; j++) {
            int64_t b = (int64_t)1 << j;
            if (b > cfg->max_prediction_batch) b = cfg->max_prediction_batch;
            char nm[48];
            snprintf(nm, sizeof nm, "ga3c_predict%d_b%lld", p, (long long)b);
            ga3c_net *net = &r->pred_nets[(size_t)p * (size_t)r->n_sizes + (size_t)j];
            s = ga3c_net_build(net, nm, cfg->net, r->obs_ndim, r->obs_shape, r->A, b, 0);
            if (s == FG_OK) s = fg_graph_share_weights(net->g, r->train.g);
        }
    if (cfg->algo == FG_GA3C_ALGO_A3C)
        for (int i = 0; i < r->n_agents && s == FG_OK; i++) s = a3c_local_init(r, &r->agents[i]);
    if (s != FG_OK) goto fail;
    s = ga3c_queue_init(&r->predq, (size_t)r->n_agents); /* one request per agent at most */
    if (s == FG_OK) {
        /* lockstep: nothing drains the queue during an agent's step, which flushes two segments per
         * environment at most, on top of fewer than min_training_batch waiting experiences */
        size_t tcap = cfg->queue_size;
        if (cfg->lockstep) tcap = (size_t)cfg->min_training_batch + 2 * (size_t)cfg->envs_per_agent + 1;
        s = ga3c_queue_init(&r->trainq, tcap);
    }
    if (s != FG_OK) goto fail;
    r->pred_hist = calloc((size_t)cfg->max_prediction_batch + 1, sizeof(int64_t));
    r->pred_snap = calloc((size_t)cfg->max_prediction_batch + 1, sizeof(int64_t));
    r->train_hist = calloc((size_t)r->train_cap + 1, sizeof(int64_t));
    r->train_snap = calloc((size_t)r->train_cap + 1, sizeof(int64_t));
    if (!r->pred_hist || !r->pred_snap || !r->train_hist || !r->train_snap) {
        s = fg_fail(FG_ERR_OOM, "ga3c: out of host memory");
        goto fail;
    }
    *out = r;
    return FG_OK;
fail:
    fg_ga3c_free(r);
    return s;
}

void fg_ga3c_stop(fg_ga3c *r) { halt(r); }

static void add_point(fg_ga3c *r) {
    if (r->curve_len == r->curve_cap) {
        size_t cap = r->curve_cap ? 2 * r->curve_cap : 64;
        fg_ga3c_point *c = realloc(r->curve, cap * sizeof *c);
        if (!c) return; /* the curve loses a point; the run goes on */
        r->curve = c;
        r->curve_cap = cap;
    }
    fg_ga3c_stats st;
    fg_ga3c_get_stats(r, &st);
    r->curve[r->curve_len++] = (fg_ga3c_point){st.frames, st.seconds, st.mean_return_last100};
}

/* ---------------------------------------------------------------- the tuner (on the monitor) */

void ga3c_tuner_init(ga3c_tuner *t, fg_ga3c_tune mode, const int maxn[3], uint64_t seed) {
    memset(t, 0, sizeof *t);
    t->mode = mode;
    fg_rng_seed(&t->rng, seed ^ 0x7E57ull);
    for (int k = 0; k < 3; k++) t->maxn[k] = maxn[k], t->dir[k] = 1;
}

/* OURS' move of count k from v in direction dir: agents double or halve (their best number spans
 * 1 to 32 and one window per unit step would never get there), predictors and trainers +-1; held
 * in 1..maxn. */
static int tuner_move(const ga3c_tuner *t, int k, int v, int dir) {
    int w = k == 0 ? (dir > 0 ? 2 * v : v / 2) : v + dir;
    return w < 1 ? 1 : w > t->maxn[k] ? t->maxn[k] : w;
}

/* OURS keeps a candidate only when its window beats the paired baseline by 5 %: windows of one
 * setting differ by up to ~15 % on two cores (docs/BENCHMARKS.md "The tuners from three starts"),
 * and a setting within a few % of the kept one is not worth the risk of a noisy move. */
#define TUNE_MARGIN 1.05

int ga3c_tuner_window(ga3c_tuner *t, const int cur[3], double rate, int next[3]) {
    int kept = 1;
    memcpy(next, cur, 3 * sizeof *next);
    if (t->mode == FG_GA3C_TUNE_GA3C) {
        if (t->phase == 1 && rate < t->prev_rate) {
            kept = 0;
            memcpy(next, t->old, 3 * sizeof *next);
        }
        t->prev_rate = rate; /* as GA3C: the next window is compared with this one, kept or not */
        memcpy(t->old, next, sizeof t->old);
        for (int tries = 0; tries < 32; tries++) {
            int diff = 0;
            for (int k = 0; k < 3; k++) {
                int v = t->old[k] + (int)fg_rng_below(&t->rng, 3) - 1;
                next[k] = v < 1 ? 1 : v > t->maxn[k] ? t->maxn[k] : v;
                diff |= next[k] != t->old[k];
            }
            if (diff) break;
        }
        t->phase = 1;
        return kept;
    }
    if (t->phase == 1) { /* a candidate's window, against the kept setting's just before it */
        kept = rate > TUNE_MARGIN * t->prev_rate;
        if (kept) {
            /* the same count again, the same way: one good doubling of the agents is often
             * followed by another */
            t->phase = 0;
            t->prev_rate = rate;
        } else {
            memcpy(next, t->old, 3 * sizeof *next);
            t->dir[t->dim] = -t->dir[t->dim];
            t->dim = (t->dim + 1) % 3;
            t->phase = 0;
            return 0;
        }
    } else {
        t->prev_rate = rate;
    }
    /* propose: the next count that can move (the other way when one way is blocked) */
    for (int tries = 0; tries < 3; tries++, t->dim = (t->dim + 1) % 3) {
        int k = t->dim, v = tuner_move(t, k, next[k], t->dir[k]);
        if (v == next[k]) {
            t->dir[k] = -t->dir[k];
            v = tuner_move(t, k, next[k], t->dir[k]);
        }
        if (v == next[k]) continue; /* this count cannot move */
        memcpy(t->old, next, sizeof t->old);
        next[k] = v;
        t->phase = 1;
        break;
    }
    return kept;
}

typedef struct tuner {
    ga3c_tuner d;
    double next, t_start;
    int64_t start_trainings;
} tuner;

static void set_active(fg_ga3c *r, const int n[3]) {
    pthread_mutex_lock(&r->tune_mu);
    for (int k = 0; k < 3; k++) atomic_store(&r->active[k], n[k]);
    pthread_cond_broadcast(&r->tune_cv);
    pthread_mutex_unlock(&r->tune_mu);
}

static void tune_log(fg_ga3c *r, double t, const int n[3], double tps, int kept) {
    if (r->tune_len == r->tune_cap) {
        size_t cap = r->tune_cap ? 2 * r->tune_cap : 32;
        fg_ga3c_tune_step *l = realloc(r->tune_log, cap * sizeof *l);
        if (!l) return; /* the log loses a line; tuning goes on */
        r->tune_log = l;
        r->tune_cap = cap;
    }
    r->tune_log[r->tune_len++] = (fg_ga3c_tune_step){t, n[0], n[1], n[2], tps, kept};
}

/* One window ended at `now`: judge it, set the next setting, start the next window. */
static void tune_window(fg_ga3c *r, tuner *t, double now) {
    int cur[3], nw[3];
    for (int k = 0; k < 3; k++) cur[k] = atomic_load(&r->active[k]);
    int64_t tr = atomic_load(&r->trainings);
    double rate = (double)(tr - t->start_trainings) / (now - t->t_start > 0 ? now - t->t_start : 1e-9);
    int kept = ga3c_tuner_window(&t->d, cur, rate, nw);
    tune_log(r, now - r->t0, cur, rate, kept);
    if (memcmp(nw, cur, sizeof cur) != 0) set_active(r, nw);
    t->t_start = now;
    t->start_trainings = tr;
    t->next = now + r->cfg.tune_window;
}

/* A learning-curve point and a progress call (the monitor's, every progress_seconds). */
static void progress_tick(fg_ga3c *r) {
    add_point(r);
    if (r->cfg.progress) {
        fg_ga3c_stats st;
        fg_ga3c_get_stats(r, &st);
        r->cfg.progress(r->cfg.progress_user, &st);
    }
}

/* The lockstep run (cfg.lockstep) on this thread: rounds of one step per agent, in id order, each
 * prediction served at once by predictor 0's graphs, and after every agent's step as many updates
 * as whole batches wait. Nothing here depends on timing except the progress calls. */
static void lockstep_run(fg_ga3c *r) {
    const fg_ga3c_config *c = &r->cfg;
    const long long need = c->min_training_batch > 0 ? c->min_training_batch : 1;
    const int threads = fg_threads_get();
    fg_threads_set(c->ops_threads);
    train_bufs tb;
    memset(&tb, 0, sizeof tb);
    fg_status s = pred_bufs_init(&r->ls_pred, r);
    if (s == FG_OK) s = train_bufs_init(&tb, r);
    if (s != FG_OK) fail(r, s, "lockstep");
    double next = r->t0 + c->progress_seconds;
    for (int i = 0; i < r->n_agents && !stopping(r); i++) agent_begin(&r->agents[i]);
    while (!stopping(r)) {
        for (int i = 0; i < r->n_agents && !stopping(r); i++) {
            if (atomic_load(&r->frames) >= c->frames) {
                halt(r); /* the frame budget is spent: a normal end */
                break;
            }
            if (!agent_step(&r->agents[i])) break;
            /* single-threaded: the experiences queued and not yet trained on are exactly this */
            while (!stopping(r) && atomic_load(&r->experiences) - atomic_load(&r->trainings) >= need) {
                if (!gather(r, &tb)) break;
                if ((s = train_once(r, 0, &tb)) != FG_OK) {
                    fail(r, s, "trainer 0");
                    break;
                }
            }
            double now = fg_time_now();
            if (now >= next) {
                progress_tick(r);
                next += c->progress_seconds;
                if (next < now) next = now + c->progress_seconds;
            }
        }
    }
    train_bufs_free(&tb);
    pred_bufs_free(&r->ls_pred);
    fg_threads_set(threads);
}

/* The run's end: its duration stops growing (fg_ga3c_get_stats after the run reports the run's
 * length), the curve's last point, and the first failure's status. */
static fg_status run_finish(fg_ga3c *r) {
    pthread_mutex_lock(&r->stats_mu);
    r->t_end = fg_time_now();
    pthread_mutex_unlock(&r->stats_mu);
    add_point(r);
    if (r->err != FG_OK) return fg_fail(r->err, "%s", r->errmsg);
    return FG_OK;
}

fg_status fg_ga3c_run(fg_ga3c *r) {
    if (r->ran) return fg_fail(FG_ERR_INVALID, "ga3c: fg_ga3c_run runs once per handle");
    pthread_mutex_lock(&r->stats_mu); /* fg_ga3c_get_stats may be called from another thread */
    r->ran = 1;
    r->t0 = fg_time_now();
    pthread_mutex_unlock(&r->stats_mu);
    const fg_ga3c_config *c = &r->cfg;
    if (c->lockstep) {
        lockstep_run(r);
        return run_finish(r);
    }
    for (int i = 0; i < r->n_trains; i++) {
        r->trainers[i] = (ga3c_worker){r, i, 0, 0};
        if (pthread_create(&r->trainers[i].th, NULL, trainer_main, &r->trainers[i]) != 0) {
            fail(r, fg_fail(FG_ERR_INVALID, "cannot start a thread"), "trainer");
            break;
        }
        r->trainers[i].started = 1;
    }
    for (int i = 0; i < r->n_preds && !stopping(r); i++) {
        r->predictors[i] = (ga3c_worker){r, i, 0, 0};
        if (pthread_create(&r->predictors[i].th, NULL, predictor_main, &r->predictors[i]) != 0) {
            fail(r, fg_fail(FG_ERR_INVALID, "cannot start a thread"), "predictor");
            break;
        }
        r->predictors[i].started = 1;
    }
    for (int i = 0; i < r->n_agents && !stopping(r); i++) {
        if (pthread_create(&r->agents[i].th, NULL, c->algo == FG_GA3C_ALGO_A3C ? a3c_main : agent_main, &r->agents[i]) !=
            0) {
            fail(r, fg_fail(FG_ERR_INVALID, "cannot start a thread"), "agent");
            break;
        }
        r->agents[i].started = 1;
    }
    /* the monitor: a learning-curve point and a progress call every progress_seconds */
    double next = r->t0 + c->progress_seconds;
    tuner tu;
    memset(&tu, 0, sizeof tu);
    ga3c_tuner_init(&tu.d, c->tune, (const int[3]){r->n_agents, r->n_preds, r->n_trains}, c->seed);
    tu.t_start = r->t0;
    tu.next = c->tune ? r->t0 + c->tune_window : INFINITY;
    pthread_mutex_lock(&r->mon_mu);
    while (!stopping(r)) {
        double now = fg_time_now();
        if (now >= tu.next) {
            pthread_mutex_unlock(&r->mon_mu);
            tune_window(r, &tu, now);
            pthread_mutex_lock(&r->mon_mu);
            continue;
        }
        if (now >= next) {
            pthread_mutex_unlock(&r->mon_mu);
            progress_tick(r);
            next += c->progress_seconds;
            if (next < now) next = now + c->progress_seconds;
            pthread_mutex_lock(&r->mon_mu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double wait = (next < tu.next ? next : tu.next) - now;
        ts.tv_sec += (time_t)wait;
        ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&r->mon_cv, &r->mon_mu, &ts);
    }
    pthread_mutex_unlock(&r->mon_mu);
    for (int i = 0; i < r->n_agents; i++)
        if (r->agents[i].started) pthread_join(r->agents[i].th, NULL), r->agents[i].started = 0;
    for (int i = 0; i < r->n_preds; i++)
        if (r->predictors[i].started) pthread_join(r->predictors[i].th, NULL), r->predictors[i].started = 0;
    for (int i = 0; i < r->n_trains; i++)
        if (r->trainers[i].started) pthread_join(r->trainers[i].th, NULL), r->trainers[i].started = 0;
    return run_finish(r);
}

void fg_ga3c_get_stats(fg_ga3c *r, fg_ga3c_stats *out) {
    memset(out, 0, sizeof *out);
    out->frames = atomic_load(&r->frames);
    out->predictions = atomic_load(&r->predictions);
    out->trainings = atomic_load(&r->trainings);
    out->updates = atomic_load(&r->updates);
    out->episodes = atomic_load(&r->episodes);
    out->experiences = atomic_load(&r->experiences);
    pthread_mutex_lock(&r->stats_mu);
    out->seconds = !r->ran ? 0.0 : (r->t_end > 0.0 ? r->t_end : fg_time_now()) - r->t0;
    size_t k = r->ret_count < 100 ? r->ret_count : 100;
    double sum = 0.0;
    for (size_t i = 0; i < k; i++) sum += r->ret_ring[i];
    out->mean_return_last100 = k ? sum / (double)k : NAN;
    out->loss_last = r->loss_last;
    memcpy(r->pred_snap, r->pred_hist, ((size_t)r->cfg.max_prediction_batch + 1) * sizeof(int64_t));
    memcpy(r->train_snap, r->train_hist, ((size_t)r->train_cap + 1) * sizeof(int64_t));
    memcpy(out->lag_hist, r->lag_hist, sizeof out->lag_hist);
    out->rho_mean = r->rho_n ? r->rho_sum / (double)r->rho_n : NAN;
    out->rho_cut_frac = r->rho_n ? (double)r->rho_cut / (double)r->rho_n : NAN;
    pthread_mutex_unlock(&r->stats_mu);
    out->pred_hist = r->pred_snap;
    out->pred_hist_len = r->cfg.max_prediction_batch + 1;
    out->train_hist = r->train_snap;
    out->train_hist_len = (int)r->train_cap + 1;
    out->curve = r->curve;
    out->curve_len = r->curve_len;
    out->agents = atomic_load(&r->active[0]);
    out->predictors = atomic_load(&r->active[1]);
    out->trainers = atomic_load(&r->active[2]);
    out->tune_log = r->tune_log;
    out->tune_len = r->tune_len;
}

fg_status fg_ga3c_save(fg_ga3c *r, const char *path) {
    char na[16], tm[16];
    snprintf(na, sizeof na, "%d", r->A);
    snprintf(tm, sizeof tm, "%d", r->cfg.net);
    const char *keys[3] = {"env", "n_actions", "net"}, *vals[3] = {r->env_name, na, tm};
    return fg_graph_save(r->train.g, r->opt, path, 3, keys, vals);
}

/* The environment the file was trained on (its "env" metadata) against this run's: another game
 * is refused on resume (its optimizer state and curve belong to that game); on load it is said
 * (weights of one MinAtar game fit another's network, which is a choice, e.g. for transfer, but
 * rarely the intended one). A file without the key (not written by fg_ga3c_save) passes. */
static fg_status check_env(const fg_ga3c *r, const char *path, int refuse) {
    fg_st_file *f = NULL;
    FG_TRY(fg_st_load_header(path, &f));
    const char *env = fg_st_meta(f, "env");
    fg_status s = FG_OK;
    if (env && strcmp(env, r->env_name) != 0) {
        if (refuse)
            s = fg_fail(FG_ERR_INVALID, "%s was trained on %s, this run is %s: resume it with that environment", path,
                        env, r->env_name);
        else
            fg_log(FG_LOG_WARN, "%s was trained on %s; loading its weights for %s", path, env, r->env_name);
    }
    fg_st_free(f);
    return s;
}

fg_status fg_ga3c_resume(fg_ga3c *r, const char *path) {
    if (r->ran) return fg_fail(FG_ERR_INVALID, "ga3c: resume before fg_ga3c_run");
    FG_TRY(check_env(r, path, 1));
    return fg_graph_load(r->train.g, r->opt, path);
}

fg_status fg_ga3c_load(fg_ga3c *r, const char *path) {
    if (r->ran) return fg_fail(FG_ERR_INVALID, "ga3c: load weights before fg_ga3c_run");
    FG_TRY(check_env(r, path, 0));
    return fg_graph_load(r->train.g, NULL, path);
}

int fg_ga3c_num_actions(const fg_ga3c *r) { return r->A; }

fg_status fg_ga3c_policy(fg_ga3c *r, const float *obs, size_t n, float *probs, float *values) {
    size_t cap = (size_t)r->train_cap, os = r->obs_size, A = (size_t)r->A;
    float *x = calloc(cap * os, sizeof(float)), *z = malloc(cap * A * sizeof(float)), *v = malloc(cap * sizeof(float));
    fg_status s = FG_OK;
    if (!x || !z || !v) s = fg_fail(FG_ERR_OOM, "ga3c: out of host memory for %zu states", cap);
    for (size_t i0 = 0; i0 < n && s == FG_OK; i0 += cap) {
        size_t m = n - i0 < cap ? n - i0 : cap;
        memcpy(x, obs + i0 * os, m * os * sizeof(float));
        memset(x + m * os, 0, (cap - m) * os * sizeof(float));
        pthread_mutex_lock(&r->train_mu);
        s = fg_graph_set_input(r->train.g, r->train.x, x, cap * os * sizeof(float));
        if (s == FG_OK) s = fg_graph_forward(r->train.g);
        if (s == FG_OK) s = fg_graph_read(r->train.g, r->train.logits, z, cap * A * sizeof(float));
        if (s == FG_OK) s = fg_graph_read(r->train.g, r->train.value, v, cap * sizeof(float));
        pthread_mutex_unlock(&r->train_mu);
        for (size_t i = 0; i < m && s == FG_OK; i++) {
            if (probs) softmax_row(z + i * A, (int)A, probs + (i0 + i) * A);
            if (values) values[i0 + i] = v[i];
        }
    }
    free(x), free(z), free(v);
    return s;
}

double ga3c_lag0_ratio_dev(fg_ga3c *r, int64_t *n) {
    pthread_mutex_lock(&r->stats_mu);
    double d = r->lag0_dev;
    *n = r->lag0_n;
    pthread_mutex_unlock(&r->stats_mu);
    return d;
}

int64_t ga3c_env_steps(const fg_ga3c *r) {
    int64_t n = 0;
    for (int i = 0; i < r->n_agents; i++) n += fg_env_batch_steps(r->agents[i].env);
    return n;
}

fg_env_batch *ga3c_agent_env(fg_ga3c *r, int i) {
    FG_ASSERT(i >= 0 && i < r->n_agents);
    return r->agents[i].env;
}

void fg_ga3c_free(fg_ga3c *r) {
    if (!r) return;
    if (r->predq.items) {
        ga3c_queue_destroy(&r->predq);
    }
    if (r->trainq.items) {
        void *it;
        /* segments queued when the run stopped */
        pthread_mutex_lock(&r->trainq.mu);
        while (r->trainq.count > 0) {
            it = r->trainq.items[r->trainq.head];
            r->trainq.head = (r->trainq.head + 1) % r->trainq.cap;
            r->trainq.count--;
            segment_free(it);
        }
        pthread_mutex_unlock(&r->trainq.mu);
        ga3c_queue_destroy(&r->trainq);
    }
    if (r->pred_nets)
        for (size_t i = 0; i < (size_t)r->n_preds * (size_t)r->n_sizes; i++) ga3c_net_free(&r->pred_nets[i]);
    free(r->pred_nets);
    if (r->opt) fg_optim_free(r->opt);
    ga3c_net_free(&r->train);
    if (r->agents)
        for (int i = 0; i < r->n_agents; i++)
            if (r->agents[i].r) agent_free(&r->agents[i]);
    free(r->agents), free(r->predictors), free(r->trainers);
    free(r->pred_hist), free(r->pred_snap), free(r->train_hist), free(r->train_snap), free(r->curve);
    pthread_mutex_destroy(&r->train_mu);
    pthread_mutex_destroy(&r->err_mu);
    pthread_mutex_destroy(&r->stats_mu);
    pthread_mutex_destroy(&r->mon_mu);
    pthread_cond_destroy(&r->mon_cv);
    pthread_mutex_destroy(&r->tune_mu);
    pthread_cond_destroy(&r->tune_cv);
    free(r->tune_log);
    free(r);
}
