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
 * '/', a bad or truncated escape, an encoded NUL (%00), a raw control
 * character, space, DEL or non-ASCII byte, or when out is too small (cap
 * bounds the work area too: segments later removed by ".." count while they
 * are there). out needs len + 1 bytes at most, and that always suffices; it
 * is NUL-terminated on success. A trailing slash is kept ("/a/b/" stays;
 * "/a/." and "/a/b/.." give "/a/"). The result is a fixed point:
 * normalising it again gives the same bytes.
 * Note: segments like "..;" or "%5C" are data here; upstreams that treat ';'
 * parameters or backslashes specially may see them differently. */
ssize_t rw_path_normalize(const char *in, size_t len, char *out, size_t cap);

#endif
