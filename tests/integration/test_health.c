/* test_health.c - upstream health: active checks (one probe per instance per
 * interval per node, thresholds, timeouts, tcp), passive outlier detection
 * (ejection, its cap, return), the panic rule, state kept across reloads,
 * retries (on statuses, resets, attempts, backoff, budget), max_requests,
 * /status and /metrics, and wrk with an instance killed and restarted. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* Two instances u1, u2 of service "svc", every path routed to it, with the
 * service lines extra (indented four spaces) and an admin port. */
static char *two_config(const h_upstream *u1, const h_upstream *u2, int admin, const char *extra)
{
    return h_fmt("admin: \"127.0.0.1:%d\"\n"
                 "services:\n"
                 "  - name: svc\n"
                 "    instances: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n"
                 "%s"
                 "routes:\n"
                 "  - name: all\n"
                 "    paths: [{prefix: /}]\n"
                 "    service: svc\n",
                 admin, u1->port, u2->port, extra);
}

static h_proxy *start_two(const h_upstream *u1, const h_upstream *u2, int admin, const char *extra,
                          int workers)
{
    return h_proxy_start(&(h_proxy_opts){.config = two_config(u1, u2, admin, extra), .workers = workers});
}

static char *admin_get(int admin, const char *path)
{
    h_resp r;
    h_get(admin, path, &r);
    cr_assert_eq(r.status, 200, "admin %s answered %d", path, r.status);
    return r.body;
}

/* The value of field in /status for the instance on port ("true", "false", a number). */
static char *inst_field(int admin, int port, const char *field)
{
    char *js = admin_get(admin, "/status");
    const char *at = strstr(js, h_fmt("\"address\":\"127.0.0.1:%d\"", port));
    cr_assert_not_null(at, "instance %d not in /status: %s", port, js);
    const char *f = strstr(at, h_fmt("\"%s\":", field));
    cr_assert_not_null(f, "no %s in /status: %s", field, js);
    f += strlen(field) + 3;
    size_t n = strcspn(f, ",}");
    return h_fmt("%.*s", (int)n, f);
}

static bool wait_rotation(int admin, int port, bool want, int timeout_ms)
{
    int64_t end = h_now_ms() + timeout_ms;
    do {
        if (strcmp(inst_field(admin, port, "in_rotation"), want ? "true" : "false") == 0)
            return true;
        h_sleep_ms(20);
    } while (h_now_ms() < end);
    return false;
}

/* GETs /x n times on fresh connections; counts the answers of each upstream. */
static void spread(int port, int n, int *from1, int *from2, int *non200)
{
    *from1 = *from2 = *non200 = 0;
    for (int i = 0; i < n; i++) {
        h_resp r;
        h_get(port, "/x", &r);
        if (r.status != 200) {
            (*non200)++;
            continue;
        }
        const char *who = h_hdr(&r, "X-Upstream");
        if (who != NULL && strcmp(who, "u1") == 0)
            (*from1)++;
        else if (who != NULL && strcmp(who, "u2") == 0)
            (*from2)++;
    }
}

static void upstream_get(const h_upstream *u, const char *path)
{
    h_resp r;
    h_get(u->port, path, &r);
    cr_assert_eq(r.status, 200, "GET %s on %s", path, u->name);
}

/* ---- active checks ------------------------------------------------------- */

H_TEST(health, one_probe_per_instance_per_interval_whatever_the_workers)
{
    /* The acceptance's 1 s interval over 10 s (10 +- 2 probes), at a third of
     * the time: 2 workers must not mean 2 probes per interval. */
    h_upstream *u1 = h_upstream_start("u1", NULL), *u2 = h_upstream_start("u2", NULL);
    int admin = h_free_port();
    h_proxy *p =
        start_two(u1, u2, admin, "    health_check: {path: /healthz, interval: 300ms, timeout: 200ms}\n", 2);
    h_sleep_ms(400); /* the first probes spread over one interval */
    h_upstream_reset(u1);
    h_upstream_reset(u2);
    h_sleep_ms(3000);
    long n1 = h_upstream_stats(u1).health, n2 = h_upstream_stats(u2).health;
    cr_expect(n1 >= 8 && n1 <= 12, "u1 saw %ld probes in 3 s at 300 ms (want 10 +- 2)", n1);
    cr_expect(n2 >= 8 && n2 <= 12, "u2 saw %ld probes in 3 s at 300 ms (want 10 +- 2)", n2);
    cr_expect_eq(h_upstream_stats(u1).requests, 0, "probes must not count as requests");
    char *m = admin_get(admin, "/metrics");
    cr_expect(strstr(m, h_fmt("ringway_health_checks_total{service=\"svc\",instance=\"127.0.0.1:%d\","
                              "result=\"passed\"}",
                              u1->port)) != NULL,
              "no probe counter in /metrics");
    (void)p;
}

H_TEST(health, failing_check_takes_instance_out_and_back)
{
    h_upstream *u1 = h_upstream_start("u1", NULL), *u2 = h_upstream_start("u2", NULL);
    int admin = h_free_port();
    h_proxy *p = start_two(
        u1, u2, admin,
        "    health_check: {path: /healthz, interval: 300ms, timeout: 200ms, healthy: 2, unhealthy: 3}\n", 2);
    upstream_get(u2, "/healthz/fail");
    /* three failures in a row, the 2nd and 3rd sooner: about one interval */
    cr_assert(wait_rotation(admin, u2->port, false, 1500), "u2 still in rotation with a failing check");
    cr_expect(h_proxy_wait_log(p, "is unhealthy after 3 failed checks (status 503)", 1, 1000));
    int a, b, bad;
    spread(p->port, 30, &a, &b, &bad);
    cr_expect_eq(bad, 0);
    cr_expect_eq(b, 0, "u2 got %d requests while unhealthy", b);
    cr_expect_eq(a, 30);
    cr_expect_str_eq(inst_field(admin, u2->port, "healthy"), "false");
    cr_expect_str_eq(inst_field(admin, u2->port, "last"), "503");
    upstream_get(u2, "/healthz/ok");
    cr_assert(wait_rotation(admin, u2->port, true, 1500), "u2 not back after its check passed");
    cr_expect(h_proxy_log_contains(p, "is healthy again after 2 passed checks"));
    spread(p->port, 30, &a, &b, &bad);
    cr_expect(a > 0 && b > 0, "after recovery: u1 %d, u2 %d", a, b);
}

H_TEST(health, probe_timeout_and_tcp_checks)
{
    /* a health endpoint that hangs: the probe gives up at its timeout */
    h_upstream *u1 = h_upstream_start("u1", NULL), *u2 = h_upstream_start("u2", NULL);
    int admin = h_free_port();
    h_proxy *p = start_two(
        u1, u2, admin,
        "    health_check: {path: /delay/3000, interval: 400ms, timeout: 150ms, unhealthy: 1}\n", 1);
    cr_assert(wait_rotation(admin, u1->port, false, 1500), "a hanging check did not time out");
    cr_expect(h_proxy_wait_log(p, "failed checks (timed out)", 1, 1000));
    h_proxy_stop(p, 0);

    /* tcp: a connect is the check */
    admin = h_free_port();
    p = start_two(u1, u2, admin,
                  "    health_check: {type: tcp, interval: 300ms, timeout: 200ms, unhealthy: 2}\n", 1);
    h_sleep_ms(500);
    cr_expect_str_eq(inst_field(admin, u2->port, "in_rotation"), "true");
    cr_expect_str_eq(inst_field(admin, u2->port, "last"), "\"connected\"");
    h_upstream_kill(u2);
    cr_assert(wait_rotation(admin, u2->port, false, 1500), "a dead instance passed its tcp check");
    cr_expect(h_proxy_log_contains(p, "Connection refused"));
}

H_TEST(health, panic_routes_to_all_when_none_is_up)
{
    h_upstream *u1 = h_upstream_start("u1", NULL), *u2 = h_upstream_start("u2", NULL);
    int admin = h_free_port();
    h_proxy *p =
        start_two(u1, u2, admin,
                  "    health_check: {path: /healthz, interval: 300ms, timeout: 200ms, unhealthy: 1}\n", 1);
    upstream_get(u1, "/healthz/fail");
    upstream_get(u2, "/healthz/fail");
    cr_assert(wait_rotation(admin, u1->port, false, 1500) && wait_rotation(admin, u2->port, false, 1500));
    cr_expect(h_proxy_wait_log(p, "no instance is in rotation; routing to all 2 of them (panic)", 1, 1000));
    int a, b, bad;
    spread(p->port, 20, &a, &b, &bad);
    cr_expect_eq(bad, 0, "panic: requests must still be served");
    cr_expect(a > 0 && b > 0, "panic spreads over all: u1 %d, u2 %d", a, b);
    cr_expect(strstr(admin_get(admin, "/metrics"), "ringway_upstream_panic_total{service=\"svc\"} 20") !=
                  NULL,
              "panic counter: %s", admin_get(admin, "/metrics"));
    cr_expect(strstr(admin_get(admin, "/status"), "\"panic\":true") != NULL);
    upstream_get(u1, "/healthz/ok");
    cr_expect(h_proxy_wait_log(p, "panic over", 1, 2000));
}

H_TEST(health, reload_keeps_the_verdict)
{
    h_upstream *u1 = h_upstream_start("u1", NULL), *u2 = h_upstream_start("u2", NULL);
    int admin = h_free_port();
    const char *hc =
        "    health_check: {path: /healthz, interval: 2s, timeout: 200ms, unhealthy: 1, healthy: 3}\n";
    h_proxy *p = start_two(u1, u2, admin, hc, 1);
    upstream_get(u2, "/healthz/fail");
    cr_assert(wait_rotation(admin, u2->port, false, 3000));
    upstream_get(u2, "/healthz/ok");
    /* a reload (another route added) right away: u2 stays out until it passes 3 checks */
    h_proxy_write_config(
        p, h_fmt("%s  - name: extra\n    paths: [{exact: /extra}]\n    respond: {status: 204}\n",
                 two_config(u1, u2, admin, hc)));
    h_proxy_signal(p, SIGHUP);
    cr_assert(h_proxy_wait_log(p, "reloaded", 1, 3000));
    int a, b, bad;
    spread(p->port, 20, &a, &b, &bad);
    cr_expect_eq(b, 0, "u2 got %d requests right after a reload", b);
    cr_expect_str_eq(inst_field(admin, u2->port, "healthy"), "false");
}

/* ---- outlier detection --------------------------------------------------- */

H_TEST(outlier, failing_instance_is_ejected_and_returns)
{
    h_upstream *u1 = h_upstream_start("u1", NULL), *u2 = h_upstream_start("u2", "--status", "500", NULL);
    int admin = h_free_port();
    h_proxy *p = start_two(u1, u2, admin, "    outlier: {consecutive_failures: 3, base_ejection: 1s}\n", 2);
    int a, b, bad;
    spread(p->port, 20, &a, &b, &bad);
    cr_expect(bad >= 3 && bad <= 6, "%d 500s before the ejection (want about 3)", bad);
    cr_assert(h_proxy_wait_log(p, "ejected for", 1, 1000), "u2 was not ejected");
    cr_expect_str_eq(inst_field(admin, u2->port, "ejected"), "true");
    spread(p->port, 20, &a, &b, &bad);
    cr_expect_eq(bad, 0, "an ejected instance still got requests");
    /* back after the ejection (1 s, up to 10% more), and out again for longer */
    cr_assert(h_proxy_wait_log(p, "ejection over, back in rotation", 1, 2000));
    spread(p->port, 20, &a, &b, &bad);
    cr_expect(bad >= 1, "u2 never came back");
    cr_assert(h_proxy_wait_log(p, "(ejection 2 in a row)", 1, 1000), "the second ejection is not longer");
    cr_expect(strstr(admin_get(admin, "/metrics"),
                     h_fmt("ringway_upstream_ejections_total{service=\"svc\",instance=\"127.0.0.1:%d\"} 2",
                           u2->port)) != NULL);
}

H_TEST(outlier, never_more_than_the_cap)
{
    /* both instances fail: with 2 instances and 50%, one at most is out */
    h_upstream *u1 = h_upstream_start("u1", "--status", "503", NULL),
               *u2 = h_upstream_start("u2", "--status", "503", NULL);
    int admin = h_free_port();
    h_proxy *p =
        start_two(u1, u2, admin,
                  "    outlier: {consecutive_failures: 2, base_ejection: 5s, max_ejected_percent: 50}\n", 2);
    for (int round = 0; round < 10; round++) {
        int a, b, bad;
        spread(p->port, 10, &a, &b, &bad);
        cr_expect_eq(bad, 10);
        int out = !strcmp(inst_field(admin, u1->port, "ejected"), "true") +
                  !strcmp(inst_field(admin, u2->port, "ejected"), "true");
        cr_assert(out <= 1, "both instances ejected");
    }
    cr_expect_eq(h_proxy_log_count(p, "ejected for"), 1, "one ejection, then the cap");
}

H_TEST(outlier, connect_failures_count)
{
    h_upstream *u1 = h_upstream_start("u1", NULL), *u2 = h_upstream_start("u2", NULL);
    int admin = h_free_port();
    h_proxy *p = start_two(u1, u2, admin, "    outlier: {consecutive_failures: 2, base_ejection: 30s}\n", 1);
    h_upstream_kill(u2);
    int a, b, bad;
    spread(p->port, 10, &a, &b, &bad);
    cr_expect_eq(bad, 0, "connect failures are retried on the other instance");
    cr_expect(h_proxy_wait_log(p, "ejected for", 1, 1000));
    cr_expect_str_eq(inst_field(admin, u2->port, "in_rotation"), "false");
}

/* ---- retries and max_requests ------------------------------------------ */

/* Sends method /x on a fresh connection; returns the status (X-Upstream in who). */
static int ask(int port, const char *method, char *who, size_t cap)
{
    h_conn *c = h_connect(port);
    h_resp r;
    cr_assert_eq(h_request(c, method, "/x", "Connection: close\r\n", NULL, 0, &r), H_OK);
    const char *u = h_hdr(&r, "X-Upstream");
    snprintf(who, cap, "%s", u ? u : "");
    h_close(c);
    return r.status;
}

static long metric(int admin, const char *name)
{
    char *m = admin_get(admin, "/metrics");
    const char *at = strstr(m, h_fmt("\n%s ", name));
    return at ? atol(at + strlen(name) + 2) : -1;
}

H_TEST(retries, on_503_goes_to_another_instance)
{
    h_upstream *u1 = h_upstream_start("u1", "--status", "503", NULL), *u2 = h_upstream_start("u2", NULL);
    int admin = h_free_port();
    h_proxy *p = start_two(u1, u2, admin, "    retries: {attempts: 2, on: [connect_failure, 503]}\n", 1);
    char who[32];
    for (int i = 0; i < 10; i++) {
        cr_expect_eq(ask(p->port, "GET", who, sizeof(who)), 200, "GET %d", i);
        cr_expect_str_eq(who, "u2");
    }
    cr_expect_eq(h_upstream_stats(u1).requests, 5, "round robin: every other first try was u1");
    cr_expect_eq(metric(admin, "ringway_upstream_retries_total"), 5);
    /* POST is not idempotent: its 503 comes back as it is */
    int got503 = 0;
    for (int i = 0; i < 10; i++)
        got503 += ask(p->port, "POST", who, sizeof(who)) == 503;
    cr_expect_eq(got503, 5, "POSTs retried without retry_non_idempotent");
    h_proxy_stop(p, 0);

    p = start_two(u1, u2, h_free_port(), "    retries: {on: [503], retry_non_idempotent: true}\n", 1);
    for (int i = 0; i < 10; i++)
        cr_expect_eq(ask(p->port, "POST", who, sizeof(who)), 200, "POST %d with retry_non_idempotent", i);
}

H_TEST(retries, attempts_and_reset)
{
    /* three instances, two broken: three attempts always find the good one */
    h_upstream *u1 = h_upstream_start("u1", "--status", "502", NULL),
               *u2 = h_upstream_start("u2", "--status", "504", NULL), *u3 = h_upstream_start("u3", NULL);
    int admin = h_free_port();
    h_proxy *p = h_proxy_start(&(h_proxy_opts){
        .config = h_fmt("admin: \"127.0.0.1:%d\"\n"
                        "services:\n"
                        "  - name: svc\n"
                        "    instances: [\"127.0.0.1:%d\", \"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n"
                        "    retries: {attempts: 3, on: [reset, 502, 504]}\n"
                        "routes:\n"
                        "  - name: all\n"
                        "    paths: [{prefix: /}]\n"
                        "    service: svc\n",
                        admin, u1->port, u2->port, u3->port)});
    char who[32];
    for (int i = 0; i < 12; i++) {
        cr_expect_eq(ask(p->port, "GET", who, sizeof(who)), 200);
        cr_expect_str_eq(who, "u3");
    }
    /* /drop closes without an answer everywhere: 3 attempts, then 502 */
    h_upstream_reset(u1);
    h_upstream_reset(u2);
    h_upstream_reset(u3);
    h_resp r;
    h_get(p->port, "/drop", &r);
    cr_expect_eq(r.status, 502);
    long tries =
        h_upstream_stats(u1).requests + h_upstream_stats(u2).requests + h_upstream_stats(u3).requests;
    /* 3 attempts, plus one when the first went on a pooled connection: a
     * close before any response byte there is the keep-alive race, retried
     * on a fresh connection without counting as an attempt */
    cr_expect(tries == 3 || tries == 4, "/drop was tried %ld times (want 3, or 4)", tries);
}

H_TEST(retries, backoff_and_budget)
{
    h_upstream *u1 = h_upstream_start("u1", "--status", "503", NULL),
               *u2 = h_upstream_start("u2", "--status", "503", NULL);
    int admin = h_free_port();
    h_proxy *p = start_two(u1, u2, admin, "    retries: {attempts: 3, on: [503], backoff: 200ms}\n", 1);
    int64_t t0 = h_now_ms();
    h_resp r;
    h_get(p->port, "/x", &r);
    int64_t took = h_now_ms() - t0;
    cr_expect_eq(r.status, 503, "the last answer goes back when attempts run out");
    /* waits of [100, 200] then [200, 400] ms */
    cr_expect(took >= 300 && took < 1500, "two retries with backoff 200ms took %lld ms", (long long)took);
    cr_expect_eq(h_upstream_stats(u1).requests + h_upstream_stats(u2).requests, 3);
    h_proxy_stop(p, 0);

    /* a budget of nothing: no retries at all, and they are counted */
    p = start_two(u1, u2, admin, "    retries: {on: [503], budget: 0%, budget_min: 0}\n", 1);
    h_upstream_reset(u1);
    h_upstream_reset(u2);
    h_get(p->port, "/x", &r);
    cr_expect_eq(r.status, 503);
    cr_expect_eq(h_upstream_stats(u1).requests + h_upstream_stats(u2).requests, 1);
    cr_expect_eq(metric(admin, "ringway_upstream_retry_budget_exhausted_total"), 1);
}

H_TEST(retries, total_timeout_during_a_backoff)
{
    /* the answer (504) ends the exchange: its pending retry must not fire later */
    h_upstream *u1 = h_upstream_start("u1", "--status", "503", NULL),
               *u2 = h_upstream_start("u2", "--status", "503", NULL);
    int admin = h_free_port();
    h_proxy *p =
        start_two(u1, u2, admin,
                  "    retries: {attempts: 3, on: [503], backoff: 2s}\n    timeouts: {total: 300ms}\n", 1);
    int64_t t0 = h_now_ms();
    h_resp r;
    h_get(p->port, "/x", &r);
    cr_expect_eq(r.status, 504);
    cr_expect(h_now_ms() - t0 < 1000, "the total timeout waited for the backoff");
    h_sleep_ms(2500); /* past when the retry would have run */
    h_get(p->port, "/x", &r);
    cr_expect_eq(r.status, 504, "ringway still answers");
    cr_expect_eq(h_upstream_stats(u1).requests + h_upstream_stats(u2).requests, 2,
                 "a retry ran after its exchange had been answered");
}

H_TEST(retries, max_requests_is_not_panic)
{
    /* one instance healthy but at max_requests, one unhealthy: 503 overloaded,
     * never the unhealthy one */
    h_upstream *u1 = h_upstream_start("u1", NULL), *u2 = h_upstream_start("u2", NULL);
    int admin = h_free_port();
    h_proxy *p =
        start_two(u1, u2, admin,
                  "    max_requests: 1\n"
                  "    health_check: {path: /healthz, interval: 300ms, timeout: 200ms, unhealthy: 1}\n",
                  1);
    h_resp r;
    h_get(u2->port, "/healthz/fail", &r);
    cr_assert(wait_rotation(admin, u2->port, false, 1500));
    h_conn *a = h_connect(p->port);
    h_sends(a, "GET /delay/800 HTTP/1.1\r\nHost: x\r\n\r\n");
    h_sleep_ms(200);
    h_get(p->port, "/x", &r);
    cr_expect_eq(r.status, 503, "got %d from %s", r.status,
                 h_hdr(&r, "X-Upstream") ? h_hdr(&r, "X-Upstream") : "-");
    cr_expect_eq(h_upstream_stats(u2).requests, 0, "the unhealthy instance got a request");
    cr_expect_eq(h_read_response(a, &r, 0), H_OK);
}

H_TEST(retries, max_requests_fails_fast)
{
    h_upstream *u1 = h_upstream_start("u1", NULL), *u2 = h_upstream_start("u2", NULL);
    int admin = h_free_port();
    h_proxy *p = start_two(u1, u2, admin, "    max_requests: 1\n", 1);
    /* two slow requests take both instances; a third finds none */
    h_conn *a = h_connect(p->port), *b = h_connect(p->port);
    h_sends(a, "GET /delay/800 HTTP/1.1\r\nHost: x\r\n\r\n");
    h_sends(b, "GET /delay/800 HTTP/1.1\r\nHost: x\r\n\r\n");
    h_sleep_ms(200);
    int64_t t0 = h_now_ms();
    h_resp r;
    h_get(p->port, "/x", &r);
    cr_expect_eq(r.status, 503);
    cr_expect(strstr(r.body, "max_requests") != NULL, "body: %s", r.body);
    cr_expect(h_now_ms() - t0 < 400, "the overflow answer waited");
    cr_expect_eq(metric(admin, "ringway_upstream_overflow_total"), 1);
    cr_expect_eq(h_read_response(a, &r, 0), H_OK);
    cr_expect_eq(r.status, 200);
    cr_expect_eq(h_read_response(b, &r, 0), H_OK);
    cr_expect_eq(r.status, 200);
    h_get(p->port, "/x", &r);
    cr_expect_eq(r.status, 200, "slots are given back");
}

/* ---- under load ---------------------------------------------------------- */

static long wrk_number(const char *out, const char *label)
{
    const char *at = strstr(out, label);
    return at ? atol(at + strlen(label)) : 0;
}

H_TEST(health, instance_killed_and_restarted_under_wrk)
{
    h_upstream *u1 = h_upstream_start("u1", NULL), *u2 = h_upstream_start("u2", NULL);
    int admin = h_free_port();
    h_proxy *p = start_two(
        u1, u2, admin,
        "    health_check: {path: /healthz, interval: 1s, timeout: 300ms, healthy: 2, unhealthy: 3}\n"
        "    outlier: {consecutive_failures: 3, base_ejection: 1s}\n",
        2);
    h_cmd *w = h_cmd_start("wrk -t2 -c64 -d6s http://127.0.0.1:%d/x", p->port);
    h_sleep_ms(1500);
    int64_t killed = h_now_ms();
    h_upstream_kill(u2);
    cr_expect(wait_rotation(admin, u2->port, false, 1000),
              "the dead instance was in rotation 1 s after the kill");
    int64_t out_after = h_now_ms() - killed;
    h_sleep_ms(1500);
    h_upstream_restart(u2);
    int64_t restarted = h_now_ms();
    /* back within `healthy` intervals (plus what is left of an ejection) */
    cr_expect(wait_rotation(admin, u2->port, true, 3500), "the restarted instance did not come back");
    int64_t back_after = h_now_ms() - restarted;
    cr_assert_eq(h_cmd_wait(w, 20000), 0, "wrk failed: %s", w->err);
    long non2xx = wrk_number(w->out, "Non-2xx or 3xx responses: ");
    const char *se = strstr(w->out, "Socket errors:");
    long sock = 0;
    if (se != NULL) {
        long c = 0, r = 0, wr = 0, t = 0;
        sscanf(se, "Socket errors: connect %ld, read %ld, write %ld, timeout %ld", &c, &r, &wr, &t);
        sock = c + r + wr + t;
    }
    const char *req = strstr(w->out, " requests in ");
    cr_assert_not_null(req, "wrk said: %s", w->out);
    const char *line = req;
    while (line > w->out && line[-1] != '\n')
        line--;
    long total = atol(line);
    cr_assert(total > 1000, "wrk made %ld requests: %s", total, w->out);
    cr_expect(non2xx + sock <= total / 1000,
              "%ld non-2xx and %ld socket errors of %ld requests (want <= 0.1%%)", non2xx, sock, total);
    cr_log_info(
        "killed instance out after %lld ms, back %lld ms after its restart; %ld requests, %ld non-2xx",
        (long long)out_after, (long long)back_after, total, non2xx);
}

/* ---- config -------------------------------------------------------------- */

static void expect_bad(const char *service_lines, const char *needle)
{
    h_upstream u = {.port = 1};
    char *path =
        h_write_file("bad.yaml", two_config(&u, &(h_upstream){.port = 2}, h_free_port(), service_lines));
    h_cmd *c;
    int code = h_run(&c, 10000, "'%s' --check-config --config '%s'", h_binary(), path);
    cr_expect_eq(code, 1, "%s: exit %d", service_lines, code);
    cr_expect(strstr(c->err, needle) != NULL, "want \"%s\", got: %s", needle, c->err);
    cr_expect(strstr(c->err, h_fmt("%s:5:", path)) != NULL, "want line 5: %s", c->err);
}

H_TEST(health, config_errors)
{
    expect_bad("    health_check: {interval: 1s, timeout: 2s}\n",
               "services[0].health_check.timeout: must be shorter than the interval (1000ms)");
    expect_bad("    health_check: {path: healthz}\n", "services[0].health_check.path: must start with '/'");
    expect_bad("    health_check: {expect: [200-99]}\n",
               "status range '200-99' is outside 100-599 or reversed");
    expect_bad("    health_check: {expect: [ok]}\n",
               "invalid status 'ok' (expected e.g. 200, 200-399 or 2xx)");
    expect_bad("    health_check: {type: grpc}\n", "unknown type 'grpc' (expected http, tcp)");
    expect_bad("    health_check: {jitter: 80%}\n",
               "health_check.jitter: invalid share '80%' (expected a percentage like 10%, at most 50%)");
    expect_bad("    health_check: {intervall: 1s}\n", "unknown key 'intervall' in health_check");
    expect_bad("    outlier: {on: [5xx, 404]}\n",
               "unknown failure '404' (expected connect_failure, reset, timeout, 5xx)");
    expect_bad("    outlier: {base_ejection: 10s, max_ejection: 5s}\n",
               "must be at least base_ejection (10000ms)");
    expect_bad("    outlier: {max_ejected_percent: 101}\n", "services[0].outlier.max_ejected_percent");
    expect_bad("    retries: {attempts: 11}\n", "services[0].retries.attempts");
    expect_bad("    retries: {on: [5xx]}\n",
               "unknown failure '5xx' (expected connect_failure, reset, timeout, 502, 503, 504)");
    expect_bad("    retries: {budget: lots}\n", "retries.budget: invalid share 'lots'");
    expect_bad("    retries: {tries: 2}\n", "unknown key 'tries' in retries");
    /* and the good forms load */
    h_upstream u = {.port = 1};
    char *path = h_write_file(
        "good.yaml",
        two_config(
            &u, &(h_upstream){.port = 2}, h_free_port(),
            "    health_check: {type: http, path: /hc, method: HEAD, host: svc.internal, "
            "expect: [200, 300-302, 4xx], jitter: 0%, interval: 1s, timeout: 999ms}\n"
            "    outlier: {on: [5xx], consecutive_failures: 1, max_ejected_percent: 0}\n"
            "    retries: {attempts: 3, on: [timeout, 503], backoff: 25ms, budget: 20%, budget_min: 5}\n"
            "    max_requests: 100\n"));
    h_cmd *c;
    cr_expect_eq(h_run(&c, 10000, "'%s' --check-config --config '%s'", h_binary(), path), 0, "%s", c->err);
}
