/* filters.h - the access filters of a route (key_auth, jwt, acl, rate_limit)
 * compiled once per config snapshot, and the per-worker state that runs them.
 *
 * Phase order, whatever order the config lists them in: IP allow/deny, then
 * authentication (key_auth, jwt), then group ACLs, then rate limits. A route's
 * effective list is the top-level filters, then its service's, then its own.
 *
 * Ownership: rw_filters belongs to its snapshot. Rate-limit tables live in a
 * process-wide registry keyed by limit name, so their buckets survive reloads;
 * JWKS sources and tables are released on the control thread (rw_filters_gc),
 * never on a worker. */
#ifndef RINGWAY_FILTERS_H
#define RINGWAY_FILTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringway/common.h"
#include "ringway/config.h"
#include "ringway/http.h"
#include "ringway/rlsync.h"

typedef struct rw_filters rw_filters;
typedef struct rw_filter_worker rw_filter_worker;

#define RW_FILTER_MAX_ADD 16 /* headers a request can gain (claims, consumer) */

/* A header to add to the upstream request; bytes owned by the worker state or
 * the snapshot, valid until the next rw_filters_run on that worker. */
typedef struct rw_filter_hdr {
    rw_str name;
    rw_str value;
} rw_filter_hdr;

/* What the request carries into the filters. */
typedef struct rw_filter_input {
    const rw_http_request *rq;
    const char *peer; /* numeric peer address */
    size_t peer_len;
    int route;
    uint64_t now_ms;    /* monotonic */
    int64_t now_s;      /* Unix time */
    rw_str cert_sha256; /* the verified client certificate's SHA-256 fingerprint (64 lower-case
                           hex digits; rw_tls_peer_cert), empty when none: when no key_auth
                           or jwt filter identified a consumer, the consumer listing it in
                           consumers[].certificates is the request's consumer */
} rw_filter_input;

/* What the rate limits of a run said (for the access log). */
enum rw_rl_seen { RW_RLS_NONE = 0, RW_RLS_ALLOWED, RW_RLS_LIMITED };

/* The outcome: pass (status 0) with headers to add/strip, or a refusal. */
typedef struct rw_filter_result {
    int status;         /* 0, 401, 403, 429 or 503 */
    const char *error;  /* short reason for the JSON body ("token expired") */
    char extra[320];    /* extra response header lines (each "Name: value\r\n") */
    uint32_t extra_len; /* for a refusal: WWW-Authenticate, Retry-After, RateLimit-*;
                           for a pass: RateLimit-* of limits with headers: true */
    rw_filter_hdr add[RW_FILTER_MAX_ADD];
    uint32_t nadd;
    int consumer;      /* index into cfg->consumers, -1 when none */
    uint8_t ratelimit; /* enum rw_rl_seen: what the rate limits said */
    uint8_t auth_fail; /* enum rw_auth_fail (rstats.h): why a 401/403 refused */
    bool query_set;    /* forward query instead of the request's (a hidden credential removed) */
    rw_str query;
} rw_filter_result;

/* Compiles the filters of cfg (keys, JWKS sources, rate-limit tables, the API
 * key index). Returns NULL with a reason in err. Control thread only. */
rw_filters *rw_filters_build(const rw_config *cfg, char *err, size_t errlen);
/* Hands f, and cfg when not NULL (the config it was built from), to the
 * control thread's collector (any thread, never blocks long). */
void rw_filters_release(rw_filters *f, rw_config *cfg);
/* Frees f now (control thread; NULL allowed): for filters no worker has seen. */
void rw_filters_free(rw_filters *f);
/* Frees released filters and rate-limit tables nothing uses any more (control thread). */
void rw_filters_gc(void);

/* True when the route has any filter. */
bool rw_filters_route_active(const rw_filters *f, int route);
/* True when a request header must not be forwarded on this route (identity
 * headers the filters set, hidden credentials). */
bool rw_filters_strip(const rw_filters *f, int route, rw_str name);

/* The client's address: the peer, or with cfg's trusted proxies the
 * rightmost X-Forwarded-For entry that is not one (the text points into rq
 * or peer; an unparsable entry there is returned as it is, with *ip zeroed). */
rw_str rw_client_ip(const rw_config *cfg, const rw_http_request *rq, const char *peer, size_t peer_len,
                    struct rw_ipaddr *ip);

/* Runs the route's filters. Returns out->status (0: pass). */
int rw_filters_run(rw_filter_worker *fw, const rw_filters *f, const rw_filter_input *in,
                   rw_filter_result *out);

/* Per-worker state: rate-limit shard, verified-token cache, scratch; id is
 * the worker's index (its slot in the per-limit counters). */
rw_filter_worker *rw_filter_worker_new(uint32_t shard_keys, int id);
/* Frees a worker's state (its parked tokens go back to the tables). */
void rw_filter_worker_free(rw_filter_worker *fw, uint64_t now_ms);
/* Called when a worker moves from snapshot filters old to cur: forgets the
 * rate-limit tables cur no longer has. */
void rw_filter_worker_switch(rw_filter_worker *fw, const rw_filters *old, const rw_filters *cur,
                             uint64_t now_ms);

/* Counters summed over workers are read through rw_worker_stats; these are
 * per process. */
typedef struct rw_filters_stats {
    uint64_t jwt_cache_hits, jwt_verified;
    uint64_t rl_redis_fallback;
} rw_filters_stats;
/* Adds fw's counters into out (relaxed reads; any thread). */
void rw_filter_worker_stats(const rw_filter_worker *fw, rw_filters_stats *out);

#endif
