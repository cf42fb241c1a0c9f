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
    int method;                    /* enum rw_http_method */
    rw_str host;                   /* Host without port; compared case-insensitively */
    const char *path;              /* normalised path, NUL-terminated */
    size_t path_len;
    rw_str query;                  /* raw query without '?' */
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
 * matches any path, ranking below every path match. Performs no allocation. */
int rw_router_match(const rw_router *r, const rw_route_input *in);

/* Writes the request-target to send upstream for route rt: path after
 * strip_path or rewrite (else the normalised path unchanged), then "?query"
 * if query is non-empty. Returns the length written (NUL-terminated), or -1
 * when it does not fit in cap. */
ssize_t rw_route_upstream_target(const rw_route_cfg *rt, const char *path, size_t path_len,
                                 rw_str query, char *out, size_t cap);

#endif
