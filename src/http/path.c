/* path.c - request path normalisation before routing (RFC 3986 6.2.2 and
 * 5.2.4). Works in one forward pass: each segment is decoded straight into
 * out, then dropped again when it turns out to be "." or "..". Nothing is
 * allocated; out belongs to the caller. */
#include "ringway/path.h"

#include <stdbool.h>
#include <stdint.h>

#include "ringway/common.h"

static bool unreserved(unsigned c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

ssize_t rw_path_normalize(const char *in, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    if (len == 0 || in[0] != '/' || cap < 2)
        return -1;
    size_t lim = cap - 1; /* room for the NUL */
    size_t o = 0, i = 1;
    out[o++] = '/';
    /* Invariant at the top of the loop: out[0..o) ends with '/'. */
    while (i < len) {
        size_t seg = o;
        while (i < len && in[i] != '/') {
            unsigned char c = (unsigned char)in[i];
            if (c <= 0x20 || c >= 0x7f)
                return -1; /* control, space, DEL or a raw non-ASCII byte */
            if (c != '%') {
                if (o >= lim)
                    return -1;
                out[o++] = (char)c;
                i++;
                continue;
            }
            if (len - i < 3)
                return -1;
            int hi = rw_hexval((unsigned char)in[i + 1]), lo = rw_hexval((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            unsigned v = (unsigned)(hi << 4 | lo);
            if (v == 0)
                return -1;
            i += 3;
            if (unreserved(v)) {
                if (o >= lim)
                    return -1;
                out[o++] = (char)v;
            } else {
                if (lim - o < 3)
                    return -1;
                out[o++] = '%';
                out[o++] = hex[v >> 4];
                out[o++] = hex[v & 15];
            }
        }
        size_t n = o - seg;
        bool slash = i < len; /* the segment was followed by '/' */
        if (slash)
            i++;
        if (n == 0)
            continue; /* empty segment: merge duplicate slashes */
        if (n == 1 && out[seg] == '.') {
            o = seg;
            continue;
        }
        if (n == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            o = seg;
            if (o > 1) { /* drop the previous segment, keep its leading '/' */
                o--;
                while (out[o - 1] != '/')
                    o--;
            }
            continue;
        }
        if (slash) {
            if (o >= lim)
                return -1;
            out[o++] = '/';
        }
    }
    out[o] = '\0';
    return (ssize_t)o;
}
