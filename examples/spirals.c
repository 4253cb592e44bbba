/* A network in C with libfrugal's graph API, start to finish: an MLP (2 -> 64 -> 64 -> 2) learns
 * the two-spirals problem (two interleaved arms of points, one class each), trained with Adam on
 * full batches; the weights are saved to a safetensors file and loaded into a second graph built
 * for inference, which must predict the same classes.
 *
 *   cc -std=c11 -O2 spirals.c $(pkg-config --cflags --libs frugal) -lm -o spirals
 *   ./spirals [weights.safetensors]
 *
 * Prints the loss as it falls and the accuracy at the end; exits 1 below 95 % (the network should
 * separate the arms all but perfectly). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <frugal/frugal.h>

#define N 512 /* points, half per arm */
#define STEPS 600

/* Point i: class i % 2, at radius r along its arm, with a little noise. */
static void spirals(float *x, int32_t *y, fg_rng *rng) {
    for (int i = 0; i < N; i++) {
        float r = (float)(i / 2) / (N / 2), a = 3.0f * 3.14159265f * r + (float)(i % 2) * 3.14159265f;
        x[2 * i] = r * cosf(a) + 0.02f * fg_rng_normal(rng);
        x[2 * i + 1] = r * sinf(a) + 0.02f * fg_rng_normal(rng);
        y[i] = i % 2;
    }
}

/* The model; with labels (training) it ends in the cross-entropy loss, returned in *loss. */
static fg_id mlp(fg_graph *g, fg_id *x_in, fg_id *y_in, fg_id *loss) {
    const int64_t xs[2] = {N, 2}, ys[1] = {N};
    *x_in = fg_nn_input(g, "x", FG_F32, 2, xs);
    fg_id h = fg_nn_relu(g, "relu1", fg_layer_linear(g, "fc1", *x_in, 64, 1));
    h = fg_nn_relu(g, "relu2", fg_layer_linear(g, "fc2", h, 64, 1));
    fg_id logits = fg_layer_linear(g, "fc3", h, 2, 1);
    if (y_in) {
        *y_in = fg_nn_input(g, "y", FG_I32, 1, ys);
        *loss = fg_nn_xent(g, "loss", logits, *y_in);
    }
    fg_graph_mark_output(g, logits);
    return logits;
}

static double accuracy(fg_graph *g, fg_id logits, const int32_t *y, int32_t *pred) {
    static float out[N * 2];
    if (fg_graph_read(g, logits, out, sizeof out) != FG_OK) return -1;
    int right = 0;
    for (int i = 0; i < N; i++) {
        pred[i] = out[2 * i + 1] > out[2 * i];
        right += pred[i] == y[i];
    }
    return (double)right / N;
}

#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((call) != FG_OK) {                                                                     \
            fprintf(stderr, "spirals: %s\n", fg_last_error());                                    \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "spirals.safetensors";
    static float x[N * 2];
    static int32_t y[N], pred[N], pred2[N];
    fg_rng rng;
    fg_rng_seed(&rng, 1);
    spirals(x, y, &rng);

    /* training graph: build, initialize, optimizer */
    fg_pool *pool;
    fg_graph *g;
    fg_mem_policy policy;
    fg_id x_in, y_in, loss;
    TRY(fg_pool_create(&pool, 0)); /* the "device": unlimited here */
    TRY(fg_graph_create(&g, "spirals"));
    fg_id logits = mlp(g, &x_in, &y_in, &loss);
    if (fg_graph_status(g) != FG_OK) { /* the first builder error (a bad shape, say) is kept */
        fprintf(stderr, "spirals: %s\n", fg_graph_error(g));
        return 1;
    }
    TRY(fg_policy_network_wide(&policy));
    TRY(fg_graph_build(g, loss, pool, &policy));
    fg_graph_init_params(g, &rng);
    fg_optim *opt;
    fg_optim_cfg oc = fg_optim_defaults(FG_OPTIM_ADAM, 1e-2f);
    TRY(fg_optim_create(&opt, g, &oc));
    TRY(fg_graph_set_input(g, x_in, x, sizeof x));
    TRY(fg_graph_set_input(g, y_in, y, sizeof y));
    for (int step = 1; step <= STEPS; step++) {
        fg_graph_zero_grad(g);
        TRY(fg_graph_forward(g));
        TRY(fg_graph_backward(g));
        TRY(fg_optim_step(opt));
        if (step % 100 == 0) printf("step %4d  loss %.4f\n", step, fg_graph_loss(g));
    }
    TRY(fg_graph_forward(g));
    double acc = accuracy(g, logits, y, pred);
    printf("training accuracy %.4f\n", acc);
    const char *keys[] = {"example"}, *vals[] = {"spirals"};
    TRY(fg_graph_save(g, NULL, path, 1, keys, vals));

    /* an inference graph (no loss: no gradients) loading the saved weights by name */
    fg_graph *inf;
    fg_mem_policy policy2;
    TRY(fg_graph_create(&inf, "spirals-inference"));
    fg_id logits2 = mlp(inf, &x_in, NULL, NULL);
    TRY(fg_policy_network_wide(&policy2));
    TRY(fg_graph_build(inf, FG_NONE, pool, &policy2));
    TRY(fg_graph_load(inf, NULL, path));
    TRY(fg_graph_set_input(inf, x_in, x, sizeof x));
    TRY(fg_graph_forward(inf));
    double acc2 = accuracy(inf, logits2, y, pred2);
    int same = 1;
    for (int i = 0; i < N; i++) same &= pred[i] == pred2[i];
    printf("reloaded from %s: accuracy %.4f, %s predictions\n", path, acc2, same ? "the same" : "DIFFERENT");

    fg_graph_free(inf);
    fg_optim_free(opt);
    fg_graph_free(g);
    fg_pool_destroy(pool);
    return acc >= 0.95 && same ? 0 : 1;
}
