/* lb.h - per-worker load-balancer state for one service's instances.
 * Each worker owns its own rw_lb; nothing here is shared or locked. */
#ifndef RINGWAY_LB_H
#define RINGWAY_LB_H

#include <stddef.h>
#include <stdint.h>

typedef struct rw_lb {
    int policy;          /* enum rw_lb_policy */
    uint32_t n;          /* instance count */
    uint32_t *weights;   /* owned copy */
    int64_t *current;    /* smooth weighted round-robin state, owned */
    uint64_t *ring_hash; /* consistent-hash ring points, sorted, owned */
    uint32_t *ring_inst; /* instance of each ring point, owned */
    size_t ring_len;
    uint64_t rng; /* xorshift state for p2c */
} rw_lb;

/* Sets up lb for n instances with their weights (copied); allocates.
 * Returns 0, -EINVAL (n == 0) or -ENOMEM. */
int rw_lb_init(rw_lb *lb, int policy, const uint32_t *weights, uint32_t n, uint64_t seed);

/* Same as rw_lb_init, but the consistent-hash ring points of instance i are
 * derived from names[i] (e.g. its "host:port") instead of its index, so that
 * keys stay put when discovery reorders, adds or removes instances. names may
 * be NULL (index-based, as rw_lb_init); ignored by the other policies. */
int rw_lb_init_named(rw_lb *lb, int policy, const uint32_t *weights, const char *const *names, uint32_t n,
                     uint64_t seed);

/* Frees what rw_lb_init allocated. */
void rw_lb_free(rw_lb *lb);

/* Picks an instance index. active[i] is the number of requests in flight to
 * instance i (least_conn and p2c, weighted); excluded[i] != 0 means instance i
 * must not be chosen (down, or already tried for this request); hash is the
 * request's key hash for RW_LB_HASH (walks the ring past excluded instances).
 * Returns the index, or -1 when every instance is excluded. No allocation.
 * active may be NULL (all idle) and excluded may be NULL (none excluded). A
 * weight of 0 is treated as 1. */
int rw_lb_pick(rw_lb *lb, const uint32_t *active, const uint8_t *excluded, uint64_t hash);

/* A fast 64-bit hash of bytes (for hash keys and cache keys). */
uint64_t rw_hash64(const void *p, size_t len);

#endif
