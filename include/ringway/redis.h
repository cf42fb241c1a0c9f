/* redis.h - a small blocking Redis client for background threads (never a
 * worker): redis:// URL parsing, connecting with timeouts, AUTH / SELECT /
 * PING on every new connection, reconnects with jittered backoff (100 ms
 * doubling to 5 s, each wait between half and all of it) and one log line per up/down transition. The owner
 * sends its own commands on rw_redis_context() with hiredis and reports a broken connection with
 * rw_redis_fail. Used by the rate-limit sync (rlsync.h); hiredis types stay out of this header. */
#ifndef RINGWAY_REDIS_H
#define RINGWAY_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redisContext;

/* The parts of redis://[user:password@]host:port/db (also rediss:// refused). */
typedef struct rw_redis_url {
    char host[256];
    uint16_t port;      /* default 6379 */
    char user[128];     /* "" when absent */
    char password[256]; /* "" when absent */
    int db;             /* default 0 */
} rw_redis_url;

/* Parses a Redis URL; 0, or -1 with a reason in err. */
int rw_redis_url_parse(const char *url, rw_redis_url *out, char *err, size_t errlen);

/* A connection and its reconnect state. Owned by the thread that created it,
 * which alone calls the functions below except those marked "any thread". */
typedef struct rw_redis rw_redis;

typedef struct rw_redis_opts {
    const rw_redis_url *url;   /* copied */
    uint32_t cmd_timeout_ms;   /* every command's timeout; connects take at most 500 ms */
    const char *up_again_note; /* appended to the "redis: up again" log line, e.g. ", resyncing" */
    const char *who;           /* NULL: log lines start "redis:"; else "redis (who):" */
} rw_redis_opts;

/* A disconnected client (nothing is sent before rw_redis_connect); NULL on
 * ENOMEM. The caller owns it and frees it with rw_redis_free. */
rw_redis *rw_redis_new(const rw_redis_opts *o);
/* Closes the connection and frees r; NULL allowed. */
void rw_redis_free(rw_redis *r);
/* Connects now (AUTH, SELECT, PING: "up" means Redis answered); 0 when up,
 * -1 when it failed (logged, counted, next attempt at rw_redis_next_connect_ns)
 * or after rw_redis_interrupt. Call only while rw_redis_context() is NULL. */
int rw_redis_connect(rw_redis *r);
/* The live connection, or NULL while down; owned by r, valid until the next
 * rw_redis_fail or rw_redis_free. */
struct redisContext *rw_redis_context(rw_redis *r);
/* The owner found the connection unusable (I/O error, timeout, error reply):
 * marks r down with reason (logged once per transition), closes the
 * connection and schedules a reconnect with backoff. */
void rw_redis_fail(rw_redis *r, const char *reason);
/* The owner's exchange succeeded: the next failure's backoff starts at 100 ms. */
void rw_redis_reset_backoff(rw_redis *r);
/* Monotonic ns before which the next connect should not be tried. */
uint64_t rw_redis_next_connect_ns(const rw_redis *r);
/* How many connections succeeded so far; a new value means a new connection
 * (state read on an earlier one, such as counters, may be stale). */
uint64_t rw_redis_epoch(const rw_redis *r);
/* True while connected and answering (any thread; lock-free). */
bool rw_redis_up(const rw_redis *r);
/* Failed connects and reported failures so far (any thread). */
uint64_t rw_redis_failures(const rw_redis *r);
/* Any thread: refuses further connects and shuts the socket down so that a
 * command blocked on a wedged server returns at once (not after its timeout);
 * failures after it are not logged. The owner still calls rw_redis_free. */
void rw_redis_interrupt(rw_redis *r);

#endif
