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
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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
#include "ringway/tls.h"

/* ------------------------------------------------------------------------ */
/* Addresses: listen, admin, metrics_listen. */

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

/* listen[].tls: the table rows. */
static const rw_cf_key cert_keys[] = {
    {.name = "cert_file",
     .parse = rw__cf_key_string,
     .offset = offsetof(rw_tls_cert_cfg, cert_file),
     .type = RW_CF_T_STR,
     .flags = RW_CF_REQUIRED},
    {.name = "key_file",
     .parse = rw__cf_key_string,
     .offset = offsetof(rw_tls_cert_cfg, key_file),
     .type = RW_CF_T_STR,
     .flags = RW_CF_REQUIRED},
};
static const rw_cf_map cert_map = RW_CF_MAP_OF("certificate", cert_keys, NULL);

static int key_tls_certs(rw_cf_loader *l, yaml_node_t *n, const char *where, const rw_cf_key *key, void *obj)
{
    char w[96];
    rw_tls_cfg *t = obj;
    (void)key;
    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_list(l, n, where, false))
        return -1;
    size_t len = rw__cf_list_len(n);
    if (len == 0 || len > 64)
        return rw__cf_fail(l, n, "%s: needs 1 to 64 certificates", where);
    t->certs = rw__cf_array(l->arena, len, sizeof(*t->certs));
    if (!t->certs)
        return rw__cf_oom(l, n);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = rw__cf_list_item(l, n, i);
        rw__cf_item_where(w, sizeof(w), n, where, i);
        if (!it)
            return rw__cf_fail(l, n, "%s: missing entry", w);
        if (rw__cf_check_map(l, it, w) || rw__cf_map_parse(l, &cert_map, it, w, &t->certs[i], NULL))
            return -1;
        if (rw__cf_resolve_path(l, it, w, t->certs[i].cert_file, &t->certs[i].cert_file) ||
            rw__cf_resolve_path(l, it, w, t->certs[i].key_file, &t->certs[i].key_file))
            return -1;
    }
    t->ncerts = len;
    return 0;
}

static const char *const tls_versions[] = {"1.2", "1.3"};
static const rw_cf_choice tls_version_choice = {"TLS version", tls_versions, 2};
static const rw_cf_key tickets_keys[] = {
    RW_CF_BOOL("enabled", rw_tls_cfg, tickets, true),
    RW_CF_MS("rotate", rw_tls_cfg, ticket_rotate_ms, 60000, 12u * 3600 * 1000),
    RW_CF_STRING("key_file", rw_tls_cfg, ticket_key_file),
};
static const rw_cf_map tickets_map = RW_CF_MAP_OF("session_tickets", tickets_keys, NULL);
static const char *const client_verify_names[] = {"off", "optional", "required"};
static const rw_cf_choice client_verify_choice = {"client_verify", client_verify_names, 3};
static const rw_cf_key tls_keys[] = {
    {.name = "certificates", .parse = key_tls_certs, .flags = RW_CF_REQUIRED},
    RW_CF_STRING("client_ca_file", rw_tls_cfg, client_ca_file),
    RW_CF_CHOICE("client_verify", rw_tls_cfg, client_verify, client_verify_choice, 0),
    RW_CF_CHOICE("min_version", rw_tls_cfg, min_version, tls_version_choice, 0),
    RW_CF_SUBMAP("session_tickets", 0, tickets_map),
    RW_CF_MS("handshake_timeout", rw_tls_cfg, handshake_timeout_ms, 1, 0),
};
static const rw_cf_map tls_map = RW_CF_MAP_OF("tls", tls_keys, NULL);

/* A listen entry as a mapping: {address: ..., tls: {...}}. */
typedef struct listen_item {
    rw_sockaddr *addr;
    rw_tls_cfg *tls;
} listen_item;

static int get_sockaddr(rw_cf_loader *l, const yaml_node_t *n, const char *where, rw_sockaddr *out);

static int key_listen_address(rw_cf_loader *l, yaml_node_t *n, const char *where, const rw_cf_key *key,
                              void *obj)
{
    (void)key;
    return get_sockaddr(l, n, where, ((listen_item *)obj)->addr);
}

static int key_listen_tls(rw_cf_loader *l, yaml_node_t *n, const char *where, const rw_cf_key *key, void *obj)
{
    listen_item *it = obj;
    (void)key;
    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_map(l, n, where))
        return -1;
    rw_tls_cfg *t = rw__cf_alloc(l->arena, sizeof(*t));
    if (!t)
        return rw__cf_oom(l, n);
    rw__cf_map_defaults(&tls_map, t);
    t->line = (int)rw__cf_line_of(n);
    if (rw__cf_map_parse(l, &tls_map, n, where, t, NULL))
        return -1;
    if ((t->client_verify != 0) != (t->client_ca_file != NULL))
        return rw__cf_fail(l, n, "%s: client_verify optional or required goes with client_ca_file", where);
    if (t->client_ca_file && rw__cf_resolve_path(l, n, where, t->client_ca_file, &t->client_ca_file))
        return -1;
    if (t->ticket_key_file && rw__cf_resolve_path(l, n, where, t->ticket_key_file, &t->ticket_key_file))
        return -1;
    it->tls = t;
    return 0;
}

static const rw_cf_key listen_item_keys[] = {
    {.name = "address", .parse = key_listen_address, .flags = RW_CF_REQUIRED},
    {.name = "tls", .parse = key_listen_tls},
};
static const rw_cf_map listen_item_map = RW_CF_MAP_OF("listen entry", listen_item_keys, NULL);

/* listen: one address or a list; replaces the default 0.0.0.0:8080. An
 * entry is "ADDR:PORT" or {address: ADDR:PORT, tls: {...}}. */
static int key_listen(rw_cf_loader *l, yaml_node_t *n, const char *where, const rw_cf_key *key, void *obj)
{
    char w[64];
    rw_config *cfg = obj;

    (void)key;
    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_list(l, n, where, true))
        return -1;
    size_t len = rw__cf_list_len(n);
    if (len == 0)
        return rw__cf_fail(l, n, "listen: needs at least one address");
    if (len > 256)
        return rw__cf_fail(l, n, "listen: too many addresses (at most 256)");
    rw_sockaddr *arr = rw__cf_array(l->arena, len, sizeof(*arr));
    rw_tls_cfg **tls = rw__cf_array(l->arena, len, sizeof(*tls));
    if (!arr || !tls)
        return rw__cf_oom(l, n);
    bool any_tls = false;
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = rw__cf_list_item(l, n, i);
        rw__cf_item_where(w, sizeof(w), n, where, i);
        if (!it)
            return rw__cf_fail(l, n, "%s: missing entry", w);
        if (it->type == YAML_MAPPING_NODE) {
            listen_item li = {.addr = &arr[i]};
            if (rw__cf_check_map(l, it, w) || rw__cf_map_parse(l, &listen_item_map, it, w, &li, NULL))
                return -1;
            tls[i] = li.tls;
            any_tls |= li.tls != NULL;
        } else if (get_sockaddr(l, it, w, &arr[i])) {
            return -1;
        }
        for (size_t j = 0; j < i; j++) {
            if (addr_conflict(&arr[i], &arr[j]))
                return rw__cf_fail(l, it, "%s: %s overlaps listen address %s", w, arr[i].text, arr[j].text);
        }
    }
    cfg->listen = arr;
    cfg->nlisten = len;
    cfg->listen_tls = any_tls ? tls : NULL;
    cfg->tls_all = cfg->listen_tls;
    cfg->nlisten_tls = any_tls ? len : 0;
    return 0;
}

/* Builds each TLS listener's server context from its files (the first
 * failure, naming the file, is the load's error). */
static int build_tls(rw_cf_loader *l, rw_config *cfg)
{
    char why[512];
    for (size_t i = 0; i < cfg->nlisten_tls; i++) {
        rw_tls_cfg *t = cfg->tls_all[i];
        if (t == NULL)
            continue;
        rw_tls_cert_files files[64];
        for (size_t j = 0; j < t->ncerts && j < RW_ARRAY_LEN(files); j++) {
            files[j].cert_file = t->certs[j].cert_file;
            files[j].key_file = t->certs[j].key_file;
        }
        rw_tls_server_opts o = {
            .certs = files,
            .ncerts = t->ncerts,
            .min_tls13 = t->min_version == 1,
            .tickets = t->tickets,
            .ticket_rotate_s = t->ticket_rotate_ms / 1000,
            .ticket_key_file = t->ticket_key_file,
            .name = cfg->listen[i].text,
            .client_ca_file = t->client_ca_file,
            .client_verify = t->client_verify,
        };
        t->server = rw_tls_server_new(&o, why, sizeof(why));
        if (t->server == NULL)
            return rw__cf_fail_line(l, (size_t)t->line, "listen[%zu].tls: %s", i, why);
    }
    for (size_t i = 0; i < cfg->nservices; i++) {
        rw_service_cfg *sc = &cfg->services[i];
        if (sc->tls == NULL)
            continue;
        rw_tls_client_opts co = {
            .ca_file = sc->tls->ca_file,
            .cert_file = sc->tls->cert_file,
            .key_file = sc->tls->key_file,
            .verify = sc->tls->verify,
            .name = sc->name,
        };
        sc->tls->client = rw_tls_client_new(&co, why, sizeof(why));
        if (sc->tls->client == NULL)
            return rw__cf_fail_line(l, (size_t)sc->tls->line, "services[%zu].tls: %s", i, why);
    }
    return 0;
}

static void free_tls(rw_config *cfg)
{
    for (size_t i = 0; i < cfg->nservices; i++) {
        if (cfg->services[i].tls != NULL) {
            rw_tls_client_free(cfg->services[i].tls->client);
            cfg->services[i].tls->client = NULL;
        }
    }
    for (size_t i = 0; i < cfg->nlisten_tls; i++) {
        if (cfg->tls_all[i] != NULL) {
            rw_tls_server_free(cfg->tls_all[i]->server);
            cfg->tls_all[i]->server = NULL;
        }
    }
}

enum { ADMIN_ADDRESS, ADMIN_TOKEN_ENV };

static int key_admin_token_env(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                               void *obj)
{
    rw_config *cfg = obj;

    (void)key;
    if (rw__cf_get_string(l, v, where, &cfg->admin_token_env))
        return -1;
    if (cfg->admin_token_env == NULL)
        return 0;
    const char *t = getenv(cfg->admin_token_env);
    if (t == NULL || strlen(t) < 16)
        return rw__cf_fail(l, v, "%s: $%s %s (at least 16 characters)", where, cfg->admin_token_env,
                           t == NULL ? "is not set" : "is too short");
    return (cfg->admin_token = rw__cf_dup_mem(l, v, t, strlen(t))) ? 0 : -1;
}

/* The address is read once the other keys are (so a bad token_env is reported first). */
static int check_admin(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj,
                       yaml_node_t *const *seen)
{
    rw_config *cfg = obj;
    char w[64];

    if (seen[ADMIN_ADDRESS] == NULL)
        return rw__cf_fail(l, n, "%s: address is required", where);
    return get_sockaddr(l, seen[ADMIN_ADDRESS], rw__cf_wheref(w, sizeof(w), "%s.address", where),
                        &cfg->admin);
}

static const rw_cf_key admin_keys[] = {
    [ADMIN_ADDRESS] = {.name = "address"}, /* read by check_admin */
    [ADMIN_TOKEN_ENV] = {.name = "token_env", .parse = key_admin_token_env},
};
static const rw_cf_map admin_map = RW_CF_MAP_OF("admin", admin_keys, check_admin);

/* admin: "ADDR:PORT", or {address: "ADDR:PORT", token_env: NAME}. */
static int key_admin(rw_cf_loader *l, yaml_node_t *n, const char *where, const rw_cf_key *key, void *obj)
{
    rw_config *cfg = obj;

    (void)key;
    if (rw__cf_is_null(n))
        return 0;
    if (n->type == YAML_SCALAR_NODE ? get_sockaddr(l, n, where, &cfg->admin)
                                    : rw__cf_map_parse(l, &admin_map, n, where, cfg, NULL))
        return -1;
    cfg->has_admin = true;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        if (addr_conflict(&cfg->admin, &cfg->listen[i]))
            return rw__cf_fail(l, n, "%s: %s overlaps listen address %s", where, cfg->admin.text,
                               cfg->listen[i].text);
    }
    return 0;
}

static int key_metrics_listen(rw_cf_loader *l, yaml_node_t *n, const char *where, const rw_cf_key *key,
                              void *obj)
{
    rw_config *cfg = obj;

    (void)key;
    if (rw__cf_is_null(n))
        return 0;
    if (get_sockaddr(l, n, where, &cfg->metrics_listen))
        return -1;
    cfg->has_metrics_listen = true;
    for (size_t i = 0; i < cfg->nlisten; i++) {
        if (addr_conflict(&cfg->metrics_listen, &cfg->listen[i]) ||
            (cfg->has_admin && addr_conflict(&cfg->metrics_listen, &cfg->admin)))
            return rw__cf_fail(l, n, "%s: %s overlaps a listen or admin address", where,
                               cfg->metrics_listen.text);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Small sections: workers, http, redis, request_id. */

/* workers: auto (0: the CPUs in the affinity mask) or 1..1024. */
static int key_workers(rw_cf_loader *l, yaml_node_t *n, const char *where, const rw_cf_key *key, void *obj)
{
    uint32_t *workers = RW_CF_FIELD(obj, key, uint32_t);

    if (rw__cf_is_null(n))
        return 0;
    if (n->type == YAML_SCALAR_NODE && strcmp(rw__cf_scalar_text(n), "auto") == 0) {
        *workers = 0;
        return 0;
    }
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = rw__cf_scalar_text(n);
        bool digits = *s != '\0';
        for (const char *p = s; *p; p++)
            digits = digits && *p >= '0' && *p <= '9';
        if (!digits)
            return rw__cf_fail(l, n, "%s: expected auto or a number, got '%s'", where, s);
    }
    return rw__cf_get_u32(l, n, where, (uint32_t)key->min, (uint32_t)key->max, workers);
}

enum { HTTP_MAX_REQUEST_LINE = 5 };

/* max_body_bytes: a size, or unlimited (0). */
static int key_max_body(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    uint64_t *out = RW_CF_FIELD(obj, key, uint64_t);

    if (v->type == YAML_SCALAR_NODE && !strcmp(rw__cf_scalar_text(v), "unlimited")) {
        *out = 0;
        return 0;
    }
    return rw__cf_get_size(l, v, where, key->min, key->max, out);
}

static int check_http(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj, yaml_node_t *const *seen)
{
    const rw_http_cfg *h = obj;

    if (h->max_request_line > h->max_header_bytes)
        return rw__cf_fail(l, seen[HTTP_MAX_REQUEST_LINE] ? seen[HTTP_MAX_REQUEST_LINE] : n,
                           "%s.max_request_line: %llu is larger than max_header_bytes (%llu), which "
                           "includes the request line",
                           where, (unsigned long long)h->max_request_line,
                           (unsigned long long)h->max_header_bytes);
    return 0;
}

static const rw_cf_key http_keys[] = {
    RW_CF_MS("client_header_timeout", rw_http_cfg, client_header_timeout_ms, 1, 10000),
    RW_CF_MS("client_body_timeout", rw_http_cfg, client_body_timeout_ms, 1, 60000),
    RW_CF_MS("keepalive_timeout", rw_http_cfg, keepalive_timeout_ms, 0, 75000),
    RW_CF_MS("send_timeout", rw_http_cfg, send_timeout_ms, 1, 60000),
    RW_CF_SIZE("max_header_bytes", rw_http_cfg, max_header_bytes, 1024, 1u << 20, 16384),
    [HTTP_MAX_REQUEST_LINE] =
        RW_CF_SIZE("max_request_line", rw_http_cfg, max_request_line, 64, 1u << 20, 8192),
    {.name = "max_body_bytes",
     .parse = key_max_body,
     .offset = RW_CF_OFF(rw_http_cfg, max_body_bytes, uint64_t),
     .type = RW_CF_T_U64,
     .max = UINT64_MAX,
     .def = 10u << 20},
    RW_CF_U32("max_headers", rw_http_cfg, max_headers, 1, RW_HTTP_MAX_HEADERS, 100),
};
static const rw_cf_map http_map = RW_CF_MAP_OF("http", http_keys, check_http);

static int key_redis_url(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    char **url = RW_CF_FIELD(obj, key, char *);
    char why[256];
    rw_redis_url u;

    if (rw__cf_get_string(l, v, where, url))
        return -1;
    if (*url == NULL)
        return 0;
    if (strncmp(*url, "redis://", 8) != 0)
        return rw__cf_fail(l, v, "%s: '%s' must start with redis:// (TLS and unix sockets are not supported)",
                           where, *url);
    if (rw_redis_url_parse(*url, &u, why, sizeof(why)) != 0)
        return rw__cf_fail(l, v, "%s: %s", where, why);
    return 0;
}

static const char *const redis_failures[] = {"local", "allow", "deny"};
static const rw_cf_choice redis_failure_choice = {"mode", redis_failures, RW_ARRAY_LEN(redis_failures)};

static const rw_cf_key redis_keys[] = {
    RW_CF_CUSTOM("url", key_redis_url, rw_redis_cfg, url, char *, RW_CF_T_STR, 0, RW_CF_REQUIRED),
    RW_CF_MS("sync_interval", rw_redis_cfg, sync_interval_ms, 1, 100),
    RW_CF_CHOICE("on_failure", rw_redis_cfg, on_failure, redis_failure_choice, RW_REDIS_LOCAL),
};
static const rw_cf_map redis_map = RW_CF_MAP_OF("redis", redis_keys, NULL);

/* request_id.header: a header name that can carry the id (sets header_len too). */
static int key_request_id_header(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                                 void *obj)
{
    rw_request_id_cfg *r = obj;
    char *h = NULL;

    (void)key;
    if (rw__cf_get_string(l, v, where, &h))
        return -1;
    if (h == NULL)
        return 0;
    if (rw__cf_check_token(l, v, where, "header name", h))
        return -1;
    if (strlen(h) > 64 || rw_http_is_fixed_hop_by_hop((rw_str){h, strlen(h)}) || !strcasecmp(h, "host") ||
        !strcasecmp(h, "content-length"))
        return rw__cf_fail(l, v, "%s: '%s' cannot carry the request id", where, h);
    r->header = h;
    r->header_len = strlen(h);
    return 0;
}

/* access_log.path: stdout, stderr, off or a file path. */
static int key_alog_path(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_access_log_cfg *a = obj;
    (void)key;
    if (rw__cf_is_null(v))
        return 0;
    if (rw__cf_get_string(l, v, where, &a->path))
        return -1;
    if (a->path[0] == '\0')
        return rw__cf_fail(l, v, "%s: empty (stdout, stderr, off or a file path)", where);
    return 0;
}

/* access_log.sample: a number from 0 to 1. */
static int key_alog_sample(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                           void *obj)
{
    const char *s = "";
    char *end = NULL;
    if (rw__cf_is_null(v))
        return 0;
    if (rw__cf_str_of(l, v, where, &s))
        return -1;
    double d = strtod(s, &end);
    if (end == s || *end != '\0' || !(d >= 0.0 && d <= 1.0))
        return rw__cf_fail(l, v, "%s: '%s' is not a number from 0 to 1", where, s);
    *RW_CF_FIELD(obj, key, uint32_t) = (uint32_t)(d * 1000000.0 + 0.5);
    return 0;
}

static const char *const alog_formats[] = {"json", "text"};
static const rw_cf_choice alog_format_choice = {"format", alog_formats, RW_ARRAY_LEN(alog_formats)};
static const rw_cf_key access_log_keys[] = {
    {.name = "path",
     .parse = key_alog_path,
     .offset = RW_CF_OFF(rw_access_log_cfg, path, char *),
     .type = RW_CF_T_STR,
     .def_str = "stdout"},
    RW_CF_CHOICE("format", rw_access_log_cfg, format, alog_format_choice, RW_ALOG_JSON),
    {.name = "sample",
     .parse = key_alog_sample,
     .offset = RW_CF_OFF(rw_access_log_cfg, sample_ppm, uint32_t),
     .type = RW_CF_T_U32,
     .def = 1000000},
    RW_CF_BOOL("errors_only", rw_access_log_cfg, errors_only, false),
};
static const rw_cf_map access_log_map = RW_CF_MAP_OF("access_log", access_log_keys, NULL);

static const rw_cf_key request_id_keys[] = {
    {.name = "header",
     .parse = key_request_id_header,
     .offset = RW_CF_OFF(rw_request_id_cfg, header, char *),
     .type = RW_CF_T_STR,
     .def_str = "X-Request-Id"},
    RW_CF_BOOL("enabled", rw_request_id_cfg, enabled, true),
};
static const rw_cf_map request_id_map = RW_CF_MAP_OF("request_id", request_id_keys, NULL);

/* ------------------------------------------------------------------------ */
/* The document root. */

static int key_tiers(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    (void)where, (void)key, (void)obj;
    return rw__cf_parse_tiers(l, v);
}

static int key_services(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    (void)where, (void)key, (void)obj;
    return rw__cf_parse_services(l, v, &l->services);
}

static int key_consumers(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    (void)where, (void)key, (void)obj;
    return rw__cf_parse_consumers(l, v);
}

static int key_routes(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    (void)where, (void)key, (void)obj;
    return rw__cf_parse_routes(l, v);
}

static int key_trusted(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_config *cfg = obj;
    (void)key;
    return rw__cf_get_cidr_list(l, v, where, &cfg->trusted_proxies, &cfg->ntrusted_proxies);
}

static int key_filters(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_config *cfg = obj;
    (void)key;
    if (rw__cf_parse_filters(l, v, where, &cfg->filters, &cfg->nfilters))
        return -1;
    return rw__cf_name_rate_limits(l, v, cfg->filters, cfg->nfilters, "global");
}

static const char *const io_modes[] = {"auto", "uring", "epoll"};
static const rw_cf_choice io_choice = {"io mode", io_modes, RW_ARRAY_LEN(io_modes)};

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
    K_ACCESS_LOG,
    K_UPGRADE_SOCKET,
    K__COUNT
};

/* In the order the unknown-key message lists them. */
static const rw_cf_key root_keys[K__COUNT] = {
    [K_LISTEN] = {.name = "listen", .parse = key_listen},
    [K_ADMIN] = {.name = "admin", .parse = key_admin},
    [K_WORKERS] = {.name = "workers",
                   .parse = key_workers,
                   .offset = RW_CF_OFF(rw_config, workers, uint32_t),
                   .type = RW_CF_T_U32,
                   .min = 1,
                   .max = 1024,
                   .def = 0}, /* 0: auto */
    [K_IO] = RW_CF_CHOICE("io", rw_config, io, io_choice, RW_IO_AUTO),
    [K_MAX_CONNS] = RW_CF_U32("max_conns", rw_config, max_conns, 1, 10000000, 65536),
    [K_DRAIN_TIMEOUT] = RW_CF_MS("drain_timeout", rw_config, drain_timeout_ms, 0, 30000),
    [K_SHUTDOWN_DELAY] = RW_CF_MS("shutdown_delay", rw_config, shutdown_delay_ms, 0, 0),
    [K_WATCH_CONFIG] = RW_CF_BOOL("watch_config", rw_config, watch_config, false),
    [K_HTTP] = RW_CF_SUBMAP("http", offsetof(rw_config, http), http_map),
    [K_REDIS] = RW_CF_SUBMAP("redis", offsetof(rw_config, redis), redis_map),
    [K_TIERS] = {.name = "tiers", .parse = key_tiers},
    [K_SERVICES] = {.name = "services", .parse = key_services},
    [K_CONSUMERS] = {.name = "consumers", .parse = key_consumers},
    [K_ROUTES] = {.name = "routes", .parse = key_routes},
    [K_FILTERS] = {.name = "filters", .parse = key_filters},
    [K_TRUSTED] = {.name = "trusted_proxies", .parse = key_trusted},
    [K_SHARD_KEYS] =
        RW_CF_U32("rate_limit_shard_keys", rw_config, rate_limit_shard_keys, 64, 1u << 24, 16384),
    [K_REQUEST_ID] = RW_CF_SUBMAP("request_id", offsetof(rw_config, request_id), request_id_map),
    [K_TRACE_CONTEXT] = RW_CF_BOOL("trace_context", rw_config, trace_context, true),
    [K_METRICS_LISTEN] = {.name = "metrics_listen", .parse = key_metrics_listen},
    [K_ACCESS_LOG] = RW_CF_SUBMAP("access_log", offsetof(rw_config, access_log), access_log_map),
    [K_UPGRADE_SOCKET] = RW_CF_STRING("upgrade_socket", rw_config, upgrade_socket),
};

/* The order sections are read in, so references (tier, service) resolve as
 * they are read and addresses are compared with those before them. */
static const uint8_t root_order[K__COUNT] = {
    K_LISTEN,        K_ADMIN,          K_METRICS_LISTEN, K_WORKERS,        K_IO,         K_MAX_CONNS,
    K_DRAIN_TIMEOUT, K_SHUTDOWN_DELAY, K_WATCH_CONFIG,   K_REQUEST_ID,     K_ACCESS_LOG, K_TRACE_CONTEXT,
    K_HTTP,          K_REDIS,          K_TIERS,          K_SERVICES,       K_CONSUMERS,  K_TRUSTED,
    K_SHARD_KEYS,    K_FILTERS,        K_ROUTES,         K_UPGRADE_SOCKET,
};

_Static_assert(K__COUNT <= RW_CF_MAX_KEYS, "the root has too many keys for rw__cf_map_parse");
static const rw_cf_map root_map = {"", root_keys, K__COUNT, root_order, NULL, false};

static int parse_root(rw_cf_loader *l, yaml_node_t *root)
{
    rw_config *cfg = l->cfg;

    if (root->type != YAML_MAPPING_NODE)
        return rw__cf_fail(l, root, "the top level must be a mapping (listen:, services:, routes:, ...)");
    rw__cf_map_defaults(&root_map, cfg);
    cfg->request_id.header_len = strlen(cfg->request_id.header); /* derived, as key_request_id_header does */
    /* listen's default needs the arena; a listen key replaces it */
    rw_sockaddr *def = rw__cf_alloc(l->arena, sizeof(*def));
    if (!def)
        return rw__cf_oom(l, root);
    rw_parse_sockaddr("0.0.0.0:8080", def);
    cfg->listen = def;
    cfg->nlisten = 1;
    return rw__cf_map_parse(l, &root_map, root, "", cfg, NULL);
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
    if (parse_root(&l, root) != 0)
        goto out;
    if (build_tls(&l, cfg) != 0) {
        free_tls(cfg);
        goto out;
    }
    *out = cfg;
    arena = NULL; /* owned by *out now */
    rc = 0;
out:
    if (doc_ok)
        yaml_document_delete(&doc);
    if (parser_ok)
        yaml_parser_delete(&parser);
    rw__cf_arena_destroy(arena);
    rw__cf_strset_free(&l.services);
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
    if (rc == 0 && out != NULL && *out != NULL) {
        uint64_t h = rw_fnv1a(RW_FNV1A_INIT, buf, len);
        (*out)->source_hash = h == 0 ? 1 : h; /* as the config watch hashes the file */
    }
    free(buf);
    return rc;
}

void rw_config_free(rw_config *cfg)
{
    if (cfg)
        free_tls(cfg);
    if (cfg)
        rw__cf_arena_destroy(cfg->arena);
}
