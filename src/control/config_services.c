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

static int parse_instance(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_instance_cfg *ins)
{
    char w[300];
    const yaml_node_t *addr = NULL;

    ins->weight = 1;
    ins->line = (int)rw__cf_line_of(n);
    if (n->type == YAML_SCALAR_NODE && !rw__cf_is_null(n)) /* shorthand: "10.0.0.1:3001" */
        return parse_instance_address(l, n, where, ins);
    if (rw__cf_check_map(l, n, where))
        return -1;
    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        const char *key = rw__cf_scalar_text(k);
        rw__cf_wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "address")) {
            if (!rw__cf_is_null(v) && parse_instance_address(l, v, w, ins))
                return -1;
            addr = rw__cf_is_null(v) ? NULL : v;
        } else if (!strcmp(key, "weight")) {
            if (rw__cf_get_u32(l, v, w, 1, 1000, &ins->weight))
                return -1;
        } else {
            return rw__cf_unknown_key(l, k, where, "instance", "address, weight");
        }
    }
    if (!addr)
        return rw__cf_fail(l, n, "%s: address is required", where);
    return 0;
}

static int parse_hash_on(rw_cf_loader *l, const yaml_node_t *n, const char *where, rw_service_cfg *svc)
{
    const char *s = "";

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

static int parse_service(rw_cf_loader *l, yaml_node_t *n, const char *where, rw_service_cfg *svc)
{
    static const char keys[] = "name, lb, hash_on, timeouts, max_conns, keepalive, instances, filters";
    static const char *const policies[] = {"round_robin", "least_conn", "p2c", "hash"};
    char w[300], iw[320];
    const yaml_node_t *hash_on = NULL, *instances = NULL;

    svc->lb = RW_LB_ROUND_ROBIN;
    svc->hash_on = RW_HASH_IP;
    svc->connect_timeout_ms = 5000;
    svc->first_byte_timeout_ms = 60000;
    svc->total_timeout_ms = 0;
    svc->queue_timeout_ms = 0;
    svc->max_conns = 1024;
    svc->keepalive_max_idle = 64;
    svc->keepalive_idle_timeout_ms = 60000;
    svc->line = (int)rw__cf_line_of(n);
    if (rw__cf_check_map(l, n, where))
        return -1;

    MAP_EACH(n, pr)
    {
        yaml_node_t *k = rw__cf_node_at(l, pr->key), *v = rw__cf_node_at(l, pr->value);
        const char *key = rw__cf_scalar_text(k);
        int rc = 0;
        rw__cf_wheref(w, sizeof(w), "%s.%s", where, key);
        if (!strcmp(key, "name"))
            rc = rw__cf_get_name(l, v, w, &svc->name);
        else if (!strcmp(key, "lb"))
            rc = rw__cf_get_choice(l, v, w, "policy", policies, RW_ARRAY_LEN(policies), &svc->lb);
        else if (!strcmp(key, "hash_on")) {
            if (!rw__cf_is_null(v)) {
                hash_on = v;
                rc = parse_hash_on(l, v, w, svc);
            }
        } else if (!strcmp(key, "timeouts")) {
            if (!rw__cf_is_null(v) && (rc = rw__cf_check_map(l, v, w)) == 0) {
                MAP_EACH(v, tp)
                {
                    yaml_node_t *tk = rw__cf_node_at(l, tp->key), *tv = rw__cf_node_at(l, tp->value);
                    const char *tkey = rw__cf_scalar_text(tk);
                    rw__cf_wheref(iw, sizeof(iw), "%s.%s", w, tkey);
                    if (!strcmp(tkey, "connect"))
                        rc = rw__cf_get_ms(l, tv, iw, 1, &svc->connect_timeout_ms);
                    else if (!strcmp(tkey, "first_byte"))
                        rc = rw__cf_get_ms(l, tv, iw, 1, &svc->first_byte_timeout_ms);
                    else if (!strcmp(tkey, "total"))
                        rc = rw__cf_get_ms(l, tv, iw, 0, &svc->total_timeout_ms);
                    else if (!strcmp(tkey, "queue"))
                        rc = rw__cf_get_ms(l, tv, iw, 1, &svc->queue_timeout_ms);
                    else
                        rc = rw__cf_unknown_key(l, tk, w, "timeouts", "connect, first_byte, total, queue");
                    if (rc)
                        break;
                }
            }
        } else if (!strcmp(key, "max_conns")) {
            rc = rw__cf_get_u32(l, v, w, 0, 1000000, &svc->max_conns);
        } else if (!strcmp(key, "keepalive")) {
            if (!rw__cf_is_null(v) && (rc = rw__cf_check_map(l, v, w)) == 0) {
                MAP_EACH(v, kp)
                {
                    yaml_node_t *kk = rw__cf_node_at(l, kp->key), *kv = rw__cf_node_at(l, kp->value);
                    const char *kkey = rw__cf_scalar_text(kk);
                    rw__cf_wheref(iw, sizeof(iw), "%s.%s", w, kkey);
                    if (!strcmp(kkey, "max_idle"))
                        rc = rw__cf_get_u32(l, kv, iw, 0, 100000, &svc->keepalive_max_idle);
                    else if (!strcmp(kkey, "idle_timeout"))
                        rc = rw__cf_get_ms(l, kv, iw, 1, &svc->keepalive_idle_timeout_ms);
                    else
                        rc = rw__cf_unknown_key(l, kk, w, "keepalive", "max_idle, idle_timeout");
                    if (rc)
                        break;
                }
            }
        } else if (!strcmp(key, "instances")) {
            instances = v;
            if (rw__cf_is_null(v))
                continue;
            if (rw__cf_check_list(l, v, w, false))
                return -1;
            size_t len = SEQ_LEN(v);
            svc->instances = rw__cf_array(l->arena, len, sizeof(*svc->instances));
            if (!svc->instances)
                return rw__cf_oom(l, v);
            for (size_t i = 0; i < len && rc == 0; i++) {
                yaml_node_t *it = rw__cf_list_item(l, v, i);
                rw__cf_wheref(iw, sizeof(iw), "%s[%zu]", w, i);
                if (!it)
                    return rw__cf_fail(l, v, "%s: missing entry", iw);
                rc = parse_instance(l, it, iw, &svc->instances[i]);
                for (size_t j = 0; j < i && rc == 0; j++) {
                    if (svc->instances[j].addr.len == svc->instances[i].addr.len &&
                        !memcmp(&svc->instances[j].addr.ss, &svc->instances[i].addr.ss,
                                svc->instances[i].addr.len))
                        rc = rw__cf_fail(l, it, "%s: %s is already instance %zu (%s)", iw,
                                         svc->instances[i].address, j, svc->instances[j].address);
                }
            }
            svc->ninstances = len;
        } else if (!strcmp(key, "filters")) {
            rc = rw__cf_parse_filters(l, v, w, &svc->filters, &svc->nfilters);
        } else {
            rc = rw__cf_unknown_key(l, k, where, "service", keys);
        }
        if (rc)
            return -1;
    }
    if (!svc->name)
        return rw__cf_fail(l, n, "%s: name is required", where);
    char owner[MAX_NAME_LEN + 16];
    snprintf(owner, sizeof(owner), "service.%s", svc->name);
    if (rw__cf_name_rate_limits(l, n, svc->filters, svc->nfilters, owner))
        return -1;
    if (hash_on && svc->lb != RW_LB_HASH)
        return rw__cf_fail(l, hash_on, "%s.hash_on: only applies with lb: hash", where);
    if (!instances || rw__cf_is_null(instances) || svc->ninstances == 0)
        return rw__cf_fail(l, instances && !rw__cf_is_null(instances) ? instances : n,
                           "%s: needs at least one instance", where);
    return 0;
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
