/* transport.h - the byte transport under every client and upstream
 * connection: receive, send, half-close and close, on the connection's
 * worker loop. The HTTP state machine (src/proxy/) only ever calls these, so
 * another transport (TLS records through BoringSSL, kTLS) plugs in here
 * without the state machine changing.
 *
 * Plain sockets are the fast path: a transport with kind RW_TRANSPORT_PLAIN
 * calls the loop directly (inline, no indirect call). Any other kind goes
 * through its ops table in rw_transport_kinds, which owns the session
 * pointer. The transport owns nothing else: the caller
 * owns the rw_op it passes and the buffers it names, as with the loop. */
#ifndef RINGWAY_TRANSPORT_H
#define RINGWAY_TRANSPORT_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "ringway/common.h"
#include "ringway/loop.h"

/* What travels on the socket. */
enum rw_transport_kind {
    RW_TRANSPORT_PLAIN = 0, /* the application's bytes as they are */
    RW_TRANSPORT_TLS,       /* TLS records; the session turns them into the application's bytes */
    RW_TRANSPORT__COUNT
};

typedef struct rw_transport {
    int fd;
    uint8_t kind;  /* enum rw_transport_kind */
    void *session; /* the kind's per-connection state (NULL for plain) */
} rw_transport;

/* A transport kind other than plain: the same calls as below, for its
 * sessions. Each completes through the rw_op exactly as the loop would. */
typedef struct rw_transport_ops {
    void (*recv)(rw_loop *l, rw_transport *t, rw_op *op);
    void (*recv_into)(rw_loop *l, rw_transport *t, rw_op *op, char *dst, uint32_t len);
    void (*send)(rw_loop *l, rw_transport *t, rw_op *op, struct iovec *iov, int iovcnt);
    void (*shutdown_wr)(rw_transport *t);
    void (*close)(rw_loop *l, rw_transport *t);
    void (*cancel)(rw_loop *l, rw_transport *t, rw_op *op);
} rw_transport_ops;

/* The ops of each kind (NULL for plain and for kinds not built in). */
extern const rw_transport_ops *rw_transport_kinds[RW_TRANSPORT__COUNT];

/* A plain transport on fd. */
static inline void rw_transport_plain(rw_transport *t, int fd)
{
    t->fd = fd;
    t->kind = RW_TRANSPORT_PLAIN;
    t->session = NULL;
}

/* Receives into a fresh loop buffer (see rw_loop_recv). */
static inline void rw_tr_recv(rw_loop *l, rw_transport *t, rw_op *op)
{
    if (RW_LIKELY(t->kind == RW_TRANSPORT_PLAIN))
        rw_loop_recv(l, op, t->fd);
    else
        rw_transport_kinds[t->kind]->recv(l, t, op);
}

/* Receives into dst[0..len) (see rw_loop_recv_into). */
static inline void rw_tr_recv_into(rw_loop *l, rw_transport *t, rw_op *op, char *dst, uint32_t len)
{
    if (RW_LIKELY(t->kind == RW_TRANSPORT_PLAIN))
        rw_loop_recv_into(l, op, t->fd, dst, len);
    else
        rw_transport_kinds[t->kind]->recv_into(l, t, op, dst, len);
}

/* Sends iov (see rw_loop_send; a short send completes with fewer bytes). */
static inline void rw_tr_send(rw_loop *l, rw_transport *t, rw_op *op, struct iovec *iov, int iovcnt)
{
    if (RW_LIKELY(t->kind == RW_TRANSPORT_PLAIN))
        rw_loop_send(l, op, t->fd, iov, iovcnt);
    else
        rw_transport_kinds[t->kind]->send(l, t, op, iov, iovcnt);
}

/* Ends our direction (a TCP half-close; for TLS, close_notify first). */
static inline void rw_tr_shutdown_wr(rw_transport *t)
{
    if (RW_LIKELY(t->kind == RW_TRANSPORT_PLAIN))
        shutdown(t->fd, SHUT_WR);
    else
        rw_transport_kinds[t->kind]->shutdown_wr(t);
}

/* Requests cancellation of an op passed to rw_tr_recv*, rw_tr_send (see
 * rw_loop_cancel: its callback still comes). */
static inline void rw_tr_cancel(rw_loop *l, rw_transport *t, rw_op *op)
{
    if (RW_LIKELY(t->kind == RW_TRANSPORT_PLAIN))
        rw_loop_cancel(l, op);
    else
        rw_transport_kinds[t->kind]->cancel(l, t, op);
}

/* Closes the connection (through the loop) and frees the session. */
static inline void rw_tr_close(rw_loop *l, rw_transport *t)
{
    if (t->kind != RW_TRANSPORT_PLAIN && rw_transport_kinds[t->kind] != NULL)
        rw_transport_kinds[t->kind]->close(l, t);
    else
        rw_loop_close(l, t->fd);
    t->fd = -1;
    t->session = NULL;
}

#endif
