/* Seaquest, ported from MinAtar v1.0.15 (minatar/environments/seaquest.py, read as the
 * rulebook). The player's two-cell submarine moves in rows 0-8 and fires sideways (cool-down
 * 5); enemy fish and subs (subs shoot every 11 frames) cross rows 1-8; divers cross too and are
 * picked up by touching them (at most 6 aboard). +1 per enemy shot. Oxygen (200) drops by one
 * per frame below the surface (row 0); at 0 the episode ends. Surfacing with no diver ends the
 * episode; with 1-5 it costs one diver and refills oxygen; with 6 it pays oxygen*10/200 and
 * empties the sub. Every surfacing ramps the difficulty (spawn interval down by one to 1, every
 * second time the move interval down by one to 2). Touching an enemy or an enemy bullet ends the
 * episode.
 * Channels: 0 sub front, 1 sub back, 2 friendly bullet, 3 trail, 4 enemy bullet, 5 enemy fish,
 * 6 enemy sub, 7 oxygen gauge, 8 diver gauge, 9 diver. */
#include <string.h>

#include "rl/env_impl.h"

#define MAX_OXYGEN 200
#define INIT_SPAWN_SPEED 20
#define DIVER_SPAWN_SPEED 30
#define INIT_MOVE_INTERVAL 5
#define SHOT_COOL_DOWN 5
#define ENEMY_SHOT_INTERVAL 10
#define DIVER_MOVE_INTERVAL 5

static void push(fg_seaquest_obj *list, int *n, fg_seaquest_obj o) {
    FG_ASSERT_MSG(*n < FG_SEAQUEST_CAP, "seaquest: more objects than the rules allow");
    list[(*n)++] = o;
}

/* Order-preserving removal, as Python's list.remove. The lists are walked backwards, so the one
 * removed is often the last: no copy (and no call) then. */
static void drop(fg_seaquest_obj *list, int *n, int i) {
    if (i + 1 < *n) memmove(&list[i], &list[i + 1], (size_t)(*n - i - 1) * sizeof *list);
    (*n)--;
}

/* The first object of the list on (x, y), or -1. */
static inline int find_at(const fg_seaquest_obj *list, int n, int x, int y) {
    for (int j = 0; j < n; j++)
        if (list[j].x == x && list[j].y == y) return j;
    return -1;
}

static void seaquest_reset(void *vs, fg_rng *rng, int ramping) {
    (void)rng;
    fg_seaquest *s = vs;
    /* the lists' contents past their counts are never read; only the header needs clearing */
    memset(s, 0, offsetof(fg_seaquest, f_bullets));
    s->oxygen = MAX_OXYGEN;
    s->sub_x = 5;
    s->e_spawn_speed = INIT_SPAWN_SPEED;
    s->e_spawn_timer = INIT_SPAWN_SPEED;
    s->d_spawn_timer = DIVER_SPAWN_SPEED;
    s->move_speed = INIT_MOVE_INTERVAL;
    s->surface = 1;
    s->ramping = ramping;
}

/* Kind, direction and row are drawn first; a row holding an enemy going the other way gets no
 * spawn this time (the original's rule, so that enemies never pass through each other). */
static void spawn_enemy(fg_seaquest *s, fg_rng *rng) {
    int right = fg_env_chance(rng, FG_ENV_P_HALF);
    int is_sub = fg_env_chance(rng, FG_ENV_P_THIRD);
    int y = 1 + (int)fg_env_below(rng, 8);
    for (int j = 0; j < s->n_subs; j++)
        if (s->subs[j].y == y && s->subs[j].right != right) return;
    for (int j = 0; j < s->n_fish; j++)
        if (s->fish[j].y == y && s->fish[j].right != right) return;
    fg_seaquest_obj o = {right ? 0 : 9, y, right, s->move_speed, ENEMY_SHOT_INTERVAL};
    if (is_sub) push(s->subs, &s->n_subs, o);
    else push(s->fish, &s->n_fish, o);
}

static void spawn_diver(fg_seaquest *s, fg_rng *rng) {
    int right = fg_env_chance(rng, FG_ENV_P_HALF);
    int y = 1 + (int)fg_env_below(rng, 8);
    push(s->divers, &s->n_divers, (fg_seaquest_obj){right ? 0 : 9, y, right, DIVER_MOVE_INTERVAL, 0});
}

static inline int at_sub(int x, int y, int sub_x, int sub_y) { return (x == sub_x) & (y == sub_y); }

/* Surfacing with at least one diver (the caller checked). The original empties a full sub
 * (diver_count = 0) and then takes one diver off as for any surfacing, leaving -1: we keep that,
 * so after a full surfacing the next one needs no diver (the gauge shows none). */
static int do_surface(fg_seaquest *s) {
    int r = 0;
    s->surface = 1;
    if (s->diver_count == 6) {
        s->diver_count = 0;
        r = s->oxygen * 10 / MAX_OXYGEN;
    }
    s->oxygen = MAX_OXYGEN;
    s->diver_count--;
    if (s->ramping && (s->e_spawn_speed > 1 || s->move_speed > 2)) {
        if (s->move_speed > 2 && (s->ramp_index % 2)) s->move_speed--;
        if (s->e_spawn_speed > 1) s->e_spawn_speed--;
        s->ramp_index++;
    }
    return r;
}

/* ---------------------------------------------------------------- drawing */

/* The observation is drawn in two ways: seaquest_observe draws a state from scratch, and the
 * batch's byte loop has the step draw as it goes (seaquest_step_draw): the rules load every
 * object's position and direction anyway, and drawing it there saves a second pass over the
 * lists (measured: about 1 ns of a 30 ns step). Both draw with put_obj and put_rest. */

/* An object on channel ch at (x, y) and, with trail, its trail on channel 3 (the cell it came
 * from, x + 1 - 2 * right). A trail off the board goes to `set`, a cell that is on anyway (the
 * sub's front), so there is no branch on it. */
FG_ENV_HOT static void put_obj(uint8_t *obs, int ch, int x, int y, int right, int trail, int set) {
    int back = x + 1 - 2 * right;
    obs[ch * 100 + y * 10 + x] = 1;
    if (trail) obs[fg_env_sel((unsigned)back <= 9u, 3 * 100 + y * 10 + back, set)] = 1;
}

/* The objects of a list. An object's fields are read before its first store (a byte store may
 * alias them and would make the compiler read them again). */
FG_ENV_HOT static void put_objs(uint8_t *obs, int ch, const fg_seaquest_obj *list, int n, int trail, int set) {
    for (int j = 0; j < n; j++) {
        int x = list[j].x, y = list[j].y, right = list[j].right;
        put_obj(obs, ch, x, y, right, trail, set);
    }
}

/* The gauges (row 9 of channels 7 and 8): oxygen cells 0 .. oxy - 1 for oxy = oxygen * 10 / 200;
 * divers cells 9 - diver_count .. 8, none for a count of 0 or -1 (see do_surface). Each entry is
 * the last 16 cells of its channel, one 16-byte copy: the six before the row (row 8's last six)
 * are always off, as the two channels have nothing but the gauge. */
#define G 0, 0, 0, 0, 0, 0 /* row 8, cells 4-9 */
static const uint8_t oxygen_gauge[11][16] = {
    {G},
    {G, 1},
    {G, 1, 1},
    {G, 1, 1, 1},
    {G, 1, 1, 1, 1},
    {G, 1, 1, 1, 1, 1},
    {G, 1, 1, 1, 1, 1, 1},
    {G, 1, 1, 1, 1, 1, 1, 1},
    {G, 1, 1, 1, 1, 1, 1, 1, 1},
    {G, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {G, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
};
static const uint8_t diver_gauge[7][16] = {
    {G},
    {G, 0, 0, 0, 0, 0, 0, 0, 0, 1},
    {G, 0, 0, 0, 0, 0, 0, 0, 1, 1},
    {G, 0, 0, 0, 0, 0, 0, 1, 1, 1},
    {G, 0, 0, 0, 0, 0, 1, 1, 1, 1},
    {G, 0, 0, 0, 0, 1, 1, 1, 1, 1},
    {G, 0, 0, 0, 1, 1, 1, 1, 1, 1},
};
#undef G

/* The sub's front and back cells, the gauges and the friendly bullets (on a cleared
 * observation; the bullets last, as an enemy moving onto one removes it late in a step). */
FG_ENV_HOT static void put_rest(const fg_seaquest *s, uint8_t *obs) {
    int front = 0 * 100 + s->sub_y * 10 + s->sub_x;
    obs[front] = 1;
    /* The back cell is always on the board: moving left faces left, so column 0 never faces
     * right and column 9 never faces left. numpy would wrap -1 to column 9; so do we. */
    int back = s->sub_x + 1 - 2 * s->sub_right;
    back += -(back < 0) & 10;
    FG_ASSERT(back <= 9);
    obs[1 * 100 + s->sub_y * 10 + back] = 1;
    int oxy = (s->oxygen > 0 ? s->oxygen : 0) * 10 / MAX_OXYGEN;
    memcpy(obs + 7 * 100 + 84, oxygen_gauge[oxy], 16);
    memcpy(obs + 8 * 100 + 84, diver_gauge[s->diver_count > 0 ? s->diver_count : 0], 16);
    put_objs(obs, 2, s->f_bullets, s->n_f_bullets, 0, front);
}

FG_ENV_HOT static void seaquest_observe(const void *vs, uint8_t *obs) {
    const fg_seaquest *s = vs;
    int front = 0 * 100 + s->sub_y * 10 + s->sub_x;
    fg_env_clear(obs, 10 * 100);
    put_objs(obs, 4, s->e_bullets, s->n_e_bullets, 0, front);
    put_objs(obs, 5, s->fish, s->n_fish, 1, front);
    put_objs(obs, 6, s->subs, s->n_subs, 1, front);
    put_objs(obs, 9, s->divers, s->n_divers, 1, front);
    put_rest(s, obs);
}

/* ---------------------------------------------------------------- the rules */

/* How the lists are walked: the random play makes every per-object condition unpredictable (an
 * object moves on one step in move_speed + 1, a bullet is fired or not), and a mispredicted branch
 * costs as much as a dozen objects' arithmetic. So the common outcome of each object's step (it
 * moves or waits, nothing is hit) is arithmetic on 0/1 flags (-flag & v is v or 0; a timer that
 * is 0 when its flag is set becomes its interval as t - 1 + (-flag & (interval + 1))), and one
 * rarely taken branch leads to the original's chain of cases (leaving the board, a hit, a
 * pick-up), which is then followed as written (__builtin_expect marks such cases, so that the
 * common path runs straight through: about 1 ns a step). (sx, sy) is the player's sub after this
 * step's move; *term collects the terminal conditions; obs (NULL: none) gets each object that
 * stays, where it ends the step (nothing later in the step moves or removes it), on channel ch. */

/* Fish and subs move alike; a sub also shoots. The original iterates each list backwards and
 * removes from it while iterating, which visits every element once; so do we. An object's y and
 * direction never change: only x and the timers are written back. */
FG_ENV_HOT static void move_enemies(fg_seaquest *s, fg_seaquest_obj *list, int *n, int shoots, int sx, int sy,
                                    int *term, int *hits, uint8_t *obs, int ch) {
    const int move_reset = s->move_speed + 1;
    for (int i = *n - 1; i >= 0; i--) {
        fg_seaquest_obj *e = &list[i];
        int x = e->x, y = e->y, right = e->right, removed = 0;
        *term |= at_sub(x, y, sx, sy);
        int moves = e->move_timer == 0;
        e->move_timer += -1 + (-moves & move_reset);
        x += -moves & (2 * right - 1);
        e->x = x;
        int off = (unsigned)x > 9u;
        if (__builtin_expect(fg_env_opaque(moves & (off | at_sub(x, y, sx, sy) | (s->n_f_bullets > 0))), 0)) {
            if (off) {
                removed = 1;
            } else if (at_sub(x, y, sx, sy)) {
                *term = 1;
            } else {
                int j = find_at(s->f_bullets, s->n_f_bullets, x, y);
                if (j >= 0) {
                    removed = 1;
                    drop(s->f_bullets, &s->n_f_bullets, j);
                    (*hits)++;
                }
            }
        }
        /* The original's sub fires even on the step it leaves the screen or is shot (its shot
         * timer is read after the removal); we keep that: a shot sub's last bullet flies. The
         * bullet (a bullet's timers are never read) is written to the list's next slot every
         * time and counted only when fired. */
        if (shoots) {
            int fires = e->shot_timer == 0;
            FG_ASSERT_MSG(s->n_e_bullets < FG_SEAQUEST_CAP, "seaquest: more objects than the rules allow");
            fg_seaquest_obj *shot = &s->e_bullets[s->n_e_bullets];
            shot->x = x;
            shot->y = y;
            shot->right = right;
            s->n_e_bullets += fires;
            e->shot_timer += -1 + (-fires & (ENEMY_SHOT_INTERVAL + 1));
        }
        if (removed) drop(list, n, i);
        else if (obs) put_obj(obs, ch, x, y, right, 1, sy * 10 + sx);
    }
}

/* One step of the rules; with obs, also the whole observation of the state it leaves (see
 * "drawing"). */
FG_ENV_HOT static float advance(fg_seaquest *s, int a, fg_rng *rng, int *done, uint8_t *obs) {
    if (__builtin_expect(s->terminal, 0)) {
        if (obs) seaquest_observe(s, obs);
        *done = FG_ENV_TERMINATED;
        return 0.0f;
    }
    if (__builtin_expect(s->e_spawn_timer == 0, 0)) {
        spawn_enemy(s, rng);
        s->e_spawn_timer = s->e_spawn_speed;
    }
    if (__builtin_expect(s->d_spawn_timer == 0, 0)) {
        spawn_diver(s, rng);
        s->d_spawn_timer = DIVER_SPAWN_SPEED;
    }
    /* Fire (when the gun is ready) or one of the four moves; the moves as offsets, clamped, and
     * the shot written to the list's next slot every time and counted only when fired: no branch
     * on the (random) action. */
    static const int8_t mx[FG_ACT_COUNT] = {0, -1, 0, 1, 0, 0}, my[FG_ACT_COUNT] = {0, 0, -1, 0, 1, 0};
    int shot_timer = s->shot_timer, fires = (a == FG_ACT_F) & (shot_timer == 0);
    FG_ASSERT_MSG(s->n_f_bullets < FG_SEAQUEST_CAP, "seaquest: more objects than the rules allow");
    fg_seaquest_obj *shot = &s->f_bullets[s->n_f_bullets]; /* a bullet's timers are never read */
    shot->x = s->sub_x;
    shot->y = s->sub_y;
    shot->right = s->sub_right;
    s->n_f_bullets += fires;
    /* the cool-down starts at 5 and, as every timer, drops by one at the step's end */
    shot_timer += -fires & SHOT_COOL_DOWN;
    s->shot_timer = shot_timer - (shot_timer > 0);
    int sx = s->sub_x + mx[a], sy = s->sub_y + my[a];
    sx = sx < 0 ? 0 : sx > 9 ? 9 : sx;
    sy = sy < 0 ? 0 : sy > 8 ? 8 : sy;
    s->sub_x = sx;
    s->sub_y = sy;
    s->sub_right = fg_env_sel(mx[a] != 0, mx[a] > 0, s->sub_right);
    const int front = sy * 10 + sx; /* the sub's front cell, on in the observation */
    if (obs) fg_env_clear(obs, 10 * 100);
    /* enemies shot (the reward, summed as an integer) and the terminal conditions */
    int hits = 0, term = 0;

    /* friendly bullets: move, then hit the first fish on their cell, else the first sub (drawn
     * at the end: an enemy moving onto one removes it) */
    for (int i = s->n_f_bullets - 1; i >= 0; i--) {
        fg_seaquest_obj *b = &s->f_bullets[i];
        b->x += 2 * b->right - 1;
        if ((unsigned)b->x > 9u) {
            drop(s->f_bullets, &s->n_f_bullets, i);
            continue;
        }
        int j = find_at(s->fish, s->n_fish, b->x, b->y);
        if (__builtin_expect(j >= 0, 0)) {
            drop(s->fish, &s->n_fish, j);
            drop(s->f_bullets, &s->n_f_bullets, i);
            hits++;
            continue;
        }
        j = find_at(s->subs, s->n_subs, b->x, b->y);
        if (__builtin_expect(j >= 0, 0)) {
            drop(s->subs, &s->n_subs, j);
            drop(s->f_bullets, &s->n_f_bullets, i);
            hits++;
        }
    }

    /* divers: picked up where they are, else they move and may be picked up there */
    int room = s->diver_count < 6;
    for (int i = s->n_divers - 1; i >= 0; i--) {
        fg_seaquest_obj *d = &s->divers[i];
        int x = d->x, y = d->y, right = d->right;
        if (__builtin_expect(at_sub(x, y, sx, sy) & room, 0)) {
            drop(s->divers, &s->n_divers, i);
            s->diver_count++;
            room = s->diver_count < 6;
            continue;
        }
        int moves = d->move_timer == 0;
        d->move_timer += -1 + (-moves & (DIVER_MOVE_INTERVAL + 1));
        x += -moves & (2 * right - 1);
        d->x = x;
        int off = (unsigned)x > 9u;
        if (__builtin_expect(moves & (off | (at_sub(x, y, sx, sy) & room)), 0)) {
            drop(s->divers, &s->n_divers, i);
            if (!off) {
                s->diver_count++;
                room = s->diver_count < 6;
            }
            continue;
        }
        if (obs) put_obj(obs, 9, x, y, right, 1, front);
    }

    move_enemies(s, s->subs, &s->n_subs, 1, sx, sy, &term, &hits, obs, 6);

    /* enemy bullets hit the sub on their cell before or after moving (off the board they are
     * on no sub's cell) */
    for (int i = s->n_e_bullets - 1; i >= 0; i--) {
        fg_seaquest_obj *b = &s->e_bullets[i];
        int x = b->x, y = b->y;
        term |= at_sub(x, y, sx, sy);
        x += 2 * b->right - 1;
        b->x = x;
        term |= at_sub(x, y, sx, sy);
        if ((unsigned)x > 9u) drop(s->e_bullets, &s->n_e_bullets, i);
        else if (obs) put_obj(obs, 4, x, y, 0, 0, front);
    }

    move_enemies(s, s->fish, &s->n_fish, 0, sx, sy, &term, &hits, obs, 5);

    s->e_spawn_timer -= s->e_spawn_timer > 0;
    s->d_spawn_timer -= s->d_spawn_timer > 0;
    term |= s->oxygen <= 0;
    /* below the surface oxygen drops; arriving at the surface (rare) is handled apart */
    int below = sy > 0;
    s->oxygen -= below;
    if (__builtin_expect(!below & !s->surface, 0)) {
        if (s->diver_count == 0) term = 1;
        else hits += do_surface(s);
    }
    s->surface &= !below;
    s->terminal = term;
    if (obs) put_rest(s, obs);
    *done = term ? FG_ENV_TERMINATED : FG_ENV_RUNNING;
    return (float)hits;
}

FG_ENV_HOT static float seaquest_step(void *vs, int a, fg_rng *rng, int *done) {
    return advance(vs, a, rng, done, NULL);
}

FG_ENV_HOT static float seaquest_step_draw(void *vs, int a, fg_rng *rng, int *done, uint8_t *obs) {
    return advance(vs, a, rng, done, obs);
}

static int seaquest_ramp(const void *vs) { return ((const fg_seaquest *)vs)->ramp_index; }

FG_ENV_STEP_BATCH(seaquest_step_batch, seaquest_step, seaquest_step_draw, seaquest_observe, seaquest_reset)

const fg_env_game fg_env_game_seaquest = {
    .name = "seaquest",
    .channels = 10,
    .obs_floats = 1000,
    .n_actions = 6,
    .n_minimal = 6,
    .minimal = {FG_ACT_N, FG_ACT_L, FG_ACT_U, FG_ACT_R, FG_ACT_D, FG_ACT_F},
    .default_sticky = 0.1f,
    .state_bytes = sizeof(fg_seaquest),
    .reset = seaquest_reset,
    .step = seaquest_step,
    .observe = seaquest_observe,
    .step_batch = seaquest_step_batch,
    .ramp = seaquest_ramp,
};
