/* Unit tests for rw_authority_parse (src/http/authority.c), the URL authority
 * parser behind the JWKS fetcher's and the Redis client's URLs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ringway/http.h"

typedef struct good_case {
    const char *in;
    const char *host;
    unsigned port;
    const char *userinfo; /* NULL: none */
    const char *rest;     /* what follows the authority */
    bool ipv6, zone, ip_literal;
} good_case;

static const good_case good[] = {
    {"localhost", "localhost", 99, NULL, "", false, false, false},
    {"h:1", "h", 1, NULL, "", false, false, false},
    {"h:65535/x", "h", 65535, NULL, "/x", false, false, false},
    {"Cache.SVC-1.example_x:6380?q#f", "Cache.SVC-1.example_x", 6380, NULL, "?q#f", false, false, false},
    {"10.0.0.5:7000/3", "10.0.0.5", 7000, NULL, "/3", false, false, true},
    {"127.0.0.1#frag", "127.0.0.1", 99, NULL, "#frag", false, false, true},
    {"999.0.0.1", "999.0.0.1", 99, NULL, "", false, false, false}, /* a name as far as we can tell */
    {"[::1]", "::1", 99, NULL, "", true, false, true},
    {"[::1]:8443/jwks", "::1", 8443, NULL, "/jwks", true, false, true},
    {"[2001:db8::1]:65535", "2001:db8::1", 65535, NULL, "", true, false, true},
    {"[::ffff:1.2.3.4]", "::ffff:1.2.3.4", 99, NULL, "", true, false, true},
    {"[fe80::1%eth0]:1", "fe80::1%eth0", 1, NULL, "", true, true, true},
    {"u:p@h:2", "h", 2, "u:p", "", false, false, false},
    {"u:p@ss@h", "h", 99, "u:p@ss", "", false, false, false}, /* the last '@' ends the userinfo */
    {"@h", "h", 99, "", "", false, false, false},
    {":pw@[::1]:3/0", "::1", 3, ":pw", "/0", true, false, true},
    {"h/a@b", "h", 99, NULL, "/a@b", false, false, false}, /* '@' in the path is not userinfo */
};

/* One test per table (Criterion passes parameters to another process, so a
 * parameterized table could not hold these pointers). */
static void check_good(const good_case *c)
{
    rw_authority a;
    char err[128] = "";
    cr_assert_eq(rw_authority_parse(c->in, 99, &a, err, sizeof(err)), 0, "%s: %s", c->in, err);
    cr_expect_str_eq(a.host, c->host, "%s", c->in);
    cr_expect_eq(a.port, c->port, "%s", c->in);
    cr_expect_str_eq(a.end, c->rest, "%s", c->in);
    cr_expect_eq(a.ipv6, c->ipv6, "%s", c->in);
    cr_expect_eq(a.zone, c->zone, "%s", c->in);
    cr_expect_eq(a.ip_literal, c->ip_literal, "%s", c->in);
    if (c->userinfo == NULL) {
        cr_expect_null(a.userinfo, "%s", c->in);
    } else {
        cr_assert_not_null(a.userinfo, "%s", c->in);
        cr_expect_eq(a.userinfo_len, strlen(c->userinfo), "%s", c->in);
        cr_expect_eq(memcmp(a.userinfo, c->userinfo, a.userinfo_len), 0, "%s", c->in);
    }
}

Test(authority, good)
{
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        check_good(&good[i]);
}

typedef struct bad_case {
    const char *in;
    const char *why; /* the whole message */
} bad_case;

static const bad_case bad[] = {
    {"", "missing host"},
    {"/x", "missing host"},
    {":80", "missing host"},
    {"u:p@:6379", "missing host"},
    {"u@", "missing host"},
    {"h:", "empty port after ':'"},
    {"h:/", "empty port after ':'"},
    {"h:0", "port must be a number in 1..65535"},
    {"h:65536", "port must be a number in 1..65535"},
    {"h:123456", "port must be a number in 1..65535"},
    {"h:99999999999999999999", "port must be a number in 1..65535"},
    {"h:12a", "port must be a number in 1..65535"},
    {"h:-1", "port must be a number in 1..65535"},
    {"h:1:2", "port must be a number in 1..65535"},
    {"h h", "bad character ' ' in the host"},
    {"h\x01", "bad character 0x01 in the host"},
    {"h\xc3\xa9", "bad character 0xc3 in the host"},
    {"[::1", "missing ']' after the IPv6 address"},
    {"[::1/]", "missing ']' after the IPv6 address"},
    {"[::1]x", "unexpected text after ']'"},
    {"[::1]:", "empty port after ':'"},
    {"[]:1", "'[...]' must hold an IPv6 address"},
    {"[1.2.3.4]:1", "'[...]' must hold an IPv6 address"},
    {"[zz]", "'[...]' must hold an IPv6 address"},
    {"[::g]", "'[...]' must hold an IPv6 address"},
    {"[%eth0]", "'[...]' must hold an IPv6 address"},
    {"[:: 1]", "bad character ' ' in the IPv6 address"},
    {"[fe80::1%]", "bad IPv6 zone id"},
    {"[fe80::1%a%b]", "bad IPv6 zone id"},
};

Test(authority, bad)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const bad_case *c = &bad[i];
        rw_authority a;
        char err[128] = "";
        cr_expect_eq(rw_authority_parse(c->in, 99, &a, err, sizeof(err)), -1, "'%s' accepted", c->in);
        cr_expect_str_eq(err, c->why, "'%s'", c->in);
    }
}

Test(authority, host_length)
{
    char in[300], err[128] = "";
    rw_authority a;
    memset(in, 'a', 255);
    in[255] = '\0';
    cr_assert_eq(rw_authority_parse(in, 1, &a, err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(strlen(a.host), 255);
    memset(in, 'a', 256);
    strcpy(in + 256, ":80");
    cr_expect_eq(rw_authority_parse(in, 1, &a, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "host too long (at most 255 bytes)");
}

Test(authority, small_err_buffer)
{
    rw_authority a;
    char err[8];
    memset(err, 'x', sizeof(err));
    cr_expect_eq(rw_authority_parse("h:0", 1, &a, err, sizeof(err)), -1);
    cr_expect_str_eq(err, "port mu");
}
