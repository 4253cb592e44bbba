/* Inside the GA3C runtime (src/rl/ga3c*.c): the policy-value network on the graph, shared by the
 * runtime (ga3c.c) and the model file (ga3c_model.c). Not a public header. */
#ifndef FRUGAL_RL_GA3C_IMPL_H
#define FRUGAL_RL_GA3C_IMPL_H

#include <pthread.h>

#include "frugal/graph.h"
#include "frugal/rl.h"

/* One graph of the network at one batch size. A training graph (train = 1) owns the weights and
 * ends in a surrogate loss: the graph has no A3C-loss op, so src/rl computes the loss and its
 * gradient w.r.t. the heads (fg_ga3c_loss) and feeds that gradient in as the input `dout`; the
 * graph's scalar "loss" is dot(concat(logits, value), dout), whose gradient w.r.t. logits and
 * value is exactly dout, so backward from it is backward from the heads seeded with the A3C
 * gradient. An inference graph (train = 0) has no dout and shares the trainer's weights. */
typedef struct ga3c_net {
    fg_graph *g;
    fg_pool *pool;
    fg_id x;       /* (B, obs...) f32 input */
    fg_id logits;  /* (B, A) */
    fg_id value;   /* (B, 1) */
    fg_id dout;    /* (B*(A+1), 1) input, training graph only; row i is (dlogits_i, dvalue_i) */
    int64_t batch;
    int n_actions;
} ga3c_net;

fg_status ga3c_net_build(ga3c_net *n, const char *name, fg_ga3c_net kind, int obs_ndim, const int64_t *obs_shape,
                         int n_actions, int64_t batch, int train);
void ga3c_net_free(ga3c_net *n);

/* A bounded blocking queue of pointers (mutex + two condition variables). push blocks while
 * full, pop blocks while empty; stop wakes every waiter and makes push and pop return at once
 * (what is still queued stays there for the owner to drain). */
typedef struct ga3c_queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    void **items;
    size_t cap, head, count;
    int stopped;
} ga3c_queue;

/* The weight of an item for ga3c_queue_pop_batch (states of a prediction request, experiences of
 * a segment). */
typedef size_t (*ga3c_weight_fn)(const void *item);

fg_status ga3c_queue_init(ga3c_queue *q, size_t cap);
void ga3c_queue_destroy(ga3c_queue *q);
/* 1 when queued, 0 when the queue was stopped (the item was not queued). */
int ga3c_queue_push(ga3c_queue *q, void *item);
/* Waits for at least one item, then takes items in order while fewer than max_items are taken
 * and the weights taken stay <= max_weight (the first item is always taken; weight NULL counts 1
 * each). Returns how many were written to out; 0 only when stopped. */
size_t ga3c_queue_pop_batch(ga3c_queue *q, void **out, size_t max_items, ga3c_weight_fn weight, size_t max_weight);
void ga3c_queue_stop(ga3c_queue *q);
size_t ga3c_queue_count(ga3c_queue *q);

/* Steps taken by all agents' environments (fg_env_batch_steps summed): tests hold the frame
 * count to it. */
int64_t ga3c_env_steps(const fg_ga3c *r);

/* Test seam: agent i's batch of environments (0 <= i < the agent count; asserted). Tests set up a
 * situation in it between fg_ga3c_create and fg_ga3c_run (e.g. CartPole's step counter one short
 * of its time limit, through fg_env_batch_state) and read its states and final observation after
 * the run; the runtime itself never calls this. */
fg_env_batch *ga3c_agent_env(fg_ga3c *r, int i);

/* V-trace runs: among the experiences a trainer took with the very weights their action was
 * sampled with (lag 0), how many (*n) and the largest |log(pi/mu)|: the trainer's pi of the
 * action taken against the behaviour probability the agent recorded, which must agree up to
 * rounding (tests hold mu to be the sampled action's probability, row for row). */
double ga3c_lag0_ratio_dev(fg_ga3c *r, int64_t *n);

/* The tuners' decisions, apart from the threads they steer (so that tests can drive them over a
 * made-up trainings-per-second landscape). Counts are (agents, predictors, trainers). */
typedef struct ga3c_tuner {
    fg_ga3c_tune mode;
    fg_rng rng;
    int maxn[3];
    int phase;        /* OURS: 0 measuring the kept setting, 1 a candidate; GA3C: 1 after a move */
    double prev_rate; /* GA3C: the previous window's; OURS: the paired baseline's */
    int old[3];       /* the setting to return to when a candidate is rejected */
    int dim, dir[3];  /* OURS: the count moved next and the direction that last helped each count */
} ga3c_tuner;

void ga3c_tuner_init(ga3c_tuner *t, fg_ga3c_tune mode, const int maxn[3], uint64_t seed);
/* A window ran the setting cur at rate trainings per second: writes the setting of the next
 * window to next and returns whether cur is kept (0: it was a candidate, now reverted). */
int ga3c_tuner_window(ga3c_tuner *t, const int cur[3], double rate, int next[3]);

#endif
