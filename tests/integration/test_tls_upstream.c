/* test_tls_upstream.c - TLS to upstreams (services[].tls): verified against
 * a CA file with the host name, keep-alive connections that stay TLS
 * sessions, session resumption, a wrong CA, a wrong name and an IP literal
 * without sni refused with 502 and the reason (JSON body, access log,
 * metrics), an IP literal instance with sni, verify: false, and a client
 * certificate for upstream mTLS; on a listener, mTLS identity headers and
 * client certificates as consumers (consumers[].certificates). The upstream
 * is tls_upstream.py (Python's http.server over ssl, HTTP/1.1 keep-alive). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* CA, a second CA, a server certificate for localhost (by the first CA) and
 * a client certificate (first CA), in dir. */
static const char *const GEN_SH =
    "set -e\n"
    "cd \"$1\"\n"
    "q() { \"$@\" >/dev/null 2>&1; }\n"
    "for c in ca ca2; do q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
    "-keyout $c.key -out $c.crt -days 30 -subj \"/CN=rw $c\"; done\n"
    "leaf() { # name cn ext\n"
    "  q openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr "
    "-subj \"/CN=$2\"\n"
    "  printf '%s\\n' \"$3\" > $1.ext\n"
    "  q openssl x509 -req -in $1.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $1.crt -days 30 "
    "-extfile $1.ext\n"
    "}\n"
    "leaf up localhost 'subjectAltName=DNS:localhost'\n"
    "leaf gw 'ringway gw' 'extendedKeyUsage=clientAuth'\n"
    "leaf c2 'client two' 'extendedKeyUsage=clientAuth'\n"
    "leaf c3 'client three' 'extendedKeyUsage=clientAuth'\n";

typedef struct up_env {
    const char *dir;
    int uport;
    h_proxy *p;
    int admin;
} up_env;

static int sh(char **out, int timeout_ms, const char *cmd)
{
    h_cmd *c;
    int code = h_run(&c, timeout_ms, "%s", cmd);
    *out = h_fmt("%s%s", c->out ? c->out : "", c->err ? c->err : "");
    return code;
}

static void gen_certs(up_env *e)
{
    e->dir = h_fmt("%s/certs", h_tmpdir());
    char *sh_path = h_write_file("gen.sh", GEN_SH);
    char *out;
    cr_assert_eq(sh(&out, 60000, h_fmt("mkdir -p '%s' && sh '%s' '%s'", e->dir, sh_path, e->dir)), 0,
                 "certificate generation failed: %s", out);
}

/* Starts tls_upstream.py (with a client CA: it requires a client certificate). */
static void start_upstream(up_env *e, const char *client_ca)
{
    const char *root = getenv("RW_SOURCE_ROOT");
    cr_assert(root != NULL, "RW_SOURCE_ROOT is not set");
    e->uport = h_free_port();
    h_cmd_start("exec python3 %s/tests/integration/tls_upstream.py %d %s/up.crt %s/up.key %s", root, e->uport,
                e->dir, e->dir, client_ca ? client_ca : "");
    int64_t t0 = h_now_ms();
    h_conn *c = NULL;
    while ((c = h_try_connect("127.0.0.1", e->uport)) == NULL && h_now_ms() - t0 < 10000)
        h_sleep_ms(50);
    cr_assert(c != NULL, "tls_upstream.py did not start");
    h_close(c);
}

/* ringway with one service (its instance address and tls: lines) and a route. */
static void start_proxy(up_env *e, const char *instance, const char *tls, const char *svc_extra)
{
    e->admin = h_free_port();
    h_proxy_opts o = {
        .config = h_fmt("admin: \"127.0.0.1:%d\"\n"
                        "services:\n"
                        "  - name: billing\n"
                        "    instances: [{address: \"%s\"}]\n"
                        "    tls: %s\n"
                        "%s"
                        "routes:\n"
                        "  - {name: all, paths: [{prefix: /}], service: billing}\n",
                        e->admin, instance, tls, svc_extra ? svc_extra : ""),
        .expect_errors = true,
        .log_level = "debug",
    };
    e->p = h_proxy_start(&o);
}

static long upstream_conns(const up_env *e)
{
    char *out;
    sh(&out, 10000, h_fmt("curl -sk https://127.0.0.1:%d/stats", e->uport));
    const char *p = strstr(out, "connections=");
    return p ? atol(p + 12) : -1;
}

static char *file_text(const char *path)
{
    char *out;
    sh(&out, 10000, h_fmt("cat '%s'", path));
    return out;
}

/* Whether the file at path holds needle within timeout_ms (the access log is written asynchronously). */
static bool file_wait(const char *path, const char *needle, int timeout_ms)
{
    int64_t t0 = h_now_ms();
    while (strstr(file_text(path), needle) == NULL) {
        if (h_now_ms() - t0 > timeout_ms)
            return false;
        h_sleep_ms(50);
    }
    return true;
}

H_TEST(tls_upstream, verified_keepalive_and_resumption)
{
    up_env e = {0};
    gen_certs(&e);
    start_upstream(&e, NULL);
    start_proxy(&e, h_fmt("localhost:%d", e.uport), h_fmt("{ca_file: %s/ca.crt, verify: true}", e.dir), NULL);
    long before = upstream_conns(&e);
    h_conn *c = h_connect(e.p->port);
    for (int i = 0; i < 5; i++) {
        h_resp r;
        cr_assert_eq(h_request(c, "GET", h_fmt("/x%d", i), NULL, NULL, 0, &r), H_OK);
        cr_expect_eq(r.status, 200, "%s", r.body);
        cr_expect(strstr(r.body, "sni=localhost\n") != NULL, "%s", r.body);
        cr_expect(strstr(r.body, h_fmt("GET /x%d HTTP/1.1", i)) != NULL, "%s", r.body);
    }
    h_close(c);
    cr_expect_eq(upstream_conns(&e) - before, 2, "five requests over one pooled TLS connection (+1 /stats)");
    /* a new connection resumes the pooled session (keepalive off: each request connects) */
    h_proxy_stop(e.p, 2000);
    start_proxy(&e, h_fmt("localhost:%d", e.uport), h_fmt("{ca_file: %s/ca.crt}", e.dir),
                "    keepalive: {max_idle: 0}\n");
    int reused = 0;
    for (int i = 0; i < 4; i++) {
        h_resp r;
        h_get(e.p->port, "/r", &r);
        cr_expect_eq(r.status, 200, "%s", r.body);
        reused += strstr(r.body, "reused=True") != NULL;
    }
    cr_expect_eq(reused, 3, "the 2nd to 4th connections resume (%d did)", reused);
    h_resp r;
    h_get(e.admin, "/metrics", &r);
    cr_expect(strstr(r.body, "ringway_tls_upstream_handshakes_total{result=\"resumed\"} 3") != NULL, "%s",
              r.body);
}

H_TEST(tls_upstream, wrong_ca_wrong_name_ip_without_sni)
{
    up_env e = {0};
    gen_certs(&e);
    start_upstream(&e, NULL);
    struct {
        const char *instance, *tls, *want_log;
    } cases[] = {
        {h_fmt("localhost:%d", e.uport), h_fmt("{ca_file: %s/ca2.crt}", e.dir), "unable to get local issuer"},
        {h_fmt("localhost:%d", e.uport), h_fmt("{ca_file: %s/ca.crt, sni: other.test}", e.dir), "mismatch"},
        {h_fmt("127.0.0.1:%d", e.uport), h_fmt("{ca_file: %s/ca.crt}", e.dir), "mismatch"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        start_proxy(&e, cases[i].instance, cases[i].tls, NULL);
        h_resp r;
        h_get(e.p->port, "/x", &r);
        cr_expect_eq(r.status, 502, "case %zu: %d %s", i, r.status, r.body);
        cr_expect(strstr(r.body, "upstream TLS certificate verification failed") != NULL, "case %zu: %s", i,
                  r.body);
        cr_expect(h_proxy_wait_log(e.p, cases[i].want_log, 1, 2000), "case %zu: %s", i, h_proxy_log(e.p));
        cr_expect(h_proxy_wait_log(e.p, "certificate verification failed", 1, 2000), "case %zu", i);
        cr_expect(file_wait(e.p->out_path, "tls_verify_failed", 3000), "case %zu: access log: %s", i,
                  file_text(e.p->out_path));
        h_get(e.admin, "/metrics", &r);
        cr_expect(strstr(r.body, "reason=\"tls_verify_failed\"") != NULL, "case %zu: metrics lack the reason",
                  i);
        h_proxy_stop(e.p, 2000);
    }
    /* verify: false takes any certificate */
    start_proxy(&e, h_fmt("127.0.0.1:%d", e.uport), "{verify: false}", NULL);
    h_resp r;
    h_get(e.p->port, "/x", &r);
    cr_expect_eq(r.status, 200, "%s", r.body);
    cr_expect(strstr(r.body, "sni=None\n") != NULL, "an IP literal sends no SNI: %s", r.body);
    h_proxy_stop(e.p, 2000);
    /* a server that answers plain HTTP to the ClientHello: a handshake failure */
    int pport = h_free_port();
    h_cmd_start("exec python3 -c 'import socket\n"
                "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                "s.bind((\"127.0.0.1\", %d)); s.listen(8)\n"
                "while True:\n"
                "  c, _ = s.accept(); c.recv(4096)\n"
                "  c.sendall(b\"HTTP/1.1 400 Bad Request\\r\\nContent-Length: 0\\r\\n\\r\\n\"); c.close()\n'",
                pport);
    int64_t t0 = h_now_ms();
    h_conn *pc = NULL;
    while ((pc = h_try_connect("127.0.0.1", pport)) == NULL && h_now_ms() - t0 < 10000)
        h_sleep_ms(50);
    cr_assert(pc != NULL, "the plain server did not start");
    h_close(pc);
    start_proxy(&e, h_fmt("127.0.0.1:%d", pport), "{verify: false}", NULL);
    h_get(e.p->port, "/x", &r);
    cr_expect_eq(r.status, 502, "%s", r.body);
    cr_expect(strstr(r.body, "upstream TLS handshake failed") != NULL, "%s", r.body);
    cr_expect(file_wait(e.p->out_path, "tls_handshake_failed", 3000), "%s", file_text(e.p->out_path));
}

H_TEST(tls_upstream, ip_literal_with_sni_and_client_certificate)
{
    up_env e = {0};
    gen_certs(&e);
    start_upstream(&e, h_fmt("%s/ca.crt", e.dir));
    /* the upstream requires a client certificate: without one the handshake fails */
    start_proxy(&e, h_fmt("127.0.0.1:%d", e.uport), h_fmt("{ca_file: %s/ca.crt, sni: localhost}", e.dir),
                NULL);
    h_resp r;
    h_get(e.p->port, "/x", &r);
    cr_expect_eq(r.status, 502, "%s", r.body);
    h_proxy_stop(e.p, 2000);
    start_proxy(&e, h_fmt("127.0.0.1:%d", e.uport),
                h_fmt("{ca_file: %s/ca.crt, sni: localhost, cert_file: %s/gw.crt, key_file: %s/gw.key}",
                      e.dir, e.dir, e.dir),
                NULL);
    h_get(e.p->port, "/x", &r);
    cr_expect_eq(r.status, 200, "%s", r.body);
    cr_expect(strstr(r.body, "sni=localhost\n") != NULL, "%s", r.body);
    cr_expect(strstr(r.body, "ringway gw") != NULL, "the client certificate: %s", r.body);
}

H_TEST(tls_upstream, bad_files_and_http_checks_refused)
{
    up_env e = {0};
    gen_certs(&e);
    struct {
        const char *tls, *extra, *want;
    } cases[] = {
        {"{ca_file: /nonexistent/ca.pem}", "", "ca_file /nonexistent/ca.pem"},
        {h_fmt("{cert_file: %s/gw.crt}", e.dir), "", "cert_file and key_file go together"},
        {h_fmt("{cert_file: %s/gw.crt, key_file: %s/up.key}", e.dir, e.dir), "", "key_file"},
        {"{verify: false}", "    health_check: {path: /}\n", "use type: tcp"},
        {"{bogus: 1}", "", "bogus"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *cfg = h_fmt("services:\n  - name: s\n    instances: [\"127.0.0.1:1\"]\n    tls: %s\n%s"
                          "routes:\n  - {name: r, service: s}\n",
                          cases[i].tls, cases[i].extra);
        char *path = h_write_file("bad.yaml", cfg);
        char *out;
        int code = sh(&out, 20000, h_fmt("%s --check-config -c %s", h_binary(), path));
        cr_expect_neq(code, 0, "case %zu accepted", i);
        cr_expect(strstr(out, cases[i].want) != NULL, "case %zu: want '%s' in: %s", i, cases[i].want, out);
    }
}

/* ---- mTLS on a listener ---- */

H_TEST(mtls, required_optional_and_identity_headers)
{
    up_env e = {0};
    gen_certs(&e);
    h_upstream *u = h_upstream_start("u1", NULL);
    int tport = h_free_port(), pport = h_free_port();
    const char *modes[] = {"required", "optional"};
    for (int m = 0; m < 2; m++) {
        h_proxy_opts o = {
            .config = h_fmt("listen:\n"
                            "  - \"127.0.0.1:%d\"\n"
                            "  - address: \"127.0.0.1:%d\"\n"
                            "    tls:\n"
                            "      certificates: [{cert_file: %s/up.crt, key_file: %s/up.key}]\n"
                            "      client_ca_file: %s/ca.crt\n"
                            "      client_verify: %s\n"
                            "%s",
                            pport, tport, e.dir, e.dir, e.dir, modes[m], h_basic_config(u, NULL, NULL)),
            .expect_errors = true,
            .no_listen = true,
            .no_wait = true,
        };
        h_proxy *p = h_proxy_start(&o);
        cr_assert(h_wait_status(pport, "/health", 200, 10000), "%s", h_proxy_log(p));
        const char *base = h_fmt("curl -sS --cacert %s/ca.crt --resolve localhost:%d:127.0.0.1 "
                                 "-H 'X-Client-Cert-Sha256: forged' https://localhost:%d/echo",
                                 e.dir, tport, tport);
        char *out;
        int code = sh(&out, 20000, base);
        if (m == 0) {
            cr_expect_neq(code, 0, "required: a client without a certificate got through: %s", out);
        } else {
            cr_expect_eq(code, 0, "%s", out);
            cr_expect(strstr(out, "X-Client-Cert") == NULL, "optional without a certificate: %s", out);
        }
        cr_expect_eq(sh(&out, 20000, h_fmt("%s --cert %s/gw.crt --key %s/gw.key", base, e.dir, e.dir)), 0,
                     "%s", out);
        char *fp;
        sh(&fp, 10000,
           h_fmt("openssl x509 -in %s/gw.crt -noout -fingerprint -sha256 | cut -d= -f2 | tr -d ':\\n' | "
                 "tr A-F a-f",
                 e.dir));
        cr_expect(strstr(out, h_fmt("X-Client-Cert-Sha256: %s", fp)) != NULL, "want %s in %s", fp, out);
        cr_expect(strstr(out, "X-Client-Cert-Subject: CN=ringway gw") != NULL, "%s", out);
        cr_expect(strstr(out, "forged") == NULL, "the client's copy was dropped: %s", out);
        /* a plain listener drops client-sent copies too */
        h_resp r;
        h_conn *c = h_connect(pport);
        cr_assert_eq(h_request(c, "GET", "/echo", "X-Client-Cert-Subject: CN=forged\r\n", NULL, 0, &r), H_OK);
        cr_expect(strstr(r.body, "forged") == NULL, "%s", r.body);
        h_close(c);
        h_proxy_stop(p, 2000);
    }
}

/* SHA-256 fingerprint of dir/name.crt as openssl prints it ("AB:CD:..."). */
static char *cert_fp(const up_env *e, const char *name)
{
    char *fp;
    sh(&fp, 10000,
       h_fmt("openssl x509 -in %s/%s.crt -noout -fingerprint -sha256 | cut -d= -f2 | tr -d '\\n'", e->dir,
             name));
    return fp;
}

/* curl over TLS to the listener with client certificate name (NULL: none)
 * and extra curl arguments; the head and body, then "HTTP=<status>". */
static char *mtls_get(const up_env *e, int tport, const char *name, const char *path, const char *extra)
{
    char *out;
    sh(&out, 20000,
       h_fmt("curl -sS -i --cacert %s/ca.crt --resolve localhost:%d:127.0.0.1 %s%s%s%s%s%s %s "
             "-w 'HTTP=%%{http_code}\\n' https://localhost:%d%s",
             e->dir, tport, name ? "--cert " : "", name ? e->dir : "", name ? h_fmt("/%s.crt", name) : "",
             name ? " --key " : "", name ? e->dir : "", name ? h_fmt("/%s.key", name) : "",
             extra ? extra : "", tport, path));
    return out;
}

H_TEST(mtls, certificate_consumers_acl_ratelimit_precedence)
{
    up_env e = {0};
    gen_certs(&e);
    h_upstream *u = h_upstream_start("u1", NULL);
    int tport = h_free_port(), pport = h_free_port();
    e.admin = h_free_port();
    /* gw: colons and upper case as openssl prints it; c2: bare lower-case hex;
       c3: verified by the CA but listed by no consumer */
    char *fp_gw = cert_fp(&e, "gw"), *fp_c2;
    sh(&fp_c2, 10000, h_fmt("printf %%s '%s' | tr -d ':' | tr A-F a-f", cert_fp(&e, "c2")));
    cr_assert_eq(strlen(fp_gw), 95, "%s", fp_gw);
    cr_assert_eq(strlen(fp_c2), 64, "%s", fp_c2);
    h_proxy_opts o = {
        .config = h_fmt("admin: \"127.0.0.1:%d\"\n"
                        "listen:\n"
                        "  - \"127.0.0.1:%d\"\n"
                        "  - address: \"127.0.0.1:%d\"\n"
                        "    tls:\n"
                        "      certificates: [{cert_file: %s/up.crt, key_file: %s/up.key}]\n"
                        "      client_ca_file: %s/ca.crt\n"
                        "      client_verify: optional\n"
                        "services:\n  - name: svc\n    instances: [{address: \"127.0.0.1:%d\"}]\n"
                        "consumers:\n"
                        "  - {name: gwapp, id: c-gw, groups: [apps], certificates: [\"sha256:%s\"]}\n"
                        "  - {name: two, id: c-two, groups: [apps, banned], certificates: [\"SHA256:%s\"]}\n"
                        "  - {name: keyapp, id: c-key, groups: [keyers], keys: [\"key-0123456789\"]}\n"
                        "routes:\n"
                        "  - {name: allow, paths: [{prefix: /echo/allow}], service: svc,"
                        " filters: [{acl: {allow_groups: [apps]}}]}\n"
                        "  - {name: deny, paths: [{prefix: /echo/deny}], service: svc,"
                        " filters: [{acl: {deny_groups: [banned]}}]}\n"
                        "  - {name: rl, paths: [{prefix: /echo/rl}], service: svc,"
                        " filters: [{rate_limit: {key: consumer, rate: 2/min}}]}\n"
                        "  - {name: key, paths: [{prefix: /echo/key}], service: svc,"
                        " filters: [{key_auth: {header: X-API-Key}}]}\n",
                        e.admin, pport, tport, e.dir, e.dir, e.dir, u->port, fp_gw, fp_c2),
        .expect_errors = true,
        .no_listen = true,
        .no_wait = true,
    };
    h_proxy *p = h_proxy_start(&o);
    cr_assert(h_wait_status(e.admin, "/ready", 200, 10000), "%s", h_proxy_log(p));
    /* allow_groups: a certificate consumer in the group passes, with its identity upstream */
    char *out = mtls_get(&e, tport, "gw", "/echo/allow", "-H 'X-Consumer-ID: forged'");
    cr_expect(strstr(out, "HTTP=200") != NULL, "%s", out);
    cr_expect(strstr(out, "X-Consumer-ID: c-gw") != NULL, "%s", out);
    cr_expect(strstr(out, "X-Consumer-Username: gwapp") != NULL, "%s", out);
    cr_expect(strstr(out, "forged") == NULL, "%s", out);
    /* deny_groups: refused for two (banned), not for gw */
    out = mtls_get(&e, tport, "c2", "/echo/deny", NULL);
    cr_expect(strstr(out, "HTTP=403") != NULL && strstr(out, "consumer not allowed") != NULL, "%s", out);
    out = mtls_get(&e, tport, "gw", "/echo/deny", NULL);
    cr_expect(strstr(out, "HTTP=200") != NULL, "%s", out);
    /* a certificate the CA signed but no consumer lists: no consumer */
    out = mtls_get(&e, tport, "c3", "/echo/allow", NULL);
    cr_expect(strstr(out, "HTTP=403") != NULL && strstr(out, "no consumer identified") != NULL, "%s", out);
    out = mtls_get(&e, tport, NULL, "/echo/allow", NULL);
    cr_expect(strstr(out, "HTTP=403") != NULL, "no certificate: %s", out);
    /* the plain listener has no certificate: no consumer */
    h_resp r;
    h_get(pport, "/echo/allow", &r);
    cr_expect_eq(r.status, 403, "%s", r.body);
    h_get(e.admin, "/metrics", &r);
    cr_expect(strstr(r.body, "ringway_auth_failures_total{route=\"allow\",reason=\"consumer_missing\"} 3") !=
                  NULL,
              "%s", r.body);
    /* rate limit keyed by consumer: one bucket per certificate */
    for (int i = 0; i < 3; i++) {
        out = mtls_get(&e, tport, "gw", "/echo/rl", NULL);
        cr_expect(strstr(out, i < 2 ? "HTTP=200" : "HTTP=429") != NULL, "gw request %d: %s", i, out);
    }
    for (int i = 0; i < 3; i++) {
        out = mtls_get(&e, tport, "c2", "/echo/rl", NULL);
        cr_expect(strstr(out, i < 2 ? "HTTP=200" : "HTTP=429") != NULL, "c2 request %d: %s", i, out);
    }
    /* key_auth wins over the certificate; without a key key_auth refuses */
    out = mtls_get(&e, tport, "gw", "/echo/key", "-H 'X-API-Key: key-0123456789'");
    cr_expect(strstr(out, "HTTP=200") != NULL && strstr(out, "X-Consumer-ID: c-key") != NULL, "%s", out);
    cr_expect(strstr(out, "c-gw") == NULL, "%s", out);
    out = mtls_get(&e, tport, "gw", "/echo/key", NULL);
    cr_expect(strstr(out, "HTTP=401") != NULL, "%s", out);
    h_proxy_stop(p, 2000);
}

H_TEST(mtls, certificate_consumers_refused_at_load)
{
    const char *fp = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const char *fp_colons =
        "sha256:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:"
        "23:45:67:89:AB:CD:EF";
    struct {
        const char *consumers, *want;
    } cases[] = {
        {h_fmt("  - {name: a, certificates: [\"%s\"]}\n  - {name: b, certificates: [\"%s\"]}\n", fp,
               fp_colons),
         "certificate is already used by consumer 'a'"},
        {h_fmt("  - {name: a, certificates: [\"%s\", \"%s\"]}\n", fp_colons, fp), "listed twice"},
        {"  - {name: a, certificates: [\"sha256:abcd\"]}\n", "64 hex digits"},
        {"  - {name: a, certificates: [\"md5:0123\"]}\n", "sha256:"},
        {h_fmt("  - {name: a, certificates: [\"%sx\"]}\n", fp), "64 hex digits"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *cfg = h_fmt("services:\n  - name: s\n    instances: [\"127.0.0.1:1\"]\n"
                          "routes:\n  - {name: r, service: s}\nconsumers:\n%s",
                          cases[i].consumers);
        char *path = h_write_file("bad.yaml", cfg);
        char *out;
        int code = sh(&out, 20000, h_fmt("%s --check-config -c %s", h_binary(), path));
        cr_expect_neq(code, 0, "case %zu accepted", i);
        cr_expect(strstr(out, cases[i].want) != NULL, "case %zu: want '%s' in: %s", i, cases[i].want, out);
    }
}
