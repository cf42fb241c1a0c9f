/* admin.c - the admin API on its own port (--admin), served by the control
 * thread: GET /status, /metrics, /health, /ready, /config; POST /reload.
 *
 * Never blocking: sockets are non-blocking and the control thread's poll
 * loop drives them (rw__admin_pollfds / rw__admin_events), so a slow or
 * hostile admin client never delays signals, reload or drain. Requests are
 * parsed with the proxy's HTTP/1 parser; responses follow the one
 * persistence rule (rw_http_persist). Each connection has deadlines: the
 * request head within ADMIN_HEAD_MS of its first byte (or of the previous
 * response), the response written within ADMIN_WRITE_MS, keep-alive idle
 * for ADMIN_IDLE_MS. At most RW_ADMIN_MAX_CONNS connections: a new one
 * over the cap evicts the oldest that is still reading a head. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>

#include <openssl/mem.h>

#include "admin_int.h"
#include "ringway/tls.h"
#include "ringway/filters.h"
#include "ringway/alog.h"
#include "ringway/health.h"
#include "ringway/rstats.h"
#include "ringway/rl_global.h"
#include "ringway/log.h"
#include "rw_version.h"

#define ADMIN_HEAD_MS 5000
#define ADMIN_WRITE_MS 10000
#define ADMIN_IDLE_MS 30000

static void set_nonblock(int fd)
{
    int fl = fd >= 0 ? fcntl(fd, F_GETFL) : -1;
    if (fl != -1)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* True when the listening socket fd is bound to 127.0.0.0/8 or ::1 (or a
 * v4-mapped loopback address). */
static bool bound_to_loopback(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return false;
    if (ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
    }
    return false;
}

void rw__admin_init(rw_admin *a, rw_control_opts *ctl, int fd, int mfd)
{
    memset(a, 0, sizeof(*a));
    a->ctl = ctl;
    a->fd = fd;
    a->mfd = mfd;
    a->started = time(NULL);
    set_nonblock(fd);
    set_nonblock(mfd);
    a->loopback = bound_to_loopback(fd);
    if (fd >= 0 && !a->loopback && ctl->snap->cfg->admin_token == NULL)
        rw_log_warn(
            "the admin port %s is not on loopback and has no token (admin.token_env): POST /reload is "
            "refused there; read-only endpoints answer anyone who reaches it (or use metrics_listen)",
            ctl->snap->cfg->admin.text);
    for (int i = 0; i < RW_ADMIN_MAX_CONNS; i++)
        a->conns[i].fd = -1;
}

/* May this request change state (POST /reload)? 0 when it may, else the
 * status to refuse it with (message in *why). With a token configured the
 * request must carry it as a bearer token (compared in constant time),
 * wherever the port listens; without one, only a loopback admin port takes
 * changes. */
static int authorize_change(const rw_admin *a, const rw_admin_conn *c, const rw_http_request *rq,
                            const char **why)
{
    const char *token = a->ctl->snap->cfg->admin_token;
    if (c->read_only) {
        *why = "{\"error\":\"read-only listener\"}\n";
        return 403;
    }
    if (token == NULL) {
        if (a->loopback)
            return 0;
        *why = "{\"error\":\"this admin port is not on loopback: set admin.token_env to allow changes\"}\n";
        return 403;
    }
    const rw_http_header *h = rw_http_find_header(rq->headers, rq->nheaders, "authorization");
    size_t tl = strlen(token);
    if (h != NULL && h->value.len == 7 + tl && strncasecmp(h->value.p, "bearer ", 7) == 0 &&
        CRYPTO_memcmp(h->value.p + 7, token, tl) == 0)
        return 0;
    *why = "{\"error\":\"a bearer token is required\"}\n";
    return 401;
}

static const char *state_name(const rw_admin *a)
{
    return a->state == RW_ADMIN_DRAINING   ? "draining"
           : a->state == RW_ADMIN_SHUTTING ? "shutting_down"
                                           : "running";
}

static size_t status_json(rw_admin *a, char *buf, size_t cap)
{
    rw_worker_stats st;
    rw_server_stats(a->ctl->server, &st);
    const rw_snapshot *snap = a->ctl->snap;
    return (size_t)snprintf(
        buf, cap,
        "{\"version\":\"%s\",\"commit\":\"%s\",\"config\":\"%s\",\"generation\":%llu,\"workers\":%d,"
        "\"io\":\"%s\",\"state\":\"%s\",\"ready\":%s,"
        "\"uptime_s\":%lld,\"routes\":%zu,\"services\":%zu,"
        "\"connections\":{\"accepted\":%llu,\"active\":%llu},"
        "\"requests\":%llu,\"responses\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu},"
        "\"bad_requests\":%llu,\"connections_rejected\":{\"max_conns\":%llu},"
        "\"upstream\":{\"connects\":%llu,\"reuses\":%llu,\"errors\":%llu,\"timeouts\":%llu,"
        "\"retries\":%llu,\"retry_budget_exhausted\":%llu,\"overflow\":%llu}}\n",
        RW_VERSION, RW_COMMIT, snap->cfg->source, (unsigned long long)snap->generation,
        rw_server_nworkers(a->ctl->server),
        rw_server_backend(a->ctl->server) == RW_BACKEND_URING ? "io_uring" : "epoll", state_name(a),
        rw_server_ready(a->ctl->server) ? "true" : "false", (long long)(time(NULL) - a->started),
        snap->cfg->nroutes, snap->cfg->nservices, (unsigned long long)st.accepted,
        (unsigned long long)st.active_conns, (unsigned long long)st.requests,
        (unsigned long long)st.responses[1], (unsigned long long)st.responses[2],
        (unsigned long long)st.responses[3], (unsigned long long)st.responses[4],
        (unsigned long long)st.responses[5], (unsigned long long)st.bad_requests,
        (unsigned long long)st.conns_rejected_max, (unsigned long long)st.upstream_connects,
        (unsigned long long)st.upstream_reuses, (unsigned long long)st.upstream_errors,
        (unsigned long long)st.upstream_timeouts, (unsigned long long)st.upstream_retries,
        (unsigned long long)st.upstream_retry_budget_exhausted, (unsigned long long)st.upstream_overflow);
}

/* Appends the "upstreams" member (health.h) before the closing brace. */
static size_t status_upstreams(rw_admin *a, char *buf, size_t n, size_t cap)
{
    if (n < 3 || n >= cap)
        return n;
    n -= 2; /* drop "}\n" */
    buf[n++] = ',';
    n += rw_health_status_json(a->ctl->snap, buf + n, cap - n);
    if (n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "}\n");
    return n < cap ? n : cap;
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
        n += (size_t)snprintf(buf + n, cap - n,
                              "%s{\"id\":%d,\"accepted\":%llu,\"active\":%llu,\"requests\":%llu}",
                              i ? "," : "", i, (unsigned long long)ws.accepted,
                              (unsigned long long)ws.active_conns, (unsigned long long)ws.requests);
    }
    if (n < cap)
        n += (size_t)snprintf(buf + n, cap - n, "]}\n");
    return n < cap ? n : cap;
}

/* The standard process_* series (Prometheus client conventions), read from
 * /proc at scrape time: start time, CPU, memory, file descriptors. */
static size_t process_metrics(char *buf, size_t cap)
{
    static long ticks, page;
    if (ticks == 0) {
        ticks = sysconf(_SC_CLK_TCK);
        page = sysconf(_SC_PAGESIZE);
    }
    unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
    long long rss = 0;
    char stat[1024];
    FILE *f = fopen("/proc/self/stat", "re");
    size_t len = f != NULL ? fread(stat, 1, sizeof(stat) - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    stat[len] = '\0';
    const char *p = strrchr(stat, ')'); /* the command name may hold spaces */
    if (p == NULL ||
        sscanf(p + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %lld",
               &utime, &stime, &start, &vsize, &rss) != 5)
        return 0;
    double boot = 0;
    f = fopen("/proc/stat", "re");
    char line[256];
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "btime %lf", &boot) == 1)
            break;
    if (f != NULL)
        fclose(f);
    long fds = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
        fds += e->d_name[0] != '.';
    if (d != NULL)
        closedir(d);
    struct rlimit rl;
    long long maxfds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (long long)rl.rlim_cur : -1;
    return (size_t)snprintf(
        buf, cap,
        "# HELP process_cpu_seconds_total User and system CPU time spent, in seconds.\n"
        "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n"
        "# HELP process_start_time_seconds Start time of the process since the Unix epoch, in seconds.\n"
        "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n"
        "# HELP process_resident_memory_bytes Resident memory size, in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %lld\n"
        "# HELP process_virtual_memory_bytes Virtual memory size, in bytes.\n"
        "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n"
        "# HELP process_open_fds Open file descriptors.\n"
        "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n"
        "# HELP process_max_fds The open file descriptor limit.\n"
        "# TYPE process_max_fds gauge\nprocess_max_fds %lld\n",
        (double)(utime + stime) / (double)ticks, boot + (double)start / (double)ticks, rss * page, vsize, fds,
        maxfds);
}

static size_t metrics_text(rw_admin *a, char *buf, size_t cap)
{
    rw_worker_stats st;
    rw_server_stats(a->ctl->server, &st);
    size_t n = (size_t)snprintf(
        buf, cap,
        "# HELP ringway_build_info Version, commit and I/O backend of the running ringway.\n"
        "# TYPE ringway_build_info gauge\nringway_build_info{version=\"%s\",commit=\"%s\",io=\"%s\"} 1\n"
        "# HELP ringway_state What the process is doing (1 for the current state).\n"
        "# TYPE ringway_state gauge\nringway_state{state=\"running\"} %d\n"
        "ringway_state{state=\"shutting_down\"} %d\nringway_state{state=\"draining\"} %d\n"
        "# HELP ringway_connections_rejected_total Client connections refused, by reason.\n"
        "# TYPE ringway_connections_rejected_total counter\n"
        "ringway_connections_rejected_total{reason=\"max_conns\"} %llu\n"
        "# HELP ringway_admin_connections_evicted_total Admin connections closed to make room (connection "
        "cap).\n"
        "# TYPE ringway_admin_connections_evicted_total counter\nringway_admin_connections_evicted_total "
        "%llu\n"
        "# HELP ringway_connections_accepted_total Client connections accepted.\n"
        "# TYPE ringway_connections_accepted_total counter\nringway_connections_accepted_total %llu\n"
        "# HELP ringway_connections_active Client connections open now.\n"
        "# TYPE ringway_connections_active gauge\nringway_connections_active %llu\n"
        "# HELP ringway_requests_parsed_total Request heads parsed (answered or not yet).\n"
        "# TYPE ringway_requests_parsed_total counter\nringway_requests_parsed_total %llu\n"
        "# HELP ringway_bad_requests_total Requests rejected as malformed.\n"
        "# TYPE ringway_bad_requests_total counter\nringway_bad_requests_total %llu\n"
        "# HELP ringway_responses_total Responses by status class.\n"
        "# TYPE ringway_responses_total counter\n",
        RW_VERSION, RW_COMMIT, rw_server_backend(a->ctl->server) == RW_BACKEND_URING ? "io_uring" : "epoll",
        a->state == RW_ADMIN_RUNNING, a->state == RW_ADMIN_SHUTTING, a->state == RW_ADMIN_DRAINING,
        (unsigned long long)st.conns_rejected_max, (unsigned long long)a->evicted,
        (unsigned long long)st.accepted, (unsigned long long)st.active_conns, (unsigned long long)st.requests,
        (unsigned long long)st.bad_requests);
    rw_tls_stats ts;
    rw_tls_stats_get(&ts);
    if (n < cap)
        n += (size_t)snprintf(
            buf + n, cap - n,
            "# HELP ringway_tls_handshakes_total TLS handshakes on client connections, by result.\n"
            "# TYPE ringway_tls_handshakes_total counter\n"
            "ringway_tls_handshakes_total{result=\"full\"} %llu\n"
            "ringway_tls_handshakes_total{result=\"resumed\"} %llu\n"
            "ringway_tls_handshakes_total{result=\"failed\"} %llu\n"
            "# HELP ringway_tls_certificate_reloads_total Certificate sets re-read from changed files, by "
            "result (failed: the old certificates stay).\n"
            "# TYPE ringway_tls_certificate_reloads_total counter\n"
            "ringway_tls_certificate_reloads_total{result=\"ok\"} %llu\n"
            "ringway_tls_certificate_reloads_total{result=\"failed\"} %llu\n"
            "# HELP ringway_tls_upstream_handshakes_total TLS handshakes on upstream connections "
            "(services[].tls), by result (failed: verification included).\n"
            "# TYPE ringway_tls_upstream_handshakes_total counter\n"
            "ringway_tls_upstream_handshakes_total{result=\"full\"} %llu\n"
            "ringway_tls_upstream_handshakes_total{result=\"resumed\"} %llu\n"
            "ringway_tls_upstream_handshakes_total{result=\"failed\"} %llu\n",
            (unsigned long long)(ts.handshakes - ts.resumed), (unsigned long long)ts.resumed,
            (unsigned long long)ts.handshake_errors, (unsigned long long)ts.cert_reloads,
            (unsigned long long)ts.cert_reload_errors, (unsigned long long)(ts.up_handshakes - ts.up_resumed),
            (unsigned long long)ts.up_resumed, (unsigned long long)ts.up_handshake_errors);
    if (n < cap)
        n += rw_tls_suite_metrics(buf + n, cap - n);
    uint64_t rl_ok, rl_failed;
    time_t rl_last;
    rw__control_reload_stats(&rl_ok, &rl_failed, &rl_last);
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
            "# HELP ringway_upstream_queued_total Requests that waited for an upstream connection slot "
            "(max_conns).\n"
            "# TYPE ringway_upstream_queued_total counter\nringway_upstream_queued_total %llu\n"
            "# HELP ringway_upstream_queue_timeouts_total Requests answered 503 after waiting timeouts.queue "
            "for a slot.\n"
            "# TYPE ringway_upstream_queue_timeouts_total counter\nringway_upstream_queue_timeouts_total "
            "%llu\n"
            "# HELP ringway_upstream_retries_total Upstream attempts after the first (retries).\n"
            "# TYPE ringway_upstream_retries_total counter\nringway_upstream_retries_total %llu\n"
            "# HELP ringway_upstream_retry_budget_exhausted_total Retries not made because the retry budget "
            "was spent.\n"
            "# TYPE ringway_upstream_retry_budget_exhausted_total counter\n"
            "ringway_upstream_retry_budget_exhausted_total %llu\n"
            "# HELP ringway_upstream_overflow_total Requests answered 503 because every instance was at "
            "max_requests.\n"
            "# TYPE ringway_upstream_overflow_total counter\nringway_upstream_overflow_total %llu\n"
            "# HELP ringway_config_reloads_total Config reloads (SIGHUP, POST /reload, a watched file), by "
            "result.\n"
            "# TYPE ringway_config_reloads_total counter\nringway_config_reloads_total{result=\"success\"} "
            "%llu\n"
            "ringway_config_reloads_total{result=\"error\"} %llu\n"
            "# HELP ringway_config_last_reload_success_timestamp_seconds When the running config was "
            "loaded.\n"
            "# TYPE ringway_config_last_reload_success_timestamp_seconds gauge\n"
            "ringway_config_last_reload_success_timestamp_seconds %lld\n"
            "# HELP ringway_config_generation Generation of the running configuration.\n"
            "# TYPE ringway_config_generation gauge\nringway_config_generation %llu\n",
            (unsigned long long)st.upstream_connects, (unsigned long long)st.upstream_reuses,
            (unsigned long long)st.upstream_errors, (unsigned long long)st.upstream_timeouts,
            (unsigned long long)st.upstream_queued, (unsigned long long)st.upstream_queue_timeouts,
            (unsigned long long)st.upstream_retries, (unsigned long long)st.upstream_retry_budget_exhausted,
            (unsigned long long)st.upstream_overflow, (unsigned long long)rl_ok,
            (unsigned long long)rl_failed, (long long)rl_last, (unsigned long long)a->ctl->snap->generation);
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
        "# HELP ringway_ratelimit_redis_fallback_total Global-limit decisions taken while Redis was down.\n"
        "# TYPE ringway_ratelimit_redis_fallback_total counter\nringway_ratelimit_redis_fallback_total "
        "%llu\n",
        (unsigned long long)fs.jwt_verified, (unsigned long long)fs.jwt_cache_hits,
        (unsigned long long)fs.rl_redis_fallback);
    if (n < cap)
        n += rw_rstats_limit_metrics(buf + n, cap - n);
    rw_rl_sync_stats rs;
    if (n < cap && rw_rl_global_stats(&rs))
        n += (size_t)snprintf(
            buf + n, cap - n,
            "# HELP ringway_redis_up Whether the Redis sync of global limits works (1) or not (0).\n"
            "# TYPE ringway_redis_up gauge\nringway_redis_up %d\n"
            "# HELP ringway_redis_sync_rounds_total Completed Redis sync round trips.\n"
            "# TYPE ringway_redis_sync_rounds_total counter\nringway_redis_sync_rounds_total %llu\n"
            "# HELP ringway_redis_sync_failures_total Failed Redis connects or round trips.\n"
            "# TYPE ringway_redis_sync_failures_total counter\nringway_redis_sync_failures_total %llu\n"
            "# HELP ringway_redis_sync_last_round_seconds Duration of the last sync round trip.\n"
            "# TYPE ringway_redis_sync_last_round_seconds gauge\nringway_redis_sync_last_round_seconds "
            "%.6f\n",
            rs.up ? 1 : 0, (unsigned long long)rs.rounds, (unsigned long long)rs.failures,
            (double)rs.last_round_us / 1e6);
    if (n + 1 < cap)
        n += rw_health_metrics(a->ctl->snap, buf + n, cap - n);
    if (n < cap)
        n += rw_rstats_metrics(a->ctl->snap->cfg, a->ctl->snap->route_stats, a->ctl->snap->svc_stats, buf + n,
                               cap - n);
    if (n < cap)
        n += (size_t)snprintf(
            buf + n, cap - n,
            "# HELP ringway_access_log_lines_total Access log lines written to the sink.\n"
            "# TYPE ringway_access_log_lines_total counter\nringway_access_log_lines_total %llu\n"
            "# HELP ringway_access_log_dropped_total Access log lines dropped because a worker's buffer was "
            "full (a slow sink).\n"
            "# TYPE ringway_access_log_dropped_total counter\nringway_access_log_dropped_total %llu\n",
            (unsigned long long)rw_alog_written(), (unsigned long long)rw_alog_dropped());
    if (n < cap)
        n += process_metrics(buf + n, cap - n);
    return n < cap ? n : cap;
}

/* ---- responses ---- */

/* Queues a response on c: head (persistence by the one rule) and, unless
 * head_only, the body. */
static void respond(rw_admin_conn *c, const rw_http_request *rq, bool keep, int status, const char *ctype,
                    const char *extra, const char *body, size_t blen, bool head_only, uint64_t now)
{
    int mode = rw_http_persist(keep, rq != NULL ? rq->minor : 0);
    rw_str conn = rw_http_persist_line(mode);
    size_t cap = 512 + (extra != NULL ? strlen(extra) : 0) + blen;
    char *out = malloc(cap);
    if (out == NULL) {
        c->close_after = true;
        c->writing = false;
        return;
    }
    int n = snprintf(
        out, cap,
        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n%s%.*s\r\n",
        status, rw_http_reason(status), ctype, blen, extra != NULL ? extra : "", (int)conn.len, conn.p);
    size_t len = (size_t)n;
    if (!head_only) {
        memcpy(out + len, body, blen);
        len += blen;
    }
    free(c->out);
    c->out = out;
    c->out_len = len;
    c->out_off = 0;
    c->writing = true;
    c->close_after = mode == RW_PERSIST_CLOSE;
    c->deadline = now + ADMIN_WRITE_MS;
}

static void respond_json(rw_admin_conn *c, const rw_http_request *rq, bool keep, int status, const char *json,
                         bool head_only, uint64_t now)
{
    respond(c, rq, keep, status, "application/json", NULL, json, strlen(json), head_only, now);
}

/* Answers one parsed request into c's output. */
static void serve(rw_admin *a, rw_admin_conn *c, const rw_http_request *rq, bool keep, uint64_t now)
{
    static char body[1 << 20]; /* pages are touched only as far as a document goes */
    char path[256];
    size_t plen = rq->path.len < sizeof(path) ? rq->path.len : sizeof(path) - 1;
    memcpy(path, rq->path.p, plen);
    path[plen] = '\0';
    bool get = rq->method == RW_METHOD_GET || rq->method == RW_METHOD_HEAD;
    bool head = rq->method == RW_METHOD_HEAD;
    int st;
    const char *why;
    bool known = strcmp(path, "/status") == 0 || strcmp(path, "/") == 0 || strcmp(path, "/metrics") == 0 ||
                 strcmp(path, "/health") == 0 || strcmp(path, "/ready") == 0 ||
                 strcmp(path, "/reload") == 0 || strcmp(path, "/dashboard") == 0;
    if (get && (strcmp(path, "/status") == 0 || strcmp(path, "/") == 0)) {
        size_t n = status_json(a, body, sizeof(body));
        n = status_upstreams(a, body, n, sizeof(body));
        n = status_per_worker(a, body, n, sizeof(body));
        respond(c, rq, keep, 200, "application/json", NULL, body, n, head, now);
    } else if (get && strcmp(path, "/metrics") == 0) {
        size_t n = metrics_text(a, body, sizeof(body));
        respond(c, rq, keep, 200, "text/plain; version=0.0.4", NULL, body, n, head, now);
    } else if (get && strcmp(path, "/dashboard") == 0) {
        respond(c, rq, keep, 200, "text/html; charset=utf-8",
                "Content-Security-Policy: default-src 'self'; script-src 'unsafe-inline'; style-src "
                "'unsafe-inline'\r\n",
                rw_dashboard_html, rw_dashboard_html_len, head, now);
    } else if (get && strcmp(path, "/health") == 0) {
        /* Liveness: every serving worker's loop turned within RW_STALL_MS. */
        uint64_t age = 0;
        int stuck = rw_server_stalled(a->ctl->server, rw_mono_ms(), RW_STALL_MS, &age);
        if (stuck < 0) {
            respond_json(c, rq, keep, 200, "{\"status\":\"ok\"}\n", head, now);
        } else {
            rw_log_warn("liveness: worker %d has not turned its loop for %llu ms: /health answers 503", stuck,
                        (unsigned long long)age);
            snprintf(body, sizeof(body), "{\"status\":\"stalled\",\"worker\":%d,\"stalled_ms\":%llu}\n",
                     stuck, (unsigned long long)age);
            respond_json(c, rq, keep, 503, body, head, now);
        }
    } else if (get && strcmp(path, "/ready") == 0) {
        bool ready = rw_server_ready(a->ctl->server);
        const char *no =
            a->state != RW_ADMIN_RUNNING ? "{\"status\":\"shutting_down\"}\n" : "{\"status\":\"starting\"}\n";
        respond_json(c, rq, keep, ready ? 200 : 503, ready ? "{\"status\":\"ok\"}\n" : no, head, now);
    } else if (rq->method == RW_METHOD_POST && strcmp(path, "/reload") == 0 &&
               (st = authorize_change(a, c, rq, &why)) != 0) {
        respond(c, rq, keep, st, "application/json",
                st == 401 ? "WWW-Authenticate: Bearer realm=\"ringway-admin\"\r\n" : NULL, why, strlen(why),
                false, now);
    } else if (rq->method == RW_METHOD_POST && strcmp(path, "/reload") == 0) {
        char msg[1280];
        int rc = a->state != RW_ADMIN_RUNNING
                     ? (snprintf(msg, sizeof(msg), "shutting down: not reloading"), -1)
                     : rw__control_reload(a->ctl, msg, sizeof(msg));
        int n = snprintf(body, sizeof(body), "{\"ok\":%s,\"message\":\"", rc == 0 ? "true" : "false");
        for (const char *m = msg; *m && n < (int)sizeof(body) - 8; m++) {
            if (*m == '"' || *m == '\\')
                body[n++] = '\\';
            body[n++] = (*m >= 0x20) ? *m : ' ';
        }
        n += snprintf(body + n, sizeof(body) - (size_t)n, "\"}\n");
        respond(c, rq, keep,
                rc == 0                        ? 200
                : a->state != RW_ADMIN_RUNNING ? 503
                                               : 400,
                "application/json", NULL, body, (size_t)n, false, now);
    } else if (known) {
        const char *allow = strcmp(path, "/reload") == 0 ? "Allow: POST\r\n" : "Allow: GET, HEAD\r\n";
        static const char msg[] = "{\"error\":\"method not allowed\"}\n";
        respond(c, rq, keep, 405, "application/json", allow, msg, sizeof(msg) - 1, head, now);
    } else {
        respond_json(c, rq, keep, 404, "{\"error\":\"not found\"}\n", head, now);
    }
}

/* ---- connections ---- */

static void conn_close(rw_admin_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->out);
    c->out = NULL;
    c->fd = -1;
    c->writing = false;
    c->close_after = false;
    c->in_len = 0;
    c->out_len = c->out_off = 0;
}

/* Parses what c has read; queues a response when a head is complete. */
static void conn_parse(rw_admin *a, rw_admin_conn *c, uint64_t now)
{
    if (c->in_len == 0 || c->writing)
        return;
    rw_http_request rq;
    ssize_t r = rw_http_parse_request(c->in, c->in_len, NULL, &rq);
    if (r == RW_HTTP_INCOMPLETE) {
        if (c->in_len >= sizeof(c->in))
            respond_json(c, NULL, false, 431, "{\"error\":\"request header fields too large\"}\n", false,
                         now);
        return;
    }
    if (r < 0) {
        int st = (int)-r;
        respond_json(c, NULL, false, st,
                     st == 501 ? "{\"error\":\"not implemented\"}\n" : "{\"error\":\"bad request\"}\n", false,
                     now);
        return;
    }
    /* Request bodies mean nothing here: one that is announced makes the
     * connection close after the answer instead of being read. */
    bool keep = rq.keep_alive && rq.body == RW_BODY_NONE && a->state != RW_ADMIN_DRAINING;
    serve(a, c, &rq, keep, now);
    /* Keep what follows the head (a pipelined request) for later. */
    size_t used = (size_t)r;
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= (uint32_t)used;
}

static void conn_write(rw_admin *a, rw_admin_conn *c, uint64_t now)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            c->out_off += (size_t)w;
            continue;
        }
        if (w == -1 && (errno == EAGAIN || errno == EINTR))
            return; /* poll says when to go on */
        conn_close(c);
        return;
    }
    free(c->out);
    c->out = NULL;
    c->writing = false;
    if (c->close_after) {
        shutdown(c->fd, SHUT_WR);
        conn_close(c);
        return;
    }
    c->since = now;
    c->deadline = now + (c->in_len > 0 ? ADMIN_HEAD_MS : ADMIN_IDLE_MS);
    conn_parse(a, c, now); /* a pipelined request already here */
    if (c->writing)
        conn_write(a, c, now);
}

static void conn_read(rw_admin *a, rw_admin_conn *c, uint64_t now)
{
    for (;;) {
        if (c->in_len >= sizeof(c->in))
            break;
        ssize_t r = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
        if (r > 0) {
            if (c->in_len == 0 && !c->writing) {
                c->since = now;
                c->deadline = now + ADMIN_HEAD_MS; /* the whole head, however it trickles in */
            }
            c->in_len += (uint32_t)r;
            continue;
        }
        if (r == -1 && (errno == EAGAIN || errno == EINTR))
            break;
        conn_close(c); /* EOF or error: nothing to answer */
        return;
    }
    conn_parse(a, c, now);
    if (c->writing)
        conn_write(a, c, now);
}

/* A free slot; with none, the oldest connection still reading a head gives
 * its slot up (so a flood of slow clients cannot lock probes out). */
static rw_admin_conn *conn_slot(rw_admin *a)
{
    rw_admin_conn *victim = NULL;
    for (int i = 0; i < RW_ADMIN_MAX_CONNS; i++) {
        rw_admin_conn *c = &a->conns[i];
        if (c->fd < 0)
            return c;
        if (!c->writing && (victim == NULL || c->since < victim->since))
            victim = c;
    }
    if (victim != NULL) {
        a->evicted++;
        conn_close(victim);
    }
    return victim;
}

static void admin_accept(rw_admin *a, int lfd, bool read_only, uint64_t now)
{
    for (int k = 0; k < 16; k++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1)
            return;
        rw_admin_conn *c = conn_slot(a);
        if (c == NULL) {
            close(fd); /* every slot is writing a response */
            continue;
        }
        c->fd = fd;
        c->read_only = read_only;
        c->in_len = 0;
        c->writing = false;
        c->close_after = false;
        c->since = now;
        c->deadline = now + ADMIN_HEAD_MS;
    }
}

void rw__admin_stop_listening(rw_admin *a)
{
    if (a->fd >= 0)
        close(a->fd);
    if (a->mfd >= 0)
        close(a->mfd);
    a->fd = -1;
    a->mfd = -1;
    a->ctl->admin_fd = -1;
    a->ctl->metrics_fd = -1;
}

int rw__admin_pollfds(rw_admin *a, struct pollfd *pfd, int cap)
{
    int n = 0;
    if (a->fd >= 0 && n < cap)
        pfd[n++] = (struct pollfd){.fd = a->fd, .events = POLLIN};
    if (a->mfd >= 0 && n < cap)
        pfd[n++] = (struct pollfd){.fd = a->mfd, .events = POLLIN};
    for (int i = 0; i < RW_ADMIN_MAX_CONNS && n < cap; i++) {
        rw_admin_conn *c = &a->conns[i];
        if (c->fd >= 0)
            pfd[n++] = (struct pollfd){.fd = c->fd, .events = c->writing ? POLLOUT : POLLIN};
    }
    return n;
}

void rw__admin_events(rw_admin *a, const struct pollfd *pfd, int n, uint64_t now)
{
    for (int k = 0; k < n; k++) {
        if (pfd[k].revents == 0)
            continue;
        if (pfd[k].fd == a->fd || pfd[k].fd == a->mfd) {
            admin_accept(a, pfd[k].fd, pfd[k].fd == a->mfd, now);
            continue;
        }
        for (int i = 0; i < RW_ADMIN_MAX_CONNS; i++) {
            rw_admin_conn *c = &a->conns[i];
            if (c->fd != pfd[k].fd)
                continue;
            if (c->writing)
                conn_write(a, c, now);
            else
                conn_read(a, c, now);
            break;
        }
    }
    for (int i = 0; i < RW_ADMIN_MAX_CONNS; i++) {
        rw_admin_conn *c = &a->conns[i];
        if (c->fd < 0 || now < c->deadline)
            continue;
        if (!c->writing && c->in_len > 0) {
            /* A head that did not arrive in time: 408, then close. */
            respond_json(c, NULL, false, 408, "{\"error\":\"request header timeout\"}\n", false, now);
            conn_write(a, c, now);
            if (c->fd >= 0 && c->writing)
                c->deadline = now + 1000; /* a short grace to take the 408 */
            continue;
        }
        conn_close(c); /* idle keep-alive, or a response nobody reads */
    }
}

int rw__admin_next_timeout(const rw_admin *a, uint64_t now)
{
    int best = -1;
    for (int i = 0; i < RW_ADMIN_MAX_CONNS; i++) {
        const rw_admin_conn *c = &a->conns[i];
        if (c->fd < 0)
            continue;
        int ms = c->deadline > now ? (int)RW_MIN(c->deadline - now, (uint64_t)INT32_MAX) : 0;
        if (best < 0 || ms < best)
            best = ms;
    }
    return best;
}

void rw__admin_close_all(rw_admin *a)
{
    for (int i = 0; i < RW_ADMIN_MAX_CONNS; i++)
        if (a->conns[i].fd >= 0)
            conn_close(&a->conns[i]);
}
