/* access.c - what an exchange leaves behind: its statistics (rstats.h: the
 * route's and the service's slots of this worker) and its access-log line
 * (alog.h carries it).
 *
 * The request's part (client, method, host, path, query, protocol, user
 * agent) is escaped into the exchange while its head is still readable
 * (rw__alog_begin); the rest (status, bytes, timings, route, service,
 * instance, consumer, attempts, rate limit, error, trace id) is added when
 * the exchange ends (rw__alog_end), straight into the worker's ring: no
 * allocation, no lock, no syscall. Requests answered below 400 are sampled
 * (access_log.sample) or left out (errors_only); answers of 400 and more and
 * requests without an answer are always logged. Formats: json (one object
 * per line, RFC 8259 strings) and text (one documented line). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proxy_int.h"
#include "ringway/tls.h"
#include "ringway/alog.h"
#include "ringway/jsonesc.h"
#include "ringway/rstats.h"

/* Escaped bytes kept of each request field: together (with the keys) they
 * fit alog_req, so the request's part of a line is always whole. */
#define CAP_SHORT 64
#define CAP_HOST 256
#define CAP_PATH 512
#define CAP_QUERY 384
#define CAP_UA 256

/* Why ringway answered itself (enum rw_local_reason): the access log's
 * error and the metrics' reason. */
static int local_reason(uint8_t err, int status)
{
    static const uint8_t by_err[RW_EXERR__COUNT] = {
        [RW_EXERR_CONNECT_REFUSED] = RW_LR_CONNECT_REFUSED,
        [RW_EXERR_CONNECT_FAILED] = RW_LR_CONNECT_FAILED,
        [RW_EXERR_CONNECT_TIMEOUT] = RW_LR_CONNECT_TIMEOUT,
        [RW_EXERR_FIRST_BYTE_TIMEOUT] = RW_LR_FIRST_BYTE_TIMEOUT,
        [RW_EXERR_TOTAL_TIMEOUT] = RW_LR_TOTAL_TIMEOUT,
        [RW_EXERR_QUEUE_TIMEOUT] = RW_LR_QUEUE_TIMEOUT,
        [RW_EXERR_UPSTREAM_RESET] = RW_LR_UPSTREAM_RESET,
        [RW_EXERR_INVALID_RESPONSE] = RW_LR_INVALID_RESPONSE,
        [RW_EXERR_OVERLOADED] = RW_LR_OVERLOADED,
        [RW_EXERR_NO_INSTANCE] = RW_LR_NO_INSTANCE,
        [RW_EXERR_CLIENT_CLOSED] = RW_LR_CLIENT_CLOSED,
        [RW_EXERR_TLS_VERIFY] = RW_LR_TLS_VERIFY_FAILED,
        [RW_EXERR_TLS_HANDSHAKE] = RW_LR_TLS_HANDSHAKE_FAILED,
    };
    if (err != RW_EXERR_NONE && err < RW_EXERR__COUNT)
        return by_err[err];
    switch (status) {
    case 400:
        return RW_LR_BAD_REQUEST;
    case 401:
        return RW_LR_AUTH;
    case 403:
        return RW_LR_ACL;
    case 404:
        return RW_LR_NO_ROUTE;
    case 408:
        return RW_LR_REQUEST_TIMEOUT;
    case 413:
        return RW_LR_BODY_TOO_LARGE;
    case 414:
    case 431:
        return RW_LR_HEADER_TOO_LARGE;
    case 429:
        return RW_LR_RATE_LIMITED;
    case 501:
        return RW_LR_NOT_IMPLEMENTED;
    case 502:
        return RW_LR_BAD_GATEWAY;
    case 503:
        return RW_LR_UNAVAILABLE;
    case 505:
        return RW_LR_VERSION;
    default:
        return RW_LR_OTHER;
    }
}

void rw__stats_count(rw_exchange *ex)
{
    rw_pworker *w = ex->c->w;
    const rw_snapshot *snap = ex->ur.ws != NULL ? ex->ur.ws->snap : w->ws->snap;
    int route =
        ex->route >= 0 && (size_t)ex->route < snap->cfg->nroutes ? ex->route : (int)snap->cfg->nroutes;
    rw_route_slot *rs = &snap->route_stats[route][w->id];
    int status = ex->resp_head_sent ? ex->status : 499;
    uint64_t dur = rw_loop_now(w->loop) - ex->start_ms;
    int cls = status >= 100 && status < 600 ? status / 100 : 0;
    rs->responses[cls]++;
    if (!ex->resp_head_sent)
        rs->local[RW_LR_CLIENT_CLOSED]++;
    else if (ex->local && (status >= 400 || ex->err_kind != RW_EXERR_NONE))
        rs->local[local_reason(ex->err_kind, status)]++;
    if (ex->auth_fail != RW_AF_NONE && ex->auth_fail < RW_AF__COUNT)
        rs->auth[ex->auth_fail]++;
    rs->hist[rw_hist_bucket(dur)]++;
    rs->sum_ms += dur;
    rs->bytes_in += ex->head_len + ex->req_total;
    rs->bytes_out += ex->bytes_out;
    if (ex->ur.svc >= 0 && ex->ur.ws != NULL && ex->tries > 0) {
        rw_svc_slot *ss = &snap->svc_stats[ex->ur.svc][w->id];
        if (ex->t_first_byte >= 0) {
            uint64_t fb = (uint64_t)ex->t_first_byte;
            ss->hist[rw_hist_bucket(fb)]++;
            ss->sum_ms += fb;
        }
    }
}

bool rw__alog_on(const rw_pworker *w)
{
    const char *p = w->ws->snap->cfg->access_log.path;
    return w->alog != NULL && p != NULL && !(p[0] == 'o' && strcmp(p, "off") == 0);
}

/* Appends s (n bytes) at *o: raw when fcap is 0, else JSON-escaped into at
 * most fcap bytes, always leaving 2 bytes for what closes the field. */
static inline __attribute__((always_inline)) void put(char *buf, size_t cap, size_t *o, const char *s,
                                                      size_t n, size_t fcap)
{
    if (*o >= cap)
        return;
    if (fcap == 0) {
        size_t k = n < cap - *o ? n : cap - *o;
        memcpy(buf + *o, s, k);
        *o += k;
        return;
    }
    if (cap - *o <= 2)
        return;
    size_t room = cap - *o - 2 < fcap ? cap - *o - 2 : fcap;
    *o += rw_json_escape(buf + *o, room, s, n, NULL);
}

static inline __attribute__((always_inline)) void puts_(char *buf, size_t cap, size_t *o, const char *s)
{
    put(buf, cap, o, s, strlen(s), 0);
}

/* A string literal, without strlen. */
#define PUTL(buf, cap, o, lit) put(buf, cap, o, lit, sizeof(lit) - 1, 0)

/* ,"name":"value" (escaped into at most fcap bytes), or ,"name":null for an
 * absent value; name is a literal. */
#define JSTR(buf, cap, o, name, s, n, present, fcap)                                                         \
    jstr(buf, cap, o, ",\"" name "\":", sizeof(",\"" name "\":") - 1, s, n, present, fcap)
static inline __attribute__((always_inline)) void jstr(char *buf, size_t cap, size_t *o, const char *key,
                                                       size_t klen, const char *s, size_t n, bool present,
                                                       size_t fcap)
{
    put(buf, cap, o, key, klen, 0);
    if (!present) {
        PUTL(buf, cap, o, "null");
        return;
    }
    PUTL(buf, cap, o, "\"");
    put(buf, cap, o, s, n, fcap);
    PUTL(buf, cap, o, "\"");
}

/* A decimal number, without printf. */
static void put_u64(char *buf, size_t cap, size_t *o, uint64_t v)
{
    char t[20];
    size_t n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    if (*o + n > cap)
        return;
    while (n > 0)
        buf[(*o)++] = t[--n];
}

void rw__alog_begin(rw_exchange *ex)
{
    rw_conn *c = ex->c;
    rw_pworker *w = c->w;
    ex->alog_len = 0;
    if (!rw__alog_on(w))
        return;
    const rw_http_request *rq = &ex->req;
    const rw_config *cfg = w->ws->snap->cfg;
    char *b = ex->alog_req;
    size_t cap = sizeof(ex->alog_req), o = 0;
    bool json = cfg->access_log.format == RW_ALOG_JSON;
    rw_ipaddr ip;
    rw_str client = cfg->ntrusted_proxies > 0 ? rw_client_ip(cfg, rq, c->peer, c->peer_len, &ip)
                                              : (rw_str){c->peer, c->peer_len};
    const rw_http_header *ua = rw_http_find_header(rq->headers, rq->nheaders, "user-agent");
    const char *method = rq->method_str.p != NULL ? rq->method_str.p : "";
    size_t mlen = rq->method_str.p != NULL ? rq->method_str.len : 0;
    const char *proto = rq->minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
    if (json) {
        JSTR(b, cap, &o, "client_ip", client.p, client.len, true, CAP_SHORT);
        JSTR(b, cap, &o, "method", method, mlen, true, 0); /* a token (the parser checked) */
        JSTR(b, cap, &o, "host", rq->host.p, rq->host.len, rq->host.len > 0, CAP_HOST);
        JSTR(b, cap, &o, "path", rq->path.p, rq->path.len, true, CAP_PATH);
        JSTR(b, cap, &o, "query", rq->query.p, rq->query.len, rq->query.len > 0, CAP_QUERY);
        JSTR(b, cap, &o, "protocol", proto, 8, true, 0);
        if (c->tr.kind == RW_TRANSPORT_TLS) { /* "TLSv1.3 TLS_AES_128_GCM_SHA256" */
            char tls[96];
            size_t tn = rw_tls_describe(&c->tr, tls, sizeof(tls));
            JSTR(b, cap, &o, "tls", tls, tn, tn > 0, 0);
        }
        JSTR(b, cap, &o, "user_agent", ua ? ua->value.p : NULL, ua ? ua->value.len : 0, ua != NULL, CAP_UA);
    } else {
        /* CLIENT "METHOD PATH?QUERY PROTO" "UA" */
        put(b, cap, &o, client.p, client.len, CAP_SHORT);
        puts_(b, cap, &o, " \"");
        put(b, cap, &o, method, mlen, CAP_SHORT);
        puts_(b, cap, &o, " ");
        put(b, cap, &o, rq->path.p, rq->path.len, CAP_PATH);
        if (rq->query.len > 0) {
            puts_(b, cap, &o, "?");
            put(b, cap, &o, rq->query.p, rq->query.len, CAP_QUERY);
        }
        puts_(b, cap, &o, " ");
        puts_(b, cap, &o, proto);
        puts_(b, cap, &o, "\" \"");
        if (ua != NULL)
            put(b, cap, &o, ua->value.p, ua->value.len, CAP_UA);
        puts_(b, cap, &o, "\"");
    }
    ex->alog_len = (uint16_t)(o < cap ? o : cap);
}

/* "2026-12-07T14:55:18.123Z" into out (25 bytes with the NUL). */
static void rfc3339_ms(rw_pworker *w, char *out)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != w->alog_sec) { /* once a second per worker */
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(w->alog_stamp, sizeof(w->alog_stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        w->alog_sec = ts.tv_sec;
    }
    int ms = (int)(ts.tv_nsec / 1000000) % 1000;
    memcpy(out, w->alog_stamp, 19);
    out[19] = '.';
    out[20] = (char)('0' + ms / 100);
    out[21] = (char)('0' + ms / 10 % 10);
    out[22] = (char)('0' + ms % 10);
    out[23] = 'Z';
    out[24] = '\0';
}

void rw__alog_end(rw_exchange *ex)
{
    rw_conn *c = ex->c;
    rw_pworker *w = c->w;
    if (!rw__alog_on(w))
        return;
    const rw_access_log_cfg *ac = &w->ws->snap->cfg->access_log;
    int status = ex->status;
    uint8_t err = ex->err_kind;
    if (!ex->resp_head_sent) {
        status = 499; /* nginx's "client closed request": the client left before an answer */
        err = RW_EXERR_CLIENT_CLOSED;
    }
    bool error = status >= 400 || err != RW_EXERR_NONE;
    if (!error) {
        if (ac->errors_only)
            return;
        if (ac->sample_ppm < 1000000) {
            w->rng = w->rng * 6364136223846793005ull + 1442695040888963407ull;
            if ((uint32_t)((w->rng >> 33) % 1000000u) >= ac->sample_ppm)
                return;
        }
    }
    /* The metrics' reason names; a respond route's or /health's answer below
     * 400 is configured, not an error. */
    const char *ename =
        err != RW_EXERR_NONE || (ex->local && status >= 400) ? rw_lr_names[local_reason(err, status)] : NULL;
    char *b = rw_alog_reserve(w->alog, 2048 + sizeof(ex->alog_req));
    if (b == NULL)
        return; /* full: dropped and counted */
    size_t cap = 2048 + sizeof(ex->alog_req), o = 0;
    char t[32];
    rfc3339_ms(w, t);
    const char *route = ex->rt != NULL ? ex->rt->name : NULL;
    const char *svc = ex->ur.svc_cfg != NULL ? ex->ur.svc_cfg->name : ex->rt != NULL ? ex->rt->service : NULL;
    const char *inst = ex->ur.ws != NULL && ex->ur.svc >= 0 && ex->ur.inst >= 0
                           ? RW_INST(ex->ur.ws, ex->ur.svc, ex->ur.inst)->address
                           : NULL;
    const char *consumer =
        ex->consumer >= 0 && ex->ur.ws != NULL ? ex->ur.ws->snap->cfg->consumers[ex->consumer].name : NULL;
    static const char *const rl_names[] = {"none", "allowed", "limited"};
    uint64_t dur = rw_loop_now(w->loop) - ex->start_ms;
    char num[512];
    if (ac->format == RW_ALOG_JSON) {
        PUTL(b, cap, &o, "{\"time\":\"");
        put(b, cap, &o, t, 24, 0);
        PUTL(b, cap, &o, "\"");
        /* Ids, names from the config and error names need no escaping: request
         * ids are [A-Za-z0-9._:-] (a client's is checked), trace ids hex. */
        JSTR(b, cap, &o, "request_id", ex->reqid, ex->reqid_len, ex->reqid_len > 0, 0);
        JSTR(b, cap, &o, "trace_id", ex->tp + 3, 32, ex->tp_len > 0, 0);
        if (ex->alog_len > 0) {
            put(b, cap, &o, ex->alog_req, ex->alog_len, 0);
        } else { /* the head never parsed */
            PUTL(b, cap, &o, ",\"client_ip\":\"");
            put(b, cap, &o, c->peer, c->peer_len, CAP_SHORT);
            PUTL(b, cap, &o,
                 "\",\"method\":null,\"host\":null,\"path\":null,\"query\":null,\"protocol\":null,"
                 "\"user_agent\":null");
        }
        PUTL(b, cap, &o, ",\"status\":");
        put_u64(b, cap, &o, (uint64_t)status);
        PUTL(b, cap, &o, ",\"bytes_in\":");
        put_u64(b, cap, &o, ex->head_len + ex->req_total);
        PUTL(b, cap, &o, ",\"bytes_out\":");
        put_u64(b, cap, &o, ex->bytes_out);
        PUTL(b, cap, &o, ",\"duration_ms\":");
        put_u64(b, cap, &o, dur);
        PUTL(b, cap, &o, ",\"upstream_connect_ms\":");
        if (ex->t_connect >= 0)
            put_u64(b, cap, &o, (uint64_t)ex->t_connect);
        else
            PUTL(b, cap, &o, "null");
        PUTL(b, cap, &o, ",\"upstream_first_byte_ms\":");
        if (ex->t_first_byte >= 0)
            put_u64(b, cap, &o, (uint64_t)ex->t_first_byte);
        else
            PUTL(b, cap, &o, "null");
        JSTR(b, cap, &o, "route", route, route ? strlen(route) : 0, route != NULL, 0);
        JSTR(b, cap, &o, "service", svc, svc ? strlen(svc) : 0, svc != NULL, 0);
        JSTR(b, cap, &o, "instance", inst, inst ? strlen(inst) : 0, inst != NULL, 0);
        JSTR(b, cap, &o, "consumer", consumer, consumer ? strlen(consumer) : 0, consumer != NULL, 0);
        PUTL(b, cap, &o, ",\"attempts\":");
        put_u64(b, cap, &o, ex->tries);
        PUTL(b, cap, &o, ",\"ratelimit\":\"");
        puts_(b, cap, &o, rl_names[ex->ratelimit < 3 ? ex->ratelimit : 0]);
        PUTL(b, cap, &o, "\"");
        JSTR(b, cap, &o, "error", ename, ename ? strlen(ename) : 0, ename != NULL, 0);
        PUTL(b, cap, &o, "}\n");
    } else {
        /* TIME CLIENT "METHOD PATH?QUERY PROTO" "UA" STATUS BYTES_IN BYTES_OUT DURATION_MS
         * rid=ID route=R service=S instance=I consumer=C attempts=N ratelimit=X error=E */
        puts_(b, cap, &o, t);
        puts_(b, cap, &o, " ");
        if (ex->alog_len > 0) {
            put(b, cap, &o, ex->alog_req, ex->alog_len, 0);
        } else {
            put(b, cap, &o, c->peer, c->peer_len, CAP_SHORT);
            puts_(b, cap, &o, " \"-\" \"\"");
        }
        int n = snprintf(num, sizeof(num), " %d %llu %llu %llu rid=%.*s route=%s service=%s instance=%s",
                         status, (unsigned long long)(ex->head_len + ex->req_total),
                         (unsigned long long)ex->bytes_out, (unsigned long long)dur, (int)ex->reqid_len,
                         ex->reqid, route ? route : "-", svc ? svc : "-", inst ? inst : "-");
        put(b, cap, &o, num, RW_MIN((size_t)n, sizeof(num) - 1), 0);
        n = snprintf(num, sizeof(num), " consumer=%s attempts=%u ratelimit=%s error=%s\n",
                     consumer ? consumer : "-", (unsigned)ex->tries,
                     rl_names[ex->ratelimit < 3 ? ex->ratelimit : 0], ename ? ename : "-");
        put(b, cap, &o, num, RW_MIN((size_t)n, sizeof(num) - 1), 0);
    }
    if (o >= cap) { /* cannot happen with the caps above; keep the line a line */
        o = cap;
        b[o - 1] = '\n';
    }
    rw_alog_commit(w->alog, (uint32_t)o);
}
