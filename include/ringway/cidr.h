/* cidr.h - IPv4/IPv6 address ranges ("10.0.0.0/8", "2001:db8::/32", or a bare
 * address) and matching client addresses against lists of them. */
#ifndef RINGWAY_CIDR_H
#define RINGWAY_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rw_cidr {
    uint8_t family;   /* 4 or 6 */
    uint8_t bits;     /* prefix length */
    uint8_t addr[16]; /* network address (host bits cleared); IPv4 in the first 4 bytes */
} rw_cidr;

/* A parsed client address. IPv4-mapped IPv6 (::ffff:a.b.c.d) is stored as IPv4. */
typedef struct rw_ipaddr {
    uint8_t family; /* 4 or 6; 0 = unparsable */
    uint8_t addr[16];
} rw_ipaddr;

/* Parses "a.b.c.d/n", "v6/n" or a bare address (/32, /128). Host bits set
 * beyond the prefix are an error (a typo more often than not). 0 or -1. */
int rw_cidr_parse(const char *s, rw_cidr *out);
/* Parses a textual address (no brackets, no port; "[v6]" tolerated). 0 or -1. */
int rw_ipaddr_parse(const char *s, size_t len, rw_ipaddr *out);
/* True when a lies inside c. */
bool rw_cidr_match(const rw_cidr *c, const rw_ipaddr *a);
/* True when a lies inside any of the n ranges. */
bool rw_cidr_match_any(const rw_cidr *list, size_t n, const rw_ipaddr *a);

#endif
