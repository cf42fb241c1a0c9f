/* test_heads.c - the heads the proxy writes (src/proxy/heads.c), as pure
 * functions: what reaches the upstream and what reaches the client, and the
 * decisions taken with them (persistence, de-chunking). */
#include <criterion/criterion.h>
#include <string.h>

#include "ringway/proxy.h"

static rw_http_request rq;
static rw_http_response rs;

static void parse_req(const char *raw)
{
    cr_assert_gt(rw_http_parse_request(raw, strlen(raw), NULL, &rq), 0, "%s", raw);
}

static void parse_resp(const char *raw, int method)
{
    cr_assert_gt(rw_http_parse_response(raw, strlen(raw), NULL, method, &rs), 0, "%s", raw);
}

static const char *req_head(const char *raw, int body, bool upgrade, uint32_t *hoff, uint32_t *hlen)
{
    static char out[4096];
    static rw_route_cfg rt;
    memset(&rt, 0, sizeof(rt));
    parse_req(raw);
    rw_reqhead in = {
        .rq = &rq,
        .rt = &rt,
        .path = rq.path.p,
        .path_len = rq.path.len,
        .upstream_host = RW_STR("10.0.0.1:80"),
        .peer = RW_STR("127.0.0.1"),
        .reqid_header = RW_STR("X-Request-Id"),
        .reqid = RW_STR("abc"),
        .body = body,
        .upgrade = upgrade,
    };
    ssize_t n = rw_proxy_request_head(&in, out, sizeof(out), hoff, hlen);
    cr_assert_gt(n, 0);
    out[n] = '\0';
    return out;
}

Test(heads, request_drops_hop_by_hop_and_identity)
{
    uint32_t off, len;
    const char *h =
        req_head("GET /a?x=1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n"
                 "Keep-Alive: 5\r\nX-Consumer-ID: evil\r\nX-Forwarded-For: 1.1.1.1\r\nForwarded: for=x\r\n"
                 "X-Request-Id: theirs\r\nTE: trailers\r\nAccept: */*\r\n\r\n",
                 RW_BODY_NONE, false, &off, &len);
    cr_assert_str_eq(
        h, "GET /a?x=1 HTTP/1.1\r\nHost: 10.0.0.1:80\r\nAccept: */*\r\n"
           "X-Forwarded-For: 1.1.1.1, 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n"
           "Via: 1.1 ringway\r\nX-Request-Id: abc\r\n\r\n");
    cr_assert_eq(len, 11);
    cr_assert(memcmp(h + off, "10.0.0.1:80", 11) == 0);
}

Test(heads, request_framing_is_rewritten)
{
    uint32_t off, len;
    const char *h = req_head("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 005\r\n\r\n", RW_BODY_LENGTH,
                             false, &off, &len);
    cr_assert(strstr(h, "\r\nContent-Length: 5\r\n") != NULL, "%s", h);
    cr_assert_null(strstr(h, "005"), "%s", h);
    h = req_head("POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", RW_BODY_CHUNKED, false,
                 &off, &len);
    cr_assert(strstr(h, "\r\nTransfer-Encoding: chunked\r\n") != NULL, "%s", h);
    /* an HTTP/1.0 client's request still goes upstream as HTTP/1.1 */
    h = req_head("GET / HTTP/1.0\r\n\r\n", RW_BODY_NONE, false, &off, &len);
    cr_assert(strncmp(h, "GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\n", 35) == 0, "%s", h);
    cr_assert_null(strstr(h, "X-Forwarded-Host"), "%s", h);
}

Test(heads, request_upgrade_is_passed_explicitly)
{
    uint32_t off, len;
    const char *h =
        req_head("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                 RW_BODY_NONE, true, &off, &len);
    cr_assert(strstr(h, "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n") != NULL, "%s", h);
}

Test(heads, request_that_does_not_fit)
{
    static rw_route_cfg rt;
    parse_req("GET /a HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n");
    rw_reqhead in = {.rq = &rq,
                     .rt = &rt,
                     .path = "/a",
                     .path_len = 2,
                     .upstream_host = RW_STR("u:1"),
                     .peer = RW_STR("p"),
                     .reqid = RW_STR("r")};
    char out[64];
    uint32_t off, len;
    cr_assert_eq(rw_proxy_request_head(&in, out, sizeof(out), &off, &len), -1);
}

static const char *resp_head(const rw_resphead *in, int *persist, bool *dechunk)
{
    static char out[4096];
    ssize_t n = rw_proxy_response_head(in, out, sizeof(out), persist, dechunk);
    cr_assert_gt(n, 0);
    out[n] = '\0';
    return out;
}

Test(heads, response_keeps_http11_connections_quietly)
{
    parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 02\r\nConnection: keep-alive\r\nX-A: 1\r\n\r\n",
               RW_METHOD_GET);
    rw_resphead in = {.rs = &rs,
                      .minor = 1,
                      .body = rs.body,
                      .keep = true,
                      .req_done = true,
                      .extra = RW_STR("RateLimit-Remaining: 4\r\n")};
    int persist;
    bool dechunk;
    const char *h = resp_head(&in, &persist, &dechunk);
    cr_assert_str_eq(h, "HTTP/1.1 200 OK\r\nX-A: 1\r\nVia: 1.1 ringway\r\nRateLimit-Remaining: 4\r\n"
                        "Content-Length: 2\r\n\r\n");
    cr_assert_eq(persist, RW_PERSIST_KEEP);
    cr_assert(!dechunk);
    /* the same for an HTTP/1.0 keep-alive client says so */
    in.minor = 0;
    h = resp_head(&in, &persist, &dechunk);
    cr_assert_eq(persist, RW_PERSIST_KEEP_10);
    cr_assert(strstr(h, "Connection: keep-alive\r\n\r\n") != NULL, "%s", h);
}

Test(heads, response_closes_when_it_must)
{
    parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", RW_METHOD_GET);
    rw_resphead in = {.rs = &rs, .minor = 0, .body = rs.body, .keep = true, .req_done = true};
    int persist;
    bool dechunk;
    const char *h = resp_head(&in, &persist, &dechunk);
    cr_assert(dechunk, "a chunked body for an HTTP/1.0 client is de-chunked");
    cr_assert_eq(persist, RW_PERSIST_CLOSE);
    cr_assert_null(strstr(h, "Transfer-Encoding"), "%s", h);
    cr_assert(strstr(h, "Connection: close\r\n\r\n") != NULL, "%s", h);
    /* an unread request body */
    parse_resp("HTTP/1.1 413 Too Big\r\nContent-Length: 0\r\n\r\n", RW_METHOD_POST);
    in = (rw_resphead){.rs = &rs, .minor = 1, .body = rs.body, .keep = true, .req_done = false};
    resp_head(&in, &persist, &dechunk);
    cr_assert_eq(persist, RW_PERSIST_CLOSE);
    /* a close-delimited body */
    parse_resp("HTTP/1.1 200 OK\r\n\r\n", RW_METHOD_GET);
    in = (rw_resphead){.rs = &rs, .minor = 1, .body = rs.body, .keep = true, .req_done = true};
    cr_assert_eq(rs.body, RW_BODY_UNTIL_CLOSE);
    resp_head(&in, &persist, &dechunk);
    cr_assert_eq(persist, RW_PERSIST_CLOSE);
    /* the client asked to close */
    parse_resp("HTTP/1.1 204 No Content\r\n\r\n", RW_METHOD_GET);
    in = (rw_resphead){.rs = &rs, .minor = 1, .body = rs.body, .keep = false, .req_done = true};
    resp_head(&in, &persist, &dechunk);
    cr_assert_eq(persist, RW_PERSIST_CLOSE);
}

Test(heads, response_101_for_a_tunnel)
{
    parse_resp("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               "Sec-WebSocket-Accept: x\r\n\r\n",
               RW_METHOD_GET);
    rw_resphead in = {
        .rs = &rs, .minor = 1, .body = RW_BODY_UNTIL_CLOSE, .tunnel = true, .keep = true, .req_done = true};
    int persist;
    bool dechunk;
    const char *h = resp_head(&in, &persist, &dechunk);
    cr_assert_str_eq(h, "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\nVia: 1.1 ringway\r\n"
                        "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n");
}

/* ---- request ids and trace context ---- */

Test(heads, request_id_rules)
{
    cr_assert(rw_reqid_valid(RW_STR("550e8400-e29b-41d4-a716-446655440000")));
    cr_assert(rw_reqid_valid(RW_STR("01ARZ3NDEKTSV4RRFFQ69G5FAV")));
    cr_assert(rw_reqid_valid(RW_STR("svc:a.b_c-9")));
    cr_assert(!rw_reqid_valid(RW_STR("")));
    cr_assert(!rw_reqid_valid(RW_STR("has space")));
    cr_assert(!rw_reqid_valid(RW_STR("quote\"")));
    cr_assert(!rw_reqid_valid(RW_STR("a/b")));
    char long_id[130];
    memset(long_id, 'a', sizeof(long_id));
    cr_assert(rw_reqid_valid((rw_str){long_id, 128}));
    cr_assert(!rw_reqid_valid((rw_str){long_id, 129}));
}

Test(heads, traceparent_parse_and_format)
{
    uint8_t t[16], flags;
    const char *good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    cr_assert(rw_traceparent_parse((rw_str){good, strlen(good)}, t, &flags));
    cr_assert_eq(t[0], 0x4b);
    cr_assert_eq(t[15], 0x36);
    cr_assert_eq(flags, 1);
    char out[RW_TRACEPARENT_LEN + 1] = {0};
    rw_traceparent_format(t, 0x1122334455667788ull, flags, out);
    cr_assert_str_eq(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-1122334455667788-01");
    static const char *const bad[] = {
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* upper case */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero parent id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* version 00 with more */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",    /* short */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* separator */
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(!rw_traceparent_parse((rw_str){bad[i], strlen(bad[i])}, t, &flags), "%s", bad[i]);
    /* a later version: its first fields are read */
    const char *v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra";
    cr_assert(rw_traceparent_parse((rw_str){v1, strlen(v1)}, t, &flags));
    cr_assert_eq(flags, 0);
}

Test(heads, request_carries_our_ids_not_the_clients)
{
    static rw_route_cfg rt;
    static char out[4096];
    parse_req("GET / HTTP/1.1\r\nHost: h\r\nX-Correlation-Id: theirs\r\ntraceparent: junk\r\n"
              "tracestate: a=1\r\nX-Request-Id: other\r\n\r\n");
    rw_reqhead in = {.rq = &rq,
                     .rt = &rt,
                     .path = "/",
                     .path_len = 1,
                     .upstream_host = RW_STR("u:1"),
                     .peer = RW_STR("p"),
                     .reqid_header = RW_STR("X-Correlation-Id"),
                     .reqid = RW_STR("ours"),
                     .traceparent = RW_STR("00-4bf92f3577b34da6a3ce929d0e0e4736-1122334455667788-01"),
                     .drop_tracestate = true};
    uint32_t off, len;
    ssize_t n = rw_proxy_request_head(&in, out, sizeof(out), &off, &len);
    cr_assert_gt(n, 0);
    out[n] = '\0';
    cr_assert(strstr(out, "\r\nX-Correlation-Id: ours\r\n") != NULL, "%s", out);
    cr_assert_null(strstr(out, "theirs"), "%s", out);
    cr_assert(strstr(out, "\r\nX-Request-Id: other\r\n") != NULL, "another header passes: %s", out);
    cr_assert(strstr(out, "\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-1122334455667788-01\r\n") !=
                  NULL,
              "%s", out);
    cr_assert_null(strstr(out, "junk"), "%s", out);
    cr_assert_null(strstr(out, "tracestate"), "a restarted trace drops tracestate: %s", out);
    /* ids off: nothing added, the client's header passes as any other */
    in.reqid_header = (rw_str){NULL, 0};
    in.traceparent = (rw_str){NULL, 0};
    in.drop_tracestate = false;
    n = rw_proxy_request_head(&in, out, sizeof(out), &off, &len);
    out[n] = '\0';
    cr_assert(strstr(out, "X-Correlation-Id: theirs\r\n") != NULL, "%s", out);
    cr_assert(strstr(out, "traceparent: junk\r\n") != NULL, "%s", out);
    cr_assert(strstr(out, "tracestate: a=1\r\n") != NULL, "%s", out);
}

Test(heads, response_returns_the_request_id)
{
    parse_resp("HTTP/1.1 200 OK\r\nX-Request-Id: upstream-made\r\nContent-Length: 0\r\n\r\n", RW_METHOD_GET);
    rw_resphead in = {.rs = &rs,
                      .minor = 1,
                      .body = rs.body,
                      .keep = true,
                      .req_done = true,
                      .reqid_header = RW_STR("X-Request-Id"),
                      .reqid = RW_STR("ours")};
    int persist;
    bool dechunk;
    const char *h = resp_head(&in, &persist, &dechunk);
    cr_assert(strstr(h, "\r\nX-Request-Id: ours\r\n") != NULL, "%s", h);
    cr_assert_null(strstr(h, "upstream-made"), "%s", h);
}

Test(heads, response_hsts_replaces_the_upstreams)
{
    parse_resp("HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=1\r\nContent-Length: 0\r\n\r\n",
               RW_METHOD_GET);
    rw_resphead in = {.rs = &rs, .minor = 1, .body = rs.body, .keep = true, .req_done = true};
    int persist;
    bool dechunk;
    const char *h = resp_head(&in, &persist, &dechunk);
    cr_assert(strstr(h, "Strict-Transport-Security: max-age=1\r\n") != NULL, "unset: passed through: %s", h);
    in.hsts = RW_STR("Strict-Transport-Security: max-age=600\r\n");
    h = resp_head(&in, &persist, &dechunk);
    cr_assert_null(strstr(h, "max-age=1\r\n"), "%s", h);
    cr_assert(strstr(h, "Via: 1.1 ringway\r\nStrict-Transport-Security: max-age=600\r\n") != NULL, "%s", h);
}
