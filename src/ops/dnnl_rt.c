/* The process's oneDNN engine and the per-thread streams (src/ops/dnnl_impl.h). */
#include <pthread.h>

#include "core/threads_impl.h"
#include "dnnl_impl.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static pthread_key_t stream_key;
static dnnl_status_t init_status = dnnl_success;

static void stream_free(void *s) { dnnl_stream_destroy(s); }

static void init(void) {
    init_status = dnnl_engine_create(&engine, dnnl_cpu, 0);
    if (init_status == dnnl_success && pthread_key_create(&stream_key, stream_free) != 0)
        init_status = dnnl_out_of_memory;
}

dnnl_engine_t fg_dnnl_engine(dnnl_status_t *st) {
    pthread_once(&once, init);
    *st = init_status;
    return init_status == dnnl_success ? engine : NULL;
}

dnnl_stream_t fg_dnnl_thread_stream(dnnl_status_t *st) {
    if (!fg_dnnl_engine(st)) return NULL;
    fg_threads_ensure(); /* every primitive runs on the stream this returns */
    dnnl_stream_t s = pthread_getspecific(stream_key);
    if (s) return s;
    *st = dnnl_stream_create(&s, engine, dnnl_stream_default_flags);
    if (*st != dnnl_success) return NULL;
    if (pthread_setspecific(stream_key, s) != 0) {
        dnnl_stream_destroy(s);
        *st = dnnl_out_of_memory;
        return NULL;
    }
    return s;
}
