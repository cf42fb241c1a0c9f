/* Unit tests for the HTTP/1.1 head parser (src/http/parser.c) and the reason
 * table (src/http/status.c). Tables of vectors; every vector is also fed
 * byte by byte to check the incremental contract. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringway/http.h"

#define H11 " HTTP/1.1\r\nHost: a\r\n"

static bool str_is(rw_str s, const char *want)
{
    if (!want)
        return s.len == 0;
    return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static char *dup_bytes(const char *p, size_t n)
{
    /* Exact-size heap copy so ASan catches any read past the end. */
    char *b = malloc(n ? n : 1);
    cr_assert_not_null(b);
    memcpy(b, p, n);
    return b;
}

/* ---- valid requests ---- */

struct req_ok {
    const char *raw;
    int method;
    const char *target, *path, *query, *host;
    int minor;
    int body;
    uint64_t cl;
    bool keep_alive;
    uint32_t flags;
};

#define HH RW_HF_HAS_HOST
static const struct req_ok req_ok[] = {
    {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", RW_METHOD_GET, "/", "/", NULL, "a", 1, RW_BODY_NONE, 0, true, HH},
    {"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n", RW_METHOD_HEAD, "/x", "/x", NULL, "a", 1, RW_BODY_NONE, 0, true,
     HH},
    {"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", RW_METHOD_POST, "/p", "/p", NULL, "a", 1,
     RW_BODY_LENGTH, 5, true, HH | RW_HF_HAS_CL},
    {"PUT /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", RW_METHOD_PUT, "/p", "/p", NULL, "a", 1,
     RW_BODY_LENGTH, 0, true, HH | RW_HF_HAS_CL},
    {"DELETE /r/1 HTTP/1.1\r\nHost: a\r\n\r\n", RW_METHOD_DELETE, "/r/1", "/r/1", NULL, "a", 1, RW_BODY_NONE,
     0, true, HH},
    {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", RW_METHOD_OPTIONS, "*", "*", NULL, "a", 1, RW_BODY_NONE, 0,
     true, HH},
    {"OPTIONS /o HTTP/1.1\r\nHost: a\r\n\r\n", RW_METHOD_OPTIONS, "/o", "/o", NULL, "a", 1, RW_BODY_NONE, 0,
     true, HH},
    {"TRACE /t HTTP/1.1\r\nHost: a\r\n\r\n", RW_METHOD_TRACE, "/t", "/t", NULL, "a", 1, RW_BODY_NONE, 0, true,
     HH},
    {"PATCH /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", RW_METHOD_PATCH, "/p", "/p", NULL,
     "a", 1, RW_BODY_CHUNKED, 0, true, HH | RW_HF_HAS_TE},
    {"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", RW_METHOD_CONNECT,
     "example.com:443", NULL, NULL, "example.com:443", 1, RW_BODY_NONE, 0, true, HH},
    {"CONNECT [::1]:8443 HTTP/1.1\r\nHost: x\r\n\r\n", RW_METHOD_CONNECT, "[::1]:8443", NULL, NULL,
     "[::1]:8443", 1, RW_BODY_NONE, 0, true, HH},
    /* HTTP/1.0: no Host needed, keep-alive only when asked */
    {"GET /old HTTP/1.0\r\n\r\n", RW_METHOD_GET, "/old", "/old", NULL, NULL, 0, RW_BODY_NONE, 0, false, 0},
    {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", RW_METHOD_GET, "/", "/", NULL, NULL, 0, RW_BODY_NONE,
     0, true, RW_HF_CONN_KEEPALIVE},
    {"GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n", RW_METHOD_GET, "/", "/", NULL, NULL, 0,
     RW_BODY_NONE, 0, false, RW_HF_CONN_KEEPALIVE | RW_HF_CONN_CLOSE},
    {"POST / HTTP/1.0\r\nHost: h\r\nContent-Length: 3\r\n\r\n", RW_METHOD_POST, "/", "/", NULL, "h", 0,
     RW_BODY_LENGTH, 3, false, HH | RW_HF_HAS_CL},
    /* Connection handling */
    {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", RW_METHOD_GET, "/", "/", NULL, "a", 1,
     RW_BODY_NONE, 0, false, HH | RW_HF_CONN_CLOSE},
    {"GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n", RW_METHOD_GET, "/", "/", NULL, "a", 1,
     RW_BODY_NONE, 0, false, HH | RW_HF_CONN_CLOSE},
    {"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
     RW_METHOD_GET, "/ws", "/ws", NULL, "a", 1, RW_BODY_NONE, 0, true,
     HH | RW_HF_CONN_KEEPALIVE | RW_HF_CONN_UPGRADE},
    {"GET / HTTP/1.1\r\nConnection: x-foo\r\nHost: a\r\nConnection: ,, close ,\r\n\r\n", RW_METHOD_GET, "/",
     "/", NULL, "a", 1, RW_BODY_NONE, 0, false, HH | RW_HF_CONN_CLOSE | RW_HF_CONN_OTHER},
    {"GET / HTTP/1.1\r\nHost: a\r\nConnection:\r\n\r\n", RW_METHOD_GET, "/", "/", NULL, "a", 1, RW_BODY_NONE,
     0, true, HH},
    /* Expect */
    {"PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 10\r\n\r\n", RW_METHOD_PUT, "/u",
     "/u", NULL, "a", 1, RW_BODY_LENGTH, 10, true, HH | RW_HF_HAS_CL | RW_HF_EXPECT_CONTINUE},
    {"PUT /u HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n", RW_METHOD_PUT, "/u", "/u", NULL, "a", 1,
     RW_BODY_NONE, 0, true, HH},
    /* Queries and targets */
    {"GET /search?q=a&b=c HTTP/1.1\r\nHost: a\r\n\r\n", RW_METHOD_GET, "/search?q=a&b=c", "/search",
     "q=a&b=c", "a", 1, RW_BODY_NONE, 0, true, HH},
    {"GET /? HTTP/1.1\r\nHost: a\r\n\r\n", RW_METHOD_GET, "/?", "/", NULL, "a", 1, RW_BODY_NONE, 0, true, HH},
    {"GET /a?b?c=/d HTTP/1.1\r\nHost: a\r\n\r\n", RW_METHOD_GET, "/a?b?c=/d", "/a", "b?c=/d", "a", 1,
     RW_BODY_NONE, 0, true, HH},
    {"GET /%7Euser/{x}|\"<>`^\\ HTTP/1.1\r\nHost: a\r\n\r\n", RW_METHOD_GET, "/%7Euser/{x}|\"<>`^\\",
     "/%7Euser/{x}|\"<>`^\\", NULL, "a", 1, RW_BODY_NONE, 0, true, HH},
    {"GET http://example.com:8080/a/b?x=1 HTTP/1.1\r\nHost: other\r\n\r\n", RW_METHOD_GET,
     "http://example.com:8080/a/b?x=1", "/a/b", "x=1", "example.com:8080", 1, RW_BODY_NONE, 0, true, HH},
    {"GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", RW_METHOD_GET, "HTTPS://example.com",
     "/", NULL, "example.com", 1, RW_BODY_NONE, 0, true, HH},
    {"GET http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", RW_METHOD_GET, "http://h?q=1", "/", "q=1", "h", 1,
     RW_BODY_NONE, 0, true, HH},
    {"GET http://h/ HTTP/1.0\r\n\r\n", RW_METHOD_GET, "http://h/", "/", NULL, "h", 0, RW_BODY_NONE, 0, false,
     0},
    {"OPTIONS http://[::1]:80 HTTP/1.1\r\nHost: x\r\n\r\n", RW_METHOD_OPTIONS, "http://[::1]:80", "/", NULL,
     "[::1]:80", 1, RW_BODY_NONE, 0, true, HH},
    /* Host forms and OWS trimming */
    {"GET / HTTP/1.1\r\nHost: \t a.example:8080 \t \r\n\r\n", RW_METHOD_GET, "/", "/", NULL, "a.example:8080",
     1, RW_BODY_NONE, 0, true, HH},
    {"GET / HTTP/1.1\r\nhOsT:[2001:db8::1]:443\r\n\r\n", RW_METHOD_GET, "/", "/", NULL, "[2001:db8::1]:443",
     1, RW_BODY_NONE, 0, true, HH},
    {"GET / HTTP/1.1\r\nHost:\r\n\r\n", RW_METHOD_GET, "/", "/", NULL, NULL, 1, RW_BODY_NONE, 0, true, HH},
    /* Leading empty lines are skipped */
    {"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", RW_METHOD_GET, "/", "/", NULL, "a", 1, RW_BODY_NONE, 0,
     true, HH},
    /* Content-Length forms */
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", RW_METHOD_POST, "/", "/", NULL, "a", 1,
     RW_BODY_LENGTH, 5, true, HH | RW_HF_HAS_CL},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 005\r\n\r\n", RW_METHOD_POST, "/",
     "/", NULL, "a", 1, RW_BODY_LENGTH, 5, true, HH | RW_HF_HAS_CL},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\t 42 \t\r\n\r\n", RW_METHOD_POST, "/", "/", NULL, "a", 1,
     RW_BODY_LENGTH, 42, true, HH | RW_HF_HAS_CL},
    {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", RW_METHOD_POST, "/", "/",
     NULL, "a", 1, RW_BODY_LENGTH, 9223372036854775807ull, true, HH | RW_HF_HAS_CL},
    /* Transfer-Encoding forms */
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", RW_METHOD_POST, "/", "/", NULL, "a",
     1, RW_BODY_CHUNKED, 0, true, HH | RW_HF_HAS_TE},
    {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked ,\r\n\r\n", RW_METHOD_POST, "/", "/", NULL,
     "a", 1, RW_BODY_CHUNKED, 0, true, HH | RW_HF_HAS_TE},
    /* Odd but valid header bytes */
    {"GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Obs: caf\xc3\xa9\r\nX-Tab: a\tb\r\n!#$%&'*+-.^_`|~09azAZ: "
     "v\r\n\r\n",
     RW_METHOD_GET, "/", "/", NULL, "a", 1, RW_BODY_NONE, 0, true, HH},
};

static void check_req_ok(const struct req_ok *v, size_t idx, const rw_http_request *r, ssize_t rc, size_t len)
{
    cr_assert_eq(rc, (ssize_t)len, "case %zu: rc %zd want %zu: %s", idx, rc, len, v->raw);
    cr_expect_eq(r->head_len, len, "case %zu", idx);
    cr_expect_eq(r->method, v->method, "case %zu", idx);
    cr_expect(str_is(r->target, v->target), "case %zu target", idx);
    cr_expect(str_is(r->path, v->path), "case %zu path '%.*s'", idx, (int)r->path.len, r->path.p);
    cr_expect(str_is(r->query, v->query), "case %zu query", idx);
    cr_expect(str_is(r->host, v->host), "case %zu host '%.*s'", idx, (int)r->host.len, r->host.p);
    cr_expect_eq(r->minor, v->minor, "case %zu", idx);
    cr_expect_eq(r->body, v->body, "case %zu body", idx);
    cr_expect_eq(r->content_length, v->cl, "case %zu", idx);
    cr_expect_eq(r->keep_alive, v->keep_alive, "case %zu keep_alive", idx);
    cr_expect_eq(r->flags, v->flags, "case %zu flags %#x want %#x", idx, r->flags, v->flags);
}

Test(request, valid_vectors)
{
    static rw_http_request r;
    for (size_t i = 0; i < RW_ARRAY_LEN(req_ok); i++) {
        const struct req_ok *v = &req_ok[i];
        size_t len = strlen(v->raw);
        char *b = dup_bytes(v->raw, len);
        check_req_ok(v, i, &r, rw_http_parse_request(b, len, NULL, &r), len);
        free(b);
    }
}

Test(request, valid_vectors_byte_by_byte)
{
    static rw_http_request r;
    for (size_t i = 0; i < RW_ARRAY_LEN(req_ok); i++) {
        const struct req_ok *v = &req_ok[i];
        size_t len = strlen(v->raw);
        for (size_t k = 0; k < len; k++) {
            char *b = dup_bytes(v->raw, k);
            ssize_t rc = rw_http_parse_request(b, k, NULL, &r);
            free(b);
            cr_assert_eq(rc, RW_HTTP_INCOMPLETE, "case %zu prefix %zu: rc %zd", i, k, rc);
        }
        /* the same head followed by more bytes gives the same result */
        char *b = malloc(len + 7);
        memcpy(b, v->raw, len);
        memcpy(b + len, "GET / H", 7);
        check_req_ok(v, i, &r, rw_http_parse_request(b, len + 7, NULL, &r), len);
        free(b);
    }
}

Test(request, headers_array)
{
    static rw_http_request r;
    const char *raw =
        "GET / HTTP/1.1\r\nHost:  a \r\nX-A:b\r\nX-Empty: \t \r\nUser-Agent: curl/8.0 (x)\r\n\r\n";
    cr_assert_eq(rw_http_parse_request(raw, strlen(raw), NULL, &r), (ssize_t)strlen(raw));
    cr_assert_eq(r.nheaders, 4);
    cr_expect(str_is(r.headers[0].name, "Host"));
    cr_expect(str_is(r.headers[0].value, "a"));
    cr_expect(str_is(r.headers[1].name, "X-A"));
    cr_expect(str_is(r.headers[1].value, "b"));
    cr_expect(str_is(r.headers[2].name, "X-Empty"));
    cr_expect_eq(r.headers[2].value.len, 0);
    cr_expect(str_is(r.headers[3].value, "curl/8.0 (x)"));
    cr_expect(str_is(r.method_str, "GET"));
    for (size_t i = 0; i < r.nheaders; i++) {
        cr_expect(r.headers[i].name.p >= raw &&
                  r.headers[i].name.p + r.headers[i].name.len <= raw + strlen(raw));
        cr_expect(r.headers[i].value.p >= raw &&
                  r.headers[i].value.p + r.headers[i].value.len <= raw + strlen(raw));
    }
}

/* ---- invalid requests ---- */

struct req_bad {
    const char *raw;
    size_t len; /* 0: strlen(raw) */
    int status;
};

#define B(s, st)                                                                                             \
    {                                                                                                        \
        s, 0, st                                                                                             \
    }
#define BN(s, st)                                                                                            \
    {                                                                                                        \
        s, sizeof(s) - 1, st                                                                                 \
    } /* vectors with a NUL byte */
static const struct req_bad req_bad[] = {
    /* request line syntax */
    B("G@T /" H11 "\r\n", -400),
    B("GET(x) /" H11 "\r\n", -400),
    B(" GET /" H11 "\r\n", -400),
    B("GET  /" H11 "\r\n", -400),
    B("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    B("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", -400),
    B("GET\t/" H11 "\r\n", -400),
    B("GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", -400),
    B("GET HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    B("GET /\r\nHost: a\r\n\r\n", -400),
    B("/ HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    B("GET / http/1.1\r\nHost: a\r\n\r\n", -400),
    B("GET / HTTP/1\r\nHost: a\r\n\r\n", -400),
    B("GET / HTTP/x.1\r\nHost: a\r\n\r\n", -400),
    B("GET / HTTP/1.x\r\nHost: a\r\n\r\n", -400),
    B("GET / HTTP/1.10\r\nHost: a\r\n\r\n", -400),
    B("GET / HTTP/11.1\r\nHost: a\r\n\r\n", -400),
    B("GET / HTTP/1.1extra\r\nHost: a\r\n\r\n", -400),
    B("GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n", -400),
    B("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    /* versions */
    B("GET / HTTP/2.0\r\nHost: a\r\n\r\n", -505),
    B("GET / HTTP/1.2\r\nHost: a\r\n\r\n", -505),
    B("GET / HTTP/0.9\r\nHost: a\r\n\r\n", -505),
    B("GET / HTTP/3.0\r\nHost: a\r\n\r\n", -505),
    B("FOO / HTTP/2.0\r\nHost: a\r\n\r\n", -505),
    /* methods: valid tokens we do not know */
    B("get /" H11 "\r\n", -501),
    B("PROPFIND /" H11 "\r\n", -501),
    B("BREW /" H11 "\r\n", -501),
    B("GETX /" H11 "\r\n", -501),
    B("CONNECTX a:1" H11 "\r\n", -501),
    /* target bytes */
    B("GET /a\x7f" H11 "\r\n", -400),
    B("GET /a\x80" H11 "\r\n", -400),
    B("GET /\xff" H11 "\r\n", -400),
    B("GET /a#frag" H11 "\r\n", -400),
    B("GET /a\x01" H11 "\r\n", -400),
    BN("GET /a\0b" H11 "\r\n", -400),
    B("GET /a\rb" H11 "\r\n", -400),
    /* target forms */
    B("GET *" H11 "\r\n", -400),
    B("OPTIONS **" H11 "\r\n", -400),
    B("POST *" H11 "\r\n", -400),
    B("CONNECT /" H11 "\r\n", -400),
    B("CONNECT *" H11 "\r\n", -400),
    B("CONNECT example.com" H11 "\r\n", -400),
    B("CONNECT example.com:" H11 "\r\n", -400),
    B("CONNECT :443" H11 "\r\n", -400),
    B("CONNECT a:123456" H11 "\r\n", -400),
    B("CONNECT a:44x" H11 "\r\n", -400),
    B("CONNECT u@a:443" H11 "\r\n", -400),
    B("CONNECT a/b:443" H11 "\r\n", -400),
    B("CONNECT http://a/" H11 "\r\n", -400),
    B("GET example.com" H11 "\r\n", -400),
    B("GET example.com:80" H11 "\r\n", -400),
    B("GET ftp://a/" H11 "\r\n", -400),
    B("GET http:/a" H11 "\r\n", -400),
    B("GET http:a" H11 "\r\n", -400),
    B("GET http://" H11 "\r\n", -400),
    B("GET http:///x" H11 "\r\n", -400),
    B("GET http://u@a/" H11 "\r\n", -400),
    B("GET http://a\\b/" H11 "\r\n", -400),
    B("GET ?x" H11 "\r\n", -400),
    /* line endings */
    B("GET / HTTP/1.1\nHost: a\n\n", -400),
    B("GET / HTTP/1.1\r\nHost: a\n\r\n", -400),
    B("GET / HTTP/1.1\r\nHost: a\r\n\n", -400),
    B("GET / HTTP/1.1\rHost: a\r\n\r\n", -400),
    B("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", -400),
    B("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\r\n\r\n", -400),
    B("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", -400),
    B("\nGET /" H11 "\r\n", -400),
    B("\r\r\nGET /" H11 "\r\n", -400),
    B("\rGET /" H11 "\r\n", -400),
    B("\r\n\nGET /" H11 "\r\n", -400),
    /* field syntax */
    B("GET /" H11 "X : b\r\n\r\n", -400),
    B("GET /" H11 "X\t: b\r\n\r\n", -400),
    B("GET / HTTP/1.1\r\nHost : a\r\n\r\n", -400),
    B("GET /" H11 ": b\r\n\r\n", -400),
    B("GET /" H11 " X: b\r\n\r\n", -400),
    B("GET /" H11 "\tX: b\r\n\r\n", -400),
    B("GET / HTTP/1.1\r\n Host: a\r\n\r\n", -400),
    B("GET /" H11 "X: a\r\n b\r\n\r\n", -400),
    B("GET /" H11 "X: a\r\n\tb\r\n\r\n", -400),
    B("GET /" H11 "X b\r\n\r\n", -400),
    B("GET /" H11 "X\r\n\r\n", -400),
    B("GET /" H11 "X[: b\r\n\r\n", -400),
    B("GET /" H11 "X\"Y: b\r\n\r\n", -400),
    B("GET /" H11 "X(Y): b\r\n\r\n", -400),
    B("GET /" H11 "X/Y: b\r\n\r\n", -400),
    B("GET /" H11 "\xc3\xa9: b\r\n\r\n", -400),
    BN("GET /" H11 "X\0: b\r\n\r\n", -400),
    BN("GET /" H11 "X: a\0b\r\n\r\n", -400),
    BN("GET /" H11 "X: a\0\r\n\r\n", -400),
    B("GET /" H11 "X: a\x01\r\n\r\n", -400),
    B("GET /" H11 "X: a\x1f b\r\n\r\n", -400),
    B("GET /" H11 "X: a\x7f\r\n\r\n", -400),
    B("GET /" H11 "X: \x0b\r\n\r\n", -400),
    B("GET /" H11 "X: \x0c\r\n\r\n", -400),
    /* Host */
    B("GET / HTTP/1.1\r\n\r\n", -400),
    B("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", -400),
    B("GET http://a/ HTTP/1.1\r\n\r\n", -400),
    B("GET /" H11 "Host: a\r\n\r\n", -400),
    B("GET /" H11 "host: b\r\n\r\n", -400),
    B("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", -400),
    B("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", -400),
    B("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", -400),
    B("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", -400),
    B("GET / HTTP/1.1\r\nHost: a?b\r\n\r\n", -400),
    B("GET / HTTP/1.1\r\nHost: a#b\r\n\r\n", -400),
    B("GET / HTTP/1.1\r\nHost: a\\b\r\n\r\n", -400),
    B("GET / HTTP/1.1\r\nHost: a,b\r\nX: y\r\n\r\n", 0 /* see below: ',' is a sub-delim */),
    /* Content-Length */
    B("POST /" H11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", -400),
    B("POST /" H11 "Content-Length: 5, 6\r\n\r\n", -400),
    B("POST /" H11 "Content-Length: 5,\r\n\r\n", -400),
    B("POST /" H11 "Content-Length: ,5\r\n\r\n", -400),
    B("POST /" H11 "Content-Length: 5,,5\r\n\r\n", -400),
    B("POST /" H11 "Content-Length: 5 5\r\n\r\n", -400),
    B("POST /" H11 "Content-Length: abc\r\n\r\n", -400),
    B("POST /" H11 "Content-Length: -1\r\n\r\n", -400),
    B("POST /" H11 "Content-Length: +5\r\n\r\n", -400),
    B("POST /" H11 "Content-Length: 0x10\r\n\r\n", -400),
    B("POST /" H11 "Content-Length: 1e3\r\n\r\n", -400),
    B("POST /" H11 "Content-Length: 5;\r\n\r\n", -400),
    B("POST /" H11 "Content-Length: \"5\"\r\n\r\n", -400),
    B("POST /" H11 "Content-Length:\r\n\r\n", -400),
    B("POST /" H11 "Content-Length: 9223372036854775808\r\n\r\n", -400),
    B("POST /" H11 "Content-Length: 18446744073709551616\r\n\r\n", -400),
    B("POST /" H11 "Content-Length: 99999999999999999999999999\r\n\r\n", -400),
    B("POST /" H11 "Content Length: 5\r\n\r\n", -400),
    /* Transfer-Encoding */
    B("POST /" H11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", -400),
    B("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding: gzip\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding: identity\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding: chunked, gzip\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding:\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding: ,\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding: xchunked\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding: chunked;q=1\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding: \"chunked\"\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding: chunked\x0b\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding : chunked\r\n\r\n", -400),
    B("POST /" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n", -501),
    B("POST /" H11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", -501),
    B("POST /" H11 "Transfer-Encoding: identity, chunked\r\n\r\n", -501),
};

static ssize_t parse_req_copy(const char *p, size_t n, const rw_http_limits *lim, rw_http_request *r)
{
    char *b = dup_bytes(p, n);
    ssize_t rc = rw_http_parse_request(b, n, lim, r);
    free(b);
    return rc;
}

Test(request, invalid_vectors)
{
    static rw_http_request r;
    for (size_t i = 0; i < RW_ARRAY_LEN(req_bad); i++) {
        const struct req_bad *v = &req_bad[i];
        size_t len = v->len ? v->len : strlen(v->raw);
        ssize_t rc = parse_req_copy(v->raw, len, NULL, &r);
        if (v->status == 0)
            cr_expect_eq(rc, (ssize_t)len, "case %zu: rc %zd, want success", i, rc);
        else
            cr_expect_eq(rc, v->status, "case %zu: rc %zd want %d: %s", i, rc, v->status, v->raw);
    }
}

/* Fed byte by byte, an invalid request reads INCOMPLETE and then its final
 * status: never another error, never success. */
Test(request, invalid_vectors_byte_by_byte)
{
    static rw_http_request r;
    for (size_t i = 0; i < RW_ARRAY_LEN(req_bad); i++) {
        const struct req_bad *v = &req_bad[i];
        if (v->status == 0)
            continue;
        size_t len = v->len ? v->len : strlen(v->raw);
        bool seen = false;
        for (size_t k = 0; k <= len; k++) {
            ssize_t rc = parse_req_copy(v->raw, k, NULL, &r);
            if (seen)
                cr_assert_eq(rc, v->status, "case %zu prefix %zu: rc %zd after error", i, k, rc);
            else
                cr_assert(rc == 0 || rc == v->status, "case %zu prefix %zu: rc %zd", i, k, rc);
            seen = rc != 0;
        }
        cr_expect(seen, "case %zu", i);
    }
}

Test(request, unknown_method_is_reported)
{
    static rw_http_request r;
    const char *raw = "PURGE /x HTTP/1.1\r\n";
    cr_assert_eq(rw_http_parse_request(raw, strlen(raw), NULL, &r), -501);
    cr_expect_eq(r.method, RW_METHOD_OTHER);
    cr_expect(str_is(r.method_str, "PURGE"));
}

/* ---- pipelining ---- */

Test(request, pipelined)
{
    static rw_http_request r;
    const char *buf = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
                      "POST /b HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n\r\nhello"
                      "\r\n" /* a stray CRLF after a body is allowed before the next request */
                      "DELETE /c?x HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n"
                      "GET /d HTTP/1.1\r\nHo";
    size_t len = strlen(buf), off = 0;

    ssize_t rc = rw_http_parse_request(buf + off, len - off, NULL, &r);
    cr_assert_gt(rc, 0);
    cr_expect(str_is(r.path, "/a"));
    cr_expect(str_is(r.host, "a"));
    cr_expect_eq(r.body, RW_BODY_NONE);
    off += (size_t)rc;

    rc = rw_http_parse_request(buf + off, len - off, NULL, &r);
    cr_assert_gt(rc, 0);
    cr_expect_eq(r.method, RW_METHOD_POST);
    cr_expect(str_is(r.path, "/b"));
    cr_expect_eq(r.body, RW_BODY_LENGTH);
    cr_expect_eq(r.content_length, 5);
    off += (size_t)rc;
    cr_expect_eq(memcmp(buf + off, "hello", 5), 0);
    off += r.content_length;

    rc = rw_http_parse_request(buf + off, len - off, NULL, &r);
    cr_assert_gt(rc, 0);
    cr_expect_eq(r.method, RW_METHOD_DELETE);
    cr_expect(str_is(r.path, "/c"));
    cr_expect(str_is(r.query, "x"));
    cr_expect_not(r.keep_alive);
    cr_expect_eq(r.head_len, (size_t)rc);
    cr_expect_eq(memcmp(buf + off + 2, "DELETE", 6), 0);
    off += (size_t)rc;

    rc = rw_http_parse_request(buf + off, len - off, NULL, &r);
    cr_expect_eq(rc, RW_HTTP_INCOMPLETE);
}

Test(request, pipelined_many)
{
    static rw_http_request r;
    char buf[4096];
    size_t len = 0;
    for (int i = 0; i < 50; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "GET /r%d HTTP/1.1\r\nHost: h%d\r\n\r\n", i, i);
    size_t off = 0;
    for (int i = 0; i < 50; i++) {
        ssize_t rc = rw_http_parse_request(buf + off, len - off, NULL, &r);
        cr_assert_gt(rc, 0, "request %d", i);
        char want[16];
        snprintf(want, sizeof(want), "/r%d", i);
        cr_expect(str_is(r.path, want));
        off += (size_t)rc;
    }
    cr_expect_eq(off, len);
    cr_expect_eq(rw_http_parse_request(buf + off, 0, NULL, &r), RW_HTTP_INCOMPLETE);
}

/* ---- limits ---- */

static char *make_request(size_t target_len, size_t nextra, size_t pad)
{
    /* "GET /aaa... HTTP/1.1\r\nHost: a\r\n" + nextra "X-N: v" lines + a pad header */
    size_t cap = target_len + 64 + nextra * 16 + pad + 64;
    char *b = malloc(cap);
    size_t n = 0;
    n += (size_t)sprintf(b + n, "GET /");
    memset(b + n, 'a', target_len - 1);
    n += target_len - 1;
    n += (size_t)sprintf(b + n, " HTTP/1.1\r\nHost: a\r\n");
    for (size_t i = 0; i < nextra; i++)
        n += (size_t)sprintf(b + n, "X-%zu: v\r\n", i);
    if (pad) {
        n += (size_t)sprintf(b + n, "P: ");
        memset(b + n, 'p', pad);
        n += pad;
        n += (size_t)sprintf(b + n, "\r\n");
    }
    n += (size_t)sprintf(b + n, "\r\n");
    return b;
}

Test(limits, request_line)
{
    static rw_http_request r;
    rw_http_limits lim = {.max_request_line = 40, .max_header_bytes = 4096, .max_headers = 10};
    /* "GET " + target + " HTTP/1.1" = 13 + target_len */
    char *ok = make_request(27, 0, 0);
    cr_expect_gt(parse_req_copy(ok, strlen(ok), &lim, &r), 0);
    char *big = make_request(28, 0, 0);
    cr_expect_eq(parse_req_copy(big, strlen(big), &lim, &r), -414);
    /* incomplete: 40 bytes, then 40 + CR, still waiting; 41 bytes of line: 414 */
    cr_expect_eq(parse_req_copy(ok, 40, &lim, &r), 0);
    cr_expect_eq(parse_req_copy(ok, 41, &lim, &r), 0);
    cr_expect_eq(parse_req_copy(big, 41, &lim, &r), -414);
    /* a long line is refused at once, whatever follows */
    char *huge = make_request(5000, 0, 0);
    cr_expect_eq(parse_req_copy(huge, 100, &lim, &r), -414);
    cr_expect_eq(parse_req_copy(huge, strlen(huge), &lim, &r), -414);
    free(ok);
    free(big);
    free(huge);
}

Test(limits, default_request_line)
{
    static rw_http_request r;
    char *ok = make_request(8192 - 13, 0, 0);
    cr_expect_gt(parse_req_copy(ok, strlen(ok), NULL, &r), 0);
    char *big = make_request(8192 - 12, 0, 0);
    cr_expect_eq(parse_req_copy(big, strlen(big), NULL, &r), -414);
    cr_expect_eq(parse_req_copy(big, 8193, NULL, &r), -414);
    cr_expect_eq(parse_req_copy(big, 8192, NULL, &r), 0);
    free(ok);
    free(big);
}

Test(limits, header_bytes)
{
    static rw_http_request r;
    rw_http_limits lim = {.max_request_line = 100, .max_header_bytes = 100, .max_headers = 10};
    /* "GET / HTTP/1.1\r\nHost: a\r\n" = 25, "P: " pad "\r\n" = pad + 5, final CRLF 2 */
    char *ok = make_request(1, 0, 68);
    cr_assert_eq(strlen(ok), 100);
    cr_expect_eq(parse_req_copy(ok, 100, &lim, &r), 100);
    char *big = make_request(1, 0, 69);
    cr_expect_eq(parse_req_copy(big, 101, &lim, &r), -431);
    /* incomplete heads: 99 bytes wait, 100 bytes without the end are too many */
    cr_expect_eq(parse_req_copy(big, 99, &lim, &r), 0);
    cr_expect_eq(parse_req_copy(big, 100, &lim, &r), -431);
    cr_expect_eq(parse_req_copy(ok, 99, &lim, &r), 0);
    /* leading empty lines count */
    char lead[300];
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        n += (size_t)sprintf(lead + n, "\r\n");
    n += (size_t)sprintf(lead + n, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    cr_expect_eq(parse_req_copy(lead, n, &lim, &r), -431);
    cr_expect_eq(parse_req_copy(lead, 60, &lim, &r), 0);
    free(ok);
    free(big);
}

Test(limits, default_header_bytes)
{
    static rw_http_request r;
    /* 25 + pad + 5 + 2 = 16384 */
    char *ok = make_request(1, 0, 16384 - 32);
    cr_assert_eq(strlen(ok), 16384);
    cr_expect_eq(parse_req_copy(ok, 16384, NULL, &r), 16384);
    char *big = make_request(1, 0, 16384 - 31);
    cr_expect_eq(parse_req_copy(big, strlen(big), NULL, &r), -431);
    cr_expect_eq(parse_req_copy(big, 16384, NULL, &r), -431);
    cr_expect_eq(parse_req_copy(big, 16383, NULL, &r), 0);
    free(ok);
    free(big);
}

Test(limits, header_count)
{
    static rw_http_request r;
    rw_http_limits lim = {.max_request_line = 100, .max_header_bytes = 65536, .max_headers = 5};
    char *ok = make_request(1, 4, 0); /* Host + 4 */
    cr_expect_gt(parse_req_copy(ok, strlen(ok), &lim, &r), 0);
    cr_expect_eq(r.nheaders, 5);
    char *big = make_request(1, 5, 0);
    cr_expect_eq(parse_req_copy(big, strlen(big), &lim, &r), -431);
    /* refused as soon as the sixth line is complete */
    size_t cut = strlen(big) - 2;
    cr_expect_eq(parse_req_copy(big, cut, &lim, &r), -431);
    free(ok);
    free(big);

    /* defaults: RW_HTTP_MAX_HEADERS; a larger configured count is clamped */
    ok = make_request(1, RW_HTTP_MAX_HEADERS - 1, 0);
    cr_expect_gt(parse_req_copy(ok, strlen(ok), NULL, &r), 0);
    cr_expect_eq(r.nheaders, RW_HTTP_MAX_HEADERS);
    big = make_request(1, RW_HTTP_MAX_HEADERS, 0);
    cr_expect_eq(parse_req_copy(big, strlen(big), NULL, &r), -431);
    lim.max_headers = 1000;
    cr_expect_eq(parse_req_copy(big, strlen(big), &lim, &r), -431);
    free(ok);
    free(big);
}

/* When a head breaks both the line and the head limit, the status must not
 * depend on how the bytes were split (the limit crossed first wins). */
Test(limits, both_limits_split_independent)
{
    static rw_http_request r;
    static const char *const inputs[] = {
        "\r\n\r\n\r\n\r\n\r\nGET /aaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n",
        "\r\n\r\n\r\n\r\n\r\n\r\x03G/../ET /\nH,/P.\r\n",
        "\r\nGET /aaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n",
        "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n",
        "\r\n\r\n\r\nGET /a\r\r\r\r\r\r\r\r\r\r\r\r\r\r\r\n\r\n",
        "\r\n\r\n\r\n\r\nGET /\r\nHost: a\r\n\r\n",
    };
    for (size_t hb = 8; hb <= 40; hb++)
        for (size_t rl = 4; rl <= 24; rl++) {
            rw_http_limits lim = {.max_request_line = rl, .max_header_bytes = hb, .max_headers = 4};
            for (size_t i = 0; i < RW_ARRAY_LEN(inputs); i++) {
                size_t len = strlen(inputs[i]);
                ssize_t want = parse_req_copy(inputs[i], len, &lim, &r);
                for (size_t k = 0; k < len; k++) {
                    ssize_t rc = parse_req_copy(inputs[i], k, &lim, &r);
                    cr_assert(rc == 0 || rc == want, "input %zu rl %zu hb %zu prefix %zu: %zd vs %zd", i, rl,
                              hb, k, rc, want);
                }
            }
        }
}

Test(limits, defaults)
{
    rw_http_limits lim;
    rw_http_limits_default(&lim);
    cr_expect_eq(lim.max_request_line, 8192);
    cr_expect_eq(lim.max_header_bytes, 16384);
    cr_expect_eq(lim.max_headers, RW_HTTP_MAX_HEADERS);
}

Test(request, empty_and_short_input)
{
    static rw_http_request r;
    cr_expect_eq(rw_http_parse_request("", 0, NULL, &r), 0);
    cr_expect_eq(parse_req_copy("\r", 1, NULL, &r), 0);
    cr_expect_eq(parse_req_copy("\r\n", 2, NULL, &r), 0);
    cr_expect_eq(parse_req_copy("\r\n\r", 3, NULL, &r), 0);
    cr_expect_eq(parse_req_copy("G", 1, NULL, &r), 0);
    cr_expect_eq(parse_req_copy("\n", 1, NULL, &r), -400);
}

/* ---- responses ---- */

struct resp_ok {
    const char *raw;
    int req_method;
    int status;
    const char *reason;
    int minor;
    int body;
    uint64_t cl;
    bool keep_alive;
};

static const struct resp_ok resp_ok[] = {
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", RW_METHOD_GET, 200, "OK", 1, RW_BODY_LENGTH, 5, true},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", RW_METHOD_GET, 200, "OK", 1, RW_BODY_CHUNKED, 0,
     true},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n", RW_METHOD_POST, 200, "OK", 1, RW_BODY_CHUNKED,
     0, true},
    {"HTTP/1.1 200 OK\r\n\r\n", RW_METHOD_GET, 200, "OK", 1, RW_BODY_UNTIL_CLOSE, 0, false},
    {"HTTP/1.1 500 Internal Server Error\r\nServer: x\r\n\r\n", RW_METHOD_GET, 500, "Internal Server Error",
     1, RW_BODY_UNTIL_CLOSE, 0, false},
    {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", RW_METHOD_GET, 200, "OK", 0, RW_BODY_LENGTH, 0, false},
    {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n", RW_METHOD_GET, 200, "OK", 0,
     RW_BODY_LENGTH, 2, true},
    {"HTTP/1.0 200 OK\r\n\r\n", RW_METHOD_GET, 200, "OK", 0, RW_BODY_UNTIL_CLOSE, 0, false},
    {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\n", RW_METHOD_GET, 200, "OK", 1,
     RW_BODY_LENGTH, 3, false},
    {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", RW_METHOD_HEAD, 200, "OK", 1, RW_BODY_NONE, 100, true},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", RW_METHOD_HEAD, 200, "OK", 1, RW_BODY_NONE, 0,
     true},
    {"HTTP/1.1 200 OK\r\n\r\n", RW_METHOD_HEAD, 200, "OK", 1, RW_BODY_NONE, 0, true},
    {"HTTP/1.1 204 No Content\r\n\r\n", RW_METHOD_GET, 204, "No Content", 1, RW_BODY_NONE, 0, true},
    {"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", RW_METHOD_DELETE, 204, "No Content", 1,
     RW_BODY_NONE, 0, true},
    {"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: \"x\"\r\n\r\n", RW_METHOD_GET, 304,
     "Not Modified", 1, RW_BODY_NONE, 1234, true},
    {"HTTP/1.1 100 Continue\r\n\r\n", RW_METHOD_PUT, 100, "Continue", 1, RW_BODY_NONE, 0, true},
    {"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", RW_METHOD_GET,
     101, "Switching Protocols", 1, RW_BODY_NONE, 0, true},
    {"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n", RW_METHOD_GET, 103, "Early Hints", 1,
     RW_BODY_NONE, 0, true},
    {"HTTP/1.1 200 Connection established\r\n\r\n", RW_METHOD_CONNECT, 200, "Connection established", 1,
     RW_BODY_NONE, 0, true},
    {"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 4\r\n\r\n", RW_METHOD_CONNECT, 407, "Proxy Auth", 1,
     RW_BODY_LENGTH, 4, true},
    {"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", RW_METHOD_GET, 200, "", 1, RW_BODY_LENGTH, 1, true},
    {"HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n", RW_METHOD_GET, 200, "", 1, RW_BODY_LENGTH, 1, true},
    {"HTTP/1.1 404 Not  Found\t(really) caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n", RW_METHOD_GET, 404,
     "Not  Found\t(really) caf\xc3\xa9", 1, RW_BODY_LENGTH, 0, true},
    {"HTTP/1.1 599 Odd\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\n", RW_METHOD_GET, 599, "Odd", 1,
     RW_BODY_LENGTH, 5, true},
    {"HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n", RW_METHOD_GET, 200, "OK", 1,
     RW_BODY_LENGTH, 0, true},
};

static void check_resp_ok(const struct resp_ok *v, size_t i, const rw_http_response *r, ssize_t rc,
                          size_t len)
{
    cr_assert_eq(rc, (ssize_t)len, "case %zu: rc %zd: %s", i, rc, v->raw);
    cr_expect_eq(r->head_len, len, "case %zu", i);
    cr_expect_eq(r->status, v->status, "case %zu", i);
    cr_expect(str_is(r->reason, v->reason[0] ? v->reason : NULL), "case %zu reason", i);
    cr_expect_eq(r->minor, v->minor, "case %zu", i);
    cr_expect_eq(r->body, v->body, "case %zu body %d", i, r->body);
    cr_expect_eq(r->content_length, v->cl, "case %zu", i);
    cr_expect_eq(r->keep_alive, v->keep_alive, "case %zu keep_alive", i);
}

Test(response, valid_vectors)
{
    static rw_http_response r;
    for (size_t i = 0; i < RW_ARRAY_LEN(resp_ok); i++) {
        const struct resp_ok *v = &resp_ok[i];
        size_t len = strlen(v->raw);
        char *b = dup_bytes(v->raw, len);
        check_resp_ok(v, i, &r, rw_http_parse_response(b, len, NULL, v->req_method, &r), len);
        free(b);
    }
}

Test(response, valid_vectors_byte_by_byte)
{
    static rw_http_response r;
    for (size_t i = 0; i < RW_ARRAY_LEN(resp_ok); i++) {
        const struct resp_ok *v = &resp_ok[i];
        size_t len = strlen(v->raw);
        for (size_t k = 0; k < len; k++) {
            char *b = dup_bytes(v->raw, k);
            ssize_t rc = rw_http_parse_response(b, k, NULL, v->req_method, &r);
            free(b);
            cr_assert_eq(rc, RW_HTTP_INCOMPLETE, "case %zu prefix %zu: rc %zd", i, k, rc);
        }
        char *b = malloc(len + 5);
        memcpy(b, v->raw, len);
        memcpy(b + len, "hello", 5);
        check_resp_ok(v, i, &r, rw_http_parse_response(b, len + 5, NULL, v->req_method, &r), len);
        free(b);
    }
}

Test(response, flags_and_headers)
{
    static rw_http_response r;
    const char *raw =
        "HTTP/1.1 200 OK\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\nContent-Length: 2\r\n\r\nhi";
    ssize_t rc = rw_http_parse_response(raw, strlen(raw), NULL, RW_METHOD_GET, &r);
    cr_assert_eq(rc, (ssize_t)strlen(raw) - 2);
    cr_expect_eq(r.flags, RW_HF_CONN_CLOSE | RW_HF_CONN_OTHER | RW_HF_HAS_CL);
    cr_expect_eq(r.nheaders, 3);
    cr_expect(rw_http_is_hop_by_hop(r.headers[1].name, r.headers, r.nheaders));
    cr_expect_not(rw_http_is_hop_by_hop(r.headers[2].name, r.headers, r.nheaders));
}

static const struct req_bad resp_bad[] = {
    B("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n", -502),
    B("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", -502),
    B("HTTP/1.1 304 Not Modified\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", -502),
    B("HTTP/1.2 200 OK\r\n\r\n", -502),
    B("HTTP/2 200 OK\r\n\r\n", -502),
    B("HTTP/2.0 200 OK\r\n\r\n", -502),
    B("HTTP/0.9 200 OK\r\n\r\n", -502),
    B("http/1.1 200 OK\r\n\r\n", -502),
    B("HTTP/1.1 20 OK\r\n\r\n", -502),
    B("HTTP/1.1 2000 OK\r\n\r\n", -502),
    B("HTTP/1.1 200OK\r\n\r\n", -502),
    B("HTTP/1.1 099 X\r\n\r\n", -502),
    B("HTTP/1.1 000 X\r\n\r\n", -502),
    B("HTTP/1.1 600 X\r\n\r\n", -502),
    B("HTTP/1.1 2x0 X\r\n\r\n", -502),
    B("HTTP/1.1  200 OK\r\n\r\n", -502),
    B("HTTP/1.1\t200 OK\r\n\r\n", -502),
    B("HTTP/1.1 200\t OK\r\n\r\n", -502),
    B("HTTP/1.1\r\n\r\n", -502),
    B(" HTTP/1.1 200 OK\r\n\r\n", -502),
    B("\r\nHTTP/1.1 200 OK\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\nContent-Length: 0\n\n", -502),
    B("HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n", -502),
    B("HTTP/1.1 200 O\rK\r\n\r\n", -502),
    B("HTTP/1.1 200 O\x01K\r\n\r\n", -502),
    B("HTTP/1.1 200 O\x7fK\r\n\r\n", -502),
    BN("HTTP/1.1 200 O\0K\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\n X: a\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nX : a\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\n: a\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nX a\r\n\r\n", -502),
    BN("HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", -502),
    B("HTTP/1.1 200 OK\r\nConnection: close;x\r\n\r\n", -502),
};

Test(response, invalid_vectors)
{
    static rw_http_response r;
    for (size_t i = 0; i < RW_ARRAY_LEN(resp_bad); i++) {
        const struct req_bad *v = &resp_bad[i];
        size_t len = v->len ? v->len : strlen(v->raw);
        bool seen = false;
        for (size_t k = 0; k <= len; k++) {
            char *b = dup_bytes(v->raw, k);
            ssize_t rc = rw_http_parse_response(b, k, NULL, RW_METHOD_GET, &r);
            free(b);
            if (k == len)
                cr_expect_eq(rc, -502, "case %zu: rc %zd: %s", i, rc, v->raw);
            else if (seen)
                cr_assert_eq(rc, -502, "case %zu prefix %zu: rc %zd", i, k, rc);
            else
                cr_assert(rc == 0 || rc == -502, "case %zu prefix %zu: rc %zd", i, k, rc);
            seen = rc != 0;
        }
    }
}

Test(response, limits)
{
    static rw_http_response r;
    rw_http_limits lim = {.max_request_line = 20, .max_header_bytes = 60, .max_headers = 2};
    const char *ok = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
    cr_expect_eq(rw_http_parse_response(ok, strlen(ok), &lim, RW_METHOD_GET, &r), (ssize_t)strlen(ok));
    const char *many = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    cr_expect_eq(rw_http_parse_response(many, strlen(many), &lim, RW_METHOD_GET, &r), -502);
    const char *longline = "HTTP/1.1 200 A very long reason\r\n\r\n";
    cr_expect_eq(rw_http_parse_response(longline, strlen(longline), &lim, RW_METHOD_GET, &r), -502);
    cr_expect_eq(rw_http_parse_response(longline, 22, &lim, RW_METHOD_GET, &r), -502);
    const char *big = "HTTP/1.1 200 OK\r\nA: 0123456789012345678901234567890123456789\r\n\r\n";
    cr_expect_eq(rw_http_parse_response(big, strlen(big), &lim, RW_METHOD_GET, &r), -502);
    cr_expect_eq(rw_http_parse_response(big, 59, &lim, RW_METHOD_GET, &r), 0);
    cr_expect_eq(rw_http_parse_response(big, 60, &lim, RW_METHOD_GET, &r), -502);
}

Test(response, after_interim)
{
    static rw_http_response r;
    const char *buf = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    size_t len = strlen(buf);
    ssize_t rc = rw_http_parse_response(buf, len, NULL, RW_METHOD_POST, &r);
    cr_assert_gt(rc, 0);
    cr_expect_eq(r.status, 100);
    rc = rw_http_parse_response(buf + rc, len - (size_t)rc, NULL, RW_METHOD_POST, &r);
    cr_assert_gt(rc, 0);
    cr_expect_eq(r.status, 201);
    cr_expect_eq(r.body, RW_BODY_LENGTH);
    cr_expect_eq(r.content_length, 2);
}

/* ---- hop-by-hop and reasons ---- */

Test(hop_by_hop, fixed_and_connection_tokens)
{
    static const char *fixed[] = {"Connection", "keep-alive",        "PROXY-CONNECTION", "te",
                                  "Trailer",    "transfer-encoding", "Upgrade"};
    for (size_t i = 0; i < RW_ARRAY_LEN(fixed); i++)
        cr_expect(rw_http_is_hop_by_hop((rw_str){fixed[i], strlen(fixed[i])}, NULL, 0), "%s", fixed[i]);
    static const char *plain[] = {"Host", "Content-Length", "Trailers", "TEX", "Keep", "X-Foo", ""};
    for (size_t i = 0; i < RW_ARRAY_LEN(plain); i++)
        cr_expect_not(rw_http_is_hop_by_hop((rw_str){plain[i], strlen(plain[i])}, NULL, 0), "%s", plain[i]);

    rw_http_header h[] = {
        {RW_STR("Connection"), RW_STR("close, X-Foo")},
        {RW_STR("X-Foo"), RW_STR("1")},
        {RW_STR("connection"), RW_STR(" x-bar ,,")},
        {RW_STR("X-Connection"), RW_STR("x-baz")},
    };
    cr_expect(rw_http_is_hop_by_hop(RW_STR("x-foo"), h, 4));
    cr_expect(rw_http_is_hop_by_hop(RW_STR("X-Bar"), h, 4));
    cr_expect(rw_http_is_hop_by_hop(RW_STR("close"), h, 4));
    cr_expect_not(rw_http_is_hop_by_hop(RW_STR("x-baz"), h, 4));
    cr_expect_not(rw_http_is_hop_by_hop(RW_STR("x-fo"), h, 4));
    cr_expect_not(rw_http_is_hop_by_hop(RW_STR("X-Foo "), h, 4));
    cr_expect_not(rw_http_is_hop_by_hop(RW_STR("x-bar"), h, 2));

    /* framing and routing survive a Connection token naming them */
    rw_http_header s[] = {{RW_STR("Connection"), RW_STR("Content-Length, host, TE, X-Auth")}};
    cr_expect_not(rw_http_is_hop_by_hop(RW_STR("Content-Length"), s, 1));
    cr_expect_not(rw_http_is_hop_by_hop(RW_STR("Host"), s, 1));
    cr_expect(rw_http_is_hop_by_hop(RW_STR("te"), s, 1));
    cr_expect(rw_http_is_hop_by_hop(RW_STR("x-auth"), s, 1));
}

Test(reason, phrases)
{
    cr_expect_str_eq(rw_http_reason(200), "OK");
    cr_expect_str_eq(rw_http_reason(404), "Not Found");
    cr_expect_str_eq(rw_http_reason(413), "Content Too Large");
    cr_expect_str_eq(rw_http_reason(414), "URI Too Long");
    cr_expect_str_eq(rw_http_reason(429), "Too Many Requests");
    cr_expect_str_eq(rw_http_reason(431), "Request Header Fields Too Large");
    cr_expect_str_eq(rw_http_reason(502), "Bad Gateway");
    cr_expect_str_eq(rw_http_reason(505), "HTTP Version Not Supported");
    cr_expect_str_eq(rw_http_reason(101), "Switching Protocols");
    cr_expect_str_eq(rw_http_reason(308), "Permanent Redirect");
    cr_expect_str_eq(rw_http_reason(0), "Unknown");
    cr_expect_str_eq(rw_http_reason(299), "Unknown");
    cr_expect_str_eq(rw_http_reason(-1), "Unknown");
    static const int all[] = {100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303,
                              304, 305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408,
                              409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 428,
                              429, 431, 451, 500, 501, 502, 503, 504, 505, 511};
    for (size_t i = 0; i < RW_ARRAY_LEN(all); i++)
        cr_expect_str_neq(rw_http_reason(all[i]), "Unknown", "%d", all[i]);
}

/* Rough speed check, printed only: a small request should take well under a
 * microsecond even in a debug build of this file. */
Test(request, speed)
{
    static rw_http_request r;
    const char *raw = "GET /api/v1/users/12345?fields=name,email HTTP/1.1\r\n"
                      "Host: api.example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n"
                      "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789\r\n\r\n";
    size_t len = strlen(raw);
    struct timespec a, b;
    const int n = 200000;
    clock_gettime(CLOCK_MONOTONIC, &a);
    ssize_t bad = 0;
    for (int i = 0; i < n; i++)
        bad |= rw_http_parse_request(raw, len, NULL, &r) - (ssize_t)len;
    clock_gettime(CLOCK_MONOTONIC, &b);
    cr_assert_eq(bad, 0);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n;
    cr_log_info("parse_request: %.0f ns for %zu bytes", ns, len);
}

/* ---- the persistence rule ---- */

Test(persist, one_rule_for_every_response)
{
    cr_assert_eq(rw_http_persist(true, 1), RW_PERSIST_KEEP);
    cr_assert_eq(rw_http_persist(true, 0), RW_PERSIST_KEEP_10);
    cr_assert_eq(rw_http_persist(false, 1), RW_PERSIST_CLOSE);
    cr_assert_eq(rw_http_persist(false, 0), RW_PERSIST_CLOSE);
    cr_assert_eq(rw_http_persist_line(RW_PERSIST_KEEP).len, 0);
    cr_assert(rw_str_eq(rw_http_persist_line(RW_PERSIST_KEEP_10), "Connection: keep-alive\r\n"));
    cr_assert(rw_str_eq(rw_http_persist_line(RW_PERSIST_CLOSE), "Connection: close\r\n"));
    /* what the parser says a request allows, for each version and header */
    static const struct {
        const char *req;
        int mode;
    } v[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", RW_PERSIST_KEEP},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", RW_PERSIST_CLOSE},
        {"GET / HTTP/1.0\r\n\r\n", RW_PERSIST_CLOSE},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", RW_PERSIST_KEEP_10},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", RW_PERSIST_KEEP_10},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        rw_http_request rq;
        cr_assert_gt(rw_http_parse_request(v[i].req, strlen(v[i].req), NULL, &rq), 0);
        cr_assert_eq(rw_http_persist(rq.keep_alive, rq.minor), v[i].mode, "%s", v[i].req);
    }
}
