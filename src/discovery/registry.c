/* registry.c - the Redis registry: where instances register themselves
 * (ringway register, or any Redis client), and the one watcher per node
 * that turns it into instances of the services with discovery.redis.
 *
 * Key layout (docs/operations.md gives it to other languages):
 *   ringway:svc:NAME:instances  sorted set; member "HOST:PORT" or
 *                               "HOST:PORT;weight=N" (HOST an IP literal, v6
 *                               in brackets), score = when the entry expires,
 *                               Unix ms (registration time + TTL; heartbeats
 *                               move it on)
 *   ringway:svc:NAME:version    integer, INCR after every added or removed member
 *   ringway:discovery           pub/sub channel; PUBLISH NAME after a change
 *
 * The watcher never relies on keyspace notifications (off by default,
 * refused by managed Redis): a service's members are read again when its
 * version moves (checked every POLL_MS), when a notification names it
 * (immediately), when its earliest entry expires (so a dead instance whose
 * heartbeat stopped leaves within its TTL plus one poll), and every
 * FULL_MS for safety. Two connections: one subscribed (poll()ed, read only
 * when bytes are there), one for commands. Either going down leaves the
 * last known instances in place; coming back re-subscribes and re-reads
 * everything, so changes made meanwhile arrive. An entry that does not
 * parse is skipped and logged once. */
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "discovery_int.h"
#include "ringway/registry.h"
#include "ringway/common.h"
#include "ringway/jsonesc.h"
#include "ringway/lb.h"
#include "ringway/instset.h"
#include "ringway/log.h"
#include "ringway/redis.h"

#define POLL_MS 500
#define FULL_MS 5000
#define CHANNEL "ringway:discovery"
#define MAX_SVCS 256

typedef struct watched {
    char name[128];
    int64_t version;      /* last seen, -1: never read */
    uint64_t next_expiry; /* Unix ms of the earliest entry, 0: none */
    uint64_t last_full;   /* monotonic ms of the last read */
    bool dirty;
    bool ever_read;
    uint64_t bad_hash; /* of the entries skipped last time: each bad set is logged once */
} watched;

static struct {
    pthread_mutex_t mu;
    pthread_t tid;
    bool running, stop;
    int efd;
    char url[512];
    char pending_names[MAX_SVCS][128];
    int npending;
    bool have_pending;
    bool first_reported;
} R = {.mu = PTHREAD_MUTEX_INITIALIZER, .efd = -1};

int rw_registry_parse_member(const char *s, size_t len, rw_instance_cfg *out, char *addr, size_t addr_cap,
                             char *why, size_t why_cap)
{
    char buf[300];
    if (len == 0 || len >= sizeof(buf)) {
        snprintf(why, why_cap, "entry length %zu is outside 1..%zu", len, sizeof(buf) - 1);
        return -1;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    uint32_t weight = 1;
    char *semi = strchr(buf, ';');
    if (semi != NULL) {
        *semi = '\0';
        unsigned w = 0;
        int used = 0;
        if (sscanf(semi + 1, "weight=%4u%n", &w, &used) != 1 || semi[1 + used] != '\0' || w < 1 || w > 1000) {
            snprintf(why, why_cap, "'%s': expected ;weight=N with N in 1..1000", semi + 1);
            return -1;
        }
        weight = w;
    }
    rw_sockaddr sa;
    memset(&sa, 0, sizeof(sa));
    char *colon = strrchr(buf, ':');
    if (colon == NULL || colon == buf) {
        snprintf(why, why_cap, "'%s' is not IP:PORT", buf);
        return -1;
    }
    *colon = '\0';
    char *host = buf;
    size_t hl = strlen(host);
    bool v6 = hl >= 2 && host[0] == '[' && host[hl - 1] == ']';
    if (v6) {
        host[hl - 1] = '\0';
        host++;
    }
    unsigned port = 0;
    int used = 0;
    if (sscanf(colon + 1, "%5u%n", &port, &used) != 1 || colon[1 + used] != '\0' || port < 1 ||
        port > 65535) {
        snprintf(why, why_cap, "'%s' is not a port", colon + 1);
        return -1;
    }
    if (!v6 && inet_pton(AF_INET, host, &((struct sockaddr_in *)&sa.ss)->sin_addr) == 1) {
        struct sockaddr_in *a = (struct sockaddr_in *)&sa.ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        sa.len = sizeof(*a);
        snprintf(addr, addr_cap, "%s:%u", host, port);
    } else if (v6 && inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&sa.ss)->sin6_addr) == 1) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&sa.ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        sa.len = sizeof(*a);
        snprintf(addr, addr_cap, "[%s]:%u", host, port);
    } else {
        snprintf(why, why_cap, "'%s' is not an IP address (register IP:PORT or [IPv6]:PORT)", host);
        return -1;
    }
    snprintf(sa.text, sizeof(sa.text), "%s", addr);
    memset(out, 0, sizeof(*out));
    out->address = addr;
    out->host = NULL;
    out->authority = addr;
    out->port = (uint16_t)port;
    out->weight = weight;
    out->addr = sa;
    out->source = RW_SRC_REDIS;
    return 0;
}

/* Reads one service's live members and publishes them. 0, or -1 when the
 * connection failed (reason set). */
static int read_members(redisContext *c, watched *w, char *reason, size_t cap)
{
    uint64_t now = rw_wall_ms();
    redisReply *r = redisCommand(c, "ZRANGEBYSCORE ringway:svc:%s:instances %llu +inf WITHSCORES", w->name,
                                 (unsigned long long)now);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        snprintf(reason, cap, "%s", r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
        if (r != NULL)
            freeReplyObject(r);
        return -1;
    }
    size_t n = r->elements / 2;
    rw_instance_cfg *v = calloc(n ? n : 1, sizeof(*v));
    char(*addrs)[80] = calloc(n ? n : 1, sizeof(*addrs));
    uint32_t k = 0;
    uint64_t earliest = 0, bad = 0;
    for (size_t i = 0; v != NULL && addrs != NULL && i < n; i++) {
        const redisReply *m = r->element[2 * i], *sc = r->element[2 * i + 1];
        if (m->type != REDIS_REPLY_STRING)
            continue;
        char why[200];
        if (rw_registry_parse_member(m->str, m->len, &v[k], addrs[k], sizeof(addrs[k]), why, sizeof(why)) !=
            0) {
            bad ^= rw_hash64(m->str, m->len);
            continue;
        }
        uint64_t exp = sc->type == REDIS_REPLY_STRING ? strtoull(sc->str, NULL, 10) : 0;
        if (earliest == 0 || exp < earliest)
            earliest = exp;
        k++;
    }
    if (bad != w->bad_hash) { /* a new set of broken entries: say which, once */
        for (size_t i = 0; i < n; i++) {
            const redisReply *m = r->element[2 * i];
            rw_instance_cfg tmp;
            char a[80], why[200], shown[128], swhy[256];
            if (m->type == REDIS_REPLY_STRING &&
                rw_registry_parse_member(m->str, m->len, &tmp, a, sizeof(a), why, sizeof(why)) != 0) {
                /* whoever writes to Redis must not write lines into our log */
                size_t el = rw_json_escape(shown, sizeof(shown) - 1, m->str, m->len, NULL);
                shown[el] = '\0';
                el = rw_json_escape(swhy, sizeof(swhy) - 1, why, strlen(why), NULL);
                swhy[el] = '\0';
                rw_log_warn("registry: service %s: skipping entry '%s': %s", w->name, shown, swhy);
            }
        }
        w->bad_hash = bad;
    }
    freeReplyObject(r);
    if (v == NULL || addrs == NULL) {
        free(v);
        free(addrs);
        snprintf(reason, cap, "out of memory");
        return 0; /* not the connection's fault */
    }
    rw_instances_sort(v, k);
    rw__disc_publish(RW_DISC_REDIS, w->name, v, k, true, NULL);
    free(v);
    free(addrs);
    w->next_expiry = earliest;
    w->last_full = rw_mono_ms();
    w->ever_read = true;
    w->dirty = false;
    /* Entries long dead are garbage: any node may sweep them. */
    redisReply *z = redisCommand(c, "ZREMRANGEBYSCORE ringway:svc:%s:instances -inf %llu", w->name,
                                 (unsigned long long)(now > 600000 ? now - 600000 : 0));
    if (z != NULL)
        freeReplyObject(z);
    return 0;
}

/* One round on the command connection: versions, then the members of the
 * services that need it. 0 or -1 (connection failed). */
static int round_trip(redisContext *c, watched *ws, int n, bool all, char *reason, size_t cap)
{
    for (int i = 0; i < n; i++)
        if (redisAppendCommand(c, "GET ringway:svc:%s:version", ws[i].name) != REDIS_OK)
            goto io;
    uint64_t now = rw_mono_ms(), wall = rw_wall_ms();
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL)
            goto io;
        int64_t v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
        freeReplyObject(r);
        watched *w = &ws[i];
        if (all || v != w->version || !w->ever_read || (w->next_expiry != 0 && wall >= w->next_expiry) ||
            now >= w->last_full + FULL_MS)
            w->dirty = true;
        w->version = v;
    }
    for (int i = 0; i < n; i++)
        if (ws[i].dirty && read_members(c, &ws[i], reason, cap) != 0)
            return -1;
    return 0;
io:
    snprintf(reason, cap, "%s", c->errstr[0] ? c->errstr : "no reply");
    return -1;
}

static void *registry_main(void *arg)
{
    (void)arg;
    rw_log_set_thread(-1);
    watched ws[MAX_SVCS];
    int n = 0;
    rw_redis *cmd = NULL, *sub = NULL;
    bool subscribed = false, resync = true;
    char url[512] = "";
    for (;;) {
        pthread_mutex_lock(&R.mu);
        bool stop = R.stop, have = R.have_pending;
        if (have) {
            /* keep what we know of services still followed */
            watched next[MAX_SVCS];
            int m = R.npending;
            for (int i = 0; i < m; i++) {
                memset(&next[i], 0, sizeof(next[i]));
                snprintf(next[i].name, sizeof(next[i].name), "%s", R.pending_names[i]);
                next[i].version = -1;
                for (int j = 0; j < n; j++)
                    if (strcmp(ws[j].name, next[i].name) == 0)
                        next[i] = ws[j];
                next[i].dirty = true;
            }
            memcpy(ws, next, sizeof(watched) * (size_t)m);
            n = m;
            bool new_url = strcmp(url, R.url) != 0;
            snprintf(url, sizeof(url), "%s", R.url);
            R.have_pending = false;
            pthread_mutex_unlock(&R.mu);
            if (new_url) {
                rw_redis_free(cmd);
                rw_redis_free(sub);
                cmd = sub = NULL;
                subscribed = false;
                rw_redis_url u;
                char err[256];
                if (rw_redis_url_parse(url, &u, err, sizeof(err)) == 0) {
                    cmd =
                        rw_redis_new(&(rw_redis_opts){.url = &u, .cmd_timeout_ms = 1000, .who = "registry"});
                    sub = rw_redis_new(
                        &(rw_redis_opts){.url = &u, .cmd_timeout_ms = 1000, .who = "registry subscription"});
                } else {
                    rw_log_error("registry: %s", err);
                }
            }
            resync = true;
        } else {
            pthread_mutex_unlock(&R.mu);
        }
        if (stop)
            break;
        uint64_t now_ns = (uint64_t)rw_mono_ms() * 1000000u;
        char reason[256];
        if (sub != NULL && rw_redis_context(sub) == NULL && now_ns >= rw_redis_next_connect_ns(sub)) {
            subscribed = false;
            if (rw_redis_connect(sub) == 0) {
                redisReply *r = redisCommand(rw_redis_context(sub), "SUBSCRIBE " CHANNEL);
                if (r == NULL || r->type == REDIS_REPLY_ERROR) {
                    rw_redis_fail(sub, r != NULL ? r->str : "SUBSCRIBE failed");
                } else {
                    subscribed = true;
                    resync = true; /* whatever happened while we were not listening */
                }
                if (r != NULL)
                    freeReplyObject(r);
            }
        }
        if (cmd != NULL && rw_redis_context(cmd) == NULL && now_ns >= rw_redis_next_connect_ns(cmd) &&
            rw_redis_connect(cmd) == 0)
            resync = true;
        bool tried = false;
        if (cmd != NULL && rw_redis_context(cmd) != NULL && n > 0) {
            tried = true;
            if (round_trip(rw_redis_context(cmd), ws, n, resync, reason, sizeof(reason)) != 0) {
                rw_redis_fail(cmd, reason);
                for (int i = 0; i < n; i++)
                    if (!ws[i].ever_read)
                        rw__disc_publish(RW_DISC_REDIS, ws[i].name, NULL, 0, false, "Redis is down");
            } else {
                rw_redis_reset_backoff(cmd);
                resync = false;
            }
        } else if (cmd != NULL && n > 0) {
            tried = rw_redis_failures(cmd) > 0;
            for (int i = 0; i < n && tried; i++)
                if (!ws[i].ever_read)
                    rw__disc_publish(RW_DISC_REDIS, ws[i].name, NULL, 0, false, "Redis is down");
        }
        if (tried || n == 0 || cmd == NULL) {
            pthread_mutex_lock(&R.mu);
            bool report = !R.first_reported;
            R.first_reported = true;
            pthread_mutex_unlock(&R.mu);
            if (report)
                rw__disc_first_round_done(RW_DISC_REDIS);
        }
        /* Wait for a notification, the next poll, a config or the stop. */
        struct pollfd pfd[2] = {{.fd = R.efd, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
        if (subscribed && rw_redis_context(sub) != NULL)
            pfd[1].fd = rw_redis_context(sub)->fd;
        int wait = POLL_MS;
        if (cmd != NULL && rw_redis_context(cmd) == NULL) {
            uint64_t at = rw_redis_next_connect_ns(cmd), nowns = (uint64_t)rw_mono_ms() * 1000000u;
            wait = at > nowns ? (int)RW_MIN((at - nowns) / 1000000u + 1, (uint64_t)POLL_MS) : 0;
        }
        int pr = poll(pfd, 2, wait);
        if (pr > 0 && (pfd[0].revents & POLLIN)) {
            uint64_t v;
            ssize_t rd = read(R.efd, &v, sizeof(v));
            (void)rd;
        }
        if (pr > 0 && pfd[1].fd >= 0 && pfd[1].revents != 0) {
            redisContext *c = rw_redis_context(sub);
            redisReply *r = NULL;
            int got = redisGetReply(c, (void **)&r); /* bytes are there: does not wait long */
            while (got == REDIS_OK && r != NULL) {
                if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                    r->element[2]->type == REDIS_REPLY_STRING)
                    for (int i = 0; i < n; i++)
                        if (strlen(ws[i].name) == r->element[2]->len &&
                            memcmp(ws[i].name, r->element[2]->str, r->element[2]->len) == 0)
                            ws[i].dirty = true;
                freeReplyObject(r);
                r = NULL;
                void *more = NULL;
                if (redisGetReplyFromReader(c, &more) != REDIS_OK)
                    break;
                r = more;
            }
            if (got != REDIS_OK) {
                rw_redis_fail(sub, c->errstr[0] ? c->errstr : "connection closed");
                subscribed = false;
            }
            /* A notification: the members of the named services now. */
            if (cmd != NULL && rw_redis_context(cmd) != NULL) {
                bool any = false;
                for (int i = 0; i < n; i++)
                    any |= ws[i].dirty;
                if (any) {
                    for (int i = 0; i < n; i++)
                        if (ws[i].dirty &&
                            read_members(rw_redis_context(cmd), &ws[i], reason, sizeof(reason)) != 0) {
                            rw_redis_fail(cmd, reason);
                            break;
                        }
                }
            }
        }
    }
    rw_redis_free(cmd);
    rw_redis_free(sub);
    return NULL;
}

static void wake(void)
{
    uint64_t one = 1;
    ssize_t w = write(R.efd, &one, sizeof(one));
    (void)w;
}

void rw__registry_apply(const rw_config *cfg)
{
    int n = 0;
    char names[MAX_SVCS][128];
    for (size_t i = 0; i < cfg->nservices && n < MAX_SVCS; i++)
        if (cfg->services[i].discovery.redis)
            snprintf(names[n++], sizeof(names[0]), "%s", cfg->services[i].name);
    if (n == 0 && !R.running)
        return;
    if (!R.running) {
        R.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (R.efd < 0) {
            rw_log_error("registry: eventfd: %s", strerror(errno));
            return;
        }
        R.stop = false;
        int rc = pthread_create(&R.tid, NULL, registry_main, NULL);
        if (rc != 0) {
            rw_log_error("registry: cannot start its thread: %s", strerror(rc));
            close(R.efd);
            R.efd = -1;
            return;
        }
        R.running = true;
    }
    pthread_mutex_lock(&R.mu);
    memcpy(R.pending_names, names, sizeof(names[0]) * (size_t)n);
    R.npending = n;
    snprintf(R.url, sizeof(R.url), "%s", cfg->redis.url != NULL ? cfg->redis.url : "");
    R.have_pending = true;
    R.first_reported = false;
    pthread_mutex_unlock(&R.mu);
    wake();
}

void rw__registry_stop(void)
{
    if (!R.running)
        return;
    pthread_mutex_lock(&R.mu);
    R.stop = true;
    pthread_mutex_unlock(&R.mu);
    wake();
    pthread_join(R.tid, NULL);
    R.running = false;
    close(R.efd);
    R.efd = -1;
}
