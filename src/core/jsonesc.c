/* jsonesc.c - JSON string escaping (jsonesc.h). */
#include <stdint.h>
#include <string.h>

#include "ringway/jsonesc.h"

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t min, cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* 1 for the bytes that go into a JSON string as they are: printable ASCII but '"' and '\\'. */
#define P4(x) x, x, x, x
#define P16(x) P4(x), P4(x), P4(x), P4(x)
static const unsigned char plain[256] = {
    P16(0), P16(0), /* 0x00-0x1f */
    1,      1,      0,      1,      1,      1,      1,      1,
    1,      1,      1,      1,      1,      1,      1,      1, /* 0x20-0x2f: '"' */
    P16(1),                                                    /* 0x30-0x3f */
    P16(1),                                                    /* 0x40-0x4f */
    1,      1,      1,      1,      1,      1,      1,      1,
    1,      1,      1,      1,      0,      1,      1,      1, /* 0x50-0x5f: '\\' */
    P16(1),                                                    /* 0x60-0x6f */
    1,      1,      1,      1,      1,      1,      1,      1,
    1,      1,      1,      1,      1,      1,      1,      0,      /* 0x70-0x7f: DEL */
    P16(0), P16(0), P16(0), P16(0), P16(0), P16(0), P16(0), P16(0), /* 0x80-0xff: UTF-8, checked apart */
};

size_t rw_json_escape(char *dst, size_t cap, const char *src, size_t len, int *truncated)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0, i = 0;
    while (i < len) {
        /* A run of printable ASCII that needs no escape goes in one copy. */
        size_t run = 0;
        while (i + run < len && plain[s[i + run]])
            run++;
        if (run > 0) {
            size_t k = run <= cap - o ? run : cap - o;
            memcpy(dst + o, s + i, k);
            o += k;
            i += k;
            if (k < run)
                break;
            continue;
        }
        unsigned char c = s[i];
        char esc[6];
        size_t el = 0, take = 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            el = 2;
        } else if (c < 0x20 || c == 0x7F) {
            esc[0] = '\\';
            if (c == '\n' || c == '\r' || c == '\t') {
                esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
                el = 2;
            } else {
                el = 0; /* \u00XX below */
            }
        } else if (c >= 0x80) {
            take = utf8_len(s + i, len - i);
        }
        if (el == 0 && (c < 0x20 || c == 0x7F || take == 0)) {
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
            take = 1;
        }
        if (el > 0) {
            if (o + el > cap)
                break;
            for (size_t k = 0; k < el; k++)
                dst[o++] = esc[k];
        } else {
            if (o + take > cap)
                break;
            for (size_t k = 0; k < take; k++)
                dst[o++] = (char)s[i + k];
        }
        i += take;
    }
    if (truncated != NULL)
        *truncated = i < len;
    return o;
}
