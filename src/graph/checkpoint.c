/* Checkpoints as safetensors: params and state under their graph names, optimizer buffers as
 * "optim.<param>.<moment>", metadata with the format, version, model and caller's keys. Loading
 * matches by name and checks every shape, so a checkpoint of another model is refused with the
 * name of the first tensor that does not fit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/io.h"
#include "graph/graph_impl.h"

#define CKPT_FORMAT "frugal-checkpoint"
#define CKPT_VERSION "1"

fg_status fg_graph_save(fg_graph *g, const fg_optim *o, const char *path, int n_meta, const char *const *meta_keys,
                        const char *const *meta_values) {
    fg_st_writer *w = NULL;
    FG_TRY(fg_st_writer_create(&w));
    fg_status s = FG_OK;
    char steps[32];
    s = fg_st_writer_meta(w, "format", CKPT_FORMAT);
    if (s == FG_OK) s = fg_st_writer_meta(w, "format_version", CKPT_VERSION);
    if (s == FG_OK) s = fg_st_writer_meta(w, "graph", g->name);
    for (int i = 0; s == FG_OK && i < n_meta; i++) s = fg_st_writer_meta(w, meta_keys[i], meta_values[i]);
    for (int i = 0; s == FG_OK && i < g->np + g->ns; i++) {
        fg_tslot *t = &g->t[i < g->np ? g->params[i] : g->states[i - g->np]];
        s = fg_st_writer_add(w, t->info.t.name, FG_ST_F32, t->info.t.ndim, t->info.t.shape, t->info.t.data);
    }
    char (*names)[FG_NAME_MAX + 32] = NULL;
    if (s == FG_OK && o) {
        int nb = fg_optim_n_state(o);
        names = calloc((size_t)(nb ? nb : 1), sizeof *names);
        if (!names) s = fg_fail(FG_ERR_OOM, "checkpoint: out of host memory");
        snprintf(steps, sizeof steps, "%lld", (long long)fg_optim_steps(o));
        if (s == FG_OK) s = fg_st_writer_meta(w, "optim.steps", steps);
        if (s == FG_OK) s = fg_st_writer_meta(w, "optim.kind", fg_optim_kind_name(fg_optim_get_cfg(o)->kind));
        for (int b = 0; s == FG_OK && b < nb; b++) {
            const char *nm;
            int64_t numel;
            float *d = fg_optim_state((fg_optim *)o, b, &nm, &numel);
            snprintf(names[b], sizeof names[b], "optim.%s", nm);
            s = fg_st_writer_add(w, names[b], FG_ST_F32, 1, &numel, d);
        }
    }
    if (s == FG_OK) s = fg_st_writer_save(w, path);
    free(names);
    fg_st_writer_free(w);
    return s;
}

fg_status fg_graph_load(fg_graph *g, fg_optim *o, const char *path) {
    if (g->owner)
        return fg_fail(FG_ERR_INVALID, "load: graph '%s' reads the weights of '%s'; load %s into that graph", g->name,
                       g->owner->name, path);
    fg_st_file *f = NULL;
    FG_TRY(fg_st_load(path, &f));
    fg_status s = FG_OK;
    fg_weights_write_begin(g);
    for (int i = 0; s == FG_OK && i < g->np + g->ns; i++) {
        fg_tslot *t = &g->t[i < g->np ? g->params[i] : g->states[i - g->np]];
        s = fg_st_read_f32(f, t->info.t.name, t->info.t.ndim, t->info.t.shape, t->info.t.data);
        if (s != FG_OK) s = fg_fail(s, "checkpoint %s does not fit graph '%s': %s", path, g->name, fg_last_error());
    }
    fg_weights_write_end(g);
    if (s == FG_OK && o) {
        const char *kind = fg_st_meta(f, "optim.kind");
        const char *steps = fg_st_meta(f, "optim.steps");
        if (!kind || !steps) s = fg_fail(FG_ERR_FORMAT, "checkpoint %s holds no optimizer state", path);
        else if (strcmp(kind, fg_optim_kind_name(fg_optim_get_cfg(o)->kind)) != 0)
            s = fg_fail(FG_ERR_FORMAT, "checkpoint %s holds %s optimizer state, the run uses %s", path, kind,
                        fg_optim_kind_name(fg_optim_get_cfg(o)->kind));
        for (int b = 0; s == FG_OK && b < fg_optim_n_state(o); b++) {
            const char *nm;
            int64_t numel;
            float *d = fg_optim_state(o, b, &nm, &numel);
            char full[FG_NAME_MAX + 32];
            snprintf(full, sizeof full, "optim.%s", nm);
            s = fg_st_read_f32(f, full, 1, &numel, d);
        }
        if (s == FG_OK) fg_optim_set_steps(o, strtoll(steps, NULL, 10));
    }
    fg_st_free(f);
    return s;
}
