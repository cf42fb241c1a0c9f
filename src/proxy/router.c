/* router.c - compiled route matcher.
 *
 * Built once per config snapshot (allocates), then read-only: rw_router_match
 * takes no lock and allocates nothing itself, so every worker may call it at
 * once. (Regex predicates go through the C library's regexec, which on glibc
 * takes a per-regex lock and may allocate internally; prefer exact and prefix
 * paths on hot routes.)
 *
 * Path classes, best first:
 *   1. exact paths: open-addressing hash table, path -> list of routes;
 *   2. prefixes: a trie of path segments. Edges live in one open-addressing
 *      hash table keyed by (parent node, segment), so a lookup costs one probe
 *      per path segment whatever the number of routes. Each node keeps two
 *      route lists: prefixes written with a trailing '/' ("/api/") and without
 *      ("/api"). "/api" matches "/api", "/api/" and "/api/x" (never "/apix");
 *      "/api/" is a plain string prefix, matching the same except "/api"
 *      itself (as nginx locations and Envoy prefixes do), and is the longer
 *      prefix, so it is tried first. Matching walks down to the deepest node the path reaches,
 *      then back up through parent links: longest prefix first, falling back
 *      to shorter ones when no route of a node passes its other predicates;
 *   3. regex paths, routes in config order (POSIX search semantics: anchor
 *      with ^...$ to match the whole path);
 *   4. routes without paths.
 * Within one class level (one exact path, one trie node list, all matching
 * regex routes, all path-less routes) the candidates whose host, method,
 * header and query predicates all match are ranked by: host score (exact host
 * > wildcard with the longer suffix > "*" > route without hosts), then the
 * number of predicates (methods counts as one, plus each header and query
 * predicate), then config order. The first level with a winner decides.
 *
 * Query predicates compare names and values after percent-decoding ('+' is a
 * space, an invalid %-escape stays literal); names are case-sensitive. A regex
 * on a value that needs decoding and is longer than QUERY_DECODE_MAX bytes
 * does not match.
 *
 * Lifetime: the router borrows every string and regex_t from the rw_config it
 * was built from; it owns only its own tables. */
#include "ringway/common.h"
#include "ringway/route.h"

#include <stdio.h>
#include <stdlib.h>

#include "ringway/lb.h"

#define QUERY_DECODE_MAX 1024
#define NO_NODE UINT32_MAX

enum { HOST_EXACT = 0, HOST_WILD, HOST_ANY };

typedef struct r_host {
    const char *s; /* exact name, or the suffix ".example.com" of "*.example.com" */
    uint32_t len;
    uint32_t kind;
} r_host;

typedef struct r_kv {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
    int kind; /* enum rw_value_kind */
    const regex_t *re;
} r_kv;

typedef struct r_route {
    uint32_t methods;
    uint32_t npreds;
    uint32_t host_off, nhosts;
    uint32_t hdr_off, nhdr;
    uint32_t q_off, nq;
    uint32_t rx_off, nrx;
} r_route;

/* A list of route indices in r->lists; last is used while building only. */
typedef struct r_list {
    uint32_t off, cnt;
    uint32_t last;
} r_list;

typedef struct r_exact {
    const char *s; /* NULL: empty slot */
    size_t len;
    uint64_t hash;
    r_list list;
} r_exact;

typedef struct r_node {
    uint32_t parent;
    r_list lv[2]; /* [0]: prefixes with a trailing '/', [1]: without */
} r_node;

typedef struct r_edge {
    uint64_t hash;
    const char *seg;
    uint32_t seg_len;
    uint32_t parent;
    uint32_t child; /* 0: empty slot (the root is never a child) */
} r_edge;

struct rw_router {
    const rw_config *cfg;
    uint32_t nroutes;
    r_route *routes;
    r_host *hosts;
    r_kv *kvs;
    const regex_t **rx;
    uint32_t *lists;
    r_exact *xtab;
    uint32_t xmask;
    uint32_t nexact;
    r_node *nodes;
    uint32_t nnodes;
    uint32_t nprefix;
    r_edge *etab;
    uint32_t emask;
    uint32_t *rx_routes;
    uint32_t nrx_routes;
    uint32_t *pathless;
    uint32_t npathless;
};

/* ---- small helpers ------------------------------------------------------ */

static inline uint64_t edge_hash(uint32_t parent, const char *seg, size_t len)
{
    return rw_mix64(rw_hash64(seg, len) + (uint64_t)parent * 0x9E3779B97F4A7C15ULL);
}

static uint32_t pow2_at_least(size_t n)
{
    uint32_t c = 8;
    while (c < n)
        c <<= 1;
    return c;
}

static bool re_match_slice(const regex_t *re, const char *s, size_t len)
{
    regmatch_t m[1];
    m[0].rm_so = 0;
    m[0].rm_eo = (regoff_t)len;
    return regexec(re, len != 0 ? s : "", 1, m, REG_STARTEND) == 0;
}

/* ---- build -------------------------------------------------------------- */

static r_exact *exact_find(const rw_router *r, const char *s, size_t len, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & r->xmask;; i = (i + 1) & r->xmask) {
        r_exact *e = &r->xtab[i];
        if (e->s == NULL)
            return e;
        if (e->hash == h && e->len == len && memcmp(e->s, s, len) == 0)
            return e;
    }
}

static uint32_t edge_find(const rw_router *r, uint32_t parent, const char *seg, size_t len, r_edge **slot)
{
    uint64_t h = edge_hash(parent, seg, len);
    for (uint32_t i = (uint32_t)h & r->emask;; i = (i + 1) & r->emask) {
        r_edge *e = &r->etab[i];
        if (e->child == 0) {
            if (slot != NULL) {
                *slot = e;
                e->hash = h;
            }
            return NO_NODE;
        }
        if (e->hash == h && e->parent == parent && e->seg_len == len && memcmp(e->seg, seg, len) == 0)
            return e->child;
    }
}

/* Returns the trie list for a prefix path, creating nodes on the way. */
static r_list *prefix_list(rw_router *r, const char *v)
{
    size_t len = strlen(v);
    uint32_t node = 0;
    int lv = 1;
    if (len > 1) {
        if (v[len - 1] == '/') {
            lv = 0;
            len--;
        }
        /* segments of v[1..len): "/a/b" -> a, b; "/" (from "//") -> "" */
        const char *p = v + 1, *end = v + len;
        for (;;) {
            const char *slash = memchr(p, '/', (size_t)(end - p));
            const char *se = slash != NULL ? slash : end;
            r_edge *slot = NULL;
            uint32_t child = edge_find(r, node, p, (size_t)(se - p), &slot);
            if (child == NO_NODE) {
                child = r->nnodes++;
                r->nodes[child].parent = node;
                slot->seg = p;
                slot->seg_len = (uint32_t)(se - p);
                slot->parent = node;
                slot->child = child;
            }
            node = child;
            if (slash == NULL)
                break;
            p = slash + 1;
        }
    }
    return &r->nodes[node].lv[lv];
}

static r_list *path_list(rw_router *r, const rw_path_cfg *pc)
{
    if (pc->kind == RW_PATH_EXACT) {
        size_t len = strlen(pc->value);
        uint64_t h = rw_hash64(pc->value, len);
        r_exact *e = exact_find(r, pc->value, len, h);
        if (e->s == NULL) {
            e->s = pc->value;
            e->len = len;
            e->hash = h;
        }
        return &e->list;
    }
    return prefix_list(r, pc->value);
}

static void list_count(r_list *l, uint32_t route)
{
    if (l->last == route + 1)
        return;
    l->last = route + 1;
    l->cnt++;
}

static void list_assign(r_list *l, uint32_t *off)
{
    l->off = *off;
    *off += l->cnt;
    l->cnt = 0;
    l->last = 0;
}

static void list_push(rw_router *r, r_list *l, uint32_t route)
{
    if (l->last == route + 1)
        return;
    l->last = route + 1;
    r->lists[l->off + l->cnt++] = route;
}

static int check_route(const rw_route_cfg *rt, char *err, size_t errlen)
{
    const char *name = rt->name != NULL ? rt->name : "?";
    for (size_t j = 0; j < rt->npaths; j++) {
        const rw_path_cfg *pc = &rt->paths[j];
        if (pc->kind != RW_PATH_EXACT && pc->kind != RW_PATH_PREFIX && pc->kind != RW_PATH_REGEX) {
            snprintf(err, errlen, "route %s: unknown path kind %d", name, pc->kind);
            return -1;
        }
        if (pc->kind == RW_PATH_REGEX ? pc->re == NULL : pc->value == NULL) {
            snprintf(err, errlen, "route %s: path %zu has no %s", name, j,
                     pc->kind == RW_PATH_REGEX ? "compiled regex" : "value");
            return -1;
        }
        if (pc->kind == RW_PATH_PREFIX && pc->value[0] != '/') {
            snprintf(err, errlen, "route %s: prefix \"%s\" must start with '/'", name, pc->value);
            return -1;
        }
    }
    for (int q = 0; q < 2; q++) {
        const rw_kv_match *kv = q ? rt->query : rt->headers;
        size_t n = q ? rt->nquery : rt->nheaders;
        for (size_t j = 0; j < n; j++) {
            if (kv[j].name == NULL || (kv[j].kind == RW_VALUE_EXACT && kv[j].value == NULL) ||
                (kv[j].kind == RW_VALUE_REGEX && kv[j].re == NULL) ||
                (kv[j].kind != RW_VALUE_EXACT && kv[j].kind != RW_VALUE_REGEX &&
                 kv[j].kind != RW_VALUE_PRESENT)) {
                snprintf(err, errlen, "route %s: invalid %s predicate %zu", name, q ? "query" : "header", j);
                return -1;
            }
        }
    }
    for (size_t j = 0; j < rt->nhosts; j++) {
        if (rt->hosts[j] == NULL) {
            snprintf(err, errlen, "route %s: empty host", name);
            return -1;
        }
    }
    return 0;
}

static void fill_kv(r_kv *out, const rw_kv_match *kv)
{
    out->name = kv->name;
    out->name_len = strlen(kv->name);
    out->value = kv->value != NULL ? kv->value : "";
    out->value_len = strlen(out->value);
    out->kind = kv->kind;
    out->re = kv->re;
}

rw_router *rw_router_build(const rw_config *cfg, char *err, size_t errlen)
{
    if (errlen > 0)
        err[0] = '\0';
    rw_router *r = calloc(1, sizeof *r);
    if (r == NULL)
        goto nomem;
    r->cfg = cfg;
    r->nroutes = (uint32_t)cfg->nroutes;
    if (cfg->nroutes >= UINT32_MAX / 2) {
        snprintf(err, errlen, "router: too many routes");
        goto fail;
    }

    size_t nhosts = 0, nkv = 0, nrx = 0, nexact = 0, nsegs = 0, nrxr = 0, npl = 0;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const rw_route_cfg *rt = &cfg->routes[i];
        if (check_route(rt, err, errlen) != 0)
            goto fail;
        nhosts += rt->nhosts;
        nkv += rt->nheaders + rt->nquery;
        if (rt->npaths == 0)
            npl++;
        bool has_rx = false;
        for (size_t j = 0; j < rt->npaths; j++) {
            const rw_path_cfg *pc = &rt->paths[j];
            if (pc->kind == RW_PATH_REGEX) {
                nrx++;
                has_rx = true;
            } else if (pc->kind == RW_PATH_EXACT) {
                nexact++;
            } else {
                r->nprefix++;
                nsegs++;
                for (const char *c = pc->value + 1; *c; c++)
                    nsegs += *c == '/';
            }
        }
        nrxr += has_rx;
    }

    r->routes = calloc(cfg->nroutes + 1, sizeof *r->routes);
    r->hosts = calloc(nhosts + 1, sizeof *r->hosts);
    r->kvs = calloc(nkv + 1, sizeof *r->kvs);
    r->rx = calloc(nrx + 1, sizeof *r->rx);
    r->rx_routes = calloc(nrxr + 1, sizeof *r->rx_routes);
    r->pathless = calloc(npl + 1, sizeof *r->pathless);
    r->xmask = pow2_at_least(nexact * 2) - 1;
    r->xtab = calloc((size_t)r->xmask + 1, sizeof *r->xtab);
    r->emask = pow2_at_least(nsegs * 2) - 1;
    r->etab = calloc((size_t)r->emask + 1, sizeof *r->etab);
    r->nodes = calloc(nsegs + 1, sizeof *r->nodes);
    if (r->routes == NULL || r->hosts == NULL || r->kvs == NULL || r->rx == NULL || r->rx_routes == NULL ||
        r->pathless == NULL || r->xtab == NULL || r->etab == NULL || r->nodes == NULL)
        goto nomem;
    r->nexact = (uint32_t)nexact;
    r->nnodes = 1; /* the root */
    r->nodes[0].parent = NO_NODE;

    /* Per-route predicates, and counting pass over the path lists. */
    uint32_t ho = 0, ko = 0, xo = 0;
    for (uint32_t i = 0; i < r->nroutes; i++) {
        const rw_route_cfg *rt = &cfg->routes[i];
        r_route *rr = &r->routes[i];
        rr->methods = rt->methods;
        rr->npreds = (uint32_t)RW_MIN((rt->methods != 0) + rt->nheaders + rt->nquery, (size_t)0xffff);
        rr->host_off = ho;
        rr->nhosts = (uint32_t)rt->nhosts;
        for (size_t j = 0; j < rt->nhosts; j++) {
            r_host *h = &r->hosts[ho++];
            const char *s = rt->hosts[j];
            if (strcmp(s, "*") == 0) {
                h->kind = HOST_ANY;
                h->s = s;
                h->len = 0;
            } else if (s[0] == '*' && s[1] == '.') {
                h->kind = HOST_WILD;
                h->s = s + 1;
                h->len = (uint32_t)strlen(s + 1);
            } else {
                h->kind = HOST_EXACT;
                h->s = s;
                h->len = (uint32_t)strlen(s);
            }
        }
        rr->hdr_off = ko;
        rr->nhdr = (uint32_t)rt->nheaders;
        for (size_t j = 0; j < rt->nheaders; j++)
            fill_kv(&r->kvs[ko++], &rt->headers[j]);
        rr->q_off = ko;
        rr->nq = (uint32_t)rt->nquery;
        for (size_t j = 0; j < rt->nquery; j++)
            fill_kv(&r->kvs[ko++], &rt->query[j]);
        rr->rx_off = xo;
        for (size_t j = 0; j < rt->npaths; j++) {
            const rw_path_cfg *pc = &rt->paths[j];
            if (pc->kind == RW_PATH_REGEX)
                r->rx[xo++] = pc->re;
            else
                list_count(path_list(r, pc), i);
        }
        rr->nrx = xo - rr->rx_off;
        if (rr->nrx > 0)
            r->rx_routes[r->nrx_routes++] = i;
        if (rt->npaths == 0)
            r->pathless[r->npathless++] = i;
    }

    uint32_t total = 0;
    for (uint32_t i = 0; i <= r->xmask; i++)
        if (r->xtab[i].s != NULL)
            total += r->xtab[i].list.cnt;
    for (uint32_t i = 0; i < r->nnodes; i++)
        total += r->nodes[i].lv[0].cnt + r->nodes[i].lv[1].cnt;
    r->lists = calloc((size_t)total + 1, sizeof *r->lists);
    if (r->lists == NULL)
        goto nomem;
    uint32_t off = 0;
    for (uint32_t i = 0; i <= r->xmask; i++)
        if (r->xtab[i].s != NULL)
            list_assign(&r->xtab[i].list, &off);
    for (uint32_t i = 0; i < r->nnodes; i++) {
        list_assign(&r->nodes[i].lv[0], &off);
        list_assign(&r->nodes[i].lv[1], &off);
    }
    for (uint32_t i = 0; i < r->nroutes; i++) {
        const rw_route_cfg *rt = &cfg->routes[i];
        for (size_t j = 0; j < rt->npaths; j++)
            if (rt->paths[j].kind != RW_PATH_REGEX)
                list_push(r, path_list(r, &rt->paths[j]), i);
    }
    return r;

nomem:
    snprintf(err, errlen, "router: out of memory");
fail:
    rw_router_free(r);
    return NULL;
}

void rw_router_free(rw_router *r)
{
    if (r == NULL)
        return;
    free(r->routes);
    free(r->hosts);
    free(r->kvs);
    free(r->rx);
    free(r->lists);
    free(r->xtab);
    free(r->nodes);
    free(r->etab);
    free(r->rx_routes);
    free(r->pathless);
    free(r);
}

/* ---- predicates --------------------------------------------------------- */

/* Host score: -1 no match, 0 route has no hosts, 1 "*", 2+suffix for a
 * wildcard, 0xffff for an exact name. */
static int host_score(const rw_router *r, const r_route *rr, rw_str host)
{
    if (rr->nhosts == 0)
        return 0;
    int best = -1;
    for (uint32_t i = 0; i < rr->nhosts; i++) {
        const r_host *h = &r->hosts[rr->host_off + i];
        switch (h->kind) {
        case HOST_EXACT:
            if (host.len == h->len && strncasecmp(host.p, h->s, h->len) == 0)
                return 0xffff;
            break;
        case HOST_WILD:
            /* ".example.com" needs at least one character of label before it */
            if (host.len > h->len && strncasecmp(host.p + host.len - h->len, h->s, h->len) == 0) {
                int s = 2 + (int)RW_MIN(h->len, 0xfff0u);
                if (s > best)
                    best = s;
            }
            break;
        default:
            if (best < 1)
                best = 1;
            break;
        }
    }
    return best;
}

static bool header_match(const r_kv *kv, const rw_route_input *in)
{
    for (size_t i = 0; i < in->nheaders; i++) {
        const rw_http_header *h = &in->headers[i];
        if (h->name.len != kv->name_len || strncasecmp(h->name.p, kv->name, kv->name_len) != 0)
            continue;
        switch (kv->kind) {
        case RW_VALUE_PRESENT:
            return true;
        case RW_VALUE_EXACT:
            if (h->value.len == kv->value_len && memcmp(h->value.p, kv->value, kv->value_len) == 0)
                return true;
            break;
        default:
            if (re_match_slice(kv->re, h->value.p, h->value.len))
                return true;
            break;
        }
    }
    return false;
}

/* Decodes the query-component byte at s[*i] ('+' -> ' ', %XX -> byte). */
static inline unsigned char qdec(const char *s, size_t len, size_t *i)
{
    unsigned char c = (unsigned char)s[*i];
    if (c == '+') {
        (*i)++;
        return ' ';
    }
    if (c == '%' && *i + 2 < len) {
        int hi = rw_hexval((unsigned char)s[*i + 1]);
        int lo = rw_hexval((unsigned char)s[*i + 2]);
        if (hi >= 0 && lo >= 0) {
            *i += 3;
            return (unsigned char)(hi << 4 | lo);
        }
    }
    (*i)++;
    return c;
}

/* Whether the decoded form of s[0..len) equals lit[0..litlen). */
static bool qdec_eq(const char *s, size_t len, const char *lit, size_t litlen)
{
    size_t i = 0, j = 0;
    while (i < len) {
        if (j >= litlen || (unsigned char)lit[j] != qdec(s, len, &i))
            return false;
        j++;
    }
    return j == litlen;
}

static bool qdec_regex(const regex_t *re, const char *s, size_t len)
{
    if (memchr(s, '%', len) == NULL && memchr(s, '+', len) == NULL)
        return re_match_slice(re, s, len);
    char buf[QUERY_DECODE_MAX];
    size_t i = 0, n = 0;
    while (i < len) {
        if (n == sizeof buf)
            return false;
        buf[n++] = (char)qdec(s, len, &i);
    }
    return re_match_slice(re, buf, n);
}

static bool query_match(const r_kv *kv, rw_str q)
{
    const char *p = q.p, *end = q.p + q.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (amp == NULL)
            amp = end;
        const char *eq = memchr(p, '=', (size_t)(amp - p));
        const char *ne = eq != NULL ? eq : amp;
        if (ne > p && qdec_eq(p, (size_t)(ne - p), kv->name, kv->name_len)) {
            const char *v = eq != NULL ? eq + 1 : amp;
            size_t vlen = (size_t)(amp - v);
            switch (kv->kind) {
            case RW_VALUE_PRESENT:
                return true;
            case RW_VALUE_EXACT:
                if (qdec_eq(v, vlen, kv->value, kv->value_len))
                    return true;
                break;
            default:
                if (qdec_regex(kv->re, v, vlen))
                    return true;
                break;
            }
        }
        p = amp + 1;
    }
    return false;
}

/* Score of route i for in ignoring its paths, or -1 when a predicate fails:
 * host score << 16 | predicate count. */
static int64_t route_score(const rw_router *r, uint32_t i, const rw_route_input *in, rw_str host)
{
    const r_route *rr = &r->routes[i];
    if (rr->methods != 0 &&
        ((unsigned)in->method >= 32u || (rr->methods & (1u << (unsigned)in->method)) == 0))
        return -1;
    int hs = host_score(r, rr, host);
    if (hs < 0)
        return -1;
    for (uint32_t k = 0; k < rr->nhdr; k++)
        if (!header_match(&r->kvs[rr->hdr_off + k], in))
            return -1;
    for (uint32_t k = 0; k < rr->nq; k++)
        if (!query_match(&r->kvs[rr->q_off + k], in->query))
            return -1;
    return (int64_t)hs << 16 | rr->npreds;
}

/* Best route of a list (config order), or -1. */
static int best_of(const rw_router *r, const uint32_t *list, uint32_t n, const rw_route_input *in,
                   rw_str host)
{
    int best = -1;
    int64_t best_score = -1;
    for (uint32_t k = 0; k < n; k++) {
        int64_t s = route_score(r, list[k], in, host);
        if (s > best_score) {
            best_score = s;
            best = (int)list[k];
        }
    }
    return best;
}

static int match_prefix(const rw_router *r, const rw_route_input *in, rw_str host)
{
    const char *path = in->path;
    size_t len = in->path_len;
    uint32_t node = 0;
    bool ends_here = false; /* the path ends exactly at the deepest node ("/api", not "/api/") */
    if (len == 0 || path[0] != '/')
        return -1; /* "*" and the like: no prefix applies */
    if (r->nnodes > 1) {
        const char *p = path + 1, *end = path + len;
        for (;;) {
            const char *slash = memchr(p, '/', (size_t)(end - p));
            const char *se = slash != NULL ? slash : end;
            uint32_t child = edge_find(r, node, p, (size_t)(se - p), NULL);
            if (child == NO_NODE)
                break;
            node = child;
            if (slash == NULL) {
                ends_here = true;
                break;
            }
            p = slash + 1;
        }
    }
    for (;;) {
        const r_node *nd = &r->nodes[node];
        for (int lv = 0; lv < 2; lv++) {
            if (nd->lv[lv].cnt == 0)
                continue;
            if (lv == 0 && ends_here)
                continue; /* "/api/" is a plain string prefix: it does not match "/api" */
            int w = best_of(r, r->lists + nd->lv[lv].off, nd->lv[lv].cnt, in, host);
            if (w >= 0)
                return w;
        }
        if (nd->parent == NO_NODE)
            return -1;
        node = nd->parent;
        ends_here = false; /* the path goes on past every ancestor */
    }
}

static int match_regex(const rw_router *r, const rw_route_input *in, rw_str host)
{
    int best = -1;
    int64_t best_score = -1;
    for (uint32_t k = 0; k < r->nrx_routes; k++) {
        uint32_t i = r->rx_routes[k];
        int64_t s = route_score(r, i, in, host);
        if (s <= best_score)
            continue; /* cannot win: skip the regex work */
        const r_route *rr = &r->routes[i];
        for (uint32_t j = 0; j < rr->nrx; j++) {
            if (re_match_slice(r->rx[rr->rx_off + j], in->path, in->path_len)) {
                best_score = s;
                best = (int)i;
                break;
            }
        }
    }
    return best;
}

int rw_router_match(const rw_router *r, const rw_route_input *in)
{
    rw_str host = in->host;
    if (host.len > 0 && host.p[host.len - 1] == '.')
        host.len--; /* "example.com." is "example.com" */
    const char *path = in->path != NULL ? in->path : "";
    rw_route_input pin = *in;
    pin.path = path;
    int w;

    if (r->nexact > 0) {
        size_t len = pin.path_len;
        const r_exact *e = exact_find(r, path, len, rw_hash64(path, len));
        if (e->s != NULL && (w = best_of(r, r->lists + e->list.off, e->list.cnt, &pin, host)) >= 0)
            return w;
    }
    if (r->nprefix > 0 && (w = match_prefix(r, &pin, host)) >= 0)
        return w;
    if (r->nrx_routes > 0 && (w = match_regex(r, &pin, host)) >= 0)
        return w;
    return best_of(r, r->pathless, r->npathless, &pin, host);
}

/* ---- upstream target ---------------------------------------------------- */

ssize_t rw_route_upstream_target(const rw_route_cfg *rt, const char *path, size_t path_len, rw_str query,
                                 char *out, size_t cap)
{
    const char *p = path != NULL ? path : "";
    size_t n = path != NULL ? path_len : 0;
    size_t o = 0;

#define PUT(src, len)                                                                                        \
    do {                                                                                                     \
        size_t l_ = (len);                                                                                   \
        if (l_ >= cap - o)                                                                                   \
            return -1;                                                                                       \
        if (l_ > 0)                                                                                          \
            memcpy(out + o, (src), l_);                                                                      \
        o += l_;                                                                                             \
    } while (0)

    if (cap == 0)
        return -1;
    if (rt->strip_path != NULL) {
        /* Segment-aware: "/api" strips "/api" and "/api/x", never "/apix". */
        size_t sl = strlen(rt->strip_path);
        while (sl > 0 && rt->strip_path[sl - 1] == '/')
            sl--;
        if (sl > 0 && n >= sl && memcmp(p, rt->strip_path, sl) == 0 && (n == sl || p[sl] == '/')) {
            p += sl;
            n -= sl;
            if (n == 0) {
                p = "/";
                n = 1;
            }
        }
    }
    if (rt->rewrite_re != NULL && rt->rewrite_to != NULL) {
        regmatch_t m[10];
        for (int k = 0; k < 10; k++)
            m[k].rm_so = m[k].rm_eo = -1;
        m[0].rm_so = 0;
        m[0].rm_eo = (regoff_t)n;
        if (regexec(rt->rewrite_re, n != 0 ? p : "", 10, m, REG_STARTEND) == 0) {
            /* The matched part is replaced; the text around it is kept. */
            PUT(p, (size_t)m[0].rm_so);
            for (const char *t = rt->rewrite_to; *t; t++) {
                if (t[0] == '$' && t[1] >= '0' && t[1] <= '9') {
                    const regmatch_t *g = &m[t[1] - '0'];
                    if (g->rm_so >= 0 && g->rm_eo >= g->rm_so)
                        PUT(p + g->rm_so, (size_t)(g->rm_eo - g->rm_so));
                    t++;
                } else if (t[0] == '$' && t[1] == '$') {
                    PUT("$", 1);
                    t++;
                } else {
                    PUT(t, 1);
                }
            }
            PUT(p + m[0].rm_eo, n - (size_t)m[0].rm_eo);
            goto query;
        }
    }
    PUT(p, n);
query:
    if (query.len > 0) {
        PUT("?", 1);
        PUT(query.p, query.len);
    }
#undef PUT
    out[o] = '\0';
    return (ssize_t)o;
}
