/* fuzz_chunked.c - libFuzzer driver for rw_chunked_scan and the code built on
 * it (rw_chunked_decode, rw_chunked_scan_drop_trailers).
 * Input: byte 0 picks a split point, the rest is a chunked body. The body is
 * scanned in one piece, in two pieces, and byte by byte; all three must agree
 * on error / end and on how many bytes belong to the body. Decoding in two
 * pieces must agree with scanning, and with dropped trailers re-scan to the
 * same data; what a trailer-dropping forwarder sends must be a valid chunked
 * body that decodes to the same data. */
#include "fuzz_common.h"

struct result {
    ssize_t consumed; /* -1 on error */
    bool done;
};

/* Scans p[0..n) cut at the offsets in cuts (ascending, last == n). */
static struct result scan(const uint8_t *p, size_t n, const size_t *cuts, size_t ncuts)
{
    FUZZ_CHECK(ncuts > 0 && cuts[ncuts - 1] == n);
    rw_chunked c;
    rw_chunked_init(&c);
    struct result res = {0, false};
    size_t off = 0;
    for (size_t i = 0; i < ncuts; i++) {
        size_t len = cuts[i] - off;
        char *b = fuzz_copy(p + off, len);
        bool done = false;
        ssize_t rc = rw_chunked_scan(&c, b, len, &done);
        free(b);
        if (rc < 0) {
            FUZZ_CHECK(rc == -1 && !done);
            FUZZ_CHECK(rw_chunked_scan(&c, "0\r\n\r\n", 5, &done) == -1); /* sticky */
            res.consumed = -1;
            res.done = false;
            return res;
        }
        FUZZ_CHECK((size_t)rc <= len);
        if (res.done)
            FUZZ_CHECK(rc == 0 && done);
        else if (!done)
            FUZZ_CHECK((size_t)rc == len);
        res.done = done;
        res.consumed += rc;
        off = cuts[i];
    }
    return res;
}

/* Byte-by-byte scan without building a cut table. */
static struct result scan_bytes(const uint8_t *p, size_t n)
{
    rw_chunked c;
    rw_chunked_init(&c);
    struct result res = {0, false};
    for (size_t i = 0; i < n; i++) {
        char b = (char)p[i];
        bool done = false;
        ssize_t rc = rw_chunked_scan(&c, &b, 1, &done);
        if (rc < 0) {
            res.consumed = -1;
            return res;
        }
        if (res.done)
            FUZZ_CHECK(rc == 0 && done);
        else
            FUZZ_CHECK(rc == 1 || done);
        res.done = done;
        res.consumed += rc;
    }
    return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    size_t k = (size_t)((uint64_t)n * data[0] / 255);

    size_t one[1] = {n}, two[2] = {k, n};
    struct result a = scan(p, n, one, 1);
    struct result b = scan(p, n, two, 2);
    struct result c = scan_bytes(p, n);
    FUZZ_CHECK(a.consumed == b.consumed && a.done == b.done);
    FUZZ_CHECK(a.consumed == c.consumed && a.done == c.done);
    /* decode in two pieces (each an exact-size copy): same verdict, data no larger */
    {
        rw_chunked dc;
        rw_chunked_init(&dc);
        rw_chunked tc;
        rw_chunked_init(&tc);
        char *data = malloc(n + 1), *fwd = malloc(n + 3);
        FUZZ_CHECK(data != NULL && fwd != NULL);
        size_t dlen = 0, flen = 0, off = 0, consumed = 0;
        bool done = false, err = false;
        const size_t ends[2] = {k, n};
        for (int i = 0; i < 2 && !done && !err; i++) {
            size_t len = ends[i] - off;
            char *b = fuzz_copy(p + off, len);
            size_t got = 99;
            bool d = false;
            ssize_t rc = rw_chunked_decode(&dc, b, len, &d, &got);
            char *t = fuzz_copy(p + off, len);
            size_t keep = 99;
            bool td = false;
            ssize_t trc = rw_chunked_scan_drop_trailers(&tc, t, len, &td, &keep);
            FUZZ_CHECK(rc == trc && d == td);
            if (rc < 0) {
                err = true;
            } else {
                FUZZ_CHECK(got <= (size_t)rc && keep <= (size_t)rc);
                memcpy(data + dlen, b, got);
                dlen += got;
                memcpy(fwd + flen, t, keep);
                flen += keep;
                consumed += (size_t)rc;
                done = d;
            }
            free(b);
            free(t);
            off = ends[i];
        }
        FUZZ_CHECK(err == (a.consumed < 0));
        if (!err)
            FUZZ_CHECK(consumed == (size_t)a.consumed && done == a.done);
        if (done) {
            /* the forwarded body, ended without trailers, decodes to the same data */
            memcpy(fwd + flen, "\r\n", 2);
            flen += 2;
            rw_chunked rc2;
            rw_chunked_init(&rc2);
            size_t again = 0;
            bool d2 = false;
            char *copy = fuzz_copy((const uint8_t *)fwd, flen);
            FUZZ_CHECK(rw_chunked_decode(&rc2, copy, flen, &d2, &again) == (ssize_t)flen && d2);
            FUZZ_CHECK(again == dlen && memcmp(copy, data, dlen) == 0);
            free(copy);
        }
        free(data);
        free(fwd);
    }
    if (a.done) {
        /* the body ends with CRLF CRLF or, with trailers, a CRLF after a field line */
        FUZZ_CHECK(a.consumed >= 5 && memcmp(p + a.consumed - 2, "\r\n", 2) == 0);
        /* scanning just the body gives the same answer */
        size_t exact[1] = {(size_t)a.consumed};
        struct result d = scan(p, (size_t)a.consumed, exact, 1);
        FUZZ_CHECK(d.consumed == a.consumed && d.done);
    }
    return 0;
}
