/* route.h - the compiled route matcher and upstream-target rewriting.
 * A router borrows the config it was built from (which must outlive it) and is
 * immutable after build, so any worker may use it without locks. */
#ifndef RINGWAY_ROUTE_H
#define RINGWAY_ROUTE_H

#include <sys/types.h>

#include "ringway/config.h"
#include "ringway/http.h"

typedef struct rw_router rw_router;

/* What a request offers to the matcher. */
typedef struct rw_route_input {
    int method;       /* enum rw_http_method */
    rw_str host;      /* Host without port; compared case-insensitively */
    const char *path; /* normalised path, NUL-terminated */
    size_t path_len;
    rw_str query; /* raw query without '?' */
    const rw_http_header *headers;
    size_t nheaders;
} rw_route_input;

/* Compiles cfg->routes. Returns NULL with a message in err on failure (e.g. ENOMEM). */
rw_router *rw_router_build(const rw_config *cfg, char *err, size_t errlen);

/* Frees a router; NULL allowed. */
void rw_router_free(rw_router *r);

/* Returns the index in cfg->routes of the route that wins for in, or -1.
 * Precedence (docs/configuration.md): exact path > longest prefix > regex
 * (config order); among equal path matches, a route with a matching host beats
 * one without hosts; exact host beats wildcard; then more predicates
 * (methods, headers, query) win; then config order. A route without paths
 * matches any path, ranking below every path match. Performs no allocation.
 *
 * Details (see src/proxy/router.c):
 * - prefix "/api/orders" matches "/api/orders", "/api/orders/" and
 *   "/api/orders/x", never "/api/ordersx"; "/api/" is a plain string
 *   prefix ("/api/..." but not "/api"), and is the longer prefix when "/api"
 *   is also configured.
 *   If no route of the longest matching prefix passes its other predicates,
 *   shorter prefixes are tried, then regex routes, then path-less ones.
 * - all matching regex routes form one class: host, predicate count, then
 *   config order decide. Regexes search (anchor with ^...$ for the whole path).
 * - host score: exact > "*.suffix" (longer suffix first; needs at least one
 *   label before the suffix) > "*" (any host) > route without hosts. A
 *   trailing dot on the request host is ignored.
 * - predicate count: methods (one, when set) + header predicates + query
 *   predicates. A header or query predicate matches if any occurrence does.
 * - query names and values are compared after percent-decoding ('+' = space),
 *   names case-sensitively; header names case-insensitively, header values
 *   case-sensitively.
 * - paths that do not start with '/' (e.g. "*") match no prefix. */
int rw_router_match(const rw_router *r, const rw_route_input *in);

/* Writes the request-target to send upstream for route rt: path after
 * strip_path or rewrite (else the normalised path unchanged), then "?query"
 * if query is non-empty. Returns the length written (NUL-terminated), or -1
 * when it does not fit in cap.
 * strip_path is segment-aware ("/api" strips "/api/x" to "/x" and "/api" to
 * "/", leaves "/apix"). When both are set, strip_path applies first and
 * rewrite then works on the stripped path. rewrite replaces the part of the
 * path that rewrite_re matches with rewrite_to, where $0..$9 are the match and
 * its groups (unmatched group: empty) and $$ is '$'; a path it does not match
 * is left unchanged. */
ssize_t rw_route_upstream_target(const rw_route_cfg *rt, const char *path, size_t path_len, rw_str query,
                                 char *out, size_t cap);

#endif
