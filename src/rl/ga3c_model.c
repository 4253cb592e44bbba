/* GA3C's model (issue 13, "Runtime"): the policy-value network built on the graph from an
 * environment's observation shape, the A3C loss of GA3C's NetworkVP with its gradient w.r.t. the
 * two heads, and the n-step discounted returns the agents compute.
 *
 * With V-trace (IMPALA, Espeholt et al. 2018) the returns become the v_s targets and the policy
 * term's advantage rho_s (r_s + discount v_{s+1} - V(x_s)), both from the trainer's own forward.
 *
 * The loss is computed here rather than as a graph op: it needs the chosen action's log
 * probability with a floor, the entropy with the same floor and a stop-gradient on the advantage,
 * none of which the graph has. Its gradient w.r.t. logits and value is fed into the graph through
 * the surrogate described in ga3c_impl.h, which is exact (the graph's backward from the heads is
 * the ordinary one). */
#include <math.h>
#include <string.h>

#include "rl/ga3c_impl.h"

/* ---------------------------------------------------------------- network */

fg_status ga3c_net_build(ga3c_net *n, const char *name, fg_ga3c_net kind, int obs_ndim, const int64_t *obs_shape,
                         int n_actions, int64_t batch, int train) {
    memset(n, 0, sizeof *n);
    n->batch = batch;
    n->n_actions = n_actions;
    n->dout = FG_NONE;
    FG_TRY(fg_pool_create(&n->pool, 0));
    fg_status s = fg_graph_create(&n->g, name);
    if (s != FG_OK) {
        fg_pool_destroy(n->pool);
        n->pool = NULL;
        return s;
    }
    fg_graph *g = n->g;
    int64_t xs[4] = {batch, 0, 0, 0};
    for (int d = 0; d < obs_ndim; d++) xs[1 + d] = obs_shape[d];
    n->x = fg_nn_input(g, "x", FG_F32, 1 + obs_ndim, xs);
    fg_id h;
    int64_t fc = kind == FG_GA3C_NET_ATARI ? 256 : 128;
    if (obs_ndim == 3) {
        /* x (B, C, 10, 10) */
        if (kind == FG_GA3C_NET_ATARI) {
            h = fg_nn_relu(g, "relu1", fg_layer_conv2d(g, "conv1", n->x, 16, 3, 1, 1, 1)); /* (B,16,10,10) */
            h = fg_nn_relu(g, "relu2", fg_layer_conv2d(g, "conv2", h, 32, 3, 2, 1, 1));    /* (B,32,5,5) */
        } else {
            h = fg_nn_relu(g, "relu1", fg_layer_conv2d(g, "conv1", n->x, 16, 3, 1, 0, 1)); /* (B,16,8,8) */
        }
        h = fg_nn_flatten(g, "flat", h);
    } else {
        h = n->x; /* (B, 4) */
    }
    h = fg_nn_relu(g, "relu_fc", fg_layer_linear(g, "fc", h, fc, 1));
    n->logits = fg_layer_linear(g, "policy", h, n_actions, 1); /* (B, A) */
    n->value = fg_layer_linear(g, "value", h, 1, 1);           /* (B, 1) */
    fg_id loss = FG_NONE;
    if (train) {
        fg_id heads[2] = {n->logits, n->value};
        fg_id cat = fg_nn_concat(g, "heads", heads, 2, 1); /* (B, A+1) */
        int64_t row[2] = {1, batch * (n_actions + 1)}, col[2] = {batch * (n_actions + 1), 1};
        fg_id flat = fg_nn_reshape(g, "heads_row", cat, 2, row);
        n->dout = fg_nn_input(g, "dout", FG_F32, 2, col);
        loss = fg_nn_matmul(g, "surrogate", flat, n->dout, 0, 0); /* (1, 1) */
    }
    fg_graph_mark_output(g, n->logits);
    fg_graph_mark_output(g, n->value);
    s = fg_graph_status(g);
    if (s != FG_OK) {
        fg_status r = fg_fail(s, "ga3c: building network '%s': %s", name, fg_graph_error(g));
        ga3c_net_free(n);
        return r;
    }
    fg_mem_policy p;
    s = fg_policy_network_wide(&p);
    if (s == FG_OK) s = fg_graph_build(g, loss, n->pool, &p);
    if (s != FG_OK) {
        ga3c_net_free(n);
        return s;
    }
    fg_graph_set_training(g, train);
    return FG_OK;
}

void ga3c_net_free(ga3c_net *n) {
    if (n->g) fg_graph_free(n->g);
    if (n->pool) fg_pool_destroy(n->pool);
    n->g = NULL;
    n->pool = NULL;
}

/* ---------------------------------------------------------------- returns and loss */

void fg_ga3c_returns(const float *rewards, size_t n, float bootstrap, float discount, int clip, float *out) {
    float R = bootstrap;
    for (size_t k = n; k-- > 0;) {
        float r = rewards[k];
        if (clip) r = r < -1.0f ? -1.0f : r > 1.0f ? 1.0f : r;
        R = r + discount * R;
        out[k] = R;
    }
}

void fg_ga3c_lambda_returns(const float *rewards, const float *values, size_t n, float bootstrap, float discount,
                            float lambda, int clip, float *out) {
    if (lambda == 1.0f) {
        fg_ga3c_returns(rewards, n, bootstrap, discount, clip, out);
        return;
    }
    float G = bootstrap, v_next = bootstrap;
    for (size_t k = n; k-- > 0;) {
        float r = rewards[k];
        if (clip) r = r < -1.0f ? -1.0f : r > 1.0f ? 1.0f : r;
        G = r + discount * ((1.0f - lambda) * v_next + lambda * G);
        v_next = values[k];
        out[k] = G;
    }
}

double fg_ga3c_loss(const float *logits, const float *value, const int32_t *actions, const float *returns, size_t B,
                    int A, float beta, float log_eps, float *dlogits, float *dvalue) {
    return fg_ga3c_loss_adv(logits, value, actions, returns, NULL, B, A, beta, log_eps, dlogits, dvalue);
}

void fg_ga3c_vtrace(const float *rewards, const float *values, float boot_value, const float *pi_a, const float *mu_a,
                    size_t n, float discount, float rho_bar, float c_bar, float *vs, float *adv) {
    double vs_next = boot_value, v_next = boot_value;
    for (size_t t = n; t-- > 0;) {
        double ratio = mu_a[t] > 1e-30f ? (double)pi_a[t] / (double)mu_a[t] : (double)rho_bar;
        double rho = ratio < rho_bar ? ratio : rho_bar, c = ratio < c_bar ? ratio : c_bar;
        double V = values[t];
        double delta = rho * (rewards[t] + discount * v_next - V);
        double v_s = V + delta + discount * c * (vs_next - v_next);
        adv[t] = (float)(rho * (rewards[t] + discount * vs_next - V));
        vs[t] = (float)v_s;
        vs_next = v_s;
        v_next = V;
    }
}

double fg_ga3c_loss_adv(const float *logits, const float *value, const int32_t *actions, const float *returns,
                        const float *advantages, size_t B, int A, float beta, float log_eps, float *dlogits,
                        float *dvalue) {
    double total = 0.0;
    float p[256], c[256];
    FG_ASSERT(A >= 1 && A <= 256);
    for (size_t i = 0; i < B; i++) {
        const float *z = logits + i * (size_t)A;
        int a = actions[i];
        FG_ASSERT(a >= 0 && a < A);
        /* pi = softmax(z), in double for the sum */
        float zmax = z[0];
        for (int k = 1; k < A; k++) zmax = z[k] > zmax ? z[k] : zmax;
        double sum = 0.0;
        for (int k = 0; k < A; k++) sum += exp((double)(z[k] - zmax));
        double H = 0.0, pc = 0.0;
        for (int k = 0; k < A; k++) {
            p[k] = (float)(exp((double)(z[k] - zmax)) / sum);
            /* c_k = d(p_k log max(p_k, eps)) / dp_k = log max(p_k, eps) + [p_k > eps] */
            double l = log(p[k] > log_eps ? (double)p[k] : (double)log_eps);
            H -= p[k] * l;
            c[k] = (float)(l + (p[k] > log_eps ? 1.0 : 0.0));
            pc += (double)p[k] * c[k];
        }
        double dvr = (double)returns[i] - (double)value[i];
        double adv = advantages ? (double)advantages[i] : dvr;
        double pa = p[a] > log_eps ? p[a] : log_eps;
        total += -log(pa) * adv - beta * H + 0.5 * dvr * dvr;
        if (dlogits) {
            float *dz = dlogits + i * (size_t)A;
            for (int k = 0; k < A; k++) {
                /* policy term: -adv * d log p_a / dz_k = -adv * ([k == a] - p_k), zero when the floor
                 * holds; entropy term: -beta * dH/dz_k = beta * p_k * (c_k - sum_j p_j c_j) */
                double g = p[a] > log_eps ? -adv * ((k == a ? 1.0 : 0.0) - p[k]) : 0.0;
                g += beta * p[k] * (c[k] - pc);
                dz[k] = (float)g;
            }
        }
        if (dvalue) dvalue[i] = (float)(-dvr); /* d 0.5 (R - V)^2 / dV */
    }
    return total;
}
