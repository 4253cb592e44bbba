/* A whole LeNet-5 training step against PyTorch (tests/fixtures/gen_lenet_step.py): the loss,
 * every parameter gradient, and the weights after two SGD (momentum, weight decay) steps and,
 * from the same start, two Adam steps, within 1e-4 relative. Parameters are matched by creation
 * order (the zoo creates them in the same order as the torch module's state_dict). */
#include <string.h>

#include "testutil.h"

typedef struct lenet {
    fg_graph *g;
    fg_pool *pool;
    fg_model_io io;
} lenet;

static void build(lenet *n, fg_fixture *fx) {
    CHECK_OK(fg_pool_create(&n->pool, 0));
    CHECK_OK(fg_graph_create(&n->g, "lenet"));
    fg_model_cfg cfg = {.batch = 8, .channels = 1, .height = 28, .width = 28, .classes = 10, .dropout = -1};
    CHECK_OK(fg_zoo_build(n->g, "lenet", &cfg, &n->io));
    fg_mem_policy p;
    CHECK_OK(fg_policy_network_wide(&p));
    CHECK_OK(fg_graph_build(n->g, n->io.loss, n->pool, &p));
    CHECK(fg_graph_n_params(n->g) == 10);
    for (int i = 0; i < fg_graph_n_params(n->g); i++) {
        fg_tensor *t = fg_graph_tensor(n->g, fg_graph_param(n->g, i));
        char nm[16];
        snprintf(nm, sizeof nm, "p%d", i);
        memcpy(t->data, fg_fixture_get(fx, nm, (size_t)fg_tensor_numel(t)), fg_tensor_bytes(t));
    }
    const float *x = fg_fixture_get(fx, "x", 8 * 28 * 28);
    const float *yf = fg_fixture_get(fx, "y", 8);
    int32_t y[8];
    for (int i = 0; i < 8; i++) y[i] = (int32_t)yf[i];
    CHECK_OK(fg_graph_set_input(n->g, n->io.input, x, 8 * 28 * 28 * sizeof(float)));
    CHECK_OK(fg_graph_set_input(n->g, n->io.labels, y, sizeof y));
}

static void step_and_compare(fg_fixture *fx, fg_optim_cfg cfg, const char *tag) {
    lenet n;
    build(&n, fx);
    fg_optim *o;
    CHECK_OK(fg_optim_create(&o, n.g, &cfg));
    for (int s = 0; s < 2; s++) {
        fg_graph_zero_grad(n.g);
        CHECK_OK(fg_graph_forward(n.g));
        CHECK_OK(fg_graph_backward(n.g));
        float l = fg_graph_loss(n.g);
        char nm[32];
        snprintf(nm, sizeof nm, "%s_loss%d", tag, s);
        fg_check_close(nm, &l, fg_fixture_get(fx, nm, 1), 1, 1e-4f, 1e-6f);
        CHECK_OK(fg_optim_step(o));
    }
    for (int i = 0; i < fg_graph_n_params(n.g); i++) {
        fg_tensor *t = fg_graph_tensor(n.g, fg_graph_param(n.g, i));
        char nm[32];
        snprintf(nm, sizeof nm, "%s_w%d", tag, i);
        fg_check_close(nm, t->data, fg_fixture_get(fx, nm, (size_t)fg_tensor_numel(t)), (size_t)fg_tensor_numel(t), 1e-4f,
                       1e-6f);
    }
    fg_optim_free(o);
    fg_graph_free(n.g);
    fg_pool_destroy(n.pool);
}

int main(void) {
    fg_threads_set(2);
    fg_fixture *fx = fg_fixture_open("lenet_step.bin");
    lenet n;
    build(&n, fx);
    CHECK_OK(fg_graph_forward(n.g));
    CHECK_OK(fg_graph_backward(n.g));
    float l = fg_graph_loss(n.g);
    fg_check_close("loss", &l, fg_fixture_get(fx, "loss", 1), 1, 1e-4f, 1e-6f);
    for (int i = 0; i < fg_graph_n_params(n.g); i++) {
        const fg_tinfo *ti = fg_graph_tinfo(n.g, fg_graph_param(n.g, i));
        fg_tensor *gt = fg_graph_tensor(n.g, ti->grad);
        char nm[16];
        snprintf(nm, sizeof nm, "g%d", i);
        size_t numel = (size_t)fg_tensor_numel(gt);
        /* gradients of order 1e-3: 1e-4 relative plus a floor far below their scale */
        fg_check_close(gt->name, gt->data, fg_fixture_get(fx, nm, numel), numel, 1e-4f, 1e-7f);
    }
    fg_graph_free(n.g);
    fg_pool_destroy(n.pool);

    fg_optim_cfg sgd = fg_optim_defaults(FG_OPTIM_SGD, 0.1f);
    sgd.momentum = 0.9f;
    sgd.weight_decay = 5e-4f;
    step_and_compare(fx, sgd, "sgd");
    step_and_compare(fx, fg_optim_defaults(FG_OPTIM_ADAM, 1e-3f), "adam");
    fg_fixture_close(fx);
    return fg_test_finish("test_lenet_step");
}
