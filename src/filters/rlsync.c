/* rlsync.c - global rate limits through Redis (see rlsync.h).
 *
 * One thread per rw_rl_sync. Every interval it collects each registered
 * table's consumption (rw_rl_table_collect), sends it in one pipelined round
 * trip (INCRBY <prefix><table>:<key hex> <consumed>, PEXPIRE <same> <ttl>) and
 * debits what the other nodes consumed since the previous round:
 *
 *   others = new_total - last_total - sent        (new_total >= last + sent)
 *   others = max(0, new_total - sent)             (key expired or flushed)
 *   others = 0                                    (no recent baseline)
 *
 * A baseline (last_total) is only trusted when it was read on the current
 * connection and at most max(2 s, 3 intervals) ago: the cluster counter is
 * cumulative over the key's Redis lifetime, so an old or unknown baseline
 * would turn minutes of other nodes' consumption into one debit "now" and
 * block the key far into the future. Hence a key first seen, skipped for a
 * while, or seen again after a reconnect debits nothing on that round and
 * only sets its baseline; the next round debits normally.
 *
 * Overshoot: a node learns the others' consumption one to two intervals late,
 * and a key gets no debit on the round that sets its baseline, so with N nodes
 * the cluster may exceed a limit by about (N - 1) x (rate x 2 intervals) in
 * steady state, plus up to (N - 1) x burst for a key that becomes active on
 * several nodes at once.
 *
 * Failure: a connect error, an I/O error or timeout, or an error reply (other
 * than a per-key WRONGTYPE / not-an-integer / overflow, which only skips that
 * key) marks Redis down; the connection, its logging and the reconnects with
 * backoff (100 ms doubling to 5 s; reset by a successful round) are the Redis
 * client's (src/core/redis.c). While down, the tables are still collected
 * every interval so their counters stay bounded; that consumption is kept per
 * key ("pending") and added to the first INCRBY after reconnecting, as long as
 * it is younger than max(window, 2 intervals) (older consumption no longer
 * affects any bucket; it is dropped). Consumption sent in a round whose reply
 * was lost is NOT resent: Redis may already have applied it, and double
 * counting would punish clients; so a round that fails mid-flight under-counts
 * by one interval. Every reconnect starts a new baseline epoch
 * (rw_redis_epoch, see above). "Up" means Redis answered: after connecting,
 * AUTH / SELECT / PING must succeed, and a round with no key to send still
 * sends a PING, so an idle node notices a dead server. Timeouts: connect 500
 * ms, commands clamp(interval, 500 ms, 2 s); stop also shuts the socket down
 * (rw_redis_interrupt) so it never waits for a command timeout. Name
 * resolution (getaddrinfo inside hiredis) is not bounded by them.
 *
 * Per round at most KEYS_PER_ROUND keys per table are sent; with more active
 * keys the selection rotates over the key map, the rest waits (their pending
 * consumption is kept) for the next rounds. The per-table key map is bounded
 * by MAP_MAX entries; consumption of keys beyond that is dropped.
 *
 * Locking: s->mu guards the registry and the stop flag; s->round_mu is
 * held by the thread whenever it touches a table (collect, debit), and it
 * re-reads the registry each time it takes round_mu. rw_rl_sync_remove drops
 * the entry under mu, then takes and releases round_mu: once it returns the
 * thread can no longer hold the table. Lock order: round_mu, then mu. Workers
 * take no lock (rw_rl_sync_up is an atomic load). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "ringway/common.h"
#include "ringway/log.h"
#include "ringway/redis.h"
#include "ringway/rlsync.h"

#define NS_PER_MS 1000000ull
#define CMD_TIMEOUT_MIN_MS 500u
#define CMD_TIMEOUT_MAX_MS 2000u /* keeps a wedged server from stalling stop */
#define ACTIVE_NS (2000ull * NS_PER_MS)
#define BASELINE_MIN_NS (2000ull * NS_PER_MS)
#define KEYS_PER_ROUND 10000u
#define MAP_MIN 64u
#define MAP_MAX (1u << 20)
#define TTL_MIN_MS 60000ull
#define PENDING_MAX ((uint64_t)1 << 48) /* far above any real count; keeps INCRBY in range */

/* ------------------------------------------------------------------------ */
/* Types */

/* A registered table (the registry, guarded by s->mu). name is a copy taken
 * at registration so the thread reads no table outside round_mu. */
typedef struct reg_entry {
    rw_rl_table *t;
    uint64_t id; /* unique per registration: a freed and re-added table is new */
    uint32_t window_ms;
    char *name;
} reg_entry;

/* Per-key sync state, owned by the sync thread. */
typedef struct key_state {
    uint64_t key;
    uint64_t pending;       /* consumed locally, not yet sent */
    uint64_t pending_since; /* ns of the oldest unsent consumption */
    uint64_t sent;          /* in the current pipeline */
    uint64_t others;        /* to debit after the current round */
    int64_t total;          /* cluster total read at synced_ns */
    uint64_t synced_ns;     /* when total was read */
    uint64_t epoch;         /* connection epoch of total; 0: none */
    uint64_t touched;       /* round of the last collect report */
    bool used;
} key_state;

/* A table as the thread sees it (owned by the thread; created and destroyed
 * from the registry at the start of a round). */
typedef struct tstate {
    rw_rl_table *t;
    uint64_t id;
    uint64_t ttl_ms;
    uint64_t carry_ns; /* pending older than this is dropped */
    bool live;         /* still registered (checked before debiting) */
    key_state *map;    /* open addressing, linear probing */
    uint32_t cap, n;
    uint32_t cursor; /* rotating start of the send selection */
    uint32_t *send;  /* map indexes sent in the current round */
    uint32_t nsend, send_cap;
    char *keybuf; /* "<prefix><name>:" + 16 hex */
    size_t keyoff;
} tstate;

/* The sync: created by rw_rl_sync_start, freed by rw_rl_sync_stop (after
 * joining the thread); the tables stay their owner's (rl_global.c). */
struct rw_rl_sync {
    rw_redis *redis; /* the connection; used by the thread only, except rw_redis_interrupt / up / failures */
    char *prefix;
    uint32_t interval_ms;
    pthread_t thread;

    pthread_mutex_t mu; /* registry, stopping */
    pthread_cond_t cv;  /* signalled on stop */
    atomic_bool stopping;
    reg_entry *regs;
    size_t nregs, capregs;
    uint64_t next_id;

    pthread_mutex_t round_mu; /* held by the thread while it touches tables */

    /* owned by the thread */
    tstate *ts;
    size_t nts, capts;
    uint64_t round;

    atomic_uint_fast64_t rounds, keys_synced, last_round_us;
};

/* ------------------------------------------------------------------------ */
/* Per-table key map */

static void map_place(key_state *map, uint32_t cap, const key_state *e)
{
    uint32_t i = (uint32_t)rw_mix64(e->key) & (cap - 1);
    while (map[i].used)
        i = (i + 1) & (cap - 1);
    map[i] = *e;
}

/* Rehashes ts's live entries (those keep() accepts, all when NULL) into a map
 * of newcap slots; -1 on ENOMEM (the old map is kept). */
static int map_rebuild(tstate *ts, uint32_t newcap, bool (*keep)(const key_state *, void *), void *arg)
{
    key_state *nm = calloc(newcap, sizeof(*nm));
    if (nm == NULL)
        return -1;
    uint32_t n = 0;
    for (uint32_t i = 0; i < ts->cap; i++) {
        if (!ts->map[i].used || (keep != NULL && !keep(&ts->map[i], arg)))
            continue;
        map_place(nm, newcap, &ts->map[i]);
        n++;
    }
    free(ts->map);
    ts->map = nm;
    ts->cap = newcap;
    ts->n = n;
    if (ts->cursor >= newcap)
        ts->cursor = 0;
    return 0;
}

/* Finds or inserts key; NULL when the map is full (MAP_MAX) or on ENOMEM. */
static key_state *map_get(tstate *ts, uint64_t key)
{
    uint32_t i = (uint32_t)rw_mix64(key) & (ts->cap - 1);
    while (ts->map[i].used) {
        if (ts->map[i].key == key)
            return &ts->map[i];
        i = (i + 1) & (ts->cap - 1);
    }
    if ((ts->n + 1) * 2 > ts->cap) {
        if (ts->cap >= MAP_MAX) {
            if ((ts->n + 1) * 4 > ts->cap * 3)
                return NULL;
        } else if (map_rebuild(ts, ts->cap * 2, NULL, NULL) == 0) {
            return map_get(ts, key);
        } else if ((ts->n + 1) * 4 > ts->cap * 3) {
            return NULL;
        }
    }
    key_state *e = &ts->map[i];
    memset(e, 0, sizeof(*e));
    e->used = true;
    e->key = key;
    ts->n++;
    return e;
}

/* ------------------------------------------------------------------------ */
/* Table states */

static void tstate_free(tstate *ts)
{
    free(ts->map);
    free(ts->send);
    free(ts->keybuf);
    memset(ts, 0, sizeof(*ts));
}

static void tstate_limits(const rw_rl_sync *s, tstate *ts, uint32_t window_ms)
{
    uint64_t ttl = 2ull * window_ms;
    ts->ttl_ms = ttl > TTL_MIN_MS ? ttl : TTL_MIN_MS;
    uint64_t carry = window_ms;
    if (carry < 2ull * s->interval_ms)
        carry = 2ull * s->interval_ms;
    ts->carry_ns = carry * NS_PER_MS;
}

static int tstate_init(rw_rl_sync *s, tstate *ts, const reg_entry *r)
{
    memset(ts, 0, sizeof(*ts));
    ts->t = r->t;
    ts->id = r->id;
    ts->live = true;
    tstate_limits(s, ts, r->window_ms);
    size_t plen = strlen(s->prefix), nlen = strlen(r->name);
    ts->keyoff = plen + nlen + 1;
    ts->keybuf = malloc(ts->keyoff + 17);
    ts->map = calloc(MAP_MIN, sizeof(*ts->map));
    if (ts->keybuf == NULL || ts->map == NULL) {
        tstate_free(ts);
        return -1;
    }
    ts->cap = MAP_MIN;
    memcpy(ts->keybuf, s->prefix, plen);
    memcpy(ts->keybuf + plen, r->name, nlen);
    ts->keybuf[plen + nlen] = ':';
    return 0;
}

static const reg_entry *reg_find_id(const rw_rl_sync *s, uint64_t id)
{
    for (size_t i = 0; i < s->nregs; i++)
        if (s->regs[i].id == id)
            return &s->regs[i];
    return NULL;
}

/* Brings the thread's table states in line with the registry. Called with
 * round_mu and mu held. */
static void tstates_sync(rw_rl_sync *s)
{
    size_t w = 0;
    for (size_t i = 0; i < s->nts; i++) {
        if (reg_find_id(s, s->ts[i].id) == NULL) {
            tstate_free(&s->ts[i]);
            continue;
        }
        s->ts[w++] = s->ts[i];
    }
    s->nts = w;
    for (size_t i = 0; i < s->nregs; i++) {
        bool have = false;
        for (size_t j = 0; j < s->nts && !have; j++) {
            if (s->ts[j].id == s->regs[i].id) {
                tstate_limits(s, &s->ts[j], s->regs[i].window_ms); /* re-added with a new window */
                have = true;
            }
        }
        if (have)
            continue;
        if (s->nts == s->capts) {
            size_t nc = s->capts ? s->capts * 2 : 4;
            tstate *n = realloc(s->ts, nc * sizeof(*n));
            if (n == NULL)
                break; /* retried next round */
            s->ts = n;
            s->capts = nc;
        }
        if (tstate_init(s, &s->ts[s->nts], &s->regs[i]) != 0)
            break;
        s->nts++;
    }
}

/* ------------------------------------------------------------------------ */
/* Collect */

typedef struct collect_ctx {
    rw_rl_sync *s;
    tstate *ts;
    uint64_t now;
} collect_ctx;

static void on_collect(void *arg, uint64_t key, uint64_t consumed)
{
    collect_ctx *cc = arg;
    key_state *e = map_get(cc->ts, key);
    if (e == NULL)
        return; /* map full: this consumption is not shared */
    e->touched = cc->s->round;
    if (e->pending != 0 && cc->now - e->pending_since > cc->ts->carry_ns)
        e->pending = 0; /* too old to matter to any bucket */
    if (consumed != 0) {
        if (e->pending == 0)
            e->pending_since = cc->now;
        e->pending += consumed;
        if (e->pending > PENDING_MAX)
            e->pending = PENDING_MAX;
    }
}

/* Chooses up to KEYS_PER_ROUND keys to send: those reported this round or
 * with pending consumption, starting at a rotating cursor. */
static int select_send(rw_rl_sync *s, tstate *ts, uint64_t now)
{
    ts->nsend = 0;
    uint32_t want = ts->n < KEYS_PER_ROUND ? ts->n : KEYS_PER_ROUND;
    if (want > ts->send_cap) {
        uint32_t *n = realloc(ts->send, want * sizeof(*n));
        if (n == NULL)
            return -1;
        ts->send = n;
        ts->send_cap = want;
    }
    uint32_t i = ts->cursor & (ts->cap - 1), seen = 0;
    for (; seen < ts->cap && ts->nsend < want; seen++, i = (i + 1) & (ts->cap - 1)) {
        key_state *e = &ts->map[i];
        if (!e->used)
            continue;
        if (e->pending != 0 && now - e->pending_since > ts->carry_ns)
            e->pending = 0;
        if (e->touched != s->round && e->pending == 0)
            continue;
        ts->send[ts->nsend++] = i;
    }
    ts->cursor = i;
    return 0;
}

typedef struct prune_arg {
    uint64_t now, epoch, valid_ns, carry_ns;
} prune_arg;

static bool baseline_ok(const key_state *e, uint64_t now, uint64_t epoch, uint64_t valid_ns)
{
    return e->epoch == epoch && e->epoch != 0 && now - e->synced_ns <= valid_ns;
}

static bool prune_keep(const key_state *e, void *arg)
{
    const prune_arg *p = arg;
    if (e->pending != 0 && p->now - e->pending_since <= p->carry_ns)
        return true;
    return baseline_ok(e, p->now, p->epoch, p->valid_ns);
}

static uint64_t baseline_valid_ns(const rw_rl_sync *s)
{
    uint64_t v = 3ull * s->interval_ms * NS_PER_MS;
    return v > BASELINE_MIN_NS ? v : BASELINE_MIN_NS;
}

/* Drops keys with neither pending consumption nor a usable baseline, and
 * shrinks the map when it is mostly empty. */
static void prune(rw_rl_sync *s, tstate *ts, uint64_t now)
{
    prune_arg p = {now, rw_redis_epoch(s->redis), baseline_valid_ns(s), ts->carry_ns};
    uint32_t keep = 0;
    for (uint32_t i = 0; i < ts->cap; i++)
        if (ts->map[i].used && prune_keep(&ts->map[i], &p))
            keep++;
    if (keep == ts->n)
        return;
    uint32_t nc = ts->cap;
    while (nc > MAP_MIN && (uint64_t)keep * 4 < nc)
        nc /= 2;
    map_rebuild(ts, nc, prune_keep, &p); /* ENOMEM: pruned next round */
}

/* ------------------------------------------------------------------------ */
/* Round */

static bool key_error(const char *msg)
{
    return msg != NULL && (strstr(msg, "WRONGTYPE") != NULL || strstr(msg, "not an integer") != NULL ||
                           strstr(msg, "overflow") != NULL);
}

/* Pipelines the selected keys of every table and reads the replies; 0, or -1
 * with a reason (the connection is then unusable). */
static int round_trip(rw_rl_sync *s, uint64_t *nkeys, char *reason, size_t rlen)
{
    redisContext *c = rw_redis_context(s->redis);
    const uint64_t epoch = rw_redis_epoch(s->redis);
    size_t expect = 0;
    *nkeys = 0;
    for (size_t i = 0; i < s->nts; i++) {
        tstate *ts = &s->ts[i];
        for (uint32_t j = 0; j < ts->nsend; j++) {
            key_state *e = &ts->map[ts->send[j]];
            snprintf(ts->keybuf + ts->keyoff, 17, "%016llx", (unsigned long long)e->key);
            size_t klen = ts->keyoff + 16;
            /* From here the consumption counts as sent even if the round
             * fails: Redis may have applied it (see the file comment). */
            e->sent = e->pending;
            e->pending = 0;
            if (redisAppendCommand(c, "INCRBY %b %llu", ts->keybuf, klen, (unsigned long long)e->sent) !=
                    REDIS_OK ||
                redisAppendCommand(c, "PEXPIRE %b %llu", ts->keybuf, klen, (unsigned long long)ts->ttl_ms) !=
                    REDIS_OK) {
                snprintf(reason, rlen, "queueing commands: %s", c->errstr[0] ? c->errstr : "out of memory");
                return -1;
            }
            expect += 2;
        }
    }
    if (expect == 0) { /* nothing to send: still check that Redis answers */
        if (redisAppendCommand(c, "PING") != REDIS_OK) {
            snprintf(reason, rlen, "queueing commands: %s", c->errstr[0] ? c->errstr : "out of memory");
            return -1;
        }
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL) {
            snprintf(reason, rlen, "round trip: %s", c->errstr[0] ? c->errstr : "no reply");
            return -1;
        }
        int rc = 0;
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(reason, rlen, "error reply: %s", r->str ? r->str : "?");
            rc = -1;
        }
        freeReplyObject(r);
        return rc;
    }
    uint64_t now = 0;
    for (size_t i = 0; i < s->nts; i++) {
        tstate *ts = &s->ts[i];
        for (uint32_t j = 0; j < ts->nsend; j++) {
            key_state *e = &ts->map[ts->send[j]];
            e->others = 0;
            for (int k = 0; k < 2; k++) {
                redisReply *r = NULL;
                if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL) {
                    snprintf(reason, rlen, "round trip: %s", c->errstr[0] ? c->errstr : "no reply");
                    return -1;
                }
                if (r->type == REDIS_REPLY_ERROR) {
                    if (!key_error(r->str)) {
                        snprintf(reason, rlen, "error reply: %s", r->str ? r->str : "?");
                        freeReplyObject(r);
                        return -1;
                    }
                    if (k == 0) {
                        snprintf(ts->keybuf + ts->keyoff, 17, "%016llx", (unsigned long long)e->key);
                        rw_log_debug("redis: %.*s: %s", (int)(ts->keyoff + 16), ts->keybuf, r->str);
                        e->epoch = 0;
                    }
                } else if (k == 0 && r->type == REDIS_REPLY_INTEGER) {
                    if (now == 0)
                        now = rw_mono_ns();
                    int64_t total = r->integer;
                    int64_t sent = (int64_t)e->sent;
                    int64_t others = 0;
                    if (baseline_ok(e, now, epoch, baseline_valid_ns(s))) {
                        if (total >= e->total && total - e->total >= sent)
                            others = total - e->total - sent;
                        else
                            others = total > sent ? total - sent : 0; /* expired or flushed */
                    }
                    e->others = (uint64_t)others;
                    e->total = total;
                    e->synced_ns = now;
                    e->epoch = epoch;
                    (*nkeys)++;
                }
                freeReplyObject(r);
            }
            e->sent = 0;
        }
    }
    return 0;
}

static void do_round(rw_rl_sync *s)
{
    s->round++;
    uint64_t now = rw_mono_ns();

    pthread_mutex_lock(&s->round_mu);
    pthread_mutex_lock(&s->mu);
    tstates_sync(s);
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < s->nts; i++) {
        collect_ctx cc = {s, &s->ts[i], now};
        rw_rl_table_collect(s->ts[i].t, now, ACTIVE_NS, on_collect, &cc);
    }
    pthread_mutex_unlock(&s->round_mu);

    if (rw_redis_context(s->redis) != NULL) {
        for (size_t i = 0; i < s->nts; i++)
            if (select_send(s, &s->ts[i], now) != 0)
                s->ts[i].nsend = 0;
        char reason[256];
        uint64_t nkeys = 0;
        uint64_t t0 = rw_mono_ns();
        if (round_trip(s, &nkeys, reason, sizeof(reason)) != 0) {
            for (size_t i = 0; i < s->nts; i++)
                s->ts[i].nsend = 0;
            rw_redis_fail(s->redis, reason);
        } else {
            uint64_t t1 = rw_mono_ns();
            pthread_mutex_lock(&s->round_mu);
            pthread_mutex_lock(&s->mu);
            for (size_t i = 0; i < s->nts; i++)
                s->ts[i].live = reg_find_id(s, s->ts[i].id) != NULL;
            pthread_mutex_unlock(&s->mu);
            for (size_t i = 0; i < s->nts; i++) {
                tstate *ts = &s->ts[i];
                for (uint32_t j = 0; ts->live && j < ts->nsend; j++) {
                    key_state *e = &ts->map[ts->send[j]];
                    if (e->others != 0)
                        rw_rl_table_debit(ts->t, e->key, e->others, t1);
                    e->others = 0;
                }
                ts->nsend = 0;
            }
            pthread_mutex_unlock(&s->round_mu);
            atomic_fetch_add(&s->rounds, 1);
            atomic_fetch_add(&s->keys_synced, nkeys);
            atomic_store(&s->last_round_us, (t1 - t0) / 1000);
            rw_redis_reset_backoff(s->redis);
        }
    }
    now = rw_mono_ns();
    for (size_t i = 0; i < s->nts; i++)
        prune(s, &s->ts[i], now);
}

/* ------------------------------------------------------------------------ */
/* Thread */

/* Sleeps until deadline (monotonic ns) or stop; true when stopping. */
static bool wait_until(rw_rl_sync *s, uint64_t deadline)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000ull),
                          .tv_nsec = (long)(deadline % 1000000000ull)};
    pthread_mutex_lock(&s->mu);
    while (!atomic_load(&s->stopping) && rw_mono_ns() < deadline)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
            break;
    bool stop = atomic_load(&s->stopping);
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static void *sync_main(void *arg)
{
    rw_rl_sync *s = arg;
    rw_log_set_thread(-1);
    const uint64_t step = (uint64_t)s->interval_ms * NS_PER_MS;
    uint64_t next_tick = rw_mono_ns() + step;
    while (!atomic_load(&s->stopping)) {
        uint64_t now = rw_mono_ns();
        if (rw_redis_context(s->redis) == NULL && now >= rw_redis_next_connect_ns(s->redis)) {
            rw_redis_connect(s->redis); /* -1: down, logged, retried after the backoff */
            now = rw_mono_ns();
        }
        if (now >= next_tick && !atomic_load(&s->stopping)) {
            do_round(s);
            next_tick += step;
            now = rw_mono_ns();
            if (next_tick <= now)
                next_tick = now + step;
        }
        uint64_t deadline = next_tick;
        if (rw_redis_context(s->redis) == NULL && rw_redis_next_connect_ns(s->redis) < deadline)
            deadline = rw_redis_next_connect_ns(s->redis);
        if (wait_until(s, deadline))
            break;
    }
    return NULL; /* rw_rl_sync_stop frees the connection */
}

/* ------------------------------------------------------------------------ */
/* API */

rw_rl_sync *rw_rl_sync_start(const rw_rl_sync_opts *o, char *err, size_t errlen)
{
    rw_rl_sync *s = NULL;
    bool mu_ok = false, round_ok = false, cv_ok = false;
    if (o == NULL || o->url == NULL) {
        snprintf(err, errlen, "redis: no url");
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto nomem;
    rw_redis_url url;
    if (rw_redis_url_parse(o->url, &url, err, errlen) != 0)
        goto fail;
    s->interval_ms = o->interval_ms ? o->interval_ms : 100;
    uint32_t cto = s->interval_ms;
    if (cto < CMD_TIMEOUT_MIN_MS)
        cto = CMD_TIMEOUT_MIN_MS;
    if (cto > CMD_TIMEOUT_MAX_MS)
        cto = CMD_TIMEOUT_MAX_MS;
    s->redis =
        rw_redis_new(&(rw_redis_opts){.url = &url, .cmd_timeout_ms = cto, .up_again_note = ", resyncing"});
    if (s->redis == NULL)
        goto nomem;
    s->prefix = strdup(o->key_prefix ? o->key_prefix : "ringway:rl:");
    if (s->prefix == NULL)
        goto nomem;
    s->next_id = 1;
    atomic_init(&s->stopping, false);
    atomic_init(&s->rounds, 0);
    atomic_init(&s->keys_synced, 0);
    atomic_init(&s->last_round_us, 0);

    if (pthread_mutex_init(&s->mu, NULL) != 0)
        goto nomem;
    mu_ok = true;
    if (pthread_mutex_init(&s->round_mu, NULL) != 0)
        goto nomem;
    round_ok = true;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        goto nomem;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        goto nomem;
    cv_ok = true;

    /* The thread takes no signals (SIGPIPE from a dead server becomes EPIPE;
     * the control thread's signalfd keeps its signals). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&s->thread, NULL, sync_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "redis: starting the sync thread: %s", strerror(rc));
        goto fail;
    }
    return s;

nomem:
    snprintf(err, errlen, "redis: out of memory");
fail:
    if (s != NULL) {
        if (cv_ok)
            pthread_cond_destroy(&s->cv);
        if (round_ok)
            pthread_mutex_destroy(&s->round_mu);
        if (mu_ok)
            pthread_mutex_destroy(&s->mu);
        rw_redis_free(s->redis);
        free(s->prefix);
        free(s);
    }
    return NULL;
}

void rw_rl_sync_stop(rw_rl_sync *s)
{
    if (s == NULL)
        return;
    /* First the connection: a round waiting on a wedged server returns, and
     * the failure it then reports is not logged. */
    rw_redis_interrupt(s->redis);
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->stopping, true);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    rw_redis_free(s->redis);

    for (size_t i = 0; i < s->nts; i++)
        tstate_free(&s->ts[i]);
    free(s->ts);
    for (size_t i = 0; i < s->nregs; i++)
        free(s->regs[i].name);
    free(s->regs);
    free(s->prefix);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->round_mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int rw_rl_sync_add(rw_rl_sync *s, rw_rl_table *t, uint32_t window_ms)
{
    char *name = strdup(rw_rl_table_name(t));
    if (name == NULL)
        return -ENOMEM;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nregs; i++) {
        if (s->regs[i].t == t) { /* already global: keep the sync state */
            s->regs[i].window_ms = window_ms;
            free(name);
            goto out;
        }
    }
    if (s->nregs == s->capregs) {
        size_t nc = s->capregs ? s->capregs * 2 : 8;
        reg_entry *n = realloc(s->regs, nc * sizeof(*n));
        if (n == NULL) {
            free(name);
            rc = -ENOMEM;
            goto out;
        }
        s->regs = n;
        s->capregs = nc;
    }
    s->regs[s->nregs++] = (reg_entry){.t = t, .id = s->next_id++, .window_ms = window_ms, .name = name};
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void rw_rl_sync_remove(rw_rl_sync *s, rw_rl_table *t)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nregs; i++) {
        if (s->regs[i].t == t) {
            free(s->regs[i].name);
            s->regs[i] = s->regs[--s->nregs];
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    /* The thread holds round_mu whenever it may touch a table and re-reads the
     * registry each time it takes it: waiting for one release is enough. */
    pthread_mutex_lock(&s->round_mu);
    pthread_mutex_unlock(&s->round_mu);
}

bool rw_rl_sync_up(const rw_rl_sync *s)
{
    return s != NULL && rw_redis_up(s->redis);
}

void rw_rl_sync_get_stats(const rw_rl_sync *s, rw_rl_sync_stats *out)
{
    rw_rl_sync *m = (rw_rl_sync *)s; /* atomics only */
    memset(out, 0, sizeof(*out));
    if (s == NULL)
        return;
    out->rounds = atomic_load(&m->rounds);
    out->failures = rw_redis_failures(m->redis);
    out->keys_synced = atomic_load(&m->keys_synced);
    out->last_round_us = atomic_load(&m->last_round_us);
    out->up = rw_redis_up(m->redis);
}
