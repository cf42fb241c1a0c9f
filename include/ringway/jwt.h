/* jwt.h - JSON Web Tokens (RFC 7519) in compact JWS form (RFC 7515): key sets
 * bound to algorithms, signature verification through BoringSSL, registered
 * claim checks, and access to the verified payload's claims. No allocation on
 * the verify path: callers pass a scratch buffer. */
#ifndef RINGWAY_JWT_H
#define RINGWAY_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum rw_jwt_alg {
    RW_JWT_NONE = 0, /* never accepted; the zero value means "unset" */
    RW_JWT_HS256,
    RW_JWT_HS384,
    RW_JWT_HS512,
    RW_JWT_RS256,
    RW_JWT_RS384,
    RW_JWT_RS512,
    RW_JWT_PS256,
    RW_JWT_PS384,
    RW_JWT_PS512,
    RW_JWT_ES256,
    RW_JWT_ES384,
    RW_JWT_EDDSA, /* Ed25519 */
    RW_JWT_ALG_COUNT
};

/* Why a token was refused (RW_JWT_OK = 0 when accepted). */
enum rw_jwt_err {
    RW_JWT_OK = 0,
    RW_JWT_EMALFORMED, /* segments, base64url, JSON, header fields */
    RW_JWT_ETOOLARGE,  /* token over RW_JWT_MAX_TOKEN or payload over scratch */
    RW_JWT_EALG,       /* alg none / unknown / not the key's algorithm */
    RW_JWT_ENOKEY,     /* unknown kid (and no kid-less key of the alg), or no key for the algorithm */
    RW_JWT_ESIGNATURE, /* signature does not verify */
    RW_JWT_EEXPIRED,   /* exp (+ leeway) passed */
    RW_JWT_ENOTYET,    /* nbf/iat (- leeway) in the future */
    RW_JWT_ETOOOLD,    /* iat older than max_age */
    RW_JWT_EISSUER,
    RW_JWT_EAUDIENCE,
    RW_JWT_ECLAIM, /* a required claim is missing */
};

#define RW_JWT_MAX_TOKEN 8192 /* longer tokens are refused before decoding */
#define RW_JWT_MAX_DEPTH 16   /* JSON nesting allowed in header and payload */
#define RW_JWT_MAX_KID 255    /* longest kid a key may have (bytes); longer ones are refused at load */

/* Parses "HS256", "RS256", ..., "EdDSA"; returns RW_JWT_NONE when unknown (and for "none"). */
int rw_jwt_alg_parse(const char *name, size_t len);
/* The JOSE name of an algorithm ("HS256"...), "none" for RW_JWT_NONE. */
const char *rw_jwt_alg_name(int alg);
/* A short English reason for an error code ("token expired", ...). */
const char *rw_jwt_strerror(int err);

/* An immutable-once-built set of verification keys. Each key is bound to one
 * algorithm and has an optional kid. The set owns its keys (BoringSSL objects). */
typedef struct rw_jwt_keyset rw_jwt_keyset;

/* Creates an empty key set; NULL on ENOMEM. */
rw_jwt_keyset *rw_jwt_keyset_new(void);
/* Frees a set and its keys; NULL allowed. */
void rw_jwt_keyset_free(rw_jwt_keyset *ks);
/* Number of keys in the set. */
size_t rw_jwt_keyset_count(const rw_jwt_keyset *ks);
/* Adds an HMAC secret for alg HS256/384/512 (kid may be NULL). The secret is
 * copied. Returns 0, or -1 with a reason in err. */
int rw_jwt_keyset_add_secret(rw_jwt_keyset *ks, int alg, const char *kid, const void *secret, size_t len,
                             char *err, size_t errlen);
/* Adds a PEM public key ("-----BEGIN PUBLIC KEY-----" SPKI, or an RSA PUBLIC KEY)
 * for an RS/PS/ES/EdDSA alg; the key type must match alg (an EC key's curve
 * must match ES256/ES384). Returns 0, or -1 with a reason in err. */
int rw_jwt_keyset_add_pem(rw_jwt_keyset *ks, int alg, const char *kid, const char *pem, size_t len, char *err,
                          size_t errlen);
/* Adds every usable key of a JWKS document (RFC 7517: kty RSA/EC/OKP/oct, "alg"
 * honoured when present, else inferred: RSA->RS256, P-256->ES256, P-384->ES384,
 * Ed25519->EdDSA; oct keys need "alg"; keys with "use" other than "sig" are
 * skipped). Returns the number of keys added (>= 0), or -1 with a reason in err
 * when the document is not a JWKS. */
int rw_jwt_keyset_add_jwks(rw_jwt_keyset *ks, const char *json, size_t len, char *err, size_t errlen);
/* Adds (shares) every key of src to dst. Returns 0, or -1 on ENOMEM. */
int rw_jwt_keyset_add_all(rw_jwt_keyset *dst, const rw_jwt_keyset *src);
/* A 64-bit digest of the set's keys (same keys, same value): tells a refresh
 * that changed nothing from one that rotated keys. */
uint64_t rw_jwt_keyset_digest(const rw_jwt_keyset *ks);

/* What a verified token must also satisfy. */
typedef struct rw_jwt_policy {
    const char *issuer;           /* NULL: not checked; else iss must equal it */
    const char *const *audiences; /* aud (string or array) must contain one of them */
    size_t naudiences;            /* 0: not checked */
    const char *const *required;  /* claim names that must be present */
    size_t nrequired;
    uint32_t leeway_s;  /* clock skew allowed on exp, nbf, iat */
    uint32_t max_age_s; /* 0: not checked; else iat required and now - iat <= max_age */
    bool require_exp;   /* a token without exp is refused */
} rw_jwt_policy;

/* A verified token's decoded payload, valid while the scratch buffer given to
 * rw_jwt_verify is. */
typedef struct rw_jwt_token {
    int alg;
    const char *payload; /* decoded payload JSON (in scratch) */
    size_t payload_len;
    int64_t exp; /* INT64_MAX when absent */
    int64_t iat; /* INT64_MIN when absent */
    int64_t nbf; /* INT64_MIN when absent */
    bool has_exp, has_iat, has_nbf;
} rw_jwt_token;

/* Decodes and verifies a compact JWS token against ks and checks the policy's
 * claims at time now_s (Unix seconds). scratch (scratch_len >= 2 x token length
 * is always enough) receives the decoded header and payload. Returns RW_JWT_OK
 * and fills out, or an rw_jwt_err. Never allocates; thread-safe on a shared ks. */
int rw_jwt_verify(const rw_jwt_keyset *ks, const rw_jwt_policy *pol, const char *tok, size_t len,
                  int64_t now_s, char *scratch, size_t scratch_len, rw_jwt_token *out);

/* Checks only the time claims (exp, nbf, iat, max_age, require_exp) of a token
 * that passed rw_jwt_verify or rw_jwt_check_claims under the same policy, at
 * now_s: the rest of the policy does not change with time. RW_JWT_OK or an error. */
int rw_jwt_check_times(const rw_jwt_policy *pol, const rw_jwt_token *t, int64_t now_s);

/* Checks the time and registered claims of an already verified payload again
 * (a cache hit): exp/nbf/iat/iss/aud/required. Returns RW_JWT_OK or an error. */
int rw_jwt_check_claims(const rw_jwt_policy *pol, const char *payload, size_t len, int64_t now_s,
                        rw_jwt_token *out);

/* Writes the value of the payload's top-level claim `name` as header-safe text
 * into buf: a string as is (unescaped), a number or boolean as written, an
 * array of strings/numbers joined with ", "; objects and null are refused.
 * Values with control characters (after unescaping) or longer than cap are
 * refused. Returns the length written, or -1 when absent or refused. */
ssize_t rw_jwt_claim_text(const char *payload, size_t len, const char *name, char *buf, size_t cap);

/* Internal (jwt.c -> jwt_keys.c): verifies sig over input with the key(s) that alg and kid (kid_len 0: none)
 * select; an rw_jwt_err. */
int rw__jwt_keyset_verify(const rw_jwt_keyset *ks, int alg, const char *kid, size_t kid_len,
                          const void *input, size_t input_len, const uint8_t *sig, size_t sig_len);

/* Decodes base64url (no padding required; padding tolerated) into out.
 * Returns the decoded length, or -1 on a bad character, bad length or when out
 * (cap bytes) is too small. */
ssize_t rw_base64url_decode(const char *in, size_t len, void *out, size_t cap);

#endif
