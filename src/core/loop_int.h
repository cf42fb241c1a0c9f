/* loop_int.h - private: the loop object and the backend interface. */
#ifndef RINGWAY_LOOP_INT_H
#define RINGWAY_LOOP_INT_H

#include <time.h>

#include "ringway/common.h"
#include "ringway/loop.h"

/* Backend-private op flag: queued on the epoll run queue. */
#define RW_OPF_QUEUED (1u << 6)
/* Backend-private op flag: parked on the epoll starved list (a RECV waiting
 * for a free buffer); readiness edges must not queue it meanwhile. */
#define RW_OPF_STARVED (1u << 5)

typedef struct rw_loop_backend_ops {
    const char *name;
    int (*init)(rw_loop *l, const rw_loop_opts *o); /* 0 or -errno */
    void (*fini)(rw_loop *l);
    void (*submit)(rw_loop *l, rw_op *op); /* queue op (flags/gen already set) */
    void (*cancel)(rw_loop *l, rw_op *op);
    void (*forget_fd)(rw_loop *l, int fd);
    void (*detach_fd)(rw_loop *l, int fd); /* forget_fd, and leave any kernel interest list */
    void (*close)(rw_loop *l, int fd);     /* close fd (maybe deferred to the flush) */
    void (*buf_release)(rw_loop *l, uint32_t id);
    bool (*buf_take)(rw_loop *l, uint32_t *id);
    int (*poll)(rw_loop *l, uint64_t timeout_ms); /* flush, wait, dispatch; 0 or -errno */
} rw_loop_backend_ops;

struct rw_loop {
    const rw_loop_backend_ops *ops;
    int backend;
    rw_timers timers;
    uint64_t now;
    bool stop;
    rw_loop_turn_cb turn_cb;
    void *turn_arg;
    char *bufs; /* buf_count * buf_size bytes, mmap'd, owned */
    uint32_t buf_count;
    uint32_t buf_size;
    void *be;                         /* backend state, owned by the backend */
    rw_op *deferred, **deferred_tail; /* rw_loop_defer: run after the next poll */
};

extern const rw_loop_backend_ops rw__loop_uring_ops;
extern const rw_loop_backend_ops rw__loop_epoll_ops;

/* Reads CLOCK_MONOTONIC into the loop's coarse clock (once per turn). */
static inline void rw__loop_update_clock(rw_loop *l)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    l->now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Delivers a completion to op's callback. more: a multishot op stays armed. */
static inline void rw__loop_complete(rw_op *op, int res, bool more)
{
    if (more) {
        op->flags |= RW_OPF_MORE;
    } else {
        op->flags &= (uint8_t) ~(RW_OPF_PENDING | RW_OPF_MORE | RW_OPF_CANCEL | RW_OPF_QUEUED);
    }
    op->cb(op, res);
}

/* Packs op and its generation into a 64-bit completion token. */
static inline uint64_t rw__op_token(const rw_op *op)
{
    return (uint64_t)(uintptr_t)op | ((uint64_t)op->gen << 48);
}

/* Recovers the op from a token; NULL when the generation is stale. */
static inline rw_op *rw__op_from_token(uint64_t token)
{
    rw_op *op = (rw_op *)(uintptr_t)(token & ((1ull << 48) - 1));
    if (op == NULL || op->gen != (uint16_t)(token >> 48))
        return NULL;
    return op;
}

#endif
