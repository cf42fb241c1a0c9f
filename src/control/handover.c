/* handover.c - the upgrade socket: passing listening sockets to a successor
 * process with SCM_RIGHTS (see include/ringway/handover.h). */
#include <errno.h>
#include <stddef.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ringway/common.h"
#include "ringway/handover.h"

#define RW_HO_MAGIC 0x4f485752u /* "RWHO" */
#define RW_HO_VERSION 1
#define RW_HO_BATCH 32 /* fds per message (the kernel allows 253) */
#define RW_HO_MSG_MAX 4096

typedef struct rw_ho_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t type;  /* enum rw_ho_type */
    uint32_t count; /* FDS: entries; END: fds in all; READY: kept the upgrade socket */
    uint32_t pid;
} rw_ho_hdr;

typedef struct rw_ho_entry {
    uint16_t role;
    uint16_t pad;
    uint32_t addr;
    uint32_t slot;
    char text[52];
} rw_ho_entry;

_Static_assert(sizeof(rw_ho_hdr) + RW_HO_BATCH * sizeof(rw_ho_entry) <= RW_HO_MSG_MAX, "batch too big");

static int unix_addr(const char *path, struct sockaddr_un *sa, char *err, size_t errlen)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(sa->sun_path)) {
        snprintf(err, errlen, "upgrade socket %s: the path must be 1 to %zu bytes", path,
                 sizeof(sa->sun_path) - 1);
        return -1;
    }
    memcpy(sa->sun_path, path, len);
    return 0;
}

/* The peer may hand us sockets or take ours: the same uid, or root. */
static int peer_check(int fd, pid_t *peer, char *err, size_t errlen)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == -1) {
        snprintf(err, errlen, "SO_PEERCRED: %s", strerror(errno));
        return -1;
    }
    if (cr.uid != geteuid() && cr.uid != 0) {
        snprintf(err, errlen, "refused: peer pid %d runs as uid %u (only uid %u or root may)", (int)cr.pid,
                 (unsigned)cr.uid, (unsigned)geteuid());
        return -1;
    }
    *peer = cr.pid;
    return 0;
}

static void set_timeouts(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static int send_msg(int conn, uint16_t type, uint32_t count, const void *body, size_t body_len,
                    const int *fds, size_t nfds)
{
    rw_ho_hdr h = {.magic = RW_HO_MAGIC,
                   .version = RW_HO_VERSION,
                   .type = type,
                   .count = count,
                   .pid = (uint32_t)getpid()};
    struct iovec iov[2] = {{.iov_base = &h, .iov_len = sizeof(h)},
                           {.iov_base = (void *)body, .iov_len = body_len}};
    union {
        char buf[CMSG_SPACE(sizeof(int) * RW_HO_BATCH)];
        struct cmsghdr align;
    } u;
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = body_len > 0 ? 2 : 1};
    if (nfds > 0) {
        memset(&u, 0, sizeof(u));
        m.msg_control = u.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t n;
    do
        n = sendmsg(conn, &m, MSG_NOSIGNAL);
    while (n == -1 && errno == EINTR);
    return n == (ssize_t)(sizeof(h) + body_len) ? 0 : -1;
}

static ssize_t recv_msg(int conn, char *buf, size_t cap, int flags, int *fds, size_t *nfds);

int rw_handover_listen(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    if (unix_addr(path, &sa, err, errlen) != 0)
        return -1;
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "upgrade socket %s: exists and is not a socket", path);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (probe == -1) {
            snprintf(err, errlen, "upgrade socket %s: socket: %s", path, strerror(errno));
            return -1;
        }
        int rc = connect(probe, (const struct sockaddr *)&sa, sizeof(sa));
        int e = errno;
        close(probe);
        if (rc == 0) {
            snprintf(
                err, errlen,
                "upgrade socket %s: another ringway listens there (start this one with --upgrade to take "
                "over from it)",
                path);
            return -1;
        }
        if (e != ECONNREFUSED && e != ENOENT) {
            snprintf(err, errlen, "upgrade socket %s: cannot tell whether it is stale: %s", path,
                     strerror(e));
            return -1;
        }
        if (e == ECONNREFUSED && unlink(path) == -1 && errno != ENOENT) {
            snprintf(err, errlen, "upgrade socket %s: cannot remove the stale socket: %s", path,
                     strerror(errno));
            return -1;
        }
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        snprintf(err, errlen, "upgrade socket %s: socket: %s", path, strerror(errno));
        return -1;
    }
    mode_t old = umask(0077); /* the socket file is 0600 from the start */
    int rc = bind(fd, (const struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    umask(old);
    if (rc == -1 || listen(fd, 4) == -1) {
        if (rc == 0)
            e = errno;
        snprintf(err, errlen, "upgrade socket %s: %s: %s", path, rc == -1 ? "bind" : "listen", strerror(e));
        close(fd);
        return -1;
    }
    return fd;
}

void rw_handover_unlink(const char *path, int fd)
{
    struct stat b;
    if (path == NULL || fd < 0 || lstat(path, &b) != 0)
        return;
    /* A bound UNIX socket's fstat does not show the file's inode: check the
     * name the socket is bound to, and that the file is a socket. */
    struct sockaddr_un sa;
    socklen_t len = sizeof(sa);
    if (!S_ISSOCK(b.st_mode) || getsockname(fd, (struct sockaddr *)&sa, &len) != 0 ||
        len <= offsetof(struct sockaddr_un, sun_path) || strncmp(sa.sun_path, path, sizeof(sa.sun_path)) != 0)
        return;
    (void)unlink(path);
}

int rw_handover_accept(int lfd, pid_t *peer, char *err, size_t errlen)
{
    err[0] = '\0';
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd == -1) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            snprintf(err, errlen, "upgrade socket: accept: %s", strerror(errno));
        return -1;
    }
    if (peer_check(fd, peer, err, errlen) != 0) {
        close(fd);
        return -1;
    }
    set_timeouts(fd, 2000);
    /* Nothing is sent before the peer says HELLO: a probe (a starting
     * ringway checking whether the socket file is stale) just goes away. */
    char buf[RW_HO_MSG_MAX];
    ssize_t n = recv_msg(fd, buf, sizeof(buf), 0, NULL, NULL);
    if (n <= 0 || ((const rw_ho_hdr *)buf)->type != RW_HO_HELLO) {
        if (n != 0)
            snprintf(err, errlen, "pid %d: no hello (%s)", (int)*peer,
                     n < 0 ? strerror(errno) : "unexpected message");
        close(fd);
        return -1;
    }
    return fd;
}

int rw_handover_send(int conn, const rw_ho_sock *socks, size_t n, char *err, size_t errlen)
{
    rw_ho_entry ents[RW_HO_BATCH];
    int fds[RW_HO_BATCH];
    for (size_t off = 0; off < n; off += RW_HO_BATCH) {
        size_t k = RW_MIN(n - off, (size_t)RW_HO_BATCH);
        for (size_t i = 0; i < k; i++) {
            const rw_ho_sock *s = &socks[off + i];
            memset(&ents[i], 0, sizeof(ents[i]));
            ents[i].role = s->role;
            ents[i].addr = s->addr;
            ents[i].slot = s->slot;
            snprintf(ents[i].text, sizeof(ents[i].text), "%s", s->text);
            fds[i] = s->fd;
        }
        if (send_msg(conn, RW_HO_FDS, (uint32_t)k, ents, k * sizeof(rw_ho_entry), fds, k) != 0) {
            snprintf(err, errlen, "sending listening sockets: %s", strerror(errno));
            return -1;
        }
    }
    if (send_msg(conn, RW_HO_END, (uint32_t)n, NULL, 0, NULL, 0) != 0) {
        snprintf(err, errlen, "sending the end of the handover: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Receives one message into buf; closes any fds that came with it unless
 * fds is given (then up to RW_HO_BATCH land there, *nfds of them). Returns
 * the bytes, 0 on EOF, -1 with errno (EBADMSG: truncated or not ours). */
static ssize_t recv_msg(int conn, char *buf, size_t cap, int flags, int *fds, size_t *nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * RW_HO_BATCH)];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    ssize_t n;
    do
        n = recvmsg(conn, &m, flags | MSG_CMSG_CLOEXEC);
    while (n == -1 && errno == EINTR);
    if (nfds != NULL)
        *nfds = 0;
    if (n == -1)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int got[RW_HO_BATCH];
        memcpy(got, CMSG_DATA(c), sizeof(int) * RW_MIN(k, (size_t)RW_HO_BATCH));
        for (size_t i = 0; i < k && i < RW_HO_BATCH; i++) {
            if (fds != NULL && *nfds < RW_HO_BATCH)
                fds[(*nfds)++] = got[i];
            else
                close(got[i]);
        }
    }
    const rw_ho_hdr *h = (const rw_ho_hdr *)buf;
    if ((m.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) ||
        (n > 0 && ((size_t)n < sizeof(*h) || h->magic != RW_HO_MAGIC || h->version != RW_HO_VERSION))) {
        for (size_t i = 0; nfds != NULL && i < *nfds; i++)
            close(fds[i]);
        if (nfds != NULL)
            *nfds = 0;
        errno = EBADMSG;
        return -1;
    }
    return n;
}

int rw_handover_poll(int conn, bool *kept, char *text, size_t cap)
{
    char buf[RW_HO_MSG_MAX];
    text[0] = '\0';
    ssize_t n = recv_msg(conn, buf, sizeof(buf) - 1, MSG_DONTWAIT, NULL, NULL);
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n <= 0) {
        snprintf(text, cap, "%s", n == 0 ? "it closed the connection before it was ready" : strerror(errno));
        return -1;
    }
    const rw_ho_hdr *h = (const rw_ho_hdr *)buf;
    if (h->type == RW_HO_READY) {
        *kept = h->count != 0;
        return RW_HO_READY;
    }
    if (h->type == RW_HO_ABORT) {
        buf[n] = '\0';
        snprintf(text, cap, "%s", buf + sizeof(*h));
        return RW_HO_ABORT;
    }
    snprintf(text, cap, "unexpected message type %u", (unsigned)h->type);
    return -1;
}

void rw_handover_send_draining(int conn)
{
    (void)send_msg(conn, RW_HO_DRAINING, 0, NULL, 0, NULL, 0);
}

int rw_handover_connect(const char *path, pid_t *peer, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    if (unix_addr(path, &sa, err, errlen) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) == -1) {
        snprintf(err, errlen, "cannot reach the running ringway on %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (peer_check(fd, peer, err, errlen) != 0) {
        close(fd);
        return -1;
    }
    set_timeouts(fd, 5000);
    if (send_msg(fd, RW_HO_HELLO, 0, NULL, 0, NULL, 0) != 0) {
        snprintf(err, errlen, "cannot talk to the running ringway on %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int rw_handover_receive(int conn, rw_ho_sock **out, size_t *n, pid_t *sender, char *err, size_t errlen)
{
    char buf[RW_HO_MSG_MAX];
    rw_ho_sock *socks = NULL;
    size_t have = 0, cap = 0;
    int rc = -1;
    for (;;) {
        int fds[RW_HO_BATCH];
        size_t nfds = 0;
        ssize_t len = recv_msg(conn, buf, sizeof(buf), 0, fds, &nfds);
        if (len <= 0) {
            snprintf(err, errlen, "receiving the listening sockets: %s",
                     len == 0           ? "the running ringway closed the connection"
                     : errno == EBADMSG ? "a truncated or foreign message"
                                        : strerror(errno));
            goto out;
        }
        const rw_ho_hdr *h = (const rw_ho_hdr *)buf;
        if (h->type == RW_HO_END) {
            if (h->count != have) {
                snprintf(err, errlen, "the running ringway sent %zu sockets but says %u", have, h->count);
                goto out;
            }
            *sender = (pid_t)h->pid; /* SO_PEERCRED names whoever listen()ed first */
            rc = 0;
            goto out;
        }
        size_t k = h->type == RW_HO_FDS ? h->count : 0;
        if (h->type != RW_HO_FDS || k != nfds || k > RW_HO_BATCH ||
            (size_t)len != sizeof(*h) + k * sizeof(rw_ho_entry)) {
            for (size_t i = 0; i < nfds; i++)
                close(fds[i]);
            snprintf(err, errlen, "receiving the listening sockets: a malformed message (type %u, %zu fds)",
                     (unsigned)h->type, nfds);
            goto out;
        }
        if (have + k > cap) {
            size_t ncap = cap ? cap * 2 : 64;
            while (ncap < have + k)
                ncap *= 2;
            rw_ho_sock *p = realloc(socks, ncap * sizeof(*p));
            if (p == NULL) {
                for (size_t i = 0; i < nfds; i++)
                    close(fds[i]);
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            socks = p;
            cap = ncap;
        }
        const rw_ho_entry *e = (const rw_ho_entry *)(buf + sizeof(*h));
        for (size_t i = 0; i < k; i++) {
            rw_ho_sock *s = &socks[have++];
            s->fd = fds[i];
            s->role = e[i].role;
            s->addr = e[i].addr;
            s->slot = e[i].slot;
            memcpy(s->text, e[i].text, sizeof(s->text));
            s->text[sizeof(s->text) - 1] = '\0';
        }
    }
out:
    if (rc != 0) {
        for (size_t i = 0; i < have; i++)
            close(socks[i].fd);
        free(socks);
        socks = NULL;
        have = 0;
    }
    *out = socks;
    *n = have;
    return rc;
}

int rw_handover_ready(int conn, bool kept, int timeout_ms, char *err, size_t errlen)
{
    if (send_msg(conn, RW_HO_READY, kept ? 1 : 0, NULL, 0, NULL, 0) != 0) {
        snprintf(err, errlen, "telling the old process we are ready: %s", strerror(errno));
        return -1;
    }
    struct pollfd p = {.fd = conn, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1) {
        snprintf(err, errlen, "the old process did not confirm its drain within %d ms", timeout_ms);
        return -1;
    }
    char buf[RW_HO_MSG_MAX];
    ssize_t n = recv_msg(conn, buf, sizeof(buf), 0, NULL, NULL);
    if (n <= 0 || ((const rw_ho_hdr *)buf)->type != RW_HO_DRAINING) {
        snprintf(err, errlen, "the old process did not confirm its drain (%s)",
                 n == 0  ? "it closed the connection"
                 : n < 0 ? strerror(errno)
                         : "unexpected message");
        return -1;
    }
    return 0;
}

void rw_handover_abort(int conn, const char *reason)
{
    (void)send_msg(conn, RW_HO_ABORT, 0, reason, strlen(reason), NULL, 0);
}
