/* Freeway, ported from MinAtar v1.0.15 (minatar/environments/freeway.py, read as the rulebook).
 * The chicken lives in column 4 and moves up or down at most once every 3 frames; eight cars,
 * one per row 1-8, move horizontally (one cell every 1-5 frames, either direction) and wrap
 * around. Reaching row 0 gives +1, sends the chicken back to row 9 and re-draws every car's speed
 * and direction; a car on the chicken's cell sends it back to row 9. The episode ends after 2500
 * frames (the 2501st step is the terminal one: the timer starts at 2500 and the episode ends
 * when it goes below 0). No difficulty ramping.
 * Channels: 0 chicken, 1 car, 2-6 the car's trail (the cell behind it), one channel per speed. */
#include <string.h>

#include "rl/env_impl.h"

#define PLAYER_SPEED 3
#define TIME_LIMIT 2500

/* The original draws all eight speeds (uniform 1..5), then all eight directions as
 * sign(U[0,1) - 0.5); we draw the direction as U < 0.5 -> left, else right: the original's
 * sign can be 0 (a car that never moves) only when the draw is exactly 0.5, which we ignore. */
static void randomize_cars(fg_freeway *s, fg_rng *rng, int initialize) {
    int speed[8];
    for (int i = 0; i < 8; i++) speed[i] = 1 + (int)fg_env_below(rng, 5);
    for (int i = 0; i < 8; i++)
        if (fg_env_chance(rng, FG_ENV_P_HALF)) speed[i] = -speed[i];
    for (int i = 0; i < 8; i++) {
        fg_freeway_car *c = &s->cars[i];
        if (initialize) {
            c->x = 0;
            c->y = i + 1;
        }
        c->timer = speed[i] < 0 ? -speed[i] : speed[i];
        c->speed = speed[i];
    }
}

static void freeway_reset(void *vs, fg_rng *rng, int ramping) {
    (void)ramping;
    fg_freeway *s = vs;
    memset(s, 0, sizeof *s);
    randomize_cars(s, rng, 1);
    s->pos = 9;
    s->move_timer = PLAYER_SPEED;
    s->terminate_timer = TIME_LIMIT;
}

FG_ENV_HOT static float freeway_step(void *vs, int a, fg_rng *rng, int *done) {
    fg_freeway *s = vs;
    float r = 0.0f;
    if (s->terminal) {
        *done = FG_ENV_TERMINATED;
        return r;
    }
    /* up or down when the chicken may move, as a clamped offset: no branch on the action */
    int dy = (a == FG_ACT_D) - (a == FG_ACT_U);
    int moves = (dy != 0) & (s->move_timer == 0);
    int p = s->pos + dy;
    p = p < 0 ? 0 : p > 9 ? 9 : p;
    s->pos = fg_env_sel(moves, p, s->pos);
    s->move_timer = fg_env_sel(moves, PLAYER_SPEED, s->move_timer);
    if (s->pos == 0) {
        r += 1.0f;
        randomize_cars(s, rng, 0);
        s->pos = 9;
    }
    /* A car hits the chicken when it is on the chicken's cell before it moves or after, and the
     * chicken goes back to row 9. The original checks car by car against the current row, which
     * a hit changes to 9; checking every car against the row before the loop gives the same
     * result (any hit ends on row 9, and once there a later hit leaves it there), and lets the
     * cars move without a dependency from one to the next or a branch. */
    int pos = s->pos, hit = 0;
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        fg_freeway_car *c = &s->cars[i];
        int row = c->y == pos;
        hit |= row & (c->x == 4);
        int move = c->timer == 0, speed = c->speed < 0 ? -c->speed : c->speed;
        c->timer = move ? speed : c->timer - 1;
        int x = c->x + (move ? (c->speed > 0 ? 1 : -1) : 0);
        x = x < 0 ? 9 : x > 9 ? 0 : x;
        c->x = x;
        hit |= row & move & (x == 4);
    }
    s->pos = hit ? 9 : pos;
    s->move_timer -= s->move_timer > 0;
    s->terminate_timer--;
    if (s->terminate_timer < 0) s->terminal = 1;
    *done = s->terminal ? FG_ENV_TERMINATED : FG_ENV_RUNNING;
    return r;
}

FG_ENV_HOT static void freeway_observe(const void *vs, uint8_t *obs) {
    const fg_freeway *s = vs;
    fg_env_clear(obs, 7 * 100);
    obs[0 * 100 + s->pos * 10 + 4] = 1;
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        const fg_freeway_car *c = &s->cars[i];
        int cell = c->y * 10 + c->x;
        obs[1 * 100 + cell] = 1;
        /* the trail, on the channel of the car's speed, wrapping as the cars do */
        int right = c->speed > 0, back = c->x + 1 - 2 * right;
        int wrap = back < 0 ? 10 : back > 9 ? -10 : 0;
        int speed = right ? c->speed : -c->speed;
        obs[(1 + speed) * 100 + cell + 1 - 2 * right + wrap] = 1;
    }
}

static int freeway_ramp(const void *vs) {
    (void)vs;
    return 0;
}

FG_ENV_STEP_BATCH(freeway_step_batch, freeway_step, NULL, freeway_observe, freeway_reset)

const fg_env_game fg_env_game_freeway = {
    .name = "freeway",
    .channels = 7,
    .obs_floats = 700,
    .n_actions = 6,
    .n_minimal = 3,
    .minimal = {FG_ACT_N, FG_ACT_U, FG_ACT_D},
    .default_sticky = 0.1f,
    .state_bytes = sizeof(fg_freeway),
    .reset = freeway_reset,
    .step = freeway_step,
    .observe = freeway_observe,
    .step_batch = freeway_step_batch,
    .ramp = freeway_ramp,
};
