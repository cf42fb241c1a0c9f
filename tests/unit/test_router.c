/* test_router.c - route matching precedence and upstream targets. Configs are
 * built by hand (the YAML loader is tested in test_config.c). */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ringway/common.h"
#include "ringway/config.h"
#include "ringway/route.h"

/* ---- a tiny config builder; everything is freed by teardown ------------- */

#define MAX_ROUTES 4096

static rw_config cfg;
static rw_route_cfg routes[MAX_ROUTES];
static rw_router *router;

static regex_t *compile(const char *src)
{
    regex_t *re = malloc(sizeof *re);
    cr_assert_not_null(re);
    cr_assert_eq(regcomp(re, src, REG_EXTENDED), 0, "regcomp %s", src);
    return re;
}

static rw_route_cfg *route(const char *name)
{
    cr_assert_lt(cfg.nroutes, MAX_ROUTES);
    rw_route_cfg *rt = &routes[cfg.nroutes++];
    memset(rt, 0, sizeof *rt);
    rt->name = strdup(name);
    rt->service_index = -1;
    cfg.routes = routes;
    return rt;
}

static void path(rw_route_cfg *rt, int kind, const char *v)
{
    rt->paths = realloc(rt->paths, (rt->npaths + 1) * sizeof *rt->paths);
    rw_path_cfg *p = &rt->paths[rt->npaths++];
    p->kind = kind;
    p->value = strdup(v);
    p->re = kind == RW_PATH_REGEX ? compile(v) : NULL;
}

static void host(rw_route_cfg *rt, const char *h)
{
    rt->hosts = realloc(rt->hosts, (rt->nhosts + 1) * sizeof *rt->hosts);
    rt->hosts[rt->nhosts++] = strdup(h);
}

static void kv(rw_kv_match **arr, size_t *n, const char *name, int kind, const char *value)
{
    *arr = realloc(*arr, (*n + 1) * sizeof **arr);
    rw_kv_match *m = &(*arr)[(*n)++];
    m->name = strdup(name);
    m->value = value != NULL ? strdup(value) : NULL;
    m->kind = kind;
    m->re = kind == RW_VALUE_REGEX ? compile(value) : NULL;
}

static void header(rw_route_cfg *rt, const char *name, int kind, const char *value)
{
    kv(&rt->headers, &rt->nheaders, name, kind, value);
}

static void query(rw_route_cfg *rt, const char *name, int kind, const char *value)
{
    kv(&rt->query, &rt->nquery, name, kind, value);
}

static void free_kvs(rw_kv_match *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].name);
        free(m[i].value);
        if (m[i].re != NULL) {
            regfree(m[i].re);
            free(m[i].re);
        }
    }
    free(m);
}

static void setup(void)
{
    memset(&cfg, 0, sizeof cfg);
    router = NULL;
}

static void teardown(void)
{
    rw_router_free(router);
    for (size_t i = 0; i < cfg.nroutes; i++) {
        rw_route_cfg *rt = &routes[i];
        free(rt->name);
        for (size_t j = 0; j < rt->nhosts; j++)
            free(rt->hosts[j]);
        free(rt->hosts);
        for (size_t j = 0; j < rt->npaths; j++) {
            free(rt->paths[j].value);
            if (rt->paths[j].re != NULL) {
                regfree(rt->paths[j].re);
                free(rt->paths[j].re);
            }
        }
        free(rt->paths);
        free_kvs(rt->headers, rt->nheaders);
        free_kvs(rt->query, rt->nquery);
        free(rt->strip_path);
        if (rt->rewrite_re != NULL) {
            regfree(rt->rewrite_re);
            free(rt->rewrite_re);
        }
    }
}

static void build(void)
{
    char err[256];
    router = rw_router_build(&cfg, err, sizeof err);
    cr_assert_not_null(router, "build failed: %s", err);
}

/* Matches "METHOD host target" with headers "Name: value" (NULL-terminated list);
 * returns the winning route's name or "-" when none matches. */
static const char *match_h(int method, const char *hst, const char *target, const char *const *hdrs)
{
    rw_http_header h[16];
    size_t nh = 0;
    for (; hdrs != NULL && hdrs[nh] != NULL; nh++) {
        const char *colon = strchr(hdrs[nh], ':');
        cr_assert_not_null(colon);
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        h[nh].name = (rw_str){hdrs[nh], (size_t)(colon - hdrs[nh])};
        h[nh].value = (rw_str){v, strlen(v)};
    }
    char pathbuf[512];
    const char *q = strchr(target, '?');
    size_t plen = q != NULL ? (size_t)(q - target) : strlen(target);
    memcpy(pathbuf, target, plen);
    pathbuf[plen] = '\0';
    rw_route_input in = {
        .method = method,
        .host = {hst, strlen(hst)},
        .path = pathbuf,
        .path_len = plen,
        .query = q != NULL ? (rw_str){q + 1, strlen(q + 1)} : (rw_str){"", 0},
        .headers = h,
        .nheaders = nh,
    };
    int i = rw_router_match(router, &in);
    return i < 0 ? "-" : cfg.routes[i].name;
}

static const char *match(int method, const char *hst, const char *target)
{
    return match_h(method, hst, target, NULL);
}

TestSuite(router, .init = setup, .fini = teardown);

/* ---- precedence table --------------------------------------------------- */

#define M(m) (1u << RW_METHOD_##m)
#define HDRS(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(router, precedence_table)
{
    rw_route_cfg *rt;
    path(route("exact-status"), RW_PATH_EXACT, "/status");
    path(route("status-prefix"), RW_PATH_PREFIX, "/status");
    path(route("api"), RW_PATH_PREFIX, "/api");
    path(route("orders"), RW_PATH_PREFIX, "/api/orders");
    rt = route("orders-host");
    path(rt, RW_PATH_PREFIX, "/api/orders");
    host(rt, "api.example.com");
    rt = route("orders-wild");
    path(rt, RW_PATH_PREFIX, "/api/orders");
    host(rt, "*.example.com");
    rt = route("orders-wild-eu");
    path(rt, RW_PATH_PREFIX, "/api/orders");
    host(rt, "*.eu.example.com");
    rt = route("orders-post");
    path(rt, RW_PATH_PREFIX, "/api/orders");
    rt->methods = M(POST) | M(PUT);
    path(route("users-num"), RW_PATH_REGEX, "^/users/[0-9]+$");
    path(route("users-any"), RW_PATH_REGEX, "^/users/");
    rt = route("users-host");
    path(rt, RW_PATH_REGEX, "^/users/(me|you)$");
    host(rt, "api.example.com");
    rt = route("payment-v2");
    path(rt, RW_PATH_PREFIX, "/api/payment/");
    header(rt, "X-Api-Version", RW_VALUE_EXACT, "2");
    path(route("payment"), RW_PATH_PREFIX, "/api/payment");
    rt = route("search-q");
    path(rt, RW_PATH_PREFIX, "/search");
    query(rt, "q", RW_VALUE_PRESENT, NULL);
    rt = route("search-lang");
    path(rt, RW_PATH_PREFIX, "/search");
    query(rt, "lang", RW_VALUE_EXACT, "en us");
    rt = route("search-page");
    path(rt, RW_PATH_PREFIX, "/search");
    query(rt, "page", RW_VALUE_REGEX, "^[0-9]+$");
    rt = route("hdr-regex");
    path(rt, RW_PATH_PREFIX, "/hdr");
    header(rt, "X-Tenant", RW_VALUE_REGEX, "^t[0-9]+$");
    rt = route("hdr-present");
    path(rt, RW_PATH_PREFIX, "/hdr");
    header(rt, "X-Debug", RW_VALUE_PRESENT, NULL);
    rt = route("hdr-both");
    path(rt, RW_PATH_PREFIX, "/hdr");
    header(rt, "X-Debug", RW_VALUE_PRESENT, NULL);
    header(rt, "X-Tenant", RW_VALUE_EXACT, "t1");
    path(route("deep"), RW_PATH_PREFIX, "/deep");
    rt = route("deeper-needs-header");
    path(rt, RW_PATH_PREFIX, "/deep/er");
    header(rt, "X-Need", RW_VALUE_EXACT, "yes");
    rt = route("catchall-host");
    host(rt, "other.example.com");
    route("catchall");
    build();

    const struct {
        int method;
        const char *host, *target;
        const char *const *hdrs;
        const char *want;
    } cases[] = {
        /* exact beats prefix; prefix is segment-aware */
        {RW_METHOD_GET, "", "/status", NULL, "exact-status"},
        {RW_METHOD_GET, "", "/status/x", NULL, "status-prefix"},
        {RW_METHOD_GET, "", "/status/", NULL, "status-prefix"},
        {RW_METHOD_GET, "", "/statusx", NULL, "catchall"},
        {RW_METHOD_GET, "", "/api", NULL, "api"},
        {RW_METHOD_GET, "", "/api/", NULL, "api"},
        {RW_METHOD_GET, "", "/api/ordersx", NULL, "api"},
        {RW_METHOD_GET, "", "/api/orders", NULL, "orders"},
        {RW_METHOD_GET, "", "/api/orders/", NULL, "orders"},
        {RW_METHOD_GET, "", "/api/orders/42/items", NULL, "orders"},
        {RW_METHOD_GET, "", "/apix", NULL, "catchall"},
        {RW_METHOD_GET, "", "/", NULL, "catchall"},
        /* host: exact > longer wildcard > wildcard > none; case-insensitive */
        {RW_METHOD_GET, "api.example.com", "/api/orders/1", NULL, "orders-host"},
        {RW_METHOD_GET, "API.Example.COM", "/api/orders/1", NULL, "orders-host"},
        {RW_METHOD_GET, "api.example.com.", "/api/orders/1", NULL, "orders-host"},
        {RW_METHOD_GET, "x.example.com", "/api/orders", NULL, "orders-wild"},
        {RW_METHOD_GET, "a.b.example.com", "/api/orders", NULL, "orders-wild"},
        {RW_METHOD_GET, "a.eu.example.com", "/api/orders", NULL, "orders-wild-eu"},
        {RW_METHOD_GET, "example.com", "/api/orders", NULL, "orders"},
        {RW_METHOD_GET, "xexample.com", "/api/orders", NULL, "orders"},
        /* methods: more predicates win, but a matching host wins first */
        {RW_METHOD_POST, "", "/api/orders/1", NULL, "orders-post"},
        {RW_METHOD_PUT, "", "/api/orders/1", NULL, "orders-post"},
        {RW_METHOD_DELETE, "", "/api/orders/1", NULL, "orders"},
        {RW_METHOD_POST, "api.example.com", "/api/orders/1", NULL, "orders-host"},
        /* regex: config order, host first; below every prefix */
        {RW_METHOD_GET, "", "/users/42", NULL, "users-num"},
        {RW_METHOD_GET, "", "/users/abc", NULL, "users-any"},
        {RW_METHOD_GET, "", "/users/me", NULL, "users-any"},
        {RW_METHOD_GET, "api.example.com", "/users/me", NULL, "users-host"},
        {RW_METHOD_GET, "api.example.com", "/users/7", NULL, "users-num"},
        /* headers: exact value, case-insensitive name */
        {RW_METHOD_GET, "", "/api/payment/charge", HDRS("X-Api-Version: 2"), "payment-v2"},
        {RW_METHOD_GET, "", "/api/payment/charge", HDRS("x-api-version: 2"), "payment-v2"},
        {RW_METHOD_GET, "", "/api/payment/charge", HDRS("X-Api-Version: 3"), "payment"},
        {RW_METHOD_GET, "", "/api/payment/charge", HDRS("X-Api-Version: 22"), "payment"},
        {RW_METHOD_GET, "", "/api/payment/charge", HDRS("X-Other: 1", "X-Api-Version: 3", "X-Api-Version: 2"),
         "payment-v2"},
        {RW_METHOD_GET, "", "/api/payment/charge", NULL, "payment"},
        {RW_METHOD_GET, "", "/api/payment", HDRS("X-Api-Version: 2"),
         "payment"}, /* "/api/payment/" is a plain prefix */
        {RW_METHOD_GET, "", "/api/payment", NULL, "payment"},
        {RW_METHOD_GET, "", "/api/paymentx", HDRS("X-Api-Version: 2"), "api"},
        /* headers: regex and present */
        {RW_METHOD_GET, "", "/hdr", HDRS("X-Tenant: t42"), "hdr-regex"},
        {RW_METHOD_GET, "", "/hdr", HDRS("X-Tenant: x42"), "catchall"},
        {RW_METHOD_GET, "", "/hdr", HDRS("X-Tenant: t42x"), "catchall"},
        {RW_METHOD_GET, "", "/hdr", HDRS("X-Debug: "), "hdr-present"},
        {RW_METHOD_GET, "", "/hdr", HDRS("X-Debug: 1", "X-Tenant: t9"), "hdr-regex"},
        {RW_METHOD_GET, "", "/hdr", HDRS("X-Debug: 1", "X-Tenant: t1"), "hdr-both"},
        /* query: present, exact after percent-decoding, regex */
        {RW_METHOD_GET, "", "/search?q=shoes", NULL, "search-q"},
        {RW_METHOD_GET, "", "/search?q", NULL, "search-q"},
        {RW_METHOD_GET, "", "/search?q=", NULL, "search-q"},
        {RW_METHOD_GET, "", "/search?qq=1", NULL, "catchall"},
        {RW_METHOD_GET, "", "/search?lang=en+us", NULL, "search-lang"},
        {RW_METHOD_GET, "", "/search?a=1&lang=en%20us&b=2", NULL, "search-lang"},
        {RW_METHOD_GET, "", "/search?l%61ng=e%6E%20us", NULL, "search-lang"},
        {RW_METHOD_GET, "", "/search?lang=en", NULL, "catchall"},
        {RW_METHOD_GET, "", "/search?page=12", NULL, "search-page"},
        {RW_METHOD_GET, "", "/search?page=%31%32", NULL, "search-page"},
        {RW_METHOD_GET, "", "/search?page=1x", NULL, "catchall"},
        {RW_METHOD_GET, "", "/search?page=1x&page=3", NULL, "search-page"},
        {RW_METHOD_GET, "", "/search?&&page=3&", NULL, "search-page"},
        {RW_METHOD_GET, "", "/search", NULL, "catchall"},
        /* longest prefix fails its predicates: fall back to a shorter one */
        {RW_METHOD_GET, "", "/deep/er/x", HDRS("X-Need: yes"), "deeper-needs-header"},
        {RW_METHOD_GET, "", "/deep/er/x", NULL, "deep"},
        {RW_METHOD_GET, "", "/deep/erx", HDRS("X-Need: yes"), "deep"},
        /* path-less routes rank below paths; host still counts among them */
        {RW_METHOD_GET, "other.example.com", "/nothing", NULL, "catchall-host"},
        {RW_METHOD_GET, "other.example.com", "/api", NULL, "api"},
        {RW_METHOD_GET, "", "/nothing", NULL, "catchall"},
        {RW_METHOD_OTHER, "", "/nothing", NULL, "catchall"},
    };
    for (size_t i = 0; i < RW_ARRAY_LEN(cases); i++) {
        const char *got = match_h(cases[i].method, cases[i].host, cases[i].target, cases[i].hdrs);
        cr_expect_str_eq(got, cases[i].want, "case %zu: %s %s: got %s, want %s", i, cases[i].host,
                         cases[i].target, got, cases[i].want);
    }
}

Test(router, header_regex_value_not_nul_terminated)
{
    rw_route_cfg *rt = route("tenant");
    path(rt, RW_PATH_PREFIX, "/");
    header(rt, "X-Tenant", RW_VALUE_REGEX, "^t[0-9]+$");
    build();
    const char buf[] = "X-Tenantt42zz";
    rw_http_header h = {{buf, 8}, {buf + 8, 3}}; /* value "t42", followed by "zz" */
    rw_route_input in = {.method = RW_METHOD_GET, .path = "/a", .path_len = 2, .headers = &h, .nheaders = 1};
    cr_assert_eq(rw_router_match(router, &in), 0);
    h.value.len = 5; /* "t42zz" */
    cr_assert_eq(rw_router_match(router, &in), -1);
    h.value.len = 0;
    cr_assert_eq(rw_router_match(router, &in), -1);
}

Test(router, regex_path_uses_path_len)
{
    path(route("re"), RW_PATH_REGEX, "^/a/[0-9]+$");
    build();
    const char p[] = "/a/12/extra";
    rw_route_input in = {.method = RW_METHOD_GET, .path = p, .path_len = 5};
    cr_assert_eq(rw_router_match(router, &in), 0);
    in.path_len = sizeof p - 1;
    cr_assert_eq(rw_router_match(router, &in), -1);
}

Test(router, trailing_slash_prefix)
{
    path(route("api-slash"), RW_PATH_PREFIX, "/api/");
    path(route("root"), RW_PATH_PREFIX, "/");
    build();
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/api/x"), "api-slash");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/api/"), "api-slash");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/api"), "root",
                     "a trailing-slash prefix is a plain string prefix");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/api/x/y/z"), "api-slash");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/apix"), "root");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/"), "root");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/other/thing"), "root");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "*"), "-", "not a path: no prefix applies");
}

Test(router, trailing_slash_prefix_falls_back_to_shorter)
{
    path(route("long-slash"), RW_PATH_PREFIX, "/p/long/");
    path(route("short-slash"), RW_PATH_PREFIX, "/p/");
    build();
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/p/long"), "short-slash");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/p/long/"), "long-slash");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/p/longer"), "short-slash");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/p"), "-");
}

Test(router, slash_and_plain_prefix_on_same_segments)
{
    path(route("plain"), RW_PATH_PREFIX, "/api");
    path(route("slash"), RW_PATH_PREFIX, "/api/"); /* the longer prefix */
    rw_route_cfg *rt = route("slash-post");
    path(rt, RW_PATH_PREFIX, "/api/");
    rt->methods = M(POST);
    build();
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/api/x"), "slash");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/api"), "plain");
    cr_expect_str_eq(match(RW_METHOD_POST, "", "/api/x"), "slash-post");
}

Test(router, longest_prefix)
{
    path(route("a"), RW_PATH_PREFIX, "/a");
    path(route("abc"), RW_PATH_PREFIX, "/a/b/c");
    path(route("ab"), RW_PATH_PREFIX, "/a/b");
    path(route("x-y"), RW_PATH_PREFIX, "/x/y");
    build();
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/a/b/c/d"), "abc");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/a/b/c"), "abc");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/a/b/x"), "ab");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/a/bc"), "a");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/a"), "a");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/x"), "-", "intermediate trie node has no routes");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/x/y/z"), "x-y");
}

Test(router, methods_filter)
{
    rw_route_cfg *rt = route("ro");
    path(rt, RW_PATH_PREFIX, "/r");
    rt->methods = M(GET) | M(HEAD);
    rt = route("rw");
    path(rt, RW_PATH_PREFIX, "/r");
    rt->methods = M(POST) | M(PUT) | M(PATCH) | M(DELETE);
    build();
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/r"), "ro");
    cr_expect_str_eq(match(RW_METHOD_HEAD, "", "/r"), "ro");
    cr_expect_str_eq(match(RW_METHOD_PATCH, "", "/r"), "rw");
    cr_expect_str_eq(match(RW_METHOD_OPTIONS, "", "/r"), "-");
    cr_expect_str_eq(match(RW_METHOD_OTHER, "", "/r"), "-");
    cr_expect_str_eq(match(99, "", "/r"), "-", "an out-of-range method matches no method set");
}

Test(router, equal_rank_config_order_and_multi_paths)
{
    path(route("first"), RW_PATH_PREFIX, "/p");
    path(route("second"), RW_PATH_PREFIX, "/p");
    rw_route_cfg *rt = route("multi");
    path(rt, RW_PATH_EXACT, "/m");
    path(rt, RW_PATH_PREFIX, "/q");
    path(rt, RW_PATH_REGEX, "^/r[0-9]$");
    path(rt, RW_PATH_PREFIX, "/q"); /* duplicate: listed once */
    build();
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/p/x"), "first");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/m"), "multi");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/m/x"), "-");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/q/z"), "multi");
    cr_expect_str_eq(match(RW_METHOD_GET, "", "/r7"), "multi");
}

Test(router, wildcard_and_any_host)
{
    rw_route_cfg *rt = route("any");
    host(rt, "*");
    path(rt, RW_PATH_PREFIX, "/");
    rt = route("wild");
    host(rt, "*.example.com");
    host(rt, "exact.test");
    path(rt, RW_PATH_PREFIX, "/");
    path(route("none"), RW_PATH_PREFIX, "/");
    build();
    cr_expect_str_eq(match(RW_METHOD_GET, "a.example.com", "/"), "wild");
    cr_expect_str_eq(match(RW_METHOD_GET, "EXACT.test", "/"), "wild");
    cr_expect_str_eq(match(RW_METHOD_GET, ".example.com", "/"), "any", "empty label is no label");
    cr_expect_str_eq(match(RW_METHOD_GET, "foo.test", "/"), "any");
}

Test(router, empty_config_and_no_match)
{
    build();
    cr_expect_str_eq(match(RW_METHOD_GET, "h", "/"), "-");
    rw_router_free(router);
    router = NULL;
    path(route("only"), RW_PATH_EXACT, "/only");
    build();
    cr_expect_str_eq(match(RW_METHOD_GET, "h", "/only"), "only");
    cr_expect_str_eq(match(RW_METHOD_GET, "h", "/only/"), "-");
    cr_expect_str_eq(match(RW_METHOD_GET, "h", "/"), "-");
    rw_route_input in = {.method = RW_METHOD_GET, .path = NULL, .path_len = 0};
    cr_expect_eq(rw_router_match(router, &in), -1);
}

Test(router, build_errors)
{
    char err[128];
    path(route("bad"), RW_PATH_PREFIX, "api");
    cr_assert_null(rw_router_build(&cfg, err, sizeof err));
    cr_expect(strstr(err, "bad") != NULL && strstr(err, "'/'") != NULL, "err: %s", err);
    routes[0].paths[0].kind = RW_PATH_REGEX; /* regex without a compiled regex_t */
    cr_assert_null(rw_router_build(&cfg, err, sizeof err));
    cr_expect(strstr(err, "regex") != NULL, "err: %s", err);
    routes[0].paths[0].kind = 7;
    cr_assert_null(rw_router_build(&cfg, err, sizeof err));
    routes[0].paths[0].kind = RW_PATH_PREFIX;
}

Test(router, thousands_of_routes)
{
    enum { N = 1000 };
    char buf[128];
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof buf, "svc%d", i);
        rw_route_cfg *rt = route(buf);
        snprintf(buf, sizeof buf, "/svc%d/v1", i);
        path(rt, RW_PATH_PREFIX, buf);
        snprintf(buf, sizeof buf, "/health/svc%d", i);
        path(rt, RW_PATH_EXACT, buf);
        if (i % 2 == 0) {
            snprintf(buf, sizeof buf, "svc%d-host", i);
            rt = route(buf);
            snprintf(buf, sizeof buf, "/svc%d/v1/", i);
            path(rt, RW_PATH_PREFIX, buf);
            snprintf(buf, sizeof buf, "h%d.example.com", i);
            host(rt, buf);
        }
    }
    path(route("fallback"), RW_PATH_PREFIX, "/");
    build();
    char want[64], target[128];
    for (int i = 0; i < N; i++) {
        snprintf(want, sizeof want, "svc%d", i);
        snprintf(target, sizeof target, "/svc%d/v1/items/%d", i, i);
        cr_assert_str_eq(match(RW_METHOD_GET, "", target), want);
        snprintf(target, sizeof target, "/health/svc%d", i);
        cr_assert_str_eq(match(RW_METHOD_GET, "", target), want);
        snprintf(target, sizeof target, "/svc%d/v2", i);
        cr_assert_str_eq(match(RW_METHOD_GET, "", target), "fallback");
        char h[64];
        snprintf(h, sizeof h, "h%d.example.com", i);
        snprintf(target, sizeof target, "/svc%d/v1/x", i);
        if (i % 2 == 0)
            snprintf(want, sizeof want, "svc%d-host", i);
        cr_assert_str_eq(match(RW_METHOD_GET, h, target), want);
    }
    /* lookups stay cheap: O(segments), not O(routes) */
    rw_route_input in = {.method = RW_METHOD_GET, .path = "/svc999/v1/a/b/c", .path_len = 16};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int sink = 0;
    for (int k = 0; k < 200000; k++)
        sink += rw_router_match(router, &in);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 200000;
    cr_log_info("match over %d routes: %.0f ns", (int)cfg.nroutes, ns);
    cr_expect_eq(sink, 200000 * rw_router_match(router, &in));
    cr_expect_lt(ns, 20000.0, "a match takes %.0f ns", ns);
}

/* ---- upstream target ---------------------------------------------------- */

static const char *target(rw_route_cfg *rt, const char *p, const char *q, char *out, size_t cap)
{
    ssize_t n = rw_route_upstream_target(rt, p, strlen(p), (rw_str){q, strlen(q)}, out, cap);
    if (n < 0)
        return NULL;
    cr_assert_eq((size_t)n, strlen(out));
    return out;
}

Test(router, upstream_target_plain)
{
    rw_route_cfg *rt = route("plain");
    char out[64];
    cr_expect_str_eq(target(rt, "/a/b", "", out, sizeof out), "/a/b");
    cr_expect_str_eq(target(rt, "/a/b", "x=1&y=2", out, sizeof out), "/a/b?x=1&y=2");
}

Test(router, upstream_target_strip)
{
    rw_route_cfg *rt = route("strip");
    rt->strip_path = strdup("/api");
    char out[64];
    cr_expect_str_eq(target(rt, "/api/auth/login", "", out, sizeof out), "/auth/login");
    cr_expect_str_eq(target(rt, "/api/auth/login", "a=b", out, sizeof out), "/auth/login?a=b");
    cr_expect_str_eq(target(rt, "/api", "", out, sizeof out), "/");
    cr_expect_str_eq(target(rt, "/api", "q=1", out, sizeof out), "/?q=1");
    cr_expect_str_eq(target(rt, "/api/", "", out, sizeof out), "/");
    cr_expect_str_eq(target(rt, "/apix/y", "", out, sizeof out), "/apix/y", "segment-aware");
    cr_expect_str_eq(target(rt, "/other", "", out, sizeof out), "/other");
    free(rt->strip_path);
    rt->strip_path = strdup("/api/");
    cr_expect_str_eq(target(rt, "/api/auth/login", "", out, sizeof out), "/auth/login");
    cr_expect_str_eq(target(rt, "/api", "", out, sizeof out), "/");
    free(rt->strip_path);
    rt->strip_path = strdup("/");
    cr_expect_str_eq(target(rt, "/api/x", "", out, sizeof out), "/api/x");
}

Test(router, upstream_target_rewrite)
{
    rw_route_cfg *rt = route("rewrite");
    char out[128];
    rt->rewrite_re = compile("^/api/orders(.*)$");
    rt->rewrite_to = "/orders$1";
    cr_expect_str_eq(target(rt, "/api/orders/5", "", out, sizeof out), "/orders/5");
    cr_expect_str_eq(target(rt, "/api/orders", "x=1", out, sizeof out), "/orders?x=1");
    cr_expect_str_eq(target(rt, "/other/5", "x=1", out, sizeof out), "/other/5?x=1", "no match: unchanged");
    regfree(rt->rewrite_re);
    free(rt->rewrite_re);

    rt->rewrite_re = compile("^/u/([a-z]+)/([0-9]+)$");
    rt->rewrite_to = "/users/$2/$1$9/[$0]/$$5$";
    cr_expect_str_eq(target(rt, "/u/bob/17", "", out, sizeof out), "/users/17/bob/[/u/bob/17]/$5$");
    regfree(rt->rewrite_re);
    free(rt->rewrite_re);

    /* unanchored: only the matched part is replaced */
    rt->rewrite_re = compile("/v1/");
    rt->rewrite_to = "/v2/";
    cr_expect_str_eq(target(rt, "/x/v1/y", "q", out, sizeof out), "/x/v2/y?q");
    regfree(rt->rewrite_re);
    free(rt->rewrite_re);

    /* strip first, then rewrite the stripped path */
    rt->strip_path = strdup("/api");
    rt->rewrite_re = compile("^/v([0-9])/(.*)$");
    rt->rewrite_to = "/version$1/$2";
    cr_expect_str_eq(target(rt, "/api/v3/things", "", out, sizeof out), "/version3/things");
    rt->rewrite_to = NULL;
}

Test(router, upstream_target_overflow)
{
    rw_route_cfg *rt = route("o");
    char out[16];
    /* "/abc?d=1" is 8 bytes + NUL */
    cr_expect_eq(rw_route_upstream_target(rt, "/abc", 4, RW_STR("d=1"), out, 9), 8);
    cr_expect_str_eq(out, "/abc?d=1");
    cr_expect_eq(rw_route_upstream_target(rt, "/abc", 4, RW_STR("d=1"), out, 8), -1);
    cr_expect_eq(rw_route_upstream_target(rt, "/abc", 4, RW_STR("d=1"), out, 5), -1);
    cr_expect_eq(rw_route_upstream_target(rt, "/abc", 4, RW_STR(""), out, 5), 4);
    cr_expect_eq(rw_route_upstream_target(rt, "/abc", 4, RW_STR(""), out, 0), -1);
    rt->rewrite_re = compile("^(.*)$");
    rt->rewrite_to = "$1$1$1$1$1";
    cr_expect_eq(rw_route_upstream_target(rt, "/abc", 4, RW_STR(""), out, sizeof out), -1);
    cr_expect_eq(rw_route_upstream_target(rt, "/ab", 3, RW_STR(""), out, sizeof out), 15);
    cr_expect_str_eq(out, "/ab/ab/ab/ab/ab");
    rt->rewrite_to = NULL;
}
