/* test_failures.c - upstream failures: refused, dropped, half a response,
 * invalid responses, truncated bodies, first-byte and connect timeouts. The
 * proxy may log these at error level, so these tests allow error lines. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static h_proxy *start_with(int port, const char *service_extra)
{
    return h_proxy_start(&(h_proxy_opts){.config = h_fmt("services:\n"
                                                         "  - name: svc\n"
                                                         "%s"
                                                         "    instances: [{address: \"127.0.0.1:%d\"}]\n"
                                                         "routes:\n"
                                                         "  - name: fixed\n"
                                                         "    paths: [{exact: /fixed}]\n"
                                                         "    respond: {status: 200, body: \"fixed\"}\n"
                                                         "  - name: all\n"
                                                         "    paths: [{prefix: /}]\n"
                                                         "    service: svc\n",
                                                         service_extra ? service_extra : "", port),
                                         .expect_errors = true});
}

/* Checks a gateway error: status, a JSON body with "error" and "request_id". */
static void check_gateway_error(const h_resp *r, int status, const char *what)
{
    cr_assert_eq(r->status, status, "%s: want %d, got %d %s", what, status, r->status, r->body);
    cr_assert(r->body && strstr(r->body, "\"error\""), "%s: body lacks \"error\": %s", what, r->body);
    cr_assert(strstr(r->body, "\"request_id\""), "%s: body lacks \"request_id\": %s", what, r->body);
    const char *ct = h_hdr(r, "Content-Type");
    cr_assert(ct && strstr(ct, "json"), "%s: Content-Type %s", what, ct ? ct : "(none)");
    cr_assert_null(h_hdr(r, "X-Upstream"), "%s: answered by the upstream?", what);
}

/* After an error response the client connection still works, unless the
 * proxy said Connection: close (then it must actually close). */
static void check_conn_survives(h_conn *c, const h_resp *r, int port, const char *what)
{
    const char *conn = h_hdr(r, "Connection");
    if (conn && strcasecmp(conn, "close") == 0) {
        cr_assert(h_wait_closed(c, 2000, NULL), "%s: said Connection: close but stayed open", what);
        return;
    }
    h_resp r2;
    int rc = h_request(c, "GET", "/fixed", NULL, NULL, 0, &r2);
    cr_assert_eq(rc, H_OK, "%s: the client connection died after the error response (%d)", what, rc);
    cr_assert_str_eq(r2.body, "fixed");
    (void)port;
}

H_TEST(failures, upstream_refused_502)
{
    int dead = h_free_port(); /* nothing listens there */
    h_proxy *p = start_with(dead, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/x", NULL, NULL, 0, &r), H_OK);
    check_gateway_error(&r, 502, "connection refused");
    check_conn_survives(c, &r, p->port, "connection refused");
    /* request ids differ between requests */
    h_resp r2;
    h_get(p->port, "/y", &r2);
    cr_assert_eq(r2.status, 502);
    cr_assert_str_neq(r.body, r2.body, "two 502s carry the same request_id");
}

H_TEST(failures, upstream_refused_with_body)
{
    h_proxy *p = start_with(h_free_port(), NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    const char *body = "some request body that nobody reads";
    cr_assert_eq(h_request(c, "POST", "/x", NULL, body, strlen(body), &r), H_OK);
    check_gateway_error(&r, 502, "refused POST");
    check_conn_survives(c, &r, p->port, "refused POST");
}

H_TEST(failures, upstream_drops_502)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = start_with(u->port, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/drop", NULL, NULL, 0, &r), H_OK);
    check_gateway_error(&r, 502, "/drop");
    check_conn_survives(c, &r, p->port, "/drop");
}

H_TEST(failures, upstream_half_head_502)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = start_with(u->port, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/half", NULL, NULL, 0, &r), H_OK);
    check_gateway_error(&r, 502, "/half");
    check_conn_survives(c, &r, p->port, "/half");
}

H_TEST(failures, invalid_upstream_response_502)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = start_with(u->port, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    /* /set-headers adds Content-Length: 3, so this answer carries two different lengths */
    cr_assert_eq(h_request(c, "GET", "/set-headers?Content-Length=5", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 502, "a response with two Content-Lengths was passed on: %d\n%s", r.status,
                 r.head);
    /* and the proxy does not reuse that upstream connection */
    h_resp r2;
    h_get(p->port, "/ok", &r2);
    cr_assert_eq(r2.status, 200);
    cr_assert_str_eq(r2.body, "u1 GET /ok\n");
}

H_TEST(failures, truncated_upstream_body_closes_client)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = start_with(u->port, NULL);
    h_conn *c = h_connect(p->port);
    c->timeout_ms = 5000;
    h_sends(c, "GET /truncate/200000 HTTP/1.1\r\nHost: x\r\n\r\n");
    h_resp r;
    int rc = h_read_response(c, &r, H_RESP_DISCARD);
    /* either a 502 (nothing sent yet) or a response cut short by a close */
    if (rc == H_OK) {
        cr_assert_eq(r.status, 502, "a truncated upstream body was delivered as complete (%zu bytes)",
                     r.body_len);
    } else {
        cr_assert(rc == H_ECLOSED || rc == H_EIO || rc == H_EPARSE,
                  "truncated upstream body: the client neither got EOF nor an error (%d)", rc);
    }
    h_resp r2;
    h_get(p->port, "/ok", &r2);
    cr_assert_eq(r2.status, 200);
}

H_TEST(failures, first_byte_timeout_504)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = start_with(u->port, "    timeouts: {connect: 1s, first_byte: 300ms}\n");
    h_conn *c = h_connect(p->port);
    int64_t t0 = h_now_ms();
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/delay/3000", NULL, NULL, 0, &r), H_OK);
    int64_t took = h_now_ms() - t0;
    check_gateway_error(&r, 504, "first_byte timeout");
    cr_assert(took >= 250 && took < 2000, "first_byte 300ms answered after %lld ms", (long long)took);
    check_conn_survives(c, &r, p->port, "first_byte timeout");
    /* quick requests are unaffected */
    h_resp r2;
    h_get(p->port, "/delay/50", &r2);
    cr_assert_eq(r2.status, 200);
}

H_TEST(failures, connect_timeout)
{
    /* A listener that never accepts, its backlog filled: further SYNs are
     * dropped, so a connect hangs until the proxy's connect timeout. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0);
    cr_assert(listen(lfd, 0) == 0);
    socklen_t al = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &al);
    int port = ntohs(a.sin_port);
    int filled = 0;
    for (int i = 0; i < 8; i++) {
        h_conn *f = h_try_connect("127.0.0.1", port);
        if (!f)
            break;
        filled++;
    }
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int prc = connect(probe, (struct sockaddr *)&a, sizeof a);
    bool hangs = prc == -1 && errno == EINPROGRESS;
    if (hangs) {
        h_sleep_ms(200);
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(probe, SOL_SOCKET, SO_ERROR, &err, &el);
        char tmp;
        hangs = err == 0 && recv(probe, &tmp, 1, MSG_DONTWAIT) == -1 && errno == ENOTCONN;
    }
    close(probe);
    if (!hangs || filled == 0)
        cr_skip_test("cannot make a loopback connect hang here (filled %d)", filled);

    h_proxy *p = start_with(port, "    timeouts: {connect: 300ms, first_byte: 5s}\n");
    h_conn *c = h_connect(p->port);
    int64_t t0 = h_now_ms();
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/x", NULL, NULL, 0, &r), H_OK);
    int64_t took = h_now_ms() - t0;
    cr_assert(r.status == 504 || r.status == 502, "connect timeout: status %d", r.status);
    cr_assert(took >= 250 && took < 2500, "connect 300ms answered after %lld ms", (long long)took);
    check_gateway_error(&r, r.status, "connect timeout");
    close(lfd);
}

H_TEST(failures, upstream_restarts)
{
    /* pooled connections to an upstream that died are not reused blindly */
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = start_with(u->port, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/a", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 200);
    h_upstream_kill(u);
    cr_assert_eq(h_request(c, "GET", "/b", NULL, NULL, 0, &r), H_OK, "no response after the upstream died");
    cr_assert_eq(r.status, 502, "after the upstream died: %d", r.status);
}
