/* pick.c - choosing an instance for an exchange (health, ejection, the
 * panic rule, tried instances, max_requests), telling outlier detection how
 * an attempt ended, and deciding whether a failed attempt may be retried
 * (retries: kinds, idempotence, the budget). exchange.c makes the attempts. */
#include <string.h>

#include "proxy_int.h"
#include "ringway/upstate.h"

/* Re-reads which instances are out of rotation when the node-wide state
 * moved (its version) or an ejection this worker knows of ended. */
static void svc_refresh(rw_svc_state *ss, const rw_svc_health *h, uint64_t now)
{
    uint32_t v = atomic_load_explicit(&h->svc->version, memory_order_acquire);
    if (v == ss->seen_version && now < ss->recheck_at)
        return;
    ss->seen_version = v;
    ss->recheck_at = UINT64_MAX;
    ss->ndown = 0;
    for (uint32_t k = 0; k < h->n; k++) {
        uint64_t until = atomic_load_explicit(&h->inst[k]->eject_until, memory_order_relaxed);
        bool down = rw_inst_down(h->inst[k], now);
        ss->down[k] = down;
        ss->ndown += down;
        if (until > now && until < ss->recheck_at)
            ss->recheck_at = until;
    }
}

/* Sets (v = 1) or clears the instances this exchange already tried. */
static void mark_tried(rw_exchange *ex, uint8_t *excluded, uint32_t n, uint8_t v)
{
    for (int i = 0; i < ex->tries && i < RW_MAX_ATTEMPTS; i++)
        if (ex->tried[i] < n)
            excluded[ex->tried[i]] = v;
}

/* Picks an instance, preferring in turn: one in rotation not yet tried; one
 * in rotation; then, when none is in rotation (every instance unhealthy or
 * ejected), any not yet tried, then any: the panic rule, since sending to a
 * maybe-dead instance beats refusing every request. Instances at
 * max_requests are never picked (RW_PICK_OVERFLOW when that leaves none). The
 * common case (nothing down, no cap, first try) is one rw_lb_pick. */
int rw__ex_pick(rw_exchange *ex)
{
    rw_svc_state *ss = &ex->ur.ws->svcs[ex->ur.svc];
    const rw_svc_health *h = &ex->ur.ws->snap->upstate[ex->ur.svc];
    const rw_service_cfg *sc = ex->ur.svc_cfg;
    uint32_t n = ex->ur.ws->snap->insts[ex->ur.svc]->n, cap = sc->max_requests;
    uint8_t *x = ss->excluded; /* all zero between picks */
    if (n == 0)
        return RW_PICK_EMPTY; /* discovery has found none (yet) */
    svc_refresh(ss, h, rw_loop_now(ex->c->w->loop));
    int inst = -1;
    bool capped = false;
    if (ss->ndown == 0 && cap == 0 && ex->tries == 0) { /* the common case */
        inst = rw_lb_pick(&ss->lb, ss->active, NULL, ex->hash);
        goto picked;
    }
    for (int pass = 0; pass < 4 && inst < 0; pass++) {
        bool use_down = pass < 2, use_tried = pass == 0 || pass == 2;
        if (use_tried && ex->tries == 0)
            continue; /* the same as the next pass */
        if (!use_down && ss->ndown < n)
            break; /* panic only when no instance is in rotation (at max_requests is not down) */
        bool full = (use_down && ss->ndown > 0) || cap > 0;
        if (full) {
            for (uint32_t k = 0; k < n; k++) {
                bool at_cap = cap > 0 && ss->active[k] >= cap;
                capped |= at_cap;
                x[k] = (use_down && ss->down[k]) || at_cap;
            }
        }
        if (use_tried)
            mark_tried(ex, x, n, 1);
        inst = rw_lb_pick(&ss->lb, ss->active, x, ex->hash);
        if (full)
            memset(x, 0, n);
        else if (use_tried)
            mark_tried(ex, x, n, 0);
        if (inst >= 0 && !use_down)
            atomic_fetch_add_explicit(&h->svc->panics, 1, memory_order_relaxed);
    }
picked:
    if (inst < 0)
        return capped ? RW_PICK_OVERFLOW : RW_PICK_NONE;
    ex->ur.inst = inst;
    if (ex->tries < RW_MAX_ATTEMPTS)
        ex->tried[ex->tries] = (uint16_t)inst;
    ex->tries++;
    return RW_PICK_OK;
}

/* Counts how the attempt on the current instance ended, and tells outlier
 * detection. */
void rw__ex_outcome(rw_exchange *ex, uint32_t kind)
{
    rw_upstate_count(&ex->ur.ws->snap->upstate[ex->ur.svc], (uint32_t)ex->ur.inst, ex->c->w->id,
                     kind == 0               ? RW_UP_OK
                     : kind == RW_FAILON_5XX ? RW_UP_5XX
                                             : RW_UP_FAILED);
    const rw_outlier_cfg *oc = &ex->ur.svc_cfg->outlier;
    if (!oc->enabled)
        return;
    rw_upstate_outcome(&ex->ur.ws->snap->upstate[ex->ur.svc], (uint32_t)ex->ur.inst, oc, (oc->on & kind) != 0,
                       rw_loop_now(ex->c->w->loop));
}

bool rw__idempotent(int method)
{
    return method == RW_METHOD_GET || method == RW_METHOD_HEAD || method == RW_METHOD_PUT ||
           method == RW_METHOD_DELETE || method == RW_METHOD_OPTIONS || method == RW_METHOD_TRACE;
}

/* Whether an attempt that failed this way (RW_FAILON_*) may be made again:
 * attempts left, nothing sent to the client, retries.on, and only what
 * cannot reach the application twice with a body we no longer hold (a
 * failed connect sent nothing; anything else needs a request without a body,
 * and an idempotent method unless retry_non_idempotent). Then the budget,
 * for retries of requests an instance received: a failed connect cost no
 * application any work, so its retry is not what multiplies an outage (and
 * an instance that just died fails every request on it at once). */
bool rw__ex_may_retry(rw_exchange *ex, uint32_t kind)
{
    const rw_retries_cfg *rc = &ex->ur.svc_cfg->retries;
    if (ex->tries >= rc->attempts || ex->resp_head_sent || ex->req_inflight > 0 || !(rc->on & kind))
        return false;
    if (kind == RW_FAILON_CONNECT && !ex->head_sent_up)
        return true;
    if (ex->req_body != RW_BODY_NONE || !(rw__idempotent(ex->method) || rc->non_idempotent))
        return false;
    rw_svc_state *ss = &ex->ur.ws->svcs[ex->ur.svc];
    uint32_t allowed = (uint32_t)((uint64_t)ss->requests * rc->budget_pct / 100);
    if (allowed < rc->budget_min)
        allowed = rc->budget_min;
    if (!ex->retrying && ss->retrying >= allowed) {
        ex->c->w->stats->upstream_retry_budget_exhausted++;
        return false;
    }
    return true;
}
