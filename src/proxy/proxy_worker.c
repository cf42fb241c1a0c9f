/* proxy_worker.c - the proxy's per-worker state behind rw_worker_handler:
 * created with the worker, switched to each new snapshot at the top of a
 * loop turn (requests already running finish on the state they started
 * with), drained, and freed with the worker. */
#include <stdio.h>
#include <stdlib.h>

#include "proxy_int.h"
#include "ringway/alog.h"
#include "ringway/log.h"
#include "ringway/proxy.h"

static void *pw_create(rw_worker *core, rw_snapshot *snap, char *err, size_t errlen)
{
    rw_pworker *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->core = core;
    w->loop = rw_worker_loop(core);
    w->stats = rw_worker_counters(core);
    w->server = rw_worker_server(core);
    w->id = rw_worker_id(core);
    w->alog = rw_alog_ring_of(w->id);
    w->reqid_seed = rw_worker_seed(core);
    w->rng = rw_mix64(w->reqid_seed ^ 0x7472616365ull); /* "trace" */
    /* Never smaller than a loop buffer: a partial head moves from one into it. */
    w->hbuf_cap = (uint32_t)RW_MAX(snap->cfg->http.max_header_bytes + 2048, 32768);
    w->fw = rw_filter_worker_new(snap->cfg->rate_limit_shard_keys, w->id);
    if (w->fw == NULL) {
        free(w);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rw_snapshot_ref(snap);
    if (rw__wstate_new(w, snap, &w->ws) != 0) {
        rw_snapshot_unref(snap);
        rw_filter_worker_free(w->fw, 0);
        free(w);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return w;
}

static void pw_adopt(void *st, rw_snapshot *snap)
{
    rw_pworker *w = st;
    rw_wstate *ws = NULL;
    if (rw__wstate_new(w, snap, &ws) != 0) {
        rw_log_error(
            "cannot build upstream state for config generation %llu: out of memory; keeping the old one",
            (unsigned long long)snap->generation);
        rw_snapshot_unref(snap);
        return;
    }
    rw_wstate *old = w->ws;
    w->ws = ws;
    rw_filter_worker_switch(w->fw, old->snap->filters, snap->filters, rw_loop_now(w->loop));
    rw__wstate_move_idle(w, old);
    old->next = w->retiring;
    w->retiring = old;
    rw__wstate_put(w, old); /* drops the worker's own use; freed when unused */
    rw_log_debug("now serving config generation %llu", (unsigned long long)snap->generation);
}

static void pw_accepted(void *st, int fd, size_t listener)
{
    rw__conn_accepted(st, fd, listener);
}

static void pw_close_idle(void *st, uint32_t grace_ms)
{
    rw_pworker *w = st;
    w->draining = true;
    w->drain_grace_ms = grace_ms;
    rw__worker_close_idle(w, grace_ms);
}

static void pw_close_all(void *st)
{
    rw__worker_close_all(st);
}

static bool pw_finished(void *st)
{
    const rw_pworker *w = st;
    return w->nconns == 0 && w->nupconns == 0;
}

static void pw_filter_stats(void *st, struct rw_filters_stats *out)
{
    rw_pworker *w = st;
    rw_filter_worker_stats(w->fw, out);
}

static void pw_destroy(void *st)
{
    rw_pworker *w = st;
    rw_filter_worker_free(w->fw, rw_loop_now(w->loop)); /* before its tables can go */
    w->fw = NULL;
    if (w->ws != NULL) {
        rw__wstate_close_idle(w, w->ws);
        rw__wstate_put(w, w->ws);
        w->ws = NULL;
    }
    w->free_conns = NULL; /* their memory is in the slabs */
    while (w->conn_slabs != NULL) {
        rw_conn_slab *sl = w->conn_slabs;
        w->conn_slabs = sl->next;
        free(sl);
    }
    while (w->free_exchanges != NULL) {
        rw_exchange *e = w->free_exchanges;
        w->free_exchanges = e->next;
        free(e);
    }
    while (w->free_hbufs != NULL) {
        rw_hbuf *h = w->free_hbufs;
        w->free_hbufs = h->next;
        free(h);
    }
    free(w);
}

const rw_worker_handler rw_proxy_handler = {
    .create = pw_create,
    .adopt = pw_adopt,
    .accepted = pw_accepted,
    .close_idle = pw_close_idle,
    .close_all = pw_close_all,
    .finished = pw_finished,
    .filter_stats = pw_filter_stats,
    .destroy = pw_destroy,
};
