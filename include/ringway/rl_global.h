/* rl_global.h - the process's rate-limit tables and their Redis sync: the
 * tables named by the running configs (shared by every snapshot that names
 * the same limit, so a reload keeps the buckets) and the one Redis sync
 * thread that shares the global ones across nodes. Control side, except
 * rw_rl_global_sync and rw_rl_global_policy (any thread, lock-free). */
#ifndef RINGWAY_RL_GLOBAL_H
#define RINGWAY_RL_GLOBAL_H

#include <stdbool.h>

#include "ringway/config.h"
#include "ringway/ratelimit.h"
#include "ringway/rlsync.h"

/* One named table and the configs that use it. */
typedef struct rw_rl_entry rw_rl_entry;

/* The table for this limit (same name, size and scope: the same buckets),
 * created when absent; takes a reference. NULL when out of memory. */
rw_rl_entry *rw_rl_global_acquire(const rw_rate_limit_cfg *rc);
/* The entry's table (valid while the reference is held). */
rw_rl_table *rw_rl_entry_table(const rw_rl_entry *e);
/* Drops a reference; the table is freed by rw_rl_global_collect. */
void rw_rl_global_release(rw_rl_entry *e);
/* Frees the tables no config uses any more, and a replaced Redis sync once
 * its grace period is over (control thread, regularly). */
void rw_rl_global_collect(void);

/* Starts, restarts or stops the Redis sync to match cfg->redis (at start-up
 * and after each reload), and moves every global table to it. */
void rw_rl_global_apply(const rw_config *cfg);
/* The Redis sync in use, or NULL (workers: one acquire load). */
rw_rl_sync *rw_rl_global_sync(void);
/* What to do while Redis is down: enum rw_redis_failure (relaxed load). */
int rw_rl_global_policy(void);
/* Copies the Redis sync's counters; false when no Redis is configured. */
bool rw_rl_global_stats(rw_rl_sync_stats *out);
/* Stops the Redis sync (process exit, after the workers). */
void rw_rl_global_stop(void);

#endif
