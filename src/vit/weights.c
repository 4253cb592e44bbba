/* Weights of the vision transformers by name, from and to safetensors: Hugging Face checkpoints
 * (state_dict names) load into a graph built with those names (fg_segformer_build). The file is
 * checked against the graph as a whole before any byte is copied, so a checkpoint of another
 * variant, label count or naming fails with the first offending tensor named, and the graph keeps
 * its weights. The copy itself is fg_graph_load's (under the graph's weights lock). */
#include <string.h>

#include "frugal/io.h"
#include "frugal/vit.h"

static const char IGNORED_SUFFIX[] = ".num_batches_tracked";

static int ignored(const char *name) {
    const size_t n = strlen(name), s = sizeof IGNORED_SUFFIX - 1;
    return n >= s && strcmp(name + n - s, IGNORED_SUFFIX) == 0;
}

/* Whether the graph has a parameter or state named `name`. */
static int graph_wants(const fg_graph *g, const char *name) {
    const fg_id id = fg_graph_find(g, name);
    if (id == FG_NONE) return 0;
    const fg_tkind k = fg_graph_tinfo(g, id)->kind;
    return k == FG_T_PARAM || k == FG_T_STATE;
}

/* safetensors' dtype strings, in fg_st_dtype order */
static const char *const st_dtype_names[FG_ST_DTYPE_COUNT] = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16",
                                                               "I8",  "U8",  "BOOL", "U64", "U32", "U16"};

static const char *shape_text(char *buf, size_t cap, int ndim, const int64_t *shape) {
    return fg_shape_str(buf, cap, ndim, shape);
}

static fg_status check_fit(const fg_graph *g, const fg_st_file *f, const char *path) {
    char s1[96], s2[96];
    const int np = fg_graph_n_params(g), ns = fg_graph_n_states(g);
    for (int i = 0; i < np + ns; i++) {
        const fg_tensor *t = &fg_graph_tinfo(g, i < np ? fg_graph_param(g, i) : fg_graph_state(g, i - np))->t;
        if (!t->data)
            return fg_fail(FG_ERR_INVALID, "weights %s: graph '%s' is not built ('%s' has no storage yet)", path,
                           fg_graph_name(g), t->name);
        const fg_st_entry *e = fg_st_find(f, t->name);
        if (!e)
            return fg_fail(FG_ERR_FORMAT, "weights %s: missing tensor '%s' (graph '%s' needs F32 %s)", path, t->name,
                           fg_graph_name(g), shape_text(s1, sizeof s1, t->ndim, t->shape));
        int same = e->ndim == t->ndim && e->dtype == FG_ST_F32;
        for (int k = 0; same && k < t->ndim; k++) same = e->shape[k] == t->shape[k];
        if (!same)
            return fg_fail(FG_ERR_FORMAT, "weights %s: tensor '%s' is %s %s, graph '%s' needs F32 %s", path, t->name,
                           st_dtype_names[e->dtype], shape_text(s1, sizeof s1, e->ndim, e->shape),
                           fg_graph_name(g), shape_text(s2, sizeof s2, t->ndim, t->shape));
    }
    for (size_t i = 0; i < fg_st_count(f); i++) {
        const fg_st_entry *e = fg_st_at(f, i);
        if (ignored(e->name) || graph_wants(g, e->name)) continue;
        return fg_fail(FG_ERR_FORMAT, "weights %s: extra tensor '%s' %s that graph '%s' has no parameter or state for",
                       path, e->name, shape_text(s1, sizeof s1, e->ndim, e->shape), fg_graph_name(g));
    }
    return FG_OK;
}

fg_status fg_vit_weights_load(fg_graph *g, const char *path) {
    FG_ASSERT(g && path);
    fg_st_file *f = NULL;
    FG_TRY(fg_st_load(path, &f));
    fg_status s = check_fit(g, f, path);
    fg_st_free(f);
    if (s != FG_OK) return s;
    return fg_graph_load(g, NULL, path);
}

fg_status fg_vit_weights_save(fg_graph *g, const char *path) {
    FG_ASSERT(g && path);
    return fg_graph_save(g, NULL, path, 0, NULL, NULL);
}
