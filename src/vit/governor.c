/* The profile table's two uses (issue 14): its Pareto front (which configurations are worth
 * keeping: no other is both cheaper and better) and the governor, which picks, for a compute
 * budget given per inference in FLOPs or seconds, the most accurate configuration that fits. The
 * table comes from `frugal vit profile` (tools/cmd_vit.c): measured, not predicted.
 *
 * The run-time governor (fg_vit_governor_*) adds what a stream of inferences needs: the table's
 * latencies drift with other load on the cores, so it corrects them from the time of every
 * inference it is told (a drift shared by all entries and a correction per entry, both
 * exponentially weighted in log space) and keeps a safety margin that tracks a high quantile of
 * its own prediction error, sized from the deadline-miss target (vit.h has the formulas). Its
 * pick walks the entries in falling metric order and stops at the first that fits, so it costs
 * a few multiplications per entry looked at (bench/vit_governor.c measures it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/vit.h"

static double cost_of(const fg_vit_profile_entry *e, fg_vit_cost c) {
    return c == FG_VIT_COST_FLOPS ? e->flops : e->seconds;
}

size_t fg_vit_pareto(const fg_vit_profile_entry *t, size_t n, fg_vit_cost cost, uint8_t *on_front) {
    FG_ASSERT((t || n == 0) && on_front && cost < FG_VIT_COST_COUNT);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int dominated = 0;
        for (size_t j = 0; j < n && !dominated; j++) {
            if (j == i) continue;
            const double ci = cost_of(&t[i], cost), cj = cost_of(&t[j], cost);
            /* an exact tie (two knob sets with the same cost and metric) keeps the first only */
            dominated = cj <= ci && t[j].metric >= t[i].metric && (cj < ci || t[j].metric > t[i].metric || j < i);
        }
        on_front[i] = (uint8_t)!dominated;
        k += !dominated;
    }
    return k;
}

fg_status fg_vit_governor_pick(const fg_vit_profile_entry *t, size_t n, fg_vit_cost cost, double budget,
                               size_t *pick) {
    FG_ASSERT(pick && cost < FG_VIT_COST_COUNT);
    if (n == 0 || !t) return fg_fail(FG_ERR_INVALID, "governor: the profile table is empty");
    if (isnan(budget)) return fg_fail(FG_ERR_INVALID, "governor: the budget is NaN");
    size_t best = n, cheapest = 0;
    for (size_t i = 0; i < n; i++) {
        const double c = cost_of(&t[i], cost);
        if (c < cost_of(&t[cheapest], cost) || isnan(cost_of(&t[cheapest], cost))) cheapest = i;
        if (!(c <= budget)) continue; /* an entry of unknown (NaN) cost never fits */
        if (best == n || t[i].metric > t[best].metric ||
            (t[i].metric == t[best].metric && c < cost_of(&t[best], cost)))
            best = i;
    }
    if (best == n)
        return fg_fail(FG_ERR_INVALID, "governor: no configuration fits a budget of %g %s (the cheapest costs %g)", budget,
                       cost == FG_VIT_COST_FLOPS ? "FLOPs" : "seconds", cost_of(&t[cheapest], cost));
    *pick = best;
    return FG_OK;
}

/* ---------------------------------------------------------------- the run-time governor */

struct fg_vit_governor {
    fg_vit_governor_cfg cfg;
    size_t n;
    double *base;    /* [n] the table's seconds */
    double *corr;    /* [n] c_i, each entry's own correction (geometric mean 1 over the entries seen) */
    uint8_t *seen;   /* [n] measured at least once */
    double *metric;  /* [n] */
    size_t *order;   /* [n] entries by falling metric, then rising base seconds */
    double drift, margin;
    int64_t observed, missed;
};

fg_vit_governor_cfg fg_vit_governor_defaults(void) {
    fg_vit_governor_cfg c;
    c.miss_target = 0.01;
    c.drift_weight = 0.1;
    c.entry_weight = 0.03;
    c.clip = 2.0;
    c.margin_init = 1.1;
    c.margin_min = 1.0;
    c.margin_step = 0.1;
    return c;
}

/* Falling metric, then rising seconds, then index: the governor's walk. */
static int order_before(const fg_vit_governor *g, size_t a, size_t b) {
    if (g->metric[a] != g->metric[b]) return g->metric[a] > g->metric[b];
    if (g->base[a] != g->base[b]) return g->base[a] < g->base[b];
    return a < b;
}

fg_status fg_vit_governor_create(const fg_vit_profile_entry *t, size_t n, const fg_vit_governor_cfg *cfg,
                                 fg_vit_governor **out) {
    FG_ASSERT(out);
    *out = NULL;
    fg_vit_governor_cfg c = cfg ? *cfg : fg_vit_governor_defaults();
    if (n == 0 || !t) return fg_fail(FG_ERR_INVALID, "governor: the profile table is empty");
    if (!(c.miss_target > 0 && c.miss_target < 1))
        return fg_fail(FG_ERR_INVALID, "governor: miss_target %g is not in (0, 1)", c.miss_target);
    if (!(c.drift_weight >= 0 && c.drift_weight <= 1) || !(c.entry_weight >= 0 && c.entry_weight <= 1))
        return fg_fail(FG_ERR_INVALID, "governor: drift_weight %g and entry_weight %g must be in [0, 1]", c.drift_weight,
                       c.entry_weight);
    if (!(c.clip >= 1 && isfinite(c.clip))) return fg_fail(FG_ERR_INVALID, "governor: clip %g must be >= 1", c.clip);
    if (!(c.margin_min > 0 && isfinite(c.margin_min)) || !(c.margin_init >= c.margin_min && isfinite(c.margin_init)))
        return fg_fail(FG_ERR_INVALID, "governor: margins must be finite with 0 < margin_min (%g) <= margin_init (%g)",
                       c.margin_min, c.margin_init);
    if (!(c.margin_step >= 0 && c.margin_step <= 1))
        return fg_fail(FG_ERR_INVALID, "governor: margin_step %g is not in [0, 1]", c.margin_step);
    for (size_t i = 0; i < n; i++)
        if (!(t[i].seconds > 0 && isfinite(t[i].seconds)) || !isfinite(t[i].metric))
            return fg_fail(FG_ERR_INVALID, "governor: entry %zu has seconds %g and metric %g (expected seconds > 0, finite)",
                           i, t[i].seconds, t[i].metric);
    fg_vit_governor *g = calloc(1, sizeof *g);
    if (g) {
        g->base = malloc(n * sizeof *g->base);
        g->corr = malloc(n * sizeof *g->corr);
        g->seen = calloc(n, 1);
        g->metric = malloc(n * sizeof *g->metric);
        g->order = malloc(n * sizeof *g->order);
    }
    if (!g || !g->base || !g->corr || !g->seen || !g->metric || !g->order) {
        fg_vit_governor_free(g);
        return fg_fail(FG_ERR_OOM, "governor: out of memory for %zu entries", n);
    }
    g->cfg = c;
    g->n = n;
    for (size_t i = 0; i < n; i++) {
        g->base[i] = t[i].seconds;
        g->corr[i] = 1.0;
        g->metric[i] = t[i].metric;
        /* insertion sort: tables are small and this runs once */
        size_t at = i;
        while (at > 0 && order_before(g, i, g->order[at - 1])) {
            g->order[at] = g->order[at - 1];
            at--;
        }
        g->order[at] = i;
    }
    g->drift = 1.0;
    g->margin = c.margin_init;
    *out = g;
    return FG_OK;
}

void fg_vit_governor_free(fg_vit_governor *g) {
    if (!g) return;
    free(g->base);
    free(g->corr);
    free(g->seen);
    free(g->metric);
    free(g->order);
    free(g);
}

double fg_vit_governor_predict(const fg_vit_governor *g, size_t i) {
    FG_ASSERT(g && i < g->n);
    return g->base[i] * g->corr[i] * g->drift;
}

size_t fg_vit_governor_choose(const fg_vit_governor *g, double budget, int *fits) {
    FG_ASSERT(g && fits);
    const double scale = g->drift * g->margin;
    for (size_t k = 0; k < g->n; k++) {
        const size_t i = g->order[k];
        if (g->base[i] * g->corr[i] * scale <= budget) {
            *fits = 1;
            return i;
        }
    }
    size_t best = 0;
    for (size_t i = 1; i < g->n; i++)
        if (g->base[i] * g->corr[i] < g->base[best] * g->corr[best]) best = i;
    *fits = 0;
    return best;
}

static double clip_ratio(double r, double c) { return r < 1.0 / c ? 1.0 / c : r > c ? c : r; }

fg_status fg_vit_governor_observe(fg_vit_governor *g, size_t i, double seconds, double budget) {
    FG_ASSERT(g);
    if (i >= g->n) return fg_fail(FG_ERR_INVALID, "governor: entry %zu out of range (table of %zu)", i, g->n);
    if (!(seconds > 0 && isfinite(seconds)))
        return fg_fail(FG_ERR_INVALID, "governor: measured time %g s of entry %zu is not finite and > 0", seconds, i);
    if (isnan(budget)) return fg_fail(FG_ERR_INVALID, "governor: the budget of entry %zu's frame is NaN", i);
    const fg_vit_governor_cfg *c = &g->cfg;
    /* the margin: up by margin_step * (1 - q) in log space after a miss, down by margin_step * q
     * after a hit, q = miss_target / 2: in equilibrium a fraction q of the frames miss. Two kinds
     * of frames say nothing about the margin: those whose budget is below every prediction
     * (nothing could fit), and misses whose delay beyond the prediction alone exceeds the budget
     * (a preempted frame: no choice of entry would have met it, and raising the margin for it
     * only starves the frames that follow) */
    const double pred = fg_vit_governor_predict(g, i);
    double cheapest = INFINITY;
    for (size_t j = 0; j < g->n; j++) {
        const double pj = g->base[j] * g->corr[j];
        if (pj < cheapest) cheapest = pj;
    }
    if (cheapest * g->drift <= budget && !(seconds > budget && seconds - pred > budget)) {
        const double q = 0.5 * c->miss_target;
        g->margin *= exp(seconds > budget ? c->margin_step * (1.0 - q) : -c->margin_step * q);
        if (g->margin < c->margin_min) g->margin = c->margin_min;
    }
    const double r = clip_ratio(seconds / pred, c->clip);
    /* the shared drift takes its share of the ratio, the entry's correction a share of what remains */
    g->drift *= pow(r, c->drift_weight);
    g->corr[i] *= pow(clip_ratio(seconds / fg_vit_governor_predict(g, i), c->clip), c->entry_weight);
    g->seen[i] = 1;
    /* what the corrections of the entries seen have in common is drift: keep their geometric mean
     * at 1, so an entry run alone teaches the drift, not itself, and entries not run follow */
    double lsum = 0.0;
    size_t ns = 0;
    for (size_t j = 0; j < g->n; j++)
        if (g->seen[j]) {
            lsum += log(g->corr[j]);
            ns++;
        }
    const double gm = exp(lsum / (double)ns);
    for (size_t j = 0; j < g->n; j++)
        if (g->seen[j]) g->corr[j] /= gm;
    g->drift *= gm;
    g->observed++;
    g->missed += seconds > budget;
    return FG_OK;
}
void fg_vit_governor_get_stats(const fg_vit_governor *g, fg_vit_governor_stats *st) {
    FG_ASSERT(g && st);
    st->drift = g->drift;
    st->margin = g->margin;
    st->observed = g->observed;
    st->missed = g->missed;
}
