/* rstats.h - request statistics by route and by service, for /metrics.
 *
 * Each route and service has one slot per worker, on cache lines of its
 * own: a worker counts into its slot with plain stores (no atomics, nothing
 * shared on the request path) and the admin sums the slots at scrape time
 * (relaxed reads of counters that only grow). Entries are kept by name in a
 * registry, so a reload keeps the counts of the routes and services it
 * keeps. Labels come from config names only, never from requests. */
#ifndef RINGWAY_RSTATS_H
#define RINGWAY_RSTATS_H

#include <stddef.h>
#include <stdint.h>

/* Latency buckets, upper bounds in ms (the last is +Inf). */
#define RW_HIST_BUCKETS 12
extern const uint32_t rw_hist_bounds_ms[RW_HIST_BUCKETS - 1];

/* Why ringway answered a request itself (the access log's error names). */
enum rw_local_reason {
    RW_LR_BAD_REQUEST = 0,
    RW_LR_AUTH,
    RW_LR_ACL,
    RW_LR_NO_ROUTE,
    RW_LR_REQUEST_TIMEOUT,
    RW_LR_BODY_TOO_LARGE,
    RW_LR_HEADER_TOO_LARGE,
    RW_LR_RATE_LIMITED,
    RW_LR_NOT_IMPLEMENTED,
    RW_LR_BAD_GATEWAY,
    RW_LR_UNAVAILABLE,
    RW_LR_VERSION,
    RW_LR_CONNECT_REFUSED,
    RW_LR_CONNECT_FAILED,
    RW_LR_CONNECT_TIMEOUT,
    RW_LR_FIRST_BYTE_TIMEOUT,
    RW_LR_TOTAL_TIMEOUT,
    RW_LR_QUEUE_TIMEOUT,
    RW_LR_UPSTREAM_RESET,
    RW_LR_INVALID_RESPONSE,
    RW_LR_OVERLOADED,
    RW_LR_NO_INSTANCE,
    RW_LR_CLIENT_CLOSED,
    RW_LR_TLS_VERIFY_FAILED,
    RW_LR_TLS_HANDSHAKE_FAILED,
    RW_LR_OTHER,
    RW_LR__COUNT
};
/* The reason's name and the status it goes with. */
extern const char *const rw_lr_names[RW_LR__COUNT];
extern const uint16_t rw_lr_codes[RW_LR__COUNT];

/* Why the access filters refused a request (ringway_auth_failures_total). */
enum rw_auth_fail {
    RW_AF_NONE = 0,
    RW_AF_KEY_MISSING,      /* key_auth: no key */
    RW_AF_KEY_INVALID,      /* key_auth: unknown key, or given twice */
    RW_AF_TOKEN_MISSING,    /* jwt: no token */
    RW_AF_TOKEN_INVALID,    /* jwt: malformed, bad signature, unknown key, given twice */
    RW_AF_TOKEN_EXPIRED,    /* jwt: exp passed, nbf/iat in the future, older than max_age */
    RW_AF_TOKEN_CLAIMS,     /* jwt: issuer, audience or a required claim */
    RW_AF_CONSUMER_UNKNOWN, /* jwt: the consumer claim names no consumer */
    RW_AF_IP_DENIED,        /* acl: the client address */
    RW_AF_CONSUMER_MISSING, /* acl: groups, but no consumer identified */
    RW_AF_CONSUMER_DENIED,  /* acl: the consumer's groups */
    RW_AF__COUNT
};
/* The reason's label value ("" for RW_AF_NONE). */
extern const char *const rw_af_names[RW_AF__COUNT];

/* One worker's counts for one route. */
typedef struct rw_route_slot {
    uint64_t responses[6]; /* by status class, [0]: other */
    uint64_t local[RW_LR__COUNT];
    uint64_t auth[RW_AF__COUNT];    /* filter refusals by reason */
    uint64_t hist[RW_HIST_BUCKETS]; /* request durations, not cumulative */
    uint64_t sum_ms;
    uint64_t bytes_in, bytes_out;
} __attribute__((aligned(64))) rw_route_slot;

/* One worker's counts for one service: time to the upstream's response head. */
typedef struct rw_svc_slot {
    uint64_t hist[RW_HIST_BUCKETS];
    uint64_t sum_ms;
} __attribute__((aligned(64))) rw_svc_slot;

/* One worker's counts for one rate limit (by its name). */
typedef struct rw_limit_slot {
    uint64_t rejected; /* 429s this limit gave */
} __attribute__((aligned(64))) rw_limit_slot;

/* Sets the number of workers (slots per entry); before the first acquire. */
void rw_rstats_init(int nworkers);
/* The slots (one per worker) of the route called name, created when new; a
 * reference the caller releases. NULL when out of memory. Any thread. */
rw_route_slot *rw_rstats_route_acquire(const char *name);
/* The same for a service. */
rw_svc_slot *rw_rstats_svc_acquire(const char *name);
/* The same for a rate limit. */
rw_limit_slot *rw_rstats_limit_acquire(const char *name);
/* Drops a reference taken by an acquire (NULL ignored). */
void rw_rstats_release(void *slots);
/* The number of slots of every entry (the worker count). */
int rw_rstats_nslots(void);
struct rw_config;
/* Writes the Prometheus series of cfg's routes (routes[0..nroutes], the last
 * for requests no route took) and services (svcs[0..nservices]) at buf;
 * returns the length (at most cap). Any thread. */
size_t rw_rstats_metrics(const struct rw_config *cfg, rw_route_slot *const *routes, rw_svc_slot *const *svcs,
                         char *buf, size_t cap);
/* Writes ringway_ratelimit_rejected_total{limit} for every rate limit a live
 * snapshot has; returns the length (at most cap). Any thread. */
size_t rw_rstats_limit_metrics(char *buf, size_t cap);
/* The histogram bucket of a duration in ms. */
static inline int rw_hist_bucket(uint64_t ms)
{
    int b = 0;
    while (b < RW_HIST_BUCKETS - 1 && ms > rw_hist_bounds_ms[b])
        b++;
    return b;
}

#endif
