/* discovery_int.h - private to src/discovery: what a source reports. */
#ifndef RINGWAY_DISCOVERY_INT_H
#define RINGWAY_DISCOVERY_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "ringway/config.h"
#include "ringway/worker.h"

enum { RW_DISC_DNS = 0, RW_DISC_REDIS, RW_DISC__COUNT };

/* A source's view of one service: v[0..n) (copied), or when ok is false why
 * it has none (its last good list, if any, is kept). Any thread. */
void rw__disc_publish(int source, const char *service, const rw_instance_cfg *v, uint32_t n, bool ok,
                      const char *why);
/* A source tried every service it follows once (rw_discovery_wait_first). */
void rw__disc_first_round_done(int source);

/* The DNS source (dns.c). */
void rw__dns_apply(const rw_config *cfg);
void rw__dns_stop(void);

/* The Redis registry source (registry.c). */
void rw__registry_apply(const rw_config *cfg);
void rw__registry_stop(void);

#endif
