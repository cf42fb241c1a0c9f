/* config.c - loads the declarative YAML configuration into an immutable
 * rw_config snapshot and validates it: the entry points, the document root
 * and its small sections (listen, admin, http, redis, request_id). The other
 * sections are read by config_routes.c, config_services.c and
 * config_filters.c with the machinery of config_yaml.c.
 *
 * libyaml's document API builds the node tree (with line marks); the loader
 * walks the known schema only, so aliases can never make it recurse, and a
 * work budget bounds what alias fan-out can multiply. Every string, array and
 * compiled regex of the result lives in one arena owned by the config;
 * rw_config_free releases it in one go. Nothing here is on the request path:
 * it runs on the control thread (startup and reload). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "config_int.h"
#include "ringway/common.h"
#include "ringway/config.h"
#include "ringway/http.h"
#include "ringway/rlsync.h"

/* ------------------------------------------------------------------------ */
/* Top-level scalars: listen, admin, workers, io. */

static bool addr_is_any(const rw_sockaddr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
    return IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
}

static uint16_t addr_port(const rw_sockaddr *a)
{
    if (a->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

/* True when binding both would clash (v6 sockets are IPV6_V6ONLY). */
static bool addr_conflict(const rw_sockaddr *a, const rw_sockaddr *b)
{
    if (a->ss.ss_family != b->ss.ss_family || addr_port(a) != addr_port(b))
        return false;
    return addr_is_any(a) || addr_is_any(b) || (a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0);
}

static int get_sockaddr(rw_cf_loader *l, const yaml_node_t *n, const char *where, rw_sockaddr *out)
{
    const char *s = "";

    if (rw__cf_str_of(l, n, where, &s))
        return -1;
    if (rw_parse_sockaddr(s, out) != 0)
        return rw__cf_fail(l, n, "%s: invalid address '%s' (expected IP:PORT, [IPV6]:PORT or :PORT)", where,
                           s);
    return 0;
}

static int parse_listen(rw_cf_loader *l, yaml_node_t *n)
{
    char w[64];
    rw_config *cfg = l->cfg;

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_list(l, n, "listen", true))
        return -1;
    size_t len = rw__cf_list_len(n);
    if (len == 0)
        return rw__cf_fail(l, n, "listen: needs at least one address");
    if (len > 256)
        return rw__cf_fail(l, n, "listen: too many addresses (at most 256)");
    rw_sockaddr *arr = rw__cf_array(l->arena, len, sizeof(*arr));
    if (!arr)
        return rw__cf_oom(l, n);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = rw__cf_list_item(l, n, i);
        rw__cf_item_where(w, sizeof(w), n, "listen", i);
        if (!it || get_sockaddr(l, it, w, &arr[i]))
            return it ? -1 : rw__cf_fail(l, n, "%s: missing entry", w);
        for (size_t j = 0; j < i; j++) {
            if (addr_conflict(&arr[i], &arr[j]))
                return rw__cf_fail(l, it, "%s: %s overlaps listen address %s", w, arr[i].text, arr[j].text);
        }
    }
    cfg->listen = arr;
    cfg->nlisten = len;
    return 0;
}

static int parse_workers(rw_cf_loader *l, const yaml_node_t *n)
{
    if (n->type == YAML_SCALAR_NODE && strcmp(rw__cf_scalar_text(n), "auto") == 0) {
        l->cfg->workers = 0;
        return 0;
    }
    if (n->type == YAML_SCALAR_NODE && !rw__cf_is_null(n)) {
        const char *s = rw__cf_scalar_text(n);
        bool digits = *s != '\0';
        for (const char *p = s; *p; p++)
            digits = digits && *p >= '0' && *p <= '9';
        if (!digits)
            return rw__cf_fail(l, n, "workers: expected auto or a number, got '%s'", s);
    }
    return rw__cf_get_u32(l, n, "workers", 1, 1024, &l->cfg->workers);
}

/* ------------------------------------------------------------------------ */
/* http, redis, tiers */

static int parse_http(rw_cf_loader *l, yaml_node_t *n)
{
    static const char keys[] = "client_header_timeout, client_body_timeout, keepalive_timeout, "
                               "send_timeout, max_header_bytes, max_request_line, max_body_bytes, "
                               "max_headers";
    rw_http_cfg *h = &l->cfg->http;
    const yaml_node_t *line_v = NULL;

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_map(l, n, "http"))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        const char *key = rw__cf_scalar_text(k);
        char w[64];
        int rc;
        rw__cf_wheref(w, sizeof(w), "http.%s", key);
        if (!strcmp(key, "client_header_timeout"))
            rc = rw__cf_get_ms(l, v, w, 1, &h->client_header_timeout_ms);
        else if (!strcmp(key, "client_body_timeout"))
            rc = rw__cf_get_ms(l, v, w, 1, &h->client_body_timeout_ms);
        else if (!strcmp(key, "keepalive_timeout"))
            rc = rw__cf_get_ms(l, v, w, 0, &h->keepalive_timeout_ms);
        else if (!strcmp(key, "send_timeout"))
            rc = rw__cf_get_ms(l, v, w, 1, &h->send_timeout_ms);
        else if (!strcmp(key, "max_header_bytes"))
            rc = rw__cf_get_size(l, v, w, 1024, 1u << 20, &h->max_header_bytes);
        else if (!strcmp(key, "max_request_line")) {
            rc = rw__cf_get_size(l, v, w, 64, 1u << 20, &h->max_request_line);
            line_v = v;
        } else if (!strcmp(key, "max_body_bytes")) {
            if (v->type == YAML_SCALAR_NODE && !strcmp(rw__cf_scalar_text(v), "unlimited")) {
                h->max_body_bytes = 0;
                rc = 0;
            } else {
                rc = rw__cf_get_size(l, v, w, 0, UINT64_MAX, &h->max_body_bytes);
            }
        } else if (!strcmp(key, "max_headers"))
            rc = rw__cf_get_u32(l, v, w, 1, RW_HTTP_MAX_HEADERS, &h->max_headers);
        else
            rc = rw__cf_unknown_key(l, k, "http", "http", keys);
        if (rc)
            return -1;
    }
    if (h->max_request_line > h->max_header_bytes)
        return rw__cf_fail(l, line_v ? line_v : n,
                           "http.max_request_line: %llu is larger than max_header_bytes (%llu), which "
                           "includes the request line",
                           (unsigned long long)h->max_request_line, (unsigned long long)h->max_header_bytes);
    return 0;
}

static int parse_redis(rw_cf_loader *l, yaml_node_t *n)
{
    static const char *const failures[] = {"local", "allow", "deny"};
    rw_redis_cfg *r = &l->cfg->redis;

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_map(l, n, "redis"))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        const char *key = rw__cf_scalar_text(k);
        int rc;
        if (!strcmp(key, "url")) {
            rc = rw__cf_get_string(l, v, "redis.url", &r->url);
            if (rc == 0 && r->url) {
                char why[256];
                rw_redis_url u;
                if (strncmp(r->url, "redis://", 8) != 0)
                    rc = rw__cf_fail(l, v,
                                     "redis.url: '%s' must start with redis:// (TLS and unix sockets are not "
                                     "supported)",
                                     r->url);
                else if (rw_redis_url_parse(r->url, &u, why, sizeof(why)) != 0)
                    rc = rw__cf_fail(l, v, "redis.url: %s", why);
            }
        } else if (!strcmp(key, "sync_interval"))
            rc = rw__cf_get_ms(l, v, "redis.sync_interval", 1, &r->sync_interval_ms);
        else if (!strcmp(key, "on_failure"))
            rc = rw__cf_get_choice(l, v, "redis.on_failure", "mode", failures, 3, &r->on_failure);
        else
            rc = rw__cf_unknown_key(l, k, "redis", "redis", "url, sync_interval, on_failure");
        if (rc)
            return -1;
    }
    if (!r->url)
        return rw__cf_fail(l, n, "redis: url is required");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The document root. */

enum {
    K_LISTEN,
    K_ADMIN,
    K_WORKERS,
    K_IO,
    K_MAX_CONNS,
    K_DRAIN_TIMEOUT,
    K_SHUTDOWN_DELAY,
    K_WATCH_CONFIG,
    K_HTTP,
    K_REDIS,
    K_TIERS,
    K_SERVICES,
    K_CONSUMERS,
    K_ROUTES,
    K_FILTERS,
    K_TRUSTED,
    K_SHARD_KEYS,
    K_REQUEST_ID,
    K_TRACE_CONTEXT,
    K_METRICS_LISTEN,
    K__COUNT
};

static const char *const top_keys[K__COUNT] = {
    "listen",
    "admin",
    "workers",
    "io",
    "max_conns",
    "drain_timeout",
    "shutdown_delay",
    "watch_config",
    "http",
    "redis",
    "tiers",
    "services",
    "consumers",
    "routes",
    "filters",
    "trusted_proxies",
    "rate_limit_shard_keys",
    "request_id",
    "trace_context",
    "metrics_listen",
};

/* admin: "ADDR:PORT", or {address: "ADDR:PORT", token_env: NAME}. */
static int parse_admin(rw_cf_loader *l, yaml_node_t *n)
{
    rw_config *cfg = l->cfg;
    if (n->type == YAML_SCALAR_NODE)
        return get_sockaddr(l, n, "admin", &cfg->admin);
    if (rw__cf_check_map(l, n, "admin"))
        return -1;
    yaml_node_t *addr = NULL;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        const char *key = rw__cf_scalar_text(k);
        int rc = 0;
        if (!strcmp(key, "address")) {
            addr = v;
        } else if (!strcmp(key, "token_env")) {
            rc = rw__cf_get_string(l, v, "admin.token_env", &cfg->admin_token_env);
            if (rc == 0 && cfg->admin_token_env != NULL) {
                const char *t = getenv(cfg->admin_token_env);
                if (t == NULL || strlen(t) < 16)
                    rc = rw__cf_fail(l, v, "admin.token_env: $%s %s (at least 16 characters)",
                                     cfg->admin_token_env, t == NULL ? "is not set" : "is too short");
                else if ((cfg->admin_token = rw__cf_dup_mem(l, v, t, strlen(t))) == NULL)
                    rc = -1;
            }
        } else {
            rc = rw__cf_unknown_key(l, k, "admin", "admin", "address, token_env");
        }
        if (rc)
            return -1;
    }
    if (addr == NULL)
        return rw__cf_fail(l, n, "admin: address is required");
    return get_sockaddr(l, addr, "admin.address", &cfg->admin);
}

/* request_id: {header: NAME, enabled: BOOL} */
static int parse_request_id(rw_cf_loader *l, yaml_node_t *n)
{
    rw_request_id_cfg *r = &l->cfg->request_id;
    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_map(l, n, "request_id"))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        const char *key = rw__cf_scalar_text(k);
        int rc;
        if (!strcmp(key, "header")) {
            char *h = NULL;
            rc = rw__cf_get_string(l, v, "request_id.header", &h);
            if (rc == 0 && h != NULL) {
                rc = rw__cf_check_token(l, v, "request_id.header", "header name", h);
                if (rc == 0 && (strlen(h) > 64 || rw_http_is_fixed_hop_by_hop((rw_str){h, strlen(h)}) ||
                                !strcasecmp(h, "host") || !strcasecmp(h, "content-length")))
                    rc = rw__cf_fail(l, v, "request_id.header: '%s' cannot carry the request id", h);
                if (rc == 0) {
                    r->header = h;
                    r->header_len = strlen(h);
                }
            }
        } else if (!strcmp(key, "enabled")) {
            rc = rw__cf_get_bool(l, v, "request_id.enabled", &r->enabled);
        } else {
            rc = rw__cf_unknown_key(l, k, "request_id", "request_id", "header, enabled");
        }
        if (rc)
            return -1;
    }
    return 0;
}

static void set_defaults(rw_config *cfg)
{
    cfg->request_id.header = (char *)"X-Request-Id";
    cfg->request_id.header_len = 12;
    cfg->request_id.enabled = true;
    cfg->trace_context = true;
    cfg->workers = 0;
    cfg->io = RW_IO_AUTO;
    cfg->max_conns = 65536;
    cfg->drain_timeout_ms = 30000;
    cfg->http.client_header_timeout_ms = 10000;
    cfg->http.client_body_timeout_ms = 60000;
    cfg->http.keepalive_timeout_ms = 75000;
    cfg->http.send_timeout_ms = 60000;
    cfg->http.max_header_bytes = 16384;
    cfg->http.max_request_line = 8192;
    cfg->http.max_body_bytes = 10u << 20;
    cfg->http.max_headers = 100;
    cfg->redis.sync_interval_ms = 100;
    cfg->redis.on_failure = RW_REDIS_LOCAL;
    cfg->rate_limit_shard_keys = 16384;
}

static int parse_root(rw_cf_loader *l, yaml_node_t *root)
{
    static const char *const io_modes[] = {"auto", "uring", "epoll"};
    rw_config *cfg = l->cfg;
    yaml_node_t *v[K__COUNT] = {0};
    char expected[320] = "";
    rw_cf_strset services = {0};
    int rc = -1;

    if (root->type != YAML_MAPPING_NODE)
        return rw__cf_fail(l, root, "the top level must be a mapping (listen:, services:, routes:, ...)");
    if (rw__cf_check_map(l, root, ""))
        return -1;
    for (size_t i = 0; i < K__COUNT; i++) {
        strcat(expected, i ? ", " : "");
        strcat(expected, top_keys[i]);
    }
    MAP_EACH(root, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key);
        size_t i = 0;
        while (i < K__COUNT && strcmp(top_keys[i], rw__cf_scalar_text(k)) != 0)
            i++;
        if (i == K__COUNT)
            return rw__cf_unknown_key(l, k, "", "", expected);
        v[i] = rw__cf_node_at(l, pr->value);
    }

    /* fixed order, so references (tier, service) resolve as they are read */
    if (v[K_LISTEN] && parse_listen(l, v[K_LISTEN]))
        goto out;
    if (cfg->nlisten == 0) {
        rw_sockaddr *def = rw__cf_alloc(l->arena, sizeof(*def));
        if (!def) {
            rw__cf_oom(l, root);
            goto out;
        }
        rw_parse_sockaddr("0.0.0.0:8080", def);
        cfg->listen = def;
        cfg->nlisten = 1;
    }
    if (v[K_ADMIN] && !rw__cf_is_null(v[K_ADMIN])) {
        if (parse_admin(l, v[K_ADMIN]))
            goto out;
        cfg->has_admin = true;
        for (size_t i = 0; i < cfg->nlisten; i++) {
            if (addr_conflict(&cfg->admin, &cfg->listen[i])) {
                rw__cf_fail(l, v[K_ADMIN], "admin: %s overlaps listen address %s", cfg->admin.text,
                            cfg->listen[i].text);
                goto out;
            }
        }
    }
    if (v[K_METRICS_LISTEN] && !rw__cf_is_null(v[K_METRICS_LISTEN])) {
        if (get_sockaddr(l, v[K_METRICS_LISTEN], "metrics_listen", &cfg->metrics_listen))
            goto out;
        cfg->has_metrics_listen = true;
        for (size_t i = 0; i < cfg->nlisten; i++) {
            if (addr_conflict(&cfg->metrics_listen, &cfg->listen[i]) ||
                (cfg->has_admin && addr_conflict(&cfg->metrics_listen, &cfg->admin))) {
                rw__cf_fail(l, v[K_METRICS_LISTEN], "metrics_listen: %s overlaps a listen or admin address",
                            cfg->metrics_listen.text);
                goto out;
            }
        }
    }
    if (v[K_WORKERS] && !rw__cf_is_null(v[K_WORKERS]) && parse_workers(l, v[K_WORKERS]))
        goto out;
    if (v[K_IO] && rw__cf_get_choice(l, v[K_IO], "io", "io mode", io_modes, 3, &cfg->io))
        goto out;
    if (v[K_MAX_CONNS] && rw__cf_get_u32(l, v[K_MAX_CONNS], "max_conns", 1, 10000000, &cfg->max_conns))
        goto out;
    if (v[K_DRAIN_TIMEOUT] &&
        rw__cf_get_ms(l, v[K_DRAIN_TIMEOUT], "drain_timeout", 0, &cfg->drain_timeout_ms))
        goto out;
    if (v[K_SHUTDOWN_DELAY] &&
        rw__cf_get_ms(l, v[K_SHUTDOWN_DELAY], "shutdown_delay", 0, &cfg->shutdown_delay_ms))
        goto out;
    if (v[K_WATCH_CONFIG] && rw__cf_get_bool(l, v[K_WATCH_CONFIG], "watch_config", &cfg->watch_config))
        goto out;
    if (v[K_REQUEST_ID] && parse_request_id(l, v[K_REQUEST_ID]))
        goto out;
    if (v[K_TRACE_CONTEXT] && rw__cf_get_bool(l, v[K_TRACE_CONTEXT], "trace_context", &cfg->trace_context))
        goto out;
    if (v[K_HTTP] && parse_http(l, v[K_HTTP]))
        goto out;
    if (v[K_REDIS] && parse_redis(l, v[K_REDIS]))
        goto out;
    if (v[K_TIERS] && rw__cf_parse_tiers(l, v[K_TIERS]))
        goto out;
    if (v[K_SERVICES] && rw__cf_parse_services(l, v[K_SERVICES], &services))
        goto out;
    if (v[K_CONSUMERS] && rw__cf_parse_consumers(l, v[K_CONSUMERS]))
        goto out;
    if (v[K_TRUSTED] && rw__cf_get_cidr_list(l, v[K_TRUSTED], "trusted_proxies", &cfg->trusted_proxies,
                                             &cfg->ntrusted_proxies))
        goto out;
    if (v[K_SHARD_KEYS] && rw__cf_get_u32(l, v[K_SHARD_KEYS], "rate_limit_shard_keys", 64, 1u << 24,
                                          &cfg->rate_limit_shard_keys))
        goto out;
    if (v[K_FILTERS] && (rw__cf_parse_filters(l, v[K_FILTERS], "filters", &cfg->filters, &cfg->nfilters) ||
                         rw__cf_name_rate_limits(l, v[K_FILTERS], cfg->filters, cfg->nfilters, "global")))
        goto out;
    if (v[K_ROUTES] && rw__cf_parse_routes(l, v[K_ROUTES], &services))
        goto out;
    rc = 0;
out:
    rw__cf_strset_free(&services);
    return rc;
}

/* Line (1-based) of byte offset off in text. */
static size_t line_at_offset(const char *text, size_t len, size_t off)
{
    size_t line = 1;
    for (size_t i = 0; i < off && i < len; i++)
        line += text[i] == '\n';
    return line;
}

static int yaml_failure(rw_cf_loader *l, const yaml_parser_t *p, const char *text, size_t len)
{
    const char *problem = p->problem ? p->problem : "invalid document";

    switch (p->error) {
    case YAML_MEMORY_ERROR:
        return rw__cf_fail_line(l, 1, "out of memory while parsing YAML");
    case YAML_READER_ERROR:
        return rw__cf_fail_line(l, line_at_offset(text, len, p->problem_offset), "YAML syntax error: %s",
                                problem);
    default:
        if (p->context)
            return rw__cf_fail_line(l, p->problem_mark.line + 1, "YAML syntax error: %s %s (line %zu)",
                                    problem, p->context, p->context_mark.line + 1);
        return rw__cf_fail_line(l, p->problem_mark.line + 1, "YAML syntax error: %s", problem);
    }
}

int rw_config_load_string(const char *yaml, size_t len, const char *name, rw_config **out, char *err,
                          size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    bool parser_ok = false, doc_ok = false;
    rw_arena *arena = NULL;
    rw_cf_loader l = {.name = name ? name : "<string>", .err = err, .errlen = errlen};
    int rc = -1;

    if (err && errlen)
        err[0] = '\0';
    if (!out)
        return rw__cf_fail_line(&l, 1, "no place to store the config");
    *out = NULL;
    if (!yaml)
        len = 0;
    if (len > MAX_FILE_SIZE)
        return rw__cf_fail_line(&l, 1, "configuration is too large (at most 16m)");

    arena = rw__cf_arena_new();
    if (!arena)
        return rw__cf_fail_line(&l, 1, "out of memory");
    l.arena = arena;
    if (!yaml_parser_initialize(&parser)) {
        rw__cf_fail_line(&l, 1, "out of memory");
        goto out;
    }
    parser_ok = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(yaml ? yaml : ""), len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_failure(&l, &parser, yaml, len);
        goto out;
    }
    doc_ok = true;
    l.doc = &doc;

    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || rw__cf_is_null(root)) {
        rw__cf_fail_line(&l, root ? rw__cf_line_of(root) : 1, "empty configuration");
        goto out;
    }
    if (!yaml_parser_load(&parser, &extra)) {
        yaml_failure(&l, &parser, yaml, len);
        goto out;
    }
    yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
    size_t extra_line = extra_root ? rw__cf_line_of(extra_root) : 0;
    yaml_document_delete(&extra);
    if (extra_root) {
        rw__cf_fail_line(&l, extra_line, "only one YAML document is allowed");
        goto out;
    }

    rw_config *cfg = rw__cf_alloc(arena, sizeof(*cfg));
    if (!cfg || !(cfg->source = rw__cf_dup_mem(&l, root, l.name, strlen(l.name)))) {
        rw__cf_fail_line(&l, 1, "out of memory");
        goto out;
    }
    cfg->arena = arena;
    l.cfg = cfg;
    set_defaults(cfg);
    if (parse_root(&l, root) != 0)
        goto out;
    *out = cfg;
    arena = NULL; /* owned by *out now */
    rc = 0;
out:
    if (doc_ok)
        yaml_document_delete(&doc);
    if (parser_ok)
        yaml_parser_delete(&parser);
    rw__cf_arena_destroy(arena);
    if (rc != 0 && !l.failed)
        rw__cf_fail_line(&l, 1, "invalid configuration");
    return rc;
}

int rw_config_load_file(const char *path, rw_config **out, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int fd, rc;

    if (err && errlen)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if (!path) {
        if (err && errlen)
            snprintf(err, errlen, "no configuration file given");
        return -1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    const char *why = NULL;
    if (fstat(fd, &st) == -1)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (st.st_size > (off_t)MAX_FILE_SIZE)
        why = "too large (at most 16m)";
    if (why) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, why);
        close(fd);
        return -1;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, (size_t)st.st_size + 1 - len);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1) {
            if (err && errlen)
                snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            close(fd);
            free(buf);
            return -1;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > (size_t)st.st_size) { /* grew while we read */
            if (err && errlen)
                snprintf(err, errlen, "%s: changed while being read", path);
            close(fd);
            free(buf);
            return -1;
        }
    }
    close(fd);
    rc = rw_config_load_string(buf, len, path, out, err, errlen);
    free(buf);
    return rc;
}

void rw_config_free(rw_config *cfg)
{
    if (cfg)
        rw__cf_arena_destroy(cfg->arena);
}
