/* config_units.c - parsers for the value syntaxes used in the configuration:
 * durations, sizes, rates and numeric socket addresses. Pure functions: no
 * allocation, no locale, no DNS. Every parser accepts the whole string or
 * fails with -EINVAL; none of them skips white space. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "ringway/common.h"
#include "ringway/config.h"

/* Reads a run of decimal digits from *p into *out. Returns false when there is
 * no digit or the value overflows uint64_t. Advances *p past the digits. */
static bool scan_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;

    if (*s < '0' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9') {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
            return false;
        s++;
    }
    *p = s;
    *out = v;
    return true;
}

int rw_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {
        {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"min", 60000}, {"h", 3600000},
    };
    uint64_t v;

    if (!s || !out || !scan_u64(&s, &v))
        return -EINVAL;
    for (size_t i = 0; i < RW_ARRAY_LEN(units); i++) {
        if (strcmp(s, units[i].suffix) == 0) {
            if (__builtin_mul_overflow(v, units[i].ms, &v))
                return -EINVAL;
            *out = v;
            return 0;
        }
    }
    return -EINVAL;
}

int rw_parse_size(const char *s, uint64_t *out)
{
    uint64_t v, mult = 1;

    if (!s || !out || !scan_u64(&s, &v))
        return -EINVAL;
    switch (*s) {
    case 'k':
    case 'K':
        mult = 1ull << 10;
        s++;
        break;
    case 'm':
    case 'M':
        mult = 1ull << 20;
        s++;
        break;
    case 'g':
    case 'G':
        mult = 1ull << 30;
        s++;
        break;
    default:
        break;
    }
    /* "16k", "16kb", "16KB" are all 16384; a lone "b" ("512b") too. */
    if (*s == 'b' || *s == 'B')
        s++;
    if (*s != '\0' || __builtin_mul_overflow(v, mult, &v))
        return -EINVAL;
    *out = v;
    return 0;
}

int rw_parse_rate(const char *s, double *per_sec, bool *unlimited)
{
    static const struct {
        const char *unit;
        double secs;
    } units[] = {
        {"s", 1},       {"sec", 1},  {"second", 1},  {"m", 60},    {"min", 60},
        {"minute", 60}, {"h", 3600}, {"hour", 3600}, {"d", 86400}, {"day", 86400},
    };
    uint64_t whole, frac = 0, scale = 1;

    if (!s || !per_sec || !unlimited)
        return -EINVAL;
    if (strcmp(s, "unlimited") == 0) {
        *per_sec = 0;
        *unlimited = true;
        return 0;
    }
    if (!scan_u64(&s, &whole) || whole > 1000000000000ull)
        return -EINVAL;
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9')
            return -EINVAL;
        for (int n = 0; *s >= '0' && *s <= '9'; n++, s++) {
            if (n < 9) {
                frac = frac * 10 + (uint64_t)(*s - '0');
                scale *= 10;
            }
        }
    }
    if (*s++ != '/')
        return -EINVAL;
    double n = (double)whole + (double)frac / (double)scale;
    if (n <= 0)
        return -EINVAL;
    for (size_t i = 0; i < RW_ARRAY_LEN(units); i++) {
        if (strcmp(s, units[i].unit) == 0) {
            *per_sec = n / units[i].secs;
            *unlimited = false;
            return 0;
        }
    }
    return -EINVAL;
}

int rw_parse_sockaddr(const char *s, rw_sockaddr *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port_s;
    size_t hlen;
    bool v6 = false;

    if (!s || !out)
        return -EINVAL;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -EINVAL;
        hlen = (size_t)(end - (s + 1));
        if (hlen == 0 || hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        port_s = end + 2;
        v6 = true;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon)
            return -EINVAL;
        hlen = (size_t)(colon - s);
        if (hlen >= sizeof(host) || memchr(s, ':', hlen))
            return -EINVAL; /* an IPv6 literal must be bracketed */
        if (hlen == 0)
            strcpy(host, "0.0.0.0");
        else {
            memcpy(host, s, hlen);
            host[hlen] = '\0';
        }
        port_s = colon + 1;
    }

    uint64_t port;
    const char *p = port_s;
    if (strlen(port_s) > 5 || !scan_u64(&p, &port) || *p != '\0' || port < 1 || port > 65535)
        return -EINVAL;

    rw_sockaddr a;
    memset(&a, 0, sizeof(a));
    if (v6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return -EINVAL;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        a.len = sizeof(*sin6);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            return -EINVAL;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        a.len = sizeof(*sin);
    }
    rw_sockaddr_format(&a);
    *out = a;
    return 0;
}

void rw_sockaddr_format(rw_sockaddr *a)
{
    char ip[INET6_ADDRSTRLEN];

    a->text[0] = '\0';
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;
        if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip)))
            snprintf(a->text, sizeof(a->text), "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
    } else if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
        if (inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip)))
            snprintf(a->text, sizeof(a->text), "[%s]:%u", ip, (unsigned)ntohs(sin6->sin6_port));
    }
}
