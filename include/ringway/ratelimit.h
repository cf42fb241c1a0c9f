/* ratelimit.h - token buckets for rate limits.
 *
 * Each limit has one process-wide table of buckets (rw_rl_table), shared by
 * all workers and lock-free: a bucket is a GCRA "theoretical arrival time"
 * updated by compare-and-swap, so taking tokens is exact under concurrency.
 * Each worker keeps a shard (rw_rl_shard): a bounded LRU of the keys it saw,
 * holding tokens taken from the table in small batches, so the common path
 * touches only worker-local memory. A single client on one keep-alive
 * connection gets the whole limit (its worker borrows batch after batch);
 * clients spread over all workers share it exactly, less the few tokens
 * parked in shards.
 *
 * Global limits: the Redis sync thread collects each table's consumption per
 * interval (rw_rl_table_collect), adds it to cluster counters and debits what
 * the other nodes consumed (rw_rl_table_debit), which advances the buckets'
 * arrival times exactly as local consumption would. */
#ifndef RINGWAY_RATELIMIT_H
#define RINGWAY_RATELIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A bucket's shape: refill rate and capacity. */
typedef struct rw_rl_params {
    double rate;    /* tokens per second, > 0 */
    uint32_t burst; /* bucket capacity in tokens, >= 1 */
} rw_rl_params;

/* The outcome of one check, for the 429 and RateLimit-* headers. */
typedef struct rw_rl_decision {
    bool allowed;
    uint32_t limit;         /* burst (the most a client can send at once) */
    uint32_t remaining;     /* tokens left after this request (estimate, >= 0) */
    uint32_t reset_s;       /* seconds until the bucket is full again (ceil) */
    uint32_t retry_after_s; /* when refused: seconds until one token is available (>= 1) */
} rw_rl_decision;

typedef struct rw_rl_table rw_rl_table;

/* Creates a table with room for about max_keys live buckets (rounded up to a
 * power of two, at least 64). `name` is copied (used in metrics and as the
 * Redis key prefix). Returns NULL on ENOMEM. */
rw_rl_table *rw_rl_table_new(const char *name, uint32_t max_keys);
/* Frees a table; NULL allowed. No worker or sync thread may still use it. */
void rw_rl_table_free(rw_rl_table *t);
/* The name given at creation. */
const char *rw_rl_table_name(const rw_rl_table *t);

/* Takes up to `want` tokens (>= 1) for key at now_ns from the shared bucket.
 * Returns how many were granted (0..want); never blocks, never allocates.
 * A full table evicts the bucket nearest to full in the key's probe window.
 * When out is non-NULL it is filled for a request costing one token. */
uint32_t rw_rl_table_take(rw_rl_table *t, uint64_t key, const rw_rl_params *p, uint32_t want, uint64_t now_ns,
                          rw_rl_decision *out);
/* Gives n unused tokens back to key's bucket (a shard dropping its batch). */
void rw_rl_table_give_back(rw_rl_table *t, uint64_t key, uint32_t n, uint64_t now_ns);

/* Sync side (one thread at a time). For every bucket that consumed tokens since
 * the last call, or was used within active_ns, calls fn with the key, the
 * consumption since the last call (reset to 0) and the bucket's rate. */
typedef void (*rw_rl_collect_fn)(void *arg, uint64_t key, uint64_t consumed);
size_t rw_rl_table_collect(rw_rl_table *t, uint64_t now_ns, uint64_t active_ns, rw_rl_collect_fn fn,
                           void *arg);
/* Charges n tokens consumed elsewhere (other nodes) to key's bucket, if the key
 * is present; never creates a bucket. */
void rw_rl_table_debit(rw_rl_table *t, uint64_t key, uint64_t n, uint64_t now_ns);
/* Number of live buckets (for metrics; approximate under concurrency). */
size_t rw_rl_table_live(rw_rl_table *t, uint64_t now_ns);

/* A worker's shard: not thread-safe, one per worker. */
typedef struct rw_rl_shard rw_rl_shard;

/* Creates a shard holding at most max_keys keys (LRU beyond). NULL on ENOMEM. */
rw_rl_shard *rw_rl_shard_new(uint32_t max_keys);
/* Frees a shard, giving parked tokens back to their tables. */
void rw_rl_shard_free(rw_rl_shard *s, uint64_t now_ns);
/* Drops every key of table t from the shard (tokens given back); for a table
 * about to be freed. */
void rw_rl_shard_forget(rw_rl_shard *s, rw_rl_table *t, uint64_t now_ns);

/* Decides one request costing one token for key under limit table t with
 * params p at now_ns; fills d. Local tokens first; when dry, borrows a batch
 * from t. Parked tokens older than about a second go back to t. */
bool rw_rl_check(rw_rl_shard *s, rw_rl_table *t, uint64_t key, const rw_rl_params *p, uint64_t now_ns,
                 rw_rl_decision *d);
/* Keys currently held by the shard. */
size_t rw_rl_shard_size(const rw_rl_shard *s);
/* Keys evicted by the LRU cap since creation. */
uint64_t rw_rl_shard_evictions(const rw_rl_shard *s);

#endif
