/* rstats.c - the registry of per-route and per-service statistics slots
 * (rstats.h). A mutex guards the lists; only snapshot creation and release
 * take it, never a request. */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringway/config.h"
#include "ringway/rstats.h"

const uint32_t rw_hist_bounds_ms[RW_HIST_BUCKETS - 1] = {5,   10,   25,   50,   100,  250,
                                                         500, 1000, 2500, 5000, 10000};

const char *const rw_lr_names[RW_LR__COUNT] = {
    [RW_LR_BAD_REQUEST] = "bad_request",
    [RW_LR_AUTH] = "auth",
    [RW_LR_ACL] = "acl",
    [RW_LR_NO_ROUTE] = "no_route",
    [RW_LR_REQUEST_TIMEOUT] = "request_timeout",
    [RW_LR_BODY_TOO_LARGE] = "body_too_large",
    [RW_LR_HEADER_TOO_LARGE] = "header_too_large",
    [RW_LR_RATE_LIMITED] = "rate_limited",
    [RW_LR_NOT_IMPLEMENTED] = "not_implemented",
    [RW_LR_BAD_GATEWAY] = "bad_gateway",
    [RW_LR_UNAVAILABLE] = "unavailable",
    [RW_LR_VERSION] = "version_not_supported",
    [RW_LR_CONNECT_REFUSED] = "connect_refused",
    [RW_LR_CONNECT_FAILED] = "connect_failed",
    [RW_LR_CONNECT_TIMEOUT] = "connect_timeout",
    [RW_LR_FIRST_BYTE_TIMEOUT] = "first_byte_timeout",
    [RW_LR_TOTAL_TIMEOUT] = "total_timeout",
    [RW_LR_QUEUE_TIMEOUT] = "queue_timeout",
    [RW_LR_UPSTREAM_RESET] = "upstream_reset",
    [RW_LR_INVALID_RESPONSE] = "invalid_response",
    [RW_LR_OVERLOADED] = "overloaded",
    [RW_LR_NO_INSTANCE] = "no_instance",
    [RW_LR_CLIENT_CLOSED] = "client_closed",
    [RW_LR_TLS_VERIFY_FAILED] = "tls_verify_failed",
    [RW_LR_TLS_HANDSHAKE_FAILED] = "tls_handshake_failed",
    [RW_LR_OTHER] = "local",
};

const uint16_t rw_lr_codes[RW_LR__COUNT] = {
    [RW_LR_BAD_REQUEST] = 400,
    [RW_LR_AUTH] = 401,
    [RW_LR_ACL] = 403,
    [RW_LR_NO_ROUTE] = 404,
    [RW_LR_REQUEST_TIMEOUT] = 408,
    [RW_LR_BODY_TOO_LARGE] = 413,
    [RW_LR_HEADER_TOO_LARGE] = 431,
    [RW_LR_RATE_LIMITED] = 429,
    [RW_LR_NOT_IMPLEMENTED] = 501,
    [RW_LR_BAD_GATEWAY] = 502,
    [RW_LR_UNAVAILABLE] = 503,
    [RW_LR_VERSION] = 505,
    [RW_LR_CONNECT_REFUSED] = 502,
    [RW_LR_CONNECT_FAILED] = 502,
    [RW_LR_CONNECT_TIMEOUT] = 504,
    [RW_LR_FIRST_BYTE_TIMEOUT] = 504,
    [RW_LR_TOTAL_TIMEOUT] = 504,
    [RW_LR_QUEUE_TIMEOUT] = 503,
    [RW_LR_UPSTREAM_RESET] = 502,
    [RW_LR_INVALID_RESPONSE] = 502,
    [RW_LR_OVERLOADED] = 503,
    [RW_LR_NO_INSTANCE] = 503,
    [RW_LR_CLIENT_CLOSED] = 499,
    [RW_LR_TLS_VERIFY_FAILED] = 502,
    [RW_LR_TLS_HANDSHAKE_FAILED] = 502,
    [RW_LR_OTHER] = 0,
};

const char *const rw_af_names[RW_AF__COUNT] = {
    [RW_AF_NONE] = "",
    [RW_AF_KEY_MISSING] = "key_missing",
    [RW_AF_KEY_INVALID] = "key_invalid",
    [RW_AF_TOKEN_MISSING] = "token_missing",
    [RW_AF_TOKEN_INVALID] = "token_invalid",
    [RW_AF_TOKEN_EXPIRED] = "token_expired",
    [RW_AF_TOKEN_CLAIMS] = "token_claims",
    [RW_AF_CONSUMER_UNKNOWN] = "consumer_unknown",
    [RW_AF_IP_DENIED] = "ip_denied",
    [RW_AF_CONSUMER_MISSING] = "consumer_missing",
    [RW_AF_CONSUMER_DENIED] = "consumer_denied",
};

enum { KIND_ROUTE, KIND_SERVICE, KIND_LIMIT };

typedef struct entry {
    char *name;
    int kind; /* KIND_* */
    uint32_t refs;
    void *slots;
    struct entry *next;
} entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static entry *entries;
static int nslots = 1;

void rw_rstats_init(int nworkers)
{
    nslots = nworkers > 0 ? nworkers : 1;
}

int rw_rstats_nslots(void)
{
    return nslots;
}

static void *acquire(const char *name, int kind, size_t slot_size)
{
    pthread_mutex_lock(&mu);
    for (entry *e = entries; e != NULL; e = e->next) {
        if (e->kind == kind && strcmp(e->name, name) == 0) {
            e->refs++;
            pthread_mutex_unlock(&mu);
            return e->slots;
        }
    }
    entry *e = calloc(1, sizeof(*e));
    void *slots = NULL;
    if (e != NULL && (e->name = strdup(name)) != NULL &&
        posix_memalign(&slots, 64, slot_size * (size_t)nslots) == 0) {
        memset(slots, 0, slot_size * (size_t)nslots);
        e->slots = slots;
        e->kind = kind;
        e->refs = 1;
        e->next = entries;
        entries = e;
        pthread_mutex_unlock(&mu);
        return slots;
    }
    pthread_mutex_unlock(&mu);
    if (e != NULL)
        free(e->name);
    free(e);
    return NULL;
}

rw_route_slot *rw_rstats_route_acquire(const char *name)
{
    return acquire(name, KIND_ROUTE, sizeof(rw_route_slot));
}

rw_svc_slot *rw_rstats_svc_acquire(const char *name)
{
    return acquire(name, KIND_SERVICE, sizeof(rw_svc_slot));
}

rw_limit_slot *rw_rstats_limit_acquire(const char *name)
{
    return acquire(name, KIND_LIMIT, sizeof(rw_limit_slot));
}

void rw_rstats_release(void *slots)
{
    if (slots == NULL)
        return;
    pthread_mutex_lock(&mu);
    for (entry **pp = &entries; *pp != NULL; pp = &(*pp)->next) {
        entry *e = *pp;
        if (e->slots == slots) {
            if (--e->refs == 0) {
                *pp = e->next;
                free(e->slots);
                free(e->name);
                free(e);
            }
            break;
        }
    }
    pthread_mutex_unlock(&mu);
}

/* ---- the Prometheus text of a snapshot's routes and services ---- */

#define APPEND(buf, n, cap, ...)                                                                             \
    do {                                                                                                     \
        if ((n) < (cap)) {                                                                                   \
            int w_ = snprintf((buf) + (n), (cap) - (n), __VA_ARGS__);                                        \
            (n) = w_ < 0 ? (cap) : ((n) + (size_t)w_ < (cap) ? (n) + (size_t)w_ : (cap));                    \
        }                                                                                                    \
    } while (0)

/* The sum of every worker's slot of one route. */
static void route_sum(const rw_route_slot *slots, rw_route_slot *out)
{
    memset(out, 0, sizeof(*out));
    const uint64_t *src;
    uint64_t *dst = (uint64_t *)out;
    for (int w = 0; w < nslots; w++) {
        src = (const uint64_t *)&slots[w];
        for (size_t k = 0; k < offsetof(rw_route_slot, bytes_out) / 8 + 1; k++)
            dst[k] += __atomic_load_n(&src[k], __ATOMIC_RELAXED);
    }
}

static void svc_sum(const rw_svc_slot *slots, rw_svc_slot *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t *dst = (uint64_t *)out;
    for (int w = 0; w < nslots; w++) {
        const uint64_t *src = (const uint64_t *)&slots[w];
        for (size_t k = 0; k < offsetof(rw_svc_slot, sum_ms) / 8 + 1; k++)
            dst[k] += __atomic_load_n(&src[k], __ATOMIC_RELAXED);
    }
}

/* A histogram's buckets (cumulative), sum and count; labels is "route=\"x\"". */
static size_t histogram(char *buf, size_t n, size_t cap, const char *name, const char *labels,
                        const uint64_t *h, uint64_t sum_ms)
{
    uint64_t cum = 0;
    for (int b = 0; b < RW_HIST_BUCKETS; b++) {
        cum += h[b];
        if (b < RW_HIST_BUCKETS - 1)
            APPEND(buf, n, cap, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, rw_hist_bounds_ms[b] / 1000.0,
                   (unsigned long long)cum);
        else
            APPEND(buf, n, cap, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
    }
    APPEND(buf, n, cap, "%s_sum{%s} %.3f\n%s_count{%s} %llu\n", name, labels, sum_ms / 1000.0, name, labels,
           (unsigned long long)cum);
    return n;
}

size_t rw_rstats_metrics(const rw_config *cfg, rw_route_slot *const *routes, rw_svc_slot *const *svcs,
                         char *buf, size_t cap)
{
    size_t n = 0;
    static const char *const classes[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    rw_route_slot r;
    char labels[320];
    APPEND(buf, n, cap,
           "# HELP ringway_requests_total Requests answered, by route, its service and status class (route "
           "\"\": no route matched).\n# TYPE ringway_requests_total counter\n");
    for (size_t i = 0; i <= cfg->nroutes; i++) {
        const char *rn = i < cfg->nroutes ? cfg->routes[i].name : "";
        const char *sn = i < cfg->nroutes && cfg->routes[i].service ? cfg->routes[i].service : "";
        route_sum(routes[i], &r);
        for (int c = 0; c < 6; c++)
            if (r.responses[c] > 0 || (c == 2 && i < cfg->nroutes))
                APPEND(buf, n, cap,
                       "ringway_requests_total{route=\"%s\",service=\"%s\",code_class=\"%s\"} %llu\n", rn, sn,
                       classes[c], (unsigned long long)r.responses[c]);
    }
    APPEND(buf, n, cap,
           "# HELP ringway_local_responses_total Answers ringway made itself (not an upstream's), by route, "
           "code "
           "and reason.\n# TYPE ringway_local_responses_total counter\n");
    for (size_t i = 0; i <= cfg->nroutes; i++) {
        route_sum(routes[i], &r);
        for (int k = 0; k < RW_LR__COUNT; k++)
            if (r.local[k] > 0)
                APPEND(buf, n, cap,
                       "ringway_local_responses_total{route=\"%s\",code=\"%u\",reason=\"%s\"} %llu\n",
                       i < cfg->nroutes ? cfg->routes[i].name : "", rw_lr_codes[k], rw_lr_names[k],
                       (unsigned long long)r.local[k]);
    }
    APPEND(buf, n, cap,
           "# HELP ringway_auth_failures_total Requests the access filters refused (401/403), by route and "
           "reason.\n# TYPE ringway_auth_failures_total counter\n");
    for (size_t i = 0; i < cfg->nroutes; i++) {
        route_sum(routes[i], &r);
        for (int k = 1; k < RW_AF__COUNT; k++)
            if (r.auth[k] > 0)
                APPEND(buf, n, cap, "ringway_auth_failures_total{route=\"%s\",reason=\"%s\"} %llu\n",
                       cfg->routes[i].name, rw_af_names[k], (unsigned long long)r.auth[k]);
    }
    APPEND(buf, n, cap,
           "# HELP ringway_request_duration_seconds Time from a request's head to its end, by route.\n"
           "# TYPE ringway_request_duration_seconds histogram\n");
    for (size_t i = 0; i <= cfg->nroutes; i++) {
        route_sum(routes[i], &r);
        snprintf(labels, sizeof(labels), "route=\"%s\"", i < cfg->nroutes ? cfg->routes[i].name : "");
        n = histogram(buf, n, cap, "ringway_request_duration_seconds", labels, r.hist, r.sum_ms);
    }
    APPEND(
        buf, n, cap,
        "# HELP ringway_route_bytes_total Bytes received from clients (head and body) and sent to them, by "
        "route.\n# TYPE ringway_route_bytes_total counter\n");
    for (size_t i = 0; i <= cfg->nroutes; i++) {
        route_sum(routes[i], &r);
        const char *rn = i < cfg->nroutes ? cfg->routes[i].name : "";
        APPEND(buf, n, cap,
               "ringway_route_bytes_total{route=\"%s\",direction=\"in\"} %llu\n"
               "ringway_route_bytes_total{route=\"%s\",direction=\"out\"} %llu\n",
               rn, (unsigned long long)r.bytes_in, rn, (unsigned long long)r.bytes_out);
    }
    rw_svc_slot s;
    APPEND(buf, n, cap,
           "# HELP ringway_upstream_response_seconds Time from a request's head to the upstream's response "
           "head, "
           "by service.\n# TYPE ringway_upstream_response_seconds histogram\n");
    for (size_t i = 0; i < cfg->nservices; i++) {
        svc_sum(svcs[i], &s);
        snprintf(labels, sizeof(labels), "service=\"%s\"", cfg->services[i].name);
        n = histogram(buf, n, cap, "ringway_upstream_response_seconds", labels, s.hist, s.sum_ms);
    }
    return n < cap ? n : cap;
}

size_t rw_rstats_limit_metrics(char *buf, size_t cap)
{
    size_t n = 0;
    APPEND(buf, n, cap,
           "# HELP ringway_ratelimit_rejected_total Requests a rate limit refused (429), by limit name.\n"
           "# TYPE ringway_ratelimit_rejected_total counter\n");
    pthread_mutex_lock(&mu);
    for (const entry *e = entries; e != NULL; e = e->next) {
        if (e->kind != KIND_LIMIT)
            continue;
        const rw_limit_slot *slots = e->slots;
        uint64_t sum = 0;
        for (int w = 0; w < nslots; w++)
            sum += __atomic_load_n(&slots[w].rejected, __ATOMIC_RELAXED);
        APPEND(buf, n, cap, "ringway_ratelimit_rejected_total{limit=\"%s\"} %llu\n", e->name,
               (unsigned long long)sum);
    }
    pthread_mutex_unlock(&mu);
    return n < cap ? n : cap;
}
