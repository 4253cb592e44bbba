/* Breakout, ported from MinAtar v1.0.15 (minatar/environments/breakout.py, read as the rulebook).
 * A paddle on row 9, a ball moving only along diagonals, three rows of bricks (rows 1-3). +1 per
 * brick; when no brick is left and the ball reaches the paddle row, the three rows come back.
 * The ball reflects off walls and bricks; off the paddle it goes back up, straight if the paddle
 * was under its old column, to the other side if the paddle is under its new column. The episode
 * ends when the ball reaches row 9 away from the paddle. No difficulty ramping.
 * Channels: 0 paddle, 1 ball, 2 trail (the ball's previous cell), 3 brick. */
#include <string.h>

#include "rl/env_impl.h"

/* direction d moves by (dx[d], dy[d]); reflections as permutations of the four directions */
static const int dx[4] = {-1, 1, 1, -1}, dy[4] = {-1, -1, 1, 1};
static const int flip_x[4] = {1, 0, 3, 2}; /* off a side wall */
static const int flip_y[4] = {3, 2, 1, 0}; /* off the ceiling, a brick, the paddle's middle */
static const int flip_xy[4] = {2, 3, 0, 1}; /* off the paddle's corner: back the way it came */

static void breakout_reset(void *vs, fg_rng *rng, int ramping) {
    (void)ramping;
    fg_breakout *s = vs;
    memset(s, 0, sizeof *s);
    s->ball_y = 3;
    if (fg_env_below(rng, 2) == 0) {
        s->ball_x = 0;
        s->ball_dir = 2;
    } else {
        s->ball_x = 9;
        s->ball_dir = 3;
    }
    s->pos = 4;
    for (int y = 1; y <= 3; y++) s->brick[y] = 0x3FF;
    s->last_x = s->ball_x;
    s->last_y = s->ball_y;
}

static int bricks_left(const fg_breakout *s) {
    for (int y = 0; y < 10; y++)
        if (s->brick[y]) return 1;
    return 0;
}

FG_ENV_HOT static float breakout_step(void *vs, int a, fg_rng *rng, int *done) {
    (void)rng;
    fg_breakout *s = vs;
    float r = 0.0f;
    if (s->terminal) {
        *done = FG_ENV_TERMINATED;
        return r;
    }
    /* left and right as offsets, clamped: no branch on the (random) action */
    static const int8_t move[FG_ACT_COUNT] = {0, -1, 0, 1, 0, 0};
    int pos = s->pos + move[a];
    s->pos = pos < 0 ? 0 : pos > 9 ? 9 : pos;

    s->last_x = s->ball_x;
    s->last_y = s->ball_y;
    int nx = s->ball_x + dx[s->ball_dir], ny = s->ball_y + dy[s->ball_dir];
    int strike_now = 0;
    if (nx < 0 || nx > 9) {
        nx = nx < 0 ? 0 : 9;
        s->ball_dir = flip_x[s->ball_dir];
    }
    /* The original tests these in this order with elif: the ceiling, then a brick at the new
     * cell, then the paddle row. A brick hit on the step right after another (strike still set)
     * neither scores nor removes it: the ball moves into the brick's cell, as in the original. */
    if (ny < 0) {
        ny = 0;
        s->ball_dir = flip_y[s->ball_dir];
    } else if (s->brick[ny] & (1u << nx)) {
        strike_now = 1;
        if (!s->strike) {
            r += 1.0f;
            s->strike = 1;
            s->brick[ny] &= (uint16_t)~(1u << nx);
            ny = s->last_y;
            s->ball_dir = flip_y[s->ball_dir];
        }
    } else if (ny == 9) {
        if (!bricks_left(s))
            for (int y = 1; y <= 3; y++) s->brick[y] = 0x3FF;
        if (s->ball_x == s->pos) {
            s->ball_dir = flip_y[s->ball_dir];
            ny = s->last_y;
        } else if (nx == s->pos) {
            s->ball_dir = flip_xy[s->ball_dir];
            ny = s->last_y;
        } else {
            s->terminal = 1;
        }
    }
    if (!strike_now) s->strike = 0;
    s->ball_x = nx;
    s->ball_y = ny;
    *done = s->terminal ? FG_ENV_TERMINATED : FG_ENV_RUNNING;
    return r;
}

FG_ENV_HOT static void breakout_observe(const void *vs, uint8_t *obs) {
    const fg_breakout *s = vs;
    fg_env_clear(obs, 4 * 100);
    obs[0 * 100 + 9 * 10 + s->pos] = 1;
    obs[1 * 100 + s->ball_y * 10 + s->ball_x] = 1;
    obs[2 * 100 + s->last_y * 10 + s->last_x] = 1;
    /* Bricks live on rows 1-3 (the rules put them nowhere else): those three rows, 30 cells
     * from one mask, in one 32-byte store that also writes row 4's first two cells (0 here), and
     * the other seven rows only if a hand-made state has bricks there. */
    uint8_t *bricks = obs + 3 * 100;
    uint32_t rows = (s->brick[1] & 0x3FFu) | (s->brick[2] & 0x3FFu) << 10 | (s->brick[3] & 0x3FFu) << 20;
    fg_env_put_bits32(bricks + 10, rows);
    if (__builtin_expect(s->brick[0] | s->brick[4] | s->brick[5] | s->brick[6] | s->brick[7] | s->brick[8] | s->brick[9], 0))
        for (int y = 0; y < 10; y++)
            if (y < 1 || y > 3) fg_env_put_row(bricks + y * 10, s->brick[y]);
}

static int breakout_ramp(const void *vs) {
    (void)vs;
    return 0;
}

FG_ENV_STEP_BATCH(breakout_step_batch, breakout_step, NULL, breakout_observe, breakout_reset)

const fg_env_game fg_env_game_breakout = {
    .name = "breakout",
    .channels = 4,
    .obs_floats = 400,
    .n_actions = 6,
    .n_minimal = 3,
    .minimal = {FG_ACT_N, FG_ACT_L, FG_ACT_R},
    .default_sticky = 0.1f,
    .state_bytes = sizeof(fg_breakout),
    .reset = breakout_reset,
    .step = breakout_step,
    .observe = breakout_observe,
    .step_batch = breakout_step_batch,
    .ramp = breakout_ramp,
};
