/* fuzz_common.h - helpers shared by the libFuzzer drivers in this folder. */
#ifndef RINGWAY_FUZZ_COMMON_H
#define RINGWAY_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringway/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts (a crash libFuzzer records) when an invariant does not hold. */
#define FUZZ_CHECK(cond)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                     \
            abort();                                                                                         \
        }                                                                                                    \
    } while (0)

/* An exact-size heap copy, so that ASan reports any read past len. */
static inline char *fuzz_copy(const uint8_t *p, size_t n)
{
    char *b = malloc(n ? n : 1);
    if (!b)
        abort();
    if (n)
        memcpy(b, p, n);
    return b;
}

/* True when s lies inside buf[0..len] (an empty slice may also be NULL). */
static inline bool fuzz_inside(rw_str s, const char *buf, size_t len)
{
    if (s.len == 0 && s.p == NULL)
        return true;
    return s.p >= buf && s.p <= buf + len && s.len <= (size_t)(buf + len - s.p);
}

static inline bool fuzz_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Checks the header array of a parsed head. */
static inline void fuzz_check_headers(const rw_http_header *h, size_t n, const char *buf, size_t head_len)
{
    FUZZ_CHECK(n <= RW_HTTP_MAX_HEADERS);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(h[i].name.len > 0);
        FUZZ_CHECK(fuzz_inside(h[i].name, buf, head_len));
        FUZZ_CHECK(fuzz_inside(h[i].value, buf, head_len));
        for (size_t k = 0; k < h[i].name.len; k++)
            FUZZ_CHECK(fuzz_tchar((unsigned char)h[i].name.p[k]));
        for (size_t k = 0; k < h[i].value.len; k++) {
            unsigned char c = (unsigned char)h[i].value.p[k];
            FUZZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        if (h[i].value.len) {
            FUZZ_CHECK(h[i].value.p[0] != ' ' && h[i].value.p[0] != '\t');
            char last = h[i].value.p[h[i].value.len - 1];
            FUZZ_CHECK(last != ' ' && last != '\t');
        }
    }
}

#endif
