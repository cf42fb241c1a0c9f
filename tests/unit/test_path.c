/* Unit tests for rw_path_normalize (src/http/path.c). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringway/path.h"

struct pv {
    const char *in;
    const char *out; /* NULL: must be refused */
    size_t len;      /* 0: strlen(in) */
};

static const struct pv vectors[] = {
    {"/", "/", 0},
    {"/a", "/a", 0},
    {"/api/v1/users", "/api/v1/users", 0},
    /* dot segments */
    {"/api/../admin", "/admin", 0},
    {"/a/./b/../c", "/a/c", 0},
    {"/..", "/", 0},
    {"/../../x", "/x", 0},
    {"/a/b/c/../../d", "/a/d", 0},
    {"/a/b/", "/a/b/", 0},
    {"/a/.", "/a/", 0},
    {"/a/b/..", "/a/", 0},
    {"/a/..", "/", 0},
    {"/.", "/", 0},
    {"/./", "/", 0},
    {"/./.", "/", 0},
    {"/a/./", "/a/", 0},
    {"/a/../", "/", 0},
    {"/...", "/...", 0},
    {"/.a/a./a..b", "/.a/a./a..b", 0},
    {"/a../..b", "/a../..b", 0},
    {"/..;/admin", "/..;/admin", 0},
    /* duplicate slashes */
    {"//a///b", "/a/b", 0},
    {"//", "/", 0},
    {"/a//", "/a/", 0},
    {"//..//a", "/a", 0},
    {"/a//..", "/", 0},
    /* escapes of unreserved characters are decoded */
    {"/%61dmin", "/admin", 0},
    {"/%41%42", "/AB", 0},
    {"/%7e", "/~", 0},
    {"/%7Euser/~user", "/~user/~user", 0},
    {"/%2d%2E%5f%30%39%7a", "/-._09z", 0},
    {"/%2e%2e/admin", "/admin", 0},
    {"/a/%2E%2e/b", "/b", 0},
    {"/a/.%2e/b", "/b", 0},
    {"/a/%2e./b", "/b", 0},
    {"/%2e/x", "/x", 0},
    {"/a/%2e", "/a/", 0},
    /* other escapes are kept, hex upper-cased */
    {"/%2F", "/%2F", 0},
    {"/a%2fb", "/a%2Fb", 0},
    {"/a/%2F/b", "/a/%2F/b", 0},
    {"/%2e%2e%2fadmin", "/..%2Fadmin", 0},
    {"/x/%2e%2e%2f", "/x/..%2F", 0},
    {"/%3a%3B", "/%3A%3B", 0},
    {"/%c3%a9", "/%C3%A9", 0},
    {"/%20", "/%20", 0},
    {"/%25", "/%25", 0},
    {"/%2561", "/%2561", 0},
    {"/%0a", "/%0A", 0},
    {"/%5C..%5C", "/%5C..%5C", 0},
    {"/a?b", "/a?b", 0},
    {"/a;b=c,d", "/a;b=c,d", 0},
    /* refused */
    {"", NULL, 0},
    {"a", NULL, 0},
    {"*", NULL, 0},
    {"a/b", NULL, 0},
    {"/%00", NULL, 0},
    {"/a%00b", NULL, 0},
    {"/a%0", NULL, 0},
    {"/a%", NULL, 0},
    {"/a%z1", NULL, 0},
    {"/a%1z", NULL, 0},
    {"/a%g1", NULL, 0},
    {"/a% 1", NULL, 0},
    {"/a%%41", NULL, 0},
    {"/a b", NULL, 0},
    {"/a\tb", NULL, 0},
    {"/a\x01", NULL, 0},
    {"/a\r\n", NULL, 0},
    {"/a\x7f", NULL, 0},
    {"/\x80", NULL, 0},
    {"/caf\xc3\xa9", NULL, 0},
    {"/a\0b", NULL, 4},
};

Test(path, vectors)
{
    char out[256];
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const struct pv *v = &vectors[i];
        size_t len = v->len ? v->len : strlen(v->in);
        char *in = malloc(len ? len : 1);
        memcpy(in, v->in, len);
        memset(out, 'Z', sizeof(out));
        ssize_t rc = rw_path_normalize(in, len, out, sizeof(out));
        free(in);
        if (!v->out) {
            cr_expect_eq(rc, -1, "case %zu (%s): got %zd", i, v->in, rc);
            continue;
        }
        cr_assert_eq(rc, (ssize_t)strlen(v->out), "case %zu (%s): rc %zd", i, v->in, rc);
        cr_expect_str_eq(out, v->out, "case %zu (%s)", i, v->in);
        cr_expect_leq((size_t)rc, len);
        /* a fixed point */
        char again[256];
        cr_expect_eq(rw_path_normalize(out, (size_t)rc, again, sizeof(again)), rc);
        cr_expect_str_eq(again, out, "case %zu not idempotent", i);
    }
}

Test(path, capacity)
{
    char out[16];
    /* "/a/b" needs 5 bytes with the NUL */
    cr_expect_eq(rw_path_normalize("/a/b", 4, out, 5), 4);
    cr_expect_str_eq(out, "/a/b");
    cr_expect_eq(rw_path_normalize("/a/b", 4, out, 4), -1);
    cr_expect_eq(rw_path_normalize("/", 1, out, 2), 1);
    cr_expect_str_eq(out, "/");
    cr_expect_eq(rw_path_normalize("/", 1, out, 1), -1);
    cr_expect_eq(rw_path_normalize("/", 1, out, 0), -1);
    /* the cap bounds the work area: segments later removed by ".." count */
    cr_expect_eq(rw_path_normalize("/a/b/c/../../..", 15, out, 2), -1);
    cr_expect_eq(rw_path_normalize("/a/b/c/../../..", 15, out, 16), 1);
    cr_expect_eq(rw_path_normalize("/%41%42", 7, out, 4), 3);
    cr_expect_str_eq(out, "/AB");
    cr_expect_eq(rw_path_normalize("/%2F", 4, out, 5), 4);
    cr_expect_eq(rw_path_normalize("/%2F", 4, out, 4), -1);
    cr_expect_eq(rw_path_normalize("/x%2F", 5, out, 5), -1);
    /* len + 1 always suffices */
    const char *p = "/a/./b//%63/%2f/../d/";
    char *o = malloc(strlen(p) + 1);
    cr_expect_gt(rw_path_normalize(p, strlen(p), o, strlen(p) + 1), 0);
    cr_expect_str_eq(o, "/a/b/c/d/");
    free(o);
}

/* Random paths over a small alphabet: any accepted output is a clean
 * absolute path and a fixed point. */
Test(path, random_properties)
{
    static const char alpha[] = "/./.%2eEfF0a";
    uint64_t x = 0x9e3779b97f4a7c15ull;
    char in[64], out[80], again[80];
    for (int iter = 0; iter < 200000; iter++) {
        size_t len = 1;
        in[0] = '/';
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = 1 + (x % 30);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            in[len++] = alpha[x % (sizeof(alpha) - 1)];
        }
        ssize_t rc = rw_path_normalize(in, len, out, sizeof(out));
        if (rc < 0)
            continue;
        cr_assert_leq((size_t)rc, len);
        cr_assert_eq(out[0], '/');
        cr_assert_eq(strlen(out), (size_t)rc);
        cr_assert_null(strstr(out, "//"), "%.*s -> %s", (int)len, in, out);
        cr_assert_null(strstr(out, "/./"), "%.*s -> %s", (int)len, in, out);
        cr_assert_null(strstr(out, "/../"), "%.*s -> %s", (int)len, in, out);
        cr_assert(!(rc >= 2 && strcmp(out + rc - 2, "/.") == 0), "%s", out);
        cr_assert(!(rc >= 3 && strcmp(out + rc - 3, "/..") == 0), "%s", out);
        cr_assert_eq(rw_path_normalize(out, (size_t)rc, again, sizeof(again)), rc);
        cr_assert_str_eq(again, out);
    }
}
