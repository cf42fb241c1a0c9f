/* fuzz_response.c - libFuzzer driver for rw_http_parse_response.
 * Input: byte 0 picks the request method and the limits, byte 1 a split
 * point, the rest is parsed. Invariants as for requests, plus the body-kind
 * rules (HEAD, 1xx, 204, 304 have none; read-until-close never keeps alive). */
#include "fuzz_common.h"

static ssize_t parse(const uint8_t *p, size_t n, const rw_http_limits *lim, int method, rw_http_response *r)
{
    char *b = fuzz_copy(p, n);
    ssize_t rc = rw_http_parse_response(b, n, lim, method, r);
    if (rc > 0) {
        FUZZ_CHECK((size_t)rc <= n && r->head_len == (size_t)rc);
        FUZZ_CHECK(rc >= 4 && memcmp(b + rc - 4, "\r\n\r\n", 4) == 0);
        FUZZ_CHECK(r->status >= 100 && r->status <= 599);
        FUZZ_CHECK(r->minor == 0 || r->minor == 1);
        FUZZ_CHECK(fuzz_inside(r->reason, b, n));
        fuzz_check_headers(r->headers, r->nheaders, b, (size_t)rc);
        if (method == RW_METHOD_HEAD || r->status < 200 || r->status == 204 || r->status == 304)
            FUZZ_CHECK(r->body == RW_BODY_NONE);
        if (r->body == RW_BODY_UNTIL_CLOSE)
            FUZZ_CHECK(!r->keep_alive && !(r->flags & (RW_HF_HAS_CL | RW_HF_HAS_TE)));
        if (r->body == RW_BODY_CHUNKED)
            FUZZ_CHECK(!(r->flags & RW_HF_HAS_CL) && r->minor == 1);
        if (r->body == RW_BODY_LENGTH)
            FUZZ_CHECK((r->flags & RW_HF_HAS_CL) && !(r->flags & RW_HF_HAS_TE));
        FUZZ_CHECK(!((r->flags & RW_HF_HAS_CL) && (r->flags & RW_HF_HAS_TE)));
    } else {
        FUZZ_CHECK(rc == 0 || rc == -502);
    }
    free(b);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rw_http_response r;
    if (size < 2)
        return 0;
    uint8_t sel = data[0], split = data[1];
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    int method = sel % RW_METHOD__COUNT;

    rw_http_limits small, *lim = NULL;
    if (sel & 0x80) {
        small.max_request_line = 12 + (sel & 0x1f) * 4;
        small.max_header_bytes = 16 + (sel & 0x7f) * 8;
        small.max_headers = (sel >> 4) & 0x07;
        lim = &small;
    }

    ssize_t rc = parse(p, n, lim, method, &r);
    size_t k = (size_t)((uint64_t)n * split / 255);
    ssize_t rc2 = parse(p, k, lim, method, &r);
    if (rc > 0)
        FUZZ_CHECK(k >= (size_t)rc ? rc2 == rc : rc2 == 0);
    else if (rc == 0)
        FUZZ_CHECK(rc2 == 0);
    else
        FUZZ_CHECK(rc2 == 0 || rc2 == rc);
    return 0;
}
