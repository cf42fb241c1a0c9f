/* authority.c - the authority part of a URL, [userinfo@]host[:port] (RFC 3986
 * section 3.2), for the control side's clients: the JWKS fetcher and the
 * Redis client. One parser, one set of rules and one wording for the errors:
 *
 *  - the authority ends at the first '/', '?', '#' or the end of the string;
 *  - userinfo ends at the last '@' (so a raw '@' in a password is tolerated);
 *    it is returned undecoded, the caller decides what it means;
 *  - host: a name of letters, digits, '-', '.', '_' (an IPv4 address is one),
 *    or an IPv6 address in brackets, checked with inet_pton, optionally with
 *    a zone id ("[fe80::1%eth0]", reported in zone; callers may refuse it);
 *  - port: 1..65535 in decimal; the caller's default when absent.
 *
 * The reason written to err names no URL: the caller prefixes its own. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "ringway/http.h"

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

/* Writes "bad character 'c' in the <what>" (hex for non-printing bytes). */
static int bad_char(char c, const char *what, char *err, size_t errlen)
{
    unsigned char u = (unsigned char)c;
    if (u >= 0x20 && u < 0x7f)
        snprintf(err, errlen, "bad character '%c' in the %s", c, what);
    else
        snprintf(err, errlen, "bad character 0x%02x in the %s", u, what);
    return -1;
}

/* Checks the bracketed host[0..n) and copies it to out->host. */
static int parse_v6(const char *h, size_t n, rw_authority *out, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (h[i] != ':' && h[i] != '%' && !host_char(h[i]))
            return bad_char(h[i], "IPv6 address", err, errlen);
    const char *pct = memchr(h, '%', n);
    size_t alen = pct != NULL ? (size_t)(pct - h) : n;
    char addr[INET6_ADDRSTRLEN + 1];
    struct in6_addr a6;
    if (alen == 0 || alen >= sizeof(addr)) {
        snprintf(err, errlen, "'[...]' must hold an IPv6 address");
        return -1;
    }
    memcpy(addr, h, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET6, addr, &a6) != 1) {
        snprintf(err, errlen, "'[...]' must hold an IPv6 address");
        return -1;
    }
    if (pct != NULL) {
        if (pct + 1 == h + n || memchr(pct + 1, '%', (size_t)(h + n - pct - 1)) != NULL) {
            snprintf(err, errlen, "bad IPv6 zone id");
            return -1;
        }
        out->zone = true;
    }
    if (n >= sizeof(out->host)) {
        snprintf(err, errlen, "host too long (at most %zu bytes)", sizeof(out->host) - 1);
        return -1;
    }
    memcpy(out->host, h, n);
    out->host[n] = '\0';
    out->ipv6 = true;
    out->ip_literal = true;
    return 0;
}

int rw_authority_parse(const char *s, uint16_t default_port, rw_authority *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->port = default_port;
    const char *end = s + strcspn(s, "/?#");
    out->end = end;

    const char *host = s;
    for (const char *p = s; p < end; p++)
        if (*p == '@')
            host = p + 1;
    if (host != s) {
        out->userinfo = s;
        out->userinfo_len = (size_t)(host - 1 - s);
    }

    const char *after; /* ':' port, or end */
    if (*host == '[') {
        const char *rb = memchr(host, ']', (size_t)(end - host));
        if (rb == NULL) {
            snprintf(err, errlen, "missing ']' after the IPv6 address");
            return -1;
        }
        after = rb + 1;
        if (after < end && *after != ':') {
            snprintf(err, errlen, "unexpected text after ']'");
            return -1;
        }
        if (parse_v6(host + 1, (size_t)(rb - host - 1), out, err, errlen) != 0)
            return -1;
    } else {
        after = host;
        while (after < end && *after != ':')
            after++;
        size_t n = (size_t)(after - host);
        if (n == 0) {
            snprintf(err, errlen, "missing host");
            return -1;
        }
        for (size_t i = 0; i < n; i++)
            if (!host_char(host[i]))
                return bad_char(host[i], "host", err, errlen);
        if (n >= sizeof(out->host)) {
            snprintf(err, errlen, "host too long (at most %zu bytes)", sizeof(out->host) - 1);
            return -1;
        }
        memcpy(out->host, host, n);
        out->host[n] = '\0';
        struct in_addr a4;
        out->ip_literal = inet_pton(AF_INET, out->host, &a4) == 1;
    }

    if (after < end) { /* ':' port */
        const char *p = after + 1;
        if (p == end) {
            snprintf(err, errlen, "empty port after ':'");
            return -1;
        }
        unsigned long port = 0;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9' || port > 65535) {
                snprintf(err, errlen, "port must be a number in 1..65535");
                return -1;
            }
            port = port * 10 + (unsigned long)(*p - '0');
        }
        if (port == 0 || port > 65535) {
            snprintf(err, errlen, "port must be a number in 1..65535");
            return -1;
        }
        out->port = (uint16_t)port;
    }
    return 0;
}
