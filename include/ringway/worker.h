/* worker.h - the per-core worker threads and the config snapshots they run.
 *
 * Ownership: the server owns the workers; each worker owns its loop, its
 * listening sockets and its handler's state (the proxy's connections and
 * per-snapshot upstream state, see rw_worker_handler).
 * Snapshots are shared read-only between threads and reference-counted: the
 * control thread holds one reference on the current snapshot, each worker one
 * on every snapshot it still serves requests with. The last release frees it. */
#ifndef RINGWAY_WORKER_H
#define RINGWAY_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringway/config.h"
#include "ringway/http.h"
#include "ringway/loop.h"
#include "ringway/route.h"

/* A response prebuilt at snapshot time (respond routes, built-ins), once per
 * persistence mode (enum rw_persist): the head differs only in its
 * Connection line. */
typedef struct rw_canned {
    char *text[RW_PERSIST__COUNT]; /* full response with body */
    uint32_t len[RW_PERSIST__COUNT];
    uint32_t head_len[RW_PERSIST__COUNT]; /* for HEAD requests: head only */
    int status;
} rw_canned;

typedef struct rw_snapshot {
    rw_config *cfg;      /* owned */
    rw_router *router;   /* owned */
    rw_canned *canned;   /* one per route (respond routes filled), owned */
    rw_canned health;    /* GET /health, /ready */
    rw_canned not_ready; /* /ready before all workers run */
    rw_canned stopping;  /* /ready once shutdown began */
    rw_http_limits limits;
    struct rw_filters *filters; /* owned: released to the control thread's collector */
    /* One per service: its instances (instset.h), references owned. */
    struct rw_instset **insts;
    /* Derived (rw_snapshot_derive): the snapshot whose config, router,
     * filters and canned responses this one borrows (a reference held);
     * NULL: this one owns them. */
    struct rw_snapshot *base;
    /* One per service: node-wide instance state (upstate.h), references owned. */
    struct rw_svc_health *upstate;
    /* Statistics slots (rstats.h), references owned (borrowed by derived
     * snapshots): one per route and one more for requests no route took,
     * one per service. */
    struct rw_route_slot **route_stats;
    struct rw_svc_slot **svc_stats;
    atomic_int refs;
    uint64_t generation;
} rw_snapshot;

/* Builds a snapshot from a loaded config (takes ownership of cfg on success). */
rw_snapshot *rw_snapshot_new(rw_config *cfg, uint64_t generation, char *err, size_t errlen);
/* A snapshot like from (sharing the config, router, filters and canned
 * responses of from's root: derived snapshots never chain) with other
 * instances: sets[i] for service i, or from's where sets[i] is NULL
 * (references taken, the caller keeps its own). Returns NULL with the
 * reason in err. */
rw_snapshot *rw_snapshot_derive(rw_snapshot *from, struct rw_instset **sets, uint64_t generation, char *err,
                                size_t errlen);
/* Adds a reference. */
void rw_snapshot_ref(rw_snapshot *s);
/* Drops a reference; frees the snapshot (and its config) on the last one. */
void rw_snapshot_unref(rw_snapshot *s);

/* Per-worker counters: written by the owning worker only, read by others relaxed. */
typedef struct rw_worker_stats {
    uint64_t accepted;
    uint64_t active_conns;
    uint64_t requests;
    uint64_t responses[6]; /* by status class: [1]=1xx .. [5]=5xx, [0] other */
    uint64_t upstream_connects;
    uint64_t upstream_reuses;
    uint64_t upstream_errors;
    uint64_t upstream_timeouts;
    uint64_t bad_requests;
    uint64_t upstream_queued;         /* requests that waited for a connection slot (max_conns) */
    uint64_t upstream_queue_timeouts; /* ... and got 503 after timeouts.queue */
    uint64_t conns_rejected_max;      /* client connections refused: max_conns reached */
    uint64_t cut_requests;            /* requests still in flight when the drain deadline closed them */
    uint64_t cut_tunnels;             /* upgraded connections (WebSocket) closed at the drain deadline */
    uint64_t upstream_retries;        /* attempts after the first (retries:) */
    uint64_t upstream_retry_budget_exhausted; /* retries not made: the retry budget was spent */
    uint64_t upstream_overflow;               /* requests answered 503: every instance at max_requests */
} rw_worker_stats;

typedef struct rw_server rw_server;
typedef struct rw_worker rw_worker;

/* How the kernel picks a worker's listening socket for a new connection. */
enum rw_steering {
    RW_STEER_HASH = 0, /* SO_REUSEPORT's default: a hash of the 4-tuple */
    RW_STEER_CPU,      /* a reuseport BPF program: the worker on the CPU that took the SYN */
};

struct rw_filters_stats;

/* What runs on a worker's client connections (the proxy, src/proxy/): the
 * worker calls it through this table and knows nothing else of it. Every
 * call is made on the worker's own thread, except create and destroy (made
 * by the thread that creates and frees the server, while the worker is not
 * running) and filter_stats (the control thread: relaxed reads only). */
typedef struct rw_worker_handler {
    /* Creates the per-worker state for the first snapshot (the handler takes
     * a reference of its own); NULL with a message in err. */
    void *(*create)(rw_worker *w, rw_snapshot *snap, char *err, size_t errlen);
    /* Switches to a newer snapshot; takes over the caller's reference (and
     * drops it when it cannot switch). */
    void (*adopt)(void *st, rw_snapshot *snap);
    /* Takes over an accepted client connection (already counted against
     * max_conns: rw_worker_conn_closed gives the slot back). */
    void (*accepted)(void *st, int fd, size_t listener); /* listener: index in the listen list */
    /* The drain began: end connections after their response; idle ones
     * close now (grace_ms 0) or once idle for grace_ms (a handover: a client
     * about to send on an idle connection is not cut mid-request). */
    void (*close_idle)(void *st, uint32_t grace_ms);
    /* The drain deadline passed: close everything now, counting what is cut
     * (stats cut_requests, cut_tunnels). */
    void (*close_all)(void *st);
    /* True when no client or upstream connection is left. */
    bool (*finished)(void *st);
    /* Adds the per-worker access-filter counters into out. */
    void (*filter_stats)(void *st, struct rw_filters_stats *out);
    /* Frees the per-worker state (its connections are closed by then). */
    void (*destroy)(void *st);
} rw_worker_handler;

/* ---- what a handler may use of its worker (worker's thread) ---- */

/* The worker's event loop. */
rw_loop *rw_worker_loop(rw_worker *w);
/* The worker's counters: written by its own thread only. */
rw_worker_stats *rw_worker_counters(rw_worker *w);
/* The server the worker belongs to (for rw_server_ready and the like). */
rw_server *rw_worker_server(rw_worker *w);
/* The worker's index, 0..nworkers-1. */
int rw_worker_id(const rw_worker *w);
/* A per-worker random seed (request ids). */
uint64_t rw_worker_seed(const rw_worker *w);
/* A client connection the handler took over has closed: gives its
 * max_conns slot back. */
void rw_worker_conn_closed(rw_worker *w);

/* A listening socket of the server: its fd, listen address index and slot
 * in the address's reuseport group (worker i's socket is slot i). */
typedef struct rw_listen_fd {
    int fd;
    uint32_t addr;
    uint32_t slot;
} rw_listen_fd;

/* Process-wide settings that cannot change on reload. */
typedef struct rw_server_opts {
    const rw_worker_handler *handler; /* what the workers run (the proxy) */
    uint64_t seed;                    /* random seed for request ids */
    int nworkers;
    bool pin;
    int steering;       /* enum rw_steering */
    int backend;        /* RW_BACKEND_URING or RW_BACKEND_EPOLL, resolved */
    uint32_t max_conns; /* client connections, process-wide (one counter for all workers) */
    const rw_sockaddr *listen;
    size_t nlisten;
    /* --upgrade: listening sockets inherited from the old process, each for
     * listen[addr], in their reuseport group's order per address. The server
     * takes every one (used, or closed when its address is gone), whether
     * rw_server_new succeeds or not. Worker i takes the i-th of an address;
     * workers past the inherited count open fresh sockets; inherited ones
     * past the worker count (the old process had more workers) are accepted
     * from by worker (index % nworkers), so their queues are never cut. */
    const struct rw_listen_fd *inherit;
    size_t ninherit;
} rw_server_opts;

/* Creates the workers' listening sockets and loops (not yet running).
 * Returns NULL with a message in err. */
rw_server *rw_server_new(const rw_server_opts *o, rw_snapshot *snap, char *err, size_t errlen);
/* Starts every worker thread; returns 0 or -errno. */
int rw_server_start(rw_server *s);
/* Hands a new snapshot to every worker (each switches at its next turn). The
 * server takes a reference per worker. */
void rw_server_publish(rw_server *s, rw_snapshot *snap);
/* Asks workers to stop accepting and finish in-flight requests; idle
 * keep-alive connections close at once (idle_grace_ms 0) or once idle that
 * long. */
void rw_server_drain(rw_server *s, uint32_t idle_grace_ms);
/* Writes up to cap of the server's listening sockets into out, per address
 * in reuseport-group order; returns how many there are. Control thread,
 * before the drain (the workers close them then). */
size_t rw_server_listeners(const rw_server *s, rw_listen_fd *out, size_t cap);
/* Returns true when every worker has finished its connections. */
bool rw_server_drained(rw_server *s);
/* True when a worker's loop died (the process should exit non-zero). */
bool rw_server_failed(rw_server *s);
/* True when every worker is running its loop and shutdown has not begun. */
bool rw_server_ready(rw_server *s);
#define RW_STALL_MS 5000 /* a worker whose loop has not turned for this long fails /health */
/* The first worker whose loop has not turned for more than limit_ms at
 * now_ms (monotonic), with that time in *age_ms; -1 when every running,
 * non-draining worker is turning. Any thread. */
int rw_server_stalled(rw_server *s, uint64_t now_ms, uint64_t limit_ms, uint64_t *age_ms);
/* Makes /ready answer 503 from now on (shutdown began); workers keep serving. */
void rw_server_set_unready(rw_server *s);
/* True once rw_server_set_unready was called. */
bool rw_server_shutting(rw_server *s);
/* Drain deadline passed: every worker closes all its connections now,
 * counting the requests and tunnels it cuts (stats cut_requests,
 * cut_tunnels). Call after rw_server_drain; rw_server_drained says when
 * they are done. */
void rw_server_force(rw_server *s);
/* The loop backend the workers run (RW_BACKEND_URING or RW_BACKEND_EPOLL). */
int rw_server_backend(const rw_server *s);
/* Stops all workers (closing remaining connections), joins and frees. */
void rw_server_free(rw_server *s);
/* Copies worker i's counters into out (relaxed reads). */
void rw_server_worker_stats(rw_server *s, int i, rw_worker_stats *out);
/* Sums the workers' counters into out. */
void rw_server_stats(rw_server *s, rw_worker_stats *out);
/* Adds every worker's access-filter counters into out (relaxed reads). */
void rw_server_filter_stats(rw_server *s, struct rw_filters_stats *out);
/* Number of workers. */
int rw_server_nworkers(const rw_server *s);

#endif
