/* upstate.c - the registry of node-wide instance state (see upstate.h).
 *
 * Entries are found by name under one mutex, which only snapshot creation
 * and release take (start-up, reloads, a worker dropping its last reference
 * on an old snapshot); the request path never does. Lists are linear: a node
 * has hundreds of instances, not millions, and lookups happen per reload. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ringway/common.h"
#include "ringway/instset.h"
#include "ringway/log.h"
#include "ringway/rstats.h"
#include "ringway/upstate.h"

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static rw_svc_shared *reg_svcs;
static rw_inst_state *reg_insts;

static rw_svc_shared *svc_get(const char *name)
{
    for (rw_svc_shared *s = reg_svcs; s != NULL; s = s->next) {
        if (strcmp(s->name, name) == 0) {
            s->refs++;
            return s;
        }
    }
    rw_svc_shared *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->name = strdup(name)) == NULL) {
        free(s);
        return NULL;
    }
    s->refs = 1;
    s->next = reg_svcs;
    reg_svcs = s;
    return s;
}

static void svc_put(rw_svc_shared *s)
{
    if (s == NULL || --s->refs > 0)
        return;
    for (rw_svc_shared **pp = &reg_svcs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    free(s->name);
    free(s);
}

static rw_inst_state *inst_get(const char *service, const char *address)
{
    for (rw_inst_state *s = reg_insts; s != NULL; s = s->next) {
        if (strcmp(s->service, service) == 0 && strcmp(s->address, address) == 0) {
            s->refs++;
            return s;
        }
    }
    rw_inst_state *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->service = strdup(service);
    s->address = strdup(address);
    void *counts = NULL;
    if (s->service == NULL || s->address == NULL ||
        posix_memalign(&counts, 64, 64 * (size_t)rw_rstats_nslots()) != 0) {
        free(s->service);
        free(s->address);
        free(s);
        return NULL;
    }
    memset(counts, 0, 64 * (size_t)rw_rstats_nslots());
    s->counts = counts;
    atomic_init(&s->healthy, 1); /* in rotation until a check says otherwise */
    atomic_init(&s->last_probe, 0);
    s->refs = 1;
    s->next = reg_insts;
    reg_insts = s;
    return s;
}

static void inst_put(rw_inst_state *s)
{
    if (s == NULL || --s->refs > 0)
        return;
    for (rw_inst_state **pp = &reg_insts; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    free(s->counts);
    free(s->service);
    free(s->address);
    free(s);
}

uint64_t rw_upstate_total(const rw_inst_state *s, int result)
{
    uint64_t sum = 0;
    for (int w = 0; w < rw_rstats_nslots(); w++)
        sum += __atomic_load_n(&s->counts[(size_t)w * 8 + (size_t)result], __ATOMIC_RELAXED);
    return sum;
}

static void release_locked(rw_svc_health *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (uint32_t k = 0; h[i].inst != NULL && k < h[i].n; k++)
            inst_put(h[i].inst[k]);
        free(h[i].inst);
        svc_put(h[i].svc);
        memset(&h[i], 0, sizeof(h[i]));
    }
}

int rw_upstate_acquire(const rw_config *cfg, struct rw_instset *const *insts, rw_svc_health *out)
{
    pthread_mutex_lock(&reg_lock);
    size_t i = 0;
    for (; i < cfg->nservices; i++) {
        const rw_service_cfg *sc = &cfg->services[i];
        const rw_instset *set = insts[i];
        rw_svc_health *h = &out[i];
        memset(h, 0, sizeof(*h));
        h->svc = svc_get(sc->name);
        h->inst = calloc(set->n ? set->n : 1, sizeof(*h->inst));
        if (h->svc == NULL || h->inst == NULL)
            goto fail;
        for (; h->n < set->n; h->n++) {
            h->inst[h->n] = inst_get(sc->name, set->v[h->n].address);
            if (h->inst[h->n] == NULL)
                goto fail;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return 0;
fail:
    release_locked(out, i + 1);
    pthread_mutex_unlock(&reg_lock);
    return -ENOMEM;
}

void rw_upstate_release(rw_svc_health *h, size_t n)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&reg_lock);
    release_locked(h, n);
    pthread_mutex_unlock(&reg_lock);
}

static void bump(const rw_svc_health *h)
{
    atomic_fetch_add_explicit(&h->svc->version, 1, memory_order_release);
}

/* Ejects instance i if the cap allows; called with the service's lock held. */
static bool try_eject(const rw_svc_health *h, uint32_t i, const rw_outlier_cfg *oc, uint64_t now)
{
    rw_inst_state *s = h->inst[i];
    if (atomic_load_explicit(&s->eject_until, memory_order_relaxed) > now)
        return false; /* another worker was first */
    uint32_t out = 0;
    for (uint32_t k = 0; k < h->n; k++)
        if (atomic_load_explicit(&h->inst[k]->eject_until, memory_order_relaxed) > now)
            out++;
    /* The cap, at least one of two or more: with 2 instances and 50%, one. */
    uint32_t cap = (uint32_t)((uint64_t)h->n * oc->max_ejected_percent / 100);
    if (cap == 0 && h->n >= 2 && oc->max_ejected_percent > 0)
        cap = 1;
    if (out + 1 > cap)
        return false;
    /* A repeat offender stays out longer; a clean run as long as the longest
     * ejection forgives. Jitter (up to 10%) keeps ejected instances of many
     * nodes from returning in lockstep. */
    uint32_t row = atomic_load_explicit(&s->ejections_row, memory_order_relaxed);
    uint64_t ended = atomic_load_explicit(&s->last_eject_end, memory_order_relaxed);
    if (ended != 0 && now > ended + oc->max_ejection_ms)
        row = 0;
    uint64_t ms = (uint64_t)oc->base_ejection_ms * (row + 1);
    if (ms > oc->max_ejection_ms)
        ms = oc->max_ejection_ms;
    uint64_t seed = (now ^ (uintptr_t)s) * 0x9E3779B97F4A7C15ull;
    ms += (seed >> 40) % (ms / 10 + 1);
    atomic_store_explicit(&s->ejections_row, row + 1, memory_order_relaxed);
    atomic_store_explicit(&s->last_eject_end, now + ms, memory_order_relaxed);
    atomic_store_explicit(&s->eject_until, now + ms, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->ejections, 1, memory_order_relaxed);
    bump(h);
    rw_log_warn("upstream %s (%s) ejected for %llums after %u consecutive failures (ejection %u in a row)",
                s->service, s->address, (unsigned long long)ms, oc->consecutive_failures, row + 1);
    return true;
}

bool rw_upstate_outcome(const rw_svc_health *h, uint32_t i, const rw_outlier_cfg *oc, bool failed,
                        uint64_t now)
{
    rw_inst_state *s = h->inst[i];
    if (!failed) {
        /* The common case reads a word no one writes: no cache-line traffic. */
        if (atomic_load_explicit(&s->streak, memory_order_relaxed) != 0)
            atomic_store_explicit(&s->streak, 0, memory_order_relaxed);
        return false;
    }
    uint32_t n = atomic_fetch_add_explicit(&s->streak, 1, memory_order_relaxed) + 1;
    if (!oc->enabled || n < oc->consecutive_failures)
        return false;
    uint32_t expect = 0;
    if (!atomic_compare_exchange_strong(&h->svc->lock, &expect, 1))
        return false; /* another worker is ejecting: the next failure tries again */
    bool ejected = try_eject(h, i, oc, now);
    if (ejected)
        atomic_store_explicit(&s->streak, 0, memory_order_relaxed);
    atomic_store_explicit(&h->svc->lock, 0, memory_order_release);
    return ejected;
}

bool rw_upstate_set_healthy(const rw_svc_health *h, uint32_t i, bool healthy)
{
    uint8_t old = atomic_exchange_explicit(&h->inst[i]->healthy, healthy ? 1 : 0, memory_order_relaxed);
    if (old == (healthy ? 1 : 0))
        return false;
    bump(h);
    return true;
}

void rw_upstate_expire(const rw_svc_health *h, uint64_t now,
                       void (*cb)(void *arg, const char *service, const char *address), void *arg)
{
    for (uint32_t k = 0; k < h->n; k++) {
        rw_inst_state *s = h->inst[k];
        uint64_t until = atomic_load_explicit(&s->eject_until, memory_order_relaxed);
        if (until == 0 || until > now)
            continue;
        uint64_t expect = until;
        if (atomic_compare_exchange_strong(&s->eject_until, &expect, 0)) {
            bump(h);
            if (cb != NULL)
                cb(arg, s->service, s->address);
        }
    }
}
