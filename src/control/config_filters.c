/* config_filters.c - access control: the filter lists (key_auth, jwt, acl,
 * rate_limit) at top level, on services and on routes, the rate tiers and
 * the consumers with their keys and groups. */
#include <ctype.h>
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

/* ------------------------------------------------------------------------ */
/* filters */

/* A file path from the config, in the arena: a relative path is taken from
 * the config file's directory (kept as written for the embedded config). */
static int resolve_path(rw_cf_loader *l, const yaml_node_t *n, const char *where, const char *path,
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

static int parse_jwt_key(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_jwt_key_cfg *k)
{
    static const char keys[] = "alg, kid, secret, secret_env, secret_file, secret_base64, pem, pem_file";
    char w[400];
    const yaml_node_t *alg_node = NULL, *material = NULL;
    bool b64 = false;
    int sources = 0;
    char err[256];

    k->line = (int)rw__cf_line_of(n);
    if (rw__cf_check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *kk = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        const char *key = rw__cf_scalar_text(kk);
        const char *s = "";
        int rc = 0;
        rw__cf_wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "alg")) {
            alg_node = v;
            if ((rc = rw__cf_str_of(l, v, w, &s)) == 0 &&
                (k->alg = rw_jwt_alg_parse(s, strlen(s))) == RW_JWT_NONE)
                rc = rw__cf_fail(
                    l, v,
                    "%s: unsupported algorithm '%s' (HS256/384/512, RS256/384/512, PS256/384/512, "
                    "ES256/384, EdDSA)",
                    w, s);
        } else if (!strcmp(key, "kid")) {
            rc = rw__cf_get_string(l, v, w, &k->kid);
        } else if (!strcmp(key, "secret")) {
            sources++, material = v;
            if ((rc = rw__cf_get_string(l, v, w, &k->secret)) == 0 && k->secret)
                k->secret_len = strlen(k->secret);
        } else if (!strcmp(key, "secret_env")) {
            sources++, material = v;
            if ((rc = rw__cf_str_of(l, v, w, &s)) == 0) {
                const char *e = getenv(s);
                if (e == NULL || *e == '\0')
                    rc = rw__cf_fail(l, v, "%s: environment variable %s is not set", w, s);
                else if (!(k->secret = rw__cf_dup_mem(l, v, e, strlen(e))))
                    rc = -1;
                else
                    k->secret_len = strlen(e);
            }
        } else if (!strcmp(key, "secret_file")) {
            sources++, material = v;
            char *path = NULL;
            if ((rc = rw__cf_str_of(l, v, w, &s)) == 0 && (rc = resolve_path(l, v, w, s, &path)) == 0 &&
                (rc = read_small_file(l, v, w, path, &k->secret, &k->secret_len)) == 0)
                while (k->secret_len > 0 &&
                       (k->secret[k->secret_len - 1] == '\n' || k->secret[k->secret_len - 1] == '\r'))
                    k->secret[--k->secret_len] = '\0'; /* a trailing newline is never part of the secret */
        } else if (!strcmp(key, "secret_base64")) {
            rc = rw__cf_get_bool(l, v, w, &b64);
        } else if (!strcmp(key, "pem")) {
            sources++, material = v;
            rc = rw__cf_get_string(l, v, w, &k->pem);
        } else if (!strcmp(key, "pem_file")) {
            sources++, material = v;
            size_t len;
            char *path = NULL;
            if ((rc = rw__cf_str_of(l, v, w, &s)) == 0 && (rc = resolve_path(l, v, w, s, &path)) == 0)
                rc = read_small_file(l, v, w, path, &k->pem, &len);
        } else {
            rc = rw__cf_unknown_key(l, kk, where, "jwt key", keys);
        }
        if (rc)
            return -1;
    }
    if (!alg_node)
        return rw__cf_fail(l, n, "%s: alg is required", where);
    if (sources != 1)
        return rw__cf_fail(l, n, "%s: needs exactly one of secret, secret_env, secret_file, pem, pem_file",
                           where);
    bool hmac = k->alg == RW_JWT_HS256 || k->alg == RW_JWT_HS384 || k->alg == RW_JWT_HS512;
    if (hmac != (k->secret != NULL))
        return rw__cf_fail(l, material, "%s: %s needs %s", where, rw_jwt_alg_name(k->alg),
                           hmac ? "a secret (secret, secret_env or secret_file)"
                                : "a public key (pem or pem_file)");
    if (b64 && k->secret) {
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

static int parse_jwt(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_jwt_cfg *j)
{
    static const char keys[] =
        "from, keys, jwks_file, jwks_url, jwks_ca_file, jwks_refresh, issuer, audience, "
        "required_claims, leeway, max_age, require_exp, claims_to_headers, consumer_claim, "
        "hide_credentials, cache_entries";
    char w[400], iw[420];
    const yaml_node_t *c2h = NULL;

    j->from = RW_FROM_BEARER;
    j->jwks_refresh_ms = 300000;
    j->require_exp = true;
    j->cache_entries = 4096;
    if (rw__cf_check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        const char *key = rw__cf_scalar_text(k);
        uint32_t ms = 0;
        int rc = 0;
        rw__cf_wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "from"))
            rc = parse_cred_from(l, v, w, true, &j->from, &j->from_name);
        else if (!strcmp(key, "keys")) {
            if (rw__cf_is_null(v))
                continue;
            if ((rc = rw__cf_check_list(l, v, w, false)) == 0) {
                j->nkeys = SEQ_LEN(v);
                if (!(j->keys = rw__cf_array(l->arena, j->nkeys ? j->nkeys : 1, sizeof(*j->keys))))
                    return rw__cf_oom(l, v);
                for (size_t i = 0; i < j->nkeys && rc == 0; i++)
                    rc = parse_jwt_key(l, rw__cf_list_item(l, v, i),
                                       rw__cf_item_where(iw, sizeof(iw), v, w, i), &j->keys[i]);
            }
        } else if (!strcmp(key, "jwks_file")) {
            if ((rc = rw__cf_get_string(l, v, w, &j->jwks_file)) == 0 && j->jwks_file &&
                (rc = resolve_path(l, v, w, j->jwks_file, &j->jwks_file)) == 0) {
                char *doc, err[256];
                size_t len;
                if ((rc = read_small_file(l, v, w, j->jwks_file, &doc, &len)) == 0) {
                    rw_jwt_keyset *ks = rw_jwt_keyset_new();
                    int got = ks ? rw_jwt_keyset_add_jwks(ks, doc, len, err, sizeof(err)) : -1;
                    rw_jwt_keyset_free(ks);
                    if (got < 0)
                        rc = rw__cf_fail(l, v, "%s: %s", w, ks ? err : "out of memory");
                    else if (got == 0)
                        rc = rw__cf_fail(l, v, "%s: no usable key in %s", w, j->jwks_file);
                }
            }
        } else if (!strcmp(key, "jwks_url")) {
            if ((rc = rw__cf_get_string(l, v, w, &j->jwks_url)) == 0 && j->jwks_url &&
                strncmp(j->jwks_url, "https://", 8) && strncmp(j->jwks_url, "http://", 7))
                rc = rw__cf_fail(l, v, "%s: '%s' must start with https:// or http://", w, j->jwks_url);
        } else if (!strcmp(key, "jwks_ca_file")) {
            char *doc;
            size_t len;
            if ((rc = rw__cf_get_string(l, v, w, &j->jwks_ca_file)) == 0 && j->jwks_ca_file &&
                (rc = resolve_path(l, v, w, j->jwks_ca_file, &j->jwks_ca_file)) == 0) /* readable now */
                rc = read_small_file(l, v, w, j->jwks_ca_file, &doc, &len);
        } else if (!strcmp(key, "jwks_refresh"))
            rc = rw__cf_get_ms(l, v, w, 1000, &j->jwks_refresh_ms);
        else if (!strcmp(key, "issuer"))
            rc = rw__cf_get_string(l, v, w, &j->issuer);
        else if (!strcmp(key, "audience"))
            rc = rw__cf_get_str_list(l, v, w, &j->audiences, &j->naudiences);
        else if (!strcmp(key, "required_claims"))
            rc = rw__cf_get_str_list(l, v, w, &j->required_claims, &j->nrequired);
        else if (!strcmp(key, "leeway")) {
            if ((rc = rw__cf_get_ms(l, v, w, 0, &ms)) == 0)
                j->leeway_s = ms / 1000;
        } else if (!strcmp(key, "max_age")) {
            if ((rc = rw__cf_get_ms(l, v, w, 1000, &ms)) == 0)
                j->max_age_s = ms / 1000;
        } else if (!strcmp(key, "require_exp"))
            rc = rw__cf_get_bool(l, v, w, &j->require_exp);
        else if (!strcmp(key, "claims_to_headers")) {
            c2h = v;
            if (rw__cf_is_null(v)) { /* explicitly none */
                j->nclaims = 0;
                continue;
            }
            if ((rc = rw__cf_check_map(l, v, w)) == 0) {
                if (!(j->claims_to_headers =
                          rw__cf_array(l->arena, MAP_LEN(v) ? MAP_LEN(v) : 1, sizeof(rw_kv))))
                    return rw__cf_oom(l, v);
                MAP_EACH(v, cp)
                {
                    yaml_node_t *ck = rw__cf_node_at(l, cp->key), *cv = rw__cf_node_at(l, cp->value);
                    rw_kv *kv = &j->claims_to_headers[j->nclaims];
                    rw__cf_wheref(iw, sizeof(iw), "%s.%s", w, rw__cf_scalar_text(ck));
                    if (rw__cf_get_string(l, ck, iw, &kv->name) || rw__cf_get_string(l, cv, iw, &kv->value) ||
                        (kv->value == NULL && rw__cf_fail(l, cv, "%s: expected a header name", iw)) ||
                        rw__cf_check_token(l, cv, iw, "header name", kv->value))
                        return -1;
                    if (reserved_header(kv->value))
                        return rw__cf_fail(l, cv,
                                           "%s: %s is set by ringway or the HTTP framing, not by a claim", iw,
                                           kv->value);
                    if (++j->nclaims > RW_MAX_CLAIM_HEADERS)
                        return rw__cf_fail(l, cv, "%s: at most %d claims can be mapped to headers", w,
                                           RW_MAX_CLAIM_HEADERS);
                }
            }
        } else if (!strcmp(key, "consumer_claim"))
            rc = rw__cf_get_string(l, v, w, &j->consumer_claim);
        else if (!strcmp(key, "hide_credentials"))
            rc = rw__cf_get_bool(l, v, w, &j->hide_credentials);
        else if (!strcmp(key, "cache_entries"))
            rc = rw__cf_get_u32(l, v, w, 0, 1u << 20, &j->cache_entries);
        else
            rc = rw__cf_unknown_key(l, k, where, "jwt filter", keys);
        if (rc)
            return -1;
    }
    if (j->nkeys == 0 && !j->jwks_file && !j->jwks_url)
        return rw__cf_fail(l, n, "%s: needs keys, jwks_file or jwks_url", where);
    if (j->jwks_file && j->jwks_url)
        return rw__cf_fail(l, n, "%s: jwks_file and jwks_url are exclusive", where);
    if (c2h == NULL) { /* default: sub -> X-User-ID */
        if (!(j->claims_to_headers = rw__cf_array(l->arena, 1, sizeof(rw_kv))) ||
            !(j->claims_to_headers[0].name = rw__cf_dup_mem(l, n, "sub", 3)) ||
            !(j->claims_to_headers[0].value = rw__cf_dup_mem(l, n, "X-User-ID", 9)))
            return rw__cf_oom(l, n);
        j->nclaims = 1;
    }
    return 0;
}

static int parse_key_auth(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_key_auth_cfg *k)
{
    static const char keys[] = "header, query, hide_credentials";
    char w[400];
    int names = 0;

    k->from = RW_FROM_HEADER;
    if (n != NULL && !rw__cf_is_null(n) && rw__cf_check_map(l, n, where))
        return -1;
    if (n != NULL && !rw__cf_is_null(n)) {
        MAP_EACH(n, pr)
        {
            yaml_node_t *kk = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
            const char *key = rw__cf_scalar_text(kk);
            int rc = 0;
            rw__cf_wheref(w, sizeof(w), "%s.%s", where, key);
            if (!strcmp(key, "header")) {
                names++;
                k->from = RW_FROM_HEADER;
                rc = rw__cf_get_string(l, v, w, &k->name);
                if (rc == 0 && k->name)
                    rc = rw__cf_check_token(l, v, w, "header name", k->name);
            } else if (!strcmp(key, "query")) {
                names++;
                k->from = RW_FROM_QUERY;
                rc = rw__cf_get_string(l, v, w, &k->name);
            } else if (!strcmp(key, "hide_credentials"))
                rc = rw__cf_get_bool(l, v, w, &k->hide_credentials);
            else
                rc = rw__cf_unknown_key(l, kk, where, "key_auth filter", keys);
            if (rc)
                return -1;
        }
    }
    if (names > 1)
        return rw__cf_fail(l, n, "%s: header and query are exclusive", where);
    if (!k->name && !(k->name = rw__cf_dup_mem(l, NULL, k->from == RW_FROM_QUERY ? "apikey" : "X-API-Key",
                                               k->from == RW_FROM_QUERY ? 6 : 9)))
        return -1;
    return 0;
}

int rw__cf_get_cidr_list(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_cidr **out, size_t *count)
{
    char **strs = NULL;
    char iw[420];
    if (rw__cf_get_str_list(l, n, where, &strs, count))
        return -1;
    if (*count == 0)
        return 0;
    if (!(*out = rw__cf_array(l->arena, *count, sizeof(rw_cidr))))
        return rw__cf_oom(l, n);
    for (size_t i = 0; i < *count; i++)
        if (rw_cidr_parse(strs[i], &(*out)[i]) != 0)
            return rw__cf_fail(l, rw__cf_list_item(l, n, i),
                               "%s: '%s' is not an address or CIDR range (host bits must be 0)",
                               rw__cf_item_where(iw, sizeof(iw), n, where, i), strs[i]);
    return 0;
}

static int parse_acl(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_acl_cfg *a)
{
    static const char keys[] = "allow_groups, deny_groups, allow_ips, deny_ips";
    char w[400];
    if (rw__cf_check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        const char *key = rw__cf_scalar_text(k);
        int rc = 0;
        rw__cf_wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "allow_groups"))
            rc = rw__cf_get_str_list(l, v, w, &a->allow_groups, &a->nallow_groups);
        else if (!strcmp(key, "deny_groups"))
            rc = rw__cf_get_str_list(l, v, w, &a->deny_groups, &a->ndeny_groups);
        else if (!strcmp(key, "allow_ips"))
            rc = rw__cf_get_cidr_list(l, v, w, &a->allow_ips, &a->nallow_ips);
        else if (!strcmp(key, "deny_ips"))
            rc = rw__cf_get_cidr_list(l, v, w, &a->deny_ips, &a->ndeny_ips);
        else
            rc = rw__cf_unknown_key(l, k, where, "acl filter", keys);
        if (rc)
            return -1;
    }
    if (!a->nallow_groups && !a->ndeny_groups && !a->nallow_ips && !a->ndeny_ips)
        return rw__cf_fail(l, n, "%s: needs allow_groups, deny_groups, allow_ips or deny_ips", where);
    return 0;
}

/* The period a rate was written with ("100/min" -> 60000). */
static uint32_t rate_window_ms(const char *s)
{
    const char *u = strchr(s, '/');
    if (!u)
        return 1000;
    u++;
    if (*u == 'm')
        return 60000;
    if (*u == 'h')
        return 3600000;
    if (*u == 'd')
        return 86400000;
    return 1000;
}

static int parse_rate_limit(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_rate_limit_cfg *r)
{
    static const char keys[] = "name, key, rate, burst, tier, scope, max_keys, headers";
    static const char *const scopes[] = {"local", "global"};
    char w[400], iw[420];
    const yaml_node_t *rate = NULL, *burst = NULL;

    r->key = RW_RLK_IP;
    r->max_keys = 65536;
    if (rw__cf_check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        const char *key = rw__cf_scalar_text(k);
        const char *s = "";
        int rc = 0;
        rw__cf_wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "name"))
            rc = rw__cf_get_name(l, v, w, &r->name);
        else if (!strcmp(key, "key")) {
            if ((rc = rw__cf_check_list(l, v, w, true)) != 0)
                return -1;
            r->key = 0;
            for (size_t i = 0; i < rw__cf_list_len(v) && rc == 0; i++) {
                yaml_node_t *it = rw__cf_list_item(l, v, i);
                rw__cf_item_where(iw, sizeof(iw), v, w, i);
                if ((rc = rw__cf_str_of(l, it, iw, &s)) != 0)
                    break;
                uint32_t bit = !strcmp(s, "consumer")              ? RW_RLK_CONSUMER
                               : !strcmp(s, "key")                 ? RW_RLK_CRED
                               : !strcmp(s, "ip")                  ? RW_RLK_IP
                               : !strcmp(s, "route")               ? RW_RLK_ROUTE
                               : !strncmp(s, "header:", 7) && s[7] ? RW_RLK_HEADER
                                                                   : 0;
                if (bit == 0)
                    rc = rw__cf_fail(
                        l, it, "%s: unknown key '%s' (expected consumer, key, ip, route or header:NAME)", iw,
                        s);
                else if (r->key & bit)
                    rc = rw__cf_fail(l, it, "%s: '%s' listed twice (one header: per limit)", iw, s);
                else if (bit == RW_RLK_HEADER && !(r->header = rw__cf_dup_mem(l, it, s + 7, strlen(s + 7))))
                    rc = -1;
                r->key |= bit;
            }
        } else if (!strcmp(key, "rate")) {
            rate = v;
            if ((rc = rw__cf_str_of(l, v, w, &s)) == 0) {
                if (rw_parse_rate(s, &r->rate, &r->unlimited) != 0)
                    rc = rw__cf_fail(l, v, "%s: invalid rate '%s' (expected N/s, N/min, N/hour or unlimited)",
                                     w, s);
                r->window_ms = rate_window_ms(s);
            }
        } else if (!strcmp(key, "burst")) {
            burst = v;
            rc = rw__cf_get_u32(l, v, w, 1, 1000000000, &r->burst);
        } else if (!strcmp(key, "tier"))
            rc = rw__cf_get_bool(l, v, w, &r->tier);
        else if (!strcmp(key, "scope"))
            rc = rw__cf_get_choice(l, v, w, "scope", scopes, 2, &r->scope);
        else if (!strcmp(key, "max_keys"))
            rc = rw__cf_get_u32(l, v, w, 16, 1u << 24, &r->max_keys);
        else if (!strcmp(key, "headers"))
            rc = rw__cf_get_bool(l, v, w, &r->headers);
        else
            rc = rw__cf_unknown_key(l, k, where, "rate_limit filter", keys);
        if (rc)
            return -1;
    }
    if (!rate && !r->tier)
        return rw__cf_fail(l, n, "%s: needs rate (or tier: true)", where);
    if (r->tier && l->cfg->ntiers == 0)
        return rw__cf_fail(l, n, "%s: tier: true needs a tiers section", where);
    if (rate && !r->unlimited && r->burst == 0) {
        double b = r->rate * (double)r->window_ms / 1000.0;
        r->burst = b < 1 ? 1 : b > 1e9 ? 1000000000u : (uint32_t)(b + 0.5);
    }
    (void)burst;
    return 0;
}

/* A filter list: [{jwt: {...}}, {rate_limit: {...}}, key_auth, ...]. */
int rw__cf_parse_filters(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_filter_cfg **out,
                         size_t *count)
{
    static const char names[] = "key_auth, jwt, acl, rate_limit";
    char w[300], fw[340];
    char b[64];

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_list(l, n, where, false))
        return -1;
    size_t len = SEQ_LEN(n);
    rw_filter_cfg *fs = rw__cf_array(l->arena, len ? len : 1, sizeof(*fs));
    if (!fs)
        return rw__cf_oom(l, n);
    int seen = 0;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = rw__cf_list_item(l, n, i);
        yaml_node_t *name = it, *body = NULL;
        rw__cf_wheref(w, sizeof(w), "%s[%zu]", where, i);
        if (!it)
            return rw__cf_fail(l, n, "%s: missing entry", w);
        if (it->type == YAML_MAPPING_NODE) {
            if (MAP_LEN(it) != 1)
                return rw__cf_fail(l, it, "%s: expected one filter like {name: {settings}}", w);
            name = rw__cf_node_at(l, it->data.mapping.pairs.start[0].key);
            body = rw__cf_node_at(l, it->data.mapping.pairs.start[0].value);
        } else if (it->type != YAML_SCALAR_NODE || rw__cf_is_null(it)) {
            return rw__cf_fail(l, it, "%s: expected a filter like {name: {settings}}, got %s", w,
                               rw__cf_describe(it, b, sizeof(b)));
        }
        const char *fname = rw__cf_scalar_text(name);
        rw_filter_cfg *f = &fs[i];
        f->line = (int)rw__cf_line_of(it);
        rw__cf_wheref(fw, sizeof(fw), "%s.%s", w, fname);
        int rc;
        if (strcmp(fname, "key_auth") && strcmp(fname, "jwt") && strcmp(fname, "acl") &&
            strcmp(fname, "rate_limit"))
            return rw__cf_fail(l, name, "%s: unknown filter '%s' (expected %s)", w, fname, names);
        if (!strcmp(fname, "key_auth")) {
            f->kind = RW_FILTER_KEY_AUTH;
            rc = parse_key_auth(l, body, fw, &f->u.key_auth); /* no settings: the defaults */
        } else if (!body || rw__cf_is_null(body)) {
            return rw__cf_fail(l, name, "%s: filter '%s' needs settings", w, fname);
        } else if (!strcmp(fname, "jwt")) {
            f->kind = RW_FILTER_JWT;
            rc = parse_jwt(l, body, fw, &f->u.jwt);
        } else if (!strcmp(fname, "acl")) {
            f->kind = RW_FILTER_ACL;
            rc = parse_acl(l, body, fw, &f->u.acl);
        } else if (!strcmp(fname, "rate_limit")) {
            f->kind = RW_FILTER_RATE_LIMIT;
            rc = parse_rate_limit(l, body, fw, &f->u.rate_limit);
        } else {
            return rw__cf_fail(l, name, "%s: unknown filter '%s' (expected %s)", w, fname, names);
        }
        if (rc)
            return -1;
        int bit = 1 << f->kind;
        if ((f->kind == RW_FILTER_JWT || f->kind == RW_FILTER_KEY_AUTH) && (seen & bit))
            return rw__cf_fail(l, it, "%s: a second %s filter in one list", w, fname);
        seen |= bit;
    }
    *out = fs;
    *count = len;
    return 0;
}

/* Names rate-limit tables that have none: "<scope>.rate_limit[<i>]". */
int rw__cf_name_rate_limits(rw_cf_loader *l, const yaml_node_t *n, rw_filter_cfg *fs, size_t count,
                            const char *owner)
{
    char buf[MAX_NAME_LEN + 64];
    for (size_t i = 0; i < count; i++) {
        rw_rate_limit_cfg *r = &fs[i].u.rate_limit;
        if (fs[i].kind != RW_FILTER_RATE_LIMIT || r->name)
            continue;
        snprintf(buf, sizeof(buf), "%s.rate_limit.%zu", owner, i);
        if (!(r->name = rw__cf_dup_mem(l, n, buf, strlen(buf))))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* tiers */

int rw__cf_parse_tiers(rw_cf_loader *l, yaml_node_t *n)
{
    rw_config *cfg = l->cfg;
    char w[256];

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_map(l, n, "tiers"))
        return -1;
    size_t len = MAP_LEN(n);
    cfg->tiers = rw__cf_array(l->arena, len, sizeof(*cfg->tiers));
    if (!cfg->tiers)
        return rw__cf_oom(l, n);
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        rw_tier_cfg *t = &cfg->tiers[cfg->ntiers];
        rw__cf_wheref(w, sizeof(w), "tiers.%s", rw__cf_scalar_text(k));
        if (rw__cf_get_name(l, k, w, &t->name) || rw__cf_check_map(l, v, w))
            return -1;
        const yaml_node_t *rate = NULL;
        MAP_EACH(v, tp)
        {
            yaml_node_t *tk = rw__cf_node_at(l, tp->key);
            if (strcmp(rw__cf_scalar_text(tk), "rate") != 0)
                return rw__cf_unknown_key(l, tk, w, "tier", "rate");
            rate = rw__cf_node_at(l, tp->value);
        }
        if (!rate || rw__cf_is_null(rate))
            return rw__cf_fail(l, v, "%s: rate is required", w);
        const char *s = "";
        char rw[300];
        rw__cf_wheref(rw, sizeof(rw), "%s.rate", w);
        if (rw__cf_str_of(l, rate, rw, &s))
            return -1;
        t->window_ms = rate_window_ms(s);
        if (rw_parse_rate(s, &t->rate_per_sec, &t->unlimited) != 0)
            return rw__cf_fail(l, rate, "%s: invalid rate '%s' (expected N/s, N/min, N/hour or unlimited)",
                               rw, s);
        cfg->ntiers++;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* consumers */

static int check_key(rw_cf_loader *l, const yaml_node_t *n, const char *where, char *key)
{
    if (!strncmp(key, "sha256:", 7)) {
        char *hex = key + 7;
        size_t len = strlen(hex);
        if (len != 64)
            return rw__cf_fail(l, n, "%s: a sha256: key needs 64 hex digits, got %zu characters", where, len);
        for (char *p = hex; *p; p++) {
            if (rw_hexval((unsigned char)*p) < 0)
                return rw__cf_fail(l, n, "%s: a sha256: key needs 64 hex digits", where);
            *p = (char)tolower((unsigned char)*p);
        }
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f)
            return rw__cf_fail(l, n, "%s: a key may contain only visible ASCII characters", where);
    }
    return 0;
}

static int parse_consumer(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_consumer_cfg *c,
                          const yaml_node_t **tier_node, const yaml_node_t **keys_node)
{
    static const char keys[] = "name, id, groups, tier, keys";
    char w[300], iw[320];

    c->tier_index = -1;
    c->line = (int)rw__cf_line_of(n);
    if (rw__cf_check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        const char *key = rw__cf_scalar_text(k);
        int rc = 0;
        rw__cf_wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "name"))
            rc = rw__cf_get_name(l, v, w, &c->name);
        else if (!strcmp(key, "id")) {
            rc = rw__cf_get_string(l, v, w, &c->id);
            for (const char *q = c->id; rc == 0 && q && *q; q++) /* forwarded as X-Consumer-ID */
                if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
                    rc = rw__cf_fail(l, v, "%s: an id may contain only visible ASCII characters", w);
        } else if (!strcmp(key, "groups")) {
            rc = rw__cf_get_str_list(l, v, w, &c->groups, &c->ngroups);
            for (size_t i = 0; i < c->ngroups && rc == 0; i++)
                rc = rw__cf_check_name(l, rw__cf_list_item(l, v, i),
                                       rw__cf_item_where(iw, sizeof(iw), v, w, i), c->groups[i]);
        } else if (!strcmp(key, "tier")) {
            rc = rw__cf_get_name(l, v, w, &c->tier);
            *tier_node = v;
        } else if (!strcmp(key, "keys")) {
            rc = rw__cf_get_str_list(l, v, w, &c->keys, &c->nkeys);
            for (size_t i = 0; i < c->nkeys && rc == 0; i++)
                rc = check_key(l, rw__cf_list_item(l, v, i), rw__cf_item_where(iw, sizeof(iw), v, w, i),
                               c->keys[i]);
            *keys_node = v;
        } else {
            rc = rw__cf_unknown_key(l, k, where, "consumer", keys);
        }
        if (rc)
            return -1;
    }
    if (!c->name)
        return rw__cf_fail(l, n, "%s: name is required", where);
    if (!c->id)
        c->id = c->name;
    return 0;
}

int rw__cf_parse_consumers(rw_cf_loader *l, yaml_node_t *n)
{
    rw_config *cfg = l->cfg;
    rw_cf_strset names = {0}, ids = {0}, keys = {0};
    char w[64], kw[96], kiw[128];
    int rc = -1;

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_list(l, n, "consumers", false))
        return -1;
    size_t len = SEQ_LEN(n);
    cfg->consumers = rw__cf_array(l->arena, len, sizeof(*cfg->consumers));
    if (!cfg->consumers)
        return rw__cf_oom(l, n);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = rw__cf_list_item(l, n, i);
        rw_consumer_cfg *c = &cfg->consumers[i];
        const yaml_node_t *tier_node = NULL, *keys_node = NULL;
        int old = 0, put;
        rw__cf_wheref(w, sizeof(w), "consumers[%zu]", i);
        if (!it) {
            rw__cf_fail(l, n, "%s: missing entry", w);
            goto out;
        }
        if (parse_consumer(l, it, w, c, &tier_node, &keys_node))
            goto out;
        if ((put = rw__cf_strset_put(&names, c->name, (int)i, &old)) <= 0) {
            if (put < 0)
                rw__cf_oom(l, it);
            else
                rw__cf_fail(l, it, "%s: duplicate consumer name '%s' (also consumers[%d])", w, c->name, old);
            goto out;
        }
        if ((put = rw__cf_strset_put(&ids, c->id, (int)i, &old)) <= 0) {
            if (put < 0)
                rw__cf_oom(l, it);
            else
                rw__cf_fail(l, it, "%s: duplicate consumer id '%s' (also consumers[%d])", w, c->id, old);
            goto out;
        }
        if (c->tier) {
            for (size_t t = 0; t < cfg->ntiers; t++) {
                if (!strcmp(cfg->tiers[t].name, c->tier))
                    c->tier_index = (int)t;
            }
            if (c->tier_index < 0) {
                rw__cf_fail(l, tier_node, "%s.tier: unknown tier '%s'", w, c->tier);
                goto out;
            }
        }
        for (size_t k = 0; k < c->nkeys; k++) {
            if ((put = rw__cf_strset_put(&keys, c->keys[k], (int)i, &old)) <= 0) {
                const yaml_node_t *kn = rw__cf_list_item(l, (yaml_node_t *)keys_node, k);
                rw__cf_wheref(kw, sizeof(kw), "%s.keys", w);
                rw__cf_item_where(kiw, sizeof(kiw), keys_node, kw, k);
                if (put < 0)
                    rw__cf_oom(l, kn);
                else if ((size_t)old == i)
                    rw__cf_fail(l, kn, "%s: key is listed twice", kiw);
                else
                    rw__cf_fail(l, kn, "%s: key is already used by consumer '%s'", kiw,
                                cfg->consumers[old].name);
                goto out;
            }
        }
        cfg->nconsumers = i + 1;
    }
    rc = 0;
out:
    rw__cf_strset_free(&names);
    rw__cf_strset_free(&ids);
    rw__cf_strset_free(&keys);
    return rc;
}
