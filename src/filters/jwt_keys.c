/* jwt_keys.c - JWT verification key sets: HMAC secrets, PEM public keys,
 * JWKS documents, and the signature checks (BoringSSL).
 *
 * Every key is bound to exactly one algorithm when it is loaded, and a token's
 * alg must be that algorithm: an RS256 key can never check an HS256 MAC (the
 * alg-confusion attack), whatever the token says. Weak keys are refused at
 * load: RSA under 2048 bits, HMAC secrets shorter than the hash (RFC 7518
 * 3.2), EC keys on a curve other than the alg's.
 *
 * Lifetime: a key is immutable once built and reference-counted (atomically),
 * so rw_jwt_keyset_add_all can share keys between sets that are freed by
 * different threads. A set is built by one thread, then only read: verifying
 * on a shared set needs no lock (BoringSSL's RSA/EC objects are safe for
 * concurrent use; the ECDSA check allocates its signature numbers per call). */
#include "ringway/jwt.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/curve25519.h>
#include <openssl/digest.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "json.h"

#define MAX_TRIES 8 /* keys tried for one token */
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384 /* BoringSSL's own verification limit */

enum family { FAM_NONE = 0, FAM_HMAC, FAM_RSA, FAM_PSS, FAM_EC, FAM_ED25519 };

/* The one table of algorithms: name, key family, digest, curve, sizes. */
struct alg_info {
    const char *name; /* as in a JOSE header ("none" for RW_JWT_NONE) */
    int family;
    const EVP_MD *(*md)(void);
    int curve;   /* FAM_EC: the curve's NID */
    size_t size; /* FAM_HMAC: least secret length; FAM_EC: coordinate length */
};

/* clang-format off */
static const struct alg_info alg_info[RW_JWT_ALG_COUNT] = {
    [RW_JWT_NONE] = {"none", FAM_NONE, NULL, 0, 0},
    [RW_JWT_HS256] = {"HS256", FAM_HMAC, EVP_sha256, 0, 32},
    [RW_JWT_HS384] = {"HS384", FAM_HMAC, EVP_sha384, 0, 48},
    [RW_JWT_HS512] = {"HS512", FAM_HMAC, EVP_sha512, 0, 64},
    [RW_JWT_RS256] = {"RS256", FAM_RSA, EVP_sha256, 0, 0},
    [RW_JWT_RS384] = {"RS384", FAM_RSA, EVP_sha384, 0, 0},
    [RW_JWT_RS512] = {"RS512", FAM_RSA, EVP_sha512, 0, 0},
    [RW_JWT_PS256] = {"PS256", FAM_PSS, EVP_sha256, 0, 0},
    [RW_JWT_PS384] = {"PS384", FAM_PSS, EVP_sha384, 0, 0},
    [RW_JWT_PS512] = {"PS512", FAM_PSS, EVP_sha512, 0, 0},
    [RW_JWT_ES256] = {"ES256", FAM_EC, EVP_sha256, NID_X9_62_prime256v1, 32},
    [RW_JWT_ES384] = {"ES384", FAM_EC, EVP_sha384, NID_secp384r1, 48},
    [RW_JWT_EDDSA] = {"EdDSA", FAM_ED25519, NULL, 0, 0},
};
/* clang-format on */

int rw_jwt_alg_parse(const char *name, size_t len)
{
    if (!name)
        return RW_JWT_NONE;
    for (int a = RW_JWT_NONE + 1; a < RW_JWT_ALG_COUNT; a++)
        if (strlen(alg_info[a].name) == len && memcmp(alg_info[a].name, name, len) == 0)
            return a;
    return RW_JWT_NONE;
}

const char *rw_jwt_alg_name(int alg)
{
    if (alg < RW_JWT_NONE || alg >= RW_JWT_ALG_COUNT)
        return "unknown";
    return alg_info[alg].name;
}

/* One verification key; immutable once built, shared by reference count. */
struct rw_jwt_key {
    unsigned refs;
    int alg;
    size_t kid_len; /* 0: no kid */
    char kid[RW_JWT_MAX_KID + 1];
    EVP_PKEY *pkey;      /* RS/PS/ES/EdDSA; NULL for HMAC */
    uint8_t ed25519[32]; /* EdDSA: the raw public key */
    uint8_t *material;   /* HMAC: the secret; others: SubjectPublicKeyInfo DER */
    size_t material_len;
};

/* Owns one reference to each of its keys. */
struct rw_jwt_keyset {
    struct rw_jwt_key **keys;
    size_t n, cap;
};

static int family_of(int alg)
{
    return alg > RW_JWT_NONE && alg < RW_JWT_ALG_COUNT ? alg_info[alg].family : FAM_NONE;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- signature checks ---- */

static bool verify_hmac(const struct rw_jwt_key *k, const struct alg_info *ai, const void *in, size_t n,
                        const uint8_t *sig, size_t siglen)
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    if (!HMAC(ai->md(), k->material, k->material_len, in, n, mac, &maclen))
        return false;
    return siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0;
}

static bool verify_rsa(const struct rw_jwt_key *k, const struct alg_info *ai, const uint8_t *dig, size_t dlen,
                       const uint8_t *sig, size_t siglen)
{
    RSA *rsa = EVP_PKEY_get0_RSA(k->pkey);
    const EVP_MD *md = ai->md();
    if (!rsa)
        return false;
    if (ai->family == FAM_PSS) /* RFC 7518 3.5: MGF1 with the same hash, salt as long as the hash */
        return RSA_verify_pss_mgf1(rsa, dig, dlen, md, md, (int)dlen, sig, siglen) == 1;
    return RSA_verify(EVP_MD_type(md), dig, dlen, sig, siglen, rsa) == 1;
}

/* JWS ECDSA signatures are R || S, each exactly as long as a coordinate. */
static bool verify_ec(const struct rw_jwt_key *k, const struct alg_info *ai, const uint8_t *dig, size_t dlen,
                      const uint8_t *sig, size_t siglen)
{
    const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(k->pkey);
    if (!ec || siglen != 2 * ai->size)
        return false;
    ECDSA_SIG *es = ECDSA_SIG_new();
    bool ok = es && BN_bin2bn(sig, ai->size, es->r) && BN_bin2bn(sig + ai->size, ai->size, es->s) &&
              ECDSA_do_verify(dig, dlen, es, ec) == 1;
    ECDSA_SIG_free(es);
    return ok;
}

static bool verify_key(const struct rw_jwt_key *k, const void *in, size_t n, const uint8_t *sig,
                       size_t siglen)
{
    const struct alg_info *ai = &alg_info[k->alg];
    uint8_t dig[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    switch (ai->family) {
    case FAM_HMAC:
        return verify_hmac(k, ai, in, n, sig, siglen);
    case FAM_ED25519:
        return siglen == 64 && ED25519_verify(in, n, sig, k->ed25519) == 1;
    case FAM_RSA:
    case FAM_PSS:
    case FAM_EC:
        if (!EVP_Digest(in, n, dig, &dlen, ai->md(), NULL))
            return false;
        if (ai->family == FAM_EC)
            return verify_ec(k, ai, dig, dlen, sig, siglen);
        return verify_rsa(k, ai, dig, dlen, sig, siglen);
    default:
        return false;
    }
}

int rw__jwt_keyset_verify(const rw_jwt_keyset *ks, int alg, const char *kid, size_t kid_len,
                          const void *input, size_t input_len, const uint8_t *sig, size_t sig_len)
{
    unsigned tries = 0;
    bool kid_known = false;
    if (family_of(alg) == FAM_NONE)
        return RW_JWT_EALG;
    if (!ks)
        return RW_JWT_ENOKEY;
    /* A kid names the key; when no key carries that kid, keys without a kid
     * (a static secret, a PEM key configured without kid) of the token's alg
     * are tried: they verify any token of their algorithm. */
    for (int pass = 0; pass < 2 && tries == 0; pass++) {
        if (pass == 1 && (kid_len == 0 || kid_known))
            break;
        for (size_t i = 0; i < ks->n && tries < MAX_TRIES; i++) {
            const struct rw_jwt_key *k = ks->keys[i];
            if (pass == 0 && kid_len) {
                if (k->kid_len != kid_len || memcmp(k->kid, kid, kid_len) != 0)
                    continue;
                kid_known = true;
            } else if (pass == 1 && k->kid_len != 0) {
                continue;
            }
            if (k->alg != alg)
                continue;
            tries++;
            if (verify_key(k, input, input_len, sig, sig_len))
                return RW_JWT_OK;
        }
    }
    ERR_clear_error(); /* failed checks leave entries in this thread's queue */
    if (tries == 0)
        return kid_known ? RW_JWT_EALG : RW_JWT_ENOKEY;
    return RW_JWT_ESIGNATURE;
}

/* ---- keys ---- */

static void key_unref(struct rw_jwt_key *k)
{
    if (!k || __atomic_sub_fetch(&k->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    EVP_PKEY_free(k->pkey);
    if (k->material)
        OPENSSL_cleanse(k->material, k->material_len);
    free(k->material);
    free(k);
}

/* A key with its alg and kid (NULL or "" for none), no material yet. */
static struct rw_jwt_key *key_new(int alg, const char *kid, char *err, size_t errlen)
{
    size_t kid_len = kid ? strlen(kid) : 0;
    if (kid_len > RW_JWT_MAX_KID) {
        set_err(err, errlen, "kid longer than %d bytes", RW_JWT_MAX_KID);
        return NULL;
    }
    struct rw_jwt_key *k = calloc(1, sizeof *k);
    if (!k) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    k->refs = 1;
    k->alg = alg;
    k->kid_len = kid_len;
    if (kid_len)
        memcpy(k->kid, kid, kid_len);
    return k;
}

/* Takes over the caller's reference to k, also on failure. */
static int keyset_push(rw_jwt_keyset *ks, struct rw_jwt_key *k)
{
    if (ks->n == ks->cap) {
        size_t cap = ks->cap ? ks->cap * 2 : 8;
        struct rw_jwt_key **keys = realloc(ks->keys, cap * sizeof *keys);
        if (!keys) {
            key_unref(k);
            return -1;
        }
        ks->keys = keys;
        ks->cap = cap;
    }
    ks->keys[ks->n++] = k;
    return 0;
}

rw_jwt_keyset *rw_jwt_keyset_new(void)
{
    return calloc(1, sizeof(rw_jwt_keyset));
}

void rw_jwt_keyset_free(rw_jwt_keyset *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->n; i++)
        key_unref(ks->keys[i]);
    free(ks->keys);
    free(ks);
}

size_t rw_jwt_keyset_count(const rw_jwt_keyset *ks)
{
    return ks ? ks->n : 0;
}

int rw_jwt_keyset_add_all(rw_jwt_keyset *dst, const rw_jwt_keyset *src)
{
    if (!dst)
        return -1;
    for (size_t i = 0; src && i < src->n; i++) {
        __atomic_add_fetch(&src->keys[i]->refs, 1, __ATOMIC_RELAXED);
        if (keyset_push(dst, src->keys[i]) != 0)
            return -1;
    }
    return 0;
}

uint64_t rw_jwt_keyset_digest(const rw_jwt_keyset *ks)
{
    SHA256_CTX c;
    uint8_t md[SHA256_DIGEST_LENGTH];
    uint64_t d = 0;
    SHA256_Init(&c);
    for (size_t i = 0; ks && i < ks->n; i++) {
        const struct rw_jwt_key *k = ks->keys[i];
        uint8_t head[1 + 2 + 8] = {(uint8_t)k->alg, (uint8_t)(k->kid_len >> 8), (uint8_t)k->kid_len};
        for (int b = 0; b < 8; b++)
            head[3 + b] = (uint8_t)((uint64_t)k->material_len >> (8 * b));
        SHA256_Update(&c, head, sizeof head);
        SHA256_Update(&c, k->kid, k->kid_len);
        SHA256_Update(&c, k->material, k->material_len);
    }
    SHA256_Final(md, &c);
    for (int b = 0; b < 8; b++)
        d |= (uint64_t)md[b] << (8 * b);
    return d;
}

/* ---- HMAC secrets ---- */

static struct rw_jwt_key *secret_key(int alg, const char *kid, const void *secret, size_t len, char *err,
                                     size_t errlen)
{
    if (family_of(alg) != FAM_HMAC) {
        set_err(err, errlen, "%s does not take a secret", rw_jwt_alg_name(alg));
        return NULL;
    }
    if (len < alg_info[alg].size) {
        set_err(err, errlen, "%s secret is %zu bytes; at least %zu required (RFC 7518 3.2)",
                rw_jwt_alg_name(alg), len, alg_info[alg].size);
        return NULL;
    }
    struct rw_jwt_key *k = key_new(alg, kid, err, errlen);
    if (!k)
        return NULL;
    k->material = malloc(len);
    if (!k->material) {
        set_err(err, errlen, "out of memory");
        key_unref(k);
        return NULL;
    }
    memcpy(k->material, secret, len);
    k->material_len = len;
    return k;
}

int rw_jwt_keyset_add_secret(rw_jwt_keyset *ks, int alg, const char *kid, const void *secret, size_t len,
                             char *err, size_t errlen)
{
    if (!ks || (!secret && len)) {
        set_err(err, errlen, "no key set or secret");
        return -1;
    }
    struct rw_jwt_key *k = secret_key(alg, kid, secret, len, err, errlen);
    if (!k)
        return -1;
    if (keyset_push(ks, k) != 0) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- public keys ---- */

/* Checks that pkey suits alg. */
static bool pkey_fits(int alg, const EVP_PKEY *pkey, char *err, size_t errlen)
{
    const char *name = rw_jwt_alg_name(alg);
    int type = EVP_PKEY_id(pkey);
    switch (family_of(alg)) {
    case FAM_RSA:
    case FAM_PSS: {
        const RSA *rsa = type == EVP_PKEY_RSA ? EVP_PKEY_get0_RSA(pkey) : NULL;
        if (!rsa) {
            set_err(err, errlen, "%s needs an RSA key", name);
            return false;
        }
        unsigned bits = RSA_bits(rsa);
        if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
            set_err(err, errlen, "RSA key is %u bits; %s needs %d to %d bits", bits, name, RSA_MIN_BITS,
                    RSA_MAX_BITS);
            return false;
        }
        return true;
    }
    case FAM_EC: {
        const EC_KEY *ec = type == EVP_PKEY_EC ? EVP_PKEY_get0_EC_KEY(pkey) : NULL;
        if (!ec || EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) != alg_info[alg].curve) {
            set_err(err, errlen, "%s needs an EC key on %s", name, alg == RW_JWT_ES256 ? "P-256" : "P-384");
            return false;
        }
        return true;
    }
    case FAM_ED25519:
        if (type != EVP_PKEY_ED25519) {
            set_err(err, errlen, "%s needs an Ed25519 key", name);
            return false;
        }
        return true;
    case FAM_HMAC:
        set_err(err, errlen, "%s takes a secret, not a public key", name);
        return false;
    default:
        set_err(err, errlen, "unsupported algorithm");
        return false;
    }
}

/* A key for alg from pkey; takes over the reference to pkey in all cases. */
static struct rw_jwt_key *pkey_key(int alg, const char *kid, EVP_PKEY *pkey, char *err, size_t errlen)
{
    struct rw_jwt_key *k = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0, raw_len = 32;
    CBB cbb;
    CBB_zero(&cbb);
    if (!pkey_fits(alg, pkey, err, errlen) || !(k = key_new(alg, kid, err, errlen)))
        goto fail;
    k->pkey = pkey;
    pkey = NULL;
    if (k->alg == RW_JWT_EDDSA &&
        (!EVP_PKEY_get_raw_public_key(k->pkey, k->ed25519, &raw_len) || raw_len != sizeof k->ed25519)) {
        set_err(err, errlen, "bad Ed25519 key");
        goto fail;
    }
    if (!CBB_init(&cbb, 0) || !EVP_marshal_public_key(&cbb, k->pkey) || !CBB_finish(&cbb, &der, &der_len)) {
        CBB_cleanup(&cbb);
        set_err(err, errlen, "cannot encode the public key");
        goto fail;
    }
    k->material = malloc(der_len);
    if (!k->material) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    memcpy(k->material, der, der_len);
    k->material_len = der_len;
    OPENSSL_free(der);
    return k;
fail:
    OPENSSL_free(der);
    EVP_PKEY_free(pkey);
    key_unref(k);
    ERR_clear_error();
    return NULL;
}

static EVP_PKEY *pkey_from_rsa(RSA *rsa)
{
    EVP_PKEY *pkey = rsa ? EVP_PKEY_new() : NULL;
    if (!pkey || !EVP_PKEY_assign_RSA(pkey, rsa)) {
        EVP_PKEY_free(pkey);
        RSA_free(rsa);
        return NULL;
    }
    return pkey;
}

static bool pem_key_type(const char *type)
{
    return strcmp(type, "PUBLIC KEY") == 0 || strcmp(type, "RSA PUBLIC KEY") == 0 ||
           strcmp(type, "CERTIFICATE") == 0;
}

/* The public key of a PEM block's DER, by block type (one pem_key_type
 * accepts). */
static EVP_PKEY *pem_block_key(const char *type, const uint8_t *der, size_t len, char *err, size_t errlen)
{
    CBS cbs;
    EVP_PKEY *pkey = NULL;
    CBS_init(&cbs, der, len);
    if (strcmp(type, "PUBLIC KEY") == 0) {
        pkey = EVP_parse_public_key(&cbs);
    } else if (strcmp(type, "RSA PUBLIC KEY") == 0) {
        pkey = pkey_from_rsa(RSA_parse_public_key(&cbs));
    } else {
        const uint8_t *p = der;
        X509 *x = len <= LONG_MAX ? d2i_X509(NULL, &p, (long)len) : NULL;
        pkey = x ? X509_get_pubkey(x) : NULL;
        X509_free(x);
        CBS_init(&cbs, p, (size_t)(der + len - p));
    }
    if (pkey && CBS_len(&cbs) != 0) { /* trailing bytes after the DER */
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    if (!pkey)
        set_err(err, errlen, "cannot parse the PEM %s", type);
    return pkey;
}

/* The key of the first PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block (of a
 * chain: the first certificate); other blocks, such as EC PARAMETERS, are
 * passed over. */
static EVP_PKEY *pem_key(const char *pem, size_t len, char *err, size_t errlen)
{
    char other[64] = "";
    EVP_PKEY *pkey = NULL;
    bool found = false;
    BIO *bio = len <= INT_MAX ? BIO_new_mem_buf(pem, (int)len) : NULL;
    if (!bio) {
        set_err(err, errlen, "PEM too large or out of memory");
        return NULL;
    }
    while (!found) {
        char *type = NULL, *header = NULL;
        uint8_t *der = NULL;
        long der_len = 0;
        if (!PEM_read_bio(bio, &type, &header, &der, &der_len))
            break;
        if (pem_key_type(type) && der_len >= 0) {
            found = true;
            pkey = pem_block_key(type, der, (size_t)der_len, err, errlen);
        } else if (!other[0]) {
            snprintf(other, sizeof other, "%s", type);
        }
        OPENSSL_free(type);
        OPENSSL_free(header);
        OPENSSL_free(der);
    }
    if (!found && other[0])
        set_err(err, errlen, "PEM block \"%s\" is not a public key or certificate", other);
    else if (!found)
        set_err(err, errlen, "no PEM block found");
    BIO_free(bio);
    ERR_clear_error();
    return pkey;
}

int rw_jwt_keyset_add_pem(rw_jwt_keyset *ks, int alg, const char *kid, const char *pem, size_t len, char *err,
                          size_t errlen)
{
    int fam = family_of(alg);
    if (!ks || !pem) {
        set_err(err, errlen, "no key set or PEM");
        return -1;
    }
    if (fam == FAM_NONE || fam == FAM_HMAC) {
        set_err(err, errlen, "%s does not take a PEM public key", rw_jwt_alg_name(alg));
        return -1;
    }
    EVP_PKEY *pkey = pem_key(pem, len, err, errlen);
    struct rw_jwt_key *k = pkey ? pkey_key(alg, kid, pkey, err, errlen) : NULL;
    if (!k)
        return -1;
    if (keyset_push(ks, k) != 0) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- JWKS ---- */

/* A string member into buf: its length, -1 when absent, -2 when not a string
 * or longer than buf. */
static ssize_t str_member(const rw_json_val *obj, const char *name, char *buf, size_t cap)
{
    rw_json_val v;
    if (!rw__json_member(obj, name, strlen(name), &v))
        return -1;
    ssize_t n = rw__json_string(&v, buf, cap);
    return n < 0 ? -2 : n;
}

/* A base64url string member, decoded into a malloc'd buffer (NULL when
 * absent, not base64url, or out of memory). */
static uint8_t *b64_member(const rw_json_val *obj, const char *name, size_t *out_len)
{
    rw_json_val v;
    if (!rw__json_member(obj, name, strlen(name), &v) || v.type != RW_JSON_STRING)
        return NULL;
    char *text = malloc(v.len);
    uint8_t *bin = malloc(v.len);
    ssize_t n = text && bin ? rw__json_string(&v, text, v.len) : -1;
    if (n >= 0)
        n = rw_base64url_decode(text, (size_t)n, bin, v.len);
    free(text);
    if (n <= 0) {
        free(bin);
        return NULL;
    }
    *out_len = (size_t)n;
    return bin;
}

static EVP_PKEY *jwk_rsa(const rw_json_val *jwk, const char **why)
{
    size_t nlen = 0, elen = 0;
    uint8_t *n = b64_member(jwk, "n", &nlen), *e = b64_member(jwk, "e", &elen);
    BIGNUM *bn = n ? BN_bin2bn(n, nlen, NULL) : NULL, *be = e ? BN_bin2bn(e, elen, NULL) : NULL;
    RSA *rsa = bn && be ? RSA_new() : NULL;
    free(n);
    free(e);
    if (!rsa || !RSA_set0_key(rsa, bn, be, NULL)) {
        *why = "RSA key without usable \"n\" and \"e\"";
        RSA_free(rsa);
        BN_free(bn);
        BN_free(be);
        return NULL;
    }
    return pkey_from_rsa(rsa);
}

static EVP_PKEY *jwk_ec(const rw_json_val *jwk, int alg, const char **why)
{
    size_t xlen = 0, ylen = 0, size = alg_info[alg].size;
    uint8_t *x = b64_member(jwk, "x", &xlen), *y = b64_member(jwk, "y", &ylen);
    BIGNUM *bx = x && xlen == size ? BN_bin2bn(x, xlen, NULL) : NULL;
    BIGNUM *by = y && ylen == size ? BN_bin2bn(y, ylen, NULL) : NULL;
    EC_KEY *ec = bx && by ? EC_KEY_new_by_curve_name(alg_info[alg].curve) : NULL;
    EVP_PKEY *pkey = NULL;
    if (ec && EC_KEY_set_public_key_affine_coordinates(ec, bx, by) && (pkey = EVP_PKEY_new()) &&
        EVP_PKEY_assign_EC_KEY(pkey, ec)) {
        ec = NULL;
    } else {
        EVP_PKEY_free(pkey);
        pkey = NULL;
        *why = "EC key without a usable point \"x\", \"y\"";
    }
    EC_KEY_free(ec);
    BN_free(bx);
    BN_free(by);
    free(x);
    free(y);
    return pkey;
}

static EVP_PKEY *jwk_okp(const rw_json_val *jwk, const char **why)
{
    size_t xlen = 0;
    uint8_t *x = b64_member(jwk, "x", &xlen);
    EVP_PKEY *pkey = x && xlen == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xlen) : NULL;
    free(x);
    if (!pkey)
        *why = "Ed25519 key without a usable \"x\"";
    return pkey;
}

/* The alg a JWK's kty and crv imply (RW_JWT_NONE for oct: it must say). */
static int jwk_default_alg(const char *kty, const char *crv, const char **why)
{
    if (strcmp(kty, "RSA") == 0)
        return RW_JWT_RS256;
    if (strcmp(kty, "oct") == 0)
        return RW_JWT_NONE;
    if (strcmp(kty, "EC") == 0 && strcmp(crv, "P-256") == 0)
        return RW_JWT_ES256;
    if (strcmp(kty, "EC") == 0 && strcmp(crv, "P-384") == 0)
        return RW_JWT_ES384;
    if (strcmp(kty, "OKP") == 0 && strcmp(crv, "Ed25519") == 0)
        return RW_JWT_EDDSA;
    *why = "unsupported kty or crv";
    return -1;
}

/* Whether alg suits the kty/crv whose default alg is def. */
static bool jwk_alg_fits(int alg, int def, const char *kty)
{
    int fam = family_of(alg);
    if (strcmp(kty, "RSA") == 0)
        return fam == FAM_RSA || fam == FAM_PSS;
    if (strcmp(kty, "oct") == 0)
        return fam == FAM_HMAC;
    return alg == def;
}

/* Builds the key a JWK describes; NULL with *why when it is skipped. */
static struct rw_jwt_key *jwk_key(const rw_json_val *jwk, char *err, size_t errlen, const char **why)
{
    char kty[8], crv[16] = "", use[8], algname[16], kid[RW_JWT_MAX_KID + 1] = "";
    ssize_t n;
    int alg = RW_JWT_NONE, def;
    *why = NULL;
    if (jwk->type != RW_JSON_OBJECT || str_member(jwk, "kty", kty, sizeof kty) < 0) {
        *why = "no usable \"kty\"";
        return NULL;
    }
    if ((n = str_member(jwk, "use", use, sizeof use)) == -2 || (n >= 0 && strcmp(use, "sig") != 0)) {
        *why = "\"use\" is not \"sig\"";
        return NULL;
    }
    if ((n = str_member(jwk, "alg", algname, sizeof algname)) != -1 &&
        (n < 0 || (alg = rw_jwt_alg_parse(algname, (size_t)n)) == RW_JWT_NONE)) {
        *why = "unsupported \"alg\"";
        return NULL;
    }
    if (str_member(jwk, "kid", kid, sizeof kid) == -2 || str_member(jwk, "crv", crv, sizeof crv) == -2) {
        *why = "bad \"kid\" or \"crv\"";
        return NULL;
    }
    if ((def = jwk_default_alg(kty, crv, why)) < 0)
        return NULL;
    if (alg == RW_JWT_NONE)
        alg = def;
    if (alg == RW_JWT_NONE || !jwk_alg_fits(alg, def, kty)) {
        *why = alg == RW_JWT_NONE ? "oct key without \"alg\"" : "\"alg\" does not fit the key type";
        return NULL;
    }
    if (strcmp(kty, "oct") == 0) {
        size_t klen = 0;
        uint8_t *secret = b64_member(jwk, "k", &klen);
        struct rw_jwt_key *k = secret ? secret_key(alg, kid, secret, klen, err, errlen) : NULL;
        if (secret)
            OPENSSL_cleanse(secret, klen);
        free(secret);
        if (!k)
            *why = secret ? err : "oct key without a usable \"k\"";
        return k;
    }
    EVP_PKEY *pkey = strcmp(kty, "RSA") == 0  ? jwk_rsa(jwk, why)
                     : strcmp(kty, "EC") == 0 ? jwk_ec(jwk, alg, why)
                                              : jwk_okp(jwk, why);
    struct rw_jwt_key *k = pkey ? pkey_key(alg, kid, pkey, err, errlen) : NULL;
    if (!k && !*why)
        *why = err;
    ERR_clear_error();
    return k;
}

int rw_jwt_keyset_add_jwks(rw_jwt_keyset *ks, const char *json, size_t len, char *err, size_t errlen)
{
    rw_json_val root, keys, jwk;
    rw_json_iter it;
    char why_buf[192] = "";
    int added = 0;
    size_t index = 0;
    bool skipped = false;
    set_err(err, errlen, "%s", "");
    if (!ks || !rw__json_parse(json, len, RW_JWT_MAX_DEPTH, &root) || root.type != RW_JSON_OBJECT) {
        set_err(err, errlen, "JWKS is not a valid JSON object");
        return -1;
    }
    if (!rw__json_member(&root, "keys", 4, &keys) || keys.type != RW_JSON_ARRAY) {
        set_err(err, errlen, "JWKS has no \"keys\" array");
        return -1;
    }
    rw__json_iter_init(&it, &keys);
    for (; rw__json_iter_next(&it, NULL, &jwk); index++) {
        const char *why;
        struct rw_jwt_key *k = jwk_key(&jwk, why_buf, sizeof why_buf, &why);
        if (!k) {
            if (!skipped) /* the first reason, for the log */
                set_err(err, errlen, "key %zu skipped: %s", index, why);
            skipped = true;
            continue;
        }
        if (keyset_push(ks, k) != 0) {
            set_err(err, errlen, "out of memory");
            return -1;
        }
        added++;
    }
    return added;
}
