/* Tests of ToMe token merging (src/ops/tome.c, the graph's fg_nn_tome / fg_nn_tome_attention,
 * fg_vit_cfg.tome_r and the fg_vit_skip.tome check):
 *  - the matching against its naive twin (maps equal) on random keys of many shapes and every r
 *    up to the limit, including ViT-sized (197 tokens) ones; every output slot receives a token,
 *    the class token stays in slot 0 alone, the last T/2 slots are the B tokens in order; ties
 *    between edges (duplicated tokens) go to the lower A index in both;
 *  - the merge (match + size-weighted average, sizes summed) against PyTorch references
 *    (tests/fixtures/gen_vit_tome.py -> vit_tome.bin), with and without incoming sizes;
 *  - proportional attention (fast, naive, heads kept) against the PyTorch reference; all sizes 1
 *    equals plain attention (fg_attention_forward);
 *  - whole ViTs with ToMe in every block (17 tokens merged 3 then 2; 50 tokens merged 8, 8, 6 with
 *    sizes chained through three merges and proportional attention) built by fg_vit_build from
 *    formula weights, against the PyTorch reference logits within 1e-4 of the largest;
 *  - FLOPs fall with the merges (and the MLP of a merging block sees T - r tokens); a schedule of
 *    zeros builds the plain graph, bit for bit;
 *  - heads kept on merging blocks: the logits of an input do not depend on what the graph ran
 *    before (the key projection ToMe matches on stays whole), equal to a fresh graph's;
 *  - errors: r beyond the limit (named), a skip configuration whose ToMe schedule is not the
 *    graph's, a graph with a merge built with a loss (forward only), bad tome_r blocks. */
#include <math.h>
#include <string.h>

#include "frugal/vit.h"
#include "testutil.h"

static void test_match_twin(void) {
    fg_rng rng;
    fg_rng_seed(&rng, 14);
    static const int64_t shapes[][4] = {{1, 3, 4, 1}, {2, 5, 8, 2}, {3, 17, 64, 4}, {2, 50, 64, 4}, {1, 197, 192, 3},
                                        {2, 16, 12, 3}};
    int cases = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t B = shapes[s][0], T = shapes[s][1], C = shapes[s][2], H = shapes[s][3];
        float *keys = malloc((size_t)(B * T * C) * sizeof(float));
        int32_t *m1 = malloc((size_t)(B * T) * sizeof(int32_t)), *m2 = malloc((size_t)(B * T) * sizeof(int32_t));
        void *ws = malloc(fg_tome_match_workspace_bytes(B, T, C, H));
        FG_ASSERT(keys && m1 && m2 && ws);
        fg_fill_uniform(keys, (size_t)(B * T * C), -1.0f, 1.0f, &rng);
        for (int64_t r = 1; r <= (T - 1) / 2; r += T > 40 ? 7 : 1) {
            CHECK_OK(fg_tome_check(B, T, C, H, r));
            fg_tome_match(m1, keys, B, T, C, H, r, ws);
            fg_tome_match_naive(m2, keys, B, T, C, H, r);
            cases++;
            if (memcmp(m1, m2, (size_t)(B * T) * sizeof(int32_t)) != 0) {
                fprintf(stderr, "  match B %lld T %lld C %lld H %lld r %lld: fast and naive maps differ\n", (long long)B,
                        (long long)T, (long long)C, (long long)H, (long long)r);
                fg_test_failures++;
                continue;
            }
            for (int64_t b = 0; b < B; b++) {
                const int32_t *m = m1 + b * T;
                int hits[256] = {0};
                for (int64_t t = 0; t < T; t++) {
                    CHECK(m[t] >= 0 && m[t] < T - r);
                    if (m[t] >= 0 && m[t] < T - r) hits[m[t]]++;
                }
                for (int64_t o = 0; o < T - r; o++) CHECK(hits[o] >= 1); /* every slot holds a token */
                CHECK(m[0] == 0 && hits[0] == 1);                        /* the class token alone, first */
                const int64_t nA = (T + 1) / 2;
                for (int64_t j = 0; 2 * j + 1 < T; j++) CHECK(m[2 * j + 1] == nA - r + j);
            }
        }
        free(keys);
        free(m1);
        free(m2);
        free(ws);
    }
    CHECK(cases == 36); /* 1 + 2 + 8 + 4 + 14 + 7 */
}

static void test_merge_fixture(fg_fixture *f) {
    char nm[64];
    int cases = 0;
    for (int i = 0;; i++) {
        snprintf(nm, sizeof nm, "op%d.cfg", i);
        if (!fg_fixture_has(f, nm)) break;
        const float *c = fg_fixture_get(f, nm, 7);
        const int64_t B = (int64_t)c[0], T = (int64_t)c[1], C = (int64_t)c[2], H = (int64_t)c[3], E = (int64_t)c[4],
                      r = (int64_t)c[5];
        const int has_size = c[6] != 0.0f;
#define G(s, n) (snprintf(nm, sizeof nm, "op%d." s, i), fg_fixture_get(f, nm, (size_t)(n)))
        const float *keys = G("keys", B * T * C), *x = G("x", B * T * E), *size = G("size", B * T);
        const float *want = G("out", B * (T - r) * E), *want_size = G("out_size", B * (T - r));
#undef G
        int32_t *map = malloc((size_t)(B * T) * sizeof(int32_t));
        float *out = fg_alloc_guarded((size_t)(B * (T - r) * E)), *osz = fg_alloc_guarded((size_t)(B * (T - r)));
        void *ws = malloc(fg_tome_match_workspace_bytes(B, T, C, H));
        FG_ASSERT(map && ws);
        CHECK_OK(fg_tome_check(B, T, C, H, r));
        fg_tome_match(map, keys, B, T, C, H, r, ws);
        fg_tome_merge(out, osz, x, has_size ? size : NULL, map, B, T, E, r);
        char what[96];
        snprintf(what, sizeof what, "fixture op%d merged tokens (torch)", i);
        fg_check_close(what, out, want, (size_t)(B * (T - r) * E), 1e-5f, 1e-5f);
        snprintf(what, sizeof what, "fixture op%d merged sizes (torch)", i);
        fg_check_close(what, osz, want_size, (size_t)(B * (T - r)), 0.0f, 0.0f);
        fg_check_guard(what, out, (size_t)(B * (T - r) * E));
        fg_check_guard(what, osz, (size_t)(B * (T - r)));
        free(map);
        free(out);
        free(osz);
        free(ws);
        cases++;
    }
    CHECK(cases == 4);
}

static void test_prop_attention(fg_fixture *f) {
    const float *c = fg_fixture_get(f, "pa.cfg", 4);
    const int64_t B = (int64_t)c[0], H = (int64_t)c[1], T = (int64_t)c[2], D = (int64_t)c[3];
    const size_t n = (size_t)(B * H * T * D);
    const float *q = fg_fixture_get(f, "pa.q", n), *k = fg_fixture_get(f, "pa.k", n), *v = fg_fixture_get(f, "pa.v", n);
    const float *size = fg_fixture_get(f, "pa.size", (size_t)(B * T)), *want = fg_fixture_get(f, "pa.out", n);
    const size_t wsb = fg_tome_attention_workspace_bytes(B, H, T);
    void *ws = malloc(wsb);
    float *out = fg_alloc_guarded(n), *ref = fg_alloc_guarded(n);
    FG_ASSERT(ws);
    CHECK_OK(fg_tome_attention_forward(out, q, k, v, size, B, H, H, T, D, 1.0f / sqrtf((float)D), ws, wsb));
    fg_check_close("proportional attention (torch)", out, want, n, 1e-5f, 1e-5f);
    fg_tome_attention_forward_naive(ref, q, k, v, size, B, H, H, T, D, 1.0f / sqrtf((float)D));
    fg_check_close("proportional attention naive (torch)", ref, want, n, 1e-5f, 1e-5f);
    fg_check_guard("proportional attention", out, n);
    /* heads kept: the first 2 of 3 as before, the third zeros, as the naive twin */
    CHECK_OK(fg_tome_attention_forward(out, q, k, v, size, B, H, 2, T, D, 1.0f / sqrtf((float)D), ws, wsb));
    fg_tome_attention_forward_naive(ref, q, k, v, size, B, H, 2, T, D, 1.0f / sqrtf((float)D));
    fg_check_close("proportional attention, 2 heads kept", out, ref, n, 1e-5f, 1e-6f);
    for (int64_t b = 0; b < B; b++) {
        const size_t hs = (size_t)(T * D);
        CHECK(fg_all_equal_to(out + (size_t)(b * H + 2) * hs, hs, 0.0f));
        fg_check_close("proportional attention, kept head 0", out + (size_t)(b * H) * hs, want + (size_t)(b * H) * hs,
                       hs, 1e-5f, 1e-5f);
    }
    /* sizes of 1: plain attention */
    float ones[64];
    fg_fill_const(ones, (size_t)(B * T), 1.0f);
    float *probs = malloc((size_t)(B * H * T * T) * sizeof(float));
    FG_ASSERT(probs && B * T <= 64);
    CHECK_OK(fg_tome_attention_forward(out, q, k, v, ones, B, H, H, T, D, 0.5f, ws, wsb));
    CHECK_OK(fg_attention_forward(ref, probs, q, k, v, B, H, T, T, D, 0.5f, 0));
    fg_check_close("proportional attention with sizes 1 = attention", out, ref, n, 1e-5f, 1e-6f);
    CHECK_STATUS(fg_tome_attention_forward(out, q, k, v, size, B, H, H, T, D, 0.5f, ws, 16), FG_ERR_INVALID);
    CHECK_STATUS(fg_tome_attention_forward(out, q, k, v, size, B, H, H + 1, T, D, 0.5f, ws, wsb), FG_ERR_SHAPE);
    free(probs);
    free(ws);
    free(out);
    free(ref);
}

typedef struct tnet {
    fg_graph *g;
    fg_pool *pool;
    fg_vit_io io;
} tnet;

/* Builds the ViT of a fixture case (or any cfg) for batch B with the schedule in cfg, formula
 * weights, eval mode. Returns the build status (the graph is freed on failure). */
static fg_status tnet_build(tnet *n, const fg_vit_cfg *c, int64_t B, int64_t C, int64_t S, int with_loss) {
    memset(n, 0, sizeof *n);
    CHECK_OK(fg_pool_create(&n->pool, 0));
    CHECK_OK(fg_graph_create(&n->g, "vit"));
    fg_status s = fg_vit_build(n->g, c, B, C, S, S, with_loss, &n->io);
    fg_mem_policy p;
    if (s == FG_OK) s = fg_policy_network_wide(&p);
    if (s == FG_OK) s = fg_graph_build(n->g, with_loss ? n->io.loss : FG_NONE, n->pool, &p);
    if (s != FG_OK) {
        fg_graph_free(n->g);
        fg_pool_destroy(n->pool);
        memset(n, 0, sizeof *n);
        return s;
    }
    for (int i = 0; i < fg_graph_n_params(n->g); i++) {
        fg_tensor *t = fg_graph_tensor(n->g, fg_graph_param(n->g, i));
        fg_test_formula_weights(t->data, t->name, t->ndim, t->shape);
    }
    fg_graph_set_training(n->g, 0);
    return FG_OK;
}

static void tnet_free(tnet *n) {
    fg_graph_free(n->g);
    fg_pool_destroy(n->pool);
}

static void tnet_forward(tnet *n, const float *x, size_t nx, float *logits, size_t nl) {
    CHECK_OK(fg_graph_set_input(n->g, n->io.input, x, nx * sizeof(float)));
    CHECK_OK(fg_graph_forward(n->g));
    CHECK_OK(fg_graph_read(n->g, n->io.logits, logits, nl * sizeof(float)));
}

static void test_vit_fixture(fg_fixture *f, int i) {
    char nm[64];
    snprintf(nm, sizeof nm, "vit%d.cfg", i);
    const float *c = fg_fixture_get(f, nm, i == 0 ? 11 : 12);
    const int64_t B = (int64_t)c[0], C = (int64_t)c[1], S = (int64_t)c[2], K = (int64_t)c[8];
    fg_vit_cfg cfg;
    CHECK_OK(fg_vit_config("vit-tiny-28", K, &cfg));
    cfg.patch = (int64_t)c[3];
    cfg.dim = (int64_t)c[4];
    cfg.depth = (int64_t)c[5];
    cfg.heads = (int64_t)c[6];
    cfg.mlp_dim = (int64_t)c[7];
    for (int64_t b = 0; b < cfg.depth; b++) cfg.tome_r[b] = (uint8_t)c[9 + b];
    snprintf(nm, sizeof nm, "vit%d.x", i);
    const size_t nx = (size_t)(B * C * S * S), nl = (size_t)(B * K);
    const float *x = fg_fixture_get(f, nm, nx);
    snprintf(nm, sizeof nm, "vit%d.logits", i);
    const float *want = fg_fixture_get(f, nm, nl);
    tnet n, plain;
    CHECK_OK(tnet_build(&n, &cfg, B, C, S, 0));
    if (!n.g) return;
    float got[64];
    FG_ASSERT(nl <= 64);
    tnet_forward(&n, x, nx, got, nl);
    float mx = 0.0f;
    for (size_t j = 0; j < nl; j++) mx = fmaxf(mx, fabsf(want[j]));
    char what[96];
    snprintf(what, sizeof what, "vit%d with ToMe: logits against torch", i);
    fg_check_close(what, got, want, nl, 0.0f, 1e-4f * mx);
    /* every merge ran; the MLP of a merging block sees T - r tokens */
    int64_t Tb = n.io.tokens;
    for (int64_t b = 0; b < cfg.depth; b++) {
        snprintf(nm, sizeof nm, "vit.encoder.layer.%lld.tome", (long long)b);
        const int node = fg_graph_find_node(n.g, nm);
        CHECK(node >= 0 && fg_graph_node_runs(n.g, node) == 1);
        Tb -= cfg.tome_r[b];
        snprintf(nm, sizeof nm, "vit.encoder.layer.%lld.intermediate.dense", (long long)b);
        const int mlp = fg_graph_find_node(n.g, nm);
        CHECK(mlp >= 0 && fg_graph_tinfo(n.g, fg_graph_node(n.g, mlp)->out)->t.shape[1] == Tb);
    }
    /* the schedule is what fg_vit_skip_tome_of reads back; a configuration must carry it */
    fg_vit_skip k;
    memset(&k, 0, sizeof k);
    uint8_t built[FG_VIT_MAX_BLOCKS];
    CHECK_OK(fg_vit_skip_tome_of(n.g, built));
    CHECK(memcmp(built, cfg.tome_r, FG_VIT_MAX_BLOCKS) == 0);
    CHECK_STATUS(fg_vit_skip_apply(n.g, &k), FG_ERR_INVALID); /* no merge asked, the graph merges */
    memcpy(k.tome, cfg.tome_r, sizeof k.tome);
    double f_tome = 0.0, f_heads = 0.0, f_plain = 0.0;
    CHECK_OK(fg_vit_skip_flops(n.g, &k, &f_tome));
    /* heads kept in a block after a merge (a proportional attention node) */
    k.heads[cfg.depth - 1] = 1;
    CHECK_OK(fg_vit_skip_flops(n.g, &k, &f_heads));
    CHECK(f_heads < f_tome);
    float got2[64];
    tnet_forward(&n, x, nx, got2, nl);
    int same = memcmp(got, got2, nl * sizeof(float)) == 0;
    CHECK(!same); /* the knob changed the result */
    memset(k.heads, 0, sizeof k.heads);
    CHECK_OK(fg_vit_skip_apply(n.g, &k));
    tnet_forward(&n, x, nx, got2, nl);
    CHECK(fg_check_equal("ToMe graph, knobs back on", got2, got, nl));
    /* the plain graph: more FLOPs; a schedule of zeros is that graph */
    fg_vit_cfg pc = cfg;
    memset(pc.tome_r, 0, sizeof pc.tome_r);
    CHECK_OK(tnet_build(&plain, &pc, B, C, S, 0));
    if (plain.g) {
        memset(k.tome, 0, sizeof k.tome);
        CHECK_OK(fg_vit_skip_flops(plain.g, &k, &f_plain));
        CHECK(f_tome < f_plain);
        fprintf(stderr, "  vit%d: %lld tokens, ToMe FLOPs %.0f of %.0f (%.1f%% fewer)\n", i, (long long)n.io.tokens,
                f_tome, f_plain, 100.0 * (1.0 - f_tome / f_plain));
        CHECK(fg_graph_find_node(plain.g, "vit.encoder.layer.0.tome") < 0);
        tnet_free(&plain);
    }
    tnet_free(&n);
}

static void test_errors(void) {
    CHECK_STATUS(fg_tome_check(1, 17, 64, 4, 9), FG_ERR_SHAPE); /* (17 - 1) / 2 = 8 at most */
    CHECK(strstr(fg_last_error(), "r = 9") != NULL);
    CHECK_STATUS(fg_tome_check(1, 17, 64, 4, 0), FG_ERR_SHAPE);
    CHECK_STATUS(fg_tome_check(1, 17, 63, 4, 2), FG_ERR_SHAPE);
    CHECK_OK(fg_tome_check(1, 17, 64, 4, 8));
    fg_vit_cfg cfg;
    CHECK_OK(fg_vit_config("vit-tiny-28", 10, &cfg));
    tnet n;
    /* 17 tokens: 8, then at most (9 - 1) / 2 = 4 */
    cfg.tome_r[0] = 8;
    cfg.tome_r[1] = 5;
    CHECK_STATUS(tnet_build(&n, &cfg, 1, 1, 28, 0), FG_ERR_SHAPE);
    CHECK(strstr(fg_last_error(), "vit.encoder.layer.1.tome") != NULL);
    cfg.tome_r[1] = 0;
    cfg.tome_r[4] = 1; /* vit-tiny-28 has 4 blocks */
    CHECK_STATUS(tnet_build(&n, &cfg, 1, 1, 28, 0), FG_ERR_INVALID);
    cfg.tome_r[4] = 0;
    /* forward only: a loss is refused, naming the node */
    CHECK_STATUS(tnet_build(&n, &cfg, 2, 1, 28, 1), FG_ERR_UNSUPPORTED);
    CHECK(strstr(fg_last_error(), "forward only") != NULL);
}

/* The class token never merges, also when another A token scores -inf: a zero key makes its
 * similarities NaN (found by a review: the tie went by index and merged the class token). */
static void test_class_token_kept(void) {
    enum { T = 5, C = 4 };
    const float keys[T * C] = {1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1};
    int32_t m1[T], m2[T];
    void *ws = malloc(fg_tome_match_workspace_bytes(1, T, C, 1));
    CHECK_OK(fg_tome_check(1, T, C, 1, 2));
    fg_tome_match(m1, keys, 1, T, C, 1, 2, ws);
    fg_tome_match_naive(m2, keys, 1, T, C, 1, 2);
    CHECK(m1[0] == 0 && m2[0] == 0);
    CHECK(memcmp(m1, m2, sizeof m1) == 0);
    free(ws);
}

/* Ties between edges (duplicated A tokens: equal similarities) go to the lower A index
 * (ops_tome.h; edge_cmp's order), in the fast matcher as in the naive twin. */
static void test_match_ties(void) {
    /* T = 9: A tokens 0, 2, 4, 6, 8, B tokens 1, 3, 5, 7. A tokens 2, 4, 6, 8 are copies of B token
     * 1 (all four edges tie at similarity 1); the other B tokens are unlike them */
    enum { T = 9, C = 4 };
    const float tok[4][C] = {{0.3f, -0.7f, 0.2f, 0.5f}, {-1.0f, 0.2f, 0.4f, 0.1f}, {0.1f, 0.9f, -0.6f, 0.2f},
                             {0.5f, 0.5f, 0.5f, -0.5f}};
    const int which[T] = {3, 0, 0, 1, 0, 2, 0, 3, 0};
    float keys[2 * T * C];
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < T; t++) memcpy(keys + (b * T + t) * C, tok[which[t]], sizeof tok[0]);
    void *ws = malloc(fg_tome_match_workspace_bytes(2, T, C, 1));
    FG_ASSERT(ws);
    for (int64_t r = 1; r <= 4; r++) {
        int32_t m1[2 * T], m2[2 * T], want[T];
        fg_tome_match(m1, keys, 2, T, C, 1, r, ws);
        fg_tome_match_naive(m2, keys, 2, T, C, 1, r);
        /* the documented rule: A tokens 1 .. r (tokens 2, 4, .., 2r) merge into B slot 0 */
        const int32_t nA = (T + 1) / 2, base = nA - (int32_t)r;
        int32_t next = 0;
        for (int32_t i = 0; i < nA; i++) want[2 * i] = i >= 1 && i <= r ? base : next++;
        for (int32_t j = 0; 2 * j + 1 < T; j++) want[2 * j + 1] = base + j;
        for (int b = 0; b < 2; b++) {
            const int fast_ok = memcmp(m1 + b * T, want, sizeof want) == 0;
            const int naive_ok = memcmp(m2 + b * T, want, sizeof want) == 0;
            if (!fast_ok || !naive_ok) {
                fprintf(stderr, "  match ties r %lld item %d: fast %s, naive %s the lower A indices (map", (long long)r,
                        b, fast_ok ? "merges" : "does not merge", naive_ok ? "merges" : "does not merge");
                for (int t = 0; t < T; t++) fprintf(stderr, " %d/%d", (int)m1[b * T + t], (int)want[t]);
                fprintf(stderr, " fast/expected)\n");
            }
            CHECK(fast_ok && naive_ok);
        }
    }
    /* random keys with duplicated A tokens (groups of equal edges) on a larger shape: fast = naive */
    fg_rng rng;
    fg_rng_seed(&rng, 5);
    enum { B2 = 3, T2 = 41, C2 = 16, H2 = 2 };
    float *k2 = malloc((size_t)(B2 * T2 * C2) * sizeof(float));
    int32_t *a = malloc((size_t)(B2 * T2) * sizeof(int32_t)), *n = malloc((size_t)(B2 * T2) * sizeof(int32_t));
    void *ws2 = malloc(fg_tome_match_workspace_bytes(B2, T2, C2, H2));
    FG_ASSERT(k2 && a && n && ws2);
    fg_fill_uniform(k2, (size_t)(B2 * T2 * C2), -1.0f, 1.0f, &rng);
    for (int64_t b = 0; b < B2; b++)
        for (int64_t t = 4; t < T2; t += 2) { /* A tokens: copies of tokens 2 and 4 in turn, some of B token 3 */
            const int64_t from = t % 8 == 0 ? 3 : t % 6 == 0 ? 2 : 4;
            memcpy(k2 + (b * T2 + t) * C2, k2 + (b * T2 + from) * C2, C2 * sizeof(float));
        }
    for (int64_t r = 1; r <= (T2 - 1) / 2; r++) {
        fg_tome_match(a, k2, B2, T2, C2, H2, r, ws2);
        fg_tome_match_naive(n, k2, B2, T2, C2, H2, r);
        if (memcmp(a, n, (size_t)(B2 * T2) * sizeof(int32_t)) != 0) {
            fprintf(stderr, "  match ties (duplicated tokens) r %lld: fast and naive maps differ\n", (long long)r);
            fg_test_failures++;
        }
    }
    free(k2);
    free(a);
    free(n);
    free(ws2);
    free(ws);
}

/* Heads kept on a block that merges: the attention and q, v narrow to the kept heads, but ToMe's
 * matching reads every key column, so the key projection stays whole (src/vit/skip.c). Were it
 * narrowed, the columns it no longer writes would hold whatever the previous forward (or the
 * memory's other tenants) left there, and the merge would depend on history: the logits of an
 * input must not depend on what ran before it, in the same graph or a fresh one. */
static void test_heads_on_merging_block(void) {
    fg_vit_cfg cfg;
    CHECK_OK(fg_vit_config("vit-tiny-28-p4", 10, &cfg)); /* 50 tokens */
    cfg.tome_r[0] = 8;
    cfg.tome_r[1] = 8;
    cfg.tome_r[2] = 6;
    enum { B = 2, S = 28, K = 10 };
    const size_t nx = (size_t)(B * S * S), nl = (size_t)(B * K);
    float xa[B * S * S], xb[B * S * S];
    fg_rng rng;
    fg_rng_seed(&rng, 77);
    fg_fill_uniform(xa, nx, 0.0f, 1.0f, &rng);
    fg_fill_uniform(xb, nx, 0.0f, 1.0f, &rng);
    tnet n1, n2;
    CHECK_OK(tnet_build(&n1, &cfg, B, 1, S, 0));
    CHECK_OK(tnet_build(&n2, &cfg, B, 1, S, 0));
    if (!n1.g || !n2.g) {
        if (n1.g) tnet_free(&n1);
        if (n2.g) tnet_free(&n2);
        return;
    }
    fg_vit_skip on, heads;
    memset(&on, 0, sizeof on);
    memcpy(on.tome, cfg.tome_r, sizeof on.tome);
    heads = on;
    heads.heads[0] = 1; /* merging blocks: the first with plain attention, the second proportional */
    heads.heads[1] = 2;
    float full_b[B * K], after_a[B * K], fresh[B * K], after_b[B * K];
    /* graph 1: the whole model on A (every key column written from A), then heads kept on B */
    CHECK_OK(fg_vit_skip_apply(n1.g, &on));
    tnet_forward(&n1, xa, nx, full_b, nl);
    CHECK_OK(fg_vit_skip_apply(n1.g, &heads));
    tnet_forward(&n1, xb, nx, after_a, nl);
    /* graph 2, fresh, same weights: heads kept on B first thing */
    CHECK_OK(fg_vit_skip_apply(n2.g, &heads));
    tnet_forward(&n2, xb, nx, fresh, nl);
    /* graph 1 again: the whole model on B, then heads kept on B */
    CHECK_OK(fg_vit_skip_apply(n1.g, &on));
    tnet_forward(&n1, xb, nx, full_b, nl);
    CHECK_OK(fg_vit_skip_apply(n1.g, &heads));
    tnet_forward(&n1, xb, nx, after_b, nl);
    CHECK(fg_check_equal("heads kept on merging blocks: after A vs a fresh graph", after_a, fresh, nl));
    CHECK(fg_check_equal("heads kept on merging blocks: after A vs after B", after_a, after_b, nl));
    CHECK(memcmp(after_b, full_b, sizeof full_b) != 0); /* the knob acts */
    tnet_free(&n1);
    tnet_free(&n2);
}

int main(void) {
    test_match_twin();
    test_class_token_kept();
    test_match_ties();
    fg_fixture *f = fg_fixture_open("vit_tome.bin");
    test_merge_fixture(f);
    test_prop_attention(f);
    test_vit_fixture(f, 0);
    test_vit_fixture(f, 1);
    fg_fixture_close(f);
    test_errors();
    test_heads_on_merging_block();
    return fg_test_finish("test_vit_tome");
}
