/* loop_epoll.c - epoll backend behind the same completion interface:
 * edge-triggered readiness, then the syscall, then the same callback.
 * Each fd is registered once (EPOLLIN|EPOLLOUT|EPOLLET) for its lifetime. */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop_int.h"

#define RW_EPOLL_EVENTS 512
#define RW_ACCEPT_BATCH 64

typedef struct ep_fd {
    rw_op *rd; /* pending read-side op (accept, recv, eventfd) */
    rw_op *wr; /* pending write-side op (send, connect) */
    uint8_t registered;
    uint8_t rd_ready; /* no EAGAIN seen since the last edge */
    uint8_t wr_ready;
    uint8_t connecting;
} ep_fd;

typedef struct ep_be {
    int epfd;
    ep_fd *fds; /* indexed by fd, grown on demand */
    int nfds;
    rw_op *runq, *runq_tail; /* ops whose I/O should be attempted now */
    rw_op *starved;          /* RECV ops waiting for a free buffer */
    uint32_t *free_ids;      /* stack of free buffer ids */
    uint32_t nfree;
} ep_be;

static int ep_init(rw_loop *l, const rw_loop_opts *o)
{
    (void)o;
    ep_be *be = calloc(1, sizeof(*be));
    if (be == NULL)
        return -ENOMEM;
    be->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (be->epfd == -1) {
        int e = errno;
        free(be);
        return -e;
    }
    be->free_ids = malloc(sizeof(uint32_t) * l->buf_count);
    if (be->free_ids == NULL) {
        close(be->epfd);
        free(be);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < l->buf_count; i++)
        be->free_ids[i] = l->buf_count - 1 - i;
    be->nfree = l->buf_count;
    l->be = be;
    return 0;
}

static void ep_fini(rw_loop *l)
{
    ep_be *be = l->be;
    if (be == NULL)
        return;
    close(be->epfd);
    free(be->fds);
    free(be->free_ids);
    free(be);
    l->be = NULL;
}

static ep_fd *slot(ep_be *be, int fd)
{
    if (fd >= be->nfds) {
        int n = be->nfds ? be->nfds : 1024;
        while (n <= fd)
            n *= 2;
        ep_fd *nf = realloc(be->fds, sizeof(*nf) * (size_t)n);
        if (nf == NULL)
            return NULL;
        memset(nf + be->nfds, 0, sizeof(*nf) * (size_t)(n - be->nfds));
        be->fds = nf;
        be->nfds = n;
    }
    return &be->fds[fd];
}

static void runq_push(ep_be *be, rw_op *op)
{
    /* A starved op is linked (through op->next) on the starved list: queueing
     * it here, e.g. on a readiness edge for its fd, would overwrite that link
     * and drop the ops behind it. It is queued when it leaves that list
     * (ep_buf_release, ep_cancel), which clears RW_OPF_STARVED first. */
    if (op->flags & (RW_OPF_QUEUED | RW_OPF_STARVED))
        return;
    op->flags |= RW_OPF_QUEUED;
    op->next = NULL;
    if (be->runq_tail != NULL)
        be->runq_tail->next = op;
    else
        be->runq = op;
    be->runq_tail = op;
}

static bool is_read_side(int kind)
{
    return kind == RW_OP_ACCEPT || kind == RW_OP_RECV || kind == RW_OP_RECV_INTO ||
           kind == RW_OP_READ_EVENTFD;
}

static void ep_submit(rw_loop *l, rw_op *op)
{
    ep_be *be = l->be;
    ep_fd *s = slot(be, op->fd);
    if (s == NULL) {
        /* Out of memory growing the fd table: fail the op asynchronously. */
        op->flags |= RW_OPF_CANCEL;
        runq_push(be, op);
        return;
    }
    if (!s->registered) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = op->fd};
        if (epoll_ctl(be->epfd, EPOLL_CTL_ADD, op->fd, &ev) == -1 && errno != EEXIST) {
            op->flags |= RW_OPF_CANCEL;
            runq_push(be, op);
            return;
        }
        s->registered = 1;
        s->rd_ready = 1; /* optimistic: try the syscall once before waiting */
        s->wr_ready = 1;
        s->connecting = 0;
    }
    bool ready;
    if (is_read_side(op->kind)) {
        s->rd = op;
        ready = s->rd_ready;
    } else {
        s->wr = op;
        ready = s->wr_ready || (op->kind == RW_OP_CONNECT && !s->connecting);
    }
    if (ready)
        runq_push(be, op); /* else the next edge queues it */
}

static void ep_cancel(rw_loop *l, rw_op *op)
{
    ep_be *be = l->be;
    if (op->flags & RW_OPF_STARVED) {
        for (rw_op **pp = &be->starved; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == op) {
                *pp = op->next;
                break;
            }
        }
        op->flags &= (uint8_t)~RW_OPF_STARVED;
    }
    runq_push(be, op); /* attempt() sees RW_OPF_CANCEL and completes it */
}

static void ep_forget_fd(rw_loop *l, int fd)
{
    ep_be *be = l->be;
    if (fd >= 0 && fd < be->nfds)
        memset(&be->fds[fd], 0, sizeof(be->fds[fd]));
}

/* A descriptor whose open file another process also holds (a listener
 * handed over by --upgrade): epoll keys its interest list on the open file,
 * so close() alone would leave it registered here, waking this loop for
 * another process's accept queue. */
static void ep_detach_fd(rw_loop *l, int fd)
{
    ep_be *be = l->be;
    if (fd >= 0 && fd < be->nfds && be->fds[fd].registered)
        (void)epoll_ctl(be->epfd, EPOLL_CTL_DEL, fd, NULL); /* ENOENT/EBADF: nothing to remove */
    ep_forget_fd(l, fd);
}

static void ep_close(rw_loop *l, int fd)
{
    (void)l;
    close(fd);
}

static void ep_buf_release(rw_loop *l, uint32_t id)
{
    ep_be *be = l->be;
    be->free_ids[be->nfree++] = id;
    if (be->starved != NULL) {
        rw_op *op = be->starved;
        be->starved = op->next;
        op->next = NULL;
        op->flags &= (uint8_t)~RW_OPF_STARVED;
        runq_push(be, op);
    }
}

static bool ep_buf_take(rw_loop *l, uint32_t *id)
{
    ep_be *be = l->be;
    if (be->nfree == 0)
        return false;
    *id = be->free_ids[--be->nfree];
    return true;
}

/* Clears the fd slot's reference to op and delivers the final result. */
static void finish(ep_be *be, rw_op *op, int res)
{
    if (op->fd >= 0 && op->fd < be->nfds) {
        ep_fd *s = &be->fds[op->fd];
        if (s->rd == op)
            s->rd = NULL;
        if (s->wr == op)
            s->wr = NULL;
    }
    rw__loop_complete(op, res, false);
}

static void attempt(rw_loop *l, ep_be *be, rw_op *op)
{
    op->flags &= (uint8_t)~RW_OPF_QUEUED;
    if (!(op->flags & RW_OPF_PENDING))
        return;
    if (op->flags & RW_OPF_CANCEL) {
        finish(be, op, -ECANCELED);
        return;
    }
    ep_fd *s = &be->fds[op->fd]; /* valid until a callback runs (the table can grow) */
    ssize_t n;
    switch (op->kind) {
    case RW_OP_ACCEPT:
        for (int i = 0; i < RW_ACCEPT_BATCH; i++) {
            int fd = accept4(op->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0) {
                rw__loop_complete(op, fd, true);
                if (!(op->flags & RW_OPF_PENDING) || (op->flags & RW_OPF_CANCEL)) {
                    /* Cancelled from the callback: ep_cancel already queued
                     * the op and that attempt delivers -ECANCELED. Finishing
                     * here would clear RW_OPF_QUEUED while the op is still
                     * linked on the run queue, so a re-arm from the final
                     * callback would link it again and drop the ops queued
                     * behind it. */
                    return;
                }
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* Not through s: an accept callback may have grown (moved)
                 * the fd table by registering the new socket. */
                be->fds[op->fd].rd_ready = 0;
                return;
            }
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            finish(be, op, -errno); /* EMFILE and friends: the owner re-arms later */
            return;
        }
        runq_push(be, op); /* more may be waiting: continue next turn, fairly */
        return;
    case RW_OP_RECV: {
        if (be->nfree == 0) {
            op->flags |= RW_OPF_STARVED;
            op->next = be->starved;
            be->starved = op;
            return;
        }
        uint32_t id = be->free_ids[be->nfree - 1];
        char *buf = rw_loop_buf(l, id);
        n = recv(op->fd, buf, l->buf_size, 0);
        if (n > 0) {
            be->nfree--;
            op->buf_id = id;
            op->buf = buf;
        }
        break;
    }
    case RW_OP_RECV_INTO:
        n = recv(op->fd, op->dst, op->dst_len, 0);
        break;
    case RW_OP_READ_EVENTFD:
        n = read(op->fd, &op->evbuf, sizeof(op->evbuf));
        break;
    case RW_OP_SEND:
        n = sendmsg(op->fd, &op->msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        break;
    case RW_OP_CONNECT:
        if (!s->connecting) {
            if (connect(op->fd, op->addr, op->addrlen) == 0) {
                finish(be, op, 0);
                return;
            }
            if (errno == EINPROGRESS || errno == EAGAIN) {
                s->connecting = 1;
                s->wr_ready = 0;
                return;
            }
            finish(be, op, -errno);
            return;
        } else {
            int err = 0;
            socklen_t len = sizeof(err);
            if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
                err = errno;
            if (err == EINPROGRESS)
                return;
            s->connecting = 0;
            finish(be, op, -err);
            return;
        }
    default:
        abort();
    }
    if (n >= 0) {
        finish(be, op, (int)n);
        return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (is_read_side(op->kind))
            s->rd_ready = 0;
        else
            s->wr_ready = 0;
        return; /* wait for the next edge */
    }
    if (errno == EINTR) {
        runq_push(be, op);
        return;
    }
    finish(be, op, -errno);
}

/* Attempts the ops queued when the pass starts; ops queued meanwhile wait for
 * the next pass, so one busy connection cannot starve the others. */
static void run_queue(rw_loop *l, ep_be *be)
{
    rw_op *op = be->runq;
    be->runq = be->runq_tail = NULL;
    while (op != NULL) {
        rw_op *next = op->next;
        op->next = NULL;
        attempt(l, be, op);
        op = next;
    }
}

static int ep_poll(rw_loop *l, uint64_t timeout_ms)
{
    ep_be *be = l->be;
    bool ran = be->runq != NULL;
    run_queue(l, be);
    struct epoll_event evs[RW_EPOLL_EVENTS];
    /* Callbacks run by that pass may have armed timers, stopped the loop or
     * left work for the turn hook: never sleep on a timeout computed before
     * them (it is up to 1 s), just poll and let the turn end. */
    int timeout = (ran || be->runq != NULL) ? 0 : (int)timeout_ms;
    int n = epoll_wait(be->epfd, evs, RW_EPOLL_EVENTS, timeout);
    rw__loop_update_clock(l);
    if (n == -1)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (fd < 0 || fd >= be->nfds)
            continue;
        ep_fd *s = &be->fds[fd];
        uint32_t e = evs[i].events;
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            s->rd_ready = 1;
            if (s->rd != NULL)
                runq_push(be, s->rd);
        }
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
            s->wr_ready = 1;
            if (s->wr != NULL)
                runq_push(be, s->wr);
        }
    }
    run_queue(l, be);
    return 0;
}

const rw_loop_backend_ops rw__loop_epoll_ops = {
    .name = "epoll",
    .init = ep_init,
    .fini = ep_fini,
    .submit = ep_submit,
    .cancel = ep_cancel,
    .forget_fd = ep_forget_fd,
    .detach_fd = ep_detach_fd,
    .close = ep_close,
    .buf_release = ep_buf_release,
    .buf_take = ep_buf_take,
    .poll = ep_poll,
};
