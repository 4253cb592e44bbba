/* CartPole with the classic-control rules of gym's CartPole-v1: a pole hinged on a cart pushed
 * left (action 0) or right (action 1) by 10 N; Euler integration with tau = 0.02 s; +1 per step,
 * the terminal step included; the episode terminates when |x| > 2.4 or |theta| > 12 degrees and
 * is truncated (FG_ENV_TRUNCATED) after 500 steps. The start state is uniform in [-0.05, 0.05]^4.
 * Observation: x, x_dot, theta, theta_dot as floats (the state is kept in double, as gym's numpy
 * arithmetic is). No sticky actions by default, no ramping. */
#include <math.h>

#include "rl/env_impl.h"

#define GRAVITY 9.8
#define MASS_CART 1.0
#define MASS_POLE 0.1
#define TOTAL_MASS (MASS_CART + MASS_POLE)
#define HALF_LENGTH 0.5 /* gym's "length" is half the pole */
#define POLE_MASS_LENGTH (MASS_POLE * HALF_LENGTH)
#define FORCE_MAG 10.0
#define TAU 0.02
#define X_THRESHOLD 2.4
#define MAX_STEPS 500

static double start_value(fg_rng *rng) { return -0.05 + 0.1 * (double)fg_rng_uniform(rng); }

static void cartpole_reset(void *vs, fg_rng *rng, int ramping) {
    (void)ramping;
    fg_cartpole *s = vs;
    s->x = start_value(rng);
    s->x_dot = start_value(rng);
    s->theta = start_value(rng);
    s->theta_dot = start_value(rng);
    s->steps = 0;
}

static float cartpole_step(void *vs, int a, fg_rng *rng, int *done) {
    (void)rng;
    fg_cartpole *s = vs;
    const double theta_threshold = 12.0 * 2.0 * M_PI / 360.0;
    double force = a == 1 ? FORCE_MAG : -FORCE_MAG;
    double c = cos(s->theta), sn = sin(s->theta);
    double temp = (force + POLE_MASS_LENGTH * s->theta_dot * s->theta_dot * sn) / TOTAL_MASS;
    double theta_acc = (GRAVITY * sn - c * temp) / (HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * c * c / TOTAL_MASS));
    double x_acc = temp - POLE_MASS_LENGTH * theta_acc * c / TOTAL_MASS;
    /* gym's default "euler" integrator: positions use the old velocities */
    s->x += TAU * s->x_dot;
    s->x_dot += TAU * x_acc;
    s->theta += TAU * s->theta_dot;
    s->theta_dot += TAU * theta_acc;
    s->steps++;
    int terminated = s->x < -X_THRESHOLD || s->x > X_THRESHOLD || s->theta < -theta_threshold ||
                     s->theta > theta_threshold;
    /* Termination wins over truncation when both happen on step 500 (gym reports both; a
     * learner must not bootstrap then). */
    *done = terminated ? FG_ENV_TERMINATED : s->steps >= MAX_STEPS ? FG_ENV_TRUNCATED : FG_ENV_RUNNING;
    return 1.0f;
}

static void cartpole_observe_vec(const void *vs, float *obs) {
    const fg_cartpole *s = vs;
    obs[0] = (float)s->x;
    obs[1] = (float)s->x_dot;
    obs[2] = (float)s->theta;
    obs[3] = (float)s->theta_dot;
}

static int cartpole_ramp(const void *vs) {
    (void)vs;
    return 0;
}

const fg_env_game fg_env_game_cartpole = {
    .name = "cartpole",
    .channels = 0,
    .obs_floats = 4,
    .n_actions = 2,
    .n_minimal = 2,
    .minimal = {0, 1},
    .default_sticky = 0.0f,
    .state_bytes = sizeof(fg_cartpole),
    .reset = cartpole_reset,
    .step = cartpole_step,
    .observe = NULL,
    .observe_vec = cartpole_observe_vec,
    .ramp = cartpole_ramp,
};
