/* config_routes.c - the routes section: match conditions (hosts, methods,
 * paths, header and query predicates), strip_path and rewrite, the service a
 * route forwards to or the fixed answer it responds with, and its filters. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"
#include "ringway/common.h"
#include "ringway/http.h"
#include "ringway/path.h"

static const char *const method_names[RW_METHOD__COUNT] = {
    [RW_METHOD_GET] = "GET",         [RW_METHOD_HEAD] = "HEAD",     [RW_METHOD_POST] = "POST",
    [RW_METHOD_PUT] = "PUT",         [RW_METHOD_DELETE] = "DELETE", [RW_METHOD_CONNECT] = "CONNECT",
    [RW_METHOD_OPTIONS] = "OPTIONS", [RW_METHOD_TRACE] = "TRACE",   [RW_METHOD_PATCH] = "PATCH",
};

/* Brings an exact/prefix/strip path (*s, in the arena) to the form requests
 * are matched in, with rw_path_normalize (path.h): escapes of unreserved
 * characters decoded, other escapes in upper case. What it would reject is
 * named here first; a path with "//", "." or ".." segments could never match
 * a normalised request, so it is rejected rather than silently rewritten. */
static int normalise_path(rw_cf_loader *l, const yaml_node_t *n, const char *where, char **sp)
{
    const char *s = *sp;
    size_t len = strlen(s), slashes = 0;

    if (s[0] != '/')
        return rw__cf_fail(l, n, "%s: path '%s' must start with '/'", where, s);
    for (const char *r = s; *r; r++) {
        unsigned char c = (unsigned char)*r;
        if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#')
            return rw__cf_fail(l, n, "%s: path '%s' contains a character that must be percent-encoded", where,
                               s);
        slashes += c == '/';
        if (c != '%')
            continue;
        int hi = rw_hexval((unsigned char)r[1]), lo = hi < 0 ? -1 : rw_hexval((unsigned char)r[2]);
        if (hi < 0 || lo < 0)
            return rw__cf_fail(l, n, "%s: path '%s' has an invalid percent-escape", where, s);
        if (hi == 0 && lo == 0)
            return rw__cf_fail(l, n, "%s: path '%s' contains %%00", where, s);
        r += 2;
    }
    char *out = rw__cf_alloc(l->arena, len + 1);
    if (!out)
        return rw__cf_oom(l, n);
    ssize_t got = rw_path_normalize(s, len, out, len + 1);
    if (got < 0)
        return rw__cf_fail(l, n, "%s: path '%s' cannot be normalised", where, s);
    /* Decoding keeps every '/'; merging "//" or dropping "." and ".." loses
     * one, or (a last "." segment) leaves a trailing '/' that was not there. */
    size_t out_slashes = 0;
    for (const char *p = out; *p; p++)
        out_slashes += *p == '/';
    if (out_slashes != slashes || (out[got - 1] == '/' && s[len - 1] != '/'))
        return rw__cf_fail(l, n, "%s: path '%s' is not normalised (no '//', '.' or '..' segments)", where, s);
    *sp = out;
    return 0;
}

/* Route hosts: lower-cased names, IPv4 or [IPv6] literals, or "*.suffix". */
static int check_host(rw_cf_loader *l, const yaml_node_t *n, const char *where, char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    size_t len = strlen(s);
    if (len > 253)
        return rw__cf_fail(l, n, "%s: host '%s' is too long", where, s);
    if (s[0] == '[') {
        struct in6_addr a;
        char buf[INET6_ADDRSTRLEN + 1];
        size_t inner = len - 1;
        if (len < 3 || s[len - 1] != ']' || inner - 1 >= sizeof(buf))
            return rw__cf_fail(l, n, "%s: invalid host '%s'", where, s);
        memcpy(buf, s + 1, inner - 1);
        buf[inner - 1] = '\0';
        if (inet_pton(AF_INET6, buf, &a) != 1)
            return rw__cf_fail(l, n, "%s: invalid IPv6 literal '%s'", where, s);
        return 0;
    }
    const char *p = s;
    if (p[0] == '*' && p[1] == '.')
        p += 2;
    if (strchr(p, '*'))
        return rw__cf_fail(l, n, "%s: host '%s': a wildcard is only allowed as a leading '*.'", where, s);
    if (strchr(p, ':'))
        return rw__cf_fail(l, n, "%s: host '%s' must not include a port", where, s);
    if (*p == '\0' || *p == '.' || s[len - 1] == '.' || strstr(p, ".."))
        return rw__cf_fail(l, n, "%s: invalid host '%s'", where, s);
    for (; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
            return rw__cf_fail(l, n, "%s: invalid host '%s'", where, s);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* routes */

static const rw_cf_key path_keys[3];

/* A path's exact, prefix or regex: the row's index is its kind. */
static int key_path(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_path_cfg *p = obj;

    p->kind = (int)(key - path_keys);
    if (rw__cf_is_null(v))
        return rw__cf_fail(l, v, "%s: expected a string, got nothing", where);
    if (rw__cf_get_string(l, v, where, &p->value))
        return -1;
    if (p->kind == RW_PATH_REGEX)
        return rw__cf_compile_regex(l, v, where, p->value, &p->re);
    return normalise_path(l, v, where, &p->value);
}

static const rw_cf_key path_keys[3] = {
    [RW_PATH_EXACT] = {.name = "exact", .parse = key_path},
    [RW_PATH_PREFIX] = {.name = "prefix", .parse = key_path},
    [RW_PATH_REGEX] = {.name = "regex", .parse = key_path},
};
static const rw_cf_map path_map = RW_CF_ONE_OF("path", path_keys);

/* paths: [{exact: /a}, {prefix: /b}, {regex: "^/c"}] */
static int parse_paths(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_route_cfg *rt)
{
    char w[300];

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_list(l, n, where, false))
        return -1;
    size_t len = SEQ_LEN(n);
    if (len == 0)
        return rw__cf_fail(l, n, "%s: must not be empty (leave it out to match every path)", where);
    rt->paths = rw__cf_array(l->arena, len, sizeof(*rt->paths));
    if (!rt->paths)
        return rw__cf_oom(l, n);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = rw__cf_list_item(l, n, i);
        rw__cf_wheref(w, sizeof(w), "%s[%zu]", where, i);
        if (!it)
            return rw__cf_fail(l, n, "%s: missing entry", w);
        if (rw__cf_map_parse(l, &path_map, it, w, &rt->paths[i], NULL))
            return -1;
        rt->npaths = i + 1;
    }
    return 0;
}

static int key_match_regex(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                           void *obj)
{
    rw_kv_match *m = obj;

    (void)key;
    m->kind = RW_VALUE_REGEX;
    if (rw__cf_is_null(v))
        return rw__cf_fail(l, v, "%s: expected a string, got nothing", where);
    if (rw__cf_get_string(l, v, where, &m->value))
        return -1;
    return rw__cf_compile_regex(l, v, where, m->value, &m->re);
}

static int key_match_present(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                             void *obj)
{
    rw_kv_match *m = obj;
    bool present = false;

    (void)key;
    m->kind = RW_VALUE_PRESENT;
    if (rw__cf_is_null(v))
        return rw__cf_fail(l, v, "%s: expected true, got nothing", where);
    if (rw__cf_get_bool(l, v, where, &present))
        return -1;
    if (!present)
        return rw__cf_fail(l, v, "%s: only 'present: true' is supported", where);
    return 0;
}

/* A header or query value that is not a plain string: {regex: ".."} or {present: true}. */
static const rw_cf_key match_keys[] = {
    {.name = "regex", .parse = key_match_regex},
    {.name = "present", .parse = key_match_present},
};
static const rw_cf_map header_match_map = RW_CF_ONE_OF("header match", match_keys);
static const rw_cf_map query_match_map = RW_CF_ONE_OF("query match", match_keys);

/* headers / query predicates: Name: "v" | {regex: ".."} | {present: true} */
static int parse_kv_matches(rw_cf_loader *l, yaml_node_t *n, const char *where, bool is_header,
                            rw_kv_match **out, size_t *count)
{
    char w[300];

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_map(l, n, where))
        return -1;
    size_t len = MAP_LEN(n);
    rw_kv_match *arr = rw__cf_array(l->arena, len, sizeof(*arr));
    if (!arr)
        return rw__cf_oom(l, n);
    size_t i = 0;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        rw_kv_match *m = &arr[i++];
        rw__cf_wheref(w, sizeof(w), "%s.%s", where, rw__cf_scalar_text(k));
        if (rw__cf_get_string(l, k, w, &m->name))
            return -1;
        if (is_header && rw__cf_check_token(l, k, w, "header name", m->name))
            return -1;
        if (v->type == YAML_MAPPING_NODE) {
            if (rw__cf_map_parse(l, is_header ? &header_match_map : &query_match_map, v, w, m, NULL))
                return -1;
        } else {
            const char *s = "";
            m->kind = RW_VALUE_EXACT;
            if (rw__cf_str_of(l, v, w, &s))
                return -1;
            if (is_header && rw__cf_check_field_value(l, v, w, s))
                return -1;
            m->value = rw__cf_dup_mem(l, v, s, strlen(s));
            if (!m->value)
                return -1;
        }
    }
    *out = arr;
    *count = len;
    return 0;
}

static int parse_methods(rw_cf_loader *l, yaml_node_t *n, const char *where, uint32_t *out)
{
    char w[300];
    const char *s = "";

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_list(l, n, where, true))
        return -1;
    size_t len = rw__cf_list_len(n);
    if (len == 0)
        return rw__cf_fail(l, n, "%s: must not be empty (leave it out to match every method)", where);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = rw__cf_list_item(l, n, i);
        int m = RW_METHOD_GET;
        rw__cf_item_where(w, sizeof(w), n, where, i);
        if (!it)
            return rw__cf_fail(l, n, "%s: missing entry", w);
        if (rw__cf_str_of(l, it, w, &s))
            return -1;
        while (m < RW_METHOD__COUNT && strcmp(method_names[m], s) != 0)
            m++;
        if (m == RW_METHOD__COUNT)
            return rw__cf_fail(l, it,
                               "%s: unknown method '%s' (expected GET, HEAD, POST, PUT, DELETE, CONNECT, "
                               "OPTIONS, TRACE, PATCH)",
                               w, s);
        *out |= 1u << m;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* respond */

static int key_status(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    uint64_t st = 0;
    const char *s = "";

    (void)key;
    if (rw__cf_is_null(v))
        return 0;
    if (rw__cf_str_of(l, v, where, &s) || rw__cf_get_uint(l, v, where, 0, 999999, &st))
        return -1;
    if (st < 100 || st > 599)
        return rw__cf_fail(l, v, "%s: status %llu is outside 100..599", where, (unsigned long long)st);
    if (st < 200)
        return rw__cf_fail(l, v,
                           "%s: status %llu is informational; a respond route needs a final "
                           "status (200..599)",
                           where, (unsigned long long)st);
    ((rw_respond_cfg *)obj)->status = (int)st;
    return 0;
}

/* headers: {Name: value}; framing headers are ringway's. */
static int key_respond_headers(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                               void *obj)
{
    rw_respond_cfg *r = obj;
    char hw[400];

    (void)key;
    if (rw__cf_is_null(v))
        return 0;
    if (rw__cf_check_map(l, v, where))
        return -1;
    r->headers = rw__cf_array(l->arena, MAP_LEN(v), sizeof(*r->headers));
    if (!r->headers)
        return rw__cf_oom(l, v);
    MAP_EACH(v, hp)
    {
        yaml_node_t *hk = rw__cf_node_at(l, hp->key), *hv = rw__cf_node_at(l, hp->value);
        rw_kv *h = &r->headers[r->nheaders];
        const char *s = "";
        rw__cf_wheref(hw, sizeof(hw), "%s.%s", where, rw__cf_scalar_text(hk));
        if (rw__cf_get_string(l, hk, hw, &h->name) || rw__cf_check_token(l, hk, hw, "header name", h->name))
            return -1;
        if (!strcasecmp(h->name, "Content-Length") || !strcasecmp(h->name, "Transfer-Encoding") ||
            !strcasecmp(h->name, "Connection"))
            return rw__cf_fail(l, hk, "%s: %s is set by ringway", hw, h->name);
        if (rw__cf_str_of(l, hv, hw, &s) || rw__cf_check_field_value(l, hv, hw, s))
            return -1;
        if (!(h->value = rw__cf_dup_mem(l, hv, s, strlen(s))))
            return -1;
        r->nheaders++;
    }
    return 0;
}

/* body: any bytes, NUL included (body_len keeps the length), at most 1m. */
static int key_body(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_respond_cfg *r = obj;

    (void)key;
    if (rw__cf_is_null(v))
        return 0;
    if (rw__cf_want(l, v, YAML_SCALAR_NODE, where))
        return -1;
    if (v->data.scalar.length > MAX_BODY)
        return rw__cf_fail(l, v, "%s: body is too large (at most 1m)", where);
    r->body = rw__cf_dup_mem(l, v, rw__cf_scalar_text(v), v->data.scalar.length);
    if (!r->body)
        return -1;
    r->body_len = v->data.scalar.length;
    return 0;
}

enum { RESPOND_STATUS, RESPOND_HEADERS, RESPOND_BODY };

static int check_respond(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj,
                         yaml_node_t *const *seen)
{
    const rw_respond_cfg *r = obj;

    (void)n;
    if (r->body_len > 0 && (r->status == 204 || r->status == 304))
        return rw__cf_fail(l, seen[RESPOND_BODY], "%s.body: a %d response has no body", where, r->status);
    return 0;
}

static const rw_cf_key respond_keys[] = {
    [RESPOND_STATUS] = {.name = "status", .parse = key_status, .flags = RW_CF_REQUIRED},
    [RESPOND_HEADERS] = {.name = "headers", .parse = key_respond_headers},
    [RESPOND_BODY] = {.name = "body", .parse = key_body},
};
static const rw_cf_map respond_map = RW_CF_MAP_OF("respond", respond_keys, check_respond);

/* ------------------------------------------------------------------------ */
/* rewrite */

static int key_rewrite_from(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                            void *obj)
{
    rw_route_cfg *rt = obj;

    (void)key;
    if (rw__cf_get_string(l, v, where, &rt->rewrite_from))
        return -1;
    return rt->rewrite_from ? rw__cf_compile_regex(l, v, where, rt->rewrite_from, &rt->rewrite_re) : 0;
}

enum { REWRITE_FROM, REWRITE_TO };

static int check_rewrite(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj,
                         yaml_node_t *const *seen)
{
    const rw_route_cfg *rt = obj;
    const yaml_node_t *to = seen[REWRITE_TO];

    if (!rt->rewrite_from || !rt->rewrite_to)
        return rw__cf_fail(l, n, "%s: needs both from and to", where);
    /* "$0" is the whole match, "$1".."$9" groups, "$$" a literal '$' */
    for (const char *p = rt->rewrite_to; *p; p++) {
        if (p[0] == '$' && p[1] == '$') {
            p++;
        } else if (p[0] == '$' && p[1] >= '0' && p[1] <= '9') {
            unsigned g = (unsigned)(p[1] - '0');
            if (g > rt->rewrite_re->re_nsub)
                return rw__cf_fail(l, to, "%s.to: $%u does not name a group of the regex (it has %zu)", where,
                                   g, rt->rewrite_re->re_nsub);
            p++;
        }
    }
    for (const unsigned char *p = (const unsigned char *)rt->rewrite_to; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f)
            return rw__cf_fail(l, to, "%s.to: must not contain spaces or control characters", where);
    }
    return 0;
}

/* rewrite: {from: REGEX, to: REPLACEMENT}, over the route's fields. */
static const rw_cf_key rewrite_keys[] = {
    [REWRITE_FROM] = {.name = "from", .parse = key_rewrite_from},
    [REWRITE_TO] = RW_CF_STRING("to", rw_route_cfg, rewrite_to),
};
static const rw_cf_map rewrite_map = RW_CF_MAP_OF("rewrite", rewrite_keys, check_rewrite);

/* ------------------------------------------------------------------------ */
/* route */

static int key_hosts(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_route_cfg *rt = obj;
    char iw[320];

    (void)key;
    if (rw__cf_get_str_list(l, v, where, &rt->hosts, &rt->nhosts))
        return -1;
    if (!rw__cf_is_null(v) && rt->nhosts == 0)
        return rw__cf_fail(l, v, "%s: must not be empty (leave it out to match every host)", where);
    for (size_t i = 0; i < rt->nhosts; i++) {
        if (check_host(l, rw__cf_list_item(l, v, i), rw__cf_item_where(iw, sizeof(iw), v, where, i),
                       rt->hosts[i]))
            return -1;
    }
    return 0;
}

static int key_methods(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    (void)key;
    return parse_methods(l, v, where, &((rw_route_cfg *)obj)->methods);
}

static int key_paths(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    (void)key;
    return parse_paths(l, v, where, obj);
}

static int key_headers(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_route_cfg *rt = obj;
    (void)key;
    return parse_kv_matches(l, v, where, true, &rt->headers, &rt->nheaders);
}

static int key_query(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_route_cfg *rt = obj;
    (void)key;
    return parse_kv_matches(l, v, where, false, &rt->query, &rt->nquery);
}

/* strip_path: a normalised prefix without a trailing '/'. */
static int key_strip_path(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_route_cfg *rt = obj;

    (void)key;
    if (rw__cf_get_string(l, v, where, &rt->strip_path))
        return -1;
    if (!rt->strip_path)
        return 0;
    if (normalise_path(l, v, where, &rt->strip_path))
        return -1;
    if (rt->strip_path[strlen(rt->strip_path) - 1] == '/')
        return rw__cf_fail(l, v,
                           "%s: '%s' must not end with '/' (the rest of the path keeps "
                           "its leading '/')",
                           where, rt->strip_path);
    return 0;
}

static int key_respond(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_route_cfg *rt = obj;

    (void)key;
    if (rw__cf_is_null(v))
        return 0;
    rt->has_respond = true;
    return rw__cf_map_parse(l, &respond_map, v, where, &rt->respond, NULL);
}

static int key_route_filters(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                             void *obj)
{
    rw_route_cfg *rt = obj;
    (void)key;
    return rw__cf_parse_filters(l, v, where, &rt->filters, &rt->nfilters);
}

enum {
    ROUTE_NAME,
    ROUTE_HOSTS,
    ROUTE_METHODS,
    ROUTE_PATHS,
    ROUTE_HEADERS,
    ROUTE_QUERY,
    ROUTE_STRIP_PATH,
    ROUTE_REWRITE,
    ROUTE_PRESERVE_HOST,
    ROUTE_SERVICE,
    ROUTE_RESPOND,
    ROUTE_FILTERS,
    ROUTE_HTTPS_REDIRECT,
    ROUTE_HSTS,
};

#define HSTS_MAX 128

/* hsts: a Strict-Transport-Security value, checked loosely (max-age=N
 * first, visible ASCII and spaces, at most HSTS_MAX characters); the whole
 * header line is prebuilt so a response copies it as it is. */
static int key_hsts(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_route_cfg *rt = obj;

    (void)key;
    if (rw__cf_get_string(l, v, where, &rt->hsts))
        return -1;
    const char *s = rt->hsts;
    size_t len = strlen(s);
    if (strncasecmp(s, "max-age=", 8) != 0 || s[8] < '0' || s[8] > '9')
        return rw__cf_fail(
            l, v, "%s: must start with max-age=<seconds> (e.g. \"max-age=31536000; includeSubDomains\")",
            where);
    if (len > HSTS_MAX)
        return rw__cf_fail(l, v, "%s: longer than %d characters", where, HSTS_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            return rw__cf_fail(l, v, "%s: may contain only visible ASCII characters and spaces", where);
    char line[HSTS_MAX + 32];
    int n = snprintf(line, sizeof(line), "Strict-Transport-Security: %s\r\n", s);
    char *p = rw__cf_dup_mem(l, v, line, (size_t)n);
    if (!p)
        return -1;
    rt->hsts_line = (rw_str){p, (size_t)n};
    return 0;
}

static int check_route(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj,
                       yaml_node_t *const *seen)
{
    rw_route_cfg *rt = obj;
    char owner[MAX_NAME_LEN + 16];

    snprintf(owner, sizeof(owner), "route.%s", rt->name);
    if (rw__cf_name_rate_limits(l, n, rt->filters, rt->nfilters, owner))
        return -1;
    if (rt->service && rt->has_respond)
        return rw__cf_fail(l, n, "%s: has both service and respond (choose one)", where);
    if (!rt->service && !rt->has_respond)
        return rw__cf_fail(l, n, "%s: needs either service or respond", where);
    if (rt->service) {
        int idx = rw__cf_strset_get(&l->services, rt->service);
        if (idx < 0)
            return rw__cf_fail(l, seen[ROUTE_SERVICE], "%s.service: unknown service '%s'", where,
                               rt->service);
        rt->service_index = idx;
        return 0;
    }
    const yaml_node_t *strip = rt->strip_path ? seen[ROUTE_STRIP_PATH] : NULL;
    const yaml_node_t *rewrite = rw__cf_is_null(seen[ROUTE_REWRITE]) ? NULL : seen[ROUTE_REWRITE];
    const yaml_node_t *preserve = rt->preserve_host ? seen[ROUTE_PRESERVE_HOST] : NULL;
    const yaml_node_t *bad = strip ? strip : rewrite ? rewrite : preserve;
    const char *what = strip ? "strip_path" : rewrite ? "rewrite" : "preserve_host";
    if (bad)
        return rw__cf_fail(l, bad, "%s.%s: only applies to routes with a service", where, what);
    return 0;
}

static const rw_cf_key route_keys[] = {
    [ROUTE_NAME] = RW_CF_NAME("name", rw_route_cfg, name, 0),
    [ROUTE_HOSTS] = {.name = "hosts", .parse = key_hosts},
    [ROUTE_METHODS] = {.name = "methods", .parse = key_methods},
    [ROUTE_PATHS] = {.name = "paths", .parse = key_paths},
    [ROUTE_HEADERS] = {.name = "headers", .parse = key_headers},
    [ROUTE_QUERY] = {.name = "query", .parse = key_query},
    [ROUTE_STRIP_PATH] = {.name = "strip_path", .parse = key_strip_path},
    [ROUTE_REWRITE] = RW_CF_SUBMAP("rewrite", 0, rewrite_map),
    [ROUTE_PRESERVE_HOST] = RW_CF_BOOL("preserve_host", rw_route_cfg, preserve_host, false),
    [ROUTE_SERVICE] = RW_CF_NAME("service", rw_route_cfg, service, 0),
    [ROUTE_RESPOND] = {.name = "respond", .parse = key_respond},
    [ROUTE_FILTERS] = {.name = "filters", .parse = key_route_filters},
    [ROUTE_HTTPS_REDIRECT] = RW_CF_BOOL("https_redirect", rw_route_cfg, https_redirect, false),
    [ROUTE_HSTS] = {.name = "hsts", .parse = key_hsts},
};
static const rw_cf_map route_map = RW_CF_MAP_OF("route", route_keys, check_route);

static int parse_route(rw_cf_loader *l, yaml_node_t *n, size_t index, const char *where, rw_route_cfg *rt)
{
    char name[32];

    rw__cf_map_defaults(&route_map, rt);
    rt->service_index = -1;
    rt->line = (int)rw__cf_line_of(n);
    /* unnamed routes are "route-<index>" (a name key replaces it) */
    snprintf(name, sizeof(name), "route-%zu", index);
    if (!(rt->name = rw__cf_dup_mem(l, n, name, strlen(name))))
        return -1;
    return rw__cf_map_parse(l, &route_map, n, where, rt, NULL);
}

int rw__cf_parse_routes(rw_cf_loader *l, yaml_node_t *n)
{
    rw_config *cfg = l->cfg;
    rw_cf_strset names = {0};
    char w[64];
    int rc = -1;

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_list(l, n, "routes", false))
        return -1;
    size_t len = SEQ_LEN(n);
    cfg->routes = rw__cf_array(l->arena, len, sizeof(*cfg->routes));
    if (!cfg->routes)
        return rw__cf_oom(l, n);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = rw__cf_list_item(l, n, i);
        rw_route_cfg *rt = &cfg->routes[i];
        int old = 0, put;
        rw__cf_wheref(w, sizeof(w), "routes[%zu]", i);
        if (!it) {
            rw__cf_fail(l, n, "%s: missing entry", w);
            goto out;
        }
        if (parse_route(l, it, i, w, rt))
            goto out;
        if ((put = rw__cf_strset_put(&names, rt->name, (int)i, &old)) <= 0) {
            if (put < 0)
                rw__cf_oom(l, it);
            else
                rw__cf_fail(l, it, "%s: duplicate route name '%s' (also routes[%d])", w, rt->name, old);
            goto out;
        }
        cfg->nroutes = i + 1;
    }
    rc = 0;
out:
    rw__cf_strset_free(&names);
    return rc;
}
