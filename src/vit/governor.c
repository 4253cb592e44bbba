/* The profile table's two uses (issue 14): its Pareto front (which configurations are worth
 * keeping: no other is both cheaper and better) and the governor, which picks, for a compute
 * budget given per inference in FLOPs or seconds, the most accurate configuration that fits. The
 * table comes from `frugal vit profile` (tools/cmd_vit.c): measured, not predicted. */
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
    size_t best = n, cheapest = 0;
    for (size_t i = 0; i < n; i++) {
        const double c = cost_of(&t[i], cost);
        if (c < cost_of(&t[cheapest], cost)) cheapest = i;
        if (c > budget) continue;
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
