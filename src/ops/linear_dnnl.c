/* Linear layers through oneDNN's matmul primitive, for inference graphs: out (B, OC) = inp (B, IC)
 * @ weight (OC, IC)^T + bias, optionally followed by GELU (the exact erf form,
 * torch.nn.functional.gelu with approximate='none') in the same pass.
 *
 * Why: fg_linear_forward (sgemm) first copies the bias into every output row and lets the GEMM
 * add to it, one more pass over the output; the matmul primitive (oneDNN's brgemm kernels here)
 * adds the bias, and GELU with its eltwise_gelu_erf post-op, to each block of the product while it
 * is in cache, so a transformer's MLP no longer writes its (B, 4C) hidden activations and reads
 * them straight back for GELU. Measured on DeiT-tiny's fc1, (1576, 192) x (192, 768), 2 threads,
 * AMD EPYC (AVX-512), under load: linear then GELU 2.3-2.6 ms, this 1.9-2.2 ms; at 197 rows
 * 400-470 us against 310-385; the whole DeiT-tiny forward at batch 8 (2 threads, spinning waits)
 * 87 -> 83 ms with every linear of its blocks on this path. oneDNN's GELU is within 6e-8 of ours
 * on those values (tests/test_ops_dense.c holds both variants to the naive twins). Forward only:
 * backward stays fg_linear_backward (any linear's), and GELU's backward needs the pre-activation,
 * so the GELU variant is for graphs without a loss.
 *
 * Primitives are cached per (B, IC, OC, bias or not, GELU or not, thread count), at most
 * CACHE_CAP of them for the process (a model's graph has a handful of shapes); past that, a
 * primitive is made for the call and destroyed after it (correct, much slower: shapes that vary
 * per call, such as GA3C's prediction batches, belong on fg_linear_forward). Entries are never
 * evicted, so a primitive found under the lock may run after it is released, and several threads
 * may run one primitive at once (each with its own stream and scratchpad: the scratchpad is
 * user-managed, allocated per call). */
#include <pthread.h>
#include <stdlib.h>

#include <oneapi/dnnl/dnnl_debug.h>

#include "dnnl_impl.h"
#include "frugal/ops.h"

#define CACHE_CAP 256

typedef struct lg_entry {
    int64_t B, IC, OC;
    int bias, nthr, gelu;
    dnnl_primitive_t prim;
    size_t scratch_bytes;
} lg_entry;

static struct {
    pthread_mutex_t mu;
    lg_entry e[CACHE_CAP];
    int n;
} cache = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0};

/* The memory descriptors of the four arguments: src (B, IC) row-major; weights as oneDNN's (IC,
 * OC) over our (OC, IC) storage (strides 1, IC); bias (1, OC); dst (B, OC) row-major. */
static dnnl_status_t descs(dnnl_memory_desc_t md[4], int64_t B, int64_t IC, int64_t OC) {
    const dnnl_dims_t sd = {B, IC}, wd = {IC, OC}, ws = {1, IC}, bd = {1, OC}, dd = {B, OC};
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&md[0], 2, sd, dnnl_f32, dnnl_ab);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_strides(&md[1], 2, wd, dnnl_f32, ws);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&md[2], 2, bd, dnnl_f32, dnnl_ab);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(&md[3], 2, dd, dnnl_f32, dnnl_ab);
    return st;
}

static dnnl_status_t create(lg_entry *e, dnnl_engine_t eng) {
    dnnl_memory_desc_t md[4];
    dnnl_matmul_desc_t mm;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = descs(md, e->B, e->IC, e->OC);
    if (st == dnnl_success) st = dnnl_matmul_desc_init(&mm, &md[0], &md[1], e->bias ? &md[2] : NULL, &md[3]);
    if (st == dnnl_success) st = dnnl_primitive_attr_create(&attr);
    if (st == dnnl_success) st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success) st = dnnl_post_ops_create(&po);
    if (st == dnnl_success && e->gelu) st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f);
    if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &mm, attr, eng, NULL);
    if (st == dnnl_success) {
        const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        e->scratch_bytes = sp ? dnnl_memory_desc_get_size(sp) : 0;
        st = dnnl_primitive_create(&e->prim, pd);
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return st;
}

static fg_status lg_fail(dnnl_status_t st, const char *what, int64_t B, int64_t IC, int64_t OC) {
    return fg_fail(FG_ERR_BACKEND, "linear (dnnl matmul): %s failed with status %d (%s) for B %lld, IC %lld, OC %lld",
                   what, (int)st, dnnl_status2str(st), (long long)B, (long long)IC, (long long)OC);
}

static fg_status run(const lg_entry *e, float *out, const float *inp, const float *weight, const float *bias,
                     dnnl_engine_t eng) {
    dnnl_status_t st;
    dnnl_stream_t stream = fg_dnnl_thread_stream(&st);
    if (!stream) return lg_fail(st, "stream creation", e->B, e->IC, e->OC);
    dnnl_memory_desc_t md[5];
    st = descs(md, e->B, e->IC, e->OC);
    void *scratch = NULL;
    if (st == dnnl_success && e->scratch_bytes) {
        const dnnl_dims_t sd = {(int64_t)e->scratch_bytes};
        st = dnnl_memory_desc_init_by_tag(&md[4], 1, sd, dnnl_u8, dnnl_a);
        scratch = malloc(e->scratch_bytes);
        if (!scratch)
            return fg_fail(FG_ERR_OOM, "linear (dnnl matmul): out of host memory for a %zu-byte scratchpad", e->scratch_bytes);
    }
    void *ptr[5] = {(void *)inp, (void *)weight, (void *)bias, out, scratch};
    const int args[5] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST, DNNL_ARG_SCRATCHPAD};
    dnnl_memory_t mem[5] = {NULL};
    dnnl_exec_arg_t ex[5];
    int n = 0;
    for (int i = 0; i < 5 && st == dnnl_success; i++) {
        if ((i == 2 && !e->bias) || (i == 4 && !scratch)) continue;
        st = dnnl_memory_create(&mem[i], &md[i], eng, ptr[i]);
        ex[n].arg = args[i];
        ex[n++].memory = mem[i];
    }
    if (st == dnnl_success) st = dnnl_primitive_execute(e->prim, stream, n, ex);
    if (st == dnnl_success) st = dnnl_stream_wait(stream);
    for (int i = 0; i < 5; i++)
        if (mem[i]) dnnl_memory_destroy(mem[i]);
    free(scratch);
    return st == dnnl_success ? FG_OK : lg_fail(st, "execution", e->B, e->IC, e->OC);
}

fg_status fg_linear_dnnl_forward(float *out, const float *inp, const float *weight, const float *bias, int64_t B,
                                 int64_t IC, int64_t OC, int gelu) {
    if (B < 0 || IC < 0 || OC < 0)
        return fg_fail(FG_ERR_SHAPE, "linear (dnnl matmul): B = %lld, IC = %lld, OC = %lld, expected all >= 0", (long long)B,
                       (long long)IC, (long long)OC);
    if (B == 0 || OC == 0) return FG_OK;
    FG_ASSERT(out && (IC == 0 || (inp && weight)));
    if (IC == 0) { /* an empty product (oneDNN refuses it): fg_linear_forward's bias rows, GELU of them */
        FG_TRY(fg_linear_forward(out, inp, weight, bias, B, IC, OC));
        if (gelu) fg_gelu_forward(out, out, (size_t)(B * OC));
        return FG_OK;
    }
    dnnl_status_t st;
    dnnl_engine_t eng = fg_dnnl_engine(&st);
    if (!eng) return lg_fail(st, "engine creation", B, IC, OC);
    const lg_entry key = {.B = B, .IC = IC, .OC = OC, .bias = bias != NULL, .nthr = fg_threads_get(), .gelu = gelu};
    pthread_mutex_lock(&cache.mu);
    const lg_entry *found = NULL;
    for (int i = 0; i < cache.n && !found; i++) {
        const lg_entry *e = &cache.e[i];
        if (e->B == key.B && e->IC == key.IC && e->OC == key.OC && e->bias == key.bias && e->nthr == key.nthr && e->gelu == key.gelu)
            found = e;
    }
    if (!found && cache.n < CACHE_CAP) {
        lg_entry *e = &cache.e[cache.n];
        *e = key;
        st = create(e, eng);
        if (st != dnnl_success) {
            pthread_mutex_unlock(&cache.mu);
            return lg_fail(st, "primitive creation", B, IC, OC);
        }
        found = e;
        cache.n++;
    }
    pthread_mutex_unlock(&cache.mu);
    if (found) return run(found, out, inp, weight, bias, eng);
    lg_entry once = key; /* the cache is full: a primitive for this call only */
    st = create(&once, eng);
    if (st != dnnl_success) return lg_fail(st, "primitive creation", B, IC, OC);
    fg_status s = run(&once, out, inp, weight, bias, eng);
    dnnl_primitive_destroy(once.prim);
    return s;
}

fg_status fg_linear_gelu_forward(float *out, const float *inp, const float *weight, const float *bias, int64_t B,
                                 int64_t IC, int64_t OC) {
    return fg_linear_dnnl_forward(out, inp, weight, bias, B, IC, OC, 1);
}

void fg_linear_gelu_forward_naive(float *out, const float *inp, const float *weight, const float *bias, int64_t B,
                                  int64_t IC, int64_t OC) {
    fg_linear_forward_naive(out, inp, weight, bias, B, IC, OC);
    fg_gelu_forward_naive(out, out, (size_t)(B * OC));
}
