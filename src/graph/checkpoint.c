/* Checkpoints as safetensors: params and state under their graph names, optimizer buffers as
 * "optim.<param>.<moment>", metadata with the format, version, model and caller's keys. Loading
 * matches by name and checks every shape, so a checkpoint of another model is refused with the
 * name of the first tensor that does not fit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frugal/io.h"
#include "graph/graph_impl.h"

#define CKPT_FORMAT "frugal-checkpoint"
#define CKPT_VERSION "1"

fg_status fg_graph_save(fg_graph *g, const fg_optim *o, const char *path, int n_meta, const char *const *meta_keys,
                        const char *const *meta_values) {
    if (!g->built)
        return fg_fail(FG_ERR_INVALID, "checkpoint %s: graph '%s' is not built (its weights have no storage yet)", path,
                       g->name);
    fg_st_writer *w = NULL;
    FG_TRY(fg_st_writer_create(&w));
    /* the library's own keys are the file's identity: a caller's "format" would make a
     * checkpoint that no loader recognises */
    static const char *const reserved[] = {"format", "format_version", "graph", "optim.steps", "optim.kind"};
    enum { n_reserved = sizeof reserved / sizeof reserved[0] };
    for (int i = 0; i < n_meta; i++)
        for (size_t r = 0; r < n_reserved; r++)
            if (meta_keys[i] && strcmp(meta_keys[i], reserved[r]) == 0) {
                fg_st_writer_free(w);
                char list[128] = "";
                for (size_t k = 0; k < n_reserved; k++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", reserved[k]);
                return fg_fail(FG_ERR_INVALID, "checkpoint %s: metadata key '%s' is the library's own (reserved: %s)",
                               path, meta_keys[i], list);
            }
    /* One version of the weights, state and optimizer buffers, also when another thread steps the
     * optimizer meanwhile (a GA3C checkpoint written while trainers update): the read side of the
     * weights' lock, held until the file is written (the writer reads the tensors at save). */
    fg_graph *lk = g->owner ? g->owner : g;
    int rc = pthread_rwlock_rdlock(&lk->wlock);
    FG_ASSERT_MSG(rc == 0, "weights lock: rdlock failed");
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
    pthread_rwlock_unlock(&lk->wlock);
    free(names);
    fg_st_writer_free(w);
    return s;
}

/* The check pass's last test of an entry that fits: every value finite (a NaN or an infinity in
 * a weights file means the run that wrote it had diverged; loading it would only fail later as a
 * divergence of this run, or print NaN results). */
static fg_status check_finite(const fg_st_file *f, const char *name, const char *path) {
    const fg_st_entry *e = fg_st_find(f, name);
    const unsigned char *p = e->data;
    int64_t bad = 0, first = -1;
    for (size_t i = 0; i + sizeof(float) <= e->nbytes; i += sizeof(float)) {
        float x;
        memcpy(&x, p + i, sizeof x); /* the file's buffer is not aligned in general */
        if (!isfinite(x) && bad++ == 0) first = (int64_t)(i / sizeof x);
    }
    if (bad == 0) return FG_OK;
    return fg_fail(FG_ERR_FORMAT, "checkpoint %s: tensor '%s' holds %lld non-finite values (NaN or infinity; the first "
                   "at element %lld of %lld): the run that wrote it had diverged", path, name, (long long)bad,
                   (long long)first, (long long)(e->nbytes / sizeof(float)));
}

/* The tensors fg_graph_load reads, in order: the graph's parameters and state (graph 1), then
 * (o != NULL) the optimizer's; checked only (copy 0: shape, dtype, finite values) or copied
 * (copy 1, after a check pass: cannot fail). */
static fg_status load_tensors(fg_graph *g, int graph, fg_optim *o, const fg_st_file *f, const char *path, int copy) {
    fg_status s = FG_OK;
    for (int i = 0; graph && s == FG_OK && i < g->np + g->ns; i++) {
        fg_tslot *t = &g->t[i < g->np ? g->params[i] : g->states[i - g->np]];
        s = fg_st_read_f32(f, t->info.t.name, t->info.t.ndim, t->info.t.shape, copy ? t->info.t.data : NULL);
        if (s != FG_OK) s = fg_fail(s, "checkpoint %s does not fit graph '%s': %s", path, g->name, fg_last_error());
        else if (!copy) s = check_finite(f, t->info.t.name, path);
    }
    for (int b = 0; s == FG_OK && o && b < fg_optim_n_state(o); b++) {
        const char *nm;
        int64_t numel;
        float *d = fg_optim_state(o, b, &nm, &numel);
        char full[FG_NAME_MAX + 32];
        snprintf(full, sizeof full, "optim.%s", nm);
        s = fg_st_read_f32(f, full, 1, &numel, copy ? d : NULL);
        if (s == FG_OK && !copy) s = check_finite(f, full, path);
    }
    return s;
}

/* All or nothing: every tensor and the optimizer's metadata are checked before anything is
 * written, so a checkpoint that does not fit leaves the graph and the optimizer as they were. */
fg_status fg_graph_load(fg_graph *g, fg_optim *o, const char *path) {
    if (!g->built)
        return fg_fail(FG_ERR_INVALID, "load %s: graph '%s' is not built (its weights have no storage yet)", path,
                       g->name);
    if (g->owner)
        return fg_fail(FG_ERR_INVALID, "load: graph '%s' reads the weights of '%s'; load %s into that graph", g->name,
                       g->owner->name, path);
    fg_st_file *f = NULL;
    FG_TRY(fg_st_load(path, &f));
    fg_status s = load_tensors(g, 1, NULL, f, path, 0);
    int64_t steps = 0;
    if (s == FG_OK && o) {
        const char *kind = fg_st_meta(f, "optim.kind");
        if (!kind || !fg_st_meta(f, "optim.steps"))
            s = fg_fail(FG_ERR_FORMAT, "checkpoint %s holds no optimizer state", path);
        else if (strcmp(kind, fg_optim_kind_name(fg_optim_get_cfg(o)->kind)) != 0)
            s = fg_fail(FG_ERR_FORMAT, "checkpoint %s holds %s optimizer state, the run uses %s", path, kind,
                        fg_optim_kind_name(fg_optim_get_cfg(o)->kind));
        else
            s = fg_st_meta_i64(f, "optim.steps", 0, INT64_MAX, &steps);
        if (s == FG_OK) s = load_tensors(g, 0, o, f, path, 0);
    }
    if (s == FG_OK) {
        fg_weights_write_begin(g);
        s = load_tensors(g, 1, o, f, path, 1);
        fg_weights_write_end(g);
        FG_ASSERT(s == FG_OK); /* checked above */
        if (o) fg_optim_set_steps(o, steps);
    }
    fg_st_free(f);
    return s;
}
