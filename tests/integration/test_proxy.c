/* test_proxy.c - proxying bodies both ways: every method, chunked and
 * length-delimited bodies, streaming of large bodies, bodiless responses,
 * close-delimited responses, HTTP/1.0 clients, pipelining, Expect: 100-continue. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"

/* ---- every method, with a body both ways --------------------------------- */

typedef struct method_case {
    char method[16];
    bool with_body;
} method_case;

ParameterizedTestParameters(proxy, methods)
{
    static method_case cases[] = {
        {"GET", true},   {"GET", false},    {"HEAD", false},    {"POST", true},
        {"POST", false}, {"PUT", true},     {"DELETE", true},   {"DELETE", false},
        {"PATCH", true}, {"OPTIONS", true}, {"OPTIONS", false},
    };
    return cr_make_param_array(method_case, cases, sizeof cases / sizeof cases[0]);
}

H_PTEST(method_case *, mc, proxy, methods)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, NULL);
    h_conn *c = h_connect(p->port);
    const char *payload = h_fmt("payload of %s\n\x01\x7f binary", mc->method);
    h_resp r;
    int rc = h_request(c, mc->method, "/echo?m=1", NULL, mc->with_body ? payload : NULL,
                       mc->with_body ? strlen(payload) : 0, &r);
    cr_assert_eq(rc, H_OK, "%s /echo: no response (%d)", mc->method, rc);
    cr_assert_eq(r.status, 200, "%s /echo: status %d", mc->method, r.status);
    cr_assert_str_eq(h_hdr(&r, "X-Upstream"), "u1");
    if (strcmp(mc->method, "HEAD") == 0) {
        cr_assert_eq(r.body_len, 0);
        cr_assert_not_null(h_hdr(&r, "Content-Length"), "HEAD lost the upstream's Content-Length");
    } else {
        char *line = h_fmt("%s /echo?m=1 HTTP/1.1\r\n", mc->method);
        cr_assert(strncmp(r.body, line, strlen(line)) == 0, "upstream saw: %.200s", r.body);
        const char *end = strstr(r.body, "\r\n\r\n");
        cr_assert_not_null(end);
        const char *got_body = end + 4;
        size_t got_len = r.body_len - (size_t)(got_body - r.body);
        if (mc->with_body) {
            cr_assert_eq(got_len, strlen(payload), "%s body: sent %zu bytes, upstream got %zu", mc->method,
                         strlen(payload), got_len);
            cr_assert(memcmp(got_body, payload, got_len) == 0, "%s body changed", mc->method);
        } else {
            cr_assert_eq(got_len, 0);
        }
    }
    /* the connection stays usable */
    rc = h_request(c, "GET", "/after", NULL, NULL, 0, &r);
    cr_assert_eq(rc, H_OK, "no response to the next request after %s", mc->method);
    cr_assert_str_eq(r.body, "u1 GET /after\n");
}

/* ---- chunked bodies ------------------------------------------------------ */

H_TEST(proxy, chunked_request_body)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_sends(c, "POST /echo-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5;ext=1\r\nhello\r\n"
               "1\r\n \r\n"
               "A\r\n0123456789\r\n"
               "0\r\nX-Trailer: t\r\n\r\n");
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 16, "body: [%s]", r.body);
    cr_assert_str_eq(r.body, "hello 0123456789");
    /* and again on the same connection */
    h_sends(c, "POST /echo-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "3\r\nabc\r\n0\r\n\r\n");
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_str_eq(r.body, "abc");
}

H_TEST(proxy, chunked_request_body_large)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    const uint64_t n = 3 * 1024 * 1024 + 17;
    h_sends(c, "POST /sum HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    cr_assert_eq(h_send_pattern_chunked(c, n, 10007), H_OK);
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(h_json_long(r.body, "bytes"), (long)n, "upstream got: %s", r.body);
    char *want = h_fmt("\"%016" PRIx64 "\"", h_pattern_fnv(n));
    cr_assert(strstr(r.body, want), "checksum differs: want %s, upstream got %s", want, r.body);
}

H_TEST(proxy, chunked_response)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    static const uint64_t sizes[] = {0, 1, 4096, 100000, 1048576 + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        h_resp r;
        char *t = h_fmt("/chunked/%" PRIu64, sizes[i]);
        cr_assert_eq(h_request(c, "GET", t, NULL, NULL, 0, &r), H_OK, "GET %s", t);
        cr_assert_eq(r.status, 200);
        cr_assert_eq(r.body_len, sizes[i], "GET %s: got %zu bytes", t, r.body_len);
        cr_assert_eq(r.body_fnv, h_pattern_fnv(sizes[i]), "GET %s: body differs", t);
    }
}

H_TEST(proxy, head_of_chunked_response_has_no_body)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(c, "HEAD", "/chunked/5000", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 200);
    /* anything after the head would be read as the next response */
    cr_assert_eq(h_request(c, "GET", "/next", NULL, NULL, 0, &r), H_OK);
    cr_assert_str_eq(r.body, "u1 GET /next\n");
}

/* ---- large streamed bodies ----------------------------------------------- */

/* Streaming is checked on the proxy's peak RSS: a warm-up transfer first
 * touches whatever fixed buffer pools the backend has (io_uring's provided
 * buffers, for one), then a bigger body must not raise the peak by much more. */
#define WARMUP_BYTES (24ull * 1024 * 1024)

H_TEST(proxy, streamed_50mb_response)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    h_sendf(c, "GET /bytes/%llu HTTP/1.1\r\nHost: x\r\n\r\n", WARMUP_BYTES);
    cr_assert_eq(h_read_response(c, &r, H_RESP_DISCARD), H_OK);
    cr_assert_eq(r.body_len, WARMUP_BYTES);
    long hwm0 = h_proc_status(p->pid, "VmHWM");

    const uint64_t n = 50ull * 1024 * 1024;
    h_sends(c, "GET /bytes/52428800 HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(h_read_response(c, &r, H_RESP_DISCARD), H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, n, "got %zu of %" PRIu64 " bytes", r.body_len, n);
    cr_assert_eq(r.body_fnv, h_pattern_fnv(n), "the 50 MB body differs");
    long hwm = h_proc_status(p->pid, "VmHWM");
    cr_assert(hwm - hwm0 < 16 * 1024,
              "peak RSS grew by %ld kB for a 50 MB response after a 24 MB one: not streamed?", hwm - hwm0);
}

H_TEST(proxy, streamed_chunked_10mb_response)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    const uint64_t n = 10ull * 1024 * 1024 + 5;
    h_sendf(c, "GET /chunked/%" PRIu64 " HTTP/1.1\r\nHost: x\r\n\r\n", n);
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, H_RESP_DISCARD), H_OK);
    cr_assert_eq(r.body_len, n);
    cr_assert_eq(r.body_fnv, h_pattern_fnv(n));
}

H_TEST(proxy, streamed_20mb_upload)
{
    h_proxy *p = h_start_basic(NULL, "  max_body_bytes: 128m\n", NULL);
    h_conn *c = h_connect(p->port);
    const uint64_t n = 20ull * 1024 * 1024;
    h_sendf(c, "POST /sum HTTP/1.1\r\nHost: x\r\nContent-Length: %" PRIu64 "\r\n\r\n", n);
    cr_assert_eq(h_send_pattern(c, n), H_OK, "the proxy stopped reading the upload");
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 200, "status %d: %s", r.status, r.body);
    cr_assert_eq(h_json_long(r.body, "bytes"), (long)n, "upstream got: %s", r.body);
    char *want = h_fmt("\"%016" PRIx64 "\"", h_pattern_fnv(n));
    cr_assert(strstr(r.body, want), "checksum differs: want %s, upstream got %s", want, r.body);

    /* the 20 MB upload was the warm-up: 60 MB more must not raise the peak much */
    long hwm0 = h_proc_status(p->pid, "VmHWM");
    const uint64_t big = 60ull * 1024 * 1024;
    h_sendf(c, "POST /sum HTTP/1.1\r\nHost: x\r\nContent-Length: %" PRIu64 "\r\n\r\n", big);
    cr_assert_eq(h_send_pattern(c, big), H_OK);
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(h_json_long(r.body, "bytes"), (long)big, "upstream got: %s", r.body);
    long hwm = h_proc_status(p->pid, "VmHWM");
    cr_assert(hwm - hwm0 < 16 * 1024,
              "peak RSS grew by %ld kB for a 60 MB upload after a 20 MB one: not streamed?", hwm - hwm0);
}

H_TEST(proxy, upload_echoed_back)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    const uint64_t n = 2 * 1024 * 1024 + 1;
    h_sendf(c, "PUT /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: %" PRIu64 "\r\n\r\n", n);
    cr_assert_eq(h_send_pattern(c, n), H_OK);
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, H_RESP_DISCARD), H_OK);
    cr_assert_eq(r.body_len, n);
    cr_assert_eq(r.body_fnv, h_pattern_fnv(n));
}

H_TEST(proxy, response_streams_before_upstream_finishes)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    int64_t t0 = h_now_ms();
    /* 5 chunks, 300 ms apart: the first must arrive long before the last is sent */
    h_sends(c, "GET /drip/5/300 HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(h_readable(c, 5000), "no response at all");
    int64_t first = h_now_ms() - t0;
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    int64_t all = h_now_ms() - t0;
    cr_assert_str_eq(r.body, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    cr_assert(first < 800 && all >= 1100,
              "first byte after %lld ms, whole body after %lld ms: "
              "the response was buffered, not streamed",
              (long long)first, (long long)all);
}

/* ---- responses without a body -------------------------------------------- */

H_TEST(proxy, bodiless_responses)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    static const struct {
        const char *method, *target;
        int status;
    } cases[] = {
        {"HEAD", "/bytes/1000", 200}, {"GET", "/status/204", 204},  {"GET", "/status/304", 304},
        {"HEAD", "/status/204", 204}, {"POST", "/status/204", 204}, {"HEAD", "/close/100", 200},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_resp r;
        int rc = h_request(c, cases[i].method, cases[i].target, NULL, NULL, 0, &r);
        if (rc == H_ECLOSED || rc == H_EIO) { /* the proxy may close after HEAD /close */
            c = h_connect(p->port);
            rc = h_request(c, cases[i].method, cases[i].target, NULL, NULL, 0, &r);
        }
        cr_assert_eq(rc, H_OK, "%s %s: no response (%d)", cases[i].method, cases[i].target, rc);
        cr_assert_eq(r.status, cases[i].status, "%s %s", cases[i].method, cases[i].target);
        cr_assert_null(h_hdr(&r, "Transfer-Encoding"), "%s %s has Transfer-Encoding", cases[i].method,
                       cases[i].target);
        if (strcmp(cases[i].target, "/bytes/1000") == 0)
            cr_assert_str_eq(h_hdr(&r, "Content-Length") ? h_hdr(&r, "Content-Length") : "", "1000",
                             "HEAD should keep the GET Content-Length");
        /* a stray body would be parsed as the next response */
        rc = h_request(c, "GET", "/bytes/7", NULL, NULL, 0, &r);
        cr_assert_eq(rc, H_OK, "request after %s %s: %d", cases[i].method, cases[i].target, rc);
        cr_assert_eq(r.status, 200, "after %s %s: status %d", cases[i].method, cases[i].target, r.status);
        cr_assert_eq(r.body_fnv, h_pattern_fnv(7), "after %s %s: wrong body", cases[i].method,
                     cases[i].target);
    }
}

H_TEST(proxy, close_delimited_response)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    static const uint64_t sizes[] = {0, 1, 100000, 3 * 1024 * 1024};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        h_conn *c = h_connect(p->port);
        h_resp r;
        char *t = h_fmt("/close/%" PRIu64, sizes[i]);
        cr_assert_eq(h_request(c, "GET", t, NULL, NULL, 0, &r), H_OK, "GET %s", t);
        cr_assert_eq(r.status, 200);
        cr_assert_eq(r.body_len, sizes[i], "GET %s: got %zu bytes", t, r.body_len);
        cr_assert_eq(r.body_fnv, h_pattern_fnv(sizes[i]), "GET %s: body differs", t);
        if (r.framing != H_FRAME_CLOSE) { /* re-framed: the connection may go on */
            cr_assert_eq(h_request(c, "GET", "/x", NULL, NULL, 0, &r), H_OK);
            cr_assert_str_eq(r.body, "u1 GET /x\n");
        }
        h_close(c);
    }
}

/* ---- HTTP/1.0, pipelining, 100-continue ---------------------------------- */

H_TEST(proxy, http10_client)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_sends(c, "GET /bytes/1000 HTTP/1.0\r\n\r\n");
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 1000);
    cr_assert_eq(r.body_fnv, h_pattern_fnv(1000));
    cr_assert(h_wait_closed(c, 2000, NULL), "connection left open after an HTTP/1.0 exchange");

    /* a chunked upstream response must reach a 1.0 client unchunked */
    c = h_connect(p->port);
    h_sends(c, "GET /chunked/20000 HTTP/1.0\r\nHost: x\r\n\r\n");
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_neq(r.framing, H_FRAME_CHUNKED, "chunked response sent to an HTTP/1.0 client");
    cr_assert_eq(r.body_len, 20000);
    cr_assert_eq(r.body_fnv, h_pattern_fnv(20000));
    /* ... decoded across many receive buffers */
    c = h_connect(p->port);
    h_sends(c, "GET /chunked/3145731 HTTP/1.0\r\nHost: x\r\n\r\n");
    cr_assert_eq(h_read_response(c, &r, H_RESP_DISCARD), H_OK);
    cr_assert_eq(r.body_len, 3145731);
    cr_assert_eq(r.body_fnv, h_pattern_fnv(3145731));

    /* a 1.0 request with a body */
    c = h_connect(p->port);
    h_sends(c, "POST /echo-body HTTP/1.0\r\nContent-Length: 4\r\n\r\nten!");
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_str_eq(r.body, "ten!");
}

H_TEST(proxy, client_connection_close)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    static const char *const targets[] = {"/bytes/10", "/chunked/100", "/status/204", "/echo"};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        h_conn *c = h_connect(p->port);
        h_resp r;
        cr_assert_eq(h_request(c, "GET", targets[i], "Connection: close\r\n", NULL, 0, &r), H_OK);
        cr_assert_eq(r.status / 100, 2, "GET %s: %d", targets[i], r.status);
        cr_assert(h_wait_closed(c, 2000, NULL), "GET %s with Connection: close: the connection stayed open",
                  targets[i]);
        h_close(c);
    }
}

H_TEST(proxy, http10_forwarded_as_http11)
{
    /* RFC 9110 2.5: an intermediary sends its own HTTP-version upstream */
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_sends(c, "GET /echo HTTP/1.0\r\n\r\n");
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert(strncmp(r.body, "GET /echo HTTP/1.1\r\n", 20) == 0,
              "an HTTP/1.0 request was forwarded as: %.40s", r.body);
}

H_TEST(proxy, http10_keepalive)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_sends(c, "GET /bytes/10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.body_len, 10);
    if (r.framing == H_FRAME_CLOSE || !h_hdr(&r, "Connection"))
        return; /* the proxy chose to close: allowed */
    h_sends(c, "GET /bytes/11 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    cr_assert_eq(h_read_response(c, &r, 0), H_OK, "keep-alive 1.0 connection not served again");
    cr_assert_eq(r.body_len, 11);
}

H_TEST(proxy, pipelined_requests_in_order)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_sends(c, "GET /delay/200 HTTP/1.1\r\nHost: x\r\n\r\n"
               "POST /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
               "GET /bytes/5 HTTP/1.1\r\nHost: x\r\n\r\n"
               "HEAD /bytes/9 HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /last HTTP/1.1\r\nHost: x\r\n\r\n");
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, 0), H_OK, "response 1");
    cr_assert_str_eq(r.body, "ok", "response 1 out of order: %s", r.body);
    cr_assert_eq(h_read_response(c, &r, 0), H_OK, "response 2");
    cr_assert_str_eq(r.body, "abc", "response 2 out of order");
    cr_assert_eq(h_read_response(c, &r, 0), H_OK, "response 3");
    cr_assert_eq(r.body_len, 5, "response 3 out of order");
    cr_assert_eq(h_read_response(c, &r, H_RESP_HEAD), H_OK, "response 4");
    cr_assert_str_eq(h_hdr(&r, "Content-Length"), "9", "response 4 out of order");
    cr_assert_eq(h_read_response(c, &r, 0), H_OK, "response 5");
    cr_assert_str_eq(r.body, "u1 GET /last\n", "response 5 out of order");
}

H_TEST(proxy, many_pipelined_requests)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    char *all = "";
    for (int i = 0; i < 60; i++)
        all = h_fmt("%sGET /n%d HTTP/1.1\r\nHost: x\r\n\r\n", all, i);
    cr_assert_eq(h_sends(c, all), H_OK);
    for (int i = 0; i < 60; i++) {
        h_resp r;
        cr_assert_eq(h_read_response(c, &r, 0), H_OK, "pipelined response %d missing", i);
        cr_assert_str_eq(r.body, h_fmt("u1 GET /n%d\n", i), "pipelined response %d", i);
    }
}

H_TEST(proxy, client_half_close)
{
    /* a client may shut down its sending side after the request */
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_sends(c, "GET /delay/100 HTTP/1.1\r\nHost: x\r\n\r\n");
    shutdown(c->fd, SHUT_WR);
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, 0), H_OK, "no response after the client half-closed");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "ok");
    cr_assert(h_wait_closed(c, 2000, NULL), "connection not closed after a half-closed exchange");
}

H_TEST(proxy, upstream_interim_response)
{
    /* a 103 from the upstream is passed on or dropped; the final answer is intact */
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/early-hints", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 200, "after a 103: %d", r.status);
    cr_assert_str_eq(r.body, "ok");
    cr_assert_eq(h_request(c, "GET", "/next", NULL, NULL, 0, &r), H_OK);
    cr_assert_str_eq(r.body, "u1 GET /next\n");
}

H_TEST(proxy, expect_100_continue)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    c->timeout_ms = 3000;
    h_sends(c, "POST /continue HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, H_RESP_INTERIM), H_OK,
                 "no 100 Continue within 3 s while the client waits for it");
    cr_assert_eq(r.status, 100, "expected 100 Continue, got %d", r.status);
    h_sends(c, "hello");
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "hello");
    cr_assert_eq(r.interim, 0, "a second 100 Continue was sent");

    /* a client that sends the body without waiting */
    h_sends(c, "POST /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nxyz");
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "xyz");
}

H_TEST(proxy, big_request_header_passes)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *c = h_connect(p->port);
    char *big = h_repeat(8000, 'v');
    h_resp r;
    cr_assert_eq(
        h_request(c, "GET", "/echo", h_fmt("X-Big: %s\r\nX-Multi: 1\r\nX-Multi: 2\r\n", big), NULL, 0, &r),
        H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, h_fmt("\r\nX-Big: %s\r\n", big)), "an 8000-byte header did not pass intact");
    cr_assert(strstr(r.body, "\r\nX-Multi: 1\r\nX-Multi: 2\r\n") || strstr(r.body, "\r\nX-Multi: 1, 2\r\n"),
              "repeated headers lost or reordered:\n%s", r.body);
}
