/* path.h - request path normalisation before routing (RFC 3986 6.2.2). */
#ifndef RINGWAY_PATH_H
#define RINGWAY_PATH_H

#include <sys/types.h>

/* Normalises an origin-form path (no query) into out:
 *  - percent-decodes unreserved characters (ALPHA DIGIT - . _ ~), upper-cases
 *    the hex of the percent-escapes it keeps;
 *  - merges duplicate slashes; removes "." and ".." segments (never above "/");
 *  - keeps every other escape as it is (so %2F stays data, never a separator).
 * Returns the output length, or -1 when the path is invalid: not starting with
 * '/', a bad or truncated escape, an encoded NUL (%00), a control character or
 * space, or output that would exceed cap. out needs len + 1 bytes
 * at most; it is NUL-terminated on success. */
ssize_t rw_path_normalize(const char *in, size_t len, char *out, size_t cap);

#endif
