/* test_auth.c - access filters end to end: JWT (HMAC, RSA, RSA-PSS, ECDSA,
 * EdDSA; keys from the config or a JWKS file rotated at run time), API keys,
 * ACLs by group and by address (trusted proxies), consumer identity headers,
 * config errors and reloads.
 *
 * Tokens come from an independent implementation: Debian's PyJWT through
 * /usr/bin/python3 (with `cryptography`), keys from the openssl CLI. Tests
 * that need tokens skip when that python lacks the jwt module. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define PY "/usr/bin/python3"
#define SECRET "0123456789abcdef0123456789abcdef" /* 32 bytes: HS256's minimum */
#define SECRET2 "fedcba9876543210fedcba9876543210"

/* ---- helpers ------------------------------------------------------------ */

#define OR_MISSING(s) ((s) ? (s) : "(missing)")

/* The helper script: tokens with PyJWT, an HS256 token over arbitrary key
 * bytes (PyJWT refuses PEM text as an HMAC key), JWKS documents, SHA-256. */
static const char PY_SCRIPT[] =
    "import sys, json, base64, hmac, hashlib\n"
    "def b64(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()\n"
    "def rd(p): return open(p, 'rb').read()\n"
    "m = sys.argv[1]\n"
    "if m == 'tok':\n"
    "    import jwt\n"
    "    alg, key, claims, kid = sys.argv[2:6]\n"
    "    k = rd(key[1:]) if key.startswith('@') else key\n"
    "    hd = {'kid': kid} if kid != '-' else None\n"
    "    print(jwt.encode(json.loads(claims), k, algorithm=alg, headers=hd))\n"
    "elif m == 'rawhs':\n"
    "    keyfile, claims, kid = sys.argv[2:5]\n"
    "    h = {'alg': 'HS256', 'typ': 'JWT'}\n"
    "    if kid != '-': h['kid'] = kid\n"
    "    si = b64(json.dumps(h).encode()) + '.' + b64(claims.encode())\n"
    "    print(si + '.' + b64(hmac.new(rd(keyfile), si.encode(), hashlib.sha256).digest()))\n"
    "elif m == 'rawhsh':\n"
    "    keyfile, header, claims = sys.argv[2:5]\n"
    "    si = b64(header.encode()) + '.' + b64(claims.encode())\n"
    "    print(si + '.' + b64(hmac.new(rd(keyfile), si.encode(), hashlib.sha256).digest()))\n"
    "elif m == 'es256der':\n"
    "    from cryptography.hazmat.primitives.serialization import load_pem_private_key\n"
    "    from cryptography.hazmat.primitives.asymmetric import ec\n"
    "    from cryptography.hazmat.primitives import hashes\n"
    "    keyfile, claims = sys.argv[2:4]\n"
    "    k = load_pem_private_key(rd(keyfile), None)\n"
    "    si = b64(json.dumps({'alg': 'ES256', 'typ': 'JWT'}).encode()) + '.' + b64(claims.encode())\n"
    "    print(si + '.' + b64(k.sign(si.encode(), ec.ECDSA(hashes.SHA256()))))\n"
    "elif m == 'jwks':\n"
    "    import jwt.algorithms as A\n"
    "    from cryptography.hazmat.primitives.serialization import load_pem_public_key\n"
    "    keys = []\n"
    "    for spec in sys.argv[2:]:\n"
    "        kid, alg, path = spec.split(':', 2)\n"
    "        pub = load_pem_public_key(rd(path))\n"
    "        cls = {'RS': A.RSAAlgorithm, 'PS': A.RSAAlgorithm, 'ES': A.ECAlgorithm, 'Ed': "
    "A.OKPAlgorithm}[alg[:2]]\n"
    "        j = json.loads(cls.to_jwk(pub))\n"
    "        if j.get('kty') == 'EC':\n"
    "            # PyJWT < 2.8 drops leading zero bytes of x and y (1 key in 128);\n"
    "            # RFC 7518 6.2.1.2 wants the full coordinate length\n"
    "            size = {'P-256': 32, 'P-384': 48, 'P-521': 66}[j['crv']]\n"
    "            for c in ('x', 'y'):\n"
    "                raw = base64.urlsafe_b64decode(j[c] + '=' * (-len(j[c]) % 4)).rjust(size, b'\\0')\n"
    "                j[c] = base64.urlsafe_b64encode(raw).rstrip(b'=').decode()\n"
    "        j['kid'] = kid; j['alg'] = alg; j['use'] = 'sig'\n"
    "        keys.append(j)\n"
    "    print(json.dumps({'keys': keys}))\n"
    "elif m == 'sha256':\n"
    "    print(hashlib.sha256(sys.argv[2].encode()).hexdigest())\n";

static char *g_script;

/* Writes the helper script; skips the test when /usr/bin/python3 has no PyJWT. */
static void py_init(void)
{
    h_cmd *c;
    int rc = h_run(&c, 20000, "%s -c 'import jwt, cryptography' 2>&1", PY);
    if (rc != 0)
        cr_skip_test("%s cannot import jwt/cryptography (PyJWT missing): %s", PY, c->out);
    g_script = h_write_file("mint.py", PY_SCRIPT);
}

/* Runs the helper script with args; asserts success; returns stdout without
 * the trailing newline. */
static char *py(const char *args)
{
    cr_assert(g_script != NULL, "py_init() was not called");
    h_cmd *c;
    int rc = h_run(&c, 20000, "%s '%s' %s", PY, g_script, args);
    cr_assert_eq(rc, 0, "python %s failed (%d): %s%s", args, rc, c->out, c->err);
    char *s = h_fmt("%s", c->out);
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* A token signed by PyJWT. key: an HMAC secret, or "@path" of a PEM private
 * key; claims: JSON (no single quotes); kid: NULL for none. */
static char *mint(const char *alg, const char *key, const char *claims, const char *kid)
{
    return py(h_fmt("tok %s '%s' '%s' '%s'", alg, key, claims, kid ? kid : "-"));
}

typedef struct keypair {
    char *priv; /* PEM private key path */
    char *pub;  /* PEM public key (SPKI) path */
    char *at;   /* "@priv" for mint() */
} keypair;

/* kind: "rsa" (2048), "rsa1024", "ec" (P-256), "ed25519". */
static keypair genkey(const char *name, const char *kind)
{
    const char *opt = !strcmp(kind, "rsa")       ? "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"
                      : !strcmp(kind, "rsa1024") ? "-algorithm RSA -pkeyopt rsa_keygen_bits:1024"
                      : !strcmp(kind, "ec")      ? "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"
                                                 : "-algorithm ed25519";
    keypair k;
    k.priv = h_fmt("%s/%s.key", h_tmpdir(), name);
    k.pub = h_fmt("%s/%s.pub", h_tmpdir(), name);
    k.at = h_fmt("@%s", k.priv);
    h_cmd *c;
    int rc =
        h_run(&c, 30000, "openssl genpkey %s -out '%s' 2>&1 && openssl pkey -in '%s' -pubout -out '%s' 2>&1",
              opt, k.priv, k.priv, k.pub);
    cr_assert_eq(rc, 0, "openssl could not make a %s key: %s", kind, c->out);
    return k;
}

static long now_s(void)
{
    return (long)time(NULL);
}

/* One GET on a new connection; asserts a complete response; returns the status. */
static int get(int port, const char *target, const char *headers, h_resp *r)
{
    h_conn *c = h_connect(port);
    int rc = h_request(c, "GET", target, headers, NULL, 0, r);
    h_close(c);
    cr_assert_eq(rc, H_OK, "GET %s: no complete response (%d)", target, rc);
    return r->status;
}

static int status_of(int port, const char *target, const char *headers)
{
    h_resp r;
    int st = get(port, target, headers, &r);
    h_resp_free(&r);
    return st;
}

static char *bearer(const char *tok)
{
    return h_fmt("Authorization: Bearer %s\r\n", tok);
}

/* Polls until GET target with headers answers want; true when it did. */
static bool wait_status_hdr(int port, const char *target, const char *headers, int want, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    do {
        if (status_of(port, target, headers) == want)
            return true;
        h_sleep_ms(50);
    } while (h_now_ms() < deadline);
    return false;
}

/* A 401/403 from the filters: JSON body with "error" and "request_id". */
static void expect_json_refusal(const h_resp *r, int status, const char *what)
{
    cr_expect_eq(r->status, status, "%s: status %d, want %d\n%s", what, r->status, status, r->head);
    const char *ct = h_hdr(r, "Content-Type");
    cr_expect(ct && strstr(ct, "application/json"), "%s: Content-Type %s", what, OR_MISSING(ct));
    cr_expect(r->body && strstr(r->body, "\"error\"") && strstr(r->body, "\"request_id\""),
              "%s: body should be JSON with error and request_id: %s", what, OR_MISSING(r->body));
    cr_expect_null(h_hdr(r, "X-Upstream"), "%s: the upstream answered a refused request", what);
    const char *rid = h_hdr(r, "X-Request-Id");
    cr_expect(rid && r->body && strstr(r->body, h_fmt("\"request_id\":\"%s\"", rid)),
              "%s: X-Request-Id %s does not match the body's request_id: %s", what, OR_MISSING(rid),
              OR_MISSING(r->body));
}

/* Expects a 401 for an invalid token: error="invalid_token" in WWW-Authenticate. */
static void expect_invalid_token(int port, const char *target, const char *headers, const char *what)
{
    h_resp r;
    get(port, target, headers, &r);
    expect_json_refusal(&r, 401, what);
    const char *wa = h_hdr(&r, "WWW-Authenticate");
    cr_expect(wa && strncmp(wa, "Bearer realm=\"ringway\"", 22) == 0 && strstr(wa, "error=\"invalid_token\""),
              "%s: WWW-Authenticate should be Bearer with error=\"invalid_token\": %s", what, OR_MISSING(wa));
}

/* services: svc -> u */
static char *svc_yaml(const h_upstream *u)
{
    return h_fmt("services:\n  - name: svc\n    instances: [{address: \"127.0.0.1:%d\"}]\n", u->port);
}

/* One route entry under routes:, with filter list items (each a flow-style
 * filter on one line) or none. */
static char *route(const char *name, const char *prefix, const char *f1, const char *f2)
{
    return h_fmt("  - name: %s\n    paths: [{prefix: %s}]\n    service: svc\n%s%s%s%s%s", name, prefix,
                 f1 ? "    filters:\n" : "", f1 ? "      - " : "", f1 ? f1 : "", f1 ? "\n" : "",
                 f2 ? h_fmt("      - %s\n", f2) : "");
}

/* jwt filter with the HS256 secret and more settings (", key: v ..."). */
static char *jwt_hs(const char *secret, const char *more)
{
    return h_fmt("jwt: {keys: [{alg: HS256, secret: \"%s\"}]%s}", secret, more ? more : "");
}

/* Three consumers; app2's key is stored as sha256:hash2. */
static char *consumers_yaml(const char *hash2)
{
    /* the consumers list last: callers may append entries */
    return h_fmt("tiers:\n  free: {rate: 1000/s}\n"
                 "consumers:\n"
                 "  - {name: app1, id: c-001, groups: [apps, beta], tier: free, keys: [\"app-key-12345\"]}\n"
                 "  - {name: app2, keys: [\"sha256:%s\"]}\n"
                 "  - {name: app3, id: c-003, groups: [apps, banned], keys: [\"app3-key-xyz\"]}\n",
                 hash2);
}

/* ---- JWT: HS256 ----------------------------------------------------------- */

H_TEST(auth, hs256_valid_claims_to_headers_forged_identity_stripped)
{
    py_init();
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(
        h_fmt("%sroutes:\n%s%s", svc_yaml(u),
              route("api", "/echo/api",
                    jwt_hs(SECRET, ", claims_to_headers: {sub: X-User-ID, role: X-User-Role}"), NULL),
              route("open", "/echo/open", NULL, NULL)));
    char *tok = mint("HS256", SECRET,
                     h_fmt("{\"sub\": \"alice\", \"role\": \"reader\", \"exp\": %ld}", now_s() + 300), NULL);
    h_resp r;
    get(p->port, "/echo/api",
        h_fmt("%sX-User-ID: mallory\r\nX-User-Role: admin\r\nX-Consumer-ID: c-evil\r\n"
              "X-Consumer-Username: evil\r\nX-Consumer-Groups: admins\r\nx-user-id: mallory2\r\n",
              bearer(tok)),
        &r);
    cr_assert_eq(r.status, 200, "a valid HS256 token: %d\n%s%s", r.status, r.head, OR_MISSING(r.body));
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-ID")), "alice", "\n%s", r.body);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-Role")), "reader", "\n%s", r.body);
    cr_expect_eq(h_echoed_count(r.body, "X-User-ID"), 1, "the client's X-User-ID reached the upstream:\n%s",
                 r.body);
    cr_expect_eq(h_echoed_count(r.body, "X-User-Role"), 1,
                 "the client's X-User-Role reached the upstream:\n%s", r.body);
    cr_expect_null(strstr(r.body, "mallory"), "a forged identity reached the upstream:\n%s", r.body);
    cr_expect_null(strstr(r.body, "admin"), "a forged role or group reached the upstream:\n%s", r.body);
    cr_expect_null(h_echoed(r.body, "X-Consumer-ID"), "forged X-Consumer-ID reached the upstream:\n%s",
                   r.body);
    cr_expect_null(h_echoed(r.body, "X-Consumer-Username"), "forged X-Consumer-Username:\n%s", r.body);
    cr_expect_null(h_echoed(r.body, "X-Consumer-Groups"), "forged X-Consumer-Groups:\n%s", r.body);
    /* without hide_credentials the token goes on */
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "Authorization")), h_fmt("Bearer %s", tok));

    /* a token without the claims: the client's headers still do not pass */
    char *nosub = mint("HS256", SECRET, h_fmt("{\"exp\": %ld}", now_s() + 300), NULL);
    get(p->port, "/echo/api", h_fmt("%sX-User-ID: mallory\r\nX-User-Role: admin\r\n", bearer(nosub)), &r);
    cr_assert_eq(r.status, 200, "a token without sub: %d", r.status);
    cr_expect_null(h_echoed(r.body, "X-User-ID"), "forged X-User-ID passed with a token without sub:\n%s",
                   r.body);
    cr_expect_null(h_echoed(r.body, "X-User-Role"),
                   "forged X-User-Role passed with a token without role:\n%s", r.body);

    /* a route without filters: X-Consumer-* are ringway's to set, never the client's */
    get(p->port, "/echo/open",
        "X-Consumer-ID: c-evil\r\nX-Consumer-Username: evil\r\nX-Consumer-Groups: g\r\n", &r);
    cr_assert_eq(r.status, 200);
    cr_expect_null(h_echoed(r.body, "X-Consumer-ID"), "X-Consumer-ID passed on an open route:\n%s", r.body);
    cr_expect_null(h_echoed(r.body, "X-Consumer-Username"),
                   "X-Consumer-Username passed on an open route:\n%s", r.body);
    cr_expect_null(h_echoed(r.body, "X-Consumer-Groups"), "X-Consumer-Groups passed on an open route:\n%s",
                   r.body);
}

H_TEST(auth, missing_token_401_with_challenge)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p =
        h_proxy_run(h_fmt("%sroutes:\n%s", svc_yaml(u), route("api", "/", jwt_hs(SECRET, NULL), NULL)));
    static const char *const cases[] = {
        NULL,
        "Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l\r\n",
        "Authorization: Bearer\r\n",
        "Authorization: Bearer    \r\n",
        "X-Token: abc.def.ghi\r\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_resp r;
        get(p->port, "/anything", cases[i], &r);
        const char *what = h_fmt("case %zu (%s)", i, cases[i] ? cases[i] : "no header");
        expect_json_refusal(&r, 401, what);
        cr_expect_str_eq(OR_MISSING(h_hdr(&r, "WWW-Authenticate")), "Bearer realm=\"ringway\"", "%s", what);
    }
    h_stats s = h_upstream_stats(u);
    cr_expect_eq(s.requests, 0, "refused requests reached the upstream: %ld", s.requests);
}

H_TEST(auth, invalid_tokens_401_invalid_token)
{
    py_init();
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_fmt(
        "%sroutes:\n%s", svc_yaml(u),
        route("api", "/", jwt_hs(SECRET, ", issuer: \"https://issuer.test/\", audience: orders, leeway: 5s"),
              NULL)));
    long now = now_s();
    const char *good_claims = h_fmt(
        "{\"sub\": \"u\", \"iss\": \"https://issuer.test/\", \"aud\": \"orders\", \"exp\": %ld}", now + 300);
    char *good = mint("HS256", SECRET, good_claims, NULL);
    cr_assert_eq(status_of(p->port, "/x", bearer(good)), 200, "the good token is refused");

    /* within leeway, and aud as an array */
    char *leeway_ok = mint(
        "HS256", SECRET,
        h_fmt(
            "{\"sub\": \"u\", \"iss\": \"https://issuer.test/\", \"aud\": [\"x\", \"orders\"], \"exp\": %ld}",
            now - 2),
        NULL);
    cr_expect_eq(status_of(p->port, "/x", bearer(leeway_ok)), 200, "exp 2 s ago with leeway 5s should pass");

    const char *seg[3];
    {
        /* pieces of the good token to build broken ones */
        char *t = h_fmt("%s", good);
        seg[0] = t;
        char *d1 = strchr(t, '.');
        *d1 = '\0';
        seg[1] = d1 + 1;
        char *d2 = strchr(d1 + 1, '.');
        *d2 = '\0';
        seg[2] = d2 + 1;
    }
    struct {
        const char *what;
        const char *tok;
    } cases[] = {
        {"two segments", h_fmt("%s.%s", seg[0], seg[1])},
        {"four segments", h_fmt("%s.%s.%s.%s", seg[0], seg[1], seg[2], seg[2])},
        {"bad base64", h_fmt("%s.%s!!.%s", seg[0], seg[1], seg[2])},
        {"bad base64 header", h_fmt("e$yJ.%s.%s", seg[1], seg[2])},
        {"garbage", "garbage"},
        {"dots only", ".."},
        {"truncated signature", h_fmt("%s.%s.%.*s", seg[0], seg[1], (int)strlen(seg[2]) - 4, seg[2])},
        {"payload swapped", h_fmt("%s.%s.%s", seg[0], "eyJzdWIiOiJhZG1pbiJ9", seg[2])},
        {"expired beyond leeway",
         mint("HS256", SECRET,
              h_fmt("{\"sub\": \"u\", \"iss\": \"https://issuer.test/\", \"aud\": \"orders\", \"exp\": %ld}",
                    now - 60),
              NULL)},
        {"nbf in the future",
         mint("HS256", SECRET,
              h_fmt("{\"sub\": \"u\", \"iss\": \"https://issuer.test/\", \"aud\": \"orders\", \"exp\": %ld, "
                    "\"nbf\": %ld}",
                    now + 300, now + 60),
              NULL)},
        {"wrong iss",
         mint("HS256", SECRET,
              h_fmt("{\"sub\": \"u\", \"iss\": \"https://evil.test/\", \"aud\": \"orders\", \"exp\": %ld}",
                    now + 300),
              NULL)},
        {"no iss", mint("HS256", SECRET,
                        h_fmt("{\"sub\": \"u\", \"aud\": \"orders\", \"exp\": %ld}", now + 300), NULL)},
        {"wrong aud",
         mint("HS256", SECRET,
              h_fmt("{\"sub\": \"u\", \"iss\": \"https://issuer.test/\", \"aud\": \"billing\", \"exp\": %ld}",
                    now + 300),
              NULL)},
        {"no exp", mint("HS256", SECRET,
                        "{\"sub\": \"u\", \"iss\": \"https://issuer.test/\", \"aud\": \"orders\"}", NULL)},
        {"signed with another secret", mint("HS256", SECRET2, good_claims, NULL)},
        {"HS512 with the HS256 secret", mint("HS512", SECRET, good_claims, NULL)},
        /* {"alg":"none"} . payload . (empty signature) */
        {"alg none", h_fmt("eyJhbGciOiJub25lIn0.%s.", seg[1])},
        {"alg none with the good signature", h_fmt("eyJhbGciOiJub25lIn0.%s.%s", seg[1], seg[2])},
        /* {"alg":"None","typ":"JWT"} */
        {"alg None", h_fmt("eyJhbGciOiJOb25lIiwidHlwIjoiSldUIn0.%s.", seg[1])},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_invalid_token(p->port, "/x", bearer(cases[i].tok), cases[i].what);
    h_stats s = h_upstream_stats(u);
    cr_expect_eq(s.requests, 2, "only the 2 good requests should reach the upstream, got %ld", s.requests);
    /* still fine */
    cr_expect_eq(status_of(p->port, "/x", bearer(good)), 200);
}

H_TEST(auth, huge_bearer_token_refused_not_crashing)
{
    py_init();
    h_upstream *u = h_upstream_start("u1", NULL);
    char *good = mint("HS256", SECRET, h_fmt("{\"sub\": \"u\", \"exp\": %ld}", now_s() + 300), NULL);
    char *huge =
        h_fmt("%s.%s.%s", h_repeat(40 * 1024, 'e'), h_repeat(40 * 1024, 'A'), h_repeat(20 * 1024, 'x'));

    /* default header limits: the head itself is too large, or the token is refused */
    h_proxy *p =
        h_proxy_run(h_fmt("%sroutes:\n%s", svc_yaml(u), route("api", "/", jwt_hs(SECRET, NULL), NULL)));
    h_resp r;
    get(p->port, "/x", bearer(huge), &r);
    cr_expect(r.status == 401 || r.status == 431, "a 100 KiB token: %d, want 401 or 431", r.status);
    cr_assert_eq(status_of(p->port, "/x", bearer(good)), 200,
                 "the proxy no longer serves after a huge token");
    cr_assert_eq(h_proxy_wait_exit(p, 0), -1, "ringway died");

    /* heads up to 1 MiB: the token itself reaches the filter and is refused */
    h_proxy *p2 = h_proxy_run(h_fmt("%shttp:\n  max_header_bytes: 1m\nroutes:\n%s", svc_yaml(u),
                                    route("api", "/", jwt_hs(SECRET, NULL), NULL)));
    expect_invalid_token(p2->port, "/x", bearer(huge), "100 KiB token with max_header_bytes 1m");
    /* in a cookie and in the query too */
    h_proxy *p3 =
        h_proxy_run(h_fmt("%shttp:\n  max_header_bytes: 1m\n  max_request_line: 1m\nroutes:\n%s%s",
                          svc_yaml(u), route("c", "/c", jwt_hs(SECRET, ", from: \"cookie:t\""), NULL),
                          route("q", "/q", jwt_hs(SECRET, ", from: \"query:t\""), NULL)));
    expect_invalid_token(p3->port, "/c", h_fmt("Cookie: t=%s\r\n", huge), "100 KiB token in a cookie");
    expect_invalid_token(p3->port, h_fmt("/q?t=%s", huge), NULL, "100 KiB token in the query");
    cr_expect_eq(status_of(p2->port, "/x", bearer(good)), 200);
    cr_expect_eq(status_of(p3->port, h_fmt("/q?t=%s", good), NULL), 200);
    cr_expect_eq(status_of(p3->port, "/c", h_fmt("Cookie: t=%s\r\n", good)), 200);
}

/* ---- JWT: asymmetric ------------------------------------------------------ */

H_TEST(auth, rs256_pem_file_with_kid)
{
    py_init();
    keypair k = genkey("r1", "rsa");
    keypair other = genkey("other", "rsa");
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(
        h_fmt("%sroutes:\n%s", svc_yaml(u),
              route("api", "/echo",
                    h_fmt("jwt: {keys: [{alg: RS256, kid: \"r1\", pem_file: \"%s\"}]}", k.pub), NULL)));
    const char *claims = h_fmt("{\"sub\": \"rsa-user\", \"exp\": %ld}", now_s() + 300);
    h_resp r;
    get(p->port, "/echo", bearer(mint("RS256", k.at, claims, "r1")), &r);
    cr_assert_eq(r.status, 200, "an RS256 token from PyJWT: %d %s", r.status, OR_MISSING(r.body));
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-ID")), "rsa-user");
    /* again: the verified-token cache answers the same */
    get(p->port, "/echo", bearer(mint("RS256", k.at, claims, "r1")), &r);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-ID")), "rsa-user");

    expect_invalid_token(p->port, "/echo", bearer(mint("RS256", other.at, claims, "r1")),
                         "signed by another RSA key");
    expect_invalid_token(p->port, "/echo", bearer(mint("RS384", k.at, claims, "r1")),
                         "RS384 with an RS256 key");
    expect_invalid_token(p->port, "/echo", bearer(mint("PS256", k.at, claims, "r1")),
                         "PS256 with an RS256 key");
    expect_invalid_token(p->port, "/echo", bearer(mint("RS256", k.at, claims, "r2")), "unknown kid r2");
}

H_TEST(auth, unknown_kid_401)
{
    py_init();
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_fmt("%sroutes:\n%s", svc_yaml(u),
                                   route("api", "/",
                                         "jwt: {keys: [{alg: HS256, kid: \"a\", secret: \"" SECRET
                                         "\"}, {alg: HS256, kid: \"b\", secret: \"" SECRET2 "\"}]}",
                                         NULL)));
    const char *claims = h_fmt("{\"sub\": \"u\", \"exp\": %ld}", now_s() + 300);
    cr_expect_eq(status_of(p->port, "/x", bearer(mint("HS256", SECRET, claims, "a"))), 200, "kid a");
    cr_expect_eq(status_of(p->port, "/x", bearer(mint("HS256", SECRET2, claims, "b"))), 200, "kid b");
    expect_invalid_token(p->port, "/x", bearer(mint("HS256", SECRET, claims, "c")), "unknown kid c");
    expect_invalid_token(p->port, "/x", bearer(mint("HS256", SECRET, claims, "b")), "kid b with a's secret");
    expect_invalid_token(p->port, "/x", bearer(mint("HS256", SECRET, claims, h_repeat(300, 'k'))),
                         "a 300-byte kid");
}

/* One asymmetric algorithm: a route with that key, a token from PyJWT passes,
 * one from another key of the same kind does not. */
static void asym_roundtrip(const char *alg, const char *kind)
{
    py_init();
    keypair k = genkey("k", kind);
    keypair other = genkey("other", kind);
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(
        h_fmt("%sroutes:\n%s", svc_yaml(u),
              route("api", "/echo",
                    h_fmt("jwt: {keys: [{alg: %s, pem_file: \"%s\"}], claims_to_headers: {sub: X-User-ID}}",
                          alg, k.pub),
                    NULL)));
    const char *claims = h_fmt("{\"sub\": \"%s-user\", \"exp\": %ld}", alg, now_s() + 300);
    char *tok = mint(alg, k.at, claims, NULL);
    h_resp r;
    get(p->port, "/echo", bearer(tok), &r);
    cr_assert_eq(r.status, 200, "%s token from PyJWT: %d %s", alg, r.status, OR_MISSING(r.body));
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-ID")), h_fmt("%s-user", alg));
    /* cached or not, the same answer */
    cr_expect_eq(status_of(p->port, "/echo", bearer(tok)), 200);
    expect_invalid_token(p->port, "/echo", bearer(mint(alg, other.at, claims, NULL)),
                         h_fmt("%s signed by another key", alg));
    /* a flipped bit in the signature */
    char *bad = h_fmt("%s", tok);
    char *sig = strrchr(bad, '.') + 1;
    sig[3] = sig[3] == 'A' ? 'B' : 'A';
    expect_invalid_token(p->port, "/echo", bearer(bad), h_fmt("%s with a changed signature", alg));
    /* the signature of a valid token over another payload */
    char *tok2 = mint(alg, k.at, h_fmt("{\"sub\": \"admin\", \"exp\": %ld}", now_s() + 300), NULL);
    char *mix = h_fmt("%.*s%s", (int)(strrchr(tok2, '.') - tok2), tok2, strrchr(tok, '.'));
    expect_invalid_token(p->port, "/echo", bearer(mix), h_fmt("%s with another token's signature", alg));
}

H_TEST(auth, es256_verified)
{
    asym_roundtrip("ES256", "ec");
}

H_TEST(auth, eddsa_verified)
{
    asym_roundtrip("EdDSA", "ed25519");
}

H_TEST(auth, ps256_verified)
{
    asym_roundtrip("PS256", "rsa");
}

H_TEST(auth, rs256_alg_confusion_refused)
{
    py_init();
    keypair k = genkey("r1", "rsa");
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_fmt(
        "%sroutes:\n%s", svc_yaml(u),
        route("api", "/", h_fmt("jwt: {keys: [{alg: RS256, kid: \"r1\", pem_file: \"%s\"}]}", k.pub), NULL)));
    const char *claims = h_fmt("{\"sub\": \"admin\", \"exp\": %ld}", now_s() + 300);
    cr_assert_eq(status_of(p->port, "/x", bearer(mint("RS256", k.at, claims, "r1"))), 200,
                 "the honest token");
    /* HS256 whose HMAC key is the public key's PEM text, with and without kid */
    expect_invalid_token(p->port, "/x", bearer(py(h_fmt("rawhs '%s' '%s' r1", k.pub, claims))),
                         "HS256 keyed with the RSA public key PEM (kid r1)");
    expect_invalid_token(p->port, "/x", bearer(py(h_fmt("rawhs '%s' '%s' -", k.pub, claims))),
                         "HS256 keyed with the RSA public key PEM (no kid)");
    /* the PEM without its trailing newline, a frequent variant of the attack */
    h_cmd *c;
    cr_assert_eq(h_run(&c, 5000, "head -c -1 '%s' > '%s/pub.nonl'", k.pub, h_tmpdir()), 0);
    expect_invalid_token(p->port, "/x", bearer(py(h_fmt("rawhs '%s/pub.nonl' '%s' r1", h_tmpdir(), claims))),
                         "HS256 keyed with the RSA public key PEM without newline");
}

/* ---- JWKS file ------------------------------------------------------------ */

static int count_in(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *q = hay; (q = strstr(q, needle)) != NULL; q += strlen(needle))
        n++;
    return n;
}

/* Waits until the log holds more than `before` lines saying a JWKS refresh
 * failed (at most timeout_ms: the wording is not part of the contract, the
 * checks after the wait are). */
static void wait_jwks_failure(h_proxy *p, int before, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    while (h_now_ms() < deadline && count_in(h_proxy_log(p), "refresh failed") <= before)
        h_sleep_ms(50);
}

H_TEST(auth, jwks_file_rotation_at_run_time)
{
    py_init();
    keypair k1 = genkey("k1", "rsa");
    keypair k2 = genkey("k2", "ec");
    char *jwks = h_write_file("jwks.json", py(h_fmt("jwks 'k1:RS256:%s'", k1.pub)));
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_start(
        &(h_proxy_opts){.config = h_fmt("%sroutes:\n%s", svc_yaml(u),
                                        route("api", "/echo", h_fmt("jwt: {jwks_file: \"%s\"}", jwks), NULL)),
                        .workers = 2});
    const char *claims = h_fmt("{\"sub\": \"j\", \"exp\": %ld}", now_s() + 300);
    char *t1 = bearer(mint("RS256", k1.at, claims, "k1"));
    char *t2 = bearer(mint("ES256", k2.at, claims, "k2"));
    cr_assert_eq(status_of(p->port, "/echo", t1), 200, "a k1 token with k1 in the JWKS file");
    cr_assert_eq(status_of(p->port, "/echo", t1), 200, "a k1 token again (cached)");
    cr_assert_eq(status_of(p->port, "/echo", t2), 401, "a k2 token before k2 is published");

    /* rotate: only k2 now (h_write_file writes a temp file and renames it) */
    h_write_file("jwks.json", py(h_fmt("jwks 'k2:ES256:%s'", k2.pub)));
    /* the file is checked every second: ~1-2 s, 5 s allowed for a loaded machine */
    int64_t t0 = h_now_ms();
    cr_assert(wait_status_hdr(p->port, "/echo", t2, 200, 5000),
              "the k2 token is not accepted 5 s after rotation");
    cr_assert(wait_status_hdr(p->port, "/echo", t1, 401, 5000),
              "the k1 token still works 5 s after it was removed");
    int64_t took = h_now_ms() - t0;
    for (int i = 0; i < 6; i++) { /* new connections, on either worker (each with its own cache) */
        expect_invalid_token(
            p->port, "/echo", t1,
            h_fmt("k1 after rotation (try %d, rotation seen after %lld ms)", i, (long long)took));
        cr_expect_eq(status_of(p->port, "/echo", t2), 200,
                     "k2 after rotation (try %d, rotation seen after %lld ms)", i, (long long)took);
    }

    /* a broken rewrite keeps the last good set */
    h_write_file("jwks.json", "{\"keys\": [ this is not json");
    wait_jwks_failure(p, 0, 3000);
    cr_assert_eq(h_proxy_wait_exit(p, 0), -1, "ringway exited on a broken JWKS file");
    cr_expect_eq(status_of(p->port, "/echo", t2), 200, "k2 was dropped after a broken JWKS rewrite");
    cr_expect_eq(status_of(p->port, "/echo", t1), 401, "k1 came back after a broken JWKS rewrite");
    /* an empty key list and a JSON that is not a JWKS: the same */
    int fails = count_in(h_proxy_log(p), "refresh failed");
    h_write_file("jwks.json", "{\"keys\": []}");
    wait_jwks_failure(p, fails, 3000);
    cr_expect_eq(status_of(p->port, "/echo", t2), 200, "k2 was dropped after an empty JWKS rewrite");
    /* and a good file is taken again: both keys */
    h_write_file("jwks.json", py(h_fmt("jwks 'k1:RS256:%s' 'k2:ES256:%s'", k1.pub, k2.pub)));
    cr_assert(wait_status_hdr(p->port, "/echo", t1, 200, 4000), "k1 not accepted after a good rewrite");
    cr_expect_eq(status_of(p->port, "/echo", t2), 200);
}

H_TEST(auth, token_cache_does_not_outlive_exp)
{
    py_init();
    keypair k = genkey("r1", "rsa");
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_fmt(
        "%sroutes:\n%s", svc_yaml(u),
        route("api", "/", h_fmt("jwt: {keys: [{alg: RS256, pem_file: \"%s\"}], leeway: 0s}", k.pub), NULL)));
    long exp = now_s() + 3;
    char *t = bearer(mint("RS256", k.at, h_fmt("{\"sub\": \"u\", \"exp\": %ld}", exp), NULL));
    cr_assert_lt(now_s(), exp, "minting took too long");
    cr_assert_eq(status_of(p->port, "/x", t), 200, "a token valid for 3 s more");
    cr_assert_eq(status_of(p->port, "/x", t), 200, "the same token again (from the cache)");
    while (now_s() < exp + 1)
        h_sleep_ms(100);
    expect_invalid_token(p->port, "/x", t, "the token after its exp (cached before)");
}

/* ---- where the token comes from; hide_credentials --------------------------- */

H_TEST(auth, hide_credentials)
{
    py_init();
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(
        h_fmt("%s%sroutes:\n%s%s%s%s%s", svc_yaml(u), consumers_yaml(h_repeat(64, 'a')),
              route("hide", "/echo/hide", jwt_hs(SECRET, ", hide_credentials: true"), NULL),
              route("khide", "/echo/khide", "key_auth: {header: X-API-Key, hide_credentials: true}", NULL),
              route("kshow", "/echo/kshow", "key_auth: {header: X-API-Key}", NULL),
              route("show", "/echo/show", jwt_hs(SECRET, NULL), NULL),
              route("hdr", "/echo/hdr", jwt_hs(SECRET, ", from: \"header:X-Token\", hide_credentials: true"),
                    NULL)));
    char *tok = mint("HS256", SECRET, h_fmt("{\"sub\": \"h\", \"exp\": %ld}", now_s() + 300), NULL);
    h_resp r;
    get(p->port, "/echo/hide", bearer(tok), &r);
    cr_assert_eq(r.status, 200);
    cr_expect_null(h_echoed(r.body, "Authorization"),
                   "hide_credentials: Authorization reached the upstream:\n%s", r.body);
    cr_expect_null(strstr(r.body, tok), "hide_credentials: the token reached the upstream:\n%s", r.body);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-ID")), "h");

    get(p->port, "/echo/show", bearer(tok), &r);
    cr_assert_eq(r.status, 200);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "Authorization")), h_fmt("Bearer %s", tok),
                     "without hide_credentials Authorization should reach the upstream:\n%s", r.body);

    get(p->port, "/echo/hdr", h_fmt("X-Token: %s\r\nAuthorization: Basic Zm9vOmJhcg==\r\n", tok), &r);
    cr_assert_eq(r.status, 200, "from header:X-Token: %d", r.status);
    cr_expect_null(h_echoed(r.body, "X-Token"), "hide_credentials: X-Token reached the upstream:\n%s",
                   r.body);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "Authorization")), "Basic Zm9vOmJhcg==",
                     "an unrelated Authorization should pass when the token is in X-Token:\n%s", r.body);
    cr_expect_eq(status_of(p->port, "/echo/hdr", bearer(tok)), 401,
                 "header:X-Token route took a Bearer token");

    get(p->port, "/echo/khide", "X-API-Key: app-key-12345\r\n", &r);
    cr_assert_eq(r.status, 200);
    cr_expect_null(h_echoed(r.body, "X-API-Key"),
                   "key_auth hide_credentials: the key reached the upstream:\n%s", r.body);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-ID")), "c-001");
    get(p->port, "/echo/kshow", "X-API-Key: app-key-12345\r\n", &r);
    cr_assert_eq(r.status, 200);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-API-Key")), "app-key-12345",
                     "without hide_credentials the key should reach the upstream:\n%s", r.body);
}

/* The request line the upstream received (from /echo's body). */
static char *request_line(const char *echo)
{
    const char *e = strstr(echo, "\r\n");
    return e ? h_fmt("%.*s", (int)(e - echo), echo) : h_fmt("%s", echo);
}

H_TEST(auth, hide_credentials_query_and_cookie)
{
    py_init();
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_fmt(
        "%s%sroutes:\n%s%s%s", svc_yaml(u), consumers_yaml(h_repeat(64, 'a')),
        route("q", "/echo/q", jwt_hs(SECRET, ", from: \"query:access_token\", hide_credentials: true"), NULL),
        route("k", "/echo/k", "key_auth: {query: apikey, hide_credentials: true}", NULL),
        route("c", "/echo/c", jwt_hs(SECRET, ", from: \"cookie:session\", hide_credentials: true"), NULL)));
    char *tok = mint("HS256", SECRET, h_fmt("{\"sub\": \"q\", \"exp\": %ld}", now_s() + 300), NULL);
    h_resp r;
    get(p->port, h_fmt("/echo/q?a=1&access_token=%s&b=2", tok), NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_expect_null(
        strstr(r.body, tok),
        "hide_credentials with from: query:access_token: the token reached the upstream in the query:\n%s",
        r.body);
    cr_expect_str_eq(request_line(r.body), "GET /echo/q?a=1&b=2 HTTP/1.1",
                     "the other parameters should stay");
    get(p->port, h_fmt("/echo/q?access_token=%s", tok), NULL, &r);
    cr_assert_eq(r.status, 200);
    char *rl = request_line(r.body);
    cr_expect(!strcmp(rl, "GET /echo/q HTTP/1.1") || !strcmp(rl, "GET /echo/q? HTTP/1.1"),
              "the only parameter hidden: %s", rl);
    /* a repeated credential is refused: the upstream might read another copy */
    get(p->port, h_fmt("/echo/q?access_token=%s&x=1&access_token=%s", tok, tok), NULL, &r);
    cr_expect_eq(r.status, 400, "a repeated token parameter: %d", r.status);

    get(p->port, "/echo/k?a=1&apikey=app-key-12345&b=2", NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_expect_null(
        strstr(r.body, "app-key-12345"),
        "key_auth {query: apikey, hide_credentials: true}: the key reached the upstream in the query:\n%s",
        r.body);
    cr_expect_str_eq(request_line(r.body), "GET /echo/k?a=1&b=2 HTTP/1.1");
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-ID")), "c-001");

    get(p->port, "/echo/c", h_fmt("Cookie: theme=dark; session=%s; lang=en\r\n", tok), &r);
    cr_assert_eq(r.status, 200);
    cr_expect_null(strstr(r.body, tok),
                   "hide_credentials with from: cookie:session: the token reached the upstream:\n%s", r.body);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "Cookie")), "theme=dark; lang=en",
                     "the other cookies should stay");
    cr_expect_eq(h_echoed_count(r.body, "Cookie"), 1, "\n%s", r.body);
    get(p->port, "/echo/c", h_fmt("Cookie: a=1\r\nCookie: session=%s; b=2\r\n", tok), &r);
    cr_assert_eq(r.status, 200);
    cr_expect_null(strstr(r.body, tok), "the token reached the upstream (two Cookie lines):\n%s", r.body);
    cr_expect(strstr(r.body, "a=1") && strstr(r.body, "b=2"), "cookies lost:\n%s", r.body);
    get(p->port, "/echo/c", h_fmt("Cookie: session=%s\r\n", tok), &r);
    cr_assert_eq(r.status, 200);
    char *ck = h_echoed(r.body, "Cookie");
    cr_expect(ck == NULL || *ck == '\0', "only the token's cookie: Cookie should go, got %s", ck);
    cr_expect_null(strstr(r.body, tok), "the token reached the upstream (only cookie):\n%s", r.body);
}

H_TEST(auth, token_from_cookie_and_query)
{
    py_init();
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p =
        h_proxy_run(h_fmt("%sroutes:\n%s%s", svc_yaml(u),
                          route("c", "/echo/c", jwt_hs(SECRET, ", from: \"cookie:session\""), NULL),
                          route("q", "/echo/q", jwt_hs(SECRET, ", from: \"query:access_token\""), NULL)));
    char *tok = mint("HS256", SECRET, h_fmt("{\"sub\": \"cq\", \"exp\": %ld}", now_s() + 300), NULL);
    h_resp r;
    get(p->port, "/echo/c", h_fmt("Cookie: theme=dark; session=%s; lang=en\r\n", tok), &r);
    cr_assert_eq(r.status, 200, "token in a cookie: %d", r.status);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-ID")), "cq");
    cr_expect_eq(status_of(p->port, "/echo/c", h_fmt("Cookie: session=%s\r\n", tok)), 200, "the only cookie");
    cr_expect_eq(status_of(p->port, "/echo/c", h_fmt("Cookie: a=b\r\nCookie: session=%s\r\n", tok)), 200,
                 "the second Cookie line");
    cr_expect_eq(status_of(p->port, "/echo/c", h_fmt("Cookie: xsession=%s\r\n", tok)), 401,
                 "another cookie's name");
    cr_expect_eq(status_of(p->port, "/echo/c", bearer(tok)), 401, "a Bearer token on a cookie route");
    cr_expect_eq(status_of(p->port, "/echo/c", NULL), 401);
    expect_invalid_token(p->port, "/echo/c", "Cookie: session=not.a.token\r\n", "a bad cookie token");

    get(p->port, h_fmt("/echo/q?x=1&access_token=%s", tok), NULL, &r);
    cr_assert_eq(r.status, 200, "token in the query: %d", r.status);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-ID")), "cq");
    cr_expect_eq(status_of(p->port, h_fmt("/echo/q?access_token=%s", tok), NULL), 200);
    cr_expect_eq(status_of(p->port, h_fmt("/echo/q?xaccess_token=%s", tok), NULL), 401, "another parameter");
    cr_expect_eq(status_of(p->port, h_fmt("/echo/q?xaccess_token=bad&access_token=%s", tok), NULL), 200,
                 "the parameter after one with a longer name");
    cr_expect_eq(status_of(p->port, h_fmt("/echo/c"), h_fmt("Cookie: session2=bad; session=%s\r\n", tok)),
                 200, "the cookie after one with a longer name");
    cr_expect_eq(status_of(p->port, "/echo/q", bearer(tok)), 401, "a Bearer token on a query route");
    cr_expect_eq(status_of(p->port, "/echo/q?access_token=", NULL), 401, "an empty parameter");
}

/* ---- key_auth ----------------------------------------------------------- */

H_TEST(auth, key_auth_plain_and_hashed_keys)
{
    py_init();
    char *hash2 = py("sha256 'second-key-67890'");
    char *hash4 = py("sha256 'upper-key-4444'");
    for (char *q = hash4; *q; q++)
        if (*q >= 'a' && *q <= 'f')
            *q = (char)(*q - 'a' + 'A');
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_fmt("%s%s  - {name: app4, keys: [\"sha256:%s\"]}\nroutes:\n%s%s", svc_yaml(u),
                                   consumers_yaml(hash2), hash4,
                                   route("k", "/echo/k", "key_auth: {header: X-API-Key}", NULL),
                                   route("q", "/echo/q", "key_auth: {query: apikey}", NULL)));
    h_resp r;
    get(p->port, "/echo/k",
        "X-API-Key: app-key-12345\r\nX-Consumer-ID: c-evil\r\nX-Consumer-Groups: admins\r\n", &r);
    cr_assert_eq(r.status, 200, "a valid key: %d %s", r.status, OR_MISSING(r.body));
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-ID")), "c-001", "\n%s", r.body);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-Username")), "app1", "\n%s", r.body);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-Groups")), "apps, beta", "\n%s", r.body);
    cr_expect_eq(h_echoed_count(r.body, "X-Consumer-ID"), 1, "\n%s", r.body);
    cr_expect_eq(h_echoed_count(r.body, "X-Consumer-Groups"), 1, "\n%s", r.body);

    /* stored as sha256:HEX, presented in plain */
    get(p->port, "/echo/k", "X-API-Key: second-key-67890\r\n", &r);
    cr_assert_eq(r.status, 200, "a key stored as sha256: %d", r.status);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-ID")), "app2", "id defaults to the name\n%s",
                     r.body);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-Username")), "app2");
    cr_expect_null(h_echoed(r.body, "X-Consumer-Groups"), "a consumer without groups:\n%s", r.body);
    get(p->port, "/echo/k", "X-API-Key: upper-key-4444\r\n", &r);
    cr_expect_eq(r.status, 200, "a key stored as sha256:UPPER-CASE-HEX: %d", r.status);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-ID")), "app4");
    /* the stored digest is not itself a key */
    get(p->port, "/echo/k", h_fmt("X-API-Key: sha256:%s\r\n", hash2), &r);
    expect_json_refusal(&r, 401, "the sha256:HEX text presented as a key");
    get(p->port, "/echo/k", h_fmt("X-API-Key: %s\r\n", hash2), &r);
    expect_json_refusal(&r, 401, "the HEX digest presented as a key");

    get(p->port, "/echo/k", "X-API-Key: app-key-1234\r\n", &r);
    expect_json_refusal(&r, 401, "a wrong key");
    const char *wa = h_hdr(&r, "WWW-Authenticate");
    cr_expect(wa && strncmp(wa, "Key realm=\"ringway\"", 19) == 0 && strstr(wa, "invalid_key"),
              "wrong key WWW-Authenticate: %s", OR_MISSING(wa));
    get(p->port, "/echo/k", "X-API-Key: app-key-12345x\r\n", &r);
    expect_json_refusal(&r, 401, "a key with a suffix");
    get(p->port, "/echo/k", NULL, &r);
    expect_json_refusal(&r, 401, "no key");
    cr_expect_str_eq(OR_MISSING(h_hdr(&r, "WWW-Authenticate")), "Key realm=\"ringway\"");
    get(p->port, "/echo/k", "X-API-Key:\r\n", &r);
    expect_json_refusal(&r, 401, "an empty key");
    get(p->port, "/echo/k?apikey=app-key-12345", NULL, &r);
    expect_json_refusal(&r, 401, "a query key on a header route");

    /* the key in a query parameter */
    get(p->port, "/echo/q?x=1&apikey=app-key-12345&y=2", NULL, &r);
    cr_assert_eq(r.status, 200, "a key in the query: %d", r.status);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-ID")), "c-001");
    cr_expect_eq(status_of(p->port, "/echo/q?apikey=second-key-67890", NULL), 200);
    cr_expect_eq(status_of(p->port, "/echo/q?apikey=wrong", NULL), 401);
    cr_expect_eq(status_of(p->port, "/echo/q?xapikey=app-key-12345", NULL), 401);
    cr_expect_eq(status_of(p->port, "/echo/q", "X-API-Key: app-key-12345\r\n"), 401,
                 "a header key on a query route");
}

/* ---- ACLs --------------------------------------------------------------- */

H_TEST(auth, acl_groups)
{
    py_init();
    char *hash2 = py("sha256 'second-key-67890'");
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(
        h_fmt("%s%sroutes:\n%s%s%s", svc_yaml(u), consumers_yaml(hash2),
              route("allow", "/echo/allow", "key_auth: {header: X-API-Key}", "acl: {allow_groups: [apps]}"),
              /* written before the auth filter: still runs after it */
              route("deny", "/echo/deny", "acl: {deny_groups: [banned]}", "key_auth: {header: X-API-Key}"),
              route("noauth", "/echo/noauth", "acl: {allow_groups: [apps]}", NULL)));
    h_resp r;
    get(p->port, "/echo/allow", "X-API-Key: app-key-12345\r\n", &r);
    cr_expect_eq(r.status, 200, "a member of apps: %d", r.status);
    get(p->port, "/echo/allow", "X-API-Key: second-key-67890\r\n", &r);
    expect_json_refusal(&r, 403, "a consumer not in apps");
    get(p->port, "/echo/allow", "X-API-Key: nope\r\n", &r);
    cr_expect_eq(r.status, 401, "authentication comes before the group check: %d", r.status);

    cr_expect_eq(status_of(p->port, "/echo/deny", "X-API-Key: app-key-12345\r\n"), 200, "not banned");
    cr_expect_eq(status_of(p->port, "/echo/deny", "X-API-Key: second-key-67890\r\n"), 200,
                 "no groups: not banned");
    get(p->port, "/echo/deny", "X-API-Key: app3-key-xyz\r\n", &r);
    expect_json_refusal(&r, 403, "a member of banned");

    get(p->port, "/echo/noauth", "X-Consumer-Groups: apps\r\nX-Consumer-ID: c-001\r\n", &r);
    expect_json_refusal(&r, 403, "allow_groups with no consumer identified");
}

H_TEST(auth, acl_ips)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    bool v6 = h_have_ipv6();
    int port6 = h_free_port();
    h_proxy_opts o = {
        .config = h_fmt(
            "%sroutes:\n%s%s%s%s%s", svc_yaml(u),
            route("lo", "/echo/lo", "acl: {allow_ips: [\"127.0.0.0/8\"]}", NULL),
            route("ten", "/echo/ten", "acl: {allow_ips: [\"10.0.0.0/8\"]}", NULL),
            route("denylo", "/echo/denylo", "acl: {deny_ips: [\"10.0.0.0/8\", \"127.0.0.1/32\"]}", NULL),
            route("six", "/echo/six", "acl: {allow_ips: [\"::1/128\"]}", NULL),
            route("both", "/echo/both", "acl: {allow_ips: [\"127.0.0.0/8\", \"::1/128\"]}", NULL)),
    };
    if (v6) {
        o.args[0] = "--listen";
        o.args[1] = h_fmt("[::1]:%d", port6);
    }
    h_proxy *p = h_proxy_start(&o);
    h_resp r;
    cr_expect_eq(status_of(p->port, "/echo/lo", NULL), 200, "127.0.0.1 in 127.0.0.0/8");
    get(p->port, "/echo/ten", NULL, &r);
    expect_json_refusal(&r, 403, "127.0.0.1 not in 10.0.0.0/8");
    get(p->port, "/echo/denylo", NULL, &r);
    expect_json_refusal(&r, 403, "127.0.0.1 denied");
    cr_expect_eq(status_of(p->port, "/echo/six", NULL), 403, "127.0.0.1 not in ::1/128");
    cr_expect_eq(status_of(p->port, "/echo/both", NULL), 200);
    /* X-Forwarded-For is not believed without trusted proxies */
    cr_expect_eq(status_of(p->port, "/echo/ten", "X-Forwarded-For: 10.1.2.3\r\n"), 403, "XFF believed");

    if (!v6)
        return;
    h_conn *c = h_connect_host("::1", port6);
    cr_assert_eq(h_request(c, "GET", "/echo/six", NULL, NULL, 0, &r), H_OK);
    cr_expect_eq(r.status, 200, "::1 in ::1/128: %d", r.status);
    h_close(c);
    c = h_connect_host("::1", port6);
    cr_assert_eq(h_request(c, "GET", "/echo/lo", NULL, NULL, 0, &r), H_OK);
    cr_expect_eq(r.status, 403, "::1 not in 127.0.0.0/8: %d", r.status);
    h_close(c);
    c = h_connect_host("::1", port6);
    cr_assert_eq(h_request(c, "GET", "/echo/both", NULL, NULL, 0, &r), H_OK);
    cr_expect_eq(r.status, 200, "::1 in [127.0.0.0/8, ::1/128]: %d", r.status);
    h_close(c);
    c = h_connect_host("::1", port6);
    cr_assert_eq(h_request(c, "GET", "/echo/denylo", NULL, NULL, 0, &r), H_OK);
    cr_expect_eq(r.status, 200, "::1 is not denied by v4 ranges: %d", r.status);
    h_close(c);
}

H_TEST(auth, acl_trusted_proxies_xff)
{
    h_upstream *u = h_upstream_start("u1", NULL);
    const char *routes = route("api", "/echo", "acl: {deny_ips: [\"203.0.113.0/24\"]}", NULL);
    h_proxy *p =
        h_proxy_run(h_fmt("%strusted_proxies: [\"127.0.0.1/32\"]\nroutes:\n%s", svc_yaml(u), routes));
    h_resp r;
    get(p->port, "/echo", "X-Forwarded-For: 203.0.113.7\r\n", &r);
    expect_json_refusal(&r, 403, "XFF 203.0.113.7 from a trusted proxy");
    cr_expect_eq(status_of(p->port, "/echo", "X-Forwarded-For: 198.51.100.1\r\n"), 200, "XFF 198.51.100.1");
    cr_expect_eq(status_of(p->port, "/echo", NULL), 200, "no XFF: the peer");
    /* trusted hops on the right are skipped */
    cr_expect_eq(status_of(p->port, "/echo", "X-Forwarded-For: 203.0.113.7, 127.0.0.1\r\n"), 403,
                 "XFF 203.0.113.7, 127.0.0.1");
    cr_expect_eq(
        status_of(p->port, "/echo", "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For: 127.0.0.1\r\n"), 403,
        "XFF split over two lines");
    cr_expect_eq(status_of(p->port, "/echo", "X-Forwarded-For: ::ffff:203.0.113.7\r\n"), 403,
                 "XFF with an IPv4-mapped IPv6 address in a denied v4 range");
    /* the client cannot hide behind a forged entry on the left */
    cr_expect_eq(status_of(p->port, "/echo", "X-Forwarded-For: 198.51.100.1, 203.0.113.7\r\n"), 403,
                 "XFF 198.51.100.1, 203.0.113.7: the rightmost untrusted entry counts");

    /* without trusted_proxies X-Forwarded-For is ignored */
    h_proxy *p2 = h_proxy_run(h_fmt("%sroutes:\n%s", svc_yaml(u), routes));
    cr_expect_eq(status_of(p2->port, "/echo", "X-Forwarded-For: 203.0.113.7\r\n"), 200,
                 "XFF believed without trusted_proxies");
    /* trusted_proxies that do not include the peer: ignored as well */
    h_proxy *p3 =
        h_proxy_run(h_fmt("%strusted_proxies: [\"192.0.2.0/24\"]\nroutes:\n%s", svc_yaml(u), routes));
    cr_expect_eq(status_of(p3->port, "/echo", "X-Forwarded-For: 203.0.113.7\r\n"), 200,
                 "XFF believed from an untrusted peer");
}

/* ---- consumer_claim ------------------------------------------------------- */

H_TEST(auth, jwt_consumer_claim)
{
    py_init();
    char *hash2 = py("sha256 'second-key-67890'");
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p =
        h_proxy_run(h_fmt("%s%sroutes:\n%s%s", svc_yaml(u), consumers_yaml(hash2),
                          route("api", "/echo/api", jwt_hs(SECRET, ", consumer_claim: client_id"), NULL),
                          route("grp", "/echo/grp", jwt_hs(SECRET, ", consumer_claim: client_id"),
                                "acl: {allow_groups: [apps]}")));
    long exp = now_s() + 300;
    h_resp r;
    char *t1 = bearer(
        mint("HS256", SECRET, h_fmt("{\"sub\": \"s1\", \"client_id\": \"c-001\", \"exp\": %ld}", exp), NULL));
    get(p->port, "/echo/api", h_fmt("%sX-Consumer-ID: c-003\r\n", t1), &r);
    cr_assert_eq(r.status, 200, "client_id c-001: %d %s", r.status, OR_MISSING(r.body));
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-ID")), "c-001", "\n%s", r.body);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-Username")), "app1");
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-Groups")), "apps, beta");
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-ID")), "s1");
    cr_expect_eq(h_echoed_count(r.body, "X-Consumer-ID"), 1, "\n%s", r.body);

    /* by name */
    get(p->port, "/echo/api",
        bearer(mint("HS256", SECRET, h_fmt("{\"sub\": \"s\", \"client_id\": \"app2\", \"exp\": %ld}", exp),
                    NULL)),
        &r);
    cr_expect_eq(r.status, 200, "client_id app2 (a name): %d", r.status);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-ID")), "app2");

    char *tu = bearer(
        mint("HS256", SECRET, h_fmt("{\"sub\": \"s\", \"client_id\": \"c-999\", \"exp\": %ld}", exp), NULL));
    expect_invalid_token(p->port, "/echo/api", tu, "an unknown client_id");
    char *tn = bearer(mint("HS256", SECRET, h_fmt("{\"sub\": \"s\", \"exp\": %ld}", exp), NULL));
    expect_invalid_token(p->port, "/echo/api", tn, "no client_id claim");
    char *to =
        bearer(mint("HS256", SECRET,
                    h_fmt("{\"sub\": \"s\", \"client_id\": {\"id\": \"c-001\"}, \"exp\": %ld}", exp), NULL));
    expect_invalid_token(p->port, "/echo/api", to, "an object client_id");

    /* the consumer found through the token feeds the group ACL */
    cr_expect_eq(status_of(p->port, "/echo/grp", t1), 200, "c-001 is in apps");
    char *t2 = bearer(
        mint("HS256", SECRET, h_fmt("{\"sub\": \"s\", \"client_id\": \"app2\", \"exp\": %ld}", exp), NULL));
    get(p->port, "/echo/grp", t2, &r);
    expect_json_refusal(&r, 403, "app2 is not in apps");
}

/* ---- claims policy extras ----------------------------------------------- */

H_TEST(auth, required_claims_and_require_exp)
{
    py_init();
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_fmt("%sroutes:\n%s%s", svc_yaml(u),
                                   route("req", "/req", jwt_hs(SECRET, ", required_claims: [tenant]"), NULL),
                                   route("noexp", "/noexp", jwt_hs(SECRET, ", require_exp: false"), NULL)));
    long exp = now_s() + 300;
    cr_expect_eq(
        status_of(p->port, "/req",
                  bearer(mint("HS256", SECRET,
                              h_fmt("{\"sub\": \"s\", \"tenant\": \"t\", \"exp\": %ld}", exp), NULL))),
        200, "with the required claim");
    expect_invalid_token(p->port, "/req",
                         bearer(mint("HS256", SECRET, h_fmt("{\"sub\": \"s\", \"exp\": %ld}", exp), NULL)),
                         "without the required claim");
    cr_expect_eq(status_of(p->port, "/noexp", bearer(mint("HS256", SECRET, "{\"sub\": \"s\"}", NULL))), 200,
                 "no exp with require_exp: false");
    expect_invalid_token(
        p->port, "/noexp",
        bearer(mint("HS256", SECRET, h_fmt("{\"sub\": \"s\", \"exp\": %ld}", now_s() - 10), NULL)),
        "require_exp: false still checks an exp that is there");
}

/* ---- config errors ------------------------------------------------------ */

/* Writes a config whose line 12 (the key material) or line 9 (the filter)
 * is wrong; expects --check-config to exit 1 naming file:line. */
static void expect_config_error(const char *name, const char *filters, int line, const char *needle,
                                const char *what)
{
    const char *yaml = h_fmt("services:\n"                                   /* 1 */
                             "  - name: svc\n"                               /* 2 */
                             "    instances: [{address: \"127.0.0.1:1\"}]\n" /* 3 */
                             "routes:\n"                                     /* 4 */
                             "  - name: api\n"                               /* 5 */
                             "    paths: [{prefix: /}]\n"                    /* 6 */
                             "    service: svc\n"                            /* 7 */
                             "    filters:\n"                                /* 8 */
                             "%s",                                           /* 9.. */
                             filters);
    char *path = h_write_file(name, yaml);
    h_cmd *c;
    int code = h_run(&c, 10000, "'%s' --check-config --config '%s'", h_binary(), path);
    cr_expect_eq(code, 1, "%s: --check-config exited %d, want 1; stderr: %s", what, code, c->err);
    char *want = h_fmt("%s:%d:", path, line);
    cr_expect(strstr(c->err, want) != NULL, "%s: stderr should name %s; got: %s", what, want, c->err);
    cr_expect(strcasestr(c->err, needle) != NULL, "%s: stderr should say \"%s\"; got: %s", what, needle,
              c->err);
    /* and ringway refuses to start with it */
    code = h_run(&c, 10000, "'%s' --config '%s' --listen 127.0.0.1:%d --io %s", h_binary(), path,
                 h_free_port(), h_io());
    cr_expect(code > 0 && code < 128, "%s: ringway started with a bad config (exit %d)", what, code);
}

H_TEST(auth, config_errors)
{
    keypair small = genkey("small", "rsa1024");
    keypair ec = genkey("ec", "ec");
    expect_config_error("short.yaml",
                        "      - jwt:\n"
                        "          keys:\n"
                        "            - alg: HS256\n"
                        "              secret: \"0123456789abcdef0123456789abcde\"\n", /* 31 bytes */
                        12, "32", "an HS256 secret of 31 bytes");
    expect_config_error("short512.yaml",
                        "      - jwt:\n"
                        "          keys:\n"
                        "            - alg: HS512\n"
                        "              secret: \"" SECRET "\"\n", /* 32 < 64 */
                        12, "64", "an HS512 secret of 32 bytes");
    expect_config_error("rsa1024.yaml",
                        h_fmt("      - jwt:\n"
                              "          keys:\n"
                              "            - alg: RS256\n"
                              "              pem_file: \"%s\"\n",
                              small.pub),
                        12, "1024", "a 1024-bit RSA key");
    expect_config_error("nopem.yaml",
                        h_fmt("      - jwt:\n"
                              "          keys:\n"
                              "            - alg: RS256\n"
                              "              pem_file: \"%s/no-such.pem\"\n",
                              h_tmpdir()),
                        12, "no-such.pem", "a missing pem_file");
    expect_config_error("mismatch.yaml",
                        h_fmt("      - jwt:\n"
                              "          keys:\n"
                              "            - alg: RS256\n"
                              "              pem_file: \"%s\"\n",
                              ec.pub),
                        12, "RS256", "an EC key for RS256");
    expect_config_error(
        "garbagepem.yaml",
        "      - jwt:\n"
        "          keys:\n"
        "            - alg: RS256\n"
        "              pem: \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\\n\"\n",
        12, "PEM", "garbage PEM");
    expect_config_error("unknown.yaml", "      - oauth2: {provider: x}\n", 9, "oauth2",
                        "an unknown filter name");
    expect_config_error("nokeys.yaml", "      - jwt: {issuer: \"https://issuer.test/\"}\n", 9, "keys",
                        "jwt without keys");
    expect_config_error("emptykeys.yaml", "      - jwt: {keys: []}\n", 9, "keys",
                        "jwt with an empty key list");
    expect_config_error("alg.yaml",
                        "      - jwt:\n"
                        "          keys:\n"
                        "            - {alg: none, secret: \"" SECRET "\"}\n",
                        11, "none", "alg none");
    expect_config_error("acl.yaml", "      - acl: {allow_ips: [\"10.0.0.1/8\"]}\n", 9, "10.0.0.1/8",
                        "a CIDR with host bits");
    expect_config_error("from.yaml", "      - key_auth: {header: X-Key, query: k}\n", 9, "exclusive",
                        "key_auth header and query");
    expect_config_error("two.yaml",
                        "      - key_auth\n"
                        "      - key_auth: {query: k}\n",
                        10, "key_auth", "two key_auth filters");
}

/* ---- reloads ------------------------------------------------------------ */

H_TEST(auth, sighup_changes_jwt_secret)
{
    py_init();
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p =
        h_proxy_run(h_fmt("%sroutes:\n%s", svc_yaml(u), route("api", "/", jwt_hs(SECRET, NULL), NULL)));
    const char *claims = h_fmt("{\"sub\": \"s\", \"exp\": %ld}", now_s() + 300);
    char *told = bearer(mint("HS256", SECRET, claims, NULL));
    char *tnew = bearer(mint("HS256", SECRET2, claims, NULL));
    cr_assert_eq(status_of(p->port, "/x", told), 200);
    cr_assert_eq(status_of(p->port, "/x", tnew), 401);
    h_conn *keep = h_connect(p->port);
    h_resp r;
    cr_assert_eq(h_request(keep, "GET", "/x", told, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 200);

    h_proxy_write_config(p,
                         h_fmt("%sroutes:\n%s", svc_yaml(u), route("api", "/", jwt_hs(SECRET2, NULL), NULL)));
    h_proxy_signal(p, SIGHUP);
    cr_assert(wait_status_hdr(p->port, "/x", tnew, 200, 5000), "the new secret is not used 5 s after SIGHUP");
    expect_invalid_token(p->port, "/x", told, "a token of the old secret after the reload");
    /* a connection from before the reload follows the new config */
    cr_assert_eq(h_request(keep, "GET", "/x", told, NULL, 0, &r), H_OK);
    cr_expect_eq(r.status, 401, "an old connection kept the old secret");

    /* a reload with a bad key is refused as a whole: the current secret stays */
    p->expect_errors = true;
    h_proxy_write_config(
        p, h_fmt("%sroutes:\n%s", svc_yaml(u), route("api", "/", jwt_hs("too-short", NULL), NULL)));
    h_proxy_signal(p, SIGHUP);
    cr_assert(h_proxy_wait_log(p, "reload failed", 1, 5000), "the bad reload was not refused:\n%s",
              h_proxy_log(p));
    cr_assert_eq(h_proxy_wait_exit(p, 0), -1, "ringway exited on a bad reload");
    cr_expect_eq(status_of(p->port, "/x", tnew), 200, "a refused reload changed the secret");
    cr_expect_eq(status_of(p->port, "/x", told), 401);
}

H_TEST(auth, sighup_rotates_rsa_key_cached_token_refused)
{
    py_init();
    keypair k1 = genkey("k1", "rsa");
    keypair k2 = genkey("k2", "rsa");
    h_upstream *u = h_upstream_start("u1", NULL);
    const char *rfmt = "jwt: {keys: [{alg: RS256, pem_file: \"%s\"}]}";
    h_proxy *p =
        h_proxy_run(h_fmt("%sroutes:\n%s", svc_yaml(u), route("api", "/", h_fmt(rfmt, k1.pub), NULL)));
    const char *claims = h_fmt("{\"sub\": \"s\", \"exp\": %ld}", now_s() + 300);
    char *t1 = bearer(mint("RS256", k1.at, claims, NULL));
    char *t2 = bearer(mint("RS256", k2.at, claims, NULL));
    cr_assert_eq(status_of(p->port, "/x", t1), 200);
    cr_assert_eq(status_of(p->port, "/x", t1), 200, "cached");
    h_proxy_write_config(p,
                         h_fmt("%sroutes:\n%s", svc_yaml(u), route("api", "/", h_fmt(rfmt, k2.pub), NULL)));
    h_proxy_signal(p, SIGHUP);
    cr_assert(wait_status_hdr(p->port, "/x", t2, 200, 5000), "the new key is not used 5 s after SIGHUP");
    expect_invalid_token(p->port, "/x", t1, "a cached token of the old key after the reload");
}

/* ---- more token shapes ---------------------------------------------------- */

/* An HS256 token over a raw header and payload text (duplicates, escapes,
 * odd types: what PyJWT would not write). */
static char *raw_hs(const char *header, const char *claims)
{
    char *keyfile = h_write_file("secret.bin", SECRET);
    return py(h_fmt("rawhsh '%s' '%s' '%s'", keyfile, header, claims));
}

H_TEST(auth, claims_to_headers_values_are_header_safe)
{
    py_init();
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_fmt(
        "%sroutes:\n%s", svc_yaml(u),
        route("api", "/echo",
              jwt_hs(SECRET, ", claims_to_headers: {sub: X-User-ID, roles: X-Roles, n: X-Num, obj: X-Obj, "
                             "esc: X-Esc, big: X-Big, nul: X-Nul, t: X-Bool}"),
              NULL)));
    long exp = now_s() + 300;
    const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    h_resp r;
    get(p->port, "/echo",
        bearer(raw_hs(hdr,
                      h_fmt("{\"sub\":\"alice\\r\\nX-Injected: 1\",\"roles\":[\"a\",\"b\"],\"n\":42,"
                            "\"obj\":{\"k\":\"v\"},\"esc\":\"\\u0041\\/b \\\"q\\\"\",\"nul\":null,\"t\":true,"
                            "\"big\":\"%s\",\"exp\":%ld}",
                            h_repeat(5000, 'z'), exp))),
        &r);
    cr_assert_eq(r.status, 200, "odd claim values should not refuse the token: %d %s", r.status,
                 OR_MISSING(r.body));
    cr_expect_null(h_echoed(r.body, "X-Injected"), "a CRLF in a claim injected a header:\n%s", r.body);
    cr_expect_null(strstr(r.body, "X-Injected"), "a CRLF in a claim reached the upstream head:\n%s", r.body);
    cr_expect_null(h_echoed(r.body, "X-User-ID"), "a claim with CR LF was forwarded:\n%s", r.body);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Roles")), "a, b");
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Num")), "42");
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Bool")), "true");
    cr_expect_null(h_echoed(r.body, "X-Obj"), "an object claim was forwarded:\n%s", r.body);
    cr_expect_null(h_echoed(r.body, "X-Nul"), "a null claim was forwarded:\n%s", r.body);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Esc")), "A/b \"q\"", "JSON escapes should be decoded");
    char *big = h_echoed(r.body, "X-Big");
    cr_expect(big == NULL || strlen(big) == 5000, "a 5000-byte claim was cut: %zu bytes",
              big ? strlen(big) : 0);

    /* an escaped issuer equals the configured one */
    h_proxy *p2 =
        h_proxy_run(h_fmt("%sroutes:\n%s", svc_yaml(u),
                          route("api", "/", jwt_hs(SECRET, ", issuer: \"https://issuer.test/\""), NULL)));
    cr_expect_eq(
        status_of(p2->port, "/x",
                  bearer(raw_hs(hdr, h_fmt("{\"iss\":\"https:\\/\\/issuer.test\\/\",\"exp\":%ld}", exp)))),
        200, "iss with escaped slashes is the same string");
    expect_invalid_token(
        p2->port, "/x",
        bearer(raw_hs(hdr, h_fmt("{\"iss\":\"https://issuer.test/\\u0000\",\"exp\":%ld}", exp))),
        "iss with a trailing NUL");
}

H_TEST(auth, malformed_registered_claims)
{
    py_init();
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p =
        h_proxy_run(h_fmt("%sroutes:\n%s", svc_yaml(u),
                          route("api", "/", jwt_hs(SECRET, ", audience: orders, issuer: iss1"), NULL)));
    long now = now_s();
    const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    const char *ok = h_fmt("\"aud\":\"orders\",\"iss\":\"iss1\"");
    cr_assert_eq(status_of(p->port, "/x", bearer(raw_hs(hdr, h_fmt("{%s,\"exp\":%ld}", ok, now + 300)))),
                 200);
    cr_expect_eq(status_of(p->port, "/x", bearer(raw_hs(hdr, h_fmt("{%s,\"exp\":%ld.5}", ok, now + 300)))),
                 200, "a fractional exp is a NumericDate");
    struct {
        const char *what, *claims;
    } bad[] = {
        {"exp as a string", h_fmt("{%s,\"exp\":\"%ld\"}", ok, now + 300)},
        {"exp as a past string", h_fmt("{%s,\"exp\":\"1\"}", ok)},
        {"exp null", h_fmt("{%s,\"exp\":null}", ok)},
        {"exp negative", h_fmt("{%s,\"exp\":-1}", ok)},
        {"nbf as a future string", h_fmt("{%s,\"exp\":%ld,\"nbf\":\"%ld\"}", ok, now + 300, now + 200)},
        {"aud as a number", h_fmt("{\"aud\":7,\"iss\":\"iss1\",\"exp\":%ld}", now + 300)},
        {"aud array without it", h_fmt("{\"aud\":[\"a\",7,null],\"iss\":\"iss1\",\"exp\":%ld}", now + 300)},
        {"iss as a number", h_fmt("{\"aud\":\"orders\",\"iss\":1,\"exp\":%ld}", now + 300)},
        {"payload an array", h_fmt("[%ld]", now + 300)},
        {"payload a string", "\"exp\""},
        {"payload not JSON", "{exp: 1}"},
        {"payload trailing garbage", h_fmt("{%s,\"exp\":%ld}x", ok, now + 300)},
        {"payload deep",
         h_fmt("{%s,\"exp\":%ld,\"d\":%s1%s}", ok, now + 300, h_repeat(100, '['), h_repeat(100, ']'))},
        {"payload very deep", h_fmt("{%s,\"exp\":%ld,\"d\":%s}", ok, now + 300, h_repeat(5000, '['))},
        {"duplicate exp, the last expired", h_fmt("{%s,\"exp\":%ld,\"exp\":1}", ok, now + 300)},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_invalid_token(p->port, "/x", bearer(raw_hs(hdr, bad[i].claims)), bad[i].what);
    /* headers */
    const char *claims = h_fmt("{%s,\"exp\":%ld}", ok, now + 300);
    struct {
        const char *what, *header;
    } badh[] = {
        {"header without alg", "{\"typ\":\"JWT\"}"},
        {"alg as a number", "{\"alg\":256}"},
        {"alg lower case", "{\"alg\":\"hs256\"}"},
        {"header an array", "[\"HS256\"]"},
        {"kid as a number", "{\"alg\":\"HS256\",\"kid\":5}"},
        {"crit with an unknown extension", "{\"alg\":\"HS256\",\"crit\":[\"x-ext\"],\"x-ext\":1}"},
        {"b64 false (RFC 7797)", "{\"alg\":\"HS256\",\"b64\":false,\"crit\":[\"b64\"]}"},
        {"header deep", h_fmt("{\"alg\":\"HS256\",\"x\":%s}", h_repeat(5000, '{'))},
        {"duplicate alg, the last none", "{\"alg\":\"HS256\",\"alg\":\"none\"}"},
    };
    for (size_t i = 0; i < sizeof badh / sizeof badh[0]; i++)
        expect_invalid_token(p->port, "/x", bearer(raw_hs(badh[i].header, claims)), badh[i].what);
    /* a huge exp: accepted or refused, never a crash */
    int st = status_of(p->port, "/x", bearer(raw_hs(hdr, h_fmt("{%s,\"exp\":1e400}", ok))));
    cr_expect(st == 200 || st == 401, "exp 1e400: %d", st);
    st = status_of(p->port, "/x", bearer(raw_hs(hdr, h_fmt("{%s,\"exp\":99999999999999999999999}", ok))));
    cr_expect(st == 200 || st == 401, "exp 1e23: %d", st);
    cr_expect_eq(status_of(p->port, "/x", bearer(raw_hs(hdr, claims))), 200, "still serving");
}

H_TEST(auth, es256_der_signature_refused)
{
    py_init();
    keypair k = genkey("ec", "ec");
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(
        h_fmt("%sroutes:\n%s", svc_yaml(u),
              route("api", "/", h_fmt("jwt: {keys: [{alg: ES256, pem_file: \"%s\"}]}", k.pub), NULL)));
    const char *claims = h_fmt("{\"sub\": \"e\", \"exp\": %ld}", now_s() + 300);
    cr_assert_eq(status_of(p->port, "/x", bearer(mint("ES256", k.at, claims, NULL))), 200);
    /* JWS wants R || S (64 bytes); an ASN.1 DER signature is not a JWS signature */
    expect_invalid_token(p->port, "/x", bearer(py(h_fmt("es256der '%s' '%s'", k.priv, claims))),
                         "an ES256 token with a DER signature");
}

H_TEST(auth, max_age_and_nbf_leeway)
{
    py_init();
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_fmt("%sroutes:\n%s%s", svc_yaml(u),
                                   route("age", "/age", jwt_hs(SECRET, ", max_age: 60s"), NULL),
                                   route("lee", "/lee", jwt_hs(SECRET, ", leeway: 10s"), NULL)));
    long now = now_s();
    cr_expect_eq(status_of(p->port, "/age",
                           bearer(mint("HS256", SECRET,
                                       h_fmt("{\"iat\": %ld, \"exp\": %ld}", now - 5, now + 300), NULL))),
                 200, "iat 5 s ago, max_age 60s");
    expect_invalid_token(
        p->port, "/age",
        bearer(mint("HS256", SECRET, h_fmt("{\"iat\": %ld, \"exp\": %ld}", now - 120, now + 300), NULL)),
        "iat 120 s ago, max_age 60s");
    expect_invalid_token(p->port, "/age",
                         bearer(mint("HS256", SECRET, h_fmt("{\"exp\": %ld}", now + 300), NULL)),
                         "no iat with max_age");
    cr_expect_eq(status_of(p->port, "/lee",
                           bearer(mint("HS256", SECRET,
                                       h_fmt("{\"nbf\": %ld, \"exp\": %ld}", now + 4, now + 300), NULL))),
                 200, "nbf 4 s ahead within leeway 10s");
    expect_invalid_token(
        p->port, "/lee",
        bearer(mint("HS256", SECRET, h_fmt("{\"nbf\": %ld, \"exp\": %ld}", now + 60, now + 300), NULL)),
        "nbf 60 s ahead beyond leeway 10s");
    expect_invalid_token(p->port, "/lee",
                         bearer(mint("HS256", SECRET, h_fmt("{\"exp\": %ld}", now - 30), NULL)),
                         "exp 30 s ago beyond leeway 10s");
}

/* ---- filter composition ------------------------------------------------- */

H_TEST(auth, key_auth_and_jwt_both_required)
{
    py_init();
    char *hash2 = py("sha256 'second-key-67890'");
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p =
        h_proxy_run(h_fmt("%s%sroutes:\n%s", svc_yaml(u), consumers_yaml(hash2),
                          route("api", "/echo", "key_auth: {header: X-API-Key}", jwt_hs(SECRET, NULL))));
    char *tok = mint("HS256", SECRET, h_fmt("{\"sub\": \"both\", \"exp\": %ld}", now_s() + 300), NULL);
    h_resp r;
    get(p->port, "/echo", h_fmt("X-API-Key: app-key-12345\r\n%s", bearer(tok)), &r);
    cr_assert_eq(r.status, 200, "key and token: %d", r.status);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-ID")), "c-001");
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-ID")), "both");
    cr_expect_eq(status_of(p->port, "/echo", "X-API-Key: app-key-12345\r\n"), 401, "key without token");
    cr_expect_eq(status_of(p->port, "/echo", bearer(tok)), 401, "token without key");
    cr_expect_eq(status_of(p->port, "/echo", h_fmt("X-API-Key: bad\r\n%s", bearer(tok))), 401,
                 "bad key, good token");
}

H_TEST(auth, global_and_service_filters)
{
    py_init();
    char *hash2 = py("sha256 'second-key-67890'");
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_fmt("services:\n"
                                   "  - name: svc\n"
                                   "    instances: [{address: \"127.0.0.1:%d\"}]\n"
                                   "  - name: locked\n"
                                   "    instances: [{address: \"127.0.0.1:%d\"}]\n"
                                   "    filters:\n"
                                   "      - acl: {allow_groups: [beta]}\n"
                                   "%s"
                                   "filters:\n"
                                   "  - key_auth\n"
                                   "routes:\n"
                                   "  - name: open\n"
                                   "    paths: [{prefix: /echo/a}]\n"
                                   "    service: svc\n"
                                   "  - name: locked\n"
                                   "    paths: [{prefix: /echo/b}]\n"
                                   "    service: locked\n"
                                   "  - name: canned\n"
                                   "    paths: [{exact: /canned}]\n"
                                   "    respond: {status: 200, body: \"canned\"}\n",
                                   u->port, u->port, consumers_yaml(hash2)));
    cr_expect_eq(status_of(p->port, "/health", NULL), 200, "/health is not behind the filters");
    cr_expect_eq(status_of(p->port, "/echo/a", NULL), 401, "a top-level key_auth applies to every route");
    cr_expect_eq(status_of(p->port, "/canned", NULL), 401, "a top-level key_auth applies to respond routes");
    cr_expect_eq(status_of(p->port, "/canned", "X-API-Key: app-key-12345\r\n"), 200);
    cr_expect_eq(status_of(p->port, "/echo/a", "X-API-Key: second-key-67890\r\n"), 200);
    cr_expect_eq(status_of(p->port, "/echo/b", "X-API-Key: second-key-67890\r\n"), 403,
                 "service acl: app2 not in beta");
    cr_expect_eq(status_of(p->port, "/echo/b", "X-API-Key: app-key-12345\r\n"), 200,
                 "service acl: app1 in beta");
    cr_expect_eq(status_of(p->port, "/echo/b", NULL), 401);
}

/* ---- connection handling around refusals -------------------------------- */

H_TEST(auth, refusals_keep_connections_sane)
{
    py_init();
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p =
        h_proxy_run(h_fmt("%sroutes:\n%s", svc_yaml(u), route("api", "/echo", jwt_hs(SECRET, NULL), NULL)));
    long exp = now_s() + 300;
    char *ta = mint("HS256", SECRET, h_fmt("{\"sub\": \"alice\", \"exp\": %ld}", exp), NULL);
    char *tb = mint("HS256", SECRET, h_fmt("{\"sub\": \"bob\", \"exp\": %ld}", exp), NULL);
    h_resp r;

    /* a 401 then a good request on the same keep-alive connection */
    h_conn *c = h_connect(p->port);
    cr_assert_eq(h_request(c, "GET", "/echo", NULL, NULL, 0, &r), H_OK);
    cr_assert_eq(r.status, 401);
    cr_assert_eq(h_request(c, "GET", "/echo", bearer(ta), NULL, 0, &r), H_OK,
                 "the connection died after a 401");
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-ID")), "alice");
    /* HEAD refused: no body */
    cr_assert_eq(h_request(c, "HEAD", "/echo", NULL, NULL, 0, &r), H_OK);
    cr_expect_eq(r.status, 401);
    cr_expect_eq(r.body_len, 0);
    cr_assert_eq(h_request(c, "GET", "/echo", bearer(tb), NULL, 0, &r), H_OK,
                 "the connection died after HEAD 401");
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-ID")), "bob");
    h_close(c);

    /* pipelined requests with different tokens each get their own identity */
    c = h_connect(p->port);
    cr_assert_eq(h_sendf(c,
                         "GET /echo/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                         "GET /echo/2 HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /echo/3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
                         ta, tb),
                 H_OK);
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-ID")), "alice");
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_expect_eq(r.status, 401, "the second pipelined request has no token");
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-ID")), "bob");
    cr_expect_eq(h_echoed_count(r.body, "X-User-ID"), 1, "\n%s", r.body);
    h_close(c);

    /* a refused request's body is never read as a request */
    h_upstream_reset(u);
    const char *smuggled = "GET /echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    c = h_connect(p->port);
    cr_assert_eq(h_request(c, "POST", "/echo", NULL, smuggled, strlen(smuggled), &r), H_OK);
    cr_expect_eq(r.status, 401);
    char *more = NULL;
    if (!h_wait_closed(c, 500, &more))
        cr_expect(more == NULL || *more == '\0', "something followed the 401: %s", more);
    cr_expect(more == NULL || strstr(more, "HTTP/1.1") == NULL, "the body was answered as a request: %s",
              more);
    h_close(c);
    /* chunked */
    c = h_connect(p->port);
    cr_assert_eq(
        h_sendf(c,
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
                strlen(smuggled), smuggled),
        H_OK);
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_expect_eq(r.status, 401);
    more = NULL;
    if (!h_wait_closed(c, 500, &more))
        cr_expect(more == NULL || *more == '\0', "something followed the 401 (chunked): %s", more);
    cr_expect(more == NULL || strstr(more, "HTTP/1.1") == NULL,
              "the chunked body was answered as a request: %s", more);
    h_close(c);
    /* Expect: 100-continue: refused with a final status */
    c = h_connect(p->port);
    cr_assert_eq(
        h_sendf(c, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"),
        H_OK);
    cr_assert_eq(h_read_response(c, &r, 0), H_OK);
    cr_expect_eq(r.status, 401, "Expect: 100-continue without a token: %d", r.status);
    h_close(c);
    h_stats s = h_upstream_stats(u);
    cr_expect_eq(s.requests, 0, "refused requests (or their bodies) reached the upstream: %ld", s.requests);
}

/* ---- JWKS extras --------------------------------------------------------- */

H_TEST(auth, jwks_file_relative_and_key_kinds)
{
    py_init();
    keypair k1 = genkey("k1", "ed25519");
    keypair k2 = genkey("k2", "ec");
    /* k1 usable; k2 for encryption only (skipped); an HMAC oct key */
    char *doc = py(h_fmt("jwks 'k1:EdDSA:%s' 'k2:ES256:%s'", k1.pub, k2.pub));
    char *enc = strstr(doc, "\"kid\": \"k2\"");
    cr_assert(enc != NULL, "unexpected JWKS text: %s", doc);
    char *use = strstr(enc, "\"use\": \"sig\"");
    cr_assert(use != NULL, "unexpected JWKS text: %s", doc);
    memcpy(use, "\"use\": \"enc\"", 12);
    char *close = strrchr(doc, ']');
    doc = h_fmt("%.*s, {\"kty\": \"oct\", \"kid\": \"h1\", \"alg\": \"HS256\", "
                "\"k\": \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}%s",
                (int)(close - doc), doc, close);
    h_write_file("rel-jwks.json", doc);
    h_upstream *u = h_upstream_start("u1", NULL);
    /* the config is written to the same temp directory: a relative path is taken from there */
    h_proxy *p = h_proxy_run(
        h_fmt("%sroutes:\n%s", svc_yaml(u), route("api", "/", "jwt: {jwks_file: rel-jwks.json}", NULL)));
    const char *claims = h_fmt("{\"sub\": \"s\", \"exp\": %ld}", now_s() + 300);
    cr_expect_eq(status_of(p->port, "/x", bearer(mint("EdDSA", k1.at, claims, "k1"))), 200,
                 "EdDSA key from the JWKS");
    expect_invalid_token(p->port, "/x", bearer(mint("ES256", k2.at, claims, "k2")), "a key with use: enc");
    cr_expect_eq(status_of(p->port, "/x", bearer(mint("HS256", SECRET, claims, "h1"))), 200,
                 "an oct key from the JWKS");
    expect_invalid_token(p->port, "/x", bearer(mint("HS256", SECRET, claims, "k1")),
                         "HS256 under the EdDSA key's kid");
    /* the relative file is watched too */
    h_write_file("rel-jwks.json", py(h_fmt("jwks 'k2:ES256:%s'", k2.pub)));
    char *t2 = bearer(mint("ES256", k2.at, claims, "k2"));
    cr_expect(wait_status_hdr(p->port, "/x", t2, 200, 4000), "a relative jwks_file was not re-read");
    /* the file goes away: the last good set stays */
    int fails = count_in(h_proxy_log(p), "refresh failed");
    cr_assert_eq(unlink(h_fmt("%s/rel-jwks.json", h_tmpdir())), 0);
    wait_jwks_failure(p, fails, 3000);
    cr_expect_eq(status_of(p->port, "/x", t2), 200, "the keys were dropped when the JWKS file went away");
    /* and comes back */
    h_write_file("rel-jwks.json", py(h_fmt("jwks 'k1:EdDSA:%s'", k1.pub)));
    cr_expect(wait_status_hdr(p->port, "/x", bearer(mint("EdDSA", k1.at, claims, "k1")), 200, 4000),
              "a JWKS file that came back was not read");
    cr_expect_eq(status_of(p->port, "/x", t2), 401);
}

H_TEST(auth, jwks_file_watched_after_reload)
{
    py_init();
    keypair k1 = genkey("k1", "ec");
    keypair k2 = genkey("k2", "ec");
    char *jwks = h_write_file("jwks.json", py(h_fmt("jwks 'k1:ES256:%s'", k1.pub)));
    h_upstream *u = h_upstream_start("u1", NULL);
    const char *cfg =
        h_fmt("%sroutes:\n%s", svc_yaml(u), route("api", "/", h_fmt("jwt: {jwks_file: \"%s\"}", jwks), NULL));
    h_proxy *p = h_proxy_start(&(h_proxy_opts){.config = cfg, .workers = 2});
    const char *claims = h_fmt("{\"sub\": \"s\", \"exp\": %ld}", now_s() + 300);
    char *t1 = bearer(mint("ES256", k1.at, claims, "k1"));
    char *t2 = bearer(mint("ES256", k2.at, claims, "k2"));
    cr_assert_eq(status_of(p->port, "/x", t1), 200);
    /* two reloads of the same config: each builds a new JWKS source, the old ones go */
    for (int i = 0; i < 2; i++) {
        h_proxy_write_config(p, h_fmt("%s# reload %d\n", cfg, i));
        h_proxy_signal(p, SIGHUP);
        cr_assert(h_proxy_wait_log(p, "reloaded ", i + 1, 5000), "reload %d did not happen", i);
        cr_assert_eq(status_of(p->port, "/x", t1), 200, "k1 after reload %d", i);
    }
    h_write_file("jwks.json", py(h_fmt("jwks 'k2:ES256:%s'", k2.pub)));
    cr_expect(wait_status_hdr(p->port, "/x", t2, 200, 4000), "the JWKS file is not watched after a reload");
    cr_expect(wait_status_hdr(p->port, "/x", t1, 401, 4000), "k1 still accepted after rotation");
}

/* ---- review follow-ups ------------------------------------------------------ */

H_TEST(auth, repeated_credentials_refused_and_underscore_identity_stripped)
{
    py_init();
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(h_fmt("%s%sroutes:\n%s%s", svc_yaml(u), consumers_yaml(h_repeat(64, '0')),
                                   route("api", "/echo/api", jwt_hs(SECRET, NULL), NULL),
                                   route("key", "/echo/key", "key_auth: {header: X-API-Key}", NULL)));
    char *good = mint("HS256", SECRET, h_fmt("{\"sub\": \"alice\", \"exp\": %ld}", now_s() + 300), NULL);
    h_resp r;
    /* a verified token next to a forged one: the upstream could read either */
    get(p->port, "/echo/api", h_fmt("%sAuthorization: Bearer forged.token.x\r\n", bearer(good)), &r);
    cr_expect_eq(r.status, 400, "two Authorization headers: %d", r.status);
    cr_expect(strstr(OR_MISSING(h_hdr(&r, "WWW-Authenticate")), "invalid_request") != NULL, "%s", r.head);
    cr_expect_eq(status_of(p->port, "/echo/key", "X-API-Key: app-key-12345\r\nX-API-Key: other\r\n"), 401,
                 "two API key headers must be refused");
    /* underscores: CGI-style upstreams read X_User_ID as X-User-ID */
    get(p->port, "/echo/api", h_fmt("%sX_User_ID: mallory\r\nX_Consumer_ID: evil\r\n", bearer(good)), &r);
    cr_assert_eq(r.status, 200);
    cr_expect_null(strstr(r.body, "mallory"), "X_User_ID passed:\n%s", r.body);
    cr_expect_null(strstr(r.body, "evil"), "X_Consumer_ID passed:\n%s", r.body);
}

H_TEST(auth, cache_hits_keep_headers_consumer_and_time_checks)
{
    /* RS256 tokens are cached per worker: a hit must yield the same headers and
     * consumer as a full verification, and still apply nbf/exp. */
    py_init();
    keypair k = genkey("k", "rsa");
    h_upstream *u = h_upstream_start("u1", NULL);
    h_proxy *p = h_proxy_run(
        h_fmt("%s%sroutes:\n%s", svc_yaml(u), consumers_yaml(h_repeat(64, '0')),
              route("api", "/echo",
                    h_fmt("jwt: {keys: [{alg: RS256, pem_file: \"%s\"}], consumer_claim: client_id, "
                          "claims_to_headers: {sub: X-User-ID, role: X-User-Role, scope: X-Scope}}",
                          k.pub),
                    NULL)));
    char *tok =
        mint("RS256", k.at,
             h_fmt("{\"sub\": \"carol\", \"role\": \"ops\", \"scope\": [\"a\", \"b\"], \"client_id\": "
                   "\"c-001\", \"exp\": %ld}",
                   now_s() + 300),
             NULL);
    for (int i = 0; i < 4; i++) { /* the first verifies, the others hit */
        h_resp r;
        get(p->port, "/echo", bearer(tok), &r);
        cr_assert_eq(r.status, 200, "request %d: %d", i, r.status);
        cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-ID")), "carol", "request %d", i);
        cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-User-Role")), "ops", "request %d", i);
        cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Scope")), "a, b", "request %d", i);
        cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-ID")), "c-001", "request %d", i);
        cr_expect_str_eq(OR_MISSING(h_echoed(r.body, "X-Consumer-Username")), "app1", "request %d", i);
    }
    /* not yet valid: refused on the first try and on every retry */
    char *later =
        mint("RS256", k.at,
             h_fmt("{\"sub\": \"d\", \"nbf\": %ld, \"exp\": %ld}", now_s() + 100, now_s() + 300), NULL);
    for (int i = 0; i < 2; i++)
        expect_invalid_token(p->port, "/echo", bearer(later), "nbf in the future");
}
