/* config_jwt.c - the jwt filter's settings: where the token is read from,
 * the keys (secrets and PEM keys, inline, from the environment or from
 * files, each loaded once at load time so a bad one is reported with its
 * line), JWKS sources, the claims checked and the claims forwarded as
 * headers. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_int.h"
#include "ringway/common.h"
#include "ringway/jwt.h"

/* A file path from the config, in the arena: a relative path is taken from
 * the config file's directory (kept as written for the embedded config). */
int rw__cf_resolve_path(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char *path,
                        char **out)
{
    const char *slash = strrchr(l->name, '/');
    if (path[0] == '/' || slash == NULL || l->name[0] == '<')
        return (*out = rw__cf_dup_mem(l, n, path, strlen(path))) ? 0 : -1;
    char full[4096];
    int w = snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - l->name), l->name, path);
    if (w < 0 || (size_t)w >= sizeof(full))
        return rw__cf_fail(l, n, "%s: path too long", where);
    return (*out = rw__cf_dup_mem(l, n, full, (size_t)w)) ? 0 : -1;
}

/* Reads a whole small file (a path from resolve_path) into the arena, NUL-terminated. */
static int read_small_file(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char *p,
                           char **out, size_t *len_out)
{
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rw__cf_fail(l, n, "%s: cannot open %s: %s", where, p, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)(1u << 20)) {
        close(fd);
        return rw__cf_fail(l, n, "%s: %s is not a regular file of at most 1 MiB", where, p);
    }
    char *buf = rw__cf_alloc(l->arena, (size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return rw__cf_oom(l, n);
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len_out = got;
    return 0;
}

#define RW_MAX_CLAIM_HEADERS 12

/* Headers a claim must never set: framing, routing, hop-by-hop, and the ones
 * ringway sets itself. */
static bool reserved_header(const char *name)
{
    static const char *const reserved[] = {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
        "expect",
        "via",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-real-ip",
        "x-request-id",
        "x-consumer-id",
        "x-consumer-username",
        "x-consumer-groups",
        "cookie",
        "authorization",
    };
    for (size_t i = 0; i < RW_ARRAY_LEN(reserved); i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return true;
    return false;
}

/* "bearer", "header:NAME", "query:NAME", "cookie:NAME". */
static int parse_cred_from(rw_cf_loader *l, const yaml_node_t *n, const char *where, bool bearer_ok,
                           int *from, char **name)
{
    const char *s = "";
    if (rw__cf_str_of(l, n, where, &s))
        return -1;
    if (bearer_ok && !strcmp(s, "bearer")) {
        *from = RW_FROM_BEARER;
        return 0;
    }
    static const struct {
        const char *prefix;
        int from;
    } kinds[] = {{"header:", RW_FROM_HEADER}, {"query:", RW_FROM_QUERY}, {"cookie:", RW_FROM_COOKIE}};
    for (size_t i = 0; i < RW_ARRAY_LEN(kinds); i++) {
        size_t pl = strlen(kinds[i].prefix);
        if (strncmp(s, kinds[i].prefix, pl) != 0 || (!bearer_ok && kinds[i].from == RW_FROM_COOKIE))
            continue;
        if (s[pl] == '\0')
            return rw__cf_fail(l, n, "%s: '%s' needs a name after the colon", where, s);
        if (kinds[i].from == RW_FROM_HEADER && rw__cf_check_token(l, n, where, "header name", s + pl))
            return -1;
        *from = kinds[i].from;
        return (*name = rw__cf_dup_mem(l, n, s + pl, strlen(s + pl))) ? 0 : -1;
    }
    return rw__cf_fail(
        l, n, "%s: expected %s, got '%s'", where,
        bearer_ok ? "bearer, header:NAME, query:NAME or cookie:NAME" : "header:NAME or query:NAME", s);
}

/* A jwt key as read: the key, and what only matters while reading it. */
typedef struct jwt_key_in {
    rw_jwt_key_cfg k;
    bool base64; /* secret_base64: the secret is base64 or base64url text */
} jwt_key_in;

static int key_jwt_alg(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_jwt_key_cfg *k = &((jwt_key_in *)obj)->k;
    const char *s = "";

    (void)key;
    if (rw__cf_str_of(l, v, where, &s))
        return -1;
    if ((k->alg = rw_jwt_alg_parse(s, strlen(s))) == RW_JWT_NONE)
        return rw__cf_fail(l, v,
                           "%s: unsupported algorithm '%s' (HS256/384/512, RS256/384/512, PS256/384/512, "
                           "ES256/384, EdDSA)",
                           where, s);
    return 0;
}

static int key_jwt_secret(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_jwt_key_cfg *k = &((jwt_key_in *)obj)->k;

    (void)key;
    if (rw__cf_get_string(l, v, where, &k->secret))
        return -1;
    if (k->secret)
        k->secret_len = strlen(k->secret);
    return 0;
}

static int key_jwt_secret_env(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                              void *obj)
{
    rw_jwt_key_cfg *k = &((jwt_key_in *)obj)->k;
    const char *s = "";

    (void)key;
    if (rw__cf_str_of(l, v, where, &s))
        return -1;
    const char *e = getenv(s);
    if (e == NULL || *e == '\0')
        return rw__cf_fail(l, v, "%s: environment variable %s is not set", where, s);
    if (!(k->secret = rw__cf_dup_mem(l, v, e, strlen(e))))
        return -1;
    k->secret_len = strlen(e);
    return 0;
}

static int key_jwt_secret_file(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                               void *obj)
{
    rw_jwt_key_cfg *k = &((jwt_key_in *)obj)->k;
    const char *s = "";
    char *path = NULL;

    (void)key;
    if (rw__cf_str_of(l, v, where, &s) || rw__cf_resolve_path(l, v, where, s, &path) ||
        read_small_file(l, v, where, path, &k->secret, &k->secret_len))
        return -1;
    while (k->secret_len > 0 &&
           (k->secret[k->secret_len - 1] == '\n' || k->secret[k->secret_len - 1] == '\r'))
        k->secret[--k->secret_len] = '\0'; /* a trailing newline is never part of the secret */
    return 0;
}

static int key_jwt_pem_file(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                            void *obj)
{
    rw_jwt_key_cfg *k = &((jwt_key_in *)obj)->k;
    const char *s = "";
    char *path = NULL;
    size_t len;

    (void)key;
    if (rw__cf_str_of(l, v, where, &s) || rw__cf_resolve_path(l, v, where, s, &path))
        return -1;
    return read_small_file(l, v, where, path, &k->pem, &len);
}

enum { JK_ALG, JK_KID, JK_SECRET, JK_SECRET_ENV, JK_SECRET_FILE, JK_SECRET_BASE64, JK_PEM, JK_PEM_FILE };

/* Exactly one source of key material, of the kind alg needs; the key must load. */
static int check_jwt_key(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj,
                         yaml_node_t *const *seen)
{
    static const int sources[] = {JK_SECRET, JK_SECRET_ENV, JK_SECRET_FILE, JK_PEM, JK_PEM_FILE};
    jwt_key_in *in = obj;
    rw_jwt_key_cfg *k = &in->k;
    const yaml_node_t *material = NULL;
    size_t count = 0;
    char err[256];

    for (size_t i = 0; i < RW_ARRAY_LEN(sources); i++) {
        if (seen[sources[i]]) {
            material = seen[sources[i]];
            count++;
        }
    }
    if (count != 1)
        return rw__cf_fail(l, n, "%s: needs exactly one of secret, secret_env, secret_file, pem, pem_file",
                           where);
    bool hmac = k->alg == RW_JWT_HS256 || k->alg == RW_JWT_HS384 || k->alg == RW_JWT_HS512;
    if (hmac != (k->secret != NULL))
        return rw__cf_fail(l, material, "%s: %s needs %s", where, rw_jwt_alg_name(k->alg),
                           hmac ? "a secret (secret, secret_env or secret_file)"
                                : "a public key (pem or pem_file)");
    if (in->base64 && k->secret) {
        /* base64 or base64url, padded or not */
        for (size_t i = 0; i < k->secret_len; i++)
            k->secret[i] = k->secret[i] == '+' ? '-' : k->secret[i] == '/' ? '_' : k->secret[i];
        ssize_t dl = rw_base64url_decode(k->secret, k->secret_len, k->secret, k->secret_len);
        if (dl < 0)
            return rw__cf_fail(l, material, "%s: the secret is not valid base64", where);
        k->secret_len = (size_t)dl;
    }
    /* Load the key once now so a bad one is reported with its line. */
    rw_jwt_keyset *ks = rw_jwt_keyset_new();
    if (!ks)
        return rw__cf_oom(l, n);
    int rc = k->secret
                 ? rw_jwt_keyset_add_secret(ks, k->alg, k->kid, k->secret, k->secret_len, err, sizeof(err))
                 : rw_jwt_keyset_add_pem(ks, k->alg, k->kid, k->pem, strlen(k->pem), err, sizeof(err));
    rw_jwt_keyset_free(ks);
    if (rc != 0)
        return rw__cf_fail(l, material, "%s: %s", where, err);
    return 0;
}

static const rw_cf_key jwt_key_keys[] = {
    [JK_ALG] = {.name = "alg", .parse = key_jwt_alg, .flags = RW_CF_REQUIRED},
    [JK_KID] = RW_CF_STRING("kid", jwt_key_in, k.kid),
    [JK_SECRET] = {.name = "secret", .parse = key_jwt_secret},
    [JK_SECRET_ENV] = {.name = "secret_env", .parse = key_jwt_secret_env},
    [JK_SECRET_FILE] = {.name = "secret_file", .parse = key_jwt_secret_file},
    [JK_SECRET_BASE64] = RW_CF_BOOL("secret_base64", jwt_key_in, base64, false),
    [JK_PEM] = RW_CF_STRING("pem", jwt_key_in, k.pem),
    [JK_PEM_FILE] = {.name = "pem_file", .parse = key_jwt_pem_file},
};
static const rw_cf_map jwt_key_map = RW_CF_MAP_OF("jwt key", jwt_key_keys, check_jwt_key);

static int parse_jwt_key(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_jwt_key_cfg *k)
{
    jwt_key_in in = {.k = *k};

    rw__cf_map_defaults(&jwt_key_map, &in);
    in.k.line = (int)rw__cf_line_of(n);
    int rc = rw__cf_map_parse(l, &jwt_key_map, n, where, &in, NULL);
    *k = in.k;
    return rc;
}

static int key_jwt_from(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_jwt_cfg *j = obj;
    (void)key;
    return parse_cred_from(l, v, where, true, &j->from, &j->from_name);
}

static int key_jwt_keys(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_jwt_cfg *j = obj;
    char iw[420];

    (void)key;
    if (rw__cf_is_null(v))
        return 0;
    if (rw__cf_check_list(l, v, where, false))
        return -1;
    j->nkeys = SEQ_LEN(v);
    if (!(j->keys = rw__cf_array(l->arena, j->nkeys ? j->nkeys : 1, sizeof(*j->keys))))
        return rw__cf_oom(l, v);
    for (size_t i = 0; i < j->nkeys; i++) {
        if (parse_jwt_key(l, rw__cf_list_item(l, v, i), rw__cf_item_where(iw, sizeof(iw), v, where, i),
                          &j->keys[i]))
            return -1;
    }
    return 0;
}

/* jwks_file: read and checked for at least one usable key now. */
static int key_jwks_file(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_jwt_cfg *j = obj;
    char *doc, err[256];
    size_t len;

    (void)key;
    if (rw__cf_get_string(l, v, where, &j->jwks_file))
        return -1;
    if (!j->jwks_file)
        return 0;
    if (rw__cf_resolve_path(l, v, where, j->jwks_file, &j->jwks_file) ||
        read_small_file(l, v, where, j->jwks_file, &doc, &len))
        return -1;
    rw_jwt_keyset *ks = rw_jwt_keyset_new();
    int got = ks ? rw_jwt_keyset_add_jwks(ks, doc, len, err, sizeof(err)) : -1;
    rw_jwt_keyset_free(ks);
    if (got < 0)
        return rw__cf_fail(l, v, "%s: %s", where, ks ? err : "out of memory");
    if (got == 0)
        return rw__cf_fail(l, v, "%s: no usable key in %s", where, j->jwks_file);
    return 0;
}

static int key_jwks_url(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_jwt_cfg *j = obj;

    (void)key;
    if (rw__cf_get_string(l, v, where, &j->jwks_url))
        return -1;
    if (j->jwks_url && strncmp(j->jwks_url, "https://", 8) && strncmp(j->jwks_url, "http://", 7))
        return rw__cf_fail(l, v, "%s: '%s' must start with https:// or http://", where, j->jwks_url);
    return 0;
}

/* jwks_ca_file: must be readable now. */
static int key_jwks_ca_file(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                            void *obj)
{
    rw_jwt_cfg *j = obj;
    char *doc;
    size_t len;

    (void)key;
    if (rw__cf_get_string(l, v, where, &j->jwks_ca_file))
        return -1;
    if (!j->jwks_ca_file)
        return 0;
    if (rw__cf_resolve_path(l, v, where, j->jwks_ca_file, &j->jwks_ca_file))
        return -1;
    return read_small_file(l, v, where, j->jwks_ca_file, &doc, &len);
}

/* A duration of at least key->min ms, stored in whole seconds. */
static int key_seconds(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    uint32_t ms = 0;

    if (rw__cf_get_ms(l, v, where, (uint32_t)key->min, &ms))
        return -1;
    *RW_CF_FIELD(obj, key, uint32_t) = ms / 1000;
    return 0;
}

/* claims_to_headers: {claim: Header-Name}; null: none (the default is sub -> X-User-ID). */
static int key_claims_to_headers(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                                 void *obj)
{
    rw_jwt_cfg *j = obj;
    char iw[420];

    (void)key;
    if (rw__cf_is_null(v)) {
        j->nclaims = 0;
        return 0;
    }
    if (rw__cf_check_map(l, v, where))
        return -1;
    if (!(j->claims_to_headers = rw__cf_array(l->arena, MAP_LEN(v) ? MAP_LEN(v) : 1, sizeof(rw_kv))))
        return rw__cf_oom(l, v);
    MAP_EACH(v, cp)
    {
        yaml_node_t *ck = rw__cf_node_at(l, cp->key), *cv = rw__cf_node_at(l, cp->value);
        rw_kv *kv = &j->claims_to_headers[j->nclaims];
        rw__cf_wheref(iw, sizeof(iw), "%s.%s", where, rw__cf_scalar_text(ck));
        if (rw__cf_get_string(l, ck, iw, &kv->name) || rw__cf_get_string(l, cv, iw, &kv->value) ||
            (kv->value == NULL && rw__cf_fail(l, cv, "%s: expected a header name", iw)) ||
            rw__cf_check_token(l, cv, iw, "header name", kv->value))
            return -1;
        if (reserved_header(kv->value))
            return rw__cf_fail(l, cv, "%s: %s is set by ringway or the HTTP framing, not by a claim", iw,
                               kv->value);
        if (++j->nclaims > RW_MAX_CLAIM_HEADERS)
            return rw__cf_fail(l, cv, "%s: at most %d claims can be mapped to headers", where,
                               RW_MAX_CLAIM_HEADERS);
    }
    return 0;
}

enum {
    JWT_FROM,
    JWT_KEYS,
    JWT_JWKS_FILE,
    JWT_JWKS_URL,
    JWT_JWKS_CA_FILE,
    JWT_JWKS_REFRESH,
    JWT_ISSUER,
    JWT_AUDIENCE,
    JWT_REQUIRED_CLAIMS,
    JWT_LEEWAY,
    JWT_MAX_AGE,
    JWT_REQUIRE_EXP,
    JWT_CLAIMS_TO_HEADERS,
    JWT_CONSUMER_CLAIM,
    JWT_HIDE_CREDENTIALS,
    JWT_CACHE_ENTRIES,
};

static int check_jwt(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj, yaml_node_t *const *seen)
{
    rw_jwt_cfg *j = obj;

    if (j->nkeys == 0 && !j->jwks_file && !j->jwks_url)
        return rw__cf_fail(l, n, "%s: needs keys, jwks_file or jwks_url", where);
    if (j->jwks_file && j->jwks_url)
        return rw__cf_fail(l, n, "%s: jwks_file and jwks_url are exclusive", where);
    if (seen[JWT_CLAIMS_TO_HEADERS] == NULL) { /* default: sub -> X-User-ID */
        if (!(j->claims_to_headers = rw__cf_array(l->arena, 1, sizeof(rw_kv))) ||
            !(j->claims_to_headers[0].name = rw__cf_dup_mem(l, n, "sub", 3)) ||
            !(j->claims_to_headers[0].value = rw__cf_dup_mem(l, n, "X-User-ID", 9)))
            return rw__cf_oom(l, n);
        j->nclaims = 1;
    }
    return 0;
}

static const rw_cf_key jwt_keys[] = {
    [JWT_FROM] = RW_CF_CUSTOM("from", key_jwt_from, rw_jwt_cfg, from, int, RW_CF_T_INT, RW_FROM_BEARER, 0),
    [JWT_KEYS] = {.name = "keys", .parse = key_jwt_keys},
    [JWT_JWKS_FILE] = {.name = "jwks_file", .parse = key_jwks_file},
    [JWT_JWKS_URL] = {.name = "jwks_url", .parse = key_jwks_url},
    [JWT_JWKS_CA_FILE] = {.name = "jwks_ca_file", .parse = key_jwks_ca_file},
    [JWT_JWKS_REFRESH] = RW_CF_MS("jwks_refresh", rw_jwt_cfg, jwks_refresh_ms, 1000, 300000),
    [JWT_ISSUER] = RW_CF_STRING("issuer", rw_jwt_cfg, issuer),
    [JWT_AUDIENCE] = RW_CF_STR_LIST("audience", rw_jwt_cfg, audiences, naudiences),
    [JWT_REQUIRED_CLAIMS] = RW_CF_STR_LIST("required_claims", rw_jwt_cfg, required_claims, nrequired),
    [JWT_LEEWAY] = {.name = "leeway",
                    .parse = key_seconds,
                    .offset = RW_CF_OFF(rw_jwt_cfg, leeway_s, uint32_t),
                    .type = RW_CF_T_U32,
                    .min = 0},
    [JWT_MAX_AGE] = {.name = "max_age",
                     .parse = key_seconds,
                     .offset = RW_CF_OFF(rw_jwt_cfg, max_age_s, uint32_t),
                     .type = RW_CF_T_U32,
                     .min = 1000},
    [JWT_REQUIRE_EXP] = RW_CF_BOOL("require_exp", rw_jwt_cfg, require_exp, true),
    [JWT_CLAIMS_TO_HEADERS] = {.name = "claims_to_headers", .parse = key_claims_to_headers},
    [JWT_CONSUMER_CLAIM] = RW_CF_STRING("consumer_claim", rw_jwt_cfg, consumer_claim),
    [JWT_HIDE_CREDENTIALS] = RW_CF_BOOL("hide_credentials", rw_jwt_cfg, hide_credentials, false),
    [JWT_CACHE_ENTRIES] = RW_CF_U32("cache_entries", rw_jwt_cfg, cache_entries, 0, 1u << 20, 4096),
};
static const rw_cf_map jwt_map = RW_CF_MAP_OF("jwt filter", jwt_keys, check_jwt);

int rw__cf_parse_jwt(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_filter_cfg *f)
{
    rw__cf_map_defaults(&jwt_map, &f->u.jwt);
    return rw__cf_map_parse(l, &jwt_map, n, where, &f->u.jwt, NULL);
}
