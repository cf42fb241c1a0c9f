/* snapshot.c - an immutable, reference-counted bundle of a loaded config,
 * its compiled router and its prebuilt (canned) responses. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringway/filters.h"
#include "ringway/instset.h"
#include "ringway/log.h"
#include "ringway/rstats.h"
#include "ringway/upstate.h"
#include "ringway/worker.h"

static int canned_build(rw_canned *cn, int status, const rw_kv *headers, size_t nheaders, const char *body,
                        size_t body_len)
{
    size_t cap = 256 + body_len;
    for (size_t i = 0; i < nheaders; i++)
        cap += strlen(headers[i].name) + strlen(headers[i].value) + 4;
    char *head = malloc(cap);
    if (head == NULL)
        return -ENOMEM;
    size_t n = (size_t)snprintf(head, cap, "HTTP/1.1 %d %s\r\n", status, rw_http_reason(status));
    bool has_ct = false;
    for (size_t i = 0; i < nheaders; i++) {
        n += (size_t)snprintf(head + n, cap - n, "%s: %s\r\n", headers[i].name, headers[i].value);
        if (strcasecmp(headers[i].name, "content-type") == 0)
            has_ct = true;
    }
    if (!has_ct && body_len > 0)
        n += (size_t)snprintf(head + n, cap - n, "Content-Type: text/plain\r\n");
    n += (size_t)snprintf(head + n, cap - n, "Content-Length: %zu\r\n", body_len);
    cn->status = status;
    /* Each persistence mode: the same head plus its Connection line. */
    for (int m = 0; m < RW_PERSIST__COUNT; m++) {
        rw_str line = rw_http_persist_line(m);
        size_t hl = n + line.len + 2;
        char *t = malloc(hl + body_len);
        if (t == NULL) {
            free(head);
            return -ENOMEM;
        }
        memcpy(t, head, n);
        memcpy(t + n, line.p, line.len);
        memcpy(t + n + line.len, "\r\n", 2);
        memcpy(t + hl, body, body_len);
        cn->text[m] = t;
        cn->head_len[m] = (uint32_t)hl;
        cn->len[m] = (uint32_t)(hl + body_len);
    }
    free(head);
    return 0;
}

static void canned_free(rw_canned *cn)
{
    for (int m = 0; m < RW_PERSIST__COUNT; m++) {
        free(cn->text[m]);
        cn->text[m] = NULL;
    }
}

static void stats_release(rw_snapshot *s, const rw_config *cfg)
{
    for (size_t i = 0; s->route_stats != NULL && i <= cfg->nroutes; i++)
        rw_rstats_release(s->route_stats[i]);
    for (size_t i = 0; s->svc_stats != NULL && i < cfg->nservices; i++)
        rw_rstats_release(s->svc_stats[i]);
    free(s->route_stats);
    free(s->svc_stats);
}

rw_snapshot *rw_snapshot_new(rw_config *cfg, uint64_t generation, char *err, size_t errlen)
{
    rw_snapshot *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->router = rw_router_build(cfg, err, errlen);
    if (s->router == NULL)
        goto fail;
    s->filters = rw_filters_build(cfg, err, errlen);
    if (s->filters == NULL)
        goto fail;
    s->route_stats = calloc(cfg->nroutes + 1, sizeof(*s->route_stats));
    s->svc_stats = calloc(cfg->nservices ? cfg->nservices : 1, sizeof(*s->svc_stats));
    if (s->route_stats == NULL || s->svc_stats == NULL)
        goto fail_oom;
    for (size_t i = 0; i <= cfg->nroutes; i++)
        if ((s->route_stats[i] = rw_rstats_route_acquire(i < cfg->nroutes ? cfg->routes[i].name : "")) ==
            NULL)
            goto fail_oom;
    for (size_t i = 0; i < cfg->nservices; i++)
        if ((s->svc_stats[i] = rw_rstats_svc_acquire(cfg->services[i].name)) == NULL)
            goto fail_oom;
    /* The static instances; discovery's join through rw_snapshot_derive. */
    s->insts = calloc(cfg->nservices ? cfg->nservices : 1, sizeof(*s->insts));
    if (s->insts == NULL)
        goto fail_oom;
    for (size_t i = 0; i < cfg->nservices; i++) {
        const rw_service_cfg *sc = &cfg->services[i];
        s->insts[i] =
            rw_instset_new(sc->instances, (uint32_t)sc->ninstances, "discovery has found no instance yet");
        if (s->insts[i] == NULL)
            goto fail_oom;
    }
    s->upstate = calloc(cfg->nservices ? cfg->nservices : 1, sizeof(*s->upstate));
    if (s->upstate == NULL || rw_upstate_acquire(cfg, s->insts, s->upstate) != 0) {
        free(s->upstate);
        s->upstate = NULL;
        goto fail_oom;
    }
    s->canned = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(rw_canned));
    if (s->canned == NULL)
        goto fail_oom;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const rw_route_cfg *rt = &cfg->routes[i];
        if (!rt->has_respond)
            continue;
        if (canned_build(&s->canned[i], rt->respond.status, rt->respond.headers, rt->respond.nheaders,
                         rt->respond.body ? rt->respond.body : "", rt->respond.body_len) != 0)
            goto fail_oom;
    }
    static const rw_kv json[] = {{(char *)"Content-Type", (char *)"application/json"},
                                 {(char *)"Cache-Control", (char *)"no-store"}};
    static const char ok[] = "{\"status\":\"ok\"}\n";
    static const char starting[] = "{\"status\":\"starting\"}\n";
    static const char stopping[] = "{\"status\":\"shutting_down\"}\n";
    if (canned_build(&s->health, 200, json, 2, ok, sizeof(ok) - 1) != 0 ||
        canned_build(&s->not_ready, 503, json, 2, starting, sizeof(starting) - 1) != 0 ||
        canned_build(&s->stopping, 503, json, 2, stopping, sizeof(stopping) - 1) != 0)
        goto fail_oom;
    rw_http_limits_default(&s->limits);
    s->limits.max_header_bytes = cfg->http.max_header_bytes;
    s->limits.max_request_line = cfg->http.max_request_line;
    s->limits.max_headers = cfg->http.max_headers ? cfg->http.max_headers : RW_HTTP_MAX_HEADERS;
    s->cfg = cfg;
    s->generation = generation;
    atomic_init(&s->refs, 1);
    return s;

fail_oom:
    snprintf(err, errlen, "out of memory");
fail:
    rw_filters_free(s->filters); /* never published: the caller still owns cfg */
    stats_release(s, cfg);
    for (size_t i = 0; s->insts != NULL && i < cfg->nservices; i++)
        rw_instset_unref(s->insts[i]);
    free(s->insts);
    if (s->upstate != NULL) {
        rw_upstate_release(s->upstate, cfg->nservices);
        free(s->upstate);
    }
    if (s->canned != NULL) {
        for (size_t i = 0; i < cfg->nroutes; i++)
            canned_free(&s->canned[i]);
        free(s->canned);
    }
    canned_free(&s->health);
    canned_free(&s->not_ready);
    canned_free(&s->stopping);
    rw_router_free(s->router);
    free(s);
    return NULL;
}

void rw_snapshot_ref(rw_snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

rw_snapshot *rw_snapshot_derive(rw_snapshot *from, rw_instset **sets, uint64_t generation, char *err,
                                size_t errlen)
{
    /* Sets not given come from the running snapshot (from); what is borrowed
     * comes from the root, so derived snapshots never chain. */
    rw_snapshot *base = from->base != NULL ? from->base : from;
    const rw_config *cfg = base->cfg;
    rw_snapshot *s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto oom;
    *s = *base; /* borrows the config, router, filters and canned responses */
    s->base = base;
    s->insts = calloc(cfg->nservices ? cfg->nservices : 1, sizeof(*s->insts));
    s->upstate = calloc(cfg->nservices ? cfg->nservices : 1, sizeof(*s->upstate));
    if (s->insts == NULL || s->upstate == NULL)
        goto oom_free;
    for (size_t i = 0; i < cfg->nservices; i++) {
        s->insts[i] = sets[i] != NULL ? sets[i] : from->insts[i];
        rw_instset_ref(s->insts[i]);
    }
    if (rw_upstate_acquire(cfg, s->insts, s->upstate) != 0)
        goto oom_free;
    rw_snapshot_ref(base);
    s->generation = generation;
    atomic_init(&s->refs, 1);
    return s;
oom_free:
    for (size_t i = 0; s->insts != NULL && i < cfg->nservices; i++)
        rw_instset_unref(s->insts[i]);
    free(s->insts);
    free(s->upstate);
    free(s);
oom:
    snprintf(err, errlen, "out of memory");
    return NULL;
}

void rw_snapshot_unref(rw_snapshot *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    rw_upstate_release(s->upstate, s->cfg->nservices);
    free(s->upstate);
    for (size_t i = 0; i < s->cfg->nservices; i++)
        rw_instset_unref(s->insts[i]);
    free(s->insts);
    if (s->base != NULL) {
        rw_snapshot_unref(s->base);
        free(s);
        return;
    }
    for (size_t i = 0; i < s->cfg->nroutes; i++)
        canned_free(&s->canned[i]);
    free(s->canned);
    canned_free(&s->health);
    canned_free(&s->not_ready);
    canned_free(&s->stopping);
    rw_router_free(s->router);
    stats_release(s, s->cfg);
    rw_filters_release(s->filters, s->cfg); /* freed with the config by the control thread */
    free(s);
}
