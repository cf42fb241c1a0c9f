/* config_services.c - the services section: load balancing, timeouts,
 * connection limits, keep-alive and the instances (resolved at load). */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "config_int.h"
#include "ringway/common.h"

/* ------------------------------------------------------------------------ */
/* services */

/* Splits "host:port" / "[v6]:port", validates and resolves it. */
static int parse_instance_address(rw_cf_loader *l, const yaml_node_t *n, const char *where,
                                  rw_instance_cfg *ins)
{
    const char *s = "";
    const char *host, *port_s;
    size_t hlen;
    bool literal6 = false;

    if (rw__cf_str_of(l, n, where, &s))
        return -1;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            goto bad;
        host = s + 1;
        hlen = (size_t)(end - host);
        port_s = end + 2;
        literal6 = true;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon)
            return rw__cf_fail(l, n, "%s: address '%s' needs a port (host:port)", where, s);
        host = s;
        hlen = (size_t)(colon - s);
        port_s = colon + 1;
        if (memchr(host, ':', hlen))
            return rw__cf_fail(l, n, "%s: address '%s': write an IPv6 address as [addr]:port", where, s);
    }
    if (hlen == 0 || hlen > 253)
        goto bad;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_' || (literal6 && c == ':')))
            goto bad;
    }
    size_t plen = strlen(port_s);
    unsigned port = 0;
    if (plen == 0 || plen > 5)
        goto bad_port;
    for (const char *p = port_s; *p; p++) {
        if (*p < '0' || *p > '9')
            goto bad_port;
        port = port * 10 + (unsigned)(*p - '0');
    }
    if (port < 1 || port > 65535)
        goto bad_port;

    ins->address = rw__cf_dup_mem(l, n, s, strlen(s));
    ins->host = rw__cf_dup_mem(l, n, host, hlen);
    if (!ins->address || !ins->host)
        return -1;
    ins->port = (uint16_t)port;
    ins->authority = ins->address;

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (literal6 ? AI_NUMERICHOST : 0);
    int rc = getaddrinfo(ins->host, port_s, &hints, &res);
    if (rc != 0 || !res) {
        if (res)
            freeaddrinfo(res);
        return rw__cf_fail(l, n, "%s: cannot resolve '%s': %s", where, ins->host,
                           rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    }
    if (res->ai_addrlen > sizeof(ins->addr.ss) || (res->ai_family != AF_INET && res->ai_family != AF_INET6)) {
        freeaddrinfo(res);
        return rw__cf_fail(l, n, "%s: '%s' resolved to an unsupported address family", where, ins->host);
    }
    memcpy(&ins->addr.ss, res->ai_addr, res->ai_addrlen);
    ins->addr.len = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    rw_sockaddr_format(&ins->addr);
    return 0;

bad:
    return rw__cf_fail(l, n, "%s: invalid address '%s' (expected host:port or [ipv6]:port)", where, s);
bad_port:
    return rw__cf_fail(l, n, "%s: address '%s' has an invalid port (expected 1..65535)", where, s);
}

static int key_instance_address(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                                void *obj)
{
    (void)key;
    if (rw__cf_is_null(v))
        return 0;
    return parse_instance_address(l, v, where, obj);
}

static const rw_cf_key instance_keys[] = {
    {.name = "address", .parse = key_instance_address, .flags = RW_CF_REQUIRED},
    RW_CF_U32("weight", rw_instance_cfg, weight, 1, 1000, 1),
};
static const rw_cf_map instance_map = RW_CF_MAP_OF("instance", instance_keys, NULL);

/* An instance: {address: "host:port", weight: N} or just "host:port". */
static int parse_instance(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_instance_cfg *ins)
{
    rw__cf_map_defaults(&instance_map, ins);
    ins->line = (int)rw__cf_line_of(n);
    if (n->type == YAML_SCALAR_NODE && !rw__cf_is_null(n)) /* shorthand: "10.0.0.1:3001" */
        return parse_instance_address(l, n, where, ins);
    return rw__cf_map_parse(l, &instance_map, n, where, ins, NULL);
}

/* hash_on: ip, header:NAME or cookie:NAME (with lb: hash). */
static int key_hash_on(rw_cf_loader *l, yaml_node_t *n, const char *where, const rw_cf_key *key, void *obj)
{
    rw_service_cfg *svc = obj;
    const char *s = "";

    (void)key;
    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_str_of(l, n, where, &s))
        return -1;
    if (!strcmp(s, "ip")) {
        svc->hash_on = RW_HASH_IP;
        return 0;
    }
    const char *name;
    if (!strncmp(s, "header:", 7)) {
        svc->hash_on = RW_HASH_HEADER;
        name = s + 7;
    } else if (!strncmp(s, "cookie:", 7)) {
        svc->hash_on = RW_HASH_COOKIE;
        name = s + 7;
    } else {
        return rw__cf_fail(l, n, "%s: unknown hash key '%s' (expected ip, header:NAME or cookie:NAME)", where,
                           s);
    }
    if (rw__cf_check_token(l, n, where, svc->hash_on == RW_HASH_HEADER ? "header name" : "cookie name", name))
        return -1;
    svc->hash_key = rw__cf_dup_mem(l, n, name, strlen(name));
    return svc->hash_key ? 0 : -1;
}

/* instances: a list of instances, no address twice. */
static int key_instances(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_service_cfg *svc = obj;
    char iw[320];
    int rc = 0;

    (void)key;
    if (rw__cf_is_null(v))
        return 0;
    if (rw__cf_check_list(l, v, where, false))
        return -1;
    size_t len = SEQ_LEN(v);
    svc->instances = rw__cf_array(l->arena, len, sizeof(*svc->instances));
    if (!svc->instances)
        return rw__cf_oom(l, v);
    for (size_t i = 0; i < len && rc == 0; i++) {
        yaml_node_t *it = rw__cf_list_item(l, v, i);
        rw__cf_wheref(iw, sizeof(iw), "%s[%zu]", where, i);
        if (!it)
            return rw__cf_fail(l, v, "%s: missing entry", iw);
        rc = parse_instance(l, it, iw, &svc->instances[i]);
        for (size_t j = 0; j < i && rc == 0; j++) {
            if (svc->instances[j].addr.len == svc->instances[i].addr.len &&
                !memcmp(&svc->instances[j].addr.ss, &svc->instances[i].addr.ss, svc->instances[i].addr.len))
                rc = rw__cf_fail(l, it, "%s: %s is already instance %zu (%s)", iw, svc->instances[i].address,
                                 j, svc->instances[j].address);
        }
    }
    svc->ninstances = len;
    return rc;
}

static int key_service_filters(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key,
                               void *obj)
{
    rw_service_cfg *svc = obj;
    (void)key;
    return rw__cf_parse_filters(l, v, where, &svc->filters, &svc->nfilters);
}

static const rw_cf_key timeouts_keys[] = {
    RW_CF_MS("connect", rw_service_cfg, connect_timeout_ms, 1, 5000),
    RW_CF_MS("first_byte", rw_service_cfg, first_byte_timeout_ms, 1, 60000),
    RW_CF_MS("total", rw_service_cfg, total_timeout_ms, 0, 0),
    RW_CF_MS("queue", rw_service_cfg, queue_timeout_ms, 1, 0), /* 0: the connect timeout */
};
static const rw_cf_map timeouts_map = RW_CF_MAP_OF("timeouts", timeouts_keys, NULL);

static const rw_cf_key keepalive_keys[] = {
    RW_CF_U32("max_idle", rw_service_cfg, keepalive_max_idle, 0, 100000, 64),
    RW_CF_MS("idle_timeout", rw_service_cfg, keepalive_idle_timeout_ms, 1, 60000),
};
static const rw_cf_map keepalive_map = RW_CF_MAP_OF("keepalive", keepalive_keys, NULL);

/* ---- health checks, outlier detection, retries, discovery ---- */

/* A share written "N%", at most key->max. */
static int key_percent(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    const char *s = "";
    unsigned pct = 0;
    int used = 0;

    if (rw__cf_is_null(v))
        return 0;
    if (rw__cf_str_of(l, v, where, &s))
        return -1;
    if (sscanf(s, "%3u%%%n", &pct, &used) != 1 || s[used] != '\0' || pct > key->max)
        return rw__cf_fail(l, v, "%s: invalid share '%s' (expected a percentage like 10%%, at most %u%%)",
                           where, s, (unsigned)key->max);
    *RW_CF_FIELD(obj, key, uint32_t) = pct;
    return 0;
}

/* One status or range of health_check.expect: 200, "200-399" or "2xx". */
static int parse_expect_item(rw_cf_loader *l, const yaml_node_t *n, const char *where, uint16_t *lo,
                             uint16_t *hi)
{
    const char *s = "";
    unsigned a = 0, b = 0;
    int used = 0;

    if (rw__cf_str_of(l, n, where, &s))
        return -1;
    if (strlen(s) == 3 && s[0] >= '1' && s[0] <= '5' && s[1] == 'x' && s[2] == 'x') {
        a = (unsigned)(s[0] - '0') * 100;
        b = a + 99;
    } else if (sscanf(s, "%3u-%3u%n", &a, &b, &used) == 2 && s[used] == '\0') {
        /* a range */
    } else if (sscanf(s, "%3u%n", &a, &used) == 1 && s[used] == '\0') {
        b = a;
    } else {
        return rw__cf_fail(l, n, "%s: invalid status '%s' (expected e.g. 200, 200-399 or 2xx)", where, s);
    }
    if (a < 100 || b > 599 || a > b)
        return rw__cf_fail(l, n, "%s: status range '%s' is outside 100-599 or reversed", where, s);
    *lo = (uint16_t)a;
    *hi = (uint16_t)b;
    return 0;
}

static int key_hc_expect(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_health_check_cfg *hc = obj;
    char iw[340];

    (void)key;
    if (rw__cf_is_null(v))
        return 0;
    if (rw__cf_check_list(l, v, where, true))
        return -1;
    size_t len = rw__cf_list_len(v);
    if (len == 0 || len > RW_HC_MAX_EXPECT)
        return rw__cf_fail(l, v, "%s: expected 1 to %d statuses or ranges", where, RW_HC_MAX_EXPECT);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = rw__cf_list_item(l, v, i);
        rw__cf_wheref(iw, sizeof(iw), "%s[%zu]", where, i);
        if (!it)
            return rw__cf_fail(l, v, "%s: missing entry", iw);
        if (parse_expect_item(l, it, iw, &hc->expect_lo[i], &hc->expect_hi[i]))
            return -1;
    }
    hc->nexpect = (uint32_t)len;
    return 0;
}

static int key_hc_path(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_health_check_cfg *hc = obj;

    (void)key;
    if (rw__cf_is_null(v))
        return 0;
    if (rw__cf_get_string(l, v, where, &hc->path))
        return -1;
    if (hc->path[0] != '/')
        return rw__cf_fail(l, v, "%s: must start with '/'", where);
    for (const char *c = hc->path; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return rw__cf_fail(l, v, "%s: control characters and spaces are not allowed", where);
    return 0;
}

static int key_hc_host(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_health_check_cfg *hc = obj;

    (void)key;
    if (rw__cf_is_null(v))
        return 0;
    if (rw__cf_get_string(l, v, where, &hc->host))
        return -1;
    return rw__cf_check_field_value(l, v, where, hc->host);
}

static int check_health_check(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj,
                              yaml_node_t *const *seen);
static const char *const hc_types[] = {"http", "tcp"};
static const rw_cf_choice hc_type_choice = {"type", hc_types, RW_ARRAY_LEN(hc_types)};
static const char *const hc_methods[] = {"GET", "HEAD"};
static const rw_cf_choice hc_method_choice = {"method", hc_methods, RW_ARRAY_LEN(hc_methods)};
static const rw_cf_key health_check_keys[] = {
    RW_CF_BOOL("enabled", rw_health_check_cfg, enabled, 0), /* true once health_check: is given */
    RW_CF_CHOICE("type", rw_health_check_cfg, type, hc_type_choice, RW_HC_HTTP),
    RW_CF_CUSTOM("path", key_hc_path, rw_health_check_cfg, path, char *, RW_CF_T_STR, 0, 0),
    RW_CF_CHOICE("method", rw_health_check_cfg, method, hc_method_choice, 0),
    RW_CF_CUSTOM("host", key_hc_host, rw_health_check_cfg, host, char *, RW_CF_T_STR, 0, 0),
    RW_CF_MS("interval", rw_health_check_cfg, interval_ms, 100, 5000),
    RW_CF_MS("timeout", rw_health_check_cfg, timeout_ms, 10, 1000),
    RW_CF_U32("healthy", rw_health_check_cfg, healthy, 1, 100, 2),
    RW_CF_U32("unhealthy", rw_health_check_cfg, unhealthy, 1, 100, 3),
    {.name = "expect", .parse = key_hc_expect},
    {.name = "jitter",
     .parse = key_percent,
     .offset = RW_CF_OFF(rw_health_check_cfg, jitter_pct, uint32_t),
     .type = RW_CF_T_U32,
     .max = 50,
     .def = 10},
};
static const rw_cf_map health_check_map = RW_CF_MAP_OF("health_check", health_check_keys, check_health_check);

static int check_health_check(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj,
                              yaml_node_t *const *seen)
{
    rw_health_check_cfg *hc = obj;
    const yaml_node_t *timeout = rw__cf_seen(&health_check_map, seen, "timeout");
    if (rw__cf_seen(&health_check_map, seen, "enabled") == NULL)
        hc->enabled = true;
    if (hc->nexpect == 0) {
        hc->expect_lo[0] = 200;
        hc->expect_hi[0] = 399;
        hc->nexpect = 1;
    }
    if (timeout == NULL && hc->timeout_ms >= hc->interval_ms)
        hc->timeout_ms = hc->interval_ms / 2; /* the default (1s) is for intervals above it */
    if (hc->timeout_ms >= hc->interval_ms)
        return rw__cf_fail(l, timeout ? timeout : n, "%s.timeout: must be shorter than the interval (%ums)",
                           where, hc->interval_ms);
    return 0;
}

/* The failure kinds of outlier.on / retries.on; allowed: RW_FAILON_* bits. */
static int parse_fail_on(rw_cf_loader *l, yaml_node_t *n, const char *where, uint32_t allowed, uint32_t *out)
{
    static const struct {
        const char *name;
        uint32_t bit;
    } kinds[] = {{"connect_failure", RW_FAILON_CONNECT},
                 {"reset", RW_FAILON_RESET},
                 {"timeout", RW_FAILON_TIMEOUT},
                 {"5xx", RW_FAILON_5XX},
                 {"502", RW_FAILON_502},
                 {"503", RW_FAILON_503},
                 {"504", RW_FAILON_504}};
    char iw[340], expected[120] = "";
    size_t off = 0;

    for (size_t j = 0; j < RW_ARRAY_LEN(kinds); j++)
        if ((allowed & kinds[j].bit) && off < sizeof(expected))
            off += (size_t)snprintf(expected + off, sizeof(expected) - off, "%s%s", off ? ", " : "",
                                    kinds[j].name);
    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_list(l, n, where, true))
        return -1;
    uint32_t bits = 0;
    for (size_t i = 0; i < rw__cf_list_len(n); i++) {
        yaml_node_t *it = rw__cf_list_item(l, n, i);
        const char *s = "";
        rw__cf_wheref(iw, sizeof(iw), "%s[%zu]", where, i);
        if (!it)
            return rw__cf_fail(l, n, "%s: missing entry", iw);
        if (rw__cf_str_of(l, it, iw, &s))
            return -1;
        size_t j = 0;
        while (j < RW_ARRAY_LEN(kinds) && (strcmp(s, kinds[j].name) != 0 || !(allowed & kinds[j].bit)))
            j++;
        if (j == RW_ARRAY_LEN(kinds))
            return rw__cf_fail(l, it, "%s: unknown failure '%s' (expected %s)", iw, s, expected);
        bits |= kinds[j].bit;
    }
    *out = bits;
    return 0;
}

/* outlier.on or retries.on: the kinds allowed are key->max. */
static int key_fail_on(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    return parse_fail_on(l, v, where, (uint32_t)key->max, RW_CF_FIELD(obj, key, uint32_t));
}

#define OUTLIER_ON (RW_FAILON_CONNECT | RW_FAILON_RESET | RW_FAILON_TIMEOUT | RW_FAILON_5XX)
#define RETRY_ON                                                                                             \
    (RW_FAILON_CONNECT | RW_FAILON_RESET | RW_FAILON_TIMEOUT | RW_FAILON_502 | RW_FAILON_503 | RW_FAILON_504)

static int check_outlier(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj,
                         yaml_node_t *const *seen);
static const rw_cf_key outlier_keys[] = {
    RW_CF_BOOL("enabled", rw_outlier_cfg, enabled, 0), /* true once outlier: is given */
    RW_CF_U32("consecutive_failures", rw_outlier_cfg, consecutive_failures, 1, 10000, 5),
    RW_CF_MS("base_ejection", rw_outlier_cfg, base_ejection_ms, 100, 30000),
    RW_CF_MS("max_ejection", rw_outlier_cfg, max_ejection_ms, 100, 300000),
    RW_CF_U32("max_ejected_percent", rw_outlier_cfg, max_ejected_percent, 0, 100, 50),
    {.name = "on",
     .parse = key_fail_on,
     .offset = RW_CF_OFF(rw_outlier_cfg, on, uint32_t),
     .type = RW_CF_T_U32,
     .max = OUTLIER_ON,
     .def = OUTLIER_ON},
};
static const rw_cf_map outlier_map = RW_CF_MAP_OF("outlier", outlier_keys, check_outlier);

static int check_outlier(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj,
                         yaml_node_t *const *seen)
{
    rw_outlier_cfg *o = obj;
    const yaml_node_t *max = rw__cf_seen(&outlier_map, seen, "max_ejection");
    if (rw__cf_seen(&outlier_map, seen, "enabled") == NULL)
        o->enabled = true;
    if (o->max_ejection_ms < o->base_ejection_ms)
        return rw__cf_fail(l, max ? max : n, "%s.max_ejection: must be at least base_ejection (%ums)", where,
                           o->base_ejection_ms);
    return 0;
}

static int key_backoff(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    uint32_t *ms = RW_CF_FIELD(obj, key, uint32_t);
    if (rw__cf_get_ms(l, v, where, 0, ms))
        return -1;
    return *ms > 60000 ? rw__cf_fail(l, v, "%s: at most 60s", where) : 0;
}

static const rw_cf_key retries_keys[] = {
    RW_CF_U32("attempts", rw_retries_cfg, attempts, 1, RW_MAX_ATTEMPTS, 2),
    {.name = "on",
     .parse = key_fail_on,
     .offset = RW_CF_OFF(rw_retries_cfg, on, uint32_t),
     .type = RW_CF_T_U32,
     .max = RETRY_ON,
     .def = RW_FAILON_CONNECT},
    {.name = "backoff",
     .parse = key_backoff,
     .offset = RW_CF_OFF(rw_retries_cfg, backoff_ms, uint32_t),
     .type = RW_CF_T_U32},
    {.name = "budget",
     .parse = key_percent,
     .offset = RW_CF_OFF(rw_retries_cfg, budget_pct, uint32_t),
     .type = RW_CF_T_U32,
     .max = 100,
     .def = 20},
    RW_CF_U32("budget_min", rw_retries_cfg, budget_min, 0, 100000, 3),
    RW_CF_BOOL("retry_non_idempotent", rw_retries_cfg, non_idempotent, 0),
};
static const rw_cf_map retries_map = RW_CF_MAP_OF("retries", retries_keys, NULL);

/* discovery.dns: NAME:PORT */
static int key_dns(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_discovery_cfg *d = obj;
    const char *s = "";
    unsigned port = 0;
    int used = 0;

    (void)key;
    if (rw__cf_is_null(v))
        return 0;
    if (rw__cf_str_of(l, v, where, &s))
        return -1;
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || sscanf(colon + 1, "%5u%n", &port, &used) != 1 ||
        colon[1 + used] != '\0' || port < 1 || port > 65535)
        return rw__cf_fail(l, v, "%s: '%s' must be NAME:PORT (e.g. billing.default.svc.cluster.local:8080)",
                           where, s);
    size_t hlen = (size_t)(colon - s);
    if (hlen > 253)
        return rw__cf_fail(l, v, "%s: name too long (at most 253 bytes)", where);
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_'))
            return rw__cf_fail(l, v, "%s: '%.*s' is not a DNS name", where, (int)hlen, s);
    }
    d->dns_name = rw__cf_dup_mem(l, v, s, hlen);
    d->dns_port = (uint16_t)port;
    return d->dns_name != NULL ? 0 : -1;
}

static int key_resolver(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_discovery_cfg *d = obj;
    const char *s = "";

    (void)key;
    if (rw__cf_is_null(v))
        return 0;
    if (rw__cf_str_of(l, v, where, &s))
        return -1;
    if (rw_parse_sockaddr(s, &d->resolver) != 0)
        return rw__cf_fail(l, v, "%s: invalid address '%s' (expected IP:PORT or [IPV6]:PORT)", where, s);
    d->has_resolver = true;
    return 0;
}

static int key_disc_redis(rw_cf_loader *l, yaml_node_t *v, const char *where, const rw_cf_key *key, void *obj)
{
    rw_discovery_cfg *d = obj;

    (void)key;
    if (rw__cf_get_bool(l, v, where, &d->redis))
        return -1;
    if (d->redis && l->cfg->redis.url == NULL)
        return rw__cf_fail(l, v, "%s: needs the top-level redis: (url)", where);
    return 0;
}

static int check_discovery(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj,
                           yaml_node_t *const *seen)
{
    const rw_discovery_cfg *d = obj;
    (void)seen;
    if (d->dns_name == NULL && !d->redis)
        return rw__cf_fail(l, n, "%s: needs dns: NAME:PORT or redis: true", where);
    return 0;
}

static const rw_cf_key discovery_keys[] = {
    RW_CF_CUSTOM("dns", key_dns, rw_discovery_cfg, dns_name, char *, RW_CF_T_STR, 0, 0),
    RW_CF_MS("interval", rw_discovery_cfg, interval_ms, 100, 5000),
    RW_CF_CUSTOM("resolver", key_resolver, rw_discovery_cfg, has_resolver, bool, RW_CF_T_BOOL, 0, 0),
    RW_CF_U32("weight", rw_discovery_cfg, dns_weight, 1, 1000, 1),
    RW_CF_CUSTOM("redis", key_disc_redis, rw_discovery_cfg, redis, bool, RW_CF_T_BOOL, 0, 0),
};
static const rw_cf_map discovery_map = RW_CF_MAP_OF("discovery", discovery_keys, check_discovery);

/* services[].tls */
static const rw_cf_key upstream_tls_keys[] = {
    RW_CF_STRING("sni", rw_upstream_tls_cfg, sni),
    RW_CF_STRING("ca_file", rw_upstream_tls_cfg, ca_file),
    RW_CF_BOOL("verify", rw_upstream_tls_cfg, verify, true),
    RW_CF_STRING("cert_file", rw_upstream_tls_cfg, cert_file),
    RW_CF_STRING("key_file", rw_upstream_tls_cfg, key_file),
};
static const rw_cf_map upstream_tls_map = RW_CF_MAP_OF("tls", upstream_tls_keys, NULL);

static int key_upstream_tls(rw_cf_loader *l, yaml_node_t *n, const char *where, const rw_cf_key *key,
                            void *obj)
{
    rw_service_cfg *svc = obj;
    (void)key;
    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_map(l, n, where))
        return -1;
    rw_upstream_tls_cfg *t = rw__cf_alloc(l->arena, sizeof(*t));
    if (!t)
        return rw__cf_oom(l, n);
    rw__cf_map_defaults(&upstream_tls_map, t);
    t->line = (int)rw__cf_line_of(n);
    if (rw__cf_map_parse(l, &upstream_tls_map, n, where, t, NULL))
        return -1;
    if ((t->cert_file == NULL) != (t->key_file == NULL))
        return rw__cf_fail(l, n, "%s: cert_file and key_file go together", where);
    if (t->sni != NULL && (t->sni[0] == '\0' || strlen(t->sni) > 253))
        return rw__cf_fail(l, n, "%s.sni: must be a host name", where);
    if ((t->ca_file && rw__cf_resolve_path(l, n, where, t->ca_file, &t->ca_file)) ||
        (t->cert_file && rw__cf_resolve_path(l, n, where, t->cert_file, &t->cert_file)) ||
        (t->key_file && rw__cf_resolve_path(l, n, where, t->key_file, &t->key_file)))
        return -1;
    svc->tls = t;
    return 0;
}

static const char *const lb_policies[] = {"round_robin", "least_conn", "p2c", "hash"};
static const rw_cf_choice lb_choice = {"policy", lb_policies, RW_ARRAY_LEN(lb_policies)};

static const rw_cf_map service_map;

static int check_service(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj,
                         yaml_node_t *const *seen)
{
    rw_service_cfg *svc = obj;
    const yaml_node_t *hash_on = rw__cf_seen(&service_map, seen, "hash_on");
    const yaml_node_t *instances = rw__cf_seen(&service_map, seen, "instances");
    const yaml_node_t *discovery = rw__cf_seen(&service_map, seen, "discovery");
    char owner[MAX_NAME_LEN + 16];

    snprintf(owner, sizeof(owner), "service.%s", svc->name);
    if (rw__cf_name_rate_limits(l, n, svc->filters, svc->nfilters, owner))
        return -1;
    if (hash_on && !rw__cf_is_null(hash_on) && svc->lb != RW_LB_HASH)
        return rw__cf_fail(l, hash_on, "%s.hash_on: only applies with lb: hash", where);
    if ((!instances || rw__cf_is_null(instances) || svc->ninstances == 0) &&
        (!discovery || rw__cf_is_null(discovery)))
        return rw__cf_fail(l, instances && !rw__cf_is_null(instances) ? instances : n,
                           "%s: needs at least one instance (or discovery:)", where);
    if (svc->tls != NULL && svc->health_check.enabled && svc->health_check.type == RW_HC_HTTP)
        return rw__cf_fail(l, rw__cf_seen(&service_map, seen, "health_check"),
                           "%s.health_check: an http check cannot reach a TLS service (health checks do not "
                           "speak TLS): use type: tcp",
                           where);
    return 0;
}

/* A service's keys, in the order the unknown-key message lists them. A new
 * key is a row here (its default in the row), plus a parser function when no
 * rw__cf_key_* one fits; a nested mapping is a table of its own over the
 * service's fields (RW_CF_SUBMAP), like timeouts. */
static const rw_cf_key service_keys[] = {
    RW_CF_NAME("name", rw_service_cfg, name, RW_CF_REQUIRED),
    RW_CF_CHOICE("lb", rw_service_cfg, lb, lb_choice, RW_LB_ROUND_ROBIN),
    RW_CF_CUSTOM("hash_on", key_hash_on, rw_service_cfg, hash_on, int, RW_CF_T_INT, RW_HASH_IP, 0),
    RW_CF_SUBMAP("timeouts", 0, timeouts_map),
    RW_CF_U32("max_conns", rw_service_cfg, max_conns, 0, 1000000, 1024),
    RW_CF_U32("max_requests", rw_service_cfg, max_requests, 0, 10000000, 0),
    RW_CF_SUBMAP("keepalive", 0, keepalive_map),
    {.name = "instances", .parse = key_instances},
    RW_CF_SUBMAP("discovery", offsetof(rw_service_cfg, discovery), discovery_map),
    RW_CF_SUBMAP("health_check", offsetof(rw_service_cfg, health_check), health_check_map),
    RW_CF_SUBMAP("outlier", offsetof(rw_service_cfg, outlier), outlier_map),
    RW_CF_SUBMAP("retries", offsetof(rw_service_cfg, retries), retries_map),
    {.name = "filters", .parse = key_service_filters},
    {.name = "tls", .parse = key_upstream_tls},
};
static const rw_cf_map service_map = RW_CF_MAP_OF("service", service_keys, check_service);

static int parse_service(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_service_cfg *svc)
{
    rw__cf_map_defaults(&service_map, svc);
    svc->line = (int)rw__cf_line_of(n);
    return rw__cf_map_parse(l, &service_map, n, where, svc, NULL);
}

int rw__cf_parse_services(rw_cf_loader *l, yaml_node_t *n, rw_cf_strset *names)
{
    rw_config *cfg = l->cfg;
    char w[64];

    if (rw__cf_is_null(n))
        return 0;
    if (rw__cf_check_list(l, n, "services", false))
        return -1;
    size_t len = SEQ_LEN(n);
    cfg->services = rw__cf_array(l->arena, len, sizeof(*cfg->services));
    if (!cfg->services)
        return rw__cf_oom(l, n);
    for (size_t i = 0; i < len; i++) {
        yaml_node_t *it = rw__cf_list_item(l, n, i);
        rw_service_cfg *svc = &cfg->services[i];
        rw__cf_wheref(w, sizeof(w), "services[%zu]", i);
        if (!it)
            return rw__cf_fail(l, n, "%s: missing entry", w);
        if (parse_service(l, it, w, svc))
            return -1;
        int old = 0, put = rw__cf_strset_put(names, svc->name, (int)i, &old);
        if (put < 0)
            return rw__cf_oom(l, it);
        if (put == 0)
            return rw__cf_fail(l, it, "%s: duplicate service name '%s' (also services[%d])", w, svc->name,
                               old);
        cfg->nservices = i + 1;
    }
    return 0;
}
