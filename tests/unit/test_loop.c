/* test_loop.c - the completion loop, every case on both backends (io_uring,
 * skipped where the kernel refuses it, and epoll). The loop is driven by
 * run_until(): rw_loop_run with a turn hook that stops once a condition holds
 * and a deadline timer that stops it regardless, so nothing can hang. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ringway/common.h"
#include "ringway/loop.h"
#include "ringway/timer.h"

#define WAIT_MS 3000u /* deadline for something that should happen */
#define QUIET_MS 100u /* how long to watch for something that must not happen */

/* Declares body(backend) and one Criterion test per backend. */
#define LOOP_TEST(name)                                                                                      \
    static void name##_body(int backend);                                                                    \
    Test(loop_uring, name, .timeout = 10)                                                                    \
    {                                                                                                        \
        name##_body(RW_BACKEND_URING);                                                                       \
    }                                                                                                        \
    Test(loop_epoll, name, .timeout = 10)                                                                    \
    {                                                                                                        \
        name##_body(RW_BACKEND_EPOLL);                                                                       \
    }                                                                                                        \
    static void name##_body(int backend)

/* ---- loop and driving helpers ---- */

static rw_loop *new_loop(int backend, uint32_t buf_count, uint32_t buf_size)
{
    if (backend == RW_BACKEND_URING && !rw_uring_available())
        cr_skip_test("io_uring is not available here");
    rw_loop_opts o = {.backend = backend, .ring_entries = 64, .buf_count = buf_count, .buf_size = buf_size};
    rw_loop *l = rw_loop_new(&o);
    cr_assert_not_null(l, "rw_loop_new: %s", strerror(errno));
    cr_assert_eq(rw_loop_backend(l), backend);
    return l;
}

typedef bool (*cond_fn)(void *arg);

typedef struct runner {
    rw_timer deadline;
    rw_loop *l;
    cond_fn cond;
    void *arg;
} runner;

static void runner_hook(rw_loop *l, void *arg)
{
    runner *r = arg;
    if (r->cond != NULL && r->cond(r->arg))
        rw_loop_stop(l);
}

static void runner_deadline(rw_timer *t)
{
    runner *r = RW_CONTAINER_OF(t, runner, deadline);
    rw_loop_stop(r->l);
}

/* Runs turns until cond(arg) holds (checked after every turn) or ms pass;
 * returns whether cond holds. cond NULL: just run for ms. */
static bool run_until(rw_loop *l, cond_fn cond, void *arg, uint64_t ms)
{
    if (cond != NULL && cond(arg))
        return true;
    runner r = {.l = l, .cond = cond, .arg = arg};
    rw_timer_init(&r.deadline, runner_deadline);
    rw_timer_set(rw_loop_timers(l), &r.deadline, rw_loop_now(l) + ms);
    rw_loop_set_turn_hook(l, runner_hook, &r);
    int rc = rw_loop_run(l);
    rw_loop_set_turn_hook(l, NULL, NULL);
    rw_timer_cancel(rw_loop_timers(l), &r.deadline);
    cr_assert_eq(rc, 0, "rw_loop_run failed: %s", strerror(-rc));
    return cond == NULL || cond(arg);
}

static void run_for(rw_loop *l, uint64_t ms)
{
    run_until(l, NULL, NULL, ms);
}

/* An op that records its callbacks. */
typedef struct tracked {
    rw_op op;
    int calls;      /* callbacks so far */
    int finals;     /* callbacks without RW_OPF_MORE */
    int res;        /* last result */
    uint8_t flags;  /* op->flags during the last callback */
    int want;       /* run_until target for calls */
    char data[256]; /* copy of the received bytes (RW_OP_RECV) */
} tracked;

static void tracked_cb(rw_op *op, int res)
{
    tracked *t = RW_CONTAINER_OF(op, tracked, op);
    t->calls++;
    t->res = res;
    t->flags = op->flags;
    if (!(op->flags & RW_OPF_MORE))
        t->finals++;
    if (op->kind == RW_OP_RECV && res > 0)
        memcpy(t->data, op->buf, (size_t)res < sizeof(t->data) ? (size_t)res : sizeof(t->data));
}

static void tracked_init(tracked *t)
{
    memset(t, 0, sizeof(*t));
    t->op.cb = tracked_cb;
    t->op.data = t;
}

static bool calls_reached(void *arg)
{
    tracked *t = arg;
    return t->calls >= t->want;
}

/* Runs until t has had n callbacks in all; asserts it happened. */
static void wait_calls(rw_loop *l, tracked *t, int n)
{
    t->want = n;
    cr_assert(run_until(l, calls_reached, t, WAIT_MS), "expected %d callbacks, got %d", n, t->calls);
}

/* Milliseconds since *t0 (CLOCK_MONOTONIC). */
static long elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* ---- socket helpers ---- */

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    cr_assert(fl != -1 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0);
}

static bool is_nonblock(int fd)
{
    return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
}

static uint16_t local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static uint16_t peer_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    cr_assert_eq(getpeername(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* A non-blocking listening socket on 127.0.0.1, any port. */
static int listen_tcp(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = loopback(0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 64), 0);
    *port = local_port(fd);
    return fd;
}

/* A blocking client connected to 127.0.0.1:port (completes against the backlog). */
static int connect_client(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = loopback(port);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
    return fd;
}

/* A connected TCP pair: *mine non-blocking (the loop's side, as the worker
 * makes them), *peer blocking (driven directly by the test). */
static void tcp_pair(int *mine, int *peer)
{
    uint16_t port;
    int lfd = listen_tcp(&port);
    *peer = connect_client(port);
    *mine = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    cr_assert(*mine >= 0, "accept4: %s", strerror(errno));
    int one = 1;
    setsockopt(*peer, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    close(lfd);
}

/* A stream socketpair: *mine non-blocking, *peer blocking. */
static void unix_pair(int *mine, int *peer)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    set_nonblock(sv[0]);
    *mine = sv[0];
    *peer = sv[1];
}

static void write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        cr_assert(w > 0, "write: %s", strerror(errno));
        c += w;
        n -= (size_t)w;
    }
}

static void read_exact(int fd, void *p, size_t n)
{
    char *c = p;
    while (n > 0) {
        ssize_t r = read(fd, c, n);
        cr_assert(r > 0, "read: %zd %s", r, strerror(errno));
        c += r;
        n -= (size_t)r;
    }
}

static void close_fd(rw_loop *l, int fd)
{
    rw_loop_forget_fd(l, fd);
    close(fd);
}

/* Cancels t if it is still pending and waits for its final callback. */
static void cancel_and_wait(rw_loop *l, tracked *t)
{
    if (!(t->op.flags & RW_OPF_PENDING))
        return;
    int finals = t->finals;
    rw_loop_cancel(l, &t->op);
    t->want = t->calls + 1;
    while (t->finals == finals)
        cr_assert(run_until(l, calls_reached, t, WAIT_MS), "no callback after cancel");
    cr_assert(!(t->op.flags & RW_OPF_PENDING));
}

/* ---- accept ---- */

#define NCLIENTS 8

typedef struct acceptor {
    tracked t;
    int fds[NCLIENTS + 4];
    int nfds;
    int bad; /* callbacks that broke the multishot contract */
} acceptor;

static void accept_cb(rw_op *op, int res)
{
    acceptor *a = op->data;
    tracked_cb(op, res);
    if (res >= 0) {
        /* A delivered socket while the accept stays armed. */
        if (!(op->flags & RW_OPF_MORE) || !(op->flags & RW_OPF_PENDING))
            a->bad++;
        if (a->nfds < (int)RW_ARRAY_LEN(a->fds))
            a->fds[a->nfds++] = res;
        else
            close(res);
    } else if (op->flags & (RW_OPF_MORE | RW_OPF_PENDING)) {
        a->bad++; /* an error is final */
    }
}

static bool accepted_n(void *arg)
{
    acceptor *a = arg;
    return a->nfds >= a->t.want;
}

LOOP_TEST(accept_multishot)
{
    rw_loop *l = new_loop(backend, 0, 0);
    uint16_t port;
    int lfd = listen_tcp(&port);
    acceptor a;
    memset(&a, 0, sizeof(a));
    tracked_init(&a.t);
    a.t.op.cb = accept_cb;
    a.t.op.data = &a;
    rw_loop_accept(l, &a.t.op, lfd);
    cr_assert(a.t.op.flags & RW_OPF_PENDING);
    run_for(l, 20); /* armed and idle: no callback */
    cr_assert_eq(a.t.calls, 0);

    int clients[NCLIENTS];
    uint16_t cports[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        clients[i] = connect_client(port);
        cports[i] = local_port(clients[i]);
        if (i == 2) { /* a first batch is accepted before the rest connect */
            a.t.want = 3;
            cr_assert(run_until(l, accepted_n, &a, WAIT_MS), "accepted %d of 3", a.nfds);
        }
    }
    a.t.want = NCLIENTS;
    cr_assert(run_until(l, accepted_n, &a, WAIT_MS), "accepted %d of %d", a.nfds, NCLIENTS);
    cr_assert_eq(a.nfds, NCLIENTS);
    cr_assert_eq(a.bad, 0);
    cr_assert_eq(a.t.finals, 0, "the multishot accept must stay armed");
    cr_assert(a.t.op.flags & RW_OPF_PENDING);

    /* Every client arrived exactly once, as a distinct non-blocking socket. */
    for (int i = 0; i < NCLIENTS; i++) {
        cr_assert(is_nonblock(a.fds[i]), "accepted sockets are non-blocking");
        uint16_t p = peer_port(a.fds[i]);
        int hits = 0;
        for (int j = 0; j < NCLIENTS; j++)
            hits += cports[j] == p;
        cr_assert_eq(hits, 1, "accepted fd %d has unknown peer port %u", a.fds[i], p);
        for (int j = 0; j < i; j++) {
            cr_assert_neq(a.fds[i], a.fds[j]);
            cr_assert_neq(peer_port(a.fds[j]), p);
        }
    }
    /* The accepted socket works: bytes from the client arrive. */
    write_all(clients[0], "x", 1);

    /* Cancel: exactly one final -ECANCELED, then nothing for new clients. */
    rw_loop_cancel(l, &a.t.op);
    rw_loop_cancel(l, &a.t.op); /* twice is harmless */
    a.t.want = a.t.calls + 1;
    cr_assert(run_until(l, calls_reached, &a.t, WAIT_MS));
    cr_assert_eq(a.t.finals, 1);
    cr_assert_eq(a.t.res, -ECANCELED);
    cr_assert(!(a.t.op.flags & (RW_OPF_PENDING | RW_OPF_MORE)));
    int calls = a.t.calls;
    int late = connect_client(port);
    run_for(l, QUIET_MS);
    cr_assert_eq(a.t.calls, calls, "no callback after the final one");
    cr_assert_eq(a.bad, 0);

    close(late);
    for (int i = 0; i < NCLIENTS; i++) {
        close(clients[i]);
        close(a.fds[i]);
    }
    close_fd(l, lfd);
    rw_loop_free(l);
}

/* An accept callback that arms a recv on the new socket, cancels the accept
 * and, from the final -ECANCELED callback, re-arms it (the pattern of a
 * worker pausing accepts): the recv must still complete and the re-armed
 * accept must still deliver. */
typedef struct pauser {
    rw_loop *l;
    tracked acc;
    tracked rd;
    int lfd;
    int fds[4];
    int nfds;
    int rearmed;
    char rdbuf[16];
} pauser;

static void pauser_accept_cb(rw_op *op, int res)
{
    pauser *p = op->data;
    tracked_cb(op, res);
    if (res >= 0) {
        p->fds[p->nfds++] = res;
        if (p->nfds == 1) {
            rw_loop_cancel(p->l, op);
            rw_loop_recv_into(p->l, &p->rd.op, res, p->rdbuf, sizeof(p->rdbuf));
        }
    } else if (res == -ECANCELED && !p->rearmed) {
        p->rearmed = 1;
        rw_loop_accept(p->l, op, p->lfd);
    }
}

static bool pauser_done(void *arg)
{
    pauser *p = arg;
    return p->rd.calls >= 1 && p->nfds >= 2;
}

LOOP_TEST(accept_cancel_from_callback_and_rearm)
{
    rw_loop *l = new_loop(backend, 0, 0);
    uint16_t port;
    pauser p;
    memset(&p, 0, sizeof(p));
    p.l = l;
    tracked_init(&p.acc);
    tracked_init(&p.rd);
    p.acc.op.cb = pauser_accept_cb;
    p.acc.op.data = &p;
    p.lfd = listen_tcp(&port);
    rw_loop_accept(l, &p.acc.op, p.lfd);
    int c1 = connect_client(port);
    p.acc.want = 2; /* the socket, then -ECANCELED */
    cr_assert(run_until(l, calls_reached, &p.acc, WAIT_MS));
    cr_assert_eq(p.rearmed, 1);
    write_all(c1, "ping", 4);
    int c2 = connect_client(port);
    cr_assert(run_until(l, pauser_done, &p, WAIT_MS), "recv calls %d, accepted %d", p.rd.calls, p.nfds);
    cr_assert_eq(p.rd.res, 4);
    cr_assert_eq(memcmp(p.rdbuf, "ping", 4), 0);
    cr_assert_eq(p.acc.finals, 1);

    cancel_and_wait(l, &p.acc);
    close(c1);
    close(c2);
    for (int i = 0; i < p.nfds; i++)
        close_fd(l, p.fds[i]);
    close_fd(l, p.lfd);
    rw_loop_free(l);
}

/* ---- receive into loop buffers ---- */

static void check_recv(rw_loop *l, tracked *t, const char *want, uint32_t buf_count)
{
    int n = (int)strlen(want);
    cr_assert_eq(t->res, n, "recv res %d, want %d", t->res, n);
    cr_assert(!(t->flags & (RW_OPF_PENDING | RW_OPF_MORE)), "a recv completion is final");
    cr_assert_lt(t->op.buf_id, buf_count);
    cr_assert_eq(t->op.buf, rw_loop_buf(l, t->op.buf_id));
    cr_assert_eq(memcmp(t->op.buf, want, (size_t)n), 0);
    cr_assert_eq(memcmp(t->data, want, (size_t)n), 0);
}

LOOP_TEST(recv_loop_buffers)
{
    const uint32_t nbufs = 4;
    rw_loop *l = new_loop(backend, nbufs, 4096);
    cr_assert_eq(rw_loop_buf_size(l), 4096u);
    int fd, peer;
    tcp_pair(&fd, &peer);
    tracked t;
    tracked_init(&t);

    /* Nothing there yet: the recv waits. */
    rw_loop_recv(l, &t.op, fd);
    run_for(l, 20);
    cr_assert_eq(t.calls, 0);
    write_all(peer, "hello world", 11);
    wait_calls(l, &t, 1);
    check_recv(l, &t, "hello world", nbufs);
    rw_loop_buf_release(l, t.op.buf_id);

    /* Data already there (the first-attempt path); many more rounds than
     * there are buffers, so each release must really give its buffer back. */
    for (int i = 0; i < 5 * (int)nbufs; i++) {
        char msg[32];
        snprintf(msg, sizeof(msg), "message %d", i);
        write_all(peer, msg, strlen(msg));
        int calls = t.calls;
        rw_loop_recv(l, &t.op, fd);
        wait_calls(l, &t, calls + 1);
        check_recv(l, &t, msg, nbufs);
        rw_loop_buf_release(l, t.op.buf_id);
    }

    /* A message larger than a buffer arrives in buffer-sized pieces. */
    static char big[10000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    write_all(peer, big, sizeof(big));
    size_t got = 0;
    while (got < sizeof(big)) {
        int calls = t.calls;
        rw_loop_recv(l, &t.op, fd);
        wait_calls(l, &t, calls + 1);
        cr_assert_gt(t.res, 0);
        cr_assert_leq(t.res, 4096);
        cr_assert_eq(memcmp(t.op.buf, big + got, (size_t)t.res), 0);
        got += (size_t)t.res;
        rw_loop_buf_release(l, t.op.buf_id);
    }
    cr_assert_eq(got, sizeof(big));

    /* EOF: res 0. */
    shutdown(peer, SHUT_WR);
    int calls = t.calls;
    rw_loop_recv(l, &t.op, fd);
    wait_calls(l, &t, calls + 1);
    cr_assert_eq(t.res, 0);
    cr_assert(!(t.op.flags & RW_OPF_PENDING));

    close_fd(l, fd);
    close(peer);
    rw_loop_free(l);
}

/* EOF (res 0) hands the caller no buffer to release: callers release only
 * when res > 0, so many EOFs must not drain the buffer pool. */
LOOP_TEST(recv_eof_keeps_buffers)
{
    const uint32_t nbufs = 2;
    rw_loop *l = new_loop(backend, nbufs, 1024);
    int fd, peer;
    tracked t;
    tracked_init(&t);
    for (int i = 0; i < 4 * (int)nbufs; i++) {
        tcp_pair(&fd, &peer);
        shutdown(peer, SHUT_WR);
        int calls = t.calls;
        rw_loop_recv(l, &t.op, fd);
        wait_calls(l, &t, calls + 1);
        cr_assert_eq(t.res, 0, "EOF gives 0, got %d", t.res);
        cr_assert_null(t.op.buf, "EOF hands out no buffer (buf_id %u)", t.op.buf_id);
        /* ... and again: EOF stays EOF. */
        rw_loop_recv(l, &t.op, fd);
        wait_calls(l, &t, calls + 2);
        cr_assert_eq(t.res, 0);
        close_fd(l, fd);
        close(peer);
    }
    /* EOF while the recv is already waiting. */
    for (int i = 0; i < 2 * (int)nbufs; i++) {
        tcp_pair(&fd, &peer);
        int calls = t.calls;
        rw_loop_recv(l, &t.op, fd);
        run_for(l, 10);
        cr_assert_eq(t.calls, calls);
        close(peer);
        wait_calls(l, &t, calls + 1);
        cr_assert_eq(t.res, 0, "EOF gives 0, got %d", t.res);
        cr_assert_null(t.op.buf, "EOF hands out no buffer (buf_id %u)", t.op.buf_id);
        close_fd(l, fd);
    }
    /* Every buffer is still available. */
    tracked h[2];
    int fds[2], peers[2];
    for (int i = 0; i < 2; i++) {
        tracked_init(&h[i]);
        unix_pair(&fds[i], &peers[i]);
        write_all(peers[i], "data", 4);
        rw_loop_recv(l, &h[i].op, fds[i]);
    }
    for (int i = 0; i < 2; i++) {
        wait_calls(l, &h[i], 1);
        cr_assert_eq(h[i].res, 4, "recv %d: res %d (buffers leaked by EOF?)", i, h[i].res);
    }
    cr_assert_neq(h[0].op.buf_id, h[1].op.buf_id);
    for (int i = 0; i < 2; i++) {
        rw_loop_buf_release(l, h[i].op.buf_id);
        close_fd(l, fds[i]);
        close(peers[i]);
    }
    rw_loop_free(l);
}

/* ---- receive into caller memory ---- */

LOOP_TEST(recv_into_caller_memory)
{
    rw_loop *l = new_loop(backend, 0, 0);
    int fd, peer;
    unix_pair(&fd, &peer);
    tracked t;
    tracked_init(&t);
    char dst[16];
    memset(dst, '#', sizeof(dst));

    rw_loop_recv_into(l, &t.op, fd, dst, 10);
    run_for(l, 20);
    cr_assert_eq(t.calls, 0);
    write_all(peer, "abcdefghijklmnopqrstuvwxyz", 26);
    wait_calls(l, &t, 1);
    cr_assert_eq(t.res, 10);
    cr_assert_eq(memcmp(dst, "abcdefghij", 10), 0);
    cr_assert_eq(dst[10], '#', "never beyond len");
    cr_assert(!(t.flags & (RW_OPF_PENDING | RW_OPF_MORE)));

    rw_loop_recv_into(l, &t.op, fd, dst, sizeof(dst));
    wait_calls(l, &t, 2);
    cr_assert_eq(t.res, 16);
    cr_assert_eq(memcmp(dst, "klmnopqrstuvwxyz", 16), 0);

    close(peer);
    rw_loop_recv_into(l, &t.op, fd, dst, sizeof(dst));
    wait_calls(l, &t, 3);
    cr_assert_eq(t.res, 0, "EOF gives 0");

    close_fd(l, fd);
    rw_loop_free(l);
}

/* ---- send ---- */

LOOP_TEST(send_multi_iovec)
{
    rw_loop *l = new_loop(backend, 0, 0);
    int fd, peer;
    tcp_pair(&fd, &peer);
    tracked t;
    tracked_init(&t);
    char a[] = "GET ", b[] = "/index.html", c[] = " HTTP/1.1\r\n\r\n";
    struct iovec iov[4] = {
        {a, strlen(a)},
        {b, strlen(b)},
        {NULL, 0},
        {c, strlen(c)},
    };
    size_t total = strlen(a) + strlen(b) + strlen(c);
    rw_loop_send(l, &t.op, fd, iov, 4);
    wait_calls(l, &t, 1);
    cr_assert_eq(t.res, (int)total);
    cr_assert(!(t.flags & (RW_OPF_PENDING | RW_OPF_MORE)));
    char got[64];
    read_exact(peer, got, total);
    cr_assert_eq(memcmp(got, "GET /index.html HTTP/1.1\r\n\r\n", total), 0);

    /* A send to a peer that has gone reports an error, not SIGPIPE. */
    close(peer);
    usleep(10000);
    int err = 0;
    for (int i = 0; i < 5 && err == 0; i++) {
        int calls = t.calls;
        rw_loop_send(l, &t.op, fd, iov, 4);
        wait_calls(l, &t, calls + 1);
        if (t.res < 0)
            err = t.res;
        usleep(10000);
    }
    cr_assert(err == -EPIPE || err == -ECONNRESET, "send to a closed peer: %d", err);

    close_fd(l, fd);
    rw_loop_free(l);
}

#define BIG (4u << 20)

typedef struct drain {
    int fd;
    size_t got;
    size_t bad; /* bytes that did not match the pattern */
} drain;

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 131 + (i >> 12));
}

static void *drain_main(void *arg)
{
    drain *d = arg;
    static char buf[65536];
    for (;;) {
        ssize_t n = read(d->fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            d->bad += (uint8_t)buf[i] != pattern(d->got + (size_t)i);
        d->got += (size_t)n;
    }
    return NULL;
}

typedef struct sender {
    tracked t;
    rw_loop *l;
    int fd;
    struct iovec iov[4];
    int iovcnt; /* iovecs left, starting at iov[first] */
    int first;
    size_t left;
    size_t sent;
    int sends;
    int shorts; /* completions with fewer bytes than asked */
    int error;
} sender;

static void sender_cb(rw_op *op, int res)
{
    sender *s = op->data;
    tracked_cb(op, res);
    s->sends++;
    if (res <= 0) {
        s->error = res == 0 ? -EIO : res;
        return;
    }
    size_t n = (size_t)res;
    if (n > s->left) {
        s->error = -E2BIG;
        return;
    }
    if (n < s->left)
        s->shorts++;
    s->sent += n;
    s->left -= n;
    while (n > 0) {
        struct iovec *v = &s->iov[s->first];
        size_t k = n < v->iov_len ? n : v->iov_len;
        v->iov_base = (char *)v->iov_base + k;
        v->iov_len -= k;
        n -= k;
        if (v->iov_len == 0) {
            s->first++;
            s->iovcnt--;
        }
    }
    if (s->left > 0)
        rw_loop_send(s->l, op, s->fd, &s->iov[s->first], s->iovcnt);
}

static bool sender_done(void *arg)
{
    sender *s = arg;
    return s->left == 0 || s->error != 0;
}

LOOP_TEST(send_large_partial)
{
    rw_loop *l = new_loop(backend, 0, 0);
    int fd, peer;
    tcp_pair(&fd, &peer);
    int small = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));

    char *data = malloc(BIG);
    cr_assert_not_null(data);
    for (size_t i = 0; i < BIG; i++)
        data[i] = (char)pattern(i);

    drain d = {.fd = peer};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, drain_main, &d), 0);

    sender s;
    memset(&s, 0, sizeof(s));
    tracked_init(&s.t);
    s.t.op.cb = sender_cb;
    s.t.op.data = &s;
    s.l = l;
    s.fd = fd;
    size_t cuts[] = {0, 1, 1u << 20, 3u << 20, BIG};
    for (int i = 0; i < 4; i++)
        s.iov[i] = (struct iovec){data + cuts[i], cuts[i + 1] - cuts[i]};
    s.iovcnt = 4;
    s.left = BIG;
    rw_loop_send(l, &s.t.op, fd, s.iov, s.iovcnt);
    cr_assert(run_until(l, sender_done, &s, 8000), "sent %zu of %u", s.sent, BIG);
    cr_assert_eq(s.error, 0, "send error %d", s.error);
    cr_assert_eq(s.sent, BIG);
    cr_assert_gt(s.shorts, 0, "a 4 MiB send through a 64 KiB buffer is reported short");
    cr_assert_eq(s.t.finals, s.sends);

    shutdown(fd, SHUT_WR);
    pthread_join(th, NULL);
    cr_assert_eq(d.got, BIG);
    cr_assert_eq(d.bad, 0u);

    free(data);
    close_fd(l, fd);
    close(peer);
    rw_loop_free(l);
}

/* A send that cannot make progress (nobody reads) waits and can be cancelled. */
LOOP_TEST(cancel_pending_send)
{
    rw_loop *l = new_loop(backend, 0, 0);
    int fd, peer;
    unix_pair(&fd, &peer);
    size_t n = 1u << 20;
    char *data = calloc(1, n);
    cr_assert_not_null(data);
    struct iovec iov = {data, n};
    tracked t;
    tracked_init(&t);
    /* Fill the socket: the first sends complete short, then one waits. */
    int calls = 0;
    for (;;) {
        rw_loop_send(l, &t.op, fd, &iov, 1);
        run_for(l, 30);
        if (t.calls == calls)
            break;
        cr_assert_gt(t.res, 0);
        cr_assert_lt(t.res, (int)n);
        calls = t.calls;
        cr_assert_lt(calls, 100, "the socket never filled up");
    }
    cr_assert(t.op.flags & RW_OPF_PENDING);
    rw_loop_cancel(l, &t.op);
    wait_calls(l, &t, calls + 1);
    cr_assert_eq(t.res, -ECANCELED);
    cr_assert(!(t.op.flags & RW_OPF_PENDING));
    /* Draining the peer now must not wake the cancelled send. */
    char buf[65536];
    while (recv(peer, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
    run_for(l, QUIET_MS);
    cr_assert_eq(t.calls, calls + 1);

    free(data);
    close_fd(l, fd);
    close(peer);
    rw_loop_free(l);
}

/* ---- connect ---- */

LOOP_TEST(connect_ok_and_refused)
{
    rw_loop *l = new_loop(backend, 0, 0);
    uint16_t port;
    int lfd = listen_tcp(&port);
    struct sockaddr_in a = loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    tracked t;
    tracked_init(&t);
    rw_loop_connect(l, &t.op, fd, (struct sockaddr *)&a, sizeof(a));
    wait_calls(l, &t, 1);
    cr_assert_eq(t.res, 0, "connect: %s", strerror(-t.res));
    cr_assert(!(t.flags & (RW_OPF_PENDING | RW_OPF_MORE)));
    cr_assert_eq(peer_port(fd), port);
    /* The connected socket carries data both ways through the loop. */
    int srv = accept(lfd, NULL, NULL);
    cr_assert(srv >= 0);
    char msg[] = "over the loop";
    struct iovec iov = {msg, sizeof(msg)};
    rw_loop_send(l, &t.op, fd, &iov, 1);
    wait_calls(l, &t, 2);
    cr_assert_eq(t.res, (int)sizeof(msg));
    char got[sizeof(msg)];
    read_exact(srv, got, sizeof(got));
    cr_assert_str_eq(got, msg);
    close(srv);
    close_fd(l, fd);

    /* A port nobody listens on (the listener's, once closed). */
    close(lfd);
    int fd2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert(fd2 >= 0);
    tracked t2;
    tracked_init(&t2);
    rw_loop_connect(l, &t2.op, fd2, (struct sockaddr *)&a, sizeof(a));
    wait_calls(l, &t2, 1);
    cr_assert_eq(t2.res, -ECONNREFUSED, "connect to a closed port: %d (%s)", t2.res, strerror(-t2.res));
    cr_assert(!(t2.flags & RW_OPF_PENDING));
    run_for(l, 20);
    cr_assert_eq(t2.calls, 1);
    close_fd(l, fd2);
    rw_loop_free(l);
}

/* ---- cancel ---- */

LOOP_TEST(cancel_pending_recv)
{
    rw_loop *l = new_loop(backend, 4, 4096);
    int fd, peer;
    tcp_pair(&fd, &peer);
    tracked t;
    tracked_init(&t);
    rw_loop_recv(l, &t.op, fd);
    run_for(l, 20);
    cr_assert_eq(t.calls, 0);
    rw_loop_cancel(l, &t.op);
    cr_assert(t.op.flags & RW_OPF_CANCEL);
    rw_loop_cancel(l, &t.op); /* a second request changes nothing */
    wait_calls(l, &t, 1);
    cr_assert_eq(t.res, -ECANCELED);
    cr_assert(!(t.op.flags & (RW_OPF_PENDING | RW_OPF_CANCEL | RW_OPF_MORE)));
    /* Data arriving now must not reach the cancelled op... */
    write_all(peer, "late", 4);
    run_for(l, QUIET_MS);
    cr_assert_eq(t.calls, 1, "exactly one callback after cancel");
    rw_loop_cancel(l, &t.op); /* cancelling a completed op is a no-op */
    run_for(l, 20);
    cr_assert_eq(t.calls, 1);
    /* ... and is still there for the next recv, with the buffer pool intact. */
    rw_loop_recv(l, &t.op, fd);
    wait_calls(l, &t, 2);
    check_recv(l, &t, "late", 4);
    rw_loop_buf_release(l, t.op.buf_id);

    /* Cancel straight after submitting, within the same turn. */
    tracked u;
    tracked_init(&u);
    char dst[8];
    rw_loop_recv_into(l, &u.op, fd, dst, sizeof(dst));
    rw_loop_cancel(l, &u.op);
    wait_calls(l, &u, 1);
    cr_assert_eq(u.res, -ECANCELED);
    run_for(l, 20);
    cr_assert_eq(u.calls, 1);

    close_fd(l, fd);
    close(peer);
    rw_loop_free(l);
}

/* The connection teardown order: cancel, close the fd at once, then the
 * callback comes (exactly once); forget the fd; its number is then reused. */
LOOP_TEST(cancel_then_close)
{
    rw_loop *l = new_loop(backend, 4, 4096);
    int fd, peer;
    tcp_pair(&fd, &peer);
    tracked t;
    tracked_init(&t);
    rw_loop_recv(l, &t.op, fd);
    run_for(l, 20);
    rw_loop_cancel(l, &t.op);
    close(fd);
    wait_calls(l, &t, 1);
    cr_assert_eq(t.res, -ECANCELED);
    rw_loop_forget_fd(l, fd);
    write_all(peer, "x", 1);
    run_for(l, QUIET_MS);
    cr_assert_eq(t.calls, 1);
    close(peer);

    /* A new socket on the (likely) same fd number works normally. */
    int fd2, peer2;
    tcp_pair(&fd2, &peer2);
    rw_loop_recv(l, &t.op, fd2);
    run_for(l, 20);
    cr_assert_eq(t.calls, 1);
    write_all(peer2, "fresh", 5);
    wait_calls(l, &t, 2);
    check_recv(l, &t, "fresh", 4);
    rw_loop_buf_release(l, t.op.buf_id);

    /* Cancel of a connect in progress, then close. */
    uint16_t port;
    int lfd = listen_tcp(&port);
    close(lfd); /* nothing listens: the connect fails or is cancelled */
    struct sockaddr_in a = loopback(port);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    tracked c;
    tracked_init(&c);
    rw_loop_connect(l, &c.op, cfd, (struct sockaddr *)&a, sizeof(a));
    rw_loop_cancel(l, &c.op);
    close(cfd);
    wait_calls(l, &c, 1);
    /* Exactly one callback with an error. io_uring flushes submissions once
     * per turn, so the connect may reach the kernel after the close: -EBADF. */
    cr_assert(c.res == -ECANCELED || c.res == -ECONNREFUSED || c.res == -EBADF, "res %d", c.res);
    run_for(l, 20);
    cr_assert_eq(c.calls, 1);
    rw_loop_forget_fd(l, cfd);

    close_fd(l, fd2);
    close(peer2);
    rw_loop_free(l);
}

/* ---- buffer exhaustion ---- */

LOOP_TEST(buffer_exhaustion)
{
    rw_loop *l = new_loop(backend, 2, 1024);
    int fds[3], peers[3];
    tracked t[3];
    for (int i = 0; i < 3; i++) {
        tracked_init(&t[i]);
        tcp_pair(&fds[i], &peers[i]);
    }
    /* Two receive and hold both buffers. */
    for (int i = 0; i < 2; i++) {
        rw_loop_recv(l, &t[i].op, fds[i]);
        char msg[] = "held0";
        msg[4] = (char)('0' + i);
        write_all(peers[i], msg, 5);
        wait_calls(l, &t[i], 1);
        cr_assert_eq(t[i].res, 5);
        cr_assert_eq(memcmp(t[i].op.buf, msg, 5), 0);
    }
    cr_assert_neq(t[0].op.buf_id, t[1].op.buf_id);

    /* The third has data but no buffer: it waits. */
    rw_loop_recv(l, &t[2].op, fds[2]);
    write_all(peers[2], "third", 5);
    run_for(l, QUIET_MS);
    cr_assert_eq(t[2].calls, 0, "a recv with no free buffer waits (res %d)", t[2].res);
    cr_assert(t[2].op.flags & RW_OPF_PENDING);

    /* A released buffer goes to it. */
    uint32_t freed = t[0].op.buf_id;
    rw_loop_buf_release(l, freed);
    wait_calls(l, &t[2], 1);
    check_recv(l, &t[2], "third", 2);
    cr_assert_eq(t[2].op.buf_id, freed);
    cr_assert_eq(memcmp(t[1].op.buf, "held1", 5), 0, "a held buffer is untouched");

    /* A starved recv can be cancelled; exactly one callback. */
    rw_loop_recv(l, &t[0].op, fds[0]);
    write_all(peers[0], "more", 4);
    run_for(l, 30);
    cr_assert_eq(t[0].calls, 1);
    rw_loop_cancel(l, &t[0].op);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    wait_calls(l, &t[0], 2);
    long ms = elapsed_ms(&t0);
    cr_assert(t[0].res == -ECANCELED || t[0].res == -ENOBUFS, "res %d", t[0].res);
    cr_assert_lt(ms, 500, "the cancelled starved recv was reported after %ld ms", ms);
    rw_loop_buf_release(l, t[2].op.buf_id);
    run_for(l, 30);
    cr_assert_eq(t[0].calls, 2, "no callback after the cancelled starved recv");
    /* The data is still there for a fresh recv. */
    rw_loop_recv(l, &t[0].op, fds[0]);
    wait_calls(l, &t[0], 3);
    cr_assert_eq(t[0].res, 4);
    cr_assert_eq(memcmp(t[0].op.buf, "more", 4), 0);

    rw_loop_buf_release(l, t[0].op.buf_id);
    rw_loop_buf_release(l, t[1].op.buf_id);
    for (int i = 0; i < 3; i++) {
        close_fd(l, fds[i]);
        close(peers[i]);
    }
    rw_loop_free(l);
}

/* Two recvs starved at once, and more data arrives for them while they wait:
 * each still gets a buffer once one is released, exactly once. */
LOOP_TEST(starved_recvs_see_new_data)
{
    rw_loop *l = new_loop(backend, 2, 1024);
    int fds[4], peers[4];
    tracked t[4];
    for (int i = 0; i < 4; i++) {
        tracked_init(&t[i]);
        tcp_pair(&fds[i], &peers[i]);
        write_all(peers[i], "a", 1);
    }
    for (int i = 0; i < 2; i++) {
        rw_loop_recv(l, &t[i].op, fds[i]);
        wait_calls(l, &t[i], 1);
        cr_assert_eq(t[i].res, 1);
    }
    rw_loop_recv(l, &t[2].op, fds[2]);
    run_for(l, 20);
    rw_loop_recv(l, &t[3].op, fds[3]);
    run_for(l, 20);
    cr_assert_eq(t[2].calls + t[3].calls, 0);
    /* New bytes (new readiness edges) for the last starved socket only. */
    write_all(peers[3], "b", 1);
    run_for(l, 30);
    write_all(peers[3], "c", 1);
    run_for(l, 30);
    cr_assert_eq(t[2].calls + t[3].calls, 0, "still no buffer");

    rw_loop_buf_release(l, t[0].op.buf_id);
    rw_loop_buf_release(l, t[1].op.buf_id);
    wait_calls(l, &t[2], 1);
    wait_calls(l, &t[3], 1);
    run_for(l, 30);
    cr_assert_eq(t[2].calls, 1);
    cr_assert_eq(t[3].calls, 1);
    cr_assert_eq(t[2].res, 1);
    cr_assert_eq(memcmp(t[2].op.buf, "a", 1), 0);
    cr_assert_eq(t[3].res, 3);
    cr_assert_eq(memcmp(t[3].op.buf, "abc", 3), 0);
    cr_assert_neq(t[2].op.buf_id, t[3].op.buf_id);

    /* Releasing these must not wake anything stale, and the pool is whole:
     * two fresh recvs complete. */
    rw_loop_buf_release(l, t[2].op.buf_id);
    rw_loop_buf_release(l, t[3].op.buf_id);
    run_for(l, 30);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(t[i].calls, 1);
    for (int i = 0; i < 2; i++) {
        write_all(peers[i], "z", 1);
        rw_loop_recv(l, &t[i].op, fds[i]);
    }
    for (int i = 0; i < 2; i++) {
        wait_calls(l, &t[i], 2);
        cr_assert_eq(t[i].res, 1);
    }
    cr_assert_neq(t[0].op.buf_id, t[1].op.buf_id);
    for (int i = 0; i < 2; i++)
        rw_loop_buf_release(l, t[i].op.buf_id);
    for (int i = 0; i < 4; i++) {
        close_fd(l, fds[i]);
        close(peers[i]);
    }
    rw_loop_free(l);
}

/* ---- closing through the loop ---- */

/* Whether the peer of a closed socket reads EOF now (without waiting). */
static bool peer_eof(void *arg)
{
    char c;
    return recv(*(int *)arg, &c, 1, MSG_DONTWAIT) == 0;
}

typedef struct peers {
    int *fds;
    int n;
} peers;

static bool all_peers_eof(void *arg)
{
    peers *p = arg;
    for (int i = 0; i < p->n; i++)
        if (!peer_eof(&p->fds[i]))
            return false;
    return true;
}

/* Runs short turns until cond(arg) holds (a completion-less close does not
 * end a turn that waits on the 1 s timer cap); returns whether it does. */
static bool run_turns_until(rw_loop *l, cond_fn cond, void *arg)
{
    for (unsigned ms = 0; ms < WAIT_MS && !cond(arg); ms += 10)
        run_for(l, 10);
    return cond(arg);
}

/* rw_loop_close: the peer sees EOF once a turn has run (io_uring: the close
 * goes out with the turn's submissions, also when it overflows the SQ); a
 * close still queued when the loop is freed is not lost. */
LOOP_TEST(close_through_loop)
{
    rw_loop *l = new_loop(backend, 8, 1024);
    int fd, peer;
    tracked t;
    tracked_init(&t);
    tcp_pair(&fd, &peer);
    /* A socket the loop has used, as a connection's is. */
    write_all(peer, "x", 1);
    rw_loop_recv(l, &t.op, fd);
    wait_calls(l, &t, 1);
    cr_assert_eq(t.res, 1);
    rw_loop_buf_release(l, t.op.buf_id);
    rw_loop_close(l, fd);
    if (backend == RW_BACKEND_URING)
        cr_assert(!peer_eof(&peer), "io_uring: the close waits for the turn's flush");
    cr_assert(run_turns_until(l, peer_eof, &peer), "the peer sees EOF after a turn");
    close(peer);

    /* More closes in one turn than the SQ has entries (64). */
    enum { N = 100 };
    int fds[N], pfds[N];
    for (int i = 0; i < N; i++)
        tcp_pair(&fds[i], &pfds[i]);
    for (int i = 0; i < N; i++)
        rw_loop_close(l, fds[i]);
    peers p = {pfds, N};
    cr_assert(run_turns_until(l, all_peers_eof, &p), "every peer sees EOF");
    for (int i = 0; i < N; i++)
        close(pfds[i]);

    /* Queued and never flushed: freeing the loop closes it. */
    tcp_pair(&fd, &peer);
    rw_loop_close(l, fd);
    rw_loop_free(l);
    struct pollfd pf = {.fd = peer, .events = POLLIN};
    cr_assert_eq(poll(&pf, 1, (int)WAIT_MS), 1, "the peer sees EOF after rw_loop_free");
    cr_assert(peer_eof(&peer));
    close(peer);
}

/* ---- eventfd wakeups ---- */

typedef struct waker {
    int efd;
    int n;
    int delay_ms;
} waker;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *waker_main(void *arg)
{
    waker *w = arg;
    for (int i = 0; i < w->n; i++) {
        sleep_ms(w->delay_ms);
        uint64_t one = 1;
        if (write(w->efd, &one, sizeof(one)) != sizeof(one))
            abort();
    }
    return NULL;
}

typedef struct wakee {
    tracked t;
    rw_loop *l;
    int efd;
    uint64_t sum; /* counter values read */
    int bad;
} wakee;

static void wakee_cb(rw_op *op, int res)
{
    wakee *w = op->data;
    tracked_cb(op, res);
    if (res == (int)sizeof(uint64_t)) {
        w->sum += op->evbuf;
        rw_loop_read_eventfd(w->l, op, w->efd); /* re-arm */
    } else if (res != -ECANCELED) {
        w->bad++;
    }
}

static bool wakee_sum(void *arg)
{
    wakee *w = arg;
    return w->sum >= (uint64_t)w->t.want;
}

LOOP_TEST(eventfd_wake_from_thread)
{
    rw_loop *l = new_loop(backend, 0, 0);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    cr_assert(efd >= 0);
    wakee w;
    memset(&w, 0, sizeof(w));
    tracked_init(&w.t);
    w.t.op.cb = wakee_cb;
    w.t.op.data = &w;
    w.l = l;
    w.efd = efd;
    rw_loop_read_eventfd(l, &w.t.op, efd);
    run_for(l, 20);
    cr_assert_eq(w.t.calls, 0);

    /* The loop sleeps in its wait (no timers due for a second): only the
     * eventfd can wake it this fast. */
    waker k = {.efd = efd, .n = 3, .delay_ms = 30};
    pthread_t th;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(pthread_create(&th, NULL, waker_main, &k), 0);
    w.t.want = 3;
    bool ok = run_until(l, wakee_sum, &w, WAIT_MS);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(th, NULL);
    cr_assert(ok, "woken %d times, counted %llu", w.t.calls, (unsigned long long)w.sum);
    cr_assert_eq(w.sum, 3u);
    cr_assert_eq(w.bad, 0);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    cr_assert_lt(ms, 900, "three wakeups took %ld ms", ms);

    cancel_and_wait(l, &w.t);
    cr_assert_eq(w.t.res, -ECANCELED);
    close_fd(l, efd);
    rw_loop_free(l);
}

/* ---- timers, clock, turn hook ---- */

typedef struct ttimer {
    rw_timer t;
    rw_loop *l;
    int fired;
    uint64_t fired_at; /* rw_loop_now() when it fired */
    const int *turns;  /* a hook's turn counter, if any */
    int fired_turn;    /* *turns when it fired */
} ttimer;

static void ttimer_cb(rw_timer *t)
{
    ttimer *x = RW_CONTAINER_OF(t, ttimer, t);
    x->fired++;
    x->fired_at = rw_loop_now(x->l);
    if (x->turns != NULL)
        x->fired_turn = *x->turns;
}

/* A turn hook that counts turns and stops once `watch` fired or `op` completed,
 * recording the turn in which it first saw that. */
typedef struct hookstate {
    int turns;
    ttimer *watch;
    tracked *op;
    int seen_turn;
    uint64_t last_now;
    int clock_back;
} hookstate;

static void count_hook(rw_loop *l, void *arg)
{
    hookstate *h = arg;
    h->turns++;
    uint64_t now = rw_loop_now(l);
    if (now < h->last_now)
        h->clock_back++;
    h->last_now = now;
    if ((h->watch != NULL && h->watch->fired) || (h->op != NULL && h->op->calls > 0)) {
        if (h->seen_turn == 0)
            h->seen_turn = h->turns;
        rw_loop_stop(l);
    }
}

/* Records the hook's turn count when the op completes. */
typedef struct hooked_op {
    tracked t;
    const int *turns;
    int done_turn;
} hooked_op;

static void hooked_cb(rw_op *op, int res)
{
    hooked_op *x = op->data;
    tracked_cb(op, res);
    x->done_turn = *x->turns;
}

static bool ttimer_fired(void *arg)
{
    ttimer *x = arg;
    return x->fired > 0;
}

struct fired_more {
    ttimer *x;
    int before;
};

static bool ttimer_fired_more(void *arg)
{
    struct fired_more *f = arg;
    return f->x->fired > f->before;
}

LOOP_TEST(timers_and_clock)
{
    rw_loop *l = new_loop(backend, 0, 0);
    rw_timers *tw = rw_loop_timers(l);
    cr_assert_not_null(tw);
    run_for(l, 5);
    uint64_t t0 = rw_loop_now(l);
    cr_assert_gt(t0, 0u);
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);

    ttimer a = {.l = l}, b = {.l = l};
    rw_timer_init(&a.t, ttimer_cb);
    rw_timer_init(&b.t, ttimer_cb);
    rw_timer_set(tw, &a.t, t0 + 50);
    rw_timer_set(tw, &b.t, t0 + 500); /* cancelled before it is due */
    cr_assert(run_until(l, ttimer_fired, &a, WAIT_MS), "timer never fired");
    clock_gettime(CLOCK_MONOTONIC, &w1);
    cr_assert_eq(a.fired, 1);
    cr_assert_geq(a.fired_at, t0 + 50, "fires no earlier than asked");
    cr_assert_lt(a.fired_at, t0 + 50 + 500, "and not much later");
    cr_assert_geq(rw_loop_now(l), t0 + 50, "the coarse clock advanced");
    long ms = (w1.tv_sec - w0.tv_sec) * 1000 + (w1.tv_nsec - w0.tv_nsec) / 1000000;
    cr_assert_geq(ms, 40, "the loop slept until the timer (%ld ms)", ms);
    cr_assert_eq(b.fired, 0);
    rw_timer_cancel(tw, &b.t);

    /* An already-due timer fires on the next turn, without waiting. */
    ttimer c = {.l = l};
    rw_timer_init(&c.t, ttimer_cb);
    rw_timer_set(tw, &c.t, rw_loop_now(l));
    clock_gettime(CLOCK_MONOTONIC, &w0);
    cr_assert(run_until(l, ttimer_fired, &c, WAIT_MS));
    clock_gettime(CLOCK_MONOTONIC, &w1);
    ms = (w1.tv_sec - w0.tv_sec) * 1000 + (w1.tv_nsec - w0.tv_nsec) / 1000000;
    cr_assert_lt(ms, 500, "a due timer fired after %ld ms", ms);

    run_for(l, 600);
    cr_assert_eq(b.fired, 0, "a cancelled timer never fires");
    rw_loop_free(l);
}

/* The hook runs once per turn, after that turn's completions and timers: the
 * hook that first sees a timer fired or an op completed is the one of the same
 * turn, and a stop from it ends the run there. The run can be started again. */
LOOP_TEST(turn_hook)
{
    rw_loop *l = new_loop(backend, 0, 0);
    hookstate h;
    memset(&h, 0, sizeof(h));
    ttimer x = {.l = l, .turns = &h.turns};
    rw_timer_init(&x.t, ttimer_cb);
    rw_timer_set(rw_loop_timers(l), &x.t, rw_loop_now(l) + 40);
    h.watch = &x;
    rw_loop_set_turn_hook(l, count_hook, &h);
    cr_assert_eq(rw_loop_run(l), 0);
    cr_assert_eq(x.fired, 1);
    cr_assert_geq(h.turns, 1);
    cr_assert_eq(h.seen_turn, x.fired_turn + 1, "timer fired after hook %d, first seen by hook %d",
                 x.fired_turn, h.seen_turn);
    cr_assert_eq(h.turns, h.seen_turn, "the stop ended the run in that turn");

    /* Again, with a completion instead of a timer. */
    h.watch = NULL;
    h.seen_turn = 0;
    hooked_op o;
    tracked_init(&o.t);
    o.t.op.cb = hooked_cb;
    o.t.op.data = &o;
    o.turns = &h.turns;
    h.op = &o.t;
    int fd, peer;
    unix_pair(&fd, &peer);
    char dst[8];
    rw_loop_recv_into(l, &o.t.op, fd, dst, sizeof(dst));
    write_all(peer, "x", 1);
    ttimer guard = {.l = l};
    rw_timer_init(&guard.t, ttimer_cb);
    rw_timer_set(rw_loop_timers(l), &guard.t, rw_loop_now(l) + WAIT_MS);
    int before = h.turns;
    cr_assert_eq(rw_loop_run(l), 0);
    rw_timer_cancel(rw_loop_timers(l), &guard.t);
    cr_assert_eq(o.t.calls, 1);
    cr_assert_eq(o.t.res, 1);
    cr_assert_gt(h.turns, before);
    cr_assert_eq(h.seen_turn, o.done_turn + 1, "completed after hook %d, first seen by hook %d", o.done_turn,
                 h.seen_turn);
    cr_assert_eq(h.clock_back, 0, "the coarse clock never goes back");
    rw_loop_set_turn_hook(l, NULL, NULL);

    close_fd(l, fd);
    close(peer);
    rw_loop_free(l);
}

/* What a completion callback does takes effect in its own turn: a timer it
 * arms fires on time and a stop it requests ends the run, even when the loop
 * has nothing else to wait for (no sleep on a wait computed before it ran). */
typedef struct reactor {
    tracked t;
    rw_loop *l;
    ttimer timer;
    int stop; /* stop the loop instead of arming the timer */
} reactor;

static void reactor_cb(rw_op *op, int res)
{
    reactor *r = op->data;
    tracked_cb(op, res);
    if (r->stop)
        rw_loop_stop(r->l);
    else
        rw_timer_set(rw_loop_timers(r->l), &r->timer.t, rw_loop_now(r->l) + 20);
}

LOOP_TEST(callback_effects_not_delayed)
{
    rw_loop *l = new_loop(backend, 0, 0);
    int fd, peer;
    unix_pair(&fd, &peer);
    reactor r;
    memset(&r, 0, sizeof(r));
    tracked_init(&r.t);
    r.t.op.cb = reactor_cb;
    r.t.op.data = &r;
    r.l = l;
    r.timer.l = l;
    rw_timer_init(&r.timer.t, ttimer_cb);
    char dst[8];

    /* Data already there and its readiness already seen by the loop (nothing
     * new to wake it): the recv completes on its first attempt. */
    for (int round = 0; round < 3; round++) {
        write_all(peer, "x", 1);
        run_for(l, 10);
        rw_loop_recv_into(l, &r.t.op, fd, dst, sizeof(dst));
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int fired = r.timer.fired;
        bool ok = run_until(l, ttimer_fired_more, &(struct fired_more){&r.timer, fired}, WAIT_MS);
        long ms = elapsed_ms(&t0);
        cr_assert(ok);
        cr_assert_lt(ms, 500, "a 20 ms timer armed by a callback fired after %ld ms", ms);
    }

    /* A stop from a callback ends rw_loop_run without waiting further. */
    r.stop = 1;
    write_all(peer, "y", 1);
    run_for(l, 10);
    int calls = r.t.calls;
    rw_loop_recv_into(l, &r.t.op, fd, dst, sizeof(dst));
    ttimer guard = {.l = l};
    rw_timer_init(&guard.t, ttimer_cb);
    rw_timer_set(rw_loop_timers(l), &guard.t, rw_loop_now(l) + 5000);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(rw_loop_run(l), 0);
    long ms = elapsed_ms(&t0);
    rw_timer_cancel(rw_loop_timers(l), &guard.t);
    cr_assert_eq(r.t.calls, calls + 1);
    cr_assert_lt(ms, 500, "stop from a callback took %ld ms", ms);

    close_fd(l, fd);
    close(peer);
    rw_loop_free(l);
}
