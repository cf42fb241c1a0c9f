/* upstream.c - the upstream client: per-worker load-balancer state and
 * keep-alive pools per instance, connection set-up, idle close detection,
 * reuse and the wait queue. It knows a request only as an rw_upreq and calls
 * its owner back through rw_upowner (ready, sent, data, failed, queue
 * timeout, timer, closing): nothing here names an exchange.
 *
 * A pool holds at most max_conns open connections (per instance, per
 * worker). An exchange that finds none idle and the pool full waits in the
 * pool's FIFO queue, for at most timeouts.queue: a connection that finishes
 * a response goes straight to the first waiter, and a closed one lets the
 * first waiter open a new one. Without the cap, a burst of N concurrent
 * requests opens N connections and closes all but max_idle of them after,
 * so a busy gateway reconnects all the time (measured with 10,000 clients:
 * 35,651 connects for 58,543 requests).
 *
 * An idle pooled connection keeps a receive armed (holding no buffer on
 * io_uring), so a peer that closes it is noticed at once and it is dropped
 * before anyone reuses it. The same receive becomes the response read when the
 * connection is taken for a request.
 *
 * A service with tls: runs the client handshake after the TCP connect, still
 * in RW_U_CONNECTING (under the connect timeout; a failure is a connect
 * failure for retries and outlier detection), with the read op; pooled
 * connections stay TLS sessions. Each pool keeps the newest resumable
 * session its connections received, offered by the next connect. */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy_int.h"
#include "ringway/instset.h"
#include "ringway/log.h"
#include "ringway/net.h"
#include "ringway/tls.h"

/* ---- input buffers (shared with conn.c and exchange.c) ---- */

rw_hbuf *rw__hbuf_get(rw_pworker *w)
{
    rw_hbuf *hb = w->free_hbufs;
    if (hb != NULL) {
        w->free_hbufs = hb->next;
        return hb;
    }
    hb = malloc(sizeof(*hb) + w->hbuf_cap);
    if (hb != NULL)
        hb->cap = w->hbuf_cap;
    return hb;
}

void rw__hbuf_put(rw_pworker *w, rw_hbuf *hb)
{
    hb->next = w->free_hbufs;
    w->free_hbufs = hb;
}

void rw__input_release(rw_pworker *w, rw_input *in)
{
    if (in->buf_id >= 0)
        rw_loop_buf_release(w->loop, (uint32_t)in->buf_id);
    if (in->hb != NULL)
        rw__hbuf_put(w, in->hb);
    in->data = NULL;
    in->len = in->off = 0;
    in->buf_id = -1;
    in->hb = NULL;
}

int rw__input_to_hbuf(rw_pworker *w, rw_input *in)
{
    uint32_t avail = in->len - in->off;
    if (in->hb != NULL) {
        if (in->off > 0) {
            memmove(in->hb->data, in->data + in->off, avail);
            in->data = in->hb->data;
            in->len = avail;
            in->off = 0;
        }
        return 0;
    }
    rw_hbuf *hb = rw__hbuf_get(w);
    if (hb == NULL)
        return -1;
    if (avail > hb->cap)
        avail = hb->cap; /* cannot happen: loop buffers are no larger */
    if (avail > 0)
        memcpy(hb->data, in->data + in->off, avail);
    if (in->buf_id >= 0)
        rw_loop_buf_release(w->loop, (uint32_t)in->buf_id);
    in->buf_id = -1;
    in->hb = hb;
    in->data = hb->data;
    in->len = avail;
    in->off = 0;
    return 0;
}

void rw__input_consume(rw_pworker *w, rw_input *in, uint32_t n)
{
    in->off += n;
    if (in->off >= in->len)
        rw__input_release(w, in);
}

void rw__input_recv(rw_loop *l, rw_op *op, rw_transport *t, rw_input *in)
{
    if (in->hb != NULL)
        rw_tr_recv_into(l, t, op, in->data + in->len, in->hb->cap - in->len);
    else
        rw_tr_recv(l, t, op);
}

void rw__input_take(rw_input *in, rw_op *op, int res)
{
    if (res <= 0)
        return;
    if (op->kind == RW_OP_RECV) {
        /* Only armed with an empty input. */
        in->data = op->buf;
        in->buf_id = (int32_t)op->buf_id;
        in->len = (uint32_t)res;
        in->off = 0;
        op->buf = NULL;
    } else {
        in->len += (uint32_t)res;
    }
}

void rw__input_move(rw_input *to, rw_input *from)
{
    *to = *from;
    memset(from, 0, sizeof(*from));
    from->buf_id = -1;
}

/* ---- per-snapshot state ---- */

int rw__wstate_new(rw_pworker *w, rw_snapshot *snap, rw_wstate **out)
{
    const rw_config *cfg = snap->cfg;
    rw_wstate *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return -ENOMEM;
    ws->snap = snap;
    ws->users = 1;
    ws->svcs = calloc(cfg->nservices ? cfg->nservices : 1, sizeof(rw_svc_state));
    if (ws->svcs == NULL)
        goto fail;
    for (size_t i = 0; i < cfg->nservices; i++) {
        const rw_service_cfg *sc = &cfg->services[i];
        rw_svc_state *ss = &ws->svcs[i];
        const rw_instset *set = snap->insts[i];
        uint32_t n = set->n;
        size_t m = n ? n : 1; /* none yet (discovery): picks answer 503 */
        uint32_t *weights = calloc(m, sizeof(uint32_t));
        const char **names = calloc(m, sizeof(char *));
        ss->pools = calloc(m, sizeof(rw_upool));
        ss->active = calloc(m, sizeof(uint32_t));
        ss->excluded = calloc(m, 1);
        ss->down = calloc(m, 1);
        ss->recheck_at = 0; /* read the node-wide state at the first pick */
        if (weights == NULL || names == NULL || ss->pools == NULL || ss->active == NULL ||
            ss->excluded == NULL || ss->down == NULL) {
            free(weights);
            free(names);
            goto fail;
        }
        for (uint32_t k = 0; k < n; k++) {
            weights[k] = set->v[k].weight;
            names[k] = set->v[k].address;
        }
        /* The hash ring is keyed by address, so keys stay put across reloads. */
        int rc = n == 0 ? 0
                        : rw_lb_init_named(&ss->lb, sc->lb, weights, names, n,
                                           (uint64_t)(w->id + 1) * 0x9E3779B97F4A7C15ull ^ snap->generation);
        free(weights);
        free(names);
        if (rc != 0)
            goto fail;
    }
    *out = ws;
    return 0;
fail:
    ws->users = 0;
    /* free partially built state without touching the snapshot reference */
    for (size_t i = 0; ws->svcs != NULL && i < cfg->nservices; i++) {
        rw_lb_free(&ws->svcs[i].lb);
        free(ws->svcs[i].pools);
        free(ws->svcs[i].active);
        free(ws->svcs[i].excluded);
        free(ws->svcs[i].down);
    }
    free(ws->svcs);
    free(ws);
    return -ENOMEM;
}

void rw__wstate_put(rw_pworker *w, rw_wstate *ws)
{
    if (--ws->users > 0)
        return;
    for (rw_wstate **pp = &w->retiring; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == ws) {
            *pp = ws->next;
            break;
        }
    }
    const rw_config *cfg = ws->snap->cfg;
    for (size_t i = 0; i < cfg->nservices; i++) {
        rw_lb_free(&ws->svcs[i].lb);
        for (size_t k = 0; k < ws->snap->insts[i]->n; k++)
            rw_tls_session_free(ws->svcs[i].pools[k].tls_sess);
        free(ws->svcs[i].pools);
        free(ws->svcs[i].active);
        free(ws->svcs[i].excluded);
        free(ws->svcs[i].down);
    }
    free(ws->svcs);
    rw_snapshot_unref(ws->snap);
    free(ws);
}

void rw__wstate_close_idle(rw_pworker *w, rw_wstate *ws)
{
    (void)w;
    const rw_config *cfg = ws->snap->cfg;
    for (size_t i = 0; i < cfg->nservices; i++) {
        for (size_t k = 0; k < ws->snap->insts[i]->n; k++) {
            rw_upool *p = &ws->svcs[i].pools[k];
            while (p->idle != NULL)
                rw__upconn_close(p->idle); /* unlinks itself */
        }
    }
}

/* ---- connections ---- */

static void idle_unlink(rw_upconn *u)
{
    rw_upool *p = &u->ws->svcs[u->svc].pools[u->inst];
    if (u->prev != NULL)
        u->prev->next = u->next;
    else if (p->idle == u)
        p->idle = u->next;
    else
        return; /* not linked */
    if (u->next != NULL)
        u->next->prev = u->prev;
    u->next = u->prev = NULL;
    p->nidle--;
}

static void pool_kick(rw_wstate *ws, int svc, int inst);

static void upconn_maybe_free(rw_upconn *u)
{
    if (u->state != RW_U_CLOSING || u->pending > 0)
        return;
    rw_pworker *w = u->w;
    rw_timer_cancel(rw_loop_timers(w->loop), &u->timer);
    rw__input_release(w, &u->in);
    rw__input_release(w, &u->held);
    if (u->tr.fd >= 0)
        rw_tr_close(w->loop, &u->tr);
    w->nupconns--;
    rw__wstate_put(w, u->ws);
    free(u);
}

void rw__upconn_close(rw_upconn *u)
{
    if (u->state == RW_U_CLOSING)
        return;
    if (u->state == RW_U_IDLE)
        idle_unlink(u);
    u->state = RW_U_CLOSING;
    rw_wstate *ws = u->ws;
    int svc = u->svc, inst = u->inst;
    ws->svcs[svc].pools[inst].nconns--;
    if (u->req != NULL)
        u->req->owner->closing(u->req, &u->in); /* a send of the owner's may read our input */
    u->req = NULL;
    rw_timer_cancel(rw_loop_timers(u->w->loop), &u->timer);
    if (u->rd.flags & RW_OPF_PENDING)
        rw_tr_cancel(u->w->loop, &u->tr, &u->rd);
    if (u->wr.flags & RW_OPF_PENDING)
        rw_tr_cancel(u->w->loop, &u->tr, &u->wr);
    /* A slot is free: the first waiter opens a connection (ws is alive: the
     * waiters and u hold references). */
    pool_kick(ws, svc, inst);
    upconn_maybe_free(u);
}

/* Fails the request that u serves (if any) and closes u. */
static void upconn_fail(rw_upconn *u, int err, bool timeout)
{
    rw_upreq *r = u->req;
    int how = u->state == RW_U_CONNECTING                ? RW_UPFAIL_CONNECT
              : (u->reused && !u->got_bytes && !timeout) ? RW_UPFAIL_STALE
                                                         : RW_UPFAIL_OTHER;
    rw__upconn_close(u);
    if (r != NULL) {
        r->up = NULL;
        r->owner->failed(r, err, timeout, how);
    }
}

static void on_up_timer(rw_timer *t)
{
    rw_upconn *u = RW_CONTAINER_OF(t, rw_upconn, timer);
    if (u->req != NULL && u->state == RW_U_ACTIVE && u->req->owner->timer(u->req))
        return; /* the owner's business (an idle tunnel), not an upstream failure */
    if (u->state == RW_U_IDLE) {
        rw__upconn_close(u);
        return;
    }
    upconn_fail(u, ETIMEDOUT, true);
}

void rw__upconn_timeout(rw_upconn *u, uint32_t ms)
{
    rw_timers *tw = rw_loop_timers(u->w->loop);
    if (ms == 0)
        rw_timer_cancel(tw, &u->timer);
    else
        rw_timer_set(tw, &u->timer, rw_loop_now(u->w->loop) + ms);
}

/* The connection is up (TCP, and TLS when the service has it): serve. */
static void upconn_connected(rw_upconn *u)
{
    u->state = RW_U_ACTIVE;
    rw__upconn_timeout(u, 0);
    rw__upconn_recv(u);
    if (u->req != NULL)
        u->req->owner->ready(u->req);
    else
        rw__upconn_close(u);
}

static void on_up_read(rw_op *op, int res)
{
    rw_upconn *u = op->data;
    u->pending--;
    if (u->state == RW_U_CLOSING) {
        if (res > 0 && op->kind == RW_OP_RECV)
            rw_loop_buf_release(u->w->loop, op->buf_id);
        upconn_maybe_free(u);
        return;
    }
    if (u->state == RW_U_IDLE) {
        /* Closed by the peer (or unexpected bytes) while pooled: drop it. */
        if (res > 0 && op->kind == RW_OP_RECV)
            rw_loop_buf_release(u->w->loop, op->buf_id);
        rw__upconn_close(u);
        return;
    }
    if (u->state == RW_U_CONNECTING) { /* the TLS handshake (rw_tls_handshake) */
        if (res < 0) {
            if (res == -RW_TLS_EVERIFY || res == -RW_TLS_EHANDSHAKE)
                rw_log_warn("upstream %s (%s): TLS %s: %s", u->ws->snap->cfg->services[u->svc].name,
                            RW_INST(u->ws, u->svc, u->inst)->address,
                            res == -RW_TLS_EVERIFY ? "certificate verification failed" : "handshake failed",
                            rw_tls_failure(&u->tr));
            upconn_fail(u, -res, false);
            return;
        }
        upconn_connected(u);
        return;
    }
    if (res == -ECANCELED) {
        upconn_fail(u, ECANCELED, false); /* tell the exchange, if any */
        return;
    }
    if (res > 0) {
        rw__input_take(&u->in, op, res);
        u->got_bytes = true;
    }
    if (u->req == NULL) {
        rw__upconn_close(u);
        return;
    }
    u->req->owner->data(u->req, res);
}

void rw__upconn_recv(rw_upconn *u)
{
    if (u->rd.flags & RW_OPF_PENDING)
        return;
    u->pending++;
    rw__input_recv(u->w->loop, &u->rd, &u->tr, &u->in);
}

static void on_up_write(rw_op *op, int res)
{
    rw_upconn *u = op->data;
    u->pending--;
    if (u->state == RW_U_CLOSING) {
        upconn_maybe_free(u);
        return;
    }
    if (u->state == RW_U_CONNECTING) {
        if (res < 0) {
            rw_log_debug("connect to %s failed: %s", RW_INST(u->ws, u->svc, u->inst)->address,
                         strerror(-res));
            upconn_fail(u, -res, false);
            return;
        }
        const rw_upstream_tls_cfg *tc = u->ws->snap->cfg->services[u->svc].tls;
        if (tc != NULL && u->tr.kind == RW_TRANSPORT_PLAIN) {
            rw_upool *p = &u->ws->svcs[u->svc].pools[u->inst];
            if (rw_tls_connect(tc->client, u->w->loop, &u->tr, u->tr.fd, tc->sni,
                               RW_INST(u->ws, u->svc, u->inst)->host, p->tls_sess) != 0) {
                upconn_fail(u, ENOMEM, false);
                return;
            }
            u->pending++;
            rw_tls_handshake(u->w->loop, &u->tr, &u->rd); /* on_up_read completes it */
            return;
        }
        upconn_connected(u);
        return;
    }
    if (res < 0) {
        upconn_fail(u, -res, false);
        return;
    }
    if (rw_iov_advance(u->iov, &u->iovcnt, (size_t)res)) { /* short send: the rest */
        u->pending++;
        rw_tr_send(u->w->loop, &u->tr, &u->wr, u->iov, u->iovcnt);
        return;
    }
    if (u->held.data != NULL)
        rw__input_release(u->w, &u->held); /* the send that read it is complete */
    if (u->req != NULL)
        u->req->owner->sent(u->req, 0);
}

void rw__upconn_send(rw_upconn *u, struct iovec *iov, int iovcnt)
{
    int k = 0;
    for (int i = 0; i < iovcnt && k < (int)RW_ARRAY_LEN(u->iov); i++)
        if (iov[i].iov_len > 0)
            u->iov[k++] = iov[i];
    u->iovcnt = k;
    if (k == 0) {
        u->req->owner->sent(u->req, 0);
        return;
    }
    u->pending++;
    rw_tr_send(u->w->loop, &u->tr, &u->wr, u->iov, u->iovcnt);
}

/* ---- the wait queue ---- */

static void on_queue_timer(rw_timer *t)
{
    rw_upreq *r = RW_CONTAINER_OF(t, rw_upreq, queue_timer);
    r->owner->queue_timeout(r);
}

/* Queues r at the tail, or at the head (a retry that already waited its turn). */
static void enqueue(rw_upreq *r, rw_upool *p, bool front)
{
    rw_pworker *w = r->w;
    r->queued = true;
    r->qprev = front ? NULL : p->wait_tail;
    r->qnext = front ? p->wait_head : NULL;
    if (r->qprev != NULL)
        r->qprev->qnext = r;
    else
        p->wait_head = r;
    if (r->qnext != NULL)
        r->qnext->qprev = r;
    else
        p->wait_tail = r;
    uint32_t ms =
        r->svc_cfg->queue_timeout_ms ? r->svc_cfg->queue_timeout_ms : r->svc_cfg->connect_timeout_ms;
    rw_timer_init(&r->queue_timer, on_queue_timer);
    rw_timer_set(rw_loop_timers(w->loop), &r->queue_timer, rw_loop_now(w->loop) + ms);
    w->stats->upstream_queued++;
}

void rw__upconn_dequeue(rw_upreq *r)
{
    if (!r->queued)
        return;
    rw_upool *p = &r->ws->svcs[r->svc].pools[r->inst];
    if (r->qprev != NULL)
        r->qprev->qnext = r->qnext;
    else
        p->wait_head = r->qnext;
    if (r->qnext != NULL)
        r->qnext->qprev = r->qprev;
    else
        p->wait_tail = r->qprev;
    r->qnext = r->qprev = NULL;
    r->queued = false;
    rw_timer_cancel(rw_loop_timers(r->w->loop), &r->queue_timer);
}

/* Gives u (just finished with a response, or idle) to r and starts r's
 * request on it. */
static void hand_over(rw_upconn *u, rw_upreq *r)
{
    u->state = RW_U_ACTIVE;
    u->req = r;
    u->reused = true;
    u->got_bytes = false;
    r->up = u;
    rw__upconn_timeout(u, 0);
    u->w->stats->upstream_reuses++;
    rw__upconn_recv(u); /* no-op for an idle one: its receive is armed */
    r->owner->ready(r);
}

static void open_conn(rw_upreq *r);

static void pool_kick(rw_wstate *ws, int svc, int inst)
{
    rw_upool *p = &ws->svcs[svc].pools[inst];
    while (p->wait_head != NULL) {
        rw_upreq *r = p->wait_head;
        uint32_t cap = r->svc_cfg->max_conns;
        if (cap > 0 && p->nconns >= cap)
            return;
        rw__upconn_dequeue(r);
        open_conn(r);
    }
}

void rw__upconn_acquire(rw_upreq *r)
{
    rw_wstate *ws = r->ws;
    rw_upool *p = &ws->svcs[r->svc].pools[r->inst];
    ws->svcs[r->svc].active[r->inst]++;
    r->counted = true;
    if (p->idle != NULL && !r->want_fresh) {
        rw_upconn *u = p->idle;
        idle_unlink(u);
        hand_over(u, r);
        return;
    }
    /* Everything waits its turn behind earlier waiters; a retry after a stale
     * pooled connection (want_fresh) goes first: it had its turn. A handed-
     * over connection just finished a response, so it is not stale. */
    uint32_t cap = r->svc_cfg->max_conns;
    if (cap > 0 && (p->nconns >= cap || (p->wait_head != NULL && !r->want_fresh))) {
        enqueue(r, p, r->want_fresh);
        return;
    }
    open_conn(r);
}

static void open_conn(rw_upreq *r)
{
    rw_pworker *w = r->w;
    rw_wstate *ws = r->ws;
    const rw_instance_cfg *inst = RW_INST(ws, r->svc, r->inst);
    rw_upconn *u = calloc(1, sizeof(*u));
    int fd = u != NULL ? rw_net_upstream_socket(inst->addr.ss.ss_family) : -ENOMEM;
    if (fd < 0) {
        free(u);
        rw_log_error("cannot open a socket to %s: %s", inst->address, strerror(-fd));
        r->up = NULL;
        r->owner->failed(r, -fd, false, RW_UPFAIL_OTHER);
        return;
    }
    u->w = w;
    u->ws = ws;
    u->held.buf_id = -1;
    ws->users++;
    w->nupconns++;
    ws->svcs[r->svc].pools[r->inst].nconns++;
    u->svc = r->svc;
    u->inst = r->inst;
    rw_transport_plain(&u->tr, fd);
    u->in.buf_id = -1;
    u->state = RW_U_CONNECTING;
    u->req = r;
    u->rd.cb = on_up_read;
    u->rd.data = u;
    u->wr.cb = on_up_write;
    u->wr.data = u;
    rw_timer_init(&u->timer, on_up_timer);
    r->up = u;
    w->stats->upstream_connects++;
    rw__upconn_timeout(u, r->svc_cfg->connect_timeout_ms);
    u->pending++;
    rw_loop_connect(w->loop, &u->wr, fd, (const struct sockaddr *)&inst->addr.ss, inst->addr.len);
}

/* Puts u (active, done) on its pool's idle list, or closes it when the pool
 * has enough idle ones. */
static void make_idle(rw_upconn *u)
{
    rw_wstate *ws = u->ws;
    const rw_service_cfg *sc = &ws->snap->cfg->services[u->svc];
    rw_upool *p = &ws->svcs[u->svc].pools[u->inst];
    if (p->nidle >= sc->keepalive_max_idle) {
        rw__upconn_close(u);
        return;
    }
    u->state = RW_U_IDLE;
    u->prev = NULL;
    u->next = p->idle;
    if (p->idle != NULL)
        p->idle->prev = u;
    p->idle = u;
    p->nidle++;
    rw__upconn_timeout(u, sc->keepalive_idle_timeout_ms);
    rw__upconn_recv(u); /* notices a close by the peer while idle; no-op when armed */
}

/* Moves u (not in any list) from an older state to the worker's current one
 * when the current one still has its service (by name) and instance (by
 * address): a reload or a discovery change keeps the pooled connections of
 * the instances it kept. False when it cannot (the caller closes u). */
static bool upconn_migrate(rw_upconn *u)
{
    rw_pworker *w = u->w;
    rw_wstate *old = u->ws, *cur = w->ws;
    const rw_config *ocfg = old->snap->cfg, *ccfg = cur->snap->cfg;
    int svc = -1;
    if (ocfg == ccfg) {
        svc = u->svc; /* a discovery change: the same services */
    } else {
        for (size_t i = 0; i < ccfg->nservices && svc < 0; i++)
            if (strcmp(ccfg->services[i].name, ocfg->services[u->svc].name) == 0)
                svc = (int)i;
    }
    if (svc < 0)
        return false;
    /* TLS settings may have changed with the config: such a connection is not kept. */
    if (ocfg != ccfg && (ocfg->services[u->svc].tls != NULL || ccfg->services[svc].tls != NULL))
        return false;
    int inst = rw_instset_find(cur->snap->insts[svc], RW_INST(old, u->svc, u->inst)->address);
    if (inst < 0)
        return false;
    rw_upool *np = &cur->svcs[svc].pools[inst];
    uint32_t cap = ccfg->services[svc].max_conns;
    if (cap > 0 && np->nconns >= cap)
        return false;
    old->svcs[u->svc].pools[u->inst].nconns--;
    np->nconns++;
    cur->users++;
    u->ws = cur;
    u->svc = svc;
    u->inst = inst;
    rw__wstate_put(w, old); /* u's reference */
    return true;
}

void rw__wstate_move_idle(rw_pworker *w, rw_wstate *old)
{
    const rw_config *cfg = old->snap->cfg;
    for (size_t i = 0; i < cfg->nservices; i++) {
        for (size_t k = 0; k < old->snap->insts[i]->n; k++) {
            rw_upool *p = &old->svcs[i].pools[k];
            while (p->idle != NULL) {
                rw_upconn *u = p->idle;
                if (w->draining) {
                    rw__upconn_close(u); /* unlinks itself */
                    continue;
                }
                idle_unlink(u);
                u->state = RW_U_ACTIVE; /* between lists */
                if (upconn_migrate(u))
                    make_idle(u);
                else
                    rw__upconn_close(u);
            }
        }
    }
}

void rw__upconn_release(rw_upconn *u, bool reusable)
{
    rw_pworker *w = u->w;
    rw_wstate *ws = u->ws;
    rw_upool *p = &ws->svcs[u->svc].pools[u->inst];
    u->req = NULL;
    if (u->tr.kind == RW_TRANSPORT_TLS)
        rw_tls_session_take(&u->tr, &p->tls_sess); /* for the next connect's resumption */
    if (!reusable || w->draining || u->in.len > u->in.off || (u->wr.flags & RW_OPF_PENDING)) {
        rw__upconn_close(u);
        return;
    }
    rw__input_release(w, &u->in);
    if (p->wait_head != NULL) {
        /* Someone waits for a slot: it gets this connection now. */
        rw_upreq *next = p->wait_head;
        rw__upconn_dequeue(next);
        hand_over(u, next);
        return;
    }
    if (ws != w->ws && !upconn_migrate(u)) {
        rw__upconn_close(u);
        return;
    }
    make_idle(u);
}
