/* Tests of the RL environments (include/frugal/rl.h, src/rl): hand-made situations in each game
 * whose outcome MinAtar's rules (kenjyoung/MinAtar v1.0.15) fix, stepped through the game's own
 * step function on a state written by hand (src/rl/env_impl.h); CartPole's thresholds, time
 * limit and one step of its dynamics worked out by hand; and the batched interface: same seed
 * same trajectory, env streams independent of the batch size, sticky-action frequency, terminal
 * rewards reported on the terminal step and counted in the episode, auto-reset, the final
 * observation, minimal action sets, u8 and f32 observations, and the errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "../src/rl/env_impl.h"

/* Compares two ints and says what differed. */
#define EXPECT_INT(what, got, want)                                                                \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        if (g_ != w_) {                                                                            \
            fprintf(stderr, "%s:%d: %s: got %lld, expected %lld\n", __FILE__, __LINE__, (what), g_, w_); \
            fg_test_failures++;                                                                    \
        }                                                                                          \
    } while (0)

static fg_rng rng;

/* One step of a game's rules; returns the reward, *done gets the fg_env_done value. */
static float step(const fg_env_game *g, void *st, int a, int *done) {
    int d = 0;
    float r = g->step(st, a, &rng, &d);
    if (done) *done = d;
    return r;
}

static int cell(const uint8_t *obs, int c, int y, int x) { return obs[c * 100 + y * 10 + x]; }

/* ---------------------------------------------------------------- breakout */

static void test_breakout(void) {
    const fg_env_game *g = &fg_env_game_breakout;
    fg_breakout s;
    int done;

    /* Wall: moving up-right from column 9 stays in column 9 and turns up-left. */
    g->reset(&s, &rng, 1);
    s.ball_x = 9, s.ball_y = 5, s.ball_dir = 1, s.pos = 0;
    float r = step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("breakout wall: x", s.ball_x, 9);
    EXPECT_INT("breakout wall: y", s.ball_y, 4);
    EXPECT_INT("breakout wall: dir", s.ball_dir, 0);
    EXPECT_INT("breakout wall: reward", r, 0);
    /* Brick: the next cell (8, 3) is a brick: +1, the brick goes, the ball stays on row 4 and
     * turns down (up-left -> down-left). */
    r = step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("breakout brick: reward", r, 1);
    EXPECT_INT("breakout brick: brick removed", (s.brick[3] >> 8) & 1, 0);
    EXPECT_INT("breakout brick: other bricks stay", __builtin_popcount(s.brick[3]), 9);
    EXPECT_INT("breakout brick: x", s.ball_x, 8);
    EXPECT_INT("breakout brick: y", s.ball_y, 4);
    EXPECT_INT("breakout brick: dir", s.ball_dir, 3);
    EXPECT_INT("breakout brick: not terminal", done, FG_ENV_RUNNING);
    /* The trail is where the ball was. */
    uint8_t obs[1000];
    fg_env_render_u8(g, &s, obs);
    EXPECT_INT("breakout obs: ball", cell(obs, 1, 4, 8), 1);
    EXPECT_INT("breakout obs: trail", cell(obs, 2, 4, 9), 1);
    EXPECT_INT("breakout obs: paddle", cell(obs, 0, 9, 0), 1);
    EXPECT_INT("breakout obs: removed brick", cell(obs, 3, 3, 8), 0);
    EXPECT_INT("breakout obs: a brick", cell(obs, 3, 3, 7), 1);

    /* A brick right after a brick hit (strike still set) neither scores nor goes: the ball moves
     * into its cell (the original's rule). */
    g->reset(&s, &rng, 1);
    s.ball_x = 5, s.ball_y = 4, s.ball_dir = 0, s.strike = 1;
    r = step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("breakout double strike: reward", r, 0);
    EXPECT_INT("breakout double strike: brick stays", (s.brick[3] >> 4) & 1, 1);
    EXPECT_INT("breakout double strike: ball in the brick's row", s.ball_y, 3);
    EXPECT_INT("breakout double strike: strike stays", s.strike, 1);

    /* Ceiling: up-right from row 0 stays on row 0 and turns down-right. */
    g->reset(&s, &rng, 1);
    memset(s.brick, 0, sizeof s.brick);
    s.brick[5] = 1; /* one brick left somewhere, so no new rows */
    s.ball_x = 2, s.ball_y = 0, s.ball_dir = 1;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("breakout ceiling: x", s.ball_x, 3);
    EXPECT_INT("breakout ceiling: y", s.ball_y, 0);
    EXPECT_INT("breakout ceiling: dir", s.ball_dir, 2);

    /* Paddle under the ball's old column: straight back up (down-right -> up-right), row 8. */
    g->reset(&s, &rng, 1);
    s.ball_x = 4, s.ball_y = 8, s.ball_dir = 2, s.pos = 4;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("breakout paddle: x", s.ball_x, 5);
    EXPECT_INT("breakout paddle: y", s.ball_y, 8);
    EXPECT_INT("breakout paddle: dir", s.ball_dir, 1);
    EXPECT_INT("breakout paddle: not terminal", done, FG_ENV_RUNNING);
    /* Paddle under the new column only (its corner): back the way it came (-> up-left). The
     * paddle moves first: it is at 3, the action moves it to 4. */
    g->reset(&s, &rng, 1);
    s.ball_x = 3, s.ball_y = 8, s.ball_dir = 2, s.pos = 3;
    step(g, &s, FG_ACT_R, &done);
    EXPECT_INT("breakout corner: paddle moved", s.pos, 4);
    EXPECT_INT("breakout corner: x", s.ball_x, 4);
    EXPECT_INT("breakout corner: y", s.ball_y, 8);
    EXPECT_INT("breakout corner: dir", s.ball_dir, 0);
    /* Missed: terminal, the ball on row 9. */
    g->reset(&s, &rng, 1);
    s.ball_x = 3, s.ball_y = 8, s.ball_dir = 2, s.pos = 0;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("breakout miss: done", done, FG_ENV_TERMINATED);
    EXPECT_INT("breakout miss: y", s.ball_y, 9);
    /* Cleared: three new rows when the ball reaches the paddle row. */
    g->reset(&s, &rng, 1);
    memset(s.brick, 0, sizeof s.brick);
    s.ball_x = 4, s.ball_y = 8, s.ball_dir = 2, s.pos = 4;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("breakout new rows: row 0", s.brick[0], 0);
    for (int y = 1; y <= 3; y++) EXPECT_INT("breakout new rows: rows 1-3 full", s.brick[y], 0x3FF);
    EXPECT_INT("breakout new rows: row 4", s.brick[4], 0);
    /* Reset: ball on row 3 at a corner, heading down and inwards; paddle at 4. */
    for (int k = 0; k < 20; k++) {
        g->reset(&s, &rng, 1);
        CHECK(s.ball_y == 3 && s.pos == 4);
        CHECK((s.ball_x == 0 && s.ball_dir == 2) || (s.ball_x == 9 && s.ball_dir == 3));
    }
}

/* ---------------------------------------------------------------- space invaders */

static void test_space_invaders(void) {
    const fg_env_game *g = &fg_env_game_space_invaders;
    fg_space_invaders s;
    int done;

    /* Shift: the block (rows 0-3, columns 2-7) moves one column left when the timer is 0; the
     * timer becomes min(24 aliens, 12) and this step's decrement leaves 11. */
    g->reset(&s, &rng, 1);
    s.alien_move_timer = 0;
    step(g, &s, FG_ACT_N, &done);
    for (int y = 0; y < 4; y++) EXPECT_INT("invaders shift left: row", s.alien[y], 0x7E);
    EXPECT_INT("invaders shift: timer", s.alien_move_timer, 11);
    EXPECT_INT("invaders shift: dir", s.alien_dir, -1);
    /* Edge: with column 0 occupied and heading left, the block turns and moves down a row. */
    g->reset(&s, &rng, 1);
    for (int y = 0; y < 4; y++) s.alien[y] = 0x3F; /* columns 0-5 */
    s.alien_move_timer = 0;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("invaders edge: dir", s.alien_dir, 1);
    EXPECT_INT("invaders edge: row 0 empty", s.alien[0], 0);
    for (int y = 1; y <= 4; y++) EXPECT_INT("invaders edge: rows 1-4", s.alien[y], 0x3F);
    /* and at the right edge heading right */
    g->reset(&s, &rng, 1);
    for (int y = 0; y < 4; y++) s.alien[y] = 0x3F0; /* columns 4-9 */
    s.alien_dir = 1;
    s.alien_move_timer = 0;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("invaders right edge: dir", s.alien_dir, -1);
    EXPECT_INT("invaders right edge: row 4", s.alien[4], 0x3F0);
    /* Speed-up: with 3 aliens the move interval is 3 (2 after this step's decrement). */
    g->reset(&s, &rng, 1);
    memset(s.alien, 0, sizeof s.alien);
    s.alien[0] = 0x38;
    s.alien_move_timer = 0;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("invaders speed-up: timer", s.alien_move_timer, 2);

    /* The block moving down while it occupies row 9 ends the episode, even with the alien away
     * from the cannon (one alien in row 9, column 0, heading left; cannon in column 5). */
    g->reset(&s, &rng, 1);
    memset(s.alien, 0, sizeof s.alien);
    s.alien[9] = 0x001;
    s.alien_dir = -1;
    s.alien_move_timer = 0;
    s.pos = 5;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("invaders down from row 9: dir", s.alien_dir, 1);
    EXPECT_INT("invaders down from row 9: done", done, FG_ENV_TERMINATED);

    /* Enemy bullet: the shooter is the lowest alien of the column nearest the cannon (column 5:
     * row 3); the bullet appears there and moves down a row on each later step. */
    g->reset(&s, &rng, 1);
    s.alien_shot_timer = 0;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("invaders enemy shot: row 3", s.e_bullet[3], 1 << 5);
    EXPECT_INT("invaders enemy shot: timer", s.alien_shot_timer, 9);
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("invaders enemy bullet moved", s.e_bullet[4], 1 << 5);
    EXPECT_INT("invaders enemy bullet left row 3", s.e_bullet[3], 0);
    /* Ties go to the left column (the original's stable sort): aliens in columns 3 and 7 only,
     * cannon at 5. */
    g->reset(&s, &rng, 1);
    memset(s.alien, 0, sizeof s.alien);
    s.alien[0] = (1 << 3) | (1 << 7);
    s.alien[2] = 1 << 7;
    s.alien_shot_timer = 0;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("invaders tie: left column shoots", s.e_bullet[0], 1 << 3);
    EXPECT_INT("invaders tie: not the right one", s.e_bullet[2], 0);
    /* A bullet reaching row 9 on the cannon's column ends the episode. */
    g->reset(&s, &rng, 1);
    s.e_bullet[8] = 1 << 5;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("invaders enemy bullet hits: done", done, FG_ENV_TERMINATED);
    /* ... but not if the cannon moves away first. */
    g->reset(&s, &rng, 1);
    s.e_bullet[8] = 1 << 5;
    step(g, &s, FG_ACT_L, &done);
    EXPECT_INT("invaders dodge: done", done, FG_ENV_RUNNING);

    /* Player bullet: fired from row 9, it is on row 8 after the step and kills an alien there. */
    g->reset(&s, &rng, 1);
    memset(s.alien, 0, sizeof s.alien);
    s.alien[8] = 1 << 5;
    s.alien[0] = 1; /* another alien so the wave does not respawn */
    float r = step(g, &s, FG_ACT_F, &done);
    EXPECT_INT("invaders kill: reward", r, 1);
    EXPECT_INT("invaders kill: alien gone", s.alien[8], 0);
    EXPECT_INT("invaders kill: bullet gone", s.f_bullet[8], 0);
    EXPECT_INT("invaders kill: cool-down", s.shot_timer, 4);
    /* cool-down: firing again does nothing */
    step(g, &s, FG_ACT_F, &done);
    uint16_t any = 0;
    for (int y = 0; y < 10; y++) any |= s.f_bullet[y];
    EXPECT_INT("invaders cool-down: no bullet", any, 0);

    /* Ramping: killing the last alien brings a new wave and lowers the move interval by one. */
    for (int ramping = 1; ramping >= 0; ramping--) {
        g->reset(&s, &rng, ramping);
        memset(s.alien, 0, sizeof s.alien);
        s.alien[8] = 1 << 5;
        r = step(g, &s, FG_ACT_F, &done);
        EXPECT_INT("invaders wave: reward", r, 1);
        for (int y = 0; y < 4; y++) EXPECT_INT("invaders wave: new block", s.alien[y], 0xFC);
        EXPECT_INT("invaders wave: interval", s.enemy_move_interval, ramping ? 11 : 12);
        EXPECT_INT("invaders wave: ramp index", g->ramp(&s), ramping ? 1 : 0);
    }
    /* ... down to 6 and no further */
    g->reset(&s, &rng, 1);
    s.enemy_move_interval = 6;
    memset(s.alien, 0, sizeof s.alien);
    s.alien[8] = 1 << 5;
    step(g, &s, FG_ACT_F, &done);
    EXPECT_INT("invaders wave: floor", s.enemy_move_interval, 6);

    /* Observation: direction channels. */
    uint8_t obs[1000];
    g->reset(&s, &rng, 1);
    fg_env_render_u8(g, &s, obs);
    EXPECT_INT("invaders obs: alien", cell(obs, 1, 0, 2), 1);
    EXPECT_INT("invaders obs: left", cell(obs, 2, 0, 2), 1);
    EXPECT_INT("invaders obs: right", cell(obs, 3, 0, 2), 0);
    EXPECT_INT("invaders obs: cannon", cell(obs, 0, 9, 5), 1);
}

/* ---------------------------------------------------------------- freeway */

static void test_freeway(void) {
    const fg_env_game *g = &fg_env_game_freeway;
    fg_freeway s;
    int done;

    /* Reset: eight cars at x = 0 in rows 1-8, timers = |speed|, chicken at row 9. */
    g->reset(&s, &rng, 1);
    for (int i = 0; i < 8; i++) {
        CHECK(s.cars[i].x == 0 && s.cars[i].y == i + 1);
        int sp = abs(s.cars[i].speed);
        CHECK(sp >= 1 && sp <= 5 && s.cars[i].timer == sp);
    }
    EXPECT_INT("freeway reset: pos", s.pos, 9);

    /* A car on the chicken's cell (column 4) before it moves sends the chicken back. */
    g->reset(&s, &rng, 1);
    s.pos = 5;
    s.cars[4] = (fg_freeway_car){4, 5, 3, 3};
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("freeway hit: pos", s.pos, 9);
    /* A car moving onto it too. */
    g->reset(&s, &rng, 1);
    s.pos = 5;
    s.cars[4] = (fg_freeway_car){3, 5, 0, 1};
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("freeway hit after move: car x", s.cars[4].x, 4);
    EXPECT_INT("freeway hit after move: pos", s.pos, 9);
    /* A car leaving the edge wraps around. */
    g->reset(&s, &rng, 1);
    s.cars[0] = (fg_freeway_car){0, 1, 0, -2};
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("freeway wrap: x", s.cars[0].x, 9);
    EXPECT_INT("freeway wrap: timer", s.cars[0].timer, 2);

    /* Moving: only when the move timer is 0; it is then 3 (2 after this step). */
    g->reset(&s, &rng, 1);
    for (int i = 0; i < 8; i++) s.cars[i].y = 0, s.cars[i].x = 0; /* out of the way: no lane at column 4 */
    s.move_timer = 0;
    step(g, &s, FG_ACT_U, &done);
    EXPECT_INT("freeway up: pos", s.pos, 8);
    EXPECT_INT("freeway up: timer", s.move_timer, 2);
    step(g, &s, FG_ACT_U, &done);
    EXPECT_INT("freeway up again too soon: pos", s.pos, 8);

    /* The top: +1, back to row 9, new speeds; the cars keep their places. */
    g->reset(&s, &rng, 1);
    for (int i = 0; i < 8; i++) s.cars[i].x = 7, s.cars[i].timer = 9, s.cars[i].speed = 9;
    s.pos = 1;
    s.move_timer = 0;
    float r = step(g, &s, FG_ACT_U, &done);
    EXPECT_INT("freeway top: reward", r, 1);
    EXPECT_INT("freeway top: pos", s.pos, 9);
    for (int i = 0; i < 8; i++) {
        CHECK(abs(s.cars[i].speed) >= 1 && abs(s.cars[i].speed) <= 5);
        EXPECT_INT("freeway top: car kept its column", s.cars[i].x, 7);
    }

    /* Time limit: the step that takes the timer below 0 is terminal. */
    g->reset(&s, &rng, 1);
    s.terminate_timer = 0;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("freeway timer: done", done, FG_ENV_TERMINATED);
    g->reset(&s, &rng, 1);
    s.terminate_timer = 1;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("freeway timer: not yet", done, FG_ENV_RUNNING);

    /* Observation: trail behind the car in the channel of its speed, wrapping. */
    uint8_t obs[1000];
    g->reset(&s, &rng, 1);
    s.cars[2] = (fg_freeway_car){0, 3, 1, 4};
    fg_env_render_u8(g, &s, obs);
    EXPECT_INT("freeway obs: car", cell(obs, 1, 3, 0), 1);
    EXPECT_INT("freeway obs: trail speed 4 wraps", cell(obs, 5, 3, 9), 1);
    EXPECT_INT("freeway obs: chicken", cell(obs, 0, 9, 4), 1);
}

/* ---------------------------------------------------------------- asterix */

/* Asterix slot i (row i + 1) holding MinAtar's entity [x, i + 1, right, gold] (active 1) or None
 * (active 0). */
static void asterix_put(fg_asterix *s, int slot, int active, int x, int right, int gold) {
    s->active[slot] = (int16_t)active;
    s->x[slot] = (int16_t)x;
    s->right[slot] = (int16_t)right;
    s->gold[slot] = (int16_t)gold;
}

static void test_asterix(void) {
    const fg_env_game *g = &fg_env_game_asterix;
    fg_asterix s;
    int done;

    /* Spawn: when the timer is 0, one entity appears at a side of a free row, heading inwards;
     * with seven slots taken it goes to the eighth. */
    g->reset(&s, &rng, 1);
    for (int i = 0; i < 8; i++) asterix_put(&s, i, i != 6, 5, 1, 1);
    s.spawn_timer = 0;
    s.move_timer = 3;
    s.player_x = 0, s.player_y = 1;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("asterix spawn: slot 6 (row 7) active", s.active[6], 1);
    EXPECT_INT("asterix spawn: side", s.x[6], s.right[6] ? 0 : 9);
    EXPECT_INT("asterix spawn: timer", s.spawn_timer, 9);
    /* full: nothing happens */
    s.spawn_timer = 0;
    step(g, &s, FG_ACT_N, &done);
    int active = 0;
    for (int i = 0; i < 8; i++) active += s.active[i];
    EXPECT_INT("asterix spawn full", active, 8);

    /* Move: every entity moves one cell when the move timer is 0; off the screen it goes. */
    g->reset(&s, &rng, 1);
    asterix_put(&s, 0, 1, 9, 1, 0);
    asterix_put(&s, 1, 1, 4, 0, 1);
    s.move_timer = 0;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("asterix move off: gone", s.active[0], 0);
    EXPECT_INT("asterix move: x", s.x[1], 3);
    EXPECT_INT("asterix move: timer", s.move_timer, 4);

    /* Gold on the player's cell: +1 and it goes; an enemy: terminal. */
    g->reset(&s, &rng, 1);
    asterix_put(&s, 4, 1, 5, 1, 1);
    float r = step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("asterix gold: reward", r, 1);
    EXPECT_INT("asterix gold: gone", s.active[4], 0);
    EXPECT_INT("asterix gold: not terminal", done, FG_ENV_RUNNING);
    g->reset(&s, &rng, 1);
    asterix_put(&s, 4, 1, 5, 1, 0);
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("asterix enemy: terminal", done, FG_ENV_TERMINATED);
    /* ... also when it moves onto the player, and when the player moves onto it */
    g->reset(&s, &rng, 1);
    asterix_put(&s, 4, 1, 4, 1, 0);
    s.move_timer = 0;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("asterix enemy moves in: terminal", done, FG_ENV_TERMINATED);
    g->reset(&s, &rng, 1);
    asterix_put(&s, 3, 1, 5, 1, 1);
    r = step(g, &s, FG_ACT_U, &done);
    EXPECT_INT("asterix player moves onto gold: reward", r, 1);
    /* The player stays within rows 1-8. */
    g->reset(&s, &rng, 1);
    s.player_y = 1;
    step(g, &s, FG_ACT_U, &done);
    EXPECT_INT("asterix top row", s.player_y, 1);

    /* Ramping: when the ramp timer has gone below 0 the spawn interval drops by one; the move
     * interval only on odd ramp indices. */
    g->reset(&s, &rng, 1);
    s.ramp_timer = -1;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("asterix ramp 1: spawn", s.spawn_speed, 9);
    EXPECT_INT("asterix ramp 1: move", s.move_speed, 5);
    EXPECT_INT("asterix ramp 1: index", s.ramp_index, 1);
    EXPECT_INT("asterix ramp 1: timer", s.ramp_timer, 100);
    s.ramp_timer = -1;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("asterix ramp 2: spawn", s.spawn_speed, 8);
    EXPECT_INT("asterix ramp 2: move", s.move_speed, 4);
    /* Both intervals stop at 1: from 2 (odd ramp index) a ramp takes both to 1; after that
     * ramping stops and both stay at 1. */
    g->reset(&s, &rng, 1);
    s.move_speed = 2, s.spawn_speed = 2, s.ramp_index = 1, s.ramp_timer = -1;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("asterix ramp floor: move", s.move_speed, 1);
    EXPECT_INT("asterix ramp floor: spawn", s.spawn_speed, 1);
    EXPECT_INT("asterix ramp floor: index", s.ramp_index, 2);
    s.ramp_index = 3, s.ramp_timer = -1;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("asterix ramp floor again: move", s.move_speed, 1);
    EXPECT_INT("asterix ramp floor again: spawn", s.spawn_speed, 1);
    /* 102 steps between ramps from a reset (100 down to -1, then the ramp) */
    g->reset(&s, &rng, 1);
    int steps = 0;
    while (s.ramp_index == 0 && steps < 1000) {
        memset(s.active, 0, sizeof s.active); /* keep the player safe */
        s.spawn_timer = 5;
        step(g, &s, FG_ACT_N, &done);
        steps++;
    }
    EXPECT_INT("asterix ramp period", steps, 102);
    g->reset(&s, &rng, 0);
    s.ramp_timer = -1;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("asterix no ramping", s.spawn_speed, 10);
}

/* ---------------------------------------------------------------- seaquest */

/* A quiet Seaquest: nothing spawns for a long time. */
static void seaquest_quiet(fg_seaquest *s) {
    fg_env_game_seaquest.reset(s, &rng, 1);
    s->e_spawn_timer = 1000;
    s->d_spawn_timer = 1000;
}

static void test_seaquest(void) {
    const fg_env_game *g = &fg_env_game_seaquest;
    fg_seaquest s;
    int done;

    /* Oxygen: down by one per step below the surface; the step that finds it at 0 is terminal. */
    seaquest_quiet(&s);
    s.sub_y = 3, s.surface = 0, s.oxygen = 2;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("seaquest oxygen: 1", s.oxygen, 1);
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("seaquest oxygen: 0", s.oxygen, 0);
    EXPECT_INT("seaquest oxygen 0: not yet", done, FG_ENV_RUNNING);
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("seaquest oxygen out: terminal", done, FG_ENV_TERMINATED);
    /* At the surface oxygen does not drop. */
    seaquest_quiet(&s);
    for (int k = 0; k < 10; k++) step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("seaquest surface: oxygen kept", s.oxygen, 200);
    EXPECT_INT("seaquest surface: running", done, FG_ENV_RUNNING);

    /* Surfacing with 6 divers pays oxygen * 10 / 200, refills, ramps; the original then leaves
     * the diver count at -1 (see env_seaquest.c), so the next surfacing needs no diver. */
    seaquest_quiet(&s);
    s.sub_y = 1, s.surface = 0, s.diver_count = 6, s.oxygen = 101;
    float r = step(g, &s, FG_ACT_U, &done);
    EXPECT_INT("seaquest 6 divers: reward", r, 5);
    EXPECT_INT("seaquest 6 divers: oxygen", s.oxygen, 200);
    EXPECT_INT("seaquest 6 divers: count", s.diver_count, -1);
    EXPECT_INT("seaquest 6 divers: ramp", s.ramp_index, 1);
    EXPECT_INT("seaquest 6 divers: spawn interval", s.e_spawn_speed, 19);
    EXPECT_INT("seaquest 6 divers: move interval (even index: kept)", s.move_speed, 5);
    EXPECT_INT("seaquest 6 divers: running", done, FG_ENV_RUNNING);
    uint8_t obs[1000];
    fg_env_render_u8(g, &s, obs);
    int gauge = 0;
    for (int x = 0; x < 10; x++) gauge += cell(obs, 8, 9, x);
    EXPECT_INT("seaquest 6 divers: gauge empty", gauge, 0);
    /* With 3: one diver off, no reward. */
    seaquest_quiet(&s);
    s.sub_y = 1, s.surface = 0, s.diver_count = 3, s.oxygen = 50;
    r = step(g, &s, FG_ACT_U, &done);
    EXPECT_INT("seaquest 3 divers: reward", r, 0);
    EXPECT_INT("seaquest 3 divers: count", s.diver_count, 2);
    EXPECT_INT("seaquest 3 divers: oxygen", s.oxygen, 200);
    fg_env_render_u8(g, &s, obs);
    EXPECT_INT("seaquest gauge: cell 7", cell(obs, 8, 9, 7), 1);
    EXPECT_INT("seaquest gauge: cell 8", cell(obs, 8, 9, 8), 1);
    EXPECT_INT("seaquest gauge: cell 6", cell(obs, 8, 9, 6), 0);
    EXPECT_INT("seaquest oxygen gauge: 10 cells", cell(obs, 7, 9, 9), 1);
    /* With none: terminal. */
    seaquest_quiet(&s);
    s.sub_y = 1, s.surface = 0, s.diver_count = 0;
    step(g, &s, FG_ACT_U, &done);
    EXPECT_INT("seaquest no diver: terminal", done, FG_ENV_TERMINATED);

    /* Diver pickup: on the sub's cell (before or after its move), while fewer than 6 aboard. */
    seaquest_quiet(&s);
    s.sub_x = 4, s.sub_y = 4, s.surface = 0;
    s.divers[0] = (fg_seaquest_obj){4, 4, 1, 3, 0};
    s.divers[1] = (fg_seaquest_obj){3, 6, 1, 0, 0};
    s.n_divers = 2;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("seaquest pickup: count", s.diver_count, 1);
    EXPECT_INT("seaquest pickup: divers left", s.n_divers, 1);
    EXPECT_INT("seaquest diver moves: x", s.divers[0].x, 4);
    EXPECT_INT("seaquest diver moves: timer", s.divers[0].move_timer, 5);
    seaquest_quiet(&s);
    s.sub_x = 4, s.sub_y = 4, s.surface = 0, s.diver_count = 6;
    s.divers[0] = (fg_seaquest_obj){4, 4, 1, 3, 0};
    s.n_divers = 1;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("seaquest full: no pickup", s.diver_count, 6);
    EXPECT_INT("seaquest full: diver stays", s.n_divers, 1);

    /* At most 6 aboard also when two divers reach the sub in one step: with 5 aboard, two
     * divers moving onto the sub from either side (the list is walked backwards: divers[1]
     * first) bring the count to 6; the other stays in the water, on the sub's cell. */
    seaquest_quiet(&s);
    s.sub_x = 5, s.sub_y = 5, s.surface = 0, s.diver_count = 5;
    s.divers[0] = (fg_seaquest_obj){4, 5, 1, 0, 0};
    s.divers[1] = (fg_seaquest_obj){6, 5, 0, 0, 0};
    s.n_divers = 2;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("seaquest two move onto a 5: count", s.diver_count, 6);
    EXPECT_INT("seaquest two move onto a 5: one left", s.n_divers, 1);
    EXPECT_INT("seaquest two move onto a 5: the left one stays", s.divers[0].right, 1);
    EXPECT_INT("seaquest two move onto a 5: on the sub's cell", s.divers[0].x, 5);
    /* ... and when both are on the sub's cell already (picked up before moving) */
    seaquest_quiet(&s);
    s.sub_x = 5, s.sub_y = 5, s.surface = 0, s.diver_count = 5;
    s.divers[0] = (fg_seaquest_obj){5, 5, 1, 3, 0};
    s.divers[1] = (fg_seaquest_obj){5, 5, 0, 3, 0};
    s.n_divers = 2;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("seaquest two on a 5: count", s.diver_count, 6);
    EXPECT_INT("seaquest two on a 5: one left", s.n_divers, 1);
    EXPECT_INT("seaquest two on a 5: the first one stays", s.divers[0].right, 1);

    /* Enemy sub bullets: a sub whose shot timer is 0 fires from its cell; the bullet moves at
     * once, one cell per step in the sub's direction; on the player's cell it is terminal. */
    seaquest_quiet(&s);
    s.sub_x = 9, s.sub_y = 7, s.surface = 0;
    s.subs[0] = (fg_seaquest_obj){2, 5, 1, 3, 0};
    s.n_subs = 1;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("seaquest enemy shot: bullets", s.n_e_bullets, 1);
    EXPECT_INT("seaquest enemy shot: x", s.e_bullets[0].x, 3);
    EXPECT_INT("seaquest enemy shot: y", s.e_bullets[0].y, 5);
    EXPECT_INT("seaquest enemy shot: timer", s.subs[0].shot_timer, 10);
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("seaquest enemy bullet moves", s.e_bullets[0].x, 4);
    seaquest_quiet(&s);
    s.sub_x = 5, s.sub_y = 5, s.surface = 0;
    s.e_bullets[0] = (fg_seaquest_obj){4, 5, 1, 0, 0};
    s.n_e_bullets = 1;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("seaquest enemy bullet hits: terminal", done, FG_ENV_TERMINATED);
    /* an enemy fish on the sub: terminal */
    seaquest_quiet(&s);
    s.sub_x = 5, s.sub_y = 5, s.surface = 0;
    s.fish[0] = (fg_seaquest_obj){4, 5, 1, 0, 0};
    s.n_fish = 1;
    step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("seaquest fish hits: terminal", done, FG_ENV_TERMINATED);

    /* Friendly bullet: fired from the sub's cell facing right, it moves at once and kills the
     * fish two cells to the right (+1), both gone. */
    seaquest_quiet(&s);
    s.sub_x = 3, s.sub_y = 5, s.surface = 0, s.sub_right = 1;
    s.fish[0] = (fg_seaquest_obj){5, 5, 1, 9, 0};
    s.n_fish = 1;
    r = step(g, &s, FG_ACT_F, &done);
    EXPECT_INT("seaquest shot: no hit yet", r, 0);
    EXPECT_INT("seaquest shot: bullet x", s.f_bullets[0].x, 4);
    r = step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("seaquest shot: reward", r, 1);
    EXPECT_INT("seaquest shot: fish gone", s.n_fish, 0);
    EXPECT_INT("seaquest shot: bullet gone", s.n_f_bullets, 0);
    /* An enemy moving onto a bullet dies too. */
    seaquest_quiet(&s);
    s.sub_x = 0, s.sub_y = 2, s.surface = 0;
    s.f_bullets[0] = (fg_seaquest_obj){5, 6, 1, 0, 0};
    s.n_f_bullets = 1;
    s.subs[0] = (fg_seaquest_obj){7, 6, 0, 0, 5};
    s.n_subs = 1;
    r = step(g, &s, FG_ACT_N, &done);
    EXPECT_INT("seaquest sub onto bullet: reward", r, 1);
    EXPECT_INT("seaquest sub onto bullet: sub gone", s.n_subs, 0);

    /* Spawns never put an enemy in a row with one going the other way. */
    seaquest_quiet(&s);
    for (int y = 1; y <= 8; y++) s.fish[y - 1] = (fg_seaquest_obj){5, y, 1, 4, 0};
    s.n_fish = 8;
    s.sub_y = 0;
    for (int k = 0; k < 200; k++) {
        s.e_spawn_timer = 0;
        for (int j = 0; j < s.n_fish; j++) s.fish[j].move_timer = 4, s.fish[j].x = 5;
        s.n_subs = 0, s.n_e_bullets = 0;
        step(g, &s, FG_ACT_N, &done);
        for (int j = 8; j < s.n_fish; j++)
            if (!s.fish[j].right) {
                fprintf(stderr, "seaquest spawn: a left-going fish in a right-going row %d\n", s.fish[j].y);
                fg_test_failures++;
            }
        for (int j = 0; j < s.n_subs; j++)
            if (!s.subs[j].right) {
                fprintf(stderr, "seaquest spawn: a left-going sub in a right-going row %d\n", s.subs[j].y);
                fg_test_failures++;
            }
        s.n_fish = 8;
    }

    /* Capacity: the worst case the rules allow (spawn every step, slowest enemies; the sub safe
     * at the surface) stays within the fixed lists. */
    seaquest_quiet(&s);
    s.e_spawn_speed = 1;
    s.e_spawn_timer = 0;
    int most = 0;
    for (int k = 0; k < 20000; k++) {
        step(g, &s, FG_ACT_N, &done);
        int n = s.n_fish + s.n_subs;
        if (n > most) most = n;
        if (done) break;
    }
    EXPECT_INT("seaquest capacity run: still going", done, FG_ENV_RUNNING);
    CHECK(most > 20 && most < FG_SEAQUEST_CAP);
}

/* ---------------------------------------------------------------- cartpole */

static void test_cartpole(void) {
    const fg_env_game *g = &fg_env_game_cartpole;
    fg_cartpole s;
    int done;

    /* One step from rest pushing right, by hand: temp = 10/1.1; theta_acc = -temp / (0.5 *
     * (4/3 - 0.1/1.1)); x_acc = temp - 0.05 * theta_acc / 1.1; Euler with tau 0.02. */
    memset(&s, 0, sizeof s);
    float r = step(g, &s, 1, &done);
    double temp = 10.0 / 1.1, tacc = -temp / (0.5 * (4.0 / 3.0 - 0.1 / 1.1)), xacc = temp - 0.05 * tacc / 1.1;
    CHECK(fabs(s.x) < 1e-12 && fabs(s.theta) < 1e-12);
    CHECK(fabs(s.x_dot - 0.02 * xacc) < 1e-12);
    CHECK(fabs(s.theta_dot - 0.02 * tacc) < 1e-12);
    EXPECT_INT("cartpole reward", r, 1);
    EXPECT_INT("cartpole running", done, FG_ENV_RUNNING);

    /* Position past 2.4: terminated, and the step still pays 1. */
    memset(&s, 0, sizeof s);
    s.x = 2.39, s.x_dot = 1.0;
    r = step(g, &s, 1, &done);
    EXPECT_INT("cartpole x: terminated", done, FG_ENV_TERMINATED);
    EXPECT_INT("cartpole x: reward", r, 1);
    memset(&s, 0, sizeof s);
    s.x = -2.39, s.x_dot = -1.0;
    step(g, &s, 0, &done);
    EXPECT_INT("cartpole -x: terminated", done, FG_ENV_TERMINATED);
    /* Angle past 12 degrees (0.2094 rad). */
    memset(&s, 0, sizeof s);
    s.theta = 0.2, s.theta_dot = 1.0;
    step(g, &s, 1, &done);
    EXPECT_INT("cartpole theta: terminated", done, FG_ENV_TERMINATED);
    memset(&s, 0, sizeof s);
    s.theta = 0.19, s.theta_dot = 0.5;
    step(g, &s, 1, &done);
    EXPECT_INT("cartpole theta 0.2: running", done, FG_ENV_RUNNING);
    /* Step 500: truncated. */
    memset(&s, 0, sizeof s);
    s.steps = 499;
    step(g, &s, 1, &done);
    EXPECT_INT("cartpole 500 steps: truncated", done, FG_ENV_TRUNCATED);
    /* Step 500 ending past 2.4 (or past 12 degrees): terminated, not truncated. The time limit and
     * the fall come together and termination wins, as gym reports terminated = True then: a
     * learner must not bootstrap from a fallen pole. */
    memset(&s, 0, sizeof s);
    s.steps = 499, s.x = 2.39, s.x_dot = 1.0;
    r = step(g, &s, 1, &done);
    EXPECT_INT("cartpole 500 steps, x past 2.4: terminated", done, FG_ENV_TERMINATED);
    EXPECT_INT("cartpole 500 steps, x past 2.4: reward", r, 1);
    memset(&s, 0, sizeof s);
    s.steps = 499, s.theta = 0.2, s.theta_dot = 1.0;
    step(g, &s, 1, &done);
    EXPECT_INT("cartpole 500 steps, theta past 12 degrees: terminated", done, FG_ENV_TERMINATED);
    /* Reset: all four in [-0.05, 0.05]. */
    for (int k = 0; k < 100; k++) {
        g->reset(&s, &rng, 1);
        CHECK(fabs(s.x) <= 0.05 && fabs(s.x_dot) <= 0.05 && fabs(s.theta) <= 0.05 && fabs(s.theta_dot) <= 0.05);
        CHECK(s.steps == 0);
    }
}

/* ---------------------------------------------------------------- the batch */

/* Runs `steps` random steps of a batch, hashing everything it returns. */
static uint64_t run_hash(const char *name, size_t n, uint64_t seed, int steps, size_t env_only) {
    fg_env_batch *b;
    CHECK_OK(fg_env_batch_create(name, n, seed, NULL, &b));
    if (!b) return 0;
    size_t of = fg_env_batch_obs_size(b);
    float *obs = malloc(n * of * sizeof(float));
    float *rew = malloc(n * sizeof(float));
    uint8_t *dn = malloc(n);
    int32_t *act = malloc(n * sizeof(int32_t));
    fg_rng p;
    fg_rng_seed(&p, 99);
    uint64_t h = 1469598103934665603ull;
    for (int t = 0; t < steps; t++) {
        /* env_only: one draw per step for every env, and only env 0 is hashed */
        for (size_t i = 0; i < n; i++)
            act[i] = (env_only && i > 0) ? act[0] : (int32_t)fg_rng_below(&p, (uint64_t)fg_env_batch_num_actions(b));
        CHECK_OK(fg_env_batch_step(b, act, obs, rew, dn));
        size_t m = env_only ? 1 : n;
        const unsigned char *bytes[3] = {(const unsigned char *)obs, (const unsigned char *)rew, dn};
        size_t lens[3] = {m * of * sizeof(float), m * sizeof(float), m};
        for (int k = 0; k < 3; k++)
            for (size_t j = 0; j < lens[k]; j++) h = (h ^ bytes[k][j]) * 1099511628211ull;
    }
    free(obs), free(rew), free(dn), free(act);
    fg_env_batch_destroy(b);
    return h;
}

static void test_determinism(void) {
    for (size_t gi = 0; gi < fg_env_count(); gi++) {
        const char *name = fg_env_name(gi);
        uint64_t a = run_hash(name, 4, 7, 3000, 0), b = run_hash(name, 4, 7, 3000, 0);
        uint64_t c = run_hash(name, 4, 8, 3000, 0);
        if (a != b) {
            fprintf(stderr, "determinism: %s: two runs with seed 7 differ\n", name);
            fg_test_failures++;
        }
        if (a == c) {
            fprintf(stderr, "determinism: %s: seeds 7 and 8 give the same trajectories\n", name);
            fg_test_failures++;
        }
        /* env 0's stream does not depend on how many envs the batch has */
        uint64_t one = run_hash(name, 1, 7, 3000, 1), five = run_hash(name, 5, 7, 3000, 1);
        if (one != five) {
            fprintf(stderr, "determinism: %s: env 0 of a batch of 1 and of 5 differ\n", name);
            fg_test_failures++;
        }
    }
}

/* Pinned trajectories: a long random run of each game in each configuration, hashing every
 * observation byte, reward, done flag, the finished episodes' records and final observations, and
 * the ramp index. The values were computed with the straightforward implementation (clear and
 * redraw every observation) before the speed work on the games (issue 13), so an optimization
 * that changes any outcome, any observation cell or the RNG's draw order fails here. */
static uint64_t pinned_hash(const char *name, fg_dtype dt, int minimal, int ramping, float sticky, int steps) {
    fg_env_options o;
    fg_env_options_init(&o);
    o.obs_dtype = dt;
    o.minimal_actions = minimal;
    o.ramping = ramping;
    o.sticky_prob = sticky;
    enum { N = 3 };
    fg_env_batch *b;
    CHECK_OK(fg_env_batch_create(name, N, 2027, &o, &b));
    if (!b) return 0;
    size_t of = fg_env_batch_obs_size(b), es = fg_dtype_size(dt);
    unsigned char *obs = malloc(N * of * es), *fin = malloc(of * es);
    float rew[N];
    uint8_t dn[N];
    int32_t act[N];
    fg_rng p;
    fg_rng_seed(&p, 31);
    uint64_t h = 1469598103934665603ull;
#define HASH_BYTES(ptr, len)                                                                       \
    do {                                                                                           \
        const unsigned char *q_ = (const unsigned char *)(ptr);                                    \
        for (size_t j_ = 0; j_ < (size_t)(len); j_++) h = (h ^ q_[j_]) * 1099511628211ull;          \
    } while (0)
    fg_env_batch_reset(b, obs);
    HASH_BYTES(obs, N * of * es);
    for (int t = 0; t < steps; t++) {
        for (int i = 0; i < N; i++) act[i] = (int32_t)fg_rng_below(&p, (uint64_t)fg_env_batch_num_actions(b));
        /* every 7th step without observations: a step that skips them must not change later ones */
        int with_obs = t % 7 != 3;
        CHECK_OK(fg_env_batch_step(b, act, with_obs ? obs : NULL, rew, dn));
        if (with_obs) HASH_BYTES(obs, N * of * es);
        HASH_BYTES(rew, sizeof rew);
        HASH_BYTES(dn, sizeof dn);
        for (size_t i = 0; i < N; i++) {
            int r = fg_env_batch_ramp(b, i);
            HASH_BYTES(&r, sizeof r);
            if (!dn[i]) continue;
            double ret;
            int64_t len;
            fg_env_batch_last_episode(b, i, &ret, &len);
            HASH_BYTES(&ret, sizeof ret);
            HASH_BYTES(&len, sizeof len);
            fg_env_batch_final_obs(b, i, fin);
            HASH_BYTES(fin, of * es);
        }
    }
#undef HASH_BYTES
    int64_t ep = fg_env_batch_episodes(b);
    h = (h ^ (uint64_t)ep) * 1099511628211ull;
    free(obs), free(fin);
    fg_env_batch_destroy(b);
    return h;
}

static void test_pinned(void) {
    static const struct {
        const char *name;
        fg_dtype dt;
        int minimal, ramping;
        float sticky;
        int steps;
        uint64_t want;
    } runs[] = {
#include "test_rl_env_pinned.h"
    };
    int print = getenv("FG_PRINT_PINNED") != NULL;
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        uint64_t h = pinned_hash(runs[k].name, runs[k].dt, runs[k].minimal, runs[k].ramping, runs[k].sticky,
                                 runs[k].steps);
        if (print) {
            printf("        {\"%s\", %s, %d, %d, %.2ff, %d, 0x%016llxull},\n", runs[k].name,
                   runs[k].dt == FG_U8 ? "FG_U8" : "FG_F32", runs[k].minimal, runs[k].ramping, (double)runs[k].sticky,
                   runs[k].steps, (unsigned long long)h);
        } else if (h != runs[k].want) {
            fprintf(stderr, "pinned trajectory %s (%s, minimal %d, ramping %d, sticky %.2f): hash %016llx, pinned %016llx\n",
                    runs[k].name, fg_dtype_name(runs[k].dt), runs[k].minimal, runs[k].ramping, (double)runs[k].sticky,
                    (unsigned long long)h, (unsigned long long)runs[k].want);
            fg_test_failures++;
        }
    }
}

/* The games' inlined generator and probability thresholds are fg_rng's numbers and MinAtar's
 * comparisons: the same stream as fg_rng_u64 from the same state, and integer thresholds that
 * decide exactly as fg_rng_uniform(r) < p. */
static void test_env_rng(void) {
    fg_rng a, b;
    fg_rng_seed(&a, 77);
    b = a;
    int differ = 0;
    for (int k = 0; k < 100000; k++) differ += fg_env_u64(&a) != fg_rng_u64(&b);
    EXPECT_INT("fg_env_u64 vs fg_rng_u64", differ, 0);
    EXPECT_INT("threshold 1/2", fg_env_threshold(0.5), FG_ENV_P_HALF);
    EXPECT_INT("threshold 1/3", fg_env_threshold((double)(1.0f / 3.0f)), FG_ENV_P_THIRD);
    const float ps[] = {0.5f, 1.0f / 3.0f, 0.1f, 0.25f, 1e-7f, 0.999f, 1.0f};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        uint32_t t = fg_env_threshold((double)ps[i]);
        int bad = 0;
        /* every 24-bit draw near the threshold, and a sweep of the rest */
        for (int64_t u = (int64_t)t - 3; u <= (int64_t)t + 3; u++)
            if (u >= 0 && u < (1 << 24))
                bad += ((float)u * (1.0f / 16777216.0f) < ps[i]) != ((uint32_t)u < t);
        for (int64_t u = 0; u < (1 << 24); u += 4099) bad += ((float)u * (1.0f / 16777216.0f) < ps[i]) != ((uint32_t)u < t);
        EXPECT_INT("threshold decides as the float comparison", bad, 0);
    }
}

static void test_sticky(void) {
    /* Alternating actions: whenever the previous taken action differs from the chosen one, the
     * sticky rule takes the previous one with probability 0.1. 200000 trials: sd 0.00067. */
    fg_rng r;
    fg_rng_seed(&r, 5);
    int last = 0, n = 0, kept = 0;
    for (int t = 0; t < 200000; t++) {
        int want = 1 + (t & 1) * 2;
        int before = last;
        int got = fg_env_sticky(&r, 0.1f, &last, want);
        CHECK(got == want || got == before);
        CHECK(last == got);
        if (before != want) {
            n++;
            kept += got == before;
        }
    }
    double f = (double)kept / n, sd = sqrt(0.1 * 0.9 / n);
    if (fabs(f - 0.1) > 5 * sd) {
        fprintf(stderr, "sticky: frequency %.4f over %d trials, expected 0.1 +- %.4f\n", f, n, 5 * sd);
        fg_test_failures++;
    }
    /* p = 0: never */
    last = 3;
    for (int t = 0; t < 1000; t++) CHECK(fg_env_sticky(&r, 0.0f, &last, t % 6) == t % 6);

    /* Through a batch: Breakout's paddle under alternating left/right. On the steps where the
     * chosen move differs from the previous step's actual move, the paddle repeats the previous
     * move exactly when the action stuck. */
    fg_env_batch *b;
    CHECK_OK(fg_env_batch_create("breakout", 1, 3, NULL, &b));
    int32_t act;
    float rew;
    uint8_t dn;
    int same = 0, steps = 0, prev_move = 0;
    fg_breakout *s = fg_env_batch_state(b, 0);
    for (int t = 0; t < 100000; t++) {
        s->pos = 5; /* away from the walls, so every move shows */
        s->ball_x = 0, s->ball_y = 5, s->ball_dir = 1, s->terminal = 0;
        act = (t & 1) ? FG_ACT_R : FG_ACT_L;
        CHECK_OK(fg_env_batch_step(b, &act, NULL, &rew, &dn));
        int move = s->pos - 5, want_move = (t & 1) ? 1 : -1;
        if (t > 0 && prev_move != want_move) {
            steps++;
            same += move == prev_move;
        }
        prev_move = move;
    }
    f = (double)same / steps, sd = sqrt(0.1 * 0.9 / steps);
    if (fabs(f - 0.1) > 5 * sd) {
        fprintf(stderr, "sticky in a batch: frequency %.4f, expected 0.1 +- %.4f\n", f, 5 * sd);
        fg_test_failures++;
    }
    fg_env_batch_destroy(b);
}

static void test_terminal_reward(void) {
    /* Freeway: the chicken reaches the top (+1) on the step the timer runs out. The batch must
     * report the 1 on that step with done, count it in the episode's return, and hand back the
     * new episode's first observation. */
    fg_env_options o;
    fg_env_options_init(&o);
    o.sticky_prob = 0.0f;
    o.obs_dtype = FG_U8;
    fg_env_batch *b;
    CHECK_OK(fg_env_batch_create("freeway", 2, 11, &o, &b));
    uint8_t obs[2 * 700], fin[700];
    float rew[2];
    uint8_t dn[2];
    int32_t act[2] = {FG_ACT_U, FG_ACT_N};
    fg_freeway *s = fg_env_batch_state(b, 0);
    for (int i = 0; i < 8; i++) s->cars[i].y = 0; /* no car reaches column 4's lanes */
    /* two ordinary steps first, then the last one */
    CHECK_OK(fg_env_batch_step(b, (int32_t[2]){FG_ACT_N, FG_ACT_N}, obs, rew, dn));
    CHECK_OK(fg_env_batch_step(b, (int32_t[2]){FG_ACT_N, FG_ACT_N}, obs, rew, dn));
    s->pos = 1, s->move_timer = 0, s->terminate_timer = 0;
    CHECK_OK(fg_env_batch_step(b, act, obs, rew, dn));
    EXPECT_INT("terminal step: reward", rew[0], 1);
    EXPECT_INT("terminal step: done", dn[0], FG_ENV_TERMINATED);
    EXPECT_INT("terminal step: other env running", dn[1], FG_ENV_RUNNING);
    double ret;
    int64_t len;
    fg_env_batch_last_episode(b, 0, &ret, &len);
    EXPECT_INT("terminal step: episode return", ret, 1);
    EXPECT_INT("terminal step: episode length", len, 3);
    EXPECT_INT("episodes", fg_env_batch_episodes(b), 1);
    EXPECT_INT("steps", fg_env_batch_steps(b), 6);
    /* auto-reset: the new episode (in the env's other state slot) has a full timer and its
     * chicken at the bottom */
    s = fg_env_batch_state(b, 0);
    EXPECT_INT("auto-reset: timer", s->terminate_timer, 2500);
    EXPECT_INT("auto-reset: obs chicken", obs[9 * 10 + 4], 1);
    /* the final observation is the terminal state's: the chicken at 9 too (sent back), and the
     * cars where they were, on row 0 */
    fg_env_batch_final_obs(b, 0, fin);
    int cars_row0 = 0;
    for (int x = 0; x < 10; x++) cars_row0 += fin[100 + x];
    CHECK(cars_row0 >= 1);

    /* A whole random episode's reported return is the sum of the step rewards. */
    fg_env_batch_destroy(b);
    CHECK_OK(fg_env_batch_create("space_invaders", 3, 2, NULL, &b));
    double sum[3] = {0, 0, 0};
    int checked = 0;
    fg_rng p;
    fg_rng_seed(&p, 1);
    float fobs[3 * 600];
    for (int t = 0; t < 20000; t++) {
        int32_t a3[3];
        for (int i = 0; i < 3; i++) a3[i] = (int32_t)fg_rng_below(&p, 6);
        uint8_t d3[3];
        float r3[3];
        CHECK_OK(fg_env_batch_step(b, a3, fobs, r3, d3));
        for (int i = 0; i < 3; i++) {
            sum[i] += r3[i];
            if (d3[i]) {
                fg_env_batch_last_episode(b, (size_t)i, &ret, NULL);
                if (ret != sum[i]) {
                    fprintf(stderr, "episode return %g, the rewards summed to %g\n", ret, sum[i]);
                    fg_test_failures++;
                }
                sum[i] = 0;
                checked++;
            }
        }
    }
    CHECK(checked > 50);
    fg_env_batch_destroy(b);
}

static void test_interface(void) {
    fg_env_batch *b = NULL;
    /* unknown name: the message lists the valid ones */
    CHECK_STATUS(fg_env_batch_create("pong", 1, 1, NULL, &b), FG_ERR_INVALID);
    CHECK(b == NULL);
    for (size_t i = 0; i < fg_env_count(); i++) CHECK(strstr(fg_last_error(), fg_env_name(i)) != NULL);
    CHECK(strstr(fg_last_error(), "pong") != NULL);
    CHECK_STATUS(fg_env_batch_create("breakout", 0, 1, NULL, &b), FG_ERR_INVALID);
    fg_env_options o;
    fg_env_options_init(&o);
    o.obs_dtype = FG_U8;
    CHECK_STATUS(fg_env_batch_create("cartpole", 1, 1, &o, &b), FG_ERR_INVALID);
    /* a count whose bytes wrap around size_t (a 112-byte block was written past before), a NaN
     * sticky probability (silently 0 before) */
    CHECK_STATUS(fg_env_batch_create("breakout", (size_t)1 << 62, 1, NULL, &b), FG_ERR_INVALID);
    CHECK(b == NULL);
    fg_env_options_init(&o);
    o.sticky_prob = NAN;
    CHECK_STATUS(fg_env_batch_create("breakout", 1, 1, &o, &b), FG_ERR_INVALID);

    /* shapes and action counts */
    static const struct {
        const char *name;
        int c, full, minimal;
    } want[] = {{"breakout", 4, 6, 3}, {"space_invaders", 6, 6, 4}, {"freeway", 7, 6, 3},
                {"asterix", 4, 6, 5},  {"seaquest", 10, 6, 6},      {"cartpole", 0, 2, 2}};
    EXPECT_INT("env count", fg_env_count(), 6);
    for (size_t k = 0; k < 6; k++) {
        EXPECT_INT(want[k].name, strcmp(fg_env_name(k), want[k].name), 0);
        for (int m = 0; m < 2; m++) {
            fg_env_options_init(&o);
            o.minimal_actions = m;
            CHECK_OK(fg_env_batch_create(want[k].name, 2, 1, &o, &b));
            if (!b) continue;
            int64_t shape[3];
            int nd = fg_env_batch_obs_shape(b, shape);
            if (want[k].c) {
                CHECK(nd == 3 && shape[0] == want[k].c && shape[1] == 10 && shape[2] == 10);
                EXPECT_INT(want[k].name, fg_env_batch_obs_size(b), want[k].c * 100);
            } else {
                CHECK(nd == 1 && shape[0] == 4);
            }
            EXPECT_INT(want[k].name, fg_env_batch_num_actions(b), m ? want[k].minimal : want[k].full);
            fg_env_batch_destroy(b);
        }
    }
    /* minimal sets in MinAtar's order */
    fg_env_options_init(&o);
    o.minimal_actions = 1;
    CHECK_OK(fg_env_batch_create("space_invaders", 1, 1, &o, &b));
    const int si_min[4] = {FG_ACT_N, FG_ACT_L, FG_ACT_R, FG_ACT_F};
    for (int a = 0; a < 4; a++) EXPECT_INT("space_invaders minimal", fg_env_batch_action_id(b, a), si_min[a]);
    /* a bad action: an error naming it, and no env moves */
    int32_t bad[1] = {4};
    float rew;
    uint8_t dn;
    CHECK_STATUS(fg_env_batch_step(b, bad, NULL, &rew, &dn), FG_ERR_INVALID);
    CHECK(strstr(fg_last_error(), "action 4") != NULL);
    EXPECT_INT("no step after a bad action", fg_env_batch_steps(b), 0);
    bad[0] = -1;
    CHECK_STATUS(fg_env_batch_step(b, bad, NULL, &rew, &dn), FG_ERR_INVALID);
    fg_env_batch_destroy(b);

    /* u8 and f32 observations agree */
    fg_env_options_init(&o);
    o.obs_dtype = FG_U8;
    fg_env_batch *bu, *bf;
    CHECK_OK(fg_env_batch_create("seaquest", 2, 4, &o, &bu));
    CHECK_OK(fg_env_batch_create("seaquest", 2, 4, NULL, &bf));
    uint8_t ou[2000];
    float of[2000];
    fg_rng p;
    fg_rng_seed(&p, 3);
    int differ = 0;
    for (int t = 0; t < 2000; t++) {
        int32_t a2[2] = {(int32_t)fg_rng_below(&p, 6), (int32_t)fg_rng_below(&p, 6)};
        float r2[2];
        uint8_t d2[2];
        CHECK_OK(fg_env_batch_step(bu, a2, ou, r2, d2));
        CHECK_OK(fg_env_batch_step(bf, a2, of, r2, d2));
        for (int k = 0; k < 2000; k++) differ += (float)ou[k] != of[k];
    }
    EXPECT_INT("u8 vs f32 observations", differ, 0);
    fg_env_batch_destroy(bu);
    fg_env_batch_destroy(bf);

    /* reset writes observations and clears the running episodes */
    CHECK_OK(fg_env_batch_create("breakout", 1, 1, NULL, &b));
    float ob[400];
    fg_env_batch_reset(b, ob);
    int balls = 0;
    for (int k = 100; k < 200; k++) balls += ob[k] == 1.0f;
    EXPECT_INT("reset obs: one ball", balls, 1);
    EXPECT_INT("reset obs: ball on row 3", ob[100 + 30] + ob[100 + 39], 1);
    fg_env_batch_destroy(b);
}

/* Long random runs of every game through the batch: nothing asserts, observations are 0/1 and
 * each has the one-cell objects it must have. */
static void test_random_runs(void) {
    for (size_t gi = 0; gi < 5; gi++) {
        const char *name = fg_env_name(gi);
        fg_env_options o;
        fg_env_options_init(&o);
        o.obs_dtype = FG_U8;
        fg_env_batch *b;
        CHECK_OK(fg_env_batch_create(name, 8, 21, &o, &b));
        if (!b) continue;
        size_t of = fg_env_batch_obs_size(b);
        uint8_t *obs = malloc(8 * of);
        fg_rng p;
        fg_rng_seed(&p, 2);
        int bad = 0;
        for (int t = 0; t < 50000; t++) {
            int32_t a[8];
            float r[8];
            uint8_t d[8];
            for (int i = 0; i < 8; i++) a[i] = (int32_t)fg_rng_below(&p, 6);
            CHECK_OK(fg_env_batch_step(b, a, obs, r, d));
            for (size_t k = 0; k < 8 * of; k++) bad += obs[k] > 1;
            for (int i = 0; i < 8; i++) {
                int players = 0;
                for (int k = 0; k < 100; k++) players += obs[(size_t)i * of + (size_t)k];
                bad += players != 1; /* channel 0: paddle, cannon, chicken, player, sub front */
                bad += r[i] < 0;
            }
        }
        if (bad) {
            fprintf(stderr, "random run %s: %d bad observations or rewards\n", name, bad);
            fg_test_failures++;
        }
        CHECK(fg_env_batch_episodes(b) > 0 || strcmp(name, "freeway") == 0);
        free(obs);
        fg_env_batch_destroy(b);
    }
}

int main(void) {
    fg_rng_seed(&rng, 12345);
    test_breakout();
    test_space_invaders();
    test_freeway();
    test_asterix();
    test_seaquest();
    test_cartpole();
    test_determinism();
    test_pinned();
    test_env_rng();
    test_sticky();
    test_terminal_reward();
    test_interface();
    test_random_runs();
    return fg_test_finish("test_rl_env");
}
