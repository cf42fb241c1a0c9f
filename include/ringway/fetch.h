/* fetch.h - a small blocking HTTP/1.1 GET client for control-side work
 * (JWKS documents). Never used by workers. */
#ifndef RINGWAY_FETCH_H
#define RINGWAY_FETCH_H

#include <stddef.h>
#include <stdint.h>

/* GETs an http:// or https:// URL within timeout_ms overall (DNS, connect,
 * TLS, request, response). https verifies the peer against ca_file (NULL: the
 * system store) with SNI and a host-name check. Follows no redirects; the
 * status must be 200; Content-Length, chunked and close-delimited bodies are
 * read, up to max_bytes. Returns 0 with a malloc'd NUL-terminated body in
 * *body (caller frees) and its length in *len, or -1 with a reason in err. */
int rw_fetch_url(const char *url, const char *ca_file, uint32_t timeout_ms, size_t max_bytes, char **body,
                 size_t *len, char *err, size_t errlen);

#endif
