/* Unit tests for the chunked body scanner (src/http/chunked.c). Each vector is
 * scanned in one piece, byte by byte, and split in two at every point. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringway/http.h"

struct vec {
    const char *raw;
    size_t len;  /* 0: strlen(raw) */
    size_t body; /* bytes that belong to the body (valid vectors); 0: all of raw */
};

static size_t vlen(const struct vec *v)
{
    return v->len ? v->len : strlen(v->raw);
}

/* Scans p[0..n) as one call on an exact-size copy (so ASan sees overreads). */
static ssize_t scan_piece(rw_chunked *c, const char *p, size_t n, bool *done)
{
    char *b = malloc(n ? n : 1);
    cr_assert_not_null(b);
    memcpy(b, p, n);
    ssize_t rc = rw_chunked_scan(c, b, n, done);
    free(b);
    return rc;
}

/* Scans raw in pieces ending at the offsets in cuts (ascending, last = len).
 * Returns the body length seen, or -1. Checks the per-call contract. */
static ssize_t scan_cuts(const char *raw, const size_t *cuts, size_t ncuts, bool *done_out)
{
    rw_chunked c;
    rw_chunked_init(&c);
    size_t off = 0, total = 0;
    bool done = false;
    for (size_t i = 0; i < ncuts; i++) {
        size_t n = cuts[i] - off;
        bool d = false;
        ssize_t rc = scan_piece(&c, raw + off, n, &d);
        if (rc < 0) {
            /* errors are sticky */
            bool d2;
            cr_assert_eq(rw_chunked_scan(&c, "0\r\n\r\n", 5, &d2), -1);
            *done_out = false;
            return -1;
        }
        cr_assert_leq((size_t)rc, n);
        if (done) {
            cr_assert_eq(rc, 0, "scan after the end consumed bytes");
            cr_assert(d);
        } else if (!d) {
            cr_assert_eq((size_t)rc, n, "fewer bytes than given without the end");
        }
        done = d;
        total += (size_t)rc;
        off = cuts[i];
    }
    *done_out = done;
    return (ssize_t)total;
}

static const struct vec valid[] = {
    {"0\r\n\r\n", 0, 0},
    {"5\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 0, 0},
    {"A\r\n0123456789\r\n0\r\n\r\n", 0, 0},
    {"a\r\n0123456789\r\n0\r\n\r\n", 0, 0},
    {"1F\r\n0123456789012345678901234567890\r\n0\r\n\r\n", 0, 0},
    {"000005\r\nhello\r\n0000\r\n\r\n", 0, 0},
    {"0000000000000005\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"1\r\n\n\r\n1\r\n\r\r\n1\r\n\0\r\n0\r\n\r\n", 23, 23}, /* data bytes are not looked at */
    {"5;name\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"5;name=val\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"5 ; name = val ; x\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"5\t;\ta\t=\tb\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"5;a=1;b=2;c\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"5;n=\"quoted \\\" str\"\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"5;n=\"\"\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"5;n=\"caf\xc3\xa9\t!#[]~\"\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"5;n=\"a\" ;m=b\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"0;last=1\r\n\r\n", 0, 0},
    {"0\r\nX-Trailer: v\r\n\r\n", 0, 0},
    {"0\r\nX-Trailer: v\r\nY:\r\nChecksum: abc\tdef caf\xc3\xa9\r\n\r\n", 0, 0},
    {"3\r\nabc\r\n0\r\nA:b\r\n\r\n", 0, 0},
    /* trailing bytes after the body are not part of it */
    {"0\r\n\r\nGET / HTTP/1.1\r\n", 0, 5},
    {"5\r\nhello\r\n0\r\nT: 1\r\n\r\n\r\n\r\nxyz", 0, 21},
};

Test(chunked, valid_one_piece_and_byte_by_byte)
{
    for (size_t i = 0; i < RW_ARRAY_LEN(valid); i++) {
        const struct vec *v = &valid[i];
        size_t len = vlen(v), body = v->body ? v->body : len;
        bool done;
        size_t one = len;
        cr_assert_eq(scan_cuts(v->raw, &one, 1, &done), (ssize_t)body, "case %zu: %s", i, v->raw);
        cr_assert(done, "case %zu", i);

        size_t *cuts = malloc(len * sizeof(*cuts));
        for (size_t k = 0; k < len; k++)
            cuts[k] = k + 1;
        cr_assert_eq(scan_cuts(v->raw, cuts, len, &done), (ssize_t)body, "case %zu bytewise", i);
        cr_assert(done, "case %zu", i);
        free(cuts);
    }
}

Test(chunked, valid_every_split)
{
    for (size_t i = 0; i < RW_ARRAY_LEN(valid); i++) {
        const struct vec *v = &valid[i];
        size_t len = vlen(v), body = v->body ? v->body : len;
        for (size_t s = 0; s <= len; s++) {
            size_t cuts[2] = {s, len};
            bool done;
            cr_assert_eq(scan_cuts(v->raw, cuts, 2, &done), (ssize_t)body, "case %zu split %zu", i, s);
            cr_assert(done, "case %zu split %zu", i, s);
        }
        /* and every pair of split points for the short vectors */
        if (len > 40)
            continue;
        for (size_t s = 0; s <= len; s++)
            for (size_t t = s; t <= len; t++) {
                size_t cuts[3] = {s, t, len};
                bool done;
                cr_assert_eq(scan_cuts(v->raw, cuts, 3, &done), (ssize_t)body, "case %zu %zu/%zu", i, s, t);
            }
    }
}

static const struct vec bad[] = {
    {"\r\n", 0, 0},
    {";a\r\n", 0, 0},
    {" 5\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"x\r\n", 0, 0},
    {"g\r\n", 0, 0},
    {"-1\r\n", 0, 0},
    {"+5\r\n", 0, 0},
    {"0x5\r\nhello\r\n", 0, 0},
    {"5 \r\nhello\r\n0\r\n\r\n", 0, 0},
    {"5\t\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"5\nhello\r\n0\r\n\r\n", 0, 0},
    {"5\rhello\r\n0\r\n\r\n", 0, 0},
    {"5\r\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"5\0\r\nhello\r\n", 5, 0},
    {"5,\r\nhello\r\n", 0, 0},
    {"00000000000000005\r\nhello\r\n0\r\n\r\n", 0, 0},
    {"4000000000000001\r\n", 0, 0},
    {"FFFFFFFFFFFFFFFF\r\n", 0, 0},
    {"10000000000000000\r\n", 0, 0},
    /* after the data: exactly CRLF */
    {"5\r\nhelloX\r\n0\r\n\r\n", 0, 0},
    {"5\r\nhello\n0\r\n\r\n", 0, 0},
    {"5\r\nhello\r0\r\n\r\n", 0, 0},
    {"5\r\nhello0\r\n\r\n", 0, 0},
    {"5\r\nhello\r\r\n0\r\n\r\n", 0, 0},
    {"3\r\nhello\r\n0\r\n\r\n", 0, 0},
    /* extensions */
    {"5;\r\nhello\r\n", 0, 0},
    {"5; \r\nhello\r\n", 0, 0},
    {"5;=v\r\nhello\r\n", 0, 0},
    {"5;a=\r\nhello\r\n", 0, 0},
    {"5;a= \r\nhello\r\n", 0, 0},
    {"5;a b\r\nhello\r\n", 0, 0},
    {"5;a \r\nhello\r\n", 0, 0},
    {"5;a=b \r\nhello\r\n", 0, 0},
    {"5;a=b c\r\nhello\r\n", 0, 0},
    {"5;a=b=c\r\nhello\r\n", 0, 0},
    {"5;a==b\r\nhello\r\n", 0, 0},
    {"5;a=\"x\"y\r\nhello\r\n", 0, 0},
    {"5;a=\"unterminated\r\nhello\r\n", 0, 0},
    {"5;a=\"x\ny\"\r\nhello\r\n", 0, 0},
    {"5;a=\"x\ry\"\r\nhello\r\n", 0, 0},
    {"5;a=\"x\0\"\r\nhello\r\n", 13, 0},
    {"5;a=\"x\x7f\"\r\nhello\r\n", 0, 0},
    {"5;a=\"\\\x01\"\r\nhello\r\n", 0, 0},
    {"5;a=\"\\\n\"\r\nhello\r\n", 0, 0},
    {"5;a\x01\r\nhello\r\n", 0, 0},
    {"5;a\nhello\r\n", 0, 0},
    {"5;a\rb\r\nhello\r\n", 0, 0},
    {"5;a=b\nhello\r\n", 0, 0},
    {"5;a(b)\r\nhello\r\n", 0, 0},
    {"5;a=b/c\r\nhello\r\n", 0, 0},
    {"5;a=\xc3\xa9\r\nhello\r\n", 0, 0},
    {"5 x\r\nhello\r\n", 0, 0},
    /* last chunk and trailers */
    {"0\r\n\n", 0, 0},
    {"0\r\n\r\r", 0, 0},
    {"0\r\n\rx", 0, 0},
    {"0\r\n X: v\r\n\r\n", 0, 0},
    {"0\r\n\tX: v\r\n\r\n", 0, 0},
    {"0\r\nX: v\r\n continued\r\n\r\n", 0, 0},
    {"0\r\nX : v\r\n\r\n", 0, 0},
    {"0\r\n: v\r\n\r\n", 0, 0},
    {"0\r\nX\r\n\r\n", 0, 0},
    {"0\r\nX v\r\n\r\n", 0, 0},
    {"0\r\nX[: v\r\n\r\n", 0, 0},
    {"0\r\nX: a\0\r\n\r\n", 10, 0},
    {"0\r\nX: a\x01\r\n\r\n", 0, 0},
    {"0\r\nX: a\x7f\r\n\r\n", 0, 0},
    {"0\r\nX: a\nY: b\r\n\r\n", 0, 0},
    {"0\r\nX: a\rY: b\r\n\r\n", 0, 0},
    {"0\r\nX: a\r\r\n\r\n", 0, 0},
    {"0\r\nX: a\r\n\n", 0, 0},
    {"0\r\n\xc3\xa9: v\r\n\r\n", 0, 0},
};

/* Every malformed vector is refused however it is cut. */
Test(chunked, malformed_every_split)
{
    for (size_t i = 0; i < RW_ARRAY_LEN(bad); i++) {
        const struct vec *v = &bad[i];
        size_t len = vlen(v);
        bool done;
        size_t one = len;
        cr_assert_eq(scan_cuts(v->raw, &one, 1, &done), -1, "case %zu: %s", i, v->raw);
        size_t *cuts = malloc(len * sizeof(*cuts));
        for (size_t k = 0; k < len; k++)
            cuts[k] = k + 1;
        cr_assert_eq(scan_cuts(v->raw, cuts, len, &done), -1, "case %zu bytewise", i);
        free(cuts);
        for (size_t s = 0; s <= len; s++) {
            size_t c2[2] = {s, len};
            cr_assert_eq(scan_cuts(v->raw, c2, 2, &done), -1, "case %zu split %zu", i, s);
        }
    }
}

Test(chunked, max_size_accepted)
{
    rw_chunked c;
    rw_chunked_init(&c);
    bool done;
    cr_assert_eq(rw_chunked_scan(&c, "4000000000000000\r\n", 18, &done), 18);
    cr_expect_eq(c.remaining, UINT64_C(1) << 62);
    cr_expect_not(done);
}

Test(chunked, remaining_and_bulk)
{
    rw_chunked c;
    rw_chunked_init(&c);
    bool done;
    cr_assert_eq(rw_chunked_scan(&c, "5\r\nhe", 5, &done), 5);
    cr_expect_eq(c.remaining, 3);

    /* A 64 MiB chunk in 1 MiB pieces: data bytes (here NUL, CR, LF) are
     * skipped without being looked at. */
    rw_chunked_init(&c);
    size_t piece = 1u << 20, total = 64 * piece;
    char *data = calloc(1, piece);
    for (size_t i = 0; i < piece; i += 2)
        data[i] = (i & 2) ? '\r' : '\n';
    char head[32];
    int hn = snprintf(head, sizeof(head), "%zx\r\n", total);
    cr_assert_eq(rw_chunked_scan(&c, head, (size_t)hn, &done), hn);
    for (size_t off = 0; off < total; off += piece) {
        cr_assert_eq(rw_chunked_scan(&c, data, piece, &done), (ssize_t)piece);
        cr_assert_not(done);
    }
    cr_expect_eq(c.remaining, 0);
    cr_assert_eq(rw_chunked_scan(&c, "\r\n0\r\n\r\nextra", 12, &done), 7);
    cr_expect(done);
    free(data);
}

Test(chunked, after_end_and_sticky_error)
{
    rw_chunked c;
    memset(&c, 0, sizeof(c)); /* zero-filled is a valid start */
    bool done = false;
    cr_assert_eq(rw_chunked_scan(&c, "0\r\n\r\n", 5, &done), 5);
    cr_assert(done);
    done = false;
    cr_expect_eq(rw_chunked_scan(&c, "5\r\nhello", 8, &done), 0);
    cr_expect(done);
    cr_expect_eq(rw_chunked_scan(&c, "", 0, NULL), 0);

    rw_chunked_init(&c);
    cr_assert_eq(rw_chunked_scan(&c, "z", 1, &done), -1);
    cr_expect_not(done);
    cr_expect_eq(rw_chunked_scan(&c, "0\r\n\r\n", 5, &done), -1);
    rw_chunked_init(&c);
    cr_expect_eq(rw_chunked_scan(&c, "0\r\n\r\n", 5, NULL), 5);
    rw_chunked_init(&c);
    cr_expect_eq(rw_chunked_scan(&c, "", 0, &done), 0);
    cr_expect_not(done);
}

/* A size line of exactly 4096 bytes (before CRLF) passes, 4097 fails. */
Test(chunked, size_line_limit)
{
    for (size_t want = 4095; want <= 4097; want++) {
        char *b = malloc(want + 32);
        size_t n = 0;
        b[n++] = '1';
        b[n++] = ';';
        memset(b + n, 'x', want - 2);
        n += want - 2;
        memcpy(b + n, "\r\nA\r\n0\r\n\r\n", 10);
        n += 10;
        rw_chunked c;
        rw_chunked_init(&c);
        bool done;
        ssize_t rc = rw_chunked_scan(&c, b, n, &done);
        if (want <= 4096)
            cr_expect_eq(rc, (ssize_t)n, "line %zu", want);
        else
            cr_expect_eq(rc, -1, "line %zu", want);
        /* byte by byte too */
        rw_chunked_init(&c);
        ssize_t last = 0;
        for (size_t i = 0; i < n && last >= 0; i++)
            last = rw_chunked_scan(&c, b + i, 1, &done);
        cr_expect_eq(last<0, want> 4096, "line %zu bytewise", want);
        free(b);
    }
}

/* The trailer section, final CRLF included, may hold 16384 bytes. */
Test(chunked, trailer_limit)
{
    for (size_t want = 16383; want <= 16385; want++) {
        /* "0\r\n" + "T: " + pad + "\r\n" + "\r\n" ; trailer bytes = 3 + pad + 4 */
        size_t pad = want - 7;
        char *b = malloc(pad + 32);
        size_t n = 0;
        memcpy(b, "0\r\nT: ", 6);
        n = 6;
        memset(b + n, 'v', pad);
        n += pad;
        memcpy(b + n, "\r\n\r\n", 4);
        n += 4;
        rw_chunked c;
        rw_chunked_init(&c);
        bool done = false;
        ssize_t rc = rw_chunked_scan(&c, b, n, &done);
        if (want <= 16384) {
            cr_expect_eq(rc, (ssize_t)n, "trailers %zu", want);
            cr_expect(done);
        } else {
            cr_expect_eq(rc, -1, "trailers %zu", want);
        }
        free(b);
    }
    /* many small trailer lines add up */
    char *b = malloc(20000);
    size_t n = 0;
    n += (size_t)sprintf(b, "0\r\n");
    while (n < 17000)
        n += (size_t)sprintf(b + n, "A: b\r\n");
    n += (size_t)sprintf(b + n, "\r\n");
    rw_chunked c;
    rw_chunked_init(&c);
    bool done;
    cr_expect_eq(rw_chunked_scan(&c, b, n, &done), -1);
    free(b);
}

/* A chunk size split over calls keeps accumulating correctly. */
Test(chunked, size_across_calls)
{
    rw_chunked c;
    rw_chunked_init(&c);
    bool done;
    cr_assert_eq(rw_chunked_scan(&c, "1", 1, &done), 1);
    cr_assert_eq(rw_chunked_scan(&c, "0", 1, &done), 1);
    cr_assert_eq(rw_chunked_scan(&c, "\r", 1, &done), 1);
    cr_assert_eq(rw_chunked_scan(&c, "\n", 1, &done), 1);
    cr_expect_eq(c.remaining, 16);
}

/* ---- rw_chunked_scan_drop_trailers: what a forwarder keeps ---- */

/* Feeds raw split at every point into two pieces and returns what would be
 * forwarded (kept bytes, plus "\r\n" once done). */
static char *forwarded(const char *raw, size_t cut)
{
    size_t n = strlen(raw);
    char *out = calloc(1, n + 3);
    cr_assert_not_null(out);
    size_t olen = 0;
    rw_chunked c;
    rw_chunked_init(&c);
    const size_t ends[2] = {cut, n};
    size_t off = 0;
    bool done = false;
    for (int i = 0; i < 2 && !done; i++) {
        size_t keep = 99;
        ssize_t rc = rw_chunked_scan_drop_trailers(&c, raw + off, ends[i] - off, &done, &keep);
        cr_assert_geq(rc, 0, "%s cut at %zu", raw, cut);
        cr_assert_leq(keep, (size_t)rc, "keep past the scanned bytes");
        memcpy(out + olen, raw + off, keep);
        olen += keep;
        off += (size_t)rc;
    }
    cr_assert(done, "%s cut at %zu: not done", raw, cut);
    memcpy(out + olen, "\r\n", 2);
    return out;
}

Test(chunked, drop_trailers_keeps_data_and_ends_cleanly)
{
    static const struct {
        const char *raw, *want;
    } v[] = {
        {"5\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n"},
        {"5\r\nhello\r\n0\r\nX-Consumer-ID: evil\r\nContent-Length: 9\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n"},
        {"3;ext=1\r\nabc\r\n00;x\r\nHost: h\r\n\r\n", "3;ext=1\r\nabc\r\n00;x\r\n\r\n"},
        {"0\r\nA: b\r\n\r\n", "0\r\n\r\n"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n = strlen(v[i].raw);
        for (size_t cut = 0; cut <= n; cut++) {
            char *got = forwarded(v[i].raw, cut);
            cr_assert_str_eq(got, v[i].want, "vector %zu cut at %zu", i, cut);
            free(got);
        }
    }
}

Test(chunked, drop_trailers_after_done_keeps_nothing)
{
    rw_chunked c;
    rw_chunked_init(&c);
    bool done = false;
    size_t keep = 7;
    const char *raw = "0\r\n\r\nGET / HTTP/1.1\r\n";
    ssize_t rc = rw_chunked_scan_drop_trailers(&c, raw, strlen(raw), &done, &keep);
    cr_assert_eq(rc, 5);
    cr_assert_eq(keep, 3);
    cr_assert(done);
    rc = rw_chunked_scan_drop_trailers(&c, raw + 5, strlen(raw) - 5, &done, &keep);
    cr_assert_eq(rc, 0);
    cr_assert_eq(keep, 0);
}
