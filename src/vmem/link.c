/* The link between the device and the tiers below it: copy threads serving two request queues,
 * "out" (offloads: device -> host by memcpy, device -> spill file by pwrite) and "in" (prefetches:
 * host -> device by memcpy, spill file -> device by pread). This is vDNN's second CUDA stream:
 * a request is cudaMemcpyAsync, its event is what cudaStreamSynchronize waits for.
 *
 * Pacing: when a bandwidth is set, a copy thread that finishes a request early sleeps until
 * start + latency + bytes / bandwidth, so one copy thread models one DMA engine of that speed
 * (PCIe 3.0 x16 ~ 12 GB/s) and GPU-like ratios of compute to transfer can be reproduced. The
 * modelled time is recorded per request, independent of how long the memcpy really took.
 *
 * Concurrency: one mutex guards both queues, the stats and every event's completion fields;
 * copy threads do the copy itself outside the lock. Waiting on an event is the only way the
 * caller reads the destination, and it takes the mutex after the copy thread released it, so
 * the bytes are ordered (and ThreadSanitizer sees the happens-before). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmem/vmem_impl.h"

#define LINK_MSG_MAX 1024
#define LINK_PATH_MAX 512

struct fg_vmem_event {
    fg_vmem_dir dir;
    void *dst;
    const void *src;
    size_t bytes;
    int fd;
    int64_t off;
    char path[LINK_PATH_MAX];
    char what[FG_NAME_MAX];
    int64_t tag;
    double model_s;
    /* completion, under the link mutex */
    int done;
    fg_status status;
    char msg[LINK_MSG_MAX];
    fg_vmem_event *qnext;              /* request queue */
    fg_vmem_event *lprev, *lnext;      /* every live (not yet waited) event, for destroy */
};

typedef struct link_queue {
    fg_vmem_event *head, *tail;
    pthread_cond_t work;
} link_queue;

struct fg_vmem_link {
    pthread_mutex_t mu;
    pthread_cond_t done_cv;
    link_queue q[2]; /* 0 = out, 1 = in */
    int stop;
    int n_threads[2];
    pthread_t *threads;
    int n_started;
    fg_vmem_event *live;
    fg_vmem_link_stats st;
    double gbps, latency_s;
    fg_vmem_link_observer obs; /* set before the first submit */
    void *obs_user;
};

typedef struct link_worker_arg {
    fg_vmem_link *l;
    int q;
} link_worker_arg;

static int dir_queue(fg_vmem_dir d) { return (d == FG_VMEM_D2H || d == FG_VMEM_D2DISK) ? 0 : 1; }

static void sleep_until(double target) {
    for (;;) {
        double left = target - fg_time_now();
        if (left <= 0) return;
        struct timespec ts;
        ts.tv_sec = (time_t)left;
        ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
        nanosleep(&ts, NULL);
    }
}

/* Runs one request outside the lock; fills status/msg (the event is owned by this thread until
 * `done` is published). */
static void do_copy(fg_vmem_event *e) {
    e->status = FG_OK;
    e->msg[0] = 0;
    if (e->dir == FG_VMEM_D2H || e->dir == FG_VMEM_H2D) {
        if (e->bytes) memcpy(e->dst, e->src, e->bytes);
        return;
    }
    size_t done = 0;
    if (e->dir == FG_VMEM_D2DISK) {
        const unsigned char *p = e->src;
        while (done < e->bytes) {
            ssize_t w = pwrite(e->fd, p + done, e->bytes - done, (off_t)(e->off + (int64_t)done));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                int err = w < 0 ? errno : ENOSPC;
                e->status = FG_ERR_IO;
                snprintf(e->msg, sizeof e->msg,
                         "disk tier: writing '%s' to spill file '%s' failed after %zu of %zu bytes: %s", e->what,
                         e->path, done, e->bytes, strerror(err));
                return;
            }
            done += (size_t)w;
        }
    } else {
        unsigned char *p = e->dst;
        while (done < e->bytes) {
            ssize_t r = pread(e->fd, p + done, e->bytes - done, (off_t)(e->off + (int64_t)done));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                e->status = FG_ERR_IO;
                snprintf(e->msg, sizeof e->msg,
                         "disk tier: reading '%s' back from spill file '%s' failed after %zu of %zu bytes: %s", e->what,
                         e->path, done, e->bytes, r < 0 ? strerror(errno) : "unexpected end of file");
                return;
            }
            done += (size_t)r;
        }
    }
}

static void *worker(void *argp) {
    link_worker_arg *arg = argp;
    fg_vmem_link *l = arg->l;
    link_queue *q = &l->q[arg->q];
    free(arg);
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!q->head && !l->stop) pthread_cond_wait(&q->work, &l->mu);
        if (!q->head) break; /* stop requested and nothing left to do */
        fg_vmem_event *e = q->head;
        q->head = e->qnext;
        if (!q->head) q->tail = NULL;
        pthread_mutex_unlock(&l->mu);

        double t0 = fg_time_now();
        do_copy(e);
        if (e->model_s > 0) sleep_until(t0 + e->model_s);
        double busy = fg_time_now() - t0;
        /* before publishing `done`: after it the waiter may free e */
        if (l->obs) l->obs(l->obs_user, e->dir, e->bytes, e->tag, e->status);

        pthread_mutex_lock(&l->mu);
        e->done = 1;
        l->st.n_copies++;
        l->st.busy_seconds += busy;
        l->st.model_seconds += e->model_s;
        if (e->status == FG_OK) {
            if (dir_queue(e->dir) == 0) l->st.bytes_offloaded += e->bytes;
            else l->st.bytes_prefetched += e->bytes;
            if (e->dir == FG_VMEM_D2DISK) l->st.bytes_to_disk += e->bytes;
            if (e->dir == FG_VMEM_DISK2D) l->st.bytes_from_disk += e->bytes;
        }
        pthread_cond_broadcast(&l->done_cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void link_stop(fg_vmem_link *l) {
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->q[0].work);
    pthread_cond_broadcast(&l->q[1].work);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->n_started; i++) pthread_join(l->threads[i], NULL);
    l->n_started = 0;
}

fg_status fg_vmem_check_rate(const char *what, double gbps, double latency_us) {
    if (!(gbps >= 0 && gbps < INFINITY && latency_us >= 0 && latency_us < INFINITY))
        return fg_fail(FG_ERR_INVALID, "%s: bandwidth %g GB/s and latency %g us, expected finite values >= 0", what,
                       gbps, latency_us);
    return FG_OK;
}

fg_status fg_vmem_link_create(fg_vmem_link **out, const fg_vmem_link_cfg *cfg) {
    *out = NULL;
    FG_TRY(fg_vmem_check_rate("link", cfg->gbps, cfg->latency_us));
    if (cfg->threads_out > FG_VMEM_MAX_COPY_THREADS || cfg->threads_in > FG_VMEM_MAX_COPY_THREADS)
        return fg_fail(FG_ERR_INVALID, "link: %d offload and %d prefetch threads, expected at most %d each",
                       cfg->threads_out, cfg->threads_in, FG_VMEM_MAX_COPY_THREADS);
    fg_vmem_link *l = calloc(1, sizeof *l);
    if (!l) return fg_fail(FG_ERR_OOM, "link: out of host memory");
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->done_cv, NULL);
    pthread_cond_init(&l->q[0].work, NULL);
    pthread_cond_init(&l->q[1].work, NULL);
    l->gbps = cfg->gbps;
    l->latency_s = cfg->latency_us * 1e-6;
    l->n_threads[0] = cfg->threads_out > 0 ? cfg->threads_out : 1;
    l->n_threads[1] = cfg->threads_in > 0 ? cfg->threads_in : 1;
    l->threads = calloc((size_t)(l->n_threads[0] + l->n_threads[1]), sizeof(pthread_t));
    if (!l->threads) {
        fg_vmem_link_destroy(l);
        return fg_fail(FG_ERR_OOM, "link: out of host memory");
    }
    for (int q = 0; q < 2; q++)
        for (int i = 0; i < l->n_threads[q]; i++) {
            link_worker_arg *a = malloc(sizeof *a);
            int rc = a ? 0 : ENOMEM;
            if (a) {
                a->l = l;
                a->q = q;
                rc = pthread_create(&l->threads[l->n_started], NULL, worker, a);
                if (rc) free(a);
            }
            if (rc) {
                fg_vmem_link_destroy(l);
                return fg_fail(FG_ERR_OOM, "link: cannot start a copy thread: %s", strerror(rc));
            }
            l->n_started++;
        }
    *out = l;
    return FG_OK;
}

void fg_vmem_link_destroy(fg_vmem_link *l) {
    if (!l) return;
    link_stop(l);
    while (l->live) {
        fg_vmem_event *e = l->live;
        l->live = e->lnext;
        free(e);
    }
    pthread_cond_destroy(&l->q[0].work);
    pthread_cond_destroy(&l->q[1].work);
    pthread_cond_destroy(&l->done_cv);
    pthread_mutex_destroy(&l->mu);
    free(l->threads);
    free(l);
}

fg_status fg_vmem_link_submit(fg_vmem_link *l, fg_vmem_dir dir, void *dst, const void *src, size_t bytes, int fd,
                              int64_t off, const char *path, const char *what, int64_t tag, fg_vmem_event **ev) {
    *ev = NULL;
    FG_ASSERT(dir >= 0 && dir < FG_VMEM_DIR_COUNT);
    FG_ASSERT_MSG(bytes == 0 || ((dir == FG_VMEM_D2DISK || dst) && (dir == FG_VMEM_DISK2D || src)),
                  "link: NULL buffer for a non-empty copy");
    if ((dir == FG_VMEM_D2DISK || dir == FG_VMEM_DISK2D) && fd < 0)
        return fg_fail(FG_ERR_INVALID, "link: a disk copy of '%s' needs an open spill file", what ? what : "a tensor");
    fg_vmem_event *e = calloc(1, sizeof *e);
    if (!e) return fg_fail(FG_ERR_OOM, "link: out of host memory for a copy request");
    e->dir = dir;
    e->dst = dst;
    e->src = src;
    e->bytes = bytes;
    e->fd = fd;
    e->off = off;
    snprintf(e->path, sizeof e->path, "%s", path ? path : "");
    snprintf(e->what, sizeof e->what, "%s", what ? what : "a tensor");
    e->tag = tag;
    e->model_s = l->gbps > 0 ? l->latency_s + (double)bytes / (l->gbps * 1e9) : 0.0;
    int q = dir_queue(dir);
    pthread_mutex_lock(&l->mu);
    e->lnext = l->live;
    if (l->live) l->live->lprev = e;
    l->live = e;
    if (l->q[q].tail) l->q[q].tail->qnext = e;
    else l->q[q].head = e;
    l->q[q].tail = e;
    pthread_cond_signal(&l->q[q].work);
    pthread_mutex_unlock(&l->mu);
    *ev = e;
    return FG_OK;
}

fg_status fg_vmem_event_wait(fg_vmem_link *l, fg_vmem_event *e) {
    FG_ASSERT(e);
    pthread_mutex_lock(&l->mu);
    if (!e->done) {
        double t0 = fg_time_now();
        while (!e->done) pthread_cond_wait(&l->done_cv, &l->mu);
        l->st.stall_seconds += fg_time_now() - t0;
    }
    if (e->lprev) e->lprev->lnext = e->lnext;
    else l->live = e->lnext;
    if (e->lnext) e->lnext->lprev = e->lprev;
    pthread_mutex_unlock(&l->mu);
    fg_status s = e->status;
    if (s != FG_OK) fg_fail(s, "%s", e->msg);
    free(e);
    return s;
}

int fg_vmem_event_done(fg_vmem_link *l, const fg_vmem_event *e) {
    pthread_mutex_lock(&l->mu);
    int d = e->done;
    pthread_mutex_unlock(&l->mu);
    return d;
}

void fg_vmem_link_set_observer(fg_vmem_link *l, fg_vmem_link_observer fn, void *user) {
    pthread_mutex_lock(&l->mu);
    l->obs = fn;
    l->obs_user = user;
    pthread_mutex_unlock(&l->mu);
}

double fg_vmem_event_model_seconds(const fg_vmem_event *e) { return e->model_s; }

fg_vmem_link_stats fg_vmem_link_get_stats(fg_vmem_link *l) {
    pthread_mutex_lock(&l->mu);
    fg_vmem_link_stats s = l->st;
    pthread_mutex_unlock(&l->mu);
    return s;
}

void fg_vmem_link_reset_stats(fg_vmem_link *l) {
    pthread_mutex_lock(&l->mu);
    memset(&l->st, 0, sizeof l->st);
    pthread_mutex_unlock(&l->mu);
}
