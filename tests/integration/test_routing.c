/* test_routing.c - route matching (paths, hosts, methods, headers, query),
 * precedence, strip_path and rewrite, path normalisation, respond routes. */
#include <string.h>
#include <strings.h>

#include "harness.h"

#define RESPOND(name) "    respond: {status: 200, body: \"" name "\"}\n"

/* Respond routes answer with their own name; "a" routes go to upstream u1. */
/* clang-format off */
static const char *ROUTES =
    "services:\n"
    "  - name: a\n"
    "    instances: [{address: \"127.0.0.1:%d\"}]\n"
    "routes:\n"
    "  - name: exact\n"
    "    paths: [{exact: /p/exact}]\n" RESPOND("exact")
    "  - name: prefix-short\n"
    "    paths: [{prefix: /p/}]\n" RESPOND("prefix-short")
    "  - name: prefix-long\n"
    "    paths: [{prefix: /p/long/}]\n" RESPOND("prefix-long")
    "  - name: regex-p\n"
    "    paths: [{regex: \"^/p/r[0-9]+$\"}]\n" RESPOND("regex-p")
    "  - name: regex-q\n"
    "    paths: [{regex: \"^/q/r[0-9]+$\"}]\n" RESPOND("regex-q")
    "  - name: regex-q2\n"
    "    paths: [{regex: \"^/q/r[0-9]\"}]\n" RESPOND("regex-q2")
    "  - name: multi\n"
    "    paths: [{exact: /multi/one}, {prefix: /multi/two/}]\n" RESPOND("multi")
    "  - name: host-exact\n"
    "    hosts: [\"api.example.test\"]\n"
    "    paths: [{prefix: /h/}]\n" RESPOND("host-exact")
    "  - name: host-wild\n"
    "    hosts: [\"*.example.test\"]\n"
    "    paths: [{prefix: /h/}]\n" RESPOND("host-wild")
    "  - name: host-none\n"
    "    paths: [{prefix: /h/}]\n" RESPOND("host-none")
    "  - name: method-post\n"
    "    methods: [POST, PUT]\n"
    "    paths: [{prefix: /m/}]\n" RESPOND("method-post")
    "  - name: method-any\n"
    "    paths: [{prefix: /m/}]\n" RESPOND("method-any")
    "  - name: header-exact\n"
    "    paths: [{prefix: /hd/}]\n"
    "    headers: {X-Api-Version: \"2\"}\n" RESPOND("header-exact")
    "  - name: header-regex\n"
    "    paths: [{prefix: /hd/}]\n"
    "    headers: {X-Api-Version: {regex: \"^3[.][0-9]+$\"}}\n" RESPOND("header-regex")
    "  - name: header-present\n"
    "    paths: [{prefix: /hd/}]\n"
    "    headers: {X-Beta: {present: true}}\n" RESPOND("header-present")
    "  - name: header-none\n"
    "    paths: [{prefix: /hd/}]\n" RESPOND("header-none")
    "  - name: query-v1\n"
    "    paths: [{prefix: /qq/}]\n"
    "    query: {v: \"1\"}\n" RESPOND("query-v1")
    "  - name: query-none\n"
    "    paths: [{prefix: /qq/}]\n" RESPOND("query-none")
    "  - name: strip\n"
    "    paths: [{prefix: /strip/}]\n"
    "    strip_path: /strip\n"
    "    service: a\n"
    "  - name: rewrite\n"
    "    paths: [{prefix: /rw/}]\n"
    "    rewrite: {from: \"^/rw/([a-z]+)/(.*)$\", to: \"/new/$2/$1\"}\n"
    "    service: a\n"
    "  - name: admin\n"
    "    paths: [{exact: /admin}]\n"
    "    service: a\n"
    "  - name: pathless\n" RESPOND("pathless");
/* clang-format on */

typedef struct route_case {
    const char *method;
    const char *target;
    const char *headers;
    const char *want; /* response body */
} route_case;

static void run_cases(int port, const route_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h_conn *c = h_connect(port);
        h_resp r;
        int rc = h_request(c, cases[i].method, cases[i].target, cases[i].headers, NULL, 0, &r);
        cr_expect_eq(rc, H_OK, "%s %s [%s]: no response", cases[i].method, cases[i].target,
                     cases[i].headers ? cases[i].headers : "");
        if (rc == H_OK)
            cr_expect_str_eq(r.body, cases[i].want, "%s %s [%s]: want \"%s\", got %d \"%s\"", cases[i].method,
                             cases[i].target, cases[i].headers ? cases[i].headers : "", cases[i].want,
                             r.status, r.body);
        h_close(c);
    }
}

static h_proxy *start_routes(void)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    return h_proxy_run(h_fmt(ROUTES, u->port));
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

H_TEST(routing, path_precedence)
{
    static const route_case cases[] = {
        {"GET", "/p/exact", NULL, "exact"},
        {"GET", "/p/exact?x=1", NULL, "exact"},
        {"GET", "/p/exactly", NULL, "prefix-short"},
        {"GET", "/p/long/x", NULL, "prefix-long"},
        {"GET", "/p/long/", NULL, "prefix-long"},
        {"GET", "/p/long", NULL, "prefix-short"},
        {"GET", "/p/r12", NULL, "prefix-short"}, /* prefix beats regex */
        {"GET", "/q/r12", NULL, "regex-q"},      /* first regex in config order */
        {"GET", "/q/r1x", NULL, "regex-q2"},
        {"GET", "/multi/one", NULL, "multi"},
        {"GET", "/multi/two/three", NULL, "multi"},
        {"GET", "/multi/one/more", NULL, "pathless"},
        {"GET", "/zzz", NULL, "pathless"}, /* regex and paths beat path-less */
        {"GET", "/", NULL, "pathless"},
    };
    run_cases(start_routes()->port, cases, N(cases));
}

H_TEST(routing, hosts)
{
    static const route_case cases[] = {
        {"GET", "/h/1", "Host: api.example.test\r\n", "host-exact"},
        {"GET", "/h/1", "Host: API.Example.TEST:8080\r\n", "host-exact"},
        {"GET", "/h/1", "Host: foo.example.test\r\n", "host-wild"},
        {"GET", "/h/1", "Host: a.b.example.test\r\n", "host-wild"},
        {"GET", "/h/1", "Host: example.test\r\n", "host-none"},
        {"GET", "/h/1", "Host: other.test\r\n", "host-none"},
        /* absolute-form: the target's authority replaces Host (RFC 9112 3.2.2) */
        {"GET", "http://api.example.test/h/1", "Host: other.test\r\n", "host-exact"},
        {"GET", "/h/1", "Host: example.test.evil\r\n", "host-none"},
    };
    run_cases(start_routes()->port, cases, N(cases));
}

H_TEST(routing, methods_headers_query)
{
    static const route_case cases[] = {
        {"POST", "/m/x", "Content-Length: 0\r\n", "method-post"},
        {"PUT", "/m/x", "Content-Length: 0\r\n", "method-post"},
        {"GET", "/m/x", NULL, "method-any"},
        {"DELETE", "/m/x", NULL, "method-any"},
        {"GET", "/hd/x", "X-Api-Version: 2\r\n", "header-exact"},
        {"GET", "/hd/x", "x-api-version: 2\r\n", "header-exact"},
        {"GET", "/hd/x", "X-Api-Version: 3.14\r\n", "header-regex"},
        {"GET", "/hd/x", "X-Api-Version: 3.x\r\n", "header-none"},
        {"GET", "/hd/x", "X-Api-Version: 22\r\n", "header-none"},
        {"GET", "/hd/x", "X-Beta: whatever\r\n", "header-present"},
        {"GET", "/hd/x", NULL, "header-none"},
        {"GET", "/qq/x?v=1", NULL, "query-v1"},
        {"GET", "/qq/x?a=b&v=1", NULL, "query-v1"},
        {"GET", "/qq/x?v=%31", NULL, "query-v1"}, /* compared after %-decoding */
        {"GET", "/qq/x?v=2", NULL, "query-none"},
        {"GET", "/qq/x?v=10", NULL, "query-none"},
        {"GET", "/qq/x", NULL, "query-none"},
    };
    run_cases(start_routes()->port, cases, N(cases));
}

H_TEST(routing, strip_path_and_rewrite)
{
    static const route_case cases[] = {
        {"GET", "/strip/foo/bar", NULL, "u1 GET /foo/bar\n"},
        {"GET", "/strip/foo?q=1&r=%41", NULL, "u1 GET /foo?q=1&r=%41\n"},
        {"GET", "/strip/", NULL, "u1 GET /\n"},
        {"GET", "/rw/abc/def/g", NULL, "u1 GET /new/def/g/abc\n"},
        {"GET", "/rw/abc/def?z=1", NULL, "u1 GET /new/def/abc?z=1\n"},
    };
    run_cases(start_routes()->port, cases, N(cases));
}

H_TEST(routing, path_normalised_before_routing)
{
    static const route_case cases[] = {
        {"GET", "/admin", NULL, "u1 GET /admin\n"},
        {"GET", "/api/../admin", NULL, "u1 GET /admin\n"},
        {"GET", "/%61dmin", NULL, "u1 GET /admin\n"},
        {"GET", "/adm%69n", NULL, "u1 GET /admin\n"},
        {"GET", "//admin", NULL, "u1 GET /admin\n"},
        {"GET", "/./admin", NULL, "u1 GET /admin\n"},
        {"GET", "/x/y/./../../admin", NULL, "u1 GET /admin\n"},
        {"GET", "/../admin", NULL, "u1 GET /admin\n"},
        {"GET", "/%61dmin?x=%41", NULL, "u1 GET /admin?x=%41\n"},
        {"GET", "/a%2Fdmin", NULL, "pathless"}, /* %2F is data, not a separator */
        {"GET", "/strip/a/../b", NULL, "u1 GET /b\n"},
        {"GET", "/p/../strip/x", NULL, "u1 GET /x\n"},
    };
    run_cases(start_routes()->port, cases, N(cases));
}

H_TEST(routing, no_route_is_404_json)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_fmt("services:\n"
                                   "  - name: a\n"
                                   "    instances: [{address: \"127.0.0.1:%d\"}]\n"
                                   "routes:\n"
                                   "  - name: only\n"
                                   "    methods: [GET]\n"
                                   "    paths: [{exact: /only}]\n"
                                   "    service: a\n",
                                   u->port));
    h_conn *c = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/only", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 200);
    static const struct {
        const char *method, *target;
    } misses[] = {{"GET", "/other"}, {"GET", "/only/"}, {"POST", "/only"}, {"GET", "/Only"}};
    for (size_t i = 0; i < N(misses); i++) {
        int rc = h_request(c, misses[i].method, misses[i].target, NULL,
                           strcmp(misses[i].method, "POST") == 0 ? "" : NULL, 0, &r);
        if (rc != H_OK) {
            c = h_connect(p->port);
            rc = h_request(c, misses[i].method, misses[i].target, NULL,
                           strcmp(misses[i].method, "POST") == 0 ? "" : NULL, 0, &r);
        }
        cr_assert_eq(rc, H_OK);
        cr_expect_eq(r.status, 404, "%s %s: %d", misses[i].method, misses[i].target, r.status);
        cr_expect(r.body && r.body[0] == '{', "%s %s: 404 body not JSON: %s", misses[i].method,
                  misses[i].target, r.body);
    }
    cr_assert_eq(h_upstream_stats(u).requests, 1);
}

/* When r announced Connection: close, checks that c closes and returns a new
 * connection; otherwise returns c. */
static h_conn *reconnect_if_closing(h_conn *c, const h_resp *r, int port)
{
    const char *conn = h_hdr(r, "Connection");
    if (!conn || strcasecmp(conn, "close") != 0)
        return c;
    cr_assert(h_wait_closed(c, 2000, NULL), "said Connection: close but stayed open");
    return h_connect(port);
}

H_TEST(routing, respond_routes)
{
    h_proxy *p = h_proxy_run("routes:\n"
                             "  - name: created\n"
                             "    paths: [{exact: /made}]\n"
                             "    respond:\n"
                             "      status: 201\n"
                             "      headers: {X-Foo: bar, Content-Type: text/plain}\n"
                             "      body: \"hello\\n\"\n"
                             "  - name: empty\n"
                             "    paths: [{exact: /empty}]\n"
                             "    respond: {status: 204}\n"
                             "  - name: down\n"
                             "    paths: [{prefix: /down}]\n"
                             "    respond: {status: 503, headers: {Content-Type: application/json}, "
                             "body: \"{\\\"down\\\": true}\"}\n");
    h_conn *c = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/made", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 201);
    cr_assert_str_eq(r.body, "hello\n");
    cr_assert_str_eq(h_hdr(&r, "X-Foo") ? h_hdr(&r, "X-Foo") : "", "bar");
    cr_assert_str_eq(h_hdr(&r, "Content-Type") ? h_hdr(&r, "Content-Type") : "", "text/plain");
    cr_assert_eq(h_hdr_count(&r, "Content-Type"), 1);

    cr_assert_eq(h_request(c, "HEAD", "/made", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 201);
    cr_assert_eq(r.body_len, 0);

    /* a request body is consumed, not taken for the next request (closing
     * the connection after answering is allowed too, if announced) */
    cr_assert_eq(h_request(c, "POST", "/made", NULL, "GET /empty HTTP/1.1\r\n\r\n", 23, &r), H_OK);
    cr_assert_eq(r.status, 201);
    c = reconnect_if_closing(c, &r, p->port);
    cr_assert_eq(h_request(c, "GET", "/empty", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 204);
    cr_assert_eq(r.body_len, 0);

    cr_assert_eq(h_request(c, "GET", "/down/x", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 503);
    cr_assert_str_eq(r.body, "{\"down\": true}");

    /* a chunked request body to a respond route */
    h_sends(c, "POST /made HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n");
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 201);
    c = reconnect_if_closing(c, &r, p->port);
    cr_assert_eq(h_request(c, "GET", "/made", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 201);
}
