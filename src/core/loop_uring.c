/* loop_uring.c - io_uring backend: multishot accept, a provided-buffer ring
 * for receives (idle sockets hold no buffer), one io_uring_enter per turn. */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "loop_int.h"
#include "ringway/log.h"

#define RW_URING_BGID 0
#define RW_CQE_BATCH 256
/* Buffers kept out of the kernel's ring for rw_loop_buf_take (TLS delivers
 * plaintext it already holds in one). */
#define RW_URING_STASH 16

typedef struct uring_be {
    struct io_uring ring;
    struct io_uring_buf_ring *br; /* mmap'd, registered with the ring */
    size_t br_bytes;
    uint32_t br_mask;
    rw_op *starved;  /* RECV ops that found the buffer ring empty */
    rw_op *deferred; /* completions to deliver at the next poll */
    bool disabled;   /* created R_DISABLED: enabled by the first poll */
    bool attached;   /* the driving thread registered the ring fd */
    uint32_t nstash;
    uint32_t stash_cap;             /* RW_URING_STASH, or 0 for small loops (all in the ring) */
    uint32_t stash[RW_URING_STASH]; /* free buffers not in the ring */
} uring_be;

/* Run by the thread that drives the ring, before its first io_uring_enter: it
 * registers the ring fd (so each enter skips the file-table lookup; the
 * registration is per thread) and enables a ring created disabled, which
 * makes it the ring's only submitter (SINGLE_ISSUER, needed for deferred
 * task work). */
static int ensure_enabled(uring_be *be)
{
    if (RW_LIKELY(be->attached))
        return 0;
    if (be->disabled) {
        /* The raw register call: liburing 2.3 declares io_uring_enable_rings
         * but does not export it. */
        int rc = io_uring_register((unsigned)be->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
        if (rc < 0)
            return rc;
        be->disabled = false;
    }
    be->attached = true;
    (void)io_uring_register_ring_fd(&be->ring); /* an optimisation: failure is fine */
    return 0;
}

static struct io_uring_sqe *get_sqe(uring_be *be)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&be->ring);
    if (RW_UNLIKELY(sqe == NULL)) {
        /* SQ full: flush what we have, then there is room. */
        if (ensure_enabled(be) == 0)
            io_uring_submit(&be->ring);
        sqe = io_uring_get_sqe(&be->ring);
    }
    return sqe;
}

/* Sets the ring up with the best flags this kernel takes; *disabled tells
 * whether it was created R_DISABLED (and must be enabled by its thread). */
static int ring_setup(struct io_uring *ring, uint32_t entries, bool *disabled)
{
    /* Cooperative task work: completions are posted when the worker enters
     * the kernel, without interrupting it. RW_URING_DEFER=1 (measurements)
     * tries first a single-issuer ring with deferred task work (6.1+; made by
     * the main thread, so created disabled and enabled by its worker): in a
     * 9-round A/B it cost the same CPU per request (+0.9%, within noise) and
     * 0.58 instead of ~0.45 io_uring_enter calls per request, because
     * deferred completions are only run by an enter that waits for them. */
    static const unsigned flag_sets[] = {
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
            IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    const char *defer = getenv("RW_URING_DEFER");
    for (size_t i = defer != NULL && *defer == '1' ? 0 : 1; i < RW_ARRAY_LEN(flag_sets); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = flag_sets[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = entries * 4;
        rc = io_uring_queue_init_params(entries, ring, &p);
        if (rc != -EINVAL) {
            *disabled = rc == 0 && (flag_sets[i] & IORING_SETUP_R_DISABLED) != 0;
            break;
        }
    }
    return rc;
}

static int uring_init(rw_loop *l, const rw_loop_opts *o)
{
    uring_be *be = calloc(1, sizeof(*be));
    if (be == NULL)
        return -ENOMEM;
    uint32_t entries = o->ring_entries ? o->ring_entries : 4096;
    int rc = ring_setup(&be->ring, entries, &be->disabled);
    if (rc < 0)
        goto fail_be;
    be->br_bytes = (size_t)l->buf_count * sizeof(struct io_uring_buf);
    be->br = mmap(NULL, be->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (be->br == MAP_FAILED) {
        rc = -errno;
        goto fail_ring;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)be->br;
    reg.ring_entries = l->buf_count;
    reg.bgid = RW_URING_BGID;
    rc = io_uring_register_buf_ring(&be->ring, &reg, 0);
    if (rc < 0)
        goto fail_br;
    io_uring_buf_ring_init(be->br);
    be->br_mask = (uint32_t)io_uring_buf_ring_mask(l->buf_count);
    uint32_t in_ring = l->buf_count > 2 * RW_URING_STASH ? l->buf_count - RW_URING_STASH : l->buf_count;
    for (uint32_t i = 0; i < in_ring; i++)
        io_uring_buf_ring_add(be->br, rw_loop_buf(l, i), l->buf_size, (unsigned short)i, be->br_mask, (int)i);
    io_uring_buf_ring_advance(be->br, (int)in_ring);
    be->stash_cap = in_ring < l->buf_count ? RW_URING_STASH : 0;
    for (uint32_t i = in_ring; i < l->buf_count; i++)
        be->stash[be->nstash++] = i;
    l->be = be;
    return 0;

fail_br:
    munmap(be->br, be->br_bytes);
fail_ring:
    io_uring_queue_exit(&be->ring);
fail_be:
    free(be);
    return rc;
}

/* Closes the sockets of close SQEs (rw_loop_close) that the kernel never
 * consumed: queued after the last flush, or flushed by a submit that failed.
 * Nothing submits them at teardown (it may run on another thread than the
 * ring's only issuer), and io_uring_queue_exit drops them. */
static void close_unsubmitted(uring_be *be)
{
    struct io_uring_sq *sq = &be->ring.sq;
    for (unsigned i = io_uring_smp_load_acquire(sq->khead); i != sq->sqe_tail; i++) {
        const struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];
        if (sqe->opcode == IORING_OP_CLOSE)
            close(sqe->fd);
    }
}

static void uring_fini(rw_loop *l)
{
    uring_be *be = l->be;
    if (be == NULL)
        return;
    close_unsubmitted(be);
    io_uring_unregister_buf_ring(&be->ring, RW_URING_BGID);
    io_uring_queue_exit(&be->ring);
    munmap(be->br, be->br_bytes);
    free(be);
    l->be = NULL;
}

static void uring_submit(rw_loop *l, rw_op *op)
{
    uring_be *be = l->be;
    struct io_uring_sqe *sqe = get_sqe(be);
    switch (op->kind) {
    case RW_OP_ACCEPT:
        io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
    case RW_OP_RECV:
        io_uring_prep_recv(sqe, op->fd, NULL, l->buf_size, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = RW_URING_BGID;
        break;
    case RW_OP_RECV_INTO:
        io_uring_prep_recv(sqe, op->fd, op->dst, op->dst_len, 0);
        break;
    case RW_OP_SEND:
        io_uring_prep_sendmsg(sqe, op->fd, &op->msg, MSG_NOSIGNAL);
        break;
    case RW_OP_CONNECT:
        io_uring_prep_connect(sqe, op->fd, op->addr, op->addrlen);
        break;
    case RW_OP_READ_EVENTFD:
        io_uring_prep_read(sqe, op->fd, &op->evbuf, sizeof(op->evbuf), 0);
        break;
    default:
        abort();
    }
    io_uring_sqe_set_data64(sqe, rw__op_token(op));
}

static bool list_remove(rw_op **head, rw_op *op)
{
    for (rw_op **pp = head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == op) {
            *pp = op->next;
            op->next = NULL;
            return true;
        }
    }
    return false;
}

static void uring_cancel(rw_loop *l, rw_op *op)
{
    uring_be *be = l->be;
    if (list_remove(&be->starved, op)) {
        /* Not in the kernel: complete it ourselves, outside the caller's stack. */
        op->next = be->deferred;
        be->deferred = op;
        return;
    }
    struct io_uring_sqe *sqe = get_sqe(be);
    io_uring_prep_cancel64(sqe, rw__op_token(op), 0);
    io_uring_sqe_set_data64(sqe, 0);
}

static void uring_forget_fd(rw_loop *l, int fd)
{
    (void)l;
    (void)fd;
}

/* Fire and forget: user_data 0, which dispatch ignores; where the kernel can,
 * a successful close posts no completion at all. */
static void uring_close(rw_loop *l, int fd)
{
    uring_be *be = l->be;
    struct io_uring_sqe *sqe = get_sqe(be);
    if (RW_UNLIKELY(sqe == NULL)) {
        close(fd); /* SQ full and the flush failed */
        return;
    }
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, 0);
    if (be->ring.features & IORING_FEAT_CQE_SKIP)
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

static bool uring_buf_take(rw_loop *l, uint32_t *id)
{
    uring_be *be = l->be;
    if (be->nstash == 0)
        return false;
    *id = be->stash[--be->nstash];
    return true;
}

static void uring_buf_release(rw_loop *l, uint32_t id)
{
    uring_be *be = l->be;
    if (be->nstash < be->stash_cap && be->starved == NULL) {
        be->stash[be->nstash++] = id; /* refill the reserve first */
        return;
    }
    io_uring_buf_ring_add(be->br, rw_loop_buf(l, id), l->buf_size, (unsigned short)id, be->br_mask, 0);
    io_uring_buf_ring_advance(be->br, 1);
    if (be->starved != NULL) {
        rw_op *op = be->starved;
        be->starved = op->next;
        op->next = NULL;
        uring_submit(l, op);
    }
}

static void dispatch(rw_loop *l, uring_be *be, uint64_t token, int res, uint32_t cflags)
{
    if (token == 0)
        return; /* cancel requests, closes and other fire-and-forget ops */
    rw_op *op = rw__op_from_token(token);
    if (op == NULL || !(op->flags & RW_OPF_PENDING)) {
        rw_log_debug("uring: dropped a stale completion");
        if (cflags & IORING_CQE_F_BUFFER)
            uring_buf_release(l, cflags >> IORING_CQE_BUFFER_SHIFT); /* nobody else will */
        return;
    }
    bool more = (cflags & IORING_CQE_F_MORE) != 0;
    if (op->kind == RW_OP_RECV) {
        if (cflags & IORING_CQE_F_BUFFER) {
            op->buf_id = cflags >> IORING_CQE_BUFFER_SHIFT;
            op->buf = rw_loop_buf(l, op->buf_id);
        } else if (res == -ENOBUFS && !(op->flags & RW_OPF_CANCEL)) {
            op->next = be->starved; /* resubmitted when a buffer comes back */
            be->starved = op;
            return;
        }
    }
    rw__loop_complete(op, res, more);
}

static int uring_poll(rw_loop *l, uint64_t timeout_ms)
{
    uring_be *be = l->be;
    if (be->deferred != NULL) {
        while (be->deferred != NULL) {
            rw_op *op = be->deferred;
            be->deferred = op->next;
            op->next = NULL;
            rw__loop_complete(op, -ECANCELED, false);
        }
        /* Those callbacks may have armed timers or stopped the loop: do not
         * sleep on a timeout computed before them. */
        timeout_ms = 0;
    }
    struct __kernel_timespec ts = {
        .tv_sec = (long long)(timeout_ms / 1000),
        .tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
    };
    struct io_uring_cqe *cqe = NULL;
    int rc = ensure_enabled(be);
    if (rc < 0)
        return rc;
    rc = io_uring_submit_and_wait_timeout(&be->ring, &cqe, 1, &ts, NULL);
    rw__loop_update_clock(l);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
        return rc;
    /* Copy completions out and advance first, so callbacks that submit (and
     * may flush) never race the completion queue we are walking. */
    for (;;) {
        struct {
            uint64_t token;
            int res;
            uint32_t flags;
        } batch[RW_CQE_BATCH];
        unsigned n = 0, head;
        io_uring_for_each_cqe(&be->ring, head, cqe)
        {
            batch[n].token = cqe->user_data;
            batch[n].res = cqe->res;
            batch[n].flags = cqe->flags;
            if (++n == RW_CQE_BATCH)
                break;
        }
        if (n == 0)
            break;
        io_uring_cq_advance(&be->ring, n);
        for (unsigned i = 0; i < n; i++)
            dispatch(l, be, batch[i].token, batch[i].res, batch[i].flags);
        if (n < RW_CQE_BATCH)
            break;
    }
    return 0;
}

const rw_loop_backend_ops rw__loop_uring_ops = {
    .name = "io_uring",
    .init = uring_init,
    .fini = uring_fini,
    .submit = uring_submit,
    .cancel = uring_cancel,
    .forget_fd = uring_forget_fd,
    .detach_fd = uring_forget_fd, /* nothing registered per fd */
    .close = uring_close,
    .buf_release = uring_buf_release,
    .buf_take = uring_buf_take,
    .poll = uring_poll,
};

static bool uring_ok;

/* Setting a ring up proves little: a seccomp profile may allow
 * io_uring_setup and register but refuse io_uring_enter (or the kernel may
 * disable submission), and then every worker would fail on its first turn.
 * Submit one NOP and reap its completion, as a worker will. */
static bool probe_enter(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (sqe == NULL)
        return false;
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, 0x5157);
    if (io_uring_submit_and_wait(ring, 1) != 1)
        return false;
    struct io_uring_cqe *cqe = NULL;
    if (io_uring_peek_cqe(ring, &cqe) != 0 || cqe == NULL)
        return false;
    bool ok = cqe->res == 0 && io_uring_cqe_get_data64(cqe) == 0x5157;
    io_uring_cqe_seen(ring, cqe);
    return ok;
}

static void probe_uring(void)
{
    struct io_uring ring;
    if (io_uring_queue_init(8, &ring, 0) < 0)
        return;
    struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
    bool ops_ok =
        p != NULL && io_uring_opcode_supported(p, IORING_OP_SENDMSG) &&
        io_uring_opcode_supported(p, IORING_OP_RECV) && io_uring_opcode_supported(p, IORING_OP_ACCEPT) &&
        io_uring_opcode_supported(p, IORING_OP_CONNECT) &&
        io_uring_opcode_supported(p, IORING_OP_ASYNC_CANCEL) && io_uring_opcode_supported(p, IORING_OP_CLOSE);
    if (p != NULL)
        io_uring_free_probe(p);
    /* Provided-buffer rings need 5.19; multishot accept arrived with them. */
    if (ops_ok) {
        void *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        if (mem != MAP_FAILED) {
            struct io_uring_buf_reg reg;
            memset(&reg, 0, sizeof(reg));
            reg.ring_addr = (uint64_t)(uintptr_t)mem;
            reg.ring_entries = 8;
            reg.bgid = 0;
            if (io_uring_register_buf_ring(&ring, &reg, 0) == 0) {
                uring_ok = probe_enter(&ring);
                io_uring_unregister_buf_ring(&ring, 0);
            }
            munmap(mem, 4096);
        }
    }
    io_uring_queue_exit(&ring);
}

bool rw_uring_available(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, probe_uring);
    return uring_ok;
}
