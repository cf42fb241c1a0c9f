/* tunnel.c - upgraded connections (WebSocket): after the 101, bytes flow
 * both ways between client and upstream until both sides close; half-closes
 * are passed on. */
#include <sys/socket.h>

#include "proxy_int.h"
#include "ringway/log.h"

/* ---- upgraded connections: a byte tunnel in both directions ---- */

void rw__tunnel_close_if_done(rw_exchange *ex)
{
    if (ex->c_eof && ex->u_eof)
        rw__c_close(ex->c);
}

/* Client bytes (in c->in) go upstream; called when they arrive. */
void rw__tunnel_c2u(rw_exchange *ex)
{
    rw_conn *c = ex->c;
    rw_upconn *u = ex->ur.up;
    uint32_t avail = c->in.len - c->in.off;
    if (u == NULL || avail == 0 || (u->wr.flags & RW_OPF_PENDING))
        return;
    struct iovec iov = {c->in.data + c->in.off, avail};
    ex->req_inflight = avail;
    rw__upconn_timeout(u, ex->ur.svc_cfg->first_byte_timeout_ms);
    rw__upconn_send(u, &iov, 1);
}

/* Upstream bytes (in u->in) go to the client. */
void rw__tunnel_u2c(rw_exchange *ex)
{
    rw_conn *c = ex->c;
    rw_upconn *u = ex->ur.up;
    uint32_t avail = u->in.len - u->in.off;
    if (avail == 0 || (c->wr.flags & RW_OPF_PENDING))
        return;
    struct iovec iov = {u->in.data + u->in.off, avail};
    ex->resp_inflight = avail;
    c->sending = SENT_RESPONSE;
    rw__upconn_timeout(u, ex->ur.svc_cfg->first_byte_timeout_ms);
    rw__c_send(c, &iov, 1);
}

void rw__tunnel_start(rw_exchange *ex)
{
    rw_conn *c = ex->c;
    rw__c_timer(c, 0);
    rw_timer_cancel(timers(c->w), &ex->total_timer); /* tunnels live until idle */
    if (c->in.len > c->in.off)
        rw__tunnel_c2u(ex); /* bytes the client sent right behind its request */
    else if (!(c->rd.flags & RW_OPF_PENDING))
        rw__c_read_head(c);
    if (ex->ur.up->in.len > ex->ur.up->in.off)
        rw__tunnel_u2c(ex);
    else
        rw__upconn_recv(ex->ur.up);
}
