/* discovery.c - joins what the discovery sources (dns.c, registry.c) report
 * into instance sets, and tells the control thread when they changed.
 *
 * Sources publish a service's whole list from their own threads under one
 * mutex (a few times per interval, never on a request's path); the control
 * thread, woken through an eventfd, builds the merged sets (static
 * instances first, then DNS, then Redis, an address once) and derives a
 * snapshot when any differs from the running one. A failing source keeps
 * its last good list: a DNS or Redis outage never empties a service that
 * had instances. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "discovery_int.h"
#include "ringway/discovery.h"
#include "ringway/instset.h"
#include "ringway/common.h"
#include "ringway/log.h"

typedef struct src_view {
    bool known;      /* the source reported at least once */
    bool ok;         /* its last report was a success */
    rw_instset *set; /* its last good list, NULL: none yet */
    char why[192];   /* its last failure */
} src_view;

typedef struct entry {
    char *name;
    src_view src[RW_DISC__COUNT];
    char dns_key[352]; /* what the DNS view was found for: "name:port@resolver" */
    bool redis_on;     /* the Redis view is for a service that asks for it */
    struct entry *next;
} entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t first_cond = PTHREAD_COND_INITIALIZER;
static entry *entries;
static int efd = -1;
static bool first_needed[RW_DISC__COUNT], first_done[RW_DISC__COUNT];

static entry *find(const char *name, bool create)
{
    for (entry *e = entries; e != NULL; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    if (!create)
        return NULL;
    entry *e = calloc(1, sizeof(*e));
    if (e == NULL || (e->name = strdup(name)) == NULL) {
        free(e);
        return NULL;
    }
    e->next = entries;
    entries = e;
    return e;
}

static void wake(void)
{
    uint64_t one = 1;
    if (efd >= 0) {
        ssize_t w = write(efd, &one, sizeof(one));
        (void)w; /* a saturated counter still wakes the control thread */
    }
}

void rw__disc_publish(int source, const char *service, const rw_instance_cfg *v, uint32_t n, bool ok,
                      const char *why)
{
    rw_instset *set = ok ? rw_instset_new(v, n, NULL) : NULL;
    if (ok && set == NULL) {
        rw_log_error("discovery: out of memory keeping the instances of %s", service);
        return;
    }
    bool changed = false;
    pthread_mutex_lock(&mu);
    entry *e = find(service, true);
    if (e == NULL) {
        pthread_mutex_unlock(&mu);
        rw_instset_unref(set);
        return;
    }
    src_view *sv = &e->src[source];
    if (ok) {
        if (sv->set == NULL || !rw_instset_same(sv->set, set)) {
            rw_instset_unref(sv->set);
            sv->set = set;
            set = NULL;
            changed = true;
        }
        sv->why[0] = '\0';
    } else {
        /* The last good list stays; the reason matters only while there is none. */
        changed = sv->set == NULL && strcmp(sv->why, why ? why : "") != 0;
        snprintf(sv->why, sizeof(sv->why), "%s", why ? why : "failed");
    }
    sv->known = true;
    sv->ok = ok;
    pthread_mutex_unlock(&mu);
    rw_instset_unref(set);
    if (changed)
        wake();
}

void rw__disc_first_round_done(int source)
{
    pthread_mutex_lock(&mu);
    first_done[source] = true;
    pthread_cond_broadcast(&first_cond);
    pthread_mutex_unlock(&mu);
}

static void view_reset(src_view *sv)
{
    rw_instset_unref(sv->set);
    memset(sv, 0, sizeof(*sv));
}

/* A view found for another target (a changed name, port or resolver, or a
 * source switched off) says nothing about the new one: forget it. */
static void forget_stale_views(const rw_config *cfg)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < cfg->nservices; i++) {
        const rw_service_cfg *sc = &cfg->services[i];
        entry *e = find(sc->name, sc->discovery.dns_name != NULL || sc->discovery.redis);
        if (e == NULL)
            continue;
        char key[sizeof(e->dns_key)] = "";
        if (sc->discovery.dns_name != NULL)
            snprintf(key, sizeof(key), "%s:%u@%s", sc->discovery.dns_name, sc->discovery.dns_port,
                     sc->discovery.has_resolver ? sc->discovery.resolver.text : "system");
        if (strcmp(key, e->dns_key) != 0) {
            view_reset(&e->src[RW_DISC_DNS]);
            snprintf(e->dns_key, sizeof(e->dns_key), "%s", key);
        }
        if (!sc->discovery.redis && e->redis_on)
            view_reset(&e->src[RW_DISC_REDIS]);
        e->redis_on = sc->discovery.redis;
    }
    pthread_mutex_unlock(&mu);
}

void rw_discovery_apply(const rw_snapshot *snap)
{
    const rw_config *cfg = snap->cfg;
    forget_stale_views(cfg);
    if (efd < 0) {
        efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (efd < 0)
            rw_log_error("discovery: eventfd: %s; changes are picked up once a second", strerror(errno));
    }
    bool dns = false, redis = false;
    for (size_t i = 0; i < cfg->nservices; i++) {
        dns |= cfg->services[i].discovery.dns_name != NULL;
        redis |= cfg->services[i].discovery.redis;
    }
    pthread_mutex_lock(&mu);
    first_needed[RW_DISC_DNS] = dns;
    first_needed[RW_DISC_REDIS] = redis;
    pthread_mutex_unlock(&mu);
    rw__dns_apply(cfg);
    rw__registry_apply(cfg);
}

void rw_discovery_wait_first(uint32_t timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&mu);
    for (;;) {
        bool waiting = false;
        for (int s = 0; s < RW_DISC__COUNT; s++)
            waiting |= first_needed[s] && !first_done[s];
        if (!waiting || pthread_cond_timedwait(&first_cond, &mu, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&mu);
}

int rw_discovery_fd(void)
{
    return efd;
}

/* Appends set's instances that are not in out[0..*n) yet. */
static void merge(rw_instance_cfg *out, uint32_t *n, const rw_instance_cfg *v, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        uint32_t k = 0;
        while (k < *n && strcmp(out[k].address, v[i].address) != 0)
            k++;
        if (k == *n)
            out[(*n)++] = v[i];
    }
}

/* The merged set of service sc (static, DNS, Redis), or NULL when out of memory. */
static rw_instset *merged_set(const rw_service_cfg *sc)
{
    const entry *e = find(sc->name, false);
    const rw_instset *dns = e && sc->discovery.dns_name ? e->src[RW_DISC_DNS].set : NULL;
    const rw_instset *reg = e && sc->discovery.redis ? e->src[RW_DISC_REDIS].set : NULL;
    uint32_t cap = (uint32_t)sc->ninstances + (dns ? dns->n : 0) + (reg ? reg->n : 0);
    rw_instance_cfg *v = calloc(cap ? cap : 1, sizeof(*v));
    if (v == NULL)
        return NULL;
    uint32_t n = 0;
    merge(v, &n, sc->instances, (uint32_t)sc->ninstances);
    if (dns != NULL)
        merge(v, &n, dns->v, dns->n);
    if (reg != NULL)
        merge(v, &n, reg->v, reg->n);
    if (n > RW_MAX_INSTANCES) {
        rw_log_warn("service %s: %u instances found, only the first %u are used", sc->name, n,
                    RW_MAX_INSTANCES);
        n = RW_MAX_INSTANCES;
    }
    char why[192] = "";
    if (n == 0) {
        size_t off = 0;
        if (sc->discovery.dns_name != NULL) {
            const src_view *sv = e ? &e->src[RW_DISC_DNS] : NULL;
            off += (size_t)snprintf(
                why + off, sizeof(why) - off, "no instance: DNS name %.80s %s%.60s", sc->discovery.dns_name,
                sv && sv->known ? (sv->ok ? "has no address" : "does not resolve: ") : "is not resolved yet",
                sv && sv->known && !sv->ok ? sv->why : "");
        }
        if (sc->discovery.redis && off < sizeof(why)) {
            const src_view *sv = e ? &e->src[RW_DISC_REDIS] : NULL;
            off = RW_MIN(off, sizeof(why) - 1);
            snprintf(why + off, sizeof(why) - off, "%sno instance registered in Redis%s%.40s",
                     off ? "; " : "", sv && sv->known && !sv->ok ? ": " : "",
                     sv && sv->known && !sv->ok ? sv->why : "");
        }
    }
    rw_instset *set = rw_instset_new(v, n, why);
    free(v);
    return set;
}

rw_snapshot *rw_discovery_overlay(rw_snapshot *snap, uint64_t generation)
{
    uint64_t drained;
    if (efd >= 0) {
        ssize_t r = read(efd, &drained, sizeof(drained));
        (void)r; /* EAGAIN: nothing pending, which is fine */
    }
    const rw_config *cfg = snap->cfg;
    rw_instset **sets = calloc(cfg->nservices ? cfg->nservices : 1, sizeof(*sets));
    if (sets == NULL)
        return NULL;
    bool changed = false;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < cfg->nservices; i++) {
        const rw_service_cfg *sc = &cfg->services[i];
        if (sc->discovery.dns_name == NULL && !sc->discovery.redis)
            continue;
        rw_instset *set = merged_set(sc);
        if (set == NULL || rw_instset_same(set, snap->insts[i])) {
            rw_instset_unref(set);
            continue;
        }
        sets[i] = set;
        changed = true;
    }
    pthread_mutex_unlock(&mu);
    rw_snapshot *out = NULL;
    if (changed) {
        char err[256];
        out = rw_snapshot_derive(snap, sets, generation, err, sizeof(err));
        if (out == NULL)
            rw_log_error("discovery: cannot apply the instances found: %s", err);
        for (size_t i = 0; i < cfg->nservices; i++) {
            if (sets[i] != NULL && out != NULL)
                rw_log_info("service %s: %u instance%s (discovery)", cfg->services[i].name, sets[i]->n,
                            sets[i]->n == 1 ? "" : "s");
            rw_instset_unref(sets[i]);
        }
    }
    free(sets);
    return out;
}

void rw_discovery_stop(void)
{
    rw__dns_stop();
    rw__registry_stop();
    pthread_mutex_lock(&mu);
    while (entries != NULL) {
        entry *e = entries;
        entries = e->next;
        for (int s = 0; s < RW_DISC__COUNT; s++)
            rw_instset_unref(e->src[s].set);
        free(e->name);
        free(e);
    }
    pthread_mutex_unlock(&mu);
    if (efd >= 0)
        close(efd);
    efd = -1;
}
