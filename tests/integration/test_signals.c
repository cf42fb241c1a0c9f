/* test_signals.c - SIGHUP reloads the config (good, bad, under load) and
 * SIGTERM drains in-flight requests. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* A config with a respond route /v answering "gen N", and everything else
 * going to upstream u. */
static char *gen_config(const h_upstream *u, int gen)
{
    return h_fmt("services:\n"
                 "  - name: svc\n"
                 "    instances: [{address: \"127.0.0.1:%d\"}]\n"
                 "routes:\n"
                 "  - name: gen\n"
                 "    paths: [{exact: /v%d}, {exact: /v}]\n"
                 "    respond: {status: 200, body: \"gen %d\"}\n"
                 "  - name: all\n"
                 "    paths: [{prefix: /}]\n"
                 "    service: svc\n",
                 u->port, gen, gen);
}

/* Polls GET target until the body is want; true when it got there in time. */
static bool wait_body(int port, const char *target, const char *want, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    do {
        h_conn *c = h_try_connect("127.0.0.1", port);
        if (c) {
            h_resp r;
            c->timeout_ms = 1000;
            if (h_request(c, "GET", target, NULL, NULL, 0, &r) == H_OK && r.body &&
                strcmp(r.body, want) == 0) {
                h_close(c);
                return true;
            }
            h_close(c);
        }
        h_sleep_ms(20);
    } while (h_now_ms() < deadline);
    return false;
}

H_TEST(signals, sighup_reloads_config)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(gen_config(u, 1));
    h_conn *keep = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(keep, "GET", "/v", NULL, NULL, 0, &r), H_OK);
    cr_assert_str_eq(r.body, "gen 1");

    h_proxy_write_config(p, gen_config(u, 2));
    h_proxy_signal(p, SIGHUP);
    cr_assert(wait_body(p->port, "/v2", "gen 2", 5000), "the new route never answered after SIGHUP");
    h_get(p->port, "/v1", &r);
    cr_assert_str_eq(r.body, "u1 GET /v1\n", "the old route still answers after reload");
    /* a connection opened before the reload goes on working, under the new config */
    cr_assert_eq(h_request(keep, "GET", "/v", NULL, NULL, 0, &r), H_OK,
                 "a keep-alive connection did not survive the reload");
    cr_assert_str_eq(r.body, "gen 2");
}

H_TEST(signals, bad_reload_keeps_old_config, .description = "log says why")
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.config = gen_config(u, 1), .expect_errors = true});
    h_proxy_write_config(p, "routes:\n  - name: broken\n    paths: [{exact: /x}\n");
    h_proxy_signal(p, SIGHUP);
    cr_assert(h_proxy_wait_log(p, "reload failed", 1, 5000), "no word of the failed reload:\n%s",
              h_proxy_log(p));
    cr_assert(p->running && h_proxy_wait_exit(p, 0) == -1, "ringway exited on a bad reload");
    h_resp r;
    h_get(p->port, "/v", &r);
    cr_assert_str_eq(r.body, "gen 1", "the old config is gone after a bad reload");
    cr_assert(h_proxy_log_contains(p, p->config_path), "the log does not say which file failed:\n%s",
              h_proxy_log(p));

    /* a second bad file, semantically wrong this time */
    h_proxy_write_config(p, "routes:\n  - name: r\n    service: no_such_service\n");
    h_proxy_signal(p, SIGHUP);
    cr_assert(h_proxy_wait_log(p, "reload failed", 2, 5000), "no word of the second failed reload");
    h_get(p->port, "/v", &r);
    cr_assert_str_eq(r.body, "gen 1");

    /* and a good one is taken again */
    h_proxy_write_config(p, gen_config(u, 3));
    h_proxy_signal(p, SIGHUP);
    cr_assert(wait_body(p->port, "/v", "gen 3", 5000), "a good config after a bad one was not loaded");
}

/* Value after label in wrk's output ("Non-2xx or 3xx responses: 12"), or 0. */
static long wrk_field(const char *out, const char *label)
{
    const char *p = strstr(out, label);
    return p ? strtol(p + strlen(label), NULL, 10) : 0;
}

/* The N of wrk's "  N requests in 4.00s" line, or 0. */
static long wrk_requests(const char *out)
{
    const char *p = strstr(out, " requests in ");
    if (!p)
        return 0;
    while (p > out && p[-1] >= '0' && p[-1] <= '9')
        p--;
    return strtol(p, NULL, 10);
}

H_TEST(signals, reload_under_load)
{
    h_cmd *probe;
    if (h_run(&probe, 5000, "command -v wrk") != 0)
        cr_skip_test("wrk is not installed");
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.config = gen_config(u, 1), .workers = 2});
    h_cmd *w = h_cmd_start("wrk -t2 -c32 -d4s http://127.0.0.1:%d/load", p->port);
    for (int gen = 2; gen <= 4; gen++) {
        h_sleep_ms(1000);
        h_proxy_write_config(p, gen_config(u, gen));
        h_proxy_signal(p, SIGHUP);
    }
    int code = h_cmd_wait(w, 15000);
    cr_assert_eq(code, 0, "wrk failed (%d): %s %s", code, w->out, w->err);
    long reqs = wrk_requests(w->out);
    cr_assert(reqs > 100, "wrk did almost nothing:\n%s", w->out);
    cr_assert_eq(wrk_field(w->out, "Non-2xx or 3xx responses:"), 0, "non-2xx under reload:\n%s", w->out);
    const char *se = strstr(w->out, "Socket errors:");
    cr_assert_null(se, "socket errors under reload:\n%s", w->out);
    cr_assert(wait_body(p->port, "/v", "gen 4", 3000), "the last reload did not take");
}

H_TEST(signals, sigterm_drains_in_flight)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.config = h_basic_config(u, NULL, NULL), .drain = "5s"});
    h_conn *c = h_connect(p->port);
    h_sends(c, "GET /delay/1000 HTTP/1.1\r\nHost: x\r\n\r\n");
    h_sleep_ms(200);
    int64_t t0 = h_now_ms();
    h_proxy_signal(p, SIGTERM);
    h_resp r;
    cr_assert_eq(h_read_response(c, &r, 0), H_OK, "the in-flight request was cut by SIGTERM");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "ok");
    /* the client connection is closed after the response (draining) */
    cr_assert(h_wait_closed(c, 2000, NULL), "connection kept open while draining");
    int st = h_proxy_wait_exit(p, 5000 + 1000);
    int64_t took = h_now_ms() - t0;
    cr_assert_neq(st, -1, "ringway still running %lld ms after SIGTERM", (long long)took);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "ringway exit status %d after draining", st);
    cr_assert(took < 3000, "draining one 1 s request took %lld ms", (long long)took);
}

H_TEST(signals, sigterm_idle_exits_quickly)
{
    h_proxy *p = h_start_basic(NULL, NULL, NULL);
    h_conn *idle = h_connect(p->port); /* an idle keep-alive connection */
    h_resp r;
    cr_assert_eq(h_request(idle, "GET", "/x", NULL, NULL, 0, &r), H_OK);
    int64_t t0 = h_now_ms();
    h_proxy_signal(p, SIGTERM);
    int st = h_proxy_wait_exit(p, 5000);
    int64_t took = h_now_ms() - t0;
    cr_assert_neq(st, -1, "ringway with an idle connection did not exit on SIGTERM");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    cr_assert(took < 1000, "exit with only idle connections took %lld ms", (long long)took);
    cr_assert(h_wait_closed(idle, 1000, NULL));
}

H_TEST(signals, drain_timeout_bounds_shutdown)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_start(
        &(h_proxy_opts){.config = h_basic_config(u, NULL, NULL), .drain = "1s", .expect_errors = true});
    h_conn *c = h_connect(p->port);
    h_sends(c, "GET /delay/10000 HTTP/1.1\r\nHost: x\r\n\r\n");
    h_sleep_ms(200);
    int64_t t0 = h_now_ms();
    h_proxy_signal(p, SIGTERM);
    int st = h_proxy_wait_exit(p, 4000);
    int64_t took = h_now_ms() - t0;
    cr_assert_neq(st, -1, "ringway ignored --drain-timeout 1s (still running after 4 s)");
    cr_assert(took >= 800, "exited after %lld ms, before the drain timeout, with a request in flight",
              (long long)took);
    cr_assert(WIFEXITED(st), "ringway died of a signal: %d", st);
}

/* ---- --watch-config: the file is followed, as a ConfigMap mount changes ---- */

/* Lays out a Kubernetes ConfigMap mount: DIR/..VERSION/ringway.yaml, the
 * "..data" link naming the current version, and ringway.yaml -> ..data/. A
 * new version is swapped in the way the kubelet does: a new directory, a
 * "..data_tmp" link to it, renamed over "..data". */
static void cm_publish(const char *dir, int version, const char *yaml)
{
    char *vdir = h_fmt("%s/..v%d", dir, version);
    cr_assert_eq(mkdir(vdir, 0755), 0);
    FILE *f = fopen(h_fmt("%s/ringway.yaml", vdir), "w");
    cr_assert_not_null(f);
    fputs(yaml, f);
    fclose(f);
    char *tmp = h_fmt("%s/..data_tmp", dir);
    unlink(tmp);
    cr_assert_eq(symlink(h_fmt("..v%d", version), tmp), 0);
    cr_assert_eq(rename(tmp, h_fmt("%s/..data", dir)), 0);
    if (version == 1)
        cr_assert_eq(symlink("..data/ringway.yaml", h_fmt("%s/ringway.yaml", dir)), 0);
}

H_TEST(signals, watch_config_follows_a_configmap_swap)
{
    h_cmd *probe;
    if (h_run(&probe, 5000, "command -v wrk") != 0)
        cr_skip_test("wrk is not installed");
    h_upstream *u = h_upstream_start("u1", NULL);
    char *dir = h_fmt("%s/cm", h_tmpdir());
    cr_assert_eq(mkdir(dir, 0755), 0);
    int admin = h_free_port();
    char *adm = h_fmt("admin: \"127.0.0.1:%d\"\n", admin);
    cm_publish(dir, 1, h_fmt("%s%s", adm, gen_config(u, 1)));
    h_proxy *p =
        h_proxy_start(&(h_proxy_opts){.workers = 2,
                                      .expect_errors = true,
                                      .args = {"--config", h_fmt("%s/ringway.yaml", dir), "--watch-config"}});
    h_resp r;
    h_get(p->port, "/v", &r);
    cr_assert_str_eq(r.body, "gen 1");
    h_cmd *w = h_cmd_start("wrk -t2 -c64 -d3s http://127.0.0.1:%d/v", p->port);
    h_sleep_ms(500);
    int64_t t0 = h_now_ms();
    cm_publish(dir, 2, h_fmt("%s%s", adm, gen_config(u, 2)));
    cr_assert(wait_body(p->port, "/v", "gen 2", 5000), "the swapped config never took");
    int64_t took = h_now_ms() - t0;
    cr_assert(took <= 2000, "the swapped config took %lld ms", (long long)took);
    int code = h_cmd_wait(w, 15000);
    cr_assert_eq(code, 0, "wrk failed (%d): %s %s", code, w->out, w->err);
    cr_assert_null(strstr(w->out, "Socket errors:"), "socket errors across the swap:\n%s", w->out);
    cr_assert_eq(wrk_field(w->out, "Non-2xx or 3xx responses:"), 0, "non-2xx across the swap:\n%s", w->out);

    /* a broken version changes nothing, and says so */
    cm_publish(dir, 3, "routes:\n  - name: broken\n    paths: [{exact: /x}\n");
    cr_assert(h_proxy_wait_log(p, "reload failed", 1, 3000), "a broken swap was not refused:\n%s",
              h_proxy_log(p));
    h_get(p->port, "/v", &r);
    cr_assert_str_eq(r.body, "gen 2");
    h_get(admin, "/metrics", &r);
    cr_assert(strstr(r.body, "ringway_config_reloads_total{result=\"error\"} 1\n") != NULL, "%s", r.body);
    cr_assert(strstr(r.body, "ringway_config_reloads_total{result=\"success\"} 1\n") != NULL, "%s", r.body);

    /* the same file content again is no reload */
    cm_publish(dir, 4, "routes:\n  - name: broken\n    paths: [{exact: /x}\n");
    h_sleep_ms(1500);
    cr_assert_eq(h_proxy_log_count(p, "reload failed"), 1, "an unchanged file was reloaded");
    /* and a good one is taken again */
    cm_publish(dir, 5, h_fmt("%s%s", adm, gen_config(u, 5)));
    cr_assert(wait_body(p->port, "/v", "gen 5", 3000), "a good version after a broken one was not loaded");
}

H_TEST(signals, watch_config_key_follows_an_edited_file)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_fmt("watch_config: true\n%s", gen_config(u, 1)));
    h_proxy_write_config(p, h_fmt("watch_config: true\n%s", gen_config(u, 2)));
    cr_assert(wait_body(p->port, "/v", "gen 2", 3000),
              "an edited file with watch_config: true was not reloaded");
    /* turning it off stops the watching */
    h_proxy_write_config(p, gen_config(u, 3));
    cr_assert(wait_body(p->port, "/v", "gen 3", 3000));
    cr_assert(h_proxy_wait_log(p, "no longer watching", 1, 2000), "%s", h_proxy_log(p));
    h_proxy_write_config(p, gen_config(u, 4));
    h_sleep_ms(1500);
    h_resp r;
    h_get(p->port, "/v", &r);
    cr_assert_str_eq(r.body, "gen 3", "the file is still watched after watch_config: false");
}
