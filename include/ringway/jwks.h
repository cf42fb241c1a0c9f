/* jwks.h - JWT key sets that change at run time: a JWKS file or URL, merged
 * with the static keys of the config, refreshed by one background thread.
 * Workers read the current set with one atomic load; a replaced set is freed
 * by the refresher 30 s later (verification holds a set for microseconds). A
 * refresh that fails keeps the last good set. */
#ifndef RINGWAY_JWKS_H
#define RINGWAY_JWKS_H

#include <stdbool.h>
#include <stdint.h>

#include "ringway/jwt.h"

typedef struct rw_jwks rw_jwks;

typedef struct rw_jwks_opts {
    const char *file;          /* a JWKS file (re-read when its mtime/size change), or NULL */
    const char *url;           /* an http(s) JWKS URL, or NULL */
    const char *ca_file;       /* CA bundle for https (NULL: system store) */
    uint32_t refresh_ms;       /* URL refresh period (default 300000); files are checked every second */
    uint32_t timeout_ms;       /* per fetch (default 5000) */
    const rw_jwt_keyset *base; /* static keys copied into every set (may be NULL); not kept */
} rw_jwks_opts;

/* Creates a source and loads it once, synchronously. A file that cannot be
 * read or parsed is an error (-> NULL, reason in err); a URL that cannot be
 * fetched is not: the set starts with the base keys only, a warning is logged
 * and the refresher retries (every 5 s until the first success). Registers the
 * source with the refresher thread, started on first use. */
rw_jwks *rw_jwks_new(const rw_jwks_opts *o, char *err, size_t errlen);
/* The current key set (never NULL). Worker side, lock-free; valid until the
 * caller's loop turn ends. */
const rw_jwt_keyset *rw_jwks_current(const rw_jwks *j);
/* Unregisters and frees a source (blocks while a refresh of it is running). */
void rw_jwks_free(rw_jwks *j);

/* The source for these options, shared by every snapshot that names the same
 * file, URL, CA, period and static keys: a reload keeps the last good set
 * (and does not fetch it again), even while the identity provider is down.
 * Takes a reference; creates the source (rw_jwks_new) on first use. Control
 * side. NULL with the reason in err. */
rw_jwks *rw_jwks_acquire(const rw_jwks_opts *o, char *err, size_t errlen);
/* Drops a reference taken by rw_jwks_acquire; the source is freed by the
 * next rw_jwks_collect once nobody holds it. */
void rw_jwks_release(rw_jwks *j);
/* Frees the shared sources nobody holds any more (control thread: it may
 * wait for a fetch in progress). */
void rw_jwks_collect(void);
/* Counters for metrics: successful refreshes that changed keys, failures. */
uint64_t rw_jwks_rotations(const rw_jwks *j);
uint64_t rw_jwks_failures(const rw_jwks *j);
/* Stops the refresher thread (process exit); sources must be freed first. */
void rw_jwks_shutdown(void);

#endif
