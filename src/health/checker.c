/* checker.c - the health thread (health.h).
 *
 * One thread per node runs its own rw_loop (epoll backend: a handful of
 * sockets, no need for a ring) with one probe per instance of every service
 * that has health_check. A probe connects, for http sends one request with
 * Connection: close and reads the response head (parsed by src/http), and
 * gives a verdict; consecutive verdicts move the instance in and out of
 * rotation (healthy / unhealthy thresholds damp a flapping instance). Probes
 * are spread over the interval at start and jittered after, so a thousand
 * instances do not get probed in the same millisecond. A failed probe of a
 * healthy instance (or a passed one of an unhealthy instance) is followed by
 * the next one sooner (interval / threshold), so a verdict takes about one
 * interval, not threshold intervals.
 *
 * A tick (every 100 ms) ends expired outlier ejections and logs when a
 * service enters or leaves panic (no instance in rotation).
 *
 * A new snapshot replaces every probe: probes in flight become orphans that
 * free themselves when their operation completes; the instances' state lives
 * in upstate.h, so a reload keeps verdicts and streaks. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ringway/common.h"
#include "ringway/health.h"
#include "ringway/http.h"
#include "ringway/instset.h"
#include "ringway/log.h"
#include "ringway/loop.h"
#include "ringway/net.h"
#include "ringway/upstate.h"

#define TICK_MS 100
#define PROBE_BUF 4096

enum { ST_IDLE = 0, ST_CONNECT, ST_SEND, ST_RECV };

typedef struct hthread hthread;

typedef struct probe {
    hthread *ht;
    const rw_service_cfg *sc;
    const rw_health_check_cfg *hc;
    const rw_svc_health *h;
    uint32_t inst;
    size_t svc;       /* its service's index in the config */
    char address[80]; /* its instance's */
    int fd;
    uint8_t stage;
    bool timed_out, orphan;
    rw_op op;
    rw_timer next, deadline;
    rw_sockaddr addr; /* a copy: the op may outlive the snapshot */
    struct iovec iov;
    int iovcnt;
    uint32_t req_len, len;
    char req[768];
    char buf[PROBE_BUF];
    struct probe *link; /* the thread's list */
} probe;

struct hthread {
    pthread_t tid;
    rw_loop *loop;
    int efd;
    rw_op wake;
    rw_timer tick;
    pthread_mutex_t mu;
    rw_snapshot *pending; /* handed over by rw_health_apply */
    bool stop_req;
    bool stopping;
    rw_snapshot *snap; /* followed now (a reference) */
    probe *probes;     /* of snap */
    uint32_t inflight; /* probes with an operation pending, orphans included */
    bool *panic;       /* per service of snap */
    uint64_t rng;
};

static hthread *g_ht;
static _Atomic uint64_t g_probes;

uint64_t rw_health_probes_total(void)
{
    return atomic_load_explicit(&g_probes, memory_order_relaxed);
}

static uint64_t rnd(hthread *ht)
{
    ht->rng ^= ht->rng << 13;
    ht->rng ^= ht->rng >> 7;
    ht->rng ^= ht->rng << 17;
    return ht->rng;
}

static void probe_schedule(probe *p, uint64_t delay)
{
    rw_timer_set(rw_loop_timers(p->ht->loop), &p->next, rw_loop_now(p->ht->loop) + delay);
}

/* The interval, spread by up to jitter_pct either way. */
static uint64_t jittered(hthread *ht, uint32_t ms, uint32_t pct)
{
    uint64_t span = (uint64_t)ms * pct / 100;
    if (span == 0)
        return ms;
    return ms - span + rnd(ht) % (2 * span + 1);
}

static void probe_free(probe *p)
{
    rw_timers *tw = rw_loop_timers(p->ht->loop);
    rw_timer_cancel(tw, &p->next);
    rw_timer_cancel(tw, &p->deadline);
    free(p);
}

static bool status_expected(const rw_health_check_cfg *hc, int status)
{
    for (uint32_t i = 0; i < hc->nexpect; i++)
        if (status >= hc->expect_lo[i] && status <= hc->expect_hi[i])
            return true;
    return false;
}

static void describe(int code, char *out, size_t cap)
{
    if (code > 0)
        snprintf(out, cap, "status %d", code);
    else if (code == 0)
        snprintf(out, cap, "connected");
    else if (code == -ETIMEDOUT)
        snprintf(out, cap, "timed out");
    else if (code == -EPROTO)
        snprintf(out, cap, "invalid response");
    else
        snprintf(out, cap, "%s", strerror(-code));
}

/* A verdict: code is the status (http), 0 (tcp connected) or -errno. */
static void probe_done(probe *p, bool ok, int code)
{
    hthread *ht = p->ht;
    rw_inst_state *s = p->h->inst[p->inst];
    rw_timer_cancel(rw_loop_timers(ht->loop), &p->deadline);
    if (p->fd >= 0) {
        rw_loop_close(ht->loop, p->fd);
        p->fd = -1;
    }
    p->stage = ST_IDLE;
    atomic_fetch_add_explicit(&g_probes, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(ok ? &s->probes_ok : &s->probes_failed, 1, memory_order_relaxed);
    atomic_store_explicit(&s->last_probe, code, memory_order_relaxed);
    atomic_store_explicit(&s->last_probe_wall, rw_wall_ms(), memory_order_relaxed);
    bool healthy = atomic_load_explicit(&s->healthy, memory_order_relaxed);
    const rw_health_check_cfg *hc = p->hc;
    uint64_t delay = jittered(ht, hc->interval_ms, hc->jitter_pct);
    char why[96];
    describe(code, why, sizeof(why));
    if (ok) {
        s->fail_run = 0;
        s->ok_run++;
        if (!healthy && s->ok_run >= hc->healthy) {
            rw_upstate_set_healthy(p->h, p->inst, true);
            rw_log_info("upstream %s (%s) is healthy again after %u passed checks (%s)", s->service,
                        s->address, s->ok_run, why);
        } else if (!healthy) {
            delay = hc->interval_ms / hc->healthy;
        }
    } else {
        s->ok_run = 0;
        s->fail_run++;
        if (healthy && s->fail_run >= hc->unhealthy) {
            rw_upstate_set_healthy(p->h, p->inst, false);
            rw_log_warn("upstream %s (%s) is unhealthy after %u failed checks (%s): out of rotation",
                        s->service, s->address, s->fail_run, why);
        } else if (healthy) {
            delay = hc->interval_ms / hc->unhealthy;
            rw_log_debug("upstream %s (%s): health check failed (%s), %u of %u", s->service, s->address, why,
                         s->fail_run, hc->unhealthy);
        }
    }
    probe_schedule(p, delay);
}

static void on_probe_op(rw_op *op, int res);

static void probe_recv(probe *p)
{
    p->stage = ST_RECV;
    p->ht->inflight++;
    rw_loop_recv_into(p->ht->loop, &p->op, p->fd, p->buf + p->len, PROBE_BUF - p->len);
}

static void on_probe_op(rw_op *op, int res)
{
    probe *p = op->data;
    hthread *ht = p->ht;
    ht->inflight--;
    if (p->orphan) {
        if (p->fd >= 0)
            rw_loop_close(ht->loop, p->fd);
        probe_free(p);
        return;
    }
    if (p->timed_out) {
        probe_done(p, false, -ETIMEDOUT);
        return;
    }
    switch (p->stage) {
    case ST_CONNECT:
        if (res < 0) {
            probe_done(p, false, res);
            return;
        }
        if (p->hc->type == RW_HC_TCP) {
            probe_done(p, true, 0);
            return;
        }
        p->stage = ST_SEND;
        p->iov.iov_base = p->req;
        p->iov.iov_len = p->req_len;
        p->iovcnt = 1;
        ht->inflight++;
        rw_loop_send(ht->loop, &p->op, p->fd, &p->iov, p->iovcnt);
        return;
    case ST_SEND:
        if (res < 0) {
            probe_done(p, false, res);
            return;
        }
        if (rw_iov_advance(&p->iov, &p->iovcnt, (size_t)res)) {
            ht->inflight++;
            rw_loop_send(ht->loop, &p->op, p->fd, &p->iov, p->iovcnt);
            return;
        }
        p->len = 0;
        probe_recv(p);
        return;
    case ST_RECV: {
        if (res <= 0) {
            probe_done(p, false, res < 0 ? res : -ECONNRESET);
            return;
        }
        p->len += (uint32_t)res;
        rw_http_response resp;
        int method = p->hc->method == 1 ? RW_METHOD_HEAD : RW_METHOD_GET;
        uint32_t off = 0;
        for (;;) {
            ssize_t r = rw_http_parse_response(p->buf + off, p->len - off, NULL, method, &resp);
            if (r == RW_HTTP_INCOMPLETE) {
                if (p->len >= PROBE_BUF) {
                    probe_done(p, false, -EPROTO);
                    return;
                }
                probe_recv(p);
                return;
            }
            if (r < 0) {
                probe_done(p, false, -EPROTO);
                return;
            }
            if (resp.status >= 100 && resp.status < 200 && resp.status != 101) {
                off += (uint32_t)r; /* interim: the final one follows */
                continue;
            }
            probe_done(p, status_expected(p->hc, resp.status), resp.status);
            return;
        }
    }
    default:
        return;
    }
}

static void on_probe_deadline(rw_timer *t)
{
    probe *p = RW_CONTAINER_OF(t, probe, deadline);
    p->timed_out = true;
    rw_loop_cancel(p->ht->loop, &p->op);
}

static void on_probe_next(rw_timer *t)
{
    probe *p = RW_CONTAINER_OF(t, probe, next);
    hthread *ht = p->ht;
    int fd = rw_net_upstream_socket(p->addr.ss.ss_family);
    if (fd < 0) {
        probe_done(p, false, fd);
        return;
    }
    p->fd = fd;
    p->timed_out = false;
    p->stage = ST_CONNECT;
    rw_timer_set(rw_loop_timers(ht->loop), &p->deadline, rw_loop_now(ht->loop) + p->hc->timeout_ms);
    ht->inflight++;
    rw_loop_connect(ht->loop, &p->op, fd, (const struct sockaddr *)&p->addr.ss, p->addr.len);
}

static probe *probe_new(hthread *ht, const rw_service_cfg *sc, const rw_instance_cfg *ins,
                        const rw_svc_health *h, uint32_t i)
{
    probe *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    const rw_health_check_cfg *hc = &sc->health_check;
    p->ht = ht;
    p->sc = sc;
    p->hc = hc;
    p->h = h;
    p->inst = i;
    p->svc = (size_t)(sc - ht->snap->cfg->services);
    snprintf(p->address, sizeof(p->address), "%s", ins->address);
    p->fd = -1;
    p->addr = ins->addr;
    p->op.cb = on_probe_op;
    p->op.data = p;
    rw_timer_init(&p->next, on_probe_next);
    rw_timer_init(&p->deadline, on_probe_deadline);
    if (hc->type == RW_HC_HTTP) {
        int n = snprintf(p->req, sizeof(p->req),
                         "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ringway-health\r\nAccept: */*\r\n"
                         "Connection: close\r\n\r\n",
                         hc->method == 1 ? "HEAD" : "GET", hc->path ? hc->path : "/",
                         hc->host ? hc->host : ins->authority);
        if (n < 0 || (size_t)n >= sizeof(p->req)) {
            rw_log_error("service %s: health check request for %s is too long; not probing it", sc->name,
                         ins->address);
            free(p);
            return NULL;
        }
        p->req_len = (uint32_t)n;
    }
    return p;
}

/* Drops the probes of list: idle ones now, running ones once their op completes. */
static void drop_probes(hthread *ht, probe *list)
{
    while (list != NULL) {
        probe *p = list;
        list = p->link;
        if (p->stage != ST_IDLE) {
            p->orphan = true;
            rw_timer_cancel(rw_loop_timers(ht->loop), &p->deadline);
            rw_loop_cancel(ht->loop, &p->op);
        } else {
            probe_free(p);
        }
    }
}

/* The probe of list for service svc's instance at address, unlinked; NULL if none. */
static probe *take_probe(probe **list, size_t svc, const char *address)
{
    for (probe **pp = list; *pp != NULL; pp = &(*pp)->link) {
        probe *p = *pp;
        if (p->svc == svc && strcmp(p->address, address) == 0) {
            *pp = p->link;
            p->link = NULL;
            return p;
        }
    }
    return NULL;
}

/* Follows snap. A discovery change (the same config, other instances) keeps
 * the probes of the instances that stay, schedule and all, so a service
 * whose instances change often still gets its checks; a reload starts over. */
static void follow(hthread *ht, rw_snapshot *snap)
{
    probe *old = ht->probes;
    ht->probes = NULL;
    rw_snapshot *prev = ht->snap;
    bool same_cfg = snap != NULL && prev != NULL && prev->cfg == snap->cfg;
    free(ht->panic);
    ht->panic = NULL;
    ht->snap = snap;
    if (snap == NULL) {
        drop_probes(ht, old);
        if (prev != NULL)
            rw_snapshot_unref(prev);
        return;
    }
    const rw_config *cfg = snap->cfg;
    ht->panic = calloc(cfg->nservices ? cfg->nservices : 1, sizeof(bool));
    for (size_t s = 0; s < cfg->nservices; s++) {
        const rw_service_cfg *sc = &cfg->services[s];
        const rw_svc_health *h = &snap->upstate[s];
        const rw_instset *set = snap->insts[s];
        if (!sc->health_check.enabled) {
            /* No checks (any more): whatever an old config concluded no longer holds. */
            for (uint32_t i = 0; i < h->n; i++)
                if (rw_upstate_set_healthy(h, i, true))
                    rw_log_info("upstream %s (%s): health checks off, back in rotation", sc->name,
                                set->v[i].address);
            continue;
        }
        for (uint32_t i = 0; i < h->n; i++) {
            probe *p = same_cfg ? take_probe(&old, s, set->v[i].address) : NULL;
            if (p != NULL) { /* the same instance: its probe goes on, reporting to the new state */
                p->h = h;
                p->inst = i;
            } else {
                p = probe_new(ht, sc, &set->v[i], h, i);
                if (p == NULL)
                    continue;
                /* The first probes spread over one interval. */
                probe_schedule(p, rnd(ht) % sc->health_check.interval_ms);
            }
            p->link = ht->probes;
            ht->probes = p;
        }
    }
    drop_probes(ht, old);
    if (prev != NULL)
        rw_snapshot_unref(prev); /* after the probes that stayed moved to snap's state */
}

static void log_return(void *arg, const char *service, const char *address)
{
    (void)arg;
    rw_log_info("upstream %s (%s): ejection over, back in rotation", service, address);
}

static void on_tick(rw_timer *t)
{
    hthread *ht = RW_CONTAINER_OF(t, hthread, tick);
    uint64_t now = rw_loop_now(ht->loop);
    if (ht->snap != NULL) {
        const rw_config *cfg = ht->snap->cfg;
        for (size_t s = 0; s < cfg->nservices; s++) {
            const rw_svc_health *h = &ht->snap->upstate[s];
            rw_upstate_expire(h, now, log_return, NULL);
            bool all_down = h->n > 0;
            for (uint32_t i = 0; i < h->n && all_down; i++)
                all_down = rw_inst_down(h->inst[i], now);
            if (ht->panic != NULL && all_down != ht->panic[s]) {
                ht->panic[s] = all_down;
                if (all_down)
                    rw_log_warn("service %s: no instance is in rotation; routing to all %u of them (panic)",
                                cfg->services[s].name, h->n);
                else
                    rw_log_info("service %s: instances back in rotation; panic over", cfg->services[s].name);
            }
        }
    }
    rw_timer_set(rw_loop_timers(ht->loop), &ht->tick, now + TICK_MS);
}

static void on_wake(rw_op *op, int res)
{
    hthread *ht = op->data;
    (void)res;
    pthread_mutex_lock(&ht->mu);
    rw_snapshot *snap = ht->pending;
    ht->pending = NULL;
    bool stop = ht->stop_req;
    pthread_mutex_unlock(&ht->mu);
    if (snap != NULL)
        follow(ht, snap);
    if (stop) {
        ht->stopping = true;
        follow(ht, NULL);
        rw_timer_cancel(rw_loop_timers(ht->loop), &ht->tick);
        if (ht->inflight == 0)
            rw_loop_stop(ht->loop);
        return;
    }
    rw_loop_read_eventfd(ht->loop, &ht->wake, ht->efd);
}

static void on_turn(rw_loop *l, void *arg)
{
    hthread *ht = arg;
    if (ht->stopping && ht->inflight == 0)
        rw_loop_stop(l);
}

static void *health_main(void *arg)
{
    hthread *ht = arg;
    rw_log_set_thread(-1);
    rw_loop_set_turn_hook(ht->loop, on_turn, ht);
    rw_loop_read_eventfd(ht->loop, &ht->wake, ht->efd);
    rw_timer_set(rw_loop_timers(ht->loop), &ht->tick, rw_loop_now(ht->loop) + TICK_MS);
    int rc = rw_loop_run(ht->loop);
    if (rc != 0)
        rw_log_error("health thread stopped: %s", strerror(-rc));
    return NULL;
}

static bool needs_thread(const rw_config *cfg)
{
    for (size_t i = 0; i < cfg->nservices; i++)
        if (cfg->services[i].health_check.enabled || cfg->services[i].outlier.enabled)
            return true;
    return false;
}

static int health_start(void)
{
    hthread *ht = calloc(1, sizeof(*ht));
    if (ht == NULL)
        return -ENOMEM;
    rw_loop_opts lo = {.backend = RW_BACKEND_EPOLL, .ring_entries = 64, .buf_count = 16, .buf_size = 4096};
    ht->loop = rw_loop_new(&lo);
    ht->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ht->loop == NULL || ht->efd < 0) {
        int err = errno ? errno : ENOMEM;
        if (ht->loop != NULL)
            rw_loop_free(ht->loop);
        if (ht->efd >= 0)
            close(ht->efd);
        free(ht);
        return -err;
    }
    pthread_mutex_init(&ht->mu, NULL);
    ht->wake.cb = on_wake;
    ht->wake.data = ht;
    rw_timer_init(&ht->tick, on_tick);
    ht->rng = rw_mono_ms() * 0x9E3779B97F4A7C15ull | 1;
    int rc = pthread_create(&ht->tid, NULL, health_main, ht);
    if (rc != 0) {
        rw_loop_free(ht->loop);
        close(ht->efd);
        pthread_mutex_destroy(&ht->mu);
        free(ht);
        return -rc;
    }
    g_ht = ht;
    return 0;
}

static void wake(hthread *ht)
{
    uint64_t one = 1;
    ssize_t n = write(ht->efd, &one, sizeof(one));
    (void)n; /* a full counter still wakes the thread */
}

int rw_health_apply(rw_snapshot *snap)
{
    if (g_ht == NULL) {
        if (!needs_thread(snap->cfg))
            return 0;
        int rc = health_start();
        if (rc != 0) {
            rw_log_error("cannot start the health thread: %s; no active health checks run", strerror(-rc));
            return rc;
        }
    }
    rw_snapshot_ref(snap);
    pthread_mutex_lock(&g_ht->mu);
    rw_snapshot *old = g_ht->pending;
    g_ht->pending = snap;
    pthread_mutex_unlock(&g_ht->mu);
    if (old != NULL)
        rw_snapshot_unref(old);
    wake(g_ht);
    return 0;
}

void rw_health_stop(void)
{
    hthread *ht = g_ht;
    if (ht == NULL)
        return;
    pthread_mutex_lock(&ht->mu);
    ht->stop_req = true;
    pthread_mutex_unlock(&ht->mu);
    wake(ht);
    pthread_join(ht->tid, NULL);
    if (ht->pending != NULL)
        rw_snapshot_unref(ht->pending);
    free(ht->panic);
    rw_loop_free(ht->loop);
    close(ht->efd);
    pthread_mutex_destroy(&ht->mu);
    free(ht);
    g_ht = NULL;
}
