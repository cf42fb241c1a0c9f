/* registry_cli.c - "ringway register" and "ringway deregister": a service
 * (or its pod's sidecar, or a script) puts itself in the Redis registry
 * (registry.c has the key layout) and keeps its entry alive.
 *
 *   ringway register --redis URL --service NAME --address IP:PORT [--weight N] [--ttl 10s]
 *   ringway deregister --redis URL --service NAME --address IP:PORT
 *
 * register writes the entry, then renews it every third of the TTL until
 * SIGTERM or SIGINT, when it removes it and exits 0. While Redis is down it
 * keeps trying (with backoff) and the entry expires on its own after the
 * TTL; a kill -9 leaves the same: the TTL is the safety net. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "ringway/common.h"
#include "ringway/config.h"
#include "ringway/log.h"
#include "ringway/redis.h"
#include "ringway/registry.h"

typedef struct reg_opts {
    const char *url, *service, *address;
    uint32_t weight, ttl_ms;
    char addr[80];   /* canonical */
    char member[96]; /* what goes in the sorted set */
} reg_opts;

static int usage(const char *cmd, const char *why)
{
    if (why != NULL)
        fprintf(stderr, "ringway %s: %s\n", cmd, why);
    fprintf(stderr,
            "usage: ringway register --redis URL --service NAME --address IP:PORT [--weight N] [--ttl 10s]\n"
            "       ringway deregister --redis URL --service NAME --address IP:PORT\n");
    return 2;
}

/* Removes every member for o->addr except keep (NULL: all); *removed gets
 * how many went. 0, or -1 (connection failed, reason set). */
static int remove_others(redisContext *c, const reg_opts *o, const char *keep, int *removed, char *reason,
                         size_t cap)
{
    *removed = 0;
    redisReply *r = redisCommand(c, "ZRANGE ringway:svc:%s:instances 0 -1", o->service);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        snprintf(reason, cap, "%s", r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
        if (r != NULL)
            freeReplyObject(r);
        return -1;
    }
    size_t alen = strlen(o->addr);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *m = r->element[i];
        if (m->type != REDIS_REPLY_STRING || m->len < alen || memcmp(m->str, o->addr, alen) != 0 ||
            (m->len > alen && m->str[alen] != ';'))
            continue;
        if (keep != NULL && strlen(keep) == m->len && memcmp(keep, m->str, m->len) == 0)
            continue;
        redisReply *z = redisCommand(c, "ZREM ringway:svc:%s:instances %b", o->service, m->str, m->len);
        if (z == NULL) {
            freeReplyObject(r);
            snprintf(reason, cap, "%s", c->errstr);
            return -1;
        }
        *removed += z->type == REDIS_REPLY_INTEGER ? (int)z->integer : 0;
        freeReplyObject(z);
    }
    freeReplyObject(r);
    return 0;
}

/* Tells the watchers: a new version and a notification. */
static int announce(redisContext *c, const char *service, char *reason, size_t cap)
{
    redisReply *a = redisCommand(c, "INCR ringway:svc:%s:version", service);
    redisReply *b = a != NULL ? redisCommand(c, "PUBLISH ringway:discovery %s", service) : NULL;
    int rc = a != NULL && b != NULL && a->type != REDIS_REPLY_ERROR ? 0 : -1;
    if (rc != 0)
        snprintf(reason, cap, "%s", a != NULL && a->type == REDIS_REPLY_ERROR ? a->str : c->errstr);
    if (a != NULL)
        freeReplyObject(a);
    if (b != NULL)
        freeReplyObject(b);
    return rc;
}

/* Writes (or renews) the entry; *added when it was not there. */
static int put_entry(redisContext *c, const reg_opts *o, bool *added, char *reason, size_t cap)
{
    redisReply *r = redisCommand(c, "ZADD ringway:svc:%s:instances %llu %s", o->service,
                                 (unsigned long long)(rw_wall_ms() + o->ttl_ms), o->member);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        snprintf(reason, cap, "%s", r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
        if (r != NULL)
            freeReplyObject(r);
        return -1;
    }
    *added = r->integer > 0;
    freeReplyObject(r);
    return 0;
}

static int deregister(rw_redis *rd, const reg_opts *o)
{
    char reason[256];
    for (int attempt = 0; attempt < 3; attempt++) {
        if (rw_redis_context(rd) == NULL && rw_redis_connect(rd) != 0) {
            usleep(200000);
            continue;
        }
        redisContext *c = rw_redis_context(rd);
        int removed = 0;
        if (remove_others(c, o, NULL, &removed, reason, sizeof(reason)) == 0 &&
            (removed == 0 || announce(c, o->service, reason, sizeof(reason)) == 0)) {
            rw_log_info("deregistered %s from service %s%s", o->addr, o->service,
                        removed ? "" : " (it was not registered)");
            return 0;
        }
        rw_redis_fail(rd, reason);
    }
    rw_log_error(
        "could not deregister %s from service %s: Redis unreachable (the entry expires after its TTL)",
        o->addr, o->service);
    return 1;
}

static int run_register(rw_redis *rd, reg_opts *o)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        rw_log_error("signalfd: %s", strerror(errno));
        return 1;
    }
    bool registered = false;
    uint32_t every = RW_MAX(o->ttl_ms / 3, 100u);
    for (;;) {
        int wait = (int)every;
        char reason[256];
        if (rw_redis_context(rd) == NULL) {
            uint64_t at = rw_redis_next_connect_ns(rd), now = (uint64_t)rw_mono_ms() * 1000000u;
            if (now >= at)
                rw_redis_connect(rd);
            else
                wait = (int)RW_MIN((at - now) / 1000000u + 1, (uint64_t)every);
        }
        if (rw_redis_context(rd) != NULL) {
            redisContext *c = rw_redis_context(rd);
            bool added = false;
            int removed = 0;
            if ((!registered && remove_others(c, o, o->member, &removed, reason, sizeof(reason)) != 0) ||
                put_entry(c, o, &added, reason, sizeof(reason)) != 0 ||
                ((added || removed) && announce(c, o->service, reason, sizeof(reason)) != 0)) {
                rw_redis_fail(rd, reason);
                wait = 100;
            } else {
                rw_redis_reset_backoff(rd);
                if (!registered || added)
                    rw_log_info("registered %s in service %s (ttl %ums, renewed every %ums)", o->addr,
                                o->service, o->ttl_ms, every);
                registered = true;
            }
        }
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        if (poll(&p, 1, wait) > 0) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                rw_log_info("%s: deregistering", strsignal((int)si.ssi_signo));
                close(sfd);
                return deregister(rd, o);
            }
        }
    }
}

int rw_registry_main(int argc, char **argv)
{
    const char *cmd = argv[0];
    bool reg = strcmp(cmd, "register") == 0;
    reg_opts o = {.weight = 1, .ttl_ms = 10000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return usage(cmd, "missing value after an option");
        if (!strcmp(a, "--redis"))
            o.url = v;
        else if (!strcmp(a, "--service"))
            o.service = v;
        else if (!strcmp(a, "--address"))
            o.address = v;
        else if (reg && !strcmp(a, "--weight")) {
            char *end;
            unsigned long w = strtoul(v, &end, 10);
            if (*end != '\0' || w < 1 || w > 1000)
                return usage(cmd, "--weight must be 1..1000");
            o.weight = (uint32_t)w;
        } else if (reg && !strcmp(a, "--ttl")) {
            uint64_t ms;
            if (rw_parse_duration_ms(v, &ms) != 0 || ms < 300 || ms > 86400000)
                return usage(cmd, "--ttl must be a duration from 300ms to 24h (e.g. 10s)");
            o.ttl_ms = (uint32_t)ms;
        } else {
            return usage(cmd, "unknown option");
        }
        i++;
    }
    if (o.url == NULL || o.service == NULL || o.address == NULL)
        return usage(cmd, "--redis, --service and --address are required");
    for (const char *p = o.service; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.') ||
            p - o.service > 100)
            return usage(cmd, "--service must be a service name (letters, digits, - _ .)");
    if (*o.service == '\0')
        return usage(cmd, "--service is empty");
    rw_instance_cfg in;
    char why[200];
    if (rw_registry_parse_member(o.address, strlen(o.address), &in, o.addr, sizeof(o.addr), why,
                                 sizeof(why)) != 0 ||
        strchr(o.address, ';') != NULL)
        return usage(cmd, strchr(o.address, ';') != NULL ? "--address: IP:PORT only (use --weight)" : why);
    if (o.weight == 1)
        snprintf(o.member, sizeof(o.member), "%s", o.addr);
    else
        snprintf(o.member, sizeof(o.member), "%s;weight=%u", o.addr, o.weight);
    rw_redis_url url;
    char err[256];
    if (rw_redis_url_parse(o.url, &url, err, sizeof(err)) != 0)
        return usage(cmd, err);
    rw_redis *rd = rw_redis_new(&(rw_redis_opts){.url = &url, .cmd_timeout_ms = 2000});
    if (rd == NULL) {
        fprintf(stderr, "ringway %s: out of memory\n", cmd);
        return 1;
    }
    int rc = reg ? run_register(rd, &o) : deregister(rd, &o);
    rw_redis_free(rd);
    return rc;
}
