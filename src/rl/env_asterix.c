/* Asterix, ported from MinAtar v1.0.15 (minatar/environments/asterix.py, read as the rulebook).
 * The player moves in the four directions within rows 1-8; enemies and gold spawn at a side of
 * a free row (slot i is row i + 1) and cross the screen. Gold is +1 when touched, an enemy ends
 * the episode. With ramping, every 102 frames (the ramp timer counts 100 down to -1) the spawn
 * interval drops by one and, every second ramp, the move interval too, down to 1.
 * Channels: 0 player, 1 enemy, 2 trail (the cell behind an enemy or gold), 3 gold. */
#include <string.h>

#include "rl/env_impl.h"

#define RAMP_INTERVAL 100
#define INIT_SPAWN_SPEED 10
#define INIT_MOVE_INTERVAL 5

static void asterix_reset(void *vs, fg_rng *rng, int ramping) {
    (void)rng;
    fg_asterix *s = vs;
    memset(s, 0, sizeof *s);
    s->player_x = 5;
    s->player_y = 5;
    s->spawn_speed = INIT_SPAWN_SPEED;
    s->spawn_timer = INIT_SPAWN_SPEED;
    s->move_speed = INIT_MOVE_INTERVAL;
    s->move_timer = INIT_MOVE_INTERVAL;
    s->ramp_timer = RAMP_INTERVAL;
    s->ramping = ramping;
}

/* Direction and kind are drawn before looking for a free slot, as in the original; a full
 * screen spawns nothing. */
static void spawn_entity(fg_asterix *s, fg_rng *rng) {
    int right = fg_env_chance(rng, FG_ENV_P_HALF);
    int gold = fg_env_chance(rng, FG_ENV_P_THIRD);
    int free_slots[8], n = 0;
    for (int i = 0; i < 8; i++) {
        free_slots[n] = i;
        n += !s->active[i];
    }
    if (n == 0) return;
    int slot = free_slots[fg_env_below(rng, (uint32_t)n)];
    s->active[slot] = 1;
    s->x[slot] = right ? 0 : 9;
    s->right[slot] = (int16_t)right;
    s->gold[slot] = (int16_t)gold;
}

/* The entity in slot i on the player's cell: gold is picked up, an enemy ends the episode. */
static void touch(fg_asterix *s, int i, float *r) {
    if (s->gold[i]) {
        s->active[i] = 0;
        *r += 1.0f;
    } else {
        s->terminal = 1;
    }
}

FG_ENV_HOT static float asterix_step(void *vs, int a, fg_rng *rng, int *done) {
    fg_asterix *s = vs;
    float r = 0.0f;
    if (s->terminal) {
        *done = FG_ENV_TERMINATED;
        return r;
    }
    if (s->spawn_timer == 0) {
        spawn_entity(s, rng);
        s->spawn_timer = s->spawn_speed;
    }
    /* the four moves as offsets, clamped: no branch on the (random) action */
    static const int8_t mx[FG_ACT_COUNT] = {0, -1, 0, 1, 0, 0}, my[FG_ACT_COUNT] = {0, 0, -1, 0, 1, 0};
    int px = s->player_x + mx[a], py = s->player_y + my[a];
    px = px < 0 ? 0 : px > 9 ? 9 : px;
    py = py < 1 ? 1 : py > 8 ? 8 : py;
    s->player_x = px;
    s->player_y = py;

    /* The original checks every entity against the player, before and after the move; only the
     * one in the player's row (slot player_y - 1) can be there, and the others' moves do not
     * depend on it, so we move all without branching on `active` and check that one. */
    int mine = py - 1;
    if (s->active[mine] & (s->x[mine] == px)) touch(s, mine, &r);
    if (s->move_timer == 0) {
        s->move_timer = s->move_speed;
        for (int i = 0; i < 8; i++) {
            int16_t x = (int16_t)(s->x[i] + (s->right[i] ? s->active[i] : -s->active[i]));
            s->x[i] = x;
            s->active[i] &= (int16_t)((x >= 0) & (x <= 9));
        }
        if (s->active[mine] & (s->x[mine] == px)) touch(s, mine, &r);
    }
    s->spawn_timer--;
    s->move_timer--;
    if (s->ramping && (s->spawn_speed > 1 || s->move_speed > 1)) {
        if (s->ramp_timer >= 0) {
            s->ramp_timer--;
        } else {
            if (s->move_speed > 1 && (s->ramp_index % 2)) s->move_speed--;
            if (s->spawn_speed > 1) s->spawn_speed--;
            s->ramp_index++;
            s->ramp_timer = RAMP_INTERVAL;
        }
    }
    *done = s->terminal ? FG_ENV_TERMINATED : FG_ENV_RUNNING;
    return r;
}

/* Every entity has two cells: itself (channel 1 enemy, 3 gold) and its trail (channel 2, the
 * cell it came from, when on the board). The sixteen cell numbers come from one loop over the
 * slots in 16-bit lanes (two vectors; no branch on the random play), then sixteen byte stores.
 * An inactive entity's cells, and an off-board trail, are cell 0 (channel 0, row 0): a cell the
 * player never is on (rows 1-8), cleared again before the player is drawn. */
FG_ENV_HOT static void asterix_observe(const void *vs, uint8_t *obs) {
    const fg_asterix *s = vs;
    fg_env_clear(obs, 4 * 100);
    uint16_t cells[16];
    for (int i = 0; i < 8; i++) {
        int16_t on = (int16_t)-s->active[i], x = s->x[i];
        int16_t back = (int16_t)(x + 1 - 2 * s->right[i]);
        int16_t trail_on = (int16_t)(on & -(back >= 0) & -(back <= 9));
        int16_t row = (int16_t)(10 * (i + 1));
        cells[i] = (uint16_t)(on & (100 + 200 * s->gold[i] + row + x));
        cells[8 + i] = (uint16_t)(trail_on & (200 + row + back));
    }
#pragma GCC unroll 16
    for (int k = 0; k < 16; k++) obs[cells[k]] = 1;
    obs[0] = 0;
    obs[s->player_y * 10 + s->player_x] = 1;
}

static int asterix_ramp(const void *vs) { return ((const fg_asterix *)vs)->ramp_index; }

FG_ENV_STEP_BATCH(asterix_step_batch, asterix_step, NULL, asterix_observe, asterix_reset)

const fg_env_game fg_env_game_asterix = {
    .name = "asterix",
    .channels = 4,
    .obs_floats = 400,
    .n_actions = 6,
    .n_minimal = 5,
    .minimal = {FG_ACT_N, FG_ACT_L, FG_ACT_U, FG_ACT_R, FG_ACT_D},
    .default_sticky = 0.1f,
    .state_bytes = sizeof(fg_asterix),
    .reset = asterix_reset,
    .step = asterix_step,
    .observe = asterix_observe,
    .step_batch = asterix_step_batch,
    .ramp = asterix_ramp,
};
