/* test_filters.c - CIDR parsing and matching, and the filters compiled from a
 * config run against parsed requests (key_auth, acl, rate_limit, headers). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ringway/cidr.h"
#include "ringway/config.h"
#include "ringway/filters.h"
#include "ringway/http.h"

static bool in(const char *cidr, const char *addr)
{
    rw_cidr c;
    rw_ipaddr a;
    cr_assert_eq(rw_cidr_parse(cidr, &c), 0, "%s", cidr);
    cr_assert_eq(rw_ipaddr_parse(addr, strlen(addr), &a), 0, "%s", addr);
    return rw_cidr_match(&c, &a);
}

Test(cidr, parse_good_and_bad)
{
    static const char *const good[] = {"10.0.0.0/8",    "0.0.0.0/0", "192.168.1.7", "192.168.1.7/32", "::/0",
                                       "2001:db8::/32", "::1",       "fe80::/10",   "100.64.0.0/10"};
    static const char *const bad[] = {"10.0.0.1/8",     "10.0.0.0/33", "::1/129", "10.0.0.0/", "10.0.0.0/-1",
                                      "10.0.0/8",       "300.0.0.0/8", "abc",     "",          "10.0.0.0/8x",
                                      "2001:db8::1/32", "1.2.3.4/0012"};
    rw_cidr c;
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        cr_expect_eq(rw_cidr_parse(good[i], &c), 0, "%s refused", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_neq(rw_cidr_parse(bad[i], &c), 0, "%s accepted", bad[i]);
}

Test(cidr, match_v4_v6_and_mapped)
{
    cr_expect(in("10.0.0.0/8", "10.255.1.2"));
    cr_expect(!in("10.0.0.0/8", "11.0.0.1"));
    cr_expect(in("100.64.0.0/10", "100.127.255.255"));
    cr_expect(!in("100.64.0.0/10", "100.128.0.0"));
    cr_expect(in("0.0.0.0/0", "8.8.8.8"));
    cr_expect(!in("0.0.0.0/0", "::1"), "families never mix");
    cr_expect(in("192.168.1.7", "192.168.1.7"));
    cr_expect(!in("192.168.1.7", "192.168.1.8"));
    cr_expect(in("2001:db8::/32", "2001:db8:ffff::1"));
    cr_expect(!in("2001:db8::/32", "2001:db9::1"));
    cr_expect(in("fe80::/10", "febf::1"));
    cr_expect(!in("fe80::/10", "fec0::1"));
    cr_expect(in("10.0.0.0/8", "::ffff:10.1.2.3"), "IPv4-mapped IPv6 is IPv4");
    cr_expect(in("::1", "[::1]"));
    rw_ipaddr a;
    cr_expect_neq(rw_ipaddr_parse("1.2.3.4:80", 10, &a), 0);
    cr_expect_neq(rw_ipaddr_parse("", 0, &a), 0);
}

/* ---- filters run against parsed requests ---- */

static rw_config *load(const char *yaml)
{
    char err[512];
    rw_config *cfg = NULL;
    int rc = rw_config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    return cfg;
}

static void parse(const char *raw, rw_http_request *rq)
{
    rw_http_limits lim;
    rw_http_limits_default(&lim);
    int rc = rw_http_parse_request(raw, strlen(raw), &lim, rq);
    cr_assert_gt(rc, 0, "parse %d", rc);
}

static int run(rw_filter_worker *fw, const rw_filters *f, const char *raw, const char *peer, uint64_t now_ms,
               rw_filter_result *out)
{
    static rw_http_request rq;
    parse(raw, &rq);
    rw_filter_input in = {
        .rq = &rq, .peer = peer, .peer_len = strlen(peer), .route = 0, .now_ms = now_ms, .now_s = 1700000000};
    return rw_filters_run(fw, f, &in, out);
}

static const char *added(const rw_filter_result *r, const char *name)
{
    static char buf[256];
    for (uint32_t i = 0; i < r->nadd; i++)
        if (r->add[i].name.len == strlen(name) &&
            strncasecmp(r->add[i].name.p, name, r->add[i].name.len) == 0) {
            snprintf(buf, sizeof(buf), "%.*s", (int)r->add[i].value.len, r->add[i].value.p);
            return buf;
        }
    return NULL;
}

static const char *const key_yaml =
    "consumers:\n"
    "  - {name: app1, id: c-001, groups: [apps, beta], keys: [app-key-12345]}\n"
    "  - {name: app2, groups: [other], keys: [\"sha256:"
    "b16c122f5d92630a03127b03088dd2dd13ac3ac69b8c72c10409cc4ec4d411d6\"]}\n"
    "routes:\n"
    "  - name: r\n"
    "    respond: {status: 200}\n"
    "    filters:\n"
    "      - key_auth: {header: X-API-Key, hide_credentials: true}\n"
    "      - acl: {allow_groups: [apps], deny_ips: [\"10.0.0.0/8\"]}\n";

Test(filters, key_auth_and_acl)
{
    rw_config *cfg = load(key_yaml);
    char err[256];
    rw_filters *f = rw_filters_build(cfg, err, sizeof(err));
    cr_assert_not_null(f, "%s", err);
    rw_filter_worker *fw = rw_filter_worker_new(128, 0);
    rw_filter_result r;

    cr_expect_eq(
        run(fw, f, "GET / HTTP/1.1\r\nHost: a\r\nX-API-Key: app-key-12345\r\n\r\n", "127.0.0.1", 1, &r), 0);
    cr_expect_eq(r.consumer, 0);
    cr_expect_str_eq(added(&r, "X-Consumer-ID"), "c-001");
    cr_expect_str_eq(added(&r, "X-Consumer-Username"), "app1");
    cr_expect_str_eq(added(&r, "X-Consumer-Groups"), "apps, beta");
    cr_expect(rw_filters_strip(f, 0, (rw_str){"x-api-key", 9}), "hide_credentials strips the key header");

    cr_expect_eq(run(fw, f, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "127.0.0.1", 1, &r), 401);
    cr_expect_str_eq(r.error, "missing API key");
    cr_expect(strstr(r.extra, "WWW-Authenticate: Key") != NULL, "%s", r.extra);
    cr_expect_eq(
        run(fw, f, "GET / HTTP/1.1\r\nHost: a\r\nX-API-Key: app-key-1234\r\n\r\n", "127.0.0.1", 1, &r), 401);
    cr_expect_eq(
        run(fw, f, "GET / HTTP/1.1\r\nHost: a\r\nX-API-Key: app-key-12345\r\n\r\n", "10.1.2.3", 1, &r), 403,
        "deny_ips runs before authentication");
    cr_expect_str_eq(r.error, "address not allowed");
    /* a key stored as sha256: matches its plain value; app2 is not in "apps" */
    cr_expect_eq(
        run(fw, f, "GET / HTTP/1.1\r\nHost: a\r\nX-API-Key: app2-secret-key\r\n\r\n", "127.0.0.1", 1, &r),
        403);
    cr_expect_str_eq(r.error, "consumer not allowed");
    rw_filter_worker_free(fw, 1);
    rw_filters_release(f, cfg);
    rw_filters_gc();
}

Test(filters, rate_limit_headers_and_refusal)
{
    rw_config *cfg = load("routes:\n"
                          "  - name: r\n"
                          "    respond: {status: 200}\n"
                          "    filters:\n"
                          "      - rate_limit: {key: ip, rate: 3/min, headers: true}\n");
    char err[256];
    rw_filters *f = rw_filters_build(cfg, err, sizeof(err));
    cr_assert_not_null(f, "%s", err);
    rw_filter_worker *fw = rw_filter_worker_new(128, 0);
    rw_filter_result r;
    const char *req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(run(fw, f, req, "192.0.2.1", 1000, &r), 0, "request %d", i);
        cr_expect(strstr(r.extra, "RateLimit-Limit: 3\r\n") != NULL, "%s", r.extra);
    }
    cr_expect_eq(run(fw, f, req, "192.0.2.1", 1000, &r), 429);
    cr_expect(strstr(r.extra, "Retry-After: 20\r\n") != NULL, "one token per 20 s: %s", r.extra);
    cr_expect_eq(run(fw, f, req, "192.0.2.2", 1000, &r), 0, "another client has its own bucket");
    cr_expect_eq(run(fw, f, req, "192.0.2.1", 21000, &r), 0, "refilled after 20 s");
    rw_filter_worker_free(fw, 21000);
    rw_filters_release(f, cfg);
    rw_filters_gc();
}
