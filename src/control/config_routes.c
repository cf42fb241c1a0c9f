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

static const char *const method_names[RW_METHOD__COUNT] = {
    [RW_METHOD_GET] = "GET",         [RW_METHOD_HEAD] = "HEAD",     [RW_METHOD_POST] = "POST",
    [RW_METHOD_PUT] = "PUT",         [RW_METHOD_DELETE] = "DELETE", [RW_METHOD_CONNECT] = "CONNECT",
    [RW_METHOD_OPTIONS] = "OPTIONS", [RW_METHOD_TRACE] = "TRACE",   [RW_METHOD_PATCH] = "PATCH",
};

/* Brings an exact/prefix/strip path to the form requests are matched in (see
 * path.h): escapes of unreserved characters decoded, other escapes in upper
 * case. Paths with "//", "." or ".." segments could never match a normalised
 * request, so they are rejected rather than silently rewritten. */
static int normalise_path(rw_cf_loader *l, const yaml_node_t *n, const char *where, char *s)
{
    char *w = s;

    if (s[0] != '/')
        return rw__cf_fail(l, n, "%s: path '%s' must start with '/'", where, s);
    for (char *r = s; *r;) {
        unsigned char c = (unsigned char)*r;
        if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#')
            return rw__cf_fail(l, n, "%s: path '%s' contains a character that must be percent-encoded", where,
                               s);
        if (c == '%') {
            int hi = rw_hexval((unsigned char)r[1]), lo = hi < 0 ? -1 : rw_hexval((unsigned char)r[2]);
            if (hi < 0 || lo < 0)
                return rw__cf_fail(l, n, "%s: path '%s' has an invalid percent-escape", where, s);
            int v = hi * 16 + lo;
            if (v == 0)
                return rw__cf_fail(l, n, "%s: path '%s' contains %%00", where, s);
            if (isalnum(v) || v == '-' || v == '.' || v == '_' || v == '~') {
                *w++ = (char)v;
            } else {
                *w++ = '%';
                *w++ = (char)toupper((unsigned char)r[1]);
                *w++ = (char)toupper((unsigned char)r[2]);
            }
            r += 3;
            continue;
        }
        *w++ = *r++;
    }
    *w = '\0';
    for (const char *p = s; *p; p++) {
        if (*p != '/')
            continue;
        const char *seg = p + 1;
        size_t len = strcspn(seg, "/");
        bool last = seg[len] == '\0';
        if ((len == 0 && !last) || (len == 1 && seg[0] == '.') ||
            (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return rw__cf_fail(l, n, "%s: path '%s' is not normalised (no '//', '.' or '..' segments)", where,
                               s);
    }
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

static int parse_paths(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_route_cfg *rt)
{
    static const char *const kinds[] = {"exact", "prefix", "regex"};
    char w[300], vw[320];

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
        rw_path_cfg *p = &rt->paths[i];
        rw__cf_wheref(w, sizeof(w), "%s[%zu]", where, i);
        if (!it)
            return rw__cf_fail(l, n, "%s: missing entry", w);
        if (rw__cf_check_map(l, it, w))
            return -1;
        if (MAP_LEN(it) != 1)
            return rw__cf_fail(l, it, "%s: expected exactly one of exact, prefix, regex", w);
        yaml_node_t *k = rw__cf_node_at(l, it->data.mapping.pairs.start[0].key);
        yaml_node_t *v = rw__cf_node_at(l, it->data.mapping.pairs.start[0].value);
        const char *key = rw__cf_scalar_text(k);
        size_t kind = 0;
        while (kind < RW_ARRAY_LEN(kinds) && strcmp(key, kinds[kind]) != 0)
            kind++;
        if (kind == RW_ARRAY_LEN(kinds))
            return rw__cf_unknown_key(l, k, w, "path", "exact, prefix or regex");
        rw__cf_wheref(vw, sizeof(vw), "%s.%s", w, key);
        p->kind = (int)kind;
        if (rw__cf_is_null(v))
            return rw__cf_fail(l, v, "%s: expected a string, got nothing", vw);
        if (rw__cf_get_string(l, v, vw, &p->value))
            return -1;
        if (kind == RW_PATH_REGEX) {
            if (rw__cf_compile_regex(l, v, vw, p->value, &p->re))
                return -1;
        } else if (normalise_path(l, v, vw, p->value)) {
            return -1;
        }
        rt->npaths = i + 1;
    }
    return 0;
}

/* headers / query predicates: Name: "v" | {regex: ".."} | {present: true} */
static int parse_kv_matches(rw_cf_loader *l, yaml_node_t *n, const char *where, bool is_header,
                            rw_kv_match **out, size_t *count)
{
    char w[300], vw[320];

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
            if (rw__cf_check_map(l, v, w))
                return -1;
            if (MAP_LEN(v) != 1)
                return rw__cf_fail(l, v, "%s: expected exactly one of regex, present", w);
            yaml_node_t *mk = rw__cf_node_at(l, v->data.mapping.pairs.start[0].key);
            yaml_node_t *mv = rw__cf_node_at(l, v->data.mapping.pairs.start[0].value);
            rw__cf_wheref(vw, sizeof(vw), "%s.%s", w, rw__cf_scalar_text(mk));
            if (!strcmp(rw__cf_scalar_text(mk), "regex")) {
                m->kind = RW_VALUE_REGEX;
                if (rw__cf_is_null(mv))
                    return rw__cf_fail(l, mv, "%s: expected a string, got nothing", vw);
                if (rw__cf_get_string(l, mv, vw, &m->value) ||
                    rw__cf_compile_regex(l, mv, vw, m->value, &m->re))
                    return -1;
            } else if (!strcmp(rw__cf_scalar_text(mk), "present")) {
                bool present = false;
                m->kind = RW_VALUE_PRESENT;
                if (rw__cf_is_null(mv))
                    return rw__cf_fail(l, mv, "%s: expected true, got nothing", vw);
                if (rw__cf_get_bool(l, mv, vw, &present))
                    return -1;
                if (!present)
                    return rw__cf_fail(l, mv, "%s: only 'present: true' is supported", vw);
            } else {
                return rw__cf_unknown_key(l, mk, w, is_header ? "header match" : "query match",
                                          "regex or present");
            }
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

static int parse_respond(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_respond_cfg *r)
{
    char w[300], hw[400];
    const yaml_node_t *status = NULL, *body = NULL;

    if (rw__cf_check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        const char *key = rw__cf_scalar_text(k);
        rw__cf_wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "status")) {
            uint64_t st = 0;
            const char *s = "";
            if (rw__cf_is_null(v))
                continue;
            if (rw__cf_str_of(l, v, w, &s) || rw__cf_get_uint(l, v, w, 0, 999999, &st))
                return -1;
            if (st < 100 || st > 599)
                return rw__cf_fail(l, v, "%s: status %llu is outside 100..599", w, (unsigned long long)st);
            if (st < 200)
                return rw__cf_fail(l, v,
                                   "%s: status %llu is informational; a respond route needs a final "
                                   "status (200..599)",
                                   w, (unsigned long long)st);
            r->status = (int)st;
            status = v;
        } else if (!strcmp(key, "headers")) {
            if (rw__cf_is_null(v))
                continue;
            if (rw__cf_check_map(l, v, w))
                return -1;
            r->headers = rw__cf_array(l->arena, MAP_LEN(v), sizeof(*r->headers));
            if (!r->headers)
                return rw__cf_oom(l, v);
            MAP_EACH(v, hp)
            {
                yaml_node_t *hk = rw__cf_node_at(l, hp->key), *hv = rw__cf_node_at(l, hp->value);
                rw_kv *h = &r->headers[r->nheaders];
                const char *s = "";
                rw__cf_wheref(hw, sizeof(hw), "%s.%s", w, rw__cf_scalar_text(hk));
                if (rw__cf_get_string(l, hk, hw, &h->name) ||
                    rw__cf_check_token(l, hk, hw, "header name", h->name))
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
        } else if (!strcmp(key, "body")) {
            if (rw__cf_is_null(v))
                continue;
            if (rw__cf_want(l, v, YAML_SCALAR_NODE, w))
                return -1;
            if (v->data.scalar.length > MAX_BODY)
                return rw__cf_fail(l, v, "%s: body is too large (at most 1m)", w);
            /* the body may hold any bytes, NUL included: keep its length */
            r->body = rw__cf_dup_mem(l, v, rw__cf_scalar_text(v), v->data.scalar.length);
            if (!r->body)
                return -1;
            r->body_len = v->data.scalar.length;
            body = v;
        } else {
            return rw__cf_unknown_key(l, k, where, "respond", "status, headers, body");
        }
    }
    if (!status)
        return rw__cf_fail(l, n, "%s: status is required", where);
    if (body && r->body_len > 0 && (r->status == 204 || r->status == 304))
        return rw__cf_fail(l, body, "%s.body: a %d response has no body", where, r->status);
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

static int parse_rewrite(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_route_cfg *rt)
{
    char w[300];
    const yaml_node_t *from = NULL, *to = NULL;

    if (rw__cf_check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        const char *key = rw__cf_scalar_text(k);
        rw__cf_wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "from")) {
            if (rw__cf_get_string(l, v, w, &rt->rewrite_from))
                return -1;
            if (rt->rewrite_from && rw__cf_compile_regex(l, v, w, rt->rewrite_from, &rt->rewrite_re))
                return -1;
            from = rt->rewrite_from ? v : NULL;
        } else if (!strcmp(key, "to")) {
            if (rw__cf_get_string(l, v, w, &rt->rewrite_to))
                return -1;
            to = rt->rewrite_to ? v : NULL;
        } else {
            return rw__cf_unknown_key(l, k, where, "rewrite", "from, to");
        }
    }
    if (!from || !to)
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

static int parse_route(rw_cf_loader *l, yaml_node_t *n, size_t index, const char *where, rw_route_cfg *rt,
                       const rw_cf_strset *services)
{
    static const char keys[] = "name, hosts, methods, paths, headers, query, strip_path, "
                               "rewrite, preserve_host, service, respond, filters";
    char w[300], iw[320];
    const yaml_node_t *service = NULL, *strip = NULL, *rewrite = NULL, *preserve = NULL;

    rt->service_index = -1;
    rt->line = (int)rw__cf_line_of(n);
    if (rw__cf_check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        const char *key = rw__cf_scalar_text(k);
        int rc = 0;
        rw__cf_wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "name"))
            rc = rw__cf_get_name(l, v, w, &rt->name);
        else if (!strcmp(key, "hosts")) {
            rc = rw__cf_get_str_list(l, v, w, &rt->hosts, &rt->nhosts);
            if (rc == 0 && !rw__cf_is_null(v) && rt->nhosts == 0)
                rc = rw__cf_fail(l, v, "%s: must not be empty (leave it out to match every host)", w);
            for (size_t i = 0; i < rt->nhosts && rc == 0; i++)
                rc = check_host(l, rw__cf_list_item(l, v, i), rw__cf_item_where(iw, sizeof(iw), v, w, i),
                                rt->hosts[i]);
        } else if (!strcmp(key, "methods"))
            rc = parse_methods(l, v, w, &rt->methods);
        else if (!strcmp(key, "paths"))
            rc = parse_paths(l, v, w, rt);
        else if (!strcmp(key, "headers"))
            rc = parse_kv_matches(l, v, w, true, &rt->headers, &rt->nheaders);
        else if (!strcmp(key, "query"))
            rc = parse_kv_matches(l, v, w, false, &rt->query, &rt->nquery);
        else if (!strcmp(key, "strip_path")) {
            rc = rw__cf_get_string(l, v, w, &rt->strip_path);
            if (rc == 0 && rt->strip_path) {
                strip = v;
                rc = normalise_path(l, v, w, rt->strip_path);
                size_t len = strlen(rt->strip_path);
                if (rc == 0 && rt->strip_path[len - 1] == '/')
                    rc = rw__cf_fail(l, v,
                                     "%s: '%s' must not end with '/' (the rest of the path keeps "
                                     "its leading '/')",
                                     w, rt->strip_path);
            }
        } else if (!strcmp(key, "rewrite")) {
            if (!rw__cf_is_null(v)) {
                rewrite = v;
                rc = parse_rewrite(l, v, w, rt);
            }
        } else if (!strcmp(key, "preserve_host")) {
            rc = rw__cf_get_bool(l, v, w, &rt->preserve_host);
            preserve = rt->preserve_host ? v : NULL;
        } else if (!strcmp(key, "service")) {
            rc = rw__cf_get_name(l, v, w, &rt->service);
            service = rt->service ? v : NULL;
        } else if (!strcmp(key, "respond")) {
            if (!rw__cf_is_null(v)) {
                rt->has_respond = true;
                rc = parse_respond(l, v, w, &rt->respond);
            }
        } else if (!strcmp(key, "filters"))
            rc = rw__cf_parse_filters(l, v, w, &rt->filters, &rt->nfilters);
        else
            rc = rw__cf_unknown_key(l, k, where, "route", keys);
        if (rc)
            return -1;
    }

    if (!rt->name) {
        char buf[32];
        snprintf(buf, sizeof(buf), "route-%zu", index);
        if (!(rt->name = rw__cf_dup_mem(l, n, buf, strlen(buf))))
            return -1;
    }
    char owner[MAX_NAME_LEN + 16];
    snprintf(owner, sizeof(owner), "route.%s", rt->name);
    if (rw__cf_name_rate_limits(l, n, rt->filters, rt->nfilters, owner))
        return -1;
    if (rt->service && rt->has_respond)
        return rw__cf_fail(l, n, "%s: has both service and respond (choose one)", where);
    if (!rt->service && !rt->has_respond)
        return rw__cf_fail(l, n, "%s: needs either service or respond", where);
    if (rt->service) {
        int idx = rw__cf_strset_get(services, rt->service);
        if (idx < 0)
            return rw__cf_fail(l, service, "%s.service: unknown service '%s'", where, rt->service);
        rt->service_index = idx;
    } else {
        const yaml_node_t *bad = strip ? strip : rewrite ? rewrite : preserve;
        const char *what = strip ? "strip_path" : rewrite ? "rewrite" : "preserve_host";
        if (bad)
            return rw__cf_fail(l, bad, "%s.%s: only applies to routes with a service", where, what);
    }
    return 0;
}

int rw__cf_parse_routes(rw_cf_loader *l, yaml_node_t *n, const rw_cf_strset *services)
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
        if (parse_route(l, it, i, w, rt, services))
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
