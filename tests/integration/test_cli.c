/* test_cli.c - command-line flags, the embedded default config and the
 * built-in /health and /ready endpoints. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

static const char *GOOD_CONFIG = "services:\n"
                                 "  - name: svc\n"
                                 "    instances:\n"
                                 "      - {address: \"127.0.0.1:9\"}\n"
                                 "routes:\n"
                                 "  - name: all\n"
                                 "    paths: [{prefix: /}]\n"
                                 "    service: svc\n";

/* The error is on line 4: an lb policy that does not exist. */
static const char *BAD_CONFIG = "services:\n"
                                "  - name: svc\n"
                                "    instances: [{address: \"127.0.0.1:9\"}]\n"
                                "    lb: no_such_policy\n"
                                "routes:\n"
                                "  - name: all\n"
                                "    service: svc\n";

H_TEST(cli, version)
{
    h_cmd *c;
    int code = h_run(&c, 5000, "'%s' --version", h_binary());
    cr_assert_eq(code, 0, "--version exited %d; stderr: %s", code, c->err);
    const char *ver = getenv("RW_VERSION");
    char *all = h_fmt("%s%s", c->out, c->err);
    cr_assert(strstr(all, ver && *ver ? ver : "ringway") != NULL, "--version output lacks the version %s: %s",
              ver ? ver : "", all);
}

H_TEST(cli, help)
{
    h_cmd *c;
    int code = h_run(&c, 5000, "'%s' --help", h_binary());
    cr_assert_eq(code, 0, "--help exited %d; stderr: %s", code, c->err);
    char *all = h_fmt("%s%s", c->out, c->err);
    static const char *const flags[] = {"--config",       "--listen",    "--workers",       "--io",
                                        "--admin",        "--max-conns", "--drain-timeout", "--log-level",
                                        "--check-config", "--no-pin",    "--version"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        cr_expect(strstr(all, flags[i]) != NULL, "--help does not mention %s", flags[i]);
}

H_TEST(cli, unknown_flag_fails)
{
    h_cmd *c;
    int code = h_run(&c, 5000, "'%s' --no-such-flag", h_binary());
    cr_assert(code > 0 && code < 128, "an unknown flag should fail cleanly, exit code %d", code);
    cr_assert(c->err[0] != '\0', "an unknown flag should say something on stderr");
}

H_TEST(cli, bad_io_value_fails)
{
    h_cmd *c;
    int code = h_run(&c, 5000, "'%s' --io bogus --check-config", h_binary());
    cr_assert(code > 0 && code < 128, "--io bogus should fail cleanly, exit code %d", code);
}

H_TEST(cli, check_config_good)
{
    char *path = h_write_file("good.yaml", GOOD_CONFIG);
    h_cmd *c;
    int code = h_run(&c, 5000, "'%s' --check-config --config '%s'", h_binary(), path);
    cr_assert_eq(code, 0, "--check-config on a good file exited %d; stderr: %s", code, c->err);
}

H_TEST(cli, shipped_kubernetes_config_is_valid_off_cluster)
{
    /* Its service names are cluster DNS names: discovery.dns makes them
     * non-fatal, so the ConfigMap checks anywhere (CI, a laptop). */
    const char *root = getenv("RW_SOURCE_ROOT");
    cr_assert_not_null(root, "RW_SOURCE_ROOT is not set");
    char *path = h_fmt("%s/configmap-ringway.yaml", h_tmpdir());
    h_cmd *c;
    cr_assert_eq(h_run(&c, 5000,
                       "sed -n '/ringway.yaml: |/,$p' '%s/k8s/configmap.yaml' | tail -n +2 | "
                       "sed 's/^    //' > '%s'",
                       root, path),
                 0);
    int code = h_run(&c, 10000, "'%s' --check-config --config '%s'", h_binary(), path);
    cr_expect_eq(code, 0, "k8s/configmap.yaml does not validate: %s", c->err);
}

H_TEST(cli, check_config_bad_says_file_and_line)
{
    char *path = h_write_file("bad.yaml", BAD_CONFIG);
    h_cmd *c;
    int code = h_run(&c, 5000, "'%s' --check-config --config '%s'", h_binary(), path);
    cr_assert(code > 0 && code < 128, "--check-config on a bad file exited %d", code);
    char *want = h_fmt("%s:4:", path);
    cr_assert(strstr(c->err, want) != NULL, "stderr should hold \"%s reason\"; got: %s", want, c->err);
}

H_TEST(cli, check_config_yaml_syntax_error)
{
    char *path = h_write_file("syntax.yaml", "routes:\n  - name: x\n    paths: [{exact: /a}\n");
    h_cmd *c;
    int code = h_run(&c, 5000, "'%s' --check-config --config '%s'", h_binary(), path);
    cr_assert(code > 0 && code < 128, "--check-config on broken YAML exited %d", code);
    cr_assert(strstr(c->err, h_fmt("%s:", path)) != NULL, "stderr should name the file: %s", c->err);
}

H_TEST(cli, missing_config_file_fails)
{
    h_cmd *c;
    int code = h_run(&c, 5000, "'%s' --config '%s/nope.yaml' --listen 127.0.0.1:%d", h_binary(), h_tmpdir(),
                     h_free_port());
    cr_assert(code > 0 && code < 128, "a missing config file should fail cleanly, exit %d", code);
}

H_TEST(cli, embedded_default_config)
{
    /* the embedded config also opens an admin port (127.0.0.1:9901): move it */
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.args = {"--admin", h_fmt("127.0.0.1:%d", h_free_port())}});
    h_resp r;
    h_get(p->port, "/", &r);
    cr_assert_eq(r.status, 200, "GET / with the embedded config: %d", r.status);
    cr_assert(strstr(r.body, "ringway") != NULL, "GET / body should mention ringway: %s", r.body);
    cr_assert(r.body[0] == '{', "GET / body should be JSON: %s", r.body);
    h_get(p->port, "/no/such/path", &r);
    cr_assert_eq(r.status, 404, "unknown path with the embedded config: %d", r.status);
    cr_assert(r.body_len > 0 && r.body[0] == '{', "404 body should be JSON: %s", r.body);
    const char *ct = h_hdr(&r, "Content-Type");
    cr_assert(ct && strstr(ct, "json"), "404 Content-Type should be JSON: %s", ct ? ct : "(none)");
}

H_TEST(cli, health_and_ready)
{
    h_upstream *u;
    h_proxy *p = h_start_basic(&u, NULL, NULL);
    h_resp r;
    h_get(p->port, "/health", &r);
    cr_assert_eq(r.status, 200);
    cr_assert(h_wait_status(p->port, "/ready", 200, 5000), "/ready never answered 200");
    /* built-ins are answered by the proxy itself, not the catch-all route */
    cr_assert_eq(h_upstream_stats(u).requests, 0, "/health or /ready reached the upstream");
}

H_TEST(cli, builtins_beat_routes)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_fmt("services:\n"
                                   "  - name: svc\n"
                                   "    instances: [{address: \"127.0.0.1:%d\"}]\n"
                                   "routes:\n"
                                   "  - name: fake-health\n"
                                   "    paths: [{exact: /health}, {exact: /ready}]\n"
                                   "    respond: {status: 418, body: \"route\"}\n"
                                   "  - name: all\n"
                                   "    service: svc\n",
                                   u->port));
    h_resp r;
    h_get(p->port, "/health", &r);
    cr_assert_eq(r.status, 200, "/health must be the built-in, got %d %s", r.status, r.body);
    h_get(p->port, "/ready", &r);
    cr_assert_eq(r.status, 200, "/ready must be the built-in, got %d %s", r.status, r.body);
    cr_assert_eq(h_upstream_stats(u).requests, 0);
}

H_TEST(cli, two_workers_ready)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.config = h_basic_config(u, NULL, NULL), .workers = 2});
    cr_assert(h_wait_status(p->port, "/ready", 200, 5000), "/ready never answered 200 with 2 workers");
    for (int i = 0; i < 20; i++) {
        h_resp r;
        h_get(p->port, "/x", &r);
        cr_assert_eq(r.status, 200);
        cr_assert_str_eq(r.body, "u1 GET /x\n");
    }
}

H_TEST(cli, no_pin_and_log_level_error)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_start(
        &(h_proxy_opts){.config = h_basic_config(u, NULL, NULL), .log_level = "error", .args = {"--no-pin"}});
    h_resp r;
    h_get(p->port, "/x", &r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(h_proxy_stop(p, 0), 0, "ringway did not exit 0 on SIGTERM");
    char *log = h_proxy_log(p);
    cr_assert(strstr(log, " info ") == NULL && strstr(log, " debug ") == NULL,
              "--log-level error still logged info/debug lines:\n%s", log);
}

H_TEST(cli, listen_repeatable_v4_and_v6)
{
    if (!h_have_ipv6())
        cr_skip_test("no IPv6 loopback");
    h_upstream *u = h_upstream_start("u1", NULL);
    int p4 = h_free_port(), p4b = h_free_port(), p6 = h_free_port();
    h_proxy_start(&(h_proxy_opts){.config = h_basic_config(u, NULL, NULL),
                                  .no_listen = true,
                                  .args = {"--listen", h_fmt("127.0.0.1:%d", p4), "--listen",
                                           h_fmt("127.0.0.1:%d", p4b), "--listen", h_fmt("[::1]:%d", p6)}});
    cr_assert(h_wait_status(p4, "/health", 200, 10000), "first --listen never answered");
    cr_assert(h_wait_status(p4b, "/health", 200, 5000), "second --listen never answered");
    h_conn *c = h_connect_host("::1", p6);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/v6", NULL, NULL, 0, &r), H_OK, "no answer on [::1]:%d", p6);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "u1 GET /v6\n");
}

H_TEST(cli, flags_override_file)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    int file_port = h_free_port();
    char *cfg = h_fmt("listen: [\"127.0.0.1:%d\"]\nworkers: 2\n%s", file_port, h_basic_config(u, NULL, NULL));
    h_proxy *p = h_proxy_run(cfg); /* adds --listen 127.0.0.1:<other> --workers 1 */
    h_resp r;
    h_get(p->port, "/x", &r);
    cr_assert_eq(r.status, 200);
    cr_assert_null(h_try_connect("127.0.0.1", file_port),
                   "the file's listen address is used although --listen was given");
}

H_TEST(cli, max_conns)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p =
        h_proxy_start(&(h_proxy_opts){.config = h_basic_config(u, NULL, NULL), .args = {"--max-conns", "2"}});
    h_sleep_ms(300); /* let the proxy notice that the /health probes closed */
    h_conn *a = h_connect(p->port), *b = h_connect(p->port);
    h_resp r;
    int rc = h_request(a, "GET", "/a", NULL, NULL, 0, &r);
    cr_assert_eq(rc, H_OK, "first of 2 connections with --max-conns 2 not served (%d)", rc);
    rc = h_request(b, "GET", "/b", NULL, NULL, 0, &r);
    cr_assert_eq(rc, H_OK, "second of 2 connections with --max-conns 2 not served (%d)", rc);
    /* a third connection is either refused, closed, or left waiting */
    h_conn *c = h_try_connect("127.0.0.1", p->port);
    if (c) {
        c->timeout_ms = 700;
        rc = h_request(c, "GET", "/c", NULL, NULL, 0, &r);
        cr_assert(rc != H_OK, "a third connection was served with --max-conns 2 (status %d)", r.status);
        h_close(c);
    }
    h_close(a);
    h_close(b);
    cr_assert(h_wait_status(p->port, "/health", 200, 5000),
              "no new connection served after the others closed");
}

H_TEST(cli, admin_port)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    int admin = h_free_port();
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.config = h_basic_config(u, NULL, NULL),
                                               .args = {"--admin", h_fmt("127.0.0.1:%d", admin)}});
    (void)p;
    h_conn *c = h_try_connect("127.0.0.1", admin);
    cr_assert_not_null(c, "nothing listens on --admin 127.0.0.1:%d", admin);
    h_resp r;
    cr_assert_eq(h_request(c, "GET", "/status", NULL, NULL, 0, &r), H_OK,
                 "the admin port gave no HTTP response to GET /status");
    cr_assert_eq(r.status, 200, "admin GET /status: %d", r.status);
    cr_assert_eq(h_upstream_stats(u).requests, 0, "the admin request reached the upstream");
    cr_expect(strstr(r.body, "\"per_worker\":[{\"id\":0,") != NULL, "no per-worker counters in /status: %s",
              r.body);
    h_close(c);
    c = h_try_connect("127.0.0.1", admin);
    cr_assert_not_null(c);
    cr_assert_eq(h_request(c, "GET", "/metrics", NULL, NULL, 0, &r), H_OK);
    cr_expect_eq(r.status, 200);
    cr_expect(strstr(r.body, "ringway_requests_total") != NULL, "no counters in /metrics: %s", r.body);
}

H_TEST(cli, shipped_alert_rules_and_dashboard_are_valid)
{
    /* k8s/prometheus-rules.yaml and k8s/grafana-dashboard.json: valid PromQL
     * (promtool), and every ringway_* series they use is one ringway serves */
    const char *root = getenv("RW_SOURCE_ROOT");
    cr_assert_not_null(root, "RW_SOURCE_ROOT is not set");
    h_cmd *c;
    if (h_run(&c, 5000, "command -v promtool") != 0)
        cr_skip_test("promtool (Debian package prometheus) is not installed");
    cr_assert_eq(h_run(&c, 10000, "promtool check rules '%s/k8s/prometheus-rules.yaml'", root), 0, "%s%s",
                 c->out, c->err);
    char *rules = h_fmt("%s/dashboard-rules.yaml", h_tmpdir());
    char *names = h_fmt("%s/names.txt", h_tmpdir());
    const char *py =
        "import json,re,sys\n"
        "d=json.load(open(sys.argv[1]))\n"
        "ex=[t['expr'].replace('$__rate_interval','5m') for p in d['panels'] for t in p['targets']]\n"
        "out=open(sys.argv[2],'w')\n"
        "out.write('groups:\\n  - name: dashboard\\n    rules:\\n')\n"
        "for i,e in enumerate(ex): out.write('      - record: dashboard_%d\\n        expr: "
        "%s\\n'%(i,json.dumps(e)))\n"
        "text=open(sys.argv[1]).read()+open(sys.argv[3]).read()\n"
        "ns=set(re.sub(r'_(bucket|sum|count)$','',n) for n in re.findall(r'ringway_[a-z_]+',text))\n"
        "open(sys.argv[4],'w').write('\\n'.join(sorted(ns))+'\\n')\n";
    char *script = h_write_file("dash.py", py);
    cr_assert_eq(
        h_run(&c, 10000,
              "python3 '%s' '%s/k8s/grafana-dashboard.json' '%s' '%s/k8s/prometheus-rules.yaml' '%s'", script,
              root, rules, root, names),
        0, "%s", c->err);
    cr_assert_eq(h_run(&c, 10000, "promtool check rules '%s'", rules), 0, "dashboard PromQL: %s%s", c->out,
                 c->err);
    /* the names against a running ringway with a service, a route and checks */
    h_upstream *u = h_upstream_start("u1", NULL);
    int admin = h_free_port();
    h_proxy *p = h_proxy_run(h_fmt("admin: \"127.0.0.1:%d\"\n"
                                   "services:\n  - name: svc\n    instances: [\"127.0.0.1:%d\"]\n"
                                   "    health_check: {path: /healthz, interval: 1s}\n    outlier: {}\n"
                                   "routes:\n  - {name: all, paths: [{prefix: /}], service: svc}\n",
                                   admin, u->port));
    h_resp r;
    h_get(p->port, "/x", &r);
    h_get(admin, "/metrics", &r);
    cr_assert_eq(h_run(&c, 5000, "cat '%s'", names), 0);
    char *list = c->out, *save = NULL;
    for (char *n = strtok_r(list, "\n", &save); n != NULL; n = strtok_r(NULL, "\n", &save)) {
        if (strcmp(n, "ringway_redis_up") == 0)
            continue; /* served only with Redis configured */
        cr_expect(strstr(r.body, h_fmt("# TYPE %s ", n)) != NULL,
                  "%s is used by the shipped files but not served", n);
    }
}

H_TEST(cli, kubernetes_manifests_validate_offline)
{
    /* tests/k8s/validate.sh: kustomize rendering, the Kubernetes schemas with
     * unknown fields refused, the seccomp profile, --check-config on the
     * ConfigMap, and a self-test that a misspelt field is caught */
    const char *root = getenv("RW_SOURCE_ROOT");
    cr_assert_not_null(root, "RW_SOURCE_ROOT is not set");
    h_cmd *c;
    int code = h_run(&c, 60000, "'%s/tests/k8s/validate.sh' '%s'", root, h_binary());
    if (code == 77)
        cr_skip_test("%s", c->out);
    cr_assert_eq(code, 0, "tests/k8s/validate.sh exited %d:\n%s%s", code, c->out, c->err);
}
