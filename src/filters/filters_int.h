/* filters_int.h - private to src/filters: a snapshot's compiled filters,
 * shared by filters.c (compiling them, control side) and filters_run.c
 * (running them, worker side). */
#ifndef RINGWAY_FILTERS_INT_H
#define RINGWAY_FILTERS_INT_H

#include <openssl/sha.h>

#include "ringway/filters.h"
#include "ringway/jwks.h"
#include "ringway/jwt.h"
#include "ringway/rl_global.h"
#include "ringway/rstats.h"

/* ---- compiled filters ---- */

typedef struct jwt_rt {
    uint64_t id;              /* unique per build: cache entries never outlive their keys */
    rw_jwt_keyset *static_ks; /* keys from the config */
    rw_jwks *jwks;            /* JWKS file or URL (merged with static_ks), or NULL */
    rw_jwt_policy pol;
} jwt_rt;

typedef struct rl_rt {
    rw_rl_entry *reg;
    rw_rl_params base;    /* rate as written; rate 0: none */
    rw_rl_params *tiers;  /* per tier (rate 0 = unlimited) */
    rw_limit_slot *stats; /* one per worker: rejections (rstats.h) */
} rl_rt;

typedef struct filter_rt {
    const rw_filter_cfg *cfg;
    union {
        jwt_rt jwt;
        rl_rt rl;
    } u;
} filter_rt;

typedef struct route_rt {
    filter_rt **list; /* global, service, route filters in that order */
    size_t n;
    rw_str *strip; /* request headers never forwarded on this route */
    size_t nstrip;
    uint64_t name_hash;
} route_rt;

typedef struct key_slot {
    uint8_t digest[SHA256_DIGEST_LENGTH];
    int consumer; /* -1: empty */
} key_slot;

typedef struct name_slot {
    const char *name;
    int consumer;
} name_slot;

struct rw_filters {
    const rw_config *cfg;
    filter_rt *all;
    size_t nall;
    route_rt *routes;
    key_slot *keys; /* SHA-256 of every API key -> consumer */
    uint32_t keys_mask;
    name_slot *certs; /* client certificate fingerprints (64 hex) -> consumer; NULL: none */
    uint32_t certs_mask;
    name_slot *names; /* consumer ids, then names (for consumer_claim) */
    uint32_t names_mask;
    char **consumer_groups; /* "a, b" per consumer, for X-Consumer-Groups */
    rw_config *owned_cfg;   /* freed with the filters (rw_filters_release) */
    rw_filters *next;       /* graveyard link */
};

/* The first 8 bytes of a SHA-256 digest, as a table hash. */
static inline uint64_t digest_hash(const uint8_t *d)
{
    uint64_t h;
    memcpy(&h, d, sizeof(h));
    return h;
}

#define RW_CERT_FP_LEN 64 /* a SHA-256 fingerprint in hex */

/* The consumer listing the client certificate fingerprint sha256 (64
 * lower-case hex digits), or -1 (filters.c). */
int rw__filters_consumer_by_cert(const rw_filters *f, rw_str sha256);

/* The consumer whose id or name is s[0..len), or -1 (filters.c). */
int rw__filters_consumer_by_name(const rw_filters *f, const char *s, size_t len);

#endif
