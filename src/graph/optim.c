/* Optimizers over a graph's parameters, with PyTorch's update rules so training matches it step
 * for step: SGD with momentum (dampening 0) and L2 weight decay; Adam and AdamW (decoupled decay)
 * with bias correction; RMSProp, in PyTorch's form lr*g/(sqrt(v)+eps) or, for GA3C, TensorFlow's
 * lr*g/sqrt(v+eps). State buffers live in host memory: they are touched once per step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_impl.h"

struct fg_optim {
    fg_optim_cfg cfg;
    fg_graph *g;
    int n_moments;   /* buffers per param: SGD 1 (momentum), Adam 2, RMSProp 1 */
    int np;
    float **state;   /* np * n_moments buffers */
    char (*names)[FG_NAME_MAX + 16];
    int64_t *numel;
    int64_t t;
};

static const char *kind_names[FG_OPTIM_KIND_COUNT] = {"sgd", "adam", "adamw", "rmsprop"};
const char *fg_optim_kind_name(fg_optim_kind k) { return (k >= 0 && k < FG_OPTIM_KIND_COUNT) ? kind_names[k] : "?"; }

fg_status fg_optim_kind_parse(const char *s, fg_optim_kind *out) {
    for (int k = 0; k < FG_OPTIM_KIND_COUNT; k++)
        if (strcmp(s, kind_names[k]) == 0) {
            *out = (fg_optim_kind)k;
            return FG_OK;
        }
    return fg_fail(FG_ERR_INVALID, "optimizer '%s': expected one of sgd, adam, adamw, rmsprop", s);
}

fg_optim_cfg fg_optim_defaults(fg_optim_kind kind, float lr) {
    fg_optim_cfg c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.lr = lr;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    c.alpha = 0.99f;
    if (kind == FG_OPTIM_ADAMW) c.weight_decay = 0.01f;
    return c;
}

fg_status fg_optim_create(fg_optim **out, fg_graph *g, const fg_optim_cfg *cfg) {
    if (cfg->kind < 0 || cfg->kind >= FG_OPTIM_KIND_COUNT) return fg_fail(FG_ERR_INVALID, "optimizer: bad kind %d", (int)cfg->kind);
    /* the ranges PyTorch's optimizers check, with the decays below 1 (at 1 or above an average
     * never forgets, or grows, and the step is NaN or meaningless) */
    const char *kn = fg_optim_kind_name(cfg->kind);
    if (!(cfg->lr >= 0 && cfg->lr < INFINITY))
        return fg_fail(FG_ERR_INVALID, "optimizer %s: learning rate %g, expected a finite value >= 0", kn, cfg->lr);
    if (!(cfg->weight_decay >= 0 && cfg->weight_decay < INFINITY))
        return fg_fail(FG_ERR_INVALID, "optimizer %s: weight decay %g, expected a finite value >= 0", kn,
                       cfg->weight_decay);
    if (cfg->kind == FG_OPTIM_SGD && !(cfg->momentum >= 0 && cfg->momentum < 1))
        return fg_fail(FG_ERR_INVALID, "optimizer sgd: momentum %g, expected 0 <= momentum < 1", cfg->momentum);
    if ((cfg->kind == FG_OPTIM_ADAM || cfg->kind == FG_OPTIM_ADAMW) &&
        !(cfg->beta1 >= 0 && cfg->beta1 < 1 && cfg->beta2 >= 0 && cfg->beta2 < 1))
        return fg_fail(FG_ERR_INVALID, "optimizer %s: betas (%g, %g), expected each in [0, 1)", kn, cfg->beta1,
                       cfg->beta2);
    if (cfg->kind == FG_OPTIM_RMSPROP && !(cfg->alpha >= 0 && cfg->alpha < 1))
        return fg_fail(FG_ERR_INVALID, "optimizer rmsprop: alpha %g, expected 0 <= alpha < 1", cfg->alpha);
    if (cfg->kind != FG_OPTIM_SGD && !(cfg->eps >= 0 && cfg->eps < INFINITY))
        return fg_fail(FG_ERR_INVALID, "optimizer %s: eps %g, expected a finite value >= 0", kn, cfg->eps);
    if (!g->built) return fg_fail(FG_ERR_INVALID, "optimizer: graph '%s' is not built", g->name);
    if (g->loss == FG_NONE)
        return fg_fail(FG_ERR_INVALID, "optimizer: graph '%s' was built without a loss (for inference): it has no "
                       "gradients to step with", g->name);
    fg_optim *o = calloc(1, sizeof *o);
    if (!o) return fg_fail(FG_ERR_OOM, "optimizer: out of host memory");
    o->cfg = *cfg;
    o->g = g;
    o->np = g->np;
    o->n_moments = (cfg->kind == FG_OPTIM_ADAM || cfg->kind == FG_OPTIM_ADAMW) ? 2 : 1;
    if (cfg->kind == FG_OPTIM_SGD && cfg->momentum == 0.0f) o->n_moments = 0;
    int nb = o->np * o->n_moments;
    o->state = calloc((size_t)(nb ? nb : 1), sizeof(float *));
    o->names = calloc((size_t)(nb ? nb : 1), sizeof *o->names);
    o->numel = calloc((size_t)(nb ? nb : 1), sizeof(int64_t));
    if (!o->state || !o->names || !o->numel) {
        fg_optim_free(o);
        return fg_fail(FG_ERR_OOM, "optimizer: out of host memory");
    }
    static const char *mnames[3][2] = {{"momentum_buffer", ""}, {"exp_avg", "exp_avg_sq"}, {"square_avg", ""}};
    int row = cfg->kind == FG_OPTIM_SGD ? 0 : cfg->kind == FG_OPTIM_RMSPROP ? 2 : 1;
    for (int p = 0; p < o->np; p++) {
        const fg_tslot *s = &g->t[g->params[p]];
        for (int m = 0; m < o->n_moments; m++) {
            int b = p * o->n_moments + m;
            o->numel[b] = fg_tensor_numel(&s->info.t);
            o->state[b] = calloc((size_t)o->numel[b], sizeof(float));
            if (!o->state[b]) {
                fg_optim_free(o);
                return fg_fail(FG_ERR_OOM, "optimizer: out of host memory for state of %s", s->info.t.name);
            }
            snprintf(o->names[b], sizeof o->names[b], "%s.%s", s->info.t.name, mnames[row][m]);
        }
    }
    *out = o;
    return FG_OK;
}

void fg_optim_free(fg_optim *o) {
    if (!o) return;
    if (o->state)
        for (int b = 0; b < o->np * o->n_moments; b++) free(o->state[b]);
    free(o->state);
    free(o->names);
    free(o->numel);
    free(o);
}

static fg_status update(fg_optim *o) {
    const fg_optim_cfg *c = &o->cfg;
    fg_graph *g = o->g;
    o->t++;
    double bc1 = 1.0 - pow((double)c->beta1, (double)o->t), bc2 = 1.0 - pow((double)c->beta2, (double)o->t);
    for (int p = 0; p < o->np; p++) {
        fg_tslot *s = &g->t[g->params[p]];
        float *w = s->info.t.data;
        fg_id gid = s->info.grad;
        if (gid == FG_NONE) continue; /* a parameter that does not reach the loss */
        const float *gr = g->t[gid].info.t.data;
        int64_t n = fg_tensor_numel(&s->info.t);
        float *m0 = o->n_moments > 0 ? o->state[p * o->n_moments] : NULL;
        float *m1 = o->n_moments > 1 ? o->state[p * o->n_moments + 1] : NULL;
        switch (c->kind) {
        case FG_OPTIM_SGD:
#pragma omp parallel for if (n > 65536)
            for (int64_t i = 0; i < n; i++) {
                float d = gr[i] + c->weight_decay * w[i];
                if (m0) {
                    m0[i] = o->t == 1 ? d : c->momentum * m0[i] + d;
                    d = m0[i];
                }
                w[i] -= c->lr * d;
            }
            break;
        case FG_OPTIM_ADAM:
        case FG_OPTIM_ADAMW: {
            float step = (float)(c->lr / bc1);
            float sbc2 = (float)sqrt(bc2);
#pragma omp parallel for if (n > 65536)
            for (int64_t i = 0; i < n; i++) {
                float d = gr[i];
                if (c->kind == FG_OPTIM_ADAMW) w[i] *= 1.0f - c->lr * c->weight_decay;
                else d += c->weight_decay * w[i];
                m0[i] = c->beta1 * m0[i] + (1.0f - c->beta1) * d;
                m1[i] = c->beta2 * m1[i] + (1.0f - c->beta2) * d * d;
                float denom = sqrtf(m1[i]) / sbc2 + c->eps;
                w[i] -= step * m0[i] / denom;
            }
            break;
        }
        case FG_OPTIM_RMSPROP:
#pragma omp parallel for if (n > 65536)
            for (int64_t i = 0; i < n; i++) {
                float d = gr[i] + c->weight_decay * w[i];
                m0[i] = c->alpha * m0[i] + (1.0f - c->alpha) * d * d;
                float denom = c->eps_inside_sqrt ? sqrtf(m0[i] + c->eps) : sqrtf(m0[i]) + c->eps;
                w[i] -= c->lr * d / denom;
            }
            break;
        default: return fg_fail(FG_ERR_INVALID, "optimizer: bad kind");
        }
    }
    return FG_OK;
}

/* The write side of the weights lock: graphs sharing these weights never see half a step. */
fg_status fg_optim_step(fg_optim *o) {
    fg_weights_write_begin(o->g);
    fg_status s = update(o);
    fg_weights_write_end(o->g);
    return s;
}

int fg_optim_n_state(const fg_optim *o) { return o->np * o->n_moments; }
float *fg_optim_state(fg_optim *o, int i, const char **name, int64_t *numel) {
    FG_ASSERT(i >= 0 && i < o->np * o->n_moments);
    if (name) *name = o->names[i];
    if (numel) *numel = o->numel[i];
    return o->state[i];
}
int64_t fg_optim_steps(const fg_optim *o) { return o->t; }
void fg_optim_set_steps(fg_optim *o, int64_t steps) { o->t = steps; }
const fg_optim_cfg *fg_optim_get_cfg(const fg_optim *o) { return &o->cfg; }
void fg_optim_set_lr(fg_optim *o, float lr) { o->cfg.lr = lr; }
