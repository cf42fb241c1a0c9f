/* test_timeouts.c - client-side timeouts: header, body, keep-alive. */
#include <string.h>

#include "harness.h"

#define FAST_TIMEOUTS                                                                                        \
    "  client_header_timeout: 500ms\n"                                                                       \
    "  client_body_timeout: 500ms\n"                                                                         \
    "  keepalive_timeout: 500ms\n"

/* Waits for the proxy to close c; checks that it took between lo and hi ms and
 * that whatever it sent first, if anything, is a 408. */
static void expect_closed_between(h_conn *c, int64_t t0, int lo, int hi, const char *what)
{
    char *got = NULL;
    bool closed = h_wait_closed(c, hi + 1000, &got);
    int64_t took = h_now_ms() - t0;
    cr_assert(closed, "%s: still open after %lld ms", what, (long long)took);
    cr_assert(took >= lo && took <= hi, "%s: closed after %lld ms, want %d..%d", what, (long long)took, lo,
              hi);
    cr_assert(got[0] == '\0' || strncmp(got, "HTTP/1.1 408", 12) == 0,
              "%s: sent something other than a 408 before closing: %.80s", what, got);
}

H_TEST(timeouts, client_header_timeout_partial_head)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, FAST_TIMEOUTS, NULL);
    h_conn *c = h_connect(p->port);
    int64_t t0 = h_now_ms();
    h_sends(c, "GET /x HTTP/1.1\r\nHost: x\r\n");
    expect_closed_between(c, t0, 400, 2500, "partial head");
    cr_assert_eq(h_upstream_stats(u).connections, 0);
}

H_TEST(timeouts, client_header_timeout_is_not_reset_by_trickling)
{
    h_proxy *p = h_start_basic(NULL, FAST_TIMEOUTS, NULL);
    h_conn *c = h_connect(p->port);
    int64_t t0 = h_now_ms();
    const char *head = "GET /x HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    bool closed = false;
    for (size_t i = 0; head[i] && h_now_ms() - t0 < 4000; i++) {
        if (h_send(c, head + i, 1) != H_OK || h_readable(c, 100)) {
            closed = true;
            break;
        }
    }
    if (!closed)
        closed = h_wait_closed(c, 3000, NULL);
    int64_t took = h_now_ms() - t0;
    cr_assert(closed && took <= 2500,
              "a head trickled byte by byte kept the connection for %lld ms "
              "(client_header_timeout 500ms)",
              (long long)took);
}

H_TEST(timeouts, idle_new_connection_closed)
{
    h_proxy *p = h_start_basic(NULL, FAST_TIMEOUTS, NULL);
    h_conn *c = h_connect(p->port);
    int64_t t0 = h_now_ms();
    expect_closed_between(c, t0, 400, 2500, "connection that never sent a byte");
}

H_TEST(timeouts, client_body_timeout)
{
    h_proxy *p = h_proxy_start(&(h_proxy_opts){
        .config = h_basic_config(h_upstream_start("u1", NULL), FAST_TIMEOUTS, NULL), .expect_errors = true});
    h_conn *c = h_connect(p->port);
    h_sends(c, "POST /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    int64_t t0 = h_now_ms();
    char *got = NULL;
    bool closed = h_wait_closed(c, 4000, &got);
    int64_t took = h_now_ms() - t0;
    cr_assert(closed && took >= 400 && took <= 2500,
              "a stalled request body: closed=%d after %lld ms (client_body_timeout 500ms)", closed,
              (long long)took);
    cr_assert(got[0] == '\0' || strncmp(got, "HTTP/1.1 408", 12) == 0 ||
                  strncmp(got, "HTTP/1.1 400", 12) == 0,
              "stalled body answered with: %.80s", got);
}

H_TEST(timeouts, keepalive_timeout)
{
    h_proxy *p = h_start_basic(NULL, FAST_TIMEOUTS, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    /* requests 200 ms apart keep the connection */
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(h_request(c, "GET", "/x", NULL, NULL, 0, &r), H_OK,
                     "request %d on a connection idle for 200 ms (keepalive_timeout 500ms)", i);
        cr_assert_eq(r.status, 200);
        h_sleep_ms(200);
    }
    cr_assert_eq(h_request(c, "GET", "/x", NULL, NULL, 0, &r), H_OK);
    int64_t t0 = h_now_ms();
    char *got = NULL;
    bool closed = h_wait_closed(c, 3500, &got);
    int64_t took = h_now_ms() - t0;
    cr_assert(closed, "idle keep-alive connection still open after %lld ms", (long long)took);
    cr_assert(took >= 400 && took <= 2500, "idle keep-alive connection closed after %lld ms, want ~500",
              (long long)took);
    cr_assert_str_eq(got, "", "bytes sent on an idle keep-alive close: %.80s", got);
}

H_TEST(timeouts, slow_upstream_within_limits_is_fine)
{
    /* client timeouts do not cut a request that waits for the upstream */
    h_proxy *p = h_start_basic(NULL, FAST_TIMEOUTS, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/delay/1200", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 200, "a 1.2 s upstream answer with 500ms client timeouts: %d", r.status);
    cr_assert_str_eq(r.body, "ok");
    cr_assert_eq(h_request(c, "GET", "/drip/4/300", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
}
