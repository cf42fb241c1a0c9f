/* fuzz_jwt.c - libFuzzer driver for the JWT verifier, its JSON scanner, JWKS
 * loading and base64url. Byte 0 picks what the rest is:
 *   0: a compact token, verified against a fixed key set (HS256 secret, the
 *      RFC 7515 A.2 RSA and A.3 EC keys, the RFC 8037 Ed25519 key);
 *   1: "header JSON \n payload JSON": encoded and signed with the set's HS256
 *      secret here, so that mutations reach the header, claim and payload
 *      code behind a valid signature;
 *   2: a payload: rw_jwt_check_claims, rw_jwt_claim_text, and a walk of the
 *      whole document with the scanner's readers;
 *   3: a JWKS document;
 *   4: base64url text.
 * Every input is an exact-size heap copy, so ASan sees any read past its end. */
#include "fuzz_common.h"

#include <openssl/digest.h>
#include <openssl/hmac.h>

#include "ringway/jwt.h"
#include "../../src/filters/json.h"

#define NOW 1700000000

static const uint8_t secret[32] = "fuzzing secret, thirty-two bytes";

static const char jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a2\",\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_"
    "wWJcyQoTbji9k0l8W26mPddx"
    "HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_"
    "7OMg0LOL-"
    "bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_"
    "I5IhlJH7aG"
    "hyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\",\"e\":\"AQAB\"},"
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"},"
    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}";

static const char *const audiences[] = {"api"};
static const char *const required[] = {"sub"};
static const rw_jwt_policy policies[2] = {
    {0},
    {.issuer = "idp",
     .audiences = audiences,
     .naudiences = 1,
     .required = required,
     .nrequired = 1,
     .leeway_s = 60,
     .max_age_s = 3600,
     .require_exp = true},
};

static const rw_jwt_keyset *keys(void)
{
    static rw_jwt_keyset *ks;
    if (!ks) {
        ks = rw_jwt_keyset_new();
        FUZZ_CHECK(ks);
        FUZZ_CHECK(rw_jwt_keyset_add_secret(ks, RW_JWT_HS256, NULL, secret, sizeof secret, NULL, 0) == 0);
        FUZZ_CHECK(rw_jwt_keyset_add_secret(ks, RW_JWT_HS256, "k1", secret, sizeof secret, NULL, 0) == 0);
        FUZZ_CHECK(rw_jwt_keyset_add_jwks(ks, jwks, strlen(jwks), NULL, 0) == 3);
    }
    return ks;
}

static void check_claim_text(const char *payload, size_t len)
{
    static const char *const names[] = {"sub", "aud", "roles", "n", "x", ""};
    char buf[64];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ssize_t n = rw_jwt_claim_text(payload, len, names[i], buf, sizeof buf);
        FUZZ_CHECK(n >= -1 && n < (ssize_t)sizeof buf);
        for (ssize_t k = 0; k < n; k++)
            FUZZ_CHECK((unsigned char)buf[k] >= 0x20 && buf[k] != 0x7f);
        if (n >= 0)
            FUZZ_CHECK(buf[n] == '\0');
    }
}

static void check_token(const char *tok, size_t len, const char *payload_in, size_t payload_in_len)
{
    for (int p = 0; p < 2; p++) {
        size_t cap = 2 * len + 1;
        char *scratch = malloc(cap);
        rw_jwt_token out;
        FUZZ_CHECK(scratch);
        int rc = rw_jwt_verify(keys(), &policies[p], tok, len, NOW, scratch, cap, &out);
        FUZZ_CHECK(rc >= RW_JWT_OK && rc <= RW_JWT_ECLAIM);
        FUZZ_CHECK(len <= RW_JWT_MAX_TOKEN || rc == RW_JWT_ETOOLARGE);
        if (rc == RW_JWT_OK) {
            FUZZ_CHECK(out.payload >= scratch && out.payload + out.payload_len <= scratch + cap);
            FUZZ_CHECK(out.alg > RW_JWT_NONE && out.alg < RW_JWT_ALG_COUNT);
            FUZZ_CHECK(rw_jwt_check_claims(&policies[p], out.payload, out.payload_len, NOW, NULL) ==
                       RW_JWT_OK);
            if (payload_in)
                FUZZ_CHECK(out.payload_len == payload_in_len &&
                           memcmp(out.payload, payload_in, payload_in_len) == 0);
            check_claim_text(out.payload, out.payload_len);
        }
        free(scratch);
    }
}

static size_t b64url(const uint8_t *p, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = abc[acc >> bits & 63];
        }
    }
    if (bits)
        out[o++] = abc[acc << (6 - bits) & 63];
    return o;
}

/* "header\npayload" -> an HS256 token signed with the set's secret. */
static void sign_and_check(const uint8_t *p, size_t n)
{
    const uint8_t *nl = memchr(p, '\n', n);
    if (!nl)
        return;
    size_t hl = (size_t)(nl - p), pl = n - hl - 1;
    char *tok = malloc(2 * n + 64);
    FUZZ_CHECK(tok);
    size_t t = b64url(p, hl, tok);
    tok[t++] = '.';
    t += b64url(nl + 1, pl, tok + t);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    FUZZ_CHECK(HMAC(EVP_sha256(), secret, sizeof secret, (const uint8_t *)tok, t, mac, &maclen));
    tok[t++] = '.';
    t += b64url(mac, maclen, tok + t);
    char *exact = fuzz_copy((const uint8_t *)tok, t);
    free(tok);
    check_token(exact, t, (const char *)nl + 1, pl);
    free(exact);
}

/* Reads every value of a validated document. */
static void walk(const rw_json_val *v, unsigned depth)
{
    rw_json_iter it;
    rw_json_val name, e;
    char buf[128];
    int64_t i64;
    FUZZ_CHECK(depth <= RW_JWT_MAX_DEPTH + 1);
    switch (v->type) {
    case RW_JSON_OBJECT:
    case RW_JSON_ARRAY:
        rw__json_iter_init(&it, v);
        while (rw__json_iter_next(&it, &name, &e)) {
            FUZZ_CHECK(e.p >= v->p && e.p + e.len <= v->p + v->len && e.len > 0);
            if (v->type == RW_JSON_OBJECT) {
                FUZZ_CHECK(name.type == RW_JSON_STRING);
                rw_json_val found;
                ssize_t k = rw__json_string(&name, buf, sizeof buf);
                if (k >= 0) { /* the first member of that name is this one: names are unique */
                    FUZZ_CHECK(rw__json_member(v, buf, (size_t)k, &found));
                    FUZZ_CHECK(found.p == e.p && found.len == e.len);
                }
            }
            walk(&e, depth + 1);
        }
        break;
    case RW_JSON_STRING: {
        ssize_t k = rw__json_string(v, buf, sizeof buf);
        FUZZ_CHECK(k >= -1 && k < (ssize_t)sizeof buf);
        if (k >= 0)
            FUZZ_CHECK(rw__json_string_eq(v, buf, (size_t)k));
        break;
    }
    case RW_JSON_NUMBER:
        (void)rw__json_int(v, &i64);
        break;
    default:
        FUZZ_CHECK(v->type >= RW_JSON_TRUE && v->type <= RW_JSON_NULL);
    }
}

static void check_payload(const char *p, size_t n)
{
    rw_json_val root;
    for (int i = 0; i < 2; i++) {
        int rc = rw_jwt_check_claims(&policies[i], p, n, NOW, NULL);
        FUZZ_CHECK(rc >= RW_JWT_OK && rc <= RW_JWT_ECLAIM);
    }
    check_claim_text(p, n);
    if (rw__json_parse(p, n, RW_JWT_MAX_DEPTH, &root)) {
        FUZZ_CHECK(root.len > 0 && root.p >= p && root.p + root.len <= p + n);
        walk(&root, 0);
    }
}

static void check_jwks(const char *p, size_t n)
{
    char err[256];
    rw_jwt_keyset *ks = rw_jwt_keyset_new();
    FUZZ_CHECK(ks);
    int added = rw_jwt_keyset_add_jwks(ks, p, n, err, sizeof err);
    FUZZ_CHECK(added >= -1);
    FUZZ_CHECK(added < 0 || rw_jwt_keyset_count(ks) == (size_t)added);
    (void)rw_jwt_keyset_digest(ks);
    rw_jwt_keyset_free(ks);
}

static void check_base64url(const char *p, size_t n)
{
    size_t cap = n * 3 / 4 + 1;
    uint8_t *out = malloc(cap);
    FUZZ_CHECK(out);
    ssize_t k = rw_base64url_decode(p, n, out, cap);
    FUZZ_CHECK(k >= -1 && (k < 0 || (size_t)k <= n * 3 / 4));
    if (k > 0) {
        uint8_t *exact = malloc((size_t)k);
        FUZZ_CHECK(rw_base64url_decode(p, n, exact, (size_t)k) == k);
        FUZZ_CHECK(memcmp(exact, out, (size_t)k) == 0);
        FUZZ_CHECK(rw_base64url_decode(p, n, exact, (size_t)k - 1) == -1);
        free(exact);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *p = fuzz_copy(data + 1, size - 1);
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0:
        check_token(p, n, NULL, 0);
        break;
    case 1:
        sign_and_check((const uint8_t *)p, n);
        break;
    case 2:
        check_payload(p, n);
        break;
    case 3:
        check_jwks(p, n);
        break;
    default:
        check_base64url(p, n);
        break;
    }
    free(p);
    return 0;
}
