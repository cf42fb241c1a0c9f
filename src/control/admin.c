/* admin.c - the admin API on its own port (--admin), served by the control
 * thread: GET /status, /metrics, /health, /ready, /config; POST /reload.
 * One request per connection, short timeouts; never on a worker. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin_int.h"
#include "ringway/filters.h"
#include "ringway/rlsync.h"
#include "ringway/log.h"

#define ADMIN_TIMEOUT_MS 1000

void rw__admin_init(rw_admin *a, rw_control_opts *ctl, int fd)
{
    a->ctl = ctl;
    a->fd = fd;
    a->started = time(NULL);
}

static void reply(int fd, int status, const char *ctype, const char *body, size_t blen)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                     "Connection: close\r\n\r\n",
                     status, rw_http_reason(status), ctype, blen);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    const char *parts[2] = {head, body};
    size_t lens[2] = {(size_t)n, blen};
    for (int i = 0; i < 2; i++) {
        size_t off = 0;
        while (off < lens[i]) {
            ssize_t w = send(fd, parts[i] + off, lens[i] - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) {
                off += (size_t)w;
                continue;
            }
            if (w == -1 && (errno == EAGAIN || errno == EINTR) && poll(&p, 1, ADMIN_TIMEOUT_MS) > 0)
                continue;
            return;
        }
    }
}

static size_t status_json(rw_admin *a, char *buf, size_t cap)
{
    rw_worker_stats st;
    rw_server_stats(a->ctl->server, &st);
    const rw_snapshot *snap = a->ctl->snap;
    return (size_t)snprintf(
        buf, cap,
        "{\"version\":\"%s\",\"config\":\"%s\",\"generation\":%llu,\"workers\":%d,\"ready\":%s,"
        "\"uptime_s\":%lld,\"routes\":%zu,\"services\":%zu,"
        "\"connections\":{\"accepted\":%llu,\"active\":%llu},"
        "\"requests\":%llu,\"responses\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu},"
        "\"bad_requests\":%llu,"
        "\"upstream\":{\"connects\":%llu,\"reuses\":%llu,\"errors\":%llu,\"timeouts\":%llu}}\n",
        RW_VERSION, snap->cfg->source, (unsigned long long)snap->generation, rw_server_nworkers(a->ctl->server),
        rw_server_ready(a->ctl->server) ? "true" : "false", (long long)(time(NULL) - a->started),
        snap->cfg->nroutes, snap->cfg->nservices, (unsigned long long)st.accepted,
        (unsigned long long)st.active_conns, (unsigned long long)st.requests,
        (unsigned long long)st.responses[1], (unsigned long long)st.responses[2],
        (unsigned long long)st.responses[3], (unsigned long long)st.responses[4],
        (unsigned long long)st.responses[5], (unsigned long long)st.bad_requests,
        (unsigned long long)st.upstream_connects, (unsigned long long)st.upstream_reuses,
        (unsigned long long)st.upstream_errors, (unsigned long long)st.upstream_timeouts);
}

/* Appends "per_worker":[...] before the closing brace of a status document:
 * how SO_REUSEPORT spread connections and requests over the workers. */
static size_t status_per_worker(rw_admin *a, char *buf, size_t n, size_t cap)
{
    if (n < 3 || n >= cap)
        return n;
    n -= 2; /* drop "}\n" */
    n += (size_t)snprintf(buf + n, cap - n, ",\"per_worker\":[");
    int nw = rw_server_nworkers(a->ctl->server);
    for (int i = 0; i < nw && n < cap; i++) {
        rw_worker_stats ws;
        rw_server_worker_stats(a->ctl->server, i, &ws);
        n += (size_t)snprintf(buf + n, cap - n, "%s{\"id\":%d,\"accepted\":%llu,\"active\":%llu,\"requests\":%llu}",
                              i ? "," : "", i, (unsigned long long)ws.accepted, (unsigned long long)ws.active_conns,
                              (unsigned long long)ws.requests);
    }
    if (n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "]}\n");
    return n < cap ? n : cap;
}

static size_t metrics_text(rw_admin *a, char *buf, size_t cap)
{
    rw_worker_stats st;
    rw_server_stats(a->ctl->server, &st);
    size_t n = (size_t)snprintf(
        buf, cap,
        "# HELP ringway_connections_accepted_total Client connections accepted.\n"
        "# TYPE ringway_connections_accepted_total counter\nringway_connections_accepted_total %llu\n"
        "# HELP ringway_connections_active Client connections open now.\n"
        "# TYPE ringway_connections_active gauge\nringway_connections_active %llu\n"
        "# HELP ringway_requests_total Requests parsed.\n"
        "# TYPE ringway_requests_total counter\nringway_requests_total %llu\n"
        "# HELP ringway_bad_requests_total Requests rejected as malformed.\n"
        "# TYPE ringway_bad_requests_total counter\nringway_bad_requests_total %llu\n"
        "# HELP ringway_responses_total Responses by status class.\n"
        "# TYPE ringway_responses_total counter\n",
        (unsigned long long)st.accepted, (unsigned long long)st.active_conns, (unsigned long long)st.requests,
        (unsigned long long)st.bad_requests);
    for (int i = 1; i <= 5 && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "ringway_responses_total{class=\"%dxx\"} %llu\n", i,
                              (unsigned long long)st.responses[i]);
    if (n < cap)
        n += (size_t)snprintf(
            buf + n, cap - n,
            "# HELP ringway_upstream_connects_total New upstream connections.\n"
            "# TYPE ringway_upstream_connects_total counter\nringway_upstream_connects_total %llu\n"
            "# HELP ringway_upstream_reuses_total Requests sent on a pooled keep-alive connection.\n"
            "# TYPE ringway_upstream_reuses_total counter\nringway_upstream_reuses_total %llu\n"
            "# HELP ringway_upstream_errors_total Upstream connection failures.\n"
            "# TYPE ringway_upstream_errors_total counter\nringway_upstream_errors_total %llu\n"
            "# HELP ringway_upstream_timeouts_total Upstream timeouts.\n"
            "# TYPE ringway_upstream_timeouts_total counter\nringway_upstream_timeouts_total %llu\n"
            "# HELP ringway_upstream_queued_total Requests that waited for an upstream connection slot (max_conns).\n"
            "# TYPE ringway_upstream_queued_total counter\nringway_upstream_queued_total %llu\n"
            "# HELP ringway_upstream_queue_timeouts_total Requests answered 503 after waiting timeouts.queue for a slot.\n"
            "# TYPE ringway_upstream_queue_timeouts_total counter\nringway_upstream_queue_timeouts_total %llu\n"
            "# HELP ringway_config_generation Generation of the running configuration.\n"
            "# TYPE ringway_config_generation gauge\nringway_config_generation %llu\n",
            (unsigned long long)st.upstream_connects, (unsigned long long)st.upstream_reuses,
            (unsigned long long)st.upstream_errors, (unsigned long long)st.upstream_timeouts,
            (unsigned long long)st.upstream_queued, (unsigned long long)st.upstream_queue_timeouts,
            (unsigned long long)a->ctl->snap->generation);
    if (n >= cap)
        return cap;
    rw_filters_stats fs = {0};
    rw_server_filter_stats(a->ctl->server, &fs);
    n += (size_t)snprintf(
        buf + n, cap - n,
        "# HELP ringway_jwt_verified_total Tokens whose signature was verified.\n"
        "# TYPE ringway_jwt_verified_total counter\nringway_jwt_verified_total %llu\n"
        "# HELP ringway_jwt_cache_hits_total Tokens accepted from the verified-token cache.\n"
        "# TYPE ringway_jwt_cache_hits_total counter\nringway_jwt_cache_hits_total %llu\n"
        "# HELP ringway_auth_rejected_total Requests refused by authentication (401).\n"
        "# TYPE ringway_auth_rejected_total counter\n"
        "ringway_auth_rejected_total{filter=\"jwt\"} %llu\nringway_auth_rejected_total{filter=\"key_auth\"} %llu\n"
        "# HELP ringway_acl_denied_total Requests refused by an ACL (403).\n"
        "# TYPE ringway_acl_denied_total counter\nringway_acl_denied_total %llu\n"
        "# HELP ringway_ratelimit_limited_total Requests refused by a rate limit (429).\n"
        "# TYPE ringway_ratelimit_limited_total counter\nringway_ratelimit_limited_total %llu\n"
        "# HELP ringway_ratelimit_redis_fallback_total Global-limit decisions taken while Redis was down.\n"
        "# TYPE ringway_ratelimit_redis_fallback_total counter\nringway_ratelimit_redis_fallback_total %llu\n",
        (unsigned long long)fs.jwt_verified, (unsigned long long)fs.jwt_cache_hits,
        (unsigned long long)fs.jwt_rejected, (unsigned long long)fs.key_rejected, (unsigned long long)fs.acl_denied,
        (unsigned long long)fs.rl_limited, (unsigned long long)fs.rl_redis_fallback);
    rw_rl_sync_stats rs;
    if (n < cap && rw_control_redis_stats(&rs))
        n += (size_t)snprintf(
            buf + n, cap - n,
            "# HELP ringway_redis_up Whether the Redis sync of global limits works (1) or not (0).\n"
            "# TYPE ringway_redis_up gauge\nringway_redis_up %d\n"
            "# HELP ringway_redis_sync_rounds_total Completed Redis sync round trips.\n"
            "# TYPE ringway_redis_sync_rounds_total counter\nringway_redis_sync_rounds_total %llu\n"
            "# HELP ringway_redis_sync_failures_total Failed Redis connects or round trips.\n"
            "# TYPE ringway_redis_sync_failures_total counter\nringway_redis_sync_failures_total %llu\n"
            "# HELP ringway_redis_sync_last_round_seconds Duration of the last sync round trip.\n"
            "# TYPE ringway_redis_sync_last_round_seconds gauge\nringway_redis_sync_last_round_seconds %.6f\n",
            rs.up ? 1 : 0, (unsigned long long)rs.rounds, (unsigned long long)rs.failures,
            (double)rs.last_round_us / 1e6);
    return n < cap ? n : cap;
}

void rw__admin_accept(rw_admin *a)
{
    int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd == -1)
        return;
    char req[4096];
    size_t len = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (len < sizeof(req) - 1) {
        ssize_t r = recv(fd, req + len, sizeof(req) - 1 - len, 0);
        if (r > 0) {
            len += (size_t)r;
            req[len] = '\0';
            if (strstr(req, "\r\n\r\n") != NULL)
                break;
            continue;
        }
        if (r == -1 && (errno == EAGAIN || errno == EINTR) && poll(&p, 1, ADMIN_TIMEOUT_MS) > 0)
            continue;
        close(fd);
        return;
    }
    req[len] = '\0';
    char method[8] = "", path[256] = "";
    if (sscanf(req, "%7s %255s", method, path) != 2) {
        reply(fd, 400, "text/plain", "bad request\n", 12);
        close(fd);
        return;
    }
    char *q = strchr(path, '?');
    if (q != NULL)
        *q = '\0';
    static char body[16384];
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (get && (strcmp(path, "/status") == 0 || strcmp(path, "/") == 0)) {
        size_t n = status_json(a, body, sizeof(body));
        n = status_per_worker(a, body, n, sizeof(body));
        reply(fd, 200, "application/json", body, n);
    } else if (get && strcmp(path, "/metrics") == 0) {
        size_t n = metrics_text(a, body, sizeof(body));
        reply(fd, 200, "text/plain; version=0.0.4", body, n);
    } else if (get && strcmp(path, "/health") == 0) {
        reply(fd, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
    } else if (get && strcmp(path, "/ready") == 0) {
        bool ready = rw_server_ready(a->ctl->server);
        reply(fd, ready ? 200 : 503, "application/json", ready ? "{\"status\":\"ok\"}\n" : "{\"status\":\"starting\"}\n",
              ready ? 16 : 22);
    } else if (strcmp(method, "POST") == 0 && strcmp(path, "/reload") == 0) {
        char msg[1280];
        int rc = rw__control_reload(a->ctl, msg, sizeof(msg));
        int n = snprintf(body, sizeof(body), "{\"ok\":%s,\"message\":\"", rc == 0 ? "true" : "false");
        for (const char *m = msg; *m && n < (int)sizeof(body) - 8; m++) {
            if (*m == '"' || *m == '\\')
                body[n++] = '\\';
            body[n++] = (*m >= 0x20) ? *m : ' ';
        }
        n += snprintf(body + n, sizeof(body) - (size_t)n, "\"}\n");
        reply(fd, rc == 0 ? 200 : 400, "application/json", body, (size_t)n);
    } else if (strcmp(path, "/reload") == 0 || strcmp(path, "/status") == 0 || strcmp(path, "/metrics") == 0) {
        reply(fd, 405, "application/json", "{\"error\":\"method not allowed\"}\n", 31);
    } else {
        reply(fd, 404, "application/json", "{\"error\":\"not found\"}\n", 22);
    }
    close(fd);
}
