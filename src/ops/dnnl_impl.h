/* The oneDNN runtime shared by the ops that run oneDNN primitives (internal): one CPU engine for
 * the process and one stream per thread (src/ops/dnnl_rt.c). conv2d.c (convolutions) and
 * linear_dnnl.c (linears as matmuls, GELU in the epilogue) use it; fg_sgemm needs neither. */
#ifndef FG_OPS_DNNL_IMPL_H
#define FG_OPS_DNNL_IMPL_H

#include <oneapi/dnnl/dnnl.h>

/* The engine, created on first use; NULL with *st set when creation failed. */
dnnl_engine_t fg_dnnl_engine(dnnl_status_t *st);
/* The calling thread's stream. Several threads may run primitives at once (forwards of one model
 * on predictor threads while a trainer runs its own): primitives with a user-managed scratchpad
 * may execute concurrently, a stream is one thread's execution context, so every thread gets its
 * own, created on first use and destroyed when the thread exits. NULL with *st set on failure. */
dnnl_stream_t fg_dnnl_thread_stream(dnnl_status_t *st);

#endif
