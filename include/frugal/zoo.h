/* frugal model zoo: builder functions for the networks of the vDNN paper and the tests.
 * Each takes the input size and class count, adds parameters and ops to an empty graph and
 * returns the handles a trainer needs. Parameter names follow PyTorch's state_dict naming
 * ("conv1.weight", "fc3.bias") so weights can be exchanged with PyTorch. */
#ifndef FRUGAL_ZOO_H
#define FRUGAL_ZOO_H

#include "frugal/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fg_model_cfg {
    int64_t batch;
    int64_t channels, height, width; /* input image */
    int64_t classes;
    float dropout;                   /* for models that have dropout (AlexNet, VGG...); < 0 = model default */
    int force_conv_algo;             /* 1: every conv starts on conv_algo (fg_train_build_model), e.g. vDNN's
                                        memory-optimal variants; 0: the graph's default (oneDNN) */
    fg_conv_algo conv_algo;
} fg_model_cfg;

typedef struct fg_model_io {
    fg_id input;  /* (batch, channels, height, width) f32 */
    fg_id labels; /* (batch) i32 */
    fg_id logits; /* (batch, classes) */
    fg_id loss;   /* scalar mean cross-entropy */
} fg_model_io;

typedef struct fg_model_def {
    const char *name;
    const char *description;
    int64_t default_channels, default_height, default_width, default_classes;
} fg_model_def;

/* The table of models, terminated by a NULL name. */
const fg_model_def *fg_zoo_models(void);
const fg_model_def *fg_zoo_find(const char *name);
/* Builds model `name` into g (which must be empty). FG_ERR_INVALID for an unknown name (the
 * message lists the known ones); FG_ERR_SHAPE when the input is too small for the model. */
fg_status fg_zoo_build(fg_graph *g, const char *name, const fg_model_cfg *cfg, fg_model_io *io);

#ifdef __cplusplus
}
#endif
#endif
