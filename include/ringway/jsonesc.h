/* jsonesc.h - writing untrusted bytes into a JSON string (RFC 8259): the
 * access log's escaper. */
#ifndef RINGWAY_JSONESC_H
#define RINGWAY_JSONESC_H

#include <stddef.h>

/* Writes src[0..len) escaped for the inside of a JSON string at dst (at
 * most cap bytes, never a partial escape or a split UTF-8 sequence):
 * '"' and '\' escaped, control characters as \n, \r, \t or \u00XX, bytes
 * that are not valid UTF-8 (overlong forms, surrogates, past U+10FFFF,
 * truncated sequences) as \u00XX of the byte, valid UTF-8 as it is.
 * Returns the bytes written; *truncated (when not NULL) says whether src
 * did not fit. */
size_t rw_json_escape(char *dst, size_t cap, const char *src, size_t len, int *truncated);

#endif
