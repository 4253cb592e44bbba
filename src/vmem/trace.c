/* The memory-over-time trace: (time, device bytes in use, event, node, pass, tensor) at every
 * node boundary, every pool allocation and release (through the pool observer) and every link
 * event (issue by the executor, completion by a copy thread), kept in one growing array under a
 * mutex and written as CSV for the paper's memory-over-time figure. */
#include <stdlib.h>
#include <string.h>

#include "core/atomic_file.h"
#include "vmem/vmem_impl.h"

static const char *ev_names[FG_VMEM_EV_KIND_COUNT] = {"begin", "end", "alloc", "free", "offload_issue", "offload_done",
                                                       "prefetch_issue", "prefetch_done", "recompute"};

const char *fg_vmem_ev_kind_name(fg_vmem_ev_kind k) {
    return (k >= 0 && k < FG_VMEM_EV_KIND_COUNT) ? ev_names[k] : "?";
}

void fg_vmem_trace_init(fg_vmem_trace *tr, fg_vmem_trace_mode mode, size_t max) {
    memset(tr, 0, sizeof *tr);
    pthread_mutex_init(&tr->mu, NULL);
    tr->mode = mode;
    tr->max = max ? max : 1000000;
    tr->t0 = fg_time_now();
}

void fg_vmem_trace_destroy(fg_vmem_trace *tr) {
    free(tr->ev);
    tr->ev = NULL;
    pthread_mutex_destroy(&tr->mu);
}

void fg_vmem_trace_restart(fg_vmem_trace *tr) {
    pthread_mutex_lock(&tr->mu);
    tr->n = 0;
    tr->truncated = 0;
    tr->t0 = fg_time_now();
    pthread_mutex_unlock(&tr->mu);
}

void fg_vmem_trace_add(fg_vmem_trace *tr, double t, size_t device_bytes, fg_vmem_ev_kind kind, int node, fg_pass pass,
                       fg_id tensor) {
    if (tr->mode == FG_VMEM_TRACE_OFF) return;
    pthread_mutex_lock(&tr->mu);
    if (tr->n == tr->max) {
        tr->truncated = 1;
    } else {
        if (tr->n == tr->cap) {
            size_t nc = tr->cap ? 2 * tr->cap : 1024;
            if (nc > tr->max) nc = tr->max;
            fg_vmem_trace_event *ne = realloc(tr->ev, nc * sizeof *ne);
            if (!ne) {
                tr->truncated = 1; /* a trace is best effort: never fail training for it */
                pthread_mutex_unlock(&tr->mu);
                return;
            }
            tr->ev = ne;
            tr->cap = nc;
        }
        tr->ev[tr->n++] = (fg_vmem_trace_event){t - tr->t0, device_bytes, kind, node, pass, tensor};
    }
    pthread_mutex_unlock(&tr->mu);
}

size_t fg_vmem_trace_copy(fg_vmem_trace *tr, fg_vmem_trace_event *dst, size_t cap) {
    pthread_mutex_lock(&tr->mu);
    size_t n = tr->n < cap ? tr->n : cap;
    if (n) memcpy(dst, tr->ev, n * sizeof *dst);
    pthread_mutex_unlock(&tr->mu);
    return n;
}

size_t fg_vmem_trace_size(fg_vmem_trace *tr) {
    pthread_mutex_lock(&tr->mu);
    size_t n = tr->n;
    pthread_mutex_unlock(&tr->mu);
    return n;
}

fg_status fg_vmem_trace_write_file(fg_vmem_trace *tr, const fg_graph *g, const char *path) {
    size_t n = fg_vmem_trace_size(tr);
    fg_vmem_trace_event *ev = malloc((n ? n : 1) * sizeof *ev);
    if (!ev) return fg_fail(FG_ERR_OOM, "trace: out of host memory for %zu events", n);
    n = fg_vmem_trace_copy(tr, ev, n);
    fg_atomic_file af;
    fg_status s = fg_atomic_open(&af, path);
    if (s != FG_OK) {
        free(ev);
        return s;
    }
    const char *hdr = "t_seconds,device_bytes,event,node,pass,tensor\n";
    s = fg_atomic_write(&af, hdr, strlen(hdr));
    char line[256];
    for (size_t i = 0; i < n && s == FG_OK; i++) {
        const fg_vmem_trace_event *e = &ev[i];
        const char *node = e->node >= 0 && e->node < fg_graph_n_nodes(g) ? fg_graph_node(g, e->node)->name : "";
        const char *tn = e->tensor >= 0 && e->tensor < fg_graph_n_tensors(g) ? fg_graph_tinfo(g, e->tensor)->t.name : "";
        int len = snprintf(line, sizeof line, "%.9f,%zu,%s,%s,%s,%s\n", e->t, e->device_bytes, fg_vmem_ev_kind_name(e->kind),
                           node, e->node < 0 ? "" : (e->pass == FG_FORWARD ? "forward" : "backward"), tn);
        if (len < 0 || (size_t)len >= sizeof line) len = (int)strlen(line);
        s = fg_atomic_write(&af, line, (size_t)len);
    }
    free(ev);
    if (s != FG_OK) return s; /* fg_atomic_write already removed the temporary file */
    return fg_atomic_commit(&af);
}
