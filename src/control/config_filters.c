/* config_filters.c - access control: the filter lists (key_auth, jwt, acl,
 * rate_limit) at top level, on services and on routes, the rate tiers and
 * the consumers with their keys and groups. The jwt filter's settings are
 * read by config_jwt.c. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"
#include "ringway/common.h"

/* ------------------------------------------------------------------------ */
/* filters */

/* key_auth's header: a header name (the default place). */
static int key_ka_header(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_key_auth_cfg *k = obj;

    (void)key;
    k->from = RW_FROM_HEADER;
    if (rw__cf_get_string(l, v, where, &k->name))
        return -1;
    return k->name ? rw__cf_check_token(l, v, where, "header name", k->name) : 0;
}

static int key_ka_query(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_key_auth_cfg *k = obj;

    (void)key;
    k->from = RW_FROM_QUERY;
    return rw__cf_get_string(l, v, where, &k->name);
}

enum { KA_HEADER, KA_QUERY, KA_HIDE_CREDENTIALS };

static const rw_cf_key key_auth_keys[] = {
    [KA_HEADER] =
        RW_CF_CUSTOM("header", key_ka_header, rw_key_auth_cfg, from, int, RW_CF_T_INT, RW_FROM_HEADER, 0),
    [KA_QUERY] = {.name = "query", .parse = key_ka_query},
    [KA_HIDE_CREDENTIALS] = RW_CF_BOOL("hide_credentials", rw_key_auth_cfg, hide_credentials, false),
};
static const rw_cf_map key_auth_map = RW_CF_MAP_OF("key_auth filter", key_auth_keys, NULL);

/* key_auth may be written bare ("- key_auth"): the defaults. */
static int parse_key_auth(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_filter_cfg *f)
{
    rw_key_auth_cfg *k = &f->u.key_auth;
    yaml_node_t *seen[RW_ARRAY_LEN(key_auth_keys)] = {0};

    rw__cf_map_defaults(&key_auth_map, k);
    if (n != NULL && !rw__cf_is_null(n) && rw__cf_map_parse(l, &key_auth_map, n, where, k, seen))
        return -1;
    if (seen[KA_HEADER] && seen[KA_QUERY])
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

static int key_cidr_list(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    size_t *count = (size_t *)(void *)((char *)obj + key->count);
    return rw__cf_get_cidr_list(l, v, where, RW_CF_FIELD(obj, key, rw_cidr *), count);
}

#define CIDR_LIST(n, st, f, cnt)                                                                             \
    {                                                                                                        \
        .name = n, .parse = key_cidr_list, .offset = RW_CF_OFF(st, f, rw_cidr *),                            \
        .count = RW_CF_OFF(st, cnt, size_t)                                                                  \
    }

static int check_acl(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj, yaml_node_t *const *seen)
{
    const rw_acl_cfg *a = obj;

    (void)seen;
    if (!a->nallow_groups && !a->ndeny_groups && !a->nallow_ips && !a->ndeny_ips)
        return rw__cf_fail(l, n, "%s: needs allow_groups, deny_groups, allow_ips or deny_ips", where);
    return 0;
}

static const rw_cf_key acl_keys[] = {
    RW_CF_STR_LIST("allow_groups", rw_acl_cfg, allow_groups, nallow_groups),
    RW_CF_STR_LIST("deny_groups", rw_acl_cfg, deny_groups, ndeny_groups),
    CIDR_LIST("allow_ips", rw_acl_cfg, allow_ips, nallow_ips),
    CIDR_LIST("deny_ips", rw_acl_cfg, deny_ips, ndeny_ips),
};
static const rw_cf_map acl_map = RW_CF_MAP_OF("acl filter", acl_keys, check_acl);

static int parse_acl(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_filter_cfg *f)
{
    rw__cf_map_defaults(&acl_map, &f->u.acl);
    return rw__cf_map_parse(l, &acl_map, n, where, &f->u.acl, NULL);
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

/* key: consumer, key, ip, route or header:NAME, or a list of them. */
static int key_rl_key(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_rate_limit_cfg *r = obj;
    char iw[420];
    const char *s = "";

    (void)key;
    if (rw__cf_check_list(l, v, where, true))
        return -1;
    r->key = 0;
    for (size_t i = 0; i < rw__cf_list_len(v); i++) {
        yaml_node_t *it = rw__cf_list_item(l, v, i);
        rw__cf_item_where(iw, sizeof(iw), v, where, i);
        if (rw__cf_str_of(l, it, iw, &s))
            return -1;
        uint32_t bit = !strcmp(s, "consumer")              ? RW_RLK_CONSUMER
                       : !strcmp(s, "key")                 ? RW_RLK_CRED
                       : !strcmp(s, "ip")                  ? RW_RLK_IP
                       : !strcmp(s, "route")               ? RW_RLK_ROUTE
                       : !strncmp(s, "header:", 7) && s[7] ? RW_RLK_HEADER
                                                           : 0;
        if (bit == 0)
            return rw__cf_fail(
                l, it, "%s: unknown key '%s' (expected consumer, key, ip, route or header:NAME)", iw, s);
        if (r->key & bit)
            return rw__cf_fail(l, it, "%s: '%s' listed twice (one header: per limit)", iw, s);
        if (bit == RW_RLK_HEADER && !(r->header = rw__cf_dup_mem(l, it, s + 7, strlen(s + 7))))
            return -1;
        r->key |= bit;
    }
    return 0;
}

/* rate: "N/period" or unlimited (also sets the period, window_ms). */
static int key_rl_rate(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_rate_limit_cfg *r = obj;
    const char *s = "";

    (void)key;
    if (rw__cf_str_of(l, v, where, &s))
        return -1;
    if (rw_parse_rate(s, &r->rate, &r->unlimited) != 0)
        return rw__cf_fail(l, v, "%s: invalid rate '%s' (expected N/s, N/min, N/hour or unlimited)", where,
                           s);
    r->window_ms = rate_window_ms(s);
    return 0;
}

enum { RL_NAME, RL_KEY, RL_RATE, RL_BURST, RL_TIER, RL_SCOPE, RL_MAX_KEYS, RL_HEADERS };

static int check_rate_limit(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj,
                            yaml_node_t *const *seen)
{
    rw_rate_limit_cfg *r = obj;

    if (!seen[RL_RATE] && !r->tier)
        return rw__cf_fail(l, n, "%s: needs rate (or tier: true)", where);
    if (r->tier && l->cfg->ntiers == 0)
        return rw__cf_fail(l, n, "%s: tier: true needs a tiers section", where);
    if (seen[RL_RATE] && !r->unlimited && r->burst == 0) { /* default: the N of "N/period" */
        double b = r->rate * (double)r->window_ms / 1000.0;
        r->burst = b < 1 ? 1 : b > 1e9 ? 1000000000u : (uint32_t)(b + 0.5);
    }
    return 0;
}

static const char *const rl_scopes[] = {"local", "global"};
static const rw_cf_choice rl_scope_choice = {"scope", rl_scopes, RW_ARRAY_LEN(rl_scopes)};

static const rw_cf_key rate_limit_keys[] = {
    [RL_NAME] = RW_CF_NAME("name", rw_rate_limit_cfg, name, 0),
    [RL_KEY] = RW_CF_CUSTOM("key", key_rl_key, rw_rate_limit_cfg, key, uint32_t, RW_CF_T_U32, RW_RLK_IP, 0),
    [RL_RATE] = {.name = "rate", .parse = key_rl_rate},
    [RL_BURST] = RW_CF_U32("burst", rw_rate_limit_cfg, burst, 1, 1000000000, 0), /* 0: from the rate */
    [RL_TIER] = RW_CF_BOOL("tier", rw_rate_limit_cfg, tier, false),
    [RL_SCOPE] = RW_CF_CHOICE("scope", rw_rate_limit_cfg, scope, rl_scope_choice, RW_RL_LOCAL),
    [RL_MAX_KEYS] = RW_CF_U32("max_keys", rw_rate_limit_cfg, max_keys, 16, 1u << 24, 65536),
    [RL_HEADERS] = RW_CF_BOOL("headers", rw_rate_limit_cfg, headers, false),
};
static const rw_cf_map rate_limit_map = RW_CF_MAP_OF("rate_limit filter", rate_limit_keys, check_rate_limit);

static int parse_rate_limit(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_filter_cfg *f)
{
    rw__cf_map_defaults(&rate_limit_map, &f->u.rate_limit);
    return rw__cf_map_parse(l, &rate_limit_map, n, where, &f->u.rate_limit, NULL);
}

/* The filters, in the order the unknown-filter message lists them. */
static const struct filter_kind {
    const char *name;
    int kind;     /* enum rw_filter_kind */
    bool bare_ok; /* may be written without settings */
    bool once;    /* at most one per list */
    int (*parse)(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_filter_cfg *f);
} filter_kinds[] = {
    {"key_auth", RW_FILTER_KEY_AUTH, true, true, parse_key_auth},
    {"jwt", RW_FILTER_JWT, false, true, rw__cf_parse_jwt},
    {"acl", RW_FILTER_ACL, false, false, parse_acl},
    {"rate_limit", RW_FILTER_RATE_LIMIT, false, false, parse_rate_limit},
};

/* A filter list: [{jwt: {...}}, {rate_limit: {...}}, key_auth, ...]. */
int rw__cf_parse_filters(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_filter_cfg **out,
                         size_t *count)
{
    char w[300], fw[340], names[128] = "";
    char b[64];

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_list(l, n, where, false))
        return -1;
    size_t len = SEQ_LEN(n);
    rw_filter_cfg *fs = rw__cf_array(l->arena, len ? len : 1, sizeof(*fs));
    if (!fs)
        return rw__cf_oom(l, n);
    for (size_t i = 0; i < RW_ARRAY_LEN(filter_kinds); i++) {
        strcat(names, i ? ", " : "");
        strcat(names, filter_kinds[i].name);
    }
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
        const struct filter_kind *fk = NULL;
        for (size_t k = 0; k < RW_ARRAY_LEN(filter_kinds) && !fk; k++)
            fk = strcmp(fname, filter_kinds[k].name) == 0 ? &filter_kinds[k] : NULL;
        if (!fk)
            return rw__cf_fail(l, name, "%s: unknown filter '%s' (expected %s)", w, fname, names);
        if (!fk->bare_ok && (!body || rw__cf_is_null(body)))
            return rw__cf_fail(l, name, "%s: filter '%s' needs settings", w, fname);
        rw_filter_cfg *f = &fs[i];
        f->line = (int)rw__cf_line_of(it);
        f->kind = fk->kind;
        if (fk->parse(l, body, rw__cf_wheref(fw, sizeof(fw), "%s.%s", w, fname), f))
            return -1;
        int bit = 1 << f->kind;
        if (fk->once && (seen & bit))
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

/* rate: "N/period" (N is also the burst) or unlimited. */
static int key_tier_rate(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_tier_cfg *t = obj;
    const char *s = "";

    (void)key;
    if (rw__cf_str_of(l, v, where, &s))
        return -1;
    t->window_ms = rate_window_ms(s);
    if (rw_parse_rate(s, &t->rate_per_sec, &t->unlimited) != 0)
        return rw__cf_fail(l, v, "%s: invalid rate '%s' (expected N/s, N/min, N/hour or unlimited)", where,
                           s);
    return 0;
}

static const rw_cf_key tier_keys[] = {
    {.name = "rate", .parse = key_tier_rate, .flags = RW_CF_REQUIRED | RW_CF_LATE},
};
static const rw_cf_map tier_map = RW_CF_MAP_OF("tier", tier_keys, NULL);

/* tiers: {NAME: {rate: ...}} */
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
        rw__cf_map_defaults(&tier_map, t);
        if (rw__cf_get_name(l, k, w, &t->name) || rw__cf_map_parse(l, &tier_map, v, w, t, NULL))
            return -1;
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

/* id: forwarded as X-Consumer-ID, so visible ASCII only. */
static int key_consumer_id(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                           void *obj)
{
    rw_consumer_cfg *c = obj;

    (void)key;
    if (rw__cf_get_string(l, v, where, &c->id))
        return -1;
    for (const char *q = c->id; q && *q; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return rw__cf_fail(l, v, "%s: an id may contain only visible ASCII characters", where);
    return 0;
}

static int key_groups(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_consumer_cfg *c = obj;
    char iw[320];

    (void)key;
    if (rw__cf_get_str_list(l, v, where, &c->groups, &c->ngroups))
        return -1;
    for (size_t i = 0; i < c->ngroups; i++)
        if (rw__cf_check_name(l, rw__cf_list_item(l, v, i), rw__cf_item_where(iw, sizeof(iw), v, where, i),
                              c->groups[i]))
            return -1;
    return 0;
}

static int key_consumer_keys(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                             void *obj)
{
    rw_consumer_cfg *c = obj;
    char iw[320];

    (void)key;
    if (rw__cf_get_str_list(l, v, where, &c->keys, &c->nkeys))
        return -1;
    for (size_t i = 0; i < c->nkeys; i++)
        if (check_key(l, rw__cf_list_item(l, v, i), rw__cf_item_where(iw, sizeof(iw), v, where, i),
                      c->keys[i]))
            return -1;
    return 0;
}

/* "sha256:<64 hex>", any case, the hex optionally in colon-separated pairs
 * (as `openssl x509 -fingerprint -sha256` prints it): rewritten in place to
 * the 64 lower-case hex digits rw_tls_peer_cert() gives. */
static int check_cert(rw_cf_loader *l, const yaml_node_t *n, const char *where, char *cert)
{
    static const char want[] = "a certificate is \"sha256:<64 hex digits>\" (colons between pairs allowed)";
    if (strncasecmp(cert, "sha256:", 7) != 0)
        return rw__cf_fail(l, n, "%s: %s", where, want);
    size_t nd = 0;
    for (const char *p = cert + 7; *p; p++) {
        if (*p == ':' && nd > 0 && nd % 2 == 0 && p[1] != '\0' && p[1] != ':')
            continue;
        if (rw_hexval((unsigned char)*p) < 0 || nd == 64)
            return rw__cf_fail(l, n, "%s: %s", where, want);
        cert[nd++] = (char)tolower((unsigned char)*p);
    }
    if (nd != 64)
        return rw__cf_fail(l, n, "%s: %s, got %zu digits", where, want, nd);
    cert[nd] = '\0';
    return 0;
}

static int key_consumer_certs(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                              void *obj)
{
    rw_consumer_cfg *c = obj;
    char iw[320];

    (void)key;
    if (rw__cf_get_str_list(l, v, where, &c->certs, &c->ncerts))
        return -1;
    for (size_t i = 0; i < c->ncerts; i++)
        if (check_cert(l, rw__cf_list_item(l, v, i), rw__cf_item_where(iw, sizeof(iw), v, where, i),
                       c->certs[i]))
            return -1;
    return 0;
}

enum { CONS_NAME, CONS_ID, CONS_GROUPS, CONS_TIER, CONS_KEYS, CONS_CERTS };

static int check_consumer(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj,
                          yaml_node_t *const *seen)
{
    rw_consumer_cfg *c = obj;

    (void)l, (void)n, (void)where, (void)seen;
    if (!c->id)
        c->id = c->name; /* the id defaults to the name */
    return 0;
}

static const rw_cf_key consumer_keys[] = {
    [CONS_NAME] = RW_CF_NAME("name", rw_consumer_cfg, name, RW_CF_REQUIRED),
    [CONS_ID] = {.name = "id", .parse = key_consumer_id},
    [CONS_GROUPS] = {.name = "groups", .parse = key_groups},
    [CONS_TIER] = RW_CF_NAME("tier", rw_consumer_cfg, tier, 0), /* resolved by rw__cf_parse_consumers */
    [CONS_KEYS] = {.name = "keys", .parse = key_consumer_keys},
    [CONS_CERTS] = {.name = "certificates", .parse = key_consumer_certs},
};
static const rw_cf_map consumer_map = RW_CF_MAP_OF("consumer", consumer_keys, check_consumer);

static int parse_consumer(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_consumer_cfg *c,
                          const yaml_node_t **tier_node, const yaml_node_t **keys_node,
                          const yaml_node_t **certs_node)
{
    yaml_node_t *seen[RW_ARRAY_LEN(consumer_keys)];

    rw__cf_map_defaults(&consumer_map, c);
    c->tier_index = -1;
    c->line = (int)rw__cf_line_of(n);
    if (rw__cf_map_parse(l, &consumer_map, n, where, c, seen))
        return -1;
    *tier_node = seen[CONS_TIER];
    *keys_node = seen[CONS_KEYS];
    *certs_node = seen[CONS_CERTS];
    return 0;
}

int rw__cf_parse_consumers(rw_cf_loader *l, yaml_node_t *n)
{
    rw_config *cfg = l->cfg;
    rw_cf_strset names = {0}, ids = {0}, keys = {0}, certs = {0};
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
        const yaml_node_t *tier_node = NULL, *keys_node = NULL, *certs_node = NULL;
        int old = 0, put;
        rw__cf_wheref(w, sizeof(w), "consumers[%zu]", i);
        if (!it) {
            rw__cf_fail(l, n, "%s: missing entry", w);
            goto out;
        }
        if (parse_consumer(l, it, w, c, &tier_node, &keys_node, &certs_node))
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
        for (size_t k = 0; k < c->ncerts; k++) {
            if ((put = rw__cf_strset_put(&certs, c->certs[k], (int)i, &old)) <= 0) {
                const yaml_node_t *kn = rw__cf_list_item(l, (yaml_node_t *)certs_node, k);
                rw__cf_wheref(kw, sizeof(kw), "%s.certificates", w);
                rw__cf_item_where(kiw, sizeof(kiw), certs_node, kw, k);
                if (put < 0)
                    rw__cf_oom(l, kn);
                else if ((size_t)old == i)
                    rw__cf_fail(l, kn, "%s: certificate is listed twice", kiw);
                else
                    rw__cf_fail(l, kn, "%s: certificate is already used by consumer '%s'", kiw,
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
    rw__cf_strset_free(&certs);
    return rc;
}
