/* alog.c - the access log's rings and writer thread (alog.h).
 *
 * Each worker owns one single-producer, single-consumer byte ring (1 MiB).
 * A record is a 4-byte length and the line, padded to 4 bytes; a record
 * never wraps (a marker, or less than 4 bytes of room, sends the reader to
 * the start). The worker publishes its head with a release store; the
 * writer reads every ring, hands the lines to one writev per batch and
 * publishes the tails. The writer sleeps 20 ms when the rings are empty, so
 * a line is out within about 20 ms and an idle gateway wakes 50 times a
 * second. The sink's descriptor is opened by the control thread (so a
 * reload can say at once why a file cannot be opened) and swapped under a
 * mutex the workers never take. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ringway/alog.h"
#include "ringway/common.h"
#include "ringway/log.h"

#define RING_SIZE (1u << 20)
#define WRAP_MARK 0xFFFFFFFFu
#define BATCH_IOV 512
#define IDLE_NS 20000000L

struct rw_alog_ring {
    _Atomic uint64_t head; /* bytes published by the worker */
    char pad1[56];
    _Atomic uint64_t tail; /* bytes consumed by the writer */
    char pad2[56];
    uint64_t res; /* the worker's: where the reserved record starts */
    char *buf;
};

static struct {
    rw_alog_ring *rings;
    int n;
    pthread_t tid;
    bool running;
    pthread_mutex_t mu;
    int fd;        /* the sink, -1: off */
    bool own_fd;   /* a file we opened (closed when replaced) */
    int stale[16]; /* replaced descriptors: only the writer closes them, between batches */
    int nstale;
    char path[4096];
    bool stop;
    _Atomic uint64_t dropped, written, write_errors;
} A = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static uint32_t pad4(uint32_t n)
{
    return (n + 3u) & ~3u;
}

rw_alog_ring *rw_alog_ring_of(int worker_id)
{
    return A.rings != NULL && worker_id >= 0 && worker_id < A.n ? &A.rings[worker_id] : NULL;
}

char *rw_alog_reserve(rw_alog_ring *r, uint32_t max)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint32_t off = (uint32_t)(h % RING_SIZE), need = 4 + pad4(max);
    uint32_t skip = RING_SIZE - off < need ? RING_SIZE - off : 0;
    if (need > RING_SIZE / 4 || h + skip + need - t > RING_SIZE) {
        atomic_fetch_add_explicit(&A.dropped, 1, memory_order_relaxed);
        return NULL;
    }
    if (skip >= 4)
        memcpy(r->buf + off, &(uint32_t){WRAP_MARK}, 4);
    r->res = h + skip;
    return r->buf + (r->res % RING_SIZE) + 4;
}

void rw_alog_commit(rw_alog_ring *r, uint32_t len)
{
    memcpy(r->buf + (r->res % RING_SIZE), &len, 4);
    atomic_store_explicit(&r->head, r->res + 4 + pad4(len), memory_order_release);
}

/* Writes iov[0..n) fully to fd (a blocking descriptor); false on an error. */
static bool write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return true;
}

/* Moves what the rings hold to fd (-1: drops it). Returns the lines moved. */
static uint64_t drain(int fd)
{
    uint64_t lines = 0;
    struct iovec iov[BATCH_IOV];
    for (int i = 0; i < A.n; i++) {
        rw_alog_ring *r = &A.rings[i];
        for (;;) {
            uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
            uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
            int n = 0;
            while (t < h && n < BATCH_IOV) {
                uint32_t off = (uint32_t)(t % RING_SIZE), len;
                if (RING_SIZE - off < 4) {
                    t += RING_SIZE - off;
                    continue;
                }
                memcpy(&len, r->buf + off, 4);
                if (len == WRAP_MARK) {
                    t += RING_SIZE - off;
                    continue;
                }
                iov[n++] = (struct iovec){r->buf + off + 4, len};
                t += 4 + pad4(len);
            }
            if (n == 0)
                break;
            if (fd >= 0 && !write_all(fd, iov, n))
                atomic_fetch_add_explicit(&A.write_errors, 1, memory_order_relaxed);
            lines += (uint64_t)n;
            atomic_store_explicit(&r->tail, t, memory_order_release);
        }
    }
    atomic_fetch_add_explicit(&A.written, lines, memory_order_relaxed);
    return lines;
}

static void *writer_main(void *arg)
{
    (void)arg;
    rw_log_set_thread(-1);
    uint64_t errors_seen = 0;
    for (;;) {
        /* The descriptors replaced since the last batch are no longer the
         * sink, and the last batch is over: they can go. */
        int stale[16], nstale;
        pthread_mutex_lock(&A.mu);
        int fd = A.fd;
        bool stop = A.stop;
        nstale = A.nstale;
        memcpy(stale, A.stale, sizeof(int) * (size_t)nstale);
        A.nstale = 0;
        pthread_mutex_unlock(&A.mu);
        for (int i = 0; i < nstale; i++)
            close(stale[i]);
        uint64_t moved = drain(fd);
        uint64_t errs = atomic_load(&A.write_errors);
        if (errs != errors_seen) {
            rw_log_error("access log: writing to %s failed: %s (lines lost)", A.path, strerror(errno));
            errors_seen = errs;
        }
        if (stop)
            break;
        if (moved == 0)
            nanosleep(&(struct timespec){0, IDLE_NS}, NULL);
    }
    return NULL;
}

/* Opens cfg's sink: *fd (-1 for off) and whether we own it. */
static int open_sink(const rw_access_log_cfg *cfg, int *fd, bool *own, char *err, size_t errlen)
{
    const char *p = cfg->path != NULL ? cfg->path : "stdout";
    *own = false;
    if (strcmp(p, "off") == 0) {
        *fd = -1;
        return 0;
    }
    if (strcmp(p, "stdout") == 0) {
        *fd = STDOUT_FILENO;
        return 0;
    }
    if (strcmp(p, "stderr") == 0) {
        *fd = STDERR_FILENO;
        return 0;
    }
    int f = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (f < 0) {
        int e = errno;
        snprintf(err, errlen, "access log: cannot open %s: %s", p, strerror(e));
        return -e;
    }
    *fd = f;
    *own = true;
    return 0;
}

/* Swaps the sink to fd; the old one (if ours) is closed by the writer. */
static void set_sink(int fd, bool own, const char *path)
{
    pthread_mutex_lock(&A.mu);
    if (A.own_fd && A.fd >= 0 && A.fd != fd) {
        if (A.nstale < (int)RW_ARRAY_LEN(A.stale))
            A.stale[A.nstale++] = A.fd;
        else
            rw_log_warn("access log: too many sink changes at once; %s stays open", A.path);
    }
    A.fd = fd;
    A.own_fd = own;
    snprintf(A.path, sizeof(A.path), "%s", path);
    pthread_mutex_unlock(&A.mu);
}

int rw_alog_start(int nworkers, const rw_access_log_cfg *cfg, char *err, size_t errlen)
{
    int fd;
    bool own;
    int rc = open_sink(cfg, &fd, &own, err, errlen);
    if (rc != 0)
        return rc;
    A.rings = calloc((size_t)nworkers, sizeof(*A.rings));
    if (A.rings == NULL)
        goto oom;
    for (int i = 0; i < nworkers; i++) {
        /* Reserved, not touched: pages become resident as lines are written. */
        A.rings[i].buf = malloc(RING_SIZE);
        if (A.rings[i].buf == NULL)
            goto oom;
        A.n = i + 1;
    }
    set_sink(fd, own, cfg->path != NULL ? cfg->path : "stdout");
    rc = pthread_create(&A.tid, NULL, writer_main, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "access log: cannot start its writer: %s", strerror(rc));
        return -rc;
    }
    A.running = true;
    return 0;
oom:
    if (own)
        close(fd);
    for (int i = 0; A.rings != NULL && i < nworkers; i++)
        free(A.rings[i].buf);
    free(A.rings);
    A.rings = NULL;
    A.n = 0;
    snprintf(err, errlen, "access log: out of memory");
    return -ENOMEM;
}

int rw_alog_configure(const rw_access_log_cfg *cfg, char *err, size_t errlen)
{
    const char *p = cfg->path != NULL ? cfg->path : "stdout";
    if (!A.running || strcmp(p, A.path) == 0)
        return 0;
    int fd;
    bool own;
    if (open_sink(cfg, &fd, &own, err, errlen) != 0)
        return -1;
    set_sink(fd, own, p);
    return 0;
}

void rw_alog_reopen(void)
{
    if (!A.running || !A.own_fd)
        return;
    char path[sizeof(A.path)];
    snprintf(path, sizeof(path), "%s", A.path);
    rw_access_log_cfg c = {.path = path};
    char err[256];
    int fd;
    bool own;
    if (open_sink(&c, &fd, &own, err, sizeof(err)) != 0) {
        rw_log_error("%s; still writing to the old file", err);
        return;
    }
    set_sink(fd, own, c.path);
    rw_log_info("access log: reopened %s", c.path);
}

void rw_alog_stop(void)
{
    if (!A.running)
        return;
    pthread_mutex_lock(&A.mu);
    A.stop = true;
    pthread_mutex_unlock(&A.mu);
    pthread_join(A.tid, NULL); /* its last pass drains the rings */
    A.running = false;
    if (A.own_fd && A.fd >= 0)
        close(A.fd);
    for (int i = 0; i < A.nstale; i++)
        close(A.stale[i]);
    A.nstale = 0;
    for (int i = 0; i < A.n; i++)
        free(A.rings[i].buf);
    free(A.rings);
    A.rings = NULL;
    A.n = 0;
}

uint64_t rw_alog_dropped(void)
{
    return atomic_load_explicit(&A.dropped, memory_order_relaxed);
}

uint64_t rw_alog_written(void)
{
    return atomic_load_explicit(&A.written, memory_order_relaxed);
}
