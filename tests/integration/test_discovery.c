/* test_discovery.c - instances from DNS (a real dnsmasq the test starts and
 * rewrites) and from the Redis registry (a real redis-server, ringway
 * register / deregister, three ringway nodes), applied without reloads;
 * outages keep the last known instances; pooled connections to unchanged
 * instances survive a change. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* ---- helpers ------------------------------------------------------------- */

/* Which upstream answered GET /x (its X-Upstream), or "" on a non-200 (the
 * status then goes to *status). */
static char *who(int port, int *status)
{
    h_resp r;
    h_get(port, "/x", &r);
    if (status != NULL)
        *status = r.status;
    const char *u = h_hdr(&r, "X-Upstream");
    return h_fmt("%s", r.status == 200 && u ? u : "");
}

/* Polls until GET /x on port has reached (want) or not reached (!want)
 * upstream name within timeout_ms, sampling enough requests to see every
 * instance of a small set. Returns the time it took, or -1. */
static int64_t wait_routes(int port, const char *name, bool want, int timeout_ms)
{
    int64_t t0 = h_now_ms(), end = t0 + timeout_ms;
    do {
        bool seen = false;
        for (int i = 0; i < 12 && !seen; i++)
            seen = strcmp(who(port, NULL), name) == 0;
        if (seen == want)
            return h_now_ms() - t0;
        h_sleep_ms(20);
    } while (h_now_ms() < end);
    return -1;
}

static bool have(const char *cmd)
{
    return system(h_fmt("command -v %s >/dev/null 2>&1", cmd)) == 0;
}

/* ---- DNS ----------------------------------------------------------------- */

typedef struct dns {
    h_cmd *proc;
    int port;
    char *hosts;
} dns;

static void dns_write(dns *d, const char *hosts)
{
    d->hosts = h_write_file("dns-hosts", hosts);
}

static void dns_start(dns *d, const char *hosts)
{
    dns_write(d, hosts);
    d->port = h_free_port();
    d->proc = h_cmd_start("exec dnsmasq --keep-in-foreground --no-resolv --no-hosts --addn-hosts='%s' "
                          "--port=%d --listen-address=127.0.0.1 --bind-interfaces --local-ttl=1 --user=root "
                          "--pid-file= --log-facility=-",
                          d->hosts, d->port);
    h_sleep_ms(200);
    cr_assert(kill(d->proc->pid, 0) == 0, "dnsmasq did not start");
}

static void dns_reload(dns *d, const char *hosts)
{
    dns_write(d, hosts);
    kill(d->proc->pid, SIGHUP); /* dnsmasq re-reads its hosts files */
}

static void dns_stop(dns *d)
{
    kill(d->proc->pid, SIGKILL);
    h_cmd_wait(d->proc, 5000);
}

/* rw_upstream NAME on 127.0.0.IP:port */
static h_upstream *upstream_at(const char *name, int ip, int port)
{
    return h_upstream_start(name, "--listen", h_fmt("127.0.0.%d:%d", ip, port), NULL);
}

static char *dns_config(int admin, const char *name, int uport, int dport, const char *extra)
{
    return h_fmt("admin: \"127.0.0.1:%d\"\n"
                 "services:\n"
                 "  - name: api\n"
                 "    discovery: {dns: \"%s:%d\", interval: 1s, resolver: \"127.0.0.1:%d\"}\n"
                 "%s"
                 "routes:\n"
                 "  - name: all\n"
                 "    paths: [{prefix: /}]\n"
                 "    service: api\n",
                 admin, name, uport, dport, extra);
}

H_TEST(discovery, dns_record_set_grows_and_shrinks)
{
    if (!have("dnsmasq"))
        cr_skip_test("dnsmasq is not installed");
    int uport = h_free_port();
    h_upstream *u2 = upstream_at("u2", 2, uport), *u3 = upstream_at("u3", 3, uport),
               *u4 = upstream_at("u4", 4, uport);
    (void)u2, (void)u3, (void)u4;
    dns d;
    dns_start(&d, "127.0.0.2 api.test\n127.0.0.3 api.test\n");
    int admin = h_free_port();
    h_proxy *p = h_proxy_start(
        &(h_proxy_opts){.config = dns_config(admin, "api.test", uport, d.port, ""), .workers = 2});
    cr_assert(wait_routes(p->port, "u2", true, 1000) >= 0 && wait_routes(p->port, "u3", true, 1000) >= 0);
    cr_expect(wait_routes(p->port, "u4", false, 10) >= 0, "u4 is not in DNS yet");
    cr_expect(h_proxy_log_contains(p, "DNS name api.test:"), "no log line about the DNS answer");

    /* 2 -> 3 addresses: all three within interval + 1 s */
    dns_reload(&d, "127.0.0.2 api.test\n127.0.0.3 api.test\n127.0.0.4 api.test\n");
    int64_t took = wait_routes(p->port, "u4", true, 2000);
    cr_expect(took >= 0, "the third address was not used within interval + 1 s");
    cr_log_info("a third DNS address took %lld ms to get traffic", (long long)took);
    char *st;
    h_resp r;
    h_get(admin, "/status", &r);
    st = r.body;
    cr_expect(strstr(st, "\"source\":\"dns\"") != NULL, "/status: %s", st);

    /* 3 -> 1 */
    dns_reload(&d, "127.0.0.4 api.test\n");
    cr_expect(wait_routes(p->port, "u2", false, 2000) >= 0 && wait_routes(p->port, "u3", false, 2000) >= 0,
              "removed addresses still get traffic");
    int status;
    for (int i = 0; i < 10; i++)
        cr_expect_str_eq(who(p->port, &status), "u4");

    /* DNS down: the last known instance stays */
    dns_stop(&d);
    h_sleep_ms(1500);
    for (int i = 0; i < 10; i++)
        cr_expect_str_eq(who(p->port, &status), "u4", "with DNS down (status %d)", status);
}

H_TEST(discovery, dns_name_that_does_not_resolve_yet)
{
    if (!have("dnsmasq"))
        cr_skip_test("dnsmasq is not installed");
    int uport = h_free_port();
    h_upstream *u2 = upstream_at("u2", 2, uport);
    (void)u2;
    dns d;
    dns_start(&d, "127.0.0.9 other.test\n");
    int admin = h_free_port();
    /* starts, is ready, and answers 503 with the reason */
    h_proxy *p = h_proxy_start(
        &(h_proxy_opts){.config = dns_config(admin, "late.test", uport, d.port, ""), .expect_errors = true});
    h_resp r;
    h_get(p->port, "/x", &r);
    cr_expect_eq(r.status, 503);
    cr_expect(strstr(r.body, "DNS name late.test") != NULL, "503 without the reason: %s", r.body);
    h_get(admin, "/status", &r);
    cr_expect(strstr(r.body, "\"why\":\"no instance: DNS name late.test") != NULL, "/status: %s", r.body);
    /* then the name appears */
    dns_reload(&d, "127.0.0.2 late.test\n");
    cr_expect(wait_routes(p->port, "u2", true, 2500) >= 0, "the name resolved but gets no traffic");
    dns_stop(&d);

    /* --check-config accepts a service with only discovery */
    h_cmd *c;
    char *path = h_write_file("dns-only.yaml", dns_config(h_free_port(), "nowhere.invalid", 80, 9, ""));
    cr_expect_eq(h_run(&c, 10000, "'%s' --check-config --config '%s'", h_binary(), path), 0, "%s", c->err);
}

/* ---- the Redis registry -------------------------------------------------- */

static char *redis_config(const h_redis *rd, const h_upstream *u1, int admin)
{
    return h_fmt("admin: \"127.0.0.1:%d\"\n"
                 "redis: {url: \"redis://127.0.0.1:%d\"}\n"
                 "services:\n"
                 "  - name: api\n"
                 "    instances: [\"127.0.0.1:%d\"]\n"
                 "    discovery: {redis: true}\n"
                 "routes:\n"
                 "  - name: all\n"
                 "    paths: [{prefix: /}]\n"
                 "    service: api\n",
                 admin, rd->port, u1->port);
}

static h_cmd *reg(const h_redis *rd, const h_upstream *u, const char *more)
{
    h_cmd *c =
        h_cmd_start("exec '%s' register --redis redis://127.0.0.1:%d --service api --address 127.0.0.1:%d %s",
                    h_binary(), rd->port, u->port, more ? more : "");
    return c;
}

static long wrk_errors(h_cmd *w)
{
    cr_assert_eq(h_cmd_wait(w, 30000), 0, "wrk failed: %s", w->err);
    const char *n = strstr(w->out, "Non-2xx or 3xx responses: ");
    const char *se = strstr(w->out, "Socket errors:");
    long bad = n ? atol(n + 26) : 0;
    if (se != NULL) {
        long c = 0, r = 0, wr = 0, t = 0;
        sscanf(se, "Socket errors: connect %ld, read %ld, write %ld, timeout %ld", &c, &r, &wr, &t);
        bad += c + r + wr + t;
    }
    return bad;
}

H_TEST(discovery, redis_registry_three_nodes)
{
    if (!h_have_redis())
        cr_skip_test("redis-server is not installed");
    h_redis rd;
    h_redis_start(&rd, 0);
    h_upstream *u1 = h_upstream_start("u1", NULL), *u2 = h_upstream_start("u2", NULL);
    int admin[3];
    h_proxy *node[3];
    for (int i = 0; i < 3; i++) {
        admin[i] = h_free_port();
        node[i] = h_proxy_start(&(h_proxy_opts){.config = redis_config(&rd, u1, admin[i]), .workers = 1});
    }
    h_cmd *w = h_cmd_start("wrk -t1 -c16 -d6s http://127.0.0.1:%d/x", node[0]->port);
    h_sleep_ms(300);

    /* register: every node routes to u2 within 1 s */
    h_cmd *r = reg(&rd, u2, "--ttl 2s");
    for (int i = 0; i < 3; i++) {
        int64_t took = wait_routes(node[i]->port, "u2", true, 1000);
        cr_expect(took >= 0, "node %d does not route to the registered instance within 1 s", i);
    }
    /* deregister (SIGTERM): none does within 1 s */
    h_sleep_ms(500);
    kill(r->pid, SIGTERM);
    cr_expect_eq(h_cmd_wait(r, 5000), 0, "ringway register exited non-zero after SIGTERM: %s", r->err);
    for (int i = 0; i < 3; i++)
        cr_expect(wait_routes(node[i]->port, "u2", false, 1000) >= 0, "node %d still routes to u2", i);

    /* the heartbeat dies (kill -9): gone within TTL + 1 s */
    r = reg(&rd, u2, "--ttl 1s");
    cr_assert(wait_routes(node[1]->port, "u2", true, 1000) >= 0);
    kill(r->pid, SIGKILL);
    h_cmd_wait(r, 5000);
    int64_t t0 = h_now_ms();
    for (int i = 0; i < 3; i++)
        cr_expect(wait_routes(node[i]->port, "u2", false, 2000 - (int)(h_now_ms() - t0)) >= 0,
                  "node %d still routes to u2 after the TTL", i);
    cr_expect_eq(wrk_errors(w), 0, "failed requests while instances came and went");
    h_redis_stop(&rd);
}

H_TEST(discovery, redis_outage_keeps_last_known_and_resyncs)
{
    if (!h_have_redis())
        cr_skip_test("redis-server is not installed");
    h_redis rd;
    h_redis_start(&rd, 0);
    h_upstream *u1 = h_upstream_start("u1", NULL), *u2 = h_upstream_start("u2", NULL),
               *u3 = h_upstream_start("u3", NULL);
    int admin = h_free_port();
    h_proxy *p =
        h_proxy_start(&(h_proxy_opts){.config = redis_config(&rd, u1, admin), .expect_errors = true});
    h_cmd *r2 = reg(&rd, u2, "--ttl 3s");
    cr_assert(wait_routes(p->port, "u2", true, 1000) >= 0);
    /* pooled connections to u1 survive the change the registration made */
    h_conn *c = h_connect(p->port);
    h_resp r;
    long serial = -1;
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(h_request(c, "GET", "/x", NULL, NULL, 0, &r), H_OK);
        if (strcmp(h_hdr(&r, "X-Upstream"), "u1") == 0 && serial < 0)
            serial = atol(h_hdr(&r, "X-Upstream-Conn"));
    }
    h_cmd *r3 = reg(&rd, u3, NULL);
    cr_assert(wait_routes(p->port, "u3", true, 1000) >= 0);
    bool same = false;
    for (int i = 0; i < 20 && !same; i++) {
        cr_assert_eq(h_request(c, "GET", "/x", NULL, NULL, 0, &r), H_OK);
        same = strcmp(h_hdr(&r, "X-Upstream"), "u1") == 0 && atol(h_hdr(&r, "X-Upstream-Conn")) == serial;
    }
    cr_expect(same, "the pooled connection to u1 (serial %ld) was not reused after a discovery change",
              serial);
    h_close(c);
    kill(r3->pid, SIGTERM);
    h_cmd_wait(r3, 5000);
    cr_assert(wait_routes(p->port, "u3", false, 1000) >= 0);

    /* Redis dies: u2 stays (its TTL cannot run out without Redis) */
    h_redis_stop(&rd);
    h_sleep_ms(1500);
    cr_expect(wait_routes(p->port, "u2", true, 500) >= 0,
              "Redis down: the last known instances were dropped");
    cr_expect(h_proxy_wait_log(p, "redis (registry", 1, 2000), "no log line about the registry's Redis");
    /* Redis back, empty: the heartbeat re-registers u2, and u3 registers meanwhile */
    h_redis_start(&rd, rd.port);
    r3 = reg(&rd, u3, NULL);
    cr_expect(wait_routes(p->port, "u3", true, 3000) >= 0,
              "a registration made after the outage did not arrive");
    cr_expect(wait_routes(p->port, "u2", true, 1000) >= 0, "the re-registered instance is gone");
    kill(r2->pid, SIGTERM);
    kill(r3->pid, SIGTERM);
    h_cmd_wait(r2, 5000);
    h_cmd_wait(r3, 5000);
    h_redis_stop(&rd);
}

H_TEST(discovery, bad_registry_entries_and_cli_errors)
{
    if (!h_have_redis())
        cr_skip_test("redis-server is not installed");
    h_redis rd;
    h_redis_start(&rd, 0);
    h_upstream *u1 = h_upstream_start("u1", NULL), *u2 = h_upstream_start("u2", NULL);
    int admin = h_free_port();
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.config = redis_config(&rd, u1, admin)});
    /* entries written by hand, two broken: skipped and logged, the good one used */
    h_cmd *c;
    cr_assert_eq(h_run(&c, 5000,
                       "redis-cli -p %d ZADD ringway:svc:api:instances 9999999999999 'not an address' "
                       "9999999999999 'db.internal:80' 9999999999999 '127.0.0.1:%d;weight=2' && "
                       "redis-cli -p %d PUBLISH ringway:discovery api",
                       rd.port, u2->port, rd.port),
                 0, "%s", c->err);
    cr_expect(wait_routes(p->port, "u2", true, 1500) >= 0);
    cr_expect(h_proxy_log_contains(p, "skipping entry 'not an address'"));
    cr_expect(h_proxy_log_contains(p, "'db.internal' is not an IP address"));
    /* the CLI refuses what it cannot register */
    cr_expect_eq(h_run(&c, 5000, "'%s' register --redis redis://127.0.0.1:%d --service api --address db:80",
                       h_binary(), rd.port),
                 2);
    cr_expect(strstr(c->err, "is not an IP address") != NULL, "%s", c->err);
    cr_expect_eq(h_run(&c, 5000, "'%s' register --service api --address 127.0.0.1:1", h_binary()), 2);
    cr_expect(strstr(c->err, "--redis, --service and --address are required") != NULL, "%s", c->err);
    cr_expect_eq(h_run(&c, 5000,
                       "'%s' deregister --redis redis://127.0.0.1:%d --service api --address 127.0.0.1:%d",
                       h_binary(), rd.port, u2->port),
                 0, "%s", c->err);
    cr_expect(wait_routes(p->port, "u2", false, 1000) >= 0,
              "deregister did not remove the hand-written entry");
    h_redis_stop(&rd);
}
