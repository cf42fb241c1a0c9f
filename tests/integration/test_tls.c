/* test_tls.c - TLS termination on a listener: certificates by SNI (exact and
 * wildcard, ECDSA and RSA for one name), TLS 1.0/1.1 and weak ciphers
 * refused, keep-alive requests through to an upstream with
 * X-Forwarded-Proto https, large bodies both ways (content-length and
 * chunked), garbage and stalled or vanished handshakes, resumption across
 * workers (TLS 1.2 and 1.3), certificate rotation by a symlink swap and
 * broken replacements, bad certificate files refused at load, and the
 * route keys https_redirect and hsts. The
 * clients are the curl and openssl command-line tools. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* Self-signed CA; api.test (ECDSA P-256 and RSA 2048), *.admin.test (RSA),
 * an expired one, in dir. */
static const char *const GEN_SH =
    "set -e\n"
    "cd \"$1\"\n"
    "q() { \"$@\" >/dev/null 2>&1; }\n"
    "q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt "
    "-days 30 -subj '/CN=rw test CA'\n"
    "leaf() { # name keyalg san days\n"
    "  q openssl req -newkey $2 -nodes -keyout $1.key -out $1.csr -subj \"/CN=$3\"\n"
    "  printf 'subjectAltName=DNS:%s\\n' \"$3\" > $1.ext\n"
    "  q openssl x509 -req -in $1.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $1.crt -days $4 "
    "-extfile $1.ext\n"
    "}\n"
    "leaf api ec:ca.crt api.test 30\n"
    "leaf apirsa rsa:2048 api.test 30\n"
    "leaf adm rsa:2048 '*.admin.test' 30\n"
    "leaf api2 ec:ca.crt api.test 30\n"
    "q openssl x509 -req -in api.csr -CA ca.crt -CAkey ca.key -out old.crt -days -1\n"
    "cp api.key old.key\n";

typedef struct tls_env {
    const char *dir;
    h_upstream *u;
    h_proxy *p;
    int port;  /* plain listener */
    int tport; /* TLS listener */
    int admin; /* admin port */
} tls_env;

static const char *gen_certs(void)
{
    const char *dir = h_fmt("%s/certs", h_tmpdir());
    char *sh = h_write_file("gen.sh", GEN_SH);
    h_cmd *c;
    int code = h_run(&c, 60000, "mkdir -p '%s' && sh '%s' '%s'", dir, sh, dir);
    cr_assert_eq(code, 0, "certificate generation failed: %s", c->err);
    return dir;
}

/* The config: a plain and a TLS listener, every path to the upstream. */
static char *tls_config(const tls_env *e, const char *certs, const char *tls_extra, const char *http_extra)
{
    return h_fmt("listen:\n"
                 "  - \"127.0.0.1:%d\"\n"
                 "  - address: \"127.0.0.1:%d\"\n"
                 "    tls:\n"
                 "      certificates:\n%s"
                 "%s"
                 "%s",
                 e->port, e->tport, certs, tls_extra ? tls_extra : "",
                 h_basic_config(e->u, http_extra, NULL));
}

static const char *default_certs(const char *dir)
{
    return h_fmt("        - {cert_file: %s/api.crt, key_file: %s/api.key}\n"
                 "        - {cert_file: %s/apirsa.crt, key_file: %s/apirsa.key}\n"
                 "        - {cert_file: %s/adm.crt, key_file: %s/adm.key}\n",
                 dir, dir, dir, dir, dir, dir);
}

static void start(tls_env *e, int workers, const char *certs, const char *tls_extra, const char *http_extra,
                  bool expect_errors)
{
    if (e->dir == NULL)
        e->dir = gen_certs();
    e->u = h_upstream_start("u1", NULL);
    e->port = h_free_port();
    e->tport = h_free_port();
    e->admin = h_free_port();
    h_proxy_opts o = {
        .config = h_fmt("admin: \"127.0.0.1:%d\"\n%s", e->admin,
                        tls_config(e, certs ? certs : default_certs(e->dir), tls_extra, http_extra)),
        .workers = workers,
        .no_listen = true,
        .no_wait = true,
        .expect_errors = expect_errors,
        .log_level = "debug",
    };
    e->p = h_proxy_start(&o);
    cr_assert(h_wait_status(e->port, "/health", 200, 10000), "ringway did not become healthy:\n%s",
              h_proxy_log(e->p));
}

/* Runs a shell command; returns its exit code, stdout+stderr in *out. */
static int sh(char **out, int timeout_ms, const char *cmd)
{
    h_cmd *c;
    int code = h_run(&c, timeout_ms, "%s", cmd);
    *out = h_fmt("%s%s", c->out ? c->out : "", c->err ? c->err : "");
    return code;
}

static char *curl_v(const tls_env *e, const char *name, const char *path)
{
    char *out;
    sh(&out, 20000,
       h_fmt("curl -sS -v --cacert %s/ca.crt --resolve %s:%d:127.0.0.1 https://%s:%d%s", e->dir, name,
             e->tport, name, e->tport, path));
    return out;
}

/* openssl s_client with args; its output. */
static int s_client(const tls_env *e, const char *args, char **out)
{
    return sh(out, 20000,
              h_fmt("printf 'GET /echo HTTP/1.1\\r\\nHost: a\\r\\nConnection: close\\r\\n\\r\\n' | "
                    "openssl s_client -connect 127.0.0.1:%d -CAfile %s/ca.crt -ign_eof %s 2>&1",
                    e->tport, e->dir, args));
}

H_TEST(tls, sni_picks_certificates)
{
    tls_env e = {0};
    start(&e, 1, NULL, NULL, NULL, false);
    char *o = curl_v(&e, "api.test", "/echo");
    cr_expect(strstr(o, "subject: CN=api.test") != NULL, "%s", o);
    cr_expect(strstr(o, "HTTP/1.1 200") != NULL, "%s", o);
    cr_expect(strstr(o, "ALPN: server accepted http/1.1") != NULL, "%s", o);
    o = curl_v(&e, "x.admin.test", "/echo");
    cr_expect(strstr(o, "subject: CN=*.admin.test") != NULL, "%s", o);
    cr_expect(strstr(o, "HTTP/1.1 200") != NULL, "%s", o);
    /* an unknown name gets the default (the first), whose name curl rejects */
    char *out;
    s_client(&e, "-servername unknown.test", &out);
    cr_expect(strstr(out, "subject=CN = api.test") != NULL, "%s", out);
    /* no SNI at all: the default */
    s_client(&e, "", &out);
    cr_expect(strstr(out, "subject=CN = api.test") != NULL, "%s", out);
    /* api.test has ECDSA and RSA: a client that takes ECDSA gets it, one that
     * only offers RSA suites under TLS 1.2 gets the RSA one */
    s_client(&e, "-servername api.test -tls1_2", &out);
    cr_expect(strstr(out, "ECDHE-ECDSA-") != NULL, "%s", out);
    s_client(&e, "-servername api.test -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256", &out);
    cr_expect(strstr(out, "Cipher is ECDHE-RSA-AES128-GCM-SHA256") != NULL, "%s", out);
    cr_expect(strstr(out, "Server public key is 2048 bit") != NULL, "%s", out);
    /* TLS 1.3 with an RSA-only signature list: the RSA certificate */
    s_client(&e, "-servername api.test -tls1_3 -sigalgs rsa_pss_rsae_sha256", &out);
    cr_expect(strstr(out, "Server public key is 2048 bit") != NULL, "%s", out);
    /* h2 only: no ALPN, HTTP/1.1 still works */
    s_client(&e, "-servername api.test -alpn h2", &out);
    cr_expect(strstr(out, "No ALPN negotiated") != NULL, "%s", out);
    cr_expect(strstr(out, "HTTP/1.1 200") != NULL, "%s", out);
}

H_TEST(tls, old_versions_and_weak_ciphers_refused)
{
    tls_env e = {0};
    start(&e, 1, NULL, NULL, NULL, false);
    char *out;
    const char *bad[] = {"-tls1_1",
                         "-tls1",
                         "-tls1_2 -cipher AES128-GCM-SHA256",
                         "-tls1_2 -cipher AES128-SHA",
                         "-tls1_2 -cipher ECDHE-RSA-AES128-SHA",
                         "-tls1_2 -cipher ECDHE-ECDSA-AES256-SHA384"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s_client(&e, h_fmt("-servername api.test %s", bad[i]), &out);
        cr_expect(strstr(out, "HTTP/1.1 200") == NULL && strstr(out, "Cipher is (NONE)") != NULL,
                  "%s was accepted:\n%s", bad[i], out);
    }
    /* the refusal's alert reaches the client before the close */
    const char *alerts[][2] = {{"-tls1_1", "alert protocol version"},
                               {"-tls1_2 -cipher AES128-SHA", "alert handshake failure"},
                               {"-tls1_2 -cipher ECDHE-ECDSA-AES256-SHA384", "alert handshake failure"}};
    for (size_t i = 0; i < sizeof(alerts) / sizeof(alerts[0]); i++) {
        s_client(&e, h_fmt("-servername api.test %s", alerts[i][0]), &out);
        cr_expect(strstr(out, alerts[i][1]) != NULL, "%s: no \"%s\":\n%s", alerts[i][0], alerts[i][1], out);
    }
    s_client(&e, "-servername api.test -tls1_2", &out);
    cr_expect(strstr(out, "HTTP/1.1 200") != NULL, "%s", out);
    s_client(&e, "-servername api.test -tls1_3", &out);
    cr_expect(strstr(out, "HTTP/1.1 200") != NULL, "%s", out);
    /* min_version 1.3 refuses 1.2 */
    h_proxy_stop(e.p, 0);
    start(&e, 1, NULL, "      min_version: \"1.3\"\n", NULL, false);
    s_client(&e, "-servername api.test -tls1_2", &out);
    cr_expect(strstr(out, "HTTP/1.1 200") == NULL, "%s", out);
    s_client(&e, "-servername api.test -tls1_3", &out);
    cr_expect(strstr(out, "HTTP/1.1 200") != NULL, "%s", out);
}

H_TEST(tls, keepalive_to_upstream_with_forwarded_proto)
{
    tls_env e = {0};
    start(&e, 1, NULL, NULL, NULL, false);
    char *out;
    sh(&out, 20000,
       h_fmt("curl -sS -v --cacert %s/ca.crt --resolve api.test:%d:127.0.0.1 https://api.test:%d/echo "
             "https://api.test:%d/echo https://api.test:%d/echo",
             e.dir, e.tport, e.tport, e.tport, e.tport));
    int n = 0;
    for (const char *p = out; (p = strstr(p, "X-Forwarded-Proto: https")) != NULL; p++)
        n++;
    cr_expect_eq(n, 3, "%s", out);
    cr_expect(strstr(out, "Re-using existing connection") != NULL || strstr(out, "Reusing existing") != NULL,
              "%s", out);
    int hs = 0;
    for (const char *p = out; (p = strstr(p, "Client hello")) != NULL; p++)
        hs++;
    cr_expect_eq(hs, 1, "one handshake for three requests:\n%s", out);
    /* the plain listener still says http */
    h_resp r;
    h_get(e.port, "/echo", &r);
    cr_expect(strstr(r.body, "X-Forwarded-Proto: http\r\n") != NULL, "%s", r.body);
}

static uint64_t file_fnv(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL, "%s", path);
    uint64_t h = 0xcbf29ce484222325ull;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        h = h_fnv1a(h, buf, n);
    fclose(f);
    return h;
}

H_TEST(tls, large_bodies_both_ways)
{
    tls_env e = {0};
    start(&e, 1, NULL, NULL, NULL, false);
    const char *in = h_fmt("%s/in.bin", h_tmpdir());
    char *out;
    cr_assert_eq(sh(&out, 20000, h_fmt("head -c 5000000 /dev/urandom > %s", in)), 0);
    char want[32];
    snprintf(want, sizeof(want), "%016llx", (unsigned long long)file_fnv(in));
    const char *base =
        h_fmt("curl -sS --cacert %s/ca.crt --resolve api.test:%d:127.0.0.1 https://api.test:%d", e.dir,
              e.tport, e.tport);
    sh(&out, 30000, h_fmt("%s/sum --data-binary @%s", base, in));
    cr_expect(strstr(out, "\"bytes\": 5000000") != NULL && strstr(out, want) != NULL, "%s (want %s)", out,
              want);
    sh(&out, 30000, h_fmt("%s/sum -H 'Transfer-Encoding: chunked' --data-binary @%s", base, in));
    cr_expect(strstr(out, "\"bytes\": 5000000") != NULL && strstr(out, want) != NULL, "%s (want %s)", out,
              want);
    const char *got = h_fmt("%s/got.bin", h_tmpdir());
    const char *paths[] = {"/bytes/7000001", "/chunked/7000001"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(sh(&out, 30000, h_fmt("%s%s -o %s", base, paths[i], got)), 0, "%s", out);
        cr_expect_eq(file_fnv(got), h_pattern_fnv(7000001), "%s differs", paths[i]);
    }
}

H_TEST(tls, garbage_stalls_and_vanishing_clients)
{
    tls_env e = {0};
    start(&e, 1, NULL, NULL, "  client_header_timeout: 1s\n", false);
    /* garbage instead of a ClientHello: closed */
    h_conn *c = h_connect(e.tport);
    h_sends(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    cr_expect(h_wait_closed(c, 3000, NULL), "plain HTTP on the TLS port was not closed");
    h_close(c);
    c = h_connect(e.tport);
    char junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)h_pattern_byte(i * 7919);
    h_send(c, junk, sizeof(junk));
    cr_expect(h_wait_closed(c, 3000, NULL), "garbage was not closed");
    h_close(c);
    /* a stalled handshake: the first bytes of a record, then nothing */
    int64_t t0 = h_now_ms();
    c = h_connect(e.tport);
    h_send(c, "\x16\x03\x01\x02\x00\x01", 6);
    cr_expect(h_wait_closed(c, 4000, NULL), "a stalled handshake was not closed");
    int64_t took = h_now_ms() - t0;
    cr_expect(took >= 800 && took < 3000, "closed after %lld ms", (long long)took);
    h_close(c);
    /* silent after connect */
    c = h_connect(e.tport);
    cr_expect(h_wait_closed(c, 4000, NULL), "an idle TLS connection was not closed");
    h_close(c);
    /* vanishing mid-handshake */
    for (int i = 0; i < 20; i++) {
        c = h_connect(e.tport);
        h_send(c, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
        h_close(c);
    }
    char *out;
    sh(&out, 10000,
       h_fmt("for i in 1 2 3 4 5; do timeout 2 openssl s_client -connect 127.0.0.1:%d </dev/null >/dev/null "
             "2>&1 & done; sleep 0.05; kill %%1 %%2 2>/dev/null; wait; true",
             e.tport));
    char *o = curl_v(&e, "api.test", "/echo");
    cr_expect(strstr(o, "HTTP/1.1 200") != NULL, "%s", o);
}

static void resume_case(tls_env *e, const char *ver)
{
    const char *sess = h_fmt("%s/sess%s.pem", h_tmpdir(), ver);
    char *out;
    s_client(e, h_fmt("-servername api.test %s -sess_out %s", ver, sess), &out);
    cr_assert(strstr(out, "HTTP/1.1 200") != NULL, "%s", out);
    int reused = 0;
    for (int i = 0; i < 8; i++) {
        s_client(e, h_fmt("-servername api.test %s -sess_in %s", ver, sess), &out);
        cr_expect(strstr(out, "HTTP/1.1 200") != NULL, "%s", out);
        reused += strstr(out, "\nReused, ") != NULL;
    }
    cr_expect_eq(reused, 8, "%s: %d of 8 resumed", ver, reused);
}

H_TEST(tls, resumption_across_workers)
{
    tls_env e = {0};
    start(&e, 2, NULL, NULL, NULL, false);
    resume_case(&e, "-tls1_2");
    resume_case(&e, "-tls1_3");
    /* every handshake counted under its version and suite: 9 each */
    h_resp r;
    h_get(e.admin, "/metrics", &r);
    cr_expect(strstr(r.body, "ringway_tls_connections_total{version=\"TLSv1.3\",cipher=\"TLS_AES_") != NULL,
              "%s", r.body);
    cr_expect(
        strstr(r.body, "ringway_tls_connections_total{version=\"TLSv1.2\",cipher=\"TLS_ECDHE_ECDSA_WITH_") !=
            NULL,
        "%s", r.body);
    cr_expect(strstr(r.body, "ringway_tls_handshakes_total{result=\"resumed\"} 16\n") != NULL, "%s", r.body);
}

/* session_tickets.key_file: nodes with the same file resume each other's
 * sessions; a node with its own secret does not; a short file is refused. */
H_TEST(tls, ticket_key_file_shared_by_a_fleet)
{
    char *key = h_fmt("%s/ticket.key", h_tmpdir());
    char *out;
    cr_assert_eq(sh(&out, 10000, h_fmt("openssl rand 48 > %s", key)), 0, "%s", out);
    const char *extra = h_fmt("      session_tickets: {key_file: %s}\n", key);
    tls_env a = {0}, b = {0}, c = {0};
    start(&a, 1, NULL, extra, NULL, false);
    b.dir = c.dir = a.dir;
    start(&b, 1, NULL, extra, NULL, false);
    start(&c, 1, NULL, NULL, NULL, false);
    for (int v = 0; v < 2; v++) {
        const char *ver = v == 0 ? "-tls1_2" : "-tls1_3";
        const char *sess = h_fmt("%s/fleet%s.pem", h_tmpdir(), ver);
        s_client(&a, h_fmt("-servername api.test %s -sess_out %s", ver, sess), &out);
        cr_assert(strstr(out, "HTTP/1.1 200") != NULL, "%s", out);
        s_client(&b, h_fmt("-servername api.test %s -sess_in %s", ver, sess), &out);
        cr_expect(strstr(out, "\nReused, ") != NULL, "%s: another node with the key file did not resume:\n%s",
                  ver, out);
        s_client(&c, h_fmt("-servername api.test %s -sess_in %s", ver, sess), &out);
        cr_expect(strstr(out, "\nNew, ") != NULL, "%s: a node without the key file resumed:\n%s", ver, out);
        cr_expect(strstr(out, "HTTP/1.1 200") != NULL, "%s", out);
    }
    char *shortkey = h_write_file("short.key", "0123456789");
    char *cfg =
        h_fmt("listen:\n  - address: \"127.0.0.1:1\"\n    tls:\n      certificates:\n        - {cert_file: "
              "%s/api.crt, key_file: %s/api.key}\n      session_tickets: {key_file: %s}\n",
              a.dir, a.dir, shortkey);
    int code = sh(&out, 20000, h_fmt("%s --check-config -c %s", h_binary(), h_write_file("k.yaml", cfg)));
    cr_expect_neq(code, 0);
    cr_expect(strstr(out, "fewer than 32 bytes") != NULL, "%s", out);
}

H_TEST(tls, tickets_off)
{
    tls_env e = {0};
    start(&e, 1, NULL, "      session_tickets: {enabled: false}\n", NULL, false);
    const char *sess = h_fmt("%s/s.pem", h_tmpdir());
    char *out;
    s_client(&e, h_fmt("-servername api.test -tls1_2 -sess_out %s", sess), &out);
    cr_expect(strstr(out, "TLS session ticket:") == NULL, "%s", out);
    if (access(sess, R_OK) == 0) { /* a session without ticket or id cannot resume */
        s_client(&e, h_fmt("-servername api.test -tls1_2 -sess_in %s", sess), &out);
        cr_expect(strstr(out, "\nNew, ") != NULL, "%s", out);
    }
}

H_TEST(tls, bad_certificate_files_refused)
{
    const char *dir = gen_certs();
    struct {
        const char *certs;
        const char *want;
    } cases[] = {
        {h_fmt("        - {cert_file: %s/missing.crt, key_file: %s/api.key}\n", dir, dir), "missing.crt"},
        {h_fmt("        - {cert_file: %s/api.crt, key_file: %s/adm.key}\n", dir, dir),
         "adm.key does not match cert_file"},
        {h_fmt("        - {cert_file: %s/old.crt, key_file: %s/old.key}\n", dir, dir),
         "old.crt: the certificate has expired"},
        {h_fmt("        - {cert_file: %s/api.key, key_file: %s/api.key}\n", dir, dir), "no PEM certificate"},
        {"        []\n", "certificates"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *cfg =
            h_fmt("listen:\n  - address: \"127.0.0.1:1\"\n    tls:\n      certificates:\n%s", cases[i].certs);
        char *path = h_write_file("bad.yaml", cfg);
        char *out;
        int code = sh(&out, 20000, h_fmt("%s --check-config -c %s", h_binary(), path));
        cr_expect_neq(code, 0, "case %zu accepted", i);
        cr_expect(strstr(out, cases[i].want) != NULL, "case %zu: want '%s' in: %s", i, cases[i].want, out);
    }
}

static char *served_fingerprint(const tls_env *e)
{
    char *out;
    sh(&out, 20000,
       h_fmt("openssl s_client -connect 127.0.0.1:%d -servername api.test </dev/null 2>/dev/null | "
             "openssl x509 -noout -fingerprint -sha256",
             e->tport));
    return out;
}

static char *file_fingerprint(const char *path)
{
    char *out;
    sh(&out, 20000, h_fmt("openssl x509 -noout -fingerprint -sha256 -in %s", path));
    return out;
}

/* A Kubernetes Secret mount: tls.crt -> ..data/tls.crt, ..data -> ..v1; an
 * update writes ..v2 and renames a new ..data link over the old one. */
H_TEST(tls, rotation_by_symlink_swap)
{
    tls_env e = {0};
    e.dir = gen_certs();
    const char *m = h_fmt("%s/mount", h_tmpdir());
    char *out;
    cr_assert_eq(sh(&out, 10000,
                    h_fmt("set -e; mkdir -p %s/..v1 && cp %s/api.crt %s/..v1/tls.crt && cp %s/api.key "
                          "%s/..v1/tls.key && cd %s && ln -s ..v1 ..data && ln -s ..data/tls.crt tls.crt && "
                          "ln -s ..data/tls.key tls.key",
                          m, e.dir, m, e.dir, m, m)),
                 0, "%s", out);
    start(&e, 2, h_fmt("        - {cert_file: %s/tls.crt, key_file: %s/tls.key}\n", m, m), NULL, NULL, true);
    char *want1 = file_fingerprint(h_fmt("%s/api.crt", e.dir));
    cr_expect_str_eq(served_fingerprint(&e), want1);
    /* under load: new TLS connections and keep-alive ones across the swap */
    h_cmd *probe, *w = NULL;
    if (h_run(&probe, 5000, "command -v wrk") == 0)
        w = h_cmd_start("wrk -t2 -c16 -d4s https://127.0.0.1:%d/echo", e.tport);
    h_sleep_ms(500);
    /* the swap */
    cr_assert_eq(sh(&out, 10000,
                    h_fmt("set -e; cd %s && mkdir ..v2 && cp %s/api2.crt ..v2/tls.crt && cp %s/api2.key "
                          "..v2/tls.key && ln -s ..v2 ..data_tmp && mv -T ..data_tmp ..data",
                          m, e.dir, e.dir)),
                 0, "%s", out);
    char *want2 = file_fingerprint(h_fmt("%s/api2.crt", e.dir));
    int64_t t0 = h_now_ms();
    char *got = served_fingerprint(&e);
    while (strcmp(got, want2) != 0 && h_now_ms() - t0 < 2000) {
        h_sleep_ms(100);
        got = served_fingerprint(&e);
    }
    cr_expect_str_eq(got, want2, "not served within 2 s");
    cr_expect(h_proxy_wait_log(e.p, "certificates reloaded", 1, 2000));
    if (w != NULL) {
        int code = h_cmd_wait(w, 15000);
        cr_expect_eq(code, 0, "wrk failed (%d): %s %s", code, w->out, w->err);
        cr_expect(strstr(w->out, "requests in") != NULL, "%s", w->out);
        cr_expect_null(strstr(w->out, "Socket errors:"), "socket errors across the certificate swap:\n%s",
                       w->out);
        cr_expect_null(strstr(w->out, "Non-2xx"), "non-2xx across the certificate swap:\n%s", w->out);
    }
    /* a broken replacement: the key does not match; the old one stays */
    cr_assert_eq(sh(&out, 10000,
                    h_fmt("set -e; cd %s && mkdir ..v3 && cp %s/api.crt ..v3/tls.crt && cp %s/adm.key "
                          "..v3/tls.key && ln -s ..v3 ..data_tmp && mv -T ..data_tmp ..data",
                          m, e.dir, e.dir)),
                 0, "%s", out);
    cr_expect(h_proxy_wait_log(e.p, "keeping the old certificates", 1, 3000), "%s", h_proxy_log(e.p));
    cr_expect(h_proxy_log_contains(e.p, "does not match cert_file"));
    cr_expect_str_eq(served_fingerprint(&e), want2);
    /* a reload (SIGHUP) with the files fixed builds a new context */
    cr_assert_eq(sh(&out, 10000, h_fmt("cp %s/api.key %s/..v3/tls.key", e.dir, m)), 0);
    h_proxy_signal(e.p, SIGHUP);
    cr_expect(h_proxy_wait_log(e.p, "reloaded", 2, 3000));
    t0 = h_now_ms();
    got = served_fingerprint(&e);
    while (strcmp(got, want1) != 0 && h_now_ms() - t0 < 2000) {
        h_sleep_ms(100);
        got = served_fingerprint(&e);
    }
    cr_expect_str_eq(got, want1);
}

/* ---- route.https_redirect and route.hsts ---- */

#define HSTS "max-age=31536000; includeSubDomains"

/* curl -i over TLS (tls) or to the plain listener with Host api.test:8080;
 * the head and body, then "HTTP=<status>". */
static char *curl_i(const tls_env *e, bool tls, const char *method, const char *path)
{
    char *out;
    if (tls)
        sh(&out, 20000,
           h_fmt("curl -sS -i %s --cacert %s/ca.crt --resolve api.test:%d:127.0.0.1 "
                 "-w 'HTTP=%%{http_code}\\n' 'https://api.test:%d%s'",
                 strcmp(method, "HEAD") == 0 ? "-I" : h_fmt("-X %s", method), e->dir, e->tport, e->tport,
                 path));
    else
        sh(&out, 20000,
           h_fmt("curl -sS -i -X %s -H 'Host: api.test:8080' -w 'HTTP=%%{http_code}\\n' "
                 "'http://127.0.0.1:%d%s'",
                 method, e->port, path));
    return out;
}

H_TEST(tls, https_redirect_and_hsts)
{
    tls_env e = {0};
    e.dir = gen_certs();
    e.u = h_upstream_start("u1", NULL);
    e.port = h_free_port();
    e.tport = h_free_port();
    h_proxy_opts o = {
        .config = h_fmt("listen:\n"
                        "  - \"127.0.0.1:%d\"\n"
                        "  - address: \"127.0.0.1:%d\"\n"
                        "    tls:\n"
                        "      certificates: [{cert_file: %s/api.crt, key_file: %s/api.key}]\n"
                        "services:\n"
                        "  - {name: svc, instances: [{address: \"127.0.0.1:%d\"}]}\n"
                        "  - {name: dead, instances: [{address: \"127.0.0.1:1\"}]}\n"
                        "routes:\n"
                        "  - {name: secure, paths: [{prefix: /echo/secure}], service: svc,"
                        " https_redirect: true, hsts: \"" HSTS "\"}\n"
                        "  - {name: hs, paths: [{prefix: /echo/hs}], service: svc, hsts: \"" HSTS "\","
                        " filters: [{key_auth: {}}]}\n"
                        "  - {name: dead, paths: [{prefix: /dead}], service: dead, hsts: \"" HSTS "\"}\n"
                        "  - {name: gone, paths: [{prefix: /gone}], hsts: \"" HSTS "\","
                        " respond: {status: 404, body: \"gone\\n\"}}\n"
                        "  - {name: plain, paths: [{prefix: /echo/plain}], service: svc}\n"
                        "consumers:\n"
                        "  - {name: k, keys: [\"key-0123456789\"]}\n",
                        e.port, e.tport, e.dir, e.dir, e.u->port),
        .no_listen = true,
        .no_wait = true,
        .expect_errors = true,
    };
    e.p = h_proxy_start(&o);
    cr_assert(h_wait_status(e.port, "/health", 200, 10000), "%s", h_proxy_log(e.p));
    const char *sts = "Strict-Transport-Security: " HSTS "\r\n";
    /* plain listener: 308 to the TLS listener's port, path and query kept, before filters */
    char *out = curl_i(&e, false, "GET", "/echo/secure/a%20b?x=1&y=2");
    cr_expect(strstr(out, "HTTP=308") != NULL, "%s", out);
    cr_expect(strstr(out, h_fmt("Location: https://api.test:%d/echo/secure/a%%20b?x=1&y=2\r\n", e.tport)) !=
                  NULL,
              "%s", out);
    cr_expect(strstr(out, "Strict-Transport-Security") == NULL, "no HSTS over plain HTTP: %s", out);
    cr_expect(strstr(out, "X-Echo") == NULL && strstr(out, "GET /echo") == NULL, "not forwarded: %s", out);
    out = curl_i(&e, false, "POST", "/echo/secure");
    cr_expect(strstr(out, "HTTP=308") != NULL &&
                  strstr(out, h_fmt("https://api.test:%d/echo/secure\r\n", e.tport)),
              "%s", out);
    /* TLS listener: no redirect; HSTS on the upstream's response */
    out = curl_i(&e, true, "GET", "/echo/secure/a?x=1");
    cr_expect(strstr(out, "HTTP=200") != NULL, "%s", out);
    cr_expect(strstr(out, sts) != NULL, "%s", out);
    /* hsts without redirect: TLS only, also on ringway's own answers (401 of a filter, 502, a respond 404) */
    out = curl_i(&e, false, "GET", "/echo/hs");
    cr_expect(strstr(out, "HTTP=401") != NULL && strstr(out, "Strict-Transport") == NULL, "%s", out);
    out = curl_i(&e, true, "GET", "/echo/hs");
    cr_expect(strstr(out, "HTTP=401") != NULL && strstr(out, sts) != NULL, "%s", out);
    out = curl_i(&e, true, "GET", "/dead");
    cr_expect(strstr(out, "HTTP=502") != NULL && strstr(out, sts) != NULL, "%s", out);
    out = curl_i(&e, false, "GET", "/dead");
    cr_expect(strstr(out, "HTTP=502") != NULL && strstr(out, "Strict-Transport") == NULL, "%s", out);
    out = curl_i(&e, true, "GET", "/gone");
    cr_expect(strstr(out, "HTTP=404") != NULL && strstr(out, sts) != NULL && strstr(out, "gone\n") != NULL,
              "%s", out);
    out = curl_i(&e, true, "HEAD", "/gone");
    cr_expect(strstr(out, sts) != NULL, "%s", out);
    out = curl_i(&e, false, "GET", "/gone");
    cr_expect(strstr(out, "HTTP=404") != NULL && strstr(out, "Strict-Transport") == NULL, "%s", out);
    /* a route without hsts: none; an unmatched path has no route: none */
    out = curl_i(&e, true, "GET", "/echo/plain");
    cr_expect(strstr(out, "HTTP=200") != NULL && strstr(out, "Strict-Transport") == NULL, "%s", out);
    out = curl_i(&e, true, "GET", "/nothing");
    cr_expect(strstr(out, "HTTP=404") != NULL && strstr(out, "Strict-Transport") == NULL, "%s", out);
    /* keep-alive: several requests on one TLS connection keep their HSTS */
    sh(&out, 20000,
       h_fmt("curl -sS -i --cacert %s/ca.crt --resolve api.test:%d:127.0.0.1 https://api.test:%d/echo/secure "
             "https://api.test:%d/gone https://api.test:%d/echo/plain",
             e.dir, e.tport, e.tport, e.tport, e.tport));
    int n = 0;
    for (const char *p = out; (p = strstr(p, "Strict-Transport-Security")) != NULL; p++)
        n++;
    cr_expect_eq(n, 2, "%s", out);
    h_proxy_stop(e.p, 2000);
}

H_TEST(tls, hsts_refused_at_load)
{
    const char *bad[] = {"31536000", "max-age=", "max-age=1\\x01", "includeSubDomains; max-age=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *cfg = h_fmt("services:\n  - name: s\n    instances: [\"127.0.0.1:1\"]\n"
                          "routes:\n  - {name: r, service: s, hsts: \"%s\"}\n",
                          bad[i]);
        char *path = h_write_file("bad.yaml", cfg);
        char *out;
        int code = sh(&out, 20000, h_fmt("%s --check-config -c %s", h_binary(), path));
        cr_expect_neq(code, 0, "case %zu accepted", i);
        cr_expect(strstr(out, "hsts") != NULL, "case %zu: %s", i, out);
    }
}

/* Files replaced in a plain directory (rename over them, as an editor or
 * a deploy script does): the directory's inotify watch sees it. */
H_TEST(tls, rotation_by_rename_in_plain_dir)
{
    tls_env e = {0};
    e.dir = gen_certs();
    const char *d = h_fmt("%s/plain", h_tmpdir());
    char *out;
    cr_assert_eq(sh(&out, 10000,
                    h_fmt("set -e; mkdir -p %s && cp %s/api.crt %s/tls.crt && cp %s/api.key %s/tls.key", d,
                          e.dir, d, e.dir, d)),
                 0, "%s", out);
    start(&e, 1, h_fmt("        - {cert_file: %s/tls.crt, key_file: %s/tls.key}\n", d, d), NULL, NULL, true);
    cr_expect_str_eq(served_fingerprint(&e), file_fingerprint(h_fmt("%s/api.crt", e.dir)));
    cr_assert_eq(
        sh(&out, 10000,
           h_fmt("set -e; cd %s && cp %s/api2.crt n.crt && cp %s/api2.key n.key && mv n.key tls.key && "
                 "mv n.crt tls.crt",
                 d, e.dir, e.dir)),
        0, "%s", out);
    char *want2 = file_fingerprint(h_fmt("%s/api2.crt", e.dir));
    int64_t t0 = h_now_ms();
    char *got = served_fingerprint(&e);
    while (strcmp(got, want2) != 0 && h_now_ms() - t0 < 2000) {
        h_sleep_ms(50);
        got = served_fingerprint(&e);
    }
    cr_expect_str_eq(got, want2, "not served within 2 s");
    cr_log_info("new certificate served after %lld ms", (long long)(h_now_ms() - t0));
    /* a broken certificate file: the old certificates stay */
    cr_assert_eq(sh(&out, 10000, h_fmt("cd %s && printf 'junk' > n.crt && mv n.crt tls.crt", d)), 0, "%s",
                 out);
    cr_expect(h_proxy_wait_log(e.p, "keeping the old certificates", 1, 2000), "%s", h_proxy_log(e.p));
    cr_expect_str_eq(served_fingerprint(&e), want2);
}

/* tls.handshake_timeout bounds the handshake on its own; the head's time is
 * still http.client_header_timeout. */
H_TEST(tls, handshake_timeout)
{
    tls_env e = {0};
    start(&e, 1, NULL, "      handshake_timeout: 300ms\n", "  client_header_timeout: 10s\n", false);
    int64_t t0 = h_now_ms();
    h_conn *c = h_connect(e.tport);
    h_send(c, "\x16\x03\x01\x02\x00\x01", 6);
    cr_expect(h_wait_closed(c, 4000, NULL), "a stalled handshake was not closed");
    int64_t took = h_now_ms() - t0;
    cr_expect(took >= 250 && took < 2000, "closed after %lld ms", (long long)took);
    h_close(c);
    char *o = curl_v(&e, "api.test", "/echo");
    cr_expect(strstr(o, "HTTP/1.1 200") != NULL, "%s", o);
}
