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

static const char *const lb_policies[] = {"round_robin", "least_conn", "p2c", "hash"};
static const rw_cf_choice lb_choice = {"policy", lb_policies, RW_ARRAY_LEN(lb_policies)};

static const rw_cf_map service_map;

static int check_service(rw_cf_loader *l, yaml_node_t *n, const char *where, void *obj,
                         yaml_node_t *const *seen)
{
    rw_service_cfg *svc = obj;
    const yaml_node_t *hash_on = rw__cf_seen(&service_map, seen, "hash_on");
    const yaml_node_t *instances = rw__cf_seen(&service_map, seen, "instances");
    char owner[MAX_NAME_LEN + 16];

    snprintf(owner, sizeof(owner), "service.%s", svc->name);
    if (rw__cf_name_rate_limits(l, n, svc->filters, svc->nfilters, owner))
        return -1;
    if (hash_on && !rw__cf_is_null(hash_on) && svc->lb != RW_LB_HASH)
        return rw__cf_fail(l, hash_on, "%s.hash_on: only applies with lb: hash", where);
    if (!instances || rw__cf_is_null(instances) || svc->ninstances == 0)
        return rw__cf_fail(l, instances && !rw__cf_is_null(instances) ? instances : n,
                           "%s: needs at least one instance", where);
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
    RW_CF_SUBMAP("keepalive", 0, keepalive_map),
    {.name = "instances", .parse = key_instances},
    {.name = "filters", .parse = key_service_filters},
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
