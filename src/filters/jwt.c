/* jwt.c - compact JWS tokens (RFC 7515/7519): splitting and decoding, the
 * protected header, the registered claims, and claim values as header text.
 * Key sets and the signature primitives are in jwt_keys.c.
 *
 * Order of checks in rw_jwt_verify: length (ETOOLARGE, before any decoding),
 * segments and header (EMALFORMED), alg (EALG), payload and signature
 * decoding, key selection and signature (ENOKEY / EALG / ESIGNATURE), then the
 * payload's JSON (EMALFORMED) and claims. Nothing in the payload is read before
 * its signature has been checked.
 *
 * Policy decisions:
 *  - no '=' padding in token segments (RFC 7515 2), so one token has one
 *    spelling; base64url with non-zero trailing bits is refused everywhere;
 *  - an empty signature segment is ESIGNATURE (after the alg and key checks,
 *    so that alg "none" tokens get EALG);
 *  - "crit" in the header (no extension is understood) and "b64" other than
 *    true are EMALFORMED; jku/x5u/jwk/x5c header fields are ignored: keys only
 *    ever come from the configured set;
 *  - an empty "kid" is the same as none;
 *  - exp/nbf/iat must be numbers; their integer part is used.
 */
#include "ringway/jwt.h"

#include <string.h>

#include "json.h"

/* clang-format off */

static const char *const err_text[] = {
    [RW_JWT_OK] = "ok",
    [RW_JWT_EMALFORMED] = "malformed token",
    [RW_JWT_ETOOLARGE] = "token too large",
    [RW_JWT_EALG] = "algorithm not allowed",
    [RW_JWT_ENOKEY] = "no matching key",
    [RW_JWT_ESIGNATURE] = "bad signature",
    [RW_JWT_EEXPIRED] = "token expired",
    [RW_JWT_ENOTYET] = "token not yet valid",
    [RW_JWT_ETOOOLD] = "token too old",
    [RW_JWT_EISSUER] = "issuer not accepted",
    [RW_JWT_EAUDIENCE] = "audience not accepted",
    [RW_JWT_ECLAIM] = "required claim missing",
};
/* clang-format on */

const char *rw_jwt_strerror(int err)
{
    if (err < 0 || (size_t)err >= sizeof err_text / sizeof err_text[0])
        return "unknown error";
    return err_text[err];
}

/* ---- base64url ---- */

/* Value + 1 of each base64url character, 0 for every other byte (a table:
 * one load per character on the request path). */
static const int8_t b64url_plus1[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

/* The value of a base64url character, -1 for any other byte. */
static inline int b64v(unsigned char c)
{
    return b64url_plus1[c] - 1;
}

/* Bytes that n unpadded base64url characters decode to; -1 when n % 4 == 1. */
static ssize_t b64url_decoded_len(size_t n)
{
    if (n % 4 == 1)
        return -1;
    return (ssize_t)(n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0));
}

ssize_t rw_base64url_decode(const char *in, size_t len, void *out, size_t cap)
{
    size_t pad = 0;
    if (!in && len)
        return -1;
    while (len > 0 && pad < 2 && in[len - 1] == '=') {
        len--;
        pad++;
    }
    if (pad && (len + pad) % 4 != 0)
        return -1;
    ssize_t n = b64url_decoded_len(len);
    if (n < 0 || (size_t)n > cap)
        return -1;
    const unsigned char *u = (const unsigned char *)in;
    uint8_t *o = out;
    size_t k = 0, i = 0;
    for (; i + 4 <= len; i += 4) { /* four characters, three bytes */
        int a = b64v(u[i]), b = b64v(u[i + 1]), c = b64v(u[i + 2]), d = b64v(u[i + 3]);
        if ((a | b | c | d) < 0)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        o[k++] = (uint8_t)(v >> 16);
        o[k++] = (uint8_t)(v >> 8);
        o[k++] = (uint8_t)v;
    }
    size_t rest = len - i; /* 0, 2 or 3 (1 was refused by the length check) */
    if (rest >= 2) {
        int a = b64v(u[i]), b = b64v(u[i + 1]), c = rest == 3 ? b64v(u[i + 2]) : 0;
        if ((a | b | c) < 0)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        /* non-zero bits after the last byte: not the canonical spelling */
        if ((rest == 2 && (v & 0xffff)) || (rest == 3 && (v & 0xff)))
            return -1;
        o[k++] = (uint8_t)(v >> 16);
        if (rest == 3)
            o[k++] = (uint8_t)(v >> 8);
    } else if (rest == 1) {
        return -1;
    }
    return (ssize_t)k;
}

/* ---- token layout ---- */

struct segment {
    const char *p;
    size_t len;
};

/* header.payload.signature: exactly two dots, header and payload non-empty. */
static int split_token(const char *tok, size_t len, struct segment seg[3])
{
    const char *end = tok + len, *p = tok;
    for (int i = 0; i < 3; i++) {
        const char *dot = i < 2 ? memchr(p, '.', (size_t)(end - p)) : NULL;
        if (i < 2 && !dot)
            return RW_JWT_EMALFORMED;
        seg[i].p = p;
        seg[i].len = (size_t)((dot ? dot : end) - p);
        p = dot ? dot + 1 : end;
    }
    if (memchr(seg[2].p, '.', seg[2].len) || seg[0].len == 0 || seg[1].len == 0)
        return RW_JWT_EMALFORMED;
    return RW_JWT_OK;
}

/* Decodes a segment at *room_p (advanced past it). */
static int decode_segment(const struct segment *s, char **room_p, size_t *room_len, size_t *out_len)
{
    ssize_t need = b64url_decoded_len(s->len);
    if (need < 0 || memchr(s->p, '=', s->len))
        return RW_JWT_EMALFORMED;
    if ((size_t)need > *room_len)
        return RW_JWT_ETOOLARGE;
    ssize_t n = rw_base64url_decode(s->p, s->len, *room_p, *room_len);
    if (n < 0)
        return RW_JWT_EMALFORMED;
    *out_len = (size_t)n;
    *room_p += n;
    *room_len -= (size_t)n;
    return RW_JWT_OK;
}

/* What the protected header says. */
struct jose_header {
    int alg;
    size_t kid_len; /* 0: no kid; RW_JWT_MAX_KID + 1: one longer than any key's */
    char kid[RW_JWT_MAX_KID + 1];
};

static int parse_header(const char *json, size_t len, struct jose_header *h)
{
    rw_json_val root, v;
    char name[16];
    if (!rw__json_parse(json, len, RW_JWT_MAX_DEPTH, &root) || root.type != RW_JSON_OBJECT)
        return RW_JWT_EMALFORMED;
    if (rw__json_member(&root, "crit", 4, &v))
        return RW_JWT_EMALFORMED;
    if (rw__json_member(&root, "b64", 3, &v) && v.type != RW_JSON_TRUE)
        return RW_JWT_EMALFORMED;
    if (!rw__json_member(&root, "alg", 3, &v) || v.type != RW_JSON_STRING)
        return RW_JWT_EMALFORMED;
    ssize_t n = rw__json_string(&v, name, sizeof name);
    h->alg = n < 0 ? RW_JWT_NONE : rw_jwt_alg_parse(name, (size_t)n);
    h->kid_len = 0;
    if (rw__json_member(&root, "kid", 3, &v)) {
        if (v.type != RW_JSON_STRING)
            return RW_JWT_EMALFORMED;
        n = rw__json_string(&v, h->kid, sizeof h->kid);
        h->kid_len = n < 0 ? RW_JWT_MAX_KID + 1 : (size_t)n;
    }
    return h->alg == RW_JWT_NONE ? RW_JWT_EALG : RW_JWT_OK;
}

int rw_jwt_verify(const rw_jwt_keyset *ks, const rw_jwt_policy *pol, const char *tok, size_t len,
                  int64_t now_s, char *scratch, size_t scratch_len, rw_jwt_token *out)
{
    struct segment seg[3];
    struct jose_header h;
    size_t hlen, plen, slen;
    int rc;
    if (len > RW_JWT_MAX_TOKEN)
        return RW_JWT_ETOOLARGE;
    if (!tok)
        return RW_JWT_EMALFORMED;
    if ((rc = split_token(tok, len, seg)) != RW_JWT_OK)
        return rc;
    char *room = scratch;
    size_t room_len = scratch ? scratch_len : 0;
    char *header = room;
    if ((rc = decode_segment(&seg[0], &room, &room_len, &hlen)) != RW_JWT_OK ||
        (rc = parse_header(header, hlen, &h)) != RW_JWT_OK)
        return rc;
    char *payload = room;
    if ((rc = decode_segment(&seg[1], &room, &room_len, &plen)) != RW_JWT_OK)
        return rc;
    const uint8_t *sig = (const uint8_t *)room;
    if ((rc = decode_segment(&seg[2], &room, &room_len, &slen)) != RW_JWT_OK)
        return rc;
    size_t signed_len = seg[1].len + 1 + seg[0].len; /* "header.payload" as sent */
    rc = rw__jwt_keyset_verify(ks, h.alg, h.kid, h.kid_len, tok, signed_len, sig, slen);
    if (rc != RW_JWT_OK)
        return rc;
    if ((rc = rw_jwt_check_claims(pol, payload, plen, now_s, out)) != RW_JWT_OK)
        return rc;
    if (out)
        out->alg = h.alg;
    return RW_JWT_OK;
}

/* ---- claims ---- */

struct times {
    int64_t exp, nbf, iat;
    bool has_exp, has_nbf, has_iat;
};

/* A numeric date claim: absent is fine, anything but an in-range number is
 * EMALFORMED. */
static int read_time(const rw_json_val *root, const char *name, int64_t *val, bool *has)
{
    rw_json_val v;
    *has = rw__json_member(root, name, strlen(name), &v);
    if (*has && !rw__json_int(&v, val))
        return RW_JWT_EMALFORMED;
    return RW_JWT_OK;
}

static int64_t add_sat(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t sub_sat(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r))
        return b < 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int check_times(const rw_jwt_policy *pol, const struct times *t, int64_t now)
{
    int64_t leeway = pol->leeway_s;
    if (pol->require_exp && !t->has_exp)
        return RW_JWT_ECLAIM;
    if (t->has_exp && now >= add_sat(t->exp, leeway))
        return RW_JWT_EEXPIRED;
    if (t->has_nbf && add_sat(now, leeway) < t->nbf)
        return RW_JWT_ENOTYET;
    if (t->has_iat && t->iat > add_sat(now, leeway))
        return RW_JWT_ENOTYET;
    if (pol->max_age_s) {
        if (!t->has_iat)
            return RW_JWT_ECLAIM;
        if (sub_sat(now, t->iat) > (int64_t)pol->max_age_s + leeway)
            return RW_JWT_ETOOOLD;
    }
    return RW_JWT_OK;
}

static bool audience_listed(const rw_jwt_policy *pol, const rw_json_val *s)
{
    for (size_t i = 0; i < pol->naudiences; i++)
        if (pol->audiences[i] && rw__json_string_eq(s, pol->audiences[i], strlen(pol->audiences[i])))
            return true;
    return false;
}

/* aud is a string or an array of strings; one of them must be listed. */
static int check_audience(const rw_jwt_policy *pol, const rw_json_val *root)
{
    rw_json_val aud, v;
    rw_json_iter it;
    if (pol->naudiences == 0)
        return RW_JWT_OK;
    if (!rw__json_member(root, "aud", 3, &aud))
        return RW_JWT_EAUDIENCE;
    if (aud.type == RW_JSON_STRING)
        return audience_listed(pol, &aud) ? RW_JWT_OK : RW_JWT_EAUDIENCE;
    if (aud.type != RW_JSON_ARRAY)
        return RW_JWT_EAUDIENCE;
    bool found = false;
    rw__json_iter_init(&it, &aud);
    while (rw__json_iter_next(&it, NULL, &v)) {
        if (v.type != RW_JSON_STRING)
            return RW_JWT_EAUDIENCE;
        found = found || audience_listed(pol, &v);
    }
    return found ? RW_JWT_OK : RW_JWT_EAUDIENCE;
}

static int check_issuer(const rw_jwt_policy *pol, const rw_json_val *root)
{
    rw_json_val v;
    if (!pol->issuer)
        return RW_JWT_OK;
    if (!rw__json_member(root, "iss", 3, &v) || !rw__json_string_eq(&v, pol->issuer, strlen(pol->issuer)))
        return RW_JWT_EISSUER;
    return RW_JWT_OK;
}

static int check_required(const rw_jwt_policy *pol, const rw_json_val *root)
{
    rw_json_val v;
    for (size_t i = 0; i < pol->nrequired; i++)
        if (pol->required[i] && !rw__json_member(root, pol->required[i], strlen(pol->required[i]), &v))
            return RW_JWT_ECLAIM;
    return RW_JWT_OK;
}

int rw_jwt_check_claims(const rw_jwt_policy *pol, const char *payload, size_t len, int64_t now_s,
                        rw_jwt_token *out)
{
    static const rw_jwt_policy no_policy;
    rw_json_val root;
    struct times t;
    int rc;
    if (!pol)
        pol = &no_policy;
    if (!rw__json_parse(payload, len, RW_JWT_MAX_DEPTH, &root) || root.type != RW_JSON_OBJECT)
        return RW_JWT_EMALFORMED;
    if ((rc = read_time(&root, "exp", &t.exp, &t.has_exp)) != RW_JWT_OK ||
        (rc = read_time(&root, "nbf", &t.nbf, &t.has_nbf)) != RW_JWT_OK ||
        (rc = read_time(&root, "iat", &t.iat, &t.has_iat)) != RW_JWT_OK)
        return rc;
    if ((rc = check_times(pol, &t, now_s)) != RW_JWT_OK || (rc = check_issuer(pol, &root)) != RW_JWT_OK ||
        (rc = check_audience(pol, &root)) != RW_JWT_OK || (rc = check_required(pol, &root)) != RW_JWT_OK)
        return rc;
    if (out) {
        out->payload = payload;
        out->payload_len = len;
        out->exp = t.has_exp ? t.exp : INT64_MAX;
        out->iat = t.has_iat ? t.iat : INT64_MIN;
        out->nbf = t.has_nbf ? t.nbf : INT64_MIN;
        out->has_exp = t.has_exp;
        out->has_iat = t.has_iat;
        out->has_nbf = t.has_nbf;
    }
    return RW_JWT_OK;
}

int rw_jwt_check_times(const rw_jwt_policy *pol, const rw_jwt_token *tok, int64_t now_s)
{
    static const rw_jwt_policy no_policy;
    struct times t = {
        .exp = tok->exp,
        .nbf = tok->nbf,
        .iat = tok->iat,
        .has_exp = tok->has_exp,
        .has_nbf = tok->has_nbf,
        .has_iat = tok->has_iat,
    };
    return check_times(pol ? pol : &no_policy, &t, now_s);
}

/* ---- claims as header text ---- */

static bool header_safe(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/* Appends one scalar (string unescaped; number or boolean as written) at
 * buf[*n], keeping room for the terminating NUL. */
static bool append_scalar(const rw_json_val *v, char *buf, size_t cap, size_t *n)
{
    size_t room = cap - *n;
    if (v->type == RW_JSON_STRING) {
        ssize_t k = rw__json_string(v, buf + *n, room);
        if (k < 0 || !header_safe(buf + *n, (size_t)k))
            return false;
        *n += (size_t)k;
        return true;
    }
    if (v->type != RW_JSON_NUMBER && v->type != RW_JSON_TRUE && v->type != RW_JSON_FALSE)
        return false;
    if (v->len >= room)
        return false;
    memcpy(buf + *n, v->p, v->len);
    *n += v->len;
    buf[*n] = '\0';
    return true;
}

static bool append_array(const rw_json_val *arr, char *buf, size_t cap, size_t *n)
{
    rw_json_iter it;
    rw_json_val v;
    bool first = true;
    rw__json_iter_init(&it, arr);
    while (rw__json_iter_next(&it, NULL, &v)) {
        if (!first) {
            if (cap - *n <= 2)
                return false;
            memcpy(buf + *n, ", ", 2);
            *n += 2;
        }
        first = false;
        if (!append_scalar(&v, buf, cap, n))
            return false;
    }
    buf[*n] = '\0';
    return true;
}

ssize_t rw_jwt_claim_text(const char *payload, size_t len, const char *name, char *buf, size_t cap)
{
    rw_json_val root, v;
    size_t n = 0;
    bool ok;
    if (!name || !buf || cap == 0)
        return -1;
    buf[0] = '\0';
    if (!rw__json_parse(payload, len, RW_JWT_MAX_DEPTH, &root) || root.type != RW_JSON_OBJECT ||
        !rw__json_member(&root, name, strlen(name), &v))
        return -1;
    ok = v.type == RW_JSON_ARRAY ? append_array(&v, buf, cap, &n) : append_scalar(&v, buf, cap, &n);
    if (!ok) {
        buf[0] = '\0';
        return -1;
    }
    return (ssize_t)n;
}
