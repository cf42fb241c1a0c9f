/* test_accesslog.c - the access log: exactly one line per request, valid
 * JSON read by an independent parser (python3's json), every field, for
 * 200/101/400/404/408/413/429/431/502/504; request ids and trace ids; the
 * text format; a file sink reopened on SIGUSR1 (logrotate); errors_only,
 * sample and off; metrics. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* Reads a JSON-lines file with python3 and prints, per line,
 * "status|method|path|request_id|trace_id|error|route|service|attempts|ratelimit"
 * (paths /health and /ready left out: the harness's readiness checks);
 * exits 1 when a line is not a JSON object with every field. */
static const char *const CHECK_PY =
    "import json,sys\n"
    "keys=['time','request_id','trace_id','client_ip','method','host','path','query','protocol','status',"
    "'bytes_in','bytes_out','duration_ms','upstream_connect_ms','upstream_first_byte_ms','route','service',"
    "'instance','consumer','attempts','ratelimit','error','user_agent']\n"
    "for n,l in enumerate(open(sys.argv[1],'rb')):\n"
    "  d=json.loads(l.decode('utf-8'))\n"
    "  miss=[k for k in keys if k not in d]\n"
    "  if miss: print('line',n+1,'misses',miss,file=sys.stderr); sys.exit(1)\n"
    "  if not d['time'].endswith('Z') or len(d['time'])!=24: print('bad time',d['time'],file=sys.stderr); "
    "sys.exit(1)\n"
    "  if d['path'] in ('/health','/ready'): continue\n"
    "  "
    "print('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s'%(d['status'],d['method'],d['path'],d['request_id'],d['trace_id'],"
    "d['error'],d['route'],d['service'],d['attempts'],d['ratelimit']))\n";

static char *parse_log(const char *path)
{
    char *py = h_write_file("check.py", CHECK_PY);
    h_cmd *c;
    int code = h_run(&c, 10000, "python3 '%s' '%s'", py, path);
    cr_assert_eq(code, 0, "the access log is not valid JSON lines: %s", c->err);
    return c->out;
}

static int count_lines(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static int raw_status(int port, const char *bytes, int wait_ms)
{
    h_conn *c = h_connect(port);
    h_sends(c, bytes);
    if (wait_ms > 0)
        h_sleep_ms(wait_ms);
    h_resp r;
    int st = h_read_response(c, &r, 0) == H_OK ? r.status : -1;
    h_close(c);
    return st;
}

H_TEST(access_log, one_valid_line_per_request)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_upstream *dead = h_upstream_start("dead", NULL);
    int dead_port = dead->port;
    h_upstream_kill(dead);
    h_proxy *p = h_proxy_start(&(h_proxy_opts){
        .config = h_fmt("http:\n"
                        "  max_body_bytes: 10\n"
                        "  max_header_bytes: 2k\n"
                        "  max_request_line: 1k\n"
                        "  client_header_timeout: 300ms\n"
                        "services:\n"
                        "  - {name: app, instances: [\"127.0.0.1:%d\"]}\n"
                        "  - {name: slow, instances: [\"127.0.0.1:%d\"], timeouts: {first_byte: 200ms}}\n"
                        "  - {name: gone, instances: [\"127.0.0.1:%d\"]}\n"
                        "routes:\n"
                        "  - {name: limited, paths: [{prefix: /limited}], service: app,\n"
                        "     filters: [{rate_limit: {key: ip, rate: 1/m, burst: 1}}]}\n"
                        "  - {name: slow, paths: [{prefix: /delay}], service: slow}\n"
                        "  - {name: gone, paths: [{prefix: /gone}], service: gone}\n"
                        "  - {name: app, paths: [{prefix: /app}, {prefix: /upgrade}], service: app}\n",
                        u->port, u->port, dead_port),
        .workers = 2});
    h_resp r;
    const char *uuid = "123e4567-e89b-12d3-a456-426614174000";
    const char *trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    h_conn *c = h_connect(p->port);
    cr_assert_eq(
        h_request(c, "GET", "/app/x?q=1",
                  h_fmt("X-Request-Id: %s\r\ntraceparent: 00-%s-00f067aa0ba902b7-01\r\n", uuid, trace), NULL,
                  0, &r),
        H_OK);
    cr_assert_eq(r.status, 200);
    h_close(c);
    h_get(p->port, "/nowhere", &r);
    cr_expect_eq(r.status, 404);
    h_get(p->port, "/limited", &r);
    cr_expect_eq(r.status, 200);
    h_get(p->port, "/limited", &r);
    cr_expect_eq(r.status, 429);
    h_get(p->port, "/delay/1000", &r);
    cr_expect_eq(r.status, 504);
    h_get(p->port, "/gone", &r);
    cr_expect_eq(r.status, 502);
    cr_expect_eq(raw_status(p->port, "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 0), 400);
    cr_expect_eq(raw_status(p->port, "POST /app/b HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", 0),
                 413);
    cr_expect_eq(raw_status(p->port,
                            h_fmt("GET /app HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", h_repeat(4000, 'b')),
                            0),
                 431);
    cr_expect_eq(raw_status(p->port, "GET /app HTTP/1.1\r\nHost: x\r\n", 600), 408);
    /* an upgraded connection: one line when the tunnel ends */
    c = h_connect(p->port);
    h_sends(c, "GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_expect_eq(r.status, 101);
    h_close(c);
    h_sleep_ms(200);
    cr_assert_eq(WEXITSTATUS(h_proxy_stop(p, 0)), 0);

    char *got = parse_log(p->out_path);
    static const char *const want[] = {"200|GET|/app/x|",
                                       "404|GET|/nowhere|",
                                       "200|GET|/limited|",
                                       "429|GET|/limited|",
                                       "504|GET|/delay/1000|",
                                       "502|GET|/gone|",
                                       "400|None|None|",
                                       "413|POST|/app/b|",
                                       "431|",
                                       "408|",
                                       "101|GET|/upgrade|"};
    int lines = count_lines(got, "\n");
    cr_expect_eq(lines, (int)(sizeof(want) / sizeof(want[0])), "%d lines for %zu requests:\n%s", lines,
                 (sizeof(want) / sizeof(want[0])), got);
    for (size_t i = 0; i < (sizeof(want) / sizeof(want[0])); i++)
        cr_expect(strstr(got, want[i]) != NULL, "no line for \"%s\" in:\n%s", want[i], got);
    /* the client's UUID and trace id kept, the errors named */
    cr_expect(strstr(got, h_fmt("200|GET|/app/x|%s|%s|None|app|app|1|none", uuid, trace)) != NULL, "%s", got);
    cr_expect(strstr(got, "429|GET|/limited|") && strstr(got, "|rate_limited|limited|app|0|limited"), "%s",
              got);
    cr_expect(strstr(got, "|first_byte_timeout|slow|slow|1|none") != NULL, "%s", got);
    cr_expect(strstr(got, "|connect_refused|gone|gone|") != NULL, "%s", got);
    cr_expect(h_proxy_log_contains(p, "failed: Connection refused (request_id "),
              "the warning about a failed request does not carry its request id");
    cr_expect(strstr(got, "|no_route|None|None|0|none") != NULL, "%s", got);
    cr_expect(strstr(got, "|body_too_large|") && strstr(got, "|header_too_large|") &&
                  strstr(got, "|request_timeout|") && strstr(got, "|bad_request|"),
              "%s", got);
}

H_TEST(access_log, text_file_reopen_errors_only_sample_off)
{
    h_upstream *u;
    char *file = h_fmt("%s/access.log", h_tmpdir());
    const char *extra_fmt = "access_log: {path: \"%s\", format: text%s}\n%s";
    char *base = h_basic_config(u = h_upstream_start("u1", NULL), NULL, NULL);
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.config = h_fmt(extra_fmt, file, "", base)});
    h_resp r;
    h_get(p->port, "/one", &r);
    h_sleep_ms(150); /* written (the writer runs every 20 ms) */
    /* logrotate: move the file, SIGUSR1, the next lines go to a new file */
    char *rotated = h_fmt("%s.1", file);
    cr_assert_eq(rename(file, rotated), 0);
    h_proxy_signal(p, SIGUSR1);
    cr_assert(h_proxy_wait_log(p, "access log: reopened", 1, 2000));
    h_get(p->port, "/two", &r);
    h_sleep_ms(200);
    h_cmd *c;
    cr_assert_eq(h_run(&c, 5000, "grep -c '\"GET /one HTTP/1.1\" \"' '%s'", rotated), 0, "%s", c->out);
    cr_assert_eq(h_run(&c, 5000, "grep -c '\"GET /two HTTP/1.1\" \"' '%s'", file), 0,
                 "/two is not in the new file");
    cr_expect(
        h_run(&c, 5000,
              "grep -c ' 200 [0-9]* [0-9]* [0-9]* rid=[0-9a-f]* route=all service=svc instance=127' '%s'",
              file) == 0,
        "text line format: %s", c->out);

    /* errors_only: a 200 is not logged, a 404 is */
    h_proxy_write_config(p, h_fmt(extra_fmt, file, ", errors_only: true", base));
    h_proxy_signal(p, SIGHUP);
    cr_assert(h_proxy_wait_log(p, "reloaded", 1, 3000));
    h_get(p->port, "/three", &r);
    h_get(p->port, "/nope-404", &r);
    /* sample: 0 keeps errors only too */
    h_proxy_write_config(p, h_fmt(extra_fmt, file, ", sample: 0", base));
    h_proxy_signal(p, SIGHUP);
    cr_assert(h_proxy_wait_log(p, "reloaded", 2, 3000));
    h_get(p->port, "/four", &r);
    h_sleep_ms(200);
    cr_expect_neq(h_run(&c, 5000, "grep -q 'GET /three ' '%s'", file), 0, "errors_only logged a 200");
    cr_expect_neq(h_run(&c, 5000, "grep -q 'GET /four ' '%s'", file), 0, "sample: 0 logged a 200");
    h_proxy_stop(p, 0);

    /* --access-log off: nothing on stdout */
    p = h_proxy_start(&(h_proxy_opts){.config = base, .args = {"--access-log", "off"}});
    h_get(p->port, "/five", &r);
    h_proxy_stop(p, 0);
    cr_expect_eq(h_run(&c, 5000, "test ! -s '%s'", p->out_path), 0, "--access-log off still wrote lines");

    /* metrics */
    int admin = h_free_port();
    p = h_proxy_start(&(h_proxy_opts){.config = h_fmt("admin: \"127.0.0.1:%d\"\n%s", admin, base)});
    h_get(p->port, "/six", &r);
    h_sleep_ms(200);
    h_get(admin, "/metrics", &r);
    cr_expect(strstr(r.body, "ringway_access_log_dropped_total 0") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "ringway_access_log_lines_total ") != NULL);
}

/* ---- labelled metrics ---------------------------------------------------- */

H_TEST(metrics, by_route_and_service_with_histograms)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_upstream *dead = h_upstream_start("dead", NULL);
    int dead_port = dead->port;
    h_upstream_kill(dead);
    int admin = h_free_port();
    h_proxy *p = h_proxy_start(&(h_proxy_opts){
        .config = h_fmt("admin: \"127.0.0.1:%d\"\n"
                        "consumers:\n"
                        "  - {name: alice, keys: [\"alice-key-1\"]}\n"
                        "services:\n"
                        "  - {name: app, instances: [\"127.0.0.1:%d\"]}\n"
                        "  - {name: gone, instances: [\"127.0.0.1:%d\"]}\n"
                        "routes:\n"
                        "  - {name: app, paths: [{prefix: /app}, {prefix: /status}], service: app}\n"
                        "  - {name: gone, paths: [{prefix: /gone}], service: gone}\n"
                        "  - name: keyed\n"
                        "    paths: [{prefix: /keyed}]\n"
                        "    service: app\n"
                        "    filters:\n"
                        "      - key_auth: {header: X-API-Key}\n"
                        "      - rate_limit: {name: keyed-per-consumer, key: consumer, rate: 1/min}\n",
                        admin, u->port, dead_port),
        .workers = 2,
        .expect_errors = true});
    h_resp r;
    for (int i = 0; i < 5; i++)
        h_get(p->port, "/app/x", &r);
    for (int i = 0; i < 2; i++) {
        h_get(p->port, "/status/500", &r); /* the upstream's own 500 */
        cr_expect_eq(r.status, 500);
    }
    h_get(p->port, "/gone", &r); /* ringway's 502 */
    cr_expect_eq(r.status, 502);
    h_get(p->port, "/nowhere", &r);
    h_get(p->port, "/keyed", &r); /* no key */
    cr_expect_eq(r.status, 401);
    for (int i = 0; i < 2; i++) {
        h_conn *k = h_connect(p->port);
        cr_assert_eq(h_request(k, "GET", "/keyed", i == 0 ? "X-API-Key: wrong\r\n" : "X-API-Key: nope\r\n",
                               NULL, 0, &r),
                     H_OK);
        cr_expect_eq(r.status, 401);
        h_close(k);
    }
    for (int i = 0; i < 3; i++) { /* one a minute: 200, then 429 twice */
        h_conn *k = h_connect(p->port);
        cr_assert_eq(h_request(k, "GET", "/keyed", "X-API-Key: alice-key-1\r\n", NULL, 0, &r), H_OK);
        cr_expect_eq(r.status, i == 0 ? 200 : 429);
        h_close(k);
    }
    h_sleep_ms(100);
    h_get(admin, "/metrics", &r);
    char *ok_app =
        h_fmt("ringway_upstream_requests_total{service=\"app\",instance=\"127.0.0.1:%d\",result=\"ok\"} 6\n",
              u->port);
    char *bad_app =
        h_fmt("ringway_upstream_requests_total{service=\"app\",instance=\"127.0.0.1:%d\",result=\"5xx\"} 2\n",
              u->port);
    char *failed_gone = h_fmt("ringway_upstream_requests_total{service=\"gone\",instance=\"127.0.0.1:%d\","
                              "result=\"failed\"} 2\n", /* connect failures are retried once */
                              dead_port);
    const char *const want[] = {
        "ringway_requests_total{route=\"app\",service=\"app\",code_class=\"2xx\"} 5\n",
        "ringway_requests_total{route=\"app\",service=\"app\",code_class=\"5xx\"} 2\n",
        "ringway_requests_total{route=\"gone\",service=\"gone\",code_class=\"5xx\"} 1\n",
        "ringway_local_responses_total{route=\"gone\",code=\"502\",reason=\"connect_refused\"} 1\n",
        "ringway_local_responses_total{route=\"\",code=\"404\",reason=\"no_route\"} 1\n",
        "ringway_request_duration_seconds_count{route=\"app\"} 7\n",
        "ringway_request_duration_seconds_bucket{route=\"app\",le=\"+Inf\"} 7\n",
        "ringway_upstream_response_seconds_count{service=\"app\"} 8\n",
        ok_app,
        bad_app,
        failed_gone,
        "ringway_auth_failures_total{route=\"keyed\",reason=\"key_missing\"} 1\n",
        "ringway_auth_failures_total{route=\"keyed\",reason=\"key_invalid\"} 2\n",
        "ringway_ratelimit_rejected_total{limit=\"keyed-per-consumer\"} 2\n",
        "ringway_local_responses_total{route=\"keyed\",code=\"429\",reason=\"rate_limited\"} 2\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_expect(strstr(r.body, want[i]) != NULL, "/metrics lacks %s", want[i]);
    cr_expect(strstr(r.body, "ringway_local_responses_total{route=\"app\"") == NULL,
              "an upstream's 500 counted as ringway's own answer");
    h_cmd *c;
    if (h_run(&c, 5000, "command -v promtool") == 0) {
        char *file = h_write_file("metrics.txt", r.body);
        cr_expect_eq(h_run(&c, 10000, "promtool check metrics < '%s'", file), 0, "promtool: %s%s", c->out,
                     c->err);
    }
}

/* ---- the dashboard ------------------------------------------------------- */

H_TEST(metrics, dashboard_shows_the_requests_sent)
{
    /* Headless Chromium when installed (the page as a browser renders it);
     * else node running the page's own script against the live endpoints. */
    h_cmd *c;
    bool chromium = h_run(&c, 5000, "command -v chromium") == 0;
    if (!chromium && h_run(&c, 5000, "command -v node") != 0)
        cr_skip_test("neither chromium nor node is installed");
    h_upstream *u = h_upstream_start("u1", NULL);
    int admin = h_free_port();
    h_proxy *p = h_proxy_run(h_fmt("admin: \"127.0.0.1:%d\"\n"
                                   "services:\n  - {name: api, instances: [\"127.0.0.1:%d\"]}\n"
                                   "routes:\n  - {name: all, paths: [{prefix: /}], service: api}\n",
                                   admin, u->port));
    h_resp r;
    for (int i = 0; i < 23; i++)
        h_get(p->port, "/x", &r);
    h_get(admin, "/dashboard", &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "id=\"total-requests\"") != NULL);
    const char *root = getenv("RW_SOURCE_ROOT");
    int code = chromium ? h_run(&c, 60000,
                                "chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=3000 "
                                "--dump-dom http://127.0.0.1:%d/dashboard",
                                admin)
                        : h_run(&c, 20000, "node '%s/tests/integration/dashboard_check.js' %d", root, admin);
    cr_assert_eq(code, 0, "%s", c->err);
    /* the route's row counts exactly the requests sent (the total also has
     * the harness's /health checks, which take no route) */
    cr_expect(strstr(c->out, "<td>all</td><td>api</td><td>23</td>") != NULL,
              "the dashboard does not show the 23 requests sent on route all:\n%s", c->out);
    cr_expect(strstr(c->out, chromium ? "id=\"total-requests\">" : "total-requests=") != NULL, "%s", c->out);
}
