/* test_jwt.c - JWT verification (src/filters/jwt.c, jwt_keys.c) and the JSON
 * scanner under it (src/filters/json.c).
 *
 * Known answers: RFC 7515 A.1 (HS256), A.2 (RS256), A.3 (ES256) verify;
 * A.4 (ES512) is refused as an unsupported alg. RFC 8037 A.4 (Ed25519): its
 * payload "Example of Ed25519 signing" is not a JSON object, so the token is
 * EMALFORMED - which rw_jwt_verify only reports after the signature checked
 * out; the same token with one signature bit flipped is ESIGNATURE, which
 * shows that the RFC signature itself verified.
 * Other algorithms: keys generated and tokens signed here with BoringSSL (the
 * integration tests use PyJWT as an independent implementation). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/digest.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "ringway/jwt.h"
#include "../../src/filters/json.h"

#define NOW 1700000000
#define RFC_NOW 1300819000 /* before the RFC 7515 examples' exp 1300819380 */

/* ---- RFC vectors ---- */

#define RFC_PAYLOAD                                                                                          \
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"

static const char a1_token[] =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." RFC_PAYLOAD ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char a1_k[] =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

static const char a2_token[] =
    "eyJhbGciOiJSUzI1NiJ9." RFC_PAYLOAD
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_"
    "O8W2Fp5jujGbds9uJdbF9C"
    "UAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_"
    "eSN9383LcOLn6_d"
    "O--xi12jzDwusC-"
    "eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN"
    "_IoypGlUPQGe77Rw";
static const char a2_jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a2\",\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_"
    "wWJcyQoTbji9k0l8W26mPddx"
    "HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_"
    "7OMg0LOL-"
    "bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_"
    "I5IhlJH7aG"
    "hyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\",\"e\":\"AQAB\"}]}";

static const char a3_token[] =
    "eyJhbGciOiJFUzI1NiJ9." RFC_PAYLOAD
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
static const char a3_jwks[] = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"use\":\"sig\","
                              "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                              "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";

static const char a4_token[] =
    "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA.AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-"
    "KGDKB34X"
    "O0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";

static const char ed_token[] =
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
static const char ed_jwks[] = "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_"
                              "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}";

/* ---- helpers ---- */

static char scratch[4 * RW_JWT_MAX_TOKEN];

static int verify_at(const rw_jwt_keyset *ks, const rw_jwt_policy *pol, const char *tok, int64_t now,
                     rw_jwt_token *out)
{
    rw_jwt_token tmp;
    return rw_jwt_verify(ks, pol, tok, strlen(tok), now, scratch, sizeof scratch, out ? out : &tmp);
}

static int verify(const rw_jwt_keyset *ks, const char *tok)
{
    return verify_at(ks, NULL, tok, NOW, NULL);
}

static size_t b64url(const void *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const uint8_t *p = in;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = abc[v >> 18];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = abc[v >> 6 & 63];
        out[o++] = abc[v & 63];
    }
    if (n - i == 1) {
        out[o++] = abc[p[i] >> 2];
        out[o++] = abc[(p[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
        out[o++] = abc[v >> 10];
        out[o++] = abc[v >> 4 & 63];
        out[o++] = abc[(v & 15) << 2];
    }
    out[o] = '\0';
    return o;
}

/* Changes the base64url character at i to another one (i is not the last
 * character, so the encoding stays canonical). */
static char *tamper(const char *tok, size_t i)
{
    char *t = strdup(tok);
    t[i] = t[i] == 'A' ? 'B' : 'A';
    return t;
}

static rw_jwt_keyset *jwks_set(const char *json, int want)
{
    char err[256];
    rw_jwt_keyset *ks = rw_jwt_keyset_new();
    cr_assert(ks);
    int n = rw_jwt_keyset_add_jwks(ks, json, strlen(json), err, sizeof err);
    cr_assert_eq(n, want, "add_jwks: %d (%s)", n, err);
    return ks;
}

/* A signing key: an EVP_PKEY, or an HMAC secret. */
struct signer {
    int alg;
    EVP_PKEY *pkey;
    const uint8_t *secret;
    size_t secret_len;
};

static const EVP_MD *md_of(int alg)
{
    switch (alg) {
    case RW_JWT_HS384:
    case RW_JWT_RS384:
    case RW_JWT_PS384:
    case RW_JWT_ES384:
        return EVP_sha384();
    case RW_JWT_HS512:
    case RW_JWT_RS512:
    case RW_JWT_PS512:
        return EVP_sha512();
    case RW_JWT_EDDSA:
        return NULL;
    default:
        return EVP_sha256();
    }
}

/* ECDSA DER -> JWS R || S. */
static size_t ec_raw(const uint8_t *der, size_t len, size_t size, uint8_t *out)
{
    ECDSA_SIG *s = ECDSA_SIG_from_bytes(der, len);
    cr_assert(s);
    cr_assert(BN_bn2bin_padded(out, size, s->r) && BN_bn2bin_padded(out + size, size, s->s));
    ECDSA_SIG_free(s);
    return 2 * size;
}

static size_t sign(const struct signer *sg, const char *in, size_t n, uint8_t *sig)
{
    const EVP_MD *md = md_of(sg->alg);
    if (sg->alg >= RW_JWT_HS256 && sg->alg <= RW_JWT_HS512) {
        unsigned len = 0;
        cr_assert(HMAC(md, sg->secret, sg->secret_len, (const uint8_t *)in, n, sig, &len));
        return len;
    }
    EVP_MD_CTX ctx;
    EVP_PKEY_CTX *pctx = NULL;
    uint8_t der[1024];
    size_t len = 1024;
    EVP_MD_CTX_init(&ctx);
    cr_assert(EVP_DigestSignInit(&ctx, &pctx, md, NULL, sg->pkey));
    if (sg->alg >= RW_JWT_PS256 && sg->alg <= RW_JWT_PS512) {
        cr_assert(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING));
        cr_assert(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, -1)); /* -1: the hash's length */
        cr_assert(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md));
    }
    cr_assert(EVP_DigestSign(&ctx, der, &len, (const uint8_t *)in, n));
    EVP_MD_CTX_cleanup(&ctx);
    if (sg->alg == RW_JWT_ES256 || sg->alg == RW_JWT_ES384)
        return ec_raw(der, len, sg->alg == RW_JWT_ES256 ? 32 : 48, sig);
    memcpy(sig, der, len);
    return len;
}

/* A token over header and payload JSON, signed by sg (unsigned: sg NULL). */
static char *make_token(const char *header, const char *payload, const struct signer *sg)
{
    size_t hl = strlen(header), pl = strlen(payload);
    char *t = malloc(2 * (hl + pl) + 2048);
    uint8_t sig[1024];
    cr_assert(t);
    size_t n = b64url(header, hl, t);
    t[n++] = '.';
    n += b64url(payload, pl, t + n);
    size_t siglen = sg ? sign(sg, t, n, sig) : 0;
    t[n++] = '.';
    b64url(sig, siglen, t + n);
    return t;
}

static EVP_PKEY *keygen(int type, int param)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(type, NULL);
    EVP_PKEY *k = NULL;
    cr_assert(c && EVP_PKEY_keygen_init(c));
    if (type == EVP_PKEY_RSA)
        cr_assert(EVP_PKEY_CTX_set_rsa_keygen_bits(c, param));
    if (type == EVP_PKEY_EC)
        cr_assert(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(c, param));
    cr_assert(EVP_PKEY_keygen(c, &k));
    EVP_PKEY_CTX_free(c);
    return k;
}

static char *bio_text(BIO *b)
{
    const uint8_t *p;
    size_t n;
    cr_assert(BIO_mem_contents(b, &p, &n));
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static char *pubkey_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    cr_assert(PEM_write_bio_PUBKEY(b, k));
    return bio_text(b);
}

static char *rsa_pubkey_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    cr_assert(PEM_write_bio_RSAPublicKey(b, EVP_PKEY_get0_RSA(k)));
    return bio_text(b);
}

static char *cert_pem(EVP_PKEY *k)
{
    X509 *x = X509_new();
    BIO *b = BIO_new(BIO_s_mem());
    cr_assert(x && X509_set_version(x, 2) && ASN1_INTEGER_set(X509_get_serialNumber(x), 1));
    cr_assert(X509_gmtime_adj(X509_getm_notBefore(x), 0) && X509_gmtime_adj(X509_getm_notAfter(x), 3600));
    cr_assert(X509_set_pubkey(x, k) && X509_sign(x, k, EVP_sha256()));
    cr_assert(PEM_write_bio_X509(b, x));
    X509_free(x);
    return bio_text(b);
}

static void add_pem_ok(rw_jwt_keyset *ks, int alg, const char *kid, const char *pem)
{
    char err[256] = "";
    int rc = rw_jwt_keyset_add_pem(ks, alg, kid, pem, strlen(pem), err, sizeof err);
    cr_assert_eq(rc, 0, "add_pem %s: %s", rw_jwt_alg_name(alg), err);
}

static const uint8_t secret64[64] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static rw_jwt_keyset *hs256_set(const char *kid)
{
    rw_jwt_keyset *ks = rw_jwt_keyset_new();
    cr_assert_eq(rw_jwt_keyset_add_secret(ks, RW_JWT_HS256, kid, secret64, 32, NULL, 0), 0);
    return ks;
}

static const struct signer hs256 = {RW_JWT_HS256, NULL, secret64, 32};

/* ---- base64url ---- */

Test(jwt, base64url_vectors)
{
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"", ""},           {"Zg", "f"},          {"Zm8", "fo"},          {"Zm9v", "foo"},
        {"Zm9vYg", "foob"}, {"Zm9vYmE", "fooba"}, {"Zm9vYmFy", "foobar"}, {"Zg==", "f"},
        {"Zm8=", "fo"},     {"-_8", "\xfb\xff"},
    };
    static const char *const bad[] = {
        "Z", "Zm9vY", "Zg=", "Zg===", "Z===", "Zh", "Zm9=", "Zm9v!", "+/8", "Zm 9v", "Zm9v=", "=",
    };
    char buf[16];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ssize_t n = rw_base64url_decode(ok[i].in, strlen(ok[i].in), buf, sizeof buf);
        cr_assert_eq(n, (ssize_t)strlen(ok[i].out), "%s", ok[i].in);
        cr_assert(memcmp(buf, ok[i].out, (size_t)n) == 0, "%s", ok[i].in);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(rw_base64url_decode(bad[i], strlen(bad[i]), buf, sizeof buf), -1, "%s", bad[i]);
    cr_assert_eq(rw_base64url_decode("Zm9vYmFy", 8, buf, 5), -1); /* too small */
    cr_assert_eq(rw_base64url_decode("Zm9vYmFy", 8, buf, 6), 6);
}

Test(jwt, alg_names)
{
    for (int a = RW_JWT_HS256; a < RW_JWT_ALG_COUNT; a++) {
        const char *n = rw_jwt_alg_name(a);
        cr_assert_eq(rw_jwt_alg_parse(n, strlen(n)), a, "%s", n);
    }
    static const char *const refused[] = {"none", "None", "NONE", "hs256", "ES512", "Ed25519", "", "HS2560"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        cr_assert_eq(rw_jwt_alg_parse(refused[i], strlen(refused[i])), RW_JWT_NONE, "%s", refused[i]);
    cr_assert_str_eq(rw_jwt_alg_name(RW_JWT_NONE), "none");
    cr_assert_str_eq(rw_jwt_alg_name(RW_JWT_EDDSA), "EdDSA");
    cr_assert_str_eq(rw_jwt_strerror(RW_JWT_EEXPIRED), "token expired");
    for (int e = 0; e <= RW_JWT_ECLAIM + 1; e++)
        cr_assert(rw_jwt_strerror(e) && *rw_jwt_strerror(e));
}

/* ---- RFC known answers ---- */

Test(jwt, rfc7515_a1_hs256)
{
    uint8_t k[64];
    ssize_t n = rw_base64url_decode(a1_k, strlen(a1_k), k, sizeof k);
    cr_assert_eq(n, 64);
    rw_jwt_keyset *ks = rw_jwt_keyset_new();
    cr_assert_eq(rw_jwt_keyset_add_secret(ks, RW_JWT_HS256, NULL, k, (size_t)n, NULL, 0), 0);
    rw_jwt_token out;
    cr_assert_eq(verify_at(ks, NULL, a1_token, RFC_NOW, &out), RW_JWT_OK);
    cr_assert_eq(out.alg, RW_JWT_HS256);
    cr_assert_eq(out.exp, 1300819380);
    cr_assert_eq(out.iat, INT64_MIN);
    cr_assert(out.payload >= scratch && out.payload < scratch + sizeof scratch);
    cr_assert(out.payload_len > 0 && memcmp(out.payload, "{\"iss\":\"joe\"", 12) == 0);
    /* exp passes: now >= exp (+ leeway) */
    cr_assert_eq(verify_at(ks, NULL, a1_token, 1300819380, NULL), RW_JWT_EEXPIRED);
    cr_assert_eq(verify_at(ks, NULL, a1_token, 1300819379, NULL), RW_JWT_OK);
    rw_jwt_policy lee = {.leeway_s = 10};
    cr_assert_eq(verify_at(ks, &lee, a1_token, 1300819389, NULL), RW_JWT_OK);
    cr_assert_eq(verify_at(ks, &lee, a1_token, 1300819390, NULL), RW_JWT_EEXPIRED);
    /* the same secret through a JWKS oct key */
    rw_jwt_keyset *ks2 =
        jwks_set("{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS256\",\"k\":\""
                 "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
                 "\"}]}",
                 1);
    cr_assert_eq(verify_at(ks2, NULL, a1_token, RFC_NOW, NULL), RW_JWT_OK);
    cr_assert_eq(rw_jwt_keyset_digest(ks), rw_jwt_keyset_digest(ks2));
    rw_jwt_keyset_free(ks);
    rw_jwt_keyset_free(ks2);
}

Test(jwt, rfc7515_a2_rs256)
{
    rw_jwt_keyset *ks = jwks_set(a2_jwks, 1);
    /* the token has no kid: any RS256 key is tried */
    cr_assert_eq(verify_at(ks, NULL, a2_token, RFC_NOW, NULL), RW_JWT_OK);
    cr_assert_eq(verify_at(ks, NULL, a2_token, NOW, NULL), RW_JWT_EEXPIRED);
    char *bad = tamper(a2_token, strlen(a2_token) - 2);
    cr_assert_eq(verify_at(ks, NULL, bad, RFC_NOW, NULL), RW_JWT_ESIGNATURE);
    free(bad);
    rw_jwt_keyset_free(ks);
}

Test(jwt, rfc7515_a3_es256)
{
    rw_jwt_keyset *ks = jwks_set(a3_jwks, 1);
    cr_assert_eq(verify_at(ks, NULL, a3_token, RFC_NOW, NULL), RW_JWT_OK);
    char *bad = tamper(a3_token, strlen(a3_token) - 5);
    cr_assert_eq(verify_at(ks, NULL, bad, RFC_NOW, NULL), RW_JWT_ESIGNATURE);
    free(bad);
    /* ES512 (A.4) is not supported: an alg error, never a verification */
    cr_assert_eq(verify_at(ks, NULL, a4_token, RFC_NOW, NULL), RW_JWT_EALG);
    rw_jwt_keyset_free(ks);
}

Test(jwt, rfc8037_ed25519)
{
    rw_jwt_keyset *ks = jwks_set(ed_jwks, 1);
    /* the signature verifies; then the payload (not JSON) is refused */
    cr_assert_eq(verify(ks, ed_token), RW_JWT_EMALFORMED);
    char *bad = tamper(ed_token, strlen(ed_token) - 3);
    cr_assert_eq(verify(ks, bad), RW_JWT_ESIGNATURE);
    free(bad);
    rw_jwt_keyset_free(ks);
}

/* ---- every algorithm, generated keys ---- */

static void check_alg(rw_jwt_keyset *ks, const struct signer *sg)
{
    char header[64], *tok, *bad;
    const char *name = rw_jwt_alg_name(sg->alg);
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"kid\":\"k-%s\"}", name, name);
    tok = make_token(header, "{\"sub\":\"alice\",\"exp\":1800000000}", sg);
    rw_jwt_token out;
    cr_assert_eq(verify_at(ks, NULL, tok, NOW, &out), RW_JWT_OK, "%s", name);
    cr_assert_eq(out.alg, sg->alg);
    cr_assert_eq(out.exp, 1800000000);
    /* a flipped signature bit; a changed payload */
    bad = tamper(tok, strlen(tok) - 4);
    cr_assert_eq(verify(ks, bad), RW_JWT_ESIGNATURE, "%s", name);
    free(bad);
    bad = make_token(header, "{\"sub\":\"alice\",\"exp\":1800000000}", sg);
    char *dot = strchr(bad, '.');
    dot[1] = 'd'; /* "eyJ..." -> "dyJ...": another payload */
    cr_assert_eq(verify(ks, bad), RW_JWT_ESIGNATURE, "%s", name);
    free(bad);
    /* without kid, every key of the alg is tried */
    snprintf(header, sizeof header, "{\"alg\":\"%s\"}", name);
    bad = make_token(header, "{}", sg);
    cr_assert_eq(verify(ks, bad), RW_JWT_OK, "%s", name);
    free(bad);
    /* signature cut short by whole 4-character groups */
    bad = strdup(tok);
    char *sig = strrchr(bad, '.') + 1;
    sig[(strlen(sig) / 4 - 1) * 4] = '\0';
    cr_assert_eq(verify(ks, bad), RW_JWT_ESIGNATURE, "%s", name);
    free(bad);
    free(tok);
}

Test(jwt, all_algorithms)
{
    EVP_PKEY *rsa = keygen(EVP_PKEY_RSA, 2048), *p256 = keygen(EVP_PKEY_EC, NID_X9_62_prime256v1);
    EVP_PKEY *p384 = keygen(EVP_PKEY_EC, NID_secp384r1), *ed = keygen(EVP_PKEY_ED25519, 0);
    char *rsa_pem = pubkey_pem(rsa), *p256_pem = pubkey_pem(p256), *p384_pem = pubkey_pem(p384);
    char *ed_pem = pubkey_pem(ed);
    rw_jwt_keyset *ks = rw_jwt_keyset_new();
    static const int rsa_algs[] = {RW_JWT_RS256, RW_JWT_RS384, RW_JWT_RS512,
                                   RW_JWT_PS256, RW_JWT_PS384, RW_JWT_PS512};
    char kid[32];
    for (size_t i = 0; i < 6; i++) {
        snprintf(kid, sizeof kid, "k-%s", rw_jwt_alg_name(rsa_algs[i]));
        add_pem_ok(ks, rsa_algs[i], kid, rsa_pem);
    }
    add_pem_ok(ks, RW_JWT_ES256, "k-ES256", p256_pem);
    add_pem_ok(ks, RW_JWT_ES384, "k-ES384", p384_pem);
    add_pem_ok(ks, RW_JWT_EDDSA, "k-EdDSA", ed_pem);
    cr_assert_eq(rw_jwt_keyset_add_secret(ks, RW_JWT_HS256, "k-HS256", secret64, 32, NULL, 0), 0);
    cr_assert_eq(rw_jwt_keyset_add_secret(ks, RW_JWT_HS384, "k-HS384", secret64, 48, NULL, 0), 0);
    cr_assert_eq(rw_jwt_keyset_add_secret(ks, RW_JWT_HS512, "k-HS512", secret64, 64, NULL, 0), 0);
    cr_assert_eq(rw_jwt_keyset_count(ks), 12);

    for (size_t i = 0; i < 6; i++) {
        struct signer sg = {rsa_algs[i], rsa, NULL, 0};
        check_alg(ks, &sg);
    }
    struct signer es256 = {RW_JWT_ES256, p256, NULL, 0}, es384 = {RW_JWT_ES384, p384, NULL, 0};
    struct signer eddsa = {RW_JWT_EDDSA, ed, NULL, 0};
    struct signer hs384 = {RW_JWT_HS384, NULL, secret64, 48}, hs512 = {RW_JWT_HS512, NULL, secret64, 64};
    check_alg(ks, &es256);
    check_alg(ks, &es384);
    check_alg(ks, &eddsa);
    check_alg(ks, &hs256);
    check_alg(ks, &hs384);
    check_alg(ks, &hs512);

    /* a PSS signature presented as RS256 (and the reverse) does not verify */
    struct signer ps = {RW_JWT_PS256, rsa, NULL, 0}, rs = {RW_JWT_RS256, rsa, NULL, 0};
    uint8_t sig[512];
    char *t = make_token("{\"alg\":\"RS256\"}", "{}", NULL);
    size_t n = strlen(t) - 1;
    b64url(sig, sign(&ps, t, n, sig), t + n + 1);
    cr_assert_eq(verify(ks, t), RW_JWT_ESIGNATURE);
    free(t);
    t = make_token("{\"alg\":\"PS256\"}", "{}", NULL);
    n = strlen(t) - 1;
    b64url(sig, sign(&rs, t, n, sig), t + n + 1);
    cr_assert_eq(verify(ks, t), RW_JWT_ESIGNATURE);
    free(t);

    /* ES256 signatures must be exactly 64 bytes: DER-encoded ones are refused */
    t = make_token("{\"alg\":\"ES256\"}", "{}", NULL);
    n = strlen(t) - 1;
    {
        EVP_MD_CTX ctx;
        uint8_t der[128];
        size_t dl = sizeof der;
        EVP_MD_CTX_init(&ctx);
        cr_assert(EVP_DigestSignInit(&ctx, NULL, EVP_sha256(), NULL, p256));
        cr_assert(EVP_DigestSign(&ctx, der, &dl, (const uint8_t *)t, n));
        EVP_MD_CTX_cleanup(&ctx);
        b64url(der, dl, t + n + 1);
    }
    cr_assert_eq(verify(ks, t), RW_JWT_ESIGNATURE);
    free(t);

    rw_jwt_keyset_free(ks);
    free(rsa_pem);
    free(p256_pem);
    free(p384_pem);
    free(ed_pem);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(ed);
}

/* ---- key loading ---- */

Test(jwt, pem_formats)
{
    EVP_PKEY *rsa = keygen(EVP_PKEY_RSA, 2048), *p256 = keygen(EVP_PKEY_EC, NID_X9_62_prime256v1);
    char *spki = pubkey_pem(rsa), *pkcs1 = rsa_pubkey_pem(rsa), *cert = cert_pem(rsa),
         *ec_cert = cert_pem(p256);
    rw_jwt_keyset *a = rw_jwt_keyset_new(), *b = rw_jwt_keyset_new(), *c = rw_jwt_keyset_new();
    add_pem_ok(a, RW_JWT_RS256, NULL, spki);
    add_pem_ok(b, RW_JWT_RS256, NULL, pkcs1);
    add_pem_ok(c, RW_JWT_RS256, NULL, cert);
    /* same public key, same digest */
    cr_assert_eq(rw_jwt_keyset_digest(a), rw_jwt_keyset_digest(b));
    cr_assert_eq(rw_jwt_keyset_digest(a), rw_jwt_keyset_digest(c));
    struct signer sg = {RW_JWT_RS256, rsa, NULL, 0};
    char *t = make_token("{\"alg\":\"RS256\"}", "{\"sub\":\"x\"}", &sg);
    cr_assert_eq(verify(a, t), RW_JWT_OK);
    cr_assert_eq(verify(b, t), RW_JWT_OK);
    cr_assert_eq(verify(c, t), RW_JWT_OK);
    free(t);
    add_pem_ok(c, RW_JWT_ES256, "ec", ec_cert);

    /* text around the PEM block is fine, and so are other blocks before it */
    char *wrapped = malloc(strlen(spki) + 256);
    sprintf(
        wrapped,
        "# issuer key\n-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n%s\n",
        spki);
    add_pem_ok(a, RW_JWT_PS256, NULL, wrapped);
    free(wrapped);

    char err[256];
    BIO *bio = BIO_new(BIO_s_mem());
    cr_assert(PEM_write_bio_PrivateKey(bio, rsa, NULL, NULL, 0, NULL, NULL));
    char *priv = bio_text(bio);
    cr_assert_eq(rw_jwt_keyset_add_pem(a, RW_JWT_RS256, NULL, priv, strlen(priv), err, sizeof err), -1);
    cr_assert(strstr(err, "not a public key"), "%s", err);
    free(priv);
    cr_assert_eq(rw_jwt_keyset_add_pem(a, RW_JWT_RS256, NULL, "garbage", 7, err, sizeof err), -1);
    cr_assert_eq(rw_jwt_keyset_add_pem(a, RW_JWT_RS256, NULL, "", 0, err, sizeof err), -1);
    /* corrupted base64 inside the block */
    char *broken = strdup(spki);
    broken[40] = '*';
    cr_assert_eq(rw_jwt_keyset_add_pem(a, RW_JWT_RS256, NULL, broken, strlen(broken), err, sizeof err), -1);
    free(broken);
    /* key type and alg must agree */
    cr_assert_eq(rw_jwt_keyset_add_pem(a, RW_JWT_ES256, NULL, spki, strlen(spki), err, sizeof err), -1);
    cr_assert_eq(rw_jwt_keyset_add_pem(a, RW_JWT_EDDSA, NULL, spki, strlen(spki), err, sizeof err), -1);
    cr_assert_eq(rw_jwt_keyset_add_pem(a, RW_JWT_HS256, NULL, spki, strlen(spki), err, sizeof err), -1);
    cr_assert_eq(rw_jwt_keyset_add_pem(a, RW_JWT_NONE, NULL, spki, strlen(spki), err, sizeof err), -1);
    cr_assert_eq(rw_jwt_keyset_add_pem(a, RW_JWT_ES384, NULL, ec_cert, strlen(ec_cert), err, sizeof err), -1);
    cr_assert(strstr(err, "P-384"), "%s", err);
    cr_assert_eq(rw_jwt_keyset_add_pem(a, RW_JWT_RS256, NULL, ec_cert, strlen(ec_cert), err, sizeof err), -1);
    /* kid too long */
    char kid[RW_JWT_MAX_KID + 2];
    memset(kid, 'k', sizeof kid - 1);
    kid[sizeof kid - 1] = '\0';
    cr_assert_eq(rw_jwt_keyset_add_pem(a, RW_JWT_RS256, kid, spki, strlen(spki), err, sizeof err), -1);
    kid[RW_JWT_MAX_KID] = '\0';
    add_pem_ok(a, RW_JWT_RS256, kid, spki);
    cr_assert_eq(rw_jwt_keyset_count(a), 3);

    rw_jwt_keyset_free(a);
    rw_jwt_keyset_free(b);
    rw_jwt_keyset_free(c);
    free(spki);
    free(pkcs1);
    free(cert);
    free(ec_cert);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(p256);
}

Test(jwt, weak_keys_refused)
{
    char err[256] = "";
    EVP_PKEY *small = keygen(EVP_PKEY_RSA, 1024);
    char *pem = pubkey_pem(small);
    rw_jwt_keyset *ks = rw_jwt_keyset_new();
    cr_assert_eq(rw_jwt_keyset_add_pem(ks, RW_JWT_RS256, NULL, pem, strlen(pem), err, sizeof err), -1);
    cr_assert(strstr(err, "1024") && strstr(err, "2048"), "%s", err);
    /* HMAC secrets at least as long as the hash */
    static const struct {
        int alg;
        size_t min;
    } hs[] = {{RW_JWT_HS256, 32}, {RW_JWT_HS384, 48}, {RW_JWT_HS512, 64}};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(rw_jwt_keyset_add_secret(ks, hs[i].alg, NULL, secret64, hs[i].min - 1, err, sizeof err),
                     -1);
        cr_assert(strstr(err, "RFC 7518"), "%s", err);
        cr_assert_eq(rw_jwt_keyset_add_secret(ks, hs[i].alg, NULL, secret64, hs[i].min, err, sizeof err), 0);
    }
    cr_assert_eq(rw_jwt_keyset_add_secret(ks, RW_JWT_RS256, NULL, secret64, 64, err, sizeof err), -1);
    cr_assert_eq(rw_jwt_keyset_add_secret(ks, RW_JWT_NONE, NULL, secret64, 64, err, sizeof err), -1);
    cr_assert_eq(rw_jwt_keyset_count(ks), 3);
    /* a 1024-bit key in a JWKS is skipped, not fatal */
    RSA *r = EVP_PKEY_get0_RSA(small);
    uint8_t nb[512], eb[8];
    char n64[700], e64[16], doc[1024];
    size_t nl = BN_bn2bin(RSA_get0_n(r), nb), el = BN_bn2bin(RSA_get0_e(r), eb);
    b64url(nb, nl, n64);
    b64url(eb, el, e64);
    snprintf(doc, sizeof doc, "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"}]}", n64, e64);
    cr_assert_eq(rw_jwt_keyset_add_jwks(ks, doc, strlen(doc), err, sizeof err), 0);
    cr_assert(strstr(err, "2048"), "%s", err);
    free(pem);
    EVP_PKEY_free(small);
    rw_jwt_keyset_free(ks);
}

Test(jwt, jwks_documents)
{
    char err[256];
    rw_jwt_keyset *ks = rw_jwt_keyset_new();
    static const char *const not_jwks[] = {
        "",
        "[]",
        "{}",
        "{\"keys\":{}}",
        "{\"keys\":\"x\"}",
        "{\"keys\":[]} x",
        "{\"keys\":[],\"keys\":[]}",
        "nul",
    };
    for (size_t i = 0; i < sizeof not_jwks / sizeof not_jwks[0]; i++)
        cr_assert_eq(rw_jwt_keyset_add_jwks(ks, not_jwks[i], strlen(not_jwks[i]), err, sizeof err), -1, "%s",
                     not_jwks[i]);
    cr_assert_eq(rw_jwt_keyset_add_jwks(ks, "{\"keys\":[]}", 11, err, sizeof err), 0);

    /* one usable key among many that are skipped */
#define K32 "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY" /* 32 bytes */
#define X256                                                                                                 \
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\",\"y\":\"x_FEzRu9m36HLN_"                          \
    "tue659LNpXW6pCyStikYjKIWI5a0\""
    const char *doc =
        "{\"keys\":["
        "{\"kty\":\"oct\",\"k\":\"" K32 "\"},"                                   /* oct without alg */
        "{\"kty\":\"oct\",\"alg\":\"HS512\",\"k\":\"" K32 "\"},"                 /* too short for HS512 */
        "{\"kty\":\"oct\",\"alg\":\"HS256\",\"use\":\"enc\",\"k\":\"" K32 "\"}," /* not for sig */
        "{\"kty\":\"oct\",\"alg\":\"none\",\"k\":\"" K32 "\"},"                  /* unsupported alg */
        "{\"kty\":\"oct\",\"alg\":\"RS256\",\"k\":\"" K32 "\"},"                 /* alg of another kty */
        "{\"kty\":\"oct\",\"alg\":\"HS256\",\"k\":\"" K32 "*\"},"                /* bad base64url */
        "{\"kty\":\"EC\",\"crv\":\"P-521\"," X256 "},"                           /* unsupported curve */
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"ES384\"," X256 "},"         /* alg/curve mismatch */
        "{\"kty\":\"EC\",\"crv\":\"P-384\"," X256 "},"                           /* wrong coordinate size */
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
        "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a1\"}," /* not on the curve */
        "{\"kty\":\"RSA\",\"e\":\"AQAB\"},"                       /* no n */
        "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"" K32 "\"}," /* not a signing curve */
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"},"   /* short */
        "{\"kty\":\"DSA\"},"                                      /* unknown kty */
        "{\"kty\":1},"                                            /* kty not a string */
        "[],"                                                     /* not an object */
        "{\"kty\":\"oct\",\"alg\":\"HS256\",\"kid\":\"good\",\"use\":\"sig\",\"k\":\"" K32 "\"}"
        "]}";
    int added = rw_jwt_keyset_add_jwks(ks, doc, strlen(doc), err, sizeof err);
    cr_assert_eq(added, 1, "%d: %s", added, err);
    cr_assert(strstr(err, "key 0 skipped"), "%s", err);
    cr_assert_eq(rw_jwt_keyset_count(ks), 1);
    char *t = make_token("{\"alg\":\"HS256\",\"kid\":\"good\"}", "{}", &hs256);
    cr_assert_eq(verify(ks, t), RW_JWT_OK);
    free(t);
    /* a JWK with duplicate members makes the whole document invalid */
    const char *dup = "{\"keys\":[{\"kty\":\"oct\",\"alg\":\"HS256\",\"alg\":\"HS512\",\"k\":\"" K32 "\"}]}";
    cr_assert_eq(rw_jwt_keyset_add_jwks(ks, dup, strlen(dup), err, sizeof err), -1);
    rw_jwt_keyset_free(ks);
}

/* ---- algorithm and key binding ---- */

Test(jwt, alg_none_refused)
{
    rw_jwt_keyset *ks = hs256_set(NULL);
    static const char *const headers[] = {
        "{\"alg\":\"none\"}",         "{\"alg\":\"None\"}",  "{\"alg\":\"NONE\"}",   "{\"alg\":\"nOnE\"}",
        "{\"alg\":\"HS\\u0000256\"}", "{\"alg\":\"ES512\"}", "{\"alg\":\"HS256 \"}", "{\"alg\":\"\"}",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *t = make_token(headers[i], "{\"sub\":\"admin\"}", NULL);
        cr_assert_eq(verify(ks, t), RW_JWT_EALG, "%s", headers[i]);
        free(t);
        t = make_token(headers[i], "{\"sub\":\"admin\"}", &hs256); /* with a (valid HS256) signature */
        cr_assert_eq(verify(ks, t), RW_JWT_EALG, "%s", headers[i]);
        free(t);
    }
    /* an escaped but valid alg name is fine */
    char *t = make_token("{\"alg\":\"HS\\u0032\\u0035\\u0036\"}", "{}", &hs256);
    cr_assert_eq(verify(ks, t), RW_JWT_OK);
    free(t);
    rw_jwt_keyset_free(ks);
}

Test(jwt, alg_confusion)
{
    EVP_PKEY *rsa = keygen(EVP_PKEY_RSA, 2048);
    char *pem = pubkey_pem(rsa);
    rw_jwt_keyset *ks = rw_jwt_keyset_new();
    add_pem_ok(ks, RW_JWT_RS256, "rsa", pem);
    /* the attacker MACs with the public key's PEM text as an HS256 secret */
    struct signer evil = {RW_JWT_HS256, NULL, (const uint8_t *)pem, strlen(pem)};
    char *t = make_token("{\"alg\":\"HS256\"}", "{\"sub\":\"admin\"}", &evil);
    cr_assert_eq(verify(ks, t), RW_JWT_ENOKEY);
    free(t);
    t = make_token("{\"alg\":\"HS256\",\"kid\":\"rsa\"}", "{\"sub\":\"admin\"}", &evil);
    cr_assert_eq(verify(ks, t), RW_JWT_EALG);
    free(t);
    /* an RS256 key does not verify PS256 or RS512 tokens either */
    struct signer ps = {RW_JWT_PS256, rsa, NULL, 0};
    t = make_token("{\"alg\":\"PS256\",\"kid\":\"rsa\"}", "{}", &ps);
    cr_assert_eq(verify(ks, t), RW_JWT_EALG);
    free(t);
    t = make_token("{\"alg\":\"PS256\"}", "{}", &ps);
    cr_assert_eq(verify(ks, t), RW_JWT_ENOKEY);
    free(t);
    free(pem);
    EVP_PKEY_free(rsa);
    rw_jwt_keyset_free(ks);
}

Test(jwt, kid_selection)
{
    static const uint8_t other[32] = "another secret, 32 bytes long!!!";
    struct signer s1 = hs256, s2 = {RW_JWT_HS256, NULL, other, 32};
    rw_jwt_keyset *ks = rw_jwt_keyset_new();
    cr_assert_eq(rw_jwt_keyset_add_secret(ks, RW_JWT_HS256, "one", secret64, 32, NULL, 0), 0);
    cr_assert_eq(rw_jwt_keyset_add_secret(ks, RW_JWT_HS256, "two", other, 32, NULL, 0), 0);
    cr_assert_eq(rw_jwt_keyset_add_secret(ks, RW_JWT_HS384, "three", secret64, 48, NULL, 0), 0);
    char *t;
    t = make_token("{\"alg\":\"HS256\",\"kid\":\"two\"}", "{}", &s2);
    cr_assert_eq(verify(ks, t), RW_JWT_OK);
    free(t);
    t = make_token("{\"alg\":\"HS256\",\"kid\":\"one\"}", "{}", &s2); /* kid pins the key */
    cr_assert_eq(verify(ks, t), RW_JWT_ESIGNATURE);
    free(t);
    t = make_token("{\"alg\":\"HS256\",\"kid\":\"t\\u0077o\"}", "{}", &s2); /* kid unescaped */
    cr_assert_eq(verify(ks, t), RW_JWT_OK);
    free(t);
    t = make_token("{\"alg\":\"HS256\"}", "{}", &s2); /* no kid: each HS256 key */
    cr_assert_eq(verify(ks, t), RW_JWT_OK);
    free(t);
    t = make_token("{\"alg\":\"HS256\",\"kid\":\"\"}", "{}", &s1); /* empty kid = none */
    cr_assert_eq(verify(ks, t), RW_JWT_OK);
    free(t);
    t = make_token("{\"alg\":\"HS256\",\"kid\":\"four\"}", "{}", &s1);
    cr_assert_eq(verify(ks, t), RW_JWT_ENOKEY);
    free(t);
    t = make_token("{\"alg\":\"HS256\",\"kid\":\"three\"}", "{}", &s1); /* kid of an HS384 key */
    cr_assert_eq(verify(ks, t), RW_JWT_EALG);
    free(t);
    t = make_token("{\"alg\":\"HS512\"}", "{}", &s1);
    cr_assert_eq(verify(ks, t), RW_JWT_ENOKEY);
    free(t);
    char hdr[600];
    memset(hdr, 0, sizeof hdr);
    strcpy(hdr, "{\"alg\":\"HS256\",\"kid\":\"");
    memset(hdr + strlen(hdr), 'x', 300);
    strcat(hdr, "\"}");
    t = make_token(hdr, "{}", &s1); /* longer than any kid */
    cr_assert_eq(verify(ks, t), RW_JWT_ENOKEY);
    free(t);
    t = make_token("{\"alg\":\"HS256\",\"kid\":7}", "{}", &s1);
    cr_assert_eq(verify(ks, t), RW_JWT_EMALFORMED);
    free(t);
    /* a token whose kid no key carries falls back to the keys without a kid
     * (a static secret configured without kid): the signature decides */
    rw_jwt_keyset *plain = hs256_set(NULL);
    t = make_token("{\"alg\":\"HS256\",\"kid\":\"one\"}", "{}", &s1);
    cr_assert_eq(verify(plain, t), RW_JWT_OK);
    free(t);
    uint8_t zz[32];
    memset(zz, 'z', sizeof zz);
    struct signer wrong = {RW_JWT_HS256, NULL, zz, sizeof zz};
    t = make_token("{\"alg\":\"HS256\",\"kid\":\"one\"}", "{}", &wrong);
    cr_assert_eq(verify(plain, t), RW_JWT_ESIGNATURE);
    free(t);
    rw_jwt_keyset_free(plain);
    rw_jwt_keyset_free(ks);
}

Test(jwt, at_most_eight_keys_tried)
{
    rw_jwt_keyset *ks = rw_jwt_keyset_new();
    uint8_t s[32];
    for (int i = 0; i < 9; i++) {
        memset(s, 'a' + i, sizeof s);
        cr_assert_eq(rw_jwt_keyset_add_secret(ks, RW_JWT_HS256, NULL, s, sizeof s, NULL, 0), 0);
    }
    struct signer eighth = {RW_JWT_HS256, NULL, s, 32}, ninth = {RW_JWT_HS256, NULL, s, 32};
    char *t = make_token("{\"alg\":\"HS256\"}", "{}", &ninth);
    cr_assert_eq(verify(ks, t), RW_JWT_ESIGNATURE);
    free(t);
    memset(s, 'a' + 7, sizeof s);
    t = make_token("{\"alg\":\"HS256\"}", "{}", &eighth);
    cr_assert_eq(verify(ks, t), RW_JWT_OK);
    free(t);
    rw_jwt_keyset_free(ks);
}

Test(jwt, rotation_and_sharing)
{
    static const uint8_t other[32] = "another secret, 32 bytes long!!!";
    rw_jwt_keyset *a = hs256_set("k1"), *b = hs256_set("k1"), *c = hs256_set("k2"), *e = rw_jwt_keyset_new();
    cr_assert_eq(rw_jwt_keyset_digest(a), rw_jwt_keyset_digest(b));
    cr_assert_neq(rw_jwt_keyset_digest(a), rw_jwt_keyset_digest(c)); /* kid differs */
    cr_assert_neq(rw_jwt_keyset_digest(a), rw_jwt_keyset_digest(e));
    cr_assert_eq(rw_jwt_keyset_digest(e), rw_jwt_keyset_digest(NULL));
    cr_assert_eq(rw_jwt_keyset_add_secret(b, RW_JWT_HS256, "k2", other, 32, NULL, 0), 0);
    cr_assert_neq(rw_jwt_keyset_digest(a), rw_jwt_keyset_digest(b)); /* a key added */
    rw_jwt_keyset *d = rw_jwt_keyset_new();
    cr_assert_eq(rw_jwt_keyset_add_secret(d, RW_JWT_HS256, "k1", other, 32, NULL, 0), 0);
    cr_assert_neq(rw_jwt_keyset_digest(a), rw_jwt_keyset_digest(d)); /* same kid, new secret */
    /* shared keys outlive the set they came from */
    cr_assert_eq(rw_jwt_keyset_add_all(e, a), 0);
    cr_assert_eq(rw_jwt_keyset_add_all(e, NULL), 0);
    cr_assert_eq(rw_jwt_keyset_digest(e), rw_jwt_keyset_digest(a));
    rw_jwt_keyset_free(a);
    char *t = make_token("{\"alg\":\"HS256\",\"kid\":\"k1\"}", "{}", &hs256);
    cr_assert_eq(verify(e, t), RW_JWT_OK);
    cr_assert_eq(verify(NULL, t), RW_JWT_ENOKEY);
    free(t);
    cr_assert_eq(rw_jwt_keyset_count(e), 1);
    cr_assert_eq(rw_jwt_keyset_count(NULL), 0);
    rw_jwt_keyset_free(b);
    rw_jwt_keyset_free(c);
    rw_jwt_keyset_free(d);
    rw_jwt_keyset_free(e);
    rw_jwt_keyset_free(NULL);
}

/* ---- malformed tokens ---- */

Test(jwt, token_structure)
{
    rw_jwt_keyset *ks = hs256_set(NULL);
    char *good = make_token("{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", &hs256);
    cr_assert_eq(verify(ks, good), RW_JWT_OK);
    char *h = strdup(good), *p = strchr(h, '.');
    *p = '\0';
    char *pl = p + 1, *s = strchr(pl, '.');
    *s++ = '\0';
    char buf[1024];
    static const char *const fmts[] = {
        "%s.%s",     "%s.%s.%s.", "%s.%s.%s.%s", ".%s.%s",    "%s..%s",    "%s=.%s.%s",  "%s.%s=.%s",
        "%s.%s.%s=", "%s.%s*.%s", "%s.%s.%s*",   " %s.%s.%s", "%s.%s.%s ", "%s.%s.%s\n",
    };
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        snprintf(buf, sizeof buf, fmts[i], h, pl, s, s);
        cr_assert_eq(verify(ks, buf), RW_JWT_EMALFORMED, "%s", fmts[i]);
    }
    snprintf(buf, sizeof buf, "%s.%s.", h, pl); /* empty signature */
    cr_assert_eq(verify(ks, buf), RW_JWT_ESIGNATURE);
    snprintf(buf, sizeof buf, "%s.%s.%sAA", h, pl, s); /* signature length % 4 == 1 */
    cr_assert_eq(verify(ks, buf), RW_JWT_EMALFORMED);
    cr_assert_eq(verify(ks, ""), RW_JWT_EMALFORMED);
    cr_assert_eq(verify(ks, ".."), RW_JWT_EMALFORMED);
    cr_assert_eq(verify(ks, "a.b.c"), RW_JWT_EMALFORMED);
    cr_assert_eq(rw_jwt_verify(ks, NULL, NULL, 0, NOW, scratch, sizeof scratch, NULL), RW_JWT_EMALFORMED);
    /* a NUL byte inside the token */
    size_t n = strlen(good);
    memcpy(buf, good, n);
    buf[5] = '\0';
    cr_assert_eq(rw_jwt_verify(ks, NULL, buf, n, NOW, scratch, sizeof scratch, NULL), RW_JWT_EMALFORMED);
    /* scratch too small: at least header + payload + signature decoded */
    cr_assert_eq(rw_jwt_verify(ks, NULL, good, n, NOW, scratch, 10, NULL), RW_JWT_ETOOLARGE);
    cr_assert_eq(rw_jwt_verify(ks, NULL, good, n, NOW, NULL, 0, NULL), RW_JWT_ETOOLARGE);
    size_t need = 15 + 11 + 32; /* {"alg":"HS256"}, {"sub":"a"}, an HS256 MAC */
    cr_assert_eq(rw_jwt_verify(ks, NULL, good, n, NOW, scratch, need, NULL), RW_JWT_OK);
    cr_assert_eq(rw_jwt_verify(ks, NULL, good, n, NOW, scratch, need - 1, NULL), RW_JWT_ETOOLARGE);
    /* verify with out == NULL is fine */
    cr_assert_eq(rw_jwt_verify(ks, NULL, good, n, NOW, scratch, sizeof scratch, NULL), RW_JWT_OK);
    free(h);
    free(good);
    rw_jwt_keyset_free(ks);
}

Test(jwt, header_fields)
{
    rw_jwt_keyset *ks = hs256_set(NULL);
    static const struct {
        const char *header;
        int want;
    } cases[] = {
        {"{\"alg\":\"HS256\",\"typ\":\"JWT\",\"b64\":true}", RW_JWT_OK},
        {"{\"alg\":\"HS256\",\"jku\":\"https://evil/jwks\",\"jwk\":{\"kty\":\"oct\"}}", RW_JWT_OK},
        {"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", RW_JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"crit\":[]}", RW_JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"b64\":false}", RW_JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"b64\":\"false\"}", RW_JWT_EMALFORMED},
        {"{\"alg\":256}", RW_JWT_EMALFORMED},
        {"{\"alg\":null}", RW_JWT_EMALFORMED},
        {"{\"typ\":\"JWT\"}", RW_JWT_EMALFORMED},
        {"[\"HS256\"]", RW_JWT_EMALFORMED},
        {"\"HS256\"", RW_JWT_EMALFORMED},
        {"{\"alg\":\"HS256\"", RW_JWT_EMALFORMED},
        {"{\"alg\":\"HS256\"}x", RW_JWT_EMALFORMED},
        {"{\"alg\":\"HS256\"} ", RW_JWT_OK},
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", RW_JWT_EMALFORMED},
        {"{\"alg\":\"none\",\"\\u0061lg\":\"HS256\"}", RW_JWT_EMALFORMED},
        {"{\"alg\":\"HS256\",\"x\":\"\\ud800\"}", RW_JWT_EMALFORMED},
        {"{'alg':'HS256'}", RW_JWT_EMALFORMED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = make_token(cases[i].header, "{}", &hs256);
        cr_assert_eq(verify(ks, t), cases[i].want, "%s", cases[i].header);
        free(t);
    }
    rw_jwt_keyset_free(ks);
}

Test(jwt, payload_shapes)
{
    rw_jwt_keyset *ks = hs256_set(NULL);
    static const struct {
        const char *payload;
        int want;
    } cases[] = {
        {"{}", RW_JWT_OK},
        {" {\"a\":[1,2,{\"b\":null}]}\n", RW_JWT_OK},
        {"[]", RW_JWT_EMALFORMED},
        {"\"sub\"", RW_JWT_EMALFORMED},
        {"123", RW_JWT_EMALFORMED},
        {"null", RW_JWT_EMALFORMED},
        {"", RW_JWT_EMALFORMED},
        {"{\"a\":1}{}", RW_JWT_EMALFORMED},
        {"{\"a\":1,}", RW_JWT_EMALFORMED},
        {"{\"exp\":1,\"exp\":9999999999}", RW_JWT_EMALFORMED},
        {"{\"exp\":9999999999,\"\\u0065xp\":1}", RW_JWT_EMALFORMED},
        {"{\"a\":{\"x\":1,\"x\":2}}", RW_JWT_EMALFORMED},
        {"{\"a\":{\"x\":1},\"b\":{\"x\":2}}", RW_JWT_OK}, /* same name in two objects */
        {"{\"a\":\"\x01\"}", RW_JWT_EMALFORMED},
        {"{\"a\":01}", RW_JWT_EMALFORMED},
        {"{\"a\":tru}", RW_JWT_EMALFORMED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = make_token("{\"alg\":\"HS256\"}", cases[i].payload, &hs256);
        cr_assert_eq(verify(ks, t), cases[i].want, "%s", cases[i].payload);
        free(t);
    }
    rw_jwt_keyset_free(ks);
}

static char *nested(size_t depth, const char *open, const char *inner, const char *close)
{
    size_t ol = strlen(open), cl = strlen(close), il = strlen(inner);
    char *s = malloc(depth * (ol + cl) + il + 1), *p = s;
    for (size_t i = 0; i < depth; i++, p += ol)
        memcpy(p, open, ol);
    memcpy(p, inner, il);
    p += il;
    for (size_t i = 0; i < depth; i++, p += cl)
        memcpy(p, close, cl);
    *p = '\0';
    return s;
}

Test(jwt, deep_and_large)
{
    rw_jwt_keyset *ks = hs256_set(NULL);
    /* 10000 levels: too long for a token, refused before decoding */
    char *deep = nested(10000, "[", "", "]"), *t = make_token("{\"alg\":\"HS256\"}", deep, &hs256);
    cr_assert_eq(verify(ks, t), RW_JWT_ETOOLARGE);
    free(t);
    t = make_token(deep, "{}", &hs256);
    cr_assert_eq(verify(ks, t), RW_JWT_ETOOLARGE);
    free(t);
    cr_assert_eq(rw_jwt_check_claims(NULL, deep, strlen(deep), NOW, NULL), RW_JWT_EMALFORMED);
    char *deep_obj = nested(10000, "{\"a\":", "1", "}");
    cr_assert_eq(rw_jwt_check_claims(NULL, deep_obj, strlen(deep_obj), NOW, NULL), RW_JWT_EMALFORMED);
    free(deep_obj);
    free(deep);
    /* within the token limit: 16 levels pass, 17 do not, in payload and header */
    char *p16 = nested(16, "{\"a\":", "1", "}"), *p17 = nested(17, "{\"a\":", "1", "}");
    t = make_token("{\"alg\":\"HS256\"}", p16, &hs256);
    cr_assert_eq(verify(ks, t), RW_JWT_OK);
    free(t);
    t = make_token("{\"alg\":\"HS256\"}", p17, &hs256);
    cr_assert_eq(verify(ks, t), RW_JWT_EMALFORMED);
    free(t);
    char *h17 = nested(16, "[", "", "]"), hdr[256];
    snprintf(hdr, sizeof hdr, "{\"alg\":\"HS256\",\"x\":%s}", h17);
    t = make_token(hdr, "{}", &hs256);
    cr_assert_eq(verify(ks, t), RW_JWT_EMALFORMED);
    free(t);
    char *a2000 = nested(2000, "[", "", "]"), *ph = malloc(4100);
    snprintf(ph, 4100, "{\"a\":%s}", a2000);
    t = make_token("{\"alg\":\"HS256\"}", ph, &hs256);
    cr_assert(strlen(t) <= RW_JWT_MAX_TOKEN);
    cr_assert_eq(verify(ks, t), RW_JWT_EMALFORMED);
    free(t);
    free(ph);
    free(a2000);
    free(h17);
    free(p16);
    free(p17);
    /* 100 KiB token */
    size_t big = 100 * 1024;
    char *huge = malloc(big + 1);
    memset(huge, 'A', big);
    huge[10] = huge[20] = '.';
    huge[big] = '\0';
    cr_assert_eq(verify(ks, huge), RW_JWT_ETOOLARGE);
    cr_assert_eq(rw_jwt_verify(ks, NULL, huge, RW_JWT_MAX_TOKEN + 1, NOW, scratch, sizeof scratch, NULL),
                 RW_JWT_ETOOLARGE);
    free(huge);
    /* exactly at the limit is decoded, one byte over is not */
    char *payload = malloc(RW_JWT_MAX_TOKEN);
    int seen = 0;
    for (size_t fill = 5900; fill < 6200; fill++) {
        memcpy(payload, "{\"p\":\"", 6);
        memset(payload + 6, 'x', fill);
        strcpy(payload + 6 + fill, "\"}");
        t = make_token("{\"alg\":\"HS256\"}", payload, &hs256);
        size_t tl = strlen(t);
        if (tl == RW_JWT_MAX_TOKEN || tl == RW_JWT_MAX_TOKEN + 1) {
            cr_assert_eq(verify(ks, t), tl == RW_JWT_MAX_TOKEN ? RW_JWT_OK : RW_JWT_ETOOLARGE, "%zu", tl);
            seen++;
        }
        free(t);
    }
    cr_assert_eq(seen, 2);
    free(payload);
    rw_jwt_keyset_free(ks);
}

/* ---- claims ---- */

static int claims(const rw_jwt_policy *pol, const char *payload, int64_t now)
{
    rw_jwt_token out;
    return rw_jwt_check_claims(pol, payload, strlen(payload), now, &out);
}

Test(jwt, time_claims)
{
    rw_jwt_policy none = {0}, lee = {.leeway_s = 30};
    cr_assert_eq(claims(&none, "{\"exp\":1700000001}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&none, "{\"exp\":1700000000}", NOW), RW_JWT_EEXPIRED);
    cr_assert_eq(claims(&lee, "{\"exp\":1700000000}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&lee, "{\"exp\":1699999970}", NOW), RW_JWT_EEXPIRED);
    cr_assert_eq(claims(&none, "{\"exp\":1.7e9}", NOW), RW_JWT_EEXPIRED);
    cr_assert_eq(claims(&none, "{\"exp\":1.7000000015E9}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&none, "{\"exp\":1700000000.9}", NOW), RW_JWT_EEXPIRED);
    cr_assert_eq(claims(&none, "{\"exp\":17000000010e-1}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&none, "{\"exp\":9223372036854775807}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&lee, "{\"exp\":9223372036854775807}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&none, "{\"exp\":9223372036854775808}", NOW), RW_JWT_EMALFORMED);
    cr_assert_eq(claims(&none, "{\"exp\":1e19}", NOW), RW_JWT_EMALFORMED);
    cr_assert_eq(claims(&none, "{\"exp\":1e999999999999}", NOW), RW_JWT_EMALFORMED);
    cr_assert_eq(claims(&none, "{\"exp\":0e999999999999}", NOW), RW_JWT_EEXPIRED);
    cr_assert_eq(claims(&none, "{\"exp\":1e-999999999999}", NOW), RW_JWT_EEXPIRED);
    cr_assert_eq(claims(&none, "{\"exp\":-5}", NOW), RW_JWT_EEXPIRED);
    cr_assert_eq(claims(&none, "{\"exp\":\"1800000000\"}", NOW), RW_JWT_EMALFORMED);
    cr_assert_eq(claims(&none, "{\"exp\":null}", NOW), RW_JWT_EMALFORMED);
    cr_assert_eq(claims(&none, "{\"nbf\":true}", NOW), RW_JWT_EMALFORMED);
    cr_assert_eq(claims(&none, "{\"iat\":[1]}", NOW), RW_JWT_EMALFORMED);

    cr_assert_eq(claims(&none, "{\"nbf\":1700000000}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&none, "{\"nbf\":1700000001}", NOW), RW_JWT_ENOTYET);
    cr_assert_eq(claims(&lee, "{\"nbf\":1700000030}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&lee, "{\"nbf\":1700000031}", NOW), RW_JWT_ENOTYET);
    cr_assert_eq(claims(&none, "{\"iat\":1700000000}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&none, "{\"iat\":1700000001}", NOW), RW_JWT_ENOTYET);
    cr_assert_eq(claims(&lee, "{\"iat\":1700000030}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&none, "{\"iat\":-9223372036854775807}", NOW), RW_JWT_OK);

    rw_jwt_policy req = {.require_exp = true};
    cr_assert_eq(claims(&req, "{}", NOW), RW_JWT_ECLAIM);
    cr_assert_eq(claims(&req, "{\"exp\":1800000000}", NOW), RW_JWT_OK);

    rw_jwt_policy age = {.max_age_s = 60, .leeway_s = 5};
    cr_assert_eq(claims(&age, "{}", NOW), RW_JWT_ECLAIM);
    cr_assert_eq(claims(&age, "{\"iat\":1699999935}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&age, "{\"iat\":1699999934}", NOW), RW_JWT_ETOOOLD);
    cr_assert_eq(claims(&age, "{\"iat\":-9223372036854775807}", NOW), RW_JWT_ETOOOLD);

    rw_jwt_token out;
    const char *p = "{\"exp\":1800000000,\"iat\":1699999999}";
    cr_assert_eq(rw_jwt_check_claims(NULL, p, strlen(p), NOW, &out), RW_JWT_OK);
    cr_assert_eq(out.exp, 1800000000);
    cr_assert_eq(out.iat, 1699999999);
    cr_assert_eq(out.payload, p);
    cr_assert_eq(out.payload_len, strlen(p));
    cr_assert_eq(rw_jwt_check_claims(NULL, NULL, 0, NOW, &out), RW_JWT_EMALFORMED);
}

Test(jwt, iss_aud_required)
{
    const char *auds[] = {"api", "web"}, *req[] = {"sub", "scope"};
    rw_jwt_policy iss = {.issuer = "https://idp/"}, aud = {.audiences = auds, .naudiences = 2};
    rw_jwt_policy rq = {.required = req, .nrequired = 2};
    cr_assert_eq(claims(&iss, "{\"iss\":\"https://idp/\"}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&iss, "{\"iss\":\"https:\\/\\/idp\\/\"}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&iss, "{\"iss\":\"https://idp\"}", NOW), RW_JWT_EISSUER);
    cr_assert_eq(claims(&iss, "{\"iss\":\"https://idp/\\u0000\"}", NOW), RW_JWT_EISSUER);
    cr_assert_eq(claims(&iss, "{\"iss\":[\"https://idp/\"]}", NOW), RW_JWT_EISSUER);
    cr_assert_eq(claims(&iss, "{}", NOW), RW_JWT_EISSUER);

    cr_assert_eq(claims(&aud, "{\"aud\":\"web\"}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&aud, "{\"aud\":[\"x\",\"api\"]}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&aud, "{\"aud\":[\"x\",\"y\"]}", NOW), RW_JWT_EAUDIENCE);
    cr_assert_eq(claims(&aud, "{\"aud\":[]}", NOW), RW_JWT_EAUDIENCE);
    cr_assert_eq(claims(&aud, "{\"aud\":\"apix\"}", NOW), RW_JWT_EAUDIENCE);
    cr_assert_eq(claims(&aud, "{\"aud\":[\"api\",1]}", NOW), RW_JWT_EAUDIENCE);
    cr_assert_eq(claims(&aud, "{\"aud\":{\"api\":1}}", NOW), RW_JWT_EAUDIENCE);
    cr_assert_eq(claims(&aud, "{}", NOW), RW_JWT_EAUDIENCE);
    cr_assert_eq(claims(&iss, "{\"aud\":\"nobody\"}", NOW), RW_JWT_EISSUER); /* aud not checked */

    cr_assert_eq(claims(&rq, "{\"sub\":\"a\",\"scope\":null}", NOW), RW_JWT_OK);
    cr_assert_eq(claims(&rq, "{\"sub\":\"a\"}", NOW), RW_JWT_ECLAIM);
    cr_assert_eq(claims(&rq, "{\"scope\":[],\"x\":{\"sub\":1}}", NOW), RW_JWT_ECLAIM); /* top level only */

    /* the whole chain through rw_jwt_verify */
    rw_jwt_keyset *ks = hs256_set(NULL);
    rw_jwt_policy all = {.issuer = "idp",
                         .audiences = auds,
                         .naudiences = 2,
                         .required = req,
                         .nrequired = 2,
                         .require_exp = true,
                         .max_age_s = 3600};
    char *t = make_token("{\"alg\":\"HS256\"}",
                         "{\"iss\":\"idp\",\"aud\":\"api\",\"sub\":\"u\",\"scope\":\"r\",\"exp\":1700000100,"
                         "\"iat\":1699999000,\"nbf\":1699999000}",
                         &hs256);
    rw_jwt_token out;
    cr_assert_eq(verify_at(ks, &all, t, NOW, &out), RW_JWT_OK);
    cr_assert_eq(out.exp, 1700000100);
    cr_assert_eq(out.iat, 1699999000);
    cr_assert_eq(verify_at(ks, &all, t, 1700000100, NULL), RW_JWT_EEXPIRED);
    cr_assert_eq(verify_at(ks, &all, t, 1699998000, NULL), RW_JWT_ENOTYET);
    free(t);
    rw_jwt_keyset_free(ks);
}

/* ---- claims as header text ---- */

static ssize_t ct(const char *payload, const char *name, char *buf, size_t cap)
{
    return rw_jwt_claim_text(payload, strlen(payload), name, buf, cap);
}

Test(jwt, claim_text)
{
    char buf[64];
    const char *p = "{\"sub\":\"alice\",\"esc\":\"a\\\"b\\\\c\\/d \\u00e9\\ud83d\\ude00\",\"n\":12.5e3,"
                    "\"t\":true,\"f\":false,\"nul\":null,\"obj\":{\"a\":1},\"roles\":[\"admin\",\"dev\",3],"
                    "\"empty\":\"\",\"ea\":[],\"nested\":[\"a\",[\"b\"]],\"no\":[\"a\",{}],\"nl\":\"a\\nb\","
                    "\"z\":\"a\\u0000b\",\"tab\":\"a\\tb\",\"del\":\"a\x7f\",\"de\":\"a\\u007f\","
                    "\"an\":[null],\"ctl\":[\"ok\",\"b\\r\"],\"utf\":\"\xc3\xa9\"}";
    cr_assert_eq(ct(p, "sub", buf, sizeof buf), 5);
    cr_assert_str_eq(buf, "alice");
    cr_assert_eq(ct(p, "esc", buf, sizeof buf), (ssize_t)strlen("a\"b\\c/d \xc3\xa9\xf0\x9f\x98\x80"));
    cr_assert_str_eq(buf, "a\"b\\c/d \xc3\xa9\xf0\x9f\x98\x80");
    cr_assert_eq(ct(p, "n", buf, sizeof buf), 6);
    cr_assert_str_eq(buf, "12.5e3");
    cr_assert_eq(ct(p, "t", buf, sizeof buf), 4);
    cr_assert_str_eq(buf, "true");
    cr_assert_eq(ct(p, "f", buf, sizeof buf), 5);
    cr_assert_eq(ct(p, "roles", buf, sizeof buf), 13);
    cr_assert_str_eq(buf, "admin, dev, 3");
    cr_assert_eq(ct(p, "empty", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "");
    cr_assert_eq(ct(p, "ea", buf, sizeof buf), 0);
    cr_assert_eq(ct(p, "utf", buf, sizeof buf), 2);
    static const char *const refused[] = {"nul", "obj", "nested", "no",  "nl",      "z",   "tab",
                                          "del", "de",  "an",     "ctl", "missing", "Sub", ""};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        cr_assert_eq(ct(p, refused[i], buf, sizeof buf), -1, "%s", refused[i]);
        cr_assert_str_eq(buf, "", "%s", refused[i]);
    }
    /* room for the text and its NUL */
    cr_assert_eq(ct(p, "sub", buf, 6), 5);
    cr_assert_eq(ct(p, "sub", buf, 5), -1);
    cr_assert_eq(ct(p, "roles", buf, 14), 13);
    cr_assert_eq(ct(p, "roles", buf, 13), -1);
    cr_assert_eq(ct(p, "roles", buf, 7), -1);
    cr_assert_eq(ct(p, "n", buf, 6), -1);
    cr_assert_eq(ct(p, "sub", buf, 0), -1);
    cr_assert_eq(ct(p, "sub", NULL, 10), -1);
    /* not a valid payload */
    cr_assert_eq(ct("{\"sub\":\"a\",\"sub\":\"b\"}", "sub", buf, sizeof buf), -1);
    cr_assert_eq(ct("[\"sub\"]", "sub", buf, sizeof buf), -1);
    cr_assert_eq(ct("{\"sub\":\"a\"", "sub", buf, sizeof buf), -1);
    cr_assert_eq(rw_jwt_claim_text(NULL, 0, "sub", buf, sizeof buf), -1);
    /* the name is compared with the unescaped member name */
    cr_assert_eq(ct("{\"\\u0073ub\":\"x\"}", "sub", buf, sizeof buf), 1);
}

/* ---- the JSON scanner itself ---- */

static bool json_ok(const char *s)
{
    rw_json_val v;
    return rw__json_parse(s, strlen(s), RW_JWT_MAX_DEPTH, &v);
}

Test(jwt, json_scanner)
{
    static const char *const good[] = {
        "0",
        "-0",
        "1.5",
        "-1.5e+10",
        "1E-2",
        "true",
        "false",
        "null",
        "\"\"",
        " [ ] ",
        "{ }",
        "[1,\"a\",{\"b\":[]}]",
        "\"\\ud83d\\ude00\"",
        "\"\\u00e9\\u20ac\"",
        "\"\xff\"",
        "\"\x7f\"",
        "{\"a\":1,\"A\":2}",
        "{\"a\":1,\"a \":2}",
        "{\"\":1}",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
    };
    static const char *const bad[] = {
        "",
        " ",
        "01",
        "-",
        "1.",
        ".5",
        "1e",
        "1e+",
        "+1",
        "0x10",
        "NaN",
        "Infinity",
        "tru",
        "nul",
        "[1,]",
        "[,1]",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\" 1}",
        "{1:1}",
        "{\"a\":1,}",
        "\"",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud800x\"",
        "\"\t\"",
        "\"\n\"",
        "[1]]",
        "[1] [2]",
        "{\"a\":1,\"a\":1}",
        "{\"a\":1,\"\\u0061\":1}",
        "{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}",
        "\xef\xbb\xbf{}",
        "[\"a\" \"b\"]",
        "{\"a\":1 \"b\":2}",
        "/*c*/{}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert(json_ok(good[i]), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert(!json_ok(bad[i]), "%s", bad[i]);
    rw_json_val v;
    cr_assert(!rw__json_parse("{\"a\":1}", 7, 0, &v)); /* depth 0: scalars only */
    cr_assert(rw__json_parse("1", 1, 0, &v));
    cr_assert(rw__json_parse("[[]]", 4, 2, &v));
    cr_assert(!rw__json_parse("[[]]", 4, 1, &v));
    cr_assert(!rw__json_parse(NULL, 0, 4, &v));

    /* iteration and lookups */
    const char *doc =
        "{ \"a\" : [ 1 , \"x\" , { \"k\" : null } , [ ] ] , \"b\" : -2.5e1 , \"c\":\"\\u0041\" }";
    rw_json_val root, a, e, name;
    cr_assert(rw__json_parse(doc, strlen(doc), 16, &root));
    cr_assert_eq(root.type, RW_JSON_OBJECT);
    cr_assert(rw__json_member(&root, "a", 1, &a));
    cr_assert_eq(a.type, RW_JSON_ARRAY);
    rw_json_iter it;
    int types[8], n = 0;
    rw__json_iter_init(&it, &a);
    while (rw__json_iter_next(&it, NULL, &e) && n < 8)
        types[n++] = e.type;
    cr_assert_eq(n, 4);
    cr_assert(types[0] == RW_JSON_NUMBER && types[1] == RW_JSON_STRING && types[2] == RW_JSON_OBJECT &&
              types[3] == RW_JSON_ARRAY);
    rw__json_iter_init(&it, &root);
    n = 0;
    while (rw__json_iter_next(&it, &name, &e))
        n++;
    cr_assert_eq(n, 3);
    cr_assert(rw__json_string_eq(&name, "c", 1));
    cr_assert(rw__json_string_eq(&e, "A", 1));
    cr_assert(!rw__json_string_eq(&e, "AB", 2));
    cr_assert(!rw__json_string_eq(&e, "", 0));
    cr_assert(rw__json_member(&root, "b", 1, &e));
    int64_t i64;
    cr_assert(rw__json_int(&e, &i64));
    cr_assert_eq(i64, -25);
    cr_assert(!rw__json_member(&root, "k", 1, &e)); /* nested members are not top level */
    cr_assert(!rw__json_member(&a, "a", 1, &e));    /* not an object */
    rw__json_iter_init(&it, &e);                    /* not a container: empty */
    cr_assert(!rw__json_iter_next(&it, NULL, &e));

    static const struct {
        const char *num;
        int64_t want;
    } nums[] = {
        {"0", 0},
        {"-0", 0},
        {"42", 42},
        {"-42.99", -42},
        {"1.7e9", 1700000000},
        {"0.0017e12", 1700000000},
        {"123e-2", 1},
        {"5e-1", 0},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775807", -INT64_MAX},
        {"922337203685477580.7e1", INT64_MAX},
        {"0e99999999999999999999", 0},
        {"0.00000e5", 0},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        rw_json_val nv;
        cr_assert(rw__json_parse(nums[i].num, strlen(nums[i].num), 1, &nv), "%s", nums[i].num);
        cr_assert(rw__json_int(&nv, &i64), "%s", nums[i].num);
        cr_assert_eq(i64, nums[i].want, "%s", nums[i].num);
    }
    static const char *const too_big[] = {"9223372036854775808", "-9223372036854775808", "1e19", "1e100000"};
    for (size_t i = 0; i < sizeof too_big / sizeof too_big[0]; i++) {
        rw_json_val nv;
        cr_assert(rw__json_parse(too_big[i], strlen(too_big[i]), 1, &nv));
        cr_assert(!rw__json_int(&nv, &i64), "%s", too_big[i]);
    }
    char sbuf[8];
    rw_json_val sv;
    cr_assert(rw__json_parse("\"a\\u0000b\"", 10, 1, &sv));
    cr_assert_eq(rw__json_string(&sv, sbuf, sizeof sbuf), 3);
    cr_assert(memcmp(sbuf, "a\0b", 4) == 0);
    cr_assert_eq(rw__json_string(&sv, sbuf, 3), -1);
    cr_assert(!rw__json_int(&sv, &i64));
}

Test(jwt, json_member_limit)
{
    /* 512 members open at once are fine, 513 are not */
    size_t cap = 513 * 16 + 16;
    char *s = malloc(cap);
    for (int count = 512; count <= 513; count++) {
        size_t n = 0;
        s[n++] = '{';
        for (int i = 0; i < count; i++)
            n += (size_t)snprintf(s + n, cap - n, "%s\"m%d\":%d", i ? "," : "", i, i);
        s[n++] = '}';
        s[n] = '\0';
        rw_json_val v;
        cr_assert_eq(rw__json_parse(s, n, 16, &v), count == 512, "%d", count);
    }
    free(s);
}

/* ---- a shared set, many threads ---- */

struct job {
    const rw_jwt_keyset *ks;
    const char *const *tokens;
    size_t ntokens;
    int failures;
};

static void *verify_many(void *arg)
{
    struct job *j = arg;
    char buf[4096];
    for (int round = 0; round < 100; round++)
        for (size_t i = 0; i < j->ntokens; i++)
            if (rw_jwt_verify(j->ks, NULL, j->tokens[i], strlen(j->tokens[i]), NOW, buf, sizeof buf, NULL) !=
                RW_JWT_OK)
                j->failures++;
    return NULL;
}

Test(jwt, threads_share_a_set)
{
    EVP_PKEY *rsa = keygen(EVP_PKEY_RSA, 2048), *ec = keygen(EVP_PKEY_EC, NID_X9_62_prime256v1);
    EVP_PKEY *ed = keygen(EVP_PKEY_ED25519, 0);
    char *rp = pubkey_pem(rsa), *ep = pubkey_pem(ec), *dp = pubkey_pem(ed);
    rw_jwt_keyset *ks = hs256_set(NULL);
    add_pem_ok(ks, RW_JWT_RS256, NULL, rp);
    add_pem_ok(ks, RW_JWT_PS384, NULL, rp);
    add_pem_ok(ks, RW_JWT_ES256, NULL, ep);
    add_pem_ok(ks, RW_JWT_EDDSA, NULL, dp);
    struct signer s[] = {
        hs256,
        {RW_JWT_RS256, rsa, NULL, 0},
        {RW_JWT_PS384, rsa, NULL, 0},
        {RW_JWT_ES256, ec, NULL, 0},
        {RW_JWT_EDDSA, ed, NULL, 0},
    };
    char *tokens[5];
    char header[64];
    for (size_t i = 0; i < 5; i++) {
        snprintf(header, sizeof header, "{\"alg\":\"%s\"}", rw_jwt_alg_name(s[i].alg));
        tokens[i] = make_token(header, "{\"sub\":\"t\"}", &s[i]);
    }
    pthread_t th[4];
    struct job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct job){ks, (const char *const *)tokens, 5, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, verify_many, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(jobs[i].failures, 0);
    }
    for (size_t i = 0; i < 5; i++)
        free(tokens[i]);
    free(rp);
    free(ep);
    free(dp);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ed);
    rw_jwt_keyset_free(ks);
}
