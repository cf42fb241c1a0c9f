/* filters.c - compiling a snapshot's access filters (control side): JWT key
 * sets and JWKS sources, rate-limit tables, the API-key and consumer
 * indexes, each route's filter list; and collecting them when no worker
 * uses them any more. Running them is filters_run.c. See filters.h. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/mem.h>
#include <openssl/sha.h>

#include "filters_int.h"
#include "ringway/cidr.h"
#include "ringway/filters.h"
#include "ringway/jwks.h"
#include "ringway/jwt.h"
#include "ringway/lb.h"
#include "ringway/log.h"
#include "ringway/ratelimit.h"
#include "ringway/rl_global.h"

static _Atomic(rw_filters *) graveyard; /* pushed by any thread, emptied by the control thread */

static size_t pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

static int build_key_index(rw_filters *f)
{
    const rw_config *cfg = f->cfg;
    size_t nkeys = 0;
    for (size_t i = 0; i < cfg->nconsumers; i++)
        nkeys += cfg->consumers[i].nkeys;
    size_t cap = pow2_at_least(nkeys * 2);
    f->keys = calloc(cap, sizeof(*f->keys));
    if (f->keys == NULL)
        return -ENOMEM;
    f->keys_mask = (uint32_t)(cap - 1);
    for (size_t s = 0; s < cap; s++)
        f->keys[s].consumer = -1;
    for (size_t i = 0; i < cfg->nconsumers; i++) {
        for (size_t k = 0; k < cfg->consumers[i].nkeys; k++) {
            const char *key = cfg->consumers[i].keys[k];
            uint8_t d[SHA256_DIGEST_LENGTH];
            if (strncmp(key, "sha256:", 7) == 0) {
                for (int b = 0; b < SHA256_DIGEST_LENGTH; b++)
                    d[b] = (uint8_t)(rw_hexval(key[7 + 2 * b]) << 4 | rw_hexval(key[8 + 2 * b]));
            } else {
                SHA256((const uint8_t *)key, strlen(key), d);
            }
            uint32_t s = (uint32_t)digest_hash(d) & f->keys_mask;
            while (f->keys[s].consumer >= 0)
                s = (s + 1) & f->keys_mask;
            memcpy(f->keys[s].digest, d, sizeof(d));
            f->keys[s].consumer = (int)i;
        }
    }
    return 0;
}

/* Certificate fingerprints (normalised to 64 lower-case hex digits at load,
 * unique across consumers) -> consumer; none configured: no table. */
static int build_cert_index(rw_filters *f)
{
    const rw_config *cfg = f->cfg;
    size_t n = 0;
    for (size_t i = 0; i < cfg->nconsumers; i++)
        n += cfg->consumers[i].ncerts;
    if (n == 0)
        return 0;
    size_t cap = pow2_at_least(n * 2);
    f->certs = calloc(cap, sizeof(*f->certs));
    if (f->certs == NULL)
        return -ENOMEM;
    f->certs_mask = (uint32_t)(cap - 1);
    for (size_t i = 0; i < cfg->nconsumers; i++) {
        for (size_t k = 0; k < cfg->consumers[i].ncerts; k++) {
            const char *fp = cfg->consumers[i].certs[k];
            uint32_t s = (uint32_t)rw_hash64(fp, RW_CERT_FP_LEN) & f->certs_mask;
            while (f->certs[s].name != NULL)
                s = (s + 1) & f->certs_mask;
            f->certs[s].name = fp;
            f->certs[s].consumer = (int)i;
        }
    }
    return 0;
}

int rw__filters_consumer_by_cert(const rw_filters *f, rw_str sha256)
{
    if (f->certs == NULL || sha256.len != RW_CERT_FP_LEN)
        return -1;
    uint32_t i = (uint32_t)rw_hash64(sha256.p, RW_CERT_FP_LEN) & f->certs_mask;
    while (f->certs[i].name != NULL) {
        if (memcmp(f->certs[i].name, sha256.p, RW_CERT_FP_LEN) == 0)
            return f->certs[i].consumer;
        i = (i + 1) & f->certs_mask;
    }
    return -1;
}

static void names_put(rw_filters *f, const char *name, int consumer)
{
    uint32_t s = (uint32_t)rw_hash64(name, strlen(name)) & f->names_mask;
    while (f->names[s].name != NULL) {
        if (strcmp(f->names[s].name, name) == 0)
            return; /* an id wins over a name */
        s = (s + 1) & f->names_mask;
    }
    f->names[s].name = name;
    f->names[s].consumer = consumer;
}

static int build_name_index(rw_filters *f)
{
    const rw_config *cfg = f->cfg;
    size_t cap = pow2_at_least(cfg->nconsumers * 4);
    f->names = calloc(cap, sizeof(*f->names));
    f->consumer_groups = calloc(cfg->nconsumers ? cfg->nconsumers : 1, sizeof(char *));
    if (f->names == NULL || f->consumer_groups == NULL)
        return -ENOMEM;
    f->names_mask = (uint32_t)(cap - 1);
    for (size_t i = 0; i < cfg->nconsumers; i++)
        names_put(f, cfg->consumers[i].id, (int)i);
    for (size_t i = 0; i < cfg->nconsumers; i++)
        names_put(f, cfg->consumers[i].name, (int)i);
    for (size_t i = 0; i < cfg->nconsumers; i++) {
        const rw_consumer_cfg *c = &cfg->consumers[i];
        size_t len = 1;
        for (size_t g = 0; g < c->ngroups; g++)
            len += strlen(c->groups[g]) + 2;
        char *s = malloc(len);
        if (s == NULL)
            return -ENOMEM;
        size_t off = 0;
        for (size_t g = 0; g < c->ngroups; g++)
            off += (size_t)sprintf(s + off, "%s%s", g ? ", " : "", c->groups[g]);
        s[off] = '\0';
        f->consumer_groups[i] = s;
    }
    return 0;
}

static int jwt_build(filter_rt *fr, char *err, size_t errlen)
{
    const rw_jwt_cfg *j = &fr->cfg->u.jwt;
    jwt_rt *jr = &fr->u.jwt;
    char why[256];
    static atomic_uint_fast64_t next_id = 1;
    jr->id = atomic_fetch_add(&next_id, 1);
    jr->static_ks = rw_jwt_keyset_new();
    if (jr->static_ks == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < j->nkeys; i++) {
        const rw_jwt_key_cfg *k = &j->keys[i];
        int rc = k->secret ? rw_jwt_keyset_add_secret(jr->static_ks, k->alg, k->kid, k->secret, k->secret_len,
                                                      why, sizeof(why))
                           : rw_jwt_keyset_add_pem(jr->static_ks, k->alg, k->kid, k->pem, strlen(k->pem), why,
                                                   sizeof(why));
        if (rc != 0) {
            snprintf(err, errlen, "line %d: jwt key: %s", k->line, why);
            return -1;
        }
    }
    if (j->jwks_file || j->jwks_url) {
        rw_jwks_opts o = {
            .file = j->jwks_file,
            .url = j->jwks_url,
            .ca_file = j->jwks_ca_file,
            .refresh_ms = j->jwks_refresh_ms,
            .timeout_ms = 5000,
            .base = jr->static_ks,
        };
        jr->jwks = rw_jwks_acquire(&o, why, sizeof(why));
        if (jr->jwks == NULL) {
            snprintf(err, errlen, "line %d: jwt: %s", fr->cfg->line, why);
            return -1;
        }
    }
    jr->pol.issuer = j->issuer;
    jr->pol.audiences = (const char *const *)j->audiences;
    jr->pol.naudiences = j->naudiences;
    jr->pol.required = (const char *const *)j->required_claims;
    jr->pol.nrequired = j->nrequired;
    jr->pol.leeway_s = j->leeway_s;
    jr->pol.max_age_s = j->max_age_s;
    jr->pol.require_exp = j->require_exp;
    return 0;
}

static int rl_build(rw_filters *f, filter_rt *fr, char *err, size_t errlen)
{
    const rw_rate_limit_cfg *r = &fr->cfg->u.rate_limit;
    rl_rt *rr = &fr->u.rl;
    if (!r->unlimited && r->rate > 0) {
        rr->base.rate = r->rate;
        rr->base.burst = r->burst;
    }
    if (r->tier) {
        rr->tiers = calloc(f->cfg->ntiers ? f->cfg->ntiers : 1, sizeof(*rr->tiers));
        if (rr->tiers == NULL)
            goto oom;
        for (size_t i = 0; i < f->cfg->ntiers; i++) {
            const rw_tier_cfg *t = &f->cfg->tiers[i];
            if (t->unlimited)
                continue;
            /* N per period (as the tier writes it), as a burst of N refilled evenly */
            double period_s = (double)(t->window_ms ? t->window_ms : 1000) / 1000.0;
            double b = t->rate_per_sec * period_s;
            rr->tiers[i].rate = t->rate_per_sec;
            rr->tiers[i].burst = b < 1 ? 1 : b > 1e9 ? 1000000000u : (uint32_t)(b + 0.5);
        }
    }
    rr->reg = rw_rl_global_acquire(r);
    rr->stats = rw_rstats_limit_acquire(r->name);
    if (rr->reg == NULL || rr->stats == NULL)
        goto oom;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static void filter_rt_free(filter_rt *fr)
{
    if (fr->cfg == NULL)
        return;
    if (fr->cfg->kind == RW_FILTER_JWT) {
        if (fr->u.jwt.jwks != NULL)
            rw_jwks_release(fr->u.jwt.jwks);
        rw_jwt_keyset_free(fr->u.jwt.static_ks);
    } else if (fr->cfg->kind == RW_FILTER_RATE_LIMIT) {
        free(fr->u.rl.tiers);
        if (fr->u.rl.reg != NULL)
            rw_rl_global_release(fr->u.rl.reg);
        rw_rstats_release(fr->u.rl.stats);
    }
}

void rw_filters_free(rw_filters *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->nall; i++)
        filter_rt_free(&f->all[i]);
    free(f->all);
    if (f->routes != NULL) {
        for (size_t i = 0; i < f->cfg->nroutes; i++) {
            free(f->routes[i].list);
            free(f->routes[i].strip);
        }
    }
    free(f->routes);
    free(f->keys);
    free(f->names);
    free(f->certs);
    if (f->consumer_groups != NULL)
        for (size_t i = 0; i < f->cfg->nconsumers; i++)
            free(f->consumer_groups[i]);
    free(f->consumer_groups);
    rw_config_free(f->owned_cfg);
    free(f);
}

static void strip_add(route_rt *rr, const char *name)
{
    for (size_t i = 0; i < rr->nstrip; i++)
        if (rr->strip[i].len == strlen(name) && strncasecmp(rr->strip[i].p, name, rr->strip[i].len) == 0)
            return;
    rr->strip[rr->nstrip++] = (rw_str){name, strlen(name)};
}

static int route_build(rw_filters *f, size_t ri, filter_rt *gl, size_t ngl, filter_rt **svc_start,
                       size_t *svc_n, filter_rt *own, size_t nown)
{
    const rw_route_cfg *rt = &f->cfg->routes[ri];
    route_rt *rr = &f->routes[ri];
    size_t ns = rt->service_index >= 0 ? svc_n[rt->service_index] : 0;
    size_t n = ngl + ns + nown;
    rr->name_hash = rw_hash64(rt->name, strlen(rt->name));
    if (n == 0)
        return 0;
    rr->list = calloc(n, sizeof(*rr->list));
    if (rr->list == NULL)
        return -ENOMEM;
    size_t nstrip = 0;
    filter_rt *srcs[3] = {gl, ns ? svc_start[rt->service_index] : NULL, own};
    size_t counts[3] = {ngl, ns, nown};
    for (int s = 0; s < 3; s++) {
        for (size_t i = 0; i < counts[s]; i++) {
            rr->list[rr->n++] = &srcs[s][i];
            if (srcs[s][i].cfg->kind == RW_FILTER_JWT)
                nstrip += srcs[s][i].cfg->u.jwt.nclaims + 1;
            else if (srcs[s][i].cfg->kind == RW_FILTER_KEY_AUTH)
                nstrip += 1;
        }
    }
    rr->strip = calloc(nstrip ? nstrip : 1, sizeof(*rr->strip));
    if (rr->strip == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < rr->n; i++) {
        const rw_filter_cfg *c = rr->list[i]->cfg;
        if (c->kind == RW_FILTER_JWT) {
            for (size_t k = 0; k < c->u.jwt.nclaims; k++)
                strip_add(rr, c->u.jwt.claims_to_headers[k].value);
            if (c->u.jwt.hide_credentials && c->u.jwt.from == RW_FROM_BEARER)
                strip_add(rr, "Authorization");
            else if (c->u.jwt.hide_credentials && c->u.jwt.from == RW_FROM_HEADER)
                strip_add(rr, c->u.jwt.from_name);
            else if (c->u.jwt.hide_credentials && c->u.jwt.from == RW_FROM_COOKIE)
                strip_add(rr, "Cookie"); /* re-added per request without the token's cookie */
        } else if (c->kind == RW_FILTER_KEY_AUTH && c->u.key_auth.hide_credentials &&
                   c->u.key_auth.from == RW_FROM_HEADER) {
            strip_add(rr, c->u.key_auth.name);
        }
    }
    return 0;
}

rw_filters *rw_filters_build(const rw_config *cfg, char *err, size_t errlen)
{
    rw_filters *f = calloc(1, sizeof(*f));
    if (f == NULL)
        goto oom;
    f->cfg = cfg;
    size_t total = cfg->nfilters;
    for (size_t i = 0; i < cfg->nservices; i++)
        total += cfg->services[i].nfilters;
    for (size_t i = 0; i < cfg->nroutes; i++)
        total += cfg->routes[i].nfilters;
    f->all = calloc(total ? total : 1, sizeof(*f->all));
    f->routes = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*f->routes));
    filter_rt **svc_start = calloc(cfg->nservices ? cfg->nservices : 1, sizeof(*svc_start));
    size_t *svc_n = calloc(cfg->nservices ? cfg->nservices : 1, sizeof(*svc_n));
    if (f->all == NULL || f->routes == NULL || svc_start == NULL || svc_n == NULL) {
        free(svc_start);
        free(svc_n);
        goto oom;
    }
    /* compile every filter as written, in one array */
    size_t idx = 0;
    int rc = 0;
    filter_rt *gl = f->all;
    for (size_t i = 0; i < cfg->nfilters; i++)
        f->all[idx++].cfg = &cfg->filters[i];
    for (size_t s = 0; s < cfg->nservices; s++) {
        svc_start[s] = &f->all[idx];
        svc_n[s] = cfg->services[s].nfilters;
        for (size_t i = 0; i < cfg->services[s].nfilters; i++)
            f->all[idx++].cfg = &cfg->services[s].filters[i];
    }
    size_t route_base = idx;
    for (size_t r = 0; r < cfg->nroutes; r++)
        for (size_t i = 0; i < cfg->routes[r].nfilters; i++)
            f->all[idx++].cfg = &cfg->routes[r].filters[i];
    f->nall = idx;
    for (size_t i = 0; i < f->nall && rc == 0; i++) {
        filter_rt *fr = &f->all[i];
        if (fr->cfg->kind == RW_FILTER_JWT)
            rc = jwt_build(fr, err, errlen);
        else if (fr->cfg->kind == RW_FILTER_RATE_LIMIT)
            rc = rl_build(f, fr, err, errlen);
    }
    if (rc == 0 && (build_key_index(f) != 0 || build_name_index(f) != 0 || build_cert_index(f) != 0)) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    for (size_t r = 0, off = route_base; r < cfg->nroutes && rc == 0; r++) {
        if (route_build(f, r, gl, cfg->nfilters, svc_start, svc_n, &f->all[off], cfg->routes[r].nfilters) !=
            0) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
        off += cfg->routes[r].nfilters;
    }
    free(svc_start);
    free(svc_n);
    if (rc != 0) {
        rw_filters_free(f);
        return NULL;
    }
    return f;
oom:
    snprintf(err, errlen, "out of memory");
    rw_filters_free(f);
    return NULL;
}

void rw_filters_release(rw_filters *f, rw_config *cfg)
{
    if (f == NULL) {
        rw_config_free(cfg);
        return;
    }
    f->owned_cfg = cfg;
    rw_filters *head = atomic_load_explicit(&graveyard, memory_order_relaxed);
    do /* lock-free: a worker letting go of a snapshot never waits for the control thread */
        f->next = head;
    while (!atomic_compare_exchange_weak_explicit(&graveyard, &head, f, memory_order_release,
                                                  memory_order_relaxed));
}

void rw_filters_gc(void)
{
    rw_filters *dead = atomic_exchange_explicit(&graveyard, NULL, memory_order_acquire);
    while (dead != NULL) { /* may block on a JWKS refresh: never on a worker */
        rw_filters *next = dead->next;
        rw_filters_free(dead);
        dead = next;
    }
    rw_jwks_collect();
    rw_rl_global_collect();
}

bool rw_filters_route_active(const rw_filters *f, int route)
{
    return f != NULL && route >= 0 && f->routes[route].n > 0;
}

bool rw_filters_strip(const rw_filters *f, int route, rw_str name)
{
    const route_rt *rr = &f->routes[route];
    for (size_t i = 0; i < rr->nstrip; i++)
        if (rw_str_ieq_dash(rr->strip[i], name))
            return true;
    return false;
}

int rw__filters_consumer_by_name(const rw_filters *f, const char *s, size_t len)
{
    uint32_t i = (uint32_t)rw_hash64(s, len) & f->names_mask;
    while (f->names[i].name != NULL) {
        if (strlen(f->names[i].name) == len && memcmp(f->names[i].name, s, len) == 0)
            return f->names[i].consumer;
        i = (i + 1) & f->names_mask;
    }
    return -1;
}
