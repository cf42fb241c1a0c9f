/* rlsync.h - global rate limits through Redis. One background thread per
 * process (never a worker) syncs the registered tables once per interval in a
 * single pipelined round trip: INCRBY of each active key's local consumption
 * (with PEXPIRE), whose replies tell what the other nodes consumed since the
 * last round; that is debited from the local buckets. Redis down: the thread
 * reconnects with backoff (100 ms doubling to 5 s) and rw_rl_sync_up() turns
 * false so workers apply the on_failure policy. */
#ifndef RINGWAY_RLSYNC_H
#define RINGWAY_RLSYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "ringway/ratelimit.h"
#include "ringway/redis.h" /* rw_redis_url, rw_redis_url_parse (config.c, main.c) */

typedef struct rw_rl_sync rw_rl_sync;

typedef struct rw_rl_sync_opts {
    const char *url;        /* redis://... */
    uint32_t interval_ms;   /* default 100 */
    const char *key_prefix; /* default "ringway:rl:" */
} rw_rl_sync_opts;

/* Starts the sync thread (the first connection is made by the thread; Redis
 * being down is not an error). NULL with a reason in err for a bad URL or
 * ENOMEM. */
rw_rl_sync *rw_rl_sync_start(const rw_rl_sync_opts *o, char *err, size_t errlen);
/* Stops the thread and frees; NULL allowed. */
void rw_rl_sync_stop(rw_rl_sync *s);
/* Registers a table as global; window_ms bounds the Redis keys' lifetime
 * (keys expire after max(2 x window, 60 s) without updates). 0 or -ENOMEM. */
int rw_rl_sync_add(rw_rl_sync *s, rw_rl_table *t, uint32_t window_ms);
/* Unregisters a table; when it returns the thread no longer touches t. */
void rw_rl_sync_remove(rw_rl_sync *s, rw_rl_table *t);
/* True while Redis answers (lock-free; workers call it). */
bool rw_rl_sync_up(const rw_rl_sync *s);

typedef struct rw_rl_sync_stats {
    uint64_t rounds;        /* completed sync round trips */
    uint64_t failures;      /* failed connects or round trips */
    uint64_t keys_synced;   /* key updates sent */
    uint64_t last_round_us; /* duration of the last round trip */
    bool up;
} rw_rl_sync_stats;
/* Copies the counters (any thread). */
void rw_rl_sync_get_stats(const rw_rl_sync *s, rw_rl_sync_stats *out);

#endif
