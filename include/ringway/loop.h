/* loop.h - the per-worker, completion-based event loop (one interface, two
 * backends: io_uring in loop_uring.c, epoll in loop_epoll.c).
 *
 * A caller submits an operation described by an rw_op it owns (usually
 * embedded in a connection) and later gets exactly one callback with the
 * result (a multishot accept gets one per accepted socket while res >= 0 and
 * RW_OPF_MORE is set). The op's memory must stay valid until that final
 * callback: cancel it and wait for the callback (res == -ECANCELED, or the real
 * result if it raced) before freeing. A loop belongs to one thread; only
 * rw_loop_wake may be called from another thread. Submissions are batched and
 * flushed once per loop turn. */
#ifndef RINGWAY_LOOP_H
#define RINGWAY_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "ringway/timer.h"

typedef struct rw_loop rw_loop;
typedef struct rw_op rw_op;
typedef void (*rw_op_cb)(rw_op *op, int res);

enum rw_op_kind {
    RW_OP_NONE = 0,
    RW_OP_ACCEPT,       /* multishot accept on a listening socket; res = new fd */
    RW_OP_RECV,         /* receive into a loop buffer; res = bytes (0 = EOF) */
    RW_OP_RECV_INTO,    /* receive into caller memory (op->dst, op->dst_len) */
    RW_OP_SEND,         /* sendmsg of op->iov[0..iovcnt); res = bytes sent (may be short) */
    RW_OP_CONNECT,      /* connect a non-blocking socket; res = 0 */
    RW_OP_READ_EVENTFD, /* read 8 bytes from an eventfd (wakeups) */
    RW_OP_NOP,          /* rw_loop_defer: res 0 at the next turn (-ECANCELED once cancelled) */
};

enum {
    RW_OPF_PENDING = 1u << 0, /* submitted, final callback not yet delivered */
    RW_OPF_MORE = 1u << 1,    /* set during a multishot callback when more will follow */
    RW_OPF_CANCEL = 1u << 2,  /* cancellation requested */
};

/* An operation. cb, data and the union member of the op's kind are set by
 * the caller through the rw_loop_* submit functions; next belongs to the
 * backend. An op is one kind from its submit to its final callback, so the
 * kinds share their fields: a member is meaningful only for the kind the op
 * was last submitted as (e.g. buf after an RW_OP_RECV completion), and
 * submitting another kind overwrites it. */
struct rw_op {
    rw_op_cb cb;
    void *data; /* caller's context */
    int fd;
    uint8_t kind;
    uint8_t flags;
    uint16_t gen; /* bumped on every submit; stale completions are dropped */
    rw_op *next;  /* private to the backend: run queue / starved list link */
    union {
        /* RW_OP_RECV result: the loop buffer holding res bytes, owned by the
         * caller until rw_loop_buf_release(loop, buf_id); NULL when none. */
        struct {
            char *buf;
            uint32_t buf_id;
        };
        /* RW_OP_RECV_INTO target */
        struct {
            char *dst;
            uint32_t dst_len;
        };
        struct msghdr msg; /* RW_OP_SEND */
        /* RW_OP_CONNECT */
        struct {
            const struct sockaddr *addr;
            socklen_t addrlen;
        };
        uint64_t evbuf; /* RW_OP_READ_EVENTFD: read target, private to the backend */
    };
};

enum rw_io_backend { RW_BACKEND_URING = 1, RW_BACKEND_EPOLL = 2 };

typedef struct rw_loop_opts {
    int backend;           /* RW_BACKEND_URING or RW_BACKEND_EPOLL */
    uint32_t ring_entries; /* SQ size, default 4096 */
    uint32_t buf_count;    /* receive buffers (power of two), default 1024 */
    uint32_t buf_size;     /* bytes each, default 32768 */
} rw_loop_opts;

/* Creates a loop; returns NULL and sets errno on failure (e.g. io_uring refused). */
rw_loop *rw_loop_new(const rw_loop_opts *opts);
/* Destroys a loop; all ops must have completed. */
void rw_loop_free(rw_loop *l);
/* Returns RW_BACKEND_URING or RW_BACKEND_EPOLL. */
int rw_loop_backend(const rw_loop *l);
/* Returns whether io_uring with the features ringway needs works here (cached probe). */
bool rw_uring_available(void);

/* Starts a multishot accept on listening socket fd. */
void rw_loop_accept(rw_loop *l, rw_op *op, int fd);
/* Receives into a loop buffer (io_uring: provided-buffer ring, so an idle
 * socket holds no buffer). */
void rw_loop_recv(rw_loop *l, rw_op *op, int fd);
/* Receives at most len bytes into dst (caller memory, valid until the callback). */
void rw_loop_recv_into(rw_loop *l, rw_op *op, int fd, char *dst, uint32_t len);
/* Sends iov[0..iovcnt) (MSG_NOSIGNAL); iov must stay valid until the callback. */
void rw_loop_send(rw_loop *l, rw_op *op, int fd, struct iovec *iov, int iovcnt);
/* Drops the first n sent bytes from iov[0..*iovcnt) in place (after a short
 * send). Returns true when bytes remain to be sent. */
bool rw_iov_advance(struct iovec *iov, int *iovcnt, size_t n);
/* Connects non-blocking socket fd to addr (valid until the callback). */
void rw_loop_connect(rw_loop *l, rw_op *op, int fd, const struct sockaddr *addr, socklen_t len);
/* Arms a read of the eventfd fd; the callback fires on each wakeup (re-arm it). */
void rw_loop_read_eventfd(rw_loop *l, rw_op *op, int fd);
/* Completes op with res 0 at the start of the next turn (never inside the
 * caller's stack), so a layer above the loop can finish an operation it
 * already has the result of; cancelled, it completes with -ECANCELED. */
void rw_loop_defer(rw_loop *l, rw_op *op);
/* Requests cancellation of a pending op; its callback still comes (maybe -ECANCELED). */
void rw_loop_cancel(rw_loop *l, rw_op *op);
/* Forgets loop state about fd (call after its ops completed, before close). */
void rw_loop_forget_fd(rw_loop *l, int fd);
/* Like rw_loop_forget_fd for a descriptor whose open file outlives this
 * process's copy (a listener another process holds too): epoll also drops
 * it from its interest list. Not for the request path (a syscall on epoll). */
void rw_loop_detach_fd(rw_loop *l, int fd);
/* Forgets fd and closes it, once its ops completed (io_uring: queued with the
 * turn's submissions, no syscall of its own; epoll: close()). */
void rw_loop_close(rw_loop *l, int fd);

/* Returns the address of loop buffer id. */
char *rw_loop_buf(rw_loop *l, uint32_t id);
/* Size in bytes of every loop buffer. */
uint32_t rw_loop_buf_size(const rw_loop *l);
/* Takes a free loop buffer for the caller's own use (released with
 * rw_loop_buf_release like a received one); false when none is free now
 * (io_uring: a small reserve kept out of the kernel's ring). */
bool rw_loop_buf_take(rw_loop *l, uint32_t *id);
/* Gives buffer id back to the loop. */
void rw_loop_buf_release(rw_loop *l, uint32_t id);

/* The per-loop timer wheel, driven by the loop's coarse clock. */
rw_timers *rw_loop_timers(rw_loop *l);
/* Milliseconds on CLOCK_MONOTONIC, read once per loop turn. */
uint64_t rw_loop_now(const rw_loop *l);

/* Called at the start of every loop turn (after completions and timers). */
typedef void (*rw_loop_turn_cb)(rw_loop *l, void *arg);
/* Sets the hook called once per turn (NULL to clear); arg is the caller's. */
void rw_loop_set_turn_hook(rw_loop *l, rw_loop_turn_cb cb, void *arg);

/* Runs turns until rw_loop_stop; returns 0 or a negative errno on a fatal error. */
int rw_loop_run(rw_loop *l);
/* Makes rw_loop_run return after the current turn (loop thread only). */
void rw_loop_stop(rw_loop *l);

#endif
