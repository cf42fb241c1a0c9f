/* conn.c - client connections: accept, reads and writes, timers, reading
 * and parsing request heads, the answers ringway writes itself (canned
 * responses, errors), and what happens when a response is out (keep-alive,
 * pipelining, linger, close). The exchange it hands a parsed head to is in
 * exchange.c; upgraded connections in tunnel.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#include "proxy_int.h"
#include "ringway/log.h"
#include "ringway/net.h"
#include "ringway/path.h"
#include "ringway/proxy.h"
#include "ringway/tls.h"

#define RW_LINGER_MS 2000

static void c_process_head(rw_conn *c);
static void c_sent(rw_conn *c);

/* ---- client connection I/O ---- */

static void on_c_timer(rw_timer *t)
{
    rw_conn *c = RW_CONTAINER_OF(t, rw_conn, timer);
    switch (c->state) {
    case RW_C_HEAD:
        if (c->ex != NULL && !(c->wr.flags & RW_OPF_PENDING)) {
            /* From now on input is discarded, never parsed as a head. */
            c->state = RW_C_BUSY;
            c->ex->req_abandoned = true;
            c->ex->req.nheaders = 0;
            c->ex->method = RW_METHOD_GET;
            c->close_after = true;
            rw__ex_send_error(c->ex, 408, "request header timeout");
            return;
        }
        rw__c_close(c);
        return;
    default:
        rw__c_close(c); /* keep-alive idle, body read, send or linger timeout */
        return;
    }
}

void rw__c_timer(rw_conn *c, uint32_t ms)
{
    if (ms == 0)
        rw_timer_cancel(timers(c->w), &c->timer);
    else
        rw_timer_set(timers(c->w), &c->timer, now_ms(c->w) + ms);
}

static void c_maybe_free(rw_conn *c)
{
    if (c->state != RW_C_CLOSING || c->pending > 0)
        return;
    rw_pworker *w = c->w;
    rw_timer_cancel(timers(w), &c->timer);
    if (c->ex != NULL)
        rw__ex_put(c->ex); /* only now: our cancelled sends may have read from it */
    rw__input_release(w, &c->in);
    rw__input_release(w, &c->held);
    rw_tr_close(w->loop, &c->tr);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->nconns--;
    rw_worker_conn_closed(w->core);
    c->next = w->free_conns;
    w->free_conns = c;
}

void rw__c_close(rw_conn *c)
{
    if (c->state == RW_C_CLOSING)
        return;
    c->state = RW_C_CLOSING;
    if (c->ex != NULL) {
        rw_exchange *ex = c->ex;
        rw_upconn *u = ex->ur.up;
        rw_timer_cancel(timers(c->w), &ex->total_timer);
        rw_timer_cancel(timers(c->w), &ex->retry_timer);
        rw__upconn_dequeue(&ex->ur);
        if (u != NULL) {
            if (ex->req_inflight > 0 && !ex->req_held && u->held.data == NULL) {
                /* The upstream send in flight reads our input: it keeps it. */
                rw__input_move(&u->held, &c->in);
                ex->req_inflight = 0;
            }
            rw__upconn_close(u);
            ex->ur.up = NULL;
        }
    }
    rw_timer_cancel(timers(c->w), &c->timer);
    if (c->rd.flags & RW_OPF_PENDING)
        rw_tr_cancel(c->w->loop, &c->tr, &c->rd);
    if (c->wr.flags & RW_OPF_PENDING)
        rw_tr_cancel(c->w->loop, &c->tr, &c->wr);
    c_maybe_free(c);
}

/* Final response sent on a connection we close: stop writing, drain what the
 * client still sends for a moment (so our response is not reset), then close. */
static void c_linger(rw_conn *c)
{
    if (c->ex != NULL)
        rw__ex_put(c->ex);
    c->state = RW_C_LINGER;
    rw_tr_shutdown_wr(&c->tr);
    if (!(c->rd.flags & RW_OPF_PENDING))
        rw__input_release(c->w, &c->in); /* else released when that read completes */
    rw__c_timer(c, RW_LINGER_MS);
    if (!(c->rd.flags & RW_OPF_PENDING)) {
        c->pending++;
        rw_tr_recv(c->w->loop, &c->tr, &c->rd);
    }
}

void rw__c_send(rw_conn *c, struct iovec *iov, int iovcnt)
{
    int k = 0;
    for (int i = 0; i < iovcnt && k < (int)RW_ARRAY_LEN(c->iov); i++)
        if (iov[i].iov_len > 0)
            c->iov[k++] = iov[i];
    c->iovcnt = k;
    c->pending++;
    rw__c_timer(c, cfg_of(c->w)->http.send_timeout_ms);
    rw_tr_send(c->w->loop, &c->tr, &c->wr, c->iov, c->iovcnt);
}

static void c_sent(rw_conn *c);

static void on_c_write(rw_op *op, int res)
{
    rw_conn *c = op->data;
    c->pending--;
    if (c->state == RW_C_CLOSING) {
        c_maybe_free(c);
        return;
    }
    if (res < 0) {
        rw__c_close(c); /* client went away */
        return;
    }
    if (c->ex != NULL)
        c->ex->bytes_out += (uint64_t)res;
    if (rw_iov_advance(c->iov, &c->iovcnt, (size_t)res)) { /* short send: the rest */
        c->pending++;
        rw__c_timer(c, cfg_of(c->w)->http.send_timeout_ms);
        rw_tr_send(c->w->loop, &c->tr, &c->wr, c->iov, c->iovcnt);
        return;
    }
    if (c->held.data != NULL)
        rw__input_release(c->w, &c->held); /* the send that read it is complete */
    /* A body read may still be waiting: it keeps its own deadline. */
    bool body_read = (c->rd.flags & RW_OPF_PENDING) && c->ex != NULL && !c->ex->req_done;
    rw__c_timer(c, body_read ? cfg_of(c->w)->http.client_body_timeout_ms : 0);
    c_sent(c);
}

/* ---- responses produced by ringway itself ---- */

/* The persistence of the response to ex (the one rule, rw_http_persist):
 * marks the connection to close when the response says so. */
int rw__ex_persist(rw_exchange *ex)
{
    rw_conn *c = ex->c;
    int mode = rw_http_persist(ex->keep_alive && !c->close_after && !c->w->draining, ex->minor);
    if (mode == RW_PERSIST_CLOSE)
        c->close_after = true;
    return mode;
}

/* "Header: id" and its CRLF into buf (empty when request ids are off);
 * returns the length. */
static int reqid_line(rw_exchange *ex, char *buf, size_t cap)
{
    rw_str h = reqid_header(ex->c->w);
    if (h.len == 0)
        return 0;
    return snprintf(buf, cap, "%.*s: %.*s\r\n", (int)h.len, h.p, (int)ex->reqid_len, ex->reqid);
}

void rw__send_canned(rw_exchange *ex, const rw_canned *cn)
{
    rw_conn *c = ex->c;
    int mode = rw__ex_persist(ex);
    bool head = ex->method == RW_METHOD_HEAD;
    struct iovec iov[3];
    int n = 0;
    int k = reqid_line(ex, ex->errbuf, sizeof(ex->errbuf) - 2 - ex->hsts.len);
    if (ex->hsts.len > 0) { /* route.hsts on a TLS connection (at most ~160 bytes, fits) */
        memcpy(ex->errbuf + k, ex->hsts.p, ex->hsts.len);
        k += (int)ex->hsts.len;
    }
    if (k > 0) {
        /* The prebuilt head, then the request id, HSTS and the blank line, then the body. */
        uint32_t end = cn->head_len[mode] - 2;
        iov[n++] = (struct iovec){cn->text[mode], end};
        memcpy(ex->errbuf + k, "\r\n", 2);
        iov[n++] = (struct iovec){ex->errbuf, (size_t)k + 2};
        if (!head)
            iov[n++] =
                (struct iovec){cn->text[mode] + cn->head_len[mode], cn->len[mode] - cn->head_len[mode]};
    } else {
        iov[n++] = (struct iovec){cn->text[mode], head ? cn->head_len[mode] : cn->len[mode]};
    }
    ex->resp_head_sent = true;
    ex->resp_done = true;
    ex->local = true;
    ex->req_done = ex->req_body == RW_BODY_NONE;
    ex->status = cn->status;
    count_status(c->w, cn->status);
    c->sending = SENT_FINAL;
    rw__c_send(c, iov, n);
}

void rw__ex_send_error(rw_exchange *ex, int status, const char *msg)
{
    rw__ex_send_error_x(ex, status, msg, NULL, 0);
}

void rw__ex_send_error_x(rw_exchange *ex, int status, const char *msg, const char *extra, size_t extra_len)
{
    rw_conn *c = ex->c;
    if (ex->resp_head_sent) {
        rw__c_close(c); /* too late for a status: cut the connection */
        return;
    }
    rw__upconn_dequeue(&ex->ur);
    rw_timer_cancel(timers(c->w), &ex->retry_timer); /* a retry waiting for its backoff: no more */
    if (ex->ur.up != NULL) {
        rw__upconn_close(ex->ur.up);
        ex->ur.up = NULL;
    }
    if (c->wr.flags & RW_OPF_PENDING) {
        /* Only our 100-continue can be in flight: answer when it is out. */
        ex->err_status = status;
        ex->err_msg = msg;
        return;
    }
    if (ex->reqid_len == 0)
        rw__make_reqid(ex, false); /* the head may not have parsed: do not read it */
    /* An unread request body leaves the connection out of sync: close it. */
    if (!ex->req_done && ex->req_body != RW_BODY_NONE)
        c->close_after = true;
    if (status == 400 || status == 408 || status == 413 || status == 414 || status == 431 || status == 501 ||
        status == 505)
        c->close_after = true;
    rw_str conn = rw_http_persist_line(rw__ex_persist(ex));
    char body[256];
    int blen = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"status\":%d,\"request_id\":\"%.*s\"}\n", msg,
                        status, (int)ex->reqid_len, ex->reqid);
    char idl[RW_REQID_MAX + 80];
    int il = reqid_line(ex, idl, sizeof(idl));
    int n = snprintf(ex->errbuf, sizeof(ex->errbuf),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     "Cache-Control: no-store\r\n%.*s%.*s%.*s%.*s\r\n%s",
                     status, rw_http_reason(status), blen, il, idl, (int)extra_len, extra ? extra : "",
                     (int)ex->hsts.len, ex->hsts.p ? ex->hsts.p : "", (int)conn.len, conn.p,
                     ex->method == RW_METHOD_HEAD ? "" : body);
    if (n < 0 || n >= (int)sizeof(ex->errbuf))
        n = (int)sizeof(ex->errbuf) - 1;
    ex->resp_head_sent = true;
    ex->resp_done = true;
    ex->local = true;
    ex->status = status;
    count_status(c->w, status);
    struct iovec iov = {ex->errbuf, (size_t)n};
    c->sending = SENT_FINAL;
    rw__c_send(c, &iov, 1);
}

/* Host names and IP literals only: a Host with anything else is not echoed
 * into a Location. */
static bool redirect_host_ok(rw_str h)
{
    if (h.len == 0)
        return false;
    for (size_t i = 0; i < h.len; i++) {
        char ch = h.p[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '-' ||
              ch == '.' || ch == '_' || ch == '[' || ch == ']' || ch == ':'))
            return false;
    }
    return true;
}

void rw__ex_send_https_redirect(rw_exchange *ex, rw_str host, uint16_t port)
{
    rw_conn *c = ex->c;
    const rw_http_request *rq = &ex->req;
    static const char body[] = "Use HTTPS.\n";
    if (!redirect_host_ok(host)) {
        rw__ex_send_error(ex, 400, "https_redirect needs a valid Host header");
        return;
    }
    if (!ex->req_done && ex->req_body != RW_BODY_NONE)
        c->close_after = true; /* the body is not read */
    rw_str conn = rw_http_persist_line(rw__ex_persist(ex));
    char idl[RW_REQID_MAX + 80];
    int il = reqid_line(ex, idl, sizeof(idl));
    char portbuf[8] = "";
    if (port != 443 && port != 0)
        snprintf(portbuf, sizeof(portbuf), ":%u", (unsigned)port);
    int n = snprintf(ex->errbuf, sizeof(ex->errbuf),
                     "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://%.*s%s%.*s%s%.*s\r\n"
                     "Content-Type: text/plain\r\nContent-Length: %zu\r\n%.*s%.*s\r\n%s",
                     (int)host.len, host.p, portbuf, (int)rq->path.len, rq->path.p, rq->query.len ? "?" : "",
                     (int)rq->query.len, rq->query.p ? rq->query.p : "", sizeof(body) - 1, il, idl,
                     (int)conn.len, conn.p, ex->method == RW_METHOD_HEAD ? "" : body);
    if (n < 0 || n >= (int)sizeof(ex->errbuf)) {
        rw__ex_send_error(ex, 414, "URI too long for an https redirect");
        return;
    }
    ex->resp_head_sent = true;
    ex->resp_done = true;
    ex->local = true;
    ex->status = 308;
    count_status(c->w, 308);
    struct iovec iov = {ex->errbuf, (size_t)n};
    c->sending = SENT_FINAL;
    rw__c_send(c, &iov, 1);
}

static void c_sent(rw_conn *c)
{
    rw_exchange *ex = c->ex;
    switch (c->sending) {
    case SENT_CONTINUE:
        if (ex == NULL)
            return;
        if (ex->err_status != 0) {
            int st = ex->err_status;
            ex->err_status = 0;
            rw__ex_send_error(ex, st, ex->err_msg);
            return;
        }
        rw__ex_try_forward_head(ex);
        return;
    case SENT_RESPONSE:
        if (ex == NULL)
            return;
        rw__ex_forward_response(ex);
        return;
    case SENT_TUNNEL_HEAD:
        if (ex != NULL && ex->ur.up != NULL)
            rw__tunnel_start(ex);
        return;
    case SENT_FINAL:
    default:
        rw__c_request_done(c);
        return;
    }
}

/* ---- reading requests ---- */

static void on_c_read(rw_op *op, int res);

void rw__c_read_head(rw_conn *c)
{
    c->pending++;
    rw__input_recv(c->w->loop, &c->rd, &c->tr, &c->in);
}

static void on_c_read(rw_op *op, int res)
{
    rw_conn *c = op->data;
    rw_pworker *w = c->w;
    c->pending--;
    if (c->state == RW_C_CLOSING || c->state == RW_C_LINGER) {
        if (res > 0 && op->kind == RW_OP_RECV)
            rw_loop_buf_release(w->loop, op->buf_id);
        if (c->state == RW_C_LINGER)
            rw__input_release(w, &c->in); /* no read is pending now */
        if (c->state == RW_C_LINGER && res > 0) {
            c->pending++;
            rw_tr_recv(w->loop, &c->tr, &c->rd); /* keep discarding until EOF or the timer */
            return;
        }
        if (c->state == RW_C_LINGER) {
            rw__c_close(c);
            return;
        }
        c_maybe_free(c);
        return;
    }
    if (res == 0 && c->ex != NULL && c->ex->tunnel && c->ex->ur.up != NULL) {
        c->ex->c_eof = true; /* half-close: pass it on, keep the other way open */
        rw_tr_shutdown_wr(&c->ex->ur.up->tr);
        rw__tunnel_close_if_done(c->ex);
        return;
    }
    if (res <= 0) {
        if (res < 0 && res != -ECONNRESET && res != -ECANCELED)
            rw_log_debug("client read failed: %s", strerror(-res));
        rw__c_close(c);
        return;
    }
    rw__input_take(&c->in, op, res);
    if (c->state == RW_C_BUSY) {
        if (c->ex != NULL && !c->ex->req_abandoned) {
            rw__ex_client_body(c->ex);
        } else {
            rw__input_release(w, &c->in); /* body of an abandoned request */
            c->close_after = true;
        }
        return;
    }
    c_process_head(c);
}

static void c_process_head(rw_conn *c)
{
    rw_pworker *w = c->w;
    if (c->ex == NULL) {
        c->ex = rw__ex_get(c);
        if (c->ex == NULL) {
            rw_log_error("out of memory for a request: closing the connection");
            rw__c_close(c);
            return;
        }
    }
    rw_exchange *ex = c->ex;
    const rw_snapshot *snap = w->ws->snap;
    ssize_t r = rw_http_parse_request(c->in.data + c->in.off, c->in.len - c->in.off, &snap->limits, &ex->req);
    if (r == RW_HTTP_INCOMPLETE) {
        if (c->state == RW_C_IDLE) {
            c->state = RW_C_HEAD;
            rw__c_timer(c, cfg_of(w)->http.client_header_timeout_ms);
        }
        if (rw__input_to_hbuf(w, &c->in) != 0) {
            rw__c_close(c);
            return;
        }
        if (c->in.len >= c->in.hb->cap) {
            ex->method = RW_METHOD_GET;
            rw__ex_send_error(ex, 431, "request header fields too large");
            return;
        }
        rw__c_read_head(c);
        return;
    }
    if (r < 0) {
        w->stats->bad_requests++;
        ex->method = RW_METHOD_GET;
        ex->req_done = true;
        c->state = RW_C_BUSY;
        int status = (int)-r;
        const char *msg = status == 414   ? "request target too long"
                          : status == 431 ? "request header fields too large"
                          : status == 413 ? "content too large"
                          : status == 501 ? "not implemented"
                          : status == 505 ? "http version not supported"
                                          : "bad request";
        c->close_after = true;
        ex->req.nheaders = 0; /* a failed parse leaves no headers worth reading */
        rw__input_release(w, &c->in);
        rw__ex_send_error(ex, status, msg);
        return;
    }
    rw__ex_start(c, ex, (size_t)r);
}

/* The response to the current request has been written. */
void rw__c_request_done(rw_conn *c)
{
    rw_pworker *w = c->w;
    if (c->ex != NULL)
        rw__ex_put(c->ex);
    if (c->close_after || (w->draining && w->drain_grace_ms == 0)) {
        c_linger(c);
        return;
    }
    c->state = RW_C_IDLE;
    if (c->in.len > c->in.off) {
        c_process_head(c); /* a pipelined request is already here */
        return;
    }
    rw__input_release(w, &c->in);
    /* Draining with a grace: the response promised keep-alive, so the
     * client may be sending its next request now; it gets an answer (with
     * Connection: close) if it comes within the grace. */
    rw__c_timer(c, w->draining ? w->drain_grace_ms : cfg_of(w)->http.keepalive_timeout_ms);
    if (!(c->rd.flags & RW_OPF_PENDING))
        rw__c_read_head(c);
}

/* ---- accept ---- */

/* Takes a connection from the free list, refilling it with a new slab when
 * it is empty; NULL when out of memory. */
static rw_conn *conn_get(rw_pworker *w)
{
    if (RW_UNLIKELY(w->free_conns == NULL)) {
        rw_conn_slab *sl = malloc(sizeof(*sl));
        if (sl == NULL)
            return NULL;
        sl->next = w->conn_slabs;
        w->conn_slabs = sl;
        for (size_t i = RW_CONN_SLAB; i-- > 0;) { /* lowest address first out */
            sl->conns[i].next = w->free_conns;
            w->free_conns = &sl->conns[i];
        }
    }
    rw_conn *c = w->free_conns;
    w->free_conns = c->next;
    return c;
}

void rw__conn_accepted(rw_pworker *w, int fd, size_t listener)
{
    rw_conn *c = conn_get(w);
    if (c == NULL) {
        close(fd);
        rw_worker_conn_closed(w->core);
        return;
    }
    w->nconns++;
    memset(c, 0, sizeof(*c));
    c->w = w;
    const rw_config *cfg = cfg_of(w);
    const rw_tls_cfg *tls =
        cfg->listen_tls != NULL && listener < cfg->nlisten ? cfg->listen_tls[listener] : NULL;
    if (tls == NULL) {
        rw_transport_plain(&c->tr, fd);
    } else if (rw_tls_accept(tls->server, w->loop, &c->tr, fd) != 0) {
        rw_log_error("out of memory for a TLS session: closing the connection");
        close(fd);
        w->nconns--;
        c->next = w->free_conns;
        w->free_conns = c;
        rw_worker_conn_closed(w->core);
        return;
    }
    c->state = RW_C_IDLE;
    c->in.buf_id = -1;
    c->held.buf_id = -1;
    c->rd.cb = on_c_read;
    c->rd.data = c;
    c->wr.cb = on_c_write;
    c->wr.data = c;
    rw_timer_init(&c->timer, on_c_timer);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        c->peer_len = (uint8_t)rw_net_addr_text(&ss, c->peer, sizeof(c->peer));
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    /* TLS: the handshake and the first bytes of the request head within
     * handshake_timeout; the head's first bytes re-arm client_header_timeout. */
    rw__c_timer(c, tls != NULL && tls->handshake_timeout_ms > 0 ? tls->handshake_timeout_ms
                                                                : cfg->http.client_header_timeout_ms);
    rw__c_read_head(c);
}

void rw__worker_close_idle(rw_pworker *w, uint32_t grace_ms)
{
    rw_conn *c = w->conns;
    while (c != NULL) {
        rw_conn *next = c->next;
        if (c->state == RW_C_IDLE && grace_ms == 0)
            rw__c_close(c);
        else if (c->state == RW_C_IDLE) /* the idle timer closes it; a request first gets Connection: close */
            rw__c_timer(c, grace_ms);
        else if (grace_ms == 0)
            c->close_after = true;
        /* else (grace): a response whose head is not out yet says close
         * (w->draining); one that already promised keep-alive keeps the
         * promise, and rw__c_request_done gives the connection the grace. */
        c = next;
    }
    rw__wstate_close_idle(w, w->ws);
}

void rw__worker_close_all(rw_pworker *w)
{
    rw_conn *c = w->conns;
    while (c != NULL) {
        rw_conn *next = c->next;
        if (c->state == RW_C_BUSY && c->ex != NULL) {
            if (c->ex->tunnel)
                w->stats->cut_tunnels++;
            else
                w->stats->cut_requests++;
        }
        rw__c_close(c);
        c = next;
    }
    rw__wstate_close_idle(w, w->ws);
}
