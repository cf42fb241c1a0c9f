/* cidr.c - address ranges and client-address matching. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "ringway/cidr.h"

static void from_v6(const struct in6_addr *a6, rw_ipaddr *out)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(out->addr, 0, sizeof(out->addr));
    if (memcmp(a6->s6_addr, mapped, 12) == 0) {
        out->family = 4;
        memcpy(out->addr, a6->s6_addr + 12, 4);
    } else {
        out->family = 6;
        memcpy(out->addr, a6->s6_addr, 16);
    }
}

int rw_ipaddr_parse(const char *s, size_t len, rw_ipaddr *out)
{
    char buf[INET6_ADDRSTRLEN + 2];
    out->family = 0;
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, buf, &a4) == 1) {
        out->family = 4;
        memset(out->addr, 0, sizeof(out->addr));
        memcpy(out->addr, &a4, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, buf, &a6) == 1) {
        from_v6(&a6, out);
        return 0;
    }
    return -1;
}

int rw_cidr_parse(const char *s, rw_cidr *out)
{
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    rw_ipaddr a;
    if (rw_ipaddr_parse(s, alen, &a) != 0)
        return -1;
    unsigned max = a.family == 4 ? 32 : 128, bits = max;
    if (slash != NULL) {
        const char *p = slash + 1;
        if (*p < '0' || *p > '9' || strlen(p) > 3)
            return -1;
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (*end != '\0' || v > max)
            return -1;
        bits = (unsigned)v;
    }
    out->family = a.family;
    out->bits = (uint8_t)bits;
    memcpy(out->addr, a.addr, sizeof(out->addr));
    /* host bits must be clear */
    for (unsigned i = bits; i < max; i++)
        if (out->addr[i / 8] & (0x80u >> (i % 8)))
            return -1;
    return 0;
}

bool rw_cidr_match(const rw_cidr *c, const rw_ipaddr *a)
{
    if (c->family != a->family)
        return false;
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, a->addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a->addr[full] & mask) == c->addr[full];
}

bool rw_cidr_match_any(const rw_cidr *list, size_t n, const rw_ipaddr *a)
{
    for (size_t i = 0; i < n; i++)
        if (rw_cidr_match(&list[i], a))
            return true;
    return false;
}
