/* Seeded random numbers: xoshiro256** (Blackman & Vigna) seeded through splitmix64, so the same
 * seed gives the same stream on every machine. Uniform floats use 24 bits so they are exact. */
#include <math.h>

#include "frugal/core.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void fg_rng_seed(fg_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t fg_rng_u64(fg_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float fg_rng_uniform(fg_rng *r) { return (float)(fg_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

uint64_t fg_rng_below(fg_rng *r, uint64_t n) {
    FG_ASSERT(n > 0);
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = fg_rng_u64(r);
    while (x >= limit);
    return x % n;
}

float fg_rng_normal(fg_rng *r) {
    /* Box-Muller on doubles; u1 in (0, 1] so log is finite. */
    double u1 = ((double)(fg_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(fg_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void fg_rng_shuffle(fg_rng *r, int64_t *idx, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)fg_rng_below(r, i);
        int64_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

float fg_hash_uniform(uint64_t seed, uint64_t i) {
    uint64_t x = seed ^ (i * 0xD1B54A32D192ED03ull);
    uint64_t h = splitmix64(&x);
    return (float)(h >> 40) * (1.0f / 16777216.0f);
}
