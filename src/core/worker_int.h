/* worker_int.h - private to src/core: a worker's state. Everything here
 * belongs to exactly one worker thread, except the atomics marked as
 * written by the control thread. What runs on the worker's connections
 * (the proxy) is behind rw_worker_handler: core knows nothing of it. */
#ifndef RINGWAY_WORKER_INT_H
#define RINGWAY_WORKER_INT_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "ringway/timer.h"
#include "ringway/worker.h"

struct rw_worker {
    rw_server *server;
    int id;
    int cpu; /* -1: not pinned */
    pthread_t thread;
    rw_loop *loop;
    /* Listening sockets: [0, server nlisten) one per listen address (-1:
     * skipped); after them, surplus sockets inherited from an older process
     * with more workers (--upgrade), accepted from like the others. */
    int *listen_fds;
    size_t *listen_addr; /* per listening socket: its address's index in the listen list */
    rw_op *accept_ops;
    size_t nlisten;
    int wake_fd; /* eventfd the control thread writes */
    rw_op wake_op;
    _Atomic(rw_snapshot *) next_snap; /* written by the control thread */
    atomic_bool drain;                /* written by the control thread */
    atomic_bool running;
    atomic_bool done;   /* drained: no connections left */
    atomic_bool failed; /* the loop died: the process must exit */
    atomic_bool force;  /* drain timed out: close everything now */
    bool draining;
    bool forced;               /* close_all was called */
    uint64_t reject_logged_ms; /* last "max_conns reached" log line */
    uint64_t seed;
    rw_worker_stats stats;
    const rw_worker_handler *h;
    void *hs; /* the handler's per-worker state */
    rw_timer accept_retry;
    rw_timer beat;              /* every RW_HEARTBEAT_MS: the loop still turns */
    _Atomic uint64_t heartbeat; /* rw_loop_now at the last beat (the admin reads it) */
};

#define RW_HEARTBEAT_MS 1000

#endif
