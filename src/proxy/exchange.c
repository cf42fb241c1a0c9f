/* exchange.c - one request/response exchange: route, run the filters, pick
 * an instance, write the upstream head, relay the request body, then parse
 * and relay the response -> keep-alive or close. Zero-copy where it can be:
 * bodies are forwarded from the receive buffer they arrived in; heads are
 * rewritten into one buffer (heads.c). It owns the upstream client's
 * requests (rw_upowner, at the end). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#include "proxy_int.h"
#include "ringway/log.h"
#include "ringway/net.h"
#include "ringway/path.h"
#include "ringway/tls.h"
#include "ringway/proxy.h"
#include "ringway/upstate.h"

#define RW_PATH_MAX 8192

static void ex_finish(rw_exchange *ex);
static void ex_upstream_ready(rw_exchange *ex);
static void ex_upstream_sent(rw_exchange *ex, int res);
static void ex_upstream_data(rw_exchange *ex, int res);
static void ex_upstream_failed(rw_exchange *ex, int err, bool timeout, int how);
static void ex_queue_timeout(rw_exchange *ex);
static const rw_upowner ex_owner;

/* ---- exchanges ---- */

rw_exchange *rw__ex_get(rw_conn *c)
{
    rw_pworker *w = c->w;
    rw_exchange *ex = w->free_exchanges;
    if (ex != NULL) {
        w->free_exchanges = ex->next;
    } else {
        ex = malloc(sizeof(*ex) + w->hbuf_cap);
        if (ex == NULL)
            return NULL;
    }
    /* Reset the bookkeeping, not the big parse structs (the parser fills them). */
    memset(ex, 0, offsetof(rw_exchange, req));
    ex->out = (char *)(ex + 1);
    ex->out_cap = w->hbuf_cap;
    ex->c = c;
    ex->ur.owner = &ex_owner;
    ex->ur.w = c->w;
    ex->ur.inst = -1;
    ex->ur.svc = -1;
    ex->route = -1;
    ex->consumer = -1;
    ex->t_connect = ex->t_first_byte = -1;
    ex->start_ms = now_ms(w); /* rw__ex_start sets it again once a head parsed */
    rw_timer_init(&ex->total_timer, NULL);
    rw_timer_init(&ex->retry_timer, NULL);
    rw_timer_init(&ex->ur.queue_timer, NULL);
    return ex;
}

void rw__ex_put(rw_exchange *ex)
{
    rw_pworker *w = ex->c->w;
    rw__stats_count(ex);
    if (w->alog != NULL)
        rw__alog_end(ex);
    rw_timer_cancel(timers(w), &ex->total_timer);
    rw_timer_cancel(timers(w), &ex->retry_timer);
    rw__upconn_dequeue(&ex->ur);
    if (ex->ur.up != NULL) { /* never expected: an upstream still serving this exchange must not outlive it */
        rw__upconn_close(ex->ur.up);
        ex->ur.up = NULL;
    }
    if (ex->ur.ws != NULL) {
        if (ex->ur.svc >= 0) {
            rw_svc_state *ss = &ex->ur.ws->svcs[ex->ur.svc];
            if (ex->counted_svc)
                ss->requests--;
            if (ex->retrying)
                ss->retrying--;
        }
        ex->counted_svc = ex->retrying = false;
        if (ex->ur.counted && ex->ur.ws->svcs[ex->ur.svc].active[ex->ur.inst] > 0)
            ex->ur.ws->svcs[ex->ur.svc].active[ex->ur.inst]--;
        ex->ur.counted = false;
        rw__wstate_put(w, ex->ur.ws);
        ex->ur.ws = NULL;
    }
    ex->c->ex = NULL;
    ex->next = w->free_exchanges;
    w->free_exchanges = ex;
}

void rw__make_reqid(rw_exchange *ex, bool parsed)
{
    /* Keep a sane client-supplied id (request_id.header); otherwise mint one.
     * The same pass notes the client's traceparent (make_traceparent). */
    const rw_request_id_cfg *rc = &cfg_of(ex->c->w)->request_id;
    bool want_id = rc->enabled;
    ex->tp_hdr = -1;
    for (size_t i = 0; parsed && i < ex->req.nheaders; i++) {
        const rw_http_header *h = &ex->req.headers[i];
        if (h->name.len == 11 && ex->tp_hdr < 0 && rw_str_ieq(h->name, "traceparent"))
            ex->tp_hdr = (int16_t)i;
        else if (want_id && h->name.len == rc->header_len &&
                 strncasecmp(h->name.p, rc->header, rc->header_len) == 0 && rw_reqid_valid(h->value)) {
            memcpy(ex->reqid, h->value.p, h->value.len);
            ex->reqid_len = (uint8_t)h->value.len;
            want_id = false;
        }
    }
    if (ex->reqid_len > 0)
        return;
    rw_pworker *w = ex->c->w;
    uint64_t v = w->reqid_seed + (++w->reqid_counter);
    for (int i = 15; i >= 0; i--) {
        ex->reqid[i] = hexdig[v & 15];
        v >>= 4;
    }
    ex->reqid_len = 16;
}

/* The traceparent to send upstream: the client's trace continued with a new
 * parent id (ours for this hop), or a new trace (sampled) when it sent none
 * or an invalid one. */
static void make_traceparent(rw_exchange *ex)
{
    rw_pworker *w = ex->c->w;
    uint8_t trace[16], flags = 0x01;
    const rw_http_header *h = ex->tp_hdr >= 0 ? &ex->req.headers[ex->tp_hdr] : NULL;
    ex->tp_restarted = h == NULL || !rw_traceparent_parse(h->value, trace, &flags);
    if (ex->tp_restarted) {
        uint64_t a = pw_rand(w), b = pw_rand(w);
        memcpy(trace, &a, 8);
        memcpy(trace + 8, &b, 8);
        flags = 0x01;
    }
    uint64_t span = pw_rand(w);
    rw_traceparent_format(trace, span ? span : 1, flags, ex->tp);
    ex->tp_len = RW_TRACEPARENT_LEN;
}

/* ---- upstream request head ---- */

/* Writes the upstream request head into ex->out (heads.c). */
static bool build_request_head(rw_exchange *ex, const char *path, size_t plen, const rw_filters *flt,
                               const rw_filter_result *fres)
{
    rw_conn *c = ex->c;
    const char *addr = RW_INST(ex->ur.ws, ex->ur.svc, ex->ur.inst)->authority;
    rw_reqhead in = {
        .rq = &ex->req,
        .rt = ex->rt,
        .path = path,
        .path_len = plen,
        .upstream_host = {addr, strlen(addr)},
        .peer = {c->peer, c->peer_len},
        .reqid_header = reqid_header(c->w),
        .reqid = {ex->reqid, ex->reqid_len},
        .traceparent = {ex->tp, ex->tp_len},
        .drop_tracestate = ex->tp_len > 0 && ex->tp_restarted,
        .body = ex->req_body,
        .upgrade = ex->upgrade,
        .https = c->tr.kind == RW_TRANSPORT_TLS,
        .flt = flt,
        .route = ex->route,
        .fres = fres,
    };
    if (c->tr.kind == RW_TRANSPORT_TLS)
        rw_tls_peer_cert(&c->tr, &in.cert_subject, &in.cert_san, &in.cert_sha256);
    ssize_t n = rw_proxy_request_head(&in, ex->out, ex->out_cap, &ex->host_off, &ex->host_len);
    if (n < 0)
        return false;
    ex->out_len = (uint32_t)n;
    return true;
}

/* ---- routing and dispatch ---- */

/* The first TLS listener's port (0: none), for https_redirect. */
static uint16_t https_port(const rw_config *cfg)
{
    for (size_t i = 0; cfg->listen_tls != NULL && i < cfg->nlisten; i++) {
        if (cfg->listen_tls[i] == NULL)
            continue;
        const struct sockaddr_storage *ss = &cfg->listen[i].ss;
        if (ss->ss_family == AF_INET)
            return ntohs(((const struct sockaddr_in *)ss)->sin_port);
        if (ss->ss_family == AF_INET6)
            return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    }
    return 0;
}

static uint64_t hash_key(rw_exchange *ex)
{
    const rw_service_cfg *sc = ex->ur.svc_cfg;
    rw_conn *c = ex->c;
    if (sc->lb != RW_LB_HASH)
        return 0;
    if (sc->hash_on == RW_HASH_IP || sc->hash_key == NULL)
        return rw_hash64(c->peer, c->peer_len);
    size_t klen = strlen(sc->hash_key);
    for (size_t i = 0; i < ex->req.nheaders; i++) {
        const rw_http_header *h = &ex->req.headers[i];
        if (sc->hash_on == RW_HASH_HEADER) {
            if (h->name.len == klen && strncasecmp(h->name.p, sc->hash_key, klen) == 0)
                return rw_hash64(h->value.p, h->value.len);
        } else if (rw_str_ieq(h->name, "cookie")) {
            /* "a=1; name=value; b=2" */
            const char *p = h->value.p, *end = p + h->value.len;
            while (p < end) {
                while (p < end && (*p == ' ' || *p == ';'))
                    p++;
                const char *eq = memchr(p, '=', (size_t)(end - p));
                if (eq == NULL)
                    break;
                const char *semi = memchr(eq, ';', (size_t)(end - eq));
                if (semi == NULL)
                    semi = end;
                if ((size_t)(eq - p) == klen && memcmp(p, sc->hash_key, klen) == 0)
                    return rw_hash64(eq + 1, (size_t)(semi - eq - 1));
                p = semi;
            }
        }
    }
    return rw_hash64(c->peer, c->peer_len); /* no key: fall back to the client address */
}

static void on_total_timeout(rw_timer *t)
{
    rw_exchange *ex = RW_CONTAINER_OF(t, rw_exchange, total_timer);
    if (ex->ur.queued) { /* still waiting for a connection slot */
        ex_queue_timeout(ex);
        return;
    }
    ex->c->w->stats->upstream_timeouts++;
    ex->err_kind = RW_EXERR_TOTAL_TIMEOUT;
    rw__ex_send_error(ex, 504, "upstream timed out");
}

/* Gets ex an upstream connection. While it waits in the pool's queue nothing
 * else reads the client socket, so a read is armed: a client that hangs up is
 * noticed (and leaves the queue) instead of being handed a connection. */
static void ex_acquire(rw_exchange *ex)
{
    rw_conn *c = ex->c;
    rw__upconn_acquire(&ex->ur);
    if (ex->ur.queued && c->in.len == c->in.off && !(c->rd.flags & RW_OPF_PENDING))
        rw__c_read_head(c);
}

void rw__ex_start(rw_conn *c, rw_exchange *ex, size_t head_len)
{
    rw_pworker *w = c->w;
    const rw_http_request *rq = &ex->req;
    c->state = RW_C_BUSY;
    c->requests++;
    rw__c_timer(c, 0);
    w->stats->requests++;
    ex->start_ms = now_ms(w);
    ex->method = rq->method;
    ex->minor = rq->minor;
    ex->keep_alive =
        rq->keep_alive && !w->draining && !c->close_after && cfg_of(w)->http.keepalive_timeout_ms > 0;
    ex->req_body = rq->body;
    ex->req_left = rq->body == RW_BODY_LENGTH ? rq->content_length : 0;
    ex->req_done = rq->body == RW_BODY_NONE || (rq->body == RW_BODY_LENGTH && rq->content_length == 0);
    if (ex->req_done)
        ex->req_body = RW_BODY_NONE;
    rw_chunked_init(&ex->req_chunk);
    ex->expect_continue = (rq->flags & RW_HF_EXPECT_CONTINUE) != 0;
    /* Only WebSocket: other upgrades (h2c above all) would hand the client a
     * raw channel past routing and header rules. Theirs is simply dropped. */
    const rw_http_header *uph = rw_http_find_header(rq->headers, rq->nheaders, "upgrade");
    ex->upgrade = (rq->flags & RW_HF_CONN_UPGRADE) && rq->minor == 1 && ex->req_done && uph != NULL &&
                  rw_str_ieq(uph->value, "websocket");
    ex->ur.ws = w->ws;
    w->ws->users++;
    rw__make_reqid(ex, true); /* before any error path releases the head's buffer */
    ex->head_len = (uint32_t)head_len;
    if (w->alog != NULL)
        rw__alog_begin(ex);
    ex->tp_len = 0;
    const rw_snapshot *snap = w->ws->snap;
    const rw_config *cfg = snap->cfg;

    if (rq->method == RW_METHOD_CONNECT || rq->path.len == 0 || rq->path.p[0] != '/') {
        rw__input_consume(w, &c->in, (uint32_t)head_len);
        rw__ex_send_error(ex, rq->method == RW_METHOD_CONNECT ? 501 : 400,
                          rq->method == RW_METHOD_CONNECT ? "not implemented" : "bad request target");
        return;
    }
    char path[RW_PATH_MAX + 1];
    ssize_t plen =
        rq->path.len <= RW_PATH_MAX ? rw_path_normalize(rq->path.p, rq->path.len, path, sizeof(path)) : -1;
    if (plen < 0) {
        rw__input_consume(w, &c->in, (uint32_t)head_len);
        rw__ex_send_error(ex, 400, "bad request path");
        return;
    }
    bool body_ok = !(cfg->http.max_body_bytes > 0 && rq->body == RW_BODY_LENGTH &&
                     rq->content_length > cfg->http.max_body_bytes);

    /* Built-in probes come before routes. */
    if (plen == 7 && memcmp(path, "/health", 7) == 0 &&
        (ex->method == RW_METHOD_GET || ex->method == RW_METHOD_HEAD)) {
        rw__input_consume(w, &c->in, (uint32_t)head_len);
        uint64_t age;
        if (rw_server_stalled(w->server, rw_loop_now(w->loop), RW_STALL_MS, &age) >= 0)
            rw__ex_send_error(ex, 503, "a worker is stalled"); /* liveness: any worker, not this one */
        else
            rw__send_canned(ex, &snap->health);
        return;
    }
    if (plen == 6 && memcmp(path, "/ready", 6) == 0 &&
        (ex->method == RW_METHOD_GET || ex->method == RW_METHOD_HEAD)) {
        rw__input_consume(w, &c->in, (uint32_t)head_len);
        rw__send_canned(ex, w->draining || rw_server_shutting(w->server) ? &snap->stopping
                            : rw_server_ready(w->server)                 ? &snap->health
                                                                         : &snap->not_ready);
        return;
    }
    rw_str host = rq->host;
    for (size_t i = host.len; i > 0; i--) { /* strip ":port" (not inside an IPv6 literal) */
        if (host.p[i - 1] == ':') {
            host.len = i - 1;
            break;
        }
        if (host.p[i - 1] == ']' || host.p[i - 1] == '.')
            break;
        if (host.p[i - 1] < '0' || host.p[i - 1] > '9')
            break;
    }
    rw_route_input in = {
        .method = rq->method,
        .host = host,
        .path = path,
        .path_len = (size_t)plen,
        .query = rq->query,
        .headers = rq->headers,
        .nheaders = rq->nheaders,
    };
    int route = rw_router_match(snap->router, &in);
    if (route < 0) {
        rw__input_consume(w, &c->in, (uint32_t)head_len);
        rw__ex_send_error(ex, 404, "no route");
        return;
    }
    ex->route = route;
    ex->rt = &cfg->routes[route];
    if (c->tr.kind == RW_TRANSPORT_TLS) {
        ex->hsts = ex->rt->hsts_line;
    } else if (ex->rt->https_redirect) {
        rw__input_consume(w, &c->in, (uint32_t)head_len);
        rw__ex_send_https_redirect(ex, host, https_port(cfg));
        return;
    }
    const rw_filters *flt = snap->filters;
    const rw_filter_result *fres = NULL;
    ex->rl_len = 0;
    if (rw_filters_route_active(flt, route)) {
        rw_filter_input fin = {
            .rq = rq,
            .peer = c->peer,
            .peer_len = c->peer_len,
            .route = route,
            .now_ms = now_ms(w),
            .now_s = time(NULL),
        };
        if (c->tr.kind == RW_TRANSPORT_TLS) {
            rw_str subj, san;
            rw_tls_peer_cert(&c->tr, &subj, &san, &fin.cert_sha256);
        }
        rw_filter_result *fr = &w->fres;
        int refused = rw_filters_run(w->fw, flt, &fin, fr);
        ex->consumer = (int16_t)fr->consumer;
        ex->ratelimit = fr->ratelimit;
        ex->auth_fail = fr->auth_fail;
        if (refused != 0) {
            rw__input_consume(w, &c->in, (uint32_t)head_len);
            rw__ex_send_error_x(ex, fr->status, fr->error, fr->extra, fr->extra_len);
            return;
        }
        if (fr->extra_len > 0 && fr->extra_len <= sizeof(ex->rl_hdrs)) {
            memcpy(ex->rl_hdrs, fr->extra, fr->extra_len);
            ex->rl_len = (uint8_t)fr->extra_len;
        }
        fres = fr;
    }
    if (!body_ok) {
        rw__input_consume(w, &c->in, (uint32_t)head_len);
        rw__ex_send_error(ex, 413, "content too large");
        return;
    }
    if (ex->rt->has_respond) {
        rw__input_consume(w, &c->in, (uint32_t)head_len);
        if (ex->req_body != RW_BODY_NONE)
            c->close_after = true; /* we do not read bodies for fixed responses */
        rw__send_canned(ex, &snap->canned[route]);
        return;
    }
    ex->ur.svc = ex->rt->service_index;
    ex->ur.svc_cfg = &cfg->services[ex->ur.svc];
    ex->hash = hash_key(ex); /* the head's buffer is gone by the time a retry picks */
    int picked = rw__ex_pick(ex);
    if (picked != RW_PICK_OK) {
        rw__input_consume(w, &c->in, (uint32_t)head_len);
        if (picked == RW_PICK_OVERFLOW) {
            w->stats->upstream_overflow++;
            ex->err_kind = RW_EXERR_OVERLOADED;
            rw__ex_send_error(ex, 503, "upstream overloaded (max_requests)");
        } else if (picked == RW_PICK_EMPTY) {
            ex->err_kind = RW_EXERR_NO_INSTANCE;
            rw__ex_send_error(ex, 503, ex->ur.ws->snap->insts[ex->ur.svc]->why);
        } else {
            rw__ex_send_error(ex, 502, "no upstream available");
        }
        return;
    }
    ex->ur.ws->svcs[ex->ur.svc].requests++;
    ex->counted_svc = true;
    if (cfg->trace_context)
        make_traceparent(ex);
    if (!build_request_head(ex, path, (size_t)plen, flt, fres)) {
        rw__input_consume(w, &c->in, (uint32_t)head_len);
        rw__ex_send_error(ex, 431, "request header fields too large");
        return;
    }
    /* The head is rewritten into ex->out: its bytes in the input are done. */
    rw__input_consume(w, &c->in, (uint32_t)head_len);
    if (ex->ur.svc_cfg->total_timeout_ms > 0) {
        rw_timer_init(&ex->total_timer, on_total_timeout);
        rw_timer_set(timers(w), &ex->total_timer, now_ms(w) + ex->ur.svc_cfg->total_timeout_ms);
    }
    if (ex->expect_continue && ex->minor == 1 && !ex->req_done && c->in.len == c->in.off) {
        /* We answer 100-continue ourselves (Expect is not forwarded). */
        static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        struct iovec iov = {cont, sizeof(cont) - 1};
        c->sending = SENT_CONTINUE;
        rw__c_send(c, &iov, 1);
    }
    ex_acquire(ex);
}

/* How many of the available input bytes belong to the request body; updates
 * the body state. *fwd gets how many of them go upstream: a chunked body's
 * trailer section is dropped (an upstream that merges trailers into headers
 * would otherwise trust fields the client made up: framing, Host, identity);
 * its end is written by the caller once req_done. Returns -1 for malformed
 * chunked framing. */
static ssize_t req_body_portion(rw_exchange *ex, const char *p, size_t avail, size_t *fwd)
{
    *fwd = 0;
    if (ex->req_done || avail == 0)
        return 0;
    if (ex->req_body == RW_BODY_LENGTH) {
        size_t n = (size_t)RW_MIN((uint64_t)avail, ex->req_left);
        ex->req_left -= n;
        ex->req_total += n;
        if (ex->req_left == 0)
            ex->req_done = true;
        *fwd = n;
        return (ssize_t)n;
    }
    bool done = false;
    ssize_t n = rw_chunked_scan_drop_trailers(&ex->req_chunk, p, avail, &done, fwd);
    if (n < 0)
        return -1;
    ex->req_total += (uint64_t)n;
    if (done)
        ex->req_done = true;
    return n;
}

/* Sends the next piece of the request body (from the client's input) upstream. */
static void ex_send_body_piece(rw_exchange *ex, bool with_head)
{
    rw_conn *c = ex->c;
    struct iovec iov[3];
    int n = 0;
    if (with_head) {
        iov[n].iov_base = ex->out;
        iov[n].iov_len = ex->out_len;
        n++;
    }
    uint32_t avail = c->in.len - c->in.off;
    bool was_done = ex->req_done;
    size_t fwd;
    ssize_t body = req_body_portion(ex, c->in.data + c->in.off, avail, &fwd);
    if (body < 0) {
        rw__ex_send_error(ex, 400, "bad chunked request body");
        return;
    }
    uint64_t maxb = cfg_of(c->w)->http.max_body_bytes;
    if (maxb > 0 && ex->req_total > maxb) {
        rw__ex_send_error(ex, 413, "content too large");
        return;
    }
    if (fwd > 0) {
        iov[n].iov_base = c->in.data + c->in.off;
        iov[n].iov_len = fwd;
        n++;
    }
    if (!was_done && ex->req_done && ex->req_body == RW_BODY_CHUNKED) {
        static char crlf[] = "\r\n"; /* the end of a chunked body, its trailers dropped */
        iov[n].iov_base = crlf;
        iov[n].iov_len = 2;
        n++;
    }
    rw_upconn *u = ex->ur.up;
    ex->req_inflight = (uint32_t)body; /* consumed when the send completes */
    ex->req_held = false;
    if (fwd > 0 && (uint32_t)body == avail && u->held.data == NULL && !ex->req_done) {
        /* The send takes every buffered byte: it owns the buffer until it
         * completes, and the client's next bytes are read into a fresh one
         * meanwhile, so a body streams without stopping at every buffer. */
        rw__input_move(&u->held, &c->in);
        ex->req_held = true;
    }
    rw__upconn_send(u, iov, n);
    if (ex->req_held && ex->ur.up != NULL && !(c->rd.flags & RW_OPF_PENDING)) {
        if (!(c->wr.flags & RW_OPF_PENDING))
            rw__c_timer(c, cfg_of(c->w)->http.client_body_timeout_ms);
        rw__c_read_head(c);
    }
}

static void ex_upstream_ready(rw_exchange *ex)
{
    ex->t_connect = (int32_t)(now_ms(ex->c->w) - ex->start_ms);
    ex->head_sent_up = false;
    ex_send_body_piece(ex, true);
    if (ex->ur.up != NULL)
        rw__upconn_timeout(ex->ur.up, ex->ur.svc_cfg->first_byte_timeout_ms);
}

static void ex_upstream_sent(rw_exchange *ex, int res)
{
    (void)res;
    rw_conn *c = ex->c;
    rw_pworker *w = c->w;
    uint32_t consumed = ex->req_inflight;
    ex->req_inflight = 0;
    bool first = !ex->head_sent_up;
    ex->head_sent_up = true;
    if (consumed > 0 && !ex->req_held)
        rw__input_consume(w, &c->in, consumed);
    ex->req_held = false; /* the upstream released the buffer it held */
    if (ex->tunnel && first && !ex->resp_head_sent) {
        rw__ex_try_forward_head(ex); /* the 101 was parsed before our head's send completed */
        return;
    }
    if (ex->tunnel) {
        if (c->in.len > c->in.off)
            rw__tunnel_c2u(ex);
        else if (!ex->c_eof && !(c->rd.flags & RW_OPF_PENDING))
            rw__c_read_head(c);
        return;
    }
    if (first && ex->resp_head_done && !ex->resp_head_sent) {
        /* The response was waiting for our head to go. Keep the body going
         * first (an upstream may answer while it still reads, e.g. an echo):
         * forwarding the head may finish and free the exchange. */
        if (!ex->req_done && !ex->req_abandoned && ex->ur.up != NULL) {
            if (c->in.len > c->in.off)
                ex_send_body_piece(ex, false);
            else if (!(c->rd.flags & RW_OPF_PENDING))
                rw__c_read_head(c);
        }
        rw__ex_try_forward_head(ex);
        return;
    }
    if (!ex->req_done && ex->ur.up != NULL)
        rw__upconn_timeout(ex->ur.up,
                           ex->ur.svc_cfg->first_byte_timeout_ms); /* progress: restart the clock */
    if (ex->req_done || ex->req_abandoned)
        return;
    if (c->in.len > c->in.off) {
        ex_send_body_piece(ex, false);
        return;
    }
    if (c->rd.flags & RW_OPF_PENDING)
        return; /* the read-ahead is still waiting for the client */
    rw__c_timer(c, cfg_of(w)->http.client_body_timeout_ms);
    rw__c_read_head(c); /* reads more body bytes into a fresh buffer */
}

void rw__ex_client_body(rw_exchange *ex)
{
    if (!(ex->c->wr.flags & RW_OPF_PENDING))
        rw__c_timer(ex->c, 0); /* else the send timer stays */
    if (ex->tunnel) {
        rw__tunnel_c2u(ex);
        return;
    }
    /* Not connected yet, or the previous piece is still going out: the
     * bytes wait in c->in until that send completes. */
    if (ex->ur.up == NULL || (ex->ur.up->wr.flags & RW_OPF_PENDING))
        return;
    ex_send_body_piece(ex, false);
}

/* Points the rewritten head's Host at the newly picked instance. */
static bool retarget_host(rw_exchange *ex)
{
    if (ex->rt->preserve_host)
        return true;
    const char *addr = RW_INST(ex->ur.ws, ex->ur.svc, ex->ur.inst)->authority;
    uint32_t alen = (uint32_t)strlen(addr);
    if (ex->out_len - ex->host_len + alen > ex->out_cap)
        return false;
    char *at = ex->out + ex->host_off;
    memmove(at + alen, at + ex->host_len, ex->out_len - ex->host_off - ex->host_len);
    memcpy(at, addr, alen);
    ex->out_len = ex->out_len - ex->host_len + alen;
    ex->host_len = alen;
    return true;
}

static void on_retry_timer(rw_timer *t)
{
    rw_exchange *ex = RW_CONTAINER_OF(t, rw_exchange, retry_timer);
    if (ex->resp_head_sent || ex->c->state == RW_C_CLOSING)
        return; /* answered (a total timeout) or closing meanwhile: no attempt */
    ex_acquire(ex);
}

/* Makes the next attempt: another instance when there is one, after the
 * backoff (full jitter over base * 2^(retry - 1)). */
static void ex_retry(rw_exchange *ex, const char *why)
{
    rw_pworker *w = ex->c->w;
    const rw_retries_cfg *rc = &ex->ur.svc_cfg->retries;
    if (!ex->retrying) {
        ex->retrying = true;
        ex->ur.ws->svcs[ex->ur.svc].retrying++;
    }
    w->stats->upstream_retries++;
    int prev = ex->ur.inst;
    int picked = rw__ex_pick(ex);
    if (picked != RW_PICK_OK || (ex->ur.inst != prev && !retarget_host(ex))) {
        if (picked == RW_PICK_OVERFLOW)
            ex->err_kind = RW_EXERR_OVERLOADED;
        rw__ex_send_error(ex, picked == RW_PICK_OVERFLOW ? 503 : 502,
                          picked == RW_PICK_OVERFLOW ? "upstream overloaded (max_requests)" : "bad gateway");
        return;
    }
    rw_log_debug("retrying %s on %s after: %s", ex->ur.svc_cfg->name,
                 RW_INST(ex->ur.ws, ex->ur.svc, ex->ur.inst)->address, why);
    ex->ur.want_fresh = false;
    ex->head_sent_up = false;
    ex->resp_head_done = false;
    if (rc->backoff_ms == 0) {
        ex_acquire(ex);
        return;
    }
    uint64_t ms = (uint64_t)rc->backoff_ms << RW_MIN(ex->tries - 2, 10);
    uint64_t r = (now_ms(w) ^ (uintptr_t)ex) * 0x9E3779B97F4A7C15ull;
    ms = ms / 2 + (r >> 33) % (ms / 2 + 1);
    rw_timer_init(&ex->retry_timer, on_retry_timer);
    rw_timer_set(timers(w), &ex->retry_timer, now_ms(w) + ms);
}

static void ex_upstream_failed(rw_exchange *ex, int err, bool timeout, int how)
{
    rw_conn *c = ex->c;
    rw_pworker *w = c->w;
    if (timeout)
        w->stats->upstream_timeouts++;
    else
        w->stats->upstream_errors++;
    rw_svc_state *ss = &ex->ur.ws->svcs[ex->ur.svc];
    if (ex->ur.counted && ss->active[ex->ur.inst] > 0)
        ss->active[ex->ur.inst]--;
    ex->ur.counted = false;
    /* A reused connection that closed before any response byte is the
     * keep-alive race, not the instance failing: once, the same instance on
     * a fresh connection, for what may be sent twice. */
    if (how == RW_UPFAIL_STALE && !ex->stale_retried && !ex->resp_head_sent && ex->req_inflight == 0 &&
        ex->req_body == RW_BODY_NONE && rw__idempotent(ex->method)) {
        ex->stale_retried = true;
        ex->ur.want_fresh = true;
        ex->head_sent_up = false;
        ex_acquire(ex);
        return;
    }
    uint32_t kind = how == RW_UPFAIL_CONNECT ? RW_FAILON_CONNECT
                    : timeout                ? RW_FAILON_TIMEOUT
                                             : RW_FAILON_RESET;
    rw__ex_outcome(ex, how == RW_UPFAIL_CONNECT && timeout ? RW_FAILON_TIMEOUT : kind);
    /* A TLS handshake failure (services[].tls) is a connect failure. */
    bool tls_fail =
        how == RW_UPFAIL_CONNECT && !timeout && (err == RW_TLS_EVERIFY || err == RW_TLS_EHANDSHAKE);
    const char *why = timeout                 ? "timed out"
                      : err == RW_TLS_EVERIFY ? "upstream TLS certificate verification failed"
                      : tls_fail              ? "upstream TLS handshake failed"
                                              : strerror(err);
    if (rw__ex_may_retry(ex, kind)) {
        ex_retry(ex, timeout ? "timeout" : why);
        return;
    }
    ex->err_kind = timeout
                       ? (how == RW_UPFAIL_CONNECT ? RW_EXERR_CONNECT_TIMEOUT : RW_EXERR_FIRST_BYTE_TIMEOUT)
                   : tls_fail ? (err == RW_TLS_EVERIFY ? RW_EXERR_TLS_VERIFY : RW_EXERR_TLS_HANDSHAKE)
                   : how == RW_UPFAIL_CONNECT
                       ? (err == ECONNREFUSED ? RW_EXERR_CONNECT_REFUSED : RW_EXERR_CONNECT_FAILED)
                       : RW_EXERR_UPSTREAM_RESET;
    rw_log_warn("upstream %s (%s) failed: %s (request_id %.*s)", ex->ur.svc_cfg->name,
                RW_INST(ex->ur.ws, ex->ur.svc, ex->ur.inst)->address, why, (int)ex->reqid_len, ex->reqid);
    rw__ex_send_error(ex, timeout ? 504 : 502,
                      timeout    ? "upstream timed out"
                      : tls_fail ? why
                                 : "bad gateway");
}

static void ex_queue_timeout(rw_exchange *ex)
{
    rw_pworker *w = ex->c->w;
    w->stats->upstream_queue_timeouts++;
    ex->err_kind = RW_EXERR_QUEUE_TIMEOUT;
    rw_log_warn(
        "upstream %s (%s): no connection slot within the queue timeout (max_conns %u; request_id %.*s)",
        ex->ur.svc_cfg->name, RW_INST(ex->ur.ws, ex->ur.svc, ex->ur.inst)->address, ex->ur.svc_cfg->max_conns,
        (int)ex->reqid_len, ex->reqid);
    rw__ex_send_error(ex, 503, "upstream connection limit reached");
}

/* ---- responses ---- */

/* Starts answering the client once the response head is parsed, our request
 * head is out (ex->out is free again) and no other client write is pending. */
void rw__ex_try_forward_head(rw_exchange *ex)
{
    if (ex->resp_head_done && !ex->resp_head_sent && ex->head_sent_up && !(ex->c->wr.flags & RW_OPF_PENDING))
        rw__ex_forward_response(ex);
}

/* Writes the response head for the client into ex->out (heads.c) and takes
 * its decisions: persistence, de-chunking for an HTTP/1.0 client. */
static bool build_response_head(rw_exchange *ex)
{
    rw_conn *c = ex->c;
    rw_resphead in = {
        .rs = &ex->resp,
        .extra = {ex->rl_hdrs, ex->rl_len},
        .reqid_header = reqid_header(c->w),
        .reqid = {ex->reqid, ex->reqid_len},
        .minor = ex->minor,
        .body = ex->resp_body,
        .tunnel = ex->tunnel,
        .keep = ex->keep_alive && !c->close_after && !c->w->draining,
        .req_done = ex->req_done,
        .hsts = ex->hsts,
    };
    int persist;
    bool dechunk;
    ssize_t n = rw_proxy_response_head(&in, ex->out, ex->out_cap, &persist, &dechunk);
    if (n < 0)
        return false;
    ex->out_len = (uint32_t)n;
    ex->dechunk = dechunk;
    if (persist == RW_PERSIST_CLOSE)
        c->close_after = true;
    return true;
}

/* How many of the upstream's available bytes belong to the response body;
 * *fwd gets how many bytes at p go to the client: all of them, or for an
 * HTTP/1.0 client of a chunked response the decoded data (moved to the
 * front of p by rw_chunked_decode). Returns -1 for malformed chunked framing. */
static ssize_t resp_body_portion(rw_exchange *ex, char *p, size_t avail, size_t *fwd)
{
    *fwd = 0;
    if (ex->resp_done)
        return 0;
    switch (ex->resp_body) {
    case RW_BODY_NONE:
        ex->resp_done = true;
        return 0;
    case RW_BODY_LENGTH: {
        size_t n = (size_t)RW_MIN((uint64_t)avail, ex->resp_left);
        ex->resp_left -= n;
        if (ex->resp_left == 0)
            ex->resp_done = true;
        *fwd = n;
        return (ssize_t)n;
    }
    case RW_BODY_CHUNKED: {
        bool done = false;
        ssize_t n = 0;
        if (avail > 0 && ex->dechunk) {
            n = rw_chunked_decode(&ex->resp_chunk, p, avail, &done, fwd);
        } else if (avail > 0) {
            n = rw_chunked_scan(&ex->resp_chunk, p, avail, &done);
            *fwd = n > 0 ? (size_t)n : 0;
        }
        if (done)
            ex->resp_done = true;
        return n;
    }
    default:
        *fwd = avail;
        return (ssize_t)avail;
    }
}

/* The whole response has arrived from the upstream: no upstream deadline
 * applies any more (sending it to the client has its own). Without this, a
 * first-byte or total timer armed earlier could fire while the last bytes
 * are on their way to the client, which would then get the response and
 * have it counted (and logged) as an upstream timeout. */
static void ex_resp_received(rw_exchange *ex)
{
    if (ex->ur.up != NULL)
        rw__upconn_timeout(ex->ur.up, 0);
    rw_timer_cancel(timers(ex->c->w), &ex->total_timer);
}

/* Sends what the upstream input holds of the response to the client:
 * the head first (once), then body bytes. */
void rw__ex_forward_response(rw_exchange *ex)
{
    rw_conn *c = ex->c;
    rw_upconn *u = ex->ur.up;
    if (u == NULL)
        return;
    /* Finished sending the previous piece: consume it from the upstream input
     * (unless the send took the whole buffer, which c->held released). */
    if (ex->resp_inflight > 0) {
        if (!ex->resp_held)
            rw__input_consume(c->w, &u->in, ex->resp_inflight);
        ex->resp_inflight = 0;
        ex->resp_held = false;
    }
    if (ex->tunnel && ex->resp_head_sent) {
        if (ex->u_eof && u->in.len == u->in.off) {
            rw_tr_shutdown_wr(&c->tr); /* upstream finished: pass the half-close on */
            rw__tunnel_close_if_done(ex);
            return;
        }
        if (u->in.len > u->in.off)
            rw__tunnel_u2c(ex);
        else
            rw__upconn_recv(u);
        return;
    }
    if (ex->resp_head_sent && ex->resp_done) {
        ex_finish(ex);
        return;
    }
    struct iovec iov[2];
    int n = 0;
    bool with_body = false;
    if (!ex->resp_head_sent) {
        if (!build_response_head(ex)) {
            ex->err_kind = RW_EXERR_INVALID_RESPONSE;
            rw__ex_send_error(ex, 502, "upstream response head too large");
            return;
        }
        iov[n].iov_base = ex->out;
        iov[n].iov_len = ex->out_len;
        n++;
        ex->resp_head_sent = true;
        ex->status = ex->resp.status;
        count_status(c->w, ex->status);
        if (ex->tunnel) {
            c->sending = SENT_TUNNEL_HEAD;
            rw__c_send(c, iov, n);
            return;
        }
    }
    uint32_t avail = u->in.len - u->in.off;
    size_t len;
    ssize_t body = resp_body_portion(ex, u->in.data + u->in.off, avail, &len);
    if (body < 0) {
        rw_log_warn("upstream %s sent a malformed chunked body (request_id %.*s)", ex->ur.svc_cfg->name,
                    (int)ex->reqid_len, ex->reqid);
        rw__c_close(c);
        return;
    }
    if (ex->resp_done)
        ex_resp_received(ex);
    if (body > 0 && ex->method != RW_METHOD_HEAD) {
        if (len > 0) {
            iov[n].iov_base = u->in.data + u->in.off;
            iov[n].iov_len = len;
            n++;
            with_body = true;
        }
    }
    if (n == 0) {
        if (body > 0)
            rw__input_consume(c->w, &u->in, (uint32_t)body);
        if (ex->resp_done) {
            ex_finish(ex);
            return;
        }
        rw__upconn_timeout(u, ex->ur.svc_cfg->first_byte_timeout_ms); /* waiting on the upstream */
        rw__upconn_recv(u);
        return;
    }
    ex->resp_inflight = (uint32_t)body; /* consumed when this send completes */
    ex->resp_held = false;
    if (with_body && (uint32_t)body == avail && c->held.data == NULL && !ex->resp_done) {
        /* The send takes every buffered byte: it owns the buffer until it
         * completes (c->held), and the upstream's next bytes are read into a
         * fresh one meanwhile, so a body streams without stopping at every
         * buffer. */
        rw__input_move(&c->held, &u->in);
        ex->resp_held = true;
    }
    c->sending = SENT_RESPONSE;
    rw__c_send(c, iov, n);
    if (!ex->resp_done) {
        /* The upstream's clock runs only while we wait for its bytes: reading
         * ahead, yes; waiting for a slow client to take this piece, no (the
         * client's send timeout covers that). */
        rw__upconn_timeout(u, ex->resp_held ? ex->ur.svc_cfg->first_byte_timeout_ms : 0);
        if (ex->resp_held)
            rw__upconn_recv(u);
    }
}

static void ex_upstream_data(rw_exchange *ex, int res)
{
    rw_conn *c = ex->c;
    rw_upconn *u = ex->ur.up;
    if (ex->tunnel && ex->resp_head_sent) {
        if (res <= 0) {
            ex->u_eof = true;
            if (res < 0 || (c->wr.flags & RW_OPF_PENDING) == 0)
                rw_tr_shutdown_wr(&c->tr);
            if (res < 0)
                rw__c_close(c);
            else
                rw__tunnel_close_if_done(ex);
            return;
        }
        rw__tunnel_u2c(ex);
        return;
    }
    if (res <= 0) {
        if (ex->resp_head_done && ex->resp_body == RW_BODY_UNTIL_CLOSE && res == 0) {
            ex->resp_done = true;
            ex_resp_received(ex);
            if (!(c->wr.flags & RW_OPF_PENDING))
                rw__ex_forward_response(ex);
            return;
        }
        if (ex->resp_head_sent) {
            rw_log_warn("upstream %s closed mid-response (request_id %.*s)", ex->ur.svc_cfg->name,
                        (int)ex->reqid_len, ex->reqid);
            rw__c_close(c);
            return;
        }
        int how = u->reused && !u->got_bytes ? RW_UPFAIL_STALE : RW_UPFAIL_OTHER;
        rw__upconn_close(u);
        ex->ur.up = NULL;
        ex_upstream_failed(ex, res == 0 ? ECONNRESET : -res, false, how);
        return;
    }
    if (ex->resp_head_done) {
        if (!(c->wr.flags & RW_OPF_PENDING))
            rw__ex_forward_response(ex);
        else
            rw__upconn_timeout(u, 0); /* the bytes are in: now we wait for the client */
        return;
    }
    for (;;) {
        ssize_t r = rw_http_parse_response(u->in.data + u->in.off, u->in.len - u->in.off,
                                           &ex->ur.ws->snap->limits, ex->method, &ex->resp);
        if (r == RW_HTTP_INCOMPLETE) {
            if (rw__input_to_hbuf(c->w, &u->in) != 0 || u->in.len >= u->in.hb->cap) {
                ex->err_kind = RW_EXERR_INVALID_RESPONSE;
                rw__ex_send_error(ex, 502, "upstream response head too large");
                return;
            }
            rw__upconn_recv(u);
            return;
        }
        if (r < 0) {
            rw__ex_outcome(ex, RW_FAILON_RESET);
            rw_log_warn("upstream %s sent an invalid response (request_id %.*s)", ex->ur.svc_cfg->name,
                        (int)ex->reqid_len, ex->reqid);
            rw__upconn_close(u);
            ex->ur.up = NULL;
            ex->err_kind = RW_EXERR_INVALID_RESPONSE;
            rw__ex_send_error(ex, 502, "invalid upstream response");
            return;
        }
        if (ex->resp.status >= 100 && ex->resp.status < 200) {
            /* Interim responses: we answered 100-continue ourselves; drop them. */
            if (ex->resp.status == 101) {
                const rw_http_header *ru =
                    rw_http_find_header(ex->resp.headers, ex->resp.nheaders, "upgrade");
                if (ex->upgrade && ru != NULL && rw_str_ieq(ru->value, "websocket")) {
                    ex->tunnel = true; /* relay the 101, then bytes both ways */
                    rw__input_consume(c->w, &u->in, (uint32_t)r);
                    break;
                }
                rw__input_consume(c->w, &u->in, (uint32_t)r);
                rw__upconn_close(u);
                ex->ur.up = NULL;
                ex->err_kind = RW_EXERR_INVALID_RESPONSE;
                rw__ex_send_error(ex, 502, "unexpected protocol switch");
                return;
            }
            rw__input_consume(c->w, &u->in, (uint32_t)r);
            if (u->in.len == u->in.off) {
                rw__upconn_recv(u);
                return;
            }
            continue;
        }
        rw__input_consume(c->w, &u->in, (uint32_t)r);
        break;
    }
    rw__ex_outcome(ex, ex->resp.status >= 500 ? RW_FAILON_5XX : 0);
    uint32_t sk = ex->resp.status == 502   ? RW_FAILON_502
                  : ex->resp.status == 503 ? RW_FAILON_503
                  : ex->resp.status == 504 ? RW_FAILON_504
                                           : 0;
    if (sk != 0 && !ex->tunnel && rw__ex_may_retry(ex, sk)) {
        /* Drop this answer (and its connection: its body is unread). */
        rw_svc_state *ss = &ex->ur.ws->svcs[ex->ur.svc];
        if (ex->ur.counted && ss->active[ex->ur.inst] > 0)
            ss->active[ex->ur.inst]--;
        ex->ur.counted = false;
        rw__upconn_close(u);
        ex->ur.up = NULL;
        ex_retry(ex, ex->resp.status == 502 ? "502" : ex->resp.status == 503 ? "503" : "504");
        return;
    }
    ex->resp_head_done = true;
    ex->t_first_byte = (int32_t)(now_ms(c->w) - ex->start_ms);
    ex->resp_body = ex->tunnel ? RW_BODY_UNTIL_CLOSE : ex->resp.body;
    ex->resp_left = ex->resp.content_length;
    rw_chunked_init(&ex->resp_chunk);
    if (ex->resp_body == RW_BODY_LENGTH && ex->resp_left == 0)
        ex->resp_body = RW_BODY_NONE;
    rw__ex_try_forward_head(ex); /* or later, when our head (or the 100-continue) is out */
}

/* The whole response went to the client. */
static void ex_finish(rw_exchange *ex)
{
    rw_conn *c = ex->c;
    rw_upconn *u = ex->ur.up;
    if (!ex->req_done) {
        ex->req_abandoned = true; /* upstream answered before the body ended */
        c->close_after = true;
    }
    if (u != NULL) {
        bool reusable = ex->resp.keep_alive && ex->req_done && ex->resp_body != RW_BODY_UNTIL_CLOSE &&
                        u->in.len == u->in.off;
        rw_svc_state *ss = &ex->ur.ws->svcs[ex->ur.svc];
        if (ex->ur.counted && ss->active[ex->ur.inst] > 0)
            ss->active[ex->ur.inst]--;
        ex->ur.counted = false;
        rw__upconn_release(u, reusable);
        ex->ur.up = NULL;
    }
    rw__c_request_done(c);
}

/* ---- the upstream client's owner interface (rw_upowner) ---- */

#define EX_OF(r) RW_CONTAINER_OF((r), rw_exchange, ur)

static void up_ready(rw_upreq *r)
{
    ex_upstream_ready(EX_OF(r));
}

static void up_sent(rw_upreq *r, int res)
{
    ex_upstream_sent(EX_OF(r), res);
}

static void up_data(rw_upreq *r, int res)
{
    ex_upstream_data(EX_OF(r), res);
}

static void up_failed(rw_upreq *r, int err, bool timeout, int how)
{
    ex_upstream_failed(EX_OF(r), err, timeout, how);
}

static void up_queue_timeout(rw_upreq *r)
{
    ex_queue_timeout(EX_OF(r));
}

static bool up_timer(rw_upreq *r)
{
    rw_exchange *ex = EX_OF(r);
    if (!ex->tunnel || !ex->resp_head_sent)
        return false; /* a real upstream timeout */
    /* An idle WebSocket tunnel: a normal end, not an upstream failure. */
    rw_log_debug("closing an idle tunnel");
    rw__c_close(ex->c); /* closes the upstream side too */
    return true;
}

static void up_closing(rw_upreq *r, rw_input *in)
{
    rw_exchange *ex = EX_OF(r);
    if (ex->resp_inflight > 0 && !ex->resp_held && ex->c->held.data == NULL) {
        /* The client send in flight reads from the upstream's input: the
         * client keeps it until that send completes. */
        rw__input_move(&ex->c->held, in);
        ex->resp_inflight = 0;
    }
}

static const rw_upowner ex_owner = {
    .ready = up_ready,
    .sent = up_sent,
    .data = up_data,
    .failed = up_failed,
    .queue_timeout = up_queue_timeout,
    .timer = up_timer,
    .closing = up_closing,
};
