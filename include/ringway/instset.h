/* instset.h - one service's instances as a snapshot sees them: the static
 * ones from the config and those discovery found (DNS, Redis), in one
 * immutable, reference-counted array. A snapshot holds one per service;
 * discovery publishes a new snapshot with new sets (rw_snapshot_derive). */
#ifndef RINGWAY_INSTSET_H
#define RINGWAY_INSTSET_H

#include <stdatomic.h>
#include <stdint.h>

#include "ringway/config.h"

/* The most instances a service has (picks keep tried instances in 16 bits). */
#define RW_MAX_INSTANCES 65535u

typedef struct rw_instset {
    atomic_int refs;
    uint32_t n;
    char why[192];       /* n == 0: why there is no instance (e.g. the DNS name does not resolve) */
    rw_instance_cfg v[]; /* n entries; their strings live in the same allocation */
} rw_instset;

/* A new set with copies of v[0..n) (strings included), why when n == 0 (may
 * be NULL); one reference, the caller's. NULL when out of memory. */
rw_instset *rw_instset_new(const rw_instance_cfg *v, uint32_t n, const char *why);
/* Adds a reference. */
void rw_instset_ref(rw_instset *s);
/* Drops a reference; frees the set on the last one. NULL is ignored. */
void rw_instset_unref(rw_instset *s);
/* Whether a and b hold the same instances (addresses, weights, authorities) in the same order. */
bool rw_instset_same(const rw_instset *a, const rw_instset *b);
/* Sorts v[0..n) by address, so that sources report the same set the same way. */
void rw_instances_sort(rw_instance_cfg *v, uint32_t n);
/* Index of the instance with this address, or -1. */
int rw_instset_find(const rw_instset *s, const char *address);

#endif
