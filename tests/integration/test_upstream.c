/* test_upstream.c - upstream connection reuse (keep-alive pools) and load
 * balancing (round_robin weights, least_conn, hash). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* ---- keep-alive ---------------------------------------------------------- */

H_TEST(upstream, keepalive_reuse_one_worker)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, NULL);
    h_conn *c = h_connect(p->port);
    long first = -1;
    int changes = 0;
    for (int i = 0; i < 100; i++) {
        h_resp r;
        cr_assert_eq(h_request(c, "GET", h_fmt("/r%d", i), NULL, NULL, 0, &r), H_OK, "request %d", i);
        cr_assert_eq(r.status, 200);
        const char *sc = h_hdr(&r, "X-Upstream-Conn");
        cr_assert_not_null(sc);
        long serial = atol(sc);
        if (first != -1 && serial != first)
            changes++;
        first = serial;
    }
    h_stats s = h_upstream_stats(u);
    cr_assert_eq(s.requests, 100);
    cr_assert(s.connections <= 1, "100 sequential requests used %ld upstream connections", s.connections);
    cr_assert_eq(changes, 0, "X-Upstream-Conn changed %d times", changes);
}

H_TEST(upstream, keepalive_reuse_across_client_connections)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.config = h_basic_config(u, NULL, NULL), .workers = 2});
    for (int i = 0; i < 40; i++) {
        h_resp r;
        h_get(p->port, "/x", &r);
        cr_assert_eq(r.status, 200);
    }
    h_stats s = h_upstream_stats(u);
    cr_assert_eq(s.requests, 40);
    cr_assert(s.connections <= 2,
              "40 requests from 40 client connections, 2 workers: %ld upstream "
              "connections (want <= 2)",
              s.connections);
}

H_TEST(upstream, keepalive_with_bodies_and_statuses)
{
    /* reuse must survive every kind of response framing */
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, NULL);
    h_conn *c = h_connect(p->port);
    static const char *const targets[] = {"/bytes/100",  "/chunked/10000", "/status/204", "/status/304",
                                          "/status/404", "/echo",          "/bytes/0"};
    for (int round = 0; round < 5; round++)
        for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
            h_resp r;
            cr_assert_eq(h_request(c, "GET", targets[i], NULL, NULL, 0, &r), H_OK, "%s", targets[i]);
            cr_assert_str_eq(h_hdr(&r, "X-Upstream-Conn"), "1", "GET %s on a new upstream connection",
                             targets[i]);
        }
    cr_assert_eq(h_request(c, "HEAD", "/bytes/100", NULL, NULL, 0, &(h_resp){0}), H_OK);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/x", NULL, NULL, 0, &r), H_OK);
    cr_assert_str_eq(h_hdr(&r, "X-Upstream-Conn"), "1", "HEAD broke upstream reuse");
    cr_assert(h_upstream_stats(u).connections <= 1);
}

H_TEST(upstream, close_delimited_response_not_reused)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/close/10", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.body_len, 10);
    if (r.framing == H_FRAME_CLOSE)
        c = h_connect(p->port);
    cr_assert_eq(h_request(c, "GET", "/after", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 200, "request after a close-delimited response: %d", r.status);
    cr_assert_str_eq(r.body, "u1 GET /after\n");
}

H_TEST(upstream, upstream_closes_idle_connections)
{
    h_upstream *u = h_upstream_start("u1", "--idle-timeout", "150", NULL);
    h_proxy *p = h_proxy_run(h_basic_config(u, NULL, NULL));
    h_conn *c = h_connect(p->port);
    for (int i = 0; i < 4; i++) {
        h_resp r;
        int rc = h_request(c, "GET", h_fmt("/n%d", i), NULL, NULL, 0, &r);
        cr_assert_eq(rc, H_OK, "request %d after the upstream closed its idle connection: %d", i, rc);
        cr_assert_eq(r.status, 200, "request %d after the upstream closed its idle connection: %d", i,
                     r.status);
        cr_assert_str_eq(r.body, h_fmt("u1 GET /n%d\n", i));
        h_sleep_ms(400);
    }
}

H_TEST(upstream, upstream_idle_close_race)
{
    /* The upstream closes connections idle for 50 ms while requests come about
     * every 50 ms: some requests meet a pooled connection that is just being
     * closed. Idempotent requests must still succeed (retried on a fresh
     * connection), never surface as 502. */
    h_upstream *u = h_upstream_start("u1", "--idle-timeout", "50", NULL);
    h_proxy *p = h_proxy_run(h_basic_config(u, NULL, NULL));
    h_conn *c = h_connect(p->port);
    int bad = 0;
    char *first_bad = NULL;
    for (int i = 0; i < 40; i++) {
        h_resp r;
        int rc = h_request(c, "GET", h_fmt("/n%d", i), NULL, NULL, 0, &r);
        cr_assert_eq(rc, H_OK, "request %d: no response (%d)", i, rc);
        if (r.status != 200) {
            if (!first_bad)
                first_bad = h_fmt("request %d: %d %s", i, r.status, r.body);
            bad++;
        }
        h_sleep_ms(45 + (i % 11));
    }
    cr_assert_eq(bad, 0, "%d of 40 GETs failed when the upstream closed idle connections; first: %s", bad,
                 first_bad);
    cr_assert(h_upstream_stats(u).connections > 5, "the upstream did not close idle connections");
}

H_TEST(upstream, pool_idle_timeout)
{
    /* the proxy's own idle timeout closes pooled connections */
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, "    keepalive: {max_idle: 4, idle_timeout: 200ms}\n");
    h_resp r;
    h_get(p->port, "/a", &r);
    cr_assert_str_eq(h_hdr(&r, "X-Upstream-Conn"), "1");
    h_sleep_ms(700);
    h_get(p->port, "/b", &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(h_hdr(&r, "X-Upstream-Conn"), "2",
                     "an upstream connection idle past idle_timeout was reused");
}

/* ---- load balancing ------------------------------------------------------ */

static char *two_instances(const h_upstream *a, int wa, const h_upstream *b, int wb, const char *lb)
{
    return h_fmt("services:\n"
                 "  - name: svc\n"
                 "%s"
                 "    instances:\n"
                 "      - {address: \"127.0.0.1:%d\", weight: %d}\n"
                 "      - {address: \"127.0.0.1:%d\", weight: %d}\n"
                 "routes:\n"
                 "  - name: all\n"
                 "    paths: [{prefix: /}]\n"
                 "    service: svc\n",
                 lb, a->port, wa, b->port, wb);
}

H_TEST(upstream, round_robin_weights_exact)
{
    h_upstream *a = h_upstream_start("a", NULL), *b = h_upstream_start("b", NULL);
    h_proxy *p = h_proxy_run(two_instances(a, 3, b, 1, "    lb: round_robin\n"));
    h_conn *c = h_connect(p->port);
    int na = 0, nb = 0, longest_b_run = 0, run = 0;
    for (int i = 0; i < 400; i++) {
        h_resp r;
        cr_assert_eq(h_request(c, "GET", "/x", NULL, NULL, 0, &r), H_OK, "request %d", i);
        const char *who = h_hdr(&r, "X-Upstream");
        cr_assert_not_null(who, "request %d: status %d", i, r.status);
        if (strcmp(who, "a") == 0) {
            na++;
            run = 0;
        } else {
            nb++;
            if (++run > longest_b_run)
                longest_b_run = run;
        }
    }
    cr_assert(na == 300 && nb == 100, "weights 3:1 over 400 requests gave %d:%d", na, nb);
    cr_assert_eq(longest_b_run, 1, "weighted round robin is not smooth: %d b's in a row", longest_b_run);
    /* the stats agree */
    cr_assert_eq(h_upstream_stats(a).requests, 300);
    cr_assert_eq(h_upstream_stats(b).requests, 100);
}

H_TEST(upstream, round_robin_default_equal)
{
    h_upstream *a = h_upstream_start("a", NULL), *b = h_upstream_start("b", NULL);
    h_proxy *p = h_proxy_run(two_instances(a, 1, b, 1, ""));
    for (int i = 0; i < 40; i++) { /* new client connection each time */
        h_resp r;
        h_get(p->port, "/x", &r);
        cr_assert_eq(r.status, 200);
    }
    cr_assert_eq(h_upstream_stats(a).requests, 20);
    cr_assert_eq(h_upstream_stats(b).requests, 20);
}

H_TEST(upstream, least_conn)
{
    h_upstream *a = h_upstream_start("a", NULL), *b = h_upstream_start("b", NULL);
    h_proxy *p = h_proxy_run(two_instances(a, 1, b, 1, "    lb: least_conn\n"));
    /* one slow request holds one instance busy ... */
    h_conn *slow = h_connect(p->port);
    h_sends(slow, "GET /delay/1500 HTTP/1.1\r\nHost: x\r\n\r\n");
    int64_t deadline = h_now_ms() + 1000;
    while (h_upstream_stats(a).requests + h_upstream_stats(b).requests == 0 && h_now_ms() < deadline)
        h_sleep_ms(5);
    /* ... so every quick request meanwhile goes to the other one */
    h_conn *c = h_connect(p->port);
    char first[8] = "";
    for (int i = 0; i < 10; i++) {
        h_resp r;
        cr_assert_eq(h_request(c, "GET", "/q", NULL, NULL, 0, &r), H_OK);
        const char *who = h_hdr(&r, "X-Upstream");
        cr_assert_not_null(who);
        if (i == 0)
            snprintf(first, sizeof first, "%s", who);
        cr_assert_str_eq(who, first, "least_conn sent quick request %d to %s, the other to %s", i, who,
                         first);
    }
    h_resp r;
    cr_assert_eq(h_read_response(slow, &r, 0), H_OK);
    cr_assert_str_eq(r.body, "ok");
    cr_assert_str_neq(h_hdr(&r, "X-Upstream"), first,
                      "the slow request and the quick ones went to the same instance");
}

H_TEST(upstream, hash_on_header)
{
    h_upstream *a = h_upstream_start("a", NULL), *b = h_upstream_start("b", NULL);
    h_proxy *p = h_proxy_run(two_instances(a, 1, b, 1, "    lb: hash\n    hash_on: \"header:X-User-ID\"\n"));
    h_conn *c = h_connect(p->port);
    int used_a = 0, used_b = 0;
    for (int key = 0; key < 20; key++) {
        char first[8] = "";
        for (int rep = 0; rep < 5; rep++) {
            h_resp r;
            cr_assert_eq(h_request(c, "GET", "/h", h_fmt("X-User-ID: user-%d\r\n", key), NULL, 0, &r), H_OK);
            const char *who = h_hdr(&r, "X-Upstream");
            cr_assert_not_null(who);
            if (rep == 0)
                snprintf(first, sizeof first, "%s", who);
            cr_assert_str_eq(who, first, "key user-%d went to %s and to %s", key, first, who);
        }
        if (strcmp(first, "a") == 0)
            used_a++;
        else
            used_b++;
    }
    cr_assert(used_a > 0 && used_b > 0, "20 keys all hashed to one instance (a=%d b=%d)", used_a, used_b);
}

/* ---- connection cap (max_conns) and the wait queue ------------------------ */

/* Sends "GET target" on n new connections at once; returns them. */
static h_conn **send_on_many(int port, int n, const char *target)
{
    h_conn **cs = calloc((size_t)n, sizeof(*cs));
    cr_assert_not_null(cs);
    for (int i = 0; i < n; i++) {
        cs[i] = h_connect(port);
        cr_assert_eq(h_sendf(cs[i], "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target), 0);
    }
    return cs;
}

H_TEST(upstream, max_conns_queues_instead_of_connecting)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, "    max_conns: 2\n    timeouts: {queue: 5s}\n");
    h_upstream_reset(u);
    /* 8 slow requests at once share 2 upstream connections: 4 rounds of 300 ms */
    int64_t t0 = h_now_ms();
    h_conn **cs = send_on_many(p->port, 8, "/delay/300");
    for (int i = 0; i < 8; i++) {
        h_resp r;
        cr_assert_eq(h_read_response(cs[i], &r, 0), H_OK, "request %d", i);
        cr_assert_eq(r.status, 200, "request %d: %d %s", i, r.status, r.body);
        h_resp_free(&r);
        h_close(cs[i]);
    }
    int64_t took = h_now_ms() - t0;
    free(cs);
    h_stats st = h_upstream_stats(u);
    cr_expect_eq(st.requests, 8);
    cr_expect_leq(st.connections, 2, "the upstream served on %ld connections with max_conns: 2",
                  st.connections);
    cr_expect_geq(took, 4 * 300 - 50, "8 requests over 2 connections took only %lld ms", (long long)took);
}

H_TEST(upstream, max_conns_queue_timeout_is_503)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, "    max_conns: 1\n    timeouts: {queue: 200ms}\n");
    p->expect_errors = true;
    h_conn **cs = send_on_many(p->port, 3, "/delay/1000");
    int ok = 0, refused = 0;
    for (int i = 0; i < 3; i++) {
        h_resp r;
        cr_assert_eq(h_read_response(cs[i], &r, 0), H_OK, "request %d", i);
        if (r.status == 200) {
            ok++;
        } else {
            cr_expect_eq(r.status, 503, "request %d: %d %s", i, r.status, r.body);
            cr_expect(strstr(r.body, "upstream connection limit reached") != NULL, "body: %s", r.body);
            cr_expect_not_null(h_hdr(&r, "X-Request-Id"));
            refused++;
        }
        h_resp_free(&r);
    }
    cr_expect_eq(ok, 1, "%d answered, %d refused", ok, refused);
    cr_expect_eq(refused, 2);
    cr_expect(h_proxy_log_contains(p, "no connection slot within the queue timeout"));
    /* the refused ones' connections stay usable, and the slot is free again */
    for (int i = 0; i < 3; i++) {
        h_resp r;
        cr_assert_eq(h_request(cs[i], "GET", "/q", NULL, NULL, 0, &r), H_OK, "connection %d", i);
        cr_expect_eq(r.status, 200);
        h_resp_free(&r);
        h_close(cs[i]);
    }
    free(cs);
}

H_TEST(upstream, max_conns_waiter_that_leaves_is_forgotten)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, "    max_conns: 1\n    timeouts: {queue: 5s}\n");
    h_upstream_reset(u);
    h_conn *busy = h_connect(p->port);
    h_sends(busy, "GET /delay/400 HTTP/1.1\r\nHost: x\r\n\r\n");
    h_sleep_ms(100);
    /* three clients queue behind it and hang up; one more waits properly */
    for (int i = 0; i < 3; i++) {
        h_conn *c = h_connect(p->port);
        h_sends(c, "GET /q HTTP/1.1\r\nHost: x\r\n\r\n");
        h_sleep_ms(20);
        h_close(c);
    }
    h_conn *last = h_connect(p->port);
    h_sends(last, "GET /q HTTP/1.1\r\nHost: x\r\n\r\n");
    h_resp r;
    cr_assert_eq(h_read_response(busy, &r, 0), H_OK);
    cr_expect_eq(r.status, 200);
    h_resp_free(&r);
    cr_assert_eq(h_read_response(last, &r, 0), H_OK);
    cr_expect_eq(r.status, 200);
    h_resp_free(&r);
    h_close(busy);
    h_close(last);
    /* the ones that hung up left the queue: their requests never went out */
    cr_expect_eq(h_upstream_stats(u).requests, 2, "the upstream saw %ld requests",
                 h_upstream_stats(u).requests);
}
