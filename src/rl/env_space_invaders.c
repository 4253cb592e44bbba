/* Space Invaders, ported from MinAtar v1.0.15 (minatar/environments/space_invaders.py, read as
 * the rulebook). A cannon on row 9 shoots upward (cool-down 5); a 4x6 block of aliens moves one
 * column every move interval until one reaches the edge it is heading to, then the block moves
 * down a row and turns. The alien nearest the cannon (by column distance) shoots every 11 frames.
 * +1 per alien shot. The move interval is min(aliens left, the wave's interval), so the last
 * aliens speed up; a cleared wave respawns and, with ramping, the wave's interval drops by one
 * (12 down to 6). The episode ends when an alien or an enemy bullet reaches the cannon, or the
 * block moves down while it occupies row 9.
 * Channels: 0 cannon, 1 alien, 2 alien moving left, 3 alien moving right, 4 friendly bullet,
 * 5 enemy bullet. The maps are row bitmasks (bit x = column x). */
#include <string.h>

#include "rl/env_impl.h"

#define SHOT_COOL_DOWN 5
#define ENEMY_MOVE_INTERVAL 12
#define ENEMY_SHOT_INTERVAL 10
#define ALL_COLS 0x3FFu
#define WAVE_COLS 0xFCu /* columns 2..7 */

static int count_map(const uint16_t *m) {
    int c = 0;
    for (int y = 0; y < 10; y++) c += __builtin_popcount(m[y]);
    return c;
}

static void new_wave(fg_space_invaders *s) {
    for (int y = 0; y < 4; y++) s->alien[y] = WAVE_COLS;
}

static void si_reset(void *vs, fg_rng *rng, int ramping) {
    (void)rng;
    fg_space_invaders *s = vs;
    memset(s, 0, sizeof *s);
    s->pos = 5;
    new_wave(s);
    s->alien_dir = -1;
    s->enemy_move_interval = ENEMY_MOVE_INTERVAL;
    s->alien_move_timer = ENEMY_MOVE_INTERVAL;
    s->alien_shot_timer = ENEMY_SHOT_INTERVAL;
    s->ramping = ramping;
}

/* The original sorts the columns by |x - pos| with a stable sort, so of two columns at the same
 * distance the left one comes first; the shooter is the lowest alien of the first non-empty
 * column. Returns 0 when there is no alien (cannot happen: a cleared wave respawns before the
 * next step). */
static int nearest_alien(const fg_space_invaders *s, int *ay, int *ax) {
    unsigned cols = 0;
    for (int y = 0; y < 10; y++) cols |= s->alien[y];
    for (int d = 0; d < 10; d++) {
        int cand[2] = {s->pos - d, s->pos + d};
        for (int k = 0; k < (d ? 2 : 1); k++) {
            int x = cand[k];
            if (x < 0 || x > 9 || !(cols & (1u << x))) continue;
            for (int y = 9; y >= 0; y--)
                if (s->alien[y] & (1u << x)) {
                    *ay = y;
                    *ax = x;
                    return 1;
                }
        }
    }
    return 0;
}

FG_ENV_HOT static float si_step(void *vs, int a, fg_rng *rng, int *done) {
    (void)rng;
    fg_space_invaders *s = vs;
    float r = 0.0f;
    if (s->terminal) {
        *done = FG_ENV_TERMINATED;
        return r;
    }
    unsigned pbit = 1u << s->pos;
    if (a == FG_ACT_F && s->shot_timer == 0) {
        s->f_bullet[9] |= (uint16_t)pbit;
        s->shot_timer = SHOT_COOL_DOWN;
    } else if (a == FG_ACT_L) {
        s->pos = s->pos > 0 ? s->pos - 1 : 0;
    } else if (a == FG_ACT_R) {
        s->pos = s->pos < 9 ? s->pos + 1 : 9;
    }
    pbit = 1u << s->pos;

    /* friendly bullets go up a row (those on row 0 leave), enemy bullets down a row */
    memmove(&s->f_bullet[0], &s->f_bullet[1], 9 * sizeof(uint16_t));
    s->f_bullet[9] = 0;
    memmove(&s->e_bullet[1], &s->e_bullet[0], 9 * sizeof(uint16_t));
    s->e_bullet[0] = 0;
    if (s->e_bullet[9] & pbit) s->terminal = 1;

    if (s->alien[9] & pbit) s->terminal = 1;
    if (s->alien_move_timer == 0) {
        int n = count_map(s->alien);
        s->alien_move_timer = n < s->enemy_move_interval ? n : s->enemy_move_interval;
        unsigned cols = 0;
        for (int y = 0; y < 10; y++) cols |= s->alien[y];
        if (((cols & 1u) && s->alien_dir < 0) || ((cols & (1u << 9)) && s->alien_dir > 0)) {
            s->alien_dir = -s->alien_dir;
            if (s->alien[9]) s->terminal = 1;
            /* np.roll down by one row: row 9 wraps to row 0 (only on this terminal step) */
            uint16_t last = s->alien[9];
            memmove(&s->alien[1], &s->alien[0], 9 * sizeof(uint16_t));
            s->alien[0] = last;
        } else {
            /* np.roll along the columns; nothing wraps since the edge column is empty */
            for (int y = 0; y < 10; y++) {
                unsigned m = s->alien[y];
                m = s->alien_dir > 0 ? ((m << 1) | (m >> 9)) : ((m >> 1) | ((m & 1u) << 9));
                s->alien[y] = (uint16_t)(m & ALL_COLS);
            }
        }
        if (s->alien[9] & pbit) s->terminal = 1;
    }
    if (s->alien_shot_timer == 0) {
        s->alien_shot_timer = ENEMY_SHOT_INTERVAL;
        int ay, ax;
        if (nearest_alien(s, &ay, &ax)) s->e_bullet[ay] |= (uint16_t)(1u << ax);
    }
    for (int y = 0; y < 10; y++) {
        unsigned k = s->alien[y] & s->f_bullet[y];
        if (k) {
            r += (float)__builtin_popcount(k);
            s->alien[y] &= (uint16_t)~k;
            s->f_bullet[y] &= (uint16_t)~k;
        }
    }
    s->shot_timer -= s->shot_timer > 0;
    s->alien_move_timer--;
    s->alien_shot_timer--;
    if (count_map(s->alien) == 0) {
        if (s->enemy_move_interval > 6 && s->ramping) {
            s->enemy_move_interval--;
            s->ramp_index++;
        }
        new_wave(s);
    }
    *done = s->terminal ? FG_ENV_TERMINATED : FG_ENV_RUNNING;
    return r;
}

/* Writes every cell of a plane from its row bitmasks (zeros included). */
static void put_map(uint8_t *plane, const uint16_t *m) {
    for (int y = 0; y < 10; y++) fg_env_put_row(plane + y * 10, m[y]);
}

FG_ENV_HOT static void si_observe(const void *vs, uint8_t *obs) {
    const fg_space_invaders *s = vs;
    fg_env_clear(obs, 100);
    obs[0 * 100 + 9 * 10 + s->pos] = 1;
    put_map(obs + 1 * 100, s->alien);
    put_map(obs + (s->alien_dir < 0 ? 2 : 3) * 100, s->alien);
    fg_env_clear(obs + (s->alien_dir < 0 ? 3 : 2) * 100, 100);
    put_map(obs + 4 * 100, s->f_bullet);
    put_map(obs + 5 * 100, s->e_bullet);
}

static int si_ramp(const void *vs) { return ((const fg_space_invaders *)vs)->ramp_index; }

FG_ENV_STEP_BATCH(space_invaders_step_batch, si_step, NULL, si_observe, si_reset)

const fg_env_game fg_env_game_space_invaders = {
    .name = "space_invaders",
    .channels = 6,
    .obs_floats = 600,
    .n_actions = 6,
    .n_minimal = 4,
    .minimal = {FG_ACT_N, FG_ACT_L, FG_ACT_R, FG_ACT_F},
    .default_sticky = 0.1f,
    .state_bytes = sizeof(fg_space_invaders),
    .reset = si_reset,
    .step = si_step,
    .observe = si_observe,
    .step_batch = space_invaders_step_batch,
    .ramp = si_ramp,
};
