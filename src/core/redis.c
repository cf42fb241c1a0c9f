/* redis.c - a small blocking Redis client for background threads (see
 * redis.h): URL parsing and one connection with its reconnect state.
 *
 * Connecting: connect timeout 500 ms, then every command gets the owner's
 * timeout. A new connection must answer AUTH (when the URL has a password),
 * SELECT (db != 0) or else PING before it counts as up: a wedged server's
 * listen backlog still completes connects. Name resolution (getaddrinfo
 * inside hiredis) is not bounded by the timeouts.
 *
 * Failure: a failed connect, or the owner's rw_redis_fail, marks the client
 * down (one warning per transition, debug lines while it stays down), frees
 * the context and schedules the next connect after the backoff (100 ms
 * doubling to 5 s; rw_redis_reset_backoff after a good exchange).
 *
 * Locking: mu guards interrupted and io_fd, the one thing another thread
 * touches (rw_redis_interrupt shuts the socket down); up and failures are
 * atomics; everything else belongs to the owning thread. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "ringway/common.h"
#include "ringway/http.h"
#include "ringway/log.h"
#include "ringway/redis.h"

#define NS_PER_MS 1000000ull
#define CONNECT_TIMEOUT_MS 500u
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u

struct rw_redis {
    rw_redis_url url;
    uint32_t cmd_timeout_ms;
    char *up_again_note;
    char tag[48]; /* "redis" or "redis (who)": how its log lines start */

    pthread_mutex_t mu; /* interrupted, io_fd */
    bool interrupted;
    int io_fd; /* the connected socket or -1 */

    /* owned by the thread */
    redisContext *ctx;
    uint64_t epoch;
    uint32_t backoff_ms;
    uint64_t next_connect_ns;
    bool ever_up;
    bool down_logged;

    atomic_bool up;
    atomic_uint_fast64_t failures;
};

/* ------------------------------------------------------------------------ */
/* URL parsing */

/* Percent-decodes src[0..n) into dst (size cap); 0 or -1 with a reason. */
static int pct_decode(const char *src, size_t n, char *dst, size_t cap, const char *what, char *err,
                      size_t errlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= n) {
                snprintf(err, errlen, "redis url: truncated %%-escape in the %s", what);
                return -1;
            }
            int h = rw_hexval(src[i + 1]), l = rw_hexval(src[i + 2]);
            if (h < 0 || l < 0) {
                snprintf(err, errlen, "redis url: bad %%-escape in the %s", what);
                return -1;
            }
            c = (char)(h * 16 + l);
            if (c == '\0') {
                snprintf(err, errlen, "redis url: %%00 in the %s", what);
                return -1;
            }
            i += 2;
        }
        if (o + 1 >= cap) {
            snprintf(err, errlen, "redis url: %s too long (at most %zu bytes)", what, cap - 1);
            return -1;
        }
        dst[o++] = c;
    }
    dst[o] = '\0';
    return 0;
}

int rw_redis_url_parse(const char *url, rw_redis_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (url == NULL || *url == '\0') {
        snprintf(err, errlen, "redis url: empty");
        return -1;
    }
    if (strncasecmp(url, "rediss://", 9) == 0) {
        snprintf(err, errlen, "redis url '%s': rediss:// (TLS) is not supported, use redis://", url);
        return -1;
    }
    if (strncasecmp(url, "unix://", 7) == 0) {
        snprintf(err, errlen, "redis url '%s': unix sockets are not supported, use redis://host:port", url);
        return -1;
    }
    if (strncasecmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "redis url '%s': must start with redis://", url);
        return -1;
    }
    const char after_auth = url[8 + strcspn(url + 8, "/?#")];
    if (after_auth == '?' || after_auth == '#') {
        snprintf(err, errlen, "redis url '%s': query strings and fragments are not supported", url);
        return -1;
    }
    rw_authority a;
    char why[128];
    if (rw_authority_parse(url + 8, 6379, &a, why, sizeof(why)) != 0) {
        /* the URL is left out when it would crowd out the reason */
        if ((size_t)snprintf(err, errlen, "redis url '%s': %s", url, why) >= errlen)
            snprintf(err, errlen, "redis url: %s", why);
        return -1;
    }
    /* userinfo: [user:]password (rw_authority_parse split it at the last
     * '@': a raw '@' in a password is tolerated, '%40' is the proper
     * spelling). */
    if (a.userinfo != NULL) {
        const char *ui = a.userinfo;
        size_t n = a.userinfo_len;
        const char *colon = memchr(ui, ':', n);
        if (colon != NULL) {
            if (pct_decode(ui, (size_t)(colon - ui), out->user, sizeof(out->user), "user", err, errlen) ||
                pct_decode(colon + 1, n - (size_t)(colon - ui) - 1, out->password, sizeof(out->password),
                           "password", err, errlen))
                return -1;
        } else if (pct_decode(ui, n, out->password, sizeof(out->password), "password", err, errlen)) {
            return -1;
        }
    }
    _Static_assert(sizeof(out->host) == sizeof(a.host), "rw_redis_url.host holds rw_authority.host");
    memcpy(out->host, a.host, sizeof(out->host));
    out->port = a.port;

    /* /db */
    const char *path = a.end;
    if (*path == '/' && path[1] != '\0') {
        long db = 0;
        const char *p = path + 1;
        for (; *p; p++) {
            if (*p < '0' || *p > '9' || db > 65535) {
                snprintf(err, errlen, "redis url '%s': database must be a number in 0..65535", url);
                return -1;
            }
            db = db * 10 + (*p - '0');
        }
        if (db > 65535) {
            snprintf(err, errlen, "redis url '%s': database must be a number in 0..65535", url);
            return -1;
        }
        out->db = (int)db;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Connection */

rw_redis *rw_redis_new(const rw_redis_opts *o)
{
    rw_redis *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->url = *o->url;
    r->cmd_timeout_ms = o->cmd_timeout_ms;
    r->up_again_note = strdup(o->up_again_note != NULL ? o->up_again_note : "");
    snprintf(r->tag, sizeof(r->tag), o->who != NULL ? "redis (%s)" : "redis", o->who);
    if (r->up_again_note == NULL || pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r->up_again_note);
        free(r);
        return NULL;
    }
    r->io_fd = -1;
    r->backoff_ms = BACKOFF_MIN_MS;
    atomic_init(&r->up, false);
    atomic_init(&r->failures, 0);
    return r;
}

static bool interrupted(rw_redis *r)
{
    pthread_mutex_lock(&r->mu);
    bool v = r->interrupted;
    pthread_mutex_unlock(&r->mu);
    return v;
}

static void set_down(rw_redis *r, const char *reason)
{
    atomic_fetch_add(&r->failures, 1);
    atomic_store(&r->up, false);
    if (interrupted(r))
        return;
    if (!r->down_logged) {
        rw_log_warn("%s: down (%s)", r->tag, reason);
        r->down_logged = true;
    } else {
        rw_log_debug("%s: still down (%s)", r->tag, reason);
    }
}

static void drop_ctx(rw_redis *r, redisContext *c)
{
    pthread_mutex_lock(&r->mu);
    r->io_fd = -1;
    pthread_mutex_unlock(&r->mu);
    redisFree(c);
    if (r->ctx == c)
        r->ctx = NULL;
}

/* The next attempt in [backoff / 2, backoff] ("equal jitter"): after a Redis
 * restart, a fleet of nodes does not reconnect in lockstep. */
static void schedule_reconnect(rw_redis *r)
{
    uint64_t now = rw_mono_ns();
    uint64_t half = (uint64_t)r->backoff_ms * NS_PER_MS / 2;
    uint64_t mix = (now ^ (uintptr_t)r) * 0x9E3779B97F4A7C15ull;
    r->next_connect_ns = now + half + (mix >> 20) % (half + 1);
    r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

/* A command on the fresh connection; 0, or -1 with a reason. */
static int setup_cmd(redisContext *c, const char *what, char *reason, size_t rlen, redisReply *rep)
{
    if (rep == NULL) {
        snprintf(reason, rlen, "%s: %s", what, c->errstr[0] ? c->errstr : "no reply");
        return -1;
    }
    int rc = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(reason, rlen, "%s: %s", what, rep->str ? rep->str : "error");
        rc = -1;
    }
    freeReplyObject(rep);
    return rc;
}

int rw_redis_connect(rw_redis *r)
{
    char reason[512];
    if (interrupted(r)) {
        schedule_reconnect(r); /* no busy loop while the owner stops */
        return -1;
    }
    struct timeval ctv = {.tv_sec = 0, .tv_usec = CONNECT_TIMEOUT_MS * 1000};
    struct timeval ctv2 = {.tv_sec = r->cmd_timeout_ms / 1000, .tv_usec = (r->cmd_timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(r->url.host, r->url.port, ctv);
    if (c == NULL) {
        snprintf(reason, sizeof(reason), "connect: out of memory");
        goto fail;
    }
    if (c->err) {
        snprintf(reason, sizeof(reason), "connect to %s port %u: %s", r->url.host, r->url.port, c->errstr);
        goto fail;
    }
    if (redisSetTimeout(c, ctv2) != REDIS_OK) {
        snprintf(reason, sizeof(reason), "setting the timeout: %s", c->errstr);
        goto fail;
    }
    pthread_mutex_lock(&r->mu);
    bool stop = r->interrupted;
    if (!stop)
        r->io_fd = c->fd;
    pthread_mutex_unlock(&r->mu);
    if (stop) {
        redisFree(c);
        return -1;
    }
    if (r->url.password[0] != '\0') {
        redisReply *rep = r->url.user[0] != '\0' ? redisCommand(c, "AUTH %s %s", r->url.user, r->url.password)
                                                 : redisCommand(c, "AUTH %s", r->url.password);
        if (setup_cmd(c, "AUTH", reason, sizeof(reason), rep) != 0)
            goto fail;
    }
    if (r->url.db != 0 &&
        setup_cmd(c, "SELECT", reason, sizeof(reason), redisCommand(c, "SELECT %d", r->url.db)) != 0)
        goto fail;
    /* Up means "Redis answers", not "the kernel accepted": a wedged server's
     * listen backlog still completes connects. */
    if (r->url.password[0] == '\0' && r->url.db == 0 &&
        setup_cmd(c, "PING", reason, sizeof(reason), redisCommand(c, "PING")) != 0)
        goto fail;

    r->ctx = c;
    r->epoch++; /* whatever the owner read on an earlier connection is void */
    atomic_store(&r->up, true);
    if (r->down_logged)
        rw_log_warn("%s: up again%s", r->tag, r->up_again_note);
    else if (!r->ever_up)
        rw_log_info("%s: connected to %s port %u", r->tag, r->url.host, r->url.port);
    r->down_logged = false;
    r->ever_up = true;
    return 0;

fail:
    set_down(r, reason);
    if (c != NULL)
        drop_ctx(r, c);
    schedule_reconnect(r);
    return -1;
}

struct redisContext *rw_redis_context(rw_redis *r)
{
    return r->ctx;
}

void rw_redis_fail(rw_redis *r, const char *reason)
{
    set_down(r, reason);
    if (r->ctx != NULL)
        drop_ctx(r, r->ctx);
    schedule_reconnect(r);
}

void rw_redis_reset_backoff(rw_redis *r)
{
    r->backoff_ms = BACKOFF_MIN_MS;
}

uint64_t rw_redis_next_connect_ns(const rw_redis *r)
{
    return r->next_connect_ns;
}

uint64_t rw_redis_epoch(const rw_redis *r)
{
    return r->epoch;
}

bool rw_redis_up(const rw_redis *r)
{
    return r != NULL && atomic_load(&((rw_redis *)r)->up);
}

uint64_t rw_redis_failures(const rw_redis *r)
{
    return r != NULL ? atomic_load(&((rw_redis *)r)->failures) : 0;
}

void rw_redis_interrupt(rw_redis *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->interrupted = true;
    if (r->io_fd != -1)
        shutdown(r->io_fd, SHUT_RDWR); /* unblocks a command waiting on a wedged server */
    pthread_mutex_unlock(&r->mu);
}

void rw_redis_free(rw_redis *r)
{
    if (r == NULL)
        return;
    if (r->ctx != NULL)
        drop_ctx(r, r->ctx);
    pthread_mutex_destroy(&r->mu);
    free(r->up_again_note);
    free(r);
}
