/* lb.c - load-balancing policies over one service's instances.
 *
 * round_robin: smooth weighted round-robin (the nginx algorithm): every pick
 *   adds each eligible instance's weight to its current value, takes the
 *   largest (first on ties) and subtracts the eligible total from it. With
 *   weights 5,1,1 the sequence is a a b a c a a, and over any whole number of
 *   cycles the proportions are exact.
 * least_conn: smallest active/weight (compared by cross-multiplication); ties
 *   are broken by smooth weighted round-robin among the tied instances, so
 *   equal loads spread instead of piling onto the first index.
 * p2c: two distinct random eligible instances, the less loaded (active/weight)
 *   wins; xorshift64* random numbers.
 * hash: a ketama-style ring; ~160 points per unit of weight (scaled down when
 *   the ring would exceed RING_MAX points), each point rw_hash64 of
 *   "<name>-<replica>" where name is the instance's index (or the name given to
 *   rw_lb_init_named). A key maps to the first point at or after its hash,
 *   walking forward past excluded instances.
 *
 * Lifetime: rw_lb owns weights, current and the ring arrays; one per worker. */
#include "ringway/lb.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringway/config.h"

#define POINTS_PER_WEIGHT 160u
#define RING_MAX (1u << 18) /* ~3 MiB of ring per rw_lb at most */

/* ---- hashing ---------------------------------------------------------- */

#define H_K0 0xa0761d6478bd642fULL
#define H_K1 0xe7037ed1a0b428dbULL
#define H_K2 0x8ebc6af09c88c6e3ULL
#define H_K3 0x589965cc75374cc3ULL

/* 64x64 -> 128 multiply, folded to 64 bits by xor of the halves. */
static inline uint64_t fold_mul(uint64_t a, uint64_t b)
{
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

static inline uint64_t load32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}

uint64_t rw_hash64(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t seed = H_K0 ^ fold_mul((uint64_t)len ^ H_K1, H_K2);
    uint64_t a, b;
    size_t n = len;

    /* 32 bytes per round in two independent lanes, then 16-byte steps. */
    if (n > 32) {
        uint64_t s1 = seed ^ H_K3;
        while (n > 32) {
            seed = fold_mul(load64(p) ^ H_K1, load64(p + 8) ^ seed);
            s1 = fold_mul(load64(p + 16) ^ H_K2, load64(p + 24) ^ s1);
            p += 32;
            n -= 32;
        }
        seed ^= s1;
    }
    while (n > 16) {
        seed = fold_mul(load64(p) ^ H_K1, load64(p + 8) ^ seed);
        p += 16;
        n -= 16;
    }
    /* 0..16 bytes left: read them as two (possibly overlapping) words. */
    if (n >= 8) {
        a = load64(p);
        b = load64(p + n - 8);
    } else if (n >= 4) {
        a = load32(p);
        b = load32(p + n - 4);
    } else if (n > 0) {
        a = ((uint64_t)p[0] << 16) | ((uint64_t)p[n >> 1] << 8) | p[n - 1];
        b = 0;
    } else {
        a = b = 0;
    }
    uint64_t h = fold_mul(a ^ H_K1 ^ (uint64_t)n, b ^ seed ^ H_K3);
    return fold_mul(h ^ H_K0, (uint64_t)len ^ H_K2 ^ seed);
}

/* ---- random numbers ----------------------------------------------------- */

static inline uint64_t rng_next(rw_lb *lb)
{
    uint64_t x = lb->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    lb->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n) (Lemire's multiply-shift; bias is negligible for small n). */
static inline uint32_t rng_below(rw_lb *lb, uint32_t n)
{
    return (uint32_t)(((unsigned __int128)rng_next(lb) * n) >> 64);
}

/* ---- init --------------------------------------------------------------- */

typedef struct ring_point {
    uint64_t hash;
    uint32_t inst;
} ring_point;

static int cmp_point(const void *pa, const void *pb)
{
    const ring_point *a = pa, *b = pb;
    if (a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    return a->inst < b->inst ? -1 : a->inst > b->inst;
}

static int build_ring(rw_lb *lb, const char *const *names)
{
    uint64_t total_w = 0;
    for (uint32_t i = 0; i < lb->n; i++)
        total_w += lb->weights[i];
    double per_w = POINTS_PER_WEIGHT;
    if ((double)total_w * per_w > RING_MAX)
        per_w = (double)RING_MAX / (double)total_w;
    size_t cap = 0;
    uint32_t *npoints = malloc(sizeof(uint32_t) * lb->n);
    if (npoints == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < lb->n; i++) {
        double p = (double)lb->weights[i] * per_w + 0.5;
        npoints[i] = p < 1.0 ? 1u : (uint32_t)p;
        cap += npoints[i];
    }
    ring_point *pts = malloc(sizeof(ring_point) * cap);
    lb->ring_hash = malloc(sizeof(uint64_t) * cap);
    lb->ring_inst = malloc(sizeof(uint32_t) * cap);
    if (pts == NULL || lb->ring_hash == NULL || lb->ring_inst == NULL) {
        free(pts);
        free(npoints);
        return -ENOMEM;
    }
    size_t k = 0;
    char buf[320];
    for (uint32_t i = 0; i < lb->n; i++) {
        for (uint32_t r = 0; r < npoints[i]; r++) {
            int len;
            if (names != NULL && names[i] != NULL)
                len = snprintf(buf, sizeof buf, "%.256s-%u", names[i], r);
            else
                len = snprintf(buf, sizeof buf, "%u-%u", i, r);
            pts[k].hash = rw_hash64(buf, (size_t)len);
            pts[k].inst = i;
            k++;
        }
    }
    qsort(pts, cap, sizeof *pts, cmp_point);
    for (size_t j = 0; j < cap; j++) {
        lb->ring_hash[j] = pts[j].hash;
        lb->ring_inst[j] = pts[j].inst;
    }
    lb->ring_len = cap;
    free(pts);
    free(npoints);
    return 0;
}

int rw_lb_init_named(rw_lb *lb, int policy, const uint32_t *weights, const char *const *names, uint32_t n,
                     uint64_t seed)
{
    memset(lb, 0, sizeof *lb);
    if (n == 0 || policy < RW_LB_ROUND_ROBIN || policy > RW_LB_HASH)
        return -EINVAL;
    lb->policy = policy;
    lb->n = n;
    lb->weights = malloc(sizeof(uint32_t) * n);
    lb->current = calloc(n, sizeof(int64_t));
    if (lb->weights == NULL || lb->current == NULL)
        goto nomem;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t wt = weights != NULL ? weights[i] : 1u;
        lb->weights[i] = wt == 0 ? 1u : wt;
    }
    /* splitmix64 of the seed: distinct seeds give unrelated streams, never 0. */
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    lb->rng = z != 0 ? z : 0x9E3779B97F4A7C15ULL;
    if (policy == RW_LB_HASH && build_ring(lb, names) != 0)
        goto nomem;
    return 0;
nomem:
    rw_lb_free(lb);
    return -ENOMEM;
}

int rw_lb_init(rw_lb *lb, int policy, const uint32_t *weights, uint32_t n, uint64_t seed)
{
    return rw_lb_init_named(lb, policy, weights, NULL, n, seed);
}

void rw_lb_free(rw_lb *lb)
{
    free(lb->weights);
    free(lb->current);
    free(lb->ring_hash);
    free(lb->ring_inst);
    lb->weights = NULL;
    lb->current = NULL;
    lb->ring_hash = NULL;
    lb->ring_inst = NULL;
    lb->ring_len = 0;
    lb->n = 0;
}

/* ---- policies ----------------------------------------------------------- */

#define EXCLUDED(ex, i) ((ex) != NULL && (ex)[i] != 0)
#define ACTIVE(act, i) ((act) != NULL ? (uint64_t)(act)[i] : 0u)

static int pick_swrr(rw_lb *lb, const uint8_t *excluded)
{
    int best = -1;
    int64_t total = 0;
    for (uint32_t i = 0; i < lb->n; i++) {
        if (EXCLUDED(excluded, i))
            continue;
        lb->current[i] += lb->weights[i];
        total += lb->weights[i];
        if (best < 0 || lb->current[i] > lb->current[best])
            best = (int)i;
    }
    if (best >= 0)
        lb->current[best] -= total;
    return best;
}

/* Returns <0, 0, >0 as active[a]/w[a] is below, equal to, above active[b]/w[b]. */
static inline int load_cmp(const rw_lb *lb, const uint32_t *active, uint32_t a, uint32_t b)
{
    uint64_t la = ACTIVE(active, a) * lb->weights[b];
    uint64_t lb_ = ACTIVE(active, b) * lb->weights[a];
    return la < lb_ ? -1 : la > lb_;
}

static int pick_least_conn(rw_lb *lb, const uint32_t *active, const uint8_t *excluded)
{
    int min = -1;
    uint32_t ties = 0;
    for (uint32_t i = 0; i < lb->n; i++) {
        if (EXCLUDED(excluded, i))
            continue;
        int c = min < 0 ? -1 : load_cmp(lb, active, i, (uint32_t)min);
        if (c < 0) {
            min = (int)i;
            ties = 1;
        } else if (c == 0) {
            ties++;
        }
    }
    if (min < 0 || ties == 1)
        return min;
    /* Smooth weighted round-robin among the instances tied at the minimum. */
    int best = -1;
    int64_t total = 0;
    for (uint32_t i = (uint32_t)min; i < lb->n; i++) {
        if (EXCLUDED(excluded, i) || load_cmp(lb, active, i, (uint32_t)min) != 0)
            continue;
        lb->current[i] += lb->weights[i];
        total += lb->weights[i];
        if (best < 0 || lb->current[i] > lb->current[best])
            best = (int)i;
    }
    lb->current[best] -= total;
    return best;
}

/* A uniformly random eligible instance other than skip (-1: none), or -1. */
static int random_eligible(rw_lb *lb, const uint8_t *excluded, int skip)
{
    for (int tries = 0; tries < 8; tries++) {
        uint32_t i = rng_below(lb, lb->n);
        if (!EXCLUDED(excluded, i) && (int)i != skip)
            return (int)i;
    }
    /* Mostly excluded: count and pick the k-th eligible one. */
    uint32_t m = 0;
    for (uint32_t i = 0; i < lb->n; i++)
        m += !EXCLUDED(excluded, i) && (int)i != skip;
    if (m == 0)
        return -1;
    uint32_t k = rng_below(lb, m);
    for (uint32_t i = 0; i < lb->n; i++) {
        if (EXCLUDED(excluded, i) || (int)i == skip)
            continue;
        if (k-- == 0)
            return (int)i;
    }
    return -1; /* not reached */
}

static int pick_p2c(rw_lb *lb, const uint32_t *active, const uint8_t *excluded)
{
    int a = random_eligible(lb, excluded, -1);
    if (a < 0)
        return -1;
    int b = random_eligible(lb, excluded, a);
    if (b < 0)
        return a;
    return load_cmp(lb, active, (uint32_t)b, (uint32_t)a) < 0 ? b : a;
}

static bool any_eligible(const rw_lb *lb, const uint8_t *excluded)
{
    for (uint32_t i = 0; i < lb->n; i++)
        if (!EXCLUDED(excluded, i))
            return true;
    return false;
}

static int pick_hash(const rw_lb *lb, const uint8_t *excluded, uint64_t hash)
{
    if (lb->ring_len == 0)
        return -1;
    /* First point with ring_hash >= hash, wrapping to 0. */
    size_t lo = 0, hi = lb->ring_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (lb->ring_hash[mid] < hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t pos = lo == lb->ring_len ? 0 : lo;
    for (size_t step = 0; step < lb->ring_len; step++) {
        uint32_t inst = lb->ring_inst[pos];
        if (!EXCLUDED(excluded, inst))
            return (int)inst;
        /* After a short walk make sure the walk can end at all. */
        if (step == 64 && !any_eligible(lb, excluded))
            return -1;
        if (++pos == lb->ring_len)
            pos = 0;
    }
    return -1;
}

int rw_lb_pick(rw_lb *lb, const uint32_t *active, const uint8_t *excluded, uint64_t hash)
{
    switch (lb->policy) {
    case RW_LB_LEAST_CONN:
        return pick_least_conn(lb, active, excluded);
    case RW_LB_P2C:
        return pick_p2c(lb, active, excluded);
    case RW_LB_HASH:
        return pick_hash(lb, excluded, hash);
    case RW_LB_ROUND_ROBIN:
    default:
        return pick_swrr(lb, excluded);
    }
}
