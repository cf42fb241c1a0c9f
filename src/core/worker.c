/* worker.c - worker threads: pinning, listeners, the loop, snapshot
 * hand-over at the top of a turn, draining, the process-wide connection cap,
 * and the server around them. What runs on the connections is the
 * worker's handler (rw_worker_handler: the proxy). */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "worker_int.h"
#include "ringway/log.h"
#include "ringway/net.h"

struct rw_server {
    rw_server_opts opts;
    rw_worker *workers;
    int nworkers;
    bool started;
    atomic_bool unready;            /* shutting down: /ready answers 503 (control thread writes) */
    _Atomic uint32_t idle_grace_ms; /* the drain's grace for idle keep-alive connections */
    /* Per listen address, its sockets in reuseport-group order (worker i's
     * at index i, then inherited surplus ones): what a handover sends. Valid
     * until the drain, when the workers close them. */
    int **group_fds;
    size_t *ngroup;
    _Atomic uint32_t nconns; /* client connections of all workers, against opts.max_conns */
};

static void stop_listening(rw_worker *w)
{
    rw_timer_cancel(rw_loop_timers(w->loop), &w->accept_retry);
    rw_timer_cancel(rw_loop_timers(w->loop), &w->beat); /* a draining worker is not watched */
    for (size_t i = 0; i < w->nlisten; i++) {
        if (w->listen_fds[i] < 0)
            continue;
        if (w->accept_ops[i].flags & RW_OPF_PENDING) {
            rw_loop_cancel(w->loop, &w->accept_ops[i]); /* closed in on_accept */
        } else {
            rw_loop_detach_fd(w->loop, w->listen_fds[i]);
            close(w->listen_fds[i]); /* backing off after EMFILE: nothing pending */
            w->listen_fds[i] = -1;
        }
    }
}

static void turn_hook(rw_loop *l, void *arg)
{
    rw_worker *w = arg;
    (void)l;
    rw_snapshot *snap = atomic_exchange_explicit(&w->next_snap, NULL, memory_order_acq_rel);
    if (snap != NULL)
        w->h->adopt(w->hs, snap);
    if (!w->draining && atomic_load_explicit(&w->drain, memory_order_acquire)) {
        w->draining = true;
        stop_listening(w);
        w->h->close_idle(w->hs, atomic_load_explicit(&w->server->idle_grace_ms, memory_order_relaxed));
    }
    if (w->draining && !w->forced && atomic_load_explicit(&w->force, memory_order_acquire)) {
        w->forced = true;
        w->h->close_all(w->hs);
    }
    if (w->draining && w->h->finished(w->hs)) {
        atomic_store_explicit(&w->done, true, memory_order_release);
        bool listeners_closed = true;
        for (size_t i = 0; i < w->nlisten; i++)
            listeners_closed &= !(w->accept_ops[i].flags & RW_OPF_PENDING);
        if (listeners_closed && !(w->wake_op.flags & RW_OPF_PENDING))
            rw_loop_stop(w->loop);
        else if (!(w->wake_op.flags & RW_OPF_CANCEL))
            rw_loop_cancel(w->loop, &w->wake_op);
    }
}

static void accept_retry_cb(rw_timer *t)
{
    rw_worker *w = RW_CONTAINER_OF(t, rw_worker, accept_retry);
    for (size_t i = 0; i < w->nlisten; i++) {
        if (w->listen_fds[i] >= 0 && !(w->accept_ops[i].flags & RW_OPF_PENDING) && !w->draining)
            rw_loop_accept(w->loop, &w->accept_ops[i], w->listen_fds[i]);
    }
}

/* The liveness heartbeat: a timer that runs only when the loop turns, so a
 * worker stuck in a callback or a blocking call stops beating. */
static void beat_cb(rw_timer *t)
{
    rw_worker *w = RW_CONTAINER_OF(t, rw_worker, beat);
    uint64_t now = rw_loop_now(w->loop);
    atomic_store_explicit(&w->heartbeat, now, memory_order_relaxed);
    rw_timer_set(rw_loop_timers(w->loop), &w->beat, now + RW_HEARTBEAT_MS);
}

/* Takes one of the process's max_conns slots; false when all are taken. One
 * atomic counter for every worker (once per connection, not per request), so
 * the cap is exact whatever the worker count. */
static bool conn_slot_take(rw_server *s)
{
    uint32_t n = atomic_fetch_add_explicit(&s->nconns, 1, memory_order_relaxed);
    if (n < s->opts.max_conns)
        return true;
    atomic_fetch_sub_explicit(&s->nconns, 1, memory_order_relaxed);
    return false;
}

void rw_worker_conn_closed(rw_worker *w)
{
    w->stats.active_conns--;
    atomic_fetch_sub_explicit(&w->server->nconns, 1, memory_order_relaxed);
}

/* Refuses a new connection over max_conns: closed at once (a client learns
 * quickly rather than waiting in a queue), counted, and logged at most once
 * a second per worker. */
static void refuse_max_conns(rw_worker *w, int fd)
{
    close(fd);
    w->stats.conns_rejected_max++;
    uint64_t now = rw_loop_now(w->loop);
    if (w->reject_logged_ms == 0 || now - w->reject_logged_ms >= 1000) {
        rw_log_warn("connection refused: max_conns %u reached (%llu refused so far by this worker)",
                    w->server->opts.max_conns, (unsigned long long)w->stats.conns_rejected_max);
        w->reject_logged_ms = now;
    }
}

/* Closes listener i after its accept op ended. detach, not forget: another
 * process may hold the same socket (handed over), and its queue stays there. */
static void listener_close(rw_worker *w, size_t i)
{
    if (w->listen_fds[i] < 0)
        return;
    rw_loop_detach_fd(w->loop, w->listen_fds[i]);
    close(w->listen_fds[i]);
    w->listen_fds[i] = -1;
}

static void on_accept(rw_op *op, int res)
{
    rw_worker *w = op->data;
    size_t i = (size_t)(op - w->accept_ops);
    if (res >= 0) {
        /* Served even while draining: a multishot accept being cancelled
         * (io_uring) may still hand over connections the kernel took off
         * the queue; closing them would drop them. The handler answers
         * them with Connection: close. */
        if (!conn_slot_take(w->server)) {
            refuse_max_conns(w, res);
        } else {
            w->stats.accepted++;
            w->stats.active_conns++;
            w->h->accepted(w->hs, res, w->listen_addr[op - w->accept_ops]);
        }
        if (op->flags & RW_OPF_MORE)
            return;
        if (!w->draining)
            rw_loop_accept(w->loop, op, op->fd); /* multishot ended: re-arm */
        else
            listener_close(w, i);
        return;
    }
    if (res == -ECANCELED || w->draining) {
        listener_close(w, i);
        return;
    }
    /* EMFILE/ENFILE/ENOBUFS: back off briefly instead of spinning. */
    rw_log_warn("accept failed: %s; retrying in 100ms", strerror(-res));
    rw_timer_set(rw_loop_timers(w->loop), &w->accept_retry, rw_loop_now(w->loop) + 100);
}

static void on_wake(rw_op *op, int res)
{
    rw_worker *w = op->data;
    if (res == -ECANCELED || w->draining)
        return; /* the turn hook sees new snapshots and drain anyway */
    rw_loop_read_eventfd(w->loop, op, w->wake_fd);
}

static void *worker_main(void *arg)
{
    rw_worker *w = arg;
    rw_log_set_thread(w->id);
    char name[16];
    snprintf(name, sizeof(name), "rw-worker-%d", w->id);
    pthread_setname_np(pthread_self(), name); /* for top -H, perf, /proc/PID/task/TID/comm */
    if (w->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        if (rc != 0)
            rw_log_warn("cannot pin to CPU %d: %s", w->cpu, strerror(rc));
    }
    for (size_t i = 0; i < w->nlisten; i++) {
        w->accept_ops[i].cb = on_accept;
        w->accept_ops[i].data = w;
        if (w->listen_fds[i] >= 0)
            rw_loop_accept(w->loop, &w->accept_ops[i], w->listen_fds[i]);
    }
    w->wake_op.cb = on_wake;
    w->wake_op.data = w;
    rw_loop_read_eventfd(w->loop, &w->wake_op, w->wake_fd);
    rw_loop_set_turn_hook(w->loop, turn_hook, w);
    beat_cb(&w->beat);
    atomic_store_explicit(&w->running, true, memory_order_release);
    int rc = rw_loop_run(w->loop);
    if (rc != 0) {
        rw_log_error("worker loop failed: %s", strerror(-rc));
        atomic_store_explicit(&w->failed, true, memory_order_release);
    }
    atomic_store_explicit(&w->running, false, memory_order_release);
    atomic_store_explicit(&w->done, true, memory_order_release);
    return NULL;
}

/* CPUs this process may run on, in order; returns how many (at most cap). */
static int allowed_cpus(int *cpus, int cap)
{
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return 0;
    for (int c = 0; c < CPU_SETSIZE && n < cap; c++)
        if (CPU_ISSET(c, &set))
            cpus[n++] = c;
    return n;
}

/* How many inherited surplus sockets (group slots >= nworkers) go to worker id. */
static size_t surplus_of(const rw_server *s, int id)
{
    size_t n = 0;
    for (size_t a = 0; a < s->opts.nlisten; a++)
        for (size_t j = (size_t)s->opts.nworkers; j < s->ngroup[a]; j++)
            n += j % (size_t)s->opts.nworkers == (size_t)id;
    return n;
}

static int worker_init(rw_server *s, rw_worker *w, int id, int cpu, rw_snapshot *snap, char *err,
                       size_t errlen)
{
    w->server = s;
    w->id = id;
    w->cpu = cpu;
    w->wake_fd = -1;
    w->nlisten = s->opts.nlisten + surplus_of(s, id);
    w->seed = s->opts.seed + ((uint64_t)id << 40);
    w->h = s->opts.handler;
    rw_timer_init(&w->accept_retry, accept_retry_cb);
    rw_timer_init(&w->beat, beat_cb);
    w->listen_fds = malloc(sizeof(int) * w->nlisten);
    w->listen_addr = malloc(sizeof(size_t) * w->nlisten);
    w->accept_ops = calloc(w->nlisten, sizeof(rw_op));
    if (w->listen_fds == NULL || w->listen_addr == NULL || w->accept_ops == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < w->nlisten; i++) {
        w->listen_fds[i] = -1;
        w->listen_addr[i] = i; /* surplus sockets (a handover from more workers) are set below */
    }
    rw_loop_opts lo = {.backend = s->opts.backend};
    w->loop = rw_loop_new(&lo);
    if (w->loop == NULL) {
        snprintf(err, errlen, "worker %d: cannot create %s loop: %s", id,
                 s->opts.backend == RW_BACKEND_URING ? "io_uring" : "epoll", strerror(errno));
        return -1;
    }
    /* Listening sockets are recorded in s->group_fds, which owns them until
     * the server starts (rw_server_free closes them from there). */
    for (size_t i = 0; i < s->opts.nlisten; i++) {
        int fd = s->group_fds[i][id]; /* inherited (--upgrade), or -1 */
        if (fd < 0) {
            fd = rw_net_listen(&s->opts.listen[i], 4096, 1);
            if (fd < 0 && s->opts.listen[i].ss.ss_family == AF_INET6 && s->opts.nlisten > 1 &&
                (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)) {
                if (id == 0)
                    rw_log_warn("skipping %s: IPv6 is not available here", s->opts.listen[i].text);
                continue;
            }
            if (fd < 0) {
                snprintf(err, errlen, "cannot listen on %s: %s", s->opts.listen[i].text, strerror(-fd));
                return -1;
            }
            s->group_fds[i][id] = fd;
        }
        w->listen_fds[i] = fd;
    }
    size_t k = s->opts.nlisten;
    for (size_t a = 0; a < s->opts.nlisten; a++)
        for (size_t j = (size_t)s->opts.nworkers; j < s->ngroup[a]; j++)
            if (j % (size_t)s->opts.nworkers == (size_t)id) {
                w->listen_addr[k] = a;
                w->listen_fds[k++] = s->group_fds[a][j];
            }
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd == -1) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return -1;
    }
    w->hs = w->h->create(w, snap, err, errlen);
    return w->hs != NULL ? 0 : -1;
}

/* --reuseport-steering cpu: one program per listen address, attached through
 * worker 0's socket once every worker's socket for it has joined the group
 * (worker_init ran for all of them, in order: socket index i is worker i's;
 * see rw_net_cpu_steering_prog). */
static int attach_steering(rw_server *s, char *err, size_t errlen)
{
    int *wcpu = malloc(sizeof(int) * (size_t)s->nworkers);
    if (wcpu == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < s->nworkers; i++)
        wcpu[i] = s->workers[i].cpu;
    int rc = 0;
    for (size_t a = 0; a < s->opts.nlisten && rc == 0; a++) {
        bool all = true;
        for (int i = 0; i < s->nworkers; i++)
            all &= s->workers[i].listen_fds[a] >= 0;
        if (!all)
            continue; /* skipped address (no IPv6 here): nobody listens on it */
        rc = rw_net_attach_cpu_steering(s->workers[0].listen_fds[a], wcpu, s->nworkers);
        if (rc != 0)
            snprintf(err, errlen,
                     "--reuseport-steering cpu: cannot attach the reuseport BPF program to %s: %s",
                     s->opts.listen[a].text, strerror(-rc));
    }
    free(wcpu);
    if (rc == 0 && s->workers[0].cpu < 0)
        rw_log_warn("--reuseport-steering cpu: workers are not pinned (%s); a connection goes to worker "
                    "(CPU %% workers), without CPU locality",
                    s->opts.pin ? "no CPU affinity mask" : "--no-pin");
    return rc == 0 ? 0 : -1;
}

/* Lays out s->group_fds: per listen address, the inherited sockets in the
 * order they came (their reuseport group's), padded with -1 up to one per
 * worker. Takes every inherited fd: kept in the table, or closed when its
 * address is not listened on. */
static int group_init(rw_server *s, char *err, size_t errlen)
{
    const rw_server_opts *o = &s->opts;
    s->group_fds = calloc(o->nlisten ? o->nlisten : 1, sizeof(int *));
    s->ngroup = calloc(o->nlisten ? o->nlisten : 1, sizeof(size_t));
    int rc = 0;
    for (size_t a = 0; a < o->nlisten && s->group_fds != NULL && s->ngroup != NULL; a++) {
        size_t have = 0;
        for (size_t k = 0; k < o->ninherit; k++)
            have += o->inherit[k].addr == a;
        s->ngroup[a] = RW_MAX(have, (size_t)o->nworkers);
        s->group_fds[a] = malloc(sizeof(int) * s->ngroup[a]);
        if (s->group_fds[a] == NULL)
            break;
        size_t n = 0;
        for (size_t k = 0; k < o->ninherit; k++)
            if (o->inherit[k].addr == a)
                s->group_fds[a][n++] = o->inherit[k].fd;
        for (; n < s->ngroup[a]; n++)
            s->group_fds[a][n] = -1;
    }
    bool ok = s->group_fds != NULL && s->ngroup != NULL && (o->nlisten == 0 || s->group_fds[o->nlisten - 1]);
    for (size_t k = 0; k < o->ninherit; k++) {
        bool kept = false;
        uint32_t a = o->inherit[k].addr;
        if (ok && a < o->nlisten)
            for (size_t j = 0; j < s->ngroup[a]; j++)
                kept |= s->group_fds[a][j] == o->inherit[k].fd;
        if (!kept)
            close(o->inherit[k].fd);
    }
    if (!ok) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    s->opts.inherit = NULL; /* taken */
    s->opts.ninherit = 0;
    return rc;
}

/* An inherited group may carry the old process's CPU-steering program; in
 * hash mode it goes (the kernel's default hash over every socket). */
static void detach_old_steering(rw_server *s, const rw_server_opts *o)
{
#ifdef SO_DETACH_REUSEPORT_BPF
    for (size_t a = 0; a < s->opts.nlisten; a++) {
        bool inherited = false;
        for (size_t k = 0; k < o->ninherit; k++)
            inherited |= o->inherit[k].addr == a;
        int fd = s->group_fds[a][0];
        int dummy = 0;
        if (inherited && fd >= 0 &&
            setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &dummy, sizeof(dummy)) == -1 &&
            errno != ENOENT)
            rw_log_warn("%s: cannot detach the old process's reuseport program: %s", s->opts.listen[a].text,
                        strerror(errno));
    }
#else
    (void)s;
    (void)o;
#endif
}

rw_server *rw_server_new(const rw_server_opts *o, rw_snapshot *snap, char *err, size_t errlen)
{
    rw_server *s = calloc(1, sizeof(*s));
    int *cpus = calloc((size_t)CPU_SETSIZE, sizeof(int));
    if (s != NULL) {
        s->opts = *o;
        s->nworkers = o->nworkers;
        s->workers = calloc((size_t)s->nworkers, sizeof(rw_worker));
    }
    if (s == NULL || s->workers == NULL || cpus == NULL) {
        for (size_t k = 0; k < o->ninherit; k++)
            close(o->inherit[k].fd);
        free(cpus);
        if (s != NULL)
            free(s->workers);
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (group_init(s, err, errlen) != 0) {
        s->nworkers = 0; /* none initialised */
        free(cpus);
        rw_server_free(s);
        return NULL;
    }
    int ncpus = o->pin ? allowed_cpus(cpus, CPU_SETSIZE) : 0;
    for (int i = 0; i < s->nworkers; i++) {
        int cpu = ncpus > 0 ? cpus[i % ncpus] : -1;
        if (worker_init(s, &s->workers[i], i, cpu, snap, err, errlen) != 0) {
            s->nworkers = i + 1;
            free(cpus);
            rw_server_free(s);
            return NULL;
        }
    }
    free(cpus);
    if (o->steering == RW_STEER_CPU && attach_steering(s, err, errlen) != 0) {
        rw_server_free(s);
        return NULL;
    }
    if (o->steering != RW_STEER_CPU)
        detach_old_steering(s, o);
    return s;
}

size_t rw_server_listeners(const rw_server *s, rw_listen_fd *out, size_t cap)
{
    size_t n = 0;
    for (size_t a = 0; a < s->opts.nlisten; a++)
        for (size_t j = 0; j < s->ngroup[a]; j++) {
            if (s->group_fds[a][j] < 0)
                continue;
            if (n < cap)
                out[n] = (rw_listen_fd){.fd = s->group_fds[a][j], .addr = (uint32_t)a, .slot = (uint32_t)j};
            n++;
        }
    return n;
}

int rw_server_start(rw_server *s)
{
    for (int i = 0; i < s->nworkers; i++) {
        int rc = pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
        if (rc != 0) {
            s->nworkers = i; /* only join what started */
            return -rc;
        }
    }
    s->started = true;
    return 0;
}

static void wake(rw_worker *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->wake_fd, &one, sizeof(one));
    (void)n; /* EAGAIN means a wakeup is already pending */
}

void rw_server_publish(rw_server *s, rw_snapshot *snap)
{
    for (int i = 0; i < s->nworkers; i++) {
        rw_worker *w = &s->workers[i];
        rw_snapshot_ref(snap);
        rw_snapshot *prev = atomic_exchange_explicit(&w->next_snap, snap, memory_order_acq_rel);
        if (prev != NULL)
            rw_snapshot_unref(prev); /* never adopted: superseded */
        wake(w);
    }
}

void rw_server_drain(rw_server *s, uint32_t idle_grace_ms)
{
    atomic_store_explicit(&s->idle_grace_ms, idle_grace_ms, memory_order_relaxed);
    for (int i = 0; i < s->nworkers; i++) {
        atomic_store_explicit(&s->workers[i].drain, true, memory_order_release);
        wake(&s->workers[i]);
    }
}

bool rw_server_drained(rw_server *s)
{
    for (int i = 0; i < s->nworkers; i++)
        if (!atomic_load_explicit(&s->workers[i].done, memory_order_acquire))
            return false;
    return true;
}

bool rw_server_failed(rw_server *s)
{
    for (int i = 0; i < s->nworkers; i++)
        if (atomic_load_explicit(&s->workers[i].failed, memory_order_acquire))
            return true;
    return false;
}

bool rw_server_ready(rw_server *s)
{
    if (atomic_load_explicit(&s->unready, memory_order_acquire))
        return false;
    for (int i = 0; i < s->nworkers; i++)
        if (!atomic_load_explicit(&s->workers[i].running, memory_order_acquire))
            return false;
    return true;
}

int rw_server_stalled(rw_server *s, uint64_t now_ms, uint64_t limit_ms, uint64_t *age_ms)
{
    for (int i = 0; i < s->nworkers; i++) {
        rw_worker *w = &s->workers[i];
        if (!atomic_load_explicit(&w->running, memory_order_acquire) ||
            atomic_load_explicit(&w->drain, memory_order_acquire))
            continue; /* not started, finished or draining: not watched */
        uint64_t hb = atomic_load_explicit(&w->heartbeat, memory_order_relaxed);
        if (now_ms > hb && now_ms - hb > limit_ms) {
            *age_ms = now_ms - hb;
            return i;
        }
    }
    return -1;
}

void rw_server_set_unready(rw_server *s)
{
    atomic_store_explicit(&s->unready, true, memory_order_release);
}

bool rw_server_shutting(rw_server *s)
{
    return atomic_load_explicit(&s->unready, memory_order_acquire);
}

void rw_server_force(rw_server *s)
{
    for (int i = 0; i < s->nworkers; i++) {
        atomic_store_explicit(&s->workers[i].drain, true, memory_order_release);
        atomic_store_explicit(&s->workers[i].force, true, memory_order_release);
        wake(&s->workers[i]);
    }
}

int rw_server_backend(const rw_server *s)
{
    return s->opts.backend;
}

rw_loop *rw_worker_loop(rw_worker *w)
{
    return w->loop;
}

rw_worker_stats *rw_worker_counters(rw_worker *w)
{
    return &w->stats;
}

rw_server *rw_worker_server(rw_worker *w)
{
    return w->server;
}

int rw_worker_id(const rw_worker *w)
{
    return w->id;
}

uint64_t rw_worker_seed(const rw_worker *w)
{
    return w->seed;
}

int rw_server_nworkers(const rw_server *s)
{
    return s->nworkers;
}

void rw_server_worker_stats(rw_server *s, int i, rw_worker_stats *out)
{
    const uint64_t *src = (const uint64_t *)&s->workers[i].stats;
    uint64_t *dst = (uint64_t *)out;
    for (size_t k = 0; k < sizeof(*out) / sizeof(uint64_t); k++)
        dst[k] = __atomic_load_n(&src[k], __ATOMIC_RELAXED);
}

void rw_server_stats(rw_server *s, rw_worker_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < s->nworkers; i++) {
        rw_worker_stats one;
        rw_server_worker_stats(s, i, &one);
        const uint64_t *src = (const uint64_t *)&one;
        uint64_t *dst = (uint64_t *)out;
        for (size_t k = 0; k < sizeof(*out) / sizeof(uint64_t); k++)
            dst[k] += src[k];
    }
}

void rw_server_filter_stats(rw_server *s, struct rw_filters_stats *out)
{
    for (int i = 0; i < s->nworkers; i++)
        if (s->workers[i].hs != NULL)
            s->workers[i].h->filter_stats(s->workers[i].hs, out);
}

void rw_server_free(rw_server *s)
{
    if (s == NULL)
        return;
    if (s->started) {
        rw_server_force(s);
        for (int i = 0; i < s->nworkers; i++)
            pthread_join(s->workers[i].thread, NULL);
    }
    if (!s->started && s->group_fds != NULL) /* not yet the workers': the table owns them */
        for (size_t a = 0; a < s->opts.nlisten; a++)
            for (size_t j = 0; s->group_fds[a] != NULL && j < s->ngroup[a]; j++)
                if (s->group_fds[a][j] >= 0)
                    close(s->group_fds[a][j]);
    for (int i = 0; i < s->nworkers; i++) {
        rw_worker *w = &s->workers[i];
        rw_snapshot *pending = atomic_exchange(&w->next_snap, NULL);
        if (pending != NULL)
            rw_snapshot_unref(pending);
        if (w->hs != NULL)
            w->h->destroy(w->hs);
        w->hs = NULL;
        rw_loop_free(w->loop);
        if (w->wake_fd >= 0)
            close(w->wake_fd);
        free(w->listen_fds);
        free(w->listen_addr);
        free(w->accept_ops);
    }
    if (s->group_fds != NULL)
        for (size_t a = 0; a < s->opts.nlisten; a++)
            free(s->group_fds[a]);
    free(s->group_fds);
    free(s->ngroup);
    free(s->workers);
    free(s);
}
