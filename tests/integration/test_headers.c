/* test_headers.c - proxy header semantics: hop-by-hop headers dropped both
 * ways, X-Forwarded-* and Via added, everything else kept as sent, status and
 * reason passed through. */
#include <signal.h>
#include <string.h>
#include <strings.h>

#include "harness.h"

H_TEST(headers, hop_by_hop_request_headers_dropped)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    int rc = h_request(c, "GET", "/echo",
                       "Connection: keep-alive, X-Drop-Me\r\n"
                       "X-Drop-Me: secret\r\n"
                       "Keep-Alive: timeout=5\r\n"
                       "TE: trailers\r\n"
                       "Trailer: X-Foo\r\n"
                       "Upgrade: h2c\r\n"
                       "Proxy-Connection: keep-alive\r\n"
                       "X-Keep-Me: Some  Value\r\n"
                       "x-lower-case: kept\r\n"
                       "Accept: */*\r\n",
                       NULL, 0, &r);
    cr_assert_eq(rc, H_OK);
    cr_assert_eq(r.status, 200, "status %d", r.status);
    static const char *const dropped[] = {"X-Drop-Me", "Keep-Alive", "TE",
                                          "Trailer",   "Upgrade",    "Proxy-Connection"};
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
        cr_expect_null(h_echoed(r.body, dropped[i]), "hop-by-hop %s reached the upstream:\n%s", dropped[i],
                       r.body);
    char *conn = h_echoed(r.body, "Connection");
    cr_expect(!h_list_has(conn, "X-Drop-Me"), "Connection forwarded as sent: %s", conn);
    cr_expect_str_eq(h_echoed(r.body, "X-Keep-Me") ? h_echoed(r.body, "X-Keep-Me") : "(missing)",
                     "Some  Value", "X-Keep-Me not kept as sent");
    cr_expect(strstr(r.body, "\r\nx-lower-case: kept\r\n") != NULL,
              "x-lower-case not kept as sent (name case or value):\n%s", r.body);
    cr_expect_str_eq(h_echoed(r.body, "Accept") ? h_echoed(r.body, "Accept") : "(missing)", "*/*");
}

H_TEST(headers, hop_by_hop_response_headers_dropped)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    int rc = h_request(c, "GET",
                       "/set-headers?Connection=X-Resp-Hop&X-Resp-Hop=1&Keep-Alive=timeout%3D5"
                       "&Upgrade=foo&Proxy-Connection=keep-alive&Trailer=X-T"
                       "&X-Resp-Keep=yes%20%20sir&Set-Cookie=a%3D1&Set-Cookie=b%3D2",
                       NULL, NULL, 0, &r);
    cr_assert_eq(rc, H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "ok\n");
    static const char *const dropped[] = {"X-Resp-Hop", "Keep-Alive", "Upgrade", "Proxy-Connection",
                                          "Trailer"};
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
        cr_expect_null(h_hdr(&r, dropped[i]), "hop-by-hop %s reached the client:\n%s", dropped[i], r.head);
    cr_expect(!h_list_has(h_hdr(&r, "Connection"), "X-Resp-Hop"), "Connection passed through:\n%s", r.head);
    cr_expect_str_eq(h_hdr(&r, "X-Resp-Keep") ? h_hdr(&r, "X-Resp-Keep") : "(missing)", "yes  sir");
    cr_expect_eq(h_hdr_count(&r, "Set-Cookie"), 2, "both Set-Cookie headers must pass:\n%s", r.head);
    cr_expect_str_eq(h_hdr(&r, "X-Upstream"), "u1");
    /* the connection is still fine */
    cr_assert_eq(h_request(c, "GET", "/x", NULL, NULL, 0, &r), H_OK);
    cr_assert_str_eq(r.body, "u1 GET /x\n");
}

H_TEST(headers, forwarded_headers_added)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/echo", "Host: api.example.test:8443\r\n", NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 200);
    cr_expect_str_eq(h_echoed(r.body, "X-Forwarded-For") ? h_echoed(r.body, "X-Forwarded-For") : "(missing)",
                     "127.0.0.1", "\n%s", r.body);
    cr_expect_str_eq(
        h_echoed(r.body, "X-Forwarded-Proto") ? h_echoed(r.body, "X-Forwarded-Proto") : "(missing)", "http");
    cr_expect_str_eq(h_echoed(r.body, "X-Forwarded-Host") ? h_echoed(r.body, "X-Forwarded-Host")
                                                          : "(missing)",
                     "api.example.test:8443");
    char *via = h_echoed(r.body, "Via");
    cr_expect(via && strstr(via, "1.1"), "Via missing or without the protocol version: %s",
              via ? via : "(missing)");
    cr_expect_eq(h_echoed_count(r.body, "Host"), 1, "exactly one Host upstream:\n%s", r.body);
    /* preserve_host defaults to false: the instance's host:port */
    char *host = h_echoed(r.body, "Host");
    cr_expect_str_eq(host ? host : "(missing)", h_fmt("127.0.0.1:%d", u->port));
}

H_TEST(headers, forwarded_for_appends)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/echo", "X-Forwarded-For: 10.1.2.3\r\nVia: 1.0 edge\r\n", NULL, 0, &r),
                 H_OK);
    char *xff = h_echoed(r.body, "X-Forwarded-For");
    cr_expect_str_eq(xff ? xff : "(missing)", "10.1.2.3, 127.0.0.1");
    cr_expect_eq(h_echoed_count(r.body, "X-Forwarded-For"), 1, "\n%s", r.body);
    /* an earlier Via is kept (appended to, or as a separate line) */
    cr_expect(strstr(r.body, "1.0 edge") != NULL, "earlier Via lost:\n%s", r.body);
}

H_TEST(headers, preserve_host)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_fmt("services:\n"
                                   "  - name: svc\n"
                                   "    instances: [{address: \"127.0.0.1:%d\"}]\n"
                                   "routes:\n"
                                   "  - name: all\n"
                                   "    paths: [{prefix: /}]\n"
                                   "    preserve_host: true\n"
                                   "    service: svc\n",
                                   u->port));
    h_conn *c = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/echo", "Host: Keep.Example.test\r\n", NULL, 0, &r), H_OK);
    char *host = h_echoed(r.body, "Host");
    cr_expect_str_eq(host ? host : "(missing)", "Keep.Example.test");
}

H_TEST(headers, status_and_reason_pass_through)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    static const struct {
        const char *target;
        int status;
        const char *reason;
    } cases[] = {
        {"/status/200", 200, "OK"},
        {"/status/201", 201, "Created"},
        {"/status/404", 404, "Not Found"},
        {"/status/418", 418, "I'm a teapot"},
        {"/status/500", 500, "Internal Server Error"},
        {"/status/502", 502, "Bad Gateway"},
        {"/status/503", 503, "Service Unavailable"},
        {"/status/299?reason=Custom%20Thing", 299, "Custom Thing"},
        {"/status/200?reason=Fine%20Indeed", 200, "Fine Indeed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_resp r;
        int rc = h_request(c, "GET", cases[i].target, NULL, NULL, 0, &r);
        if (rc != H_OK) { /* tolerate a close after an error status; check the rest */
            c = h_connect(p->port);
            rc = h_request(c, "GET", cases[i].target, NULL, NULL, 0, &r);
        }
        cr_assert_eq(rc, H_OK, "GET %s: %d", cases[i].target, rc);
        cr_expect_eq(r.status, cases[i].status, "GET %s", cases[i].target);
        cr_expect_str_eq(r.reason, cases[i].reason, "GET %s: reason", cases[i].target);
        cr_expect_str_eq(h_hdr(&r, "X-Upstream") ? h_hdr(&r, "X-Upstream") : "(missing)", "u1",
                         "GET %s was not answered by the upstream", cases[i].target);
    }
}

/* ---- request ids and W3C trace context ---- */

static const char *UUID = "550e8400-e29b-41d4-a716-446655440000";

H_TEST(headers, request_id_kept_end_to_end_and_returned_everywhere)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(
        h_fmt("services:\n  - name: svc\n    instances: [{address: \"127.0.0.1:%d\"}]\n"
              "routes:\n  - name: fixed\n    paths: [{exact: /fixed}]\n"
              "    respond: {status: 200, body: \"fixed\"}\n"
              "  - name: all\n    paths: [{prefix: /api/}]\n    strip_path: /api\n    service: svc\n",
              u->port));
    h_conn *c = h_connect(p->port);
    h_resp r;
    const char *hdr = h_fmt("X-Request-Id: %s\r\n", UUID);
    /* proxied: the upstream sees it and the client gets it back */
    cr_assert_eq(h_request(c, "GET", "/api/echo", hdr, NULL, 0, &r), H_OK);
    cr_assert_str_eq(h_echoed(r.body, "X-Request-Id"), UUID);
    cr_assert_eq(h_echoed_count(r.body, "X-Request-Id"), 1);
    cr_assert_str_eq(h_hdr(&r, "X-Request-Id"), UUID);
    cr_assert_eq(h_hdr_count(&r, "X-Request-Id"), 1);
    /* ringway's own answers: canned, built-in, errors */
    static const char *const own[] = {"/fixed", "/health", "/ready", "/nope"};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        cr_assert_eq(h_request(c, "GET", own[i], hdr, NULL, 0, &r), H_OK, "%s", own[i]);
        cr_assert_str_eq(h_hdr(&r, "X-Request-Id") ? h_hdr(&r, "X-Request-Id") : "(none)", UUID, "%s: %s",
                         own[i], r.head);
    }
    cr_assert_eq(h_request(c, "HEAD", "/fixed", hdr, NULL, 0, &r), H_OK);
    cr_assert_str_eq(h_hdr(&r, "X-Request-Id"), UUID);
    cr_assert_eq(r.body_len, 0);
    cr_assert_eq(h_request(c, "GET", "/fixed", NULL, NULL, 0, &r), H_OK);
    cr_assert_str_eq(r.body, "fixed", "the canned body after the id line");
    /* 128 characters are kept; 129, or a bad character, replaced */
    char *id128 = h_repeat(128, 'a');
    cr_assert_eq(h_request(c, "GET", "/api/x", h_fmt("X-Request-Id: %s\r\n", id128), NULL, 0, &r), H_OK);
    cr_assert_str_eq(h_hdr(&r, "X-Request-Id"), id128);
    static const char *const bad[] = {"X-Request-Id: has space\r\n", "X-Request-Id: a/b\r\n"};
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(h_request(c, "GET", "/api/echo", bad[i], NULL, 0, &r), H_OK);
        const char *got = h_hdr(&r, "X-Request-Id");
        cr_assert(got != NULL && strlen(got) == 16, "%s replaced by %s", bad[i], got ? got : "(none)");
        cr_assert_str_eq(h_echoed(r.body, "X-Request-Id"), got, "the upstream saw another id");
    }
    cr_assert_eq(
        h_request(c, "GET", "/api/x", h_fmt("X-Request-Id: %s\r\n", h_repeat(129, 'b')), NULL, 0, &r), H_OK);
    cr_assert_eq(strlen(h_hdr(&r, "X-Request-Id")), 16);
}

H_TEST(headers, request_id_header_configurable_and_off)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, NULL);
    h_proxy_write_config(p,
                         h_fmt("request_id: {header: X-Correlation-Id}\n%s", h_basic_config(u, NULL, NULL)));
    h_proxy_signal(p, SIGHUP);
    cr_assert(h_proxy_wait_log(p, "reloaded ", 1, 5000));
    h_conn *c = h_connect(p->port);
    h_resp r;
    cr_assert_eq(
        h_request(c, "GET", "/echo", "X-Correlation-Id: corr-1\r\nX-Request-Id: other\r\n", NULL, 0, &r),
        H_OK);
    cr_assert_str_eq(h_hdr(&r, "X-Correlation-Id"), "corr-1");
    cr_assert_str_eq(h_echoed(r.body, "X-Correlation-Id"), "corr-1");
    cr_assert_str_eq(h_echoed(r.body, "X-Request-Id"), "other", "another header passes unchanged");
    h_proxy_write_config(p, h_fmt("request_id: {enabled: false}\n%s", h_basic_config(u, NULL, NULL)));
    h_proxy_signal(p, SIGHUP);
    cr_assert(h_proxy_wait_log(p, "reloaded ", 2, 5000));
    cr_assert_eq(h_request(c, "GET", "/echo", NULL, NULL, 0, &r), H_OK);
    cr_assert_null(h_hdr(&r, "X-Request-Id"));
    cr_assert_null(h_echoed(r.body, "X-Request-Id"));
    cr_assert_eq(h_request(c, "GET", "/health", NULL, NULL, 0, &r), H_OK);
    cr_assert_null(h_hdr(&r, "X-Request-Id"));
}

H_TEST(headers, traceparent_continued_or_started)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    cr_assert_eq(
        h_request(c, "GET", "/echo", h_fmt("traceparent: %s\r\ntracestate: vendor=1\r\n", tp), NULL, 0, &r),
        H_OK);
    char *sent = h_echoed(r.body, "traceparent");
    cr_assert_not_null(sent, "%s", r.body);
    cr_assert_eq(strlen(sent), 55);
    cr_assert(strncmp(sent, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36) == 0, "the trace id changed: %s",
              sent);
    cr_assert(strcmp(sent + 36, "00f067aa0ba902b7-01") != 0, "the parent id was not replaced: %s", sent);
    cr_assert(strcmp(sent + 52, "-01") == 0, "the flags changed: %s", sent);
    cr_assert_str_eq(h_echoed(r.body, "tracestate"), "vendor=1");
    cr_assert_eq(h_echoed_count(r.body, "traceparent"), 1);
    /* none, or an invalid one: a new trace, and the old tracestate goes */
    static const char *const starts[] = {
        "", "traceparent: 00-XYZ-00f067aa0ba902b7-01\r\ntracestate: vendor=1\r\n"};
    char *first = NULL;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(h_request(c, "GET", "/echo", *starts[i] ? starts[i] : NULL, NULL, 0, &r), H_OK);
        sent = h_echoed(r.body, "traceparent");
        cr_assert(sent != NULL && strlen(sent) == 55 && strncmp(sent, "00-", 3) == 0 &&
                      strcmp(sent + 52, "-01") == 0,
                  "no valid new traceparent: %s", sent ? sent : "(none)");
        cr_assert_null(h_echoed(r.body, "tracestate"), "%s", r.body);
        if (first != NULL)
            cr_assert(strncmp(first, sent, 35) != 0, "two requests started the same trace");
        first = sent;
    }
    /* trace_context: false passes the client's header untouched */
    h_upstream *u;
    h_proxy *q = h_start_basic(&u, NULL, NULL);
    h_proxy_write_config(q, h_fmt("trace_context: false\n%s", h_basic_config(u, NULL, NULL)));
    h_proxy_signal(q, SIGHUP);
    cr_assert(h_proxy_wait_log(q, "reloaded ", 1, 5000));
    h_conn *c2 = h_connect(q->port);
    cr_assert_eq(h_request(c2, "GET", "/echo", "traceparent: whatever\r\n", NULL, 0, &r), H_OK);
    cr_assert_str_eq(h_echoed(r.body, "traceparent"), "whatever");
}
