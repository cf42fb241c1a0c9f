/* test_lifecycle.c - what an operator and outside clients see of a process's
 * life: one persistence rule for every response (ab -k, HTTP/1.0), the admin
 * port served without blocking, the process-wide connection cap, the
 * io_uring probe under a seccomp filter, request trailers, a response that
 * ends exactly one way, and the shutdown sequence (shutdown delay, drain,
 * exit status). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static bool have(const char *tool)
{
    h_cmd *c;
    return h_run(&c, 5000, "command -v %s", tool) == 0;
}

/* A config: a respond route, a rate-limited route (1 request a minute), and
 * everything else to upstream u. */
static char *kinds_config(const h_upstream *u, int admin_port)
{
    return h_fmt("admin: \"127.0.0.1:%d\"\n"
                 "services:\n"
                 "  - name: svc\n"
                 "    instances: [{address: \"127.0.0.1:%d\"}]\n"
                 "routes:\n"
                 "  - name: fixed\n"
                 "    paths: [{exact: /fixed}]\n"
                 "    respond: {status: 200, body: \"fixed\"}\n"
                 "  - name: limited\n"
                 "    paths: [{exact: /limited}]\n"
                 "    service: svc\n"
                 "    filters:\n"
                 "      - rate_limit: {key: route, rate: 1/min}\n"
                 "  - name: proxied\n"
                 "    paths: [{prefix: /p/}]\n"
                 "    service: svc\n",
                 admin_port, u->port);
}

/* Runs ab -k -c 1 -n 50 on url; asserts 50 complete, 0 failed, all kept alive. */
static void ab_keepalive(const char *url)
{
    h_cmd *c;
    int code = h_run(&c, 20000, "ab -k -c 1 -n 50 -s 5 '%s'", url);
    cr_assert_eq(code, 0, "ab -k on %s failed (%d): %s %s", url, code, c->out, c->err);
    cr_assert(strstr(c->out, "Complete requests:      50") != NULL, "ab -k on %s:\n%s", url, c->out);
    cr_assert(strstr(c->out, "Failed requests:        0") != NULL, "ab -k on %s:\n%s", url, c->out);
    cr_assert(strstr(c->out, "Keep-Alive requests:    50") != NULL,
              "ab -k on %s: not every response kept the "
              "connection:\n%s",
              url, c->out);
}

H_TEST(lifecycle, http10_keepalive_on_every_response_kind)
{
    if (!have("ab"))
        cr_skip_test("ab (apache2-utils) is not installed");
    h_upstream *u = h_upstream_start("u1", NULL);
    int admin = h_free_port();
    h_proxy *p = h_proxy_run(kinds_config(u, admin));
    /* use the limit up first, so every request of the run answers 429 */
    h_resp r;
    h_get(p->port, "/limited", &r);
    static const char *const data_paths[] = {"/fixed", "/nope", "/health", "/ready", "/limited", "/p/x"};
    for (size_t i = 0; i < sizeof(data_paths) / sizeof(data_paths[0]); i++)
        ab_keepalive(h_fmt("http://127.0.0.1:%d%s", p->port, data_paths[i]));
    static const char *const admin_paths[] = {"/health", "/ready", "/status", "/metrics", "/nope"};
    for (size_t i = 0; i < sizeof(admin_paths) / sizeof(admin_paths[0]); i++)
        ab_keepalive(h_fmt("http://127.0.0.1:%d%s", admin, admin_paths[i]));
}

/* The raw HTTP/1.0 exchange ab makes: keep-alive asked, then said and kept. */
H_TEST(lifecycle, http10_keepalive_said_and_kept)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    int admin = h_free_port();
    h_proxy *p = h_proxy_run(kinds_config(u, admin));
    int ports[2] = {p->port, admin};
    const char *paths[2] = {"/fixed", "/health"};
    for (int k = 0; k < 2; k++) {
        h_conn *c = h_connect(ports[k]);
        for (int i = 0; i < 3; i++) {
            h_sendf(c, "GET %s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", paths[k]);
            h_resp r;
            cr_assert_eq(h_read_response(c, &r, 0), H_OK, "port %d request %d", ports[k], i);
            cr_assert_eq(r.status, 200);
            cr_assert(h_hdr(&r, "connection") && strcasecmp(h_hdr(&r, "connection"), "keep-alive") == 0,
                      "an HTTP/1.0 keep-alive response must say so:\n%s", r.head);
        }
        /* a plain HTTP/1.0 request: answered, then closed */
        h_sends(c, "GET /health HTTP/1.0\r\n\r\n");
        h_resp r;
        cr_assert_eq(h_read_response(c, &r, 0), H_OK);
        cr_assert(h_hdr(&r, "connection") && strcasecmp(h_hdr(&r, "connection"), "close") == 0, "%s", r.head);
        cr_assert(h_wait_closed(c, 2000, NULL), "port %d kept an HTTP/1.0 connection without keep-alive open",
                  ports[k]);
    }
}

H_TEST(lifecycle, admin_head_has_no_body_and_405_says_allow)
{
    int admin = h_free_port();
    h_proxy *p = h_proxy_run(h_fmt("admin: \"127.0.0.1:%d\"\n", admin));
    (void)p;
    h_conn *c = h_connect(admin);
    h_resp r;
    cr_assert_eq(h_request(c, "HEAD", "/status", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 0);
    cr_assert(h_hdr(&r, "content-length") && atol(h_hdr(&r, "content-length")) > 0);
    /* the connection is still in step: the next answer is whole */
    cr_assert_eq(h_request(c, "GET", "/health", NULL, NULL, 0, &r), H_OK);
    cr_assert_str_eq(r.body, "{\"status\":\"ok\"}\n");
    cr_assert_eq(h_request(c, "GET", "/reload", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 405);
    cr_assert_str_eq(h_hdr(&r, "allow"), "POST");
}

/* ---- request trailers ---- */

H_TEST(lifecycle, request_trailers_never_reach_the_upstream)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, NULL);
    h_conn *c = h_connect(p->port);
    h_sends(c, "POST /trailers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n0\r\nX-Consumer-ID: c-evil\r\nContent-Length: 5\r\nHost: evil\r\n"
               "X-Forwarded-For: 6.6.6.6\r\nX-Checksum: abc\r\n\r\n");
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 0, "trailers reached the upstream:\n%s", r.body);
    /* the body itself arrived whole, and the connection is in step */
    h_sends(c, "POST /echo-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "3\r\nabc\r\n2\r\nde\r\n0\r\nX-A: 1\r\n\r\n");
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_str_eq(r.body, "abcde");
    /* trailers split over many reads */
    h_sends(c,
            "POST /trailers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nX-Con");
    h_sleep_ms(50);
    h_sends(c, "sumer-ID: c-evil\r\n");
    h_sleep_ms(50);
    h_sends(c, "\r\n");
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_assert_eq(r.body_len, 0, "split trailers reached the upstream:\n%s", r.body);
    cr_assert_eq(h_request(c, "GET", "/x", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 200);
}

/* ---- max_conns ---- */

ParameterizedTestParameters(lifecycle, max_conns_exact_with_two_workers)
{
    static int ns[] = {1, 2, 3, 5};
    return cr_make_param_array(int, ns, sizeof(ns) / sizeof(ns[0]));
}

H_PTEST(int *, np, lifecycle, max_conns_exact_with_two_workers, .description = "N = 1, 2, 3, 5")
{
    int n = *np;
    int admin = h_free_port();
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.config = h_fmt("admin: \"127.0.0.1:%d\"\n", admin),
                                               .workers = 2,
                                               .no_wait = true,
                                               .args = {"--max-conns", h_fmt("%d", n)}});
    cr_assert(h_wait_status(admin, "/health", 200, 5000) || true);
    h_sleep_ms(300);
    h_conn *c[8];
    int served = 0;
    for (int i = 0; i < n + 3; i++) {
        c[i] = h_connect(p->port);
        c[i]->timeout_ms = 2000;
        h_resp r;
        if (h_request(c[i], "GET", "/health", NULL, NULL, 0, &r) == H_OK && r.status == 200)
            served++;
    }
    cr_assert_eq(served, n, "--max-conns %d with 2 workers served %d concurrent connections", n, served);
    /* closing one frees its slot */
    h_close(c[0]);
    h_sleep_ms(200);
    h_conn *again = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(again, "GET", "/health", NULL, NULL, 0, &r), H_OK,
                 "a freed slot was not reusable");
    h_get(admin, "/metrics", &r);
    cr_assert(strstr(r.body, "ringway_connections_rejected_total{reason=\"max_conns\"} 3") != NULL,
              "refusals not counted:\n%s", r.body);
    cr_assert(h_proxy_log_contains(p, "max_conns"), "refusals not logged:\n%s", h_proxy_log(p));
}

/* ---- the io_uring probe ---- */

H_TEST(lifecycle, io_auto_falls_back_when_enter_is_denied)
{
    const char *sx = getenv("RW_SECCOMP_EXEC");
    if (sx == NULL || *sx == '\0')
        cr_skip_test("RW_SECCOMP_EXEC is not set");
    int port = h_free_port(), admin = h_free_port();
    h_cmd *c = h_cmd_start("exec '%s' --deny-enter -- '%s' --io auto --workers 2 --listen 127.0.0.1:%d "
                           "--admin 127.0.0.1:%d",
                           sx, h_binary(), port, admin);
    bool up = h_wait_status(port, "/health", 200, 5000);
    h_resp r;
    if (up)
        h_get(admin, "/status", &r);
    kill(c->pid, SIGTERM);
    int code = h_cmd_wait(c, 5000);
    cr_assert(up, "--io auto under a filter that denies io_uring_enter did not serve (exit %d):\n%s", code,
              c->err);
    cr_assert(strstr(r.body, "\"io\":\"epoll\"") != NULL, "/status does not say epoll:\n%s", r.body);
    cr_assert(strstr(c->err, "io_uring is not available") != NULL, "no word about the fallback:\n%s", c->err);
    cr_assert(strstr(c->err, "on epoll") != NULL, "the start-up line does not say epoll:\n%s", c->err);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, c->err);

    /* --io uring under the same filter: a clear refusal, not a worker crash */
    h_cmd *u;
    code = h_run(&u, 5000, "exec '%s' --deny-enter -- '%s' --io uring --listen 127.0.0.1:%d", sx, h_binary(),
                 h_free_port());
    cr_assert_eq(code, 1, "--io uring with io_uring_enter denied exited %d:\n%s", code, u->err);
    cr_assert(strstr(u->err, "io_uring is not available") != NULL, "%s", u->err);
}

H_TEST(lifecycle, build_info_names_the_backend)
{
    int admin = h_free_port();
    h_proxy *p = h_proxy_run(h_fmt("admin: \"127.0.0.1:%d\"\n", admin));
    h_resp r;
    h_get(admin, "/metrics", &r);
    const char *io = strcmp(h_io(), "epoll") == 0 ? "epoll" : "io_uring";
    cr_assert(strstr(r.body, h_fmt("io=\"%s\"} 1", io)) != NULL, "ringway_build_info lacks io=%s:\n%s", io,
              r.body);
    cr_assert(strstr(r.body, "ringway_build_info{version=\"") != NULL, "%s", r.body);
    cr_assert(h_proxy_log_contains(p, "workers (set: 1)"),
              "the start-up line does not say how workers was chosen:\n%s", h_proxy_log(p));
}

/* ---- the admin port never blocks the control thread ---- */

H_TEST(lifecycle, dribbling_admin_client_does_not_delay_sigterm)
{
    int admin = h_free_port();
    h_proxy *p = h_proxy_start(&(h_proxy_opts){
        .config = h_fmt("admin: \"127.0.0.1:%d\"\nshutdown_delay: 3s\n", admin), .drain = "2s"});
    /* three slow clients, one byte every 100 ms */
    h_conn *d[3];
    for (int i = 0; i < 3; i++)
        d[i] = h_connect(admin);
    const char *req = "GET /status HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    for (int k = 0; k < 5; k++) {
        for (int i = 0; i < 3; i++)
            h_send(d[i], req + k, 1);
        h_sleep_ms(100);
    }
    int64_t t0 = h_now_ms();
    h_proxy_signal(p, SIGTERM);
    /* the data port's /ready turns 503 at once, although the admin thread has clients mid-request */
    bool turned = h_wait_status(p->port, "/ready", 503, 2000);
    int64_t took = h_now_ms() - t0;
    cr_assert(turned, "/ready never answered 503 after SIGTERM");
    cr_assert(took <= 200, "SIGTERM took effect after %lld ms with dribbling admin clients", (long long)took);
    /* the admin port still answers while they dribble on */
    h_resp r;
    h_get(admin, "/ready", &r);
    cr_assert_eq(r.status, 503);
    h_get(admin, "/status", &r);
    cr_assert(strstr(r.body, "\"state\":\"shutting_down\"") != NULL, "%s", r.body);
    /* a second SIGTERM skips the rest of the delay */
    h_proxy_signal(p, SIGTERM);
    int st = h_proxy_wait_exit(p, 2500);
    cr_assert_neq(st, -1, "a second SIGTERM did not skip the shutdown delay");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
}

H_TEST(lifecycle, admin_header_timeout_and_slot_eviction)
{
    int admin = h_free_port();
    h_proxy *p = h_proxy_run(h_fmt("admin: \"127.0.0.1:%d\"\n", admin));
    (void)p;
    /* 70 idle connections (the cap is 64): a probe still gets through */
    h_conn *idle[70];
    for (int i = 0; i < 70; i++)
        idle[i] = h_connect(admin);
    h_sleep_ms(100);
    h_resp r;
    h_get(admin, "/health", &r);
    cr_assert_eq(r.status, 200);
    /* a partial head is answered 408 within the header timeout (5 s) */
    h_conn *slow = h_connect(admin);
    h_sends(slow, "GET /status HTTP/1.1\r\n");
    slow->timeout_ms = 8000;
    cr_assert_eq(h_read_response(slow, &r, 0), H_OK, "a stalled admin head got no answer");
    cr_assert_eq(r.status, 408);
    cr_assert(h_wait_closed(slow, 2000, NULL));
    for (int i = 0; i < 70; i++)
        h_close(idle[i]);
}

/* ---- shutdown for an edge behind a load balancer ---- */

static long wrk_field(const char *out, const char *label)
{
    const char *p = strstr(out, label);
    return p ? strtol(p + strlen(label), NULL, 10) : 0;
}

H_TEST(lifecycle, shutdown_delay_serves_under_load_then_drains)
{
    if (!have("wrk"))
        cr_skip_test("wrk is not installed");
    h_upstream *u = h_upstream_start("u1", NULL);
    int admin = h_free_port();
    h_proxy *p = h_proxy_start(
        &(h_proxy_opts){.config = h_fmt("%sadmin: \"127.0.0.1:%d\"\n", h_basic_config(u, NULL, NULL), admin),
                        .workers = 2,
                        .drain = "5s",
                        .args = {"--shutdown-delay", "3s"}});
    h_cmd *w = h_cmd_start("wrk -t2 -c64 -d2s http://127.0.0.1:%d/x", p->port);
    h_sleep_ms(200);
    int64_t t0 = h_now_ms();
    h_proxy_signal(p, SIGTERM);
    bool ready503 = h_wait_status(admin, "/ready", 503, 1000);
    int64_t took = h_now_ms() - t0;
    cr_assert(ready503 && took <= 100, "/ready answered 503 after %lld ms (want within 100)",
              (long long)took);
    int code = h_cmd_wait(w, 10000);
    cr_assert_eq(code, 0, "wrk failed (%d): %s %s", code, w->out, w->err);
    cr_assert_null(strstr(w->out, "Socket errors:"), "socket errors during the shutdown delay:\n%s", w->out);
    cr_assert_eq(wrk_field(w->out, "Non-2xx or 3xx responses:"), 0, "non-2xx during the delay:\n%s", w->out);
    /* still inside the delay: a new connection is served */
    h_resp r;
    h_get(p->port, "/x", &r);
    cr_assert_eq(r.status, 200);
    /* after it: the listeners close, the process drains and exits 0 */
    int st = h_proxy_wait_exit(p, 5000);
    cr_assert_neq(st, -1, "still running 2 s after the shutdown delay ended");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    cr_assert(h_proxy_log_contains(p, "shutdown delay"), "%s", h_proxy_log(p));
    cr_assert_null(h_try_connect("127.0.0.1", p->port), "the data port still accepts after the exit");
}

H_TEST(lifecycle, drain_deadline_cut_is_an_exit_status)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_start(
        &(h_proxy_opts){.config = h_basic_config(u, NULL, NULL), .drain = "500ms", .expect_errors = true});
    h_conn *c = h_connect(p->port);
    h_sends(c, "GET /delay/5000 HTTP/1.1\r\nHost: x\r\n\r\n");
    h_sleep_ms(200);
    h_proxy_signal(p, SIGTERM);
    int st = h_proxy_wait_exit(p, 4000);
    cr_assert_neq(st, -1, "ringway ignored the drain timeout");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3, "a drain cut short should exit 3, got status %d", st);
    cr_assert(h_proxy_log_contains(p, "1 requests were still in flight"),
              "the log does not count the cut:\n%s", h_proxy_log(p));
}

/* ---- a response ends one way ---- */

H_TEST(lifecycle, slow_client_is_not_an_upstream_timeout)
{
    /* The upstream answers at once; the client waits 2 s before it reads a
     * 32 MiB body (more than the socket buffers hold), past the 1 s first_byte
     * timeout. The upstream did nothing wrong:
     * the body arrives whole and no upstream timeout is counted. */
    int admin = h_free_port();
    h_upstream *u = h_upstream_start("u1", NULL);
    char *cfg = h_fmt("admin: \"127.0.0.1:%d\"\n%s", admin,
                      h_basic_config(u, NULL, "    timeouts: {first_byte: 1s, total: 30s}\n"));
    h_proxy *p = h_proxy_run(cfg);
    h_conn *c = h_connect(p->port);
    h_sends(c, "GET /bytes/33554432 HTTP/1.1\r\nHost: x\r\n\r\n");
    h_sleep_ms(2000);
    h_resp r;
    c->timeout_ms = 10000;
    cr_assert_eq(h_read_response(c, &r, H_RESP_DISCARD), H_OK, "the response was cut");
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 33554432);
    cr_assert_eq(r.body_fnv, h_pattern_fnv(33554432));
    h_get(admin, "/metrics", &r);
    cr_assert(strstr(r.body, "ringway_upstream_timeouts_total 0") != NULL,
              "a slow client counted as an upstream "
              "timeout:\n%s",
              r.body);
    cr_assert(!h_proxy_log_contains(p, "timed out"), "%s", h_proxy_log(p));
}

/* ---- workers: auto under a real cgroup CPU quota ---- */

H_TEST(lifecycle, workers_auto_follows_the_cgroup_quota)
{
    /* A cgroup v1 "cpu" hierarchy we may write (root, as CI runs); elsewhere
     * the fake trees of tests/unit/test_cpus.c cover the arithmetic. */
    char *cg = h_fmt("/sys/fs/cgroup/cpu/rwtest-%d", (int)getpid());
    if (mkdir(cg, 0755) != 0)
        cr_skip_test("cannot create a cgroup v1 cpu group here (%s)", cg);
    h_cmd *c;
    FILE *f = fopen(h_fmt("%s/cpu.cfs_quota_us", cg), "w");
    bool ok = f != NULL && fputs("50000", f) >= 0;
    if (f != NULL)
        ok = fclose(f) == 0 && ok;
    int code = -1;
    if (ok)
        code = h_run(&c, 10000,
                     "echo $$ > '%s/tasks' && exec timeout --preserve-status -s TERM 1 '%s' --listen "
                     "127.0.0.1:%d --admin 127.0.0.1:%d",
                     cg, h_binary(), h_free_port(), h_free_port());
    rmdir(cg);
    if (!ok)
        cr_skip_test("cannot set a CPU quota on %s", cg);
    cr_assert_eq(code, 0, "exit %d: %s", code, c->err);
    cr_assert(strstr(c->err, "1 workers (auto: 1 of ") != NULL &&
                  strstr(c->err, "cpu.cfs_quota_us 50000/") != NULL,
              "a 0.5-CPU quota did not give one worker:\n%s", c->err);
}

/* ---- a safe admin port ---- */

/* POST /reload on port with an optional Authorization value; returns the status. */
static int post_reload(int port, const char *auth)
{
    h_conn *c = h_connect(port);
    h_resp r;
    int rc = h_request(c, "POST", "/reload", auth ? h_fmt("Authorization: %s\r\n", auth) : NULL, NULL, 0, &r);
    cr_assert_eq(rc, H_OK);
    if (r.status == 401)
        cr_assert(h_hdr(&r, "WWW-Authenticate") != NULL, "a 401 without WWW-Authenticate");
    h_close(c);
    return r.status;
}

H_TEST(lifecycle, admin_changes_need_a_token_off_loopback)
{
    int admin = h_free_port();
    /* a wildcard admin address without a token: reads yes, changes no, and a warning */
    h_proxy *p = h_proxy_run(h_fmt("admin: \"0.0.0.0:%d\"\n", admin));
    cr_assert(h_proxy_wait_log(p, "not on loopback and has no token", 1, 3000), "%s", h_proxy_log(p));
    h_resp r;
    h_get(admin, "/metrics", &r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(post_reload(admin, NULL), 403);
    h_proxy_stop(p, 0);

    /* with a token: only the right bearer token reloads, loopback or not */
    setenv("RW_TEST_ADMIN_TOKEN", "s3cret-token-0123456789", 1);
    int admin2 = h_free_port();
    h_proxy *q =
        h_proxy_run(h_fmt("admin: {address: \"0.0.0.0:%d\", token_env: RW_TEST_ADMIN_TOKEN}\n", admin2));
    cr_assert(!h_proxy_log_contains(q, "has no token"), "%s", h_proxy_log(q));
    cr_assert_eq(post_reload(admin2, NULL), 401);
    cr_assert_eq(post_reload(admin2, "Bearer wrong-token-0123456789"), 401);
    cr_assert_eq(post_reload(admin2, "Basic czNjcmV0"), 401);
    cr_assert_eq(post_reload(admin2, "Bearer s3cret-token-0123456789"), 200);
    cr_assert_eq(post_reload(admin2, "bearer s3cret-token-0123456789"), 200);
    h_proxy_stop(q, 0);
    int admin3 = h_free_port();
    h_proxy *l =
        h_proxy_run(h_fmt("admin: {address: \"127.0.0.1:%d\", token_env: RW_TEST_ADMIN_TOKEN}\n", admin3));
    cr_assert_eq(post_reload(admin3, NULL), 401, "a configured token is required on loopback too");
    (void)l;
    /* a loopback admin port without a token takes changes (as before) */
    int admin4 = h_free_port();
    h_proxy *m = h_proxy_run(h_fmt("admin: \"127.0.0.1:%d\"\n", admin4));
    cr_assert_eq(post_reload(admin4, NULL), 200);
    (void)m;
}

H_TEST(lifecycle, admin_token_env_must_be_set)
{
    unsetenv("RW_TEST_NO_SUCH_TOKEN");
    char *path =
        h_write_file("t.yaml", "admin: {address: \"127.0.0.1:9\", token_env: RW_TEST_NO_SUCH_TOKEN}\n");
    h_cmd *c;
    int code = h_run(&c, 5000, "'%s' --check-config --config '%s'", h_binary(), path);
    cr_assert_eq(code, 1, "%s", c->err);
    cr_assert(strstr(c->err, "admin.token_env: $RW_TEST_NO_SUCH_TOKEN is not set") != NULL, "%s", c->err);
}

H_TEST(lifecycle, metrics_listen_is_read_only)
{
    int admin = h_free_port(), metrics = h_free_port();
    h_proxy *p =
        h_proxy_run(h_fmt("admin: \"127.0.0.1:%d\"\nmetrics_listen: \"0.0.0.0:%d\"\n", admin, metrics));
    (void)p;
    h_resp r;
    static const char *const ro[] = {"/metrics", "/status", "/health", "/ready"};
    for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
        h_get(metrics, ro[i], &r);
        cr_assert_eq(r.status, 200, "%s on metrics_listen: %d", ro[i], r.status);
    }
    cr_assert_eq(post_reload(metrics, NULL), 403);
    cr_assert_eq(post_reload(admin, NULL), 200);
}

H_TEST(lifecycle, metrics_are_promtool_clean)
{
    int admin = h_free_port();
    h_proxy *p = h_proxy_run(h_fmt("admin: \"127.0.0.1:%d\"\n", admin));
    h_resp r;
    h_get(p->port, "/health", &r);
    h_get(admin, "/metrics", &r);
    static const char *const want[] = {"process_cpu_seconds_total ",
                                       "process_start_time_seconds ",
                                       "process_resident_memory_bytes ",
                                       "process_open_fds ",
                                       "ringway_config_reloads_total{result=\"success\"} 0\n",
                                       "ringway_state{state=\"running\"} 1\n"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert(strstr(r.body, want[i]) != NULL, "/metrics lacks %s:\n%s", want[i], r.body);
    h_cmd *probe;
    if (h_run(&probe, 5000, "command -v promtool") != 0)
        cr_skip_test("promtool (Debian package prometheus) is not installed");
    char *file = h_write_file("metrics.txt", r.body);
    h_cmd *c;
    int code = h_run(&c, 10000, "promtool check metrics < '%s'", file);
    cr_assert_eq(code, 0, "promtool check metrics: %s%s", c->out, c->err);
}

/* The thread id of ringway's worker N (threads are named rw-worker-N), or -1. */
static pid_t worker_tid(pid_t pid, int n)
{
    char want[32], dir[64];
    snprintf(want, sizeof(want), "rw-worker-%d\n", n);
    snprintf(dir, sizeof(dir), "/proc/%d/task", pid);
    DIR *d = opendir(dir); /* thread ids wrap with pid_max: no guessing a range */
    if (d == NULL)
        return -1;
    pid_t found = -1;
    for (struct dirent *e; found < 0 && (e = readdir(d)) != NULL;) {
        char path[384], comm[32] = "";
        snprintf(path, sizeof(path), "%s/%s/comm", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(comm, sizeof(comm), f) != NULL && strcmp(comm, want) == 0)
            found = atoi(e->d_name);
        fclose(f);
    }
    closedir(d);
    return found;
}

/* Liveness follows every worker, not the one a probe lands on: one worker of
 * two stopped (ptrace stops that thread only) turns /health to 503 on the
 * admin port and on the data port (whichever worker answers), and back to
 * 200 when it runs again; /ready is not liveness and stays 200. */
H_TEST(lifecycle, health_fails_while_a_worker_is_stalled)
{
    int admin = h_free_port();
    h_proxy *p = h_proxy_start(&(h_proxy_opts){
        .config = h_fmt("admin: \"127.0.0.1:%d\"\n", admin), .workers = 2, .expect_errors = true});
    /* /ready: every worker runs its loop, so each has named its thread */
    cr_assert(h_wait_status(admin, "/ready", 200, 10000), "%s", h_proxy_log(p));
    pid_t tid = worker_tid(p->pid, 1);
    cr_assert_gt(tid, 0, "no thread named rw-worker-1");
    if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) != 0)
        cr_skip_test("ptrace is not allowed here: %s", strerror(errno));
    cr_assert_eq(ptrace(PTRACE_INTERRUPT, tid, NULL, NULL), 0, "%s", strerror(errno));
    int st;
    cr_assert_eq(waitpid(tid, &st, __WALL), tid);
    /* Everything is checked with the thread stopped, then it is let go, then
     * asserted: a failed check must not leave the process stuck. */
    h_cmd *stat;
    h_run(&stat, 5000, "cat /proc/%d/task/%d/stat", p->pid, tid);
    bool admin_503 = h_wait_status(admin, "/health", 503, 15000);
    h_resp r = {0};
    if (admin_503)
        h_get(admin, "/health", &r);
    int answered = 0, not_503 = 0; /* a connection that lands on worker 1 waits in its queue: skipped */
    for (int i = 0; i < 20 && answered < 3; i++) {
        h_conn *c = h_connect(p->port);
        c->timeout_ms = 1500;
        h_resp d;
        if (h_request(c, "GET", "/health", "Connection: close\r\n", NULL, 0, &d) == H_OK) {
            answered++;
            not_503 += d.status != 503;
            h_resp_free(&d);
        }
        h_close(c);
    }
    h_resp ready;
    h_get(admin, "/ready", &ready);
    h_cmd *tasks; /* the threads' names and states now, for a failure message */
    h_run(&tasks, 5000,
          "cd /proc/%d/task && for t in *; do echo $t $(cat $t/comm) $(cut -d' ' -f3 $t/stat); done", p->pid);
    cr_assert_eq(ptrace(PTRACE_DETACH, tid, NULL, NULL), 0, "%s", strerror(errno));
    cr_assert(admin_503,
              "admin /health stayed 200 with worker 1 (tid %d) stopped: stat %s\nthreads then:\n%s\n%s", tid,
              stat->out, tasks->out, h_proxy_log(p));
    cr_assert(strstr(r.body, "\"worker\":1") != NULL, "%s", r.body);
    cr_assert_gt(answered, 0, "no data-port connection reached the running worker");
    cr_assert_eq(not_503, 0, "the running worker answered /health with something else than 503");
    cr_assert_eq(ready.status, 200);
    cr_assert(h_wait_status(admin, "/health", 200, 5000), "/health did not recover");
    cr_assert(h_proxy_log_contains(p, "liveness: worker 1"));
}
