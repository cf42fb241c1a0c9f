/* test_config.c - configuration loading: value syntaxes, a full valid config,
 * the embedded default, a table of broken configs with their exact messages,
 * and truncated/garbage documents that must never crash. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringway/common.h"
#include "ringway/config.h"
#include "ringway/http.h"

#define M(m) (1u << (m))

static rw_config *load_ok(const char *yaml)
{
    rw_config *cfg = NULL;
    char err[512] = "";
    int rc = rw_config_load_string(yaml, strlen(yaml), "ringway.yaml", &cfg, err, sizeof(err));
    cr_assert_eq(rc, 0, "load failed: %s", err);
    cr_assert_not_null(cfg);
    return cfg;
}

/* ---- units --------------------------------------------------------------- */

Test(config_units, durations)
{
    static const struct {
        const char *in;
        uint64_t ms;
    } ok[] = {
        {"0", 0},        {"250", 250},   {"250ms", 250},
        {"10s", 10000},  {"5m", 300000}, {"5min", 300000},
        {"1h", 3600000}, {"0s", 0},      {"18446744073709551615", UINT64_MAX},
    };
    static const char *const bad[] = {
        "",
        "s",
        "ms",
        "10x",
        "10 s",
        " 10s",
        "10s ",
        "-1s",
        "+1s",
        "1.5s",
        "10S",
        "1hh",
        "18446744073709551616",
        "18446744073709551615s",
        "5d",
        "0x10",
    };
    for (size_t i = 0; i < RW_ARRAY_LEN(ok); i++) {
        uint64_t v = 12345;
        cr_expect_eq(rw_parse_duration_ms(ok[i].in, &v), 0, "'%s' should parse", ok[i].in);
        cr_expect_eq(v, ok[i].ms, "'%s' -> %llu", ok[i].in, (unsigned long long)v);
    }
    for (size_t i = 0; i < RW_ARRAY_LEN(bad); i++) {
        uint64_t v = 12345;
        cr_expect_eq(rw_parse_duration_ms(bad[i], &v), -EINVAL, "'%s' should fail", bad[i]);
        cr_expect_eq(v, 12345, "'%s' must not write", bad[i]);
    }
    uint64_t v;
    cr_expect_eq(rw_parse_duration_ms(NULL, &v), -EINVAL);
}

Test(config_units, sizes)
{
    static const struct {
        const char *in;
        uint64_t bytes;
    } ok[] = {
        {"0", 0},          {"512", 512},      {"16k", 16384},     {"16K", 16384},        {"16kb", 16384},
        {"10m", 10485760}, {"10M", 10485760}, {"1g", 1073741824}, {"2G", 2147483648ull}, {"512b", 512},
    };
    static const char *const bad[] = {
        "",
        "k",
        "16x",
        "16 k",
        "-1",
        "1.5k",
        "16kk",
        "16kib",
        "99999999999999999999",
        "17179869184g",
        "unlimited",
    };
    for (size_t i = 0; i < RW_ARRAY_LEN(ok); i++) {
        uint64_t v = 7;
        cr_expect_eq(rw_parse_size(ok[i].in, &v), 0, "'%s' should parse", ok[i].in);
        cr_expect_eq(v, ok[i].bytes, "'%s' -> %llu", ok[i].in, (unsigned long long)v);
    }
    for (size_t i = 0; i < RW_ARRAY_LEN(bad); i++) {
        uint64_t v = 7;
        cr_expect_eq(rw_parse_size(bad[i], &v), -EINVAL, "'%s' should fail", bad[i]);
    }
}

Test(config_units, rates)
{
    static const struct {
        const char *in;
        double per_sec;
    } ok[] = {
        {"10/s", 10},  {"10/sec", 10}, {"100/min", 100.0 / 60}, {"100/m", 100.0 / 60},  {"3600/hour", 1},
        {"3600/h", 1}, {"0.5/s", 0.5}, {"86400/day", 1},        {"1/minute", 1.0 / 60},
    };
    static const char *const bad[] = {
        "",     "10",   "10/",  "/s",   "0/s",       "10/x",       "10 /s",
        "-1/s", "1./s", ".5/s", "10/S", "Unlimited", "unlimited ", "10/s/s",
    };
    for (size_t i = 0; i < RW_ARRAY_LEN(ok); i++) {
        double r = -1;
        bool unl = true;
        cr_expect_eq(rw_parse_rate(ok[i].in, &r, &unl), 0, "'%s' should parse", ok[i].in);
        cr_expect(fabs(r - ok[i].per_sec) < 1e-9, "'%s' -> %f", ok[i].in, r);
        cr_expect_not(unl);
    }
    double r = -1;
    bool unl = false;
    cr_expect_eq(rw_parse_rate("unlimited", &r, &unl), 0);
    cr_expect(unl);
    for (size_t i = 0; i < RW_ARRAY_LEN(bad); i++)
        cr_expect_eq(rw_parse_rate(bad[i], &r, &unl), -EINVAL, "'%s' should fail", bad[i]);
}

Test(config_units, sockaddrs)
{
    static const struct {
        const char *in;
        int family;
        const char *text;
        uint16_t port;
    } ok[] = {
        {"1.2.3.4:80", AF_INET, "1.2.3.4:80", 80},
        {"0.0.0.0:8080", AF_INET, "0.0.0.0:8080", 8080},
        {":80", AF_INET, "0.0.0.0:80", 80},
        {"[::1]:80", AF_INET6, "[::1]:80", 80},
        {"[::]:8080", AF_INET6, "[::]:8080", 8080},
        {"[2001:DB8:0:0::1]:65535", AF_INET6, "[2001:db8::1]:65535", 65535},
        {"127.0.0.1:00443", AF_INET, "127.0.0.1:443", 443},
        {"[::ffff:1.2.3.4]:1", AF_INET6, "[::ffff:1.2.3.4]:1", 1},
    };
    static const char *const bad[] = {
        "",
        ":",
        "1.2.3.4",
        "1.2.3.4:",
        "1.2.3.4:0",
        "1.2.3.4:65536",
        "1.2.3.4:080a",
        "1.2.3.4:-1",
        "1.2.3:80",
        "localhost:80",
        "::1:80",
        "[::1]",
        "[::1]80",
        "[]:80",
        "[1.2.3.4]:80",
        "1.2.3.4 :80",
        "1.2.3.4:123456",
        "[fe80::1%eth0]:80",
        "*:80",
        "256.1.1.1:80",
    };
    for (size_t i = 0; i < RW_ARRAY_LEN(ok); i++) {
        rw_sockaddr a;
        cr_expect_eq(rw_parse_sockaddr(ok[i].in, &a), 0, "'%s' should parse", ok[i].in);
        cr_expect_eq(a.ss.ss_family, ok[i].family, "'%s' family", ok[i].in);
        cr_expect_str_eq(a.text, ok[i].text);
        if (ok[i].family == AF_INET) {
            cr_expect_eq(a.len, sizeof(struct sockaddr_in));
            cr_expect_eq(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), ok[i].port);
        } else {
            cr_expect_eq(a.len, sizeof(struct sockaddr_in6));
            cr_expect_eq(ntohs(((struct sockaddr_in6 *)&a.ss)->sin6_port), ok[i].port);
        }
    }
    for (size_t i = 0; i < RW_ARRAY_LEN(bad); i++) {
        rw_sockaddr a;
        cr_expect_eq(rw_parse_sockaddr(bad[i], &a), -EINVAL, "'%s' should fail", bad[i]);
    }
}

/* ---- a full configuration ------------------------------------------------ */

static const char full_yaml[] =
    "listen: [\"0.0.0.0:8080\", \"[::]:8080\"]\n" /* 1 */
    "admin: \"127.0.0.1:9901\"\n"
    "workers: auto\n"
    "io: epoll\n"
    "max_conns: 20000\n" /* 5 */
    "drain_timeout: 15s\n"
    "\n"
    "http:\n"
    "  client_header_timeout: 10s\n"
    "  client_body_timeout: 30s\n" /* 10 */
    "  keepalive_timeout: 75s\n"
    "  send_timeout: 20s\n"
    "  max_header_bytes: 16k\n"
    "  max_request_line: 4k\n"
    "  max_body_bytes: 10m\n" /* 15 */
    "  max_headers: 64\n"
    "\n"
    "redis:\n"
    "  url: \"redis://redis:6379/0\"\n"
    "  sync_interval: 100ms\n" /* 20 */
    "  on_failure: deny\n"
    "\n"
    "services:\n"
    "  - name: orders\n"
    "    lb: hash\n" /* 25 */
    "    hash_on: \"header:X-User-ID\"\n"
    "    timeouts: {connect: 1s, first_byte: 5s, total: 30s}\n"
    "    keepalive: {max_idle: 32, idle_timeout: 90s}\n"
    "    instances:\n"
    "      - {address: \"127.0.0.1:3001\", weight: 2}\n" /* 30 */
    "      - {address: \"127.0.0.2:3001\"}\n"
    "  - name: payment\n"
    "    lb: least_conn\n"
    "    instances:\n"
    "      - {address: \"localhost:3002\"}\n" /* 35 */
    "  - name: auth\n"
    "    lb: p2c\n"
    "    instances: [\"[::1]:3003\"]\n"
    "\n"
    "consumers:\n" /* 40 */
    "  - name: default-app\n"
    "    id: c-001\n"
    "    groups: [apps]\n"
    "    tier: free\n"
    "    keys: [\"app-key-12345\"]\n" /* 45 */
    "  - name: premium-app\n"
    "    tier: premium\n"
    "    keys: [\"sha256:4B2E9F0C7F6D5C3A2E1B0A99887766554433221100FFEEDDCCBBAA9988776655\"]\n"
    "\n"
    "tiers:\n" /* 50 */
    "  free:       {rate: 100/min}\n"
    "  paid:       {rate: 1000/min}\n"
    "  premium:    {rate: 10000/min}\n"
    "  enterprise: {rate: unlimited}\n"
    "\n" /* 55 */
    "routes:\n"
    "  - name: maintenance\n"
    "    paths: [{exact: /status.txt}]\n"
    "    respond: {status: 200, headers: {Content-Type: text/plain}, body: \"ok\\n\"}\n"
    "\n" /* 60 */
    "  - name: auth\n"
    "    methods: [POST]\n"
    "    paths: [{prefix: /api/auth/}]\n"
    "    service: auth\n"
    "    strip_path: /api\n" /* 65 */
    "    filters: []\n"
    "\n"
    "  - name: orders\n"
    "    hosts: [\"API.Example.com\", \"*.example.org\"]\n"
    "    methods: [GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH]\n" /* 70 */
    "    paths: [{prefix: /api/orders}, {regex: \"^/v[0-9]+/orders\"}, {exact: /a%7Eb%2f}]\n"
    "    service: orders\n"
    "    rewrite: {from: \"^/api/orders(.*)$\", to: \"/orders$1\"}\n"
    "    preserve_host: true\n"
    "\n" /* 75 */
    "  - name: payment\n"
    "    paths: [{prefix: /api/payment/}]\n"
    "    headers:\n"
    "      X-Api-Version: \"2\"\n"
    "      X-Trace: {regex: \"^[a-f0-9]+$\"}\n" /* 80 */
    "      Authorization: {present: true}\n"
    "    query: {debug: \"1\", v: {regex: \"^[0-9]$\"}, token: {present: true}}\n"
    "    service: payment\n"
    "\n"
    "  - paths: [{prefix: /}]\n" /* 85 */
    "    respond:\n"
    "      status: 404\n"
    "      body: |\n"
    "        not found\n";

static const struct sockaddr_in *v4(const rw_sockaddr *a)
{
    return (const struct sockaddr_in *)&a->ss;
}

Test(config_load, full_config)
{
    rw_config *cfg = load_ok(full_yaml);

    cr_expect_str_eq(cfg->source, "ringway.yaml");
    cr_assert_eq(cfg->nlisten, 2);
    cr_expect_str_eq(cfg->listen[0].text, "0.0.0.0:8080");
    cr_expect_eq(cfg->listen[0].ss.ss_family, AF_INET);
    cr_expect_str_eq(cfg->listen[1].text, "[::]:8080");
    cr_expect_eq(cfg->listen[1].ss.ss_family, AF_INET6);
    cr_expect(cfg->has_admin);
    cr_expect_str_eq(cfg->admin.text, "127.0.0.1:9901");
    cr_expect_eq(cfg->workers, 0);
    cr_expect_eq(cfg->io, RW_IO_EPOLL);
    cr_expect_eq(cfg->max_conns, 20000);
    cr_expect_eq(cfg->drain_timeout_ms, 15000);

    cr_expect_eq(cfg->http.client_header_timeout_ms, 10000);
    cr_expect_eq(cfg->http.client_body_timeout_ms, 30000);
    cr_expect_eq(cfg->http.keepalive_timeout_ms, 75000);
    cr_expect_eq(cfg->http.send_timeout_ms, 20000);
    cr_expect_eq(cfg->http.max_header_bytes, 16384);
    cr_expect_eq(cfg->http.max_request_line, 4096);
    cr_expect_eq(cfg->http.max_body_bytes, 10u << 20);
    cr_expect_eq(cfg->http.max_headers, 64);

    cr_expect_str_eq(cfg->redis.url, "redis://redis:6379/0");
    cr_expect_eq(cfg->redis.sync_interval_ms, 100);
    cr_expect_eq(cfg->redis.on_failure, RW_REDIS_DENY);

    cr_assert_eq(cfg->nservices, 3);
    const rw_service_cfg *s = &cfg->services[0];
    cr_expect_str_eq(s->name, "orders");
    cr_expect_eq(s->lb, RW_LB_HASH);
    cr_expect_eq(s->hash_on, RW_HASH_HEADER);
    cr_expect_str_eq(s->hash_key, "X-User-ID");
    cr_expect_eq(s->connect_timeout_ms, 1000);
    cr_expect_eq(s->first_byte_timeout_ms, 5000);
    cr_expect_eq(s->total_timeout_ms, 30000);
    cr_expect_eq(s->keepalive_max_idle, 32);
    cr_expect_eq(s->keepalive_idle_timeout_ms, 90000);
    cr_expect_eq(s->line, 24);
    cr_assert_eq(s->ninstances, 2);
    cr_expect_str_eq(s->instances[0].address, "127.0.0.1:3001");
    cr_expect_str_eq(s->instances[0].host, "127.0.0.1");
    cr_expect_eq(s->instances[0].port, 3001);
    cr_expect_eq(s->instances[0].weight, 2);
    cr_expect_eq(s->instances[0].line, 30);
    cr_expect_eq(s->instances[0].addr.ss.ss_family, AF_INET);
    cr_expect_eq(s->instances[0].addr.len, sizeof(struct sockaddr_in));
    cr_expect_eq(ntohs(v4(&s->instances[0].addr)->sin_port), 3001);
    cr_expect_eq(ntohl(v4(&s->instances[0].addr)->sin_addr.s_addr), 0x7f000001);
    cr_expect_str_eq(s->instances[0].addr.text, "127.0.0.1:3001");
    cr_expect_eq(s->instances[1].weight, 1);
    cr_expect_str_eq(s->instances[1].addr.text, "127.0.0.2:3001");

    s = &cfg->services[1];
    cr_expect_str_eq(s->name, "payment");
    cr_expect_eq(s->lb, RW_LB_LEAST_CONN);
    cr_expect_eq(s->connect_timeout_ms, 5000); /* defaults */
    cr_expect_eq(s->first_byte_timeout_ms, 60000);
    cr_expect_eq(s->total_timeout_ms, 0);
    cr_expect_eq(s->keepalive_max_idle, 64);
    cr_expect_eq(s->keepalive_idle_timeout_ms, 60000);
    cr_expect_eq(s->max_conns, 1024);
    cr_expect_eq(s->queue_timeout_ms, 0); /* the connect timeout */
    cr_assert_eq(s->ninstances, 1);
    cr_expect_str_eq(s->instances[0].host, "localhost");
    cr_expect_eq(s->instances[0].port, 3002);
    cr_expect(s->instances[0].addr.len > 0);

    s = &cfg->services[2];
    cr_expect_str_eq(s->name, "auth");
    cr_expect_eq(s->lb, RW_LB_P2C);
    cr_assert_eq(s->ninstances, 1);
    cr_expect_str_eq(s->instances[0].address, "[::1]:3003");
    cr_expect_str_eq(s->instances[0].host, "::1");
    cr_expect_eq(s->instances[0].addr.ss.ss_family, AF_INET6);
    cr_expect_str_eq(s->instances[0].addr.text, "[::1]:3003");

    cr_assert_eq(cfg->ntiers, 4);
    cr_expect_str_eq(cfg->tiers[0].name, "free");
    cr_expect(fabs(cfg->tiers[0].rate_per_sec - 100.0 / 60) < 1e-9);
    cr_expect_not(cfg->tiers[0].unlimited);
    cr_expect_str_eq(cfg->tiers[2].name, "premium");
    cr_expect_str_eq(cfg->tiers[3].name, "enterprise");
    cr_expect(cfg->tiers[3].unlimited);

    cr_assert_eq(cfg->nconsumers, 2);
    const rw_consumer_cfg *c = &cfg->consumers[0];
    cr_expect_str_eq(c->name, "default-app");
    cr_expect_str_eq(c->id, "c-001");
    cr_assert_eq(c->ngroups, 1);
    cr_expect_str_eq(c->groups[0], "apps");
    cr_expect_str_eq(c->tier, "free");
    cr_expect_eq(c->tier_index, 0);
    cr_assert_eq(c->nkeys, 1);
    cr_expect_str_eq(c->keys[0], "app-key-12345");
    c = &cfg->consumers[1];
    cr_expect_str_eq(c->id, "premium-app"); /* defaults to the name */
    cr_expect_eq(c->tier_index, 2);
    cr_expect_eq(c->ngroups, 0);
    cr_expect_str_eq(c->keys[0], "sha256:4b2e9f0c7f6d5c3a2e1b0a99887766554433221100ffeeddccbbaa9988776655");

    cr_assert_eq(cfg->nroutes, 5);
    const rw_route_cfg *r = &cfg->routes[0];
    cr_expect_str_eq(r->name, "maintenance");
    cr_expect_eq(r->line, 57);
    cr_expect_eq(r->methods, 0);
    cr_expect_eq(r->nhosts, 0);
    cr_assert_eq(r->npaths, 1);
    cr_expect_eq(r->paths[0].kind, RW_PATH_EXACT);
    cr_expect_str_eq(r->paths[0].value, "/status.txt");
    cr_expect_null(r->paths[0].re);
    cr_expect_null(r->service);
    cr_expect_eq(r->service_index, -1);
    cr_expect(r->has_respond);
    cr_expect_eq(r->respond.status, 200);
    cr_assert_eq(r->respond.nheaders, 1);
    cr_expect_str_eq(r->respond.headers[0].name, "Content-Type");
    cr_expect_str_eq(r->respond.headers[0].value, "text/plain");
    cr_expect_eq(r->respond.body_len, 3);
    cr_expect_str_eq(r->respond.body, "ok\n");

    r = &cfg->routes[1];
    cr_expect_str_eq(r->name, "auth");
    cr_expect_eq(r->methods, M(RW_METHOD_POST));
    cr_expect_eq(r->paths[0].kind, RW_PATH_PREFIX);
    cr_expect_str_eq(r->paths[0].value, "/api/auth/");
    cr_expect_str_eq(r->service, "auth");
    cr_expect_eq(r->service_index, 2);
    cr_expect_str_eq(r->strip_path, "/api");
    cr_expect_not(r->has_respond);
    cr_expect_not(r->preserve_host);
    cr_expect_null(r->rewrite_re);

    r = &cfg->routes[2];
    cr_expect_str_eq(r->name, "orders");
    cr_assert_eq(r->nhosts, 2);
    cr_expect_str_eq(r->hosts[0], "api.example.com");
    cr_expect_str_eq(r->hosts[1], "*.example.org");
    cr_expect_eq(r->methods, M(RW_METHOD_GET) | M(RW_METHOD_HEAD) | M(RW_METHOD_POST) | M(RW_METHOD_PUT) |
                                 M(RW_METHOD_DELETE) | M(RW_METHOD_CONNECT) | M(RW_METHOD_OPTIONS) |
                                 M(RW_METHOD_TRACE) | M(RW_METHOD_PATCH));
    cr_assert_eq(r->npaths, 3);
    cr_expect_str_eq(r->paths[0].value, "/api/orders");
    cr_expect_eq(r->paths[1].kind, RW_PATH_REGEX);
    cr_assert_not_null(r->paths[1].re);
    cr_expect_eq(regexec(r->paths[1].re, "/v2/orders/1", 0, NULL, 0), 0);
    cr_expect_neq(regexec(r->paths[1].re, "/vx/orders", 0, NULL, 0), 0);
    cr_expect_str_eq(r->paths[2].value, "/a~b%2F"); /* normalised like requests */
    cr_expect_eq(r->service_index, 0);
    cr_expect_str_eq(r->rewrite_from, "^/api/orders(.*)$");
    cr_expect_str_eq(r->rewrite_to, "/orders$1");
    cr_assert_not_null(r->rewrite_re);
    regmatch_t m[2];
    cr_expect_eq(regexec(r->rewrite_re, "/api/orders/42", 2, m, 0), 0);
    cr_expect_eq(m[1].rm_so, 11);
    cr_expect(r->preserve_host);

    r = &cfg->routes[3];
    cr_expect_str_eq(r->name, "payment");
    cr_assert_eq(r->nheaders, 3);
    cr_expect_str_eq(r->headers[0].name, "X-Api-Version");
    cr_expect_eq(r->headers[0].kind, RW_VALUE_EXACT);
    cr_expect_str_eq(r->headers[0].value, "2");
    cr_expect_eq(r->headers[1].kind, RW_VALUE_REGEX);
    cr_assert_not_null(r->headers[1].re);
    cr_expect_eq(regexec(r->headers[1].re, "beef01", 0, NULL, 0), 0);
    cr_expect_eq(r->headers[2].kind, RW_VALUE_PRESENT);
    cr_expect_str_eq(r->headers[2].name, "Authorization");
    cr_assert_eq(r->nquery, 3);
    cr_expect_str_eq(r->query[0].name, "debug");
    cr_expect_str_eq(r->query[0].value, "1");
    cr_expect_eq(r->query[1].kind, RW_VALUE_REGEX);
    cr_expect_eq(r->query[2].kind, RW_VALUE_PRESENT);
    cr_expect_eq(r->service_index, 1);

    r = &cfg->routes[4];
    cr_expect_str_eq(r->name, "route-4");
    cr_expect_eq(r->line, 85);
    cr_expect_eq(r->respond.status, 404);
    cr_expect_eq(r->respond.nheaders, 0);
    cr_expect_str_eq(r->respond.body, "not found\n");

    rw_config_free(cfg);
}

Test(config_load, defaults_for_minimal_document)
{
    rw_config *cfg = load_ok("{}\n");
    cr_assert_eq(cfg->nlisten, 1);
    cr_expect_str_eq(cfg->listen[0].text, "0.0.0.0:8080");
    cr_expect_not(cfg->has_admin);
    cr_expect_eq(cfg->workers, 0);
    cr_expect_eq(cfg->io, RW_IO_AUTO);
    cr_expect_eq(cfg->max_conns, 65536);
    cr_expect_eq(cfg->drain_timeout_ms, 30000);
    cr_expect_eq(cfg->http.client_header_timeout_ms, 10000);
    cr_expect_eq(cfg->http.client_body_timeout_ms, 60000);
    cr_expect_eq(cfg->http.keepalive_timeout_ms, 75000);
    cr_expect_eq(cfg->http.send_timeout_ms, 60000);
    cr_expect_eq(cfg->http.max_header_bytes, 16384);
    cr_expect_eq(cfg->http.max_request_line, 8192);
    cr_expect_eq(cfg->http.max_body_bytes, 10u << 20);
    cr_expect_eq(cfg->http.max_headers, 100);
    cr_expect_null(cfg->redis.url);
    cr_expect_eq(cfg->redis.sync_interval_ms, 100);
    cr_expect_eq(cfg->nservices + cfg->nroutes + cfg->nconsumers + cfg->ntiers, 0);
    cr_expect_str_eq(cfg->request_id.header, "X-Request-Id");
    cr_expect_eq(cfg->request_id.header_len, 12);
    cr_expect(cfg->request_id.enabled);
    cr_expect(cfg->trace_context);
    cr_expect_eq(cfg->rate_limit_shard_keys, 16384);
    rw_config_free(cfg);
}

/* The defaults the key tables declare, for the sections that repeat. */
Test(config_load, table_defaults)
{
    rw_config *cfg = load_ok("services: [{name: s, instances: [\"127.0.0.1:1\"]}]\n"
                             "consumers: [{name: c}]\n"
                             "routes:\n"
                             "  - service: s\n"
                             "    paths: [{prefix: \"/%7eu/\"}]\n"
                             "    filters: [key_auth, {rate_limit: {rate: 10/min}},\n"
                             "              {jwt: {jwks_url: \"https://idp/jwks\"}}]\n");
    const rw_service_cfg *s = &cfg->services[0];
    cr_expect_eq(s->lb, RW_LB_ROUND_ROBIN);
    cr_expect_eq(s->hash_on, RW_HASH_IP);
    cr_expect_eq(s->connect_timeout_ms, 5000);
    cr_expect_eq(s->first_byte_timeout_ms, 60000);
    cr_expect_eq(s->total_timeout_ms, 0);
    cr_expect_eq(s->queue_timeout_ms, 0);
    cr_expect_eq(s->max_conns, 1024);
    cr_expect_eq(s->keepalive_max_idle, 64);
    cr_expect_eq(s->keepalive_idle_timeout_ms, 60000);
    cr_expect_eq(s->instances[0].weight, 1);
    cr_expect_str_eq(cfg->consumers[0].id, "c");
    cr_expect_eq(cfg->consumers[0].tier_index, -1);
    const rw_route_cfg *r = &cfg->routes[0];
    cr_expect_str_eq(r->name, "route-0");
    cr_expect_str_eq(r->paths[0].value, "/~u/");
    cr_assert_eq(r->nfilters, 3);
    cr_expect_eq(r->filters[0].u.key_auth.from, RW_FROM_HEADER);
    cr_expect_str_eq(r->filters[0].u.key_auth.name, "X-API-Key");
    const rw_rate_limit_cfg *rl = &r->filters[1].u.rate_limit;
    cr_expect_eq(rl->key, RW_RLK_IP);
    cr_expect_eq(rl->burst, 10);
    cr_expect_eq(rl->window_ms, 60000);
    cr_expect_eq(rl->max_keys, 65536);
    cr_expect_eq(rl->scope, RW_RL_LOCAL);
    cr_expect_str_eq(rl->name, "route.route-0.rate_limit.1");
    const rw_jwt_cfg *j = &r->filters[2].u.jwt;
    cr_expect_eq(j->from, RW_FROM_BEARER);
    cr_expect_eq(j->jwks_refresh_ms, 300000);
    cr_expect(j->require_exp);
    cr_expect_eq(j->cache_entries, 4096);
    cr_assert_eq(j->nclaims, 1);
    cr_expect_str_eq(j->claims_to_headers[0].name, "sub");
    cr_expect_str_eq(j->claims_to_headers[0].value, "X-User-ID");
    rw_config_free(cfg);

    cfg = load_ok("routes: [{respond: {status: 200}, filters: [{key_auth: {query: k}}]}]\n");
    cr_expect_eq(cfg->routes[0].filters[0].u.key_auth.from, RW_FROM_QUERY);
    cr_expect_str_eq(cfg->routes[0].filters[0].u.key_auth.name, "k");
    rw_config_free(cfg);
}

Test(config_load, shorthands_and_nulls)
{
    rw_config *cfg = load_ok("listen: \":9000\"\n"
                             "admin: ~\n"
                             "workers: 4\n"
                             "http: {max_body_bytes: unlimited}\n"
                             "services:\n"
                             "  - name: s\n"
                             "    timeouts:\n"
                             "    instances: [\"127.0.0.1:1\"]\n"
                             "routes:\n"
                             "  - service: s\n"
                             "    methods: GET\n"
                             "    hosts: \"Example.COM\"\n"
                             "    filters:\n"
                             "    headers: {X-A: \"\"}\n");
    cr_assert_eq(cfg->nlisten, 1);
    cr_expect_str_eq(cfg->listen[0].text, "0.0.0.0:9000");
    cr_expect_not(cfg->has_admin);
    cr_expect_eq(cfg->workers, 4);
    cr_expect_eq(cfg->http.max_body_bytes, 0);
    cr_expect_eq(cfg->services[0].connect_timeout_ms, 5000);
    cr_expect_eq(cfg->routes[0].methods, M(RW_METHOD_GET));
    cr_assert_eq(cfg->routes[0].nhosts, 1);
    cr_expect_str_eq(cfg->routes[0].hosts[0], "example.com");
    cr_expect_str_eq(cfg->routes[0].name, "route-0");
    cr_expect_str_eq(cfg->routes[0].headers[0].value, "");
    rw_config_free(cfg);

    cfg = load_ok("services: [{name: s, instances: [\"127.0.0.1:1\"]}]\n"
                  "routes: [{service: s, strip_path: /api, rewrite: {from: \"^/v1\", to: \"/x$0$$\"}}]\n");
    cr_expect_str_eq(cfg->routes[0].strip_path, "/api");
    cr_expect_str_eq(cfg->routes[0].rewrite_to, "/x$0$$");
    rw_config_free(cfg);

    cfg =
        load_ok("http: {max_body_bytes: 0}\nservices: [{name: a, lb: hash, instances: [\"127.0.0.1:1\"]}]\n");
    cr_expect_eq(cfg->http.max_body_bytes, 0);
    cr_expect_eq(cfg->services[0].hash_on, RW_HASH_IP); /* lb: hash defaults to the client IP */
    cr_expect_null(cfg->services[0].hash_key);
    rw_config_free(cfg);
}

Test(config_load, respond_body_keeps_nul_bytes)
{
    rw_config *cfg = load_ok("routes: [{respond: {status: 200, body: \"a\\0b\"}}]\n");
    cr_expect_eq(cfg->routes[0].respond.body_len, 3);
    cr_expect_eq(memcmp(cfg->routes[0].respond.body, "a\0b", 4), 0);
    rw_config_free(cfg);
}

Test(config_load, embedded_default)
{
    rw_config *cfg = NULL;
    char err[512] = "";
    int rc = rw_config_load_string(rw_config_embedded_default, strlen(rw_config_embedded_default),
                                   "<embedded>", &cfg, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(cfg->nlisten, 2);
    cr_expect_str_eq(cfg->listen[0].text, "0.0.0.0:8080");
    cr_expect_str_eq(cfg->listen[1].text, "[::]:8080");
    cr_expect(cfg->has_admin);
    cr_expect_str_eq(cfg->admin.text, "127.0.0.1:9901");
    cr_assert_eq(cfg->nroutes, 2);
    const rw_route_cfg *r = &cfg->routes[0];
    cr_assert_eq(r->npaths, 1);
    cr_expect_eq(r->paths[0].kind, RW_PATH_EXACT);
    cr_expect_str_eq(r->paths[0].value, "/");
    cr_expect_eq(r->respond.status, 200);
    cr_assert_eq(r->respond.nheaders, 1);
    cr_expect_str_eq(r->respond.headers[0].name, "Content-Type");
    cr_expect_str_eq(r->respond.headers[0].value, "application/json");
    cr_expect_str_eq(r->respond.body, "{\"service\":\"ringway\",\"status\":\"ok\"}");
    r = &cfg->routes[1];
    cr_expect_eq(r->npaths, 0); /* catch-all */
    cr_expect_eq(r->respond.status, 404);
    cr_expect_str_eq(r->respond.headers[0].value, "application/json");
    cr_expect_str_eq(r->respond.body, "{\"error\":\"no route\"}");
    rw_config_free(cfg);
}

Test(config_load, from_file)
{
    char path[] = "/tmp/ringway-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_neq(fd, -1);
    const char doc[] = "listen: \":9090\"\nroutes:\n  - pathz: []\n";
    cr_assert_eq(write(fd, doc, sizeof(doc) - 1), (ssize_t)(sizeof(doc) - 1));
    close(fd);

    rw_config *cfg = (rw_config *)1;
    char err[512], want[600];
    cr_expect_eq(rw_config_load_file(path, &cfg, err, sizeof(err)), -1);
    cr_expect_null(cfg);
    snprintf(want, sizeof(want), "%s:3: routes[0]: unknown key 'pathz' in route", path);
    cr_expect(strstr(err, want) == err, "got '%s'", err);

    fd = open(path, O_WRONLY | O_TRUNC);
    cr_assert_neq(fd, -1);
    cr_assert_eq(write(fd, doc, 16), 16);
    close(fd);
    cr_assert_eq(rw_config_load_file(path, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(cfg->source, path);
    cr_expect_str_eq(cfg->listen[0].text, "0.0.0.0:9090");
    rw_config_free(cfg);
    unlink(path);

    cr_expect_eq(rw_config_load_file("/nonexistent/ringway.yaml", &cfg, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "/nonexistent/ringway.yaml: cannot open: No such file or directory");
    cr_expect_eq(rw_config_load_file("/tmp", &cfg, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "/tmp: not a regular file");
    rw_config_free(NULL);
}

/* ---- broken configurations ----------------------------------------------- */

static const struct broken {
    const char *yaml;
    const char *want; /* must appear in the message, which starts "ringway.yaml:" */
} broken[] = {
    /* documents */
    {"", "ringway.yaml:1: empty configuration"},
    {"# only a comment\n", "ringway.yaml:1: empty configuration"},
    {"~\n", "ringway.yaml:1: empty configuration"},
    {"- a\n- b\n", "ringway.yaml:1: the top level must be a mapping"},
    {"listen: [\n", "ringway.yaml:2: YAML syntax error: did not find expected node content"},
    {"a: b\n  c: d\n", "ringway.yaml:2: YAML syntax error: mapping values are not allowed in this context"},
    {"routes:\n\t- x\n", "ringway.yaml:2: YAML syntax error: found character that cannot start any token"},
    {"a: \"x\n", "ringway.yaml:2: YAML syntax error: found unexpected end of stream"},
    {"{}\n---\n{}\n", "ringway.yaml:3: only one YAML document is allowed"},
    {"a: \xff\n", "ringway.yaml:1: YAML syntax error: invalid leading UTF-8 octet"},
    {"listen: x\nlisten: y\n", "ringway.yaml:2: duplicate key 'listen'"},
    {"[a]: 1\n", "ringway.yaml:1: keys must be strings, got a list"},
    {"listn: \":80\"\n", "ringway.yaml:1: unknown key 'listn' at top level (expected listen, admin,"},
    /* top level values */
    {"listen: \"1.2.3.4\"\n",
     "ringway.yaml:1: listen: invalid address '1.2.3.4' (expected IP:PORT, [IPV6]:PORT or :PORT)"},
    {"listen:\n  - \":80\"\n  - \"localhost:80\"\n",
     "ringway.yaml:3: listen[1]: invalid address 'localhost:80'"},
    {"listen: [\":80\", \"127.0.0.1:80\"]\n",
     "ringway.yaml:1: listen[1]: 127.0.0.1:80 overlaps listen address 0.0.0.0:80"},
    {"listen: []\n", "ringway.yaml:1: listen: needs at least one address"},
    {"listen: {a: b}\n", "ringway.yaml:1: listen: expected a list, got a mapping"},
    {"admin: \":8080\"\n", "ringway.yaml:1: admin: 0.0.0.0:8080 overlaps listen address 0.0.0.0:8080"},
    {"admin: \"[::1]:99999\"\n", "ringway.yaml:1: admin: invalid address '[::1]:99999'"},
    {"workers: many\n", "ringway.yaml:1: workers: expected auto or a number, got 'many'"},
    {"workers: 0\n", "ringway.yaml:1: workers: 0 is out of range (1..1024)"},
    {"io: kqueue\n", "ringway.yaml:1: io: unknown io mode 'kqueue' (expected auto, uring, epoll)"},
    {"max_conns: -5\n", "ringway.yaml:1: max_conns: expected a whole number, got '-5'"},
    {"max_conns: [1]\n", "ringway.yaml:1: max_conns: expected a string, got a list"},
    {"drain_timeout: 10 s\n",
     "ringway.yaml:1: drain_timeout: invalid duration '10 s' (expected e.g. 250ms, 10s, 5m, 1h)"},
    {"drain_timeout: 5000h\n", "ringway.yaml:1: drain_timeout: duration '5000h' is too long"},
    /* http */
    {"http:\n  max_headers: 101\n", "ringway.yaml:2: http.max_headers: 101 is out of range (1..100)"},
    {"http:\n  max_header_bytes: lots\n",
     "ringway.yaml:2: http.max_header_bytes: invalid size 'lots' (expected e.g. 512, 16k, 10m, 1g)"},
    {"http:\n  max_header_bytes: 2m\n",
     "ringway.yaml:2: http.max_header_bytes: size '2m' is out of range (1024..1048576 bytes)"},
    {"http:\n  max_header_bytes: 4k\n  max_request_line: 8k\n",
     "ringway.yaml:3: http.max_request_line: 8192 is larger than max_header_bytes (4096)"},
    {"http:\n  client_header_timeout: 0\n",
     "ringway.yaml:2: http.client_header_timeout: duration '0' is too short (at least 1ms)"},
    {"http:\n  keepalive: 5s\n", "ringway.yaml:2: http: unknown key 'keepalive' in http"},
    {"http: 5\n", "ringway.yaml:1: http: expected a mapping, got '5'"},
    /* redis */
    {"redis:\n  sync_interval: 1s\n", "ringway.yaml:2: redis: url is required"},
    {"redis: {url: \"http://x\"}\n", "ringway.yaml:1: redis.url: 'http://x' must start with redis:// (TLS "
                                     "and unix sockets are not supported)"},
    {"redis: {url: \"redis://r\", on_failure: panic}\n",
     "ringway.yaml:1: redis.on_failure: unknown mode 'panic' (expected local, allow, deny)"},
    /* tiers and consumers */
    {"tiers:\n  free: {rate: 10/fortnight}\n", "ringway.yaml:2: tiers.free.rate: invalid rate '10/fortnight' "
                                               "(expected N/s, N/min, N/hour or unlimited)"},
    {"tiers:\n  free: {}\n", "ringway.yaml:2: tiers.free: rate is required"},
    {"tiers:\n  free: {rate: 1/s, burst: 5}\n", "ringway.yaml:2: tiers.free: unknown key 'burst' in tier"},
    {"consumers:\n  - name: a\n    tier: gold\n", "ringway.yaml:3: consumers[0].tier: unknown tier 'gold'"},
    {"consumers:\n  - {name: a, keys: [\"sha256:abc\"]}\n",
     "ringway.yaml:2: consumers[0].keys[0]: a sha256: key needs 64 hex digits, got 3 characters"},
    {"consumers:\n  - {name: a, keys: "
     "[\"sha256:zz2e9f0c7f6d5c3a2e1b0a99887766554433221100ffeeddccbbaa9988776655\"]}\n",
     "ringway.yaml:2: consumers[0].keys[0]: a sha256: key needs 64 hex digits"},
    {"consumers:\n  - {name: a, keys: [k1]}\n  - {name: b, keys: [k2, k1]}\n",
     "ringway.yaml:3: consumers[1].keys[1]: key is already used by consumer 'a'"},
    {"consumers:\n  - {name: a}\n  - {name: a}\n",
     "ringway.yaml:3: consumers[1]: duplicate consumer name 'a' (also consumers[0])"},
    {"consumers:\n  - {name: a, id: x}\n  - {name: b, id: x}\n",
     "ringway.yaml:3: consumers[1]: duplicate consumer id 'x' (also consumers[0])"},
    {"consumers:\n  - {id: x}\n", "ringway.yaml:2: consumers[0]: name is required"},
    {"consumers:\n  - {name: \"a b\"}\n", "ringway.yaml:2: consumers[0].name: invalid name 'a b'"},
    {"consumers:\n  - {name: a, keys: [\"has space\"]}\n",
     "ringway.yaml:2: consumers[0].keys[0]: a key may contain only visible ASCII characters"},
    /* services */
    {"services:\n  - name: a\n    lb: fastest\n    instances: [\"127.0.0.1:1\"]\n",
     "ringway.yaml:3: services[0].lb: unknown policy 'fastest' (expected round_robin, least_conn, p2c, "
     "hash)"},
    {"services:\n  - name: a\n    hash_on: ip\n    instances: [\"127.0.0.1:1\"]\n",
     "ringway.yaml:3: services[0].hash_on: only applies with lb: hash"},
    {"services:\n  - name: a\n    lb: hash\n    hash_on: body\n",
     "ringway.yaml:4: services[0].hash_on: unknown hash key 'body' (expected ip, header:NAME or "
     "cookie:NAME)"},
    {"services:\n  - name: a\n    lb: hash\n    hash_on: \"header:\"\n",
     "ringway.yaml:4: services[0].hash_on: header name must not be empty"},
    {"services:\n  - name: a\n    lb: hash\n    hash_on: \"cookie:a b\"\n",
     "ringway.yaml:4: services[0].hash_on: invalid cookie name 'a b'"},
    {"services:\n  - name: a\n    instances:\n      - {address: \"127.0.0.1:1\", weight: 0}\n",
     "ringway.yaml:4: services[0].instances[0].weight: 0 is out of range (1..1000)"},
    {"services:\n  - name: a\n    instances:\n      - {address: \"127.0.0.1:1\", weight: 1001}\n",
     "ringway.yaml:4: services[0].instances[0].weight: 1001 is out of range (1..1000)"},
    {"services:\n  - name: a\n    instances:\n      - address: \"no-such-host.invalid:80\"\n",
     "ringway.yaml:4: services[0].instances[0].address: cannot resolve 'no-such-host.invalid'"},
    {"services:\n  - name: a\n    instances:\n      - \"127.0.0.1\"\n",
     "ringway.yaml:4: services[0].instances[0]: address '127.0.0.1' needs a port (host:port)"},
    {"services:\n  - name: a\n    instances:\n      - \"127.0.0.1:0\"\n",
     "ringway.yaml:4: services[0].instances[0]: address '127.0.0.1:0' has an invalid port (expected "
     "1..65535)"},
    {"services:\n  - name: a\n    instances:\n      - \"::1:80\"\n",
     "ringway.yaml:4: services[0].instances[0]: address '::1:80': write an IPv6 address as [addr]:port"},
    {"services:\n  - name: a\n    instances:\n      - \"[zz::1]:80\"\n",
     "ringway.yaml:4: services[0].instances[0]: cannot resolve 'zz::1'"},
    {"services:\n  - name: a\n    instances:\n      - \"ex ample:80\"\n",
     "ringway.yaml:4: services[0].instances[0]: invalid address 'ex ample:80' (expected host:port or "
     "[ipv6]:port)"},
    {"services:\n  - name: a\n    instances:\n      - {weight: 2}\n",
     "ringway.yaml:4: services[0].instances[0]: address is required"},
    {"services:\n  - name: a\n    instances:\n      - {address: \"127.0.0.1:1\", port: 2}\n",
     "ringway.yaml:4: services[0].instances[0]: unknown key 'port' in instance (expected address, weight)"},
    {"services:\n  - name: a\n    instances: [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n",
     "ringway.yaml:3: services[0].instances[1]: 127.0.0.1:1 is already instance 0 (127.0.0.1:1)"},
    {"services:\n  - name: a\n", "ringway.yaml:2: services[0]: needs at least one instance"},
    {"services:\n  - name: a\n    instances: []\n",
     "ringway.yaml:3: services[0]: needs at least one instance"},
    {"services:\n  - instances: [\"127.0.0.1:1\"]\n", "ringway.yaml:2: services[0]: name is required"},
    {"services:\n  - {name: a, instances: [\"127.0.0.1:1\"]}\n  - {name: a, instances: [\"127.0.0.1:2\"]}\n",
     "ringway.yaml:3: services[1]: duplicate service name 'a' (also services[0])"},
    {"services:\n  - name: a\n    timeouts: {connect: 0}\n",
     "ringway.yaml:3: services[0].timeouts.connect: duration '0' is too short (at least 1ms)"},
    {"services:\n  - name: a\n    timeouts: {read: 1s}\n",
     "ringway.yaml:3: services[0].timeouts: unknown key 'read' in timeouts (expected connect, first_byte, "
     "total, queue)"},
    {"services:\n  - name: a\n    keepalive: {max_idle: lots}\n",
     "ringway.yaml:3: services[0].keepalive.max_idle: expected a whole number, got 'lots'"},
    {"services:\n  - name: a\n    max_conns: lots\n",
     "ringway.yaml:3: services[0].max_conns: expected a whole number, got 'lots'"},
    {"services:\n  - name: a\n    max_conns: 1000001\n",
     "ringway.yaml:3: services[0].max_conns: 1000001 is out of range (0..1000000)"},
    {"services:\n  - name: a\n    retry: 3\n", "ringway.yaml:3: services[0]: unknown key 'retry' in service"},
    {"services:\n  - name: a\n    retries: 3\n",
     "ringway.yaml:3: services[0].retries: expected a mapping, got '3'"},
    {"services: {a: 1}\n", "ringway.yaml:1: services: expected a list, got a mapping"},
    {"services:\n  - 5\n", "ringway.yaml:2: services[0]: expected a mapping, got '5'"},
    /* routes */
    {"routes:\n  - name: a\n    pathz: [{exact: /}]\n",
     "ringway.yaml:3: routes[0]: unknown key 'pathz' in route"},
    {"routes:\n  - name: a\n", "ringway.yaml:2: routes[0]: needs either service or respond"},
    {"services: [{name: s, instances: [\"127.0.0.1:1\"]}]\nroutes:\n  - service: s\n    respond: {status: "
     "200}\n",
     "ringway.yaml:3: routes[0]: has both service and respond (choose one)"},
    {"routes:\n  - name: a\n    service: nope\n",
     "ringway.yaml:3: routes[0].service: unknown service 'nope'"},
    {"routes:\n  - {name: a, respond: {status: 200}}\n  - {name: a, respond: {status: 200}}\n",
     "ringway.yaml:3: routes[1]: duplicate route name 'a' (also routes[0])"},
    {"routes:\n  - {name: route-1, respond: {status: 200}}\n  - {respond: {status: 200}}\n",
     "ringway.yaml:3: routes[1]: duplicate route name 'route-1' (also routes[0])"},
    {"routes:\n  - respond: {status: 200}\n    paths: [{regex: \"a(\"}]\n",
     "ringway.yaml:3: routes[0].paths[0].regex: invalid regex 'a(': "},
    {"routes:\n  - respond: {status: 200}\n    paths: [{regex: \"[z-a]\"}]\n",
     "ringway.yaml:3: routes[0].paths[0].regex: invalid regex '[z-a]': Invalid range end"},
    {"routes:\n  - respond: {status: 200}\n    paths: [{prefix: api}]\n",
     "ringway.yaml:3: routes[0].paths[0].prefix: path 'api' must start with '/'"},
    {"routes:\n  - respond: {status: 200}\n    paths: [{exact: /a//b}]\n",
     "ringway.yaml:3: routes[0].paths[0].exact: path '/a//b' is not normalised"},
    {"routes:\n  - respond: {status: 200}\n    paths: [{exact: /a/../b}]\n",
     "ringway.yaml:3: routes[0].paths[0].exact: path '/a/../b' is not normalised"},
    {"routes:\n  - respond: {status: 200}\n    paths: [{exact: \"/%61//b\"}]\n",
     "ringway.yaml:3: routes[0].paths[0].exact: path '/%61//b' is not normalised"},
    {"routes:\n  - respond: {status: 200}\n    paths: [{prefix: \"/a/%2E\"}]\n",
     "ringway.yaml:3: routes[0].paths[0].prefix: path '/a/%2E' is not normalised"},
    {"routes:\n  - respond: {status: 200}\n    paths: [{exact: \"/a/.\"}]\n",
     "ringway.yaml:3: routes[0].paths[0].exact: path '/a/.' is not normalised"},
    {"routes:\n  - respond: {status: 200}\n    paths: [{exact: \"/a%00\"}]\n",
     "ringway.yaml:3: routes[0].paths[0].exact: path '/a%00' contains %00"},
    {"routes:\n  - respond: {status: 200}\n    paths: [{exact: \"/a?b\"}]\n",
     "ringway.yaml:3: routes[0].paths[0].exact: path '/a?b' contains a character that must be "
     "percent-encoded"},
    {"routes:\n  - respond: {status: 200}\n    paths: [{exact: \"/a%4\"}]\n",
     "ringway.yaml:3: routes[0].paths[0].exact: path '/a%4' has an invalid percent-escape"},
    {"routes:\n  - respond: {status: 200}\n    paths: [{}]\n",
     "ringway.yaml:3: routes[0].paths[0]: expected exactly one of exact, prefix, regex"},
    {"routes:\n  - respond: {status: 200}\n    query: {a: {regex: x, present: true}}\n",
     "ringway.yaml:3: routes[0].query.a: expected exactly one of regex, present"},
    {"routes:\n  - respond: {status: 200}\n    query: {a: {prefix: x}}\n",
     "ringway.yaml:3: routes[0].query.a: unknown key 'prefix' in query match (expected regex or present)"},
    {"routes:\n  - respond: {status: 200}\n    paths: [{exact: \"/a b\"}]\n",
     "ringway.yaml:3: routes[0].paths[0].exact: path '/a b' contains a character that must be "
     "percent-encoded"},
    {"routes:\n  - respond: {status: 200}\n    paths: [{exact: \"/a%zz\"}]\n",
     "ringway.yaml:3: routes[0].paths[0].exact: path '/a%zz' has an invalid percent-escape"},
    {"routes:\n  - respond: {status: 200}\n    paths: [{exact: /a, prefix: /b}]\n",
     "ringway.yaml:3: routes[0].paths[0]: expected exactly one of exact, prefix, regex"},
    {"routes:\n  - respond: {status: 200}\n    paths: [{glob: /a}]\n",
     "ringway.yaml:3: routes[0].paths[0]: unknown key 'glob' in path"},
    {"routes:\n  - respond: {status: 200}\n    paths: [/a]\n",
     "ringway.yaml:3: routes[0].paths[0]: expected a mapping, got '/a'"},
    {"routes:\n  - respond: {status: 200}\n    paths: []\n",
     "ringway.yaml:3: routes[0].paths: must not be empty"},
    {"routes:\n  - respond: {status: 200}\n    methods: [GET, FETCH]\n",
     "ringway.yaml:3: routes[0].methods[1]: unknown method 'FETCH' (expected GET, HEAD, POST, PUT, DELETE, "
     "CONNECT, OPTIONS, TRACE, PATCH)"},
    {"routes:\n  - respond: {status: 200}\n    methods: [get]\n",
     "ringway.yaml:3: routes[0].methods[0]: unknown method 'get'"},
    {"routes:\n  - respond: {status: 200}\n    hosts: [\"api.*.com\"]\n",
     "ringway.yaml:3: routes[0].hosts[0]: host 'api.*.com': a wildcard is only allowed as a leading '*.'"},
    {"routes:\n  - respond: {status: 200}\n    hosts: [\"*\"]\n",
     "ringway.yaml:3: routes[0].hosts[0]: host '*': a wildcard is only allowed as a leading '*.'"},
    {"routes:\n  - respond: {status: 200}\n    hosts: [\"api.example.com:8080\"]\n",
     "ringway.yaml:3: routes[0].hosts[0]: host 'api.example.com:8080' must not include a port"},
    {"routes:\n  - respond: {status: 200}\n    hosts: [\"a..b\"]\n",
     "ringway.yaml:3: routes[0].hosts[0]: invalid host 'a..b'"},
    {"routes:\n  - respond: {status: 200}\n    headers: {\"X A\": \"1\"}\n",
     "ringway.yaml:3: routes[0].headers.X A: invalid header name 'X A'"},
    {"routes:\n  - respond: {status: 200}\n    headers: {X-A: {regex: \"(\"}}\n",
     "ringway.yaml:3: routes[0].headers.X-A.regex: invalid regex '(': "},
    {"routes:\n  - respond: {status: 200}\n    headers: {X-A: {present: false}}\n",
     "ringway.yaml:3: routes[0].headers.X-A.present: only 'present: true' is supported"},
    {"routes:\n  - respond: {status: 200}\n    headers: {X-A: {prefix: a}}\n",
     "ringway.yaml:3: routes[0].headers.X-A: unknown key 'prefix' in header match (expected regex or "
     "present)"},
    {"routes:\n  - respond: {status: 200}\n    headers: {X-A: [a]}\n",
     "ringway.yaml:3: routes[0].headers.X-A: expected a string, got a list"},
    {"routes:\n  - respond: {status: 200}\n    query: {\"\": \"1\"}\n",
     "ringway.yaml:3: routes[0].query: keys must not be empty"},
    {"routes:\n  - respond: {status: 200}\n    query: {a: {present: yes}}\n",
     "ringway.yaml:3: routes[0].query.a.present: expected true or false, got 'yes'"},
    {"routes:\n  - respond: {status: 42}\n",
     "ringway.yaml:2: routes[0].respond.status: status 42 is outside 100..599"},
    {"routes:\n  - respond: {status: 600}\n",
     "ringway.yaml:2: routes[0].respond.status: status 600 is outside 100..599"},
    {"routes:\n  - respond: {status: 101}\n",
     "ringway.yaml:2: routes[0].respond.status: status 101 is informational"},
    {"routes:\n  - respond: {status: ok}\n",
     "ringway.yaml:2: routes[0].respond.status: expected a whole number, got 'ok'"},
    {"routes:\n  - respond: {body: x}\n", "ringway.yaml:2: routes[0].respond: status is required"},
    {"routes:\n  - respond:\n      status: 204\n      body: x\n",
     "ringway.yaml:4: routes[0].respond.body: a 204 response has no body"},
    {"routes:\n  - respond: {status: 200, headers: {Content-Length: \"5\"}}\n",
     "ringway.yaml:2: routes[0].respond.headers.Content-Length: Content-Length is set by ringway"},
    {"routes:\n  - respond: {status: 200, headers: {X-A: \"a\\r\\nb\"}}\n",
     "ringway.yaml:2: routes[0].respond.headers.X-A: header value contains a control character"},
    {"routes:\n  - respond: {status: 200, code: 1}\n",
     "ringway.yaml:2: routes[0].respond: unknown key 'code' in respond (expected status, headers, body)"},
    {"routes:\n  - respond: {status: 200}\n    filters:\n      - jwt:\n          issuer: x\n",
     "ringway.yaml:5: routes[0].filters[0].jwt: needs keys, jwks_file or jwks_url"},
    {"routes:\n  - respond: {status: 200}\n    filters: [cors]\n",
     "ringway.yaml:3: routes[0].filters[0]: unknown filter 'cors' (expected key_auth, jwt, acl, rate_limit)"},
    {"routes:\n  - respond: {status: 200}\n    filters:\n      - jwt: {keys: [{alg: HS256, secret: "
     "short}]}\n",
     "ringway.yaml:4: routes[0].filters[0].jwt.keys[0]: HS256 secret is 5 bytes; at least 32 required (RFC "
     "7518 3.2)"},
    {"routes:\n  - respond: {status: 200}\n    filters:\n      - jwt: {keys: [{alg: none, secret: x}]}\n",
     "ringway.yaml:4: routes[0].filters[0].jwt.keys[0].alg: unsupported algorithm 'none' (HS256/384/512, "
     "RS256/384/512, PS256/384/512, ES256/384, EdDSA)"},
    {"routes:\n  - respond: {status: 200}\n    filters:\n      - jwt: {keys: [{alg: RS256, secret: "
     "abcdefabcdefabcdefabcdefabcdefabcdef}]}\n",
     "ringway.yaml:4: routes[0].filters[0].jwt.keys[0]: RS256 needs a public key (pem or pem_file)"},
    {"routes:\n  - respond: {status: 200}\n    filters:\n      - jwt: {keys: [{alg: RS256, pem_file: "
     "/nonexistent.pem}]}\n",
     "ringway.yaml:4: routes[0].filters[0].jwt.keys[0].pem_file: cannot open /nonexistent.pem: No such file "
     "or directory"},
    {"routes:\n  - respond: {status: 200}\n    filters:\n      - acl: {}\n",
     "ringway.yaml:4: routes[0].filters[0].acl: needs allow_groups, deny_groups, allow_ips or deny_ips"},
    {"routes:\n  - respond: {status: 200}\n    filters:\n      - acl: {allow_ips: [10.0.0.1/8]}\n",
     "ringway.yaml:4: routes[0].filters[0].acl.allow_ips[0]: '10.0.0.1/8' is not an address or CIDR range "
     "(host bits must be 0)"},
    {"routes:\n  - respond: {status: 200}\n    filters:\n      - rate_limit: {key: ip}\n",
     "ringway.yaml:4: routes[0].filters[0].rate_limit: needs rate (or tier: true)"},
    {"routes:\n  - respond: {status: 200}\n    filters:\n      - rate_limit: {rate: 5/fortnight}\n",
     "ringway.yaml:4: routes[0].filters[0].rate_limit.rate: invalid rate '5/fortnight' (expected N/s, N/min, "
     "N/hour or unlimited)"},
    {"routes:\n  - respond: {status: 200}\n    filters:\n      - rate_limit: {rate: 5/s, key: [ip, "
     "cookie]}\n",
     "ringway.yaml:4: routes[0].filters[0].rate_limit.key[1]: unknown key 'cookie' (expected consumer, key, "
     "ip, route or header:NAME)"},
    {"routes:\n  - respond: {status: 200}\n    filters:\n      - rate_limit: {rate: 5/s, tier: true}\n",
     "ringway.yaml:4: routes[0].filters[0].rate_limit: tier: true needs a tiers section"},
    {"routes:\n  - respond: {status: 200}\n    filters:\n      - rate_limit: {rate: 5/s, scope: cluster}\n",
     "ringway.yaml:4: routes[0].filters[0].rate_limit.scope: unknown scope 'cluster' (expected local, "
     "global)"},
    {"routes:\n  - respond: {status: 200}\n    filters:\n      - key_auth\n      - key_auth\n",
     "ringway.yaml:5: routes[0].filters[1]: a second key_auth filter in one list"},
    {"routes:\n  - respond: {status: 200}\n    filters:\n      - jwt: {keys: [{alg: HS256, secret: "
     "abcdefabcdefabcdefabcdefabcdefabcdef}], claims_to_headers: {sub: Transfer-Encoding}}\n",
     "ringway.yaml:4: routes[0].filters[0].jwt.claims_to_headers.sub: Transfer-Encoding is set by ringway or "
     "the HTTP framing, not by a claim"},
    {"consumers:\n  - {name: a, id: \"c 1\"}\n",
     "ringway.yaml:2: consumers[0].id: an id may contain only visible ASCII characters"},
    {"trusted_proxies: [300.1.1.1]\n",
     "ringway.yaml:1: trusted_proxies[0]: '300.1.1.1' is not an address or CIDR range (host bits must be 0)"},
    {"routes:\n  - respond: {status: 200}\n    filters: {jwt: {}}\n",
     "ringway.yaml:3: routes[0].filters: expected a list, got a mapping"},
    {"routes:\n  - respond: {status: 200}\n    strip_path: /api\n",
     "ringway.yaml:3: routes[0].strip_path: only applies to routes with a service"},
    {"routes:\n  - respond: {status: 200}\n    preserve_host: true\n",
     "ringway.yaml:3: routes[0].preserve_host: only applies to routes with a service"},
    {"routes:\n  - respond: {status: 200}\n    preserve_host: maybe\n",
     "ringway.yaml:3: routes[0].preserve_host: expected true or false, got 'maybe'"},
    {"services: [{name: s, instances: [\"127.0.0.1:1\"]}]\nroutes:\n  - service: s\n    strip_path: /api/\n",
     "ringway.yaml:4: routes[0].strip_path: '/api/' must not end with '/'"},
    {"services: [{name: s, instances: [\"127.0.0.1:1\"]}]\nroutes:\n  - service: s\n    rewrite: {from: "
     "\"^/a(.*)\", to: \"/b$$$2\"}\n",
     "ringway.yaml:4: routes[0].rewrite.to: $2 does not name a group of the regex (it has 1)"},
    {"services: [{name: s, instances: [\"127.0.0.1:1\"]}]\nroutes:\n  - service: s\n    rewrite: {from: "
     "\"^/a(.*)\"}\n",
     "ringway.yaml:4: routes[0].rewrite: needs both from and to"},
    {"services: [{name: s, instances: [\"127.0.0.1:1\"]}]\nroutes:\n  - service: s\n    rewrite: {from: "
     "\"^/a(.*)\", to: \"/b$2\"}\n",
     "ringway.yaml:4: routes[0].rewrite.to: $2 does not name a group of the regex (it has 1)"},
    {"services: [{name: s, instances: [\"127.0.0.1:1\"]}]\nroutes:\n  - service: s\n    rewrite: {from: "
     "\"^/a(\", to: \"/b\"}\n",
     "ringway.yaml:4: routes[0].rewrite.from: invalid regex '^/a(': "},
    {"routes:\n  - name: \"bad name\"\n    respond: {status: 200}\n",
     "ringway.yaml:2: routes[0].name: invalid name 'bad name'"},
    {"routes:\n  - name: \"\"\n    respond: {status: 200}\n",
     "ringway.yaml:2: routes[0].name: must not be empty"},
    {"routes:\n  - name: a\n    name: b\n", "ringway.yaml:3: routes[0]: duplicate key 'name'"},
    {"routes:\n  - name: \"a\\0b\"\n", "ringway.yaml:2: routes[0].name: contains a NUL byte"},
    {"routes: {}\n", "ringway.yaml:1: routes: expected a list, got a mapping"},
};

Test(config_errors, broken_table)
{
    for (size_t i = 0; i < RW_ARRAY_LEN(broken); i++) {
        rw_config *cfg = (rw_config *)1;
        char err[512] = "";
        int rc = rw_config_load_string(broken[i].yaml, strlen(broken[i].yaml), "ringway.yaml", &cfg, err,
                                       sizeof(err));
        cr_expect_eq(rc, -1, "case %zu should fail:\n%s", i, broken[i].yaml);
        cr_expect_null(cfg, "case %zu: *out must be NULL on failure", i);
        if (rc == 0)
            rw_config_free(cfg);
        cr_expect(strstr(err, broken[i].want) == err, "case %zu:\n%s\nwant: %s\ngot:  %s", i, broken[i].yaml,
                  broken[i].want, err);
    }
}

Test(config_errors, small_error_buffer)
{
    rw_config *cfg;
    char err[12];
    cr_expect_eq(rw_config_load_string("io: x\n", 6, "ringway.yaml", &cfg, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "ringway.yam");
    cr_expect_eq(rw_config_load_string("io: x\n", 6, "ringway.yaml", &cfg, NULL, 0), -1);
    cr_expect_eq(rw_config_load_string(NULL, 0, NULL, &cfg, err, sizeof(err)), -1);
}

/* Aliases may not multiply the work without bound ("billion laughs"). */
Test(config_errors, alias_fan_out_is_bounded)
{
    char doc[8192];
    size_t off = 0;
    off += (size_t)snprintf(doc + off, sizeof(doc) - off,
                            "x: &h {X-A: \"1\", X-B: \"2\", X-C: \"3\", X-D: \"4\"}\n"
                            "r: &r {respond: {status: 200}, headers: *h}\n"
                            "routes: &l0 [");
    for (int i = 0; i < 200; i++)
        off += (size_t)snprintf(doc + off, sizeof(doc) - off, "%s*r", i ? "," : "");
    off += (size_t)snprintf(doc + off, sizeof(doc) - off, "]\n");
    rw_config *cfg;
    char err[512];
    /* x: and r: are unknown keys: the point is that the loader stops cleanly */
    cr_expect_eq(rw_config_load_string(doc, off, "ringway.yaml", &cfg, err, sizeof(err)), -1);
    cr_expect(strstr(err, "ringway.yaml:1: unknown key 'x' at top level") == err, "%s", err);

    /* the same fan-out reached only through the schema: loads (duplicate names
     * stop it), or fails cleanly; never runs away */
    const char *rec = "routes: &a [{respond: {status: 200}, headers: {X-A: *a}}]\n";
    cr_expect_eq(rw_config_load_string(rec, strlen(rec), "ringway.yaml", &cfg, err, sizeof(err)), -1);
    cr_expect(strstr(err, "ringway.yaml:1: routes[0].headers.X-A: expected a string, got a list") == err,
              "%s", err);
}

/* ---- never crash -------------------------------------------------------- */

static void load_any(const char *buf, size_t len)
{
    rw_config *cfg = NULL;
    char err[256] = "";
    int rc = rw_config_load_string(buf, len, "fuzz.yaml", &cfg, err, sizeof(err));
    if (rc == 0) {
        cr_assert_not_null(cfg);
        rw_config_free(cfg);
    } else {
        cr_assert_eq(rc, -1);
        cr_assert_null(cfg);
        cr_assert(strncmp(err, "fuzz.yaml:", 10) == 0, "bad message '%s'", err);
    }
}

Test(config_fuzz, truncated_at_every_offset)
{
    size_t len = strlen(full_yaml);
    for (size_t n = 0; n <= len; n++) {
        /* a private copy without the terminator, so ASan catches over-reads */
        char *copy = malloc(n ? n : 1);
        cr_assert_not_null(copy);
        memcpy(copy, full_yaml, n);
        load_any(copy, n);
        free(copy);
    }
    len = strlen(rw_config_embedded_default);
    for (size_t n = 0; n <= len; n++)
        load_any(rw_config_embedded_default, n);
}

Test(config_fuzz, mutated_documents)
{
    static const char alphabet[] = "{}[]:,-&*!|>'\"#%@`\n\t \\0~?";
    size_t len = strlen(full_yaml);
    char *buf = malloc(len + 64);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    cr_assert_not_null(buf);
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(buf, full_yaml, len);
        size_t n = len;
        int edits = 1 + (int)(x % 4);
        for (int e = 0; e < edits; e++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t pos = (size_t)(x >> 8) % n;
            switch (x % 4) {
            case 0:
                buf[pos] = alphabet[(x >> 32) % (sizeof(alphabet) - 1)];
                break;
            case 1:
                buf[pos] = (char)(x >> 40);
                break;
            case 2:
                memmove(buf + pos, buf + pos + 1, n - pos - 1);
                n--;
                break;
            default:
                buf[pos] = (char)('0' + (x >> 24) % 10);
                break;
            }
        }
        load_any(buf, n);
    }
    free(buf);
}

Test(config_fuzz, garbage)
{
    char buf[512];
    uint64_t x = 42;
    for (int iter = 0; iter < 2000; iter++) {
        size_t n = (size_t)(iter % (int)sizeof(buf));
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (iter & 1) ? (char)x : "ab: -[]{},\n\"'&*"[x % 15];
        }
        load_any(buf, n);
    }
}

Test(config_load, certificates_and_hsts)
{
    rw_config *cfg =
        load_ok("services: [{name: s, instances: [\"127.0.0.1:1\"]}]\n"
                "routes:\n"
                "  - {name: r, service: s, https_redirect: true, hsts: \"max-age=60; preload\"}\n"
                "  - {name: q, service: s}\n"
                "consumers:\n"
                "  - {name: a, certificates: [\"SHA256:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:"
                "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF\"]}\n"
                "  - {name: b, certificates: "
                "\"sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210\"}\n");
    cr_assert_eq(cfg->consumers[0].ncerts, 1);
    cr_expect_str_eq(cfg->consumers[0].certs[0],
                     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    cr_expect_eq(cfg->consumers[1].ncerts, 1);
    cr_expect(cfg->routes[0].https_redirect);
    cr_expect_str_eq(cfg->routes[0].hsts, "max-age=60; preload");
    cr_expect_eq(cfg->routes[0].hsts_line.len, strlen("Strict-Transport-Security: max-age=60; preload\r\n"));
    cr_expect(!cfg->routes[1].https_redirect);
    cr_expect_eq(cfg->routes[1].hsts_line.len, 0);
    rw_config_free(cfg);
}
