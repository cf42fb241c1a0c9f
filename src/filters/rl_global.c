/* rl_global.c - the process's rate-limit tables, by name, and the Redis
 * sync of the global ones (rl_global.h). A table is shared by every config
 * that names the same limit (name, size, scope), so a reload keeps its
 * buckets; the control thread frees it when no config uses it. The Redis
 * sync thread is started, replaced and stopped here as configs come and go;
 * workers read which one is live with one atomic load. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringway/log.h"
#include "ringway/rl_global.h"

struct rw_rl_entry {
    char *name;
    rw_rl_table *t;
    uint32_t max_keys;
    uint32_t window_ms;
    int refs;    /* rw_filters using it */
    bool global; /* registered with the sync thread */
    struct rw_rl_entry *next;
};
typedef struct rw_rl_entry rl_reg;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static rl_reg *reg_list;
static rw_rl_sync *cur_sync;
static _Atomic(rw_rl_sync *) live_sync; /* what workers read */
static atomic_int redis_policy;

/* Takes a reference on the table called name, creating it when absent or when
 * its size no longer matches. Caller holds reg_mu. */
static rl_reg *reg_get(const rw_rate_limit_cfg *rc)
{
    for (rl_reg *r = reg_list; r != NULL; r = r->next) {
        /* Same name, size and scope: the same buckets (a scope change starts afresh). */
        if (strcmp(r->name, rc->name) == 0 && r->max_keys == rc->max_keys &&
            r->global == (rc->scope == RW_RL_GLOBAL)) {
            r->refs++;
            uint32_t window = rc->window_ms ? rc->window_ms : 1000;
            if (r->global && window != r->window_ms && cur_sync != NULL) {
                rw_rl_sync_remove(cur_sync, r->t); /* the Redis keys' lifetime follows the period */
                if (rw_rl_sync_add(cur_sync, r->t, window) != 0)
                    rw_log_warn("rate limit %s: cannot register with the Redis sync: out of memory", r->name);
            }
            r->window_ms = window;
            return r;
        }
    }
    rl_reg *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->name = strdup(rc->name)) == NULL ||
        (r->t = rw_rl_table_new(rc->name, rc->max_keys)) == NULL) {
        if (r != NULL)
            free(r->name);
        free(r);
        return NULL;
    }
    r->max_keys = rc->max_keys;
    r->window_ms = rc->window_ms ? rc->window_ms : 1000;
    r->refs = 1;
    r->global = rc->scope == RW_RL_GLOBAL;
    if (r->global && cur_sync != NULL && rw_rl_sync_add(cur_sync, r->t, r->window_ms) != 0)
        rw_log_warn("rate limit %s: cannot register with the Redis sync: out of memory", r->name);
    r->next = reg_list;
    reg_list = r;
    return r;
}

/* Uses s (or NULL: none) to sync global limits from now on; moves every
 * global table to it. on_failure is an enum rw_redis_failure. */
static void set_sync(rw_rl_sync *s, int on_failure)
{
    pthread_mutex_lock(&reg_mu);
    atomic_store_explicit(&redis_policy, on_failure, memory_order_relaxed);
    if (s != cur_sync) {
        for (rl_reg *r = reg_list; r != NULL; r = r->next) {
            if (!r->global)
                continue;
            if (cur_sync != NULL)
                rw_rl_sync_remove(cur_sync, r->t);
            if (s != NULL && rw_rl_sync_add(s, r->t, r->window_ms) != 0)
                rw_log_warn("rate limit %s: cannot register with the Redis sync: out of memory", r->name);
        }
        cur_sync = s;
        atomic_store_explicit(&live_sync, s, memory_order_release);
    }
    pthread_mutex_unlock(&reg_mu);
}

rw_rl_entry *rw_rl_global_acquire(const rw_rate_limit_cfg *rc)
{
    pthread_mutex_lock(&reg_mu);
    rl_reg *r = reg_get(rc);
    pthread_mutex_unlock(&reg_mu);
    return r;
}

rw_rl_table *rw_rl_entry_table(const rw_rl_entry *e)
{
    return e->t;
}

void rw_rl_global_release(rw_rl_entry *e)
{
    pthread_mutex_lock(&reg_mu);
    e->refs--;
    pthread_mutex_unlock(&reg_mu);
}

rw_rl_sync *rw_rl_global_sync(void)
{
    return atomic_load_explicit(&live_sync, memory_order_acquire);
}

int rw_rl_global_policy(void)
{
    return atomic_load_explicit(&redis_policy, memory_order_relaxed);
}

/* ---- the Redis sync's lifecycle ---- */

static rw_rl_sync *redis_sync;
/* A replaced sync stops 2 s later: a worker may have loaded its pointer just
 * before the swap and still be about to read its "up" flag. */
static rw_rl_sync *retired_sync;
static struct timespec retired_at;

static void retire_sync_tick(bool force)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (retired_sync != NULL && (force || now.tv_sec - retired_at.tv_sec >= 2)) {
        rw_rl_sync_stop(retired_sync);
        retired_sync = NULL;
    }
}
static char *redis_url;
static uint32_t redis_interval;

static bool has_global(const rw_filter_cfg *fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fs[i].kind == RW_FILTER_RATE_LIMIT && fs[i].u.rate_limit.scope == RW_RL_GLOBAL)
            return true;
    return false;
}

void rw_rl_global_apply(const rw_config *cfg)
{
    const char *url = cfg->redis.url;
    bool any_global = has_global(cfg->filters, cfg->nfilters);
    for (size_t i = 0; i < cfg->nroutes; i++)
        any_global |= has_global(cfg->routes[i].filters, cfg->routes[i].nfilters);
    for (size_t i = 0; i < cfg->nservices; i++)
        any_global |= has_global(cfg->services[i].filters, cfg->services[i].nfilters);
    if (url == NULL && any_global)
        rw_log_warn("global rate limits without redis: they are enforced per node");
    bool same = (url == NULL && redis_sync == NULL) ||
                (url != NULL && redis_url != NULL && strcmp(url, redis_url) == 0 &&
                 cfg->redis.sync_interval_ms == redis_interval);
    if (same) {
        set_sync(redis_sync, cfg->redis.on_failure); /* the policy may have changed */
        return;
    }
    rw_rl_sync *old = redis_sync, *s = NULL;
    if (url != NULL) {
        char err[512];
        rw_rl_sync_opts so = {.url = url, .interval_ms = cfg->redis.sync_interval_ms, .key_prefix = NULL};
        s = rw_rl_sync_start(&so, err, sizeof(err));
        if (s == NULL)
            rw_log_error("redis: %s; global limits are enforced per node", err);
        else
            rw_log_info("redis: syncing global rate limits every %u ms", cfg->redis.sync_interval_ms);
    }
    set_sync(s, cfg->redis.on_failure);
    retire_sync_tick(true); /* an older one has had its grace by now */
    retired_sync = old;
    clock_gettime(CLOCK_MONOTONIC, &retired_at);
    free(redis_url);
    redis_url = s != NULL ? strdup(url) : NULL;
    redis_interval = cfg->redis.sync_interval_ms;
    redis_sync = s;
}

bool rw_rl_global_stats(rw_rl_sync_stats *out)
{
    if (redis_sync == NULL)
        return false;
    rw_rl_sync_get_stats(redis_sync, out);
    return true;
}

void rw_rl_global_collect(void)
{
    retire_sync_tick(false);
    pthread_mutex_lock(&reg_mu);
    for (rl_reg **pp = &reg_list; *pp != NULL;) {
        rl_reg *r = *pp;
        if (r->refs > 0) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        if (r->global && cur_sync != NULL)
            rw_rl_sync_remove(cur_sync, r->t);
        rw_rl_table_free(r->t);
        free(r->name);
        free(r);
    }
    pthread_mutex_unlock(&reg_mu);
}

void rw_rl_global_stop(void)
{
    set_sync(NULL, RW_REDIS_LOCAL);
    retire_sync_tick(true); /* workers are gone */
    rw_rl_sync_stop(redis_sync);
    redis_sync = NULL;
    free(redis_url);
    redis_url = NULL;
}
