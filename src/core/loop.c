/* loop.c - backend-independent part of the event loop: creation, buffers,
 * the coarse clock, timers and the turn. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "loop_int.h"
#include "ringway/log.h"

rw_loop *rw_loop_new(const rw_loop_opts *opts)
{
    rw_loop *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->backend = opts->backend;
    l->ops = opts->backend == RW_BACKEND_URING ? &rw__loop_uring_ops : &rw__loop_epoll_ops;
    l->buf_count = opts->buf_count ? opts->buf_count : 1024;
    l->buf_size = opts->buf_size ? opts->buf_size : 32768;
    if (l->buf_count & (l->buf_count - 1)) {
        errno = EINVAL;
        goto fail_loop;
    }
    /* Reserved, not touched: pages become resident only when a buffer is used. */
    l->bufs = mmap(NULL, (size_t)l->buf_count * l->buf_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (l->bufs == MAP_FAILED) {
        l->bufs = NULL;
        goto fail_loop;
    }
    rw__loop_update_clock(l);
    if (rw_timers_init(&l->timers, l->now) != 0) {
        errno = ENOMEM;
        goto fail_bufs;
    }
    int rc = l->ops->init(l, opts);
    if (rc != 0) {
        errno = -rc;
        goto fail_timers;
    }
    return l;

fail_timers:
    rw_timers_free(&l->timers);
fail_bufs:
    munmap(l->bufs, (size_t)l->buf_count * l->buf_size);
fail_loop : {
    int saved = errno;
    free(l);
    errno = saved;
    return NULL;
}
}

void rw_loop_free(rw_loop *l)
{
    if (l == NULL)
        return;
    l->ops->fini(l);
    rw_timers_free(&l->timers);
    munmap(l->bufs, (size_t)l->buf_count * l->buf_size);
    free(l);
}

int rw_loop_backend(const rw_loop *l)
{
    return l->backend;
}

static void submit(rw_loop *l, rw_op *op, int kind, int fd)
{
    op->kind = (uint8_t)kind;
    op->fd = fd;
    op->flags = RW_OPF_PENDING;
    op->gen++;
    l->ops->submit(l, op);
}

void rw_loop_accept(rw_loop *l, rw_op *op, int fd)
{
    submit(l, op, RW_OP_ACCEPT, fd);
}

void rw_loop_recv(rw_loop *l, rw_op *op, int fd)
{
    op->buf = NULL;
    submit(l, op, RW_OP_RECV, fd);
}

void rw_loop_recv_into(rw_loop *l, rw_op *op, int fd, char *dst, uint32_t len)
{
    op->dst = dst;
    op->dst_len = len;
    submit(l, op, RW_OP_RECV_INTO, fd);
}

void rw_loop_send(rw_loop *l, rw_op *op, int fd, struct iovec *iov, int iovcnt)
{
    memset(&op->msg, 0, sizeof(op->msg));
    op->msg.msg_iov = iov;
    op->msg.msg_iovlen = (size_t)iovcnt;
    submit(l, op, RW_OP_SEND, fd);
}

bool rw_iov_advance(struct iovec *iov, int *iovcnt, size_t n)
{
    int i = 0;
    while (i < *iovcnt && n >= iov[i].iov_len) {
        n -= iov[i].iov_len;
        i++;
    }
    if (i == *iovcnt) {
        *iovcnt = 0;
        return false;
    }
    iov[i].iov_base = (char *)iov[i].iov_base + n;
    iov[i].iov_len -= n;
    memmove(iov, iov + i, sizeof(struct iovec) * (size_t)(*iovcnt - i));
    *iovcnt -= i;
    return true;
}

void rw_loop_connect(rw_loop *l, rw_op *op, int fd, const struct sockaddr *addr, socklen_t len)
{
    op->addr = addr;
    op->addrlen = len;
    submit(l, op, RW_OP_CONNECT, fd);
}

void rw_loop_read_eventfd(rw_loop *l, rw_op *op, int fd)
{
    submit(l, op, RW_OP_READ_EVENTFD, fd);
}

void rw_loop_defer(rw_loop *l, rw_op *op)
{
    op->kind = RW_OP_NOP;
    op->fd = -1;
    op->flags = RW_OPF_PENDING;
    op->gen++;
    op->next = NULL;
    if (l->deferred == NULL)
        l->deferred_tail = &l->deferred;
    *l->deferred_tail = op;
    l->deferred_tail = &op->next;
}

/* Completes the deferred ops queued before this call (those their callbacks
 * queue wait for the next turn). */
static void run_deferred(rw_loop *l)
{
    rw_op *op = l->deferred;
    l->deferred = NULL;
    l->deferred_tail = &l->deferred;
    while (op != NULL) {
        rw_op *next = op->next;
        op->next = NULL;
        rw__loop_complete(op, (op->flags & RW_OPF_CANCEL) ? -ECANCELED : 0, false);
        op = next;
    }
}

void rw_loop_cancel(rw_loop *l, rw_op *op)
{
    if (!(op->flags & RW_OPF_PENDING) || (op->flags & RW_OPF_CANCEL))
        return;
    op->flags |= RW_OPF_CANCEL;
    if (op->kind == RW_OP_NOP)
        return; /* completes with -ECANCELED at the next turn */
    l->ops->cancel(l, op);
}

void rw_loop_forget_fd(rw_loop *l, int fd)
{
    l->ops->forget_fd(l, fd);
}

void rw_loop_detach_fd(rw_loop *l, int fd)
{
    l->ops->detach_fd(l, fd);
}

void rw_loop_close(rw_loop *l, int fd)
{
    l->ops->forget_fd(l, fd);
    l->ops->close(l, fd);
}

char *rw_loop_buf(rw_loop *l, uint32_t id)
{
    return l->bufs + (size_t)id * l->buf_size;
}

uint32_t rw_loop_buf_size(const rw_loop *l)
{
    return l->buf_size;
}

bool rw_loop_buf_take(rw_loop *l, uint32_t *id)
{
    return l->ops->buf_take(l, id);
}

void rw_loop_buf_release(rw_loop *l, uint32_t id)
{
    l->ops->buf_release(l, id);
}

rw_timers *rw_loop_timers(rw_loop *l)
{
    return &l->timers;
}

uint64_t rw_loop_now(const rw_loop *l)
{
    return l->now;
}

void rw_loop_set_turn_hook(rw_loop *l, rw_loop_turn_cb cb, void *arg)
{
    l->turn_cb = cb;
    l->turn_arg = arg;
}

void rw_loop_stop(rw_loop *l)
{
    l->stop = true;
}

int rw_loop_run(rw_loop *l)
{
    while (!l->stop) {
        uint64_t wait = l->deferred != NULL ? 0 : rw_timers_next_ms(&l->timers, 1000);
        int rc = l->ops->poll(l, wait);
        if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EAGAIN) {
            rw_log_error("%s loop: wait failed: %s", l->ops->name, strerror(-rc));
            l->stop = false;
            return rc;
        }
        if (l->deferred != NULL)
            run_deferred(l);
        rw_timers_run(&l->timers, l->now);
        if (l->turn_cb != NULL)
            l->turn_cb(l, l->turn_arg);
    }
    /* The stop request is consumed: a later rw_loop_run runs again instead
     * of returning at once (it used to stay set forever). */
    l->stop = false;
    return 0;
}
