/* dns.c - the DNS discovery source: one thread, c-ares, every service with
 * discovery.dns.
 *
 * Each target (service, name, port, resolver) has its own c-ares channel
 * (so a test or an operator can point one service at its own DNS server)
 * and is asked for A and AAAA records every interval, sooner when the
 * records' TTL ends first (never more often than twice a second). Every
 * address becomes an instance ("ip:port", Host "name:port"), sorted so that
 * an unchanged record set compares equal. A failed lookup keeps the last
 * good set and is retried within a second until the name first resolves.
 * The thread polls the channels' sockets and an eventfd that brings a new
 * config or the stop request. */
#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "discovery_int.h"
#include "ringway/common.h"
#include "ringway/instset.h"
#include "ringway/log.h"

#define MAX_FDS 256
#define MIN_REFRESH_MS 500
#define UNRESOLVED_RETRY_MS 1000

typedef struct target {
    char *service, *name;
    uint16_t port;
    uint32_t weight, interval_ms;
    bool has_resolver;
    char resolver[80];
    ares_channel ch;
    bool inflight, tried, ever_ok;
    int last_status; /* ARES_* of the last lookup, for logging changes */
    uint32_t last_n;
    uint64_t due;
    struct target *next;
} target;

static struct {
    pthread_mutex_t mu;
    pthread_t tid;
    bool running;
    int efd;
    target *pending; /* a new target list from rw__dns_apply, not yet taken */
    bool have_pending, stop;
    target *targets; /* the thread's */
    bool first_reported;
} D = {.mu = PTHREAD_MUTEX_INITIALIZER, .efd = -1};

static void target_free(target *t)
{
    if (t == NULL)
        return;
    if (t->ch != NULL)
        ares_destroy(t->ch); /* its pending query's callback sees ARES_EDESTRUCTION */
    free(t->service);
    free(t->name);
    free(t);
}

static bool same_target(const target *a, const target *b)
{
    return strcmp(a->service, b->service) == 0 && strcmp(a->name, b->name) == 0 && a->port == b->port &&
           a->weight == b->weight && a->interval_ms == b->interval_ms && a->has_resolver == b->has_resolver &&
           strcmp(a->resolver, b->resolver) == 0;
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    target *t = arg;
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        if (res != NULL)
            ares_freeaddrinfo(res);
        return; /* the target is going away */
    }
    t->inflight = false;
    t->tried = true;
    uint64_t now = rw_mono_ms();
    if (status != ARES_SUCCESS || res == NULL) {
        char why[160];
        snprintf(why, sizeof(why), "%s", ares_strerror(status));
        if (status != t->last_status)
            rw_log_warn("service %s: DNS name %s does not resolve: %s%s", t->service, t->name, why,
                        t->ever_ok ? " (keeping the last known addresses)" : "");
        t->last_status = status;
        rw__disc_publish(RW_DISC_DNS, t->service, NULL, 0, false, why);
        t->due = now + (t->ever_ok ? t->interval_ms : RW_MIN(t->interval_ms, UNRESOLVED_RETRY_MS));
        if (res != NULL)
            ares_freeaddrinfo(res);
        return;
    }
    uint32_t count = 0;
    for (struct ares_addrinfo_node *nd = res->nodes; nd != NULL; nd = nd->ai_next)
        count++;
    rw_instance_cfg *v = calloc(count ? count : 1, sizeof(*v));
    char *strings = calloc(count ? count : 1, 2 * 64 + 300);
    uint32_t n = 0;
    int64_t ttl = -1;
    char authority[300];
    snprintf(authority, sizeof(authority), "%s:%u", t->name, t->port);
    for (struct ares_addrinfo_node *nd = res->nodes; v != NULL && strings != NULL && nd != NULL;
         nd = nd->ai_next) {
        if ((nd->ai_family != AF_INET && nd->ai_family != AF_INET6) || nd->ai_addrlen > sizeof(v[n].addr.ss))
            continue;
        char ip[INET6_ADDRSTRLEN] = "";
        const void *a = nd->ai_family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)nd->ai_addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)nd->ai_addr)->sin6_addr;
        inet_ntop(nd->ai_family, a, ip, sizeof(ip));
        char *addr = strings + (size_t)n * (2 * 64 + 300);
        snprintf(addr, 64 + 8, nd->ai_family == AF_INET ? "%s:%u" : "[%s]:%u", ip, t->port);
        bool dup = false;
        for (uint32_t k = 0; k < n && !dup; k++)
            dup = strcmp(v[k].address, addr) == 0;
        if (dup)
            continue;
        rw_instance_cfg *in = &v[n++];
        in->address = addr;
        in->host = t->name;
        in->authority = authority;
        in->port = t->port;
        in->weight = t->weight;
        in->source = RW_SRC_DNS;
        memcpy(&in->addr.ss, nd->ai_addr, nd->ai_addrlen);
        in->addr.len = (socklen_t)nd->ai_addrlen;
        if (nd->ai_family == AF_INET)
            ((struct sockaddr_in *)&in->addr.ss)->sin_port = htons(t->port);
        else
            ((struct sockaddr_in6 *)&in->addr.ss)->sin6_port = htons(t->port);
        snprintf(in->addr.text, sizeof(in->addr.text), "%s", addr);
        if (ttl < 0 || nd->ai_ttl < ttl)
            ttl = nd->ai_ttl;
    }
    ares_freeaddrinfo(res);
    if (v == NULL || strings == NULL) {
        rw_log_error("service %s: out of memory reading DNS answers", t->service);
        free(v);
        free(strings);
        t->due = now + UNRESOLVED_RETRY_MS;
        return;
    }
    rw_instances_sort(v, n);
    if (t->last_status != ARES_SUCCESS || n != t->last_n || !t->ever_ok)
        rw_log_info("service %s: DNS name %s:%u has %u address%s", t->service, t->name, t->port, n,
                    n == 1 ? "" : "es");
    t->last_status = ARES_SUCCESS;
    t->last_n = n;
    t->ever_ok = true;
    rw__disc_publish(RW_DISC_DNS, t->service, v, n, true, NULL);
    free(v);
    free(strings);
    uint64_t next = t->interval_ms;
    if (ttl >= 0 && (uint64_t)ttl * 1000 < next)
        next = (uint64_t)ttl * 1000;
    t->due = now + RW_MAX(next, (uint64_t)MIN_REFRESH_MS);
}

static int target_open(target *t)
{
    struct ares_options o;
    memset(&o, 0, sizeof(o));
    o.timeout = 1000; /* ms, with ARES_OPT_TIMEOUTMS */
    o.tries = 2;
    int rc = ares_init_options(&t->ch, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        t->ch = NULL;
        rw_log_error("service %s: cannot set up DNS lookups: %s", t->service, ares_strerror(rc));
        return -1;
    }
    if (t->has_resolver && (rc = ares_set_servers_ports_csv(t->ch, t->resolver)) != ARES_SUCCESS) {
        rw_log_error("service %s: cannot use resolver %s: %s", t->service, t->resolver, ares_strerror(rc));
        ares_destroy(t->ch);
        t->ch = NULL;
        return -1;
    }
    return 0;
}

/* Takes a new target list: keeps the state of targets that did not change. */
static void take_pending(void)
{
    pthread_mutex_lock(&D.mu);
    target *list = D.pending;
    bool have = D.have_pending;
    D.pending = NULL;
    D.have_pending = false;
    pthread_mutex_unlock(&D.mu);
    if (!have)
        return;
    target *old = D.targets, *keep = NULL;
    for (target **pp = &list; *pp != NULL; pp = &(*pp)->next) {
        target *nt = *pp;
        for (target **op = &old; *op != NULL; op = &(*op)->next) {
            if (same_target(*op, nt)) {
                target *ot = *op;
                *op = ot->next; /* the old one (with its channel and state) replaces nt */
                ot->next = nt->next;
                *pp = ot;
                target_free(nt);
                break;
            }
        }
    }
    (void)keep;
    while (old != NULL) {
        target *t = old;
        old = t->next;
        target_free(t);
    }
    for (target *t = list; t != NULL; t = t->next)
        if (t->ch == NULL && target_open(t) != 0)
            t->due = UINT64_MAX; /* logged; the next config may fix it */
    D.targets = list;
    D.first_reported = false;
}

static void *dns_main(void *arg)
{
    (void)arg;
    rw_log_set_thread(-1);
    struct pollfd pfd[MAX_FDS + 1];
    target *owner[MAX_FDS + 1];
    for (;;) {
        pthread_mutex_lock(&D.mu);
        bool stop = D.stop;
        pthread_mutex_unlock(&D.mu);
        if (stop)
            break;
        take_pending();
        uint64_t now = rw_mono_ms();
        for (target *t = D.targets; t != NULL; t = t->next) {
            if (t->ch != NULL && !t->inflight && now >= t->due) {
                char port[8];
                snprintf(port, sizeof(port), "%u", t->port);
                struct ares_addrinfo_hints hints;
                memset(&hints, 0, sizeof(hints));
                hints.ai_family = AF_UNSPEC;
                hints.ai_socktype = SOCK_STREAM;
                hints.ai_flags = ARES_AI_NUMERICSERV;
                t->inflight = true;
                ares_getaddrinfo(t->ch, t->name, port, &hints, on_addrinfo, t); /* may call back at once */
            }
        }
        bool all_tried = true;
        for (target *t = D.targets; t != NULL; t = t->next)
            all_tried &= t->tried || t->ch == NULL;
        if (all_tried && !D.first_reported) {
            D.first_reported = true;
            rw__disc_first_round_done(RW_DISC_DNS);
        }
        int nfds = 0;
        pfd[nfds] = (struct pollfd){.fd = D.efd, .events = POLLIN};
        owner[nfds++] = NULL;
        uint64_t wait = 1000;
        for (target *t = D.targets; t != NULL; t = t->next) {
            if (t->ch == NULL)
                continue;
            if (t->inflight) {
                ares_socket_t socks[ARES_GETSOCK_MAXNUM];
                int bits = ares_getsock(t->ch, socks, ARES_GETSOCK_MAXNUM);
                for (int i = 0; i < ARES_GETSOCK_MAXNUM && nfds < MAX_FDS; i++) {
                    /* c-ares's own macros shift a signed 1 into the sign bit for the last slot */
                    unsigned ubits = (unsigned)bits;
                    short ev = (short)((ubits & (1u << i) ? POLLIN : 0) |
                                       (ubits & (1u << (i + ARES_GETSOCK_MAXNUM)) ? POLLOUT : 0));
                    if (ev == 0)
                        continue;
                    pfd[nfds] = (struct pollfd){.fd = socks[i], .events = ev};
                    owner[nfds++] = t;
                }
                struct timeval max = {1, 0}, tv, *tp = ares_timeout(t->ch, &max, &tv);
                uint64_t ms = (uint64_t)tp->tv_sec * 1000 + (uint64_t)tp->tv_usec / 1000 + 1;
                wait = RW_MIN(wait, ms);
            } else if (t->due != UINT64_MAX) {
                wait = RW_MIN(wait, t->due > now ? t->due - now : 0);
            }
        }
        int n = poll(pfd, (nfds_t)nfds, (int)wait);
        if (n < 0 && errno != EINTR) {
            rw_log_error("DNS discovery: poll: %s", strerror(errno));
            break;
        }
        if (n > 0 && (pfd[0].revents & POLLIN)) {
            uint64_t v;
            ssize_t r = read(D.efd, &v, sizeof(v));
            (void)r;
        }
        for (int i = 1; i < nfds; i++) {
            if (pfd[i].revents == 0)
                continue;
            ares_process_fd(owner[i]->ch,
                            pfd[i].revents & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd : ARES_SOCKET_BAD,
                            pfd[i].revents & (POLLOUT | POLLERR) ? pfd[i].fd : ARES_SOCKET_BAD);
        }
        for (target *t = D.targets; t != NULL; t = t->next)
            if (t->ch != NULL && t->inflight)
                ares_process_fd(t->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
    }
    while (D.targets != NULL) {
        target *t = D.targets;
        D.targets = t->next;
        target_free(t);
    }
    return NULL;
}

static void wake(void)
{
    uint64_t one = 1;
    ssize_t w = write(D.efd, &one, sizeof(one));
    (void)w;
}

void rw__dns_apply(const rw_config *cfg)
{
    target *list = NULL, **tail = &list;
    for (size_t i = 0; i < cfg->nservices; i++) {
        const rw_service_cfg *sc = &cfg->services[i];
        if (sc->discovery.dns_name == NULL)
            continue;
        target *t = calloc(1, sizeof(*t));
        if (t == NULL || (t->service = strdup(sc->name)) == NULL ||
            (t->name = strdup(sc->discovery.dns_name)) == NULL) {
            if (t != NULL) {
                free(t->service);
                free(t);
            }
            rw_log_error("DNS discovery: out of memory");
            continue;
        }
        t->port = sc->discovery.dns_port;
        t->weight = sc->discovery.dns_weight;
        t->interval_ms = sc->discovery.interval_ms;
        t->has_resolver = sc->discovery.has_resolver;
        if (t->has_resolver)
            snprintf(t->resolver, sizeof(t->resolver), "%s", sc->discovery.resolver.text);
        t->last_status = -1;
        *tail = t;
        tail = &t->next;
    }
    if (list == NULL && !D.running)
        return;
    if (!D.running) {
        static bool lib;
        if (!lib) {
            int rc = ares_library_init(ARES_LIB_INIT_ALL);
            if (rc != ARES_SUCCESS) {
                rw_log_error("DNS discovery: c-ares: %s", ares_strerror(rc));
                goto drop;
            }
            lib = true;
        }
        D.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (D.efd < 0) {
            rw_log_error("DNS discovery: eventfd: %s", strerror(errno));
            goto drop;
        }
        D.stop = false;
        int rc = pthread_create(&D.tid, NULL, dns_main, NULL);
        if (rc != 0) {
            rw_log_error("DNS discovery: cannot start its thread: %s", strerror(rc));
            close(D.efd);
            D.efd = -1;
            goto drop;
        }
        D.running = true;
    }
    pthread_mutex_lock(&D.mu);
    target *old = D.pending;
    D.pending = list;
    D.have_pending = true;
    pthread_mutex_unlock(&D.mu);
    while (old != NULL) {
        target *t = old;
        old = t->next;
        target_free(t);
    }
    wake();
    return;
drop:
    while (list != NULL) {
        target *t = list;
        list = t->next;
        target_free(t);
    }
}

void rw__dns_stop(void)
{
    if (!D.running)
        return;
    pthread_mutex_lock(&D.mu);
    D.stop = true;
    pthread_mutex_unlock(&D.mu);
    wake();
    pthread_join(D.tid, NULL);
    D.running = false;
    while (D.pending != NULL) {
        target *t = D.pending;
        D.pending = t->next;
        target_free(t);
    }
    close(D.efd);
    D.efd = -1;
}
