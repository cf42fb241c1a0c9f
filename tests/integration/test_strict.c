/* test_strict.c - malformed or over-limit requests: each must get the listed
 * status, the connection must be closed, and the upstream must never see the
 * request (for head-level faults: no connection at all; for faults inside a
 * chunked body: no complete request). One table, one proxy per case. */
#include <string.h>

#include "harness.h"

typedef struct strict_case {
    char name[32];
    int status;
    int alt_status;  /* also acceptable, or 0 */
    bool body_level; /* the fault is in the body: the head may reach the upstream */
    char raw[160];   /* request bytes (inline: Criterion passes parameters to
                        another process, so no pointers); "": built by build_raw */
    size_t len;
} strict_case;

#define RAW(s) (s), sizeof(s) - 1
#define GET_HEAD "GET / HTTP/1.1\r\nHost: x\r\n"

ParameterizedTestParameters(strict, rejects)
{
    static strict_case cases[] = {
        {"cl_and_te", 400, 0, false,
         RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
             "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")},
        {"te_and_cl", 400, 0, false,
         RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
             "Content-Length: 5\r\n\r\n0\r\n\r\n")},
        {"two_cl", 400, 0, false,
         RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
             "Content-Length: 6\r\n\r\nhello!")},
        {"cl_list", 400, 0, false, RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!")},
        {"cl_not_a_number", 400, 0, false,
         RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\nhello")},
        {"cl_negative", 400, 0, false, RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")},
        {"cl_plus", 400, 0, false, RAW("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello")},
        {"te_not_chunked", 400, 501, false,
         RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")},
        {"te_chunked_twice", 400, 0, false,
         RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
             "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")},
        {"double_space_request_line", 400, 0, false, RAW("GET  / HTTP/1.1\r\nHost: x\r\n\r\n")},
        {"bad_chunk_size", 400, 0, true,
         RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             "zz\r\nhello\r\n0\r\n\r\n")},
        {"chunk_size_overflow", 400, 0, true,
         RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             "10000000000000001\r\nhello\r\n0\r\n\r\n")},
        {"chunk_missing_crlf", 400, 0, true,
         RAW("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhelloX\r\n0\r\n\r\n")},
        {"obs_fold", 400, 0, false, RAW(GET_HEAD "X-A: a\r\n  folded\r\n\r\n")},
        {"bare_cr_in_value", 400, 0, false, RAW(GET_HEAD "X-A: a\rb\r\n\r\n")},
        {"bare_cr_line_end", 400, 0, false, RAW("GET / HTTP/1.1\rHost: x\r\n\r\n")},
        {"space_before_colon", 400, 0, false, RAW(GET_HEAD "X-A : a\r\n\r\n")},
        {"space_in_name", 400, 0, false, RAW(GET_HEAD "X A: a\r\n\r\n")},
        {"bad_name_char", 400, 0, false, RAW(GET_HEAD "X(A): a\r\n\r\n")},
        {"no_colon", 400, 0, false, RAW(GET_HEAD "JustAName\r\n\r\n")},
        {"nul_in_value", 400, 0, false, RAW(GET_HEAD "X-A: a\0b\r\n\r\n")},
        {"nul_in_target", 400, 0, false, RAW("GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n")},
        {"missing_host", 400, 0, false, RAW("GET / HTTP/1.1\r\n\r\n")},
        {"two_hosts", 400, 0, false, RAW("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")},
        {"bad_escape", 400, 0, false, RAW("GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n")},
        {"encoded_nul", 400, 0, false, RAW("GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n")},
        {"target_not_slash", 400, 0, false, RAW("GET foo HTTP/1.1\r\nHost: x\r\n\r\n")},
        {"bad_version", 400, 0, false, RAW("GET / HTTX/1.1\r\nHost: x\r\n\r\n")},
        {"request_line_too_long", 414, 0, false, "", 0},
        {"head_too_big", 431, 0, false, "", 0},
        {"too_many_headers", 431, 0, false, "", 0},
        {"http_2_0", 505, 0, false, RAW("GET / HTTP/2.0\r\nHost: x\r\n\r\n")},
        {"http_3_0", 505, 0, false, RAW("GET / HTTP/3.0\r\nHost: x\r\n\r\n")},
        {"unknown_method", 501, 0, false, RAW("FOO / HTTP/1.1\r\nHost: x\r\n\r\n")},
        {"body_over_max", 413, 0, false, "", 0},
        {"chunked_over_max", 413, 0, true, "", 0},
    };
    return cr_make_param_array(strict_case, cases, sizeof cases / sizeof cases[0]);
}

/* The cases too big to spell out. max_body_bytes is 1k in this suite. */
static char *build_raw(const char *name, size_t *len)
{
    char *s = NULL;
    if (strcmp(name, "request_line_too_long") == 0) {
        s = h_fmt("GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", h_repeat(9000, 'a'));
    } else if (strcmp(name, "head_too_big") == 0) {
        s = h_fmt(GET_HEAD "%s", "");
        for (int i = 0; i < 20; i++)
            s = h_fmt("%sX-H%d: %s\r\n", s, i, h_repeat(1000, 'v'));
        s = h_fmt("%s\r\n", s);
    } else if (strcmp(name, "too_many_headers") == 0) {
        s = h_fmt(GET_HEAD "%s", "");
        for (int i = 0; i < 150; i++)
            s = h_fmt("%sX-H%d: v\r\n", s, i);
        s = h_fmt("%s\r\n", s);
    } else if (strcmp(name, "body_over_max") == 0) {
        s = h_fmt("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n%s", h_repeat(2048, 'b'));
    } else if (strcmp(name, "chunked_over_max") == 0) {
        s = h_fmt("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "800\r\n%s\r\n0\r\n\r\n",
                  h_repeat(2048, 'b'));
    }
    cr_assert_not_null(s, "no builder for %s", name);
    *len = strlen(s);
    return s;
}

H_PTEST(strict_case *, sc, strict, rejects)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, "  max_body_bytes: 1k\n", NULL);
    size_t len = sc->len;
    const char *raw = sc->len ? sc->raw : build_raw(sc->name, &len);
    h_conn *c = h_connect(p->port);
    c->timeout_ms = 3000;
    cr_assert_eq(h_send(c, raw, len), H_OK, "%s: could not send the request", sc->name);
    h_resp r;
    int rc = h_read_response(c, &r, 0);
    cr_assert_eq(rc, H_OK, "%s: no complete response (%d)", sc->name, rc);
    cr_assert(r.status == sc->status || (sc->alt_status && r.status == sc->alt_status),
              "%s: want %d, got %d %s (upstream %s)", sc->name, sc->status, r.status, r.reason,
              h_hdr(&r, "X-Upstream") ? h_hdr(&r, "X-Upstream") : "not reached");
    cr_assert(h_wait_closed(c, 2000, NULL), "%s: connection left open after %d", sc->name, r.status);
    h_stats s = h_upstream_stats(u);
    if (sc->body_level)
        cr_assert_eq(s.completed, 0, "%s: the upstream received the whole bad request", sc->name);
    else
        cr_assert(s.requests == 0 && s.connections == 0,
                  "%s: the upstream saw it (requests %ld, connections %ld)", sc->name, s.requests,
                  s.connections);
    /* the proxy is fine afterwards */
    h_resp ok;
    h_get(p->port, "/after", &ok);
    cr_assert_eq(ok.status, 200, "%s: the next request failed", sc->name);
}

H_TEST(strict, within_limits_pass)
{
    /* the boundaries themselves are accepted */
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, "  max_body_bytes: 1k\n", NULL);
    h_conn *c = h_connect(p->port);
    h_resp r;
    const char *body = h_repeat(1024, 'b');
    cr_assert_eq(h_request(c, "POST", "/echo-body", NULL, body, 1024, &r), H_OK);
    cr_assert_eq(r.status, 200, "a body of exactly max_body_bytes: %d", r.status);
    cr_assert_eq(r.body_len, 1024);
    char *target = h_fmt("/%s", h_repeat(7000, 'a'));
    cr_assert_eq(h_request(c, "GET", target, NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 200, "a 7000-byte target: %d", r.status);
    char *hdrs = "";
    for (int i = 0; i < 10; i++)
        hdrs = h_fmt("%sX-H%d: %s\r\n", hdrs, i, h_repeat(1000, 'v'));
    cr_assert_eq(h_request(c, "GET", "/h", hdrs, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 200, "a 10 kB head: %d", r.status);
    /* leading empty lines before a request are allowed (RFC 9112 2.2) */
    h_sends(c, "\r\nGET /lead HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(h_upstream_stats(u).requests, 4);
}
