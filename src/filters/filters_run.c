/* filters_run.c - running a snapshot's access filters on a parsed request
 * (worker side): IP ACLs, API keys, JWTs (with a per-worker verified-token
 * cache), group ACLs, rate limits; the per-worker state they keep. Compiling
 * them is filters.c. See filters.h. */
#include <errno.h>
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
#include "ringway/lb.h"
#include "ringway/log.h"
#include "ringway/ratelimit.h"

/* ---- the worker side ---- */

#define JWT_CACHE_SLOTS 1024u /* direct-mapped, per worker */
#define JWT_CACHE_VALUES 400u
#define JWT_CACHE_CLAIMS 12 /* claims_to_headers entries at most (config.c) */
#define SCRATCH_TOKEN (2 * RW_JWT_MAX_TOKEN)
#define SCRATCH_VALUES 4096u

/* A verified asymmetric token and what it yielded under one filter: a hit
 * re-checks only the time claims (the rest of the policy does not change with
 * time) and reuses the header values and the consumer. */
typedef struct jwt_cache_entry {
    uint8_t digest[SHA256_DIGEST_LENGTH];
    uint64_t ks_id;                 /* jwt_rt id and JWKS rotation that verified it: */
    uint64_t ks_rot;                /* a reload or a key rotation misses */
    rw_jwt_token times;             /* exp, nbf, iat (payload not kept) */
    int32_t consumer;               /* from consumer_claim, -1 none */
    int16_t vlen[JWT_CACHE_CLAIMS]; /* per claims_to_headers entry, -1 absent */
    bool valid;
    char values[JWT_CACHE_VALUES];
} jwt_cache_entry;

struct rw_filter_worker {
    rw_rl_shard *shard;
    jwt_cache_entry *cache; /* allocated on the first verified token */
    rw_filters_stats stats;
    char token_scratch[SCRATCH_TOKEN];
    char values[SCRATCH_VALUES];
    uint32_t values_len;
    int id; /* the worker's index */
};

rw_filter_worker *rw_filter_worker_new(uint32_t shard_keys, int id)
{
    rw_filter_worker *fw = calloc(1, sizeof(*fw));
    if (fw == NULL)
        return NULL;
    fw->id = id < 0 || id >= rw_rstats_nslots() ? 0 : id;
    fw->shard = rw_rl_shard_new(shard_keys ? shard_keys : 16384);
    if (fw->shard == NULL) {
        free(fw);
        return NULL;
    }
    return fw;
}

void rw_filter_worker_free(rw_filter_worker *fw, uint64_t now_ms)
{
    if (fw == NULL)
        return;
    rw_rl_shard_free(fw->shard, now_ms * 1000000u);
    free(fw->cache);
    free(fw);
}

static bool has_table(const rw_filters *f, const rw_rl_table *t)
{
    for (size_t i = 0; f != NULL && i < f->nall; i++)
        if (f->all[i].cfg->kind == RW_FILTER_RATE_LIMIT && rw_rl_entry_table(f->all[i].u.rl.reg) == t)
            return true;
    return false;
}

void rw_filter_worker_switch(rw_filter_worker *fw, const rw_filters *old, const rw_filters *cur,
                             uint64_t now_ms)
{
    if (fw == NULL || old == NULL)
        return;
    for (size_t i = 0; i < old->nall; i++) {
        const filter_rt *fr = &old->all[i];
        if (fr->cfg->kind == RW_FILTER_RATE_LIMIT && !has_table(cur, rw_rl_entry_table(fr->u.rl.reg)))
            rw_rl_shard_forget(fw->shard, rw_rl_entry_table(fr->u.rl.reg), now_ms * 1000000u);
    }
}

void rw_filter_worker_stats(const rw_filter_worker *fw, rw_filters_stats *out)
{
    const rw_filters_stats *s = &fw->stats;
    out->jwt_cache_hits += s->jwt_cache_hits;
    out->jwt_verified += s->jwt_verified;
    out->rl_redis_fallback += s->rl_redis_fallback;
}

/* What one run knows about the request, computed when first needed. */
typedef struct run_ctx {
    rw_filter_worker *fw;
    const rw_filters *f;
    const rw_filter_input *in;
    rw_filter_result *out;
    bool ip_done;
    rw_ipaddr ip;
    rw_str ip_text;
    rw_str cred; /* API key or token presented (for key: key) */
} run_ctx;

static void extra_add(rw_filter_result *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void extra_add(rw_filter_result *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = sizeof(out->extra) - out->extra_len;
    int n = vsnprintf(out->extra + out->extra_len, room, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < room)
        out->extra_len += (uint32_t)n;
    else
        out->extra[out->extra_len] = '\0'; /* dropped whole */
}

static int refuse(run_ctx *x, int status, const char *error)
{
    x->out->status = status;
    x->out->error = error;
    return status;
}

/* A refusal by authentication or an ACL, with its reason for the metrics. */
static int deny(run_ctx *x, int status, const char *error, int why)
{
    x->out->auth_fail = (uint8_t)why;
    return refuse(x, status, error);
}

/* The metrics' reason for a token that did not verify. */
static int jwt_reason(int rc)
{
    switch (rc) {
    case RW_JWT_EEXPIRED:
    case RW_JWT_ENOTYET:
    case RW_JWT_ETOOOLD:
        return RW_AF_TOKEN_EXPIRED;
    case RW_JWT_EISSUER:
    case RW_JWT_EAUDIENCE:
    case RW_JWT_ECLAIM:
        return RW_AF_TOKEN_CLAIMS;
    default:
        return RW_AF_TOKEN_INVALID;
    }
}

static rw_str trim(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    return (rw_str){p, (size_t)(e - p)};
}

rw_str rw_client_ip(const rw_config *cfg, const rw_http_request *rq, const char *peer, size_t peer_len,
                    rw_ipaddr *ip)
{
    rw_str text = {peer, peer_len};
    rw_ipaddr_parse(peer, peer_len, ip);
    if (cfg->ntrusted_proxies == 0 || !rw_cidr_match_any(cfg->trusted_proxies, cfg->ntrusted_proxies, ip))
        return text;
    for (size_t i = rq->nheaders; i-- > 0;) {
        const rw_http_header *h = &rq->headers[i];
        if (!rw_str_ieq(h->name, "x-forwarded-for"))
            continue;
        const char *end = h->value.p + h->value.len;
        while (end > h->value.p) {
            const char *comma = end;
            while (comma > h->value.p && comma[-1] != ',')
                comma--;
            rw_str e = trim(comma, end);
            rw_ipaddr a;
            if (rw_ipaddr_parse(e.p, e.len, &a) != 0) {
                /* Garbage where the client should be: unknown, never the proxy
                 * (an allow_ips ACL refuses it; rate limits share one bucket). */
                memset(ip, 0, sizeof(*ip));
                return e;
            }
            *ip = a;
            text = e;
            if (!rw_cidr_match_any(cfg->trusted_proxies, cfg->ntrusted_proxies, &a))
                return text;
            end = comma > h->value.p ? comma - 1 : comma;
        }
    }
    return text;
}

/* The client address, once per run. */
static void client_ip(run_ctx *x)
{
    if (x->ip_done)
        return;
    x->ip_done = true;
    x->ip_text = rw_client_ip(x->f->cfg, x->in->rq, x->in->peer, x->in->peer_len, &x->ip);
}

/* The only header called name: NULL when absent, *dup set when repeated. */
static const rw_http_header *single_header(const rw_http_request *rq, const char *name, bool *dup)
{
    size_t len = strlen(name);
    const rw_http_header *found = NULL;
    for (size_t i = 0; i < rq->nheaders; i++) {
        if (rq->headers[i].name.len != len || strncasecmp(rq->headers[i].name.p, name, len) != 0)
            continue;
        if (found != NULL)
            *dup = true;
        found = &rq->headers[i];
    }
    return found;
}

/* name=value in a query string (no percent-decoding: keys and tokens are
 * URL-safe); *dup set when the parameter is repeated. */
static bool query_param(rw_str q, const char *name, rw_str *out, bool *dup)
{
    size_t nl = strlen(name);
    const char *p = q.p, *end = q.p + q.len;
    bool found = false;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (amp == NULL)
            amp = end;
        if ((size_t)(amp - p) >= nl && memcmp(p, name, nl) == 0 && (p + nl == amp || p[nl] == '=')) {
            if (found)
                *dup = true;
            found = true;
            *out = p + nl == amp ? (rw_str){amp, 0} : (rw_str){p + nl + 1, (size_t)(amp - p - nl - 1)};
        }
        p = amp + 1;
    }
    return found;
}

/* The next "name=value" pair of a Cookie header value from *p (trimmed);
 * false at the end. */
static bool cookie_next(const char **p, const char *end, rw_str *pair)
{
    while (*p < end && (**p == ' ' || **p == ';'))
        (*p)++;
    if (*p >= end)
        return false;
    const char *semi = memchr(*p, ';', (size_t)(end - *p));
    if (semi == NULL)
        semi = end;
    *pair = trim(*p, semi);
    *p = semi;
    return true;
}

static bool cookie_is(rw_str pair, const char *name, size_t nl)
{
    return pair.len > nl && pair.p[nl] == '=' && memcmp(pair.p, name, nl) == 0;
}

static bool cookie_value(const rw_http_request *rq, const char *name, rw_str *out, bool *dup)
{
    size_t nl = strlen(name);
    bool found = false;
    for (size_t i = 0; i < rq->nheaders; i++) {
        if (!rw_str_ieq(rq->headers[i].name, "cookie"))
            continue;
        const char *p = rq->headers[i].value.p, *end = p + rq->headers[i].value.len;
        rw_str pair;
        while (cookie_next(&p, end, &pair)) {
            if (!cookie_is(pair, name, nl))
                continue;
            if (found)
                *dup = true;
            found = true;
            *out = trim(pair.p + nl + 1, pair.p + pair.len);
        }
    }
    return found;
}

/* The credential a filter reads. *dup is set when it is given more than once:
 * the request is refused then, as the upstream might read another copy than
 * the one verified. */
static bool credential(const rw_http_request *rq, int from, const char *name, rw_str *out, bool *dup)
{
    *dup = false;
    if (from == RW_FROM_BEARER) {
        const rw_http_header *h = single_header(rq, "authorization", dup);
        if (h == NULL || h->value.len < 7 || strncasecmp(h->value.p, "bearer ", 7) != 0)
            return false;
        *out = trim(h->value.p + 7, h->value.p + h->value.len);
        return out->len > 0;
    }
    if (from == RW_FROM_HEADER) {
        const rw_http_header *h = single_header(rq, name, dup);
        if (h == NULL)
            return false;
        *out = h->value;
        return out->len > 0;
    }
    if (from == RW_FROM_QUERY)
        return query_param(rq->query, name, out, dup) && out->len > 0;
    return cookie_value(rq, name, out, dup) && out->len > 0;
}

static void add_header(run_ctx *x, const char *name, const char *value, size_t len)
{
    rw_filter_result *o = x->out;
    for (uint32_t i = 0; i < o->nadd; i++) { /* a later filter's value wins */
        if (o->add[i].name.len == strlen(name) &&
            strncasecmp(o->add[i].name.p, name, o->add[i].name.len) == 0) {
            o->add[i].value = (rw_str){value, len};
            return;
        }
    }
    if (o->nadd < RW_FILTER_MAX_ADD)
        o->add[o->nadd++] = (rw_filter_hdr){{name, strlen(name)}, {value, len}};
}

/* Room in the worker's value scratch, or NULL. */
static char *values_room(rw_filter_worker *fw, size_t need)
{
    if (need > SCRATCH_VALUES - fw->values_len)
        return NULL;
    return fw->values + fw->values_len;
}

/* The query without every name=... parameter (hide_credentials). */
static void hide_query_param(run_ctx *x, const char *name)
{
    rw_filter_result *o = x->out;
    rw_str q = o->query_set ? o->query : x->in->rq->query;
    char *buf = values_room(x->fw, q.len);
    if (buf == NULL)
        return;
    size_t nl = strlen(name), n = 0;
    const char *p = q.p, *end = q.p + q.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (amp == NULL)
            amp = end;
        bool drop = (size_t)(amp - p) >= nl && memcmp(p, name, nl) == 0 && (p + nl == amp || p[nl] == '=');
        if (!drop) {
            if (n > 0)
                buf[n++] = '&';
            memcpy(buf + n, p, (size_t)(amp - p));
            n += (size_t)(amp - p);
        }
        p = amp + 1;
    }
    x->fw->values_len += (uint32_t)n;
    o->query = (rw_str){buf, n};
    o->query_set = true;
}

/* Every Cookie pair but name's, joined, as one Cookie header (the route strips
 * the client's Cookie headers). */
static void hide_cookie(run_ctx *x, const char *name)
{
    const rw_http_request *rq = x->in->rq;
    size_t total = 0, nl = strlen(name), n = 0;
    for (size_t i = 0; i < rq->nheaders; i++)
        if (rw_str_ieq(rq->headers[i].name, "cookie"))
            total += rq->headers[i].value.len + 2;
    char *buf = values_room(x->fw, total);
    if (buf == NULL || total == 0)
        return;
    for (size_t i = 0; i < rq->nheaders; i++) {
        if (!rw_str_ieq(rq->headers[i].name, "cookie"))
            continue;
        const char *p = rq->headers[i].value.p, *end = p + rq->headers[i].value.len;
        rw_str pair;
        while (cookie_next(&p, end, &pair)) {
            if (cookie_is(pair, name, nl) || pair.len == 0)
                continue;
            if (n > 0) {
                buf[n++] = ';';
                buf[n++] = ' ';
            }
            memcpy(buf + n, pair.p, pair.len);
            n += pair.len;
        }
    }
    x->fw->values_len += (uint32_t)n;
    if (n > 0)
        add_header(x, "Cookie", buf, n);
}

static int run_key_auth(run_ctx *x, const rw_key_auth_cfg *k)
{
    rw_str key;
    bool dup;
    bool have = credential(x->in->rq, k->from, k->name, &key, &dup);
    if (dup) {
        extra_add(x->out, "WWW-Authenticate: Key realm=\"ringway\", error=\"invalid_key\"\r\n");
        return deny(x, 401, "API key given more than once", RW_AF_KEY_INVALID);
    }
    if (!have) {
        extra_add(x->out, "WWW-Authenticate: Key realm=\"ringway\"\r\n");
        return deny(x, 401, "missing API key", RW_AF_KEY_MISSING);
    }
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256((const uint8_t *)key.p, key.len, d);
    const rw_filters *f = x->f;
    for (uint32_t s = (uint32_t)digest_hash(d) & f->keys_mask; f->keys[s].consumer >= 0;
         s = (s + 1) & f->keys_mask) {
        if (CRYPTO_memcmp(f->keys[s].digest, d, sizeof(d)) == 0) {
            x->out->consumer = f->keys[s].consumer;
            x->cred = key;
            if (k->hide_credentials && k->from == RW_FROM_QUERY)
                hide_query_param(x, k->name);
            return 0;
        }
    }
    extra_add(x->out, "WWW-Authenticate: Key realm=\"ringway\", error=\"invalid_key\"\r\n");
    return deny(x, 401, "invalid API key", RW_AF_KEY_INVALID);
}

/* Verifies tok, through the worker's cache for asymmetric signatures. */
/* A cache hit for tok under jr: the time claims again, then the stored
 * headers and consumer. Returns RW_JWT_OK, an error code, or -1 on a miss. */
static int jwt_cache_hit(run_ctx *x, const filter_rt *fr, uint64_t rot, const uint8_t *d)
{
    const rw_jwt_cfg *j = &fr->cfg->u.jwt;
    const jwt_rt *jr = &fr->u.jwt;
    rw_filter_worker *fw = x->fw;
    jwt_cache_entry *e = &fw->cache[digest_hash(d) & (JWT_CACHE_SLOTS - 1)];
    if (!e->valid || e->ks_id != jr->id || e->ks_rot != rot ||
        CRYPTO_memcmp(e->digest, d, SHA256_DIGEST_LENGTH) != 0)
        return -1;
    int rc = rw_jwt_check_times(&jr->pol, &e->times, x->in->now_s);
    if (rc != RW_JWT_OK)
        return rc;
    fw->stats.jwt_cache_hits++;
    size_t off = 0;
    for (size_t i = 0; i < j->nclaims && i < JWT_CACHE_CLAIMS; i++) {
        if (e->vlen[i] < 0)
            continue;
        /* copied out: another filter of this request may reuse the slot */
        char *buf = values_room(fw, (size_t)e->vlen[i]);
        if (buf == NULL)
            break;
        memcpy(buf, e->values + off, (size_t)e->vlen[i]);
        fw->values_len += (uint32_t)e->vlen[i];
        add_header(x, j->claims_to_headers[i].value, buf, (size_t)e->vlen[i]);
        off += (size_t)e->vlen[i];
    }
    if (j->consumer_claim != NULL)
        x->out->consumer = e->consumer;
    return RW_JWT_OK;
}

static void jwt_cache_store(rw_filter_worker *fw, const filter_rt *fr, uint64_t rot, const uint8_t *d,
                            const rw_jwt_token *t, const rw_str *vals, const bool *have, int consumer)
{
    const rw_jwt_cfg *j = &fr->cfg->u.jwt;
    size_t total = 0;
    for (size_t i = 0; i < j->nclaims; i++)
        total += have[i] ? vals[i].len : 0;
    if (j->nclaims > JWT_CACHE_CLAIMS || total > JWT_CACHE_VALUES)
        return; /* too big to keep: verified every time */
    if (fw->cache == NULL && (fw->cache = calloc(JWT_CACHE_SLOTS, sizeof(*fw->cache))) == NULL)
        return; /* once per worker */
    jwt_cache_entry *e = &fw->cache[digest_hash(d) & (JWT_CACHE_SLOTS - 1)];
    memcpy(e->digest, d, SHA256_DIGEST_LENGTH);
    e->ks_id = fr->u.jwt.id;
    e->ks_rot = rot;
    e->times = *t;
    e->times.payload = NULL;
    e->times.payload_len = 0;
    e->consumer = consumer;
    size_t off = 0;
    for (size_t i = 0; i < j->nclaims; i++) {
        e->vlen[i] = have[i] ? (int16_t)vals[i].len : -1;
        if (have[i]) {
            memcpy(e->values + off, vals[i].p, vals[i].len);
            off += vals[i].len;
        }
    }
    e->valid = true;
}

static int jwt_refuse(run_ctx *x, int rc)
{
    extra_add(
        x->out,
        "WWW-Authenticate: Bearer realm=\"ringway\", error=\"invalid_token\", error_description=\"%s\"\r\n",
        rw_jwt_strerror(rc));
    return deny(x, 401, rw_jwt_strerror(rc), jwt_reason(rc));
}

static int run_jwt(run_ctx *x, const filter_rt *fr)
{
    const rw_jwt_cfg *j = &fr->cfg->u.jwt;
    const jwt_rt *jr = &fr->u.jwt;
    rw_filter_worker *fw = x->fw;
    rw_str tok;
    bool dup;
    bool have = credential(x->in->rq, j->from, j->from_name, &tok, &dup);
    if (dup) {
        extra_add(x->out, "WWW-Authenticate: Bearer realm=\"ringway\", error=\"invalid_request\", "
                          "error_description=\"token given more than once\"\r\n");
        return deny(x, 400, "token given more than once", RW_AF_TOKEN_INVALID); /* RFC 6750 3.1 */
    }
    if (!have) {
        extra_add(x->out, "WWW-Authenticate: Bearer realm=\"ringway\"\r\n");
        return deny(x, 401, "missing token", RW_AF_TOKEN_MISSING);
    }
    if (tok.len > RW_JWT_MAX_TOKEN)
        return jwt_refuse(x, RW_JWT_ETOOLARGE);
    x->cred = tok;
    if (j->hide_credentials && j->from == RW_FROM_QUERY)
        hide_query_param(x, j->from_name);
    else if (j->hide_credentials && j->from == RW_FROM_COOKIE)
        hide_cookie(x, j->from_name);
    /* The rotation count is read before the set: the refresher publishes a
     * new set before counting it, so a cache entry is never filed under a
     * newer rotation than the set that verified it. */
    uint64_t rot = jr->jwks != NULL ? rw_jwks_rotations(jr->jwks) : 0;
    const rw_jwt_keyset *ks = jr->jwks != NULL ? rw_jwks_current(jr->jwks) : jr->static_ks;
    bool use_cache = j->cache_entries > 0;
    uint8_t d[SHA256_DIGEST_LENGTH];
    if (use_cache && fw->cache != NULL) {
        SHA256((const uint8_t *)tok.p, tok.len, d);
        int rc = jwt_cache_hit(x, fr, rot, d);
        if (rc == RW_JWT_OK)
            return 0;
        if (rc > 0)
            return jwt_refuse(x, rc);
    }
    rw_jwt_token t;
    int rc = rw_jwt_verify(ks, &jr->pol, tok.p, tok.len, x->in->now_s, fw->token_scratch,
                           sizeof(fw->token_scratch), &t);
    if (rc != RW_JWT_OK)
        return jwt_refuse(x, rc);
    fw->stats.jwt_verified++;
    rw_str vals[JWT_CACHE_CLAIMS];
    bool got[JWT_CACHE_CLAIMS] = {false};
    for (size_t i = 0; i < j->nclaims; i++) {
        char *buf = fw->values + fw->values_len;
        ssize_t n = rw_jwt_claim_text(t.payload, t.payload_len, j->claims_to_headers[i].name, buf,
                                      SCRATCH_VALUES - fw->values_len);
        if (n < 0)
            continue; /* absent or not header-safe: the header is simply not set */
        fw->values_len += (uint32_t)n;
        add_header(x, j->claims_to_headers[i].value, buf, (size_t)n);
        if (i < JWT_CACHE_CLAIMS) {
            vals[i] = (rw_str){buf, (size_t)n};
            got[i] = true;
        }
    }
    if (j->consumer_claim != NULL) {
        char name[256];
        ssize_t n = rw_jwt_claim_text(t.payload, t.payload_len, j->consumer_claim, name, sizeof(name));
        int c = n > 0 ? rw__filters_consumer_by_name(x->f, name, (size_t)n) : -1;
        if (c < 0) {
            extra_add(x->out, "WWW-Authenticate: Bearer realm=\"ringway\", error=\"invalid_token\", "
                              "error_description=\"unknown consumer\"\r\n");
            return deny(x, 401, "unknown consumer", RW_AF_CONSUMER_UNKNOWN);
        }
        x->out->consumer = c;
    }
    if (use_cache) { /* HMAC tokens too: a hit costs one SHA-256 instead of base64url, JSON and HMAC */
        if (fw->cache == NULL)
            SHA256((const uint8_t *)tok.p, tok.len, d);
        jwt_cache_store(fw, fr, rot, d, &t, vals, got, j->consumer_claim != NULL ? x->out->consumer : -1);
    }
    return 0;
}

static bool in_groups(const rw_consumer_cfg *c, char *const *groups, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t g = 0; g < c->ngroups; g++)
            if (strcmp(groups[i], c->groups[g]) == 0)
                return true;
    return false;
}

static int run_acl_ip(run_ctx *x, const rw_acl_cfg *a)
{
    if (a->nallow_ips == 0 && a->ndeny_ips == 0)
        return 0;
    client_ip(x);
    if (x->ip.family == 0 || rw_cidr_match_any(a->deny_ips, a->ndeny_ips, &x->ip) ||
        (a->nallow_ips > 0 && !rw_cidr_match_any(a->allow_ips, a->nallow_ips, &x->ip))) {
        return deny(x, 403, "address not allowed", RW_AF_IP_DENIED);
    }
    return 0;
}

static int run_acl_groups(run_ctx *x, const rw_acl_cfg *a)
{
    if (a->nallow_groups == 0 && a->ndeny_groups == 0)
        return 0;
    if (x->out->consumer < 0) {
        return deny(x, 403, "no consumer identified", RW_AF_CONSUMER_MISSING);
    }
    const rw_consumer_cfg *c = &x->f->cfg->consumers[x->out->consumer];
    if (in_groups(c, a->deny_groups, a->ndeny_groups) ||
        (a->nallow_groups > 0 && !in_groups(c, a->allow_groups, a->nallow_groups))) {
        return deny(x, 403, "consumer not allowed", RW_AF_CONSUMER_DENIED);
    }
    return 0;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

/* The bucket key: a hash of the parts the limit is keyed by. Stable across
 * nodes (global limits share keys through Redis). */
static uint64_t rl_key(run_ctx *x, const rw_rate_limit_cfg *r)
{
    uint64_t h = 0x52574c494d4954ull; /* "RWLIMIT" */
    const rw_config *cfg = x->f->cfg;
    bool need_ip = (r->key & RW_RLK_IP) || ((r->key & RW_RLK_CONSUMER) && x->out->consumer < 0) ||
                   ((r->key & RW_RLK_CRED) && x->cred.len == 0);
    if (r->key & RW_RLK_CONSUMER && x->out->consumer >= 0) {
        const char *id = cfg->consumers[x->out->consumer].id;
        h = mix(h, 1 ^ rw_hash64(id, strlen(id)));
    }
    if (r->key & RW_RLK_CRED && x->cred.len > 0)
        h = mix(h, 2 ^ rw_hash64(x->cred.p, x->cred.len));
    if (need_ip && cfg->ntrusted_proxies == 0) {
        /* the peer's text is canonical (inet_ntop at accept): no parse needed */
        h = mix(h, 3 ^ rw_hash64(x->in->peer, x->in->peer_len));
    } else if (need_ip) {
        client_ip(x); /* an X-Forwarded-For entry may be written several ways */
        h = mix(h, 6 ^ rw_hash64(x->ip.addr, sizeof(x->ip.addr)) ^ x->ip.family);
    }
    if (r->key & RW_RLK_HEADER) {
        const rw_http_header *hd = rw_http_find_header(x->in->rq->headers, x->in->rq->nheaders, r->header);
        h = mix(h, 4 ^ (hd ? rw_hash64(hd->value.p, hd->value.len) : 0));
    }
    if (r->key & RW_RLK_ROUTE)
        h = mix(h, 5 ^ x->f->routes[x->in->route].name_hash);
    return h ? h : 1;
}

static int run_rate_limit(run_ctx *x, const filter_rt *fr, rw_rl_decision *best, bool *have_best)
{
    const rw_rate_limit_cfg *r = &fr->cfg->u.rate_limit;
    const rl_rt *rr = &fr->u.rl;
    const rw_rl_params *p = &rr->base;
    if (r->tier && x->out->consumer >= 0) {
        int ti = x->f->cfg->consumers[x->out->consumer].tier_index;
        if (ti >= 0) {
            p = &rr->tiers[ti];
            if (p->rate <= 0)
                return 0; /* an unlimited tier */
        }
    }
    if (p->rate <= 0)
        return 0; /* unlimited, or tier-only without a tier */
    if (r->scope == RW_RL_GLOBAL) {
        rw_rl_sync *s = rw_rl_global_sync();
        rw_rl_sync_stats st;
        if (s != NULL && !rw_rl_sync_up(s) &&
            (rw_rl_sync_get_stats(s, &st), st.rounds > 0 || st.failures > 0)) {
            /* down (not merely still connecting after a start or a reload) */
            int policy = rw_rl_global_policy();
            x->fw->stats.rl_redis_fallback++;
            if (policy == RW_REDIS_ALLOW)
                return 0;
            if (policy == RW_REDIS_DENY) {
                extra_add(x->out, "Retry-After: 1\r\n");
                return refuse(x, 503, "rate limit state unavailable");
            }
        }
    }
    rw_rl_decision d;
    uint64_t key = rl_key(x, r);
    if (!rw_rl_check(x->fw->shard, rw_rl_entry_table(rr->reg), key, p, x->in->now_ms * 1000000u, &d)) {
        rr->stats[x->fw->id].rejected++;
        x->out->ratelimit = RW_RLS_LIMITED;
        extra_add(
            x->out,
            "Retry-After: %u\r\nRateLimit-Limit: %u\r\nRateLimit-Remaining: 0\r\nRateLimit-Reset: %u\r\n",
            d.retry_after_s, d.limit, d.retry_after_s);
        return refuse(x, 429, "rate limit exceeded");
    }
    x->out->ratelimit = RW_RLS_ALLOWED;
    if (r->headers && (!*have_best || d.remaining < best->remaining)) {
        *best = d;
        *have_best = true;
    }
    return 0;
}

int rw_filters_run(rw_filter_worker *fw, const rw_filters *f, const rw_filter_input *in,
                   rw_filter_result *out)
{
    const route_rt *rr = &f->routes[in->route];
    run_ctx x = {.fw = fw, .f = f, .in = in, .out = out};
    out->status = 0;
    out->error = NULL;
    out->extra_len = 0;
    out->extra[0] = '\0';
    out->nadd = 0;
    out->consumer = -1;
    out->ratelimit = RW_RLS_NONE;
    out->auth_fail = RW_AF_NONE;
    out->query_set = false;
    fw->values_len = 0;
    /* phase 1: addresses */
    for (size_t i = 0; i < rr->n; i++)
        if (rr->list[i]->cfg->kind == RW_FILTER_ACL && run_acl_ip(&x, &rr->list[i]->cfg->u.acl))
            return out->status;
    /* phase 2: authentication (every auth filter of the route must pass) */
    for (size_t i = 0; i < rr->n; i++) {
        const filter_rt *fr = rr->list[i];
        if (fr->cfg->kind == RW_FILTER_KEY_AUTH && run_key_auth(&x, &fr->cfg->u.key_auth))
            return out->status;
        if (fr->cfg->kind == RW_FILTER_JWT && run_jwt(&x, fr))
            return out->status;
    }
    /* a verified client certificate listed by a consumer: only when no
       key_auth/jwt identified one (a hash probe; no table, no cost) */
    if (out->consumer < 0 && in->cert_sha256.len > 0)
        out->consumer = rw__filters_consumer_by_cert(f, in->cert_sha256);
    /* phase 3: groups */
    for (size_t i = 0; i < rr->n; i++)
        if (rr->list[i]->cfg->kind == RW_FILTER_ACL && run_acl_groups(&x, &rr->list[i]->cfg->u.acl))
            return out->status;
    /* phase 4: rate limits */
    rw_rl_decision best = {0};
    bool have_best = false;
    for (size_t i = 0; i < rr->n; i++)
        if (rr->list[i]->cfg->kind == RW_FILTER_RATE_LIMIT &&
            run_rate_limit(&x, rr->list[i], &best, &have_best))
            return out->status;
    if (have_best)
        extra_add(out, "RateLimit-Limit: %u\r\nRateLimit-Remaining: %u\r\nRateLimit-Reset: %u\r\n",
                  best.limit, best.remaining, best.reset_s);
    if (out->consumer >= 0) {
        const rw_consumer_cfg *c = &f->cfg->consumers[out->consumer];
        add_header(&x, "X-Consumer-ID", c->id, strlen(c->id));
        add_header(&x, "X-Consumer-Username", c->name, strlen(c->name));
        if (c->ngroups > 0)
            add_header(&x, "X-Consumer-Groups", f->consumer_groups[out->consumer],
                       strlen(f->consumer_groups[out->consumer]));
    }
    return 0;
}
