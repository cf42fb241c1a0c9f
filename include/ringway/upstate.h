/* upstate.h - the node-wide state of upstream instances: health (active
 * checks), ejection (outlier detection) and their counters, one entry per
 * service and instance address, shared by every worker and kept across
 * reloads (a snapshot takes references by name).
 *
 * Writers: the health thread (probe verdicts, ejection expiry) and workers
 * (failure streaks, ejections, which are rare). Readers: every worker on
 * every pick. Everything a worker touches is an atomic; a worker re-reads an
 * instance only when its service's version moved or an ejection it knows of
 * expired, so the common pick reads one shared word that never changes. */
#ifndef RINGWAY_UPSTATE_H
#define RINGWAY_UPSTATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringway/config.h"

struct rw_instset;

/* One instance (service name + address). */
typedef struct rw_inst_state {
    char *service, *address;        /* owned */
    _Atomic uint8_t healthy;        /* the active check's verdict (1 without checks) */
    _Atomic uint64_t eject_until;   /* CLOCK_MONOTONIC ms; 0: not ejected */
    _Atomic uint32_t streak;        /* consecutive failures seen by any worker */
    _Atomic uint32_t ejections_row; /* ejections in a row: the next lasts this + 1 times base */
    _Atomic uint64_t last_eject_end;
    _Atomic uint64_t ejections; /* counters, for /status and /metrics */
    _Atomic uint64_t probes_ok, probes_failed;
    _Atomic int32_t last_probe;       /* status of the last probe, 0: passed (tcp), -errno: failed */
    _Atomic uint64_t last_probe_wall; /* wall-clock ms of the last probe, 0: never */
    /* Requests sent to it, per worker (8 counters on a cache line each, the
     * worker's own: plain stores), by enum rw_up_result; summed at scrape. */
    uint64_t *counts;
    /* Written by the health thread only. */
    uint32_t ok_run, fail_run;
    uint32_t refs; /* under the registry lock */
    struct rw_inst_state *next;
} rw_inst_state;

/* One service (by name): what its instances share. */
typedef struct rw_svc_shared {
    char *name;               /* owned */
    _Atomic uint32_t version; /* bumped on every state change of its instances */
    _Atomic uint32_t lock;    /* taken by an ejection (a rare event), never by a pick */
    _Atomic uint64_t panics;  /* picks made among all instances because none was up */
    uint32_t refs;            /* under the registry lock */
    struct rw_svc_shared *next;
} rw_svc_shared;

/* A snapshot's view of one service: its shared entry and its instances' in
 * config order. */
typedef struct rw_svc_health {
    rw_svc_shared *svc;
    rw_inst_state **inst;
    uint32_t n;
} rw_svc_health;

/* Takes references on the state of every service of cfg and instance of insts
 * (creating what is new) into out[cfg->nservices]. Returns 0 or -ENOMEM
 * (nothing held then). Any thread. */
int rw_upstate_acquire(const rw_config *cfg, struct rw_instset *const *insts, rw_svc_health *out);
/* Drops what rw_upstate_acquire took for n services; frees entries no one holds. */
void rw_upstate_release(rw_svc_health *h, size_t n);

/* Whether s is out of rotation at now (monotonic ms): unhealthy or ejected. */
static inline bool rw_inst_down(const rw_inst_state *s, uint64_t now)
{
    return !atomic_load_explicit(&s->healthy, memory_order_relaxed) ||
           atomic_load_explicit(&s->eject_until, memory_order_relaxed) > now;
}

/* How an attempt on an instance ended (ringway_upstream_requests_total). */
enum rw_up_result { RW_UP_OK = 0, RW_UP_5XX, RW_UP_FAILED, RW_UP__COUNT };

/* Counts one attempt on instance i of h by worker (its own line: no atomics). */
static inline void rw_upstate_count(const rw_svc_health *h, uint32_t i, int worker, int result)
{
    h->inst[i]->counts[(size_t)worker * 8 + (size_t)result]++;
}

/* The sum over workers of instance s's counter result (relaxed reads). */
uint64_t rw_upstate_total(const rw_inst_state *s, int result);

/* Records one outcome of a request to instance i of h under outlier config
 * oc: a success clears the failure streak (one relaxed load when it is
 * already clear); a failure may eject the instance node-wide, within
 * max_ejected_percent. Returns true when this call ejected it. */
bool rw_upstate_outcome(const rw_svc_health *h, uint32_t i, const rw_outlier_cfg *oc, bool failed,
                        uint64_t now);

/* Sets the active check's verdict; true when it changed (bumps the version). */
bool rw_upstate_set_healthy(const rw_svc_health *h, uint32_t i, bool healthy);

/* Ends ejections that expired at now (bumps the version for each); calls
 * cb(arg, service, address) for each. Health thread. */
void rw_upstate_expire(const rw_svc_health *h, uint64_t now,
                       void (*cb)(void *arg, const char *service, const char *address), void *arg);

#endif
