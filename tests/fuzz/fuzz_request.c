/* fuzz_request.c - libFuzzer driver for rw_http_parse_request (and
 * rw_path_normalize on what it returns).
 * Input: byte 0 picks the limits, byte 1 a split point, the rest is parsed.
 * Invariants: statuses from the documented set, slices inside the buffer, the
 * head ends with CRLFCRLF, a prefix reads INCOMPLETE or the same result, and a
 * normalised path is a fixed point. */
#include "fuzz_common.h"
#include "ringway/path.h"

static ssize_t parse(const uint8_t *p, size_t n, const rw_http_limits *lim, rw_http_request *r)
{
    char *b = fuzz_copy(p, n);
    ssize_t rc = rw_http_parse_request(b, n, lim, r);
    if (rc > 0) {
        FUZZ_CHECK((size_t)rc <= n && r->head_len == (size_t)rc);
        FUZZ_CHECK(rc >= 4 && memcmp(b + rc - 4, "\r\n\r\n", 4) == 0);
        FUZZ_CHECK(fuzz_inside(r->method_str, b, n) && r->method_str.len > 0);
        FUZZ_CHECK(r->method > RW_METHOD_OTHER && r->method < RW_METHOD__COUNT);
        FUZZ_CHECK(fuzz_inside(r->target, b, n) && r->target.len > 0);
        FUZZ_CHECK(fuzz_inside(r->path, b, n) || (r->path.len == 1 && r->path.p[0] == '/'));
        FUZZ_CHECK(fuzz_inside(r->query, b, n));
        FUZZ_CHECK(fuzz_inside(r->host, b, n));
        FUZZ_CHECK(r->minor == 0 || r->minor == 1);
        FUZZ_CHECK(r->minor == 0 || (r->flags & RW_HF_HAS_HOST));
        FUZZ_CHECK(r->body == RW_BODY_NONE || r->body == RW_BODY_LENGTH || r->body == RW_BODY_CHUNKED);
        if (r->body == RW_BODY_LENGTH)
            FUZZ_CHECK((r->flags & RW_HF_HAS_CL) && !(r->flags & RW_HF_HAS_TE));
        if (r->body == RW_BODY_CHUNKED)
            FUZZ_CHECK((r->flags & RW_HF_HAS_TE) && !(r->flags & RW_HF_HAS_CL) && r->minor == 1);
        if (r->flags & RW_HF_CONN_CLOSE)
            FUZZ_CHECK(!r->keep_alive);
        for (size_t i = 0; i < r->target.len; i++)
            FUZZ_CHECK(r->target.p[i] > 0x20 && r->target.p[i] < 0x7f && r->target.p[i] != '#');
        fuzz_check_headers(r->headers, r->nheaders, b, (size_t)rc);
        for (size_t i = 0; i < r->nheaders; i++) {
            rw_str name = r->headers[i].name;
            bool hop = rw_http_is_hop_by_hop(name, r->headers, r->nheaders);
            if (name.len == 14 && strncasecmp(name.p, "content-length", 14) == 0)
                FUZZ_CHECK(!hop);
        }

        if (r->path.len && r->path.p[0] == '/') {
            char *out = malloc(r->path.len + 1), *again = malloc(r->path.len + 1);
            ssize_t k = rw_path_normalize(r->path.p, r->path.len, out, r->path.len + 1);
            if (k >= 0) {
                FUZZ_CHECK((size_t)k <= r->path.len && out[0] == '/' && out[k] == '\0');
                FUZZ_CHECK(rw_path_normalize(out, (size_t)k, again, (size_t)k + 1) == k);
                FUZZ_CHECK(memcmp(out, again, (size_t)k) == 0);
                FUZZ_CHECK(strstr(out, "//") == NULL && strstr(out, "/../") == NULL &&
                           strstr(out, "/./") == NULL);
            }
            free(out);
            free(again);
        }
    } else if (rc < 0) {
        FUZZ_CHECK(rc == -400 || rc == -414 || rc == -431 || rc == -501 || rc == -505);
    }
    free(b);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rw_http_request r;
    if (size < 2)
        return 0;
    uint8_t sel = data[0], split = data[1];
    const uint8_t *p = data + 2;
    size_t n = size - 2;

    rw_http_limits small, *lim = NULL;
    if (sel & 0x80) { /* small limits reach every limit path quickly */
        small.max_request_line = 8 + (sel & 0x1f) * 4;
        small.max_header_bytes = 16 + (sel & 0x7f) * 8;
        small.max_headers = sel & 0x07;
        lim = &small;
    }

    ssize_t rc = parse(p, n, lim, &r);
    size_t k = (size_t)((uint64_t)n * split / 255);
    ssize_t rc2 = parse(p, k, lim, &r);
    if (rc > 0)
        FUZZ_CHECK(k >= (size_t)rc ? rc2 == rc : rc2 == 0);
    else if (rc == 0)
        FUZZ_CHECK(rc2 == 0);
    else
        FUZZ_CHECK(rc2 == 0 || rc2 == rc);

    /* pipelining: whatever follows a complete head parses on its own */
    if (rc > 0 && (size_t)rc < n)
        (void)parse(p + rc, n - (size_t)rc, lim, &r);
    return 0;
}
