/* fuzz_chunked.c - libFuzzer driver for rw_chunked_scan.
 * Input: byte 0 picks a split point, the rest is a chunked body. The body is
 * scanned in one piece, in two pieces, and byte by byte; all three must agree
 * on error / end and on how many bytes belong to the body. */
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
